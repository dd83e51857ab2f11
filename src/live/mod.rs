//! Live mode: a source — the CloudWatch Logs tail, or the log group's subscription stream in
//! Kinesis — feeds the same engine as the backtest, and findings go to SNS through the durable
//! outbox (or to stdout with `--dry-run`).
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

mod checkpoint;
mod deliver;
mod feed;
mod metrics;
mod silence;

pub use checkpoint::{
    CHECKPOINT_FILE, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, Checkpoint, SavedGroup, read_checkpoint,
};
pub use feed::FeedError;
pub use metrics::{Metrics, serve_metrics};
pub use silence::{SILENCE_RULE_ID, Watched, silence_finding};

use crate::engine::{Alert, AlertSettings, Pipeline, Settings};
use crate::event::Event;
use crate::finding::{Finding, Kind};
use crate::rules::exceptions::Exceptions;
use crate::rules::{Level, RuleSet};
use crate::sink::sns::{Pacing, Sns};
use crate::source::Delivered;
use crate::source::cloudwatch::{GroupPosition, SeenSet, Tail, TailConfig};
use crate::source::kinesis::{Kinesis, KinesisConfig, ShardStart, StreamPosition};
use crate::source::sqs::{Sqs, SqsConfig};
use crate::util::aws::{Backoff, Stop};
use crate::util::state::StateDir;
use crate::util::time::{Millis, parse_event_time};
use checkpoint::write_checkpoint;
use deliver::Delivery;
use feed::Feed;
use silence::check_silence;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(transparent)]
    Source(#[from] FeedError),
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
pub enum LiveOutput {
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
    /// Where baselines learned from archives are read on a first start (`None`: the state
    /// directory). A dry run keeps its own state but uses what the real run would.
    pub baselines_dir: Option<PathBuf>,
    /// Publish alerts about incidents ([`crate::engine::incident`]) instead of one message
    /// per finding.
    pub alerts: Option<AlertSettings>,
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
            baselines_dir: None,
            alerts: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct LiveSummary {
    pub cycles: u64,
    pub events: u64,
    pub findings: u64,
    pub outbox_pending: usize,
}

/// Where a live run reads CloudTrail records.
pub enum LiveSource {
    /// The log groups of `LiveOptions::tail`, read with FilterLogEvents.
    Logs(aws_sdk_cloudwatchlogs::Client),
    /// A Kinesis stream fed by a subscription filter on the trail's log group.
    Kinesis(aws_sdk_kinesis::Client, KinesisConfig),
    /// An SQS queue of S3 notifications for new CloudTrail objects, and the S3 client that
    /// reads them.
    Sqs(aws_sdk_sqs::Client, aws_sdk_s3::Client, SqsConfig),
}

/// What a live run works with (see [`run`]).
pub struct LiveRun<'a> {
    pub opts: &'a LiveOptions,
    pub rules: &'a RuleSet,
    pub exceptions: &'a Exceptions,
    pub source: LiveSource,
    pub output: LiveOutput,
    /// Checkpoint, outbox and learned baselines.
    pub state: &'a StateDir,
    /// Given to end the run (SIGINT/SIGTERM): waits, backoffs and requests in flight are cut
    /// short, what was read is handed over, a last checkpoint is written.
    pub stop: Stop,
    pub metrics: Arc<Metrics>,
}

/// Runs until `stop` is set (SIGINT/SIGTERM) or, with `once`, after one full cycle.
pub async fn run(live: LiveRun<'_>) -> Result<LiveSummary, LiveError> {
    let LiveRun {
        opts,
        rules,
        exceptions,
        source,
        output,
        state,
        stop,
        metrics,
    } = live;
    let now = wall_ms();
    let mut pipeline = Pipeline::new(rules, exceptions, &opts.engine);
    if let Some(a) = &opts.alerts {
        // Before the restore: open incidents come back with the checkpoint.
        pipeline.enable_alerts(a.clone());
    }
    let watched = watched_of(&source, &opts.tail.groups);
    let Restored {
        positions,
        seen,
        kinesis,
        mut silent,
    } = restore(opts, state, &watched, &mut pipeline, now)?;
    let mut feed = match source {
        LiveSource::Logs(logs) => Feed::Tail(
            Tail::new(logs, opts.tail.clone(), positions, seen, now).with_stop(stop.clone()),
        ),
        LiveSource::Kinesis(client, cfg) => {
            // Without a saved position: records arriving from now, or from --start-from.
            let first = match opts.start_from {
                StartFrom::Time(t) => ShardStart::ArrivedAt(t),
                _ => ShardStart::ArrivedAt(now),
            };
            Feed::Kinesis(Kinesis::new(client, cfg, kinesis, seen, first, stop.clone()).since(now))
        }
        // The queue is read from wherever it is: --start-from does not apply.
        LiveSource::Sqs(sqs, s3, cfg) => {
            Feed::Sqs(Sqs::new(sqs, s3, cfg, seen, stop.clone()).since(now))
        }
    };
    let mut delivery = Delivery::open(output, rules, opts, state, now)?;
    let checkpoint = |feed: &Feed, pipeline: &Pipeline<'_>, silent: &[bool]| {
        let (groups, engine) = (&opts.tail.groups, pipeline.snapshot_ref());
        let silent = watched
            .iter()
            .zip(silent)
            .filter(|(_, s)| **s)
            .map(|(w, _)| w.name.clone())
            .collect();
        write_checkpoint(state, groups, feed.state(), engine, silent)
    };
    let mut summary = LiveSummary::default();
    let mut last_checkpoint = now;
    // The first cycle always writes a checkpoint: it records where reading began, so a restart
    // before any event arrives resumes from there instead of from its own "now".
    let mut dirty = true;
    let mut ready: Vec<Finding> = Vec::new();
    let mut alerts: Vec<Alert> = Vec::new();
    let mut backoff = Backoff::default();
    loop {
        let now = wall_ms();
        let batch = match feed.poll(now, opts.once).await {
            Ok(b) => {
                backoff.reset();
                b
            }
            // At start-up an error that retrying cannot fix (no such group, no permission)
            // stops the run with its message; once running, it is logged and retried with
            // backoff (credentials being rotated, a policy being edited) — the service stays up.
            Err(e) if summary.cycles == 0 || opts.once => return Err(e.into()),
            Err(e) => {
                back_off(&e, backoff.failed(5_000, 300_000), &stop).await;
                if stop.is_set() {
                    checkpoint(&feed, &pipeline, &silent)?;
                    feed.commit().await?;
                    break;
                }
                continue;
            }
        };
        summary.cycles += 1;
        let fed = evaluate(&batch.records, &mut pipeline, &metrics, &mut ready);
        summary.events += fed;
        dirty |= fed > 0 || feed.has_pending();
        if batch.caught_up {
            // Nothing more to read: event time has reached the present (less what the source
            // may still deliver late).
            pipeline.tick(now - feed.delivery_delay(), &mut ready);
        }
        if let Some(quiet) = opts.silence {
            let last = feed.last_event_wall();
            let caught_up = batch.caught_up;
            let region = opts.region.as_deref();
            dirty |= check_silence(
                &watched,
                region,
                quiet,
                last,
                &mut silent,
                now,
                caught_up,
                &mut ready,
            );
            let n = silent.iter().filter(|s| **s).count();
            metrics.silent_groups.store(n as u64, Ordering::Relaxed);
        }
        // Hand the findings (or, with alerts, the alerts and health findings) over before
        // the checkpoint can cover their events.
        if !ready.is_empty() {
            summary.findings += ready.len() as u64;
            metrics
                .findings
                .fetch_add(ready.len() as u64, Ordering::Relaxed);
            if opts.alerts.is_some() {
                // Findings reach people through alerts; the pipeline's own health does not
                // go through incidents.
                ready.retain(|f| f.kind() == Kind::Health);
            }
            delivery.deliver(&mut ready, &metrics)?;
            dirty = true;
        }
        pipeline.drain_alerts(&mut alerts);
        // Alerts in the outbox are followed by a checkpoint at once: a restart from an older
        // checkpoint would decide them again from a different batching of the same events.
        let alerted = !alerts.is_empty();
        if alerted {
            delivery.deliver_alerts(&mut alerts, &metrics)?;
            dirty = true;
        }
        let stopping = stop.is_set() || (opts.once && batch.caught_up && !feed.unfinished());
        let due = now - last_checkpoint >= opts.checkpoint_every || feed.must_commit(now);
        if dirty && (stopping || alerted || due) {
            checkpoint(&feed, &pipeline, &silent)?;
            metrics.checkpoints.fetch_add(1, Ordering::Relaxed);
            last_checkpoint = now;
            dirty = false;
            // What the checkpoint covers can go (SQS messages are deleted).
            feed.commit().await?;
        }
        feed.record_metrics(&metrics);
        metrics.record_cycle(&pipeline.stats());
        if let Some(pending) = delivery
            .publish(&metrics, stopping && opts.once, &stop)
            .await?
        {
            summary.outbox_pending = pending;
        }
        if stopping {
            break;
        }
        if batch.caught_up {
            // Sleep until the next poll, or until asked to stop.
            stop.sleep(opts.poll).await;
        }
    }
    Ok(summary)
}

/// Where the source starts, from the checkpoint or `--start-from`.
struct Restored {
    positions: Vec<GroupPosition>,
    seen: SeenSet,
    /// Saved shard positions (when resuming from a checkpoint).
    kinesis: Option<StreamPosition>,
    /// Per watched source: reported silent.
    silent: Vec<bool>,
}

/// What the silence rule watches: each log group of the tail, or the stream, or the queue.
fn watched_of(source: &LiveSource, groups: &[String]) -> Vec<Watched> {
    match source {
        LiveSource::Logs(_) => groups
            .iter()
            .map(|g| Watched {
                kind: "log group",
                name: g.clone(),
            })
            .collect(),
        LiveSource::Kinesis(_, cfg) => vec![Watched {
            kind: "Kinesis stream",
            name: cfg.stream.clone(),
        }],
        LiveSource::Sqs(_, _, cfg) => vec![Watched {
            kind: "queue",
            name: cfg.queue_url.clone(),
        }],
    }
}

/// Reads the checkpoint: the engine's state goes into `pipeline` (or, on a first start,
/// the baselines learned from archives), and the tail's start is returned.
fn restore(
    opts: &LiveOptions,
    state: &StateDir,
    watched: &[Watched],
    pipeline: &mut Pipeline<'_>,
    now: Millis,
) -> Result<Restored, LiveError> {
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
    let mut kinesis = None;
    let mut silent: Vec<bool> = vec![false; watched.len()];
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
            }
            for (w, s) in watched.iter().zip(silent.iter_mut()) {
                *s = cp.silent.contains(&w.name);
            }
            seen = SeenSet::from_base64(&cp.seen).unwrap_or_default();
            kinesis = cp.kinesis.clone();
        }
    }
    let learned = checkpoint
        .as_ref()
        .is_some_and(|cp| Pipeline::snapshot_has_baselines(&cp.engine));
    if !learned && pipeline.has_baselines() {
        let dir = opts.baselines_dir.as_deref().unwrap_or(state.path());
        load_learned_baselines(dir, pipeline);
    }
    Ok(Restored {
        positions,
        seen,
        kinesis,
        silent,
    })
}

/// First start: baselines learned from archives (`trailwatch baseline build`) arm anomaly
/// detection from the first minute.
fn load_learned_baselines(from: &std::path::Path, pipeline: &mut Pipeline<'_>) {
    let dir = from.display();
    match crate::baseline::store::load(from) {
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

/// Feeds a batch to the engine in event-time order (a stable sort: records without a time
/// keep their place at the end), findings into `ready`; returns how many records were
/// CloudTrail records (the rest are counted as malformed).
fn evaluate(
    records: &[Delivered],
    pipeline: &mut Pipeline<'_>,
    metrics: &Metrics,
    ready: &mut Vec<Finding>,
) -> u64 {
    let mut events = Vec::with_capacity(records.len());
    for raw in records {
        match Event::parse(&raw.text) {
            Ok(ev) => {
                let time = ev.event_time().and_then(parse_event_time);
                events.push((time, ev, raw));
            }
            Err(e) => {
                let n = metrics.malformed.fetch_add(1, Ordering::Relaxed) + 1;
                // The first hundred are reported one by one, then every thousandth, so a
                // flood of junk cannot flood the logs (all are counted).
                if n <= 100 || n.is_multiple_of(1000) {
                    tracing::warn!(
                        origin = %raw.origin,
                        "{}: not a CloudTrail record ({n} so far): {e}",
                        raw.origin
                    );
                }
            }
        }
    }
    events.sort_by_key(|(t, _, _)| t.unwrap_or(Millis::MAX));
    for (time, ev, raw) in &events {
        metrics.events.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = time {
            metrics.newest_event_ms.fetch_max(*t, Ordering::Relaxed);
        }
        pipeline.feed(ev, Some(&raw.origin), ready);
    }
    events.len() as u64
}

/// After a failed poll: logs the error and waits `delay_ms` (5 s, doubling with each failure
/// in a row up to five minutes), or until asked to stop.
async fn back_off(e: &FeedError, delay_ms: Millis, stop: &Stop) {
    let delay = Duration::from_millis(delay_ms as u64);
    tracing::error!(
        retry_in_s = delay.as_secs(),
        "{}",
        crate::util::aws::followed_by(
            e,
            &format!(
                "retrying in {}s (position kept, nothing skipped)",
                delay.as_secs()
            )
        )
    );
    stop.sleep(delay).await;
}

pub fn wall_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}
