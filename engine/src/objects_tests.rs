use serde_json::json;

use super::*;

const MANAGER: &str = "tessera/composite/orders";

fn rendered() -> Value {
    json!({
        "apiVersion": "postgresql.sql.tessera.dev/v1alpha1",
        "kind": "Role",
        "metadata": {
            "name": "orders-role",
            "labels": {"tessera.dev/composite": "orders"},
            "ownerReferences": [{"kind": "XPostgresDatabase", "name": "orders", "uid": "u1", "controller": true}],
        },
        "spec": {"forProvider": {"privileges": {"login": true}, "connectionLimit": 10}},
    })
}

fn live(spec: Value, managed: Value) -> Value {
    json!({
        "apiVersion": "postgresql.sql.tessera.dev/v1alpha1",
        "kind": "Role",
        "metadata": {
            "name": "orders-role",
            "uid": "r1",
            "resourceVersion": "42",
            "labels": {"tessera.dev/composite": "orders", "extra": "x"},
            "annotations": {"tessera.dev/external-name": "orders-role"},
            "ownerReferences": [{"apiVersion": "g/v1", "kind": "XPostgresDatabase", "name": "orders", "uid": "u1", "controller": true, "blockOwnerDeletion": true}],
            "managedFields": managed,
        },
        "spec": spec,
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    })
}

fn owned(spec_fields: Value) -> Value {
    json!([
        {"manager": MANAGER, "operation": "Apply", "fieldsV1": {
            "f:metadata": {"f:labels": {"f:tessera.dev/composite": {}},
                           "f:ownerReferences": {"k:{\"uid\":\"u1\"}": {}}},
            "f:spec": spec_fields,
        }},
        {"manager": "tessera", "operation": "Update", "fieldsV1": {
            "f:metadata": {"f:annotations": {"f:tessera.dev/external-name": {}}}}},
    ])
}

#[test]
fn apply_decisions() {
    let fields =
        json!({"f:forProvider": {"f:privileges": {"f:login": {}}, "f:connectionLimit": {}}});
    let same_spec = json!({"forProvider": {"privileges": {"login": true}, "connectionLimit": 10},
                           "deletionPolicy": "Delete"});
    struct Case {
        reason: &'static str,
        live: Option<Value>,
        want: bool,
    }
    let cases = [
        Case {
            reason: "a missing resource is applied",
            live: None,
            want: true,
        },
        Case {
            reason: "nothing to do when every rendered field is live, whatever else the object has",
            live: Some(live(same_spec.clone(), owned(fields.clone()))),
            want: false,
        },
        Case {
            reason: "a changed value is applied",
            live: Some(live(
                json!({"forProvider": {"privileges": {"login": true}, "connectionLimit": 5}}),
                owned(fields.clone()),
            )),
            want: true,
        },
        Case {
            reason: "numbers compare by value",
            live: Some(live(
                json!({"forProvider": {"privileges": {"login": true}, "connectionLimit": 10.0}}),
                owned(fields.clone()),
            )),
            want: false,
        },
        Case {
            reason: "a field we own but no longer render is applied away",
            live: Some(live(
                json!({"forProvider": {"privileges": {"login": true}, "connectionLimit": 10, "template": "t0"}}),
                owned(
                    json!({"f:forProvider": {"f:privileges": {"f:login": {}}, "f:connectionLimit": {}, "f:template": {}}}),
                ),
            )),
            want: true,
        },
        Case {
            reason: "fields owned by other managers do not matter",
            live: Some(live(
                same_spec.clone(),
                json!([
                    {"manager": MANAGER, "operation": "Apply", "fieldsV1": {"f:spec": fields.clone()}},
                    {"manager": "someone", "operation": "Apply", "fieldsV1": {"f:spec": {"f:other": {}}}},
                ]),
            )),
            want: false,
        },
    ];
    for case in cases {
        assert_eq!(
            needs_apply(&rendered(), case.live.as_ref(), MANAGER),
            case.want,
            "{}",
            case.reason
        );
    }
}

#[test]
fn subset_rules() {
    let cases = [
        (
            "extra live keys are fine",
            json!({"a": 1}),
            json!({"a": 1, "b": 2}),
            true,
        ),
        (
            "a missing key differs",
            json!({"a": 1}),
            json!({"b": 2}),
            false,
        ),
        (
            "null matches a missing key",
            json!({"a": null}),
            json!({}),
            true,
        ),
        (
            "arrays need the same length",
            json!({"a": [1]}),
            json!({"a": [1, 2]}),
            false,
        ),
        (
            "array elements compare as subsets",
            json!([{"x": 1}]),
            json!([{"x": 1, "y": 2}]),
            true,
        ),
        (
            "strings differ from numbers",
            json!({"a": "1"}),
            json!({"a": 1}),
            false,
        ),
    ];
    for (reason, want, have, expected) in cases {
        assert_eq!(is_subset(&want, &have), expected, "{reason}");
    }
}

#[test]
fn object_keys_ignore_the_version() {
    let a =
        ObjectKey::of(&json!({"apiVersion": "g.io/v1", "kind": "K", "metadata": {"name": "n"}}));
    let b =
        ObjectKey::of(&json!({"apiVersion": "g.io/v2", "kind": "K", "metadata": {"name": "n"}}));
    assert_eq!(a, b);
    let core = ObjectKey::of(&json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s", "namespace": "ns"}}))
    .expect("key");
    assert_eq!(
        (core.group.as_str(), core.namespace.as_deref()),
        ("", Some("ns"))
    );
    assert_eq!(ObjectKey::of(&json!({"kind": "K"})), None);
}

#[test]
fn stores_keep_only_the_apply_entries_of_their_managers() {
    let entry = |manager: &str, operation: &str| {
        json!({"manager": manager, "operation": operation, "fieldsType": "FieldsV1",
               "fieldsV1": {"f:spec": {"f:size": {}}}})
    };
    let mut meta: ObjectMeta = serde_json::from_value(json!({
        "name": "orders",
        "managedFields": [
            entry(MANAGER, "Apply"),
            entry(MANAGER, "Update"),
            entry("kubectl-client-side-apply", "Update"),
            entry("argocd-controller", "Apply"),
            entry("tessera-panic-guard", "Apply"),
        ],
    }))
    .unwrap();
    let keep = [MANAGER.to_string(), "tessera-panic-guard".to_string()];
    trim_for_store(&mut meta, |m| keep.iter().any(|k| k == m));
    let kept: Vec<_> = meta
        .managed_fields
        .iter()
        .flatten()
        .map(|e| (e.manager.as_deref(), e.operation.as_deref()))
        .collect();
    assert_eq!(
        kept,
        [
            (Some(MANAGER), Some("Apply")),
            (Some("tessera-panic-guard"), Some("Apply"))
        ]
    );
    // What is kept still drives the apply decision: a field this manager owns that is
    // no longer rendered is removed by an apply.
    let spec = json!({"forProvider": {"privileges": {"login": true}, "connectionLimit": 10}});
    let mut obj = live(
        spec,
        owned(json!({"f:forProvider": {"f:connectionLimit": {}, "f:gone": {}}})),
    );
    let mut meta: ObjectMeta = serde_json::from_value(obj["metadata"].clone()).unwrap();
    trim_for_store(&mut meta, |m| keep.iter().any(|k| k == m));
    assert_eq!(meta.managed_fields.as_ref().map(Vec::len), Some(1));
    obj["metadata"] = serde_json::to_value(&meta).unwrap();
    assert!(needs_apply(&rendered(), Some(&obj), MANAGER));

    let mut other: ObjectMeta = serde_json::from_value(json!({
        "name": "orders",
        "managedFields": [entry("kube-controller-manager", "Update")],
    }))
    .unwrap();
    trim_for_store(&mut other, |m| keep.iter().any(|k| k == m));
    assert_eq!(
        other.managed_fields, None,
        "nothing kept leaves no empty list"
    );
}
