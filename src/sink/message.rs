//! Rendering findings as SNS messages: a subject under 100 characters, a plain-text e-mail a
//! human can act on, and the JSON finding for machine subscribers, together under 256 KB.
//!
//! Everything taken from an event is attacker-controlled (user agents, request parameters,
//! resource names): [`clean`] strips control characters and terminal escape sequences from
//! it, and it is never turned into a link. The only link is built from the event id and the
//! region, and only when both have the expected shape.

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

/// Text from an event, safe for e-mail and terminals: ANSI/VT escape sequences removed,
/// other control characters (C0, C1, DEL) and bidirectional overrides replaced by a space,
/// runs of whitespace collapsed, and at most `max` characters kept (an ellipsis marks a cut).
pub fn clean(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max + 4));
    let mut chars = text.chars().peekable();
    let mut count = 0usize;
    let mut last_space = false;
    while let Some(c) = chars.next() {
        let mapped = match c {
            '\u{1b}' => {
                skip_escape(&mut chars);
                continue;
            }
            // CSI introduced by the single C1 character.
            '\u{9b}' => {
                skip_csi(&mut chars);
                continue;
            }
            c if c.is_control() => ' ',
            '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => ' ',
            c => c,
        };
        if mapped == ' ' {
            if last_space {
                continue;
            }
            last_space = true;
        } else {
            last_space = false;
        }
        if count == max {
            out.push('…');
            return out.trim().to_string();
        }
        out.push(mapped);
        count += 1;
    }
    out.trim().to_string()
}

/// Skips the rest of an escape sequence after ESC.
fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.peek().copied() {
        Some('[') => {
            chars.next();
            skip_csi(chars);
        }
        // OSC, DCS, SOS, PM, APC: up to BEL or ST (ESC \).
        Some(']' | 'P' | 'X' | '^' | '_') => {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '\u{7}' || c == '\u{9c}' {
                    break;
                }
                if c == '\u{1b}' {
                    if chars.peek() == Some(&'\\') {
                        chars.next();
                    }
                    break;
                }
            }
        }
        // Two-character sequences (ESC c, ESC 7 …) and charset selections (ESC ( B).
        Some('(' | ')' | '*' | '+' | '#' | '%') => {
            chars.next();
            chars.next();
        }
        Some(_) => {
            chars.next();
        }
        None => {}
    }
}

/// Skips a CSI sequence: parameter and intermediate bytes, then one final byte.
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if ('\u{40}'..='\u{7e}').contains(&c) {
            break;
        }
        if !('\u{20}'..='\u{3f}').contains(&c) {
            break;
        }
    }
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
mod tests {
    use super::*;

    fn finding() -> Value {
        json!({
            "id": "0123456789abcdef0123456789abcdef",
            "incident": "0123456789abcdef0123456789abcdef",
            "kind": "match",
            "rule": {"id": "r1", "title": "CloudTrail logging stopped", "level": "high", "tags": []},
            "time": "2026-11-21T10:00:00Z",
            "principal": "arn:aws:iam::123456789012:user/alice",
            "account": "123456789012",
            "region": "us-east-1",
            "event_ids": ["3b8f1c5e-2a59-4c1d-9f10-0a1b2c3d4e5f"],
            "event_count": 1,
            "summary": "alice called StopLogging (cloudtrail.amazonaws.com) in us-east-1.",
            "details": {},
            "event": {
                "eventName": "StopLogging", "eventSource": "cloudtrail.amazonaws.com",
                "eventID": "3b8f1c5e-2a59-4c1d-9f10-0a1b2c3d4e5f", "awsRegion": "us-east-1",
                "sourceIPAddress": "198.51.100.7",
                "userAgent": "evil\u{1b}[31mRED\u{1b}[0m\u{7}agent\r\nX-Injected: yes",
                "userIdentity": {"type": "IAMUser", "accessKeyId": "AKIAEXAMPLE"},
                "requestParameters": {"name": "trail"}
            }
        })
    }

    #[test]
    fn subject_reads_like_the_issue() {
        assert_eq!(
            subject(&finding()),
            "[HIGH] CloudTrail logging stopped by alice (123456789012/us-east-1)"
        );
    }

    #[test]
    fn long_subjects_shorten_the_place_and_title_never_the_principal() {
        let mut f = finding();
        f["rule"]["title"] =
            json!("CloudTrail logging stopped or trail deleted on the organisation trail");
        f["principal"] = json!("arn:aws:iam::143434273843:user/christophe.tafani-dereeper");
        let s = subject(&f);
        assert!(s.chars().count() <= MAX_SUBJECT_CHARS, "{s}");
        assert!(s.contains("by christophe.tafani-dereeper"), "{s}");
        assert!(s.starts_with("[HIGH] CloudTrail logging stopped"), "{s}");
        // An alert's update says how many more events came; its level is the incident's.
        let mut a = finding();
        a["alert"] = json!("update");
        a["level"] = json!("critical");
        a["findings"] = json!([
            {"event_ids": ["e1"]}, {"event_ids": ["e1"]}, {"event_ids": ["e2"]}
        ]);
        assert_eq!(
            subject(&a),
            "[CRITICAL] Update: +2 events — CloudTrail logging stopped by alice (123456789012/us-east-1)"
        );
        a["alert"] = json!("close");
        assert!(subject(&a).starts_with("[CRITICAL] Closed: CloudTrail logging stopped"));
    }

    #[test]
    fn subject_is_short_and_clean_whatever_the_input() {
        let mut f = finding();
        f["rule"]["title"] = json!("A\ttitle\nwith\u{1b}[2Jcontrols ".repeat(20));
        f["principal"] = json!("arn:aws:sts::1:assumed-role/r/".to_string() + &"s".repeat(300));
        let s = subject(&f);
        assert!(s.chars().count() <= MAX_SUBJECT_CHARS, "{s}");
        assert!(!s.chars().any(char::is_control), "{s:?}");
        assert!(s.starts_with("[HIGH] A title with"));
    }

    #[test]
    fn clean_strips_escapes_and_controls() {
        assert_eq!(clean("a\u{1b}[31mred\u{1b}[0m b", 100), "ared b");
        assert_eq!(
            clean("x\u{1b}]8;;http://e\u{7}link\u{1b}]8;;\u{7}y", 100),
            "xlinky"
        );
        assert_eq!(clean("line1\r\nline2\u{202e}evil", 100), "line1 line2 evil");
        assert_eq!(clean("abcdef", 3), "abc…");
        assert_eq!(clean("\u{9b}31mz", 10), "z");
    }

    #[test]
    fn email_has_the_essentials_and_no_raw_controls() {
        let (_, msg) = single(
            &finding(),
            &RuleText {
                description: Some("Stopping logging blinds you.\nCheck first: who.".into()),
                falsepositives: vec!["Planned maintenance".into()],
                references: vec![],
            },
        );
        let v: Value = serde_json::from_str(&msg).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 2, "exactly default and email: {obj:?}");
        let email = v["email"].as_str().unwrap();
        for needle in [
            "HIGH: CloudTrail logging stopped",
            "What happened",
            "arn:aws:iam::123456789012:user/alice",
            "source IP: 198.51.100.7",
            "account 123456789012, region us-east-1",
            "2026-11-21T10:00:00Z",
            "Stopping logging blinds you.",
            "Planned maintenance",
            "eventName: StopLogging",
            "https://us-east-1.console.aws.amazon.com/cloudtrailv2/home?region=us-east-1#/events/3b8f1c5e-2a59-4c1d-9f10-0a1b2c3d4e5f",
        ] {
            assert!(email.contains(needle), "missing {needle:?} in\n{email}");
        }
        assert!(
            email.contains("user agent: evilRED agent X-Injected: yes"),
            "{email}"
        );
        assert!(!email.contains('\u{1b}') && !email.contains('\r') && !email.contains('\u{7}'));
        let default: Value = serde_json::from_str(v["default"].as_str().unwrap()).unwrap();
        assert_eq!(default["id"], finding()["id"]);
    }

    #[test]
    fn correlation_and_anomaly_emails_explain_the_pattern() {
        let mut c = finding();
        c["kind"] = json!("correlation");
        c.as_object_mut().unwrap().remove("event");
        c["details"] = json!({
            "correlation": {"type": "event_count", "timespan": "5m", "count": 30,
                "group": {"userIdentity.arn": "arn:aws:sts::1:assumed-role/r/s"}},
            "window": {"start": "2026-11-21T09:59:00Z", "end": "2026-11-21T10:00:00Z"}});
        let (_, msg) = single(&c, &RuleText::default());
        let v: Value = serde_json::from_str(&msg).unwrap();
        let email = v["email"].as_str().unwrap();
        for needle in [
            "correlation: event_count within 5m",
            "count: 30",
            "userIdentity.arn: arn:aws:sts::1:assumed-role/r/s",
            "window: 2026-11-21T09:59:00Z to 2026-11-21T10:00:00Z",
        ] {
            assert!(email.contains(needle), "missing {needle:?} in\n{email}");
        }
        let mut a = finding();
        a["kind"] = json!("anomaly");
        a.as_object_mut().unwrap().remove("event");
        a["details"] = json!({
            "phase": "start", "metric": "write_volume",
            "observed": {"average_per_minute": 14.0},
            "baseline": {"average_per_minute": 0.1333, "days_of_history": 6},
            "statistic": {"p_value": 1e-30, "threshold": 1e-5},
            "attributions": {"event_names": [{"value": "RunInstances", "count": 38},
                {"value": "CreateTags", "count": 4}],
                "user_agents": [{"value": "evil\u{1b}[0m", "count": 42}]}});
        let (_, msg) = single(&a, &RuleText::default());
        let v: Value = serde_json::from_str(&msg).unwrap();
        let email = v["email"].as_str().unwrap();
        for needle in [
            "phase: start (write_volume)",
            "observed: 14.0 per minute",
            "usual at this hour: 0.13 per minute (6 days of history)",
            "calls: RunInstances 38, CreateTags 4",
            "user agents: evil 42",
        ] {
            assert!(email.contains(needle), "missing {needle:?} in\n{email}");
        }
    }

    #[test]
    fn links_only_from_well_formed_ids() {
        assert!(console_link("3b8f1c5e-2a59-4c1d-9f10-0a1b2c3d4e5f", "eu-west-1").is_some());
        assert!(console_link("http://evil.example/x", "us-east-1").is_none());
        assert!(console_link("3b8f1c5e-2a59-4c1d-9f10-0a1b2c3d4e5f", "x.evil.com/").is_none());
    }

    #[test]
    fn oversized_event_is_cut_not_the_essentials() {
        let mut f = finding();
        f["event"]["requestParameters"] = json!({"blob": "x".repeat(600_000)});
        let (_, msg) = single(&f, &RuleText::default());
        assert!(msg.len() <= MESSAGE_BUDGET, "{}", msg.len());
        let v: Value = serde_json::from_str(&msg).unwrap();
        let default: Value = serde_json::from_str(v["default"].as_str().unwrap()).unwrap();
        assert_eq!(default["event_truncated"], json!(true));
        assert_eq!(default["summary"], f["summary"]);
        assert!(v["email"].as_str().unwrap().contains("What happened"));
    }

    #[test]
    fn digest_body_is_the_documented_json() {
        let fs: Vec<Value> = (0..250)
            .map(|i| {
                let mut f = finding();
                f["id"] = json!(format!("{i:032x}"));
                if i == 7 {
                    f["rule"]["level"] = json!("critical");
                }
                f
            })
            .collect();
        let refs: Vec<&Value> = fs.iter().collect();
        let ds = digests(&refs);
        assert_eq!(ds.len(), 3);
        let (s, m) = &ds[0];
        assert!(s.starts_with("[CRITICAL] 100 trailwatch findings"), "{s}");
        let v: Value = serde_json::from_str(m).unwrap();
        let d: Value = serde_json::from_str(v["default"].as_str().unwrap()).unwrap();
        assert_eq!(d["kind"], "digest");
        assert_eq!(d["count"], 100);
        let first = &d["findings"][0];
        for k in ["id", "rule", "level", "principal", "summary"] {
            assert!(first.get(k).is_some(), "{k}");
        }
        let total: u64 = ds
            .iter()
            .map(|(_, m)| {
                let v: Value = serde_json::from_str(m).unwrap();
                let d: Value = serde_json::from_str(v["default"].as_str().unwrap()).unwrap();
                d["count"].as_u64().unwrap()
            })
            .sum();
        assert_eq!(total, 250);
    }

    #[test]
    fn short_principals() {
        assert_eq!(short_principal("arn:aws:iam::1:user/alice"), "alice");
        assert_eq!(short_principal("arn:aws:iam::1:root"), "root");
        assert_eq!(
            short_principal("arn:aws:sts::1:assumed-role/deploy/i-0ab"),
            "deploy/i-0ab"
        );
        assert_eq!(
            short_principal("AWSService:ec2.amazonaws.com"),
            "AWSService:ec2.amazonaws.com"
        );
    }
}
