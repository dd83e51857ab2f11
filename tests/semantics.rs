//! Sigma matching semantics (see the project's `sigma-semantics.md` and the Sigma
//! specification), checked through the public API with hand-built rules and events.
//!
//! Every matching test has positive and negative cases. Rules are written as the `detection`
//! block only; [`doc`] wraps it in a complete rule document whose first detection line is
//! line 7 of the source (see [`DETECTION_LINE0`]), indented by two spaces.

use std::time::{Duration, Instant};
use trailwatch::event::Event;
use trailwatch::rules::diag::{Diagnostic, Severity};
use trailwatch::rules::{LoadOptions, LoadReport, Loader, Placeholders, Rule};

/// Label the test sources are loaded under (appears in diagnostics).
const LABEL: &str = "semantics.yml";

const HEADER: &str = "title: semantics test
id: 6f1c2b1e-0000-4000-8000-000000000001
logsource:
  product: aws
  service: cloudtrail
detection:
";

/// Line number of the `detection:` key; detection line `k` is source line `DETECTION_LINE0 + k`.
const DETECTION_LINE0: usize = 6;
/// Detection lines are indented by this many columns in the source.
const DETECTION_INDENT: usize = 2;

/// A complete rule document around a detection block.
fn doc(detection: &str) -> String {
    let mut s = String::from(HEADER);
    for line in detection.trim_start_matches('\n').lines() {
        s.push_str(&" ".repeat(DETECTION_INDENT));
        s.push_str(line);
        s.push('\n');
    }
    s
}

fn load_with(text: &str, opts: LoadOptions) -> LoadReport {
    let mut loader = Loader::new(opts);
    loader.load_source(LABEL, text, None);
    loader.finish()
}

fn load(text: &str) -> LoadReport {
    load_with(text, LoadOptions::default())
}

fn rendered(report: &LoadReport) -> String {
    report
        .diagnostics
        .iter()
        .map(|d| report.render(d))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads a rule built from `detection`; it must load without errors.
fn rule_with(detection: &str, opts: LoadOptions) -> Rule {
    let text = doc(detection);
    let mut report = load_with(&text, opts);
    assert!(
        !report.has_errors(),
        "rule did not load:\n{text}\n{}",
        rendered(&report)
    );
    assert_eq!(report.rules.len(), 1, "{}", rendered(&report));
    report.rules.remove(0)
}

fn rule(detection: &str) -> Rule {
    rule_with(detection, LoadOptions::default())
}

/// Does `rule` match the JSON record `json`?
fn hit(rule: &Rule, json: &str) -> bool {
    let ev = Event::parse(json).unwrap_or_else(|e| panic!("bad test event {json}: {e}"));
    rule.matches(&ev)
}

/// Checks every `(expected, event)` pair and reports all mismatches at once.
fn check<S: AsRef<str>>(rule: &Rule, cases: &[(bool, S)]) {
    let wrong: Vec<String> = cases
        .iter()
        .filter(|(want, json)| hit(rule, json.as_ref()) != *want)
        .map(|(want, json)| {
            let what = if *want { "match" } else { "no match" };
            format!("  expected {what}: {}", json.as_ref())
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "rule `{}` disagrees on:\n{}",
        rule.condition_text,
        wrong.join("\n")
    );
}

/// Loads `detection` expecting it to be rejected; returns the report.
fn rejected(detection: &str) -> LoadReport {
    rejected_doc(&doc(detection))
}

fn rejected_doc(text: &str) -> LoadReport {
    let report = load(text);
    assert!(
        report.has_errors(),
        "expected the rule to be rejected:\n{text}\n{}",
        rendered(&report)
    );
    assert!(
        report.rules.is_empty(),
        "a rejected document must not produce a rule:\n{text}"
    );
    report
}

/// The first error whose message contains `needle`.
fn error_with<'r>(report: &'r LoadReport, needle: &str) -> &'r Diagnostic {
    report
        .errors()
        .find(|d| d.message.contains(needle))
        .unwrap_or_else(|| {
            panic!(
                "no error mentions {needle:?}; diagnostics:\n{}",
                rendered(report)
            )
        })
}

fn at(d: &Diagnostic) -> (Option<usize>, Option<usize>) {
    (d.line, d.column)
}

/// Source position of detection line `k` (1-based), column `col` as written in the test's
/// detection block (1-based, before indenting).
fn det_pos(k: usize, col: usize) -> (Option<usize>, Option<usize>) {
    (Some(DETECTION_LINE0 + k), Some(col + DETECTION_INDENT))
}

// ---------------------------------------------------------------------------------------
// Values and fields (sigma-semantics.md 1–11)
// ---------------------------------------------------------------------------------------

mod values {
    use super::*;

    // 1. Case-insensitive by default.
    #[test]
    fn matching_is_case_insensitive_by_default() {
        let r = rule(
            r#"
sel:
  additionalEventData.MFAUsed: 'NO'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"additionalEventData":{"MFAUsed":"No"}}"#),
                (true, r#"{"additionalEventData":{"MFAUsed":"no"}}"#),
                (true, r#"{"additionalEventData":{"MFAUsed":"NO"}}"#),
                (false, r#"{"additionalEventData":{"MFAUsed":"Yes"}}"#),
                // Still an exact match of the whole value.
                (false, r#"{"additionalEventData":{"MFAUsed":"Nope"}}"#),
                (false, r#"{"additionalEventData":{}}"#),
            ],
        );
    }

    #[test]
    fn case_insensitivity_covers_non_ascii_text() {
        let r = rule(
            r#"
sel:
  requestParameters.description: 'ÄRGER'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"requestParameters":{"description":"ärger"}}"#),
                (true, r#"{"requestParameters":{"description":"Ärger"}}"#),
                (false, r#"{"requestParameters":{"description":"arger"}}"#),
            ],
        );
    }

    #[test]
    fn cased_makes_matching_case_sensitive() {
        let r = rule(
            r#"
sel:
  additionalEventData.MFAUsed|cased: 'No'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"additionalEventData":{"MFAUsed":"No"}}"#),
                (false, r#"{"additionalEventData":{"MFAUsed":"NO"}}"#),
                (false, r#"{"additionalEventData":{"MFAUsed":"no"}}"#),
            ],
        );
    }

    // 2. Numbers and booleans compare by their string form.
    #[test]
    fn quoted_false_matches_json_false() {
        let r = rule(
            r#"
sel:
  requestParameters.enable: 'false'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"requestParameters":{"enable":false}}"#),
                (true, r#"{"requestParameters":{"enable":"false"}}"#),
                (false, r#"{"requestParameters":{"enable":true}}"#),
                (false, r#"{"requestParameters":{"enable":0}}"#),
                (false, r#"{"requestParameters":{}}"#),
            ],
        );
    }

    #[test]
    fn plain_yaml_boolean_matches_json_boolean() {
        let r = rule(
            r#"
sel:
  requestParameters.enable: false
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"requestParameters":{"enable":false}}"#),
                (true, r#"{"requestParameters":{"enable":"false"}}"#),
                (false, r#"{"requestParameters":{"enable":true}}"#),
            ],
        );
    }

    #[test]
    fn yaml_number_matches_json_number_and_numeric_string() {
        let r = rule(
            r#"
sel:
  requestParameters.fromPort: 22
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"requestParameters":{"fromPort":22}}"#),
                (true, r#"{"requestParameters":{"fromPort":"22"}}"#),
                (false, r#"{"requestParameters":{"fromPort":23}}"#),
                (false, r#"{"requestParameters":{"fromPort":220}}"#),
                (false, r#"{"requestParameters":{"fromPort":"022"}}"#),
            ],
        );
        let quoted = rule(
            r#"
sel:
  requestParameters.fromPort: '22'
condition: sel
"#,
        );
        check(
            &quoted,
            &[
                (true, r#"{"requestParameters":{"fromPort":22}}"#),
                (false, r#"{"requestParameters":{"fromPort":2}}"#),
            ],
        );
    }

    #[test]
    fn plain_numbers_keep_their_written_form() {
        // Account ids with a leading zero are strings in CloudTrail; a plain YAML number
        // must not lose the zero.
        let r = rule(
            r#"
sel:
  recipientAccountId: 012345678901
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"recipientAccountId":"012345678901"}"#),
                (false, r#"{"recipientAccountId":"12345678901"}"#),
                (false, r#"{"recipientAccountId":12345678901}"#),
            ],
        );
    }

    // 3. null matches a missing field or JSON null.
    #[test]
    fn null_matches_missing_or_json_null() {
        for value in ["null", "~"] {
            let r = rule(&format!(
                "
sel:
  eventName: GetObject
  errorCode: {value}
condition: sel
"
            ));
            check(
                &r,
                &[
                    (true, r#"{"eventName":"GetObject"}"#),
                    (true, r#"{"eventName":"GetObject","errorCode":null}"#),
                    (
                        false,
                        r#"{"eventName":"GetObject","errorCode":"AccessDenied"}"#,
                    ),
                    (false, r#"{"eventName":"GetObject","errorCode":"null"}"#),
                ],
            );
        }
    }

    #[test]
    fn null_or_success() {
        let r = rule(
            r#"
sel:
  errorCode:
    - null
    - 'Success'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"eventName":"ConsoleLogin"}"#),
                (true, r#"{"errorCode":null}"#),
                (true, r#"{"errorCode":"Success"}"#),
                (true, r#"{"errorCode":"success"}"#),
                (false, r#"{"errorCode":"AccessDenied"}"#),
                (false, r#"{"errorCode":"Failure"}"#),
            ],
        );
    }

    #[test]
    fn null_in_a_long_value_list() {
        // Long lists take a different (merged) code path; null must survive it.
        let r = rule(
            r#"
sel:
  errorCode: [null, Success, Ok, Fine, Good, Great]
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{}"#),
                (true, r#"{"errorCode":null}"#),
                (true, r#"{"errorCode":"GOOD"}"#),
                (false, r#"{"errorCode":"AccessDenied"}"#),
            ],
        );
    }

    #[test]
    fn not_null_means_failed() {
        let r = rule(
            r#"
success:
  errorCode: null
condition: not success
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"errorCode":"AccessDenied"}"#),
                (false, r#"{"eventName":"x"}"#),
                (false, r#"{"errorCode":null}"#),
            ],
        );
    }

    #[test]
    fn quoted_null_is_a_string_and_an_empty_value_is_null() {
        let quoted = rule(
            r#"
sel:
  errorCode: 'null'
condition: sel
"#,
        );
        check(
            &quoted,
            &[
                (true, r#"{"errorCode":"null"}"#),
                (false, r#"{}"#),
                (false, r#"{"errorCode":null}"#),
            ],
        );
        let empty = rule(
            r#"
sel:
  errorCode:
condition: sel
"#,
        );
        check(
            &empty,
            &[
                (true, r#"{}"#),
                (true, r#"{"errorCode":null}"#),
                (false, r#"{"errorCode":"AccessDenied"}"#),
            ],
        );
    }

    // 4. `contains: '*'` means present and non-empty.
    #[test]
    fn contains_star_is_present_and_non_empty() {
        let r = rule(
            r#"
sel:
  requestParameters.policy|contains: '*'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (
                    true,
                    r#"{"requestParameters":{"policy":"{\"Version\":\"2012-10-17\"}"}}"#,
                ),
                (true, r#"{"requestParameters":{"policy":"x"}}"#),
                (true, r#"{"requestParameters":{"policy":7}}"#),
                (false, r#"{"requestParameters":{}}"#),
                (false, r#"{"requestParameters":{"policy":null}}"#),
                (false, r#"{"requestParameters":{"policy":""}}"#),
                (false, r#"{}"#),
            ],
        );
    }

    #[test]
    fn not_contains_star_is_true_for_a_missing_field() {
        let r = rule(
            r#"
sel:
  eventName: CreateUser
filter:
  requestParameters.permissionsBoundary|contains: '*'
condition: sel and not filter
"#,
        );
        check(
            &r,
            &[
                (
                    true,
                    r#"{"eventName":"CreateUser","requestParameters":{"userName":"u"}}"#,
                ),
                (true, r#"{"eventName":"CreateUser"}"#),
                (
                    false,
                    r#"{"eventName":"CreateUser","requestParameters":{"permissionsBoundary":"arn:aws:iam::1:policy/b"}}"#,
                ),
            ],
        );
    }

    // 5. Dotted paths; arrays crossed with any-element semantics.
    #[test]
    fn dotted_keys_are_paths() {
        let r = rule(
            r#"
sel:
  userIdentity.sessionContext.sessionIssuer.type: Role
condition: sel
"#,
        );
        check(
            &r,
            &[
                (
                    true,
                    r#"{"userIdentity":{"sessionContext":{"sessionIssuer":{"type":"Role"}}}}"#,
                ),
                (
                    false,
                    r#"{"userIdentity":{"sessionContext":{"sessionIssuer":{"type":"User"}}}}"#,
                ),
                (false, r#"{"userIdentity":{"sessionContext":{}}}"#),
                (false, r#"{"userIdentity":"Role"}"#),
                (false, r#"{"type":"Role"}"#),
            ],
        );
    }

    #[test]
    fn path_crossing_an_array_matches_any_element() {
        let r = rule(
            r#"
sel:
  resources.ARN: 'arn:aws:s3:::secret-bucket'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (
                    true,
                    r#"{"resources":[{"ARN":"arn:aws:s3:::other"},{"ARN":"arn:aws:s3:::secret-bucket"}]}"#,
                ),
                (
                    true,
                    r#"{"resources":[{"ARN":"arn:aws:s3:::secret-bucket"}]}"#,
                ),
                (
                    false,
                    r#"{"resources":[{"ARN":"arn:aws:s3:::other"},{"type":"x"}]}"#,
                ),
                (false, r#"{"resources":[]}"#),
            ],
        );
    }

    #[test]
    fn path_crossing_nested_arrays() {
        let r = rule(
            r#"
sel:
  requestParameters.ipPermissions.items.ipRanges.items.cidrIp: '0.0.0.0/0'
condition: sel
"#,
        );
        let open = r#"{"requestParameters":{"ipPermissions":{"items":[
            {"ipRanges":{"items":[{"cidrIp":"10.0.0.0/8"}]}},
            {"ipRanges":{"items":[{"cidrIp":"192.168.0.0/16"},{"cidrIp":"0.0.0.0/0"}]}}]}}}"#;
        let closed = r#"{"requestParameters":{"ipPermissions":{"items":[
            {"ipRanges":{"items":[{"cidrIp":"10.0.0.0/8"}]}}]}}}"#;
        check(&r, &[(true, open), (false, closed)]);
    }

    #[test]
    fn field_holding_an_array_of_scalars_matches_any_element() {
        let r = rule(
            r#"
sel:
  requestParameters.tags: prod
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"requestParameters":{"tags":["dev","prod"]}}"#),
                (
                    false,
                    r#"{"requestParameters":{"tags":["dev","production"]}}"#,
                ),
            ],
        );
    }

    // 6. Wildcards and escapes.
    #[test]
    fn value_without_wildcards_is_an_exact_match() {
        let r = rule(
            r#"
sel:
  eventName: Stop
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"eventName":"Stop"}"#),
                (true, r#"{"eventName":"STOP"}"#),
                (false, r#"{"eventName":"StopLogging"}"#),
                (false, r#"{"eventName":"NonStop"}"#),
            ],
        );
    }

    #[test]
    fn star_wildcard() {
        let prefix = rule(
            r#"
sel:
  eventName: 'Stop*'
condition: sel
"#,
        );
        check(
            &prefix,
            &[
                (true, r#"{"eventName":"StopLogging"}"#),
                (true, r#"{"eventName":"stoplogging"}"#),
                (true, r#"{"eventName":"Stop"}"#),
                (false, r#"{"eventName":"XStopLogging"}"#),
            ],
        );
        let suffix = rule(
            r#"
sel:
  eventName: '*Logging'
condition: sel
"#,
        );
        check(
            &suffix,
            &[
                (true, r#"{"eventName":"StopLogging"}"#),
                (false, r#"{"eventName":"StopLoggingNow"}"#),
            ],
        );
        let inner = rule(
            r#"
sel:
  eventName: 'Stop*ing'
condition: sel
"#,
        );
        check(
            &inner,
            &[
                (true, r#"{"eventName":"StopLogging"}"#),
                (true, r#"{"eventName":"STOPING"}"#),
                (false, r#"{"eventName":"StopLoggingX"}"#),
                (false, r#"{"eventName":"XStopLogging"}"#),
            ],
        );
    }

    #[test]
    fn question_mark_wildcard_is_exactly_one_character() {
        let r = rule(
            r#"
sel:
  eventName: 'Get?Policy'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"eventName":"GetXPolicy"}"#),
                (true, r#"{"eventName":"getäpolicy"}"#),
                (false, r#"{"eventName":"GetPolicy"}"#),
                (false, r#"{"eventName":"GetXYPolicy"}"#),
            ],
        );
    }

    #[test]
    fn escaped_star_and_question_mark_are_literal() {
        let star = rule(
            r#"
sel:
  requestParameters.policy: 'a\*b'
condition: sel
"#,
        );
        check(
            &star,
            &[
                (true, r#"{"requestParameters":{"policy":"a*b"}}"#),
                (true, r#"{"requestParameters":{"policy":"A*B"}}"#),
                (false, r#"{"requestParameters":{"policy":"axb"}}"#),
                (false, r#"{"requestParameters":{"policy":"ab"}}"#),
                (false, r#"{"requestParameters":{"policy":"a\\*b"}}"#),
            ],
        );
        let question = rule(
            r#"
sel:
  requestParameters.policy: 'a\?c'
condition: sel
"#,
        );
        check(
            &question,
            &[
                (true, r#"{"requestParameters":{"policy":"a?c"}}"#),
                (false, r#"{"requestParameters":{"policy":"abc"}}"#),
            ],
        );
    }

    #[test]
    fn escaped_backslash_before_a_wildcard() {
        // `\\*`: a literal backslash followed by the `*` wildcard.
        let r = rule(
            r#"
sel:
  requestParameters.path: 'C:\\Temp\\*'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (
                    true,
                    r#"{"requestParameters":{"path":"C:\\Temp\\evil.exe"}}"#,
                ),
                (true, r#"{"requestParameters":{"path":"C:\\Temp\\"}}"#),
                (
                    false,
                    r#"{"requestParameters":{"path":"C:\\Tempevil.exe"}}"#,
                ),
                (false, r#"{"requestParameters":{"path":"C:\\\\Temp\\\\x"}}"#),
            ],
        );
        // `\\\*`: a literal backslash followed by a literal star.
        let both = rule(
            r#"
sel:
  requestParameters.path: 'a\\\*'
condition: sel
"#,
        );
        check(
            &both,
            &[
                (true, r#"{"requestParameters":{"path":"a\\*"}}"#),
                (false, r#"{"requestParameters":{"path":"a\\x"}}"#),
                (false, r#"{"requestParameters":{"path":"a\\"}}"#),
            ],
        );
    }

    #[test]
    fn double_backslash_not_before_a_wildcard_is_one_backslash() {
        let r = rule(
            r#"
sel:
  requestParameters.path: 'C:\\Windows'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"requestParameters":{"path":"C:\\Windows"}}"#),
                (false, r#"{"requestParameters":{"path":"C:\\\\Windows"}}"#),
            ],
        );
    }

    #[test]
    fn lone_backslash_is_literal() {
        let r = rule(
            r#"
sel:
  requestParameters.path: 'C:\Windows\System32'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (
                    true,
                    r#"{"requestParameters":{"path":"C:\\Windows\\System32"}}"#,
                ),
                (
                    true,
                    r#"{"requestParameters":{"path":"c:\\windows\\system32"}}"#,
                ),
                (
                    false,
                    r#"{"requestParameters":{"path":"C:WindowsSystem32"}}"#,
                ),
                (
                    false,
                    r#"{"requestParameters":{"path":"C:/Windows/System32"}}"#,
                ),
            ],
        );
    }

    #[test]
    fn wildcards_inside_contains() {
        let r = rule(
            r#"
sel:
  requestParameters.policyDocument|contains: '"Action":*"iam:*"'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (
                    true,
                    r#"{"requestParameters":{"policyDocument":"{\"Effect\":\"Allow\",\"Action\": [\"iam:*\"]}"}}"#,
                ),
                (
                    false,
                    r#"{"requestParameters":{"policyDocument":"{\"Effect\":\"Allow\",\"Action\": [\"s3:*\"]}"}}"#,
                ),
            ],
        );
    }

    // 7. List = OR, map = AND, list of maps = OR, |all = AND.
    #[test]
    fn value_list_is_or() {
        let r = rule(
            r#"
sel:
  eventName:
    - StopLogging
    - DeleteTrail
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"eventName":"StopLogging"}"#),
                (true, r#"{"eventName":"deletetrail"}"#),
                (false, r#"{"eventName":"UpdateTrail"}"#),
            ],
        );
    }

    #[test]
    fn long_value_lists_are_or_too() {
        // Four or more values take the merged (hash set / automaton) path.
        let exact = rule(
            r#"
sel:
  eventName: [StopLogging, DeleteTrail, UpdateTrail, PutEventSelectors, DeleteFlowLogs]
condition: sel
"#,
        );
        check(
            &exact,
            &[
                (true, r#"{"eventName":"PUTEVENTSELECTORS"}"#),
                (true, r#"{"eventName":"deleteflowlogs"}"#),
                (false, r#"{"eventName":"DeleteFlowLog"}"#),
                (false, r#"{"eventName":"StartLogging"}"#),
            ],
        );
        let contains = rule(
            r#"
sel:
  userAgent|contains: [aws-cli, Boto3, terraform, pacu, 'S3 Browser']
condition: sel
"#,
        );
        check(
            &contains,
            &[
                (true, r#"{"userAgent":"BOTO3/1.26 Python/3.11"}"#),
                (true, r#"{"userAgent":"x s3 browser 9.5.5"}"#),
                (false, r#"{"userAgent":"console.amazonaws.com"}"#),
            ],
        );
    }

    #[test]
    fn map_is_and() {
        let r = rule(
            r#"
sel:
  eventSource: cloudtrail.amazonaws.com
  eventName: StopLogging
condition: sel
"#,
        );
        check(
            &r,
            &[
                (
                    true,
                    r#"{"eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging"}"#,
                ),
                (
                    false,
                    r#"{"eventSource":"cloudtrail.amazonaws.com","eventName":"StartLogging"}"#,
                ),
                (
                    false,
                    r#"{"eventSource":"s3.amazonaws.com","eventName":"StopLogging"}"#,
                ),
                (false, r#"{"eventName":"StopLogging"}"#),
            ],
        );
    }

    #[test]
    fn list_of_maps_is_or_of_ands() {
        let r = rule(
            r#"
sel:
  - eventName: ConsoleLogin
    awsRegion: us-east-1
  - eventName: GetSigninToken
condition: sel
"#,
        );
        check(
            &r,
            &[
                (
                    true,
                    r#"{"eventName":"ConsoleLogin","awsRegion":"us-east-1"}"#,
                ),
                (
                    true,
                    r#"{"eventName":"GetSigninToken","awsRegion":"eu-west-1"}"#,
                ),
                (
                    false,
                    r#"{"eventName":"ConsoleLogin","awsRegion":"eu-west-1"}"#,
                ),
                (
                    false,
                    r#"{"eventName":"AssumeRole","awsRegion":"us-east-1"}"#,
                ),
            ],
        );
    }

    #[test]
    fn all_turns_a_value_list_into_and() {
        let r = rule(
            r#"
sel:
  userAgent|contains|all:
    - aws-cli
    - Linux
condition: sel
"#,
        );
        check(
            &r,
            &[
                (
                    true,
                    r#"{"userAgent":"aws-cli/2.13 Python/3.11 Linux/6.1"}"#,
                ),
                (
                    false,
                    r#"{"userAgent":"aws-cli/2.13 Python/3.11 Windows/10"}"#,
                ),
                (false, r#"{"userAgent":"Boto3 Linux"}"#),
            ],
        );
        // Many values with |all must not take the OR-merged path.
        let many = rule(
            r#"
sel:
  userAgent|contains|all: [a1, b2, c3, d4, e5]
condition: sel
"#,
        );
        check(
            &many,
            &[
                (true, r#"{"userAgent":"a1 b2 c3 d4 e5"}"#),
                (false, r#"{"userAgent":"a1 b2 c3 d4"}"#),
            ],
        );
    }

    #[test]
    fn all_over_an_array_field() {
        let r = rule(
            r#"
sel:
  requestParameters.tags|all: [prod, pci]
condition: sel
"#,
        );
        check(
            &r,
            &[
                (
                    true,
                    r#"{"requestParameters":{"tags":["pci","dev","prod"]}}"#,
                ),
                (false, r#"{"requestParameters":{"tags":["prod","dev"]}}"#),
            ],
        );
    }

    // 8. contains/startswith/endswith on objects and arrays match leaf strings.
    #[test]
    fn contains_on_an_object_matches_a_nested_string_with_quotes() {
        let r = rule(
            r#"
sel:
  requestParameters|contains: 'say "hi"'
condition: sel
"#,
        );
        check(
            &r,
            &[
                // A JSON serialisation would hold `say \"hi\"` and miss this.
                (
                    true,
                    r#"{"requestParameters":{"filter":{"expr":"please say \"hi\" now"}}}"#,
                ),
                (
                    true,
                    r#"{"requestParameters":{"list":[1,{"x":"SAY \"HI\""}]}}"#,
                ),
                (
                    false,
                    r#"{"requestParameters":{"filter":{"expr":"please say hi now"}}}"#,
                ),
            ],
        );
    }

    #[test]
    fn flattening_matches_values_not_keys_nor_across_leaves() {
        let key = rule(
            r#"
sel:
  requestParameters|contains: 'bucketPolicy'
condition: sel
"#,
        );
        check(
            &key,
            &[
                (true, r#"{"requestParameters":{"x":"my bucketPolicy"}}"#),
                (false, r#"{"requestParameters":{"bucketPolicy":"x"}}"#),
            ],
        );
        let across = rule(
            r#"
sel:
  requestParameters|contains: 'ab'
condition: sel
"#,
        );
        check(
            &across,
            &[
                (false, r#"{"requestParameters":{"x":"a","y":"b"}}"#),
                (false, r#"{"requestParameters":["a","b"]}"#),
                (true, r#"{"requestParameters":{"x":"a","y":"cab"}}"#),
            ],
        );
    }

    #[test]
    fn startswith_and_endswith_on_arrays_and_objects() {
        let starts = rule(
            r#"
sel:
  requestParameters.tags|startswith: 'prod'
condition: sel
"#,
        );
        check(
            &starts,
            &[
                (
                    true,
                    r#"{"requestParameters":{"tags":["dev","production"]}}"#,
                ),
                (false, r#"{"requestParameters":{"tags":["dev","preprod"]}}"#),
            ],
        );
        let ends = rule(
            r#"
sel:
  requestParameters|endswith: '.internal'
condition: sel
"#,
        );
        check(
            &ends,
            &[
                // A serialisation would end with `}` and never match.
                (
                    true,
                    r#"{"requestParameters":{"a":{"host":"db.INTERNAL"},"b":1}}"#,
                ),
                (
                    false,
                    r#"{"requestParameters":{"a":{"host":"db.internal.example"}}}"#,
                ),
            ],
        );
    }

    #[test]
    fn flattening_includes_number_leaves() {
        let r = rule(
            r#"
sel:
  requestParameters|contains: '443'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"requestParameters":{"ports":[80,8443]}}"#),
                (false, r#"{"requestParameters":{"ports":[80,8080]}}"#),
            ],
        );
    }

    // 9. fieldref compares whole values; a dotted value without fieldref is a literal.
    #[test]
    fn fieldref_compares_two_fields() {
        let r = rule(
            r#"
sel:
  userIdentity.userName|fieldref: requestParameters.userName
condition: sel
"#,
        );
        check(
            &r,
            &[
                (
                    true,
                    r#"{"userIdentity":{"userName":"alice"},"requestParameters":{"userName":"alice"}}"#,
                ),
                (
                    true,
                    r#"{"userIdentity":{"userName":"Alice"},"requestParameters":{"userName":"alice"}}"#,
                ),
                (
                    false,
                    r#"{"userIdentity":{"userName":"alice"},"requestParameters":{"userName":"bob"}}"#,
                ),
                // Whole values: a prefix is not equal.
                (
                    false,
                    r#"{"userIdentity":{"userName":"alice"},"requestParameters":{"userName":"alice2"}}"#,
                ),
                (false, r#"{"userIdentity":{"userName":"alice"}}"#),
                (false, r#"{"requestParameters":{"userName":"alice"}}"#),
                (false, r#"{}"#),
            ],
        );
    }

    #[test]
    fn fieldref_does_not_compare_an_arn_with_a_name() {
        let r = rule(
            r#"
sel:
  userIdentity.arn|fieldref: requestParameters.userName
condition: sel
"#,
        );
        check(
            &r,
            &[
                (
                    false,
                    r#"{"userIdentity":{"arn":"arn:aws:iam::1:user/alice"},"requestParameters":{"userName":"alice"}}"#,
                ),
                (
                    true,
                    r#"{"userIdentity":{"arn":"arn:aws:iam::1:user/alice"},"requestParameters":{"userName":"arn:aws:iam::1:user/alice"}}"#,
                ),
            ],
        );
    }

    #[test]
    fn dotted_value_without_fieldref_is_a_literal() {
        let r = rule(
            r#"
sel:
  userIdentity.arn|contains: responseElements.accessKey.userName
condition: sel
"#,
        );
        check(
            &r,
            &[
                (
                    false,
                    r#"{"userIdentity":{"arn":"arn:aws:iam::1:user/bob"},"responseElements":{"accessKey":{"userName":"bob"}}}"#,
                ),
                (
                    true,
                    r#"{"userIdentity":{"arn":"x/responseElements.accessKey.userName/y"}}"#,
                ),
            ],
        );
        let eq = rule(
            r#"
sel:
  requestParameters.userName: userIdentity.userName
condition: sel
"#,
        );
        check(
            &eq,
            &[
                (
                    false,
                    r#"{"userIdentity":{"userName":"bob"},"requestParameters":{"userName":"bob"}}"#,
                ),
                (
                    true,
                    r#"{"requestParameters":{"userName":"userIdentity.userName"}}"#,
                ),
            ],
        );
    }

    // 11. Keyword selections search every value.
    #[test]
    fn keywords_search_all_values_as_case_insensitive_substrings() {
        let r = rule(
            r#"
keywords:
  - 'evil.example.com'
  - 'AKIAEVIL'
condition: keywords
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"sourceIPAddress":"EVIL.example.com"}"#),
                (
                    true,
                    r#"{"requestParameters":{"url":"https://EVIL.Example.com/x?y=1"}}"#,
                ),
                (
                    true,
                    r#"{"resources":[{"ARN":"a"},{"accessKeyId":"xxakiaevilxx"}]}"#,
                ),
                (
                    false,
                    r#"{"requestParameters":{"url":"https://good.example.com"}}"#,
                ),
                // Keys are not values.
                (false, r#"{"requestParameters":{"AKIAEVIL":"x"}}"#),
            ],
        );
    }

    #[test]
    fn keywords_match_number_leaves_and_combine_with_selections() {
        let r = rule(
            r#"
sel:
  eventName: AuthorizeSecurityGroupIngress
keywords:
  - '3389'
condition: sel and keywords
"#,
        );
        check(
            &r,
            &[
                (
                    true,
                    r#"{"eventName":"AuthorizeSecurityGroupIngress","requestParameters":{"fromPort":3389}}"#,
                ),
                (
                    false,
                    r#"{"eventName":"AuthorizeSecurityGroupIngress","requestParameters":{"fromPort":22}}"#,
                ),
                (
                    false,
                    r#"{"eventName":"RunInstances","requestParameters":{"fromPort":3389}}"#,
                ),
            ],
        );
    }

    #[test]
    fn keywords_honour_wildcards() {
        let r = rule(
            r#"
keywords:
  - 'curl*169.254.169.254'
condition: keywords
"#,
        );
        check(
            &r,
            &[
                (
                    true,
                    r#"{"a":{"b":"sh -c CURL http://169.254.169.254/latest"}}"#,
                ),
                (false, r#"{"a":{"b":"curl http://example.com"}}"#),
            ],
        );
    }
}

// ---------------------------------------------------------------------------------------
// Modifiers
// ---------------------------------------------------------------------------------------

mod modifiers {
    use super::*;

    #[test]
    fn contains() {
        let r = rule(
            r#"
sel:
  userAgent|contains: 'aws-cli'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"userAgent":"AWS-CLI/2.0"}"#),
                (true, r#"{"userAgent":"x aws-cli"}"#),
                (false, r#"{"userAgent":"boto3"}"#),
                (false, r#"{}"#),
            ],
        );
    }

    #[test]
    fn startswith() {
        let r = rule(
            r#"
sel:
  eventName|startswith: 'Delete'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"eventName":"DeleteTrail"}"#),
                (true, r#"{"eventName":"deletebucket"}"#),
                (false, r#"{"eventName":"BatchDeleteImage"}"#),
            ],
        );
    }

    #[test]
    fn endswith() {
        let r = rule(
            r#"
sel:
  eventSource|endswith: '.amazonaws.com'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"eventSource":"iam.AMAZONAWS.com"}"#),
                (false, r#"{"eventSource":"iam.amazonaws.com.evil"}"#),
            ],
        );
    }

    #[test]
    fn re_is_an_unanchored_case_sensitive_search() {
        let r = rule(
            r#"
sel:
  eventName|re: 'Logg'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"eventName":"StopLogging"}"#),
                (false, r#"{"eventName":"STOPLOGGING"}"#),
                (false, r#"{"eventName":"stoplogging"}"#),
            ],
        );
        let anchored = rule(
            r#"
sel:
  eventName|re: '^Stop.*ing$'
condition: sel
"#,
        );
        check(
            &anchored,
            &[
                (true, r#"{"eventName":"StopLogging"}"#),
                (false, r#"{"eventName":"StopLoggingNow"}"#),
            ],
        );
    }

    #[test]
    fn re_i_flag() {
        let r = rule(
            r#"
sel:
  eventName|re|i: '^stop'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"eventName":"StopLogging"}"#),
                (true, r#"{"eventName":"STOPLOGGING"}"#),
                (false, r#"{"eventName":"NoStop"}"#),
            ],
        );
    }

    #[test]
    fn re_m_flag() {
        let without = rule(
            r#"
sel:
  requestParameters.script|re: '^whoami$'
condition: sel
"#,
        );
        let with = rule(
            r#"
sel:
  requestParameters.script|re|m: '^whoami$'
condition: sel
"#,
        );
        let multi = r##"{"requestParameters":{"script":"#!/bin/sh\nwhoami\nid"}}"##;
        let single = r#"{"requestParameters":{"script":"whoami"}}"#;
        let none = r##"{"requestParameters":{"script":"#!/bin/sh\nid"}}"##;
        check(&without, &[(false, multi), (true, single), (false, none)]);
        check(&with, &[(true, multi), (true, single), (false, none)]);
    }

    #[test]
    fn re_s_flag() {
        let without = rule(
            r#"
sel:
  requestParameters.script|re: 'curl.*bash'
condition: sel
"#,
        );
        let with = rule(
            r#"
sel:
  requestParameters.script|re|s: 'curl.*bash'
condition: sel
"#,
        );
        let split = r#"{"requestParameters":{"script":"curl http://x\n| bash"}}"#;
        let one_line = r#"{"requestParameters":{"script":"curl http://x | bash"}}"#;
        check(&without, &[(false, split), (true, one_line)]);
        check(&with, &[(true, split), (true, one_line)]);
    }

    #[test]
    fn re_on_numbers_uses_their_string_form() {
        let r = rule(
            r#"
sel:
  requestParameters.fromPort|re: '^2\d$'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"requestParameters":{"fromPort":22}}"#),
                (false, r#"{"requestParameters":{"fromPort":220}}"#),
            ],
        );
    }

    #[test]
    fn cidr_v4() {
        let r = rule(
            r#"
sel:
  sourceIPAddress|cidr: 10.0.0.0/8
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"sourceIPAddress":"10.1.2.3"}"#),
                (true, r#"{"sourceIPAddress":"10.255.255.255"}"#),
                (false, r#"{"sourceIPAddress":"11.0.0.1"}"#),
                (false, r#"{"sourceIPAddress":"9.255.255.255"}"#),
                (false, r#"{"sourceIPAddress":"AWS Internal"}"#),
                (false, r#"{"sourceIPAddress":"ec2.amazonaws.com"}"#),
                (false, r#"{"sourceIPAddress":"2001:db8::1"}"#),
                (false, r#"{}"#),
            ],
        );
    }

    #[test]
    fn cidr_v4_list_and_slash_zero() {
        let list = rule(
            r#"
sel:
  sourceIPAddress|cidr:
    - 192.168.0.0/16
    - 172.16.0.0/12
condition: sel
"#,
        );
        check(
            &list,
            &[
                (true, r#"{"sourceIPAddress":"192.168.4.5"}"#),
                (true, r#"{"sourceIPAddress":"172.31.0.1"}"#),
                (false, r#"{"sourceIPAddress":"172.32.0.1"}"#),
            ],
        );
        let any = rule(
            r#"
sel:
  sourceIPAddress|cidr: 0.0.0.0/0
condition: sel
"#,
        );
        check(
            &any,
            &[
                (true, r#"{"sourceIPAddress":"1.2.3.4"}"#),
                (true, r#"{"sourceIPAddress":"255.255.255.255"}"#),
                (false, r#"{"sourceIPAddress":"AWS Internal"}"#),
                (false, r#"{"sourceIPAddress":"2001:db8::1"}"#),
            ],
        );
    }

    #[test]
    fn cidr_bare_address_is_one_host() {
        let v4 = rule(
            r#"
sel:
  sourceIPAddress|cidr: 192.0.2.7
condition: sel
"#,
        );
        check(
            &v4,
            &[
                (true, r#"{"sourceIPAddress":"192.0.2.7"}"#),
                (false, r#"{"sourceIPAddress":"192.0.2.8"}"#),
            ],
        );
        let v6 = rule(
            r#"
sel:
  sourceIPAddress|cidr: '2001:db8::7'
condition: sel
"#,
        );
        check(
            &v6,
            &[
                (true, r#"{"sourceIPAddress":"2001:db8:0:0:0:0:0:7"}"#),
                (false, r#"{"sourceIPAddress":"2001:db8::8"}"#),
            ],
        );
    }

    #[test]
    fn cidr_v6() {
        let r = rule(
            r#"
sel:
  sourceIPAddress|cidr: '2001:db8::/32'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"sourceIPAddress":"2001:db8::1"}"#),
                (true, r#"{"sourceIPAddress":"2001:DB8:ffff::1"}"#),
                (false, r#"{"sourceIPAddress":"2001:db9::1"}"#),
                (false, r#"{"sourceIPAddress":"AWS Internal"}"#),
                (false, r#"{"sourceIPAddress":"10.0.0.1"}"#),
            ],
        );
    }

    #[test]
    fn cidr_v6_slash_zero() {
        let r = rule(
            r#"
sel:
  sourceIPAddress|cidr: '::/0'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"sourceIPAddress":"2001:db8::1"}"#),
                (true, r#"{"sourceIPAddress":"::1"}"#),
                (false, r#"{"sourceIPAddress":"AWS Internal"}"#),
                (false, r#"{"sourceIPAddress":"s3.amazonaws.com"}"#),
            ],
        );
    }

    #[test]
    fn cidr_v6_network_does_not_contain_ipv4_addresses() {
        // An IPv4 address is not inside an IPv6 network (Python's ipaddress, pySigma's
        // backends' cidrmatch); `0.0.0.0/0` does not match `2001:db8::1` in this engine
        // either. The engine maps the IPv4 address to `::ffff:1.2.3.4` before masking, so
        // every IPv6 prefix that covers ::ffff:0:0/96 — in particular `::/0` — matches
        // every IPv4 source.
        let r = rule(
            r#"
sel:
  sourceIPAddress|cidr: '::/0'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"sourceIPAddress":"2001:db8::1"}"#),
                (false, r#"{"sourceIPAddress":"1.2.3.4"}"#),
            ],
        );
    }

    #[test]
    fn exists_true_and_false() {
        let yes = rule(
            r#"
sel:
  requestParameters.userData|exists: true
condition: sel
"#,
        );
        check(
            &yes,
            &[
                (
                    true,
                    r#"{"requestParameters":{"userData":"<sensitiveDataRemoved>"}}"#,
                ),
                (true, r#"{"requestParameters":{"userData":{"value":"x"}}}"#),
                (false, r#"{"requestParameters":{"instanceId":"i-1"}}"#),
                (false, r#"{}"#),
            ],
        );
        let no = rule(
            r#"
sel:
  eventName: ConsoleLogin
  additionalEventData.MFAUsed|exists: false
condition: sel
"#,
        );
        check(
            &no,
            &[
                (
                    true,
                    r#"{"eventName":"ConsoleLogin","additionalEventData":{}}"#,
                ),
                (true, r#"{"eventName":"ConsoleLogin"}"#),
                (
                    false,
                    r#"{"eventName":"ConsoleLogin","additionalEventData":{"MFAUsed":"No"}}"#,
                ),
            ],
        );
    }

    #[test]
    fn exists_through_an_array() {
        let r = rule(
            r#"
sel:
  resources.accountId|exists: true
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"resources":[{"ARN":"a"},{"accountId":"1"}]}"#),
                (false, r#"{"resources":[{"ARN":"a"},{"ARN":"b"}]}"#),
            ],
        );
    }

    #[test]
    fn fieldref_with_contains_startswith_endswith() {
        let contains = rule(
            r#"
sel:
  userIdentity.arn|fieldref|contains: requestParameters.userName
condition: sel
"#,
        );
        let starts = rule(
            r#"
sel:
  requestParameters.roleSessionName|fieldref|startswith: userIdentity.userName
condition: sel
"#,
        );
        let ends = rule(
            r#"
sel:
  userIdentity.arn|endswith|fieldref: requestParameters.userName
condition: sel
"#,
        );
        let same = r#"{"userIdentity":{"arn":"arn:aws:iam::1:user/alice","userName":"alice"},
            "requestParameters":{"userName":"alice","roleSessionName":"alice-session"}}"#;
        let other = r#"{"userIdentity":{"arn":"arn:aws:iam::1:user/alice","userName":"alice"},
            "requestParameters":{"userName":"bob","roleSessionName":"bob-session"}}"#;
        let middle = r#"{"userIdentity":{"arn":"arn:aws:iam::1:user/alice/x","userName":"x"},
            "requestParameters":{"userName":"alice","roleSessionName":"session-x"}}"#;
        check(&contains, &[(true, same), (false, other), (true, middle)]);
        check(&starts, &[(true, same), (false, other), (false, middle)]);
        check(&ends, &[(true, same), (false, other), (false, middle)]);
    }

    #[test]
    fn fieldref_cased() {
        let r = rule(
            r#"
sel:
  userIdentity.userName|fieldref|cased: requestParameters.userName
condition: sel
"#,
        );
        check(
            &r,
            &[
                (
                    true,
                    r#"{"userIdentity":{"userName":"Alice"},"requestParameters":{"userName":"Alice"}}"#,
                ),
                (
                    false,
                    r#"{"userIdentity":{"userName":"Alice"},"requestParameters":{"userName":"alice"}}"#,
                ),
            ],
        );
    }

    // Values computed independently (Python: base64.b64encode(b"/bin/bash") == b"L2Jpbi9iYXNo").
    #[test]
    fn base64_is_exact_and_case_sensitive() {
        let r = rule(
            r#"
sel:
  requestParameters.userData|base64: '/bin/bash'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"requestParameters":{"userData":"L2Jpbi9iYXNo"}}"#),
                (
                    false,
                    r#"{"requestParameters":{"userData":"l2jpbi9iyxno"}}"#,
                ),
                (
                    false,
                    r#"{"requestParameters":{"userData":"L2JPBI9IYXNO"}}"#,
                ),
                (
                    false,
                    r#"{"requestParameters":{"userData":"L2Jpbi9iYXNoIC1p"}}"#,
                ),
                (false, r#"{"requestParameters":{"userData":"/bin/bash"}}"#),
            ],
        );
        let contains = rule(
            r#"
sel:
  requestParameters.userData|base64|contains: '/bin/bash'
condition: sel
"#,
        );
        check(
            &contains,
            &[
                // base64("/bin/bash -i")
                (
                    true,
                    r#"{"requestParameters":{"userData":"L2Jpbi9iYXNoIC1p"}}"#,
                ),
                (
                    false,
                    r#"{"requestParameters":{"userData":"l2jpbi9iyxnoic1p"}}"#,
                ),
            ],
        );
    }

    // The three offsets of "/bin/bash" are L2Jpbi9iYXNo, 9iaW4vYmFza and vYmluL2Jhc2; the
    // events below were encoded with Python's base64 module.
    #[test]
    fn base64offset_contains_finds_all_three_offsets() {
        let r = rule(
            r#"
sel:
  requestParameters.userData|base64offset|contains: '/bin/bash'
condition: sel
"#,
        );
        check(
            &r,
            &[
                // offset 0: base64("/bin/bash -i")
                (
                    true,
                    r#"{"requestParameters":{"userData":"L2Jpbi9iYXNoIC1p"}}"#,
                ),
                // offset 1: base64("A/bin/bash -i")
                (
                    true,
                    r#"{"requestParameters":{"userData":"QS9iaW4vYmFzaCAtaQ=="}}"#,
                ),
                // offset 2: base64("#!/bin/bash\nwhoami")
                (
                    true,
                    r#"{"requestParameters":{"userData":"IyEvYmluL2Jhc2gKd2hvYW1p"}}"#,
                ),
                // offset 2: base64("AB/bin/bash &")
                (
                    true,
                    r#"{"requestParameters":{"userData":"QUIvYmluL2Jhc2ggJg=="}}"#,
                ),
                // base64("#!/bin/sh\n")
                (
                    false,
                    r#"{"requestParameters":{"userData":"IyEvYmluL3NoCg=="}}"#,
                ),
                // base64("/bin/sh -c")
                (
                    false,
                    r#"{"requestParameters":{"userData":"L2Jpbi9zaCAtYw=="}}"#,
                ),
                // Case matters in base64.
                (
                    false,
                    r#"{"requestParameters":{"userData":"iyevymlul2jhc2gkd2hvyw1p"}}"#,
                ),
                (
                    false,
                    r##"{"requestParameters":{"userData":"#!/bin/bash"}}"##,
                ),
            ],
        );
    }

    #[test]
    fn comparisons_on_numbers_and_numeric_strings() {
        let cases = |op: &str| {
            rule(&format!(
                "
sel:
  requestParameters.maxResults|{op}: 5
condition: sel
"
            ))
        };
        let ev = |v: &str| format!(r#"{{"requestParameters":{{"maxResults":{v}}}}}"#);
        let (four, five, six) = (ev("4"), ev("5"), ev("6"));
        let (s4, s5, s45, s6) = (ev(r#""4""#), ev(r#""5""#), ev(r#""4.5""#), ev(r#""6""#));
        let (text, missing, float) = (ev(r#""abc""#), "{}".to_string(), ev("5.5"));
        check(
            &cases("lt"),
            &[
                (true, &four),
                (true, &s4),
                (true, &s45),
                (false, &five),
                (false, &s5),
                (false, &six),
                (false, &text),
                (false, &missing),
            ],
        );
        check(
            &cases("lte"),
            &[
                (true, &four),
                (true, &five),
                (true, &s5),
                (false, &six),
                (false, &float),
                (false, &text),
            ],
        );
        check(
            &cases("gt"),
            &[
                (true, &six),
                (true, &s6),
                (true, &float),
                (false, &five),
                (false, &s5),
                (false, &four),
                (false, &text),
                (false, &missing),
            ],
        );
        check(
            &cases("gte"),
            &[
                (true, &five),
                (true, &s5),
                (true, &six),
                (false, &four),
                (false, &s45),
                (false, &text),
            ],
        );
    }

    #[test]
    fn comparison_with_a_decimal_bound() {
        let r = rule(
            r#"
sel:
  requestParameters.ratio|gte: '0.75'
condition: sel
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"requestParameters":{"ratio":0.75}}"#),
                (true, r#"{"requestParameters":{"ratio":"1"}}"#),
                (false, r#"{"requestParameters":{"ratio":0.5}}"#),
            ],
        );
    }

    #[test]
    fn cased_with_wildcards_and_contains() {
        let glob = rule(
            r#"
sel:
  eventName|cased: 'Stop*ing'
condition: sel
"#,
        );
        check(
            &glob,
            &[
                (true, r#"{"eventName":"StopLogging"}"#),
                (false, r#"{"eventName":"stoplogging"}"#),
            ],
        );
        let contains = rule(
            r#"
sel:
  userAgent|contains|cased: 'Boto3'
condition: sel
"#,
        );
        check(
            &contains,
            &[
                (true, r#"{"userAgent":"x Boto3/1.2"}"#),
                (false, r#"{"userAgent":"x boto3/1.2"}"#),
            ],
        );
        let many = rule(
            r#"
sel:
  eventName|cased: [StopLogging, DeleteTrail, UpdateTrail, PutEventSelectors]
condition: sel
"#,
        );
        check(
            &many,
            &[
                (true, r#"{"eventName":"DeleteTrail"}"#),
                (false, r#"{"eventName":"deletetrail"}"#),
            ],
        );
    }

    fn with_placeholders() -> LoadOptions {
        let ph = Placeholders::from_yaml(
            "placeholders.yml",
            "admins:\n  - alice\n  - bob\nbreakglass: emergency-admin\n",
        )
        .expect("placeholders load");
        LoadOptions {
            placeholders: Some(ph),
            ..Default::default()
        }
    }

    #[test]
    fn expand_replaces_placeholders_with_each_value() {
        let r = rule_with(
            r#"
sel:
  userIdentity.userName|expand: '%admins%'
condition: sel
"#,
            with_placeholders(),
        );
        check(
            &r,
            &[
                (true, r#"{"userIdentity":{"userName":"alice"}}"#),
                (true, r#"{"userIdentity":{"userName":"BOB"}}"#),
                (false, r#"{"userIdentity":{"userName":"carol"}}"#),
                (false, r#"{"userIdentity":{"userName":"%admins%"}}"#),
            ],
        );
    }

    #[test]
    fn expand_inside_a_wildcard_value_and_single_value_placeholder() {
        let r = rule_with(
            r#"
sel:
  userIdentity.arn|expand: '*:user/%admins%'
filter:
  userIdentity.userName|expand: '%breakglass%'
condition: sel or filter
"#,
            with_placeholders(),
        );
        check(
            &r,
            &[
                (
                    true,
                    r#"{"userIdentity":{"arn":"arn:aws:iam::1:user/alice"}}"#,
                ),
                (true, r#"{"userIdentity":{"userName":"emergency-admin"}}"#),
                (
                    false,
                    r#"{"userIdentity":{"arn":"arn:aws:iam::1:user/alice2"}}"#,
                ),
                (
                    false,
                    r#"{"userIdentity":{"arn":"arn:aws:iam::1:role/alice"}}"#,
                ),
            ],
        );
    }

    #[test]
    fn expand_without_placeholders_is_an_error() {
        let report = rejected(
            r#"
sel:
  userIdentity.userName|expand: '%admins%'
condition: sel
"#,
        );
        let d = error_with(&report, "`expand` needs placeholder values");
        // Points at the value.
        assert_eq!(at(d), det_pos(2, 33), "{d}");
        assert!(
            d.hint.as_deref().unwrap_or("").contains("placeholders"),
            "{d}"
        );
    }

    #[test]
    fn expand_with_an_undefined_placeholder_is_an_error() {
        let text = doc(r#"
sel:
  userIdentity.userName|expand: '%admin%'
condition: sel
"#);
        let report = load_with(&text, with_placeholders());
        assert!(report.has_errors(), "{}", rendered(&report));
        assert!(report.rules.is_empty());
        let d = error_with(&report, "placeholder `%admin%` is not defined");
        assert_eq!(d.hint.as_deref(), Some("did you mean `%admins%`?"), "{d}");
    }
}

// ---------------------------------------------------------------------------------------
// Conditions
// ---------------------------------------------------------------------------------------

mod conditions {
    use super::*;

    /// Selections `a` (eventName A), `b` (awsRegion r1), `c` (errorCode present); the
    /// condition varies.
    fn abc(condition: &str) -> Rule {
        rule(&format!(
            "
a:
  eventName: A
b:
  awsRegion: r1
c:
  errorCode|exists: true
condition: {condition}
"
        ))
    }

    /// An event where the selections a, b, c are as given.
    fn ev(a: bool, b: bool, c: bool) -> String {
        let mut parts = vec![
            format!(r#""eventName":"{}""#, if a { "A" } else { "Z" }),
            format!(r#""awsRegion":"{}""#, if b { "r1" } else { "r9" }),
        ];
        if c {
            parts.push(r#""errorCode":"AccessDenied""#.into());
        }
        format!("{{{}}}", parts.join(","))
    }

    /// Checks `condition` against the truth function `f` over all eight assignments.
    fn truth_table(condition: &str, f: impl Fn(bool, bool, bool) -> bool) {
        let r = abc(condition);
        let mut wrong = Vec::new();
        for bits in 0..8u8 {
            let (a, b, c) = (bits & 4 != 0, bits & 2 != 0, bits & 1 != 0);
            let want = f(a, b, c);
            if hit(&r, &ev(a, b, c)) != want {
                wrong.push(format!("a={a} b={b} c={c}: expected {want}"));
            }
        }
        assert!(wrong.is_empty(), "`{condition}`:\n{}", wrong.join("\n"));
    }

    #[test]
    fn and() {
        truth_table("a and b", |a, b, _| a && b);
    }

    #[test]
    fn or() {
        truth_table("a or b", |a, b, _| a || b);
    }

    #[test]
    fn not() {
        truth_table("not a", |a, _, _| !a);
        truth_table("not not a", |a, _, _| a);
    }

    #[test]
    fn parentheses() {
        truth_table("(a or b) and not c", |a, b, c| (a || b) && !c);
        truth_table("not (a and b)", |a, b, _| !(a && b));
        truth_table("((a))", |a, _, _| a);
    }

    #[test]
    fn precedence_not_over_and_over_or() {
        truth_table("a or b and not c", |a, b, c| a || (b && !c));
        truth_table("not a and b", |a, b, _| !a && b);
        truth_table("a and b or c", |a, b, c| (a && b) || c);
        truth_table("c or not a and b", |a, b, c| c || (!a && b));
    }

    #[test]
    fn keywords_are_case_insensitive() {
        truth_table("a AND NOT b OR c", |a, b, c| (a && !b) || c);
    }

    fn quantified(condition: &str) -> Rule {
        rule(&format!(
            "
sel_name:
  eventName: CreateUser
sel_source:
  eventSource: iam.amazonaws.com
filter_region:
  awsRegion: us-east-1
condition: {condition}
"
        ))
    }

    const BOTH: &str = r#"{"eventName":"CreateUser","eventSource":"iam.amazonaws.com"}"#;
    const NAME: &str = r#"{"eventName":"CreateUser","eventSource":"sts.amazonaws.com"}"#;
    const SOURCE: &str = r#"{"eventName":"DeleteUser","eventSource":"iam.amazonaws.com"}"#;
    const NEITHER: &str = r#"{"eventName":"DeleteUser","awsRegion":"us-east-1"}"#;
    const ALL3: &str =
        r#"{"eventName":"CreateUser","eventSource":"iam.amazonaws.com","awsRegion":"us-east-1"}"#;

    #[test]
    fn one_of_pattern() {
        let r = quantified("1 of sel_*");
        check(
            &r,
            &[(true, BOTH), (true, NAME), (true, SOURCE), (false, NEITHER)],
        );
    }

    #[test]
    fn all_of_pattern() {
        let r = quantified("all of sel_*");
        check(
            &r,
            &[
                (true, BOTH),
                (false, NAME),
                (false, SOURCE),
                (false, NEITHER),
            ],
        );
    }

    #[test]
    fn quantifiers_combine_with_not() {
        let r = quantified("all of sel_* and not 1 of filter_*");
        check(&r, &[(true, BOTH), (false, ALL3), (false, NAME)]);
    }

    #[test]
    fn one_of_them_and_all_of_them() {
        let one = quantified("1 of them");
        check(
            &one,
            &[
                (true, NAME),
                (true, NEITHER),
                (false, r#"{"eventName":"X"}"#),
            ],
        );
        let all = quantified("all of them");
        check(&all, &[(true, ALL3), (false, BOTH)]);
    }

    #[test]
    fn them_excludes_underscore_selections() {
        let detection = |condition: &str| {
            format!(
                "
sel:
  eventName: CreateUser
_helper:
  awsRegion: us-east-1
condition: {condition}
"
            )
        };
        // `_helper` does not have to match for `all of them`…
        let all = rule(&detection("all of them"));
        check(
            &all,
            &[
                (
                    true,
                    r#"{"eventName":"CreateUser","awsRegion":"eu-west-1"}"#,
                ),
                (
                    false,
                    r#"{"eventName":"DeleteUser","awsRegion":"us-east-1"}"#,
                ),
            ],
        );
        // …and does not count for `1 of them`.
        let one = rule(&detection("1 of them"));
        check(
            &one,
            &[
                (
                    false,
                    r#"{"eventName":"DeleteUser","awsRegion":"us-east-1"}"#,
                ),
                (true, r#"{"eventName":"CreateUser"}"#),
            ],
        );
        // It can still be named explicitly.
        let named = rule(&detection("sel and _helper"));
        check(
            &named,
            &[
                (
                    true,
                    r#"{"eventName":"CreateUser","awsRegion":"us-east-1"}"#,
                ),
                (
                    false,
                    r#"{"eventName":"CreateUser","awsRegion":"eu-west-1"}"#,
                ),
            ],
        );
    }

    #[test]
    fn list_of_conditions_is_or() {
        let r = rule(
            r#"
a:
  eventName: A
b:
  awsRegion: r1
condition:
  - a and not b
  - b and not a
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"eventName":"A","awsRegion":"r9"}"#),
                (true, r#"{"eventName":"Z","awsRegion":"r1"}"#),
                (false, r#"{"eventName":"A","awsRegion":"r1"}"#),
                (false, r#"{"eventName":"Z","awsRegion":"r9"}"#),
            ],
        );
    }
}

// ---------------------------------------------------------------------------------------
// Rejections
// ---------------------------------------------------------------------------------------

mod rejections {
    use super::*;

    #[test]
    fn unknown_modifier_with_did_you_mean() {
        let report = rejected(
            r#"
sel:
  eventName|contain: Stop
condition: sel
"#,
        );
        let d = error_with(&report, "unknown modifier `contain`");
        assert_eq!(d.hint.as_deref(), Some("did you mean `contains`?"), "{d}");
        // Points at the modifier: `  eventName|contain` → column of `contain`.
        assert_eq!(at(d), det_pos(2, 13), "{d}");
        assert_eq!(d.file, LABEL);
    }

    #[test]
    fn unknown_modifier_in_a_quoted_key() {
        let report = rejected(
            r#"
sel:
  'eventName|startwith': Stop
condition: sel
"#,
        );
        let d = error_with(&report, "unknown modifier `startwith`");
        assert_eq!(d.hint.as_deref(), Some("did you mean `startswith`?"), "{d}");
        assert_eq!(at(d), det_pos(2, 14), "{d}");
    }

    #[test]
    fn unsupported_modifiers_wide_windash_utf16le() {
        for m in ["wide", "windash", "utf16le"] {
            let report = rejected(&format!(
                "
sel:
  requestParameters.commandLine|{m}|contains: whoami
condition: sel
"
            ));
            let d = error_with(&report, &format!("unsupported modifier `{m}`"));
            assert!(d.hint.is_some(), "{d}");
            assert_eq!(at(d), det_pos(2, 33), "{d}");
        }
    }

    #[test]
    fn invalid_regex() {
        let report = rejected(
            r#"
sel:
  eventName|re: '(unclosed'
condition: sel
"#,
        );
        let d = error_with(&report, "invalid regex");
        assert_eq!(at(d), det_pos(2, 17), "{d}");
    }

    #[test]
    fn regex_with_look_around_is_rejected() {
        let report = rejected(
            r#"
sel:
  eventName|re: '^(?!Describe)'
condition: sel
"#,
        );
        error_with(&report, "invalid regex");
    }

    #[test]
    fn oversized_regex() {
        let start = Instant::now();
        let report = rejected(
            r#"
sel:
  eventName|re: '(a{1000}){1000}'
condition: sel
"#,
        );
        let d = error_with(&report, "too large");
        assert_eq!(at(d), det_pos(2, 17), "{d}");
        assert!(start.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn invalid_cidr() {
        for bad in ["10.0.0.0/33", "not-an-ip/8", "2001:db8::/129", "10.0.0/8"] {
            let report = rejected(&format!(
                "
sel:
  sourceIPAddress|cidr: '{bad}'
condition: sel
"
            ));
            let d = error_with(&report, "invalid CIDR");
            assert!(d.message.contains(bad), "{d}");
            assert_eq!(at(d), det_pos(2, 25), "{d}");
        }
    }

    #[test]
    fn undefined_selection_in_condition() {
        let report = rejected(
            r#"
selection:
  eventName: StopLogging
filter:
  awsRegion: us-east-1
condition: selection and not filtr
"#,
        );
        let d = error_with(&report, "undefined selection `filtr`");
        assert_eq!(d.hint.as_deref(), Some("did you mean `filter`?"), "{d}");
        // `condition: selection and not filtr`: the value starts at column 12, `filtr` at 30.
        assert_eq!(at(d), det_pos(5, 30), "{d}");
    }

    #[test]
    fn undefined_selection_in_quoted_condition_and_in_a_list() {
        let report = rejected(
            r#"
sel:
  eventName: StopLogging
condition:
  - sel
  - 'sel or nope'
"#,
        );
        let d = error_with(&report, "undefined selection `nope`");
        // `  - 'sel or nope'`: quote at column 5, `nope` at column 13.
        assert_eq!(at(d), det_pos(5, 13), "{d}");
    }

    #[test]
    fn quantifier_over_no_selection() {
        let report = rejected(
            r#"
sel:
  eventName: StopLogging
condition: 1 of filter_*
"#,
        );
        error_with(&report, "`filter_*` matches no selection");
    }

    #[test]
    fn duplicate_rule_id_across_two_documents() {
        let one = doc(r#"
sel:
  eventName: A
condition: sel
"#);
        let text = format!("{one}---\n{one}");
        let report = load(&text);
        assert!(report.has_errors(), "{}", rendered(&report));
        let d = error_with(
            &report,
            "duplicate rule id `6f1c2b1e-0000-4000-8000-000000000001`",
        );
        // The second document starts after the first (9 lines) and the `---` line; its
        // `id` value is on its line 2, column 5.
        let first_lines = one.lines().count();
        assert_eq!(at(d), (Some(first_lines + 1 + 2), Some(5)), "{d}");
        assert!(
            d.hint
                .as_deref()
                .unwrap_or("")
                .contains("semantics.yml:2:5"),
            "{d}"
        );
        // The first definition is kept.
        assert_eq!(report.rules.len(), 1);
    }

    #[test]
    fn duplicate_rule_id_across_two_files() {
        let text = doc(r#"
sel:
  eventName: A
condition: sel
"#);
        let mut loader = Loader::new(LoadOptions::default());
        loader.load_source("one.yml", &text, None);
        loader.load_source("two.yml", &text, None);
        let report = loader.finish();
        let d = error_with(&report, "duplicate rule id");
        assert_eq!(d.file, "two.yml");
        assert!(d.hint.as_deref().unwrap_or("").contains("one.yml"), "{d}");
        assert_eq!(report.rules.len(), 1);
    }

    #[test]
    fn title_must_be_a_string() {
        let report = rejected_doc(
            "title: [a]
id: 6f1c2b1e-0000-4000-8000-000000000002
logsource: {product: aws, service: cloudtrail}
detection:
  sel:
    eventName: A
  condition: sel
",
        );
        let d = error_with(&report, "`title` must be a string");
        assert_eq!(at(d), (Some(1), Some(8)), "{d}");
    }

    #[test]
    fn nested_mapping_as_a_value_is_rejected() {
        let report = rejected(
            r#"
sel:
  requestParameters:
    userName: admin
condition: sel
"#,
        );
        let d = error_with(&report, "found a mapping");
        assert!(d.message.contains("requestParameters"), "{d}");
        assert_eq!(at(d), det_pos(3, 5), "{d}");
        let report = rejected(
            r#"
sel:
  eventName:
    - A
    - {nested: value}
condition: sel
"#,
        );
        error_with(&report, "found a mapping");
    }

    #[test]
    fn detection_must_be_a_mapping() {
        let report = rejected_doc(
            "title: t
id: 6f1c2b1e-0000-4000-8000-000000000003
logsource: {product: aws, service: cloudtrail}
detection: [sel]
",
        );
        error_with(&report, "`detection` must be a mapping");
    }

    #[test]
    fn yaml_syntax_error() {
        let report = rejected_doc(
            "title: broken
id: 6f1c2b1e-0000-4000-8000-000000000004
detection:
  sel:
    eventName: [A, B
  condition: sel
",
        );
        let d = error_with(&report, "YAML syntax");
        assert!(d.line.is_some_and(|l| (5..=7).contains(&l)), "{d}");
    }

    #[test]
    fn legacy_count_aggregation() {
        // The deprecated form is translated into a correlation that keeps the rule's id.
        let text = doc(r#"
sel:
  eventName: GetObject
timeframe: 10m
condition: sel | count() by sourceIPAddress > 5
"#);
        let report = load(&text);
        assert!(!report.has_errors(), "{}", rendered(&report));
        assert_eq!(report.rules.len(), 1, "one base rule");
        assert_eq!(report.correlations.len(), 1);
        let c = &report.correlations[0].def;
        assert_eq!(c.kind, trailwatch::rules::correlation::CorrKind::EventCount);
        assert_eq!(c.group_by, vec!["sourceIPAddress".to_string()]);
        assert_eq!(c.timespan, 600_000);
        assert_eq!(c.condition.gt, Some(5));
        assert_eq!(report.rules[0].meta.id, format!("{}/base", c.meta.id));
        // A notice at the `|`: `condition: sel | count()…` starts at column 12, `|` is at 16.
        let note = report
            .diagnostics
            .iter()
            .find(|d| d.message.contains("translated"))
            .expect("a translation notice");
        assert_eq!(at(note), det_pos(4, 16), "{note}");
    }

    #[test]
    fn legacy_count_without_timeframe_is_rejected() {
        let report = rejected(
            r#"
sel:
  eventName: GetObject
condition: sel | count() > 5
"#,
        );
        let d = error_with(&report, "`| count()`");
        assert!(d.message.contains("timeframe"), "{d}");
    }

    #[test]
    fn legacy_near() {
        // Without a timeframe there is no window: rejected, naming the construct.
        let report = rejected(
            r#"
sel1:
  eventName: CreateFunction
sel2:
  eventName: Invoke
condition: sel1 | near sel2
"#,
        );
        let d = error_with(&report, "near");
        assert!(d.message.contains("timeframe"), "{d}");
        // With one, it becomes a temporal correlation of the two selections.
        let report = load(&doc(r#"
sel1:
  eventName: CreateFunction
sel2:
  eventName: Invoke
timeframe: 5m
condition: sel1 | near sel2
"#));
        assert!(!report.has_errors(), "{}", rendered(&report));
        assert_eq!(report.correlations.len(), 1);
        assert_eq!(
            report.correlations[0].def.kind,
            trailwatch::rules::correlation::CorrKind::Temporal
        );
    }

    #[test]
    fn invalid_modifier_combinations() {
        let cases = [
            ("requestParameters.maxResults|lt: many", "is not a number"),
            (
                "sourceIPAddress|re|cidr: '10.0.0.0/8'",
                "cannot be combined",
            ),
            ("eventName|i: stop", "need the `re` modifier"),
            (
                "requestParameters.userData|base64offset: '/bin/bash'",
                "must be followed by `contains`",
            ),
            ("eventName|contains|startswith: Stop", "conflicts with"),
            ("eventName|exists: maybe", "`exists` takes true or false"),
            ("eventName|contains: []", "empty list of values"),
        ];
        for (line, needle) in cases {
            let report = rejected(&format!("sel:\n  {line}\ncondition: sel\n"));
            error_with(&report, needle);
        }
    }

    #[test]
    fn duplicate_mapping_keys_are_rejected() {
        // YAML 1.2 (§3.2.1.1) requires the keys of a mapping to be unique, and SigmaHQ lints
        // for duplicates. Today the engine accepts all three documents below without a
        // diagnostic: the selection becomes `eventName == A and eventName == B` (it can never
        // match; pySigma/PyYAML would keep the last value instead), the second `condition`
        // silently replaces the first, and the second `title` is ignored.
        let field = load(&doc(r#"
sel:
  eventName: CreateUser
  eventName: DeleteUser
condition: sel
"#));
        assert!(
            field.has_errors(),
            "duplicate field key:\n{}",
            rendered(&field)
        );
        let d = error_with(&field, "eventName");
        assert_eq!(at(d), det_pos(3, 3), "{d}");

        let condition = load(&doc(r#"
sel:
  eventName: CreateUser
condition: sel
condition: not sel
"#));
        assert!(
            condition.has_errors(),
            "duplicate condition:\n{}",
            rendered(&condition)
        );

        let title = load(&format!(
            "title: second title\n{HEADER}  sel:\n    eventName: A\n  condition: sel\n"
        ));
        assert!(title.has_errors(), "duplicate title:\n{}", rendered(&title));
    }

    #[test]
    fn small_aliases_still_work() {
        let r = rule(
            r#"
sel: &shared
  eventName: StopLogging
again: *shared
condition: sel and again
"#,
        );
        check(
            &r,
            &[
                (true, r#"{"eventName":"StopLogging"}"#),
                (false, r#"{"eventName":"StartLogging"}"#),
            ],
        );
    }

    #[test]
    fn billion_laughs_is_rejected_not_expanded() {
        let mut text = String::from(HEADER);
        text.push_str("  sel:\n    eventName: A\n  condition: sel\n");
        text.push_str("lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let p = i - 1;
            let refs = vec![format!("*l{p}"); 10].join(", ");
            text.push_str(&format!("lol{i}: &l{i} [{refs}]\n"));
        }
        let start = Instant::now();
        let report = rejected_doc(&text);
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "took {:?}",
            start.elapsed()
        );
        let d = error_with(&report, "expands to more than");
        assert!(d.line.is_some(), "{d}");
    }

    #[test]
    fn empty_condition_and_missing_condition() {
        let report = rejected(
            r#"
sel:
  eventName: A
"#,
        );
        error_with(&report, "no `condition`");
    }
}

// ---------------------------------------------------------------------------------------
// Logsource handling and documents
// ---------------------------------------------------------------------------------------

mod logsource {
    use super::*;

    #[test]
    fn non_cloudtrail_logsource_is_skipped_with_a_note() {
        let report = load(
            "title: windows rule
id: 6f1c2b1e-0000-4000-8000-000000000010
logsource:
  product: windows
  service: security
detection:
  sel:
    EventID: 4624
  condition: sel
",
        );
        assert!(!report.has_errors(), "{}", rendered(&report));
        assert!(report.rules.is_empty());
        assert_eq!(report.skipped, 1);
        let note = report
            .diagnostics
            .iter()
            .find(|d| d.severity == Severity::Note)
            .unwrap_or_else(|| panic!("no note:\n{}", rendered(&report)));
        assert!(note.message.contains("skipped"), "{note}");
        assert!(note.message.contains("windows"), "{note}");
        assert_eq!(note.line, Some(4), "{note}");
    }

    #[test]
    fn skipped_rule_is_not_validated() {
        // A Windows rule using a Windows-only modifier is not an error: it is not ours.
        let report = load(
            "title: windows rule
id: 6f1c2b1e-0000-4000-8000-000000000011
logsource: {product: windows, category: process_creation}
detection:
  sel:
    CommandLine|windash|contains: ' -enc '
  condition: sel
",
        );
        assert!(!report.has_errors(), "{}", rendered(&report));
        assert_eq!(report.skipped, 1);
    }

    #[test]
    fn rule_without_logsource_loads() {
        let mut report = load(
            "title: no logsource
id: 6f1c2b1e-0000-4000-8000-000000000012
detection:
  sel:
    eventName: StopLogging
  condition: sel
",
        );
        assert!(!report.has_errors(), "{}", rendered(&report));
        assert_eq!(report.rules.len(), 1);
        let r = report.rules.remove(0);
        check(
            &r,
            &[
                (true, r#"{"eventName":"StopLogging"}"#),
                (false, r#"{"eventName":"StartLogging"}"#),
            ],
        );
    }

    #[test]
    fn multiple_documents_are_several_rules() {
        let text = "title: first
id: 6f1c2b1e-0000-4000-8000-000000000020
logsource: {product: aws, service: cloudtrail}
detection:
  sel:
    eventName: A
  condition: sel
---
title: second
id: 6f1c2b1e-0000-4000-8000-000000000021
logsource: {product: aws, service: cloudtrail}
detection:
  sel:
    eventName: B
  condition: sel
---
title: third, skipped
id: 6f1c2b1e-0000-4000-8000-000000000022
logsource: {product: gcp, service: gcp.audit}
detection:
  sel:
    methodName: x
  condition: sel
";
        let report = load(text);
        assert!(!report.has_errors(), "{}", rendered(&report));
        let ids: Vec<&str> = report.rules.iter().map(|r| r.meta.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "6f1c2b1e-0000-4000-8000-000000000020",
                "6f1c2b1e-0000-4000-8000-000000000021"
            ]
        );
        assert_eq!(report.skipped, 1);
        let docs: Vec<usize> = report.rules.iter().map(|r| r.source.doc).collect();
        assert_eq!(docs, [0, 1]);
        let a = r#"{"eventName":"A"}"#;
        assert!(hit(&report.rules[0], a));
        assert!(!hit(&report.rules[1], a));
    }

    #[test]
    fn load_path_reads_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rule.yml");
        std::fs::write(
            &path,
            doc(r#"
sel:
  eventName: A
condition: sel
"#),
        )
        .unwrap();
        let mut loader = Loader::new(LoadOptions::default());
        loader.load_path(&path);
        let report = loader.finish();
        assert!(!report.has_errors(), "{}", rendered(&report));
        assert_eq!(report.rules.len(), 1);
        assert_eq!(report.rules[0].source.file, path.display().to_string());
    }
}

#[test]
fn empty_documents_are_ignored_but_a_null_document_is_not() {
    let one = doc("  sel:\n    eventName: StopLogging\n  condition: sel\n");
    for text in [
        format!("{one}---\n"),
        format!("---\n{one}---\n---\n"),
        format!("{one}---\n# only a comment\n"),
    ] {
        let report = load(&text);
        assert!(!report.has_errors(), "{text}\n{}", rendered(&report));
        assert_eq!(report.rules.len(), 1, "{text}");
    }
    let report = load(&format!("{one}---\nnull\n"));
    error_with(&report, "a rule must be a YAML mapping, found null");
    assert_eq!(report.rules.len(), 1);
}
