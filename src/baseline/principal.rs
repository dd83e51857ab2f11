//! The grouping key of a per-principal series: who acted, with assumed roles grouped by role
//! or by session (see [`RoleGrouping`]). Which records count is
//! [`crate::event::identity::classify`].

use crate::event::Event;
use crate::event::identity::{issuer_arn, principal};
use crate::rules::baseline::RoleGrouping;

/// A principal's grouping key and the session behind this record, if grouped by role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PrincipalKey {
    pub key: String,
    pub session: Option<String>,
}

/// The grouping key: assumed roles by role ARN (or session ARN, per `grouping`); IAM users
/// by ARN; root per account (`arn:aws:iam::<account>:root`); everything else as in the
/// finding contract ([`principal`]), with `@<recipientAccountId>` appended
/// when that is not an ARN (service identities are the same text in every account).
pub(crate) fn who(ev: &Event<'_>, grouping: RoleGrouping) -> PrincipalKey {
    let ty = ev.identity_str("type");
    if ty == Some("AssumedRole")
        && grouping == RoleGrouping::Role
        && let Some(role) = issuer_arn(ev)
    {
        return PrincipalKey {
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
        return PrincipalKey {
            key: format!("arn:aws:iam::{acct}:root"),
            session: None,
        };
    }
    let key = principal(ev);
    // Identities without an ARN (`AWSService:ec2.amazonaws.com`, …) are the same text in
    // every account: keep accounts apart.
    let key = match ev.recipient_account_id() {
        Some(acct) if !key.starts_with("arn:") => format!("{key}@{acct}"),
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

    fn ev(text: &str) -> Event<'_> {
        Event::parse(text).unwrap()
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
