//! Live mode end to end: the real binary, the real AWS SDK, HTTP to the AWS emulator (moto)
//! started by `./scripts/test`. Without the emulator these tests fail loudly.
//!
//! Each test uses its own log group, topic and state directory, so they run in parallel on
//! one emulator. Published messages are read back from moto's `/moto-api/data.json`.

use serde_json::{Value, json};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

mod common;
use common::moto::*;
use common::*;

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn uuid(n: u64, salt: &str) -> String {
    uuid_of(&[salt, &n.to_string()])
}

/// A CloudTrail record as a trail sends it to CloudWatch Logs.
fn record(name: &str, user: &str, ms: i64, id: &str) -> String {
    json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE",
            "arn": format!("arn:aws:iam::123456789012:user/{user}"),
            "accountId": "123456789012", "accessKeyId": "AKIAEXAMPLE", "userName": user},
        "eventTime": rfc3339(ms),
        "eventSource": "cloudtrail.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15.0 \u{1b}[31mred",
        "requestParameters": {"name": "main-trail", "password": "hunter2"},
        "responseElements": null,
        "requestID": "req",
        "eventID": id,
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": "123456789012",
        "eventCategory": "Management"
    })
    .to_string()
}

const RULE: &str = r#"title: Test - CloudTrail logging stopped
id: 5d1c2b3a-0000-4000-8000-000000000001
status: test
description: |
  Someone stopped a trail. Check first: who, and whether it was planned.
logsource:
  product: aws
  service: cloudtrail
detection:
  selection:
    eventName: StopLogging
  condition: selection
falsepositives:
  - Planned maintenance
level: high
"#;

struct Setup {
    group: String,
    topic: String,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let group = format!("trail-{name}-{}", now_ms());
        let topic_name = format!("alerts-{name}-{}", now_ms());
        let topic = rt().block_on(async {
            let c = sdk().await;
            let logs = aws_sdk_cloudwatchlogs::Client::new(&c);
            logs.create_log_group()
                .log_group_name(&group)
                .send()
                .await
                .expect("create log group in the emulator");
            let sns = aws_sdk_sns::Client::new(&c);
            sns.create_topic()
                .name(&topic_name)
                .send()
                .await
                .expect("create topic")
                .topic_arn()
                .unwrap()
                .to_string()
        });
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rule.yml"), RULE).unwrap();
        Setup { group, topic, dir }
    }

    /// Puts records (timestamp, message) into a new stream of the group.
    fn put(&self, stream: &str, events: Vec<(i64, String)>) {
        put_log_events(&self.group, stream, events);
    }

    fn state(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    fn cmd(&self, extra: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_trailwatch"));
        c.args([
            "run",
            "--log-group",
            &self.group,
            "--topic-arn",
            &self.topic,
        ])
        .arg("--state-dir")
        .arg(self.state());
        // The test rule, unless the test runs the built-in rules.
        let rule = self.dir.path().join("rule.yml");
        if rule.exists() {
            c.arg("--rules").arg(rule);
        }
        // The first run starts an hour back; later ones resume from the checkpoint.
        if !self.state().join("checkpoint.json").exists() {
            c.args(["--start-from", "1h"]);
        }
        c.args(extra);
        c
    }

    fn run_once(&self, extra: &[&str]) -> Output {
        let mut args = vec!["--once"];
        args.extend_from_slice(extra);
        let out = self.cmd(&args).output().unwrap();
        assert!(
            out.status.success(),
            "trailwatch run failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// (subject, message) of every notification SNS accepted on our topic.
    fn notifications(&self) -> Vec<(String, Value)> {
        notifications(&self.topic)
    }
}

fn finding_ids(ns: &[(String, Value)]) -> Vec<String> {
    let mut ids = Vec::new();
    for (_, m) in ns {
        let d = default_of(m);
        if d["kind"] == "digest" {
            for f in d["findings"].as_array().unwrap() {
                ids.push(f["id"].as_str().unwrap().to_string());
            }
        } else {
            ids.push(d["id"].as_str().unwrap().to_string());
        }
    }
    ids
}

#[test]
fn publishes_a_finding_an_operator_can_act_on() {
    let s = Setup::new("publish");
    let t = now_ms() - 60_000;
    s.put(
        "123456789012_CloudTrail_us-east-1",
        vec![
            (t, record("StopLogging", "alice", t, &uuid(1, "publish"))),
            (
                t + 1,
                record("DescribeTrails", "alice", t + 1, &uuid(2, "publish")),
            ),
        ],
    );
    s.run_once(&[]);
    let ns = s.notifications();
    assert_eq!(ns.len(), 1, "{ns:?}");
    let (subject, msg) = &ns[0];
    assert_eq!(
        subject,
        "[HIGH] Test - CloudTrail logging stopped by alice (123456789012/us-east-1)"
    );
    let keys: Vec<&String> = msg.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["default", "email"]);
    let email = msg["email"].as_str().unwrap();
    assert!(email.contains("Someone stopped a trail."), "{email}");
    assert!(email.contains("source IP: 198.51.100.7"), "{email}");
    // Why the rule fired, and what the call acted on.
    assert!(
        email.contains("Why it fired\n  eventName: \"StopLogging\""),
        "{email}"
    );
    assert!(email.contains("Acted on\n  trail main-trail"), "{email}");
    assert!(!email.contains('\u{1b}'), "escape sequences are stripped");
    assert!(!email.contains("hunter2") && !msg["default"].as_str().unwrap().contains("hunter2"));
    let d = default_of(msg);
    assert_eq!(d["kind"], "match");
    assert_eq!(d["event_ids"][0], uuid(1, "publish"));
    assert_eq!(d["event"]["requestParameters"]["password"], "[REDACTED]");
    // The checkpoint is there and a second run publishes nothing again.
    assert!(s.state().join("checkpoint.json").exists());
    s.run_once(&[]);
    assert_eq!(s.notifications().len(), 1);
}

#[test]
fn late_event_behind_the_cursor_is_found_by_the_overlap_rescan() {
    let s = Setup::new("late");
    let t = now_ms() - 60_000;
    s.put(
        "s1",
        vec![(t, record("StopLogging", "alice", t, &uuid(1, "late")))],
    );
    s.run_once(&[]);
    assert_eq!(s.notifications().len(), 1);
    // Delivered late: stamped 10 minutes before the event already read.
    let late = t - 10 * 60_000;
    s.put(
        "s2",
        vec![(late, record("StopLogging", "bob", late, &uuid(2, "late")))],
    );
    s.run_once(&[]);
    let ids = finding_ids(&s.notifications());
    assert_eq!(ids.len(), 2, "late event found exactly once: {ids:?}");
    s.run_once(&[]);
    assert_eq!(s.notifications().len(), 2, "nothing published twice");
}

#[test]
fn sns_down_findings_wait_in_the_outbox_and_go_out_in_order() {
    let s = Setup::new("outbox");
    let t = now_ms() - 120_000;
    let evs: Vec<(i64, String)> = (0..3)
        .map(|i| {
            let ts = t + i * 1000;
            (
                ts,
                record(
                    "StopLogging",
                    &format!("u{i}"),
                    ts,
                    &uuid(i as u64, "outbox"),
                ),
            )
        })
        .collect();
    s.put("s1", evs);
    // SNS unreachable: a closed port.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = s
        .cmd(&["--once"])
        .env("AWS_ENDPOINT_URL_SNS", format!("http://127.0.0.1:{closed}"))
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("wait in the outbox"), "{err}");
    assert!(s.notifications().is_empty());
    let outbox = std::fs::read_to_string(s.state().join("outbox.jsonl")).unwrap();
    assert_eq!(outbox.lines().count(), 3, "{outbox}");
    // SNS is back: the waiting findings go out, in order, once.
    let out = s.run_once(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("wait in the outbox; publishing them first"),
        "{err}"
    );
    let ns = s.notifications();
    let users: Vec<String> = ns
        .iter()
        .map(|(_, m)| default_of(m)["principal"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        users,
        [
            "arn:aws:iam::123456789012:user/u0",
            "arn:aws:iam::123456789012:user/u1",
            "arn:aws:iam::123456789012:user/u2"
        ]
    );
    s.run_once(&[]);
    assert_eq!(s.notifications().len(), 3);
}

#[test]
fn a_burst_becomes_digests_within_the_rate_limit() {
    let s = Setup::new("burst");
    let t = now_ms() - 300_000;
    // 500 findings within a minute of event time.
    let evs: Vec<(i64, String)> = (0..500)
        .map(|i| {
            let ts = t + i * 100;
            (
                ts,
                record(
                    "StopLogging",
                    &format!("u{i}"),
                    ts,
                    &uuid(i as u64, "burst"),
                ),
            )
        })
        .collect();
    s.put("s1", evs);
    s.run_once(&["--max-messages-per-minute", "5"]);
    let ns = s.notifications();
    // Digests of at most 100 findings: 5 messages, not 500 e-mails.
    assert_eq!(ns.len(), 5, "{}", ns.len());
    for (subject, msg) in &ns {
        let d = default_of(msg);
        assert_eq!(d["kind"], "digest");
        assert_eq!(d["count"], 100);
        // The worst first, named in the subject.
        assert!(
            subject.starts_with("[HIGH] Test - CloudTrail logging stopped by u")
                && subject.ends_with(", +99 more (digest)"),
            "{subject}"
        );
    }
    let ids = finding_ids(&ns);
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (500, 500));
}

#[test]
fn second_instance_on_the_same_state_dir_is_refused() {
    let s = Setup::new("lock");
    let mut first = s
        .cmd(&["--poll", "200ms"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first holds the lock (it writes its state directory first).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !s.state().join("LOCK").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let out = s.cmd(&["--once"]).output().unwrap();
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in use by another trailwatch process"),
        "{err}"
    );
}

#[test]
fn silent_log_group_is_reported_and_sigterm_checkpoints() {
    let s = Setup::new("silence");
    let child = s
        .cmd(&["--poll", "200ms", "--silence", "2s"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while s.notifications().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
    }
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("writing the checkpoint"), "{err}");
    let ns = s.notifications();
    assert_eq!(ns.len(), 1, "one silence finding, not one per poll: {ns:?}");
    assert!(
        ns[0]
            .0
            .starts_with("[HIGH] No CloudTrail events from log group"),
        "{}",
        ns[0].0
    );
    let d = default_of(&ns[0].1);
    assert_eq!(d["kind"], "health");
    assert_eq!(d["details"]["log_group"], s.group);
    let cp: Value =
        serde_json::from_slice(&std::fs::read(s.state().join("checkpoint.json")).unwrap()).unwrap();
    assert_eq!(cp["silent"][0], s.group);
}

#[test]
fn killed_at_any_moment_no_event_skipped_no_finding_twice() {
    let s = Setup::new("kill");
    let base = now_ms() - 600_000;
    let total = 24u64;
    // Events arrive in batches while the tailer runs; it is killed with SIGKILL in between.
    for round in 0..3u64 {
        let evs: Vec<(i64, String)> = (0..total / 3)
            .map(|i| {
                let n = round * (total / 3) + i;
                let ts = base + n as i64 * 1000;
                (
                    ts,
                    record("StopLogging", &format!("u{n}"), ts, &uuid(n, "kill")),
                )
            })
            .collect();
        s.put(&format!("s{round}"), evs);
        let mut child = s
            .cmd(&["--poll", "100ms", "--max-messages-per-minute", "1000"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(700 + round * 400));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let before_final = finding_ids(&s.notifications()).len();
    eprintln!("published before the final run: {before_final} of {total}");
    s.run_once(&["--max-messages-per-minute", "1000"]);
    let ids = finding_ids(&s.notifications());
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(
        unique.len() as u64,
        total,
        "every event's finding published: {ids:?}"
    );
    assert_eq!(ids.len(), unique.len(), "no finding published twice");
}

#[test]
fn dry_run_prints_json_lines() {
    let s = Setup::new("dry");
    let t = now_ms() - 60_000;
    s.put(
        "s1",
        vec![(t, record("StopLogging", "alice", t, &uuid(1, "dry")))],
    );
    let out = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args(["run", "--log-group", &s.group, "--dry-run", "--once"])
        .arg("--rules")
        .arg(s.dir.path().join("rule.yml"))
        .arg("--state-dir")
        .arg(s.state())
        .args(["--start-from", "1h"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert_eq!(lines[0]["rule"]["level"], "high");
    assert!(s.notifications().is_empty());
}

/// Issue 17, 3: a dry run keeps its own state (`dry-run/` in the state directory), so the real
/// run that follows on the same directory still reads the events and publishes the alerts the
/// dry run printed.
#[test]
fn a_dry_run_does_not_use_up_the_events_of_the_real_run() {
    let s = Setup::new("dryfirst");
    let t = now_ms() - 60_000;
    s.put(
        "s1",
        vec![(t, record("StopLogging", "alice", t, &uuid(1, "dryfirst")))],
    );
    let dry = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
            .args(["run", "--log-group", &s.group, "--dry-run", "--once"])
            .arg("--rules")
            .arg(s.dir.path().join("rule.yml"))
            .arg("--state-dir")
            .arg(s.state())
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(dry(&["--start-from", "1h"]).lines().count(), 1);
    assert!(s.state().join("dry-run/checkpoint.json").exists());
    assert!(
        !s.state().join("checkpoint.json").exists(),
        "the real run's checkpoint is not written by a dry run"
    );
    // A second dry run resumes from its own checkpoint: nothing new to print.
    assert_eq!(dry(&[]).lines().count(), 0);
    // The real run, as it would have without the dry runs (an hour back: no checkpoint yet).
    s.run_once(&[]);
    let ns = s.notifications();
    assert_eq!(
        ns.len(),
        1,
        "the real run publishes what the dry run printed: {ns:?}"
    );
    assert!(s.state().join("checkpoint.json").exists());
}

#[test]
fn topic_create_and_subscribe() {
    let name = format!("cli-topic-{}", now_ms());
    let out = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args(["topic", "create", &name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let arn = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        arn.starts_with("arn:aws:sns:") && arn.ends_with(&name),
        "{arn}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args([
            "subscribe",
            "--topic-arn",
            &arn,
            "--email",
            "secops@example.com",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Confirm subscription"));
    let data = moto_data();
    let subs = data["sns"]["Subscription"].as_array().unwrap();
    assert!(subs.iter().any(|s| s["topic_arn"] == arn
        && s["protocol"] == "email"
        && s["endpoint"] == "secops@example.com"));
    let bad = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args([
            "subscribe",
            "--topic-arn",
            &arn,
            "--email",
            "not-an-address",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    // A topic that does not exist: one line, in the AWS CLI's words, with what to do; the
    // request id only with -v. `run` checks its topic at start-up.
    let missing = format!("{arn}-missing");
    let one_line = |out: &Output| {
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        err
    };
    let sub = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_trailwatch"))
            .args(["subscribe", "--topic-arn", &missing])
            .args(["--email", "secops@example.com"])
            .args(extra)
            .output()
            .unwrap()
    };
    let err = one_line(&sub(&[]));
    assert_eq!(
        err.trim(),
        format!(
            "error: topic {missing}: An error occurred (NotFound) when calling the Subscribe \
             operation: Topic does not exist. Check the topic ARN and its region (aws sns \
             list-topics --region us-east-1), or create the topic: trailwatch topic create \
             {name}-missing"
        )
    );
    let err = one_line(&sub(&["-v"]));
    assert!(
        err.trim_end().ends_with(')') && err.contains("(request id "),
        "{err}"
    );
    let s = Setup::new("notopic");
    let err = one_line(
        &Command::new(env!("CARGO_BIN_EXE_trailwatch"))
            .args([
                "run",
                "--log-group",
                &s.group,
                "--once",
                "--topic-arn",
                &missing,
            ])
            .arg("--state-dir")
            .arg(s.state())
            .output()
            .unwrap(),
    );
    assert!(
        err.starts_with(&format!(
            "error: topic {missing}: An error occurred (NotFound) when calling the \
             GetTopicAttributes operation: Topic does not exist. Check the topic ARN"
        )),
        "{err}"
    );
}

#[test]
fn crash_before_the_checkpoint_rereads_events_without_publishing_twice() {
    let s = Setup::new("stale");
    let t = now_ms() - 60_000;
    s.put(
        "s1",
        vec![(t, record("StopLogging", "alice", t, &uuid(1, "stale")))],
    );
    s.run_once(&[]);
    let before = std::fs::read(s.state().join("checkpoint.json")).unwrap();
    assert_eq!(s.notifications().len(), 1);
    // Then, as if the process died after queueing and publishing a finding but before its
    // checkpoint reached the disk, the older checkpoint comes back.
    let t2 = now_ms() - 30_000;
    s.put(
        "s2",
        vec![(t2, record("StopLogging", "bob", t2, &uuid(2, "stale")))],
    );
    s.run_once(&[]);
    assert_eq!(s.notifications().len(), 2);
    std::fs::write(s.state().join("checkpoint.json"), before).unwrap();
    s.run_once(&[]);
    let ids = finding_ids(&s.notifications());
    assert_eq!(
        ids.len(),
        2,
        "re-read events are not published again: {ids:?}"
    );
}

#[test]
fn event_later_than_the_overlap_needs_the_wide_rescan() {
    let s = Setup::new("wide");
    let t = now_ms() - 60_000;
    s.put(
        "s1",
        vec![(t, record("StopLogging", "alice", t, &uuid(1, "wide")))],
    );
    s.run_once(&["--overlap", "5m"]);
    let very_late = t - 20 * 60_000;
    s.put(
        "s2",
        vec![(
            very_late,
            record("StopLogging", "bob", very_late, &uuid(2, "wide")),
        )],
    );
    // Beyond the 5-minute overlap: not seen by forward reads or the overlap re-scan.
    s.run_once(&["--overlap", "5m"]);
    assert_eq!(s.notifications().len(), 1);
    // The wide re-scan finds it, once.
    s.run_once(&["--overlap", "5m", "--wide-rescan", "1h"]);
    assert_eq!(finding_ids(&s.notifications()).len(), 2);
    s.run_once(&["--overlap", "5m", "--wide-rescan", "1h"]);
    assert_eq!(finding_ids(&s.notifications()).len(), 2);
}

#[test]
fn metrics_endpoint_and_config_file() {
    use std::io::{Read, Write};
    let s = Setup::new("metrics");
    let t = now_ms() - 60_000;
    s.put(
        "s1",
        vec![(t, record("StopLogging", "alice", t, &uuid(1, "metrics")))],
    );
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // Settings from the `run:` section of a configuration file; no flags but --config.
    let cfg = s.dir.path().join("trailwatch.yml");
    std::fs::write(
        &cfg,
        format!(
            "run:\n  log_groups: [{}]\n  topic_arn: {}\n  state_dir: {}\n  start_from: 1h\n  poll: 200ms\n  metrics_addr: 127.0.0.1:{port}\n  log_format: json\n",
            s.group,
            s.topic,
            s.state().display()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--rules")
        .arg(s.dir.path().join("rule.yml"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut body = String::new();
    while std::time::Instant::now() < deadline {
        if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = write!(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
            body.clear();
            let _ = c.read_to_string(&mut body);
            if body.contains("trailwatch_sns_messages_total 1") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    // `log_format: json`: every log line is one JSON object with time, level and message.
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l["timestamp"].is_string() && l["level"].is_string())
    );
    let tailing = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("tailing "))
        })
        .expect("start-up line");
    assert_eq!(tailing["log_groups"], s.group.as_str());
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "stopping: writing the checkpoint")
    );
    for needle in [
        "trailwatch_events_total 1",
        "trailwatch_findings_total 1",
        "trailwatch_sns_messages_total 1",
        "trailwatch_outbox_pending 0",
        "# TYPE trailwatch_tail_requests_total counter",
        "# TYPE trailwatch_lag_seconds gauge",
    ] {
        assert!(body.contains(needle), "missing {needle} in {body}");
    }
    assert_eq!(s.notifications().len(), 1);
    // An unknown key in the configuration is refused with its name.
    std::fs::write(&cfg, "run:\n  log_group: [x]\n").unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown field `log_group`"));
}

#[test]
fn several_log_groups_and_a_future_stamp_do_not_blind_the_tail() {
    let a = Setup::new("multi-a");
    let b = Setup::new("multi-b");
    let t = now_ms() - 60_000;
    // A record stamped 90 minutes in the future (PutLogEvents accepts up to 2 h ahead).
    let future = now_ms() + 90 * 60_000;
    a.put(
        "s1",
        vec![
            (t, record("StopLogging", "alice", t, &uuid(1, "multi"))),
            (
                future,
                record("DescribeTrails", "alice", future, &uuid(9, "multi")),
            ),
        ],
    );
    b.put(
        "s1",
        vec![(t, record("StopLogging", "bob", t, &uuid(2, "multi")))],
    );
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
            .args(["run", "--log-group", &a.group, "--log-group", &b.group])
            .args(["--topic-arn", &a.topic, "--once"])
            .arg("--rules")
            .arg(a.dir.path().join("rule.yml"))
            .arg("--state-dir")
            .arg(a.state())
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["--start-from", "1h"]);
    assert_eq!(a.notifications().len(), 2);
    // An event after the future-stamped one, stamped now: still read.
    let t2 = now_ms() - 1_000;
    a.put(
        "s2",
        vec![(t2, record("StopLogging", "carol", t2, &uuid(3, "multi")))],
    );
    run(&[]);
    let ids = finding_ids(&a.notifications());
    assert_eq!(ids.len(), 3, "{ids:?}");
}

#[test]
fn junk_in_the_log_group_is_reported_with_its_place_and_the_run_goes_on() {
    let s = Setup::new("junk");
    let t = now_ms() - 60_000;
    let good = record("StopLogging", "alice", t + 2, &uuid(1, "junk"));
    s.put(
        "junk-stream",
        vec![
            (t, "not json at all".to_string()),
            (t + 1, good[..good.len() / 2].to_string()),
            (t + 2, good.clone()),
        ],
    );
    let out = s.run_once(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("log group {}, stream junk-stream", s.group)),
        "{err}"
    );
    assert_eq!(err.matches("not a CloudTrail record").count(), 2, "{err}");
    assert_eq!(s.notifications().len(), 1);
}

/// A write call (EC2) by an IAM user.
fn write_call(user: &str, ms: i64, id: &str) -> String {
    let mut v: Value = serde_json::from_str(&record("CreateTags", user, ms, id)).unwrap();
    v["eventSource"] = json!("ec2.amazonaws.com");
    v["userAgent"] = json!("terraform/1.7");
    v.to_string()
}

#[test]
fn baselines_learned_from_archives_arm_live_anomaly_detection() {
    let s = Setup::new("baseline");
    std::fs::write(
        s.dir.path().join("baseline.yml"),
        include_str!("../rules/baseline.yml"),
    )
    .unwrap();
    let now = now_ms();
    // 30 hours of history: one write every 10 minutes, in an archive file.
    let history: Vec<Value> = (0..180)
        .map(|i| {
            let t = now - 30 * 3_600_000 + i * 600_000;
            serde_json::from_str(&write_call("deployer", t, &uuid(i as u64, "bl-hist"))).unwrap()
        })
        .collect();
    let archive = s.dir.path().join("archive.json");
    std::fs::write(&archive, json!({"Records": history}).to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args(["baseline", "build"])
        .arg(&archive)
        .arg("--state-dir")
        .arg(s.state())
        .arg("--rules")
        .arg(s.dir.path().join("baseline.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Live: a burst of 150 writes in three minutes by the same principal.
    let start = now - 4 * 60_000;
    let burst: Vec<(i64, String)> = (0..150)
        .map(|i| {
            let t = start + i * 1_200;
            (t, write_call("deployer", t, &uuid(i as u64, "bl-burst")))
        })
        .collect();
    s.put("s1", burst);
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
            .args([
                "run",
                "--log-group",
                &s.group,
                "--topic-arn",
                &s.topic,
                "--once",
            ])
            .args(["--start-from", "10m"])
            .arg("--rules")
            .arg(s.dir.path().join("baseline.yml"))
            .arg("--state-dir")
            .arg(s.state())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        err
    };
    let err = run();
    assert!(
        err.contains("loaded baselines learned from archives"),
        "{err}"
    );
    let ns = s.notifications();
    assert_eq!(ns.len(), 1, "{ns:?}");
    let d = default_of(&ns[0].1);
    assert_eq!(d["kind"], "anomaly");
    assert_eq!(d["details"]["phase"], "start");
    assert_eq!(d["principal"], "arn:aws:iam::123456789012:user/deployer");
    assert!(
        ns[0]
            .0
            .starts_with("[MEDIUM] Started: Unusual activity volume"),
        "{}",
        ns[0].0
    );
    // The learned state now lives in the checkpoint; a restart does not reload the archive
    // state over it, and publishes nothing twice.
    let err = run();
    assert!(
        !err.contains("loaded baselines learned from archives"),
        "{err}"
    );
    assert_eq!(s.notifications().len(), 1);
    let cp: Value =
        serde_json::from_slice(&std::fs::read(s.state().join("checkpoint.json")).unwrap()).unwrap();
    assert!(
        cp["engine"]["baselines"]["series"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
}

#[test]
fn output_file_and_text_format_instead_of_publishing() {
    let s = Setup::new("outfile");
    let t = now_ms() - 60_000;
    s.put(
        "s1",
        vec![(
            t,
            record("StopLogging", "\u{1b}[2Jmallory", t, &uuid(1, "outfile")),
        )],
    );
    let file = s.dir.path().join("findings.txt");
    let out = s
        .cmd(&["--once", "--format", "text", "--output"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("HIGH "), "{text}");
    assert!(text.contains("user/mallory called StopLogging"), "{text}");
    assert!(!text.contains('\u{1b}'));
    assert!(s.notifications().is_empty(), "printed, not published");
}

#[test]
fn missing_log_group_stops_start_up_but_not_a_running_service() {
    let s = Setup::new("vanish");
    // At start-up: a clear error naming the group, exit 2.
    let out = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args([
            "run",
            "--log-group",
            "no-such-group-anywhere",
            "--dry-run",
            "--once",
        ])
        .arg("--state-dir")
        .arg(s.dir.path().join("other-state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    // One line a person can read, in the AWS CLI's words, with what to do — not the SDK's
    // debug dump of the error (issue 17, 3: 1,869 bytes).
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "error: log group no-such-group-anywhere: An error occurred \
             (ResourceNotFoundException) when calling the FilterLogEvents operation: The \
             specified log group does not exist. Check the name and the region (us-east-1): aws \
             logs describe-log-groups --region us-east-1 --log-group-name-prefix \
             no-such-group-anywhere\n"
        ),
        "{err}"
    );
    assert!(!err.contains("ServiceError"), "{err}");
    // Running: the group disappears and comes back; the service logs, retries and goes on.
    let child = s
        .cmd(&["--poll", "200ms"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !s.state().join("checkpoint.json").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs = |f: &dyn Fn(
        aws_sdk_cloudwatchlogs::Client,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>| {
        rt().block_on(async {
            let c = sdk().await;
            f(aws_sdk_cloudwatchlogs::Client::new(&c)).await
        })
    };
    let g = s.group.clone();
    logs(&move |c| {
        let g = g.clone();
        Box::pin(async move {
            c.delete_log_group()
                .log_group_name(&g)
                .send()
                .await
                .unwrap();
        })
    });
    std::thread::sleep(Duration::from_millis(1500));
    let g = s.group.clone();
    logs(&move |c| {
        let g = g.clone();
        Box::pin(async move {
            c.create_log_group()
                .log_group_name(&g)
                .send()
                .await
                .unwrap();
        })
    });
    let t = now_ms() - 30_000;
    s.put(
        "back",
        vec![(t, record("StopLogging", "alice", t, &uuid(1, "vanish")))],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while s.notifications().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
    }
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("ResourceNotFoundException") && err.contains("retrying in"),
        "{err}"
    );
    assert_eq!(s.notifications().len(), 1, "{err}");
}

#[test]
fn restart_before_any_event_resumes_from_the_first_start() {
    let s = Setup::new("early");
    // First start an hour back, no event yet: the checkpoint records where reading began.
    s.run_once(&[]);
    assert!(s.state().join("checkpoint.json").exists());
    // An event from before this restart, delivered late; the restart (no --start-from)
    // resumes from the checkpoint, not from its own "now".
    let t = now_ms() - 20 * 60_000;
    s.put(
        "s1",
        vec![(t, record("StopLogging", "alice", t, &uuid(1, "early")))],
    );
    s.run_once(&[]);
    assert_eq!(s.notifications().len(), 1);
}

/// An SQS queue subscribed to `topic` (not raw: it receives the SNS envelope).
/// A record by the root user of the account (from the console).
fn root_record(name: &str, ms: i64, id: &str) -> String {
    json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "Root", "principalId": "123456789012",
            "arn": "arn:aws:iam::123456789012:root", "accountId": "123456789012",
            "accessKeyId": "ASIAEXAMPLE", "invokedBy": "signin.amazonaws.com"},
        "eventTime": rfc3339(ms),
        "eventSource": "iam.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.9",
        "userAgent": "signin.amazonaws.com",
        "requestParameters": {"userName": "backdoor"},
        "responseElements": {"accessKey": {"accessKeyId": "AKIANEWKEY",
            "secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY", "status": "Active"}},
        "requestID": "req",
        "eventID": id,
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": "123456789012",
        "eventCategory": "Management"
    })
    .to_string()
}

/// An EC2 call by `user`; `error`: refused with that code.
fn ec2_record(
    name: &str,
    user: &str,
    ms: i64,
    id: &str,
    params: Value,
    error: Option<&str>,
) -> String {
    let mut r: Value = serde_json::from_str(&record(name, user, ms, id)).unwrap();
    r["eventSource"] = json!("ec2.amazonaws.com");
    r["requestParameters"] = params;
    if let Some(code) = error {
        r["errorCode"] = json!(code);
        r["errorMessage"] = json!("You are not authorized to perform this operation.");
    }
    r.to_string()
}

/// Every core detection, with the built-in rules, end to end: CloudTrail records put into the
/// log group reach an SQS queue subscribed to the topic (the real SNS envelope), each finding
/// once, while the tailer runs as a service; the second half arrives in a stream created
/// mid-run. (Unusual write volume: `baselines_learned_from_archives_arm_live_anomaly_detection`.)
#[test]
fn core_detections_reach_a_subscribed_queue_while_running() {
    let s = Setup::new("core");
    std::fs::remove_file(s.dir.path().join("rule.yml")).unwrap();
    let queue = subscribed_queue(&s.topic, &format!("core-{}", now_ms()));
    let t = now_ms() - 120_000;
    s.put(
        "123456789012_CloudTrail_us-east-1",
        vec![
            (t, root_record("CreateAccessKey", t, &uuid(1, "core"))),
            (
                t + 10,
                record("StopLogging", "mallory", t + 10, &uuid(2, "core")),
            ),
        ],
    );
    let child = s
        .cmd(&["--poll", "200ms", "--max-messages-per-minute", "1000"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut got: Vec<Value> = Vec::new();
    let rules_of = |got: &[Value]| -> Vec<String> {
        got.iter()
            .map(|e| {
                let d: Value = serde_json::from_str(e["Message"].as_str().unwrap()).unwrap();
                d["rule"]["id"].as_str().unwrap_or("").to_string()
            })
            .collect()
    };
    const ROOT: &str = "feafee89-21d6-4592-9c50-592c837ca3cd";
    const STOP: &str = "7b87f8de-4b3a-4c9e-848a-5b627bbe35dc";
    const SG_WORLD: &str = "2f7be3d8-5a73-435f-b546-3b07c07fd633";
    const REFUSALS: &str = "6ffc33bc-436c-4890-9fff-09586b5152b2";
    const PASSWORD_DATA: &str = "28922f27-05e5-4c7e-af70-d5b30b46382a";
    while !(rules_of(&got).iter().any(|r| r == ROOT) && rules_of(&got).iter().any(|r| r == STOP))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(300));
        got.extend(receive(&queue));
    }
    // A stream that appears while the tailer runs: an SSH port opened to the world, then 25
    // refused calls by one principal within a minute.
    let t2 = now_ms() - 60_000;
    let mut evs = vec![(
        t2,
        ec2_record(
            "AuthorizeSecurityGroupIngress",
            "mallory",
            t2,
            &uuid(3, "core"),
            json!({"groupId": "sg-0123456789abcdef0", "ipProtocol": "tcp", "fromPort": 22,
                   "toPort": 22, "cidrIp": "0.0.0.0/0"}),
            None,
        ),
    )];
    for i in 0..25i64 {
        let ts = t2 + 1_000 + i * 2_000;
        evs.push((
            ts,
            ec2_record(
                "GetPasswordData",
                "prober",
                ts,
                &uuid(100 + i as u64, "core"),
                json!({"instanceId": format!("i-{i:017x}")}),
                Some("Client.UnauthorizedOperation"),
            ),
        ));
    }
    s.put("123456789012_CloudTrail_us-east-1_2", evs);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !(rules_of(&got).iter().any(|r| r == SG_WORLD)
        && rules_of(&got).iter().any(|r| r == REFUSALS))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(300));
        got.extend(receive(&queue));
    }
    // A few more polls: nothing may come twice.
    std::thread::sleep(Duration::from_secs(2));
    got.extend(receive(&queue));
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");

    let rules = rules_of(&got);
    for (id, what) in [
        (ROOT, "root account usage"),
        (STOP, "CloudTrail logging stopped"),
        (SG_WORLD, "security group opened to the world"),
        (REFUSALS, "burst of refused calls"),
    ] {
        assert_eq!(
            rules.iter().filter(|r| *r == id).count(),
            1,
            "{what} reported exactly once: {rules:?}\n{err}"
        );
    }
    // The 25 refused GetPasswordData calls (a low rule: not alerted on its own) ride inside the
    // alerts of the prober's incident, which the high correlation of refused calls leads.
    let members: Vec<String> = got
        .iter()
        .flat_map(|e| {
            let d: Value = serde_json::from_str(e["Message"].as_str().unwrap()).unwrap();
            d["findings"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|m| m["rule"]["id"].as_str().unwrap_or("").to_string())
        })
        .collect();
    assert!(
        members.iter().any(|r| r == PASSWORD_DATA),
        "password data requests carried by an alert: {members:?}"
    );
    assert!(
        !rules.iter().any(|r| r == PASSWORD_DATA),
        "a low rule does not lead an alert of its own: {rules:?}"
    );
    let mut ids = std::collections::HashSet::new();
    for e in &got {
        // The SNS envelope as an SQS subscriber receives it.
        assert_eq!(e["Type"], "Notification");
        assert_eq!(e["TopicArn"], s.topic.as_str());
        let subject = e["Subject"].as_str().unwrap();
        assert!(
            subject.len() < 100 && !subject.chars().any(char::is_control),
            "{subject}"
        );
        let body = e["Message"].as_str().unwrap();
        assert!(
            !body.contains("SECRETKEY") && !body.contains("hunter2"),
            "{body}"
        );
        let d: Value = serde_json::from_str(body).unwrap();
        assert!(
            ids.insert(d["id"].as_str().unwrap().to_string()),
            "published twice: {d}"
        );
    }
    let refusals = got
        .iter()
        .map(|e| serde_json::from_str::<Value>(e["Message"].as_str().unwrap()).unwrap())
        .find(|d| d["rule"]["id"] == REFUSALS)
        .unwrap();
    assert_eq!(refusals["kind"], "correlation");
    assert!(
        refusals["event_count"].as_u64().unwrap() >= 20,
        "{refusals}"
    );
    assert!(
        refusals["principal"]
            .as_str()
            .is_some_and(|p| p.ends_with("user/prober")),
        "{refusals}"
    );
}

/// `run --alerts`: one SNS message for an event that matches several rules; after a restart
/// the open incident comes back from the checkpoint, so repeats become an update of it (not a
/// new alert) and nothing is published twice.
#[test]
fn alerts_one_message_per_event_and_the_incident_survives_a_restart() {
    let s = Setup::new("alerts");
    // The built-in rules: StopLogging matches the critical trail rule and CIS 4.5.
    std::fs::remove_file(s.dir.path().join("rule.yml")).unwrap();
    let t = now_ms() - 60_000;
    s.put(
        "123456789012_CloudTrail_us-east-1_a",
        vec![(t, record("StopLogging", "alice", t, &uuid(1, "alerts")))],
    );
    let flags = [
        "--alerts",
        "--allowed-lateness",
        "1s",
        "--alert-update-every",
        "3s",
    ];
    s.run_once(&flags);
    let ns = s.notifications();
    assert_eq!(ns.len(), 1, "one message for the event: {ns:#?}");
    let (subject, msg) = &ns[0];
    assert!(
        subject.starts_with("[CRITICAL] CloudTrail logging stopped or trail deleted by alice"),
        "{subject}"
    );
    let first = default_of(msg);
    assert_eq!(first["alert"], "new");
    assert_eq!(first["level"], "critical");
    let titles = rule_titles(&first["findings"]);
    assert!(
        titles.contains(&"CIS 4.5 - CloudTrail configuration changed"),
        "{titles:?}"
    );
    assert_eq!(
        first["event"]["requestParameters"]["password"],
        "[REDACTED]"
    );

    // Two repeats, read by restarted runs: they join the restored incident. Updates go out
    // at most every 3 s of event time; whatever the tail's batching, after a run that starts
    // later than that, every repeat has been sent, once, in updates of the first incident.
    s.put(
        "123456789012_CloudTrail_us-east-1_b",
        vec![
            (
                t + 1_000,
                record("StopLogging", "alice", t + 1_000, &uuid(2, "alerts")),
            ),
            (
                t + 2_000,
                record("StopLogging", "alice", t + 2_000, &uuid(3, "alerts")),
            ),
        ],
    );
    s.run_once(&flags);
    std::thread::sleep(Duration::from_secs(4));
    s.run_once(&flags);
    let ns = s.notifications();
    assert!((2..=3).contains(&ns.len()), "{ns:#?}");
    let mut carried = 0;
    let mut ids = vec![first["id"].clone()];
    for (subject, msg) in &ns[1..] {
        assert!(
            subject.starts_with("[CRITICAL] Update: +")
                && subject.contains("— CloudTrail logging stopped"),
            "{subject}"
        );
        let update = default_of(msg);
        assert_eq!(update["alert"], "update");
        assert_eq!(update["incident"], first["incident"]);
        carried += update["findings"].as_array().unwrap().len();
        ids.push(update["id"].clone());
    }
    assert_eq!(carried, 4, "2 repeats x 2 rules, each sent once: {ns:#?}");
    ids.dedup();
    assert_eq!(ids.len(), ns.len(), "no alert published twice");
    let last = default_of(&ns[ns.len() - 1].1);
    assert_eq!(last["finding_count"], 6, "{last:#}");
    assert_eq!(last["event_count"], 3, "{last:#}");
    // Another run publishes nothing again.
    s.run_once(&flags);
    assert_eq!(s.notifications().len(), ns.len());
}

/// `run --alerts` killed with SIGKILL at any moment: one `new` alert for the incident, no alert
/// published twice, and every finding carried by some alert of it (no update lost).
#[test]
fn alerts_killed_at_any_moment_no_alert_twice_no_update_lost() {
    let s = Setup::new("alertkill");
    let base = now_ms() - 600_000;
    let total = 24u64;
    let flags = [
        "--alerts",
        "--allowed-lateness",
        "1s",
        "--alert-update-every",
        "1s",
    ];
    for round in 0..3u64 {
        let evs: Vec<(i64, String)> = (0..total / 3)
            .map(|i| {
                let n = round * (total / 3) + i;
                let ts = base + n as i64 * 1000;
                (
                    ts,
                    record("StopLogging", "alice", ts, &uuid(n, "alertkill")),
                )
            })
            .collect();
        s.put(&format!("s{round}"), evs);
        let mut args = vec!["--poll", "100ms", "--max-messages-per-minute", "1000"];
        args.extend_from_slice(&flags);
        let mut child = s.cmd(&args).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(700 + round * 400));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let mut args = vec!["--max-messages-per-minute", "1000"];
    args.extend_from_slice(&flags);
    s.run_once(&args);
    let alerts: Vec<Value> = s
        .notifications()
        .iter()
        .map(|(_, m)| default_of(m))
        .collect();
    let news = alerts.iter().filter(|a| a["alert"] == "new").count();
    assert_eq!(news, 1, "{alerts:#?}");
    assert!(
        alerts
            .iter()
            .all(|a| a["incident"] == alerts[0]["incident"])
    );
    let ids: std::collections::HashSet<&str> =
        alerts.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), alerts.len(), "no alert published twice");
    let carried: std::collections::HashSet<String> = alerts
        .iter()
        .flat_map(|a| a["findings"].as_array().unwrap().iter())
        .flat_map(|f| f["event_ids"].as_array().unwrap().iter())
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    let expected: std::collections::HashSet<String> =
        (0..total).map(|n| uuid(n, "alertkill")).collect();
    assert_eq!(carried, expected, "every event's finding reached an alert");
}

/// The start-up log describes the built-in set with the words and numbers of `rules list`;
/// under umask 000 the state directory is still owner-only and its files 0600.
#[test]
fn start_up_log_counts_like_rules_list_and_state_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::new("counts");
    // The built-in rules (no test rule).
    std::fs::remove_file(s.dir.path().join("rule.yml")).unwrap();
    let t = now_ms() - 60_000;
    s.put(
        "s1",
        vec![(t, record("StopLogging", "alice", t, &uuid(1, "counts")))],
    );
    let listed = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args(["rules", "list"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let counts = listed.lines().last().unwrap().to_string();
    let run = s.cmd(&["--once", "--log-format", "json"]);
    let out = Command::new("sh")
        .args(["-c", "umask 000; exec \"$0\" \"$@\""])
        .arg(run.get_program())
        .args(run.get_args())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let tailing: Value = err
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("tailing "))
        })
        .expect("start-up line");
    let message = tailing["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("({counts});")),
        "{message} vs {counts}"
    );
    let n = |field: &str| tailing[field].as_u64().unwrap();
    assert_eq!(
        counts,
        format!(
            "{} rules, {} correlation, {} baseline document",
            n("rules"),
            n("correlations"),
            n("baseline_documents")
        )
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&s.state()), 0o700);
    for name in ["LOCK", "checkpoint.json", "outbox.jsonl"] {
        assert_eq!(mode(&s.state().join(name)), 0o600, "{name}");
    }
}
