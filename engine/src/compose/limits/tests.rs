//! Every bound of [`super`], exercised through the public functions that enforce it: each
//! input is refused before the work, with an error naming the field, where before the fix it
//! allocated without bound, overflowed or panicked.

use serde_json::{Value, json};

use super::*;
use crate::api::composition::{CompositionSpec, Patch, Transform};
use crate::compose::{ComposeError, FieldPath, apply_patch, apply_transforms, render};

fn transforms(value: Value) -> Vec<Transform> {
    serde_json::from_value(value).expect("transforms in test")
}

fn patch(value: Value) -> Patch {
    serde_json::from_value(value).expect("patch in test")
}

fn nested(depth: usize) -> Value {
    (0..depth).fold(json!("leaf"), |inner, _| {
        Value::Object(serde_json::Map::from_iter([("a".to_string(), inner)]))
    })
}

#[test]
fn a_huge_format_width_is_an_error_at_once_not_an_allocation() {
    for fmt in [
        "%99999999999s",
        "%999999999999999999999999999s",
        "%.99999999f",
        "x%1025d",
    ] {
        let err = apply_transforms(
            &transforms(json!([{"type": "string", "string": {"fmt": fmt}}])),
            json!(7),
        )
        .expect_err(fmt)
        .to_string();
        assert!(
            err.starts_with("transform 0 (string): format")
                && err.contains("larger than the limit of 1024"),
            "{fmt}: {err}"
        );
    }
}

#[test]
fn a_format_width_at_the_limit_still_pads() {
    let out = apply_transforms(
        &transforms(json!([{"type": "string", "string": {"fmt": "%1024s"}}])),
        json!("x"),
    )
    .unwrap();
    assert_eq!(out.as_str().map(str::len), Some(MAX_FORMAT_WIDTH));
}

#[test]
fn a_combine_format_width_beyond_the_limit_names_the_target_field() {
    let p = patch(json!({
        "type": "CombineFromComposite",
        "combine": {
            "variables": [{"fromFieldPath": "spec.name"}],
            "strategy": "string",
            "string": {"fmt": "%99999999999s"}
        },
        "toFieldPath": "spec.forProvider.name"
    }));
    let mut to = json!({});
    let err = apply_patch(&p, &json!({"spec": {"name": "orders"}}), &mut to).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("field spec.forProvider.name: format"),
        "{err}"
    );
}

#[test]
fn a_huge_list_index_in_a_field_path_is_an_error_not_an_allocation_or_overflow() {
    for path in [
        "spec.items[100000000]",
        "spec.items[18446744073709551615]",
        "spec.items[99999999999999999999999999]",
        "spec.items[4097].name",
    ] {
        let err = FieldPath::parse(path).expect_err(path);
        assert_eq!(
            err,
            ComposeError::FieldPath {
                path: path.to_string(),
                reason: format!(
                    "index [{}] is larger than the limit of 4096",
                    &path[path.find('[').unwrap() + 1..path.find(']').unwrap()]
                ),
            },
            "{path}"
        );
    }
}

#[test]
fn a_patch_to_a_huge_list_index_fails_naming_the_path_and_writes_nothing() {
    let p = patch(
        json!({"fromFieldPath": "spec.x", "toFieldPath": "spec.items[18446744073709551615]"}),
    );
    let mut to = json!({});
    let err = apply_patch(&p, &json!({"spec": {"x": 1}}), &mut to).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("field path \"spec.items[18446744073709551615]\": index"),
        "{err}"
    );
    assert_eq!(to, json!({}));
}

#[test]
fn a_list_index_at_the_limit_still_works() {
    let path = FieldPath::parse("items[4096]").unwrap();
    let mut root = json!({});
    path.set(&mut root, json!("last")).unwrap();
    assert_eq!(
        root["items"].as_array().map(Vec::len),
        Some(MAX_FIELD_PATH_INDEX + 1)
    );
}

#[test]
fn a_field_path_with_too_many_segments_is_an_error() {
    let long = vec!["a"; MAX_FIELD_PATH_SEGMENTS + 1].join(".");
    let err = FieldPath::parse(&long).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("has 65 segments, more than the limit of 64"),
        "{err}"
    );
    let at_limit = vec!["a"; MAX_FIELD_PATH_SEGMENTS].join(".");
    assert!(FieldPath::parse(&at_limit).is_ok());
}

#[test]
fn a_regexp_longer_than_the_limit_is_an_error() {
    let re = "a".repeat(MAX_REGEX_LEN + 1);
    let err = apply_transforms(
        &transforms(
            json!([{"type": "string", "string": {"type": "Regexp", "regexp": {"match": re}}}]),
        ),
        json!("aaa"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "transform 0 (string): regexp is 1025 bytes long, more than the limit of 1024"
    );
}

#[test]
fn a_regexp_whose_compiled_form_exceeds_the_limit_is_an_error_at_once() {
    let err = apply_transforms(
        &transforms(json!([{"type": "match", "match": {"patterns": [
            {"type": "regexp", "regexp": "(?:\\w{500}){500}", "result": 1}
        ]}}])),
        json!("aaa"),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("transform 0 (match): pattern 0: invalid regexp")
            && err.to_string().contains("exceeds size limit"),
        "{err}"
    );
}

#[test]
fn a_value_nested_deeper_than_the_limit_is_refused_by_transforms() {
    let err = apply_transforms(
        &transforms(
            json!([{"type": "string", "string": {"type": "Convert", "convert": "ToJson"}}]),
        ),
        nested(MAX_VALUE_DEPTH + 1),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "transform 0 (string): input nests deeper than the limit of 64 levels"
    );
    assert!(
        apply_transforms(
            &transforms(
                json!([{"type": "string", "string": {"type": "Convert", "convert": "ToJson"}}])
            ),
            nested(MAX_VALUE_DEPTH),
        )
        .is_ok()
    );
}

#[test]
fn a_json_string_converted_to_a_deeper_object_than_the_limit_is_refused() {
    let text = serde_json::to_string(&nested(MAX_VALUE_DEPTH + 1)).unwrap();
    let err = apply_transforms(
        &transforms(
            json!([{"type": "convert", "convert": {"toType": "object", "format": "json"}}]),
        ),
        json!(text),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "transform 0 (convert): output nests deeper than the limit of 64 levels"
    );
}

#[test]
fn a_patch_of_a_value_nested_deeper_than_the_limit_names_the_source_field() {
    let p = patch(json!({"fromFieldPath": "spec.deep", "toFieldPath": "spec.forProvider.deep"}));
    let mut to = json!({});
    let err = apply_patch(
        &p,
        &json!({"spec": {"deep": nested(MAX_VALUE_DEPTH + 1)}}),
        &mut to,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "field spec.deep: the value nests deeper than the limit of 64 levels"
    );
    assert_eq!(to, json!({}));
}

#[test]
fn deeper_than_stops_at_the_limit_whatever_the_depth() {
    // 10,000 levels would overflow a recursive walk to the bottom. (`json!([deep])` would
    // serialise `deep` recursively, so the list is built by hand.)
    let mut deep = json!(1);
    for _ in 0..10_000 {
        deep = Value::Array(vec![deep]);
    }
    assert!(deeper_than(&deep, MAX_VALUE_DEPTH));
    assert!(!deeper_than(&nested(3), 3));
    assert!(deeper_than(&nested(4), 3));
    assert!(!deeper_than(&json!("scalar"), 0));
    // Taken apart level by level: dropping 10,000 levels recursively may overflow the stack.
    while let Value::Array(mut items) = deep {
        deep = items.pop().unwrap_or(Value::Null);
    }
}

#[test]
fn chained_transforms_cannot_grow_a_string_without_bound() {
    let to_base64 = json!({"type": "string", "string": {"type": "Convert", "convert": "ToBase64"}});
    let chain = transforms(Value::Array(vec![to_base64; 60]));
    let err = apply_transforms(&chain, json!("x".repeat(1024))).unwrap_err();
    let ComposeError::Transform { index, reason, .. } = &err else {
        panic!("not a transform error: {err}");
    };
    assert!(*index < 30, "{err}");
    assert!(reason.ends_with("more than the limit of 1048576"), "{err}");
}

#[test]
fn rendered_resources_larger_than_the_limit_are_an_error_naming_the_resource() {
    let big = "x".repeat(MAX_RENDERED_BYTES / 4);
    let resource = |name: &str| {
        json!({
            "name": name,
            "base": {"apiVersion": "v1", "kind": "ConfigMap", "data": {"big": big}}
        })
    };
    let composition: CompositionSpec = serde_json::from_value(json!({
        "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XThing"},
        "resources": [resource("one"), resource("two"), resource("three"), resource("four")]
    }))
    .unwrap();
    let composite =
        json!({"apiVersion": "example.org/v1", "kind": "XThing", "metadata": {"name": "x"}});
    let err = render(&composite, &composition).unwrap_err();
    let ComposeError::Resource {
        resource: failed,
        reason,
    } = &err
    else {
        panic!("not a resource error: {err}");
    };
    assert_eq!(failed, "four", "{err}");
    assert!(reason.ends_with("more than the limit of 4194304"), "{err}");

    let small: CompositionSpec = serde_json::from_value(json!({
        "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XThing"},
        "resources": [resource("one"), resource("two")]
    }))
    .unwrap();
    assert_eq!(render(&composite, &small).map(|r| r.len()), Ok(2));
}

#[test]
fn json_len_is_the_length_of_the_serialised_text() {
    let v = json!({"a": [1, "two", null], "b": {"c": true}});
    assert_eq!(json_len(&v), serde_json::to_string(&v).unwrap().len());
}
