//! `trailwatch backtest` end to end: every input shape, the S3 layout, standard input, broken
//! inputs, time ranges, `--expect`, `--fail-on`, determinism across thread counts, the
//! re-order window, duplicate deliveries, `--output`, and redaction of secrets.
//!
//! Each test writes a tiny rule file (see [`RULES`]) so the expected findings are exact.

use base64::Engine as _;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

mod common;
use common::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Three rules: StopLogging (high), DeleteTrail (medium), an Insights record (low).
const RULES: &str = "\
title: CloudTrail stopped
id: tw-stop
level: high
detection:
  s: {eventName: StopLogging}
  condition: s
---
title: Trail deleted
id: tw-delete
level: medium
detection:
  s: {eventName: DeleteTrail}
  condition: s
---
title: CloudTrail Insight
id: tw-insight
level: low
detection:
  s: {eventType: AwsCloudTrailInsight}
  condition: s
";

/// A scratch directory with the rule file written in it.
struct Scratch {
    dir: tempfile::TempDir,
    rules: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules.yml");
        std::fs::write(&rules, RULES).unwrap();
        Scratch { dir, rules }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A fresh sub-directory (so inputs can be passed as a directory without the rules).
    fn subdir(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// `trailwatch backtest --rules <rules> <args…>`.
    fn backtest<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        bin()
            .arg("backtest")
            .arg("--rules")
            .arg(&self.rules)
            .args(args)
            .current_dir(root())
            .output()
            .expect("run trailwatch")
    }

    /// `--format json` run: exit status must be 0; returns the document and stderr.
    fn json<S: AsRef<OsStr>>(&self, args: &[S]) -> (Value, String) {
        let mut all: Vec<&OsStr> = vec![OsStr::new("--format"), OsStr::new("json")];
        all.extend(args.iter().map(AsRef::as_ref));
        let o = self.backtest(&all);
        assert_eq!(
            o.status.code(),
            Some(0),
            "args {all:?}\nstderr: {}",
            stderr(&o)
        );
        (parse_json(&o), stderr(&o))
    }
}

fn parse_json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr: {}",
            stdout(o),
            stderr(o)
        )
    })
}

fn source_of(name: &str) -> &'static str {
    match name {
        "StopLogging" | "DeleteTrail" => "cloudtrail.amazonaws.com",
        "DescribeInstances" => "ec2.amazonaws.com",
        "GetSessionToken" => "sts.amazonaws.com",
        _ => "iam.amazonaws.com",
    }
}

/// A realistic hand-made CloudTrail management event.
fn rec(id: &str, name: &str, time: &str) -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLEALICE",
            "arn": "arn:aws:iam::111122223333:user/alice",
            "accountId": "111122223333",
            "accessKeyId": "AKIAEXAMPLEALICE",
            "userName": "alice"
        },
        "eventTime": time,
        "eventSource": source_of(name),
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.13.0 Python/3.11.4",
        "requestParameters": {"name": "management-events"},
        "responseElements": null,
        "requestID": format!("req-{id}"),
        "eventID": id,
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": "111122223333",
        "eventCategory": "Management"
    })
}

/// A CloudTrail Insights record: no userIdentity, no eventName.
fn insight(id: &str, time: &str) -> Value {
    json!({
        "eventVersion": "1.08",
        "eventTime": time,
        "awsRegion": "us-east-1",
        "eventID": id,
        "eventType": "AwsCloudTrailInsight",
        "recipientAccountId": "111122223333",
        "sharedEventID": "c2806063-d85d-4c7a-a7fc-9e0b4f8f1d44",
        "insightDetails": {
            "state": "Start",
            "eventSource": "iam.amazonaws.com",
            "eventName": "CreateUser",
            "insightType": "ApiCallRateInsight",
            "insightContext": {
                "statistics": {
                    "baseline": {"average": 0.0},
                    "insight": {"average": 30.0},
                    "insightDuration": 1
                },
                "attributions": []
            }
        },
        "eventCategory": "Insight"
    })
}

/// The records every shape test carries: findings for e1 (stop), e3 (delete), e4 (stop).
fn standard() -> Vec<Value> {
    vec![
        rec("e1", "StopLogging", "2023-07-10T12:00:00Z"),
        rec("e2", "DescribeInstances", "2023-07-10T12:01:00Z"),
        rec("e3", "DeleteTrail", "2023-07-10T12:02:00Z"),
        rec("e4", "StopLogging", "2023-07-10T12:03:00Z"),
    ]
}

const STANDARD_FINDINGS: [&str; 3] = ["e1", "e3", "e4"];

fn records_doc(recs: &[Value]) -> String {
    json!({ "Records": recs }).to_string()
}

fn json_lines(recs: &[Value]) -> String {
    recs.iter().map(|r| format!("{r}\n")).collect()
}

fn cwl_data(recs: &[Value]) -> String {
    let events: Vec<Value> = recs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            json!({
                "id": format!("3758{i:050}"),
                "timestamp": 1_688_990_400_000u64 + i as u64,
                "message": r.to_string()
            })
        })
        .collect();
    json!({
        "messageType": "DATA_MESSAGE",
        "owner": "111122223333",
        "logGroup": "aws-cloudtrail-logs-111122223333",
        "logStream": "111122223333_CloudTrail_us-east-1",
        "subscriptionFilters": ["trailwatch"],
        "logEvents": events
    })
    .to_string()
}

fn lookup_entry(r: &Value) -> Value {
    json!({
        "EventId": r["eventID"],
        "EventName": r["eventName"],
        "ReadOnly": "false",
        "AccessKeyId": "AKIAEXAMPLEALICE",
        "EventTime": "2023-07-10T12:00:00+00:00",
        "EventSource": r["eventSource"],
        "Username": "alice",
        "Resources": [],
        "CloudTrailEvent": r.to_string()
    })
}

/// First event id of every finding, in output order.
fn finding_events(v: &Value) -> Vec<String> {
    findings(v)
        .iter()
        .map(|f| f["event_ids"][0].as_str().unwrap_or("-").to_string())
        .collect()
}

fn findings(v: &Value) -> &Vec<Value> {
    v["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings array: {v}"))
}

fn summary_u64(v: &Value, key: &str) -> u64 {
    v["summary"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("summary.{key} missing: {}", v["summary"]))
}

fn issues(v: &Value) -> &Vec<Value> {
    v["summary"]["issues"].as_array().unwrap()
}

/// Runs one input file holding [`standard`] records in some shape and checks the result.
fn check_standard_shape(name: &str, bytes: impl AsRef<[u8]>) {
    let s = Scratch::new();
    let f = write(&s.subdir("in"), name, bytes);
    let (v, err) = s.json(&[&f]);
    let ctx = format!("{name}: {}\nstderr: {err}", v["summary"]);
    assert_eq!(finding_events(&v), STANDARD_FINDINGS, "{ctx}");
    assert_eq!(summary_u64(&v, "records"), 4, "{ctx}");
    assert_eq!(summary_u64(&v, "files_read"), 1, "{ctx}");
    assert_eq!(summary_u64(&v, "malformed_records"), 0, "{ctx}");
    assert_eq!(summary_u64(&v, "files_skipped"), 0, "{ctx}");
    assert!(issues(&v).is_empty(), "{ctx}");
    assert_eq!(summary_u64(&v, "findings"), 3, "{ctx}");
    assert_eq!(v["summary"]["by_rule"]["tw-stop"]["findings"], 2, "{ctx}");
    assert_eq!(v["summary"]["by_rule"]["tw-delete"]["findings"], 1, "{ctx}");
    assert_eq!(
        v["summary"]["first_event_time"], "2023-07-10T12:00:00Z",
        "{ctx}"
    );
    assert_eq!(
        v["summary"]["last_event_time"], "2023-07-10T12:03:00Z",
        "{ctx}"
    );
    let f0 = &findings(&v)[0];
    assert_eq!(f0["rule"]["id"], "tw-stop", "{ctx}");
    assert_eq!(f0["rule"]["level"], "high", "{ctx}");
    assert_eq!(f0["time"], "2023-07-10T12:00:00Z", "{ctx}");
    assert_eq!(
        f0["principal"], "arn:aws:iam::111122223333:user/alice",
        "{ctx}"
    );
    assert_eq!(f0["account"], "111122223333", "{ctx}");
    assert_eq!(f0["region"], "us-east-1", "{ctx}");
}

// ---------------------------------------------------------------------------------------------
// 1. Input shapes
// ---------------------------------------------------------------------------------------------

#[test]
fn shape_records_plain() {
    check_standard_shape("records.json", records_doc(&standard()));
}

#[test]
fn shape_records_gzipped() {
    check_standard_shape("records.json.gz", gz(records_doc(&standard())));
}

#[test]
fn shape_gzip_detected_by_magic_bytes_without_gz_suffix() {
    check_standard_shape("records.json", gz(records_doc(&standard())));
    check_standard_shape("records", gz(records_doc(&standard())));
}

#[test]
fn shape_plain_json_named_gz_is_read_as_json() {
    check_standard_shape("records.json.gz", records_doc(&standard()));
}

#[test]
fn shape_json_array() {
    check_standard_shape(
        "array.json",
        serde_json::to_string_pretty(&standard()).unwrap(),
    );
}

#[test]
fn shape_single_object_per_file() {
    let s = Scratch::new();
    let dir = s.subdir("objects");
    for (i, r) in standard().iter().enumerate() {
        write(
            &dir,
            &format!("object-{i}.json"),
            serde_json::to_string_pretty(r).unwrap(),
        );
    }
    let (v, err) = s.json(&[&dir]);
    assert_eq!(finding_events(&v), STANDARD_FINDINGS, "{err}");
    assert_eq!(summary_u64(&v, "records"), 4);
    assert_eq!(summary_u64(&v, "files_read"), 4);
    assert_eq!(summary_u64(&v, "malformed_records"), 0);
    assert!(issues(&v).is_empty(), "{}", v["summary"]);
    // One object alone in a file.
    let one = write(s.path(), "one.json", standard()[0].to_string());
    let (v, _) = s.json(&[&one]);
    assert_eq!(finding_events(&v), ["e1"]);
    assert_eq!(summary_u64(&v, "records"), 1);
}

#[test]
fn shape_json_lines() {
    check_standard_shape("events.jsonl", json_lines(&standard()));
    // Gzipped JSON lines, and CRLF line ends with blank lines in between.
    check_standard_shape("events.jsonl.gz", gz(json_lines(&standard())));
    let crlf: String = standard().iter().map(|r| format!("{r}\r\n\r\n")).collect();
    check_standard_shape("events-crlf.jsonl", crlf);
}

#[test]
fn shape_cloudwatch_logs_data_message_raw() {
    check_standard_shape("cwl.json", cwl_data(&standard()));
}

#[test]
fn shape_cloudwatch_logs_data_message_gzipped() {
    check_standard_shape("cwl.json.gz", gz(cwl_data(&standard())));
}

#[test]
fn shape_cloudwatch_logs_data_message_base64_gzip() {
    // What a Lambda subscriber receives in `awslogs.data`.
    let b64 = base64::engine::general_purpose::STANDARD.encode(gz(cwl_data(&standard())));
    check_standard_shape("lambda-payload.txt", format!("{b64}\n"));
}

#[test]
fn shape_cloudwatch_logs_control_message_is_skipped_and_counted() {
    let s = Scratch::new();
    let dir = s.subdir("cwl");
    write(
        &dir,
        "control.json",
        json!({
            "messageType": "CONTROL_MESSAGE",
            "owner": "CloudwatchLogs",
            "logGroup": "",
            "logStream": "",
            "subscriptionFilters": [],
            "logEvents": [{
                "id": "",
                "timestamp": 1_688_990_400_000u64,
                "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose."
            }]
        })
        .to_string(),
    );
    let (v, err) = s.json(&[&dir]);
    assert!(findings(&v).is_empty());
    assert_eq!(summary_u64(&v, "control_messages_skipped"), 1);
    assert_eq!(summary_u64(&v, "records"), 0);
    assert_eq!(summary_u64(&v, "malformed_records"), 0);
    assert!(issues(&v).is_empty(), "{}", v["summary"]);
    assert!(err.trim().is_empty(), "{err}");
    // Next to a data message, only the data message's records count.
    write(&dir, "data.json", cwl_data(&standard()));
    let (v, _) = s.json(&[&dir]);
    assert_eq!(finding_events(&v), STANDARD_FINDINGS);
    assert_eq!(summary_u64(&v, "control_messages_skipped"), 1);
    assert_eq!(summary_u64(&v, "records"), 4);
}

#[test]
fn shape_lookup_events_output() {
    let entries: Vec<Value> = standard().iter().map(lookup_entry).collect();
    check_standard_shape(
        "lookup-events.json",
        serde_json::to_string_pretty(&json!({ "Events": entries })).unwrap(),
    );
}

#[test]
fn shape_array_of_lookup_events_entries() {
    let entries: Vec<Value> = standard().iter().map(lookup_entry).collect();
    check_standard_shape(
        "lookup-entries.json",
        serde_json::to_string_pretty(&entries).unwrap(),
    );
}

#[test]
fn shape_insights_record_flows_through() {
    let s = Scratch::new();
    let mut recs = standard();
    recs.insert(1, insight("ins-1", "2023-07-10T12:00:30Z"));
    let input = write(s.path(), "with-insight.json", records_doc(&recs));
    let (v, err) = s.json(&[&input]);
    let ctx = format!("{}\nstderr: {err}", v["summary"]);
    assert_eq!(finding_events(&v), ["e1", "ins-1", "e3", "e4"], "{ctx}");
    assert_eq!(summary_u64(&v, "records"), 5, "{ctx}");
    assert_eq!(summary_u64(&v, "malformed_records"), 0, "{ctx}");
    assert_eq!(summary_u64(&v, "records_without_time"), 0, "{ctx}");
    assert!(issues(&v).is_empty(), "{ctx}");
    assert!(err.trim().is_empty(), "{err}");
    let f = &findings(&v)[1];
    assert_eq!(f["rule"]["id"], "tw-insight");
    assert_eq!(f["time"], "2023-07-10T12:00:30Z");
    assert_eq!(f["account"], "111122223333");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("AwsCloudTrailInsight"),
        "{f}"
    );
    assert_eq!(
        f["event"]["insightDetails"]["insightType"],
        "ApiCallRateInsight"
    );
    // The text format copes with a finding that has no event name or identity either.
    let o = s.backtest(&[&input]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("CloudTrail Insight"), "{}", stdout(&o));
}

// ---------------------------------------------------------------------------------------------
// 2. The S3 layout
// ---------------------------------------------------------------------------------------------

#[test]
fn s3_layout_with_digests_readme_and_insights() {
    let s = Scratch::new();
    let base = s.subdir("bucket");
    let org = "AWSLogs/o-org123/111122223333";
    let day = "us-east-1/2023/07/10";
    let ct = format!("{org}/CloudTrail/{day}");
    write(
        &base,
        &format!("{ct}/111122223333_CloudTrail_us-east-1_20230710T1205Z_Bb2kQx7mZp0Qw1Ls.json.gz"),
        gz(records_doc(&standard()[2..])),
    );
    write(
        &base,
        &format!("{ct}/111122223333_CloudTrail_us-east-1_20230710T1200Z_Aa9pLm3nQe5Rt7Uv.json.gz"),
        gz(records_doc(&standard()[..2])),
    );
    write(
        &base,
        &format!(
            "{org}/CloudTrail-Digest/{day}/111122223333_CloudTrail-Digest_us-east-1_trail_us-east-1_20230710T1300Z.json.gz"
        ),
        gz(json!({
            "awsAccountId": "111122223333",
            "digestStartTime": "2023-07-10T12:00:00Z",
            "digestEndTime": "2023-07-10T13:00:00Z",
            "digestS3Bucket": "bucket",
            "digestS3Object": "x",
            "digestPublicKeyFingerprint": "0123456789abcdef",
            "digestSignatureAlgorithm": "SHA256withRSA",
            "newestEventTime": "2023-07-10T12:03:00Z",
            "oldestEventTime": "2023-07-10T12:00:00Z",
            "previousDigestS3Bucket": null,
            "previousDigestHashValue": null,
            "logFiles": [{
                "s3Bucket": "bucket",
                "s3Object": "x.json.gz",
                "hashValue": "00",
                "hashAlgorithm": "SHA-256",
                "newestEventTime": "2023-07-10T12:03:00Z",
                "oldestEventTime": "2023-07-10T12:00:00Z"
            }]
        })
        .to_string()),
    );
    write(
        &base,
        &format!(
            "{org}/CloudTrail-Insight/{day}/111122223333_CloudTrail-Insight_us-east-1_20230710T1210Z_Cc4dEf6gHi8jKl0m.json.gz"
        ),
        gz(records_doc(&[insight("ins-1", "2023-07-10T12:01:30Z")])),
    );
    write(
        &base,
        "README.md",
        "# Exported trail\n\nCopied from s3://bucket on 2023-07-11.\n",
    );
    let (v, err) = s.json(&[&base]);
    let ctx = format!("{}\nstderr: {err}", v["summary"]);
    assert_eq!(finding_events(&v), ["e1", "ins-1", "e3", "e4"], "{ctx}");
    assert_eq!(summary_u64(&v, "digest_files_skipped"), 1, "{ctx}");
    assert_eq!(summary_u64(&v, "files_skipped"), 1, "{ctx}");
    assert_eq!(summary_u64(&v, "files_read"), 3, "{ctx}");
    assert_eq!(summary_u64(&v, "records"), 5, "{ctx}");
    assert_eq!(summary_u64(&v, "malformed_records"), 0, "{ctx}");
    assert!(issues(&v).is_empty(), "{ctx}");
    // The text summary says what was skipped.
    let o = s.backtest(&[&base]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(out.contains("1 file skipped (not CloudTrail)"), "{out}");
    assert!(out.contains("1 digest file skipped"), "{out}");
    assert!(out.contains("4 findings from 5 events in 3 files"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// 3. Standard input
// ---------------------------------------------------------------------------------------------

fn backtest_stdin(s: &Scratch, args: &[&str], input: Vec<u8>) -> Output {
    let mut child = bin()
        .arg("backtest")
        .arg("--rules")
        .arg(&s.rules)
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn trailwatch");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        // The binary may stop reading early on an error; a broken pipe is not ours to judge.
        let _ = stdin.write_all(&input);
    });
    let o = child.wait_with_output().expect("wait for trailwatch");
    writer.join().unwrap();
    o
}

#[test]
fn stdin_gzip_records() {
    let s = Scratch::new();
    let o = backtest_stdin(&s, &["--format", "json", "-"], gz(records_doc(&standard())));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = parse_json(&o);
    assert_eq!(finding_events(&v), STANDARD_FINDINGS);
    assert_eq!(summary_u64(&v, "records"), 4);
    assert_eq!(summary_u64(&v, "files_read"), 1);
    assert!(issues(&v).is_empty(), "{}", v["summary"]);
    // Standard input together with a file.
    let f = write(
        s.path(),
        "more.json",
        records_doc(&[rec("e5", "StopLogging", "2023-07-10T12:04:00Z")]),
    );
    let o = backtest_stdin(
        &s,
        &["--format", "json", f.to_str().unwrap(), "-"],
        gz(json_lines(&standard())),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = parse_json(&o);
    assert_eq!(finding_events(&v), ["e1", "e3", "e4", "e5"]);
    assert_eq!(summary_u64(&v, "files_read"), 2);
}

#[test]
fn stdin_problem_is_reported_as_stdin() {
    let s = Scratch::new();
    let mut bad = gz(records_doc(&standard()));
    bad.truncate(bad.len() / 2);
    let o = backtest_stdin(&s, &["--format", "json", "-"], bad);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("<stdin>: corrupt gzip data"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// 4. Broken inputs
// ---------------------------------------------------------------------------------------------

struct Broken {
    file: &'static str,
    /// Text after `<file>: ` on the warning line (names the place where there is one).
    message: &'static str,
    findings: usize,
    records: u64,
    malformed: u64,
}

const BROKEN: &[Broken] = &[
    Broken {
        file: "truncated.json.gz",
        message: "corrupt gzip data after 106 bytes of output",
        findings: 0,
        records: 0,
        malformed: 0,
    },
    Broken {
        file: "invalid.json",
        message: "malformed JSON at line 3, column",
        findings: 0,
        records: 0,
        malformed: 0,
    },
    Broken {
        file: "not-utf8.json",
        message: "invalid UTF-8 at byte 52",
        findings: 1,
        records: 1,
        malformed: 0,
    },
    Broken {
        file: "wrong-types.json",
        message: "record 1: a CloudTrail record must be a JSON object",
        findings: 1,
        records: 3,
        malformed: 1,
    },
    Broken {
        file: "empty.json",
        message: "empty file",
        findings: 0,
        records: 0,
        malformed: 0,
    },
    Broken {
        file: "lines-with-bad-line.jsonl",
        message: "line 2: malformed JSON",
        findings: 2,
        records: 3,
        malformed: 1,
    },
];

fn broken(name: &str) -> PathBuf {
    root().join("fixtures/broken").join(name)
}

#[test]
fn broken_inputs_are_reported_once_counted_and_survived() {
    let s = Scratch::new();
    for b in BROKEN {
        let path = broken(b.file);
        let (v, err) = s.json(&[&path]);
        let ctx = format!("{}: {}\nstderr: {err}", b.file, v["summary"]);
        let mentions: Vec<&str> = err.lines().filter(|l| l.contains(b.file)).collect();
        assert_eq!(mentions.len(), 1, "reported once: {ctx}");
        let want = format!("{}: {}", path.display(), b.message);
        assert!(
            mentions[0].starts_with("warning: ") && mentions[0].contains(&want),
            "want `{want}`: {ctx}"
        );
        assert_eq!(issues(&v).len(), 1, "{ctx}");
        assert!(
            issues(&v)[0]["place"]
                .as_str()
                .unwrap()
                .starts_with(&path.display().to_string()),
            "{ctx}"
        );
        assert_eq!(findings(&v).len(), b.findings, "{ctx}");
        assert_eq!(summary_u64(&v, "records"), b.records, "{ctx}");
        assert_eq!(summary_u64(&v, "malformed_records"), b.malformed, "{ctx}");
        // The good records around a bad one are found.
        for f in findings(&v) {
            assert_eq!(f["rule"]["id"], "tw-stop", "{ctx}");
        }
        // --strict: the same run, exit 2 afterwards.
        let o = s.backtest(&[OsStr::new("--strict"), path.as_os_str()]);
        assert_eq!(o.status.code(), Some(2), "--strict {ctx}");
        let err = stderr(&o);
        assert!(err.contains(&want), "--strict {}: {err}", b.file);
        assert!(err.contains("--strict"), "{err}");
    }
}

#[test]
fn broken_lines_keep_the_good_lines_findings() {
    let s = Scratch::new();
    let (v, _) = s.json(&[broken("lines-with-bad-line.jsonl")]);
    assert_eq!(finding_events(&v), ["broken-0001", "broken-0003"]);
    let (v, _) = s.json(&[broken("wrong-types.json")]);
    assert_eq!(finding_events(&v), ["broken-0001"]);
}

#[test]
fn big_record_is_processed_normally() {
    let s = Scratch::new();
    let path = broken("big-record.json");
    assert!(std::fs::metadata(&path).unwrap().len() >= 1 << 20);
    let (v, err) = s.json(&[&path]);
    assert!(err.trim().is_empty(), "{err}");
    assert_eq!(finding_events(&v), ["broken-big"]);
    assert_eq!(summary_u64(&v, "records"), 1);
    assert_eq!(summary_u64(&v, "malformed_records"), 0);
    assert!(issues(&v).is_empty());
    let doc = findings(&v)[0]["event"]["requestParameters"]["policyDocument"]
        .as_str()
        .unwrap()
        .len();
    assert!(doc > 1_000_000, "the whole record is kept: {doc}");
    let o = s.backtest(&[OsStr::new("--strict"), path.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn broken_readme_is_skipped_and_fails_a_strict_run() {
    let s = Scratch::new();
    let path = broken("README.md");
    let (v, err) = s.json(&[&path]);
    assert!(err.trim().is_empty(), "{err}");
    assert_eq!(summary_u64(&v, "files_skipped"), 1);
    assert!(issues(&v).is_empty());
    assert_eq!(
        v["summary"]["skipped"][0]["message"],
        "not CloudTrail: neither JSON nor gzip"
    );
    // --strict reads every input: a skipped one fails the run, named.
    let o = s.backtest(&[OsStr::new("--strict"), path.as_os_str()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "error: {}: not CloudTrail: neither JSON nor gzip (skipped)",
            path.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("error: --strict: 1 input skipped (listed above)"),
        "{err}"
    );
}

#[test]
fn garbage_on_standard_input_fails_a_strict_run() {
    use std::io::Write;
    use std::process::Stdio;
    let s = Scratch::new();
    let mut child = bin()
        .args(["backtest", "--strict", "--rules"])
        .arg(&s.rules)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"not json\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("error: <stdin>: not CloudTrail: neither JSON nor gzip (skipped)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_json_file_that_is_not_cloudtrail_is_not_an_event() {
    let s = Scratch::new();
    let dir = s.subdir("docs");
    std::fs::copy(
        root().join("docs/iam-policy.json"),
        dir.join("iam-policy.json"),
    )
    .unwrap();
    write(&dir, "good.json", records_doc(&standard()));
    let (v, err) = s.json(&[&dir]);
    assert_eq!(finding_events(&v), STANDARD_FINDINGS, "{err}");
    assert_eq!(summary_u64(&v, "records"), 4, "the policy is not an event");
    assert_eq!(summary_u64(&v, "files_read"), 1);
    assert_eq!(summary_u64(&v, "files_skipped"), 1);
    let o = s.backtest(&[OsStr::new("--strict"), dir.as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("iam-policy.json: not CloudTrail: JSON, but neither a record"),
        "{}",
        stderr(&o)
    );
    // The repository's docs/ holds no events at all.
    let (v, _) = s.json(&[root().join("docs")]);
    assert_eq!(summary_u64(&v, "records"), 0, "{}", v["summary"]);
}

#[test]
fn good_file_findings_survive_broken_neighbours() {
    let s = Scratch::new();
    let dir = s.subdir("mixed");
    write(&dir, "good.json.gz", gz(records_doc(&standard())));
    for b in BROKEN {
        std::fs::copy(broken(b.file), dir.join(b.file)).unwrap();
    }
    std::fs::copy(broken("big-record.json"), dir.join("big-record.json")).unwrap();
    for threads in ["1", "4"] {
        let (v, err) = s.json(&[
            OsStr::new("--threads"),
            OsStr::new(threads),
            dir.as_os_str(),
        ]);
        let ctx = format!("threads {threads}: {}\nstderr: {err}", v["summary"]);
        let got = finding_events(&v);
        for want in STANDARD_FINDINGS
            .iter()
            .chain(&["broken-big", "broken-0001", "broken-0003"])
        {
            assert!(got.iter().any(|g| g == want), "missing {want}: {ctx}");
        }
        for b in BROKEN {
            let n = err.lines().filter(|l| l.contains(b.file)).count();
            assert_eq!(n, 1, "{} reported once: {ctx}", b.file);
        }
        assert_eq!(issues(&v).len(), BROKEN.len(), "{ctx}");
        // good (4) + not-utf8 (1) + wrong-types (3) + lines (3) + big (1)
        assert_eq!(summary_u64(&v, "records"), 12, "{ctx}");
        assert_eq!(summary_u64(&v, "malformed_records"), 2, "{ctx}");
    }
    // --strict still reports everything, then exits 2.
    let o = s.backtest(&[
        OsStr::new("--strict"),
        OsStr::new("--format"),
        OsStr::new("json"),
        dir.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let v = parse_json(&o);
    assert!(finding_events(&v).iter().any(|e| e == "e1"));
}

#[test]
fn missing_input_next_to_a_good_one_is_reported_and_the_run_goes_on() {
    let s = Scratch::new();
    let good = write(s.path(), "good.json", records_doc(&standard()));
    let missing = s.path().join("not-there.json");
    let (v, err) = s.json(&[&missing, &good]);
    assert_eq!(finding_events(&v), STANDARD_FINDINGS, "{err}");
    let mentions: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("not-there.json"))
        .collect();
    assert_eq!(mentions.len(), 1, "{err}");
    assert!(mentions[0].contains("cannot read"), "{err}");
    assert_eq!(issues(&v).len(), 1);
    let o = s.backtest(&[
        OsStr::new("--strict"),
        missing.as_os_str(),
        good.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// JSON lines whose *first* line is broken: only that line is bad, the others are records.
/// (A broken second line is handled that way: see `lines-with-bad-line.jsonl`.)
#[test]
fn json_lines_with_a_broken_first_line_keep_the_other_lines() {
    let s = Scratch::new();
    let mut text = String::from("{\"eventVersion\": \"1.08\", \"eventName\": \"StopLo\n");
    text.push_str(&json_lines(&standard()));
    let f = write(s.path(), "first-line-cut.jsonl", text);
    let (v, err) = s.json(&[&f]);
    let ctx = format!("{}\nstderr: {err}", v["summary"]);
    assert_eq!(finding_events(&v), STANDARD_FINDINGS, "nothing lost: {ctx}");
    assert_eq!(summary_u64(&v, "records"), 5, "{ctx}");
    assert_eq!(summary_u64(&v, "malformed_records"), 1, "{ctx}");
    assert!(
        err.contains(&format!("{}: line 1:", f.display())),
        "the place is the line: {ctx}"
    );
}

/// Detection is by content: JSON is JSON however much whitespace comes first.
#[test]
fn json_after_long_leading_whitespace_is_read() {
    let s = Scratch::new();
    let text = format!("{}\n{}", " ".repeat(100), records_doc(&standard()));
    let f = write(s.path(), "padded.json", text);
    let (v, err) = s.json(&[&f]);
    let ctx = format!("{}\nstderr: {err}", v["summary"]);
    assert_eq!(finding_events(&v), STANDARD_FINDINGS, "{ctx}");
    assert_eq!(summary_u64(&v, "files_skipped"), 0, "{ctx}");
    assert_eq!(summary_u64(&v, "records"), 4, "{ctx}");
}

/// Subscription payloads one per line (a JSON array of them is unpacked; JSON lines of them
/// must not silently turn each envelope into one time-less "record").
#[test]
fn cloudwatch_logs_envelopes_as_json_lines_are_unpacked() {
    let s = Scratch::new();
    let recs = standard();
    let text = format!("{}\n{}\n", cwl_data(&recs[..2]), cwl_data(&recs[2..]));
    // The same envelopes as a JSON array are understood (control for the test itself).
    let arr = format!("[{},{}]", cwl_data(&recs[..2]), cwl_data(&recs[2..]));
    let (v, _) = s.json(&[&write(s.path(), "envelopes.json", arr)]);
    assert_eq!(finding_events(&v), STANDARD_FINDINGS);
    let f = write(s.path(), "envelopes.jsonl", text);
    let (v, err) = s.json(&[&f]);
    let ctx = format!("{}\nstderr: {err}", v["summary"]);
    assert_eq!(finding_events(&v), STANDARD_FINDINGS, "{ctx}");
    assert_eq!(summary_u64(&v, "records"), 4, "{ctx}");
    assert_eq!(summary_u64(&v, "records_without_time"), 0, "{ctx}");
}

// ---------------------------------------------------------------------------------------------
// 5. --since / --until
// ---------------------------------------------------------------------------------------------

fn time_range_input(s: &Scratch) -> PathBuf {
    write(
        s.path(),
        "range.json",
        records_doc(&[
            rec("t0", "StopLogging", "2023-07-09T23:59:59Z"),
            rec("t1", "StopLogging", "2023-07-10T00:00:00Z"),
            rec("t2", "StopLogging", "2023-07-10T10:00:00Z"),
            rec("t3", "StopLogging", "2023-07-10T23:59:59Z"),
            rec("t4", "StopLogging", "2023-07-11T00:00:00Z"),
            rec("t5", "DescribeInstances", "2023-07-12T00:00:00Z"),
        ]),
    )
}

#[test]
fn since_until_filter_by_event_time() {
    let s = Scratch::new();
    let f = time_range_input(&s);
    let f = f.to_str().unwrap();
    // Dates: midnight UTC; --since inclusive, --until exclusive.
    let (v, err) = s.json(&["--since", "2023-07-10", "--until", "2023-07-11", f]);
    assert_eq!(finding_events(&v), ["t1", "t2", "t3"], "{err}");
    assert_eq!(summary_u64(&v, "records"), 6);
    assert_eq!(summary_u64(&v, "records_out_of_range"), 3);
    assert_eq!(v["summary"]["first_event_time"], "2023-07-10T00:00:00Z");
    assert_eq!(v["summary"]["last_event_time"], "2023-07-10T23:59:59Z");
    // RFC 3339, with an offset.
    let (v, _) = s.json(&[
        "--since",
        "2023-07-10T12:00:00+02:00",
        "--until",
        "2023-07-11T00:00:00.001Z",
        f,
    ]);
    assert_eq!(finding_events(&v), ["t2", "t3", "t4"]);
    assert_eq!(summary_u64(&v, "records_out_of_range"), 3);
    // Only one bound.
    let (v, _) = s.json(&["--until", "2023-07-10T00:00:00Z", f]);
    assert_eq!(finding_events(&v), ["t0"]);
    assert_eq!(summary_u64(&v, "records_out_of_range"), 5);
    // Relative: 100000 days before now reaches back past 2023.
    let (v, _) = s.json(&["--since", "100000d", f]);
    assert_eq!(finding_events(&v), ["t0", "t1", "t2", "t3", "t4"]);
    assert_eq!(summary_u64(&v, "records_out_of_range"), 0);
    let (v, _) = s.json(&["--until", "100000d", f]);
    assert!(findings(&v).is_empty());
    assert_eq!(summary_u64(&v, "records_out_of_range"), 6);
    // The text summary mentions them.
    let o = s.backtest(&["--since", "2023-07-10", "--until", "2023-07-11", f]);
    assert!(
        stdout(&o).contains("3 events outside --since/--until"),
        "{}",
        stdout(&o)
    );
}

/// With --since/--until, S3-layout files whose delivery date cannot hold events of the range
/// are not read at all — not even opened: a damaged file there does not fail --strict.
#[test]
fn since_until_skip_files_by_their_delivery_date() {
    let s = Scratch::new();
    let day = |d: &str| {
        let dir = s.path().join(format!(
            "AWSLogs/111122223333/CloudTrail/us-east-1/2023/07/{d}"
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    };
    let name = |stamp: &str| format!("111122223333_CloudTrail_us-east-1_{stamp}_x.json.gz");
    write(
        &day("09"),
        &name("20230709T1205Z"),
        gz(records_doc(&[rec(
            "a",
            "StopLogging",
            "2023-07-09T12:00:00Z",
        )])),
    );
    write(
        &day("10"),
        &name("20230710T1205Z"),
        gz(records_doc(&[rec(
            "b",
            "StopLogging",
            "2023-07-10T12:00:00Z",
        )])),
    );
    // Delivered the next day, an event of the 10th: read (within the delivery margin).
    write(
        &day("11"),
        &name("20230711T0010Z"),
        gz(records_doc(&[rec(
            "c",
            "StopLogging",
            "2023-07-10T23:58:00Z",
        )])),
    );
    // Far outside the range, and damaged: never opened.
    write(&day("20"), &name("20230720T1205Z"), b"\x1f\x8b damaged");
    let root = s.path().join("AWSLogs");
    let root = root.to_str().unwrap();
    let (v, err) = s.json(&[
        "--strict",
        "--since",
        "2023-07-10",
        "--until",
        "2023-07-11",
        root,
    ]);
    assert_eq!(finding_events(&v), ["b", "c"], "{err}");
    // The 20th's directory is not listed; the 9th's is (it ends at the range's start), but
    // its file, delivered at noon on the 9th, is not read.
    let pruned = (
        summary_u64(&v, "days_pruned_by_date"),
        summary_u64(&v, "files_pruned_by_date"),
    );
    assert_eq!(pruned, (1, 1), "{}", v["summary"]);
    assert_eq!(summary_u64(&v, "files_read"), 2);
    let o = s.backtest(&["--since", "2023-07-10", "--until", "2023-07-11", root]);
    assert!(
        stdout(&o).contains("1 day directory not read (delivery date outside --since/--until)")
            && stdout(&o).contains("1 file not read (delivery date outside --since/--until)"),
        "{}",
        stdout(&o)
    );
    // A margin of 0: only files delivered before --until are read.
    let (v, _) = s.json(&[
        "--since",
        "2023-07-10",
        "--until",
        "2023-07-11",
        "--delivery-margin",
        "0s",
        root,
    ]);
    assert_eq!(finding_events(&v), ["b"]);
    // Without a range nothing is pruned: the damaged file is read and reported.
    let (v, _) = s.json(&[root]);
    assert_eq!(summary_u64(&v, "days_pruned_by_date"), 0);
    assert_eq!(finding_events(&v), ["a", "b", "c"]);
}

/// A logstash export's record: `eventTime` renamed `@timestamp`.
fn logstash(id: &str, name: &str, time: &str) -> Value {
    let mut r = rec(id, name, time);
    let t = r.as_object_mut().unwrap().remove("eventTime").unwrap();
    r["@timestamp"] = t;
    r["@version"] = json!("1");
    r
}

#[test]
fn records_timed_by_timestamp_use_that_time_everywhere_and_say_so() {
    let s = Scratch::new();
    let mut no_time = rec("n1", "StopLogging", "-");
    no_time.as_object_mut().unwrap().remove("eventTime");
    let f = write(
        s.path(),
        "logstash.jsonl",
        json_lines(&[
            logstash("l2", "StopLogging", "2023-07-10T12:05:00.000Z"),
            rec("e1", "StopLogging", "2023-07-10T12:00:00Z"),
            logstash("l1", "DeleteTrail", "2023-07-10T11:00:00.000Z"),
            no_time,
        ]),
    );
    let (v, err) = s.json(&[&f]);
    let ctx = format!("{}\n{err}", v["summary"]);
    // Findings carry the fallback time, say where it came from, and are in its order.
    let got: Vec<(String, Value, Value)> = findings(&v)
        .iter()
        .map(|f| {
            (
                f["event_ids"][0].as_str().unwrap().to_string(),
                f["time"].clone(),
                f["details"]["time_field"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            // Without any time: released at once, in arrival order.
            ("n1".into(), Value::Null, Value::Null),
            (
                "l1".into(),
                json!("2023-07-10T11:00:00.000Z"),
                json!("@timestamp")
            ),
            ("e1".into(), json!("2023-07-10T12:00:00Z"), Value::Null),
            (
                "l2".into(),
                json!("2023-07-10T12:05:00.000Z"),
                json!("@timestamp")
            ),
        ],
        "{ctx}"
    );
    // The summary agrees: the range spans the fallback times, two records were timed by
    // them, one had no time at all.
    assert_eq!(
        v["summary"]["first_event_time"], "2023-07-10T11:00:00Z",
        "{ctx}"
    );
    assert_eq!(
        v["summary"]["last_event_time"], "2023-07-10T12:05:00Z",
        "{ctx}"
    );
    assert_eq!(summary_u64(&v, "records_time_from_fallback"), 2, "{ctx}");
    assert_eq!(summary_u64(&v, "records_without_time"), 1, "{ctx}");
    // --since/--until filter by the same time.
    let (v, _) = s.json(&[
        OsStr::new("--since"),
        OsStr::new("2023-07-10T12:01:00Z"),
        f.as_os_str(),
    ]);
    assert_eq!(finding_events(&v), ["l2"]);
    // The text summary says so.
    let o = s.backtest(&[&f]);
    let out = stdout(&o);
    assert!(
        out.contains("2 events without eventTime timed by @timestamp"),
        "{out}"
    );
    assert!(
        out.contains("1 event without a time, neither eventTime nor @timestamp"),
        "{out}"
    );
    assert!(
        out.contains("HIGH     2023-07-10T12:05:00.000Z  CloudTrail stopped"),
        "{out}"
    );
}

#[test]
fn an_empty_or_inverted_time_range_is_a_usage_error() {
    let s = Scratch::new();
    let f = time_range_input(&s);
    let f = f.to_str().unwrap();
    for (since, until) in [("2023-07-11", "2023-07-10"), ("2023-07-10", "2023-07-10")] {
        let o = s.backtest(&["--since", since, "--until", until, f]);
        assert_eq!(o.status.code(), Some(2), "{since} {until}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!(
                "error: --since {since} ({since}T00:00:00Z) is not before --until {until} \
                 ({until}T00:00:00Z): the range holds no event"
            )),
            "{err}"
        );
        assert!(o.stdout.is_empty(), "{}", stdout(&o));
    }
}

#[test]
fn invalid_time_arguments_exit_2_with_a_message() {
    let s = Scratch::new();
    let f = time_range_input(&s);
    let f = f.to_str().unwrap();
    for (flag, value) in [
        ("--since", "yesterday"),
        ("--until", "2023-13-45"),
        ("--since", "7y"),
        ("--until", "10:00"),
    ] {
        let o = s.backtest(&[flag, value, f]);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(flag) && err.contains(value) && err.contains("is not a time"),
            "{flag} {value}: {err}"
        );
        assert!(o.stdout.is_empty(), "{}", stdout(&o));
    }
}

// ---------------------------------------------------------------------------------------------
// 6. --expect
// ---------------------------------------------------------------------------------------------

fn expect_input(s: &Scratch) -> PathBuf {
    write(s.path(), "expect-input.json", records_doc(&standard()))
}

#[test]
fn expect_matching_counts_exits_0() {
    let s = Scratch::new();
    let input = expect_input(&s);
    let exp = write(
        s.path(),
        "expect.yml",
        "# rule id: findings\ntw-stop: 2\ntw-delete: 1\ntw-insight: 0\n",
    );
    let o = s.backtest(&[OsStr::new("--expect"), exp.as_os_str(), input.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("produced the expected number of findings"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn expect_mismatch_exits_1_with_diff() {
    let s = Scratch::new();
    let input = expect_input(&s);
    let exp = write(s.path(), "expect.yml", "tw-stop: 3\ntw-delete: 1\n");
    let o = s.backtest(&[OsStr::new("--expect"), exp.as_os_str(), input.as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("--expect: 1 mismatch\n"), "{err}");
    assert!(
        err.contains("tw-stop (CloudTrail stopped): expected 3, got 2"),
        "{err}"
    );
    assert!(!err.contains("tw-delete"), "{err}");
    // A listed rule that does not fire.
    let exp = write(
        s.path(),
        "expect2.yml",
        "tw-stop: 2\ntw-delete: 1\ntw-insight: 1\n",
    );
    let o = s.backtest(&[OsStr::new("--expect"), exp.as_os_str(), input.as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("tw-insight: expected 1, got 0"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn expect_unlisted_rule_that_fires_is_a_mismatch() {
    let s = Scratch::new();
    let input = expect_input(&s);
    let exp = write(s.path(), "expect.yml", "tw-stop: 2\n");
    let o = s.backtest(&[OsStr::new("--expect"), exp.as_os_str(), input.as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("tw-delete (Trail deleted): expected 0 (not listed), got 1"),
        "{err}"
    );
    assert!(!err.contains("tw-stop"), "{err}");
}

#[test]
fn expect_with_an_unknown_rule_id_is_rejected_like_disable() {
    let s = Scratch::new();
    let input = expect_input(&s);
    let exp = write(s.path(), "expect.yml", "tw-stop: 2\ntw-stpo: 3\n");
    let o = s.backtest(&[OsStr::new("--expect"), exp.as_os_str(), input.as_os_str()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "error: --expect {}: no loaded rule has the id tw-stpo (see `trailwatch rules list`)",
            exp.display()
        )),
        "{err}"
    );
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
    // A disabled rule is still known: expecting it to be silent is fine.
    let exp = write(s.path(), "expect2.yml", "tw-stop: 0\ntw-delete: 1\n");
    let o = s.backtest(&[
        OsStr::new("--disable"),
        OsStr::new("tw-stop"),
        OsStr::new("--expect"),
        exp.as_os_str(),
        input.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn expect_file_that_is_not_counts_exits_2() {
    let s = Scratch::new();
    let input = expect_input(&s);
    let exp = write(s.path(), "expect.yml", "tw-stop: two\n");
    let o = s.backtest(&[OsStr::new("--expect"), exp.as_os_str(), input.as_os_str()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("whole number"), "{}", stderr(&o));
}

// ---------------------------------------------------------------------------------------------
// 7. --fail-on
// ---------------------------------------------------------------------------------------------

#[test]
fn fail_on_threshold() {
    let s = Scratch::new();
    // Findings at high (StopLogging) and medium (DeleteTrail).
    let both = write(s.path(), "both.json", records_doc(&standard()));
    // Only medium.
    let medium = write(
        s.path(),
        "medium.json",
        records_doc(&[rec("m1", "DeleteTrail", "2023-07-10T12:00:00Z")]),
    );
    // Nothing fires.
    let none = write(
        s.path(),
        "none.json",
        records_doc(&[rec("n1", "DescribeInstances", "2023-07-10T12:00:00Z")]),
    );
    for (input, level, code) in [
        (&both, "critical", 0),
        (&both, "high", 1),
        (&both, "medium", 1),
        (&both, "informational", 1),
        (&medium, "high", 0),
        (&medium, "medium", 1),
        (&medium, "low", 1),
        (&none, "informational", 0),
    ] {
        let o = s.backtest(&[
            OsStr::new("--fail-on"),
            OsStr::new(level),
            input.as_os_str(),
        ]);
        assert_eq!(
            o.status.code(),
            Some(code),
            "{} --fail-on {level}: {}",
            input.display(),
            stderr(&o)
        );
        if code == 1 {
            assert!(
                stderr(&o).contains(&format!("reached --fail-on {level}")),
                "{}",
                stderr(&o)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Determinism
// ---------------------------------------------------------------------------------------------

fn jsonl_run(s: Option<&Scratch>, args: &[&OsStr]) -> Output {
    let mut cmd = bin();
    cmd.arg("backtest");
    if let Some(s) = s {
        cmd.arg("--rules").arg(&s.rules);
    }
    let o = cmd
        .args(["--format", "jsonl"])
        .args(args)
        .current_dir(root())
        .output()
        .expect("run trailwatch");
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    o
}

fn times_of_jsonl(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["time"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn output_does_not_depend_on_threads_on_samples() {
    let samples = root().join("fixtures/samples");
    let run = |threads: &str| {
        jsonl_run(
            None,
            &[
                OsStr::new("--threads"),
                OsStr::new(threads),
                samples.as_os_str(),
            ],
        )
        .stdout
    };
    let one = run("1");
    assert!(one.len() > 1000, "samples produce findings");
    let four = run("4");
    assert!(one == four, "--threads 1 and 4 differ on fixtures/samples");
    assert!(run("3") == one, "--threads 3 differs on fixtures/samples");
}

/// Tiny deterministic generator (64-bit LCG) for reproducible shuffles.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn time_at(minute: u64) -> String {
    // Minutes after 2023-07-10T00:00:00Z, over at most 2 days.
    let day = 10 + minute / 1440;
    let m = minute % 1440;
    format!("2023-07-{day:02}T{:02}:{:02}:00Z", m / 60, m % 60)
}

/// ~40 files whose records are out of order within and across files; every third record is
/// not matched. Returns the directory and the number of expected findings.
fn out_of_order_dir(s: &Scratch) -> (PathBuf, usize) {
    let dir = s.subdir("shuffled");
    let mut rng = Lcg(0x5eed_cafe);
    let names = ["StopLogging", "DeleteTrail", "DescribeInstances"];
    let mut expected = 0;
    for i in 0..40u64 {
        let mut recs = Vec::new();
        for j in 0..8u64 {
            // Times spread over two days, unrelated to the file's delivery stamp; some
            // collide exactly across files (ties are broken by file, then record).
            let minute = rng.next(2 * 1440 / 7) * 7;
            let name = names[rng.next(3) as usize];
            if name != "DescribeInstances" {
                expected += 1;
            }
            recs.push(rec(&format!("g{i:02}-{j}"), name, &time_at(minute)));
        }
        // Delivery stamps in a shuffled order that has nothing to do with the contents.
        let stamp = (i * 17) % 40;
        let file = format!(
            "111122223333_CloudTrail_us-east-1_20230710T{:02}{:02}Z_F{i:02}.json",
            stamp / 4,
            (stamp % 4) * 15
        );
        match i % 4 {
            0 => write(&dir, &file, records_doc(&recs)),
            1 => write(&dir, &format!("{file}.gz"), gz(records_doc(&recs))),
            2 => write(&dir, &format!("{file}l"), json_lines(&recs)),
            _ => write(&dir, &file, serde_json::to_string(&recs).unwrap()),
        };
    }
    (dir, expected)
}

#[test]
fn output_does_not_depend_on_threads_on_out_of_order_files() {
    let s = Scratch::new();
    let (dir, expected) = out_of_order_dir(&s);
    for window in ["1h", "30d", "1m"] {
        let run = |threads: &str| {
            jsonl_run(
                Some(&s),
                &[
                    OsStr::new("--reorder-window"),
                    OsStr::new(window),
                    OsStr::new("--threads"),
                    OsStr::new(threads),
                    dir.as_os_str(),
                ],
            )
            .stdout
        };
        let one = run("1");
        assert_eq!(
            String::from_utf8_lossy(&one).lines().count(),
            expected,
            "window {window}: nothing lost"
        );
        assert!(one == run("4"), "window {window}: --threads 1 and 4 differ");
        assert!(one == run("7"), "window {window}: --threads 1 and 7 differ");
    }
}

#[test]
fn findings_come_out_in_event_time_order_with_a_large_window() {
    let s = Scratch::new();
    let (dir, expected) = out_of_order_dir(&s);
    for threads in ["1", "4"] {
        let args = [
            OsStr::new("--reorder-window"),
            OsStr::new("30d"),
            OsStr::new("--threads"),
            OsStr::new(threads),
            dir.as_os_str(),
        ];
        let times = times_of_jsonl(&jsonl_run(Some(&s), &args).stdout);
        assert_eq!(times.len(), expected);
        for w in times.windows(2) {
            assert!(w[0] <= w[1], "threads {threads}: {} after {}", w[1], w[0]);
        }
        let (v, _) = s.json(&args);
        assert_eq!(summary_u64(&v, "late_records"), 0);
        assert_eq!(summary_u64(&v, "findings"), expected as u64);
        assert_eq!(summary_u64(&v, "records"), 320);
        assert_eq!(summary_u64(&v, "files_read"), 40);
        let json_times: Vec<&str> = findings(&v)
            .iter()
            .map(|f| f["time"].as_str().unwrap())
            .collect();
        assert_eq!(json_times, times, "json and jsonl agree");
    }
    // With a short window the same input has late records, and still loses nothing.
    let (v, _) = s.json(&[
        OsStr::new("--reorder-window"),
        OsStr::new("1m"),
        dir.as_os_str(),
    ]);
    assert!(summary_u64(&v, "late_records") > 0, "{}", v["summary"]);
    assert_eq!(findings(&v).len(), expected);
}

// ---------------------------------------------------------------------------------------------
// 9. Re-order window
// ---------------------------------------------------------------------------------------------

#[test]
fn late_record_beyond_the_window_is_counted_and_kept() {
    let s = Scratch::new();
    let dir = s.subdir("late");
    // Delivered first: two recent records. Delivered later: one three hours older.
    write(
        &dir,
        "111122223333_CloudTrail_us-east-1_20230710T1235Z_a.json",
        records_doc(&[
            rec("new-1", "StopLogging", "2023-07-10T12:00:00Z"),
            rec("new-2", "StopLogging", "2023-07-10T12:30:00Z"),
        ]),
    );
    write(
        &dir,
        "111122223333_CloudTrail_us-east-1_20230710T1240Z_b.json",
        records_doc(&[rec("old", "DeleteTrail", "2023-07-10T09:00:00Z")]),
    );
    let (v, err) = s.json(&[
        OsStr::new("--reorder-window"),
        OsStr::new("1m"),
        dir.as_os_str(),
    ]);
    let ctx = format!("{}\nstderr: {err}", v["summary"]);
    assert_eq!(summary_u64(&v, "late_records"), 1, "{ctx}");
    let mut got = finding_events(&v);
    got.sort();
    assert_eq!(got, ["new-1", "new-2", "old"], "nothing lost: {ctx}");
    assert_eq!(summary_u64(&v, "findings"), 3, "{ctx}");
    assert_eq!(v["summary"]["first_event_time"], "2023-07-10T09:00:00Z");
    // The text summary says so.
    let o = s.backtest(&[
        OsStr::new("--reorder-window"),
        OsStr::new("1m"),
        dir.as_os_str(),
    ]);
    assert!(
        stdout(&o).contains("\n1 event arrived after newer events"),
        "{}",
        stdout(&o)
    );
    // The default window (1h) is too short for three hours; a 4h window puts it in order.
    let (v, _) = s.json(&[
        OsStr::new("--reorder-window"),
        OsStr::new("4h"),
        dir.as_os_str(),
    ]);
    assert_eq!(summary_u64(&v, "late_records"), 0);
    assert_eq!(finding_events(&v), ["old", "new-1", "new-2"]);
}

/// The module docs: "A record older than what was already released is *late*: it is still
/// processed, immediately, and counted"; the help: "records older than that are processed at
/// once and counted as late". A late record that matches no rule is still a late record.
#[test]
fn late_record_without_a_finding_is_counted_late() {
    let s = Scratch::new();
    let dir = s.subdir("late-quiet");
    write(
        &dir,
        "111122223333_CloudTrail_us-east-1_20230710T1235Z_a.json",
        records_doc(&[
            rec("new-1", "StopLogging", "2023-07-10T12:00:00Z"),
            rec("new-2", "StopLogging", "2023-07-10T12:30:00Z"),
        ]),
    );
    write(
        &dir,
        "111122223333_CloudTrail_us-east-1_20230710T1240Z_b.json",
        records_doc(&[rec("old", "DescribeInstances", "2023-07-10T09:00:00Z")]),
    );
    let (v, err) = s.json(&[
        OsStr::new("--reorder-window"),
        OsStr::new("1m"),
        dir.as_os_str(),
    ]);
    let ctx = format!("{}\nstderr: {err}", v["summary"]);
    assert_eq!(finding_events(&v), ["new-1", "new-2"], "{ctx}");
    assert_eq!(summary_u64(&v, "late_records"), 1, "{ctx}");
}

#[test]
fn invalid_reorder_window_exits_2() {
    let s = Scratch::new();
    let f = expect_input(&s);
    let o = s.backtest(&[
        OsStr::new("--reorder-window"),
        OsStr::new("soon"),
        f.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--reorder-window"), "{}", stderr(&o));
}

// ---------------------------------------------------------------------------------------------
// 10. Duplicate delivery
// ---------------------------------------------------------------------------------------------

#[test]
fn same_record_in_two_files_gives_one_finding() {
    let s = Scratch::new();
    let dir = s.subdir("dups");
    let r = rec("dup-1", "StopLogging", "2023-07-10T12:00:00Z");
    let other = rec("solo", "StopLogging", "2023-07-10T12:05:00Z");
    write(
        &dir,
        "111122223333_CloudTrail_us-east-1_20230710T1205Z_a.json.gz",
        gz(records_doc(std::slice::from_ref(&r))),
    );
    write(
        &dir,
        "111122223333_CloudTrail_us-east-1_20230710T1210Z_b.json",
        json_lines(&[other, r]),
    );
    for threads in ["1", "4"] {
        let (v, err) = s.json(&[
            OsStr::new("--threads"),
            OsStr::new(threads),
            dir.as_os_str(),
        ]);
        let ctx = format!("{}\nstderr: {err}", v["summary"]);
        assert_eq!(finding_events(&v), ["dup-1", "solo"], "{ctx}");
        // The copy is not read again (so it counts once in correlations and baselines too).
        assert_eq!(summary_u64(&v, "duplicate_records"), 1, "{ctx}");
        assert_eq!(summary_u64(&v, "duplicate_findings"), 0, "{ctx}");
        assert_eq!(summary_u64(&v, "records"), 3, "{ctx}");
        assert_eq!(summary_u64(&v, "findings"), 2, "{ctx}");
        assert_eq!(v["summary"]["by_rule"]["tw-stop"]["findings"], 2, "{ctx}");
    }
}

// ---------------------------------------------------------------------------------------------
// 11. --output and the text format
// ---------------------------------------------------------------------------------------------

#[test]
fn output_file_receives_the_findings() {
    let s = Scratch::new();
    let input = write(s.path(), "in.json", records_doc(&standard()));
    // jsonl: findings in the file, nothing on stdout (the summary goes to stderr).
    let out = s.path().join("findings.jsonl");
    let o = s.backtest(&[
        OsStr::new("--format"),
        OsStr::new("jsonl"),
        OsStr::new("--output"),
        out.as_os_str(),
        input.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "stdout: {}", stdout(&o));
    let text = std::fs::read_to_string(&out).unwrap();
    let ids: Vec<String> = text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["event_ids"][0].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids, STANDARD_FINDINGS);
    assert!(
        stderr(&o).contains("3 findings from 4 events"),
        "{}",
        stderr(&o)
    );
    // json with -o: the whole document in the file.
    let out = s.path().join("findings.json");
    let o = s.backtest(&[
        OsStr::new("--format"),
        OsStr::new("json"),
        OsStr::new("-o"),
        out.as_os_str(),
        input.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "stdout: {}", stdout(&o));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(finding_events(&v), STANDARD_FINDINGS);
    assert_eq!(summary_u64(&v, "records"), 4);
    // text with --output: nothing about findings on stdout.
    let out = s.path().join("findings.txt");
    let o = s.backtest(&[OsStr::new("--output"), out.as_os_str(), input.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stdout(&o).contains("CloudTrail stopped"), "{}", stdout(&o));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("CloudTrail stopped"), "{text}");
    assert!(text.contains("event e1"), "{text}");
}

#[test]
fn output_to_an_unwritable_place_exits_2() {
    let s = Scratch::new();
    let input = write(s.path(), "in.json", records_doc(&standard()));
    let out = s.path().join("no/such/dir/findings.jsonl");
    let o = s.backtest(&[OsStr::new("-o"), out.as_os_str(), input.as_os_str()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot create"), "{}", stderr(&o));
}

#[test]
fn text_format_prints_findings_and_summary_table() {
    let s = Scratch::new();
    let input = write(s.path(), "in.json", records_doc(&standard()));
    let o = s.backtest(&[&input]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("HIGH     2023-07-10T12:00:00Z  CloudTrail stopped"),
        "{out}"
    );
    assert!(
        out.contains("MEDIUM   2023-07-10T12:02:00Z  Trail deleted"),
        "{out}"
    );
    assert!(
        out.contains("arn:aws:iam::111122223333:user/alice called StopLogging"),
        "{out}"
    );
    assert!(out.contains("3 findings from 4 events in 1 file,"), "{out}");
    assert!(
        out.contains("2023-07-10T12:00:00Z to 2023-07-10T12:03:00Z"),
        "{out}"
    );
    assert!(out.contains("findings  principals  level"), "{out}");
    assert!(
        out.contains("       2           1  HIGH      CloudTrail stopped (tw-stop)"),
        "{out}"
    );
    assert!(
        out.contains("       1           1  MEDIUM    Trail deleted (tw-delete)"),
        "{out}"
    );
    assert!(out.contains("top principals:"), "{out}");
    assert!(
        out.contains("       3  arn:aws:iam::111122223333:user/alice"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// 12. Redaction
// ---------------------------------------------------------------------------------------------

const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKENVALUE";
const SECRET_KEY: &str = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY";
const PASSWORD: &str = "hunter2-Correct-Horse-Battery";

fn secret_record() -> Value {
    let mut r = rec("sec-1", "GetSessionToken", "2023-07-10T12:00:00Z");
    r["requestParameters"] = json!({"durationSeconds": 3600, "password": PASSWORD});
    r["responseElements"] = json!({
        "credentials": {
            "accessKeyId": "ASIAEXAMPLESESSION",
            "sessionToken": SESSION_TOKEN,
            "secretAccessKey": SECRET_KEY,
            "expiration": "Jul 10, 2023, 1:00:00 PM"
        }
    });
    r
}

#[test]
fn secrets_never_appear_in_any_output() {
    let s = Scratch::new();
    let rule = write(
        s.path(),
        "sts.yml",
        "title: Session token issued\nid: tw-sts\nlevel: low\ndetection:\n  s: {eventName: GetSessionToken}\n  condition: s\n",
    );
    let input = write(s.path(), "secrets.json", records_doc(&[secret_record()]));
    let lines = write(
        s.path(),
        "secrets.jsonl.gz",
        gz(json_lines(&[secret_record()])),
    );
    for fmt in ["text", "jsonl", "json"] {
        for inp in [&input, &lines] {
            let out_file = s.path().join(format!("out-{fmt}"));
            let base = [
                OsStr::new("backtest"),
                OsStr::new("--rules"),
                rule.as_os_str(),
                OsStr::new("--format"),
                OsStr::new(fmt),
                inp.as_os_str(),
            ];
            let o = bin().args(base).output().unwrap();
            assert_eq!(o.status.code(), Some(0), "{fmt}: {}", stderr(&o));
            let o2 = bin()
                .args(base)
                .arg("--output")
                .arg(&out_file)
                .output()
                .unwrap();
            assert_eq!(o2.status.code(), Some(0), "{fmt}: {}", stderr(&o2));
            let file = std::fs::read_to_string(&out_file).unwrap();
            let all = format!(
                "{}{}{}{}{file}",
                stdout(&o),
                stderr(&o),
                stdout(&o2),
                stderr(&o2)
            );
            assert!(all.contains("Session token issued"), "{fmt}: {all}");
            for secret in [SESSION_TOKEN, SECRET_KEY, PASSWORD] {
                assert!(!all.contains(secret), "{fmt}: {secret} leaked:\n{all}");
            }
            if fmt != "text" {
                assert!(all.contains("[REDACTED]"), "{fmt}: {all}");
                let first = if fmt == "json" {
                    let v: Value = serde_json::from_str(&file).unwrap();
                    v["findings"][0].clone()
                } else {
                    serde_json::from_str(file.lines().next().unwrap()).unwrap()
                };
                let ev = &first["event"];
                let creds = &ev["responseElements"]["credentials"];
                assert_eq!(creds["sessionToken"], "[REDACTED]", "{fmt}: {ev}");
                assert_eq!(creds["secretAccessKey"], "[REDACTED]", "{fmt}: {ev}");
                assert_eq!(ev["requestParameters"]["password"], "[REDACTED]", "{ev}");
                // Non-secret neighbours are kept.
                assert_eq!(creds["accessKeyId"], "ASIAEXAMPLESESSION", "{ev}");
                assert_eq!(ev["requestParameters"]["durationSeconds"], 3600, "{ev}");
            }
        }
    }
}

#[test]
fn text_format_strips_terminal_escapes_from_event_text() {
    let s = Scratch::new();
    let mut r = rec("e-esc", "StopLogging", "2023-07-10T12:00:00Z");
    r["userIdentity"]["arn"] =
        json!("arn:aws:iam::111122223333:user/\u{1b}[2J\u{1b}]0;pwned\u{7}mallory\r\nFAKE LINE");
    let input = write(s.path(), "in.json", records_doc(&[r]));
    let o = s.backtest(&[&input]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        !out.contains('\u{1b}') && !out.contains('\u{7}') && !out.contains('\r'),
        "{out:?}"
    );
    assert!(
        out.contains("user/mallory FAKE LINE called StopLogging"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// --format alerts: the alerts live mode would send
// ---------------------------------------------------------------------------------------------

/// Runs `backtest --format alerts` on `paths`; returns the alerts and stderr.
fn alerts_of(paths: &[&Path]) -> (Vec<Value>, String) {
    let o = bin()
        .args(["backtest", "--format", "alerts"])
        .args(paths)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let alerts = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (alerts, stderr(&o))
}

#[test]
fn alerts_group_the_findings_of_one_event_into_one_alert() {
    let stop =
        root().join("fixtures/samples/stratus-red-team/aws.defense-evasion.cloudtrail-stop.json");
    let (alerts, err) = alerts_of(&[&stop]);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a["alert"], "new");
    assert_eq!(a["level"], "critical");
    assert_eq!(
        a["rule"]["title"],
        "CloudTrail logging stopped or trail deleted"
    );
    // Finding-shaped, so subscribers of findings keep working.
    for key in [
        "id",
        "incident",
        "kind",
        "rule",
        "time",
        "principal",
        "account",
        "region",
        "event_ids",
        "event_count",
        "summary",
        "details",
    ] {
        assert!(a.get(key).is_some(), "no `{key}` in {a:#}");
    }
    // The CIS mapping of the same event rides inside, not as an alert of its own.
    let titles = rule_titles(&a["findings"]);
    assert!(
        titles.contains(&"CIS 4.5 - CloudTrail configuration changed"),
        "{titles:?}"
    );
    assert!(err.contains("alerts a day"), "{err}");
}

#[test]
fn every_stratus_technique_with_a_medium_finding_alerts_in_at_most_three_messages() {
    let dir = root().join("fixtures/samples/stratus-red-team");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 30);
    let mut alerted = 0;
    for f in &files {
        let o = bin()
            .args(["backtest", "--format", "jsonl", "--min-level", "medium"])
            .arg(f)
            .output()
            .unwrap();
        let medium = stdout(&o).lines().count();
        let (alerts, _) = alerts_of(&[f]);
        let name = f.file_name().unwrap().to_string_lossy();
        if medium > 0 {
            alerted += 1;
            assert!(
                (1..=3).contains(&alerts.len()),
                "{name}: {medium} findings at medium or above gave {} alerts",
                alerts.len()
            );
            assert_eq!(alerts[0]["alert"], "new", "{name}");
        } else {
            assert!(alerts.is_empty(), "{name}: alerts without a medium finding");
        }
    }
    assert!(alerted >= 25, "only {alerted} techniques alerted");
}

#[test]
fn thirty_root_calls_give_one_new_one_update_and_one_close() {
    let dir = tempfile::tempdir().unwrap();
    let recs: Vec<Value> = (0..30)
        .map(|i| {
            json!({
                "eventVersion": "1.08",
                "userIdentity": {"type": "Root", "principalId": "111122223333",
                    "arn": "arn:aws:iam::111122223333:root", "accountId": "111122223333"},
                "eventTime": format!("2024-05-01T10:{:02}:{:02}Z", i / 3, (i % 3) * 20),
                "eventSource": "ec2.amazonaws.com",
                "eventName": "DescribeInstances",
                "awsRegion": "us-east-1",
                "sourceIPAddress": "203.0.113.9",
                "userAgent": "aws-cli/2.13.0",
                "eventID": format!("00000000-0000-4000-8000-{i:012}"),
                "readOnly": true,
                "eventType": "AwsApiCall",
                "managementEvent": true,
                "recipientAccountId": "111122223333",
                "eventCategory": "Management"
            })
        })
        .collect();
    let mut recs = recs;
    // Someone else's routine calls 30 minutes and three hours later: event time moves past
    // the update cadence, then past the dedup window.
    for (k, time) in ["2024-05-01T10:40:00Z", "2024-05-01T13:00:00Z"]
        .iter()
        .enumerate()
    {
        let mut later = recs[0].clone();
        later["userIdentity"] = json!({"type": "IAMUser", "principalId": "AIDAEXAMPLE",
            "arn": "arn:aws:iam::111122223333:user/alice", "accountId": "111122223333",
            "userName": "alice"});
        later["eventTime"] = json!(time);
        later["eventID"] = json!(format!("00000000-0000-4000-8000-99999999999{k}"));
        recs.push(later);
    }
    let file = write(dir.path(), "root.json", records_doc(&recs));
    let (alerts, _) = alerts_of(&[&file]);
    let kinds: Vec<&str> = alerts
        .iter()
        .map(|a| a["alert"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["new", "update", "close"], "{alerts:#?}");
    assert!(
        alerts
            .iter()
            .all(|a| a["incident"] == alerts[0]["incident"])
    );
    assert!(alerts[2]["finding_count"].as_u64().unwrap() >= 30);
}

/// Routine root use — 600 API calls over four days in three sessions a day, and a console
/// sign-in each morning — gives a handful of alerts a day (new sessions, updates, closing
/// summaries), not one per call; a StopLogging in the middle of it still alerts at once, at
/// critical.
#[test]
fn routine_root_use_gives_a_handful_of_alerts_a_day_and_tampering_still_alerts_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let root_identity = json!({"type": "Root", "principalId": "111122223333",
        "arn": "arn:aws:iam::111122223333:root", "accountId": "111122223333"});
    let mut recs = Vec::new();
    let mut n = 0u64;
    let mut push = |recs: &mut Vec<Value>,
                    day: u32,
                    secs: u32,
                    source: &str,
                    name: &str,
                    extra: Value| {
        n += 1;
        let mut r = json!({
            "eventVersion": "1.08",
            "userIdentity": root_identity.clone(),
            "eventTime": format!("2024-05-{:02}T{:02}:{:02}:{:02}Z", day, secs / 3600, secs / 60 % 60, secs % 60),
            "eventSource": source,
            "eventName": name,
            "awsRegion": "us-east-1",
            "sourceIPAddress": "203.0.113.9",
            "userAgent": "aws-cli/2.13.0",
            "eventID": format!("00000000-0000-4000-8000-{n:012}"),
            "readOnly": name.starts_with("Describe") || name.starts_with("List"),
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": "111122223333",
            "eventCategory": "Management"
        });
        if let (Some(o), Some(e)) = (r.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                o.insert(k.clone(), v.clone());
            }
        }
        recs.push(r);
    };
    for day in 1..=4u32 {
        // The morning sign-in (with MFA).
        push(
            &mut recs,
            day,
            8 * 3600,
            "signin.amazonaws.com",
            "ConsoleLogin",
            json!({
                "eventType": "AwsConsoleSignIn",
                "additionalEventData": {"MFAUsed": "Yes"},
                "responseElements": {"ConsoleLogin": "Success"}
            }),
        );
        // Three sessions of 50 calls, 20 seconds apart.
        for start in [9 * 3600, 13 * 3600, 16 * 3600] {
            for k in 0..50u32 {
                let name = ["DescribeInstances", "ListBuckets", "DescribeVolumes"][k as usize % 3];
                let source = if name == "ListBuckets" {
                    "s3.amazonaws.com"
                } else {
                    "ec2.amazonaws.com"
                };
                push(&mut recs, day, start + k * 20, source, name, json!({}));
            }
        }
    }
    // Day 2, in the middle of the afternoon session: logging is stopped.
    push(
        &mut recs,
        2,
        13 * 3600 + 500,
        "cloudtrail.amazonaws.com",
        "StopLogging",
        json!({
            "requestParameters": {"name": "management-events"}
        }),
    );
    // A quiet last event the next morning, so the last incidents close on time.
    push(
        &mut recs,
        5,
        8 * 3600,
        "ec2.amazonaws.com",
        "DescribeRegions",
        json!({
            "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE",
                "arn": "arn:aws:iam::111122223333:user/alice", "accountId": "111122223333",
                "userName": "alice"}
        }),
    );
    let api_calls = recs
        .iter()
        .filter(|r| r["eventName"] != "ConsoleLogin")
        .count();
    assert!(api_calls >= 600);
    let file = write(dir.path(), "root.json", records_doc(&recs));
    let (alerts, err) = alerts_of(&[&file]);
    let per_day = alerts.len() as f64 / 4.0;
    eprintln!(
        "routine root use: {} alerts over 4 days ({:?})",
        alerts.len(),
        alerts
            .iter()
            .map(|a| format!("{} {}", a["alert"], a["rule"]["title"]))
            .collect::<Vec<_>>()
    );
    assert!(
        per_day <= 12.0,
        "{} alerts: {:#?}",
        alerts.len(),
        alerts
            .iter()
            .map(|a| (
                a["alert"].clone(),
                a["rule"]["title"].clone(),
                a["time"].clone()
            ))
            .collect::<Vec<_>>()
    );
    assert!(
        alerts.len() >= 4,
        "root use must still reach the person: {err}"
    );
    let stop: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["rule"]["title"] == "CloudTrail logging stopped or trail deleted")
        .collect();
    assert_eq!(stop.len(), 1, "{alerts:#?}");
    assert_eq!(stop[0]["alert"], "new");
    assert_eq!(stop[0]["level"], "critical");
    assert_eq!(stop[0]["time"], "2024-05-02T13:08:20Z");
    assert!(err.contains("alerts a day"), "{err}");
}
