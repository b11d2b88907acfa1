//! Secrets engines (Mount, `sys/mounts`) and auth methods (AuthBackend, `sys/auth`): both
//! are mounts with a type fixed at creation, a description, lease TTLs and options, and
//! both are tuned in place at `<sys path>/<path>/tune`.
//!
//! vaultrs has no tune endpoint, so these calls use the client's raw requests.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};
use tessera_engine::managed::ProviderError;

use crate::api::{MANAGED_RESOURCE_UID, MountObservation};
use crate::connector::VaultClient;

/// Which kind of mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MountKind {
    Secrets,
    Auth,
}

impl MountKind {
    fn sys(self) -> &'static str {
        match self {
            MountKind::Secrets => "sys/mounts",
            MountKind::Auth => "sys/auth",
        }
    }
    fn what(self) -> &'static str {
        match self {
            MountKind::Secrets => "secrets engine",
            MountKind::Auth => "auth method",
        }
    }
}

/// What the spec asks of a mount.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Desired {
    pub type_: String,
    pub description: Option<String>,
    /// Seconds.
    pub default_ttl: Option<u64>,
    /// Seconds.
    pub max_ttl: Option<u64>,
    pub options: BTreeMap<String, String>,
}

impl Desired {
    /// Checks and converts the spec's fields.
    pub(crate) fn new(
        type_: &str,
        description: &Option<String>,
        default_ttl: &Option<String>,
        max_ttl: &Option<String>,
        options: &BTreeMap<String, String>,
    ) -> Result<Desired, ProviderError> {
        if type_.trim().is_empty() {
            return Err(ProviderError::InvalidSpec(
                "forProvider.type is empty".to_string(),
            ));
        }
        if options.contains_key(MANAGED_RESOURCE_UID) {
            return Err(ProviderError::InvalidSpec(format!(
                "forProvider.options: {MANAGED_RESOURCE_UID} is set by Tessera, not by the spec"
            )));
        }
        let ttl = |field: &str, v: &Option<String>| {
            v.as_deref()
                .map(|s| {
                    ttl_seconds(s).ok_or_else(|| {
                        ProviderError::InvalidSpec(format!(
                            "forProvider.{field} {s:?} is not a duration such as 1h, 30m, \
                             90s, 1h30m, 7d or a number of seconds"
                        ))
                    })
                })
                .transpose()
        };
        Ok(Desired {
            type_: type_.trim().to_string(),
            description: description.clone(),
            default_ttl: ttl("defaultLeaseTtl", default_ttl)?,
            max_ttl: ttl("maxLeaseTtl", max_ttl)?,
            options: options.clone(),
        })
    }
}

/// A mount as Vault lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Observed {
    pub type_: String,
    pub description: String,
    pub accessor: String,
    pub default_ttl: u64,
    pub max_ttl: u64,
    pub options: BTreeMap<String, String>,
}

impl Observed {
    fn from_json(v: &Value) -> Observed {
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        Observed {
            type_: s("type"),
            description: s("description"),
            accessor: s("accessor"),
            default_ttl: v["config"]["default_lease_ttl"].as_u64().unwrap_or(0),
            max_ttl: v["config"]["max_lease_ttl"].as_u64().unwrap_or(0),
            options: v["options"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The uid in the mount's `tessera.dev/managed-resource-uid` option.
    pub(crate) fn marked_uid(&self) -> Option<String> {
        self.options.get(MANAGED_RESOURCE_UID).cloned()
    }

    pub(crate) fn observation(&self) -> MountObservation {
        MountObservation {
            r#type: Some(self.type_.clone()),
            accessor: (!self.accessor.is_empty()).then(|| self.accessor.clone()),
            default_lease_ttl_seconds: Some(i64::try_from(self.default_ttl).unwrap_or(i64::MAX)),
            max_lease_ttl_seconds: Some(i64::try_from(self.max_ttl).unwrap_or(i64::MAX)),
            managed_resource_uid: self.marked_uid(),
        }
    }
}

/// Parses a Vault duration: a number of seconds, or a sequence of numbers with the units
/// `s`, `m`, `h` or `d` (`1h30m`).
pub(crate) fn ttl_seconds(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: u64 = digits.parse().ok()?;
        digits.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    digits.is_empty().then_some(total)
}

/// What differs between the spec and the mount, in words (`None`: up to date); a type
/// change is an error, since Vault cannot change it in place.
pub(crate) fn difference(
    kind: MountKind,
    path: &str,
    want: &Desired,
    have: &Observed,
) -> Result<Option<String>, ProviderError> {
    if want.type_ != have.type_ {
        return Err(ProviderError::InvalidSpec(format!(
            "the {} at {path:?} is of type {:?}, the spec asks for {:?}: Vault cannot change \
             the type of a mount in place. Set forProvider.type back to {:?}, or delete this \
             managed resource (with deletionPolicy Delete this disables the mount and \
             destroys its data) and create one with the new type",
            kind.what(),
            have.type_,
            want.type_,
            have.type_
        )));
    }
    let mut out = Vec::new();
    if let Some(d) = &want.description
        && *d != have.description
    {
        out.push(format!(
            "description is {:?} instead of {d:?}",
            have.description
        ));
    }
    if let Some(t) = want.default_ttl
        && t != have.default_ttl
    {
        out.push(format!(
            "default lease TTL is {}s instead of {t}s",
            have.default_ttl
        ));
    }
    if let Some(t) = want.max_ttl
        && t != have.max_ttl
    {
        out.push(format!(
            "max lease TTL is {}s instead of {t}s",
            have.max_ttl
        ));
    }
    for (k, v) in &want.options {
        match have.options.get(k) {
            Some(h) if h == v => {}
            Some(h) => out.push(format!("option {k} is {h:?} instead of {v:?}")),
            None => out.push(format!("option {k} is unset instead of {v:?}")),
        }
    }
    Ok((!out.is_empty()).then(|| out.join("; ")))
}

fn config(want: &Desired) -> serde_json::Map<String, Value> {
    let mut config = serde_json::Map::new();
    if let Some(t) = want.default_ttl {
        config.insert("default_lease_ttl".into(), json!(format!("{t}s")));
    }
    if let Some(t) = want.max_ttl {
        config.insert("max_lease_ttl".into(), json!(format!("{t}s")));
    }
    config
}

fn options_with_mark(want: &Desired, uid: &str) -> BTreeMap<String, String> {
    let mut options = want.options.clone();
    if !uid.is_empty() {
        options.insert(MANAGED_RESOURCE_UID.to_string(), uid.to_string());
    }
    options
}

impl VaultClient {
    /// The mount at `path`, `None` when there is none.
    pub(crate) async fn read_mount(
        &self,
        kind: MountKind,
        path: &str,
    ) -> Result<Option<Observed>, ProviderError> {
        let action = format!("list the {}s", kind.what());
        let list = self
            .raw(Method::GET, kind.sys(), None)
            .await
            .map_err(|e| self.error(&action, e))?
            .unwrap_or_default();
        // Vault answers with the mounts both at the top level and under `data`.
        let mounts = if list["data"].is_object() {
            &list["data"]
        } else {
            &list
        };
        let key = format!("{}/", path.trim_end_matches('/'));
        Ok(mounts.get(&key).map(Observed::from_json))
    }

    /// Enables the mount, with the mark of the managed resource `uid` in its options.
    pub(crate) async fn enable_mount(
        &self,
        kind: MountKind,
        path: &str,
        want: &Desired,
        uid: &str,
    ) -> Result<(), ProviderError> {
        let mut body = json!({
            "type": want.type_,
            "config": config(want),
            "options": options_with_mark(want, uid),
        });
        if let Some(d) = &want.description {
            body["description"] = json!(d);
        }
        self.raw(Method::POST, &format!("{}/{path}", kind.sys()), Some(&body))
            .await
            .map_err(|e| self.error(&format!("enable the {} at {path:?}", kind.what()), e))?;
        Ok(())
    }

    /// Tunes the mount to the spec (description, TTLs, options with the mark).
    pub(crate) async fn tune_mount(
        &self,
        kind: MountKind,
        path: &str,
        want: &Desired,
        uid: &str,
    ) -> Result<(), ProviderError> {
        let mut body = Value::Object(config(want));
        body["options"] = json!(options_with_mark(want, uid));
        if let Some(d) = &want.description {
            body["description"] = json!(d);
        }
        self.raw(
            Method::POST,
            &format!("{}/{path}/tune", kind.sys()),
            Some(&body),
        )
        .await
        .map_err(|e| self.error(&format!("tune the {} at {path:?}", kind.what()), e))?;
        Ok(())
    }

    /// Adds the mark of the managed resource `uid` to the mount's options, keeping the
    /// others.
    pub(crate) async fn mark_mount(
        &self,
        kind: MountKind,
        path: &str,
        uid: &str,
    ) -> Result<(), ProviderError> {
        let Some(have) = self.read_mount(kind, path).await? else {
            return Err(ProviderError::Transient(format!(
                "cannot mark the {} at {path:?}: it is gone",
                kind.what()
            )));
        };
        let mut options = have.options.clone();
        options.insert(MANAGED_RESOURCE_UID.to_string(), uid.to_string());
        let body = json!({ "options": options });
        self.raw(
            Method::POST,
            &format!("{}/{path}/tune", kind.sys()),
            Some(&body),
        )
        .await
        .map_err(|e| self.error(&format!("mark the {} at {path:?}", kind.what()), e))?;
        Ok(())
    }

    /// Disables the mount (no error when it is already gone).
    pub(crate) async fn disable_mount(
        &self,
        kind: MountKind,
        path: &str,
    ) -> Result<(), ProviderError> {
        self.raw(Method::DELETE, &format!("{}/{path}", kind.sys()), None)
            .await
            .map_err(|e| self.error(&format!("disable the {} at {path:?}", kind.what()), e))?;
        Ok(())
    }
}

/// Checks a mount path: relative, without `..`, spaces or control characters.
pub(crate) fn check_path(kind: MountKind, path: &str) -> Result<(), ProviderError> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.split('/').any(|seg| seg == "..")
        || path
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '?' | '#' | '%'));
    let reserved = kind == MountKind::Secrets
        && ["sys", "auth", "cubbyhole", "identity"].contains(&path.trim_end_matches('/'));
    if bad || reserved {
        return Err(ProviderError::InvalidSpec(format!(
            "{path:?} is not a path a {} can be enabled at (set metadata.name or the \
             tessera.dev/external-name annotation to a relative path such as team/kv; sys, \
             auth, cubbyhole and identity are Vault's own)",
            kind.what()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_vault_parses_them() {
        for (s, want) in [
            ("3600", Some(3600)),
            ("90s", Some(90)),
            ("30m", Some(1800)),
            ("1h30m", Some(5400)),
            ("7d", Some(604_800)),
            ("0", Some(0)),
            ("", None),
            ("1x", None),
            ("h", None),
            ("10m5", None),
        ] {
            assert_eq!(ttl_seconds(s), want, "{s:?}");
        }
    }

    fn have() -> Observed {
        Observed {
            type_: "kv".into(),
            description: "team kv".into(),
            accessor: "kv_1".into(),
            default_ttl: 3600,
            max_ttl: 0,
            options: [("version".to_string(), "2".to_string())].into(),
        }
    }

    #[test]
    fn only_the_fields_the_spec_sets_are_compared() {
        struct Case {
            reason: &'static str,
            want: Desired,
            diff: Option<&'static str>,
        }
        let base = Desired {
            type_: "kv".into(),
            ..Desired::default()
        };
        let cases = [
            Case {
                reason: "only the type set",
                want: base.clone(),
                diff: None,
            },
            Case {
                reason: "all set and equal",
                want: Desired {
                    description: Some("team kv".into()),
                    default_ttl: Some(3600),
                    max_ttl: Some(0),
                    options: [("version".to_string(), "2".to_string())].into(),
                    ..base.clone()
                },
                diff: None,
            },
            Case {
                reason: "description and TTL changed out of band",
                want: Desired {
                    description: Some("shared".into()),
                    default_ttl: Some(60),
                    ..base.clone()
                },
                diff: Some(
                    "description is \"team kv\" instead of \"shared\"; default lease TTL is 3600s instead of 60s",
                ),
            },
            Case {
                reason: "an option missing",
                want: Desired {
                    options: [("foo".to_string(), "bar".to_string())].into(),
                    ..base.clone()
                },
                diff: Some("option foo is unset instead of \"bar\""),
            },
        ];
        for c in cases {
            let got = difference(MountKind::Secrets, "team/kv", &c.want, &have()).unwrap();
            assert_eq!(got.as_deref(), c.diff, "{}", c.reason);
        }
    }

    #[test]
    fn a_type_change_is_refused_with_what_to_do() {
        let want = Desired {
            type_: "pki".into(),
            ..Desired::default()
        };
        let err = difference(MountKind::Secrets, "team/kv", &want, &have()).unwrap_err();
        assert_eq!(err.category(), "InvalidSpec");
        let msg = err.to_string();
        assert!(
            msg.contains("is of type \"kv\", the spec asks for \"pki\""),
            "{msg}"
        );
        assert!(
            msg.contains("cannot change the type of a mount in place"),
            "{msg}"
        );
    }

    #[test]
    fn bad_paths_and_a_spec_that_sets_the_mark_are_refused() {
        for p in ["", "/abs", "a/../b", "sys", "a b", "cubbyhole/"] {
            assert!(check_path(MountKind::Secrets, p).is_err(), "{p:?}");
        }
        assert!(check_path(MountKind::Secrets, "team/kv").is_ok());
        let options = [(MANAGED_RESOURCE_UID.to_string(), "x".to_string())].into();
        assert!(Desired::new("kv", &None, &None, &None, &options).is_err());
        assert!(Desired::new("kv", &None, &Some("1y".into()), &None, &BTreeMap::new()).is_err());
    }
}
