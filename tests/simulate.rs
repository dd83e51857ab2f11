//! The traffic simulator end to end: determinism, labels that hold in the data, archives the
//! backtest reads without problems, and the `simulate` command line (generate, reuse, score).
//!
//! Parameters are small (3 days, 20 principals) so a debug build runs this in seconds.

mod common;

use common::files;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::process::Command;
use trailwatch_sim::{AnomalyKind, Labels, Params};

fn small() -> Params {
    Params {
        days: 3,
        principals: 20,
        anomalies: 4,
        seed: 7,
        scale: 0.5,
    }
}

/// One decoded record: grouping principal, event time (ms), read-only, refused.
struct Rec {
    principal: String,
    time: i64,
    read_only: bool,
    refused: bool,
}

fn grouping_arn(r: &Value) -> String {
    let ui = &r["userIdentity"];
    ui["sessionContext"]["sessionIssuer"]["arn"]
        .as_str()
        .or(ui["arn"].as_str())
        .unwrap()
        .to_string()
}

/// Decodes every archive file, checking each is gzip of `{"Records":[...]}` in the S3 layout
/// and that every record has the fields of a real one.
fn decode_all(dir: &Path) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    let name_re = regex::Regex::new(
        r"AWSLogs/(\d{12})/CloudTrail/([a-z0-9-]+)/(\d{4})/(\d{2})/(\d{2})/(\d{12})_CloudTrail_([a-z0-9-]+)_(\d{8})T\d{4}Z_[A-Za-z0-9]{16}\.json\.gz$",
    )
    .unwrap();
    for f in files(&dir.join("AWSLogs")) {
        let rel = f.to_string_lossy().replace('\\', "/");
        let caps = name_re
            .captures(&rel)
            .unwrap_or_else(|| panic!("not an S3 CloudTrail key: {rel}"));
        assert_eq!(&caps[1], &caps[6], "{rel}");
        assert_eq!(&caps[2], &caps[7], "{rel}");
        assert_eq!(format!("{}{}{}", &caps[3], &caps[4], &caps[5]), &caps[8]);
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&f).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        let records = doc["Records"].as_array().unwrap();
        assert!(!records.is_empty(), "{rel}");
        for r in records {
            for key in [
                "eventVersion",
                "userIdentity",
                "eventTime",
                "eventSource",
                "eventName",
                "awsRegion",
                "sourceIPAddress",
                "userAgent",
                "requestID",
                "eventID",
                "readOnly",
                "eventType",
                "managementEvent",
                "eventCategory",
                "recipientAccountId",
            ] {
                assert!(r.get(key).is_some(), "{rel}: record without {key}: {r}");
            }
            assert_eq!(r["awsRegion"].as_str(), Some(&caps[2]));
            assert_eq!(r["recipientAccountId"].as_str(), Some(&caps[1]));
            let t = r["eventTime"].as_str().unwrap();
            assert!(t.ends_with('Z') && t.len() == 20, "{t}");
            assert!(ids.insert(r["eventID"].as_str().unwrap().to_string()));
            if r.get("errorCode").is_some() {
                assert!(r["errorMessage"].is_string());
            }
            out.push(Rec {
                principal: grouping_arn(r),
                time: trailwatch::util::time::parse_event_time(t).unwrap(),
                read_only: r["readOnly"].as_bool().unwrap(),
                refused: r.get("errorCode").is_some(),
            });
        }
    }
    out
}

fn ms(t: &str) -> i64 {
    trailwatch::util::time::parse_event_time(t).unwrap()
}

#[test]
fn archive_is_deterministic_and_labels_hold_in_the_data() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let p = small();
    let sa = trailwatch_sim::generate(a.path(), &p, false).unwrap();
    let sb = trailwatch_sim::generate(b.path(), &p, false).unwrap();
    assert_eq!(sa.records, sb.records);
    let fa = files(a.path());
    let fb = files(b.path());
    assert_eq!(fa.len(), fb.len());
    for (x, y) in fa.iter().zip(&fb) {
        assert_eq!(
            x.strip_prefix(a.path()).unwrap(),
            y.strip_prefix(b.path()).unwrap()
        );
        assert!(
            std::fs::read(x).unwrap() == std::fs::read(y).unwrap(),
            "{} differs between runs",
            x.display()
        );
    }

    let recs = decode_all(a.path());
    assert_eq!(recs.len() as u64, sa.records);
    let labels = Labels::read(&a.path().join("labels.json")).unwrap();
    assert_eq!(labels.anomalies.len(), p.anomalies);
    assert!(labels.periodic_jobs.len() >= 3);
    let kinds: HashSet<AnomalyKind> = labels.anomalies.iter().map(|l| l.kind).collect();
    assert_eq!(kinds.len(), 2, "both bursts and error storms");
    let who: HashSet<&str> = labels
        .anomalies
        .iter()
        .map(|l| l.principal_kind.as_str())
        .collect();
    assert!(who.contains("human") && who.contains("automation"));

    // Per principal and minute: writes and refused calls.
    let start = trailwatch_sim::start_millis();
    let mut writes: HashMap<(&str, i64), u32> = HashMap::new();
    let mut errors: HashMap<(&str, i64), u32> = HashMap::new();
    for r in &recs {
        let m = (r.time - start) / 60_000;
        if !r.read_only {
            *writes.entry((r.principal.as_str(), m)).or_default() += 1;
        }
        if r.refused {
            *errors.entry((r.principal.as_str(), m)).or_default() += 1;
        }
    }
    let hour_total = |map: &HashMap<(&str, i64), u32>, p: &str, hour: i64| -> u32 {
        (hour * 60..hour * 60 + 60)
            .map(|m| map.get(&(p, m)).copied().unwrap_or(0))
            .sum()
    };
    for l in &labels.anomalies {
        let (s, e) = (
            (ms(&l.start) - start) / 60_000,
            (ms(&l.end) - start) / 60_000,
        );
        assert!(s >= 2 * 1440, "{} starts before day 2", l.id);
        assert!((e - s) >= 5 && (e - s) <= 30, "{}: {} minutes", l.id, e - s);
        let map = match l.kind {
            AnomalyKind::WriteBurst => &writes,
            AnomalyKind::ErrorStorm => &errors,
        };
        // The principal has history before the anomaly.
        assert!(
            recs.iter()
                .any(|r| r.principal == l.principal && r.time < ms(&l.start)),
            "{}: no history",
            l.id
        );
        let mut busiest_usual = 0.0f64;
        for h in s / 60..=(e - 1) / 60 {
            let mut back = h - 24;
            while back >= 0 {
                busiest_usual =
                    busiest_usual.max(hour_total(map, &l.principal, back) as f64 / 60.0);
                back -= 24;
            }
        }
        for m in s..e {
            let n = map.get(&(l.principal.as_str(), m)).copied().unwrap_or(0) as f64;
            assert!(n >= 20.0, "{} minute {m}: {n} < 20/min", l.id);
            if l.kind == AnomalyKind::WriteBurst {
                assert!(
                    n >= 10.0 * busiest_usual,
                    "{} minute {m}: {n} < 10 x {busiest_usual}",
                    l.id
                );
            }
        }
        assert!(l.rate_per_min >= 20.0 && l.rate_per_min >= 10.0 * l.usual_per_min);
    }

    // Daily jobs recur every day at their hour, and write nothing outside their runs.
    for j in &labels.periodic_jobs {
        let mut per_day = BTreeMap::new();
        for ((p, m), n) in &writes {
            if *p != j.principal {
                continue;
            }
            let hour = (m / 60) % 24;
            assert_eq!(
                hour, j.hour_utc as i64,
                "{} writes outside its hour",
                j.principal
            );
            *per_day.entry(m / 1440).or_insert(0u32) += n;
        }
        assert_eq!(
            per_day.len(),
            p.days as usize,
            "{}: {per_day:?}",
            j.principal
        );
        for (d, n) in per_day {
            assert!(
                (80..=450).contains(&n),
                "{} day {d}: {n} writes",
                j.principal
            );
        }
    }

    // Nothing unlabelled looks like an anomaly: outside the labels and the daily jobs' hours,
    // no principal makes 20 writes or 10 refused calls in a minute.
    for (map, limit) in [(&writes, 20), (&errors, 10)] {
        for ((p, m), n) in map.iter() {
            if *n < limit {
                continue;
            }
            let labelled = labels.anomalies.iter().any(|l| {
                l.principal == *p
                    && *m >= (ms(&l.start) - start) / 60_000
                    && *m < (ms(&l.end) - start) / 60_000
            });
            let job = labels
                .periodic_jobs
                .iter()
                .any(|j| j.principal == *p && (m / 60) % 24 == j.hour_utc as i64);
            assert!(labelled || job, "{p} minute {m}: {n} calls, unlabelled");
        }
    }

    // Background refusals exist outside the storms, but stay a handful per principal-day.
    let storm_principals: HashSet<&str> = labels
        .anomalies
        .iter()
        .map(|l| l.principal.as_str())
        .collect();
    let background: u32 = errors
        .iter()
        .filter(|((p, _), _)| !storm_principals.contains(p))
        .map(|(_, n)| n)
        .sum();
    assert!(background > 0 && background < 20 * p.principals as u32 * p.days);

    // The backtest reads every file without a problem.
    let out = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args(["backtest", "--strict", "--format", "json"])
        .arg(a.path().join("AWSLogs"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let summary = &doc["summary"];
    assert_eq!(summary["records"].as_u64(), Some(sa.records));
    assert_eq!(summary["files_read"].as_u64(), Some(sa.files));
    assert_eq!(summary["malformed_records"].as_u64(), Some(0));
    assert_eq!(summary["issues"].as_array().map(Vec::len), Some(0));
}

fn tw(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn command_line_generate_reuse_and_score() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    let o = out.to_str().unwrap();
    let gen_args = [
        "simulate",
        "generate",
        "--out",
        o,
        "--days",
        "3",
        "--principals",
        "12",
        "--anomalies",
        "2",
        "--scale",
        "0.2",
    ];
    let r = tw(&gen_args);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stderr).contains("records in"));
    let labels_path = out.join("labels.json");
    let before = std::fs::metadata(&labels_path).unwrap().modified().unwrap();
    // --reuse with the same parameters keeps the files.
    let mut reuse = gen_args.to_vec();
    reuse.push("--reuse");
    let r = tw(&reuse);
    assert!(r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("kept the earlier simulation"));
    assert_eq!(
        std::fs::metadata(&labels_path).unwrap().modified().unwrap(),
        before
    );

    // A directory that is not a simulation is never overwritten.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    let r = tw(&["simulate", "generate", "--out", foreign.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(2));
    assert!(foreign.join("notes.txt").exists());
    // Parameters that cannot work are usage errors.
    let r = tw(&["simulate", "generate", "--out", o, "--days", "2"]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("day 2"));

    // Perfect findings: one Start (and End) per label, 30 s after its start.
    let labels = Labels::read(&labels_path).unwrap();
    let mut lines = String::new();
    for l in &labels.anomalies {
        let t = trailwatch::util::time::parse_event_time(&l.start).unwrap() + 30_000;
        let time = chrono::DateTime::from_timestamp_millis(t)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        lines.push_str(&format!(
            "{{\"kind\":\"anomaly\",\"principal\":\"{}\",\"time\":\"{time}\",\"incident\":\"i-{}\",\"details\":{{\"phase\":\"start\",\"metric\":\"write_volume\"}}}}\n",
            l.principal, l.id
        ));
        lines.push_str(&format!(
            "{{\"kind\":\"anomaly\",\"principal\":\"{}\",\"time\":\"{}\",\"incident\":\"i-{}\",\"details\":{{\"phase\":\"end\"}}}}\n",
            l.principal, l.end, l.id
        ));
    }
    lines.push_str("{\"kind\":\"match\",\"principal\":\"x\",\"time\":\"2026-10-01T00:00:00Z\"}\n");
    let findings = dir.path().join("findings.jsonl");
    std::fs::write(&findings, &lines).unwrap();
    let f = findings.to_str().unwrap();
    let l = labels_path.to_str().unwrap();
    let r = tw(&["simulate", "score", "--labels", l, f]);
    let text = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.status.code(), Some(0), "{text}");
    assert!(text.contains("PASS"), "{text}");
    let r = tw(&["simulate", "score", "--labels", l, f, "--format", "json"]);
    let report: Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(report["recall"].as_f64(), Some(1.0));
    assert_eq!(report["latency_seconds"]["median"].as_f64(), Some(30.0));
    assert_eq!(report["other_findings"].as_u64(), Some(1));

    // No findings: targets missed, exit 1.
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let r = tw(&["simulate", "score", "--labels", l, empty.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stdout).contains("missed anomalies"));

    // A malformed line is an input error naming the line.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"kind\":\"match\"}\n{not json\n").unwrap();
    let r = tw(&["simulate", "score", "--labels", l, bad.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("bad.jsonl:2:"));
}
