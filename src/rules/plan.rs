//! How rules feed correlations: each correlation's references resolved to indices, the
//! field paths of its group-by keys per referenced rule, and which rules stay quiet (only
//! feeding correlations with `generate: false`). Pure compilation of the rule set; the
//! correlator (`crate::correlate`) runs these plans.

use super::Rule;
use super::correlation::{Correlation, RefId};
use crate::event::FieldPath;
use std::collections::HashMap;

/// A correlation ready to run: references as indices.
#[derive(Debug, Clone)]
pub struct Plan {
    pub corr: Correlation,
    pub refs: Vec<RefIdx>,
    /// Per reference: the field path of each group-by name (rules only).
    pub key_paths: Vec<Vec<FieldPath>>,
    /// Per reference: the `value_count` field.
    pub value_paths: Vec<Option<FieldPath>>,
    /// Titles of the referenced rules (for summaries).
    pub ref_titles: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefIdx {
    Rule(usize),
    Corr(usize),
}

/// How rules feed correlations.
#[derive(Debug, Clone, Default)]
pub struct Plans {
    pub plans: Vec<Plan>,
    /// Per rule: (correlation, position) it feeds.
    pub feeds: Vec<Vec<(u32, u32)>>,
    /// Per rule: no finding of its own (only referenced by correlations with `generate: false`).
    pub quiet: Vec<bool>,
    /// Per correlation: (parent correlation, position) it feeds.
    pub corr_feeds: Vec<Vec<(u32, u32)>>,
    /// Per correlation: no finding of its own.
    pub corr_quiet: Vec<bool>,
}

impl Plans {
    /// Links correlations to the rules present. Correlations whose rules are missing (left
    /// out by `--disable`/`--min-level`) are dropped, with a message each.
    pub fn build(rules: &[Rule], correlations: Vec<Correlation>) -> (Plans, Vec<String>) {
        let rule_idx: HashMap<&str, usize> = rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.meta.id.as_str(), i))
            .collect();
        let mut dropped = Vec::new();
        // Drop correlations with missing references until stable (chains).
        let mut kept: Vec<Correlation> = correlations;
        loop {
            let ids: std::collections::HashSet<String> =
                kept.iter().map(|c| c.def.meta.id.clone()).collect();
            let before = kept.len();
            kept.retain(|c| {
                let ok = c.refs.iter().all(|r| match r {
                    RefId::Rule(id) => rule_idx.contains_key(id.as_str()),
                    RefId::Correlation(id) => ids.contains(id),
                });
                if !ok {
                    dropped.push(format!(
                        "correlation `{}` ({}) is not evaluated: a rule it refers to is not loaded",
                        c.def.meta.id, c.def.meta.title
                    ));
                }
                ok
            });
            if kept.len() == before {
                break;
            }
        }
        let corr_idx: HashMap<String, usize> = kept
            .iter()
            .enumerate()
            .map(|(i, c)| (c.def.meta.id.clone(), i))
            .collect();
        let mut p = Plans {
            feeds: vec![Vec::new(); rules.len()],
            quiet: vec![false; rules.len()],
            corr_feeds: vec![Vec::new(); kept.len()],
            corr_quiet: vec![false; kept.len()],
            plans: Vec::new(),
        };
        let mut referenced = vec![false; rules.len()];
        let mut generated = vec![false; rules.len()];
        let mut c_referenced = vec![false; kept.len()];
        let mut c_generated = vec![false; kept.len()];
        for (ci, c) in kept.into_iter().enumerate() {
            let mut refs = Vec::new();
            let mut key_paths = Vec::new();
            let mut value_paths = Vec::new();
            let mut ref_titles = Vec::new();
            for (pos, r) in c.refs.iter().enumerate() {
                match r {
                    RefId::Rule(id) => {
                        let i = rule_idx[id.as_str()];
                        let rule = &rules[i];
                        let keys: Vec<&str> = std::iter::once(rule.meta.id.as_str())
                            .chain(rule.meta.name.as_deref())
                            .collect();
                        key_paths.push(
                            c.def
                                .group_by
                                .iter()
                                .map(|g| FieldPath::new(&c.def.group_path(g, &keys)))
                                .collect(),
                        );
                        value_paths.push(
                            c.def
                                .field
                                .as_ref()
                                .map(|f| FieldPath::new(&c.def.group_path(f, &keys))),
                        );
                        ref_titles.push(rule.meta.title.clone());
                        p.feeds[i].push((ci as u32, pos as u32));
                        referenced[i] = true;
                        generated[i] |= c.def.generate;
                        refs.push(RefIdx::Rule(i));
                    }
                    RefId::Correlation(id) => {
                        let j = corr_idx[id.as_str()];
                        key_paths.push(Vec::new());
                        value_paths.push(None);
                        ref_titles.push(id.clone());
                        p.corr_feeds[j].push((ci as u32, pos as u32));
                        c_referenced[j] = true;
                        c_generated[j] |= c.def.generate;
                        refs.push(RefIdx::Corr(j));
                    }
                }
            }
            p.plans.push(Plan {
                corr: c,
                refs,
                key_paths,
                value_paths,
                ref_titles,
            });
        }
        for i in 0..rules.len() {
            p.quiet[i] = referenced[i] && !generated[i];
        }
        for j in 0..p.plans.len() {
            p.corr_quiet[j] = c_referenced[j] && !c_generated[j];
        }
        // Titles of referenced correlations, now that all plans exist.
        let titles: Vec<String> = p
            .plans
            .iter()
            .map(|pl| pl.corr.def.meta.title.clone())
            .collect();
        for pl in &mut p.plans {
            for (k, r) in pl.refs.iter().enumerate() {
                if let RefIdx::Corr(j) = r {
                    pl.ref_titles[k] = titles[*j].clone();
                }
            }
        }
        (p, dropped)
    }

    pub fn is_empty(&self) -> bool {
        self.plans.is_empty()
    }
}
