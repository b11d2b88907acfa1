use kube::api::DynamicObject;
use kube::runtime::events::EventType;
use serde_json::{Value, json};

use super::*;

fn obj(v: Value) -> DynamicObject {
    serde_json::from_value(v).expect("test object parses")
}

fn claim(spec: Value) -> DynamicObject {
    obj(json!({
        "apiVersion": "platform.example.org/v1",
        "kind": "PostgresDatabase",
        "metadata": { "name": "orders-db", "namespace": "team-a", "generation": 2,
                      "labels": { "app.kubernetes.io/instance": "orders" } },
        "spec": spec,
        "status": { "resourceRef": { "name": "should-not-be-copied" } },
    }))
}

fn xr(generation: i64, conditions: Value) -> DynamicObject {
    obj(json!({
        "apiVersion": "platform.example.org/v1",
        "kind": "XPostgresDatabase",
        "metadata": { "name": "orders-db-1a2b3c4d", "generation": generation },
        "spec": { "claimRef": { "apiVersion": "platform.example.org/v1", "kind": "PostgresDatabase",
                                "name": "orders-db", "namespace": "team-a" } },
        "status": { "conditions": conditions },
    }))
}

fn xrd() -> CompositeResourceDefinitionSpec {
    serde_json::from_value(json!({
        "group": "platform.example.org",
        "names": { "kind": "XPostgresDatabase", "plural": "xpostgresdatabases" },
        "claimNames": { "kind": "PostgresDatabase", "plural": "postgresdatabases" },
        "versions": [{ "name": "v1", "served": true, "referenceable": true }],
    }))
    .expect("test XRD spec")
}

#[test]
fn composite_gets_the_claim_spec_claim_ref_labels_and_a_secret_in_the_claim_namespace() {
    let c = claim(json!({
        "parameters": { "size": "small" },
        "compositionSelector": { "matchLabels": { "env": "prod" } },
        "writeConnectionSecretToRef": { "name": "orders-db-conn" },
    }));
    let name = crate::naming::claim_composite_name("team-a", "orders-db");
    let got = desired_composite(&c, &xrd(), &name).expect("a claim of the XRD");
    assert_eq!(
        got,
        json!({
            "apiVersion": "platform.example.org/v1",
            "kind": "XPostgresDatabase",
            "metadata": {
                "name": name,
                "labels": {
                    "tessera.dev/claim-name": "orders-db",
                    "tessera.dev/claim-namespace": "team-a",
                },
            },
            "spec": {
                "parameters": { "size": "small" },
                "compositionSelector": { "matchLabels": { "env": "prod" } },
                "claimRef": {
                    "apiVersion": "platform.example.org/v1",
                    "kind": "PostgresDatabase",
                    "name": "orders-db",
                    "namespace": "team-a",
                },
                "writeConnectionSecretToRef": { "name": "orders-db-conn", "namespace": "team-a" },
            },
        })
    );
}

#[test]
fn claims_with_names_too_long_for_labels_are_bound_by_claim_ref_only() {
    let mut c = claim(json!({}));
    c.metadata.name = Some("a".repeat(70));
    let name = crate::naming::claim_composite_name("team-a", "a");
    let got = desired_composite(&c, &xrd(), &name).expect("a claim of the XRD");
    assert!(got["metadata"].get("labels").is_none());
    let xr = obj(got);
    assert_eq!(claim_of(&xr), Some(("team-a".to_string(), "a".repeat(70))));
}

#[test]
fn an_existing_composite_is_used_only_when_it_belongs_to_the_claim() {
    let ours = xr(1, json!([]));
    let mut other = ours.clone();
    other.data["spec"]["claimRef"]["namespace"] = json!("team-b");
    let mut labelled = ours.clone();
    labelled.data["spec"] = json!({});
    labelled.metadata.labels = Some(
        [
            (
                "tessera.dev/claim-name".to_string(),
                "orders-db".to_string(),
            ),
            (
                "tessera.dev/claim-namespace".to_string(),
                "team-a".to_string(),
            ),
        ]
        .into(),
    );
    let mut unbound = ours.clone();
    unbound.data["spec"] = json!({});
    let cases = [
        ("no composite yet", None, None),
        ("bound by claimRef", Some(&ours), None),
        ("bound by labels", Some(&labelled), None),
        (
            "another claim's",
            Some(&other),
            Some(
                "Composite orders-db-1a2b3c4d already exists and belongs to claim team-b/orders-db; rename this claim",
            ),
        ),
        (
            "made by hand",
            Some(&unbound),
            Some(
                "Composite orders-db-1a2b3c4d already exists and was not created for a claim; delete it or rename this claim",
            ),
        ),
    ];
    for (reason, existing, want) in cases {
        assert_eq!(
            conflict("team-a", "orders-db", existing).as_deref(),
            want,
            "{reason}"
        );
    }
}

fn summary(c: &Condition) -> (String, String, String) {
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

fn s(status: &str, reason: &str, message: &str) -> (String, String, String) {
    (status.into(), reason.into(), message.into())
}

#[test]
fn claim_conditions_follow_the_composite_and_carry_its_failure_text() {
    let cases = [
        (
            "composite has no status yet",
            xr(1, json!([])),
            s(
                "False",
                "Creating",
                "Waiting for composite orders-db-1a2b3c4d to become ready",
            ),
            s("True", "ReconcileSuccess", ""),
        ),
        (
            "composite ready and synced",
            xr(
                1,
                json!([
                    { "type": "Ready", "status": "True", "reason": "Available", "observedGeneration": 1 },
                    { "type": "Synced", "status": "True", "reason": "ReconcileSuccess", "observedGeneration": 1 },
                ]),
            ),
            s("True", "Available", ""),
            s("True", "ReconcileSuccess", ""),
        ),
        (
            "composite cannot select a composition",
            xr(
                1,
                json!([
                    { "type": "Ready", "status": "False", "reason": "Creating" },
                    { "type": "Synced", "status": "False", "reason": "ReconcileError",
                      "message": "No composition matches selector {env: prod}" },
                ]),
            ),
            s(
                "False",
                "Creating",
                "Waiting for composite orders-db-1a2b3c4d to become ready",
            ),
            s(
                "False",
                "ReconcileError",
                "Composite orders-db-1a2b3c4d: no composition matches selector {env: prod}",
            ),
        ),
        (
            "composite unavailable with a reason",
            xr(
                1,
                json!([
                    { "type": "Ready", "status": "False", "reason": "Unavailable", "message": "Resource 'role' is not ready" },
                ]),
            ),
            s(
                "False",
                "Unavailable",
                "Composite orders-db-1a2b3c4d: resource 'role' is not ready",
            ),
            s("True", "ReconcileSuccess", ""),
        ),
        (
            "acronyms keep their case",
            xr(
                1,
                json!([
                    { "type": "Synced", "status": "False", "reason": "ReconcileError", "message": "CRD missing" },
                ]),
            ),
            s(
                "False",
                "Creating",
                "Waiting for composite orders-db-1a2b3c4d to become ready",
            ),
            s(
                "False",
                "ReconcileError",
                "Composite orders-db-1a2b3c4d: CRD missing",
            ),
        ),
        (
            "composite has not seen its latest spec",
            xr(
                2,
                json!([
                    { "type": "Ready", "status": "True", "reason": "Available", "observedGeneration": 1 },
                    { "type": "Synced", "status": "False", "reason": "ReconcileError", "message": "Old error", "observedGeneration": 1 },
                ]),
            ),
            s(
                "False",
                "Creating",
                "Waiting for composite orders-db-1a2b3c4d to apply its latest spec",
            ),
            s(
                "False",
                "ReconcileError",
                "Composite orders-db-1a2b3c4d: old error",
            ),
        ),
    ];
    for (reason, composite, ready, synced) in cases {
        let (r, sy) = conditions_from(&composite);
        assert_eq!((r.type_.as_str(), sy.type_.as_str()), ("Ready", "Synced"));
        assert_eq!(summary(&r), ready, "{reason}: Ready");
        assert_eq!(summary(&sy), synced, "{reason}: Synced");
    }
}

#[test]
fn deleting_claims_wait_for_their_composite_and_say_why_it_is_stuck() {
    let (ready, _) = deleting_conditions(&xr(1, json!([])));
    assert_eq!(
        summary(&ready),
        s(
            "False",
            "Deleting",
            "Waiting for composite orders-db-1a2b3c4d to be deleted"
        )
    );
    let stuck = xr(
        1,
        json!([
            { "type": "Synced", "status": "False", "reason": "ReconcileError", "message": "Cannot delete role: in use" },
        ]),
    );
    let (ready, synced) = deleting_conditions(&stuck);
    assert_eq!(
        ready.message,
        "Composite orders-db-1a2b3c4d: cannot delete role: in use"
    );
    assert!(!synced.is_true());
}

#[test]
fn events_are_published_on_transitions_only() {
    let rref = json!({ "apiVersion": "a/v1", "kind": "X", "name": "x-1" });
    let ready_false = Condition::new("Ready", false, "Creating", "Waiting");
    let ready_true = Condition::new("Ready", true, "Available", "");
    let synced_ok = Condition::new("Synced", true, "ReconcileSuccess", "");
    let synced_bad = |m: &str| Condition::new("Synced", false, "ReconcileError", m);
    let names = |e: Vec<(EventType, String, String)>| -> Vec<String> {
        e.into_iter().map(|(_, r, _)| r).collect()
    };
    type Case<'a> = (
        &'a str,
        Vec<Condition>,
        Vec<Condition>,
        Option<&'a Value>,
        Vec<&'a str>,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "first bind",
            vec![],
            vec![ready_false.clone(), synced_ok.clone()],
            None,
            vec!["Bound"],
        ),
        (
            "steady state",
            vec![ready_true.clone(), synced_ok.clone()],
            vec![ready_true.clone(), synced_ok.clone()],
            Some(&rref),
            vec![],
        ),
        (
            "becomes ready",
            vec![ready_false.clone(), synced_ok.clone()],
            vec![ready_true.clone(), synced_ok.clone()],
            Some(&rref),
            vec!["Ready"],
        ),
        (
            "sync fails",
            vec![ready_false.clone(), synced_ok.clone()],
            vec![ready_false.clone(), synced_bad("A")],
            Some(&rref),
            vec!["ReconcileError"],
        ),
        (
            "same failure again",
            vec![synced_bad("A")],
            vec![synced_bad("A")],
            Some(&rref),
            vec![],
        ),
        (
            "different failure",
            vec![synced_bad("A")],
            vec![synced_bad("B")],
            Some(&rref),
            vec!["ReconcileError"],
        ),
    ];
    for (reason, old, new, old_ref, want) in cases {
        let got = names(events("x-1", &old, &new, old_ref, Some(&rref)));
        assert_eq!(got, want, "{reason}");
    }
    let (_, _, note) = events("x-1", &[], &[], None, Some(&rref)).remove(0);
    assert_eq!(note, "Bound to composite x-1");
}

#[test]
fn a_claim_bound_before_the_hash_was_widened_keeps_its_composite() {
    let mut c = claim(json!({}));
    c.data["status"]["resourceRef"] = json!({
        "apiVersion": "platform.example.org/v1",
        "kind": "XPostgresDatabase",
        "name": "orders-db-24ad43c5",
    });
    let bound = bound_composite_name(&c, &xrd());
    assert_eq!(bound.as_deref(), Some("orders-db-24ad43c5"));
    let got = desired_composite(&c, &xrd(), "orders-db-24ad43c5").expect("a claim of the XRD");
    assert_eq!(got["metadata"]["name"], json!("orders-db-24ad43c5"));
}

#[test]
fn a_claim_not_bound_to_a_composite_of_the_xrd_gets_a_new_name() {
    struct Case {
        reason: &'static str,
        resource_ref: Value,
    }
    let cases = [
        Case {
            reason: "no resourceRef",
            resource_ref: Value::Null,
        },
        Case {
            reason: "a reference without kind",
            resource_ref: json!({ "name": "orders-db-24ad43c5" }),
        },
        Case {
            reason: "another kind",
            resource_ref: json!({ "apiVersion": "platform.example.org/v1", "kind": "XBucket",
                                  "name": "orders-db-24ad43c5" }),
        },
        Case {
            reason: "another group",
            resource_ref: json!({ "apiVersion": "other.example.org/v1", "kind": "XPostgresDatabase",
                                  "name": "orders-db-24ad43c5" }),
        },
        Case {
            reason: "an empty name",
            resource_ref: json!({ "apiVersion": "platform.example.org/v1", "kind": "XPostgresDatabase",
                                  "name": "" }),
        },
    ];
    for case in cases {
        let mut c = claim(json!({}));
        c.data["status"]["resourceRef"] = case.resource_ref;
        assert_eq!(bound_composite_name(&c, &xrd()), None, "{}", case.reason);
    }
}

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
        "f:conditions": { "k:{\"type\":\"Ready\"}": {}, "k:{\"type\":\"Synced\"}": {} },
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
        assert_eq!(types, ["Ready", "Synced"], "{reason}");
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
    assert_eq!(conditions.len(), 2, "only Ready and Synced are applied");
    assert_eq!(
        conditions[0]["lastTransitionTime"], "t0",
        "Ready stayed True"
    );
    assert_eq!(
        conditions[1]["lastTransitionTime"], "t1",
        "Synced turned False"
    );
    assert_eq!(
        got.conditions.len(),
        3,
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
