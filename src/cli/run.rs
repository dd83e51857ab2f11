//! `trailwatch run`: tail CloudWatch Logs groups live and publish findings to SNS;
//! `trailwatch topic create` and `trailwatch subscribe`: set up the alert topic.

use super::{Outcome, RuleArgs, parse_level};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use trailwatch::live::{self, LiveOptions, LiveOutput, LiveRun, LiveSource, Metrics, StartFrom};
use trailwatch::rules::Level;
use trailwatch::sink::sns::{Pacing, Sns, wait_in_outbox};
use trailwatch::source::cloudwatch::{TailConfig, check_group};
use trailwatch::source::kinesis::{KinesisConfig, check_stream};
use trailwatch::source::s3::s3_client;
use trailwatch::source::sqs::{SqsConfig, check_queue};
use trailwatch::util::aws::{AwsError, AwsErrorClass, Stop, followed_by, show_request_ids};
use trailwatch::util::state::StateDir;
use trailwatch::util::text::count;
use trailwatch::util::time::{Millis, parse_duration, parse_time_arg};

#[derive(Args, Debug)]
#[command(
    after_help = "Sources: --log-group (tail the group with FilterLogEvents), --kinesis-stream \
(the group's subscription stream: every event pushed once, shards for throughput), or \
--sqs-queue (the bucket's S3 notifications: trails that write only to S3, several instances \
sharing the work); docs/operations.md, \"Choosing a source\".\n\n\
How the tail works: every --poll, FilterLogEvents reads each log group \
forward from the newest event seen; every --rescan-every, the trailing --overlap window is \
read again so events CloudTrail delivers late are not missed; events are de-duplicated on \
their CloudTrail eventID. Findings are appended to an outbox in --state-dir (synced to disk) \
before the position advances (with Kinesis: the shard positions; with SQS: before the message \
is deleted), then published to SNS at most --max-messages-per-minute (bursts \
become one digest message), so a restart after a crash skips no event and publishes no \
finding twice. SIGINT/SIGTERM stop within seconds, also during retries and publishing, after a \
final checkpoint of what was handed over.\n\n\
Region and credentials come from the standard AWS chain (AWS_PROFILE, AWS_REGION, environment, \
instance role); AWS_ENDPOINT_URL is honoured. At start-up, the region, the credentials, the \
source (each log group, the stream or the queue) and the topic are checked: a problem stops the run with one line saying what to do \
(exit 2).\n\n\
Examples:\n  trailwatch topic create trailwatch-alerts\n  trailwatch subscribe --topic-arn \
arn:aws:sns:us-east-1:123456789012:trailwatch-alerts --email secops@example.com\n  trailwatch \
run --log-group cloudtrail-logs --topic-arn arn:aws:sns:us-east-1:123456789012:trailwatch-alerts\n  \
trailwatch run --log-group cloudtrail-logs --dry-run --start-from 2h\n  \
trailwatch run --kinesis-stream cloudtrail-events --topic-arn <ARN>\n  \
trailwatch run --sqs-queue https://sqs.us-east-1.amazonaws.com/123456789012/cloudtrail-objects \
--topic-arn <ARN>"
)]
pub struct RunArgs {
    /// CloudWatch Logs group a CloudTrail trail streams into (repeatable), read with
    /// FilterLogEvents.
    #[arg(long = "log-group", value_name = "NAME")]
    log_groups: Vec<String>,
    /// Read the trail's events from a Kinesis data stream that a subscription filter on its
    /// log group feeds, instead of tailing the group: every event pushed once, at ingestion
    /// (late ones too), shards for throughput beyond FilterLogEvents' quota
    /// (docs/operations.md, "Scale").
    #[arg(long, value_name = "NAME|ARN", conflicts_with = "log_groups")]
    kinesis_stream: Option<String>,
    /// Read new CloudTrail files from S3 as the bucket's event notifications announce them on
    /// this SQS queue (S3 → SQS, S3 → SNS → SQS, EventBridge → SQS), instead of tailing a log
    /// group: for trails that write only to S3, and for several instances sharing the work
    /// (docs/operations.md, "Scale"). A message is deleted once its files' findings are in
    /// the outbox; one that keeps failing is left to the queue's dead-letter policy.
    #[arg(long, value_name = "URL", conflicts_with_all = ["log_groups", "kinesis_stream"])]
    sqs_queue: Option<String>,
    /// SNS topic for findings (a standard topic: FIFO topics cannot deliver e-mail).
    #[arg(long, value_name = "ARN")]
    topic_arn: Option<String>,
    /// Rule file or directory (repeatable). Replaces the built-in rules unless --builtin.
    #[arg(long = "rules", value_name = "PATH")]
    rules: Vec<PathBuf>,
    /// Also use the built-in rules when --rules is given.
    #[arg(long)]
    builtin: bool,
    /// Run without rules that fail to load instead of refusing to start.
    #[arg(long)]
    skip_invalid: bool,
    #[command(flatten)]
    tuning: super::Tuning,
    /// Where the checkpoint, the outbox and the lock live [default: $XDG_STATE_HOME/trailwatch
    /// or ~/.local/state/trailwatch]. Baselines learned there by `trailwatch baseline build
    /// --state-dir DIR` arm anomaly detection from the first minute. Created owner-only (0700,
    /// files 0600: the outbox holds findings); one that other users can write to is refused.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Where to start: `checkpoint` (resume; now when there is none), `now`, or a time
    /// (RFC 3339, a date, or a duration before now such as 2h).
    #[arg(long, value_name = "WHEN")]
    start_from: Option<String>,
    /// Pause between polls once caught up [default: 1s].
    #[arg(long, value_name = "DURATION")]
    poll: Option<String>,
    /// Trailing window re-read to catch late events [default: 15m].
    #[arg(long, value_name = "DURATION")]
    overlap: Option<String>,
    /// How often the overlap is re-read [default: 1m].
    #[arg(long, value_name = "DURATION")]
    rescan_every: Option<String>,
    /// Also re-read this much history now and then, for events delayed beyond the overlap
    /// (off by default; costs requests and memory for remembered ids).
    #[arg(long, value_name = "DURATION")]
    wide_rescan: Option<String>,
    /// Period of the wide re-scan [default: 1h].
    #[arg(long, value_name = "DURATION")]
    wide_rescan_every: Option<String>,
    /// FilterLogEvents requests per second, all groups together [default: 2]. The account's
    /// quota (5–25 per second by region) is shared with every other reader.
    #[arg(long, value_name = "N")]
    requests_per_second: Option<f64>,
    /// Report a log group that receives no event for this long [default: 30m; 0 = never].
    #[arg(long, value_name = "DURATION")]
    silence: Option<String>,
    /// SNS messages per rolling minute; more findings waiting become one digest [default: 10].
    #[arg(long, value_name = "N")]
    max_messages_per_minute: Option<usize>,
    /// How late (in event time) an event may arrive and still count in a correlation window.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    allowed_lateness: Option<Millis>,
    /// Print findings on standard output instead of publishing them (no topic needed). A dry
    /// run keeps its own state in the `dry-run/` folder of --state-dir: it never moves the
    /// position of real runs, so a real run afterwards still publishes what it printed.
    #[arg(long)]
    dry_run: bool,
    /// Write findings here instead of publishing them: `-` for standard output, or a file
    /// (appended).
    #[arg(long, short, value_name = "WHERE")]
    output: Option<String>,
    /// Format of printed findings: one JSON finding per line, or one line of text each.
    #[arg(long, value_enum, default_value_t = PrintFormat::Jsonl)]
    format: PrintFormat,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<String>,
    /// One full cycle (forward reads and an overlap re-scan), publish, checkpoint, exit — for
    /// cron-style runs and tests.
    #[arg(long)]
    once: bool,
    /// Publish one message per incident (the default): every rule that matched an event in
    /// one alert, repeats of a rule for a principal folded into updates and a closing summary
    /// (docs/operations.md, "Incidents and alerts"). Open incidents are kept in the
    /// checkpoint. Preview the stream with `backtest --format alerts`.
    #[arg(long, conflicts_with = "per_finding")]
    alerts: bool,
    /// Publish one message per finding instead of alerts (no grouping into incidents; bursts
    /// still go out as digests). Also `alerts.enabled: false` in --config.
    #[arg(long)]
    per_finding: bool,
    #[command(flatten)]
    alert: super::AlertArgs,
    /// Configuration file (YAML): the `run:` section holds these settings; flags win.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log lines on standard error: `text` (time, level, message, fields) or `json` (one
    /// object per line, for log collectors) [default: text].
    #[arg(long, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    /// Debug log lines, the AWS SDK's own warnings, and AWS request ids in error messages.
    #[arg(long, short)]
    verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Sends the service's log events (`tracing`) to standard error, as text or JSON lines:
/// trailwatch's own from INFO (DEBUG with `verbose`), the AWS SDK's only when they are errors
/// (warnings too with `verbose`) — trailwatch reports every failed call itself, in one line.
fn init_logging(format: LogFormat, verbose: bool) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (ours, others) = if verbose {
        (LevelFilter::DEBUG, LevelFilter::WARN)
    } else {
        (LevelFilter::INFO, LevelFilter::ERROR)
    };
    let filter = Targets::new()
        .with_default(others)
        .with_target("trailwatch", ours);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    let registry = tracing_subscriber::registry().with(filter);
    // A second initialisation (tests calling `run` twice in one process) keeps the first.
    let _ = match format {
        LogFormat::Text => registry.with(layer).try_init(),
        LogFormat::Json => registry.with(layer.json().flatten_event(true)).try_init(),
    };
}

/// The folder of the state directory a dry run keeps its own state in.
pub const DRY_RUN_STATE: &str = "dry-run";

/// How long a start-up check of a log group or topic may wait for an answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// The SDK configuration, after the start-up checks of every AWS command: a region is set and
/// credentials can be loaded (bounded in time). A problem is one line saying what to do.
async fn aws_setup(region: Option<String>) -> Result<aws_config::SdkConfig> {
    let sdk = trailwatch::util::aws::sdk_config(region).await;
    trailwatch::util::aws::check_setup(&sdk).await?;
    Ok(sdk)
}

/// The region the SDK calls, for hints.
fn region_of(sdk: &aws_config::SdkConfig) -> Option<String> {
    sdk.region().map(|r| r.to_string())
}

/// A start-up check's result: an error retrying cannot fix stops the run; a transient one (no
/// answer, throttling) is logged and the run goes on (its reads and publishes retry).
fn check_result(
    what: &str,
    r: Result<Result<(), AwsError>, tokio::time::error::Elapsed>,
) -> Result<()> {
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if e.class == AwsErrorClass::Transient => {
            tracing::warn!(
                "{}",
                followed_by(&e, "not checked at start-up, going on (it is retried)")
            );
            Ok(())
        }
        Ok(Err(e)) => Err(e.into()),
        Err(_) => {
            tracing::warn!(
                "{what}: no answer within {} s at start-up, going on (it is retried)",
                CHECK_TIMEOUT.as_secs()
            );
            Ok(())
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PrintFormat {
    Jsonl,
    Text,
}

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a standard SNS topic for findings and print its ARN.
    Create {
        /// Topic name (letters, digits, hyphens, underscores; up to 256).
        name: String,
        /// Show the AWS request id in error messages.
        #[arg(long, short)]
        verbose: bool,
    },
}

#[derive(Args, Debug)]
pub struct SubscribeArgs {
    /// The topic findings are published to.
    #[arg(long, value_name = "ARN")]
    topic_arn: String,
    /// E-mail address to receive findings.
    #[arg(long, value_name = "ADDR")]
    email: String,
    /// Show the AWS request id in error messages.
    #[arg(long, short)]
    verbose: bool,
}

fn dur(v: Option<&str>, flag: &str, default: Millis) -> Result<Millis> {
    match v {
        None => Ok(default),
        Some(s) => parse_duration(s).map_err(|e| anyhow::anyhow!("{flag}: {e}")),
    }
}

fn default_state_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("trailwatch");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/state/trailwatch"),
        None => PathBuf::from("trailwatch-state"),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn run(args: RunArgs) -> Result<Outcome> {
    let config = crate::cli::config::AppConfig::load(args.config.as_deref())?;
    let file = config.as_ref().map(|c| c.run.clone()).unwrap_or_default();
    let log_format = match (args.log_format, file.log_format.as_deref()) {
        (Some(f), _) => f,
        (None, Some(s)) => <LogFormat as clap::ValueEnum>::from_str(s, true)
            .map_err(|_| anyhow::anyhow!("run.log_format: `{s}` is not text or json"))?,
        (None, None) => LogFormat::Text,
    };
    init_logging(log_format, args.verbose);
    show_request_ids(args.verbose);
    // One source (a flag wins over the file): the queue, the stream, or the log groups.
    let flagged =
        !args.log_groups.is_empty() || args.kinesis_stream.is_some() || args.sqs_queue.is_some();
    let (sqs_queue, kinesis_stream, groups) = if flagged {
        (
            args.sqs_queue.clone(),
            args.kinesis_stream.clone(),
            args.log_groups.clone(),
        )
    } else {
        (
            file.sqs_queue.clone(),
            file.kinesis_stream.clone(),
            file.log_groups.clone().unwrap_or_default(),
        )
    };
    let sources = usize::from(sqs_queue.is_some())
        + usize::from(kinesis_stream.is_some())
        + usize::from(!groups.is_empty());
    if sources == 0 {
        bail!(
            "nothing to read: give --log-group NAME (repeatable), --kinesis-stream NAME or \
             --sqs-queue URL, or `run.log_groups` / `run.kinesis_stream` / `run.sqs_queue` in \
             --config"
        );
    }
    if sources > 1 {
        bail!("--config: give one of `run.log_groups`, `run.kinesis_stream`, `run.sqs_queue`");
    }
    let source_name = match (&sqs_queue, &kinesis_stream) {
        (Some(q), _) => format!("reading S3 notifications from queue {q}"),
        (_, Some(s)) => format!("reading Kinesis stream {s}"),
        _ => format!("tailing {}", groups.join(", ")),
    };
    let topic = args.topic_arn.clone().or(file.topic_arn.clone());
    let print_to = match (&args.output, args.dry_run) {
        (Some(w), _) => Some(w.clone()),
        (None, true) => Some("-".to_string()),
        (None, false) => None,
    };
    if topic.is_none() && print_to.is_none() {
        bail!(
            "no SNS topic: give --topic-arn ARN (see `trailwatch topic create`), or --dry-run to print findings"
        );
    }
    let print_out: Option<Box<dyn std::io::Write + Send>> = match print_to.as_deref() {
        None => None,
        Some("-") => Some(Box::new(std::io::stdout())),
        Some(path) => Some(Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("--output {path}: cannot open for appending"))?,
        )),
    };
    let now = chrono::Utc::now();
    let start_from = match args.start_from.as_deref().or(file.start_from.as_deref()) {
        None | Some("checkpoint") => StartFrom::Checkpoint,
        Some("now") => StartFrom::Now,
        Some(t) => StartFrom::Time(
            parse_time_arg(t, now).map_err(|e| anyhow::anyhow!("--start-from: {e}"))?,
        ),
    };
    let pick = |flag: &Option<String>, from_file: &Option<String>| -> Option<String> {
        flag.clone().or(from_file.clone())
    };
    let mut engine = match &config {
        Some(c) => c.settings(),
        None => trailwatch::engine::Settings::default(),
    };
    if let Some(l) = args.allowed_lateness {
        engine.lateness = l;
    }
    let wide = match pick(&args.wide_rescan, &file.wide_rescan) {
        None => None,
        Some(w) => Some((
            dur(Some(&w), "--wide-rescan", 0)?,
            dur(
                pick(&args.wide_rescan_every, &file.wide_rescan_every).as_deref(),
                "--wide-rescan-every",
                3_600_000,
            )?,
        )),
    };
    let silence = dur(
        pick(&args.silence, &file.silence).as_deref(),
        "--silence",
        30 * 60_000,
    )?;
    let min_level = match (args.tuning.min_level, file.min_level.as_deref()) {
        (Some(l), _) => l,
        (None, Some(s)) => parse_level(s).map_err(|e| anyhow::anyhow!("run.min_level: {e}"))?,
        (None, None) => Level::Informational,
    };
    let state_root = args
        .state_dir
        .clone()
        .or(file.state_dir.clone())
        .unwrap_or_else(default_state_dir);
    // A dry run keeps its own state: it must not use up the events a real run publishes. It
    // reads the baselines learned for the real run.
    let (state_dir, baselines_dir) = if args.dry_run {
        trailwatch::util::state::create_dir(&state_root)?;
        (state_root.join(DRY_RUN_STATE), Some(state_root.clone()))
    } else {
        (state_root.clone(), None)
    };
    let mut opts = LiveOptions {
        tail: TailConfig {
            groups: groups.clone(),
            overlap: dur(
                pick(&args.overlap, &file.overlap).as_deref(),
                "--overlap",
                15 * 60_000,
            )?,
            rescan_every: dur(
                pick(&args.rescan_every, &file.rescan_every).as_deref(),
                "--rescan-every",
                60_000,
            )?,
            wide,
            requests_per_sec: args
                .requests_per_second
                .or(file.requests_per_second)
                .unwrap_or(2.0),
            ..TailConfig::default()
        },
        start_from,
        poll: Duration::from_millis(
            dur(pick(&args.poll, &file.poll).as_deref(), "--poll", 1_000)?.max(50) as u64,
        ),
        engine,
        min_level,
        alerts: {
            let enabled = config.as_ref().is_none_or(|c| c.alerts.enabled);
            let on = args.alerts || (!args.per_finding && enabled);
            on.then(|| args.alert.settings(config.as_ref()))
        },
        silence: (silence > 0).then_some(silence),
        checkpoint_every: 5_000,
        once: args.once,
        pacing: Pacing {
            per_minute: args
                .max_messages_per_minute
                .or(file.max_messages_per_minute)
                .unwrap_or(10)
                .max(1),
            ..Pacing::default()
        },
        // The region the SDK calls, once it is known.
        region: None,
        baselines_dir,
    };
    if opts.tail.requests_per_sec <= 0.0 || !opts.tail.requests_per_sec.is_finite() {
        bail!("--requests-per-second must be a positive number");
    }
    let source = RuleArgs {
        paths: args.rules.clone(),
        builtin: args.builtin,
        placeholders: None,
        logsource_service: Vec::new(),
    };
    let (rules, exceptions) = args.tuning.apply(source.load_for_run(args.skip_invalid)?)?;
    if rules.is_empty() {
        bail!("no rules loaded; nothing to evaluate");
    }
    let state = StateDir::open(&state_dir)?;
    let metrics_addr = args.metrics_addr.clone().or(file.metrics_addr.clone());
    let rt = runtime()?;
    rt.block_on(async move {
        let sdk = aws_setup(file.region.clone()).await?;
        opts.region = region_of(&sdk);
        let source = match (&sqs_queue, &kinesis_stream) {
            (Some(queue), _) => {
                let client = aws_sdk_sqs::Client::new(&sdk);
                let r = tokio::time::timeout(CHECK_TIMEOUT, check_queue(&client, queue)).await;
                check_result(&format!("queue {queue}"), r)?;
                let cfg = SqsConfig {
                    queue_url: queue.clone(),
                    // Long polling while idle; a once-run does not wait for more.
                    wait: if opts.once {
                        Duration::from_secs(1)
                    } else {
                        Duration::from_secs(10)
                    },
                    ..SqsConfig::default()
                };
                LiveSource::Sqs(client, s3_client(&sdk), cfg)
            }
            (None, Some(stream)) => {
                let client = aws_sdk_kinesis::Client::new(&sdk);
                let r = tokio::time::timeout(CHECK_TIMEOUT, check_stream(&client, stream)).await;
                check_result(&format!("stream {stream}"), r)?;
                let cfg = KinesisConfig {
                    stream: stream.clone(),
                    ..KinesisConfig::default()
                };
                LiveSource::Kinesis(client, cfg)
            }
            (None, None) => {
                let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk);
                let now = live::wall_ms();
                for g in &groups {
                    let r = tokio::time::timeout(CHECK_TIMEOUT, check_group(&logs, g, now)).await;
                    check_result(&format!("log group {g}"), r)?;
                }
                LiveSource::Logs(logs)
            }
        };
        let output = if let Some(out) = print_out {
            LiveOutput::Print {
                json: args.format == PrintFormat::Jsonl,
                out,
            }
        } else {
            LiveOutput::Sns(Sns {
                client: aws_sdk_sns::Client::new(&sdk),
                topic_arn: topic.clone().unwrap_or_default(),
            })
        };
        if let LiveOutput::Sns(sns) = &output {
            let r = tokio::time::timeout(CHECK_TIMEOUT, sns.check()).await;
            check_result(&format!("topic {}", sns.topic_arn), r)?;
        }
        let metrics = Arc::new(Metrics::default());
        if let Some(addr) = &metrics_addr {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--metrics-addr {addr}: cannot listen"))?;
            tokio::spawn(live::serve_metrics(listener, metrics.clone()));
        }
        let stop = Stop::new();
        {
            let stop = stop.clone();
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!("stopping: writing the checkpoint");
                stop.set();
            });
        }
        let counts = rules.counts();
        tracing::info!(
            log_groups = %groups.join(","),
            kinesis_stream = kinesis_stream.as_deref().unwrap_or(""),
            sqs_queue = sqs_queue.as_deref().unwrap_or(""),
            rules = counts.rules,
            correlations = counts.correlations,
            baseline_documents = counts.baselines,
            state_dir = %state_dir.display(),
            "{} ({counts}); state in {}; {}",
            source_name,
            state_dir.display(),
            match (&topic, &print_to) {
                (_, Some(w)) => format!("printing findings to {w} instead of publishing"),
                (Some(t), None) => format!("publishing to {t}"),
                (None, None) => String::new(),
            }
        );
        let summary = live::run(LiveRun {
            opts: &opts,
            rules: &rules,
            exceptions: &exceptions,
            source,
            output,
            state: &state,
            stop,
            metrics,
        })
        .await?;
        tracing::info!(
            events = summary.events,
            findings = summary.findings,
            polls = summary.cycles,
            outbox = summary.outbox_pending,
            "stopped: {}, {} in {}; {} in the outbox",
            count(summary.events, "event"),
            count(summary.findings, "finding"),
            count(summary.cycles, "poll"),
            wait_in_outbox(summary.outbox_pending)
        );
        Ok::<_, anyhow::Error>(Outcome::Ok)
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub fn topic(cmd: TopicCommand) -> Result<Outcome> {
    let TopicCommand::Create { name, verbose } = cmd;
    show_request_ids(verbose);
    if name.is_empty()
        || name.len() > 256
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        bail!(
            "topic name `{name}`: use 1–256 letters, digits, hyphens or underscores (a standard topic; FIFO topics cannot deliver e-mail)"
        );
    }
    runtime()?.block_on(async {
        let sdk = aws_setup(None).await?;
        let client = aws_sdk_sns::Client::new(&sdk);
        let out = client
            .create_topic()
            .name(&name)
            .send()
            .await
            .map_err(|e| {
                AwsError::from_sdk(&e, "sns:CreateTopic")
                    .on("topic", &name)
                    .in_region(region_of(&sdk).as_deref())
            })?;
        let arn = out.topic_arn().unwrap_or_default();
        let mut stdout = super::out::stdout();
        writeln!(stdout, "{arn}")?;
        stdout.flush()?;
        eprintln!(
            "Created (or found) topic {name}. Next: trailwatch subscribe --topic-arn {arn} --email you@example.com"
        );
        Ok(Outcome::Ok)
    })
}

fn plausible_email(a: &str) -> bool {
    let Some((local, domain)) = a.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !a.chars().any(|c| c.is_whitespace() || c.is_control())
}

pub fn subscribe(args: SubscribeArgs) -> Result<Outcome> {
    if !plausible_email(&args.email) {
        bail!("`{}` does not look like an e-mail address", args.email);
    }
    if !args.topic_arn.starts_with("arn:") || args.topic_arn.ends_with(".fifo") {
        bail!(
            "--topic-arn `{}`: give the ARN of a standard SNS topic (FIFO topics cannot deliver e-mail)",
            args.topic_arn
        );
    }
    show_request_ids(args.verbose);
    runtime()?.block_on(async {
        let sdk = aws_setup(None).await?;
        let client = aws_sdk_sns::Client::new(&sdk);
        let out = client
            .subscribe()
            .topic_arn(&args.topic_arn)
            .protocol("email")
            .endpoint(&args.email)
            .return_subscription_arn(true)
            .send()
            .await
            .map_err(|e| {
                AwsError::from_sdk(&e, "sns:Subscribe")
                    .on("topic", &args.topic_arn)
                    .in_region(region_of(&sdk).as_deref())
            })?;
        let arn = out.subscription_arn().unwrap_or("pending confirmation");
        let mut stdout = super::out::stdout();
        writeln!(stdout, "{arn}")?;
        stdout.flush()?;
        eprintln!(
            "AWS has sent a confirmation e-mail to {}. Open it and click \"Confirm subscription\": \
             until then no finding is delivered to that address.",
            args.email
        );
        Ok(Outcome::Ok)
    })
}
