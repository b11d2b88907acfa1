//! kstatus conformance (the status rules of sigs.k8s.io/cli-utils' kstatus, which Flux's
//! default health check and `kubectl wait`-style tooling follow), ported as `compute`
//! below, applied to the objects of a Ready claim read from the real kube-apiserver: the
//! claim, its composite, its composed managed resources and the XRD. Also
//! `kubectl wait --for=condition=Ready` on a claim, with testenv's kubectl.

use std::time::Duration;

use kube::api::DynamicObject;
use serde_json::{Value, json};
use tessera_engine::naming::claim_composite_name;
use tessera_tests::{
    PG_API, TestEnv, apply, condition, get, install_crds, install_postgres_platform, kubectl,
    namespace, start_composition_controllers_in_process, start_controller_in_process, unique,
    wait_object, yaml_docs,
};

const CLAIM_API: &str = "platform.tessera.dev/v1alpha1";

#[derive(Debug, PartialEq)]
enum KStatus {
    InProgress,
    Failed,
    Current,
    Terminating,
}

/// kstatus' generic rules for custom resources: Terminating while deleted; InProgress while
/// `status.observedGeneration` differs from `metadata.generation`; InProgress with a
/// `Reconciling=True` condition, Failed with `Stalled=True`; Current otherwise.
fn compute(obj: &Value) -> KStatus {
    if !obj["metadata"]["deletionTimestamp"].is_null() {
        return KStatus::Terminating;
    }
    if let Some(observed) = obj["status"]["observedGeneration"].as_i64()
        && Some(observed) != obj["metadata"]["generation"].as_i64()
    {
        return KStatus::InProgress;
    }
    for c in obj["status"]["conditions"].as_array().into_iter().flatten() {
        match (c["type"].as_str(), c["status"].as_str()) {
            (Some("Reconciling"), Some("True")) => return KStatus::InProgress,
            (Some("Stalled"), Some("True")) => return KStatus::Failed,
            _ => {}
        }
    }
    KStatus::Current
}

#[test]
fn the_ported_rules_read_generation_reconciling_and_stalled() {
    let obj = |gen_: i64, observed: i64, conds: Value| {
        json!({ "metadata": { "generation": gen_ },
                "status": { "observedGeneration": observed, "conditions": conds } })
    };
    assert_eq!(compute(&obj(2, 2, json!([]))), KStatus::Current);
    assert_eq!(compute(&obj(3, 2, json!([]))), KStatus::InProgress);
    let stalled = json!([{ "type": "Stalled", "status": "True" }]);
    assert_eq!(compute(&obj(2, 2, stalled)), KStatus::Failed);
    let reconciling = json!([{ "type": "Reconciling", "status": "True" }]);
    assert_eq!(compute(&obj(2, 2, reconciling)), KStatus::InProgress);
}

#[tokio::test]
async fn a_ready_claim_and_everything_below_it_are_current_and_kubectl_wait_returns() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    install_postgres_platform(&env, &client).await;
    start_controller_in_process(&env);
    start_composition_controllers_in_process(&env);
    tessera_tests::wait_crd_established(&client, "postgresdatabases.platform.tessera.dev")
        .await
        .expect("the XRD offers the PostgresDatabase claim");
    let ns = namespace(&client, &unique("kstatus")).await;
    let mut c = yaml_docs("compositions/postgres/example-claim.yaml").remove(0);
    c["metadata"]["namespace"] = json!(ns);
    c["metadata"]["name"] = json!("app-db");
    c["spec"]["writeConnectionSecretToRef"]["name"] = json!("app-db-conn");
    apply(&client, c).await;

    // kubectl wait returns once the claim is Ready (it fails after its timeout otherwise).
    kubectl(
        &env,
        &[
            "wait",
            "--for=condition=Ready",
            "--timeout=90s",
            "-n",
            &ns,
            "postgresdatabase/app-db",
        ],
    );
    let claim = tessera_tests::get_in(&client, CLAIM_API, "PostgresDatabase", &ns, "app-db")
        .await
        .expect("the claim");
    let xr_name = claim_composite_name(&ns, "app-db");
    let ready = |o: &DynamicObject| condition(o, "Ready").is_some_and(|c| c.is_true());
    let xr = wait_object(
        &client,
        CLAIM_API,
        "XPostgresDatabase",
        &xr_name,
        Duration::from_secs(60),
        "Ready",
        ready,
    )
    .await;
    let mut objects = vec![claim, xr.clone()];
    for r in xr.data["spec"]["resourceRefs"]
        .as_array()
        .expect("resourceRefs")
    {
        let (kind, name) = (r["kind"].as_str().unwrap(), r["name"].as_str().unwrap());
        objects.push(
            wait_object(
                &client,
                PG_API,
                kind,
                name,
                Duration::from_secs(60),
                "Ready",
                ready,
            )
            .await,
        );
    }
    objects.push(
        get(
            &client,
            "apiextensions.tessera.dev/v1",
            "CompositeResourceDefinition",
            "xpostgresdatabases.platform.tessera.dev",
        )
        .await
        .expect("the XRD"),
    );
    for o in &objects {
        let v = serde_json::to_value(o).unwrap();
        let what = format!("{} {}", v["kind"], v["metadata"]["name"]);
        // Without observedGeneration kstatus cannot tell a stale status from a fresh one.
        assert!(
            v["status"]["observedGeneration"].is_i64(),
            "{what} has status.observedGeneration"
        );
        assert_eq!(
            v["status"]["observedGeneration"], v["metadata"]["generation"],
            "{what} reports the generation it observed"
        );
        assert_eq!(compute(&v), KStatus::Current, "{what}");
        let mut lagging = v.clone();
        lagging["metadata"]["generation"] =
            json!(v["metadata"]["generation"].as_i64().unwrap() + 1);
        assert_eq!(
            compute(&lagging),
            KStatus::InProgress,
            "{what} with a newer spec"
        );
    }
}
