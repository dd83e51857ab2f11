//! The silence rule: a source — a log group, a Kinesis stream, an SQS queue — that delivers
//! no CloudTrail event for `--silence` is reported (a stopped trail or broken delivery blinds
//! every other detection).

use crate::finding::{Body, Finding, HealthDetails, RuleRef};
use crate::rules::Level;
use crate::sink::message::EmailContext;
use crate::util::time::{Millis, format_duration, format_millis};

pub const SILENCE_RULE_ID: &str = "trailwatch-log-group-silent";

/// Something watched for silence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    /// What it is: `log group`, `Kinesis stream`, `queue`.
    pub kind: &'static str,
    /// Its name (the log group, the stream, the queue URL): the name the checkpoint keeps
    /// for a silent one, and `details.log_group` of its finding.
    pub name: String,
}

impl Watched {
    fn label(&self) -> String {
        format!("{} {}", self.kind, self.name)
    }
}

/// One cycle's silence check over `watched` (`last_event_wall` and `silent` in the same
/// order), `quiet` being the silence period: a source without a new event for that long is
/// reported once (only when the source is `caught_up`: a backlog still being read is not
/// silence), and a reported one is cleared when events arrive again. Returns whether any
/// changed (the checkpoint records which are silent).
#[allow(clippy::too_many_arguments)]
pub(super) fn check_silence(
    watched: &[Watched],
    region: Option<&str>,
    quiet: Millis,
    last_event_wall: &[Millis],
    silent: &mut [bool],
    now: Millis,
    caught_up: bool,
    ready: &mut Vec<Finding>,
) -> bool {
    let mut changed = false;
    for ((w, last), silent) in watched.iter().zip(last_event_wall).zip(silent.iter_mut()) {
        let (last, label) = (*last, w.label());
        if last == now && *silent {
            *silent = false;
            changed = true;
            tracing::info!(log_group = %w.name, "{label}: events arrive again");
        } else if now - last >= quiet && !*silent && caught_up {
            *silent = true;
            changed = true;
            tracing::warn!(
                log_group = %w.name,
                "{label}: no event for {}; reporting it",
                format_duration(now - last)
            );
            ready.push(silence_finding(w, last, now, region));
        }
    }
    changed
}

/// The finding for a source that went quiet.
pub fn silence_finding(
    watched: &Watched,
    last_event_wall: Millis,
    now: Millis,
    region: Option<&str>,
) -> Finding {
    let group = &watched.name;
    let label = watched.label();
    let id = crate::util::ids::stable_id(&["silence", group, &last_event_wall.to_string()]);
    let silent_for = format_duration(now - last_event_wall);
    let rule = RuleRef {
        id: SILENCE_RULE_ID.into(),
        title: format!("No CloudTrail events from {}", watched.kind),
        level: Level::High,
        tags: vec!["attack.defense-evasion".into(), "attack.t1562.008".into()],
    };
    let details = HealthDetails {
        log_group: group.to_string(),
        silent_for: silent_for.clone(),
        last_event_received: format_millis(last_event_wall),
    };
    Finding::new(id, rule, Body::Health(details))
        .with_time(Some(format_millis(now)), Some(now))
        .with_who("trailwatch".into(), None, region.map(str::to_string))
        .with_summary(format!(
            "No CloudTrail event arrived from {label} for {silent_for} (last one received at \
             {}): the trail may be stopped or its delivery broken.",
            format_millis(last_event_wall)
        ))
}

/// The description of the silence rule for e-mails (it has no rule file).
pub(super) fn silence_rule_text() -> EmailContext {
    EmailContext {
        fired: Vec::new(),
        description: Some(
            "No CloudTrail event has arrived from this source (a log group, its subscription \
             stream, or the queue of its bucket's notifications) for longer than the configured \
             silence period. A trail that is stopped, deleted, re-pointed, or whose delivery \
             to CloudWatch Logs is broken (role, KMS key, subscription) looks like this — and \
             every detection depending on it is blind until it is fixed.\n\
             Check first: `aws cloudtrail get-trail-status` for the trail (IsLogging, \
             LatestCloudWatchLogsDeliveryError), recent StopLogging / DeleteTrail / \
             UpdateTrail / PutEventSelectors events in the S3 archive, and the trail's \
             CloudWatch Logs role."
                .into(),
        ),
        falsepositives: vec![
            "An account or region with genuinely no API activity (rare for a whole trail)".into(),
        ],
        references: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_once_then_cleared_when_events_arrive() {
        let watched = [
            Watched {
                kind: "log group",
                name: "/trail/a".into(),
            },
            Watched {
                kind: "log group",
                name: "/trail/b".into(),
            },
        ];
        let region = Some("eu-west-1");
        let quiet = 60_000;
        let mut silent = [false, false];
        let mut ready = Vec::new();
        let t0 = 1_700_000_000_000;
        // Group a quiet for the whole period, b just heard from; not caught up: no report.
        let last = [t0, t0 + quiet];
        let now = t0 + quiet;
        assert!(!check_silence(
            &watched,
            region,
            quiet,
            &last,
            &mut silent,
            now,
            false,
            &mut ready
        ));
        assert!(ready.is_empty());
        // Caught up: a is reported, once.
        assert!(check_silence(
            &watched,
            region,
            quiet,
            &last,
            &mut silent,
            now,
            true,
            &mut ready
        ));
        assert_eq!(silent, [true, false]);
        assert_eq!(ready.len(), 1);
        let f = &ready[0];
        assert_eq!(f.rule.id, SILENCE_RULE_ID);
        assert_eq!(f.region.as_deref(), Some("eu-west-1"));
        assert_eq!(f.details.to_json()["log_group"], "/trail/a");
        assert_eq!(f.rule.title, "No CloudTrail events from log group");
        assert!(
            f.summary
                .starts_with("No CloudTrail event arrived from log group /trail/a for 1m"),
            "{}",
            f.summary
        );
        assert!(!check_silence(
            &watched,
            region,
            quiet,
            &last,
            &mut silent,
            now + 1,
            true,
            &mut ready
        ));
        assert_eq!(ready.len(), 1, "one finding, not one per poll");
        // An event arrives in a: cleared, no finding.
        let now = now + 5_000;
        let last = [now, t0 + quiet];
        assert!(check_silence(
            &watched,
            region,
            quiet,
            &last,
            &mut silent,
            now,
            true,
            &mut ready
        ));
        assert_eq!(silent, [false, false]);
        assert_eq!(ready.len(), 1);
    }
}
