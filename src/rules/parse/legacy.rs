//! Translation of the deprecated aggregation syntax (`| count()`, `| near`, `timeframe`).

use super::{Ctx, DocOutcome, Item};
use crate::rules::correlation::{self, CorrKind, CorrelationDef};
use crate::rules::matcher::{Cond, Selection};
use crate::rules::testcase::TestCase;
use crate::rules::yaml::Pos;
use crate::rules::{Rule, RuleMeta, RuleSource};
use crate::util::time::Millis;

/// The deprecated syntax found in a detection, to translate.
pub(super) struct Legacy {
    /// `| count()…` or `| near …`, and where it was written.
    pub(super) aggregation: Option<(correlation::Aggregation, Pos)>,
    /// `timeframe:` and where.
    pub(super) timeframe: Option<(Millis, Pos)>,
    /// Selection names when the condition is only `a and b [and …]` (for a bare timeframe).
    pub(super) and_names: Option<Vec<String>>,
    pub(super) condition_pos: Pos,
    pub(super) aggregation_pos: Option<Pos>,
}

/// Turns a rule written with the deprecated aggregation syntax into base rules and a
/// correlation that keeps the original rule's id, title and level.
#[allow(clippy::too_many_arguments)]
pub(super) fn translate_legacy(
    ctx: &mut Ctx<'_>,
    meta: RuleMeta,
    source: RuleSource,
    selections: Vec<(String, Selection)>,
    condition: Cond,
    condition_text: String,
    legacy: Legacy,
    tests: Vec<TestCase>,
    suppress: correlation::SuppressSetting,
) -> DocOutcome {
    let Some((timespan, _)) = legacy.timeframe else {
        let what = match &legacy.aggregation {
            Some((correlation::Aggregation::Near { .. }, _)) => "`| near`",
            _ => "`| count()`",
        };
        ctx.error(
            legacy.aggregation_pos.unwrap_or(legacy.condition_pos),
            format!("{what} without a `timeframe` has no time window and cannot be translated into a correlation"),
            Some("add `timeframe: 10m` (or write a Sigma correlation rule with `timespan`)".into()),
        );
        return DocOutcome::Invalid;
    };
    let base_rule =
        |suffix: &str, title: String, sels: Vec<(String, Selection)>, cond: Cond, text: String| {
            Rule {
                meta: RuleMeta {
                    id: format!("{}/{suffix}", meta.id),
                    name: None,
                    title,
                    ..meta.clone()
                },
                source: source.clone(),
                selections: sels,
                condition: cond,
                condition_text: text,
                tests: Vec::new(),
                suppress: correlation::SuppressSetting::Off,
            }
        };
    let mut items = Vec::new();
    let (kind, refs, group_by, cond, field, how) = match legacy.aggregation {
        Some((correlation::Aggregation::Count { field, by, op, n }, _)) => {
            let base = base_rule(
                "base",
                format!("{} (matching event)", meta.title),
                selections,
                condition,
                condition_text,
            );
            let refs = vec![(base.meta.id.clone(), source.pos)];
            items.push(Item::Rule(Box::new(base)));
            let kind = if field.is_some() {
                CorrKind::ValueCount
            } else {
                CorrKind::EventCount
            };
            let how = format!(
                "`| count({}){}{} {n}`",
                field.clone().unwrap_or_default(),
                by.as_ref().map(|b| format!(" by {b}")).unwrap_or_default(),
                format_args!(" {op}")
            );
            (
                kind,
                refs,
                by.into_iter().collect(),
                correlation::Aggregation::condition(&op, n),
                field,
                how,
            )
        }
        Some((correlation::Aggregation::Near { selections: near }, pos)) => {
            // The rule's own condition, then each selection named after `near`.
            let mut refs = Vec::new();
            let first = base_rule(
                "base",
                format!("{} (first event)", meta.title),
                selections.clone(),
                condition,
                condition_text,
            );
            refs.push((first.meta.id.clone(), source.pos));
            items.push(Item::Rule(Box::new(first)));
            for name in &near {
                let Some(i) = selections.iter().position(|(n, _)| n == name) else {
                    ctx.error(
                        pos,
                        format!("`near` refers to undefined selection `{name}`"),
                        None,
                    );
                    return DocOutcome::Invalid;
                };
                let r = base_rule(
                    name,
                    format!("{} ({name})", meta.title),
                    selections.clone(),
                    Cond::Sel(i),
                    name.clone(),
                );
                refs.push((r.meta.id.clone(), source.pos));
                items.push(Item::Rule(Box::new(r)));
            }
            (
                CorrKind::Temporal,
                refs,
                Vec::new(),
                correlation::CountCond::default(),
                None,
                format!("`| near {}`", near.join(" and ")),
            )
        }
        None => match legacy.and_names {
            Some(names) if names.len() >= 2 => {
                let mut refs = Vec::new();
                for name in &names {
                    let Some(i) = selections.iter().position(|(n, _)| n == name) else {
                        return DocOutcome::Invalid;
                    };
                    let r = base_rule(
                        name,
                        format!("{} ({name})", meta.title),
                        selections.clone(),
                        Cond::Sel(i),
                        name.clone(),
                    );
                    refs.push((r.meta.id.clone(), source.pos));
                    items.push(Item::Rule(Box::new(r)));
                }
                (
                    CorrKind::Temporal,
                    refs,
                    Vec::new(),
                    correlation::CountCond::default(),
                    None,
                    format!("`{}` with `timeframe`", names.join(" and ")),
                )
            }
            _ => {
                let pos = legacy.timeframe.map_or(legacy.condition_pos, |(_, p)| p);
                ctx.error(
                    pos,
                    "`timeframe` beside a plain condition has no faithful translation unless the condition is `a and b [and …]` of selections (events close in time)",
                    Some("remove `timeframe`, or write a Sigma correlation rule".into()),
                );
                return DocOutcome::Invalid;
            }
        },
    };
    let note_pos = legacy.aggregation_pos.unwrap_or(legacy.condition_pos);
    ctx.note(
        note_pos,
        format!(
            "deprecated {how} translated into a {} correlation (timespan {}) that keeps id `{}`",
            kind.as_str(),
            crate::util::time::format_duration(timespan),
            meta.id
        ),
    );
    items.push(Item::Correlation(Box::new(CorrelationDef {
        meta,
        source,
        kind,
        rules: refs,
        group_by,
        timespan,
        condition: cond,
        field,
        aliases: Default::default(),
        generate: false,
        suppress,
        tests,
        translated_from: Some(how),
    })));
    DocOutcome::Items(items)
}
