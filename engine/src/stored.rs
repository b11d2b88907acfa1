//! Objects of kinds known only at runtime (claims, composites, composed resources) as the
//! watch stores hold them: the metadata, which kube's machinery and the store's filters
//! read (name, namespace, labels, owners, ...), and the rest of the object as compact JSON
//! text.
//!
//! A [`DynamicObject`] holds its fields as a tree of `serde_json` values, where every
//! JSON object with at least one field costs a whole B-tree node (about 600 bytes) however
//! few fields it has: a composite of 3.5 KB of JSON took well over 10 KB in a store. The
//! text takes its own size. A reconcile reads its object once, [`StoredObject::expand`]
//! parses it back (a few microseconds for a small object). The metadata is held once,
//! parsed, but for its `managedFields` entries, which stay text (parsed, an entry's
//! `fieldsV1` is such a tree of values).
//!
//! ```text
//!  watch ──DynamicObject──▶ trim (scaffold::Keep) ──▶ StoredObject::new ──▶ store
//!                                                            reconcile ◀── expand()
//! ```

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use futures::future::{self, Either};
use kube::runtime::controller::Action;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::Resource;
use kube::api::{DynamicObject, ObjectMeta, TypeMeta};
use kube::core::DynamicResourceScope;
use kube::discovery::ApiResource;
use kube::runtime::watcher;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::scaffold::panics;

/// An object of a kind known at runtime, as a watch store holds it.
#[derive(Clone, Debug)]
pub struct StoredObject {
    /// The object's metadata but its `managedFields`, except the panic report's entries
    /// (which the reconcile loop reads from the metadata).
    metadata: ObjectMeta,
    /// The rest of the object: `apiVersion`, `kind`, the other `managedFields` entries kept
    /// (under `metadata`: parsed, an entry's `fieldsV1` is a tree of JSON values, several
    /// times its text), `spec`, `status`, ...
    json: Box<RawValue>,
}

/// The stored text could not be read back into an object.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the cached copy of {name}: {source}")]
pub struct ExpandError {
    /// The object's name.
    pub name: String,
    /// Why.
    #[source]
    pub source: serde_json::Error,
}

impl StoredObject {
    /// `obj`, already trimmed to what the store keeps, in its stored form.
    pub fn new(obj: DynamicObject) -> Result<Self, serde_json::Error> {
        /// The metadata the text holds.
        #[derive(Serialize)]
        struct TextMeta {
            #[serde(rename = "managedFields")]
            managed_fields: Vec<ManagedFieldsEntry>,
        }
        /// What the text holds.
        #[derive(Serialize)]
        struct Text<'a> {
            #[serde(flatten)]
            types: &'a Option<TypeMeta>,
            #[serde(skip_serializing_if = "Option::is_none")]
            metadata: Option<TextMeta>,
            #[serde(flatten)]
            data: &'a serde_json::Value,
        }
        let DynamicObject {
            types,
            mut metadata,
            data,
        } = obj;
        let (report, rest): (Vec<_>, Vec<_>) = metadata
            .managed_fields
            .take()
            .unwrap_or_default()
            .into_iter()
            .partition(|e| e.manager.as_deref() == Some(panics::FIELD_MANAGER));
        metadata.managed_fields = (!report.is_empty()).then_some(report);
        let json = serde_json::value::to_raw_value(&Text {
            types: &types,
            metadata: (!rest.is_empty()).then_some(TextMeta {
                managed_fields: rest,
            }),
            data: &data,
        })?;
        Ok(StoredObject { metadata, json })
    }

    /// The object with all its fields.
    pub fn expand(&self) -> Result<DynamicObject, ExpandError> {
        let mut obj: DynamicObject =
            serde_json::from_str(self.json.get()).map_err(|e| self.error(e))?;
        let kept = obj.metadata.managed_fields.take();
        obj.metadata = self.metadata.clone();
        if let Some(kept) = kept {
            let entries = obj.metadata.managed_fields.get_or_insert_with(Vec::new);
            entries.splice(0..0, kept);
        }
        Ok(obj)
    }

    /// The object with all its fields, as the typed object `T` (a managed resource).
    pub fn typed<T: DeserializeOwned>(&self) -> Result<T, ExpandError> {
        self.value()
            .and_then(serde_json::from_value)
            .map_err(|e| self.error(e))
    }

    /// The object with all its fields as one JSON value, the text parsed once.
    fn value(&self) -> Result<serde_json::Value, serde_json::Error> {
        use serde_json::Value;
        let mut obj: serde_json::Map<String, Value> = serde_json::from_str(self.json.get())?;
        let mut metadata = serde_json::to_value(&self.metadata)?;
        // The entries kept in the text come first, as in `expand`.
        if let Some(Value::Array(mut entries)) = obj
            .remove("metadata")
            .and_then(|mut m| m.get_mut("managedFields").map(Value::take))
        {
            if let Some(Value::Array(report)) = metadata.get_mut("managedFields").map(Value::take) {
                entries.extend(report);
            }
            metadata["managedFields"] = Value::Array(entries);
        }
        obj.insert("metadata".to_string(), metadata);
        Ok(Value::Object(obj))
    }

    fn error(&self, source: serde_json::Error) -> ExpandError {
        ExpandError {
            name: self.metadata.name.clone().unwrap_or_default(),
            source,
        }
    }
}

impl Resource for StoredObject {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Serialized as the object it stands for.
impl Serialize for StoredObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value()
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

/// Read as a whole object (nothing trimmed).
impl<'de> Deserialize<'de> for StoredObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let obj = DynamicObject::deserialize(deserializer)?;
        StoredObject::new(obj).map_err(serde::de::Error::custom)
    }
}

/// A watch event of `DynamicObject`s as one of [`StoredObject`]s, each trimmed by `trim`
/// first. An object that cannot be written as JSON (it was just read from JSON: it does
/// not happen) makes the event an error of the watch.
pub fn event(
    event: watcher::Event<DynamicObject>,
    trim: &mut impl FnMut(&mut DynamicObject),
) -> Result<watcher::Event<StoredObject>, watcher::Error> {
    let mut store = |mut obj: DynamicObject| {
        trim(&mut obj);
        StoredObject::new(obj).map_err(|e| watcher::Error::WatchFailed(kube::Error::SerdeError(e)))
    };
    Ok(match event {
        watcher::Event::Apply(obj) => watcher::Event::Apply(store(obj)?),
        watcher::Event::Delete(obj) => watcher::Event::Delete(store(obj)?),
        watcher::Event::InitApply(obj) => watcher::Event::InitApply(store(obj)?),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
    })
}

/// The future of a [`reading`] reconcile.
pub type Expanded<Fut, E> = Either<Fut, future::Ready<Result<Action, E>>>;

/// `reconcile`, which reads what `read` makes of a stored object (a `DynamicObject`:
/// [`StoredObject::expand`]; the typed object of a managed resource:
/// [`StoredObject::typed`]), as the reconcile of a controller whose store holds
/// [`StoredObject`]s.
pub fn reading<T: 'static, C, E, F, Fut>(
    read: fn(&StoredObject) -> Result<T, ExpandError>,
    reconcile: F,
) -> impl Fn(Arc<StoredObject>, Arc<C>) -> Expanded<Fut, E> + Send + Sync + 'static
where
    F: Fn(Arc<T>, Arc<C>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>>,
    E: From<ExpandError>,
{
    move |obj, ctx| match read(&obj) {
        Ok(obj) => Either::Left(reconcile(Arc::new(obj), ctx)),
        Err(e) => Either::Right(future::ready(Err(e.into()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object() -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "platform.example.org/v1alpha1", "kind": "XPostgresDatabase",
            "metadata": {
                "name": "orders", "uid": "u1", "resourceVersion": "7",
                "labels": { "tessera.dev/claim-name": "orders" },
                "managedFields": [
                    { "manager": "tessera/claim", "operation": "Apply",
                      "fieldsV1": { "f:spec": { "f:size": {} } } },
                    { "manager": panics::FIELD_MANAGER, "operation": "Apply",
                      "subresource": "status", "fieldsV1": { "f:status": {} } },
                ],
            },
            "spec": { "size": 10, "nested": { "list": [1, "two", { "three": 3.5 }] } },
            "status": { "conditions": [{ "type": "Ready", "status": "True" }] },
        }))
        .expect("object")
    }

    #[test]
    fn an_object_reads_back_whole_and_its_metadata_is_held_once() {
        let stored = StoredObject::new(object()).expect("stored");
        assert_eq!(stored.expand().expect("expand"), object());
        let meta = stored.meta();
        assert_eq!(meta.name.as_deref(), Some("orders"));
        assert_eq!(meta.resource_version.as_deref(), Some("7"));
        assert_eq!(meta.labels.as_ref().map(|l| l.len()), Some(1));
        let managers: Vec<_> = meta
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|e| e.manager.as_deref())
            .collect();
        assert_eq!(managers, [panics::FIELD_MANAGER]);
        // The text holds the rest of the object and of `managedFields`, not a second copy
        // of the metadata.
        let text: serde_json::Value = serde_json::from_str(stored.json.get()).expect("text");
        let mut rest = serde_json::to_value(object()).expect("object");
        let fields = rest.pointer("/metadata/managedFields/0").cloned();
        rest["metadata"] = json!({ "managedFields": [fields] });
        assert_eq!(text, rest);
        assert_eq!(
            serde_json::to_value(&stored).expect("serialize"),
            serde_json::to_value(object()).expect("serialize")
        );
    }

    #[test]
    fn an_object_reads_back_as_a_typed_object_with_all_its_metadata() {
        #[derive(Deserialize)]
        struct Typed {
            metadata: ObjectMeta,
            spec: serde_json::Value,
        }
        let stored = StoredObject::new(object()).expect("stored");
        let typed: Typed = stored.typed().expect("typed");
        assert_eq!(typed.metadata, object().metadata);
        assert_eq!(typed.spec["size"], 10);
    }

    #[test]
    fn events_are_trimmed_before_they_are_stored() {
        let mut trim = |o: &mut DynamicObject| {
            crate::objects::trim_for_store(&mut o.metadata, |m| m == "tessera/claim")
        };
        let watcher::Event::Apply(stored) =
            event(watcher::Event::Apply(object()), &mut trim).expect("event")
        else {
            panic!("not an Apply");
        };
        let back = stored.expand().expect("expand");
        let managers: Vec<_> = back
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|e| e.manager.as_deref())
            .collect();
        assert_eq!(managers, ["tessera/claim"]);
        assert_eq!(back.data, object().data);
        assert!(matches!(
            event(watcher::Event::InitDone, &mut trim),
            Ok(watcher::Event::InitDone)
        ));
    }
}
