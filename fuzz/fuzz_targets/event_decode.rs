//! Arbitrary bytes as one CloudTrail record: `Event::parse`, and when it parses, evaluate a
//! small fixed rule set (one rule per family of modifiers), checking that the candidate
//! index selects exactly what a full scan finds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use trailwatch::event::Event;
use trailwatch::rules::{LoadOptions, Loader, RuleSet};

const RULES: &str = r#"
title: exact names, indexed
id: 00000000-0000-4000-8000-000000000001
logsource: {product: aws, service: cloudtrail}
detection:
  selection:
    eventSource: cloudtrail.amazonaws.com
    eventName: [StopLogging, DeleteTrail, UpdateTrail, PutEventSelectors]
  condition: selection
level: high
---
title: wildcards, contains, startswith, endswith, all
id: 00000000-0000-4000-8000-000000000002
logsource: {product: aws, service: cloudtrail}
detection:
  selection:
    eventName: 'Create*Key*'
    userAgent|contains|all: [aws, cli]
    userIdentity.arn|startswith: 'arn:aws:iam::'
    userIdentity.userName|endswith: [admin, root]
  filter:
    errorCode|exists: true
  condition: selection and not filter
level: medium
---
title: regex, cidr, numbers, null
id: 00000000-0000-4000-8000-000000000003
logsource: {product: aws, service: cloudtrail}
detection:
  re:
    requestParameters.userData|re|i: '^(?:[a-z0-9+/]{4})*curl'
  net:
    sourceIPAddress|cidr: [10.0.0.0/8, '2001:db8::/32']
  num:
    requestParameters.maxResults|gte: 100
    requestParameters.count|lt: 5
  empty:
    responseElements: null
  condition: 1 of re or net or (num and not empty)
level: low
---
title: base64, fieldref, cased, keywords
id: 00000000-0000-4000-8000-000000000004
logsource: {product: aws, service: cloudtrail}
detection:
  b64:
    requestParameters.userData|base64offset|contains: 'wget http'
  same:
    userIdentity.principalId|fieldref: userIdentity.accessKeyId
  cased:
    eventName|cased: GetSecretValue
  keywords:
    - 'trufflehog'
    - 'TruffleHog'
  condition: b64 or same or cased or keywords
level: medium
---
title: nested, arrays, any of them
id: 00000000-0000-4000-8000-000000000005
logsource: {product: aws, service: cloudtrail}
detection:
  sel1:
    requestParameters.ipPermissions.items.ipRanges.items.cidrIp: 0.0.0.0/0
  sel2:
    requestParameters.policyDocument|contains: '"Effect":"Allow"'
  sel3:
    userIdentity.sessionContext.attributes.mfaAuthenticated: 'false'
    additionalEventData.MFAUsed: 'No'
  condition: any of sel*
level: high
"#;

fn rules() -> &'static RuleSet {
    static RULESET: OnceLock<RuleSet> = OnceLock::new();
    RULESET.get_or_init(|| {
        let mut loader = Loader::new(LoadOptions::default());
        loader.load_source("fixed.yml", RULES, None);
        let report = loader.finish();
        let errors: Vec<String> = report.errors().map(|d| report.render(d)).collect();
        assert!(
            errors.is_empty(),
            "fixed rules must load:\n{}",
            errors.join("\n")
        );
        assert_eq!(report.rules.len(), 5);
        RuleSet::new(report.rules)
    })
}

fuzz_target!(|data: &[u8]| {
    let rules = rules();
    let text = String::from_utf8_lossy(data);
    let Ok(event) = Event::parse(&text) else {
        return;
    };
    let (mut indexed, mut scanned) = (Vec::new(), Vec::new());
    rules.matching(&event, &mut indexed);
    rules.matching_full_scan(&event, &mut scanned);
    assert_eq!(
        indexed, scanned,
        "candidate index disagrees with a full scan"
    );
});
