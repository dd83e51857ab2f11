//! Rendering findings as SNS messages: a subject under 100 characters, a plain-text e-mail a
//! human can act on, and the JSON finding for machine subscribers, together under 256 KB.
//!
//! Everything taken from an event is attacker-controlled (user agents, request parameters,
//! resource names): [`clean`] strips control characters and terminal escape sequences from
//! it, and it is never turned into a link. The only link is built from the event id and the
//! region, and only when both have the expected shape.

mod clean;

pub use clean::clean;
use serde_json::{Value, json};

/// SNS limit on a message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 262_144;
/// Our budget: a little under the limit, leaving room for SNS' own envelope fields.
pub const MESSAGE_BUDGET: usize = 250_000;
/// A subject must be under 100 characters.
pub const MAX_SUBJECT_CHARS: usize = 99;
/// Longest text kept from one event field in an e-mail.
const MAX_FIELD_CHARS: usize = 400;
/// Most findings listed in one digest message.
pub const MAX_DIGEST_FINDINGS: usize = 100;

/// Rule text that is not part of the finding itself, kept beside it in the outbox.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct RuleText {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub falsepositives: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
}

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// A short name for a principal: the last path segment of an ARN (`alice`, `deploy-bot/i-0ab`)
/// or the whole text.
pub fn short_principal(p: &str) -> String {
    if let Some(rest) = p.strip_prefix("arn:") {
        // arn:partition:service:region:account:resource
        let resource = rest.splitn(5, ':').nth(4).unwrap_or(rest);
        if resource == "root" {
            return "root".into();
        }
        let mut parts = resource.split('/');
        let kind = parts.next().unwrap_or("");
        let rest: Vec<&str> = parts.collect();
        return match (kind, rest.as_slice()) {
            ("assumed-role", [role, session, ..]) => format!("{role}/{session}"),
            (_, []) => resource.to_string(),
            (_, more) => more.join("/"),
        };
    }
    p.to_string()
}

/// Truncates to at most `max` characters, marking a cut with an ellipsis.
fn cut_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The level of a finding, or of an alert's incident (its top-level `level`).
fn level_of(f: &Value) -> String {
    str_at(f, &["level"])
        .or_else(|| str_at(f, &["rule", "level"]))
        .unwrap_or("unknown")
        .to_ascii_uppercase()
}

/// Distinct event ids behind the findings an alert carries.
fn alert_events(f: &Value) -> usize {
    let mut ids: Vec<&str> = f
        .get("findings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("event_ids").and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

/// `[HIGH] CloudTrail logging stopped by alice (123456789012/us-east-1)`, under 100 characters:
/// level, what, who, where. When too long, the region goes first, then the account, then the
/// title is cut — never the principal (in its short form). An alert's update says how many
/// more events came (`Update: +3 events — …`), its closing summary says it closed.
pub fn subject(f: &Value) -> String {
    let level = level_of(f);
    let mut title = clean(
        str_at(f, &["rule", "title"]).unwrap_or("trailwatch finding"),
        200,
    );
    // The update of a suppressed incident (more of the same after the first alert).
    if f.pointer("/details/update_of").is_some() {
        title = format!("Continued: {title}");
    }
    // An alert about an incident: its update or closing summary says so.
    match str_at(f, &["alert"]) {
        Some("update") => {
            let n = alert_events(f);
            let plural = if n == 1 { "" } else { "s" };
            title = format!("Update: +{n} event{plural} — {title}");
        }
        Some("close") => title = format!("Closed: {title}"),
        _ => {}
    }
    let who = clean(
        &short_principal(str_at(f, &["principal"]).unwrap_or("")),
        60,
    );
    let account = clean(str_at(f, &["account"]).unwrap_or("-"), 20);
    let region = clean(str_at(f, &["region"]).unwrap_or("-"), 20);
    let head = format!("[{level}] ");
    let by = if who.is_empty() {
        String::new()
    } else {
        format!(" by {who}")
    };
    let len = |s: &str| s.chars().count();
    // The place, shortened first: account and region, the account alone, nothing.
    let tails = [
        format!(" ({account}/{region})"),
        format!(" ({account})"),
        String::new(),
    ];
    for tail in &tails {
        if len(&head) + len(&title) + len(&by) + len(tail) <= MAX_SUBJECT_CHARS {
            return format!("{head}{title}{by}{tail}");
        }
    }
    // Then the title is cut; the principal stays whole.
    let room = MAX_SUBJECT_CHARS.saturating_sub(len(&head) + len(&by));
    if room >= 12 {
        return format!("{head}{}{by}", cut_chars(&title, room));
    }
    cut_chars(&format!("{head}{title}{by}"), MAX_SUBJECT_CHARS)
}

fn is_event_id(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && s.len() <= 30
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The CloudTrail console page of an event, when its id and region have the expected shape
/// (anything else is not turned into a link).
pub fn console_link(event_id: &str, region: &str) -> Option<String> {
    (is_event_id(event_id) && is_region(region)).then(|| {
        format!(
            "https://{region}.console.aws.amazon.com/cloudtrailv2/home?region={region}#/events/{event_id}"
        )
    })
}

/// Which parts of the e-mail to include (dropped, in order, when the message is too large).
#[derive(Clone, Copy)]
struct Parts {
    request: bool,
    ids: usize,
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

/// The plain-text e-mail for one finding.
/// For an alert: the incident so far (first and last seen, findings and events) and the
/// findings this alert carries, each with its rule and level. Empty for a plain finding.
fn incident_text(f: &Value) -> String {
    let Some(kind) = str_at(f, &["alert"]) else {
        return String::new();
    };
    let mut out = String::new();
    let first = clean(str_at(f, &["first_seen"]).unwrap_or("-"), 40);
    let last = clean(str_at(f, &["last_seen"]).unwrap_or("-"), 40);
    let findings = f.get("finding_count").and_then(Value::as_u64).unwrap_or(0);
    let events = f.get("event_count").and_then(Value::as_u64).unwrap_or(0);
    let what = match kind {
        "new" => "a new incident",
        "update" => "an update of an open incident",
        "close" => "the closing summary of an incident (its window has passed)",
        _ => "an alert",
    };
    out.push_str(&format!(
        "This is {what}: {findings} finding(s) from {events} event(s), first seen {first}, last seen {last}.\n"
    ));
    let carried = f.get("findings").and_then(Value::as_array);
    if let Some(items) = carried.filter(|i| !i.is_empty()) {
        out.push_str(if kind == "new" {
            "In this alert:\n"
        } else {
            "New since the last alert:\n"
        });
        for m in items.iter().take(20) {
            out.push_str(&format!(
                "  - [{}] {} ({})\n",
                clean(str_at(m, &["level"]).unwrap_or("?"), 20).to_ascii_uppercase(),
                clean(str_at(m, &["rule", "title"]).unwrap_or("?"), 200),
                clean(str_at(m, &["time"]).unwrap_or("-"), 40)
            ));
        }
        if items.len() > 20 {
            out.push_str(&format!("  … and {} more\n", items.len() - 20));
        }
    }
    out.push_str(&format!(
        "incident {}",
        clean(str_at(f, &["incident"]).unwrap_or("-"), 64)
    ));
    out
}

fn email_text(f: &Value, rule: &RuleText, parts: Parts) -> String {
    let level = level_of(f);
    let title = clean(
        str_at(f, &["rule", "title"]).unwrap_or("trailwatch finding"),
        300,
    );
    let ev = f.get("event").filter(|e| e.is_object());
    let evs = |k: &str| ev.and_then(|e| e.get(k)).and_then(Value::as_str);
    let mut out = String::new();
    out.push_str(&format!("{level}: {title}\n\n"));

    push_section(
        &mut out,
        "What happened",
        &clean(str_at(f, &["summary"]).unwrap_or(""), 2000),
    );

    let mut who = clean(
        str_at(f, &["principal"]).unwrap_or("unknown"),
        MAX_FIELD_CHARS,
    );
    if let Some(t) = ev
        .and_then(|e| e.get("userIdentity"))
        .and_then(|u| u.get("type"))
        .and_then(Value::as_str)
    {
        who.push_str(&format!("\nidentity type: {}", clean(t, 40)));
    }
    if let Some(k) = ev
        .and_then(|e| e.get("userIdentity"))
        .and_then(|u| u.get("accessKeyId"))
        .and_then(Value::as_str)
    {
        who.push_str(&format!("\naccess key: {}", clean(k, 40)));
    }
    if let Some(m) = ev
        .and_then(|e| e.pointer("/userIdentity/sessionContext/attributes/mfaAuthenticated"))
        .and_then(Value::as_str)
    {
        who.push_str(&format!("\nMFA: {}", clean(m, 10)));
    }
    push_section(&mut out, "Who", &who);

    let mut from = String::new();
    if let Some(ip) = evs("sourceIPAddress") {
        from.push_str(&format!("source IP: {}\n", clean(ip, 100)));
    }
    if let Some(ua) = evs("userAgent") {
        from.push_str(&format!("user agent: {}\n", clean(ua, MAX_FIELD_CHARS)));
    }
    push_section(&mut out, "From", &from);

    let account = clean(str_at(f, &["account"]).unwrap_or("unknown"), 40);
    let region = clean(str_at(f, &["region"]).unwrap_or("unknown"), 40);
    push_section(
        &mut out,
        "Where",
        &format!("account {account}, region {region}"),
    );

    let mut when = format!(
        "{} (event time, UTC)",
        clean(str_at(f, &["time"]).unwrap_or("unknown"), 40)
    );
    let count = f.get("event_count").and_then(Value::as_u64).unwrap_or(1);
    if count > 1 {
        when.push_str(&format!("\n{count} events"));
    }
    let window = f.pointer("/details/window");
    if let (Some(a), Some(b)) = (
        window.and_then(|w| w.get("start")).and_then(Value::as_str),
        window.and_then(|w| w.get("end")).and_then(Value::as_str),
    ) {
        when.push_str(&format!("\nwindow: {} to {}", clean(a, 40), clean(b, 40)));
    }
    push_section(&mut out, "When", &when);
    push_section(&mut out, "Incident", &incident_text(f));

    push_section(&mut out, "Pattern", &pattern_text(f));
    push_section(&mut out, "Compared with usual", &anomaly_text(f));
    push_section(&mut out, "Breakdown", &attributions_text(f));

    if let Some(d) = &rule.description {
        push_section(&mut out, "Why it matters", &clean_block(d, 3000));
    }
    if !rule.falsepositives.is_empty() {
        let fp: Vec<String> = rule
            .falsepositives
            .iter()
            .map(|x| format!("- {}", clean(x, 300)))
            .collect();
        push_section(&mut out, "Known benign causes", &fp.join("\n"));
    }

    let mut key = String::new();
    for k in [
        "eventName",
        "eventSource",
        "eventTime",
        "eventID",
        "errorCode",
        "errorMessage",
    ] {
        if let Some(v) = evs(k) {
            key.push_str(&format!("{k}: {}\n", clean(v, MAX_FIELD_CHARS)));
        }
    }
    if parts.request {
        for k in ["requestParameters", "resources"] {
            if let Some(v) = ev.and_then(|e| e.get(k)).filter(|v| !v.is_null()) {
                let text = serde_json::to_string(v).unwrap_or_default();
                key.push_str(&format!("{k}: {}\n", clean(&text, 2000)));
            }
        }
    }
    push_section(&mut out, "Key fields of the event", &key);

    let ids: Vec<&str> = f
        .get("event_ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let link_region = evs("awsRegion").or(str_at(f, &["region"])).unwrap_or("");
    let mut look = String::new();
    for id in ids.iter().take(parts.ids) {
        match console_link(id, link_region) {
            Some(l) => look.push_str(&format!("{l}\n")),
            None => look.push_str(&format!("event id {}\n", clean(id, 80))),
        }
    }
    if ids.len() > parts.ids {
        look.push_str(&format!(
            "… and {} more event ids in the JSON finding\n",
            ids.len() - parts.ids
        ));
    }
    push_section(&mut out, "Look it up in CloudTrail", &look);

    let id = clean(str_at(f, &["id"]).unwrap_or(""), 80);
    let rule_id = clean(str_at(f, &["rule", "id"]).unwrap_or(""), 80);
    out.push_str(&format!("finding {id}, rule {rule_id} (trailwatch)\n"));
    out
}

/// For a correlation: what was counted, per which group, in which window.
fn pattern_text(f: &Value) -> String {
    let Some(c) = f.pointer("/details/correlation") else {
        return String::new();
    };
    let mut t = String::new();
    if let Some(ty) = c.get("type").and_then(Value::as_str) {
        t.push_str(&format!("correlation: {}", clean(ty, 40)));
        if let Some(span) = c.get("timespan").and_then(Value::as_str) {
            t.push_str(&format!(" within {}", clean(span, 20)));
        }
        t.push('\n');
    }
    if let Some(n) = c.get("count").and_then(Value::as_u64) {
        t.push_str(&format!("count: {n}\n"));
    }
    if let Some(g) = c.get("group").and_then(Value::as_object) {
        for (k, v) in g.iter().take(8) {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            t.push_str(&format!(
                "{}: {}\n",
                clean(k, 80),
                clean(&v, MAX_FIELD_CHARS)
            ));
        }
    }
    t
}

/// For an anomaly: observed against the principal's usual rate, and the test that fired.
fn anomaly_text(f: &Value) -> String {
    let Some(d) = f.get("details").filter(|d| d.get("phase").is_some()) else {
        return String::new();
    };
    let num = |p: &str| d.pointer(p).and_then(Value::as_f64);
    let mut t = String::new();
    if let Some(phase) = d.get("phase").and_then(Value::as_str) {
        t.push_str(&format!("phase: {}", clean(phase, 20)));
        if let Some(m) = d.get("metric").and_then(Value::as_str) {
            t.push_str(&format!(" ({})", clean(m, 40)));
        }
        t.push('\n');
    }
    if let Some(o) = num("/observed/average_per_minute") {
        t.push_str(&format!("observed: {o:.1} per minute\n"));
    }
    if let Some(b) = num("/baseline/average_per_minute") {
        t.push_str(&format!("usual at this hour: {b:.2} per minute"));
        if let Some(days) = num("/baseline/days_of_history") {
            t.push_str(&format!(" ({days:.0} days of history)"));
        }
        t.push('\n');
    }
    if let (Some(p), Some(th)) = (num("/statistic/p_value"), num("/statistic/threshold")) {
        t.push_str(&format!(
            "Poisson tail probability {p:.1e} (threshold {th:.1e})\n"
        ));
    }
    if let Some(m) = num("/duration_minutes") {
        t.push_str(&format!("duration: {m:.0} min\n"));
    }
    t
}

/// Top values behind an anomaly (event names, user agents, source IPs, regions, errors).
fn attributions_text(f: &Value) -> String {
    let Some(a) = f
        .pointer("/details/attributions")
        .and_then(Value::as_object)
    else {
        return String::new();
    };
    let mut t = String::new();
    for (k, label) in [
        ("event_names", "calls"),
        ("error_codes", "errors"),
        ("source_ips", "source IPs"),
        ("user_agents", "user agents"),
        ("regions", "regions"),
        ("sessions", "sessions"),
    ] {
        let Some(items) = a.get(k).and_then(Value::as_array).filter(|v| !v.is_empty()) else {
            continue;
        };
        let parts: Vec<String> = items
            .iter()
            .take(5)
            .map(|i| {
                format!(
                    "{} {}",
                    clean(i.get("value").and_then(Value::as_str).unwrap_or("?"), 120),
                    i.get("count").and_then(Value::as_u64).unwrap_or(0)
                )
            })
            .collect();
        t.push_str(&format!("{label}: {}\n", parts.join(", ")));
    }
    t
}

/// Multi-line rule text: each line cleaned, line breaks kept.
fn clean_block(text: &str, max: usize) -> String {
    let lines: Vec<String> = text.lines().map(|l| clean(l, max)).collect();
    cut_chars(lines.join("\n").trim(), max)
}

/// The JSON text of an SNS message with `MessageStructure=json`: `{"default": …, "email": …}`.
fn structured(default: &str, email: &str) -> String {
    json!({"default": default, "email": email}).to_string()
}

/// One finding as an SNS message (`MessageStructure=json`): `(subject, message)`. The message
/// stays under [`MESSAGE_BUDGET`] bytes: the embedded event is dropped first, then the request
/// parameters and event-id links in the e-mail, never the essentials.
pub fn single(f: &Value, rule: &RuleText) -> (String, String) {
    let subject = subject(f);
    let mut parts = Parts {
        request: true,
        ids: 10,
    };
    let mut finding = f.clone();
    for step in 0..4 {
        let default = finding.to_string();
        let email = email_text(&finding, rule, parts);
        let msg = structured(&default, &email);
        if msg.len() <= MESSAGE_BUDGET {
            return (subject, msg);
        }
        match step {
            0 => {
                parts.request = false;
            }
            1 => {
                if let Some(o) = finding.as_object_mut() {
                    o.remove("event");
                    o.insert("event_truncated".into(), Value::Bool(true));
                }
            }
            _ => {
                parts.ids = 1;
                if let Some(o) = finding.as_object_mut() {
                    if let Some(ids) = o.get_mut("event_ids").and_then(Value::as_array_mut) {
                        ids.truncate(2);
                    }
                    if let Some(d) = o.get_mut("details").and_then(Value::as_object_mut) {
                        d.retain(|k, _| k == "phase" || k == "correlation");
                    }
                }
            }
        }
    }
    // Last resort: the essentials only.
    let essentials = json!({
        "id": f.get("id"), "incident": f.get("incident"), "kind": f.get("kind"),
        "rule": f.get("rule"), "time": f.get("time"), "principal": f.get("principal"),
        "account": f.get("account"), "region": f.get("region"),
        "event_count": f.get("event_count"),
        "summary": str_at(f, &["summary"]).map(|s| cut_chars(s, 2000)),
        "event_truncated": true,
    });
    let email = email_text(
        &essentials,
        &RuleText::default(),
        Parts {
            request: false,
            ids: 0,
        },
    );
    (subject, structured(&essentials.to_string(), &email))
}

/// The line a digest lists for one finding.
fn digest_entry(f: &Value) -> Value {
    json!({
        "id": f.get("id"),
        "rule": str_at(f, &["rule", "title"]),
        "level": str_at(f, &["level"]).or_else(|| str_at(f, &["rule", "level"])),
        "principal": f.get("principal"),
        "summary": f.get("summary"),
    })
}

const LEVELS: [&str; 5] = ["informational", "low", "medium", "high", "critical"];

fn rank(level: Option<&str>) -> usize {
    level
        .and_then(|l| LEVELS.iter().position(|x| *x == l))
        .unwrap_or(0)
}

/// Findings folded into digest messages (at most [`MAX_DIGEST_FINDINGS`] each, each under the
/// size budget): `(subject, message)` per digest.
pub fn digests(findings: &[&Value]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < findings.len() {
        let mut end = (start + MAX_DIGEST_FINDINGS).min(findings.len());
        loop {
            let (s, m) = digest(&findings[start..end]);
            if m.len() <= MESSAGE_BUDGET || end - start == 1 {
                out.push((s, m));
                break;
            }
            end = start + (end - start) / 2;
        }
        start = end;
    }
    out
}

fn digest(findings: &[&Value]) -> (String, String) {
    let top = findings
        .iter()
        .map(|f| rank(str_at(f, &["rule", "level"])))
        .max()
        .unwrap_or(0);
    let n = findings.len();
    let subject = cut_chars(
        &format!(
            "[{}] {n} trailwatch findings (digest)",
            LEVELS[top].to_ascii_uppercase()
        ),
        MAX_SUBJECT_CHARS,
    );
    let default = json!({
        "kind": "digest",
        "count": n,
        "findings": findings.iter().map(|f| digest_entry(f)).collect::<Vec<_>>(),
    });
    let mut email = format!(
        "{n} findings arrived together and were folded into this one message, to keep alerts \
         readable and under the SNS e-mail rate limit. Highest level: {}.\n\n",
        LEVELS[top].to_ascii_uppercase()
    );
    for f in findings {
        email.push_str(&format!(
            "- [{}] {}\n  {}\n  {} in {}/{} at {}\n  finding {}\n\n",
            level_of(f),
            clean(str_at(f, &["rule", "title"]).unwrap_or(""), 200),
            clean(str_at(f, &["summary"]).unwrap_or(""), 600),
            clean(str_at(f, &["principal"]).unwrap_or("unknown"), 200),
            clean(str_at(f, &["account"]).unwrap_or("-"), 20),
            clean(str_at(f, &["region"]).unwrap_or("-"), 20),
            clean(str_at(f, &["time"]).unwrap_or("-"), 40),
            clean(str_at(f, &["id"]).unwrap_or(""), 80),
        ));
    }
    email.push_str(
        "Each finding is also in the JSON body (subscribers other than e-mail receive it). \
         Search your findings output or the trailwatch outbox by finding id for full details.\n",
    );
    (subject, structured(&default.to_string(), &email))
}

#[cfg(test)]
mod tests;
