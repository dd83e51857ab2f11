//! The candidate index: per event, only the rules that can possibly match.
//!
//! A rule whose condition requires `eventName` to be one of a known set of exact values is
//! filed under each of those names; otherwise, if it requires `eventSource` that way, under
//! each source; otherwise it is always a candidate. The analysis is conservative: `not`,
//! wildcards, modifiers and `null` all make a rule unconstrained, never wrongly constrained.

use super::Rule;
use super::matcher::{Cond, Selection};
use crate::event::{Event, Value};
use std::collections::{BTreeSet, HashMap};

const EVENT_NAME: &str = "eventName";
const EVENT_SOURCE: &str = "eventSource";

/// The exact lower-case values `field` must take for `cond` to hold, or `None` when any value
/// might do.
fn required(cond: &Cond, sels: &[(String, Selection)], field: &str) -> Option<BTreeSet<String>> {
    match cond {
        Cond::Sel(i) => {
            let (_, sel) = sels.get(*i)?;
            let Selection::Groups(groups) = sel else {
                return None;
            };
            let mut union = BTreeSet::new();
            for g in groups {
                // AND of fields: any constraining field constrains the group (intersect all).
                let mut group: Option<BTreeSet<String>> = None;
                for f in g.iter().filter(|f| f.path.as_str() == field) {
                    if let Some(vals) = f.required_values() {
                        let vals: BTreeSet<String> = vals.into_iter().collect();
                        group = Some(match group {
                            None => vals,
                            Some(prev) => prev.intersection(&vals).cloned().collect(),
                        });
                    }
                }
                union.extend(group?);
            }
            Some(union)
        }
        Cond::Not(_) => None,
        Cond::And(items) => items
            .iter()
            .filter_map(|c| required(c, sels, field))
            .reduce(|a, b| a.intersection(&b).cloned().collect()),
        Cond::Or(items) => {
            let mut union = BTreeSet::new();
            for c in items {
                union.extend(required(c, sels, field)?);
            }
            Some(union)
        }
    }
}

/// Where a rule is filed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexKey {
    Names(BTreeSet<String>),
    Sources(BTreeSet<String>),
    Always,
}

pub fn key_for(rule: &Rule) -> IndexKey {
    if let Some(n) = required(&rule.condition, &rule.selections, EVENT_NAME) {
        return IndexKey::Names(n);
    }
    if let Some(s) = required(&rule.condition, &rule.selections, EVENT_SOURCE) {
        return IndexKey::Sources(s);
    }
    IndexKey::Always
}

#[derive(Debug, Default, Clone)]
pub struct CandidateIndex {
    by_name: HashMap<Box<str>, Vec<u32>>,
    by_source: HashMap<Box<str>, Vec<u32>>,
    always: Vec<u32>,
    /// Rules filed by name or source, for events whose field is not a string.
    keyed: Vec<u32>,
}

/// Lower-cases ASCII `s` on the stack and calls `f`; other text goes through the heap.
fn with_lower<R>(s: &str, f: impl FnOnce(&str) -> R) -> R {
    const N: usize = 128;
    if s.is_ascii() && s.len() <= N {
        let mut buf = [0u8; N];
        let b = &mut buf[..s.len()];
        b.copy_from_slice(s.as_bytes());
        b.make_ascii_lowercase();
        // ASCII stays ASCII: valid UTF-8.
        f(std::str::from_utf8(b).unwrap_or(""))
    } else {
        f(&s.to_lowercase())
    }
}

impl CandidateIndex {
    pub fn build(rules: &[Rule]) -> Self {
        let mut idx = CandidateIndex::default();
        for (i, r) in rules.iter().enumerate() {
            let i = i as u32;
            match key_for(r) {
                IndexKey::Names(names) => {
                    for n in names {
                        idx.by_name.entry(n.into()).or_default().push(i);
                    }
                    idx.keyed.push(i);
                }
                IndexKey::Sources(sources) => {
                    for s in sources {
                        idx.by_source.entry(s.into()).or_default().push(i);
                    }
                    idx.keyed.push(i);
                }
                IndexKey::Always => idx.always.push(i),
            }
        }
        idx
    }

    /// Calls `f` with every candidate rule index for `ev` (each once, in no set order).
    pub fn for_candidates(&self, ev: &Event<'_>, mut f: impl FnMut(u32)) {
        let name = ev.get(EVENT_NAME);
        let source = ev.get(EVENT_SOURCE);
        let scalar = |v: Option<&Value<'_>>| matches!(v, None | Some(Value::String(_)));
        if !scalar(name) || !scalar(source) {
            // A non-string eventName/eventSource (arrays, objects, numbers) can match a rule
            // in ways the index does not model: consider every rule.
            self.keyed.iter().chain(&self.always).for_each(|&i| f(i));
            return;
        }
        if let Some(Value::String(n)) = name {
            with_lower(n, |l| {
                if let Some(list) = self.by_name.get(l) {
                    list.iter().for_each(|&i| f(i));
                }
            });
        }
        if let Some(Value::String(s)) = source {
            with_lower(s, |l| {
                if let Some(list) = self.by_source.get(l) {
                    list.iter().for_each(|&i| f(i));
                }
            });
        }
        self.always.iter().for_each(|&i| f(i));
    }

    /// How many rules are filed by name, by source, and always evaluated.
    pub fn stats(&self) -> (usize, usize, usize) {
        let mut by_name: Vec<u32> = self.by_name.values().flatten().copied().collect();
        by_name.sort_unstable();
        by_name.dedup();
        let mut by_source: Vec<u32> = self.by_source.values().flatten().copied().collect();
        by_source.sort_unstable();
        by_source.dedup();
        (by_name.len(), by_source.len(), self.always.len())
    }
}
