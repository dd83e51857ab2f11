//! Live mode: the CloudWatch Logs tail feeds the same engine as the backtest, and findings go
//! to SNS through the durable outbox (or to stdout with `--dry-run`).
//!
//! One poll cycle: read what is new (forward reads, overlap re-scans when due) → evaluate each
//! event (rules, correlations, suppression — in event-time order within the batch) → when the
//! tail is caught up, move the watermark with the wall clock (minus the allowed lateness) so
//! an idle group still closes windows → check silence → hand findings to the outbox (synced
//! to disk) → write the checkpoint when due → publish what pacing allows → sleep.
//!
//! Restart safety: the checkpoint (tail positions, seen event ids, engine state) is written
//! only after the findings of every event it covers are in the outbox. After a crash the tail
//! re-reads from the last checkpoint; findings come out again with the same ids and the
//! outbox, which remembers ids, does not queue them twice.

use crate::engine::{Pipeline, Release, Settings};
use crate::event::Event;
use crate::finding::{Body, Finding, HealthDetails, RuleRef};
use crate::rules::exceptions::Exceptions;
use crate::rules::{Level, RuleSet};
use crate::sink::message::{self, RuleText};
use crate::sink::outbox::Outbox;
use crate::sink::sns::{self, Dispatcher, Pacing, Sns};
use crate::source::cloudwatch::{GroupPosition, SeenSet, Tail, TailConfig};
use crate::util::state::StateDir;
use crate::util::time::{Millis, format_millis, parse_event_time};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

pub const CHECKPOINT_FILE: &str = "checkpoint.json";
pub const CHECKPOINT_FORMAT: &str = "trailwatch-live-checkpoint";
pub const CHECKPOINT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(transparent)]
    Tail(#[from] crate::source::cloudwatch::TailError),
    #[error(transparent)]
    State(#[from] crate::util::state::StateError),
    #[error(transparent)]
    Outbox(#[from] crate::sink::outbox::OutboxError),
    #[error("cannot write findings: {0}")]
    Output(#[from] std::io::Error),
}

/// Where to start reading when there is no checkpoint (or it is not wanted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// The checkpoint when there is one, else now.
    Checkpoint,
    /// Now, ignoring any checkpoint's position (engine state is kept).
    Now,
    /// This event time.
    Time(Millis),
}

/// How findings leave.
pub enum Output {
    /// Through the outbox to SNS.
    Sns(Sns),
    /// Printed (`--dry-run`): JSON lines or text.
    Print {
        json: bool,
        out: Box<dyn Write + Send>,
    },
}

#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub tail: TailConfig,
    pub start_from: StartFrom,
    /// Pause between polls once caught up.
    pub poll: Duration,
    pub engine: Settings,
    /// Lowest level published.
    pub min_level: Level,
    /// A log group without new events for this long is reported (None: never).
    pub silence: Option<Millis>,
    /// How often the checkpoint is written (and always on exit).
    pub checkpoint_every: Millis,
    /// One full cycle (forward reads and overlap re-scan), publish, checkpoint, exit.
    pub once: bool,
    pub pacing: Pacing,
    /// Region shown in silence findings.
    pub region: Option<String>,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            tail: TailConfig::default(),
            start_from: StartFrom::Checkpoint,
            poll: Duration::from_secs(1),
            engine: Settings::default(),
            min_level: Level::Informational,
            silence: Some(30 * 60_000),
            checkpoint_every: 5_000,
            once: false,
            pacing: Pacing::default(),
            region: None,
        }
    }
}

/// Counters exported on `--metrics-addr` (Prometheus text format) and logged at exit.
#[derive(Debug, Default)]
pub struct Metrics {
    pub events: AtomicU64,
    pub malformed: AtomicU64,
    pub findings: AtomicU64,
    pub below_min_level: AtomicU64,
    pub queued: AtomicU64,
    pub published_messages: AtomicU64,
    pub published_findings: AtomicU64,
    pub digests: AtomicU64,
    pub publish_errors: AtomicU64,
    pub failed_findings: AtomicU64,
    pub outbox_pending: AtomicU64,
    pub tail_requests: AtomicU64,
    pub tail_throttled: AtomicU64,
    pub tail_duplicates: AtomicU64,
    pub found_by_rescan: AtomicU64,
    pub seen_ids: AtomicU64,
    pub late_hits: AtomicU64,
    pub evicted_keys: AtomicU64,
    pub checkpoints: AtomicU64,
    /// Newest event time processed (ms), 0 before the first.
    pub newest_event_ms: AtomicI64,
    pub silent_groups: AtomicU64,
}

impl Metrics {
    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let rows: [(&str, &str, &str, u64); 20] = [
            (
                "events_total",
                "counter",
                "CloudTrail events evaluated",
                g(&self.events),
            ),
            (
                "malformed_events_total",
                "counter",
                "log events that are not CloudTrail records",
                g(&self.malformed),
            ),
            (
                "findings_total",
                "counter",
                "findings produced",
                g(&self.findings),
            ),
            (
                "findings_below_min_level_total",
                "counter",
                "findings not published (below --min-level)",
                g(&self.below_min_level),
            ),
            (
                "findings_queued_total",
                "counter",
                "findings queued in the outbox",
                g(&self.queued),
            ),
            (
                "sns_messages_total",
                "counter",
                "SNS messages published",
                g(&self.published_messages),
            ),
            (
                "sns_findings_published_total",
                "counter",
                "findings delivered to SNS",
                g(&self.published_findings),
            ),
            (
                "sns_digests_total",
                "counter",
                "digest messages published",
                g(&self.digests),
            ),
            (
                "sns_publish_errors_total",
                "counter",
                "failed publish attempts",
                g(&self.publish_errors),
            ),
            (
                "sns_failed_findings_total",
                "counter",
                "findings SNS refused for good",
                g(&self.failed_findings),
            ),
            (
                "outbox_pending",
                "gauge",
                "findings waiting in the outbox",
                g(&self.outbox_pending),
            ),
            (
                "tail_requests_total",
                "counter",
                "FilterLogEvents requests",
                g(&self.tail_requests),
            ),
            (
                "tail_throttled_total",
                "counter",
                "FilterLogEvents throttled",
                g(&self.tail_throttled),
            ),
            (
                "tail_duplicates_total",
                "counter",
                "log events dropped as already seen",
                g(&self.tail_duplicates),
            ),
            (
                "tail_found_by_rescan_total",
                "counter",
                "late events found by a re-scan",
                g(&self.found_by_rescan),
            ),
            (
                "tail_seen_ids",
                "gauge",
                "event ids remembered for de-duplication",
                g(&self.seen_ids),
            ),
            (
                "correlation_late_hits_total",
                "counter",
                "correlation inputs beyond the allowed lateness",
                g(&self.late_hits),
            ),
            (
                "correlation_evicted_keys_total",
                "counter",
                "correlation group keys evicted at the cap",
                g(&self.evicted_keys),
            ),
            (
                "checkpoints_total",
                "counter",
                "checkpoints written",
                g(&self.checkpoints),
            ),
            (
                "silent_log_groups",
                "gauge",
                "log groups currently reported silent",
                g(&self.silent_groups),
            ),
        ];
        let mut s = String::new();
        for (name, ty, help, v) in rows {
            s.push_str(&format!(
                "# HELP trailwatch_{name} {help}\n# TYPE trailwatch_{name} {ty}\ntrailwatch_{name} {v}\n"
            ));
        }
        let newest = self.newest_event_ms.load(Ordering::Relaxed);
        s.push_str(&format!(
            "# HELP trailwatch_newest_event_time_seconds event time of the newest event processed\n\
             # TYPE trailwatch_newest_event_time_seconds gauge\n\
             trailwatch_newest_event_time_seconds {}\n",
            newest as f64 / 1000.0
        ));
        // Lag: how far behind the present the newest processed event is (CloudTrail's own
        // delivery delay of minutes included; a value that keeps growing means trailwatch,
        // or the trail, has fallen behind).
        if newest > 0 {
            s.push_str(&format!(
                "# HELP trailwatch_lag_seconds now minus the event time of the newest event processed
                 # TYPE trailwatch_lag_seconds gauge
                 trailwatch_lag_seconds {}
",
                (wall_ms() - newest).max(0) as f64 / 1000.0
            ));
        }
        s
    }
}

/// Serves `metrics.render()` over plain HTTP on `listener` until the process ends.
pub async fn serve_metrics(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let m = metrics.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            // The request is not interpreted: every path answers with the metrics.
            let _ = tokio::time::timeout(Duration::from_secs(2), sock.read(&mut buf)).await;
            let body = m.render();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
        });
    }
}

/// The checkpoint as written: like [`Checkpoint`], the seen ids streamed from the set.
#[derive(Serialize)]
struct CheckpointOut<'a> {
    format: &'a str,
    version: u32,
    written_at: String,
    groups: Vec<SavedGroup>,
    seen: SeenOut<'a>,
    engine: crate::engine::SnapshotRef<'a, 'a>,
    silent: Vec<String>,
}

/// Serialises the seen ids as their base64 text without building it.
struct SeenOut<'a>(&'a SeenSet);

impl Serialize for SeenOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.base64())
    }
}

/// The persisted position of the live run.
#[derive(Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: String,
    pub version: u32,
    pub written_at: String,
    pub groups: Vec<SavedGroup>,
    /// Seen event ids (see `SeenSet::to_base64`).
    pub seen: String,
    /// Correlation windows and held (suppressed) findings.
    pub engine: serde_json::Value,
    /// Groups currently reported silent.
    #[serde(default)]
    pub silent: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SavedGroup {
    pub name: String,
    #[serde(flatten)]
    pub position: GroupPosition,
}

/// Reads and checks a checkpoint.
pub fn read_checkpoint(
    state: &StateDir,
) -> Result<Option<Checkpoint>, crate::util::state::StateError> {
    let Some(bytes) = state.read(CHECKPOINT_FILE)? else {
        return Ok(None);
    };
    let file = state.path().join(CHECKPOINT_FILE).display().to_string();
    let cp: Checkpoint =
        serde_json::from_slice(&bytes).map_err(|e| crate::util::state::StateError::Invalid {
            file: file.clone(),
            message: format!("not a readable checkpoint ({e}); move it away to start afresh"),
        })?;
    if cp.format != CHECKPOINT_FORMAT || cp.version != CHECKPOINT_VERSION {
        return Err(crate::util::state::StateError::Invalid {
            file,
            message: format!(
                "checkpoint format {} version {} is not {CHECKPOINT_FORMAT} version {CHECKPOINT_VERSION}",
                cp.format, cp.version
            ),
        });
    }
    Ok(Some(cp))
}

pub fn wall_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// Rule descriptions for e-mails, by rule or correlation id.
fn rule_texts(rules: &RuleSet) -> HashMap<String, RuleText> {
    let mut m = HashMap::new();
    let metas = rules
        .rules()
        .iter()
        .map(|r| &r.meta)
        .chain(rules.plans().plans.iter().map(|p| &p.corr.def.meta));
    for meta in metas {
        m.insert(
            meta.id.clone(),
            RuleText {
                description: meta.description.clone(),
                falsepositives: meta.falsepositives.clone(),
                references: meta.references.clone(),
            },
        );
    }
    m.insert(
        SILENCE_RULE_ID.to_string(),
        RuleText {
            description: Some(
                "No CloudTrail event has reached this log group for longer than the configured \
                 silence period. A trail that is stopped, deleted, re-pointed, or whose delivery \
                 to CloudWatch Logs is broken (role, KMS key, subscription) looks like this — and \
                 every detection depending on it is blind until it is fixed.\n\
                 Check first: `aws cloudtrail get-trail-status` for the trail (IsLogging, \
                 LatestCloudWatchLogsDeliveryError), recent StopLogging / DeleteTrail / \
                 UpdateTrail / PutEventSelectors events in the S3 archive, and the trail's \
                 CloudWatch Logs role."
                    .into(),
            ),
            falsepositives: vec![
                "An account or region with genuinely no API activity (rare for a whole trail)"
                    .into(),
            ],
            references: vec![],
        },
    );
    m
}

pub const SILENCE_RULE_ID: &str = "trailwatch-log-group-silent";

/// The finding for a log group that went quiet.
pub fn silence_finding(
    group: &str,
    last_event_wall: Millis,
    now: Millis,
    region: Option<&str>,
) -> Finding {
    let id = crate::util::ids::stable_id(&["silence", group, &last_event_wall.to_string()]);
    let silent_for = crate::util::time::format_duration(now - last_event_wall);
    let rule = RuleRef {
        id: SILENCE_RULE_ID.into(),
        title: "No CloudTrail events from log group".into(),
        level: Level::High,
        tags: vec!["attack.defense-evasion".into(), "attack.t1562.008".into()],
    };
    let details = HealthDetails {
        log_group: group.to_string(),
        silent_for: silent_for.clone(),
        last_event_received: format_millis(last_event_wall),
    };
    Finding::new(id, rule, Body::Health(details))
        .with_time(Some(format_millis(now)), Some(now))
        .with_who("trailwatch".into(), None, region.map(str::to_string))
        .with_events(Vec::new(), 0)
        .with_summary(format!(
            "No CloudTrail event arrived in log group {group} for {silent_for} (last one received \
             at {}): the trail may be stopped or its delivery broken.",
            format_millis(last_event_wall)
        ))
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct LiveSummary {
    pub cycles: u64,
    pub events: u64,
    pub findings: u64,
    pub outbox_pending: usize,
}

/// Runs until `stop` is set (SIGINT/SIGTERM) or, with `once`, after one full cycle.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    opts: &LiveOptions,
    rules: &RuleSet,
    exceptions: &Exceptions,
    logs: aws_sdk_cloudwatchlogs::Client,
    mut output: Output,
    state: &StateDir,
    stop: Arc<AtomicBool>,
    wake: Arc<tokio::sync::Notify>,
    metrics: Arc<Metrics>,
) -> Result<LiveSummary, LiveError> {
    let now = wall_ms();
    let mut pipeline = Pipeline::new(rules, exceptions, &opts.engine);
    // People wait for no suppression period: the first finding of an incident goes out at
    // once, an update at the end of the period if more came.
    pipeline.set_release(Release::FirstAtOnce);
    let checkpoint = read_checkpoint(state)?;
    let start = match opts.start_from {
        StartFrom::Time(t) => t,
        _ => now,
    };
    let mut positions: Vec<GroupPosition> = opts
        .tail
        .groups
        .iter()
        .map(|_| GroupPosition {
            cursor: start,
            floor: start,
        })
        .collect();
    let mut seen = SeenSet::default();
    let mut silent: Vec<bool> = vec![false; opts.tail.groups.len()];
    if let Some(cp) = &checkpoint {
        if let Err(e) = pipeline.restore(&cp.engine) {
            tracing::warn!(
                "engine state in the checkpoint not restored ({e}); correlation windows start empty"
            );
        }
        if opts.start_from == StartFrom::Checkpoint {
            for (i, g) in opts.tail.groups.iter().enumerate() {
                if let Some(saved) = cp.groups.iter().find(|s| &s.name == g) {
                    positions[i] = saved.position.clone();
                }
                silent[i] = cp.silent.contains(g);
            }
            seen = SeenSet::from_base64(&cp.seen).unwrap_or_default();
        }
    }
    let learned = checkpoint
        .as_ref()
        .is_some_and(|cp| Pipeline::snapshot_has_baselines(&cp.engine));
    if !learned && pipeline.has_baselines() {
        // First start: baselines learned from archives (`trailwatch baseline build`) arm
        // anomaly detection from the first minute.
        let dir = state.path().display();
        match crate::baseline::store::load(state.path()) {
            Ok(Some(snap)) => {
                pipeline.restore_baselines(snap);
                let series = pipeline.stats().baselines.map_or(0, |(n, _)| n);
                tracing::info!(
                    series,
                    "loaded baselines learned from archives ({series} series) from {dir}"
                );
            }
            Ok(None) => tracing::info!(
                "no learned baselines in {dir}: each principal is judged once it has enough \
                 history (warm-up); to arm anomaly detection at once, learn from archives first: \
                 trailwatch baseline build <ARCHIVE>... --state-dir {dir}"
            ),
            Err(e) => tracing::warn!("learned baselines not loaded: {e}"),
        }
    }
    let mut tail = Tail::new(logs, opts.tail.clone(), positions, seen, now);
    let texts = rule_texts(rules);
    let mut publisher = match &output {
        Output::Sns(_) => {
            let (ob, rec) = Outbox::open(state.path(), now)?;
            for (line, e) in &rec.bad_lines {
                tracing::warn!(
                    "{}: line {line} unreadable ({e}); repaired",
                    state.path().join(crate::sink::outbox::FILE_NAME).display()
                );
            }
            if rec.pending > 0 {
                tracing::info!(
                    outbox = rec.pending,
                    "{} finding(s) from an earlier run wait in the outbox; publishing them first",
                    rec.pending
                );
            }
            Some((ob, Dispatcher::new(opts.pacing.clone())))
        }
        Output::Print { .. } => None,
    };
    let mut summary = LiveSummary::default();
    let mut last_checkpoint = now;
    // The first cycle always writes a checkpoint: it records where reading began, so a restart
    // before any event arrives resumes from there instead of from its own "now".
    let mut dirty = true;
    let mut ready: Vec<Finding> = Vec::new();
    let mut failures: u32 = 0;
    loop {
        let now = wall_ms();
        let batch = match tail.poll(now, opts.once).await {
            Ok(b) => {
                failures = 0;
                b
            }
            // At start-up an error that retrying cannot fix (no such group, no permission)
            // stops the run with its message; once running, it is logged and retried with
            // backoff (credentials being rotated, a policy being edited) — the service stays up.
            Err(e) if summary.cycles == 0 || opts.once => return Err(e.into()),
            Err(e) => {
                failures = (failures + 1).min(8);
                let delay = Duration::from_secs(5 << (failures - 1)).min(Duration::from_secs(300));
                tracing::error!(
                    retry_in_s = delay.as_secs(),
                    "{e}; retrying in {}s (position kept, nothing skipped)",
                    delay.as_secs()
                );
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = wake.notified() => {}
                }
                if stop.load(Ordering::Relaxed) {
                    write_checkpoint(state, &tail, &pipeline, &silent, opts)?;
                    break;
                }
                continue;
            }
        };
        summary.cycles += 1;
        for raw in &batch.events {
            let ev = match Event::parse(&raw.message) {
                Ok(ev) => ev,
                Err(e) => {
                    let n = metrics.malformed.fetch_add(1, Ordering::Relaxed) + 1;
                    // The first hundred are reported one by one, then every thousandth, so a
                    // flood of junk in the group cannot flood the logs (all are counted).
                    if n <= 100 || n.is_multiple_of(1000) {
                        tracing::warn!(
                            log_group = %raw.group,
                            stream = %raw.stream,
                            log_event = %raw.cwl_id,
                            "log group {}, stream {}, event {}: not a CloudTrail record ({n} so far): {e}",
                            raw.group,
                            raw.stream,
                            raw.cwl_id
                        );
                    }
                    continue;
                }
            };
            summary.events += 1;
            metrics.events.fetch_add(1, Ordering::Relaxed);
            let time = ev.event_time().and_then(parse_event_time);
            if let Some(t) = time {
                metrics.newest_event_ms.fetch_max(t, Ordering::Relaxed);
            }
            let origin = format!(
                "log group {}, stream {}, log event {}",
                raw.group, raw.stream, raw.cwl_id
            );
            pipeline.feed(&ev, Some(&origin), &mut ready);
            dirty = true;
        }
        if batch.caught_up {
            // Nothing more to read: event time has reached the present.
            pipeline.tick(now, &mut ready);
        }
        if let Some(quiet) = opts.silence {
            for (g, name) in opts.tail.groups.iter().enumerate() {
                let last = tail.last_event_wall[g];
                if last == now && silent[g] {
                    silent[g] = false;
                    dirty = true;
                    tracing::info!(log_group = %name, "log group {name}: events arrive again");
                } else if now - last >= quiet && !silent[g] && batch.caught_up {
                    silent[g] = true;
                    dirty = true;
                    tracing::warn!(
                        log_group = %name,
                        "log group {name}: no event for {}; reporting it",
                        crate::util::time::format_duration(now - last)
                    );
                    ready.push(silence_finding(name, last, now, opts.region.as_deref()));
                }
            }
            metrics.silent_groups.store(
                silent.iter().filter(|s| **s).count() as u64,
                Ordering::Relaxed,
            );
        }
        // Hand the findings over before the checkpoint can cover their events.
        if !ready.is_empty() {
            summary.findings += ready.len() as u64;
            metrics
                .findings
                .fetch_add(ready.len() as u64, Ordering::Relaxed);
            deliver(
                &mut ready,
                opts,
                &texts,
                &mut output,
                &mut publisher,
                &metrics,
            )?;
            dirty = true;
        }
        let stopping =
            stop.load(Ordering::Relaxed) || (opts.once && batch.caught_up && !tail.rescanning());
        if dirty && (stopping || now - last_checkpoint >= opts.checkpoint_every) {
            write_checkpoint(state, &tail, &pipeline, &silent, opts)?;
            metrics.checkpoints.fetch_add(1, Ordering::Relaxed);
            last_checkpoint = now;
            dirty = false;
        }
        metrics
            .tail_requests
            .store(tail.stats.requests, Ordering::Relaxed);
        metrics
            .tail_throttled
            .store(tail.stats.throttled, Ordering::Relaxed);
        metrics
            .tail_duplicates
            .store(tail.stats.duplicates, Ordering::Relaxed);
        metrics
            .found_by_rescan
            .store(tail.stats.found_by_rescan, Ordering::Relaxed);
        metrics
            .seen_ids
            .store(tail.seen.len() as u64, Ordering::Relaxed);
        let stats = pipeline.stats();
        metrics
            .late_hits
            .store(stats.correlation.late_hits, Ordering::Relaxed);
        metrics
            .evicted_keys
            .store(stats.correlation.evicted_keys, Ordering::Relaxed);
        if let (Output::Sns(sns), Some((ob, disp))) = (&output, &mut publisher) {
            publish(sns, ob, disp, &metrics, stopping && opts.once).await?;
            summary.outbox_pending = ob.pending().len();
        }
        if stopping {
            break;
        }
        if batch.caught_up {
            // Sleep until the next poll, or until asked to stop.
            tokio::select! {
                _ = tokio::time::sleep(opts.poll) => {}
                _ = wake.notified() => {}
            }
        }
    }
    Ok(summary)
}

/// Filters by level and hands findings to the outbox (synced) or prints them.
fn deliver(
    ready: &mut Vec<Finding>,
    opts: &LiveOptions,
    texts: &HashMap<String, RuleText>,
    output: &mut Output,
    publisher: &mut Option<(Outbox, Dispatcher)>,
    metrics: &Metrics,
) -> Result<(), LiveError> {
    let mut keep = Vec::new();
    for f in ready.drain(..) {
        if f.rule.level < opts.min_level {
            metrics.below_min_level.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        keep.push(f);
    }
    match output {
        Output::Print { json, out } => {
            for f in &keep {
                if *json {
                    serde_json::to_writer(&mut *out, f).map_err(std::io::Error::other)?;
                    writeln!(out)?;
                } else {
                    writeln!(
                        out,
                        "{:<8} {}  {}",
                        f.rule.level.as_str().to_ascii_uppercase(),
                        f.time.as_deref().unwrap_or("-"),
                        message::clean(&f.summary, 2000)
                    )?;
                }
            }
            out.flush()?;
        }
        Output::Sns(_) => {
            if let Some((ob, _)) = publisher {
                let items = keep.into_iter().map(|f| {
                    let text = texts.get(&f.rule.id).cloned().unwrap_or_default();
                    let v = serde_json::to_value(&f).unwrap_or(serde_json::Value::Null);
                    (v, text)
                });
                let n = ob.enqueue(items, wall_ms())?;
                metrics.queued.fetch_add(n as u64, Ordering::Relaxed);
                metrics
                    .outbox_pending
                    .store(ob.pending().len() as u64, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

/// Publishes what pacing allows now; with `finish`, keeps going (waiting as pacing asks)
/// until the outbox is empty or SNS fails, for at most two minutes.
async fn publish(
    sns: &Sns,
    ob: &mut Outbox,
    disp: &mut Dispatcher,
    metrics: &Metrics,
    finish: bool,
) -> Result<(), LiveError> {
    let deadline = wall_ms() + 120_000;
    loop {
        let d = sns::drain(sns, ob, disp, wall_ms).await?;
        metrics
            .published_messages
            .fetch_add(d.messages, Ordering::Relaxed);
        metrics
            .published_findings
            .fetch_add(d.findings, Ordering::Relaxed);
        metrics.digests.fetch_add(d.digests, Ordering::Relaxed);
        metrics
            .failed_findings
            .fetch_add(d.failed, Ordering::Relaxed);
        metrics
            .publish_errors
            .fetch_add(d.errors.len() as u64, Ordering::Relaxed);
        metrics
            .outbox_pending
            .store(ob.pending().len() as u64, Ordering::Relaxed);
        for e in &d.errors {
            tracing::warn!("{e}");
        }
        if !finish || ob.pending().is_empty() || !d.errors.is_empty() {
            return Ok(());
        }
        let now = wall_ms();
        let until = match disp.next(now, ob.pending().len()) {
            sns::Step::Wait(t) => t,
            _ => now,
        };
        if until > deadline {
            tracing::info!(
                outbox = ob.pending().len(),
                "{} finding(s) stay in the outbox for the next run (publish pacing)",
                ob.pending().len()
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis((until - now).max(0) as u64)).await;
    }
}

fn write_checkpoint(
    state: &StateDir,
    tail: &Tail,
    pipeline: &Pipeline<'_>,
    silent: &[bool],
    opts: &LiveOptions,
) -> Result<(), LiveError> {
    let cp = CheckpointOut {
        format: CHECKPOINT_FORMAT,
        version: CHECKPOINT_VERSION,
        written_at: format_millis(wall_ms()),
        groups: opts
            .tail
            .groups
            .iter()
            .zip(&tail.positions)
            .map(|(name, p)| SavedGroup {
                name: name.clone(),
                position: p.clone(),
            })
            .collect(),
        seen: SeenOut(&tail.seen),
        engine: pipeline.snapshot_ref(),
        silent: opts
            .tail
            .groups
            .iter()
            .zip(silent)
            .filter(|(_, s)| **s)
            .map(|(g, _)| g.clone())
            .collect(),
    };
    state.write_with(CHECKPOINT_FILE, |w| {
        serde_json::to_writer(w, &cp).map_err(std::io::Error::other)
    })?;
    Ok(())
}
