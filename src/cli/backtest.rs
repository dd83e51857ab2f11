//! `trailwatch backtest`: replay archived CloudTrail through the rules.

use super::{Outcome, RuleArgs, parse_level};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;
use trailwatch::backtest::{self, BacktestSummary, Emitted};
use trailwatch::finding::Finding;
use trailwatch::rules::Level;
use trailwatch::rules::yaml;
use trailwatch::source::files::{DeliveryRange, Selection, discover_in};
use trailwatch::source::s3::{self, S3Url};
use trailwatch::util::text::count;
use trailwatch::util::time::{Millis, parse_duration, parse_time_arg};

/// JSON lines are written in batches of about this many bytes: each finding's line is made
/// straight in the batch (no second copy into the writer's small buffer) and a backtest with
/// many findings makes few system calls.
const GATHERED_LINES: usize = 128 * 1024;

#[derive(Args, Debug)]
#[command(
    after_help = "Inputs: S3 archive files ({\"Records\":[…]}, gzipped or not) and the AWSLogs/ \
directory layout, JSON arrays, single records, JSON lines, CloudWatch Logs subscription \
payloads (raw or base64+gzip), LookupEvents / CloudTrail Lake output, and `-` for standard \
input. The shape is detected from content. Files that are neither JSON nor gzip, and JSON that \
is neither a record nor an envelope of records (an IAM policy), are skipped and counted \
(--strict fails on them); CloudTrail-Digest files are skipped.\n\nS3: `s3://bucket/prefix/` reads a \
trail's bucket in place (no local copy), mixed freely with local paths. The prefix may stop \
anywhere in the layout AWSLogs/[o-org/]<account>/CloudTrail/<region>/YYYY/MM/DD/ (the bucket, \
AWSLogs/, an account, a region, a day) or name one object; a prefix outside the layout is \
listed whole. Days outside --since/--until (with --delivery-margin), accounts and regions left \
out by --accounts/--regions, and CloudTrail-Digest/ are never listed; objects are read \
--s3-concurrency at a time, in the same order as the same files on disk, with the same \
findings (their origin is `s3://bucket/key: record N`). Region, credentials and endpoint come \
from the standard AWS chain (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL, …); a bucket in another \
region is followed there. It needs s3:ListBucket and s3:GetObject (and kms:Decrypt for \
SSE-KMS trails).\n\nExamples:\n  trailwatch backtest fixtures/samples/\n  \
trailwatch backtest --rules my-rules/ --format jsonl s3-export/ > findings.jsonl\n  \
trailwatch backtest --since 2024-05-01 --until 2024-05-08 --accounts 111122223333 s3://my-trail-bucket/AWSLogs/\n  \
zcat file.json.gz | trailwatch backtest -"
)]
pub struct BacktestArgs {
    /// Files or directories of archived CloudTrail, `s3://bucket/prefix/` addresses, `-` for
    /// standard input.
    #[arg(value_name = "PATH|S3URL", required = true)]
    inputs: Vec<PathBuf>,
    /// Rule file or directory (repeatable). Replaces the built-in rules unless --builtin.
    #[arg(long = "rules", value_name = "PATH")]
    rules: Vec<PathBuf>,
    /// Also use the built-in rules when --rules is given.
    #[arg(long)]
    builtin: bool,
    /// YAML file with values for `|expand` placeholders.
    #[arg(long, value_name = "FILE")]
    placeholders: Option<PathBuf>,
    /// Also accept rules whose logsource is `product: aws` with this service (repeatable).
    #[arg(long, value_name = "NAME")]
    logsource_service: Vec<String>,
    /// Run without rules that fail to load (they are reported as warnings) instead of
    /// refusing to start.
    #[arg(long)]
    skip_invalid: bool,
    /// Output format: human-readable text, one JSON finding per line, one JSON document
    /// `{"findings": [...], "summary": {...}}`, or `alerts`: one JSON line per alert live mode
    /// would send (new incident, update, close), in event-time order, and alerts per day in
    /// the summary — to see the noise of a rule set before going live.
    #[arg(long, value_enum, default_value_t = FindingFormat::Text)]
    format: FindingFormat,
    #[command(flatten)]
    alert: super::AlertArgs,
    /// Write findings to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Exit with 1 if any finding is at or above this level.
    #[arg(long, value_name = "LEVEL", value_parser = parse_level)]
    fail_on: Option<Level>,
    #[command(flatten)]
    tuning: super::Tuning,
    /// Only events at or after this time: RFC 3339, a date (2024-01-31), or a duration
    /// before now (7d, 12h).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only events before this time (same forms as --since); it must be later than --since.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// With --since/--until, files of the S3 layout whose delivery date (in the
    /// `YYYY/MM/DD/` directories and the file name) cannot hold events of the range are not
    /// read at all. This is how long after an event CloudTrail may deliver it (its files are
    /// usually delivered within minutes); files without a date in their name are always read.
    #[arg(long, value_name = "DURATION", default_value = "1d", value_parser = parse_duration)]
    delivery_margin: Millis,
    /// Only these accounts (12-digit ids, comma-separated) of the S3 layout
    /// `AWSLogs/[o-org/]<account>/`: other accounts are not listed in S3, nor walked on disk
    /// (where the path shows the account).
    #[arg(long, value_name = "ID,...", value_delimiter = ',', value_parser = parse_account)]
    accounts: Vec<String>,
    /// Only these regions (comma-separated, e.g. us-east-1,eu-west-1) of the S3 layout
    /// `…/CloudTrail/<region>/`, in S3 and on disk alike.
    #[arg(long, value_name = "REGION,...", value_delimiter = ',', value_parser = parse_region)]
    regions: Vec<String>,
    /// S3 objects downloaded at once for `s3://` inputs; at most 64 MiB are read ahead of the
    /// workers, whatever the size of the archive.
    #[arg(long, value_name = "N", default_value_t = s3::DEFAULT_CONCURRENCY, value_parser = parse_concurrency)]
    s3_concurrency: usize,
    /// YAML map of rule id → expected number of findings; rules not listed are expected to
    /// produce none. Exit 1 with a diff on any mismatch (for rule regression tests in CI).
    /// An id that no loaded rule has is an error (exit 2), as with --disable.
    #[arg(long, value_name = "FILE")]
    expect: Option<PathBuf>,
    /// Treat any input problem as an error: an unreadable file, corrupt gzip, a malformed
    /// record, or an input skipped as not CloudTrail (a README, a JSON file with no records).
    /// Each is named on stderr, then the run exits 2.
    #[arg(long)]
    strict: bool,
    /// Threads for decoding and matching [default: available cores]; with 1, the whole run
    /// (correlations, baselines and output included) stays on one thread. The output does
    /// not depend on it.
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// How far back in event time results wait for older records before being released in
    /// order; records older than that are processed at once and counted as late (the summary
    /// says how many: raise it when they are many). What waits is held in memory.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    reorder_window: Millis,
    /// How late (in event time) an event may arrive and still count in a correlation window
    /// [default: 15m, or the configuration file's].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    allowed_lateness: Option<Millis>,
    /// Configuration file (YAML): default incident key (suppress), correlation and alert settings. See
    /// docs/rules.md.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Start the baselines from what `trailwatch baseline build` learned into DIR (a
    /// `baseline` document must be loaded; the built-in rules include one).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

/// The progress bar: inputs (`files`, `objects` or both) done of all, events and bytes read,
/// rate, time left. (`{per_sec}` would read `14,618.3264/s`: the rate is written here, whole
/// inputs a second.)
fn progress_style(noun: &'static str) -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(&format!(
        "{{bar:30}} {{pos}}/{{len}} {noun}  {{msg}}  {{rate}}  ETA {{eta}}"
    ))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .with_key(
        "rate",
        move |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0} {noun}/s", indicatif::HumanFloatCount(s.per_sec()));
        },
    )
}

/// `--accounts`: a 12-digit AWS account id.
fn parse_account(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not an AWS account id (12 digits, e.g. 111122223333)"
        ))
    }
}

/// `--regions`: a region name such as `us-east-1` or `us-gov-west-1`.
fn parse_region(s: &str) -> Result<String, String> {
    let s = s.trim();
    let parts: Vec<&str> = s.split('-').collect();
    let ok = parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not an AWS region (e.g. us-east-1, eu-west-1)"
        ))
    }
}

/// `--s3-concurrency`: 1 to 256.
fn parse_concurrency(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=256).contains(&n) => Ok(n),
        _ => Err(format!("`{s}` is not a number of requests from 1 to 256")),
    }
}

/// `--since` and `--until` in milliseconds; a range that holds no time is a usage error
/// (rather than a run that silently reports nothing).
fn time_range(
    since: Option<&str>,
    until: Option<&str>,
) -> Result<(Option<Millis>, Option<Millis>)> {
    let now = chrono::Utc::now();
    let parse = |v: Option<&str>, flag: &str| -> Result<Option<Millis>> {
        v.map(|t| parse_time_arg(t, now).map_err(|e| anyhow::anyhow!("{flag}: {e}")))
            .transpose()
    };
    let (s, u) = (parse(since, "--since")?, parse(until, "--until")?);
    if let (Some(from), Some(to)) = (s, u)
        && from >= to
    {
        use trailwatch::util::time::format_millis;
        anyhow::bail!(
            "--since {} ({}) is not before --until {} ({}): the range holds no event; --since \
             is the start (inclusive), --until the end (exclusive)",
            since.unwrap_or_default(),
            format_millis(from),
            until.unwrap_or_default(),
            format_millis(to)
        );
    }
    Ok((s, u))
}

/// Reads an `--expect` file: rule id → count.
fn read_expect(path: &std::path::Path) -> Result<BTreeMap<String, u64>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read expectations file {}", path.display()))?;
    let label = path.display();
    let docs = yaml::parse_documents(&text)
        .map_err(|e| anyhow::anyhow!("{label}:{}:{}: {}", e.pos.line, e.pos.col, e.message))?;
    let mut out = BTreeMap::new();
    let Some(doc) = docs.first() else {
        return Ok(out);
    };
    let map = doc.root.as_map().ok_or_else(|| {
        anyhow::anyhow!("{label}: expected a mapping of rule id to number of findings")
    })?;
    for (k, v) in map {
        let id = k.scalar_text().unwrap_or_default().to_string();
        let n = v
            .scalar_text()
            .and_then(|t| t.parse::<u64>().ok())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{label}:{}:{}: the expected count for `{id}` must be a whole number",
                    v.pos.line,
                    v.pos.col
                )
            })?;
        out.insert(id, n);
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FindingFormat {
    Text,
    Jsonl,
    Json,
    Alerts,
}

fn write_summary_text(out: &mut dyn Write, s: &BacktestSummary, secs: f64) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "{} from {} in {}, {} to {}, in {:.2}s",
        count(s.findings, "finding"),
        count(s.records, "event"),
        count(s.files_read as u64, "file"),
        s.first_event_time.as_deref().unwrap_or("-"),
        s.last_event_time.as_deref().unwrap_or("-"),
        secs
    )?;
    if let (Some(a), Some(per_day)) = (&s.alerts, s.alerts_per_day()) {
        writeln!(
            out,
            "{} ({} new, {}, {}) for {}: {per_day:.1} alerts a day; {} below the alert level",
            count(a.alerts, "alert"),
            a.new,
            count(a.updates, "update"),
            count(a.closes, "closing summary"),
            count(a.incidents, "incident"),
            count(a.below_min_level, "incident")
        )?;
    }
    let mut notes = Vec::new();
    // `n noun(s) rest`, when n is not 0.
    fn note(notes: &mut Vec<String>, n: u64, noun: &str, rest: &str) {
        if n > 0 {
            notes.push(format!("{} {rest}", count(n, noun)));
        }
    }
    note(
        &mut notes,
        s.files_skipped as u64,
        "file",
        "skipped (not CloudTrail)",
    );
    note(
        &mut notes,
        s.digest_files_skipped as u64,
        "digest file",
        "skipped",
    );
    note(
        &mut notes,
        s.days_pruned_by_date as u64,
        "day directory",
        "not read (delivery date outside --since/--until)",
    );
    note(
        &mut notes,
        s.files_pruned_by_date as u64,
        "file",
        "not read (delivery date outside --since/--until)",
    );
    if s.objects_listed > 0 {
        notes.push(format!(
            "S3: {} listed, {} read{}; {} read from all inputs",
            count(s.objects_listed as u64, "object"),
            s.objects_read,
            if s.objects_pruned_by_date > 0 {
                format!(
                    ", {} not read (delivery date outside --since/--until)",
                    s.objects_pruned_by_date
                )
            } else {
                String::new()
            },
            indicatif::HumanBytes(s.bytes_read)
        ));
    }
    note(
        &mut notes,
        s.control_messages_skipped as u64,
        "CloudWatch Logs control message",
        "skipped",
    );
    note(
        &mut notes,
        s.records_out_of_range,
        "event",
        "outside --since/--until",
    );
    note(
        &mut notes,
        s.records_time_from_fallback,
        "event",
        "without eventTime timed by @timestamp",
    );
    note(
        &mut notes,
        s.records_without_time,
        "event",
        "without a time, neither eventTime nor @timestamp (processed in arrival order)",
    );
    note(
        &mut notes,
        s.late_records,
        "event",
        "arrived after newer events beyond the re-order window and processed out of order",
    );
    if s.late_hits > 0 {
        notes.push(format!(
            "{} arrived later than the allowed lateness, not counted in correlation windows (e.g. {})",
            count(s.late_hits, "event"),
            s.late_hit_samples.join(", ")
        ));
    }
    note(
        &mut notes,
        s.evicted_keys,
        "correlation group key",
        "evicted at the key cap",
    );
    if let Some(b) = &s.baselines {
        notes.push(format!(
            "baselines: {} series tracked, {}, {} started, {} ended{}",
            b.series,
            count(b.stats.new_principals, "new principal"),
            count(b.stats.starts, "anomaly"),
            b.stats.ends,
            if b.stats.evicted_series > 0 {
                format!(", {} evicted at the cap", b.stats.evicted_series)
            } else {
                String::new()
            }
        ));
        if b.stats.attribution_drops > 0 {
            notes.push(format!(
                "baselines: {} dropped at the attribution buffer's cap (some Starts attribute \
                 only part of their window)",
                count(b.stats.attribution_drops, "recent record")
            ));
        }
    }
    note(
        &mut notes,
        s.excepted_findings,
        "match",
        "dropped by --exceptions",
    );
    note(
        &mut notes,
        s.duplicate_records,
        "record",
        "delivered twice, read once",
    );
    note(
        &mut notes,
        s.duplicate_findings,
        "duplicate finding",
        "reported once",
    );
    if s.malformed_records > 0 || !s.issues.is_empty() {
        notes.push(format!(
            "{}, {} (listed on stderr)",
            count(s.issues.len() as u64 + s.issues_not_shown, "input problem"),
            count(s.malformed_records, "malformed record")
        ));
    }
    if !notes.is_empty() {
        writeln!(out, "{}", notes.join("; "))?;
    }
    if !s.by_rule.is_empty() {
        let mut rows: Vec<_> = s.by_rule.iter().collect();
        rows.sort_by(|a, b| b.1.findings.cmp(&a.1.findings).then(a.0.cmp(b.0)));
        writeln!(
            out,
            "\n{:>8}  {:>10}  {:<8}  rule",
            "findings", "principals", "level"
        )?;
        for (id, t) in rows {
            let level = Level::parse(&t.level).map_or(t.level.as_str(), |l| l.tag());
            writeln!(
                out,
                "{:>8}  {:>10}  {:<8}  {} ({id})",
                t.findings, t.principals, level, t.title
            )?;
        }
        writeln!(out, "\ntop principals:")?;
        for (p, n) in s.top_principals.iter().take(5) {
            writeln!(out, "{n:>8}  {}", trailwatch::sink::message::clean(p, 400))?;
        }
    }
    Ok(())
}

pub fn run(args: BacktestArgs) -> Result<Outcome> {
    let (since, until) = time_range(args.since.as_deref(), args.until.as_deref())?;
    let source = RuleArgs {
        paths: args.rules.clone(),
        builtin: args.builtin,
        placeholders: args.placeholders.clone(),
        logsource_service: args.logsource_service.clone(),
    };
    let loaded = source.load_for_run(args.skip_invalid)?;
    // Ids of every loaded rule (disabled ones included): what --expect may name.
    let known = loaded.ids();
    let (rules, exceptions) = args.tuning.apply(loaded)?;
    if rules.is_empty() {
        anyhow::bail!("no rules loaded; nothing to evaluate");
    }
    let expected = match &args.expect {
        None => None,
        Some(p) => {
            let expected = read_expect(p)?;
            let unknown: Vec<String> = expected
                .keys()
                .filter(|id| !known.contains(*id))
                .cloned()
                .collect();
            if !unknown.is_empty() {
                anyhow::bail!(
                    "--expect {}: {} (see `trailwatch rules list`)",
                    p.display(),
                    trailwatch::rules::UnknownRuleIds(unknown)
                );
            }
            Some(expected)
        }
    };
    let sel = Selection {
        range: (since.is_some() || until.is_some()).then_some(DeliveryRange {
            since,
            until,
            margin: args.delivery_margin,
        }),
        accounts: args.accounts.clone(),
        regions: args.regions.clone(),
    };
    // `s3://` addresses are listed in S3; everything else is a local path.
    let mut urls = Vec::new();
    let mut paths = Vec::new();
    for input in &args.inputs {
        match input.to_str().and_then(S3Url::parse) {
            Some(url) => urls.push(url?),
            None => paths.push(input.clone()),
        }
    }
    let mut discovery = discover_in(&paths, &sel);
    if urls.is_empty() && discovery.inputs.is_empty() && discovery.errors.len() == paths.len() {
        for (p, e) in &discovery.errors {
            eprintln!("error: {p}: {e}");
        }
        anyhow::bail!("none of the inputs could be read");
    }
    // A listing that fails (no such bucket, access denied) stops the run: nothing of that
    // address could be read.
    let reader = if urls.is_empty() {
        None
    } else {
        let reader = s3::Reader::connect(args.s3_concurrency)?;
        for url in &urls {
            discovery.merge(reader.discover(url, &sel)?);
        }
        Some(std::sync::Arc::new(reader))
    };
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(super::out::stdout())),
    };
    let app_config = crate::cli::config::AppConfig::load(args.config.as_deref())?;
    let opts = backtest::BacktestOptions {
        since,
        until,
        threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1),
        reorder_window: args.reorder_window,
        engine: {
            let mut settings = app_config
                .as_ref()
                .map_or_else(trailwatch::engine::Settings::default, |c| c.settings());
            if let Some(l) = args.allowed_lateness {
                settings.lateness = l;
            }
            settings
        },
        baseline_state: super::baseline::state_for_run(args.state_dir.as_deref(), &rules)?,
        keep_baseline_state: false,
        // The text summary and `--format alerts` say what a person would have received.
        alerts: matches!(args.format, FindingFormat::Alerts | FindingFormat::Text)
            .then(|| args.alert.settings(app_config.as_ref())),
        s3: reader,
    };
    let bar = if std::io::stderr().is_terminal() && !discovery.inputs.is_empty() {
        let objects = discovery
            .inputs
            .iter()
            .filter(|i| matches!(i, trailwatch::source::files::Input::Object { .. }))
            .count();
        let noun = match objects {
            0 => "files",
            n if n == discovery.inputs.len() => "objects",
            _ => "inputs",
        };
        let b = indicatif::ProgressBar::new(discovery.inputs.len() as u64);
        b.set_style(progress_style(noun));
        Some(b)
    } else {
        None
    };
    // Findings printed to the terminal the bar is drawn on go through the bar: it is cleared,
    // the line written (and flushed), then the bar drawn again below it. Otherwise the two
    // interleave (a finding glued to the end of a bar line, bar fragments between lines).
    let via_bar = bar
        .as_ref()
        .filter(|_| args.output.is_none() && std::io::stdout().is_terminal());
    let started = Instant::now();
    let mut kept: Vec<Finding> = Vec::new();
    let mut worst: Option<Level> = None;
    let mut write_err: Option<std::io::Error> = None;
    // JSON lines waiting to be written (see `GATHERED_LINES`), unless a person is watching.
    let gather = via_bar.is_none() && (args.output.is_some() || !std::io::stdout().is_terminal());
    let mut line: Vec<u8> = Vec::with_capacity(if gather { GATHERED_LINES * 2 } else { 0 });
    let summary = backtest::run(
        &discovery,
        &rules,
        &exceptions,
        &opts,
        |e| {
            let mut write = |mut out: &mut Box<dyn Write>| match (e, args.format) {
                (Emitted::Alert(a), FindingFormat::Alerts) => serde_json::to_writer(&mut out, a)
                    .map_err(std::io::Error::other)
                    .and_then(|_| writeln!(out)),
                // The text summary counts alerts; only `--format alerts` prints them.
                (Emitted::Alert(_), _) => Ok(()),
                (Emitted::Finding(f), format) => {
                    worst = worst.max(Some(f.rule.level));
                    match format {
                        FindingFormat::Text => trailwatch::sink::text::finding_line(&mut out, f),
                        // Lines are gathered into large writes (written once, not copied
                        // again into a small buffer); one at a time to a terminal.
                        FindingFormat::Jsonl => {
                            f.write_json(&mut line).map_err(std::io::Error::other)?;
                            line.push(b'\n');
                            if !gather || line.len() >= GATHERED_LINES {
                                // Written or failed, a batch is gone: after an error (the
                                // first is reported) nothing is retried or piled up.
                                let written = out.write_all(&line);
                                line.clear();
                                written?;
                            }
                            Ok(())
                        }
                        FindingFormat::Json => {
                            kept.push(f.clone());
                            Ok(())
                        }
                        FindingFormat::Alerts => Ok(()),
                    }
                }
            };
            let r = match via_bar {
                Some(b) => b.suspend(|| write(&mut out).and_then(|_| out.flush())),
                None => write(&mut out),
            };
            if let (Err(e), None) = (r, &write_err) {
                write_err = Some(e);
            }
        },
        |p| {
            if let Some(b) = &bar {
                b.set_position(p.inputs as u64);
                b.set_message(format!(
                    "{}, {}",
                    count(p.records, "event"),
                    indicatif::HumanBytes(p.bytes)
                ));
            }
        },
    );
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if write_err.is_none()
        && let Err(e) = out.write_all(&line)
    {
        write_err = Some(e);
    }
    if let Some(e) = write_err {
        return Err(e).context("cannot write findings");
    }
    let secs = started.elapsed().as_secs_f64();
    for i in &summary.issues {
        eprintln!("warning: {}: {}", i.place, i.message);
    }
    if summary.issues_not_shown > 0 {
        eprintln!("warning: … and {} more problems", summary.issues_not_shown);
    }
    match args.format {
        FindingFormat::Text => {
            write_summary_text(&mut out, &summary, secs).context("cannot write findings")?
        }
        FindingFormat::Jsonl | FindingFormat::Alerts => {
            write_summary_text(&mut std::io::stderr(), &summary, secs)?
        }
        FindingFormat::Json => {
            let doc = serde_json::json!({"findings": kept, "summary": summary});
            serde_json::to_writer_pretty(&mut out, &doc)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out))
                .context("cannot write findings")?;
        }
    }
    out.flush().context("cannot write findings")?;
    if args.strict && summary.has_input_problems() {
        for skipped in &summary.skipped {
            eprintln!("error: {}: {} (skipped)", skipped.place, skipped.message);
        }
        let problems = summary.issues.len() as u64 + summary.issues_not_shown;
        let parts: Vec<String> = [
            (summary.files_skipped as u64, "input", " skipped"),
            (problems, "input problem", ""),
            (summary.malformed_records, "malformed record", ""),
        ]
        .into_iter()
        .filter(|(n, _, _)| *n > 0)
        .map(|(n, noun, rest)| format!("{}{rest}", count(n, noun)))
        .collect();
        eprintln!(
            "error: --strict: {} (listed above); a strict run reads every input",
            parts.join(", ")
        );
        return Ok(Outcome::Invalid);
    }
    let mut outcome = Outcome::Ok;
    if let Some(expected) = expected {
        let diff = expect_diff(&expected, &summary);
        if diff.is_empty() {
            eprintln!(
                "--expect: all {} produced the expected number of findings",
                count(rules.len() as u64, "rule")
            );
        } else {
            eprintln!("--expect: {}", count(diff.len() as u64, "mismatch"));
            for line in diff {
                eprintln!("  {line}");
            }
            outcome = Outcome::CheckFailed;
        }
    }
    if let (Some(threshold), Some(w)) = (args.fail_on, worst)
        && w >= threshold
    {
        eprintln!("a finding at level {w} reached --fail-on {threshold}");
        outcome = Outcome::CheckFailed;
    }
    Ok(outcome)
}

/// Lines describing every difference between expected and actual findings per rule.
fn expect_diff(expected: &BTreeMap<String, u64>, s: &BacktestSummary) -> Vec<String> {
    let mut out = Vec::new();
    for (id, want) in expected {
        let got = s.by_rule.get(id).map_or(0, |t| t.findings);
        if got != *want {
            let title = s
                .by_rule
                .get(id)
                .map(|t| format!(" ({})", t.title))
                .unwrap_or_default();
            out.push(format!("{id}{title}: expected {want}, got {got}"));
        }
    }
    for (id, t) in &s.by_rule {
        if !expected.contains_key(id) {
            out.push(format!(
                "{id} ({}): expected 0 (not listed), got {}",
                t.title, t.findings
            ));
        }
    }
    out
}
