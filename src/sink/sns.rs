//! Publishing to SNS: retry decisions as a pure function of the error, a dispatcher that
//! paces messages and folds bursts into digests, and the publisher that drains the outbox.
//!
//! SNS e-mail is limited to 10 messages per second per account, and a subscription that
//! exceeds it is deactivated. trailwatch therefore sends at most `per_minute` messages in any
//! rolling minute (default 10) and at most one per `min_interval` (default 1 s); when more
//! findings wait than the minute's budget allows, they go out together as a digest.

use crate::sink::message;
use crate::sink::outbox::{Entry, Outbox, OutboxError};
use crate::util::aws::{self, AwsError, AwsErrorClass, Backoff};
use crate::util::text::count;
use crate::util::time::Millis;
use std::collections::VecDeque;

/// What to do after a failed publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transient (throttling, 5xx, network): keep the message and try again later.
    Retry,
    /// The topic or permissions are wrong: keep the message, try again much later, say so.
    Topic,
    /// This message can never be accepted (invalid parameter): record it as failed.
    Message,
}

/// Classifies a publish error by its AWS error code and HTTP status (either may be absent:
/// a timeout or a refused connection has neither).
pub fn classify(code: Option<&str>, status: Option<u16>) -> Verdict {
    match aws::classify(code, status) {
        AwsErrorClass::Transient => Verdict::Retry,
        AwsErrorClass::Denied => Verdict::Topic,
        AwsErrorClass::Invalid => Verdict::Message,
    }
}

/// Pacing and burst settings.
#[derive(Debug, Clone)]
pub struct Pacing {
    /// Messages in any rolling minute; more waiting findings become a digest.
    pub per_minute: usize,
    /// Minimum time between two messages.
    pub min_interval: Millis,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            per_minute: 10,
            min_interval: 1_000,
        }
    }
}

/// The next step of the dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing waits.
    Idle,
    /// Wait until this wall-clock time.
    Wait(Millis),
    /// Publish the oldest waiting finding alone.
    Single,
    /// Publish the oldest `n` waiting findings as one digest.
    Digest(usize),
}

/// Decides when to send and whether to fold; pure (wall-clock time is passed in).
#[derive(Debug, Default)]
pub struct Dispatcher {
    pacing: Pacing,
    sent: VecDeque<Millis>,
    retry_at: Option<Millis>,
    backoff: Backoff,
}

impl Dispatcher {
    pub fn new(pacing: Pacing) -> Self {
        Dispatcher {
            pacing,
            ..Dispatcher::default()
        }
    }

    pub fn next(&mut self, now: Millis, waiting: usize) -> Step {
        if waiting == 0 {
            return Step::Idle;
        }
        if let Some(t) = self.retry_at.filter(|t| *t > now) {
            return Step::Wait(t);
        }
        while self.sent.front().is_some_and(|t| *t <= now - 60_000) {
            self.sent.pop_front();
        }
        let per_minute = self.pacing.per_minute.max(1);
        if self.sent.len() >= per_minute {
            return Step::Wait(self.sent.front().map_or(now, |t| t + 60_000));
        }
        if let Some(last) = self.sent.back()
            && last + self.pacing.min_interval > now
        {
            return Step::Wait(last + self.pacing.min_interval);
        }
        let budget = per_minute - self.sent.len();
        // More waiting than singles could send within 10 s (at `min_interval`): findings
        // arrive faster than messages may go, so fold them — a generous per-minute budget
        // must not turn into an ever-growing queue of singles.
        let horizon = (10_000 / self.pacing.min_interval.max(1)).max(1) as usize;
        if waiting > budget || waiting > horizon || (waiting > 1 && budget == 1) {
            Step::Digest(waiting.min(message::MAX_DIGEST_FINDINGS))
        } else {
            Step::Single
        }
    }

    /// A message went out.
    pub fn sent(&mut self, now: Millis) {
        self.sent.push_back(now);
        self.backoff.reset();
        self.retry_at = None;
    }

    /// A publish failed; the next attempt waits with exponential backoff (1 s … 60 s for
    /// transient errors, 60 s … 10 min for topic errors).
    pub fn failed(&mut self, now: Millis, verdict: Verdict) -> Millis {
        let (base, cap) = match verdict {
            Verdict::Topic => (60_000, 600_000),
            _ => (1_000, 60_000),
        };
        let delay = self.backoff.failed(base, cap);
        self.retry_at = Some(now + delay);
        delay
    }
}

/// A publish error with its classification; `message` is the shared wording of AWS errors
/// ([`AwsError`]).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PublishError {
    pub verdict: Verdict,
    pub message: String,
}

/// Something that publishes `(subject, MessageStructure=json message)` and returns the SNS
/// message id. The real one is [`Sns`].
#[allow(async_fn_in_trait)]
pub trait Publish {
    async fn publish(&self, subject: &str, message: &str) -> Result<String, PublishError>;
}

/// An SNS topic through the AWS SDK.
#[derive(Clone)]
pub struct Sns {
    pub client: aws_sdk_sns::Client,
    pub topic_arn: String,
}

impl Sns {
    /// An error of the call `action` on this topic, read by the shared AWS error reading.
    fn error<E>(
        &self,
        e: &aws_sdk_sns::error::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
        action: &'static str,
    ) -> AwsError
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let region = self.client.config().region().map(|r| r.to_string());
        AwsError::from_sdk(e, action)
            .on("topic", &self.topic_arn)
            .in_region(region.as_deref())
    }

    /// The start-up check of the topic: GetTopicAttributes. The service needs only
    /// `sns:Publish`, so a refusal of this call (`AuthorizationError`) proves nothing: the topic
    /// counts as not checked (a debug line says so). A topic that does not exist, refused
    /// credentials or an invalid ARN are errors.
    pub async fn check(&self) -> Result<(), AwsError> {
        let Err(e) = self
            .client
            .get_topic_attributes()
            .topic_arn(&self.topic_arn)
            .send()
            .await
        else {
            return Ok(());
        };
        let err = self.error(&e, "sns:GetTopicAttributes");
        match err.code() {
            Some("AuthorizationError" | "AccessDenied" | "AccessDeniedException") => {
                tracing::debug!(
                    "topic {}: not checked at start-up (this identity may not call \
                     sns:GetTopicAttributes; the service needs only sns:Publish)",
                    self.topic_arn
                );
                Ok(())
            }
            _ => Err(err),
        }
    }
}

impl Publish for Sns {
    async fn publish(&self, subject: &str, message: &str) -> Result<String, PublishError> {
        let r = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject)
            .message(message)
            .message_structure("json")
            .send()
            .await;
        match r {
            Ok(out) => Ok(out.message_id().unwrap_or_default().to_string()),
            Err(e) => {
                let err = self.error(&e, "sns:Publish");
                let verdict = match err.class {
                    AwsErrorClass::Transient => Verdict::Retry,
                    AwsErrorClass::Denied => Verdict::Topic,
                    AwsErrorClass::Invalid => Verdict::Message,
                };
                Err(PublishError {
                    verdict,
                    message: err.to_string(),
                })
            }
        }
    }
}

/// What one drain of the outbox did.
#[derive(Debug, Default, Clone)]
pub struct Drained {
    pub messages: u64,
    pub findings: u64,
    pub digests: u64,
    pub failed: u64,
    pub errors: Vec<String>,
}

/// Publishes waiting findings as pacing allows, recording each delivery in the outbox; returns
/// when nothing more may be sent now (the caller polls again later).
pub async fn drain<P: Publish>(
    publisher: &P,
    outbox: &mut Outbox,
    dispatcher: &mut Dispatcher,
    now: impl Fn() -> Millis,
) -> Result<Drained, OutboxError> {
    let mut d = Drained::default();
    loop {
        let t = now();
        match dispatcher.next(t, outbox.pending().len()) {
            Step::Idle | Step::Wait(_) => return Ok(d),
            Step::Single => {
                let Some(e) = outbox.pending().front().cloned() else {
                    return Ok(d);
                };
                let (subject, msg) = message::single(&e.finding, &e.rule);
                match publisher.publish(&subject, &msg).await {
                    Ok(id) => {
                        dispatcher.sent(now());
                        outbox.delivered(&[e.seq], &id, now())?;
                        d.messages += 1;
                        d.findings += 1;
                    }
                    Err(err) => {
                        if !handle_error(&err, &[&e], outbox, dispatcher, &mut d, now())? {
                            return Ok(d);
                        }
                    }
                }
            }
            Step::Digest(n) => {
                let batch: Vec<Entry> = outbox.pending().iter().take(n).cloned().collect();
                let findings: Vec<&serde_json::Value> = batch.iter().map(|e| &e.finding).collect();
                // Usually one message; more when the findings do not fit in one.
                let parts = message::digests(&findings);
                let mut offset = 0usize;
                for (i, (subject, msg)) in parts.into_iter().enumerate() {
                    // Pacing applies between the parts of a split digest too.
                    if i > 0 && dispatcher.next(now(), 1) != Step::Single {
                        return Ok(d);
                    }
                    let count = digest_count(&msg);
                    let entries: Vec<&Entry> = batch.iter().skip(offset).take(count).collect();
                    offset += count;
                    match publisher.publish(&subject, &msg).await {
                        Ok(id) => {
                            dispatcher.sent(now());
                            let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
                            outbox.delivered(&seqs, &id, now())?;
                            d.messages += 1;
                            d.digests += 1;
                            d.findings += seqs.len() as u64;
                        }
                        Err(err) => {
                            if !handle_error(&err, &entries, outbox, dispatcher, &mut d, now())? {
                                return Ok(d);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The number of findings in a digest message (from its `default` body).
fn digest_count(msg: &str) -> usize {
    serde_json::from_str::<serde_json::Value>(msg)
        .ok()
        .and_then(|v| {
            v.get("default")
                .and_then(|d| d.as_str())
                .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        })
        .and_then(|d| d.get("count").and_then(serde_json::Value::as_u64))
        .unwrap_or(1) as usize
}

/// Records a failed publish; returns whether draining may go on now.
fn handle_error(
    err: &PublishError,
    entries: &[&Entry],
    outbox: &mut Outbox,
    dispatcher: &mut Dispatcher,
    d: &mut Drained,
    now: Millis,
) -> Result<bool, OutboxError> {
    match err.verdict {
        Verdict::Message => {
            for e in entries {
                outbox.failed(e.seq, &err.message, now)?;
                d.failed += 1;
            }
            d.errors.push(format!(
                "SNS refused {} {} for good (kept in the outbox as failed): {}",
                if entries.len() == 1 {
                    "finding"
                } else {
                    "findings"
                },
                entries
                    .iter()
                    .map(|e| e.id())
                    .collect::<Vec<_>>()
                    .join(", "),
                err.message
            ));
            Ok(true)
        }
        v => {
            let delay = dispatcher.failed(now, v);
            let waiting = outbox.pending().len();
            d.errors.push(aws::followed_by(
                err,
                &format!(
                    "{} in the outbox, next attempt in {}",
                    wait_in_outbox(waiting),
                    crate::util::time::format_duration(delay)
                ),
            ));
            Ok(false)
        }
    }
}

/// `1 finding waits`, `2 findings wait`: the findings waiting in the outbox, in a sentence.
pub fn wait_in_outbox(n: usize) -> String {
    format!(
        "{} {}",
        count(n as u64, "finding"),
        if n == 1 { "waits" } else { "wait" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(classify(Some("Throttling"), Some(400)), Verdict::Retry);
        assert_eq!(classify(Some("KMSThrottling"), Some(400)), Verdict::Retry);
        assert_eq!(classify(Some("InternalError"), Some(500)), Verdict::Retry);
        assert_eq!(classify(None, Some(503)), Verdict::Retry);
        assert_eq!(classify(None, None), Verdict::Retry);
        assert_eq!(classify(Some("NotFound"), Some(404)), Verdict::Topic);
        assert_eq!(
            classify(Some("AuthorizationError"), Some(403)),
            Verdict::Topic
        );
        assert_eq!(
            classify(Some("InvalidParameter"), Some(400)),
            Verdict::Message
        );
        assert_eq!(
            classify(Some("InvalidParameterValue"), Some(400)),
            Verdict::Message
        );
    }

    #[test]
    fn pacing_singles_then_digest() {
        let mut d = Dispatcher::new(Pacing {
            per_minute: 3,
            min_interval: 1_000,
        });
        assert_eq!(d.next(0, 0), Step::Idle);
        assert_eq!(d.next(0, 1), Step::Single);
        d.sent(0);
        assert_eq!(d.next(500, 1), Step::Wait(1_000));
        assert_eq!(d.next(1_000, 1), Step::Single);
        d.sent(1_000);
        // Budget 1 left, 5 waiting: one digest.
        assert_eq!(d.next(2_000, 5), Step::Digest(5));
        d.sent(2_000);
        // Budget spent: wait for the first message to leave the rolling minute.
        assert_eq!(d.next(3_000, 4), Step::Wait(60_000));
        assert_eq!(d.next(60_000, 4), Step::Digest(4));
    }

    #[test]
    fn burst_beyond_budget_is_folded() {
        let mut d = Dispatcher::new(Pacing::default());
        assert_eq!(d.next(0, 500), Step::Digest(100));
        assert_eq!(d.next(0, 10), Step::Single);
        assert_eq!(d.next(0, 11), Step::Digest(11));
    }

    #[test]
    fn findings_arriving_faster_than_singles_may_go_are_folded() {
        // A generous budget (600 a minute) but one message a second: 2 findings a second
        // would queue forever as singles; beyond 10 s worth of singles they become a digest.
        let mut d = Dispatcher::new(Pacing {
            per_minute: 600,
            min_interval: 1_000,
        });
        assert_eq!(d.next(0, 10), Step::Single);
        assert_eq!(d.next(0, 11), Step::Digest(11));
        let mut waiting = 0;
        let mut longest = 0;
        for sec in 0..120i64 {
            waiting += 2;
            longest = longest.max(waiting);
            match d.next(sec * 1_000, waiting) {
                Step::Single => waiting -= 1,
                Step::Digest(n) => waiting -= n,
                other => panic!("{other:?} at {sec}"),
            }
            d.sent(sec * 1_000);
        }
        assert!(longest <= 12, "the queue stays short: {longest}");
    }

    #[test]
    fn backoff_grows_and_resets() {
        let mut d = Dispatcher::new(Pacing::default());
        assert_eq!(d.failed(0, Verdict::Retry), 1_000);
        assert_eq!(d.next(500, 1), Step::Wait(1_000));
        assert_eq!(d.failed(1_000, Verdict::Retry), 2_000);
        assert_eq!(d.failed(3_000, Verdict::Retry), 4_000);
        for _ in 0..20 {
            d.failed(0, Verdict::Retry);
        }
        assert_eq!(d.failed(0, Verdict::Retry), 60_000);
        d.sent(100_000);
        assert_eq!(d.failed(100_000, Verdict::Topic), 60_000);
    }
}
