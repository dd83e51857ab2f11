//! The metrics endpoint: live-run counters in the Prometheus text format, served over HTTP.

use super::wall_ms;
use crate::engine::PipelineStats;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Counters exported on `--metrics-addr` (Prometheus text format) and logged at exit.
#[derive(Debug, Default)]
pub struct Metrics {
    pub events: AtomicU64,
    pub malformed: AtomicU64,
    pub findings: AtomicU64,
    pub below_min_level: AtomicU64,
    pub queued: AtomicU64,
    pub published_messages: AtomicU64,
    pub published_findings: AtomicU64,
    pub digests: AtomicU64,
    pub publish_errors: AtomicU64,
    pub failed_findings: AtomicU64,
    pub outbox_pending: AtomicU64,
    pub tail_requests: AtomicU64,
    pub tail_throttled: AtomicU64,
    pub tail_duplicates: AtomicU64,
    pub found_by_rescan: AtomicU64,
    pub seen_ids: AtomicU64,
    pub late_hits: AtomicU64,
    pub evicted_keys: AtomicU64,
    pub checkpoints: AtomicU64,
    /// Newest event time processed (ms), 0 before the first.
    pub newest_event_ms: AtomicI64,
    pub silent_groups: AtomicU64,
    pub kinesis_requests: AtomicU64,
    pub kinesis_throttled: AtomicU64,
    pub kinesis_records: AtomicU64,
    pub kinesis_undecodable: AtomicU64,
    pub kinesis_open_shards: AtomicU64,
    /// `MillisBehindLatest` of the furthest-behind open shard.
    pub kinesis_behind_ms: AtomicU64,
    pub sqs_messages: AtomicU64,
    pub sqs_deleted: AtomicU64,
    pub sqs_failed: AtomicU64,
    pub sqs_queue_depth: AtomicU64,
    pub s3_objects: AtomicU64,
    pub s3_bytes: AtomicU64,
}

impl Metrics {
    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let rows = [
            (
                "events_total",
                "counter",
                "CloudTrail events evaluated",
                g(&self.events),
            ),
            (
                "malformed_events_total",
                "counter",
                "log events that are not CloudTrail records",
                g(&self.malformed),
            ),
            (
                "findings_total",
                "counter",
                "findings produced",
                g(&self.findings),
            ),
            (
                "findings_below_min_level_total",
                "counter",
                "findings not published (below --min-level)",
                g(&self.below_min_level),
            ),
            (
                "findings_queued_total",
                "counter",
                "findings queued in the outbox",
                g(&self.queued),
            ),
            (
                "sns_messages_total",
                "counter",
                "SNS messages published",
                g(&self.published_messages),
            ),
            (
                "sns_findings_published_total",
                "counter",
                "findings delivered to SNS",
                g(&self.published_findings),
            ),
            (
                "sns_digests_total",
                "counter",
                "digest messages published",
                g(&self.digests),
            ),
            (
                "sns_publish_errors_total",
                "counter",
                "failed publish attempts",
                g(&self.publish_errors),
            ),
            (
                "sns_failed_findings_total",
                "counter",
                "findings SNS refused for good",
                g(&self.failed_findings),
            ),
            (
                "outbox_pending",
                "gauge",
                "findings waiting in the outbox",
                g(&self.outbox_pending),
            ),
            (
                "tail_requests_total",
                "counter",
                "FilterLogEvents requests",
                g(&self.tail_requests),
            ),
            (
                "tail_throttled_total",
                "counter",
                "FilterLogEvents throttled",
                g(&self.tail_throttled),
            ),
            (
                "tail_duplicates_total",
                "counter",
                "log events dropped as already seen",
                g(&self.tail_duplicates),
            ),
            (
                "tail_found_by_rescan_total",
                "counter",
                "late events found by a re-scan",
                g(&self.found_by_rescan),
            ),
            (
                "tail_seen_ids",
                "gauge",
                "event ids remembered for de-duplication",
                g(&self.seen_ids),
            ),
            (
                "correlation_late_hits_total",
                "counter",
                "correlation inputs beyond the allowed lateness",
                g(&self.late_hits),
            ),
            (
                "correlation_evicted_keys_total",
                "counter",
                "correlation group keys evicted at the cap",
                g(&self.evicted_keys),
            ),
            (
                "checkpoints_total",
                "counter",
                "checkpoints written",
                g(&self.checkpoints),
            ),
            (
                "silent_log_groups",
                "gauge",
                "log groups currently reported silent",
                g(&self.silent_groups),
            ),
            (
                "kinesis_requests_total",
                "counter",
                "Kinesis ListShards, GetShardIterator and GetRecords requests",
                g(&self.kinesis_requests),
            ),
            (
                "kinesis_throttled_total",
                "counter",
                "Kinesis requests refused for throughput or failed transiently (retried)",
                g(&self.kinesis_throttled),
            ),
            (
                "kinesis_records_total",
                "counter",
                "Kinesis records read (CloudWatch Logs payloads)",
                g(&self.kinesis_records),
            ),
            (
                "kinesis_undecodable_records_total",
                "counter",
                "Kinesis records that are not CloudWatch Logs payloads of CloudTrail (skipped)",
                g(&self.kinesis_undecodable),
            ),
            (
                "kinesis_open_shards",
                "gauge",
                "open shards being read",
                g(&self.kinesis_open_shards),
            ),
            (
                "sqs_messages_total",
                "counter",
                "SQS messages received",
                g(&self.sqs_messages),
            ),
            (
                "sqs_messages_deleted_total",
                "counter",
                "SQS messages deleted once their objects' findings were in the outbox",
                g(&self.sqs_deleted),
            ),
            (
                "sqs_messages_failed_total",
                "counter",
                "SQS messages left in the queue after a failure (retried or dead-lettered)",
                g(&self.sqs_failed),
            ),
            (
                "sqs_queue_depth",
                "gauge",
                "messages in the queue (ApproximateNumberOfMessages, every 30 s)",
                g(&self.sqs_queue_depth),
            ),
            (
                "s3_objects_total",
                "counter",
                "CloudTrail objects read from S3",
                g(&self.s3_objects),
            ),
            (
                "s3_object_bytes_total",
                "counter",
                "bytes of CloudTrail objects read from S3",
                g(&self.s3_bytes),
            ),
        ];
        let mut s = String::new();
        for (name, ty, help, v) in rows {
            s.push_str(&format!(
                "# HELP trailwatch_{name} {help}\n# TYPE trailwatch_{name} {ty}\ntrailwatch_{name} {v}\n"
            ));
        }
        s.push_str(&format!(
            "# HELP trailwatch_kinesis_iterator_age_seconds how far the furthest-behind shard is from the stream's tip (MillisBehindLatest)\n\
             # TYPE trailwatch_kinesis_iterator_age_seconds gauge\n\
             trailwatch_kinesis_iterator_age_seconds {}\n",
            g(&self.kinesis_behind_ms) as f64 / 1000.0
        ));
        let newest = self.newest_event_ms.load(Ordering::Relaxed);
        s.push_str(&format!(
            "# HELP trailwatch_newest_event_time_seconds event time of the newest event processed\n\
             # TYPE trailwatch_newest_event_time_seconds gauge\n\
             trailwatch_newest_event_time_seconds {}\n",
            newest as f64 / 1000.0
        ));
        // Lag: how far behind the present the newest processed event is (CloudTrail's own
        // delivery delay of minutes included; a value that keeps growing means trailwatch,
        // or the trail, has fallen behind).
        if newest > 0 {
            s.push_str(&format!(
                "# HELP trailwatch_lag_seconds now minus the event time of the newest event processed\n\
                 # TYPE trailwatch_lag_seconds gauge\n\
                 trailwatch_lag_seconds {}\n",
                (wall_ms() - newest).max(0) as f64 / 1000.0
            ));
        }
        s
    }

    /// Copies the engine's counters after a cycle (the source's: `Feed::record_metrics`).
    pub(super) fn record_cycle(&self, engine: &PipelineStats) {
        self.late_hits
            .store(engine.correlation.late_hits, Ordering::Relaxed);
        self.evicted_keys
            .store(engine.correlation.evicted_keys, Ordering::Relaxed);
    }
}

/// Serves `metrics.render()` over plain HTTP on `listener` until the process ends.
pub async fn serve_metrics(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let m = metrics.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            // The request is not interpreted: every path answers with the metrics.
            let _ = tokio::time::timeout(Duration::from_secs(2), sock.read(&mut buf)).await;
            let body = m.render();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// A metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    fn is_metric_name(s: &str) -> bool {
        let mut c = s.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
    }

    #[test]
    fn render_is_prometheus_text() {
        let m = Metrics::default();
        m.events.store(12, Ordering::Relaxed);
        m.outbox_pending.store(3, Ordering::Relaxed);
        // An event a minute ago: the lag gauge is rendered too.
        m.newest_event_ms
            .store(wall_ms() - 60_000, Ordering::Relaxed);
        let text = m.render();
        assert!(text.ends_with('\n'), "{text}");
        let mut help = BTreeSet::new();
        let mut types = BTreeMap::new();
        let mut samples = BTreeSet::new();
        for line in text.lines() {
            assert!(
                !line.starts_with(char::is_whitespace) && !line.is_empty(),
                "blank or indented line {line:?} in\n{text}"
            );
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, doc) = rest.split_once(' ').expect("HELP without text");
                assert!(is_metric_name(name) && !doc.trim().is_empty(), "{line:?}");
                assert!(help.insert(name.to_string()), "second HELP for {name}");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, ty) = rest.split_once(' ').expect("TYPE without a type");
                assert!(is_metric_name(name), "{line:?}");
                assert!(["counter", "gauge"].contains(&ty), "{line:?}");
                assert!(
                    types.insert(name.to_string(), ty).is_none(),
                    "second TYPE for {name}"
                );
            } else {
                assert!(!line.starts_with('#'), "unexpected comment {line:?}");
                let (series, value) = line.rsplit_once(' ').expect("sample without a value");
                let name = match series.split_once('{') {
                    Some((name, labels)) => {
                        assert!(labels.ends_with('}'), "{line:?}");
                        name
                    }
                    None => series,
                };
                assert!(is_metric_name(name), "{line:?}");
                assert!(value.parse::<f64>().is_ok(), "value of {line:?}");
                samples.insert(name.to_string());
            }
        }
        for name in &samples {
            assert!(help.contains(name), "{name} has no HELP");
            assert!(types.contains_key(name), "{name} has no TYPE");
        }
        assert_eq!(help, samples, "HELP for a metric without samples");
        assert_eq!(types.keys().cloned().collect::<BTreeSet<_>>(), samples);
        assert!(text.contains("\ntrailwatch_events_total 12\n"), "{text}");
        assert!(text.contains("\ntrailwatch_outbox_pending 3\n"), "{text}");
        assert!(
            text.contains("\n# TYPE trailwatch_lag_seconds gauge\n"),
            "{text}"
        );
        assert!(samples.contains("trailwatch_lag_seconds"), "{text}");
    }

    #[test]
    fn no_lag_before_the_first_event() {
        let text = Metrics::default().render();
        assert!(!text.contains("trailwatch_lag_seconds"), "{text}");
        assert!(
            text.contains("\ntrailwatch_newest_event_time_seconds 0\n"),
            "{text}"
        );
    }
}
