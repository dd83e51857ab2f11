//! Tests written inside rule files (the `tests:` extension key).
//!
//! ```yaml
//! tests:
//!   - name: root console login
//!     event: {eventName: ConsoleLogin, userIdentity: {type: Root}}
//!     expect: match
//!   - name: real detonation
//!     event_file: ../fixtures/samples/stop_logging.json   # relative to the rule file
//!     expect: match
//!   - name: burst
//!     events: [{...}, {...}]
//!     expect: {findings: 2}
//! ```

use super::parse::Ctx;
use super::yaml::{Node, Pos};
use super::{Rule, explain};
use crate::event::Event;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub enum CaseInput {
    /// One inline event.
    Event(serde_json::Value),
    /// A JSON file with one record (an object, a one-element array or `{"Records":[…]}`),
    /// resolved against the rule file's directory.
    EventFile(PathBuf),
    /// Several inline events.
    Events(Vec<serde_json::Value>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Match,
    NoMatch,
    Findings(u64),
}

#[derive(Debug, Clone)]
pub struct TestCase {
    pub name: String,
    pub pos: Pos,
    pub input: CaseInput,
    pub expect: Expect,
}

pub(crate) fn parse_cases(ctx: &mut Ctx<'_>, node: &Node) -> Vec<TestCase> {
    let Some(items) = node.as_seq() else {
        ctx.error(
            node.pos,
            format!("`tests` must be a list of cases, found {}", node.kind_name()),
            Some("each case: `{name, event | event_file | events, expect: match | no_match | {findings: N}}`".into()),
        );
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| parse_case(ctx, i, item))
        .collect()
}

fn parse_case(ctx: &mut Ctx<'_>, i: usize, item: &Node) -> Option<TestCase> {
    let Some(map) = item.as_map() else {
        ctx.error(
            item.pos,
            format!("test case #{} must be a mapping", i + 1),
            None,
        );
        return None;
    };
    for (k, _) in map {
        let known = matches!(
            k.scalar_text(),
            Some("name" | "event" | "event_file" | "events" | "expect" | "description")
        );
        if !known {
            ctx.error(
                k.pos,
                format!(
                    "unknown key `{}` in a test case",
                    k.scalar_text().unwrap_or("?")
                ),
                Some(
                    "a case has `name`, one of `event`/`event_file`/`events`, and `expect`".into(),
                ),
            );
        }
    }
    let name = item
        .get("name")
        .and_then(Node::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("case #{}", i + 1));
    let inputs: Vec<(&str, &Node)> = ["event", "event_file", "events"]
        .iter()
        .filter_map(|k| item.get(k).map(|n| (*k, n)))
        .collect();
    let input = match inputs.as_slice() {
        [("event", n)] => {
            if n.as_map().is_none() {
                ctx.error(
                    n.pos,
                    "`event` must be a mapping (one CloudTrail record)",
                    None,
                );
                return None;
            }
            CaseInput::Event(n.to_json())
        }
        [("event_file", n)] => {
            let Some(p) = n.as_str() else {
                ctx.error(n.pos, "`event_file` must be a path", None);
                return None;
            };
            let Some(base) = ctx.base_dir else {
                ctx.error(
                    n.pos,
                    "built-in rules may only use inline events",
                    Some("copy the record into `event:`".into()),
                );
                return None;
            };
            CaseInput::EventFile(base.join(p))
        }
        [("events", n)] => {
            let Some(list) = n.as_seq() else {
                ctx.error(n.pos, "`events` must be a list of records", None);
                return None;
            };
            if let Some(bad) = list.iter().find(|e| e.as_map().is_none()) {
                ctx.error(
                    bad.pos,
                    "each entry of `events` must be a mapping (one record)",
                    None,
                );
                return None;
            }
            CaseInput::Events(list.iter().map(Node::to_json).collect())
        }
        [] => {
            ctx.error(
                item.pos,
                format!("test case `{name}` has no `event`, `event_file` or `events`"),
                None,
            );
            return None;
        }
        _ => {
            ctx.error(
                item.pos,
                format!("test case `{name}` has more than one of `event`, `event_file`, `events`"),
                None,
            );
            return None;
        }
    };
    let Some(exp) = item.get("expect") else {
        ctx.error(
            item.pos,
            format!("test case `{name}` has no `expect`"),
            Some("add `expect: match`, `expect: no_match` or `expect: {findings: N}`".into()),
        );
        return None;
    };
    let expect = if let Some(n) = exp.get("findings") {
        match n.scalar_text().and_then(|t| t.parse::<u64>().ok()) {
            Some(v) => Expect::Findings(v),
            None => {
                ctx.error(
                    n.pos,
                    "`findings` must be a non-negative whole number",
                    None,
                );
                return None;
            }
        }
    } else {
        match exp.as_str() {
            Some("match") => Expect::Match,
            Some("no_match") => Expect::NoMatch,
            _ => {
                ctx.error(
                    exp.pos,
                    "`expect` must be `match`, `no_match` or `{findings: N}`",
                    None,
                );
                return None;
            }
        }
    };
    if matches!(input, CaseInput::Events(_))
        && expect != Expect::Findings(0)
        && !matches!(expect, Expect::Findings(_))
    {
        ctx.error(exp.pos, "with `events`, expect `{findings: N}`", None);
        return None;
    }
    Some(TestCase {
        name,
        pos: item.pos,
        input,
        expect,
    })
}

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
        last_event_explained = explain::explain(rule, &ev);
    }
    result.passed = match case.expect {
        Expect::Match => matches > 0,
        Expect::NoMatch => matches == 0,
        Expect::Findings(n) => matches == n,
    };
    if !result.passed {
        match case.expect {
            Expect::Match => result
                .explanation
                .push("expected a match, but the rule did not match".into()),
            Expect::NoMatch => result
                .explanation
                .push("expected no match, but the rule matched".into()),
            Expect::Findings(n) => result
                .explanation
                .push(format!("expected {n} findings, got {matches}")),
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
    correlations: &[super::correlation::Correlation],
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
    events.sort_by_key(|e| e.event_time().and_then(crate::time::parse_event_time));
    let (set, _) = super::RuleSet::with_correlations(rules.to_vec(), correlations.to_vec());
    let settings = crate::engine::Settings::default();
    let exceptions = crate::exceptions::Exceptions::default();
    let mut matcher = crate::engine::Matcher::new(&set, &exceptions, &settings);
    let mut stateful = crate::engine::Stateful::new(&set, &settings);
    let mut out = Vec::new();
    for ev in &events {
        let t = ev.event_time().and_then(crate::time::parse_event_time);
        let o = matcher.evaluate(ev);
        stateful.push(t, o, &mut out);
    }
    stateful.finish(&mut out);
    let mine: Vec<&crate::finding::Finding> = out.iter().filter(|f| f.rule.id == id).collect();
    let n = mine.len() as u64;
    result.passed = match case.expect {
        Expect::Match => n > 0,
        Expect::NoMatch => n == 0,
        Expect::Findings(want) => n == want,
    };
    if !result.passed {
        result.explanation.push(match case.expect {
            Expect::Match => "expected a finding, got none".to_string(),
            Expect::NoMatch => format!("expected no finding, got {n}"),
            Expect::Findings(want) => format!("expected {want} findings, got {n}"),
        });
        result
            .explanation
            .push(format!("{} events, in event-time order", events.len()));
        for f in mine.iter().take(5) {
            result.explanation.push(format!("  finding: {}", f.summary));
        }
        if stateful.correlator.stats.late_hits > 0 {
            result.explanation.push(format!(
                "{} events were later than the allowed lateness",
                stateful.correlator.stats.late_hits
            ));
        }
    }
    result
}
