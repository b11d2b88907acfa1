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

    /// The Secret with the AWS access key of an IAM user or role. Keys:
    /// `aws_access_key_id`, `aws_secret_access_key` and, for temporary credentials,
    /// `aws_session_token`. The Secret is watched: rotated keys are used from the next
    /// reconcile of each managed resource on, without a restart.
    pub credentials: ProviderCredentials,

    /// The URL of the RDS API, instead of the region's public endpoint: a VPC endpoint, or
    /// an AWS simulator (moto, LocalStack) in tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub endpoint_url: Option<String>,
}
