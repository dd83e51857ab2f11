//! The command line: one module per subcommand. Errors become exit code 2, failed checks 1.

mod backtest;
mod baseline;
mod config;
mod out;
mod rules;
mod run;
mod simulate;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use trailwatch::rules::{LoadOptions, LoadReport, Placeholders, RuleSet};

/// Exit status of a command that ran to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 0: success.
    Ok,
    /// 1: a check failed (a rule test case, `--expect`, `--fail-on`).
    CheckFailed,
    /// 2: usage, input or validation error.
    Invalid,
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> ExitCode {
        ExitCode::from(match o {
            Outcome::Ok => 0,
            Outcome::CheckFailed => 1,
            Outcome::Invalid => 2,
        })
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "trailwatch",
    version,
    about = "Detection engine for AWS CloudTrail: Sigma rules over live and archived events",
    long_about = "trailwatch evaluates Sigma detection rules over AWS CloudTrail records.\n\n\
        Rules are Sigma YAML (SigmaHQ's AWS rules work unmodified) with optional `tests:` \
        inside each rule file. Without --rules, the built-in rule set compiled into the \
        binary is used.\n\n\
        Exit codes: 0 success; 1 a check failed (a rule test case, --expect, --fail-on); \
        2 usage, input or validation error.",
    after_help = "Examples:\n  trailwatch backtest fixtures/samples/\n  trailwatch run --log-group cloudtrail-logs --topic-arn arn:aws:sns:us-east-1:123456789012:alerts\n  trailwatch rules validate my-rules/\n  trailwatch rules test my-rules/\n  trailwatch rules list --format json"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Replay archived CloudTrail files through the rules and report what would have fired.
    Backtest(Box<backtest::BacktestArgs>),
    /// Write, check and inspect detection rules.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// Tail CloudWatch Logs groups fed by CloudTrail and publish findings to SNS.
    Run(Box<run::RunArgs>),
    /// Manage the SNS topic findings are published to.
    #[command(subcommand)]
    Topic(run::TopicCommand),
    /// Subscribe an e-mail address to the findings topic.
    Subscribe(run::SubscribeArgs),
    /// Simulated, labelled traffic for evaluating baselines, and its scorer.
    #[command(subcommand)]
    Simulate(simulate::SimulateCommand),
    /// Learn per-principal activity baselines from archives and show what was learned.
    #[command(subcommand)]
    Baseline(baseline::BaselineCommand),
}

/// Which rules to load (shared by every command that loads rules).
#[derive(Args, Debug, Clone)]
pub struct RuleArgs {
    /// Rule files or directories (searched recursively for .yml/.yaml). Without any, the
    /// built-in rules are used.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Also load the built-in rules when PATHs are given.
    #[arg(long)]
    pub builtin: bool,
    /// YAML file with values for `|expand` placeholders (`name: [value, ...]`).
    #[arg(long, value_name = "FILE")]
    pub placeholders: Option<PathBuf>,
    /// Also accept rules whose logsource is `product: aws` with this `service` (repeatable).
    /// Some rule sets name the AWS service whose API calls CloudTrail records (`iam`, `ec2`)
    /// instead of `cloudtrail`; such rules are otherwise skipped with a note.
    #[arg(long, value_name = "NAME")]
    pub logsource_service: Vec<String>,
}

impl RuleArgs {
    /// Loads the rules; the report carries every diagnostic.
    pub fn load(&self) -> Result<LoadReport> {
        let placeholders = match &self.placeholders {
            None => None,
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read placeholders file {}", p.display()))?;
                match Placeholders::from_yaml(&p.display().to_string(), &text) {
                    Ok(ph) => Some(ph),
                    Err(diags) => {
                        for d in &diags {
                            eprint!("{}", d.render(Some(&text)));
                        }
                        anyhow::bail!("invalid placeholders file {}", p.display());
                    }
                }
            }
        };
        let with_builtin = self.paths.is_empty() || self.builtin;
        Ok(trailwatch::rules::load(
            &self.paths,
            with_builtin,
            LoadOptions {
                placeholders,
                extra_services: self.logsource_service.clone(),
            },
        ))
    }

    /// Loads the rules for a run: errors stop start-up unless `skip_invalid`, in which case
    /// they are printed as warnings and the broken rules are left out.
    pub fn load_for_run(&self, skip_invalid: bool) -> Result<RuleSet> {
        let report = self.load()?;
        let errors = report.errors().count();
        for d in &report.diagnostics {
            if d.is_error() || d.severity == trailwatch::rules::diag::Severity::Warning {
                eprint!("{}", report.render(d));
            }
        }
        if errors > 0 && !skip_invalid {
            anyhow::bail!(
                "{} in the rules; fix them (see `trailwatch rules validate`) or pass --skip-invalid to run without the broken rules",
                trailwatch::util::text::count(errors as u64, "problem")
            );
        }
        if errors > 0 {
            eprintln!(
                "warning: running without the rules reported above ({}; --skip-invalid)",
                trailwatch::util::text::count(errors as u64, "problem")
            );
        }
        let (set, dropped) = RuleSet::with_correlations(report.rules, report.correlations);
        for d in dropped {
            eprintln!("warning: {d}");
        }
        Ok(set.with_baseline(report.baseline))
    }
}

/// How findings become alerts (shared by `backtest --format alerts` and `run`); each flag
/// wins over the configuration file's `alerts:` section, which wins over the default.
#[derive(Args, Debug, Clone, Default)]
pub struct AlertArgs {
    /// Alerts: repeats of a rule for the same principal within this much event time of an
    /// incident's first finding join the incident.
    /// [default: 60m, or the configuration file's `alerts.window`]
    #[arg(long, value_name = "DURATION", value_parser = trailwatch::util::time::parse_duration)]
    pub alert_window: Option<trailwatch::util::time::Millis>,
    /// Alerts: updates of one incident go out at most this often.
    /// [default: 15m, or `alerts.update_every`]
    #[arg(long, value_name = "DURATION", value_parser = trailwatch::util::time::parse_duration)]
    pub alert_update_every: Option<trailwatch::util::time::Millis>,
    /// Alerts: incidents below this level are not alerted (their findings ride inside alerts
    /// of higher incidents and stay in reports).
    /// [default: medium, or `alerts.min_level`]
    #[arg(long, value_name = "LEVEL", value_parser = parse_level)]
    pub alert_min_level: Option<trailwatch::rules::Level>,
}

impl AlertArgs {
    /// The alert settings from these flags over `file` (the `alerts:` section, if any).
    pub fn settings(&self, file: Option<&config::AppConfig>) -> trailwatch::engine::AlertSettings {
        file.map(|c| c.alerts.clone()).unwrap_or_default().settings(
            self.alert_window,
            self.alert_update_every,
            self.alert_min_level,
        )
    }
}

/// Silencing known-benign activity without editing rules (shared by `backtest` and `run`).
#[derive(Args, Debug, Clone, Default)]
pub struct Tuning {
    /// Do not evaluate the rule with this id (repeatable). Unknown ids are an error.
    #[arg(long, value_name = "RULE_ID")]
    pub disable: Vec<String>,
    /// Only evaluate rules at or above this level.
    #[arg(long, value_name = "LEVEL", value_parser = parse_level)]
    pub min_level: Option<trailwatch::rules::Level>,
    /// YAML file of exceptions: principals, principal patterns, source IPs/CIDRs and accounts,
    /// for all rules (`all:`) or per rule id (`rules: {<id>: …}`). See docs/rules.md.
    #[arg(long, value_name = "FILE")]
    pub exceptions: Option<PathBuf>,
}

pub fn parse_level(s: &str) -> Result<trailwatch::rules::Level, String> {
    trailwatch::rules::Level::parse(s)
        .ok_or_else(|| format!("`{s}` is not a level: informational, low, medium, high, critical"))
}

impl Tuning {
    /// Applies `--disable`/`--min-level` to the loaded rules and reads `--exceptions`.
    pub fn apply(
        &self,
        rules: RuleSet,
    ) -> Result<(RuleSet, trailwatch::rules::exceptions::Exceptions)> {
        let known = rules.ids();
        let (set, dropped) = rules
            .select(&self.disable, self.min_level)
            .map_err(|e| anyhow::anyhow!("--disable: {e} (see `trailwatch rules list`)"))?;
        let exceptions = match &self.exceptions {
            None => trailwatch::rules::exceptions::Exceptions::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read exceptions file {}", p.display()))?;
                let x = trailwatch::rules::exceptions::Exceptions::from_yaml(
                    &p.display().to_string(),
                    &text,
                )?;
                for id in x.rule_ids() {
                    if !known.contains(id) {
                        eprintln!(
                            "warning: {}: rule `{id}` is not loaded; its exceptions do nothing",
                            p.display()
                        );
                    }
                }
                x
            }
        };
        for d in dropped {
            eprintln!("warning: {d}");
        }
        Ok((set, exceptions))
    }
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Rules(cmd) => rules::run(cmd),
        Command::Backtest(args) => backtest::run(*args),
        Command::Run(args) => run::run(*args),
        Command::Topic(cmd) => run::topic(cmd),
        Command::Subscribe(args) => run::subscribe(args),
        Command::Simulate(cmd) => simulate::run(cmd),
        Command::Baseline(cmd) => baseline::run(cmd),
    };
    match result {
        Ok(o) => o.into(),
        // The reader of standard output went away (`| head`): not worth a word.
        Err(e) if out::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
