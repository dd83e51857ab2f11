//! The CloudTrail record as the engine sees it.
//!
//! A record is parsed once into a borrowed JSON tree ([`Value`]): strings that need no
//! unescaping point into the input buffer, so decoding an event allocates only the small
//! vectors that hold objects and arrays. Rules then look fields up by [`FieldPath`]; the hot
//! fields the engine itself needs (`eventTime`, `eventSource`, `eventName`, …) are plain
//! accessors on [`Event`].

pub(crate) mod decode;
pub(crate) mod identity;
mod split;
pub mod target;
mod value;

pub use decode::{DecodeError, gunzip};
pub(crate) use split::special_from as first_json_special;
pub use value::{Scalar, Value};

use serde_json::value::RawValue;
use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;

/// Errors from turning bytes into an [`Event`].
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("a CloudTrail record must be a JSON object, found {found}")]
    NotAnObject { found: &'static str },
}

/// A serde_json error as (line, column, message without the position serde_json appends).
pub fn json_error_parts(e: &serde_json::Error) -> (usize, usize, String) {
    let message = e.to_string();
    let message = match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message,
    };
    (e.line(), e.column(), message)
}

impl From<serde_json::Error> for RecordError {
    fn from(e: serde_json::Error) -> Self {
        let (line, column, message) = json_error_parts(&e);
        RecordError::Json {
            line,
            column,
            message,
        }
    }
}

/// Where a record without `eventTime` keeps its event time: logstash (and the exports made
/// with it) renames `eventTime` to `@timestamp`.
pub const FALLBACK_TIME_FIELD: &str = "@timestamp";

/// One CloudTrail record, borrowed from the buffer it was parsed from.
///
/// Parsing splits the record into its top-level members without building them; a member is
/// parsed (into a borrowed [`Value`]) the first time something asks for it, and kept. The
/// candidate index needs only `eventName` and `eventSource`, so most events never have their
/// large members (`requestParameters`, `responseElements`) built at all.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    members: Members<'a>,
    root: OnceCell<Value<'a>>,
    /// Where each of the [`KNOWN_KEYS`] is among `members`, noted by the scanner as it read the
    /// keys (by [`known_positions`] on serde_json's path); `None` for a record with more
    /// members than positions fit in.
    known: Known,
}

/// Where each of the [`KNOWN_KEYS`] first appears among a record's members ([`ABSENT`] when
/// it does not); `None` for a record with more members than positions fit in.
pub(crate) type Known = Option<[u16; KNOWN_KEYS.len()]>;

/// The top-level keys of CloudTrail records (and the logstash time field): their positions
/// are noted once per event, so looking one up (dozens of times per record, by the engine,
/// the baselines and the rules) does not compare it with every key of the record.
const KNOWN_KEYS: [&str; 29] = [
    "eventVersion",
    "userIdentity",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "errorCode",
    "errorMessage",
    "requestParameters",
    "responseElements",
    "additionalEventData",
    "requestID",
    "eventID",
    "readOnly",
    "resources",
    "eventType",
    "apiVersion",
    "managementEvent",
    "recipientAccountId",
    "sharedEventID",
    "vpcEndpointId",
    "vpcEndpointAccountId",
    "serviceEventDetails",
    "eventCategory",
    "sessionCredentialFromConsole",
    "tlsDetails",
    FALLBACK_TIME_FIELD,
];

/// A position not taken (the key is absent).
const ABSENT: u16 = u16::MAX;

/// The index of `key` in [`KNOWN_KEYS`] (inlined: with a literal key it folds to a constant).
#[inline(always)]
fn known_key(key: &str) -> Option<usize> {
    // A match on the whole key compiles to a switch on its length, then comparisons.
    Some(match key {
        "eventVersion" => 0,
        "userIdentity" => 1,
        "eventTime" => 2,
        "eventSource" => 3,
        "eventName" => 4,
        "awsRegion" => 5,
        "sourceIPAddress" => 6,
        "userAgent" => 7,
        "errorCode" => 8,
        "errorMessage" => 9,
        "requestParameters" => 10,
        "responseElements" => 11,
        "additionalEventData" => 12,
        "requestID" => 13,
        "eventID" => 14,
        "readOnly" => 15,
        "resources" => 16,
        "eventType" => 17,
        "apiVersion" => 18,
        "managementEvent" => 19,
        "recipientAccountId" => 20,
        "sharedEventID" => 21,
        "vpcEndpointId" => 22,
        "vpcEndpointAccountId" => 23,
        "serviceEventDetails" => 24,
        "eventCategory" => 25,
        "sessionCredentialFromConsole" => 26,
        "tlsDetails" => 27,
        FALLBACK_TIME_FIELD => 28,
        _ => return None,
    })
}

/// Where each known key first appears among `members` (for records split by serde_json; the
/// scanner notes them as it reads the keys).
fn known_positions(members: &Members<'_>) -> Known {
    if members.len() >= usize::from(ABSENT) {
        return None;
    }
    let mut at = [ABSENT; KNOWN_KEYS.len()];
    for (i, m) in members.iter().enumerate() {
        if let Some(slot) = known_key(&m.key).and_then(|n| at.get_mut(n))
            && *slot == ABSENT
        {
            // Fits: fewer members than ABSENT.
            *slot = i as u16;
        }
    }
    Some(at)
}

/// The top-level members of a JSON object, values left unparsed (their JSON text, already
/// checked to be valid) until asked for.
pub(crate) type Members<'a> = Vec<Member<'a>>;

/// A top-level member: its key, its value's JSON text, and the value once built (one
/// allocation per record holds all three).
#[derive(Debug, Clone)]
pub(crate) struct Member<'a> {
    key: Cow<'a, str>,
    raw: &'a str,
    value: OnceCell<Value<'a>>,
}

impl<'a> Member<'a> {
    pub(crate) fn new(key: Cow<'a, str>, raw: &'a str) -> Member<'a> {
        Member {
            key,
            raw,
            value: OnceCell::new(),
        }
    }
}

/// One element of a record list, split into members in the same pass that reads the list
/// (a `{"Records":[…]}` file is scanned once). Elements that are not objects are kept as
/// their type name, to be reported.
#[derive(Debug)]
pub(crate) enum Slot<'a> {
    /// An object (the scanner builds `userIdentity`, which every record has read, while
    /// splitting: its text is not scanned twice), with where its known keys are (noted while
    /// its keys are read, not in a second pass over the members).
    Object(Members<'a>, Known),
    NotObject(&'static str),
}

impl Slot<'_> {
    /// The element as JSON text again (rare paths only).
    pub fn to_json_text(&self) -> String {
        match self {
            Slot::Object(m, _) => {
                let map: serde_json::Map<String, serde_json::Value> = m
                    .iter()
                    .map(|m| {
                        (
                            m.key.to_string(),
                            serde_json::from_str(m.raw).unwrap_or(serde_json::Value::Null),
                        )
                    })
                    .collect();
                serde_json::Value::Object(map).to_string()
            }
            Slot::NotObject(_) => "null".into(),
        }
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Slot<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Slot<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a CloudTrail record")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).min(32));
                while let Some(value::BorrowedStr(k)) = map.next_key()? {
                    let v: &'a RawValue = map.next_value()?;
                    members.push(Member::new(k, v.get()));
                }
                let known = known_positions(&members);
                Ok(Slot::Object(members, known))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Slot::NotObject("array"))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Slot::NotObject("string"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Slot::NotObject("boolean"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Slot::NotObject("number"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Slot::NotObject("number"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Slot::NotObject("number"))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Slot::NotObject("null"))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<'a> Event<'a> {
    /// Parses one record (a JSON object) from `text`. The whole text is checked to be valid
    /// JSON; members are built later, on demand.
    pub fn parse(text: &'a str) -> Result<Self, RecordError> {
        // The scanner when it is sure of the text, else serde_json (and its error).
        match split::record(text) {
            Some(slot) => Self::from_slot(slot),
            None => Self::from_slot(serde_json::from_str(text)?),
        }
    }

    /// An event from an element already split (by [`Slot`]'s deserializer or the scanner).
    pub(crate) fn from_slot(slot: Slot<'a>) -> Result<Self, RecordError> {
        match slot {
            Slot::Object(members, known) => Ok(Event {
                known,
                members,
                root: OnceCell::new(),
            }),
            Slot::NotObject(found) => Err(RecordError::NotAnObject { found }),
        }
    }

    /// Top-level member `key` (the first one, if a record repeats a key).
    #[inline(always)]
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        let i = self.position(key)?;
        Some(self.member(i))
    }

    /// Where the first member named `key` is.
    #[inline(always)]
    fn position(&self, key: &str) -> Option<usize> {
        match (known_key(key), &self.known) {
            (Some(n), Some(known)) => known
                .get(n)
                .filter(|&&at| at != ABSENT)
                .map(|&at| usize::from(at)),
            _ => self.scan_for(key),
        }
    }

    /// [`Event::position`] of a key that is not known (or in a huge record): a scan.
    #[inline(never)]
    fn scan_for(&self, key: &str) -> Option<usize> {
        self.members.iter().position(|m| m.key == key)
    }

    fn member(&self, i: usize) -> &Value<'a> {
        let m = &self.members[i];
        m.value.get_or_init(|| {
            let raw: &'a str = m.raw;
            // The text was validated as JSON when the record was split; it parses (by the
            // scanner, or by serde_json when it has `\u` escapes).
            split::value(raw).unwrap_or_else(|| serde_json::from_str(raw).unwrap_or(Value::Null))
        })
    }

    /// How many top-level members the record has.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Top-level member `i`: its key, whether the key was written without escapes, and its
    /// value's JSON text as the record wrote it (not parsed).
    pub fn raw_member(&self, i: usize) -> Option<(&str, bool, &'a str)> {
        let m = self.members.get(i)?;
        Some((m.key.as_ref(), matches!(m.key, Cow::Borrowed(_)), m.raw))
    }

    /// Top-level member `i`, parsed (on first use).
    pub fn member_value(&self, i: usize) -> Option<&Value<'a>> {
        (i < self.members.len()).then(|| self.member(i))
    }

    /// Every top-level member (parsing those not yet parsed), in document order.
    pub fn members(&self) -> Vec<(&str, &Value<'a>)> {
        (0..self.members.len())
            .map(|i| (self.members[i].key.as_ref(), self.member(i)))
            .collect()
    }

    /// The whole record as one tree (built on first use; for output, not for matching).
    pub fn root(&self) -> &Value<'a> {
        self.root.get_or_init(|| {
            Value::Object(
                (0..self.members.len())
                    .map(|i| (self.members[i].key.clone(), self.member(i).clone()))
                    .collect(),
            )
        })
    }

    /// Visits every leaf of the record (keyword searches). Returns `true` as soon as `f` does.
    pub fn any_leaf(&self, f: &mut dyn FnMut(Scalar<'_>) -> bool) -> bool {
        (0..self.members.len()).any(|i| self.member(i).any_leaf(f))
    }

    /// A top-level string field, if present and a string.
    #[inline(always)]
    pub fn top_str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn event_source(&self) -> Option<&str> {
        self.top_str("eventSource")
    }
    pub fn event_name(&self) -> Option<&str> {
        self.top_str("eventName")
    }
    /// The record's event time as written: `eventTime`, or for a record without one (logstash
    /// exports rename it) the [`FALLBACK_TIME_FIELD`]. Every stage asks this one accessor, so a
    /// record has one event time everywhere: ordering, `--since`/`--until`, correlation and
    /// baseline windows, the finding's `time`. [`Event::event_time_field`] says which field.
    pub fn event_time(&self) -> Option<&str> {
        self.top_str("eventTime")
            .or_else(|| self.top_str(FALLBACK_TIME_FIELD))
    }
    /// The field [`Event::event_time`] came from: `eventTime` or [`FALLBACK_TIME_FIELD`].
    pub fn event_time_field(&self) -> Option<&'static str> {
        if self.top_str("eventTime").is_some() {
            Some("eventTime")
        } else if self.top_str(FALLBACK_TIME_FIELD).is_some() {
            Some(FALLBACK_TIME_FIELD)
        } else {
            None
        }
    }
    pub fn event_id(&self) -> Option<&str> {
        self.top_str("eventID")
    }
    pub fn aws_region(&self) -> Option<&str> {
        self.top_str("awsRegion")
    }
    pub fn recipient_account_id(&self) -> Option<&str> {
        self.top_str("recipientAccountId")
    }
    pub fn error_code(&self) -> Option<&str> {
        self.top_str("errorCode")
    }

    /// `userIdentity.<key>` as a string.
    pub fn identity_str(&self, key: &str) -> Option<&str> {
        match self.get("userIdentity")?.get(key)? {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Appends the first leaf value at `path` as text to `out` (nothing when missing): how
    /// group-by and suppression keys read a field.
    pub fn push_first_text(&self, path: &FieldPath, out: &mut String) {
        let start = out.len();
        self.any_at(path, &mut |v| {
            v.any_leaf(&mut |leaf| {
                leaf.with_text(|t| {
                    out.truncate(start);
                    out.push_str(t);
                })
                .is_some()
            })
        });
    }

    /// Calls `f` with every value the path reaches; a path that crosses an array visits every
    /// element. Stops early (and returns `true`) as soon as `f` returns `true`.
    pub fn any_at(&self, path: &FieldPath, f: &mut dyn FnMut(&Value<'a>) -> bool) -> bool {
        let Some((first, rest)) = path.segments.split_first() else {
            return false;
        };
        // The first segment's place among the known keys was found when the path was made.
        let at = match (path.known, &self.known) {
            (Some(n), Some(known)) => known
                .get(usize::from(n))
                .filter(|&&at| at != ABSENT)
                .map(|&at| usize::from(at)),
            _ => self.scan_for(first),
        };
        match at {
            Some(i) => self.member(i).any_at(rest, f),
            None => false,
        }
    }
}

/// A dotted field name from a rule (`userIdentity.sessionContext.sessionIssuer.type`),
/// split once at compile time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath {
    raw: Box<str>,
    segments: Box<[Box<str>]>,
    /// The first segment's index among the [`KNOWN_KEYS`], when it is one.
    known: Option<u8>,
}

impl FieldPath {
    pub fn new(raw: &str) -> Self {
        let segments: Box<[Box<str>]> = raw.split('.').map(Into::into).collect();
        let known = segments
            .first()
            .and_then(|s| known_key(s))
            .and_then(|n| u8::try_from(n).ok());
        FieldPath {
            raw: raw.into(),
            segments,
            known,
        }
    }
    pub fn as_str(&self) -> &str {
        &self.raw
    }
    pub fn segments(&self) -> &[Box<str>] {
        &self.segments
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_time_with_the_timestamp_fallback() {
        let ev = Event::parse(r#"{"eventTime":"2024-05-01T10:00:00Z","@timestamp":"x"}"#).unwrap();
        assert_eq!(ev.event_time(), Some("2024-05-01T10:00:00Z"));
        assert_eq!(ev.event_time_field(), Some("eventTime"));
        let ev = Event::parse(r#"{"@timestamp":"2024-05-01T10:00:00.000Z"}"#).unwrap();
        assert_eq!(ev.event_time(), Some("2024-05-01T10:00:00.000Z"));
        assert_eq!(ev.event_time_field(), Some("@timestamp"));
        let ev = Event::parse(r#"{"eventName":"A"}"#).unwrap();
        assert_eq!((ev.event_time(), ev.event_time_field()), (None, None));
    }

    #[test]
    fn known_keys_are_found_where_a_scan_finds_them() {
        for (n, key) in KNOWN_KEYS.iter().enumerate() {
            assert_eq!(known_key(key), Some(n), "{key}");
        }
        // Repeated keys (the first one counts), absent known keys, other keys; split by the
        // scanner, and by serde_json (the scanner leaves records with a `\u` escape to it).
        for text in [
            r#"{"eventName":"A","x":1,"eventName":"B","errorCode":"E","y":{"eventName":"C"}}"#,
            r#"{"x":"\u0041","eventName":"A","eventName":"B","errorCode":"E","y":{"eventName":"C"}}"#,
        ] {
            let ev = Event::parse(text).unwrap();
            assert!(ev.known.is_some());
            assert_eq!(ev.known, known_positions(&ev.members), "{text}");
            for key in KNOWN_KEYS
                .iter()
                .copied()
                .chain(["x", "y", "z", "EventName"])
            {
                assert_eq!(
                    ev.position(key),
                    ev.members.iter().position(|m| m.key == key),
                    "{key}"
                );
            }
            assert_eq!(ev.event_name(), Some("A"));
            assert_eq!(ev.error_code(), Some("E"));
            assert_eq!(ev.event_source(), None);
        }
        assert!(
            split::record(r#"{"x":"\u0041"}"#).is_none(),
            "the serde path was taken"
        );
        // A record with more members than positions fit in is scanned.
        let many: Vec<String> = (0..70_000).map(|i| format!(r#""k{i}":{i}"#)).collect();
        let text = format!(r#"{{{},"eventName":"Z"}}"#, many.join(","));
        let ev = Event::parse(&text).unwrap();
        assert!(ev.known.is_none());
        assert_eq!(ev.event_name(), Some("Z"));
    }

    #[test]
    fn parses_and_borrows_hot_fields() {
        let text = r#"{"eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging",
            "userIdentity":{"type":"Root","arn":"arn:aws:iam::1:root"},"eventTime":"2023-07-10T12:00:00Z"}"#;
        let ev = Event::parse(text).unwrap();
        assert_eq!(ev.event_name(), Some("StopLogging"));
        assert_eq!(ev.event_source(), Some("cloudtrail.amazonaws.com"));
        assert_eq!(ev.identity_str("type"), Some("Root"));
        assert_eq!(ev.error_code(), None);
    }

    #[test]
    fn path_crossing_array_visits_every_element() {
        let text = r#"{"resources":[{"ARN":"a"},{"ARN":"b"}]}"#;
        let ev = Event::parse(text).unwrap();
        let mut seen = Vec::new();
        ev.any_at(&FieldPath::new("resources.ARN"), &mut |v| {
            seen.push(v.scalar().and_then(|s| s.as_str().map(str::to_string)));
            false
        });
        assert_eq!(seen, vec![Some("a".to_string()), Some("b".to_string())]);
    }

    #[test]
    fn rejects_non_objects_and_reports_position() {
        assert!(matches!(
            Event::parse("[1,2]"),
            Err(RecordError::NotAnObject { found: "array" })
        ));
        match Event::parse("{\"a\":\n  tru}") {
            Err(RecordError::Json { line, .. }) => assert_eq!(line, 2),
            other => panic!("unexpected {other:?}"),
        }
    }
}
