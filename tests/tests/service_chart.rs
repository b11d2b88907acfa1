//! The developer's service chart (charts/service) with testenv's Helm: it lints; its values
//! schema refuses a misspelt key and a string where a number belongs, with Helm's message;
//! a claim is rendered only when asked for and when its kind is served; the claims come
//! before the Deployment in Argo CD's sync waves; and `helm template` with a database and
//! Vault access, applied to the real kube-apiserver with the controllers running, gives
//! Ready claims whose Secrets hold every key the Deployment's `secretKeyRef`s name, a
//! DATABASE_URL that logs in to the real PostgreSQL, and an imagePullSecret that is the
//! Harbor claim's dockerconfigjson Secret, whose credentials Harbor accepts.

use std::collections::BTreeSet;
use std::process::{Command, Output};

use serde_json::{Value, json};
use tessera_tests::{
    TestEnv, apply, condition, delete_in, harbor_authenticates, install_crds,
    install_harbor_platform, install_postgres_platform, install_vault_platform, namespace,
    repo_root, secret_data, start_composition_controllers_in_process, start_controller_in_process,
    start_harbor_controller_in_process, start_vault_controller_in_process, unique, wait_gone_in,
    wait_object_in,
};

const CLAIM_API: &str = "platform.tessera.dev/v1alpha1";
/// The claim kinds the platform installed, as `helm template --api-versions` (and Argo
/// CD, which passes the cluster's) tells the chart.
const INSTALLED: [&str; 2] = [
    "platform.tessera.dev/v1alpha1/PostgresDatabase",
    "platform.tessera.dev/v1alpha1/VaultPolicy",
];

fn helm(env: &TestEnv, args: &[&str]) -> Output {
    Command::new(env.get("HELM_BIN"))
        .args(args)
        .env("KUBECONFIG", env.get("KUBECONFIG"))
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("tessera-helm-cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("tessera-helm-config"),
        )
        .output()
        .expect("helm runs")
}

/// `helm template` of the chart as release `name` in `ns`, with the kinds of `installed`
/// served and `--set` values `sets`: the rendered objects, or Helm's error.
fn template(
    env: &TestEnv,
    name: &str,
    ns: &str,
    installed: &[&str],
    sets: &[&str],
) -> Result<Vec<Value>, String> {
    let chart = repo_root().join("charts/service");
    let mut args = vec![
        "template".to_string(),
        name.to_string(),
        chart.display().to_string(),
        "--namespace".into(),
        ns.into(),
    ];
    for a in installed {
        args.extend(["--api-versions".to_string(), a.to_string()]);
    }
    for s in sets {
        args.extend(["--set".to_string(), s.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = helm(env, &args);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).expect("UTF-8 output");
    Ok(serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("helm renders YAML"))
        .filter(|v: &Value| !v.is_null())
        .collect())
}

fn kinds(objects: &[Value]) -> Vec<&str> {
    objects.iter().filter_map(|o| o["kind"].as_str()).collect()
}

fn deployment(objects: &[Value]) -> &Value {
    objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("a Deployment")
}

/// The (env var, Secret, key) of every `secretKeyRef` of the Deployment's containers.
fn secret_key_refs(deployment: &Value) -> Vec<(String, String, String)> {
    let mut refs = Vec::new();
    for c in deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
    {
        for e in c["env"].as_array().into_iter().flatten() {
            let r = &e["valueFrom"]["secretKeyRef"];
            if r.is_object() {
                let s = |v: &Value| v.as_str().expect("a string").to_string();
                refs.push((s(&e["name"]), s(&r["name"]), s(&r["key"])));
            }
        }
    }
    refs
}

#[test]
fn the_chart_lints() {
    let env = TestEnv::load();
    let chart = repo_root().join("charts/service");
    for values in [
        vec!["image=registry.example.com/shop/orders:1.0.0"],
        vec![
            "image=registry.example.com/shop/orders:1.0.0",
            "postgres.enabled=true",
            "vault.read={secret/data/shop/*}",
            "harbor.project.enabled=true",
        ],
    ] {
        let mut args = vec!["lint", "--strict", chart.to_str().unwrap()];
        for v in &values {
            args.extend(["--set", v]);
        }
        let out = helm(&env, &args);
        assert!(
            out.status.success(),
            "helm lint {values:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_values_schema_refuses_a_typo_and_a_string_for_a_number() {
    let env = TestEnv::load();
    let image = "image=registry.example.com/shop/orders:1.0.0";
    let cases = [
        (
            "a misspelt key",
            vec![image, "postgress.enabled=true"],
            "additional properties 'postgress' not allowed",
        ),
        (
            "a string for the connection limit",
            vec![
                image,
                "postgres.enabled=true",
                "postgres.connectionLimit=twenty",
            ],
            "at '/postgres/connectionLimit': got string, want null or integer",
        ),
        (
            "a string for the replicas",
            vec![image, "replicas=three"],
            "at '/replicas': got string, want integer",
        ),
        (
            "a connection limit below -1",
            vec![image, "postgres.connectionLimit=-5"],
            "/postgres/connectionLimit",
        ),
        (
            "a name where the Harbor project's settings belong",
            vec![image, "harbor.project=shop"],
            "at '/harbor/project': got string, want object",
        ),
    ];
    for (reason, sets, want) in cases {
        let err = template(&env, "orders", "shop", &INSTALLED, &sets)
            .expect_err(&format!("{reason} is refused"));
        assert!(
            err.contains("values don't meet the specifications of the schema")
                && err.contains(want),
            "{reason}: {err}"
        );
    }
    let err = template(&env, "orders", "shop", &INSTALLED, &[]).expect_err("no image");
    assert!(err.contains("image is required"), "{err}");
}

#[test]
fn only_claims_asked_for_and_served_are_rendered_and_they_come_before_the_deployment() {
    let env = TestEnv::load();
    let image = "image=registry.example.com/shop/orders:1.0.0";

    let none = template(&env, "orders", "shop", &INSTALLED, &[image]).unwrap();
    assert_eq!(kinds(&none), ["ServiceAccount", "Deployment"]);
    assert!(secret_key_refs(deployment(&none)).is_empty());

    let disabled = template(
        &env,
        "orders",
        "shop",
        &INSTALLED,
        &[
            image,
            "postgres.enabled=false",
            "postgres.connectionLimit=5",
        ],
    )
    .unwrap();
    assert!(!kinds(&disabled).contains(&"PostgresDatabase"));
    assert!(secret_key_refs(deployment(&disabled)).is_empty());

    // Asked for, but the platform has not installed the kinds: nothing for them.
    let all = [
        image,
        "postgres.enabled=true",
        "vault.read={secret/data/shop/*}",
        "harbor.project.enabled=true",
    ];
    let not_installed = template(&env, "orders", "shop", &[], &all).unwrap();
    assert_eq!(kinds(&not_installed), ["ServiceAccount", "Deployment"]);
    let d = deployment(&not_installed);
    assert!(secret_key_refs(d).is_empty());
    assert!(d["spec"]["template"]["spec"]["imagePullSecrets"].is_null());

    let rendered = template(&env, "orders", "shop", &INSTALLED, &all).unwrap();
    let mut k = kinds(&rendered);
    k.sort();
    assert_eq!(
        k,
        [
            "Deployment",
            "PostgresDatabase",
            "ServiceAccount",
            "VaultPolicy"
        ]
    );
    let wave = |o: &Value| -> i64 {
        o["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
            .as_str()
            .unwrap_or_else(|| panic!("{} has a sync wave", o["kind"]))
            .parse()
            .unwrap()
    };
    let deployment_wave = wave(deployment(&rendered));
    for claim in rendered.iter().filter(|o| o["apiVersion"] == CLAIM_API) {
        assert!(
            wave(claim) < deployment_wave,
            "{} is applied before the Deployment",
            claim["kind"]
        );
        assert_eq!(claim["metadata"]["namespace"], "shop");
    }
    let db = rendered
        .iter()
        .find(|o| o["kind"] == "PostgresDatabase")
        .unwrap();
    assert!(
        db["spec"].get("connectionLimit").is_none(),
        "no limit unless set"
    );
    let limited = template(
        &env,
        "orders",
        "shop",
        &INSTALLED,
        &[
            image,
            "postgres.enabled=true",
            "postgres.connectionLimit=7",
            "postgres.compositionSelector.matchLabels.tier=gold",
        ],
    )
    .unwrap();
    let db = limited
        .iter()
        .find(|o| o["kind"] == "PostgresDatabase")
        .unwrap();
    assert_eq!(db["spec"]["connectionLimit"], 7);

    // With the HarborProject kind served, the pods pull with the claim's Secret.
    let harbor = "platform.tessera.dev/v1alpha1/HarborProject";
    let pulled = template(&env, "orders", "shop", &[harbor], &all).unwrap();
    let project = pulled
        .iter()
        .find(|o| o["kind"] == "HarborProject")
        .expect("a HarborProject claim");
    assert_eq!(
        deployment(&pulled)["spec"]["template"]["spec"]["imagePullSecrets"],
        json!([{ "name": project["spec"]["writeConnectionSecretToRef"]["name"] }])
    );
    assert!(wave(project) < wave(deployment(&pulled)));
    let mut no_pull = all.to_vec();
    no_pull.push("harbor.pull=false");
    let not_pulled = template(&env, "orders", "shop", &[harbor], &no_pull).unwrap();
    assert!(kinds(&not_pulled).contains(&"HarborProject"));
    assert!(deployment(&not_pulled)["spec"]["template"]["spec"]["imagePullSecrets"].is_null());
    assert_eq!(
        db["spec"]["compositionSelector"],
        json!({ "matchLabels": { "tier": "gold" } })
    );
}

#[tokio::test]
async fn rendered_claims_become_ready_and_every_secret_key_ref_names_a_key_of_their_secrets() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    start_controller_in_process(&env);
    start_vault_controller_in_process(&env);
    start_harbor_controller_in_process(&env);
    start_composition_controllers_in_process(&env);
    install_postgres_platform(&env, &client).await;
    install_vault_platform(&env, &client).await;
    let harbor = install_harbor_platform(&env, &client).await;
    tessera_tests::wait_crd_established(&client, "postgresdatabases.platform.tessera.dev")
        .await
        .expect("the XRD offers the PostgresDatabase claim");
    let ns = namespace(&client, &unique("service")).await;

    let mut installed = INSTALLED.to_vec();
    installed.push("platform.tessera.dev/v1alpha1/HarborProject");
    let objects = template(
        &env,
        "orders",
        &ns,
        &installed,
        &[
            "image=registry.example.com/shop/orders:1.0.0",
            "postgres.enabled=true",
            "postgres.connectionLimit=5",
            "vault.read={secret/data/shop/orders/*}",
            "harbor.project.enabled=true",
            "harbor.pull=true",
            "env.LOG_LEVEL=debug",
        ],
    )
    .expect("helm template");
    for o in &objects {
        apply(&client, o.clone()).await;
    }
    let claims: Vec<(String, String)> = objects
        .iter()
        .filter(|o| o["apiVersion"] == CLAIM_API)
        .map(|o| {
            let s = |v: &Value| v.as_str().unwrap().to_string();
            (s(&o["kind"]), s(&o["metadata"]["name"]))
        })
        .collect();
    assert_eq!(claims.len(), 3, "{claims:?}");
    for (kind, name) in &claims {
        wait_object_in(&client, CLAIM_API, kind, &ns, name, "Ready", |o| {
            condition(o, "Ready").is_some_and(|c| c.is_true())
        })
        .await;
    }

    let refs = secret_key_refs(deployment(&objects));
    let vars: BTreeSet<&str> = refs.iter().map(|(v, ..)| v.as_str()).collect();
    for want in ["DATABASE_URL", "PGPASSWORD", "VAULT_ADDR", "VAULT_ROLE"] {
        assert!(vars.contains(want), "{want} is set from a Secret: {vars:?}");
    }
    let mut database_url = None;
    for (var, secret, key) in &refs {
        // The claim's Secret is written once the claim is Ready.
        let data = secret_data(&client, &ns, secret)
            .await
            .unwrap_or_else(|| panic!("{var}: Secret {ns}/{secret} exists"));
        let value = data.get(key).unwrap_or_else(|| {
            panic!("{var}: Secret {secret} has no key {key}: {:?}", data.keys())
        });
        assert!(!value.is_empty(), "{var}: {secret}/{key} is empty");
        if var == "DATABASE_URL" {
            database_url = Some(value.clone());
        }
    }
    // What the pod would get in DATABASE_URL logs in to the real server.
    let app = env.postgres_url(&database_url.expect("DATABASE_URL")).await;
    let one: i32 = app.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    // A session in the database would keep it from being dropped.
    drop(app);

    // The pods pull their image with the Harbor claim's Secret: a dockerconfigjson Secret
    // whose robot credentials Harbor's token service accepts.
    let pull: Vec<&str> = deployment(&objects)["spec"]["template"]["spec"]["imagePullSecrets"]
        .as_array()
        .expect("the Deployment has imagePullSecrets")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(pull, ["orders-harbor"], "the Harbor claim's Secret");
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), &ns);
    let pull_secret = secrets.get(pull[0]).await.expect("the pull Secret exists");
    assert_eq!(
        pull_secret.type_.as_deref(),
        Some("kubernetes.io/dockerconfigjson")
    );
    let data = secret_data(&client, &ns, pull[0]).await.unwrap();
    let config: Value =
        serde_json::from_str(&data[".dockerconfigjson"]).expect(".dockerconfigjson is JSON");
    let auths = config["auths"].as_object().expect("auths");
    assert_eq!(auths.len(), 1, "one registry: {:?}", auths.keys());
    let (user, password) = (&data["username"], &data["password"]);
    for auth in auths.values() {
        assert_eq!(auth["username"].as_str(), Some(user.as_str()));
    }
    assert!(
        harbor_authenticates(&harbor, user, password).await,
        "Harbor accepts the pull robot"
    );

    // Leave nothing behind that is still reconciled.
    for (kind, name) in &claims {
        delete_in(&client, CLAIM_API, kind, &ns, name).await;
    }
    for (kind, name) in &claims {
        wait_gone_in(&client, CLAIM_API, kind, &ns, name).await;
    }
}
