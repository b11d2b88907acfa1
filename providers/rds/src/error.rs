//! AWS errors as [`ProviderError`]s: AWS's own code and message reach the condition, and
//! the class decides between backoff (throttling, 5xx, network) and waiting for a fix
//! (a parameter AWS refuses, credentials AWS does not accept).

use aws_sdk_rds::error::{ProvideErrorMetadata, SdkError};
use tessera_engine::managed::ProviderError;

/// AWS error codes that mean the request was fine but came at a bad moment: retried.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "TooManyRequestsException",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "InvalidDBInstanceState",
    "InvalidDBInstanceStateFault",
    "InvalidDBSubnetGroupStateFault",
];

/// AWS error codes about who is calling: the ProviderConfig's credentials or region.
const CREDENTIAL_CODES: &[&str] = &[
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "AuthFailure",
    "AccessDenied",
    "AccessDeniedException",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidAccessKeyId",
    "UnauthorizedOperation",
];

/// Classifies an error of the AWS call `action` ("CreateDBInstance mydb") made through
/// the ProviderConfig `provider_config`.
pub(crate) fn aws_error<E>(provider_config: &str, action: &str, err: SdkError<E>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match &err {
        SdkError::ServiceError(service) => {
            let status = err.raw_response().map(|r| r.status().as_u16());
            let e = service.err();
            let code = e.code().unwrap_or("Unknown");
            let message = e.message().unwrap_or("no message");
            classify(provider_config, action, code, message, status)
        }
        SdkError::ConstructionFailure(_) => ProviderError::Config(format!(
            "{action}: the request could not be built with ProviderConfig {provider_config:?}: {}",
            chain(&err)
        )),
        _ => ProviderError::Transient(format!(
            "{action}: AWS did not answer (ProviderConfig {provider_config:?}): {}",
            chain(&err)
        )),
    }
}

/// The class of an AWS error by its code and HTTP status.
pub(crate) fn classify(
    provider_config: &str,
    action: &str,
    code: &str,
    message: &str,
    status: Option<u16>,
) -> ProviderError {
    let text = format!("{action}: AWS answered {code}: {message}");
    if CREDENTIAL_CODES.contains(&code) {
        ProviderError::Config(format!(
            "ProviderConfig {provider_config:?}: AWS refused its credentials or region: {text}"
        ))
    } else if TRANSIENT_CODES.contains(&code) || status.is_some_and(|s| s >= 500) {
        ProviderError::Transient(text)
    } else {
        ProviderError::InvalidSpec(text)
    }
}

/// The error and its sources, on one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_codes_decide_between_backoff_a_spec_fix_and_a_provider_config_fix() {
        struct Case {
            reason: &'static str,
            code: &'static str,
            status: Option<u16>,
            want: &'static str,
        }
        let cases = [
            Case {
                reason: "throttling is retried",
                code: "Throttling",
                status: Some(400),
                want: "TransientError",
            },
            Case {
                reason: "an instance busy modifying is retried",
                code: "InvalidDBInstanceState",
                status: Some(400),
                want: "TransientError",
            },
            Case {
                reason: "any 5xx is retried",
                code: "Whatever",
                status: Some(503),
                want: "TransientError",
            },
            Case {
                reason: "a bad parameter waits for a spec change",
                code: "InvalidParameterValue",
                status: Some(400),
                want: "InvalidSpec",
            },
            Case {
                reason: "a quota waits for a spec change",
                code: "StorageQuotaExceeded",
                status: Some(400),
                want: "InvalidSpec",
            },
            Case {
                reason: "bad keys are the ProviderConfig's",
                code: "InvalidClientTokenId",
                status: Some(403),
                want: "ProviderConfigError",
            },
            Case {
                reason: "a missing permission is the ProviderConfig's",
                code: "AccessDenied",
                status: Some(403),
                want: "ProviderConfigError",
            },
        ];
        for c in cases {
            let e = classify(
                "aws",
                "CreateDBInstance db1",
                c.code,
                "the message",
                c.status,
            );
            assert_eq!(e.category(), c.want, "{}", c.reason);
            let text = e.to_string();
            assert!(
                text.contains(c.code) && text.contains("the message"),
                "{}: {text}",
                c.reason
            );
            if c.want == "ProviderConfigError" {
                assert!(
                    text.contains("ProviderConfig \"aws\""),
                    "{}: {text}",
                    c.reason
                );
            }
        }
    }
}
