//! Helpers for providers' own tests (cargo feature `testing`, for dev-dependencies):
//! a closure-based fake [`ExternalClient`] in the spirit of crossplane-runtime's
//! `ExternalClientFns`, the checks every provider's CRDs must pass, and faults to inject
//! into in-process controllers (a panicking reconcile, a dying per-XRD controller).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use crate::api::common::ConnectionDetails;
use crate::managed::crd::{MANAGED_CATEGORIES, PROVIDER_CONFIG_CATEGORIES};
use crate::managed::{CreateIdentity, ExternalClient, Observation, ProviderError};

/// What `observe` answers, given how many times it was called (from 1) and the object.
pub type ObserveFn<M> =
    Box<dyn Fn(usize, &mut M) -> Result<Observation, ProviderError> + Send + Sync>;
/// What `create` or `update` answers.
pub type ResultFn = Box<dyn Fn() -> Result<ConnectionDetails, ProviderError> + Send + Sync>;
/// What `delete` answers.
pub type DeleteFn = Box<dyn Fn() -> Result<(), ProviderError> + Send + Sync>;

/// A fake provider: one closure per call, and a log of the calls made.
pub struct ExternalClientFns<M> {
    /// Answers `observe`.
    pub observe: ObserveFn<M>,
    /// Answers `create` (default: no connection details).
    pub create: ResultFn,
    /// Answers `update` (default: no connection details).
    pub update: ResultFn,
    /// Answers `delete` (default: success).
    pub delete: DeleteFn,
    /// What `create_identity` answers (default: the trait's, assigned by the external
    /// system).
    pub create_identity: CreateIdentity,
    /// What `marks_ownership` answers (default: false, the trait's).
    pub marks_ownership: bool,
    /// The calls made, in order ("observe", "mark", "create", "update", "delete").
    pub calls: Mutex<Vec<&'static str>>,
}

impl<M> ExternalClientFns<M> {
    /// A fake whose `observe` is `observe` and whose other calls succeed.
    pub fn new(observe: ObserveFn<M>) -> Self {
        ExternalClientFns {
            observe,
            create: Box::new(|| Ok(ConnectionDetails::new())),
            update: Box::new(|| Ok(ConnectionDetails::new())),
            delete: Box::new(|| Ok(())),
            create_identity: CreateIdentity::AssignedByExternalSystem,
            marks_ownership: false,
            calls: Mutex::new(Vec::new()),
        }
    }

    /// The calls made so far, in order.
    pub fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn log(&self, call: &'static str) -> usize {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.push(call);
        calls.iter().filter(|c| **c == call).count()
    }
}

#[async_trait]
impl<M: Send + Sync> ExternalClient<M> for ExternalClientFns<M> {
    fn create_identity(&self) -> CreateIdentity {
        self.create_identity
    }
    fn marks_ownership(&self) -> bool {
        self.marks_ownership
    }
    async fn mark(&self, _mr: &M) -> Result<(), ProviderError> {
        self.log("mark");
        Ok(())
    }
    async fn observe(&self, mr: &mut M) -> Result<Observation, ProviderError> {
        let n = self.log("observe");
        (self.observe)(n, mr)
    }
    async fn create(&self, _mr: &mut M) -> Result<ConnectionDetails, ProviderError> {
        self.log("create");
        (self.create)()
    }
    async fn update(&self, _mr: &mut M) -> Result<ConnectionDetails, ProviderError> {
        self.log("update");
        (self.update)()
    }
    async fn delete(&self, _mr: &M) -> Result<(), ProviderError> {
        self.log("delete");
        (self.delete)()
    }
}

/// Checks a provider's CRDs (its ProviderConfig kind and its managed kinds) and panics
/// with every problem found: cluster scope, `group`, a structural schema (a type on every
/// node), a doc comment on every field (the `kubectl explain` text), and the standard
/// printer columns, categories and status subresource of [`crate::managed::crd`].
pub fn assert_provider_crds(group: &str, crds: &[CustomResourceDefinition]) {
    let mut problems = Vec::new();
    for crd in crds {
        let kind = &crd.spec.names.kind;
        let mut problem = |p: String| problems.push(format!("{kind}: {p}"));
        if crd.spec.group != group {
            problem(format!("group {} is not {group}", crd.spec.group));
        }
        if crd.spec.scope != "Cluster" {
            problem("is not cluster-scoped".into());
        }
        let provider_config = kind == "ProviderConfig";
        let (categories, columns): (&[&str], &[&str]) = if provider_config {
            (&PROVIDER_CONFIG_CATEGORIES, &["SOURCE", "SECRET", "AGE"])
        } else {
            (
                &MANAGED_CATEGORIES,
                &["READY", "SYNCED", "EXTERNAL-NAME", "AGE"],
            )
        };
        let have = crd.spec.names.categories.clone().unwrap_or_default();
        if have != categories {
            problem(format!("categories {have:?}, want {categories:?}"));
        }
        for version in &crd.spec.versions {
            let have: Vec<&str> = version
                .additional_printer_columns
                .iter()
                .flatten()
                .map(|c| c.name.as_str())
                .collect();
            if have != columns {
                problem(format!("printer columns {have:?}, want {columns:?}"));
            }
            let has_status = version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some();
            if !provider_config && !has_status {
                problem("has no status subresource".into());
            }
            let schema = serde_json::to_value(&version.schema).unwrap_or_default();
            let root = &schema["openAPIV3Schema"];
            let mut missing = Vec::new();
            undocumented(root, "", &mut missing);
            if !missing.is_empty() {
                problem(format!("fields without a doc comment: {missing:?}"));
            }
            let mut untyped = Vec::new();
            untyped_nodes(root, "", &mut untyped);
            if !untyped.is_empty() {
                problem(format!(
                    "schema nodes without a type (not structural): {untyped:?}"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Paths of schema properties without a description.
fn undocumented(schema: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            // metadata, apiVersion and kind are Kubernetes' own, documented by it.
            if path.is_empty() && matches!(name.as_str(), "metadata" | "apiVersion" | "kind") {
                continue;
            }
            let p = format!("{path}.{name}");
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

/// Paths of schema nodes that a structural schema would reject for lacking a type.
fn untyped_nodes(schema: &Value, path: &str, out: &mut Vec<String>) {
    let exempt = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        || schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if schema.get("type").is_none() && !exempt {
        out.push(if path.is_empty() {
            ".".into()
        } else {
            path.into()
        });
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            untyped_nodes(prop, &format!("{path}.{name}"), out);
        }
    }
    if let Some(items) = schema.get("items") {
        untyped_nodes(items, &format!("{path}[]"), out);
    }
    if let Some(extra) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        untyped_nodes(extra, &format!("{path}{{}}"), out);
    }
}

/// The payload of every panic these faults inject; a test's panic hook can tell them
/// from real panics by it.
pub const INJECTED_PANIC: &str = "tessera testing: injected panic";

static PANIC_ON: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// From now on, every reconcile of an object named `name` (of any kind) panics, until
/// [`stop_panicking_when_reconciling`].
pub fn panic_when_reconciling(name: &str) {
    let mut names = PANIC_ON.lock().unwrap_or_else(|e| e.into_inner());
    names.insert(name.to_string());
}

/// Reconciles of objects named `name` no longer panic.
pub fn stop_panicking_when_reconciling(name: &str) {
    let mut names = PANIC_ON.lock().unwrap_or_else(|e| e.into_inner());
    names.remove(name);
}

/// Panics with [`INJECTED_PANIC`] when [`panic_when_reconciling`] asked for `name`.
pub(crate) fn panic_if_injected(name: &str) {
    let inject = PANIC_ON
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(name);
    if inject {
        std::panic::panic_any(INJECTED_PANIC);
    }
}

type Kills = Mutex<HashMap<(String, String), Arc<tokio::sync::Notify>>>;

fn kills() -> &'static Kills {
    static KILLS: std::sync::OnceLock<Kills> = std::sync::OnceLock::new();
    KILLS.get_or_init(Default::default)
}

fn kill_switch(xrd: &str, controller: &str) -> Arc<tokio::sync::Notify> {
    kills()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry((xrd.to_string(), controller.to_string()))
        .or_default()
        .clone()
}

/// Makes the `controller` (`composite` or `claim`) controller of XRD `xrd` panic once,
/// now if it runs, or as soon as it starts.
pub fn kill_controller_once(xrd: &str, controller: &str) {
    kill_switch(xrd, controller).notify_one();
}

/// Completes when [`kill_controller_once`] asks the `controller` of `xrd` to die.
pub(crate) async fn killed(xrd: &str, controller: &str) {
    kill_switch(xrd, controller).notified().await;
}
