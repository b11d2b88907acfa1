//! Property tests over everything a Composition author or a claim author controls:
//! transforms, field paths, patches, whole Compositions rendered against composites, XRD
//! schemas and claims. Whatever the input, the engine must not panic, must not hang (regular
//! expressions and nesting are bounded, see `compose::limits`), and every error must name
//! what is wrong: the field path, the transform's index, the resource, the XRD field.
//!
//! The generators build inputs from the pieces real ones are made of (field path syntax,
//! regular expression syntax, format verbs, base64), so that most cases reach deep into the
//! code instead of failing at the first parse. About 12,000 cases run in `cargo test`.

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Value, json};

use crate::api::composition::{CompositionSpec, Patch, Transform};
use crate::api::xrd::CompositeResourceDefinition;
use crate::compose::{ComposeError, apply_patch, apply_transforms, fieldpath, render};

/// Cases per property; eight properties, so about 12,000 in all.
const CASES: u32 = 1500;

fn config() -> Config {
    Config {
        cases: CASES,
        // The failure-persistence file would be written into the source tree.
        failure_persistence: None,
        ..Config::default()
    }
}

/// Strings mixing the characters that have meaning somewhere: field path syntax, regular
/// expressions, format verbs, base64, JSON, Unicode.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{0,8}",
        "[a-zA-Z0-9 .\\[\\]/%\\-_=+*?(){}|^$\\\\]{0,16}",
        any::<String>().prop_map(|s| s.chars().take(12).collect()),
        Just("c3VwZXI=".to_string()),
        Just("100Mi".to_string()),
        Just("1.5e3".to_string()),
        Just("{\"a\":[1,2]}".to_string()),
        Just("true".to_string()),
    ]
}

/// JSON values up to a few levels deep.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        Just(json!(i64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(1e300)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("spec".to_string()),
        Just("metadata".to_string()),
        Just("name".to_string()),
        Just("items".to_string()),
        Just("example.org/owner".to_string()),
        "[a-z]{1,6}",
    ]
}

/// Field paths: mostly well-formed (fields, indexes, bracketed keys), some broken.
fn field_path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        field_name().prop_map(|f| format!(".{f}")),
        (0usize..6).prop_map(|i| format!("[{i}]")),
        Just("[4097]".to_string()),
        Just("[99999999999999999999]".to_string()),
        field_name().prop_map(|f| format!("[{f}]")),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("..".to_string()),
        Just("[]".to_string()),
    ];
    prop_oneof![
        9 => prop::collection::vec(segment, 1..6).prop_map(|s| {
            let p = s.concat();
            p.strip_prefix('.').map(str::to_string).unwrap_or(p)
        }),
        1 => text(),
        1 => Just(vec!["a"; 70].join(".")),
    ]
}

/// Regular expressions: small valid ones, broken ones and ones whose compiled form is huge.
fn regex() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("^(\\w+)-(\\d+)$".to_string()),
        Just("(a+)+$".to_string()),
        Just("[".to_string()),
        Just("(?P<x>.*)".to_string()),
        Just("a{1000}{1000}".to_string()),
        Just("\\w{500}\\w{500}\\w{500}".to_string()),
        Just("x".repeat(2000)),
        "[a-z().*+?|\\[\\]{}0-9\\\\^$]{0,12}",
    ]
}

fn string_transform() -> impl Strategy<Value = Value> {
    let convert = prop_oneof![
        Just("ToUpper"),
        Just("ToLower"),
        Just("ToBase64"),
        Just("FromBase64"),
        Just("ToJson"),
        Just("ToSha1"),
        Just("ToSha256"),
        Just("ToSha512"),
        Just("ToAdler32"),
        Just("Nope"),
    ];
    let fmt = prop_oneof![
        Just("%s".to_string()),
        Just("%d-%v".to_string()),
        Just("%1024s".to_string()),
        Just("%99999s".to_string()),
        Just("%.3f %x %q %%".to_string()),
        Just("%[2]s %!".to_string()),
        text(),
    ];
    prop_oneof![
        fmt.prop_map(|f| json!({"type": "Format", "fmt": f})),
        convert.prop_map(|c| json!({"type": "Convert", "convert": c})),
        text().prop_map(|t| json!({"type": "TrimPrefix", "trim": t})),
        text().prop_map(|t| json!({"type": "TrimSuffix", "trim": t})),
        (regex(), prop::option::of(0u32..4))
            .prop_map(|(r, g)| json!({"type": "Regexp", "regexp": {"match": r, "group": g}})),
        text().prop_map(|s| json!({"type": "Join", "join": {"separator": s}})),
        Just(json!({"type": "Regexp"})),
        Just(json!({})),
    ]
}

/// One transform, as a Composition author writes it (sometimes wrongly).
fn transform() -> impl Strategy<Value = Value> {
    let to_type = prop_oneof![
        Just("string"),
        Just("bool"),
        Just("int"),
        Just("int64"),
        Just("float64"),
        Just("object"),
        Just("array"),
    ];
    let format = prop_oneof![
        Just(Value::Null),
        Just(json!("none")),
        Just(json!("quantity")),
        Just(json!("json")),
    ];
    prop_oneof![
        prop::collection::btree_map(text(), value(), 0..3)
            .prop_map(|m| json!({"type": "map", "map": m})),
        (
            prop::collection::vec(
                (any::<bool>(), regex(), text(), value()).prop_map(|(re, r, l, v)| {
                    if re {
                        json!({"type": "regexp", "regexp": r, "result": v})
                    } else {
                        json!({"type": "literal", "literal": l, "result": v})
                    }
                }),
                0..3
            ),
            prop::option::of(value()),
            prop::option::of(prop_oneof![Just("Value"), Just("Input")]),
        )
            .prop_map(|(p, fv, ft)| {
                json!({"type": "match", "match": {"patterns": p, "fallbackValue": fv, "fallbackTo": ft}})
            }),
        (
            prop_oneof![Just("Multiply"), Just("ClampMin"), Just("ClampMax")],
            any::<i64>()
        )
            .prop_map(|(t, n)| json!({"type": "math", "math": {"type": t, "multiply": n, "clampMin": n, "clampMax": n}})),
        string_transform().prop_map(|s| json!({"type": "string", "string": s})),
        (to_type, format)
            .prop_map(|(t, f)| json!({"type": "convert", "convert": {"toType": t, "format": f}})),
        Just(json!({"type": "math"})),
        Just(json!({"type": "string"})),
    ]
}

/// A patch of any type, with transforms.
fn patch() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![
        Just(Value::Null),
        Just(json!("FromCompositeFieldPath")),
        Just(json!("ToCompositeFieldPath")),
        Just(json!("CombineFromComposite")),
        Just(json!("CombineToComposite")),
    ];
    let combine = (
        prop::collection::vec(field_path(), 0..3),
        prop_oneof![Just("%s-%s".to_string()), Just("%v".to_string()), text()],
    )
        .prop_map(|(vars, fmt)| {
            let vars: Vec<Value> = vars.iter().map(|v| json!({"fromFieldPath": v})).collect();
            json!({"variables": vars, "strategy": "string", "string": {"fmt": fmt}})
        });
    (
        kind,
        prop::option::of(field_path()),
        prop::option::of(field_path()),
        prop::option::of(combine),
        prop::collection::vec(transform(), 0..3),
        prop::option::of(prop_oneof![Just("Optional"), Just("Required")]),
        any::<(bool, bool)>(),
    )
        .prop_map(|(kind, from, to, combine, transforms, policy, (append, keep))| {
            json!({
                "type": kind, "fromFieldPath": from, "toFieldPath": to, "combine": combine,
                "transforms": transforms,
                "policy": {"fromFieldPath": policy,
                    "mergeOptions": {"appendSlice": append, "keepMapValues": keep}},
            })
        })
}

/// Deserialises what the generators built; `None` when the API types refuse it (the API
/// server's schema would refuse it too).
fn parse<T: serde::de::DeserializeOwned>(v: &Value) -> Option<T> {
    serde_json::from_value(strip_nulls(v.clone())).ok()
}

/// Drops `null` fields, as the API server does for omitted optional fields.
fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// Whether an error of a patch names what is wrong: a field path of the patch, a transform
/// by index, or (for a patch that is not configured correctly) says so.
fn names_a_patch_field(e: &ComposeError, patch: &Patch) -> bool {
    let mut paths: Vec<&str> = patch
        .from_field_path
        .iter()
        .chain(patch.to_field_path.iter())
        .map(String::as_str)
        .collect();
    if let Some(c) = &patch.combine {
        paths.extend(c.variables.iter().map(|v| v.from_field_path.as_str()));
    }
    match e {
        ComposeError::FieldPath { path, .. }
        | ComposeError::RequiredFieldMissing { path }
        | ComposeError::AtField { path, .. } => paths.contains(&path.as_str()),
        ComposeError::InvalidPatch { reason } => !reason.is_empty(),
        _ => false,
    }
}

/// The generators' usual shapes parse as the API types, so that the properties below do
/// not pass by skipping every case.
#[test]
fn the_generated_shapes_are_valid_api_objects() {
    let patch = json!({"fromFieldPath": "spec.a", "toFieldPath": "spec.b",
        "transforms": [{"type": "string", "string": {"type": "Format", "fmt": "%s"}}],
        "policy": {"fromFieldPath": "Optional", "mergeOptions": {"appendSlice": true, "keepMapValues": false}}});
    assert!(parse::<Patch>(&patch).is_some());
    assert!(parse::<Vec<Transform>>(&json!([{"type": "map", "map": {"a": 1}},
        {"type": "match", "match": {"patterns": [{"type": "regexp", "regexp": "a", "result": 1}]}},
        {"type": "math", "math": {"type": "Multiply", "multiply": 2, "clampMin": 2, "clampMax": 2}},
        {"type": "convert", "convert": {"toType": "int64", "format": "quantity"}}])).is_some());
    assert!(parse::<CompositionSpec>(&json!({
        "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XThing"},
        "resources": [{"name": "a", "base": {"apiVersion": "example.org/v1", "kind": "Thing"},
            "patches": [patch], "dependsOn": ["b"],
            "connectionDetails": [{"fromConnectionSecretKey": "password"}]}],
    })).is_some());
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn transforms_never_panic_and_their_errors_name_the_transform(
        transforms in prop::collection::vec(transform(), 1..4),
        input in value(),
    ) {
        let Some(ts) = parse::<Vec<Transform>>(&json!(transforms)) else { return Ok(()) };
        if let Err(e) = apply_transforms(&ts, input) {
            let ComposeError::Transform { index, .. } = &e else {
                panic!("a transform error that does not name the transform: {e:?}");
            };
            prop_assert!(*index < ts.len(), "{e}");
        }
    }

    #[test]
    fn field_paths_never_panic_and_their_errors_name_the_path(
        path in field_path(),
        mut root in value(),
        v in value(),
        append in any::<bool>(),
    ) {
        let check = |r: Result<(), ComposeError>| -> Result<(), TestCaseError> {
            if let Err(e) = r {
                let ComposeError::FieldPath { path: p, .. } = &e else {
                    panic!("not a field path error: {e:?}");
                };
                prop_assert_eq!(p, &path);
            }
            Ok(())
        };
        check(fieldpath::get(&root, &path).map(|_| ()))?;
        check(fieldpath::set(&mut root.clone(), &path, v.clone()))?;
        let options = crate::api::composition::MergeOptions {
            append_slice: Some(append),
            keep_map_values: Some(!append),
        };
        check(fieldpath::merge(&mut root.clone(), &path, v, Some(&options)))?;
        check(fieldpath::delete(&mut root, &path).map(|_| ()))?;
    }

    #[test]
    fn patches_never_panic_and_their_errors_name_the_field(
        p in patch(),
        from in value(),
        mut to in value(),
    ) {
        let Some(patch) = parse::<Patch>(&p) else { return Ok(()) };
        if let Err(e) = apply_patch(&patch, &from, &mut to) {
            prop_assert!(names_a_patch_field(&e, &patch), "{e:?} for {p}");
        }
    }

    #[test]
    fn compositions_render_without_panic_and_errors_name_the_resource(
        resources in prop::collection::vec(
            (prop_oneof![Just("a"), Just("b"), Just("c"), Just("")],
             prop::collection::vec(patch(), 0..3),
             prop::collection::vec(prop_oneof![Just("a"), Just("b"), Just("z")], 0..2),
             value()),
            0..4),
        spec in value(),
        name in prop_oneof![Just("my-xr".to_string()), Just(String::new()), "[a-z]{60,70}"],
    ) {
        let resources: Vec<Value> = resources.into_iter().map(|(n, patches, deps, extra)| json!({
            "name": n,
            "base": {"apiVersion": "example.org/v1", "kind": "Thing", "spec": {"extra": extra}},
            "patches": patches,
            "dependsOn": deps,
            "connectionDetails": [{"fromConnectionSecretKey": "password"}],
        })).collect();
        let Some(composition) = parse::<CompositionSpec>(&json!({
            "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XThing"},
            "resources": resources,
        })) else { return Ok(()) };
        let composite = json!({
            "apiVersion": "example.org/v1", "kind": "XThing",
            "metadata": {"name": name, "uid": "0000-1111"},
            "spec": spec,
        });
        if let Err(e) = render(&composite, &composition) {
            prop_assert!(
                matches!(e, ComposeError::Patch { .. } | ComposeError::Resource { .. }
                    | ComposeError::ConnectionDetail { .. } | ComposeError::Composite { .. }),
                "an error that names neither a resource nor the composite: {e:?}"
            );
        }
    }

    #[test]
    fn xrd_schemas_never_panic_and_errors_name_the_field(
        schema in value(),
        group in prop_oneof![Just("example.org".to_string()), Just("Bad_Group".to_string()), "[a-z.]{0,12}"],
        plural in prop_oneof![Just("xthings".to_string()), Just("XThings".to_string()), "[a-z]{0,5}"],
        version in prop_oneof![Just("v1"), Just("v1alpha1"), Just("1"), Just("")],
    ) {
        let Some(xrd) = parse::<CompositeResourceDefinition>(&json!({
            "apiVersion": "apiextensions.tessera.dev/v1",
            "kind": "CompositeResourceDefinition",
            "metadata": {"name": format!("{plural}.{group}")},
            "spec": {
                "group": group,
                "names": {"kind": "XThing", "plural": plural},
                "claimNames": {"kind": "Thing", "plural": "things"},
                "versions": [{"name": version, "served": true, "referenceable": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": schema}}}}],
            }
        })) else { return Ok(()) };
        for r in [
            crate::xrd::crd::composite_crd(&xrd).map(|_| ()),
            crate::xrd::crd::claim_crd(&xrd).map(|_| ()),
        ] {
            if let Err(e) = r {
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn schema_validation_and_defaults_never_panic_and_issues_name_the_field(
        schema in value(),
        mut object in value(),
    ) {
        for issue in crate::offline::schema::validate(&schema, &object) {
            prop_assert!(!issue.to_string().is_empty());
        }
        crate::offline::schema::apply_defaults(&schema, &mut object);
    }

    #[test]
    fn claims_become_composites_without_panic(
        claim in value(),
        name in prop_oneof![Just("db".to_string()), Just(String::new()), "[a-z]{50,70}"],
        ns in prop_oneof![Just("shop"), Just("")],
    ) {
        let xrd = parse::<CompositeResourceDefinition>(&json!({
            "apiVersion": "apiextensions.tessera.dev/v1",
            "kind": "CompositeResourceDefinition",
            "metadata": {"name": "xthings.example.org"},
            "spec": {
                "group": "example.org",
                "names": {"kind": "XThing", "plural": "xthings"},
                "claimNames": {"kind": "Thing", "plural": "things"},
                "versions": [{"name": "v1", "served": true, "referenceable": true}],
            }
        })).expect("a valid XRD");
        let mut claim = claim;
        if let Value::Object(m) = &mut claim {
            m.insert("apiVersion".into(), json!("example.org/v1"));
            m.insert("kind".into(), json!("Thing"));
            m.insert("metadata".into(), json!({"name": name, "namespace": ns, "uid": "u-1"}));
        }
        if let Err(e) = crate::claim::claim_to_composite(&claim, &xrd.spec) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn sprintf_formats_never_panic(
        fmt in prop_oneof![text(), "(%[-+# 0]{0,2}[0-9]{0,5}(\\.[0-9]{0,5})?[a-zA-Z%!\\[\\]0-9]){1,4}"],
        args in prop::collection::vec(value(), 0..3),
    ) {
        let refs: Vec<&Value> = args.iter().collect();
        let _ = crate::compose::sprintf::sprintf(&fmt, &refs);
    }
}
