//! CloudTrail records: one simulated call rendered as the JSON CloudTrail writes (identity,
//! request parameters and response elements, refusals).

use crate::apis::{Api, S3, action_prefix, is_global, refusal};
use crate::principals::{Behaviour, Ident, Principal};
use crate::rng::{Rng, id_chars, mix};
use crate::{ACCOUNTS, REGIONS};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

pub(crate) fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Issuer<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    principal_id: String,
    arn: &'a str,
    account_id: &'a str,
    user_name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Attributes {
    creation_date: String,
    mfa_authenticated: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionContext<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    session_issuer: Option<Issuer<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    web_id_federation_data: Option<Value>,
    attributes: Attributes,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserIdentity<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    principal_id: String,
    arn: String,
    account_id: &'a str,
    access_key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_context: Option<SessionContext<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TlsDetails {
    tls_version: &'static str,
    cipher_suite: &'static str,
    client_provided_host_header: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    event_version: &'static str,
    user_identity: UserIdentity<'a>,
    event_time: String,
    event_source: &'static str,
    event_name: &'static str,
    aws_region: &'static str,
    #[serde(rename = "sourceIPAddress")]
    source_ip_address: &'a str,
    user_agent: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
    request_parameters: Value,
    response_elements: Value,
    #[serde(rename = "requestID")]
    request_id: String,
    #[serde(rename = "eventID")]
    event_id: String,
    read_only: bool,
    event_type: &'static str,
    management_event: bool,
    recipient_account_id: &'a str,
    event_category: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_details: Option<TlsDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_credential_from_console: Option<&'static str>,
}

/// One call to render: who, what, when (seconds since the epoch), where, and how.
pub(crate) struct Call<'a> {
    pub(crate) p: &'a Principal,
    pub(crate) api: &'a Api,
    pub(crate) secs: i64,
    pub(crate) region: usize,
    pub(crate) refused: bool,
    pub(crate) ip: &'a str,
    pub(crate) agent: &'a str,
    /// Distinguishes the credentials of an anomaly from the principal's own.
    pub(crate) key_salt: u64,
}

fn resource_id(rng: &mut Rng, prefix: &str) -> String {
    format!("{prefix}-0{}", rng.hex(16))
}

/// Plausible `requestParameters` and `responseElements` for an API.
fn parameters(rng: &mut Rng, api: &Api, p: &Principal, region: &str) -> (Value, Value) {
    let acct = ACCOUNTS[p.account];
    match api.name {
        "DescribeInstances" => (
            json!({"instancesSet": {}, "filterSet": {"items": [{"name": "instance-state-name", "valueSet": {"items": [{"value": "running"}]}}]}}),
            Value::Null,
        ),
        "DescribeVolumes" => (json!({"volumeSet": {}, "filterSet": {}}), Value::Null),
        "DescribeSnapshots" => (
            json!({"snapshotSet": {}, "ownersSet": {"items": [{"owner": "self"}]}, "filterSet": {}}),
            Value::Null,
        ),
        "DescribeSecurityGroups" => (
            json!({"securityGroupSet": {}, "securityGroupIdSet": {}, "filterSet": {}}),
            Value::Null,
        ),
        "DescribeSubnets" => (json!({"subnetSet": {}, "filterSet": {}}), Value::Null),
        "ListBuckets" => (json!({"Host": "s3.amazonaws.com"}), Value::Null),
        "GetBucketLocation" | "GetBucketPolicy" => {
            let bucket = format!("{acct}-{}-data-{}", REGIONS[p.home_region], p.index % 7);
            let key = if api.name == "GetBucketLocation" {
                "location"
            } else {
                "policy"
            };
            (
                json!({"bucketName": bucket, "Host": format!("{bucket}.s3.{region}.amazonaws.com"), key: ""}),
                Value::Null,
            )
        }
        "DescribeAlarms" => (json!({"maxRecords": 100}), Value::Null),
        "DescribeLogGroups" => (json!({"limit": 50}), Value::Null),
        "DescribeTable" => (
            json!({"tableName": format!("orders-{}", p.index % 5)}),
            Value::Null,
        ),
        "DescribeKey" => (
            json!({"keyId": format!("alias/app-{}", p.index % 4)}),
            Value::Null,
        ),
        "DescribeAutoScalingGroups" => (json!({"maxRecords": 50}), Value::Null),
        "DescribeServices" => (
            json!({"cluster": "prod", "services": [format!("api-{}", p.index % 6)]}),
            Value::Null,
        ),
        "ListRoles" | "ListUsers" => (json!({"maxItems": 100}), Value::Null),
        "GetAccountAuthorizationDetails" => (
            json!({"filter": ["User", "Role", "Group", "LocalManagedPolicy"]}),
            Value::Null,
        ),
        "ListSecrets" => (json!({"maxResults": 100}), Value::Null),
        "ListKeys" => (json!({"limit": 1000}), Value::Null),
        "CreateTags" | "DeleteTags" => {
            let id = resource_id(rng, "i");
            (
                json!({"resourcesSet": {"items": [{"resourceId": id}]}, "tagSet": {"items": [{"key": "owner", "value": format!("team-{}", p.index % 9)}]}}),
                json!({"requestId": rng.uuid(), "_return": true}),
            )
        }
        "StartInstances" | "TerminateInstances" => {
            let id = resource_id(rng, "i");
            let (now, before) = if api.name == "StartInstances" {
                (
                    json!({"code": 0, "name": "pending"}),
                    json!({"code": 80, "name": "stopped"}),
                )
            } else {
                (
                    json!({"code": 32, "name": "shutting-down"}),
                    json!({"code": 16, "name": "running"}),
                )
            };
            (
                json!({"instancesSet": {"items": [{"instanceId": id}]}}),
                json!({"requestId": rng.uuid(), "instancesSet": {"items": [{"instanceId": id, "currentState": now, "previousState": before}]}}),
            )
        }
        "RunInstances" => {
            let id = resource_id(rng, "i");
            (
                json!({"instancesSet": {"items": [{"imageId": resource_id(rng, "ami"), "minCount": 1, "maxCount": 1}]}, "instanceType": "c5.4xlarge", "blockDeviceMapping": {}, "monitoring": {"enabled": false}, "disableApiTermination": false, "disableApiStop": false, "clientToken": rng.uuid()}),
                json!({"requestId": rng.uuid(), "reservationId": resource_id(rng, "r"), "ownerId": acct, "instancesSet": {"items": [{"instanceId": id, "instanceType": "c5.4xlarge", "instanceState": {"code": 0, "name": "pending"}}]}}),
            )
        }
        "CreateSnapshot" => {
            let vol = resource_id(rng, "vol");
            (
                json!({"volumeId": vol, "description": "scheduled backup"}),
                json!({"requestId": rng.uuid(), "snapshotId": resource_id(rng, "snap"), "volumeId": vol, "status": "pending", "ownerId": acct, "volumeSize": 8 << (rng.range(0, 5))}),
            )
        }
        "DeleteSnapshot" => (
            json!({"snapshotId": resource_id(rng, "snap")}),
            json!({"requestId": rng.uuid(), "_return": true}),
        ),
        "DeregisterImage" => (
            json!({"imageId": resource_id(rng, "ami")}),
            json!({"requestId": rng.uuid(), "_return": true}),
        ),
        "CreateImage" => (
            json!({"instanceId": resource_id(rng, "i"), "name": format!("golden-{}", rng.hex(8)), "noReboot": true}),
            json!({"requestId": rng.uuid(), "imageId": resource_id(rng, "ami")}),
        ),
        "PutMetricAlarm" => (
            json!({"alarmName": format!("cpu-high-{}", rng.hex(6)), "metricName": "CPUUtilization", "namespace": "AWS/EC2", "statistic": "Average", "period": 300, "evaluationPeriods": 2, "threshold": 80.0, "comparisonOperator": "GreaterThanThreshold"}),
            Value::Null,
        ),
        "UpdateService" => {
            let svc = format!("api-{}", p.index % 6);
            let n = rng.range(2, 12);
            (
                json!({"cluster": "prod", "service": svc, "desiredCount": n}),
                json!({"service": {"serviceName": svc, "clusterArn": format!("arn:aws:ecs:{region}:{acct}:cluster/prod"), "desiredCount": n, "status": "ACTIVE"}}),
            )
        }
        "RegisterTaskDefinition" => {
            let family = format!("api-{}", p.index % 6);
            (
                json!({"family": family, "containerDefinitions": [{"name": family, "image": format!("{acct}.dkr.ecr.{region}.amazonaws.com/{family}:{}", rng.hex(7)), "cpu": 256, "memory": 512}]}),
                json!({"taskDefinition": {"taskDefinitionArn": format!("arn:aws:ecs:{region}:{acct}:task-definition/{family}:{}", rng.range(1, 900)), "family": family}}),
            )
        }
        "PutImage" => {
            let repo = format!("service-{}", p.index % 6);
            let tag = rng.hex(7);
            (
                json!({"repositoryName": repo, "imageTag": tag}),
                json!({"image": {"registryId": acct, "repositoryName": repo, "imageId": {"imageDigest": format!("sha256:{}", rng.hex(64)), "imageTag": tag}}}),
            )
        }
        "SetDesiredCapacity" => (
            json!({"autoScalingGroupName": format!("workers-{}", p.index % 4), "desiredCapacity": rng.range(2, 20), "honorCooldown": false}),
            Value::Null,
        ),
        "SetQueueAttributes" => (
            json!({"queueUrl": format!("https://sqs.{region}.amazonaws.com/{acct}/jobs-{}", p.index % 5), "attributes": {"VisibilityTimeout": "60"}}),
            Value::Null,
        ),
        "UpdateTable" => {
            let table = format!("orders-{}", p.index % 5);
            (
                json!({"tableName": table, "provisionedThroughput": {"readCapacityUnits": rng.range(5, 100), "writeCapacityUnits": rng.range(5, 50)}}),
                json!({"tableDescription": {"tableName": table, "tableStatus": "UPDATING"}}),
            )
        }
        "CreateLogStream" => (
            json!({"logGroupName": format!("/app/service-{}", p.index % 6), "logStreamName": format!("{}/{}", rng.hex(8), rng.hex(32))}),
            Value::Null,
        ),
        _ => (Value::Null, Value::Null),
    }
}

/// Renders one call as a CloudTrail record (JSON bytes).
pub(crate) fn render(rng: &mut Rng, c: &Call) -> Vec<u8> {
    let p = c.p;
    let acct = ACCOUNTS[p.account];
    let region = if is_global(c.api) {
        REGIONS[0]
    } else {
        REGIONS[c.region]
    };
    let hour = c.secs.div_euclid(3600);
    let browser = c.agent.starts_with("Mozilla/");
    let user_identity = match &p.ident {
        Ident::User { name } => UserIdentity {
            kind: "IAMUser",
            principal_id: format!("AIDA{}", p.unique_id),
            arn: p.group_arn.clone(),
            account_id: acct,
            access_key_id: if browser {
                format!(
                    "ASIA{}",
                    id_chars(mix(&[p.index as u64, hour as u64, c.key_salt]), 16)
                )
            } else {
                format!("AKIA{}", id_chars(mix(&[p.index as u64, c.key_salt]), 16))
            },
            user_name: Some(name),
            session_context: browser.then(|| SessionContext {
                session_issuer: None,
                web_id_federation_data: None,
                attributes: Attributes {
                    creation_date: rfc3339(hour * 3_600_000),
                    mfa_authenticated: "true",
                },
            }),
        },
        Ident::Role { role, human } => {
            // Humans: one session per day named after the person; jobs: one per run;
            // automation: a new botocore session every hour.
            let (session, created) = match (&human, &p.behaviour) {
                (Some(person), _) => (
                    format!("{person}@example.com"),
                    c.secs.div_euclid(86_400) * 86_400 + 7 * 3600,
                ),
                (None, Behaviour::Periodic { .. }) => {
                    let day = c.secs.div_euclid(86_400);
                    (format!("{role}-{}", day), day * 86_400)
                }
                _ => (format!("botocore-session-{}", hour * 3600), hour * 3600),
            };
            let session = if c.key_salt != 0 {
                format!("{session}-{}", c.key_salt % 10_000)
            } else {
                session
            };
            UserIdentity {
                kind: "AssumedRole",
                principal_id: format!("AROA{}:{session}", p.unique_id),
                arn: format!("arn:aws:sts::{acct}:assumed-role/{role}/{session}"),
                account_id: acct,
                access_key_id: format!(
                    "ASIA{}",
                    id_chars(mix(&[p.index as u64, created as u64, c.key_salt]), 16)
                ),
                user_name: None,
                session_context: Some(SessionContext {
                    session_issuer: Some(Issuer {
                        kind: "Role",
                        principal_id: format!("AROA{}", p.unique_id),
                        arn: &p.group_arn,
                        account_id: acct,
                        user_name: role,
                    }),
                    web_id_federation_data: Some(json!({})),
                    attributes: Attributes {
                        creation_date: rfc3339(created * 1000),
                        mfa_authenticated: if human.is_some() { "true" } else { "false" },
                    },
                }),
            }
        }
        Ident::Root => UserIdentity {
            kind: "Root",
            principal_id: acct.to_string(),
            arn: p.group_arn.clone(),
            account_id: acct,
            access_key_id: format!("ASIA{}", id_chars(mix(&[p.index as u64, hour as u64]), 16)),
            user_name: None,
            session_context: Some(SessionContext {
                session_issuer: None,
                web_id_federation_data: None,
                attributes: Attributes {
                    creation_date: rfc3339(hour * 3_600_000),
                    mfa_authenticated: "true",
                },
            }),
        },
    };
    let (request_parameters, response_elements) = parameters(rng, c.api, p, region);
    let (error_code, error_message, response_elements) = if c.refused {
        let (code, msg) = refusal(c.api, &user_identity.arn);
        (Some(code), Some(msg), Value::Null)
    } else {
        (None, None, response_elements)
    };
    let request_id = if c.api.source == S3 {
        id_chars(rng.next_u64(), 16)
    } else {
        rng.uuid()
    };
    let host = if is_global(c.api) || c.api.source == S3 && c.api.name == "ListBuckets" {
        c.api.source.to_string()
    } else {
        format!("{}.{region}.amazonaws.com", action_prefix(c.api.source))
    };
    let rec = Record {
        event_version: if c.api.source == S3 { "1.09" } else { "1.10" },
        user_identity,
        event_time: rfc3339(c.secs * 1000),
        event_source: c.api.source,
        event_name: c.api.name,
        aws_region: region,
        source_ip_address: c.ip,
        user_agent: c.agent,
        error_code,
        error_message,
        request_parameters,
        response_elements,
        request_id,
        event_id: rng.uuid(),
        read_only: c.api.read_only,
        event_type: "AwsApiCall",
        management_event: true,
        recipient_account_id: acct,
        event_category: "Management",
        tls_details: Some(TlsDetails {
            tls_version: "TLSv1.3",
            cipher_suite: "TLS_AES_128_GCM_SHA256",
            client_provided_host_header: host,
        }),
        session_credential_from_console: browser.then_some("true"),
    };
    // Serialising plain structs and serde_json values into a Vec cannot fail.
    serde_json::to_vec(&rec).unwrap_or_default()
}
