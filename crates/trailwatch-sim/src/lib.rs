//! Simulated CloudTrail traffic with labelled anomalies, and the scorer that judges anomaly
//! findings against the labels (issue 6, per-principal baselines).
//!
//! The generator is deterministic: the same [`Params`] give the same bytes. It writes an
//! S3-layout archive (`AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/…json.gz`, one gzip
//! file of `{"Records":[…]}` per account, region and 5 minutes, records shuffled a little and
//! a few delivered one file late, as CloudTrail does) and `labels.json`, which lists the
//! injected anomalies and the benign daily jobs. Principals:
//!
//! - **humans** (IAM users, per-person roles, the account root): busy office hours in their
//!   time zone, quiet nights, much lower weekends; a few writes per hour at the peak;
//! - **automation** (roles with hourly sessions, service users): a roughly constant rate day
//!   and night, 1–6 writes per minute;
//! - **daily jobs**: a few reads, and once a day at the same hour a run of 100–400 writes in
//!   10–20 minutes. Benign: never labelled, a model must learn them within 3 days;
//! - read traffic for all of them, and a background of refused calls (a few per day).
//!
//! Anomalies are injected from day 2 on (a model with a 24 h warm-up has history), on
//! humans and automation alike: **write bursts** (at least 20 writes/min and at least 10× the
//! busiest rate the principal had in the same hours on the previous days, for 10–30 minutes,
//! from an unusual source IP and user agent) and **error storms** (at least 20 refused calls
//! per minute for 5–15 minutes). The rate inside an anomaly is exact per minute, so the label
//! holds for every minute, not only on average.
//!
//! Layout: [`Params`] and [`generate`] here; the simulated population in `principals`
//! (calling the APIs of `apis`), injected anomalies in `anomalies`, CloudTrail records in
//! `records`, the archive files in `write`, [`Labels`] in `labels`, random numbers in `rng`,
//! and the scorer in [`score`] (reading event times with `time`). It does not depend on the
//! `trailwatch` package, which uses it for `trailwatch simulate`.

mod anomalies;
mod apis;
mod labels;
mod principals;
mod records;
mod rng;
pub mod score;
mod time;
mod write;

pub use labels::{AnomalyKind, AnomalyLabel, GeneratorInfo, Labels, PeriodicLabel};
pub use rng::Rng;
pub use write::Summary;

use anomalies::{fix_rate, schedule};
use apis::{READS, is_global};
use chrono::DateTime;
use principals::{Behaviour, population};
use records::{Call, render, rfc3339};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use write::{Writer, prepare};

/// Bumped whenever the same parameters would give different traffic.
pub const GENERATOR_VERSION: u32 = 1;
/// Accounts of the simulated organisation.
pub const ACCOUNTS: [&str; 2] = ["402938475610", "518273645091"];
/// Regions in use; IAM and STS calls are recorded in us-east-1 only.
pub const REGIONS: [&str; 4] = ["us-east-1", "eu-west-1", "us-west-2", "ap-southeast-2"];
/// First instant of the simulated traffic (a Thursday, so 8 days include a weekend).
pub const START: &str = "2026-10-01T00:00:00Z";
/// Minutes of event time per archive file.
const FILE_MINUTES: u32 = 5;
/// Share of records delivered one file late.
const LATE_SHARE: f64 = 0.03;
/// Anomalies start on this day or later (0-based).
pub const FIRST_ANOMALY_DAY: u32 = 2;
/// Floor of the per-minute rate inside an anomaly.
pub const MIN_ANOMALY_RATE: u32 = 20;
/// Factor over the principal's busiest rate in the same hours on previous days.
pub const BURST_FACTOR: f64 = 12.0;

/// What to generate. `scale` multiplies every normal rate (not the anomaly floors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub days: u32,
    pub principals: usize,
    pub anomalies: usize,
    pub seed: u64,
    pub scale: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            days: 8,
            principals: 120,
            anomalies: 12,
            seed: 1,
            scale: 1.0,
        }
    }
}

impl Params {
    /// Checks the parameters can produce what they promise.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |m: String| Err(SimError::Params(m));
        if self.days == 0 || self.days > 90 {
            return bad(format!("days must be 1 to 90, not {}", self.days));
        }
        if self.anomalies > 0 && self.days <= FIRST_ANOMALY_DAY {
            return bad(format!(
                "anomalies are injected from day {FIRST_ANOMALY_DAY} on (after a day of history); \
                 use at least {} days or --anomalies 0",
                FIRST_ANOMALY_DAY + 1
            ));
        }
        if self.principals < 10 || self.principals > 100_000 {
            return bad(format!(
                "principals must be 10 to 100000, not {}",
                self.principals
            ));
        }
        if !(self.scale.is_finite() && self.scale > 0.0 && self.scale <= 100.0) {
            return bad(format!(
                "scale must be above 0 and at most 100, not {}",
                self.scale
            ));
        }
        let eligible = self.principals - periodic_count(self.principals) - ACCOUNTS.len();
        if self.anomalies > eligible {
            return bad(format!(
                "{} anomalies need as many distinct principals; only {eligible} humans and \
                 automation principals are simulated (raise --principals)",
                self.anomalies
            ));
        }
        Ok(())
    }
}

/// How many daily jobs a population has (at least 3).
pub(crate) fn periodic_count(principals: usize) -> usize {
    (principals / 40).max(3)
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid parameters: {0}")]
    Params(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{}: the directory is not empty and holds no earlier simulation (labels.json); choose an empty or new directory",
        path.display()
    )]
    NotEmpty { path: PathBuf },
    #[error("{}: {message}", path.display())]
    Labels { path: PathBuf, message: String },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SimError + '_ {
    move |source| SimError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Millisecond timestamp of [`START`].
pub fn start_millis() -> i64 {
    // START is a constant, valid RFC 3339 time.
    DateTime::parse_from_rfc3339(START).map_or(0, |t| t.timestamp_millis())
}

fn info(p: &Params) -> GeneratorInfo {
    GeneratorInfo {
        version: GENERATOR_VERSION,
        params: p.clone(),
        start: START.to_string(),
        accounts: ACCOUNTS.iter().map(|s| s.to_string()).collect(),
        regions: REGIONS.iter().map(|s| s.to_string()).collect(),
    }
}

/// Writes the archive and `labels.json` into `dir` (see the crate documentation). With
/// `reuse`, an earlier simulation with the same parameters is kept as it is. `labels.json`
/// is written last, so its presence means the archive is complete.
pub fn generate(dir: &Path, p: &Params, reuse: bool) -> Result<Summary, SimError> {
    p.validate()?;
    let gen_info = info(p);
    if prepare(dir, &gen_info, reuse)? {
        let labels = Labels::read(&dir.join("labels.json"))?;
        return Ok(Summary {
            principals: p.principals,
            anomalies: labels.anomalies.len(),
            periodic_jobs: labels.periodic_jobs.len(),
            reused: true,
            ..Summary::default()
        });
    }
    let mut rng = Rng::new(p.seed);
    let mut principals = population(p, &mut rng);
    let mut injected = schedule(p, &principals, &mut rng);
    let start_ms = start_millis();
    let start_s = start_ms / 1000;
    let mut w = Writer {
        root: dir.to_path_buf(),
        made: HashSet::new(),
        summary: Summary::default(),
    };
    let slots = ACCOUNTS.len() * REGIONS.len();
    let mut current: Vec<Vec<Vec<u8>>> = vec![Vec::new(); slots];
    let mut late: Vec<Vec<Vec<u8>>> = vec![Vec::new(); slots];
    let total_minutes = p.days * 1440;
    let mut t = 0;
    while t < total_minutes {
        for minute in t..(t + FILE_MINUTES).min(total_minutes) {
            let hour = (minute / 60) as usize;
            for pr in principals.iter_mut() {
                let (mut w_rate, r_rate) = pr.rates(minute);
                if let Some(&(run_start, n)) = pr.runs.get((minute / 1440) as usize)
                    && let Behaviour::Periodic { minutes, .. } = pr.behaviour
                    && minute >= run_start
                    && minute < run_start + minutes
                {
                    w_rate += n as f64 / minutes as f64 / p.scale;
                }
                let writes = rng.poisson(w_rate * p.scale);
                let reads = rng.poisson(r_rate * p.scale);
                let mut errors = 0;
                for k in 0..writes + reads {
                    let api = if k < writes {
                        rng.pick(pr.writes)
                    } else {
                        rng.pick(READS)
                    };
                    let refused = pr.error_p > 0.0 && rng.chance(pr.error_p);
                    errors += refused as u32;
                    let region = match pr.behaviour {
                        Behaviour::Human { .. } if rng.chance(0.25) => {
                            rng.range(0, REGIONS.len() as u64) as usize
                        }
                        _ => pr.home_region,
                    };
                    let call = Call {
                        p: pr,
                        api,
                        secs: start_s + minute as i64 * 60 + rng.range(0, 60) as i64,
                        region: if is_global(api) { 0 } else { region },
                        refused,
                        ip: &pr.ip,
                        agent: pr.agent,
                        key_salt: 0,
                    };
                    let bytes = render(&mut rng, &call);
                    current[pr.account * REGIONS.len() + call.region].push(bytes);
                }
                if let Some(c) = pr.hist_writes.get_mut(hour) {
                    *c += writes;
                }
                if let Some(c) = pr.hist_errors.get_mut(hour) {
                    *c += errors;
                }
            }
            for a in injected.iter_mut() {
                if minute < a.start || minute >= a.start + a.minutes {
                    continue;
                }
                let pr = &principals[a.principal];
                if minute == a.start {
                    fix_rate(a, pr, &mut rng);
                }
                for _ in 0..a.rate {
                    let api = rng.pick(a.calls);
                    let region = if is_global(api) { 0 } else { a.region };
                    let call = Call {
                        p: pr,
                        api,
                        secs: start_s + minute as i64 * 60 + rng.range(0, 60) as i64,
                        region,
                        refused: a.kind == AnomalyKind::ErrorStorm,
                        ip: &a.ip,
                        agent: a.agent,
                        key_salt: 1 + a.start as u64,
                    };
                    let bytes = render(&mut rng, &call);
                    current[pr.account * REGIONS.len() + region].push(bytes);
                }
            }
        }
        t += FILE_MINUTES;
        let stamp = start_ms + t as i64 * 60_000;
        for slot in 0..slots {
            let mut records = std::mem::take(&mut late[slot]);
            for r in std::mem::take(&mut current[slot]) {
                if rng.chance(LATE_SHARE) {
                    late[slot].push(r);
                } else {
                    records.push(r);
                }
            }
            // CloudTrail files are not in time order: swap records with near neighbours.
            let n = records.len();
            for i in 0..n {
                let j = i + rng.range(0, 12.min((n - i) as u64)) as usize;
                records.swap(i, j);
            }
            if !records.is_empty() {
                w.file(
                    &mut rng,
                    slot / REGIONS.len(),
                    slot % REGIONS.len(),
                    stamp,
                    &records,
                )?;
            }
        }
    }
    let stamp = start_ms + (total_minutes + FILE_MINUTES) as i64 * 60_000;
    for (slot, records) in late.iter().enumerate() {
        if !records.is_empty() {
            w.file(
                &mut rng,
                slot / REGIONS.len(),
                slot % REGIONS.len(),
                stamp,
                records,
            )?;
        }
    }
    let labels = Labels {
        generator: serde_json::to_value(&gen_info).unwrap_or(Value::Null),
        anomalies: injected
            .iter()
            .map(|a| {
                let pr = &principals[a.principal];
                AnomalyLabel {
                    id: a.id.clone(),
                    kind: a.kind,
                    principal: pr.group_arn.clone(),
                    account: ACCOUNTS[pr.account].to_string(),
                    start: rfc3339(start_ms + a.start as i64 * 60_000),
                    end: rfc3339(start_ms + (a.start + a.minutes) as i64 * 60_000),
                    rate_per_min: a.rate as f64,
                    usual_per_min: (a.usual_per_min * 1000.0).round() / 1000.0,
                    principal_kind: pr.kind_name().to_string(),
                    region: REGIONS[a.region].to_string(),
                    source_ip: a.ip.clone(),
                    user_agent: a.agent.to_string(),
                }
            })
            .collect(),
        periodic_jobs: principals
            .iter()
            .filter_map(|pr| match pr.behaviour {
                Behaviour::Periodic {
                    hour,
                    minute,
                    minutes,
                    writes,
                    ..
                } => Some(PeriodicLabel {
                    principal: pr.group_arn.clone(),
                    account: ACCOUNTS[pr.account].to_string(),
                    hour_utc: hour,
                    start_minute: minute,
                    minutes,
                    first_day: START[..10].to_string(),
                    writes_per_run: writes,
                }),
                _ => None,
            })
            .collect(),
    };
    let path = dir.join("labels.json");
    let tmp = dir.join("labels.json.tmp");
    let text = serde_json::to_string_pretty(&labels).unwrap_or_default();
    std::fs::write(&tmp, text + "\n").map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    let mut summary = w.summary;
    summary.principals = principals.len();
    summary.anomalies = labels.anomalies.len();
    summary.periodic_jobs = labels.periodic_jobs.len();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked() {
        assert!(Params::default().validate().is_ok());
        let with = |f: fn(&mut Params)| {
            let mut p = Params::default();
            f(&mut p);
            p.validate()
        };
        assert!(with(|p| p.days = 2).is_err());
        assert!(
            with(|p| {
                p.days = 2;
                p.anomalies = 0
            })
            .is_ok()
        );
        assert!(with(|p| p.days = 0).is_err());
        assert!(with(|p| p.scale = 0.0).is_err());
        assert!(with(|p| p.scale = f64::NAN).is_err());
        assert!(with(|p| p.principals = 5).is_err());
        assert!(
            with(|p| {
                p.principals = 10;
                p.anomalies = 9
            })
            .is_err()
        );
    }
}
