//! RobotAccount: a Harbor project robot (robots v2) whose secret lives only in its
//! connection Secret.
//!
//! ```text
//!  observe: project ─▶ robots of the project (by full name) ─▶ compare permissions,
//!           description, duration, disable ─▶ read the secret back from the connection
//!           Secret (controlled by this RobotAccount) ─▶ missing, another username, or
//!           tessera.dev/rotate-secret ≠ atProvider.secretRotationToken ─▶ drift "secret: ..."
//!  create:  POST /robots ─▶ write the connection Secret at once (the secret is shown once)
//!  update:  PUT /robots/{id} when a setting drifted; PATCH /robots/{id} (refresh) when the
//!           secret must be replaced ─▶ write the connection Secret
//! ```
//!
//! Harbor answers a robot's secret only on create and refresh, so the connection Secret is
//! its only copy: `create` writes it itself rather than leaving it to the runtime, so that
//! the observe right after the create already finds it. A robot cannot carry a mark
//! (`marks_ownership` is false): an existing robot of the same name is never taken over
//! unless the RobotAccount says `adoptExisting: true`, and adopting one refreshes its secret.

use std::collections::BTreeSet;

use async_trait::async_trait;
use base64::Engine as _;
use kube::Resource;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tessera_engine::api::common::{ConnectionDetails, SecretReference};
use tessera_engine::connection_secret;
use tessera_engine::managed::machine::external_name;
use tessera_engine::managed::{
    CreateIdentity, ExternalClient, Observation, Ownership, ProviderError,
};

use crate::api::{
    ROTATE_SECRET_ANNOTATION, RobotAccess, RobotAccount, RobotAccountObservation,
    RobotAccountParameters,
};
use crate::client::{Harbor, encode};
use crate::project::valid_project_name;

/// The Kubernetes type of a RobotAccount's connection Secret.
pub const SECRET_TYPE: &str = "kubernetes.io/dockerconfigjson";
/// Field manager of the connection Secrets the provider writes itself.
const FIELD_MANAGER: &str = "tessera-provider-harbor";
/// Harbor's prefix of robot names (its default `robot$`).
const ROBOT_PREFIX: &str = "robot$";
/// Robots read per page, and pages at most, when looking a robot up in its project.
const PAGE_SIZE: usize = 100;
const MAX_PAGES: usize = 20;

/// The robot's login name: `robot$<project>+<name>`.
pub fn full_name(project: &str, name: &str) -> String {
    format!("{ROBOT_PREFIX}{project}+{name}")
}

fn validate(name: &str, p: &RobotAccountParameters) -> Result<(), ProviderError> {
    if !valid_project_name(name) {
        return Err(ProviderError::InvalidSpec(format!(
            "invalid Harbor robot name {name:?}: Harbor requires lower case letters and digits separated by single '.', '_' or '-' (set the tessera.dev/external-name annotation to choose another name)"
        )));
    }
    if !valid_project_name(&p.project) {
        return Err(ProviderError::InvalidSpec(format!(
            "invalid forProvider.project {:?}: not a Harbor project name",
            p.project
        )));
    }
    if p.permissions.is_empty() {
        return Err(ProviderError::InvalidSpec(
            "forProvider.permissions is empty: a robot needs at least one permission, e.g. {resource: repository, action: pull}".into(),
        ));
    }
    if let Some(d) = p.duration
        && d != -1
        && d <= 0
    {
        return Err(ProviderError::InvalidSpec(format!(
            "invalid forProvider.duration {d}: -1 (never expires) or a positive number of days"
        )));
    }
    Ok(())
}

fn permission_set(access: &[RobotAccess]) -> BTreeSet<(String, String)> {
    access
        .iter()
        .map(|a| (a.resource.clone(), a.action.clone()))
        .collect()
}

/// The permissions Harbor holds for a robot of `project` (entries of other projects or
/// kinds are listed as such, so that they count as drift).
fn observed_permissions(robot: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for p in robot["permissions"].as_array().into_iter().flatten() {
        for a in p["access"].as_array().into_iter().flatten() {
            if a["effect"].as_str().is_some_and(|e| e == "deny") {
                continue;
            }
            out.insert((
                a["resource"].as_str().unwrap_or_default().to_string(),
                a["action"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    out
}

fn describe(perms: &BTreeSet<(String, String)>) -> String {
    perms
        .iter()
        .map(|(r, a)| format!("{r}:{a}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The robot body Harbor's create and update take.
fn robot_body(name: &str, p: &RobotAccountParameters) -> Value {
    json!({
        "name": name,
        "description": p.description.clone().unwrap_or_default(),
        "level": "project",
        "disable": p.disabled.unwrap_or(false),
        "duration": p.duration.unwrap_or(-1),
        "permissions": [{
            "kind": "project",
            "namespace": p.project,
            "access": p.permissions.iter()
                .map(|a| json!({"resource": a.resource, "action": a.action}))
                .collect::<Vec<_>>(),
        }],
    })
}

/// The connection details of a robot: `username`, `password` and a `.dockerconfigjson`
/// for `registry`.
pub fn connection(registry: &str, username: &str, secret: &str) -> ConnectionDetails {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{secret}"));
    let config = json!({
        "auths": { registry: { "username": username, "password": secret, "auth": auth } }
    });
    let mut details = ConnectionDetails::new();
    details.insert("username", username);
    details.insert("password", secret);
    details.insert(".dockerconfigjson", config.to_string());
    details
}

fn rotation_token(mr: &RobotAccount) -> Option<String> {
    mr.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(ROTATE_SECRET_ANNOTATION))
        .cloned()
}

fn recorded(mr: &RobotAccount) -> RobotAccountObservation {
    mr.status
        .as_ref()
        .and_then(|s| s.at_provider.clone())
        .unwrap_or_default()
}

fn target(mr: &RobotAccount) -> Result<&SecretReference, ProviderError> {
    mr.spec
        .resource
        .write_connection_secret_to_ref
        .as_ref()
        .ok_or_else(|| {
            ProviderError::InvalidSpec(
                "spec.writeConnectionSecretToRef is required: Harbor shows a robot's secret only once, and the connection Secret is where Tessera keeps it".into(),
            )
        })
}

fn deleting(mr: &RobotAccount) -> bool {
    mr.meta().deletion_timestamp.is_some()
}

/// `details` made from the connection Secret as read (`stored`), for publishing only when
/// that Secret lacks one of them (e.g. the registry host changed), else nothing. The
/// Secret is the robot's secret's only copy: details handed back from a read of it would
/// be written again by a pass that was in flight when someone deleted it, restoring the
/// old secret instead of letting the next pass refresh it.
fn unless_held(
    stored: Option<&ConnectionDetails>,
    details: ConnectionDetails,
) -> ConnectionDetails {
    let held = stored.is_some_and(|s| {
        details
            .0
            .iter()
            .all(|(k, v)| s.get(k) == Some(v.as_slice()))
    });
    if held {
        ConnectionDetails::default()
    } else {
        details
    }
}

/// Why the robot's secret must be replaced, if it must: the connection Secret lost it,
/// holds another robot's, or a rotation was requested.
fn secret_problem(
    mr: &RobotAccount,
    stored: Option<&ConnectionDetails>,
    username: &str,
) -> Option<String> {
    let t = mr.spec.resource.write_connection_secret_to_ref.as_ref()?;
    let where_ = format!("the connection Secret {}/{}", t.namespace, t.name);
    let Some(stored) = stored else {
        return Some(format!(
            "{where_} is missing; Harbor shows a robot's secret only once, so it is refreshed"
        ));
    };
    if stored.get("password").is_none_or(<[u8]>::is_empty) {
        return Some(format!(
            "{where_} has no password; Harbor shows a robot's secret only once, so it is refreshed"
        ));
    }
    if stored.get_str("username") != Some(username) {
        return Some(format!(
            "{where_} holds the secret of another robot; it is refreshed"
        ));
    }
    let token = rotation_token(mr);
    if token.is_some() && token != recorded(mr).secret_rotation_token {
        return Some(format!(
            "rotation requested ({ROTATE_SECRET_ANNOTATION}: {})",
            token.unwrap_or_default()
        ));
    }
    None
}

impl Harbor {
    /// The robot of `project` (by id) whose full name is `full`, or `None`.
    async fn find_robot(
        &self,
        project_id: i64,
        full: &str,
    ) -> Result<Option<Value>, ProviderError> {
        for page in 1..=MAX_PAGES {
            let action = format!("list the robots of project {project_id}");
            let req = self.request(
                Method::GET,
                &format!(
                    "/robots?q={}&page={page}&page_size={PAGE_SIZE}",
                    encode(&format!("Level=project,ProjectID={project_id}"))
                ),
            );
            let Some(list) = self.get_json(&action, req).await? else {
                return Ok(None);
            };
            let items = list.as_array().cloned().unwrap_or_default();
            if let Some(r) = items.iter().find(|r| r["name"].as_str() == Some(full)) {
                return Ok(Some(r.clone()));
            }
            if items.len() < PAGE_SIZE {
                return Ok(None);
            }
        }
        Err(ProviderError::Transient(format!(
            "project {project_id} has more than {} robots; robot {full} was not among them",
            PAGE_SIZE * MAX_PAGES
        )))
    }

    /// The robot of the managed resource with its project id, or `None` when the project
    /// or the robot does not exist.
    async fn robot_of(&self, mr: &RobotAccount) -> Result<Option<(i64, Value)>, ProviderError> {
        let project = &mr.spec.for_provider.project;
        let Some(p) = self.project(project).await? else {
            return Ok(None);
        };
        let pid = p["project_id"].as_i64().ok_or_else(|| {
            ProviderError::Transient(format!(
                "Harbor answered project {project} without project_id"
            ))
        })?;
        let full = full_name(project, &external_name(mr));
        Ok(self.find_robot(pid, &full).await?.map(|r| (pid, r)))
    }

    /// Writes the robot's connection details into the managed resource's connection
    /// Secret, owned by it.
    async fn store(
        &self,
        mr: &RobotAccount,
        details: &ConnectionDetails,
    ) -> Result<(), ProviderError> {
        let t = target(mr)?;
        let kube = self.kube()?;
        connection_secret::publish(kube, FIELD_MANAGER, mr, t, Some(SECRET_TYPE), details)
            .await
            .map_err(|e| {
                ProviderError::Transient(format!(
                    "cannot write the connection Secret {}/{} with the robot's secret: {e}",
                    t.namespace, t.name
                ))
            })
    }

    /// Refreshes the robot's secret in Harbor (the old one stops working) and returns it.
    async fn refresh(&self, id: i64, full: &str) -> Result<String, ProviderError> {
        let action = format!("refresh the secret of robot {full}");
        let answer = self
            .send(
                &action,
                self.request(Method::PATCH, &format!("/robots/{id}"))
                    .json(&json!({})),
            )
            .await?;
        if answer.status != StatusCode::OK {
            return Err(self.unexpected(&action, &answer));
        }
        let body: Value = answer.json(&action)?;
        body["secret"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                ProviderError::Transient(format!("Harbor answered {action} without a secret"))
            })
    }
}

#[async_trait]
impl ExternalClient<RobotAccount> for Harbor {
    fn create_identity(&self) -> CreateIdentity {
        // A robot is its full name, unique in Harbor (409 on a second one).
        CreateIdentity::Deterministic
    }

    fn connection_secret_type(&self) -> Option<&'static str> {
        Some(SECRET_TYPE)
    }

    async fn observe(&self, mr: &mut RobotAccount) -> Result<Observation, ProviderError> {
        let name = external_name(mr);
        if deleting(mr) {
            if !valid_project_name(&name) || !valid_project_name(&mr.spec.for_provider.project) {
                return Ok(Observation::absent());
            }
        } else {
            validate(&name, &mr.spec.for_provider)?;
            target(mr)?;
        }
        let Some((_, robot)) = self.robot_of(mr).await? else {
            return Ok(Observation::absent());
        };
        // A robot cannot carry a mark (see the module doc).
        let ownership = Ownership::Unmarked;
        if deleting(mr) {
            return Ok(Observation::up_to_date().with_ownership(ownership));
        }
        let spec = &mr.spec.for_provider;
        let username = robot["name"].as_str().unwrap_or_default().to_string();
        let mut diffs = Vec::new();
        let want = permission_set(&spec.permissions);
        let have = observed_permissions(&robot);
        if want != have {
            diffs.push(format!(
                "permissions are [{}], want [{}]",
                describe(&have),
                describe(&want)
            ));
        }
        let want_description = spec.description.clone().unwrap_or_default();
        let have_description = robot["description"].as_str().unwrap_or_default();
        if have_description != want_description {
            diffs.push(format!(
                "description is {have_description:?}, want {want_description:?}"
            ));
        }
        let want_disabled = spec.disabled.unwrap_or(false);
        let have_disabled = robot["disable"].as_bool().unwrap_or(false);
        if want_disabled != have_disabled {
            diffs.push(format!("disable is {have_disabled}, want {want_disabled}"));
        }
        let want_duration = spec.duration.unwrap_or(-1);
        if let Some(have) = robot["duration"].as_i64()
            && have != want_duration
        {
            diffs.push(format!("duration is {have} days, want {want_duration}"));
        }
        let kube = self.kube()?;
        let t = target(mr)?;
        let uid = mr.meta().uid.clone().unwrap_or_default();
        let stored = connection_secret::read_controlled(kube, t, &uid)
            .await
            .map_err(|e| {
                ProviderError::Transient(format!(
                    "cannot read the connection Secret {}/{}: {e}",
                    t.namespace, t.name
                ))
            })?;
        let problem = secret_problem(mr, stored.as_ref(), &username);
        if let Some(p) = &problem {
            diffs.push(format!("secret: {p}"));
        }
        let previous = recorded(mr);
        mr.status.get_or_insert_with(Default::default).at_provider =
            Some(RobotAccountObservation {
                robot_id: robot["id"].as_i64(),
                username: Some(username.clone()),
                expires_at: robot["expires_at"].as_i64(),
                disabled: Some(have_disabled),
                ..previous
            });
        let mut observation = if diffs.is_empty() {
            Observation::up_to_date()
        } else {
            Observation::drifted(diffs.join("; "))
        }
        .with_ownership(ownership);
        if problem.is_none()
            && let Some(secret) = stored.as_ref().and_then(|s| s.get_str("password"))
        {
            let details = connection(self.registry_host(), &username, secret);
            observation = observation.with_connection(unless_held(stored.as_ref(), details));
        }
        Ok(observation)
    }

    async fn create(&self, mr: &mut RobotAccount) -> Result<ConnectionDetails, ProviderError> {
        let name = external_name(mr);
        let spec = mr.spec.for_provider.clone();
        validate(&name, &spec)?;
        target(mr)?;
        let full = full_name(&spec.project, &name);
        let action = format!("create robot {full}");
        let answer = self
            .send(
                &action,
                self.request(Method::POST, "/robots")
                    .json(&robot_body(&name, &spec)),
            )
            .await?;
        match answer.status {
            StatusCode::CREATED => {}
            StatusCode::CONFLICT => {
                return Err(ProviderError::Transient(format!(
                    "cannot {action}: Harbor already has a robot of that name (409, {}); it is not taken over: delete it in Harbor, choose another name with the tessera.dev/external-name annotation, or set spec.adoptExisting: true",
                    answer.message()
                )));
            }
            StatusCode::NOT_FOUND => {
                return Err(ProviderError::Transient(format!(
                    "cannot {action}: Harbor has no project {:?} (yet): {}",
                    spec.project,
                    answer.message()
                )));
            }
            _ => return Err(self.unexpected(&action, &answer)),
        }
        let body: Value = answer.json(&action)?;
        let secret = body["secret"].as_str().unwrap_or_default();
        let username = body["name"].as_str().unwrap_or(&full).to_string();
        let details = connection(self.registry_host(), &username, secret);
        let token = rotation_token(mr);
        let at = mr
            .status
            .get_or_insert_with(Default::default)
            .at_provider
            .get_or_insert_with(Default::default);
        at.secret_rotation_token = token;
        at.robot_id = body["id"].as_i64();
        self.store(mr, &details).await?;
        Ok(details)
    }

    async fn update(&self, mr: &mut RobotAccount) -> Result<ConnectionDetails, ProviderError> {
        let name = external_name(mr);
        let spec = mr.spec.for_provider.clone();
        validate(&name, &spec)?;
        let Some((_, robot)) = self.robot_of(mr).await? else {
            return Err(ProviderError::Transient(format!(
                "robot {} disappeared during its update",
                full_name(&spec.project, &name)
            )));
        };
        let id = robot["id"]
            .as_i64()
            .ok_or_else(|| ProviderError::Transient("Harbor answered a robot without id".into()))?;
        let full = robot["name"].as_str().unwrap_or_default().to_string();
        let settings_drift = permission_set(&spec.permissions) != observed_permissions(&robot)
            || robot["description"].as_str().unwrap_or_default()
                != spec.description.as_deref().unwrap_or_default()
            || robot["disable"].as_bool().unwrap_or(false) != spec.disabled.unwrap_or(false)
            || robot["duration"]
                .as_i64()
                .is_some_and(|d| d != spec.duration.unwrap_or(-1));
        if settings_drift {
            let action = format!("update robot {full}");
            // Harbor's update takes the robot's full name.
            let answer = self
                .send(
                    &action,
                    self.request(Method::PUT, &format!("/robots/{id}"))
                        .json(&robot_body(&full, &spec)),
                )
                .await?;
            if answer.status != StatusCode::OK {
                return Err(self.unexpected(&action, &answer));
            }
        }
        let kube = self.kube()?;
        let t = target(mr)?;
        let uid = mr.meta().uid.clone().unwrap_or_default();
        let stored = connection_secret::read_controlled(kube, t, &uid)
            .await
            .map_err(|e| {
                ProviderError::Transient(format!(
                    "cannot read the connection Secret {}/{}: {e}",
                    t.namespace, t.name
                ))
            })?;
        if secret_problem(mr, stored.as_ref(), &full).is_none() {
            let secret = stored
                .as_ref()
                .and_then(|s| s.get_str("password"))
                .unwrap_or_default();
            let details = connection(self.registry_host(), &full, secret);
            return Ok(unless_held(stored.as_ref(), details));
        }
        let secret = self.refresh(id, &full).await?;
        let details = connection(self.registry_host(), &full, &secret);
        let token = rotation_token(mr);
        mr.status
            .get_or_insert_with(Default::default)
            .at_provider
            .get_or_insert_with(Default::default)
            .secret_rotation_token = token;
        self.store(mr, &details).await?;
        Ok(details)
    }

    async fn delete(&self, mr: &RobotAccount) -> Result<(), ProviderError> {
        let Some((_, robot)) = self.robot_of(mr).await? else {
            return Ok(());
        };
        let id = robot["id"].as_i64().unwrap_or_default();
        let action = format!(
            "delete robot {}",
            robot["name"].as_str().unwrap_or_default()
        );
        let answer = self
            .send(
                &action,
                self.request(Method::DELETE, &format!("/robots/{id}")),
            )
            .await?;
        match answer.status {
            StatusCode::OK | StatusCode::NOT_FOUND => Ok(()),
            _ => Err(self.unexpected(&action, &answer)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_the_connection_secret_holds_are_not_handed_back() {
        let stored = connection("harbor.example.com", "robot$p+pull", "S3cretxyz");
        let same = connection("harbor.example.com", "robot$p+pull", "S3cretxyz");
        assert!(unless_held(Some(&stored), same.clone()).is_empty());
        let moved = connection("registry.example.com", "robot$p+pull", "S3cretxyz");
        assert_eq!(
            unless_held(Some(&stored), moved.clone()),
            moved,
            "a new host is written"
        );
        assert_eq!(unless_held(None, same.clone()), same);
    }

    #[test]
    fn dockerconfigjson_holds_the_robot_for_the_registry_host() {
        let d = connection("harbor.example.com", "robot$p+pull", "S3cretxyz");
        let config: Value = serde_json::from_str(d.get_str(".dockerconfigjson").unwrap()).unwrap();
        let entry = &config["auths"]["harbor.example.com"];
        assert_eq!(entry["username"], "robot$p+pull");
        assert_eq!(entry["password"], "S3cretxyz");
        let auth = base64::engine::general_purpose::STANDARD
            .decode(entry["auth"].as_str().unwrap())
            .unwrap();
        assert_eq!(auth, b"robot$p+pull:S3cretxyz");
        assert_eq!(d.get_str("username"), Some("robot$p+pull"));
        assert_eq!(d.get_str("password"), Some("S3cretxyz"));
    }

    #[test]
    fn permissions_compare_as_sets_and_ignore_denied_entries() {
        let robot = json!({"permissions": [{"kind": "project", "namespace": "p", "access": [
            {"resource": "repository", "action": "pull"},
            {"resource": "artifact", "action": "read"},
            {"resource": "repository", "action": "push", "effect": "deny"},
        ]}]});
        let want = permission_set(&[
            RobotAccess {
                resource: "artifact".into(),
                action: "read".into(),
            },
            RobotAccess {
                resource: "repository".into(),
                action: "pull".into(),
            },
        ]);
        assert_eq!(observed_permissions(&robot), want);
    }

    #[test]
    fn invalid_robot_specs_are_spec_errors() {
        let ok = RobotAccountParameters {
            project: "team-a".into(),
            permissions: vec![RobotAccess {
                resource: "repository".into(),
                action: "pull".into(),
            }],
            ..Default::default()
        };
        assert!(validate("pull", &ok).is_ok());
        assert!(matches!(
            validate("Pull", &ok),
            Err(ProviderError::InvalidSpec(_))
        ));
        let mut bad = ok.clone();
        bad.permissions.clear();
        assert!(
            matches!(validate("pull", &bad), Err(ProviderError::InvalidSpec(m)) if m.contains("permission"))
        );
        let mut bad = ok.clone();
        bad.duration = Some(0);
        assert!(
            matches!(validate("pull", &bad), Err(ProviderError::InvalidSpec(m)) if m.contains("duration"))
        );
    }
}
