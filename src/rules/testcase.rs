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
//!   - name: repeats become one incident
//!     events: [{...}, {...}, {...}]
//!     expect: {alerts: [new, update, close]}   # the rule's alerts, in order
//! ```

use super::parse::Ctx;
use super::yaml::{Node, Pos};
use std::path::PathBuf;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Match,
    NoMatch,
    Findings(u64),
    /// The kinds (`new`, `update`, `close`) of the alerts of incidents the rule leads, in
    /// order, with the default alert settings.
    Alerts(Vec<String>),
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
    let expect = if let Some(list) = exp.get("alerts") {
        let kinds: Option<Vec<String>> = list.as_seq().and_then(|items| {
            items
                .iter()
                .map(|k| {
                    k.as_str()
                        .filter(|t| matches!(*t, "new" | "update" | "close"))
                        .map(str::to_string)
                })
                .collect()
        });
        match kinds {
            Some(k) => Expect::Alerts(k),
            None => {
                ctx.error(
                    list.pos,
                    "`alerts` must be a list of `new`, `update` and `close`",
                    None,
                );
                return None;
            }
        }
    } else if let Some(n) = exp.get("findings") {
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
                    "`expect` must be `match`, `no_match`, `{findings: N}` or `{alerts: [...]}`",
                    None,
                );
                return None;
            }
        }
    };
    if matches!(input, CaseInput::Events(_))
        && !matches!(expect, Expect::Findings(_) | Expect::Alerts(_))
    {
        ctx.error(
            exp.pos,
            "with `events`, expect `{findings: N}` or `{alerts: [...]}`",
            None,
        );
        return None;
    }
    if matches!(expect, Expect::Alerts(_)) && !matches!(input, CaseInput::Events(_)) {
        ctx.error(exp.pos, "`{alerts: [...]}` needs `events`", None);
        return None;
    }
    Some(TestCase {
        name,
        pos: item.pos,
        input,
        expect,
    })
}
