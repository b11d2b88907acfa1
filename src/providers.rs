//! The providers compiled into this binary: the one table to extend when adding a
//! provider (with its cargo feature in Cargo.toml).

use tessera_engine::composable::ComposableResources;
use tessera_engine::provider::Provider;

/// Every compiled-in provider.
pub static ALL: &[&dyn Provider] = &[
    #[cfg(feature = "postgresql")]
    &tessera_provider_postgresql::PostgresqlProvider,
    #[cfg(feature = "vault")]
    &tessera_provider_vault::VaultProvider,
    #[cfg(feature = "rds")]
    &tessera_provider_rds::RdsProvider,
    #[cfg(feature = "harbor")]
    &tessera_provider_harbor::HarborProvider,
    #[cfg(feature = "nop")]
    &tessera_provider_nop::NopProvider,
];

/// The providers named in `names`, or all of them when `names` is `None`.
pub fn select(names: Option<&[String]>) -> Vec<&'static dyn Provider> {
    ALL.iter()
        .copied()
        .filter(|p| names.is_none_or(|names| names.iter().any(|n| n == p.name())))
        .collect()
}

/// The `--providers` values: the names of the compiled-in providers.
pub fn parser() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        ALL.iter()
            .map(|p| clap::builder::PossibleValue::new(p.name()).help(p.about())),
    )
}

/// Checks the syntax of `--composable-resources` while the arguments are parsed (the
/// providers' groups that `default` stands for are known only later).
pub fn composable_syntax(list: &str) -> Result<String, String> {
    list.parse::<ComposableResources>()
        .map(|_| list.to_string())
        .map_err(|e| e.to_string())
}

/// The composable resources of `--composable-resources`, or the default list of the
/// enabled `providers`.
pub fn composable(
    list: Option<&str>,
    providers: &[&dyn Provider],
) -> anyhow::Result<ComposableResources> {
    let groups: Vec<String> = providers.iter().flat_map(|p| p.groups()).collect();
    match list {
        None => Ok(ComposableResources::defaults(groups)),
        Some(list) => ComposableResources::parse(list, groups)
            .map_err(|e| anyhow::anyhow!("--composable-resources: {e}")),
    }
}
