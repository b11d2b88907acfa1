//! kstatus conformance (the status rules of sigs.k8s.io/cli-utils' kstatus, which Flux's
//! default health check and `kubectl wait`-style tooling follow), ported as
//! `tessera_tests::kstatus::compute`, applied to objects read from the real kube-apiserver:
//! a Ready claim, its composite, its composed managed resources and the XRD (Current); a
//! claim whose role is refused, so its composite waits (InProgress, `Reconciling=True`)
//! while the role is Failed (`Stalled=True`); a claim whose selector matches no
//! Composition (Failed, with the composite's message). Also `kubectl wait
//! --for=condition=Ready` and `--for=condition=Stalled` with testenv's kubectl.

use std::time::Duration;

use kube::api::DynamicObject;
use serde_json::{Value, json};
use tessera_engine::naming::claim_composite_name;
use tessera_tests::kstatus::{KStatus, compute};
use tessera_tests::{
    PG_API, TestEnv, apply, condition, delete_in, get, get_in, install_crds,
    install_postgres_platform, kubectl, namespace, start_composition_controllers_in_process,
    start_controller_in_process, unique, wait_gone, wait_gone_in, wait_object, wait_object_in,
    yaml_docs,
};

const CLAIM_API: &str = "platform.tessera.dev/v1alpha1";

fn claim(ns: &str, name: &str) -> Value {
    let mut c = yaml_docs("compositions/postgres/example-claim.yaml").remove(0);
    c["metadata"]["namespace"] = json!(ns);
    c["metadata"]["name"] = json!(name);
    c["spec"]["writeConnectionSecretToRef"]["name"] = json!(format!("{name}-conn"));
    c
}

/// The status and reason of condition `type_` of `obj` (JSON), if it has one.
fn cond(obj: &Value, type_: &str) -> Option<(String, String, String)> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (s("status"), s("reason"), s("message"))
        })
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
    apply(&client, claim(&ns, "app-db")).await;

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
    let claim = get_in(&client, CLAIM_API, "PostgresDatabase", &ns, "app-db")
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
        // kstatus' abnormal-true conditions are there, and False, on a Current object.
        for t in ["Reconciling", "Stalled"] {
            let (status, ..) = cond(&v, t).unwrap_or_else(|| panic!("{what} has {t}"));
            assert_eq!(status, "False", "{what}: {t}");
        }
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

#[tokio::test]
async fn a_failing_claim_is_failed_and_a_waiting_one_in_progress() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    install_postgres_platform(&env, &client).await;
    start_controller_in_process(&env);
    start_composition_controllers_in_process(&env);
    tessera_tests::wait_crd_established(&client, "postgresdatabases.platform.tessera.dev")
        .await
        .expect("the XRD offers the PostgresDatabase claim");
    let ns = namespace(&client, &unique("kstatus-fail")).await;
    // A role of the name the claim's role will have exists already: the Role is refused
    // (it is not Tessera's), and its composite waits for it.
    let blocked_xr = claim_composite_name(&ns, "blocked-db");
    let pg = env.postgres().await;
    pg.batch_execute(&format!("CREATE ROLE \"{blocked_xr}\""))
        .await
        .expect("create the squatting role");
    apply(&client, claim(&ns, "blocked-db")).await;
    let mut unmatched = claim(&ns, "unmatched-db");
    unmatched["spec"]["compositionSelector"] = json!({ "matchLabels": { "tier": "platinum" } });
    apply(&client, unmatched).await;

    // kubectl wait sees the failure as kstatus does.
    kubectl(
        &env,
        &[
            "wait",
            "--for=condition=Stalled",
            "--timeout=90s",
            "-n",
            &ns,
            "postgresdatabase.platform.tessera.dev/unmatched-db",
        ],
    );
    let unmatched = get_in(&client, CLAIM_API, "PostgresDatabase", &ns, "unmatched-db")
        .await
        .expect("the unmatched claim");
    let unmatched_xr = get(
        &client,
        CLAIM_API,
        "XPostgresDatabase",
        &claim_composite_name(&ns, "unmatched-db"),
    )
    .await
    .expect("the unmatched claim's composite");
    let blocked = wait_object(
        &client,
        CLAIM_API,
        "XPostgresDatabase",
        &blocked_xr,
        Duration::from_secs(60),
        "Synced, not Ready, three resourceRefs",
        |o| {
            o.data["spec"]["resourceRefs"].as_array().map(Vec::len) == Some(3)
                && condition(o, "Synced").is_some_and(|c| c.is_true())
                && condition(o, "Ready").is_some_and(|c| !c.is_true())
        },
    )
    .await;
    let role = blocked.data["spec"]["resourceRefs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "Role")
        .and_then(|r| r["name"].as_str())
        .expect("a Role")
        .to_string();
    let role = wait_object(
        &client,
        PG_API,
        "Role",
        &role,
        Duration::from_secs(60),
        "Synced=False: not owned",
        |o| condition(o, "Synced").is_some_and(|c| c.reason == "ExternalResourceNotOwned"),
    )
    .await;
    let blocked_claim = wait_object_in(
        &client,
        CLAIM_API,
        "PostgresDatabase",
        &ns,
        "blocked-db",
        "Synced, not Ready",
        |o| {
            condition(o, "Synced").is_some_and(|c| c.is_true())
                && condition(o, "Ready").is_some_and(|c| !c.is_true())
        },
    )
    .await;

    let cases = [
        ("unmatched claim", &unmatched, KStatus::Failed),
        ("unmatched composite", &unmatched_xr, KStatus::Failed),
        ("refused role", &role, KStatus::Failed),
        ("waiting composite", &blocked, KStatus::InProgress),
        ("waiting claim", &blocked_claim, KStatus::InProgress),
    ];
    for (what, o, want) in cases {
        let v = serde_json::to_value(o).unwrap();
        assert_eq!(compute(&v), want, "{what}: {:?}", v["status"]["conditions"]);
        let synced = cond(&v, "Synced").expect("Synced");
        let ready = cond(&v, "Ready").expect("Ready");
        let stalled = cond(&v, "Stalled").expect("Stalled");
        let reconciling = cond(&v, "Reconciling").expect("Reconciling");
        if want == KStatus::Failed {
            // Stalled says what Synced says: the error a person has to act on.
            assert_eq!(stalled.0, "True", "{what}");
            assert_eq!((&stalled.1, &stalled.2), (&synced.1, &synced.2), "{what}");
            assert_eq!(reconciling.0, "False", "{what}");
        } else {
            // Reconciling explains what the object waits for, as Ready does.
            assert_eq!(reconciling.0, "True", "{what}");
            assert_eq!(
                (&reconciling.1, &reconciling.2),
                (&ready.1, &ready.2),
                "{what}"
            );
            assert_eq!(stalled.0, "False", "{what}");
        }
    }
    assert!(
        cond(&serde_json::to_value(&unmatched).unwrap(), "Stalled")
            .unwrap()
            .2
            .contains("platinum"),
        "the claim's Stalled message names the selector"
    );
    // Leave nothing behind that is still reconciled: the refused Role would create its
    // role once the one in its way is dropped.
    for name in ["blocked-db", "unmatched-db"] {
        delete_in(&client, CLAIM_API, "PostgresDatabase", &ns, name).await;
    }
    for name in ["blocked-db", "unmatched-db"] {
        wait_gone_in(&client, CLAIM_API, "PostgresDatabase", &ns, name).await;
        let xr = claim_composite_name(&ns, name);
        wait_gone(&client, CLAIM_API, "XPostgresDatabase", &xr).await;
    }
    pg.batch_execute(&format!("DROP ROLE IF EXISTS \"{blocked_xr}\""))
        .await
        .ok();
}
