//! Kubernetes API writes made by the managed runtime, counted by the real kube-apiserver's
//! own request metrics. The only tests of their binary, run one at a time, so nothing else
//! writes meanwhile (cargo runs test binaries one after another).
//!
//! A window of steady state lasts until every object in it was reconciled again from
//! scratch (a poll, recorded by the in-process controllers): a dead controller makes the
//! test fail instead of passing for want of writes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::api::{DynamicObject, GroupVersionKind, ListParams};
use kube::discovery::ApiResource;
use kube::{Api, ResourceExt};
use serde_json::json;
use tessera_tests::{
    PG_API, TEST_NAMESPACE, TestEnv, apiserver_requests, apiserver_write_requests,
    apiserver_writes, apply, condition, delete, delete_in, events_about, install_crds,
    install_postgres_platform, namespace, pg_provider_config,
    start_composition_controllers_in_process, start_controller_in_process, unique,
    wait_all_reconciled, wait_gone, wait_object_in, wait_ready, yaml_docs,
};

/// Longest wait for a poll of every object: the test controllers poll every 5 s (jittered).
const POLL_WAIT: Duration = Duration::from_secs(30);

/// Writes to a managed resource (not its status) from its first apply to Ready, as
/// measured: the test's own apply, the finalizer with the external-name + create-pending
/// annotations (one patch), the create-succeeded annotation.
const WRITES_PER_CREATE: u64 = 3;

/// Status writes of a managed resource from its first apply to Ready (Creating, then
/// Available; one when the first observation already finds it available).
const STATUS_WRITES_PER_CREATE: u64 = 2;

/// Writes from applying the shipped example claim until it and everything it composes is
/// Ready, as measured: 28 (docs/architecture.md, "The write budget", has the breakdown).
/// Status changes of a claim and composite that is still being created are coalesced over
/// a few seconds, so a slow run may write one or two more; the margin absorbs that, while
/// a write per poll or a rewrite loop exceeds it.
const WRITES_PER_CLAIM: u64 = 30;

/// PostgreSQL managed resources, and PostgresDatabase claims and composites, whose
/// deletion is in progress.
async fn deletions_in_progress(client: &kube::Client) -> Vec<String> {
    let mut deleting = Vec::new();
    for (api_version, kind) in [
        (PG_API, "Role"),
        (PG_API, "Database"),
        (PG_API, "Grant"),
        ("platform.tessera.dev/v1alpha1", "XPostgresDatabase"),
        ("platform.tessera.dev/v1alpha1", "PostgresDatabase"),
    ] {
        let (group, version) = api_version.split_once('/').expect("group/version");
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        // The claim and composite kinds are not served until their XRD is applied.
        let Ok(list) = Api::<DynamicObject>::all_with(client.clone(), &ar)
            .list(&ListParams::default())
            .await
        else {
            continue;
        };
        deleting.extend(
            list.items
                .into_iter()
                .filter(|o| o.metadata.deletion_timestamp.is_some())
                .map(|o| format!("{kind} {}", o.name_any())),
        );
    }
    deleting
}

/// Waits until no deletion that [`deletions_in_progress`] lists is left: objects that
/// earlier tests deleted are finished by the controllers of this process, and their
/// writes would count in a budget.
async fn wait_for_no_deletions(client: &kube::Client) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let deleting = deletions_in_progress(client).await;
        if deleting.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "deletions still in progress after 120 s, whose writes would count: {deleting:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Sum of a set of write counters.
fn total(writes: &BTreeMap<String, u64>) -> u64 {
    writes.values().sum()
}

/// Waits until every object has been reconciled twice from scratch after now (two polls
/// with nothing changed), so a window ending then has seen the controllers at work.
async fn two_polls_of(objects: &[(&str, Option<&str>, &str)]) {
    for _ in 0..2 {
        wait_all_reconciled(objects, Instant::now(), POLL_WAIT).await;
    }
}

/// Writes to the PostgreSQL kinds, Secrets and Events so far.
async fn writes(client: &kube::Client) -> BTreeMap<String, u64> {
    apiserver_writes(client)
        .await
        .into_iter()
        .filter(|(k, _)| {
            k.starts_with("postgresql.sql.tessera.dev/")
                || k.starts_with("/secrets")
                || k.contains("/events")
        })
        .collect()
}

fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0);
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// The tests of this file count every write of the cluster, so they must not overlap.
/// Waits until no Tessera-related write happens for 3 s (at most 60 s): the counters are
/// the whole cluster's, so what earlier test binaries left in motion (events of their
/// deletions, a last status write) must be over before a window opens.
async fn wait_for_quiet(client: &kube::Client) {
    let mut last = all_tessera_writes(client).await;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = all_tessera_writes(client).await;
        if now == last {
            return;
        }
        last = now;
    }
    panic!("the cluster never went 3 s without a Tessera write: {last:?}");
}

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn steady_state_makes_no_kubernetes_writes_and_creates_are_counted() {
    let _one = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    let pc = unique("budgetpc");
    pg_provider_config(&env, &client, &pc, env.get("POSTGRES_PASSWORD")).await;
    start_controller_in_process(&env);
    let (r, d, g) = (unique("budget"), unique("budgetdb"), unique("budgetgrant"));
    let owner = unique("budgetowner");

    // Created in dependency order, each after what it needs is Ready, so that no create
    // fails for want of its owner or role and every create costs exactly its budget.
    wait_for_no_deletions(&client).await;
    wait_for_quiet(&client).await;
    let before_create = writes(&client).await;
    let role = |name: &str, for_provider: serde_json::Value| {
        json!({ "apiVersion": PG_API, "kind": "Role", "metadata": { "name": name },
            "spec": { "providerConfigRef": { "name": pc }, "forProvider": for_provider } })
    };
    apply(&client, role(&owner, json!({}))).await;
    let mut login = role(&r, json!({ "privileges": { "login": true } }));
    login["spec"]["writeConnectionSecretToRef"] =
        json!({ "name": format!("{r}-conn"), "namespace": TEST_NAMESPACE });
    apply(&client, login).await;
    wait_ready(&client, PG_API, "Role", &owner).await;
    wait_ready(&client, PG_API, "Role", &r).await;
    apply(
        &client,
        json!({ "apiVersion": PG_API, "kind": "Database", "metadata": { "name": d },
        "spec": { "providerConfigRef": { "name": pc }, "forProvider": { "owner": owner } } }),
    )
    .await;
    wait_ready(&client, PG_API, "Database", &d).await;
    apply(
        &client,
        json!({ "apiVersion": PG_API, "kind": "Grant", "metadata": { "name": g },
        "spec": { "providerConfigRef": { "name": pc },
                  "forProvider": { "role": r, "database": d, "privileges": ["CONNECT"] } } }),
    )
    .await;
    wait_ready(&client, PG_API, "Grant", &g).await;
    let objects = [
        ("Role", None, owner.as_str()),
        ("Role", None, r.as_str()),
        ("Database", None, d.as_str()),
        ("Grant", None, g.as_str()),
    ];
    // A reconcile of each that started after all are Ready: the ones that wrote are over.
    wait_all_reconciled(&objects, Instant::now(), POLL_WAIT).await;
    let after_create = writes(&client).await;
    let create = delta(&before_create, &after_create);
    println!("writes for creating 4 managed resources (incl. the test's 4 applies): {create:?}");
    let at = |key: &str| create.get(key).copied().unwrap_or(0);
    for (plural, n) in [("roles", 2), ("databases", 1), ("grants", 1)] {
        let group = "postgresql.sql.tessera.dev";
        assert!(
            at(&format!("{group}/{plural}")) <= n * WRITES_PER_CREATE,
            "at most {WRITES_PER_CREATE} writes per create to {plural} (the test's apply, \
             the finalizer with the external-name + create-pending annotations, the \
             create-succeeded annotation): {create:?}"
        );
        assert!(
            at(&format!("{group}/{plural}/status")) <= n * STATUS_WRITES_PER_CREATE,
            "at most {STATUS_WRITES_PER_CREATE} status writes per create of {plural}: {create:?}"
        );
    }
    assert!(
        at("events.k8s.io/events") + at("/events") <= 4,
        "one event (Created) per create: {create:?}"
    );
    assert!(
        (1..=2).contains(&at("/secrets")),
        "one connection Secret (created, at most updated once): {create:?}"
    );

    // Two polls of every object, and nothing may be written.
    let window = Instant::now();
    two_polls_of(&objects).await;
    let steady = delta(&after_create, &writes(&client).await);
    println!(
        "writes during {:?} of steady state (two polls of each): {steady:?}",
        window.elapsed()
    );
    assert!(
        steady.is_empty(),
        "steady state must not write to Kubernetes: {steady:?}"
    );

    for (kind, name) in [
        ("Grant", &g),
        ("Database", &d),
        ("Role", &r),
        ("Role", &owner),
    ] {
        delete(&client, PG_API, kind, name).await;
        wait_gone(&client, PG_API, kind, name).await;
    }
}

#[tokio::test]
async fn a_ready_claim_in_steady_state_makes_no_kubernetes_writes() {
    let _one = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    install_postgres_platform(&env, &client).await;
    start_controller_in_process(&env);
    start_composition_controllers_in_process(&env);
    tessera_tests::wait_crd_established(&client, "postgresdatabases.platform.tessera.dev")
        .await
        .expect("the XRD offers the PostgresDatabase claim");
    let ns = namespace(&client, &unique("budget-claims")).await;
    let mut claim = yaml_docs("compositions/postgres/example-claim.yaml").remove(0);
    claim["metadata"]["namespace"] = json!(ns);
    wait_for_no_deletions(&client).await;
    wait_for_quiet(&client).await;
    let before_claim = tessera_write_requests(&client).await;
    let reads_before_claim = tessera_reads(&client).await;
    apply(&client, claim).await;
    let name = "orders-db";
    let ready = wait_object_in(
        &client,
        "platform.tessera.dev/v1alpha1",
        "PostgresDatabase",
        &ns,
        name,
        "Ready",
        |o| condition(o, "Ready").is_some_and(|c| c.is_true()),
    )
    .await;
    let composite = ready.data["status"]["resourceRef"]["name"]
        .as_str()
        .expect("the claim's status.resourceRef")
        .to_string();
    let xr = tessera_tests::get(
        &client,
        "platform.tessera.dev/v1alpha1",
        "XPostgresDatabase",
        &composite,
    )
    .await
    .expect("composite");
    let composed: Vec<(String, String)> = xr.data["spec"]["resourceRefs"]
        .as_array()
        .expect("resourceRefs")
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().expect("kind").to_string(),
                r["name"].as_str().expect("name").to_string(),
            )
        })
        .collect();
    assert_eq!(composed.len(), 3, "role, database, grant: {composed:?}");
    let mut objects = vec![
        ("PostgresDatabase", Some(ns.as_str()), name),
        ("XPostgresDatabase", None, composite.as_str()),
    ];
    objects.extend(composed.iter().map(|(k, n)| (k.as_str(), None, n.as_str())));
    // A reconcile of each that started after the claim is Ready: the writes are over.
    wait_all_reconciled(&objects, Instant::now(), POLL_WAIT).await;
    let create = delta(&before_claim, &tessera_write_requests(&client).await);
    println!(
        "writes from applying a claim to all Ready (incl. the test's apply): {}",
        total(&create)
    );
    for (request, n) in &create {
        println!("  {n:>3}  {request}");
    }
    // Which events those are (events of cluster-scoped objects live in `default`).
    for (kind, namespace, object) in &objects {
        let events = events_about(&client, namespace.unwrap_or("default"), object).await;
        for (type_, reason, note) in &events {
            println!("  event on {kind} {object}: {type_} {reason}: {note}");
        }
        if *kind == "XPostgresDatabase" {
            // Its composed resources are in its resourceRefs, and each managed resource
            // has its own event: no event per composed resource on the composite.
            let reasons: Vec<&str> = events.iter().map(|(_, r, _)| r.as_str()).collect();
            assert_eq!(reasons, ["Available"], "the composite's events");
        }
    }
    // The claim controller creates the composite with its finalizer: the composite
    // controller has none to patch in.
    assert!(
        !create.contains_key("PATCH platform.tessera.dev/xpostgresdatabases"),
        "no finalizer patch of the composite: {create:?}"
    );
    assert!(
        total(&create) <= WRITES_PER_CLAIM,
        "at most {WRITES_PER_CLAIM} writes per claim to Ready, {} made: {create:?}",
        total(&create)
    );
    let reads = delta(&reads_before_claim, &tessera_reads(&client).await);
    println!(
        "reads (GET, LIST) from applying a claim to all Ready (incl. the test's waits): {}",
        total(&reads)
    );
    for (request, n) in &reads {
        println!("  {n:>3}  {request}");
    }

    // Claims, composites and managed resources are all polled every 5 s in tests: two
    // polls of each, and nothing may be written.
    let before = all_tessera_writes(&client).await;
    let lists_before = composed_lists(&client).await;
    let window = Instant::now();
    // Secret reads are counted over the second poll: a Secret written by the last
    // reconciles before Ready may reach the store after the first poll read it.
    wait_all_reconciled(&objects, Instant::now(), POLL_WAIT).await;
    let secret_gets_before = secret_gets(&client).await;
    wait_all_reconciled(&objects, Instant::now(), POLL_WAIT).await;
    let gets = secret_gets(&client).await - secret_gets_before;
    let steady = delta(&before, &all_tessera_writes(&client).await);
    let lists = delta(&lists_before, &composed_lists(&client).await);
    println!(
        "writes during {:?} of steady state with a Ready claim (two polls of each): {steady:?}; \
         lists of composed kinds: {lists:?}; GET /secrets in the second poll: {gets}",
        window.elapsed()
    );
    assert!(
        steady.is_empty(),
        "steady state must not write to Kubernetes: {steady:?}"
    );
    // Connection Secrets (managed resources', the composite's, the claim's) and the
    // generated password are read from the store of Tessera's Secrets.
    assert_eq!(
        gets, 0,
        "a poll must not read Tessera's Secrets from the API server ({gets} GET /secrets \
         during a poll of the claim, its composite and its 3 composed resources)"
    );
    // The composite reads its composed resources from its watches' stores.
    assert!(
        lists.is_empty(),
        "a composite's poll must not list its composed resources from the API server: {lists:?}"
    );

    delete_in(
        &client,
        "platform.tessera.dev/v1alpha1",
        "PostgresDatabase",
        &ns,
        name,
    )
    .await;
    // Finished here, so that its writes never count in another test's window.
    wait_for_no_deletions(&client).await;
}

/// Whether writes to `resource` (`group/resource[/subresource]`) count: any Tessera kind
/// (claims, composites, managed resources, the engine's own), CRDs, Secrets and Events.
fn tessera_resource(resource: &str) -> bool {
    resource
        .split('/')
        .next()
        .is_some_and(|g| g.ends_with("tessera.dev"))
        || resource.starts_with("apiextensions.k8s.io/")
        || resource.starts_with("/secrets")
        || resource.contains("/events")
}

/// Writes to any Tessera kind, CRDs, Secrets and Events ([`tessera_resource`]).
async fn all_tessera_writes(client: &kube::Client) -> BTreeMap<String, u64> {
    apiserver_writes(client)
        .await
        .into_iter()
        .filter(|(k, _)| tessera_resource(k))
        .collect()
}

/// LIST requests of the PostgreSQL kinds so far (watches' first lists and relists, and
/// any list a reconcile makes), by resource.
async fn composed_lists(client: &kube::Client) -> BTreeMap<String, u64> {
    apiserver_requests(client, &["LIST"])
        .await
        .into_iter()
        .filter(|((_, k), _)| k.starts_with("postgresql.sql.tessera.dev/"))
        .map(|((_, k), n)| (k, n))
        .collect()
}

/// GET requests of Secrets so far (the test itself reads none while it counts).
async fn secret_gets(client: &kube::Client) -> u64 {
    apiserver_requests(client, &["GET"])
        .await
        .into_iter()
        .filter(|((_, k), _)| k == "/secrets")
        .map(|(_, n)| n)
        .sum()
}

/// GET and LIST requests of Tessera kinds, CRDs and Secrets ([`tessera_resource`]), keyed
/// `VERB group/resource[/subresource]`.
async fn tessera_reads(client: &kube::Client) -> BTreeMap<String, u64> {
    apiserver_requests(client, &["GET", "LIST"])
        .await
        .into_iter()
        .filter(|((_, k), _)| tessera_resource(k))
        .map(|((verb, k), n)| (format!("{verb} {k}"), n))
        .collect()
}

/// [`all_tessera_writes`] by verb: keyed `VERB group/resource[/subresource]`.
async fn tessera_write_requests(client: &kube::Client) -> BTreeMap<String, u64> {
    apiserver_write_requests(client)
        .await
        .into_iter()
        .filter(|((_, k), _)| tessera_resource(k))
        .map(|((verb, k), n)| (format!("{verb} {k}"), n))
        .collect()
}
