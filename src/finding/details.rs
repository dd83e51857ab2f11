//! The kind-specific `details` of a finding, typed: one struct per kind, plus what later
//! stages add to any finding (where the record was read). Serialised as
//! one JSON object with its keys in sorted order — the contract's form, unchanged.

use super::Kind;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// A single-event rule match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchDetails {
    /// The rule's file (`builtin:…` for built-in rules).
    pub rule_file: String,
    /// `eventType` of the record, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// `userIdentity.accountId` when it differs from `recipientAccountId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_account: Option<String>,
}

/// What a correlation counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// (Fields in the alphabetical order of their keys, as the contract writes them.)
pub struct CorrelationInfo {
    /// The count condition as written (`{gte: 10}`).
    pub condition: serde_json::Value,
    /// The count the condition judged (hits, distinct values or steps).
    pub count: u64,
    /// Group-by field → value.
    pub group: BTreeMap<String, String>,
    /// The referenced rules and correlations.
    pub rules: Vec<String>,
    pub timespan: String,
    /// The legacy rule this correlation was translated from, if any.
    pub translated_from: Option<String>,
    /// `event_count`, `value_count`, `temporal` or `temporal_ordered`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// The event-time window of a firing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub end: String,
    pub start: String,
}

/// A correlation that fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorrelationDetails {
    pub correlation: CorrelationInfo,
    pub window: Window,
    pub rule_file: String,
}

/// Start or end of an anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnomalyPhase {
    Start,
    End,
}

/// A value and how often it was seen (`(other)` sums the values left out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueCount {
    pub count: u64,
    pub value: String,
}

/// A usual event name and its share of the series' calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueShare {
    pub share: f64,
    pub value: String,
}

/// An anomalous series' usual rate at the hour it started.
/// (Fields here and below in the alphabetical order of their keys, as the contract writes them.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsualRate {
    pub average_per_minute: f64,
    pub days_of_history: u8,
    pub expected_in_window: f64,
    pub hour_of_day: i64,
    pub usual_names: Vec<ValueShare>,
}

/// What an anomaly observed: in its first window (start) or in all (end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    pub average_per_minute: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_window: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// The test that judged an anomaly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statistic {
    pub min_calls: u32,
    pub min_ratio: f64,
    pub p_value: f64,
    /// Observed over expected in the first window.
    pub ratio: f64,
    /// `poisson_upper_tail`.
    pub test: String,
    pub threshold: f64,
}

/// The top values behind an anomaly, per field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attributions {
    pub error_codes: Vec<ValueCount>,
    pub event_names: Vec<ValueCount>,
    pub regions: Vec<ValueCount>,
    pub sessions: Vec<ValueCount>,
    pub source_ips: Vec<ValueCount>,
    pub user_agents: Vec<ValueCount>,
}

/// A baseline anomaly's start or end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyDetails {
    pub phase: AnomalyPhase,
    /// `write_volume`, `error_rate` or `api_volume`.
    pub metric: String,
    /// The series key (principal, or account/region/API).
    pub series: String,
    pub window_minutes: u32,
    /// The series' usual rate (average, expected, history, usual names).
    pub baseline: UsualRate,
    /// What was observed.
    pub observed: Observed,
    /// The test that judged it (p-value, thresholds, ratio).
    pub statistic: Statistic,
    pub started_at: String,
    /// Top values of the calls behind it (names, agents, addresses, regions, errors, sessions).
    pub attributions: Attributions,
    /// Start only: a session behind the first hot call (`null` when there is none).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub session_sample: Option<Option<String>>,
    /// End only: when the series was back to normal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normal_since: Option<String>,
    /// End only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_minutes: Option<i64>,
    /// End only: `returned_to_normal`, `end_of_input`, ….
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
}

/// About the pipeline itself: a log group gone silent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthDetails {
    pub log_group: String,
    pub silent_for: String,
    pub last_event_received: String,
}

/// The kind-specific part of [`Details`]; its variant is the finding's [`Kind`].
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Match(MatchDetails),
    Correlation(Box<CorrelationDetails>),
    Anomaly(Box<AnomalyDetails>),
    Health(HealthDetails),
}

/// A finding's `details`.
#[derive(Debug, Clone, PartialEq)]
pub struct Details {
    pub body: Body,
    /// Where the record was read: `file: record N`, or the log group, stream and event.
    pub origin: Option<String>,
    /// The field the finding's `time` came from when the record had no `eventTime`
    /// (`@timestamp` in logstash exports); absent for ordinary records.
    pub time_field: Option<String>,
}

/// `Some(value)` for a key that is present, even when its value is `null`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl From<Body> for Details {
    fn from(body: Body) -> Details {
        Details {
            body,
            origin: None,
            time_field: None,
        }
    }
}

impl Body {
    pub fn kind(&self) -> Kind {
        match self {
            Body::Match(_) => Kind::Match,
            Body::Correlation(_) => Kind::Correlation,
            Body::Anomaly(_) => Kind::Anomaly,
            Body::Health(_) => Kind::Health,
        }
    }
}

impl Details {
    /// The JSON object of the contract: the kind's fields and the annotations, keys sorted.
    pub fn to_json(&self) -> serde_json::Value {
        let body = match &self.body {
            Body::Match(d) => serde_json::to_value(d),
            Body::Correlation(d) => serde_json::to_value(d),
            Body::Anomaly(d) => serde_json::to_value(d),
            Body::Health(d) => serde_json::to_value(d),
        };
        let mut map = match body {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        if let Some(o) = &self.origin {
            map.insert("origin".into(), o.clone().into());
        }
        if let Some(f) = &self.time_field {
            map.insert("time_field".into(), f.clone().into());
        }
        serde_json::Value::Object(map)
    }

    /// Reads the JSON object of a finding of `kind` back.
    pub fn from_json(kind: Kind, v: serde_json::Value) -> Result<Details, serde_json::Error> {
        let mut map = match v {
            serde_json::Value::Object(m) => m,
            other => serde_json::Map::from_iter([("".to_string(), other)]),
        };
        let text = |v: Option<serde_json::Value>| v.and_then(|v| v.as_str().map(str::to_string));
        let origin = text(map.remove("origin"));
        // Annotations of the suppression that incidents replaced (older outboxes).
        for old in ["suppressed", "update_of", "last_time"] {
            map.remove(old);
        }
        let time_field = text(map.remove("time_field"));
        let rest = serde_json::Value::Object(map);
        let body = match kind {
            Kind::Match => Body::Match(serde_json::from_value(rest)?),
            Kind::Correlation => Body::Correlation(Box::new(serde_json::from_value(rest)?)),
            Kind::Anomaly => Body::Anomaly(Box::new(serde_json::from_value(rest)?)),
            Kind::Health => Body::Health(serde_json::from_value(rest)?),
        };
        Ok(Details {
            body,
            origin,
            time_field,
        })
    }

    /// The correlation's group (field → value), for a correlation finding.
    pub fn group(&self) -> Option<&BTreeMap<String, String>> {
        match &self.body {
            Body::Correlation(c) => Some(&c.correlation.group),
            _ => None,
        }
    }
}

impl Details {
    /// A match's keys and values in sorted key order (absent ones `None`, left out of the
    /// JSON); `None` for other kinds. One list for both ways a match is written.
    pub(crate) fn match_entries(&self) -> Option<[(&'static str, Option<&str>); 5]> {
        let Body::Match(m) = &self.body else {
            return None;
        };
        Some([
            ("event_type", m.event_type.as_deref()),
            ("identity_account", m.identity_account.as_deref()),
            ("origin", self.origin.as_deref()),
            ("rule_file", Some(m.rule_file.as_str())),
            ("time_field", self.time_field.as_deref()),
        ])
    }
}

/// Keys in sorted order whatever serde_json's map keeps (its `preserve_order` feature may be
/// on in a build that links a crate enabling it).
impl Serialize for Details {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // A match (most findings): its keys written in sorted order directly, without a JSON
        // tree in between.
        if let Some(entries) = self.match_entries() {
            use serde::ser::SerializeMap;
            let mut map = s.serialize_map(None)?;
            for (k, v) in entries {
                if let Some(v) = v {
                    map.serialize_entry(k, v)?;
                }
            }
            return map.end();
        }
        let sorted: BTreeMap<String, serde_json::Value> = match self.to_json() {
            serde_json::Value::Object(m) => m.into_iter().collect(),
            _ => BTreeMap::new(),
        };
        sorted.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct serialisation of a match writes what the JSON tree did: keys sorted, absent
    /// fields left out.
    #[test]
    fn match_details_serialise_like_their_json_tree() {
        let some = |s: &str| Some(s.to_string());
        for (event_type, identity_account, origin, time_field) in [
            (None, None, None, None),
            (some("AwsApiCall"), None, some("f.json.gz: record 3"), None),
            (
                some("AwsConsoleSignIn"),
                some("999"),
                some("o\"x"),
                some("@timestamp"),
            ),
        ] {
            let d = Details {
                body: Body::Match(MatchDetails {
                    rule_file: "builtin:x.yml".into(),
                    event_type,
                    identity_account,
                }),
                origin,
                time_field,
            };
            let tree: BTreeMap<String, serde_json::Value> = match d.to_json() {
                serde_json::Value::Object(m) => m.into_iter().collect(),
                _ => BTreeMap::new(),
            };
            assert_eq!(
                serde_json::to_string(&d).unwrap(),
                serde_json::to_string(&tree).unwrap()
            );
        }
    }
}
