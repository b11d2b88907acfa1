//! Kubernetes I/O on composed resources: the kinds they are of (discovery, cached), listing
//! those a composite owns, applying, deleting, and reading their connection Secrets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{GroupVersionKind, TypeMeta};
use kube::discovery::{ApiResource, Scope};
use kube::{Api, ResourceExt};
use serde_json::Value;

use crate::compose::LABEL_COMPOSITE;

/// A kind of composed resource, as the API server serves it.
#[derive(Clone, Debug)]
pub struct KindInfo {
    /// Its API resource (plural, group, version).
    pub ar: ApiResource,
    /// Whether objects of the kind live in namespaces.
    pub namespaced: bool,
}

/// Discovery of composed kinds, cached for the life of the controller: compositions use a
/// handful of kinds, and asking the API server on every reconcile would cost a request
/// per resource.
pub struct Kinds {
    client: kube::Client,
    cache: Mutex<HashMap<(String, String), Arc<KindInfo>>>,
}

impl Kinds {
    /// An empty cache.
    pub fn new(client: kube::Client) -> Self {
        Kinds {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The kind `kind` of `api_version`; asks the API server the first time.
    pub async fn resolve(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<Arc<KindInfo>, kube::Error> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(info) = self.lock().get(&key) {
            return Ok(info.clone());
        }
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (ar, caps) = kube::discovery::pinned_kind(&self.client, &gvk).await?;
        let info = Arc::new(KindInfo {
            ar,
            namespaced: caps.scope == Scope::Namespaced,
        });
        self.lock().insert(key, info.clone());
        Ok(info)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<KindInfo>>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The API of `info`'s kind for an object in `namespace` (or cluster-wide).
pub fn api(client: &kube::Client, info: &KindInfo, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace.filter(|_| info.namespaced) {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &info.ar),
        None => Api::all_with(client.clone(), &info.ar),
    }
}

/// The objects of `info`'s kind that composite `xr_name` (uid `xr_uid`) controls: labelled
/// `tessera.dev/composite=<xr_name>` and with a controller reference to that uid (a label
/// alone could be another kind's composite of the same name).
pub async fn list_owned(
    client: &kube::Client,
    info: &KindInfo,
    xr_name: &str,
    xr_uid: &str,
) -> Result<Vec<DynamicObject>, kube::Error> {
    let selector = format!("{LABEL_COMPOSITE}={xr_name}");
    let list = Api::<DynamicObject>::all_with(client.clone(), &info.ar)
        .list(&ListParams::default().labels(&selector))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|o| {
            o.owner_references()
                .iter()
                .any(|r| r.uid == xr_uid && r.controller == Some(true))
        })
        .map(|o| with_types(o, &info.ar))
        .collect())
}

/// Server-side applies `object` with `manager`, forcing ownership of the fields it sets.
pub async fn apply(
    client: &kube::Client,
    info: &KindInfo,
    object: &Value,
    manager: &str,
) -> Result<DynamicObject, kube::Error> {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str);
    let applied = api(client, info, namespace)
        .patch(
            name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(object),
        )
        .await?;
    Ok(with_types(applied, &info.ar))
}

/// Deletes `obj` (in the background: its own finalizers run first). Gone already is fine.
pub async fn delete(
    client: &kube::Client,
    info: &KindInfo,
    obj: &DynamicObject,
) -> Result<(), kube::Error> {
    let api = api(client, info, obj.namespace().as_deref());
    match api
        .delete(&obj.name_any(), &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The connection Secret `namespace/name` of a composed resource, `None` when it does not
/// exist (yet): from the store of Tessera's Secrets when it is there
/// ([`crate::secret_store`]), else from the API server. A stored copy may lag behind a
/// change by the watch's delay; the composite's next reconcile then reads the change.
///
/// A Secret the listed store does not hold is read from the API server only when its
/// resource is `ready`: before, the resource has usually not written it yet, and a
/// composite reconciled at each step of its resources' creation would ask for it each
/// time. One written a moment ago and not in the store yet is read at the reconcile that
/// the resource becoming Ready starts.
pub async fn read_secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    ready: bool,
) -> Result<Option<Arc<Secret>>, kube::Error> {
    Ok(
        crate::secret_store::lookup_expected(client, namespace, name, ready)
            .await?
            .secret,
    )
}

/// A reference to a composed resource given as JSON, for events.
pub fn reference(obj: &Value) -> ObjectReference {
    let str_at = |p: &str| obj.pointer(p).and_then(Value::as_str).map(str::to_string);
    ObjectReference {
        api_version: str_at("/apiVersion"),
        kind: str_at("/kind"),
        name: str_at("/metadata/name"),
        namespace: str_at("/metadata/namespace"),
        uid: str_at("/metadata/uid"),
        ..ObjectReference::default()
    }
}

/// List items may come without apiVersion and kind; readiness checks and comparisons want
/// the whole object.
pub fn with_types(mut obj: DynamicObject, ar: &ApiResource) -> DynamicObject {
    if obj.types.as_ref().is_none_or(|t| t.kind.is_empty()) {
        obj.types = Some(TypeMeta {
            api_version: ar.api_version.clone(),
            kind: ar.kind.clone(),
        });
    }
    obj
}
