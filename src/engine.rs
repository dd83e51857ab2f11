//! One event in, findings out. Synchronous and deterministic: the same events in the same
//! order give the same findings, whether they come from a backtest or the live tail.

use crate::event::Event;
use crate::finding::Finding;
use crate::rules::RuleSet;

pub struct Engine {
    rules: RuleSet,
    scratch: Vec<u32>,
}

impl Engine {
    pub fn new(rules: RuleSet) -> Self {
        Engine {
            rules,
            scratch: Vec::new(),
        }
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Evaluates every candidate rule on `ev`, appending findings to `out`.
    pub fn process(&mut self, ev: &Event<'_>, out: &mut Vec<Finding>) {
        self.rules.matching(ev, &mut self.scratch);
        for &i in &self.scratch {
            out.push(Finding::from_match(&self.rules.rules()[i as usize], ev));
        }
    }
}
