//! CloudTrail identity: who acted (the finding contract's `principal`) and what kind of call a
//! record is (management write, read, or not counted).
//!
//! Classification of a record, in order:
//! 1. Insights records (`eventType: AwsCloudTrailInsight` or `eventCategory: Insight`),
//!    data and network-activity events (`eventCategory` other than `Management`, or
//!    `managementEvent: false`) are not counted at all.
//! 2. `readOnly: true` is a read, `readOnly: false` a write.
//! 3. Without `readOnly`: console sign-ins (`eventType: AwsConsoleSignIn`) are reads; an
//!    `eventName` starting with a read verb (`Describe`, `Get`, `List`, `Head`, `Lookup`,
//!    `Search`, `BatchGet`, `Query`, `Scan`, `Select`, `View`) is a read; anything else is a
//!    write.

use super::{Event, Value};

/// Who acted, per the finding contract: the identity ARN; else the session issuer; else
/// `<type>:<invokedBy or principalId>`.
pub(crate) fn principal(ev: &Event<'_>) -> String {
    principal_text(ev).into_owned()
}

/// [`principal`], borrowed from the record when it is one of its texts.
pub(crate) fn principal_text<'e>(ev: &'e Event<'_>) -> std::borrow::Cow<'e, str> {
    if let Some(arn) = ev.identity_str("arn") {
        return arn.into();
    }
    let ui = ev.get("userIdentity");
    if let Some(issuer) = ui
        .and_then(|u| u.get("sessionContext"))
        .and_then(|s| s.get("sessionIssuer"))
        .and_then(|s| s.get("arn"))
        .and_then(Value::as_str)
    {
        return issuer.into();
    }
    let ty = ev.identity_str("type").unwrap_or("unknown");
    let who = ev
        .identity_str("invokedBy")
        .or_else(|| ev.identity_str("principalId"))
        .or_else(|| ev.top_str("sourceIPAddress"))
        .unwrap_or("unknown");
    format!("{ty}:{who}").into()
}

/// The ARN of the role (or user) that issued an assumed-role session.
pub(crate) fn issuer_arn<'e>(ev: &'e Event<'_>) -> Option<&'e str> {
    ev.get("userIdentity")?
        .get("sessionContext")?
        .get("sessionIssuer")?
        .get("arn")?
        .as_str()
}

/// The kind of a record: a management write, a read, or not an API call that counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
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
pub(crate) fn is_read_name(name: &str) -> bool {
    READ_PREFIXES.iter().any(|p| {
        name.strip_prefix(p).is_some_and(|rest| {
            rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_uppercase())
        })
    })
}

/// Classifies a record (see the module documentation for the rule).
pub(crate) fn classify(ev: &Event<'_>) -> Class {
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
    fn principal_fallbacks() {
        let ev = Event::parse(
            r#"{"userIdentity":{"type":"AWSService","invokedBy":"ec2.amazonaws.com"}}"#,
        )
        .unwrap();
        assert_eq!(principal(&ev), "AWSService:ec2.amazonaws.com");
        let ev = Event::parse(r#"{"userIdentity":{"type":"Root","arn":"arn:aws:iam::1:root"}}"#)
            .unwrap();
        assert_eq!(principal(&ev), "arn:aws:iam::1:root");
    }
}
