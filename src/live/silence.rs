//! The silence rule: a log group that receives no CloudTrail event for `--silence` is
//! reported (a stopped trail or broken delivery blinds every other detection).

use super::LiveOptions;
use crate::finding::{Body, Finding, HealthDetails, RuleRef};
use crate::rules::Level;
use crate::sink::message::EmailContext;
use crate::util::time::{Millis, format_duration, format_millis};

pub const SILENCE_RULE_ID: &str = "trailwatch-log-group-silent";

/// One cycle's silence check over the groups of `opts.tail` (`last_event_wall` and `silent`
/// in the same order), `quiet` being the silence period: a group without a new event for
/// that long is reported once (only when the tail is `caught_up`: a backlog still being read
/// is not silence), and a reported group is cleared when events arrive again. Returns whether
/// any group changed (the checkpoint records which are silent).
pub(super) fn check_silence(
    opts: &LiveOptions,
    quiet: Millis,
    last_event_wall: &[Millis],
    silent: &mut [bool],
    now: Millis,
    caught_up: bool,
    ready: &mut Vec<Finding>,
) -> bool {
    let mut changed = false;
    for (g, name) in opts.tail.groups.iter().enumerate() {
        let last = last_event_wall[g];
        if last == now && silent[g] {
            silent[g] = false;
            changed = true;
            tracing::info!(log_group = %name, "log group {name}: events arrive again");
        } else if now - last >= quiet && !silent[g] && caught_up {
            silent[g] = true;
            changed = true;
            tracing::warn!(
                log_group = %name,
                "log group {name}: no event for {}; reporting it",
                format_duration(now - last)
            );
            ready.push(silence_finding(name, last, now, opts.region.as_deref()));
        }
    }
    changed
}

/// The finding for a log group that went quiet.
pub fn silence_finding(
    group: &str,
    last_event_wall: Millis,
    now: Millis,
    region: Option<&str>,
) -> Finding {
    let id = crate::util::ids::stable_id(&["silence", group, &last_event_wall.to_string()]);
    let silent_for = format_duration(now - last_event_wall);
    let rule = RuleRef {
        id: SILENCE_RULE_ID.into(),
        title: "No CloudTrail events from log group".into(),
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
            "No CloudTrail event arrived in log group {group} for {silent_for} (last one received \
             at {}): the trail may be stopped or its delivery broken.",
            format_millis(last_event_wall)
        ))
}

/// The description of the silence rule for e-mails (it has no rule file).
pub(super) fn silence_rule_text() -> EmailContext {
    EmailContext {
        fired: Vec::new(),
        description: Some(
            "No CloudTrail event has reached this log group for longer than the configured \
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
        let opts = LiveOptions {
            tail: crate::source::cloudwatch::TailConfig {
                groups: vec!["/trail/a".into(), "/trail/b".into()],
                ..Default::default()
            },
            region: Some("eu-west-1".into()),
            ..Default::default()
        };
        let quiet = 60_000;
        let mut silent = [false, false];
        let mut ready = Vec::new();
        let t0 = 1_700_000_000_000;
        // Group a quiet for the whole period, b just heard from; not caught up: no report.
        let last = [t0, t0 + quiet];
        let now = t0 + quiet;
        assert!(!check_silence(
            &opts,
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
            &opts,
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
        assert!(!check_silence(
            &opts,
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
            &opts,
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
