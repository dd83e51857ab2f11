//! S3 event notifications in SQS: each new CloudTrail object the trail writes to its bucket is
//! announced on a queue (S3 → SQS, S3 → SNS → SQS, EventBridge → SQS, or the trail's own SNS
//! notification → SQS); the object is fetched and its records are handed to the engine.
//!
//! A message is deleted only once a checkpoint covers its objects, that is once their findings
//! are in the outbox; the objects read are remembered (in the checkpoint) for a day, so a
//! message delivered again after a crash, or twice by S3, is not read twice. A message that
//! keeps failing (an object that cannot be read, a body that is not a notification) is not
//! deleted: the queue's redrive policy moves it to its dead-letter queue after
//! `maxReceiveCount` receives. While objects are fetched, the visibility timeout of their
//! messages is extended so that slow reads are not handed to another consumer.

use super::Delivered;
use super::cloudwatch::{SeenSet, id_key};
use super::s3::{S3Error, get_object};
use crate::event::decode::{self, Shape};
use crate::util::aws::{AwsError, AwsErrorClass, Backoff, Stop};
use crate::util::time::Millis;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SqsError {
    /// An error retrying cannot fix (no such queue, no permission).
    #[error(transparent)]
    Fatal(Box<AwsError>),
}

/// Settings of the queue reader.
#[derive(Debug, Clone)]
pub struct SqsConfig {
    pub queue_url: String,
    /// Objects fetched at once.
    pub concurrency: usize,
    /// Long polling: how long a receive waits for messages (at most 20 s).
    pub wait: Duration,
    /// Objects read are remembered this long (wall time): a notification delivered again
    /// within it is not read twice.
    pub remember: Millis,
}

impl Default for SqsConfig {
    fn default() -> Self {
        SqsConfig {
            queue_url: String::new(),
            concurrency: 8,
            wait: Duration::from_secs(1),
            remember: 24 * 3_600_000,
        }
    }
}

/// A CloudTrail object a notification announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
}

impl ObjectRef {
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// What a message announces.
#[derive(Debug, PartialEq, Eq)]
pub enum Notification {
    /// New objects to read.
    Objects(Vec<ObjectRef>),
    /// Nothing to read (an S3 test event, a removal, digest files only): deleted.
    Nothing(&'static str),
}

/// Reads a message body in any of the shapes that announce new S3 objects.
pub fn parse_notification(body: &str) -> Result<Notification, String> {
    let v: Value = serde_json::from_str(body)
        .map_err(|e| format!("not JSON ({e}): not an S3 notification"))?;
    parse_value(&v, 0)
}

fn parse_value(v: &Value, depth: u8) -> Result<Notification, String> {
    let s = |v: &Value| v.as_str().map(str::to_string);
    // S3 → SNS → SQS (without raw delivery): the SNS envelope holds the notification.
    if v["Type"] == "Notification"
        && let Some(inner) = v["Message"].as_str()
        && depth == 0
    {
        let inner: Value = serde_json::from_str(inner)
            .map_err(|e| format!("SNS message is not JSON ({e}): not an S3 notification"))?;
        return parse_value(&inner, 1);
    }
    if v["Event"] == "s3:TestEvent" {
        return Ok(Notification::Nothing("S3 test event"));
    }
    let mut objects = Vec::new();
    if let Some(records) = v["Records"].as_array() {
        // S3 → SQS (or SNS with raw delivery)
        for r in records {
            if r["eventSource"] != "aws:s3" {
                return Err("`Records` that are not S3 events".into());
            }
            let created = r["eventName"]
                .as_str()
                .is_some_and(|n| n.starts_with("ObjectCreated"));
            let (Some(bucket), Some(key)) =
                (s(&r["s3"]["bucket"]["name"]), s(&r["s3"]["object"]["key"]))
            else {
                return Err("an S3 event without bucket name or object key".into());
            };
            if created {
                // Keys in S3 notifications are URL-encoded (a space as `+`).
                objects.push(ObjectRef {
                    bucket,
                    key: url_decode(&key),
                });
            }
        }
    } else if v["source"] == "aws.s3" {
        // EventBridge → SQS
        if v["detail-type"] == "Object Created" {
            let d = &v["detail"];
            let (Some(bucket), Some(key)) = (s(&d["bucket"]["name"]), s(&d["object"]["key"]))
            else {
                return Err("an EventBridge S3 event without bucket name or object key".into());
            };
            objects.push(ObjectRef { bucket, key });
        }
    } else if let (Some(bucket), Some(keys)) = (s(&v["s3Bucket"]), v["s3ObjectKey"].as_array()) {
        // The trail's own SNS notification of delivered files.
        for k in keys {
            if let Some(key) = s(k) {
                objects.push(ObjectRef {
                    bucket: bucket.clone(),
                    key,
                });
            }
        }
    } else {
        return Err("not an S3 notification (S3, SNS, EventBridge or CloudTrail shape)".into());
    }
    let before = objects.len();
    objects.retain(|o| !o.key.contains("CloudTrail-Digest/"));
    Ok(match (objects.is_empty(), before) {
        (false, _) => Notification::Objects(objects),
        (true, 0) => Notification::Nothing("no object created"),
        (true, _) => Notification::Nothing("digest files only"),
    })
}

/// `%XX` escapes and `+` (a space) decoded; anything malformed kept as it is.
fn url_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

/// Counters of the reader (for metrics and the log).
#[derive(Debug, Clone, Default)]
pub struct SqsStats {
    pub messages: u64,
    pub deleted: u64,
    /// Messages left in the queue after a failure (they come back, or go to the dead-letter
    /// queue).
    pub failed: u64,
    /// Messages with nothing to read (test events, removals, digests).
    pub nothing: u64,
    pub objects: u64,
    pub bytes: u64,
    /// Objects announced again after they were read (not read twice).
    pub already_read: u64,
    /// CloudTrail events delivered in two files (read once).
    pub duplicate_events: u64,
    /// Visibility extensions asked for.
    pub extended: u64,
    /// `ApproximateNumberOfMessages` of the queue, when last asked.
    pub queue_depth: u64,
    pub throttled: u64,
}

/// A message whose objects are read: deleted once a checkpoint covers them.
struct Pending {
    receipt: String,
    /// Wall time it was received.
    received: Millis,
}

/// Reads one queue.
pub struct Sqs {
    sqs: aws_sdk_sqs::Client,
    s3: aws_sdk_s3::Client,
    cfg: SqsConfig,
    stop: Stop,
    /// Objects read (keys of `s3://bucket/key`), with the wall time they were read.
    pub processed: SeenSet,
    /// CloudTrail event ids read in the last [`EVENT_WINDOW`].
    events: SeenSet,
    pending: Vec<Pending>,
    /// The queue's visibility timeout (s), read from its attributes.
    visibility_s: i32,
    attributes_at: Option<Millis>,
    backoff: Backoff,
    not_before: Millis,
    pub stats: SqsStats,
    /// Wall time records last arrived (for the silence rule).
    pub last_record_wall: Millis,
}

/// What one poll read.
#[derive(Debug, Default)]
pub struct SqsBatch {
    pub records: Vec<Delivered>,
    /// The queue had nothing more.
    pub caught_up: bool,
}

/// At most this many objects are remembered as read.
const PROCESSED_CAP: usize = 2_000_000;
/// CloudTrail event ids are remembered this long (wall time) to drop a record delivered in two
/// files, and at most this many.
const EVENT_WINDOW: Millis = 15 * 60_000;
const EVENTS_CAP: usize = 5_000_000;
/// Messages waiting for a checkpoint before they are deleted, at most (more wait in the queue).
const PENDING_CAP: usize = 10_000;

impl Sqs {
    pub fn new(
        sqs: aws_sdk_sqs::Client,
        s3: aws_sdk_s3::Client,
        cfg: SqsConfig,
        processed: SeenSet,
        stop: Stop,
    ) -> Sqs {
        Sqs {
            sqs,
            s3,
            cfg,
            stop,
            processed,
            events: SeenSet::default(),
            pending: Vec::new(),
            visibility_s: 30,
            attributes_at: None,
            backoff: Backoff::default(),
            not_before: 0,
            stats: SqsStats::default(),
            last_record_wall: 0,
        }
    }

    /// Counts silence from `now` (the start of the run).
    pub fn since(mut self, now: Millis) -> Self {
        self.last_record_wall = now;
        self
    }

    fn fatal(&self, e: AwsError) -> SqsError {
        SqsError::Fatal(Box::new(e.on("queue", self.cfg.queue_url.clone())))
    }

    /// Messages read and waiting for a checkpoint before they are deleted.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// A message waiting for deletion has used a third of its visibility timeout (at most
    /// 10 s): the checkpoint that lets it be deleted is due now, before the message becomes
    /// visible again (and another instance reads it).
    pub fn must_commit(&self, now: Millis) -> bool {
        let limit = (Millis::from(self.visibility_s) * 1000 / 3).min(10_000);
        self.pending
            .first()
            .is_some_and(|p| now - p.received >= limit)
    }

    /// The queue's depth and visibility timeout, every 30 s.
    async fn refresh_attributes(&mut self, now: Millis) -> Result<(), SqsError> {
        if self.attributes_at.is_some_and(|t| now - t < 30_000) {
            return Ok(());
        }
        self.attributes_at = Some(now);
        let req = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.cfg.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::VisibilityTimeout);
        let out = tokio::select! {
            r = req.send() => r,
            _ = self.stop.wait() => return Ok(()),
        };
        match out {
            Ok(o) => {
                if let Some(a) = o.attributes() {
                    let get = |k: QueueAttributeName| a.get(&k).and_then(|v| v.parse::<i64>().ok());
                    if let Some(n) = get(QueueAttributeName::ApproximateNumberOfMessages) {
                        self.stats.queue_depth = n.max(0) as u64;
                    }
                    if let Some(v) = get(QueueAttributeName::VisibilityTimeout) {
                        self.visibility_s = v.clamp(1, 43_200) as i32;
                    }
                }
                Ok(())
            }
            Err(e) => {
                let e = AwsError::from_sdk(&e, "sqs:GetQueueAttributes");
                if e.class == AwsErrorClass::Transient {
                    self.stats.throttled += 1;
                    Ok(())
                } else {
                    Err(self.fatal(e))
                }
            }
        }
    }

    /// Receives up to ten messages, fetches the objects they announce (a bounded number at
    /// once, extending the messages' visibility while that takes time) and returns their
    /// records.
    pub async fn poll(&mut self, now: Millis) -> Result<SqsBatch, SqsError> {
        self.refresh_attributes(now).await?;
        if now < self.not_before {
            // Backing off: wait here rather than letting the caller spin.
            let wait = Duration::from_millis((self.not_before - now) as u64);
            self.stop.sleep(wait).await;
            return Ok(SqsBatch::default());
        }
        let req = self
            .sqs
            .receive_message()
            .queue_url(&self.cfg.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(self.cfg.wait.as_secs().clamp(0, 20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount);
        let out = tokio::select! {
            r = req.send() => r,
            _ = self.stop.wait() => return Ok(SqsBatch::default()),
        };
        let out = match out {
            Ok(o) => {
                self.backoff.reset();
                o
            }
            Err(e) => {
                let e = AwsError::from_sdk(&e, "sqs:ReceiveMessage");
                if e.class == AwsErrorClass::Transient {
                    self.stats.throttled += 1;
                    let wait = self.backoff.failed(1_000, 60_000);
                    self.not_before = now + wait;
                    tracing::warn!(
                        "{}",
                        crate::util::aws::followed_by(
                            &e,
                            &format!("retrying in {} s", wait / 1000)
                        )
                    );
                    return Ok(SqsBatch::default());
                }
                return Err(self.fatal(e));
            }
        };
        let messages = out.messages();
        let mut batch = SqsBatch {
            caught_up: messages.is_empty(),
            ..SqsBatch::default()
        };
        // Per message: its objects still to read (index into `jobs`), or why it failed.
        struct Job {
            message: usize,
            object: ObjectRef,
        }
        let mut jobs: Vec<Job> = Vec::new();
        let mut failed = vec![false; messages.len()];
        let mut this_batch = std::collections::HashSet::new();
        for (i, m) in messages.iter().enumerate() {
            self.stats.messages += 1;
            let id = m.message_id().unwrap_or("?");
            match parse_notification(m.body().unwrap_or("")) {
                Ok(Notification::Nothing(why)) => {
                    self.stats.nothing += 1;
                    tracing::debug!("queue message {id}: {why}, nothing to read");
                }
                Ok(Notification::Objects(objects)) => {
                    for o in objects {
                        // Read before, or announced twice in this batch (an S3 notification
                        // and the trail's own for the same file).
                        let key = id_key(&o.url());
                        if self.processed.contains(key) || !this_batch.insert(key) {
                            self.stats.already_read += 1;
                            continue;
                        }
                        jobs.push(Job {
                            message: i,
                            object: o,
                        });
                    }
                }
                Err(why) => {
                    failed[i] = true;
                    self.left_in_queue(m, &why);
                }
            }
        }
        // Fetch, `concurrency` at once, extending visibility at half the timeout.
        let mut set = tokio::task::JoinSet::new();
        let mut next = 0usize;
        let mut results: Vec<Option<Result<Vec<u8>, S3Error>>> =
            (0..jobs.len()).map(|_| None).collect();
        let half = Duration::from_secs((self.visibility_s as u64 / 2).max(1));
        let mut extend_at = tokio::time::Instant::now() + half;
        loop {
            while next < jobs.len() && set.len() < self.cfg.concurrency.max(1) {
                let (client, o, stop) = (
                    self.s3.clone(),
                    jobs[next].object.clone(),
                    self.stop.clone(),
                );
                let i = next;
                set.spawn(async move { (i, get_object(&client, &o.bucket, &o.key, &stop).await) });
                next += 1;
            }
            if set.is_empty() {
                break;
            }
            tokio::select! {
                done = set.join_next() => {
                    if let Some(Ok((i, r))) = done {
                        results[i] = Some(r);
                    }
                }
                _ = tokio::time::sleep_until(extend_at) => {
                    self.extend(messages).await;
                    extend_at = tokio::time::Instant::now() + half;
                }
            }
        }
        for (job, result) in jobs.iter().zip(results) {
            let url = job.object.url();
            match result {
                Some(Ok(bytes)) => {
                    self.stats.objects += 1;
                    self.stats.bytes += bytes.len() as u64;
                    match self.records_of(&url, &bytes, now, &mut batch.records) {
                        Ok(()) => {
                            self.processed.insert(id_key(&url), now, PROCESSED_CAP);
                        }
                        Err(why) => {
                            // Damaged or truncated: left for a retry, then the dead-letter
                            // queue, rather than lost.
                            failed[job.message] = true;
                            let m = &messages[job.message];
                            self.left_in_queue(m, &format!("{url}: {why}"));
                        }
                    }
                }
                Some(Err(S3Error::Get { error, .. })) if error.code() == Some("NoSuchKey") => {
                    // Gone (deleted or expired since the notification): nothing will ever be
                    // read from it; the message is deleted.
                    tracing::warn!("{url}: {error}; skipped (the object no longer exists)");
                }
                Some(Err(S3Error::Stopped { .. })) => failed[job.message] = true,
                Some(Err(e)) => {
                    failed[job.message] = true;
                    let m = &messages[job.message];
                    self.left_in_queue(m, &e.to_string());
                }
                None => failed[job.message] = true,
            }
        }
        for (i, m) in messages.iter().enumerate() {
            if !failed[i]
                && let Some(r) = m.receipt_handle()
            {
                self.pending.push(Pending {
                    receipt: r.to_string(),
                    received: now,
                });
            }
        }
        if self.pending.len() > PENDING_CAP {
            // Deletes keep failing: the oldest are let go (they come back and are skipped as
            // read) rather than held without bound.
            let extra = self.pending.len() - PENDING_CAP;
            self.pending.drain(..extra);
        }
        self.processed.evict_before(now - self.cfg.remember);
        if !batch.records.is_empty() {
            self.last_record_wall = now;
        }
        Ok(batch)
    }

    /// The records of one object, each CloudTrail event once (a record CloudTrail delivered
    /// in two files, seen within the de-duplication window, is dropped). An object that is not
    /// CloudTrail is skipped (`Ok`, nothing); one that cannot be decoded is an error.
    fn records_of(
        &mut self,
        url: &str,
        bytes: &[u8],
        now: Millis,
        out: &mut Vec<Delivered>,
    ) -> Result<(), String> {
        let d = decode::decode_owned(bytes).map_err(|e| e.to_string())?;
        if matches!(
            d.shape,
            Shape::NotCloudTrail | Shape::Digest | Shape::CwlControl
        ) {
            tracing::warn!("{url}: not CloudTrail records; skipped");
            return Ok(());
        }
        for issue in d.issues {
            tracing::warn!("{url}: {}: {}", issue.loc, issue.message);
        }
        self.events.evict_before(now - EVENT_WINDOW);
        self.stats.duplicate_events +=
            super::deliver_unseen(d.records, url, &mut self.events, EVENTS_CAP, now, out);
        Ok(())
    }

    /// A message that failed stays in the queue: it comes back after its visibility timeout,
    /// and the queue's redrive policy moves it to the dead-letter queue in the end.
    fn left_in_queue(&mut self, m: &aws_sdk_sqs::types::Message, why: &str) {
        self.stats.failed += 1;
        let receives = m
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .map_or("?", String::as_str);
        tracing::warn!(
            queue_message = m.message_id().unwrap_or("?"),
            "queue message {} (received {receives} times): {why}; left in the queue (it comes \
             back after the visibility timeout; the queue's redrive policy moves it to a \
             dead-letter queue)",
            m.message_id().unwrap_or("?"),
        );
    }

    /// Extends the visibility of the messages being worked on, and of those read before that
    /// still wait for their checkpoint.
    async fn extend(&mut self, messages: &[aws_sdk_sqs::types::Message]) {
        let receipts: Vec<String> = messages
            .iter()
            .filter_map(|m| m.receipt_handle().map(str::to_string))
            .chain(self.pending.iter().map(|p| p.receipt.clone()))
            .collect();
        for r in &receipts {
            self.stats.extended += 1;
            let req = self
                .sqs
                .change_message_visibility()
                .queue_url(&self.cfg.queue_url)
                .receipt_handle(r)
                .visibility_timeout(self.visibility_s);
            if let Err(e) = req.send().await {
                let e = AwsError::from_sdk(&e, "sqs:ChangeMessageVisibility");
                tracing::warn!(
                    "{}",
                    crate::util::aws::followed_by(
                        &e,
                        "the message may be read twice (its objects are remembered)"
                    )
                );
            }
        }
    }

    /// Deletes the messages whose objects a checkpoint now covers. A failure is logged and the
    /// message kept for the next call (a message that came back meanwhile is skipped as read).
    pub async fn commit(&mut self) -> Result<(), SqsError> {
        while !self.pending.is_empty() {
            let n = self.pending.len().min(10);
            let entries: Vec<DeleteMessageBatchRequestEntry> = self.pending[..n]
                .iter()
                .enumerate()
                .filter_map(|(i, p)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&p.receipt)
                        .build()
                        .ok()
                })
                .collect();
            let req = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.cfg.queue_url)
                .set_entries(Some(entries));
            match req.send().await {
                Ok(out) => {
                    for f in out.failed() {
                        tracing::warn!(
                            "queue message not deleted ({}: {}); it comes back and is skipped as read",
                            f.code(),
                            f.message().unwrap_or("")
                        );
                    }
                    self.stats.deleted += out.successful().len() as u64;
                    self.pending.drain(..n);
                }
                Err(e) => {
                    let e = AwsError::from_sdk(&e, "sqs:DeleteMessage");
                    if e.class != AwsErrorClass::Transient {
                        // Without deletes every message comes back until the dead-letter queue
                        // takes it: a setup error, not something to run with.
                        return Err(self.fatal(e));
                    }
                    tracing::warn!(
                        "{}",
                        crate::util::aws::followed_by(&e, "retrying at the next checkpoint")
                    );
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// Checks at start-up that the queue can be read; warns when it has no dead-letter queue.
pub async fn check_queue(client: &aws_sdk_sqs::Client, queue_url: &str) -> Result<(), AwsError> {
    let out = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(&e, "sqs:GetQueueAttributes").on("queue", queue_url))?;
    let redrive = out
        .attributes()
        .is_some_and(|a| a.contains_key(&QueueAttributeName::RedrivePolicy));
    if !redrive {
        tracing::warn!(
            "queue {queue_url} has no redrive policy: a message that keeps failing comes back \
             forever. Give it a dead-letter queue: aws sqs set-queue-attributes --queue-url \
             {queue_url} --attributes '{{\"RedrivePolicy\":\"{{\\\"deadLetterTargetArn\\\":\\\"<DLQ ARN>\\\",\\\"maxReceiveCount\\\":\\\"5\\\"}}\"}}'"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(body: &str) -> Vec<String> {
        match parse_notification(body).unwrap() {
            Notification::Objects(o) => o.iter().map(ObjectRef::url).collect(),
            Notification::Nothing(why) => vec![format!("nothing: {why}")],
        }
    }

    const KEY: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01/111122223333_CloudTrail_us-east-1_20240501T1205Z_abc.json.gz";

    #[test]
    fn every_notification_shape() {
        let s3 = serde_json::json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "trail"}, "object": {"key": KEY.replace('/', "%2F"), "size": 10}}}]})
        .to_string();
        let want = vec![format!("s3://trail/{KEY}")];
        assert_eq!(objects(&s3), want);
        let sns = serde_json::json!({"Type": "Notification", "Message": s3}).to_string();
        assert_eq!(objects(&sns), want);
        let eb =
            serde_json::json!({"version": "0", "source": "aws.s3", "detail-type": "Object Created",
            "detail": {"bucket": {"name": "trail"}, "object": {"key": KEY}}})
            .to_string();
        assert_eq!(objects(&eb), want);
        let ct = serde_json::json!({"s3Bucket": "trail", "s3ObjectKey": [KEY]}).to_string();
        assert_eq!(objects(&ct), want);
        let ct_sns = serde_json::json!({"Type": "Notification", "Message": ct}).to_string();
        assert_eq!(objects(&ct_sns), want);
    }

    #[test]
    fn test_events_removals_and_digests_have_nothing_to_read() {
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-01-01T00:00:00Z","Bucket":"trail"}"#;
        assert_eq!(objects(test), ["nothing: S3 test event"]);
        let removed = serde_json::json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete",
            "s3": {"bucket": {"name": "trail"}, "object": {"key": "k"}}}]})
        .to_string();
        assert_eq!(objects(&removed), ["nothing: no object created"]);
        let digest = serde_json::json!({"s3Bucket": "trail",
            "s3ObjectKey": ["AWSLogs/1/CloudTrail-Digest/us-east-1/2024/05/01/d.json.gz"]})
        .to_string();
        assert_eq!(objects(&digest), ["nothing: digest files only"]);
    }

    #[test]
    fn anything_else_is_an_error_naming_what_it_is_not() {
        for body in ["hello", "{}", r#"{"Records":[{"eventSource":"aws:sqs"}]}"#] {
            let e = parse_notification(body).unwrap_err();
            assert!(e.contains("S3"), "{body}: {e}");
        }
    }

    #[test]
    fn a_waiting_message_asks_for_its_checkpoint_before_its_visibility_runs_out() {
        let sqs_conf = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .build();
        let s3_conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .build();
        let mut q = Sqs::new(
            aws_sdk_sqs::Client::from_conf(sqs_conf),
            aws_sdk_s3::Client::from_conf(s3_conf),
            SqsConfig::default(),
            SeenSet::default(),
            Stop::new(),
        );
        let t0 = 1_700_000_000_000;
        assert!(!q.has_pending() && !q.must_commit(t0));
        q.pending.push(Pending {
            receipt: "r".into(),
            received: t0,
        });
        // 30 s visibility (the default): due after 10 s (a third, at most 10 s).
        assert!(q.has_pending());
        assert!(!q.must_commit(t0 + 9_999));
        assert!(q.must_commit(t0 + 10_000));
        // 6 s visibility: due after 2 s.
        q.visibility_s = 6;
        assert!(!q.must_commit(t0 + 1_999));
        assert!(q.must_commit(t0 + 2_000));
    }

    #[test]
    fn keys_are_url_decoded() {
        assert_eq!(url_decode("a+b%2Fc%3d"), "a b/c=");
        assert_eq!(url_decode("100%"), "100%");
        assert_eq!(url_decode("%zz"), "%zz");
    }
}
