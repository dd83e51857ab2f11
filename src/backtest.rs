//! Replays archived CloudTrail through the engine and keeps the tallies a report needs.

use crate::decode::{self, Shape};
use crate::engine::Engine;
use crate::event::Event;
use crate::finding::Finding;
use crate::source::files::Discovery;
use std::collections::BTreeMap;

/// A problem with one input or record; the run goes on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Issue {
    /// `file`, `file: record N` or `file: line N`.
    pub place: String,
    pub message: String,
}

/// Per-rule tally.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RuleTally {
    pub title: String,
    pub level: String,
    pub findings: u64,
    /// Distinct principals behind the findings.
    pub principals: usize,
    #[serde(skip)]
    principal_set: std::collections::BTreeSet<String>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    pub files_read: usize,
    /// Inputs that are neither JSON nor gzip (a README, …).
    pub files_skipped: usize,
    pub digest_files_skipped: usize,
    pub control_messages_skipped: usize,
    pub records: u64,
    pub malformed_records: u64,
    pub findings: u64,
    pub by_rule: BTreeMap<String, RuleTally>,
    pub issues: Vec<Issue>,
    /// Issues beyond the first [`MAX_ISSUES`] are counted, not kept.
    pub issues_not_shown: u64,
}

pub const MAX_ISSUES: usize = 200;

impl Summary {
    fn issue(&mut self, place: String, message: String) {
        if self.issues.len() < MAX_ISSUES {
            self.issues.push(Issue { place, message });
        } else {
            self.issues_not_shown += 1;
        }
    }
}

/// Runs every input of `discovery` through `engine`, calling `emit` for each finding.
pub fn run(discovery: &Discovery, engine: &mut Engine, mut emit: impl FnMut(&Finding)) -> Summary {
    let mut s = Summary {
        digest_files_skipped: discovery.digests,
        ..Summary::default()
    };
    for (path, e) in &discovery.errors {
        s.issue(path.clone(), format!("cannot read: {e}"));
    }
    let mut findings = Vec::new();
    for input in &discovery.inputs {
        let label = input.label();
        let bytes = match input.read() {
            Ok(b) => b,
            Err(e) => {
                s.issue(label, format!("cannot read: {e}"));
                continue;
            }
        };
        if !decode::looks_like_input(&bytes) {
            s.files_skipped += 1;
            continue;
        }
        let plain = match decode::maybe_gunzip(&bytes) {
            Ok(p) => p,
            Err(e) => {
                s.issue(label, e.to_string());
                continue;
            }
        };
        let decoded = match decode::decode(&plain) {
            Ok(d) => d,
            Err(e) => {
                s.issue(label, e.to_string());
                continue;
            }
        };
        match decoded.shape {
            Shape::NotCloudTrail => {
                s.files_skipped += 1;
                continue;
            }
            Shape::Digest => {
                s.digest_files_skipped += 1;
                continue;
            }
            Shape::CwlControl => {
                s.control_messages_skipped += 1;
                continue;
            }
            _ => {}
        }
        s.files_read += 1;
        for issue in decoded.issues {
            s.malformed_records += 1;
            s.issue(format!("{label}: {}", issue.loc), issue.message);
        }
        for rec in &decoded.records {
            s.records += 1;
            let ev = match Event::parse(&rec.text) {
                Ok(ev) => ev,
                Err(e) => {
                    s.malformed_records += 1;
                    s.issue(format!("{label}: {}", rec.loc), e.to_string());
                    continue;
                }
            };
            findings.clear();
            engine.process(&ev, &mut findings);
            for f in &findings {
                s.findings += 1;
                let t = s.by_rule.entry(f.rule.id.clone()).or_default();
                t.title.clone_from(&f.rule.title);
                t.level = f.rule.level.to_string();
                t.findings += 1;
                if t.principal_set.insert(f.principal.clone()) {
                    t.principals = t.principal_set.len();
                }
                emit(f);
            }
        }
    }
    s
}
