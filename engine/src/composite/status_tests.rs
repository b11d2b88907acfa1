use serde_json::{Value, json};

use super::*;

fn ready_map(entries: &[(&str, bool)]) -> BTreeMap<String, bool> {
    entries.iter().map(|(n, r)| (n.to_string(), *r)).collect()
}

#[test]
fn ready_condition_lists_unready_resources_in_composition_order() {
    let order = ["role", "database", "grant"];
    let cases = [
        (
            "all ready",
            ready_map(&[("role", true), ("database", true), ("grant", true)]),
            (true, "Available", ""),
        ),
        (
            "some not ready, in composition order",
            ready_map(&[("role", false), ("database", false), ("grant", true)]),
            (false, "Creating", "Waiting for resources: role, database"),
        ),
        (
            "not observed counts as not ready",
            ready_map(&[("role", true)]),
            (false, "Creating", "Waiting for resources: database, grant"),
        ),
    ];
    for (reason, ready, (status, why, message)) in cases {
        let c = ready_condition(&order, &ready);
        assert_eq!(
            (c.is_true(), c.reason.as_str(), c.message.as_str()),
            (status, why, message),
            "{reason}"
        );
    }
}

#[test]
fn a_composed_resources_failure_and_status_reach_the_ready_message() {
    let order = ["subnets", "instance"];
    let ready = ready_map(&[("subnets", true), ("instance", false)]);
    let problem = |o: Value| crate::compose::readiness::problem(&o);
    struct Case {
        reason: &'static str,
        instance: Value,
        want: (&'static str, &'static str),
    }
    let cases = [
        Case {
            reason: "a failed reconcile: the Synced message, with its reason",
            instance: json!({"status": {"conditions": [
                {"type": "Ready", "status": "False", "reason": "Creating"},
                {"type": "Synced", "status": "False", "reason": "ReconcileError",
                 "message": "CreateDBInstance x: InvalidParameterCombination: RDS does not support db.t3.micr"}
            ]}}),
            want: (
                "Creating",
                "Waiting for resources: instance. Resource 'instance': ReconcileError: \
                 CreateDBInstance x: InvalidParameterCombination: RDS does not support db.t3.micr",
            ),
        },
        Case {
            reason: "still being made: the Ready message",
            instance: json!({"status": {"conditions": [
                {"type": "Ready", "status": "False", "reason": "Creating",
                 "message": "AWS status of DB instance \"x\": creating"},
                {"type": "Synced", "status": "True", "reason": "ReconcileSuccess"}
            ]}}),
            want: (
                "Creating",
                "Waiting for resources: instance. Resource 'instance': Creating: AWS status \
                 of DB instance \"x\": creating",
            ),
        },
        Case {
            reason: "usable before and not now: the composite is Unavailable too",
            instance: json!({"status": {"conditions": [
                {"type": "Ready", "status": "False", "reason": "Unavailable",
                 "message": "AWS status of DB instance \"x\": modifying"},
                {"type": "Synced", "status": "True", "reason": "ReconcileSuccess"}
            ]}}),
            want: (
                "Unavailable",
                "Waiting for resources: instance. Resource 'instance': Unavailable: AWS \
                 status of DB instance \"x\": modifying",
            ),
        },
        Case {
            reason: "conditions without messages add nothing",
            instance: json!({"status": {"conditions": [
                {"type": "Ready", "status": "False", "reason": "Creating"}
            ]}}),
            want: ("Creating", "Waiting for resources: instance"),
        },
    ];
    for c in cases {
        let problems: BTreeMap<String, String> = problem(c.instance)
            .map(|p| ("instance".to_string(), p))
            .into_iter()
            .collect();
        let got = ready_condition_explained(&order, &ready, &problems);
        assert!(!got.is_true(), "{}", c.reason);
        assert_eq!(
            (got.reason.as_str(), got.message.as_str()),
            c.want,
            "{}",
            c.reason
        );
    }
    let long = "x".repeat(2000);
    let bounded = problem(json!({"status": {"conditions": [
        {"type": "Synced", "status": "False", "reason": "ReconcileError", "message": long}
    ]}}))
    .unwrap();
    assert!(
        bounded.len() < 600,
        "messages are bounded: {}",
        bounded.len()
    );
}

#[test]
fn deleting_and_synced_conditions_read_as_sentences() {
    let c = deleting_condition(&["grant"]);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "Deleting")
    );
    assert_eq!(c.message, "Deleting resources: grant");
    let ok = synced_condition(None);
    assert_eq!(
        (ok.status.as_str(), ok.reason.as_str()),
        ("True", "ReconcileSuccess")
    );
    let err = synced_condition(Some(
        "patch 2 of resource 'role': field spec.parameters.size is required but missing",
    ));
    assert_eq!(err.reason, "ReconcileError");
    assert_eq!(
        err.message,
        "Patch 2 of resource 'role': field spec.parameters.size is required but missing"
    );
}

#[test]
fn first_status_says_not_ready() {
    let status = next_status(
        &Value::Null,
        StatusUpdate {
            generation: Some(1),
            synced: Some(synced_condition(None)),
            ..Default::default()
        },
        "t1",
    );
    assert_eq!(status["observedGeneration"], 1);
    let conditions = status["conditions"].as_array().expect("conditions");
    assert_eq!(conditions[0]["type"], "Ready");
    assert_eq!(conditions[0]["status"], "False");
    assert_eq!(conditions[0]["observedGeneration"], 1);
    let types: Vec<&str> = conditions
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["Ready", "Reconciling", "Stalled", "Synced"]);
    // Synced and not Ready yet: kstatus reads it as in progress.
    assert_eq!(conditions[1]["status"], "True");
    assert_eq!(conditions[2]["status"], "False");
}

#[test]
fn next_status_keeps_transition_times_patched_fields_and_publish_time() {
    let old = json!({
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "Creating", "lastTransitionTime": "t0", "observedGeneration": 1},
            {"type": "Synced", "status": "True", "reason": "ReconcileSuccess", "lastTransitionTime": "t0", "observedGeneration": 1},
        ],
        "observedGeneration": 1,
        "connectionDetails": {"lastPublishedTime": "t0"},
        "roleOid": 1,
    });
    let mut patched = old.clone();
    patched["roleOid"] = json!(2);
    let ready = ready_condition(&["role"], &ready_map(&[("role", true)]));
    let new = next_status(
        &old,
        StatusUpdate {
            generation: Some(2),
            ready: Some(ready),
            synced: Some(synced_condition(None)),
            patched: Some(patched),
            published_at: None,
        },
        "t5",
    );
    assert_eq!(new["roleOid"], 2, "to-composite patches land in status");
    assert_eq!(
        new["connectionDetails"]["lastPublishedTime"], "t0",
        "unchanged without a publish"
    );
    assert_eq!(
        new["conditions"][0]["lastTransitionTime"], "t5",
        "Ready changed status"
    );
    // Sorted by type: Ready, Reconciling, Stalled, Synced.
    let synced = &new["conditions"][3];
    assert_eq!(synced["type"], "Synced");
    assert_eq!(synced["lastTransitionTime"], "t0", "Synced did not");
    assert_eq!(synced["observedGeneration"], 2);
    assert_eq!(
        (
            &new["conditions"][1]["type"],
            &new["conditions"][1]["status"]
        ),
        (&json!("Reconciling"), &json!("False")),
        "Ready: no longer reconciling"
    );

    let published = next_status(
        &new,
        StatusUpdate {
            generation: Some(2),
            published_at: Some("t6".into()),
            ..Default::default()
        },
        "t6",
    );
    assert_eq!(published["connectionDetails"]["lastPublishedTime"], "t6");
    assert_eq!(
        published["conditions"], new["conditions"],
        "kept when not given"
    );
    let again = next_status(
        &new,
        StatusUpdate {
            generation: Some(2),
            ready: Some(ready_condition(&["role"], &ready_map(&[("role", true)]))),
            synced: Some(synced_condition(None)),
            patched: Some(new.clone()),
            published_at: None,
        },
        "t7",
    );
    assert_eq!(
        again, new,
        "the steady state computes the same status, so nothing is written"
    );
}

fn conds(synced: Option<(bool, &str)>, ready: Option<bool>) -> Vec<Condition> {
    let mut out = Vec::new();
    if let Some((s, m)) = synced {
        out.push(Condition::new("Synced", s, "", m));
    }
    if let Some(r) = ready {
        out.push(Condition::new("Ready", r, "", ""));
    }
    out
}

#[test]
fn events_only_on_transitions() {
    let cases = [
        (
            "first success says nothing",
            conds(None, None),
            conds(Some((true, "")), Some(false)),
            vec![],
        ),
        (
            "an error is reported once",
            conds(Some((true, "")), Some(false)),
            conds(Some((false, "Boom")), Some(false)),
            vec![(true, "ReconcileError")],
        ),
        (
            "the same error is not repeated",
            conds(Some((false, "Boom")), Some(false)),
            conds(Some((false, "Boom")), Some(false)),
            vec![],
        ),
        (
            "a different error is reported",
            conds(Some((false, "Boom")), Some(false)),
            conds(Some((false, "Bang")), Some(false)),
            vec![(true, "ReconcileError")],
        ),
        (
            "recovery and readiness are noted",
            conds(Some((false, "Boom")), Some(false)),
            conds(Some((true, "")), Some(true)),
            vec![(false, "ReconcileSuccess"), (false, "Available")],
        ),
        (
            "staying ready says nothing",
            conds(Some((true, "")), Some(true)),
            conds(Some((true, "")), Some(true)),
            vec![],
        ),
    ];
    for (reason, old, new, want) in cases {
        let got: Vec<(bool, &str)> = transition_events(&old, &new)
            .iter()
            .map(|e| (e.warning, e.reason))
            .collect();
        assert_eq!(got, want, "{reason}");
    }
}
