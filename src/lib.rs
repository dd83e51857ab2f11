//! trailwatch: a detection engine for AWS CloudTrail.
//!
//! The modules follow the data flow: records are decoded into [`event::Event`]s, matched by
//! [`rules`] (Sigma rules compiled once and selected per event through a candidate index).

pub mod backtest;
pub mod baseline;
pub mod cli;
pub mod config;
pub mod correlate;
pub mod decode;
pub mod engine;
pub mod event;
pub mod exceptions;
pub mod finding;
pub mod live;
pub mod rules;
pub mod simulate;
pub mod sink;
pub mod source;
pub mod state;
pub mod time;
