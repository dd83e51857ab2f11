//! The finding: what trailwatch reports, with a stable id, redacted event and a summary a
//! human can act on. Its JSON form is the public contract (keys are added, never renamed).

mod details;
mod json;
mod redact;

pub use details::{
    AnomalyDetails, AnomalyPhase, Attributions, Body, CorrelationDetails, CorrelationInfo, Details,
    HealthDetails, MatchDetails, Observed, Statistic, UsualRate, ValueCount, ValueShare, Window,
};
pub use redact::{REDACTED, Redacted, RedactedRecord, is_secret_key, redact, redacted_json};

use crate::event::Event;
use crate::event::identity::principal;
use crate::rules::{Level, Rule, RuleMeta};
use crate::util::ids::StableId;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

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

/// The rule a finding is about, as the finding names it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleRef {
    pub id: String,
    pub title: String,
    pub level: Level,
    pub tags: Vec<String>,
}

impl RuleRef {
    pub fn of(meta: &RuleMeta) -> RuleRef {
        RuleRef {
            id: meta.id.clone(),
            title: meta.title.clone(),
            level: meta.level,
            tags: meta.tags.clone(),
        }
    }
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

/// What trailwatch reports. Built with [`Finding::new`] and the `with_*` steps; its JSON
/// form (keys in the order below, `kind` derived from the details) is the public contract.
#[derive(Debug, Clone)]
pub struct Finding {
    pub id: String,
    /// Groups findings that belong together; equals `id` when the finding stands alone.
    pub incident: String,
    /// Shared by every finding of the rule (made once per rule where findings are many).
    pub rule: std::sync::Arc<RuleRef>,
    /// Event time (RFC 3339) of the (last) triggering event, as the record wrote it.
    pub time: Option<String>,
    pub principal: String,
    pub account: Option<String>,
    pub region: Option<String>,
    /// Event ids behind the finding, bounded ([`IdSample`]).
    pub event_ids: Vec<String>,
    /// The true number of events behind the finding.
    pub event_count: u64,
    pub summary: String,
    pub details: Details,
    /// The redacted record, serialised once when the finding is made (shared by the findings
    /// of one record).
    pub event: Option<RedactedRecord>,
    /// `time` in milliseconds, for ordering and suppression (not serialised).
    pub time_ms: Option<crate::util::time::Millis>,
    /// The suppression key (values of the rule's `suppress.by` fields), when it has one (not
    /// serialised).
    pub suppress_key: Option<String>,
}

impl Finding {
    /// A finding of `rule` with id `id` (and incident `id`); the `with_*` steps fill the rest.
    pub fn new(id: String, rule: impl Into<std::sync::Arc<RuleRef>>, body: Body) -> Finding {
        Finding {
            incident: id.clone(),
            id,
            rule: rule.into(),
            time: None,
            principal: String::new(),
            account: None,
            region: None,
            event_ids: Vec::new(),
            event_count: 0,
            summary: String::new(),
            details: body.into(),
            event: None,
            time_ms: None,
            suppress_key: None,
        }
    }

    /// Asks for the finding's texts and most of its record to be fetched into the
    /// cache (see [`crate::util::prefetch`]): the thread writing findings out reads what
    /// workers made long before.
    pub fn prefetch(&self) {
        use crate::util::prefetch::{read, read_bytes};
        read(self.id.as_ptr());
        read(self.incident.as_ptr());
        read(self.principal.as_ptr());
        read(self.summary.as_ptr());
        if let Some(t) = &self.time {
            read(t.as_ptr());
        }
        if let Some(e) = &self.event {
            // Records are 1-3 KiB: most of one (the hardware's own prefetch follows the copy).
            read_bytes(e.get().as_ptr(), e.get().len(), 32);
        }
    }

    /// Part of incident `incident` (an anomaly's start and end share one).
    pub fn with_incident(mut self, incident: String) -> Finding {
        self.incident = incident;
        self
    }

    /// At event time `time` (as written), `time_ms` in milliseconds.
    pub fn with_time(
        mut self,
        time: Option<String>,
        time_ms: Option<crate::util::time::Millis>,
    ) -> Finding {
        self.time = time;
        self.time_ms = time_ms;
        self
    }

    /// Who acted and where.
    pub fn with_who(
        mut self,
        principal: String,
        account: Option<String>,
        region: Option<String>,
    ) -> Finding {
        self.principal = principal;
        self.account = account;
        self.region = region;
        self
    }

    /// The events behind it: a bounded sample of ids and their true number.
    pub fn with_events(mut self, event_ids: Vec<String>, event_count: u64) -> Finding {
        self.event_ids = event_ids;
        self.event_count = event_count;
        self
    }

    pub fn with_summary(mut self, summary: String) -> Finding {
        self.summary = summary;
        self
    }

    /// The redacted triggering record.
    pub fn with_event(mut self, event: RedactedRecord) -> Finding {
        self.event = Some(event);
        self
    }

    /// Keyed for suppression.
    pub fn with_suppress_key(mut self, key: String) -> Finding {
        self.suppress_key = Some(key);
        self
    }

    pub fn kind(&self) -> Kind {
        self.details.body.kind()
    }
}

/// The contract's field order.
#[derive(Serialize)]
struct FindingOut<'a> {
    id: &'a str,
    incident: &'a str,
    kind: Kind,
    rule: &'a RuleRef,
    time: &'a Option<String>,
    principal: &'a str,
    account: &'a Option<String>,
    region: &'a Option<String>,
    event_ids: &'a [String],
    event_count: u64,
    summary: &'a str,
    details: &'a Details,
    event: &'a Option<RedactedRecord>,
}

#[derive(Deserialize)]
struct FindingIn {
    id: String,
    incident: String,
    kind: Kind,
    rule: RuleRef,
    time: Option<String>,
    principal: String,
    account: Option<String>,
    region: Option<String>,
    event_ids: Vec<String>,
    event_count: u64,
    summary: String,
    details: serde_json::Value,
    event: Option<RedactedRecord>,
}

impl Serialize for Finding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        FindingOut {
            id: &self.id,
            incident: &self.incident,
            kind: self.kind(),
            rule: &self.rule,
            time: &self.time,
            principal: &self.principal,
            account: &self.account,
            region: &self.region,
            event_ids: &self.event_ids,
            event_count: self.event_count,
            summary: &self.summary,
            details: &self.details,
            event: &self.event,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Finding {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Finding, D::Error> {
        let f = FindingIn::deserialize(d)?;
        let details = Details::from_json(f.kind, f.details).map_err(serde::de::Error::custom)?;
        Ok(Finding {
            id: f.id,
            incident: f.incident,
            rule: std::sync::Arc::new(f.rule),
            time: f.time,
            principal: f.principal,
            account: f.account,
            region: f.region,
            event_ids: f.event_ids,
            event_count: f.event_count,
            summary: f.summary,
            details,
            event: f.event,
            time_ms: None,
            suppress_key: None,
        })
    }
}

/// One plain sentence: who did what, where, and whether it failed.
pub fn summary(rule: &Rule, ev: &Event<'_>, who: &str) -> String {
    // Built in one buffer (this runs for every finding of a backtest).
    let mut s = String::with_capacity(rule.meta.title.len() + who.len() + 128);
    for part in [rule.meta.title.as_str(), ": ", who, " "] {
        s.push_str(part);
    }
    match (ev.event_name(), ev.event_source()) {
        (Some(n), source) => {
            s.push_str("called ");
            s.push_str(n);
            if let Some(src) = source {
                for part in [" (", src, ")"] {
                    s.push_str(part);
                }
            }
        }
        _ => match ev.top_str("eventType") {
            Some(t) => {
                for part in ["produced a ", t, " record"] {
                    s.push_str(part);
                }
            }
            None => s.push_str("produced a record"),
        },
    }
    let tail = [
        (" in ", ev.aws_region()),
        (", account ", ev.recipient_account_id()),
        (", from ", ev.top_str("sourceIPAddress")),
        (" — failed with ", ev.error_code()),
    ];
    for (label, value) in tail {
        if let Some(v) = value {
            s.push_str(label);
            s.push_str(v);
        }
    }
    s.push('.');
    s
}

/// What the findings of one record share: its principal and its redacted JSON, made once
/// however many rules match it.
#[derive(Default)]
pub struct RecordParts {
    who: Option<String>,
    event: Option<RedactedRecord>,
}

impl Finding {
    /// The finding for one rule match.
    pub fn from_match(rule: &Rule, ev: &Event<'_>) -> Finding {
        Finding::from_match_sharing(rule, ev, &mut RecordParts::default())
    }

    /// [`Finding::from_match`] for one of several rules matching the same record: `parts`
    /// keeps what they share.
    pub fn from_match_sharing(rule: &Rule, ev: &Event<'_>, parts: &mut RecordParts) -> Finding {
        Finding::from_match_with(
            rule,
            std::sync::Arc::new(RuleRef::of(&rule.meta)),
            ev,
            parts,
        )
    }

    /// [`Finding::from_match_sharing`] with the rule's [`RuleRef`] made once by the caller.
    pub fn from_match_with(
        rule: &Rule,
        rule_ref: std::sync::Arc<RuleRef>,
        ev: &Event<'_>,
        parts: &mut RecordParts,
    ) -> Finding {
        let who = parts.who.get_or_insert_with(|| principal(ev)).clone();
        let event_id = ev.event_id().map(str::to_string);
        // eventID is the primary key of real records; time and name are added because test
        // and hand-made data reuse ids. Without an eventID, the content identifies the record.
        // The id of ["match", rule id, basis]; the basis hashed piece by piece.
        let id = StableId::new().part("match").part(&rule.meta.id);
        let id = match &event_id {
            Some(event_id) => id
                .text(event_id)
                .text("|")
                .text(ev.event_time().unwrap_or(""))
                .text("|")
                .text(ev.event_name().unwrap_or("")),
            None => id.text(&serde_json::to_string(ev.root()).unwrap_or_default()),
        };
        let id = id.end_part().finish();
        let account = ev.recipient_account_id().map(str::to_string);
        let identity_account = match (&account, ev.identity_str("accountId")) {
            (Some(acct), Some(own)) if acct != own => Some(own.to_string()),
            _ => None,
        };
        let body = Body::Match(MatchDetails {
            rule_file: rule.source.file.clone(),
            event_type: ev.top_str("eventType").map(str::to_string),
            identity_account,
        });
        let time = ev.event_time();
        let mut f = Finding::new(id, rule_ref, body)
            .with_time(
                time.map(str::to_string),
                time.and_then(crate::util::time::parse_event_time),
            )
            .with_summary(summary(rule, ev, &who))
            .with_who(who, account, ev.aws_region().map(str::to_string))
            .with_events(event_id.into_iter().collect(), 1)
            .with_event(parts.event.get_or_insert_with(|| redacted_json(ev)).clone());
        // A time not from `eventTime` says where it came from.
        f.details.time_field = ev
            .event_time_field()
            .filter(|&field| field != "eventTime")
            .map(str::to_string);
        f
    }
}
