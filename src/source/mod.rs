//! Where records come from: archived files (every shape), archives in S3, and the live
//! CloudWatch Logs tail.

pub mod cloudwatch;
pub mod files;
pub mod s3;
