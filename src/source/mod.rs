//! Where records come from: archived files (every shape) and the live CloudWatch Logs tail.

pub mod cloudwatch;
pub mod files;
