//! The controller's Helm chart, charts/tessera: it lints and renders, the test cluster
//! accepts what it renders, it installs, upgrades and uninstalls, its schema refuses bad
//! values, its CRDs are `tessera crds` for the enabled providers, and its RBAC is both
//! sufficient (a PostgreSQL claim, and a Vault Policy whose ProviderConfig logs in with a
//! token requested for a listed ServiceAccount, reach Ready through a `tessera controller`
//! that runs with the chart's ServiceAccount token) and least (what it must not do is
//! denied, TokenRequests for any other ServiceAccount or without the Vault provider too).
//!
//! There is no kubelet in the test cluster: the chart's pods never run, its objects must
//! be accepted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tessera_tests::vault_auth::{PROVIDER_SA, kubernetes_auth};
use tessera_tests::{
    TestEnv, VAULT_API, apply, condition, delete, delete_in, get_in, install_crds,
    install_postgres_platform, namespace, repo_root, secret_data, service_account_token,
    tessera_bin, unique, wait_crd_established, wait_for, wait_gone, wait_ready, yaml_docs,
};

const CLAIM_API: &str = "platform.tessera.dev/v1alpha1";
const CLAIM_KIND: &str = "PostgresDatabase";

fn chart_dir() -> PathBuf {
    repo_root().join("charts/tessera")
}

/// Runs helm (testenv's build) against the test cluster as its admin.
fn helm(env: &TestEnv, args: &[&str]) -> Output {
    Command::new(env.get("HELM_BIN"))
        .args(args)
        .env("KUBECONFIG", env.get("KUBECONFIG"))
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("tessera-helm/cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("tessera-helm/config"),
        )
        .env(
            "HELM_DATA_HOME",
            std::env::temp_dir().join("tessera-helm/data"),
        )
        .output()
        .expect("run helm")
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// `helm template` of the chart with `--set` values, as JSON documents.
fn render(env: &TestEnv, sets: &[&str]) -> Vec<Value> {
    let chart = chart_dir();
    let mut args = vec![
        "template",
        "tessera",
        chart.to_str().expect("utf-8 path"),
        "--namespace",
        "tessera-system",
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    docs(&ok(helm(env, &args), "helm template"))
}

fn of_kind<'a>(objs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| o["kind"] == kind).collect()
}

fn args_of(deployment: &Value) -> Vec<String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("container args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect()
}

/// The CRDs `tessera crds --providers <list>` prints, by name.
fn tessera_crds(providers: &str) -> Vec<(String, Value)> {
    let out = Command::new(tessera_bin())
        .args(["crds", "--providers", providers])
        .output()
        .expect("run tessera crds");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let mut crds: Vec<(String, Value)> = docs(&text)
        .into_iter()
        .map(|c| (c["metadata"]["name"].as_str().expect("name").to_string(), c))
        .collect();
    crds.sort_by(|a, b| a.0.cmp(&b.0));
    crds
}

/// The chart's CRDs, by name, without the annotation that keeps them on uninstall.
fn chart_crds(objs: &[Value]) -> Vec<(String, Value)> {
    let mut crds: Vec<(String, Value)> = of_kind(objs, "CustomResourceDefinition")
        .into_iter()
        .map(|c| {
            let mut c = c.clone();
            let annotations = c["metadata"]["annotations"]
                .as_object_mut()
                .expect("annotations");
            assert_eq!(
                annotations.remove("helm.sh/resource-policy"),
                Some(json!("keep")),
                "a CRD is kept on uninstall"
            );
            if annotations.is_empty() {
                c["metadata"].as_object_mut().unwrap().remove("annotations");
            }
            (c["metadata"]["name"].as_str().unwrap().to_string(), c)
        })
        .collect();
    crds.sort_by(|a, b| a.0.cmp(&b.0));
    crds
}

#[test]
fn chart_lints_and_installs_exactly_the_crds_of_the_enabled_providers() {
    let env = TestEnv::load();
    let chart = chart_dir();
    ok(
        helm(&env, &["lint", "--strict", chart.to_str().unwrap()]),
        "helm lint",
    );
    for providers in ["postgresql,vault,rds,harbor", "postgresql", "vault,harbor"] {
        let objs = render(&env, &[&format!("providers={{{providers}}}")]);
        let rendered = chart_crds(&objs);
        let generated = tessera_crds(providers);
        let names = |v: &[(String, Value)]| v.iter().map(|c| c.0.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&rendered),
            names(&generated),
            "providers {providers}: the chart's CRDs are `tessera crds --providers {providers}` \
             (regenerate with `tessera crds --out-dir charts/tessera/files/crds`)"
        );
        for ((name, r), (_, g)) in rendered.iter().zip(&generated) {
            assert!(
                r == g,
                "providers {providers}: CRD {name} differs from tessera crds"
            );
        }
        let deployment = of_kind(&objs, "Deployment")[0];
        let args = args_of(deployment);
        assert!(
            args.contains(&format!("--providers={providers}")),
            "the controller runs the same providers: {args:?}"
        );
    }
    // The default: every provider, two replicas with leader election, no shard.
    let objs = render(&env, &[]);
    let deployments = of_kind(&objs, "Deployment");
    assert_eq!(deployments.len(), 1);
    let d = deployments[0];
    assert_eq!(d["spec"]["replicas"], 2);
    let args = args_of(d);
    for want in [
        "--leader-elect",
        "--leader-election-id=tessera",
        "--metrics-addr=0.0.0.0:8080",
        "--composable-resources=default",
    ] {
        assert!(args.iter().any(|a| a == want), "{want} in {args:?}");
    }
    assert!(!args.iter().any(|a| a.starts_with("--shard")), "{args:?}");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(c["resources"]["limits"]["memory"].is_string());
    assert_eq!(
        pod["topologySpreadConstraints"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(of_kind(&objs, "PodDisruptionBudget").len(), 1);
    assert!(of_kind(&objs, "ServiceMonitor").is_empty());
}

#[test]
fn the_binary_accepts_every_argument_the_chart_passes() {
    let env = TestEnv::load();
    let objs = render(
        &env,
        &["shards={a}", "controller.extraArgs={--max-backoff=30}"],
    );
    for d in of_kind(&objs, "Deployment") {
        // clap stops at the first argument it does not know or cannot parse (exit 2);
        // with all of them valid, `--help` at the end exits 0.
        let args = args_of(d);
        let out = Command::new(tessera_bin())
            .args(&args)
            .arg("--help")
            .output()
            .expect("run tessera");
        assert!(
            out.status.success(),
            "{}: tessera refuses {args:?}: {}",
            d["metadata"]["name"],
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn shards_service_monitor_and_gitops_health_render_from_values() {
    let env = TestEnv::load();
    let objs = render(
        &env,
        &[
            "shards={a,b}",
            "metrics.serviceMonitor.enabled=true",
            "gitopsHealth.enabled=true",
            "compositeGroups={platform.tessera.dev,db.example.org}",
        ],
    );
    let deployments = of_kind(&objs, "Deployment");
    let by_shard = |shard: &str| {
        deployments
            .iter()
            .find(|d| d["metadata"]["labels"]["tessera.dev/shard"] == shard)
            .map(|d| args_of(d))
            .unwrap_or_else(|| panic!("no Deployment of shard {shard}"))
    };
    assert_eq!(
        deployments.len(),
        3,
        "the main Deployment and one per shard"
    );
    let main = by_shard("main");
    assert!(
        main.iter().any(|a| a == "--shard=!shard.tessera.dev/key"),
        "{main:?}"
    );
    for shard in ["a", "b"] {
        let args = by_shard(shard);
        assert!(
            args.contains(&format!("--shard=shard.tessera.dev/key in ({shard})")),
            "{args:?}"
        );
        assert!(
            args.contains(&format!("--leader-election-id=tessera-{shard}")),
            "each shard has its own Lease: {args:?}"
        );
    }
    assert_eq!(of_kind(&objs, "PodDisruptionBudget").len(), 3);

    let service = of_kind(&objs, "Service")[0];
    let monitor = of_kind(&objs, "ServiceMonitor")[0];
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels")
    {
        assert_eq!(
            &service["metadata"]["labels"][k], v,
            "the ServiceMonitor selects the Service"
        );
    }
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");

    // The GitOps snippet: the shipped Argo CD script for *.tessera.dev and each listed
    // group, and Flux's expressions as deploy/gitops ships them.
    let cm = of_kind(&objs, "ConfigMap")[0];
    let argo: Value = serde_yaml::from_str(cm["data"]["resource.customizations"].as_str().unwrap())
        .expect("Argo CD customizations");
    let lua = std::fs::read_to_string(repo_root().join("deploy/gitops/argocd-health.lua"))
        .expect("read the Argo CD script");
    for group in [
        "*.tessera.dev/*",
        "platform.tessera.dev/*",
        "db.example.org/*",
    ] {
        assert_eq!(
            argo[group]["health.lua"].as_str(),
            Some(lua.as_str()),
            "{group}"
        );
    }
    let flux: Value =
        serde_yaml::from_str(cm["data"]["healthCheckExprs"].as_str().unwrap()).expect("Flux");
    let shipped = yaml_docs("deploy/gitops/flux-health-checks.yaml").remove(0);
    let shipped = &shipped["spec"]["healthCheckExprs"][0];
    let first = &flux[0];
    for key in ["inProgress", "failed", "current"] {
        assert_eq!(first[key], shipped[key], "Flux {key} expression");
    }
    assert_eq!(first["kind"], "PostgresDatabase");
}

#[test]
fn schema_refuses_bad_values_with_a_clear_message() {
    let env = TestEnv::load();
    let chart = chart_dir();
    let cases: &[(&str, &str)] = &[
        (
            "providers={postgres}",
            "value must be one of 'postgresql', 'vault', 'rds', 'harbor'",
        ),
        (
            "controller.replicas=two",
            "/controller/replicas': got string, want integer",
        ),
        ("replicaz=2", "additional properties 'replicaz' not allowed"),
        (
            "shards={Shard_A}",
            "/shards/0': 'Shard_A' does not match pattern",
        ),
        (
            "composableResources={rbac/clusterrolebinding}",
            "/composableResources/0'",
        ),
        ("compositeGroups={platform}", "/compositeGroups/0'"),
        ("metrics.port=80", "/metrics/port': minimum"),
        (
            "rbac.vaultTokenRequests[0].namespace=Kube_System",
            "/rbac/vaultTokenRequests/0/namespace'",
        ),
        (
            "rbac.vaultTokenRequests[0].name=vault",
            "additional properties 'name' not allowed",
        ),
    ];
    for (set, message) in cases {
        let out = helm(
            &env,
            &["template", "t", chart.to_str().unwrap(), "--set", set],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--set {set} was accepted");
        assert!(
            stderr.contains("values don't meet the specifications of the schema")
                && stderr.contains(message),
            "--set {set}: {stderr}"
        );
    }
}

#[test]
fn token_requests_are_granted_per_listed_namespace_and_only_with_the_vault_provider() {
    let env = TestEnv::load();
    let requests = [
        "rbac.vaultTokenRequests[0].namespace=apps",
        "rbac.vaultTokenRequests[0].names={vault-a}",
        "rbac.vaultTokenRequests[1].namespace=apps",
        "rbac.vaultTokenRequests[1].names={vault-b,vault-a}",
        "rbac.vaultTokenRequests[2].namespace=ci",
    ];
    let token_rules = |objs: &[Value]| -> Vec<(String, Value)> {
        of_kind(objs, "Role")
            .into_iter()
            .flat_map(|r| {
                let ns = r["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                r["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|rule| {
                        rule["resources"]
                            .as_array()
                            .is_some_and(|rs| rs.iter().any(|x| x == "serviceaccounts/token"))
                    })
                    .map(move |rule| (ns.clone(), rule.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let with = |providers: &str| {
        let mut sets = vec![format!("providers={{{providers}}}")];
        sets.extend(requests.iter().map(|s| s.to_string()));
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        render(&env, &sets)
    };

    let objs = with("postgresql,vault");
    let mut rules = token_rules(&objs);
    rules.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(rules.len(), 2, "one Role per namespace: {rules:?}");
    assert_eq!(rules[0].0, "apps");
    assert_eq!(rules[0].1["verbs"], json!(["create"]));
    assert_eq!(
        rules[0].1["resourceNames"],
        json!(["vault-a", "vault-b"]),
        "the listed ServiceAccounts of the namespace only"
    );
    assert_eq!(rules[1].0, "ci");
    assert!(
        rules[1].1.get("resourceNames").is_none(),
        "an entry without names: every ServiceAccount of its namespace"
    );
    let bindings = of_kind(&objs, "RoleBinding");
    for ns in ["apps", "ci"] {
        assert!(
            bindings.iter().any(|b| b["metadata"]["namespace"] == ns
                && b["roleRef"]["name"] == "tessera-vault-token-requests"
                && b["subjects"][0]["name"] == "tessera"),
            "the Role of {ns} is bound to the chart's ServiceAccount"
        );
    }
    // Nothing cluster-wide grants tokens (no core-group rule for them or for everything).
    for role in of_kind(&objs, "ClusterRole") {
        for rule in role["rules"].as_array().into_iter().flatten() {
            let has = |key: &str, want: &[&str]| {
                rule[key]
                    .as_array()
                    .is_some_and(|v| v.iter().any(|x| want.iter().any(|w| x == *w)))
            };
            assert!(
                !(has("apiGroups", &["", "*"])
                    && has("resources", &["serviceaccounts/token", "*"])),
                "{rule}"
            );
        }
    }
    assert!(
        token_rules(&with("postgresql,rds,harbor")).is_empty(),
        "no TokenRequests without the Vault provider"
    );
    assert!(
        token_rules(&render(&env, &[])).is_empty(),
        "none by default"
    );
}

/// Writes the YAML documents into a file and runs `kubectl apply --dry-run=server` on it.
fn dry_run_apply(env: &TestEnv, objs: &[&Value]) {
    let path = std::env::temp_dir().join(format!("{}.yaml", unique("chart-render")));
    let text: String = objs
        .iter()
        .map(|o| format!("---\n{}", serde_yaml::to_string(o).unwrap()))
        .collect();
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env.get("KUBECTL"))
        .args(["--kubeconfig", env.get("KUBECONFIG")])
        .args(["--cache-dir", env.get("KUBECACHEDIR")])
        .args([
            "apply",
            "--dry-run=server",
            "--server-side",
            "--force-conflicts",
            "-f",
        ])
        .arg(&path)
        .output()
        .expect("run kubectl");
    ok(out, "kubectl apply --dry-run=server");
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn the_apiserver_accepts_the_chart_and_helm_installs_upgrades_and_uninstalls_it() {
    let env = TestEnv::load();
    let admin = env.kube().await;
    let ns = namespace(&admin, &unique("chart")).await;
    // Every object of the default and of a non-default rendering (ServiceMonitor aside:
    // the test cluster has no Prometheus Operator CRDs), in its release namespace.
    for sets in [
        vec![],
        vec![
            "shards={a,b}",
            "providers={postgresql}",
            "gitopsHealth.enabled=true",
            "rbac.secretNamespaces={default}",
        ],
    ] {
        let objs: Vec<Value> = render(&env, &sets)
            .into_iter()
            .map(|mut o| {
                if o["metadata"]["namespace"] == "tessera-system" {
                    o["metadata"]["namespace"] = json!(ns);
                }
                o
            })
            .collect();
        let accepted: Vec<&Value> = objs
            .iter()
            .filter(|o| o["kind"] != "ServiceMonitor")
            .collect();
        dry_run_apply(&env, &accepted);
    }

    // install (CRDs are the test suite's already), upgrade to shards, uninstall.
    let release = unique("rel");
    let chart = chart_dir();
    let chart = chart.to_str().unwrap();
    ok(
        helm(
            &env,
            &[
                "install",
                &release,
                chart,
                "-n",
                &ns,
                "--set",
                "installCRDs=false",
                "--wait=false",
            ],
        ),
        "helm install",
    );
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &ns);
    let main_name = format!("{release}-tessera");
    let main = deployments
        .get(&main_name)
        .await
        .expect("the main Deployment");
    assert_eq!(main.spec.and_then(|s| s.replicas), Some(2));
    ok(
        helm(
            &env,
            &[
                "upgrade",
                &release,
                chart,
                "-n",
                &ns,
                "--reuse-values",
                "--set",
                "shards={a}",
            ],
        ),
        "helm upgrade",
    );
    let shard = deployments
        .get(&format!("{main_name}-shard-a"))
        .await
        .expect("the shard's Deployment after the upgrade");
    let args = shard.spec.unwrap().template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    assert!(
        args.contains(&"--shard=shard.tessera.dev/key in (a)".to_string()),
        "{args:?}"
    );
    ok(
        helm(&env, &["uninstall", &release, "-n", &ns, "--wait"]),
        "helm uninstall",
    );
    for name in [main_name.clone(), format!("{main_name}-shard-a")] {
        wait_for(Duration::from_secs(30), || async {
            deployments
                .get_opt(&name)
                .await
                .ok()?
                .is_none()
                .then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("Deployment {name} still there after uninstall: {e}"));
    }
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(admin.clone());
    assert!(
        roles.get_opt(&main_name).await.unwrap().is_none(),
        "the ClusterRole is gone"
    );
}

/// A kubeconfig for the test cluster that authenticates with `token` (the admin's cluster
/// entry, a token user).
fn token_kubeconfig(env: &TestEnv, token: &str) -> PathBuf {
    let admin: Value = serde_yaml::from_str(
        &std::fs::read_to_string(env.get("KUBECONFIG")).expect("read the admin kubeconfig"),
    )
    .expect("kubeconfig YAML");
    let cluster = admin["clusters"][0].clone();
    let kc = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [cluster],
        "users": [{ "name": "tessera", "user": { "token": token } }],
        "contexts": [{ "name": "tessera", "context": {
            "cluster": cluster["name"], "user": "tessera" } }],
        "current-context": "tessera",
    });
    let path = std::env::temp_dir().join(format!("{}.kubeconfig", unique("tessera-sa")));
    std::fs::write(&path, serde_yaml::to_string(&kc).unwrap()).unwrap();
    path
}

/// What SubjectAccessReview says the ServiceAccount may do.
async fn allowed(
    admin: &Client,
    user: &str,
    sa_ns: &str,
    attrs: (&str, &str, &str, &str, &str),
) -> bool {
    allowed_named(admin, user, sa_ns, attrs, None).await
}

/// [`allowed`], for the object `name`.
async fn allowed_named(
    admin: &Client,
    user: &str,
    sa_ns: &str,
    (verb, group, resource, sub, ns): (&str, &str, &str, &str, &str),
    name: Option<&str>,
) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_string()),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{sa_ns}"),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource: (!sub.is_empty()).then(|| sub.to_string()),
                namespace: (!ns.is_empty()).then(|| ns.to_string()),
                name: name.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<SubjectAccessReview>::all(admin.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview")
        .status
        .expect("status")
        .allowed
}

/// The controller's peak resident memory (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// A helm release of the chart, uninstalled when dropped (also when the test fails).
struct Release<'a> {
    env: &'a TestEnv,
    name: String,
    namespace: String,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        let _ = helm(self.env, &["uninstall", &self.name, "-n", &self.namespace]);
    }
}

struct Controller(std::process::Child, PathBuf);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_charts_service_account_runs_a_postgresql_claim_and_may_do_nothing_more() {
    let env = TestEnv::load();
    let admin = env.kube().await;
    install_crds(&admin).await.expect("install CRDs");
    install_postgres_platform(&env, &admin).await;
    let release_ns = namespace(&admin, &unique("tessera-rbac")).await;
    let claim_ns = namespace(&admin, &unique("app")).await;
    // The ServiceAccount a Vault ProviderConfig logs in as (Kubernetes auth with a token
    // the controller requests for it), beside one it may not request tokens for.
    let vault_sa_ns = namespace(&admin, &unique("vault-sa")).await;
    service_account_token(&admin, &vault_sa_ns, PROVIDER_SA).await;
    let auth = kubernetes_auth(&env, &admin, &vault_sa_ns).await;
    let release = unique("rbac");
    let chart = chart_dir();
    // The chart's RBAC, with Secrets bound where this platform keeps them: the
    // ProviderConfig's and composed Roles' namespace, and the application's; TokenRequests
    // for the Vault login's ServiceAccount only.
    let secret_namespaces = format!("rbac.secretNamespaces={{tessera-system,{claim_ns}}}");
    let token_ns = format!("rbac.vaultTokenRequests[0].namespace={vault_sa_ns}");
    let token_names = format!("rbac.vaultTokenRequests[0].names={{{PROVIDER_SA}}}");
    let sets = [
        "installCRDs=false",
        "providers={postgresql,vault}",
        &secret_namespaces,
        &token_ns,
        &token_names,
    ];
    let mut install = vec![
        "install",
        &release,
        chart.to_str().unwrap(),
        "-n",
        &release_ns,
    ];
    for s in &sets {
        install.extend(["--set", s]);
    }
    ok(helm(&env, &install), "helm install");
    let installed = Release {
        env: &env,
        name: release.clone(),
        namespace: release_ns.clone(),
    };
    let objs = render(&env, &sets[1..]);
    let chart_args = args_of(of_kind(&objs, "Deployment")[0]);
    let sa = format!("{release}-tessera");
    let user = format!("system:serviceaccount:{release_ns}:{sa}");
    let token = service_account_token(&admin, &release_ns, &sa).await;
    let kubeconfig = token_kubeconfig(&env, &token);

    // The controller, started with the chart's arguments (leader election included),
    // the ServiceAccount's token instead of the admin's, a short poll interval, and the
    // metrics server on a free loopback port.
    let log = std::env::temp_dir().join(format!("{}.log", unique("tessera-sa-controller")));
    let out = std::fs::File::create(&log).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut args: Vec<String> = chart_args
        .iter()
        .filter(|a| !a.starts_with("--poll-interval=") && !a.starts_with("--metrics-addr="))
        .cloned()
        .collect();
    assert!(
        args.contains(&"--leader-elect".to_string()),
        "{chart_args:?}"
    );
    args.extend([
        "--poll-interval=5".into(),
        "--max-backoff=5".into(),
        format!("--metrics-addr=127.0.0.1:{port}"),
    ]);
    let child = Command::new(tessera_bin())
        .args(&args)
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAMESPACE", &release_ns)
        .env("POD_NAME", "tessera-test-0")
        .env("RUST_LOG", "info")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("spawn tessera controller");
    let controller = Controller(child, log.clone());
    let sa_client = env.kube_from(kubeconfig.to_str().unwrap()).await;

    // It takes the Lease in the release namespace (the chart's Role allows no other) and
    // answers the liveness probe's endpoint.
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(admin.clone(), &release_ns);
    let held = wait_for(Duration::from_secs(60), || async {
        let lease = leases.get_opt("tessera").await.ok()??;
        lease
            .spec?
            .holder_identity
            .filter(|h| h.contains("tessera-test-0"))
    })
    .await;
    if let Err(e) = held {
        let log_text = std::fs::read_to_string(&controller.1).unwrap_or_default();
        panic!("the controller holds no Lease: {e}; controller log:\n{log_text}");
    }
    let livez = format!("http://127.0.0.1:{port}/livez");
    wait_for(Duration::from_secs(60), || async {
        let r = reqwest::get(&livez).await.ok()?;
        r.status().is_success().then_some(())
    })
    .await
    .expect("/livez answers 200");

    // On a fresh cluster the claim CRD is the controller's to create, from the XRD.
    if let Err(e) = wait_crd_established(&admin, "postgresdatabases.platform.tessera.dev").await {
        let log_text = std::fs::read_to_string(&controller.1).unwrap_or_default();
        panic!("the XRD's claim CRD is not served: {e}; controller log:\n{log_text}");
    }
    let mut claim = yaml_docs("compositions/postgres/example-claim.yaml").remove(0);
    let name = "rbac-db";
    claim["metadata"]["namespace"] = json!(claim_ns);
    claim["metadata"]["name"] = json!(name);
    claim["spec"]["writeConnectionSecretToRef"]["name"] = json!(format!("{name}-conn"));
    apply(&admin, claim).await;
    let ready = wait_for(Duration::from_secs(120), || async {
        let claim = get_in(&admin, CLAIM_API, CLAIM_KIND, &claim_ns, name).await?;
        condition(&claim, "Ready")
            .is_some_and(|c| c.is_true())
            .then_some(())
    })
    .await;
    let log_text = std::fs::read_to_string(&controller.1).unwrap_or_default();
    assert!(
        ready.is_ok(),
        "the claim became Ready through the ServiceAccount's controller; its log:\n{log_text}"
    );

    // A Vault Policy through a ProviderConfig that logs in with a token the controller
    // requests (TokenRequest) for the listed ServiceAccount.
    let role = unique("chart-provider");
    auth.role(&env, &role, 600, 1200, None).await;
    let pc = unique("chart-k8s-auth");
    apply(
        &admin,
        json!({
            "apiVersion": VAULT_API, "kind": "ProviderConfig",
            "metadata": { "name": &pc },
            "spec": {
                "address": env.get("VAULT_ADDR"),
                "credentials": { "source": "KubernetesAuth" },
                "kubernetesAuth": {
                    "mountPath": auth.mount,
                    "role": role,
                    "serviceAccountRef": { "name": PROVIDER_SA, "namespace": &vault_sa_ns }
                }
            }
        }),
    )
    .await;
    let policy = unique("chart-policy");
    apply(
        &admin,
        json!({
            "apiVersion": VAULT_API, "kind": "Policy",
            "metadata": { "name": &policy },
            "spec": { "providerConfigRef": { "name": &pc },
                "forProvider": { "rules": [{ "paths": [format!("secret/data/{policy}/*")], "capabilities": ["read"] }] } }
        }),
    )
    .await;
    wait_ready(&admin, VAULT_API, "Policy", &policy).await;
    let rules = vaultrs::sys::policy::read(&env.vault(), &policy)
        .await
        .expect("the Policy is in Vault")
        .rules;
    assert!(
        rules.contains(&format!("secret/data/{policy}/*")),
        "{rules}"
    );

    let log_text = std::fs::read_to_string(&controller.1).unwrap_or_default();
    assert!(
        !log_text.contains("forbidden") && !log_text.contains("Forbidden"),
        "no request of the controller was forbidden:\n{log_text}"
    );
    let secret = secret_data(&admin, &claim_ns, &format!("{name}-conn"))
        .await
        .expect("the connection Secret");
    env.postgres_url(&secret["url"]).await;
    if let Some(kib) = peak_rss_kib(controller.0.id()) {
        println!(
            "controller peak RSS during the PostgreSQL claim (PostgreSQL and Vault providers): {} MiB",
            kib / 1024
        );
    }

    // Least: what it must not be able to do (RBAC).
    let (claim_ns, release_ns) = (claim_ns.as_str(), release_ns.as_str());
    let denied = [
        ("get", "", "secrets", "", "kube-system"),
        ("list", "", "secrets", "", "kube-system"),
        ("list", "", "secrets", "", ""),
        ("create", "", "pods", "exec", claim_ns),
        ("create", "", "pods", "", claim_ns),
        (
            "escalate",
            "rbac.authorization.k8s.io",
            "clusterroles",
            "",
            "",
        ),
        ("bind", "rbac.authorization.k8s.io", "clusterroles", "", ""),
        (
            "create",
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            "",
            "",
        ),
        ("impersonate", "", "users", "", ""),
        ("create", "", "serviceaccounts", "token", release_ns),
        ("delete", "", "namespaces", "", ""),
        ("get", "", "nodes", "", ""),
        ("update", "coordination.k8s.io", "leases", "", "kube-system"),
        ("create", "apps", "deployments", "", claim_ns),
        (
            "create",
            "admissionregistration.k8s.io",
            "validatingadmissionpolicies",
            "",
            "",
        ),
        (
            "delete",
            "admissionregistration.k8s.io",
            "validatingadmissionpolicybindings",
            "",
            "",
        ),
        (
            "update",
            "apiextensions.tessera.dev",
            "compositions",
            "status",
            "",
        ),
        (
            "delete",
            "apiextensions.tessera.dev",
            "compositions",
            "",
            "",
        ),
    ];
    for attrs in denied {
        assert!(
            !allowed(&admin, &user, release_ns, attrs).await,
            "allowed: {attrs:?}"
        );
    }
    // ... and what it needs is granted (the reviews above are not denying everything).
    let granted = [
        ("get", "", "secrets", "", "tessera-system"),
        ("patch", "", "secrets", "", claim_ns),
        ("update", "coordination.k8s.io", "leases", "", release_ns),
        ("patch", "postgresql.sql.tessera.dev", "roles", "status", ""),
        ("create", "events.k8s.io", "events", "", claim_ns),
        ("patch", "vault.tessera.dev", "policies", "status", ""),
        ("get", "", "configmaps", "", claim_ns),
    ];
    for attrs in granted {
        assert!(
            allowed(&admin, &user, release_ns, attrs).await,
            "denied: {attrs:?}"
        );
    }
    // TokenRequests: for the listed ServiceAccount only.
    let token = (
        "create",
        "",
        "serviceaccounts",
        "token",
        vault_sa_ns.as_str(),
    );
    assert!(allowed_named(&admin, &user, release_ns, token, Some(PROVIDER_SA)).await);
    for (ns, name) in [
        (vault_sa_ns.as_str(), "vault-reviewer"),
        (vault_sa_ns.as_str(), "default"),
        ("kube-system", "default"),
        (release_ns, sa.as_str()),
    ] {
        let attrs = ("create", "", "serviceaccounts", "token", ns);
        assert!(
            !allowed_named(&admin, &user, release_ns, attrs, Some(name)).await,
            "allowed: a token for {ns}/{name}"
        );
    }

    // Least: what RBAC cannot narrow, the admission policies refuse. A CRD that no XRD
    // generated, even in an allowed group; a generated-looking CRD outside
    // compositeGroups; changing or deleting a CRD it did not generate; writing a Secret
    // it does not own.
    let crds: Api<CustomResourceDefinition> = Api::all(sa_client.clone());
    let foreign_group = format!("{}.example.org", unique("x").replace('-', ""));
    let crd = |group: &str, annotated: bool| -> CustomResourceDefinition {
        let mut c = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": { "name": format!("widgets.{group}") },
            "spec": { "group": group, "scope": "Namespaced",
                "names": { "plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList" },
                "versions": [{ "name": "v1", "served": true, "storage": true,
                    "schema": { "openAPIV3Schema": { "type": "object",
                        "x-kubernetes-preserve-unknown-fields": true } } }] }
        });
        if annotated {
            c["metadata"]["annotations"] = json!({ "tessera.dev/xrd": "widgets" });
        }
        serde_json::from_value(c).unwrap()
    };
    let refused = |r: Result<CustomResourceDefinition, kube::Error>, what: &str, msg: &str| match r
    {
        Err(kube::Error::Api(s)) => assert!(s.message.contains(msg), "{what}: {}", s.message),
        other => panic!("{what} was not refused: {other:?}"),
    };
    refused(
        crds.create(&PostParams::default(), &crd("platform.tessera.dev", false))
            .await,
        "creating a CRD no XRD generated",
        "only CRDs it generates from an XRD",
    );
    refused(
        crds.create(&PostParams::default(), &crd(&foreign_group, true))
            .await,
        "creating a CRD outside compositeGroups",
        "only in the groups of the chart value compositeGroups",
    );
    let admin_crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let theirs = crd(&foreign_group, false);
    admin_crds
        .create(&PostParams::default(), &theirs)
        .await
        .expect("admin creates a CRD");
    let theirs_name = format!("widgets.{foreign_group}");
    match crds.delete(&theirs_name, &DeleteParams::default()).await {
        Err(kube::Error::Api(s)) => assert!(
            s.message.contains("only CRDs it generated"),
            "{}",
            s.message
        ),
        other => panic!("deleting a CRD it did not generate was not refused: {other:?}"),
    }
    match crds
        .delete("roles.postgresql.sql.tessera.dev", &DeleteParams::default())
        .await
    {
        Err(kube::Error::Api(_)) => {}
        other => panic!("deleting a provider's CRD was not refused: {other:?}"),
    }
    admin_crds
        .delete(&theirs_name, &DeleteParams::default())
        .await
        .expect("clean up");

    let foreign = format!("{}-secret", unique("foreign"));
    apply(
        &admin,
        json!({ "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": &foreign, "namespace": &claim_ns },
            "stringData": { "token": "not-tessera's" } }),
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(sa_client.clone(), claim_ns);
    // Writing into it is refused, and so is taking it over by adding Tessera's label.
    for (labels, message) in [
        (json!({}), "may write only Secrets it owns"),
        (
            json!({ "app.kubernetes.io/managed-by": "tessera" }),
            "may not change or delete a Secret it did not create",
        ),
    ] {
        let patch = json!({ "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": &foreign, "namespace": &claim_ns, "labels": labels },
            "stringData": { "token": "overwritten" } });
        match secrets
            .patch(
                &foreign,
                &PatchParams::apply("tessera").force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            Err(kube::Error::Api(s)) => assert!(s.message.contains(message), "{}", s.message),
            other => panic!("overwriting a Secret it does not own was not refused: {other:?}"),
        }
    }
    match secrets.delete(&foreign, &DeleteParams::default()).await {
        Err(kube::Error::Api(_)) => {}
        other => panic!("deleting a Secret it does not own was not refused: {other:?}"),
    }

    // Deleting the claim works through the same account. The Secrets of the claim's tree
    // go with it (the garbage collector deletes them after their owners): waited for, so
    // their deletions do not land in a later test's count of the cluster's writes.
    let owned = owned_secrets(&admin, &[claim_ns, "tessera-system"]).await;
    assert!(!owned.is_empty(), "the claim's tree owns Secrets");
    delete_in(&admin, CLAIM_API, CLAIM_KIND, claim_ns, name).await;
    wait_for(Duration::from_secs(90), || async {
        get_in(&admin, CLAIM_API, CLAIM_KIND, claim_ns, name)
            .await
            .is_none()
            .then_some(())
    })
    .await
    .unwrap_or_else(|e| {
        let log_text = std::fs::read_to_string(&controller.1).unwrap_or_default();
        panic!("the claim was not deleted: {e}; controller log:\n{log_text}")
    });
    wait_for(Duration::from_secs(90), || async {
        let left = owned_secrets(&admin, &[claim_ns, "tessera-system"]).await;
        owned.iter().all(|o| !left.contains(o)).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("the claim's Secrets {owned:?} were not deleted: {e}"));
    delete(&admin, VAULT_API, "Policy", &policy).await;
    wait_gone(&admin, VAULT_API, "Policy", &policy).await;
    delete(&admin, VAULT_API, "ProviderConfig", &pc).await;
    wait_gone(&admin, VAULT_API, "ProviderConfig", &pc).await;
    drop(controller);

    // Without the Vault provider, no TokenRequests at all.
    ok(
        helm(
            &env,
            &[
                "upgrade",
                &release,
                chart.to_str().unwrap(),
                "-n",
                release_ns,
                "--reuse-values",
                "--set",
                "providers={postgresql}",
            ],
        ),
        "helm upgrade",
    );
    assert!(
        !allowed_named(&admin, &user, release_ns, token, Some(PROVIDER_SA)).await,
        "a token for the listed ServiceAccount with the Vault provider disabled"
    );
    assert!(
        allowed(
            &admin,
            &user,
            release_ns,
            ("patch", "", "secrets", "", claim_ns)
        )
        .await,
        "the rest stays granted"
    );
    drop(installed);
    let _ = std::fs::remove_file(Path::new(&kubeconfig));
}

/// The Secrets of `namespaces` owned by one of the claim's tree (the claim, its composite
/// or a managed resource), as `namespace/name`.
async fn owned_secrets(admin: &Client, namespaces: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for ns in namespaces {
        let api: Api<Secret> = Api::namespaced(admin.clone(), ns);
        let list = api.list(&Default::default()).await.expect("list Secrets");
        for s in list.items {
            let ours = s.metadata.owner_references.iter().flatten().any(|o| {
                o.api_version.starts_with("platform.tessera.dev/")
                    || o.api_version.starts_with("postgresql.sql.tessera.dev/")
            });
            if ours {
                found.push(format!("{ns}/{}", s.metadata.name.unwrap_or_default()));
            }
        }
    }
    found
}
