//! Runs the tests written inside rule files (`tests:`): a detection case against its rule
//! alone, a correlation case (or a case with `events`) through the whole engine.

use crate::engine::{AlertSettings, Pipeline, Settings};
use crate::event::Event;
use crate::finding::Finding;
use crate::rules::correlation::Correlation;
use crate::rules::exceptions::Exceptions;
use crate::rules::explain::explain;
use crate::rules::testcase::{CaseInput, Expect, TestCase};
use crate::rules::yaml::Pos;
use crate::rules::{Rule, RuleSet};
use crate::util::time::parse_event_time;
use std::path::Path;

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    pub pos: Pos,
    pub passed: bool,
    /// Why it failed: the decisive selections and fields, or an input problem.
    pub explanation: Vec<String>,
}

fn load_records(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: malformed JSON: {e}", path.display()))?;
    let records = match v {
        serde_json::Value::Object(mut m) if m.contains_key("Records") => {
            match m.remove("Records") {
                Some(serde_json::Value::Array(a)) => a,
                _ => return Err(format!("{}: `Records` is not a list", path.display())),
            }
        }
        serde_json::Value::Array(a) => a,
        other => vec![other],
    };
    Ok(records.iter().map(|r| r.to_string()).collect())
}

/// The record texts a case feeds; with `expect: match|no_match` an `event_file` must hold one.
fn case_texts(case: &TestCase, single: bool) -> Result<Vec<String>, String> {
    Ok(match &case.input {
        CaseInput::Event(v) => vec![v.to_string()],
        CaseInput::Events(vs) => vs.iter().map(|v| v.to_string()).collect(),
        CaseInput::EventFile(p) => {
            let t = load_records(p)?;
            if single && t.len() != 1 && !matches!(case.expect, Expect::Findings(_)) {
                return Err(format!(
                    "{} holds {} records; with `expect: match|no_match` it must hold one",
                    p.display(),
                    t.len()
                ));
            }
            t
        }
    })
}

/// Runs one case against `rule`.
pub fn run_case(rule: &Rule, case: &TestCase) -> CaseResult {
    let mut result = CaseResult {
        name: case.name.clone(),
        pos: case.pos,
        passed: false,
        explanation: Vec::new(),
    };
    let texts = match case_texts(case, true) {
        Ok(t) => t,
        Err(e) => {
            result.explanation.push(e);
            return result;
        }
    };
    let mut matches = 0u64;
    let mut last_event_explained = Vec::new();
    for (k, text) in texts.iter().enumerate() {
        let ev = match Event::parse(text) {
            Ok(ev) => ev,
            Err(e) => {
                result.explanation.push(format!("record #{}: {e}", k + 1));
                return result;
            }
        };
        let hit = rule.matches(&ev);
        matches += u64::from(hit);
        last_event_explained = explain(rule, &ev);
    }
    result.passed = match case.expect {
        Expect::Match => matches > 0,
        Expect::NoMatch => matches == 0,
        Expect::Findings(n) => matches == n,
        // Alerts need the whole pipeline (`run_pipeline_case`).
        Expect::Alerts(_) => false,
    };
    if !result.passed {
        match &case.expect {
            Expect::Match => result
                .explanation
                .push("expected a match, but the rule did not match".into()),
            Expect::NoMatch => result
                .explanation
                .push("expected no match, but the rule matched".into()),
            Expect::Findings(n) => result.explanation.push(format!(
                "expected {}, got {matches}",
                crate::util::text::count(*n, "finding")
            )),
            Expect::Alerts(_) => result
                .explanation
                .push("expected alerts: run the case with `events` through the pipeline".into()),
        }
        result.explanation.extend(last_event_explained);
    }
    result
}

/// Runs a case of a correlation rule (or a detection case with `events`) through the whole
/// engine: every loaded rule and correlation, matching, correlation and suppression, with the
/// events in event-time order. Counts the findings of rule/correlation `id`.
pub fn run_pipeline_case(
    rules: &[Rule],
    correlations: &[Correlation],
    id: &str,
    case: &TestCase,
) -> CaseResult {
    let mut result = CaseResult {
        name: case.name.clone(),
        pos: case.pos,
        passed: false,
        explanation: Vec::new(),
    };
    let texts = match case_texts(case, false) {
        Ok(t) => t,
        Err(e) => {
            result.explanation.push(e);
            return result;
        }
    };
    let mut events = Vec::new();
    for (k, text) in texts.iter().enumerate() {
        match Event::parse(text) {
            Ok(ev) => events.push(ev),
            Err(e) => {
                result.explanation.push(format!("record #{}: {e}", k + 1));
                return result;
            }
        }
    }
    events.sort_by_key(|e| e.event_time().and_then(parse_event_time));
    let (set, _) = RuleSet::with_correlations(rules.to_vec(), correlations.to_vec());
    let settings = Settings::default();
    let exceptions = Exceptions::default();
    let mut pipeline = Pipeline::new(&set, &exceptions, &settings);
    if matches!(case.expect, Expect::Alerts(_)) {
        pipeline.enable_alerts(AlertSettings::default());
    }
    let mut out = Vec::new();
    for ev in &events {
        pipeline.feed(ev, None, &mut out);
    }
    pipeline.finish(&mut out);
    let mut alerts = Vec::new();
    pipeline.drain_alerts(&mut alerts);
    // The alerts of incidents this rule leads.
    let alert_kinds: Vec<&str> = alerts
        .iter()
        .filter(|a| a.lead.rule.id == id)
        .map(|a| a.kind.as_str())
        .collect();
    let mine: Vec<&Finding> = out.iter().filter(|f| f.rule.id == id).collect();
    let n = mine.len() as u64;
    result.passed = match &case.expect {
        Expect::Match => n > 0,
        Expect::NoMatch => n == 0,
        Expect::Findings(want) => n == *want,
        Expect::Alerts(want) => alert_kinds == *want,
    };
    if !result.passed {
        result.explanation.push(match &case.expect {
            Expect::Match => "expected a finding, got none".to_string(),
            Expect::NoMatch => format!("expected no finding, got {n}"),
            Expect::Findings(want) => format!(
                "expected {}, got {n}",
                crate::util::text::count(*want, "finding")
            ),
            Expect::Alerts(want) => format!(
                "expected alerts [{}], got [{}]",
                want.join(", "),
                alert_kinds.join(", ")
            ),
        });
        result.explanation.push(format!(
            "{}, in event-time order",
            crate::util::text::count(events.len() as u64, "event")
        ));
        for f in mine.iter().take(5) {
            result.explanation.push(format!("  finding: {}", f.summary));
        }
        let late = pipeline.stats().correlation.late_hits;
        if late > 0 {
            result.explanation.push(format!(
                "{late} events were later than the allowed lateness"
            ));
        }
    }
    result
}
