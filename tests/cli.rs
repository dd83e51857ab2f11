//! The `trailwatch` command end to end: exit codes, outputs, error messages.

mod common;
use common::*;

#[test]
fn builtin_rules_validate_and_their_tests_pass() {
    let o = run(&["rules", "validate"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&["rules", "test"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains(" passed, 0 failed"), "{}", stdout(&o));
}

#[test]
fn validate_reports_every_problem_with_position_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "bad.yml",
        "title: bad\nid: x1\ndetection:\n  sel:\n    eventName|contain: StopLogging\n  condition: sel and not filtr\n---\ntitle: also bad\nid: x2\ndetection:\n  sel:\n    sourceIPAddress|cidr: 10.0.0.0/33\n  condition: sel\n",
    );
    let o = run(&["rules", "validate", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    let file = f.display().to_string();
    assert!(
        err.contains(&format!("{file}:5:15: error: unknown modifier `contain`")),
        "{err}"
    );
    assert!(err.contains("did you mean `contains`?"), "{err}");
    assert!(
        err.contains(&format!(
            "{file}:6:26: error: condition refers to undefined selection `filtr`"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{file}:12:27: error: invalid CIDR")),
        "{err}"
    );
    // The snippet with a caret under the problem.
    assert!(
        err.contains("5 |     eventName|contain: StopLogging\n  |               ^"),
        "{err}"
    );
}

#[test]
fn failing_rule_test_exits_1_and_explains() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "r.yml",
        r#"title: stop
id: t1
detection:
  selection:
    eventSource: cloudtrail.amazonaws.com
    eventName: StopLogging
  condition: selection
tests:
  - name: wrong name
    event: {eventSource: cloudtrail.amazonaws.com, eventName: DeleteTrail}
    expect: match
  - name: right
    event: {eventSource: cloudtrail.amazonaws.com, eventName: stoplogging}
    expect: match
"#,
    );
    let o = run(&["rules", "test", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("FAIL  stop › wrong name"), "{out}");
    assert!(
        out.contains("no match eventName: event has \"DeleteTrail\""),
        "{out}"
    );
    assert!(out.contains("1 passed, 1 failed"), "{out}");
}

#[test]
fn event_file_is_relative_to_the_rule_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("events")).unwrap();
    write(
        &dir.path().join("events"),
        "e.json",
        r#"{"Records":[{"eventName":"StopLogging","eventSource":"cloudtrail.amazonaws.com"}]}"#,
    );
    let f = write(
        dir.path(),
        "r.yml",
        "title: t\nid: t2\ndetection:\n  s: {eventName: StopLogging}\n  condition: s\ntests:\n  - name: from file\n    event_file: events/e.json\n    expect: match\n  - name: missing file\n    event_file: events/nope.json\n    expect: match\n",
    );
    let o = run(&["rules", "test", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("1 passed, 1 failed"), "{out}");
    assert!(out.contains("cannot read"), "{out}");
}

#[test]
fn list_json_includes_builtin_rules() {
    let o = run(&["rules", "list", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let items = v.as_array().unwrap();
    assert!(items.len() >= 5);
    assert!(items.iter().all(|r| r["id"].is_string()
        && r["level"].is_string()
        && r["file"].as_str().unwrap().starts_with("builtin:rules/")));
}

#[test]
fn sigmahq_rules_all_validate() {
    let o = run(&["rules", "validate", "fixtures/sigmahq"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("57 rules valid"), "{}", stdout(&o));
}

#[test]
fn broken_rule_stops_backtest_unless_skip_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    write(
        &rules,
        "good.yml",
        "title: stop\nid: g1\nlevel: high\ndetection:\n  s: {eventName: StopLogging}\n  condition: s\n",
    );
    write(
        &rules,
        "bad.yml",
        "title: bad\nid: b1\ndetection:\n  s: {eventName|nope: x}\n  condition: s\n",
    );
    let events = write(
        dir.path(),
        "ev.json",
        r#"[{"eventName":"StopLogging","eventID":"e1"}]"#,
    );
    let (r, e) = (rules.to_str().unwrap(), events.to_str().unwrap());
    let o = run(&["backtest", "--rules", r, e]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--skip-invalid"), "{}", stderr(&o));
    let o = run(&[
        "backtest",
        "--rules",
        r,
        "--skip-invalid",
        "--format",
        "jsonl",
        e,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 1);
    let o = run(&[
        "backtest",
        "--rules",
        r,
        "--fail-on",
        "high",
        "--skip-invalid",
        e,
    ]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn backtest_samples_finds_real_attacks_and_skips_non_cloudtrail() {
    let o = run(&["backtest", "--format", "json", "fixtures/samples"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let findings = v["findings"].as_array().unwrap();
    let titles = rule_titles(&v["findings"]);
    for want in [
        "Root account used",
        "CloudTrail logging stopped or trail deleted",
        "Console sign-in without MFA",
    ] {
        assert!(titles.contains(&want), "missing {want}: {titles:?}");
    }
    let s = &v["summary"];
    assert_eq!(s["records"], 3329);
    assert_eq!(s["malformed_records"], 0);
    assert!(
        s["files_skipped"].as_u64().unwrap() >= 1,
        "README is skipped"
    );
    // Ids are unique and stable across runs.
    let ids: std::collections::BTreeSet<&str> =
        findings.iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), findings.len());
    let again: serde_json::Value = serde_json::from_str(&stdout(&run(&[
        "backtest",
        "--format",
        "json",
        "fixtures/samples",
    ])))
    .unwrap();
    assert_eq!(again["findings"], v["findings"]);
}

#[test]
fn backtest_reports_corrupt_inputs_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.json",
        r#"{"Records":[{"eventName":"StopLogging","eventSource":"cloudtrail.amazonaws.com","eventID":"1"}]}"#,
    );
    std::fs::write(dir.path().join("b.json.gz"), [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
    write(dir.path(), "c.json", "{\"eventName\": \"x\"}\n{not json}\n");
    write(dir.path(), "d.json", r#"{"Records":[{"eventName": "x"}, "#);
    let o = run(&[
        "backtest",
        "--rules",
        "fixtures/sigmahq",
        "--format",
        "json",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("b.json.gz: corrupt gzip data"), "{err}");
    assert!(err.contains("c.json: line 2:"), "{err}");
    assert!(err.contains("d.json: malformed JSON at line 1"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["summary"]["records"], 3);
    assert_eq!(v["summary"]["malformed_records"], 1);
}

#[test]
fn backtest_redacts_secrets_in_findings() {
    let dir = tempfile::tempdir().unwrap();
    let rule = write(
        dir.path(),
        "r.yml",
        "title: t\nid: r1\ndetection:\n  s: {eventName: GetSessionToken}\n  condition: s\n",
    );
    let ev = write(
        dir.path(),
        "e.json",
        r#"{"eventName":"GetSessionToken","eventID":"1","responseElements":{"credentials":{"accessKeyId":"ASIAEXAMPLE","sessionToken":"IQoJb3JpZ2luX2VjEXAMPLETOKEN","expiration":"x"}}}"#,
    );
    let o = run(&[
        "backtest",
        "--rules",
        rule.to_str().unwrap(),
        "--format",
        "jsonl",
        ev.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(!out.contains("IQoJb3JpZ2luX2VjEXAMPLETOKEN"), "{out}");
    assert!(out.contains("\"sessionToken\":\"[REDACTED]\""), "{out}");
    assert!(out.contains("ASIAEXAMPLE"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["backtest"]).status.code(), Some(2));
    assert_eq!(run(&["nonsense"]).status.code(), Some(2));
    assert_eq!(
        run(&["backtest", "--fail-on", "severe", "x"]).status.code(),
        Some(2)
    );
    assert_eq!(run(&["backtest", "/does/not/exist"]).status.code(), Some(2));
    assert_eq!(run(&["--help"]).status.code(), Some(0));
}

#[test]
fn tuning_disable_min_level_and_exceptions() {
    let dir = tempfile::tempdir().unwrap();
    // Root use (high) and CloudTrail stopped (critical) on the bundled samples.
    let base = ["backtest", "--format", "json", "fixtures/samples"];
    let count = |extra: &[&str]| -> (u64, serde_json::Value) {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        let o = run(&args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        (v["summary"]["findings"].as_u64().unwrap(), v)
    };
    let (all, _) = count(&[]);
    let (critical_only, v) = count(&["--min-level", "critical"]);
    assert!(critical_only > 0 && critical_only < all);
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["rule"]["level"] == "critical")
    );
    let root = "feafee89-21d6-4592-9c50-592c837ca3cd";
    let (without_root, v) = count(&["--disable", root]);
    assert!(without_root < all);
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["rule"]["id"] != root)
    );
    let exc = write(
        dir.path(),
        "exceptions.yml",
        "all:\n  principals: [\"arn:aws:iam::493859302102:root\"]\n",
    );
    let (excepted, v) = count(&["--exceptions", exc.to_str().unwrap()]);
    assert!(excepted < all);
    assert!(v["summary"]["excepted_findings"].as_u64().unwrap() > 0);
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["principal"] != "arn:aws:iam::493859302102:root")
    );
    // Typos are errors, not silently ignored.
    let o = run(&["backtest", "--disable", "no-such-rule", "fixtures/samples"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no-such-rule"));
    let bad = write(dir.path(), "bad.yml", "all:\n  principal: [x]\n");
    let o = run(&[
        "backtest",
        "--exceptions",
        bad.to_str().unwrap(),
        "fixtures/samples",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown field `principal`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn rule_tests_can_assert_the_alert_stream() {
    let dir = tempfile::tempdir().unwrap();
    let ev = |id: &str, t: &str| {
        format!(
            r#"{{"eventID": "{id}", "eventTime": "{t}", "eventName": "StopLogging", "eventSource": "cloudtrail.amazonaws.com", "userIdentity": {{"arn": "arn:aws:iam::1:user/alice"}}}}"#
        )
    };
    let rule = format!(
        "title: t\nid: t-alerts\nlevel: high\ndetection:\n  s: {{eventName: StopLogging}}\n  condition: s\ntests:\n  - name: right\n    events: [{}, {}]\n    expect: {{alerts: [new, close]}}\n  - name: wrong\n    events: [{}, {}]\n    expect: {{alerts: [new]}}\n",
        ev("a", "2024-01-01T00:00:00Z"),
        ev("b", "2024-01-01T00:01:00Z"),
        ev("a", "2024-01-01T00:00:00Z"),
        ev("b", "2024-01-01T00:01:00Z"),
    );
    let f = write(dir.path(), "r.yml", rule);
    let o = run(&["rules", "test", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("1 passed, 1 failed"), "{out}");
    assert!(
        out.contains("expected alerts [new], got [new, close]"),
        "{out}"
    );
    // Unknown alert kinds, or alerts without `events`, are rule errors.
    let bad = write(
        dir.path(),
        "bad.yml",
        "title: t\nid: t-bad\ndetection:\n  s: {eventName: X}\n  condition: s\ntests:\n  - name: kinds\n    events: [{eventName: X}]\n    expect: {alerts: [new, boom]}\n  - name: single\n    event: {eventName: X}\n    expect: {alerts: [new]}\n",
    );
    let o = run(&["rules", "validate", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        err.contains("`alerts` must be a list of `new`, `update` and `close`"),
        "{err}"
    );
    assert!(err.contains("`{alerts: [...]}` needs `events`"), "{err}");
}

/// Runs `trailwatch args` with standard output a pipe whose reader has already gone, as
/// `… | head` leaves it once `head` has what it wants.
fn run_into_closed_pipe(args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    bin()
        .args(args)
        .current_dir(root())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run trailwatch")
}

#[test]
fn a_closed_pipe_ends_the_output_quietly_with_the_status_earned() {
    for args in [
        &["rules", "test", "-v"][..],
        &["rules", "list"],
        &["rules", "list", "--format", "json"],
        &["rules", "validate"],
        &["backtest", "fixtures/samples/"],
        &["backtest", "--format", "json", "fixtures/samples/"],
    ] {
        let o = run_into_closed_pipe(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
        assert!(
            !err.contains("error") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
    // A check that failed still fails: the closed pipe does not hide it.
    let o = run_into_closed_pipe(&["backtest", "--fail-on", "low", "fixtures/samples/"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("reached --fail-on low") && !err.contains("error"),
        "{err}"
    );
}

#[test]
fn a_full_disk_stops_the_findings_with_one_clear_error() {
    // /dev/full refuses every write (ENOSPC): the run reports it once, as an error naming
    // what could not be written, and exits 2 without piling up what it could not write.
    if !std::path::Path::new("/dev/full").exists() {
        panic!("this test needs /dev/full (Linux)");
    }
    for format in ["jsonl", "json", "text", "alerts"] {
        let o = run(&[
            "backtest",
            "--format",
            format,
            "--output",
            "/dev/full",
            "fixtures/samples/",
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{format}: {err}");
        assert!(err.contains("cannot write findings"), "{format}: {err}");
        assert!(!err.contains("panicked"), "{format}: {err}");
    }
}

#[test]
fn the_builtin_set_is_counted_and_described_one_way() {
    let list = run(&["rules", "list"]);
    assert_eq!(list.status.code(), Some(0), "{}", stderr(&list));
    let list = stdout(&list);
    let lines: Vec<&str> = list.lines().collect();
    let (counts, items) = lines.split_last().unwrap();
    // `N rules, 1 correlation, 1 baseline document`: singular where it is one.
    let kinds: Vec<(usize, &str)> = counts
        .split(", ")
        .map(|part| {
            let (n, what) = part.split_once(' ').unwrap();
            (n.parse().unwrap(), what)
        })
        .collect();
    assert_eq!(
        kinds.iter().map(|k| k.1).collect::<Vec<_>>(),
        ["rules", "correlation", "baseline document"],
        "{counts}"
    );
    assert_eq!(kinds[1].0, 1);
    assert_eq!(kinds[2].0, 1);
    // The count is what is listed.
    assert_eq!(kinds.iter().map(|k| k.0).sum::<usize>(), items.len());
    let correlations = items.iter().filter(|l| l.contains(" correlation]")).count();
    assert_eq!(correlations, kinds[1].0);
    // `rules validate` describes the same set with the same words.
    let validate = run(&["rules", "validate"]);
    let out = stdout(&validate);
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("{counts} valid in "))),
        "{out}\nvs\n{counts}"
    );
}

#[test]
fn levels_are_spelled_one_way_in_text_and_counts_agree_in_number() {
    let dir = tempfile::tempdir().unwrap();
    let rule = write(
        dir.path(),
        "info.yml",
        "title: Buckets listed\nid: t-info\nlevel: informational\nlogsource:\n  product: aws\n  service: cloudtrail\ndetection:\n  sel:\n    eventName: ListBuckets\n  condition: sel\n",
    );
    let input = write(
        dir.path(),
        "in.json",
        r#"{"Records":[{"eventVersion":"1.08","eventTime":"2024-05-01T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"ListBuckets","eventID":"e1","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/alice"}}]}"#,
    );
    let o = run(&[
        "backtest",
        "--rules",
        rule.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("INFO     2024-05-01T10:00:00Z  Buckets listed"),
        "{out}"
    );
    assert!(out.contains("  INFO      Buckets listed (t-info)"), "{out}");
    assert!(
        !out.contains("INFORMATIONAL") && !out.contains("informational"),
        "{out}"
    );
    assert!(out.contains("1 finding from 1 event in 1 file,"), "{out}");
    let list = run(&["rules", "list", rule.to_str().unwrap()]);
    let list = stdout(&list);
    assert!(
        list.contains("t-info  ") && list.contains("  INFO      Buckets listed"),
        "{list}"
    );
    assert!(list.ends_with("\n1 rule\n"), "{list}");
    let validate = run(&["rules", "validate", rule.to_str().unwrap()]);
    assert!(
        stdout(&validate)
            .starts_with("1 rule valid in 1 file; 0 errors, 0 warnings, 0 documents skipped"),
        "{}",
        stdout(&validate)
    );
}

/// Strips terminal control sequences (`ESC [ … letter`) from `s`.
fn strip_csi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Findings printed on the terminal the progress bar is drawn on: each finding line stands
/// alone (the bar is cleared first and drawn again after), and the rate reads `N files/s`.
/// Runs the binary on a pseudo-terminal through `script` (util-linux).
#[test]
fn progress_bar_and_findings_share_a_terminal_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let rule = write(
        dir.path(),
        "rule.yml",
        "title: CloudTrail stopped\nid: tw-stop\nlevel: high\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  sel: {eventName: StopLogging}\n  condition: sel\n",
    );
    // 400 files, one finding each, two hours apart: findings leave the re-order buffer while
    // the bar is being drawn (and, written in blocks, would land in the middle of it).
    let input = dir.path().join("in");
    let start = 1_688_976_000i64;
    for i in 0..400i64 {
        let t = chrono::DateTime::from_timestamp(start + i * 7200, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ");
        write(
            &input,
            &format!("f{i:04}.json"),
            format!(
                r#"{{"Records":[{{"eventVersion":"1.08","eventTime":"{t}","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","eventID":"e{i}","awsRegion":"us-east-1","recipientAccountId":"111122223333","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/alice"}}}}]}}"#
            ),
        );
    }
    let cmd = format!(
        "{} backtest --threads 1 --rules {} {}",
        env!("CARGO_BIN_EXE_trailwatch"),
        rule.display(),
        input.display()
    );
    let o = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("`script` (util-linux) runs the binary on a pseudo-terminal");
    assert!(o.status.success(), "{}", stderr(&o));
    let screen = String::from_utf8_lossy(&o.stdout);
    assert!(
        screen.contains(" files/s  ETA"),
        "the bar was drawn: {screen}"
    );
    assert!(!screen.contains("/s files/s"), "{screen}");
    let mut findings = 0;
    for raw in screen.split('\n') {
        // What stays on the screen of this line: the text after the last carriage return.
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let shown = strip_csi(raw.rsplit('\r').next().unwrap_or(raw));
        if shown.contains("CloudTrail stopped:") {
            findings += 1;
            assert!(
                shown.starts_with("HIGH     2023-") && shown.ends_with(']'),
                "a finding mixed with the bar: {shown:?}\nraw: {raw:?}"
            );
        }
    }
    assert_eq!(findings, 400, "{screen}");
}

/// Runs `trailwatch args` (no AWS reachable), killed if still running after `limit`.
fn run_within(args: &[&str], limit: std::time::Duration) -> std::process::Output {
    use std::process::Stdio;
    let mut child = bin()
        .args(args)
        .current_dir(root())
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            let o = child.wait_with_output().unwrap();
            panic!("{args:?} still running after {limit:?}: {}", stderr(&o));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Mode bits of `p`.
fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn state_directory_is_owner_only_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cmd = format!(
        "umask 000; exec {} baseline build --state-dir {} fixtures/samples/stratus-red-team",
        env!("CARGO_BIN_EXE_trailwatch"),
        state.display()
    );
    let o = std::process::Command::new("sh")
        .args(["-c", &cmd])
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(mode(&state), 0o700);
    let files: Vec<_> = std::fs::read_dir(&state).unwrap().flatten().collect();
    assert!(!files.is_empty());
    for f in files {
        assert_eq!(mode(&f.path()), 0o600, "{}", f.path().display());
    }
}

#[test]
fn a_state_directory_others_can_write_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let want = format!(
        "error: state directory {0} can be written by other users (mode 0777): they could \
         forge the checkpoint or the outbox; trailwatch refuses it, as ssh refuses such keys. \
         Make it yours alone: chmod 700 {0}",
        state.display()
    );
    // `run` refuses it before it talks to AWS; `baseline build` and `backtest` too.
    let s = state.to_str().unwrap();
    for args in [
        &[
            "run",
            "--dry-run",
            "--once",
            "--log-group",
            "g",
            "--state-dir",
            s,
        ][..],
        &[
            "baseline",
            "build",
            "--state-dir",
            s,
            "fixtures/samples/stratus-red-team",
        ],
        &[
            "backtest",
            "--state-dir",
            s,
            "fixtures/samples/stratus-red-team",
        ],
    ] {
        let o = run_within(args, std::time::Duration::from_secs(30));
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(&want), "{args:?}: {}", stderr(&o));
    }
    assert_eq!(mode(&state), 0o777, "left as it was");
    assert_eq!(
        std::fs::read_dir(&state).unwrap().count(),
        0,
        "nothing written"
    );
}
