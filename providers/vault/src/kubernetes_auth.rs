//! The kubernetes auth method's configuration (`auth/<backend>/config`) and roles
//! (`auth/<backend>/role/<name>`), through the client's raw requests.
//!
//! Neither has a field Vault keeps for Tessera's ownership mark: their observations report
//! no managed-resource uid.

use std::collections::BTreeSet;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use reqwest::Method;
use serde_json::{Value, json};
use tessera_engine::api::common::{ConnectionDetails, SecretKeySelector};
use tessera_engine::managed::client::Ownership;
use tessera_engine::managed::machine::external_name;
use tessera_engine::managed::{CreateIdentity, ExternalClient, Observation, ProviderError};

use crate::api::{
    KeyReference, KeyReferenceKind, KubernetesAuthBackendConfig,
    KubernetesAuthBackendConfigObservation, KubernetesAuthRole, KubernetesAuthRoleObservation,
    KubernetesAuthRoleParameters,
};
use crate::connector::{VaultClient, deleting};
use crate::mounts::{MountKind, check_path, ttl_seconds};

fn missing_backend(backend: &str) -> ProviderError {
    ProviderError::Transient(format!(
        "there is no auth method at auth/{backend} (yet): create an AuthBackend of type \
         kubernetes at path {backend:?}"
    ))
}

impl VaultClient {
    /// A key of a ConfigMap or Secret, as text.
    async fn key_text(&self, r: &KeyReference, field: &str) -> Result<String, ProviderError> {
        let what = format!("{:?} {}/{} ({field})", r.kind, r.namespace, r.name);
        let get_err = |e: kube::Error| ProviderError::Transient(format!("cannot read {what}: {e}"));
        let value = match r.kind {
            KeyReferenceKind::ConfigMap => {
                let api: Api<ConfigMap> = Api::namespaced(self.inner.kube.clone(), &r.namespace);
                let cm = api.get_opt(&r.name).await.map_err(get_err)?;
                cm.map(|cm| cm.data.and_then(|mut d| d.remove(&r.key)))
            }
            KeyReferenceKind::Secret => {
                let api: Api<Secret> = Api::namespaced(self.inner.kube.clone(), &r.namespace);
                let s = api.get_opt(&r.name).await.map_err(get_err)?;
                s.map(|s| {
                    s.data
                        .and_then(|mut d| d.remove(&r.key))
                        .and_then(|v| String::from_utf8(v.0).ok())
                })
            }
        };
        match value {
            None => Err(ProviderError::Transient(format!("{what} not found"))),
            Some(None) => Err(ProviderError::InvalidSpec(format!(
                "{what} has no text key {:?}",
                r.key
            ))),
            Some(Some(v)) => Ok(v),
        }
    }

    async fn secret_key_text(
        &self,
        r: &SecretKeySelector,
        field: &str,
    ) -> Result<String, ProviderError> {
        let r = KeyReference {
            kind: KeyReferenceKind::Secret,
            name: r.name.clone(),
            namespace: r.namespace.clone(),
            key: r.key.clone(),
        };
        self.key_text(&r, field).await
    }

    async fn write_k8s_config(
        &self,
        mr: &KubernetesAuthBackendConfig,
    ) -> Result<ConnectionDetails, ProviderError> {
        let p = &mr.spec.for_provider;
        check_path(MountKind::Auth, &p.backend)?;
        let mut body = json!({ "kubernetes_host": p.kubernetes_host });
        if let Some(r) = &p.kubernetes_ca_cert_ref {
            body["kubernetes_ca_cert"] = json!(self.key_text(r, "kubernetesCaCertRef").await?);
        }
        if let Some(r) = &p.token_reviewer_jwt_secret_ref {
            let jwt = self.secret_key_text(r, "tokenReviewerJwtSecretRef").await?;
            body["token_reviewer_jwt"] = json!(jwt.trim());
        }
        if let Some(i) = &p.issuer {
            body["issuer"] = json!(i);
        }
        if let Some(d) = p.disable_local_ca_jwt {
            body["disable_local_ca_jwt"] = json!(d);
        }
        let action = format!("configure the kubernetes auth method at auth/{}", p.backend);
        self.raw(
            Method::POST,
            &format!("auth/{}/config", p.backend),
            Some(&body),
        )
        .await
        .map_err(|e| self.error(&action, e))?
        .ok_or_else(|| missing_backend(&p.backend))?;
        Ok(ConnectionDetails::new())
    }

    async fn write_k8s_role(
        &self,
        mr: &KubernetesAuthRole,
    ) -> Result<ConnectionDetails, ProviderError> {
        let p = &mr.spec.for_provider;
        let name = role_name(mr)?;
        let mut body = json!({
            "bound_service_account_names": p.bound_service_account_names,
            "bound_service_account_namespaces": p.bound_service_account_namespaces,
            "token_policies": p.token_policies,
        });
        let (ttl, max_ttl) = role_ttls(p)?;
        if let Some(t) = ttl {
            body["token_ttl"] = json!(t);
        }
        if let Some(t) = max_ttl {
            body["token_max_ttl"] = json!(t);
        }
        if let Some(a) = &p.audience {
            body["audience"] = json!(a);
        }
        let action = format!("write role {name:?} of auth/{}", p.backend);
        self.raw(
            Method::POST,
            &format!("auth/{}/role/{name}", p.backend),
            Some(&body),
        )
        .await
        .map_err(|e| self.error(&action, e))?;
        // Vault answers 204 for a write; 404 means no such auth method.
        if self
            .raw(
                Method::GET,
                &format!("auth/{}/role/{name}", p.backend),
                None,
            )
            .await
            .map_err(|e| self.error(&action, e))?
            .is_none()
        {
            return Err(missing_backend(&p.backend));
        }
        let mut c = ConnectionDetails::new();
        c.insert("address", self.address());
        c.insert("auth_path", p.backend.as_str());
        c.insert("role", name.as_str());
        Ok(c)
    }
}

fn role_name(mr: &KubernetesAuthRole) -> Result<String, ProviderError> {
    let p = &mr.spec.for_provider;
    check_path(MountKind::Auth, &p.backend)?;
    let name = external_name(mr);
    if name.is_empty() || name.contains('/') || name.chars().any(|c| c.is_control()) {
        return Err(ProviderError::InvalidSpec(format!(
            "role name {name:?} is not a Vault role name (empty, or with a slash or a control \
             character)"
        )));
    }
    Ok(name)
}

fn role_ttls(
    p: &KubernetesAuthRoleParameters,
) -> Result<(Option<u64>, Option<u64>), ProviderError> {
    let parse = |field: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| {
                ttl_seconds(s).ok_or_else(|| {
                    ProviderError::InvalidSpec(format!(
                        "forProvider.{field} {s:?} is not a duration such as 1h, 30m or 90s"
                    ))
                })
            })
            .transpose()
    };
    Ok((
        parse("tokenTtl", &p.token_ttl)?,
        parse("tokenMaxTtl", &p.token_max_ttl)?,
    ))
}

fn set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// What differs between the spec and the role Vault has (`data` of its read), in words.
pub(crate) fn role_difference(
    p: &KubernetesAuthRoleParameters,
    ttls: (Option<u64>, Option<u64>),
    have: &Value,
) -> Option<String> {
    let mut out = Vec::new();
    for (field, want, key) in [
        (
            "bound service account names",
            &p.bound_service_account_names,
            "bound_service_account_names",
        ),
        (
            "bound service account namespaces",
            &p.bound_service_account_namespaces,
            "bound_service_account_namespaces",
        ),
        ("token policies", &p.token_policies, "token_policies"),
    ] {
        let want: BTreeSet<String> = want.iter().cloned().collect();
        let have = set(&have[key]);
        if want != have {
            out.push(format!(
                "{field} are [{}] instead of [{}]",
                have.into_iter().collect::<Vec<_>>().join(", "),
                want.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let (ttl, max_ttl) = ttls;
    for (field, want, key) in [
        ("token TTL", ttl, "token_ttl"),
        ("token max TTL", max_ttl, "token_max_ttl"),
    ] {
        if let Some(w) = want {
            let h = have[key].as_u64().unwrap_or(0);
            if w != h {
                out.push(format!("{field} is {h}s instead of {w}s"));
            }
        }
    }
    if let Some(a) = &p.audience
        && have["audience"].as_str() != Some(a.as_str())
    {
        out.push(format!("audience is {} instead of {a:?}", have["audience"]));
    }
    (!out.is_empty()).then(|| out.join("; "))
}

#[async_trait]
impl ExternalClient<KubernetesAuthBackendConfig> for VaultClient {
    // The configuration is the auth method's path: one per method.
    fn create_identity(&self) -> CreateIdentity {
        CreateIdentity::Deterministic
    }

    async fn observe(
        &self,
        mr: &mut KubernetesAuthBackendConfig,
    ) -> Result<Observation, ProviderError> {
        if deleting(mr) {
            // Vault cannot delete the configuration; it goes with the auth method.
            return Ok(Observation::absent());
        }
        let p = mr.spec.for_provider.clone();
        check_path(MountKind::Auth, &p.backend)?;
        let action = format!("read the configuration of auth/{}", p.backend);
        let Some(have) = self
            .raw(Method::GET, &format!("auth/{}/config", p.backend), None)
            .await
            .map_err(|e| self.error(&action, e))?
        else {
            return Ok(Observation::absent());
        };
        let have = &have["data"];
        mr.status.get_or_insert_with(Default::default).at_provider =
            Some(KubernetesAuthBackendConfigObservation {
                kubernetes_host: have["kubernetes_host"].as_str().map(str::to_string),
                token_reviewer_jwt_set: have["token_reviewer_jwt_set"].as_bool(),
            });
        let mut out = Vec::new();
        if have["kubernetes_host"].as_str() != Some(p.kubernetes_host.as_str()) {
            out.push(format!(
                "kubernetes host is {} instead of {:?}",
                have["kubernetes_host"], p.kubernetes_host
            ));
        }
        if let Some(r) = &p.kubernetes_ca_cert_ref {
            let want = self.key_text(r, "kubernetesCaCertRef").await?;
            if have["kubernetes_ca_cert"].as_str().map(str::trim) != Some(want.trim()) {
                out.push("the kubernetes CA certificate differs".to_string());
            }
        }
        if p.token_reviewer_jwt_secret_ref.is_some()
            && have["token_reviewer_jwt_set"].as_bool() != Some(true)
        {
            out.push("no token reviewer JWT is set".to_string());
        }
        if let Some(i) = &p.issuer
            && have["issuer"].as_str() != Some(i.as_str())
        {
            out.push(format!("issuer is {} instead of {i:?}", have["issuer"]));
        }
        if let Some(d) = p.disable_local_ca_jwt
            && have["disable_local_ca_jwt"].as_bool() != Some(d)
        {
            out.push(format!(
                "disable local CA JWT is {}",
                have["disable_local_ca_jwt"]
            ));
        }
        // A setting of the auth method (guarded as an AuthBackend), with no identity of
        // its own to take over.
        Ok(if out.is_empty() {
            Observation::up_to_date()
        } else {
            Observation::drifted(out.join("; "))
        }
        .with_ownership(Ownership::NotTracked))
    }

    async fn create(
        &self,
        mr: &mut KubernetesAuthBackendConfig,
    ) -> Result<ConnectionDetails, ProviderError> {
        self.write_k8s_config(mr).await
    }

    async fn update(
        &self,
        mr: &mut KubernetesAuthBackendConfig,
    ) -> Result<ConnectionDetails, ProviderError> {
        self.write_k8s_config(mr).await
    }

    async fn delete(&self, _: &KubernetesAuthBackendConfig) -> Result<(), ProviderError> {
        Ok(())
    }
}

#[async_trait]
impl ExternalClient<KubernetesAuthRole> for VaultClient {
    // A role is its name, unique per auth method.
    fn create_identity(&self) -> CreateIdentity {
        CreateIdentity::Deterministic
    }

    async fn observe(&self, mr: &mut KubernetesAuthRole) -> Result<Observation, ProviderError> {
        let p = mr.spec.for_provider.clone();
        let deleting = deleting(mr);
        let name = match role_name(mr) {
            Ok(n) => n,
            Err(_) if deleting => return Ok(Observation::absent()),
            Err(e) => return Err(e),
        };
        let action = format!("read role {name:?} of auth/{}", p.backend);
        let have = self
            .raw(
                Method::GET,
                &format!("auth/{}/role/{name}", p.backend),
                None,
            )
            .await
            .map_err(|e| self.error(&action, e))?;
        let Some(have) = have else {
            return Ok(Observation::absent());
        };
        if deleting {
            return Ok(Observation {
                exists: true,
                ..Observation::default()
            });
        }
        let ttls = role_ttls(&p)?;
        let have = &have["data"];
        mr.status.get_or_insert_with(Default::default).at_provider =
            Some(KubernetesAuthRoleObservation {
                token_policies: set(&have["token_policies"]).into_iter().collect(),
            });
        let mut c = ConnectionDetails::new();
        c.insert("address", self.address());
        c.insert("auth_path", p.backend.as_str());
        c.insert("role", name.as_str());
        Ok(match role_difference(&p, ttls, have) {
            None => Observation::up_to_date(),
            Some(diff) => Observation::drifted(diff),
        }
        .with_connection(c))
    }

    async fn create(
        &self,
        mr: &mut KubernetesAuthRole,
    ) -> Result<ConnectionDetails, ProviderError> {
        self.write_k8s_role(mr).await
    }

    async fn update(
        &self,
        mr: &mut KubernetesAuthRole,
    ) -> Result<ConnectionDetails, ProviderError> {
        self.write_k8s_role(mr).await
    }

    async fn delete(&self, mr: &KubernetesAuthRole) -> Result<(), ProviderError> {
        let p = &mr.spec.for_provider;
        let name = role_name(mr)?;
        self.raw(
            Method::DELETE,
            &format!("auth/{}/role/{name}", p.backend),
            None,
        )
        .await
        .map_err(|e| self.error(&format!("delete role {name:?} of auth/{}", p.backend), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_lists_compare_as_sets_and_differences_name_the_field() {
        let p = KubernetesAuthRoleParameters {
            backend: "kubernetes".into(),
            bound_service_account_names: vec!["app".into(), "worker".into()],
            bound_service_account_namespaces: vec!["shop".into()],
            token_policies: vec!["shop-read".into()],
            token_ttl: Some("1h".into()),
            token_max_ttl: None,
            audience: None,
        };
        let have = json!({
            "bound_service_account_names": ["worker", "app"],
            "bound_service_account_namespaces": ["shop"],
            "token_policies": ["shop-read"],
            "token_ttl": 3600, "token_max_ttl": 99, "audience": "x"
        });
        assert_eq!(role_difference(&p, (Some(3600), None), &have), None);
        let drifted = json!({
            "bound_service_account_names": ["app"],
            "bound_service_account_namespaces": ["shop"],
            "token_policies": ["shop-read", "admin"],
            "token_ttl": 60
        });
        assert_eq!(
            role_difference(&p, (Some(3600), None), &drifted).as_deref(),
            Some(
                "bound service account names are [app] instead of [app, worker]; token \
                 policies are [admin, shop-read] instead of [shop-read]; token TTL is 60s \
                 instead of 3600s"
            )
        );
    }
}
