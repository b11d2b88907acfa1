//! Schema helpers for fields whose content is free-form.
//!
//! The apiserver only accepts *structural* schemas: every node has a `type`, unless it is
//! marked `x-kubernetes-preserve-unknown-fields` or `x-kubernetes-int-or-string`. schemars
//! renders `serde_json::Value` as the schema `true`, which is not structural, so fields
//! holding arbitrary JSON use these functions through `#[schemars(schema_with = ...)]`.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object whose fields the apiserver keeps as they are (`x-kubernetes-preserve-unknown-fields`).
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Any JSON value (string, number, bool, object, array), kept as it is.
pub fn preserve_unknown_value(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// A map from string keys to arbitrary JSON values.
pub fn map_of_values(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": {
            "x-kubernetes-preserve-unknown-fields": true,
        },
    })
}

/// The largest `maximum` an `int64` field's schema may have: the largest float64 below
/// 2^63. Schemas hold bounds as float64, and `i64::MAX` rounds up to 2^63, which is not an
/// int64: the API server then refuses every value of the field ("Maximum boundary value
/// must be of type integer with format int64").
pub const INT64_MAX: i64 = 9_223_372_036_854_774_784;

/// The smallest `minimum` an `int64` field's schema may have. The API server refuses
/// -2^63 (`i64::MIN`) as a bound just as it refuses 2^63, so the range is symmetric.
pub const INT64_MIN: i64 = -INT64_MAX;

/// Gives every `int32` and `int64` integer in `schema` without bounds the `minimum` and
/// `maximum` of its format.
///
/// For fields whose types come from elsewhere (Kubernetes' own types through k8s-openapi):
/// the API server stores any integer it is given unless the schema bounds it, and a typed
/// reader of the object then fails on a value its field cannot hold.
pub fn bound_integers(schema: &mut Schema) {
    let is_integer = schema.get("type").and_then(serde_json::Value::as_str) == Some("integer");
    let range = match schema.get("format").and_then(serde_json::Value::as_str) {
        Some("int32") => Some((i64::from(i32::MIN), i64::from(i32::MAX))),
        Some("int64") => Some((INT64_MIN, INT64_MAX)),
        _ => None,
    };
    if let (true, Some((min, max))) = (is_integer, range) {
        if schema.get("minimum").is_none() {
            schema.insert("minimum".into(), min.into());
        }
        if schema.get("maximum").is_none() {
            schema.insert("maximum".into(), max.into());
        }
    }
    schemars::transform::transform_subschemas(&mut bound_integers, schema);
}

/// Removes a type's own description from its schema.
///
/// Used on enums: kube inlines the schema of an `Option<Enum>` field over the field's
/// schema, so the enum's description would replace the field's documentation in
/// `kubectl explain`.
pub fn drop_description(schema: &mut Schema) {
    schema.remove("description");
}

/// Test helper: asserts that a CRD's schemas are structural, as the apiserver requires.
#[cfg(test)]
pub(crate) fn assert_structural(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) {
    let crd = serde_json::to_value(crd).expect("a CRD serialises");
    let versions = crd["spec"]["versions"].as_array().expect("versions");
    assert!(!versions.is_empty());
    for version in versions {
        let schema = &version["schema"]["openAPIV3Schema"];
        assert!(schema.is_object(), "version without schema: {version}");
        check_node(schema, "openAPIV3Schema");
    }
}

#[cfg(test)]
fn check_node(node: &serde_json::Value, at: &str) {
    let obj = node
        .as_object()
        .unwrap_or_else(|| panic!("{at}: schema is not an object: {node}"));
    for forbidden in [
        "$ref",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
        "definitions",
        "$defs",
    ] {
        assert!(
            !obj.contains_key(forbidden),
            "{at}: has {forbidden}: {node}"
        );
    }
    let free_form = obj.get("x-kubernetes-preserve-unknown-fields")
        == Some(&serde_json::json!(true))
        || obj.get("x-kubernetes-int-or-string") == Some(&serde_json::json!(true));
    assert!(
        free_form || obj.contains_key("type"),
        "{at}: no type: {node}"
    );
    assert!(
        !(obj.contains_key("properties") && obj.contains_key("additionalProperties")),
        "{at}: both properties and additionalProperties"
    );
    if let Some(props) = obj.get("properties").and_then(|p| p.as_object()) {
        for (name, sub) in props {
            check_node(sub, &format!("{at}.{name}"));
        }
    }
    if let Some(items) = obj.get("items") {
        check_node(items, &format!("{at}[]"));
    }
    if let Some(extra) = obj.get("additionalProperties") {
        assert!(
            extra.is_object(),
            "{at}: additionalProperties must be a schema"
        );
        check_node(extra, &format!("{at}{{*}}"));
    }
}
