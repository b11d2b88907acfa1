use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tessera_engine::api::common::ProviderCredentials;

/// How to reach the AWS RDS API and as whom.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "rds.aws.tessera.dev",
    version = "v1alpha1",
    kind = "ProviderConfig",
    derive = "PartialEq",
    doc = "A ProviderConfig tells the RDS provider which AWS region to manage and with which \
           credentials. Managed resources name it in spec.providerConfigRef; the one named \
           `default` is used when they do not."
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfigSpec {
    /// The AWS region, e.g. `eu-west-1`.
    #[schemars(length(min = 1, max = 64))]
    pub region: String,

    /// Where the AWS credentials come from. `source: Secret`: the Secret `secretRef` with
    /// the access key of an IAM user or role, keys `aws_access_key_id`,
    /// `aws_secret_access_key` and, for temporary credentials, `aws_session_token`; the
    /// Secret is watched, so rotated keys are used from the next reconcile of each managed
    /// resource on, without a restart. `source: Default`: the AWS SDK's default chain in
    /// the controller's own environment: the `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`
    /// variables, a web identity token (EKS IRSA: `AWS_WEB_IDENTITY_TOKEN_FILE` and
    /// `AWS_ROLE_ARN`), the ECS container credentials, or the EC2 instance profile.
    /// With `assumeRoleArn`, these are the base credentials that assume the role.
    pub credentials: ProviderCredentials,

    /// The URL of the RDS API, instead of the region's public endpoint: a VPC endpoint, or
    /// an AWS simulator (moto, LocalStack) in tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub endpoint_url: Option<String>,

    /// The ARN of an IAM role to assume with the base credentials (STS AssumeRole), e.g.
    /// `arn:aws:iam::123456789012:role/tessera-rds`: every RDS call is then made as that
    /// role. The role's trust policy must allow the base identity `sts:AssumeRole` (with
    /// the `sts:ExternalId` condition when `externalId` is set). The role's temporary
    /// credentials are kept in memory and renewed before they expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub assume_role_arn: Option<String>,

    /// The external ID the role's owner requires in its trust policy (`sts:ExternalId`),
    /// sent with AssumeRole. Only with `assumeRoleArn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1224))]
    pub external_id: Option<String>,

    /// The session name of the assumed role, as CloudTrail shows it: 2 to 64 letters,
    /// digits and `+=,.@_-`. Default: `tessera-<ProviderConfig name>`. Only with
    /// `assumeRoleArn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub role_session_name: Option<String>,

    /// How long the assumed role's credentials last, in seconds: 900 to 43200, at most the
    /// role's maximum session duration. Default: STS's (3600). Only with `assumeRoleArn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 900, max = 43200))]
    pub session_duration_seconds: Option<i32>,

    /// The URL of the STS API used for `assumeRoleArn`, instead of the region's STS
    /// endpoint: an STS VPC endpoint, or an AWS simulator in tests. The web identity
    /// exchange of `source: Default` follows the controller's environment instead
    /// (`AWS_ENDPOINT_URL_STS`). Only with `assumeRoleArn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub sts_endpoint_url: Option<String>,
}
