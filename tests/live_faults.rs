//! Live mode under AWS behaviours the emulator cannot produce: throttling, server errors,
//! empty pages that still carry a `nextToken`, services that never answer, no credentials.
//! The real binary and the real AWS SDK talk HTTP to a scripted local server standing in for
//! one service; the other service, where needed, is the emulator started by `./scripts/test`.
//! Where the fault is a hang, the binary runs under a wall-clock bound.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::*;

/// One scripted answer: status, content type, extra header, body. Status 0: no answer at all
/// (the connection stays open, silent).
#[derive(Clone)]
struct Reply {
    status: u16,
    content_type: &'static str,
    header: Option<(&'static str, &'static str)>,
    body: String,
}

/// A local HTTP server answering requests from a script (then with `fallback`), recording
/// each request body.
struct Scripted {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn serve(script: Vec<Reply>, fallback: Reply) -> Scripted {
    serve_with(script, fallback, false)
}

/// Is this the start-up check of a log group (FilterLogEvents for one event)?
fn is_group_check(body: &str) -> bool {
    serde_json::from_str::<Value>(body).is_ok_and(|b| b["limit"] == 1)
}

/// [`serve`]; with `answer_checks`, the start-up checks get their answers outside the script,
/// so the script is the tail's or the publisher's alone: a log group's, an empty page; a
/// topic's, `AuthorizationError` (a least-privilege identity may only publish).
fn serve_with(script: Vec<Reply>, fallback: Reply, answer_checks: bool) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    std::thread::spawn(move || {
        let mut script = script.into_iter();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            // Keep-alive: several requests may come on one connection.
            loop {
                let mut len = 0usize;
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len];
                if reader.read_exact(&mut body).is_err() {
                    break;
                }
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
                let text = String::from_utf8_lossy(&body);
                let r = if answer_checks && is_group_check(&text) {
                    logs_empty()
                } else if answer_checks && text.contains("Action=GetTopicAttributes") {
                    sns_refused()
                } else {
                    script.next().unwrap_or_else(|| fallback.clone())
                };
                if r.status == 0 {
                    // Silent: hold the connection, answer nothing (the client gives up).
                    std::thread::sleep(Duration::from_secs(600));
                    break;
                }
                let extra = r
                    .header
                    .map(|(k, v)| format!("{k}: {v}\r\n"))
                    .unwrap_or_default();
                let resp = format!(
                    "HTTP/1.1 {} X\r\nContent-Type: {}\r\n{extra}Content-Length: {}\r\n\r\n{}",
                    r.status,
                    r.content_type,
                    r.body.len(),
                    r.body
                );
                if stream.write_all(resp.as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    Scripted { url, requests }
}

fn logs_reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        content_type: "application/x-amz-json-1.1",
        header: None,
        body: body.to_string(),
    }
}

/// No answer: the request hangs until the client gives up.
fn silent() -> Reply {
    Reply {
        status: 0,
        content_type: "",
        header: None,
        body: String::new(),
    }
}

/// An SNS error reply (its XML error document).
fn sns_error(status: u16, code: &str, message: &str) -> Reply {
    Reply {
        status,
        content_type: "text/xml",
        header: None,
        body: format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
             <Message>{message}</Message></Error><RequestId>x</RequestId></ErrorResponse>"
        ),
    }
}

/// SNS refuses the call to this identity.
fn sns_refused() -> Reply {
    sns_error(403, "AuthorizationError", "not authorized")
}

/// An empty page: the answer to the start-up check of a log group.
fn logs_empty() -> Reply {
    logs_reply(200, json!({"events": []}))
}

fn logs_throttled() -> Reply {
    Reply {
        status: 400,
        content_type: "application/x-amz-json-1.1",
        header: Some(("x-amzn-ErrorType", "ThrottlingException")),
        body: json!({"__type": "ThrottlingException", "message": "Rate exceeded"}).to_string(),
    }
}

const RULE: &str = r#"title: Test - CloudTrail logging stopped
id: 5d1c2b3a-0000-4000-8000-000000000002
status: test
logsource:
  product: aws
  service: cloudtrail
detection:
  selection:
    eventName: StopLogging
  condition: selection
level: high
"#;

fn stop_logging(ms: i64, id: &str) -> String {
    json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/alice",
            "accountId": "123456789012"},
        "eventTime": chrono::DateTime::from_timestamp_millis(ms).unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "eventSource": "cloudtrail.amazonaws.com",
        "eventName": "StopLogging",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "eventID": id,
        "eventType": "AwsApiCall",
        "recipientAccountId": "123456789012"
    })
    .to_string()
}

#[test]
fn throttling_and_empty_pages_with_a_token_are_read_through() {
    endpoint();
    let t = now_ms() - 60_000;
    let ev = |id: &str| {
        json!({"logStreamName": "s", "timestamp": t, "ingestionTime": t + 1000,
            "eventId": id, "message": stop_logging(t, id)})
    };
    let server = serve(
        vec![
            // The start-up check of the group.
            logs_empty(),
            logs_throttled(),
            logs_reply(
                500,
                json!({"__type": "ServiceUnavailableException", "message": "oops"}),
            ),
            // An empty page that is not the end.
            logs_reply(200, json!({"events": [], "nextToken": "page-2"})),
            logs_reply(
                200,
                json!({"events": [ev("11111111-1111-4111-8111-111111111111")], "nextToken": "page-3"}),
            ),
            logs_throttled(),
            logs_reply(
                200,
                json!({"events": [ev("22222222-2222-4222-8222-222222222222")]}),
            ),
        ],
        logs_reply(200, json!({"events": []})),
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rule.yml"), RULE).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args(["run", "--log-group", "trail", "--dry-run", "--once"])
        // One line per finding: this test counts the events the tail read.
        .arg("--per-finding")
        .args(["--start-from", "1h", "--requests-per-second", "50"])
        .arg("--rules")
        .arg(dir.path().join("rule.yml"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", &server.url)
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("ThrottlingException"), "{err}");
    assert!(err.contains("retrying"), "{err}");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = lines
        .iter()
        .map(|f| f["event_ids"][0].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "11111111-1111-4111-8111-111111111111",
            "22222222-2222-4222-8222-222222222222"
        ]
    );
    // The start-up check asks for one event from now on.
    let reqs = server.requests.lock().unwrap().clone();
    let check: Value = serde_json::from_str(&reqs[0]).unwrap();
    assert_eq!(
        (&check["logGroupName"], &check["limit"]),
        (&json!("trail"), &json!(1))
    );
    let reqs = &reqs[1..];
    // Retries repeat the same page; after the empty page the token is followed.
    let tokens: Vec<Option<String>> = reqs
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(r).unwrap()["nextToken"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        &tokens[..6],
        [
            None,
            None,
            None,
            Some("page-2".into()),
            Some("page-3".into()),
            Some("page-3".into())
        ]
    );
    // Every request names the group and a start time; the forward read has no end time.
    let first: Value = serde_json::from_str(&reqs[0]).unwrap();
    assert_eq!(first["logGroupName"], "trail");
    assert!(first["startTime"].as_i64().unwrap() <= t);
    assert!(first.get("endTime").is_none());
}

#[test]
fn sns_throttling_keeps_findings_in_the_outbox() {
    // CloudWatch Logs is the emulator; SNS answers Throttling to everything.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let group = format!("trail-snsfault-{}", now_ms());
    let t = now_ms() - 60_000;
    rt.block_on(async {
        endpoint();
        let c = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let logs = aws_sdk_cloudwatchlogs::Client::new(&c);
        logs.create_log_group()
            .log_group_name(&group)
            .send()
            .await
            .unwrap();
        logs.create_log_stream()
            .log_group_name(&group)
            .log_stream_name("s")
            .send()
            .await
            .unwrap();
        logs.put_log_events()
            .log_group_name(&group)
            .log_stream_name("s")
            .log_events(
                aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                    .timestamp(t)
                    .message(stop_logging(t, "33333333-3333-4333-8333-333333333333"))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    });
    let throttled = sns_error(400, "Throttling", "Rate exceeded");
    let sns = serve(Vec::new(), throttled);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rule.yml"), RULE).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args(["run", "--log-group", &group, "--once", "--start-from", "1h"])
        .args(["--topic-arn", "arn:aws:sns:us-east-1:123456789012:alerts"])
        .arg("--rules")
        .arg(dir.path().join("rule.yml"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("AWS_ENDPOINT_URL_SNS", &sns.url)
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("An error occurred (Throttling) when calling the Publish operation: Rate exceeded; 1 finding waits in the outbox, next attempt in"),
        "{err}"
    );
    let publishes = sns
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.contains("Action=Publish"))
        .count();
    assert_eq!(publishes, 1, "one attempt, then backoff");
    let outbox = std::fs::read_to_string(dir.path().join("state/outbox.jsonl")).unwrap();
    assert!(outbox.contains("33333333-3333-4333-8333-333333333333"));
    assert!(!outbox.contains("\"op\":\"delivered\""));
}

/// The lines a run wrote on standard error (to a file, so that a long run cannot block on a
/// full pipe).
fn stderr_file(dir: &std::path::Path) -> (std::fs::File, std::path::PathBuf) {
    let p = dir.join("stderr.log");
    (std::fs::File::create(&p).unwrap(), p)
}

/// Runs `cmd` under a wall-clock bound of 10 s; returns the exit code and standard error.
fn run_bounded(mut cmd: Command, what: &str) -> (Option<i32>, String, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let (err, path) = stderr_file(dir.path());
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("start trailwatch");
    let (status, took) = wait_bounded(&mut child, Duration::from_secs(10), what);
    (status.code(), std::fs::read_to_string(path).unwrap(), took)
}

/// Issue 17, 1: with `AWS_ACCESS_KEY_ID=` and `AWS_SECRET_ACCESS_KEY=` empty and no other
/// source, every AWS command stops at once: one line saying what is wrong and what to do,
/// exit 2 — not a run retrying the credentials chain forever.
#[test]
fn no_credentials_stop_every_aws_command_at_once_with_one_line() {
    endpoint();
    let home = tempfile::tempdir().unwrap();
    let state = home.path().join("state");
    let topic = "arn:aws:sns:us-east-1:123456789012:alerts";
    let commands: Vec<Vec<&str>> = vec![
        vec!["run", "--log-group", "trail", "--once", "--dry-run"],
        vec![
            "run",
            "--log-group",
            "trail",
            "--once",
            "--topic-arn",
            topic,
        ],
        vec!["topic", "create", "alerts"],
        vec![
            "subscribe",
            "--topic-arn",
            topic,
            "--email",
            "secops@example.com",
        ],
    ];
    for args in commands {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trailwatch"));
        cmd.args(&args).arg("--state-dir").arg(&state);
        if args[0] != "run" {
            // Only `run` has a state directory.
            cmd = Command::new(env!("CARGO_BIN_EXE_trailwatch"));
            cmd.args(&args);
        }
        without_credentials(&mut cmd, home.path());
        // The tests' stand-in for "not on EC2" (the product bounds the metadata service with a
        // short timeout instead; see the next test).
        cmd.env("AWS_EC2_METADATA_DISABLED", "true");
        let what = args.join(" ");
        let (code, err, took) = run_bounded(cmd, &what);
        assert_eq!(code, Some(2), "{what}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{what}: one line: {err}");
        assert!(
            lines[0].starts_with(
                "error: Unable to locate AWS credentials (AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY are set, but empty): none in the environment, in profile \
                 `default` of the AWS config files"
            ),
            "{what}: {err}"
        );
        assert!(
            lines[0].contains("Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"),
            "{what}: {err}"
        );
        assert!(took < Duration::from_secs(5), "{what}: took {took:?}");
    }
}

/// A listener that accepts connections and never answers (an instance metadata address that
/// swallows packets, a proxy that hangs).
fn silent_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    url
}

/// Issue 17, 1: the instance metadata service is the last source of credentials; when it
/// does not answer, start-up still fails within seconds (the SDK's own default waits four
/// attempts of up to 10 s each, then the run retried forever).
#[test]
fn a_silent_instance_metadata_service_does_not_hold_start_up() {
    endpoint();
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trailwatch"));
    cmd.args(["run", "--log-group", "trail", "--once", "--dry-run"])
        .arg("--state-dir")
        .arg(home.path().join("state"));
    without_credentials(&mut cmd, home.path());
    cmd.env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", silent_server());
    let (code, err, took) = run_bounded(cmd, "run with a silent metadata service");
    assert_eq!(code, Some(2), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains("AWS credentials"), "{err}");
    assert!(lines[0].contains("Set AWS_ACCESS_KEY_ID"), "{err}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

/// Starts `cmd` (standard error to a file in `dir`), waits until `ready` holds (at most 20 s),
/// then a little longer, sends SIGTERM and returns the exit code, standard error and how long
/// the process took to stop — failing when it takes more than 10 s.
fn sigterm_when(
    mut cmd: Command,
    dir: &std::path::Path,
    ready: impl Fn() -> bool,
    then: Duration,
) -> (Option<i32>, String, Duration) {
    let (err, path) = stderr_file(dir);
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("start trailwatch");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() && Instant::now() < deadline {
        if let Some(s) = child.try_wait().unwrap() {
            panic!(
                "trailwatch ended before the signal ({s}): {}",
                std::fs::read_to_string(&path).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        ready(),
        "never ready: {}",
        std::fs::read_to_string(&path).unwrap()
    );
    std::thread::sleep(then);
    sigterm(&child);
    let (status, took) = wait_bounded(&mut child, Duration::from_secs(10), "after SIGTERM");
    (status.code(), std::fs::read_to_string(path).unwrap(), took)
}

/// Issue 17, 2: SIGTERM stops the run within seconds while CloudWatch Logs throttles every
/// request (backoffs of up to 32 s) or never answers (a request in flight for up to 30 s),
/// after a checkpoint of where reading stands.
#[test]
fn sigterm_stops_within_seconds_during_backoffs_and_slow_requests() {
    endpoint();
    for (case, fallback) in [("throttled", logs_throttled()), ("silent", silent())] {
        let server = serve_with(Vec::new(), fallback, true);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rule.yml"), RULE).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trailwatch"));
        cmd.args(["run", "--log-group", "trail", "--output"])
            .arg(dir.path().join("findings.jsonl"))
            .args([
                "--once",
                "--start-from",
                "1h",
                "--requests-per-second",
                "50",
            ])
            .arg("--rules")
            .arg(dir.path().join("rule.yml"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .env("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", &server.url)
            .env("AWS_MAX_ATTEMPTS", "1");
        let requests = server.requests.clone();
        // The tail's first read is in.
        let ready = move || requests.lock().unwrap().iter().any(|r| !is_group_check(r));
        let (code, err, took) = sigterm_when(cmd, dir.path(), ready, Duration::from_millis(1500));
        assert_eq!(code, Some(0), "{case}: {err}");
        assert!(
            took < Duration::from_secs(5),
            "{case}: took {took:?} to stop: {err}"
        );
        assert!(err.contains("stopping"), "{case}: {err}");
        if case == "throttled" {
            assert!(err.contains("ThrottlingException"), "{case}: {err}");
        }
        let cp: Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("state/checkpoint.json")).expect("a final checkpoint"),
        )
        .unwrap();
        let g = &cp["groups"][0];
        assert_eq!(g["name"], "trail", "{cp}");
        assert_eq!(
            g["position"]["cursor"], g["position"]["floor"],
            "{case}: nothing was read, the position has not moved: {cp}"
        );
    }
}

/// Issue 17, 2: SIGTERM stops the run within seconds while SNS never answers a publish; the
/// finding stays in the outbox (not marked delivered) for the next run.
#[test]
fn sigterm_stops_within_seconds_while_sns_does_not_answer() {
    let group = format!("trail-snssilent-{}", now_ms());
    let t = now_ms() - 60_000;
    put_one(&group, t, "44444444-4444-4444-8444-444444444444");
    // The start-up check of the topic is refused (a least-privilege identity may only
    // publish); every publish hangs.
    let sns = serve_with(Vec::new(), silent(), true);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rule.yml"), RULE).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trailwatch"));
    cmd.args(["run", "--log-group", &group, "--once", "--start-from", "1h"])
        .args(["--topic-arn", "arn:aws:sns:us-east-1:123456789012:alerts"])
        .arg("--rules")
        .arg(dir.path().join("rule.yml"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("AWS_ENDPOINT_URL_SNS", &sns.url);
    let requests = sns.requests.clone();
    let ready = move || {
        requests
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.contains("Action=Publish"))
    };
    let (code, err, took) = sigterm_when(cmd, dir.path(), ready, Duration::from_millis(500));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} to stop: {err}"
    );
    assert!(
        err.contains("1 finding waits in the outbox for the next run (stopped while publishing)"),
        "{err}"
    );
    let outbox = std::fs::read_to_string(dir.path().join("state/outbox.jsonl")).unwrap();
    assert!(outbox.contains("44444444-4444-4444-8444-444444444444"));
    assert!(!outbox.contains("\"op\":\"delivered\""), "{outbox}");
    assert!(dir.path().join("state/checkpoint.json").exists());
}

/// One StopLogging record at `t` in a new log group of the emulator.
fn put_one(group: &str, t: i64, id: &str) {
    rt().block_on(async {
        endpoint();
        let c = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let logs = aws_sdk_cloudwatchlogs::Client::new(&c);
        logs.create_log_group()
            .log_group_name(group)
            .send()
            .await
            .unwrap();
        logs.create_log_stream()
            .log_group_name(group)
            .log_stream_name("s")
            .send()
            .await
            .unwrap();
        logs.put_log_events()
            .log_group_name(group)
            .log_stream_name("s")
            .log_events(
                aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                    .timestamp(t)
                    .message(stop_logging(t, id))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    });
}
