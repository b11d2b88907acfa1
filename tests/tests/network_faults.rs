//! Network faults between the controller and every external system: a TCP fault proxy
//! (tests/src/fault_proxy.rs) in front of PostgreSQL, OpenBao, moto and the Harbor API
//! simulator injects latency, connection resets (on connect and in the middle of a
//! stream) and stalls. A hung upstream fails each call after `--external-timeout` (the
//! reconcile reports it instead of hanging); with faults on, every object still becomes
//! Ready with exactly one external object each, and after the deletes nothing is left.
//! The controller is a real `tessera controller` process with a 2 s external timeout.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use tessera_tests::fault_proxy::{FaultProxy, Faults};
use tessera_tests::{
    ControllerProcess, HARBOR_API, HarborTarget, PG_API, RDS_API, TEST_NAMESPACE, TestEnv,
    VAULT_API, apply, condition, delete, harbor_provider_config, install_crds, namespace,
    rds_provider_config, rds_sdk, unique, vault_provider_config, wait_gone, wait_ready,
};

/// The host:port of a URL like `http://127.0.0.1:18200`.
fn socket_of(url: &str) -> SocketAddr {
    let host_port = url.split("://").nth(1).unwrap_or(url).trim_end_matches('/');
    host_port
        .split('/')
        .next()
        .and_then(|h| h.parse().ok())
        .unwrap_or_else(|| panic!("not a loopback URL: {url}"))
}

/// A PostgreSQL ProviderConfig whose endpoint is the proxy.
async fn pg_config_through(env: &TestEnv, client: &kube::Client, name: &str, proxy: SocketAddr) {
    namespace(client, TEST_NAMESPACE).await;
    namespace(
        client,
        tessera_provider_postgresql::DEFAULT_PASSWORD_NAMESPACE,
    )
    .await;
    apply(
        client,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": format!("{name}-creds"), "namespace": TEST_NAMESPACE },
            "stringData": {
                "endpoint": proxy.ip().to_string(), "port": proxy.port().to_string(),
                "username": env.get("POSTGRES_USER"), "password": env.get("POSTGRES_PASSWORD"),
            }
        }),
    )
    .await;
    apply(
        client,
        json!({
            "apiVersion": PG_API, "kind": "ProviderConfig", "metadata": { "name": name },
            "spec": { "credentials": { "source": "Secret",
                "secretRef": { "name": format!("{name}-creds"), "namespace": TEST_NAMESPACE } },
                "sslMode": "disable" }
        }),
    )
    .await;
}

#[tokio::test]
async fn latency_resets_and_stalls_never_hang_a_reconcile_duplicate_or_leak() {
    let started = std::time::Instant::now();
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    let pg = env.postgres().await;
    let vault = env.vault();
    let rds = rds_sdk(&env);
    let harbor = HarborTarget::load(&env);

    let pg_addr: SocketAddr = format!("{}:{}", env.get("POSTGRES_HOST"), env.get("POSTGRES_PORT"))
        .parse()
        .expect("PostgreSQL address");
    let pg_proxy = FaultProxy::start(pg_addr).await.unwrap();
    let vault_proxy = FaultProxy::start(socket_of(env.get("VAULT_ADDR")))
        .await
        .unwrap();
    let rds_proxy = FaultProxy::start(socket_of(env.get("AWS_ENDPOINT_URL")))
        .await
        .unwrap();
    let harbor_proxy = FaultProxy::start(socket_of(&harbor.url)).await.unwrap();
    let proxies = [&pg_proxy, &vault_proxy, &rds_proxy, &harbor_proxy];

    let prefix = format!("{}-", unique("net"));
    // One ProviderConfig per provider (each with its own credentials Secret), all at the
    // proxies.
    let pc = format!("{prefix}pc");
    let vault_pc = format!("{prefix}vpc");
    let rds_pc = format!("{prefix}apc");
    let harbor_pc = format!("{prefix}hpc");
    pg_config_through(&env, &client, &pc, pg_proxy.addr()).await;
    vault_provider_config(&env, &client, &vault_pc, env.get("VAULT_TOKEN")).await;
    apply(&client, json!({
        "apiVersion": VAULT_API, "kind": "ProviderConfig", "metadata": { "name": vault_pc },
        "spec": { "address": format!("http://{}", vault_proxy.addr()),
            "credentials": { "source": "Secret",
                "secretRef": { "name": format!("{vault_pc}-creds"), "namespace": TEST_NAMESPACE } } }
    }))
    .await;
    rds_provider_config(
        &env,
        &client,
        &rds_pc,
        Some(&format!("http://{}", rds_proxy.addr())),
    )
    .await;
    let mut through = harbor.clone();
    through.url = format!("http://{}", harbor_proxy.addr());
    harbor_provider_config(&client, &through, &harbor_pc, &harbor.password).await;

    let controller = ControllerProcess::spawn(&env, &[("TESSERA_EXTERNAL_TIMEOUT", "2")])
        .expect("start a controller");
    let log = controller.log().display().to_string();

    // 1. Connections are open (a Role and a Policy are Ready); then every upstream hangs,
    //    the open connections included: each reconcile gives up after the external timeout
    //    and says so, instead of waiting forever (the stall never ends by itself). The open
    //    connections stay black holes after the stall ends: only a new one works.
    let warm = format!("{prefix}warm");
    apply(&client, json!({
        "apiVersion": PG_API, "kind": "Role", "metadata": { "name": warm },
        "spec": { "providerConfigRef": { "name": pc }, "forProvider": { "privileges": { "login": true } } }
    }))
    .await;
    let warm_policy = format!("{prefix}warmpolicy");
    apply(&client, json!({
        "apiVersion": VAULT_API, "kind": "Policy", "metadata": { "name": warm_policy },
        "spec": { "providerConfigRef": { "name": vault_pc },
            "forProvider": { "rules": [{ "paths": ["secret/data/warm/*"], "capabilities": ["read"] }] } }
    }))
    .await;
    wait_ready(&client, PG_API, "Role", &warm).await;
    wait_ready(&client, VAULT_API, "Policy", &warm_policy).await;
    for p in proxies {
        p.set(Faults {
            stall_all: true,
            ..Faults::default()
        });
    }
    let hung = format!("{prefix}hung");
    apply(&client, json!({
        "apiVersion": PG_API, "kind": "Role", "metadata": { "name": hung },
        "spec": { "providerConfigRef": { "name": pc }, "forProvider": { "privileges": { "login": true } } }
    }))
    .await;
    let hung_policy = format!("{prefix}hungpolicy");
    apply(&client, json!({
        "apiVersion": VAULT_API, "kind": "Policy", "metadata": { "name": hung_policy },
        "spec": { "providerConfigRef": { "name": vault_pc },
            "forProvider": { "rules": [{ "paths": ["secret/data/hung/*"], "capabilities": ["read"] }] } }
    }))
    .await;
    for (api, kind, name) in [(PG_API, "Role", &hung), (VAULT_API, "Policy", &hung_policy)] {
        let obj = tessera_tests::wait_object(
            &client,
            api,
            kind,
            name,
            Duration::from_secs(60),
            "Synced=False after the external timeout",
            |o| condition(o, "Synced").is_some_and(|c| !c.is_true() && !c.message.is_empty()),
        )
        .await;
        let message = condition(&obj, "Synced").unwrap().message;
        assert!(
            message.to_lowercase().contains("timed out")
                || message.to_lowercase().contains("timeout"),
            "{kind} {name}: the message says the call timed out: {message}; log: {log}"
        );
    }

    // 2. Latency, resets and some stalls on every connection while objects are created.
    //    Besides the random draws, each proxy stalls the first connection opened from here
    //    on and, once, resets the second (or the next one, when a draw took the second)
    //    when its first answer comes back (the request reached the upstream, the answer is
    //    lost): the stall makes the client open another connection, so every proxy that
    //    carries traffic injects both kinds.
    let faults = Faults {
        latency: Duration::from_millis(20),
        reset_on_connect: 0.1,
        reset_mid_stream: 0.005,
        stall: 0.05,
        stall_connection: Some(1),
        reset_connection: Some(2),
        stall_all: false,
        lose_answer_to: None,
        fail_request: None,
    };
    let before: Vec<_> = proxies.iter().map(|p| p.stats()).collect();
    for p in proxies {
        p.set(faults.clone());
    }
    const N: usize = 8;
    let roles: Vec<String> = (0..N).map(|i| format!("{prefix}r{i}")).collect();
    let policies: Vec<String> = (0..N).map(|i| format!("{prefix}p{i}")).collect();
    let projects: Vec<String> = (0..N / 2).map(|i| format!("{prefix}h{i}")).collect();
    let instances: Vec<String> = (0..N / 2).map(|i| format!("{prefix}i{i}")).collect();
    for (i, r) in roles.iter().enumerate() {
        apply(&client, json!({
            "apiVersion": PG_API, "kind": "Role", "metadata": { "name": r },
            "spec": { "providerConfigRef": { "name": pc }, "forProvider": { "privileges": { "login": true } } }
        }))
        .await;
        apply(
            &client,
            json!({
                "apiVersion": PG_API, "kind": "Database", "metadata": { "name": format!("{prefix}d{i}") },
                "spec": { "providerConfigRef": { "name": pc }, "forProvider": { "owner": r } }
            }),
        )
        .await;
    }
    for p in &policies {
        apply(&client, json!({
            "apiVersion": VAULT_API, "kind": "Policy", "metadata": { "name": p },
            "spec": { "providerConfigRef": { "name": vault_pc },
                "forProvider": { "rules": [{ "paths": [format!("secret/data/{p}/*")], "capabilities": ["read"] }] } }
        }))
        .await;
    }
    for h in &projects {
        apply(
            &client,
            json!({
                "apiVersion": HARBOR_API, "kind": "Project", "metadata": { "name": h },
                "spec": { "providerConfigRef": { "name": harbor_pc }, "forProvider": { "public": false } }
            }),
        )
        .await;
    }
    for i in &instances {
        apply(&client, json!({
            "apiVersion": RDS_API, "kind": "DBInstance", "metadata": { "name": i },
            "spec": { "providerConfigRef": { "name": rds_pc },
                "forProvider": { "engine": "postgres", "dbInstanceClass": "db.t3.micro",
                    "allocatedStorage": 20, "masterUsername": "admin", "skipFinalSnapshot": true } }
        }))
        .await;
    }

    // Everything converges through the faults (the objects of step 1 too).
    let databases: Vec<String> = (0..N).map(|i| format!("{prefix}d{i}")).collect();
    let mut all: Vec<(&str, &str, &String)> = vec![(PG_API, "Role", &hung)];
    all.push((VAULT_API, "Policy", &hung_policy));
    all.push((PG_API, "Role", &warm));
    all.push((VAULT_API, "Policy", &warm_policy));
    all.extend(roles.iter().map(|r| (PG_API, "Role", r)));
    all.extend(databases.iter().map(|d| (PG_API, "Database", d)));
    all.extend(policies.iter().map(|p| (VAULT_API, "Policy", p)));
    all.extend(projects.iter().map(|h| (HARBOR_API, "Project", h)));
    all.extend(instances.iter().map(|i| (RDS_API, "DBInstance", i)));
    for (api, kind, name) in &all {
        wait_ready(&client, api, kind, name).await;
    }
    let stats: Vec<_> = proxies.iter().map(|p| p.stats()).collect();
    eprintln!(
        "network faults: {} objects Ready after {:?}; proxy stats (postgres, openbao, moto, harbor) \
         before the faults: {before:?}, now: {stats:?}",
        all.len(),
        started.elapsed()
    );
    for (name, (b, s)) in ["postgres", "openbao", "moto", "harbor"]
        .iter()
        .zip(before.iter().zip(&stats))
    {
        assert!(
            s.connections > b.connections,
            "{name}: the proxy was used with faults on: {b:?} -> {s:?}"
        );
        assert!(
            s.resets > b.resets && s.stalls > b.stalls,
            "{name}: at least one reset and one stall were injected with faults on: {b:?} -> {s:?}"
        );
    }

    // Exactly one of each external object.
    let count = |sql: &'static str| {
        let pg = &pg;
        let prefix = prefix.clone();
        async move {
            pg.query_one(sql, &[&prefix])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    let roles_sql = "SELECT count(*) FROM pg_roles WHERE starts_with(rolname, $1)";
    let dbs_sql = "SELECT count(*) FROM pg_database WHERE starts_with(datname, $1)";
    assert_eq!(count(roles_sql).await, N as i64 + 2, "one role each");
    assert_eq!(count(dbs_sql).await, N as i64, "one database each");
    for p in policies.iter().chain([&hung_policy, &warm_policy]) {
        vaultrs::sys::policy::read(&vault, p)
            .await
            .unwrap_or_else(|e| panic!("policy {p} in OpenBao: {e}"));
    }
    for h in &projects {
        assert!(harbor.get(&format!("/projects/{h}")).await.is_some());
    }
    let in_moto = |rds: aws_sdk_rds::Client, prefix: String| async move {
        let out = rds.describe_db_instances().send().await.unwrap();
        let mut ids: Vec<String> = out
            .db_instances()
            .iter()
            .filter_map(|d| d.db_instance_identifier())
            .filter(|d| d.starts_with(&prefix))
            .map(str::to_string)
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(in_moto(rds.clone(), prefix.clone()).await, instances);

    // 3. The deletes go through the same faults; nothing is left.
    for (api, kind, name) in all.iter().rev() {
        delete(&client, api, kind, name).await;
    }
    for (api, kind, name) in all.iter().rev() {
        wait_gone(&client, api, kind, name).await;
    }
    assert_eq!(count(roles_sql).await, 0, "roles dropped");
    assert_eq!(count(dbs_sql).await, 0, "databases dropped");
    for p in policies.iter().chain([&hung_policy, &warm_policy]) {
        assert!(vaultrs::sys::policy::read(&vault, p).await.is_err());
    }
    for h in &projects {
        assert!(harbor.get(&format!("/projects/{h}")).await.is_none());
    }
    assert!(in_moto(rds.clone(), prefix.clone()).await.is_empty());
    eprintln!(
        "network faults: everything deleted after {:?}",
        started.elapsed()
    );
    drop(controller);
}
