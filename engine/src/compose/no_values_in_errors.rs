//! Errors name the field and the transform, never the value: a value may be a secret, and
//! error messages reach conditions and events that more people can read than the Secret.

use serde_json::{Value, json};

use super::{apply_patch, apply_transforms};
use crate::api::composition::{Patch, Transform};

const SECRET: &str = "s3cr3t-P4ssw0rd!";

struct Case {
    reason: &'static str,
    transforms: Value,
    input: Value,
    /// Text of the value that must not appear in the message.
    value: &'static str,
}

#[test]
fn transform_errors_never_contain_the_input_value() {
    let cases = [
        Case {
            reason: "a map without the key",
            transforms: json!([{"type": "map", "map": {"a": "b"}}]),
            input: json!(SECRET),
            value: SECRET,
        },
        Case {
            reason: "a string that is not an integer",
            transforms: json!([{"type": "convert", "convert": {"toType": "int64"}}]),
            input: json!(SECRET),
            value: SECRET,
        },
        Case {
            reason: "a string that is not a bool",
            transforms: json!([{"type": "convert", "convert": {"toType": "bool"}}]),
            input: json!(SECRET),
            value: SECRET,
        },
        Case {
            reason: "a string that is not a float",
            transforms: json!([{"type": "convert", "convert": {"toType": "float64"}}]),
            input: json!(SECRET),
            value: SECRET,
        },
        Case {
            reason: "a string that is not a quantity",
            transforms: json!([{"type": "convert", "convert": {"toType": "float64", "format": "quantity"}}]),
            input: json!(SECRET),
            value: SECRET,
        },
        Case {
            reason: "a string that is not a JSON object",
            transforms: json!([{"type": "convert", "convert": {"toType": "object", "format": "json"}}]),
            input: json!(SECRET),
            value: SECRET,
        },
        Case {
            reason: "a string that is not base64",
            transforms: json!([{"type": "string", "string": {"type": "Convert", "convert": "FromBase64"}}]),
            input: json!(SECRET),
            // The decoder's own message quotes the first invalid byte, '-' (45).
            value: "45",
        },
        Case {
            reason: "a multiplication that overflows",
            transforms: json!([{"type": "math", "math": {"type": "Multiply", "multiply": 2}}]),
            input: json!(7_123_456_789_012_345_678_i64),
            value: "7123456789012345678",
        },
        Case {
            reason: "a format verb that does not fit the value",
            transforms: json!([{"type": "string", "string": {"fmt": "%d"}}]),
            input: json!(SECRET),
            value: SECRET,
        },
        Case {
            reason: "a regexp without a match",
            transforms: json!([{"type": "string", "string": {"type": "Regexp", "regexp": {"match": "^x(y)$", "group": 1}}}]),
            input: json!(SECRET),
            value: SECRET,
        },
    ];
    for case in cases {
        let transforms: Vec<Transform> =
            serde_json::from_value(case.transforms).expect("transforms in test");
        let err = apply_transforms(&transforms, case.input)
            .expect_err(case.reason)
            .to_string();
        assert!(
            !err.contains(case.value),
            "{}: the message contains the value: {err}",
            case.reason
        );
        assert!(err.starts_with("transform 0 ("), "{}: {err}", case.reason);
    }
}

#[test]
fn a_failing_patch_names_the_field_and_the_transform_but_not_the_value() {
    let patch: Patch = serde_json::from_value(json!({
        "fromFieldPath": "spec.parameters.password",
        "toFieldPath": "spec.forProvider.size",
        "transforms": [
            {"type": "string", "string": {"type": "TrimPrefix", "trim": "x"}},
            {"type": "convert", "convert": {"toType": "int64"}}
        ]
    }))
    .unwrap();
    let from = json!({"spec": {"parameters": {"password": SECRET}}});
    let err = apply_patch(&patch, &from, &mut json!({}))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "field spec.parameters.password: transform 1 (convert): cannot convert the input string to int64"
    );
}
