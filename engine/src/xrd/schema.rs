//! The engine's own fields in the schemas of generated composite and claim CRDs, and the
//! merge of those fields into the schema an XRD declares.
//!
//! Every field carries a description: it is what `kubectl explain` shows to the people
//! who write claims.

use serde_json::{Map, Value, json};

use super::error::XrdError;

/// Which of the two CRDs of an XRD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrdKind {
    /// The cluster-scoped composite resource (XR).
    Composite,
    /// The namespaced claim.
    Claim,
}

impl CrdKind {
    /// Value of the `tessera.dev/xrd-crd` label of a generated CRD.
    pub fn label(self) -> &'static str {
        match self {
            CrdKind::Composite => "composite",
            CrdKind::Claim => "claim",
        }
    }
}

/// Merges the engine's fields into the `openAPIV3Schema` an XRD version declares.
///
/// The engine's fields replace same-named fields of the XRD's schema; everything else
/// (descriptions, `required`, validations, defaults) is kept as written.
pub(crate) fn merge(user: Option<&Value>, kind: CrdKind, version: &str) -> Result<Value, XrdError> {
    let invalid = |reason: &str| XrdError::Schema {
        version: version.to_string(),
        reason: reason.to_string(),
    };
    let mut root = match user {
        None => json!({ "type": "object" }),
        Some(Value::Object(o)) => Value::Object(o.clone()),
        Some(_) => return Err(invalid("must be an object")),
    };
    if root.get("type") != Some(&json!("object")) {
        return Err(invalid("must have type: object at its root"));
    }
    let root_obj = object_mut(&mut root);
    let mut props = match root_obj.remove("properties") {
        None => Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) => return Err(invalid("has properties that are not an object")),
    };
    props.insert("apiVersion".into(), json!({ "type": "string" }));
    props.insert("kind".into(), json!({ "type": "string" }));
    props.insert("metadata".into(), json!({ "type": "object" }));
    let spec = section(props.remove("spec"), "spec", version)?;
    props.insert("spec".into(), with_fields(spec, spec_fields(kind)));
    let status = section(props.remove("status"), "status", version)?;
    props.insert("status".into(), with_fields(status, status_fields(kind)));
    root_obj.insert("properties".into(), Value::Object(props));

    let required = root_obj
        .entry("required")
        .or_insert_with(|| Value::Array(Vec::new()));
    match required {
        Value::Array(list) if !list.contains(&json!("spec")) => list.push(json!("spec")),
        Value::Array(_) => {}
        _ => return Err(invalid("has required that is not a list")),
    }
    Ok(root)
}

/// `spec` or `status` of the XRD's schema: absent, or an object schema.
fn section(node: Option<Value>, name: &str, version: &str) -> Result<Value, XrdError> {
    let node = node.unwrap_or_else(|| json!({ "type": "object" }));
    let is_object = node.get("type") == Some(&json!("object"));
    let props_ok = node.get("properties").is_none_or(Value::is_object);
    if !is_object || !props_ok {
        return Err(XrdError::Schema {
            version: version.to_string(),
            reason: format!("declares {name} that is not of type: object"),
        });
    }
    Ok(node)
}

fn with_fields(mut node: Value, fields: Map<String, Value>) -> Value {
    let obj = object_mut(&mut node);
    let props = obj
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(props) = props {
        props.extend(fields);
    }
    node
}

fn object_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    match v {
        Value::Object(o) => o,
        _ => unreachable!("just made an object"),
    }
}

fn spec_fields(kind: CrdKind) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert(
        "compositionRef".into(),
        reference(
            "The Composition to use. When omitted, compositionSelector picks one, or the \
             XRD's defaultCompositionRef is used.",
            "Name of the Composition.",
        ),
    );
    fields.insert(
        "compositionSelector".into(),
        json!({
            "type": "object",
            "description": "Selects a Composition by its labels when compositionRef is omitted.",
            "required": ["matchLabels"],
            "properties": {
                "matchLabels": {
                    "type": "object",
                    "description": "Labels the Composition must have, e.g. {provider: aws, env: prod}.",
                    "additionalProperties": { "type": "string" },
                },
            },
        }),
    );
    fields.insert(
        "compositionRevisionRef".into(),
        reference(
            "The CompositionRevision to use. Tessera moves it to each new revision unless \
             compositionUpdatePolicy is Manual.",
            "Name of the CompositionRevision.",
        ),
    );
    fields.insert(
        "compositionUpdatePolicy".into(),
        json!({
            "type": "string",
            "description": "Automatic moves this resource to each new revision of its \
                            Composition; Manual keeps it on compositionRevisionRef. Defaults to \
                            the XRD's defaultCompositionUpdatePolicy.",
            "enum": ["Automatic", "Manual"],
        }),
    );
    match kind {
        CrdKind::Composite => {
            fields.insert(
                "writeConnectionSecretToRef".into(),
                json!({
                    "type": "object",
                    "description": "The Secret into which the connection details of this \
                                    composite resource are written.",
                    "required": ["name", "namespace"],
                    "properties": {
                        "name": { "type": "string", "description": "Name of the Secret." },
                        "namespace": { "type": "string", "description": "Namespace of the Secret." },
                    },
                }),
            );
            fields.insert(
                "resourceRefs".into(),
                json!({
                    "type": "array",
                    "description": "The composed resources of this composite resource. Written by Tessera.",
                    "x-kubernetes-list-type": "atomic",
                    "items": object_ref(
                        "A composed resource.",
                        &[("apiVersion", "API version of the composed resource."),
                          ("kind", "Kind of the composed resource."),
                          ("name", "Name of the composed resource.")],
                    ),
                }),
            );
            fields.insert(
                "claimRef".into(),
                object_ref(
                    "The claim this composite resource was created for, if any. Written by Tessera.",
                    &[
                        ("apiVersion", "API version of the claim."),
                        ("kind", "Kind of the claim."),
                        ("name", "Name of the claim."),
                        ("namespace", "Namespace of the claim."),
                    ],
                ),
            );
        }
        CrdKind::Claim => {
            // Name only: a claim can never write into another namespace.
            fields.insert(
                "writeConnectionSecretToRef".into(),
                json!({
                    "type": "object",
                    "description": "The Secret, in this claim's namespace, into which the \
                                    connection details are written (e.g. for envFrom).",
                    "required": ["name"],
                    "properties": {
                        "name": { "type": "string", "description": "Name of the Secret." },
                    },
                }),
            );
        }
    }
    fields
}

fn status_fields(kind: CrdKind) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert(
        "conditions".into(),
        json!({
            "type": "array",
            "description": "Conditions of this resource: Ready (it is usable) and Synced (its \
                            last reconcile succeeded), each with the generation it describes.",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
            "items": {
                "type": "object",
                "description": "A condition, compatible with metav1.Condition.",
                "required": ["type", "status"],
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {
                    "type": { "type": "string", "description": "Type of the condition, e.g. Ready." },
                    "status": { "type": "string", "description": "True, False or Unknown." },
                    "reason": { "type": "string", "description": "Machine-readable reason for the last transition." },
                    "message": { "type": "string", "description": "What is wrong and what to do about it." },
                    "lastTransitionTime": { "type": "string", "description": "When the status last changed (RFC 3339)." },
                    "observedGeneration": { "type": "integer", "format": "int64", "minimum": 0, "maximum": crate::api::schema::INT64_MAX, "description": "The metadata.generation the condition describes." },
                },
            },
        }),
    );
    fields.insert(
        "observedGeneration".into(),
        json!({
            "type": "integer",
            "format": "int64",
            "minimum": 0,
            "maximum": crate::api::schema::INT64_MAX,
            "description": "The metadata.generation most recently reconciled.",
        }),
    );
    match kind {
        CrdKind::Composite => {
            fields.insert(
                "connectionDetails".into(),
                json!({
                    "type": "object",
                    "description": "About the connection Secret of this composite resource.",
                    "properties": {
                        "lastPublishedTime": {
                            "type": "string",
                            "format": "date-time",
                            "description": "When the connection Secret was last written.",
                        },
                    },
                }),
            );
        }
        CrdKind::Claim => {
            fields.insert(
                "resourceRef".into(),
                object_ref(
                    "The composite resource this claim is bound to. Written by Tessera.",
                    &[
                        ("apiVersion", "API version of the composite resource."),
                        ("kind", "Kind of the composite resource."),
                        ("name", "Name of the composite resource."),
                    ],
                ),
            );
        }
    }
    fields
}

fn reference(description: &str, name: &str) -> Value {
    json!({
        "type": "object",
        "description": description,
        "required": ["name"],
        "properties": { "name": { "type": "string", "description": name } },
    })
}

/// An atomic object of required string fields.
fn object_ref(description: &str, fields: &[(&str, &str)]) -> Value {
    let props: Map<String, Value> = fields
        .iter()
        .map(|(k, d)| (k.to_string(), json!({ "type": "string", "description": d })))
        .collect();
    let required: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
    json!({
        "type": "object",
        "description": description,
        "x-kubernetes-map-type": "atomic",
        "required": required,
        "properties": props,
    })
}
