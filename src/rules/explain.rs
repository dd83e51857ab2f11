//! Why a rule did or did not match an event: which selections held, and which field decided.

use super::Rule;
use super::matcher::{Cond, FieldMatch, FieldTest, Selection};
use crate::event::{Event, Value};

const MAX_SHOWN: usize = 3;
const MAX_CHARS: usize = 80;

fn render_value(v: &Value<'_>) -> String {
    let s = match v {
        Value::String(s) => format!("{s:?}"),
        other => serde_json::to_string(other).unwrap_or_default(),
    };
    if s.chars().count() > MAX_CHARS {
        let cut: String = s.chars().take(MAX_CHARS).collect();
        format!("{cut}…")
    } else {
        s
    }
}

/// What the event holds at the field's path, for display.
fn observed(f: &FieldMatch, ev: &Event<'_>) -> String {
    let mut seen = Vec::new();
    let mut more = 0usize;
    ev.any_at(&f.path, &mut |v| {
        if seen.len() < MAX_SHOWN {
            seen.push(render_value(v));
        } else {
            more += 1;
        }
        false
    });
    match (seen.len(), more) {
        (0, _) => "<missing>".into(),
        (1, 0) => seen.remove(0),
        (_, 0) => format!("[{}]", seen.join(", ")),
        (_, m) => format!("[{}, … {m} more]", seen.join(", ")),
    }
}

fn describe_test(f: &FieldMatch) -> String {
    match &f.test {
        FieldTest::Exists(b) => format!("exists: {b}"),
        FieldTest::Values { .. } => "values".into(),
    }
}

fn cond_text(c: &Cond, names: &[(String, Selection)]) -> String {
    match c {
        Cond::Sel(i) => names.get(*i).map(|(n, _)| n.clone()).unwrap_or_default(),
        Cond::Not(inner) => format!("not {}", cond_text(inner, names)),
        Cond::And(items) => format!(
            "({})",
            items
                .iter()
                .map(|c| cond_text(c, names))
                .collect::<Vec<_>>()
                .join(" and ")
        ),
        Cond::Or(items) => format!(
            "({})",
            items
                .iter()
                .map(|c| cond_text(c, names))
                .collect::<Vec<_>>()
                .join(" or ")
        ),
    }
}

/// Lines explaining the evaluation of `rule` on `ev`.
pub(crate) fn explain(rule: &Rule, ev: &Event<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let result = rule.condition.eval(&rule.selections, ev);
    out.push(format!(
        "condition `{}` = {result}",
        if rule.condition_text.is_empty() {
            cond_text(&rule.condition, &rule.selections)
        } else {
            rule.condition_text.clone()
        }
    ));
    for (name, sel) in &rule.selections {
        out.push(format!("  selection `{name}` = {}", sel.matches(ev)));
        match sel {
            Selection::Keywords(_) => {
                out.push("    (keywords searched in every value of the event)".into())
            }
            Selection::Groups(groups) => {
                for (g, fields) in groups.iter().enumerate() {
                    if groups.len() > 1 {
                        let all = fields.iter().all(|f| f.matches(ev));
                        out.push(format!("    alternative #{} = {all}", g + 1));
                    }
                    for f in fields {
                        let ok = f.matches(ev);
                        let mark = if ok { "matches " } else { "no match" };
                        let what = match &f.test {
                            FieldTest::Exists(_) => {
                                format!("{}; event has {}", describe_test(f), observed(f, ev))
                            }
                            FieldTest::Values { .. } => format!("event has {}", observed(f, ev)),
                        };
                        out.push(format!("      {mark} {}: {what}", f.key));
                    }
                }
            }
        }
    }
    out
}
