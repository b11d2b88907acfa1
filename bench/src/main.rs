//! `tessera-bench`: Tessera's benchmarks against testenv, and Crossplane side by side.
//!
//! Never part of the test suite. It starts the controllers as processes (release builds),
//! applies claims, and writes BENCHMARKS.md with its tables and SVG plots:
//!
//! 1. claim -> connection Secret latency, one claim at a time (PostgreSQL and nop);
//! 2. N nop claims (3 NopResources each) applied at once: time until all are Ready,
//!    controller peak RSS and CPU seconds, API server requests per claim by verb and
//!    resource, external calls per managed resource;
//! 3. steady state with `--steady-claims` N (1,000): writes, reads, external calls per poll, CPU;
//! 4. N PostgresDatabase claims (Role, Database, Grant on testenv's PostgreSQL) applied at
//!    once, the same figures;
//! 5. the same runs with Crossplane + provider-nop and Crossplane + provider-sql
//!    (bench/crossplane/build), when given.
#![forbid(unsafe_code)]

mod cluster;
mod crossplane;
mod plot;
mod procs;
mod report;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

use cluster::{Requests, TestEnv};
use procs::{Procs, Spec};

/// Benchmarks of Tessera (and Crossplane) against the servers of testenv/up.
#[derive(Parser, Clone)]
struct Args {
    /// The tessera binary (a release build with the `nop` feature).
    #[arg(long, default_value = "target/release/tessera")]
    tessera: PathBuf,
    /// Claims per scale run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    claims: Vec<usize>,
    /// PostgresDatabase claims per PostgreSQL scale run, comma-separated (0: none).
    #[arg(long, value_delimiter = ',', default_value = "100")]
    pg_claims: Vec<usize>,
    /// Claims of each latency run.
    #[arg(long, default_value_t = 200)]
    latency_claims: usize,
    /// The nop scale run followed by the steady-state window (the largest when it is not
    /// one of `--claims`).
    #[arg(long, default_value_t = 1000)]
    steady_claims: usize,
    /// Length of the steady-state window, in seconds.
    #[arg(long, default_value_t = 120)]
    steady_seconds: u64,
    /// The controllers' poll interval, in seconds.
    #[arg(long, default_value_t = 60)]
    poll_interval: u64,
    /// The directory of bench/crossplane/build's binaries (crossplane, provider-nop) and
    /// CRDs; without it Crossplane is not measured.
    #[arg(long)]
    crossplane: Option<PathBuf>,
    /// Where BENCHMARKS.md and the plots go.
    #[arg(long, default_value = "bench")]
    out: PathBuf,
    /// The command line to print in BENCHMARKS.md (default: this one).
    #[arg(long)]
    command: Option<String>,
    /// Skip the latency runs.
    #[arg(long)]
    no_latency: bool,
    /// The systems to measure: `tessera`, `crossplane` (needs `--crossplane`), or both.
    #[arg(long, value_delimiter = ',', default_value = "tessera,crossplane")]
    systems: Vec<String>,
    /// Only write BENCHMARKS.md and the plots again from OUT/results.json (no cluster).
    #[arg(long)]
    report_only: bool,
    /// Start from the figures of earlier runs (OUT/results.json) and replace only what this
    /// run measures: e.g. Crossplane in one run and Tessera in another, one report.
    #[arg(long)]
    add: bool,
}

/// One scale run's figures.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Scale {
    pub system: String,
    pub comp: Comp,
    pub claims: usize,
    pub apply_s: f64,
    pub all_ready_s: f64,
    pub peak_mib: f64,
    pub cpu_s: f64,
    pub requests: Requests,
    /// Seconds after the first apply at which each claim was Ready, sorted.
    pub ready_curve: Vec<f64>,
    pub external_calls: usize,
    pub managed: usize,
    /// Composed resources the system could not delete after the run (released by the
    /// bench).
    #[serde(default)]
    pub stuck_deletes: usize,
}

/// The compositions of the scale runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Comp {
    /// Three nop resources (NopResource; Crossplane: ClusterNopResource).
    #[default]
    Nop,
    /// A role, a database it owns and a grant on testenv's PostgreSQL.
    Pg,
}

impl Comp {
    /// Short name, for namespaces and log files.
    pub fn key(self) -> &'static str {
        match self {
            Comp::Nop => "nop",
            Comp::Pg => "pg",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Comp::Nop => "nop (3 nop resources)",
            Comp::Pg => "PostgreSQL (Role, Database, Grant)",
        }
    }

    /// Tessera's claim kind and the kinds it composes.
    fn tessera_kinds(
        self,
    ) -> (
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
    ) {
        match self {
            Comp::Nop => (NOP_CLAIM_API, "NopBench", &[(NOP_API, "NopResource")]),
            Comp::Pg => (
                PG_CLAIM_API,
                "PostgresDatabase",
                &[(PG_API, "Role"), (PG_API, "Database"), (PG_API, "Grant")],
            ),
        }
    }

    fn claim(self, ns: &str, name: &str) -> serde_json::Value {
        match self {
            Comp::Nop => nop_claim(ns, name),
            Comp::Pg => pg_claim(ns, name),
        }
    }
}

/// How many objects of these kinds exist.
pub async fn count_all(client: &kube::Client, kinds: &[(&str, &str)]) -> anyhow::Result<usize> {
    let mut n = 0;
    for (api, kind) in kinds {
        n += cluster::count(client, api, kind).await?;
    }
    Ok(n)
}

/// Latencies of one composition, in milliseconds, sorted.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Latency {
    pub composition: String,
    pub ms: Vec<f64>,
}

/// The steady state window's figures.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Steady {
    pub claims: usize,
    pub managed: usize,
    pub seconds: f64,
    pub poll_interval: u64,
    pub requests: Requests,
    pub cpu_s: f64,
    pub observes: usize,
    pub rss_mib: f64,
}

/// Everything measured, for the report.
#[derive(Default, Serialize, Deserialize)]
pub struct Results {
    /// The command lines whose figures these are, with their settings.
    pub commands: Vec<(String, String)>,
    pub latency: Vec<Latency>,
    pub scale: Vec<Scale>,
    pub steady: Option<Steady>,
    pub crossplane_error: Option<String>,
    pub pg_writes_per_claim: Option<Requests>,
}

impl Results {
    /// Adds a scale run, replacing an earlier one of the same system, composition and N.
    fn push_scale(&mut self, s: Scale) {
        self.scale
            .retain(|o| (&o.system, o.comp, o.claims) != (&s.system, s.comp, s.claims));
        self.scale.push(s);
        self.scale
            .sort_by(|a, b| (a.comp, a.claims, &a.system).cmp(&(b.comp, b.claims, &b.system)));
    }
}

const NOP_CLAIM_API: &str = "bench.tessera.dev/v1alpha1";
const PG_CLAIM_API: &str = "platform.tessera.dev/v1alpha1";
const NOP_API: &str = "nop.tessera.dev/v1alpha1";
const PG_API: &str = "postgresql.sql.tessera.dev/v1alpha1";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    if args.report_only {
        let file = args.out.join("results.json");
        let results: Results = serde_json::from_slice(&std::fs::read(&file)?)
            .with_context(|| format!("read {}", file.display()))?;
        return save(&args, &results);
    }
    let env = TestEnv::load()?;
    let client = env.kube().await?;
    std::fs::create_dir_all(&args.out)?;
    let logs = PathBuf::from(&env.dir).join("bench-logs");
    std::fs::create_dir_all(&logs)?;
    let results_file = args.out.join("results.json");
    let mut results = if args.add && results_file.exists() {
        serde_json::from_slice(&std::fs::read(&results_file)?)
            .with_context(|| format!("read {}", results_file.display()))?
    } else {
        Results::default()
    };
    results.commands.push((
        args.command
            .clone()
            .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" ")),
        args_summary(&args),
    ));
    let tessera_runs = args.systems.iter().any(|s| s == "tessera");

    install(&args, &env, &client).await?;

    if tessera_runs && !args.no_latency {
        let mut tessera = start_tessera(&args, &env, &logs.join("tessera-latency.log"))?;
        results.latency.clear();
        results
            .latency
            .push(latency_run(&client, &args, "pg").await?);
        save(&args, &results)?;
        results.pg_writes_per_claim = Some(pg_one_claim(&client).await?);
        save(&args, &results)?;
        results
            .latency
            .push(latency_run(&client, &args, "nop").await?);
        save(&args, &results)?;
        ensure_alive(&mut tessera)?;
        tessera.stop().await;
    }

    let steady_n = if args.claims.contains(&args.steady_claims) {
        args.steady_claims
    } else {
        args.claims.iter().copied().max().unwrap_or(0)
    };
    for &n in args.pg_claims.iter().filter(|n| **n > 0 && tessera_runs) {
        let log = logs.join(format!("tessera-pg-{n}.log"));
        let mut tessera = start_tessera(&args, &env, &log)?;
        let scale = scale_run(&client, Comp::Pg, n, &tessera).await?;
        ensure_alive(&mut tessera)?;
        eprintln!("{scale:?}");
        results.push_scale(scale);
        save(&args, &results)?;
        cleanup(&client, Comp::Pg, n).await?;
        tessera.stop().await;
    }
    for &n in args.claims.iter().filter(|_| tessera_runs) {
        let log = logs.join(format!("tessera-scale-{n}.log"));
        let mut tessera = start_tessera(&args, &env, &log)?;
        let mut scale = scale_run(&client, Comp::Nop, n, &tessera).await?;
        scale.external_calls = procs::count_lines(&log, &["nop call"]);
        ensure_alive(&mut tessera)?;
        eprintln!("{scale:?}");
        if n == steady_n && args.steady_seconds > 0 {
            let steady = steady_run(&client, &args, n, &tessera, &log).await?;
            eprintln!("{steady:?}");
            results.steady = Some(steady);
        }
        ensure_alive(&mut tessera)?;
        results.push_scale(scale);
        save(&args, &results)?;
        cleanup(&client, Comp::Nop, n).await?;
        tessera.stop().await;
    }

    if let Some(dir) = args
        .crossplane
        .as_ref()
        .filter(|_| args.systems.iter().any(|s| s == "crossplane"))
    {
        let runs = [(Comp::Pg, &args.pg_claims), (Comp::Nop, &args.claims)];
        let mut save_each = |s: &Scale| {
            results.push_scale(s.clone());
            save(&args, &results)
        };
        let outcome = crossplane::run(
            &client,
            &env,
            dir,
            &runs,
            args.poll_interval,
            &logs,
            &mut save_each,
        )
        .await;
        match outcome {
            Ok(()) => {
                results.crossplane_error = None;
            }
            Err(e) => {
                eprintln!("Crossplane: {e:#}");
                results.crossplane_error = Some(format!("{e:#}"));
            }
        }
    }

    save(&args, &results)?;
    eprintln!("wrote {}", args.out.join("BENCHMARKS.md").display());
    Ok(())
}

/// Writes the plots and BENCHMARKS.md with what was measured so far (after every phase, so
/// that a run cut short still leaves its figures).
fn save(args: &Args, results: &Results) -> anyhow::Result<()> {
    plot::all(&args.out, results)?;
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_vec_pretty(results)?,
    )?;
    report::write(&args.out.join("BENCHMARKS.md"), results)
}

fn args_summary(args: &Args) -> String {
    format!(
        "poll interval {} s, latency claims {}, scale (nop) {:?}, scale (PostgreSQL) {:?}, steady window {} s",
        args.poll_interval, args.latency_claims, args.claims, args.pg_claims, args.steady_seconds
    )
}

fn ensure_alive(p: &mut Procs) -> anyhow::Result<()> {
    anyhow::ensure!(
        p.alive(),
        "a controller process exited during the run (see its log)"
    );
    Ok(())
}

/// The CRDs of the engine, PostgreSQL and nop; the PostgreSQL platform (admin Secret,
/// ProviderConfig `default`, XRD, Composition) and the nop composition.
async fn install(args: &Args, env: &TestEnv, client: &kube::Client) -> anyhow::Result<()> {
    let out = std::process::Command::new(&args.tessera)
        .args(["crds", "--providers", "postgresql,nop"])
        .output()
        .with_context(|| format!("run {} crds", args.tessera.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "tessera crds: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    cluster::apply_yaml(client, &String::from_utf8(out.stdout)?).await?;
    cluster::namespace(client, "tessera-system").await?;
    cluster::postgres_admin_secret(client, env, "tessera-system").await?;
    for file in [
        "compositions/postgres/providerconfig.yaml",
        "compositions/postgres/xrd.yaml",
        "compositions/postgres/composition.yaml",
        "bench/compositions/nop.yaml",
    ] {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("read {file} (run from the repository root)"))?;
        cluster::apply_yaml(client, &text).await?;
    }
    Ok(())
}

fn start_tessera(args: &Args, env: &TestEnv, log: &Path) -> anyhow::Result<Procs> {
    Procs::start(&[Spec {
        program: args.tessera.clone(),
        args: vec![
            "controller".into(),
            "--providers".into(),
            "postgresql,nop".into(),
            "--poll-interval".into(),
            args.poll_interval.to_string(),
        ],
        env: vec![
            ("KUBECONFIG".into(), env.get("KUBECONFIG")?.to_string()),
            (
                "RUST_LOG".into(),
                "info,tessera_provider_nop::calls=debug".into(),
            ),
        ],
        log: log.to_path_buf(),
    }])
}

fn nop_claim(ns: &str, name: &str) -> serde_json::Value {
    json!({
        "apiVersion": NOP_CLAIM_API, "kind": "NopBench",
        "metadata": { "name": name, "namespace": ns },
        "spec": { "writeConnectionSecretToRef": { "name": name } }
    })
}

fn pg_claim(ns: &str, name: &str) -> serde_json::Value {
    json!({
        "apiVersion": PG_CLAIM_API, "kind": "PostgresDatabase",
        "metadata": { "name": name, "namespace": ns },
        "spec": { "writeConnectionSecretToRef": { "name": name } }
    })
}

/// Applies claims one at a time and measures apply -> connection Secret.
async fn latency_run(client: &kube::Client, args: &Args, which: &str) -> anyhow::Result<Latency> {
    let ns = format!("bench-latency-{which}");
    cluster::namespace(client, &ns).await?;
    let (api, kind) = if which == "pg" {
        (PG_CLAIM_API, "PostgresDatabase")
    } else {
        (NOP_CLAIM_API, "NopBench")
    };
    cluster::wait_served(client, api, kind, Duration::from_secs(120)).await?;
    let secrets = cluster::SecretClock::watch(client, &ns);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut ms = Vec::new();
    for i in 0..args.latency_claims {
        let name = format!("l{i}");
        let claim = if which == "pg" {
            pg_claim(&ns, &name)
        } else {
            nop_claim(&ns, &name)
        };
        let start = Instant::now();
        cluster::apply(client, &claim).await?;
        let seen = secrets.wait(&name, Duration::from_secs(120)).await?;
        ms.push(seen.duration_since(start).as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    eprintln!("latency {which}: p50 {:.0} ms", percentile(&ms, 50.0));
    let gone = if which == "pg" {
        vec![(PG_API, "Role"), (PG_API, "Database"), (PG_API, "Grant")]
    } else {
        vec![(NOP_API, "NopResource")]
    };
    cluster::delete_all_and_wait(client, api, kind, &ns, &gone, Duration::from_secs(600)).await?;
    Ok(Latency {
        composition: if which == "pg" {
            "PostgreSQL (shared server)".into()
        } else {
            "nop (3 NopResources)".into()
        },
        ms,
    })
}

/// Requests of one PostgresDatabase claim from its apply to Ready, alone on the cluster.
async fn pg_one_claim(client: &kube::Client) -> anyhow::Result<Requests> {
    let ns = "bench-pg-one";
    cluster::namespace(client, ns).await?;
    let ready = cluster::ReadyClock::watch(client, PG_CLAIM_API, "PostgresDatabase", ns);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = cluster::requests(client).await?;
    cluster::apply(client, &pg_claim(ns, "one")).await?;
    ready.wait(1, Duration::from_secs(120)).await?;
    // The last writes (a status, an event) land right after Ready.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = cluster::requests(client).await?;
    cluster::delete_all_and_wait(
        client,
        PG_CLAIM_API,
        "PostgresDatabase",
        ns,
        &[(PG_API, "Role"), (PG_API, "Database"), (PG_API, "Grant")],
        Duration::from_secs(300),
    )
    .await?;
    Ok(cluster::delta(&before, &after))
}

fn scale_namespace(comp: Comp, n: usize) -> String {
    format!("bench-{}-{n}", comp.key())
}

/// Applies `n` claims of `comp` at once and waits until all are Ready.
async fn scale_run(
    client: &kube::Client,
    comp: Comp,
    n: usize,
    procs: &Procs,
) -> anyhow::Result<Scale> {
    let (claim_api, claim_kind, managed) = comp.tessera_kinds();
    let ns = scale_namespace(comp, n);
    cluster::namespace(client, &ns).await?;
    cluster::wait_served(client, claim_api, claim_kind, Duration::from_secs(120)).await?;
    let ready = cluster::ReadyClock::watch(client, claim_api, claim_kind, &ns);
    // Let the controller start its watches before the clock starts.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = cluster::requests(client).await?;
    let cpu_before = procs.cpu_seconds();
    let start = Instant::now();
    let applies = futures::stream::iter(0..n)
        .map(|i| {
            let claim = comp.claim(&ns, &format!("c{i}"));
            async move { cluster::apply(client, &claim).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    for a in applies {
        a?;
    }
    let apply_s = start.elapsed().as_secs_f64();
    ready.wait(n, Duration::from_secs(1800)).await?;
    let all_ready_s = start.elapsed().as_secs_f64();
    // Writes still in flight (a last status) land within moments.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = cluster::requests(client).await?;
    let mut ready_curve: Vec<f64> = ready
        .times()
        .values()
        .map(|t| t.duration_since(start).as_secs_f64())
        .collect();
    ready_curve.sort_by(f64::total_cmp);
    Ok(Scale {
        system: "Tessera".into(),
        comp,
        claims: n,
        apply_s,
        all_ready_s,
        peak_mib: procs.peak_mib(),
        cpu_s: procs.cpu_seconds() - cpu_before,
        requests: cluster::delta(&before, &after),
        ready_curve,
        external_calls: 0,
        managed: count_all(client, managed).await?,
        stuck_deletes: 0,
    })
}

/// The steady state with `n` Ready claims: what is requested and called per poll.
async fn steady_run(
    client: &kube::Client,
    args: &Args,
    n: usize,
    procs: &Procs,
    log: &Path,
) -> anyhow::Result<Steady> {
    // Reconciles triggered by the burst (the first polls after creation) settle first.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = cluster::requests(client).await?;
    let cpu = procs.cpu_seconds();
    let observes = procs::count_lines(log, &["nop call", "observe"]);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.steady_seconds)).await;
    let seconds = start.elapsed().as_secs_f64();
    let after = cluster::requests(client).await?;
    Ok(Steady {
        claims: n,
        managed: cluster::count(client, NOP_API, "NopResource").await?,
        seconds,
        poll_interval: args.poll_interval,
        requests: cluster::delta(&before, &after),
        cpu_s: procs.cpu_seconds() - cpu,
        observes: procs::count_lines(log, &["nop call", "observe"]) - observes,
        rss_mib: procs.rss_mib(),
    })
}

async fn cleanup(client: &kube::Client, comp: Comp, n: usize) -> anyhow::Result<()> {
    let (claim_api, claim_kind, managed) = comp.tessera_kinds();
    let took = cluster::delete_all_and_wait(
        client,
        claim_api,
        claim_kind,
        &scale_namespace(comp, n),
        managed,
        Duration::from_secs(1800),
    )
    .await?;
    eprintln!("deleted {n} claims in {took:?}");
    Ok(())
}

/// The p-th percentile (nearest rank) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
