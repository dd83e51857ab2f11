//! The finding: what trailwatch reports, with a stable id, redacted event and a summary a
//! human can act on. Its JSON form is the public contract (keys are added, never renamed).

use crate::event::identity::principal;
use crate::event::{Event, Value};
use crate::rules::{Level, Rule};
use crate::util::ids::stable_id;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Replaces secret values in findings; the key is kept so people see something was there.
pub const REDACTED: &str = "[REDACTED]";

/// Is the value under this key a secret? Keys are compared case-insensitively.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
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
    EXACT.contains(&k.as_str())
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

/// Event ids kept at each end of a finding's sample.
pub const ID_SAMPLE: usize = 50;

/// A bounded sample of event ids: the first and the last [`ID_SAMPLE`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct IdSample {
    first: Vec<String>,
    last: VecDeque<String>,
}

impl IdSample {
    pub fn push(&mut self, id: String) {
        if self.first.len() < ID_SAMPLE {
            self.first.push(id);
        } else {
            if self.last.len() == ID_SAMPLE {
                self.last.pop_front();
            }
            self.last.push_back(id);
        }
    }
    pub fn extend(&mut self, ids: impl IntoIterator<Item = String>) {
        for id in ids {
            self.push(id);
        }
    }
    pub fn to_vec(&self) -> Vec<String> {
        self.first.iter().chain(self.last.iter()).cloned().collect()
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RuleRef {
    pub id: String,
    pub title: String,
    pub level: Level,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Match,
    Correlation,
    Anomaly,
    /// About the pipeline itself (a log group gone silent).
    Health,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Finding {
    pub id: String,
    pub incident: String,
    pub kind: Kind,
    pub rule: RuleRef,
    pub time: Option<String>,
    pub principal: String,
    pub account: Option<String>,
    pub region: Option<String>,
    pub event_ids: Vec<String>,
    pub event_count: u64,
    pub summary: String,
    pub details: serde_json::Value,
    /// The redacted record, serialised once when the finding is made.
    pub event: Option<Box<serde_json::value::RawValue>>,
    /// `time` in milliseconds, for ordering and suppression.
    #[serde(skip)]
    pub time_ms: Option<crate::util::time::Millis>,
    /// The suppression key (values of the rule's `suppress.by` fields), when it has one.
    #[serde(skip)]
    pub suppress_key: Option<String>,
}

/// One plain sentence: who did what, where, and whether it failed.
pub fn summary(rule: &Rule, ev: &Event<'_>, who: &str) -> String {
    let action = match (ev.event_name(), ev.event_source()) {
        (Some(n), Some(s)) => format!("called {n} ({s})"),
        (Some(n), None) => format!("called {n}"),
        _ => match ev.top_str("eventType") {
            Some(t) => format!("produced a {t} record"),
            None => "produced a record".into(),
        },
    };
    let mut s = format!("{}: {who} {action}", rule.meta.title);
    if let Some(r) = ev.aws_region() {
        s.push_str(&format!(" in {r}"));
    }
    if let Some(a) = ev.recipient_account_id() {
        s.push_str(&format!(", account {a}"));
    }
    if let Some(ip) = ev.top_str("sourceIPAddress") {
        s.push_str(&format!(", from {ip}"));
    }
    if let Some(e) = ev.error_code() {
        s.push_str(&format!(" — failed with {e}"));
    }
    s.push('.');
    s
}

impl Finding {
    /// The finding for one rule match.
    pub fn from_match(rule: &Rule, ev: &Event<'_>) -> Finding {
        let who = principal(ev);
        let event_id = ev.event_id().map(str::to_string);
        // eventID is the primary key of real records; time and name are added because test
        // and hand-made data reuse ids. Without an eventID, the content identifies the record.
        let basis = match &event_id {
            Some(id) => format!(
                "{id}|{}|{}",
                ev.event_time().unwrap_or(""),
                ev.event_name().unwrap_or("")
            ),
            None => serde_json::to_string(ev.root()).unwrap_or_default(),
        };
        let id = stable_id(&["match", &rule.meta.id, &basis]);
        let mut details = serde_json::Map::new();
        details.insert("rule_file".into(), rule.source.file.clone().into());
        if let Some(t) = ev.top_str("eventType") {
            details.insert("event_type".into(), t.into());
        }
        let account = ev.recipient_account_id().map(str::to_string);
        if let (Some(acct), Some(own)) = (&account, ev.identity_str("accountId"))
            && acct != own
        {
            details.insert("identity_account".into(), own.into());
        }
        Finding {
            incident: id.clone(),
            id,
            kind: Kind::Match,
            rule: RuleRef {
                id: rule.meta.id.clone(),
                title: rule.meta.title.clone(),
                level: rule.meta.level,
                tags: rule.meta.tags.clone(),
            },
            time: ev.event_time().map(str::to_string),
            summary: summary(rule, ev, &who),
            principal: who,
            account,
            region: ev.aws_region().map(str::to_string),
            event_ids: event_id.into_iter().collect(),
            event_count: 1,
            details: serde_json::Value::Object(details),
            event: Some(redacted_json(ev)),
            time_ms: ev
                .event_time()
                .and_then(crate::util::time::parse_event_time),
            suppress_key: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
