//! The composite machine's [`Effects`] against the API server.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::{DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use tracing::debug;

use super::Ctx;
use super::child_writes;
use super::children::{self, KindInfo};
use super::error::Error;
use super::machine::{ComposedSecret, Effects, KindRef, SpecRefs};
use super::select::ANNOTATION_SELECTED_BY;
use crate::api::common::{ConnectionDetails, SecretReference};
use crate::connection_secret;

/// One composite's reconcile, talking to the API server.
pub(super) struct Cluster<'a> {
    pub ctx: &'a Ctx,
    pub xr: &'a DynamicObject,
}

impl Cluster<'_> {
    /// The kind of `object` (discovery is cached: no request after the first).
    async fn kind_of(&self, object: &Value) -> Result<Arc<KindInfo>, kube::Error> {
        let str_at = |p: &str| object.pointer(p).and_then(Value::as_str).unwrap_or("");
        self.ctx
            .kinds
            .resolve(str_at("/apiVersion"), str_at("/kind"))
            .await
    }

    fn manager(&self) -> String {
        crate::naming::composites_manager(&self.ctx.opts.field_manager)
    }

    /// The field manager of this composite's composed resources: one per composite, so
    /// one composite's apply never takes fields from another's.
    pub fn composed_manager(&self) -> String {
        format!("{}/{}", self.manager(), self.xr.name_any())
    }
}

#[async_trait]
impl Effects for Cluster<'_> {
    async fn observe(&self, kinds: &[KindRef]) -> Result<Vec<Value>, Error> {
        let mut resolved: BTreeMap<(String, String), Arc<KindInfo>> = BTreeMap::new();
        for k in kinds {
            match (
                self.ctx.kinds.resolve(&k.api_version, &k.kind).await,
                &k.resource,
            ) {
                (Ok(info), _) => {
                    resolved.insert((info.ar.group.clone(), info.ar.kind.clone()), info);
                }
                (Err(source), Some(resource)) => {
                    return Err(Error::Discover {
                        resource: resource.clone(),
                        api_version: k.api_version.clone(),
                        kind: k.kind.clone(),
                        source: Box::new(source),
                    });
                }
                // A kind recorded earlier and no longer served has no objects left.
                (Err(e), None) => {
                    debug!(kind = %k.kind, error = %e, "kind of a recorded resource is not served")
                }
            }
        }
        let children = self.ctx.owned_children(self.xr, resolved.values()).await?;
        Ok(children
            .into_iter()
            .map(|(obj, _)| serde_json::to_value(&obj).unwrap_or_default())
            .collect())
    }

    async fn apply(&self, object: &Value) -> Result<Value, kube::Error> {
        let info = self.kind_of(object).await?;
        let manager = self.composed_manager();
        let str_at = |p: &str| object.pointer(p).and_then(Value::as_str);
        let (namespace, name) = (
            str_at("/metadata/namespace").filter(|_| info.namespaced),
            str_at("/metadata/name").unwrap_or_default(),
        );
        let replaced = self.ctx.watches.cached_version(&info.ar, namespace, name);
        let applied = children::apply(&self.ctx.client, &info, object, &manager).await?;
        self.ctx.child_writes.record(
            &self.xr.uid().unwrap_or_default(),
            child_writes::key(&info.ar.group, &info.ar.kind, namespace, name),
            replaced,
            true,
        );
        Ok(serde_json::to_value(&applied).unwrap_or_default())
    }

    async fn delete(&self, object: &Value) -> Result<(), kube::Error> {
        let info = self.kind_of(object).await?;
        let Ok(obj) = serde_json::from_value::<DynamicObject>(object.clone()) else {
            return Ok(());
        };
        children::delete(&self.ctx.client, &info, &obj).await?;
        self.ctx.child_writes.record(
            &self.xr.uid().unwrap_or_default(),
            child_writes::key(
                &info.ar.group,
                &info.ar.kind,
                obj.namespace().as_deref(),
                &obj.name_any(),
            ),
            obj.resource_version(),
            false,
        );
        Ok(())
    }

    async fn read_secret(
        &self,
        secret: &SecretReference,
        ready: bool,
    ) -> Result<Option<ComposedSecret>, kube::Error> {
        let secret =
            children::read_secret(&self.ctx.client, &secret.namespace, &secret.name, ready).await?;
        Ok(secret.map(|s| ComposedSecret {
            controller_uid: s
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map(|o| o.uid.clone()),
            details: ConnectionDetails(
                s.data
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.0.clone()))
                    .collect(),
            ),
        }))
    }

    async fn publish_secret(
        &self,
        secret: &SecretReference,
        secret_type: Option<&str>,
        details: &ConnectionDetails,
        create: bool,
    ) -> Result<bool, kube::Error> {
        let owner = OwnerReference {
            api_version: self.ctx.xr.api_version.clone(),
            kind: self.ctx.xr.kind.clone(),
            name: self.xr.name_any(),
            uid: self.xr.uid().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: None,
        };
        let name = self.xr.name_any();
        connection_secret::publish_owned(
            &self.ctx.client,
            &self.manager(),
            connection_secret::SecretOwner {
                reference: Some(owner),
                name: &name,
                shard: crate::shard::of(self.xr.labels()),
            },
            secret,
            secret_type,
            details,
            if create {
                connection_secret::Publish::Always
            } else {
                connection_secret::Publish::IfExists
            },
        )
        .await
    }

    /// Server-side apply: the composite is not owned by Git (its claim is).
    async fn write_refs(&self, refs: &SpecRefs) -> Result<Option<i64>, kube::Error> {
        let mut spec = serde_json::Map::new();
        if let Some(c) = &refs.composition {
            spec.insert("compositionRef".into(), json!({ "name": c }));
        }
        if let Some(r) = &refs.revision {
            spec.insert("compositionRevisionRef".into(), json!({ "name": r }));
        }
        spec.insert("resourceRefs".into(), json!(refs.resources));
        let mut metadata = json!({ "name": self.xr.name_any() });
        if let Some(selected_by) = &refs.selected_by {
            metadata["annotations"] = json!({ ANNOTATION_SELECTED_BY: selected_by });
        }
        // The spec as read with these references: when the written composite has exactly
        // this spec, nobody else changed it in between.
        let mut expected = self.xr.data.get("spec").cloned().unwrap_or(json!({}));
        if let Some(expected) = expected.as_object_mut() {
            expected.extend(spec.clone());
        }
        let body = json!({
            "apiVersion": self.ctx.xr.api_version,
            "kind": self.ctx.xr.kind,
            "metadata": metadata,
            "spec": spec,
        });
        let written = self
            .ctx
            .api()
            .patch(
                &self.xr.name_any(),
                &PatchParams::apply(&self.manager()).force(),
                &Patch::Apply(&body),
            )
            .await?;
        Ok(written
            .metadata
            .generation
            .filter(|_| written.data.get("spec") == Some(&expected)))
    }
}
