//! Connection-Secret publishing, shared by the managed and the composite reconcilers:
//! additive (server-side apply owns only our keys), owner-referenced to the resource whose
//! details it holds, written only when a value changed.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::api::common::{ConnectionDetails, SecretReference};

/// Label on every connection Secret Tessera writes.
pub const MANAGED_BY_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "tessera");

/// Whether `secret` already holds every entry of `details` with the same value.
pub fn holds(secret: &Secret, details: &ConnectionDetails) -> bool {
    let data = secret.data.as_ref();
    details
        .0
        .iter()
        .all(|(k, v)| data.and_then(|d| d.get(k)).is_some_and(|have| have.0 == *v))
}

/// Writes `details` into the Secret `target`, owned by `owner`, unless it already holds
/// them. Keys written by others are left alone.
pub async fn publish<K: Resource<DynamicType = ()>>(
    client: &kube::Client,
    field_manager: &str,
    owner: &K,
    target: &SecretReference,
    details: &ConnectionDetails,
) -> Result<(), kube::Error> {
    let owner_ref = owner.controller_owner_ref(&());
    publish_owned(
        client,
        field_manager,
        owner_ref,
        &owner.name_any(),
        crate::shard::of(owner.labels()),
        target,
        details,
    )
    .await
    .map(|_| ())
}

/// Writes `details` into the Secret `target` with `owner` as its controller, unless it
/// already holds them; the form of [`publish`] for owners of any type (e.g. a composite
/// resource as a `DynamicObject`). Keys written by others are left alone. The Secret
/// carries the owner's shard label `shard`, if any. Returns whether the Secret was
/// written.
pub async fn publish_owned(
    client: &kube::Client,
    field_manager: &str,
    owner: Option<OwnerReference>,
    owner_name: &str,
    shard: Option<&str>,
    target: &SecretReference,
    details: &ConnectionDetails,
) -> Result<bool, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &target.namespace);
    if let Some(existing) = api.get_opt(&target.name).await?
        && holds(&existing, details)
        && shard.is_none_or(|s| crate::shard::of(existing.labels()) == Some(s))
    {
        return Ok(false);
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
        "type": "connection.tessera.dev/v1",
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
