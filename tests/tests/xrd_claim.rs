//! The XRD controller, with the composite and claim controllers it starts, against the
//! real kube-apiserver of testenv (`claim_status.rs` tests the claim controller alone).
//!
//! Each test defines kinds of its own (a unique group), so tests run in parallel and never
//! see each other's objects.

use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tessera_engine::naming::claim_composite_name;
use tessera_tests::{
    TestEnv, TestKinds, XRD_API_VERSION, apply, condition, delete, delete_in, events_about, get,
    get_in, install_crds, kubectl, namespace, start_composition_controllers_in_process, unique,
    wait_for, wait_gone, wait_gone_in, wait_object, wait_object_in, wait_reconciled,
};

const XRD_API: &str = XRD_API_VERSION;

fn is_true(o: &DynamicObject, type_: &str) -> bool {
    condition(o, type_).is_some_and(|c| c.is_true())
}

/// Managers that own any field under `spec` (status writes are a subresource of their own).
fn spec_managers(o: &DynamicObject) -> Vec<String> {
    o.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.subresource.as_deref() != Some("status"))
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.get("f:spec").is_some())
        })
        .map(|m| m.manager.clone().unwrap_or_default())
        .collect()
}

async fn apply_xrd_and_wait_offered(client: &Client, kinds: &TestKinds) -> DynamicObject {
    apply(client, kinds.xrd()).await;
    wait_object(
        client,
        XRD_API,
        "CompositeResourceDefinition",
        &kinds.xrd_name(),
        Duration::from_secs(60),
        "Established, Offered and Ready",
        |o| is_true(o, "Established") && is_true(o, "Offered") && is_true(o, "Ready"),
    )
    .await
}

#[tokio::test]
async fn applied_xrd_offers_established_composite_and_claim_crds_that_kubectl_explains() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    start_composition_controllers_in_process(&env);
    let kinds = TestKinds::new();

    let xrd = apply_xrd_and_wait_offered(&client, &kinds).await;
    assert_eq!(
        xrd.data["status"]["controllers"]["compositeResourceClaimType"],
        json!({ "apiVersion": kinds.api_version, "kind": kinds.claim_kind })
    );
    assert!(
        xrd.finalizers()
            .iter()
            .any(|f| f == tessera_engine::composition_controllers::FINALIZER),
        "the XRD carries the finalizer"
    );

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let composite = crds
        .get(&format!("{}.{}", kinds.xr_plural, kinds.group))
        .await
        .expect("composite CRD");
    let claim = crds
        .get(&format!("{}.{}", kinds.claim_plural, kinds.group))
        .await
        .expect("claim CRD");
    assert_eq!(composite.spec.scope, "Cluster");
    assert_eq!(claim.spec.scope, "Namespaced");
    assert_eq!(
        composite.spec.names.categories,
        Some(vec!["composite".to_string()])
    );
    assert_eq!(claim.spec.names.categories, Some(vec!["claim".to_string()]));
    for crd in [&composite, &claim] {
        let established = crd
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
        assert!(established, "{} is Established", crd.name_any());
    }

    // Steady state: neither the CRDs nor the XRD are written again (re-applying unchanged
    // CRDs is a no-op, and a CRD write would re-queue the XRD). An annotation on the claim
    // CRD (a change the XRD controller watches) makes it reconcile the XRD once more. The
    // first such reconcile settles whatever the start of the XRD's controllers still had
    // to record (e.g. ControllersRunning, written by their supervisor, later on a loaded
    // machine); a later one must write nothing. A reconcile that wrote the XRD every time
    // never gets there.
    let (mut composite, mut claim, mut xrd) = (composite, claim, xrd);
    let mut writes = Vec::new();
    let mut quiet = false;
    for round in 0..4 {
        let mark = Instant::now();
        claim = crds
            .patch(
                &claim.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "annotations": {
                "tests.tessera.dev/touched": unique("t") } } })),
            )
            .await
            .expect("annotate the claim CRD");
        wait_reconciled(
            "CompositeResourceDefinition",
            None,
            &kinds.xrd_name(),
            mark,
            Duration::from_secs(30),
        )
        .await;
        for crd in [&composite, &claim] {
            let now = crds.get(&crd.name_any()).await.expect("CRD");
            assert_eq!(
                now.resource_version(),
                crd.resource_version(),
                "{} not rewritten",
                crd.name_any()
            );
        }
        let xrd_now = get(
            &client,
            XRD_API,
            "CompositeResourceDefinition",
            &kinds.xrd_name(),
        )
        .await
        .expect("XRD");
        if round > 0 && xrd_now.resource_version() == xrd.resource_version() {
            quiet = true;
            break;
        }
        if round > 0 {
            writes.push(format!(
                "round {round}: status {} -> {}",
                xrd.data["status"], xrd_now.data["status"]
            ));
        }
        // The baseline for the next round.
        composite = crds.get(&composite.name_any()).await.expect("CRD");
        claim = crds.get(&claim.name_any()).await.expect("CRD");
        xrd = xrd_now;
    }
    assert!(
        quiet,
        "the XRD is rewritten by every reconcile with nothing changed: {writes:#?}"
    );

    // The API server publishes the new kinds' OpenAPI shortly after they are Established.
    let field = format!("{}.spec.writeConnectionSecretToRef", kinds.claim_plural);
    let api_version = format!("--api-version={}", kinds.api_version);
    let explained = wait_for(Duration::from_secs(30), || {
        let out = std::process::Command::new(env.get("KUBECTL"))
            .args([
                "--kubeconfig",
                env.get("KUBECONFIG"),
                "--cache-dir",
                env.get("KUBECACHEDIR"),
                "explain",
                &field,
                &api_version,
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        async move { out }
    })
    .await
    .expect("kubectl explain the claim's secret reference");
    assert!(explained.contains("claim's namespace"), "{explained}");
    assert!(explained.contains("name"), "{explained}");
    assert!(
        !explained.contains("namespace\t"),
        "no namespace field: {explained}"
    );
    let xr_field = format!("{}.spec.claimRef", kinds.xr_plural);
    let xr_explained = kubectl(&env, &["explain", &xr_field, &api_version]);
    assert!(xr_explained.contains("namespace"), "{xr_explained}");

    delete(
        &client,
        XRD_API,
        "CompositeResourceDefinition",
        &kinds.xrd_name(),
    )
    .await;
    wait_gone(
        &client,
        XRD_API,
        "CompositeResourceDefinition",
        &kinds.xrd_name(),
    )
    .await;
    assert!(
        crds.get_opt(&composite.name_any())
            .await
            .expect("read CRD")
            .is_none_or(|c| c.metadata.deletion_timestamp.is_some()),
        "the composite CRD goes with its unused XRD"
    );
}

#[tokio::test]
async fn claim_creates_its_composite_binds_in_status_and_never_writes_its_spec() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    start_composition_controllers_in_process(&env);
    let kinds = TestKinds::new();
    apply_xrd_and_wait_offered(&client, &kinds).await;
    let ns = namespace(&client, &unique("claims")).await;

    let applied = apply(&client, kinds.claim(&ns, "orders-db", "small")).await;
    let xr_name = claim_composite_name(&ns, "orders-db");
    let xr = wait_object(
        &client,
        &kinds.api_version,
        &kinds.xr_kind,
        &xr_name,
        Duration::from_secs(30),
        "composite of the claim",
        |_| true,
    )
    .await;
    assert_eq!(
        xr.data["spec"]["claimRef"],
        json!({ "apiVersion": kinds.api_version, "kind": kinds.claim_kind,
                "name": "orders-db", "namespace": ns })
    );
    assert_eq!(
        xr.data["spec"]["writeConnectionSecretToRef"],
        json!({ "name": "orders-db-conn", "namespace": ns }),
        "the composite writes the Secret straight into the claim's namespace"
    );
    assert_eq!(xr.data["spec"]["parameters"], json!({ "size": "small" }));
    assert_eq!(
        xr.labels()
            .get("tessera.dev/claim-name")
            .map(String::as_str),
        Some("orders-db")
    );
    assert_eq!(xr.labels().get("tessera.dev/claim-namespace"), Some(&ns));

    let bound = wait_object_in(
        &client,
        &kinds.api_version,
        &kinds.claim_kind,
        &ns,
        "orders-db",
        "status.resourceRef and conditions",
        |o| {
            o.data["status"]["resourceRef"]["name"] == xr_name
                && condition(o, "Ready").is_some()
                && condition(o, "Synced").is_some()
        },
    )
    .await;
    assert_eq!(
        bound.data["status"]["resourceRef"],
        json!({ "apiVersion": kinds.api_version, "kind": kinds.xr_kind, "name": xr_name })
    );
    let ready = condition(&bound, "Ready").expect("Ready");
    assert_eq!(ready.observed_generation, bound.metadata.generation);
    // No Composition exists for these kinds: the composite reconciler's failure reaches
    // the claim, prefixed with the composite's name.
    let prefix = format!("Composite {xr_name}: ");
    let explained = wait_object_in(
        &client,
        &kinds.api_version,
        &kinds.claim_kind,
        &ns,
        "orders-db",
        "the composite's failure on the claim",
        |o| condition(o, "Synced").is_some_and(|c| !c.is_true() && c.message.starts_with(&prefix)),
    )
    .await;
    let synced = condition(&explained, "Synced").expect("Synced");
    assert!(
        synced.message.to_lowercase().contains("composition"),
        "{}",
        synced.message
    );
    assert!(
        bound
            .finalizers()
            .iter()
            .any(|f| f == tessera_engine::composition_controllers::FINALIZER)
    );
    assert!(
        events_about(&client, &ns, "orders-db")
            .await
            .iter()
            .any(|(_, reason, note)| reason == "Bound" && note.contains(&xr_name)),
        "a Bound event"
    );

    // A spec change flows to the composite; the claim's spec stays Git's.
    apply(&client, kinds.claim(&ns, "orders-db", "large")).await;
    wait_object(
        &client,
        &kinds.api_version,
        &kinds.xr_kind,
        &xr_name,
        Duration::from_secs(30),
        "the claim's new size",
        |o| o.data["spec"]["parameters"]["size"] == "large",
    )
    .await;
    // A reconcile of the claim after its composite took the change.
    wait_reconciled(
        &kinds.claim_kind,
        Some(&ns),
        "orders-db",
        Instant::now(),
        Duration::from_secs(30),
    )
    .await;
    let after = get_in(
        &client,
        &kinds.api_version,
        &kinds.claim_kind,
        &ns,
        "orders-db",
    )
    .await
    .expect("claim");
    assert_eq!(after.data["spec"]["parameters"], json!({ "size": "large" }));
    assert_eq!(
        after.data["spec"]["writeConnectionSecretToRef"],
        applied.data["spec"]["writeConnectionSecretToRef"]
    );
    assert_eq!(spec_managers(&applied), ["tessera-tests"]);
    assert_eq!(
        spec_managers(&after),
        ["tessera-tests"],
        "only the test (Git) ever wrote the claim's spec"
    );

    delete_in(
        &client,
        &kinds.api_version,
        &kinds.claim_kind,
        &ns,
        "orders-db",
    )
    .await;
    wait_gone_in(
        &client,
        &kinds.api_version,
        &kinds.claim_kind,
        &ns,
        "orders-db",
    )
    .await;
    assert!(
        get(&client, &kinds.api_version, &kinds.xr_kind, &xr_name)
            .await
            .is_none(),
        "the composite goes before the claim"
    );
    delete(
        &client,
        XRD_API,
        "CompositeResourceDefinition",
        &kinds.xrd_name(),
    )
    .await;
    wait_gone(
        &client,
        XRD_API,
        "CompositeResourceDefinition",
        &kinds.xrd_name(),
    )
    .await;
}

#[tokio::test]
async fn deleting_an_xrd_with_a_live_composite_is_refused_until_its_claim_is_gone() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    start_composition_controllers_in_process(&env);
    let kinds = TestKinds::new();
    apply_xrd_and_wait_offered(&client, &kinds).await;
    let ns = namespace(&client, &unique("claims")).await;
    apply(&client, kinds.claim(&ns, "cache", "small")).await;
    let xr_name = claim_composite_name(&ns, "cache");
    wait_object(
        &client,
        &kinds.api_version,
        &kinds.xr_kind,
        &xr_name,
        Duration::from_secs(30),
        "composite",
        |_| true,
    )
    .await;

    delete(
        &client,
        XRD_API,
        "CompositeResourceDefinition",
        &kinds.xrd_name(),
    )
    .await;
    let want = format!(
        "Cannot delete: 1 composite of {} still exists; delete it (or its claim) first",
        kinds.xr_kind
    );
    let refused = wait_object(
        &client,
        XRD_API,
        "CompositeResourceDefinition",
        &kinds.xrd_name(),
        Duration::from_secs(30),
        "deletion refused",
        |o| condition(o, "Synced").is_some_and(|c| c.message == want),
    )
    .await;
    assert_eq!(
        condition(&refused, "Synced").map(|c| c.reason),
        Some("DeletionBlocked".into())
    );
    assert_eq!(
        condition(&refused, "Ready").map(|c| c.reason),
        Some("Deleting".into())
    );
    // The event is published next to the status write, not before it: wait for it too.
    wait_for(Duration::from_secs(30), || async {
        events_about(&client, "default", &kinds.xrd_name())
            .await
            .iter()
            .any(|(t, reason, note)| t == "Warning" && reason == "DeletionBlocked" && *note == want)
            .then_some(())
    })
    .await
    .expect("a DeletionBlocked warning");
    // The XRD controller looked again (it retries a blocked deletion), and still no cascade.
    wait_reconciled(
        "CompositeResourceDefinition",
        None,
        &kinds.xrd_name(),
        Instant::now(),
        Duration::from_secs(30),
    )
    .await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [&kinds.xr_plural, &kinds.claim_plural] {
        let crd = crds
            .get(&format!("{crd}.{}", kinds.group))
            .await
            .expect("CRD kept");
        assert!(
            crd.metadata.deletion_timestamp.is_none(),
            "no cascade to {}",
            crd.name_any()
        );
    }
    assert!(
        get(&client, &kinds.api_version, &kinds.xr_kind, &xr_name)
            .await
            .is_some()
    );
    assert!(
        get_in(&client, &kinds.api_version, &kinds.claim_kind, &ns, "cache")
            .await
            .is_some()
    );

    delete_in(&client, &kinds.api_version, &kinds.claim_kind, &ns, "cache").await;
    wait_gone_in(&client, &kinds.api_version, &kinds.claim_kind, &ns, "cache").await;
    wait_gone(
        &client,
        XRD_API,
        "CompositeResourceDefinition",
        &kinds.xrd_name(),
    )
    .await;
    for crd in [&kinds.xr_plural, &kinds.claim_plural] {
        let name = format!("{crd}.{}", kinds.group);
        wait_for(Duration::from_secs(30), || async {
            crds.get_opt(&name).await.ok()?.is_none().then_some(())
        })
        .await
        .unwrap_or_else(|_| panic!("CRD {name} removed with its XRD"));
    }
}

/// A Composition of `kinds` named `name` that composes a ConfigMap in `ns` recording the
/// Composition's name, so a test can see which Composition a composite uses.
fn config_map_composition(kinds: &TestKinds, name: &str, ns: &str) -> serde_json::Value {
    json!({
        "apiVersion": XRD_API,
        "kind": "Composition",
        "metadata": { "name": name },
        "spec": {
            "compositeTypeRef": { "apiVersion": kinds.api_version, "kind": kinds.xr_kind },
            "resources": [{
                "name": "settings",
                "base": { "apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": { "namespace": ns },
                          "data": { "composition": name } },
                "readinessChecks": [{ "type": "None" }],
            }],
        },
    })
}

#[tokio::test]
async fn a_claim_chooses_its_composition_only_while_its_xrd_allows_it() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    start_composition_controllers_in_process(&env);
    let kinds = TestKinds::new();
    let ns = namespace(&client, &unique("claims")).await;
    let (default, chosen) = (unique("default"), unique("chosen"));
    for name in [&default, &chosen] {
        apply(&client, config_map_composition(&kinds, name, &ns)).await;
    }
    let mut xrd = kinds.xrd();
    xrd["spec"]["defaultCompositionRef"] = json!({ "name": default });
    apply(&client, xrd.clone()).await;
    wait_object(
        &client,
        XRD_API,
        "CompositeResourceDefinition",
        &kinds.xrd_name(),
        Duration::from_secs(60),
        "Established and Offered",
        |o| is_true(o, "Established") && is_true(o, "Offered"),
    )
    .await;
    let composed_by = |claim: &'static str, composition: String| {
        let (client, ns) = (client.clone(), ns.clone());
        async move {
            let name = format!("{}-settings", claim_composite_name(&ns, claim));
            wait_object_in(&client, "v1", "ConfigMap", &ns, &name, "composed", |o| {
                o.data["data"]["composition"] == composition.as_str()
            })
            .await
        }
    };
    let choosing = |name: &str| {
        let mut claim = kinds.claim(&ns, name, "small");
        claim["spec"]["compositionRef"] = json!({ "name": chosen });
        claim
    };

    // Allowed (the default): a claim may pick any Composition of its kind.
    apply(&client, choosing("free")).await;
    composed_by("free", chosen.clone()).await;

    // Forbidden: a claim that picks one is refused, with what to change.
    xrd["spec"]["claimCompositionSelection"] = json!("Forbidden");
    apply(&client, xrd).await;
    let want = format!(
        "Claims of kind {} may not choose their Composition (their XRD sets \
         claimCompositionSelection: Forbidden): remove spec.compositionRef from the claim; the \
         platform team's default Composition is used",
        kinds.claim_kind
    );
    let refused = |o: &DynamicObject| {
        condition(o, "Synced").is_some_and(|c| !c.is_true() && c.message == want)
    };
    // The claim that chose earlier is refused too; its composite is left as it is.
    let free = wait_object_in(
        &client,
        &kinds.api_version,
        &kinds.claim_kind,
        &ns,
        "free",
        "refused once the XRD forbids choosing",
        refused,
    )
    .await;
    assert_eq!(
        condition(&free, "Synced").map(|c| c.reason).as_deref(),
        Some("CompositionChoiceForbidden")
    );
    let kept = get(
        &client,
        &kinds.api_version,
        &kinds.xr_kind,
        &claim_composite_name(&ns, "free"),
    )
    .await
    .expect("the earlier composite is kept");
    assert_eq!(kept.data["spec"]["compositionRef"]["name"], chosen.as_str());
    // A new claim that chooses gets no composite at all: the refusal is written by the
    // reconcile that would have applied it.
    apply(&client, choosing("pinned")).await;
    wait_object_in(
        &client,
        &kinds.api_version,
        &kinds.claim_kind,
        &ns,
        "pinned",
        "refused",
        refused,
    )
    .await;
    assert!(
        get(
            &client,
            &kinds.api_version,
            &kinds.xr_kind,
            &claim_composite_name(&ns, "pinned"),
        )
        .await
        .is_none(),
        "no composite for a refused claim"
    );
    // A claim that leaves the choice to the platform gets the XRD's default.
    apply(&client, kinds.claim(&ns, "plain", "small")).await;
    composed_by("plain", default.clone()).await;

    for claim in ["free", "pinned", "plain"] {
        delete_in(&client, &kinds.api_version, &kinds.claim_kind, &ns, claim).await;
    }
    for claim in ["free", "pinned", "plain"] {
        wait_gone_in(&client, &kinds.api_version, &kinds.claim_kind, &ns, claim).await;
    }
    delete(
        &client,
        XRD_API,
        "CompositeResourceDefinition",
        &kinds.xrd_name(),
    )
    .await;
    for name in [&default, &chosen] {
        delete(&client, XRD_API, "Composition", name).await;
    }
}
