//! Correlation (stateful detection) cost and memory at scale.
//!
//! 1,000,000 synthetic CloudTrail records from 100,000 distinct IAM users go through a rule set
//! of 20 base rules and 20 correlation rules, every correlation grouped by `userIdentity.arn`.
//! Thresholds are high, so correlations fire rarely and the state of most principals stays
//! live. Plain `main` printing figures (not criterion): one pass over 1 M events is long
//! enough to time directly.
//!
//! - stateless: `Evaluator::evaluate` over every event (rule matching and building the hits);
//! - full: `Evaluator::evaluate_at` + `Pipeline::push` per event (the event time parsed once,
//!   as the backtest does, so both passes parse it once), then `Pipeline::finish`, with
//!   `Settings { lateness: 15 min, max_keys: 200_000, default_suppress: None }`;
//! - each pass is also timed in CPU time of the thread (`/proc/thread-self/schedstat`), which
//!   other processes on a shared machine disturb less than wall time;
//! - the same two with `Event::parse` inside the timed loop (decode-inclusive);
//! - heap, from a counting global allocator around mimalloc, the binary's allocator (below;
//!   it counts requested bytes, not the allocator's own overhead): the peak during the full
//!   pass, and the heap the correlator and suppressor hold at the end (current bytes just
//!   before dropping the `Pipeline` minus just after), divided by `correlator.live_keys()`.
//!   A last full pass over the same records without `eventID` gives that figure without
//!   event ids (which groups keep for the hits they hold).
//!
//! Records are generated deterministically (xorshift64*), so every run sees the same input,
//! and parsed into [`Event`]s once, before anything is timed. `Event` builds a top-level
//! member (`userIdentity`, …) the first time something reads it and keeps it; the first
//! stateless pass does that building and is reported as "cold". The timed stateless and full
//! passes after it run on the same, warm events, so both measure the engine alone and the heap
//! growth of the full pass is the engine's, not the events'.
//!
//! Run with `cargo bench --bench correlate`. Environment knobs (defaults in brackets):
//! `CORRELATE_EVENTS` [1000000], `CORRELATE_PRINCIPALS` [100000], `CORRELATE_REPS` [1]
//! (stateless + full pairs to time; the median is reported), `CORRELATE_DECODE` [1] (0: skip
//! the decode-inclusive full pass), `CORRELATE_NOID` [1] (0: skip the pass without eventID),
//! `CORRELATE_PROGRESS` [0] (1: every 100,000 events of a full pass, print live keys, heap and
//! the rate of the last 100,000 events to stderr), `CORRELATE_COUNT_ALLOC` [1] (0: the
//! allocator does not count, to see its overhead; no memory figures then),
//! `CORRELATE_SNAPSHOT` [unset] (a path: write the correlator's snapshot, JSON, there after
//! the last timed full pass, to see what the groups hold),
//! `CORRELATE_TUMBLING` [0] (1: add a 21st correlation with an upper bound, i.e. a tumbling
//! window), `CORRELATE_EXPORT` [unset] (a directory: write the records and the rule set there
//! for `trailwatch backtest`, and time nothing; see `scripts/bench-correlate`).

use mimalloc::MiMalloc;
use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};
use std::time::Instant;
use trailwatch::engine::{Evaluator, Pipeline, Settings};
use trailwatch::event::Event;
use trailwatch::finding::Finding;
use trailwatch::rules::exceptions::Exceptions;
use trailwatch::rules::{LoadOptions, Loader, RuleSet};
use trailwatch::util::time::parse_event_time;

// ---------------------------------------------------------------------------------------------
// Counting allocator

/// The binary's allocator (mimalloc, as in `src/main.rs`), counting the bytes currently
/// allocated and the peak since the last reset.
struct Counting;

static COUNT: AtomicBool = AtomicBool::new(true);
static CURRENT: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

impl Counting {
    #[inline]
    fn add(n: usize) {
        if COUNT.load(Relaxed) {
            let now = CURRENT.fetch_add(n as isize, Relaxed) + n as isize;
            if now > PEAK.load(Relaxed) {
                PEAK.fetch_max(now, Relaxed);
            }
        }
    }
    #[inline]
    fn sub(n: usize) {
        if COUNT.load(Relaxed) {
            CURRENT.fetch_sub(n as isize, Relaxed);
        }
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { MiMalloc.alloc(layout) };
        if !p.is_null() {
            Self::add(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            Self::add(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { MiMalloc.dealloc(ptr, layout) };
        Self::sub(layout.size());
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            Self::sub(layout.size());
            Self::add(new_size);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Requested bytes currently allocated (malloc's own overhead is not counted).
fn heap_now() -> isize {
    CURRENT.load(Relaxed)
}

fn reset_peak() -> isize {
    let now = heap_now();
    PEAK.store(now, Relaxed);
    now
}

fn heap_peak() -> isize {
    PEAK.load(Relaxed)
}

/// CPU time of the calling thread, in seconds (`/proc/thread-self/schedstat`: nanoseconds
/// on a CPU); 0 where that file is missing.
fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |ns| ns as f64 / 1e9)
}

fn proc_status(key: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .map(|l| l[key.len()..].trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

// ---------------------------------------------------------------------------------------------
// Deterministic input

/// xorshift64* (Vigna): tiny, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// (eventSource prefix, eventName, relative weight, readOnly): 40 names.
const NAMES: &[(&str, &str, u32, bool)] = &[
    ("ec2", "DescribeInstances", 600, true),
    ("ec2", "DescribeSecurityGroups", 300, true),
    ("ec2", "DescribeVolumes", 200, true),
    ("ec2", "RunInstances", 40, false),
    ("ec2", "TerminateInstances", 20, false),
    ("ec2", "ModifyInstanceAttribute", 10, false),
    ("ec2", "CreateSnapshot", 10, false),
    ("ec2", "AuthorizeSecurityGroupIngress", 10, false),
    ("ec2", "GetPasswordData", 3, true),
    ("s3", "GetObject", 800, true),
    ("s3", "PutObject", 400, false),
    ("s3", "ListBuckets", 150, true),
    ("s3", "GetBucketPolicy", 50, true),
    ("s3", "PutBucketPolicy", 5, false),
    ("s3", "PutBucketAcl", 5, false),
    ("s3", "DeleteBucket", 3, false),
    ("iam", "GetUser", 100, true),
    ("iam", "ListUsers", 50, true),
    ("iam", "ListRoles", 50, true),
    ("iam", "CreateUser", 5, false),
    ("iam", "CreateAccessKey", 5, false),
    ("iam", "AttachUserPolicy", 5, false),
    ("iam", "PutUserPolicy", 3, false),
    ("iam", "DeleteUser", 2, false),
    ("iam", "UpdateAssumeRolePolicy", 2, false),
    ("sts", "AssumeRole", 400, true),
    ("sts", "GetCallerIdentity", 300, true),
    ("sts", "GetSessionToken", 50, true),
    ("kms", "Decrypt", 400, true),
    ("kms", "GenerateDataKey", 200, true),
    ("kms", "ScheduleKeyDeletion", 1, false),
    ("kms", "DisableKey", 1, false),
    ("cloudtrail", "DescribeTrails", 30, true),
    ("cloudtrail", "LookupEvents", 30, true),
    ("cloudtrail", "StopLogging", 1, false),
    ("cloudtrail", "DeleteTrail", 1, false),
    ("lambda", "ListFunctions20150331", 50, true),
    ("lambda", "CreateFunction20150331", 5, false),
    ("logs", "CreateLogStream", 100, false),
    ("secretsmanager", "GetSecretValue", 100, true),
];

const REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "sa-east-1",
];

/// Length of the generated period (eventTime 2026-11-20T00:00:00Z onwards).
const DAY_MS: u64 = 86_400_000;

/// The principal of each event: 40 % round-robin over a permutation of all principals (so
/// every one appears at least `0.4 · events / principals` times, spread over the day), 50 %
/// from a power law (a few heavy users), 10 % from 20 automation users.
fn pick_principal(rng: &mut Rng, rr: &mut u64, principals: u64, mult: u64) -> u64 {
    let r = rng.unit();
    if r < 0.4 {
        let k = *rr % principals;
        *rr += 1;
        (k * mult + 13) % principals
    } else if r < 0.9 {
        let u = rng.unit();
        ((u * u * u) * principals as f64) as u64 % principals
    } else {
        rng.below(20.min(principals))
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// `n` CloudTrail-like records as compact JSON, in (roughly) increasing eventTime over 24 h.
fn generate(n: usize, principals: u64, with_event_id: bool) -> Vec<String> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let total_weight: u32 = NAMES.iter().map(|n| n.2).sum();
    let mut mult = 7919;
    while gcd(mult, principals) != 1 {
        mult += 2;
    }
    let mut rr = 0u64;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let p = pick_principal(&mut rng, &mut rr, principals, mult);
        let acct = 100_000_000_000u64 + (p % 50) * 1_234_567;
        // Time: evenly spread over the day, with up to ±2 s of disorder.
        let base = (i as u64 * DAY_MS) / n as u64;
        let t = (base + rng.below(4_000))
            .saturating_sub(2_000)
            .min(DAY_MS - 1);
        let (h, m, s) = (t / 3_600_000, t / 60_000 % 60, t / 1_000 % 60);
        let mut w = rng.below(total_weight as u64) as u32;
        let &(svc, name, _, read_only) = NAMES
            .iter()
            .find(|e| {
                if w < e.2 {
                    true
                } else {
                    w -= e.2;
                    false
                }
            })
            .expect("weights cover the range");
        // Mostly the principal's home region; sometimes another.
        let region = if rng.below(10) < 8 {
            REGIONS[(p % 3) as usize]
        } else {
            REGIONS[rng.below(REGIONS.len() as u64) as usize]
        };
        // One of the principal's 3 addresses, or (5 %) anywhere.
        let ip = if rng.below(20) == 0 {
            format!(
                "{}.{}.{}.{}",
                rng.below(223) + 1,
                rng.below(256),
                rng.below(256),
                rng.below(256)
            )
        } else {
            let k = rng.below(3);
            format!("10.{}.{}.{}", (p >> 8) & 255, p & 255, 10 + k)
        };
        let error = if rng.below(50) == 0 {
            r#","errorCode":"AccessDenied","errorMessage":"User is not authorized to perform this operation""#
        } else {
            ""
        };
        let request = match svc {
            "s3" => format!(
                r#"{{"bucketName":"bucket-{}","key":"data/{}.json"}}"#,
                p % 200 + rng.below(60),
                rng.below(100_000)
            ),
            "ec2" => format!(
                r#"{{"instancesSet":{{"items":[{{"instanceId":"i-{:017x}"}}]}}}}"#,
                rng.next() >> 4
            ),
            "iam" => format!(r#"{{"userName":"u{}"}}"#, rng.below(principals)),
            "sts" => format!(
                r#"{{"roleArn":"arn:aws:iam::{acct}:role/app-{}","roleSessionName":"s{}"}}"#,
                rng.below(10),
                rng.below(1000)
            ),
            _ => r#"{"maxResults":100}"#.to_string(),
        };
        let id = if with_event_id {
            format!(
                r#""eventID":"{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}","#,
                rng.next() as u32,
                rng.next() as u16,
                rng.next() & 0xfff,
                rng.next() & 0xfff,
                rng.next() & 0xffff_ffff_ffff
            )
        } else {
            // Draw the same numbers so the rest of the stream is identical.
            for _ in 0..5 {
                rng.next();
            }
            String::new()
        };
        out.push(format!(
            concat!(
                r#"{{"eventVersion":"1.09","userIdentity":{{"type":"IAMUser","principalId":"AIDA{p:016X}","#,
                r#""arn":"arn:aws:iam::{acct}:user/u{p}","accountId":"{acct}","userName":"u{p}"}},"#,
                r#""eventTime":"2026-11-20T{h:02}:{m:02}:{s:02}Z","eventSource":"{svc}.amazonaws.com","#,
                r#""eventName":"{name}","awsRegion":"{region}","sourceIPAddress":"{ip}","#,
                r#""userAgent":"aws-cli/2.15.0 Python/3.11.6 Linux/6.1 botocore/2.4.5"{error},"#,
                r#""requestParameters":{request},"responseElements":null,"#,
                r#""requestID":"{req:032x}",{id}"readOnly":{ro},"eventType":"AwsApiCall","#,
                r#""managementEvent":true,"recipientAccountId":"{acct}","eventCategory":"Management"}}"#
            ),
            p = p,
            acct = acct,
            h = h,
            m = m,
            s = s,
            svc = svc,
            name = name,
            region = region,
            ip = ip,
            error = error,
            request = request,
            req = u128::from(rng.next()) << 64 | u128::from(rng.next()),
            id = id,
            ro = read_only,
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Rules

/// Base rules: (name, eventSource prefix, eventNames). An empty source means the `errorCode`
/// rule.
const BASE: &[(&str, &str, &[&str])] = &[
    (
        "ec2_describe",
        "ec2",
        &[
            "DescribeInstances",
            "DescribeSecurityGroups",
            "DescribeVolumes",
        ],
    ),
    (
        "ec2_change",
        "ec2",
        &[
            "RunInstances",
            "TerminateInstances",
            "ModifyInstanceAttribute",
            "CreateSnapshot",
        ],
    ),
    ("sg_ingress", "ec2", &["AuthorizeSecurityGroupIngress"]),
    (
        "s3_read",
        "s3",
        &["GetObject", "ListBuckets", "GetBucketPolicy"],
    ),
    ("s3_write", "s3", &["PutObject"]),
    (
        "s3_exposure",
        "s3",
        &["PutBucketPolicy", "PutBucketAcl", "DeleteBucket"],
    ),
    ("iam_enum", "iam", &["GetUser", "ListUsers", "ListRoles"]),
    (
        "iam_persist",
        "iam",
        &[
            "CreateUser",
            "CreateAccessKey",
            "AttachUserPolicy",
            "PutUserPolicy",
        ],
    ),
    (
        "iam_destroy",
        "iam",
        &["DeleteUser", "UpdateAssumeRolePolicy"],
    ),
    ("sts_assume", "sts", &["AssumeRole", "GetSessionToken"]),
    ("sts_whoami", "sts", &["GetCallerIdentity"]),
    ("kms_use", "kms", &["Decrypt", "GenerateDataKey"]),
    ("kms_destroy", "kms", &["ScheduleKeyDeletion", "DisableKey"]),
    (
        "trail_read",
        "cloudtrail",
        &["DescribeTrails", "LookupEvents"],
    ),
    (
        "trail_tamper",
        "cloudtrail",
        &["StopLogging", "DeleteTrail"],
    ),
    ("lambda_list", "lambda", &["ListFunctions20150331"]),
    ("lambda_create", "lambda", &["CreateFunction20150331"]),
    ("secret_read", "secretsmanager", &["GetSecretValue"]),
    ("ec2_password", "ec2", &["GetPasswordData"]),
    ("refused", "", &[]),
];

/// Correlations: (type, rules, timespan, condition). All grouped by `userIdentity.arn`.
const CORRS: &[(&str, &[&str], &str, &str)] = &[
    ("event_count", &["ec2_describe"], "1h", "{gte: 150}"),
    ("event_count", &["s3_read"], "1h", "{gte: 150}"),
    ("event_count", &["s3_write"], "6h", "{gte: 300}"),
    ("event_count", &["iam_enum"], "1h", "{gte: 40}"),
    ("event_count", &["sts_assume"], "1h", "{gte: 150}"),
    ("event_count", &["kms_use"], "6h", "{gte: 600}"),
    ("event_count", &["secret_read"], "1h", "{gte: 40}"),
    ("event_count", &["refused"], "1h", "{gte: 15}"),
    ("event_count", &["ec2_change"], "24h", "{gte: 100}"),
    ("event_count", &["iam_persist"], "24h", "{gte: 30}"),
    (
        "event_count",
        &["iam_enum", "lambda_list", "trail_read"],
        "12h",
        "{gte: 500}",
    ),
    ("event_count", &["sts_whoami"], "24h", "{gte: 1500}"),
    (
        "value_count",
        &["ec2_describe"],
        "24h",
        "{gte: 8, field: awsRegion}",
    ),
    (
        "value_count",
        &["sts_assume"],
        "24h",
        "{gte: 40, field: sourceIPAddress}",
    ),
    (
        "value_count",
        &["iam_enum", "lambda_list", "trail_read", "sts_whoami"],
        "6h",
        "{gte: 8, field: eventName}",
    ),
    (
        "value_count",
        &["s3_read"],
        "2h",
        "{gte: 55, field: requestParameters.bucketName}",
    ),
    ("temporal", &["iam_persist", "trail_tamper"], "24h", ""),
    ("temporal", &["sg_ingress", "ec2_password"], "2h", ""),
    (
        "temporal",
        &["kms_destroy", "s3_exposure", "iam_destroy"],
        "12h",
        "",
    ),
    (
        "temporal_ordered",
        &["iam_enum", "iam_persist", "lambda_create"],
        "24h",
        "",
    ),
];

/// The optional 21st correlation: a range condition, so a tumbling window per group.
const TUMBLING: (&str, &[&str], &str, &str) =
    ("event_count", &["s3_read"], "1h", "{gte: 150, lte: 100000}");

/// The rule set as YAML documents: the base rules, then (with `correlations`) the correlations.
fn rules_yaml(tumbling: bool) -> String {
    rules_yaml_with(tumbling, true)
}

fn rules_yaml_with(tumbling: bool, correlations: bool) -> String {
    let mut y = String::new();
    for (i, (name, svc, names)) in BASE.iter().enumerate() {
        let detection = if svc.is_empty() {
            "  selection:\n    - errorCode|startswith: AccessDenied\n    - errorCode|endswith: UnauthorizedOperation\n  condition: selection\n".to_string()
        } else {
            format!(
                "  selection:\n    eventSource: {svc}.amazonaws.com\n    eventName: [{}]\n  condition: selection\n",
                names.join(", ")
            )
        };
        y.push_str(&format!(
            "title: Bench base rule {name}\nname: {name}\nid: 00000000-0000-4000-8000-{:012}\n\
             logsource:\n  product: aws\n  service: cloudtrail\ndetection:\n{detection}level: informational\n---\n",
            i + 1
        ));
    }
    let extra = tumbling.then_some(&TUMBLING);
    let corrs = if correlations { CORRS } else { &[] };
    for (i, (kind, rules, span, cond)) in corrs.iter().chain(extra).enumerate() {
        let condition = if cond.is_empty() {
            String::new()
        } else {
            format!("  condition: {cond}\n")
        };
        y.push_str(&format!(
            "title: Bench correlation {} ({kind} of {})\nid: 00000000-0000-4000-8000-{:012}\n\
             correlation:\n  type: {kind}\n  rules: [{}]\n  group-by: [userIdentity.arn]\n  timespan: {span}\n{condition}\
             level: medium\n---\n",
            i + 1,
            rules.join(", "),
            1000 + i + 1,
            rules.join(", ")
        ));
    }
    y
}

/// `CORRELATE_EXPORT`: writes the records and the rule set for `trailwatch backtest`, to
/// compare the whole command with and without the correlations (scripts/bench-correlate):
/// `<dir>/records/part-NN.json` (S3 archive layout, `{"Records": [...]}`, 100,000 records per
/// file in generation order), `<dir>/with-correlations/bench.yml` and
/// `<dir>/base-only/bench.yml` (the same base rules without the correlations).
fn export_run(dir: &str, records: &[String], tumbling: bool) {
    let dir = std::path::Path::new(dir);
    let write = |path: std::path::PathBuf, text: &str| {
        std::fs::create_dir_all(path.parent().expect("has a parent"))
            .and_then(|()| std::fs::write(&path, text))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    };
    write(
        dir.join("with-correlations/bench.yml"),
        &rules_yaml_with(tumbling, true),
    );
    write(
        dir.join("base-only/bench.yml"),
        &rules_yaml_with(tumbling, false),
    );
    for (i, chunk) in records.chunks(100_000).enumerate() {
        let text = format!("{{\"Records\":[{}]}}", chunk.join(","));
        write(dir.join(format!("records/part-{i:02}.json")), &text);
    }
    println!(
        "exported {} records and the rules to {}",
        records.len(),
        dir.display()
    );
}

fn load_rules(tumbling: bool) -> RuleSet {
    let mut loader = Loader::new(LoadOptions::default());
    let yaml = rules_yaml(tumbling);
    let yaml = yaml.strip_suffix("---\n").unwrap_or(&yaml);
    loader.load_source("bench-correlate.yml", yaml, None);
    let report = loader.finish();
    for d in report.errors() {
        eprintln!("{}", report.render(d));
    }
    assert!(!report.has_errors(), "the bench rules must load");
    let (rules, dropped) = RuleSet::with_correlations(report.rules, report.correlations);
    assert!(dropped.is_empty(), "{dropped:?}");
    rules
}

// ---------------------------------------------------------------------------------------------
// Passes

fn settings() -> Settings {
    Settings {
        lateness: 15 * 60_000,
        max_keys: 200_000,
        default_suppress: None,
    }
}

fn parse_all(records: &[String]) -> Vec<Event<'_>> {
    records
        .iter()
        .map(|r| Event::parse(r).expect("generated records are JSON objects"))
        .collect()
}

struct Stateless {
    secs: f64,
    cpu: f64,
    matched_events: usize,
    hits: usize,
}

fn stateless(rules: &RuleSet, events: &[Event<'_>]) -> Stateless {
    let exceptions = Exceptions::default();
    let settings = settings();
    let mut evaluator = Evaluator::new(rules, &exceptions, &settings);
    let (mut matched_events, mut hits) = (0, 0);
    let cpu = thread_cpu();
    let start = Instant::now();
    for ev in events {
        let out = evaluator.evaluate(black_box(ev));
        matched_events += usize::from(!out.is_empty());
        hits += out.hits.len();
        black_box(&out);
    }
    Stateless {
        secs: start.elapsed().as_secs_f64(),
        cpu: thread_cpu() - cpu,
        matched_events,
        hits,
    }
}

#[derive(Default)]
struct Full {
    secs: f64,
    cpu: f64,
    findings: usize,
    /// FNV-1a over every finding's id, event ids and event count, in output order (to check
    /// that a change to the engine leaves the findings as they were).
    digest: u64,
    per_rule: BTreeMap<String, usize>,
    live_keys: usize,
    peak_live_keys: usize,
    /// Heap: at the start, peak, and just before / after dropping the `Pipeline`.
    base: isize,
    peak: isize,
    before_drop: isize,
    after_drop: isize,
    late_hits: u64,
    expired_keys: u64,
    evicted_keys: u64,
}

fn count(findings: &mut Vec<Finding>, r: &mut Full) {
    for f in findings.drain(..) {
        r.findings += 1;
        let fnv = |h: u64, s: &str| {
            s.bytes()
                .chain([0xff])
                .fold(h, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3))
        };
        r.digest = fnv(r.digest, &f.id);
        for id in &f.event_ids {
            r.digest = fnv(r.digest, id);
        }
        r.digest = fnv(r.digest, &f.event_count.to_string());
        *r.per_rule.entry(f.rule.title.clone()).or_default() += 1;
    }
}

/// `Evaluator::evaluate` + `Pipeline::push` per event, then `finish`. With `records`, parses
/// each record inside the timed loop (and `events` is ignored).
/// With `snapshot`, writes `Correlator::snapshot` there at the end (after the heap figures
/// are taken; for looking at what the groups hold).
fn full(
    rules: &RuleSet,
    events: &[Event<'_>],
    records: Option<&[String]>,
    snapshot: Option<&str>,
) -> Full {
    let exceptions = Exceptions::default();
    let settings = settings();
    let mut r = Full {
        digest: 0xcbf29ce484222325,
        base: reset_peak(),
        ..Full::default()
    };
    let mut evaluator = Evaluator::new(rules, &exceptions, &settings);
    let mut stateful = Pipeline::new(rules, &exceptions, &settings);
    let mut ready: Vec<Finding> = Vec::new();
    let progress = env_num("CORRELATE_PROGRESS", 0) != 0;
    let mut chunk_start = 0.0f64;
    let chunk_start = &mut chunk_start;
    let cpu = thread_cpu();
    let start = Instant::now();
    let mut step = |i: usize, ev: &Event<'_>, r: &mut Full| {
        let time = ev.event_time().and_then(parse_event_time);
        let out = evaluator.evaluate_at(black_box(ev), time);
        stateful.push(time, out, &mut ready);
        if !ready.is_empty() {
            count(&mut ready, r);
        }
        if i.is_multiple_of(10_000) {
            let live = stateful.live_keys();
            r.peak_live_keys = r.peak_live_keys.max(live);
            if progress && i.is_multiple_of(100_000) && i > 0 {
                let now = start.elapsed().as_secs_f64();
                eprintln!(
                    "  [{i:>9} events, {now:7.1} s] {live} live keys, heap {} MB, last 100k at {} events/s",
                    mb(heap_now()),
                    rate(100_000, now - *chunk_start)
                );
                *chunk_start = now;
            }
        }
    };
    match records {
        Some(recs) => {
            for (i, text) in recs.iter().enumerate() {
                let ev = Event::parse(black_box(text)).expect("parses");
                step(i, &ev, &mut r);
            }
        }
        None => {
            for (i, ev) in events.iter().enumerate() {
                step(i, ev, &mut r);
            }
        }
    }
    stateful.finish(&mut ready);
    count(&mut ready, &mut r);
    r.secs = start.elapsed().as_secs_f64();
    r.cpu = thread_cpu() - cpu;
    r.live_keys = stateful.live_keys();
    r.peak_live_keys = r.peak_live_keys.max(r.live_keys);
    let stats = stateful.stats().correlation;
    r.late_hits = stats.late_hits;
    r.expired_keys = stats.expired_keys;
    r.evicted_keys = stats.evicted_keys;
    r.peak = heap_peak();
    drop(ready);
    r.before_drop = heap_now();
    if let Some(path) = snapshot {
        let bytes = stateful.correlator_snapshot();
        std::fs::write(path, &bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
        eprintln!("correlator snapshot: {} bytes to {path}", bytes.len());
    }
    drop(stateful);
    r.after_drop = heap_now();
    drop(evaluator);
    r
}

// ---------------------------------------------------------------------------------------------

fn env_num(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn rate(n: usize, secs: f64) -> String {
    let r = n as f64 / secs;
    if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else if r >= 1e4 {
        format!("{:.0} k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

fn mb(b: isize) -> String {
    format!("{:.1}", b as f64 / 1e6)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let counting = env_num("CORRELATE_COUNT_ALLOC", 1) != 0;
    COUNT.store(counting, Relaxed);
    let n = env_num("CORRELATE_EVENTS", 1_000_000) as usize;
    let principals = env_num("CORRELATE_PRINCIPALS", 100_000);
    let reps = env_num("CORRELATE_REPS", 1).max(1) as usize;
    let tumbling = env_num("CORRELATE_TUMBLING", 0) != 0;
    let decode_pass = env_num("CORRELATE_DECODE", 1) != 0;
    let noid_pass = counting && env_num("CORRELATE_NOID", 1) != 0;
    let snapshot = std::env::var("CORRELATE_SNAPSHOT").ok();
    let export = std::env::var("CORRELATE_EXPORT").ok();

    let rules = load_rules(tumbling);
    let plans = rules.plans();
    let st = rules.index().stats();
    println!(
        "rules: {} base rules ({} filed by eventName, {} by eventSource, {} by another field, {} always evaluated), \
         {} correlations grouped by userIdentity.arn",
        rules.rules().len(),
        st.by_name,
        st.by_source,
        st.by_field,
        st.always,
        plans.plans.len()
    );

    let t = Instant::now();
    let records = generate(n, principals, true);
    let gen_secs = t.elapsed().as_secs_f64();
    let bytes: usize = records.iter().map(String::len).sum();
    if let Some(dir) = export {
        export_run(&dir, &records, tumbling);
        return;
    }
    let t = Instant::now();
    let events = parse_all(&records);
    let parse_secs = t.elapsed().as_secs_f64();
    let mut seen = vec![0u32; principals as usize];
    for ev in &events {
        let arn = ev.identity_str("arn").expect("arn");
        let p: usize = arn
            .rsplit("/u")
            .next()
            .and_then(|s| s.parse().ok())
            .expect("uN");
        seen[p] += 1;
    }
    let distinct = seen.iter().filter(|&&c| c > 0).count();
    let min_per = seen.iter().copied().min().unwrap_or(0);
    let max_per = seen.iter().copied().max().unwrap_or(0);
    println!(
        "input: {n} records, {bytes} bytes of JSON ({} per record), {distinct} distinct principals \
         (events per principal: min {min_per}, max {max_per}, mean {:.1}); generated in {gen_secs:.1} s, \
         parsed in {parse_secs:.1} s",
        bytes / n.max(1),
        n as f64 / distinct.max(1) as f64,
    );
    println!(
        "heap: {} MB after generating and parsing the records (allocator counting: {})",
        mb(heap_now()),
        if counting { "on" } else { "off" }
    );

    // The first pass builds the members the rules read (cold); then every pass is warm.
    let cold = stateless(&rules, &events);
    println!(
        "stateless, cold events: {:.3} s ({} events/s)",
        cold.secs,
        rate(n, cold.secs)
    );
    let (mut s_secs, mut f_secs) = (Vec::new(), Vec::new());
    let (mut s_cpu, mut f_cpu) = (Vec::new(), Vec::new());
    let mut last = None;
    for rep in 0..reps {
        let s = stateless(&rules, &events);
        let f = full(
            &rules,
            &events,
            None,
            snapshot.as_deref().filter(|_| rep + 1 == reps),
        );
        println!(
            "rep {}: stateless {:.3} s ({} events/s), full {:.3} s ({} events/s), ratio {:.2} \
             (CPU time {:.3} s / {:.3} s, ratio {:.2}); {} findings (digest {:016x}), {} live keys",
            rep + 1,
            s.secs,
            rate(n, s.secs),
            f.secs,
            rate(n, f.secs),
            f.secs / s.secs,
            s.cpu,
            f.cpu,
            f.cpu / s.cpu,
            f.findings,
            f.digest,
            f.live_keys
        );
        s_secs.push(s.secs);
        f_secs.push(f.secs);
        s_cpu.push(s.cpu);
        f_cpu.push(f.cpu);
        last = Some((s, f));
    }
    let (s, f) = last.expect("one rep");
    drop(events);

    // Decoding inside the timed loop.
    let t = Instant::now();
    let mut hits = 0usize;
    {
        let exceptions = Exceptions::default();
        let settings = settings();
        let mut evaluator = Evaluator::new(&rules, &exceptions, &settings);
        for text in &records {
            let ev = Event::parse(black_box(text)).expect("parses");
            hits += evaluator.evaluate(&ev).hits.len();
        }
    }
    let s_decode = t.elapsed().as_secs_f64();
    assert_eq!(hits, s.hits);
    let fd = decode_pass.then(|| {
        let fd = full(&rules, &[], Some(&records), None);
        assert_eq!((fd.findings, fd.digest), (f.findings, f.digest));
        fd
    });
    drop(records);

    // The same records without eventID: no event-id sample in the groups.
    let m_noid = noid_pass.then(|| {
        let records = generate(n, principals, false);
        let events = parse_all(&records);
        black_box(stateless(&rules, &events).hits);
        let m = full(&rules, &events, None, None);
        assert_eq!(
            m.live_keys, f.live_keys,
            "eventID must not change the groups"
        );
        assert_eq!(m.findings, f.findings);
        m
    });

    let s_med = median(&mut s_secs);
    let f_med = median(&mut f_secs);
    let s_cpu_med = median(&mut s_cpu);
    let f_cpu_med = median(&mut f_cpu);
    let held = f.before_drop - f.after_drop;
    let per_key = held as f64 / f.live_keys.max(1) as f64;
    // Growth of the events themselves during the full pass (none expected: they are warm).
    let events_growth = f.after_drop - f.base;

    println!();
    println!("findings per correlation:");
    for (title, c) in &f.per_rule {
        println!("  {c:6}  {title}");
    }
    println!(
        "base-rule matches: {} of {n} events matched, {} hits to correlations; \
         correlator: {} late hits, {} keys expired, {} evicted",
        s.matched_events, s.hits, f.late_hits, f.expired_keys, f.evicted_keys
    );
    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!("| events | {n} |");
    println!(
        "| rules | {} base rules + {} correlations |",
        rules.rules().len(),
        plans.plans.len()
    );
    println!(
        "| correlations | {} (all `group-by: [userIdentity.arn]`) |",
        plans.plans.len()
    );
    println!("| principals | {distinct} |");
    println!(
        "| stateless (`Evaluator::evaluate`), median of {reps} | {s_med:.3} s, **{} events/s** |",
        rate(n, s_med)
    );
    println!(
        "| full (`evaluate_at` + `Pipeline::push` + `finish`), median of {reps} | {f_med:.3} s, **{} events/s** |",
        rate(n, f_med)
    );
    println!(
        "| ratio full / stateless (time; target ≤ 2) | **{:.2}** |",
        f_med / s_med
    );
    println!(
        "| CPU time of the thread, stateless / full (median of {reps}); ratio | {s_cpu_med:.3} s / {f_cpu_med:.3} s; {:.2} |",
        f_cpu_med / s_cpu_med
    );
    println!(
        "| stateless on cold events (first pass: builds members) | {:.3} s, {} events/s |",
        cold.secs,
        rate(n, cold.secs)
    );
    println!(
        "| `Event::parse` alone | {parse_secs:.3} s, {} events/s |",
        rate(n, parse_secs)
    );
    println!(
        "| decode-inclusive stateless (parse + evaluate) | {s_decode:.3} s, {} events/s |",
        rate(n, s_decode)
    );
    if let Some(fd) = &fd {
        println!(
            "| decode-inclusive full (parse + evaluate + push + finish) | {:.3} s, {} events/s |",
            fd.secs,
            rate(n, fd.secs)
        );
    }
    if counting {
        println!(
            "| peak heap during full pass (absolute; records + events held: {} MB) | {} MB |",
            mb(f.base),
            mb(f.peak)
        );
        println!(
            "| peak heap during full pass above its start | **{} MB** |",
            mb(f.peak - f.base)
        );
        println!(
            "| heap left after dropping the `Pipeline`, above the start | {} MB |",
            mb(events_growth)
        );
        println!(
            "| heap held by correlator + suppressor at end | {} MB |",
            mb(held)
        );
        println!("| bytes per live key (incl. event ids) | {per_key:.0} B |");
        if let Some(m) = &m_noid {
            let held_noid = m.before_drop - m.after_drop;
            println!(
                "| bytes per live key, records without eventID (no event ids) | **{:.0} B** (target < 300 B; held {} MB) |",
                held_noid as f64 / m.live_keys.max(1) as f64,
                mb(held_noid)
            );
        }
        println!(
            "| peak heap above start / peak live keys | {:.0} B |",
            (f.peak - f.base) as f64 / f.peak_live_keys.max(1) as f64
        );
    }
    println!(
        "| live keys at end (peak, sampled every 10k events) | {} ({}) |",
        f.live_keys, f.peak_live_keys
    );
    println!("| findings | {} (digest {:016x}) |", f.findings, f.digest);
    println!("| VmHWM (whole process) | {} |", proc_status("VmHWM:"));
}
