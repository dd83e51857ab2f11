//! `trailwatch simulate`: labelled CloudTrail traffic for evaluating baselines, and the
//! scorer that compares anomaly findings with the labels.

use super::Outcome;
use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;
use trailwatch_sim::score::{self, parse_findings};
use trailwatch_sim::{Labels, Params};

#[derive(Subcommand, Debug)]
pub enum SimulateCommand {
    /// Write simulated CloudTrail traffic with labelled anomalies (an S3-layout archive and
    /// labels.json).
    #[command(after_help = "\
What is simulated: humans (office hours in their time zone, quiet nights, low weekends), \
automation (a steady rate day and night), daily jobs (a run of 100-400 writes in 10-20 minutes \
at the same hour every day; benign, never labelled), read traffic and a few refused calls a \
day. Injected from day 2 on and listed in labels.json: write bursts (>= 20 writes/min and >= \
10x the principal's rate in those hours on earlier days, 10-30 minutes, from an unusual IP and \
user agent) and error storms (>= 20 refused calls/min for 5-15 minutes).\n\n\
Output: DIR/AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/*.json.gz (one file per account, \
region and 5 minutes, as CloudTrail delivers to S3) and DIR/labels.json. The same parameters \
give the same bytes. An earlier simulation in DIR is replaced (kept with --reuse if its \
parameters are the same); any other non-empty DIR is refused.\n\n\
Examples:\n  trailwatch simulate generate --out target/sim\n  \
trailwatch simulate generate --out /tmp/small --days 3 --principals 20 --anomalies 2\n  \
trailwatch backtest target/sim/AWSLogs --format jsonl --output findings.jsonl")]
    Generate(GenerateArgs),
    /// Score anomaly findings (JSON lines from `backtest --format jsonl`) against labels.json.
    #[command(after_help = "\
Detections are findings with \"kind\": \"anomaly\" and details.phase \"start\"; other findings \
are ignored, End findings only paired with their Start. A Start is a true positive when its \
principal is the label's principal (the role ARN for assumed roles, the user ARN for IAM users) \
and its time is within [start, end + 10 min] of the label. Each label is detected once, by its \
earliest Start; latency = that Start's time - label start (event time).\n\n\
Targets: recall >= 0.95, precision >= 0.9, median latency <= 120 s, and no Start on a daily \
job's principal at the job's hour after its first 3 days.\n\n\
Exit status: 0 all targets met, 1 a target missed, 2 unreadable or malformed input (the line \
is named).\n\nExample:\n  trailwatch simulate score --labels target/sim/labels.json findings.jsonl")]
    Score(ScoreArgs),
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Directory to write into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Days of traffic, starting 2026-10-01T00:00:00Z.
    #[arg(long, default_value_t = 8)]
    days: u32,
    /// Principals: about 1 in 8 automation, max(3, n/40) daily jobs, a root per account, the
    /// rest humans.
    #[arg(long, default_value_t = 120)]
    principals: usize,
    /// Injected anomalies, bursts and error storms alternating, on distinct principals.
    #[arg(long, default_value_t = 12)]
    anomalies: usize,
    /// Seed of the random generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Multiplies the normal rates (volume); anomaly rates keep their floors.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Keep an earlier simulation in DIR if it was made with the same parameters.
    #[arg(long)]
    reuse: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// labels.json written by `simulate generate`.
    #[arg(long, value_name = "FILE")]
    labels: PathBuf,
    /// Findings as JSON lines (`trailwatch backtest --format jsonl`), `-` for standard input.
    #[arg(value_name = "FINDINGS")]
    findings: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
}

pub fn run(cmd: SimulateCommand) -> Result<Outcome> {
    match cmd {
        SimulateCommand::Generate(a) => generate(a),
        SimulateCommand::Score(a) => score_cmd(a),
    }
}

fn generate(a: GenerateArgs) -> Result<Outcome> {
    let params = Params {
        days: a.days,
        principals: a.principals,
        anomalies: a.anomalies,
        seed: a.seed,
        scale: a.scale,
    };
    let started = Instant::now();
    let s = trailwatch_sim::generate(&a.out, &params, a.reuse)?;
    if s.reused {
        eprintln!(
            "kept the earlier simulation in {} (same parameters; {} anomalies, {} daily jobs)",
            a.out.display(),
            s.anomalies,
            s.periodic_jobs
        );
    } else {
        eprintln!(
            "wrote {} records in {} files ({:.1} MB) to {}: {} principals, {} anomalies, {} daily jobs, in {:.1}s",
            s.records,
            s.files,
            s.bytes as f64 / 1e6,
            a.out.join("AWSLogs").display(),
            s.principals,
            s.anomalies,
            s.periodic_jobs,
            started.elapsed().as_secs_f64()
        );
        eprintln!("labels: {}", a.out.join("labels.json").display());
    }
    Ok(Outcome::Ok)
}

fn score_cmd(a: ScoreArgs) -> Result<Outcome> {
    let labels = Labels::read(&a.labels)?;
    let (name, text) = if a.findings.as_os_str() == "-" {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)
            .context("cannot read findings from standard input")?;
        ("<stdin>".to_string(), t)
    } else {
        let t = std::fs::read_to_string(&a.findings)
            .with_context(|| format!("cannot read findings {}", a.findings.display()))?;
        (a.findings.display().to_string(), t)
    };
    let findings = parse_findings(&name, &text)?;
    let report = score::score(&labels, &findings)?;
    match a.format {
        ReportFormat::Text => write!(super::out::stdout(), "{}", report.to_text())?,
        ReportFormat::Json => writeln!(
            super::out::stdout(),
            "{}",
            serde_json::to_string_pretty(&report)?
        )?,
    }
    Ok(if report.passed {
        Outcome::Ok
    } else {
        Outcome::CheckFailed
    })
}
