//! `trailwatch rules validate|test|list`.

use super::{Outcome, RuleArgs};
use anyhow::Result;
use clap::{Subcommand, ValueEnum};
use std::io::Write;
use trailwatch::rules::diag::Severity;
use trailwatch::ruletest::{run_case, run_pipeline_case};

#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Load every rule and report every problem at once (file:line:column, a snippet and a
    /// hint). Exit 2 when any rule is invalid.
    Validate {
        #[command(flatten)]
        source: RuleArgs,
        /// Also print notes (e.g. rules skipped because their logsource is not CloudTrail).
        #[arg(long)]
        verbose: bool,
    },
    /// Run the test cases written inside the rule files (`tests:`). Exit 1 when a case fails;
    /// failures explain which selection and which field decided.
    Test {
        #[command(flatten)]
        source: RuleArgs,
        /// Print passing cases too.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Print the loaded rules: id, level, title and source file.
    List {
        #[command(flatten)]
        source: RuleArgs,
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
}

pub fn run(cmd: RulesCommand) -> Result<Outcome> {
    match cmd {
        RulesCommand::Validate { source, verbose } => validate(&source, verbose),
        RulesCommand::Test { source, verbose } => test(&source, verbose),
        RulesCommand::List { source, format } => list(&source, format),
    }
}

fn print_diagnostics(report: &trailwatch::rules::LoadReport, verbose: bool) {
    for d in &report.diagnostics {
        if verbose || d.severity != Severity::Note {
            eprint!("{}", report.render(d));
        }
    }
}

fn validate(source: &RuleArgs, verbose: bool) -> Result<Outcome> {
    let report = source.load()?;
    print_diagnostics(&report, verbose);
    let errors = report.errors().count();
    let warnings = report
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    let files = report.sources.len();
    let mut out = super::out::stdout();
    if let Some(b) = &report.baseline {
        writeln!(
            out,
            "baseline document `{}` ({}): baselines run",
            b.meta.id, b.source.file
        )?;
    }
    writeln!(
        out,
        "{} valid in {}; {}, {}, {} skipped (not CloudTrail)",
        report.counts(),
        plural(files, "file"),
        plural(errors, "error"),
        plural(warnings, "warning"),
        plural(report.skipped, "document")
    )?;
    Ok(if errors > 0 {
        Outcome::Invalid
    } else {
        Outcome::Ok
    })
}

fn test(source: &RuleArgs, verbose: bool) -> Result<Outcome> {
    let report = source.load()?;
    print_diagnostics(&report, false);
    if report.has_errors() {
        eprintln!("error: the rules above are invalid; fix them before their tests can run");
        return Ok(Outcome::Invalid);
    }
    let mut out = super::out::stdout();
    let (mut passed, mut failed, mut untested) = (0usize, 0usize, 0usize);
    let mut report_case = |title: &str,
                           file: &str,
                           r: trailwatch::ruletest::CaseResult,
                           out: &mut dyn Write|
     -> std::io::Result<()> {
        let place = format!("{file}:{}:{}", r.pos.line, r.pos.col);
        if r.passed {
            passed += 1;
            if verbose {
                writeln!(out, "ok    {title} › {} ({place})", r.name)?;
            }
        } else {
            failed += 1;
            writeln!(out, "FAIL  {title} › {} ({place})", r.name)?;
            for line in &r.explanation {
                writeln!(out, "        {line}")?;
            }
        }
        Ok(())
    };
    for rule in &report.rules {
        if rule.tests.is_empty() {
            // Base rules made from the deprecated aggregation syntax carry no tests.
            if !rule.meta.id.contains('/') {
                untested += 1;
            }
            continue;
        }
        for case in &rule.tests {
            let r = if matches!(
                case.input,
                trailwatch::rules::testcase::CaseInput::Events(_)
            ) {
                run_pipeline_case(&report.rules, &report.correlations, &rule.meta.id, case)
            } else {
                run_case(rule, case)
            };
            report_case(&rule.meta.title, &rule.source.file, r, &mut out)?;
        }
    }
    for c in &report.correlations {
        if c.def.tests.is_empty() {
            untested += 1;
            continue;
        }
        for case in &c.def.tests {
            let r = run_pipeline_case(&report.rules, &report.correlations, &c.def.meta.id, case);
            report_case(&c.def.meta.title, &c.def.source.file, r, &mut out)?;
        }
    }
    if untested > 0 {
        let verb = if untested == 1 { "has" } else { "have" };
        writeln!(out, "{} {verb} no tests", plural(untested, "rule"))?;
    }
    writeln!(out, "{passed} passed, {failed} failed")?;
    Ok(if failed > 0 {
        Outcome::CheckFailed
    } else {
        Outcome::Ok
    })
}

fn list(source: &RuleArgs, format: ListFormat) -> Result<Outcome> {
    let report = source.load()?;
    print_diagnostics(&report, false);
    let mut out = super::out::stdout();
    match format {
        ListFormat::Json => {
            let mut items: Vec<serde_json::Value> = report
                .rules
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "id": r.meta.id,
                        "kind": "detection",
                        "level": r.meta.level,
                        "title": r.meta.title,
                        "status": r.meta.status,
                        "tags": r.meta.tags,
                        "file": r.source.file,
                        "tests": r.tests.len(),
                    })
                })
                .collect();
            items.extend(report.correlations.iter().map(|c| {
                serde_json::json!({
                    "id": c.def.meta.id,
                    "kind": "correlation",
                    "correlation_type": c.def.kind.as_str(),
                    "level": c.def.meta.level,
                    "title": c.def.meta.title,
                    "status": c.def.meta.status,
                    "tags": c.def.meta.tags,
                    "file": c.def.source.file,
                    "tests": c.def.tests.len(),
                })
            }));
            if let Some(b) = &report.baseline {
                items.push(serde_json::json!({
                    "id": b.meta.id,
                    "kind": "baseline",
                    "level": b.meta.level,
                    "title": b.meta.title,
                    "status": b.meta.status,
                    "tags": b.meta.tags,
                    "file": b.source.file,
                    "tests": 0,
                    "baseline": b.config,
                }));
            }
            writeln!(out, "{}", serde_json::to_string_pretty(&items)?)?;
        }
        ListFormat::Text => {
            for r in &report.rules {
                writeln!(
                    out,
                    "{:<36}  {:<8}  {}  ({})",
                    r.meta.id,
                    r.meta.level.tag(),
                    r.meta.title,
                    r.source.file
                )?;
            }
            for c in &report.correlations {
                writeln!(
                    out,
                    "{:<36}  {:<8}  {} [{} correlation]  ({})",
                    c.def.meta.id,
                    c.def.meta.level.tag(),
                    c.def.meta.title,
                    c.def.kind.as_str(),
                    c.def.source.file
                )?;
            }
            if let Some(b) = &report.baseline {
                writeln!(
                    out,
                    "{:<36}  {:<8}  {} [baseline]  ({})",
                    b.meta.id,
                    b.meta.level.tag(),
                    b.meta.title,
                    b.source.file
                )?;
            }
            writeln!(out, "{}", report.counts())?;
        }
    }
    Ok(if report.has_errors() {
        Outcome::Invalid
    } else {
        Outcome::Ok
    })
}

/// `1 rule`, `2 rules`.
fn plural(n: usize, word: &str) -> String {
    trailwatch::util::text::count(n as u64, word)
}
