//! Findings and alerts as one line of text each, for a person at a terminal: the same line
//! whichever command prints it (`backtest --format text`, `run --format text`). Text from
//! events is attacker-controlled: control characters and terminal escapes are stripped.

use crate::engine::Alert;
use crate::finding::Finding;
use crate::sink::message::clean;
use std::io::{self, Write};

/// Level (see [`crate::rules::Level::tag`]), event time, the summary sentence (it starts
/// with the rule title) and the CloudTrail event id to look the record up.
pub fn finding_line(out: &mut dyn Write, f: &Finding) -> io::Result<()> {
    write!(
        out,
        "{:<8} {}  {}",
        f.rule.level.tag(),
        f.time.as_deref().unwrap_or("-"),
        clean(&f.summary, 4000)
    )?;
    match f.event_ids.first() {
        Some(id) => writeln!(out, " [event {}]", clean(id, 100)),
        None => writeln!(out),
    }
}

/// Level, the event time the alert was decided at, its kind (`new`, `update`, `close`) and
/// its summary.
pub fn alert_line(out: &mut dyn Write, a: &Alert) -> io::Result<()> {
    writeln!(
        out,
        "{:<8} {}  [{}] {}",
        a.level.tag(),
        crate::util::time::format_millis(a.time),
        a.kind.as_str(),
        clean(&a.summary(), 4000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Body, MatchDetails, RuleRef};
    use crate::rules::Level;

    #[test]
    fn every_level_fits_its_column() {
        for level in [
            Level::Informational,
            Level::Low,
            Level::Medium,
            Level::High,
            Level::Critical,
        ] {
            let rule = RuleRef {
                id: "r".into(),
                title: "R".into(),
                level,
                tags: Vec::new(),
            };
            let body = Body::Match(MatchDetails {
                rule_file: "r.yml".into(),
                event_type: None,
                identity_account: None,
            });
            let f = Finding::new("id".into(), rule, body)
                .with_time(Some("2024-05-01T10:00:00Z".into()), None)
                .with_summary("R: something happened.".into());
            let mut out = Vec::new();
            finding_line(&mut out, &f).unwrap();
            let line = String::from_utf8(out).unwrap();
            // The time starts in column 10 whatever the level.
            assert_eq!(line.find("2024-"), Some(9), "{line:?}");
            assert!(line.starts_with(level.tag()), "{line:?}");
            assert_eq!(Level::parse(level.tag()), Some(level));
        }
    }
}
