//! Leaf utilities with no knowledge of CloudTrail or rules: event-time arithmetic and text,
//! stable ids, and atomic state files.

pub mod ids;
pub mod state;
pub mod time;
