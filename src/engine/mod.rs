//! One event in, findings out. Deterministic: the same events in the same event-time order
//! give the same findings, whether they come from a backtest, the live tail or a rule test.
//!
//! Two stages, behind one [`Pipeline`] that every driver uses:
//! - [`Evaluator`] (stateless, one per worker thread): rule matches become findings, matches
//!   of rules that feed correlations become hits, and the baselines' observation of the
//!   record is extracted — all of it an [`Evaluated`];
//! - the stateful stage (one, fed in event-time order by [`Pipeline::push`]): correlations
//!   ([`crate::correlate`]) and baselines ([`crate::baseline`]), then — when alerts are asked
//!   for — the [`incident`] stage, which groups findings into incidents (keyed by rule and
//!   principal, or a rule's `suppress:` fields: `engine::dedup`) and decides the alerts.
//!
//! A single-threaded driver calls [`Pipeline::feed`] (both stages); a parallel one runs
//! [`Evaluator`]s on its workers and hands their results to [`Pipeline::push`] in event-time
//! order.

pub(crate) mod dedup;
mod evaluate;
pub mod incident;
mod pipeline;

pub use evaluate::{Evaluated, Evaluator};
pub use incident::{Alert, AlertKind, AlertMember, AlertSettings, AlertStats, Involved, Tally};
pub use pipeline::{EngineError, Pipeline, PipelineStats, SnapshotRef};

use crate::correlate::{DEFAULT_LATENESS, DEFAULT_MAX_KEYS};
use crate::rules::correlation::Suppress;
use crate::util::time::Millis;

/// Settings of the stateful stage.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How late (in event time) an event may arrive and still count in a window.
    pub lateness: Millis,
    /// Cap on live group keys per correlation.
    pub max_keys: usize,
    /// Dedup key and window for the incidents of rules that do not set their own
    /// (`suppress:`); by default, rule and principal for the alert window.
    pub default_suppress: Option<Suppress>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lateness: DEFAULT_LATENESS,
            max_keys: DEFAULT_MAX_KEYS,
            default_suppress: None,
        }
    }
}
