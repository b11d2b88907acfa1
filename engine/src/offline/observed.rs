//! Observed composed resources for `tessera render --observed`: matched to the rendered
//! ones by identity (group, kind, name), as the composite controller matches live objects,
//! with the connection details from their Secrets among the same files.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

use super::Problems;
use super::documents::{Document, read_paths, str_at};
use crate::api::common::ConnectionDetails;
use crate::api::composition::{CompositionSpec, ConnectionDetailType};
use crate::compose::{ObservedResource, RenderedResource};
use crate::objects::ObjectKey;

/// Observed composed resources (by `resources[].name`) and their connection details.
pub(super) struct Observed {
    objects: BTreeMap<String, Document>,
    connections: BTreeMap<String, ConnectionDetails>,
    empty: ConnectionDetails,
}

impl Observed {
    /// The observed resources as [`observe`] takes them.
    pub(super) fn live(&self) -> BTreeMap<String, ObservedResource<'_>> {
        self.objects
            .iter()
            .map(|(name, doc)| {
                let connection = self.connections.get(name).unwrap_or(&self.empty);
                (
                    name.clone(),
                    ObservedResource {
                        object: &doc.object,
                        connection,
                    },
                )
            })
            .collect()
    }
}

pub(super) fn read_observed(
    path: &Path,
    composition: &CompositionSpec,
    rendered: &[RenderedResource],
    notes: &mut Vec<String>,
) -> Result<Observed, Problems> {
    let (docs, _, problems) = read_paths(&[path.to_path_buf()]);
    if !problems.is_empty() {
        return Err(Problems(problems));
    }
    let mut secrets: BTreeMap<(String, String), ConnectionDetails> = BTreeMap::new();
    let mut objects: BTreeMap<String, Document> = BTreeMap::new();
    for doc in docs {
        if doc.api_version() == "v1" && doc.kind() == "Secret" {
            let ns = str_at(&doc.object, "/metadata/namespace").to_string();
            secrets.insert((ns, doc.name().to_string()), secret_data(&doc)?);
            continue;
        }
        let key = ObjectKey::of(&doc.object);
        let Some(r) = rendered
            .iter()
            .find(|r| key.is_some() && ObjectKey::of(&r.object) == key)
        else {
            notes.push(format!(
                "{}:{}: {} is not a resource of this composite; ignored",
                doc.file,
                doc.line,
                doc.resource()
            ));
            continue;
        };
        if let Some(other) = objects.get(&r.template) {
            return Err(doc
                .problem(
                    "",
                    format!("observed twice (also at {}:{})", other.file, other.line),
                )
                .into());
        }
        objects.insert(r.template.clone(), doc);
    }
    // As the composite controller: the Secret of each resource whose template reads it.
    let mut connections = BTreeMap::new();
    for template in &composition.resources {
        let reads_secret = template
            .connection_details
            .iter()
            .any(|c| c.detail_type() == Some(ConnectionDetailType::FromConnectionSecretKey));
        let Some(doc) = objects.get(&template.name).filter(|_| reads_secret) else {
            continue;
        };
        let ns = str_at(&doc.object, "/spec/writeConnectionSecretToRef/namespace").to_string();
        let name = str_at(&doc.object, "/spec/writeConnectionSecretToRef/name").to_string();
        match secrets.get(&(ns.clone(), name.clone())) {
            Some(details) => {
                connections.insert(template.name.clone(), details.clone());
            }
            None => notes.push(format!(
                "resource '{}': its connection Secret {ns}/{name} is not among the observed files",
                template.name
            )),
        }
    }
    Ok(Observed {
        objects,
        connections,
        empty: ConnectionDetails::new(),
    })
}

/// The data of a Secret: `data` (base64) and `stringData`.
fn secret_data(doc: &Document) -> Result<ConnectionDetails, Problems> {
    let mut details = ConnectionDetails::new();
    if let Some(data) = doc.object.get("data").and_then(Value::as_object) {
        for (key, value) in data {
            let bytes = BASE64
                .decode(value.as_str().unwrap_or_default())
                .map_err(|_| {
                    Problems::from(doc.problem("", format!("data.{key} is not base64")))
                })?;
            details.insert(key.clone(), bytes);
        }
    }
    if let Some(data) = doc.object.get("stringData").and_then(Value::as_object) {
        for (key, value) in data {
            details.insert(key.clone(), value.as_str().unwrap_or_default());
        }
    }
    Ok(details)
}
