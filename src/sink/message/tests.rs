//! Subjects, e-mails, digests and the size budget on hand-made findings and alerts.

use super::*;

fn finding() -> Value {
    json!({
        "id": "0123456789abcdef0123456789abcdef",
        "incident": "0123456789abcdef0123456789abcdef",
        "kind": "match",
        "rule": {"id": "r1", "title": "CloudTrail logging stopped", "level": "high", "tags": []},
        "time": "2026-11-21T10:00:00Z",
        "principal": "arn:aws:iam::123456789012:user/alice",
        "account": "123456789012",
        "region": "us-east-1",
        "event_ids": ["3b8f1c5e-2a59-4c1d-9f10-0a1b2c3d4e5f"],
        "event_count": 1,
        "summary": "alice called StopLogging (cloudtrail.amazonaws.com) in us-east-1.",
        "details": {},
        "event": {
            "eventName": "StopLogging", "eventSource": "cloudtrail.amazonaws.com",
            "eventID": "3b8f1c5e-2a59-4c1d-9f10-0a1b2c3d4e5f", "awsRegion": "us-east-1",
            "sourceIPAddress": "198.51.100.7",
            "userAgent": "evil\u{1b}[31mRED\u{1b}[0m\u{7}agent\r\nX-Injected: yes",
            "userIdentity": {"type": "IAMUser", "accessKeyId": "AKIAEXAMPLE"},
            "requestParameters": {"name": "trail"}
        }
    })
}

fn member(id: &str, level: &str, title: &str, events: &[&str]) -> Value {
    json!({"id": id, "rule": {"id": format!("rule-{id}"), "title": title}, "level": level,
        "kind": "match", "time": "2026-11-21T10:05:00Z", "event_ids": events, "summary": "s"})
}

fn anomaly(phase: &str) -> Value {
    let mut a = finding();
    a["kind"] = json!("anomaly");
    a["rule"]["title"] = json!("Unusual API write volume");
    a.as_object_mut().unwrap().remove("event");
    a["details"] = json!({
        "phase": phase, "metric": "write_volume", "series": "arn:aws:iam::1:user/alice",
        "window_minutes": 5, "started_at": "2026-11-21T09:55:00Z",
        "observed": {"average_per_minute": 14.0, "in_window": 70},
        "baseline": {"average_per_minute": 0.1333, "days_of_history": 6,
            "expected_in_window": 0.66, "hour_of_day": 9, "usual_names": []},
        "statistic": {"p_value": 1e-30, "threshold": 1e-5, "min_calls": 20, "min_ratio": 4.0,
            "ratio": 106.0, "test": "poisson_upper_tail"},
        "attributions": {"event_names": [{"value": "RunInstances", "count": 38},
            {"value": "CreateTags", "count": 4}],
            "user_agents": [{"value": "evil\u{1b}[0m", "count": 42}],
            "error_codes": [], "regions": [], "sessions": [], "source_ips": []}});
    a
}

#[test]
fn subject_reads_like_the_issue() {
    assert_eq!(
        subject(&finding()),
        "[HIGH] CloudTrail logging stopped by alice (123456789012/us-east-1)"
    );
}

#[test]
fn long_subjects_shorten_the_place_and_title_never_the_principal() {
    let mut f = finding();
    f["rule"]["title"] =
        json!("CloudTrail logging stopped or trail deleted on the organisation trail");
    f["principal"] = json!("arn:aws:iam::143434273843:user/christophe.tafani-dereeper");
    let s = subject(&f);
    assert!(s.chars().count() <= MAX_SUBJECT_CHARS, "{s}");
    assert!(s.contains("by christophe.tafani-dereeper"), "{s}");
    assert!(s.starts_with("[HIGH] CloudTrail logging stopped"), "{s}");
    // An alert's update says how many more events came; its level is the incident's.
    let mut a = finding();
    a["alert"] = json!("update");
    a["level"] = json!("critical");
    a["findings"] = json!([
        member("a", "high", "t", &["e1"]),
        member("b", "low", "t", &["e1"]),
        member("c", "high", "t", &["e2"])
    ]);
    assert_eq!(
        subject(&a),
        "[CRITICAL] Update: +2 events — CloudTrail logging stopped by alice (123456789012/us-east-1)"
    );
    a["alert"] = json!("close");
    assert!(subject(&a).starts_with("[CRITICAL] Closed: CloudTrail logging stopped"));
}

#[test]
fn an_alerts_email_says_what_the_incident_holds() {
    let mut a = finding();
    a["alert"] = json!("update");
    a["incident"] = json!("93ee63f4");
    a["first_seen"] = json!("2026-11-21T10:00:00Z");
    a["last_seen"] = json!("2026-11-21T10:05:00Z");
    a["finding_count"] = json!(4);
    a["event_count"] = json!(2);
    a["findings"] = json!([
        member("a", "high", "CloudTrail logging stopped", &["e2"]),
        member(
            "b",
            "low",
            "CIS 4.5 - CloudTrail configuration changed",
            &["e2"]
        )
    ]);
    a["involved"] = json!({
        "calls": [{"value": "StopLogging", "count": 3}, {"value": "DeleteTrail", "count": 1}],
        "source_ips": [{"value": "198.51.100.7", "count": 4}],
        "user_agents": [{"value": "aws-cli/2.15", "count": 4}],
        "targets": [{"value": "trail main", "count": 4}]});
    let (_, msg) = single(&a, &EmailContext::default());
    let v: Value = serde_json::from_str(&msg).unwrap();
    let email = v["email"].as_str().unwrap();
    for needle in [
        "Incident",
        "This is an update of an open incident: 4 findings from 2 events, first seen 2026-11-21T10:00:00Z, last seen 2026-11-21T10:05:00Z.",
        "New since the last alert:",
        "[HIGH] CloudTrail logging stopped (2026-11-21T10:05:00Z)",
        "[LOW] CIS 4.5 - CloudTrail configuration changed",
        "incident 93ee63f4",
        "Involved",
        "calls: StopLogging 3, DeleteTrail 1",
        "source IPs: 198.51.100.7 4",
        "user agents: aws-cli/2.15 4",
        "Acted on\n  trail main (4 events)",
    ] {
        assert!(email.contains(needle), "missing {needle:?} in\n{email}");
    }
    // A plain finding's e-mail has no incident section.
    let (_, msg) = single(&finding(), &EmailContext::default());
    assert!(!msg.contains("This is a"), "{msg}");
}

#[test]
fn subject_is_short_and_clean_whatever_the_input() {
    let mut f = finding();
    f["rule"]["title"] = json!("A\ttitle\nwith\u{1b}[2Jcontrols ".repeat(20));
    f["principal"] = json!("arn:aws:sts::1:assumed-role/r/".to_string() + &"s".repeat(300));
    let s = subject(&f);
    assert!(s.chars().count() <= MAX_SUBJECT_CHARS, "{s}");
    assert!(!s.chars().any(char::is_control), "{s:?}");
    assert!(s.starts_with("[HIGH] A title with"));
}

#[test]
fn clean_strips_escapes_and_controls() {
    assert_eq!(clean("a\u{1b}[31mred\u{1b}[0m b", 100), "ared b");
    assert_eq!(
        clean("x\u{1b}]8;;http://e\u{7}link\u{1b}]8;;\u{7}y", 100),
        "xlinky"
    );
    assert_eq!(clean("line1\r\nline2\u{202e}evil", 100), "line1 line2 evil");
    assert_eq!(clean("abcdef", 3), "abc…");
    assert_eq!(clean("\u{9b}31mz", 10), "z");
}

#[test]
fn email_has_the_essentials_and_no_raw_controls() {
    let (_, msg) = single(
        &finding(),
        &EmailContext {
            description: Some("Stopping logging blinds you.\nCheck first: who.".into()),
            falsepositives: vec!["Planned maintenance".into()],
            references: vec![],
            fired: vec![],
        },
    );
    let v: Value = serde_json::from_str(&msg).unwrap();
    let obj = v.as_object().unwrap();
    assert_eq!(obj.len(), 2, "exactly default and email: {obj:?}");
    let email = v["email"].as_str().unwrap();
    for needle in [
        "HIGH: CloudTrail logging stopped",
        "What happened",
        "arn:aws:iam::123456789012:user/alice",
        "source IP: 198.51.100.7",
        "account 123456789012, region us-east-1",
        "2026-11-21T10:00:00Z",
        "Stopping logging blinds you.",
        "Planned maintenance",
        "eventName: StopLogging",
        "https://us-east-1.console.aws.amazon.com/cloudtrailv2/home?region=us-east-1#/events/3b8f1c5e-2a59-4c1d-9f10-0a1b2c3d4e5f",
    ] {
        assert!(email.contains(needle), "missing {needle:?} in\n{email}");
    }
    assert!(
        email.contains("user agent: evilRED agent X-Injected: yes"),
        "{email}"
    );
    assert!(!email.contains('\u{1b}') && !email.contains('\r') && !email.contains('\u{7}'));
    let default: Value = serde_json::from_str(v["default"].as_str().unwrap()).unwrap();
    assert_eq!(default["id"], finding()["id"]);
}

#[test]
fn correlation_and_anomaly_emails_explain_the_pattern() {
    let mut c = finding();
    c["kind"] = json!("correlation");
    c.as_object_mut().unwrap().remove("event");
    c["details"] = json!({
        "correlation": {"type": "event_count", "timespan": "5m", "count": 30,
            "condition": {"gte": 30}, "rules": ["r"], "translated_from": null,
            "group": {"userIdentity.arn": "arn:aws:sts::1:assumed-role/r/s"}},
        "window": {"start": "2026-11-21T09:59:00Z", "end": "2026-11-21T10:00:00Z"},
        "rule_file": "builtin:c.yml"});
    let (_, msg) = single(&c, &EmailContext::default());
    let v: Value = serde_json::from_str(&msg).unwrap();
    let email = v["email"].as_str().unwrap();
    for needle in [
        "correlation: event_count within 5m",
        "count: 30",
        "userIdentity.arn: arn:aws:sts::1:assumed-role/r/s",
        "window: 2026-11-21T09:59:00Z to 2026-11-21T10:00:00Z",
    ] {
        assert!(email.contains(needle), "missing {needle:?} in\n{email}");
    }
    let a = anomaly("start");
    let (_, msg) = single(&a, &EmailContext::default());
    let v: Value = serde_json::from_str(&msg).unwrap();
    let email = v["email"].as_str().unwrap();
    for needle in [
        "phase: start (write_volume)",
        "observed: 14.0 per minute",
        "usual at this hour: 0.13 per minute (6 days of history)",
        "calls: RunInstances 38, CreateTags 4",
        "user agents: evil 42",
    ] {
        assert!(email.contains(needle), "missing {needle:?} in\n{email}");
    }
}

#[test]
fn links_only_from_well_formed_ids() {
    assert!(console_link("3b8f1c5e-2a59-4c1d-9f10-0a1b2c3d4e5f", "eu-west-1").is_some());
    assert!(console_link("http://evil.example/x", "us-east-1").is_none());
    assert!(console_link("3b8f1c5e-2a59-4c1d-9f10-0a1b2c3d4e5f", "x.evil.com/").is_none());
}

#[test]
fn oversized_event_is_cut_not_the_essentials() {
    let mut f = finding();
    f["event"]["requestParameters"] = json!({"blob": "x".repeat(600_000)});
    let (_, msg) = single(&f, &EmailContext::default());
    assert!(msg.len() <= MESSAGE_BUDGET, "{}", msg.len());
    let v: Value = serde_json::from_str(&msg).unwrap();
    let default: Value = serde_json::from_str(v["default"].as_str().unwrap()).unwrap();
    assert_eq!(default["event_truncated"], json!(true));
    assert_eq!(default["summary"], f["summary"]);
    assert!(v["email"].as_str().unwrap().contains("What happened"));
}

#[test]
fn digest_body_is_the_documented_json() {
    let fs: Vec<Value> = (0..250)
        .map(|i| {
            let mut f = finding();
            f["id"] = json!(format!("{i:032x}"));
            if i == 7 {
                f["rule"]["level"] = json!("critical");
            }
            f
        })
        .collect();
    let refs: Vec<&Value> = fs.iter().collect();
    let ds = digests(&refs);
    assert_eq!(ds.len(), 3);
    let (s, m) = &ds[0];
    // The worst first, named in the subject.
    assert_eq!(
        s,
        "[CRITICAL] CloudTrail logging stopped by alice, +99 more (digest)"
    );
    let v: Value = serde_json::from_str(m).unwrap();
    let d: Value = serde_json::from_str(v["default"].as_str().unwrap()).unwrap();
    assert_eq!(d["kind"], "digest");
    assert_eq!(d["count"], 100);
    let first = &d["findings"][0];
    assert_eq!(first["level"], "critical");
    assert_eq!(first["id"], json!(format!("{:032x}", 7)));
    for k in ["id", "rule", "level", "principal", "summary"] {
        assert!(first.get(k).is_some(), "{k}");
    }
    let total: u64 = ds
        .iter()
        .map(|(_, m)| {
            let v: Value = serde_json::from_str(m).unwrap();
            let d: Value = serde_json::from_str(v["default"].as_str().unwrap()).unwrap();
            d["count"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(total, 250);
}

#[test]
fn short_principals() {
    assert_eq!(short_principal("arn:aws:iam::1:user/alice"), "alice");
    assert_eq!(short_principal("arn:aws:iam::1:root"), "root");
    assert_eq!(
        short_principal("arn:aws:sts::1:assumed-role/deploy/i-0ab"),
        "deploy/i-0ab"
    );
    assert_eq!(
        short_principal("AWSService:ec2.amazonaws.com"),
        "AWSService:ec2.amazonaws.com"
    );
}

#[test]
fn anomaly_subjects_say_start_and_end() {
    let s = subject(&anomaly("start"));
    assert!(
        s.starts_with("[HIGH] Started: Unusual API write volume by alice"),
        "{s}"
    );
    let s = subject(&anomaly("end"));
    assert!(
        s.starts_with("[HIGH] Ended: Unusual API write volume by alice"),
        "{s}"
    );
}

#[test]
fn email_says_what_was_acted_on_why_it_fired_and_what_to_check() {
    let mut f = finding();
    f["event"]["eventSource"] = json!("iam.amazonaws.com");
    f["event"]["eventName"] = json!("AttachUserPolicy");
    f["event"]["requestParameters"] = json!({"userName": "bob",
        "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"});
    let ctx = EmailContext {
        description: Some("Admin rights granted.".into()),
        references: vec!["https://attack.mitre.org/techniques/T1098/".into()],
        fired: vec![(
            "requestParameters.policyArn".into(),
            "\"arn:aws:iam::aws:policy/AdministratorAccess\"".into(),
        )],
        ..EmailContext::default()
    };
    let (_, msg) = single(&f, &ctx);
    let v: Value = serde_json::from_str(&msg).unwrap();
    let email = v["email"].as_str().unwrap();
    for needle in [
        "Acted on\n  user bob\n  policy arn:aws:iam::aws:policy/AdministratorAccess",
        "Why it fired\n  requestParameters.policyArn: \"arn:aws:iam::aws:policy/AdministratorAccess\"",
        "What to check first\n  1. Was this alice?",
        "Check the current state of user bob",
        "References\n  - https://attack.mitre.org/techniques/T1098/",
    ] {
        assert!(email.contains(needle), "missing {needle:?} in\n{email}");
    }
}
