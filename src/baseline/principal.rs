//! The grouping key of a per-principal series: who acted, with assumed roles grouped by role
//! or by session (see [`RoleGrouping`]). Which records count is
//! [`crate::event::identity::classify`].

use crate::event::Event;
use crate::event::identity::{issuer_arn, principal_text};
use crate::rules::baseline::RoleGrouping;
use std::borrow::Cow;

/// A principal's grouping key and the session behind this record, if grouped by role
/// (borrowed from the record where they are its texts: this is made for every record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PrincipalKey<'e> {
    pub key: Cow<'e, str>,
    pub session: Option<&'e str>,
}

/// The grouping key: assumed roles by role ARN (or session ARN, per `grouping`); IAM users
/// by ARN; root per account (`arn:aws:iam::<account>:root`); everything else as in the
/// finding contract ([`crate::event::identity::principal`]), with `@<recipientAccountId>` appended
/// when that is not an ARN (service identities are the same text in every account).
pub(crate) fn who<'e>(ev: &'e Event<'_>, grouping: RoleGrouping) -> PrincipalKey<'e> {
    let ty = ev.identity_str("type");
    if ty == Some("AssumedRole")
        && grouping == RoleGrouping::Role
        && let Some(role) = issuer_arn(ev)
    {
        return PrincipalKey {
            key: role.into(),
            session: ev.identity_str("arn"),
        };
    }
    if ty == Some("Root")
        && ev.identity_str("arn").is_none()
        && let Some(acct) = ev
            .identity_str("accountId")
            .or_else(|| ev.recipient_account_id())
    {
        return PrincipalKey {
            key: format!("arn:aws:iam::{acct}:root").into(),
            session: None,
        };
    }
    let key = principal_text(ev);
    // Identities without an ARN (`AWSService:ec2.amazonaws.com`, …) are the same text in
    // every account: keep accounts apart.
    let key = match ev.recipient_account_id() {
        Some(acct) if !key.starts_with("arn:") => format!("{key}@{acct}").into(),
        _ => key,
    };
    PrincipalKey { key, session: None }
}

/// A short human name for a key: `role deploy-bot`, `user alice`, `root of 111122223333`.
pub(crate) fn display(key: &str) -> String {
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

    /// The grouping key and session of the record `text`, owned.
    fn who_of(text: &str, grouping: RoleGrouping) -> (String, Option<String>) {
        let ev = Event::parse(text).unwrap();
        let w = who(&ev, grouping);
        (w.key.into_owned(), w.session.map(str::to_string))
    }

    #[test]
    fn grouping() {
        let text = r#"{"userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/deploy-bot/s1",
            "sessionContext":{"sessionIssuer":{"arn":"arn:aws:iam::1:role/deploy-bot"}}}}"#;
        let (key, session) = who_of(text, RoleGrouping::Role);
        assert_eq!(key, "arn:aws:iam::1:role/deploy-bot");
        assert_eq!(
            session.as_deref(),
            Some("arn:aws:sts::1:assumed-role/deploy-bot/s1")
        );
        assert_eq!(display(&key), "role deploy-bot");
        let (key, _) = who_of(text, RoleGrouping::Session);
        assert_eq!(key, "arn:aws:sts::1:assumed-role/deploy-bot/s1");
        let (key, _) = who_of(
            r#"{"userIdentity":{"type":"Root","accountId":"2"}}"#,
            RoleGrouping::Role,
        );
        assert_eq!(key, "arn:aws:iam::2:root");
        assert_eq!(display(&key), "root of 2");
        assert_eq!(display("arn:aws:iam::1:user/ops/alice"), "user alice");
        let (key, _) = who_of(
            r#"{"userIdentity":{"type":"AWSService","invokedBy":"ec2.amazonaws.com"},"recipientAccountId":"3"}"#,
            RoleGrouping::Role,
        );
        assert_eq!(key, "AWSService:ec2.amazonaws.com@3");
    }
}
