//! The crash scenario shared by the crash-safety test (a bounded run in `scripts/test`) and
//! the long run (`cargo run -p tessera-tests --example crash_long -- --kills 500`):
//! PostgresDatabase claims (the shipped composition) and managed resources of the other
//! providers are created while `tessera controller` processes are killed with SIGKILL at
//! random moments and started again. Afterwards every external object exists exactly once
//! and every object is Ready; after deleting them, nothing of them is left in PostgreSQL,
//! OpenBao, moto or the Harbor API simulator.
//!
//! The kill moments, batch sizes and which objects are applied when come from one seed,
//! printed at the start, so that a failing run can be replayed with
//! `TESSERA_CRASH_SEED=<seed>` (the moments the controller reaches in its work still
//! depend on timing).

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;

use crate::{
    ControllerProcess, HARBOR_API, HarborTarget, RDS_API, TestEnv, VAULT_API, apply, condition,
    delete, delete_in, harbor_provider_config, install_crds, install_postgres_platform, namespace,
    rds_provider_config, rds_sdk, unique, vault_provider_config, wait_crd_established, wait_for,
    yaml_docs,
};

/// Group/version of the shipped PostgresDatabase claim.
const CLAIM_API: &str = "platform.tessera.dev/v1alpha1";

/// What to run.
#[derive(Clone, Debug)]
pub struct CrashRun {
    /// PostgresDatabase claims (each a Role, a Database and a Grant in PostgreSQL).
    pub claims: usize,
    /// Controller processes killed with SIGKILL at random moments.
    pub kills: usize,
    /// Controller processes that end themselves right after an external create, before
    /// recording it (`TESSERA_FAULT_EXIT_AFTER_EXTERNAL_CREATE`), run before the kills.
    pub hook_exits: usize,
    /// OpenBao Policies, RDS DBInstances (moto) and Harbor Projects (the simulator) each.
    pub others: usize,
    /// How long a controller runs before it is killed: uniformly random in this range.
    pub kill_after: std::ops::Range<Duration>,
    /// The seed of every random choice.
    pub seed: u64,
    /// How long the last controller (started after the last kill, with every object
    /// applied) may take to make everything Ready, and to remove everything after the
    /// deletes. It does all the work the killed ones left: on a loaded machine that is
    /// about a second per claim.
    pub converge_timeout: Duration,
}

impl CrashRun {
    /// The seed from `TESSERA_CRASH_SEED`, or a random one.
    pub fn seed_from_env() -> u64 {
        std::env::var("TESSERA_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(rand::random)
    }
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct CrashReport {
    /// Controller processes that ended (hook exits and kills).
    pub controllers_ended: usize,
    /// From the first controller until every object was Ready.
    pub until_ready: Duration,
    /// From the start of the last controller (the one left running) until every object
    /// was Ready.
    pub last_controller_until_ready: Duration,
    /// Objects that had to become Ready: claims and the other providers' objects.
    pub objects: usize,
    /// From the deletes until nothing was left.
    pub until_clean: Duration,
}

/// Roles and databases in PostgreSQL whose names start with `prefix`.
async fn pg_counts(pg: &tokio_postgres::Client, prefix: &str) -> (i64, i64) {
    let count = |sql: &'static str| async move {
        pg.query_one(sql, &[&prefix])
            .await
            .expect("count in PostgreSQL")
            .get::<_, i64>(0)
    };
    (
        count("SELECT count(*) FROM pg_roles WHERE starts_with(rolname, $1)").await,
        count("SELECT count(*) FROM pg_database WHERE starts_with(datname, $1)").await,
    )
}

fn is_ready(obj: &kube::api::DynamicObject) -> bool {
    condition(obj, "Ready").is_some_and(|c| c.is_true())
        && condition(obj, "Synced").is_some_and(|c| c.is_true())
}

/// How many objects of a kind whose names start with `prefix` exist, and how many of them
/// are Ready and Synced.
async fn ready_count(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    prefix: &str,
) -> (usize, usize) {
    let (group, version) = api_version.split_once('/').expect("group/version");
    let ar = kube::discovery::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
        group, version, kind,
    ));
    let api: kube::Api<kube::api::DynamicObject> = match namespace {
        Some(ns) => kube::Api::namespaced_with(client.clone(), ns, &ar),
        None => kube::Api::all_with(client.clone(), &ar),
    };
    let list = api
        .list(&Default::default())
        .await
        .unwrap_or_else(|e| panic!("list {kind}: {e}"));
    let mine: Vec<_> = list
        .items
        .iter()
        .filter(|o| {
            o.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    (mine.len(), mine.iter().filter(|o| is_ready(o)).count())
}

/// Runs the scenario; panics (with the seed in the message) when a guarantee is broken.
pub async fn run(env: &TestEnv, cfg: &CrashRun) -> CrashReport {
    let seed = cfg.seed;
    eprintln!("crash run: {cfg:?}; replay with TESSERA_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    install_postgres_platform(env, &client).await;
    {
        // The XRD controller of a controller offers the claim kind.
        let _first = ControllerProcess::spawn(env, &[]).expect("start a controller");
        wait_crd_established(&client, "postgresdatabases.platform.tessera.dev")
            .await
            .expect("the XRD's claim CRD");
    }
    let pg = env.postgres().await;
    let rds = rds_sdk(env);
    let vault = env.vault();
    let harbor = HarborTarget::load(env);

    // Every name starts with the prefix, so each system can be asked for all of them.
    let prefix = format!("{}-", unique("crash"));
    let ns = namespace(&client, prefix.trim_end_matches('-')).await;
    let claims: Vec<String> = (0..cfg.claims).map(|i| format!("{prefix}c{i}")).collect();
    let claim = |name: &str| {
        let mut c = yaml_docs("compositions/postgres/example-claim.yaml").remove(0);
        c["metadata"]["namespace"] = json!(ns);
        c["metadata"]["name"] = json!(name);
        c["spec"]["writeConnectionSecretToRef"]["name"] = json!(format!("{name}-conn"));
        c
    };

    // The other providers' objects, applied before the first controller starts.
    let pc = format!("{prefix}pc");
    vault_provider_config(env, &client, &pc, env.get("VAULT_TOKEN")).await;
    rds_provider_config(env, &client, &pc, None).await;
    harbor_provider_config(&client, &harbor, &pc, &harbor.password).await;
    let policies: Vec<String> = (0..cfg.others).map(|i| format!("{prefix}p{i}")).collect();
    let instances: Vec<String> = (0..cfg.others).map(|i| format!("{prefix}i{i}")).collect();
    let projects: Vec<String> = (0..cfg.others).map(|i| format!("{prefix}h{i}")).collect();
    for p in &policies {
        apply(&client, json!({
            "apiVersion": VAULT_API, "kind": "Policy", "metadata": { "name": p },
            "spec": { "providerConfigRef": { "name": pc },
                "forProvider": { "rules": [{ "paths": [format!("secret/data/{p}/*")], "capabilities": ["read"] }] } }
        }))
        .await;
    }
    for i in &instances {
        apply(&client, json!({
            "apiVersion": RDS_API, "kind": "DBInstance", "metadata": { "name": i },
            "spec": { "providerConfigRef": { "name": pc },
                "forProvider": { "engine": "postgres", "dbInstanceClass": "db.t3.micro",
                    "allocatedStorage": 20, "masterUsername": "admin", "skipFinalSnapshot": true } }
        }))
        .await;
    }
    for h in &projects {
        apply(
            &client,
            json!({
                "apiVersion": HARBOR_API, "kind": "Project", "metadata": { "name": h },
                "spec": { "providerConfigRef": { "name": pc }, "forProvider": { "public": false } }
            }),
        )
        .await;
    }

    // Claims arrive in random batches while controllers start and die: all of them within
    // the first half of the controllers, so that the later kills hit work in progress.
    let started = Instant::now();
    let mut pending = claims.iter();
    let spawns = cfg.hook_exits + cfg.kills;
    let per_spawn = cfg.claims.div_ceil(spawns.div_ceil(2).max(1));
    let mut apply_batch = async |rng: &mut StdRng| {
        let n = rng.random_range(0..=2 * per_spawn);
        for name in pending.by_ref().take(n) {
            apply(&client, claim(name)).await;
        }
    };
    let mut ended = 0;
    for _ in 0..cfg.hook_exits {
        apply_batch(&mut rng).await;
        let mut c =
            ControllerProcess::spawn(env, &[("TESSERA_FAULT_EXIT_AFTER_EXTERNAL_CREATE", "1")])
                .expect("start a controller");
        let code = c
            .wait_exit(Duration::from_secs(60))
            .await
            .expect("the controller made an external create and exited");
        assert_eq!(
            code,
            Some(86),
            "seed {seed}: exited through the hook; log: {}",
            c.log().display()
        );
        ended += 1;
    }
    for _ in 0..cfg.kills {
        let c = ControllerProcess::spawn(env, &[]).expect("start a controller");
        let deadline = Instant::now() + rng.random_range(cfg.kill_after.clone());
        apply_batch(&mut rng).await;
        tokio::time::sleep_until(deadline.into()).await;
        drop(c); // SIGKILL
        ended += 1;
    }
    for name in pending {
        apply(&client, claim(name)).await;
    }
    // Killed in the middle of their work, the controllers still never made a second copy.
    let (roles, databases) = pg_counts(&pg, &prefix).await;
    assert!(
        roles <= cfg.claims as i64 && databases <= cfg.claims as i64,
        "seed {seed}: at most one role and one database per claim: {roles} roles, {databases} databases"
    );

    // A controller left running makes everything Ready, with no human action.
    let controller = ControllerProcess::spawn(env, &[]).expect("start a controller");
    let last_started = Instant::now();
    let log = controller.log().display().to_string();
    let want = [
        (CLAIM_API, "PostgresDatabase", Some(ns.as_str()), cfg.claims),
        (VAULT_API, "Policy", None, cfg.others),
        (RDS_API, "DBInstance", None, cfg.others),
        (HARBOR_API, "Project", None, cfg.others),
    ];
    // One deadline for all kinds, from the start of the last controller: it works on all
    // of them at once.
    let progress = async || {
        let mut counts = Vec::new();
        for (api_version, kind, namespace, n) in want {
            let (all, ready) = ready_count(&client, api_version, kind, namespace, &prefix).await;
            counts.push((kind, n, all, ready));
        }
        counts
    };
    let converged = wait_for(cfg.converge_timeout, || async {
        let counts = progress().await;
        counts
            .iter()
            .all(|&(_, n, all, ready)| all == n && ready == n)
            .then_some(())
    })
    .await;
    if converged.is_err() {
        let counts: Vec<String> = progress()
            .await
            .iter()
            .map(|(kind, n, all, ready)| format!("{ready} of {all} {kind}s Ready (want {n})"))
            .collect();
        panic!(
            "seed {seed}: not Ready within {:?} of the last controller's start: {}; controller log: {log}",
            cfg.converge_timeout,
            counts.join(", ")
        );
    }
    let until_ready = started.elapsed();
    let last_controller_until_ready = last_started.elapsed();

    // Exactly one role and one database per claim, named after its composite.
    assert_eq!(
        pg_counts(&pg, &prefix).await,
        (cfg.claims as i64, cfg.claims as i64),
        "seed {seed}: exactly one role and one database per claim"
    );
    for name in &claims {
        let xr = tessera_engine::naming::claim_composite_name(&ns, name);
        let owner: Vec<String> = pg
            .query(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1",
                &[&xr],
            )
            .await
            .expect("query pg_database")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(
            owner,
            std::slice::from_ref(&xr),
            "seed {seed}: claim {name}'s database exists once, owned by its role"
        );
    }
    for p in &policies {
        vaultrs::sys::policy::read(&vault, p)
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: policy {p} in OpenBao: {e}"));
    }
    let described = rds
        .describe_db_instances()
        .send()
        .await
        .expect("DescribeDBInstances");
    let mut in_moto: Vec<&str> = described
        .db_instances()
        .iter()
        .filter_map(|d| d.db_instance_identifier())
        .filter(|d| d.starts_with(&prefix))
        .collect();
    in_moto.sort();
    let mut want_moto: Vec<&str> = instances.iter().map(String::as_str).collect();
    want_moto.sort();
    assert_eq!(in_moto, want_moto, "seed {seed}: one DB instance each");
    for h in &projects {
        assert!(
            harbor.get(&format!("/projects/{h}")).await.is_some(),
            "seed {seed}: project {h} in Harbor"
        );
    }

    // Nothing leaks: after the deletes, nothing of them is left anywhere.
    let deleting = Instant::now();
    for name in &claims {
        delete_in(&client, CLAIM_API, "PostgresDatabase", &ns, name).await;
    }
    for p in &policies {
        delete(&client, VAULT_API, "Policy", p).await;
    }
    for i in &instances {
        delete(&client, RDS_API, "DBInstance", i).await;
    }
    for h in &projects {
        delete(&client, HARBOR_API, "Project", h).await;
    }
    let clean = wait_for(cfg.converge_timeout, || async {
        let (roles, databases) = pg_counts(&pg, &prefix).await;
        let mut left = roles + databases;
        for (api_version, kind, namespace) in [
            (CLAIM_API, "PostgresDatabase", Some(ns.as_str())),
            (CLAIM_API, "XPostgresDatabase", None),
            (VAULT_API, "Policy", None),
            (RDS_API, "DBInstance", None),
            (HARBOR_API, "Project", None),
        ] {
            left += ready_count(&client, api_version, kind, namespace, &prefix)
                .await
                .0 as i64;
        }
        (left == 0).then_some(())
    })
    .await;
    assert!(
        clean.is_ok(),
        "seed {seed}: objects left {:?} after the deletes; controller log: {log}",
        pg_counts(&pg, &prefix).await
    );
    for p in &policies {
        assert!(
            vaultrs::sys::policy::read(&vault, p).await.is_err(),
            "seed {seed}: policy {p} deleted from OpenBao"
        );
    }
    let described = rds
        .describe_db_instances()
        .send()
        .await
        .expect("DescribeDBInstances");
    let left: Vec<&str> = described
        .db_instances()
        .iter()
        .filter_map(|d| d.db_instance_identifier())
        .filter(|d| d.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "seed {seed}: DB instances left: {left:?}");
    for h in &projects {
        assert!(
            harbor.get(&format!("/projects/{h}")).await.is_none(),
            "seed {seed}: project {h} deleted from Harbor"
        );
    }
    drop(controller);
    CrashReport {
        controllers_ended: ended,
        until_ready,
        last_controller_until_ready,
        objects: cfg.claims + 3 * cfg.others,
        until_clean: deleting.elapsed(),
    }
}
