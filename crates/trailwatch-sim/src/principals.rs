//! The simulated population: humans, automation, daily jobs and the account roots, with
//! their identities and their rates by time of day.

use crate::apis::{AUTOMATION_WRITES, Api, HUMAN_WRITES, JOBS};
use crate::rng::{Rng, id_chars, mix};
use crate::{ACCOUNTS, Params, REGIONS, periodic_count};
use std::collections::HashSet;

const FIRST: &[&str] = &[
    "alice", "bruno", "chen", "dana", "emeka", "fatima", "goran", "hana", "ivan", "jana", "kofi",
    "lena", "mateo", "nadia", "oskar", "priya", "quinn", "rosa", "sami", "tariq", "uma", "viktor",
    "wen", "ximena", "yusuf", "zoe",
];
const LAST: &[&str] = &[
    "silva", "novak", "okafor", "tanaka", "muller", "haddad", "kowalski", "nguyen", "garcia",
    "larsen", "ivanova", "mensah", "rossi", "kim", "dubois", "patel", "ahmed",
];
/// Office time zones (hours from UTC).
const ZONES: &[i64] = &[-8, -5, 0, 1, 2, 5, 8, 10];
const AUTOMATION_ROLES: &[&str] = &[
    "k8s-cluster-autoscaler",
    "log-shipper",
    "ci-deployer",
    "orders-worker",
    "metrics-collector",
    "queue-scaler",
    "terraform-drift-check",
    "cost-reporter",
];
const HUMAN_AGENTS: &[&str] = &[
    "aws-cli/2.17.20 md/awscrt#0.20.11 ua/2.0 os/macos#23.5.0 md/arch#arm64 lang/python#3.11.9 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/prompt#off",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36",
    "aws-cli/2.15.58 md/awscrt#0.19.19 ua/2.0 os/linux#6.8.0-45-generic md/arch#x86_64 lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe",
];
const AUTOMATION_AGENTS: &[&str] = &[
    "Boto3/1.34.144 md/Botocore#1.34.144 ua/2.0 os/linux#5.10.220-209.869.amzn2.x86_64 md/arch#x86_64 lang/python#3.12.4 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.144",
    "aws-sdk-go-v2/1.30.3 os/linux lang/go#go1.22.5 md/GOOS#linux md/GOARCH#amd64 api/ec2#1.173.0",
    "aws-sdk-java/2.26.25 Linux/5.10.219-208.866.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.11+9-LTS Java/17.0.11 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/standard",
];
pub(crate) const ATTACKER_AGENTS: &[&str] = &[
    "Boto3/1.9.201 Python/2.7.18 Linux/4.4.0-210-generic Botocore/1.12.201",
    "aws-cli/1.16.312 Python/3.6.9 Linux/4.15.0-112-generic botocore/1.13.48",
    "aws-sdk-go/1.44.0 (go1.18; linux; amd64)",
];

#[derive(Debug, Clone)]
pub(crate) enum Behaviour {
    /// Office hours in `tz`; peak rates per hour.
    Human {
        tz: i64,
        writes_per_h: f64,
        reads_per_h: f64,
    },
    /// Constant rates per minute with a ±15% daily swing.
    Automation {
        writes_per_min: f64,
        reads_per_min: f64,
        phase: f64,
    },
    /// A daily run of writes (of a [`JOBS`] kind) at `hour:minute` UTC.
    Periodic {
        hour: u32,
        minute: u32,
        minutes: u32,
        writes: u32,
    },
}

#[derive(Debug, Clone)]
pub(crate) enum Ident {
    User { name: String },
    Role { role: String, human: Option<String> },
    Root,
}

#[derive(Debug, Clone)]
pub(crate) struct Principal {
    pub(crate) index: usize,
    pub(crate) behaviour: Behaviour,
    pub(crate) ident: Ident,
    pub(crate) account: usize,
    pub(crate) home_region: usize,
    pub(crate) ip: String,
    pub(crate) agent: &'static str,
    /// The grouping key: user ARN, role ARN, root ARN.
    pub(crate) group_arn: String,
    /// AIDA…/AROA… id.
    pub(crate) unique_id: String,
    pub(crate) writes: &'static [Api],
    pub(crate) error_p: f64,
    /// Daily jobs: (start minute, writes) of each day's run.
    pub(crate) runs: Vec<(u32, u32)>,
    /// Writes and refused calls per (day, hour of day), for the labels' usual rates.
    pub(crate) hist_writes: Vec<u32>,
    pub(crate) hist_errors: Vec<u32>,
}

impl Principal {
    pub(crate) fn kind_name(&self) -> &'static str {
        match self.behaviour {
            Behaviour::Human { .. } => "human",
            Behaviour::Automation { .. } => "automation",
            Behaviour::Periodic { .. } => "periodic",
        }
    }

    /// Expected writes and reads in minute `t` (from the start), before `scale`.
    pub(crate) fn rates(&self, t: u32) -> (f64, f64) {
        match &self.behaviour {
            Behaviour::Human {
                tz,
                writes_per_h,
                reads_per_h,
            } => {
                let local = t as i64 + tz * 60;
                let hour = (local.div_euclid(60)).rem_euclid(24) as usize;
                // START is a Thursday (Monday = 0).
                let weekday = (3 + local.div_euclid(1440)).rem_euclid(7);
                const PROFILE: [f64; 24] = [
                    0.01, 0.01, 0.01, 0.01, 0.01, 0.02, 0.05, 0.25, 0.7, 1.0, 1.0, 1.0, 0.6, 0.9,
                    1.0, 1.0, 0.9, 0.6, 0.35, 0.15, 0.1, 0.06, 0.03, 0.02,
                ];
                let week = if weekday >= 5 { 0.1 } else { 1.0 };
                let f = PROFILE[hour] * week;
                (writes_per_h * f / 60.0, reads_per_h * f / 60.0)
            }
            Behaviour::Automation {
                writes_per_min,
                reads_per_min,
                phase,
            } => {
                let day = t as f64 / 1440.0;
                let swing = 1.0 + 0.15 * (2.0 * std::f64::consts::PI * (day + phase)).sin();
                (writes_per_min * swing, reads_per_min * swing)
            }
            Behaviour::Periodic { .. } => (0.0, 0.04),
        }
    }
}

/// Builds the population: daily jobs first, then one root per account, then automation
/// (about one principal in eight) and humans.
pub(crate) fn population(p: &Params, rng: &mut Rng) -> Vec<Principal> {
    let n_jobs = periodic_count(p.principals);
    let n_auto = (p.principals / 8).max(2);
    let mut out = Vec::with_capacity(p.principals);
    let mut used_names = HashSet::new();
    for index in 0..p.principals {
        let account = index % ACCOUNTS.len();
        let acct = ACCOUNTS[account];
        let unique_id = id_chars(mix(&[p.seed, index as u64, 1]), 17);
        let mut name_for = |rng: &mut Rng, stem: &str| -> String {
            let mut n = 1;
            loop {
                let candidate = if n == 1 {
                    stem.to_string()
                } else {
                    format!("{stem}-{n}")
                };
                if used_names.insert((account, candidate.clone())) {
                    return candidate;
                }
                n += 1 + rng.range(0, 2) as usize;
            }
        };
        let principal = if index < n_jobs {
            let job = index % JOBS.len();
            let role = name_for(rng, JOBS[job].0);
            let minutes = rng.range(10, 21) as u32;
            let behaviour = Behaviour::Periodic {
                // Spread the jobs over the night and day, distinct hours.
                hour: ((index * 7 + 1) % 24) as u32,
                minute: rng.range(0, (60 - minutes - 3) as u64) as u32,
                minutes,
                writes: rng.range(100, 401) as u32,
            };
            Principal {
                index,
                behaviour,
                group_arn: format!("arn:aws:iam::{acct}:role/{role}"),
                ident: Ident::Role { role, human: None },
                account,
                home_region: rng.range(0, REGIONS.len() as u64) as usize,
                ip: format!("192.0.2.{}", 10 + index),
                agent: rng.pick_copy(AUTOMATION_AGENTS),
                unique_id,
                writes: JOBS[job].1,
                error_p: 0.0,
                runs: Vec::new(),
                hist_writes: Vec::new(),
                hist_errors: Vec::new(),
            }
        } else if index < n_jobs + ACCOUNTS.len() {
            Principal {
                index,
                behaviour: Behaviour::Human {
                    tz: 0,
                    writes_per_h: 0.0,
                    reads_per_h: 0.15,
                },
                group_arn: format!("arn:aws:iam::{acct}:root"),
                ident: Ident::Root,
                account,
                home_region: 0,
                ip: format!("198.51.100.{}", 200 + account),
                agent: HUMAN_AGENTS[1],
                unique_id,
                writes: HUMAN_WRITES,
                error_p: 0.0,
                runs: Vec::new(),
                hist_writes: Vec::new(),
                hist_errors: Vec::new(),
            }
        } else if index < n_jobs + ACCOUNTS.len() + n_auto {
            let stem = AUTOMATION_ROLES[index % AUTOMATION_ROLES.len()];
            let service_user = rng.chance(0.2);
            let name = if service_user {
                name_for(rng, &format!("svc-{stem}"))
            } else {
                name_for(rng, stem)
            };
            let (ident, group_arn) = if service_user {
                (
                    Ident::User { name: name.clone() },
                    format!("arn:aws:iam::{acct}:user/{name}"),
                )
            } else {
                (
                    Ident::Role {
                        role: name.clone(),
                        human: None,
                    },
                    format!("arn:aws:iam::{acct}:role/{name}"),
                )
            };
            Principal {
                index,
                behaviour: Behaviour::Automation {
                    writes_per_min: 1.0 + rng.f64() * 5.0,
                    reads_per_min: 0.5 + rng.f64() * 4.5,
                    phase: rng.f64(),
                },
                ident,
                group_arn,
                account,
                home_region: rng.range(0, REGIONS.len() as u64) as usize,
                ip: format!("192.0.2.{}", 10 + index % 240),
                agent: rng.pick_copy(AUTOMATION_AGENTS),
                unique_id,
                writes: rng.pick_copy(AUTOMATION_WRITES),
                error_p: 0.0002,
                runs: Vec::new(),
                hist_writes: Vec::new(),
                hist_errors: Vec::new(),
            }
        } else {
            let stem = format!("{}.{}", rng.pick(FIRST), rng.pick(LAST));
            let person = name_for(rng, &stem);
            let (ident, group_arn) = if rng.chance(0.7) {
                (
                    Ident::User {
                        name: person.clone(),
                    },
                    format!("arn:aws:iam::{acct}:user/{person}"),
                )
            } else {
                let role = format!("eng-{}", person.replace('.', "-"));
                (
                    Ident::Role {
                        role: role.clone(),
                        human: Some(person.clone()),
                    },
                    format!("arn:aws:iam::{acct}:role/{role}"),
                )
            };
            let tz = rng.pick_copy(ZONES);
            Principal {
                index,
                behaviour: Behaviour::Human {
                    tz,
                    writes_per_h: 2.0 + rng.f64() * 4.0,
                    reads_per_h: 10.0 + rng.f64() * 30.0,
                },
                ident,
                group_arn,
                account,
                home_region: rng.range(0, REGIONS.len() as u64) as usize,
                ip: format!(
                    "{}.{}",
                    if rng.chance(0.5) {
                        "198.51.100"
                    } else {
                        "203.0.113"
                    },
                    rng.range(1, 200)
                ),
                agent: rng.pick_copy(HUMAN_AGENTS),
                unique_id,
                writes: HUMAN_WRITES,
                // About 3 refused calls per working day.
                error_p: 0.01,
                runs: Vec::new(),
                hist_writes: Vec::new(),
                hist_errors: Vec::new(),
            }
        };
        out.push(principal);
    }
    for pr in &mut out {
        pr.hist_writes = vec![0; p.days as usize * 24];
        pr.hist_errors = vec![0; p.days as usize * 24];
        if let Behaviour::Periodic {
            hour,
            minute,
            writes,
            ..
        } = pr.behaviour
        {
            pr.runs = (0..p.days)
                .map(|d| {
                    let start = d * 1440 + hour * 60 + minute + rng.range(0, 3) as u32;
                    let n = (writes as f64 * (0.9 + 0.2 * rng.f64())).round() as u32;
                    (start, n)
                })
                .collect();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FIRST_ANOMALY_DAY;
    use crate::anomalies::schedule;

    #[test]
    fn population_has_every_kind_and_distinct_grouping_keys() {
        let p = Params::default();
        let mut rng = Rng::new(p.seed);
        let pop = population(&p, &mut rng);
        assert_eq!(pop.len(), p.principals);
        let keys: HashSet<&str> = pop.iter().map(|x| x.group_arn.as_str()).collect();
        assert_eq!(keys.len(), pop.len());
        let count = |k: &str| pop.iter().filter(|x| x.kind_name() == k).count();
        assert_eq!(count("periodic"), 3);
        assert!(count("automation") >= 10);
        assert!(count("human") >= 100);
        let inj = schedule(&p, &pop, &mut rng);
        assert_eq!(inj.len(), 12);
        assert!(inj.iter().all(|a| a.start >= FIRST_ANOMALY_DAY * 1440));
        let on: HashSet<usize> = inj.iter().map(|a| a.principal).collect();
        assert_eq!(on.len(), inj.len(), "one anomaly per principal");
        assert!(on.iter().all(|&i| pop[i].kind_name() != "periodic"));
    }

    #[test]
    fn humans_follow_office_hours_and_weekends() {
        let p = Params::default();
        let mut rng = Rng::new(3);
        let pop = population(&p, &mut rng);
        let Some(h) = pop.iter().find(|x| {
            matches!(x.behaviour, Behaviour::Human { tz: 0, .. }) && !matches!(x.ident, Ident::Root)
        }) else {
            return;
        };
        // Thursday 10:00 UTC vs 03:00 UTC vs Saturday 10:00 UTC.
        let busy = h.rates(10 * 60).1;
        let night = h.rates(3 * 60).1;
        let weekend = h.rates(2 * 1440 + 10 * 60).1;
        assert!(busy > 20.0 * night, "{busy} {night}");
        assert!(busy > 5.0 * weekend, "{busy} {weekend}");
    }
}
