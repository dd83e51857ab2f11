//! The candidate index never changes results: indexed evaluation equals a full scan, on
//! generated rules and events (proptest).

use proptest::prelude::*;
use trailwatch::event::Event;
use trailwatch::rules::{LoadOptions, Loader, RuleSet};

const NAMES: &[&str] = &[
    "StopLogging",
    "stoplogging",
    "DeleteTrail",
    "ConsoleLogin",
    "PutBucketPolicy",
    "CreateUser",
];
const SOURCES: &[&str] = &[
    "cloudtrail.amazonaws.com",
    "CloudTrail.amazonaws.com",
    "signin.amazonaws.com",
    "s3.amazonaws.com",
    "iam.amazonaws.com",
];
const FIELDS: &[&str] = &["eventName", "eventSource", "userIdentity.type", "errorCode"];
const VALUES: &[&str] = &[
    "StopLogging",
    "DeleteTrail",
    "ConsoleLogin",
    "cloudtrail.amazonaws.com",
    "iam.amazonaws.com",
    "Root",
    "AccessDenied",
    "Stop*",
    "*Trail",
    "null",
];
const MODS: &[&str] = &[
    "",
    "",
    "",
    "|contains",
    "|startswith",
    "|cased",
    "|endswith",
    "|all",
];

fn field_entry() -> impl Strategy<Value = String> {
    (
        prop::sample::select(FIELDS),
        prop::sample::select(MODS),
        prop::collection::vec(prop::sample::select(VALUES), 1..4),
    )
        .prop_map(|(f, m, vals)| {
            let vals: Vec<String> = vals
                .iter()
                .map(|v| {
                    if *v == "null" && m.is_empty() {
                        "null".to_string()
                    } else {
                        format!("'{}'", v.replace('\'', "''"))
                    }
                })
                .collect();
            format!("{f}{m}: [{}]", vals.join(", "))
        })
}

/// A YAML flow mapping of field entries, keeping the first entry of each key (YAML keys are
/// unique).
fn mapping(fields: &[String]) -> String {
    let mut seen = std::collections::HashSet::new();
    let unique: Vec<&str> = fields
        .iter()
        .filter(|f| seen.insert(f.split(':').next().unwrap_or("").to_string()))
        .map(String::as_str)
        .collect();
    format!("{{{}}}", unique.join(", "))
}

fn selection() -> impl Strategy<Value = String> {
    prop_oneof![
        // A mapping (AND of fields).
        prop::collection::vec(field_entry(), 1..3).prop_map(|fs| mapping(&fs)),
        // A list of mappings (OR).
        prop::collection::vec(prop::collection::vec(field_entry(), 1..3), 1..3).prop_map(|gs| {
            let maps: Vec<String> = gs.iter().map(|fs| mapping(fs)).collect();
            format!("[{}]", maps.join(", "))
        }),
    ]
}

fn condition(n: usize) -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        (0..n).prop_map(|i| format!("sel{i}")),
        Just("1 of sel*".to_string()),
        Just("all of them".to_string()),
    ];
    leaf.prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} and {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} or {b})")),
            inner.prop_map(|a| format!("not {a}")),
        ]
    })
}

fn rule(k: usize) -> impl Strategy<Value = String> {
    (1usize..4).prop_flat_map(move |n| {
        (prop::collection::vec(selection(), n), condition(n)).prop_map(move |(sels, cond)| {
            let mut doc = format!("title: generated {k}\nid: gen-{k}\ndetection:\n");
            for (i, s) in sels.iter().enumerate() {
                doc.push_str(&format!("  sel{i}: {s}\n"));
            }
            doc.push_str(&format!("  condition: '{cond}'\n"));
            doc
        })
    })
}

fn event() -> impl Strategy<Value = String> {
    let opt = |pool: &'static [&'static str]| prop::option::of(prop::sample::select(pool));
    (
        opt(NAMES),
        opt(SOURCES),
        opt(&["Root", "IAMUser", "AssumedRole"]),
        opt(&["AccessDenied", "TrailNotFoundException"]),
        any::<bool>(),
    )
        .prop_map(|(name, source, ty, err, array_name)| {
            let mut m = serde_json::Map::new();
            if let Some(n) = name {
                // Sometimes a non-string eventName, which the index must not mis-file.
                m.insert(
                    "eventName".into(),
                    if array_name {
                        serde_json::json!([n, "Other"])
                    } else {
                        serde_json::json!(n)
                    },
                );
            }
            if let Some(s) = source {
                m.insert("eventSource".into(), serde_json::json!(s));
            }
            if let Some(t) = ty {
                m.insert("userIdentity".into(), serde_json::json!({"type": t}));
            }
            if let Some(e) = err {
                m.insert("errorCode".into(), serde_json::json!(e));
            }
            serde_json::Value::Object(m).to_string()
        })
}

fn rules() -> impl Strategy<Value = Vec<String>> {
    (1usize..12).prop_flat_map(|n| (0..n).map(rule).collect::<Vec<_>>())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn indexed_equals_full_scan(docs in rules(), events in prop::collection::vec(event(), 1..20)) {
        let mut loader = Loader::new(LoadOptions::default());
        for (i, d) in docs.iter().enumerate() {
            loader.load_source(&format!("gen{i}.yml"), d, None);
        }
        let report = loader.finish();
        let errors: Vec<String> = report.errors().map(|d| report.render(d)).collect();
        prop_assert!(errors.is_empty(), "generated rules must load: {errors:?}");
        let set = RuleSet::new(report.rules);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for text in &events {
            let ev = Event::parse(text).unwrap();
            set.matching(&ev, &mut a);
            set.matching_full_scan(&ev, &mut b);
            prop_assert_eq!(&a, &b, "event {}", text);
        }
    }
}

/// The index actually narrows: rules pinned to an eventName are not evaluated for others.
#[test]
fn index_files_rules_by_name_and_source() {
    let mut loader = Loader::new(LoadOptions::default());
    loader.load_source(
        "a.yml",
        "title: a\nid: a\ndetection:\n  s: {eventName: [StopLogging, DeleteTrail]}\n  condition: s\n",
        None,
    );
    loader.load_source(
        "b.yml",
        "title: b\nid: b\ndetection:\n  s: {eventSource: iam.amazonaws.com}\n  f: {eventName: CreateUser}\n  condition: s and not f\n",
        None,
    );
    loader.load_source(
        "c.yml",
        "title: c\nid: c\ndetection:\n  s: {userIdentity.type: Root}\n  condition: s\n",
        None,
    );
    let set = RuleSet::new(loader.finish().rules);
    let st = set.index().stats();
    // `userIdentity.type: Root` is filed by that field's value: no rule is evaluated for
    // every event.
    assert_eq!(
        (st.by_name, st.by_source, st.by_field, st.always),
        (1, 1, 1, 0)
    );
}

/// Most SigmaHQ AWS rules are filed by eventName or eventSource.
#[test]
fn sigmahq_rules_are_mostly_indexed() {
    let mut loader = Loader::new(LoadOptions::default());
    loader.load_path(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sigmahq"));
    let report = loader.finish();
    let set = RuleSet::new(report.rules);
    let st = set.index().stats();
    let (by_name, by_source, by_field, always) = (st.by_name, st.by_source, st.by_field, st.always);
    eprintln!(
        "SigmaHQ: {by_name} by eventName, {by_source} by eventSource, {by_field} by another field, {always} always evaluated"
    );
    for r in set.rules() {
        if trailwatch::rules::index::key_for(r) == trailwatch::rules::index::IndexKey::Always {
            eprintln!("  always: {}", r.source.file);
        }
    }
    assert_eq!(by_name + by_source + by_field + always, 57);
    assert!(always <= 5, "{always} rules are evaluated for every event");
}

/// The built-in detections: no rule is evaluated for every event (the catch-all ones — root
/// use, refused calls, instance credentials — are filed by another field), and on 3,313 real
/// records the index selects exactly what a full scan finds.
#[test]
fn builtin_rules_are_all_indexed_and_the_index_is_exact_on_real_records() {
    use std::io::Read;
    let report = trailwatch::rules::load(&[], true, LoadOptions::default());
    assert!(!report.has_errors());
    let set = RuleSet::new(report.rules);
    let st = set.index().stats();
    assert_eq!(st.always, 0, "{st:?}");
    assert!(st.by_field >= 5, "{st:?}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bench");
    let mut events = 0;
    let mut matched = 0;
    for name in [
        "stratus-red-team-detonation-logs.json.gz",
        "invictus-aws-dataset.json.gz",
        "otrf-ec2-proxy-s3-exfiltration.json.gz",
    ] {
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(dir.join(name)).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        for r in doc["Records"].as_array().unwrap() {
            let text = r.to_string();
            let ev = Event::parse(&text).unwrap();
            let (mut a, mut b) = (Vec::new(), Vec::new());
            set.matching(&ev, &mut a);
            set.matching_full_scan(&ev, &mut b);
            assert_eq!(a, b, "{text}");
            events += 1;
            matched += usize::from(!a.is_empty());
        }
    }
    assert_eq!(events, 3313);
    assert!(matched > 100, "{matched}");
}
