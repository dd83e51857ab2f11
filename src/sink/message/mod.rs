//! Rendering findings as SNS messages: a subject under 100 characters, a plain-text e-mail a
//! human can act on, and the JSON finding for machine subscribers, together under 256 KB.
//!
//! Everything taken from an event is attacker-controlled (user agents, request parameters,
//! resource names): [`clean`] strips control characters and terminal escape sequences from
//! it, and it is never turned into a link. The only link is built from the event id and the
//! region, and only when both have the expected shape.

mod clean;
mod email;
mod notice;

use crate::engine::AlertKind;
use crate::finding::{AnomalyPhase, Body};
pub use clean::clean;
use email::{Parts, email_text};
use notice::Notice;
use serde_json::{Value, json};

/// SNS limit on a message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 262_144;
/// Our budget: a little under the limit, leaving room for SNS' own envelope fields.
pub const MESSAGE_BUDGET: usize = 250_000;
/// A subject must be under 100 characters.
pub const MAX_SUBJECT_CHARS: usize = 99;
/// Most findings listed in one digest message.
pub const MAX_DIGEST_FINDINGS: usize = 100;

/// What an e-mail shows beside the finding, kept with it in the outbox: the rule's text and
/// the fields of the event that made it fire.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct EmailContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub falsepositives: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    /// Field → what the event held there, for the fields the rule tested and found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fired: Vec<(String, String)>,
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

/// `[HIGH] CloudTrail logging stopped by alice (123456789012/us-east-1)`, under 100 characters:
/// level, what, who, where. When too long, the region goes first, then the account, then the
/// title is cut — never the principal (in its short form). An alert's update says how many
/// more events came (`Update: +3 events — …`), its closing summary says it closed; an
/// anomaly's start and end say which they are.
pub fn subject(f: &Value) -> String {
    subject_of(&Notice::read(f))
}

fn subject_of(n: &Notice) -> String {
    let level = n.level_text();
    let mut title = clean(
        if n.rule.title.is_empty() {
            "trailwatch finding"
        } else {
            &n.rule.title
        },
        200,
    );
    let details = n.details.as_ref();
    match n.alert.as_ref().map(|a| a.kind) {
        // An alert about an incident: its update or closing summary says so.
        Some(AlertKind::Update) => {
            let k = n.carried_events();
            title = format!("Update: +{k} {} — {title}", plural(k, "event", "events"));
        }
        Some(AlertKind::Close) => title = format!("Closed: {title}"),
        // An anomaly's start and end are told apart.
        Some(AlertKind::New) | None => match details.map(|d| &d.body) {
            Some(Body::Anomaly(a)) if a.phase == AnomalyPhase::Start => {
                title = format!("Started: {title}")
            }
            Some(Body::Anomaly(a)) if a.phase == AnomalyPhase::End => {
                title = format!("Ended: {title}")
            }
            _ => {}
        },
    }
    let who = clean(&short_principal(&n.principal), 60);
    let account = clean(n.account.as_deref().unwrap_or("-"), 20);
    let region = clean(n.region.as_deref().unwrap_or("-"), 20);
    let head = format!("[{level}] ");
    let by = if who.is_empty() {
        String::new()
    } else {
        format!(" by {who}")
    };
    fit_subject(&head, &title, &by, &[&account, &region])
}

/// `head title by (place)`: the place shortened first (all of it, its first part, nothing),
/// then the title cut; `by` stays whole.
fn fit_subject(head: &str, title: &str, by: &str, place: &[&str]) -> String {
    let len = |s: &str| s.chars().count();
    let tails = [
        format!(" ({})", place.join("/")),
        format!(" ({})", place.first().copied().unwrap_or("-")),
        String::new(),
    ];
    for tail in &tails {
        if len(head) + len(title) + len(by) + len(tail) <= MAX_SUBJECT_CHARS {
            return format!("{head}{title}{by}{tail}");
        }
    }
    let room = MAX_SUBJECT_CHARS.saturating_sub(len(head) + len(by));
    if room >= 12 {
        return format!("{head}{}{by}", cut_chars(title, room));
    }
    cut_chars(&format!("{head}{title}{by}"), MAX_SUBJECT_CHARS)
}

/// `1 event`, `2 events`.
fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
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

/// The JSON text of an SNS message with `MessageStructure=json`: `{"default": …, "email": …}`.
fn structured(default: &str, email: &str) -> String {
    json!({"default": default, "email": email}).to_string()
}

/// One finding or alert as an SNS message (`MessageStructure=json`): `(subject, message)`. The
/// message stays under [`MESSAGE_BUDGET`] bytes: the embedded event is dropped first, then the
/// request parameters and event-id links in the e-mail, never the essentials.
pub fn single(f: &Value, ctx: &EmailContext) -> (String, String) {
    let notice = Notice::read(f);
    let subject = subject_of(&notice);
    let mut parts = Parts::ALL;
    let mut finding = f.clone();
    for step in 0..4 {
        let default = finding.to_string();
        let email = email_text(&notice, ctx, parts);
        let msg = structured(&default, &email);
        if msg.len() <= MESSAGE_BUDGET {
            return (subject, msg);
        }
        match step {
            0 => parts.request = false,
            1 => {
                if let Some(o) = finding.as_object_mut() {
                    o.remove("event");
                    o.insert("event_truncated".into(), Value::Bool(true));
                }
            }
            _ => {
                parts.ids = 1;
                parts.involved = false;
                if let Some(o) = finding.as_object_mut() {
                    if let Some(ids) = o.get_mut("event_ids").and_then(Value::as_array_mut) {
                        ids.truncate(2);
                    }
                    if let Some(d) = o.get_mut("details").and_then(Value::as_object_mut) {
                        d.retain(|k, _| k == "phase" || k == "correlation");
                    }
                    o.remove("involved");
                    o.remove("findings");
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
        "alert": f.get("alert"), "level": f.get("level"),
        "summary": Some(cut_chars(&notice.summary, 2000)),
        "event_truncated": true,
    });
    let email = email_text(
        &Notice::read(&essentials),
        &EmailContext::default(),
        Parts::NONE,
    );
    (subject, structured(&essentials.to_string(), &email))
}

/// Findings folded into digest messages (at most [`MAX_DIGEST_FINDINGS`] each, each under the
/// size budget): `(subject, message)` per digest.
pub fn digests(findings: &[&Value]) -> Vec<(String, String)> {
    let notices: Vec<Notice> = findings.iter().map(|f| Notice::read(f)).collect();
    let mut out = Vec::new();
    let mut start = 0;
    while start < notices.len() {
        let mut end = (start + MAX_DIGEST_FINDINGS).min(notices.len());
        loop {
            let (s, m) = digest(&notices[start..end]);
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

/// One digest: the worst first (highest level, then event time), named in the subject.
fn digest(notices: &[Notice]) -> (String, String) {
    let mut order: Vec<&Notice> = notices.iter().collect();
    order.sort_by(|a, b| b.level.cmp(&a.level).then_with(|| a.time.cmp(&b.time)));
    let n = notices.len();
    let worst = order[0];
    let head = format!("[{}] ", worst.level_text());
    let title = clean(&worst.rule.title, 200);
    let who = clean(&short_principal(&worst.principal), 60);
    let mut by = if who.is_empty() {
        String::new()
    } else {
        format!(" by {who}")
    };
    if n > 1 {
        by.push_str(&format!(", +{} more", n - 1));
    }
    let subject = fit_subject(&head, &title, &by, &["digest"]);
    let default = json!({
        "kind": "digest",
        "count": n,
        "findings": order.iter().map(|f| json!({
            "id": f.id,
            "rule": f.rule.title,
            "level": f.level,
            "principal": f.principal,
            "summary": f.summary,
        })).collect::<Vec<_>>(),
    });
    let mut email = format!(
        "{n} {} arrived together and were folded into this one message, to keep alerts \
         readable and under the SNS e-mail rate limit. Highest level: {}. Worst first.\n\n",
        if n == 1 { "message" } else { "messages" },
        worst.level_text()
    );
    for f in &order {
        email.push_str(&format!(
            "- [{}] {}\n  {}\n  {} in {}/{} at {}\n  {} {}\n\n",
            f.level_text(),
            clean(&f.rule.title, 200),
            clean(&f.summary, 600),
            clean(
                if f.principal.is_empty() {
                    "unknown"
                } else {
                    &f.principal
                },
                200
            ),
            clean(f.account.as_deref().unwrap_or("-"), 20),
            clean(f.region.as_deref().unwrap_or("-"), 20),
            clean(f.time.as_deref().unwrap_or("-"), 40),
            if f.alert.is_some() {
                "alert"
            } else {
                "finding"
            },
            clean(&f.id, 80),
        ));
    }
    email.push_str(
        "Each one is also in the JSON body (subscribers other than e-mail receive it). \
         Search your findings output or the trailwatch outbox by id for full details.\n",
    );
    (subject, structured(&default.to_string(), &email))
}

#[cfg(test)]
mod tests;
