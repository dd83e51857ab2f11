//! Leaf utilities with no knowledge of CloudTrail or rules: event-time arithmetic and text,
//! stable ids, atomic state files, AWS error classification with backoff, and cache prefetch
//! hints.

pub mod aws;
pub mod ids;
pub mod prefetch;
pub mod state;
pub mod text;
pub mod time;
