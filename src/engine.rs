//! One event in, findings out. Deterministic: the same events in the same order give the
//! same findings, whether they come from a backtest or the live tail.
//!
//! [`Matcher`] is the stateless part (rule matches), cheap to create per worker thread.

use crate::event::Event;
use crate::finding::Finding;
use crate::rules::RuleSet;

/// Evaluates the rule set on events, reusing its scratch space.
pub struct Matcher<'r> {
    rules: &'r RuleSet,
    scratch: Vec<u32>,
}

impl<'r> Matcher<'r> {
    pub fn new(rules: &'r RuleSet) -> Self {
        Matcher {
            rules,
            scratch: Vec::new(),
        }
    }

    /// The findings of every rule that matches `ev`, in rule order.
    pub fn findings(&mut self, ev: &Event<'_>) -> Vec<Finding> {
        self.rules.matching(ev, &mut self.scratch);
        self.scratch
            .iter()
            .map(|&i| Finding::from_match(&self.rules.rules()[i as usize], ev))
            .collect()
    }
}
