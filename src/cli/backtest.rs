//! `trailwatch backtest`: replay archived CloudTrail through the rules.

use super::{Outcome, RuleSource};
use crate::backtest::{self, Summary};
use crate::engine::Engine;
use crate::finding::Finding;
use crate::rules::Level;
use crate::source::files::discover;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
#[command(
    after_help = "Inputs: S3 archive files ({\"Records\":[…]}, gzipped or not) and the AWSLogs/ \
directory layout, JSON arrays, single records, JSON lines, CloudWatch Logs subscription \
payloads (raw or base64+gzip), LookupEvents / CloudTrail Lake output, and `-` for standard \
input. The shape is detected from content. Files that are neither JSON nor gzip are skipped \
and counted; CloudTrail-Digest files are skipped.\n\nExamples:\n  trailwatch backtest fixtures/samples/\n  \
trailwatch backtest --rules my-rules/ --format jsonl s3-export/ > findings.jsonl\n  \
zcat file.json.gz | trailwatch backtest -"
)]
pub struct BacktestArgs {
    /// Files or directories of archived CloudTrail (`-` for standard input).
    #[arg(value_name = "PATH", required = true)]
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
    /// Output format: human-readable text, one JSON finding per line, or one JSON document
    /// `{"findings": [...], "summary": {...}}`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Write findings to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Exit with 1 if any finding is at or above this level.
    #[arg(long, value_name = "LEVEL", value_parser = parse_level)]
    fail_on: Option<Level>,
}

fn parse_level(s: &str) -> Result<Level, String> {
    Level::parse(s)
        .ok_or_else(|| format!("`{s}` is not a level: informational, low, medium, high, critical"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Jsonl,
    Json,
}

fn level_tag(l: Level) -> &'static str {
    match l {
        Level::Informational => "INFO",
        Level::Low => "LOW",
        Level::Medium => "MEDIUM",
        Level::High => "HIGH",
        Level::Critical => "CRITICAL",
    }
}

fn write_text(out: &mut dyn Write, f: &Finding) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<8} {}  {}",
        level_tag(f.rule.level),
        f.time.as_deref().unwrap_or("-"),
        f.rule.title
    )?;
    writeln!(out, "         {}", f.summary)?;
    writeln!(
        out,
        "         rule {} · event {} · finding {}",
        f.rule.id,
        f.event_ids.first().map(String::as_str).unwrap_or("-"),
        f.id
    )
}

fn write_summary_text(out: &mut dyn Write, s: &Summary, secs: f64) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "{} findings from {} records in {} files ({} skipped: not CloudTrail, {} digest files) in {:.2}s",
        s.findings, s.records, s.files_read, s.files_skipped, s.digest_files_skipped, secs
    )?;
    if !s.by_rule.is_empty() {
        let mut rows: Vec<_> = s.by_rule.iter().collect();
        rows.sort_by(|a, b| b.1.findings.cmp(&a.1.findings).then(a.0.cmp(b.0)));
        writeln!(
            out,
            "{:>8}  {:>10}  {:<13} rule",
            "findings", "principals", "level"
        )?;
        for (id, t) in rows {
            writeln!(
                out,
                "{:>8}  {:>10}  {:<13} {} ({id})",
                t.findings, t.principals, t.level, t.title
            )?;
        }
    }
    if s.malformed_records > 0 {
        writeln!(
            out,
            "{} malformed records (see warnings)",
            s.malformed_records
        )?;
    }
    Ok(())
}

pub fn run(args: BacktestArgs) -> Result<Outcome> {
    let source = RuleSource {
        paths: args.rules.clone(),
        builtin: args.builtin,
        placeholders: args.placeholders.clone(),
        logsource_service: args.logsource_service.clone(),
    };
    let rules = source.load_for_run(args.skip_invalid)?;
    if rules.is_empty() {
        anyhow::bail!("no rules loaded; nothing to evaluate");
    }
    let discovery = discover(&args.inputs);
    if discovery.inputs.is_empty() && discovery.errors.len() == args.inputs.len() {
        for (p, e) in &discovery.errors {
            eprintln!("error: {p}: {e}");
        }
        anyhow::bail!("none of the inputs could be read");
    }
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut engine = Engine::new(rules);
    let started = Instant::now();
    let mut kept: Vec<Finding> = Vec::new();
    let mut worst: Option<Level> = None;
    let mut write_err: Option<std::io::Error> = None;
    let summary = backtest::run(&discovery, &mut engine, |f| {
        worst = worst.max(Some(f.rule.level));
        let r = match args.format {
            Format::Text => write_text(&mut out, f),
            Format::Jsonl => serde_json::to_writer(&mut out, f)
                .map_err(std::io::Error::other)
                .and_then(|_| writeln!(out)),
            Format::Json => {
                kept.push(f.clone());
                Ok(())
            }
        };
        if let (Err(e), None) = (r, &write_err) {
            write_err = Some(e);
        }
    });
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
        Format::Text => write_summary_text(&mut out, &summary, secs)?,
        Format::Jsonl => write_summary_text(&mut std::io::stderr(), &summary, secs)?,
        Format::Json => {
            let doc = serde_json::json!({"findings": kept, "summary": summary});
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        }
    }
    out.flush().context("cannot write findings")?;
    if let (Some(threshold), Some(w)) = (args.fail_on, worst)
        && w >= threshold
    {
        eprintln!("a finding at level {w} reached --fail-on {threshold}");
        return Ok(Outcome::CheckFailed);
    }
    Ok(Outcome::Ok)
}
