//! What every AWS caller shares: the SDK configuration clients are built from, how an error is
//! classified (retry, stop, or drop the request) and how long to wait before the next attempt.
//! Classification and backoff are pure functions of the error code and HTTP status the SDK
//! extracted, so they are tested without AWS.

use super::time::Millis;
use std::time::Duration;

/// The SDK configuration every AWS client of trailwatch is built from: region, credentials and
/// endpoint from the standard AWS chain (`AWS_REGION`, profiles, `AWS_ENDPOINT_URL`, …), with
/// `region` overriding the chain's, and timeouts so that no call hangs (10 s to connect, 30 s
/// per attempt).
pub async fn sdk_config(region: Option<String>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(
        aws_config::timeout::TimeoutConfig::builder()
            .operation_attempt_timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .build(),
    );
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r));
    }
    loader.load().await
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
