//! The AWS emulator (moto) from a test: the SDK configuration that reaches it, a queue
//! subscribed to a topic, and moto's own state (what SNS accepted on a topic).

use super::{endpoint, rt};
use serde_json::Value;
use std::time::Duration;

pub fn http_get(path: &str) -> String {
    use std::io::{Read, Write};
    let url = endpoint();
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(authority).expect("connect to the emulator");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    // moto may answer chunked.
    if text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
        return out;
    }
    body.to_string()
}

/// moto's dump of its state. Under load (tests run in parallel against one emulator) moto can
/// answer the dump with an error page when its state changes while it serialises it: ask again.
pub fn moto_data() -> Value {
    let mut last = String::new();
    for _ in 0..20 {
        let body = http_get("/moto-api/data.json");
        match serde_json::from_str(&body) {
            Ok(v) => return v,
            Err(_) => {
                last = body;
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
    panic!(
        "moto's /moto-api/data.json is not JSON after 20 tries: {}",
        last.chars().take(300).collect::<String>()
    );
}

pub fn notifications(topic: &str) -> Vec<(String, Value)> {
    let data = moto_data();
    let topics = data["sns"]["Topic"].as_array().cloned().unwrap_or_default();
    let t = topics
        .iter()
        .find(|t| t["arn"] == topic)
        .expect("our topic in moto's data");
    t["sent_notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|n| {
            let msg: Value = serde_json::from_str(n[1].as_str().unwrap()).unwrap();
            (n[2].as_str().unwrap_or("").to_string(), msg)
        })
        .collect()
}

pub fn default_of(msg: &Value) -> Value {
    serde_json::from_str(msg["default"].as_str().unwrap()).unwrap()
}

/// The SDK configuration of the emulator started by `./scripts/test`.
pub async fn sdk() -> aws_config::SdkConfig {
    endpoint();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// A new SQS queue subscribed to `topic` (the real SNS envelope arrives in it); its URL.
pub fn subscribed_queue(topic: &str, name: &str) -> String {
    rt().block_on(async {
        let c = sdk().await;
        let sqs = aws_sdk_sqs::Client::new(&c);
        let url = sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .expect("create queue")
            .queue_url()
            .unwrap()
            .to_string();
        let arn = queue_arn(&sqs, &url).await;
        aws_sdk_sns::Client::new(&c)
            .subscribe()
            .topic_arn(topic)
            .protocol("sqs")
            .endpoint(arn)
            .send()
            .await
            .expect("subscribe the queue");
        url
    })
}

/// Receives (and deletes) what is in the queue now: the SNS envelopes, parsed.
pub fn receive(url: &str) -> Vec<Value> {
    rt().block_on(async {
        let c = sdk().await;
        let sqs = aws_sdk_sqs::Client::new(&c);
        let mut out = Vec::new();
        loop {
            let r = sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive");
            let msgs = r.messages();
            if msgs.is_empty() {
                return out;
            }
            for m in msgs {
                out.push(serde_json::from_str(m.body().unwrap()).expect("SNS envelope"));
                sqs.delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .expect("delete");
            }
        }
    })
}

/// PutLogEvents of (timestamp, message) into a new stream of `group` (sorted by timestamp,
/// as the API wants).
pub fn put_log_events(group: &str, stream: &str, mut events: Vec<(i64, String)>) {
    events.sort_by_key(|e| e.0);
    rt().block_on(async {
        let c = sdk().await;
        let logs = aws_sdk_cloudwatchlogs::Client::new(&c);
        logs.create_log_stream()
            .log_group_name(group)
            .log_stream_name(stream)
            .send()
            .await
            .expect("create log stream");
        let evs: Vec<_> = events
            .into_iter()
            .map(|(ts, m)| {
                aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                    .timestamp(ts)
                    .message(m)
                    .build()
                    .unwrap()
            })
            .collect();
        logs.put_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .set_log_events(Some(evs))
            .send()
            .await
            .expect("put log events");
    });
}

/// Waits (at most a minute) until SNS has accepted a first message on `topic`.
pub fn wait_for_notification(topic: &str) {
    let start = std::time::Instant::now();
    while notifications(topic).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nothing published on {topic} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A rule with this id that fires on StopLogging (high).
pub fn stop_logging_rule(id: &str) -> String {
    format!(
        "title: Test - CloudTrail logging stopped\nid: {id}\nstatus: test\nlogsource:\n  \
         product: aws\n  service: cloudtrail\ndetection:\n  selection:\n    eventName: \
         StopLogging\n  condition: selection\nlevel: high\n"
    )
}

/// A stable UUID-shaped event id from `parts`.
pub fn uuid_of(parts: &[&str]) -> String {
    let h = trailwatch::util::ids::stable_id(parts);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The ARN of the queue at `url`.
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .unwrap()
}
