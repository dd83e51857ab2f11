//! Where records come from: archived files (every shape) and, later, the live tail.

pub mod files;
