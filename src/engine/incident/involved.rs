//! What an incident involved, across all its findings: the calls, source IPs, user agents and
//! the resources acted on, with counts — what a person reads first in an alert.

use crate::event::Event;
use crate::event::target::targets;
use crate::finding::{Body, Finding, ValueCount};
use serde::{Deserialize, Serialize};

/// Distinct values kept per field; the rest are summed in an `(other)` entry.
const MAX_VALUES: usize = 10;
/// Longest value kept (user agents can be long; anything longer is cut).
const MAX_CHARS: usize = 200;

/// Distinct values of one field with their counts, bounded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tally(Vec<ValueCount>);

impl Tally {
    /// Most frequent first (ties by value), `(other)` last.
    fn order(a: &ValueCount, b: &ValueCount) -> std::cmp::Ordering {
        (a.value == OTHER)
            .cmp(&(b.value == OTHER))
            .then(b.count.cmp(&a.count))
            .then_with(|| a.value.cmp(&b.value))
    }

    fn add(&mut self, value: &str, n: u64) {
        self.count(value, n);
        self.0.sort_by(Tally::order);
    }

    fn count(&mut self, value: &str, n: u64) {
        if value.is_empty() || n == 0 {
            return;
        }
        let value: String = value.chars().take(MAX_CHARS).collect();
        if let Some(v) = self.0.iter_mut().find(|v| v.value == value) {
            v.count += n;
            return;
        }
        let other = OTHER;
        if self.0.len() < MAX_VALUES {
            // `(other)` stays last.
            let at = self
                .0
                .iter()
                .position(|v| v.value == other)
                .unwrap_or(self.0.len());
            self.0.insert(at, ValueCount { value, count: n });
        } else if let Some(o) = self.0.iter_mut().find(|v| v.value == other) {
            o.count += n;
        } else if let Some(last) = self.0.last_mut() {
            // Full: the least frequent value gives way to `(other)`, which sums both.
            last.count += n;
            last.value = other.into();
        }
    }

    /// The values, most frequent first (ties by value), `(other)` last.
    pub fn top(&self) -> &[ValueCount] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

const OTHER: &str = "(other)";

/// The calls, addresses, agents and targets of an incident's events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Involved {
    pub calls: Tally,
    pub source_ips: Tally,
    pub user_agents: Tally,
    /// What the calls acted on (`user bob`, `trail main`).
    pub targets: Tally,
}

impl Involved {
    /// Counts one event's finding (the lead of the findings of one event): its record's
    /// fields, or an anomaly's attributions.
    pub(crate) fn add(&mut self, f: &Finding) {
        if let Body::Anomaly(a) = &f.details.body {
            for (tally, values) in [
                (&mut self.calls, &a.attributions.event_names),
                (&mut self.source_ips, &a.attributions.source_ips),
                (&mut self.user_agents, &a.attributions.user_agents),
            ] {
                for v in values {
                    tally.add(&v.value, v.count);
                }
            }
            return;
        }
        let Some(raw) = &f.event else {
            return;
        };
        let Ok(ev) = Event::parse(raw.get()) else {
            return;
        };
        let n = f.event_count.max(1);
        if let Some(v) = ev.event_name() {
            self.calls.add(v, n);
        }
        if let Some(v) = ev.top_str("sourceIPAddress") {
            self.source_ips.add(v, n);
        }
        if let Some(v) = ev.top_str("userAgent") {
            self.user_agents.add(v, n);
        }
        for t in targets(&ev) {
            self.targets.add(&t, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_stays_bounded_and_sums_the_rest() {
        let mut t = Tally::default();
        for i in 0..30 {
            t.add(&format!("v{i:02}"), 1);
        }
        t.add("v00", 5);
        let top = t.top();
        assert_eq!(top.len(), MAX_VALUES);
        assert_eq!((top[0].value.as_str(), top[0].count), ("v00", 6));
        let other = top.last().unwrap();
        assert_eq!(other.value, OTHER);
        let total: u64 = top.iter().map(|v| v.count).sum();
        assert_eq!(total, 35, "nothing is lost: {top:?}");
    }
}
