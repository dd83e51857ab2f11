//! The re-order buffer: each file's results, sorted by event time, wait as a run; runs are
//! merged in `(eventTime, file, record)` order once the newest time seen is a window past
//! them. Records delivered twice are read once.

use super::Item;
use crate::engine::Evaluated;
use crate::util::time::Millis;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Ids of the findings reported, to report a record delivered twice only once. Bounded by
/// event time, not by the number of findings: an id is forgotten once the newest finding is
/// `horizon` past it (a copy delivered that much later is counted again).
pub(super) struct SeenIds<K> {
    /// Ids are hashes already: a fast fixed-seed hasher (SipHash was 3 % of a backtest).
    ids: std::collections::HashSet<K, foldhash::fast::FixedState>,
    /// (event time, id) in the order reported; findings leave in event-time order.
    by_time: std::collections::VecDeque<(Millis, K)>,
    newest: Millis,
    horizon: Millis,
}

impl<K: std::hash::Hash + Eq + Clone> SeenIds<K> {
    pub(super) fn new(horizon: Millis) -> SeenIds<K> {
        SeenIds {
            ids: Default::default(),
            by_time: Default::default(),
            newest: Millis::MIN,
            horizon,
        }
    }

    /// `false` when `id` was seen (within the horizon).
    pub(super) fn insert<Q>(&mut self, id: &Q, time: Option<Millis>) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if !self.ids.insert(id.to_owned()) {
            return false;
        }
        // Findings without a time are remembered for the whole run.
        if let Some(t) = time {
            self.newest = self.newest.max(t);
            self.by_time.push_back((t, id.to_owned()));
            let oldest = self.newest.saturating_sub(self.horizon);
            while let Some((t, _)) = self.by_time.front() {
                if *t >= oldest {
                    break;
                }
                if let Some((_, old)) = self.by_time.pop_front() {
                    self.ids.remove::<K>(&old);
                }
            }
        }
        true
    }
}

/// Ordering key of a buffered result.
type Key = (Millis, u32, u32);

pub(super) struct Reorder<F: FnMut(Option<Millis>, Evaluated, usize)> {
    /// Records already taken (CloudTrail sometimes delivers a record twice): a copy is read
    /// once, so it counts once in correlations and baselines too.
    seen: SeenIds<u128>,
    /// Copies dropped.
    pub(super) duplicates: u64,
    /// Waiting outputs as runs (one per file, each in key order), the run with the earliest
    /// head first: the heap holds one entry per file in the window, not one per record.
    runs: BinaryHeap<Reverse<Run>>,
    max_seen: Option<Millis>,
    window: Millis,
    pub(super) late: u64,
    /// Outputs taken from the runs and not yet emitted (see [`LOOKAHEAD`]).
    ahead: std::collections::VecDeque<(Millis, Evaluated, usize)>,
    emit: F,
}

/// Outputs taken ahead of the one being emitted. What the in-order stage reads of an output
/// (findings, their texts and record, the observation) was made by a worker long before and
/// has left the caches: it is asked for a few outputs early, so the reads overlap instead of
/// each waiting for memory in turn: the findings and the observation when the output is taken
/// ([`Evaluated::prefetch_parts`], `LOOKAHEAD` outputs ahead), the findings' texts and record
/// halfway along ([`Evaluated::prefetch`]), or one ahead while the last are emitted.
const LOOKAHEAD: usize = 4;

/// A file's waiting outputs, in key order (its head first).
struct Run {
    file: u32,
    /// The worker thread that made them.
    producer: usize,
    items: std::collections::VecDeque<(Millis, u32, Evaluated)>,
    /// The key of the first item, kept here: the heap compares runs at every release, and
    /// reading it from the items would touch every run's buffer on the way.
    head: Key,
}

impl Run {
    fn new(
        file: u32,
        producer: usize,
        items: std::collections::VecDeque<(Millis, u32, Evaluated)>,
    ) -> Run {
        let mut run = Run {
            file,
            producer,
            items,
            head: (Millis::MAX, file, u32::MAX),
        };
        run.head = run.first_key();
        run
    }

    fn first_key(&self) -> Key {
        self.items
            .front()
            .map_or((Millis::MAX, self.file, u32::MAX), |(t, rec, _)| {
                (*t, self.file, *rec)
            })
    }

    /// Takes the first item (the head moves to the next).
    fn pop(&mut self) -> Option<(Millis, u32, Evaluated)> {
        let first = self.items.pop_front();
        self.head = self.first_key();
        first
    }
}

impl PartialEq for Run {
    fn eq(&self, other: &Self) -> bool {
        self.head == other.head
    }
}
impl Eq for Run {}
impl PartialOrd for Run {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Run {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.head.cmp(&other.head)
    }
}

impl<F: FnMut(Option<Millis>, Evaluated, usize)> Reorder<F> {
    pub(super) fn new(window: Millis, emit: F) -> Self {
        Reorder {
            seen: SeenIds::new(window.saturating_mul(2)),
            duplicates: 0,
            runs: BinaryHeap::new(),
            max_seen: None,
            window,
            late: 0,
            ahead: std::collections::VecDeque::with_capacity(LOOKAHEAD + 1),
            emit,
        }
    }

    /// Takes one file's outputs, sorted by event time (records without a time last). A
    /// record older than the watermark (newest time seen before this file, minus the window)
    /// is late: its output leaves at once and it is counted; so does the output of a record
    /// without a time (nothing to order it by).
    pub(super) fn push_file(&mut self, file: u32, producer: usize, items: Vec<Item>) {
        let watermark = self.watermark();
        // Sized for what waits (records with an output and a time), not every record.
        let mut waiting = std::collections::VecDeque::with_capacity(
            items
                .iter()
                .filter(|i| i.time.is_some() && !i.output.is_empty())
                .count(),
        );
        for (rec, item) in items.into_iter().enumerate() {
            let Item { time, key, output } = item;
            if let Some(k) = key
                && !self.seen.insert(&k, time)
            {
                self.duplicates += 1;
                continue;
            }
            let Some(t) = time else {
                if !output.is_empty() {
                    (self.emit)(None, output, producer);
                }
                continue;
            };
            if watermark.is_some_and(|w| t < w) {
                self.late += 1;
                (self.emit)(Some(t), output, producer);
            } else if !output.is_empty() {
                // `rec` is the position after sorting by time: it breaks ties in a fixed way.
                waiting.push_back((t, rec as u32, output));
            }
            self.max_seen = Some(self.max_seen.map_or(t, |m| m.max(t)));
        }
        if !waiting.is_empty() {
            self.runs.push(Reverse(Run::new(file, producer, waiting)));
        }
    }

    /// Releases, in order, everything at or before `up_to` (everything when `None`).
    pub(super) fn release(&mut self, up_to: Option<Millis>) {
        loop {
            // (Not `while let`: its scrutinee would hold the heap borrowed through the body.)
            let Some(mut top) = self.runs.peek_mut() else {
                break;
            };
            if up_to.is_some_and(|u| top.0.head.0 > u) {
                break;
            }
            let Some((t, _, output)) = top.0.pop() else {
                std::collections::binary_heap::PeekMut::pop(top);
                continue;
            };
            let producer = top.0.producer;
            if top.0.items.is_empty() {
                std::collections::binary_heap::PeekMut::pop(top);
            } else {
                // The run's new head: dropping `top` moves it to its place in the heap.
                drop(top);
            }
            // Taken ahead: its findings and observation are asked for now, the findings'
            // texts and record once those are in (halfway along), and it is emitted last.
            output.prefetch_parts();
            self.ahead.push_back((t, output, producer));
            if let Some(i) = self.ahead.len().checked_sub(1 + LOOKAHEAD / 2)
                && let Some((_, halfway, _)) = self.ahead.get(i)
            {
                halfway.prefetch();
            }
            if self.ahead.len() > LOOKAHEAD {
                self.emit_first_ahead();
            }
        }
        // The last ones (they did not reach halfway): each asked for one ahead.
        while !self.ahead.is_empty() {
            if let Some((_, next, _)) = self.ahead.get(1) {
                next.prefetch();
            }
            self.emit_first_ahead();
        }
    }

    fn emit_first_ahead(&mut self) {
        if let Some((t, output, producer)) = self.ahead.pop_front() {
            (self.emit)(Some(t), output, producer);
        }
    }

    pub(super) fn watermark(&self) -> Option<Millis> {
        self.max_seen.map(|m| m - self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::tests::{MIN, item};

    #[test]
    fn seen_ids_forget_what_is_past_the_horizon() {
        let mut s: SeenIds<String> = SeenIds::new(10 * MIN);
        assert!(s.insert("a", Some(0)));
        assert!(
            !s.insert("a", Some(0)),
            "a copy within the horizon is a duplicate"
        );
        assert!(s.insert("n", None));
        assert!(s.insert("b", Some(11 * MIN)));
        assert_eq!(s.ids.len(), 2, "`a` is forgotten, the timeless `n` kept");
        assert!(!s.insert("n", None));
        assert!(s.insert("a", Some(0)), "too late to be recognised");
    }

    /// Outputs taken ahead (for prefetching) leave in the same order, all of them, whatever
    /// the number released at once.
    #[test]
    fn outputs_taken_ahead_leave_in_order_and_none_is_kept() {
        let seen = std::cell::RefCell::new(Vec::<String>::new());
        // A window longer than the files span: nothing is late.
        let mut r = Reorder::new(60 * MIN, |_, o: Evaluated, _| {
            seen.borrow_mut().push(o.findings[0].id.clone())
        });
        let mut expected: Vec<(Millis, u32, u32, String)> = Vec::new();
        for file in 0..3u32 {
            let items: Vec<Item> = (0..10u32)
                .map(|k| {
                    let t = Millis::from(k * 3 + file) * MIN;
                    let tag = format!("f{file}-{k}");
                    expected.push((t, file, k, tag.clone()));
                    item(Some(t), &tag)
                })
                .collect();
            r.push_file(file, 0, items);
        }
        // A few at a time (fewer than are taken ahead), then the rest.
        for up_to in [2, 3, 4, 9, 10] {
            r.release(Some(up_to * MIN));
            let released = expected.iter().filter(|e| e.0 <= up_to * MIN).count();
            assert_eq!(
                seen.borrow().len(),
                released,
                "everything up to {up_to} min is out"
            );
        }
        r.release(None);
        drop(r);
        expected.sort();
        let order: Vec<String> = expected.into_iter().map(|e| e.3).collect();
        assert_eq!(seen.into_inner(), order);
    }

    #[test]
    fn reorder_releases_in_event_time_order_and_counts_late_records() {
        let mut seen: Vec<(Option<Millis>, String, usize)> = Vec::new();
        let mut r = Reorder::new(10 * MIN, |t: Option<Millis>, o: Evaluated, producer| {
            seen.push((t, o.findings[0].id.clone(), producer))
        });
        // Files come sorted by time, records without a time last.
        r.push_file(
            1,
            10,
            vec![
                item(Some(3 * MIN), "a"),
                item(Some(5 * MIN), "b"),
                item(None, "no-time"),
            ],
        );
        // Equal times: the file, then the record position decides.
        r.push_file(0, 00, vec![item(Some(4 * MIN), "a0")]);
        r.push_file(
            2,
            20,
            vec![item(Some(20 * MIN), "d"), item(Some(20 * MIN), "e")],
        );
        r.push_file(3, 30, vec![item(Some(20 * MIN), "f")]);
        let wm = r.watermark();
        assert_eq!(wm, Some(10 * MIN));
        r.release(wm);
        // Older than the watermark: out at once, counted.
        r.push_file(4, 40, vec![item(Some(8 * MIN), "late")]);
        assert_eq!(r.late, 1);
        r.release(None);
        drop(r);
        let order: Vec<&str> = seen.iter().map(|(_, id, _)| id.as_str()).collect();
        assert_eq!(order, ["no-time", "a", "a0", "b", "late", "d", "e", "f"]);
        assert_eq!(seen[0].0, None);
        // Each output goes with the worker that made its file (to be dropped there).
        let producers: Vec<usize> = seen.iter().map(|(_, _, p)| *p).collect();
        assert_eq!(producers, [10, 10, 0, 10, 40, 20, 20, 30]);
    }
}
