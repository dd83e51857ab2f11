//! Live mode under AWS behaviours the emulator cannot produce: throttling, server errors and
//! empty pages that still carry a `nextToken`. The real binary and the real AWS SDK talk HTTP
//! to a scripted local server standing in for one service; the other service, where needed,
//! is the emulator started by `./scripts/test`.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

mod common;
use common::*;

/// One scripted answer: status, content type, extra header, body.
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
                let r = script.next().unwrap_or_else(|| fallback.clone());
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
    // Retries repeat the same page; after the empty page the token is followed.
    let reqs = server.requests.lock().unwrap().clone();
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
    let throttled = Reply {
        status: 400,
        content_type: "text/xml",
        header: None,
        body: "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>\
               <Message>Rate exceeded</Message></Error><RequestId>x</RequestId></ErrorResponse>"
            .into(),
    };
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
    assert!(err.contains("Throttling"), "{err}");
    assert!(err.contains("1 finding(s) wait in the outbox"), "{err}");
    assert_eq!(
        sns.requests.lock().unwrap().len(),
        1,
        "one attempt, then backoff"
    );
    let outbox = std::fs::read_to_string(dir.path().join("state/outbox.jsonl")).unwrap();
    assert!(outbox.contains("33333333-3333-4333-8333-333333333333"));
    assert!(!outbox.contains("\"op\":\"delivered\""));
}
