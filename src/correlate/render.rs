//! The finding a correlation's firing becomes: its id, summary, details and sampled ids.

use super::window::Ev;
use super::{KEY_SEP, Last};
use crate::finding::{Finding, ID_SAMPLE, Kind, RuleRef};
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
    let group: serde_json::Map<String, serde_json::Value> = def
        .group_by
        .iter()
        .zip(&f.key)
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
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
    let details = serde_json::json!({
        "correlation": {
            "type": def.kind.as_str(),
            "timespan": format_duration(def.timespan),
            "condition": def.condition,
            "group": group,
            "rules": plan.corr.refs.iter().map(|r| match r { RefId::Rule(id) | RefId::Correlation(id) => id.clone() }).collect::<Vec<_>>(),
            "count": f.count,
            "translated_from": def.translated_from,
        },
        "window": {"start": format_millis(f.start), "end": format_millis(f.time)},
        "rule_file": def.source.file,
    });
    Finding {
        incident: id.clone(),
        id,
        kind: Kind::Correlation,
        rule: RuleRef {
            id: def.meta.id.clone(),
            title: def.meta.title.clone(),
            level: def.meta.level,
            tags: def.meta.tags.clone(),
        },
        time: Some(format_millis(f.time)),
        principal: who,
        account: f.last.who.account.as_deref().map(str::to_string),
        region: f.last.who.region.as_deref().map(str::to_string),
        event_ids: f.ids.clone(),
        event_count: f.events,
        summary,
        details,
        event: None,
        time_ms: Some(f.time),
        suppress_key: Some(key_text),
    }
}

/// The level of a correlation finding (for `--fail-on`).
pub fn level_of(plan: &Plan) -> Level {
    plan.corr.def.meta.level
}
