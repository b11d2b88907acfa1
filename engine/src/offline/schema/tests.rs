use serde_json::{Value, json};

use super::*;

fn schema() -> Value {
    json!({
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "pattern": "^[a-z-]+$", "maxLength": 10},
                    "size": {"type": "string", "enum": ["small", "large"], "default": "small"},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 5},
                    "ratio": {"type": "number"},
                    "port": {"x-kubernetes-int-or-string": true},
                    "owner": {"type": "string", "nullable": true},
                    "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "nested": {
                        "type": "object",
                        "default": {},
                        "properties": {"level": {"type": "integer", "default": 3}},
                    },
                },
            },
        },
    })
}

fn messages(value: Value) -> Vec<String> {
    validate(&schema(), &value)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn objects_are_checked_like_the_api_server_checks_them() {
    // (reason, spec, expected issues)
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "a valid object has no issues",
            json!({"name": "db", "replicas": 2, "ratio": 0.5, "port": "http", "owner": null,
                   "tags": ["a"], "labels": {"a/b": "c"}, "extra": {"any": [1]}}),
            vec![],
        ),
        (
            "a missing required field is named with its path",
            json!({}),
            vec!["spec.name is required but missing"],
        ),
        (
            "null counts as missing",
            json!({"name": null}),
            vec!["spec.name is required but missing"],
        ),
        (
            "types, enums, patterns and bounds are checked",
            json!({"name": "Db", "size": "huge", "replicas": 9, "ratio": "x", "port": true}),
            vec![
                "spec.name: \"Db\" does not match the pattern \"^[a-z-]+$\"",
                "spec.port: must be a string or an integer, not a boolean",
                "spec.ratio: must be a number, not a string",
                "spec.replicas: must be at most 5, not 9",
                "spec.size: must be one of \"small\", \"large\", not \"huge\"",
            ],
        ),
        (
            "unknown fields are reported, with the likely meant one",
            json!({"name": "db", "replica": 1, "whatever": 1}),
            vec![
                "spec.replica: unknown field; did you mean replicas?",
                "spec.whatever: unknown field",
            ],
        ),
        (
            "list items and map values are checked; keys with dots use brackets",
            json!({"name": "db", "tags": ["a", 1, "c"], "labels": {"x.io/y": 2}}),
            vec![
                "spec.labels[x.io/y]: must be a string, not an integer",
                "spec.tags: must have at most 2 items, not 3",
                "spec.tags[1]: must be a string, not an integer",
            ],
        ),
        (
            "a patched placeholder fits any schema",
            json!({"name": PATCHED, "replicas": PATCHED}),
            vec![],
        ),
    ];
    for (reason, spec, expected) in cases {
        let mut got = messages(json!({"spec": spec}));
        got.sort();
        assert_eq!(got, expected, "{reason}");
    }
}

#[test]
fn defaults_fill_absent_fields_top_down() {
    let mut value = json!({"spec": {"name": "db", "owner": null}});
    apply_defaults(&schema(), &mut value);
    assert_eq!(
        value["spec"],
        json!({"name": "db", "owner": null, "size": "small", "nested": {"level": 3}})
    );
    let mut given = json!({"spec": {"size": "large", "nested": {"level": 1}}});
    apply_defaults(&schema(), &mut given);
    assert_eq!(given["spec"]["size"], json!("large"), "given values stay");
    assert_eq!(given["spec"]["nested"]["level"], json!(1));
}

#[test]
fn lookups_follow_field_paths_through_the_schema() {
    let s = schema();
    let find = |path: &str| lookup(&s, &FieldPath::parse(path).expect("parses"));
    assert_eq!(
        Types::of_schema(match find("spec.replicas") {
            Lookup::Found(node) => node,
            other => panic!("{other:?}"),
        }),
        Types::INTEGER
    );
    assert!(matches!(
        find("spec.labels[example.org/team]"),
        Lookup::Found(_)
    ));
    assert!(matches!(find("spec.tags[3]"), Lookup::Found(_)));
    assert_eq!(find("spec.extra.anything[2].goes"), Lookup::Any);
    assert_eq!(
        find("spec.replica"),
        Lookup::Missing {
            field: "spec.replica".into(),
            suggestion: Some("spec.replicas".into())
        }
    );
    assert_eq!(
        find("spec.nope.deeper"),
        Lookup::Missing {
            field: "spec.nope".into(),
            suggestion: None
        }
    );
    assert_eq!(
        find("spec.tags.first"),
        Lookup::Mismatch("spec.tags is a list, not an object; index it, e.g. spec.tags[0]".into())
    );
    assert_eq!(
        find("spec.name[0]"),
        Lookup::Mismatch("spec.name is a string, not a list".into())
    );
}

#[test]
fn type_sets_describe_themselves_in_words() {
    assert_eq!(Types::NUMBER.describe(), "a number");
    assert_eq!(
        (Types::STRING | Types::INTEGER).describe(),
        "a string or an integer"
    );
    assert_eq!(Types::ANY.describe(), "anything");
    assert!(Types::NUMBER.overlaps(Types::INTEGER));
    assert!(!Types::STRING.overlaps(Types::BOOLEAN));
}
