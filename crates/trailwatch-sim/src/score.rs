//! Scores anomaly findings against the labels of a simulation.
//!
//! Detections are the findings with `kind: "anomaly"` and `details.phase: "start"`; other
//! kinds are counted and ignored, End findings are counted and paired with their Start by
//! `incident`. A Start is a true positive when its principal is a label's principal and its
//! time lies in `[label.start, label.end + 10 min]`; a label counts as detected once, by its
//! earliest Start (latency = that Start's time − label start). Starts matching no label are
//! false positives; those on a daily job's principal within the job's hour (plus 10 minutes)
//! after the job's first 3 days are reported apart: a baseline must have learnt the job.
//!
//! Precision is true-positive Starts over all Starts: a detector that opens several Starts
//! for one anomaly is not penalised for it, but the repeats are counted (`repeated_starts`).

use super::{AnomalyKind, Labels};
use crate::time::{Millis, parse_event_time};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

pub const TARGET_RECALL: f64 = 0.95;
pub const TARGET_PRECISION: f64 = 0.9;
pub const TARGET_MEDIAN_LATENCY_S: f64 = 120.0;
/// A Start this long after a label's end still counts for it.
pub const MATCH_GRACE_MS: Millis = 10 * 60_000;
/// Days a detector may take to learn a daily job.
pub const PERIODIC_LEARNING_DAYS: i64 = 3;
const DAY_MS: Millis = 86_400_000;

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("{source_name}:{line}: {message}")]
    Finding {
        source_name: String,
        line: usize,
        message: String,
    },
    #[error("labels: {what}: {message}")]
    Label { what: String, message: String },
}

/// A Start finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Line in the findings file (1-based).
    pub line: usize,
    pub principal: String,
    pub time: Millis,
    pub time_text: String,
    pub incident: Option<String>,
    pub metric: Option<String>,
}

/// The anomaly findings of a findings file.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    pub starts: Vec<Detection>,
    /// Incidents of End findings.
    pub ends: Vec<Option<String>>,
    /// Findings of other kinds (rule matches, correlations).
    pub other: usize,
}

/// Reads findings as JSON lines (`trailwatch backtest --format jsonl`). Empty lines are
/// skipped; a line that is not a JSON object, or an anomaly finding without a principal, a
/// valid time or a phase, is an error naming the line.
pub fn parse_findings(source_name: &str, text: &str) -> Result<Findings, ScoreError> {
    let mut out = Findings::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |message: String| ScoreError::Finding {
            source_name: source_name.to_string(),
            line,
            message,
        };
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(raw)
            .map_err(|e| err(format!("not JSON (column {}): {e}", e.column())))?;
        let Some(obj) = v.as_object() else {
            return Err(err("not a finding: expected a JSON object".into()));
        };
        let Some(kind) = obj.get("kind").and_then(Value::as_str) else {
            return Err(err("not a finding: no `kind`".into()));
        };
        if kind != "anomaly" {
            out.other += 1;
            continue;
        }
        let details = obj.get("details");
        let phase = details
            .and_then(|d| d.get("phase"))
            .and_then(Value::as_str)
            .ok_or_else(|| err("anomaly finding without `details.phase`".into()))?;
        let incident = obj
            .get("incident")
            .and_then(Value::as_str)
            .map(str::to_string);
        match phase {
            "start" => {
                let principal = obj
                    .get("principal")
                    .and_then(Value::as_str)
                    .ok_or_else(|| err("anomaly finding without `principal`".into()))?;
                let time_text = obj
                    .get("time")
                    .and_then(Value::as_str)
                    .ok_or_else(|| err("anomaly finding without `time`".into()))?;
                let time = parse_event_time(time_text)
                    .ok_or_else(|| err(format!("`time` is not an RFC 3339 time: {time_text}")))?;
                out.starts.push(Detection {
                    line,
                    principal: principal.to_string(),
                    time,
                    time_text: time_text.to_string(),
                    incident,
                    metric: details
                        .and_then(|d| d.get("metric"))
                        .and_then(Value::as_str)
                        .map(str::to_string),
                });
            }
            "end" => out.ends.push(incident),
            other => {
                return Err(err(format!(
                    "unknown `details.phase` `{other}` (expected start or end)"
                )));
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub median: Option<f64>,
    pub p90: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Miss {
    pub id: String,
    pub kind: AnomalyKind,
    pub principal: String,
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hit {
    pub id: String,
    pub kind: AnomalyKind,
    pub principal: String,
    pub start: String,
    pub detected_at: String,
    pub latency_seconds: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FalsePositive {
    pub principal: String,
    pub time: String,
    pub metric: Option<String>,
    /// Line in the findings file.
    pub line: usize,
    /// On a daily job's principal at the job's hour, after its first 3 days.
    pub periodic_job: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Targets {
    pub recall_min: f64,
    pub precision_min: f64,
    pub median_latency_max_seconds: f64,
    pub periodic_findings_after_day3: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub labels: usize,
    pub labels_by_kind: BTreeMap<String, usize>,
    pub detected: usize,
    pub recall: Option<f64>,
    pub start_findings: usize,
    pub end_findings: usize,
    /// Starts whose incident has no End in the file (still open when the data ended).
    pub open_incidents: usize,
    /// Findings of other kinds, ignored.
    pub other_findings: usize,
    pub true_positives: usize,
    /// True-positive Starts for a label that an earlier Start had already detected.
    pub repeated_starts: usize,
    pub false_positives: usize,
    pub precision: Option<f64>,
    pub latency_seconds: Latency,
    /// The same per anomaly kind (`write_burst`, `error_storm`).
    pub latency_seconds_by_kind: BTreeMap<String, Latency>,
    pub periodic_findings_after_day3: usize,
    pub hits: Vec<Hit>,
    pub misses: Vec<Miss>,
    pub false_positive_list: Vec<FalsePositive>,
    pub targets: Targets,
    /// Targets not met, in words; empty when all are.
    pub failed: Vec<String>,
    pub passed: bool,
}

fn label_time(what: &str, s: &str) -> Result<Millis, ScoreError> {
    parse_event_time(s).ok_or_else(|| ScoreError::Label {
        what: what.to_string(),
        message: format!("`{s}` is not an RFC 3339 time"),
    })
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Scores the Start findings against the labels.
pub fn score(labels: &Labels, findings: &Findings) -> Result<Report, ScoreError> {
    struct Window {
        start: Millis,
        until: Millis,
    }
    let mut windows = Vec::with_capacity(labels.anomalies.len());
    let mut by_principal: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut labels_by_kind = BTreeMap::new();
    for (i, l) in labels.anomalies.iter().enumerate() {
        let what = format!("anomaly {}", l.id);
        let start = label_time(&what, &l.start)?;
        let end = label_time(&what, &l.end)?;
        if end < start {
            return Err(ScoreError::Label {
                what,
                message: "end is before start".into(),
            });
        }
        windows.push(Window {
            start,
            until: end + MATCH_GRACE_MS,
        });
        by_principal
            .entry(l.principal.as_str())
            .or_default()
            .push(i);
        *labels_by_kind.entry(l.kind.to_string()).or_insert(0) += 1;
    }
    // Daily jobs: (first day's midnight, hour) per principal.
    let mut jobs: HashMap<&str, Vec<(Millis, u32)>> = HashMap::new();
    for j in &labels.periodic_jobs {
        let what = format!("periodic job {}", j.principal);
        let first = label_time(&what, &format!("{}T00:00:00Z", j.first_day))?;
        if j.hour_utc > 23 {
            return Err(ScoreError::Label {
                what,
                message: format!("hour_utc {} is not an hour", j.hour_utc),
            });
        }
        jobs.entry(j.principal.as_str())
            .or_default()
            .push((first, j.hour_utc));
    }
    let in_job_hour = |principal: &str, t: Millis| -> bool {
        jobs.get(principal).is_some_and(|list| {
            list.iter().any(|&(first, hour)| {
                let since = t - first - hour as i64 * 3_600_000;
                let day = since.div_euclid(DAY_MS);
                day >= PERIODIC_LEARNING_DAYS
                    && since.rem_euclid(DAY_MS) < 3_600_000 + MATCH_GRACE_MS
            })
        })
    };

    let mut starts: Vec<&Detection> = findings.starts.iter().collect();
    starts.sort_by(|a, b| a.time.cmp(&b.time).then(a.line.cmp(&b.line)));
    let mut first_hit: Vec<Option<&Detection>> = vec![None; labels.anomalies.len()];
    let mut true_positives = 0;
    let mut repeated_starts = 0;
    let mut fps = Vec::new();
    for d in &starts {
        let matched: Vec<usize> = by_principal
            .get(d.principal.as_str())
            .map(|ids| {
                ids.iter()
                    .copied()
                    .filter(|&i| d.time >= windows[i].start && d.time <= windows[i].until)
                    .collect()
            })
            .unwrap_or_default();
        if matched.is_empty() {
            fps.push(FalsePositive {
                principal: d.principal.clone(),
                time: d.time_text.clone(),
                metric: d.metric.clone(),
                line: d.line,
                periodic_job: in_job_hour(&d.principal, d.time),
            });
            continue;
        }
        true_positives += 1;
        // The earliest undetected label it matches, else it repeats a detection.
        match matched.iter().find(|&&i| first_hit[i].is_none()) {
            Some(&i) => first_hit[i] = Some(d),
            None => repeated_starts += 1,
        }
    }

    let mut hits = Vec::new();
    let mut misses = Vec::new();
    let mut latencies = Vec::new();
    for (i, l) in labels.anomalies.iter().enumerate() {
        match first_hit[i] {
            Some(d) => {
                let lat = (d.time - windows[i].start) as f64 / 1000.0;
                latencies.push(lat);
                hits.push(Hit {
                    id: l.id.clone(),
                    kind: l.kind,
                    principal: l.principal.clone(),
                    start: l.start.clone(),
                    detected_at: d.time_text.clone(),
                    latency_seconds: lat,
                });
            }
            None => misses.push(Miss {
                id: l.id.clone(),
                kind: l.kind,
                principal: l.principal.clone(),
                start: l.start.clone(),
                end: l.end.clone(),
            }),
        }
    }
    latencies.sort_by(f64::total_cmp);
    let mut by_kind: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for h in &hits {
        by_kind
            .entry(h.kind.to_string())
            .or_default()
            .push(h.latency_seconds);
    }
    let latency_seconds_by_kind = by_kind
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_by(f64::total_cmp);
            let l = Latency {
                median: median(&v),
                p90: percentile(&v, 0.9),
                max: v.last().copied(),
            };
            (k, l)
        })
        .collect();
    let ended: HashSet<&str> = findings.ends.iter().flatten().map(String::as_str).collect();
    let open_incidents = findings
        .starts
        .iter()
        .filter(|d| d.incident.as_deref().is_none_or(|i| !ended.contains(i)))
        .count();
    let n_labels = labels.anomalies.len();
    let detected = hits.len();
    let recall = (n_labels > 0).then(|| detected as f64 / n_labels as f64);
    let precision = (!starts.is_empty()).then(|| true_positives as f64 / starts.len() as f64);
    let latency = Latency {
        median: median(&latencies),
        p90: percentile(&latencies, 0.9),
        max: latencies.last().copied(),
    };
    let periodic = fps.iter().filter(|f| f.periodic_job).count();

    let mut failed = Vec::new();
    match recall {
        Some(r) if r >= TARGET_RECALL => {}
        Some(r) => failed.push(format!("recall {r:.3} < {TARGET_RECALL}")),
        None => failed.push("no labelled anomalies to detect".to_string()),
    }
    match precision {
        Some(p) if p >= TARGET_PRECISION => {}
        Some(p) => failed.push(format!("precision {p:.3} < {TARGET_PRECISION}")),
        None => failed.push("no Start findings (precision undefined)".to_string()),
    }
    match latency.median {
        Some(m) if m <= TARGET_MEDIAN_LATENCY_S => {}
        Some(m) => failed.push(format!(
            "median latency {m:.0} s > {TARGET_MEDIAN_LATENCY_S} s"
        )),
        None => failed.push("no detections (latency undefined)".to_string()),
    }
    if periodic > 0 {
        failed.push(format!(
            "{periodic} finding(s) on daily jobs after their first {PERIODIC_LEARNING_DAYS} days"
        ));
    }
    Ok(Report {
        labels: n_labels,
        labels_by_kind,
        detected,
        recall,
        start_findings: starts.len(),
        end_findings: findings.ends.len(),
        open_incidents,
        other_findings: findings.other,
        true_positives,
        repeated_starts,
        false_positives: fps.len(),
        precision,
        latency_seconds: latency,
        latency_seconds_by_kind,
        periodic_findings_after_day3: periodic,
        hits,
        misses,
        false_positive_list: fps,
        targets: Targets {
            recall_min: TARGET_RECALL,
            precision_min: TARGET_PRECISION,
            median_latency_max_seconds: TARGET_MEDIAN_LATENCY_S,
            periodic_findings_after_day3: 0,
        },
        passed: failed.is_empty(),
        failed,
    })
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".to_string(), |x| format!("{x:.digits$}"))
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "FAIL" }
}

impl Report {
    /// The report for people: figures with their targets, then the misses and false
    /// positives.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let kinds: Vec<String> = self
            .labels_by_kind
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        let _ = writeln!(
            s,
            "labels               {} ({})",
            self.labels,
            kinds.join(", ")
        );
        let _ = writeln!(s, "detected             {}", self.detected);
        let _ = writeln!(
            s,
            "recall               {:<8} target >= {TARGET_RECALL}   {}",
            opt(self.recall, 3),
            verdict(self.recall.is_some_and(|r| r >= TARGET_RECALL))
        );
        let _ = writeln!(
            s,
            "start findings       {} (end findings {}, open incidents {}, other findings {} ignored)",
            self.start_findings, self.end_findings, self.open_incidents, self.other_findings
        );
        let _ = writeln!(
            s,
            "true positives       {} (of which {} repeat a detection)",
            self.true_positives, self.repeated_starts
        );
        let _ = writeln!(s, "false positives      {}", self.false_positives);
        let _ = writeln!(
            s,
            "precision            {:<8} target >= {TARGET_PRECISION}    {}",
            opt(self.precision, 3),
            verdict(self.precision.is_some_and(|p| p >= TARGET_PRECISION))
        );
        let _ = writeln!(
            s,
            "latency (s)          median {}, p90 {}, max {}   target median <= {TARGET_MEDIAN_LATENCY_S}   {}",
            opt(self.latency_seconds.median, 0),
            opt(self.latency_seconds.p90, 0),
            opt(self.latency_seconds.max, 0),
            verdict(
                self.latency_seconds
                    .median
                    .is_some_and(|m| m <= TARGET_MEDIAN_LATENCY_S)
            )
        );
        for (kind, l) in &self.latency_seconds_by_kind {
            let _ = writeln!(
                s,
                "  {kind:<18} median {}, p90 {}, max {}",
                opt(l.median, 0),
                opt(l.p90, 0),
                opt(l.max, 0)
            );
        }
        let _ = writeln!(
            s,
            "daily-job findings after day {PERIODIC_LEARNING_DAYS}: {}   target 0   {}",
            self.periodic_findings_after_day3,
            verdict(self.periodic_findings_after_day3 == 0)
        );
        if !self.misses.is_empty() {
            let _ = writeln!(s, "\nmissed anomalies:");
            for m in &self.misses {
                let _ = writeln!(
                    s,
                    "  {:<4} {:<12} {}  {}",
                    m.id, m.kind, m.start, m.principal
                );
            }
        }
        if !self.false_positive_list.is_empty() {
            let _ = writeln!(s, "\nfalse positives:");
            for f in &self.false_positive_list {
                let _ = writeln!(
                    s,
                    "  {}  {}{}{}  (line {})",
                    f.time,
                    f.principal,
                    f.metric
                        .as_deref()
                        .map(|m| format!(" [{m}]"))
                        .unwrap_or_default(),
                    if f.periodic_job { " DAILY JOB" } else { "" },
                    f.line
                );
            }
        }
        let _ = writeln!(
            s,
            "\nresult: {}",
            if self.passed {
                "PASS (all targets met)".to_string()
            } else {
                format!("FAIL ({})", self.failed.join("; "))
            }
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AnomalyLabel, PeriodicLabel};

    fn label(id: &str, principal: &str, start: &str, end: &str) -> AnomalyLabel {
        AnomalyLabel {
            id: id.into(),
            kind: AnomalyKind::WriteBurst,
            principal: principal.into(),
            account: String::new(),
            start: start.into(),
            end: end.into(),
            rate_per_min: 30.0,
            usual_per_min: 1.0,
            principal_kind: "human".into(),
            region: String::new(),
            source_ip: String::new(),
            user_agent: String::new(),
        }
    }

    fn labels() -> Labels {
        Labels {
            generator: Value::Null,
            anomalies: vec![
                label(
                    "a01",
                    "arn:r/alice",
                    "2026-10-03T10:00:00Z",
                    "2026-10-03T10:20:00Z",
                ),
                label(
                    "a02",
                    "arn:r/bob",
                    "2026-10-04T01:00:00Z",
                    "2026-10-04T01:10:00Z",
                ),
            ],
            periodic_jobs: vec![PeriodicLabel {
                principal: "arn:r/backup".into(),
                account: String::new(),
                hour_utc: 2,
                start_minute: 5,
                minutes: 15,
                first_day: "2026-10-01".into(),
                writes_per_run: 200,
            }],
        }
    }

    fn start(principal: &str, time: &str, incident: &str) -> String {
        format!(
            r#"{{"kind":"anomaly","principal":"{principal}","time":"{time}","incident":"{incident}","details":{{"phase":"start","metric":"write_volume"}}}}"#
        )
    }

    fn end(principal: &str, time: &str, incident: &str) -> String {
        format!(
            r#"{{"kind":"anomaly","principal":"{principal}","time":"{time}","incident":"{incident}","details":{{"phase":"end"}}}}"#
        )
    }

    fn run(lines: &[String]) -> Report {
        let f = parse_findings("f.jsonl", &lines.join("\n")).unwrap();
        score(&labels(), &f).unwrap()
    }

    #[test]
    fn perfect_detection_passes() {
        let r = run(&[
            start("arn:r/alice", "2026-10-03T10:01:00Z", "i1"),
            end("arn:r/alice", "2026-10-03T10:25:00Z", "i1"),
            start("arn:r/bob", "2026-10-04T01:03:00Z", "i2"),
            r#"{"kind":"match","principal":"arn:r/alice","time":"2026-10-03T10:00:00Z"}"#.into(),
        ]);
        assert_eq!(r.detected, 2);
        assert_eq!(r.recall, Some(1.0));
        assert_eq!(r.precision, Some(1.0));
        assert_eq!(r.latency_seconds.median, Some(120.0));
        assert_eq!(r.latency_seconds.max, Some(180.0));
        assert_eq!(r.latency_seconds_by_kind["write_burst"].median, Some(120.0));
        assert_eq!(r.end_findings, 1);
        assert_eq!(r.open_incidents, 1);
        assert_eq!(r.other_findings, 1);
        assert!(r.passed, "{:?}", r.failed);
    }

    #[test]
    fn misses_false_positives_and_window_edges() {
        let r = run(&[
            // Before the label: not a match.
            start("arn:r/alice", "2026-10-03T09:59:59Z", "i0"),
            // At end + 10 min exactly: still a match.
            start("arn:r/alice", "2026-10-03T10:30:00Z", "i1"),
            // The first Start for the label (the one at 10:30 repeats it).
            start("arn:r/alice", "2026-10-03T10:25:00Z", "i1b"),
            // After end + 10 min: not a match.
            start("arn:r/alice", "2026-10-03T10:30:01Z", "i1c"),
            // Right time, wrong principal.
            start("arn:r/carol", "2026-10-04T01:02:00Z", "i2"),
        ]);
        assert_eq!(r.detected, 1);
        assert_eq!(r.recall, Some(0.5));
        assert_eq!(r.true_positives, 2);
        assert_eq!(r.repeated_starts, 1);
        assert_eq!(r.false_positives, 3);
        assert_eq!(r.precision, Some(0.4));
        assert_eq!(r.latency_seconds.median, Some(1500.0));
        assert_eq!(r.misses.len(), 1);
        assert_eq!(r.misses[0].id, "a02");
        let fp: Vec<(&str, usize)> = r
            .false_positive_list
            .iter()
            .map(|f| (f.time.as_str(), f.line))
            .collect();
        assert_eq!(
            fp,
            vec![
                ("2026-10-03T09:59:59Z", 1),
                ("2026-10-03T10:30:01Z", 4),
                ("2026-10-04T01:02:00Z", 5)
            ]
        );
        assert!(!r.passed);
        assert_eq!(r.failed.len(), 3, "{:?}", r.failed);
        let text = r.to_text();
        assert!(
            text.contains("missed anomalies") && text.contains("a02"),
            "{text}"
        );
        assert!(text.contains("(line 5)"), "{text}");
    }

    #[test]
    fn daily_job_findings_count_only_after_three_days_at_the_job_hour() {
        let base = [
            start("arn:r/alice", "2026-10-03T10:00:30Z", "a"),
            start("arn:r/bob", "2026-10-04T01:00:30Z", "b"),
        ];
        let mut lines = base.to_vec();
        // Days 0-2 at the job's hour: learning, not counted.
        lines.push(start("arn:r/backup", "2026-10-01T02:10:00Z", "j0"));
        lines.push(start("arn:r/backup", "2026-10-03T02:59:00Z", "j2"));
        // Day 3 at 02:06 and day 5 at 03:09 (within the hour + 10 min grace): counted.
        lines.push(start("arn:r/backup", "2026-10-04T02:06:00Z", "j3"));
        lines.push(start("arn:r/backup", "2026-10-06T03:09:00Z", "j5"));
        // Day 4 at 14:00: a false positive, but not at the job's hour.
        lines.push(start("arn:r/backup", "2026-10-05T14:00:00Z", "jx"));
        let r = run(&lines);
        assert_eq!(r.false_positives, 5);
        assert_eq!(r.periodic_findings_after_day3, 2);
        let flagged: Vec<&str> = r
            .false_positive_list
            .iter()
            .filter(|f| f.periodic_job)
            .map(|f| f.time.as_str())
            .collect();
        assert_eq!(
            flagged,
            vec!["2026-10-04T02:06:00Z", "2026-10-06T03:09:00Z"]
        );
        assert!(r.failed.iter().any(|f| f.contains("daily jobs")));
    }

    #[test]
    fn end_findings_are_not_detections() {
        let r = run(&[
            end("arn:r/alice", "2026-10-03T10:05:00Z", "i1"),
            end("arn:r/bob", "2026-10-04T01:05:00Z", "i2"),
        ]);
        assert_eq!(r.start_findings, 0);
        assert_eq!(r.end_findings, 2);
        assert_eq!(r.detected, 0);
        assert_eq!(r.precision, None);
        assert!(!r.passed);
    }

    #[test]
    fn malformed_lines_name_their_line() {
        let cases = [
            ("{\"kind\":\"match\"}\n\n[1,2]\n", 3, "JSON object"),
            ("{oops\n", 1, "not JSON"),
            ("{\"x\":1}\n", 1, "kind"),
            (
                "{\"kind\":\"anomaly\",\"principal\":\"p\",\"time\":\"t\",\"details\":{\"phase\":\"start\"}}",
                1,
                "RFC 3339",
            ),
            ("{\"kind\":\"anomaly\",\"details\":{}}", 1, "details.phase"),
            (
                "{\"kind\":\"anomaly\",\"details\":{\"phase\":\"middle\"}}",
                1,
                "unknown",
            ),
            (
                "{\"kind\":\"anomaly\",\"time\":\"2026-10-01T00:00:00Z\",\"details\":{\"phase\":\"start\"}}",
                1,
                "principal",
            ),
        ];
        for (text, line, needle) in cases {
            match parse_findings("f.jsonl", text) {
                Err(ScoreError::Finding {
                    line: l, message, ..
                }) => {
                    assert_eq!(l, line, "{text}: {message}");
                    assert!(message.contains(needle), "{text}: {message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        let e = parse_findings("f.jsonl", "{oops").unwrap_err().to_string();
        assert!(e.starts_with("f.jsonl:1: "), "{e}");
    }

    #[test]
    fn bad_label_times_are_errors() {
        let mut l = labels();
        l.anomalies[0].end = "yesterday".into();
        assert!(score(&l, &Findings::default()).is_err());
        let mut l = labels();
        l.anomalies[0].end = "2026-10-03T09:00:00Z".into();
        assert!(score(&l, &Findings::default()).is_err());
    }

    #[test]
    fn percentiles() {
        let v = [10.0, 20.0, 30.0, 40.0];
        assert_eq!(median(&v), Some(25.0));
        assert_eq!(median(&v[..3]), Some(20.0));
        assert_eq!(percentile(&v, 0.9), Some(40.0));
        assert_eq!(percentile(&[5.0], 0.9), Some(5.0));
        assert_eq!(percentile(&[], 0.9), None);
    }
}
