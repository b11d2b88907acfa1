//! What a Composition may compose (`tessera controller --composable-resources`), against
//! the real kube-apiserver of testenv: a Composition that composes a ClusterRoleBinding
//! gets nothing applied under the default list, and gets it made when the list allows it.
//!
//! Each test runs the composite and claim controllers of kinds of its own (generated from
//! an XRD that is never applied, with CRDs installed by the test), with the allow-list
//! under test: the XRD controller would start them with one list for the whole binary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tessera_engine::api::xrd::CompositeResourceDefinition;
use tessera_engine::composable::ComposableResources;
use tessera_engine::composition_controllers::CompositionOptions;
use tessera_engine::naming::claim_composite_name;
use tessera_engine::provider::Provider;
use tessera_engine::xrd::{claim_crd, claim_resource, composite_crd, composite_resource};
use tessera_tests::{
    TestEnv, TestKinds, XRD_API_VERSION, apply, composition_test_options, condition, delete,
    delete_in, events_about, install_crds, namespace, record_reconciles, unique,
    wait_crd_established, wait_for, wait_gone, wait_gone_in, wait_object, wait_object_in,
    wait_reconciled,
};

const RBAC_API: &str = "rbac.authorization.k8s.io/v1";

/// Kinds of one test, with the composite and claim controllers running on the test's
/// runtime with `opts`.
struct Isolated {
    client: Client,
    kinds: TestKinds,
    xr: ApiResource,
    claim: ApiResource,
}

impl Isolated {
    /// Installs the CRDs of new kinds whose XRD defaults to Composition `composition`, and
    /// starts their controllers with `opts`.
    async fn start(env: &TestEnv, composition: &str, opts: CompositionOptions) -> Isolated {
        let client = env.kube().await;
        install_crds(&client).await.expect("install CRDs");
        record_reconciles();
        let kinds = TestKinds::new();
        let mut xrd = kinds.xrd();
        xrd["spec"]["defaultCompositionRef"] = json!({ "name": composition });
        let xrd: CompositeResourceDefinition = serde_json::from_value(xrd).expect("test XRD");
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
        let xrd = Arc::new(xrd);
        let composites = tessera_engine::composite::watch(client.clone(), xr.clone(), &opts);
        tokio::spawn(tessera_engine::composite::run(
            client.clone(),
            xrd.clone(),
            xr.clone(),
            opts.clone(),
            composites.clone(),
        ));
        tokio::spawn(tessera_engine::claim::run(
            client.clone(),
            xrd,
            claim.clone(),
            xr.clone(),
            opts,
            composites,
        ));
        Isolated {
            client,
            kinds,
            xr,
            claim,
        }
    }

    /// A Composition of these kinds composing a ConfigMap in `ns` and a ClusterRoleBinding
    /// that grants the ClusterRole `view` to the user `user`.
    fn composition(&self, name: &str, ns: &str, user: &str) -> Value {
        json!({
            "apiVersion": XRD_API_VERSION,
            "kind": "Composition",
            "metadata": { "name": name },
            "spec": {
                "compositeTypeRef": { "apiVersion": self.kinds.api_version, "kind": self.kinds.xr_kind },
                "resources": [
                    {
                        "name": "settings",
                        "base": { "apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": { "namespace": ns },
                                  "data": { "size": "unset" } },
                        "patches": [{ "fromFieldPath": "spec.parameters.size", "toFieldPath": "data.size" }],
                        "readinessChecks": [{ "type": "None" }],
                    },
                    {
                        "name": "admin",
                        "base": {
                            "apiVersion": RBAC_API, "kind": "ClusterRoleBinding",
                            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view" },
                            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user }],
                        },
                        "readinessChecks": [{ "type": "None" }],
                    },
                ],
            },
        })
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

    /// Deletes the claim and waits until it, its composite and the composed resources are
    /// gone (the controllers run on the test's runtime, so they must finish before it ends);
    /// then removes the kinds and the Composition.
    async fn cleanup(self, ns: &str, claim: &str, composition: &str) {
        let xr_name = claim_composite_name(ns, claim);
        delete_in(
            &self.client,
            &self.claim.api_version,
            &self.claim.kind,
            ns,
            claim,
        )
        .await;
        wait_gone_in(
            &self.client,
            &self.claim.api_version,
            &self.claim.kind,
            ns,
            claim,
        )
        .await;
        wait_gone(&self.client, &self.xr.api_version, &self.xr.kind, &xr_name).await;
        delete(&self.client, XRD_API_VERSION, "Composition", composition).await;
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

/// The default list of `tessera controller` with the PostgreSQL and Vault providers, as
/// its message prints it.
const DEFAULT_LIST: &str = "postgresql.sql.tessera.dev, vault.tessera.dev, rds.aws.tessera.dev, harbor.tessera.dev, core/Secret, core/ConfigMap";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_composition_composing_a_cluster_role_binding_gets_nothing_applied_and_says_why() {
    let env = TestEnv::load();
    let comp = unique("grants-view");
    let t = Isolated::start(&env, &comp, composition_test_options()).await;
    let client = t.client.clone();
    let ns = namespace(&client, &unique("composable")).await;
    let user = unique("composed-user");
    apply(&client, t.composition(&comp, &ns, &user)).await;
    apply(&client, t.kinds.claim(&ns, "app", "small")).await;
    let xr_name = claim_composite_name(&ns, "app");

    let refusal = format!(
        "resource 'admin' (rbac.authorization.k8s.io/v1 ClusterRoleBinding) is not in the \
         controller's composable resources ({DEFAULT_LIST}); nothing of this composite is \
         applied until the Composition drops it or the platform team allows it (tessera \
         controller --composable-resources)"
    );
    // The composite's condition starts with a capital; the claim's quotes it after its name.
    let want = format!("R{}", &refusal[1..]);
    let on_claim = format!("Composite {xr_name}: {refusal}");
    let xr = wait_object(
        &client,
        &t.xr.api_version,
        &t.xr.kind,
        &xr_name,
        Duration::from_secs(60),
        "Synced=False naming the refused resource",
        |o| condition(o, "Synced").is_some_and(|c| !c.is_true() && c.message == want),
    )
    .await;
    assert_eq!(
        condition(&xr, "Synced").map(|c| c.reason).as_deref(),
        Some("CompositionNotAllowed")
    );
    assert!(
        xr.data["spec"]["resourceRefs"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "nothing was composed: {}",
        xr.data["spec"]
    );
    let claim = t
        .wait_claim(&ns, "app", "the composite's refusal", |o| {
            condition(o, "Synced").is_some_and(|c| c.message == on_claim)
        })
        .await;
    let synced = condition(&claim, "Synced").expect("Synced");
    assert_eq!(
        (synced.status.as_str(), synced.reason.as_str()),
        ("False", "CompositionNotAllowed")
    );
    assert_eq!(
        condition(&claim, "Ready").map(|c| c.status).as_deref(),
        Some("False")
    );
    // Events are published after the status writes the waits above saw.
    wait_for(Duration::from_secs(10), || async {
        let on_xr = events_about(&client, "default", &xr_name).await;
        let claim_events = events_about(&client, &ns, "app").await;
        let warned = |events: &[(String, String, String)], note: &str| {
            events.iter().any(|(type_, reason, n)| {
                type_ == "Warning" && reason == "CompositionNotAllowed" && n == note
            })
        };
        (warned(&on_xr, &want) && warned(&claim_events, &on_claim)).then_some(())
    })
    .await
    .expect("a CompositionNotAllowed warning on the composite and on the claim");

    // One more complete reconcile, started after the refusal was recorded: it applied
    // nothing either, of the refused resource or of the allowed ConfigMap.
    let mark = Instant::now();
    wait_reconciled(&t.xr.kind, None, &xr_name, mark, Duration::from_secs(30)).await;
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let made: Vec<String> = bindings
        .list(&Default::default())
        .await
        .expect("list ClusterRoleBindings")
        .items
        .into_iter()
        .filter(|b| b.subjects.iter().flatten().any(|s| s.name == user))
        .map(|b| b.name_any())
        .collect();
    assert!(
        made.is_empty(),
        "no ClusterRoleBinding grants {user}: {made:?}"
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    assert!(
        config_maps
            .get_opt(&format!("{xr_name}-settings"))
            .await
            .expect("get ConfigMap")
            .is_none(),
        "not even the allowed ConfigMap is applied"
    );

    t.cleanup(&ns, "app", &comp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_role_binding_is_composed_once_the_list_allows_it() {
    let env = TestEnv::load();
    let comp = unique("grants-view");
    let groups = tessera_provider_postgresql::PostgresqlProvider.groups();
    let opts = CompositionOptions {
        composable: ComposableResources::parse(
            "default, rbac.authorization.k8s.io/ClusterRoleBinding",
            groups,
        )
        .expect("list"),
        ..composition_test_options()
    };
    let t = Isolated::start(&env, &comp, opts).await;
    let client = t.client.clone();
    let ns = namespace(&client, &unique("composable")).await;
    let user = unique("composed-user");
    apply(&client, t.composition(&comp, &ns, &user)).await;
    apply(&client, t.kinds.claim(&ns, "app", "large")).await;
    let xr_name = claim_composite_name(&ns, "app");

    t.wait_claim(&ns, "app", "Ready and Synced", |o| {
        condition(o, "Ready").is_some_and(|c| c.is_true())
            && condition(o, "Synced").is_some_and(|c| c.is_true())
    })
    .await;
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let binding = bindings
        .get(&format!("{xr_name}-admin"))
        .await
        .expect("the ClusterRoleBinding is made");
    assert_eq!(binding.role_ref.name, "view");
    assert_eq!(
        binding
            .subjects
            .iter()
            .flatten()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        [user.as_str()]
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let settings = config_maps
        .get(&format!("{xr_name}-settings"))
        .await
        .expect("the ConfigMap is made");
    assert_eq!(
        settings
            .data
            .unwrap_or_default()
            .get("size")
            .map(String::as_str),
        Some("large")
    );

    t.cleanup(&ns, "app", &comp).await;
    // The composite deleted what it composed before it went.
    wait_for(Duration::from_secs(30), || async {
        bindings
            .get_opt(&format!("{xr_name}-admin"))
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await
    .expect("the ClusterRoleBinding goes with its composite");
}
