//! Who acted (the grouping key of a per-principal series) and what kind of call it was.
//!
//! Write classification, in order:
//! 1. Insights records (`eventType: AwsCloudTrailInsight` or `eventCategory: Insight`),
//!    data and network-activity events (`eventCategory` other than `Management`, or
//!    `managementEvent: false`) are not counted at all.
//! 2. `readOnly: true` is a read, `readOnly: false` a write.
//! 3. Without `readOnly`: console sign-ins (`eventType: AwsConsoleSignIn`) are reads; an
//!    `eventName` starting with a read verb (`Describe`, `Get`, `List`, `Head`, `Lookup`,
//!    `Search`, `BatchGet`, `Query`, `Scan`, `Select`, `View`) is a read; anything else is a
//!    write.

use super::config::RoleGrouping;
use crate::event::{Event, Value};

/// The kind of a record for the baselines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Write,
    Read,
    /// Not a management API call (Insights, data events): not counted.
    Ignored,
}

const READ_PREFIXES: &[&str] = &[
    "Describe", "Get", "List", "Head", "Lookup", "Search", "BatchGet", "Query", "Scan", "Select",
    "View",
];

/// Is an event name without `readOnly` a read (by its verb)?
pub fn is_read_name(name: &str) -> bool {
    READ_PREFIXES.iter().any(|p| {
        name.strip_prefix(p).is_some_and(|rest| {
            rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_uppercase())
        })
    })
}

/// Classifies a record (see the module documentation for the rule).
pub fn classify(ev: &Event<'_>) -> Class {
    let event_type = ev.top_str("eventType");
    if event_type == Some("AwsCloudTrailInsight") {
        return Class::Ignored;
    }
    if let Some(cat) = ev.top_str("eventCategory")
        && cat != "Management"
    {
        return Class::Ignored;
    }
    match ev.get("managementEvent") {
        Some(Value::Bool(false)) => return Class::Ignored,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => return Class::Ignored,
        _ => {}
    }
    match ev.get("readOnly") {
        Some(Value::Bool(b)) => return if *b { Class::Read } else { Class::Write },
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => return Class::Read,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => return Class::Write,
        _ => {}
    }
    if event_type == Some("AwsConsoleSignIn") {
        return Class::Read;
    }
    match ev.event_name() {
        Some(n) if is_read_name(n) => Class::Read,
        Some(_) => Class::Write,
        None => Class::Ignored,
    }
}

/// A principal's grouping key and the session behind this record, if grouped by role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub key: String,
    pub session: Option<String>,
}

fn issuer_arn<'e>(ev: &'e Event<'_>) -> Option<&'e str> {
    ev.get("userIdentity")?
        .get("sessionContext")?
        .get("sessionIssuer")?
        .get("arn")?
        .as_str()
}

/// The grouping key: assumed roles by role ARN (or session ARN, per `grouping`); IAM users
/// by ARN; root per account (`arn:aws:iam::<account>:root`); everything else as in the
/// finding contract ([`crate::finding::principal`]), with `@<recipientAccountId>` appended
/// when that is not an ARN (service identities are the same text in every account).
pub fn who(ev: &Event<'_>, grouping: RoleGrouping) -> Who {
    let ty = ev.identity_str("type");
    if ty == Some("AssumedRole")
        && grouping == RoleGrouping::Role
        && let Some(role) = issuer_arn(ev)
    {
        return Who {
            key: role.to_string(),
            session: ev.identity_str("arn").map(str::to_string),
        };
    }
    if ty == Some("Root")
        && ev.identity_str("arn").is_none()
        && let Some(acct) = ev
            .identity_str("accountId")
            .or_else(|| ev.recipient_account_id())
    {
        return Who {
            key: format!("arn:aws:iam::{acct}:root"),
            session: None,
        };
    }
    let key = crate::finding::principal(ev);
    // Identities without an ARN (`AWSService:ec2.amazonaws.com`, …) are the same text in
    // every account: keep accounts apart.
    let key = match ev.recipient_account_id() {
        Some(acct) if !key.starts_with("arn:") => format!("{key}@{acct}"),
        _ => key,
    };
    Who { key, session: None }
}

/// A short human name for a key: `role deploy-bot`, `user alice`, `root of 111122223333`.
pub fn display(key: &str) -> String {
    if let Some(rest) = key.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        if let [_, _, _, acct, res] = parts.as_slice() {
            if *res == "root" {
                return format!("root of {acct}");
            }
            if let Some(r) = res.strip_prefix("role/") {
                return format!("role {}", r.rsplit('/').next().unwrap_or(r));
            }
            if let Some(r) = res.strip_prefix("assumed-role/") {
                return format!("session {r}");
            }
            if let Some(u) = res.strip_prefix("user/") {
                return format!("user {}", u.rsplit('/').next().unwrap_or(u));
            }
        }
    }
    key.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(text: &str) -> Event<'_> {
        Event::parse(text).unwrap()
    }

    #[test]
    fn classification() {
        assert_eq!(
            classify(&ev(r#"{"eventName":"RunInstances","readOnly":false}"#)),
            Class::Write
        );
        assert_eq!(
            classify(&ev(r#"{"eventName":"RunInstances","readOnly":true}"#)),
            Class::Read
        );
        assert_eq!(
            classify(&ev(
                r#"{"eventName":"ConsoleLogin","eventType":"AwsConsoleSignIn"}"#
            )),
            Class::Read
        );
        assert_eq!(
            classify(&ev(r#"{"eventName":"DescribeInstances"}"#)),
            Class::Read
        );
        assert_eq!(classify(&ev(r#"{"eventName":"Getaway"}"#)), Class::Write);
        assert_eq!(classify(&ev(r#"{"eventName":"CreateUser"}"#)), Class::Write);
        assert_eq!(
            classify(&ev(
                r#"{"eventName":"PutObject","readOnly":false,"managementEvent":false}"#
            )),
            Class::Ignored
        );
        assert_eq!(
            classify(&ev(
                r#"{"eventType":"AwsCloudTrailInsight","eventCategory":"Insight"}"#
            )),
            Class::Ignored
        );
    }

    #[test]
    fn grouping() {
        let text = r#"{"userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/deploy-bot/s1",
            "sessionContext":{"sessionIssuer":{"arn":"arn:aws:iam::1:role/deploy-bot"}}}}"#;
        let w = who(&ev(text), RoleGrouping::Role);
        assert_eq!(w.key, "arn:aws:iam::1:role/deploy-bot");
        assert_eq!(
            w.session.as_deref(),
            Some("arn:aws:sts::1:assumed-role/deploy-bot/s1")
        );
        assert_eq!(display(&w.key), "role deploy-bot");
        let w = who(&ev(text), RoleGrouping::Session);
        assert_eq!(w.key, "arn:aws:sts::1:assumed-role/deploy-bot/s1");
        let w = who(
            &ev(r#"{"userIdentity":{"type":"Root","accountId":"2"}}"#),
            RoleGrouping::Role,
        );
        assert_eq!(w.key, "arn:aws:iam::2:root");
        assert_eq!(display(&w.key), "root of 2");
        assert_eq!(display("arn:aws:iam::1:user/ops/alice"), "user alice");
        let w = who(
            &ev(
                r#"{"userIdentity":{"type":"AWSService","invokedBy":"ec2.amazonaws.com"},"recipientAccountId":"3"}"#,
            ),
            RoleGrouping::Role,
        );
        assert_eq!(w.key, "AWSService:ec2.amazonaws.com@3");
    }
}
