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

/// Appends the records of one decoded input read at `place` to `out`, each CloudTrail event
/// once: a record whose event id `seen` holds (within its window) is skipped. Returns how many
/// were skipped.
pub(crate) fn deliver_unseen(
    records: Vec<crate::event::decode::RecordText<'_>>,
    place: &str,
    seen: &mut cloudwatch::SeenSet,
    cap: usize,
    now: crate::util::time::Millis,
    out: &mut Vec<Delivered>,
) -> u64 {
    let mut duplicates = 0;
    for r in records {
        if let Some(id) = cloudwatch::cloudtrail_event_id(&r.text)
            && !seen.insert(cloudwatch::id_key(id), now, cap)
        {
            duplicates += 1;
            continue;
        }
        out.push(Delivered {
            text: r.text.into_owned(),
            origin: format!("{place}: {}", r.loc),
        });
    }
    duplicates
}
