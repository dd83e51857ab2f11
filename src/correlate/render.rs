//! The finding a correlation's firing becomes: its id, summary, details and sampled ids.

use super::window::Ev;
use super::{KEY_SEP, Last};
use crate::finding::{
    Body, CorrelationDetails, CorrelationInfo, Finding, ID_SAMPLE, RuleRef, Window,
};
use crate::rules::Level;
use crate::rules::correlation::{CorrKind, RefId};
use crate::rules::plan::Plan;
use crate::util::ids::stable_id;
use crate::util::time::{Millis, format_duration, format_millis};

/// The group-by values of a group key.
pub(super) fn split_key(key: &str) -> Vec<String> {
    key.split(KEY_SEP).map(str::to_string).collect()
}

/// The ids a finding carries for a window: the first and the last [`ID_SAMPLE`] (as
/// [`IdSample`](crate::finding::IdSample) keeps them), formatting only those (a window can
/// hold thousands).
pub(super) fn sample_ids(window: &[Ev]) -> Vec<String> {
    let ids = || {
        window
            .iter()
            .flat_map(|e| (0..e.ids.len()).map(move |i| (e, i)))
    };
    let total = window.iter().map(|e| e.ids.len()).sum::<usize>();
    let text = |(e, i): (&Ev, usize)| e.ids.get(i);
    if total <= 2 * ID_SAMPLE {
        return ids().filter_map(text).collect();
    }
    let mut out: Vec<String> = ids().take(ID_SAMPLE).filter_map(text).collect();
    let mut last: Vec<String> = window
        .iter()
        .rev()
        .flat_map(|e| (0..e.ids.len()).rev().map(move |i| (e, i)))
        .take(ID_SAMPLE)
        .filter_map(text)
        .collect();
    last.reverse();
    out.append(&mut last);
    out
}

/// A correlation that fired.
#[derive(Debug, Clone)]
pub(super) struct Fired {
    pub(super) key: Vec<String>,
    pub(super) time: Millis,
    pub(super) start: Millis,
    /// The count the condition judged (hits, distinct values, or steps for temporal).
    pub(super) count: u64,
    /// Events behind the finding.
    pub(super) events: u64,
    pub(super) ids: Vec<String>,
    pub(super) last: Last,
}

/// The finding a firing of `plan` becomes.
pub(super) fn finding(plan: &Plan, f: &Fired) -> Finding {
    let def = &plan.corr.def;
    let group: std::collections::BTreeMap<String, String> = def
        .group_by
        .iter()
        .zip(&f.key)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let key_text = f.key.join("|");
    let id = stable_id(&[
        "correlation",
        &def.meta.id,
        &key_text,
        &f.start.to_string(),
        &f.time.to_string(),
    ]);
    let who = if f.last.who.principal.is_empty() {
        "unknown".to_string()
    } else {
        f.last.who.principal.to_string()
    };
    let by = if group.is_empty() {
        String::new()
    } else {
        format!(
            " by {}",
            def.group_by
                .iter()
                .zip(&f.key)
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let what = match def.kind {
        CorrKind::EventCount => format!(
            "{} matching events ({}) within {}{by}",
            f.count,
            plan.ref_titles.join(", "),
            format_duration(def.timespan)
        ),
        CorrKind::ValueCount => format!(
            "{} distinct values of {} in {} events ({}) within {}{by}",
            f.count,
            def.field.as_deref().unwrap_or("?"),
            f.events,
            plan.ref_titles.join(", "),
            format_duration(def.timespan)
        ),
        CorrKind::Temporal => format!(
            "{} all happened within {}{by}",
            plan.ref_titles.join(" + "),
            format_duration(def.timespan)
        ),
        CorrKind::TemporalOrdered => format!(
            "{} happened in this order within {}{by}",
            plan.ref_titles.join(" → "),
            format_duration(def.timespan)
        ),
    };
    let mut summary = format!("{}: {what}", def.meta.title);
    if let Some(a) = &f.last.who.account {
        summary.push_str(&format!(", account {a}"));
    }
    summary.push('.');
    let details = CorrelationDetails {
        correlation: CorrelationInfo {
            kind: def.kind.as_str().to_string(),
            timespan: format_duration(def.timespan),
            condition: serde_json::to_value(def.condition).unwrap_or_default(),
            group,
            rules: plan
                .corr
                .refs
                .iter()
                .map(|r| match r {
                    RefId::Rule(id) | RefId::Correlation(id) => id.clone(),
                })
                .collect(),
            count: f.count,
            translated_from: def.translated_from.clone(),
        },
        window: Window {
            start: format_millis(f.start),
            end: format_millis(f.time),
        },
        rule_file: def.source.file.clone(),
    };
    Finding::new(
        id,
        RuleRef::of(&def.meta),
        Body::Correlation(Box::new(details)),
    )
    .with_time(Some(format_millis(f.time)), Some(f.time))
    .with_who(
        who,
        f.last.who.account.as_deref().map(str::to_string),
        f.last.who.region.as_deref().map(str::to_string),
    )
    .with_events(f.ids.clone(), f.events)
    .with_summary(summary)
    .with_suppress_key(key_text)
}

/// The level of a correlation finding (for `--fail-on`).
pub fn level_of(plan: &Plan) -> Level {
    plan.corr.def.meta.level
}
