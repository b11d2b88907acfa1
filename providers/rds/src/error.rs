//! AWS errors as [`ProviderError`]s: AWS's own code and message reach the condition, and
//! the class decides between backoff (throttling, 5xx, network) and waiting for a fix
//! (a parameter AWS refuses, credentials AWS does not accept, a role STS does not let the
//! ProviderConfig assume).

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_rds::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityError;
use tessera_engine::managed::ProviderError;

use crate::credentials::Origin;

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
/// the ProviderConfig of `origin`.
pub(crate) fn aws_error<E>(origin: &Origin, action: &str, err: SdkError<E>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let provider_config = origin.name.as_str();
    if !matches!(err, SdkError::ServiceError(_))
        && let Some(e) = find::<CredentialsError>(&err)
    {
        return credentials_error(origin, action, e);
    }
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

/// Explains why no credentials could be had for the call `action`: the default chain found
/// none, STS refused the AssumeRole (or web identity exchange) with its code and message,
/// or the credentials source did not answer.
pub(crate) fn credentials_error(
    origin: &Origin,
    action: &str,
    e: &CredentialsError,
) -> ProviderError {
    let name = &origin.name;
    let base = &origin.base;
    if let Some(sts) = sts_refusal(e) {
        let asked = match (&origin.role_arn, sts.operation) {
            (Some(arn), "AssumeRole") => format!("AssumeRole of role {arn} with {base}"),
            (_, op) => format!("{op} of {base}"),
        };
        let text = format!(
            "{action}: ProviderConfig {name:?}: STS refused {asked}: {}: {}",
            sts.code, sts.message
        );
        return if TRANSIENT_CODES.contains(&sts.code.as_str()) || sts.status >= 500 {
            ProviderError::Transient(text)
        } else {
            ProviderError::Config(text)
        };
    }
    let via = match &origin.role_arn {
        Some(arn) => format!("{base}, to assume role {arn}"),
        None => base.clone(),
    };
    match e {
        CredentialsError::CredentialsNotLoaded(_) => ProviderError::Config(format!(
            "{action}: ProviderConfig {name:?}: no AWS credentials found in {via}: {}; give              the controller credentials (for example IRSA on EKS) or use credentials source              Secret",
            chain(e)
        )),
        CredentialsError::InvalidConfiguration(_) => ProviderError::Config(format!(
            "{action}: ProviderConfig {name:?}: the AWS credentials of {via} are misconfigured: {}",
            chain(e)
        )),
        _ => ProviderError::Transient(format!(
            "{action}: ProviderConfig {name:?}: could not get AWS credentials from {via}: {}",
            chain(e)
        )),
    }
}

/// An answer of STS that refused to hand out credentials.
struct StsRefusal {
    operation: &'static str,
    code: String,
    message: String,
    status: u16,
}

/// The STS error behind `e`, if STS answered (rather than not being reached).
fn sts_refusal(e: &CredentialsError) -> Option<StsRefusal> {
    fn refusal<E: ProvideErrorMetadata>(
        operation: &'static str,
        err: &aws_sdk_sts::error::SdkError<E, aws_sdk_sts::config::http::HttpResponse>,
    ) -> Option<StsRefusal> {
        let aws_sdk_sts::error::SdkError::ServiceError(service) = err else {
            return None;
        };
        Some(StsRefusal {
            operation,
            code: service.err().code().unwrap_or("Unknown").to_string(),
            message: service.err().message().unwrap_or("no message").to_string(),
            status: service.raw().status().as_u16(),
        })
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(err) = s.downcast_ref() {
            return refusal::<AssumeRoleError>("AssumeRole", err);
        }
        if let Some(err) = s.downcast_ref() {
            return refusal::<AssumeRoleWithWebIdentityError>("AssumeRoleWithWebIdentity", err);
        }
        source = s.source();
    }
    None
}

/// The first error of type `T` in the source chain of `err`.
fn find<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut source = Some(err);
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<T>() {
            return Some(t);
        }
        source = s.source();
    }
    None
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

    #[test]
    fn credentials_errors_name_the_provider_config_the_role_and_what_sts_answered() {
        use aws_sdk_sts::error::{ErrorMetadata, SdkError as StsError};
        use aws_smithy_runtime_api::http::{Response, StatusCode};
        use aws_smithy_types::body::SdkBody;

        let role = "arn:aws:iam::123456789012:role/tessera-rds";
        let origin = Origin {
            name: "team-a".into(),
            base: "the keys of Secret ns/aws".into(),
            role_arn: Some(role.into()),
        };
        let refused = |code: &str, status: u16| {
            let meta = ErrorMetadata::builder()
                .code(code)
                .message("User: u is not authorized to perform: sts:AssumeRole")
                .build();
            let raw = Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
            CredentialsError::provider_error(StsError::service_error(
                AssumeRoleError::generic(meta),
                raw,
            ))
        };

        let e = credentials_error(
            &origin,
            "DescribeDBSubnetGroups g",
            &refused("AccessDenied", 403),
        );
        assert_eq!(e.category(), "ProviderConfigError");
        assert_eq!(
            e.to_string(),
            format!(
                "DescribeDBSubnetGroups g: ProviderConfig \"team-a\": STS refused AssumeRole of \
                 role {role} with the keys of Secret ns/aws: AccessDenied: User: u is not \
                 authorized to perform: sts:AssumeRole"
            )
        );
        for (code, status) in [
            ("Throttling", 400),
            ("InternalFailure", 500),
            ("Whatever", 503),
        ] {
            let e = credentials_error(&origin, "x", &refused(code, status));
            assert_eq!(e.category(), "TransientError", "{code} {status}");
        }

        // The same refusal as the RDS call that needed the credentials reports it.
        let rds: SdkError<
            aws_sdk_rds::operation::describe_db_subnet_groups::DescribeDBSubnetGroupsError,
        > = SdkError::dispatch_failure(aws_sdk_rds::error::ConnectorError::other(
            Box::new(refused("AccessDenied", 403)),
            None,
        ));
        let e = aws_error(&origin, "DescribeDBSubnetGroups g", rds);
        assert_eq!(e.category(), "ProviderConfigError");
        assert!(
            e.to_string().contains("STS refused AssumeRole of role"),
            "{e}"
        );

        let chain = Origin {
            name: "default".into(),
            base: crate::credentials::DEFAULT_CHAIN.into(),
            role_arn: None,
        };
        let e = credentials_error(
            &chain,
            "x",
            &CredentialsError::not_loaded("no providers in chain provided credentials"),
        );
        assert_eq!(e.category(), "ProviderConfigError");
        let text = e.to_string();
        assert!(
            text.contains("ProviderConfig \"default\": no AWS credentials found in the AWS SDK's default credential chain")
                && text.contains("no providers in chain provided credentials"),
            "{text}"
        );
        let e = credentials_error(
            &chain,
            "x",
            &CredentialsError::provider_timed_out(std::time::Duration::from_secs(5)),
        );
        assert_eq!(e.category(), "TransientError");
    }
}
