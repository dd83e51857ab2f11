//! A finding or an alert as a message reads it: typed, from its JSON form in the outbox.
//!
//! Lenient on purpose: a field that is missing or of another shape (an outbox written by an
//! older version, a hand-made finding) is left empty, so a message always goes out; each
//! field is still read by its one name here, not by string paths across the renderer.

use crate::engine::{AlertKind, AlertMember, Involved};
use crate::finding::{Details, Kind};
use crate::rules::Level;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The rule a notice is about.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(default)]
pub(crate) struct NoticeRule {
    pub id: String,
    pub title: String,
    pub level: Option<Level>,
}

/// What an alert adds to the finding-shaped part.
#[derive(Debug, Clone)]
pub(crate) struct AlertPart {
    pub kind: AlertKind,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    /// Findings in the incident so far.
    pub finding_count: u64,
    /// The findings this alert carries.
    pub findings: Vec<AlertMember>,
    pub involved: Involved,
}

/// A finding or an alert, read back for rendering.
#[derive(Debug, Clone, Default)]
pub(crate) struct Notice {
    pub id: String,
    pub incident: String,
    pub rule: NoticeRule,
    /// The alert's (incident's) level, else the rule's.
    pub level: Option<Level>,
    pub time: Option<String>,
    pub principal: String,
    pub account: Option<String>,
    pub region: Option<String>,
    pub event_ids: Vec<String>,
    pub event_count: u64,
    pub summary: String,
    pub details: Option<Details>,
    /// The redacted record (attacker-controlled: read by field, cleaned before output).
    pub event: Option<Value>,
    pub alert: Option<AlertPart>,
}

fn field<T: DeserializeOwned + Default>(v: &Value, key: &str) -> T {
    v.get(key)
        .and_then(|x| T::deserialize(x).ok())
        .unwrap_or_default()
}

impl Notice {
    pub(crate) fn read(v: &Value) -> Notice {
        let kind: Option<Kind> = field(v, "kind");
        let rule: NoticeRule = field(v, "rule");
        let details = match (kind, v.get("details")) {
            (Some(k), Some(d)) => Details::from_json(k, d.clone()).ok(),
            _ => None,
        };
        let alert = field::<Option<AlertKind>>(v, "alert").map(|kind| AlertPart {
            kind,
            first_seen: field(v, "first_seen"),
            last_seen: field(v, "last_seen"),
            finding_count: field(v, "finding_count"),
            findings: v
                .get("findings")
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|m| AlertMember::deserialize(m).ok())
                        .collect()
                })
                .unwrap_or_default(),
            involved: field(v, "involved"),
        });
        let level = field::<Option<Level>>(v, "level").or(rule.level);
        Notice {
            id: field(v, "id"),
            incident: field(v, "incident"),
            level,
            time: field(v, "time"),
            principal: field(v, "principal"),
            account: field(v, "account"),
            region: field(v, "region"),
            event_ids: field(v, "event_ids"),
            event_count: field::<Option<u64>>(v, "event_count").unwrap_or(1),
            summary: field(v, "summary"),
            details,
            event: v.get("event").filter(|e| e.is_object()).cloned(),
            alert,
            rule,
        }
    }

    /// `HIGH`, `CRITICAL` (`UNKNOWN` when the notice names no level).
    pub(crate) fn level_text(&self) -> String {
        self.level
            .map_or("unknown", |l| l.as_str())
            .to_ascii_uppercase()
    }

    /// A string field of the record.
    pub(crate) fn event_str(&self, key: &str) -> Option<&str> {
        self.event.as_ref()?.get(key)?.as_str()
    }

    /// A string at a JSON pointer into the record.
    pub(crate) fn event_at(&self, pointer: &str) -> Option<&str> {
        self.event.as_ref()?.pointer(pointer)?.as_str()
    }

    /// Distinct event ids behind the findings an alert carries.
    pub(crate) fn carried_events(&self) -> usize {
        let Some(a) = &self.alert else {
            return 0;
        };
        let mut ids: Vec<&str> = a
            .findings
            .iter()
            .flat_map(|m| m.event_ids.iter().map(String::as_str))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }
}
