//! Faults inside the controllers stay contained: a reconcile that panics fails only its
//! own object (which says so), and a per-XRD controller that dies is restarted and
//! reported on its XRD. The faults are injected through `tessera_engine::testing`, with
//! the shipped PostgresDatabase composition against the real PostgreSQL server.
//!
//! This file has a test binary of its own: the composite controller it kills belongs to
//! this process's in-process controllers only.

use std::time::Duration;

use serde_json::json;
use tessera_engine::testing;
use tessera_tests::{
    TestEnv, apply, condition, events_about, install_crds, install_postgres_platform, namespace,
    start_composition_controllers_in_process, start_controller_in_process, unique, wait_for,
    wait_object, wait_object_in, yaml_docs,
};

const CLAIM_API: &str = "platform.tessera.dev/v1alpha1";

async fn platform() -> (TestEnv, kube::Client) {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    install_postgres_platform(&env, &client).await;
    start_controller_in_process(&env);
    start_composition_controllers_in_process(&env);
    tessera_tests::wait_crd_established(&client, "postgresdatabases.platform.tessera.dev")
        .await
        .expect("the XRD offers the PostgresDatabase claim");
    (env, client)
}

/// A private copy of the shipped PostgresDatabase XRD and Composition, in a group of its
/// own (so that no status or event of another run or test is mistaken for this one's);
/// returns the XRD's name and the claims' apiVersion once the claim CRD is served.
async fn private_platform(client: &kube::Client) -> (String, String) {
    let n: String = unique("k").chars().filter(char::is_ascii_digit).collect();
    let group = format!("t{n}.tests.tessera.dev");
    let api_version = format!("{group}/v1alpha1");
    let composition = format!("postgres-{n}");
    let mut xrd = yaml_docs("compositions/postgres/xrd.yaml").remove(0);
    let xrd_name = format!("xpostgresdatabases.{group}");
    xrd["metadata"]["name"] = json!(xrd_name);
    xrd["spec"]["group"] = json!(group);
    xrd["spec"]["defaultCompositionRef"]["name"] = json!(composition);
    if let Some(names) = xrd["spec"]["claimNames"].as_object_mut() {
        names.remove("shortNames");
    }
    let mut comp = yaml_docs("compositions/postgres/composition.yaml").remove(0);
    comp["metadata"]["name"] = json!(composition);
    comp["spec"]["compositeTypeRef"]["apiVersion"] = json!(api_version);
    apply(client, comp).await;
    apply(client, xrd).await;
    tessera_tests::wait_crd_established(client, &format!("postgresdatabases.{group}"))
        .await
        .expect("the private XRD offers its claim");
    (xrd_name, api_version)
}

fn claim(ns: &str, name: &str) -> serde_json::Value {
    claim_of(CLAIM_API, ns, name)
}

fn claim_of(api_version: &str, ns: &str, name: &str) -> serde_json::Value {
    let mut c = yaml_docs("compositions/postgres/example-claim.yaml").remove(0);
    c["apiVersion"] = json!(api_version);
    c["metadata"]["namespace"] = json!(ns);
    c["metadata"]["name"] = json!(name);
    c["spec"]["writeConnectionSecretToRef"]["name"] = json!(format!("{name}-conn"));
    c
}

async fn wait_claim_ready(client: &kube::Client, api_version: &str, ns: &str, name: &str) {
    wait_object_in(
        client,
        api_version,
        "PostgresDatabase",
        ns,
        name,
        "Ready",
        |o| {
            condition(o, "Ready").is_some_and(|c| c.is_true())
                && condition(o, "Synced").is_some_and(|c| c.is_true())
        },
    )
    .await;
}

#[tokio::test]
async fn a_panicking_reconcile_fails_only_its_own_claim_which_says_so_and_recovers() {
    let (_env, client) = platform().await;
    let ns = namespace(&client, &unique("panics")).await;
    let broken = unique("broken-db");
    testing::panic_when_reconciling(&broken);
    apply(&client, claim(&ns, &broken)).await;
    apply(&client, claim(&ns, "orders-db")).await;

    // The other claim of the same controller is served.
    wait_claim_ready(&client, CLAIM_API, &ns, "orders-db").await;

    // The panicking one says what happened, without anything of the panic but its literal.
    let failed = wait_object_in(
        &client,
        CLAIM_API,
        "PostgresDatabase",
        &ns,
        &broken,
        "Synced=False/ReconcilePanicked",
        |o| condition(o, "Synced").is_some_and(|c| !c.is_true() && c.reason == "ReconcilePanicked"),
    )
    .await;
    let synced = condition(&failed, "Synced").expect("Synced");
    assert!(
        synced
            .message
            .starts_with("The controller panicked while reconciling this object")
            && synced.message.contains(testing::INJECTED_PANIC),
        "{}",
        synced.message
    );
    wait_for(Duration::from_secs(30), || async {
        events_about(&client, &ns, &broken)
            .await
            .iter()
            .any(|(type_, reason, _)| type_ == "Warning" && reason == "ReconcilePanicked")
            .then_some(())
    })
    .await
    .expect("a Warning event ReconcilePanicked on the claim");

    // Once the fault is gone the claim becomes Ready: at its next retry, or at once when
    // it changes (here an annotation, so the test need not wait out a grown backoff).
    testing::stop_panicking_when_reconciling(&broken);
    let mut touched = claim(&ns, &broken);
    touched["metadata"]["annotations"] = json!({ "example.org/touched": "yes" });
    apply(&client, touched).await;
    wait_claim_ready(&client, CLAIM_API, &ns, &broken).await;
    // Nothing of the panic stays behind: not its message on Synced, not the fields the
    // report wrote (which would make every later poll write the status again).
    let recovered = wait_object_in(
        &client,
        CLAIM_API,
        "PostgresDatabase",
        &ns,
        &broken,
        "no fields of the panic report left",
        |o| {
            o.metadata
                .managed_fields
                .iter()
                .flatten()
                .all(|m| m.manager.as_deref() != Some("tessera-panic-guard"))
        },
    )
    .await;
    let synced = condition(&recovered, "Synced").expect("Synced");
    assert!(
        synced.is_true() && !synced.message.contains("panicked"),
        "{synced:?}"
    );
}

#[tokio::test]
async fn a_dead_composite_controller_is_restarted_and_reported_on_its_xrd() {
    let (_env, client) = platform().await;
    let (xrd_name, api_version) = private_platform(&client).await;
    let ns = namespace(&client, &unique("restarted")).await;
    apply(&client, claim_of(&api_version, &ns, "before-db")).await;
    wait_claim_ready(&client, &api_version, &ns, "before-db").await;
    testing::kill_controller_once(&xrd_name, "composite");

    // The XRD says so: a Warning event, and ControllersRunning shows the restart once the
    // controller runs again.
    wait_for(Duration::from_secs(60), || async {
        events_about(&client, "default", &xrd_name)
            .await
            .iter()
            .any(|(type_, reason, note)| {
                type_ == "Warning"
                    && reason == "ControllerRestarted"
                    && note.contains("composite controller")
                    && note.contains("panicked")
            })
            .then_some(())
    })
    .await
    .expect("a Warning event ControllerRestarted on the XRD");
    let xrd = wait_object(
        &client,
        "apiextensions.tessera.dev/v1",
        "CompositeResourceDefinition",
        &xrd_name,
        Duration::from_secs(60),
        "ControllersRunning=True after a restart",
        |o| {
            condition(o, "ControllersRunning").is_some_and(|c| {
                c.is_true()
                    && c.reason == "ControllerRestarted"
                    && c.message.contains("the composite controller")
            })
        },
    )
    .await;
    assert!(
        condition(&xrd, "Ready").is_some_and(|c| c.is_true()),
        "the XRD itself stays Ready"
    );

    // A new claim is served by the restarted controller, without touching the XRD.
    apply(&client, claim_of(&api_version, &ns, "after-restart-db")).await;
    wait_claim_ready(&client, &api_version, &ns, "after-restart-db").await;
}
