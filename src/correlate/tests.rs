//! Unit tests of the correlator's windows, key cap and snapshots, fed `Hit`s directly.
//!
//! Rules come through the public loader (as in tests/correlation.rs, which drives the whole
//! engine); hits are built by hand, times in seconds after [`T0`].

use super::window::{Group, State};
use super::*;
use crate::rules::{LoadOptions, Loader, RuleSet};
use crate::util::time::{format_millis, parse_event_time};

const T0: &str = "2024-05-01T10:00:00Z";

fn t0() -> Millis {
    parse_event_time(T0).unwrap()
}

/// The event time `secs` seconds after [`T0`].
fn at(secs: i64) -> Millis {
    t0() + secs * 1000
}

/// Base rules the correlations below refer to.
const BASE: &str = "\
title: GetPasswordData call
id: r-gpd
name: gpd
detection:
  s: {eventName: GetPasswordData}
  condition: s
---
title: Console login
id: r-login
name: login
detection:
  s: {eventName: ConsoleLogin}
  condition: s
---
title: Access key created
id: r-key
name: key
detection:
  s: {eventName: CreateAccessKey}
  condition: s
";

/// A correlation document `id` over `rules`, grouped by principal.
fn corr(id: &str, kind: &str, rules: &str, timespan: &str, condition: &str) -> String {
    let condition = if condition.is_empty() {
        String::new()
    } else {
        format!("  condition: {condition}\n")
    };
    format!(
        "---
title: Correlation {id}
id: {id}
level: high
correlation:
  type: {kind}
  rules: {rules}
  group-by: [userIdentity.arn]
  timespan: {timespan}
{condition}"
    )
}

/// [`BASE`] plus `correlations`, loaded with no error and every correlation kept.
fn rule_set(correlations: &[String]) -> RuleSet {
    let yaml = format!("{BASE}{}", correlations.concat());
    let mut loader = Loader::new(LoadOptions::default());
    loader.load_source("test.yml", &yaml, None);
    let report = loader.finish();
    let errors: Vec<String> = report.errors().map(|d| report.render(d)).collect();
    assert!(errors.is_empty(), "rules do not load:\n{}", errors.join(""));
    let (set, dropped) = RuleSet::with_correlations(report.rules, report.correlations);
    assert!(dropped.is_empty(), "correlations dropped: {dropped:?}");
    set
}

/// The index of correlation `id`.
fn ci(plans: &Plans, id: &str) -> u32 {
    plans
        .plans
        .iter()
        .position(|p| p.corr.def.meta.id == id)
        .unwrap() as u32
}

/// A rule match feeding correlation `corr` at position `pos`: `user` at `secs`, event `id`.
fn hit(corr: u32, pos: u32, secs: i64, user: &str, id: &str) -> Hit {
    Hit {
        corr,
        pos,
        time: at(secs),
        key: user.into(),
        value: None,
        event_ids: EventIds::one(id),
        count: 1,
        who: Arc::new(Who {
            principal: user.into(),
            account: Some("111122223333".into()),
            region: Some("us-east-1".into()),
        }),
    }
}

/// [`hit`] counting `value` (`value_count`).
fn valued(corr: u32, secs: i64, user: &str, id: &str, value: &str) -> Hit {
    Hit {
        value: Some(hash_value(value)),
        ..hit(corr, 0, secs, user, id)
    }
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Feeds `hits` in order, returning the findings (after an `advance`, as the engine does).
fn feed(c: &mut Correlator, plans: &Plans, hits: impl IntoIterator<Item = Hit>) -> Vec<Finding> {
    let mut out = Vec::new();
    for h in hits {
        c.hit(plans, h, &mut out);
        c.advance(plans, false, &mut out);
    }
    out
}

/// Every group: (correlation, key, group), sorted.
fn state(c: &Correlator) -> Vec<(u32, String, Group)> {
    let mut v: Vec<(u32, String, Group)> = c
        .groups
        .iter_all()
        .map(|(ci, k, g)| (ci, k.to_string(), g.clone()))
        .collect();
    v.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    v
}

/// The state of correlation `ci`'s group for `key`.
fn group(c: &Correlator, ci: u32, key: &str) -> Option<State> {
    c.groups
        .iter_all()
        .find(|(c, k, _)| *c == ci && ***k == *key)
        .map(|(_, _, g)| g.state.clone())
}

#[test]
fn sliding_event_count_fires_at_the_threshold_and_consumes_its_hits() {
    let set = rule_set(&[corr("c", "event_count", "[gpd]", "5m", "{gte: 3}")]);
    let plans = set.plans();
    let c0 = ci(plans, "c");
    let mut c = Correlator::new(plans, DEFAULT_LATENESS, DEFAULT_MAX_KEYS);

    // One hit is held inline, two in a buffer; neither meets the condition.
    assert!(feed(&mut c, plans, [hit(c0, 0, 0, "alice", "e0")]).is_empty());
    assert!(matches!(group(&c, c0, "alice"), Some(State::Sliding1(_))));
    assert!(feed(&mut c, plans, [hit(c0, 0, 60, "alice", "e1")]).is_empty());
    assert!(matches!(group(&c, c0, "alice"), Some(State::Sliding(v)) if v.len() == 2));

    // The third fires, with the window's hits, and the group is left empty (removed).
    let out = feed(&mut c, plans, [hit(c0, 0, 120, "alice", "e2")]);
    assert_eq!(out.len(), 1);
    let f = &out[0];
    assert_eq!(f.rule.id, "c");
    assert_eq!(f.event_ids, ids(&["e0", "e1", "e2"]));
    assert_eq!(f.event_count, 3);
    assert_eq!(f.principal, "alice");
    assert_eq!(f.account.as_deref(), Some("111122223333"));
    assert_eq!(f.time_ms, Some(at(120)));
    assert_eq!(f.details.to_json()["window"]["start"], format_millis(at(0)));
    assert_eq!(f.details.to_json()["correlation"]["count"], 3);
    assert_eq!(group(&c, c0, "alice"), None);
    assert_eq!(c.live_keys(), 0);

    // Consumed hits do not count again: two more do not fire, a third does.
    let out = feed(
        &mut c,
        plans,
        [
            hit(c0, 0, 130, "alice", "e3"),
            hit(c0, 0, 140, "alice", "e4"),
        ],
    );
    assert!(out.is_empty());
    let out = feed(&mut c, plans, [hit(c0, 0, 150, "alice", "e5")]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].event_ids, ids(&["e3", "e4", "e5"]));
    assert_ne!(out[0].id, f.id);
}

#[test]
fn sliding_window_excludes_a_hit_one_timespan_back() {
    let set = rule_set(&[corr("c", "event_count", "[gpd]", "5m", "{gte: 3}")]);
    let plans = set.plans();
    let c0 = ci(plans, "c");
    let mut c = Correlator::new(plans, DEFAULT_LATENESS, DEFAULT_MAX_KEYS);
    // (t - 5m, t]: the hit at 0 is out of the window ending at 5m.
    let out = feed(
        &mut c,
        plans,
        [
            hit(c0, 0, 0, "alice", "e0"),
            hit(c0, 0, 150, "alice", "e1"),
            hit(c0, 0, 300, "alice", "e2"),
        ],
    );
    assert!(out.is_empty());
    // The window slides: one more second in, (1s, 5m01s] holds three.
    let out = feed(&mut c, plans, [hit(c0, 0, 301, "alice", "e3")]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].event_ids, ids(&["e1", "e2", "e3"]));
    // The window's hits and the older one are consumed.
    assert_eq!(group(&c, c0, "alice"), None);
}

#[test]
fn tumbling_window_is_judged_once_when_the_watermark_passes_its_end() {
    let set = rule_set(&[corr("c", "event_count", "[gpd]", "5m", "{lt: 3}")]);
    let plans = set.plans();
    let c0 = ci(plans, "c");
    let lateness = 60_000;
    let mut c = Correlator::new(plans, lateness, DEFAULT_MAX_KEYS);
    let out = feed(
        &mut c,
        plans,
        [hit(c0, 0, 0, "alice", "e0"), hit(c0, 0, 60, "alice", "e1")],
    );
    assert!(out.is_empty());
    assert!(matches!(group(&c, c0, "alice"), Some(State::Tumbling(w)) if w.len() == 1));

    // The window [0, 5m) ends at 5m: not judged while the watermark (newest − 1m) is short
    // of it.
    let mut out = Vec::new();
    c.observe(at(359));
    c.advance(plans, false, &mut out);
    assert!(out.is_empty());
    c.observe(at(360));
    c.advance(plans, false, &mut out);
    assert_eq!(out.len(), 1);
    let f = &out[0];
    assert_eq!(f.event_ids, ids(&["e0", "e1"]));
    assert_eq!(f.details.to_json()["correlation"]["count"], 2);
    // Reports its latest hit's time and who/where.
    assert_eq!(f.time_ms, Some(at(60)));
    assert_eq!(f.principal, "alice");
    assert_eq!(f.region.as_deref(), Some("us-east-1"));
    assert_eq!(c.live_keys(), 0);

    // Judged once: nothing more, even at the end of input.
    let mut more = Vec::new();
    c.advance(plans, false, &mut more);
    c.advance(plans, true, &mut more);
    assert!(more.is_empty());
}

#[test]
fn tumbling_window_over_its_upper_bound_does_not_fire_and_the_next_opens_after_it() {
    let set = rule_set(&[corr("c", "event_count", "[gpd]", "5m", "{lt: 3}")]);
    let plans = set.plans();
    let c0 = ci(plans, "c");
    let mut c = Correlator::new(plans, 0, DEFAULT_MAX_KEYS);
    // Three in [0, 5m): over the bound. The hit at 5m opens the next window, which is judged
    // at the end of input.
    let mut out = feed(
        &mut c,
        plans,
        [
            hit(c0, 0, 0, "alice", "e0"),
            hit(c0, 0, 10, "alice", "e1"),
            hit(c0, 0, 20, "alice", "e2"),
            hit(c0, 0, 300, "alice", "e3"),
        ],
    );
    assert!(out.is_empty());
    c.advance(plans, true, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].event_ids, ids(&["e3"]));
    assert_eq!(
        out[0].details.to_json()["window"]["start"],
        format_millis(at(300))
    );
}

#[test]
fn temporal_completes_in_any_order_within_the_timespan() {
    let set = rule_set(&[corr("c", "temporal", "[login, key]", "10m", "")]);
    let plans = set.plans();
    let c0 = ci(plans, "c");
    let mut c = Correlator::new(plans, DEFAULT_LATENESS, DEFAULT_MAX_KEYS);
    // `key` (position 1) first, then `login` (position 0): complete.
    assert!(feed(&mut c, plans, [hit(c0, 1, 0, "alice", "e0")]).is_empty());
    let out = feed(&mut c, plans, [hit(c0, 0, 60, "alice", "e1")]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].event_ids, ids(&["e0", "e1"]));
    assert_eq!(
        out[0].details.to_json()["window"]["start"],
        format_millis(at(0))
    );
    // The group starts afresh.
    assert_eq!(c.live_keys(), 0);

    // Spread over the timespan or more: no firing.
    let out = feed(
        &mut c,
        plans,
        [hit(c0, 0, 1000, "bob", "e2"), hit(c0, 1, 1600, "bob", "e3")],
    );
    assert!(out.is_empty());
    assert!(matches!(
        group(&c, c0, "bob"),
        Some(State::Temporal(s)) if s.iter().all(Option::is_some)
    ));
}

#[test]
fn temporal_ordered_completes_only_in_the_listed_order() {
    let set = rule_set(&[corr("c", "temporal_ordered", "[login, key]", "10m", "")]);
    let plans = set.plans();
    let c0 = ci(plans, "c");
    let mut c = Correlator::new(plans, DEFAULT_LATENESS, DEFAULT_MAX_KEYS);
    // `key` before any `login`: no sequence.
    let out = feed(
        &mut c,
        plans,
        [hit(c0, 1, 0, "alice", "e0"), hit(c0, 0, 60, "alice", "e1")],
    );
    assert!(out.is_empty());
    // `key` after the `login`: complete, starting at the login.
    let out = feed(&mut c, plans, [hit(c0, 1, 120, "alice", "e2")]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].event_ids, ids(&["e1", "e2"]));
    assert_eq!(
        out[0].details.to_json()["window"]["start"],
        format_millis(at(60))
    );
    assert_eq!(out[0].details.to_json()["correlation"]["count"], 2);
    assert_eq!(c.live_keys(), 0);

    // A `key` a timespan or more after its `login` does not complete it.
    let out = feed(
        &mut c,
        plans,
        [hit(c0, 0, 1000, "bob", "e3"), hit(c0, 1, 1600, "bob", "e4")],
    );
    assert!(out.is_empty());
}

#[test]
fn value_count_counts_distinct_values_in_the_window() {
    let set = rule_set(&[corr(
        "c",
        "value_count",
        "[gpd]",
        "10m",
        "{field: requestParameters.instanceId, gte: 3}",
    )]);
    let plans = set.plans();
    let c0 = ci(plans, "c");
    let mut c = Correlator::new(plans, DEFAULT_LATENESS, DEFAULT_MAX_KEYS);
    assert!(feed(&mut c, plans, [valued(c0, 0, "alice", "e0", "i-1")]).is_empty());
    assert!(matches!(
        group(&c, c0, "alice"),
        Some(State::SlidingValues1(..))
    ));
    // A repeated value does not count twice; another principal's values are apart.
    let out = feed(
        &mut c,
        plans,
        [
            valued(c0, 60, "alice", "e1", "i-1"),
            valued(c0, 90, "bob", "e2", "i-3"),
            valued(c0, 120, "alice", "e3", "i-2"),
        ],
    );
    assert!(out.is_empty());
    let out = feed(&mut c, plans, [valued(c0, 180, "alice", "e4", "i-3")]);
    assert_eq!(out.len(), 1);
    let f = &out[0];
    assert_eq!(f.principal, "alice");
    assert_eq!(f.details.to_json()["correlation"]["count"], 3);
    assert_eq!(f.event_count, 4);
    assert_eq!(f.event_ids, ids(&["e0", "e1", "e3", "e4"]));
    assert_eq!(group(&c, c0, "alice"), None);
    assert!(group(&c, c0, "bob").is_some());
}

#[test]
fn key_cap_evicts_the_group_seen_longest_ago() {
    let set = rule_set(&[corr("c", "event_count", "[gpd]", "5m", "{gte: 10}")]);
    let plans = set.plans();
    let c0 = ci(plans, "c");
    let mut c = Correlator::new(plans, DEFAULT_LATENESS, 2);
    // bob is seen last at 10s, alice at 20s: carol's group evicts bob's.
    feed(
        &mut c,
        plans,
        [
            hit(c0, 0, 0, "alice", "e0"),
            hit(c0, 0, 10, "bob", "e1"),
            hit(c0, 0, 20, "alice", "e2"),
            hit(c0, 0, 30, "carol", "e3"),
        ],
    );
    let keys: Vec<String> = state(&c).into_iter().map(|(_, k, _)| k).collect();
    assert_eq!(keys, ["alice", "carol"]);
    assert_eq!(c.stats.evicted_keys, 1);
    // A key already held evicts nothing.
    feed(&mut c, plans, [hit(c0, 0, 40, "carol", "e4")]);
    assert_eq!(c.stats.evicted_keys, 1);
    // Seen equally long ago (alice and carol at 50s): the smaller key goes.
    feed(
        &mut c,
        plans,
        [hit(c0, 0, 50, "carol", "e5"), hit(c0, 0, 50, "alice", "e6")],
    );
    feed(&mut c, plans, [hit(c0, 0, 60, "dave", "e7")]);
    let keys: Vec<String> = state(&c).into_iter().map(|(_, k, _)| k).collect();
    assert_eq!(keys, ["carol", "dave"]);
    assert_eq!(c.stats.evicted_keys, 2);
}

#[test]
fn late_hits_are_counted_not_added() {
    let set = rule_set(&[corr("c", "event_count", "[gpd]", "5m", "{gte: 2}")]);
    let plans = set.plans();
    let c0 = ci(plans, "c");
    let mut c = Correlator::new(plans, 60_000, DEFAULT_MAX_KEYS);
    let out = feed(
        &mut c,
        plans,
        [
            hit(c0, 0, 600, "alice", "e0"),
            // Before the watermark (600s − 1m).
            hit(c0, 0, 500, "alice", "late"),
        ],
    );
    assert!(out.is_empty());
    assert_eq!(c.stats.late_hits, 1);
    assert_eq!(c.stats.late_samples, ["late"]);
    // Within the lateness: added, and it completes the window.
    let out = feed(&mut c, plans, [hit(c0, 0, 550, "alice", "e1")]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].event_ids, ids(&["e1", "e0"]));
}

/// One correlation of each kind, over the same rules.
fn every_kind() -> Vec<String> {
    vec![
        corr("count", "event_count", "[gpd]", "5m", "{gte: 3}"),
        corr("tumble", "event_count", "[gpd]", "5m", "{lte: 5}"),
        corr(
            "distinct",
            "value_count",
            "[gpd]",
            "10m",
            "{field: requestParameters.instanceId, gte: 3}",
        ),
        corr(
            "distinct-tumble",
            "value_count",
            "[gpd]",
            "10m",
            "{field: requestParameters.instanceId, lt: 3}",
        ),
        corr("set", "temporal", "[login, key, gpd]", "10m", ""),
        corr("seq", "temporal_ordered", "[login, key, gpd]", "10m", ""),
    ]
}

/// Hits for every correlation of [`every_kind`], `users` apart.
fn every_kind_hits(plans: &Plans, from: i64, users: &[&str]) -> Vec<Hit> {
    let mut hits = Vec::new();
    let mut n = 0;
    for (i, user) in users.iter().enumerate() {
        let t = from + 7 * i as i64;
        let mut id = || {
            n += 1;
            format!("e{from}-{n}")
        };
        hits.push(hit(ci(plans, "count"), 0, t, user, &id()));
        hits.push(hit(ci(plans, "count"), 0, t + 4, user, &id()));
        hits.push(hit(ci(plans, "tumble"), 0, t, user, &id()));
        hits.push(valued(ci(plans, "distinct"), t, user, &id(), "i-1"));
        hits.push(valued(ci(plans, "distinct"), t + 1, user, &id(), "i-2"));
        hits.push(valued(ci(plans, "distinct-tumble"), t, user, &id(), "i-1"));
        hits.push(hit(ci(plans, "set"), 0, t, user, &id()));
        hits.push(hit(ci(plans, "set"), 2, t + 2, user, &id()));
        hits.push(hit(ci(plans, "seq"), 0, t, user, &id()));
        hits.push(hit(ci(plans, "seq"), 1, t + 3, user, &id()));
    }
    hits
}

#[test]
fn snapshot_then_restore_gives_equal_state() {
    let set = rule_set(&every_kind());
    let plans = set.plans();
    let mut a = Correlator::new(plans, DEFAULT_LATENESS, DEFAULT_MAX_KEYS);
    let out = feed(
        &mut a,
        plans,
        every_kind_hits(plans, 0, &["alice", "bob", "carol"]),
    );
    assert!(out.is_empty(), "{out:?}");
    let before = state(&a);
    assert_eq!(before.len(), 3 * 6, "{before:#?}");

    let bytes = a.snapshot(plans);
    let mut b = Correlator::new(plans, DEFAULT_LATENESS, DEFAULT_MAX_KEYS);
    b.restore(plans, &bytes).unwrap();
    assert_eq!(state(&b), before);
    assert_eq!(b.max_seen, a.max_seen);
    assert_eq!(b.stats, a.stats);
    assert_eq!(b.live_keys(), a.live_keys());
    // The tumbling windows' deadlines are rebuilt.
    assert_eq!(
        b.deadlines.clone().into_sorted_vec(),
        a.deadlines.clone().into_sorted_vec()
    );
    // Restoring over live state replaces it.
    b.restore(plans, &bytes).unwrap();
    assert_eq!(state(&b), before);

    // Both go on alike: the same findings for the same hits, then at the end of input.
    let more = every_kind_hits(plans, 60, &["alice", "bob", "dave"]);
    let mut out_a = feed(&mut a, plans, more.clone());
    let mut out_b = feed(&mut b, plans, more);
    assert!(!out_a.is_empty());
    a.advance(plans, true, &mut out_a);
    b.advance(plans, true, &mut out_b);
    let json = |v: &[Finding]| serde_json::to_value(v).unwrap();
    assert_eq!(json(&out_a), json(&out_b));
    assert_eq!(state(&a), state(&b));
}

#[test]
fn restore_refuses_other_versions_and_corrupt_bytes_and_drops_unfitting_state() {
    let set = rule_set(&every_kind());
    let plans = set.plans();
    let mut a = Correlator::new(plans, DEFAULT_LATENESS, DEFAULT_MAX_KEYS);
    feed(&mut a, plans, every_kind_hits(plans, 0, &["alice"]));
    let bytes = a.snapshot(plans);

    let mut b = Correlator::new(plans, DEFAULT_LATENESS, DEFAULT_MAX_KEYS);
    assert!(matches!(
        b.restore(plans, b"{\"version\": 1}"),
        Err(CorrelationSnapshotError::Version(1))
    ));
    assert!(matches!(
        b.restore(plans, b"not json"),
        Err(CorrelationSnapshotError::Corrupt(_))
    ));

    // Rules changed: `set` now refers to two rules, `count` became a tumbling count. Their
    // state no longer fits and is dropped; the rest is kept.
    let mut changed = every_kind();
    changed[0] = corr("count", "event_count", "[gpd]", "5m", "{lt: 3}");
    changed[4] = corr("set", "temporal", "[login, key]", "10m", "");
    let set2 = rule_set(&changed);
    let plans2 = set2.plans();
    let mut c = Correlator::new(plans2, DEFAULT_LATENESS, DEFAULT_MAX_KEYS);
    c.restore(plans2, &bytes).unwrap();
    let mut kept: Vec<&str> = state(&c)
        .iter()
        .map(|(ci, _, _)| plans2.plans[*ci as usize].corr.def.meta.id.as_str())
        .collect();
    kept.sort_unstable();
    assert_eq!(kept, ["distinct", "distinct-tumble", "seq", "tumble"]);
}
