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

/// Most fields [`fired_fields`] names.
const MAX_FIRED: usize = 8;

/// The fields that made `rule` match `ev`, with what the event holds there: every field of the
/// selections that held (for an e-mail's "Why it fired"). Empty when the rule does not match
/// or matched on keywords only.
pub fn fired_fields(rule: &Rule, ev: &Event<'_>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    if !rule.condition.eval(&rule.selections, ev) {
        return out;
    }
    for (_, sel) in &rule.selections {
        let Selection::Groups(groups) = sel else {
            continue;
        };
        // The first alternative that holds names the fields.
        let Some(fields) = groups.iter().find(|g| g.iter().all(|f| f.matches(ev))) else {
            continue;
        };
        for f in fields {
            // The field without its modifiers (`eventName|startswith` → `eventName`).
            let name = f.key.split('|').next().unwrap_or_default();
            if out.len() < MAX_FIRED && !out.iter().any(|(k, _)| k == name) {
                out.push((name.to_string(), observed(f, ev)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{LoadOptions, load};

    #[test]
    fn fired_fields_show_what_the_event_held() {
        let report = load(&[], true, LoadOptions::default());

        let rule = report
            .rules
            .iter()
            .find(|r| r.meta.title == "Console sign-in without MFA")
            .expect("built-in rule");
        let text = r#"{"eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin",
            "userIdentity":{"type":"IAMUser"},"additionalEventData":{"MFAUsed":"No"},
            "responseElements":{"ConsoleLogin":"Success"}}"#;
        let ev = Event::parse(text).unwrap();
        let fired = fired_fields(rule, &ev);
        assert!(
            fired.contains(&("additionalEventData.MFAUsed".into(), "\"No\"".into())),
            "{fired:?}"
        );
        assert!(fired.iter().all(|(k, _)| !k.contains('|')), "{fired:?}");
        // The filter did not hold: its field is not among the reasons.
        assert!(
            fired.iter().all(|(k, _)| k != "userIdentity.type"),
            "{fired:?}"
        );
        // Not a match: nothing to show.
        let other = Event::parse(r#"{"eventName":"ListBuckets"}"#).unwrap();
        assert!(fired_fields(rule, &other).is_empty());
    }
}
