//! Replays archived CloudTrail through the rules: files are decoded and matched in parallel,
//! and results are put back into event-time order through a bounded re-order buffer, so the
//! output is the same whatever the number of threads.
//!
//! Ordering: files are taken in the order of the delivery stamp in their names (then path),
//! in batches decoded in parallel; batch results are merged in file order. Results wait in
//! a buffer until the newest event time seen is more than the re-order window (default 15 min)
//! past them, then leave in `(eventTime, file, record)` order. A record older than the
//! newest time seen minus the window is *late*: it is still processed, immediately, and
//! counted. Nothing is dropped.

use crate::engine::{Alert, AlertSettings, Evaluated, Evaluator, Pipeline, Settings};
use crate::event::Event;
use crate::event::decode::{self, Shape};
use crate::finding::Finding;
use crate::rules::RuleSet;
use crate::rules::exceptions::Exceptions;
use crate::source::files::{Discovery, Input};
use crate::source::s3::Reader;
use crate::util::time::{Millis, parse_event_time};
use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

/// How long results wait for older records by default: CloudTrail delivers a record within
/// minutes (its files are ordered by delivery time), and the engine allows events the same
/// lateness (15 min) live. What waits is held in memory, so the window bounds memory too.
pub const DEFAULT_REORDER_WINDOW: Millis = 15 * 60_000;

#[derive(Debug, Clone)]
pub struct BacktestOptions {
    /// Keep records with `eventTime >= since`.
    pub since: Option<Millis>,
    /// Keep records with `eventTime < until`.
    pub until: Option<Millis>,
    /// Threads for decoding and matching; 0 or 1: everything on the calling thread.
    pub threads: usize,
    pub reorder_window: Millis,
    /// Correlation and suppression settings.
    pub engine: Settings,
    /// Learned baselines to start from (warm start), when baselines run.
    pub baseline_state: Option<crate::baseline::Snapshot>,
    /// Keep the baselines' final state in [`BacktestSummary::baseline_state`].
    pub keep_baseline_state: bool,
    /// Group findings into incidents and emit the alerts live mode would send.
    pub alerts: Option<AlertSettings>,
    /// Reads the `s3://` objects of the discovery (without it, each is an input problem).
    pub s3: Option<std::sync::Arc<Reader>>,
}

impl Default for BacktestOptions {
    fn default() -> Self {
        BacktestOptions {
            since: None,
            until: None,
            threads: 1,
            reorder_window: DEFAULT_REORDER_WINDOW,
            engine: Settings::default(),
            baseline_state: None,
            keep_baseline_state: false,
            alerts: None,
            s3: None,
        }
    }
}

/// A problem with one input or record; the run goes on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Issue {
    /// `file`, `file: record N` or `file: line N`.
    pub place: String,
    pub message: String,
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Per-rule tally.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RuleTally {
    pub title: String,
    pub level: String,
    pub findings: u64,
    /// Distinct principals behind the findings.
    pub principals: usize,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BacktestSummary {
    pub files_read: usize,
    /// Inputs that are not CloudTrail: neither JSON nor gzip (a README, …), or JSON that is
    /// neither a record nor an envelope of records (an IAM policy, …).
    pub files_skipped: usize,
    /// Those inputs and why each was skipped (the first [`MAX_ISSUES`]).
    pub skipped: Vec<Issue>,
    pub digest_files_skipped: usize,
    /// Files not read because their delivery date cannot hold events of --since/--until.
    pub files_pruned_by_date: usize,
    /// S3-layout day directories not listed for the same reason.
    pub days_pruned_by_date: usize,
    /// S3 objects listed (every key under the `s3://` prefixes that were listed).
    pub objects_listed: usize,
    /// S3 objects read (downloaded whole).
    pub objects_read: usize,
    /// S3 objects not read because their delivery date cannot hold events of
    /// --since/--until (counted in `files_pruned_by_date` too).
    pub objects_pruned_by_date: usize,
    /// Bytes of every input read (files and S3 objects, as stored: compressed).
    pub bytes_read: u64,
    pub control_messages_skipped: usize,
    /// Records read (in the time range or not).
    pub records: u64,
    pub malformed_records: u64,
    /// Records outside `--since`/`--until`.
    pub records_out_of_range: u64,
    /// Records without a usable event time, neither `eventTime` nor `@timestamp` (processed
    /// in arrival order).
    pub records_without_time: u64,
    /// Records without `eventTime` whose event time came from `@timestamp` (logstash
    /// exports): used for ordering, the time range, windows and their findings' `time`.
    pub records_time_from_fallback: u64,
    /// Records older than what the re-order window had already released.
    pub late_records: u64,
    /// Records delivered twice (same eventID, time and name): the copy is not read again.
    pub duplicate_records: u64,
    /// Findings identical to one already reported.
    pub duplicate_findings: u64,
    /// Matches dropped by `--exceptions`.
    pub excepted_findings: u64,
    /// Correlation inputs older than the allowed lateness (not counted in windows).
    pub late_hits: u64,
    /// Event ids of the first of those.
    pub late_hit_samples: Vec<String>,
    /// Correlation group keys evicted at the key cap.
    pub evicted_keys: u64,
    pub first_event_time: Option<String>,
    pub last_event_time: Option<String>,
    pub findings: u64,
    pub by_rule: BTreeMap<String, RuleTally>,
    /// Principals with the most findings (at most 10).
    pub top_principals: Vec<(String, u64)>,
    pub issues: Vec<Issue>,
    /// Issues beyond the first [`MAX_ISSUES`] are counted, not kept.
    pub issues_not_shown: u64,
    /// Counters of the baselines, when they ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baselines: Option<BaselineSummary>,
    /// Incidents and alerts, with [`BacktestOptions::alerts`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertSummary>,
    /// The baselines' final state (with [`BacktestOptions::keep_baseline_state`]).
    #[serde(skip)]
    pub baseline_state: Option<crate::baseline::Snapshot>,
}

/// What the alert stage decided in a run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AlertSummary {
    pub incidents: u64,
    /// Every alert: new + updates + closes.
    pub alerts: u64,
    pub new: u64,
    pub updates: u64,
    pub closes: u64,
    /// Incidents below the minimum level (not alerted).
    pub below_min_level: u64,
}

impl BacktestSummary {
    /// Alerts per day of event time covered (at least one day).
    pub fn alerts_per_day(&self) -> Option<f64> {
        let a = self.alerts.as_ref()?;
        let first = self.first_event_time.as_deref().and_then(parse_event_time);
        let last = self.last_event_time.as_deref().and_then(parse_event_time);
        let days = match (first, last) {
            (Some(f), Some(l)) => ((l - f) as f64 / 86_400_000.0).max(1.0),
            _ => 1.0,
        };
        Some(a.alerts as f64 / days)
    }
}

/// What the baselines did in a run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BaselineSummary {
    /// Series tracked at the end.
    pub series: usize,
    #[serde(flatten)]
    pub stats: crate::baseline::BaselineStats,
}

pub const MAX_ISSUES: usize = 200;

impl BacktestSummary {
    fn issue(&mut self, place: String, message: String) {
        if self.issues.len() < MAX_ISSUES {
            self.issues.push(Issue { place, message });
        } else {
            self.issues_not_shown += 1;
        }
    }

    /// Any input problem (for `--strict`): an unreadable input, a malformed record, or an
    /// input skipped as not CloudTrail. (Digest files and CloudWatch Logs control messages
    /// are CloudTrail's own and not problems.)
    pub fn has_input_problems(&self) -> bool {
        !self.issues.is_empty()
            || self.issues_not_shown > 0
            || self.malformed_records > 0
            || self.files_skipped > 0
    }
}

/// One record in range: its event time, its identity (to read a record delivered twice only
/// once) and what the stateless stage produced.
struct Item {
    time: Option<Millis>,
    key: Option<u128>,
    output: Evaluated,
}

/// A record's identity: its eventID with its time and name (test and hand-made data reuse
/// ids), as 128 bits; `None` without an eventID.
fn record_key(ev: &Event<'_>) -> Option<u128> {
    use std::hash::BuildHasher;
    let id = ev.event_id()?;
    let parts = [Some(id), ev.event_time(), ev.event_name()];
    // Two independently seeded 64-bit hashes (foldhash's quality variant, fixed seeds: the same
    // key in every worker; SipHash was 2 % of a backtest) of the parts written once, each with
    // its length (or absence) before it, into one buffer: one pass over the bytes per hash,
    // not one per part.
    let mut buf = [0u8; 256];
    let mut n = 0;
    for part in parts {
        let bytes = part.map_or(&[][..], str::as_bytes);
        let Some(dst) = buf.get_mut(n..n + 8 + bytes.len()) else {
            // Ids this long are not CloudTrail's: hashed part by part.
            let half = |seed: u64| foldhash::quality::FixedState::with_seed(seed).hash_one(parts);
            return Some((u128::from(half(1)) << 64) | u128::from(half(2)));
        };
        let tag = part.map_or(u64::MAX, |p| p.len() as u64);
        dst[..8].copy_from_slice(&tag.to_le_bytes());
        dst[8..8 + bytes.len()].copy_from_slice(bytes);
        n += 8 + bytes.len();
    }
    let bytes = &buf[..n];
    let half = |seed: u64| foldhash::quality::FixedState::with_seed(seed).hash_one(bytes);
    Some((u128::from(half(0x9e37_79b9_7f4a_7c15)) << 64) | u128::from(half(0xc2b2_ae3d_27d4_eb4f)))
}

/// A finding id as 128 bits: the 32 hex digits of `util::ids` digests, else a hash.
fn finding_key(id: &str) -> u128 {
    use std::hash::BuildHasher;
    if id.len() == 32
        && let Ok(v) = u128::from_str_radix(id, 16)
    {
        return v;
    }
    let half = |seed: u64| foldhash::quality::FixedState::with_seed(seed).hash_one(id);
    (u128::from(half(1)) << 64) | u128::from(half(2))
}

/// What a worker produced for one input file.
#[derive(Default)]
struct FileResult {
    label: String,
    /// Bytes read (`None`: the input could not be read).
    bytes: Option<u64>,
    skipped: Option<Shape>,
    /// Why a [`Shape::NotCloudTrail`] input was skipped.
    skip_reason: Option<&'static str>,
    records: u64,
    malformed: u64,
    out_of_range: u64,
    without_time: u64,
    time_from_fallback: u64,
    min_time: Option<Millis>,
    max_time: Option<Millis>,
    issues: Vec<Issue>,
    control_messages: usize,
    excepted: u64,
    /// Every record in range: its event time and what the stateless stage produced.
    items: Vec<Item>,
    /// The worker thread that made the items (its index in the pool; 0 without one).
    producer: usize,
}

/// An input that could not be read: one issue.
fn unreadable(label: String, message: String) -> FileResult {
    FileResult {
        issues: vec![Issue {
            place: label.clone(),
            message,
        }],
        label,
        ..FileResult::default()
    }
}

thread_local! {
    /// Each thread's inflate buffer, reused from file to file (at most 16 MiB: larger files
    /// get their own, see `decode::gunzip_reusing`).
    static INFLATE_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Decodes and matches the bytes of one input (a file or an S3 object) named `label`.
fn process_file(
    label: String,
    bytes: Vec<u8>,
    rules: &RuleSet,
    exceptions: &Exceptions,
    opts: &BacktestOptions,
) -> FileResult {
    INFLATE_BUFFER.with_borrow_mut(|buf| process_bytes(label, bytes, buf, rules, exceptions, opts))
}

/// [`process_file`] with the thread's inflate buffer.
fn process_bytes(
    label: String,
    bytes: Vec<u8>,
    buf: &mut Vec<u8>,
    rules: &RuleSet,
    exceptions: &Exceptions,
    opts: &BacktestOptions,
) -> FileResult {
    let mut r = FileResult {
        label,
        bytes: Some(bytes.len() as u64),
        producer: rayon::current_thread_index().unwrap_or(0),
        ..FileResult::default()
    };
    if bytes.is_empty() {
        r.issues.push(Issue {
            place: r.label.clone(),
            message: "empty file".into(),
        });
        return r;
    }
    if !decode::looks_like_input(&bytes) {
        r.skipped = Some(Shape::NotCloudTrail);
        r.skip_reason = Some("not CloudTrail: neither JSON nor gzip");
        return r;
    }
    // Inflated into this thread's buffer (no fresh zeroed buffer per file).
    let inflated;
    let plain: &[u8] = if decode::is_gzip(&bytes) {
        match decode::gunzip_reusing(&bytes, buf) {
            Ok(p) => {
                inflated = p;
                &inflated
            }
            Err(e) => {
                r.issues.push(Issue {
                    place: r.label.clone(),
                    message: e.to_string(),
                });
                return r;
            }
        }
    } else {
        &bytes
    };
    if plain.iter().all(u8::is_ascii_whitespace) {
        r.issues.push(Issue {
            place: r.label.clone(),
            message: "empty after decompression".into(),
        });
        return r;
    }
    // Invalid UTF-8 is reported, then replaced (U+FFFD) so the file's records still count.
    let plain: Cow<'_, str> = match decode::utf8(plain) {
        Ok(text) => Cow::Borrowed(text),
        Err(e) => {
            r.issues.push(Issue {
                place: r.label.clone(),
                message: format!(
                    "invalid UTF-8 at byte {} (replaced with U+FFFD; records are still read)",
                    e.valid_up_to()
                ),
            });
            Cow::Owned(String::from_utf8_lossy(plain).into_owned())
        }
    };
    let decoded = match decode::decode_text(&plain) {
        Ok(d) => d,
        Err(e) => {
            r.issues.push(Issue {
                place: r.label.clone(),
                message: e.to_string(),
            });
            return r;
        }
    };
    r.control_messages = decoded.control_messages;
    if matches!(
        decoded.shape,
        Shape::NotCloudTrail | Shape::Digest | Shape::CwlControl
    ) {
        r.skipped = Some(decoded.shape);
        let json = matches!(
            plain.bytes().find(|b| !b.is_ascii_whitespace()),
            Some(b'{' | b'[')
        );
        r.skip_reason = Some(if json {
            "not CloudTrail: JSON, but neither a record (no eventName, eventSource or \
             eventTime) nor an envelope of records"
        } else {
            "not CloudTrail: not JSON"
        });
        return r;
    }
    for issue in decoded.issues {
        r.malformed += 1;
        r.issues.push(Issue {
            place: format!("{}: {}", r.label, issue.loc),
            message: issue.message,
        });
    }
    let mut evaluator = Evaluator::new(rules, exceptions, &opts.engine);
    if opts.since.is_none() && opts.until.is_none() {
        // Every record is kept (a time window may drop most of them: then grown as needed).
        r.items
            .reserve_exact(decoded.records.len() + decoded.split.len());
    }
    let texts = decoded
        .records
        .iter()
        .map(|rec| (rec.loc, Event::parse(&rec.text)));
    let split = decoded
        .split
        .into_iter()
        .map(|(loc, slot)| (loc, Event::from_slot(slot)));
    for (loc, parsed) in texts.chain(split) {
        r.records += 1;
        let ev = match parsed {
            Ok(ev) => ev,
            Err(e) => {
                r.malformed += 1;
                r.issues.push(Issue {
                    place: format!("{}: {}", r.label, loc),
                    message: e.to_string(),
                });
                continue;
            }
        };
        // The record's one event time: eventTime, or @timestamp in logstash exports.
        let time = ev.event_time().and_then(parse_event_time);
        match time {
            Some(t) => {
                if ev.event_time_field() == Some(crate::event::FALLBACK_TIME_FIELD) {
                    r.time_from_fallback += 1;
                }
                if opts.since.is_some_and(|s| t < s) || opts.until.is_some_and(|u| t >= u) {
                    r.out_of_range += 1;
                    continue;
                }
                r.min_time = Some(r.min_time.map_or(t, |m| m.min(t)));
                r.max_time = Some(r.max_time.map_or(t, |m| m.max(t)));
            }
            None => {
                if opts.since.is_some() || opts.until.is_some() {
                    r.out_of_range += 1;
                    continue;
                }
                r.without_time += 1;
            }
        }
        let mut evaluated = evaluator.evaluate_at(&ev, time);
        if !evaluated.findings.is_empty() {
            // Where the record was read, so people can find it in their archive.
            evaluated.set_origin(&format!("{}: {loc}", r.label));
        }
        r.items.push(Item {
            time,
            key: record_key(&ev),
            output: evaluated,
        });
    }
    r.excepted = evaluator.excepted();
    // Records inside a file are unordered (LookupEvents exports are even newest first): put
    // them in event-time order (stable; records without a time keep their place at the end).
    r.items = in_time_order(std::mem::take(&mut r.items));
    r
}

/// `items` sorted by event time (stable; records without a time last). Items are large, so
/// their (time, position) pairs are sorted and each item moved once.
fn in_time_order(items: Vec<Item>) -> Vec<Item> {
    let time = |i: &Item| i.time.unwrap_or(Millis::MAX);
    if items.is_sorted_by_key(time) {
        return items;
    }
    // Unique positions make the unstable sort stable.
    let mut order: Vec<(Millis, u32)> = items
        .iter()
        .enumerate()
        .map(|(at, i)| (time(i), at as u32))
        .collect();
    order.sort_unstable();
    let mut slots: Vec<Option<Item>> = items.into_iter().map(Some).collect();
    let mut sorted = Vec::with_capacity(order.len());
    sorted.extend(
        order
            .iter()
            .filter_map(|&(_, at)| slots.get_mut(at as usize).and_then(Option::take)),
    );
    sorted
}

/// Ids of the findings reported, to report a record delivered twice only once. Bounded by
/// event time, not by the number of findings: an id is forgotten once the newest finding is
/// `horizon` past it (a copy delivered that much later is counted again).
struct SeenIds<K> {
    /// Ids are hashes already: a fast fixed-seed hasher (SipHash was 3 % of a backtest).
    ids: std::collections::HashSet<K, foldhash::fast::FixedState>,
    /// (event time, id) in the order reported; findings leave in event-time order.
    by_time: std::collections::VecDeque<(Millis, K)>,
    newest: Millis,
    horizon: Millis,
}

impl<K: std::hash::Hash + Eq + Clone> SeenIds<K> {
    fn new(horizon: Millis) -> SeenIds<K> {
        SeenIds {
            ids: Default::default(),
            by_time: Default::default(),
            newest: Millis::MIN,
            horizon,
        }
    }

    /// `false` when `id` was seen (within the horizon).
    fn insert<Q>(&mut self, id: &Q, time: Option<Millis>) -> bool
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

/// What the in-order stage is done with (a record's findings, once written, and its
/// observation), handed back to the worker thread that made it, to be dropped there: freeing
/// memory another thread allocated costs mimalloc a remote free and a later collection of
/// cache-cold blocks (over 4 % of a two-thread backtest); freeing its own is its fast path.
struct Spent {
    /// Per worker thread, batches waiting for it.
    bins: Vec<std::sync::Mutex<Vec<Evaluated>>>,
}

/// Outputs handed back per batch (one lock per batch).
const SPENT_BATCH: usize = 256;

impl Spent {
    /// Bins for `threads` workers (none: outputs are dropped where they are given).
    fn new(threads: usize) -> Spent {
        Spent {
            bins: (0..threads).map(|_| Default::default()).collect(),
        }
    }

    /// The in-order side: batches outputs per worker.
    fn collector(&self) -> SpentCollector<'_> {
        SpentCollector {
            spent: self,
            batches: self.bins.iter().map(|_| Vec::new()).collect(),
        }
    }

    /// On a worker: drops what was handed back to this thread.
    fn drop_own(&self) {
        let Some(bin) = rayon::current_thread_index().and_then(|i| self.bins.get(i)) else {
            return;
        };
        let batch = std::mem::take(&mut *bin.lock().unwrap_or_else(|e| e.into_inner()));
        drop(batch);
    }
}

struct SpentCollector<'s> {
    spent: &'s Spent,
    batches: Vec<Vec<Evaluated>>,
}

impl SpentCollector<'_> {
    /// Hands `output` back to worker `producer` (dropped here without workers).
    fn give(&mut self, producer: usize, output: Evaluated) {
        let Some(batch) = self.batches.get_mut(producer) else {
            return;
        };
        batch.push(output);
        if batch.len() >= SPENT_BATCH
            && let Some(bin) = self.spent.bins.get(producer)
        {
            let mut bin = bin.lock().unwrap_or_else(|e| e.into_inner());
            if bin.is_empty() {
                std::mem::swap(&mut *bin, batch);
            } else {
                bin.append(batch);
            }
        }
    }
}

/// Ordering key of a buffered result.
type Key = (Millis, u32, u32);

struct Reorder<F: FnMut(Option<Millis>, Evaluated, usize)> {
    /// Records already taken (CloudTrail sometimes delivers a record twice): a copy is read
    /// once, so it counts once in correlations and baselines too.
    seen: SeenIds<u128>,
    /// Copies dropped.
    duplicates: u64,
    /// Waiting outputs as runs (one per file, each in key order), the run with the earliest
    /// head first: the heap holds one entry per file in the window, not one per record.
    runs: BinaryHeap<Reverse<Run>>,
    max_seen: Option<Millis>,
    window: Millis,
    late: u64,
    emit: F,
}

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
    fn new(window: Millis, emit: F) -> Self {
        Reorder {
            seen: SeenIds::new(window.saturating_mul(2)),
            duplicates: 0,
            runs: BinaryHeap::new(),
            max_seen: None,
            window,
            late: 0,
            emit,
        }
    }

    /// Takes one file's outputs, sorted by event time (records without a time last). A
    /// record older than the watermark (newest time seen before this file, minus the window)
    /// is late: its output leaves at once and it is counted; so does the output of a record
    /// without a time (nothing to order it by).
    fn push_file(&mut self, file: u32, producer: usize, items: Vec<Item>) {
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
    fn release(&mut self, up_to: Option<Millis>) {
        while let Some(mut top) = self.runs.peek_mut() {
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
            (self.emit)(Some(t), output, producer);
        }
    }

    fn watermark(&self) -> Option<Millis> {
        self.max_seen.map(|m| m - self.window)
    }
}

/// What a run hands to its caller, in event-time order.
#[derive(Debug, Clone, Copy)]
pub enum Emitted<'a> {
    Finding(&'a Finding),
    /// With [`BacktestOptions::alerts`]: an alert live mode would send.
    Alert(&'a Alert),
}

/// How far a run is, after each batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Inputs (files and S3 objects) done.
    pub inputs: usize,
    pub records: u64,
    /// Bytes read (as stored).
    pub bytes: u64,
}

/// An input of a batch, ready for a worker: a local one (the worker reads it) or an S3
/// object already downloaded (or why it could not be).
enum Pending<'a> {
    Local(&'a Input),
    Fetched(String, Result<Vec<u8>, String>),
}

/// An input ready for a worker. S3 objects arrive from the reader in reading order (so this
/// is called in input order); files are read by the workers.
fn pending_of<'a>(input: &'a Input, fetch: &mut Option<crate::source::s3::Fetch>) -> Pending<'a> {
    match input {
        Input::Object { .. } => {
            let bytes = match fetch.as_mut().and_then(Iterator::next) {
                Some(Ok(b)) => Ok(b),
                Some(Err(e)) => Err(format!("cannot read: {}", e.detail())),
                None => Err("cannot read: no S3 reader for it".to_string()),
            };
            Pending::Fetched(input.label(), bytes)
        }
        local => Pending::Local(local),
    }
}

/// Runs every input of `discovery`, calling `emit` for each finding (and alert) in event-time
/// order and `progress` after each batch. Local files are read by the workers; S3 objects by
/// `opts.s3`, downloaded ahead in reading order.
pub fn run(
    discovery: &Discovery,
    rules: &RuleSet,
    exceptions: &Exceptions,
    opts: &BacktestOptions,
    mut emit: impl FnMut(Emitted<'_>),
    mut progress: impl FnMut(Progress),
) -> BacktestSummary {
    let mut s = BacktestSummary {
        digest_files_skipped: discovery.digests,
        files_pruned_by_date: discovery.pruned_files,
        days_pruned_by_date: discovery.pruned_days,
        objects_listed: discovery.objects_listed,
        objects_pruned_by_date: discovery.objects_pruned,
        ..BacktestSummary::default()
    };
    for (path, e) in &discovery.errors {
        s.issue(path.clone(), format!("cannot read: {e}"));
    }
    // Workers when more than one thread is asked for (and the pool can be made).
    let pool = match opts.threads {
        0 | 1 => None,
        n => rayon::ThreadPoolBuilder::new().num_threads(n).build().ok(),
    };
    // Findings per principal, and each principal's number (its order of first finding).
    let mut principals: FastMap<String, (u64, u32)> = FastMap::default();
    // Per rule: its tally and the numbers of the principals behind its findings.
    let mut tallies: FastMap<String, (RuleTally, FastSet<u32>)> = FastMap::default();
    let mut seen_ids: SeenIds<u128> = SeenIds::new(opts.reorder_window.max(0).saturating_mul(2));
    let mut duplicates = 0u64;
    // Per finding on the in-order stage: one lookup of the principal and one of the rule
    // (hashed, no ordered search comparing long ARNs), no allocation once both are known.
    let mut count = |f: &Finding| -> bool {
        // CloudTrail occasionally delivers a record twice; its finding is reported once.
        if !seen_ids.insert(&finding_key(&f.id), f.time_ms) {
            duplicates += 1;
            return false;
        }
        let who = match principals.get_mut(&f.principal) {
            Some((n, who)) => {
                *n += 1;
                *who
            }
            None => {
                let who = u32::try_from(principals.len()).unwrap_or(u32::MAX);
                principals.insert(f.principal.clone(), (1, who));
                who
            }
        };
        let (tally, seen) = match tallies.get_mut(&f.rule.id) {
            Some(t) => t,
            None => {
                let fresh = RuleTally {
                    title: f.rule.title.clone(),
                    level: f.rule.level.to_string(),
                    ..RuleTally::default()
                };
                tallies
                    .entry(f.rule.id.clone())
                    .or_insert((fresh, FastSet::default()))
            }
        };
        tally.findings += 1;
        if seen.insert(who) {
            tally.principals = seen.len();
        }
        true
    };
    let mut pipeline = Pipeline::new(rules, exceptions, &opts.engine);
    if let Some(snap) = &opts.baseline_state {
        pipeline.restore_baselines(snap.clone());
    }
    if let Some(a) = &opts.alerts {
        pipeline.enable_alerts(a.clone());
    }
    let mut ready: Vec<Finding> = Vec::new();
    let mut alerts: Vec<Alert> = Vec::new();
    let spent = Spent::new(pool.as_ref().map_or(0, |p| p.current_num_threads()));
    let mut spent_here = spent.collector();
    let mut reorder = Reorder::new(
        opts.reorder_window.max(0),
        |t: Option<Millis>, mut o: Evaluated, producer: usize| {
            ready.clear();
            pipeline.push_mut(t, &mut o, &mut ready);
            for f in &ready {
                if count(f) {
                    emit(Emitted::Finding(f));
                }
            }
            o.findings.append(&mut ready);
            spent_here.give(producer, o);
            pipeline.drain_alerts(&mut alerts);
            for a in alerts.drain(..) {
                emit(Emitted::Alert(&a));
            }
        },
    );
    let (mut min_t, mut max_t): (Option<Millis>, Option<Millis>) = (None, None);
    let mut done = 0usize;
    let has_objects = discovery
        .inputs
        .iter()
        .any(|i| matches!(i, Input::Object { .. }));
    let mut fetch = match &opts.s3 {
        Some(reader) if has_objects => Some(reader.fetch(&discovery.inputs)),
        _ => None,
    };
    // What one input's result adds to the summary; its records go to the stateful stage.
    let mut take = |idx: usize, r: FileResult| {
        if let Some(n) = r.bytes {
            s.bytes_read += n;
            if matches!(discovery.inputs.get(idx), Some(Input::Object { .. })) {
                s.objects_read += 1;
            }
        }
        match r.skipped {
            Some(Shape::Digest) => s.digest_files_skipped += 1,
            Some(Shape::CwlControl) => {}
            Some(_) => {
                s.files_skipped += 1;
                if s.skipped.len() < MAX_ISSUES {
                    s.skipped.push(Issue {
                        place: r.label.clone(),
                        message: r.skip_reason.unwrap_or("not CloudTrail").to_string(),
                    });
                }
            }
            None if r.records > 0 || r.malformed > 0 => s.files_read += 1,
            None => {}
        }
        s.records += r.records;
        s.malformed_records += r.malformed;
        s.records_out_of_range += r.out_of_range;
        s.records_without_time += r.without_time;
        s.records_time_from_fallback += r.time_from_fallback;
        for i in r.issues {
            s.issue(i.place, i.message);
        }
        if let Some(t) = r.min_time {
            min_t = Some(min_t.map_or(t, |m| m.min(t)));
        }
        if let Some(t) = r.max_time {
            max_t = Some(max_t.map_or(t, |m| m.max(t)));
        }
        s.control_messages_skipped += r.control_messages;
        s.excepted_findings += r.excepted;
        reorder.push_file(idx as u32, r.producer, r.items);
        let wm = reorder.watermark();
        reorder.release(wm);
        done += 1;
        progress(Progress {
            inputs: done,
            records: s.records,
            bytes: s.bytes_read,
        });
    };
    // Reads (local files), decodes and matches one input.
    let work = |p: Pending| {
        let (label, bytes) = match p {
            Pending::Local(input) => (
                input.label(),
                input.read().map_err(|e| format!("cannot read: {e}")),
            ),
            Pending::Fetched(label, bytes) => (label, bytes),
        };
        match bytes {
            Ok(b) => process_file(label, b, rules, exceptions, opts),
            Err(message) => unreadable(label, message),
        }
    };
    let inputs = &discovery.inputs;
    match pool {
        Some(pool) => {
            // Decoding and matching run on the worker pool, one task per input, while this
            // thread puts finished inputs through the stateful stage in input order: the two
            // overlap, the workers never wait for a batch to end, and at most `window` inputs
            // are in flight or waiting for an earlier one (memory stays bounded). The order
            // of the output does not depend on which worker finishes first.
            let window = opts.threads * 8;
            std::thread::scope(|scope| {
                let (tx, rx) = std::sync::mpsc::channel::<(usize, FileResult)>();
                // Permits: the producer takes one per input, this thread gives it back once
                // the input has gone through the stateful stage.
                let (permit_tx, permit_rx) = std::sync::mpsc::sync_channel::<()>(window);
                let (pool, work, spent) = (&pool, &work, &spent);
                scope.spawn(move || {
                    pool.in_place_scope(|sc| {
                        for (i, input) in inputs.iter().enumerate() {
                            if permit_tx.send(()).is_err() {
                                return;
                            }
                            let p = pending_of(input, &mut fetch);
                            let tx = tx.clone();
                            sc.spawn(move |_| {
                                spent.drop_own();
                                let _ = tx.send((i, work(p)));
                            });
                        }
                    });
                });
                let mut waiting: BTreeMap<usize, FileResult> = BTreeMap::new();
                let mut next = 0usize;
                for (i, r) in rx {
                    waiting.insert(i, r);
                    while let Some(r) = waiting.remove(&next) {
                        take(next, r);
                        next += 1;
                        // The input is through: its permit goes back to the producer.
                        let _ = permit_rx.try_recv();
                    }
                }
            });
        }
        // One thread: everything in turn on this one (no hand-over between threads).
        None => {
            for (i, input) in inputs.iter().enumerate() {
                take(i, work(pending_of(input, &mut fetch)));
            }
        }
    }
    reorder.release(None);
    s.late_records = reorder.late;
    s.duplicate_records = reorder.duplicates;
    drop(reorder);
    let mut rest = Vec::new();
    pipeline.finish(&mut rest);
    for f in &rest {
        if count(f) {
            emit(Emitted::Finding(f));
        }
    }
    pipeline.drain_alerts(&mut alerts);
    for a in alerts.drain(..) {
        emit(Emitted::Alert(&a));
    }
    let stats = pipeline.stats();
    s.late_hits = stats.correlation.late_hits;
    s.late_hit_samples = stats.correlation.late_samples;
    s.evicted_keys = stats.correlation.evicted_keys;
    s.alerts = stats.alerts.map(|a| AlertSummary {
        incidents: a.incidents,
        alerts: a.alerts(),
        new: a.new,
        updates: a.updates,
        closes: a.closes,
        below_min_level: a.below_min_level,
    });
    if let Some((series, stats)) = stats.baselines {
        s.baselines = Some(BaselineSummary { series, stats });
        if opts.keep_baseline_state {
            s.baseline_state = pipeline.baseline_snapshot();
        }
    }
    s.duplicate_findings = duplicates;
    s.by_rule = tallies.into_iter().map(|(id, (t, _))| (id, t)).collect();
    s.findings = s.by_rule.values().map(|t| t.findings).sum();
    let mut top: Vec<(String, u64)> = principals.into_iter().map(|(p, (n, _))| (p, n)).collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(10);
    s.top_principals = top;
    s.first_event_time = min_t.map(crate::util::time::format_millis);
    s.last_event_time = max_t.map(crate::util::time::format_millis);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Body, MatchDetails, RuleRef};
    use crate::rules::Level;

    const MIN: Millis = 60_000;

    /// One record's output holding one finding, tagged `tag` in its summary.
    fn output(tag: &str) -> Evaluated {
        let rule = RuleRef {
            id: "r".into(),
            title: "R".into(),
            level: Level::Low,
            tags: Vec::new(),
        };
        let body = Body::Match(MatchDetails {
            rule_file: "r.yml".into(),
            event_type: None,
            identity_account: None,
        });
        Evaluated {
            findings: vec![Finding::new(tag.into(), rule, body).with_summary(tag.into())],
            ..Evaluated::default()
        }
    }

    fn item(time: Option<Millis>, tag: &str) -> Item {
        Item {
            time,
            key: None,
            output: output(tag),
        }
    }

    #[test]
    fn items_are_put_in_time_order_stably_with_timeless_ones_last() {
        let tags = |items: &[Item]| -> Vec<String> {
            items
                .iter()
                .map(|i| i.output.findings[0].id.clone())
                .collect()
        };
        let items = vec![
            item(Some(3 * MIN), "c1"),
            item(None, "n1"),
            item(Some(MIN), "a1"),
            item(Some(3 * MIN), "c2"),
            item(None, "n2"),
            item(Some(MIN), "a2"),
            item(Some(2 * MIN), "b"),
        ];
        assert_eq!(
            tags(&in_time_order(items)),
            ["a1", "a2", "b", "c1", "c2", "n1", "n2"]
        );
        let sorted = vec![item(Some(MIN), "x"), item(Some(MIN), "y"), item(None, "z")];
        assert_eq!(tags(&in_time_order(sorted)), ["x", "y", "z"]);
    }

    #[test]
    fn spent_outputs_reach_the_worker_that_made_them() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let spent = Spent::new(2);
        let mut here = spent.collector();
        for _ in 0..SPENT_BATCH {
            here.give(1, output("x"));
        }
        here.give(0, output("y"));
        let lens =
            || -> Vec<usize> { spent.bins.iter().map(|b| b.lock().unwrap().len()).collect() };
        assert_eq!(
            lens(),
            [0, SPENT_BATCH],
            "a full batch is handed over, a partial one waits"
        );
        // Worker 0 drops only its own.
        pool.broadcast(|c| {
            if c.index() == 0 {
                spent.drop_own();
            }
        });
        assert_eq!(lens(), [0, SPENT_BATCH]);
        pool.broadcast(|c| {
            if c.index() == 1 {
                spent.drop_own();
            }
        });
        assert_eq!(lens(), [0, 0]);
        // Without workers, nothing is kept.
        let none = Spent::new(0);
        let mut c = none.collector();
        c.give(0, output("z"));
        assert!(c.batches.is_empty());
    }

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
