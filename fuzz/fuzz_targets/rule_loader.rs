//! Arbitrary bytes as a Sigma rule file: load, finish, render every diagnostic, and when
//! rules come out, compile them into a `RuleSet` and evaluate one fixed CloudTrail event,
//! checking that the candidate index selects exactly what a full scan finds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trailwatch::event::Event;
use trailwatch::rules::{LoadOptions, Loader, RuleSet};

/// A small real-shaped record (CloudTrail StopLogging), so that seed rules can match it.
const EVENT: &str = r#"{
  "eventVersion": "1.08",
  "userIdentity": {
    "type": "IAMUser",
    "principalId": "AIDAEXAMPLEEXAMPLE",
    "arn": "arn:aws:iam::123456789012:user/alice",
    "accountId": "123456789012",
    "accessKeyId": "AKIAEXAMPLEEXAMPLE",
    "userName": "alice",
    "sessionContext": {"attributes": {"creationDate": "2024-07-30T21:30:00Z", "mfaAuthenticated": "false"}}
  },
  "eventTime": "2024-07-30T21:31:10Z",
  "eventSource": "cloudtrail.amazonaws.com",
  "eventName": "StopLogging",
  "awsRegion": "us-east-1",
  "sourceIPAddress": "203.0.113.7",
  "userAgent": "aws-cli/2.15.0 Python/3.11 md/command#cloudtrail.stop-logging",
  "requestParameters": {"name": "arn:aws:cloudtrail:us-east-1:123456789012:trail/main", "count": 3, "tags": ["a", "b"], "none": null, "flag": true},
  "responseElements": null,
  "errorCode": "AccessDenied",
  "requestID": "0f7f4a1e-0000-4000-8000-000000000000",
  "eventID": "9b1d3c2a-0000-4000-8000-000000000000",
  "readOnly": false,
  "eventType": "AwsApiCall",
  "managementEvent": true,
  "recipientAccountId": "123456789012"
}"#;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut loader = Loader::new(LoadOptions::default());
    loader.load_source("fuzz.yml", &text, None);
    let report = loader.finish();
    for d in &report.diagnostics {
        std::hint::black_box(report.render(d));
    }
    if report.rules.is_empty() {
        return;
    }
    let rules = RuleSet::new(report.rules);
    let event = Event::parse(EVENT).expect("fixed event parses");
    let (mut indexed, mut scanned) = (Vec::new(), Vec::new());
    rules.matching(&event, &mut indexed);
    rules.matching_full_scan(&event, &mut scanned);
    assert_eq!(
        indexed, scanned,
        "candidate index disagrees with a full scan"
    );
});
