//! Leaf utilities with no knowledge of CloudTrail or rules: event-time arithmetic and text,
//! stable ids, atomic state files, and AWS error classification with backoff.

pub mod aws;
pub mod ids;
pub mod state;
pub mod text;
pub mod time;
