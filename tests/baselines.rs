//! Baselines end to end: a `baseline` document, archives in, anomaly findings out, and the
//! `baseline build` / `show` warm start.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::*;

const ROLE: &str = "arn:aws:iam::111122223333:role/deploy-bot";

fn record(minute: i64, second: i64, n: usize, name: &str, error: Option<&str>) -> String {
    let t =
        chrono::DateTime::from_timestamp(1_700_000_000 / 86_400 * 86_400 + minute * 60 + second, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ");
    let err = error
        .map(|e| format!(r#","errorCode":"{e}""#))
        .unwrap_or_default();
    format!(
        r#"{{"eventVersion":"1.11","eventTime":"{t}","eventSource":"ec2.amazonaws.com","eventName":"{name}","awsRegion":"eu-west-1","sourceIPAddress":"198.51.100.7","userAgent":"aws-cli/2","readOnly":false,"managementEvent":true,"eventType":"AwsApiCall","eventCategory":"Management","recipientAccountId":"111122223333","eventID":"ev-{minute}-{second}-{n}","userIdentity":{{"type":"AssumedRole","arn":"arn:aws:sts::111122223333:assumed-role/deploy-bot/s{n}","accountId":"111122223333","sessionContext":{{"sessionIssuer":{{"type":"Role","arn":"{ROLE}"}}}}}}{err}}}"#
    )
}

/// Two days of 1 write call a minute, then a burst of 40 a minute for 10 minutes on day 3.
fn archive(dir: &Path) -> (PathBuf, PathBuf) {
    let mut history = String::new();
    for m in 0..2 * 1440 {
        writeln!(history, "{}", record(m, 5, 0, "CreateTags", None)).unwrap();
    }
    let mut day3 = String::new();
    let start = 2 * 1440 + 600;
    for m in 2 * 1440..start + 60 {
        writeln!(day3, "{}", record(m, 5, 0, "CreateTags", None)).unwrap();
        if (start..start + 10).contains(&m) {
            for k in 0..40 {
                writeln!(
                    day3,
                    "{}",
                    record(m, k, 1 + k as usize, "RunInstances", None)
                )
                .unwrap();
            }
        }
    }
    let (a, b) = (dir.join("history.jsonl"), dir.join("day3.jsonl"));
    std::fs::write(&a, history).unwrap();
    std::fs::write(&b, day3).unwrap();
    (a, b)
}

fn anomalies(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|f| f["kind"] == "anomaly")
        .collect()
}

#[test]
fn backtest_reports_start_and_end_of_a_burst() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = archive(dir.path());
    let o = run(&[
        "backtest",
        "--format",
        "jsonl",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let found = anomalies(&o);
    assert_eq!(found.len(), 2, "{found:#?}");
    let (s, e) = (&found[0], &found[1]);
    assert_eq!(s["details"]["phase"], "start");
    assert_eq!(e["details"]["phase"], "end");
    assert_eq!(s["incident"], e["incident"]);
    assert_ne!(s["id"], e["id"]);
    assert_eq!(s["principal"], ROLE);
    assert_eq!(s["rule"]["title"], "Unusual activity volume");
    assert!(
        s["summary"]
            .as_str()
            .unwrap()
            .contains("role deploy-bot made")
    );
    // Recognised within two minutes of the burst's start (10:00 on day 3).
    let t = s["time"].as_str().unwrap();
    assert!(t.contains("T10:00:") || t.contains("T10:01:"), "{t}");
    assert_eq!(
        e["details"]["attributions"]["event_names"][0]["value"],
        "RunInstances"
    );
    assert!(e["event_count"].as_u64().unwrap() >= 380);
    assert!(stderr(&o).contains("baselines:"), "{}", stderr(&o));
}

#[test]
fn build_then_show_then_backtest_from_state() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = archive(dir.path());
    let state = dir.path().join("state");
    let s = state.to_str().unwrap();
    let o = run(&["baseline", "build", a.to_str().unwrap(), "--state-dir", s]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(state.join("baselines.json").exists());
    // Building again from the same archive skips what the state has already seen.
    let o = run(&["baseline", "build", a.to_str().unwrap(), "--state-dir", s]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("are skipped"), "{}", stderr(&o));
    let o = run(&[
        "baseline",
        "show",
        "--state-dir",
        s,
        "--principal",
        "deploy-bot",
        "--plot",
        dir.path().join("p.svg").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("write_volume") && text.contains(ROLE),
        "{text}"
    );
    assert!(
        std::fs::read_to_string(dir.path().join("p.svg"))
            .unwrap()
            .starts_with("<svg")
    );
    // Day 3 alone, from the learned state: the burst is found without re-reading history.
    let o = run(&[
        "backtest",
        "--format",
        "jsonl",
        "--state-dir",
        s,
        b.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(anomalies(&o).len(), 2);
    // Day 3 alone without it: the principal is new, so no anomaly.
    let o = run(&["backtest", "--format", "jsonl", b.to_str().unwrap()]);
    assert!(anomalies(&o).is_empty());
    // Clear errors.
    let o = run(&[
        "baseline",
        "show",
        "--state-dir",
        dir.path().join("none").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("baseline build"), "{}", stderr(&o));
}

#[test]
fn baseline_document_is_validated_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yml");
    std::fs::write(
        &good,
        "title: Mine\nid: my-baseline\nbaseline:\n  min_calls: 50\n",
    )
    .unwrap();
    let o = run(&["rules", "list", "--format", "json", good.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list[0]["kind"], "baseline");
    assert_eq!(list[0]["baseline"]["min_calls"], 50);
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "title: Mine\nid: my-baseline\nbaseline:\n  min_cals: 50\n",
    )
    .unwrap();
    let o = run(&["rules", "validate", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("min_cals"), "{}", stderr(&o));
    // --disable turns baselines off like any rule.
    let (a, b) = archive(dir.path());
    let o = run(&[
        "backtest",
        "--format",
        "jsonl",
        "--disable",
        "5d0f3c1e-7a52-4b8e-9c61-2f4a9d8b7e10",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(anomalies(&o).is_empty());
}

/// The project's simulator at a small scale (4 days, 30 principals, 4 anomalies from day 2),
/// replayed by the backtest with the built-in rules and scored by the project's scorer: the
/// targets hold, and every Start attributes its window (event names, user agents and source
/// IPs of the anomaly, not only of the record that tipped it).
#[test]
fn simulated_traffic_meets_the_targets_and_starts_carry_attributions() {
    use trailwatch_sim::{Labels, Params, score};
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    let params = Params {
        days: 4,
        principals: 30,
        anomalies: 4,
        seed: 3,
        scale: 0.5,
    };
    trailwatch_sim::generate(&sim, &params, false).unwrap();
    let findings = dir.path().join("findings.jsonl");
    let o = run(&[
        "backtest",
        "--format",
        "jsonl",
        "--output",
        findings.to_str().unwrap(),
        sim.join("AWSLogs").to_str().unwrap(),
    ]);
    assert!(o.status.code().is_some_and(|c| c <= 1), "{}", stderr(&o));
    let labels = Labels::read(&sim.join("labels.json")).unwrap();
    assert_eq!(labels.anomalies.len(), 4);
    let text = std::fs::read_to_string(&findings).unwrap();
    let parsed = score::parse_findings("findings.jsonl", &text).unwrap();
    let report = score::score(&labels, &parsed).unwrap();
    assert!(report.passed, "{report:#?}");
    assert!(report.recall.unwrap_or(0.0) >= 0.95, "{report:#?}");
    assert!(report.precision.unwrap_or(0.0) >= 0.9, "{report:#?}");

    let starts: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|f| f["kind"] == "anomaly" && f["details"]["phase"] == "start")
        .collect();
    assert!(!starts.is_empty());
    for s in &starts {
        let at = &s["details"]["attributions"];
        for field in ["event_names", "user_agents", "source_ips", "regions"] {
            assert!(
                at[field].as_array().is_some_and(|v| !v.is_empty()),
                "{field} of {s:#}"
            );
        }
        // The whole window that fired is attributed: the counts of an attribute with few
        // values (all of them shown) add up to it.
        let in_window = s["details"]["observed"]["in_window"].as_u64().unwrap();
        let regions: u64 = at["regions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["count"].as_u64().unwrap())
            .sum();
        assert_eq!(regions, in_window, "{s:#}");
        assert!(!s["summary"].as_str().unwrap().contains("latest:"));
    }
    // A write burst's Start names the burst's unusual source IP and user agent first.
    for l in labels
        .anomalies
        .iter()
        .filter(|l| l.kind == trailwatch_sim::AnomalyKind::WriteBurst)
    {
        let s = starts
            .iter()
            .find(|s| s["principal"] == l.principal.as_str())
            .unwrap_or_else(|| panic!("no Start for {}", l.id));
        let at = &s["details"]["attributions"];
        assert_eq!(at["source_ips"][0]["value"], l.source_ip.as_str(), "{s:#}");
        assert_eq!(
            at["user_agents"][0]["value"],
            l.user_agent.as_str(),
            "{s:#}"
        );
        assert!(s["event_ids"].as_array().is_some_and(|v| v.len() > 1));
    }
}
