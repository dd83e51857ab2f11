//! One event in, findings out. Deterministic: the same events in the same order give the
//! same findings, whether they come from a backtest or the live tail.
//!
//! [`Matcher`] is the stateless part (rule matches), cheap to create per worker thread.

use crate::event::Event;
use crate::exceptions::Exceptions;
use crate::finding::Finding;
use crate::rules::RuleSet;

/// Evaluates the rule set on events, reusing its scratch space.
pub struct Matcher<'r> {
    rules: &'r RuleSet,
    exceptions: &'r Exceptions,
    scratch: Vec<u32>,
    /// Matches dropped by the exceptions so far.
    pub excepted: u64,
}

impl<'r> Matcher<'r> {
    pub fn new(rules: &'r RuleSet, exceptions: &'r Exceptions) -> Self {
        Matcher {
            rules,
            exceptions,
            scratch: Vec::new(),
            excepted: 0,
        }
    }

    /// The findings of every rule that matches `ev` (and is not excepted), in rule order.
    pub fn findings(&mut self, ev: &Event<'_>) -> Vec<Finding> {
        self.rules.matching(ev, &mut self.scratch);
        let mut out = Vec::with_capacity(self.scratch.len());
        for &i in &self.scratch {
            let rule = &self.rules.rules()[i as usize];
            if self.exceptions.excepts(&rule.meta.id, ev) {
                self.excepted += 1;
            } else {
                out.push(Finding::from_match(rule, ev));
            }
        }
        out
    }
}
