//! A Kinesis data stream fed by a CloudWatch Logs subscription filter on the trail's log
//! group: every event is pushed once, when it is ingested (late or not), so nothing needs
//! re-reading, and shards scale the throughput past FilterLogEvents' quota.
//!
//! Each Kinesis record is a gzip CloudWatch Logs payload (`DATA_MESSAGE` with log events, or a
//! `CONTROL_MESSAGE` that is skipped). Every shard is read, one `GetRecords` per shard and
//! poll (at most five a second: the per-shard quota); shards that appear on resharding are
//! found by listing the shards again, and a child shard is read only after its parents are
//! read to their end, so a principal's events keep their order across a split or a merge.
//!
//! The position of each shard (after the last record handed over) is kept by the caller in
//! its checkpoint, written once the findings of those records are in the outbox: after a
//! crash, reading resumes after the last record whose findings are safe.

use super::Delivered;
use super::cloudwatch::SeenSet;
use crate::event::decode::{self, Shape};
use crate::util::aws::{AwsError, AwsErrorClass, Backoff, Stop};
use crate::util::time::Millis;
use aws_sdk_kinesis::types::ShardIteratorType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum KinesisError {
    /// An error retrying cannot fix (no such stream, no permission).
    #[error(transparent)]
    Fatal(Box<AwsError>),
}

/// Settings of the stream reader.
#[derive(Debug, Clone)]
pub struct KinesisConfig {
    /// The stream's name or ARN.
    pub stream: String,
    /// How often the shards are listed again, to find those created by resharding (also
    /// whenever a shard is read to its end).
    pub list_every: Millis,
    /// Records asked for per `GetRecords` (at most 10,000; each a CloudWatch Logs payload).
    pub limit: i32,
    /// CloudTrail event ids are remembered this long (wall time) to drop a record delivered
    /// twice (the subscription delivers at least once).
    pub dedup_window: Millis,
}

impl Default for KinesisConfig {
    fn default() -> Self {
        KinesisConfig {
            stream: String::new(),
            list_every: 60_000,
            // A payload holds up to 1 MB of log events once inflated: 25 bound a read's memory;
            // at five reads a second that is 125 payloads per second per shard, more than the
            // shard's 2 MB/s of compressed payloads carry.
            limit: 25,
            dedup_window: 15 * 60_000,
        }
    }
}

/// Where reading a shard goes on from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ShardStart {
    /// After this sequence number: the last record handed over.
    After(String),
    /// Records that arrived at or after this time (ms).
    ArrivedAt(Millis),
    /// The oldest record the stream keeps: shards created since the last listing (children
    /// of a split or a merge) are read whole.
    Oldest,
}

/// A shard's saved position.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SavedShard {
    pub shard: String,
    pub start: ShardStart,
    /// Shards that must be read to their end first (a split's parent, a merge's two).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<String>,
    /// Read to its end (closed by resharding).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub finished: bool,
}

/// The reader's position, saved in the live checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StreamPosition {
    pub stream: String,
    pub shards: Vec<SavedShard>,
}

/// Counters of the reader (for metrics and the log).
#[derive(Debug, Clone, Default)]
pub struct KinesisStats {
    /// `GetRecords`, `GetShardIterator` and `ListShards` calls.
    pub requests: u64,
    /// Calls refused for throughput (`ProvisionedThroughputExceededException`) or failed
    /// transiently, and retried.
    pub throttled: u64,
    /// Kinesis records read (each holds one CloudWatch Logs payload).
    pub records: u64,
    /// CloudWatch Logs control messages skipped.
    pub control_messages: u64,
    /// Kinesis records that are neither a payload nor CloudTrail (counted, skipped).
    pub undecodable: u64,
    /// CloudTrail events delivered again (same eventID within the de-duplication window).
    pub duplicates: u64,
    /// How far the furthest-behind open shard is from the stream's tip (ms), as Kinesis
    /// reports it (`MillisBehindLatest`): the iterator age.
    pub behind_ms: i64,
    pub open_shards: usize,
    pub finished_shards: usize,
}

struct Shard {
    saved: SavedShard,
    iterator: Option<String>,
    backoff: Backoff,
    /// Wall time before which the shard is not read again (quota spacing, backoff).
    not_before: Millis,
    behind_ms: i64,
    /// The last sequence number of a closed shard (from the listing).
    ending: Option<String>,
}

/// What one poll read.
#[derive(Debug, Default)]
pub struct KinesisBatch {
    pub records: Vec<Delivered>,
    /// Every readable shard is at the stream's tip.
    pub caught_up: bool,
}

/// Reads every shard of one stream.
pub struct Kinesis {
    client: aws_sdk_kinesis::Client,
    cfg: KinesisConfig,
    shards: BTreeMap<String, Shard>,
    /// Where shards met in the first listing start when there is no saved position.
    first: ShardStart,
    /// Whether positions were restored: then a shard not in them is new (read whole).
    restored: bool,
    listed_at: Option<Millis>,
    relist: bool,
    /// An error met after other shards had given records in the same poll.
    deferred: Option<KinesisError>,
    stop: Stop,
    /// CloudTrail event ids delivered within the de-duplication window.
    pub seen: SeenSet,
    pub stats: KinesisStats,
    /// Wall time records last arrived (for the silence rule).
    pub last_record_wall: Millis,
}

/// A shard's reads are spaced by this much: five `GetRecords` per second is the quota.
const SHARD_SPACING: Millis = 200;

impl Kinesis {
    /// A reader of `cfg.stream` resuming at `saved` (when it is of the same stream), else
    /// starting every shard at `first`.
    pub fn new(
        client: aws_sdk_kinesis::Client,
        cfg: KinesisConfig,
        saved: Option<StreamPosition>,
        seen: SeenSet,
        first: ShardStart,
        stop: Stop,
    ) -> Kinesis {
        let saved = saved.filter(|p| p.stream == cfg.stream && !p.shards.is_empty());
        let restored = saved.is_some();
        let shards = saved
            .map(|p| p.shards)
            .unwrap_or_default()
            .into_iter()
            .map(|s| (s.shard.clone(), Shard::new(s)))
            .collect();
        Kinesis {
            client,
            cfg,
            shards,
            first,
            restored,
            listed_at: None,
            relist: true,
            deferred: None,
            stop,
            seen,
            stats: KinesisStats::default(),
            last_record_wall: 0,
        }
    }

    /// Counts silence from `now` (the start of the run).
    pub fn since(mut self, now: Millis) -> Self {
        self.last_record_wall = now;
        self
    }

    /// The position to save: every known shard's start.
    pub fn position(&self) -> StreamPosition {
        StreamPosition {
            stream: self.cfg.stream.clone(),
            shards: self.shards.values().map(|s| s.saved.clone()).collect(),
        }
    }

    fn is_arn(&self) -> bool {
        self.cfg.stream.starts_with("arn:")
    }

    fn fatal(&self, e: AwsError) -> KinesisError {
        KinesisError::Fatal(Box::new(e.on("stream", self.cfg.stream.clone())))
    }

    /// Lists the shards: new ones are added (a shard met in the first listing starts where
    /// asked; one appearing later is read whole), finished ones no longer listed (past the
    /// stream's retention) are forgotten.
    async fn list(&mut self, now: Millis) -> Result<(), KinesisError> {
        let mut listed = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = self.client.list_shards();
            req = match (&token, self.is_arn()) {
                (Some(t), _) => req.next_token(t),
                (None, true) => req.stream_arn(&self.cfg.stream),
                (None, false) => req.stream_name(&self.cfg.stream),
            };
            self.stats.requests += 1;
            let out = tokio::select! {
                r = req.send() => r,
                _ = self.stop.wait() => return Ok(()),
            };
            let out = match out {
                Ok(o) => o,
                Err(e) => {
                    let e = AwsError::from_sdk(&e, "kinesis:ListShards");
                    if e.class == AwsErrorClass::Transient {
                        self.stats.throttled += 1;
                        tracing::warn!("{}", crate::util::aws::followed_by(&e, "retrying"));
                        return Ok(());
                    }
                    return Err(self.fatal(e));
                }
            };
            for s in out.shards() {
                let parents = [s.parent_shard_id(), s.adjacent_parent_shard_id()]
                    .into_iter()
                    .flatten()
                    .map(str::to_string)
                    .collect::<Vec<_>>();
                let ending = s
                    .sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .map(str::to_string);
                listed.push((s.shard_id().to_string(), parents, ending));
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        let first_listing = self.listed_at.is_none() && !self.restored;
        for (id, parents, ending) in &listed {
            if let Some(known) = self.shards.get_mut(id) {
                known.ending.clone_from(ending);
            } else {
                let start = if first_listing {
                    self.first.clone()
                } else {
                    ShardStart::Oldest
                };
                if !first_listing {
                    tracing::info!(stream = %self.cfg.stream, shard = %id, "new shard {id} (resharding): read once its parents are done");
                }
                let saved = SavedShard {
                    shard: id.clone(),
                    start,
                    parents: parents.clone(),
                    finished: false,
                };
                let mut shard = Shard::new(saved);
                shard.ending.clone_from(ending);
                self.shards.insert(id.clone(), shard);
            }
        }
        // Shards no longer listed are past the stream's retention: nothing is left to read in
        // them (their children, if any, are then free to start).
        self.shards
            .retain(|id, _| listed.iter().any(|(l, _, _)| l == id));
        self.listed_at = Some(now);
        self.relist = false;
        Ok(())
    }

    /// Whether a shard may be read: its parents (those still known) are read to their end.
    fn ready(&self, shard: &Shard) -> bool {
        !shard.saved.finished
            && shard
                .saved
                .parents
                .iter()
                .all(|p| self.shards.get(p).is_none_or(|s| s.saved.finished))
    }

    /// One read of every readable shard (parents before children).
    pub async fn poll(&mut self, now: Millis) -> Result<KinesisBatch, KinesisError> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        if self.relist
            || self
                .listed_at
                .is_none_or(|t| now - t >= self.cfg.list_every)
        {
            self.list(now).await?;
        }
        let mut batch = KinesisBatch {
            caught_up: true,
            ..KinesisBatch::default()
        };
        // Nothing readable before the quota spacing or a backoff ends: wait for it here
        // rather than letting the caller spin.
        let earliest = self
            .shards
            .values()
            .filter(|s| self.ready(s))
            .map(|s| s.not_before)
            .min();
        if let Some(t) = earliest.filter(|t| *t > now) {
            self.stop
                .sleep(std::time::Duration::from_millis((t - now) as u64))
                .await;
            return Ok(KinesisBatch::default());
        }
        let ids: Vec<String> = self.shards.keys().cloned().collect();
        for id in ids {
            if self.stop.is_set() {
                batch.caught_up = false;
                break;
            }
            let ready = self.shards.get(&id).is_some_and(|s| self.ready(s));
            if !ready {
                continue;
            }
            if self.shards.get(&id).is_some_and(|s| s.not_before > now) {
                batch.caught_up = false;
                continue;
            }
            match self.read_shard(&id, now, &mut batch.records).await {
                Ok(caught_up) => batch.caught_up &= caught_up,
                // Records of shards read before it in this poll have moved their shards on:
                // they are handed over first, the error comes with the next poll.
                Err(e) if !batch.records.is_empty() => {
                    self.deferred = Some(e);
                    batch.caught_up = false;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if !batch.records.is_empty() {
            self.last_record_wall = now;
        }
        self.stats.open_shards = self.shards.values().filter(|s| !s.saved.finished).count();
        self.stats.finished_shards = self.shards.len() - self.stats.open_shards;
        self.stats.behind_ms = self
            .shards
            .values()
            .filter(|s| !s.saved.finished)
            .map(|s| s.behind_ms)
            .max()
            .unwrap_or(0);
        Ok(batch)
    }

    /// One `GetRecords` of a shard (getting an iterator first when needed); returns whether
    /// the shard is at the tip.
    async fn read_shard(
        &mut self,
        id: &str,
        now: Millis,
        out: &mut Vec<Delivered>,
    ) -> Result<bool, KinesisError> {
        let Some(shard) = self.shards.get(id) else {
            return Ok(true);
        };
        let iterator = match &shard.iterator {
            Some(it) => it.clone(),
            None => {
                let start = shard.saved.start.clone();
                match self.iterator(id, &start).await {
                    Ok(Some(it)) => it,
                    Ok(None) => return Ok(false),
                    Err(e) => return self.failed(id, now, e),
                }
            }
        };
        self.stats.requests += 1;
        let req = self
            .client
            .get_records()
            .shard_iterator(&iterator)
            .limit(self.cfg.limit);
        let res = tokio::select! {
            r = req.send() => r,
            _ = self.stop.wait() => return Ok(false),
        };
        let res = match res {
            Ok(r) => r,
            Err(e) => {
                let e = AwsError::from_sdk(&e, "kinesis:GetRecords");
                if e.code() == Some("ExpiredIteratorException") {
                    // Iterators live five minutes: get a new one from the saved position.
                    if let Some(s) = self.shards.get_mut(id) {
                        s.iterator = None;
                        s.not_before = now + SHARD_SPACING;
                    }
                    return Ok(false);
                }
                return self.failed(id, now, e);
            }
        };
        let stream = self.cfg.stream.clone();
        let mut last_seq = None;
        self.seen.evict_before(now - self.cfg.dedup_window);
        for r in res.records() {
            self.stats.records += 1;
            let seq = r.sequence_number();
            let place = format!("Kinesis stream {stream}, shard {id}, sequence {seq}");
            match decode::decode_owned(r.data().as_ref()) {
                Ok(d) if d.shape == Shape::CwlControl => self.stats.control_messages += 1,
                Ok(d) if d.shape == Shape::NotCloudTrail || d.shape == Shape::Digest => {
                    self.undecodable(&place, "not a CloudWatch Logs payload of CloudTrail")
                }
                Ok(d) => {
                    for issue in d.issues {
                        self.undecodable(&format!("{place}: {}", issue.loc), &issue.message);
                    }
                    self.stats.duplicates += super::deliver_unseen(
                        d.records,
                        &place,
                        &mut self.seen,
                        SEEN_CAP,
                        now,
                        out,
                    );
                }
                Err(e) => self.undecodable(&place, &e.to_string()),
            }
            last_seq = Some(seq.to_string());
        }
        let Some(shard) = self.shards.get_mut(id) else {
            return Ok(true);
        };
        shard.backoff.reset();
        shard.not_before = now + SHARD_SPACING;
        if let Some(seq) = last_seq {
            shard.saved.start = ShardStart::After(seq);
        }
        shard.behind_ms = res.millis_behind_latest().unwrap_or(0);
        // A closed shard is done when Kinesis gives no next iterator, or when an empty read
        // comes back at or past its last sequence number.
        let end_reached = res.records().is_empty()
            && shard
                .ending
                .as_deref()
                .is_some_and(|end| match &shard.saved.start {
                    ShardStart::After(seq) => sequence_at_or_after(seq, end),
                    _ => end == "0",
                });
        match res.next_shard_iterator().filter(|_| !end_reached) {
            Some(next) => {
                shard.iterator = Some(next.to_string());
                // At the tip when Kinesis says so (or, without that figure, when the read
                // came back empty).
                Ok(match res.millis_behind_latest() {
                    Some(b) => b == 0,
                    None => res.records().is_empty(),
                })
            }
            None => {
                // Closed by resharding and read to its end: its children may start.
                shard.saved.finished = true;
                shard.iterator = None;
                shard.behind_ms = 0;
                self.relist = true;
                tracing::info!(stream = %stream, shard = %id, "shard {id} read to its end (resharding)");
                Ok(false)
            }
        }
    }

    /// A shard iterator for `start`; `None` when asked to stop, or when the shard is closed
    /// and expired (then marked finished).
    async fn iterator(&mut self, id: &str, start: &ShardStart) -> Result<Option<String>, AwsError> {
        let mut req = self.client.get_shard_iterator().shard_id(id);
        req = if self.is_arn() {
            req.stream_arn(&self.cfg.stream)
        } else {
            req.stream_name(&self.cfg.stream)
        };
        req = match start {
            ShardStart::After(seq) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
            ShardStart::ArrivedAt(t) => req
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(aws_smithy_types::DateTime::from_millis(*t)),
            ShardStart::Oldest => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        self.stats.requests += 1;
        let out = tokio::select! {
            r = req.send() => r,
            _ = self.stop.wait() => return Ok(None),
        };
        match out {
            Ok(o) => {
                let it = o.shard_iterator().map(str::to_string);
                if it.is_none() {
                    // No iterator: the shard is closed and expired.
                    if let Some(s) = self.shards.get_mut(id) {
                        s.saved.finished = true;
                    }
                }
                if let Some(s) = self.shards.get_mut(id) {
                    s.iterator = it.clone();
                }
                Ok(it)
            }
            Err(e) => Err(AwsError::from_sdk(&e, "kinesis:GetShardIterator")),
        }
    }

    /// A failed call on a shard: transient ones wait (backoff per shard), others stop the
    /// run (the caller retries later when running).
    fn failed(&mut self, id: &str, now: Millis, e: AwsError) -> Result<bool, KinesisError> {
        if e.class == AwsErrorClass::Transient {
            self.stats.throttled += 1;
            if let Some(s) = self.shards.get_mut(id) {
                let wait = s.backoff.failed(500, 30_000);
                s.not_before = now + wait;
                if s.backoff.failures() > 3 {
                    tracing::warn!(
                        stream = %self.cfg.stream,
                        shard = %id,
                        "{}",
                        crate::util::aws::followed_by(&e, &format!("shard {id}: retrying in {} ms", wait))
                    );
                }
            }
            return Ok(false);
        }
        if e.code() == Some("ResourceNotFoundException") && self.shards.len() > 1 {
            // Perhaps a shard past the retention: the next listing tells (a shard it no longer
            // lists is forgotten); until then it waits.
            if let Some(s) = self.shards.get_mut(id) {
                s.iterator = None;
                s.not_before = now + self.cfg.list_every.min(5_000);
            }
            self.relist = true;
            return Ok(false);
        }
        Err(self.fatal(e))
    }

    fn undecodable(&mut self, place: &str, message: &str) {
        self.stats.undecodable += 1;
        let n = self.stats.undecodable;
        if n <= 100 || n.is_multiple_of(1000) {
            tracing::warn!("{place}: skipped ({n} so far): {message}");
        }
    }
}

impl Shard {
    fn new(saved: SavedShard) -> Shard {
        Shard {
            saved,
            iterator: None,
            backoff: Backoff::default(),
            not_before: 0,
            behind_ms: 0,
            ending: None,
        }
    }
}

/// At most this many event ids are remembered for de-duplication.
const SEEN_CAP: usize = 5_000_000;

/// Is sequence number `a` at or after `b`? (Decimal strings of up to 128 bits.)
fn sequence_at_or_after(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    (a.len(), a) >= (b.len(), b)
}

/// Checks at start-up that the stream exists and can be read (one line when not).
pub async fn check_stream(client: &aws_sdk_kinesis::Client, stream: &str) -> Result<(), AwsError> {
    let req = client.describe_stream_summary();
    let req = if stream.starts_with("arn:") {
        req.stream_arn(stream)
    } else {
        req.stream_name(stream)
    };
    req.send()
        .await
        .map(|_| ())
        .map_err(|e| AwsError::from_sdk(&e, "kinesis:DescribeStreamSummary").on("stream", stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parents: &[&str], finished: bool) -> SavedShard {
        SavedShard {
            shard: id.into(),
            start: ShardStart::Oldest,
            parents: parents.iter().map(|p| p.to_string()).collect(),
            finished,
        }
    }

    #[test]
    fn children_wait_for_every_known_parent() {
        let conf = aws_sdk_kinesis::Config::builder()
            .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
            .build();
        let saved = StreamPosition {
            stream: "s".into(),
            shards: vec![
                shard("a", &[], false),
                shard("b", &[], true),
                // a merge of a and b
                shard("c", &["a", "b"], false),
                // a parent past the retention (no longer known)
                shard("d", &["gone"], false),
            ],
        };
        let mut k = Kinesis::new(
            aws_sdk_kinesis::Client::from_conf(conf),
            KinesisConfig {
                stream: "s".into(),
                ..KinesisConfig::default()
            },
            Some(saved),
            SeenSet::default(),
            ShardStart::Oldest,
            Stop::new(),
        );
        let ready = |k: &Kinesis, id: &str| k.ready(&k.shards[id]);
        assert!(ready(&k, "a"));
        assert!(!ready(&k, "b"), "finished");
        assert!(!ready(&k, "c"), "a is not read to its end");
        assert!(ready(&k, "d"));
        k.shards.get_mut("a").unwrap().saved.finished = true;
        assert!(ready(&k, "c"));
        assert_eq!(k.position().shards.len(), 4);
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(sequence_at_or_after("10", "9"));
        assert!(sequence_at_or_after(
            "49590338271490256608559692538361571095921575989136588898",
            "49590338271490256608559692538361571095921575989136588898"
        ));
        assert!(!sequence_at_or_after("9", "10"));
        assert!(sequence_at_or_after("1", "0"));
    }

    #[test]
    fn saved_position_round_trips_and_omits_defaults() {
        let p = StreamPosition {
            stream: "trail".into(),
            shards: vec![
                SavedShard {
                    shard: "shardId-000000000000".into(),
                    start: ShardStart::After("4960".into()),
                    parents: Vec::new(),
                    finished: true,
                },
                SavedShard {
                    shard: "shardId-000000000001".into(),
                    start: ShardStart::Oldest,
                    parents: vec!["shardId-000000000000".into()],
                    finished: false,
                },
            ],
        };
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(
            text,
            r#"{"stream":"trail","shards":[{"shard":"shardId-000000000000","start":{"after":"4960"},"finished":true},{"shard":"shardId-000000000001","start":"oldest","parents":["shardId-000000000000"]}]}"#
        );
        assert_eq!(serde_json::from_str::<StreamPosition>(&text).unwrap(), p);
    }
}
