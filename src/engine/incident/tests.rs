//! The alert stage on hand-made findings.

use super::*;
use crate::finding::{Body, CorrelationDetails, CorrelationInfo, MatchDetails, RuleRef, Window};
use crate::util::time::format_millis;

const MIN: Millis = 60_000;

fn rule(id: &str, level: Level) -> RuleRef {
    RuleRef {
        id: id.into(),
        title: format!("Rule {id}"),
        level,
        tags: Vec::new(),
    }
}

/// A match finding of rule `id` at `level` on event `event` at `t`, by `who`.
fn m(id: &str, level: Level, event: &str, t: Millis, who: &str) -> Finding {
    let body = Body::Match(MatchDetails {
        rule_file: "r.yml".into(),
        event_type: None,
        identity_account: None,
    });
    Finding::new(format!("{id}/{event}"), rule(id, level), body)
        .with_time(Some(format_millis(t)), Some(t))
        .with_who(who.into(), Some("111122223333".into()), None)
        .with_events(vec![event.into()], 1)
        .with_summary(format!("Rule {id}: {who} did {event}."))
}

fn correlation(id: &str, level: Level, t: Millis, who: &str) -> Finding {
    let body = Body::Correlation(Box::new(CorrelationDetails {
        correlation: CorrelationInfo {
            condition: serde_json::json!({"gte": 3}),
            count: 3,
            group: Default::default(),
            rules: vec!["x".into()],
            timespan: "10m".into(),
            translated_from: None,
            kind: "event_count".into(),
        },
        window: Window {
            start: format_millis(t - MIN),
            end: format_millis(t),
        },
        rule_file: "c.yml".into(),
    }));
    Finding::new(format!("{id}@{t}"), rule(id, level), body)
        .with_time(Some(format_millis(t)), Some(t))
        .with_who(who.into(), None, None)
        .with_events(vec![format!("c{t}")], 3)
}

/// Feeds `batches` (each: the findings released together, at event time = the first's time,
/// the watermark trailing it by `lag`), then ends; returns every alert.
fn run(settings: AlertSettings, batches: Vec<Vec<Finding>>, lag: Millis) -> Vec<Alert> {
    let mut inc = Incidents::new(settings);
    let mut out = Vec::new();
    for mut b in batches {
        let t = b.first().and_then(|f| f.time_ms).unwrap_or(0);
        let w = Some(t - lag);
        inc.offer(&mut b, w, &mut out);
        inc.advance(w, &mut out);
    }
    inc.advance(None, &mut out);
    out
}

fn kinds(alerts: &[Alert]) -> Vec<&'static str> {
    alerts.iter().map(|a| a.kind.as_str()).collect()
}

#[test]
fn findings_of_one_event_make_one_alert_at_the_highest_level() {
    let batch = vec![
        m("cis-4.5", Level::Low, "e1", 0, "alice"),
        m("stop-logging", Level::Critical, "e1", 0, "alice"),
        m("cis-info", Level::Informational, "e1", 0, "alice"),
    ];
    let alerts = run(AlertSettings::default(), vec![batch], 0);
    assert_eq!(kinds(&alerts), ["new"]);
    let a = &alerts[0];
    assert_eq!(a.level, Level::Critical);
    assert_eq!(a.lead.rule.id, "stop-logging");
    assert_eq!(a.findings.len(), 3);
    assert!(
        a.summary().contains("Also: Rule cis-4.5; Rule cis-info."),
        "{}",
        a.summary()
    );
}

#[test]
fn thirty_repeats_give_one_new_one_update_and_one_close() {
    let mut batches: Vec<Vec<Finding>> = (0..30)
        .map(|i| {
            vec![m(
                "root-use",
                Level::High,
                &format!("e{i}"),
                i * 20_000,
                "root",
            )]
        })
        .collect();
    // Later traffic moves event time past the update cadence, then past the window.
    batches.push(vec![m("other", Level::Low, "y", 20 * MIN, "carol")]);
    batches.push(vec![m("other", Level::Low, "z", 3 * 60 * MIN, "carol")]);
    let alerts = run(AlertSettings::default(), batches, 0);
    let alerts: Vec<Alert> = alerts
        .into_iter()
        .filter(|a| a.lead.principal == "root")
        .collect();
    assert_eq!(kinds(&alerts), ["new", "update", "close"]);
    assert_eq!(alerts[0].findings.len(), 1);
    // Everything after the first went into the update (all within 10 minutes), sent when
    // event time passed the 15-minute cadence.
    assert_eq!(alerts[1].findings.len(), 29);
    assert_eq!(alerts[1].time, 20 * MIN);
    assert_eq!(alerts[2].incident_findings, 30);
    assert_eq!(alerts[2].time, 60 * MIN);
    assert!(alerts.iter().all(|a| a.incident == alerts[0].incident));
    // When the input ends before the cadence, the closing summary carries what waited.
    let ended: Vec<Vec<Finding>> = (0..30)
        .map(|i| {
            vec![m(
                "root-use",
                Level::High,
                &format!("e{i}"),
                i * 20_000,
                "root",
            )]
        })
        .collect();
    let alerts = run(AlertSettings::default(), ended, 0);
    assert_eq!(kinds(&alerts), ["new", "close"]);
    assert_eq!(alerts[1].findings.len(), 29);
}

#[test]
fn updates_wait_for_their_cadence_and_a_quiet_window_closes() {
    // A repeat every 4 minutes for 40 minutes, then quiet; the watermark is event time.
    let mut batches: Vec<Vec<Finding>> = (0..11)
        .map(|i| vec![m("r", Level::Medium, &format!("e{i}"), i * 4 * MIN, "bob")])
        .collect();
    // Much later, unrelated traffic moves event time on.
    batches.push(vec![m("other", Level::Medium, "z", 3 * 60 * MIN, "carol")]);
    let alerts = run(AlertSettings::default(), batches, 0);
    let bob: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.lead.principal == "bob")
        .collect();
    let k: Vec<&str> = bob.iter().map(|a| a.kind.as_str()).collect();
    // new at 0; an update once event time is 15 minutes past the last alert (at 16, then at
    // 32, carrying what came until then); the 36- and 40-minute findings wait, and as event
    // time then jumps past the window, the closing summary (at 60) carries them.
    assert_eq!(k, ["new", "update", "update", "close"]);
    let times: Vec<Millis> = bob.iter().map(|a| a.time).collect();
    assert_eq!(times, [0, 16 * MIN, 32 * MIN, 60 * MIN]);
    let carried: Vec<usize> = bob.iter().map(|a| a.findings.len()).collect();
    assert_eq!(carried, [1, 4, 4, 2]);
    // After the window, a repeat opens a new incident.
    let later = run(
        AlertSettings::default(),
        vec![
            vec![m("r", Level::Medium, "a", 0, "bob")],
            vec![m("r", Level::Medium, "b", 61 * MIN, "bob")],
        ],
        0,
    );
    assert_eq!(kinds(&later), ["new", "new"]);
    assert_ne!(later[0].incident, later[1].incident);
}

#[test]
fn a_high_rule_for_the_same_principal_is_its_own_incident_sent_at_once() {
    let alerts = run(
        AlertSettings::default(),
        vec![
            vec![m("r", Level::Medium, "a", 0, "dave")],
            vec![
                m("r", Level::Medium, "b", MIN, "dave"),
                m("x", Level::Informational, "b", MIN, "dave"),
            ],
            // Same rule and principal: the lead of this event is the high rule, another key.
            vec![m("r-high", Level::High, "c", 2 * MIN, "dave")],
        ],
        0,
    );
    // r's repeats wait for the cadence; the input ends first, so its close carries them.
    assert_eq!(kinds(&alerts), ["new", "new", "close"]);
    assert_eq!(alerts[1].lead.rule.id, "r-high");
    assert_eq!(alerts[2].findings.len(), 2);
}

#[test]
fn below_the_alert_level_nothing_is_sent_until_it_rises() {
    let low = run(
        AlertSettings::default(),
        vec![
            vec![m("cis", Level::Low, "a", 0, "erin")],
            vec![m("cis", Level::Low, "b", MIN, "erin")],
        ],
        0,
    );
    assert!(low.is_empty(), "{:?}", kinds(&low));
    // A correlation at high for the same principal joins the open (silent) incident and
    // raises it: sent at once, as the incident's first alert, with what came before.
    let raised = run(
        AlertSettings::default(),
        vec![
            vec![m("cis", Level::Low, "a", 0, "erin")],
            vec![correlation("burst", Level::High, 2 * MIN, "erin")],
        ],
        0,
    );
    assert_eq!(kinds(&raised), ["new"]);
    assert_eq!(raised[0].level, Level::High);
    assert_eq!(raised[0].findings.len(), 2);
}

#[test]
fn a_correlation_joins_the_principals_open_incident_at_once_when_high() {
    let alerts = run(
        AlertSettings::default(),
        vec![
            vec![m("r", Level::Medium, "a", 0, "frank")],
            vec![correlation("burst", Level::High, 3 * MIN, "frank")],
        ],
        0,
    );
    assert_eq!(kinds(&alerts), ["new", "update", "close"]);
    assert_eq!(alerts[1].level, Level::High);
    assert_eq!(alerts[1].incident, alerts[0].incident);
}

#[test]
fn every_finding_carries_its_incident_and_alerts_are_deterministic() {
    let make = || -> Vec<Vec<Finding>> {
        (0..20)
            .map(|i| {
                vec![m(
                    if i % 3 == 0 { "a" } else { "b" },
                    Level::High,
                    &format!("e{i}"),
                    i * 7 * MIN,
                    if i % 2 == 0 { "p1" } else { "p2" },
                )]
            })
            .collect()
    };
    let mut inc = Incidents::new(AlertSettings::default());
    let mut out = Vec::new();
    for mut b in make() {
        let t = b[0].time_ms;
        inc.offer(&mut b, t, &mut out);
        assert!(
            b.iter()
                .all(|f| !f.incident.is_empty() && f.incident != f.id)
        );
    }
    let json = |alerts: &[Alert]| serde_json::to_string(alerts).unwrap();
    assert_eq!(
        json(&run(AlertSettings::default(), make(), 0)),
        json(&run(AlertSettings::default(), make(), 0))
    );
}

/// Saving the open incidents mid-way and going on in a new stage (a restart) gives the same
/// alerts as one uninterrupted run: nothing repeated, no update lost.
#[test]
fn snapshot_and_restore_mid_incident_give_the_same_alerts() {
    let make = || -> Vec<Vec<Finding>> {
        (0..12)
            .map(|i| vec![m("r", Level::High, &format!("e{i}"), i * 6 * MIN, "gina")])
            .collect()
    };
    let whole = run(AlertSettings::default(), make(), 0);
    // The 60-minute finding comes as the first window ends: it opens the next incident.
    assert_eq!(
        kinds(&whole),
        ["new", "update", "update", "update", "new", "close", "close"]
    );
    for split in 1..12 {
        let mut first = Incidents::new(AlertSettings::default());
        let mut out = Vec::new();
        let mut batches = make();
        let rest = batches.split_off(split);
        for mut b in batches {
            let w = b[0].time_ms;
            first.offer(&mut b, w, &mut out);
            first.advance(w, &mut out);
        }
        let saved = serde_json::to_string(&first.snapshot()).unwrap();
        let mut second = Incidents::new(AlertSettings::default());
        second
            .restore(&serde_json::from_str(&saved).unwrap())
            .unwrap();
        for mut b in rest {
            let w = b[0].time_ms;
            second.offer(&mut b, w, &mut out);
            second.advance(w, &mut out);
        }
        second.advance(None, &mut out);
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            serde_json::to_string(&whole).unwrap(),
            "split after {split} batches"
        );
        assert_eq!(second.stats, {
            let mut i = Incidents::new(AlertSettings::default());
            let mut o = Vec::new();
            for mut b in make() {
                let w = b[0].time_ms;
                i.offer(&mut b, w, &mut o);
                i.advance(w, &mut o);
            }
            i.advance(None, &mut o);
            i.stats
        });
    }
    let mut bad = Incidents::new(AlertSettings::default()).snapshot();
    bad["version"] = 9.into();
    assert!(matches!(
        Incidents::new(AlertSettings::default()).restore(&bad),
        Err(IncidentStateError::Version(9))
    ));
}

/// A rule's `suppress:` is its incidents' dedup key and window: its `by` values (here a bucket)
/// instead of the principal, its `for` instead of the global window.
#[test]
fn a_rules_own_key_and_window_decide_its_incidents() {
    let keyed = |who: &str, event: &str, t: Millis, bucket: &str| {
        m("bucket-public", Level::High, event, t, who).with_suppress_key(bucket.into())
    };
    let windows = HashMap::from([("bucket-public".to_string(), 10 * MIN)]);
    let mut inc = Incidents::new(AlertSettings::default()).with_rule_windows(windows);
    let mut out = Vec::new();
    for mut b in [
        vec![keyed("alice", "a", 0, "logs")],
        // Another principal, the same bucket: the same incident.
        vec![keyed("bob", "b", 2 * MIN, "logs")],
        // Another bucket: its own incident.
        vec![keyed("alice", "c", 3 * MIN, "backups")],
        // The same bucket after the rule's 10-minute window: a new incident.
        vec![keyed("bob", "d", 11 * MIN, "logs")],
    ] {
        let w = b[0].time_ms;
        inc.offer(&mut b, w, &mut out);
        inc.advance(w, &mut out);
    }
    inc.advance(None, &mut out);
    let news: Vec<&Alert> = out.iter().filter(|a| a.kind == AlertKind::New).collect();
    assert_eq!(news.len(), 3, "{:?}", kinds(&out));
    assert_eq!(news[0].lead.principal, "alice");
    assert_eq!(news[2].lead.principal, "bob");
    let closes: Vec<&Alert> = out.iter().filter(|a| a.kind == AlertKind::Close).collect();
    assert_eq!(closes.len(), 1);
    assert_eq!(closes[0].incident_findings, 2);
    assert_eq!(closes[0].time, 10 * MIN);
}
