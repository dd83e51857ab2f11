//! A borrowed JSON tree: strings point into the input where JSON needs no unescaping.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Number;
use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// A JSON value whose strings borrow from the parsed text when they can.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    /// Keys in document order; lookups scan linearly (CloudTrail objects are small).
    Object(Vec<(Cow<'a, str>, Value<'a>)>),
}

/// A leaf of the tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'v> {
    Null,
    Bool(bool),
    Number(&'v Number),
    Str(&'v str),
}

impl<'v> Scalar<'v> {
    /// The string itself, for string leaves only.
    pub fn as_str(&self) -> Option<&'v str> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Calls `f` with the leaf's string form (`true`, `42`, `1.5`, the string itself); `None`
    /// for null. Numbers are formatted into a stack buffer: no allocation.
    pub fn with_text<R>(&self, f: impl FnOnce(&str) -> R) -> Option<R> {
        match self {
            Scalar::Null => None,
            Scalar::Bool(true) => Some(f("true")),
            Scalar::Bool(false) => Some(f("false")),
            Scalar::Str(s) => Some(f(s)),
            Scalar::Number(n) => {
                let mut buf = StackStr::new();
                if write!(buf, "{n}").is_ok() {
                    Some(f(buf.as_str()))
                } else {
                    // Longer than any number serde_json prints; fall back to the heap.
                    Some(f(&n.to_string()))
                }
            }
        }
    }

    /// The leaf as a number: JSON numbers, and strings that parse as one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::Number(n) => n.as_f64(),
            Scalar::Str(s) => s.trim().parse::<f64>().ok().filter(|v| v.is_finite()),
            _ => None,
        }
    }
}

/// Fixed-capacity string for formatting numbers without allocating.
struct StackStr {
    buf: [u8; 48],
    len: usize,
}

impl StackStr {
    fn new() -> Self {
        StackStr {
            buf: [0; 48],
            len: 0,
        }
    }
    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever copied in, so the bytes are valid UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl<'a> Value<'a> {
    /// The JSON type name, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// Member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// This value as a leaf, if it is one.
    pub fn scalar(&self) -> Option<Scalar<'_>> {
        Some(match self {
            Value::Null => Scalar::Null,
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Number(n) => Scalar::Number(n),
            Value::String(s) => Scalar::Str(s),
            Value::Array(_) | Value::Object(_) => return None,
        })
    }

    /// Visits the values reached by following `segments`; arrays met on the way (or at the
    /// end) are crossed, visiting every element. Returns `true` as soon as `f` does.
    pub fn any_at(&self, segments: &[Box<str>], f: &mut dyn FnMut(&Value<'a>) -> bool) -> bool {
        match self {
            Value::Array(items) => items.iter().any(|v| v.any_at(segments, f)),
            _ => match segments.split_first() {
                None => f(self),
                Some((first, rest)) => match self.get(first) {
                    Some(v) => v.any_at(rest, f),
                    None => false,
                },
            },
        }
    }

    /// Visits every leaf below (and including) this value, flattening arrays and objects.
    /// Returns `true` as soon as `f` does.
    pub fn any_leaf(&self, f: &mut dyn FnMut(Scalar<'_>) -> bool) -> bool {
        match self {
            Value::Array(items) => items.iter().any(|v| v.any_leaf(f)),
            Value::Object(members) => members.iter().any(|(_, v)| v.any_leaf(f)),
            leaf => match leaf.scalar() {
                Some(s) => f(s),
                None => false,
            },
        }
    }

    /// Converts to an owned `serde_json::Value` (for output, never on the hot path).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => serde_json::Value::Number(n.clone()),
            Value::String(s) => serde_json::Value::String(s.to_string()),
            Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Object(members) => serde_json::Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A string that borrows from the input when it contains no escapes.
pub(crate) struct BorrowedStr<'a>(pub(crate) Cow<'a, str>);

impl<'de> Deserialize<'de> for BorrowedStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BorrowedStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Value::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Value::Number(v.into()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Value::Number(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Number::from_f64(v)
                    .map(Value::Number)
                    .ok_or_else(|| E::custom("number is not finite"))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Value::String(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Value::String(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Value::String(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(v) = seq.next_element()? {
                    items.push(v);
                }
                Ok(Value::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some(BorrowedStr(k)) = map.next_key()? {
                    let v: Value<'de> = map.next_value()?;
                    members.push((k, v));
                }
                Ok(Value::Object(members))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(n) => n.serialize(s),
            Value::String(v) => s.serialize_str(v),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Object(members) => {
                let mut map = s.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    map.serialize_entry(k.as_ref(), v)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let text = r#"{"a":"plain","b":"esc\"aped"}"#;
        let v: Value = serde_json::from_str(text).unwrap();
        assert!(matches!(
            v.get("a"),
            Some(Value::String(Cow::Borrowed("plain")))
        ));
        assert!(matches!(v.get("b"), Some(Value::String(Cow::Owned(_)))));
    }

    #[test]
    fn scalar_text_forms() {
        let v: Value = serde_json::from_str(r#"[true, 42, -1, 1.5, "x", null]"#).unwrap();
        let Value::Array(items) = v else { panic!() };
        let texts: Vec<Option<String>> = items
            .iter()
            .map(|v| v.scalar().unwrap().with_text(str::to_string))
            .collect();
        assert_eq!(
            texts,
            vec![
                Some("true".into()),
                Some("42".into()),
                Some("-1".into()),
                Some("1.5".into()),
                Some("x".into()),
                None
            ]
        );
    }

    #[test]
    fn round_trips_through_serialize() {
        let text = r#"{"a":[1,{"b":null}],"c":"d\n"}"#;
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), text);
    }
}
