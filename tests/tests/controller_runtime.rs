//! The controller as it runs in a cluster, as real `tessera controller` processes: leader
//! election with a Lease (one replica reconciles, a killed leader is replaced within the
//! Lease's bound, SIGTERM hands over at once), shards that split the claims by the label
//! `shard.tessera.dev/key`, and the Prometheus metrics during a PostgreSQL claim.
//!
//! Every test runs its controllers on a shard of its own (a unique shard label), so the
//! tests of this file, running in parallel, never reconcile each other's claims.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::json;
use tessera_tests::{
    ControllerProcess, TestEnv, apply, condition, delete_in, install_crds,
    install_postgres_platform, namespace, secret_data, unique, wait_for, wait_gone_in,
    wait_object_in, yaml_docs,
};

const CLAIM_API: &str = "platform.tessera.dev/v1alpha1";
const SHARD_LABEL: &str = "shard.tessera.dev/key";
/// The protocol bound of a failover: the Lease is valid 10 s after its last renewal, and
/// the standby takes it within about a second of its expiry.
const FAILOVER_BOUND: Duration = Duration::from_secs(15);

async fn platform() -> (TestEnv, kube::Client) {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    install_postgres_platform(&env, &client).await;
    (env, client)
}

async fn claim_kind_established(client: &kube::Client) {
    tessera_tests::wait_crd_established(client, "postgresdatabases.platform.tessera.dev")
        .await
        .expect("the XRD offers the PostgresDatabase claim");
}

/// A PostgresDatabase claim, labelled for `shard` when there is one.
fn claim(ns: &str, name: &str, shard: Option<&str>) -> serde_json::Value {
    let mut c = yaml_docs("compositions/postgres/example-claim.yaml").remove(0);
    c["metadata"]["namespace"] = json!(ns);
    c["metadata"]["name"] = json!(name);
    c["spec"]["writeConnectionSecretToRef"]["name"] = json!(format!("{name}-conn"));
    if let Some(shard) = shard {
        c["metadata"]["labels"] = json!({ SHARD_LABEL: shard });
    }
    c
}

async fn wait_claim_ready(client: &kube::Client, ns: &str, name: &str, timeout: Duration) {
    wait_for(timeout, || async {
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
            client.clone(),
            ns,
            &kube::discovery::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
                "platform.tessera.dev",
                "v1alpha1",
                "PostgresDatabase",
            )),
        );
        let obj = api.get_opt(name).await.ok().flatten()?;
        condition(&obj, "Ready")
            .is_some_and(|c| c.is_true())
            .then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("claim {ns}/{name} Ready: {e}"));
}

/// A free loopback address for a metrics server.
fn metrics_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

/// A controller process running the PostgreSQL provider on `shard` (a selector), with its
/// metrics on `addr`, logging every reconcile it completes (with the object's name).
fn controller(env: &TestEnv, shard: &str, addr: &str, leader: Option<&str>) -> ControllerProcess {
    controller_with(env, shard, addr, leader, &[])
}

/// [`controller`] with more environment variables (later ones win).
fn controller_with(
    env: &TestEnv,
    shard: &str,
    addr: &str,
    leader: Option<&str>,
    extra: &[(&str, &str)],
) -> ControllerProcess {
    let mut vars = vec![
        ("TESSERA_PROVIDERS", "postgresql"),
        ("TESSERA_SHARD", shard),
        ("TESSERA_METRICS_ADDR", addr),
        (
            "RUST_LOG",
            "info,tessera_engine=debug,tessera_engine::scaffold=trace",
        ),
        ("TESSERA_SHUTDOWN_TIMEOUT", "10"),
    ];
    if let Some(ns) = leader {
        vars.push(("TESSERA_LEADER_ELECT", "true"));
        vars.push(("TESSERA_LEADER_ELECTION_NAMESPACE", ns));
    }
    vars.extend_from_slice(extra);
    ControllerProcess::spawn(env, &vars).expect("spawn controller")
}

async fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let resp = reqwest::get(format!("http://{addr}{path}")).await.ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().await.ok()?))
}

async fn scrape(addr: &str) -> String {
    wait_for(Duration::from_secs(30), || async {
        http_get(addr, "/metrics")
            .await
            .filter(|(s, _)| *s == 200)
            .map(|(_, t)| t)
    })
    .await
    .expect("scrape /metrics")
}

/// The sum of the samples of `metric` whose labels contain every one of `labels`
/// (`name="value"` pairs).
fn sample_sum(text: &str, metric: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name_labels, value) = l.rsplit_once(' ')?;
            let name = name_labels.split('{').next()?;
            (name == metric && labels.iter().all(|want| name_labels.contains(want)))
                .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// Every label value of the exposition text.
fn label_values(text: &str) -> Vec<String> {
    let mut values = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((_, rest)) = line.split_once('{') else {
            continue;
        };
        let Some((labels, _)) = rest.rsplit_once('}') else {
            continue;
        };
        for pair in labels.split("\",") {
            if let Some((_, v)) = pair.split_once("=\"") {
                values.push(v.trim_end_matches('"').to_string());
            }
        }
    }
    values
}

/// The claims (by name) whose objects appear in reconcile records of `log`.
fn reconciled(log: &str, names: &[String]) -> BTreeSet<String> {
    names
        .iter()
        .filter(|n| {
            log.lines()
                .any(|l| l.contains("reconciled") && l.contains(n.as_str()))
        })
        .cloned()
        .collect()
}

async fn lease_holder(client: &kube::Client, ns: &str, name: &str) -> Option<Lease> {
    let api: Api<Lease> = Api::namespaced(client.clone(), ns);
    let lease = api.get_opt(name).await.ok().flatten()?;
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_ref())
        .filter(|h| !h.is_empty())?;
    Some(lease)
}

fn holder(lease: &Lease) -> String {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default()
}

/// How many roles and databases PostgreSQL holds whose names start with `prefix`.
async fn pg_count(pg: &tokio_postgres::Client, prefix: &str) -> (i64, i64) {
    let count = |sql: &'static str| async move {
        pg.query_one(sql, &[&prefix])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    (
        count("SELECT count(*) FROM pg_roles WHERE starts_with(rolname, $1)").await,
        count("SELECT count(*) FROM pg_database WHERE starts_with(datname, $1)").await,
    )
}

async fn delete_claims(client: &kube::Client, ns: &str, names: &[String]) {
    for n in names {
        delete_in(client, CLAIM_API, "PostgresDatabase", ns, n).await;
    }
    for n in names {
        wait_gone_in(client, CLAIM_API, "PostgresDatabase", ns, n).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_reconciles_and_a_killed_leader_is_replaced_with_no_duplicate() {
    let (env, client) = platform().await;
    let ns = namespace(&client, &unique("leader")).await;
    let shard_value = unique("le");
    let shard = format!("{SHARD_LABEL} in ({shard_value})");
    let lease_name = format!("tessera-{shard_value}");
    let (addr1, addr2) = (metrics_addr(), metrics_addr());
    let mut first = controller(&env, &shard, &addr1, Some(&ns));
    let mut second = controller(&env, &shard, &addr2, Some(&ns));
    claim_kind_established(&client).await;

    // 1. One of the two holds the Lease; only it reconciles.
    let lease = wait_for(Duration::from_secs(30), || {
        lease_holder(&client, &ns, &lease_name)
    })
    .await
    .expect("a replica takes the Lease");
    let identity = |p: &ControllerProcess| format!("-{}", p.id());
    let first_leads = holder(&lease).ends_with(&identity(&first));
    assert!(
        first_leads || holder(&lease).ends_with(&identity(&second)),
        "the holder {} is one of the two processes",
        holder(&lease)
    );
    let (leader, standby, leader_addr, standby_addr) = if first_leads {
        (&mut first, &mut second, &addr1, &addr2)
    } else {
        (&mut second, &mut first, &addr2, &addr1)
    };
    let names: Vec<String> = (0..3).map(|i| format!("db{i}-{shard_value}")).collect();
    for n in &names {
        apply(&client, claim(&ns, n, Some(&shard_value))).await;
    }
    for n in &names {
        wait_claim_ready(&client, &ns, n, Duration::from_secs(90)).await;
    }
    let leader_metrics = scrape(leader_addr).await;
    let standby_metrics = scrape(standby_addr).await;
    assert!(
        sample_sum(&leader_metrics, "tessera_reconciles_total", &[]) > 0.0,
        "the leader reconciled"
    );
    assert_eq!(sample_sum(&leader_metrics, "tessera_leader", &[]), 1.0);
    assert_eq!(
        sample_sum(&standby_metrics, "tessera_reconciles_total", &[]),
        0.0,
        "the standby reconciled nothing:\n{standby_metrics}"
    );
    assert_eq!(sample_sum(&standby_metrics, "tessera_leader", &[]), 0.0);
    assert!(reconciled(&standby.log_text(), &names).is_empty());
    let (status, _) = http_get(standby_addr, "/readyz").await.expect("readyz");
    assert_eq!(status, 200, "a standby is ready");

    // 2. SIGKILL the leader with claims in flight: the standby takes over and every claim
    // converges, each with one role and one database.
    let more: Vec<String> = (3..7).map(|i| format!("db{i}-{shard_value}")).collect();
    for n in &more {
        apply(&client, claim(&ns, n, Some(&shard_value))).await;
    }
    leader.kill();
    let killed = Instant::now();
    let standby_id = identity(standby);
    let took_over = wait_for(Duration::from_secs(30), || async {
        lease_holder(&client, &ns, &lease_name)
            .await
            .filter(|l| holder(l).ends_with(&standby_id))
    })
    .await
    .map(|_| killed.elapsed())
    .expect("the standby takes the Lease");
    println!("failover after SIGKILL of the leader: {took_over:?}");
    assert!(
        took_over < FAILOVER_BOUND,
        "failover within the Lease's bound: {took_over:?}"
    );
    let all: Vec<String> = names.iter().chain(&more).cloned().collect();
    for n in &all {
        wait_claim_ready(&client, &ns, n, Duration::from_secs(90)).await;
    }
    let pg = env.postgres().await;
    for n in &all {
        assert_eq!(
            pg_count(&pg, &format!("{n}-")).await,
            (1, 1),
            "claim {n}: one role and one database"
        );
    }
    assert!(
        !reconciled(&standby.log_text(), &more).is_empty(),
        "the new leader reconciled the claims in flight"
    );

    delete_claims(&client, &ns, &all).await;
    for n in &all {
        assert_eq!(
            pg_count(&pg, &format!("{n}-")).await,
            (0, 0),
            "{n} cleaned up"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_a_leader_that_reconciled_a_claim_hands_the_lease_over_at_once() {
    let (env, client) = platform().await;
    let ns = namespace(&client, &unique("handover")).await;
    let shard_value = unique("ho");
    let shard = format!("{SHARD_LABEL} in ({shard_value})");
    let lease_name = format!("tessera-{shard_value}");
    let addr1 = metrics_addr();
    let mut standby = controller(&env, &shard, &addr1, Some(&ns));
    claim_kind_established(&client).await;
    wait_for(Duration::from_secs(30), || {
        lease_holder(&client, &ns, &lease_name)
    })
    .await
    .expect("the first replica takes the Lease");
    let identity = |p: &ControllerProcess| format!("-{}", p.id());
    let name = format!("db-{shard_value}");
    apply(&client, claim(&ns, &name, Some(&shard_value))).await;
    wait_claim_ready(&client, &ns, &name, Duration::from_secs(90)).await;
    let pg = env.postgres().await;

    // SIGTERM hands over at once: the Lease is released, and a new standby takes it
    // before the old Lease would have expired.
    let addr3 = metrics_addr();
    let third = controller(&env, &shard, &addr3, Some(&ns));
    wait_for(Duration::from_secs(30), || async {
        http_get(&addr3, "/metrics")
            .await
            .filter(|(_, t)| t.contains("tessera_leader 0"))
    })
    .await
    .expect("the third replica waits on standby");
    let before = lease_holder(&client, &ns, &lease_name).await.expect("held");
    let renewed = before
        .spec
        .as_ref()
        .and_then(|s| s.renew_time.clone())
        .expect("renewTime")
        .0;
    standby.terminate();
    let terminated = Instant::now();
    let third_id = identity(&third);
    let after = wait_for(Duration::from_secs(30), || async {
        lease_holder(&client, &ns, &lease_name)
            .await
            .filter(|l| holder(l).ends_with(&third_id))
    })
    .await
    .expect("the third replica takes the Lease");
    println!("handover after SIGTERM: {:?}", terminated.elapsed());
    let acquired = after
        .spec
        .as_ref()
        .and_then(|s| s.acquire_time.clone())
        .expect("acquireTime")
        .0;
    assert!(
        acquired.duration_since(renewed).as_secs_f64() < 10.0,
        "taken before the old Lease expired (released, not expired): renewed {renewed}, acquired {acquired}"
    );
    assert_eq!(
        standby
            .wait_exit(Duration::from_secs(30))
            .await
            .expect("exits"),
        Some(0),
        "a SIGTERM'd leader exits 0; log: {}",
        standby.log().display()
    );
    assert!(standby.log_text().contains("released the leader Lease"));

    delete_claims(&client, &ns, std::slice::from_ref(&name)).await;
    assert_eq!(
        pg_count(&pg, &format!("{name}-")).await,
        (0, 0),
        "cleaned up"
    );
    drop(third);
}

/// The index of the replica the Lease names.
fn holder_index(lease: &Lease, replicas: &[ControllerProcess]) -> Option<usize> {
    replicas
        .iter()
        .position(|p| holder(lease).ends_with(&format!("-{}", p.id())))
}

/// SIGTERMs the leader `leader` (whose Lease was last renewed at `renewed`) and waits
/// for another running replica to take the Lease. Asserts that it was released, not
/// left to expire, and that the old leader exited 0 after draining, long before its
/// shutdown timeout. Returns the new leader and its Lease.
async fn sigterm_hands_over(
    client: &kube::Client,
    ns: &str,
    lease_name: &str,
    replicas: &mut [ControllerProcess],
    leader: usize,
    renewed: &k8s_openapi::jiff::Timestamp,
    what: &str,
) -> (usize, Lease) {
    replicas[leader].terminate();
    let terminated = Instant::now();
    let (next, lease) = wait_for(Duration::from_secs(30), || async {
        let lease = lease_holder(client, ns, lease_name).await?;
        let i = holder_index(&lease, replicas).filter(|i| *i != leader)?;
        Some((i, lease))
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{what}: another replica takes the Lease after SIGTERM: {e}; the leader's log: {}",
            replicas[leader].log().display()
        )
    });
    println!("{what}: handover after SIGTERM: {:?}", terminated.elapsed());
    let acquired = lease
        .spec
        .as_ref()
        .and_then(|s| s.acquire_time.clone())
        .expect("acquireTime")
        .0;
    assert!(
        acquired.duration_since(*renewed).as_secs_f64() < 10.0,
        "{what}: taken before the Lease expired (released): renewed {renewed}, acquired \
         {acquired}; the leader's log: {}",
        replicas[leader].log().display()
    );
    let old = &mut replicas[leader];
    let code = old
        .wait_exit(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{what}: exit after SIGTERM: {e}; log: {}",
                old.log().display()
            )
        });
    println!("{what}: exited after {:?}", terminated.elapsed());
    let log = old.log_text();
    assert_eq!(
        code,
        Some(0),
        "{what}: exit 0; log: {}",
        old.log().display()
    );
    assert!(
        log.contains("released the leader Lease"),
        "{what}: released; log: {}",
        old.log().display()
    );
    assert!(
        !log.contains("reconciles still running at the shutdown timeout"),
        "{what}: drained; log: {}",
        old.log().display()
    );
    (next, lease)
}

fn renew_time(lease: &Lease) -> k8s_openapi::jiff::Timestamp {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.renew_time.clone())
        .expect("renewTime")
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_a_leader_that_took_over_after_a_failover_drains_and_releases_at_once() {
    let (env, client) = platform().await;
    let ns = namespace(&client, &unique("failover-term")).await;
    let shard_value = unique("ft");
    let shard = format!("{SHARD_LABEL} in ({shard_value})");
    let lease_name = format!("tessera-{shard_value}");
    // A shutdown timeout far beyond the waits below: a replica that waited for it instead
    // of draining would still hold the Lease when they give up.
    let slow_stop = [("TESSERA_SHUTDOWN_TIMEOUT", "300")];
    let mut replicas: Vec<ControllerProcess> = (0..5)
        .map(|_| controller_with(&env, &shard, &metrics_addr(), Some(&ns), &slow_stop))
        .collect();
    claim_kind_established(&client).await;
    let lease = wait_for(Duration::from_secs(30), || {
        lease_holder(&client, &ns, &lease_name)
    })
    .await
    .expect("a replica takes the Lease");
    let first = holder_index(&lease, &replicas)
        .unwrap_or_else(|| panic!("the holder {} is one of the replicas", holder(&lease)));
    let names: Vec<String> = (0..2).map(|i| format!("db{i}-{shard_value}")).collect();
    apply(&client, claim(&ns, &names[0], Some(&shard_value))).await;
    wait_claim_ready(&client, &ns, &names[0], Duration::from_secs(90)).await;

    // 0. A standby that is stopped leaves the leader's Lease alone.
    let spare = (0..5).find(|i| *i != first).unwrap();
    let mut spare = replicas.remove(spare);
    let first = holder_index(&lease, &replicas).expect("the leader is still listed");
    spare.terminate();
    assert_eq!(
        spare
            .wait_exit(Duration::from_secs(30))
            .await
            .expect("exits"),
        Some(0),
        "a SIGTERM'd standby exits 0; log: {}",
        spare.log().display()
    );
    let spare_log = spare.log_text();
    assert!(
        spare_log.contains("stopping while on standby"),
        "{spare_log}"
    );
    assert!(
        !spare_log.contains("released the leader Lease"),
        "{spare_log}"
    );
    let still = lease_holder(&client, &ns, &lease_name)
        .await
        .expect("the Lease is held");
    assert_eq!(holder(&still), holder(&lease), "the leader keeps its Lease");

    // 1. SIGKILL the leader with a claim in flight: a standby takes the Lease once it
    // expires, within the Lease's bound.
    apply(&client, claim(&ns, &names[1], Some(&shard_value))).await;
    replicas[first].kill();
    let killed = Instant::now();
    let (second, lease) = wait_for(Duration::from_secs(30), || async {
        let lease = lease_holder(&client, &ns, &lease_name).await?;
        let i = holder_index(&lease, &replicas).filter(|i| *i != first)?;
        Some((i, lease))
    })
    .await
    .expect("a standby takes the Lease");
    let took_over = killed.elapsed();
    println!("failover after SIGKILL of the leader: {took_over:?}");
    assert!(
        took_over < FAILOVER_BOUND,
        "failover within the Lease's bound: {took_over:?}"
    );

    // 2. SIGTERM the new leader as soon as the Lease names it (it may still be finishing
    // the takeover): it releases the Lease, which a standby takes at once.
    let (third, lease) = sigterm_hands_over(
        &client,
        &ns,
        &lease_name,
        &mut replicas,
        second,
        &renew_time(&lease),
        "the leader that took over after the failover",
    )
    .await;

    // 3. SIGTERM the next one as soon as it starts its controllers (their caches still
    // filling, the claims' reconciles starting): it stops them, releases, exits.
    let log = replicas[third].log().to_path_buf();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("starting controllers")
    {
        assert!(
            Instant::now() < deadline,
            "the new leader starts its controllers; log: {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (fourth, _) = sigterm_hands_over(
        &client,
        &ns,
        &lease_name,
        &mut replicas,
        third,
        &renew_time(&lease),
        "a leader whose controllers just started",
    )
    .await;

    // 4. The last replica converges both claims, each with one role and one database.
    for n in &names {
        wait_claim_ready(&client, &ns, n, Duration::from_secs(90)).await;
    }
    let pg = env.postgres().await;
    for n in &names {
        assert_eq!(
            pg_count(&pg, &format!("{n}-")).await,
            (1, 1),
            "claim {n}: one role and one database"
        );
    }
    assert!(
        !reconciled(&replicas[fourth].log_text(), &names).is_empty(),
        "the last leader reconciles the claims"
    );
    delete_claims(&client, &ns, &names).await;
    for n in &names {
        assert_eq!(
            pg_count(&pg, &format!("{n}-")).await,
            (0, 0),
            "{n} cleaned up"
        );
    }
    drop(replicas);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_reconciles_only_its_labelled_claims_and_the_main_controller_only_unlabelled_ones()
{
    let (env, client) = platform().await;
    let ns = namespace(&client, &unique("shards")).await;
    let shard_value = unique("sa");
    let shard_a = controller(
        &env,
        &format!("{SHARD_LABEL} in ({shard_value})"),
        &metrics_addr(),
        None,
    );
    let main = controller(&env, &format!("!{SHARD_LABEL}"), &metrics_addr(), None);
    claim_kind_established(&client).await;

    let labelled = format!("a-{shard_value}");
    let unlabelled = format!("main-{shard_value}");
    apply(&client, claim(&ns, &labelled, Some(&shard_value))).await;
    apply(&client, claim(&ns, &unlabelled, None)).await;
    wait_claim_ready(&client, &ns, &labelled, Duration::from_secs(90)).await;
    wait_claim_ready(&client, &ns, &unlabelled, Duration::from_secs(90)).await;

    // Everything made for the labelled claim carries its shard label.
    let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &ns)
        .get(&format!("{labelled}-conn"))
        .await
        .expect("connection secret");
    assert_eq!(
        secret.metadata.labels.unwrap_or_default().get(SHARD_LABEL),
        Some(&shard_value),
        "the connection Secret is in the claim's shard"
    );
    let claim_obj = wait_object_in(
        &client,
        CLAIM_API,
        "PostgresDatabase",
        &ns,
        &labelled,
        "bound",
        |o| o.data.pointer("/status/resourceRef/name").is_some(),
    )
    .await;
    let xr_name = claim_obj.data["status"]["resourceRef"]["name"]
        .as_str()
        .expect("composite name")
        .to_string();
    let xr = tessera_tests::get(&client, CLAIM_API, "XPostgresDatabase", &xr_name)
        .await
        .expect("composite");
    assert_eq!(
        xr.metadata
            .labels
            .clone()
            .unwrap_or_default()
            .get(SHARD_LABEL),
        Some(&shard_value),
        "the composite is in the claim's shard"
    );
    for kind in ["Role", "Database", "Grant"] {
        let mr = tessera_tests::get(
            &client,
            tessera_tests::PG_API,
            kind,
            &format!("{xr_name}-{}", kind.to_lowercase()),
        )
        .await
        .unwrap_or_else(|| panic!("{kind} of {xr_name}"));
        assert_eq!(
            mr.metadata
                .labels
                .clone()
                .unwrap_or_default()
                .get(SHARD_LABEL),
            Some(&shard_value),
            "the {kind} is in the claim's shard"
        );
    }

    let names = [labelled.clone(), unlabelled.clone()];
    assert_eq!(
        reconciled(&shard_a.log_text(), &names),
        BTreeSet::from([labelled.clone()]),
        "shard A reconciles only its claim; log: {}",
        shard_a.log().display()
    );
    assert_eq!(
        reconciled(&main.log_text(), &names),
        BTreeSet::from([unlabelled.clone()]),
        "the main controller reconciles only the unlabelled claim; log: {}",
        main.log().display()
    );

    delete_claims(&client, &ns, &names).await;
    drop((shard_a, main));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_reconciles_external_calls_and_time_to_ready_and_carry_no_secret() {
    let (env, client) = platform().await;
    let ns = namespace(&client, &unique("metrics")).await;
    let shard_value = unique("m");
    let addr = metrics_addr();
    let c = controller(
        &env,
        &format!("{SHARD_LABEL} in ({shard_value})"),
        &addr,
        None,
    );
    claim_kind_established(&client).await;
    let (status, body) = wait_for(Duration::from_secs(30), || http_get(&addr, "/livez"))
        .await
        .expect("livez answers");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    wait_for(Duration::from_secs(30), || async {
        http_get(&addr, "/readyz").await.filter(|(s, _)| *s == 200)
    })
    .await
    .expect("ready once the caches synced");
    let before = scrape(&addr).await;

    let name = format!("orders-{shard_value}");
    apply(&client, claim(&ns, &name, Some(&shard_value))).await;
    wait_claim_ready(&client, &ns, &name, Duration::from_secs(90)).await;
    let claim_ctl = r#"controller="platform.tessera.dev/PostgresDatabase""#;
    let ready_kind = r#"kind="PostgresDatabase""#;
    // The status the metrics read comes from the watch: wait until the process saw it.
    let after = wait_for(Duration::from_secs(30), || async {
        let text = scrape(&addr).await;
        (sample_sum(&text, "tessera_time_to_ready_seconds_count", &[ready_kind]) >= 1.0)
            .then_some(text)
    })
    .await
    .expect("time to ready of the claim recorded");

    let moved = |metric: &str, labels: &[&str]| {
        sample_sum(&after, metric, labels) > sample_sum(&before, metric, labels)
    };
    assert!(moved(
        "tessera_reconciles_total",
        &[claim_ctl, r#"result="success""#]
    ));
    assert!(moved(
        "tessera_reconciles_total",
        &[r#"controller="postgresql.sql.tessera.dev/Role""#]
    ));
    assert!(moved(
        "tessera_reconcile_duration_seconds_count",
        &[claim_ctl]
    ));
    assert!(moved(
        "tessera_time_to_ready_seconds_count",
        &[r#"kind="Role""#]
    ));
    assert!(moved(
        "tessera_external_calls_total",
        &[
            r#"provider="PostgreSQL""#,
            r#"operation="create""#,
            r#"result="ok""#
        ]
    ));
    assert!(moved(
        "tessera_external_call_duration_seconds_count",
        &[r#"operation="observe""#]
    ));
    assert!(
        sample_sum(&after, "tessera_resources", &[claim_ctl, r#"ready="True""#]) >= 1.0,
        "the Ready claim is counted"
    );
    assert_eq!(sample_sum(&after, "tessera_build_info", &[]), 1.0);
    assert_eq!(sample_sum(&after, "tessera_leader", &[]), 1.0);

    // No label value carries a secret (the claim's password, the admin's) or an object name.
    let data = secret_data(&client, &ns, &format!("{name}-conn"))
        .await
        .expect("connection secret");
    let password = data.get("password").expect("password").clone();
    assert!(password.len() >= 16);
    let admin = env.get("POSTGRES_PASSWORD").to_string();
    for v in label_values(&after) {
        assert!(
            !v.contains(&password) && !v.contains(&admin),
            "a label value holds a password: {v}"
        );
        assert!(!v.contains(&name), "an object name is a label value: {v}");
    }
    assert!(!after.contains(&password) && !after.contains(&admin));

    delete_claims(&client, &ns, std::slice::from_ref(&name)).await;
    drop(c);
}
