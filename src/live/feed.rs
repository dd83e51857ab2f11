//! The live run's source, whichever it is: the CloudWatch Logs tail, a log group's
//! subscription stream in Kinesis, or S3 notifications in SQS. Each gives batches of records
//! with their origin, says when it has caught up with the present, and has a position the
//! checkpoint saves once the findings of what was read are in the outbox.

use super::Metrics;
use super::checkpoint::SourceState;
use crate::source::Delivered;
use crate::source::cloudwatch::{Tail, TailError};
use crate::source::kinesis::{Kinesis, KinesisError};
use crate::source::sqs::{Sqs, SqsError};
use crate::util::time::Millis;
use std::sync::atomic::Ordering;

/// Where records come from.
pub(super) enum Feed {
    Tail(Tail),
    Kinesis(Kinesis),
    Sqs(Sqs),
}

/// What one poll read.
pub(super) struct FeedBatch {
    pub records: Vec<Delivered>,
    /// Nothing more to read now: event time has reached the present.
    pub caught_up: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error(transparent)]
    Tail(#[from] TailError),
    #[error(transparent)]
    Kinesis(#[from] KinesisError),
    #[error(transparent)]
    Sqs(#[from] SqsError),
}

impl Feed {
    /// Reads what is new; `finish` asks a one-shot run to complete its work (the tail's
    /// re-scans) before saying it has caught up.
    pub async fn poll(&mut self, now: Millis, finish: bool) -> Result<FeedBatch, FeedError> {
        match self {
            Feed::Tail(t) => {
                let b = t.poll(now, finish).await?;
                let records = b
                    .events
                    .into_iter()
                    .map(|e| Delivered {
                        origin: format!(
                            "log group {}, stream {}, log event {}",
                            e.group, e.stream, e.cwl_id
                        ),
                        text: e.message,
                    })
                    .collect();
                Ok(FeedBatch {
                    records,
                    caught_up: b.caught_up,
                })
            }
            Feed::Kinesis(k) => {
                let b = k.poll(now).await?;
                Ok(FeedBatch {
                    records: b.records,
                    caught_up: b.caught_up,
                })
            }
            Feed::Sqs(q) => {
                let b = q.poll(now).await?;
                Ok(FeedBatch {
                    records: b.records,
                    caught_up: b.caught_up,
                })
            }
        }
    }

    /// Read work a checkpoint must cover before the source lets it go (SQS messages to
    /// delete).
    pub fn has_pending(&self) -> bool {
        match self {
            Feed::Sqs(q) => q.has_pending(),
            _ => false,
        }
    }

    /// Whether a checkpoint is due now for the source's sake (SQS messages waiting for
    /// deletion must go before their visibility timeout ends).
    pub fn must_commit(&self, now: Millis) -> bool {
        match self {
            Feed::Sqs(q) => q.must_commit(now),
            _ => false,
        }
    }

    /// After a checkpoint: lets go of what it covers (deletes SQS messages).
    pub async fn commit(&mut self) -> Result<(), FeedError> {
        if let Feed::Sqs(q) = self {
            q.commit().await?;
        }
        Ok(())
    }

    /// The position the checkpoint saves.
    pub fn state(&self) -> SourceState<'_> {
        match self {
            Feed::Tail(t) => SourceState::Tail {
                positions: &t.positions,
                seen: &t.seen,
            },
            Feed::Kinesis(k) => SourceState::Kinesis(k.position(), &k.seen),
            Feed::Sqs(q) => SourceState::Sqs(&q.processed),
        }
    }

    /// How long after an event the source can still deliver it, beyond the engine's allowed
    /// lateness: when caught up, the watermark follows the wall clock minus this too. The tail
    /// and the stream see an event when CloudWatch Logs ingests it; CloudTrail writes its S3
    /// files about every 5 minutes (and up to 15 minutes after the calls), so with SQS the
    /// clock is held back that much more.
    pub fn delivery_delay(&self) -> Millis {
        match self {
            Feed::Tail(_) | Feed::Kinesis(_) => 0,
            Feed::Sqs(_) => 15 * 60_000,
        }
    }

    /// Work a one-shot run must still finish once caught up (the tail's re-scans).
    pub fn unfinished(&self) -> bool {
        match self {
            Feed::Tail(t) => t.rescanning(),
            Feed::Kinesis(_) | Feed::Sqs(_) => false,
        }
    }

    /// Per watched source (each log group of the tail; the stream; the queue), the wall time
    /// its last event arrived, for the silence rule.
    pub fn last_event_wall(&self) -> &[Millis] {
        match self {
            Feed::Tail(t) => &t.last_event_wall,
            Feed::Kinesis(k) => std::slice::from_ref(&k.last_record_wall),
            Feed::Sqs(q) => std::slice::from_ref(&q.last_record_wall),
        }
    }

    /// Copies the source's counters into the metrics.
    pub fn record_metrics(&self, m: &Metrics) {
        let set = |a: &std::sync::atomic::AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        match self {
            Feed::Tail(t) => {
                set(&m.tail_requests, t.stats.requests);
                set(&m.tail_throttled, t.stats.throttled);
                set(&m.tail_duplicates, t.stats.duplicates);
                set(&m.found_by_rescan, t.stats.found_by_rescan);
                set(&m.seen_ids, t.seen.len() as u64);
            }
            Feed::Kinesis(k) => {
                set(&m.kinesis_requests, k.stats.requests);
                set(&m.kinesis_throttled, k.stats.throttled);
                set(&m.kinesis_records, k.stats.records);
                set(&m.kinesis_undecodable, k.stats.undecodable);
                set(&m.kinesis_open_shards, k.stats.open_shards as u64);
                set(&m.seen_ids, k.seen.len() as u64);
                set(&m.kinesis_behind_ms, k.stats.behind_ms.max(0) as u64);
            }
            Feed::Sqs(q) => {
                set(&m.sqs_messages, q.stats.messages);
                set(&m.sqs_deleted, q.stats.deleted);
                set(&m.sqs_failed, q.stats.failed);
                set(&m.sqs_queue_depth, q.stats.queue_depth);
                set(&m.s3_objects, q.stats.objects);
                set(&m.s3_bytes, q.stats.bytes);
                set(&m.seen_ids, q.processed.len() as u64);
            }
        }
    }
}
