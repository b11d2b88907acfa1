//! The GitOps health checks shipped in deploy/gitops/, run the way the tools run them,
//! against objects read from the real kube-apiserver: the Argo CD health Lua script (from
//! the `argocd-cm` snippet, executed by Lua 5.1 as Argo CD's interpreter is) and the Flux
//! `healthCheckExprs` (from the Kustomization snippet, evaluated with a CEL interpreter in
//! Flux's order: inProgress, failed, current, else InProgress), and kstatus' rules (what
//! Flux uses without `healthCheckExprs`, `tessera_tests::kstatus`). States: a Ready claim and
//! its composite and role (Healthy/Current), a claim whose selector matches no Composition
//! and a role refused because its name is taken (Degraded/Failed), a composite waiting on
//! that role (Progressing/InProgress), and a Ready claim whose observedGeneration lags its
//! generation (Progressing/InProgress).

use std::time::Duration;

use kube::api::DynamicObject;
use mlua::LuaSerdeExt;
use serde_json::{Value, json};
use tessera_engine::naming::claim_composite_name;
use tessera_tests::kstatus::{KStatus, compute};
use tessera_tests::{
    PG_API, TestEnv, apply, condition, get, install_crds, install_postgres_platform, namespace,
    repo_root, start_composition_controllers_in_process, start_controller_in_process, unique,
    wait_object, wait_object_in, yaml_docs,
};

const CLAIM_API: &str = "platform.tessera.dev/v1alpha1";

fn claim(ns: &str, name: &str) -> Value {
    let mut c = yaml_docs("compositions/postgres/example-claim.yaml").remove(0);
    c["metadata"]["namespace"] = json!(ns);
    c["metadata"]["name"] = json!(name);
    c["spec"]["writeConnectionSecretToRef"]["name"] = json!(format!("{name}-conn"));
    c
}

/// The health script of the `argocd-cm` snippet; it is the same as argocd-health.lua.
fn argo_script() -> String {
    let cm = yaml_docs("deploy/gitops/argocd-cm.yaml").remove(0);
    let custom: serde_yaml::Value =
        serde_yaml::from_str(cm["data"]["resource.customizations"].as_str().unwrap())
            .expect("resource.customizations is YAML");
    let script = custom["*.tessera.dev/*"]["health.lua"]
        .as_str()
        .expect("a health.lua for *.tessera.dev/*")
        .to_string();
    let file = std::fs::read_to_string(repo_root().join("deploy/gitops/argocd-health.lua"))
        .expect("argocd-health.lua");
    assert_eq!(
        script, file,
        "the ConfigMap snippet carries argocd-health.lua"
    );
    script
}

/// Runs the script as Argo CD does (the object as the global `obj`); (status, message).
fn argo_health(script: &str, obj: &Value) -> (String, String) {
    let lua = mlua::Lua::new();
    lua.globals()
        .set("obj", lua.to_value(obj).expect("object to Lua"))
        .unwrap();
    let hs: mlua::Table = lua.load(script).eval().expect("the script runs");
    (
        hs.get::<String>("status").unwrap(),
        hs.get::<String>("message").unwrap_or_default(),
    )
}

/// Flux's verdict for `obj` from the Kustomization snippet's expressions for its kind.
fn flux_health(obj: &Value) -> String {
    let ks = yaml_docs("deploy/gitops/flux-health-checks.yaml").remove(0);
    let entry = ks["spec"]["healthCheckExprs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["apiVersion"] == obj["apiVersion"] && e["kind"] == obj["kind"])
        .unwrap_or_else(|| panic!("no healthCheckExprs for {}", obj["kind"]))
        .clone();
    let mut ctx = cel_interpreter::Context::default();
    for key in ["apiVersion", "kind", "metadata", "spec", "status"] {
        let v = obj.get(key).cloned().unwrap_or_else(|| json!({}));
        ctx.add_variable(key, v).expect("CEL variable");
    }
    for (field, verdict) in [
        ("inProgress", "InProgress"),
        ("failed", "Failed"),
        ("current", "Current"),
    ] {
        let Some(expr) = entry[field].as_str() else {
            continue;
        };
        let program = cel_interpreter::Program::compile(expr)
            .unwrap_or_else(|e| panic!("{field} does not compile: {e}"));
        match program.execute(&ctx) {
            Ok(cel_interpreter::Value::Bool(true)) => return verdict.to_string(),
            Ok(cel_interpreter::Value::Bool(false)) => {}
            other => panic!("{field} of {} gave {other:?}", obj["kind"]),
        }
    }
    "InProgress".to_string()
}

fn as_json(o: &DynamicObject) -> Value {
    serde_json::to_value(o).unwrap()
}

fn refs(xr: &DynamicObject) -> Vec<(String, String)> {
    xr.data["spec"]["resourceRefs"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                    (s("kind"), s("name"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_readme_carries_the_snippets_as_shipped() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    for file in ["argocd-cm.yaml", "flux-health-checks.yaml"] {
        let text = std::fs::read_to_string(repo_root().join("deploy/gitops").join(file)).unwrap();
        assert!(
            readme.contains(&text),
            "README's copy-paste block differs from deploy/gitops/{file}"
        );
    }
}

#[tokio::test]
async fn argo_cd_and_flux_read_ready_progressing_and_failing_objects_alike() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    install_postgres_platform(&env, &client).await;
    start_controller_in_process(&env);
    start_composition_controllers_in_process(&env);
    tessera_tests::wait_crd_established(&client, "postgresdatabases.platform.tessera.dev")
        .await
        .expect("the XRD offers the PostgresDatabase claim");
    let ns = namespace(&client, &unique("gitops")).await;
    let blocked_xr = claim_composite_name(&ns, "blocked-db");
    let pg = env.postgres().await;
    pg.batch_execute(&format!("CREATE ROLE \"{blocked_xr}\""))
        .await
        .expect("create the squatting role");
    for name in ["ready-db", "blocked-db"] {
        apply(&client, claim(&ns, name)).await;
    }
    let mut unmatched = claim(&ns, "unmatched-db");
    unmatched["spec"]["compositionSelector"] = json!({ "matchLabels": { "tier": "platinum" } });
    apply(&client, unmatched).await;

    let ready = |o: &DynamicObject| {
        condition(o, "Ready").is_some_and(|c| c.is_true())
            && condition(o, "Synced").is_some_and(|c| c.is_true())
    };
    let ready_claim = wait_object_in(
        &client,
        CLAIM_API,
        "PostgresDatabase",
        &ns,
        "ready-db",
        "Ready",
        ready,
    )
    .await;
    let ready_xr = get(
        &client,
        CLAIM_API,
        "XPostgresDatabase",
        &claim_composite_name(&ns, "ready-db"),
    )
    .await
    .expect("the ready claim's composite");
    let ready_role = refs(&ready_xr)
        .into_iter()
        .find(|(k, _)| k == "Role")
        .expect("a Role")
        .1;
    let ready_role = wait_object(
        &client,
        PG_API,
        "Role",
        &ready_role,
        Duration::from_secs(60),
        "Ready",
        ready,
    )
    .await;
    let unmatched = wait_object_in(
        &client,
        CLAIM_API,
        "PostgresDatabase",
        &ns,
        "unmatched-db",
        "Synced=False about the selector",
        |o| condition(o, "Synced").is_some_and(|c| !c.is_true() && c.message.contains("platinum")),
    )
    .await;
    let blocked_xr = wait_object(
        &client,
        CLAIM_API,
        "XPostgresDatabase",
        &blocked_xr,
        Duration::from_secs(60),
        "Synced, not Ready, three resourceRefs",
        |o| {
            refs(o).len() == 3
                && condition(o, "Synced").is_some_and(|c| c.is_true())
                && condition(o, "Ready").is_some_and(|c| !c.is_true())
        },
    )
    .await;
    let blocked_role = refs(&blocked_xr)
        .into_iter()
        .find(|(k, _)| k == "Role")
        .expect("a Role")
        .1;
    let blocked_role = wait_object(
        &client,
        PG_API,
        "Role",
        &blocked_role,
        Duration::from_secs(60),
        "Synced=False: not owned",
        |o| condition(o, "Synced").is_some_and(|c| c.reason == "ExternalResourceNotOwned"),
    )
    .await;
    let xrd = get(
        &client,
        "apiextensions.tessera.dev/v1",
        "CompositeResourceDefinition",
        "xpostgresdatabases.platform.tessera.dev",
    )
    .await
    .expect("the XRD");
    let composition = get(
        &client,
        "apiextensions.tessera.dev/v1",
        "Composition",
        "postgres-shared",
    )
    .await
    .expect("the Composition");
    // A spec change the controller has not observed yet: the object as it is read between
    // the write and the next reconcile (generation one ahead of status.observedGeneration).
    let mut lagging = as_json(&ready_claim);
    let observed = lagging["status"]["observedGeneration"]
        .as_i64()
        .expect("the claim reports observedGeneration");
    lagging["metadata"]["generation"] = json!(observed + 1);

    let script = argo_script();
    let argo = |o: &Value| argo_health(&script, o);
    use KStatus::{Current, Failed, InProgress};
    let cases: Vec<(&str, Value, &str, Option<&str>, KStatus)> = vec![
        (
            "ready claim",
            as_json(&ready_claim),
            "Healthy",
            Some("Current"),
            Current,
        ),
        (
            "ready composite",
            as_json(&ready_xr),
            "Healthy",
            Some("Current"),
            Current,
        ),
        ("ready role", as_json(&ready_role), "Healthy", None, Current),
        ("XRD", as_json(&xrd), "Healthy", None, Current),
        (
            "Composition",
            as_json(&composition),
            "Healthy",
            None,
            Current,
        ),
        (
            "unmatched claim",
            as_json(&unmatched),
            "Degraded",
            Some("Failed"),
            Failed,
        ),
        (
            "refused role",
            as_json(&blocked_role),
            "Degraded",
            None,
            Failed,
        ),
        (
            "waiting composite",
            as_json(&blocked_xr),
            "Progressing",
            Some("InProgress"),
            InProgress,
        ),
        (
            "lagging claim",
            lagging,
            "Progressing",
            Some("InProgress"),
            InProgress,
        ),
    ];
    for (what, obj, want_argo, want_flux, want_kstatus) in &cases {
        let (status, message) = argo(obj);
        assert_eq!(
            &status, want_argo,
            "Argo CD health of the {what}: {message}"
        );
        if let Some(want) = want_flux {
            assert_eq!(&flux_health(obj), want, "Flux health of the {what}");
        }
        // Flux without healthCheckExprs (and kstatus-based tools) read the same from the
        // Reconciling and Stalled conditions.
        assert_eq!(
            compute(obj),
            *want_kstatus,
            "kstatus of the {what}: {}",
            obj["status"]["conditions"]
        );
    }
    // The messages explain a failure the way the conditions do.
    let (_, msg) = argo(&cases[5].1);
    assert!(msg.contains("platinum"), "{msg}");
    let (_, msg) = argo(&cases[8].1);
    assert!(
        msg.contains(&format!("generation {}", observed + 1)),
        "{msg}"
    );
    pg.batch_execute(&format!(
        "DROP ROLE IF EXISTS \"{}\"",
        claim_composite_name(&ns, "blocked-db")
    ))
    .await
    .ok();
}
