//! `run --sqs-queue` end to end against the AWS emulator: a CloudTrail file put into a bucket
//! that notifies a queue is read and its detection reaches a queue subscribed to the topic;
//! every notification shape; a poison message does not stop the others; a kill between
//! receive and delete publishes once; one queue per group of accounts splits the work.

use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::moto::*;
use common::*;

use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
    QueueConfiguration, S3KeyFilter, TopicConfiguration,
};
use aws_sdk_sqs::types::QueueAttributeName;

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A CloudTrail record of `user` in `account` calling `name`.
fn record(name: &str, user: &str, account: &str, ms: i64, id: &str) -> Value {
    json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE",
            "arn": format!("arn:aws:iam::{account}:user/{user}"),
            "accountId": account, "userName": user},
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
        "recipientAccountId": account
    })
}

fn uuid(salt: &str) -> String {
    uuid_of(&[salt])
}

/// A bucket, a topic with a subscribed queue (where detections arrive) and a rule.
struct Setup {
    name: String,
    bucket: String,
    topic: String,
    inbox: String,
    dir: tempfile::TempDir,
    queues: std::cell::RefCell<Vec<QueueConfiguration>>,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let name = format!("{name}-{}", now_ms());
        let bucket = format!("trail-{name}");
        let topic = rt().block_on(async {
            let c = sdk().await;
            aws_sdk_s3::Client::new(&c)
                .create_bucket()
                .bucket(&bucket)
                .send()
                .await
                .expect("create bucket");
            aws_sdk_sns::Client::new(&c)
                .create_topic()
                .name(format!("alerts-{name}"))
                .send()
                .await
                .expect("create topic")
                .topic_arn()
                .unwrap()
                .to_string()
        });
        let inbox = subscribed_queue(&topic, &format!("inbox-{name}"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rule.yml"),
            stop_logging_rule("5d1c2b3a-0000-4000-8000-0000000000b1"),
        )
        .unwrap();
        Setup {
            name,
            bucket,
            topic,
            inbox,
            dir,
            queues: Default::default(),
        }
    }

    /// A queue (2 s visibility, a dead-letter queue after 3 receives) the bucket notifies of
    /// new objects under `prefix`.
    fn notified_queue(&self, label: &str, prefix: &str) -> String {
        rt().block_on(async {
            let c = sdk().await;
            let sqs = aws_sdk_sqs::Client::new(&c);
            let dlq = sqs
                .create_queue()
                .queue_name(format!("dlq-{label}-{}", self.name))
                .send()
                .await
                .expect("create dead-letter queue");
            let dlq_arn = queue_arn(&sqs, dlq.queue_url().unwrap()).await;
            let url = sqs
                .create_queue()
                .queue_name(format!("ct-{label}-{}", self.name))
                .attributes(QueueAttributeName::VisibilityTimeout, "2")
                .attributes(
                    QueueAttributeName::RedrivePolicy,
                    json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}).to_string(),
                )
                .send()
                .await
                .expect("create queue")
                .queue_url()
                .unwrap()
                .to_string();
            let arn = queue_arn(&sqs, &url).await;
            let s3 = aws_sdk_s3::Client::new(&c);
            // moto cannot answer GetBucketNotificationConfiguration of an empty one for the
            // SDK: the queues configured so far are kept here.
            let configs = {
                let mut configs = self.queues.borrow_mut();
                configs.push(
                    QueueConfiguration::builder()
                        .queue_arn(arn)
                        .events(Event::S3ObjectCreated)
                        .filter(
                            NotificationConfigurationFilter::builder()
                                .key(
                                    S3KeyFilter::builder()
                                        .filter_rules(
                                            FilterRule::builder()
                                                .name(FilterRuleName::Prefix)
                                                .value(prefix)
                                                .build(),
                                        )
                                        .build(),
                                )
                                .build(),
                        )
                        .build()
                        .unwrap(),
                );
                configs.clone()
            };
            s3.put_bucket_notification_configuration()
                .bucket(&self.bucket)
                .notification_configuration(
                    NotificationConfiguration::builder()
                        .set_queue_configurations(Some(configs))
                        .build(),
                )
                .send()
                .await
                .expect("bucket notifications to the queue");
            url
        })
    }

    /// A CloudTrail file of StopLogging calls by `users` in `account`, in the AWSLogs layout.
    fn put_file(&self, account: &str, users: &[&str]) -> String {
        let t = now_ms() - 60_000;
        let records: Vec<Value> = users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let id = uuid(&format!("{}-{account}-{u}", self.name));
                record("StopLogging", u, account, t + i as i64, &id)
            })
            .collect();
        let body = gz(json!({ "Records": records }).to_string());
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%MZ");
        let day = chrono::Utc::now().format("%Y/%m/%d");
        let key = format!(
            "AWSLogs/{account}/CloudTrail/us-east-1/{day}/{account}_CloudTrail_us-east-1_{stamp}_{}.json.gz",
            users.join("-")
        );
        rt().block_on(async {
            let c = sdk().await;
            aws_sdk_s3::Client::new(&c)
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .body(body.into())
                .send()
                .await
                .expect("put object");
        });
        key
    }

    fn state(&self, label: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("state-{label}"))
    }

    fn cmd(&self, queue: &str, label: &str, extra: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_trailwatch"));
        c.args(["run", "--sqs-queue", queue, "--per-finding"])
            .arg("--state-dir")
            .arg(self.state(label))
            .arg("--rules")
            .arg(self.dir.path().join("rule.yml"))
            .args(["--poll", "200ms", "--topic-arn", &self.topic]);
        c.args(extra);
        c
    }

    fn run_once(&self, queue: &str, label: &str, extra: &[&str]) -> String {
        let mut args = vec!["--once"];
        args.extend_from_slice(extra);
        let out = self.cmd(queue, label, &args).output().unwrap();
        let err = stderr(&out);
        assert!(out.status.success(), "{err}");
        err
    }

    /// Subjects of the detections that reached the subscribed queue (and leaves it empty).
    fn subjects(&self) -> Vec<String> {
        receive(&self.inbox)
            .iter()
            .map(|e| e["Subject"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

/// Messages in the queue, visible or in flight.
fn queue_depth(url: &str) -> u64 {
    rt().block_on(async {
        let c = sdk().await;
        let out = aws_sdk_sqs::Client::new(&c)
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes");
        let a = out.attributes().unwrap();
        let n = |k| a.get(&k).map_or(0, |v: &String| v.parse::<u64>().unwrap());
        n(QueueAttributeName::ApproximateNumberOfMessages)
            + n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
    })
}

fn send(url: &str, body: &str) {
    rt().block_on(async {
        let c = sdk().await;
        aws_sdk_sqs::Client::new(&c)
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .expect("send message");
    });
}

#[test]
fn a_new_trail_file_reaches_a_queue_subscribed_to_the_topic() {
    let s = Setup::new("sqs-publish");
    let queue = s.notified_queue("all", "AWSLogs/");
    let key = s.put_file("111122223333", &["alice"]);
    let err = s.run_once(&queue, "a", &[]);
    assert!(
        err.contains(&format!("reading S3 notifications from queue {queue}")),
        "{err}"
    );
    let got = receive(&s.inbox);
    assert_eq!(got.len(), 1, "{got:?}\n{err}");
    assert!(
        got[0]["Subject"]
            .as_str()
            .unwrap()
            .starts_with("[HIGH] Test - CloudTrail logging stopped by alice"),
        "{got:?}"
    );
    let finding: Value = serde_json::from_str(got[0]["Message"].as_str().unwrap()).unwrap();
    assert_eq!(
        finding["details"]["origin"],
        format!("s3://{}/{key}: record 0", s.bucket).as_str()
    );
    // The message (and moto's test event) are deleted once the finding is in the outbox.
    assert_eq!(queue_depth(&queue), 0);
    // Nothing again on a second run.
    s.run_once(&queue, "a", &[]);
    assert!(s.subjects().is_empty());
}

#[test]
fn every_notification_shape_is_read() {
    let s = Setup::new("sqs-shapes");
    // S3 → SNS → SQS: the bucket notifies a topic, a queue subscribed to it (SNS envelope).
    let topic = rt().block_on(async {
        let c = sdk().await;
        aws_sdk_sns::Client::new(&c)
            .create_topic()
            .name(format!("objects-{}", s.name))
            .send()
            .await
            .unwrap()
            .topic_arn()
            .unwrap()
            .to_string()
    });
    let via_sns = subscribed_queue(&topic, &format!("via-sns-{}", s.name));
    rt().block_on(async {
        let c = sdk().await;
        aws_sdk_s3::Client::new(&c)
            .put_bucket_notification_configuration()
            .bucket(&s.bucket)
            .notification_configuration(
                NotificationConfiguration::builder()
                    .topic_configurations(
                        TopicConfiguration::builder()
                            .topic_arn(&topic)
                            .events(Event::S3ObjectCreated)
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("bucket notifications to the topic");
    });
    s.put_file("111122223333", &["bob"]);
    s.run_once(&via_sns, "sns", &[]);
    let subjects = s.subjects();
    assert_eq!(subjects.len(), 1, "{subjects:?}");
    assert!(subjects[0].contains("by bob"), "{subjects:?}");

    // EventBridge → SQS, and the trail's own SNS notification, sent by hand.
    let queue = s.notified_queue("none", "nothing-matches/");
    let key2 = s.put_file("111122223333", &["carol"]);
    let key3 = s.put_file("111122223333", &["dave"]);
    send(
        &queue,
        &json!({"version": "0", "source": "aws.s3", "detail-type": "Object Created",
            "detail": {"bucket": {"name": s.bucket}, "object": {"key": key2}}})
        .to_string(),
    );
    send(
        &queue,
        &json!({"s3Bucket": s.bucket, "s3ObjectKey": [key3]}).to_string(),
    );
    s.run_once(&queue, "eb", &[]);
    let mut subjects = s.subjects();
    subjects.sort();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(subjects[0].contains("by carol") && subjects[1].contains("by dave"));
}

#[test]
fn a_poison_message_does_not_stop_the_others() {
    let s = Setup::new("sqs-poison");
    let queue = s.notified_queue("all", "AWSLogs/");
    send(&queue, "this is not a notification");
    // An object announced but gone: skipped, its message deleted.
    send(
        &queue,
        &json!({"s3Bucket": s.bucket, "s3ObjectKey": ["AWSLogs/1/CloudTrail/us-east-1/gone.json.gz"]})
            .to_string(),
    );
    s.put_file("111122223333", &["erin"]);
    let err = s.run_once(&queue, "a", &[]);
    let subjects = s.subjects();
    assert_eq!(subjects.len(), 1, "{subjects:?}\n{err}");
    assert!(subjects[0].contains("by erin"));
    assert!(err.contains("left in the queue"), "{err}");
    assert!(err.contains("not an S3 notification"), "{err}");
    assert!(err.contains("gone.json.gz"), "{err}");
    // Only the poison message is left, for the redrive policy.
    assert_eq!(queue_depth(&queue), 1);
}

#[test]
fn killed_between_receive_and_delete_publishes_once() {
    let s = Setup::new("sqs-kill");
    let queue = s.notified_queue("all", "AWSLogs/");
    // Checkpoints rarely: the kill comes after the publish, before the delete.
    let mut child = s
        .cmd(&queue, "a", &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    s.put_file("111122223333", &["frank"]);
    wait_for_notification(&s.topic);
    child.kill().unwrap();
    child.wait().unwrap();
    // The messages come back after their visibility timeout (2 s; the killed run's long poll
    // may have taken them once more): restarted runs read them until the queue is empty.
    let start = Instant::now();
    while queue_depth(&queue) > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "queue not emptied in 30 s"
        );
        std::thread::sleep(Duration::from_secs(1));
        s.run_once(&queue, "a", &[]);
    }
    assert_eq!(notifications(&s.topic).len(), 1, "published once");
}

#[test]
fn one_queue_per_group_of_accounts_splits_the_work() {
    let s = Setup::new("sqs-split");
    let qa = s.notified_queue("a", "AWSLogs/111111111111/");
    let qb = s.notified_queue("b", "AWSLogs/222222222222/");
    s.put_file("111111111111", &["grace"]);
    s.put_file("222222222222", &["heidi"]);
    let run = |q: &str, label: &str| -> Vec<String> {
        let out = s.cmd(q, label, &["--once", "--dry-run"]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
            .lines()
            .map(|l| {
                let f: Value = serde_json::from_str(l).unwrap();
                f["account"].as_str().unwrap().to_string()
            })
            .collect()
    };
    assert_eq!(run(&qa, "a"), ["111111111111"]);
    assert_eq!(run(&qb, "b"), ["222222222222"]);
}

#[test]
fn a_missing_queue_stops_the_run_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{}/123456789012/no-such-queue", endpoint());
    let out = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args(["run", "--sqs-queue", &url, "--dry-run", "--once"])
        .arg("--state-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no-such-queue"), "{err}");
    assert!(err.contains("GetQueueAttributes"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn an_object_announced_twice_is_read_once_and_a_damaged_one_is_kept_for_a_retry() {
    let s = Setup::new("sqs-twice");
    let queue = s.notified_queue("none", "nothing-matches/");
    let key = s.put_file("111122223333", &["ivan"]);
    // The S3 notification and the trail's own, for the same file, in one batch.
    let s3_shape = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": s.bucket}, "object": {"key": key}}}]});
    send(&queue, &s3_shape.to_string());
    send(
        &queue,
        &json!({"s3Bucket": s.bucket, "s3ObjectKey": [key]}).to_string(),
    );
    // A file whose gzip is cut short.
    let mut cut =
        gz(br#"{"Records":[{"eventName":"StopLogging","eventTime":"2024-01-01T00:00:00Z"}]}"#);
    cut.truncate(cut.len() / 2);
    rt().block_on(async {
        let c = sdk().await;
        aws_sdk_s3::Client::new(&c)
            .put_object()
            .bucket(&s.bucket)
            .key("AWSLogs/111122223333/CloudTrail/us-east-1/cut.json.gz")
            .body(cut.into())
            .send()
            .await
            .expect("put object");
    });
    send(
        &queue,
        &json!({"s3Bucket": s.bucket,
            "s3ObjectKey": ["AWSLogs/111122223333/CloudTrail/us-east-1/cut.json.gz"]})
        .to_string(),
    );
    let out = s
        .cmd(&queue, "a", &["--once", "--dry-run"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        stdout(&out).lines().count(),
        1,
        "read once:\n{}",
        stdout(&out)
    );
    assert!(
        err.contains("cut.json.gz") && err.contains("left in the queue"),
        "{err}"
    );
    assert_eq!(queue_depth(&queue), 1, "the damaged file's message stays");
}
