//! What a backtest reports besides its findings: counts of inputs and records, problems met
//! (with their place), per-rule tallies, alerts, baselines.

use crate::util::time::parse_event_time;
use std::collections::BTreeMap;

/// A problem with one input or record; the run goes on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Issue {
    /// `file`, `file: record N` or `file: line N`.
    pub place: String,
    pub message: String,
}

/// Per-rule tally.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RuleTally {
    pub title: String,
    pub level: String,
    pub findings: u64,
    /// Distinct principals behind the findings.
    pub principals: usize,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BacktestSummary {
    pub files_read: usize,
    /// Inputs that are not CloudTrail: neither JSON nor gzip (a README, …), or JSON that is
    /// neither a record nor an envelope of records (an IAM policy, …).
    pub files_skipped: usize,
    /// Those inputs and why each was skipped (the first [`MAX_ISSUES`]).
    pub skipped: Vec<Issue>,
    pub digest_files_skipped: usize,
    /// Files not read because their delivery date cannot hold events of --since/--until.
    pub files_pruned_by_date: usize,
    /// S3-layout day directories not listed for the same reason.
    pub days_pruned_by_date: usize,
    /// S3 objects listed (every key under the `s3://` prefixes that were listed).
    pub objects_listed: usize,
    /// S3 objects read (downloaded whole).
    pub objects_read: usize,
    /// S3 objects not read because their delivery date cannot hold events of
    /// --since/--until (counted in `files_pruned_by_date` too).
    pub objects_pruned_by_date: usize,
    /// Bytes of every input read (files and S3 objects, as stored: compressed).
    pub bytes_read: u64,
    pub control_messages_skipped: usize,
    /// Records read (in the time range or not).
    pub records: u64,
    pub malformed_records: u64,
    /// Records outside `--since`/`--until`.
    pub records_out_of_range: u64,
    /// Records without a usable event time, neither `eventTime` nor `@timestamp` (processed
    /// in arrival order).
    pub records_without_time: u64,
    /// Records without `eventTime` whose event time came from `@timestamp` (logstash
    /// exports): used for ordering, the time range, windows and their findings' `time`.
    pub records_time_from_fallback: u64,
    /// Records older than what the re-order window had already released.
    pub late_records: u64,
    /// Records delivered twice (same eventID, time and name): the copy is not read again.
    pub duplicate_records: u64,
    /// Findings identical to one already reported.
    pub duplicate_findings: u64,
    /// Matches dropped by `--exceptions`.
    pub excepted_findings: u64,
    /// Correlation inputs older than the allowed lateness (not counted in windows).
    pub late_hits: u64,
    /// Event ids of the first of those.
    pub late_hit_samples: Vec<String>,
    /// Correlation group keys evicted at the key cap.
    pub evicted_keys: u64,
    pub first_event_time: Option<String>,
    pub last_event_time: Option<String>,
    pub findings: u64,
    pub by_rule: BTreeMap<String, RuleTally>,
    /// Principals with the most findings (at most 10).
    pub top_principals: Vec<(String, u64)>,
    pub issues: Vec<Issue>,
    /// Issues beyond the first [`MAX_ISSUES`] are counted, not kept.
    pub issues_not_shown: u64,
    /// Counters of the baselines, when they ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baselines: Option<BaselineSummary>,
    /// Incidents and alerts, with [`super::BacktestOptions::alerts`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertSummary>,
    /// The baselines' final state (with [`super::BacktestOptions::keep_baseline_state`]).
    #[serde(skip)]
    pub baseline_state: Option<crate::baseline::Snapshot>,
}

/// What the alert stage decided in a run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AlertSummary {
    pub incidents: u64,
    /// Every alert: new + updates + closes.
    pub alerts: u64,
    pub new: u64,
    pub updates: u64,
    pub closes: u64,
    /// Incidents below the minimum level (not alerted).
    pub below_min_level: u64,
}

impl BacktestSummary {
    /// Alerts per day of event time covered (at least one day).
    pub fn alerts_per_day(&self) -> Option<f64> {
        let a = self.alerts.as_ref()?;
        let first = self.first_event_time.as_deref().and_then(parse_event_time);
        let last = self.last_event_time.as_deref().and_then(parse_event_time);
        let days = match (first, last) {
            (Some(f), Some(l)) => ((l - f) as f64 / 86_400_000.0).max(1.0),
            _ => 1.0,
        };
        Some(a.alerts as f64 / days)
    }
}

/// What the baselines did in a run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BaselineSummary {
    /// Series tracked at the end.
    pub series: usize,
    #[serde(flatten)]
    pub stats: crate::baseline::BaselineStats,
}

pub const MAX_ISSUES: usize = 200;

impl BacktestSummary {
    pub(super) fn issue(&mut self, place: String, message: String) {
        if self.issues.len() < MAX_ISSUES {
            self.issues.push(Issue { place, message });
        } else {
            self.issues_not_shown += 1;
        }
    }

    /// Any input problem (for `--strict`): an unreadable input, a malformed record, or an
    /// input skipped as not CloudTrail. (Digest files and CloudWatch Logs control messages
    /// are CloudTrail's own and not problems.)
    pub fn has_input_problems(&self) -> bool {
        !self.issues.is_empty()
            || self.issues_not_shown > 0
            || self.malformed_records > 0
            || self.files_skipped > 0
    }
}
