//! The candidate index: per event, only the rules that can possibly match.
//!
//! A rule whose condition requires `eventName` to be one of a known set of exact values is
//! filed under each of those names; otherwise, if it requires `eventSource` that way, under
//! each source. Rules that constrain neither (root use, refused calls, user agents) are
//! filed by another field they test — its exact values (`userIdentity.type: Root`), or
//! merely its presence (`errorCode|startswith: AccessDenied` needs an `errorCode`) — so most
//! events skip them after one field lookup; only a rule with no such field is evaluated for
//! every event. The analysis is conservative: `not`, wildcards, modifiers and `null` all make
//! a rule unconstrained, never wrongly constrained.

use super::Rule;
use super::matcher::{Cond, FieldTest, Needle, Selection};
use crate::event::{Event, FieldPath, Value};
use std::collections::{BTreeSet, HashMap};

/// The index's maps: looked up two or three times per event with short lower-case keys, so a
/// fast fixed-seed hasher (SipHash was 2 % of a backtest; the keys come from rule files).
/// Keyed by the lower-cased text's bytes (looked up without re-checking it as UTF-8).
type Map<V> = HashMap<Box<[u8]>, V, foldhash::fast::FixedState>;

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

/// Can a needle match only a present value (never a missing field)?
fn needs_value(n: &Needle) -> bool {
    match n {
        Needle::Null => false,
        Needle::Any(alts) => alts.iter().all(needs_value),
        _ => true,
    }
}

/// Does `cond` hold only for events in which `field` is present (reaches some value)?
fn requires_present(cond: &Cond, sels: &[(String, Selection)], field: &str) -> bool {
    match cond {
        Cond::Sel(i) => {
            let Some((_, Selection::Groups(groups))) = sels.get(*i) else {
                return false;
            };
            !groups.is_empty()
                && groups.iter().all(|g| {
                    g.iter().any(|f| {
                        f.path.as_str() == field
                            && match &f.test {
                                FieldTest::Exists(want) => *want,
                                FieldTest::Values { needles, .. } => {
                                    !needles.is_empty() && needles.iter().all(needs_value)
                                }
                            }
                    })
                })
        }
        Cond::Not(_) => false,
        Cond::And(items) => items.iter().any(|c| requires_present(c, sels, field)),
        Cond::Or(items) => {
            !items.is_empty() && items.iter().all(|c| requires_present(c, sels, field))
        }
    }
}

/// Where a rule is filed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexKey {
    Names(BTreeSet<String>),
    Sources(BTreeSet<String>),
    /// Another field must hold one of these exact (lower-case) values.
    FieldValues(String, BTreeSet<String>),
    /// Another field must be present.
    FieldPresent(String),
    Always,
}

pub fn key_for(rule: &Rule) -> IndexKey {
    if let Some(n) = required(&rule.condition, &rule.selections, EVENT_NAME) {
        return IndexKey::Names(n);
    }
    if let Some(s) = required(&rule.condition, &rule.selections, EVENT_SOURCE) {
        return IndexKey::Sources(s);
    }
    // The fields the rule tests, in a fixed order.
    let fields: BTreeSet<&str> = rule
        .selections
        .iter()
        .filter_map(|(_, s)| match s {
            Selection::Groups(g) => Some(g),
            Selection::Keywords(_) => None,
        })
        .flatten()
        .flatten()
        .map(|f| f.path.as_str())
        .collect();
    for f in &fields {
        if let Some(v) = required(&rule.condition, &rule.selections, f) {
            return IndexKey::FieldValues(f.to_string(), v);
        }
    }
    for f in &fields {
        if requires_present(&rule.condition, &rule.selections, f) {
            return IndexKey::FieldPresent(f.to_string());
        }
    }
    IndexKey::Always
}

/// Rules filed by one other field.
#[derive(Debug, Clone)]
struct FieldGuard {
    path: FieldPath,
    /// Lower-case value → rules requiring it.
    by_value: Map<Vec<u32>>,
    /// Rules filed by a value (all of them, for values that are not strings).
    valued: Vec<u32>,
    /// Rules that need the field present.
    present: Vec<u32>,
}

/// How many rules the index files where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexStats {
    pub by_name: usize,
    pub by_source: usize,
    /// Filed by another field's values or presence.
    pub by_field: usize,
    /// Evaluated for every event.
    pub always: usize,
}

#[derive(Debug, Default, Clone)]
pub struct CandidateIndex {
    by_name: Map<Vec<u32>>,
    by_source: Map<Vec<u32>>,
    always: Vec<u32>,
    /// Rules filed by name or source, for events whose field is not a string.
    keyed: Vec<u32>,
    /// Rules filed by other fields.
    guards: Vec<FieldGuard>,
}

/// Lower-cases ASCII `s` on the stack and calls `f` with its bytes; other text goes through
/// the heap (`str::to_lowercase`, as the keys were made).
fn with_lower<R>(s: &str, f: impl FnOnce(&[u8]) -> R) -> R {
    const N: usize = 128;
    if s.is_ascii() && s.len() <= N {
        let mut buf = [0u8; N];
        let b = &mut buf[..s.len()];
        b.copy_from_slice(s.as_bytes());
        b.make_ascii_lowercase();
        f(b)
    } else {
        f(s.to_lowercase().as_bytes())
    }
}

/// A map key from a lower-cased text.
fn key_of(text: &str) -> Box<[u8]> {
    text.as_bytes().into()
}

impl CandidateIndex {
    pub fn build(rules: &[Rule]) -> Self {
        let mut idx = CandidateIndex::default();
        for (i, r) in rules.iter().enumerate() {
            let i = i as u32;
            match key_for(r) {
                IndexKey::Names(names) => {
                    for n in names {
                        idx.by_name.entry(key_of(&n)).or_default().push(i);
                    }
                    idx.keyed.push(i);
                }
                IndexKey::Sources(sources) => {
                    for s in sources {
                        idx.by_source.entry(key_of(&s)).or_default().push(i);
                    }
                    idx.keyed.push(i);
                }
                IndexKey::FieldValues(field, values) => {
                    let g = idx.guard(&field);
                    for v in values {
                        g.by_value.entry(key_of(&v)).or_default().push(i);
                    }
                    g.valued.push(i);
                }
                IndexKey::FieldPresent(field) => idx.guard(&field).present.push(i),
                IndexKey::Always => idx.always.push(i),
            }
        }
        idx
    }

    fn guard(&mut self, field: &str) -> &mut FieldGuard {
        let at = match self.guards.iter().position(|g| g.path.as_str() == field) {
            Some(at) => at,
            None => {
                self.guards.push(FieldGuard {
                    path: FieldPath::new(field),
                    by_value: Map::default(),
                    valued: Vec::new(),
                    present: Vec::new(),
                });
                self.guards.len() - 1
            }
        };
        &mut self.guards[at]
    }

    /// The rules filed by other fields that `ev` can match.
    fn guarded(&self, ev: &Event<'_>, f: &mut impl FnMut(u32)) {
        for g in &self.guards {
            // Missing: none of its rules can match. One string: look it up. Anything else
            // (several values, numbers, objects): every rule filed by its values.
            let mut reached = 0usize;
            let mut one_string = false;
            let mut hit: Option<&Vec<u32>> = None;
            ev.any_at(&g.path, &mut |v| {
                reached += 1;
                if let (1, Value::String(s)) = (reached, v) {
                    one_string = true;
                    hit = with_lower(s, |l| g.by_value.get(l));
                }
                false
            });
            if reached == 0 {
                continue;
            }
            g.present.iter().for_each(|&i| f(i));
            if reached == 1 && one_string {
                hit.into_iter().flatten().for_each(|&i| f(i));
            } else {
                g.valued.iter().for_each(|&i| f(i));
            }
        }
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
            self.guarded(ev, &mut f);
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
        self.guarded(ev, &mut f);
        self.always.iter().for_each(|&i| f(i));
    }

    /// How many rules are filed where.
    pub fn stats(&self) -> IndexStats {
        let distinct = |lists: &mut dyn Iterator<Item = &u32>| {
            let mut v: Vec<u32> = lists.copied().collect();
            v.sort_unstable();
            v.dedup();
            v.len()
        };
        IndexStats {
            by_name: distinct(&mut self.by_name.values().flatten()),
            by_source: distinct(&mut self.by_source.values().flatten()),
            by_field: distinct(
                &mut self
                    .guards
                    .iter()
                    .flat_map(|g| g.valued.iter().chain(&g.present)),
            ),
            always: self.always.len(),
        }
    }
}
