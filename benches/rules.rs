//! Rule evaluation cost per CloudTrail event.
//!
//! The 57 SigmaHQ CloudTrail rules (`fixtures/sigmahq/`; group `rules`) and the built-in
//! detections (`rules/`, without the baseline document; group `builtin`) over 3,313 real records
//! (`fixtures/bench/`, see its README for sources and licences). Records are decompressed and
//! split once, then parsed into [`Event`]s outside the timed loops, so `rules/indexed` and
//! `rules/full_scan` measure matching alone; `decode/event_parse` measures `Event::parse` of
//! each record's JSON text. Every group reports throughput in events, so the time per event
//! is the measured time divided by the number of events (printed at start-up).
//!
//! Run with `cargo bench --bench rules`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flate2::read::GzDecoder;
use std::hint::black_box;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;
use trailwatch::event::Event;
use trailwatch::rules::{LoadOptions, Loader, RuleSet};

/// Longer than criterion's 5 s default: one iteration is a pass over every event (~1–10 ms),
/// and this VM's timings vary from sample to sample.
const MEASUREMENT_TIME: Duration = Duration::from_secs(10);

const EVENT_ARCHIVES: &[&str] = &[
    "stratus-red-team-detonation-logs.json.gz",
    "invictus-aws-dataset.json.gz",
    "otrf-ec2-proxy-s3-exfiltration.json.gz",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn load_rules() -> RuleSet {
    let mut loader = Loader::new(LoadOptions::default());
    loader.load_path(&fixtures().join("sigmahq"));
    let report = loader.finish();
    for d in report.errors() {
        eprintln!("{}", report.render(d));
    }
    assert!(!report.has_errors(), "the SigmaHQ fixture rules must load");
    RuleSet::new(report.rules)
}

/// The JSON text of every record, one compact string per record.
fn load_records() -> Vec<String> {
    let mut out = Vec::new();
    for name in EVENT_ARCHIVES {
        let path = fixtures().join("bench").join(name);
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut text = String::new();
        GzDecoder::new(file)
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut doc: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let records = match doc.get_mut("Records").map(serde_json::Value::take) {
            Some(serde_json::Value::Array(r)) => r,
            _ => panic!("{}: no `Records` list", path.display()),
        };
        out.extend(records.iter().map(|r| r.to_string()));
    }
    out
}

/// The built-in detection rules (compiled into the binary).
fn load_builtin() -> RuleSet {
    let report = trailwatch::rules::load(&[], true, LoadOptions::default());
    assert!(!report.has_errors(), "the built-in rules must load");
    RuleSet::new(report.rules)
}

/// Times indexed evaluation and a full scan of `rules` over `events` in group `name`, after
/// checking that both select the same rules on every event.
fn bench_set(c: &mut Criterion, name: &str, rules: &RuleSet, events: &[Event<'_>]) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for ev in events {
        rules.matching(ev, &mut a);
        rules.matching_full_scan(ev, &mut b);
        assert_eq!(a, b, "{name}: the index must select what a full scan finds");
    }
    let st = rules.index().stats();
    eprintln!(
        "{name}: {} rules; index: {} by eventName, {} by eventSource, {} by another field, {} always evaluated",
        rules.len(),
        st.by_name,
        st.by_source,
        st.by_field,
        st.always
    );
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(events.len() as u64));
    group.measurement_time(MEASUREMENT_TIME);
    group.bench_function("indexed", |bench| {
        let mut out = Vec::with_capacity(16);
        bench.iter(|| {
            let mut total = 0usize;
            for ev in events {
                rules.matching(black_box(ev), &mut out);
                total += out.len();
            }
            black_box(total)
        })
    });
    group.bench_function("full_scan", |bench| {
        let mut out = Vec::with_capacity(16);
        bench.iter(|| {
            let mut total = 0usize;
            for ev in events {
                rules.matching_full_scan(black_box(ev), &mut out);
                total += out.len();
            }
            black_box(total)
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let rules = load_rules();
    let records = load_records();
    let events: Vec<Event<'_>> = records
        .iter()
        .map(|r| Event::parse(r).expect("every fixture record is a JSON object"))
        .collect();
    let n = events.len() as u64;

    // The index must select exactly what a full scan finds; also gives the match count.
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut matched_events = 0usize;
    let mut matches = 0usize;
    let mut per_rule = vec![0usize; rules.len()];
    for ev in &events {
        rules.matching(ev, &mut a);
        rules.matching_full_scan(ev, &mut b);
        assert_eq!(a, b, "indexed and full-scan results differ");
        matched_events += usize::from(!a.is_empty());
        matches += a.len();
        for &i in &a {
            per_rule[i as usize] += 1;
        }
    }
    let bytes: usize = records.iter().map(String::len).sum();
    eprintln!(
        "rules: {} rules, {n} events ({bytes} bytes of JSON), {matches} matches on {matched_events} events; \
         time per event = reported time / {n}",
        rules.len()
    );
    for (rule, count) in rules.rules().iter().zip(&per_rule) {
        if *count > 0 {
            eprintln!("  {count:5}  {}", rule.meta.title);
        }
    }

    bench_set(c, "rules", &rules, &events);
    bench_set(c, "builtin", &load_builtin(), &events);

    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(n));
    group.measurement_time(MEASUREMENT_TIME);
    group.bench_function("event_parse", |bench| {
        bench.iter(|| {
            for r in &records {
                let ev = Event::parse(black_box(r.as_str())).expect("parses");
                black_box(&ev);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
