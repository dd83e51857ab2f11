//! The API calls of the simulated traffic: reads, writes of humans, automation and daily
//! jobs, the calls of bursts and error storms, and how a refusal reads.

/// One API: its service endpoint, name and whether it only reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Api {
    pub(crate) source: &'static str,
    pub(crate) name: &'static str,
    pub(crate) read_only: bool,
}

const fn api(source: &'static str, name: &'static str, read_only: bool) -> Api {
    Api {
        source,
        name,
        read_only,
    }
}

const EC2: &str = "ec2.amazonaws.com";
pub(crate) const S3: &str = "s3.amazonaws.com";
const IAM: &str = "iam.amazonaws.com";
const STS: &str = "sts.amazonaws.com";

pub(crate) const READS: &[Api] = &[
    api(EC2, "DescribeInstances", true),
    api(EC2, "DescribeVolumes", true),
    api(EC2, "DescribeSecurityGroups", true),
    api(EC2, "DescribeSubnets", true),
    api(S3, "ListBuckets", true),
    api(S3, "GetBucketLocation", true),
    api("lambda.amazonaws.com", "ListFunctions20150331", true),
    api("monitoring.amazonaws.com", "DescribeAlarms", true),
    api("logs.amazonaws.com", "DescribeLogGroups", true),
    api("dynamodb.amazonaws.com", "DescribeTable", true),
    api("rds.amazonaws.com", "DescribeDBInstances", true),
    api("kms.amazonaws.com", "DescribeKey", true),
    api(
        "autoscaling.amazonaws.com",
        "DescribeAutoScalingGroups",
        true,
    ),
    api("ecs.amazonaws.com", "DescribeServices", true),
    api(IAM, "ListRoles", true),
    api(IAM, "GetUser", true),
    api(STS, "GetCallerIdentity", true),
];

pub(crate) const HUMAN_WRITES: &[Api] = &[
    api(EC2, "CreateTags", false),
    api(EC2, "DeleteTags", false),
    api(EC2, "StartInstances", false),
    api(EC2, "CreateSnapshot", false),
    api("monitoring.amazonaws.com", "PutMetricAlarm", false),
    api("ecs.amazonaws.com", "UpdateService", false),
    api("autoscaling.amazonaws.com", "SetDesiredCapacity", false),
    api("sqs.amazonaws.com", "SetQueueAttributes", false),
    api("dynamodb.amazonaws.com", "UpdateTable", false),
];

/// Write sets of automation principals (each picks one).
pub(crate) const AUTOMATION_WRITES: &[&[Api]] = &[
    &[
        api("logs.amazonaws.com", "CreateLogStream", false),
        api(EC2, "CreateTags", false),
    ],
    &[
        api("ecs.amazonaws.com", "UpdateService", false),
        api("ecs.amazonaws.com", "RegisterTaskDefinition", false),
        api("ecr.amazonaws.com", "PutImage", false),
    ],
    &[
        api("autoscaling.amazonaws.com", "SetDesiredCapacity", false),
        api(EC2, "CreateTags", false),
        api(EC2, "DeleteTags", false),
    ],
    &[
        api("sqs.amazonaws.com", "SetQueueAttributes", false),
        api("dynamodb.amazonaws.com", "UpdateTable", false),
        api("logs.amazonaws.com", "CreateLogStream", false),
    ],
];

/// Daily jobs: role name and the writes of a run.
pub(crate) const JOBS: &[(&str, &[Api])] = &[
    (
        "nightly-ebs-backup",
        &[
            api(EC2, "CreateSnapshot", false),
            api(EC2, "CreateTags", false),
            api(EC2, "DeleteSnapshot", false),
        ],
    ),
    (
        "ami-cleanup",
        &[
            api(EC2, "DeregisterImage", false),
            api(EC2, "DeleteSnapshot", false),
        ],
    ),
    (
        "daily-image-bake",
        &[
            api(EC2, "CreateImage", false),
            api(EC2, "CreateTags", false),
        ],
    ),
    (
        "ecs-nightly-redeploy",
        &[
            api("ecs.amazonaws.com", "RegisterTaskDefinition", false),
            api("ecs.amazonaws.com", "UpdateService", false),
        ],
    ),
];

/// Write sets of bursts (each burst picks one).
pub(crate) const BURST_WRITES: &[&[Api]] = &[
    &[
        api(EC2, "RunInstances", false),
        api(EC2, "CreateTags", false),
    ],
    &[api(EC2, "TerminateInstances", false)],
    &[
        api(EC2, "DeleteSnapshot", false),
        api(EC2, "DeregisterImage", false),
    ],
    &[
        api(EC2, "CreateSnapshot", false),
        api(EC2, "CreateTags", false),
    ],
];

/// Calls an error storm is made of (enumeration with a stolen key, mostly reads).
pub(crate) const STORM_CALLS: &[Api] = &[
    api(EC2, "DescribeInstances", true),
    api(EC2, "DescribeSnapshots", true),
    api(EC2, "RunInstances", false),
    api(S3, "ListBuckets", true),
    api(S3, "GetBucketPolicy", true),
    api(IAM, "ListUsers", true),
    api(IAM, "ListRoles", true),
    api(IAM, "GetAccountAuthorizationDetails", true),
    api("secretsmanager.amazonaws.com", "ListSecrets", true),
    api("lambda.amazonaws.com", "ListFunctions20150331", true),
    api("kms.amazonaws.com", "ListKeys", true),
];

pub(crate) fn is_global(a: &Api) -> bool {
    a.source == IAM || a.source == STS
}

/// The service prefix in IAM actions (`ec2:DescribeInstances`).
pub(crate) fn action_prefix(source: &str) -> &str {
    source.split('.').next().unwrap_or(source)
}

pub(crate) fn refusal(a: &Api, arn: &str) -> (&'static str, String) {
    let svc = action_prefix(a.source);
    let name = a.name.trim_end_matches("20150331");
    if a.source == EC2 {
        (
            "Client.UnauthorizedOperation",
            format!(
                "You are not authorized to perform this operation. User: {arn} is not authorized to perform: ec2:{name} because no identity-based policy allows the ec2:{name} action"
            ),
        )
    } else {
        (
            "AccessDenied",
            format!(
                "User: {arn} is not authorized to perform: {svc}:{name} because no identity-based policy allows the {svc}:{name} action"
            ),
        )
    }
}
