//! What every AWS caller shares: the SDK configuration clients are built from, the start-up
//! check of region and credentials, one reading and one wording of every AWS error (the AWS
//! CLI's: `An error occurred (Code) when calling the Op operation: message`, plus what to do
//! about it), how an error is classified (retry, stop, or drop the request), how long to wait
//! before the next attempt, and the stop signal every such wait watches. Classification and
//! backoff are pure functions of the error code and HTTP status the SDK extracted, so they are
//! tested without AWS.

use super::time::Millis;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The instance metadata service (IMDS) is asked for credentials and the region only when
/// nothing else gave them. Off EC2 nothing answers there: a short bound keeps that from
/// delaying start-up (the SDK's own default is four attempts of up to 10 s each); on EC2 it
/// answers in milliseconds.
const IMDS_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const IMDS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
const IMDS_OPERATION_TIMEOUT: Duration = Duration::from_secs(2);
const IMDS_ATTEMPTS: u32 = 2;

/// How long the start-up check waits for the credentials chain (SSO, `credential_process`
/// and the instance metadata service may all be asked).
pub const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(6);

/// The SDK configuration every AWS client of trailwatch is built from: region, credentials and
/// endpoint from the standard AWS chain (`AWS_REGION`, profiles, `AWS_ENDPOINT_URL`, …), with
/// `region` overriding the chain's, timeouts so that no call hangs (10 s to connect, 30 s per
/// attempt), and the instance metadata service asked with a short bound (see
/// [`check_setup`] for the start-up check).
pub async fn sdk_config(region: Option<String>) -> aws_config::SdkConfig {
    use aws_config::meta::region::RegionProviderChain;
    let imds = aws_config::imds::Client::builder()
        .connect_timeout(IMDS_CONNECT_TIMEOUT)
        .read_timeout(IMDS_ATTEMPT_TIMEOUT)
        .operation_attempt_timeout(IMDS_ATTEMPT_TIMEOUT)
        .operation_timeout(IMDS_OPERATION_TIMEOUT)
        .max_attempts(IMDS_ATTEMPTS)
        .build();
    // The standard region chain (environment, profile, instance metadata), with the bounded
    // metadata client.
    let region = match region {
        Some(r) => Some(aws_config::Region::new(r)),
        None => {
            RegionProviderChain::first_try(
                aws_config::environment::EnvironmentVariableRegionProvider::new(),
            )
            .or_else(aws_config::profile::region::ProfileFileRegionProvider::new())
            .or_else(
                aws_config::imds::region::ImdsRegionProvider::builder()
                    .imds_client(imds.clone())
                    .build(),
            )
            .region()
            .await
        }
    };
    let credentials = aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
        .region(region.clone())
        .imds_client(imds)
        .build()
        .await;
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_secs(30))
                .connect_timeout(Duration::from_secs(10))
                .build(),
        )
        .region(region)
        .credentials_provider(credentials)
        .load()
        .await
}

/// What the start-up check found missing: no AWS call can succeed without it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error(
        "no AWS region: set AWS_REGION (for example AWS_REGION=us-east-1), or `region` in the \
         AWS profile (AWS_PROFILE)"
    )]
    NoRegion,
    #[error(
        "Unable to locate AWS credentials{note}: none in the environment, in profile `{profile}` \
         of the AWS config files, from a web identity token, or from container or instance \
         metadata. {CREDENTIALS_HINT}"
    )]
    NoCredentials { profile: String, note: String },
    #[error("AWS credentials could not be loaded: {detail}. {CREDENTIALS_HINT}")]
    Credentials { detail: String },
    #[error(
        "AWS credentials could not be loaded within {secs} s (instance metadata, SSO or a \
         credential_process did not answer). {CREDENTIALS_HINT}"
    )]
    CredentialsTimedOut { secs: u64 },
}

const CREDENTIALS_HINT: &str = "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE \
    (aws configure, aws sso login), or give this host an instance or task role; check with: aws \
    sts get-caller-identity";

/// The start-up check of every AWS command: a region is set and the credentials chain gives
/// credentials, within [`CREDENTIALS_TIMEOUT`]. (Whether AWS accepts them is for the first
/// call to say.)
pub async fn check_setup(sdk: &aws_config::SdkConfig) -> Result<(), SetupError> {
    if sdk.region().is_none() {
        return Err(SetupError::NoRegion);
    }
    let Some(provider) = sdk.credentials_provider() else {
        return Err(no_credentials());
    };
    match tokio::time::timeout(CREDENTIALS_TIMEOUT, provider.provide_credentials()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(setup_credentials_error(&e)),
        Err(_) => Err(SetupError::CredentialsTimedOut {
            secs: CREDENTIALS_TIMEOUT.as_secs(),
        }),
    }
}

fn setup_credentials_error(e: &CredentialsError) -> SetupError {
    match e {
        CredentialsError::CredentialsNotLoaded(_) => no_credentials(),
        CredentialsError::ProviderTimedOut(_) => SetupError::CredentialsTimedOut {
            secs: CREDENTIALS_TIMEOUT.as_secs(),
        },
        // Its own message ("an error occurred while loading credentials") would repeat ours.
        _ => SetupError::Credentials {
            detail: std::error::Error::source(e)
                .map_or_else(|| chain_text(e), chain_text)
                .trim_end_matches('.')
                .to_string(),
        },
    }
}

fn no_credentials() -> SetupError {
    let set_but_empty: Vec<&str> = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
        .into_iter()
        .filter(|v| std::env::var_os(v).is_some_and(|x| x.is_empty()))
        .collect();
    let note = match set_but_empty.as_slice() {
        [] => String::new(),
        [one] => format!(" ({one} is set, but empty)"),
        _ => format!(" ({} are set, but empty)", set_but_empty.join(" and ")),
    };
    SetupError::NoCredentials {
        profile: std::env::var("AWS_PROFILE")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "default".into()),
        note,
    }
}

/// The messages of `e` and of its sources joined by `: `, each said once and on one line,
/// without the SDK's generic wrappers (`dispatch failure`, `other`, `service error`).
pub fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    const GENERIC: &[&str] = &[
        "",
        "dispatch failure",
        "service error",
        "response error",
        "failed to construct request",
        "request has timed out",
        "other",
        "io error",
        "timeout",
        "user error",
    ];
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let text = one_line(&err.to_string());
        let text = text.trim();
        if !GENERIC.contains(&text) && !parts.iter().any(|p| p.contains(text)) {
            parts.push(text.to_string());
        }
        cur = err.source();
    }
    if parts.is_empty() {
        "no detail given".into()
    } else {
        parts.join(": ")
    }
}

/// `message; more` — what happens next after an error message (`…; retrying in 2 s`), without
/// a full stop before the semicolon.
pub fn followed_by(message: impl fmt::Display, more: &str) -> String {
    let m = message.to_string();
    format!("{}; {more}", m.strip_suffix('.').unwrap_or(&m))
}

/// `s` with line breaks and other control characters as spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Request ids in error messages (`-v`); they are always in the debug log.
static REQUEST_IDS: AtomicBool = AtomicBool::new(false);

/// Shows (or not) the AWS request id in every [`AwsError`] message from now on.
pub fn show_request_ids(on: bool) {
    REQUEST_IDS.store(on, Ordering::Relaxed);
}

/// An AWS call that failed, read once from the SDK error: what was called on what, what AWS
/// (or the network, or the credentials chain) said, and what to do about it. Every client of
/// trailwatch reports its errors through this, as one line:
///
/// `log group typo: An error occurred (ResourceNotFoundException) when calling the
/// FilterLogEvents operation: The specified log group does not exist. Check the name and the
/// region (us-east-1): aws logs describe-log-groups --region us-east-1
/// --log-group-name-prefix typo`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    /// The IAM action of the call, e.g. `logs:FilterLogEvents`.
    pub action: &'static str,
    /// What the call was about: (kind, name), e.g. (`log group`, `cloudtrail-logs`).
    pub resource: Option<(&'static str, String)>,
    /// The region the client called.
    pub region: Option<String>,
    pub kind: AwsErrorKind,
    pub class: AwsErrorClass,
    /// AWS's id of the request (shown with `-v`, always in the debug log).
    pub request_id: Option<String>,
}

/// What went wrong with an AWS call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// AWS answered with an error.
    Service {
        code: Option<String>,
        message: Option<String>,
        status: Option<u16>,
    },
    /// The call could not be signed: the credentials chain failed.
    Credentials(String),
    /// No answer: network, DNS, TLS, a proxy, a timeout.
    NoAnswer(String),
    /// The request could not be built.
    Request(String),
}

impl AwsError {
    /// Reads an SDK error of the call `action` (`service:Operation`, as IAM names it).
    pub fn from_sdk<E>(err: &SdkError<E, HttpResponse>, action: &'static str) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let request_id = err
            .meta()
            .extra("aws_request_id")
            .map(str::to_string)
            .or_else(|| {
                let h = err.raw_response()?.headers();
                h.get("x-amzn-requestid")
                    .or_else(|| h.get("x-amz-request-id"))
                    .map(str::to_string)
            });
        let kind = match err {
            SdkError::ServiceError(_) | SdkError::ResponseError(_) => AwsErrorKind::Service {
                code: err.code().map(str::to_string),
                message: err.message().map(str::to_string).or_else(|| match err {
                    SdkError::ResponseError(_) => Some(chain_text(err)),
                    _ => None,
                }),
                status,
            },
            SdkError::ConstructionFailure(_) => AwsErrorKind::Request(chain_text(err)),
            _ => match credentials_error(err) {
                Some(c) => AwsErrorKind::Credentials(match c {
                    CredentialsError::CredentialsNotLoaded(_) => {
                        "no credentials found in the standard chain".into()
                    }
                    c => chain_text(c),
                }),
                None => AwsErrorKind::NoAnswer(chain_text(err)),
            },
        };
        let class = match &kind {
            AwsErrorKind::Service { code, status, .. } => classify(code.as_deref(), *status),
            AwsErrorKind::Credentials(_) => AwsErrorClass::Denied,
            AwsErrorKind::NoAnswer(_) => AwsErrorClass::Transient,
            AwsErrorKind::Request(_) => AwsErrorClass::Invalid,
        };
        tracing::debug!(
            action,
            request_id = request_id.as_deref().unwrap_or("-"),
            "AWS error: {}",
            chain_text(err)
        );
        AwsError {
            action,
            resource: None,
            region: None,
            kind,
            class,
            request_id,
        }
    }

    /// What the call was about: `on("log group", "cloudtrail-logs")`.
    pub fn on(mut self, kind: &'static str, name: impl Into<String>) -> Self {
        self.resource = Some((kind, name.into()));
        self
    }

    /// The region the client called (for the hint).
    pub fn in_region(mut self, region: Option<&str>) -> Self {
        self.region = region.map(str::to_string);
        self
    }

    /// The IAM action that allows the call: its action, except where IAM names it otherwise
    /// (`ListObjectsV2` is allowed by `s3:ListBucket`).
    pub fn iam_action(&self) -> &'static str {
        match self.action {
            "s3:ListObjectsV2" => "s3:ListBucket",
            a => a,
        }
    }

    /// The operation, e.g. `FilterLogEvents`.
    pub fn operation(&self) -> &'static str {
        self.action
            .split_once(':')
            .map_or(self.action, |(_, op)| op)
    }

    /// AWS's error code, if AWS answered.
    pub fn code(&self) -> Option<&str> {
        match &self.kind {
            AwsErrorKind::Service { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status, if AWS answered.
    pub fn status(&self) -> Option<u16> {
        match &self.kind {
            AwsErrorKind::Service { status, .. } => *status,
            _ => None,
        }
    }

    /// Did AWS answer at all? (Throttling and 5xx are answers; a timeout is not.)
    pub fn answered(&self) -> bool {
        matches!(self.kind, AwsErrorKind::Service { .. })
    }

    /// What to do about it, when there is something a person can do.
    pub fn hint(&self) -> Option<String> {
        let code = match &self.kind {
            AwsErrorKind::Credentials(_) => return Some(CREDENTIALS_HINT.into()),
            AwsErrorKind::NoAnswer(_) => {
                return Some(
                    "Check the network, proxy settings (HTTPS_PROXY) and AWS_ENDPOINT_URL.".into(),
                );
            }
            AwsErrorKind::Request(_) => return None,
            AwsErrorKind::Service { code, .. } => code.as_deref().unwrap_or(""),
        };
        let region = self.region.as_deref();
        let name = self.resource.as_ref().map(|(_, n)| n.as_str());
        let in_region = region.map_or(String::new(), |r| format!(" --region {r}"));
        Some(match code {
            "ResourceNotFoundException" if self.action.starts_with("logs:") => {
                let name = name.unwrap_or("NAME");
                format!(
                    "Check the name and the region ({}): aws logs describe-log-groups{in_region} \
                     --log-group-name-prefix {name}",
                    region.unwrap_or("AWS_REGION")
                )
            }
            "NotFound" if self.action.starts_with("sns:") => {
                let topic = name
                    .and_then(|arn| arn.rsplit(':').next())
                    .unwrap_or("NAME");
                format!(
                    "Check the topic ARN and its region (aws sns list-topics{in_region}), or \
                     create the topic: trailwatch topic create {topic}"
                )
            }
            "UnrecognizedClientException" | "InvalidClientTokenId" => {
                "The access key ID is not known to AWS: check AWS_ACCESS_KEY_ID or the profile's \
                 keys (aws sts get-caller-identity)."
                    .into()
            }
            "SignatureDoesNotMatch" | "InvalidSignatureException" | "IncompleteSignature" => {
                "The secret access key does not match the access key ID: check \
                 AWS_SECRET_ACCESS_KEY or the profile's keys."
                    .into()
            }
            "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" => {
                "The session credentials have expired: get new ones (aws sso login, or fresh \
                 temporary credentials)."
                    .into()
            }
            "AccessDenied" if self.action.starts_with("s3:") => format!(
                "Allow {} to this identity{}, and kms:Decrypt on the trail's key if its files \
                 are encrypted with SSE-KMS (see docs/operations.md, \"Backtest straight from \
                 S3\").",
                self.iam_action(),
                self.resource
                    .as_ref()
                    .map_or(String::new(), |(k, n)| format!(" on {k} {n}"))
            ),
            "AccessDenied" | "AccessDeniedException" | "AuthorizationError" => format!(
                "Allow {} to this identity{} (see docs/iam-policy.json).",
                self.iam_action(),
                self.resource
                    .as_ref()
                    .map_or(String::new(), |(k, n)| format!(" on {k} {n}"))
            ),
            "NoSuchBucket" => format!(
                "Check the bucket name (aws s3 ls s3://{}/); a trail's bucket is in aws \
                 cloudtrail describe-trails.",
                name.unwrap_or("BUCKET")
            ),
            "NoSuchKey" => "The object was deleted or moved after it was listed.".into(),
            "InvalidObjectState" => {
                "The object is archived (an S3 Glacier storage class): restore it first (aws \
                 s3api restore-object), or leave its days out with --since/--until."
                    .into()
            }
            "PermanentRedirect" | "AuthorizationHeaderMalformed"
                if self.action.starts_with("s3:") =>
            {
                format!(
                    "The bucket is in another region: aws s3api get-bucket-location --bucket {}, \
                     then set AWS_REGION to it.",
                    name.unwrap_or("BUCKET")
                )
            }
            "KMSAccessDenied" | "KMSDisabled" | "KMSNotFound" | "KMSInvalidState" => {
                "The topic's KMS key is unusable or refuses this identity: check that the key is \
                 enabled and allow kms:GenerateDataKey and kms:Decrypt on it."
                    .into()
            }
            _ => return None,
        })
    }
}

/// The credentials error behind a failed call, if that is why it failed.
fn credentials_error<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e CredentialsError> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(c) = err.downcast_ref::<CredentialsError>() {
            return Some(c);
        }
        cur = err.source();
    }
    None
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((kind, name)) = &self.resource {
            write!(f, "{kind} {name}: ")?;
        }
        let op = self.operation();
        let detail = match &self.kind {
            AwsErrorKind::Service {
                code,
                message,
                status,
            } => {
                let code = match (code, status) {
                    (Some(c), _) => c.clone(),
                    (None, Some(s)) => format!("HTTP {s}"),
                    (None, None) => "unknown".into(),
                };
                write!(
                    f,
                    "An error occurred ({code}) when calling the {op} operation"
                )?;
                message
                    .as_deref()
                    .map(one_line)
                    .filter(|m| !m.trim().is_empty())
            }
            AwsErrorKind::Credentials(d) => {
                write!(f, "no AWS credentials to call the {op} operation")?;
                Some(d.clone())
            }
            AwsErrorKind::NoAnswer(d) => {
                write!(f, "no answer from AWS when calling the {op} operation")?;
                Some(d.clone())
            }
            AwsErrorKind::Request(d) => {
                write!(f, "the {op} request could not be made")?;
                Some(d.clone())
            }
        };
        let hint = self.hint();
        if let Some(d) = detail {
            let d = d.trim();
            write!(f, ": {d}")?;
            if hint.is_some() && !d.ends_with(['.', '!', '?']) {
                f.write_str(".")?;
            }
        } else if hint.is_some() {
            f.write_str(".")?;
        }
        if let Some(h) = hint {
            write!(f, " {h}")?;
        }
        if REQUEST_IDS.load(Ordering::Relaxed)
            && let Some(id) = &self.request_id
        {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

impl std::error::Error for AwsError {}

/// Asked to stop (SIGINT/SIGTERM). Every wait of an AWS caller — a backoff, publish pacing, a
/// request in flight — ends when it is set, so a stop is never held up by AWS. Clones share
/// the signal.
#[derive(Debug, Clone)]
pub struct Stop {
    tx: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            tx: Arc::new(tokio::sync::watch::channel(false).0),
        }
    }
}

impl Stop {
    /// A signal not yet given.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Gives the signal (once is enough; again does nothing).
    pub fn set(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_set(&self) -> bool {
        *self.tx.borrow()
    }

    /// Returns once the signal is given (at once if it already was).
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives as long as `self`: the wait cannot fail.
        let _ = rx.wait_for(|stop| *stop).await;
    }

    /// Sleeps for `d`, or less when the signal is given; returns whether it was.
    pub async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => self.is_set(),
            _ = self.wait() => true,
        }
    }
}

/// What an AWS error means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorClass {
    /// Throttling, a 5xx, a timeout or no response at all: the same request may succeed later.
    Transient,
    /// Missing or refused permission, expired or unknown credentials, a resource that does
    /// not exist: retrying does not help until someone fixes it.
    Denied,
    /// This request itself is invalid (a parameter, a size): it will never be accepted.
    Invalid,
}

const TRANSIENT: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "LimitExceededException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalError",
    "InternalFailure",
    "KMSThrottling",
    "KMSThrottlingException",
    "RequestTimeout",
    "RequestTimeoutException",
    // Kinesis: a shard's read (5 calls, 2 MB per second) or the stream's quota
    "ProvisionedThroughputExceededException",
    // S3: slow down (503)
    "SlowDown",
];

const DENIED: &[&str] = &[
    "NotFound",
    "ResourceNotFoundException",
    "AuthorizationError",
    "AccessDenied",
    "AccessDeniedException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
    "KMSDisabled",
    "KMSNotFound",
    "KMSAccessDenied",
    "KMSInvalidState",
    "EndpointDisabled",
    "InvalidSecurity",
    "InvalidSignatureException",
    "IncompleteSignature",
    "RequestExpired",
    "NoSuchBucket",
    "NoSuchKey",
    "InvalidObjectState",
    "PermanentRedirect",
    "AuthorizationHeaderMalformed",
];

/// Classifies an AWS error by its error code and HTTP status; either may be absent (a
/// timeout or a refused connection has neither).
pub fn classify(code: Option<&str>, status: Option<u16>) -> AwsErrorClass {
    match code {
        Some(c) if TRANSIENT.contains(&c) => AwsErrorClass::Transient,
        Some(c) if DENIED.contains(&c) => AwsErrorClass::Denied,
        Some(c) if c.starts_with("InvalidParameter") => AwsErrorClass::Invalid,
        _ => match status {
            Some(s) if s == 429 || s >= 500 => AwsErrorClass::Transient,
            Some(400) | Some(413) => AwsErrorClass::Invalid,
            // A redirect (S3: the bucket is in another region) is not followed by retrying.
            Some(s) if (300..400).contains(&s) => AwsErrorClass::Denied,
            Some(s) if (400..500).contains(&s) => AwsErrorClass::Denied,
            // No response at all (network trouble), or one no AWS API gives for an error.
            _ => AwsErrorClass::Transient,
        },
    }
}

/// Exponential backoff over consecutive failures: the n-th failure in a row waits
/// `base · 2^(n-1)`, at most `cap`; a success resets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Records a failure and returns how long to wait before the next attempt.
    pub fn failed(&mut self, base: Millis, cap: Millis) -> Millis {
        self.failures = self.failures.saturating_add(1);
        delay(base, cap, self.failures)
    }

    /// Records a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// The wait after the `failures`-th failure in a row: `base · 2^(failures-1)`, at most `cap`.
pub fn delay(base: Millis, cap: Millis, failures: u32) -> Millis {
    let exp = failures.clamp(1, 40) - 1;
    base.checked_mul(1 << exp).map_or(cap, |d| d.min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_by_code_then_status() {
        assert_eq!(
            classify(Some("ThrottlingException"), Some(400)),
            AwsErrorClass::Transient
        );
        assert_eq!(
            classify(Some("Throttling"), Some(400)),
            AwsErrorClass::Transient
        );
        assert_eq!(
            classify(Some("AccessDeniedException"), Some(400)),
            AwsErrorClass::Denied
        );
        assert_eq!(
            classify(Some("ResourceNotFoundException"), Some(400)),
            AwsErrorClass::Denied
        );
        assert_eq!(
            classify(Some("InvalidParameterValue"), Some(400)),
            AwsErrorClass::Invalid
        );
        assert_eq!(
            classify(Some("Whatever"), Some(503)),
            AwsErrorClass::Transient
        );
        assert_eq!(
            classify(Some("Whatever"), Some(429)),
            AwsErrorClass::Transient
        );
        assert_eq!(classify(Some("Whatever"), Some(403)), AwsErrorClass::Denied);
        assert_eq!(
            classify(Some("Whatever"), Some(413)),
            AwsErrorClass::Invalid
        );
        assert_eq!(classify(None, None), AwsErrorClass::Transient);
        assert_eq!(classify(None, Some(500)), AwsErrorClass::Transient);
    }

    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn service_error(
        status: u16,
        code: &str,
        message: &str,
    ) -> SdkError<ErrorMetadata, HttpResponse> {
        let meta = ErrorMetadata::builder()
            .code(code)
            .message(message)
            .custom("aws_request_id", "req-1234")
            .build();
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::from(""));
        SdkError::service_error(meta, raw)
    }

    #[test]
    fn one_line_in_the_aws_cli_wording_with_what_to_do() {
        let e = AwsError::from_sdk(
            &service_error(
                400,
                "ResourceNotFoundException",
                "The specified log group does not exist.",
            ),
            "logs:FilterLogEvents",
        )
        .on("log group", "typo-group")
        .in_region(Some("us-east-1"));
        assert_eq!(e.class, AwsErrorClass::Denied);
        assert_eq!(e.code(), Some("ResourceNotFoundException"));
        assert_eq!(e.request_id.as_deref(), Some("req-1234"));
        let text = e.to_string();
        assert_eq!(
            text,
            "log group typo-group: An error occurred (ResourceNotFoundException) when calling the \
             FilterLogEvents operation: The specified log group does not exist. Check the name \
             and the region (us-east-1): aws logs describe-log-groups --region us-east-1 \
             --log-group-name-prefix typo-group"
        );
        // The request id only on demand (-v); it is in the debug log anyway.
        show_request_ids(true);
        let verbose = e.to_string();
        show_request_ids(false);
        assert!(verbose.ends_with(" (request id req-1234)"), "{verbose}");

        let denied = AwsError::from_sdk(
            &service_error(
                403,
                "AuthorizationError",
                "User is not authorized\nto publish",
            ),
            "sns:Publish",
        )
        .on("topic", "arn:aws:sns:us-east-1:123456789012:alerts");
        assert_eq!(
            denied.to_string(),
            "topic arn:aws:sns:us-east-1:123456789012:alerts: An error occurred \
             (AuthorizationError) when calling the Publish operation: User is not authorized to \
             publish. Allow sns:Publish to this identity on topic \
             arn:aws:sns:us-east-1:123456789012:alerts (see docs/iam-policy.json)."
        );
        // No hint for what retrying fixes; no message at all is fine too.
        let throttled = AwsError::from_sdk(&service_error(400, "Throttling", ""), "sns:Publish");
        assert_eq!(throttled.class, AwsErrorClass::Transient);
        assert_eq!(
            throttled.to_string(),
            "An error occurred (Throttling) when calling the Publish operation"
        );
    }

    #[test]
    fn a_call_without_credentials_or_without_an_answer() {
        let creds =
            SdkError::<ErrorMetadata, HttpResponse>::dispatch_failure(ConnectorError::other(
                Box::new(CredentialsError::not_loaded(
                    "no providers in chain provided credentials",
                )),
                None,
            ));
        let e = AwsError::from_sdk(&creds, "logs:FilterLogEvents").on("log group", "g");
        assert_eq!(
            e.class,
            AwsErrorClass::Denied,
            "not retried as if transient"
        );
        assert!(matches!(e.kind, AwsErrorKind::Credentials(_)));
        let text = e.to_string();
        assert!(
            text.starts_with(
                "log group g: no AWS credentials to call the FilterLogEvents operation: no \
                 credentials found in the standard chain. Set AWS_ACCESS_KEY_ID"
            ),
            "{text}"
        );
        let io = SdkError::<ErrorMetadata, HttpResponse>::dispatch_failure(ConnectorError::io(
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into(),
        ));
        let e = AwsError::from_sdk(&io, "sns:Publish");
        assert_eq!(e.class, AwsErrorClass::Transient);
        assert!(!e.answered());
        let text = e.to_string();
        assert!(
            text.starts_with(
                "no answer from AWS when calling the Publish operation: connection refused."
            ),
            "{text}"
        );
        assert!(!text.contains("DispatchFailure"), "{text}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_stop_signal_ends_waits() {
        let stop = Stop::new();
        assert!(!stop.sleep(Duration::from_millis(10)).await);
        let s = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            s.set();
        });
        let t = std::time::Instant::now();
        assert!(stop.sleep(Duration::from_secs(300)).await);
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(stop.is_set());
        // Given already: every later wait returns at once.
        stop.wait().await;
        assert!(stop.sleep(Duration::from_secs(300)).await);
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::default();
        let waits: Vec<Millis> = (0..8).map(|_| b.failed(500, 32_000)).collect();
        assert_eq!(
            waits,
            [500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 32_000]
        );
        assert_eq!(b.failures(), 8);
        b.reset();
        assert_eq!(b.failed(5_000, 300_000), 5_000);
        for _ in 0..100 {
            assert!(b.failed(5_000, 300_000) <= 300_000);
        }
        assert_eq!(delay(1, Millis::MAX, 200), 1 << 39);
    }
}
