//! Property tests over everything a Composition, an XRD or a claim feeds the engine:
//! field paths, transforms, patches, whole Compositions (render and observe), XRDs (the
//! CRDs generated from them), claims (the composite made from them, schema defaults and
//! validation) and `tessera validate` over all of them.
//!
//! The generators build arbitrary but structured inputs: JSON values of bounded size plus
//! values nested deeper and lists wider than the limits, field paths valid and invalid,
//! every patch and transform type with random parameters (adversarial regular
//! expressions, huge repetition counts, overflowing numbers, random `%` verbs, base64 of
//! random bytes, conversions between all types), XRD schemas nested up to the depth a
//! decoder accepts. The properties: nothing panics; input over a limit of
//! `limits.rs` is refused with an error that names the field; every error names the
//! resource, field path or field it is about; no error carries a value.
//!
//! Each test runs up to a few thousand cases (about 11,900 in all); more with
//! `PROPTEST_CASES=1000000 cargo test -p tessera-engine fuzz` (every test then runs that
//! many). A failing case is shrunk, printed and kept in `engine/proptest-regressions/`.

use std::collections::BTreeMap;

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Value, json};

use super::connection::ConnectionDetails;
use super::fieldpath::FieldPath;
use super::limits::{
    MAX_FIELD_PATH_INDEX, MAX_FIELD_PATH_SEGMENTS, MAX_FORMAT_WIDTH, MAX_REGEX_LEN,
    MAX_VALUE_DEPTH, deeper_than,
};
use super::{ComposeError, ObservedResource, apply_patch, apply_transform, observe, render};
use crate::api::composition::{CompositionSpec, Patch, PatchType, Transform};
use crate::api::xrd::{CompositeResourceDefinition, CompositeResourceDefinitionSpec};

/// A value that stands for a secret: no error message may contain it.
const SECRET: &str = "s3cr3t-fuzz-P4ss";

/// The configuration of one property test: `cases` cases, unless `PROPTEST_CASES` asks for
/// another number, from a fixed seed (the test suite must not depend on luck), unless
/// `PROPTEST_RNG_SEED` gives another.
fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = proptest::test_runner::RngSeed::Fixed(0x7e55e7a);
    }
    config
}

// ---------------------------------------------------------------------------------------
// JSON values

/// Field names, shared by the values and the field paths so that paths often find
/// something.
const FIELDS: &[&str] = &[
    "spec",
    "status",
    "metadata",
    "name",
    "labels",
    "items",
    "params",
    "a",
    "b",
    "size",
    "tls.crt",
    "example.org/owner",
    "ünï",
    "0",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => select(FIELDS).prop_map(str::to_string),
        1 => "[a-zA-Z0-9._/-]{0,10}",
        1 => "\\PC{0,6}",
    ]
}

/// Strings: plain, numeric, boolean, quantities, base64, JSON text, any text, the secret.
fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z]{0,8}",
        1 => "-?[0-9]{1,25}",
        1 => "-?[0-9]{1,5}\\.[0-9]{0,5}([eE][-+]?[0-9]{1,4})?",
        1 => select(&["true", "false", "1", "0", "t", "F", "TRUE", "yes", "", " ", "NaN", "inf"][..])
            .prop_map(str::to_string),
        1 => "[+-]?[0-9]{0,4}(\\.[0-9]{0,3})?(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e[+-]?[0-9]{1,3}|Qi)?",
        1 => vec(any::<u8>(), 0..48).prop_map(|b| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(b)
        }),
        1 => "[A-Za-z0-9+/=]{0,12}",
        1 => select(&[
            "{}", "[]", "{\"a\":1}", "[1,[2,{\"b\":null}]]", "{\"a\":", "null", "3",
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        ][..])
            .prop_map(str::to_string),
        1 => "\\PC{0,16}",
        1 => "[\\x00-\\x1f\"\\\\<>&\u{2028}]{0,6}",
        2 => Just(SECRET.to_string()),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => prop_oneof![
            any::<i64>(),
            select(&[0i64, 1, -1, 2, i64::MAX, i64::MIN, i64::MAX / 2 + 1, 1 << 53][..]),
        ]
        .prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => prop_oneof![
            any::<f64>(),
            select(&[0.5, -0.0, 2.0, 1e300, -1e300, 9.3e18, 1e-320, f64::MAX, f64::MIN_POSITIVE][..]),
        ]
        .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        4 => string().prop_map(Value::String),
    ]
}

/// A value of bounded depth and width.
fn value() -> BoxedStrategy<Value> {
    scalar()
        .prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..4).prop_map(Value::Array),
                btree_map(key(), inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

/// A value that is mostly a scalar: transform parameters and results.
fn small() -> BoxedStrategy<Value> {
    prop_oneof![4 => scalar(), 1 => value()].boxed()
}

/// A value nested `depth` levels deep in lists and objects: around and beyond
/// [`MAX_VALUE_DEPTH`], within the 128 levels a JSON or YAML decoder accepts.
fn deep() -> impl Strategy<Value = Value> {
    (
        MAX_VALUE_DEPTH - 4..120usize,
        vec(any::<bool>(), 120),
        scalar(),
    )
        .prop_map(|(depth, kinds, leaf)| nest(leaf, &kinds[..depth]))
}

fn nest(leaf: Value, kinds: &[bool]) -> Value {
    kinds.iter().fold(leaf, |inner, list| {
        if *list {
            Value::Array(vec![inner])
        } else {
            json!({ "a": inner })
        }
    })
}

/// A list of many distinct items, as a claim may send (the API server accepts objects up
/// to about 1.5 MiB).
fn wide() -> impl Strategy<Value = Value> {
    (0usize..4000, any::<bool>()).prop_map(|(n, strings)| {
        Value::Array(
            (0..n)
                .map(|i| {
                    if strings {
                        json!(format!("item-{i}"))
                    } else {
                        json!(i)
                    }
                })
                .collect(),
        )
    })
}

/// Any value: mostly small, sometimes deep or wide.
fn any_value() -> BoxedStrategy<Value> {
    prop_oneof![
        12 => value(),
        1 => deep(),
        1 => wide(),
    ]
    .boxed()
}

/// An object with the [`FIELDS`] as keys and values of `values`.
fn object_of(values: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    btree_map(select(FIELDS).prop_map(str::to_string), values, 0..6)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// An object with the [`FIELDS`] as keys and any values.
fn object() -> impl Strategy<Value = Value> {
    object_of(any_value())
}

// ---------------------------------------------------------------------------------------
// Field paths

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => select(FIELDS)
            .prop_filter("a plain field name", |f| !f.contains(['.', '/']))
            .prop_map(|f| format!(".{f}")),
        3 => (0usize..4).prop_map(|i| format!("[{i}]")),
        1 => select(&["tls.crt", "example.org/owner", "a b", "-1"][..]).prop_map(|f| format!("[{f}]")),
        1 => select(&[
            "[4096]", "[4097]", "[99999999999999999999999]", "[*]", "[]", "[", "]", ".", "..",
            "[0]x", "['a']", "[\"a\"]",
        ][..])
            .prop_map(str::to_string),
        1 => "\\PC{1,3}",
    ]
}

/// Field paths: valid ones over [`FIELDS`], with indexes, brackets and quotes, too many
/// segments, huge and negative indexes, unicode, and random text.
fn field_path() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => vec(segment(), 1..6).prop_map(|s| s.concat().trim_start_matches('.').to_string()),
        1 => vec(segment(), MAX_FIELD_PATH_SEGMENTS - 2..MAX_FIELD_PATH_SEGMENTS + 6)
            .prop_map(|s| s.concat().trim_start_matches('.').to_string()),
        1 => "\\PC{0,12}",
    ]
}

/// Field paths to the values in `value` (up to a few levels deep), so that generated patches
/// often find what they read.
fn paths_in(value: &Value) -> Vec<String> {
    fn walk(value: &Value, at: &str, depth: usize, out: &mut Vec<String>) {
        if depth == 0 || out.len() >= 64 {
            return;
        }
        let children: Vec<(String, &Value)> = match value {
            Value::Object(map) => map
                .iter()
                .filter(|(k, _)| !k.is_empty() && !k.contains(['[', ']']))
                .map(|(k, v)| {
                    let plain = !k.contains(['.', '/']);
                    let path = match (at.is_empty(), plain) {
                        (true, true) => k.clone(),
                        (false, true) => format!("{at}.{k}"),
                        (_, false) => format!("{at}[{k}]"),
                    };
                    (path, v)
                })
                .collect(),
            Value::Array(items) if !at.is_empty() => items
                .iter()
                .take(3)
                .enumerate()
                .map(|(i, v)| (format!("{at}[{i}]"), v))
                .collect(),
            _ => Vec::new(),
        };
        for (path, child) in children {
            out.push(path.clone());
            walk(child, &path, depth - 1, out);
        }
    }
    let mut out = Vec::new();
    walk(value, "", 5, &mut out);
    out
}

/// A field path: one of `paths` (those of the object a patch reads) mostly, else any.
fn path_from(paths: &[String]) -> BoxedStrategy<String> {
    if paths.is_empty() {
        return field_path().boxed();
    }
    prop_oneof![3 => select(paths.to_vec()), 1 => field_path()].boxed()
}

/// Whether `text` names `path`: the path as written, or quoted as `{path:?}` quotes it.
fn names(text: &str, path: &str) -> bool {
    text.contains(path) || text.contains(&format!("{path:?}"))
}

proptest! {
    #![proptest_config(config(2000))]

    /// Parsing any text fails or succeeds without panicking, errors quote the path, and a
    /// parsed path can be written, read back and deleted in any value.
    #[test]
    fn fuzz_field_paths(path in field_path(), mut root in object(), value in any_value()) {
        let parsed = match FieldPath::parse(&path) {
            Ok(parsed) => parsed,
            Err(e) => {
                prop_assert!(names(&e.to_string(), &path), "{e} does not name {path:?}");
                return Ok(());
            }
        };
        prop_assert!(parsed.segments().len() <= MAX_FIELD_PATH_SEGMENTS);
        let in_bounds = parsed.segments().iter().all(|s| match s {
            super::fieldpath::Segment::Index(i) => *i <= MAX_FIELD_PATH_INDEX,
            super::fieldpath::Segment::Field(f) => !f.is_empty(),
        });
        prop_assert!(in_bounds, "segments of {:?}: {:?}", path, parsed.segments());
        let check = |r: Result<(), ComposeError>| match r {
            Ok(()) => Ok(()),
            Err(e) if names(&e.to_string(), &path) => Ok(()),
            Err(e) => Err(TestCaseError::fail(format!("{e} does not name {path:?}"))),
        };
        check(parsed.get(&root).map(|_| ()))?;
        match parsed.set(&mut root, value.clone()) {
            Ok(()) => {
                let got = parsed.get(&root);
                prop_assert_eq!(got, Ok((!value.is_null()).then_some(&value)));
                check(parsed.delete(&mut root).map(|_| ()))?;
            }
            Err(e) => check(Err(e))?,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Transforms

/// Regular expressions: random, adversarial for backtracking engines, with huge
/// repetition counts, invalid, and longer than the limit.
fn regexp() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(&[
            "(a+)+$", "(a|aa)+$", "(x+x+)+y", "^(\\d+)-(\\w+)$", "(.*)-(.*)", ".*.*.*=.*",
            "a{1000}{1000}", "(?:a{1000}){1000}", "(.{1,1000}){1,1000}", "\\p{L}{500}",
            "[", "(", "\\", "a{99999999999}", "(?P<x>a)(?P<x>b)", "", "^$", "(?i)ABC",
            "\\bfoo\\b", "((((((((((a))))))))))", "[[:alpha:]]+", "(?s).", "\\x{110000}",
        ][..])
            .prop_map(str::to_string),
        2 => "[a-c()|+*?{}\\[\\]^$.\\\\0-9,:]{0,24}",
        1 => (1usize..40).prop_map(|n| "(a+)+".repeat(n) + "$"),
        1 => (1000usize..1100).prop_map(|n| "a".repeat(n)),
    ]
}

/// Go format strings: random text and `%` verbs with random flags, argument indexes,
/// widths and precisions, some over the limit or malformed.
fn format() -> impl Strategy<Value = String> {
    let number = || {
        prop_oneof![
            4 => (0usize..40).prop_map(|n| n.to_string()),
            1 => select(&["1024", "1025", "99999", "99999999999999999999999"][..]).prop_map(str::to_string),
        ]
    };
    let verb = (
        "[-+ 0#]{0,3}",
        option::of(prop_oneof![
            4 => (0usize..4).prop_map(|n| format!("[{n}]")),
            1 => select(&["[", "[x]", "[99999999999999999999999]", "[]"][..]).prop_map(str::to_string),
        ]),
        option::of(number()),
        option::of(prop_oneof![Just(".".to_string()), number().prop_map(|n| format!(".{n}"))]),
        select(&["v", "s", "q", "d", "f", "F", "g", "t", "x", "X", "%", "*", "z", "é", ""][..]),
    )
        .prop_map(|(flags, index, width, precision, verb)| {
            format!(
                "%{flags}{}{}{}{verb}",
                index.unwrap_or_default(),
                width.unwrap_or_default(),
                precision.unwrap_or_default()
            )
        });
    vec(prop_oneof![2 => verb, 1 => "[a-z/:-]{0,6}"], 0..5).prop_map(|parts| parts.concat())
}

fn io_type() -> impl Strategy<Value = &'static str> {
    select(
        &[
            "string", "bool", "int", "int64", "float64", "object", "array",
        ][..],
    )
}

/// A transform of any type with random parameters, as JSON; sometimes without the field
/// its type requires.
fn transform() -> BoxedStrategy<Value> {
    let map = btree_map(select(FIELDS).prop_map(str::to_string), small(), 0..5)
        .prop_map(|pairs| json!({"type": "map", "map": pairs}));
    let pattern = (
        any::<bool>(),
        option::of(select(FIELDS)),
        option::of(regexp()),
        small(),
    )
        .prop_map(|(regexp, literal, re, result)| {
            let mut p = json!({ "result": result });
            if regexp {
                p["type"] = json!("regexp");
            }
            if let Some(l) = literal {
                p["literal"] = json!(l);
            }
            if let Some(re) = re {
                p["regexp"] = json!(re);
            }
            p
        });
    let match_ = (
        vec(pattern, 0..4),
        option::of(small()),
        option::of(select(&["Value", "Input"][..])),
    )
        .prop_map(|(patterns, fallback_value, fallback_to)| {
            let mut m = json!({ "patterns": patterns });
            if let Some(v) = fallback_value {
                m["fallbackValue"] = v;
            }
            if let Some(t) = fallback_to {
                m["fallbackTo"] = json!(t);
            }
            json!({"type": "match", "match": m})
        });
    let int = || {
        prop_oneof![
            any::<i64>(),
            select(&[0i64, 1, -1, 2, 1000, i64::MAX, i64::MIN][..]),
        ]
    };
    let math = (
        option::of(select(&["Multiply", "ClampMin", "ClampMax"][..])),
        option::of(int()),
        option::of(int()),
        option::of(int()),
    )
        .prop_map(|(ty, multiply, min, max)| {
            let mut m = json!({});
            if let Some(t) = ty {
                m["type"] = json!(t);
            }
            if let Some(v) = multiply {
                m["multiply"] = json!(v);
            }
            if let Some(v) = min {
                m["clampMin"] = json!(v);
            }
            if let Some(v) = max {
                m["clampMax"] = json!(v);
            }
            json!({"type": "math", "math": m})
        });
    let string = (
        option::of(select(
            &[
                "Format",
                "Convert",
                "TrimPrefix",
                "TrimSuffix",
                "Regexp",
                "Join",
            ][..],
        )),
        option::of(format()),
        option::of(select(
            &[
                "ToUpper",
                "ToLower",
                "ToBase64",
                "FromBase64",
                "ToJson",
                "ToSha1",
                "ToSha256",
                "ToSha512",
                "ToAdler32",
            ][..],
        )),
        option::of("[a-z-]{0,4}"),
        option::of((regexp(), option::of(prop_oneof![0u32..4, Just(u32::MAX)]))),
        option::of("[ ,;-]{0,2}"),
    )
        .prop_map(|(ty, fmt, convert, trim, regexp, join)| {
            let mut s = json!({});
            if let Some(t) = ty {
                s["type"] = json!(t);
            }
            if let Some(f) = fmt {
                s["fmt"] = json!(f);
            }
            if let Some(c) = convert {
                s["convert"] = json!(c);
            }
            if let Some(t) = trim {
                s["trim"] = json!(t);
            }
            if let Some((re, group)) = regexp {
                s["regexp"] = json!({ "match": re });
                if let Some(g) = group {
                    s["regexp"]["group"] = json!(g);
                }
            }
            if let Some(j) = join {
                s["join"] = json!({ "separator": j });
            }
            json!({"type": "string", "string": s})
        });
    let convert = (
        io_type(),
        option::of(select(&["none", "quantity", "json"][..])),
    )
        .prop_map(|(to, format)| {
            let mut c = json!({ "toType": to });
            if let Some(f) = format {
                c["format"] = json!(f);
            }
            json!({"type": "convert", "convert": c})
        });
    let bare =
        select(&["map", "match", "math", "string", "convert"][..]).prop_map(|t| json!({"type": t}));
    prop_oneof![
        2 => map,
        3 => match_,
        3 => math,
        6 => string,
        4 => convert,
        1 => bare,
    ]
    .boxed()
}

/// Whether a message contains the [`SECRET`] a generated value may hold.
fn leaks(message: &str) -> bool {
    message.contains(SECRET)
}

proptest! {
    #![proptest_config(config(2800))]

    /// Chains of transforms on any input: no panic; an error names the transform by index
    /// and type and never contains the value; inputs and outputs stay within the limits.
    #[test]
    fn fuzz_transforms(transforms in vec(transform(), 1..4), input in any_value()) {
        let transforms: Vec<Transform> = transforms
            .into_iter()
            .filter_map(|t| serde_json::from_value(t).ok())
            .collect();
        let mut value = input;
        for (index, t) in transforms.iter().enumerate() {
            let too_deep = deeper_than(&value, MAX_VALUE_DEPTH);
            match apply_transform(index, t, value) {
                Ok(out) => {
                    prop_assert!(!too_deep, "an input over the depth limit was transformed");
                    prop_assert!(!deeper_than(&out, MAX_VALUE_DEPTH));
                    if let Value::String(s) = &out {
                        prop_assert!(s.len() <= super::limits::MAX_TRANSFORM_OUTPUT_BYTES);
                    }
                    value = out;
                }
                Err(e) => {
                    let message = e.to_string();
                    let kind = serde_json::to_value(t.type_).unwrap_or_default();
                    let kind = kind.as_str().unwrap_or_default();
                    prop_assert!(
                        message.starts_with(&format!("transform {index} ({kind}): ")),
                        "{message} does not name transform {index} ({kind})"
                    );
                    prop_assert!(!leaks(&message), "{message} contains the value");
                    break;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Patches

/// A patch of any type with random transforms and policy, as JSON, reading mostly from
/// `paths`. Each field is there most of the time, whatever the type, so that most patches
/// are complete and some are not.
fn patch(paths: &[String]) -> BoxedStrategy<Value> {
    (
        prop_oneof![
            4 => Just(None),
            4 => Just(Some("FromCompositeFieldPath")),
            2 => Just(Some("ToCompositeFieldPath")),
            2 => Just(Some("CombineFromComposite")),
            1 => Just(Some("CombineToComposite")),
            1 => Just(Some("PatchSet")),
        ],
        option::weighted(0.9, path_from(paths)),
        option::weighted(0.7, path_from(paths)),
        option::weighted(
            0.9,
            (vec(path_from(paths), 0..4), option::weighted(0.9, format())),
        ),
        option::weighted(0.9, select(&["common", "nested", "undefined"][..])),
        vec(transform(), 0..3),
        option::of((
            option::of(select(&["Optional", "Required"][..])),
            option::of((option::of(any::<bool>()), option::of(any::<bool>()))),
        )),
    )
        .prop_map(|(ty, from, to, combine, set, transforms, policy)| {
            let mut p = json!({});
            if let Some(t) = ty {
                p["type"] = json!(t);
            }
            if let Some(f) = from {
                p["fromFieldPath"] = json!(f);
            }
            if let Some(t) = to {
                p["toFieldPath"] = json!(t);
            }
            if let Some((variables, fmt)) = combine {
                let variables: Vec<Value> = variables
                    .into_iter()
                    .map(|v| json!({ "fromFieldPath": v }))
                    .collect();
                p["combine"] = json!({ "strategy": "string", "variables": variables });
                if let Some(fmt) = fmt {
                    p["combine"]["string"] = json!({ "fmt": fmt });
                }
            }
            if let Some(s) = set {
                p["patchSetName"] = json!(s);
            }
            if !transforms.is_empty() {
                p["transforms"] = json!(transforms);
            }
            if let Some((from, merge)) = policy {
                p["policy"] = json!({});
                if let Some(f) = from {
                    p["policy"]["fromFieldPath"] = json!(f);
                }
                if let Some((append, keep)) = merge {
                    p["policy"]["mergeOptions"] = json!({});
                    if let Some(a) = append {
                        p["policy"]["mergeOptions"]["appendSlice"] = json!(a);
                    }
                    if let Some(k) = keep {
                        p["policy"]["mergeOptions"]["keepMapValues"] = json!(k);
                    }
                }
            }
            p
        })
        .boxed()
}

/// The field paths a patch names, as written.
fn patch_paths(patch: &Patch) -> Vec<&str> {
    let mut paths: Vec<&str> = patch
        .from_field_path
        .iter()
        .chain(&patch.to_field_path)
        .map(String::as_str)
        .collect();
    if let Some(c) = &patch.combine {
        paths.extend(c.variables.iter().map(|v| v.from_field_path.as_str()));
    }
    paths
}

/// An error of applying `patch` names one of its field paths, or is about how the patch
/// is written (a missing `fromFieldPath`, `combine`, ...), and never contains a value.
fn check_patch_error(patch: &Patch, e: &ComposeError) -> Result<(), TestCaseError> {
    let message = e.to_string();
    prop_assert!(!leaks(&message), "{message} contains a value");
    if matches!(e, ComposeError::InvalidPatch { .. }) {
        return Ok(());
    }
    let paths = patch_paths(patch);
    prop_assert!(
        paths.iter().any(|p| names(&message, p)),
        "{message} names none of the patch's paths {paths:?}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(config(2000))]

    /// One patch of any type between any two objects: no panic; errors name a field path
    /// of the patch; a source over the depth limit is refused with its path.
    #[test]
    fn fuzz_patches(
        (from, patch) in object().prop_flat_map(|from| {
            let paths = paths_in(&from);
            (Just(from), patch(&paths))
        }),
        to in object(),
    ) {
        let Ok(patch) = serde_json::from_value::<Patch>(patch) else {
            return Ok(());
        };
        let mut written = to.clone();
        let result = apply_patch(&patch, &from, &mut written);
        if let Err(e) = &result {
            check_patch_error(&patch, e)?;
        }
        let simple = matches!(
            patch.patch_type(),
            PatchType::FromCompositeFieldPath | PatchType::ToCompositeFieldPath
        );
        if let (true, Some(source)) = (simple, patch.from_field_path.as_deref()) {
            let target = patch.target_field_path().unwrap_or(source);
            let found = FieldPath::parse(source).ok().and_then(|p| p.get(&from).ok().flatten());
            if FieldPath::parse(target).is_ok() && found.is_some_and(|v| deeper_than(v, MAX_VALUE_DEPTH)) {
                let e = result.expect_err("a source over the depth limit was patched");
                prop_assert!(names(&e.to_string(), source), "{e} does not name {source}");
            }
        }
    }
}

proptest! {
    #![proptest_config(config(600))]

    /// Input over a limit, through a patch: refused with an error that names the patch's
    /// field and the limit.
    #[test]
    fn fuzz_limits(
        over in prop_oneof![
            // A regular expression longer than the limit.
            (MAX_REGEX_LEN + 1..MAX_REGEX_LEN * 4, any::<bool>()).prop_map(|(n, string)| {
                let re = "a".repeat(n);
                if string {
                    json!({"type": "string", "string": {"type": "Regexp", "regexp": {"match": re}}})
                } else {
                    json!({"type": "match", "match": {"patterns": [{"type": "regexp", "regexp": re, "result": 1}]}})
                }
            }),
            // A width or precision over the limit.
            (MAX_FORMAT_WIDTH + 1..usize::MAX, any::<bool>(), select(&["s", "v", "d", "f", "x"][..]))
                .prop_map(|(n, width, verb)| {
                    let fmt = if width { format!("%{n}{verb}") } else { format!("%.{n}{verb}") };
                    json!({"type": "string", "string": {"type": "Format", "fmt": fmt}})
                }),
            // A value nested deeper than the limit, made by a conversion.
            (MAX_VALUE_DEPTH + 1..120usize).prop_map(|n| {
                json!({"type": "map", "map": {"x": nest(json!(1), &vec![true; n])}})
            }),
        ],
        from in prop_oneof![Just("spec.x"), Just("spec.items[2]"), Just("metadata.labels[example.org/x]")],
    ) {
        let patch: Patch = serde_json::from_value(json!({
            "fromFieldPath": from,
            "toFieldPath": "spec.out",
            "transforms": [over],
        }))
        .expect("the patch parses");
        let source = json!({
            "spec": {"x": "x", "items": ["x", "x", "x"]},
            "metadata": {"labels": {"example.org/x": "x"}},
        });
        let e = apply_patch(&patch, &source, &mut json!({}))
            .expect_err("input over a limit is refused");
        let message = e.to_string();
        prop_assert!(message.starts_with(&format!("field {from}: transform 0 (")), "{message}");
        prop_assert!(message.contains("limit of"), "{message}");
    }

    /// Field paths over a limit: refused with an error that names the path.
    #[test]
    fn fuzz_field_path_limits(
        path in prop_oneof![
            (MAX_FIELD_PATH_INDEX + 1..usize::MAX).prop_map(|i| format!("spec.items[{i}]")),
            (MAX_FIELD_PATH_SEGMENTS + 1..MAX_FIELD_PATH_SEGMENTS * 3)
                .prop_map(|n| vec!["a"; n].join(".")),
            (1usize..MAX_FIELD_PATH_SEGMENTS)
                .prop_map(|n| format!("{}[99999999999999999999999]", vec!["a"; n].join("."))),
        ],
    ) {
        let e = FieldPath::parse(&path).expect_err("a path over a limit is refused");
        let message = e.to_string();
        prop_assert!(message.starts_with(&format!("field path {path:?}: ")), "{message}");
        prop_assert!(message.contains("limit of"), "{message}");
    }
}

// ---------------------------------------------------------------------------------------
// Compositions and composites

const RESOURCE_NAMES: &[&str] = &["db", "role", "user", "grant", "x.y", "Ünï", ""];

fn readiness_check() -> impl Strategy<Value = Value> {
    (
        select(
            &[
                "None",
                "NonEmpty",
                "MatchString",
                "MatchInteger",
                "MatchTrue",
                "MatchFalse",
                "MatchCondition",
            ][..],
        ),
        option::of(field_path()),
        option::of("[a-z]{0,3}"),
        option::of(any::<i64>()),
        option::of(("[A-Z][a-z]{0,5}", select(&["True", "False", "Unknown"][..]))),
    )
        .prop_map(|(ty, path, s, i, cond)| {
            let mut c = json!({ "type": ty });
            if let Some(p) = path {
                c["fieldPath"] = json!(p);
            }
            if let Some(s) = s {
                c["matchString"] = json!(s);
            }
            if let Some(i) = i {
                c["matchInteger"] = json!(i);
            }
            if let Some((t, st)) = cond {
                c["matchCondition"] = json!({ "type": t, "status": st });
            }
            c
        })
}

fn connection_detail() -> impl Strategy<Value = Value> {
    (
        option::of(select(&["username", "password", "", "endpoint"][..])),
        option::of(select(
            &[
                "FromConnectionSecretKey",
                "FromFieldPath",
                "FromValue",
                "Format",
            ][..],
        )),
        option::of(select(&["username", "password", "missing"][..])),
        option::of(field_path()),
        option::of("[a-z]{0,5}"),
        option::of("[a-z{}:]{0,12}"),
    )
        .prop_map(|(name, ty, key, path, value, fmt)| {
            let mut d = json!({});
            for (k, v) in [
                ("name", name.map(str::to_string)),
                ("type", ty.map(str::to_string)),
                ("fromConnectionSecretKey", key.map(str::to_string)),
                ("fromFieldPath", path),
                ("value", value),
                ("fmt", fmt),
            ] {
                if let Some(v) = v {
                    d[k] = json!(v);
                }
            }
            d
        })
}

fn template(paths: &[String]) -> impl Strategy<Value = Value> + use<> {
    (
        select(RESOURCE_NAMES),
        prop_oneof![
            6 => (object_of(value()), option::of(object_of(value()))).prop_map(|(spec, metadata)| {
                let mut base = json!({"apiVersion": "example.org/v1", "kind": "Thing", "spec": spec});
                if let Some(m) = metadata {
                    base["metadata"] = m;
                }
                base
            }),
            1 => value(),
        ],
        vec(patch(paths), 0..4),
        vec(connection_detail(), 0..3),
        vec(readiness_check(), 0..3),
        vec(select(RESOURCE_NAMES), 0..2),
    )
        .prop_map(|(name, base, patches, details, checks, depends_on)| {
            json!({
                "name": name,
                "base": base,
                "patches": patches,
                "connectionDetails": details,
                "readinessChecks": checks,
                "dependsOn": depends_on,
            })
        })
}

/// A whole Composition, as JSON, whose patches read mostly from `paths`. Resources are
/// mostly named apart and depend on each other now and then.
fn composition(paths: &[String]) -> impl Strategy<Value = Value> + use<> {
    (
        vec((template(paths), any::<u8>()), 0..4),
        vec(patch(paths), 0..3),
        vec(patch(paths), 0..2),
    )
        .prop_map(|(resources, common, nested)| {
            let unique = ["db", "role", "user", "grant"];
            let resources: Vec<Value> = resources
                .into_iter()
                .enumerate()
                .map(|(i, (mut r, dice))| {
                    if dice % 8 != 0 {
                        r["name"] = json!(unique[i]);
                    }
                    if dice % 4 != 1 {
                        r["dependsOn"] = json!(
                            unique[..i]
                                .iter()
                                .take(usize::from(dice % 2))
                                .collect::<Vec<_>>()
                        );
                    }
                    r
                })
                .collect();
            json!({
                "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XThing"},
                "patchSets": [
                    {"name": "common", "patches": common},
                    {"name": "nested", "patches": nested},
                ],
                "resources": resources,
            })
        })
}

/// A composite resource: usually complete, sometimes without its name or kind.
fn composite() -> impl Strategy<Value = Value> {
    (
        object(),
        object_of(value()),
        option::weighted(0.95, select(&["orders-db", "Ünï", "a-very-long-composite-name-that-exceeds-the-limit-of-a-label-value"][..])),
        option::of("[a-f0-9-]{1,12}"),
        any::<u8>().prop_map(|d| d % 20 != 0),
        any::<bool>(),
    )
        .prop_map(|(spec, status, name, uid, kind, claim)| {
            let mut xr = json!({"apiVersion": "example.org/v1", "spec": spec, "status": status, "metadata": {}});
            if kind {
                xr["kind"] = json!("XThing");
            }
            if let Some(n) = name {
                xr["metadata"]["name"] = json!(n);
            }
            if let Some(u) = uid {
                xr["metadata"]["uid"] = json!(u);
            }
            if claim {
                xr["spec"]["claimRef"] = json!({"name": "c", "namespace": "team-a"});
            }
            xr
        })
}

/// A render or observe error names a resource of the Composition (or the composite
/// itself), names a field when a patch failed, and never contains a value.
fn check_compose_error(
    composition: &CompositionSpec,
    e: &ComposeError,
) -> Result<(), TestCaseError> {
    let message = e.to_string();
    prop_assert!(!leaks(&message), "{message} contains a value");
    let resource = match e {
        ComposeError::Composite { .. } => return Ok(()),
        ComposeError::Resource { resource, .. }
        | ComposeError::ReadinessCheck { resource, .. }
        | ComposeError::ConnectionDetail { resource, .. } => resource,
        ComposeError::Patch {
            resource,
            patch,
            error,
        } => {
            // The patch the error is about: of the resource (observing does not refuse
            // repeated names, so of any resource of that name), or of its patch set.
            let applied: Vec<&Patch> = match &patch.patch_set {
                None => composition
                    .resources
                    .iter()
                    .filter(|r| &r.name == resource)
                    .filter_map(|r| r.patches.get(patch.index))
                    .collect(),
                Some((set, inner)) => composition
                    .patch_sets
                    .iter()
                    .filter(|s| &s.name == set)
                    .filter_map(|s| s.patches.get(*inner))
                    .collect(),
            };
            prop_assert!(
                !applied.is_empty(),
                "{message} names no patch of the Composition"
            );
            let checked: Vec<_> = applied
                .iter()
                .map(|p| match p.patch_type() {
                    PatchType::PatchSet => Ok(()),
                    _ => check_patch_error(p, error),
                })
                .collect();
            if checked.iter().all(Result::is_err) {
                checked.into_iter().next().unwrap_or(Ok(()))?;
            }
            resource
        }
        other => {
            return Err(TestCaseError::fail(format!(
                "an error of no resource: {other}"
            )));
        }
    };
    let named = composition
        .resources
        .iter()
        .enumerate()
        .any(|(i, r)| &r.name == resource || resource == &format!("#{i}"));
    prop_assert!(named, "{message} names no resource of the Composition");
    prop_assert!(message.contains(&format!("'{resource}'")), "{message}");
    Ok(())
}

proptest! {
    #![proptest_config(config(900))]

    /// Rendering any composite with any Composition: no panic; errors name the resource
    /// (and for a patch, its field path); rendered resources are named and labelled.
    #[test]
    fn fuzz_render(
        (composite, composition) in composite().prop_flat_map(|xr| {
            let paths = paths_in(&xr);
            (Just(xr), composition(&paths))
        }),
    ) {
        let Ok(composition) = serde_json::from_value::<CompositionSpec>(composition) else {
            return Ok(());
        };
        match render(&composite, &composition) {
            Ok(rendered) => {
                prop_assert_eq!(rendered.len(), composition.resources.len());
                for r in &rendered {
                    prop_assert!(!r.name().is_empty());
                    prop_assert_eq!(
                        r.object.pointer("/metadata/labels/tessera.dev~1composite"),
                        composite.pointer("/metadata/name")
                    );
                }
            }
            Err(e) => check_compose_error(&composition, &e)?,
        }
    }

    /// Observing any composed resources: no panic; errors name the resource.
    #[test]
    fn fuzz_observe(
        (composite, composition) in composite().prop_flat_map(|xr| {
            let paths = paths_in(&xr);
            (Just(xr), composition(&paths))
        }),
        observed in vec((object_of(value()), btree_map("[a-z]{1,8}", vec(any::<u8>(), 0..8), 0..3)), 0..4),
        keys in vec(select(&["username", "password", "endpoint"][..]).prop_map(str::to_string), 0..3),
    ) {
        let Ok(composition) = serde_json::from_value::<CompositionSpec>(composition) else {
            return Ok(());
        };
        let details: Vec<ConnectionDetails> = observed
            .iter()
            .map(|(_, c)| ConnectionDetails(c.clone().into_iter().collect()))
            .collect();
        let by_name: BTreeMap<String, ObservedResource<'_>> = composition
            .resources
            .iter()
            .zip(observed.iter().zip(&details))
            .map(|(t, ((object, _), connection))| {
                (t.name.clone(), ObservedResource { object, connection })
            })
            .collect();
        match observe(&composite, &composition, &by_name, &keys) {
            Ok(state) => {
                prop_assert_eq!(state.ready.len(), composition.resources.iter().map(|r| &r.name).collect::<std::collections::BTreeSet<_>>().len());
                prop_assert!(state.connection.keys().all(|k| keys.is_empty() || keys.iter().any(|a| a == k)));
            }
            Err(e) => check_compose_error(&composition, &e)?,
        }
    }
}

// ---------------------------------------------------------------------------------------
// XRD schemas

/// An `openAPIV3Schema` node: random types, properties, items, defaults, enums, patterns
/// and bounds, nested a few levels.
fn schema() -> BoxedStrategy<Value> {
    let leaf = (
        option::of(select(
            &[
                "string", "integer", "number", "boolean", "object", "array", "bogus",
            ][..],
        )),
        option::of(value()),
        option::of(vec(scalar(), 0..3)),
        option::of(regexp()),
        option::of(prop_oneof![any::<i64>().prop_map(Value::from), scalar()]),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
    )
        .prop_map(|(ty, default, enum_, pattern, bound, preserve, nullable)| {
            let mut s = json!({});
            if let Some(t) = ty {
                s["type"] = json!(t);
            }
            if let Some(d) = default {
                s["default"] = d;
            }
            if let Some(e) = enum_ {
                s["enum"] = json!(e);
            }
            if let Some(p) = pattern {
                s["pattern"] = json!(p);
            }
            if let Some(b) = bound {
                s["maximum"] = b.clone();
                s["minLength"] = b;
            }
            if let Some(p) = preserve {
                s["x-kubernetes-preserve-unknown-fields"] = json!(p);
            }
            if let Some(n) = nullable {
                s["nullable"] = json!(n);
            }
            s
        });
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            btree_map(key(), inner.clone(), 0..4)
                .prop_map(|props| json!({"type": "object", "properties": props})),
            inner
                .clone()
                .prop_map(|items| json!({"type": "array", "items": items})),
            inner
                .clone()
                .prop_map(|a| json!({"type": "object", "additionalProperties": a})),
            (inner, vec(key(), 0..3)).prop_map(|(mut s, required)| {
                s["required"] = json!(required);
                s
            }),
        ]
    })
    .boxed()
}

/// A schema nested up to the depth a JSON or YAML decoder accepts.
fn deep_schema() -> impl Strategy<Value = Value> {
    (1usize..60, vec(any::<bool>(), 60)).prop_map(|(depth, kinds)| {
        kinds[..depth]
            .iter()
            .fold(json!({"type": "string"}), |inner, list| {
                if *list {
                    json!({"type": "array", "items": inner})
                } else {
                    json!({"type": "object", "properties": {"spec": inner}})
                }
            })
    })
}

fn root_schema() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (option::of(schema()), option::of(schema())).prop_map(|(spec, status)| {
            let mut props = json!({});
            if let Some(s) = spec {
                props["spec"] = s;
            }
            if let Some(s) = status {
                props["status"] = s;
            }
            json!({"type": "object", "properties": props})
        }),
        1 => deep_schema().prop_map(|s| json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"deep": s}}}})),
        1 => schema(),
        1 => value(),
    ]
}

fn dns_label() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z][a-z0-9]{0,8}",
        1 => "[A-Za-z0-9._-]{0,10}",
        1 => (60usize..70).prop_map(|n| "a".repeat(n)),
        1 => "\\PC{0,6}",
    ]
}

/// An XRD: names, group and versions mostly valid, each part sometimes broken; random
/// schemas.
fn xrd() -> impl Strategy<Value = Value> {
    let names = || {
        (
            prop_oneof![4 => "X[A-Z][a-z]{1,8}", 1 => "\\PC{0,8}"],
            dns_label(),
            option::of(dns_label()),
            vec(dns_label(), 0..2),
            vec(dns_label(), 0..2),
        )
            .prop_map(|(kind, plural, singular, short_names, categories)| {
                let mut n = json!({"kind": kind, "plural": plural, "shortNames": short_names, "categories": categories});
                if let Some(s) = singular {
                    n["singular"] = json!(s);
                }
                n
            })
    };
    let version = (
        prop_oneof![6 => Just("v1alpha1".to_string()), 2 => Just("v1".to_string()), 1 => dns_label()],
        any::<bool>(),
        any::<bool>(),
        option::of(root_schema()),
        option::of(any::<bool>()),
        option::of("[a-z ]{0,8}"),
    )
        .prop_map(|(name, served, referenceable, schema, deprecated, warning)| {
            let mut v = json!({"name": name, "served": served || referenceable, "referenceable": referenceable});
            if let Some(s) = schema {
                v["schema"] = json!({ "openAPIV3Schema": s });
            }
            if let Some(d) = deprecated {
                v["deprecated"] = json!(d);
            }
            if let Some(w) = warning {
                v["deprecationWarning"] = json!(w);
            }
            v
        });
    (
        prop_oneof![6 => Just("example.org".to_string()), 1 => "[a-z.]{0,12}", 1 => "\\PC{0,8}"],
        names(),
        option::of(names()),
        vec(version, 0..3),
        option::of(select(&["Opaque", "kubernetes.io/basic-auth", "kubernetes.io/tls", "bogus type", ""][..])),
        vec(select(&["username", "password", "tls.crt", "tls.key"][..]), 0..3),
        any::<bool>(),
    )
        .prop_map(|(group, names, claim_names, versions, secret_type, keys, right_name)| {
            let name = if right_name {
                format!("{}.{group}", names["plural"].as_str().unwrap_or_default())
            } else {
                "wrong".to_string()
            };
            let mut spec = json!({"group": group, "names": names, "versions": versions, "connectionSecretKeys": keys});
            if let Some(c) = claim_names {
                spec["claimNames"] = c;
            }
            if let Some(t) = secret_type {
                spec["connectionSecretType"] = json!(t);
            }
            json!({
                "apiVersion": "apiextensions.tessera.dev/v1",
                "kind": "CompositeResourceDefinition",
                "metadata": {"name": name},
                "spec": spec,
            })
        })
}

proptest! {
    #![proptest_config(config(1000))]

    /// Generating the CRDs of any XRD: no panic; errors name the field, value or version
    /// that is wrong; generated CRDs carry the engine's fields.
    #[test]
    fn fuzz_xrd_crds(xrd in xrd()) {
        let Ok(xrd) = serde_json::from_value::<CompositeResourceDefinition>(xrd) else {
            return Ok(());
        };
        let composite = crate::xrd::composite_crd(&xrd);
        let claim = crate::xrd::claim_crd(&xrd);
        match (&composite, &claim) {
            (Ok(composite), Ok(claim)) => {
                let name = crate::xrd::crd_name(&xrd.spec.names, &xrd.spec.group);
                prop_assert_eq!(composite.metadata.name.as_deref(), Some(name.as_str()));
                prop_assert_eq!(claim.is_some(), xrd.spec.claim_names.is_some());
                for version in &composite.spec.versions {
                    let schema = version.schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref());
                    let spec = schema.and_then(|s| s.properties.as_ref()).and_then(|p| p.get("spec"));
                    let fields = spec.and_then(|s| s.properties.as_ref());
                    prop_assert!(fields.is_some_and(|f| f.contains_key("compositionRef")));
                }
            }
            _ => {
                for e in [composite.as_ref().err(), claim.as_ref().err()].into_iter().flatten() {
                    let message = e.to_string();
                    let versions: Vec<&str> = xrd.spec.versions.iter().map(|v| v.name.as_str()).collect();
                    let named = ["metadata.name", "spec.", "referenceable", "served"]
                        .iter()
                        .any(|f| message.contains(f))
                        || versions.iter().any(|v| names(&message, v));
                    prop_assert!(named, "{message} names no field");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Claims

fn claim() -> impl Strategy<Value = Value> {
    (
        prop_oneof![4 => Just("example.org/v1alpha1".to_string()), 1 => "\\PC{0,12}"],
        prop_oneof![4 => Just("Thing".to_string()), 1 => "\\PC{0,6}"],
        option::weighted(
            0.9,
            prop_oneof![4 => "[a-z][a-z0-9-]{0,20}", 1 => "\\PC{0,70}"],
        ),
        option::weighted(
            0.9,
            prop_oneof![4 => "[a-z][a-z0-9-]{0,20}", 1 => "\\PC{0,70}"],
        ),
        prop_oneof![6 => object(), 1 => value()],
        option::of(select(
            &[
                "compositionRef",
                "compositionSelector",
                "compositionRevisionRef",
                "resourceRefs",
                "writeConnectionSecretToRef",
            ][..],
        )),
    )
        .prop_map(|(api_version, kind, name, namespace, spec, extra)| {
            let mut claim =
                json!({"apiVersion": api_version, "kind": kind, "metadata": {}, "spec": spec});
            if let Some(n) = name {
                claim["metadata"]["name"] = json!(n);
            }
            if let Some(n) = namespace {
                claim["metadata"]["namespace"] = json!(n);
            }
            if let (Some(f), Some(spec)) = (extra, claim["spec"].as_object_mut()) {
                spec.insert(f.to_string(), json!({"name": "x"}));
            }
            claim
        })
}

fn claim_xrd() -> impl Strategy<Value = Value> {
    (
        root_schema(),
        any::<u8>().prop_map(|d| d % 8 != 0),
        any::<bool>(),
    )
        .prop_map(|(schema, claims, forbidden)| {
            let mut spec = json!({
                "group": "example.org",
                "names": {"kind": "XThing", "plural": "xthings"},
                "versions": [{"name": "v1alpha1", "served": true, "referenceable": true,
                              "schema": {"openAPIV3Schema": schema}}],
            });
            if claims {
                spec["claimNames"] = json!({"kind": "Thing", "plural": "things"});
            }
            if forbidden {
                spec["claimCompositionSelection"] = json!("Forbidden");
            }
            spec
        })
}

proptest! {
    #![proptest_config(config(1000))]

    /// A claim against its XRD: schema defaults and validation, then the composite made
    /// from it. No panic; every schema issue and error names its field.
    #[test]
    fn fuzz_claims(xrd in claim_xrd(), mut claim in claim()) {
        let Ok(spec) = serde_json::from_value::<CompositeResourceDefinitionSpec>(xrd) else {
            return Ok(());
        };
        let schema = spec.versions[0].schema.as_ref().map(|s| s.open_api_v3_schema.clone());
        if let Some(schema) = &schema {
            crate::offline::schema::apply_defaults(schema, &mut claim);
            for issue in crate::offline::schema::validate(schema, &claim) {
                prop_assert!(issue.to_string().starts_with(&issue.path), "{issue}");
            }
        }
        match crate::claim::claim_to_composite(&claim, &spec) {
            Ok(xr) => {
                prop_assert!(xr.pointer("/spec/claimRef/name").is_some());
                prop_assert!(xr.pointer("/spec/resourceRefs").is_none());
                let name = xr.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
                prop_assert!(!name.is_empty() && name.len() <= 253, "composite name {name:?}");
            }
            Err(e) => {
                use crate::claim::ClaimToCompositeError as E;
                let message = e.to_string();
                let named = match &e {
                    E::Missing { field } => message.contains(field),
                    E::NotAClaim { kind, .. } => message.contains(kind.as_str()),
                    E::CompositionChoiceForbidden { fields, .. } => {
                        fields.iter().all(|f| message.contains(&format!("spec.{f}")))
                    }
                    E::SpecNotAnObject => message.contains("spec"),
                    E::NoReferenceableVersion => message.contains("referenceable"),
                };
                prop_assert!(named, "{message} names no field");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// `tessera validate` over all of them

proptest! {
    #![proptest_config(config(60))]

    /// `tessera validate` over an XRD, a Composition and a claim: no panic; every problem
    /// names its file and object.
    #[test]
    fn fuzz_offline_validate(xrd in xrd(), composition in composition(&[]), claim in claim()) {
        let doc = |n: usize, object: Value| crate::offline::Document {
            file: format!("f{n}.yaml"),
            line: 1,
            object,
        };
        let composition = json!({
            "apiVersion": "apiextensions.tessera.dev/v1",
            "kind": "Composition",
            "metadata": {"name": "c"},
            "spec": composition,
        });
        let docs = [doc(0, xrd), doc(1, composition), doc(2, claim)];
        let report = crate::offline::validate(&docs, &[]);
        for problem in &report.problems {
            let text = problem.to_string();
            prop_assert!(text.starts_with(&problem.file), "{text}");
            prop_assert!(docs.iter().any(|d| d.file == problem.file), "{text}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Cases the properties found, kept as plain tests.
