//! The plain-text e-mail of a finding or an alert: what happened, who, from where, when, the
//! incident so far and what it involved, why the rule fired, why it matters, what to check
//! first, and links to the events. Every value from an event is cleaned and bounded.

use super::notice::Notice;
use super::{EmailContext, clean, console_link, cut_chars, plural};
use crate::engine::{AlertKind, Tally};
use crate::event::Event;
use crate::event::target::targets;
use crate::finding::{AnomalyDetails, AnomalyPhase, Body, CorrelationDetails, ValueCount};

/// Longest text kept from one event field.
const MAX_FIELD_CHARS: usize = 400;

/// Which parts to include (dropped, in order, when the message is too large).
#[derive(Clone, Copy)]
pub(super) struct Parts {
    pub request: bool,
    pub ids: usize,
    pub involved: bool,
}

impl Parts {
    pub const ALL: Parts = Parts {
        request: true,
        ids: 10,
        involved: true,
    };
    pub const NONE: Parts = Parts {
        request: false,
        ids: 0,
        involved: false,
    };
}

fn push_section(out: &mut String, title: &str, body: &str) {
    if body.trim().is_empty() {
        return;
    }
    out.push_str(title);
    out.push('\n');
    for line in body.lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
}

/// Multi-line rule text: each line cleaned, line breaks kept.
fn clean_block(text: &str, max: usize) -> String {
    let lines: Vec<String> = text.lines().map(|l| clean(l, max)).collect();
    cut_chars(lines.join("\n").trim(), max)
}

pub(super) fn email_text(n: &Notice, ctx: &EmailContext, parts: Parts) -> String {
    let mut out = String::new();
    let title = if n.rule.title.is_empty() {
        "trailwatch finding"
    } else {
        &n.rule.title
    };
    out.push_str(&format!("{}: {}\n\n", n.level_text(), clean(title, 300)));
    push_section(&mut out, "What happened", &clean(&n.summary, 2000));
    push_section(&mut out, "Who", &who_text(n));
    push_section(&mut out, "From", &from_text(n));
    push_section(
        &mut out,
        "Where",
        &format!(
            "account {}, region {}",
            clean(n.account.as_deref().unwrap_or("unknown"), 40),
            clean(n.region.as_deref().unwrap_or("unknown"), 40)
        ),
    );
    push_section(&mut out, "When", &when_text(n));
    push_section(&mut out, "Incident", &incident_text(n));
    if parts.involved {
        push_section(&mut out, "Involved", &involved_text(n));
    }
    push_section(&mut out, "Acted on", &acted_on_text(n));
    push_section(&mut out, "Why it fired", &fired_text(ctx));
    match n.details.as_ref().map(|d| &d.body) {
        Some(Body::Correlation(c)) => push_section(&mut out, "Pattern", &pattern_text(c)),
        Some(Body::Anomaly(a)) => {
            push_section(&mut out, "Compared with usual", &anomaly_text(a));
            push_section(&mut out, "Breakdown", &attributions_text(a));
        }
        _ => {}
    }
    if let Some(d) = &ctx.description {
        push_section(&mut out, "Why it matters", &clean_block(d, 3000));
    }
    push_section(&mut out, "What to check first", &check_first(n));
    if !ctx.falsepositives.is_empty() {
        push_section(
            &mut out,
            "Known benign causes",
            &bullets(&ctx.falsepositives, 300),
        );
    }
    if !ctx.references.is_empty() {
        push_section(&mut out, "References", &bullets(&ctx.references, 300));
    }
    push_section(&mut out, "Key fields of the event", &key_fields(n, parts));
    push_section(&mut out, "Look it up in CloudTrail", &look_up(n, parts));
    out.push_str(&format!(
        "{} {}, rule {} (trailwatch)\n",
        if n.alert.is_some() {
            "alert"
        } else {
            "finding"
        },
        clean(&n.id, 80),
        clean(&n.rule.id, 80)
    ));
    out
}

fn bullets(items: &[String], max: usize) -> String {
    items
        .iter()
        .map(|x| format!("- {}", clean(x, max)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn who_text(n: &Notice) -> String {
    let mut who = clean(
        if n.principal.is_empty() {
            "unknown"
        } else {
            &n.principal
        },
        MAX_FIELD_CHARS,
    );
    if let Some(t) = n.event_at("/userIdentity/type") {
        who.push_str(&format!("\nidentity type: {}", clean(t, 40)));
    }
    if let Some(k) = n.event_at("/userIdentity/accessKeyId") {
        who.push_str(&format!("\naccess key: {}", clean(k, 40)));
    }
    if let Some(m) = n.event_at("/userIdentity/sessionContext/attributes/mfaAuthenticated") {
        who.push_str(&format!("\nMFA: {}", clean(m, 10)));
    }
    who
}

fn from_text(n: &Notice) -> String {
    let mut from = String::new();
    if let Some(ip) = n.event_str("sourceIPAddress") {
        from.push_str(&format!("source IP: {}\n", clean(ip, 100)));
    }
    if let Some(ua) = n.event_str("userAgent") {
        from.push_str(&format!("user agent: {}\n", clean(ua, MAX_FIELD_CHARS)));
    }
    from
}

fn when_text(n: &Notice) -> String {
    let mut when = format!(
        "{} (event time, UTC)",
        clean(n.time.as_deref().unwrap_or("unknown"), 40)
    );
    if n.event_count > 1 {
        when.push_str(&format!("\n{} events", n.event_count));
    }
    if let Some(Body::Correlation(c)) = n.details.as_ref().map(|d| &d.body) {
        when.push_str(&format!(
            "\nwindow: {} to {}",
            clean(&c.window.start, 40),
            clean(&c.window.end, 40)
        ));
    }
    when
}

/// For an alert: the incident so far (first and last seen, findings and events) and the
/// findings this alert carries, each with its rule and level. Empty for a plain finding.
fn incident_text(n: &Notice) -> String {
    let Some(a) = &n.alert else {
        return String::new();
    };
    let mut out = String::new();
    let what = match a.kind {
        AlertKind::New => "a new incident",
        AlertKind::Update => "an update of an open incident",
        AlertKind::Close => "the closing summary of an incident (its window has passed)",
    };
    out.push_str(&format!(
        "This is {what}: {} {} from {} {}, first seen {}, last seen {}.\n",
        a.finding_count,
        plural(a.finding_count as usize, "finding", "findings"),
        n.event_count,
        plural(n.event_count as usize, "event", "events"),
        clean(a.first_seen.as_deref().unwrap_or("-"), 40),
        clean(a.last_seen.as_deref().unwrap_or("-"), 40),
    ));
    if !a.findings.is_empty() {
        out.push_str(if a.kind == AlertKind::New {
            "In this alert:\n"
        } else {
            "New since the last alert:\n"
        });
        // The most severe first.
        let mut carried: Vec<_> = a.findings.iter().collect();
        carried.sort_by_key(|m| std::cmp::Reverse(m.level));
        for m in carried.into_iter().take(20) {
            out.push_str(&format!(
                "  - [{}] {} ({})\n",
                m.level.as_str().to_ascii_uppercase(),
                clean(&m.rule.title, 200),
                clean(m.time.as_deref().unwrap_or("-"), 40)
            ));
        }
        if a.findings.len() > 20 {
            out.push_str(&format!("  … and {} more\n", a.findings.len() - 20));
        }
    }
    out.push_str(&format!("incident {}", clean(&n.incident, 64)));
    out
}

/// `CreateUser 3, AttachUserPolicy 1`.
fn tally_line(values: &[ValueCount], max: usize) -> String {
    values
        .iter()
        .take(5)
        .map(|v| format!("{} {}", clean(&v.value, max), v.count))
        .collect::<Vec<_>>()
        .join(", ")
}

/// For an alert about several events: the calls, addresses and user agents across them.
fn involved_text(n: &Notice) -> String {
    let Some(a) = n.alert.as_ref().filter(|_| n.event_count > 1) else {
        // One event: the sections above already say it.
        return String::new();
    };
    let mut t = String::new();
    for (label, tally) in [
        ("calls", &a.involved.calls),
        ("source IPs", &a.involved.source_ips),
        ("user agents", &a.involved.user_agents),
    ] {
        if !tally.is_empty() {
            t.push_str(&format!("{label}: {}\n", tally_line(tally.top(), 160)));
        }
    }
    t
}

/// What the calls acted on: across the incident for an alert, from the record otherwise.
fn acted_on_text(n: &Notice) -> String {
    let from_alert: Option<&Tally> = n
        .alert
        .as_ref()
        .map(|a| &a.involved.targets)
        .filter(|t| !t.is_empty());
    let lines: Vec<String> = match from_alert {
        Some(t) => t
            .top()
            .iter()
            .map(|v| {
                let times = if v.count > 1 {
                    format!(" ({} events)", v.count)
                } else {
                    String::new()
                };
                format!("{}{times}", clean(&v.value, MAX_FIELD_CHARS))
            })
            .collect(),
        None => {
            let text = n.event.as_ref().map(|e| e.to_string()).unwrap_or_default();
            match Event::parse(&text) {
                Ok(ev) => targets(&ev)
                    .iter()
                    .map(|t| clean(t, MAX_FIELD_CHARS))
                    .collect(),
                Err(_) => Vec::new(),
            }
        }
    };
    lines.join("\n")
}

/// The fields that made the rule fire, with what the event held.
fn fired_text(ctx: &EmailContext) -> String {
    ctx.fired
        .iter()
        .map(|(k, v)| format!("{}: {}", clean(k, 120), clean(v, MAX_FIELD_CHARS)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// For a correlation: what was counted, per which group, in which window.
fn pattern_text(c: &CorrelationDetails) -> String {
    let info = &c.correlation;
    let mut t = format!(
        "correlation: {} within {}\ncount: {}\n",
        clean(&info.kind, 40),
        clean(&info.timespan, 20),
        info.count
    );
    for (k, v) in info.group.iter().take(8) {
        t.push_str(&format!(
            "{}: {}\n",
            clean(k, 80),
            clean(v, MAX_FIELD_CHARS)
        ));
    }
    t
}

/// For an anomaly: observed against the principal's usual rate, and the test that fired.
fn anomaly_text(a: &AnomalyDetails) -> String {
    let phase = match a.phase {
        AnomalyPhase::Start => "start",
        AnomalyPhase::End => "end",
    };
    let mut t = format!("phase: {phase} ({})\n", clean(&a.metric, 40));
    t.push_str(&format!(
        "observed: {:.1} per minute\n",
        a.observed.average_per_minute
    ));
    t.push_str(&format!(
        "usual at this hour: {:.2} per minute ({} days of history)\n",
        a.baseline.average_per_minute, a.baseline.days_of_history
    ));
    t.push_str(&format!(
        "Poisson tail probability {:.1e} (threshold {:.1e})\n",
        a.statistic.p_value, a.statistic.threshold
    ));
    if let Some(m) = a.duration_minutes {
        t.push_str(&format!("duration: {m} min\n"));
    }
    t
}

/// Top values behind an anomaly (event names, user agents, source IPs, regions, errors).
fn attributions_text(a: &AnomalyDetails) -> String {
    let at = &a.attributions;
    let mut t = String::new();
    for (label, items) in [
        ("calls", &at.event_names),
        ("errors", &at.error_codes),
        ("source IPs", &at.source_ips),
        ("user agents", &at.user_agents),
        ("regions", &at.regions),
        ("sessions", &at.sessions),
    ] {
        if !items.is_empty() {
            t.push_str(&format!("{label}: {}\n", tally_line(items, 120)));
        }
    }
    t
}

/// The first questions to answer, from what the notice holds.
fn check_first(n: &Notice) -> String {
    let who = clean(&super::short_principal(&n.principal), 120);
    let mut steps: Vec<String> = Vec::new();
    let from = match (n.event_str("sourceIPAddress"), n.event_str("userAgent")) {
        (Some(ip), Some(ua)) => format!(" from {} with {}", clean(ip, 100), clean(ua, 120)),
        (Some(ip), None) => format!(" from {}", clean(ip, 100)),
        _ => String::new(),
    };
    if !who.is_empty() {
        steps.push(format!(
            "Was this {who}? Ask the person or team who owns it whether they made these calls{from}."
        ));
    }
    if let Some(code) = n.event_str("errorCode") {
        steps.push(format!(
            "The call failed ({}): look for the same principal retrying until it succeeded.",
            clean(code, 80)
        ));
    }
    let acted = acted_on_text(n);
    if let Some(first) = acted.lines().next() {
        steps.push(format!(
            "Check the current state of {first}: is the change still in place, and was it expected?"
        ));
    }
    if matches!(n.details.as_ref().map(|d| &d.body), Some(Body::Anomaly(_))) {
        steps.push(
            "Compare the calls in the breakdown with deploys or batch jobs you know of.".into(),
        );
    }
    if !who.is_empty() {
        steps.push(format!(
            "Review everything {who} did around {} in CloudTrail event history.",
            clean(n.time.as_deref().unwrap_or("this time"), 40)
        ));
    }
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{}. {s}", i + 1))
        .collect::<Vec<_>>()
        .join("\n")
}

fn key_fields(n: &Notice, parts: Parts) -> String {
    let mut key = String::new();
    for k in [
        "eventName",
        "eventSource",
        "eventTime",
        "eventID",
        "errorCode",
        "errorMessage",
    ] {
        if let Some(v) = n.event_str(k) {
            key.push_str(&format!("{k}: {}\n", clean(v, MAX_FIELD_CHARS)));
        }
    }
    if parts.request
        && let Some(ev) = &n.event
    {
        for k in ["requestParameters", "resources"] {
            if let Some(v) = ev.get(k).filter(|v| !v.is_null()) {
                key.push_str(&format!("{k}: {}\n", clean(&v.to_string(), 2000)));
            }
        }
    }
    key
}

fn look_up(n: &Notice, parts: Parts) -> String {
    let region = n
        .event_str("awsRegion")
        .or(n.region.as_deref())
        .unwrap_or("");
    let mut look = String::new();
    for id in n.event_ids.iter().take(parts.ids) {
        match console_link(id, region) {
            Some(l) => look.push_str(&format!("{l}\n")),
            None => look.push_str(&format!("event id {}\n", clean(id, 80))),
        }
    }
    if n.event_ids.len() > parts.ids {
        look.push_str(&format!(
            "… and {} more event ids in the JSON body\n",
            n.event_ids.len() - parts.ids
        ));
    }
    look
}
