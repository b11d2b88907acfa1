//! The claim's status fields copied from its composite, and when the claim's status is
//! written.

use kube::api::DynamicObject;
use serde_json::{Value, json};

use super::tests::{claim, xr, xrd};
use super::*;

#[test]
fn a_claim_copies_its_composites_status_fields_but_not_the_engines_bookkeeping() {
    let with_status = |status: Value| {
        let mut x = xr(1, json!([]));
        x.data["status"] = status;
        x
    };
    let cases = [
        (
            "composite without status",
            with_status(Value::Null),
            json!({}),
        ),
        (
            "fields the composition patched are copied, objects whole",
            with_status(json!({
                "databaseName": "orders-db-1a2b3c4d",
                "endpoint": { "host": "db.example.org", "port": 5432 },
            })),
            json!({
                "databaseName": "orders-db-1a2b3c4d",
                "endpoint": { "host": "db.example.org", "port": 5432 },
            }),
        ),
        (
            "conditions, observedGeneration and connectionDetails are the composite's own",
            with_status(json!({
                "conditions": [{ "type": "Ready", "status": "True" }],
                "observedGeneration": 7,
                "connectionDetails": { "lastPublishedTime": "2026-01-01T00:00:00Z" },
                "roleName": "orders",
            })),
            json!({ "roleName": "orders" }),
        ),
        (
            "a composite's resourceRef never replaces the claim's binding",
            with_status(json!({ "resourceRef": { "name": "elsewhere" } })),
            json!({}),
        ),
    ];
    for (reason, composite, want) in cases {
        assert_eq!(Value::Object(copied_status(&composite)), want, "{reason}");
    }
}

const MANAGER: &str = "tessera/claim";

/// A claim whose status is `status`, with `owned` (a `fieldsV1` of the status) owned by
/// the claim controller's field manager, as the API server records it.
fn claim_with_status(status: Value, owned: Value) -> DynamicObject {
    let mut c = claim(json!({}));
    c.data["status"] = status;
    c.metadata.managed_fields = Some(vec![
        serde_json::from_value(json!({
            "manager": MANAGER, "operation": "Apply", "subresource": "status",
            "apiVersion": "platform.example.org/v1", "fieldsType": "FieldsV1",
            "fieldsV1": { "f:status": owned },
        }))
        .expect("managed fields entry"),
    ]);
    c
}

fn rref() -> Value {
    json!({ "apiVersion": "platform.example.org/v1", "kind": "XPostgresDatabase",
            "name": "orders-db-1a2b3c4d" })
}

/// The claim's status as the claim controller last wrote it: ready, bound, generation 2,
/// with `fields` copied from the composite.
fn written_status(fields: Value) -> Value {
    let mut status = json!({
        "conditions": [
            { "type": "Ready", "status": "True", "reason": "Available",
              "lastTransitionTime": "t0", "observedGeneration": 2 },
            { "type": "Synced", "status": "True", "reason": "ReconcileSuccess",
              "lastTransitionTime": "t0", "observedGeneration": 2 },
            { "type": "Reconciling", "status": "False", "reason": "Available",
              "lastTransitionTime": "t0", "observedGeneration": 2 },
            { "type": "Stalled", "status": "False", "reason": "Available",
              "lastTransitionTime": "t0", "observedGeneration": 2 },
        ],
        "observedGeneration": 2,
        "resourceRef": rref(),
    });
    for (k, v) in fields.as_object().expect("fields").clone() {
        status[k] = v;
    }
    status
}

fn owning(fields: &[&str]) -> Value {
    let mut owned = json!({
        "f:conditions": {
            "k:{\"type\":\"Ready\"}": {}, "k:{\"type\":\"Synced\"}": {},
            "k:{\"type\":\"Reconciling\"}": {}, "k:{\"type\":\"Stalled\"}": {},
        },
        "f:observedGeneration": {},
        "f:resourceRef": {},
    });
    for f in fields {
        owned[format!("f:{f}")] = json!({});
    }
    owned
}

fn ready_with(fields: Value) -> ClaimStatus {
    ClaimStatus {
        ready: Condition::available(),
        synced: Condition::reconcile_success(),
        resource_ref: Some(rref()),
        fields: fields.as_object().expect("fields").clone(),
    }
}

#[test]
fn the_claims_status_is_written_only_when_the_composite_says_something_new() {
    let db = json!({ "databaseName": "orders-db-1a2b3c4d" });
    let cases = [
        (
            "a claim without status gets conditions, binding and the composite's fields",
            claim_with_status(Value::Null, json!({})),
            ready_with(db.clone()),
            Some(json!(["databaseName", "observedGeneration", "resourceRef"])),
        ),
        (
            "steady state: the claim shows all of it already",
            claim_with_status(written_status(db.clone()), owning(&["databaseName"])),
            ready_with(db.clone()),
            None,
        ),
        (
            "a field of the composite appears",
            claim_with_status(written_status(json!({})), owning(&[])),
            ready_with(db.clone()),
            Some(json!(["databaseName", "observedGeneration", "resourceRef"])),
        ),
        (
            "a field of the composite changes",
            claim_with_status(
                written_status(json!({ "databaseName": "old" })),
                owning(&["databaseName"]),
            ),
            ready_with(db.clone()),
            Some(json!(["databaseName", "observedGeneration", "resourceRef"])),
        ),
        (
            "a field removed from the composite is left out, so the apply removes it",
            claim_with_status(written_status(db.clone()), owning(&["databaseName"])),
            ready_with(json!({})),
            Some(json!(["observedGeneration", "resourceRef"])),
        ),
        (
            "a part removed from an object field is left out too",
            claim_with_status(
                written_status(json!({ "endpoint": { "host": "h", "port": 1 } })),
                owning(&[])
                    .as_object()
                    .cloned()
                    .map(|mut o| {
                        o.insert("f:endpoint".into(), json!({ "f:host": {}, "f:port": {} }));
                        Value::Object(o)
                    })
                    .expect("owned fields"),
            ),
            ready_with(json!({ "endpoint": { "host": "h" } })),
            Some(json!(["endpoint", "observedGeneration", "resourceRef"])),
        ),
        (
            "a field another manager wrote to the claim is not ours to remove: no write",
            claim_with_status(written_status(json!({ "note": "by hand" })), owning(&[])),
            ready_with(json!({})),
            None,
        ),
        (
            "only the conditions change",
            claim_with_status(written_status(db.clone()), owning(&["databaseName"])),
            ClaimStatus {
                synced: Condition::reconcile_error("Composite x: broken"),
                ..ready_with(db.clone())
            },
            Some(json!(["databaseName", "observedGeneration", "resourceRef"])),
        ),
    ];
    for (reason, claim, want, fields) in cases {
        let got = status_write(&claim, want.clone(), MANAGER, "t1");
        let Some(fields) = fields else {
            assert_eq!(got, None, "{reason}");
            continue;
        };
        let got = got.unwrap_or_else(|| panic!("{reason}: expected a write"));
        let mut keys: Vec<&str> = got
            .status
            .as_object()
            .expect("status object")
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "conditions")
            .collect();
        keys.sort();
        assert_eq!(json!(keys), fields, "{reason}");
        for (k, v) in &want.fields {
            assert_eq!(&got.status[k], v, "{reason}: {k}");
        }
        let types: Vec<&str> = got.status["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .filter_map(|c| c["type"].as_str())
            .collect();
        assert_eq!(
            types,
            ["Ready", "Synced", "Reconciling", "Stalled"],
            "{reason}"
        );
        assert_eq!(got.status["observedGeneration"], json!(2), "{reason}");
    }
}

#[test]
fn conditions_that_did_not_change_status_keep_their_transition_time_and_others_conditions_stay_out()
{
    let mut status = written_status(json!({}));
    status["conditions"]
        .as_array_mut()
        .expect("conditions")
        .push(json!({ "type": "Healthy", "status": "True", "lastTransitionTime": "t0" }));
    let c = claim_with_status(status, owning(&[]));
    let want = ClaimStatus {
        synced: Condition::reconcile_error("Composite x: broken"),
        ..ready_with(json!({}))
    };
    let got = status_write(&c, want, MANAGER, "t1").expect("Synced changed");
    let conditions = got.status["conditions"].as_array().expect("conditions");
    assert_eq!(
        conditions.len(),
        4,
        "only Ready, Synced, Reconciling and Stalled are applied"
    );
    assert_eq!(
        conditions[0]["lastTransitionTime"], "t0",
        "Ready stayed True"
    );
    assert_eq!(
        conditions[1]["lastTransitionTime"], "t1",
        "Synced turned False"
    );
    assert_eq!(
        (&conditions[3]["type"], &conditions[3]["status"]),
        (&json!("Stalled"), &json!("True")),
        "Synced turned False: stalled"
    );
    assert_eq!(
        got.conditions.len(),
        5,
        "events see the Healthy condition too"
    );
}

#[test]
fn every_status_field_the_engine_adds_to_the_generated_crds_is_bookkeeping_the_claim_does_not_copy()
{
    let xrd: crate::api::xrd::CompositeResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.tessera.dev/v1",
        "kind": "CompositeResourceDefinition",
        "metadata": { "name": "xpostgresdatabases.platform.example.org" },
        "spec": serde_json::to_value(xrd()).expect("XRD spec"),
    }))
    .expect("test XRD");
    let composite = crate::xrd::composite_crd(&xrd).expect("composite CRD");
    let claim = crate::xrd::claim_crd(&xrd)
        .expect("claim CRD")
        .expect("offers a claim");
    for crd in [composite, claim] {
        let crd = serde_json::to_value(&crd).expect("CRD as JSON");
        let status = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
            ["properties"];
        let fields = status.as_object().expect("status properties");
        assert!(!fields.is_empty());
        for field in fields.keys() {
            assert!(
                ENGINE_STATUS_FIELDS.contains(&field.as_str()),
                "{}: status.{field} is the engine's, so it must not be copied",
                crd["metadata"]["name"]
            );
        }
    }
}
