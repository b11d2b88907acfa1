//! Crossplane v1.20 core + provider-nop, and core + provider-sql, as processes against the
//! same cluster, with the same claim counts as Tessera (bench/crossplane/build makes the
//! binaries).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use serde_json::json;

use crate::procs::{Procs, Spec};
use crate::{Comp, Scale, cluster, count_all};

const CLAIM_API: &str = "xp.bench.tessera.dev/v1alpha1";
const NOP_API: &str = "nop.crossplane.io/v1alpha1";
const SQL_API: &str = "postgresql.sql.crossplane.io/v1alpha1";

/// The claim kind of a composition and the kinds it composes, on Crossplane's side.
fn kinds(comp: Comp) -> (&'static str, &'static [(&'static str, &'static str)]) {
    match comp {
        Comp::Nop => ("NopBench", &[(NOP_API, "ClusterNopResource")]),
        Comp::Pg => (
            "PgBench",
            &[(SQL_API, "Role"), (SQL_API, "Database"), (SQL_API, "Grant")],
        ),
    }
}

/// Throwaway client TLS files, which Crossplane's core insists on loading (for functions
/// and external secret stores, neither used here).
fn tls_files(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    if dir.join("tls.key").exists() {
        return Ok(());
    }
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=bench",
        ])
        .arg("-keyout")
        .arg(dir.join("tls.key"))
        .arg("-out")
        .arg(dir.join("tls.crt"))
        .stderr(std::process::Stdio::null())
        .status()
        .context("run openssl")?;
    anyhow::ensure!(status.success(), "openssl failed");
    std::fs::copy(dir.join("tls.crt"), dir.join("ca.crt"))?;
    Ok(())
}

/// Applies every YAML file of `dir`, in name order.
async fn apply_dir(client: &kube::Client, dir: &Path) -> anyhow::Result<()> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    for f in files {
        cluster::apply_yaml(client, &std::fs::read_to_string(&f)?).await?;
    }
    Ok(())
}

/// provider-sql's connection to testenv's PostgreSQL: the admin credentials Secret and the
/// ProviderConfig `default` (TLS verified against testenv's CA, given to the provider as
/// PGSSLROOTCERT).
async fn sql_provider_config(client: &kube::Client, env: &cluster::TestEnv) -> anyhow::Result<()> {
    cluster::postgres_admin_secret(client, env, "crossplane-system").await?;
    cluster::apply(
        client,
        &json!({
            "apiVersion": SQL_API, "kind": "ProviderConfig",
            "metadata": { "name": "default" },
            "spec": {
                "sslMode": "verify-full",
                "credentials": {
                    "source": "PostgreSQLConnectionSecret",
                    "connectionSecretRef": { "namespace": "crossplane-system", "name": "postgres-admin" }
                }
            }
        }),
    )
    .await
}

/// Starts core + the composition's provider for each claim count, runs it, stops them.
/// The XRDs and Compositions are applied once the core runs (it serves the claim kinds).
pub async fn run(
    client: &kube::Client,
    env: &cluster::TestEnv,
    dir: &Path,
    runs: &[(Comp, &Vec<usize>)],
    poll_interval: u64,
    logs: &Path,
    on_result: &mut dyn FnMut(&Scale) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    apply_dir(client, &dir.join("crds")).await?;
    cluster::namespace(client, "crossplane-system").await?;
    let tls = logs.join("crossplane-tls");
    tls_files(&tls)?;
    let cache = logs.join("crossplane-cache");
    std::fs::create_dir_all(&cache)?;
    let kubeconfig = env.get("KUBECONFIG")?.to_string();
    // Ports of their own (testenv's end in 00, 32, 43, 57 and 80), shifted with testenv's.
    let offset: u16 = std::env::var("TESSERA_TESTENV_PORT_OFFSET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let poll = format!("{poll_interval}s");
    for &(comp, counts) in runs {
        let mut first = true;
        if comp == Comp::Pg && counts.iter().any(|n| *n > 0) {
            // provider-sql starts controllers for all its kinds: all its CRDs must exist.
            apply_dir(client, &dir.join("sql-crds")).await?;
            sql_provider_config(client, env).await?;
        }
        for &n in counts.iter().filter(|n| **n > 0) {
            let provider = match comp {
                Comp::Nop => Spec {
                    program: dir.join("provider-nop"),
                    args: vec![format!("--poll={poll}"), "--max-reconcile-rate=100".into()],
                    env: vec![
                        ("KUBECONFIG".into(), kubeconfig.clone()),
                        ("TLS_SERVER_CERTS_DIR".into(), tls.display().to_string()),
                    ],
                    log: logs.join(format!("provider-nop-{n}.log")),
                },
                Comp::Pg => Spec {
                    program: dir.join("provider-sql"),
                    args: vec![
                        format!("--poll={poll}"),
                        "--max-reconcile-rate=100".into(),
                        format!("--metrics-bind-address=127.0.0.1:{}", 24082 + offset),
                    ],
                    env: vec![
                        ("KUBECONFIG".into(), kubeconfig.clone()),
                        (
                            "PGSSLROOTCERT".into(),
                            env.get("POSTGRES_CA_FILE")?.to_string(),
                        ),
                    ],
                    log: logs.join(format!("provider-sql-{n}.log")),
                },
            };
            let procs = Procs::start(&[
                Spec {
                    program: dir.join("crossplane"),
                    args: vec![
                        "core".into(),
                        "start".into(),
                        format!("--cache-dir={}", cache.display()),
                        format!("--metrics-port={}", 24080 + offset),
                        format!("--health-probe-port={}", 24081 + offset),
                        format!("--webhook-port={}", 24083 + offset),
                        format!("--poll-interval={poll}"),
                    ],
                    env: vec![
                        ("KUBECONFIG".into(), kubeconfig.clone()),
                        ("ENABLE_WEBHOOKS".into(), "false".into()),
                        ("TLS_CLIENT_CERTS_DIR".into(), tls.display().to_string()),
                        ("TLS_SERVER_CERTS_DIR".into(), tls.display().to_string()),
                        ("POD_NAMESPACE".into(), "crossplane-system".into()),
                    ],
                    log: logs.join(format!("crossplane-{}-{n}.log", comp.key())),
                },
                provider,
            ])?;
            if first {
                let file = match comp {
                    Comp::Nop => "bench/crossplane/nop-composition.yaml",
                    Comp::Pg => "bench/crossplane/pg-composition.yaml",
                };
                let yaml = std::fs::read_to_string(file)
                    .with_context(|| format!("read {file} (run from the repository root)"))?;
                cluster::apply_yaml(client, &yaml).await?;
                first = false;
            }
            let result = scale(client, comp, n, procs, on_result).await;
            result?;
        }
    }
    Ok(())
}

async fn scale(
    client: &kube::Client,
    comp: Comp,
    n: usize,
    mut procs: Procs,
    on_result: &mut dyn FnMut(&Scale) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let (kind, managed) = kinds(comp);
    let ns = format!("bench-xp-{}-{n}", comp.key());
    cluster::namespace(client, &ns).await?;
    // The claim kind is served once the core has established the XRD.
    let deadline = Instant::now() + Duration::from_secs(180);
    let claim = |name: &str| {
        json!({"apiVersion": CLAIM_API, "kind": kind,
            "metadata": {"name": name, "namespace": ns},
            "spec": {"writeConnectionSecretToRef": {"name": name}}})
    };
    let probe = claim("probe");
    while cluster::apply(client, &probe).await.is_err() {
        anyhow::ensure!(procs.alive(), "Crossplane exited (see its log)");
        anyhow::ensure!(
            Instant::now() < deadline,
            "Crossplane never served the {kind} claim kind"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let ready = cluster::ReadyClock::watch(client, CLAIM_API, kind, &ns);
    ready
        .wait(1, Duration::from_secs(300))
        .await
        .context("the probe claim never became Ready")?;
    let before = cluster::requests(client).await?;
    let cpu_before = procs.cpu_seconds();
    let start = Instant::now();
    let applies = futures::stream::iter(0..n)
        .map(|i| {
            let c = claim(&format!("c{i}"));
            async move { cluster::apply(client, &c).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    for a in applies {
        a?;
    }
    let apply_s = start.elapsed().as_secs_f64();
    ready.wait(n + 1, Duration::from_secs(3600)).await?;
    let all_ready_s = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = cluster::requests(client).await?;
    anyhow::ensure!(
        procs.alive(),
        "Crossplane exited during the run (see its log)"
    );
    let mut ready_curve: Vec<f64> = ready
        .times()
        .into_iter()
        .filter(|(name, _)| name != "probe")
        .map(|(_, t)| t.duration_since(start).as_secs_f64())
        .collect();
    ready_curve.sort_by(f64::total_cmp);
    let mut result = Scale {
        system: "Crossplane".into(),
        comp,
        claims: n,
        apply_s,
        all_ready_s,
        peak_mib: procs.peak_mib(),
        cpu_s: procs.cpu_seconds() - cpu_before,
        requests: cluster::delta(&before, &after),
        ready_curve,
        external_calls: 0,
        // Without the probe claim's three resources.
        managed: count_all(client, managed).await?.saturating_sub(3),
        stuck_deletes: 0,
    };
    eprintln!("{result:?}");
    // Saved before the deletes, which may take long, and again with what they left.
    on_result(&result)?;
    result.stuck_deletes = delete(client, comp, kind, &ns, managed).await?;
    procs.stop().await;
    on_result(&result)
}

/// Deletes the run's claims and waits until their resources are gone. provider-sql cannot
/// delete a Grant whose database Crossplane dropped first (it connects to that database
/// to revoke: `database ... does not exist`), and Crossplane v1 deletes a composite's
/// resources all at once, so such Grants stay forever: once the roles and databases are
/// gone, Grants left after a minute are counted and released (finalizers removed; their
/// privileges went with the database). Returns how many were released.
async fn delete(
    client: &kube::Client,
    comp: Comp,
    kind: &str,
    ns: &str,
    managed: &[(&str, &str)],
) -> anyhow::Result<usize> {
    let (must_go, grants): (Vec<_>, Vec<_>) = managed
        .iter()
        .copied()
        .partition(|(_, k)| comp != Comp::Pg || *k != "Grant");
    let took = cluster::delete_all_and_wait(
        client,
        CLAIM_API,
        kind,
        ns,
        &must_go,
        Duration::from_secs(3600),
    )
    .await?;
    eprintln!("Crossplane: deleted the {kind} claims of {ns} in {took:?}");
    let mut released = 0;
    for (api, k) in grants {
        let deadline = Instant::now() + Duration::from_secs(60);
        while cluster::count(client, api, k).await? > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        released += cluster::release_all(client, api, k).await?;
    }
    if released > 0 {
        eprintln!(
            "Crossplane: {released} Grants could not be deleted (database dropped first); released them"
        );
    }
    Ok(released)
}
