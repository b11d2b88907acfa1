//! The claim controller alone against the real kube-apiserver of testenv, on CRDs
//! generated from an XRD that is never applied: no composite controller runs, so the tests
//! set a composite's status as the composite reconciler would and watch the claim follow.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tessera_engine::api::xrd::CompositeResourceDefinition;
use tessera_engine::composition_controllers::FINALIZER;
use tessera_engine::naming::{claim_composite_name, legacy_claim_composite_name};
use tessera_engine::xrd::{claim_crd, composite_crd};
use tessera_engine::xrd::{claim_resource, composite_resource};
use tessera_tests::{
    TestEnv, TestKinds, apply, composition_test_options, condition, delete, delete_in,
    events_about, get, get_in, kubectl, namespace, record_reconciles, unique, wait_crd_established,
    wait_for, wait_gone, wait_gone_in, wait_object_in, wait_reconciled,
};

fn is_true(o: &DynamicObject, type_: &str) -> bool {
    condition(o, type_).is_some_and(|c| c.is_true())
}

/// The claim controller alone, on CRDs generated from an XRD that is never applied: the
/// test sets the composite's status as the composite reconciler would.
struct Isolated {
    client: Client,
    kinds: TestKinds,
    xr: ApiResource,
    claim: ApiResource,
}

/// Stands in for the composite controller's finalizer: the claim controller creates its
/// composite with that finalizer, and with no composite controller running, a deleted
/// composite would keep it forever. Removes it from composites of kind `xr` being deleted.
async fn release_deleted_composites(client: Client, xr: ApiResource) {
    let api: Api<DynamicObject> = Api::all_with(client, &xr);
    loop {
        if let Ok(list) = api.list(&Default::default()).await {
            for o in list.items {
                let finalizers = o.finalizers();
                if o.metadata.deletion_timestamp.is_none()
                    || !finalizers.iter().any(|f| f == FINALIZER)
                {
                    continue;
                }
                let rest: Vec<&String> = finalizers.iter().filter(|f| *f != FINALIZER).collect();
                let _ = api
                    .patch(
                        &o.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(json!({ "metadata": { "finalizers": rest } })),
                    )
                    .await;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Isolated {
    async fn start(env: &TestEnv) -> Isolated {
        let client = env.kube().await;
        let kinds = TestKinds::new();
        let xrd: CompositeResourceDefinition =
            serde_json::from_value(kinds.xrd()).expect("test XRD");
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let generated = [
            composite_crd(&xrd).expect("composite CRD"),
            claim_crd(&xrd).expect("claim CRD").expect("offers a claim"),
        ];
        for crd in &generated {
            crds.patch(
                &crd.name_any(),
                &PatchParams::apply("tessera-tests").force(),
                &Patch::Apply(crd),
            )
            .await
            .expect("apply generated CRD");
            wait_crd_established(&client, &crd.name_any())
                .await
                .expect("established");
        }
        let xr = composite_resource(&xrd).expect("composite kind");
        let claim = claim_resource(&xrd).expect("claim kind");
        record_reconciles();
        let opts = tessera_engine::composition_controllers::CompositionOptions {
            // Long: the claim must follow its composite through the watch, not a poll.
            poll_interval: Duration::from_secs(300),
            ..composition_test_options()
        };
        let composites = tessera_engine::composite::watch(client.clone(), xr.clone(), &opts);
        tokio::spawn(tessera_engine::claim::run(
            client.clone(),
            Arc::new(xrd),
            claim.clone(),
            xr.clone(),
            opts,
            composites,
        ));
        tokio::spawn(release_deleted_composites(client.clone(), xr.clone()));
        Isolated {
            client,
            kinds,
            xr,
            claim,
        }
    }

    /// Adds an annotation to the composite (a change the claim controller watches, that
    /// needs no write from it); returns the composite as written.
    async fn touch_composite(&self, name: &str) -> DynamicObject {
        Api::<DynamicObject>::all_with(self.client.clone(), &self.xr)
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "annotations": {
                    "tests.tessera.dev/touched": unique("t") } } })),
            )
            .await
            .expect("annotate the composite")
    }

    /// Sets the composite's conditions through its status subresource.
    async fn set_composite_status(&self, name: &str, conditions: Value) {
        self.apply_composite_status(name, json!({ "conditions": conditions }))
            .await;
    }

    /// Server-side applies the composite's whole status, as the composite reconciler does
    /// (one field manager, so a field left out is removed).
    async fn apply_composite_status(&self, name: &str, status: Value) {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &self.xr);
        let patch = json!({
            "apiVersion": self.xr.api_version, "kind": self.xr.kind,
            "status": status,
        });
        api.patch_status(
            name,
            &PatchParams::apply("test-composite").force(),
            &Patch::Apply(&patch),
        )
        .await
        .expect("set composite status");
    }

    async fn wait_claim(
        &self,
        ns: &str,
        name: &str,
        what: &str,
        check: impl Fn(&DynamicObject) -> bool,
    ) -> DynamicObject {
        wait_object_in(
            &self.client,
            &self.claim.api_version,
            &self.claim.kind,
            ns,
            name,
            what,
            check,
        )
        .await
    }

    async fn cleanup(self) {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for plural in [&self.kinds.xr_plural, &self.kinds.claim_plural] {
            let _ = crds
                .delete(
                    &format!("{plural}.{}", self.kinds.group),
                    &Default::default(),
                )
                .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_follows_its_composite_status_at_once_and_explains_failures() {
    let env = TestEnv::load();
    let t = Isolated::start(&env).await;
    let client = t.client.clone();
    let ns = namespace(&client, &unique("claims")).await;
    apply(&client, t.kinds.claim(&ns, "orders-db", "small")).await;
    let xr_name = claim_composite_name(&ns, "orders-db");

    let first = t
        .wait_claim(
            &ns,
            "orders-db",
            "Ready=False while the composite is new",
            |o| condition(o, "Ready").is_some_and(|c| !c.is_true()),
        )
        .await;
    let ready = condition(&first, "Ready").expect("Ready");
    assert_eq!(ready.reason, "Creating");
    assert_eq!(
        ready.message,
        format!("Waiting for composite {xr_name} to become ready")
    );

    t.set_composite_status(
        &xr_name,
        json!([
            { "type": "Ready", "status": "False", "reason": "Creating" },
            { "type": "Synced", "status": "False", "reason": "ReconcileError",
              "message": "No composition matches selector {env: prod}" },
        ]),
    )
    .await;
    let want = format!("Composite {xr_name}: no composition matches selector {{env: prod}}");
    let failing = t
        .wait_claim(&ns, "orders-db", "the composite's failure", |o| {
            condition(o, "Synced").is_some_and(|c| c.message == want)
        })
        .await;
    assert_eq!(
        condition(&failing, "Synced").map(|c| c.status),
        Some("False".into())
    );
    // The event is published after the status write the wait above saw.
    wait_for(Duration::from_secs(10), || async {
        events_about(&client, &ns, "orders-db")
            .await
            .iter()
            .any(|(t, _, note)| t == "Warning" && *note == want)
            .then_some(())
    })
    .await
    .expect("a warning with the cause");
    let describe = kubectl(
        &env,
        &["describe", &t.kinds.claim_plural, "orders-db", "-n", &ns],
    );
    assert!(
        describe.contains("no composition matches selector"),
        "{describe}"
    );

    let xr = get(&client, &t.xr.api_version, &t.xr.kind, &xr_name)
        .await
        .expect("composite");
    let generation = xr.metadata.generation.expect("generation");
    t.set_composite_status(&xr_name, json!([
        { "type": "Ready", "status": "True", "reason": "Available", "observedGeneration": generation },
        { "type": "Synced", "status": "True", "reason": "ReconcileSuccess", "observedGeneration": generation },
    ]))
    .await;
    let ready = t
        .wait_claim(&ns, "orders-db", "Ready and Synced", |o| {
            is_true(o, "Ready") && is_true(o, "Synced")
        })
        .await;

    // Steady state: neither the claim nor its composite is written again, by a reconcile
    // that started after the claim was Ready (the composite's annotation wakes it: the
    // claim's own poll is 300 s here).
    let mark = Instant::now();
    let touched = t.touch_composite(&xr_name).await;
    wait_reconciled(
        &t.claim.kind,
        Some(&ns),
        "orders-db",
        mark,
        Duration::from_secs(30),
    )
    .await;
    let claim_now = get_in(
        &client,
        &t.claim.api_version,
        &t.claim.kind,
        &ns,
        "orders-db",
    )
    .await
    .expect("claim");
    let xr_now = get(&client, &t.xr.api_version, &t.xr.kind, &xr_name)
        .await
        .expect("composite");
    assert_eq!(
        claim_now.resource_version(),
        ready.resource_version(),
        "claim not rewritten"
    );
    assert_eq!(
        xr_now.resource_version(),
        touched.resource_version(),
        "composite not rewritten"
    );

    // A spec change: the claim waits until the composite has seen it.
    apply(&client, t.kinds.claim(&ns, "orders-db", "large")).await;
    let waiting = t
        .wait_claim(
            &ns,
            "orders-db",
            "waiting for the composite to catch up",
            |o| condition(o, "Ready").is_some_and(|c| c.message.contains("latest spec")),
        )
        .await;
    assert_eq!(
        condition(&waiting, "Ready").and_then(|c| c.observed_generation),
        waiting.metadata.generation
    );
    let xr = get(&client, &t.xr.api_version, &t.xr.kind, &xr_name)
        .await
        .expect("composite");
    assert_eq!(xr.data["spec"]["parameters"]["size"], "large");
    let generation = xr.metadata.generation.expect("generation");
    t.set_composite_status(&xr_name, json!([
        { "type": "Ready", "status": "True", "reason": "Available", "observedGeneration": generation },
        { "type": "Synced", "status": "True", "reason": "ReconcileSuccess", "observedGeneration": generation },
    ]))
    .await;
    t.wait_claim(&ns, "orders-db", "Ready again", |o| is_true(o, "Ready"))
        .await;

    delete_in(
        &client,
        &t.claim.api_version,
        &t.claim.kind,
        &ns,
        "orders-db",
    )
    .await;
    wait_gone_in(
        &client,
        &t.claim.api_version,
        &t.claim.kind,
        &ns,
        "orders-db",
    )
    .await;
    wait_gone(&client, &t.xr.api_version, &t.xr.kind, &xr_name).await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_refuses_a_composite_that_belongs_to_someone_else_and_leaves_it_alone() {
    let env = TestEnv::load();
    let t = Isolated::start(&env).await;
    let client = t.client.clone();
    let ns = namespace(&client, &unique("claims")).await;
    let xr_name = claim_composite_name(&ns, "taken");
    apply(
        &client,
        json!({
            "apiVersion": t.xr.api_version, "kind": t.xr.kind,
            "metadata": { "name": xr_name },
            "spec": {
                "parameters": { "size": "small" },
                "claimRef": { "apiVersion": t.claim.api_version, "kind": t.claim.kind,
                              "name": "other", "namespace": "elsewhere" },
            },
        }),
    )
    .await;
    apply(&client, t.kinds.claim(&ns, "taken", "large")).await;
    let want = format!(
        "Composite {xr_name} already exists and belongs to claim elsewhere/other; rename this claim"
    );
    let refused = t
        .wait_claim(&ns, "taken", "the conflict", |o| {
            condition(o, "Synced").is_some_and(|c| c.message == want)
        })
        .await;
    assert!(
        refused.data["status"].get("resourceRef").is_none(),
        "not bound"
    );
    let xr = get(&client, &t.xr.api_version, &t.xr.kind, &xr_name)
        .await
        .expect("composite");
    assert_eq!(
        xr.data["spec"]["parameters"]["size"], "small",
        "the other claim's composite is untouched"
    );

    delete_in(&client, &t.claim.api_version, &t.claim.kind, &ns, "taken").await;
    wait_gone_in(&client, &t.claim.api_version, &t.claim.kind, &ns, "taken").await;
    assert!(
        get(&client, &t.xr.api_version, &t.xr.kind, &xr_name)
            .await
            .is_some(),
        "deleting the claim never deletes a composite that is not its own"
    );
    delete(&client, &t.xr.api_version, &t.xr.kind, &xr_name).await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_composite_has_the_earlier_8_digit_name_keeps_it() {
    let env = TestEnv::load();
    let t = Isolated::start(&env).await;
    let client = t.client.clone();
    let ns = namespace(&client, &unique("claims")).await;
    // A composite as an earlier version created it, before the claim's status was written
    // (or after the status was lost, e.g. by a restore).
    let legacy = legacy_claim_composite_name(&ns, "kept");
    apply(
        &client,
        json!({
            "apiVersion": t.xr.api_version, "kind": t.xr.kind,
            "metadata": { "name": legacy },
            "spec": {
                "parameters": { "size": "small" },
                "claimRef": { "apiVersion": t.claim.api_version, "kind": t.claim.kind,
                              "name": "kept", "namespace": ns },
            },
        }),
    )
    .await;
    apply(&client, t.kinds.claim(&ns, "kept", "large")).await;
    t.wait_claim(&ns, "kept", "bound to the legacy composite", |o| {
        o.data["status"]["resourceRef"]["name"] == json!(legacy)
    })
    .await;
    let xr = get(&client, &t.xr.api_version, &t.xr.kind, &legacy)
        .await
        .expect("the legacy composite");
    assert_eq!(
        xr.data["spec"]["parameters"]["size"], "large",
        "the claim's spec reaches the composite it kept"
    );
    let new_name = claim_composite_name(&ns, "kept");
    assert_ne!(new_name, legacy);
    assert!(
        get(&client, &t.xr.api_version, &t.xr.kind, &new_name)
            .await
            .is_none(),
        "no second composite under the new name"
    );

    delete_in(&client, &t.claim.api_version, &t.claim.kind, &ns, "kept").await;
    wait_gone(&client, &t.xr.api_version, &t.xr.kind, &legacy).await;
    wait_gone_in(&client, &t.claim.api_version, &t.claim.kind, &ns, "kept").await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_shows_its_composites_status_fields_but_not_its_bookkeeping_and_drops_a_removed_one()
{
    let env = TestEnv::load();
    let t = Isolated::start(&env).await;
    let client = t.client.clone();
    let ns = namespace(&client, &unique("claims")).await;
    apply(&client, t.kinds.claim(&ns, "orders-db", "small")).await;
    let xr_name = claim_composite_name(&ns, "orders-db");
    t.wait_claim(&ns, "orders-db", "bound", |o| {
        o.data["status"]["resourceRef"]["name"] == json!(xr_name)
    })
    .await;

    let generation = get(&client, &t.xr.api_version, &t.xr.kind, &xr_name)
        .await
        .expect("composite")
        .metadata
        .generation
        .expect("generation");
    let ready = json!([
        { "type": "Ready", "status": "True", "reason": "Available", "observedGeneration": generation },
        { "type": "Synced", "status": "True", "reason": "ReconcileSuccess", "observedGeneration": generation },
    ]);
    t.apply_composite_status(
        &xr_name,
        json!({
            "conditions": ready,
            "observedGeneration": 41,
            "connectionDetails": { "lastPublishedTime": "2026-01-01T00:00:00Z" },
            "endpoint": "db.example.org:5432",
        }),
    )
    .await;
    let shown = t
        .wait_claim(&ns, "orders-db", "the composite's endpoint", |o| {
            o.data["status"]["endpoint"] == json!("db.example.org:5432") && is_true(o, "Ready")
        })
        .await;
    let status = &shown.data["status"];
    assert!(
        status.get("connectionDetails").is_none(),
        "the composite's Secret bookkeeping stays on the composite: {status}"
    );
    assert_eq!(
        status["observedGeneration"],
        json!(shown.metadata.generation.expect("generation")),
        "the claim's own generation, not the composite's"
    );
    assert_eq!(status["resourceRef"]["name"], json!(xr_name));

    // Steady state: a reconcile after the copy writes nothing.
    let mark = Instant::now();
    t.touch_composite(&xr_name).await;
    wait_reconciled(
        &t.claim.kind,
        Some(&ns),
        "orders-db",
        mark,
        Duration::from_secs(30),
    )
    .await;
    let again = get_in(
        &client,
        &t.claim.api_version,
        &t.claim.kind,
        &ns,
        "orders-db",
    )
    .await
    .expect("claim");
    assert_eq!(
        again.resource_version(),
        shown.resource_version(),
        "claim not rewritten"
    );

    // The composite loses the field: so does the claim (server-side apply removes a field
    // its manager stops sending).
    t.apply_composite_status(&xr_name, json!({ "conditions": ready }))
        .await;
    let dropped = t
        .wait_claim(&ns, "orders-db", "the endpoint removed", |o| {
            o.data["status"].get("endpoint").is_none()
        })
        .await;
    assert!(is_true(&dropped, "Ready"), "still ready");

    delete_in(
        &client,
        &t.claim.api_version,
        &t.claim.kind,
        &ns,
        "orders-db",
    )
    .await;
    wait_gone_in(
        &client,
        &t.claim.api_version,
        &t.claim.kind,
        &ns,
        "orders-db",
    )
    .await;
    wait_gone(&client, &t.xr.api_version, &t.xr.kind, &xr_name).await;
    t.cleanup().await;
}
