//! Incidents: the unit of alerting. Findings stay per rule; this stage groups them into
//! incidents and decides which *alerts* a person receives, in event time, deterministically:
//!
//! - every finding of one CloudTrail event goes into one alert, led by the highest level among
//!   them; the others (compliance mappings, lower-level rules) ride along as its `findings`;
//! - repeats of the lead rule for the same principal (the dedup key; a rule's `suppress:` sets
//!   its own: its `by` fields instead of the principal, its `for` as the window) within the
//!   dedup window (default 60 min of event time from the incident's first finding) join the
//!   open incident:
//!   the first alert (`new`) goes out at once, later findings are folded into `update`s sent at
//!   most every `update_every` (default 15 min) as event time passes, and a `close` summary
//!   goes out when the window has passed, if anything joined after the first alert (it carries
//!   what still waited);
//! - a repeat at a higher level than the incident's is sent at once (an `update` carrying the
//!   escalation);
//! - correlation and anomaly findings for a principal join that principal's most recent open
//!   incident (sent at once when high or critical, or above the incident's level);
//! - incidents below `min_level` (default medium) are kept but not alerted; they are alerted
//!   (as `new`) the moment a finding raises them to `min_level`.
//!
//! Time is the engine's watermark (event time minus the allowed lateness), so a backtest and
//! the live service produce the same alerts for the same events.

mod alert;
mod involved;

pub use alert::{Alert, AlertKind, AlertMember};
pub use involved::{Involved, Tally};

use crate::finding::{Finding, IdSample, Kind};
use crate::rules::Level;
use crate::util::ids::stable_id;
use crate::util::time::Millis;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

/// Version of [`Incidents::snapshot`].
const SNAPSHOT_VERSION: u32 = 1;

/// The persisted form of the alert stage.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    open: Vec<Incident>,
    stats: AlertStats,
}

/// A saved alert-stage state that cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum IncidentStateError {
    #[error("incident state is not readable: {0}")]
    Corrupt(String),
    #[error("incident state has version {0}; this trailwatch reads version {SNAPSHOT_VERSION}")]
    Version(u32),
}

/// Default dedup window (event time from an incident's first finding).
pub const DEFAULT_WINDOW: Millis = 60 * 60_000;
/// Default minimum time between two updates of one incident.
pub const DEFAULT_UPDATE_EVERY: Millis = 15 * 60_000;

/// How findings become alerts.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    /// Repeats within this much event time of an incident's first finding join it.
    pub window: Millis,
    /// Updates of one incident go out at most this often.
    pub update_every: Millis,
    /// Incidents below this level are not alerted (their findings stay in reports).
    pub min_level: Level,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            window: DEFAULT_WINDOW,
            update_every: DEFAULT_UPDATE_EVERY,
            min_level: Level::Medium,
        }
    }
}

/// Counters of the alert stage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertStats {
    pub incidents: u64,
    pub new: u64,
    pub updates: u64,
    pub closes: u64,
    /// Incidents that stayed below the minimum level (never alerted).
    pub below_min_level: u64,
}

impl AlertStats {
    /// Every alert sent.
    pub fn alerts(&self) -> u64 {
        self.new + self.updates + self.closes
    }
}

/// One open incident.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Incident {
    id: String,
    key: (String, String),
    /// The finding the incident's alerts are shaped after (the first lead).
    lead: Finding,
    level: Level,
    principal: String,
    opened: Millis,
    closes_at: Millis,
    first_seen: Option<String>,
    last_seen: Option<String>,
    last_seen_ms: Millis,
    /// Findings and events in the incident so far.
    findings: u64,
    events: u64,
    ids: IdSample,
    /// Findings that joined since the last alert.
    pending: Vec<AlertMember>,
    /// Calls, addresses, agents and targets of the incident's events so far.
    #[serde(default)]
    involved: Involved,
    /// An alert of this incident went out (`new`).
    alerted: bool,
    /// When the last alert went out (event time).
    last_alert: Millis,
    /// Alerts sent so far (numbers the alert ids).
    seq: u32,
    /// Findings the first alert carried.
    first_size: u64,
    /// When the next update is due (findings wait since the last alert); rebuilt on restore.
    #[serde(skip)]
    scheduled: Option<Millis>,
}

/// The alert stage: findings in (in event-time order, as the pipeline releases them), alerts
/// out.
#[derive(Debug, Default)]
pub struct Incidents {
    settings: AlertSettings,
    open: BTreeMap<String, Incident>,
    /// Dedup key → open incident id.
    by_key: HashMap<(String, String), String>,
    /// Principal → its most recently opened incident still open.
    by_principal: HashMap<String, String>,
    /// Per rule or correlation id: its own dedup window (from its `suppress:`).
    rule_windows: HashMap<String, Millis>,
    /// (close time, id) of open incidents, earliest first.
    closes: BinaryHeap<Reverse<(Millis, String)>>,
    /// (due time, id) of scheduled updates, earliest first; an entry whose incident no longer
    /// has that due time is stale and skipped.
    updates: BinaryHeap<Reverse<(Millis, String)>>,
    pub stats: AlertStats,
}

impl Incidents {
    pub fn new(settings: AlertSettings) -> Incidents {
        Incidents {
            settings,
            ..Incidents::default()
        }
    }

    /// Rules (by id) with their own dedup window; their findings' suppression key (the
    /// values of their `suppress.by` fields) replaces the principal in the dedup key.
    pub fn with_rule_windows(mut self, windows: HashMap<String, Millis>) -> Incidents {
        self.rule_windows = windows;
        self
    }

    /// Takes the findings the pipeline released together (`batch`), sets each finding's
    /// `incident`, and appends the alerts due to `out`.
    pub fn offer(&mut self, batch: &mut [Finding], now: Option<Millis>, out: &mut Vec<Alert>) {
        let mut start = 0;
        while start < batch.len() {
            // Findings of one event (match findings with the same first event id and time).
            let mut end = start + 1;
            while end < batch.len() && same_event(&batch[start], &batch[end]) {
                end += 1;
            }
            self.offer_event(&mut batch[start..end], now, out);
            start = end;
        }
    }

    fn offer_event(&mut self, group: &mut [Finding], now: Option<Millis>, out: &mut Vec<Alert>) {
        // The lead: the highest level, the first on ties.
        let lead = (0..group.len())
            .max_by(|&a, &b| {
                group[a]
                    .rule
                    .level
                    .cmp(&group[b].rule.level)
                    .then(b.cmp(&a))
            })
            .unwrap_or(0);
        let t = group[lead].time_ms.or(now).unwrap_or(0);
        let level = group[lead].rule.level;
        // The dedup key: the rule and, by default, the principal; a rule's own `suppress.by`
        // values instead when it has them.
        let key = (
            group[lead].rule.id.clone(),
            group[lead]
                .suppress_key
                .clone()
                .filter(|_| self.rule_windows.contains_key(&group[lead].rule.id))
                .unwrap_or_else(|| group[lead].principal.clone()),
        );
        let joins_principal = matches!(group[lead].kind(), Kind::Correlation | Kind::Anomaly);
        let target = self.by_key.get(&key).cloned().or_else(|| {
            joins_principal
                .then(|| self.by_principal.get(&group[lead].principal).cloned())
                .flatten()
        });
        let id = match target.filter(|id| self.open.get(id).is_some_and(|i| t < i.closes_at)) {
            Some(id) => id,
            None => self.open_incident(&group[lead], key, t),
        };
        for f in group.iter_mut() {
            f.incident = id.clone();
        }
        let min_level = self.settings.min_level;
        let Some(inc) = self.open.get_mut(&id) else {
            return;
        };
        let first = inc.findings == 0;
        let escalated = !first && level > inc.level;
        if escalated {
            // The alert is shaped after the most severe finding: a correlation at high that
            // joins a principal's silent low incident leads its alert.
            inc.lead = group[lead].clone();
        }
        inc.level = inc.level.max(level);
        // The findings of one event share it: its events and ids count once.
        inc.events += group.iter().map(|f| f.event_count).max().unwrap_or(0);
        let mut ids: Vec<&String> = Vec::new();
        for f in group.iter() {
            inc.findings += 1;
            for id in &f.event_ids {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            inc.pending.push(AlertMember::of(f));
        }
        inc.ids.extend(ids.into_iter().cloned());
        inc.involved.add(&group[lead]);
        if f_time_after(group[lead].time_ms, inc.last_seen_ms) {
            inc.last_seen = group[lead].time.clone().or_else(|| seen_at(t));
            inc.last_seen_ms = group[lead].time_ms.unwrap_or(inc.last_seen_ms);
        }
        if inc.level < min_level {
            return;
        }
        let urgent = escalated || (!first && joins_principal && level >= Level::High);
        if !inc.alerted {
            out.push(alert(inc, AlertKind::New, t));
            self.stats.new += 1;
        } else if urgent {
            out.push(alert(inc, AlertKind::Update, t));
            self.stats.updates += 1;
        } else if inc.scheduled.is_none() {
            let due = inc.last_alert.saturating_add(self.settings.update_every);
            inc.scheduled = Some(due);
            self.updates.push(Reverse((due, inc.id.clone())));
        }
    }

    fn open_incident(&mut self, lead: &Finding, key: (String, String), t: Millis) -> String {
        let id = stable_id(&["incident", &lead.id]);
        self.stats.incidents += 1;
        // A previous incident of this key is past its window; it closes on the next advance.
        self.by_key.insert(key.clone(), id.clone());
        self.by_principal.insert(lead.principal.clone(), id.clone());
        let closes_at = t.saturating_add(
            self.rule_windows
                .get(&lead.rule.id)
                .copied()
                .unwrap_or(self.settings.window),
        );
        self.closes.push(Reverse((closes_at, id.clone())));
        self.open.insert(
            id.clone(),
            Incident {
                id: id.clone(),
                key,
                lead: lead.clone(),
                level: lead.rule.level,
                principal: lead.principal.clone(),
                opened: t,
                closes_at,
                first_seen: lead.time.clone().or_else(|| seen_at(t)),
                last_seen: lead.time.clone().or_else(|| seen_at(t)),
                last_seen_ms: lead.time_ms.unwrap_or(t),
                findings: 0,
                events: 0,
                ids: IdSample::default(),
                pending: Vec::new(),
                involved: Involved::default(),
                alerted: false,
                last_alert: t,
                seq: 0,
                first_size: 0,
                scheduled: None,
            },
        );
        id
    }

    /// Event time has reached `watermark`: updates that are due go out, incidents whose
    /// window has passed close. `None`: the end of input (everything closes).
    pub fn advance(&mut self, watermark: Option<Millis>, out: &mut Vec<Alert>) {
        let min_level = self.settings.min_level;
        // Updates due: findings waited and `update_every` has passed since the last alert.
        // An update goes out at the watermark (the next one at least `update_every` later);
        // when the watermark has already passed the incident's window, the closing summary
        // carries what waited instead — as it does at the end of input.
        if let Some(w) = watermark {
            while let Some(Reverse((d, _))) = self.updates.peek() {
                if *d > w {
                    break;
                }
                let Some(Reverse((d, id))) = self.updates.pop() else {
                    break;
                };
                if let Some(inc) = self.open.get_mut(&id)
                    && inc.scheduled == Some(d)
                    && !inc.pending.is_empty()
                    && w < inc.closes_at
                {
                    out.push(alert(inc, AlertKind::Update, w));
                    self.stats.updates += 1;
                }
            }
        }
        // Incidents whose window has passed, in (close time, id) order.
        while let Some(Reverse((at, _))) = self.closes.peek() {
            if watermark.is_some_and(|w| *at > w) {
                break;
            }
            let Some(Reverse((at, id))) = self.closes.pop() else {
                break;
            };
            let Some(mut inc) = self.open.remove(&id) else {
                continue;
            };
            if self.by_key.get(&inc.key) == Some(&id) {
                self.by_key.remove(&inc.key);
            }
            if self.by_principal.get(&inc.principal) == Some(&id) {
                self.by_principal.remove(&inc.principal);
            }
            if !inc.alerted {
                if inc.level < min_level {
                    self.stats.below_min_level += 1;
                }
                continue;
            }
            // A summary when anything joined after the first alert.
            if inc.findings > inc.first_size {
                let t = watermark.map_or(inc.last_seen_ms.max(inc.opened), |_| at);
                out.push(alert(&mut inc, AlertKind::Close, t));
                self.stats.closes += 1;
            }
        }
        if watermark.is_none() {
            self.updates.clear();
        }
    }

    /// Open incidents (for memory accounting).
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Open incidents and counters, to persist across restarts (with the checkpoint).
    pub fn snapshot(&self) -> serde_json::Value {
        let snap = Snapshot {
            version: SNAPSHOT_VERSION,
            open: self.open.values().cloned().collect(),
            stats: self.stats.clone(),
        };
        serde_json::to_value(&snap).unwrap_or(serde_json::Value::Null)
    }

    /// Restores what [`Incidents::snapshot`] saved (the settings stay this run's).
    pub fn restore(&mut self, v: &serde_json::Value) -> Result<(), IncidentStateError> {
        let snap: Snapshot = serde_json::from_value(v.clone())
            .map_err(|e| IncidentStateError::Corrupt(e.to_string()))?;
        if snap.version != SNAPSHOT_VERSION {
            return Err(IncidentStateError::Version(snap.version));
        }
        self.open.clear();
        self.by_key.clear();
        self.by_principal.clear();
        self.closes.clear();
        self.updates.clear();
        let mut incidents = snap.open;
        // The newest incident of a key or principal is the one findings join.
        incidents.sort_by(|a, b| (a.opened, &a.id).cmp(&(b.opened, &b.id)));
        for mut inc in incidents {
            inc.lead.time_ms = inc
                .lead
                .time
                .as_deref()
                .and_then(crate::util::time::parse_event_time);
            self.by_key.insert(inc.key.clone(), inc.id.clone());
            self.by_principal
                .insert(inc.principal.clone(), inc.id.clone());
            self.closes.push(Reverse((inc.closes_at, inc.id.clone())));
            if inc.alerted && !inc.pending.is_empty() {
                let due = inc.last_alert.saturating_add(self.settings.update_every);
                inc.scheduled = Some(due);
                self.updates.push(Reverse((due, inc.id.clone())));
            }
            self.open.insert(inc.id.clone(), inc);
        }
        self.stats = snap.stats;
        Ok(())
    }
}

/// A time for records that carry none: the watermark's, when there is one.
fn seen_at(t: Millis) -> Option<String> {
    (t > 0).then(|| crate::util::time::format_millis(t))
}

fn f_time_after(t: Option<Millis>, than: Millis) -> bool {
    t.is_some_and(|t| t >= than)
}

/// Do two findings come from the same CloudTrail event?
fn same_event(a: &Finding, b: &Finding) -> bool {
    a.kind() == Kind::Match
        && b.kind() == Kind::Match
        && a.time_ms == b.time_ms
        && !a.event_ids.is_empty()
        && a.event_ids.first() == b.event_ids.first()
}

/// The alert `kind` for `inc` at event time `t`: it carries the pending findings.
fn alert(inc: &mut Incident, kind: AlertKind, t: Millis) -> Alert {
    inc.seq += 1;
    if kind == AlertKind::New {
        inc.alerted = true;
        inc.first_size = inc.pending.len() as u64;
    }
    inc.last_alert = t;
    inc.scheduled = None;
    let members = std::mem::take(&mut inc.pending);
    // The incident, the alert's number and what it carries: decided again from the same
    // events (a restart from an older checkpoint), the same alert has the same id and the
    // outbox drops it; one carrying other findings is a different alert, never a lost one.
    let first = members.first().map_or("", |m| m.id.as_str());
    let last = members.last().map_or("", |m| m.id.as_str());
    Alert {
        id: stable_id(&["alert", &inc.id, &inc.seq.to_string(), first, last]),
        kind,
        incident: inc.id.clone(),
        time: t,
        level: inc.level,
        lead: inc.lead.clone(),
        first_seen: inc.first_seen.clone(),
        last_seen: inc.last_seen.clone(),
        incident_findings: inc.findings,
        incident_events: inc.events,
        event_ids: inc.ids.to_vec(),
        findings: members,
        involved: inc.involved.clone(),
    }
}

#[cfg(test)]
mod tests;
