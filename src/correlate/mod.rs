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

pub mod event_ids;

pub use event_ids::EventIds;

use crate::finding::{
    Body, CorrelationDetails, CorrelationInfo, Finding, ID_SAMPLE, IdSample, RuleRef, Window,
};
use crate::rules::Level;
use crate::rules::correlation::{CorrKind, RefId};
use crate::rules::plan::{Plan, Plans};
use crate::util::ids::stable_id;
use crate::util::time::{Millis, format_duration, format_millis};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

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

/// Hash sets (and group tables) of the correlator: foldhash (fast, seeded per process)
/// instead of SipHash; keys come from input, so a fixed-seed hash would invite collisions.
type FastSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

/// Shared copies of the parts of who and where (principals, accounts, regions) that tumbling
/// windows hold (they report their latest hit's who/where when judged, long after the record
/// is gone): one allocation per distinct text. Other groups keep no who/where: their
/// findings take it from the hit that completed them.
///
/// While a copy is held outside the interner it stays in it (`prune` forgets only copies
/// nobody else holds).
#[derive(Debug, Default)]
struct Interner {
    set: FastSet<Arc<str>>,
    /// The latest hit's who (as the worker made it) and the correlator's copy: the hits of
    /// one record share it, so most hits skip building one.
    recent_who: Option<(Arc<Who>, Arc<Who>)>,
    /// Values held just after the last pruning.
    pruned_at: usize,
}

impl Interner {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.set.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.set.insert(a.clone());
        a
    }

    /// A copy of `w` made of interned parts; `key` is a shared text that is often its
    /// principal (groups keyed by the principal), which saves a lookup.
    fn who(&mut self, w: &Who, key: &Arc<str>) -> Arc<Who> {
        let principal = if **key == *w.principal {
            key.clone()
        } else {
            self.get(&w.principal)
        };
        Arc::new(Who {
            principal,
            account: w.account.as_deref().map(|a| self.get(a)),
            region: w.region.as_deref().map(|r| self.get(r)),
        })
    }

    /// The correlator's copy of a hit's who/where (`key`: the hit's group key, as the group
    /// table holds it).
    fn who_of(&mut self, who: &Arc<Who>, key: &Arc<str>) -> Arc<Who> {
        if let Some((from, to)) = &self.recent_who
            && Arc::ptr_eq(from, who)
        {
            return to.clone();
        }
        let to = self.who(who, key);
        self.recent_who = Some((who.clone(), to.clone()));
        to
    }

    /// Forgets values no group holds any more, once the interner has doubled since it last
    /// did: a pruning reads every value (a cache miss each), so it is amortised over as many
    /// new values, and at most half of what the interner holds is unused.
    fn prune(&mut self) {
        let held = self.set.len();
        if held < 2 * self.pruned_at.max(1024) {
            return;
        }
        self.set.retain(|a| Arc::strong_count(a) > 1);
        self.pruned_at = self.set.len();
    }
}

/// Distinct-value counts (value hashes, already well mixed; foldhash, not SipHash).
type Scratch = HashMap<u64, u32, foldhash::fast::RandomState>;

/// Separates group-by values inside a group key.
pub const KEY_SEP: char = '\u{1f}';

fn split_key(key: &str) -> Vec<String> {
    key.split(KEY_SEP).map(str::to_string).collect()
}

/// Room a key's groups vec starts with.
const GROUPS_FIRST: usize = 4;

/// Groups of a key whose correlation is indexed in the key's table slot.
const ORDER: usize = 16;

/// Every correlation's group for one key: a record's hits usually share their key, so they
/// find all their groups with one lookup, next to each other in memory. One table slot per
/// key, a cache line each.
#[derive(Debug)]
#[repr(align(64))]
struct KeyGroups {
    key: Arc<str>,
    /// The correlation of each of the first [`ORDER`] groups (255: not indexed), mirroring
    /// `groups`: finding a correlation's group reads this (in the slot, already in cache)
    /// instead of the groups vec (a cache line per group).
    order: [u8; ORDER],
    /// (correlation, its group for this key), in no particular order; room for
    /// [`GROUPS_FIRST`] at first, then doubling (most keys feed a few correlations).
    groups: Vec<(u32, Group)>,
    /// No group of this key can expire before this time (at most the smallest `newest +
    /// timespan` of its sliding/temporal groups; tumbling groups never count): the sweep
    /// skips the key without reading its groups (a cache miss each) while the watermark is
    /// below it. A group's `newest` only grows, so the bound stays valid after hits; it is
    /// lowered when a group is made and made exact when the sweep reads the groups.
    due: Millis,
}

impl KeyGroups {
    fn new(key: Arc<str>) -> KeyGroups {
        KeyGroups {
            key,
            order: [u8::MAX; ORDER],
            groups: Vec::new(),
            due: Millis::MAX,
        }
    }

    /// The position of correlation `ci`'s group.
    fn find(&self, ci: u32) -> Option<usize> {
        let n = self.groups.len();
        if let Ok(c) = u8::try_from(ci)
            && c != u8::MAX
        {
            if let Some(i) = self.order[..n.min(ORDER)].iter().position(|&o| o == c) {
                return Some(i);
            }
            if n <= ORDER {
                return None;
            }
            return self.groups[ORDER..]
                .iter()
                .position(|(g, _)| *g == ci)
                .map(|i| i + ORDER);
        }
        self.groups.iter().position(|(g, _)| *g == ci)
    }

    fn push(&mut self, ci: u32, g: Group) {
        if let Some(o) = self.order.get_mut(self.groups.len()) {
            *o = u8::try_from(ci).unwrap_or(u8::MAX);
        }
        self.groups.push((ci, g));
    }

    /// Rebuilds `order` after groups were removed.
    fn reindex(&mut self) {
        self.order = [u8::MAX; ORDER];
        for (o, (ci, _)) in self.order.iter_mut().zip(&self.groups) {
            *o = u8::try_from(*ci).unwrap_or(u8::MAX);
        }
    }
}

/// The groups of all correlations, by group key (the text, hashed once per record).
#[derive(Debug, Default)]
struct Groups {
    table: hashbrown::HashTable<KeyGroups>,
    hasher: foldhash::fast::RandomState,
    /// Live groups per correlation.
    counts: Vec<usize>,
    /// The latest hit's key (as the worker made it) and its hash: the hits of one record
    /// share it, so most hits skip hashing.
    recent: Option<(Arc<str>, u64)>,
}

/// The entry of `key` in `table`, made (with no group) if there is none. (A function of the
/// fields, not a method: callers keep using the table's other fields while they hold it.)
fn key_entry<'t>(
    table: &'t mut hashbrown::HashTable<KeyGroups>,
    hasher: &foldhash::fast::RandomState,
    hash: u64,
    key: &Arc<str>,
) -> &'t mut KeyGroups {
    table
        .entry(
            hash,
            |s| *s.key == **key,
            |s| std::hash::BuildHasher::hash_one(hasher, &*s.key),
        )
        .or_insert_with(|| KeyGroups::new(key.clone()))
        .into_mut()
}

impl Groups {
    fn new(correlations: usize) -> Groups {
        Groups {
            counts: vec![0; correlations],
            ..Groups::default()
        }
    }

    fn hash(&self, key: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, key)
    }

    /// The hash of a hit's key (remembered for the next hit sharing it).
    fn hash_of(&mut self, key: &Arc<str>) -> u64 {
        if let Some((k, h)) = &self.recent
            && Arc::ptr_eq(k, key)
        {
            return *h;
        }
        let h = self.hash(key);
        self.recent = Some((key.clone(), h));
        h
    }

    /// Live groups of correlation `ci`.
    fn len(&self, ci: usize) -> usize {
        self.counts.get(ci).copied().unwrap_or(0)
    }

    /// Live groups over all correlations.
    fn total(&self) -> usize {
        self.counts.iter().sum()
    }

    fn contains(&self, ci: u32, hash: u64, key: &str) -> bool {
        self.table
            .find(hash, |s| *s.key == *key)
            .is_some_and(|s| s.find(ci).is_some())
    }

    fn get_mut(&mut self, ci: u32, hash: u64, key: &str) -> Option<&mut Group> {
        let s = self.table.find_mut(hash, |s| *s.key == *key)?;
        let i = s.find(ci)?;
        Some(&mut s.groups[i].1)
    }

    /// Removes correlation `ci`'s group at `key` (and the key, once no group is left).
    fn remove(&mut self, ci: u32, hash: u64, key: &str) -> Option<Group> {
        let Ok(mut e) = self.table.find_entry(hash, |s| *s.key == *key) else {
            return None;
        };
        let s = e.get_mut();
        let i = s.find(ci)?;
        let (_, g) = s.groups.swap_remove(i);
        s.reindex();
        if s.groups.is_empty() {
            e.remove();
        }
        if let Some(n) = self.counts.get_mut(ci as usize) {
            *n -= 1;
        }
        Some(g)
    }

    /// The key's entry (made if there is none) and the position of correlation `ci`'s group
    /// in it, made by `new` if there is none.
    fn get_or_insert_with(
        &mut self,
        ci: u32,
        hash: u64,
        key: &Arc<str>,
        new: impl FnOnce() -> Group,
    ) -> (&mut KeyGroups, usize) {
        let hasher = &self.hasher;
        let s = key_entry(&mut self.table, hasher, hash, key);
        let i = match s.find(ci) {
            Some(i) => i,
            None => {
                // Room for 4 first, then doubling: growing one at a time reallocated (and
                // copied) the vec at every new group of a key (8 % of the full pass), and keys
                // usually feed several correlations.
                if s.groups.len() == s.groups.capacity() {
                    s.groups.reserve_exact(s.groups.len().max(GROUPS_FIRST));
                }
                let g = new();
                s.push(ci, g);
                if let Some(n) = self.counts.get_mut(ci as usize) {
                    *n += 1;
                }
                s.groups.len() - 1
            }
        };
        (s, i)
    }

    /// Keeps the groups for which `keep(correlation, key, group)` holds.
    fn retain(&mut self, mut keep: impl FnMut(u32, &Arc<str>, &Group) -> bool) {
        let counts = &mut self.counts;
        self.table.retain(|s| {
            let key = &s.key;
            let before = s.groups.len();
            s.groups.retain(|(ci, g)| {
                let k = keep(*ci, key, g);
                if !k && let Some(n) = counts.get_mut(*ci as usize) {
                    *n -= 1;
                }
                k
            });
            if s.groups.capacity() > GROUPS_FIRST && s.groups.len() < s.groups.capacity() / 2 {
                s.groups.shrink_to_fit();
            }
            if s.groups.len() != before {
                s.reindex();
            }
            !s.groups.is_empty()
        });
    }

    /// Drops the groups that can no longer fire at watermark `wm`: sliding and temporal
    /// groups whose newest hit is a timespan (`span(correlation)`) or more before it.
    /// Tumbling windows are left to `advance`, which judges them. Keys whose `due` is past
    /// the watermark are kept without reading their groups. Returns how many were dropped.
    fn sweep(&mut self, wm: Millis, span: impl Fn(u32) -> Millis) -> usize {
        let counts = &mut self.counts;
        let mut dropped = 0;
        self.table.retain(|s| {
            if s.due > wm {
                return true;
            }
            let mut due = Millis::MAX;
            let before = s.groups.len();
            s.groups.retain(|(ci, g)| {
                if matches!(g.state, State::Tumbling(_)) {
                    return true;
                }
                let end = g.newest().saturating_add(span(*ci));
                if end > wm {
                    due = due.min(end);
                    return true;
                }
                if let Some(n) = counts.get_mut(*ci as usize) {
                    *n -= 1;
                }
                dropped += 1;
                false
            });
            s.due = due;
            if s.groups.capacity() > GROUPS_FIRST && s.groups.len() < s.groups.capacity() / 2 {
                s.groups.shrink_to_fit();
            }
            if s.groups.len() != before {
                s.reindex();
            }
            !s.groups.is_empty()
        });
        dropped
    }

    /// Correlation `ci`'s groups.
    fn iter(&self, ci: u32) -> impl Iterator<Item = (&Arc<str>, &Group)> {
        self.table.iter().flat_map(move |s| {
            s.groups
                .iter()
                .filter(move |(c, _)| *c == ci)
                .map(move |(_, g)| (&s.key, g))
        })
    }

    /// Every group: (correlation, key, group).
    fn iter_all(&self) -> impl Iterator<Item = (u32, &Arc<str>, &Group)> {
        self.table
            .iter()
            .flat_map(|s| s.groups.iter().map(move |(c, g)| (*c, &s.key, g)))
    }

    /// Sets correlation `ci`'s group at `key` (replacing one there).
    fn insert(&mut self, ci: u32, key: Arc<str>, group: Group) {
        let hash = self.hash(&key);
        let hasher = &self.hasher;
        let s = key_entry(&mut self.table, hasher, hash, &key);
        // Restored groups: the sweep reads the key's groups next time (and sets the bound).
        s.due = Millis::MIN;
        match s.find(ci) {
            Some(i) => s.groups[i].1 = group,
            None => {
                s.push(ci, group);
                if let Some(n) = self.counts.get_mut(ci as usize) {
                    *n += 1;
                }
            }
        }
    }
}

/// One hit as a window keeps it: its time and the event ids behind it, which also tell how
/// many events (1 for a rule match; the inner total for a chained correlation). 32 bytes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(from = "EvRepr", into = "EvRepr")]
struct Ev {
    t: Millis,
    /// Event ids (a record's UUID inline).
    ids: EventIds,
}

/// [`Ev`] as snapshots hold it (the event count a field of its own).
#[derive(Serialize, Deserialize)]
struct EvRepr {
    t: Millis,
    ids: EventIds,
    events: u64,
}

impl From<EvRepr> for Ev {
    fn from(r: EvRepr) -> Ev {
        Ev {
            t: r.t,
            ids: r.ids.with_events(r.events.max(1)),
        }
    }
}

impl From<Ev> for EvRepr {
    fn from(e: Ev) -> EvRepr {
        EvRepr {
            t: e.t,
            events: e.events(),
            ids: e.ids,
        }
    }
}

impl Ev {
    fn from_hit(h: &Hit) -> Ev {
        Ev {
            t: h.time,
            ids: h.event_ids.clone().with_events(h.count.max(1)),
        }
    }

    fn events(&self) -> u64 {
        self.ids.events()
    }
}

/// A tumbling window (conditions with an upper bound), judged when it closes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Tumble {
    start: Millis,
    /// Hits counted.
    count: u64,
    events: u64,
    /// value_count: distinct values; dropped once the upper bound is exceeded.
    values: Option<std::collections::HashSet<u64>>,
    /// value_count: more distinct values than the upper bound allows.
    exceeded: bool,
    ids: IdSample,
    last: Last,
}

/// A partial `temporal_ordered` sequence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Chain {
    start: Millis,
    last: Millis,
    evs: Vec<Ev>,
}

/// What a group keeps, by correlation type: only what its condition needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
enum State {
    /// event_count with lower bounds: hits in time order within reach of a window.
    Sliding(Vec<Ev>),
    /// The same with exactly one hit, held inline (most groups never see a second).
    Sliding1(Ev),
    /// value_count with lower bounds: hits with their value (at most two per value).
    SlidingValues(Vec<(Ev, u64)>),
    /// The same with exactly one hit, held inline.
    SlidingValues1(Ev, u64),
    /// Upper-bound counts: open windows in start order.
    Tumbling(Vec<Tumble>),
    /// temporal: the latest hit of each referenced rule.
    Temporal(Vec<Option<Ev>>),
    /// temporal_ordered: for each prefix length k, the partial sequence that started latest.
    Ordered(Vec<Option<Chain>>),
}

/// State of one (correlation, group key). Who acted and where is not kept: a finding takes it
/// from the hit that completed its window (tumbling windows keep their own).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(from = "GroupRepr", into = "GroupRepr")]
struct Group {
    state: State,
    /// The newest event time among the group's hits.
    newest: Millis,
}

/// [`Group`] as snapshots of version 2 hold it: `last.time` is the newest time; `last.who`
/// is written empty and ignored when read (groups kept it before findings took it from the
/// completing hit).
#[derive(Serialize, Deserialize)]
struct GroupRepr {
    state: State,
    last: Last,
}

impl From<GroupRepr> for Group {
    fn from(r: GroupRepr) -> Group {
        Group {
            state: r.state,
            newest: r.last.time,
        }
    }
}

impl From<Group> for GroupRepr {
    fn from(g: Group) -> GroupRepr {
        GroupRepr {
            state: g.state,
            last: Last {
                time: g.newest,
                who: Arc::default(),
            },
        }
    }
}

impl Group {
    /// An empty group.
    fn new(plan: &Plan) -> Group {
        let def = &plan.corr.def;
        let n = plan.refs.len();
        let state = match def.kind {
            CorrKind::EventCount | CorrKind::ValueCount if def.condition.has_upper_bound() => {
                State::Tumbling(Vec::new())
            }
            CorrKind::EventCount => State::Sliding(Vec::new()),
            CorrKind::ValueCount => State::SlidingValues(Vec::new()),
            CorrKind::Temporal => State::Temporal(vec![None; n]),
            CorrKind::TemporalOrdered => State::Ordered(vec![None; n + 1]),
        };
        Group {
            state,
            newest: Millis::MIN,
        }
    }

    /// Does this state fit the plan (after a restore, rules may have changed)?
    fn fits(&self, plan: &Plan) -> bool {
        let fresh = Group::new(plan);
        match (&self.state, &fresh.state) {
            (State::Temporal(a), State::Temporal(b)) => a.len() == b.len(),
            (State::Ordered(a), State::Ordered(b)) => a.len() == b.len(),
            (State::Sliding1(_), State::Sliding(_)) => true,
            (State::SlidingValues1(..), State::SlidingValues(_)) => true,
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }

    /// The newest time this group holds.
    fn newest(&self) -> Millis {
        self.newest
    }
}

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

/// The persisted form of the correlator.
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    ids: Vec<String>,
    groups: Vec<Vec<(Arc<str>, Group)>>,
    max_seen: Option<Millis>,
    stats: CorrelationStats,
}

const SNAPSHOT_VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum CorrelationSnapshotError {
    #[error("state snapshot is not readable: {0}")]
    Corrupt(String),
    #[error("state snapshot has version {0}; this trailwatch reads version {SNAPSHOT_VERSION}")]
    Version(u32),
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
        if groups.len(ci) >= self.max_keys && !groups.contains(h.corr, hash, &h.key) {
            // Evict the group seen longest ago (ties: smallest key), counted.
            if let Some(victim) = groups
                .iter(h.corr)
                .min_by(|a, b| (a.1.newest, a.0).cmp(&(b.1.newest, b.0)))
                .map(|(k, _)| k.clone())
            {
                let vh = groups.hash(&victim);
                groups.remove(h.corr, vh, &victim);
                self.stats.evicted_keys += 1;
            }
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
        let fired: Option<(Millis, u64, Vec<Ev>)> = match &mut g.state {
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
            // A group holding at most one hit, under a condition two hits cannot meet (the
            // usual case): the outcome is at most two hits and no firing, worked out without
            // building a buffer.
            state @ (State::Sliding(_) | State::Sliding1(_))
                if !cond.holds(2) && is_small(state) =>
            {
                *state = match merge_small(take_small(state), (Ev::from_hit(h), 0), newest - reach)
                {
                    (None, _) => State::Sliding(Vec::new()),
                    (Some((a, _)), None) => State::Sliding1(a),
                    (Some((a, _)), Some((b, _))) => State::Sliding(vec![a, b]),
                };
                None
            }
            state @ (State::SlidingValues(_) | State::SlidingValues1(..))
                if !cond.holds(2) && is_small(state) =>
            {
                let v = h.value.unwrap_or_else(|| hash_value(""));
                *state = match merge_small(take_small(state), (Ev::from_hit(h), v), newest - reach)
                {
                    (None, _) => State::SlidingValues(Vec::new()),
                    (Some((a, va)), None) => State::SlidingValues1(a, va),
                    (Some(a), Some(b)) => State::SlidingValues(vec![a, b]),
                };
                None
            }
            state @ (State::Sliding(_) | State::Sliding1(_)) => {
                let mut evs = match std::mem::replace(state, State::Sliding(Vec::new())) {
                    State::Sliding1(e) => {
                        let mut d = Vec::with_capacity(2);
                        d.push(e);
                        d
                    }
                    State::Sliding(d) => d,
                    // Unreachable: the arm matched only the two sliding states.
                    other => {
                        *state = other;
                        return None;
                    }
                };
                let evs = &mut evs;
                let pos = split_at_time(evs, h.time, |e| e.t);
                evs.insert(pos, Ev::from_hit(h));
                let old = split_at_time(evs, newest - reach, |e| e.t);
                evs.drain(..old);
                // Safety cap: the condition fires before a group can hold much more.
                let cap = (cond.min_count() as usize)
                    .saturating_mul(2 + (self.lateness / span.max(1)) as usize)
                    + 16;
                if evs.len() > cap {
                    let extra = evs.len() - cap;
                    evs.drain(..extra);
                }
                // Only lower bounds here: no window holds more hits than the buffer, so a
                // buffer too small for the condition needs no search (most groups).
                let fired = (cond.holds(evs.len() as u64))
                    .then(|| sliding_window(evs, h.time, span, |n, _| cond.holds(n)))
                    .flatten()
                    .map(|(l, r)| {
                        let window: Vec<Ev> = evs[l..=r].to_vec();
                        let count = (r - l + 1) as u64;
                        evs.drain(..=r);
                        (window.first().map_or(h.time, |e| e.t), count, window)
                    });
                *state = if evs.len() == 1 {
                    match evs.pop() {
                        Some(e) => State::Sliding1(e),
                        None => State::Sliding(Vec::new()),
                    }
                } else {
                    State::Sliding(std::mem::take(evs))
                };
                fired
            }
            state @ (State::SlidingValues(_) | State::SlidingValues1(..)) => {
                if let State::SlidingValues1(e, v) = state {
                    let held = (std::mem::replace(e, Ev::from_hit(h)), *v);
                    *state = State::SlidingValues(vec![held]);
                }
                let State::SlidingValues(evs) = state else {
                    return None;
                };
                let v = h.value.unwrap_or_else(|| hash_value(""));
                let pos = split_at_time(evs, h.time, |(e, _)| e.t);
                evs.insert(pos, (Ev::from_hit(h), v));
                // Keep at most the two latest entries per value (checked only when the
                // buffer is large enough to matter).
                if evs.len() > 2 * cond.min_count() as usize + 8 {
                    let scratch = &mut self.scratch;
                    scratch.clear();
                    let mut keep: Vec<bool> = vec![true; evs.len()];
                    for (i, (_, val)) in evs.iter().enumerate().rev() {
                        let c = scratch.entry(*val).or_default();
                        *c += 1;
                        if *c > 2 {
                            keep[i] = false;
                        }
                    }
                    let mut i = 0;
                    evs.retain(|_| {
                        let k = keep[i];
                        i += 1;
                        k
                    });
                }
                let old = split_at_time(evs, newest - reach, |(e, _)| e.t);
                evs.drain(..old);
                // As above: no window has more distinct values than the buffer has hits.
                let fired = (cond.holds(evs.len() as u64))
                    .then(|| {
                        distinct_window(evs, h.time, span, &mut self.scratch, |n| cond.holds(n))
                    })
                    .flatten()
                    .map(|(l, r, n)| {
                        let window: Vec<Ev> = evs[l..=r].iter().map(|(e, _)| e.clone()).collect();
                        evs.drain(..=r);
                        (window.first().map_or(h.time, |e| e.t), n, window)
                    });
                if evs.len() == 1
                    && let Some((e, v)) = evs.pop()
                {
                    *state = State::SlidingValues1(e, v);
                }
                fired
            }
            State::Temporal(seen) => {
                let p = h.pos as usize;
                if p < seen.len() && seen[p].as_ref().is_none_or(|e| h.time >= e.t) {
                    seen[p] = Some(Ev::from_hit(h));
                }
                for s in seen.iter_mut() {
                    if s.as_ref().is_some_and(|e| e.t <= newest - reach) {
                        *s = None;
                    }
                }
                let all = seen.iter().all(Option::is_some);
                let (lo, hi) = seen
                    .iter()
                    .flatten()
                    .fold((Millis::MAX, Millis::MIN), |(lo, hi), e| {
                        (lo.min(e.t), hi.max(e.t))
                    });
                if all && hi - lo < span {
                    let window: Vec<Ev> = seen.iter_mut().filter_map(Option::take).collect();
                    Some((lo, window.len() as u64, window))
                } else {
                    None
                }
            }
            State::Ordered(best) => {
                let j = h.pos as usize;
                let n = best.len() - 1;
                let candidate = if j == 0 {
                    Some(Chain {
                        start: h.time,
                        last: h.time,
                        evs: vec![Ev::from_hit(h)],
                    })
                } else {
                    best.get(j)
                        .and_then(|c| c.as_ref())
                        .filter(|c| h.time >= c.last && h.time - c.start < span)
                        .map(|c| {
                            let mut evs = c.evs.clone();
                            evs.push(Ev::from_hit(h));
                            Chain {
                                start: c.start,
                                last: h.time,
                                evs,
                            }
                        })
                };
                if let Some(c) = candidate
                    && j < n
                {
                    let slot = &mut best[j + 1];
                    // Keep the partial sequence that started latest (most room left).
                    if slot.as_ref().is_none_or(|s| c.start >= s.start) {
                        *slot = Some(c);
                    }
                }
                for c in best.iter_mut() {
                    if c.as_ref().is_some_and(|c| c.start <= newest - reach) {
                        *c = None;
                    }
                }
                match best[n].take() {
                    Some(c) => {
                        best.iter_mut().for_each(|b| *b = None);
                        Some((c.start, c.evs.len() as u64, c.evs))
                    }
                    None => None,
                }
            }
        };
        let (start, count, mut window) = fired?;
        window.sort_by_key(|e| e.t);
        // Who acted and where: the hit that completed the window.
        let last = Last {
            time: h.time,
            who: h.who.clone(),
        };
        let empty = match &g.state {
            State::Sliding(e) => e.is_empty(),
            State::Sliding1(_) | State::SlidingValues1(..) => false,
            State::SlidingValues(e) => e.is_empty(),
            State::Temporal(s) => s.iter().all(Option::is_none),
            State::Ordered(b) => b.iter().all(Option::is_none),
            State::Tumbling(w) => w.is_empty(),
        };
        if empty {
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

    /// The correlator's state as bytes (versioned JSON), to persist across restarts.
    pub fn snapshot(&self, plans: &Plans) -> Vec<u8> {
        let snap = Snapshot {
            version: SNAPSHOT_VERSION,
            ids: plans
                .plans
                .iter()
                .map(|p| p.corr.def.meta.id.clone())
                .collect(),
            groups: {
                // Per correlation, by key (the layout of version 2, before the groups of a
                // key were kept together).
                let mut per: Vec<Vec<(Arc<str>, Group)>> = vec![Vec::new(); plans.plans.len()];
                for (ci, k, g) in self.groups.iter_all() {
                    if let Some(v) = per.get_mut(ci as usize) {
                        v.push((k.clone(), g.clone()));
                    }
                }
                for v in &mut per {
                    v.sort_by(|a, b| a.0.cmp(&b.0));
                }
                per
            },
            max_seen: self.max_seen,
            stats: self.stats.clone(),
        };
        serde_json::to_vec(&snap).unwrap_or_default()
    }

    /// Restores state saved by [`Correlator::snapshot`]. Correlations are matched by id;
    /// state of correlations no longer loaded, or whose type or rules changed, is dropped.
    pub fn restore(&mut self, plans: &Plans, bytes: &[u8]) -> Result<(), CorrelationSnapshotError> {
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let v: Version = serde_json::from_slice(bytes)
            .map_err(|e| CorrelationSnapshotError::Corrupt(e.to_string()))?;
        if v.version != SNAPSHOT_VERSION {
            return Err(CorrelationSnapshotError::Version(v.version));
        }
        let snap: Snapshot = serde_json::from_slice(bytes)
            .map_err(|e| CorrelationSnapshotError::Corrupt(e.to_string()))?;
        let index: HashMap<&str, usize> = plans
            .plans
            .iter()
            .enumerate()
            .map(|(i, p)| (p.corr.def.meta.id.as_str(), i))
            .collect();
        for (id, groups) in snap.ids.iter().zip(snap.groups) {
            if let Some(&i) = index.get(id.as_str()) {
                let plan = &plans.plans[i];
                let ci = i as u32;
                self.groups.retain(|c, _, _| c != ci);
                for (k, g) in groups.into_iter().filter(|(_, g)| g.fits(plan)) {
                    // A key given twice: the last one wins.
                    self.groups.insert(ci, k, g);
                }
            }
        }
        self.deadlines.clear();
        for (ci, key, g) in self.groups.iter_all() {
            let Some(plan) = plans.plans.get(ci as usize) else {
                continue;
            };
            let span = plan.corr.def.timespan;
            if let State::Tumbling(ws) = &g.state {
                for w in ws {
                    self.deadlines.push(std::cmp::Reverse((
                        w.start.saturating_add(span),
                        ci,
                        key.clone(),
                    )));
                }
            }
        }
        self.max_seen = snap.max_seen;
        self.stats = snap.stats;
        Ok(())
    }
}

/// The earliest window `(e - span, e]` that contains `t`, ends at a held hit `e` in
/// `[t, t + span)`, and whose hit count satisfies `ok`: `(first, last)` indices.
/// Does a sliding state hold at most one hit?
fn is_small(state: &State) -> bool {
    match state {
        State::Sliding(v) => v.is_empty(),
        State::SlidingValues(v) => v.is_empty(),
        State::Sliding1(_) | State::SlidingValues1(..) => true,
        _ => false,
    }
}

/// The hit a small sliding state holds (with its value; 0 for `event_count`), leaving it
/// empty.
fn take_small(state: &mut State) -> Option<(Ev, u64)> {
    match std::mem::replace(state, State::Sliding(Vec::new())) {
        State::Sliding1(e) => Some((e, 0)),
        State::SlidingValues1(e, v) => Some((e, v)),
        _ => None,
    }
}

/// At most two hits with their values, in time order.
type Two = (Option<(Ev, u64)>, Option<(Ev, u64)>);

/// A held hit and a new one, in time order, without those at or before `oldest` (out of reach
/// of any window). A new hit at the same time as the held one goes after it, as in buffers.
fn merge_small(held: Option<(Ev, u64)>, new: (Ev, u64), oldest: Millis) -> Two {
    let held = held.filter(|(e, _)| e.t > oldest);
    let new = (new.0.t > oldest).then_some(new);
    match (held, new) {
        (Some(a), Some(b)) if a.0.t <= b.0.t => (Some(a), Some(b)),
        (Some(a), Some(b)) => (Some(b), Some(a)),
        (a, b) => (a.or(b), None),
    }
}

/// The ids a finding carries for a window: the first and the last [`ID_SAMPLE`] (as
/// [`IdSample`] keeps them), formatting only those (a window can hold thousands).
fn sample_ids(window: &[Ev]) -> Vec<String> {
    let ids = || {
        window
            .iter()
            .flat_map(|e| (0..e.ids.len()).map(move |i| (e, i)))
    };
    let total = window.iter().map(|e| e.ids.len()).sum::<usize>();
    let text = |(e, i): (&Ev, usize)| e.ids.get(i);
    if total <= 2 * ID_SAMPLE {
        return ids().filter_map(text).collect();
    }
    let mut out: Vec<String> = ids().take(ID_SAMPLE).filter_map(text).collect();
    let mut last: Vec<String> = window
        .iter()
        .rev()
        .flat_map(|e| (0..e.ids.len()).rev().map(move |i| (e, i)))
        .take(ID_SAMPLE)
        .filter_map(text)
        .collect();
    last.reverse();
    out.append(&mut last);
    out
}

/// How many of `evs` (in time order) are at or before `t`. Hits come nearly in time order, so
/// a new one usually goes last and the oldest is usually still within reach: both ends are
/// looked at before a binary search (which touches a cache line per step of a large buffer).
fn split_at_time<T>(evs: &[T], t: Millis, time: impl Fn(&T) -> Millis) -> usize {
    match (evs.first(), evs.last()) {
        (None, _) | (_, None) => 0,
        (Some(first), _) if time(first) > t => 0,
        (_, Some(last)) if time(last) <= t => evs.len(),
        _ => evs.partition_point(|e| time(e) <= t),
    }
}

fn sliding_window(
    evs: &[Ev],
    t: Millis,
    span: Millis,
    ok: impl Fn(u64, Millis) -> bool,
) -> Option<(usize, usize)> {
    let mut l = 0usize;
    for r in 0..evs.len() {
        let e = evs[r].t;
        if e < t {
            continue;
        }
        if e >= t.saturating_add(span) {
            break;
        }
        while evs[l].t <= e - span {
            l += 1;
        }
        if ok((r - l + 1) as u64, e) {
            return Some((l, r));
        }
    }
    None
}

/// Like [`sliding_window`], counting distinct values: `(first, last, distinct)`.
fn distinct_window(
    evs: &[(Ev, u64)],
    t: Millis,
    span: Millis,
    counts: &mut Scratch,
    ok: impl Fn(u64) -> bool,
) -> Option<(usize, usize, u64)> {
    counts.clear();
    let mut l = 0usize;
    for r in 0..evs.len() {
        let e = evs[r].0.t;
        if e >= t.saturating_add(span) {
            break;
        }
        *counts.entry(evs[r].1).or_default() += 1;
        while evs[l].0.t <= e - span {
            if let Some(c) = counts.get_mut(&evs[l].1) {
                *c -= 1;
                if *c == 0 {
                    counts.remove(&evs[l].1);
                }
            }
            l += 1;
        }
        if e >= t && ok(counts.len() as u64) {
            return Some((l, r, counts.len() as u64));
        }
    }
    None
}

/// Adds a hit to the tumbling window that contains it, opening one if none does.
/// Returns the start of the window it opened, if it opened one.
fn add_tumbling(
    ws: &mut Vec<Tumble>,
    span: Millis,
    kind: CorrKind,
    upper: Option<u64>,
    h: &Hit,
    last: &Last,
) -> Option<Millis> {
    let mut opened = None;
    let i = match ws
        .iter()
        .position(|w| w.start <= h.time && h.time < w.start.saturating_add(span))
    {
        Some(i) => i,
        None => {
            opened = Some(h.time);
            let at = ws.partition_point(|w| w.start <= h.time);
            ws.insert(
                at,
                Tumble {
                    start: h.time,
                    count: 0,
                    events: 0,
                    values: (kind == CorrKind::ValueCount).then(Default::default),
                    exceeded: false,
                    ids: IdSample::default(),
                    last: Last::default(),
                },
            );
            at
        }
    };
    let w = &mut ws[i];
    w.count += 1;
    w.events += h.count.max(1);
    h.event_ids.for_each(|id| w.ids.push(id));
    if h.time >= w.last.time {
        w.last = last.clone();
    }
    if let Some(values) = &mut w.values {
        values.insert(h.value.unwrap_or_else(|| hash_value("")));
        // Past the upper bound the condition cannot hold: stop keeping values.
        if upper.is_some_and(|u| values.len() as u64 > u) {
            w.exceeded = true;
            w.values = Some(Default::default());
        }
    }
    opened
}

fn judge_tumbling(plan: &Plan, key: &str, w: Tumble) -> Option<Fired> {
    let def = &plan.corr.def;
    let n = match (&w.values, w.exceeded) {
        (_, true) => u64::MAX,
        (Some(v), false) => v.len() as u64,
        (None, _) => w.count,
    };
    def.condition.holds(n).then(|| Fired {
        key: split_key(key),
        time: w.last.time,
        start: w.start,
        count: n,
        events: w.events,
        ids: w.ids.to_vec(),
        last: w.last,
    })
}

/// A correlation that fired.
#[derive(Debug, Clone)]
struct Fired {
    key: Vec<String>,
    time: Millis,
    start: Millis,
    /// The count the condition judged (hits, distinct values, or steps for temporal).
    count: u64,
    /// Events behind the finding.
    events: u64,
    ids: Vec<String>,
    last: Last,
}

fn finding(plan: &Plan, f: &Fired) -> Finding {
    let def = &plan.corr.def;
    let group: std::collections::BTreeMap<String, String> = def
        .group_by
        .iter()
        .zip(&f.key)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let key_text = f.key.join("|");
    let id = stable_id(&[
        "correlation",
        &def.meta.id,
        &key_text,
        &f.start.to_string(),
        &f.time.to_string(),
    ]);
    let who = if f.last.who.principal.is_empty() {
        "unknown".to_string()
    } else {
        f.last.who.principal.to_string()
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
    if let Some(a) = &f.last.who.account {
        summary.push_str(&format!(", account {a}"));
    }
    summary.push('.');
    let details = CorrelationDetails {
        correlation: CorrelationInfo {
            kind: def.kind.as_str().to_string(),
            timespan: format_duration(def.timespan),
            condition: serde_json::to_value(def.condition).unwrap_or_default(),
            group,
            rules: plan
                .corr
                .refs
                .iter()
                .map(|r| match r {
                    RefId::Rule(id) | RefId::Correlation(id) => id.clone(),
                })
                .collect(),
            count: f.count,
            translated_from: def.translated_from.clone(),
        },
        window: Window {
            start: format_millis(f.start),
            end: format_millis(f.time),
        },
        rule_file: def.source.file.clone(),
    };
    Finding::new(
        id,
        RuleRef::of(&def.meta),
        Body::Correlation(Box::new(details)),
    )
    .with_time(Some(format_millis(f.time)), Some(f.time))
    .with_who(
        who,
        f.last.who.account.as_deref().map(str::to_string),
        f.last.who.region.as_deref().map(str::to_string),
    )
    .with_events(f.ids.clone(), f.events)
    .with_summary(summary)
    .with_suppress_key(key_text)
}

/// The level of a correlation finding (for `--fail-on`).
pub fn level_of(plan: &Plan) -> Level {
    plan.corr.def.meta.level
}
