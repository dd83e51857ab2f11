//! Stateful detection: Sigma correlation rules evaluated in event time, with bounded state.
//!
//! Workers turn each base-rule match that feeds a correlation into a [`Hit`] (its group key
//! and, for `value_count`, the counted value). The [`Correlator`] receives hits in event-time
//! order and keeps one small state per (correlation, group key).
//!
//! Window semantics (documented for users in docs/rules.md):
//! - `event_count`/`value_count` with only lower bounds (`gt`, `gte`): sliding windows
//!   `(e - timespan, e]` ending at held hits. When a hit arrives at `t`, the earliest window
//!   that contains `t` and satisfies the condition fires; its hits (and older ones) are then
//!   consumed, so a burst gives one finding per threshold's worth of hits, not one per extra
//!   hit. A late hit (within the allowed lateness) can complete an earlier window.
//! - With an upper bound (`lt`, `lte`, `eq`, ranges): tumbling windows, the first opened at
//!   a group's first hit, the next at the first hit after it ends; each is judged once when
//!   the watermark has passed its end (or at the end of input).
//! - `temporal`: fires at the hit that completes "every referenced rule matched within
//!   `timespan`", in any order; `temporal_ordered`: in the listed order. Then the group
//!   starts afresh.
//! - Counting over a chained correlation counts its firings (one hit each); the finding's
//!   `event_count` is the number of underlying events.
//!
//! Lateness: the watermark is the newest event time seen minus the allowed lateness (default
//! 15 min). A hit older than the watermark is not added (its windows may have been judged);
//! it is counted and reported, never silently dropped.
//!
//! This file holds the hits and the [`Correlator`] that routes them; the rest is split by
//! job: `store` (the group table and the interned who/where), `window` (what a group keeps
//! and how a hit moves its window), `render` (the finding a firing becomes), `snapshot`
//! (the persisted form), `event_ids` (the event ids a hit carries).

pub mod event_ids;
mod render;
mod snapshot;
mod store;
#[cfg(test)]
mod tests;
mod window;

pub use event_ids::EventIds;
pub use render::level_of;
pub use snapshot::CorrelationSnapshotError;

use crate::finding::Finding;
use crate::rules::plan::Plans;
use crate::util::time::Millis;
use render::{Fired, finding, sample_ids, split_key};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use store::{Groups, Interner};
use window::{Ev, Group, Spec, State, add_tumbling, judge_tumbling};

/// Default allowed lateness of events, in event time.
pub const DEFAULT_LATENESS: Millis = 15 * 60_000;
/// Default cap on live group keys per correlation.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// One base-rule match (or a fired correlation) feeding a correlation.
///
/// Compact: the hits of one record share their group key and who/where (`Arc`s built once
/// per record by the worker) and hold its event id inline, so a hit allocates nothing of its
/// own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// Index of the correlation in the rule set.
    pub corr: u32,
    /// Position of the matched rule in the correlation's `rules`.
    pub pos: u32,
    pub time: Millis,
    /// Group key: the group-by values in the correlation's `group-by` order, joined by
    /// [`KEY_SEP`].
    pub key: Arc<str>,
    /// `value_count`: [`hash_value`] of the value counted (the correlator keeps only hashes).
    pub value: Option<u64>,
    /// The event ids behind the hit.
    pub event_ids: EventIds,
    pub count: u64,
    /// Who acted, and where (for a chained firing: the event that completed it).
    pub who: Arc<Who>,
}

/// An event's time and who/where: a tumbling window's latest, or a firing's completing event.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Last {
    time: Millis,
    who: Arc<Who>,
}

/// Who acted, and where. A worker builds one per record, shared by the record's hits; a
/// tumbling window keeps a copy made of interned parts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct Who {
    pub principal: Arc<str>,
    pub account: Option<Arc<str>>,
    pub region: Option<Arc<str>>,
}

/// Distinct-value counts (value hashes, already well mixed; foldhash, not SipHash).
type Scratch = HashMap<u64, u32, foldhash::fast::RandomState>;

/// Separates group-by values inside a group key.
pub const KEY_SEP: char = '\u{1f}';

/// The hash `value_count` counts distinct values by.
pub fn hash_value(v: &str) -> u64 {
    // FNV-1a 64: stable across runs and platforms (state is persisted).
    let mut h: u64 = 0xcbf29ce484222325;
    for b in v.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Counters a run reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CorrelationStats {
    /// Hits older than the watermark: counted, not added to any window.
    pub late_hits: u64,
    /// Event ids of the first late hits (for the report).
    pub late_samples: Vec<String>,
    /// Group keys evicted because a correlation reached its key cap.
    pub evicted_keys: u64,
    /// Groups dropped because their window had passed.
    pub expired_keys: u64,
}

/// Evaluates correlations over hits in event-time order.
#[derive(Debug)]
pub struct Correlator {
    /// Group key (group-by values joined by U+001F) → each correlation's state for it.
    groups: Groups,
    /// When tumbling windows end: (end, correlation, group key). Entries may be stale.
    deadlines: std::collections::BinaryHeap<std::cmp::Reverse<(Millis, u32, Arc<str>)>>,
    strings: Interner,
    /// Reusable space for distinct counts.
    scratch: Scratch,
    max_seen: Option<Millis>,
    pub lateness: Millis,
    pub max_keys: usize,
    pub stats: CorrelationStats,
    hits_since_sweep: u64,
}

impl Correlator {
    pub fn new(plans: &Plans, lateness: Millis, max_keys: usize) -> Self {
        Correlator {
            groups: Groups::new(plans.plans.len()),
            deadlines: std::collections::BinaryHeap::new(),
            strings: Interner::default(),
            scratch: Scratch::default(),
            max_seen: None,
            lateness: lateness.max(0),
            max_keys: max_keys.max(1),
            stats: CorrelationStats::default(),
            hits_since_sweep: 0,
        }
    }

    /// The newest event time seen minus the allowed lateness.
    pub fn watermark(&self) -> Option<Millis> {
        self.max_seen.map(|m| m - self.lateness)
    }

    /// Live group keys over all correlations.
    pub fn live_keys(&self) -> usize {
        self.groups.total()
    }

    /// Moves event time on (also for events that fed nothing).
    pub fn observe(&mut self, t: Millis) {
        self.max_seen = Some(self.max_seen.map_or(t, |m| m.max(t)));
    }

    /// Adds a hit; pushes the findings of correlations that fired (including chained ones).
    pub fn hit(&mut self, plans: &Plans, hit: Hit, out: &mut Vec<Finding>) {
        if self.watermark().is_some_and(|w| hit.time < w) {
            self.stats.late_hits += 1;
            if self.stats.late_samples.len() < 20 {
                self.stats.late_samples.extend(hit.event_ids.first());
            }
            return;
        }
        self.observe(hit.time);
        self.process(plans, hit, out);
        self.hits_since_sweep += 1;
        // Sweeping costs one pass over the keys, amortised over half as many hits as there
        // are live groups. Measured at 1 M events (benches/correlate.rs): every quarter as
        // many, the sweep was 7 % of the full pass and the pass ~6 % slower for 4 % less peak
        // heap; every as many, expired groups piled up and the larger tables cost more than
        // the sweeps saved.
        // (Counting live keys sums per-correlation counters: only once 10,000 hits are in.)
        if self.hits_since_sweep >= 10_000 && self.hits_since_sweep >= self.live_keys() as u64 / 2 {
            self.hits_since_sweep = 0;
            self.sweep(plans);
        }
    }

    /// Judges tumbling windows that closed before the watermark (all of them at the end of
    /// input when `all` is set), and forgets groups that can no longer fire.
    pub fn advance(&mut self, plans: &Plans, all: bool, out: &mut Vec<Finding>) {
        let Some(wm) = (if all {
            Some(Millis::MAX)
        } else {
            self.watermark()
        }) else {
            return;
        };
        // Windows due, earliest first (chained correlations may add more while judging).
        loop {
            let due = match self.deadlines.peek() {
                Some(std::cmp::Reverse((end, _, _))) => *end <= wm,
                None => false,
            };
            if !due {
                break;
            }
            let Some(std::cmp::Reverse((_, ci, key))) = self.deadlines.pop() else {
                break;
            };
            let ci = ci as usize;
            let plan = &plans.plans[ci];
            let span = plan.corr.def.timespan;
            let mut judged = Vec::new();
            let hash = self.groups.hash(&key);
            if let Some(g) = self.groups.get_mut(ci as u32, hash, &key)
                && let State::Tumbling(ws) = &mut g.state
            {
                while ws
                    .first()
                    .is_some_and(|w| w.start.saturating_add(span) <= wm)
                {
                    let w = ws.remove(0);
                    if let Some(f) = judge_tumbling(plan, &key, w) {
                        judged.push(f);
                    }
                }
                if ws.is_empty() {
                    self.groups.remove(ci as u32, hash, &key);
                }
            }
            for f in judged {
                self.fire_chain(plans, ci, f, out);
            }
        }
        // Groups that can no longer fire are swept in `hit`, amortised over live keys.
    }

    fn fire_chain(&mut self, plans: &Plans, ci: usize, fired: Fired, out: &mut Vec<Finding>) {
        if !plans.corr_quiet[ci] {
            out.push(finding(&plans.plans[ci], &fired));
        }
        for &(parent, pos) in &plans.corr_feeds[ci] {
            let key: Vec<&str> = plans.plans[parent as usize]
                .corr
                .def
                .group_by
                .iter()
                .map(|g| {
                    plans.plans[ci]
                        .corr
                        .def
                        .group_by
                        .iter()
                        .position(|c| c == g)
                        .and_then(|k| fired.key.get(k))
                        .map_or("", String::as_str)
                })
                .collect();
            // A fired correlation counts as one hit of the parent; its events come along.
            let h = Hit {
                corr: parent,
                pos,
                time: fired.time,
                key: key.join(&KEY_SEP.to_string()).into(),
                value: None,
                event_ids: EventIds::from_strings(&fired.ids),
                count: fired.events,
                who: fired.last.who.clone(),
            };
            self.process(plans, h, out);
        }
    }

    /// Applies a hit (no lateness check) and everything it fires, through chains.
    fn process(&mut self, plans: &Plans, hit: Hit, out: &mut Vec<Finding>) {
        let ci = hit.corr as usize;
        if let Some(fired) = self.apply(plans, &hit) {
            self.fire_chain(plans, ci, fired, out);
        }
    }

    /// Drops groups that can no longer fire: everything they hold is older than a timespan
    /// before the watermark. Tumbling windows are left to `advance`, which judges them.
    fn sweep(&mut self, plans: &Plans) {
        let Some(wm) = self.watermark() else { return };
        let dropped = self.groups.sweep(wm, |ci| {
            plans
                .plans
                .get(ci as usize)
                .map_or(Millis::MAX, |p| p.corr.def.timespan)
        });
        self.stats.expired_keys += dropped as u64;
        self.strings.prune();
    }

    /// Applies one hit to its group; returns what fired.
    fn apply(&mut self, plans: &Plans, h: &Hit) -> Option<Fired> {
        let ci = h.corr as usize;
        let plan = &plans.plans[ci];
        let def = &plan.corr.def;
        let span = def.timespan;
        let reach = span.saturating_add(self.lateness);
        let strings = &mut self.strings;
        let groups = &mut self.groups;
        let hash = groups.hash_of(&h.key);
        // At the key cap, a new key evicts the group seen longest ago (counted).
        if groups.len(ci) >= self.max_keys
            && !groups.contains(h.corr, hash, &h.key)
            && groups.evict_oldest(h.corr)
        {
            self.stats.evicted_keys += 1;
        }
        let (slot, i) = groups.get_or_insert_with(h.corr, hash, &h.key, || Group::new(plan));
        let key = &slot.key;
        // Keeps `due` a lower bound for a new group (for an older one it changes nothing
        // that matters: its bound already held).
        slot.due = slot.due.min(h.time.saturating_add(span));
        let g = &mut slot.groups[i].1;
        g.newest = g.newest.max(h.time);
        let newest = g.newest;
        let cond = &def.condition;
        let fired = match &mut g.state {
            State::Tumbling(ws) => {
                let upper = cond.lt.or(cond.lte).or(cond.eq);
                // A window judged when it closes reports its latest hit's who/where.
                let last = Last {
                    time: h.time,
                    who: strings.who_of(&h.who, key),
                };
                if let Some(start) = add_tumbling(ws, span, def.kind, upper, h, &last) {
                    self.deadlines.push(std::cmp::Reverse((
                        start.saturating_add(span),
                        h.corr,
                        key.clone(),
                    )));
                }
                None
            }
            state => {
                let spec = Spec {
                    cond,
                    span,
                    lateness: self.lateness,
                    reach,
                };
                state.add(h, newest, &spec, &mut self.scratch)
            }
        };
        let (start, count, mut window) = fired?;
        window.sort_by_key(|e| e.t);
        // Who acted and where: the hit that completed the window.
        let last = Last {
            time: h.time,
            who: h.who.clone(),
        };
        if g.state.is_empty() {
            groups.remove(h.corr, hash, &h.key);
        }
        Some(Fired {
            key: split_key(&h.key),
            time: window.iter().map(|e| e.t).max().unwrap_or(h.time),
            start,
            count,
            events: window.iter().map(Ev::events).sum::<u64>().max(count),
            ids: sample_ids(&window),
            last,
        })
    }
}
