//! Project: a Harbor project, its metadata, CVE allowlist and storage quota.
//!
//! Harbor keeps no free-form field on a project (its metadata is a fixed set of keys), so
//! a project cannot carry Tessera's mark: [`ExternalClient::marks_ownership`] is false and
//! the reconciler treats a project as this managed resource's own only by its create
//! records. An existing project of the same name is therefore never taken over unless the
//! managed resource says `adoptExisting: true` (or is Observe-only).

use std::collections::BTreeMap;

use async_trait::async_trait;
use kube::Resource;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tessera_engine::api::common::ConnectionDetails;
use tessera_engine::managed::machine::external_name;
use tessera_engine::managed::{
    CreateIdentity, ExternalClient, Observation, Ownership, ProviderError,
};

use crate::api::{Project, ProjectObservation, ProjectParameters};
use crate::client::{Harbor, encode};

/// The project every Harbor installation starts with.
pub const DEFAULT_PROJECT: &str = "library";

/// Vulnerability severities Harbor knows, lowest first.
pub const SEVERITIES: &[&str] = &[
    "none",
    "unknown",
    "negligible",
    "low",
    "medium",
    "high",
    "critical",
];

/// Harbor's rule for project names: lower case letters and digits separated by single
/// `.`, `_` or `-`, 1 to 255 characters.
pub fn valid_project_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let mut prev_sep = true;
    for c in name.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            prev_sep = false;
        } else if matches!(c, '.' | '_' | '-') && !prev_sep {
            prev_sep = true;
        } else {
            return false;
        }
    }
    !prev_sep
}

fn validate(name: &str, p: &ProjectParameters) -> Result<(), ProviderError> {
    if !valid_project_name(name) {
        return Err(ProviderError::InvalidSpec(format!(
            "invalid Harbor project name {name:?}: Harbor requires lower case letters and digits separated by single '.', '_' or '-', 1 to 255 characters (set the tessera.dev/external-name annotation to choose another name)"
        )));
    }
    if let Some(s) = &p.severity
        && !SEVERITIES.contains(&s.as_str())
    {
        return Err(ProviderError::InvalidSpec(format!(
            "invalid forProvider.severity {s:?}: must be one of {}",
            SEVERITIES.join(", ")
        )));
    }
    if let Some(l) = p.storage_limit
        && l != -1
        && l <= 0
    {
        return Err(ProviderError::InvalidSpec(format!(
            "invalid forProvider.storageLimit {l}: -1 (unlimited) or a positive number of bytes"
        )));
    }
    Ok(())
}

/// The metadata values (as Harbor's strings) the spec manages.
fn desired_metadata(p: &ProjectParameters) -> BTreeMap<&'static str, String> {
    let mut m = BTreeMap::new();
    let mut flag = |key: &'static str, v: Option<bool>| {
        if let Some(v) = v {
            m.insert(key, v.to_string());
        }
    };
    flag("public", p.public);
    flag("auto_scan", p.auto_scan);
    flag("prevent_vul", p.prevent_vulnerable_images);
    flag("reuse_sys_cve_allowlist", p.reuse_system_cve_allowlist);
    if let Some(s) = &p.severity {
        m.insert("severity", s.clone());
    }
    m
}

fn cve_body(items: &[String]) -> Value {
    json!({ "items": items.iter().map(|c| json!({"cve_id": c})).collect::<Vec<_>>() })
}

fn observed_cves(project: &Value) -> Vec<String> {
    project["cve_allowlist"]["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["cve_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn metadata_bool(project: &Value, key: &str) -> Option<bool> {
    project["metadata"][key].as_str().map(|v| v == "true")
}

impl Harbor {
    /// The project named `name`, or `None`.
    pub async fn project(&self, name: &str) -> Result<Option<Value>, ProviderError> {
        let req = self
            .request(Method::GET, &format!("/projects/{}", encode(name)))
            .header("X-Is-Resource-Name", "true");
        self.get_json(&format!("read project {name}"), req).await
    }

    /// The quota of the project with id `project_id`: (quota id, hard storage limit).
    pub async fn project_quota(
        &self,
        project_id: i64,
    ) -> Result<Option<(i64, i64)>, ProviderError> {
        let action = format!("read the quota of project {project_id}");
        let req = self.request(
            Method::GET,
            &format!("/quotas?reference=project&reference_id={project_id}"),
        );
        let Some(list) = self.get_json(&action, req).await? else {
            return Ok(None);
        };
        Ok(list
            .as_array()
            .and_then(|l| l.first())
            .and_then(|q| Some((q["id"].as_i64()?, q["hard"]["storage"].as_i64()?))))
    }

    async fn set_quota(
        &self,
        name: &str,
        quota_id: i64,
        storage: i64,
    ) -> Result<(), ProviderError> {
        let action = format!("set the storage quota of project {name}");
        let answer = self
            .send(
                &action,
                self.request(Method::PUT, &format!("/quotas/{quota_id}"))
                    .json(&json!({"hard": {"storage": storage}})),
            )
            .await?;
        match answer.status {
            StatusCode::OK => Ok(()),
            _ => Err(self.unexpected(&action, &answer)),
        }
    }
}

fn deleting(mr: &Project) -> bool {
    mr.meta().deletion_timestamp.is_some()
}

#[async_trait]
impl ExternalClient<Project> for Harbor {
    fn create_identity(&self) -> CreateIdentity {
        // The project name is the identity and Harbor refuses a second project of a name.
        CreateIdentity::Deterministic
    }

    async fn observe(&self, mr: &mut Project) -> Result<Observation, ProviderError> {
        let name = external_name(mr);
        if !deleting(mr) {
            validate(&name, &mr.spec.for_provider)?;
        } else if !valid_project_name(&name) {
            return Ok(Observation::absent());
        }
        let Some(project) = self.project(&name).await? else {
            return Ok(Observation::absent());
        };
        // Harbor cannot keep a mark on a project (see the module doc): every existing project
        // is Unmarked, except Harbor's own default project, which is never taken over.
        let ownership = if name == DEFAULT_PROJECT {
            Ownership::Protected("Harbor's default project".into())
        } else {
            Ownership::Unmarked
        };
        if deleting(mr) {
            return Ok(Observation::up_to_date().with_ownership(ownership));
        }
        let id = project["project_id"].as_i64();
        let quota = match id {
            Some(id) => self.project_quota(id).await?,
            None => None,
        };
        let spec = &mr.spec.for_provider;
        let mut diffs = Vec::new();
        for (key, want) in desired_metadata(spec) {
            let have = project["metadata"][key].as_str().unwrap_or("");
            if have != want {
                diffs.push(format!("metadata.{key} is {have:?}, want {want:?}"));
            }
        }
        if let Some(want) = &spec.cve_allowlist {
            let have = observed_cves(&project);
            if &have != want {
                diffs.push(format!("CVE allowlist is {have:?}, want {want:?}"));
            }
        }
        if let (Some(want), Some((_, have))) = (spec.storage_limit, quota)
            && want != have
        {
            diffs.push(format!("storage limit is {have}, want {want}"));
        }
        mr.status.get_or_insert_with(Default::default).at_provider = Some(ProjectObservation {
            project_id: id,
            public: metadata_bool(&project, "public"),
            storage_limit: quota.map(|(_, s)| s),
            repo_count: project["repo_count"].as_i64(),
        });
        Ok(if diffs.is_empty() {
            Observation::up_to_date()
        } else {
            Observation::drifted(diffs.join("; "))
        }
        .with_ownership(ownership))
    }

    async fn create(&self, mr: &mut Project) -> Result<ConnectionDetails, ProviderError> {
        let name = external_name(mr);
        let spec = &mr.spec.for_provider;
        validate(&name, spec)?;
        let mut body = json!({
            "project_name": name,
            "metadata": desired_metadata(spec),
        });
        if let Some(l) = spec.storage_limit {
            body["storage_limit"] = json!(l);
        }
        if let Some(c) = &spec.cve_allowlist {
            body["cve_allowlist"] = cve_body(c);
        }
        if let Some(r) = spec.registry_id {
            body["registry_id"] = json!(r);
        }
        let action = format!("create project {name}");
        let answer = self
            .send(&action, self.request(Method::POST, "/projects").json(&body))
            .await?;
        match answer.status {
            StatusCode::CREATED => Ok(ConnectionDetails::default()),
            StatusCode::CONFLICT => Err(ProviderError::Transient(format!(
                "cannot {action}: a project of that name was created meanwhile by someone else; it is not taken over"
            ))),
            _ => Err(self.unexpected(&action, &answer)),
        }
    }

    async fn update(&self, mr: &mut Project) -> Result<ConnectionDetails, ProviderError> {
        let name = external_name(mr);
        let spec = &mr.spec.for_provider;
        validate(&name, spec)?;
        let mut body = json!({ "metadata": desired_metadata(spec) });
        if let Some(c) = &spec.cve_allowlist {
            body["cve_allowlist"] = cve_body(c);
        }
        let action = format!("update project {name}");
        let answer = self
            .send(
                &action,
                self.request(Method::PUT, &format!("/projects/{}", encode(&name)))
                    .header("X-Is-Resource-Name", "true")
                    .json(&body),
            )
            .await?;
        if answer.status != StatusCode::OK {
            return Err(self.unexpected(&action, &answer));
        }
        if let Some(want) = spec.storage_limit {
            let project = self.project(&name).await?.ok_or_else(|| {
                ProviderError::Transient(format!("project {name} disappeared during its update"))
            })?;
            let id = project["project_id"].as_i64().ok_or_else(|| {
                ProviderError::Transient(format!(
                    "Harbor answered project {name} without project_id"
                ))
            })?;
            match self.project_quota(id).await? {
                Some((qid, have)) if have != want => self.set_quota(&name, qid, want).await?,
                Some(_) => {}
                None => {
                    return Err(ProviderError::Transient(format!(
                        "project {name} has no quota in Harbor (yet)"
                    )));
                }
            }
        }
        Ok(ConnectionDetails::default())
    }

    async fn delete(&self, mr: &Project) -> Result<(), ProviderError> {
        let name = external_name(mr);
        let action = format!("delete project {name}");
        let answer = self
            .send(
                &action,
                self.request(Method::DELETE, &format!("/projects/{}", encode(&name)))
                    .header("X-Is-Resource-Name", "true"),
            )
            .await?;
        match answer.status {
            StatusCode::OK | StatusCode::NOT_FOUND => Ok(()),
            StatusCode::PRECONDITION_FAILED => Err(ProviderError::Transient(format!(
                "Harbor refuses to delete project {name} while it holds repositories ({}): delete its repositories in Harbor, or set deletionPolicy: Orphan to keep the project",
                answer.message()
            ))),
            _ => Err(self.unexpected(&action, &answer)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_follow_harbors_rule() {
        for ok in ["a", "team-a", "team.a_b", "0", "a1-b2"] {
            assert!(valid_project_name(ok), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in [
            "",
            "Team",
            "team--a",
            "-a",
            "a-",
            "a b",
            "a/b",
            long.as_str(),
        ] {
            assert!(!valid_project_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn metadata_values_are_harbors_strings() {
        let p = ProjectParameters {
            public: Some(true),
            auto_scan: Some(false),
            severity: Some("high".into()),
            ..Default::default()
        };
        let m = desired_metadata(&p);
        assert_eq!(m["public"], "true");
        assert_eq!(m["auto_scan"], "false");
        assert_eq!(m["severity"], "high");
        assert!(
            !m.contains_key("prevent_vul"),
            "unset fields are not managed"
        );
    }

    #[test]
    fn invalid_severity_and_storage_limit_are_spec_errors() {
        let bad = ProjectParameters {
            severity: Some("severe".into()),
            ..Default::default()
        };
        assert!(
            matches!(validate("a", &bad), Err(ProviderError::InvalidSpec(m)) if m.contains("severity"))
        );
        let bad = ProjectParameters {
            storage_limit: Some(0),
            ..Default::default()
        };
        assert!(matches!(
            validate("a", &bad),
            Err(ProviderError::InvalidSpec(_))
        ));
        assert!(
            matches!(validate("Bad", &ProjectParameters::default()), Err(ProviderError::InvalidSpec(m)) if m.contains("external-name"))
        );
    }
}
