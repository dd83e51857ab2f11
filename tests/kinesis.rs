//! `run --kinesis-stream` end to end against the AWS emulator: CloudTrail records put into a
//! log group whose subscription filter feeds a Kinesis stream reach SNS; restarts resume after
//! the last record handed over; a shard split loses nothing.

use serde_json::{Value, json};
use std::process::{Command, Stdio};

mod common;
use common::moto::*;
use common::*;

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A CloudTrail record of `user` calling `name`.
fn record(name: &str, user: &str, ms: i64, id: &str) -> String {
    json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE",
            "arn": format!("arn:aws:iam::123456789012:user/{user}"),
            "accountId": "123456789012", "userName": user},
        "eventTime": rfc3339(ms),
        "eventSource": "cloudtrail.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": {"name": "main-trail"},
        "responseElements": null,
        "eventID": id,
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": "123456789012"
    })
    .to_string()
}

/// A log group with a subscription filter into a new one-shard stream, a topic, a rule.
struct Setup {
    name: String,
    group: String,
    stream: String,
    topic: String,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let name = format!("{name}-{}", now_ms());
        let (group, stream) = (format!("trail-{name}"), format!("cwl-{name}"));
        let topic = rt().block_on(async {
            let c = sdk().await;
            let k = aws_sdk_kinesis::Client::new(&c);
            k.create_stream()
                .stream_name(&stream)
                .shard_count(1)
                .send()
                .await
                .expect("create stream in the emulator");
            let arn = k
                .describe_stream_summary()
                .stream_name(&stream)
                .send()
                .await
                .expect("describe stream")
                .stream_description_summary()
                .unwrap()
                .stream_arn()
                .to_string();
            let logs = aws_sdk_cloudwatchlogs::Client::new(&c);
            logs.create_log_group()
                .log_group_name(&group)
                .send()
                .await
                .expect("create log group");
            logs.put_subscription_filter()
                .log_group_name(&group)
                .filter_name("to-kinesis")
                .filter_pattern("")
                .destination_arn(arn)
                .role_arn("arn:aws:iam::123456789012:role/CWLtoKinesis")
                .send()
                .await
                .expect("subscription filter into the stream");
            let sns = aws_sdk_sns::Client::new(&c);
            sns.create_topic()
                .name(format!("alerts-{name}"))
                .send()
                .await
                .expect("create topic")
                .topic_arn()
                .unwrap()
                .to_string()
        });
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rule.yml"),
            stop_logging_rule("5d1c2b3a-0000-4000-8000-0000000000a1"),
        )
        .unwrap();
        Setup {
            name,
            group,
            stream,
            topic,
            dir,
        }
    }

    /// PutLogEvents into a new log stream of the group: the subscription filter forwards them.
    fn put(&self, log_stream: &str, events: &[(i64, String)]) {
        put_log_events(&self.group, log_stream, events.to_vec());
    }

    /// StopLogging by `users`, one log event each, a minute ago.
    fn stop_logging_by(&self, log_stream: &str, users: &[&str]) {
        let t = now_ms() - 60_000;
        let events: Vec<(i64, String)> = users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let uuid = uuid_of(&[&self.name, log_stream, u]);
                let ts = t + i as i64;
                (ts, record("StopLogging", u, ts, &uuid))
            })
            .collect();
        self.put(log_stream, &events);
    }

    fn state(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    fn cmd(&self, extra: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_trailwatch"));
        c.args(["run", "--kinesis-stream", &self.stream])
            .arg("--state-dir")
            .arg(self.state())
            .arg("--rules")
            .arg(self.dir.path().join("rule.yml"))
            .args(["--poll", "200ms"]);
        if !self.state().join("checkpoint.json").exists()
            && !self.state().join("dry-run/checkpoint.json").exists()
        {
            c.args(["--start-from", "1h"]);
        }
        c.args(extra);
        c
    }

    /// One cycle through every shard, printing findings as JSON lines (a dry run).
    fn dry_run_once(&self) -> (Vec<Value>, String) {
        let out = self.cmd(&["--once", "--dry-run"]).output().unwrap();
        let err = stderr(&out);
        assert!(out.status.success(), "{err}");
        let findings = stdout(&out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        (findings, err)
    }

    fn users(findings: &[Value]) -> Vec<String> {
        let mut u: Vec<String> = findings
            .iter()
            .map(|f| f["principal"].as_str().unwrap().to_string())
            .collect();
        u.sort();
        u
    }
}

#[test]
fn a_detection_arrives_through_the_subscription_stream_once_across_restarts() {
    let s = Setup::new("kin-publish");
    s.stop_logging_by("a", &["alice"]);
    let out = s
        .cmd(&["--once", "--topic-arn", &s.topic, "--per-finding"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("reading Kinesis stream {}", s.stream)),
        "{err}"
    );
    let ns = notifications(&s.topic);
    assert_eq!(ns.len(), 1, "{ns:?}\n{err}");
    assert!(
        ns[0]
            .0
            .starts_with("[HIGH] Test - CloudTrail logging stopped by alice")
    );
    let finding = default_of(&ns[0].1);
    let origin = finding["details"]["origin"].as_str().unwrap();
    assert!(
        origin.starts_with(&format!(
            "Kinesis stream {}, shard shardId-000000000000, sequence ",
            s.stream
        )),
        "{origin}"
    );
    let cp: Value =
        serde_json::from_slice(&std::fs::read(s.state().join("checkpoint.json")).unwrap()).unwrap();
    assert_eq!(cp["kinesis"]["stream"], s.stream.as_str());
    assert!(
        cp["kinesis"]["shards"][0]["start"]["after"].is_string(),
        "{cp}"
    );

    // A restart resumes after the last record: nothing is published again; a new event is.
    let again = |extra: &[&str]| {
        let mut args = vec!["--once", "--topic-arn", &s.topic, "--per-finding"];
        args.extend_from_slice(extra);
        let out = s.cmd(&args).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    };
    again(&[]);
    assert_eq!(notifications(&s.topic).len(), 1);
    s.stop_logging_by("b", &["bob"]);
    again(&[]);
    let ns = notifications(&s.topic);
    assert_eq!(ns.len(), 2, "{ns:?}");
    assert!(ns[1].0.contains("by bob"), "{}", ns[1].0);
}

#[test]
fn killed_between_publish_and_checkpoint_publishes_once() {
    let s = Setup::new("kin-kill");
    // A first run records where reading starts.
    let out = s
        .cmd(&["--once", "--topic-arn", &s.topic, "--per-finding"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut child = s
        .cmd(&["--topic-arn", &s.topic, "--per-finding"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    s.stop_logging_by("a", &["carol"]);
    wait_for_notification(&s.topic);
    // SIGKILL: no chance to write a last checkpoint.
    child.kill().unwrap();
    child.wait().unwrap();
    let out = s
        .cmd(&["--once", "--topic-arn", &s.topic, "--per-finding"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let ns = notifications(&s.topic);
    assert_eq!(ns.len(), 1, "published once: {ns:?}");
}

#[test]
fn a_shard_split_mid_run_loses_nothing() {
    let s = Setup::new("kin-split");
    s.stop_logging_by("a", &["u1", "u2"]);
    let (first, _) = s.dry_run_once();
    assert_eq!(Setup::users(&first).len(), 2, "{first:?}");
    // Records put before the split and not yet read, then a split, then records that land
    // in the children.
    s.stop_logging_by("b", &["u3"]);
    rt().block_on(async {
        let c = sdk().await;
        let k = aws_sdk_kinesis::Client::new(&c);
        k.split_shard()
            .stream_name(&s.stream)
            .shard_to_split("shardId-000000000000")
            .new_starting_hash_key("170141183460469231731687303715884105728")
            .send()
            .await
            .expect("split the shard");
    });
    s.stop_logging_by("c", &["u4", "u5", "u6", "u7"]);
    let (second, err) = s.dry_run_once();
    let users = Setup::users(&second);
    assert_eq!(
        users.len(),
        5,
        "every event after the first run, once: {users:?}\n{err}"
    );
    for u in ["u3", "u4", "u5", "u6", "u7"] {
        assert!(
            users
                .iter()
                .any(|p| p.ends_with(&format!("user/{u}")) || p == u),
            "{u} missing: {users:?}"
        );
    }
    // Nothing more on a third run; the parent has been read to its end (its children are
    // read from then on). moto keeps routing records to the closed parent (AWS sends them to
    // the children), so the children stay empty here.
    let (third, _) = s.dry_run_once();
    assert!(third.is_empty(), "{third:?}");
    let cp: Value =
        serde_json::from_slice(&std::fs::read(s.state().join("dry-run/checkpoint.json")).unwrap())
            .unwrap();
    let shards = cp["kinesis"]["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 3, "{cp}");
    assert_eq!(shards[0]["finished"], true, "{cp}");
    assert_eq!(shards[1]["parents"][0], "shardId-000000000000", "{cp}");
}

#[test]
fn a_missing_stream_stops_the_run_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args([
            "run",
            "--kinesis-stream",
            "no-such-stream",
            "--dry-run",
            "--once",
        ])
        .arg("--state-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no-such-stream"), "{err}");
    assert!(
        err.contains("kinesis:DescribeStreamSummary") || err.contains("DescribeStreamSummary"),
        "{err}"
    );
}
