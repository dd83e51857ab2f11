//! trailwatch: a detection engine for AWS CloudTrail.
//!
//! The modules follow the data flow and depend downward only (docs/architecture.md):
//! [`util`] → [`event`] (records, decoding, identity) → [`rules`] (the rule language) →
//! [`finding`] → the stateful stages ([`correlate`], [`baseline`]) → [`engine`] → drivers
//! ([`ruletest`], [`backtest`], [`live`]) with [`source`]s and [`sink`]s.

pub mod backtest;
pub mod baseline;
pub mod correlate;
pub mod engine;
pub mod event;
pub mod finding;
pub mod live;
pub mod rules;
pub mod ruletest;
pub mod sink;
pub mod source;
pub mod util;

// The types a library user needs, at the crate root.
pub use backtest::{BacktestOptions, BacktestSummary};
pub use engine::{Evaluator, Pipeline, Settings};
pub use event::Event;
pub use finding::{Details, Finding, Kind};
pub use live::{LiveOptions, LiveRun};
pub use rules::exceptions::Exceptions;
pub use rules::{Level, LoadOptions, LoadReport, Loader, Rule, RuleSet, load};
