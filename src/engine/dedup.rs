//! Dedup keys: a rule's `suppress:` (or the configuration's default) names the fields whose
//! values, instead of the principal, key its incidents, and the window they stay open
//! ([`crate::engine::incident`]). This module reads those values from a matched event or a
//! correlation's group.

use crate::event::{Event, FieldPath};
use crate::finding::{Finding, Kind};
use crate::rules::correlation::{Suppress, SuppressSetting};

/// The dedup setting that applies to a rule: its own `suppress:`, or the default.
pub(crate) fn effective<'a>(
    setting: &'a SuppressSetting,
    default: Option<&'a Suppress>,
) -> Option<&'a Suppress> {
    match setting {
        SuppressSetting::Off => None,
        SuppressSetting::On(s) => Some(s),
        SuppressSetting::Default => default,
    }
}

/// The dedup key of a rule match: the first value of each `by` field of the event,
/// joined by `|` (missing fields give an empty part).
pub(super) fn event_key(s: &Suppress, ev: &Event<'_>) -> String {
    let mut key = String::new();
    for (n, p) in s.by.iter().enumerate() {
        if n > 0 {
            key.push('|');
        }
        ev.push_first_text(&FieldPath::new(p), &mut key);
    }
    key
}

/// The dedup key of a correlation finding: `by` names group-by fields, read from the
/// finding's group; without `by`, the key the correlator gave it (the whole group).
pub(super) fn set_correlation_key(s: &Suppress, f: &mut Finding) {
    if f.kind() != Kind::Correlation || s.by.is_empty() {
        return;
    }
    let Some(group) = f.details.group() else {
        return;
    };
    let key: Vec<&str> =
        s.by.iter()
            .map(|b| group.get(b).map_or("", String::as_str))
            .collect();
    f.suppress_key = Some(key.join("|"));
}
