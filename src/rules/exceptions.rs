//! Tuning without forking rules: known-benign principals, addresses and accounts, for every
//! rule or for one rule id, read from a YAML file (`--exceptions FILE`).
//!
//! ```yaml
//! all:                       # applies to every rule
//!   principals: [arn:aws:iam::111122223333:role/terraform]
//!   principal_patterns: ["arn:aws:sts::*:assumed-role/AWSReservedSSO_Admin_*/*"]
//!   source_ips: [10.0.0.0/8, 203.0.113.7]
//!   accounts: ["444455556666"]
//! rules:
//!   7b87f8de-4b3a-4c9e-848a-5b627bbe35dc:   # a rule id
//!     principals: [arn:aws:iam::111122223333:user/ops-breakglass]
//! ```
//! A finding is dropped (and counted) when its principal, the event's source IP, or its
//! account matches an entry of `all` or of its rule's entry. Principals and patterns compare
//! case-insensitively; patterns use `*` and `?`.

use crate::event::Event;
use crate::rules::matcher::{Cidr, StrPattern};
use crate::rules::parse::{compile_pattern, parse_wildcards};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};

#[derive(Debug, thiserror::Error)]
pub enum ExceptionsError {
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    #[serde(default)]
    principals: Vec<String>,
    #[serde(default)]
    principal_patterns: Vec<String>,
    #[serde(default)]
    source_ips: Vec<String>,
    #[serde(default)]
    accounts: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionsFile {
    #[serde(default)]
    all: Option<EntryFile>,
    #[serde(default)]
    rules: BTreeMap<String, EntryFile>,
}

/// One compiled set of exceptions.
#[derive(Debug, Default)]
struct Entry {
    principals: HashSet<String>,
    patterns: Vec<StrPattern>,
    networks: Vec<Cidr>,
    accounts: HashSet<String>,
}

impl Entry {
    fn compile(e: EntryFile, file: &str, place: &str) -> Result<Entry, ExceptionsError> {
        let invalid = |message: String| ExceptionsError::Invalid {
            file: file.to_string(),
            message: format!("{place}: {message}"),
        };
        let mut patterns = Vec::new();
        for p in &e.principal_patterns {
            patterns.push(
                compile_pattern(parse_wildcards(p), false).map_err(|e| invalid(e.to_string()))?,
            );
        }
        let mut networks = Vec::new();
        for ip in &e.source_ips {
            networks
                .push(Cidr::parse(ip).map_err(|m| invalid(format!("source_ips: `{ip}`: {m}")))?);
        }
        Ok(Entry {
            principals: e.principals.iter().map(|p| p.to_lowercase()).collect(),
            patterns,
            networks,
            accounts: e.accounts.into_iter().collect(),
        })
    }

    fn matches(&self, principal: &str, ev: &Event<'_>, account: Option<&str>) -> bool {
        let lower = principal.to_lowercase();
        self.principals.contains(&lower)
            || self.patterns.iter().any(|p| p.matches(principal, false))
            || ev
                .top_str("sourceIPAddress")
                .is_some_and(|ip| self.networks.iter().any(|n| n.contains(ip)))
            || account.is_some_and(|a| self.accounts.contains(a))
    }
}

/// Compiled exceptions.
#[derive(Debug, Default)]
pub struct Exceptions {
    all: Option<Entry>,
    by_rule: BTreeMap<String, Entry>,
}

impl Exceptions {
    /// Parses an exceptions file; `file` names it in errors.
    pub fn from_yaml(file: &str, text: &str) -> Result<Exceptions, ExceptionsError> {
        let parsed: ExceptionsFile = if text.trim().is_empty() {
            ExceptionsFile::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| ExceptionsError::Invalid {
                file: file.to_string(),
                message: e.to_string(),
            })?
        };
        let all = parsed
            .all
            .map(|e| Entry::compile(e, file, "all"))
            .transpose()?;
        let mut by_rule = BTreeMap::new();
        for (id, e) in parsed.rules {
            let entry = Entry::compile(e, file, &format!("rules.{id}"))?;
            by_rule.insert(id, entry);
        }
        Ok(Exceptions { all, by_rule })
    }

    /// Rule ids the file names, to check against the loaded rules.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.by_rule.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_none() && self.by_rule.is_empty()
    }

    /// Is a finding of `rule_id` on `ev` excepted?
    pub fn excepts(&self, rule_id: &str, ev: &Event<'_>) -> bool {
        if self.is_empty() {
            return false;
        }
        let principal = crate::event::identity::principal(ev);
        let account = ev.recipient_account_id();
        self.all
            .iter()
            .chain(self.by_rule.get(rule_id))
            .any(|e| e.matches(&principal, ev, account))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
all:
  principal_patterns: ["arn:aws:sts::*:assumed-role/terraform/*"]
  source_ips: [10.0.0.0/8]
rules:
  r1:
    principals: [ARN:aws:iam::1:user/Alice]
    accounts: ["222233334444"]
"#;

    fn ev(text: &str) -> Event<'_> {
        Event::parse(text).unwrap()
    }

    #[test]
    fn all_and_per_rule_entries() {
        let x = Exceptions::from_yaml("x.yml", FILE).unwrap();
        let tf = ev(r#"{"userIdentity":{"arn":"arn:aws:sts::1:assumed-role/terraform/s1"}}"#);
        assert!(x.excepts("any", &tf));
        let alice = ev(r#"{"userIdentity":{"arn":"arn:aws:iam::1:user/alice"}}"#);
        assert!(x.excepts("r1", &alice));
        assert!(!x.excepts("r2", &alice));
        let internal = ev(r#"{"sourceIPAddress":"10.1.2.3","userIdentity":{"arn":"x"}}"#);
        assert!(x.excepts("r2", &internal));
        let acct = ev(r#"{"recipientAccountId":"222233334444","userIdentity":{"arn":"x"}}"#);
        assert!(x.excepts("r1", &acct));
        assert!(!x.excepts("r2", &acct));
    }

    #[test]
    fn unknown_keys_and_bad_cidrs_are_errors() {
        let e = Exceptions::from_yaml("x.yml", "all:\n  principal: [a]\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `principal`"), "{e}");
        let e = Exceptions::from_yaml("x.yml", "all:\n  source_ips: [10.0.0.0/40]\n").unwrap_err();
        assert!(e.to_string().contains("10.0.0.0/40"), "{e}");
    }
}
