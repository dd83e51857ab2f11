//! Bytes → CloudTrail record texts, for every shape CloudTrail data comes in.
//!
//! The shape is detected from content, not from file names: gzip by its magic bytes, then
//! - `{"Records":[…]}` (S3 archive files),
//! - a CloudTrail digest file (skipped: not events),
//! - a CloudWatch Logs subscription payload (`DATA_MESSAGE`; `CONTROL_MESSAGE` skipped), raw
//!   or base64+gzip as a Lambda receives it,
//! - `LookupEvents` / CloudTrail Lake output where each record is a JSON string in
//!   `CloudTrailEvent`,
//! - a JSON array of records, a single record, or JSON lines.
//!
//! Records are returned as text slices of the input where possible (no re-serialisation);
//! each is parsed into an [`crate::event::Event`] by the caller.

use crate::event::Slot;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::io::Read;

/// Largest decompressed size accepted for one input (guards against gzip bombs).
pub(crate) const MAX_DECOMPRESSED: u64 = 2 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Shape {
    Records,
    Array,
    Object,
    JsonLines,
    CwlData,
    CwlControl,
    LookupEvents,
    Digest,
    /// Not JSON or gzip (a README, a binary): skipped.
    NotCloudTrail,
}

/// Where in its input a record was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loc {
    /// 0-based index in a list of records.
    Index(usize),
    /// 1-based line of JSON lines.
    Line(usize),
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Loc::Index(i) => write!(f, "record {i}"),
            Loc::Line(l) => write!(f, "line {l}"),
        }
    }
}

#[derive(Debug)]
pub(crate) struct RecordText<'a> {
    pub text: Cow<'a, str>,
    pub loc: Loc,
}

/// Why an input could not be decoded (the caller names the file).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("corrupt gzip data after {inflated} bytes of output: {error}")]
    Gzip {
        inflated: usize,
        error: std::io::Error,
    },
    #[error("decompresses to more than {MAX_DECOMPRESSED} bytes")]
    TooLarge,
    #[error("not UTF-8 text at byte {0}")]
    Utf8(usize),
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("invalid base64 CloudWatch Logs payload: {0}")]
    Base64(String),
}

impl From<serde_json::Error> for DecodeError {
    fn from(e: serde_json::Error) -> Self {
        let (line, column, message) = crate::event::json_error_parts(&e);
        DecodeError::Json {
            line,
            column,
            message,
        }
    }
}

/// A problem with one record (the rest of the input is still used).
#[derive(Debug)]
pub(crate) struct RecordIssue {
    pub loc: Loc,
    pub message: String,
}

/// The records of one input.
#[derive(Debug)]
pub(crate) struct Decoded<'a> {
    pub shape: Shape,
    pub records: Vec<RecordText<'a>>,
    /// Records of a `{"Records":[…]}` file, already split into members in the same pass.
    pub split: Vec<(Loc, Slot<'a>)>,
    pub issues: Vec<RecordIssue>,
    /// CloudWatch Logs `CONTROL_MESSAGE` envelopes met inside the input (skipped).
    pub control_messages: usize,
}

pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// One libdeflate decompressor per thread (allocated on first use, freed with the thread).
struct Libdeflate(std::ptr::NonNull<libdeflate_sys::libdeflate_decompressor>);

impl Drop for Libdeflate {
    fn drop(&mut self) {
        // SAFETY: allocated by `libdeflate_alloc_decompressor`, freed once, here.
        unsafe { libdeflate_sys::libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

thread_local! {
    static LIBDEFLATE: Option<Libdeflate> = {
        // SAFETY: no preconditions; a null result (out of memory) is handled.
        let d = unsafe { libdeflate_sys::libdeflate_alloc_decompressor() };
        std::ptr::NonNull::new(d).map(Libdeflate)
    };
}

/// A whole gzip file of exactly one member, inflated at once by libdeflate into a buffer of
/// the size its trailer states. `None` for anything else — several members, a trailer that
/// does not match, damage, a size over [`MAX_DECOMPRESSED`] — which the streaming decoder
/// then reads (and reports).
fn inflate_single_member(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let n = inflate_single_member_into(bytes, &mut out)?;
    out.truncate(n);
    Some(out)
}

/// [`inflate_single_member`] into `buf`, grown as needed and never shrunk (bytes past the
/// result are left as they were): returns the inflated length.
fn inflate_single_member_into(bytes: &[u8], buf: &mut Vec<u8>) -> Option<usize> {
    let trailer: [u8; 4] = bytes.get(bytes.len().checked_sub(4)?..)?.try_into().ok()?;
    let size = u32::from_le_bytes(trailer) as usize;
    if size as u64 > MAX_DECOMPRESSED || bytes.len() < 18 {
        return None;
    }
    if buf.len() < size {
        buf.resize(size, 0);
    }
    let out = &mut buf[..size];
    let (mut used_in, mut used_out) = (0usize, 0usize);
    let ok = LIBDEFLATE.with(|d| {
        let d = d.as_ref()?;
        // SAFETY: `bytes` and `out` are valid for the lengths given; libdeflate writes at
        // most `out.len()` bytes and its two counts.
        let r = unsafe {
            libdeflate_sys::libdeflate_gzip_decompress_ex(
                d.0.as_ptr(),
                bytes.as_ptr().cast(),
                bytes.len(),
                out.as_mut_ptr().cast(),
                out.len(),
                &mut used_in,
                &mut used_out,
            )
        };
        Some(r == libdeflate_sys::libdeflate_result_LIBDEFLATE_SUCCESS)
    })?;
    (ok && used_in == bytes.len() && used_out == size).then_some(size)
}

/// [`gunzip`] reusing `buf` for the usual single-member file (no fresh, zeroed buffer per
/// file): the inflated bytes, borrowed from `buf` or, for anything else, owned.
/// A file larger than this (by its trailer) gets a fresh buffer of its own: the trailer may
/// be damaged, and a lazily zeroed allocation costs nothing until written, unlike growing
/// (and filling) the reused one.
pub(crate) fn gunzip_reusing<'b>(
    bytes: &[u8],
    buf: &'b mut Vec<u8>,
) -> Result<Cow<'b, [u8]>, DecodeError> {
    const REUSE_UP_TO: usize = 16 << 20;
    let stated = bytes
        .len()
        .checked_sub(4)
        .and_then(|at| bytes.get(at..))
        .and_then(|t| <[u8; 4]>::try_from(t).ok())
        .map(|t| u32::from_le_bytes(t) as usize);
    if stated.is_some_and(|n| n <= REUSE_UP_TO)
        && let Some(n) = inflate_single_member_into(bytes, buf)
    {
        return Ok(Cow::Borrowed(&buf[..n]));
    }
    gunzip(bytes).map(Cow::Owned)
}

/// Decompresses gzip (all members), bounded by `MAX_DECOMPRESSED`.
pub fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
    if let Some(out) = inflate_single_member(bytes) {
        return Ok(out);
    }
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(8).min(64 << 20));
    let mut reader = flate2::read::MultiGzDecoder::new(bytes).take(MAX_DECOMPRESSED + 1);
    if let Err(error) = reader.read_to_end(&mut out) {
        return Err(DecodeError::Gzip {
            inflated: out.len(),
            error,
        });
    }
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(DecodeError::TooLarge);
    }
    Ok(out)
}

/// Decompresses when gzip; otherwise borrows.
pub(crate) fn maybe_gunzip(bytes: &[u8]) -> Result<Cow<'_, [u8]>, DecodeError> {
    if is_gzip(bytes) {
        gunzip(bytes).map(Cow::Owned)
    } else {
        Ok(Cow::Borrowed(bytes))
    }
}

#[derive(Deserialize)]
struct TopLevel<'a> {
    #[serde(borrow, rename = "Records")]
    records: Option<Vec<Slot<'a>>>,
    #[serde(borrow, rename = "messageType")]
    message_type: Option<Cow<'a, str>>,
    #[serde(rename = "logEvents")]
    log_events: Option<Vec<LogEvent>>,
    #[serde(borrow, rename = "Events")]
    events: Option<Vec<&'a RawValue>>,
    #[serde(rename = "CloudTrailEvent")]
    cloudtrail_event: Option<String>,
    #[serde(borrow, rename = "digestStartTime")]
    digest_start: Option<&'a RawValue>,
    #[serde(borrow, rename = "logFiles")]
    log_files: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    // Fields every CloudTrail record has (a logstash export renames `eventTime` to
    // `@timestamp` but keeps the others): an object with none of them is not a record.
    #[serde(rename = "eventVersion")]
    event_version: Option<serde::de::IgnoredAny>,
    #[serde(rename = "eventTime")]
    event_time: Option<serde::de::IgnoredAny>,
    #[serde(rename = "eventName")]
    event_name: Option<serde::de::IgnoredAny>,
    #[serde(rename = "eventSource")]
    event_source: Option<serde::de::IgnoredAny>,
    #[serde(rename = "eventID")]
    event_id: Option<serde::de::IgnoredAny>,
}

impl TopLevel<'_> {
    /// Has it any field of a CloudTrail record? (An IAM policy or a configuration file that
    /// happens to be JSON has none.)
    fn looks_like_record(&self) -> bool {
        self.event_version.is_some()
            || self.event_time.is_some()
            || self.event_name.is_some()
            || self.event_source.is_some()
            || self.event_id.is_some()
    }
}

#[derive(Deserialize)]
struct LogEvent {
    message: String,
}

fn first_byte(text: &str) -> Option<u8> {
    text.bytes().find(|b| !b.is_ascii_whitespace())
}

/// `bytes` as UTF-8 text, checked with SIMD (the whole of every input is checked: std's
/// check was 2.4 % of a backtest); the error, with its position, is std's.
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(_) => std::str::from_utf8(bytes),
    }
}

/// Decodes one (already decompressed) input.
pub(crate) fn decode(bytes: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    let text = utf8(bytes).map_err(|e| DecodeError::Utf8(e.valid_up_to()))?;
    decode_text(text)
}

/// [`decode`] of text already known to be UTF-8 (not validated twice).
pub(crate) fn decode_text(text: &str) -> Result<Decoded<'_>, DecodeError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match first_byte(text) {
        Some(b'{') => decode_object_or_lines(text),
        Some(b'[') => decode_array(text),
        Some(b'H') if text.trim_start().starts_with("H4sI") => decode_base64_cwl(text.trim()),
        _ => Ok(Decoded {
            shape: Shape::NotCloudTrail,
            records: Vec::new(),
            issues: Vec::new(),
            split: Vec::new(),
            control_messages: 0,
        }),
    }
}

/// Does this text look like a CloudTrail-ish input at all (for skipping READMEs quietly)?
pub(crate) fn looks_like_input(bytes: &[u8]) -> bool {
    if is_gzip(bytes) {
        return true;
    }
    let bytes = bytes.strip_prefix(&[0xef, 0xbb, 0xbf]).unwrap_or(bytes);
    match bytes.iter().position(|b| !b.is_ascii_whitespace()) {
        Some(i) => match bytes[i] {
            b'{' | b'[' => true,
            b'H' => bytes[i..].starts_with(b"H4sI"),
            _ => false,
        },
        None => false,
    }
}

fn decode_base64_cwl<'b>(text: &str) -> Result<Decoded<'b>, DecodeError> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| DecodeError::Base64(e.to_string()))?;
    let json = maybe_gunzip(&raw)?.into_owned();
    let json =
        String::from_utf8(json).map_err(|e| DecodeError::Utf8(e.utf8_error().valid_up_to()))?;
    let top: TopLevel = serde_json::from_str(&json)?;
    Ok(from_top(top, &json).map(into_owned).unwrap_or(Decoded {
        shape: Shape::NotCloudTrail,
        records: Vec::new(),
        issues: Vec::new(),
        split: Vec::new(),
        control_messages: 0,
    }))
}

/// Every record of one delivered object (an S3 file, a Kinesis record holding a CloudWatch
/// Logs payload), gzip or not, as owned text: live sources hand records on after the bytes
/// they came in are gone.
pub(crate) fn decode_owned(bytes: &[u8]) -> Result<Decoded<'static>, DecodeError> {
    let plain = maybe_gunzip(bytes)?;
    Ok(into_owned(decode(&plain)?))
}

fn into_owned<'b>(d: Decoded<'_>) -> Decoded<'b> {
    let split_texts = d.split.iter().map(|(loc, slot)| RecordText {
        text: Cow::Owned(slot.to_json_text()),
        loc: *loc,
    });
    Decoded {
        shape: d.shape,
        records: d
            .records
            .into_iter()
            .map(|r| RecordText {
                text: Cow::Owned(r.text.into_owned()),
                loc: r.loc,
            })
            .chain(split_texts)
            .collect(),
        split: Vec::new(),
        issues: d.issues,
        control_messages: d.control_messages,
    }
}

/// The records of a `{"Records":[…]}` file, split into members.
fn records_file(records: Vec<Slot<'_>>) -> Decoded<'_> {
    Decoded {
        shape: Shape::Records,
        records: Vec::new(),
        split: records
            .into_iter()
            .enumerate()
            .map(|(i, r)| (Loc::Index(i), r))
            .collect(),
        issues: Vec::new(),
        control_messages: 0,
    }
}

/// Interprets a parsed top-level object; `None` when it is a plain record.
fn from_top<'a>(top: TopLevel<'a>, whole: &'a str) -> Option<Decoded<'a>> {
    let list = |items: Vec<Cow<'a, str>>, shape| Decoded {
        shape,
        records: items
            .into_iter()
            .enumerate()
            .map(|(i, text)| RecordText {
                text,
                loc: Loc::Index(i),
            })
            .collect(),
        issues: Vec::new(),
        split: Vec::new(),
        control_messages: usize::from(shape == Shape::CwlControl),
    };
    if let Some(records) = top.records {
        return Some(records_file(records));
    }
    if top.digest_start.is_some() && top.log_files.is_some() {
        return Some(list(Vec::new(), Shape::Digest));
    }
    if let Some(mt) = &top.message_type {
        if mt == "CONTROL_MESSAGE" {
            return Some(list(Vec::new(), Shape::CwlControl));
        }
        let events = top.log_events.unwrap_or_default();
        return Some(list(
            events.into_iter().map(|e| Cow::Owned(e.message)).collect(),
            Shape::CwlData,
        ));
    }
    if let Some(events) = top.events {
        let mut d = list(Vec::new(), Shape::LookupEvents);
        for (i, e) in events.into_iter().enumerate() {
            lookup_event(e.get(), Loc::Index(i), &mut d);
        }
        return Some(d);
    }
    if let Some(inner) = top.cloudtrail_event {
        return Some(list(vec![Cow::Owned(inner)], Shape::LookupEvents));
    }
    if let Some(data) = top.data {
        // `{"data": <envelope>}` as some test harnesses wrap subscription payloads.
        let inner: TopLevel<'a> = serde_json::from_str(data.get()).ok()?;
        return from_top(inner, whole);
    }
    let _ = whole;
    None
}

fn lookup_event<'a>(raw: &'a str, loc: Loc, d: &mut Decoded<'a>) {
    #[derive(Deserialize)]
    struct Lookup {
        #[serde(rename = "CloudTrailEvent")]
        cloudtrail_event: Option<String>,
    }
    match serde_json::from_str::<Lookup>(raw) {
        Ok(Lookup {
            cloudtrail_event: Some(s),
        }) => d.records.push(RecordText {
            text: Cow::Owned(s),
            loc,
        }),
        Ok(_) => d.issues.push(RecordIssue {
            loc,
            message: "entry has no `CloudTrailEvent` string".into(),
        }),
        Err(e) => d.issues.push(RecordIssue {
            loc,
            message: e.to_string(),
        }),
    }
}

fn decode_object_or_lines(text: &str) -> Result<Decoded<'_>, DecodeError> {
    // The file CloudTrail writes, split by the fast scanner when it is sure of it.
    if let Some(records) = super::split::records(text) {
        return Ok(records_file(records));
    }
    match serde_json::from_str::<TopLevel>(text) {
        Ok(top) => {
            let record = top.looks_like_record();
            Ok(from_top(top, text).unwrap_or_else(|| {
                if record {
                    Decoded {
                        shape: Shape::Object,
                        records: vec![RecordText {
                            text: Cow::Borrowed(text),
                            loc: Loc::Index(0),
                        }],
                        issues: Vec::new(),
                        split: Vec::new(),
                        control_messages: 0,
                    }
                } else {
                    // A single JSON object that is neither an envelope nor a record.
                    Decoded {
                        shape: Shape::NotCloudTrail,
                        records: Vec::new(),
                        issues: Vec::new(),
                        split: Vec::new(),
                        control_messages: 0,
                    }
                }
            }))
        }
        // More than one value: JSON lines.
        Err(e) if e.to_string().starts_with("trailing characters") => Ok(decode_lines(text)),
        Err(e) => {
            // JSON lines with some broken lines are still JSON lines (each line stands
            // alone); a pretty-printed document with a syntax error is one malformed
            // document. Told apart by how many lines parse on their own.
            let lines: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let whole = lines
                .iter()
                .filter(|l| serde_json::from_str::<serde::de::IgnoredAny>(l).is_ok())
                .count();
            if lines.len() > 1 && whole * 2 >= lines.len() {
                Ok(decode_lines(text))
            } else {
                Err(e.into())
            }
        }
    }
}

fn decode_lines(text: &str) -> Decoded<'_> {
    let mut d = Decoded {
        shape: Shape::JsonLines,
        records: Vec::new(),
        issues: Vec::new(),
        split: Vec::new(),
        control_messages: 0,
    };
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let loc = Loc::Line(i + 1);
        // Several values on one line (Firehose concatenates envelopes without newlines).
        if line.starts_with('{') && line.ends_with('}') && line.contains("}{") {
            let mut stream = serde_json::Deserializer::from_str(line).into_iter::<&RawValue>();
            let mut values = Vec::new();
            let complete = loop {
                match stream.next() {
                    Some(Ok(v)) => values.push(v),
                    Some(Err(_)) => break false,
                    None => break true,
                }
            };
            if complete && values.len() > 1 {
                for v in values {
                    classify_item(v.get(), loc, &mut d);
                }
                continue;
            }
        }
        classify_item(line, loc, &mut d);
    }
    d
}

/// One element of an array or one line: a record, a LookupEvents entry, or a subscription
/// envelope holding records.
fn classify_item<'a>(raw: &'a str, loc: Loc, d: &mut Decoded<'a>) {
    if raw.contains("\"CloudTrailEvent\"") && !raw.contains("\"eventVersion\"") {
        lookup_event(raw, loc, d);
    } else if raw.contains("\"logEvents\"") && raw.contains("\"messageType\"") {
        match serde_json::from_str::<TopLevel>(raw)
            .ok()
            .and_then(|t| from_top(t, raw))
        {
            Some(inner) => {
                if inner.shape == Shape::CwlControl {
                    d.control_messages += 1;
                }
                d.records.extend(inner.records.into_iter().map(|mut r| {
                    r.loc = loc;
                    r
                }));
                d.split
                    .extend(inner.split.into_iter().map(|(_, s)| (loc, s)));
                d.issues.extend(inner.issues);
            }
            None => d.records.push(RecordText {
                text: Cow::Borrowed(raw),
                loc,
            }),
        }
    } else {
        d.records.push(RecordText {
            text: Cow::Borrowed(raw),
            loc,
        });
    }
}

fn decode_array(text: &str) -> Result<Decoded<'_>, DecodeError> {
    let items: Vec<&RawValue> = serde_json::from_str(text)?;
    let mut d = Decoded {
        shape: Shape::Array,
        records: Vec::new(),
        issues: Vec::new(),
        split: Vec::new(),
        control_messages: 0,
    };
    for (i, item) in items.into_iter().enumerate() {
        classify_item(item.get(), Loc::Index(i), &mut d);
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(d: &Decoded) -> Vec<String> {
        d.records
            .iter()
            .map(|r| r.text.to_string())
            .chain(d.split.iter().map(|(_, s)| s.to_json_text()))
            .collect()
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn whole_file_inflate_takes_one_member_and_leaves_the_rest_to_the_stream() {
        let a = br#"{"Records":[{"eventName":"A"}]}"#.repeat(100);
        let one = gz(&a);
        assert_eq!(inflate_single_member(&one).as_deref(), Some(&a[..]));
        assert_eq!(gunzip(&one).unwrap(), a);
        // Two members: not a single one; the stream reads both.
        let mut two = one.clone();
        two.extend(gz(b"second"));
        assert!(inflate_single_member(&two).is_none());
        let mut both = a.clone();
        both.extend(b"second");
        assert_eq!(gunzip(&two).unwrap(), both);
        // A trailer that lies about the size, and a truncated file: the stream reports.
        let mut lying = one.clone();
        let n = lying.len();
        lying[n - 4] ^= 1;
        assert!(inflate_single_member(&lying).is_none());
        assert!(inflate_single_member(&one[..one.len() / 2]).is_none());
        assert!(gunzip(&one[..one.len() / 2]).is_err());
        assert!(inflate_single_member(&gz(b"")).is_some_and(|v| v.is_empty()));
    }

    #[test]
    fn records_file() {
        let d = decode(br#"{"Records":[{"eventName":"A"},{"eventName":"B"}]}"#).unwrap();
        assert_eq!(d.shape, Shape::Records);
        assert_eq!(
            texts(&d),
            vec![r#"{"eventName":"A"}"#, r#"{"eventName":"B"}"#]
        );
    }

    #[test]
    fn json_lines_array_and_single() {
        let d = decode(b"{\"eventName\":\"A\"}\n\n{\"eventName\":\"B\"}\n").unwrap();
        assert_eq!(d.shape, Shape::JsonLines);
        assert_eq!(d.records[1].loc, Loc::Line(3));
        let d = decode(br#"[{"eventName":"A"}]"#).unwrap();
        assert_eq!(d.shape, Shape::Array);
        let d = decode(br#"{"eventName":"A","eventVersion":"1.08"}"#).unwrap();
        assert_eq!(d.shape, Shape::Object);
        // A logstash record: `@timestamp` instead of `eventTime`, the other fields kept.
        let d = decode(br#"{"@timestamp":"2024-05-01T10:00:00Z","eventName":"A"}"#).unwrap();
        assert_eq!(d.shape, Shape::Object);
    }

    #[test]
    fn a_json_object_that_is_not_a_record_is_not_cloudtrail() {
        let policy = br#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["sns:Publish"],"Resource":"*"}]}"#;
        let d = decode(policy).unwrap();
        assert_eq!((d.shape, d.records.len()), (Shape::NotCloudTrail, 0));
        let d = decode(b"{}").unwrap();
        assert_eq!(d.shape, Shape::NotCloudTrail);
    }

    #[test]
    fn digest_and_control_are_skipped() {
        let d = decode(br#"{"digestStartTime":"x","logFiles":[]}"#).unwrap();
        assert_eq!((d.shape, d.records.len()), (Shape::Digest, 0));
        let d = decode(br#"{"messageType":"CONTROL_MESSAGE","logEvents":[{"id":"1","timestamp":1,"message":"CWL CONTROL MESSAGE"}]}"#).unwrap();
        assert_eq!((d.shape, d.records.len()), (Shape::CwlControl, 0));
    }

    #[test]
    fn subscription_payload_base64_gzip() {
        use std::io::Write;
        let env = r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","timestamp":1,"message":"{\"eventName\":\"StopLogging\"}"}]}"#;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(env.as_bytes()).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
        let d = decode(b64.as_bytes()).unwrap();
        assert_eq!(d.shape, Shape::CwlData);
        assert_eq!(texts(&d), vec![r#"{"eventName":"StopLogging"}"#]);
    }

    #[test]
    fn lookup_events_output() {
        let d =
            decode(br#"{"Events":[{"EventId":"1","CloudTrailEvent":"{\"eventName\":\"A\"}"}]}"#)
                .unwrap();
        assert_eq!(d.shape, Shape::LookupEvents);
        assert_eq!(texts(&d), vec![r#"{"eventName":"A"}"#]);
    }

    #[test]
    fn corrupt_gzip_and_bad_json_are_errors() {
        assert!(matches!(
            maybe_gunzip(&[0x1f, 0x8b, 0, 1, 2]),
            Err(DecodeError::Gzip { .. })
        ));
        assert!(matches!(
            decode(b"[{\"a\":1},"),
            Err(DecodeError::Json { .. })
        ));
    }
}
