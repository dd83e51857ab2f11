//! The CloudTrail record as the engine sees it.
//!
//! A record is parsed once into a borrowed JSON tree ([`Value`]): strings that need no
//! unescaping point into the input buffer, so decoding an event allocates only the small
//! vectors that hold objects and arrays. Rules then look fields up by [`FieldPath`]; the hot
//! fields the engine itself needs (`eventTime`, `eventSource`, `eventName`, …) are plain
//! accessors on [`Event`].

mod value;

pub use value::{Scalar, Value};

use std::fmt;

/// Errors from turning bytes into an [`Event`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("a CloudTrail record must be a JSON object, found {found}")]
    NotAnObject { found: &'static str },
}

impl From<serde_json::Error> for DecodeError {
    fn from(e: serde_json::Error) -> Self {
        let message = e.to_string();
        // serde_json appends " at line L column C"; the position is carried separately.
        let message = match message.rfind(" at line ") {
            Some(i) => message[..i].to_string(),
            None => message,
        };
        DecodeError::Json {
            line: e.line(),
            column: e.column(),
            message,
        }
    }
}

/// One CloudTrail record, borrowed from the buffer it was parsed from.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    root: Value<'a>,
}

impl<'a> Event<'a> {
    /// Parses one record (a JSON object) from `text`.
    pub fn parse(text: &'a str) -> Result<Self, DecodeError> {
        let root: Value<'a> = serde_json::from_str(text)?;
        Self::from_value(root)
    }

    /// Wraps an already parsed JSON value, which must be an object.
    pub fn from_value(root: Value<'a>) -> Result<Self, DecodeError> {
        match root {
            Value::Object(_) => Ok(Event { root }),
            other => Err(DecodeError::NotAnObject {
                found: other.kind(),
            }),
        }
    }

    /// The whole record.
    pub fn root(&self) -> &Value<'a> {
        &self.root
    }

    /// A top-level string field, if present and a string.
    pub fn top_str(&self, key: &str) -> Option<&str> {
        match self.root.get(key)? {
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
    pub fn event_time(&self) -> Option<&str> {
        self.top_str("eventTime")
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
        match self.root.get("userIdentity")?.get(key)? {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Calls `f` with every value the path reaches; a path that crosses an array visits every
    /// element. Stops early (and returns `true`) as soon as `f` returns `true`.
    pub fn any_at(&self, path: &FieldPath, f: &mut dyn FnMut(&Value<'a>) -> bool) -> bool {
        self.root.any_at(&path.segments, f)
    }
}

/// A dotted field name from a rule (`userIdentity.sessionContext.sessionIssuer.type`),
/// split once at compile time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath {
    raw: Box<str>,
    segments: Box<[Box<str>]>,
}

impl FieldPath {
    pub fn new(raw: &str) -> Self {
        FieldPath {
            raw: raw.into(),
            segments: raw.split('.').map(Into::into).collect(),
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
            Err(DecodeError::NotAnObject { found: "array" })
        ));
        match Event::parse("{\"a\":\n  tru}") {
            Err(DecodeError::Json { line, .. }) => assert_eq!(line, 2),
            other => panic!("unexpected {other:?}"),
        }
    }
}
