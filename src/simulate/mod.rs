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

pub mod score;

use chrono::{DateTime, Datelike, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

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
fn periodic_count(principals: usize) -> usize {
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

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SimError + '_ {
    move |source| SimError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// Labels (written by the generator, read by the scorer and the tests)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    WriteBurst,
    ErrorStorm,
}

impl std::fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AnomalyKind::WriteBurst => "write_burst",
            AnomalyKind::ErrorStorm => "error_storm",
        })
    }
}

/// What generated the archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorInfo {
    pub version: u32,
    #[serde(flatten)]
    pub params: Params,
    pub start: String,
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
}

/// One injected anomaly. `principal` is the grouping key a baseline uses: the role ARN for
/// assumed roles, the user ARN for IAM users. `[start, end)` is in event time; the rate is
/// exact in every minute of it (writes for a burst, refused calls for a storm).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyLabel {
    pub id: String,
    pub kind: AnomalyKind,
    pub principal: String,
    #[serde(default)]
    pub account: String,
    pub start: String,
    pub end: String,
    #[serde(default)]
    pub rate_per_min: f64,
    /// The principal's mean rate (writes, or errors for a storm) per minute in the same
    /// hours of the previous days.
    #[serde(default)]
    pub usual_per_min: f64,
    /// `human` or `automation`.
    #[serde(default)]
    pub principal_kind: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub source_ip: String,
    #[serde(default)]
    pub user_agent: String,
}

/// A benign daily job: a run of writes starting at `hour_utc:start_minute` every day for
/// about `minutes` minutes, from `first_day` on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeriodicLabel {
    pub principal: String,
    #[serde(default)]
    pub account: String,
    pub hour_utc: u32,
    #[serde(default)]
    pub start_minute: u32,
    pub minutes: u32,
    /// `YYYY-MM-DD`.
    pub first_day: String,
    #[serde(default)]
    pub writes_per_run: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Labels {
    /// Parameters of the generator ([`GeneratorInfo`]); free-form in hand-written labels.
    #[serde(default)]
    pub generator: Value,
    pub anomalies: Vec<AnomalyLabel>,
    #[serde(default)]
    pub periodic_jobs: Vec<PeriodicLabel>,
}

impl Labels {
    /// Reads a labels file.
    pub fn read(path: &Path) -> Result<Labels, SimError> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        serde_json::from_str(&text).map_err(|e| SimError::Labels {
            path: path.to_path_buf(),
            message: format!(
                "not a labels file (line {}, column {}): {e}",
                e.line(),
                e.column()
            ),
        })
    }

    /// The generator parameters recorded in the file, if it was written by this version.
    pub fn generator_info(&self) -> Option<GeneratorInfo> {
        serde_json::from_value(self.generator.clone()).ok()
    }
}

// ---------------------------------------------------------------------------------------------
// Random numbers: xoshiro256** seeded through splitmix64 (small, fast, reproducible)
// ---------------------------------------------------------------------------------------------

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A hash of a few numbers, for values that must not depend on the order of draws
/// (session names, key ids).
fn mix(parts: &[u64]) -> u64 {
    let mut s = 0x1234_5678_9ABC_DEF0u64;
    let mut out = 0;
    for p in parts {
        s ^= *p;
        out = splitmix64(&mut s);
    }
    out
}

#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut sm = seed;
        Rng {
            s: [
                splitmix64(&mut sm),
                splitmix64(&mut sm),
                splitmix64(&mut sm),
                splitmix64(&mut sm),
            ],
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi) (lo when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo)
    }

    pub fn pick_copy<T: Copy>(&mut self, items: &[T]) -> T {
        *self.pick(items)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        // Callers pass non-empty constant tables.
        &items[self.range(0, items.len() as u64) as usize]
    }

    /// A Poisson draw: Knuth's product method for small means, a rounded normal above.
    pub fn poisson(&mut self, mean: f64) -> u32 {
        if mean <= 0.0 {
            return 0;
        }
        if mean < 30.0 {
            let limit = (-mean).exp();
            let mut k = 0u32;
            let mut p = self.f64();
            while p > limit {
                k += 1;
                p *= self.f64();
            }
            return k;
        }
        // Box-Muller.
        let u1 = self.f64().max(1e-12);
        let u2 = self.f64();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        (mean + z * mean.sqrt()).round().max(0.0) as u32
    }

    /// Lower-case hex of `n` digits.
    fn hex(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n);
        while s.len() < n {
            s.push_str(&format!("{:016x}", self.next_u64()));
        }
        s.truncate(n);
        s
    }

    /// A version-4 UUID.
    fn uuid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            8 + (b >> 62),
            (b >> 48) & 0xfff,
            b & 0xffff_ffff_ffff
        )
    }
}

/// Upper-case letters and digits of `n` characters derived from `seed` (AWS ids).
fn id_chars(seed: u64, n: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut s = seed;
    (0..n)
        .map(|_| CHARS[(splitmix64(&mut s) % CHARS.len() as u64) as usize] as char)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// API calls
// ---------------------------------------------------------------------------------------------

/// One API: its service endpoint, name and whether it only reads.
#[derive(Debug, Clone, Copy)]
struct Api {
    source: &'static str,
    name: &'static str,
    read_only: bool,
}

const fn api(source: &'static str, name: &'static str, read_only: bool) -> Api {
    Api {
        source,
        name,
        read_only,
    }
}

const EC2: &str = "ec2.amazonaws.com";
const S3: &str = "s3.amazonaws.com";
const IAM: &str = "iam.amazonaws.com";
const STS: &str = "sts.amazonaws.com";

const READS: &[Api] = &[
    api(EC2, "DescribeInstances", true),
    api(EC2, "DescribeVolumes", true),
    api(EC2, "DescribeSecurityGroups", true),
    api(EC2, "DescribeSubnets", true),
    api(S3, "ListBuckets", true),
    api(S3, "GetBucketLocation", true),
    api("lambda.amazonaws.com", "ListFunctions20150331", true),
    api("monitoring.amazonaws.com", "DescribeAlarms", true),
    api("logs.amazonaws.com", "DescribeLogGroups", true),
    api("dynamodb.amazonaws.com", "DescribeTable", true),
    api("rds.amazonaws.com", "DescribeDBInstances", true),
    api("kms.amazonaws.com", "DescribeKey", true),
    api(
        "autoscaling.amazonaws.com",
        "DescribeAutoScalingGroups",
        true,
    ),
    api("ecs.amazonaws.com", "DescribeServices", true),
    api(IAM, "ListRoles", true),
    api(IAM, "GetUser", true),
    api(STS, "GetCallerIdentity", true),
];

const HUMAN_WRITES: &[Api] = &[
    api(EC2, "CreateTags", false),
    api(EC2, "DeleteTags", false),
    api(EC2, "StartInstances", false),
    api(EC2, "CreateSnapshot", false),
    api("monitoring.amazonaws.com", "PutMetricAlarm", false),
    api("ecs.amazonaws.com", "UpdateService", false),
    api("autoscaling.amazonaws.com", "SetDesiredCapacity", false),
    api("sqs.amazonaws.com", "SetQueueAttributes", false),
    api("dynamodb.amazonaws.com", "UpdateTable", false),
];

/// Write sets of automation principals (each picks one).
const AUTOMATION_WRITES: &[&[Api]] = &[
    &[
        api("logs.amazonaws.com", "CreateLogStream", false),
        api(EC2, "CreateTags", false),
    ],
    &[
        api("ecs.amazonaws.com", "UpdateService", false),
        api("ecs.amazonaws.com", "RegisterTaskDefinition", false),
        api("ecr.amazonaws.com", "PutImage", false),
    ],
    &[
        api("autoscaling.amazonaws.com", "SetDesiredCapacity", false),
        api(EC2, "CreateTags", false),
        api(EC2, "DeleteTags", false),
    ],
    &[
        api("sqs.amazonaws.com", "SetQueueAttributes", false),
        api("dynamodb.amazonaws.com", "UpdateTable", false),
        api("logs.amazonaws.com", "CreateLogStream", false),
    ],
];

/// Daily jobs: role name and the writes of a run.
const JOBS: &[(&str, &[Api])] = &[
    (
        "nightly-ebs-backup",
        &[
            api(EC2, "CreateSnapshot", false),
            api(EC2, "CreateTags", false),
            api(EC2, "DeleteSnapshot", false),
        ],
    ),
    (
        "ami-cleanup",
        &[
            api(EC2, "DeregisterImage", false),
            api(EC2, "DeleteSnapshot", false),
        ],
    ),
    (
        "daily-image-bake",
        &[
            api(EC2, "CreateImage", false),
            api(EC2, "CreateTags", false),
        ],
    ),
    (
        "ecs-nightly-redeploy",
        &[
            api("ecs.amazonaws.com", "RegisterTaskDefinition", false),
            api("ecs.amazonaws.com", "UpdateService", false),
        ],
    ),
];

/// Write sets of bursts (each burst picks one).
const BURST_WRITES: &[&[Api]] = &[
    &[
        api(EC2, "RunInstances", false),
        api(EC2, "CreateTags", false),
    ],
    &[api(EC2, "TerminateInstances", false)],
    &[
        api(EC2, "DeleteSnapshot", false),
        api(EC2, "DeregisterImage", false),
    ],
    &[
        api(EC2, "CreateSnapshot", false),
        api(EC2, "CreateTags", false),
    ],
];

/// Calls an error storm is made of (enumeration with a stolen key, mostly reads).
const STORM_CALLS: &[Api] = &[
    api(EC2, "DescribeInstances", true),
    api(EC2, "DescribeSnapshots", true),
    api(EC2, "RunInstances", false),
    api(S3, "ListBuckets", true),
    api(S3, "GetBucketPolicy", true),
    api(IAM, "ListUsers", true),
    api(IAM, "ListRoles", true),
    api(IAM, "GetAccountAuthorizationDetails", true),
    api("secretsmanager.amazonaws.com", "ListSecrets", true),
    api("lambda.amazonaws.com", "ListFunctions20150331", true),
    api("kms.amazonaws.com", "ListKeys", true),
];

fn is_global(a: &Api) -> bool {
    a.source == IAM || a.source == STS
}

/// The service prefix in IAM actions (`ec2:DescribeInstances`).
fn action_prefix(source: &str) -> &str {
    source.split('.').next().unwrap_or(source)
}

fn refusal(a: &Api, arn: &str) -> (&'static str, String) {
    let svc = action_prefix(a.source);
    let name = a.name.trim_end_matches("20150331");
    if a.source == EC2 {
        (
            "Client.UnauthorizedOperation",
            format!(
                "You are not authorized to perform this operation. User: {arn} is not authorized to perform: ec2:{name} because no identity-based policy allows the ec2:{name} action"
            ),
        )
    } else {
        (
            "AccessDenied",
            format!(
                "User: {arn} is not authorized to perform: {svc}:{name} because no identity-based policy allows the {svc}:{name} action"
            ),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Principals
// ---------------------------------------------------------------------------------------------

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
const ATTACKER_AGENTS: &[&str] = &[
    "Boto3/1.9.201 Python/2.7.18 Linux/4.4.0-210-generic Botocore/1.12.201",
    "aws-cli/1.16.312 Python/3.6.9 Linux/4.15.0-112-generic botocore/1.13.48",
    "aws-sdk-go/1.44.0 (go1.18; linux; amd64)",
];

#[derive(Debug, Clone)]
enum Behaviour {
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
enum Ident {
    User { name: String },
    Role { role: String, human: Option<String> },
    Root,
}

#[derive(Debug, Clone)]
struct Principal {
    index: usize,
    behaviour: Behaviour,
    ident: Ident,
    account: usize,
    home_region: usize,
    ip: String,
    agent: &'static str,
    /// The grouping key: user ARN, role ARN, root ARN.
    group_arn: String,
    /// AIDA…/AROA… id.
    unique_id: String,
    writes: &'static [Api],
    error_p: f64,
    /// Daily jobs: (start minute, writes) of each day's run.
    runs: Vec<(u32, u32)>,
    /// Writes and refused calls per (day, hour of day), for the labels' usual rates.
    hist_writes: Vec<u32>,
    hist_errors: Vec<u32>,
}

impl Principal {
    fn kind_name(&self) -> &'static str {
        match self.behaviour {
            Behaviour::Human { .. } => "human",
            Behaviour::Automation { .. } => "automation",
            Behaviour::Periodic { .. } => "periodic",
        }
    }

    /// Expected writes and reads in minute `t` (from the start), before `scale`.
    fn rates(&self, t: u32) -> (f64, f64) {
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
fn population(p: &Params, rng: &mut Rng) -> Vec<Principal> {
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

// ---------------------------------------------------------------------------------------------
// Anomalies
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Injected {
    principal: usize,
    kind: AnomalyKind,
    /// Minutes from the start.
    start: u32,
    minutes: u32,
    /// Calls per minute, fixed when the anomaly begins (from the history before it).
    rate: u32,
    usual_per_min: f64,
    region: usize,
    ip: String,
    agent: &'static str,
    calls: &'static [Api],
    id: String,
}

fn shuffle<T>(rng: &mut Rng, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = rng.range(0, i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// Chooses distinct principals and times: bursts and storms alternate, and so do humans
/// and automation.
fn schedule(p: &Params, principals: &[Principal], rng: &mut Rng) -> Vec<Injected> {
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
fn fix_rate(a: &mut Injected, pr: &Principal, rng: &mut Rng) {
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

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Issuer<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    principal_id: String,
    arn: &'a str,
    account_id: &'a str,
    user_name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Attributes {
    creation_date: String,
    mfa_authenticated: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionContext<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    session_issuer: Option<Issuer<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    web_id_federation_data: Option<Value>,
    attributes: Attributes,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserIdentity<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    principal_id: String,
    arn: String,
    account_id: &'a str,
    access_key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_context: Option<SessionContext<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TlsDetails {
    tls_version: &'static str,
    cipher_suite: &'static str,
    client_provided_host_header: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    event_version: &'static str,
    user_identity: UserIdentity<'a>,
    event_time: String,
    event_source: &'static str,
    event_name: &'static str,
    aws_region: &'static str,
    #[serde(rename = "sourceIPAddress")]
    source_ip_address: &'a str,
    user_agent: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
    request_parameters: Value,
    response_elements: Value,
    #[serde(rename = "requestID")]
    request_id: String,
    #[serde(rename = "eventID")]
    event_id: String,
    read_only: bool,
    event_type: &'static str,
    management_event: bool,
    recipient_account_id: &'a str,
    event_category: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_details: Option<TlsDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_credential_from_console: Option<&'static str>,
}

/// One call to render: who, what, when (seconds since the epoch), where, and how.
struct Call<'a> {
    p: &'a Principal,
    api: &'a Api,
    secs: i64,
    region: usize,
    refused: bool,
    ip: &'a str,
    agent: &'a str,
    /// Distinguishes the credentials of an anomaly from the principal's own.
    key_salt: u64,
}

fn resource_id(rng: &mut Rng, prefix: &str) -> String {
    format!("{prefix}-0{}", rng.hex(16))
}

/// Plausible `requestParameters` and `responseElements` for an API.
fn parameters(rng: &mut Rng, api: &Api, p: &Principal, region: &str) -> (Value, Value) {
    let acct = ACCOUNTS[p.account];
    match api.name {
        "DescribeInstances" => (
            json!({"instancesSet": {}, "filterSet": {"items": [{"name": "instance-state-name", "valueSet": {"items": [{"value": "running"}]}}]}}),
            Value::Null,
        ),
        "DescribeVolumes" => (json!({"volumeSet": {}, "filterSet": {}}), Value::Null),
        "DescribeSnapshots" => (
            json!({"snapshotSet": {}, "ownersSet": {"items": [{"owner": "self"}]}, "filterSet": {}}),
            Value::Null,
        ),
        "DescribeSecurityGroups" => (
            json!({"securityGroupSet": {}, "securityGroupIdSet": {}, "filterSet": {}}),
            Value::Null,
        ),
        "DescribeSubnets" => (json!({"subnetSet": {}, "filterSet": {}}), Value::Null),
        "ListBuckets" => (json!({"Host": "s3.amazonaws.com"}), Value::Null),
        "GetBucketLocation" | "GetBucketPolicy" => {
            let bucket = format!("{acct}-{}-data-{}", REGIONS[p.home_region], p.index % 7);
            let key = if api.name == "GetBucketLocation" {
                "location"
            } else {
                "policy"
            };
            (
                json!({"bucketName": bucket, "Host": format!("{bucket}.s3.{region}.amazonaws.com"), key: ""}),
                Value::Null,
            )
        }
        "DescribeAlarms" => (json!({"maxRecords": 100}), Value::Null),
        "DescribeLogGroups" => (json!({"limit": 50}), Value::Null),
        "DescribeTable" => (
            json!({"tableName": format!("orders-{}", p.index % 5)}),
            Value::Null,
        ),
        "DescribeKey" => (
            json!({"keyId": format!("alias/app-{}", p.index % 4)}),
            Value::Null,
        ),
        "DescribeAutoScalingGroups" => (json!({"maxRecords": 50}), Value::Null),
        "DescribeServices" => (
            json!({"cluster": "prod", "services": [format!("api-{}", p.index % 6)]}),
            Value::Null,
        ),
        "ListRoles" | "ListUsers" => (json!({"maxItems": 100}), Value::Null),
        "GetAccountAuthorizationDetails" => (
            json!({"filter": ["User", "Role", "Group", "LocalManagedPolicy"]}),
            Value::Null,
        ),
        "ListSecrets" => (json!({"maxResults": 100}), Value::Null),
        "ListKeys" => (json!({"limit": 1000}), Value::Null),
        "CreateTags" | "DeleteTags" => {
            let id = resource_id(rng, "i");
            (
                json!({"resourcesSet": {"items": [{"resourceId": id}]}, "tagSet": {"items": [{"key": "owner", "value": format!("team-{}", p.index % 9)}]}}),
                json!({"requestId": rng.uuid(), "_return": true}),
            )
        }
        "StartInstances" | "TerminateInstances" => {
            let id = resource_id(rng, "i");
            let (now, before) = if api.name == "StartInstances" {
                (
                    json!({"code": 0, "name": "pending"}),
                    json!({"code": 80, "name": "stopped"}),
                )
            } else {
                (
                    json!({"code": 32, "name": "shutting-down"}),
                    json!({"code": 16, "name": "running"}),
                )
            };
            (
                json!({"instancesSet": {"items": [{"instanceId": id}]}}),
                json!({"requestId": rng.uuid(), "instancesSet": {"items": [{"instanceId": id, "currentState": now, "previousState": before}]}}),
            )
        }
        "RunInstances" => {
            let id = resource_id(rng, "i");
            (
                json!({"instancesSet": {"items": [{"imageId": resource_id(rng, "ami"), "minCount": 1, "maxCount": 1}]}, "instanceType": "c5.4xlarge", "blockDeviceMapping": {}, "monitoring": {"enabled": false}, "disableApiTermination": false, "disableApiStop": false, "clientToken": rng.uuid()}),
                json!({"requestId": rng.uuid(), "reservationId": resource_id(rng, "r"), "ownerId": acct, "instancesSet": {"items": [{"instanceId": id, "instanceType": "c5.4xlarge", "instanceState": {"code": 0, "name": "pending"}}]}}),
            )
        }
        "CreateSnapshot" => {
            let vol = resource_id(rng, "vol");
            (
                json!({"volumeId": vol, "description": "scheduled backup"}),
                json!({"requestId": rng.uuid(), "snapshotId": resource_id(rng, "snap"), "volumeId": vol, "status": "pending", "ownerId": acct, "volumeSize": 8 << (rng.range(0, 5))}),
            )
        }
        "DeleteSnapshot" => (
            json!({"snapshotId": resource_id(rng, "snap")}),
            json!({"requestId": rng.uuid(), "_return": true}),
        ),
        "DeregisterImage" => (
            json!({"imageId": resource_id(rng, "ami")}),
            json!({"requestId": rng.uuid(), "_return": true}),
        ),
        "CreateImage" => (
            json!({"instanceId": resource_id(rng, "i"), "name": format!("golden-{}", rng.hex(8)), "noReboot": true}),
            json!({"requestId": rng.uuid(), "imageId": resource_id(rng, "ami")}),
        ),
        "PutMetricAlarm" => (
            json!({"alarmName": format!("cpu-high-{}", rng.hex(6)), "metricName": "CPUUtilization", "namespace": "AWS/EC2", "statistic": "Average", "period": 300, "evaluationPeriods": 2, "threshold": 80.0, "comparisonOperator": "GreaterThanThreshold"}),
            Value::Null,
        ),
        "UpdateService" => {
            let svc = format!("api-{}", p.index % 6);
            let n = rng.range(2, 12);
            (
                json!({"cluster": "prod", "service": svc, "desiredCount": n}),
                json!({"service": {"serviceName": svc, "clusterArn": format!("arn:aws:ecs:{region}:{acct}:cluster/prod"), "desiredCount": n, "status": "ACTIVE"}}),
            )
        }
        "RegisterTaskDefinition" => {
            let family = format!("api-{}", p.index % 6);
            (
                json!({"family": family, "containerDefinitions": [{"name": family, "image": format!("{acct}.dkr.ecr.{region}.amazonaws.com/{family}:{}", rng.hex(7)), "cpu": 256, "memory": 512}]}),
                json!({"taskDefinition": {"taskDefinitionArn": format!("arn:aws:ecs:{region}:{acct}:task-definition/{family}:{}", rng.range(1, 900)), "family": family}}),
            )
        }
        "PutImage" => {
            let repo = format!("service-{}", p.index % 6);
            let tag = rng.hex(7);
            (
                json!({"repositoryName": repo, "imageTag": tag}),
                json!({"image": {"registryId": acct, "repositoryName": repo, "imageId": {"imageDigest": format!("sha256:{}", rng.hex(64)), "imageTag": tag}}}),
            )
        }
        "SetDesiredCapacity" => (
            json!({"autoScalingGroupName": format!("workers-{}", p.index % 4), "desiredCapacity": rng.range(2, 20), "honorCooldown": false}),
            Value::Null,
        ),
        "SetQueueAttributes" => (
            json!({"queueUrl": format!("https://sqs.{region}.amazonaws.com/{acct}/jobs-{}", p.index % 5), "attributes": {"VisibilityTimeout": "60"}}),
            Value::Null,
        ),
        "UpdateTable" => {
            let table = format!("orders-{}", p.index % 5);
            (
                json!({"tableName": table, "provisionedThroughput": {"readCapacityUnits": rng.range(5, 100), "writeCapacityUnits": rng.range(5, 50)}}),
                json!({"tableDescription": {"tableName": table, "tableStatus": "UPDATING"}}),
            )
        }
        "CreateLogStream" => (
            json!({"logGroupName": format!("/app/service-{}", p.index % 6), "logStreamName": format!("{}/{}", rng.hex(8), rng.hex(32))}),
            Value::Null,
        ),
        _ => (Value::Null, Value::Null),
    }
}

/// Renders one call as a CloudTrail record (JSON bytes).
fn render(rng: &mut Rng, c: &Call) -> Vec<u8> {
    let p = c.p;
    let acct = ACCOUNTS[p.account];
    let region = if is_global(c.api) {
        REGIONS[0]
    } else {
        REGIONS[c.region]
    };
    let hour = c.secs.div_euclid(3600);
    let browser = c.agent.starts_with("Mozilla/");
    let user_identity = match &p.ident {
        Ident::User { name } => UserIdentity {
            kind: "IAMUser",
            principal_id: format!("AIDA{}", p.unique_id),
            arn: p.group_arn.clone(),
            account_id: acct,
            access_key_id: if browser {
                format!(
                    "ASIA{}",
                    id_chars(mix(&[p.index as u64, hour as u64, c.key_salt]), 16)
                )
            } else {
                format!("AKIA{}", id_chars(mix(&[p.index as u64, c.key_salt]), 16))
            },
            user_name: Some(name),
            session_context: browser.then(|| SessionContext {
                session_issuer: None,
                web_id_federation_data: None,
                attributes: Attributes {
                    creation_date: rfc3339(hour * 3_600_000),
                    mfa_authenticated: "true",
                },
            }),
        },
        Ident::Role { role, human } => {
            // Humans: one session per day named after the person; jobs: one per run;
            // automation: a new botocore session every hour.
            let (session, created) = match (&human, &p.behaviour) {
                (Some(person), _) => (
                    format!("{person}@example.com"),
                    c.secs.div_euclid(86_400) * 86_400 + 7 * 3600,
                ),
                (None, Behaviour::Periodic { .. }) => {
                    let day = c.secs.div_euclid(86_400);
                    (format!("{role}-{}", day), day * 86_400)
                }
                _ => (format!("botocore-session-{}", hour * 3600), hour * 3600),
            };
            let session = if c.key_salt != 0 {
                format!("{session}-{}", c.key_salt % 10_000)
            } else {
                session
            };
            UserIdentity {
                kind: "AssumedRole",
                principal_id: format!("AROA{}:{session}", p.unique_id),
                arn: format!("arn:aws:sts::{acct}:assumed-role/{role}/{session}"),
                account_id: acct,
                access_key_id: format!(
                    "ASIA{}",
                    id_chars(mix(&[p.index as u64, created as u64, c.key_salt]), 16)
                ),
                user_name: None,
                session_context: Some(SessionContext {
                    session_issuer: Some(Issuer {
                        kind: "Role",
                        principal_id: format!("AROA{}", p.unique_id),
                        arn: &p.group_arn,
                        account_id: acct,
                        user_name: role,
                    }),
                    web_id_federation_data: Some(json!({})),
                    attributes: Attributes {
                        creation_date: rfc3339(created * 1000),
                        mfa_authenticated: if human.is_some() { "true" } else { "false" },
                    },
                }),
            }
        }
        Ident::Root => UserIdentity {
            kind: "Root",
            principal_id: acct.to_string(),
            arn: p.group_arn.clone(),
            account_id: acct,
            access_key_id: format!("ASIA{}", id_chars(mix(&[p.index as u64, hour as u64]), 16)),
            user_name: None,
            session_context: Some(SessionContext {
                session_issuer: None,
                web_id_federation_data: None,
                attributes: Attributes {
                    creation_date: rfc3339(hour * 3_600_000),
                    mfa_authenticated: "true",
                },
            }),
        },
    };
    let (request_parameters, response_elements) = parameters(rng, c.api, p, region);
    let (error_code, error_message, response_elements) = if c.refused {
        let (code, msg) = refusal(c.api, &user_identity.arn);
        (Some(code), Some(msg), Value::Null)
    } else {
        (None, None, response_elements)
    };
    let request_id = if c.api.source == S3 {
        id_chars(rng.next_u64(), 16)
    } else {
        rng.uuid()
    };
    let host = if is_global(c.api) || c.api.source == S3 && c.api.name == "ListBuckets" {
        c.api.source.to_string()
    } else {
        format!("{}.{region}.amazonaws.com", action_prefix(c.api.source))
    };
    let rec = Record {
        event_version: if c.api.source == S3 { "1.09" } else { "1.10" },
        user_identity,
        event_time: rfc3339(c.secs * 1000),
        event_source: c.api.source,
        event_name: c.api.name,
        aws_region: region,
        source_ip_address: c.ip,
        user_agent: c.agent,
        error_code,
        error_message,
        request_parameters,
        response_elements,
        request_id,
        event_id: rng.uuid(),
        read_only: c.api.read_only,
        event_type: "AwsApiCall",
        management_event: true,
        recipient_account_id: acct,
        event_category: "Management",
        tls_details: Some(TlsDetails {
            tls_version: "TLSv1.3",
            cipher_suite: "TLS_AES_128_GCM_SHA256",
            client_provided_host_header: host,
        }),
        session_credential_from_console: browser.then_some("true"),
    };
    // Serialising plain structs and serde_json values into a Vec cannot fail.
    serde_json::to_vec(&rec).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The archive
// ---------------------------------------------------------------------------------------------

/// What [`generate`] wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub records: u64,
    pub files: u64,
    /// Compressed bytes of the archive files.
    pub bytes: u64,
    pub principals: usize,
    pub anomalies: usize,
    pub periodic_jobs: usize,
    /// Whether an earlier, identical simulation was kept (`reuse`).
    pub reused: bool,
}

/// Millisecond timestamp of [`START`].
pub fn start_millis() -> i64 {
    // START is a constant, valid RFC 3339 time.
    DateTime::parse_from_rfc3339(START).map_or(0, |t| t.timestamp_millis())
}

struct Writer {
    root: PathBuf,
    made: HashSet<PathBuf>,
    summary: Summary,
}

impl Writer {
    /// Writes one archive file of `records` for an account and region, named by delivery
    /// time `stamp_ms`.
    fn file(
        &mut self,
        rng: &mut Rng,
        account: usize,
        region: usize,
        stamp_ms: i64,
        records: &[Vec<u8>],
    ) -> Result<(), SimError> {
        let Some(t) = DateTime::<Utc>::from_timestamp_millis(stamp_ms) else {
            return Ok(());
        };
        let acct = ACCOUNTS[account];
        let reg = REGIONS[region];
        let dir = self
            .root
            .join("AWSLogs")
            .join(acct)
            .join("CloudTrail")
            .join(reg)
            .join(format!("{:04}", t.year()))
            .join(format!("{:02}", t.month()))
            .join(format!("{:02}", t.day()));
        if !self.made.contains(&dir) {
            std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            self.made.insert(dir.clone());
        }
        let unique: String = {
            const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
            (0..16)
                .map(|_| ALNUM[rng.range(0, ALNUM.len() as u64) as usize] as char)
                .collect()
        };
        let path = dir.join(format!(
            "{acct}_CloudTrail_{reg}_{}_{unique}.json.gz",
            t.format("%Y%m%dT%H%MZ")
        ));
        let file = std::fs::File::create(&path).map_err(io_err(&path))?;
        let mut gz = GzEncoder::new(std::io::BufWriter::new(file), Compression::default());
        let mut write = || -> std::io::Result<()> {
            gz.write_all(b"{\"Records\":[")?;
            for (i, r) in records.iter().enumerate() {
                if i > 0 {
                    gz.write_all(b",")?;
                }
                gz.write_all(r)?;
            }
            gz.write_all(b"]}")
        };
        write().map_err(io_err(&path))?;
        let mut inner = gz.finish().map_err(io_err(&path))?;
        inner.flush().map_err(io_err(&path))?;
        drop(inner);
        let len = std::fs::metadata(&path).map_err(io_err(&path))?.len();
        self.summary.files += 1;
        self.summary.bytes += len;
        self.summary.records += records.len() as u64;
        Ok(())
    }
}

/// Gets `dir` ready: created if missing; an earlier simulation in it is removed (or kept
/// with `reuse` when it has the same parameters). Returns true when kept.
fn prepare(dir: &Path, info: &GeneratorInfo, reuse: bool) -> Result<bool, SimError> {
    let labels = dir.join("labels.json");
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(io_err(dir))?
            .next()
            .is_none();
        if !empty {
            if !labels.exists() {
                return Err(SimError::NotEmpty {
                    path: dir.to_path_buf(),
                });
            }
            if reuse
                && Labels::read(&labels)
                    .ok()
                    .and_then(|l| l.generator_info())
                    .is_some_and(|g| &g == info)
            {
                return Ok(true);
            }
            let logs = dir.join("AWSLogs");
            if logs.exists() {
                std::fs::remove_dir_all(&logs).map_err(io_err(&logs))?;
            }
            std::fs::remove_file(&labels).map_err(io_err(&labels))?;
        }
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    Ok(false)
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

/// Writes the archive and `labels.json` into `dir` (see the module documentation). With
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
    fn rng_is_reproducible_and_uniform_enough() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(Rng::new(43).next_u64(), xs[0]);
        let mean = (0..10_000).map(|_| a.f64()).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        for lambda in [0.05, 3.0, 50.0] {
            let m = (0..20_000).map(|_| a.poisson(lambda) as f64).sum::<f64>() / 20_000.0;
            assert!((m - lambda).abs() < 0.05 * lambda.max(1.0), "{lambda}: {m}");
        }
        assert_eq!(a.poisson(0.0), 0);
    }

    #[test]
    fn uuids_have_the_version_4_shape() {
        let mut r = Rng::new(1);
        let re = regex::Regex::new(
            r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
        )
        .unwrap();
        for _ in 0..1000 {
            let u = r.uuid();
            assert!(re.is_match(&u), "{u}");
        }
    }

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
