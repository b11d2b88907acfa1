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
/// Secret is then the only copy, and a Secret it does not control is never trusted. It is
/// read from the API server, not from the store of Tessera's Secrets: a copy lagging
/// behind a write the provider just made would look like a lost secret and have it made
/// again.
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
///
/// The Secret is read from the store of Tessera's Secrets ([`crate::secret_store`]) when it
/// is there, else from the API server. A stored copy may lag behind the API server, so a
/// write decided from it is conditional: the apply names the copy's `resourceVersion`, and
/// the type replacement's delete its uid; when the API server refuses either (the Secret
/// changed, was deleted, or was created again by someone else in between), the decision is
/// made again from a GET. A stale copy can thus cost a refused request and a GET, but never
/// overwrite a Secret the copy did not describe. Only Secrets with Tessera's label are in
/// the store: someone else's is always read from the API server before it is written. With
/// [`Publish::IfExists`], a Secret the listed store does not hold is taken as absent
/// without a GET (nothing is written): until the details are complete, a Secret written a
/// moment ago and not in the store yet, or someone else's, is left as it is.
pub async fn publish_owned(
    client: &kube::Client,
    field_manager: &str,
    owner: SecretOwner<'_>,
    target: &SecretReference,
    secret_type: Option<&str>,
    details: &ConnectionDetails,
    when: Publish,
) -> Result<bool, kube::Error> {
    let write = Write {
        client,
        field_manager,
        owner: &owner,
        target,
        secret_type: secret_type.unwrap_or(DEFAULT_TYPE),
        details,
        when,
    };
    // Nothing is created with incomplete details, so no GET asks whether the Secret
    // exists: a composite reconciled before its resources are Ready would read a Secret
    // that does not exist at each pass. One the store has not seen yet is updated at a
    // later pass; someone else's, once the details are complete.
    let found = crate::secret_store::lookup_expected(
        client,
        &target.namespace,
        &target.name,
        when == Publish::Always,
    )
    .await?;
    match write.run(found.secret.as_deref(), found.cached).await {
        Err(kube::Error::Api(e)) if found.cached => {
            tracing::debug!(owner = %owner.name, secret = %target.name, code = e.code, "stored copy of the connection secret was out of date; reading it again");
            let fresh = crate::secret_store::get(client, &target.namespace, &target.name).await?;
            write.run(fresh.secret.as_deref(), false).await
        }
        done => done,
    }
}

/// One decision of [`publish_owned`].
struct Write<'a> {
    client: &'a kube::Client,
    field_manager: &'a str,
    owner: &'a SecretOwner<'a>,
    target: &'a SecretReference,
    secret_type: &'a str,
    details: &'a ConnectionDetails,
    when: Publish,
}

impl Write<'_> {
    /// Writes the Secret if `existing` (the Secret as last read; `cached`: from the store)
    /// does not hold the details yet. With `cached`, the writes are conditional on
    /// `existing` still being the Secret on the API server.
    async fn run(&self, existing: Option<&Secret>, cached: bool) -> Result<bool, kube::Error> {
        let Write {
            client,
            field_manager,
            owner,
            target,
            secret_type,
            details,
            when,
        } = self;
        let (owner_name, shard) = (owner.name, owner.shard);
        let api: Api<Secret> = Api::namespaced((*client).clone(), &target.namespace);
        if let Some(existing) = existing
            && type_of(existing) == *secret_type
            && holds(existing, details)
            && shard.is_none_or(|s| crate::shard::of(existing.labels()) == Some(s))
        {
            return Ok(false);
        }
        if existing.is_none() && *when == Publish::IfExists {
            tracing::debug!(owner = %owner_name, secret = %target.name, "connection secret waits for complete details");
            return Ok(false);
        }
        let missing = missing_keys(secret_type, |k| details.0.contains_key(k));
        if !missing.is_empty() {
            tracing::debug!(owner = %owner_name, secret = %target.name, %secret_type, ?missing, "connection secret waits for the keys its type requires");
            return Ok(false);
        }
        // The resourceVersion the apply is conditional on: the stored copy's, unless the
        // copy is deleted below.
        let mut expected_version = existing
            .filter(|_| cached)
            .and_then(|e| e.metadata.resource_version.clone());
        if let Some(existing) = existing
            && type_of(existing) != *secret_type
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
                // A stored copy that is out of date: decide again from a GET.
                Err(kube::Error::Api(e)) if cached && e.code == 409 => {
                    return Err(kube::Error::Api(e));
                }
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(e),
            }
            expected_version = None;
            tracing::info!(owner = %owner_name, secret = %target.name, from = %type_of(existing), to = %secret_type, "replacing connection secret of another type");
        }
        let data: std::collections::BTreeMap<String, ByteString> = details
            .0
            .iter()
            .map(|(k, v)| (k.clone(), ByteString(v.clone())))
            .collect();
        let owner_ref = owner.reference.clone().map(|mut r| {
            // The owner may be cluster-scoped and the Secret namespaced: a controller
            // reference is fine; blocking deletion is not needed.
            r.block_owner_deletion = None;
            r
        });
        let mut labels = json!({ MANAGED_BY_LABEL.0: MANAGED_BY_LABEL.1 });
        if let Some(shard) = shard {
            labels[crate::shard::LABEL_SHARD] = shard.into();
        }
        let mut secret = json!({
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
        if let Some(version) = expected_version {
            // The API server refuses the apply (409) when the Secret is no longer this one.
            secret["metadata"]["resourceVersion"] = version.into();
        }
        api.patch(
            &target.name,
            &PatchParams::apply(field_manager).force(),
            &Patch::Apply(&secret),
        )
        .await?;
        tracing::debug!(owner = %owner_name, secret = %target.name, keys = ?details.keys().collect::<Vec<_>>(), "published connection secret");
        Ok(true)
    }
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
