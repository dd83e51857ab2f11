//! Suppression: repeated findings with the same key inside a period become one incident.
//!
//! Later findings with the same (rule, key) inside the period of the first are merged into
//! it: its `event_count` grows, its event-id sample takes their ids, `details.suppressed`
//! counts them, and its `incident` id is theirs too. When the period has passed the watermark
//! it is released. How the first one goes out depends on the [`Release`] mode:
//!
//! - [`Release::Merged`] (backtest): the first finding is held and released once, merged —
//!   one finding per incident in a report;
//! - [`Release::FirstAtOnce`] (live): the first finding goes out at once (nobody waits an hour
//!   for an alert), and at the end of the period, only if more came, one *update* finding
//!   (same `incident`, its own `id`, `details.update_of` = the first's id) says how many more.

use super::EngineError;
use crate::event::{Event, FieldPath};
use crate::finding::{Finding, IdSample, Kind};
use crate::rules::correlation::{Suppress, SuppressSetting};
use crate::util::time::Millis;
use std::collections::HashMap;

/// The suppression that applies to a rule: its own `suppress:`, or the default.
pub(crate) fn effective<'a>(
    setting: &'a SuppressSetting,
    default: Option<&'a Suppress>,
) -> Option<&'a Suppress> {
    match setting {
        SuppressSetting::Off => None,
        SuppressSetting::On(s) => Some(s),
        SuppressSetting::Default => default,
    }
}

/// The suppression key of a rule match: the first value of each `by` field of the event,
/// joined by `|` (missing fields give an empty part).
pub(super) fn event_key(s: &Suppress, ev: &Event<'_>) -> String {
    let mut key = String::new();
    for (n, p) in s.by.iter().enumerate() {
        if n > 0 {
            key.push('|');
        }
        ev.push_first_text(&FieldPath::new(p), &mut key);
    }
    key
}

/// The suppression key of a correlation finding: `by` names group-by fields, read from the
/// finding's group; without `by`, the key the correlator gave it (the whole group).
pub(super) fn set_correlation_key(s: &Suppress, f: &mut Finding) {
    if f.kind() != Kind::Correlation || s.by.is_empty() {
        return;
    }
    let Some(group) = f.details.group() else {
        return;
    };
    let key: Vec<&str> =
        s.by.iter()
            .map(|b| group.get(b).map_or("", String::as_str))
            .collect();
    f.suppress_key = Some(key.join("|"));
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Held {
    finding: Finding,
    until: Millis,
    ids: IdSample,
    merged: u64,
    /// The first finding already went out ([`Release::FirstAtOnce`]).
    #[serde(default)]
    sent: bool,
    /// Event time of the latest merged finding.
    #[serde(default)]
    last_ms: Option<Millis>,
}

/// When suppressed findings go out (see the module documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Release {
    /// Hold the first finding until its period ends; release it once, merged.
    #[default]
    Merged,
    /// Send the first finding at once; at the end of the period, an update if more came.
    FirstAtOnce,
}

/// Holds and merges findings per (rule, key).
#[derive(Debug, Default)]
pub(crate) struct Suppressor {
    held: HashMap<(String, String), Held>,
    /// (until, key) of held findings, earliest first; entries may be stale.
    due: std::collections::BinaryHeap<std::cmp::Reverse<(Millis, (String, String))>>,
    /// Findings merged into an earlier one.
    pub merged: u64,
    pub mode: Release,
}

impl Suppressor {
    /// Takes a finding under `rule` suppression `s`; findings that must go out now are pushed
    /// to `out` (a held one whose period ended before this finding's time).
    pub(crate) fn offer(&mut self, s: &Suppress, f: Finding, out: &mut Vec<Finding>) {
        let t = f.time_ms.unwrap_or(Millis::MIN);
        let key = (
            f.rule.id.clone(),
            f.suppress_key.clone().unwrap_or_default(),
        );
        if let Some(h) = self.held.get_mut(&key) {
            if t < h.until {
                h.finding.event_count += f.event_count;
                h.ids.extend(f.event_ids);
                h.merged += 1;
                self.merged += 1;
                h.last_ms = h.last_ms.max(f.time_ms);
                // The merged finding keeps the first one's time; the latest time is recorded.
                h.finding.details.last_time = Some(f.time.clone());
                return;
            }
            if let Some(old) = self.held.remove(&key) {
                out.extend(release(old));
            }
        }
        let mut ids = IdSample::default();
        ids.extend(f.event_ids.iter().cloned());
        let until = t.saturating_add(s.period);
        let sent = self.mode == Release::FirstAtOnce;
        if sent {
            out.push(f.clone());
        }
        self.due.push(std::cmp::Reverse((until, key.clone())));
        self.held.insert(
            key,
            Held {
                until,
                finding: f,
                ids,
                merged: 0,
                sent,
                last_ms: None,
            },
        );
    }

    /// Releases every held finding whose period ended at or before `watermark` (all of them
    /// when `None`), in (time, id) order.
    pub(crate) fn release_until(&mut self, watermark: Option<Millis>, out: &mut Vec<Finding>) {
        let Some(w) = watermark else {
            // Everything, in (time, id) order.
            let mut all: Vec<Held> = self.held.drain().map(|(_, h)| h).collect();
            self.due.clear();
            all.sort_by(|a, b| {
                (a.finding.time_ms, &a.finding.id).cmp(&(b.finding.time_ms, &b.finding.id))
            });
            out.extend(all.into_iter().filter_map(release));
            return;
        };
        let mut ready = Vec::new();
        while let Some(std::cmp::Reverse((until, _))) = self.due.peek() {
            if *until > w {
                break;
            }
            let Some(std::cmp::Reverse((until, key))) = self.due.pop() else {
                break;
            };
            // Stale entries (the key was released and held again) have another `until`.
            if self.held.get(&key).is_some_and(|h| h.until == until)
                && let Some(h) = self.held.remove(&key)
            {
                ready.push(h);
            }
        }
        ready.sort_by(|a, b| {
            (a.finding.time_ms, &a.finding.id).cmp(&(b.finding.time_ms, &b.finding.id))
        });
        out.extend(ready.into_iter().filter_map(release));
    }

    /// The held findings, to persist across restarts (JSON).
    pub(crate) fn snapshot(&self) -> serde_json::Value {
        let mut held: Vec<SavedHeld<'_>> = self
            .held
            .iter()
            .map(|((rule, key), h)| SavedHeld {
                rule: rule.as_str().into(),
                key: key.as_str().into(),
                time_ms: h.finding.time_ms,
                held: std::borrow::Cow::Borrowed(h),
            })
            .collect();
        held.sort_by(|a, b| (&a.rule, &a.key).cmp(&(&b.rule, &b.key)));
        serde_json::json!({"version": 1, "held": held, "merged": self.merged})
    }

    /// Restores what [`Suppressor::snapshot`] saved.
    pub(crate) fn restore(&mut self, v: &serde_json::Value) -> Result<(), EngineError> {
        #[derive(serde::Deserialize)]
        struct Saved {
            version: u32,
            held: Vec<SavedHeld<'static>>,
            merged: u64,
        }
        let s: Saved =
            serde_json::from_value(v.clone()).map_err(|e| EngineError::Invalid(e.to_string()))?;
        if s.version != 1 {
            return Err(EngineError::SuppressionVersion(s.version));
        }
        self.held.clear();
        self.due.clear();
        for h in s.held {
            let mut held = h.held.into_owned();
            held.finding.time_ms = h.time_ms;
            held.finding.suppress_key = Some(h.key.to_string());
            let key = (h.rule.into_owned(), h.key.into_owned());
            self.due.push(std::cmp::Reverse((held.until, key.clone())));
            self.held.insert(key, held);
        }
        self.merged = s.merged;
        Ok(())
    }
}

/// One held finding in a snapshot (fields the finding's JSON form does not carry included).
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedHeld<'a> {
    rule: std::borrow::Cow<'a, str>,
    key: std::borrow::Cow<'a, str>,
    time_ms: Option<Millis>,
    held: std::borrow::Cow<'a, Held>,
}

/// The finding a held one becomes at the end of its period: the merged finding; or, when the
/// first already went out, an update if more came (nothing otherwise).
fn release(h: Held) -> Option<Finding> {
    let mut f = h.finding;
    if h.sent {
        if h.merged == 0 {
            return None;
        }
        let first = std::mem::take(&mut f.id);
        f.id = crate::util::ids::stable_id(&[&first, "update"]);
        f.event_ids = h.ids.to_vec();
        f.time_ms = h.last_ms.or(f.time_ms);
        if let Some(t) = h.last_ms {
            f.time = Some(crate::util::time::format_millis(t));
        }
        f.details.suppressed = Some(h.merged);
        f.details.update_of = Some(first);
        f.summary = format!(
            "Continued: {} more similar finding(s) after the first alert, {} event(s) in all. {}",
            h.merged, f.event_count, f.summary
        );
        return Some(f);
    }
    f.event_ids = h.ids.to_vec();
    if h.merged > 0 {
        f.details.suppressed = Some(h.merged);
        f.summary = format!(
            "{} ({} similar findings merged into this one)",
            f.summary.trim_end_matches('.'),
            h.merged
        );
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Body, MatchDetails, RuleRef};
    use crate::rules::Level;

    const MIN: Millis = 60_000;

    fn finding(n: u32, t: Millis, key: &str) -> Finding {
        let rule = RuleRef {
            id: "r".into(),
            title: "Rule".into(),
            level: Level::High,
            tags: Vec::new(),
        };
        let body = Body::Match(MatchDetails {
            rule_file: "r.yml".into(),
            event_type: None,
            identity_account: None,
        });
        Finding::new(format!("f{n}"), rule, body)
            .with_time(Some(crate::util::time::format_millis(t)), Some(t))
            .with_events(vec![format!("e{n}")], 1)
            .with_summary("Rule: alice did it.".into())
            .with_suppress_key(key.into())
    }

    fn hour() -> Suppress {
        Suppress {
            by: vec!["userIdentity.arn".into()],
            period: 60 * MIN,
        }
    }

    #[test]
    fn repeats_within_the_period_merge_into_the_first() {
        let mut s = Suppressor::default();
        let mut out = Vec::new();
        for (n, t) in [(1, 0), (2, 10 * MIN), (3, 50 * MIN)] {
            s.offer(&hour(), finding(n, t, "alice"), &mut out);
        }
        s.offer(&hour(), finding(4, 5 * MIN, "bob"), &mut out);
        assert!(out.is_empty(), "held until the period ends: {out:?}");
        // The watermark passes alice's period (0 + 60 min), not bob's (5 + 60 min).
        s.release_until(Some(61 * MIN), &mut out);
        assert_eq!(out.len(), 1);
        let f = &out[0];
        assert_eq!(f.id, "f1");
        assert_eq!(f.event_count, 3);
        assert_eq!(f.event_ids, ["e1", "e2", "e3"]);
        assert_eq!(f.details.suppressed, Some(2));
        assert_eq!(
            f.details.last_time,
            Some(Some(crate::util::time::format_millis(50 * MIN)))
        );
        assert_eq!(s.merged, 2);
        s.release_until(None, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].id, "f4");
        assert_eq!(out[1].details.suppressed, None);
    }

    #[test]
    fn a_repeat_after_the_period_starts_a_new_incident() {
        let mut s = Suppressor::default();
        let mut out = Vec::new();
        s.offer(&hour(), finding(1, 0, "alice"), &mut out);
        s.offer(&hour(), finding(2, 61 * MIN, "alice"), &mut out);
        assert_eq!(out.len(), 1, "the first is released by the later one");
        assert_eq!(out[0].id, "f1");
        s.release_until(None, &mut out);
        assert_eq!(out[1].id, "f2");
    }

    #[test]
    fn first_at_once_then_one_update_with_the_same_incident() {
        let mut s = Suppressor {
            mode: Release::FirstAtOnce,
            ..Suppressor::default()
        };
        let mut out = Vec::new();
        s.offer(&hour(), finding(1, 0, "alice"), &mut out);
        assert_eq!(out.len(), 1, "the first goes out at once");
        s.offer(&hour(), finding(2, 20 * MIN, "alice"), &mut out);
        s.offer(&hour(), finding(3, 30 * MIN, "alice"), &mut out);
        assert_eq!(out.len(), 1);
        s.release_until(Some(60 * MIN), &mut out);
        assert_eq!(out.len(), 2);
        let update = &out[1];
        assert_eq!(update.incident, out[0].incident);
        assert_ne!(update.id, out[0].id);
        assert_eq!(update.details.update_of.as_deref(), Some("f1"));
        assert_eq!(update.details.suppressed, Some(2));
        assert_eq!(update.time_ms, Some(30 * MIN));
        // Nothing more came for bob's single finding: no update.
        s.offer(&hour(), finding(4, 70 * MIN, "bob"), &mut out);
        s.release_until(None, &mut out);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn snapshot_restores_held_findings() {
        let mut s = Suppressor::default();
        let mut out = Vec::new();
        s.offer(&hour(), finding(1, 0, "alice"), &mut out);
        s.offer(&hour(), finding(2, MIN, "alice"), &mut out);
        let snap = s.snapshot();
        let mut t = Suppressor::default();
        t.restore(&snap).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        s.release_until(None, &mut a);
        t.release_until(None, &mut b);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        let mut bad = snap.clone();
        bad["version"] = 9.into();
        assert!(matches!(
            t.restore(&bad),
            Err(EngineError::SuppressionVersion(9))
        ));
    }
}
