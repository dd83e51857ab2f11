//! Tests of the baselines engine: warm-up, Start/End pairing, state round-trip, eviction.

use super::*;
use crate::rules::{Level, Logsource, RuleMeta, RuleSource};

pub(crate) fn doc(cfg: BaselineConfig) -> BaselineDoc {
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
    let session = format!("{key}/session");
    let id = format!("{key}-{minute}-{second}");
    Obs::new(
        minute * 60_000 + second * 1000,
        error.is_none(),
        false,
        [
            Some(key),
            Some(&session),
            error,
            Some(name),
            Some("ec2.amazonaws.com"),
            Some("aws-cli/2"),
            Some("198.51.100.7"),
            Some("eu-west-1"),
            Some("111122223333"),
            Some(&id),
        ],
    )
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
    let mut b = Baselines::new(&doc(BaselineConfig::default()));
    let mut out = Vec::new();
    // A never-seen principal bursts at once: no anomaly, whatever the volume.
    for m in 0..20 {
        for s in 0..50 {
            b.observe(&obs(m, s, ROLE, "RunInstances", None), &mut out);
        }
    }
    assert!(out.is_empty());
    assert_eq!(b.stats.new_principals, 1);
    assert_eq!(b.stats.new_principal_samples, vec![ROLE.to_string()]);
    // 12 hours later (still warming up): another burst, still nothing.
    for s in 0..50 {
        b.observe(&obs(12 * 60, s, ROLE, "RunInstances", None), &mut out);
    }
    assert!(out.is_empty());
}

#[test]
fn start_and_end_pair_up() {
    let mut b = Baselines::new(&doc(BaselineConfig::default()));
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
        .filter(|f| f.details.to_json()["phase"] == "start")
        .collect();
    let ends: Vec<&Finding> = out
        .iter()
        .filter(|f| f.details.to_json()["phase"] == "end")
        .collect();
    assert_eq!(
        (starts.len(), ends.len()),
        (1, 1),
        "{:?}",
        out.iter().map(|f| &f.summary).collect::<Vec<_>>()
    );
    let (s, e) = (starts[0], ends[0]);
    assert_eq!(s.kind(), crate::finding::Kind::Anomaly);
    assert_eq!(s.incident, e.incident);
    assert_ne!(s.id, e.id);
    assert_eq!(s.principal, ROLE);
    // Recognised within the first two minutes of the burst.
    let t = s.time_ms.unwrap();
    assert!(t < (burst + 2) * 60_000, "start at {:?}", s.time);
    assert!(s.summary.contains("role deploy-bot made"), "{}", s.summary);
    assert!(s.summary.contains("RunInstances"), "{}", s.summary);
    assert_eq!(e.details.to_json()["end_reason"], "returned_to_normal");
    // The line a backtest writes is the serialised finding.
    for f in [s, e] {
        let mut line = Vec::new();
        f.write_json(&mut line).unwrap();
        assert_eq!(line, serde_json::to_vec(f).unwrap());
    }
    assert!(e.event_count >= 12 * 40 - 40, "{}", e.event_count);
    assert!(e.event_ids.len() <= 2 * model::IDS_KEPT);
    assert_eq!(
        e.details.to_json()["attributions"]["event_names"][0]["value"],
        "RunInstances"
    );
    assert_eq!(
        e.details.to_json()["duration_minutes"].as_i64(),
        Some(12 - (s.time_ms.unwrap() / 60_000 - burst))
    );
    // Deterministic: the same input gives the same ids.
    let mut b2 = Baselines::new(&doc(BaselineConfig::default()));
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
    assert_eq!(out2[1].details.to_json()["end_reason"], "end_of_input");
}

#[test]
fn error_storm_is_its_own_series() {
    let mut b = Baselines::new(&doc(BaselineConfig::default()));
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
        .filter(|f| f.details.to_json()["phase"] == "start")
        .collect();
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].details.to_json()["metric"], "error_rate");
    assert!(starts[0].summary.contains("calls refused"));
    assert!(starts[0].summary.contains("AccessDenied"));
}

#[test]
fn snapshot_round_trip_and_size() {
    let mut b = Baselines::new(&doc(BaselineConfig::default()));
    let mut out = Vec::new();
    for k in 0..3 {
        steady(&mut b, &format!("{ROLE}{k}"), 0, 3 * 1440, &mut out);
    }
    let snap = b.snapshot();
    let text = serde_json::to_string(&snap).unwrap();
    let back: Snapshot = serde_json::from_str(&text).unwrap();
    assert_eq!(back, snap);
    let mut c = Baselines::new(&doc(BaselineConfig::default()));
    c.restore(back);
    assert_eq!(c.snapshot(), snap);
    // Per principal (its write-volume and error-rate series with their keys), serialised:
    // under 2 KB.
    let mut per_principal: std::collections::HashMap<&str, usize> = Default::default();
    for (m, k, s) in &snap.series {
        *per_principal.entry(k).or_default() += serde_json::to_string(&(m, k, s)).unwrap().len();
    }
    assert_eq!(per_principal.len(), 3);
    // In memory: the fixed part of a series plus its week profile (write volume only).
    assert!(
        std::mem::size_of::<model::Series>() <= 640,
        "{}",
        std::mem::size_of::<model::Series>()
    );
    for (k, n) in per_principal {
        assert!(n < 2048, "{k}: {n} bytes");
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
    let mut b = Baselines::new(&doc(BaselineConfig::default()));
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
    let cfg = BaselineConfig {
        max_series: 10,
        ..BaselineConfig::default()
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
    let mut b = Baselines::new(&doc(BaselineConfig::default()));
    let mut out = Vec::new();
    b.observe(&obs(0, 0, "a", "CreateTags", None), &mut out);
    b.observe(&obs(8 * 1440, 0, "b", "CreateTags", None), &mut out);
    // Two series per principal.
    assert_eq!(b.len(), 2);
    assert_eq!(b.stats.expired_series, 2);
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// A Poisson draw (Knuth; λ is small here).
    fn poisson(&mut self, lambda: f64) -> u32 {
        let l = (-lambda).exp();
        let (mut k, mut p) = (0u32, 1.0);
        loop {
            p *= self.unit();
            if p <= l {
                return k;
            }
            k += 1;
        }
    }
}

/// 8 days of traffic for 120 principals (sparse, steady and seasonal), 3 daily jobs and 12
/// injected anomalies (write bursts and error storms) after the warm-up; checks recall,
/// precision, time to detection and silence on the daily jobs after their third day.
#[test]
fn simulated_week_meets_the_targets() {
    let day = 1440i64;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Per principal: base rate per minute and a business-hours factor.
    let principals: Vec<(String, f64, f64)> = (0..120)
        .map(|i| {
            let rate = match i % 4 {
                0 => 0.005,
                1 => 0.1,
                2 => 0.8,
                _ => 3.0,
            } * (0.5 + rng.unit());
            let seasonal = if i % 3 == 0 { 3.0 } else { 1.0 };
            (
                format!("arn:aws:iam::111122223333:role/p{i:03}"),
                rate,
                seasonal,
            )
        })
        .collect();
    // Daily jobs: (principal index, minute of day, calls per minute, minutes).
    let jobs = [
        (5usize, 2 * 60, 40u32, 12i64),
        (17, 13 * 60 + 30, 25, 20),
        (42, 22 * 60, 60, 10),
    ];
    // Anomalies: (principal, start minute, per minute, minutes, error storm?).
    let mut anomalies = Vec::new();
    for k in 0..12i64 {
        let p = (7 + 9 * k as usize) % 120;
        let start = 2 * day + 60 + k * 8 * 60 + (k * 37) % 60;
        let storm = k % 3 == 2;
        let per_min = if storm {
            25
        } else {
            20 + (principals[p].1 * 12.0) as u32
        };
        let len = if storm { 5 + k % 10 } else { 10 + (k * 7) % 20 };
        anomalies.push((p, start, per_min, len, storm));
    }
    let mut b = Baselines::new(&doc(BaselineConfig::default()));
    let mut out = Vec::new();
    for m in 0..8 * day {
        let hour = (m / 60) % 24;
        let business = (8..18).contains(&hour);
        for (i, (key, rate, seasonal)) in principals.iter().enumerate() {
            let lambda = if business { rate * seasonal } else { *rate };
            let mut n = rng.poisson(lambda);
            let mut errors = 0;
            for (p, at, per, len) in jobs.iter().map(|j| (j.0, j.1, j.2, j.3)) {
                let jitter = (m / day * 7) % 5 - 2;
                let s = m / day * day + at + jitter;
                if p == i && (s..s + len).contains(&m) {
                    n += per;
                }
            }
            for &(p, at, per, len, storm) in &anomalies {
                if p == i && (at..at + len).contains(&m) {
                    if storm {
                        errors += per;
                    } else {
                        n += per;
                    }
                }
            }
            for c in 0..n + errors {
                let second = i64::from(c * 60 / (n + errors).max(1));
                let err = (c >= n).then_some("AccessDenied");
                b.observe(&obs(m, second, key, "RunInstances", err), &mut out);
            }
        }
    }
    b.finish(&mut out);
    let starts: Vec<&Finding> = out
        .iter()
        .filter(|f| f.details.to_json()["phase"] == "start")
        .collect();
    let ends = out
        .iter()
        .filter(|f| f.details.to_json()["phase"] == "end")
        .count();
    assert_eq!(starts.len(), ends, "every Start has its End");
    let mut matched = vec![false; anomalies.len()];
    let mut latencies = Vec::new();
    let mut false_pos = Vec::new();
    for f in &starts {
        let t = f.time_ms.unwrap() / 60_000;
        let hit = anomalies.iter().position(|&(p, at, _, len, storm)| {
            principals[p].0 == f.principal
                && (at..=at + len).contains(&t)
                && (f.details.to_json()["metric"] == "error_rate") == storm
        });
        match hit {
            Some(k) => {
                if !matched[k] {
                    latencies.push(t - anomalies[k].1);
                }
                matched[k] = true;
            }
            None => false_pos.push((f.principal.clone(), t / day, t % day, f.summary.clone())),
        }
    }
    let recall = matched.iter().filter(|m| **m).count() as f64 / anomalies.len() as f64;
    let precision = (starts.len() - false_pos.len()) as f64 / starts.len().max(1) as f64;
    latencies.sort();
    let median = latencies
        .get(latencies.len() / 2)
        .copied()
        .unwrap_or(i64::MAX);
    let job_alerts_late: Vec<_> = false_pos
        .iter()
        .filter(|(k, d, _, _)| *d >= 3 && jobs.iter().any(|j| principals[j.0].0 == *k))
        .collect();
    eprintln!(
        "simulated week: {} starts, recall {recall:.3}, precision {precision:.3}, median latency {median} min, latencies {latencies:?}",
        starts.len()
    );
    assert!(recall >= 0.95, "recall {recall}: {matched:?}");
    assert!(precision >= 0.9, "precision {precision}: {false_pos:#?}");
    assert!(median <= 2, "median latency {median} min: {latencies:?}");
    assert!(job_alerts_late.is_empty(), "{job_alerts_late:#?}");
}

#[test]
fn api_volume_series_like_insights() {
    let cfg = BaselineConfig {
        api_volume: true,
        write_volume: false,
        error_rate: false,
        ..BaselineConfig::default()
    };
    let mut b = Baselines::new(&doc(cfg));
    let mut out = Vec::new();
    let api = |minute: i64, second: i64, key: &str| {
        let o = obs(minute, second, key, "RunInstances", None);
        Obs::new(
            o.time,
            false,
            true,
            [
                Some(key),
                None,
                None,
                Some("RunInstances"),
                Some("ec2.amazonaws.com"),
                None,
                None,
                Some("eu-west-1"),
                Some("111122223333"),
                None,
            ],
        )
    };
    // Many principals each calling RunInstances now and then: the API's volume is steady.
    for m in 0..2 * 1440 {
        b.observe(&api(m, 0, &format!("user{}", m % 7)), &mut out);
    }
    assert!(out.is_empty());
    // Ten principals at once, 5 calls a minute each: the API's volume is anomalous, though no
    // single principal is.
    for m in 2 * 1440..2 * 1440 + 5 {
        for k in 0..50 {
            b.observe(&api(m, k, &format!("user{}", k % 10)), &mut out);
        }
    }
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].details.to_json()["metric"], "api_volume");
    assert_eq!(
        out[0].principal,
        "111122223333|eu-west-1|ec2.amazonaws.com:RunInstances"
    );
    assert!(out[0].summary.contains("was called"), "{}", out[0].summary);
    assert_eq!(
        b.len(),
        1,
        "no per-principal series when those metrics are off"
    );
}

/// A write by `key` from a given user agent and source IP.
fn obs_from(minute: i64, second: i64, key: &str, name: &str, ua: &str, ip: &str) -> Obs {
    let id = format!("{key}-{minute}-{second}-{name}");
    Obs::new(
        minute * 60_000 + second * 1000,
        true,
        false,
        [
            Some(key),
            Some("session"),
            None,
            Some(name),
            Some("ec2.amazonaws.com"),
            Some(ua),
            Some(ip),
            Some("eu-west-1"),
            Some("111122223333"),
            Some(&id),
        ],
    )
}

#[test]
fn start_attributes_the_whole_window_of_its_series_only() {
    let mut b = Baselines::new(&doc(BaselineConfig::default()));
    let mut out = Vec::new();
    let day = 1440;
    let other = "arn:aws:iam::111122223333:role/other-bot";
    steady(&mut b, ROLE, 0, 2 * day, &mut out);
    steady(&mut b, other, 0, 2 * day, &mut out);
    // Both burst at once; ROLE with RunInstances and CreateTags from one agent and IP, the
    // other with TerminateInstances from another.
    let burst = 2 * day;
    for m in burst..burst + 6 {
        for s in 0..12 {
            let name = if s % 4 == 3 {
                "CreateTags"
            } else {
                "RunInstances"
            };
            b.observe(
                &obs_from(m, s, ROLE, name, "aws-cli/1.16.312", "198.18.0.9"),
                &mut out,
            );
            b.observe(
                &obs_from(
                    m,
                    s,
                    other,
                    "TerminateInstances",
                    "boto3/1.9",
                    "203.0.113.5",
                ),
                &mut out,
            );
        }
    }
    steady(&mut b, ROLE, burst + 6, burst + 30, &mut out);
    steady(&mut b, other, burst + 6, burst + 30, &mut out);
    let start = out
        .iter()
        .find(|f| f.principal == ROLE && f.details.to_json()["phase"] == "start")
        .expect("a Start for ROLE");
    let at = &start.details.to_json()["attributions"];
    let total = |v: &serde_json::Value| -> u64 {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x["count"].as_u64().unwrap())
            .sum()
    };
    // Every record of the window that fired is attributed, not only the one that tipped it.
    let in_window = start.details.to_json()["observed"]["in_window"]
        .as_u64()
        .unwrap();
    assert!(in_window >= 20, "{in_window}");
    assert_eq!(total(&at["event_names"]), in_window, "{at}");
    assert_eq!(at["event_names"][0]["value"], "RunInstances");
    assert_eq!(at["event_names"][1]["value"], "CreateTags");
    assert_eq!(at["user_agents"][0]["value"], "aws-cli/1.16.312");
    // The other principal's burst, at the same time, is not in it.
    assert!(
        !at.to_string().contains("boto3") && !at.to_string().contains("Terminate"),
        "{at}"
    );
    assert_eq!(at["source_ips"][0]["value"], "198.18.0.9");
    assert_eq!(total(&at["source_ips"]), in_window);
    assert_eq!(start.event_ids.len() as u64, in_window);
    assert!(
        start.summary.contains("(RunInstances ") && start.summary.contains("CreateTags "),
        "{}",
        start.summary
    );
    // The End covers the whole anomaly once: its attributions add up to its count.
    let end = out
        .iter()
        .find(|f| f.principal == ROLE && f.details.to_json()["phase"] == "end")
        .expect("an End for ROLE");
    let at = &end.details.to_json()["attributions"];
    assert_eq!(total(&at["event_names"]), end.event_count, "{at}");
    assert_eq!(total(&at["user_agents"]), end.event_count);
    // 6 minutes of 12 from the burst's start, plus the steady calls while it was open.
    let burst_calls = at["event_names"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["value"] == "RunInstances")
        .map(|x| x["count"].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(burst_calls, 6 * 9);
}

#[test]
fn recent_observations_are_bounded_and_not_in_snapshots() {
    let mut b = Baselines::new(&doc(BaselineConfig::default()));
    let mut out = Vec::new();
    steady(&mut b, ROLE, 0, 60, &mut out);
    // Two a minute; the last `window + 1` minutes are kept.
    assert_eq!(b.recent.len(), 2 * (b.cfg.window_minutes as usize + 1));
    let snap = b.snapshot();
    let mut c = Baselines::new(&doc(BaselineConfig::default()));
    c.restore(snap);
    assert!(c.recent.is_empty());
    assert_eq!(b.stats.attribution_drops, 0);
}
