//! The live source: tails CloudWatch Logs groups that a CloudTrail trail streams into,
//! without missing late or out-of-order events.
//!
//! How (see `docs/operations.md`):
//! - **Forward reads**: every poll, `FilterLogEvents` over the whole group (all streams, new
//!   ones included) from the group's cursor (the newest event timestamp read so far), paged
//!   until `nextToken` is absent (empty pages happen and do not mean the end).
//! - **Overlap re-scans**: CloudTrail delivers minutes late and out of order, and
//!   `FilterLogEvents` filters on the *event* time, so an event stamped before the cursor that
//!   lands after a forward read would be missed by forward reads alone (the bug of every
//!   popular tailer). Every `rescan_every` (default 1 min) the trailing `overlap` (default
//!   15 min) before the cursor is read again.
//! - **Exactly once**: events are de-duplicated on the CloudTrail `eventID` with a set
//!   evicted by event time once an id can no longer be re-read.
//! - **Wide re-scans** (optional): every `wide_every`, the last `wide` window is read again for
//!   events delayed beyond the overlap. Without it such an event is not seen live (it is in
//!   the S3 archive: backtest it).
//! - **Request budget**: every request takes a token from a bucket (default 2 per second),
//!   shared by all groups, well under the account's shared FilterLogEvents quota (5–25 TPS);
//!   `ThrottlingException` and transient errors back off and retry the same page.
//! - **Forward reads first**: re-scans page through their window with the budget forward reads
//!   leave over (a page per poll or so), resuming across polls; a new re-scan starts only when
//!   the previous one has ended. On a busy group (thousands of events per second, a 15-minute
//!   overlap is millions of events) a re-scan then takes minutes (at least a quarter of the
//!   budget is its own) instead of stalling the forward reads, so the lag of new events stays
//!   flat and only late events wait longer. Ids are remembered back to the start of any
//!   re-scan still running.

use crate::util::aws::{self, AwsError, AwsErrorClass, Backoff, Stop};
use crate::util::time::Millis;
use base64::Engine as _;
use std::time::Duration;

/// A tail error that retrying cannot fix (no such log group, no permission, no credentials);
/// the AWS error names the group.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error(transparent)]
    Fatal(Box<AwsError>),
}

/// Settings of the tail.
#[derive(Debug, Clone)]
pub struct TailConfig {
    pub groups: Vec<String>,
    /// Trailing window re-read before the cursor.
    pub overlap: Millis,
    /// How often (wall clock) the overlap is re-read.
    pub rescan_every: Millis,
    /// Optional wide re-scan: window and period.
    pub wide: Option<(Millis, Millis)>,
    /// Requests per second (all groups together).
    pub requests_per_sec: f64,
    /// Events per page requested (FilterLogEvents allows up to 10,000).
    pub page_limit: i32,
    /// A poll returns after about this many events (the rest is read by the next poll).
    pub max_batch: usize,
    /// Cap on remembered event ids.
    pub max_seen: usize,
}

impl Default for TailConfig {
    fn default() -> Self {
        TailConfig {
            groups: Vec::new(),
            overlap: 15 * 60_000,
            rescan_every: 60_000,
            wide: None,
            requests_per_sec: 2.0,
            page_limit: 10_000,
            max_batch: 20_000,
            max_seen: 2_000_000,
        }
    }
}

/// One log event, new to us.
#[derive(Debug, Clone)]
pub struct RawEvent {
    pub group: String,
    pub stream: String,
    /// CloudWatch Logs' id of the log event.
    pub cwl_id: String,
    /// Log event timestamp (ms).
    pub timestamp: Millis,
    pub message: String,
}

/// Event ids already seen, forgotten once they fall out of every re-scan window.
///
/// Ids are kept in one hash set per minute of event time, oldest first: forgetting a minute
/// drops its whole set. A single map with a time-ordered heap (the first version) churned:
/// every id inserted and later removed left a tombstone, and a table just over half full
/// doubles when they run out — at 2,000 events/s its memory kept growing for many minutes
/// after the number of ids had stopped growing. A lookup probes each minute's set (about 20
/// with the default overlap): cheap next to reading the event.
#[derive(Debug, Default)]
pub struct SeenSet {
    /// (minute start, ids of events stamped in that minute), in minute order.
    minutes: std::collections::VecDeque<(Millis, IdSet)>,
    len: usize,
    /// Emptied sets of forgotten minutes, kept with their capacity for the next minutes: in
    /// a steady stream the sets are reused and nothing is allocated or freed (megabyte-sized
    /// sets allocated and freed every minute fragment a long-running process's heap).
    spare: Vec<IdSet>,
    pub evicted_at_cap: u64,
}

/// Seeded per process: ids come from whoever can write to the log group.
type IdSet = std::collections::HashSet<u128, foldhash::fast::RandomState>;

const MINUTE: Millis = 60_000;

/// The 128-bit key of an event: its CloudTrail eventID (a UUID) when it has one, else a hash
/// of the text given.
pub fn id_key(id: &str) -> u128 {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    if hex.len() == 32
        && let Ok(v) = u128::from_str_radix(&hex, 16)
    {
        return v;
    }
    u128::from_str_radix(&crate::util::ids::stable_id(&[id]), 16).unwrap_or(0)
}

impl SeenSet {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn contains(&self, key: u128) -> bool {
        self.minutes.iter().any(|(_, ids)| ids.contains(&key))
    }

    /// Records an id (of an event stamped `ts`); false when it was already there. Beyond
    /// `cap` ids the oldest minutes are forgotten (counted).
    pub fn insert(&mut self, key: u128, ts: Millis, cap: usize) -> bool {
        if self.contains(key) {
            return false;
        }
        let minute = ts.div_euclid(MINUTE) * MINUTE;
        // Usually the newest minute; late events go to theirs, kept in order.
        let i = match self.minutes.iter().rposition(|(m, _)| *m <= minute) {
            Some(i) if self.minutes[i].0 == minute => i,
            Some(i) => {
                let set = self.spare.pop().unwrap_or_default();
                self.minutes.insert(i + 1, (minute, set));
                i + 1
            }
            None => {
                let set = self.spare.pop().unwrap_or_default();
                self.minutes.push_front((minute, set));
                0
            }
        };
        self.minutes[i].1.insert(key);
        self.len += 1;
        while self.len > cap.max(1) && self.minutes.len() > 1 {
            if let Some((_, ids)) = self.minutes.pop_front() {
                self.len -= ids.len();
                self.evicted_at_cap += ids.len() as u64;
                self.recycle(ids);
            }
        }
        true
    }

    /// Forgets ids of events stamped in minutes that ended at or before `before`.
    pub fn evict_before(&mut self, before: Millis) {
        while let Some((m, _)) = self.minutes.front() {
            if m.saturating_add(MINUTE) > before {
                break;
            }
            if let Some((_, ids)) = self.minutes.pop_front() {
                self.len -= ids.len();
                self.recycle(ids);
            }
        }
    }

    /// Keeps a forgotten minute's set (emptied) for reuse; a few are enough.
    fn recycle(&mut self, mut ids: IdSet) {
        if self.spare.len() < 2 {
            ids.clear();
            self.spare.push(ids);
        }
    }

    /// Compact bytes: per id 16 bytes of key and 8 of timestamp, little endian, base64.
    pub fn to_base64(&self) -> String {
        self.base64().to_string()
    }

    /// [`to_base64`](Self::to_base64) as a `Display` that encodes while it is written: a
    /// checkpoint with millions of ids is streamed to disk, not built in memory (tens of MB
    /// every few seconds, which fragmented the heap of a long-running service).
    pub fn base64(&self) -> impl std::fmt::Display + '_ {
        SeenBase64(self)
    }
}

struct SeenBase64<'a>(&'a SeenSet);

impl std::fmt::Display for SeenBase64<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use base64::engine::general_purpose::STANDARD;
        // Three ids are 72 bytes, a whole number of base64 quanta: chunks encode
        // independently and concatenate to the encoding of the whole (padding only at the end).
        const IDS: usize = 3 * 64;
        let mut raw = Vec::with_capacity(IDS * 24);
        let mut text = String::with_capacity(IDS * 32 + 4);
        let mut it = self
            .0
            .minutes
            .iter()
            .flat_map(|(m, ids)| ids.iter().map(move |k| (k, m)))
            .peekable();
        while it.peek().is_some() {
            raw.clear();
            for (k, t) in it.by_ref().take(IDS) {
                raw.extend_from_slice(&k.to_le_bytes());
                raw.extend_from_slice(&t.to_le_bytes());
            }
            text.clear();
            STANDARD.encode_string(&raw, &mut text);
            f.write_str(&text)?;
        }
        Ok(())
    }
}

impl SeenSet {
    pub fn from_base64(s: &str) -> Option<SeenSet> {
        let buf = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
        if buf.len() % 24 != 0 {
            return None;
        }
        let mut set = SeenSet::default();
        // Ids are written minute by minute: each insert usually goes to the newest minute.
        for chunk in buf.chunks_exact(24) {
            let k = u128::from_le_bytes(chunk[..16].try_into().ok()?);
            let t = Millis::from_le_bytes(chunk[16..].try_into().ok()?);
            set.insert(k, t, usize::MAX);
        }
        Some(set)
    }
}

/// Where one group stands.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GroupPosition {
    /// Newest event timestamp read by a completed forward read (the next one starts here).
    pub cursor: Millis,
    /// Nothing before this is read (the start of the run, from `--start-from`).
    pub floor: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Forward,
    Overlap,
    Wide,
}

#[derive(Debug, Clone)]
struct Scan {
    group: usize,
    kind: Kind,
    start: Millis,
    end: Option<Millis>,
    token: Option<String>,
    /// Newest timestamp seen by this scan.
    newest: Millis,
    pages: u64,
}

/// Counters for metrics and logs.
#[derive(Debug, Default, Clone)]
pub struct TailStats {
    pub requests: u64,
    pub pages: u64,
    pub empty_pages: u64,
    pub events_read: u64,
    pub duplicates: u64,
    pub throttled: u64,
    pub errors: u64,
    /// Events first found by an overlap or wide re-scan (they came in late).
    pub found_by_rescan: u64,
}

/// A simple token bucket on wall-clock time.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: std::time::Instant,
}

impl Bucket {
    fn new(rate: f64) -> Bucket {
        let rate = rate.max(0.1);
        let burst = rate.max(1.0);
        Bucket {
            rate,
            burst,
            tokens: burst,
            last: std::time::Instant::now(),
        }
    }

    /// Takes a token if one is there now (spare budget); never waits.
    fn try_take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn refill(&mut self) {
        let now = std::time::Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
    }

    /// How long to wait before a request may go.
    fn take(&mut self) -> Duration {
        self.refill();
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// A FilterLogEvents error on `group`, read by the shared AWS error reading.
fn filter_error<E>(
    e: &aws_sdk_cloudwatchlogs::error::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
    group: &str,
    region: Option<String>,
) -> AwsError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    AwsError::from_sdk(e, "logs:FilterLogEvents")
        .on("log group", group)
        .in_region(region.as_deref())
}

/// The start-up check of a log group: one FilterLogEvents request of one event from now on
/// (the call the tail makes, with the permission it needs). An error names the group and says
/// what to do; the caller decides what a transient one means.
pub async fn check_group(
    client: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    now: Millis,
) -> Result<(), AwsError> {
    let region = client.config().region().map(|r| r.to_string());
    client
        .filter_log_events()
        .log_group_name(group)
        .start_time(now)
        .limit(1)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| filter_error(&e, group, region))
}

/// Is this FilterLogEvents error worth retrying (throttling, 5xx, network)?
pub fn retryable(code: Option<&str>, status: Option<u16>) -> bool {
    aws::classify(code, status) == AwsErrorClass::Transient
}

/// The tail over one or more log groups.
pub struct Tail {
    client: aws_sdk_cloudwatchlogs::Client,
    pub cfg: TailConfig,
    pub positions: Vec<GroupPosition>,
    pub seen: SeenSet,
    scans: Vec<Scan>,
    last_rescan: Option<Millis>,
    last_wide: Option<Millis>,
    /// When the latest re-scan page was requested.
    last_rescan_page: Option<std::time::Instant>,
    bucket: Bucket,
    backoff: Backoff,
    /// Ends waits and requests in flight: a poll then returns what it has read so far.
    stop: Stop,
    /// An error met after some events of a poll were read: that poll returned the events,
    /// the next one returns the error.
    deferred: Option<TailError>,
    pub stats: TailStats,
    /// Wall-clock time of the newest new event per group (for the silence check).
    pub last_event_wall: Vec<Millis>,
}

/// What one poll produced.
#[derive(Debug, Default)]
pub struct Batch {
    /// New events, in timestamp order.
    pub events: Vec<RawEvent>,
    /// Every forward read reached the end: the tail is caught up with the present.
    pub caught_up: bool,
}

impl Tail {
    /// A tail starting at `positions` (one per group, from a checkpoint or the start time).
    pub fn new(
        client: aws_sdk_cloudwatchlogs::Client,
        cfg: TailConfig,
        positions: Vec<GroupPosition>,
        seen: SeenSet,
        now: Millis,
    ) -> Tail {
        let n = cfg.groups.len();
        Tail {
            client,
            bucket: Bucket::new(cfg.requests_per_sec),
            cfg,
            positions,
            seen,
            scans: Vec::new(),
            last_rescan: None,
            last_wide: None,
            last_rescan_page: None,
            backoff: Backoff::default(),
            stop: Stop::new(),
            deferred: None,
            stats: TailStats::default(),
            last_event_wall: vec![now; n],
        }
    }

    /// Ends polls early when `stop` is given (see [`Tail::poll`]).
    pub fn with_stop(mut self, stop: Stop) -> Tail {
        self.stop = stop;
        self
    }

    /// The region the client calls.
    fn region(&self) -> Option<String> {
        self.client.config().region().map(|r| r.to_string())
    }

    /// How long ids must be remembered: as far back as any re-scan reads.
    fn retention(&self) -> Millis {
        let wide = self.cfg.wide.map_or(0, |(w, _)| w);
        self.cfg.overlap.max(wide) + 5 * 60_000
    }

    /// Is a re-scan (overlap or wide) still paging through its window?
    pub fn rescanning(&self) -> bool {
        self.scans.iter().any(|s| s.kind != Kind::Forward)
    }

    fn schedule(&mut self, now: Millis) {
        // Forward reads: one per group, every poll that has none left.
        if !self.scans.iter().any(|s| s.kind == Kind::Forward) {
            for (g, p) in self.positions.iter().enumerate() {
                self.scans.push(Scan {
                    group: g,
                    kind: Kind::Forward,
                    start: p.cursor.max(p.floor),
                    end: None,
                    token: None,
                    newest: p.cursor,
                    pages: 0,
                });
            }
        }
        self.schedule_rescans(now);
    }

    /// Re-scans when due, and only once the previous ones have ended.
    fn schedule_rescans(&mut self, now: Millis) {
        if self.rescanning() {
            return;
        }
        if self
            .last_rescan
            .is_none_or(|t| now - t >= self.cfg.rescan_every)
        {
            self.last_rescan = Some(now);
            for (g, p) in self.positions.iter().enumerate() {
                let start = (p.cursor - self.cfg.overlap).max(p.floor);
                if start < p.cursor {
                    self.scans.push(Scan {
                        group: g,
                        kind: Kind::Overlap,
                        start,
                        end: Some(p.cursor),
                        token: None,
                        newest: p.cursor,
                        pages: 0,
                    });
                }
            }
        }
        if let Some((window, every)) = self.cfg.wide
            && self.last_wide.is_none_or(|t| now - t >= every)
        {
            self.last_wide = Some(now);
            for (g, p) in self.positions.iter().enumerate() {
                let start = (p.cursor - window).max(p.floor);
                let end = p.cursor - self.cfg.overlap;
                if start < end {
                    self.scans.push(Scan {
                        group: g,
                        kind: Kind::Wide,
                        start,
                        end: Some(end),
                        token: None,
                        newest: p.cursor,
                        pages: 0,
                    });
                }
            }
        }
    }

    /// Reads what is new: forward reads until they reach the present (or the batch is full),
    /// then pages of a due or running re-scan while budget is spare (`finish_rescans`: until
    /// the re-scan has ended, waiting for budget — for one-shot runs). `now` is wall-clock
    /// time in ms.
    ///
    /// When the stop signal is given, waits and the request in flight are abandoned and the
    /// poll returns the events read so far (not caught up): every id it remembers is of an
    /// event in a batch, so a checkpoint written after the batch is handed over is true.
    pub async fn poll(&mut self, now: Millis, finish_rescans: bool) -> Result<Batch, TailError> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        self.schedule(now);
        let mut batch = Batch::default();
        loop {
            if batch.events.len() >= self.cfg.max_batch || self.stop.is_set() {
                break;
            }
            // Re-scans: spare budget, and at least a quarter of the budget (fast polls or a
            // busy group can use all of it for forward reads); everything when asked to
            // finish them.
            let share = Duration::from_secs_f64((4.0 / self.cfg.requests_per_sec).max(0.5));
            let rescan_owed =
                finish_rescans || self.last_rescan_page.is_none_or(|t| t.elapsed() >= share);
            let (idx, spare) = match self.scans.iter().position(|s| s.kind == Kind::Forward) {
                Some(i) => (i, false),
                None if self.scans.is_empty() => break,
                None if self.bucket.try_take() => (0, true),
                None if rescan_owed => (0, false),
                None => break,
            };
            let scan = self.scans[idx].clone();
            if scan.kind != Kind::Forward {
                self.last_rescan_page = Some(std::time::Instant::now());
            }
            if !spare {
                let wait = self.bucket.take();
                if !wait.is_zero() && self.stop.sleep(wait).await {
                    break;
                }
            }
            let group = self.cfg.groups[scan.group].clone();
            let mut req = self
                .client
                .filter_log_events()
                .log_group_name(&group)
                .start_time(scan.start)
                .limit(self.cfg.page_limit);
            if let Some(e) = scan.end {
                req = req.end_time(e);
            }
            if let Some(t) = &scan.token {
                req = req.next_token(t);
            }
            self.stats.requests += 1;
            let sent = tokio::select! {
                r = req.send() => r,
                _ = self.stop.wait() => break,
            };
            let out = match sent {
                Ok(o) => {
                    self.backoff.reset();
                    o
                }
                Err(e) => {
                    let err = filter_error(&e, &group, self.region());
                    if err.code() == Some("ThrottlingException") {
                        self.stats.throttled += 1;
                    } else {
                        self.stats.errors += 1;
                    }
                    if err.class == AwsErrorClass::Transient {
                        let delay = Duration::from_millis(self.backoff.failed(500, 32_000) as u64);
                        tracing_warn(&aws::followed_by(
                            &err,
                            &format!("retrying in {} ms", delay.as_millis()),
                        ));
                        if self.stop.sleep(delay).await {
                            break;
                        }
                        continue;
                    }
                    self.scans.clear();
                    let err = TailError::Fatal(Box::new(err));
                    if batch.events.is_empty() {
                        return Err(err);
                    }
                    // The events read before the error are remembered as seen: they must be
                    // handed over before the error is.
                    self.deferred = Some(err);
                    break;
                }
            };
            self.stats.pages += 1;
            let events = out.events();
            if events.is_empty() {
                self.stats.empty_pages += 1;
            }
            let mut newest = scan.newest;
            for e in events {
                let (Some(ts), Some(msg)) = (e.timestamp(), e.message()) else {
                    continue;
                };
                self.stats.events_read += 1;
                newest = newest.max(ts);
                let cwl_id = e.event_id().unwrap_or_default().to_string();
                let key = match cloudtrail_event_id(msg) {
                    Some(id) => id_key(id),
                    None => id_key(&format!("{group}\u{0}{cwl_id}\u{0}{msg}")),
                };
                if !self.seen.insert(key, ts, self.cfg.max_seen) {
                    self.stats.duplicates += 1;
                    continue;
                }
                if scan.kind != Kind::Forward {
                    self.stats.found_by_rescan += 1;
                }
                self.last_event_wall[scan.group] = now;
                batch.events.push(RawEvent {
                    group: group.clone(),
                    stream: e.log_stream_name().unwrap_or_default().to_string(),
                    cwl_id,
                    timestamp: ts,
                    message: msg.to_string(),
                });
            }
            let token = out.next_token().map(str::to_string);
            let s = &mut self.scans[idx];
            s.newest = newest;
            s.pages += 1;
            // A token equal to the one sent would loop forever; treat it as the end.
            let done = token.is_none() || token == s.token;
            s.token = token;
            if done {
                let s = self.scans.remove(idx);
                if s.kind == Kind::Forward {
                    // Never past the present: one record stamped in the future (a clock error,
                    // or a writer to the group with bad intent) must not move every later read
                    // beyond the events that follow it.
                    let p = &mut self.positions[s.group];
                    p.cursor = p.cursor.max(s.newest.min(now));
                }
            }
        }
        // Forget ids no re-scan can read again: older than the retention behind every cursor,
        // and than the start of any re-scan still running.
        let oldest_cursor = self.positions.iter().map(|p| p.cursor).min().unwrap_or(0);
        let running = self
            .scans
            .iter()
            .filter(|s| s.kind != Kind::Forward)
            .map(|s| s.start)
            .min()
            .unwrap_or(Millis::MAX);
        self.seen
            .evict_before((oldest_cursor - self.retention()).min(running));
        batch.caught_up =
            self.deferred.is_none() && !self.scans.iter().any(|s| s.kind == Kind::Forward);
        batch.events.sort_by_key(|e| e.timestamp);
        Ok(batch)
    }
}

/// The `eventID` of a CloudTrail record, read without parsing the whole record when it is
/// near the start; `None` when the message is not a record with an id.
pub fn cloudtrail_event_id(msg: &str) -> Option<&str> {
    #[derive(serde::Deserialize)]
    struct Id<'a> {
        #[serde(rename = "eventID", borrow)]
        event_id: Option<&'a str>,
    }
    serde_json::from_str::<Id<'_>>(msg).ok()?.event_id
}

fn tracing_warn(msg: &str) {
    tracing::warn!("{msg}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_uuids_and_text() {
        assert_eq!(
            id_key("3b8f1c5e-2a59-4c1d-9f10-0a1b2c3d4e5f"),
            0x3b8f1c5e2a594c1d9f100a1b2c3d4e5f
        );
        assert_ne!(id_key("not-a-uuid"), id_key("not-a-uuid2"));
    }

    #[test]
    fn seen_set_dedupes_evicts_and_round_trips() {
        let mut s = SeenSet::default();
        assert!(s.insert(1, MINUTE, 10));
        assert!(!s.insert(1, MINUTE + 5, 10));
        assert!(s.insert(2, 2 * MINUTE, 10));
        assert!(s.insert(3, 3 * MINUTE + 1, 10));
        // A late event goes to its own minute, in order.
        assert!(s.insert(4, 2 * MINUTE + 30_000, 10));
        assert!(!s.insert(4, 3 * MINUTE, 10));
        s.evict_before(2 * MINUTE);
        assert_eq!(s.len(), 3);
        assert!(s.insert(1, MINUTE, 10), "forgotten after eviction");
        s.evict_before(2 * MINUTE + 59_999);
        assert_eq!(s.len(), 3, "minute 2 is still within reach");
        let r = SeenSet::from_base64(&s.to_base64()).unwrap();
        assert_eq!(r.len(), 3);
        let mut r = r;
        assert!(!r.insert(3, 3 * MINUTE, 10));
        r.evict_before(3 * MINUTE);
        assert_eq!(r.len(), 1, "the minutes survive the round trip");
        // The cap forgets the oldest minutes.
        let mut c = SeenSet::default();
        for k in 0..5u128 {
            c.insert(k, k as Millis * MINUTE, 3);
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.evicted_at_cap, 2);
        assert!(c.insert(0, 0, 3));
    }

    #[test]
    fn streamed_base64_is_the_encoding_of_the_whole() {
        // Sizes around the 192-id chunks and the 3-id quanta (padding only at the very end).
        for n in [0u128, 1, 2, 3, 191, 192, 193, 1000] {
            let mut s = SeenSet::default();
            for k in 0..n {
                s.insert(k * 0x1_0000_0001, 1_000 + k as Millis, usize::MAX);
            }
            let text = s.to_base64();
            let raw = base64::engine::general_purpose::STANDARD
                .decode(&text)
                .unwrap();
            assert_eq!(raw.len(), n as usize * 24, "n = {n}");
            let r = SeenSet::from_base64(&text).unwrap();
            assert_eq!(r.len(), n as usize);
            for k in 0..n {
                assert!(r.contains(k * 0x1_0000_0001));
            }
        }
    }

    #[test]
    fn event_id_from_message() {
        assert_eq!(
            cloudtrail_event_id(r#"{"eventVersion":"1.08","eventID":"abc","x":{"y":[1]}}"#),
            Some("abc")
        );
        assert_eq!(cloudtrail_event_id("not json"), None);
        assert_eq!(cloudtrail_event_id(r#"{"a":1}"#), None);
    }

    #[test]
    fn retry_decisions() {
        assert!(retryable(Some("ThrottlingException"), Some(400)));
        assert!(retryable(None, None));
        assert!(retryable(None, Some(503)));
        assert!(!retryable(Some("ResourceNotFoundException"), Some(400)));
        assert!(!retryable(Some("AccessDeniedException"), Some(400)));
    }
}
