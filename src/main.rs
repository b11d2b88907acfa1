//! The `tessera` binary: wiring only. Everything it runs lives in the engine and provider crates.
#![forbid(unsafe_code)]

mod crds;
mod logging;
mod offline;
mod providers;
mod trace;

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
    let builder = tracing_subscriber::fmt().with_env_filter(logging::env_filter());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
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
    let opts = ControllerOptions {
        poll_interval: Duration::from_secs(args.poll_interval.max(1)),
        max_concurrent_reconciles: args.max_concurrent_reconciles.max(1),
        provider_config_concurrency: args.provider_config_concurrency.max(1),
        max_backoff: Duration::from_secs(args.max_backoff.max(1)),
        external_timeout: Duration::from_secs(args.external_timeout.max(1)),
        exit_after_external_create: std::env::var("TESSERA_FAULT_EXIT_AFTER_EXTERNAL_CREATE")
            .is_ok_and(|v| v == "1"),
        ..ControllerOptions::default()
    };
    let names: Vec<&str> = providers.iter().map(|p| p.name()).collect();
    tracing::info!(providers = ?names, composable = %composable, "starting controllers");
    let mut tasks = tokio::task::JoinSet::new();
    let composition = CompositionOptions {
        field_manager: opts.field_manager.clone(),
        poll_interval: opts.poll_interval,
        max_concurrent_reconciles: opts.max_concurrent_reconciles,
        composable,
    };
    tasks.spawn(tessera_engine::composition_controllers::run_controllers(
        client.clone(),
        composition,
    ));
    for p in providers {
        tasks.spawn(p.run(client.clone(), opts.clone()));
    }
    while let Some(res) = tasks.join_next().await {
        res?;
    }
    Ok(())
}
