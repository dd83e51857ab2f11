//! Where records come from: archived files (every shape), archives in S3, the live CloudWatch
//! Logs tail, and the scaling live sources (a log group's subscription stream in Kinesis, S3
//! notifications in SQS).

pub mod cloudwatch;
pub mod files;
pub mod kinesis;
pub mod s3;
pub mod sqs;

/// One CloudTrail record read by a live source, with where it was read (the finding's
/// `details.origin`, and the place named when it is not a record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub text: String,
    pub origin: String,
}
