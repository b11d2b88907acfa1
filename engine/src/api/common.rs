//! Fields and types that every managed resource and every ProviderConfig shares (see
//! `docs/architecture.md`, "Managed resources"), plus the annotation and condition
//! vocabulary of the engine.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Annotation and label keys owned by the engine. All use the `tessera.dev/` prefix.
pub mod annotations {
    /// The identifier of the external object; defaults to `metadata.name`.
    pub const EXTERNAL_NAME: &str = "tessera.dev/external-name";
    /// Set (RFC 3339 time) just before the external create is attempted.
    pub const EXTERNAL_CREATE_PENDING: &str = "tessera.dev/external-create-pending";
    /// Set (RFC 3339 time) once the external create returned success.
    pub const EXTERNAL_CREATE_SUCCEEDED: &str = "tessera.dev/external-create-succeeded";
    /// Set (RFC 3339 time) when the external create returned an error.
    pub const EXTERNAL_CREATE_FAILED: &str = "tessera.dev/external-create-failed";
    /// `"true"` stops reconciliation of the object until it is removed.
    pub const PAUSED: &str = "tessera.dev/paused";
    /// Per-object poll interval override, e.g. `30s`, `5m`, `1h`.
    pub const POLL_INTERVAL: &str = "tessera.dev/poll-interval";
}

/// Condition types.
pub mod condition_type {
    pub const READY: &str = "Ready";
    pub const SYNCED: &str = "Synced";
    /// kstatus' "abnormal-true" condition: `True` while the controller works toward the
    /// desired state (Synced, not Ready yet). Derived by [`super::set_kstatus_conditions`].
    pub const RECONCILING: &str = "Reconciling";
    /// kstatus' "abnormal-true" condition: `True` while progress is blocked by an error
    /// that needs someone to act (Synced=False). Derived by [`super::set_kstatus_conditions`].
    pub const STALLED: &str = "Stalled";
}

/// Condition reasons. PascalCase, stable: GitOps health checks match on them.
pub mod reason {
    pub const AVAILABLE: &str = "Available";
    pub const CREATING: &str = "Creating";
    pub const DELETING: &str = "Deleting";
    pub const UNAVAILABLE: &str = "Unavailable";
    pub const RECONCILE_SUCCESS: &str = "ReconcileSuccess";
    pub const RECONCILE_ERROR: &str = "ReconcileError";
    pub const RECONCILE_PAUSED: &str = "ReconcilePaused";
    /// The external resource exists but Tessera may not manage it (not created by this
    /// managed resource, marked by another one, or protected); see `spec.adoptExisting`.
    pub const EXTERNAL_RESOURCE_NOT_OWNED: &str = "ExternalResourceNotOwned";
}

/// A condition of a Tessera object, compatible with `metav1.Condition` and kstatus.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Type of the condition: `Ready`, `Synced`, and the kstatus conditions derived from
    /// them, `Reconciling` (working toward Ready) and `Stalled` (blocked by the error in
    /// Synced's message); XRDs add a few more.
    #[serde(rename = "type")]
    pub type_: String,
    /// Status of the condition: `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable, PascalCase reason for the condition's last transition.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human-readable explanation: what is wrong and what to do about it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Last time the condition's status changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The `metadata.generation` the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = crate::api::schema::INT64_MAX))]
    pub observed_generation: Option<i64>,
}

impl Condition {
    /// A condition with the given type, status (`true` = `"True"`), reason and message;
    /// the transition time is filled in by [`set_condition`].
    pub fn new(type_: &str, status: bool, reason: &str, message: impl Into<String>) -> Self {
        Condition {
            type_: type_.to_string(),
            status: if status { "True" } else { "False" }.to_string(),
            reason: reason.to_string(),
            message: message.into(),
            last_transition_time: None,
            observed_generation: None,
        }
    }

    /// `Ready=True/Available`: the resource is up and usable.
    pub fn available() -> Self {
        Condition::new(condition_type::READY, true, reason::AVAILABLE, "")
    }

    /// `Ready=False/Creating`: the resource is being made (add what it waits for with
    /// [`Condition::with_message`]).
    pub fn creating() -> Self {
        Condition::new(condition_type::READY, false, reason::CREATING, "")
    }

    /// `Ready=False/Deleting`: the resource is going.
    pub fn deleting() -> Self {
        Condition::new(condition_type::READY, false, reason::DELETING, "")
    }

    /// `Ready=False/Unavailable`: the resource exists but cannot be used, because of `message`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Condition::new(condition_type::READY, false, reason::UNAVAILABLE, message)
    }

    /// `Synced=True/ReconcileSuccess`: the last reconcile did everything it had to.
    pub fn reconcile_success() -> Self {
        Condition::new(condition_type::SYNCED, true, reason::RECONCILE_SUCCESS, "")
    }

    /// `Synced=False/ReconcileError`: the last reconcile failed, because of `message`.
    pub fn reconcile_error(message: impl Into<String>) -> Self {
        Condition::new(
            condition_type::SYNCED,
            false,
            reason::RECONCILE_ERROR,
            message,
        )
    }

    /// `Synced=False/ReconcilePaused`: the `tessera.dev/paused` annotation stops reconciles.
    pub fn reconcile_paused() -> Self {
        Condition::new(
            condition_type::SYNCED,
            false,
            reason::RECONCILE_PAUSED,
            "Reconciliation is paused by the tessera.dev/paused annotation; remove it to resume",
        )
    }

    /// `Synced=False/ExternalResourceNotOwned`: an existing external resource was left
    /// alone because it is not this managed resource's, as `message` explains.
    pub fn not_owned(message: impl Into<String>) -> Self {
        Condition::new(
            condition_type::SYNCED,
            false,
            reason::EXTERNAL_RESOURCE_NOT_OWNED,
            message,
        )
    }

    /// The same condition with `message`.
    pub fn with_message(self, message: impl Into<String>) -> Self {
        Condition {
            message: message.into(),
            ..self
        }
    }

    /// Whether the condition says `True`.
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }

    /// Whether two conditions say the same thing (ignoring the transition time).
    pub fn same_as(&self, other: &Condition) -> bool {
        self.type_ == other.type_
            && self.status == other.status
            && self.reason == other.reason
            && self.message == other.message
            && self.observed_generation == other.observed_generation
    }
}

/// Finds a condition by type.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Sets `new` in `conditions`, keeping the previous transition time when the status did
/// not change (kstatus and `kubectl describe` rely on stable transition times).
/// Returns whether anything other than the transition time changed.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition, now: &str) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) if old.same_as(&new) => false,
        Some(old) => {
            new.last_transition_time = if old.status == new.status {
                old.last_transition_time.clone()
            } else {
                Some(now.to_string())
            };
            *old = new;
            true
        }
        None => {
            new.last_transition_time = Some(now.to_string());
            conditions.push(new);
            true
        }
    }
}

/// Sets kstatus' `Reconciling` and `Stalled` conditions from `Ready` and `Synced`, so that
/// kstatus (Flux's default health check, `kubectl wait`-style tooling) reads a failing
/// object as Failed and a working one as InProgress, instead of guessing from `Ready`:
///
/// | Synced | Ready | Reconciling | Stalled |
/// |---|---|---|---|
/// | False | any | False | True, Synced's reason and message |
/// | True or absent | True | False | False |
/// | True or absent | False, Unknown | True, Ready's reason and message | False |
///
/// Both are always present (False when the object is Current), carry the generation of the
/// condition they come from, and change only when Ready or Synced change, so they cost no
/// write of their own. Call after setting Ready and Synced; returns whether either changed.
pub fn set_kstatus_conditions(conditions: &mut Vec<Condition>, now: &str) -> bool {
    let ready = find_condition(conditions, condition_type::READY).cloned();
    let synced = find_condition(conditions, condition_type::SYNCED).cloned();
    let Some(decider) = synced.as_ref().filter(|s| !s.is_true()).or(ready.as_ref()) else {
        return false;
    };
    let derived = |type_: &str, status: bool, from: &Condition| Condition {
        observed_generation: from.observed_generation,
        ..Condition::new(
            type_,
            status,
            &from.reason,
            if status { from.message.as_str() } else { "" },
        )
    };
    let failing = decider.type_ == condition_type::SYNCED;
    let working = !failing && !decider.is_true();
    let mut changed = set_condition(
        conditions,
        derived(condition_type::RECONCILING, working, decider),
        now,
    );
    changed |= set_condition(
        conditions,
        derived(condition_type::STALLED, failing, decider),
        now,
    );
    changed
}

/// `s` with a capital first letter: condition messages start with one (as Kubernetes'
/// own do), while error messages are lower-case so they read inside other messages.
pub fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A reference to a cluster-scoped object by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Reference {
    /// Name of the referenced object.
    pub name: String,
}

/// A reference to a Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretReference {
    /// Name of the Secret.
    pub name: String,
    /// Namespace of the Secret.
    pub namespace: String,
}

/// A reference to one key of a Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeySelector {
    /// Name of the Secret.
    pub name: String,
    /// Namespace of the Secret.
    pub namespace: String,
    /// Key within the Secret's data.
    pub key: String,
}

/// What happens to the external resource when the managed resource is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the external resource.
    #[default]
    Delete,
    /// Leave the external resource in place; only the managed resource goes away.
    Orphan,
}

/// An action Tessera may take on the external resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ManagementAction {
    /// All actions.
    #[serde(rename = "*")]
    All,
    /// Read the external resource and report it in status.
    Observe,
    /// Create the external resource when it does not exist.
    Create,
    /// Change the external resource to match the spec.
    Update,
    /// Delete the external resource when the managed resource is deleted with deletionPolicy Delete.
    Delete,
    /// Fill unset spec fields from the external resource.
    LateInitialize,
}

fn default_management_policies() -> Vec<ManagementAction> {
    vec![ManagementAction::All]
}

fn default_provider_config_ref() -> Option<Reference> {
    Some(Reference {
        name: "default".to_string(),
    })
}

/// The fields every managed resource has in its spec, next to `forProvider`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSpec {
    /// The ProviderConfig whose credentials are used to reach the external system.
    /// Defaults to the ProviderConfig named `default`.
    #[serde(default = "default_provider_config_ref")]
    pub provider_config_ref: Option<Reference>,
    /// What happens to the external resource when this managed resource is deleted:
    /// `Delete` (the default) deletes it, `Orphan` leaves it in place.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// The actions Tessera may take on the external resource: `["*"]` (the default) for all,
    /// or a subset of `Observe`, `Create`, `Update`, `Delete`, `LateInitialize`.
    /// `["Observe"]` imports an existing external resource and never changes it.
    #[serde(default = "default_management_policies")]
    pub management_policies: Vec<ManagementAction>,
    /// Take over an external resource of the external name that already exists and was not
    /// created by this managed resource: Tessera marks it as its own, then updates it to
    /// match the spec and deletes it with deletionPolicy Delete. Off by default: an existing
    /// resource is then left untouched and reported as `Synced=False/ExternalResourceNotOwned`.
    /// Protected resources (for example a superuser role) are never taken over; use
    /// `managementPolicies: ["Observe"]` to only read them. Kinds that are no object of their
    /// own (a Grant) ignore it. Never let a claim's fields set it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt_existing: bool,
    /// The Secret into which the connection details of the external resource are written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_connection_secret_to_ref: Option<SecretReference>,
}

impl Default for ResourceSpec {
    fn default() -> Self {
        ResourceSpec {
            provider_config_ref: default_provider_config_ref(),
            deletion_policy: DeletionPolicy::Delete,
            management_policies: default_management_policies(),
            adopt_existing: false,
            write_connection_secret_to_ref: None,
        }
    }
}

impl ResourceSpec {
    /// Whether the management policies allow `action`.
    pub fn allows(&self, action: ManagementAction) -> bool {
        self.management_policies
            .iter()
            .any(|a| *a == ManagementAction::All || *a == action)
    }

    /// Whether these policies only read an existing external resource: they allow neither
    /// Update nor (with deletionPolicy Delete) Delete. Such a managed resource may observe an
    /// external resource that is not its own, because it never changes it.
    pub fn read_only(&self) -> bool {
        let deletes =
            self.allows(ManagementAction::Delete) && self.deletion_policy == DeletionPolicy::Delete;
        !(self.allows(ManagementAction::Update) || deletes)
    }

    /// The name of the ProviderConfig to use.
    pub fn provider_config_name(&self) -> &str {
        self.provider_config_ref
            .as_ref()
            .map(|r| r.name.as_str())
            .unwrap_or("default")
    }
}

/// The fields every managed resource has in its status, next to `atProvider`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// The `metadata.generation` most recently reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = crate::api::schema::INT64_MAX))]
    pub observed_generation: Option<i64>,
    /// `Ready` (is the external resource usable) and `Synced` (did the last reconcile succeed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Where a ProviderConfig's credentials come from. Credentials are never written inline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderCredentials {
    /// Source of the credentials: `Secret` (the default) reads them from `secretRef`;
    /// `Default` uses the provider's own ambient credentials (for example a cloud SDK's
    /// default chain); `KubernetesAuth` logs in with a Kubernetes ServiceAccount token, as
    /// set in the provider's own ProviderConfig fields. Each provider documents the sources
    /// it supports; another one is refused with a message on the managed resources.
    #[serde(default)]
    pub source: CredentialsSource,
    /// The Secret holding the credentials, required when `source` is `Secret`; the keys it
    /// must have are documented per provider. Ignored by the other sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
}

impl ProviderCredentials {
    /// Credentials read from the Secret `namespace`/`name`.
    pub fn from_secret(namespace: &str, name: &str) -> Self {
        ProviderCredentials {
            source: CredentialsSource::Secret,
            secret_ref: Some(SecretReference {
                name: name.to_string(),
                namespace: namespace.to_string(),
            }),
        }
    }

    /// The Secret to read: `secretRef` when the source is `Secret`, `None` for the other
    /// sources (which read no Secret even when `secretRef` is set).
    pub fn secret(&self) -> Option<&SecretReference> {
        match self.source {
            CredentialsSource::Secret => self.secret_ref.as_ref(),
            CredentialsSource::Default | CredentialsSource::KubernetesAuth => None,
        }
    }
}

/// Source of ProviderConfig credentials.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum CredentialsSource {
    /// A Kubernetes Secret, named by `secretRef`.
    #[default]
    Secret,
    /// No Secret: the provider's own ambient credentials (for example the AWS SDK's default
    /// chain: environment, web identity/IRSA, instance profile), documented per provider.
    Default,
    /// No Secret: the provider logs in with a Kubernetes ServiceAccount token, with the
    /// settings of the provider's ProviderConfig (for Vault, `kubernetesAuth`).
    KubernetesAuth,
}

impl fmt::Display for CredentialsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialsSource::Secret => "Secret",
            CredentialsSource::Default => "Default",
            CredentialsSource::KubernetesAuth => "KubernetesAuth",
        })
    }
}

/// Connection details of an external resource: key -> secret value.
///
/// The values are secrets, so `Debug` prints keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnectionDetails(pub BTreeMap<String, Vec<u8>>);

impl ConnectionDetails {
    /// An empty set of connection details.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts a value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.0.insert(key.into(), value.into());
    }

    /// A value by key.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.0.get(key).map(Vec::as_slice)
    }

    /// A value by key, as UTF-8 text.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Adds all of `other`'s entries, replacing entries with the same key.
    pub fn merge(&mut self, other: ConnectionDetails) {
        self.0.extend(other.0);
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

impl fmt::Debug for ConnectionDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_conditions_carry_their_type_status_and_reason() {
        let cases = [
            (
                "available",
                Condition::available(),
                ("Ready", "True", "Available"),
            ),
            (
                "creating",
                Condition::creating(),
                ("Ready", "False", "Creating"),
            ),
            (
                "deleting",
                Condition::deleting(),
                ("Ready", "False", "Deleting"),
            ),
            (
                "unavailable",
                Condition::unavailable("down"),
                ("Ready", "False", "Unavailable"),
            ),
            (
                "success",
                Condition::reconcile_success(),
                ("Synced", "True", "ReconcileSuccess"),
            ),
            (
                "error",
                Condition::reconcile_error("bad"),
                ("Synced", "False", "ReconcileError"),
            ),
            (
                "paused",
                Condition::reconcile_paused(),
                ("Synced", "False", "ReconcilePaused"),
            ),
        ];
        for (reason, c, (type_, status, why)) in cases {
            assert_eq!(
                (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
                (type_, status, why),
                "{reason}"
            );
        }
        assert_eq!(Condition::reconcile_error("Bad spec").message, "Bad spec");
        assert_eq!(
            Condition::creating().with_message("Waiting").message,
            "Waiting"
        );
    }

    #[test]
    fn messages_are_capitalised() {
        assert_eq!(capitalize("no composition"), "No composition");
        assert_eq!(capitalize(""), "");
    }

    #[test]
    fn connection_details_debug_never_prints_values() {
        let mut cd = ConnectionDetails::new();
        cd.insert("password", "hunter2");
        let printed = format!("{cd:?}");
        assert!(printed.contains("password"), "{printed}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }

    #[test]
    fn set_condition_keeps_transition_time_when_status_is_unchanged() {
        let mut conds = Vec::new();
        assert!(set_condition(
            &mut conds,
            Condition::new("Ready", false, reason::CREATING, ""),
            "t1"
        ));
        assert!(!set_condition(
            &mut conds,
            Condition::new("Ready", false, reason::CREATING, ""),
            "t2"
        ));
        assert!(set_condition(
            &mut conds,
            Condition::new("Ready", false, reason::UNAVAILABLE, "down"),
            "t3"
        ));
        assert_eq!(conds[0].last_transition_time.as_deref(), Some("t1"));
        assert!(set_condition(
            &mut conds,
            Condition::new("Ready", true, reason::AVAILABLE, ""),
            "t4"
        ));
        assert_eq!(conds[0].last_transition_time.as_deref(), Some("t4"));
        assert_eq!(conds.len(), 1);
    }

    #[test]
    fn reconciling_and_stalled_follow_ready_and_synced() {
        let row = |conds: &[Condition], t: &str| {
            find_condition(conds, t)
                .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
                .unwrap_or_default()
        };
        let s = |status: &str, reason: &str, message: &str| {
            (status.to_string(), reason.to_string(), message.to_string())
        };
        let cases = [
            (
                "ready and synced: current, neither condition is true",
                vec![Condition::available(), Condition::reconcile_success()],
                s("False", "Available", ""),
                s("False", "Available", ""),
            ),
            (
                "synced but not ready yet: reconciling, with Ready's explanation",
                vec![
                    Condition::creating().with_message("Waiting for resources: role"),
                    Condition::reconcile_success(),
                ],
                s("True", "Creating", "Waiting for resources: role"),
                s("False", "Creating", ""),
            ),
            (
                "not synced: stalled, with Synced's error, even when Ready",
                vec![
                    Condition::available(),
                    Condition::reconcile_error("Bad spec"),
                ],
                s("False", "ReconcileError", ""),
                s("True", "ReconcileError", "Bad spec"),
            ),
            (
                "not ready and not synced: stalled, not reconciling",
                vec![Condition::creating(), Condition::not_owned("Taken")],
                s("False", "ExternalResourceNotOwned", ""),
                s("True", "ExternalResourceNotOwned", "Taken"),
            ),
            (
                "first reconcile (Ready=False only): reconciling",
                vec![Condition::creating()],
                s("True", "Creating", ""),
                s("False", "Creating", ""),
            ),
        ];
        for (reason, mut conds, reconciling, stalled) in cases {
            for c in &mut conds {
                c.observed_generation = Some(4);
            }
            assert!(set_kstatus_conditions(&mut conds, "t1"), "{reason}");
            assert_eq!(row(&conds, "Reconciling"), reconciling, "{reason}");
            assert_eq!(row(&conds, "Stalled"), stalled, "{reason}");
            for t in ["Reconciling", "Stalled"] {
                let c = find_condition(&conds, t).unwrap();
                assert_eq!(c.observed_generation, Some(4), "{reason}: {t}");
            }
            assert!(
                !set_kstatus_conditions(&mut conds, "t2"),
                "{reason}: nothing changes when Ready and Synced did not"
            );
        }
        assert!(!set_kstatus_conditions(&mut Vec::new(), "t1"));
    }

    #[test]
    fn management_policies_default_to_all_and_subsets_restrict() {
        let spec = ResourceSpec::default();
        assert!(spec.allows(ManagementAction::Delete));
        let observe_only = ResourceSpec {
            management_policies: vec![ManagementAction::Observe],
            ..ResourceSpec::default()
        };
        assert!(observe_only.allows(ManagementAction::Observe));
        assert!(!observe_only.allows(ManagementAction::Create));
        assert!(!observe_only.allows(ManagementAction::Delete));
    }

    #[test]
    fn only_policies_without_update_and_effective_delete_are_read_only() {
        let with = |policies: Vec<ManagementAction>, deletion_policy| ResourceSpec {
            management_policies: policies,
            deletion_policy,
            ..ResourceSpec::default()
        };
        use ManagementAction::*;
        let cases = [
            (
                "all actions change",
                with(vec![All], DeletionPolicy::Delete),
                false,
            ),
            (
                "Observe alone reads",
                with(vec![Observe], DeletionPolicy::Delete),
                true,
            ),
            (
                "Observe and Create never change an existing resource",
                with(vec![Observe, Create], DeletionPolicy::Delete),
                true,
            ),
            (
                "Update changes",
                with(vec![Observe, Update], DeletionPolicy::Orphan),
                false,
            ),
            (
                "Delete with policy Delete deletes",
                with(vec![Observe, Delete], DeletionPolicy::Delete),
                false,
            ),
            (
                "Delete with policy Orphan never deletes",
                with(vec![Observe, Delete], DeletionPolicy::Orphan),
                true,
            ),
            (
                "everything but Orphan still updates",
                with(vec![All], DeletionPolicy::Orphan),
                false,
            ),
        ];
        for (reason, spec, want) in cases {
            assert_eq!(spec.read_only(), want, "{reason}");
        }
    }

    #[test]
    fn credentials_source_defaults_to_secret_and_only_secret_reads_the_secret_ref() {
        let r = SecretReference {
            name: "creds".to_string(),
            namespace: "ns".to_string(),
        };
        let cases = [
            (
                "an omitted source is Secret",
                r#"{"secretRef": {"name": "creds", "namespace": "ns"}}"#,
                CredentialsSource::Secret,
                Some(&r),
            ),
            (
                "Secret without a secretRef names no Secret (connect reports it)",
                r#"{"source": "Secret"}"#,
                CredentialsSource::Secret,
                None,
            ),
            (
                "Default reads no Secret",
                r#"{"source": "Default"}"#,
                CredentialsSource::Default,
                None,
            ),
            (
                "KubernetesAuth ignores a stray secretRef",
                r#"{"source": "KubernetesAuth", "secretRef": {"name": "creds", "namespace": "ns"}}"#,
                CredentialsSource::KubernetesAuth,
                None,
            ),
        ];
        for (reason, json, source, secret) in cases {
            let c: ProviderCredentials = serde_json::from_str(json).unwrap();
            assert_eq!(c.source, source, "{reason}");
            assert_eq!(c.secret(), secret, "{reason}");
        }
        assert_eq!(
            serde_json::to_value(ProviderCredentials {
                source: CredentialsSource::Default,
                secret_ref: None
            })
            .unwrap(),
            serde_json::json!({"source": "Default"}),
            "no secretRef is written when there is none"
        );
    }

    #[test]
    fn resource_spec_defaults_fill_in_when_fields_are_omitted() {
        let spec: ResourceSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(spec.provider_config_name(), "default");
        assert_eq!(spec.deletion_policy, DeletionPolicy::Delete);
        assert_eq!(spec.management_policies, vec![ManagementAction::All]);
        assert!(
            !spec.adopt_existing,
            "existing resources are not adopted by default"
        );
        assert!(
            serde_json::to_value(&spec)
                .unwrap()
                .get("adoptExisting")
                .is_none(),
            "the default is not written out"
        );
    }
}
