//! ProjectMember: a user's or group's role in a Harbor project
//! (`/projects/{name}/members`).
//!
//! A membership is identified by its project and its user or group (Harbor refuses a second
//! one with 409); Harbor assigns it an id, which observe finds again by the entity's name.
//! A membership cannot carry a mark: an existing one (for example the project creator's
//! `projectAdmin`) is only managed with `adoptExisting: true`, and the ProviderConfig's own
//! user is never managed.

use async_trait::async_trait;
use kube::Resource;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tessera_engine::api::common::ConnectionDetails;
use tessera_engine::managed::{
    CreateIdentity, ExternalClient, Observation, Ownership, ProviderError,
};

use crate::api::{MemberRole, ProjectMember, ProjectMemberObservation, ProjectMemberParameters};
use crate::client::{Harbor, encode};
use crate::project::valid_project_name;

/// Members read per page, and pages at most.
const PAGE_SIZE: usize = 100;
const MAX_PAGES: usize = 20;

/// The member's entity: Harbor's entity type (`u` or `g`) and name.
fn entity(p: &ProjectMemberParameters) -> Result<(&'static str, &str), ProviderError> {
    match (&p.user, &p.group) {
        (Some(u), None) if !u.is_empty() => Ok(("u", u)),
        (None, Some(g)) if !g.is_empty() => Ok(("g", g)),
        _ => Err(ProviderError::InvalidSpec(
            "set exactly one of forProvider.user and forProvider.group".into(),
        )),
    }
}

fn validate(p: &ProjectMemberParameters) -> Result<(), ProviderError> {
    if !valid_project_name(&p.project) {
        return Err(ProviderError::InvalidSpec(format!(
            "invalid forProvider.project {:?}: not a Harbor project name",
            p.project
        )));
    }
    entity(p)?;
    if p.user.is_some() && p.group_type.is_some() {
        return Err(ProviderError::InvalidSpec(
            "forProvider.groupType applies to groups only".into(),
        ));
    }
    Ok(())
}

fn deleting(mr: &ProjectMember) -> bool {
    mr.meta().deletion_timestamp.is_some()
}

fn describe(p: &ProjectMemberParameters) -> String {
    match (&p.user, &p.group) {
        (Some(u), _) => format!("user {u} in project {}", p.project),
        (_, Some(g)) => format!("group {g} in project {}", p.project),
        _ => format!("member of project {}", p.project),
    }
}

impl Harbor {
    /// The membership of the entity in the project, or `None` (also when the project does
    /// not exist).
    async fn member(&self, p: &ProjectMemberParameters) -> Result<Option<Value>, ProviderError> {
        let (kind, name) = entity(p)?;
        for page in 1..=MAX_PAGES {
            let action = format!("list the members of project {}", p.project);
            let req = self
                .request(
                    Method::GET,
                    &format!(
                        "/projects/{}/members?entityname={}&page={page}&page_size={PAGE_SIZE}",
                        encode(&p.project),
                        encode(name)
                    ),
                )
                .header("X-Is-Resource-Name", "true");
            let Some(list) = self.get_json(&action, req).await? else {
                return Ok(None);
            };
            let items = list.as_array().cloned().unwrap_or_default();
            if let Some(m) = items.iter().find(|m| {
                m["entity_type"].as_str() == Some(kind) && m["entity_name"].as_str() == Some(name)
            }) {
                return Ok(Some(m.clone()));
            }
            if items.len() < PAGE_SIZE {
                return Ok(None);
            }
        }
        Err(ProviderError::Transient(format!(
            "project {} has more than {} members named like {name}",
            p.project,
            PAGE_SIZE * MAX_PAGES
        )))
    }

    async fn set_role(
        &self,
        p: &ProjectMemberParameters,
        id: i64,
        role: MemberRole,
    ) -> Result<(), ProviderError> {
        let action = format!("set the role of {}", describe(p));
        let answer = self
            .send(
                &action,
                self.request(
                    Method::PUT,
                    &format!("/projects/{}/members/{id}", encode(&p.project)),
                )
                .header("X-Is-Resource-Name", "true")
                .json(&json!({"role_id": role.id()})),
            )
            .await?;
        match answer.status {
            StatusCode::OK => Ok(()),
            _ => Err(self.unexpected(&action, &answer)),
        }
    }
}

#[async_trait]
impl ExternalClient<ProjectMember> for Harbor {
    fn create_identity(&self) -> CreateIdentity {
        // Project + user or group identify a membership; Harbor refuses a second one (409).
        CreateIdentity::Deterministic
    }

    async fn observe(&self, mr: &mut ProjectMember) -> Result<Observation, ProviderError> {
        let p = mr.spec.for_provider.clone();
        if deleting(mr) {
            if validate(&p).is_err() {
                return Ok(Observation::absent());
            }
        } else {
            validate(&p)?;
        }
        let Some(member) = self.member(&p).await? else {
            return Ok(Observation::absent());
        };
        let ownership = if p.user.as_deref() == Some(self.username()) {
            Ownership::Protected("the ProviderConfig's own Harbor user".into())
        } else {
            Ownership::Unmarked
        };
        if deleting(mr) {
            return Ok(Observation::up_to_date().with_ownership(ownership));
        }
        let role_id = member["role_id"].as_i64().unwrap_or_default();
        let have = MemberRole::from_id(role_id);
        mr.status.get_or_insert_with(Default::default).at_provider =
            Some(ProjectMemberObservation {
                member_id: member["id"].as_i64(),
                entity_id: member["entity_id"].as_i64(),
                role: have,
            });
        let want = p.role;
        Ok(if have == Some(want) {
            Observation::up_to_date()
        } else {
            Observation::drifted(format!(
                "role is {}, want {want:?}",
                have.map_or_else(|| format!("role_id {role_id}"), |r| format!("{r:?}"))
            ))
        }
        .with_ownership(ownership))
    }

    async fn create(&self, mr: &mut ProjectMember) -> Result<ConnectionDetails, ProviderError> {
        let p = mr.spec.for_provider.clone();
        validate(&p)?;
        let mut body = json!({"role_id": p.role.id()});
        if let Some(u) = &p.user {
            body["member_user"] = json!({"username": u});
        }
        if let Some(g) = &p.group {
            body["member_group"] =
                json!({"group_name": g, "group_type": p.group_type.unwrap_or(3)});
        }
        let action = format!("add {}", describe(&p));
        let answer = self
            .send(
                &action,
                self.request(
                    Method::POST,
                    &format!("/projects/{}/members", encode(&p.project)),
                )
                .header("X-Is-Resource-Name", "true")
                .json(&body),
            )
            .await?;
        match answer.status {
            StatusCode::CREATED => Ok(ConnectionDetails::default()),
            StatusCode::CONFLICT => Err(ProviderError::Transient(format!(
                "cannot {action}: Harbor already has this membership (409); it is not taken over: set spec.adoptExisting: true to manage it"
            ))),
            StatusCode::NOT_FOUND => Err(ProviderError::Transient(format!(
                "cannot {action}: {} (create the user or group in Harbor first)",
                answer.message()
            ))),
            _ => Err(self.unexpected(&action, &answer)),
        }
    }

    async fn update(&self, mr: &mut ProjectMember) -> Result<ConnectionDetails, ProviderError> {
        let p = mr.spec.for_provider.clone();
        validate(&p)?;
        let member = self.member(&p).await?.ok_or_else(|| {
            ProviderError::Transient(format!("{} disappeared during its update", describe(&p)))
        })?;
        let id = member["id"].as_i64().ok_or_else(|| {
            ProviderError::Transient("Harbor answered a member without id".into())
        })?;
        self.set_role(&p, id, p.role).await?;
        Ok(ConnectionDetails::default())
    }

    async fn delete(&self, mr: &ProjectMember) -> Result<(), ProviderError> {
        let p = &mr.spec.for_provider;
        let Some(member) = self.member(p).await? else {
            return Ok(());
        };
        let id = member["id"].as_i64().unwrap_or_default();
        let action = format!("remove {}", describe(p));
        let answer = self
            .send(
                &action,
                self.request(
                    Method::DELETE,
                    &format!("/projects/{}/members/{id}", encode(&p.project)),
                )
                .header("X-Is-Resource-Name", "true"),
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
    fn roles_map_to_harbors_role_ids() {
        for (role, id) in [
            (MemberRole::ProjectAdmin, 1),
            (MemberRole::Developer, 2),
            (MemberRole::Guest, 3),
            (MemberRole::Maintainer, 4),
            (MemberRole::LimitedGuest, 5),
        ] {
            assert_eq!(role.id(), id);
            assert_eq!(MemberRole::from_id(id), Some(role));
        }
        assert_eq!(MemberRole::from_id(6), None);
    }

    #[test]
    fn a_member_is_exactly_one_user_or_group() {
        let mut p = ProjectMemberParameters {
            project: "team-a".into(),
            user: Some("alice".into()),
            ..Default::default()
        };
        assert!(validate(&p).is_ok());
        p.group = Some("devs".into());
        assert!(
            matches!(validate(&p), Err(ProviderError::InvalidSpec(m)) if m.contains("exactly one"))
        );
        p.user = None;
        assert!(validate(&p).is_ok());
        p.group = None;
        assert!(validate(&p).is_err());
    }
}
