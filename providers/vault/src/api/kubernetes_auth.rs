use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tessera_engine::api::common::{ResourceSpec, ResourceStatus, SecretKeySelector};

/// The desired state of a KubernetesAuthBackendConfig.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "vault.tessera.dev",
    version = "v1alpha1",
    kind = "KubernetesAuthBackendConfig",
    status = "KubernetesAuthBackendConfigStatus",
    derive = "PartialEq",
    doc = "A KubernetesAuthBackendConfig is the configuration of a Vault kubernetes auth \
           method (auth/<backend>/config): how Vault reaches the Kubernetes API server to \
           review the ServiceAccount tokens presented at login. Vault cannot delete it: \
           it lives as long as the auth method."
)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesAuthBackendConfigSpec {
    // The fields every managed resource has: providerConfigRef, deletionPolicy, ...
    #[serde(flatten)]
    pub resource: ResourceSpec,

    /// The desired configuration.
    pub for_provider: KubernetesAuthBackendConfigParameters,
}

/// The desired configuration of a kubernetes auth method.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesAuthBackendConfigParameters {
    /// The path of the kubernetes auth method, e.g. `kubernetes` (an AuthBackend of type
    /// `kubernetes`).
    pub backend: String,
    /// The Kubernetes API server's URL as Vault reaches it, e.g. `https://kubernetes.default.svc`.
    pub kubernetes_host: String,
    /// The PEM CA bundle of the API server's certificate: a key of a ConfigMap (such as
    /// `kube-root-ca.crt`, key `ca.crt`) or of a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_ca_cert_ref: Option<KeyReference>,
    /// A Secret key holding the JWT Vault uses to call the TokenReview API (a
    /// ServiceAccount with `system:auth-delegator`). Unset: Vault uses the token of the
    /// login itself. Vault never returns it, so a change made in Vault is not noticed; a
    /// change of the Secret is written at the next poll only together with another change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_reviewer_jwt_secret_ref: Option<SecretKeySelector>,
    /// The issuer of the ServiceAccount tokens, when Vault must check it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Do not use the CA and token of the pod Vault runs in (set it when Vault runs
    /// outside the cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_local_ca_jwt: Option<bool>,
}

/// A key of a ConfigMap or a Secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyReference {
    /// `ConfigMap` or `Secret`.
    pub kind: KeyReferenceKind,
    /// The object's name.
    pub name: String,
    /// The object's namespace.
    pub namespace: String,
    /// The key in its data.
    pub key: String,
}

/// The kind of object a [`KeyReference`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum KeyReferenceKind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
}

/// The observed state of a KubernetesAuthBackendConfig.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesAuthBackendConfigStatus {
    // The fields every managed resource has: conditions, observedGeneration.
    #[serde(flatten)]
    pub resource: ResourceStatus,

    /// The configuration as Vault has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_provider: Option<KubernetesAuthBackendConfigObservation>,
}

/// The configuration as Vault has it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesAuthBackendConfigObservation {
    /// The API server's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_host: Option<String>,
    /// Whether a token reviewer JWT is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_reviewer_jwt_set: Option<bool>,
}

/// The desired state of a KubernetesAuthRole.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "vault.tessera.dev",
    version = "v1alpha1",
    kind = "KubernetesAuthRole",
    status = "KubernetesAuthRoleStatus",
    derive = "PartialEq",
    doc = "A KubernetesAuthRole is a role of a Vault kubernetes auth method: which \
           ServiceAccounts may log in with it and which policies their tokens get. Its name \
           in Vault is the tessera.dev/external-name annotation, defaulting to metadata.name."
)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesAuthRoleSpec {
    // The fields every managed resource has: providerConfigRef, deletionPolicy, ...
    #[serde(flatten)]
    pub resource: ResourceSpec,

    /// The desired state of the role.
    pub for_provider: KubernetesAuthRoleParameters,
}

/// The desired state of a kubernetes auth role. Lists are compared as sets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesAuthRoleParameters {
    /// The path of the kubernetes auth method. Default `kubernetes`.
    #[serde(default = "default_backend")]
    pub backend: String,
    /// The ServiceAccount names that may log in (`*` for any).
    pub bound_service_account_names: Vec<String>,
    /// The namespaces of those ServiceAccounts (`*` for any).
    pub bound_service_account_namespaces: Vec<String>,
    /// The policies of the tokens the login issues.
    #[serde(default)]
    pub token_policies: Vec<String>,
    /// The TTL of those tokens, e.g. `1h`; unset: not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ttl: Option<String>,
    /// The maximum TTL of those tokens; unset: not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_max_ttl: Option<String>,
    /// The audience the ServiceAccount token must carry; unset: not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

fn default_backend() -> String {
    "kubernetes".to_string()
}

/// The observed state of a KubernetesAuthRole.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesAuthRoleStatus {
    // The fields every managed resource has: conditions, observedGeneration.
    #[serde(flatten)]
    pub resource: ResourceStatus,

    /// The role as Vault has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_provider: Option<KubernetesAuthRoleObservation>,
}

/// The role as Vault has it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesAuthRoleObservation {
    /// The policies of the tokens the login issues.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_policies: Vec<String>,
}
