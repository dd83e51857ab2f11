//! `trailwatch baseline`: learn per-principal baselines from archived CloudTrail (warm
//! start) and show what was learned.

use super::{Outcome, RuleArgs};
use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use trailwatch::backtest;
use trailwatch::baseline::{Metric, Snapshot, store};
use trailwatch::rules::RuleSet;
use trailwatch::source::files::discover;
use trailwatch::util::time::{Millis, format_millis, parse_time_arg};

#[derive(Subcommand, Debug)]
pub enum BaselineCommand {
    /// Learn baselines from archived CloudTrail into a state directory.
    #[command(
        after_help = "The `baseline` document of the rules (built-in: rules/baseline.yml, \
or the one in --rules) sets what is learned. Archives are read like `trailwatch backtest` \
reads them, in event-time order. An existing state in DIR is continued unless --fresh; the \
file is replaced atomically.\n\nExamples:\n  trailwatch baseline build s3-export/2024/05/ \
--state-dir /var/lib/trailwatch\n  trailwatch backtest --state-dir /var/lib/trailwatch \
s3-export/2024/06/"
    )]
    Build(BuildArgs),
    /// Print the learned baselines: one line per series with a sparkline of the hourly
    /// profile (00-23 UTC).
    #[command(
        after_help = "Examples:\n  trailwatch baseline show --state-dir /var/lib/trailwatch\n  \
trailwatch baseline show --state-dir /var/lib/trailwatch --principal deploy-bot --plot deploy-bot.svg"
    )]
    Show(ShowArgs),
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Files or directories of archived CloudTrail (`-` for standard input).
    #[arg(value_name = "ARCHIVE", required = true)]
    inputs: Vec<PathBuf>,
    /// Directory to write the learned state to (created owner-only, 0700, if missing; one
    /// that other users can write to is refused).
    #[arg(long, value_name = "DIR")]
    state_dir: PathBuf,
    /// Rule file or directory holding the `baseline` document (repeatable); without it the
    /// built-in document is used.
    #[arg(long = "rules", value_name = "PATH")]
    rules: Vec<PathBuf>,
    /// Start from nothing even if DIR already holds baselines.
    #[arg(long)]
    fresh: bool,
    /// Only events at or after this time (RFC 3339, a date, or a duration before now).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only events before this time.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Worker threads for decoding [default: available cores].
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Directory written by `trailwatch baseline build`.
    #[arg(long, value_name = "DIR")]
    state_dir: PathBuf,
    /// Only series whose key contains this text (an ARN, a role name, an account).
    #[arg(long, value_name = "TEXT")]
    principal: Option<String>,
    /// Also draw the hourly profiles of the shown series as an SVG chart into FILE.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
    format: ShowFormat,
}

pub fn run(cmd: BaselineCommand) -> Result<Outcome> {
    match cmd {
        BaselineCommand::Build(a) => build(a),
        BaselineCommand::Show(a) => show(a),
    }
}

/// The snapshot `--state-dir` names, for a run whose rules must carry a `baseline` document.
pub fn state_for_run(dir: Option<&Path>, rules: &RuleSet) -> Result<Option<Snapshot>> {
    let Some(dir) = dir else {
        return Ok(None);
    };
    if rules.baseline().is_none() {
        anyhow::bail!(
            "--state-dir {}: no `baseline` document is loaded, so baselines do not run (the built-in rules include one; with --rules, add a baseline document or --builtin)",
            dir.display()
        );
    }
    match store::load(dir)? {
        Some(s) => Ok(Some(s)),
        None => anyhow::bail!(
            "--state-dir {}: no learned baselines there; build them with `trailwatch baseline build <ARCHIVE>... --state-dir {}`",
            dir.display(),
            dir.display()
        ),
    }
}

fn build(a: BuildArgs) -> Result<Outcome> {
    let source = RuleArgs {
        paths: a.rules.clone(),
        builtin: false,
        placeholders: None,
        logsource_service: Vec::new(),
    };
    let report = source.load()?;
    let errors: Vec<_> = report.errors().collect();
    if !errors.is_empty() {
        for d in &errors {
            eprint!("{}", report.render(d));
        }
        anyhow::bail!(
            "{} in the rules; see `trailwatch rules validate`",
            trailwatch::util::text::count(errors.len() as u64, "problem")
        );
    }
    let Some(doc) = report.baseline else {
        anyhow::bail!(
            "no `baseline` document in the rules; add one (see docs/baselines.md) or leave out --rules to use the built-in one"
        );
    };
    let rules = RuleSet::new(Vec::new()).with_baseline(Some(doc));
    let previous = if a.fresh {
        None
    } else {
        store::load(&a.state_dir)?
    };
    let discovery = discover(&a.inputs);
    if discovery.inputs.is_empty() {
        for (p, e) in &discovery.errors {
            eprintln!("error: {p}: {e}");
        }
        anyhow::bail!("none of the inputs could be read");
    }
    let now = chrono::Utc::now();
    let time_arg = |v: &Option<String>, flag: &str| -> Result<Option<Millis>> {
        v.as_deref()
            .map(|t| parse_time_arg(t, now).map_err(|e| anyhow::anyhow!("{flag}: {e}")))
            .transpose()
    };
    let continued = previous.is_some();
    // Continuing: only events after what the state has seen, so re-reading an archive does
    // not count it twice.
    let resume = previous
        .as_ref()
        .and_then(|p| p.last_minute)
        .map(|m| (m + 1) * 60_000);
    if let Some(r) = resume {
        eprintln!(
            "continuing the baselines in {}: events before {} are skipped (--fresh to start over)",
            a.state_dir.display(),
            format_millis(r)
        );
    }
    let since = time_arg(&a.since, "--since")?;
    let opts = backtest::BacktestOptions {
        since: match (since, resume) {
            (Some(s), Some(r)) => Some(s.max(r)),
            (s, r) => s.or(r),
        },
        until: time_arg(&a.until, "--until")?,
        threads: a
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1),
        baseline_state: previous,
        keep_baseline_state: true,
        ..backtest::BacktestOptions::default()
    };
    let exceptions = trailwatch::rules::exceptions::Exceptions::default();
    let summary = backtest::run(&discovery, &rules, &exceptions, &opts, |_| {}, |_| {});
    for i in &summary.issues {
        eprintln!("warning: {}: {}", i.place, i.message);
    }
    let Some(snap) = summary.baseline_state else {
        anyhow::bail!("the baselines did not run");
    };
    let path = store::save(&a.state_dir, &snap)?;
    let stats = summary.baselines.unwrap_or_default();
    eprintln!(
        "{} {} series from {} events ({} to {}); {} anomalies would have started; wrote {}",
        if continued { "continued" } else { "learned" },
        stats.series,
        summary.records,
        summary.first_event_time.as_deref().unwrap_or("-"),
        summary.last_event_time.as_deref().unwrap_or("-"),
        stats.stats.starts,
        path.display()
    );
    Ok(Outcome::Ok)
}

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// 24 characters, one per hour of day (UTC); blank where the hour was never seen.
pub fn sparkline(mean: &[f32; 24], days: &[u8; 24]) -> String {
    let max = mean.iter().copied().fold(0.0f32, f32::max);
    (0..24)
        .map(|h| {
            if days[h] == 0 {
                ' '
            } else if max <= 0.0 {
                BARS[0]
            } else {
                let i = ((mean[h] / max) * 7.0).round().clamp(0.0, 7.0) as usize;
                BARS[i]
            }
        })
        .collect()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An SVG with one bar chart per series: mean events per minute by hour of day (UTC).
pub fn svg(series: &[(Metric, String, trailwatch::baseline::model::Series)]) -> String {
    let (w, panel, left) = (24 * 22 + 80, 150, 60);
    let height = panel * series.len().max(1) + 20;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (i, (m, key, s)) in series.iter().enumerate() {
        let top = i * panel + 20;
        let max = s.mean.iter().copied().fold(0.0f32, f32::max).max(1e-6);
        out.push_str(&format!(
            "<text x=\"{left}\" y=\"{}\">{} {} ({} days; max {:.2}/min)</text>\n",
            top - 4,
            m.as_str(),
            xml_escape(key),
            s.days_of_history(),
            max
        ));
        let base = top + 100;
        for h in 0..24 {
            let v = if s.days[h] == 0 { 0.0 } else { s.mean[h] / max };
            let bh = (v * 100.0).round() as usize;
            out.push_str(&format!(
                "<rect x=\"{}\" y=\"{}\" width=\"18\" height=\"{bh}\" fill=\"#4682b4\"><title>{h:02}:00 {:.3}/min</title></rect>\n",
                left + h * 22,
                base - bh,
                s.mean[h]
            ));
            if h % 3 == 0 {
                out.push_str(&format!(
                    "<text x=\"{}\" y=\"{}\">{h:02}</text>\n",
                    left + h * 22,
                    base + 12
                ));
            }
        }
    }
    out.push_str("</svg>\n");
    out
}

fn show(a: ShowArgs) -> Result<Outcome> {
    let Some(snap) = store::load(&a.state_dir)? else {
        anyhow::bail!(
            "no learned baselines in {}; build them with `trailwatch baseline build <ARCHIVE>... --state-dir {}`",
            a.state_dir.display(),
            a.state_dir.display()
        );
    };
    let shown: Vec<_> = snap
        .series
        .into_iter()
        .filter(|(_, k, _)| a.principal.as_deref().is_none_or(|p| k.contains(p)))
        .collect();
    if shown.is_empty() && a.principal.is_some() {
        anyhow::bail!(
            "no series matches --principal {}",
            a.principal.as_deref().unwrap_or_default()
        );
    }
    let mut out = super::out::stdout();
    match a.format {
        ShowFormat::Json => {
            let items: Vec<serde_json::Value> = shown
                .iter()
                .map(|(m, k, s)| {
                    serde_json::json!({
                        "metric": m.as_str(),
                        "key": k,
                        "days_of_history": s.days_of_history(),
                        "mean_per_minute": s.daily_mean(),
                        "hourly_mean_per_minute": s.mean,
                        "weekly_mean_per_minute": s.week_profile(),
                        "first_seen": format_millis(s.first_minute * 60_000),
                        "last_seen": format_millis(s.last_minute * 60_000),
                        "anomalous": s.active.is_some(),
                    })
                })
                .collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&items)?)?;
        }
        ShowFormat::Text => {
            writeln!(
                out,
                "{:<12}  {:>4}  {:>9}  {:<24}  key",
                "metric", "days", "mean/min", "00h  hourly profile  23h"
            )?;
            for (m, k, s) in &shown {
                writeln!(
                    out,
                    "{:<12}  {:>4}  {:>9.3}  {}  {}{}",
                    m.as_str(),
                    s.days_of_history(),
                    s.daily_mean(),
                    sparkline(&s.mean, &s.days),
                    k,
                    if s.active.is_some() {
                        "  [anomalous]"
                    } else {
                        ""
                    }
                )?;
            }
            writeln!(
                out,
                "{} series; newest event {}",
                shown.len(),
                snap.last_minute
                    .map(|m| format_millis(m * 60_000))
                    .unwrap_or_else(|| "-".into())
            )?;
        }
    }
    if let Some(p) = &a.plot {
        std::fs::write(p, svg(&shown)).with_context(|| format!("cannot write {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_scales_and_marks_unseen_hours() {
        let mut mean = [1.0f32; 24];
        mean[2] = 8.0;
        let mut days = [3u8; 24];
        days[23] = 0;
        let s = sparkline(&mean, &days);
        assert_eq!(s.chars().count(), 24);
        assert_eq!(s.chars().nth(2), Some('█'));
        assert_eq!(s.chars().next(), Some('▂'));
        assert_eq!(s.chars().nth(23), Some(' '));
    }
}
