//! Throttling and error classification through the AWS SDK's own response parsing
//! (`aws-smithy-mocks`): the SDK client is real, only its HTTP responses are scripted, so the
//! error codes and statuses our code classifies are the ones the SDK extracts from real
//! AWS error bodies (SNS: awsQuery XML; CloudWatch Logs: AWS JSON 1.1).

use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use trailwatch::sink::sns::{Publish, Sns, Verdict};
use trailwatch::source::cloudwatch::{GroupPosition, SeenSet, Tail, TailConfig};

mod common;
use common::*;

/// An SNS (awsQuery) error response.
fn sns_error(status: u16, code: &str) -> HttpResponse {
    let body = format!(
        "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error>\
         <Type>Sender</Type><Code>{code}</Code><Message>scripted {code}</Message></Error>\
         <RequestId>4f5c6f9a-0000-4000-8000-000000000001</RequestId></ErrorResponse>"
    );
    HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
}

fn sns_verdict(status: u16, code: &str) -> (Verdict, String) {
    let (status, code) = (status, code.to_string());
    let rule =
        mock!(aws_sdk_sns::Client::publish).then_http_response(move || sns_error(status, &code));
    let client = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&rule]);
    let sns = Sns {
        client,
        topic_arn: "arn:aws:sns:us-east-1:123456789012:alerts".into(),
    };
    let err = rt()
        .block_on(sns.publish("[HIGH] subject", r#"{"default":"{}","email":"x"}"#))
        .expect_err("the scripted error");
    (err.verdict, err.message)
}

#[test]
fn sns_errors_are_classified_from_the_sdk_error() {
    for (status, code, want) in [
        (400, "Throttling", Verdict::Retry),
        (400, "KMSThrottling", Verdict::Retry),
        (500, "InternalError", Verdict::Retry),
        (404, "NotFound", Verdict::Topic),
        (403, "AuthorizationError", Verdict::Topic),
        (403, "InvalidClientTokenId", Verdict::Topic),
        (400, "InvalidParameter", Verdict::Message),
    ] {
        let (verdict, message) = sns_verdict(status, code);
        assert_eq!(verdict, want, "{code}: {message}");
        // The shared wording of AWS errors (util::aws::AwsError): one line, no debug dump.
        assert!(
            message.starts_with(&format!(
                "topic arn:aws:sns:us-east-1:123456789012:alerts: An error occurred ({code}) \
                 when calling the Publish operation: scripted {code}"
            )),
            "{message}"
        );
        assert!(
            !message.contains('\n') && !message.contains("ServiceError"),
            "{message}"
        );
    }
}

#[test]
fn sns_success_returns_the_message_id() {
    let rule = mock!(aws_sdk_sns::Client::publish).then_output(|| {
        aws_sdk_sns::operation::publish::PublishOutput::builder()
            .message_id("m-1")
            .build()
    });
    let client = mock_client!(aws_sdk_sns, [&rule]);
    let sns = Sns {
        client,
        topic_arn: "arn:aws:sns:us-east-1:123456789012:alerts".into(),
    };
    assert_eq!(rt().block_on(sns.publish("s", "{}")).unwrap(), "m-1");
}

/// A CloudWatch Logs (AWS JSON 1.1) error response.
fn logs_error(status: u16, code: &str) -> HttpResponse {
    let body = format!(r#"{{"__type":"{code}","message":"scripted {code}"}}"#);
    HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
}

fn page(
    ids: &[u32],
    token: Option<&str>,
) -> aws_sdk_cloudwatchlogs::operation::filter_log_events::FilterLogEventsOutput {
    let events = ids
        .iter()
        .map(|i| {
            aws_sdk_cloudwatchlogs::types::FilteredLogEvent::builder()
                .log_stream_name("123456789012_CloudTrail_us-east-1")
                .timestamp(1_000 + i64::from(*i))
                .event_id(format!("cwl-{i}"))
                .message(format!(
                    r#"{{"eventID":"00000000-0000-4000-8000-{i:012}","eventName":"StopLogging"}}"#
                ))
                .build()
        })
        .collect();
    aws_sdk_cloudwatchlogs::operation::filter_log_events::FilterLogEventsOutput::builder()
        .set_events(Some(events))
        .set_next_token(token.map(str::to_string))
        .build()
}

fn tail(client: aws_sdk_cloudwatchlogs::Client) -> Tail {
    let cfg = TailConfig {
        groups: vec!["trail".into()],
        requests_per_sec: 1000.0,
        ..TailConfig::default()
    };
    Tail::new(
        client,
        cfg,
        vec![GroupPosition {
            cursor: 1_000,
            floor: 1_000,
        }],
        SeenSet::default(),
        10_000,
    )
}

/// Throttling and a 5xx are retried on the same page; an empty page with a token is not the
/// end; every event is read once.
#[test]
fn tail_retries_throttling_and_5xx_and_reads_through_empty_pages() {
    let throttled = mock!(aws_sdk_cloudwatchlogs::Client::filter_log_events)
        .then_http_response(|| logs_error(400, "ThrottlingException"));
    let unavailable = mock!(aws_sdk_cloudwatchlogs::Client::filter_log_events)
        .then_http_response(|| logs_error(503, "ServiceUnavailableException"));
    let first = mock!(aws_sdk_cloudwatchlogs::Client::filter_log_events)
        .then_output(|| page(&[1, 2], Some("t1")));
    let empty = mock!(aws_sdk_cloudwatchlogs::Client::filter_log_events)
        .match_requests(|r| r.next_token() == Some("t1"))
        .then_output(|| page(&[], Some("t2")));
    let last = mock!(aws_sdk_cloudwatchlogs::Client::filter_log_events)
        .match_requests(|r| r.next_token() == Some("t2"))
        .then_output(|| page(&[2, 3], None));
    let client = mock_client!(
        aws_sdk_cloudwatchlogs,
        RuleMode::Sequential,
        [&throttled, &unavailable, &first, &empty, &last]
    );
    let mut t = tail(client);
    let batch = rt().block_on(t.poll(10_000, true)).expect("read through");
    let ids: Vec<&str> = batch.events.iter().map(|e| e.cwl_id.as_str()).collect();
    assert_eq!(
        ids,
        ["cwl-1", "cwl-2", "cwl-3"],
        "event 2 on two pages: read once"
    );
    assert_eq!(t.stats.throttled, 1);
    assert_eq!(t.stats.errors, 1, "the 503");
    assert_eq!(t.stats.empty_pages, 1);
    assert_eq!(t.stats.duplicates, 1);
    assert_eq!(t.positions[0].cursor, 1_003);
}

/// A missing group or a refused permission is not retried: the poll fails with the group named.
#[test]
fn tail_stops_on_errors_retrying_cannot_fix() {
    for (status, code) in [
        (400, "ResourceNotFoundException"),
        (400, "AccessDeniedException"),
    ] {
        let code_owned = code.to_string();
        let rule = mock!(aws_sdk_cloudwatchlogs::Client::filter_log_events)
            .then_http_response(move || logs_error(status, &code_owned));
        let client = mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, [&rule]);
        let mut t = tail(client);
        let err = rt()
            .block_on(t.poll(10_000, true))
            .expect_err("not retried")
            .to_string();
        assert!(
            err.starts_with(&format!(
                "log group trail: An error occurred ({code}) when calling the FilterLogEvents \
                 operation: scripted {code}"
            )),
            "{err}"
        );
    }
}

/// Events read before an error that retrying cannot fix are handed over first (the tail
/// remembers them as seen: dropping them would lose them); the error comes with the next poll.
#[test]
fn tail_hands_over_what_it_read_before_an_error() {
    let first = mock!(aws_sdk_cloudwatchlogs::Client::filter_log_events)
        .then_output(|| page(&[1, 2], Some("t1")));
    let gone = mock!(aws_sdk_cloudwatchlogs::Client::filter_log_events)
        .then_http_response(|| logs_error(400, "ResourceNotFoundException"));
    let client = mock_client!(
        aws_sdk_cloudwatchlogs,
        RuleMode::Sequential,
        [&first, &gone]
    );
    let mut t = tail(client);
    let batch = rt()
        .block_on(t.poll(10_000, true))
        .expect("the events first");
    assert_eq!(batch.events.len(), 2);
    assert!(!batch.caught_up);
    let err = rt()
        .block_on(t.poll(10_000, true))
        .expect_err("then the error")
        .to_string();
    assert!(err.contains("ResourceNotFoundException"), "{err}");
}

/// Asked to stop, a tail that is backing off from throttling returns at once with what it
/// has (nothing here), instead of retrying on.
#[test]
fn a_stopped_tail_returns_from_its_backoff() {
    let throttled = mock!(aws_sdk_cloudwatchlogs::Client::filter_log_events)
        .then_http_response(|| logs_error(400, "ThrottlingException"));
    // The SDK's own retries off: each throttled request comes back to the tail's backoff.
    let client = mock_client!(
        aws_sdk_cloudwatchlogs,
        RuleMode::MatchAny,
        [&throttled],
        |conf| conf.retry_config(aws_sdk_cloudwatchlogs::config::retry::RetryConfig::disabled())
    );
    let stop = trailwatch::util::aws::Stop::new();
    let mut t = tail(client).with_stop(stop.clone());
    let started = std::time::Instant::now();
    let batch = rt().block_on(async {
        let s = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            s.set();
        });
        t.poll(10_000, true).await
    });
    let batch = batch.expect("no error: stopped");
    assert!(batch.events.is_empty() && !batch.caught_up);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(t.stats.throttled >= 2, "it was retrying: {:?}", t.stats);
    assert_eq!(t.positions[0].cursor, 1_000, "the position has not moved");
}
