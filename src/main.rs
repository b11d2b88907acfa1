//! The `tessera` binary: wiring only. Everything it runs lives in the engine and provider crates.
#![forbid(unsafe_code)]

mod crds;
mod leader;
mod logging;
mod offline;
mod providers;
mod serve;
mod trace;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use tessera_engine::composition_controllers::CompositionOptions;
use tessera_engine::managed::ControllerOptions;

/// Tessera: a composition engine for external resources.
#[derive(Parser)]
#[command(name = "tessera", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers of the engine and of the enabled providers.
    Controller(ControllerArgs),
    /// Print the CRDs of the engine and the enabled providers as a YAML stream.
    Crds {
        /// Providers whose CRDs to include (default: all compiled in).
        #[arg(long, value_delimiter = ',', value_parser = providers::parser())]
        providers: Option<Vec<String>>,
        /// Write one file per CRD into this directory instead of printing them.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Offline: print the composite and the composed resources that a claim (or composite)
    /// becomes with a Composition, as the controllers would apply them.
    Render(offline::RenderArgs),
    /// Offline: check claims, composites, XRDs and Compositions against their schemas
    /// (patch paths exist, values fit, required fields are set).
    Validate(offline::ValidateArgs),
    /// Show a claim, composite or managed resource with everything below it: the
    /// composite, the composed resources, their Ready/Synced conditions, external names,
    /// connection Secret keys and the last warning of what is failing.
    Trace(trace::TraceArgs),
}

#[derive(clap::Args)]
struct ControllerArgs {
    /// Providers to run (default: all compiled in).
    #[arg(long, value_delimiter = ',', env = "TESSERA_PROVIDERS", value_parser = providers::parser())]
    providers: Option<Vec<String>>,
    /// How often each external resource is read again when nothing else happens, in
    /// seconds. Objects can override it with the `tessera.dev/poll-interval` annotation.
    #[arg(long, default_value_t = 60, env = "TESSERA_POLL_INTERVAL")]
    poll_interval: u64,
    /// Reconciles running at once per kind.
    #[arg(long, default_value_t = 16)]
    max_concurrent_reconciles: u16,
    /// External calls running at once per ProviderConfig.
    #[arg(long, default_value_t = 10)]
    provider_config_concurrency: usize,
    /// The longest wait between retries after errors, in seconds.
    #[arg(long, default_value_t = 60, env = "TESSERA_MAX_BACKOFF")]
    max_backoff: u64,
    /// How long one call to an external system (connect, observe, create, update, delete)
    /// may take before it fails as a transient error, in seconds.
    #[arg(long, default_value_t = 30, env = "TESSERA_EXTERNAL_TIMEOUT")]
    external_timeout: u64,
    /// The API groups and kinds Compositions may compose, comma-separated: `GROUP` (every
    /// kind of it, also `GROUP/*`), `GROUP/KIND` (e.g.
    /// `rbac.authorization.k8s.io/ClusterRoleBinding`), `core/KIND` for the core group (e.g.
    /// `core/Secret`), `default` for the default list, `*` for anything. Default: the API
    /// groups of the enabled providers, `core/Secret` and `core/ConfigMap`. A composite whose
    /// Composition renders anything else gets none of its resources applied (Synced=False,
    /// reason CompositionNotAllowed).
    #[arg(long, env = "TESSERA_COMPOSABLE_RESOURCES", value_name = "LIST", value_parser = providers::composable_syntax)]
    composable_resources: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "TESSERA_LOG_FORMAT")]
    log_format: LogFormat,
    /// Serve `/metrics` (Prometheus), `/livez` and `/readyz` on this address (e.g.
    /// `0.0.0.0:8080`). Default: no server.
    #[arg(long, env = "TESSERA_METRICS_ADDR", value_name = "HOST:PORT")]
    metrics_addr: Option<SocketAddr>,
    /// Run the controllers only while this replica holds the leader Lease
    /// (`coordination.k8s.io/v1`); the other replicas wait on standby.
    #[arg(long, env = "TESSERA_LEADER_ELECT")]
    leader_elect: bool,
    /// The namespace of the leader Lease. Default: the `POD_NAMESPACE` environment
    /// variable, else `default`.
    #[arg(long, env = "TESSERA_LEADER_ELECTION_NAMESPACE")]
    leader_election_namespace: Option<String>,
    /// The name of the leader Lease. Default: `tessera`, or `tessera-<shard>` for a shard
    /// `shard.tessera.dev/key in (<shard>)`.
    #[arg(long, env = "TESSERA_LEADER_ELECTION_ID")]
    leader_election_id: Option<String>,
    /// Reconcile only the claims, composites and managed resources whose labels match
    /// this selector on `shard.tessera.dev/key`: `shard.tessera.dev/key in (NAME)` for a
    /// shard, `!shard.tessera.dev/key` for the main controller of a sharded install.
    /// Objects Tessera creates carry the shard label of their claim or managed resource.
    #[arg(long, env = "TESSERA_SHARD", value_name = "SELECTOR", value_parser = shard_syntax)]
    shard: Option<String>,
    /// The namespaces where the controller may read Secrets, comma-separated, when it may
    /// not read them cluster-wide (the chart's `rbac.secretNamespaces`). Connection Secrets
    /// are then watched in these namespaces only (one watch each, of the Secrets Tessera
    /// wrote) and read with a GET elsewhere. Default: one watch over every namespace.
    #[arg(
        long,
        value_delimiter = ',',
        env = "TESSERA_SECRET_NAMESPACES",
        value_name = "LIST"
    )]
    secret_namespaces: Option<Vec<String>>,
    /// On SIGTERM, how long reconciles in flight may take to finish, in seconds, before
    /// the Lease is released and the process exits.
    #[arg(long, default_value_t = 20, env = "TESSERA_SHUTDOWN_TIMEOUT")]
    shutdown_timeout: u64,
}

fn shard_syntax(selector: &str) -> Result<String, String> {
    tessera_engine::shard::validate(selector).map(|()| selector.trim().to_string())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { providers, out_dir } => {
            let files = crds::render(&providers::select(providers.as_deref()))?;
            match out_dir {
                Some(dir) => crds::write_dir(&dir, &files)?,
                None => print!("{}", crds::stream(&files)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Controller(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(controller(args))
            .map(|()| ExitCode::SUCCESS),
        Command::Render(args) => Ok(offline::render(args)),
        Command::Validate(args) => Ok(offline::validate(args)),
        Command::Trace(args) => trace::run(args).map(|()| ExitCode::SUCCESS),
    }
}

fn init_tracing(format: LogFormat) {
    logging::install_panic_hook();
    use tracing_subscriber::prelude::*;
    let logs = tracing_subscriber::registry().with(logging::filter());
    match format {
        LogFormat::Text => logs.with(tracing_subscriber::fmt::layer()).init(),
        LogFormat::Json => logs.with(tracing_subscriber::fmt::layer().json()).init(),
    }
}

async fn controller(args: ControllerArgs) -> anyhow::Result<()> {
    init_tracing(args.log_format);
    let providers = providers::select(args.providers.as_deref());
    let composable = providers::composable(args.composable_resources.as_deref(), &providers)?;
    // One TLS stack for every client: ring (kube's), chosen explicitly because linked
    // SDKs may bring a second provider and rustls then refuses to guess.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default().await?;
    tessera_engine::secret_store::set_scope(match &args.secret_namespaces {
        Some(namespaces) => tessera_engine::secret_store::Scope::Namespaces(
            namespaces
                .iter()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect(),
        ),
        None => tessera_engine::secret_store::Scope::Cluster,
    });
    let opts = ControllerOptions {
        poll_interval: Duration::from_secs(args.poll_interval.max(1)),
        max_concurrent_reconciles: args.max_concurrent_reconciles.max(1),
        provider_config_concurrency: args.provider_config_concurrency.max(1),
        max_backoff: Duration::from_secs(args.max_backoff.max(1)),
        external_timeout: Duration::from_secs(args.external_timeout.max(1)),
        exit_after_external_create: std::env::var("TESSERA_FAULT_EXIT_AFTER_EXTERNAL_CREATE")
            .ok()
            .filter(|v| !v.is_empty() && v != "0"),
        shard: args.shard.clone(),
        ..ControllerOptions::default()
    };
    // Signals are noted from the start: a standby, or a leader still starting, stops at once.
    let mut stop = stop_signal();
    if let Some(addr) = args.metrics_addr {
        serve::start(addr).await?;
    }
    if let Some(shard) = &args.shard {
        check_shard(&client, shard).await?;
    }
    let leadership = if args.leader_elect {
        let election = leader::Election {
            client: client.clone(),
            namespace: args
                .leader_election_namespace
                .clone()
                .or_else(|| {
                    std::env::var("POD_NAMESPACE")
                        .ok()
                        .filter(|n| !n.is_empty())
                })
                .unwrap_or_else(|| "default".into()),
            lease: args
                .leader_election_id
                .clone()
                .unwrap_or_else(|| tessera_engine::shard::lease_name(args.shard.as_deref())),
            identity: leader::identity(),
        };
        tessera_engine::metrics::set_leader(false);
        tokio::select! {
            acquired = election.acquire() => Some(acquired?),
            _ = stop.changed() => {
                tracing::info!("stopping while on standby");
                // The Lease may name this replica already (taken, acquire not yet returned).
                election.release_if_held().await;
                return Ok(());
            }
        }
    } else {
        None
    };
    tessera_engine::metrics::set_leader(true);
    let names: Vec<&str> = providers.iter().map(|p| p.name()).collect();
    tracing::info!(providers = ?names, composable = %composable, shard = ?args.shard, "starting controllers");
    let mut tasks = tokio::task::JoinSet::new();
    let composition = CompositionOptions {
        field_manager: opts.field_manager.clone(),
        poll_interval: opts.poll_interval,
        max_concurrent_reconciles: opts.max_concurrent_reconciles,
        composable,
        shard: args.shard.clone(),
    };
    tasks.spawn(tessera_engine::composition_controllers::run_controllers(
        client.clone(),
        composition,
    ));
    for p in providers {
        tasks.spawn(p.run(client.clone(), opts.clone()));
    }
    let mut lost = leadership.as_ref().map(|l| l.held.clone());
    let lease_lost = async {
        match lost.as_mut() {
            Some(held) => {
                while *held.borrow_and_update() {
                    if held.changed().await.is_err() {
                        break;
                    }
                }
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        // The controllers end only when they were asked to stop.
        () = join_all(&mut tasks) => {}
        _ = stop.changed() => {
            // The engine's controllers stop on this process's signal, whenever they started.
            tessera_engine::scaffold::request_stop();
            let grace = Duration::from_secs(args.shutdown_timeout);
            tracing::info!(timeout = ?grace, "stopping: finishing the reconciles in flight");
            if tokio::time::timeout(grace, join_all(&mut tasks)).await.is_err() {
                tracing::warn!(timeout = ?grace, "reconciles still running at the shutdown timeout; stopping them");
                tasks.abort_all();
            }
        }
        () = lease_lost => {
            // Another replica may already reconcile: stop at once, without finishing
            // anything, and let the process be restarted as a standby.
            tracing::error!("lost the leader Lease; exiting");
            std::process::exit(1);
        }
    }
    drop(lost);
    if let Some(leadership) = leadership {
        leadership.release().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Waits for every task of `tasks`; a panicking task is logged (the others still finish).
async fn join_all(tasks: &mut tokio::task::JoinSet<()>) {
    while let Some(res) = tasks.join_next().await {
        if let Err(e) = res
            && e.is_panic()
        {
            tracing::error!("a controller task panicked");
        }
    }
}

/// A channel that changes once on SIGTERM or Ctrl-C.
fn stop_signal() -> tokio::sync::watch::Receiver<()> {
    let (tx, rx) = tokio::sync::watch::channel(());
    tokio::spawn(async move {
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate => {}
        }
        tracing::info!("stop signal received");
        tx.send_replace(());
        // Keep the sender, so that receivers see the change and not a closed channel.
        std::future::pending::<()>().await;
    });
    rx
}

/// Asks the API server to parse the shard selector (with a list of at most one XRD), so
/// that a selector it refuses stops the process with the reason instead of failing every
/// watch.
async fn check_shard(client: &kube::Client, shard: &str) -> anyhow::Result<()> {
    use tessera_engine::api::xrd::CompositeResourceDefinition;
    let api: kube::Api<CompositeResourceDefinition> = kube::Api::all(client.clone());
    api.list_metadata(&kube::api::ListParams::default().labels(shard).limit(1))
        .await
        .map(drop)
        .map_err(|e| anyhow::anyhow!("--shard {shard:?}: the API server refused the selector: {e}"))
}
