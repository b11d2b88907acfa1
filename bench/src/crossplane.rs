//! Crossplane v1.20 core + provider-nop, as processes against the same cluster, with the
//! same claim counts as Tessera (bench/crossplane/build makes the binaries).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use serde_json::json;

use crate::procs::{Procs, Spec};
use crate::{Scale, cluster};

const CLAIM_API: &str = "xp.bench.tessera.dev/v1alpha1";
const NOP_API: &str = "nop.crossplane.io/v1alpha1";

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

/// Installs Crossplane's and provider-nop's CRDs and the benchmark's XRD and Composition.
async fn install(client: &kube::Client, dir: &Path) -> anyhow::Result<()> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("crds"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    for f in files {
        cluster::apply_yaml(client, &std::fs::read_to_string(&f)?).await?;
    }
    cluster::namespace(client, "crossplane-system").await?;
    Ok(())
}

/// Starts core + provider, runs each claim count, stops them. The XRD and Composition are
/// applied once the core runs (it serves the claim kind).
pub async fn run(
    client: &kube::Client,
    env: &cluster::TestEnv,
    dir: &Path,
    counts: &[usize],
    logs: &Path,
) -> anyhow::Result<Vec<Scale>> {
    install(client, dir).await?;
    let tls = logs.join("crossplane-tls");
    tls_files(&tls)?;
    let cache = logs.join("crossplane-cache");
    std::fs::create_dir_all(&cache)?;
    let kubeconfig = env.get("KUBECONFIG")?.to_string();
    // Ports next to testenv's, shifted with them.
    let offset: u16 = std::env::var("TESSERA_TESTENV_PORT_OFFSET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut out = Vec::new();
    let mut first = true;
    for &n in counts {
        let procs = Procs::start(&[
            Spec {
                program: dir.join("crossplane"),
                args: vec![
                    "core".into(),
                    "start".into(),
                    format!("--cache-dir={}", cache.display()),
                    format!("--metrics-port={}", 19080 + offset),
                    format!("--health-probe-port={}", 19081 + offset),
                    format!("--webhook-port={}", 19443 + offset),
                    "--poll-interval=60s".into(),
                ],
                env: vec![
                    ("KUBECONFIG".into(), kubeconfig.clone()),
                    ("ENABLE_WEBHOOKS".into(), "false".into()),
                    ("TLS_CLIENT_CERTS_DIR".into(), tls.display().to_string()),
                    ("TLS_SERVER_CERTS_DIR".into(), tls.display().to_string()),
                    ("POD_NAMESPACE".into(), "crossplane-system".into()),
                ],
                log: logs.join(format!("crossplane-{n}.log")),
            },
            Spec {
                program: dir.join("provider-nop"),
                args: vec!["--poll=60s".into(), "--max-reconcile-rate=100".into()],
                env: vec![
                    ("KUBECONFIG".into(), kubeconfig.clone()),
                    ("TLS_SERVER_CERTS_DIR".into(), tls.display().to_string()),
                ],
                log: logs.join(format!("provider-nop-{n}.log")),
            },
        ])?;
        if first {
            let yaml = std::fs::read_to_string("bench/crossplane/nop-composition.yaml").context(
                "read bench/crossplane/nop-composition.yaml (run from the repository root)",
            )?;
            cluster::apply_yaml(client, &yaml).await?;
            first = false;
        }
        let result = scale(client, n, procs).await;
        out.push(result?);
    }
    Ok(out)
}

async fn scale(client: &kube::Client, n: usize, mut procs: Procs) -> anyhow::Result<Scale> {
    let ns = format!("bench-xp-{n}");
    cluster::namespace(client, &ns).await?;
    // The claim kind is served once the core has established the XRD.
    let deadline = Instant::now() + Duration::from_secs(180);
    let probe = json!({"apiVersion": CLAIM_API, "kind": "NopBench",
        "metadata": {"name": "probe", "namespace": ns}, "spec": {}});
    while cluster::apply(client, &probe).await.is_err() {
        anyhow::ensure!(procs.alive(), "Crossplane exited (see its log)");
        anyhow::ensure!(
            Instant::now() < deadline,
            "Crossplane never served the NopBench claim kind"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let ready = cluster::ReadyClock::watch(client, CLAIM_API, "NopBench", &ns);
    ready
        .wait(1, Duration::from_secs(180))
        .await
        .context("the probe claim never became Ready")?;
    let before = cluster::requests(client).await?;
    let cpu_before = procs.cpu_seconds();
    let start = Instant::now();
    let applies = futures::stream::iter(0..n)
        .map(|i| {
            let claim = json!({"apiVersion": CLAIM_API, "kind": "NopBench",
                "metadata": {"name": format!("c{i}"), "namespace": ns},
                "spec": {"writeConnectionSecretToRef": {"name": format!("c{i}")}}});
            async move { cluster::apply(client, &claim).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    for a in applies {
        a?;
    }
    let apply_s = start.elapsed().as_secs_f64();
    ready.wait(n + 1, Duration::from_secs(1800)).await?;
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
    let managed = cluster::count(client, NOP_API, "ClusterNopResource").await?;
    let result = Scale {
        system: "Crossplane".into(),
        claims: n,
        apply_s,
        all_ready_s,
        peak_mib: procs.peak_mib(),
        cpu_s: procs.cpu_seconds() - cpu_before,
        requests: cluster::delta(&before, &after),
        ready_curve,
        external_calls: 0,
        managed,
    };
    eprintln!("{result:?}");
    let took = cluster::delete_all_and_wait(
        client,
        CLAIM_API,
        "NopBench",
        &ns,
        &[(NOP_API, "ClusterNopResource")],
        Duration::from_secs(1800),
    )
    .await?;
    eprintln!("Crossplane: deleted {n} claims in {took:?}");
    procs.stop().await;
    Ok(result)
}
