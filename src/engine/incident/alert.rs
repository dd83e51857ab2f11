//! An alert: what a person receives about an incident (`new`, `update`, `close`), and its JSON
//! body — finding-shaped (`id`, `incident`, `kind`, `rule`, `time`, `principal`, `account`,
//! `region`, `event_ids`, `event_count`, `summary`, `details`) so subscribers of findings keep
//! working, plus `alert`, `level`, `first_seen`, `last_seen` and the grouped `findings`.

use crate::finding::{Details, Finding, Kind, RuleRef};
use crate::rules::Level;
use crate::util::text::count;
use crate::util::time::{Millis, format_millis};
use serde::{Deserialize, Serialize};

/// Which alert of an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// The first alert of an incident, sent at once.
    New,
    /// More findings joined (sent at most every few minutes, at once on escalation).
    Update,
    /// The dedup window has passed: the incident's summary.
    Close,
}

impl AlertKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertKind::New => "new",
            AlertKind::Update => "update",
            AlertKind::Close => "close",
        }
    }
}

/// A finding carried by an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertMember {
    pub id: String,
    pub rule: MemberRule,
    pub level: Level,
    pub kind: Kind,
    pub time: Option<String>,
    pub event_ids: Vec<String>,
    pub summary: String,
}

/// The rule of a carried finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRule {
    pub id: String,
    pub title: String,
}

impl AlertMember {
    pub(crate) fn of(f: &Finding) -> AlertMember {
        AlertMember {
            id: f.id.clone(),
            rule: MemberRule {
                id: f.rule.id.clone(),
                title: f.rule.title.clone(),
            },
            level: f.rule.level,
            kind: f.kind(),
            time: f.time.clone(),
            event_ids: f.event_ids.clone(),
            summary: f.summary.clone(),
        }
    }
}

/// One alert about an incident.
#[derive(Debug, Clone)]
pub struct Alert {
    /// Stable: the incident and the alert's number in it.
    pub id: String,
    pub kind: AlertKind,
    pub incident: String,
    /// Event time the alert was decided at.
    pub time: Millis,
    /// The incident's level: the highest of its findings.
    pub level: Level,
    /// The incident's first lead finding, which the body is shaped after.
    pub lead: Finding,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    /// Findings and events in the incident so far.
    pub incident_findings: u64,
    pub incident_events: u64,
    /// A bounded sample of the incident's event ids.
    pub event_ids: Vec<String>,
    /// The findings that joined since the previous alert (all of them for `new`).
    pub findings: Vec<AlertMember>,
    /// Calls, addresses, agents and targets across the incident so far.
    pub involved: super::Involved,
}

impl Alert {
    /// One sentence a person can act on.
    pub fn summary(&self) -> String {
        let lead = &self.lead;
        match self.kind {
            AlertKind::New => {
                let others: Vec<&str> = self
                    .findings
                    .iter()
                    .filter(|m| m.id != lead.id)
                    .map(|m| m.rule.title.as_str())
                    .collect();
                if others.is_empty() {
                    lead.summary.clone()
                } else {
                    format!("{} Also: {}.", lead.summary, others.join("; "))
                }
            }
            AlertKind::Update => format!(
                "Update of incident {}: {} more since the last alert, {} in all ({}) since {}. {}",
                short(&self.incident),
                count(self.findings.len() as u64, "finding"),
                self.incident_findings,
                count(self.incident_events, "event"),
                self.first_seen.as_deref().unwrap_or("-"),
                lead.summary
            ),
            AlertKind::Close => format!(
                "Closed: {} — {}, {} from {} to {}.",
                lead.rule.title,
                count(self.incident_findings, "finding"),
                count(self.incident_events, "event"),
                self.first_seen.as_deref().unwrap_or("-"),
                self.last_seen.as_deref().unwrap_or("-")
            ),
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

#[derive(Serialize)]
struct AlertOut<'a> {
    id: &'a str,
    incident: &'a str,
    kind: Kind,
    rule: &'a RuleRef,
    time: String,
    principal: &'a str,
    account: &'a Option<String>,
    region: &'a Option<String>,
    event_ids: &'a [String],
    event_count: u64,
    summary: String,
    details: &'a Details,
    alert: AlertKind,
    level: Level,
    first_seen: &'a Option<String>,
    last_seen: &'a Option<String>,
    finding_count: u64,
    findings: &'a [AlertMember],
    involved: &'a super::Involved,
    /// The lead finding's redacted record (in the first alert), for the e-mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a crate::finding::RedactedRecord>,
}

impl Serialize for Alert {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let lead = &self.lead;
        let time = match (self.kind, &lead.time) {
            (AlertKind::New, Some(t)) => t.clone(),
            _ => format_millis(self.time),
        };
        AlertOut {
            id: &self.id,
            incident: &self.incident,
            kind: lead.kind(),
            rule: &lead.rule,
            time,
            principal: &lead.principal,
            account: &lead.account,
            region: &lead.region,
            event_ids: &self.event_ids,
            event_count: self.incident_events,
            summary: self.summary(),
            details: &lead.details,
            alert: self.kind,
            level: self.level,
            first_seen: &self.first_seen,
            last_seen: &self.last_seen,
            finding_count: self.incident_findings,
            findings: &self.findings,
            involved: &self.involved,
            event: match self.kind {
                AlertKind::New => lead.event.as_ref(),
                _ => None,
            },
        }
        .serialize(s)
    }
}
