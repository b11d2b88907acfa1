//! Connection-Secret publishing, shared by the managed and the composite reconcilers:
//! additive (server-side apply owns only our keys), owner-referenced to the resource whose
//! details it holds, written only when a value changed.
//!
//! A connection Secret has a Kubernetes Secret `type`: [`DEFAULT_TYPE`] unless the XRD
//! (`spec.connectionSecretType`) or the managed resource's provider
//! (`ExternalClient::connection_secret_type`) names another, such as
//! `kubernetes.io/dockerconfigjson` for a Secret used as `imagePullSecrets`. Kubernetes
//! refuses a typed Secret without the keys its type requires, so such a Secret is written
//! only once the details hold them; and it forbids changing the type of a Secret, so a
//! Secret of another type that Tessera wrote is deleted and written again.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::api::common::{ConnectionDetails, SecretReference};

/// Label on every connection Secret Tessera writes.
pub const MANAGED_BY_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "tessera");

/// The type of connection Secrets for which nothing names another.
pub const DEFAULT_TYPE: &str = "connection.tessera.dev/v1";

/// Secret types that Kubernetes itself fills in or acts on; a connection Secret never has them.
const REFUSED_TYPES: &[&str] = &[
    "kubernetes.io/service-account-token",
    "bootstrap.kubernetes.io/token",
];

/// The keys Kubernetes requires in a Secret of `secret_type`: each entry lists alternatives,
/// one of which must be present. Empty for types Kubernetes does not check.
pub fn required_keys(secret_type: &str) -> &'static [&'static [&'static str]] {
    match secret_type {
        "kubernetes.io/dockerconfigjson" => &[&[".dockerconfigjson"]],
        "kubernetes.io/dockercfg" => &[&[".dockercfg"]],
        "kubernetes.io/tls" => &[&["tls.crt"], &["tls.key"]],
        "kubernetes.io/ssh-auth" => &[&["ssh-privatekey"]],
        "kubernetes.io/basic-auth" => &[&["username", "password"]],
        _ => &[],
    }
}

/// The required keys of `secret_type` (see [`required_keys`]) that `has` says are missing,
/// in words (`".dockerconfigjson"`, `"username" or "password"`).
pub fn missing_keys(secret_type: &str, has: impl Fn(&str) -> bool) -> Vec<String> {
    required_keys(secret_type)
        .iter()
        .filter(|alternatives| !alternatives.iter().any(|k| has(k)))
        .map(|alternatives| {
            alternatives
                .iter()
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>()
                .join(" or ")
        })
        .collect()
}

/// Checks a connection Secret type as written by a person: a Kubernetes Secret type
/// (at most 253 characters of letters, digits, `.`, `_`, `-` and `/`) that Kubernetes does
/// not reserve for Secrets of its own. The error says what is wrong.
pub fn check_type(secret_type: &str) -> Result<(), String> {
    let chars_ok = secret_type
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
    if secret_type.is_empty() || secret_type.len() > 253 || !chars_ok {
        return Err(format!(
            "{secret_type:?} is not a Secret type: use at most 253 letters, digits, '.', '_', '-' and '/', e.g. kubernetes.io/dockerconfigjson"
        ));
    }
    if REFUSED_TYPES.contains(&secret_type) {
        return Err(format!(
            "{secret_type:?} Secrets are filled in by Kubernetes and cannot be connection Secrets"
        ));
    }
    Ok(())
}

/// The type of an existing Secret (Kubernetes' default is `Opaque`).
fn type_of(secret: &Secret) -> &str {
    secret.type_.as_deref().unwrap_or("Opaque")
}

/// Whether `secret` already holds every entry of `details` with the same value.
pub fn holds(secret: &Secret, details: &ConnectionDetails) -> bool {
    let data = secret.data.as_ref();
    details
        .0
        .iter()
        .all(|(k, v)| data.and_then(|d| d.get(k)).is_some_and(|have| have.0 == *v))
}

/// Writes `details` into the Secret `target` of type `secret_type` ([`DEFAULT_TYPE`] when
/// `None`), owned by `owner`, unless it already holds them. Keys written by others are left
/// alone.
pub async fn publish<K: Resource<DynamicType = ()>>(
    client: &kube::Client,
    field_manager: &str,
    owner: &K,
    target: &SecretReference,
    secret_type: Option<&str>,
    details: &ConnectionDetails,
) -> Result<(), kube::Error> {
    let name = owner.name_any();
    publish_owned(
        client,
        field_manager,
        SecretOwner {
            reference: owner.controller_owner_ref(&()),
            name: &name,
            shard: crate::shard::of(owner.labels()),
        },
        target,
        secret_type,
        details,
        Publish::Always,
    )
    .await
    .map(|_| ())
}

/// Whether [`publish_owned`] may create the Secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Publish {
    /// Create it, or update it.
    Always,
    /// Only update a Secret that exists: the details are not complete yet.
    IfExists,
}

/// Who a connection Secret belongs to: its controller, named in logs, and the shard whose
/// label the Secret carries.
pub struct SecretOwner<'a> {
    /// The controller owner reference (`None`: no owner).
    pub reference: Option<OwnerReference>,
    /// The owner's name, for logs.
    pub name: &'a str,
    /// The owner's shard label value, if any.
    pub shard: Option<&'a str>,
}

/// The data of the Secret `target` when `owner_uid` is its controller; `None` when it does
/// not exist or belongs to someone else. A provider whose external system returns a secret
/// only once (a Harbor robot's) reads it back here: the managed resource's own connection
/// Secret is then the only copy, and a Secret it does not control is never trusted.
pub async fn read_controlled(
    client: &kube::Client,
    target: &SecretReference,
    owner_uid: &str,
) -> Result<Option<ConnectionDetails>, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &target.namespace);
    let Some(secret) = api.get_opt(&target.name).await? else {
        return Ok(None);
    };
    let controlled = secret
        .metadata
        .owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == owner_uid);
    if !controlled || owner_uid.is_empty() {
        return Ok(None);
    }
    Ok(Some(ConnectionDetails(
        secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect(),
    )))
}

/// Writes `details` into the Secret `target` of type `secret_type` ([`DEFAULT_TYPE`] when
/// `None`) with `owner` as its controller, unless it already holds them; the form of
/// [`publish`] for owners of any type (e.g. a composite resource as a `DynamicObject`).
/// Keys written by others are left alone. Returns whether the Secret was written.
///
/// Nothing is written while `details` lack a key the type requires (Kubernetes would
/// refuse the Secret). A Secret of another type is replaced (deleted, then written) when
/// Tessera wrote it (it has the [`MANAGED_BY_LABEL`]); anyone else's is left to the API
/// server, whose refusal then becomes the write's error. The Secret carries the owner's
/// shard label, if any. With [`Publish::IfExists`], a Secret that does not exist is not
/// created.
pub async fn publish_owned(
    client: &kube::Client,
    field_manager: &str,
    owner: SecretOwner<'_>,
    target: &SecretReference,
    secret_type: Option<&str>,
    details: &ConnectionDetails,
    when: Publish,
) -> Result<bool, kube::Error> {
    let SecretOwner {
        reference: owner,
        name: owner_name,
        shard,
    } = owner;
    let secret_type = secret_type.unwrap_or(DEFAULT_TYPE);
    let api: Api<Secret> = Api::namespaced(client.clone(), &target.namespace);
    let existing = api.get_opt(&target.name).await?;
    if let Some(existing) = &existing
        && type_of(existing) == secret_type
        && holds(existing, details)
        && shard.is_none_or(|s| crate::shard::of(existing.labels()) == Some(s))
    {
        return Ok(false);
    }
    if existing.is_none() && when == Publish::IfExists {
        tracing::debug!(owner = %owner_name, secret = %target.name, "connection secret waits for complete details");
        return Ok(false);
    }
    let missing = missing_keys(secret_type, |k| details.0.contains_key(k));
    if !missing.is_empty() {
        tracing::debug!(owner = %owner_name, secret = %target.name, %secret_type, ?missing, "connection secret waits for the keys its type requires");
        return Ok(false);
    }
    if let Some(existing) = &existing
        && type_of(existing) != secret_type
        && existing
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_BY_LABEL.0))
            .is_some_and(|v| v == MANAGED_BY_LABEL.1)
    {
        // Kubernetes forbids changing a Secret's type: replace this one (only this copy,
        // by uid, so a Secret written meanwhile by someone else is not deleted).
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: existing.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&target.name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e),
        }
        tracing::info!(owner = %owner_name, secret = %target.name, from = %type_of(existing), to = %secret_type, "replacing connection secret of another type");
    }
    let data: std::collections::BTreeMap<String, ByteString> = details
        .0
        .iter()
        .map(|(k, v)| (k.clone(), ByteString(v.clone())))
        .collect();
    let owner_ref = owner.map(|mut r| {
        // The owner may be cluster-scoped and the Secret namespaced: a controller
        // reference is fine; blocking deletion is not needed.
        r.block_owner_deletion = None;
        r
    });
    let mut labels = json!({ MANAGED_BY_LABEL.0: MANAGED_BY_LABEL.1 });
    if let Some(shard) = shard {
        labels[crate::shard::LABEL_SHARD] = shard.into();
    }
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": target.name,
            "namespace": target.namespace,
            "labels": labels,
            "ownerReferences": owner_ref.into_iter().collect::<Vec<_>>(),
        },
        "type": secret_type,
        "data": data,
    });
    api.patch(
        &target.name,
        &PatchParams::apply(field_manager).force(),
        &Patch::Apply(&secret),
    )
    .await?;
    tracing::debug!(owner = %owner_name, secret = %target.name, keys = ?details.keys().collect::<Vec<_>>(), "published connection secret");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_secrets_need_the_keys_kubernetes_requires() {
        struct Case {
            reason: &'static str,
            secret_type: &'static str,
            keys: &'static [&'static str],
            missing: &'static [&'static str],
        }
        let cases = [
            Case {
                reason: "a dockerconfigjson Secret needs .dockerconfigjson",
                secret_type: "kubernetes.io/dockerconfigjson",
                keys: &["username", "password"],
                missing: &["\".dockerconfigjson\""],
            },
            Case {
                reason: "a dockerconfigjson Secret with the key is complete",
                secret_type: "kubernetes.io/dockerconfigjson",
                keys: &[".dockerconfigjson", "username"],
                missing: &[],
            },
            Case {
                reason: "a TLS Secret needs both the certificate and the key",
                secret_type: "kubernetes.io/tls",
                keys: &["tls.crt"],
                missing: &["\"tls.key\""],
            },
            Case {
                reason: "a basic-auth Secret needs one of username and password",
                secret_type: "kubernetes.io/basic-auth",
                keys: &[],
                missing: &["\"username\" or \"password\""],
            },
            Case {
                reason: "a basic-auth Secret with a password alone is complete",
                secret_type: "kubernetes.io/basic-auth",
                keys: &["password"],
                missing: &[],
            },
            Case {
                reason: "types Kubernetes does not check need nothing",
                secret_type: DEFAULT_TYPE,
                keys: &[],
                missing: &[],
            },
        ];
        for c in cases {
            let missing = missing_keys(c.secret_type, |k| c.keys.contains(&k));
            assert_eq!(missing, c.missing, "{}", c.reason);
        }
    }

    #[test]
    fn secret_types_are_checked_and_kubernetes_own_types_refused() {
        for ok in [
            "kubernetes.io/dockerconfigjson",
            "Opaque",
            "example.org/creds_v1",
        ] {
            assert_eq!(check_type(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "has space",
            "kubernetes.io/service-account-token",
            "bootstrap.kubernetes.io/token",
        ] {
            assert!(check_type(bad).is_err(), "{bad:?}");
        }
        assert!(check_type(&"a".repeat(254)).is_err());
    }
}
