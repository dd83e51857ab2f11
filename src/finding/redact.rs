//! Redaction: secret values in records (session tokens, passwords, keys) replaced by
//! [`REDACTED`] before anything is output; the key is kept so people see something was there.

use crate::event::{Event, Value, first_json_special};
use serde::Serialize;

/// Replaces secret values in findings; the key is kept so people see something was there.
pub const REDACTED: &str = "[REDACTED]";

/// Is the value under this key a secret? Keys are compared case-insensitively.
pub fn is_secret_key(key: &str) -> bool {
    is_secret_key_bytes(key.as_bytes())
}

/// [`is_secret_key`] on the key's bytes (UTF-8). This runs for every key of every record a
/// finding shows: compared in place, case-insensitively (no lower-cased copy), the exact
/// names by their length first.
fn is_secret_key_bytes(key: &[u8]) -> bool {
    let is = |name: &[u8]| key.eq_ignore_ascii_case(name);
    let exact = match key.len() {
        5 => is(b"token"),
        6 => is(b"apikey"),
        7 => is(b"idtoken"),
        9 => is(b"secretkey") || is(b"authtoken") || is(b"assertion") || is(b"plaintext"),
        10 => is(b"privatekey"),
        11 => is(b"accesstoken") || is(b"keymaterial"),
        12 => {
            is(b"sessiontoken")
                || is(b"refreshtoken")
                || is(b"clientsecret")
                || is(b"secretstring")
                || is(b"secretbinary")
                || is(b"samlresponse")
        }
        15 => is(b"secretaccesskey"),
        16 => is(b"webidentitytoken"),
        _ => false,
    };
    exact
        || ends_with_ignoring_case(key, b"secret")
        || ends_with_ignoring_case(key, b"_token")
        || names_a_password(key)
}

#[inline]
fn ends_with_ignoring_case(hay: &[u8], suffix: &[u8]) -> bool {
    hay.len() >= suffix.len() && hay[hay.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// Does `key` contain `password` or `passphrase`, ignoring ASCII case? Keys are short: one
/// scan for a `p`, then comparisons.
fn names_a_password(key: &[u8]) -> bool {
    // Only where eight bytes (`password`, the shorter) still fit.
    let starts = key.len().saturating_sub(7);
    key[..starts].iter().enumerate().any(|(i, &b)| {
        b | 0x20 == b'p' && {
            let rest = &key[i..];
            starts_with_ignoring_case(rest, b"password")
                || starts_with_ignoring_case(rest, b"passphrase")
        }
    })
}

#[inline]
fn starts_with_ignoring_case(hay: &[u8], prefix: &[u8]) -> bool {
    hay.len() >= prefix.len() && hay[..prefix.len()].eq_ignore_ascii_case(prefix)
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

/// A redacted record as JSON text, shared by the findings of one record. Always valid JSON:
/// made by [`redacted_json`] from a parsed record, or read back from a finding.
#[derive(Debug, Clone, PartialEq)]
pub struct RedactedRecord(std::sync::Arc<str>);

impl RedactedRecord {
    /// The JSON text.
    pub fn get(&self) -> &str {
        &self.0
    }
}

impl Serialize for RedactedRecord {
    /// Embedded as it is (checked again by `serde_json`; `write_json` of a finding copies it).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match serde_json::value::RawValue::from_string(self.0.to_string()) {
            Ok(raw) => raw.serialize(s),
            Err(e) => Err(serde::ser::Error::custom(e)),
        }
    }
}

impl<'de> serde::Deserialize<'de> for RedactedRecord {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RedactedRecord, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        Ok(RedactedRecord(raw.get().into()))
    }
}

/// The whole record, redacted, as JSON text: exactly what serialising its parsed members
/// with [`Redacted`] writes. A member whose text is already in that form (compact, integers,
/// no escapes serde_json writes differently, as CloudTrail writes records) is copied with its
/// secrets replaced, without being parsed; any other member is parsed and serialised.
pub fn redacted_json(ev: &Event<'_>) -> RedactedRecord {
    let n = ev.member_count();
    let size: usize = (0..n)
        .filter_map(|i| ev.raw_member(i))
        .map(|(k, _, raw)| k.len() + raw.len() + 4)
        .sum();
    let mut out: Vec<u8> = Vec::with_capacity(size + 2);
    out.push(b'{');
    for i in 0..n {
        let Some((key, plain_key, raw)) = ev.raw_member(i) else {
            continue;
        };
        if i > 0 {
            out.push(b',');
        }
        if plain_key {
            // Written without escapes: no quote, backslash or control character to escape.
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.push(b'"');
        } else if serde_json::to_writer(&mut out, key).is_err() {
            return null_raw();
        }
        out.push(b':');
        let secret = is_secret_key(key);
        if secret && raw.starts_with('"') && !raw.contains("\\u") {
            // A secret string (it parses: no `\u` escape to be a lone surrogate).
            out.extend_from_slice(QUOTED_REDACTED);
        } else if secret || !copy_redacted(raw.as_bytes(), &mut out) {
            // Anything else as the parsed member says (a member that does not parse is null).
            let Some(v) = ev.member_value(i) else {
                return null_raw();
            };
            let written = if secret && !matches!(v, Value::Null) {
                out.extend_from_slice(QUOTED_REDACTED);
                Ok(())
            } else {
                serde_json::to_writer(&mut out, &Redacted(v))
            };
            if written.is_err() {
                return null_raw();
            }
        }
    }
    out.push(b'}');
    // Valid UTF-8 and JSON: member texts the scanner (or serde_json) checked, joined, with
    // strings replaced by strings.
    match String::from_utf8(out) {
        Ok(text) => {
            debug_assert!(
                serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok(),
                "redaction wrote invalid JSON: {text}"
            );
            RedactedRecord(text.into())
        }
        Err(_) => null_raw(),
    }
}

/// `"[REDACTED]"` as JSON.
const QUOTED_REDACTED: &[u8] = b"\"[REDACTED]\"";

fn null_raw() -> RedactedRecord {
    RedactedRecord("null".into())
}

/// Appends `raw` (one valid JSON value) to `out` with every secret replaced, when the text is
/// already what serde_json writes for its parsed form: no whitespace between tokens, numbers
/// that are integers of at most 18 digits (other than `-0`), string escapes only among
/// `\" \\ \n \r \t \b \f`, keys without escapes. Otherwise leaves `out` as it was and
/// returns `false` (the caller serialises the parsed value).
fn copy_redacted(raw: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let fail = |out: &mut Vec<u8>| {
        out.truncate(start);
        false
    };
    let mut i = 0;
    let mut depth = 0usize;
    // Bytes before `copied` are in `out` already.
    let mut copied = 0;
    while let Some(&c) = raw.get(i) {
        match c {
            b'"' => {
                let text_start = i + 1;
                let Some((end, escaped)) = string_end(raw, text_start) else {
                    return fail(out);
                };
                i = end + 1;
                if raw.get(i) != Some(&b':') {
                    continue;
                }
                // A key: its value is replaced when it names a secret (and is not null).
                if escaped {
                    return fail(out);
                }
                let value = i + 1;
                if is_secret_key_bytes(&raw[text_start..end]) {
                    match raw.get(value) {
                        // null stays null.
                        Some(b'n') => i = value,
                        // A string is replaced (it parses: no `\u` escape in it).
                        Some(b'"') => {
                            let Some(after) = plain_string_end(raw, value + 1) else {
                                return fail(out);
                            };
                            out.extend_from_slice(&raw[copied..value]);
                            out.extend_from_slice(QUOTED_REDACTED);
                            copied = after;
                            i = after;
                        }
                        // Objects, arrays, numbers, whitespace: the parsed path decides.
                        _ => return fail(out),
                    }
                } else {
                    i = value;
                }
            }
            b'{' | b'[' => {
                // Deeper than serde_json would build: the parsed path decides (null).
                depth += 1;
                if depth > MAX_COPY_DEPTH {
                    return fail(out);
                }
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let digits_from = if c == b'-' { i + 1 } else { i };
                let mut j = digits_from;
                while raw.get(j).is_some_and(u8::is_ascii_digit) {
                    j += 1;
                }
                let digits = j - digits_from;
                let negative_zero = c == b'-' && &raw[digits_from..j] == b"0";
                if digits == 0
                    || digits > 18
                    || negative_zero
                    || matches!(raw.get(j), Some(b'.' | b'e' | b'E'))
                {
                    return fail(out);
                }
                i = j;
            }
            b' ' | b'\n' | b'\r' | b'\t' => return fail(out),
            _ => i += 1,
        }
    }
    out.extend_from_slice(&raw[copied..]);
    true
}

/// The index of the quote closing the string whose text starts at `from`, and whether the
/// text has escapes; `None` for an escape serde_json would write differently (or no end).
fn string_end(raw: &[u8], from: usize) -> Option<(usize, bool)> {
    let mut j = from;
    let mut escaped = false;
    loop {
        // To the next quote or backslash (a control character, invalid in a string, ends
        // the copy: the caller then serialises the parsed value).
        j = first_json_special(raw, j);
        match raw.get(j)? {
            b'"' => return Some((j, escaped)),
            b'\\' => {}
            _ => return None,
        }
        match raw.get(j + 1)? {
            b'"' | b'\\' | b'n' | b'r' | b't' | b'b' | b'f' => {
                escaped = true;
                j += 2;
            }
            _ => return None,
        }
    }
}

/// Nesting below which a member is copied (serde_json builds at most 128 levels).
const MAX_COPY_DEPTH: usize = 100;

/// The index just past the string whose text starts at `from` (escapes allowed, `\u` not).
fn plain_string_end(raw: &[u8], from: usize) -> Option<usize> {
    let mut j = from;
    loop {
        j = first_json_special(raw, j);
        match raw.get(j)? {
            b'"' => return Some(j + 1),
            b'\\' => {}
            _ => return None,
        }
        if raw.get(j + 1)? == &b'u' {
            return None;
        }
        j += 2;
    }
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

    /// The rule as first written: lower-case the key, then match it.
    fn secret_by_lowercasing(key: &str) -> bool {
        let k = key.to_ascii_lowercase();
        matches!(
            k.as_str(),
            "sessiontoken"
                | "secretaccesskey"
                | "secretkey"
                | "privatekey"
                | "token"
                | "accesstoken"
                | "refreshtoken"
                | "idtoken"
                | "authtoken"
                | "clientsecret"
                | "secretstring"
                | "secretbinary"
                | "apikey"
                | "samlresponse"
                | "assertion"
                | "webidentitytoken"
                | "keymaterial"
                | "plaintext"
        ) || k.ends_with("secret")
            || k.ends_with("_token")
            || k.contains("password")
            || k.contains("passphrase")
    }

    #[test]
    fn secret_key_check_agrees_with_lowercasing() {
        let names = [
            "sessionToken",
            "SecretAccessKey",
            "secretKey",
            "PRIVATEKEY",
            "token",
            "accessToken",
            "refreshToken",
            "idToken",
            "authToken",
            "clientSecret",
            "SecretString",
            "secretBinary",
            "apiKey",
            "SAMLResponse",
            "assertion",
            "WebIdentityToken",
            "keyMaterial",
            "plaintext",
            "password",
            "Passphrase",
            "x_token",
            "tokens",
            "tokenx",
            "oken",
            "",
            "p",
            "pass",
            "passwor",
            "userName",
            "bucketName",
            "x-amz-security-token",
            "dbPassword",
            "masterUserPassword",
            "PasswordPolicy",
            "newPassphraseHint",
            "secre",
            "ecret",
            "clientsecreT",
            "ünïcode_secret",
            "pässword",
            "_TOKEN",
            "Secret",
            "secrets",
        ];
        let affixes = ["", "a", "X_", "_", "pp", "ss"];
        for n in names {
            for pre in affixes {
                for post in affixes {
                    let k = format!("{pre}{n}{post}");
                    assert_eq!(is_secret_key(&k), secret_by_lowercasing(&k), "{k:?}");
                }
            }
        }
    }

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
    /// What serialising the parsed members writes: the reference for the copying fast path.
    fn parsed_then_serialised(ev: &Event<'_>) -> String {
        let mut out = String::from("{");
        for (n, (k, v)) in ev.members().into_iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::to_string(k).unwrap());
            out.push(':');
            if is_secret_key(k) && !matches!(v, Value::Null) {
                out.push_str(&serde_json::to_string(REDACTED).unwrap());
            } else {
                out.push_str(&serde_json::to_string(&Redacted(v)).unwrap());
            }
        }
        out.push('}');
        out
    }

    #[test]
    fn copied_record_is_what_serialising_the_parsed_one_writes() {
        let texts = [
            r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/a"},"eventTime":"2024-01-01T00:00:00Z","readOnly":false,"n":12,"neg":-7,"resources":[{"ARN":"x"},null,true]}"#,
            r#"{"responseElements":{"credentials":{"accessKeyId":"ASIA1","sessionToken":"IQo\"x\\y","expiration":1700000000000},"assumedRoleUser":{"arn":"a"}},"Token":{"a":[1,{"b":"}"}]},"password":null,"x":1}"#,
            r#"{"requestParameters":{"list":[{"clientSecret":[1,2]},{"apiKey":12,"y":"z"}],"passphrase":true,"k":"v"}}"#,
            r#"{"a": 1, "b" : [1, 2]}"#,
            r#"{"f":1.5,"e":1e3,"big":123456789012345678901,"mz":-0,"z":0}"#,
            r#"{"esc":"a\/b","u":"\u00e9\u0001","ok":"line\nnext\ttab\r\b\f"}"#,
            r#"{"k\u0065y":"v","sessionToken":"t","nested":{"we\nird":1}}"#,
            r#"{"uni":"é漢字","emptyObj":{},"emptyArr":[],"s":""}"#,
            r#"{"userAgent":"aws-cli/2 \"quoted\"","secretString":"{\"u\":\"p\"}"}"#,
            // Whitespace after a secret key's colon, secrets that are not strings, values
            // that do not parse (the member is null), escapes serde_json would rewrite.
            r#"{"requestParameters":{"token": null}}"#,
            r#"{"requestParameters":{"password": {"a":1}}}"#,
            r#"{"requestParameters":{"token": ["abc","s3cr3t"]}}"#,
            r#"{"requestParameters":{"password":{"a":1},"token":[1,"x"],"apiKey":7}}"#,
            r#"{"requestParameters":{"token":1e400}}"#,
            r#"{"token":1e400,"password":{"a":"b"},"secretKey":null,"apiKey":"\u0041"}"#,
            r#"{"r":{"secretString":"a\u0041","x":"\ud800"}}"#,
        ];
        for text in texts {
            let ev = Event::parse(text).unwrap();
            let expected = parsed_then_serialised(&ev);
            let fresh = Event::parse(text).unwrap();
            assert_eq!(redacted_json(&fresh).get(), expected, "{text}");
        }
        // Nested deeper than the copy goes, and deeper than serde_json builds (null).
        for depth in [110, 130] {
            let text = format!(
                r#"{{"a":{}1{},"b":"x"}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            );
            let ev = Event::parse(&text).unwrap();
            let expected = parsed_then_serialised(&ev);
            let fresh = Event::parse(&text).unwrap();
            assert_eq!(redacted_json(&fresh).get(), expected, "depth {depth}");
        }
        let ev = Event::parse(texts[1]).unwrap();
        let out = redacted_json(&ev);
        assert!(!out.get().contains("IQo"), "{}", out.get());
        assert!(out.get().contains(r#""Token":"[REDACTED]""#));
        assert!(out.get().contains(r#""password":null"#));
    }
    #[test]
    fn compact_members_are_copied_and_others_are_not() {
        let mut out = Vec::new();
        assert!(copy_redacted(
            br#"{"a":[1,-2,"x\"y"],"sessionToken":"IQo\"z","b":null,"token":null}"#,
            &mut out
        ));
        assert_eq!(
            out,
            br#"{"a":[1,-2,"x\"y"],"sessionToken":"[REDACTED]","b":null,"token":null}"#
        );
        for not_copied in [
            &br#"{"a": 1}"#[..],
            br#"1.5"#,
            br#""a\/b""#,
            br#""\u00e9""#,
            br#"-0"#,
            br#"{"token":{"t":1}}"#,
            br#"{"token": "x"}"#,
            br#"{"token":"\u0041"}"#,
        ] {
            let mut out = b"kept".to_vec();
            assert!(!copy_redacted(not_copied, &mut out));
            assert_eq!(out, b"kept");
        }
    }
}
