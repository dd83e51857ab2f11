//! The fast path for the file CloudTrail writes, `{"Records":[{…},{…}]}`: its records split
//! into their top-level members by a validating byte scanner, about three times cheaper than
//! serde_json's general deserializer (which was a quarter of a backtest's instructions).
//!
//! It only says yes when it is sure: any other top-level shape, a key with escapes, a `\u`
//! escape anywhere (serde_json checks surrogate pairs), nesting deeper than serde_json allows,
//! or anything malformed makes it give up, and the caller takes the serde_json path, which
//! then gives the same records or the same error as before. What it accepts is valid JSON:
//! the members it returns parse.

use super::{ABSENT, KNOWN_KEYS, Member, Members, Slot, Value, known_key};
use std::borrow::Cow;
use std::cell::OnceCell;

/// serde_json's default recursion limit: deeper documents are its error to report.
const MAX_DEPTH: usize = 128;

/// The records of a `{"Records":[…]}` document, or `None` when the fast path is not sure.
pub(crate) fn records(text: &str) -> Option<Vec<Slot<'_>>> {
    let mut s = Scan {
        text,
        b: text.as_bytes(),
        i: 0,
    };
    s.ws();
    s.eat(b'{')?;
    s.ws();
    let (key, escaped) = s.string()?;
    if escaped || key != "Records" {
        return None;
    }
    s.ws();
    s.eat(b':')?;
    s.ws();
    s.eat(b'[')?;
    s.ws();
    // Room for records of 1 KiB (CloudTrail's are 1–3 KiB): the list rarely grows.
    let mut out = Vec::with_capacity(text.len() / 1024 + 1);
    // Members of the last record (records of one file are alike): the next one's room.
    let mut room = 24;
    if !s.peek(b']') {
        loop {
            s.ws();
            out.push(s.record(&mut room)?);
            s.ws();
            if s.peek(b',') {
                s.i += 1;
            } else {
                break;
            }
        }
    }
    s.eat(b']')?;
    s.ws();
    s.eat(b'}')?;
    s.ws();
    (s.i == s.b.len()).then_some(out)
}

/// A member's value (its text, already checked to be valid JSON) as a borrowed tree, built
/// without serde_json; `None` when it has a `\u` escape (serde_json then builds it).
pub(crate) fn value(text: &str) -> Option<Value<'_>> {
    // Scalars (most members) straight from their text: a valid value that starts and ends
    // with a quote is one string, its text as written when it has no escapes.
    match text.as_bytes() {
        [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => {
            return text
                .get(1..text.len() - 1)
                .map(|t| Value::String(Cow::Borrowed(t)));
        }
        b"true" => return Some(Value::Bool(true)),
        b"false" => return Some(Value::Bool(false)),
        b"null" => return Some(Value::Null),
        _ => {}
    }
    let mut s = Scan {
        text,
        b: text.as_bytes(),
        i: 0,
    };
    s.ws();
    let v = s.build(1)?;
    s.ws();
    (s.i == s.b.len()).then_some(v)
}

/// One record as a whole text (a JSON line, a CloudWatch Logs event), split the same way;
/// `None` when the scanner is not sure (serde_json's path then decides).
pub(crate) fn record(text: &str) -> Option<Slot<'_>> {
    let mut s = Scan {
        text,
        b: text.as_bytes(),
        i: 0,
    };
    s.ws();
    let slot = s.record(&mut 24)?;
    s.ws();
    (s.i == s.b.len()).then_some(slot)
}

/// Appends a member, written straight into the vector's free room. Built in a temporary and
/// copied (what `push` compiles to here), each member cost store-forwarding stalls: 16-byte
/// copies reading what 8-byte stores had just written (perf put 43 % of `Scan::record`'s
/// samples on them; written in place, `Scan::record` takes about a fifth less, the whole
/// split about 3 % less).
#[inline(always)]
fn push_member<'a>(
    members: &mut Members<'a>,
    key: &'a str,
    raw: &'a str,
    value: OnceCell<Value<'a>>,
) {
    members.reserve(1);
    let len = members.len();
    match members.spare_capacity_mut().first_mut() {
        Some(slot) => {
            slot.write(Member {
                key: Cow::Borrowed(key),
                raw,
                value,
            });
            // SAFETY: the slot at `len` (within capacity) was written just above.
            unsafe { members.set_len(len + 1) };
        }
        // Not reached (`reserve` made room): pushed the plain way.
        None => members.push(Member {
            key: Cow::Borrowed(key),
            raw,
            value,
        }),
    }
}

/// [`push_member`] for a string member: its value (its text, when it has no escape) set in
/// the member's own place.
#[inline(always)]
fn push_string_member<'a>(
    members: &mut Members<'a>,
    key: &'a str,
    raw: &'a str,
    text: Option<&'a str>,
) {
    push_member(members, key, raw, OnceCell::new());
    if let (Some(text), Some(member)) = (text, members.last()) {
        let _ = member.value.set(Value::String(Cow::Borrowed(text)));
    }
}

/// Appends `item` to `items`, written straight into the vector's free room (see
/// [`push_member`]). Only for items that are constants or already in place: an item built by
/// the caller and passed in is copied through a temporary again (measured: `push_member` and
/// [`push_key`] through this function brought the stalls back), which is why those two
/// construct their item inside.
#[inline(always)]
fn push_in_place<T>(items: &mut Vec<T>, item: T) {
    items.reserve(1);
    let len = items.len();
    match items.spare_capacity_mut().first_mut() {
        Some(slot) => {
            slot.write(item);
            // SAFETY: the slot at `len` (within capacity) was written just above.
            unsafe { items.set_len(len + 1) };
        }
        // Not reached (`reserve` made room): pushed the plain way.
        None => items.push(item),
    }
}

/// Appends a member named `key` (its value `Null`, to be built in its place) to a built
/// object, written straight into the vector's free room (see [`push_member`]).
#[inline(always)]
fn push_key<'a>(members: &mut Vec<(Cow<'a, str>, Value<'a>)>, key: &'a str) {
    members.reserve(1);
    let len = members.len();
    match members.spare_capacity_mut().first_mut() {
        Some(slot) => {
            slot.write((Cow::Borrowed(key), Value::Null));
            // SAFETY: the slot at `len` (within capacity) was written just above.
            unsafe { members.set_len(len + 1) };
        }
        // Not reached (`reserve` made room): pushed the plain way.
        None => members.push((Cow::Borrowed(key), Value::Null)),
    }
}

/// A checked string's text (between its quotes, escapes other than `\u`) with its escapes
/// replaced.
#[cold]
fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(p) = rest.find('\\') {
        out.push_str(&rest[..p]);
        out.push(match rest.as_bytes().get(p + 1)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            _ => return None,
        });
        rest = rest.get(p + 2..)?;
    }
    out.push_str(rest);
    Some(out)
}

struct Scan<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn peek(&self, c: u8) -> bool {
        self.b.get(self.i) == Some(&c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        if self.peek(c) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    /// One record: an object's members, keys without escapes, values as their text;
    /// `userIdentity` (read for every record) built on the way. `room`: members to make room
    /// for (then the number this record had, plus a little).
    fn record(&mut self, room: &mut usize) -> Option<Slot<'a>> {
        self.eat(b'{')?;
        self.ws();
        let mut members: Members<'a> = Vec::with_capacity(*room);
        let mut built = false;
        // Where the known keys are (see `super::known_positions`), noted as keys are read.
        let mut known = [ABSENT; KNOWN_KEYS.len()];
        if !self.peek(b'}') {
            loop {
                self.ws();
                let (key, escaped) = self.string()?;
                if escaped {
                    return None;
                }
                if let Some(slot) = known_key(key).and_then(|n| known.get_mut(n))
                    && *slot == ABSENT
                {
                    // Past `ABSENT` members the positions are not kept (below).
                    *slot = u16::try_from(members.len()).unwrap_or(ABSENT);
                }
                self.ws();
                self.eat(b':')?;
                self.ws();
                let start = self.i;
                // Each kind of member written where it is known (one value, no merging of
                // values from the branches through a temporary).
                if key == "userIdentity" && !built && self.peek(b'{') {
                    match self.build(1) {
                        Some(v) => {
                            built = true;
                            let raw = self.text.get(start..self.i)?;
                            push_member(&mut members, key, raw, OnceCell::from(v));
                        }
                        None => {
                            // A `\u` escape: scanned only; serde_json builds it later.
                            self.i = start;
                            self.value(1)?;
                            let raw = self.text.get(start..self.i)?;
                            push_member(&mut members, key, raw, OnceCell::new());
                        }
                    }
                } else if self.peek(b'"') {
                    // A string (most members): its value is its text when it has no escape.
                    let (text, escaped) = self.string()?;
                    let raw = self.text.get(start..self.i)?;
                    let text = (!escaped).then_some(text);
                    push_string_member(&mut members, key, raw, text);
                } else {
                    self.value(1)?;
                    let raw = self.text.get(start..self.i)?;
                    push_member(&mut members, key, raw, OnceCell::new());
                }
                self.ws();
                if self.peek(b',') {
                    self.i += 1;
                } else {
                    break;
                }
            }
        }
        self.eat(b'}')?;
        *room = members.len() + 2;
        let known = (members.len() < usize::from(ABSENT)).then_some(known);
        Some(Slot::Object(members, known))
    }

    /// A string at the cursor: its text between the quotes and whether it has escapes.
    #[inline(always)]
    fn string(&mut self) -> Option<(&'a str, bool)> {
        let (start, escaped) = self.skip_string()?;
        // The quotes around it are ASCII: its ends are character boundaries.
        let text = self.text.get(start..self.i - 1)?;
        Some((text, escaped))
    }

    /// A string at the cursor, checked and passed: where its text starts and whether it has
    /// escapes (the cursor is after the closing quote).
    #[inline(always)]
    fn skip_string(&mut self) -> Option<(usize, bool)> {
        self.eat(b'"')?;
        let start = self.i;
        let mut escaped = false;
        loop {
            // To the next quote, backslash or control character (an error in JSON), eight
            // bytes at a time while none is in sight.
            self.i = special_from(self.b, self.i);
            match *self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some((start, escaped));
                }
                b'\\' => {}
                _ => return None,
            }
            match self.b.get(self.i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                    escaped = true;
                    self.i += 2;
                }
                // `\u`: left to serde_json (surrogate pairs).
                _ => return None,
            }
        }
    }

    /// Any value at the cursor, checked; `depth` counts the containers around it.
    fn value(&mut self, depth: usize) -> Option<()> {
        match *self.b.get(self.i)? {
            b'"' => self.skip_string().map(|_| ()),
            b'{' => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                self.i += 1;
                self.ws();
                if self.peek(b'}') {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    self.skip_string()?;
                    self.ws();
                    self.eat(b':')?;
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    match *self.b.get(self.i)? {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                self.i += 1;
                self.ws();
                if self.peek(b']') {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    match *self.b.get(self.i)? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// The value at the cursor as a tree (strings borrowed unless they have escapes).
    fn build(&mut self, depth: usize) -> Option<Value<'a>> {
        let mut v = Value::Null;
        self.build_into(depth, &mut v)?;
        Some(v)
    }

    /// [`Scan::build`] into `out`, the value's own place (`Null` on entry): strings, members
    /// and items are written where they are kept, never returned and moved (a moved value is
    /// copied with 16-byte loads of what narrower stores had just written: see
    /// [`push_member`]). On `None`, `out` may hold part of the value.
    fn build_into(&mut self, depth: usize, out: &mut Value<'a>) -> Option<()> {
        match *self.b.get(self.i)? {
            b'"' => {
                let (raw, escaped) = self.string()?;
                *out = if escaped {
                    Value::String(Cow::Owned(unescape(raw)?))
                } else {
                    Value::String(Cow::Borrowed(raw))
                };
            }
            b'{' => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                self.i += 1;
                // Most CloudTrail objects have a handful of members: one allocation.
                *out = Value::Object(Vec::with_capacity(8));
                let Value::Object(members) = out else {
                    return None;
                };
                self.ws();
                if self.peek(b'}') {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    let (key, escaped) = self.string()?;
                    if escaped {
                        members.push((Cow::Owned(unescape(key)?), Value::Null));
                    } else {
                        push_key(members, key);
                    }
                    self.ws();
                    self.eat(b':')?;
                    self.ws();
                    let (_, value) = members.last_mut()?;
                    self.build_into(depth + 1, value)?;
                    self.ws();
                    match *self.b.get(self.i)? {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                self.i += 1;
                *out = Value::Array(Vec::with_capacity(4));
                let Value::Array(items) = out else {
                    return None;
                };
                self.ws();
                if self.peek(b']') {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    push_in_place(items, Value::Null);
                    let item = items.last_mut()?;
                    self.build_into(depth + 1, item)?;
                    self.ws();
                    match *self.b.get(self.i)? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b't' => {
                self.literal(b"true")?;
                *out = Value::Bool(true);
            }
            b'f' => {
                self.literal(b"false")?;
                *out = Value::Bool(false);
            }
            b'n' => self.literal(b"null")?,
            _ => {
                let start = self.i;
                self.number()?;
                let text = self.text.get(start..self.i)?;
                // Small non-negative integers directly; any other number as serde_json
                // reads it (the same parser).
                let n = if text.len() <= 18 && text.bytes().all(|c| c.is_ascii_digit()) {
                    serde_json::Number::from(text.parse::<u64>().ok()?)
                } else {
                    serde_json::from_str::<serde_json::Number>(text).ok()?
                };
                *out = Value::Number(n);
            }
        }
        Some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b.get(self.i..)?.starts_with(word) {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Option<()> {
        if self.peek(b'-') {
            self.i += 1;
        }
        match *self.b.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek(b'.') {
            self.i += 1;
            if !self.b.get(self.i)?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !self.b.get(self.i)?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        Some(())
    }

    fn digits(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
    }
}

/// The index of the first quote, backslash or control character at or after `i` (the length
/// when there is none): sixteen bytes at a time with SSE2 (every x86-64 has it).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn special_from(b: &[u8], mut i: usize) -> usize {
    while let Some(block) = b.get(i..i + 16).and_then(|c| <&[u8; 16]>::try_from(c).ok()) {
        // SAFETY: SSE2 is part of the x86-64 baseline: every x86-64 CPU has it.
        let mask = unsafe { specials_sse2(block) };
        if mask != 0 {
            return i + mask.trailing_zeros() as usize;
        }
        i += 16;
    }
    special_in_tail(b, i)
}

/// Bit j: byte j of `block` is a quote, a backslash or a control character.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn specials_sse2(block: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set_epi64x,
        _mm_set1_epi8,
    };
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&block[at..at + 8]);
        i64::from_le_bytes(w)
    };
    let v = _mm_set_epi64x(word(8), word(0));
    let below_space = _mm_set1_epi8(0x1f);
    // A byte is a control character when max(byte, 0x1f) is 0x1f (unsigned).
    let hits = _mm_or_si128(
        _mm_or_si128(
            _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8)),
            _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8)),
        ),
        _mm_cmpeq_epi8(_mm_max_epu8(v, below_space), below_space),
    );
    _mm_movemask_epi8(hits) as u32
}

/// [`special_from`] in the last bytes of `b` (fewer than sixteen from `i`): the buffer's
/// last sixteen with the bytes before `i` ignored; a buffer shorter than that, by
/// [`special_from_swar`].
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn special_in_tail(b: &[u8], i: usize) -> usize {
    let last = b.len().checked_sub(16).and_then(|at| {
        let block = b.get(at..).and_then(|c| <&[u8; 16]>::try_from(c).ok())?;
        Some((at, block))
    });
    match last {
        Some((at, block)) if at < i && i <= b.len() => {
            // SAFETY: as in `special_from`.
            match unsafe { specials_sse2(block) } >> (i - at) {
                0 => b.len(),
                mask => i + mask.trailing_zeros() as usize,
            }
        }
        _ => special_from_swar(b, i),
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn special_from(b: &[u8], i: usize) -> usize {
    special_from_swar(b, i)
}

/// [`special_from`] eight bytes at a time in plain integers (on x86-64 only for buffers
/// shorter than sixteen bytes).
fn special_from_swar(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is zero: the classic SWAR test (exact for the lowest such byte).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let hits = zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')))
            // Bytes below 0x20: their top three bits are zero.
            | zero(x & (ONES * 0xe0));
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde_json's path makes of the same text.
    fn by_serde(text: &str) -> Option<Vec<Vec<(String, String)>>> {
        #[derive(serde::Deserialize)]
        struct Top<'a> {
            #[serde(borrow, rename = "Records")]
            records: Vec<Slot<'a>>,
        }
        let top: Top = serde_json::from_str(text).ok()?;
        Some(top.records.iter().map(flat).collect())
    }

    fn flat(s: &Slot<'_>) -> Vec<(String, String)> {
        match s {
            Slot::Object(m, _) => m
                .iter()
                .map(|m| (m.key.to_string(), m.raw.to_string()))
                .collect(),
            Slot::NotObject(t) => vec![("not".into(), t.to_string())],
        }
    }

    #[test]
    fn splits_records_like_serde_json() {
        let texts = [
            r#"{"Records":[]}"#,
            r#"{"Records":[{}]}"#,
            r#" { "Records" : [ { "a" : 1 , "b" : [ true , false , null ] } , {"c":{"d":"e\"\\\/\n"}} ] } "#,
            r#"{"Records":[{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","sessionContext":{"attributes":{"mfaAuthenticated":"false"}}},"n":-1.5e-3,"z":0,"big":123456789012345678901234,"empty":"","arr":[]}]}"#,
            r#"{"Records":[{"a":"é漢字"}]}"#,
            r#"{"Records":[{"plain":"x","escaped":"a\"b\\c\/d","n":1,"t":true}]}"#,
        ];
        for text in texts {
            let fast = records(text).unwrap_or_else(|| panic!("fast path refused {text}"));
            assert_eq!(
                Some(fast.iter().map(flat).collect()),
                by_serde(text),
                "{text}"
            );
            // Every member's text parses, to the value the event gives (some built while
            // splitting, the others on demand).
            for slot in fast {
                let ev = super::super::Event::from_slot(slot).unwrap();
                for (i, m) in ev.members.iter().enumerate() {
                    let theirs: serde_json::Value = serde_json::from_str(m.raw).unwrap();
                    assert_eq!(
                        ev.member_value(i).map(|v| v.to_json()),
                        Some(theirs),
                        "{text}"
                    );
                }
            }
        }
    }

    #[test]
    fn gives_up_on_what_it_is_not_sure_of() {
        for text in [
            // Not the Records shape, or more than it.
            r#"{"Records":[{"a":1}],"x":1}"#,
            r#"{"records":[]}"#,
            r#"[{"a":1}]"#,
            r#"{"Records":[null]}"#,
            // Escapes it leaves to serde_json.
            r#"{"Records":[{"a\"b":1}]}"#,
            r#"{"Records":[{"a":"\u00e9"}]}"#,
            // Malformed: serde_json reports these.
            r#"{"Records":[{"a":1,}]}"#,
            r#"{"Records":[{"a":01}]}"#,
            r#"{"Records":[{"a":1.}]}"#,
            r#"{"Records":[{"a":tru}]}"#,
            r#"{"Records":[{"a":"x
y"}]}"#,
            r#"{"Records":[{"a":"\x"}]}"#,
            r#"{"Records":[{"a":1}]"#,
            r#"{"Records":[{"a":1}]} x"#,
            r#"{"Records":[{"a" 1}]}"#,
            r#"{"Records":[{"a":[1 2]}]}"#,
        ] {
            assert!(records(text).is_none(), "{text}");
        }
        let deep = format!(
            r#"{{"Records":[{{"a":{}1{}}}]}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(records(&deep).is_none());
    }

    #[test]
    fn special_bytes_found_like_a_plain_scan() {
        let naive = |b: &[u8], i: usize| {
            (i..b.len())
                .find(|&j| matches!(b[j], b'"' | b'\\') || b[j] < 0x20)
                .unwrap_or(b.len())
        };
        let mut seed = 7u64;
        for _ in 0..2000 {
            let len = (seed % 70) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    match (seed >> 33) % 20 {
                        0 => b'"',
                        1 => b'\\',
                        2 => (seed >> 40) as u8 % 0x20,
                        3 => 0x80 | (seed >> 40) as u8,
                        _ => b'a' + (seed >> 40) as u8 % 26,
                    }
                })
                .collect();
            for start in 0..=bytes.len() {
                let expected = naive(&bytes, start);
                assert_eq!(special_from(&bytes, start), expected, "{bytes:?} {start}");
                assert_eq!(
                    special_from_swar(&bytes, start),
                    expected,
                    "{bytes:?} {start}"
                );
            }
        }
    }

    #[test]
    fn builds_values_like_serde_json() {
        for text in [
            r#"{"type":"AssumedRole","sessionContext":{"attributes":{"mfaAuthenticated":"false"},"sessionIssuer":{}},"n":[1,-2,3.5,1e3,-0,12345678901234567890123],"t":true,"f":false,"z":null}"#,
            r#""plain""#,
            r#""""#,
            r#"true"#,
            r#"false"#,
            r#"null"#,
            r#""a\"b\\c\/d\b\f\n\r\t""#,
            r#"[]"#,
            r#" { "a" : [ 1 , { } ] } "#,
            r#"0"#,
            r#"-7"#,
        ] {
            let ours = value(text).unwrap_or_else(|| panic!("refused {text}"));
            let theirs: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ours, theirs, "{text}");
            assert_eq!(ours.to_json(), theirs.to_json(), "{text}");
        }
        assert!(value(r#""\u00e9""#).is_none());
    }

    #[test]
    fn user_identity_built_while_splitting_is_the_parsed_one() {
        let record = r#"{"eventName":"X","userIdentity":{"type":"AssumedRole","arn":"a\"b","sessionContext":{"attributes":{"n":3}}},"z":1}"#;
        let text = format!(r#"{{"Records":[{record}]}}"#);
        let mut slots = records(&text).unwrap();
        // userIdentity and the plain string are built while splitting, the number later.
        assert!(matches!(&slots[0], Slot::Object(m, _)
            if m[0].value.get().is_some() && m[1].value.get().is_some() && m[2].value.get().is_none()));
        let fast = super::super::Event::from_slot(slots.remove(0)).unwrap();
        let parsed = super::super::Event::parse(record).unwrap();
        assert_eq!(fast.get("userIdentity"), parsed.get("userIdentity"));
        assert_eq!(fast.root(), parsed.root());
        // A \u escape inside: split, left for serde_json to build.
        let text = r#"{"Records":[{"userIdentity":{"arn":"\u0061"}}]}"#;
        assert!(records(text).is_none());
    }

    #[test]
    fn a_single_record_splits_like_serde_json() {
        let text = r#" {"eventName":"X","userIdentity":{"type":"Root"},"n":[1,2]} "#;
        let fast = record(text).unwrap();
        let theirs: Slot = serde_json::from_str(text).unwrap();
        assert_eq!(flat(&fast), flat(&theirs));
        for refused in [
            r#"[1]"#,
            r#"{"a":1} {"b":2}"#,
            r#"{"a":"\u0041"}"#,
            r#"{"a":1,}"#,
        ] {
            assert!(record(refused).is_none(), "{refused}");
        }
    }

    /// Any JSON value without `\u` escapes, compact or pretty-printed, is built exactly as
    /// serde_json builds it (strings with and without escapes, numbers of every form, nested
    /// objects and arrays). serde_json writes only the `\"`, `\\`, `\n` and `\t` escapes of
    /// these strings; the others are in `builds_values_like_serde_json`.
    #[test]
    fn builds_any_value_like_serde_json() {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            (-1e12f64..1e12).prop_map(serde_json::Value::from),
            "[a-zA-Z0-9 \"\\\\/\n\t\u{e9}\u{1f600}]{0,12}".prop_map(serde_json::Value::String),
        ];
        let json = leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                prop::collection::vec(("[a-z\"\\\\]{0,6}", inner), 0..6)
                    .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
            ]
        });
        proptest!(ProptestConfig::with_cases(2000), |(v in json)| {
            for text in [
                serde_json::to_string(&v).unwrap(),
                serde_json::to_string_pretty(&v).unwrap(),
            ] {
                let ours = value(&text);
                prop_assert!(ours.is_some(), "refused {}", text);
                let theirs: Value = serde_json::from_str(&text).unwrap();
                prop_assert_eq!(ours.unwrap(), theirs, "{}", text);
            }
        });
    }
}
