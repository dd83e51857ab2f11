//! The Prometheus endpoint read as a scraper reads it: the whole HTTP response of
//! `serve_metrics`, its body parsed by a strict grammar of the text exposition format
//! (openmetrics-parser: no indented line, HELP and TYPE at most once per family and before its
//! samples, valid names and numbers, a newline after the last line).

use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::{MetricNumber, PrometheusType, PrometheusValue};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trailwatch::live::{Metrics, serve_metrics};

/// GET /metrics from `serve_metrics` on a local port: (head, body).
fn scrape(m: Arc<Metrics>) -> (String, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_metrics(listener, m));
        let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
        sock.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        sock.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8(buf).expect("UTF-8 response");
        let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head and body");
        (head.to_string(), body.to_string())
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn number(v: &MetricNumber) -> f64 {
    match v {
        MetricNumber::Float(f) => *f,
        MetricNumber::Int(i) => *i as f64,
    }
}

/// The one sample of `name` (no labels): its type and value.
fn sample(
    doc: &openmetrics_parser::MetricsExposition<PrometheusType, PrometheusValue>,
    name: &str,
) -> (PrometheusType, f64) {
    let family = doc
        .families
        .get(name)
        .unwrap_or_else(|| panic!("no family {name}"));
    let samples: Vec<_> = family.iter_samples().collect();
    assert_eq!(samples.len(), 1, "{name}");
    let value = match &samples[0].value {
        PrometheusValue::Counter(c) => number(&c.value),
        PrometheusValue::Gauge(g) | PrometheusValue::Unknown(g) => number(g),
        other => panic!("{name}: unexpected {other:?}"),
    };
    (family.family_type.clone(), value)
}

#[test]
fn the_whole_endpoint_is_valid_prometheus_text() {
    let m = Arc::new(Metrics::default());
    m.events.store(12, Ordering::Relaxed);
    m.outbox_pending.store(3, Ordering::Relaxed);
    // An event a minute ago: the lag gauge (the family that was once indented) is there too.
    m.newest_event_ms
        .store(now_ms() - 60_000, Ordering::Relaxed);
    let (head, body) = scrape(m);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Content-Length: {}\r\n", body.len())),
        "{head}"
    );
    let doc =
        parse_prometheus(&body).unwrap_or_else(|e| panic!("not Prometheus text ({e:?}):\n{body}"));
    // Every family announced its help and type; every sample line belongs to one.
    let samples = body.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(doc.families.len(), samples, "{body}");
    for (name, f) in &doc.families {
        assert!(name.starts_with("trailwatch_"), "{name}");
        assert!(!f.help.is_empty(), "{name} has no HELP");
        assert!(
            matches!(
                f.family_type,
                PrometheusType::Counter | PrometheusType::Gauge
            ),
            "{name}: {:?}",
            f.family_type
        );
    }
    assert_eq!(
        sample(&doc, "trailwatch_events_total"),
        (PrometheusType::Counter, 12.0)
    );
    assert_eq!(
        sample(&doc, "trailwatch_outbox_pending"),
        (PrometheusType::Gauge, 3.0)
    );
    let (ty, lag) = sample(&doc, "trailwatch_lag_seconds");
    assert_eq!(ty, PrometheusType::Gauge);
    assert!((59.0..600.0).contains(&lag), "{lag}");
    let (ty, newest) = sample(&doc, "trailwatch_newest_event_time_seconds");
    assert_eq!(ty, PrometheusType::Gauge);
    assert!(newest > 1.7e9, "{newest}");
}

#[test]
fn before_the_first_event_the_endpoint_is_valid_too() {
    let (_, body) = scrape(Arc::new(Metrics::default()));
    let doc =
        parse_prometheus(&body).unwrap_or_else(|e| panic!("not Prometheus text ({e:?}):\n{body}"));
    assert!(!doc.families.contains_key("trailwatch_lag_seconds"));
    assert_eq!(
        sample(&doc, "trailwatch_newest_event_time_seconds"),
        (PrometheusType::Gauge, 0.0)
    );
}

/// The parser is strict where it matters: the endpoint's old fault (the lag family indented by
/// a multi-line string literal) is refused, so the tests above would catch it.
#[test]
fn the_parser_refuses_indented_lines() {
    let m = Metrics::default();
    m.newest_event_ms
        .store(now_ms() - 60_000, Ordering::Relaxed);
    let body = m.render();
    assert!(parse_prometheus(&body).is_ok());
    let indented = body
        .replace(
            "# TYPE trailwatch_lag_seconds",
            "                 # TYPE trailwatch_lag_seconds",
        )
        .replace(
            "\ntrailwatch_lag_seconds ",
            "\n                 trailwatch_lag_seconds ",
        );
    assert_ne!(indented, body);
    assert!(parse_prometheus(&indented).is_err(), "{indented}");
}
