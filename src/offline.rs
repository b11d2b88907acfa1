//! `tessera render` and `tessera validate`: wiring to [`tessera_engine::offline`].

use std::path::PathBuf;
use std::process::ExitCode;

use tessera_engine::composable::ComposableResources;
use tessera_engine::offline::{self, RenderInput};

use crate::{crds, providers};

/// Arguments of `tessera render`.
#[derive(clap::Args)]
pub struct RenderArgs {
    /// The claim or composite resource to render (a YAML file with one object).
    claim_or_xr: PathBuf,
    /// The Composition to render it with (a YAML file; with several Compositions, the one
    /// the controller would select is used).
    composition: PathBuf,
    /// The XRD of the claim or composite; needed for a claim. XRDs in the other two files
    /// are found too.
    #[arg(long)]
    xrd: Option<PathBuf>,
    /// A file or directory of observed composed resources (with status) and their
    /// connection Secrets, e.g. from `kubectl get -o yaml`: the composite's status,
    /// readiness and connection secret keys are computed from them.
    #[arg(long)]
    observed: Option<PathBuf>,
    /// The controller's `--composable-resources` (default: the groups of every compiled-in
    /// provider, `core/Secret` and `core/ConfigMap`): rendering another kind fails, as the
    /// composite would.
    #[arg(long, value_name = "LIST", value_parser = providers::composable_syntax)]
    composable_resources: Option<String>,
}

/// Arguments of `tessera validate`.
#[derive(clap::Args)]
pub struct ValidateArgs {
    /// Files and directories (searched recursively for .yaml, .yml and .json) holding
    /// claims, composite resources, XRDs, Compositions, CRDs and managed resources.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The controller's `--composable-resources` (default: the groups of every compiled-in
    /// provider, `core/Secret` and `core/ConfigMap`): a Composition resource of another
    /// kind is an error.
    #[arg(long, value_name = "LIST", value_parser = providers::composable_syntax)]
    composable_resources: Option<String>,
}

/// Prints the composite and its composed resources; problems go to stderr.
pub fn render(args: RenderArgs) -> ExitCode {
    let composable = match composable(args.composable_resources.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let input = RenderInput {
        claim_or_xr: &args.claim_or_xr,
        composition: &args.composition,
        xrd: args.xrd.as_deref(),
        observed: args.observed.as_deref(),
        composable: &composable,
    };
    match offline::render(&input) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(problems) => {
            eprintln!("{problems}");
            ExitCode::FAILURE
        }
    }
}

/// Prints one line per problem and a summary; fails when there are errors.
pub fn validate(args: ValidateArgs) -> ExitCode {
    let (docs, files, mut problems) = offline::read_paths(&args.paths);
    // The providers' CRDs, exactly as `tessera crds` renders them.
    let known: Vec<serde_json::Value> = crds::definitions(providers::ALL)
        .iter()
        .filter_map(|crd| serde_json::to_value(crd).ok())
        .collect();
    let composable = match composable(args.composable_resources.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut report = offline::validate(&docs, &known);
    problems.append(&mut report.problems);
    problems.append(&mut offline::not_composable(&docs, &composable));
    report.problems = problems;
    for p in &report.problems {
        println!("{p}");
    }
    println!("{}", report.summary(files));
    if report.errors() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The composable resources of `list` (or the default) with every compiled-in provider.
fn composable(list: Option<&str>) -> Result<ComposableResources, ExitCode> {
    providers::composable(list, providers::ALL).map_err(|e| {
        eprintln!("{e}");
        ExitCode::FAILURE
    })
}
