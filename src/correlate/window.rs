//! Window states: what a group keeps for its correlation, and how a hit moves its window
//! (sliding counts, tumbling windows, temporal sets and sequences).

use super::render::{Fired, split_key};
use super::snapshot::{EvRepr, GroupRepr};
use super::{EventIds, Hit, Last, Scratch, hash_value};
use crate::finding::IdSample;
use crate::rules::correlation::{CorrKind, CountCond};
use crate::rules::plan::Plan;
use crate::util::time::Millis;
use serde::{Deserialize, Serialize};
/// One hit as a window keeps it: its time and the event ids behind it, which also tell how
/// many events (1 for a rule match; the inner total for a chained correlation). 32 bytes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(from = "EvRepr", into = "EvRepr")]
pub(super) struct Ev {
    pub(super) t: Millis,
    /// Event ids (a record's UUID inline).
    pub(super) ids: EventIds,
}

impl Ev {
    fn from_hit(h: &Hit) -> Ev {
        Ev {
            t: h.time,
            ids: h.event_ids.clone().with_events(h.count.max(1)),
        }
    }

    pub(super) fn events(&self) -> u64 {
        self.ids.events()
    }
}

/// A tumbling window (conditions with an upper bound), judged when it closes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(super) struct Tumble {
    pub(super) start: Millis,
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
pub(super) struct Chain {
    start: Millis,
    last: Millis,
    evs: Vec<Ev>,
}

/// What a group keeps, by correlation type: only what its condition needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(super) enum State {
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
pub(super) struct Group {
    pub(super) state: State,
    /// The newest event time among the group's hits.
    pub(super) newest: Millis,
}

impl Group {
    /// An empty group.
    pub(super) fn new(plan: &Plan) -> Group {
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
    pub(super) fn fits(&self, plan: &Plan) -> bool {
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
    pub(super) fn newest(&self) -> Millis {
        self.newest
    }
}

/// The window a hit fired: its start, the count the condition judged, and its hits.
pub(super) type Window = (Millis, u64, Vec<Ev>);

/// A correlation's windows, as a hit meets one of its groups.
pub(super) struct Spec<'a> {
    pub(super) cond: &'a CountCond,
    /// The timespan.
    pub(super) span: Millis,
    /// The allowed lateness of events.
    pub(super) lateness: Millis,
    /// The timespan plus the lateness: a hit this far (or farther) before the group's newest
    /// is out of reach of any window.
    pub(super) reach: Millis,
}

impl State {
    /// Adds hit `h` to a sliding or temporal state (`newest`: the group's newest time, `h`'s
    /// included); returns the window it fired, whose hits the state no longer holds.
    /// Tumbling windows take nothing here: the correlator adds to them with [`add_tumbling`]
    /// (it keeps their deadlines) and judges them when they close.
    pub(super) fn add(
        &mut self,
        h: &Hit,
        newest: Millis,
        spec: &Spec<'_>,
        scratch: &mut Scratch,
    ) -> Option<Window> {
        let cond = spec.cond;
        match self {
            State::Tumbling(_) => None,
            // A group holding at most one hit, under a condition two hits cannot meet (the
            // usual case): the outcome is at most two hits and no firing, worked out without
            // building a buffer.
            state @ (State::Sliding(_) | State::Sliding1(_))
                if !cond.holds(2) && is_small(state) =>
            {
                state.add_small_count(h, newest, spec);
                None
            }
            state @ (State::SlidingValues(_) | State::SlidingValues1(..))
                if !cond.holds(2) && is_small(state) =>
            {
                state.add_small_values(h, newest, spec);
                None
            }
            state @ (State::Sliding(_) | State::Sliding1(_)) => state.slide_count(h, newest, spec),
            state @ (State::SlidingValues(_) | State::SlidingValues1(..)) => {
                state.slide_values(h, newest, spec, scratch)
            }
            State::Temporal(seen) => add_temporal(seen, h, newest, spec),
            State::Ordered(best) => add_ordered(best, h, newest, spec),
        }
    }

    /// `event_count` holding at most one hit, under a condition two hits cannot meet.
    fn add_small_count(&mut self, h: &Hit, newest: Millis, spec: &Spec<'_>) {
        let reach = spec.reach;
        let state = self;
        *state = match merge_small(take_small(state), (Ev::from_hit(h), 0), newest - reach) {
            (None, _) => State::Sliding(Vec::new()),
            (Some((a, _)), None) => State::Sliding1(a),
            (Some((a, _)), Some((b, _))) => State::Sliding(vec![a, b]),
        };
    }

    /// `value_count` holding at most one hit, under a condition two hits cannot meet.
    fn add_small_values(&mut self, h: &Hit, newest: Millis, spec: &Spec<'_>) {
        let reach = spec.reach;
        let state = self;
        let v = h.value.unwrap_or_else(|| hash_value(""));
        *state = match merge_small(take_small(state), (Ev::from_hit(h), v), newest - reach) {
            (None, _) => State::SlidingValues(Vec::new()),
            (Some((a, va)), None) => State::SlidingValues1(a, va),
            (Some(a), Some(b)) => State::SlidingValues(vec![a, b]),
        };
    }

    /// `event_count` with lower bounds: the hit joins the buffer, and the earliest window it
    /// completes fires and is consumed.
    fn slide_count(&mut self, h: &Hit, newest: Millis, spec: &Spec<'_>) -> Option<Window> {
        let &Spec {
            cond,
            span,
            lateness,
            reach,
        } = spec;
        let state = self;
        let mut evs = match std::mem::replace(state, State::Sliding(Vec::new())) {
            State::Sliding1(e) => {
                let mut d = Vec::with_capacity(2);
                d.push(e);
                d
            }
            State::Sliding(d) => d,
            // Unreachable: `add` calls this for the two sliding states only.
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
        let cap =
            (cond.min_count() as usize).saturating_mul(2 + (lateness / span.max(1)) as usize) + 16;
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

    /// `value_count` with lower bounds: as [`State::slide_count`], counting distinct values.
    fn slide_values(
        &mut self,
        h: &Hit,
        newest: Millis,
        spec: &Spec<'_>,
        scratch: &mut Scratch,
    ) -> Option<Window> {
        let &Spec {
            cond, span, reach, ..
        } = spec;
        let state = self;
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
            .then(|| distinct_window(evs, h.time, span, scratch, |n| cond.holds(n)))
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

    /// Does this state hold nothing (its hits consumed by a firing, or out of reach)?
    pub(super) fn is_empty(&self) -> bool {
        match self {
            State::Sliding(e) => e.is_empty(),
            State::Sliding1(_) | State::SlidingValues1(..) => false,
            State::SlidingValues(e) => e.is_empty(),
            State::Temporal(s) => s.iter().all(Option::is_none),
            State::Ordered(b) => b.iter().all(Option::is_none),
            State::Tumbling(w) => w.is_empty(),
        }
    }
}

/// `temporal`: the hit becomes its rule's latest; fires once every rule's latest hit lies
/// within the timespan, and the group starts afresh.
fn add_temporal(
    seen: &mut [Option<Ev>],
    h: &Hit,
    newest: Millis,
    spec: &Spec<'_>,
) -> Option<Window> {
    let &Spec { span, reach, .. } = spec;
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

/// `temporal_ordered`: the hit extends the partial sequence one step shorter (or starts one);
/// fires once a sequence is complete within the timespan, and the group starts afresh.
fn add_ordered(
    best: &mut [Option<Chain>],
    h: &Hit,
    newest: Millis,
    spec: &Spec<'_>,
) -> Option<Window> {
    let &Spec { span, reach, .. } = spec;
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

/// The earliest window `(e - span, e]` that contains `t`, ends at a held hit `e` in
/// `[t, t + span)`, and whose hit count satisfies `ok`: `(first, last)` indices.
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
pub(super) fn add_tumbling(
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

/// The finding of a closed tumbling window, if its condition holds.
pub(super) fn judge_tumbling(plan: &Plan, key: &str, w: Tumble) -> Option<Fired> {
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
