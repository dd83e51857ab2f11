//! Tests of the baselines engine: warm-up, Start/End pairing, state round-trip, eviction.

use super::*;
use crate::rules::{Level, Logsource, RuleMeta, RuleSource};

pub(crate) fn doc(cfg: Config) -> BaselineDoc {
    BaselineDoc {
        meta: RuleMeta {
            id: "baseline-test".into(),
            name: None,
            title: "Unusual activity volume".into(),
            status: None,
            description: None,
            references: vec![],
            author: None,
            date: None,
            modified: None,
            tags: vec![],
            logsource: Logsource::default(),
            falsepositives: vec![],
            level: Level::Medium,
            fields: vec![],
            extra: vec![],
        },
        source: RuleSource {
            file: "test".into(),
            doc: 0,
            pos: Default::default(),
            id_pos: None,
        },
        config: cfg,
    }
}

fn obs(minute: i64, second: i64, key: &str, name: &str, error: Option<&str>) -> Obs {
    Obs {
        time: minute * 60_000 + second * 1000,
        key: key.into(),
        session: Some(format!("{key}/session")),
        write: error.is_none(),
        api_write: false,
        error: error.map(str::to_string),
        event_name: Some(name.into()),
        event_source: Some("ec2.amazonaws.com".into()),
        user_agent: Some("aws-cli/2".into()),
        source_ip: Some("198.51.100.7".into()),
        region: Some("eu-west-1".into()),
        account: Some("111122223333".into()),
        event_id: Some(format!("{key}-{minute}-{second}")),
    }
}

const ROLE: &str = "arn:aws:iam::111122223333:role/deploy-bot";

/// A steady principal: 2 write calls a minute from `from` to `to` (minutes).
fn steady(b: &mut Baselines, key: &str, from: i64, to: i64, out: &mut Vec<Finding>) {
    for m in from..to {
        b.observe(&obs(m, 10, key, "CreateTags", None), out);
        b.observe(&obs(m, 40, key, "CreateTags", None), out);
    }
}

#[test]
fn warm_up_and_first_seen_never_alert() {
    let mut b = Baselines::new(&doc(Config::default()));
    let mut out = Vec::new();
    // A never-seen principal bursts at once: no anomaly, whatever the volume.
    for m in 0..20 {
        for s in 0..50 {
            b.observe(&obs(m, s, ROLE, "RunInstances", None), &mut out);
        }
    }
    assert!(out.is_empty());
    // 12 hours later (still warming up): another burst, still nothing.
    for s in 0..50 {
        b.observe(&obs(12 * 60, s, ROLE, "RunInstances", None), &mut out);
    }
    assert!(out.is_empty());
}

#[test]
fn start_and_end_pair_up() {
    let mut b = Baselines::new(&doc(Config::default()));
    let mut out = Vec::new();
    let day = 1440;
    steady(&mut b, ROLE, 0, 2 * day, &mut out);
    assert!(
        out.is_empty(),
        "steady traffic alerted: {:?}",
        out.first().map(|f| &f.summary)
    );
    // A burst of 40 calls a minute for 12 minutes, then back to steady.
    let burst = 2 * day;
    for m in burst..burst + 12 {
        for s in 0..40 {
            b.observe(&obs(m, s, ROLE, "RunInstances", None), &mut out);
        }
    }
    steady(&mut b, ROLE, burst + 12, burst + 40, &mut out);
    let starts: Vec<&Finding> = out
        .iter()
        .filter(|f| f.details["phase"] == "start")
        .collect();
    let ends: Vec<&Finding> = out.iter().filter(|f| f.details["phase"] == "end").collect();
    assert_eq!(
        (starts.len(), ends.len()),
        (1, 1),
        "{:?}",
        out.iter().map(|f| &f.summary).collect::<Vec<_>>()
    );
    let (s, e) = (starts[0], ends[0]);
    assert_eq!(s.kind, Kind::Anomaly);
    assert_eq!(s.incident, e.incident);
    assert_ne!(s.id, e.id);
    assert_eq!(s.principal, ROLE);
    // Recognised within the first two minutes of the burst.
    let t = s.time_ms.unwrap();
    assert!(t < (burst + 2) * 60_000, "start at {:?}", s.time);
    assert!(s.summary.contains("role deploy-bot made"), "{}", s.summary);
    assert!(s.summary.contains("RunInstances"), "{}", s.summary);
    assert_eq!(e.details["end_reason"], "returned_to_normal");
    assert!(e.event_count >= 12 * 40 - 40, "{}", e.event_count);
    assert!(e.event_ids.len() <= 2 * model::IDS_KEPT);
    assert_eq!(
        e.details["attributions"]["event_names"][0]["value"],
        "RunInstances"
    );
    assert_eq!(
        e.details["duration_minutes"].as_i64(),
        Some(12 - (s.time_ms.unwrap() / 60_000 - burst))
    );
    // Deterministic: the same input gives the same ids.
    let mut b2 = Baselines::new(&doc(Config::default()));
    let mut out2 = Vec::new();
    steady(&mut b2, ROLE, 0, 2 * day, &mut out2);
    for m in burst..burst + 12 {
        for s in 0..40 {
            b2.observe(&obs(m, s, ROLE, "RunInstances", None), &mut out2);
        }
    }
    b2.finish(&mut out2);
    assert_eq!(out2[0].id, s.id);
    assert_eq!(out2[1].incident, s.incident);
    assert_eq!(out2[1].details["end_reason"], "end_of_input");
}

#[test]
fn error_storm_is_its_own_series() {
    let mut b = Baselines::new(&doc(Config::default()));
    let mut out = Vec::new();
    let day = 1440;
    steady(&mut b, ROLE, 0, 2 * day, &mut out);
    for m in 2 * day..2 * day + 6 {
        for s in 0..30 {
            b.observe(
                &obs(m, s, ROLE, "CreateTags", Some("AccessDenied")),
                &mut out,
            );
        }
    }
    b.finish(&mut out);
    let starts: Vec<&Finding> = out
        .iter()
        .filter(|f| f.details["phase"] == "start")
        .collect();
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].details["metric"], "error_rate");
    assert!(starts[0].summary.contains("failed calls"));
    assert!(starts[0].summary.contains("AccessDenied"));
}

#[test]
fn snapshot_round_trip_and_size() {
    let mut b = Baselines::new(&doc(Config::default()));
    let mut out = Vec::new();
    for k in 0..3 {
        steady(&mut b, &format!("{ROLE}{k}"), 0, 3 * 1440, &mut out);
    }
    let snap = b.snapshot();
    let text = serde_json::to_string(&snap).unwrap();
    let back: Snapshot = serde_json::from_str(&text).unwrap();
    assert_eq!(back, snap);
    let mut c = Baselines::new(&doc(Config::default()));
    c.restore(back);
    assert_eq!(c.snapshot(), snap);
    // Per series (one principal, write volume), serialised: well under 2 KB.
    for (_, _, s) in &snap.series {
        let n = serde_json::to_string(s).unwrap().len();
        assert!(n < 1024, "{n} bytes");
    }
    // Both continue identically.
    let (mut o1, mut o2) = (Vec::new(), Vec::new());
    for s in 0..60 {
        b.observe(
            &obs(3 * 1440 + 1, s, &format!("{ROLE}0"), "RunInstances", None),
            &mut o1,
        );
        c.observe(
            &obs(3 * 1440 + 1, s, &format!("{ROLE}0"), "RunInstances", None),
            &mut o2,
        );
    }
    assert_eq!(o1.len(), 1);
    assert_eq!(o1[0].id, o2[0].id);
}

#[test]
fn store_is_atomic_and_versioned() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Baselines::new(&doc(Config::default()));
    let mut out = Vec::new();
    steady(&mut b, ROLE, 0, 100, &mut out);
    assert!(store::load(dir.path()).unwrap().is_none());
    store::save(dir.path(), &b.snapshot()).unwrap();
    assert_eq!(store::load(dir.path()).unwrap(), Some(b.snapshot()));
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec![store::FILE_NAME.to_string()]);
    std::fs::write(store::path_in(dir.path()), r#"{"version":99}"#).unwrap();
    assert!(matches!(
        store::load(dir.path()),
        Err(store::StoreError::Version { found: 99, .. })
    ));
    std::fs::write(store::path_in(dir.path()), "nonsense").unwrap();
    assert!(matches!(
        store::load(dir.path()),
        Err(store::StoreError::Corrupt { .. })
    ));
}

#[test]
fn eviction_of_the_idlest_at_the_cap() {
    let cfg = Config {
        max_series: 10,
        ..Config::default()
    };
    let mut b = Baselines::new(&doc(cfg));
    let mut out = Vec::new();
    for k in 0..25i64 {
        b.observe(
            &obs(k, 0, &format!("user{k}"), "CreateTags", None),
            &mut out,
        );
    }
    // Two series per principal (write volume, error rate): 50 made, 10 kept.
    assert!(b.len() <= 10);
    assert_eq!(b.stats.evicted_series, 40);
    // The newest survive.
    let snap = b.snapshot();
    assert!(snap.series.iter().any(|(_, k, _)| k == "user24"));
    assert!(!snap.series.iter().any(|(_, k, _)| k == "user0"));
}

#[test]
fn silent_series_expire_after_the_history() {
    let mut b = Baselines::new(&doc(Config::default()));
    let mut out = Vec::new();
    b.observe(&obs(0, 0, "a", "CreateTags", None), &mut out);
    b.observe(&obs(8 * 1440, 0, "b", "CreateTags", None), &mut out);
    // Two series per principal.
    assert_eq!(b.len(), 2);
    assert_eq!(b.stats.expired_series, 2);
}
