//! Tessera's PostgreSQL provider: Role, Database and Grant against a PostgreSQL server.
//!
//! ```text
//!  Role / Database / Grant ──run_controller──▶ PostgresConnector ──▶ ProviderConfig + Secret
//!                                                 │ one Session per ProviderConfig (cached)
//!                                                 ▼
//!                          PostgresClient: observe (pg_roles, pg_database, aclexplode,
//!                          pg_auth_members) / create / update / delete (quoted DDL)
//! ```
//!
//! The engine's runtime owns finalizers, annotations, conditions, events, connection
//! Secrets, polling and backoff; this crate only talks to PostgreSQL (and, for generated
//! Role passwords, to the Secret that keeps them).
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod api;
mod connector;
mod database;
mod error;
mod grant;
mod guard;
mod role;
mod session;
mod sql;
mod tls;
mod transport;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use tessera_engine::managed::{ControllerOptions, run_controller};

pub use api::{Database, Grant, ProviderConfig, Role};
pub use connector::{DEFAULT_PASSWORD_NAMESPACE, PostgresClient, PostgresConnector};
pub use session::Session;

/// The CRDs of this provider: ProviderConfig, Role, Database and Grant.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        ProviderConfig::crd(),
        Role::crd(),
        Database::crd(),
        Grant::crd(),
    ]
}

/// Runs the Role, Database and Grant controllers until the process is asked to stop.
/// Generated Role passwords without a connection secret go to
/// [`DEFAULT_PASSWORD_NAMESPACE`]; use [`run_with`] to choose another namespace.
pub async fn run(client: kube::Client, opts: ControllerOptions) {
    run_with(client, opts, PostgresConnector::new()).await
}

/// Like [`run`], with a connector of the caller's choosing.
pub async fn run_with(client: kube::Client, opts: ControllerOptions, connector: PostgresConnector) {
    futures::join!(
        run_controller::<Role, _>(client.clone(), connector.clone(), opts.clone()),
        run_controller::<Database, _>(client.clone(), connector.clone(), opts.clone()),
        run_controller::<Grant, _>(client, connector, opts),
    );
}

tessera_engine::impl_managed!(Role);
tessera_engine::impl_managed!(Database);
tessera_engine::impl_managed!(Grant);

#[cfg(test)]
mod crd_tests {
    use super::*;
    use serde_json::Value;

    /// Paths of schema properties without a description (the `kubectl explain` text).
    fn undocumented(schema: &Value, path: &str, out: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, prop) in props {
                let p = format!("{path}.{name}");
                // metadata is Kubernetes' own; apiVersion and kind are documented by it too.
                if matches!(name.as_str(), "metadata" | "apiVersion" | "kind") && path.is_empty() {
                    continue;
                }
                if prop
                    .get("description")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    out.push(p.clone());
                }
                undocumented(prop, &p, out);
            }
        }
        if let Some(items) = schema.get("items") {
            undocumented(items, &format!("{path}[]"), out);
        }
    }

    #[test]
    fn every_crd_field_has_kubectl_explain_text() {
        for crd in crds() {
            let v = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
            let mut missing = Vec::new();
            undocumented(&v["openAPIV3Schema"], "", &mut missing);
            assert!(
                missing.is_empty(),
                "{}: undocumented fields {missing:?}",
                crd.spec.names.kind
            );
        }
    }

    #[test]
    fn managed_kinds_are_cluster_scoped_with_standard_columns_and_categories() {
        let crds = crds();
        let kinds: Vec<_> = crds.iter().map(|c| c.spec.names.kind.as_str()).collect();
        assert_eq!(kinds, ["ProviderConfig", "Role", "Database", "Grant"]);
        for crd in &crds {
            assert_eq!(crd.spec.group, api::GROUP);
            assert_eq!(crd.spec.scope, "Cluster");
            assert_eq!(crd.spec.versions[0].name, api::VERSION);
            if crd.spec.names.kind == "ProviderConfig" {
                continue;
            }
            let kind = &crd.spec.names.kind;
            let categories = crd.spec.names.categories.clone().unwrap_or_default();
            assert_eq!(categories, ["tessera", "managed"], "{kind}");
            let columns: Vec<_> = crd.spec.versions[0]
                .additional_printer_columns
                .iter()
                .flatten()
                .map(|c| (c.name.as_str(), c.json_path.as_str()))
                .collect();
            assert_eq!(
                columns,
                [
                    ("READY", ".status.conditions[?(@.type=='Ready')].status"),
                    ("SYNCED", ".status.conditions[?(@.type=='Synced')].status"),
                    (
                        "EXTERNAL-NAME",
                        ".metadata.annotations.tessera\\.dev/external-name"
                    ),
                    ("AGE", ".metadata.creationTimestamp"),
                ],
                "{kind}"
            );
            assert!(
                crd.spec.versions[0]
                    .subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some(),
                "{kind} has a status subresource"
            );
        }
    }

    #[test]
    fn provider_config_defaults_to_prefer_tls_and_the_postgres_database() {
        let pc: ProviderConfig = serde_yaml::from_str(
            "apiVersion: postgresql.sql.tessera.dev/v1alpha1\nkind: ProviderConfig\n\
             metadata: {name: default}\n\
             spec: {credentials: {secretRef: {name: pg, namespace: tessera-system}}}",
        )
        .unwrap();
        assert_eq!(pc.spec.ssl_mode, api::SslMode::Prefer);
        assert_eq!(pc.spec.default_database, "postgres");
    }
}
