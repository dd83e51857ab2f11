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
mod order;
mod spent;
mod summary;

use order::{Reorder, SeenIds};
use spent::Spent;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
pub use summary::{AlertSummary, BacktestSummary, BaselineSummary, Issue, MAX_ISSUES, RuleTally};

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

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

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
            // Parts this long (with their length tags, over 256 bytes) are not CloudTrail's:
            // hashed part by part.
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
        // The output is made in its place among the items (see `Evaluator::evaluate_into`).
        r.items.push(Item {
            time,
            key: record_key(&ev),
            output: Evaluated::default(),
        });
        let Some(item) = r.items.last_mut() else {
            continue;
        };
        evaluator.evaluate_into(&ev, time, &mut item.output);
        if !item.output.findings.is_empty() {
            // Where the record was read, so people can find it in their archive.
            item.output.set_origin(&format!("{}: {loc}", r.label));
        }
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

    pub(super) const MIN: Millis = 60_000;

    /// One record's output holding one finding, tagged `tag` in its summary.
    pub(super) fn output(tag: &str) -> Evaluated {
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

    pub(super) fn item(time: Option<Millis>, tag: &str) -> Item {
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
}
