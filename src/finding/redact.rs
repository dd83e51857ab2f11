//! Redaction: secret values in records (session tokens, passwords, keys) replaced by
//! [`REDACTED`] before anything is output; the key is kept so people see something was there.

use crate::event::{Event, Value};
use serde::Serialize;

/// Replaces secret values in findings; the key is kept so people see something was there.
pub const REDACTED: &str = "[REDACTED]";

/// Is the value under this key a secret? Keys are compared case-insensitively.
pub fn is_secret_key(key: &str) -> bool {
    // Lower-cased on the stack: this runs for every key of every record a finding shows.
    let mut buf = [0u8; 64];
    let Some(dst) = buf.get_mut(..key.len()) else {
        return secret_lowercase(&key.to_ascii_lowercase());
    };
    dst.copy_from_slice(key.as_bytes());
    dst.make_ascii_lowercase();
    // ASCII lower-casing keeps UTF-8 valid.
    std::str::from_utf8(dst).is_ok_and(secret_lowercase)
}

fn secret_lowercase(k: &str) -> bool {
    const EXACT: &[&str] = &[
        "sessiontoken",
        "secretaccesskey",
        "secretkey",
        "privatekey",
        "token",
        "accesstoken",
        "refreshtoken",
        "idtoken",
        "authtoken",
        "clientsecret",
        "secretstring",
        "secretbinary",
        "apikey",
        "samlresponse",
        "assertion",
        "webidentitytoken",
        "keymaterial",
        "plaintext",
    ];
    EXACT.contains(&k)
        || k.contains("password")
        || k.contains("passphrase")
        || k.ends_with("secret")
        || k.ends_with("_token")
}

/// Serialises a value with every secret replaced by [`REDACTED`], straight from the borrowed
/// tree (no intermediate copy).
pub struct Redacted<'v, 'a>(pub &'v Value<'a>);

impl Serialize for Redacted<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Object(members) => {
                let mut map = s.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    if is_secret_key(k) && !matches!(v, Value::Null) {
                        map.serialize_entry(k.as_ref(), REDACTED)?;
                    } else {
                        map.serialize_entry(k.as_ref(), &Redacted(v))?;
                    }
                }
                map.end()
            }
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(&Redacted(v))?;
                }
                seq.end()
            }
            other => other.serialize(s),
        }
    }
}

/// The whole record, redacted, as JSON text (members serialised as they are parsed).
pub fn redacted_json(ev: &Event<'_>) -> Box<serde_json::value::RawValue> {
    struct Whole<'e, 'a>(&'e Event<'a>);
    impl Serialize for Whole<'_, '_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let members = self.0.members();
            let mut map = s.serialize_map(Some(members.len()))?;
            for (k, v) in members {
                if is_secret_key(k) && !matches!(v, Value::Null) {
                    map.serialize_entry(k, REDACTED)?;
                } else {
                    map.serialize_entry(k, &Redacted(v))?;
                }
            }
            map.end()
        }
    }
    let text = serde_json::to_string(&Whole(ev)).unwrap_or_else(|_| "null".into());
    serde_json::value::RawValue::from_string(text).unwrap_or_else(|_| {
        serde_json::value::RawValue::from_string("null".into()).unwrap_or_default()
    })
}

/// A copy of `v` as JSON with every secret value replaced by [`REDACTED`].
pub fn redact(v: &Value<'_>) -> serde_json::Value {
    match v {
        Value::Object(members) => serde_json::Value::Object(
            members
                .iter()
                .map(|(k, val)| {
                    let out = if is_secret_key(k) && !matches!(val, Value::Null) {
                        serde_json::Value::String(REDACTED.into())
                    } else {
                        redact(val)
                    };
                    (k.to_string(), out)
                })
                .collect(),
        ),
        Value::Array(items) => serde_json::Value::Array(items.iter().map(redact).collect()),
        other => other.to_json(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_whatever_their_case_and_length() {
        for k in [
            "SessionToken",
            "DB_PASSWORD",
            "clientSecret",
            "x_token",
            "PlainText",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        let long = format!("{}Password", "a".repeat(80));
        assert!(is_secret_key(&long));
        for k in [
            "accessKeyId",
            "userName",
            "tokenType",
            "",
            &"b".repeat(100),
            "ÄSecretX",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
        assert!(is_secret_key("ÄSecret"));
    }

    #[test]
    fn redacts_secrets_and_keeps_keys() {
        let text = r#"{"responseElements":{"credentials":{"accessKeyId":"ASIA1","sessionToken":"IQo","secretAccessKey":"abc"}},
            "requestParameters":{"masterUserPassword":"hunter2","userName":"bob","clientSecret":null}}"#;
        let ev = Event::parse(text).unwrap();
        let red = redact(ev.root());
        assert_eq!(
            red["responseElements"]["credentials"]["sessionToken"],
            REDACTED
        );
        assert_eq!(
            red["responseElements"]["credentials"]["secretAccessKey"],
            REDACTED
        );
        assert_eq!(
            red["responseElements"]["credentials"]["accessKeyId"],
            "ASIA1"
        );
        assert_eq!(red["requestParameters"]["masterUserPassword"], REDACTED);
        assert_eq!(red["requestParameters"]["userName"], "bob");
        assert!(red["requestParameters"]["clientSecret"].is_null());
        assert!(!red.to_string().contains("hunter2"));
    }
}
