//! Injected anomalies: which principals, when, where from, and at what rate (fixed from the
//! principal's history when the anomaly begins).

use crate::apis::{Api, BURST_WRITES, STORM_CALLS};
use crate::principals::{ATTACKER_AGENTS, Behaviour, Ident, Principal};
use crate::rng::Rng;
use crate::{AnomalyKind, BURST_FACTOR, FIRST_ANOMALY_DAY, MIN_ANOMALY_RATE, Params, REGIONS};

#[derive(Debug, Clone)]
pub(crate) struct Injected {
    pub(crate) principal: usize,
    pub(crate) kind: AnomalyKind,
    /// Minutes from the start.
    pub(crate) start: u32,
    pub(crate) minutes: u32,
    /// Calls per minute, fixed when the anomaly begins (from the history before it).
    pub(crate) rate: u32,
    pub(crate) usual_per_min: f64,
    pub(crate) region: usize,
    pub(crate) ip: String,
    pub(crate) agent: &'static str,
    pub(crate) calls: &'static [Api],
    pub(crate) id: String,
}

fn shuffle<T>(rng: &mut Rng, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = rng.range(0, i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// Chooses distinct principals and times: bursts and storms alternate, and so do humans
/// and automation.
pub(crate) fn schedule(p: &Params, principals: &[Principal], rng: &mut Rng) -> Vec<Injected> {
    let mut humans: Vec<usize> = principals
        .iter()
        .filter(|x| {
            matches!(x.behaviour, Behaviour::Human { .. }) && !matches!(x.ident, Ident::Root)
        })
        .map(|x| x.index)
        .collect();
    let mut automation: Vec<usize> = principals
        .iter()
        .filter(|x| matches!(x.behaviour, Behaviour::Automation { .. }))
        .map(|x| x.index)
        .collect();
    shuffle(rng, &mut humans);
    shuffle(rng, &mut automation);
    let mut out = Vec::new();
    for i in 0..p.anomalies {
        let kind = if i % 2 == 0 {
            AnomalyKind::WriteBurst
        } else {
            AnomalyKind::ErrorStorm
        };
        let (first, second) = if (i / 2) % 2 == 0 {
            (&mut humans, &mut automation)
        } else {
            (&mut automation, &mut humans)
        };
        let Some(principal) = first.pop().or_else(|| second.pop()) else {
            break; // Params::validate keeps enough principals.
        };
        let minutes = match kind {
            AnomalyKind::WriteBurst => rng.range(10, 31),
            AnomalyKind::ErrorStorm => rng.range(5, 16),
        } as u32;
        let day = rng.range(FIRST_ANOMALY_DAY as u64, p.days as u64) as u32;
        // Leave 15 minutes before midnight of the last day so a detector has time.
        let start = day * 1440 + rng.range(0, (1440 - minutes - 15) as u64) as u32;
        let home = principals[principal].home_region;
        let region = if kind == AnomalyKind::WriteBurst && rng.chance(0.5) {
            (home + 1 + rng.range(0, REGIONS.len() as u64 - 1) as usize) % REGIONS.len()
        } else {
            home
        };
        out.push(Injected {
            principal,
            kind,
            start,
            minutes,
            rate: 0,
            usual_per_min: 0.0,
            region,
            ip: format!("198.18.{}.{}", rng.range(0, 256), rng.range(1, 255)),
            agent: rng.pick_copy(ATTACKER_AGENTS),
            calls: match kind {
                AnomalyKind::WriteBurst => rng.pick_copy(BURST_WRITES),
                AnomalyKind::ErrorStorm => STORM_CALLS,
            },
            id: String::new(),
        });
    }
    // Ids in time order.
    out.sort_by_key(|a| (a.start, a.principal));
    for (i, a) in out.iter_mut().enumerate() {
        a.id = format!("a{:02}", i + 1);
    }
    out
}

/// Sets the rate of an anomaly from the principal's history: at least the floor, and
/// [`BURST_FACTOR`] times the busiest hour among the same hours of every previous day.
pub(crate) fn fix_rate(a: &mut Injected, pr: &Principal, rng: &mut Rng) {
    let hist = match a.kind {
        AnomalyKind::WriteBurst => &pr.hist_writes,
        AnomalyKind::ErrorStorm => &pr.hist_errors,
    };
    let first_hour = a.start / 60;
    let last_hour = (a.start + a.minutes - 1) / 60;
    let mut max = 0u32;
    let mut sum = 0u64;
    let mut n = 0u64;
    for h in first_hour..=last_hour {
        let mut back = h;
        while back >= 24 {
            back -= 24;
            let c = hist.get(back as usize).copied().unwrap_or(0);
            max = max.max(c);
            sum += c as u64;
            n += 1;
        }
    }
    let usual_max = max as f64 / 60.0;
    a.usual_per_min = if n == 0 {
        0.0
    } else {
        sum as f64 / n as f64 / 60.0
    };
    let extra = match a.kind {
        AnomalyKind::WriteBurst => rng.range(0, 15),
        AnomalyKind::ErrorStorm => rng.range(0, 30),
    } as u32;
    a.rate = (MIN_ANOMALY_RATE + extra).max((BURST_FACTOR * usual_max).ceil() as u32);
}
