use kube::api::DynamicObject;
use kube::runtime::events::EventType;
use serde_json::{Value, json};

use super::*;

pub(super) fn obj(v: Value) -> DynamicObject {
    serde_json::from_value(v).expect("test object parses")
}

pub(super) fn claim(spec: Value) -> DynamicObject {
    obj(json!({
        "apiVersion": "platform.example.org/v1",
        "kind": "PostgresDatabase",
        "metadata": { "name": "orders-db", "namespace": "team-a", "generation": 2,
                      "labels": { "app.kubernetes.io/instance": "orders" } },
        "spec": spec,
        "status": { "resourceRef": { "name": "should-not-be-copied" } },
    }))
}

pub(super) fn xr(generation: i64, conditions: Value) -> DynamicObject {
    obj(json!({
        "apiVersion": "platform.example.org/v1",
        "kind": "XPostgresDatabase",
        "metadata": { "name": "orders-db-1a2b3c4d", "generation": generation },
        "spec": { "claimRef": { "apiVersion": "platform.example.org/v1", "kind": "PostgresDatabase",
                                "name": "orders-db", "namespace": "team-a" } },
        "status": { "conditions": conditions },
    }))
}

pub(super) fn xrd() -> CompositeResourceDefinitionSpec {
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
fn the_composite_apply_carries_its_finalizer_and_is_skipped_when_nothing_changed() {
    const MANAGER: &str = "tessera/claim";
    let c = claim(json!({ "parameters": { "size": "small" } }));
    let name = crate::naming::claim_composite_name("team-a", "orders-db");
    let body = with_finalizer(desired_composite(&c, &xrd(), &name).expect("a claim of the XRD"));
    assert_eq!(body["metadata"]["finalizers"], json!([FINALIZER]));

    // The composite as the API server keeps it after the claim's apply, and another
    // finalizer someone added later.
    let mut applied = body.clone();
    applied["metadata"]["finalizers"] = json!([FINALIZER, "example.org/keep"]);
    applied["metadata"]["managedFields"] = json!([{
        "manager": MANAGER,
        "operation": "Apply",
        "fieldsV1": { "f:metadata": { "f:finalizers": { "v:\"finalizer.apiextensions.tessera.dev\"": {} },
                                      "f:labels": {} },
                      "f:spec": { "f:parameters": {}, "f:claimRef": {} } },
    }]);
    let live = obj(applied.clone());
    assert!(
        !composite_needs_apply(&body, &live, MANAGER),
        "the composite holds the body: another finalizer asks for no apply"
    );

    let mut without = applied.clone();
    without["metadata"]["finalizers"] = json!(["example.org/keep"]);
    assert!(
        composite_needs_apply(&body, &obj(without), MANAGER),
        "a composite without the finalizer gets it back"
    );

    let mut changed = applied.clone();
    changed["spec"]["parameters"]["size"] = json!("large");
    assert!(
        composite_needs_apply(&body, &obj(changed.clone()), MANAGER),
        "a spec that differs is applied"
    );

    changed["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    assert!(
        !composite_needs_apply(&body, &obj(changed), MANAGER),
        "a composite being deleted is left alone"
    );
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
