//! The providers compiled into this binary: the one table to extend when adding a
//! provider (with its cargo feature in Cargo.toml).

use tessera_engine::provider::Provider;

/// Every compiled-in provider.
pub static ALL: &[&dyn Provider] = &[
    #[cfg(feature = "postgresql")]
    &tessera_provider_postgresql::PostgresqlProvider,
    #[cfg(feature = "vault")]
    &tessera_provider_vault::VaultProvider,
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
