//! What a call acted on: the resources a record names (who received the policy, which trail
//! was stopped, which bucket was read), for a person reading an alert.
//!
//! Read from the request parameters CloudTrail records for the common management calls, then
//! from the record's `resources` list. Values are attacker-controlled text: callers clean and
//! bound them before output.

use super::{Event, Value};

/// Most targets named for one record.
pub const MAX_TARGETS: usize = 6;

/// `requestParameters` members that name what a call acted on, and what to call them.
/// (`name` and `groupName` are read by service below: they mean different things.)
const PARAMETERS: &[(&str, &str)] = &[
    ("userName", "user"),
    ("roleName", "role"),
    ("policyArn", "policy"),
    ("policyName", "policy"),
    ("instanceProfileName", "instance profile"),
    ("serialNumber", "MFA device"),
    ("accessKeyId", "access key"),
    ("roleArn", "role"),
    ("bucketName", "bucket"),
    ("trailName", "trail"),
    ("instanceId", "instance"),
    ("volumeId", "volume"),
    ("snapshotId", "snapshot"),
    ("imageId", "image"),
    ("groupId", "security group"),
    ("vpcId", "VPC"),
    ("keyId", "KMS key"),
    ("functionName", "function"),
    ("secretId", "secret"),
    ("dBInstanceIdentifier", "DB instance"),
    ("dBClusterIdentifier", "DB cluster"),
    ("dBSnapshotIdentifier", "DB snapshot"),
    ("detectorId", "GuardDuty detector"),
    ("configurationRecorderName", "Config recorder"),
    ("logGroupName", "log group"),
    ("topicArn", "topic"),
    ("queueUrl", "queue"),
    ("clusterName", "cluster"),
    ("repositoryName", "repository"),
    ("stackName", "stack"),
    ("hostedZoneId", "hosted zone"),
    ("accountId", "account"),
    ("targetId", "target"),
    ("ruleName", "rule"),
    ("flowLogIds", "flow log"),
    ("FlowLogId", "flow log"),
];

/// `user alice`, `policy arn:aws:iam::aws:policy/AdministratorAccess`, `trail main`: what the
/// record says the call acted on, at most [`MAX_TARGETS`], without repeats.
pub fn targets(ev: &Event<'_>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |label: &str, v: &str| {
        let t = format!("{label} {v}");
        if !v.is_empty() && out.len() < MAX_TARGETS && !out.contains(&t) {
            out.push(t);
        }
    };
    if let Some(outer) = ev.get("requestParameters") {
        // Newer EC2 calls wrap their parameters: `{"DeleteFlowLogsRequest": {…}}`.
        let params = match outer {
            Value::Object(m) if m.len() == 1 && m[0].0.ends_with("Request") => &m[0].1,
            other => other,
        };
        for (key, label) in PARAMETERS {
            each_text(params.get(key), &mut |v| add(label, v));
        }
        // Lists of instances: `instancesSet.items[].instanceId`.
        if let Some(items) = params.get("instancesSet").and_then(|s| s.get("items")) {
            items.any_at(&["instanceId".into()], &mut |v| {
                if let Some(s) = v.as_str() {
                    add("instance", s);
                }
                false
            });
        }
        let service = ev.event_source().unwrap_or("");
        let by_service = match service {
            "cloudtrail.amazonaws.com" => Some(("name", "trail")),
            "iam.amazonaws.com" => Some(("groupName", "group")),
            "ec2.amazonaws.com" => Some(("groupName", "security group")),
            "s3.amazonaws.com" => Some(("key", "object")),
            _ => None,
        };
        if let Some((key, label)) = by_service {
            each_text(params.get(key), &mut |v| add(label, v));
        }
    }
    if let Some(Value::Array(items)) = ev.get("resources") {
        for r in items {
            if let Some(arn) = r
                .get("ARN")
                .or_else(|| r.get("arn"))
                .and_then(Value::as_str)
            {
                add("resource", arn);
            }
        }
    }
    out
}

/// Calls `f` with a string value, each string of an array of them, or the `content` of the
/// tagged values EC2 writes (`{"tag": 1, "content": "fl-0ab"}`).
fn each_text(v: Option<&Value<'_>>, f: &mut dyn FnMut(&str)) {
    match v {
        Some(Value::String(s)) => f(s),
        Some(Value::Array(items)) => {
            for item in items {
                each_text(Some(item), f);
            }
        }
        Some(v @ Value::Object(_)) => {
            if let Some(s) = v.get("content").and_then(Value::as_str) {
                f(s);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str) -> Vec<String> {
        targets(&Event::parse(text).unwrap())
    }

    #[test]
    fn names_who_received_a_policy() {
        let t = of(
            r#"{"eventSource":"iam.amazonaws.com","eventName":"AttachUserPolicy",
            "requestParameters":{"userName":"bob",
            "policyArn":"arn:aws:iam::aws:policy/AdministratorAccess"}}"#,
        );
        assert_eq!(
            t,
            [
                "user bob",
                "policy arn:aws:iam::aws:policy/AdministratorAccess"
            ]
        );
    }

    #[test]
    fn reads_names_by_service_and_lists_of_instances() {
        let t = of(
            r#"{"eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging",
            "requestParameters":{"name":"arn:aws:cloudtrail:us-east-1:111122223333:trail/main"}}"#,
        );
        assert_eq!(
            t,
            ["trail arn:aws:cloudtrail:us-east-1:111122223333:trail/main"]
        );
        let t = of(
            r#"{"eventSource":"ec2.amazonaws.com","eventName":"TerminateInstances",
            "requestParameters":{"instancesSet":{"items":[{"instanceId":"i-1"},{"instanceId":"i-2"}]}}}"#,
        );
        assert_eq!(t, ["instance i-1", "instance i-2"]);
        let t = of(
            r#"{"eventSource":"ec2.amazonaws.com","eventName":"DeleteFlowLogs",
            "requestParameters":{"DeleteFlowLogsRequest":{"FlowLogId":{"tag":1,"content":"fl-06"}}}}"#,
        );
        assert_eq!(t, ["flow log fl-06"]);
        // A `name` elsewhere means nothing in particular: not shown.
        assert!(
            of(r#"{"eventSource":"x.amazonaws.com","requestParameters":{"name":"n"}}"#).is_empty()
        );
    }

    #[test]
    fn falls_back_to_resources_and_stays_bounded() {
        let t = of(
            r#"{"eventSource":"kms.amazonaws.com","requestParameters":null,
            "resources":[{"ARN":"arn:aws:kms:us-east-1:1:key/k","type":"AWS::KMS::Key"}]}"#,
        );
        assert_eq!(t, ["resource arn:aws:kms:us-east-1:1:key/k"]);
        let many: Vec<String> = (0..20).map(|i| format!(r#"{{"ARN":"a{i}"}}"#)).collect();
        let t = of(&format!(r#"{{"resources":[{}]}}"#, many.join(",")));
        assert_eq!(t.len(), MAX_TARGETS);
    }
}
