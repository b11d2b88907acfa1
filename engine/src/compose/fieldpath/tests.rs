use serde_json::{Value, json};

use super::*;

fn f(name: &str) -> Segment {
    Segment::Field(name.to_string())
}

#[test]
fn parse() {
    struct Case {
        reason: &'static str,
        path: &'static str,
        want: Result<Vec<Segment>, &'static str>,
    }
    let cases = [
        Case {
            reason: "a single field",
            path: "spec",
            want: Ok(vec![f("spec")]),
        },
        Case {
            reason: "dotted fields",
            path: "spec.forProvider.size",
            want: Ok(vec![f("spec"), f("forProvider"), f("size")]),
        },
        Case {
            reason: "a list index after a field",
            path: "spec.items[0].name",
            want: Ok(vec![f("spec"), f("items"), Segment::Index(0), f("name")]),
        },
        Case {
            reason: "a bracketed field name may hold dots and slashes, without quotes",
            path: "metadata.annotations[example.org/owner]",
            want: Ok(vec![
                f("metadata"),
                f("annotations"),
                f("example.org/owner"),
            ]),
        },
        Case {
            reason: "consecutive brackets",
            path: "a[1][22]",
            want: Ok(vec![f("a"), Segment::Index(1), Segment::Index(22)]),
        },
        Case {
            reason: "a path may start with a bracket",
            path: "[tls.crt]",
            want: Ok(vec![f("tls.crt")]),
        },
        Case {
            reason: "a bracketed non-number is a field, even a negative number",
            path: "a[-1]",
            want: Ok(vec![f("a"), f("-1")]),
        },
        Case {
            reason: "a field after brackets",
            path: "data[a.b].c",
            want: Ok(vec![f("data"), f("a.b"), f("c")]),
        },
        Case {
            reason: "an empty path is rejected",
            path: "",
            want: Err("field path \"\": is empty"),
        },
        Case {
            reason: "an empty field between dots is rejected",
            path: "spec..size",
            want: Err("field path \"spec..size\": empty field name"),
        },
        Case {
            reason: "a leading dot is rejected",
            path: ".spec",
            want: Err("field path \".spec\": empty field name"),
        },
        Case {
            reason: "a trailing dot is rejected",
            path: "spec.",
            want: Err("field path \"spec.\": ends with '.'"),
        },
        Case {
            reason: "an unterminated bracket is rejected",
            path: "spec.items[0",
            want: Err("field path \"spec.items[0\": unterminated '['"),
        },
        Case {
            reason: "empty brackets are rejected",
            path: "spec.items[]",
            want: Err("field path \"spec.items[]\": empty brackets '[]'"),
        },
        Case {
            reason: "a stray closing bracket is rejected",
            path: "spec.items]",
            want: Err("field path \"spec.items]\": unexpected ']'"),
        },
        Case {
            reason: "text right after a bracket is rejected",
            path: "spec.items[0]name",
            want: Err("field path \"spec.items[0]name\": expected '.' or '[' after ']', found 'n'"),
        },
        Case {
            reason: "wildcards are not supported",
            path: "spec.items[*].name",
            want: Err("field path \"spec.items[*].name\": wildcards '[*]' are not supported"),
        },
    ];
    for case in cases {
        let got = FieldPath::parse(case.path)
            .map(|p| p.segments().to_vec())
            .map_err(|e| e.to_string());
        let want = case.want.map_err(str::to_string);
        assert_eq!(got, want, "{}", case.reason);
    }
}

fn object() -> Value {
    json!({
        "metadata": {"annotations": {"example.org/owner": "team-a"}},
        "spec": {
            "items": [{"name": "first"}, {"name": "second"}],
            "size": 10,
            "empty": null,
            "text": "hello",
        }
    })
}

#[test]
fn get() {
    struct Case {
        reason: &'static str,
        path: &'static str,
        want: Result<Option<Value>, &'static str>,
    }
    let cases = [
        Case {
            reason: "a nested scalar",
            path: "spec.size",
            want: Ok(Some(json!(10))),
        },
        Case {
            reason: "a list element's field",
            path: "spec.items[1].name",
            want: Ok(Some(json!("second"))),
        },
        Case {
            reason: "a bracketed annotation key",
            path: "metadata.annotations[example.org/owner]",
            want: Ok(Some(json!("team-a"))),
        },
        Case {
            reason: "a whole object",
            path: "spec.items[0]",
            want: Ok(Some(json!({"name": "first"}))),
        },
        Case {
            reason: "a missing field is None",
            path: "spec.missing.deeper",
            want: Ok(None),
        },
        Case {
            reason: "an index out of range is None",
            path: "spec.items[5].name",
            want: Ok(None),
        },
        Case {
            reason: "an explicit null is None",
            path: "spec.empty",
            want: Ok(None),
        },
        Case {
            reason: "descending through null is None",
            path: "spec.empty.x",
            want: Ok(None),
        },
        Case {
            reason: "indexing a string is an error naming the step",
            path: "spec.text[0]",
            want: Err("field path \"spec.text[0]\": spec.text is a string, not a list"),
        },
        Case {
            reason: "a field of a list is an error",
            path: "spec.items.name",
            want: Err("field path \"spec.items.name\": spec.items is a list, not an object"),
        },
    ];
    let obj = object();
    for case in cases {
        let got = super::get(&obj, case.path)
            .map(|v| v.cloned())
            .map_err(|e| e.to_string());
        assert_eq!(got, case.want.map_err(str::to_string), "{}", case.reason);
    }
}

#[test]
fn set() {
    struct Case {
        reason: &'static str,
        start: Value,
        path: &'static str,
        value: Value,
        want: Result<Value, &'static str>,
    }
    let cases = [
        Case {
            reason: "creates intermediate objects",
            start: json!({}),
            path: "spec.forProvider.size",
            value: json!(3),
            want: Ok(json!({"spec": {"forProvider": {"size": 3}}})),
        },
        Case {
            reason: "creates a list and pads it with nulls up to the index",
            start: json!({}),
            path: "spec.items[2].name",
            value: json!("x"),
            want: Ok(json!({"spec": {"items": [null, null, {"name": "x"}]}})),
        },
        Case {
            reason: "replaces an existing value",
            start: json!({"spec": {"size": 1, "other": true}}),
            path: "spec.size",
            value: json!({"a": 1}),
            want: Ok(json!({"spec": {"size": {"a": 1}, "other": true}})),
        },
        Case {
            reason: "writes into an existing list element",
            start: json!({"items": [{"a": 1}, {"a": 2}]}),
            path: "items[1].b",
            value: json!(true),
            want: Ok(json!({"items": [{"a": 1}, {"a": 2, "b": true}]})),
        },
        Case {
            reason: "a bracketed key with dots is one field",
            start: json!({"metadata": {}}),
            path: "metadata.labels[app.kubernetes.io/name]",
            value: json!("db"),
            want: Ok(json!({"metadata": {"labels": {"app.kubernetes.io/name": "db"}}})),
        },
        Case {
            reason: "replaces a null on the way",
            start: json!({"spec": null}),
            path: "spec.size",
            value: json!(1),
            want: Ok(json!({"spec": {"size": 1}})),
        },
        Case {
            reason: "refuses to descend into a string",
            start: json!({"spec": "text"}),
            path: "spec.size",
            value: json!(1),
            want: Err("field path \"spec.size\": spec is a string, not an object"),
        },
        Case {
            reason: "refuses to index an object",
            start: json!({"spec": {}}),
            path: "spec[0]",
            value: json!(1),
            want: Err("field path \"spec[0]\": spec is an object, not a list"),
        },
    ];
    for case in cases {
        let mut obj = case.start;
        let got = super::set(&mut obj, case.path, case.value)
            .map(|()| obj)
            .map_err(|e| e.to_string());
        assert_eq!(got, case.want.map_err(str::to_string), "{}", case.reason);
    }
}

#[test]
fn delete() {
    struct Case {
        reason: &'static str,
        path: &'static str,
        want_removed: bool,
        want: Value,
    }
    let cases = [
        Case {
            reason: "removes a field",
            path: "spec.size",
            want_removed: true,
            want: json!({"spec": {"items": [1, 2, 3]}}),
        },
        Case {
            reason: "removes a list element",
            path: "spec.items[1]",
            want_removed: true,
            want: json!({"spec": {"size": 1, "items": [1, 3]}}),
        },
        Case {
            reason: "a missing field is not an error",
            path: "spec.nothing.here",
            want_removed: false,
            want: json!({"spec": {"size": 1, "items": [1, 2, 3]}}),
        },
        Case {
            reason: "an index out of range is not an error",
            path: "spec.items[9]",
            want_removed: false,
            want: json!({"spec": {"size": 1, "items": [1, 2, 3]}}),
        },
    ];
    for case in cases {
        let mut obj = json!({"spec": {"size": 1, "items": [1, 2, 3]}});
        let removed = super::delete(&mut obj, case.path).expect(case.reason);
        assert_eq!(removed, case.want_removed, "{}", case.reason);
        assert_eq!(obj, case.want, "{}", case.reason);
    }
    let mut obj = json!({"spec": "text"});
    assert_eq!(
        super::delete(&mut obj, "spec.size")
            .unwrap_err()
            .to_string(),
        "field path \"spec.size\": spec is a string, not an object",
        "deleting below a scalar names the scalar"
    );
}

#[test]
fn merge() {
    struct Case {
        reason: &'static str,
        start: Value,
        value: Value,
        options: Option<MergeOptions>,
        want: Value,
    }
    let opts = |append: bool, keep: bool| {
        Some(MergeOptions {
            append_slice: Some(append),
            keep_map_values: Some(keep),
        })
    };
    let cases = [
        Case {
            reason: "without merge options the value is replaced",
            start: json!({"t": {"a": 1, "b": 2}}),
            value: json!({"b": 3}),
            options: None,
            want: json!({"t": {"b": 3}}),
        },
        Case {
            reason: "empty merge options merge objects deeply and the patch wins",
            start: json!({"t": {"a": 1, "b": 2, "n": {"x": 1}}}),
            value: json!({"b": 3, "c": 4, "n": {"y": 2}}),
            options: Some(MergeOptions::default()),
            want: json!({"t": {"a": 1, "b": 3, "c": 4, "n": {"x": 1, "y": 2}}}),
        },
        Case {
            reason: "keepMapValues keeps existing values and adds new keys",
            start: json!({"t": {"a": 1, "b": 2}}),
            value: json!({"b": 3, "c": 4}),
            options: opts(false, true),
            want: json!({"t": {"a": 1, "b": 2, "c": 4}}),
        },
        Case {
            reason: "lists are replaced unless appendSlice",
            start: json!({"t": [1, 2]}),
            value: json!([3]),
            options: opts(false, false),
            want: json!({"t": [3]}),
        },
        Case {
            reason: "appendSlice appends, skipping items already present",
            start: json!({"t": [1, 2]}),
            value: json!([2, 3]),
            options: opts(true, false),
            want: json!({"t": [1, 2, 3]}),
        },
        Case {
            reason: "appendSlice applies to lists nested in merged objects",
            start: json!({"t": {"tags": ["a"], "x": 1}}),
            value: json!({"tags": ["b"], "x": 2}),
            options: opts(true, false),
            want: json!({"t": {"tags": ["a", "b"], "x": 2}}),
        },
        Case {
            reason: "keepMapValues keeps an existing scalar at the target",
            start: json!({"t": "old"}),
            value: json!("new"),
            options: opts(false, true),
            want: json!({"t": "old"}),
        },
        Case {
            reason: "appendSlice skips repeated items of the patched list too, and keeps items that are equal only in another order of keys once",
            start: json!({"t": [{"a": 1, "b": 2}, 1]}),
            value: json!([{"b": 2, "a": 1}, 1.0, "x", "x", [1, {"c": null}], [1, {"c": null}]]),
            options: opts(true, false),
            want: json!({"t": [{"a": 1, "b": 2}, 1, 1.0, "x", [1, {"c": null}]]}),
        },
        Case {
            reason: "a missing target is simply set",
            start: json!({}),
            value: json!({"a": 1}),
            options: opts(true, true),
            want: json!({"t": {"a": 1}}),
        },
    ];
    for case in cases {
        let mut obj = case.start;
        super::merge(&mut obj, "t", case.value, case.options.as_ref()).expect(case.reason);
        assert_eq!(obj, case.want, "{}", case.reason);
    }
}

/// A claim may send a list of a few hundred thousand items (the API server takes objects
/// up to about 1.5 MiB). Compared one by one with the list built so far, appending 200,000
/// distinct items made 20 billion comparisons: minutes of a controller's time, per
/// reconcile. The property tests (`fuzz.rs`) send such wide lists through every patch.
#[test]
fn merge_appends_a_long_list_of_distinct_items_in_linear_time() {
    const N: usize = 200_000;
    let items: Vec<Value> = (0..N).map(|i| json!(format!("10.0.{i}"))).collect();
    let mut obj = json!({"t": ["10.0.0"]});
    let options = MergeOptions {
        append_slice: Some(true),
        keep_map_values: None,
    };
    super::merge(&mut obj, "t", Value::Array(items), Some(&options)).expect("merges");
    let merged = obj["t"].as_array().expect("a list");
    assert_eq!(merged.len(), N);
    assert_eq!(merged[N - 1], json!(format!("10.0.{}", N - 1)));
}

#[test]
fn display_round_trips_the_written_path() {
    let p: FieldPath = "metadata.annotations[example.org/owner]"
        .parse()
        .expect("parses");
    assert_eq!(p.to_string(), "metadata.annotations[example.org/owner]");
    assert_eq!(p.as_str(), p.to_string());
}
