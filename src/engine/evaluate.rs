//! The stateless stage: which rules match a record, and what the stateful stage needs of it.

use super::Settings;
use super::dedup::{effective, event_key};
use crate::correlate::{EventIds, Hit, KEY_SEP, Who, hash_value};
use crate::event::Event;
use crate::finding::{Finding, RecordParts, RuleRef};
use crate::rules::RuleSet;
use crate::rules::correlation::Suppress;
use crate::rules::exceptions::Exceptions;
use crate::util::time::{Millis, parse_event_time};
use std::sync::Arc;

/// What a record produced in the stateless stage.
#[derive(Debug, Default)]
pub struct Evaluated {
    pub findings: Vec<Finding>,
    pub hits: Vec<Hit>,
    /// What the baselines count of this record (only when a `baseline` document is loaded).
    pub observation: Option<crate::baseline::Obs>,
}

impl Evaluated {
    pub fn is_empty(&self) -> bool {
        self.findings.is_empty() && self.hits.is_empty() && self.observation.is_none()
    }

    /// Asks for the parts this output points to (its findings, the observation's text) to be
    /// fetched into the cache (see [`crate::util::prefetch`]); [`Evaluated::prefetch`] then
    /// asks for the findings' own texts. For a thread that reads outputs workers made long
    /// before: done a few outputs ahead, the reads overlap instead of waiting in turn.
    pub fn prefetch_parts(&self) {
        let findings = std::mem::size_of_val(self.findings.as_slice());
        crate::util::prefetch::read_bytes(self.findings.as_ptr().cast(), findings, 8);
        if let Some(o) = &self.observation {
            o.prefetch();
        }
    }

    /// Asks for each finding's texts and most of its record to be fetched into the
    /// cache (after [`Evaluated::prefetch_parts`], whose fetch of the findings it reads).
    pub fn prefetch(&self) {
        for f in &self.findings {
            f.prefetch();
        }
    }

    /// Records where the event was read (a file and record, a log stream and event) in each
    /// finding, so people can find it.
    pub fn set_origin(&mut self, origin: &str) {
        for f in &mut self.findings {
            f.details.origin = Some(origin.to_string());
        }
    }
}

/// Evaluates the rule set on events, reusing its scratch space.
pub struct Evaluator<'r> {
    rules: &'r RuleSet,
    exceptions: &'r Exceptions,
    default_suppress: Option<&'r Suppress>,
    /// Each rule as findings name it, made once and shared by its findings.
    rule_refs: Vec<Arc<RuleRef>>,
    scratch: Vec<u32>,
    /// Group key text being built (reused across hits).
    key_text: String,
    /// Matches dropped by the exceptions so far.
    excepted: u64,
}

impl<'r> Evaluator<'r> {
    pub fn new(rules: &'r RuleSet, exceptions: &'r Exceptions, settings: &'r Settings) -> Self {
        Evaluator {
            rules,
            exceptions,
            default_suppress: settings.default_suppress.as_ref(),
            rule_refs: rules
                .rules()
                .iter()
                .map(|r| Arc::new(RuleRef::of(&r.meta)))
                .collect(),
            scratch: Vec::new(),
            key_text: String::new(),
            excepted: 0,
        }
    }

    /// The findings of matching rules (not excepted, not quiet) in rule order, and the hits
    /// for the correlations they feed.
    pub fn evaluate(&mut self, ev: &Event<'_>) -> Evaluated {
        let time = ev.event_time().and_then(parse_event_time);
        self.evaluate_at(ev, time)
    }

    /// [`Evaluator::evaluate`] when the caller has already parsed the event time.
    pub fn evaluate_at(&mut self, ev: &Event<'_>, time: Option<Millis>) -> Evaluated {
        let mut out = Evaluated::default();
        self.evaluate_into(ev, time, &mut out);
        out
    }

    /// [`Evaluator::evaluate_at`] into `out` (an empty output), where the caller keeps it: an
    /// output made here and returned was copied right after its observation was written, in
    /// loads wider than the stores that wrote it (a store-forwarding stall per record).
    pub fn evaluate_into(&mut self, ev: &Event<'_>, time: Option<Millis>, out: &mut Evaluated) {
        debug_assert!(out.is_empty(), "evaluate_into fills an empty output");
        self.rules.matching(ev, &mut self.scratch);
        if let (Some(b), Some(t)) = (self.rules.baseline(), time) {
            crate::baseline::Obs::from_event_in(&mut out.observation, ev, t, &b.config);
        }
        if self.scratch.is_empty() {
            return;
        }
        let plans = self.rules.plans();
        // Shared by the hits of this record: group keys made so far; who/where and event ids.
        let mut keys: Vec<Arc<str>> = Vec::new();
        let mut shared: Option<(Arc<Who>, EventIds)> = None;
        let mut parts = RecordParts::default();
        for &i in &self.scratch {
            let i = i as usize;
            let rule = &self.rules.rules()[i];
            if self.exceptions.excepts(&rule.meta.id, ev) {
                self.excepted += 1;
                continue;
            }
            if !plans.quiet.get(i).copied().unwrap_or(false) {
                let mut f = match self.rule_refs.get(i) {
                    Some(r) => Finding::from_match_with(rule, r.clone(), ev, &mut parts),
                    None => Finding::from_match_sharing(rule, ev, &mut parts),
                };
                if let Some(s) = effective(&rule.suppress, self.default_suppress) {
                    f.suppress_key = Some(event_key(s, ev));
                }
                out.findings.push(f);
            }
            let Some(feeds) = plans.feeds.get(i) else {
                continue;
            };
            if feeds.is_empty() {
                continue;
            }
            // Correlations need a time; records without one cannot be placed in a window.
            let Some(t) = time else { continue };
            for &(c, pos) in feeds {
                let plan = &plans.plans[c as usize];
                if self.exceptions.excepts(&plan.corr.def.meta.id, ev) {
                    self.excepted += 1;
                    continue;
                }
                let p = pos as usize;
                // The group key: group-by values joined by KEY_SEP, built in a reused buffer.
                // Hits of one record with the same key text share one allocation.
                let text = &mut self.key_text;
                text.clear();
                for (n, k) in plan.key_paths[p].iter().enumerate() {
                    if n > 0 {
                        text.push(KEY_SEP);
                    }
                    ev.push_first_text(k, text);
                }
                let key = match keys.iter().find(|k| ***k == **text) {
                    Some(k) => k.clone(),
                    None => {
                        let k: Arc<str> = Arc::from(text.as_str());
                        keys.push(k.clone());
                        k
                    }
                };
                // Only its hash is kept: the correlator counts distinct values by hash.
                let value = plan.value_paths[p].as_ref().map(|k| {
                    text.clear();
                    ev.push_first_text(k, text);
                    hash_value(text)
                });
                // Who, where and the event id: built once per record, shared by its hits.
                let (who, ids) = shared.get_or_insert_with(|| {
                    let who = Arc::new(Who {
                        principal: crate::event::identity::principal(ev).into(),
                        account: ev.recipient_account_id().map(Into::into),
                        region: ev.aws_region().map(Into::into),
                    });
                    let ids = ev.event_id().map_or(EventIds::None, EventIds::one);
                    (who, ids)
                });
                out.hits.push(Hit {
                    corr: c,
                    pos,
                    time: t,
                    key,
                    value,
                    event_ids: ids.clone(),
                    count: 1,
                    who: who.clone(),
                });
            }
        }
    }

    /// Only the findings (for callers without correlations).
    pub fn findings(&mut self, ev: &Event<'_>) -> Vec<Finding> {
        self.evaluate(ev).findings
    }

    /// Matches dropped by the exceptions so far.
    pub fn excepted(&self) -> u64 {
        self.excepted
    }
}
