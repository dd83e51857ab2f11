//! Correlation rules (stateful detections) end to end, against the window semantics written
//! in `src/correlate/mod.rs`:
//!
//! - lower bounds only (`gt`, `gte`): a sliding window `(t - timespan, t]` ending at each
//!   event; fires once at the first event that satisfies the condition, then the group starts
//!   afresh;
//! - with an upper bound (`lt`, `lte`, `eq`, ranges): a window opens at a group's first event
//!   and is judged when it closes (`start + timespan` has passed the watermark, or at the end);
//! - `temporal` / `temporal_ordered`: fires at the event completing the set (in order);
//! - lateness, incidents keyed by `suppress:`, state snapshots, the key cap, chaining, `generate`, aliases, the
//!   translation of the deprecated `| count()` syntax, and the CLI (`backtest`, `rules test`).
//!
//! Events are hand-built (times relative to [`T0`]) and pushed one by one through
//! `Pipeline::feed` (both engine stages), in the given order, then `finish`; every finding is recorded with
//! the number of events pushed when it came out, so "fires at the 3rd event" is checkable.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use trailwatch::correlate::CorrelationStats;
use trailwatch::engine::{AlertKind, AlertSettings, Pipeline, Settings};
use trailwatch::event::Event;
use trailwatch::finding::{Finding, Kind};
use trailwatch::rules::correlation::Suppress;
use trailwatch::rules::exceptions::Exceptions;
use trailwatch::rules::{LoadOptions, LoadReport, Loader, RuleSet};
use trailwatch::util::time::{Millis, format_millis, parse_event_time};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const MIN: i64 = 60;
const HOUR: i64 = 3600;
/// The `step` of findings that came out of `finish` (end of input).
const AT_END: usize = usize::MAX;
/// Time origin of the hand-built events.
const T0: &str = "2024-05-01T10:00:00Z";

fn t0() -> Millis {
    parse_event_time(T0).unwrap()
}

/// The event time `secs` seconds after [`T0`], as CloudTrail writes it.
fn at(secs: i64) -> String {
    format_millis(t0() + secs * 1000)
}

fn arn(user: &str) -> String {
    format!("arn:aws:iam::111122223333:user/{user}")
}

/// A CloudTrail record: `user` called `name` at `secs` after [`T0`]. Its `eventID` is given
/// by [`run`] (`e0`, `e1`, … in list order) unless set.
fn ev(secs: i64, name: &str, user: &str) -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": format!("AIDA{}", user.to_uppercase()),
            "arn": arn(user),
            "accountId": "111122223333",
            "userName": user,
        },
        "eventTime": at(secs),
        "eventSource": "ec2.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": null,
        "responseElements": null,
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333",
    })
}

/// `v` with the (dotted) `path` set to `val`, creating objects on the way.
fn with(mut v: Value, path: &str, val: Value) -> Value {
    let mut cur = &mut v;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let obj = cur.as_object_mut().unwrap();
        if i + 1 == parts.len() {
            obj.insert((*p).to_string(), val);
            return v;
        }
        cur = obj.entry((*p).to_string()).or_insert_with(|| json!({}));
    }
    v
}

/// Gives every event without an `eventID` the id `e<position>`.
fn with_ids(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            if e.get("eventID").is_some() {
                e.clone()
            } else {
                with(e.clone(), "eventID", json!(format!("e{i}")))
            }
        })
        .collect()
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("e{i}")).collect()
}

/// Base rules shared by most tests (each referred to by `name` or `id`).
const BASE: &str = "\
title: GetPasswordData call
id: r-gpd
name: gpd
level: low
detection:
  s: {eventName: GetPasswordData}
  condition: s
---
title: Console login
id: r-login
name: login
level: low
detection:
  s: {eventName: ConsoleLogin}
  condition: s
---
title: Access key created
id: r-key
name: key
level: low
detection:
  s: {eventName: CreateAccessKey}
  condition: s
---
title: Reconnaissance call
id: r-recon
name: recon
level: low
detection:
  s:
    eventName|startswith: [List, Describe]
  condition: s
";

fn load(yaml: &str) -> LoadReport {
    let mut loader = Loader::new(LoadOptions::default());
    loader.load_source("test.yml", yaml, None);
    loader.finish()
}

/// Loads `yaml` (no errors allowed) into a rule set with every correlation kept.
fn rule_set(yaml: &str) -> RuleSet {
    let report = load(yaml);
    let errors: Vec<String> = report.errors().map(|d| report.render(d)).collect();
    assert!(errors.is_empty(), "rules do not load:\n{}", errors.join(""));
    let (set, dropped) = RuleSet::with_correlations(report.rules, report.correlations);
    assert!(dropped.is_empty(), "correlations dropped: {dropped:?}");
    set
}

/// What a run produced.
struct Run {
    /// Every finding, with the number of events pushed when it came out ([`AT_END`]: finish).
    out: Vec<(usize, Finding)>,
    stats: CorrelationStats,
    /// The most live group keys seen after any event.
    max_live_keys: usize,
}

impl Run {
    fn of(&self, id: &str) -> Vec<&Finding> {
        self.out
            .iter()
            .filter(|(_, f)| f.rule.id == id)
            .map(|(_, f)| f)
            .collect()
    }
    fn count(&self, id: &str) -> usize {
        self.of(id).len()
    }
    /// When each finding of rule `id` came out.
    fn steps(&self, id: &str) -> Vec<usize> {
        self.out
            .iter()
            .filter(|(_, f)| f.rule.id == id)
            .map(|(s, _)| *s)
            .collect()
    }
    fn only(&self, id: &str) -> &Finding {
        let v = self.of(id);
        assert_eq!(v.len(), 1, "expected one finding of {id}: {:#?}", self.out);
        v[0]
    }
    fn rule_ids(&self) -> Vec<&str> {
        self.out.iter().map(|(_, f)| f.rule.id.as_str()).collect()
    }
}

/// Pushes `texts` (records) through the two stages, recording findings with their step
/// (`offset` + position + 1).
fn feed(pipeline: &mut Pipeline<'_>, texts: &[String], offset: usize, run: &mut Run) {
    for (i, text) in texts.iter().enumerate() {
        let ev = Event::parse(text).unwrap();
        let mut ready = Vec::new();
        pipeline.feed(&ev, None, &mut ready);
        run.out
            .extend(ready.into_iter().map(|f| (offset + i + 1, f)));
        run.max_live_keys = run.max_live_keys.max(pipeline.live_keys());
    }
}

fn finish(pipeline: &mut Pipeline<'_>, run: &mut Run) {
    let mut rest = Vec::new();
    pipeline.finish(&mut rest);
    run.out.extend(rest.into_iter().map(|f| (AT_END, f)));
    run.stats = pipeline.stats().correlation;
}

fn texts(events: &[Value]) -> Vec<String> {
    with_ids(events).iter().map(Value::to_string).collect()
}

/// Loads `yaml` and runs `events` with `settings`, in the given order, then finishes.
fn run_with(yaml: &str, settings: &Settings, events: &[Value]) -> Run {
    let set = rule_set(yaml);
    let exceptions = Exceptions::default();
    let mut stateful = Pipeline::new(&set, &exceptions, settings);
    let mut run = Run {
        out: Vec::new(),
        stats: CorrelationStats::default(),
        max_live_keys: 0,
    };
    feed(&mut stateful, &texts(events), 0, &mut run);
    finish(&mut stateful, &mut run);
    run
}

fn run(yaml: &str, events: &[Value]) -> Run {
    run_with(yaml, &Settings::default(), events)
}

/// [`BASE`] plus one correlation `c` over `rules`.
fn corr(kind: &str, rules: &str, group_by: &str, timespan: &str, condition: &str) -> String {
    let condition = if condition.is_empty() {
        String::new()
    } else {
        format!("  condition: {condition}\n")
    };
    format!(
        "{BASE}---
title: Test correlation
id: c
level: high
correlation:
  type: {kind}
  rules: {rules}
  group-by: {group_by}
  timespan: {timespan}
{condition}"
    )
}

/// `event_count` of `gpd` by principal.
fn count_rule(condition: &str, timespan: &str) -> String {
    corr(
        "event_count",
        "[gpd]",
        "[userIdentity.arn]",
        timespan,
        condition,
    )
}

fn gpd(secs: i64, user: &str) -> Value {
    ev(secs, "GetPasswordData", user)
}

/// Events that feed no rule (they only move event time on).
fn noise(secs: i64) -> Value {
    ev(secs, "GetCallerIdentity", "nobody")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn trailwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ---------------------------------------------------------------------------------------------
// 1. event_count with lower bounds: sliding window (t - timespan, t]
// ---------------------------------------------------------------------------------------------

#[test]
fn event_count_fires_once_at_the_threshold_event() {
    let r = run(
        &count_rule("{gte: 3}", "5m"),
        &[gpd(0, "alice"), gpd(60, "alice"), gpd(120, "alice")],
    );
    // Only the correlation: its base rule is referenced with `generate: false`.
    assert_eq!(r.rule_ids(), ["c"]);
    assert_eq!(r.steps("c"), [3]);
    let f = r.only("c");
    assert_eq!(f.kind(), Kind::Correlation);
    assert_eq!(f.event_count, 3);
    assert_eq!(f.event_ids, ids(0..3));
    assert_eq!(f.principal, arn("alice"));
    assert_eq!(f.account.as_deref(), Some("111122223333"));
    assert_eq!(f.region.as_deref(), Some("us-east-1"));
    assert_eq!(f.time.as_deref(), Some(at(120).as_str()));
    let c = &f.details.to_json()["correlation"];
    assert_eq!(c["type"], "event_count");
    assert_eq!(c["count"], 3);
    assert_eq!(c["group"], json!({"userIdentity.arn": arn("alice")}));
    assert_eq!(c["rules"], json!(["r-gpd"]));
    assert_eq!(f.details.to_json()["window"]["start"], at(0));
    assert_eq!(f.details.to_json()["window"]["end"], at(120));
}

#[test]
fn event_count_one_short_does_not_fire() {
    let r = run(
        &count_rule("{gte: 3}", "5m"),
        &[gpd(0, "alice"), gpd(60, "alice")],
    );
    assert!(r.out.is_empty(), "{:#?}", r.out);
    // `gt: 2` is the same threshold.
    let r = run(
        &count_rule("{gt: 2}", "5m"),
        &[gpd(0, "alice"), gpd(60, "alice")],
    );
    assert!(r.out.is_empty(), "{:#?}", r.out);
    let r = run(
        &count_rule("{gt: 2}", "5m"),
        &[gpd(0, "alice"), gpd(60, "alice"), gpd(61, "alice")],
    );
    assert_eq!(r.steps("c"), [3]);
}

#[test]
fn event_count_spread_over_more_than_the_timespan_does_not_fire() {
    // 5m01s from first to last.
    let r = run(
        &count_rule("{gte: 3}", "5m"),
        &[
            gpd(0, "alice"),
            gpd(150, "alice"),
            gpd(5 * MIN + 1, "alice"),
        ],
    );
    assert_eq!(r.count("c"), 0);
    // Just inside: 4m59s.
    let r = run(
        &count_rule("{gte: 3}", "5m"),
        &[
            gpd(0, "alice"),
            gpd(150, "alice"),
            gpd(5 * MIN - 1, "alice"),
        ],
    );
    assert_eq!(r.steps("c"), [3]);
}

#[test]
fn event_count_window_excludes_its_start_exactly_one_timespan_back() {
    // The window ending at t is (t - 5m, t]: an event exactly 5m before the third is out.
    let r = run(
        &count_rule("{gte: 3}", "5m"),
        &[gpd(0, "alice"), gpd(150, "alice"), gpd(5 * MIN, "alice")],
    );
    assert_eq!(r.count("c"), 0);
    // ... and the window slides: a fourth event 1s later has (1s, 5m01s] = 2 events + itself.
    let r = run(
        &count_rule("{gte: 3}", "5m"),
        &[
            gpd(0, "alice"),
            gpd(150, "alice"),
            gpd(5 * MIN, "alice"),
            gpd(5 * MIN + 1, "alice"),
        ],
    );
    assert_eq!(r.steps("c"), [4]);
    assert_eq!(r.only("c").details.to_json()["window"]["start"], at(150));
}

#[test]
fn event_count_burst_fires_once_per_threshold_then_starts_afresh() {
    // 6 quick events, gte 3: the 3rd fires, the group starts afresh, the 6th fires again.
    let six: Vec<Value> = (0..6).map(|i| gpd(i * 5, "alice")).collect();
    let r = run(&count_rule("{gte: 3}", "5m"), &six);
    assert_eq!(r.steps("c"), [3, 6]);
    let f = r.of("c");
    assert_eq!(f[0].event_ids, ids(0..3));
    assert_eq!(f[1].event_ids, ids(3..6));
    assert_eq!(f[1].event_count, 3);
    assert_ne!(f[0].id, f[1].id);
    // A 7th and 8th do not reach the threshold again.
    let eight: Vec<Value> = (0..8).map(|i| gpd(i * 5, "alice")).collect();
    let r = run(&count_rule("{gte: 3}", "5m"), &eight);
    assert_eq!(r.steps("c"), [3, 6]);
}

#[test]
fn event_count_group_by_separates_principals() {
    let events = [
        gpd(0, "alice"),
        gpd(1, "bob"),
        gpd(2, "alice"),
        gpd(3, "bob"),
        gpd(4, "alice"),
        gpd(5, "bob"),
    ];
    let r = run(&count_rule("{gte: 3}", "5m"), &events);
    assert_eq!(r.steps("c"), [5, 6]);
    let f = r.of("c");
    assert_eq!(f[0].principal, arn("alice"));
    assert_eq!(f[0].event_ids, ["e0", "e2", "e4"]);
    assert_eq!(f[1].principal, arn("bob"));
    assert_eq!(f[1].event_ids, ["e1", "e3", "e5"]);
    // Two principals with two events each: nothing.
    let r = run(&count_rule("{gte: 3}", "5m"), &events[..4]);
    assert_eq!(r.count("c"), 0);
    // Without group-by, all events are one group.
    let yaml = corr("event_count", "[gpd]", "[]", "5m", "{gte: 3}");
    let r = run(&yaml, &events[..4]);
    assert_eq!(r.steps("c"), [3]);
    assert_eq!(
        r.only("c").details.to_json()["correlation"]["group"],
        json!({})
    );
}

fn assumed(secs: i64, role: &str, session: &str) -> Value {
    let e = gpd(secs, "x");
    with(
        e,
        "userIdentity",
        json!({
            "type": "AssumedRole",
            "arn": format!("arn:aws:sts::111122223333:assumed-role/{role}/{session}"),
            "sessionContext": {"sessionIssuer": {
                "type": "Role",
                "arn": format!("arn:aws:iam::111122223333:role/{role}"),
            }},
        }),
    )
}

#[test]
fn event_count_group_by_a_nested_path() {
    let yaml = corr(
        "event_count",
        "[gpd]",
        "[userIdentity.sessionContext.sessionIssuer.arn]",
        "5m",
        "{gte: 3}",
    );
    // Three sessions of one role count together.
    let r = run(
        &yaml,
        &[
            assumed(0, "ops", "s1"),
            assumed(10, "ops", "s2"),
            assumed(20, "ops", "s3"),
        ],
    );
    assert_eq!(r.steps("c"), [3]);
    assert_eq!(
        r.only("c").details.to_json()["correlation"]["group"],
        json!({"userIdentity.sessionContext.sessionIssuer.arn": "arn:aws:iam::111122223333:role/ops"})
    );
    // Sessions of different roles do not.
    let r = run(
        &yaml,
        &[
            assumed(0, "ops", "s1"),
            assumed(10, "dev", "s2"),
            assumed(20, "ops", "s3"),
        ],
    );
    assert_eq!(r.count("c"), 0);
}

#[test]
fn event_count_group_by_a_missing_field_groups_under_the_empty_value() {
    let yaml = corr(
        "event_count",
        "[gpd]",
        "[requestParameters.instanceId]",
        "5m",
        "{gte: 3}",
    );
    let inst = |secs: i64, id: &str| {
        with(
            gpd(secs, "alice"),
            "requestParameters",
            json!({"instanceId": id}),
        )
    };
    // Events without the field are one group (value ""), apart from those that have it.
    let r = run(
        &yaml,
        &[
            gpd(0, "alice"),
            inst(1, "i-1"),
            gpd(2, "bob"),
            inst(3, "i-1"),
            gpd(4, "carol"),
        ],
    );
    assert_eq!(r.steps("c"), [5]);
    let f = r.only("c");
    assert_eq!(f.event_ids, ["e0", "e2", "e4"]);
    assert_eq!(
        f.details.to_json()["correlation"]["group"],
        json!({"requestParameters.instanceId": ""})
    );
}

// ---------------------------------------------------------------------------------------------
// 2. event_count with upper bounds: judged when the window closes
// ---------------------------------------------------------------------------------------------

/// How many findings `condition` (timespan 5m) gives for `n` events of one principal in a
/// minute.
fn upper(condition: &str, n: i64) -> Vec<usize> {
    let events: Vec<Value> = (0..n).map(|i| gpd(i * 10, "alice")).collect();
    run(&count_rule(condition, "5m"), &events).steps("c")
}

#[test]
fn event_count_upper_bounds_are_judged_at_the_end_of_the_window() {
    let end = vec![AT_END];
    let none: Vec<usize> = Vec::new();
    // lt 3
    assert_eq!(upper("{lt: 3}", 1), end);
    assert_eq!(upper("{lt: 3}", 2), end);
    assert_eq!(upper("{lt: 3}", 3), none);
    // lte 3
    assert_eq!(upper("{lte: 3}", 3), end);
    assert_eq!(upper("{lte: 3}", 4), none);
    // eq 2
    assert_eq!(upper("{eq: 2}", 1), none);
    assert_eq!(upper("{eq: 2}", 2), end);
    assert_eq!(upper("{eq: 2}", 3), none);
    // a range
    for (n, want) in [(1, &none), (2, &end), (3, &end), (4, &none)] {
        assert_eq!(&upper("{gt: 1, lte: 3}", n), want, "{n} events");
    }
    let events: Vec<Value> = (0..2).map(|i| gpd(i * 10, "alice")).collect();
    let r = run(&count_rule("{eq: 2}", "5m"), &events);
    let f = r.only("c");
    assert_eq!(f.event_count, 2);
    assert_eq!(f.event_ids, ids(0..2));
    assert_eq!(f.details.to_json()["correlation"]["count"], 2);
    assert_eq!(f.details.to_json()["window"]["start"], at(0));
}

#[test]
fn event_count_upper_bound_window_closes_when_the_watermark_passes() {
    // Default lateness 15m: the window [0, 5m) closes when the newest event time is 20m.
    let yaml = count_rule("{eq: 2}", "5m");
    let r = run(&yaml, &[gpd(0, "alice"), gpd(60, "alice"), noise(20 * MIN)]);
    assert_eq!(r.steps("c"), [3]);
    let r = run(
        &yaml,
        &[gpd(0, "alice"), gpd(60, "alice"), noise(20 * MIN - 1)],
    );
    assert_eq!(r.steps("c"), [AT_END]);
    // With no allowed lateness, 5m later is enough.
    let settings = Settings {
        lateness: 0,
        ..Settings::default()
    };
    let r = run_with(
        &yaml,
        &settings,
        &[gpd(0, "alice"), gpd(60, "alice"), noise(5 * MIN)],
    );
    assert_eq!(r.steps("c"), [3]);
}

#[test]
fn event_count_upper_bound_fires_once_per_window() {
    // Window 1 [0, 5m) holds 2; the event at 6m opens window 2. Windows are judged when
    // event time has passed their end by the allowed lateness (15m): here, at the end.
    let r = run(
        &count_rule("{eq: 2}", "5m"),
        &[
            gpd(0, "alice"),
            gpd(60, "alice"),
            gpd(6 * MIN, "alice"),
            gpd(7 * MIN, "alice"),
        ],
    );
    assert_eq!(r.steps("c"), [AT_END, AT_END]);
    let f = r.of("c");
    assert_eq!(f[0].event_ids, ids(0..2));
    assert_eq!(f[1].event_ids, ids(2..4));
    // Three events in window 1, two in window 2: only window 2.
    let r = run(
        &count_rule("{eq: 2}", "5m"),
        &[
            gpd(0, "alice"),
            gpd(60, "alice"),
            gpd(120, "alice"),
            gpd(6 * MIN, "alice"),
            gpd(7 * MIN, "alice"),
        ],
    );
    assert_eq!(r.steps("c"), [AT_END]);
    assert_eq!(r.only("c").event_ids, ids(3..5));
    // Per principal.
    let r = run(
        &count_rule("{lt: 2}", "5m"),
        &[gpd(0, "alice"), gpd(1, "bob"), gpd(2, "bob")],
    );
    assert_eq!(r.steps("c"), [AT_END]);
    assert_eq!(r.only("c").principal, arn("alice"));
}

// ---------------------------------------------------------------------------------------------
// 3. value_count
// ---------------------------------------------------------------------------------------------

fn distinct_rule(condition: &str) -> String {
    corr(
        "value_count",
        "[recon]",
        "[userIdentity.arn]",
        "10m",
        condition,
    )
}

#[test]
fn value_count_counts_distinct_values_per_principal() {
    let yaml = distinct_rule("{field: eventName, gte: 3}");
    let r = run(
        &yaml,
        &[
            ev(0, "ListUsers", "alice"),
            ev(60, "ListRoles", "alice"),
            ev(120, "ListUsers", "alice"),
            ev(180, "ListRoles", "bob"),
            ev(240, "DescribeInstances", "alice"),
        ],
    );
    assert_eq!(r.steps("c"), [5]);
    let f = r.only("c");
    assert_eq!(f.principal, arn("alice"));
    assert_eq!(f.details.to_json()["correlation"]["type"], "value_count");
    assert_eq!(f.details.to_json()["correlation"]["count"], 3);
    // Four events of alice behind three distinct names.
    assert_eq!(f.event_count, 4);
    assert_eq!(f.event_ids, ["e0", "e1", "e2", "e4"]);
    // One name, many times: nothing.
    let same: Vec<Value> = (0..5).map(|i| ev(i * 10, "ListUsers", "alice")).collect();
    assert_eq!(run(&yaml, &same).count("c"), 0);
    // Two names each for two principals: nothing.
    let r = run(
        &yaml,
        &[
            ev(0, "ListUsers", "alice"),
            ev(1, "ListUsers", "bob"),
            ev(2, "ListRoles", "alice"),
            ev(3, "DescribeInstances", "bob"),
        ],
    );
    assert_eq!(r.count("c"), 0);
}

#[test]
fn value_count_window_slides() {
    let yaml = distinct_rule("{field: eventName, gte: 3}");
    // The first name is exactly 10m before the third: out of (t - 10m, t].
    let base = [
        ev(0, "ListUsers", "alice"),
        ev(6 * MIN, "ListRoles", "alice"),
        ev(10 * MIN, "DescribeInstances", "alice"),
    ];
    assert_eq!(run(&yaml, &base).count("c"), 0);
    // Seen again at 11m: three distinct within (1m, 11m].
    let mut more = base.to_vec();
    more.push(ev(11 * MIN, "ListUsers", "alice"));
    assert_eq!(run(&yaml, &more).steps("c"), [4]);
}

#[test]
fn value_count_with_an_upper_bound_is_judged_at_the_end() {
    // At most one distinct name in the window.
    let yaml = distinct_rule("{field: eventName, lte: 1}");
    let r = run(
        &yaml,
        &[
            ev(0, "ListUsers", "alice"),
            ev(10, "ListUsers", "alice"),
            ev(20, "ListUsers", "bob"),
            ev(30, "ListRoles", "bob"),
        ],
    );
    assert_eq!(r.steps("c"), [AT_END]);
    let f = r.only("c");
    assert_eq!(f.principal, arn("alice"));
    assert_eq!(f.details.to_json()["correlation"]["count"], 1);
    assert_eq!(f.event_count, 2);
}

// ---------------------------------------------------------------------------------------------
// 4. temporal and temporal_ordered
// ---------------------------------------------------------------------------------------------

#[test]
fn temporal_needs_every_rule_within_the_timespan_in_any_order() {
    let yaml = corr("temporal", "[login, key]", "[userIdentity.arn]", "10m", "");
    let login = |s, u| ev(s, "ConsoleLogin", u);
    let key = |s, u| ev(s, "CreateAccessKey", u);
    let r = run(&yaml, &[login(0, "alice"), key(5 * MIN, "alice")]);
    assert_eq!(r.steps("c"), [2]);
    let f = r.only("c");
    assert_eq!(f.details.to_json()["correlation"]["type"], "temporal");
    assert_eq!(f.event_ids, ids(0..2));
    assert_eq!(f.details.to_json()["window"]["start"], at(0));
    assert_eq!(f.details.to_json()["window"]["end"], at(5 * MIN));
    // Any order.
    let r = run(&yaml, &[key(0, "alice"), login(5 * MIN, "alice")]);
    assert_eq!(r.steps("c"), [2]);
    // Too far apart (11m, and exactly 10m: the window is (t - 10m, t]).
    assert_eq!(
        run(&yaml, &[login(0, "alice"), key(11 * MIN, "alice")]).count("c"),
        0
    );
    assert_eq!(
        run(&yaml, &[login(0, "alice"), key(10 * MIN, "alice")]).count("c"),
        0
    );
    // Different principals.
    assert_eq!(
        run(&yaml, &[login(0, "alice"), key(60, "bob")]).count("c"),
        0
    );
    // One rule many times is not enough.
    let r = run(
        &yaml,
        &[login(0, "alice"), login(60, "alice"), login(120, "alice")],
    );
    assert_eq!(r.count("c"), 0);
    // After firing the group starts afresh: key, key, login → fires at 2 (login+key), then
    // key + login again.
    let r = run(
        &yaml,
        &[
            login(0, "alice"),
            key(60, "alice"),
            key(120, "alice"),
            login(180, "alice"),
        ],
    );
    assert_eq!(r.steps("c"), [2, 4]);
}

#[test]
fn temporal_ordered_needs_the_listed_order() {
    let yaml = corr(
        "temporal_ordered",
        "[login, key]",
        "[userIdentity.arn]",
        "10m",
        "",
    );
    let login = |s| ev(s, "ConsoleLogin", "alice");
    let key = |s| ev(s, "CreateAccessKey", "alice");
    let r = run(&yaml, &[login(0), key(5 * MIN)]);
    assert_eq!(r.steps("c"), [2]);
    assert_eq!(
        r.only("c").details.to_json()["correlation"]["type"],
        "temporal_ordered"
    );
    // Out of order: nothing.
    assert_eq!(run(&yaml, &[key(0), login(5 * MIN)]).count("c"), 0);
    // In order but too far apart.
    assert_eq!(run(&yaml, &[login(0), key(11 * MIN)]).count("c"), 0);
    // A repeated first step keeps the latest start: login 0, login 8m, key 12m fires, and the
    // window starts at the second login.
    let r = run(&yaml, &[login(0), login(8 * MIN), key(12 * MIN)]);
    assert_eq!(r.steps("c"), [3]);
    let f = r.only("c");
    assert_eq!(f.details.to_json()["window"]["start"], at(8 * MIN));
    assert_eq!(f.details.to_json()["window"]["end"], at(12 * MIN));
}

#[test]
fn temporal_ordered_three_steps() {
    let yaml = corr(
        "temporal_ordered",
        "[login, recon, key]",
        "[userIdentity.arn]",
        "30m",
        "",
    );
    let login = |s| ev(s, "ConsoleLogin", "alice");
    let recon = |s| ev(s, "ListUsers", "alice");
    let key = |s| ev(s, "CreateAccessKey", "alice");
    assert_eq!(run(&yaml, &[login(0), recon(60), key(120)]).steps("c"), [3]);
    assert_eq!(run(&yaml, &[login(0), key(60), recon(120)]).count("c"), 0);
    assert_eq!(run(&yaml, &[recon(0), login(60), key(120)]).count("c"), 0);
    // The missing step arrives later, then the last again: fires.
    assert_eq!(
        run(&yaml, &[login(0), key(60), recon(120), key(180)]).steps("c"),
        [4]
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Chaining, `generate`, references, aliases
// ---------------------------------------------------------------------------------------------

/// `many_gpd` (3 GetPasswordData in 5m) followed by an access key within 30m.
fn chain(c1_ref: &str, key_ref: &str, generate_many: bool, generate_chain: bool) -> String {
    format!(
        "{BASE}---
title: Many GetPasswordData
id: c-many
name: many_gpd
level: medium
correlation:
  type: event_count
  rules: [gpd]
  group-by: [userIdentity.arn]
  timespan: 5m
  condition: {{gte: 3}}
  generate: {generate_many}
---
title: Password data then access key
id: c-chain
level: critical
correlation:
  type: temporal_ordered
  rules: [{c1_ref}, {key_ref}]
  group-by: [userIdentity.arn]
  timespan: 30m
  generate: {generate_chain}
"
    )
}

fn chain_events() -> Vec<Value> {
    vec![
        gpd(0, "alice"),
        gpd(10, "alice"),
        gpd(20, "alice"),
        ev(5 * MIN, "CreateAccessKey", "alice"),
        // bob: the key without the burst.
        ev(6 * MIN, "CreateAccessKey", "bob"),
    ]
}

#[test]
fn chained_correlation_fires_on_the_correlation_it_refers_to() {
    let r = run(&chain("many_gpd", "key", false, false), &chain_events());
    // Neither base rules nor the inner correlation produce findings of their own.
    assert_eq!(r.rule_ids(), ["c-chain"]);
    assert_eq!(r.steps("c-chain"), [4]);
    let f = r.only("c-chain");
    assert_eq!(f.principal, arn("alice"));
    assert_eq!(
        f.details.to_json()["correlation"]["rules"],
        json!(["c-many", "r-key"])
    );
    // The chained finding carries the events behind the inner one too.
    assert_eq!(f.event_ids, ids(0..4));
    // Out of order (the key before the burst): nothing.
    let r = run(
        &chain("many_gpd", "key", false, false),
        &[
            ev(0, "CreateAccessKey", "alice"),
            gpd(60, "alice"),
            gpd(70, "alice"),
            gpd(80, "alice"),
        ],
    );
    assert!(r.out.is_empty(), "{:#?}", r.out);
}

#[test]
fn chained_references_by_name_or_id_are_equivalent() {
    let by_name = run(&chain("many_gpd", "key", false, false), &chain_events());
    for (c1, key) in [
        ("c-many", "r-key"),
        ("many_gpd", "r-key"),
        ("c-many", "key"),
    ] {
        let other = run(&chain(c1, key, false, false), &chain_events());
        let a: Vec<(&str, &str, usize)> = by_name
            .out
            .iter()
            .map(|(s, f)| (f.rule.id.as_str(), f.id.as_str(), *s))
            .collect();
        let b: Vec<(&str, &str, usize)> = other
            .out
            .iter()
            .map(|(s, f)| (f.rule.id.as_str(), f.id.as_str(), *s))
            .collect();
        assert_eq!(a, b, "rules: [{c1}, {key}]");
    }
}

#[test]
fn generate_true_makes_referenced_rules_report_too() {
    // The outer correlation generates: the inner one and the key rule report too; the
    // GetPasswordData rule is referenced only by the inner one (generate: false): quiet.
    let r = run(&chain("many_gpd", "key", false, true), &chain_events());
    assert_eq!(r.count("c-many"), 1);
    assert_eq!(r.count("c-chain"), 1);
    assert_eq!(r.count("r-key"), 2);
    assert_eq!(r.count("r-gpd"), 0);
    assert_eq!(r.steps("c-many"), [3]);
    // The inner correlation generates: the base rule reports each match.
    let r = run(&chain("many_gpd", "key", true, false), &chain_events());
    assert_eq!(r.count("r-gpd"), 3);
    assert_eq!(r.count("c-many"), 0);
    assert_eq!(r.count("r-key"), 0);
    assert_eq!(r.count("c-chain"), 1);
    // `generate` on a single-level correlation.
    let yaml = count_rule("{gte: 3}", "5m").replace(
        "condition: {gte: 3}\n",
        "condition: {gte: 3}\n  generate: true\n",
    );
    let r = run(&yaml, &[gpd(0, "alice"), gpd(1, "alice"), gpd(2, "alice")]);
    assert_eq!(r.rule_ids(), ["r-gpd", "r-gpd", "r-gpd", "c"]);
    // Default (false): a base rule that no correlation generates is quiet; others are not.
    let r = run(
        &count_rule("{gte: 3}", "5m"),
        &[gpd(0, "alice"), ev(1, "ConsoleLogin", "alice")],
    );
    assert_eq!(r.rule_ids(), ["r-login"]);
}

#[test]
fn unknown_reference_is_a_load_error_with_its_position() {
    let yaml = format!(
        "{BASE}---
title: Broken
id: c-broken
correlation:
  type: temporal
  rules:
    - login
    - gdp
  group-by: [userIdentity.arn]
  timespan: 5m
"
    );
    let report = load(&yaml);
    let errors: Vec<_> = report.errors().collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = errors[0];
    assert!(e.message.contains("unknown rule `gdp`"), "{}", e.message);
    let line = yaml.lines().position(|l| l == "    - gdp").unwrap() + 1;
    assert_eq!(e.line, Some(line));
    assert_eq!(e.column, Some(7));
    assert_eq!(e.file, "test.yml");
    assert!(
        e.hint.as_deref().is_some_and(|h| h.contains("`gpd`")),
        "{:?}",
        e.hint
    );
    // The broken correlation is not loaded; the others are.
    assert!(report.correlations.is_empty());
    assert_eq!(report.rules.len(), 4);
    let rendered = report.render(e);
    assert!(
        rendered.starts_with(&format!("test.yml:{line}:7: error:")),
        "{rendered}"
    );
}

#[test]
fn aliases_group_different_fields_of_two_rules() {
    let yaml = "\
title: Login profile created
id: r-profile
name: create_profile
detection:
  s: {eventName: CreateLoginProfile}
  condition: s
---
title: Console login
id: r-login
name: login
detection:
  s: {eventName: ConsoleLogin}
  condition: s
---
title: Login profile created, then used
id: c
correlation:
  type: temporal_ordered
  rules: [create_profile, login]
  group-by: [target]
  timespan: 1h
  aliases:
    target:
      create_profile: requestParameters.userName
      r-login: userIdentity.userName
";
    let profile = |s: i64, target: &str| {
        with(
            ev(s, "CreateLoginProfile", "admin"),
            "requestParameters",
            json!({"userName": target}),
        )
    };
    let r = run(
        yaml,
        &[
            profile(0, "mallory"),
            ev(60, "ConsoleLogin", "bob"),
            ev(120, "ConsoleLogin", "mallory"),
        ],
    );
    assert_eq!(r.steps("c"), [3]);
    let f = r.only("c");
    assert_eq!(
        f.details.to_json()["correlation"]["group"],
        json!({"target": "mallory"})
    );
    assert_eq!(f.event_ids, ["e0", "e2"]);
    assert_eq!(f.principal, arn("mallory"));
    // Nobody logs in as the new profile's user: nothing.
    let r = run(
        yaml,
        &[profile(0, "mallory"), ev(120, "ConsoleLogin", "admin")],
    );
    assert_eq!(r.count("c"), 0);
}

// ---------------------------------------------------------------------------------------------
// 6. Lateness
// ---------------------------------------------------------------------------------------------

#[test]
fn late_events_within_the_allowed_lateness_count_older_ones_are_reported() {
    let yaml = count_rule("{gte: 3}", "30m");
    let settings = Settings {
        lateness: 15 * 60_000,
        ..Settings::default()
    };
    let events = [
        gpd(30 * MIN, "alice"),
        // 10 min older than the newest: counts.
        gpd(20 * MIN, "alice"),
        // 20 min older: late, not in any window (else 10m, 20m, 30m would fire here).
        gpd(10 * MIN, "alice"),
        // (1m, 31m] holds 20m, 30m, 31m: fires only because the 10-min-late event counted.
        gpd(31 * MIN, "alice"),
    ];
    let r = run_with(&yaml, &settings, &events);
    assert_eq!(r.steps("c"), [4]);
    // Event ids come in event-time order.
    assert_eq!(r.only("c").event_ids, ["e1", "e0", "e3"]);
    assert_eq!(r.stats.late_hits, 1);
    assert_eq!(r.stats.late_samples, ["e2"]);
    // Exactly at the allowed lateness still counts.
    let r = run_with(
        &yaml,
        &settings,
        &[
            gpd(30 * MIN, "alice"),
            gpd(15 * MIN, "alice"),
            gpd(31 * MIN, "alice"),
        ],
    );
    assert_eq!(r.stats.late_hits, 0);
    assert_eq!(r.steps("c"), [3]);
    // With 5m allowed, the 10-min-late event is late too: nothing fires.
    let strict = Settings {
        lateness: 5 * 60_000,
        ..Settings::default()
    };
    let r = run_with(&yaml, &strict, &events);
    assert_eq!(r.count("c"), 0);
    assert_eq!(r.stats.late_hits, 2);
    assert_eq!(r.stats.late_samples, ["e1", "e2"]);
}

// ---------------------------------------------------------------------------------------------
// 7. `suppress:` sets the dedup key and window of incidents
// ---------------------------------------------------------------------------------------------

const SUPPRESSED: &str = "\
title: Bucket deleted
id: r-del
level: medium
detection:
  s: {eventName: DeleteBucket}
  condition: s
suppress:
  by: [userIdentity.arn]
  for: 1h
";

fn del(secs: i64, user: &str) -> Value {
    ev(secs, "DeleteBucket", user)
}

/// Findings and alerts of a run with the alert stage on (default alert settings).
struct Alerted {
    run: Run,
    /// (step, kind, incident, incident events so far) of every alert.
    alerts: Vec<(usize, AlertKind, String, u64)>,
}

impl Alerted {
    /// The distinct incidents of rule `id`'s findings, in order of appearance.
    fn incidents(&self, id: &str) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for f in self.run.of(id) {
            if !v.contains(&f.incident) {
                v.push(f.incident.clone());
            }
        }
        v
    }
    fn kinds(&self) -> Vec<AlertKind> {
        self.alerts.iter().map(|a| a.1).collect()
    }
}

fn run_alerted(yaml: &str, settings: &Settings, events: &[Value]) -> Alerted {
    let set = rule_set(yaml);
    let exceptions = Exceptions::default();
    let mut pipeline = Pipeline::new(&set, &exceptions, settings);
    pipeline.enable_alerts(AlertSettings::default());
    let mut out = Alerted {
        run: Run {
            out: Vec::new(),
            stats: CorrelationStats::default(),
            max_live_keys: 0,
        },
        alerts: Vec::new(),
    };
    let take = |p: &mut Pipeline<'_>, step: usize, out: &mut Alerted| {
        let mut a = Vec::new();
        p.drain_alerts(&mut a);
        out.alerts.extend(
            a.into_iter()
                .map(|a| (step, a.kind, a.incident.clone(), a.incident_events)),
        );
    };
    for (i, text) in texts(events).iter().enumerate() {
        let ev = Event::parse(text).unwrap();
        let mut ready = Vec::new();
        pipeline.feed(&ev, None, &mut ready);
        out.run.out.extend(ready.into_iter().map(|f| (i + 1, f)));
        take(&mut pipeline, i + 1, &mut out);
    }
    let mut rest = Vec::new();
    pipeline.finish(&mut rest);
    out.run.out.extend(rest.into_iter().map(|f| (AT_END, f)));
    take(&mut pipeline, AT_END, &mut out);
    out
}

#[test]
fn repeats_are_findings_of_their_own_folded_into_one_incident() {
    let events: Vec<Value> = [0, 5, 10, 20, 30]
        .iter()
        .map(|m| del(m * MIN, "alice"))
        .collect();
    // Findings stay per event, at once: nothing is held or merged.
    let r = run(SUPPRESSED, &events);
    assert_eq!(r.steps("r-del"), [1, 2, 3, 4, 5]);
    assert!(r.of("r-del").iter().all(|f| f.event_count == 1));
    // With alerts: one incident, the first alert at the first event, the rest folded into an
    // update and a closing summary that counts all five.
    let a = run_alerted(SUPPRESSED, &Settings::default(), &events);
    assert_eq!(a.incidents("r-del").len(), 1, "{:#?}", a.run.out);
    assert_eq!(a.alerts[0].0, 1, "the first alert goes out at once");
    assert_eq!(a.alerts[0].1, AlertKind::New);
    let last = a.alerts.last().unwrap();
    assert_eq!((last.1, last.3), (AlertKind::Close, 5));
    assert!(a.alerts.len() <= 3, "{:?}", a.alerts);
    assert!(a.alerts.iter().all(|x| x.2 == a.incidents("r-del")[0]));
}

#[test]
fn incidents_are_per_key_and_per_window() {
    // Two principals: two incidents.
    let a = run_alerted(
        SUPPRESSED,
        &Settings::default(),
        &[
            del(0, "alice"),
            del(60, "bob"),
            del(120, "alice"),
            del(180, "alice"),
            del(240, "bob"),
        ],
    );
    let f = a.run.of("r-del");
    assert_eq!(f.len(), 5);
    assert_eq!(f[0].incident, f[2].incident);
    assert_eq!(f[0].incident, f[3].incident);
    assert_eq!(f[1].incident, f[4].incident);
    assert_ne!(f[0].incident, f[1].incident);
    assert_eq!(
        a.kinds().iter().filter(|k| **k == AlertKind::New).count(),
        2
    );
    // A match 2h later (past the 1h window): a new incident, alerted at once.
    let a = run_alerted(
        SUPPRESSED,
        &Settings::default(),
        &[
            del(0, "alice"),
            del(10 * MIN, "alice"),
            del(2 * HOUR, "alice"),
        ],
    );
    assert_eq!(a.incidents("r-del").len(), 2);
    let news: Vec<usize> = a
        .alerts
        .iter()
        .filter(|x| x.1 == AlertKind::New)
        .map(|x| x.0)
        .collect();
    assert_eq!(news, [1, 3]);
}

#[test]
fn suppress_false_keeps_the_alert_defaults_instead_of_the_configured_ones() {
    let yaml = "\
title: Bucket deleted
id: r-default
level: high
detection:
  s: {eventName: DeleteBucket}
  condition: s
---
title: Bucket policy deleted
id: r-off
level: high
detection:
  s: {eventName: DeleteBucketPolicy}
  condition: s
suppress: false
";
    // The configured default keys incidents by source address instead of the principal.
    let settings = Settings {
        default_suppress: Some(Suppress {
            by: vec!["sourceIPAddress".into()],
            period: 3_600_000,
        }),
        ..Settings::default()
    };
    let from = |v: Value, ip: &str| with(v, "sourceIPAddress", json!(ip));
    let events: Vec<Value> = (0..4)
        .flat_map(|i| {
            let ip = if i % 2 == 0 {
                "198.51.100.1"
            } else {
                "198.51.100.2"
            };
            [
                from(del(i * MIN, "alice"), ip),
                from(ev(i * MIN + 1, "DeleteBucketPolicy", "alice"), ip),
            ]
        })
        .collect();
    let a = run_alerted(yaml, &settings, &events);
    assert_eq!(a.incidents("r-default").len(), 2, "one per address");
    assert_eq!(a.incidents("r-off").len(), 1, "rule and principal");
}

#[test]
fn correlation_findings_join_one_incident_by_their_suppress_fields() {
    let yaml = format!(
        "{}suppress:\n  by: [userIdentity.arn]\n  for: 1h\n",
        count_rule("{gte: 3}", "5m")
    );
    // 9 quick events: three correlation findings, one incident.
    let nine: Vec<Value> = (0..9).map(|i| gpd(i * 5, "alice")).collect();
    let a = run_alerted(&yaml, &Settings::default(), &nine);
    assert_eq!(a.run.count("c"), 3);
    assert_eq!(a.incidents("c").len(), 1, "{:#?}", a.run.out);
    // group-by principal and source IP, keyed by principal: two groups, one incident.
    let yaml = format!(
        "{}suppress:\n  by: [userIdentity.arn]\n  for: 1h\n",
        corr(
            "event_count",
            "[gpd]",
            "[userIdentity.arn, sourceIPAddress]",
            "5m",
            "{gte: 2}",
        )
    );
    let from = |s: i64, ip: &str| with(gpd(s, "alice"), "sourceIPAddress", json!(ip));
    let a = run_alerted(
        &yaml,
        &Settings::default(),
        &[
            from(0, "198.51.100.1"),
            from(1, "198.51.100.1"),
            from(2, "198.51.100.2"),
            from(3, "198.51.100.2"),
        ],
    );
    assert_eq!(a.run.count("c"), 2, "{:#?}", a.run.out);
    assert_eq!(a.incidents("c").len(), 1);
}

// ---------------------------------------------------------------------------------------------
// 8. State round-trip
// ---------------------------------------------------------------------------------------------

/// Several kinds at once: sliding count, tumbling count, distinct values, ordered sequence.
fn mixed_rules() -> String {
    format!(
        "{BASE}---
title: Burst
id: c-burst
correlation:
  type: event_count
  rules: [gpd]
  group-by: [userIdentity.arn]
  timespan: 5m
  condition: {{gte: 3}}
---
title: Exactly two logins
id: c-two
correlation:
  type: event_count
  rules: [login]
  group-by: [userIdentity.arn]
  timespan: 10m
  condition: {{eq: 2}}
---
title: Recon breadth
id: c-breadth
correlation:
  type: value_count
  rules: [recon]
  group-by: [userIdentity.arn]
  timespan: 10m
  condition: {{field: eventName, gte: 3}}
---
title: Login then key
id: c-seq
correlation:
  type: temporal_ordered
  rules: [login, key]
  group-by: [userIdentity.arn]
  timespan: 30m
"
    )
}

fn mixed_events() -> Vec<Value> {
    vec![
        ev(0, "ConsoleLogin", "alice"),
        gpd(30, "alice"),
        ev(40, "ListUsers", "bob"),
        gpd(60, "alice"),
        ev(90, "ConsoleLogin", "alice"),
        ev(100, "ListRoles", "bob"),
        gpd(120, "bob"),
        gpd(150, "alice"),
        ev(4 * MIN, "CreateAccessKey", "alice"),
        ev(5 * MIN, "DescribeInstances", "bob"),
        gpd(6 * MIN, "bob"),
        ev(7 * MIN, "ConsoleLogin", "bob"),
        gpd(8 * MIN, "bob"),
        ev(9 * MIN, "ConsoleLogin", "bob"),
        ev(12 * MIN, "ConsoleLogin", "carol"),
        ev(25 * MIN, "CreateAccessKey", "bob"),
        gpd(26 * MIN, "carol"),
        ev(40 * MIN, "ConsoleLogin", "carol"),
        gpd(41 * MIN, "carol"),
        gpd(42 * MIN, "carol"),
    ]
}

type Summary = Vec<(usize, String, String, u64, Vec<String>)>;

fn summarize(out: &[(usize, Finding)]) -> Summary {
    out.iter()
        .map(|(s, f)| {
            (
                *s,
                f.rule.id.clone(),
                f.id.clone(),
                f.event_count,
                f.event_ids.clone(),
            )
        })
        .collect()
}

#[test]
fn snapshot_and_restore_give_the_same_findings_as_an_uninterrupted_run() {
    let yaml = mixed_rules();
    let events = mixed_events();
    let whole = run(&yaml, &events);
    // Every kind fires at least once, so the comparison means something.
    for id in ["c-burst", "c-two", "c-breadth", "c-seq"] {
        assert!(whole.count(id) > 0, "{id} does not fire: {:#?}", whole.out);
    }
    let all = texts(&events);
    let set = rule_set(&yaml);
    let exceptions = Exceptions::default();
    let settings = Settings::default();
    for split in 0..=all.len() {
        let mut run = Run {
            out: Vec::new(),
            stats: CorrelationStats::default(),
            max_live_keys: 0,
        };
        let bytes = {
            let mut first = Pipeline::new(&set, &exceptions, &settings);
            feed(&mut first, &all[..split], 0, &mut run);
            first.correlator_snapshot()
        };
        let mut second = Pipeline::new(&set, &exceptions, &settings);
        second.restore_correlator(&bytes).unwrap();
        feed(&mut second, &all[split..], split, &mut run);
        finish(&mut second, &mut run);
        assert_eq!(
            summarize(&run.out),
            summarize(&whole.out),
            "split after {split} events"
        );
        assert_eq!(run.stats, whole.stats, "split after {split} events");
    }
}

#[test]
fn snapshot_restore_rejects_corrupt_or_foreign_state() {
    let yaml = mixed_rules();
    let set = rule_set(&yaml);
    let settings = Settings::default();
    let exceptions = Exceptions::default();
    let mut stateful = Pipeline::new(&set, &exceptions, &settings);
    let mut run = Run {
        out: Vec::new(),
        stats: CorrelationStats::default(),
        max_live_keys: 0,
    };
    feed(&mut stateful, &texts(&mixed_events()[..5]), 0, &mut run);
    let bytes = stateful.correlator_snapshot();

    let mut fresh = Pipeline::new(&set, &exceptions, &settings);
    let e = fresh
        .restore_correlator(b"this is not a snapshot")
        .unwrap_err();
    assert!(e.to_string().contains("not readable"), "{e}");
    let e = fresh
        .restore_correlator(&bytes[..bytes.len() / 2])
        .unwrap_err();
    assert!(e.to_string().contains("not readable"), "{e}");

    let mut v: Value = serde_json::from_slice(&bytes).unwrap();
    v["version"] = json!(99);
    let e = fresh
        .restore_correlator(&serde_json::to_vec(&v).unwrap())
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("version 99") && msg.contains("reads version"),
        "{msg}"
    );
    // A good snapshot restores.
    fresh.restore_correlator(&bytes).unwrap();
    assert_eq!(fresh.live_keys(), stateful.live_keys());
}

// ---------------------------------------------------------------------------------------------
// 9. Bounded state
// ---------------------------------------------------------------------------------------------

#[test]
fn group_keys_are_capped_and_evictions_counted() {
    let settings = Settings {
        max_keys: 10,
        ..Settings::default()
    };
    let events: Vec<Value> = (0..100).map(|i| gpd(i, &format!("user{i}"))).collect();
    let r = run_with(&count_rule("{gte: 3}", "5m"), &settings, &events);
    assert!(r.max_live_keys <= 10, "{} live keys", r.max_live_keys);
    assert_eq!(r.max_live_keys, 10);
    assert_eq!(r.stats.evicted_keys, 90);
    assert_eq!(r.count("c"), 0);
    // The most recent groups survive: a principal among the last ten still fires.
    let mut more = events.clone();
    more.push(gpd(100, "user95"));
    more.push(gpd(101, "user95"));
    let r = run_with(&count_rule("{gte: 3}", "5m"), &settings, &more);
    assert_eq!(r.steps("c"), [102]);
    assert_eq!(r.stats.evicted_keys, 90);
    // ... and an evicted one starts again from nothing.
    let mut evicted = events;
    evicted.push(gpd(100, "user0"));
    evicted.push(gpd(101, "user0"));
    let r = run_with(&count_rule("{gte: 3}", "5m"), &settings, &evicted);
    assert_eq!(r.count("c"), 0);
    assert_eq!(r.stats.evicted_keys, 91);
}

// ---------------------------------------------------------------------------------------------
// 10. Real data through the CLI
// ---------------------------------------------------------------------------------------------

const GPD_BURST: &str = "\
title: GetPasswordData failed
id: tw-gpd-failed
name: gpd_failed
level: low
logsource: {product: aws, service: cloudtrail}
detection:
  s:
    eventSource: ec2.amazonaws.com
    eventName: GetPasswordData
    errorCode|exists: true
  condition: s
---
title: Many failed GetPasswordData calls
id: tw-gpd-burst
level: high
correlation:
  type: event_count
  rules: [gpd_failed]
  group-by: [userIdentity.arn]
  timespan: 5m
  condition: {gte: 30}
";

/// `trailwatch backtest --rules <rules> --format json <input>`: (findings, summary).
fn backtest(rules: &Path, input: &str) -> (Vec<Value>, Value) {
    let o = trailwatch(&[
        "backtest",
        "--rules",
        rules.to_str().unwrap(),
        "--format",
        "json",
        input,
    ]);
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        text(&o.stdout),
        text(&o.stderr)
    );
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    let findings = doc["findings"].as_array().unwrap().clone();
    (findings, doc["summary"].clone())
}

fn of_rule<'a>(findings: &'a [Value], id: &str) -> Vec<&'a Value> {
    findings.iter().filter(|f| f["rule"]["id"] == id).collect()
}

#[test]
fn real_get_password_data_burst_fires_once() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("gpd.yml");
    std::fs::write(&rules, GPD_BURST).unwrap();
    let (findings, summary) = backtest(
        &rules,
        "fixtures/samples/stratus-red-team/aws.credential-access.ec2-get-password-data.json",
    );
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = of_rule(&findings, "tw-gpd-burst");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["kind"], "correlation");
    assert_eq!(f[0]["event_count"], 30);
    assert_eq!(f[0]["event_ids"].as_array().unwrap().len(), 30);
    assert_eq!(f[0]["details"]["correlation"]["count"], 30);
    assert!(
        f[0]["principal"]
            .as_str()
            .unwrap()
            .contains("stratus-red-team-ec2-get-password-data-role"),
        "{}",
        f[0]["principal"]
    );
    assert_eq!(summary["late_hits"], 0);
}

#[test]
fn real_invictus_hour_does_not_fire_the_get_password_data_burst() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("gpd.yml");
    std::fs::write(&rules, GPD_BURST).unwrap();
    let (findings, summary) = backtest(&rules, "fixtures/samples/AWSLogs/");
    assert!(summary["records"].as_u64().unwrap() > 1000, "{summary}");
    assert!(
        of_rule(&findings, "tw-gpd-burst").is_empty(),
        "{findings:#?}"
    );
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn real_translated_sigmahq_download_userdata_fires_once() {
    let rules = root().join("fixtures/sigmahq-unsupported/aws_ec2_download_userdata.yml");
    let (findings, _) = backtest(
        &rules,
        "fixtures/samples/stratus-red-team/aws.discovery.ec2-download-user-data.json",
    );
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = of_rule(&findings, "26ff4080-194e-47e7-9889-ef7602efed0c");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["kind"], "correlation");
    // count() > 10: fires at the 11th of the 15 calls; the 4 after it do not reach 11.
    assert_eq!(f[0]["event_count"], 11);
    assert_eq!(f[0]["details"]["correlation"]["type"], "event_count");
    assert!(
        f[0]["details"]["correlation"]["translated_from"]
            .as_str()
            .is_some_and(|t| t.contains("count()")),
        "{}",
        f[0]["details"]
    );
}

// ---------------------------------------------------------------------------------------------
// 11. `trailwatch rules test` on correlation rules
// ---------------------------------------------------------------------------------------------

fn rules_test_file(findings: u64) -> String {
    format!(
        "\
title: GetPasswordData call
id: r-gpd
name: gpd
detection:
  s: {{eventName: GetPasswordData}}
  condition: s
---
title: Many GetPasswordData
id: c-many
correlation:
  type: event_count
  rules: [gpd]
  group-by: [userIdentity.arn]
  timespan: 5m
  condition: {{gte: 3}}
tests:
  - name: a burst of six is two findings
    events:
      - {{eventName: GetPasswordData, eventTime: '2024-05-01T10:00:00Z', eventID: a1, userIdentity: {{arn: 'arn:aws:iam::1:user/a'}}}}
      - {{eventName: GetPasswordData, eventTime: '2024-05-01T10:00:10Z', eventID: a2, userIdentity: {{arn: 'arn:aws:iam::1:user/a'}}}}
      - {{eventName: GetPasswordData, eventTime: '2024-05-01T10:00:20Z', eventID: a3, userIdentity: {{arn: 'arn:aws:iam::1:user/a'}}}}
      - {{eventName: GetPasswordData, eventTime: '2024-05-01T10:00:30Z', eventID: a4, userIdentity: {{arn: 'arn:aws:iam::1:user/a'}}}}
      - {{eventName: GetPasswordData, eventTime: '2024-05-01T10:00:40Z', eventID: a5, userIdentity: {{arn: 'arn:aws:iam::1:user/a'}}}}
      - {{eventName: GetPasswordData, eventTime: '2024-05-01T10:00:50Z', eventID: a6, userIdentity: {{arn: 'arn:aws:iam::1:user/a'}}}}
      - {{eventName: GetPasswordData, eventTime: '2024-05-01T10:00:55Z', eventID: b1, userIdentity: {{arn: 'arn:aws:iam::1:user/b'}}}}
    expect: {{findings: {findings}}}
"
    )
}

#[test]
fn rules_test_runs_correlation_cases() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yml");
    std::fs::write(&good, rules_test_file(2)).unwrap();
    let o = trailwatch(&["rules", "test", "-v", good.to_str().unwrap()]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    assert!(out.contains("ok    Many GetPasswordData"), "{out}");
    assert!(out.contains("1 passed, 0 failed"), "{out}");

    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, rules_test_file(3)).unwrap();
    let o = trailwatch(&["rules", "test", bad.to_str().unwrap()]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}\n{}", text(&o.stderr));
    assert!(
        out.contains("FAIL  Many GetPasswordData › a burst of six is two findings"),
        "{out}"
    );
    assert!(out.contains("expected 3 findings, got 2"), "{out}");
    assert!(out.contains("0 passed, 1 failed"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// 12. The deprecated `| count()` syntax
// ---------------------------------------------------------------------------------------------

/// Bursts, spread-out calls and several principals.
fn legacy_events() -> Vec<Value> {
    let mut v = Vec::new();
    for i in 0..7 {
        v.push(gpd(i * 10, "alice"));
    }
    v.push(gpd(100, "bob"));
    v.push(gpd(4 * MIN, "bob"));
    v.push(gpd(9 * MIN + 1, "bob"));
    v.push(gpd(9 * MIN + 2, "bob"));
    for i in 0..4 {
        v.push(gpd(20 * MIN + i, "carol"));
    }
    for (i, n) in ["ListUsers", "ListRoles", "GetPasswordData", "ListUsers"]
        .iter()
        .enumerate()
    {
        v.push(ev(30 * MIN + i as i64, n, "dave"));
    }
    v.push(ev(31 * MIN, "ListGroups", "dave"));
    v
}

#[test]
fn legacy_count_by_behaves_like_the_equivalent_correlation() {
    let legacy = "\
title: Legacy count
id: legacy
detection:
  s: {eventName: GetPasswordData}
  timeframe: 5m
  condition: s | count() by userIdentity.arn > 2
";
    let modern = format!(
        "{BASE}---
title: Modern count
id: legacy
correlation:
  type: event_count
  rules: [gpd]
  group-by: [userIdentity.arn]
  timespan: 5m
  condition: {{gt: 2}}
"
    );
    let events = legacy_events();
    let a = run(legacy, &events);
    let b = run(&modern, &events);
    assert_eq!(a.steps("legacy"), b.steps("legacy"));
    // alice 7 → 2 findings (3rd, 6th), bob 2+2 spread → none, carol 4 → 1, dave 1 → none.
    assert_eq!(a.count("legacy"), 3);
    // The translated base rule is quiet.
    assert_eq!(a.rule_ids(), ["legacy"; 3]);
    let ids_a: Vec<&Vec<String>> = a.of("legacy").iter().map(|f| &f.event_ids).collect();
    let ids_b: Vec<&Vec<String>> = b.of("legacy").iter().map(|f| &f.event_ids).collect();
    assert_eq!(ids_a, ids_b);
    assert_eq!(
        a.of("legacy")[0].details.to_json()["correlation"]["translated_from"],
        "`| count() by userIdentity.arn > 2`"
    );
}

#[test]
fn legacy_count_field_by_behaves_like_value_count() {
    let legacy = "\
title: Legacy distinct
id: legacy
detection:
  s:
    eventName|startswith: [List, Get]
  timeframe: 10m
  condition: s | count(eventName) by userIdentity.arn >= 3
";
    let modern = "\
title: Recon or password data
id: r-any
name: any
detection:
  s:
    eventName|startswith: [List, Get]
  condition: s
---
title: Modern distinct
id: legacy
correlation:
  type: value_count
  rules: [any]
  group-by: [userIdentity.arn]
  timespan: 10m
  condition: {field: eventName, gte: 3}
";
    let events = legacy_events();
    let a = run(legacy, &events);
    let b = run(modern, &events);
    assert_eq!(a.steps("legacy"), b.steps("legacy"));
    // Only dave calls three distinct names (ListUsers, ListRoles, GetPasswordData).
    assert_eq!(a.count("legacy"), 1);
    assert_eq!(a.only("legacy").principal, arn("dave"));
    assert_eq!(
        a.only("legacy").details.to_json()["correlation"]["type"],
        "value_count"
    );
}

// ---------------------------------------------------------------------------------------------
// Known engine bugs (ignored until fixed)
// ---------------------------------------------------------------------------------------------

#[test]
fn sliding_finding_reports_only_the_events_of_its_window() {
    // e0 is 6m before the burst: outside every window that fires.
    let events = [
        gpd(0, "alice"),
        noise(5 * MIN + 30),
        gpd(6 * MIN, "alice"),
        gpd(7 * MIN, "alice"),
        gpd(8 * MIN, "alice"),
    ];
    let yaml = count_rule("{gte: 3}", "5m");
    let no_lateness = Settings {
        lateness: 0,
        ..Settings::default()
    };
    for r in [run(&yaml, &events), run_with(&yaml, &no_lateness, &events)] {
        assert_eq!(r.steps("c"), [5]);
        let f = r.only("c");
        assert_eq!(f.details.to_json()["window"]["start"], at(6 * MIN));
        assert_eq!(f.details.to_json()["correlation"]["count"], 3);
        assert_eq!(f.event_ids, ["e2", "e3", "e4"]);
        assert_eq!(f.event_count, 3);
    }
}

#[test]
fn upper_bound_window_takes_a_late_event_in_its_own_window() {
    // [0, 5m) holds e0 and e2 (2m, 4m late: allowed); [6m, 11m) holds e1 only.
    let r = run(
        &count_rule("{eq: 2}", "5m"),
        &[
            gpd(0, "alice"),
            gpd(6 * MIN, "alice"),
            gpd(2 * MIN, "alice"),
        ],
    );
    assert_eq!(r.count("c"), 1, "{:#?}", r.out);
    let f = r.only("c");
    assert_eq!(f.event_ids, ["e0", "e2"]);
    assert_eq!(f.details.to_json()["window"]["start"], at(0));
}

#[test]
fn sliding_window_counts_a_late_event_that_completes_an_earlier_window() {
    let r = run(
        &count_rule("{gte: 2}", "5m"),
        &[
            gpd(10 * MIN, "alice"),
            gpd(20 * MIN, "alice"),
            // 11 min older than the newest: within the default 15 min.
            gpd(9 * MIN, "alice"),
        ],
    );
    assert_eq!(r.stats.late_hits, 0);
    assert_eq!(r.count("c"), 1, "{:#?}", r.out);
    // Event ids come in event-time order: 9m, then 10m.
    assert_eq!(r.only("c").event_ids, ["e2", "e0"]);
}

#[test]
fn restore_after_a_correlation_changed_type_does_not_panic() {
    let v1 = corr(
        "event_count",
        "[gpd, login]",
        "[userIdentity.arn]",
        "5m",
        "{eq: 2}",
    );
    let v2 = corr("temporal", "[gpd, login]", "[userIdentity.arn]", "5m", "");
    let (s1, s2) = (rule_set(&v1), rule_set(&v2));
    let settings = Settings::default();
    let exceptions = Exceptions::default();
    let all = texts(&[
        gpd(0, "alice"),
        // Closes alice's first window and opens a new one.
        gpd(6 * MIN, "alice"),
        ev(7 * MIN, "ConsoleLogin", "alice"),
    ]);
    let mut r = Run {
        out: Vec::new(),
        stats: CorrelationStats::default(),
        max_live_keys: 0,
    };
    let bytes = {
        let mut first = Pipeline::new(&s1, &exceptions, &settings);
        feed(&mut first, &all[..2], 0, &mut r);
        first.correlator_snapshot()
    };
    let mut second = Pipeline::new(&s2, &exceptions, &settings);
    second.restore_correlator(&bytes).unwrap();
    feed(&mut second, &all[2..], 2, &mut r);
    finish(&mut second, &mut r);
    assert!(r.count("c") <= 1);
}

/// An inner `eq: 2` correlation feeding an outer one with an upper bound, in either file order.
fn chain_with_upper_bounds(outer_first: bool, outer_condition: &str) -> String {
    let inner = "---
title: Exactly two
id: c-two
name: two
correlation:
  type: event_count
  rules: [gpd]
  group-by: [userIdentity.arn]
  timespan: 5m
  condition: {eq: 2}
";
    let outer = format!(
        "---
title: Outer
id: c-outer
correlation:
  type: event_count
  rules: [two]
  group-by: [userIdentity.arn]
  timespan: 1h
  condition: {outer_condition}
"
    );
    if outer_first {
        format!("{BASE}{outer}{inner}")
    } else {
        format!("{BASE}{inner}{outer}")
    }
}

#[test]
fn chained_upper_bound_correlation_fires_at_finish_whatever_the_file_order() {
    let events = [gpd(0, "alice"), gpd(10, "alice")];
    let inner_first = run(&chain_with_upper_bounds(false, "{lte: 5}"), &events);
    assert_eq!(inner_first.steps("c-outer"), [AT_END]);
    let outer_first = run(&chain_with_upper_bounds(true, "{lte: 5}"), &events);
    assert_eq!(outer_first.steps("c-outer"), [AT_END]);
}

#[test]
fn chained_event_count_counts_the_same_with_and_without_an_upper_bound() {
    // One firing of the inner correlation (behind it: two events).
    let events = [gpd(0, "alice"), gpd(10, "alice")];
    let sliding = run(&chain_with_upper_bounds(false, "{gte: 2}"), &events);
    let ranged = run(
        &chain_with_upper_bounds(false, "{gte: 2, lte: 100}"),
        &events,
    );
    assert_eq!(sliding.count("c-outer"), ranged.count("c-outer"));
}

// ---------------------------------------------------------------------------------------------
// Groups holding one hit (kept inline) and event ids held as UUIDs
// ---------------------------------------------------------------------------------------------

/// No lateness: a hit a timespan older than the group's newest is out of reach at once.
fn no_lateness() -> Settings {
    Settings {
        lateness: 0,
        ..Settings::default()
    }
}

#[test]
fn one_hit_groups_expire_grow_and_fire_like_any_other() {
    // 0: a group with one hit; 15m: that hit is out of reach and replaced; 16m: two hits;
    // 24m: three within 10m (15m, 16m, 24m).
    let events = [
        gpd(0, "alice"),
        gpd(15 * MIN, "alice"),
        gpd(16 * MIN, "alice"),
        gpd(24 * MIN, "alice"),
    ];
    let r = run_with(&count_rule("{gte: 3}", "10m"), &no_lateness(), &events);
    assert_eq!(r.steps("c"), [4]);
    assert_eq!(r.only("c").event_ids, ids(1..4));
    // The same distinct values: a one-hit group replaced, then two hits of one value, then
    // the third distinct value completes the window (15m..18m).
    let region = |secs: i64, r: &str| with(ev(secs, "ListUsers", "alice"), "awsRegion", json!(r));
    let events = [
        region(0, "eu-west-1"),
        region(15 * MIN, "us-east-1"),
        region(16 * MIN, "us-east-1"),
        region(17 * MIN, "us-west-2"),
        region(18 * MIN, "ap-south-1"),
    ];
    let yaml = distinct_rule("{field: awsRegion, gte: 3}");
    let r = run_with(&yaml, &no_lateness(), &events);
    assert_eq!(r.steps("c"), [5]);
    let f = r.only("c");
    assert_eq!(f.details.to_json()["correlation"]["count"], 3);
    assert_eq!((f.event_count, f.event_ids.clone()), (4, ids(1..5)));
    // Out of order within the allowed lateness: a one-hit group takes an older hit.
    let events = [
        gpd(10 * MIN, "bob"),
        gpd(9 * MIN, "bob"),
        gpd(11 * MIN, "bob"),
    ];
    let r = run(&count_rule("{gte: 3}", "5m"), &events);
    assert_eq!(r.steps("c"), [3]);
    assert_eq!(r.only("c").event_ids, ["e1", "e0", "e2"]);
}

#[test]
fn uuid_event_ids_come_back_exactly() {
    // CloudTrail's ids are lowercase UUIDs (held as 16 bytes); anything else is kept as text.
    let uuids = [
        "3b8f1c5e-2a59-4c1d-9f10-0a1b2c3d4e5f",
        "00000000-0000-4000-8000-000000000000",
        "3B8F1C5E-2A59-4C1D-9F10-0A1B2C3D4E5F",
        "not-a-uuid",
    ];
    let events: Vec<Value> = uuids
        .iter()
        .enumerate()
        .map(|(i, id)| with(gpd(i as i64 * 10, "alice"), "eventID", json!(id)))
        .collect();
    let r = run(&count_rule("{gte: 4}", "5m"), &events);
    assert_eq!(r.only("c").event_ids, uuids);
}

#[test]
fn who_and_where_come_from_the_event_that_completed_the_window() {
    let region = |e: Value, r: &str| with(e, "awsRegion", json!(r));
    // In order: the third call, from us-west-2, completes the window.
    let r = run(
        &count_rule("{gte: 3}", "5m"),
        &[
            region(gpd(0, "alice"), "us-east-1"),
            region(gpd(60, "alice"), "eu-west-1"),
            region(gpd(120, "alice"), "us-west-2"),
        ],
    );
    assert_eq!(r.only("c").region.as_deref(), Some("us-west-2"));
    // Out of order (within the allowed lateness): the late call completes the window, and the
    // finding reports it, not the group's newest call.
    let r = run(
        &count_rule("{gte: 3}", "5m"),
        &[
            region(gpd(0, "alice"), "us-east-1"),
            region(
                with(
                    gpd(120, "alice"),
                    "recipientAccountId",
                    json!("444455556666"),
                ),
                "eu-west-1",
            ),
            region(gpd(60, "alice"), "ap-south-1"),
        ],
    );
    let f = r.only("c");
    assert_eq!(f.region.as_deref(), Some("ap-south-1"));
    assert_eq!(f.account.as_deref(), Some("111122223333"));
    assert_eq!(f.event_ids, ["e0", "e2", "e1"]);
}

/// The JSON line a backtest writes for a finding (`Finding::write_json`, which copies the
/// redacted record without checking it again) is byte for byte what serialising the finding
/// writes, for every kind of finding the built-in pack makes of the bundled real records.
#[test]
fn finding_json_lines_are_exactly_the_serialised_findings() {
    use trailwatch::backtest::{BacktestOptions, Emitted};
    let report = trailwatch::rules::load(&[], true, LoadOptions::default());
    assert!(!report.has_errors());
    let (rules, dropped) = RuleSet::with_correlations(report.rules, report.correlations);
    assert!(dropped.is_empty());
    let rules = rules.with_baseline(report.baseline);
    let discovery = trailwatch::source::files::discover(&[root().join("fixtures/samples")]);
    let opts = BacktestOptions {
        alerts: Some(AlertSettings::default()),
        ..BacktestOptions::default()
    };
    let mut kinds = std::collections::BTreeSet::new();
    let mut n = 0;
    trailwatch::backtest::run(
        &discovery,
        &rules,
        &Exceptions::default(),
        &opts,
        |e| {
            if let Emitted::Finding(f) = e {
                let mut line = Vec::new();
                f.write_json(&mut line).expect("written");
                let serialised = serde_json::to_vec(f).expect("serialised");
                assert_eq!(
                    String::from_utf8_lossy(&line),
                    String::from_utf8_lossy(&serialised)
                );
                kinds.insert(format!("{:?}", f.kind()));
                n += 1;
            }
        },
        |_| {},
    );
    assert!(n > 500, "{n} findings");
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["Correlation", "Match"],
        "every kind the samples make"
    );
}
