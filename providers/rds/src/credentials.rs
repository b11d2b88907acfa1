//! The AWS credentials of a ProviderConfig: the keys of its Secret, or the AWS SDK's default
//! chain of the controller's environment (`credentials.source: Default`), optionally
//! exchanged for a role's temporary credentials through STS AssumeRole (`assumeRoleArn`).
//!
//! ```text
//!  Secret keys ─┐                                     ┌─ none ─────────────────────▶ RDS client
//!               ├─▶ base credentials ─ assumeRoleArn ─┤
//!  Default chain┘   (env, IRSA, ECS, EC2)             └─ STS AssumeRole ─ cache ───▶ RDS client
//! ```
//!
//! Nothing here calls AWS: the SDK resolves the credentials on the first RDS call and keeps
//! them in the RDS client's identity cache, which renews temporary credentials before they
//! expire. A failure to get them reaches that call's error, where
//! [`crate::error::aws_error`] explains it with the [`Origin`] below.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::Credentials as AwsCredentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_rds::config::Region;
use tessera_engine::api::common::CredentialsSource;
use tessera_engine::managed::ProviderError;
use tessera_engine::managed::credentials::Credentials;

use crate::api::ProviderConfigSpec;
use crate::connector::{ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN};

/// Who the RDS calls of a ProviderConfig are made as, for error messages: never a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The ProviderConfig's name.
    pub(crate) name: String,
    /// Where the base credentials come from: "the keys of Secret ns/name", or the default chain.
    pub(crate) base: String,
    /// The role assumed with them, if any.
    pub(crate) role_arn: Option<String>,
}

/// The base credentials of the default chain, as messages name them.
pub(crate) const DEFAULT_CHAIN: &str = "the AWS SDK's default credential chain of the \
     controller (AWS_ACCESS_KEY_ID, a web identity token such as EKS IRSA, ECS container \
     credentials, the EC2 instance profile)";

/// The AssumeRole settings of a ProviderConfig, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AssumeRole {
    pub(crate) role_arn: String,
    pub(crate) external_id: Option<String>,
    pub(crate) session_name: String,
    pub(crate) duration: Option<Duration>,
    pub(crate) sts_endpoint_url: Option<String>,
}

/// The credentials provider of the ProviderConfig `name` and who it makes the calls as.
/// Settings are checked before anything is built; nothing calls AWS yet.
pub(crate) async fn provider(
    name: &str,
    spec: &ProviderConfigSpec,
    credentials: &Credentials,
) -> Result<(SharedCredentialsProvider, Origin), ProviderError> {
    let assume = assume_role(name, spec)?;
    let region = Region::new(spec.region.clone());
    let (keys, base) = match spec.credentials.source {
        CredentialsSource::Default => (None, DEFAULT_CHAIN.to_string()),
        _ => (
            Some(AwsCredentials::new(
                credentials.require(ACCESS_KEY_ID)?,
                credentials.require(SECRET_ACCESS_KEY)?,
                credentials.optional(SESSION_TOKEN)?,
                None,
                "tessera-provider-config",
            )),
            format!("the keys of Secret {}", credentials.secret_name()),
        ),
    };
    let origin = Origin {
        name: name.to_string(),
        base,
        role_arn: assume.as_ref().map(|a| a.role_arn.clone()),
    };
    if let (Some(keys), None) = (&keys, &assume) {
        return Ok((SharedCredentialsProvider::new(keys.clone()), origin));
    }
    // The SDK's shared configuration: the default chain (when no keys are given) and, for
    // AssumeRole, the STS client's settings. The RDS client is configured on its own.
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region.clone());
    if let Some(keys) = keys {
        loader = loader.credentials_provider(keys);
    }
    if let Some(url) = assume.as_ref().and_then(|a| a.sts_endpoint_url.as_deref()) {
        loader = loader.endpoint_url(url);
    }
    let shared = loader.load().await;
    let base = shared.credentials_provider().ok_or_else(|| {
        ProviderError::Config(format!(
            "ProviderConfig {name:?}: the AWS SDK built no default credential chain"
        ))
    })?;
    let Some(assume) = assume else {
        return Ok((base, origin));
    };
    let mut builder = AssumeRoleProvider::builder(assume.role_arn)
        .configure(&shared)
        .region(region)
        .session_name(assume.session_name);
    if let Some(id) = assume.external_id {
        builder = builder.external_id(id);
    }
    if let Some(duration) = assume.duration {
        builder = builder.session_length(duration);
    }
    let assumed = builder.build_from_provider(base).await;
    Ok((SharedCredentialsProvider::new(assumed), origin))
}

/// The checked AssumeRole settings of the ProviderConfig `name`, `None` without
/// `assumeRoleArn`. Settings that only apply to AssumeRole are refused without it.
pub(crate) fn assume_role(
    name: &str,
    spec: &ProviderConfigSpec,
) -> Result<Option<AssumeRole>, ProviderError> {
    let err = |what: String| {
        Err(ProviderError::Config(format!(
            "ProviderConfig {name:?}: {what}"
        )))
    };
    let Some(arn) = spec.assume_role_arn.as_deref().map(str::trim) else {
        let stray = [
            ("externalId", spec.external_id.is_some()),
            ("roleSessionName", spec.role_session_name.is_some()),
            (
                "sessionDurationSeconds",
                spec.session_duration_seconds.is_some(),
            ),
            ("stsEndpointUrl", spec.sts_endpoint_url.is_some()),
        ];
        return match stray.iter().find(|(_, set)| *set) {
            Some((field, _)) => err(format!(
                "{field} is only used with assumeRoleArn; set assumeRoleArn (the role to \
                 assume) or remove {field}"
            )),
            None => Ok(None),
        };
    };
    if !valid_role_arn(arn) {
        return err(format!(
            "assumeRoleArn {:?} is not an IAM role ARN; expected \
             arn:<partition>:iam::<12-digit account ID>:role/<name>, e.g. \
             arn:aws:iam::123456789012:role/tessera-rds",
            bounded(arn)
        ));
    }
    let external_id = match spec.external_id.as_deref() {
        None => None,
        Some(id) if valid_sts_text(id, 2, 1224, "+=,.@:/-") => Some(id.to_string()),
        // The value is not repeated: an external ID is not secret, but it is not the
        // message's business either.
        Some(_) => {
            return err(
                "externalId must be 2 to 1224 letters, digits and +=,.@:/-_ (as STS requires)"
                    .to_string(),
            );
        }
    };
    let session_name = match spec.role_session_name.as_deref() {
        Some(s) if valid_sts_text(s, 2, 64, "+=,.@-") => s.to_string(),
        Some(s) => {
            return err(format!(
                "roleSessionName {:?} must be 2 to 64 letters, digits and +=,.@_- (as STS \
                 requires)",
                bounded(s)
            ));
        }
        None => default_session_name(name),
    };
    let duration = match spec.session_duration_seconds {
        None => None,
        Some(s @ 900..=43200) => Some(Duration::from_secs(s.unsigned_abs().into())),
        Some(s) => {
            return err(format!(
                "sessionDurationSeconds {s} is out of STS's range, 900 (15 minutes) to 43200 \
                 (12 hours)"
            ));
        }
    };
    let sts_endpoint_url = match spec.sts_endpoint_url.as_deref() {
        None => None,
        Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
            Some(url.to_string())
        }
        Some(url) => {
            return err(format!(
                "stsEndpointUrl {:?} must start with https:// or http://",
                bounded(url)
            ));
        }
    };
    Ok(Some(AssumeRole {
        role_arn: arn.to_string(),
        external_id,
        session_name,
        duration,
        sts_endpoint_url,
    }))
}

/// `tessera-<ProviderConfig name>`, cut to STS's 64 characters. A ProviderConfig name is a
/// DNS subdomain name, whose characters STS accepts in a session name.
fn default_session_name(name: &str) -> String {
    let mut s: String = format!("tessera-{name}")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(*c))
        .collect();
    s.truncate(64);
    s
}

/// Whether `s` is `min..=max` characters of ASCII letters, digits, `_` and `extra`.
fn valid_sts_text(s: &str, min: usize, max: usize, extra: &str) -> bool {
    (min..=max).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(c))
}

/// Whether `arn` is shaped like an IAM role ARN, `arn:aws:iam::123456789012:role/name`
/// (with an optional path, `role/path/name`, and any AWS partition). Whether the role
/// exists and may be assumed is STS's to answer.
pub(crate) fn valid_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts[..] else {
        return false;
    };
    let partition_ok = partition == "aws"
        || partition.strip_prefix("aws-").is_some_and(|p| {
            !p.is_empty() && p.len() <= 16 && p.chars().all(|c| c.is_ascii_lowercase() || c == '-')
        });
    let Some(path_and_name) = resource.strip_prefix("role/") else {
        return false;
    };
    let role_name = path_and_name.rsplit('/').next().unwrap_or_default();
    prefix == "arn"
        && partition_ok
        && service == "iam"
        && region.is_empty()
        && account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit())
        && arn.len() <= 2048
        && (1..=64).contains(&role_name.len())
        && path_and_name.split('/').all(|seg| !seg.is_empty())
        && path_and_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
}

/// `s`, cut to a length a message can quote.
fn bounded(s: &str) -> String {
    const MAX: usize = 128;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: serde_json::Value) -> ProviderConfigSpec {
        let mut v = serde_json::json!({
            "region": "eu-west-1",
            "credentials": { "source": "Secret", "secretRef": { "name": "aws", "namespace": "ns" } }
        });
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(v).unwrap()
    }

    fn config_error(r: Result<Option<AssumeRole>, ProviderError>) -> String {
        match r {
            Err(e @ ProviderError::Config(_)) => e.to_string(),
            other => panic!("expected a ProviderConfig error, got {other:?}"),
        }
    }

    #[test]
    fn role_arns_are_checked_for_shape_only() {
        for ok in [
            "arn:aws:iam::123456789012:role/tessera-rds",
            "arn:aws:iam::123456789012:role/team/db/tessera_rds+x=y,z.a@b",
            "arn:aws-us-gov:iam::123456789012:role/r1",
            "arn:aws-cn:iam::123456789012:role/r1",
        ] {
            assert!(valid_role_arn(ok), "{ok}");
        }
        for bad in [
            "",
            "tessera-rds",
            "arn:aws:iam::123456789012:user/tessera",
            "arn:aws:iam::12345678901:role/short-account",
            "arn:aws:iam::12345678901x:role/letters",
            "arn:aws:iam:eu-west-1:123456789012:role/regional",
            "arn:aws:sts::123456789012:role/not-iam",
            "arn:AWS:iam::123456789012:role/upper-partition",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a//b",
            "arn:aws:iam::123456789012:role/with space",
            "arn:aws:iam::123456789012:role/x\ny",
            &format!("arn:aws:iam::123456789012:role/{}", "n".repeat(65)),
        ] {
            assert!(!valid_role_arn(bad), "{bad:?}");
        }
    }

    #[test]
    fn assume_role_settings_are_checked_and_explained() {
        assert_eq!(
            assume_role("pc", &spec(serde_json::json!({}))).unwrap(),
            None
        );

        let full = assume_role(
            "pc",
            &spec(serde_json::json!({
                "assumeRoleArn": " arn:aws:iam::123456789012:role/tessera-rds ",
                "externalId": "tenant-42",
                "roleSessionName": "ci@tessera",
                "sessionDurationSeconds": 900,
                "stsEndpointUrl": "http://127.0.0.1:5000"
            })),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            full,
            AssumeRole {
                role_arn: "arn:aws:iam::123456789012:role/tessera-rds".into(),
                external_id: Some("tenant-42".into()),
                session_name: "ci@tessera".into(),
                duration: Some(Duration::from_secs(900)),
                sts_endpoint_url: Some("http://127.0.0.1:5000".into()),
            }
        );

        let defaults = assume_role(
            "pc",
            &spec(serde_json::json!({ "assumeRoleArn": "arn:aws:iam::123456789012:role/r" })),
        )
        .unwrap()
        .unwrap();
        assert_eq!(defaults.session_name, "tessera-pc");
        assert_eq!((defaults.external_id, defaults.duration), (None, None));
        let long = "a".repeat(253);
        assert_eq!(default_session_name(&long).len(), 64);

        struct Case {
            reason: &'static str,
            spec: serde_json::Value,
            says: &'static [&'static str],
        }
        let role = "arn:aws:iam::123456789012:role/r";
        let cases = [
            Case {
                reason: "a role name instead of an ARN",
                spec: serde_json::json!({ "assumeRoleArn": "tessera-rds" }),
                says: &[
                    "assumeRoleArn \"tessera-rds\" is not an IAM role ARN",
                    "arn:aws:iam::123456789012:role/",
                ],
            },
            Case {
                reason: "an external ID without a role",
                spec: serde_json::json!({ "externalId": "tenant-42" }),
                says: &["externalId is only used with assumeRoleArn"],
            },
            Case {
                reason: "an STS endpoint without a role",
                spec: serde_json::json!({ "stsEndpointUrl": "http://x" }),
                says: &["stsEndpointUrl is only used with assumeRoleArn"],
            },
            Case {
                reason: "an external ID STS refuses",
                spec: serde_json::json!({ "assumeRoleArn": role, "externalId": "a b" }),
                says: &["externalId must be 2 to 1224"],
            },
            Case {
                reason: "a session name that is too long",
                spec: serde_json::json!({ "assumeRoleArn": role, "roleSessionName": "s".repeat(65) }),
                says: &["roleSessionName", "2 to 64"],
            },
            Case {
                reason: "a duration STS refuses",
                spec: serde_json::json!({ "assumeRoleArn": role, "sessionDurationSeconds": 60 }),
                says: &["sessionDurationSeconds 60 is out of STS's range"],
            },
            Case {
                reason: "an STS endpoint that is no URL",
                spec: serde_json::json!({ "assumeRoleArn": role, "stsEndpointUrl": "sts.local" }),
                says: &["stsEndpointUrl \"sts.local\" must start with https://"],
            },
        ];
        for c in cases {
            let text = config_error(assume_role("pc", &spec(c.spec)));
            assert!(
                text.starts_with("ProviderConfig \"pc\": "),
                "{}: {text}",
                c.reason
            );
            for s in c.says {
                assert!(text.contains(s), "{}: {text:?} lacks {s:?}", c.reason);
            }
        }
        let secret = config_error(assume_role(
            "pc",
            &spec(serde_json::json!({ "assumeRoleArn": role, "externalId": "secret value!" })),
        ));
        assert!(!secret.contains("secret value"), "{secret}");
    }
}
