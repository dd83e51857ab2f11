//! Stateful detection: Sigma correlation rules evaluated in event time, with bounded state.
//!
//! Workers turn each base-rule match that feeds a correlation into a [`Hit`] (its group key
//! and, for `value_count`, the counted value). The [`Correlator`] receives hits in event-time
//! order and keeps one small state per (correlation, group key).
//!
//! Window semantics (documented for users in docs/rules.md):
//! - `event_count`/`value_count` with only lower bounds (`gt`, `gte`): a sliding window of
//!   `timespan` ending at each event. The correlation fires at the first event at which the
//!   events (or distinct values) of the group within `(t - timespan, t]` satisfy the
//!   condition, once; the group then starts afresh, so a burst gives one finding, not one per
//!   extra event.
//! - With an upper bound (`lt`, `lte`, `eq`, ranges): a window opens at a group's first event
//!   and is judged when it closes (`start + timespan` has passed the watermark); it fires
//!   once if the count satisfies the condition.
//! - `temporal`: fires at the event that completes "every referenced rule matched within
//!   `timespan`", in any order; `temporal_ordered`: in the listed order. Then the group
//!   starts afresh.
//!
//! Lateness: the watermark is the newest event time seen minus the allowed lateness (default
//! 15 min). A hit older than the watermark is not added (its windows may have been judged);
//! it is counted and reported, never silently dropped.

pub mod suppress;

use crate::finding::{Finding, Kind, RuleRef, stable_id};
use crate::rules::correlation::{CorrKind, Correlation, RefId};
use crate::rules::{Level, Rule};
use crate::time::{Millis, format_duration, format_millis};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// Default allowed lateness of events, in event time.
pub const DEFAULT_LATENESS: Millis = 15 * 60_000;
/// Default cap on live group keys per correlation.
pub const DEFAULT_MAX_KEYS: usize = 100_000;
/// Event ids kept at each end of a finding's sample.
pub const ID_SAMPLE: usize = 50;

/// One base-rule match (or a fired correlation) feeding a correlation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// Index of the correlation in the rule set.
    pub corr: u32,
    /// Position of the matched rule in the correlation's `rules`.
    pub pos: u32,
    pub time: Millis,
    /// Group-by values, in the correlation's `group-by` order.
    pub key: Vec<String>,
    /// `value_count`: the value counted.
    pub value: Option<String>,
    pub event_ids: Vec<String>,
    pub count: u64,
    pub principal: String,
    pub account: Option<String>,
    pub region: Option<String>,
}

/// A correlation ready to run: references as indices.
#[derive(Debug, Clone)]
pub struct Plan {
    pub corr: Correlation,
    pub refs: Vec<RefIdx>,
    /// Per reference: the field path of each group-by name (rules only).
    pub key_paths: Vec<Vec<crate::event::FieldPath>>,
    /// Per reference: the `value_count` field.
    pub value_paths: Vec<Option<crate::event::FieldPath>>,
    /// Titles of the referenced rules (for summaries).
    pub ref_titles: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefIdx {
    Rule(usize),
    Corr(usize),
}

/// How rules feed correlations.
#[derive(Debug, Clone, Default)]
pub struct Plans {
    pub plans: Vec<Plan>,
    /// Per rule: (correlation, position) it feeds.
    pub feeds: Vec<Vec<(u32, u32)>>,
    /// Per rule: no finding of its own (only referenced by correlations with `generate: false`).
    pub quiet: Vec<bool>,
    /// Per correlation: (parent correlation, position) it feeds.
    pub corr_feeds: Vec<Vec<(u32, u32)>>,
    /// Per correlation: no finding of its own.
    pub corr_quiet: Vec<bool>,
}

impl Plans {
    /// Links correlations to the rules present. Correlations whose rules are missing (left
    /// out by `--disable`/`--min-level`) are dropped, with a message each.
    pub fn build(rules: &[Rule], correlations: Vec<Correlation>) -> (Plans, Vec<String>) {
        let rule_idx: HashMap<&str, usize> = rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.meta.id.as_str(), i))
            .collect();
        let mut dropped = Vec::new();
        // Drop correlations with missing references until stable (chains).
        let mut kept: Vec<Correlation> = correlations;
        loop {
            let ids: std::collections::HashSet<String> =
                kept.iter().map(|c| c.def.meta.id.clone()).collect();
            let before = kept.len();
            kept.retain(|c| {
                let ok = c.refs.iter().all(|r| match r {
                    RefId::Rule(id) => rule_idx.contains_key(id.as_str()),
                    RefId::Correlation(id) => ids.contains(id),
                });
                if !ok {
                    dropped.push(format!(
                        "correlation `{}` ({}) is not evaluated: a rule it refers to is not loaded",
                        c.def.meta.id, c.def.meta.title
                    ));
                }
                ok
            });
            if kept.len() == before {
                break;
            }
        }
        let corr_idx: HashMap<String, usize> = kept
            .iter()
            .enumerate()
            .map(|(i, c)| (c.def.meta.id.clone(), i))
            .collect();
        let mut p = Plans {
            feeds: vec![Vec::new(); rules.len()],
            quiet: vec![false; rules.len()],
            corr_feeds: vec![Vec::new(); kept.len()],
            corr_quiet: vec![false; kept.len()],
            plans: Vec::new(),
        };
        let mut referenced = vec![false; rules.len()];
        let mut generated = vec![false; rules.len()];
        let mut c_referenced = vec![false; kept.len()];
        let mut c_generated = vec![false; kept.len()];
        for (ci, c) in kept.into_iter().enumerate() {
            let mut refs = Vec::new();
            let mut key_paths = Vec::new();
            let mut value_paths = Vec::new();
            let mut ref_titles = Vec::new();
            for (pos, r) in c.refs.iter().enumerate() {
                match r {
                    RefId::Rule(id) => {
                        let i = rule_idx[id.as_str()];
                        let rule = &rules[i];
                        let keys: Vec<&str> = std::iter::once(rule.meta.id.as_str())
                            .chain(rule.meta.name.as_deref())
                            .collect();
                        key_paths.push(
                            c.def
                                .group_by
                                .iter()
                                .map(|g| crate::event::FieldPath::new(&c.def.group_path(g, &keys)))
                                .collect(),
                        );
                        value_paths.push(
                            c.def
                                .field
                                .as_ref()
                                .map(|f| crate::event::FieldPath::new(&c.def.group_path(f, &keys))),
                        );
                        ref_titles.push(rule.meta.title.clone());
                        p.feeds[i].push((ci as u32, pos as u32));
                        referenced[i] = true;
                        generated[i] |= c.def.generate;
                        refs.push(RefIdx::Rule(i));
                    }
                    RefId::Correlation(id) => {
                        let j = corr_idx[id.as_str()];
                        key_paths.push(Vec::new());
                        value_paths.push(None);
                        ref_titles.push(id.clone());
                        p.corr_feeds[j].push((ci as u32, pos as u32));
                        c_referenced[j] = true;
                        c_generated[j] |= c.def.generate;
                        refs.push(RefIdx::Corr(j));
                    }
                }
            }
            p.plans.push(Plan {
                corr: c,
                refs,
                key_paths,
                value_paths,
                ref_titles,
            });
        }
        for i in 0..rules.len() {
            p.quiet[i] = referenced[i] && !generated[i];
        }
        for j in 0..p.plans.len() {
            p.corr_quiet[j] = c_referenced[j] && !c_generated[j];
        }
        // Titles of referenced correlations, now that all plans exist.
        let titles: Vec<String> = p
            .plans
            .iter()
            .map(|pl| pl.corr.def.meta.title.clone())
            .collect();
        for pl in &mut p.plans {
            for (k, r) in pl.refs.iter().enumerate() {
                if let RefIdx::Corr(j) = r {
                    pl.ref_titles[k] = titles[*j].clone();
                }
            }
        }
        (p, dropped)
    }

    pub fn is_empty(&self) -> bool {
        self.plans.is_empty()
    }
}

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

/// Who and where, from the latest event of a group.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Last {
    time: Millis,
    principal: String,
    account: Option<String>,
    region: Option<String>,
}

/// State of one (correlation, group key).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Group {
    /// Start of the current window (tumbling kinds) or of the group's events.
    start: Millis,
    /// Event times in the window, ascending (sliding counts; capped at what the condition needs).
    times: VecDeque<Millis>,
    /// Events counted in the current tumbling window.
    count: u64,
    /// Distinct values (hashed) with the latest time each was seen.
    values: HashMap<u64, Millis>,
    /// temporal: latest time each referenced rule matched.
    seen: Vec<Option<Millis>>,
    /// temporal_ordered: for each prefix length k, the (start, last) of the best partial
    /// sequence matching the first k rules.
    best: Vec<Option<(Millis, Millis)>>,
    ids: IdSample,
    /// Events behind the current state (all kinds).
    events: u64,
    last: Last,
}

fn hash_value(v: &str) -> u64 {
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
pub struct Stats {
    /// Hits older than the watermark: counted, not added to any window.
    pub late_hits: u64,
    /// Event ids of the first late hits (for the report).
    pub late_samples: Vec<String>,
    /// Group keys evicted because a correlation reached its key cap.
    pub evicted_keys: u64,
    /// Groups dropped because their window had passed.
    pub expired_keys: u64,
}

/// The persisted form of the correlator.
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    ids: Vec<String>,
    groups: Vec<Vec<(Vec<String>, Group)>>,
    max_seen: Option<Millis>,
    stats: Stats,
}

const SNAPSHOT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state snapshot is not readable: {0}")]
    Corrupt(String),
    #[error("state snapshot has version {0}; this trailwatch reads version {SNAPSHOT_VERSION}")]
    Version(u32),
}

/// Evaluates correlations over hits in event-time order.
#[derive(Debug)]
pub struct Correlator {
    groups: Vec<HashMap<Vec<String>, Group>>,
    max_seen: Option<Millis>,
    pub lateness: Millis,
    pub max_keys: usize,
    pub stats: Stats,
    hits_since_sweep: u64,
}

impl Correlator {
    pub fn new(plans: &Plans, lateness: Millis, max_keys: usize) -> Self {
        Correlator {
            groups: vec![HashMap::new(); plans.plans.len()],
            max_seen: None,
            lateness,
            max_keys: max_keys.max(1),
            stats: Stats::default(),
            hits_since_sweep: 0,
        }
    }

    /// The newest event time seen minus the allowed lateness.
    pub fn watermark(&self) -> Option<Millis> {
        self.max_seen.map(|m| m - self.lateness)
    }

    /// Live group keys over all correlations.
    pub fn live_keys(&self) -> usize {
        self.groups.iter().map(HashMap::len).sum()
    }

    /// Moves event time on (also for events that fed nothing).
    pub fn observe(&mut self, t: Millis) {
        self.max_seen = Some(self.max_seen.map_or(t, |m| m.max(t)));
    }

    /// Adds a hit; returns the findings of correlations that fired (including chained ones).
    pub fn hit(&mut self, plans: &Plans, hit: Hit, out: &mut Vec<Finding>) {
        if self.watermark().is_some_and(|w| hit.time < w) {
            self.stats.late_hits += 1;
            if self.stats.late_samples.len() < 20 {
                self.stats
                    .late_samples
                    .extend(hit.event_ids.first().cloned());
            }
            return;
        }
        self.observe(hit.time);
        self.process(plans, hit, out);
        self.hits_since_sweep += 1;
        if self.hits_since_sweep >= 10_000 {
            self.hits_since_sweep = 0;
            self.sweep(plans);
        }
    }

    /// Judges tumbling windows that have closed before the watermark (or all of them at the
    /// end of input when `all` is set), and forgets groups whose window has passed.
    pub fn advance(&mut self, plans: &Plans, all: bool, out: &mut Vec<Finding>) {
        let wm = if all {
            Some(Millis::MAX)
        } else {
            self.watermark()
        };
        let Some(wm) = wm else { return };
        for (ci, plan) in plans.plans.iter().enumerate() {
            let def = &plan.corr.def;
            if !(matches!(def.kind, CorrKind::EventCount | CorrKind::ValueCount)
                && def.condition.has_upper_bound())
            {
                continue;
            }
            let mut closed: Vec<Vec<String>> = self.groups[ci]
                .iter()
                .filter(|(_, g)| g.start.saturating_add(def.timespan) <= wm)
                .map(|(k, _)| k.clone())
                .collect();
            closed.sort();
            for key in closed {
                if let Some(g) = self.groups[ci].remove(&key)
                    && let Some(f) = judge_tumbling(plan, &key, &g)
                {
                    self.fire_chain(plans, ci, f, out);
                }
            }
        }
        if !all {
            self.sweep(plans);
        }
    }

    fn fire_chain(&mut self, plans: &Plans, ci: usize, fired: Fired, out: &mut Vec<Finding>) {
        if !plans.corr_quiet[ci] {
            out.push(finding(&plans.plans[ci], &fired));
        }
        for &(parent, pos) in &plans.corr_feeds[ci] {
            let key = plans.plans[parent as usize]
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
                        .map(|k| fired.key[k].clone())
                        .unwrap_or_default()
                })
                .collect();
            let h = Hit {
                corr: parent,
                pos,
                time: fired.time,
                key,
                value: None,
                event_ids: fired.ids.clone(),
                count: fired.count,
                principal: fired.last.principal.clone(),
                account: fired.last.account.clone(),
                region: fired.last.region.clone(),
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

    /// Drops groups that can no longer fire (their events are all older than a timespan
    /// before the watermark).
    fn sweep(&mut self, plans: &Plans) {
        let Some(wm) = self.watermark() else { return };
        for (ci, plan) in plans.plans.iter().enumerate() {
            let def = &plan.corr.def;
            let tumbling = matches!(def.kind, CorrKind::EventCount | CorrKind::ValueCount)
                && def.condition.has_upper_bound();
            if tumbling {
                continue; // closed by `advance`, which judges them
            }
            let before = self.groups[ci].len();
            self.groups[ci].retain(|_, g| g.last.time.saturating_add(def.timespan) > wm);
            self.stats.expired_keys += (before - self.groups[ci].len()) as u64;
        }
    }

    /// Applies one hit to its group; returns what fired.
    fn apply(&mut self, plans: &Plans, h: &Hit) -> Option<Fired> {
        let ci = h.corr as usize;
        let plan = &plans.plans[ci];
        let def = &plan.corr.def;
        let groups = &mut self.groups[ci];
        if !groups.contains_key(&h.key) && groups.len() >= self.max_keys {
            // Evict the group seen longest ago (ties: smallest key), counted.
            if let Some(victim) = groups
                .iter()
                .min_by(|a, b| (a.1.last.time, a.0).cmp(&(b.1.last.time, b.0)))
                .map(|(k, _)| k.clone())
            {
                groups.remove(&victim);
                self.stats.evicted_keys += 1;
            }
        }
        let g = groups.entry(h.key.clone()).or_insert_with(|| Group {
            start: h.time,
            seen: vec![None; plan.refs.len()],
            best: vec![None; plan.refs.len() + 1],
            ..Group::default()
        });
        if h.time >= g.last.time {
            g.last = Last {
                time: h.time,
                principal: h.principal.clone(),
                account: h.account.clone(),
                region: h.region.clone(),
            };
        }
        let span = def.timespan;
        let cond = &def.condition;
        let fired_count: Option<u64> = match def.kind {
            CorrKind::EventCount | CorrKind::ValueCount if cond.has_upper_bound() => {
                // Tumbling window from the group's first event, judged when it closes. An
                // event past the window's end closes it first.
                if h.time >= g.start.saturating_add(span) {
                    let old = std::mem::take(g);
                    let judged = judge_tumbling(plan, &h.key, &old);
                    *g = Group {
                        start: h.time,
                        last: old.last,
                        ..Group::default()
                    };
                    add_tumbling(g, def.kind, h);
                    return judged;
                }
                add_tumbling(g, def.kind, h);
                None
            }
            CorrKind::EventCount => {
                let pos = g.times.partition_point(|&t| t <= h.time);
                g.times.insert(pos, h.time);
                g.events += h.count;
                g.ids.extend(h.event_ids.iter().cloned());
                let newest = g.times.back().copied().unwrap_or(h.time);
                while g.times.front().is_some_and(|&t| t <= newest - span) {
                    g.times.pop_front();
                }
                // Only the newest `min_count` times can decide a lower-bound condition.
                let need = cond.min_count() as usize;
                while g.times.len() > need {
                    g.times.pop_front();
                }
                let n = g.times.len() as u64;
                cond.holds(n).then_some(n)
            }
            CorrKind::ValueCount => {
                let v = h.value.as_deref().unwrap_or("");
                let e = g.values.entry(hash_value(v)).or_insert(h.time);
                *e = (*e).max(h.time);
                g.events += h.count;
                g.ids.extend(h.event_ids.iter().cloned());
                let newest = g.last.time;
                g.values.retain(|_, t| *t > newest - span);
                let n = g.values.len() as u64;
                cond.holds(n).then_some(n)
            }
            CorrKind::Temporal => {
                let p = h.pos as usize;
                g.seen[p] = Some(g.seen[p].map_or(h.time, |t: Millis| t.max(h.time)));
                g.events += h.count;
                g.ids.extend(h.event_ids.iter().cloned());
                let newest = g.seen.iter().flatten().copied().max().unwrap_or(h.time);
                for s in g.seen.iter_mut() {
                    if s.is_some_and(|t| t <= newest - span) {
                        *s = None;
                    }
                }
                g.seen.iter().all(Option::is_some).then_some(g.events)
            }
            CorrKind::TemporalOrdered => {
                let j = h.pos as usize;
                g.events += h.count;
                g.ids.extend(h.event_ids.iter().cloned());
                let candidate = if j == 0 {
                    Some((h.time, h.time))
                } else {
                    g.best[j]
                        .filter(|(start, last)| h.time >= *last && h.time - start < span)
                        .map(|(start, _)| (start, h.time))
                };
                if let Some(c) = candidate {
                    let slot = &mut g.best[j + 1];
                    // Keep the partial sequence that started latest (most room left).
                    if slot.is_none_or(|(s, _)| c.0 >= s) {
                        *slot = Some(c);
                    }
                }
                g.best[plan.refs.len()].is_some().then_some(g.events)
            }
        };
        let n = fired_count?;
        let g = groups.remove(&h.key)?;
        Some(Fired {
            key: h.key.clone(),
            time: h.time,
            start: match def.kind {
                CorrKind::EventCount => g.times.front().copied().unwrap_or(g.start),
                CorrKind::TemporalOrdered => g.best[plan.refs.len()].map_or(g.start, |(s, _)| s),
                CorrKind::Temporal => g.seen.iter().flatten().copied().min().unwrap_or(g.start),
                _ => g.start,
            },
            count: n,
            events: g.events.max(n),
            ids: g.ids.to_vec(),
            last: g.last,
        })
    }

    /// The correlator's state as bytes (versioned JSON), to persist across restarts.
    pub fn snapshot(&self, plans: &Plans) -> Vec<u8> {
        let snap = Snapshot {
            version: SNAPSHOT_VERSION,
            ids: plans
                .plans
                .iter()
                .map(|p| p.corr.def.meta.id.clone())
                .collect(),
            groups: self
                .groups
                .iter()
                .map(|m| {
                    let mut v: Vec<(Vec<String>, Group)> =
                        m.iter().map(|(k, g)| (k.clone(), g.clone())).collect();
                    v.sort_by(|a, b| a.0.cmp(&b.0));
                    v
                })
                .collect(),
            max_seen: self.max_seen,
            stats: self.stats.clone(),
        };
        serde_json::to_vec(&snap).unwrap_or_default()
    }

    /// Restores state saved by [`Correlator::snapshot`]. Correlations are matched by id;
    /// state of correlations no longer loaded is dropped.
    pub fn restore(&mut self, plans: &Plans, bytes: &[u8]) -> Result<(), StateError> {
        let snap: Snapshot =
            serde_json::from_slice(bytes).map_err(|e| StateError::Corrupt(e.to_string()))?;
        if snap.version != SNAPSHOT_VERSION {
            return Err(StateError::Version(snap.version));
        }
        let index: HashMap<&str, usize> = plans
            .plans
            .iter()
            .enumerate()
            .map(|(i, p)| (p.corr.def.meta.id.as_str(), i))
            .collect();
        for (id, groups) in snap.ids.iter().zip(snap.groups) {
            if let Some(&i) = index.get(id.as_str()) {
                let refs = plans.plans[i].refs.len();
                self.groups[i] = groups
                    .into_iter()
                    .filter(|(_, g)| g.seen.len() == refs || g.seen.is_empty())
                    .collect();
            }
        }
        self.max_seen = snap.max_seen;
        self.stats = snap.stats;
        Ok(())
    }
}

fn add_tumbling(g: &mut Group, kind: CorrKind, h: &Hit) {
    g.count += h.count;
    g.events += h.count;
    g.ids.extend(h.event_ids.iter().cloned());
    if kind == CorrKind::ValueCount {
        let v = h.value.as_deref().unwrap_or("");
        g.values.insert(hash_value(v), h.time);
    }
}

fn judge_tumbling(plan: &Plan, key: &[String], g: &Group) -> Option<Fired> {
    let def = &plan.corr.def;
    let n = match def.kind {
        CorrKind::ValueCount => g.values.len() as u64,
        _ => g.count,
    };
    def.condition.holds(n).then(|| Fired {
        key: key.to_vec(),
        time: g.last.time,
        start: g.start,
        count: n,
        events: g.events,
        ids: g.ids.to_vec(),
        last: g.last.clone(),
    })
}

/// A correlation that fired.
#[derive(Debug, Clone)]
struct Fired {
    key: Vec<String>,
    time: Millis,
    start: Millis,
    /// The count the condition judged (events, distinct values, or events for temporal).
    count: u64,
    events: u64,
    ids: Vec<String>,
    last: Last,
}

fn finding(plan: &Plan, f: &Fired) -> Finding {
    let def = &plan.corr.def;
    let group: serde_json::Map<String, serde_json::Value> = def
        .group_by
        .iter()
        .zip(&f.key)
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let key_text = f.key.join("|");
    let id = stable_id(&[
        "correlation",
        &def.meta.id,
        &key_text,
        &f.start.to_string(),
        &f.time.to_string(),
    ]);
    let who = if f.last.principal.is_empty() {
        "unknown".to_string()
    } else {
        f.last.principal.clone()
    };
    let by = if group.is_empty() {
        String::new()
    } else {
        format!(
            " by {}",
            def.group_by
                .iter()
                .zip(&f.key)
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let what = match def.kind {
        CorrKind::EventCount => format!(
            "{} matching events ({}) within {}{by}",
            f.count,
            plan.ref_titles.join(", "),
            format_duration(def.timespan)
        ),
        CorrKind::ValueCount => format!(
            "{} distinct values of {} in {} events ({}) within {}{by}",
            f.count,
            def.field.as_deref().unwrap_or("?"),
            f.events,
            plan.ref_titles.join(", "),
            format_duration(def.timespan)
        ),
        CorrKind::Temporal => format!(
            "{} all happened within {}{by}",
            plan.ref_titles.join(" + "),
            format_duration(def.timespan)
        ),
        CorrKind::TemporalOrdered => format!(
            "{} happened in this order within {}{by}",
            plan.ref_titles.join(" → "),
            format_duration(def.timespan)
        ),
    };
    let mut summary = format!("{}: {what}", def.meta.title);
    if let Some(a) = &f.last.account {
        summary.push_str(&format!(", account {a}"));
    }
    summary.push('.');
    let details = serde_json::json!({
        "correlation": {
            "type": def.kind.as_str(),
            "timespan": format_duration(def.timespan),
            "condition": def.condition,
            "group": group,
            "rules": plan.corr.refs.iter().map(|r| match r { RefId::Rule(id) | RefId::Correlation(id) => id.clone() }).collect::<Vec<_>>(),
            "count": f.count,
            "translated_from": def.translated_from,
        },
        "window": {"start": format_millis(f.start), "end": format_millis(f.time)},
        "rule_file": def.source.file,
    });
    Finding {
        incident: id.clone(),
        id,
        kind: Kind::Correlation,
        rule: RuleRef {
            id: def.meta.id.clone(),
            title: def.meta.title.clone(),
            level: def.meta.level,
            tags: def.meta.tags.clone(),
        },
        time: Some(format_millis(f.time)),
        principal: who,
        account: f.last.account.clone(),
        region: f.last.region.clone(),
        event_ids: f.ids.clone(),
        event_count: f.events,
        summary,
        details,
        event: None,
        time_ms: Some(f.time),
        suppress_key: Some(key_text),
    }
}

/// The level of a correlation finding (for `--fail-on`).
pub fn level_of(plan: &Plan) -> Level {
    plan.corr.def.meta.level
}
