//! Pure logic of Roles: validating the spec, comparing it with the pg_roles row, and the
//! statements that make the row match.

use std::collections::{BTreeMap, BTreeSet};

use tessera_engine::managed::ProviderError;

use crate::api::{ConfigurationParameter, RoleParameters, RolePrivileges};
use crate::sql::{ident, literal, validate_literal, validate_parameter_name};

/// A role as pg_roles has it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RoleRow {
    pub login: bool,
    pub create_db: bool,
    pub create_role: bool,
    pub inherit: bool,
    pub replication: bool,
    pub bypass_rls: bool,
    pub super_user: bool,
    pub connection_limit: i32,
    /// From rolconfig, sorted by name.
    pub configuration_parameters: Vec<ConfigurationParameter>,
}

impl RoleRow {
    pub(crate) fn privileges(&self) -> RolePrivileges {
        RolePrivileges {
            login: Some(self.login),
            create_db: Some(self.create_db),
            create_role: Some(self.create_role),
            inherit: Some(self.inherit),
            replication: Some(self.replication),
            bypass_rls: Some(self.bypass_rls),
            super_user: Some(self.super_user),
        }
    }
}

/// One role attribute: its spec name, its keyword, and how to read it.
struct Attribute {
    field: &'static str,
    keyword: &'static str,
    want: fn(&RolePrivileges) -> Option<bool>,
    have: fn(&RoleRow) -> bool,
}

const ATTRIBUTES: [Attribute; 7] = [
    Attribute {
        field: "superUser",
        keyword: "SUPERUSER",
        want: |p| p.super_user,
        have: |r| r.super_user,
    },
    Attribute {
        field: "login",
        keyword: "LOGIN",
        want: |p| p.login,
        have: |r| r.login,
    },
    Attribute {
        field: "createDb",
        keyword: "CREATEDB",
        want: |p| p.create_db,
        have: |r| r.create_db,
    },
    Attribute {
        field: "createRole",
        keyword: "CREATEROLE",
        want: |p| p.create_role,
        have: |r| r.create_role,
    },
    Attribute {
        field: "inherit",
        keyword: "INHERIT",
        want: |p| p.inherit,
        have: |r| r.inherit,
    },
    Attribute {
        field: "replication",
        keyword: "REPLICATION",
        want: |p| p.replication,
        have: |r| r.replication,
    },
    Attribute {
        field: "bypassRls",
        keyword: "BYPASSRLS",
        want: |p| p.bypass_rls,
        have: |r| r.bypass_rls,
    },
];

fn keyword(attribute: &Attribute, on: bool) -> String {
    if on {
        attribute.keyword.to_string()
    } else {
        format!("NO{}", attribute.keyword)
    }
}

/// Checks what PostgreSQL would reject or what would be ambiguous, before any statement.
pub(crate) fn validate(params: &RoleParameters) -> Result<(), ProviderError> {
    if let Some(limit) = params.connection_limit
        && limit < -1
    {
        return Err(ProviderError::InvalidSpec(format!(
            "connectionLimit must be -1 (no limit) or more, not {limit}"
        )));
    }
    let mut seen = BTreeSet::new();
    for p in params.configuration_parameters.iter().flatten() {
        validate_parameter_name(&p.name)?;
        validate_literal(
            &format!("value of configuration parameter {}", p.name),
            &p.value,
        )?;
        if !seen.insert(p.name.to_lowercase()) {
            return Err(ProviderError::InvalidSpec(format!(
                "configuration parameter {} is listed more than once",
                p.name
            )));
        }
    }
    Ok(())
}

/// Parses pg_roles.rolconfig (`name=value` entries) into sorted parameters.
pub(crate) fn parse_rolconfig(entries: &[String]) -> Vec<ConfigurationParameter> {
    let mut out: Vec<ConfigurationParameter> = entries
        .iter()
        .map(|e| match e.split_once('=') {
            Some((name, value)) => ConfigurationParameter {
                name: name.to_string(),
                value: value.to_string(),
            },
            None => ConfigurationParameter {
                name: e.clone(),
                value: String::new(),
            },
        })
        .collect();
    out.sort();
    out
}

/// What differs between the spec and the row, one entry per field, in words.
pub(crate) fn diff(want: &RoleParameters, have: &RoleRow) -> Vec<String> {
    let mut out = Vec::new();
    for a in &ATTRIBUTES {
        if let Some(w) = (a.want)(&want.privileges)
            && w != (a.have)(have)
        {
            out.push(format!("{}: want {w}, have {}", a.field, (a.have)(have)));
        }
    }
    if let Some(w) = want.connection_limit
        && w != have.connection_limit
    {
        out.push(format!(
            "connectionLimit: want {w}, have {}",
            have.connection_limit
        ));
    }
    let (set, reset) = parameter_changes(want, have);
    for (name, value) in set {
        match have
            .configuration_parameters
            .iter()
            .find(|p| p.name == name)
        {
            Some(h) => out.push(format!(
                "configurationParameters.{name}: want {value:?}, have {:?}",
                h.value
            )),
            None => out.push(format!(
                "configurationParameters.{name}: want {value:?}, have none"
            )),
        }
    }
    for name in reset {
        out.push(format!(
            "configurationParameters.{name}: want none, have {:?}",
            have.configuration_parameters
                .iter()
                .find(|p| p.name == name)
                .map(|p| p.value.as_str())
                .unwrap_or_default()
        ));
    }
    out
}

/// The parameters to set (name lower-cased, as PostgreSQL stores it -> value) and the
/// names to reset, to turn `have` into `want`. Nothing when the spec does not manage them.
pub(crate) fn parameter_changes(
    want: &RoleParameters,
    have: &RoleRow,
) -> (BTreeMap<String, String>, Vec<String>) {
    let Some(wanted) = &want.configuration_parameters else {
        return (BTreeMap::new(), Vec::new());
    };
    let wanted: BTreeMap<String, &str> = wanted
        .iter()
        .map(|p| (p.name.to_lowercase(), p.value.as_str()))
        .collect();
    let had: BTreeMap<&str, &str> = have
        .configuration_parameters
        .iter()
        .map(|p| (p.name.as_str(), p.value.as_str()))
        .collect();
    let set = wanted
        .iter()
        .filter(|(name, value)| had.get(name.as_str()) != Some(*value))
        .map(|(name, value)| (name.clone(), value.to_string()))
        .collect();
    let reset = had
        .keys()
        .filter(|name| !wanted.contains_key(**name))
        .map(|name| name.to_string())
        .collect();
    (set, reset)
}

/// `CREATE ROLE` with every attribute the spec sets, the connection limit and the
/// password verifier, then `ALTER ROLE ... SET` for each parameter: one batch, so that
/// a failure leaves no half-configured role behind.
pub(crate) fn create_statements(
    name: &str,
    want: &RoleParameters,
    password_verifier: Option<&str>,
) -> String {
    let mut options = Vec::new();
    for a in &ATTRIBUTES {
        if let Some(w) = (a.want)(&want.privileges) {
            options.push(keyword(a, w));
        }
    }
    if let Some(limit) = want.connection_limit {
        options.push(format!("CONNECTION LIMIT {limit}"));
    }
    if let Some(verifier) = password_verifier {
        options.push(format!("PASSWORD {}", literal(verifier)));
    }
    let mut sql = format!("CREATE ROLE {}", ident(name));
    if !options.is_empty() {
        sql.push_str(" WITH ");
        sql.push_str(&options.join(" "));
    }
    for p in want.configuration_parameters.iter().flatten() {
        sql.push_str(&format!(
            "; ALTER ROLE {} SET {} TO {}",
            ident(name),
            p.name.to_lowercase(),
            literal(&p.value)
        ));
    }
    sql
}

/// The statements that turn `have` into `want`, setting the password verifier when given.
/// Only attributes that differ are named: changing SUPERUSER needs a superuser, so naming
/// it needlessly would fail for a ProviderConfig with CREATEROLE only. Empty when nothing
/// needs to change.
pub(crate) fn update_statements(
    name: &str,
    want: &RoleParameters,
    have: &RoleRow,
    password_verifier: Option<&str>,
) -> String {
    let mut options = Vec::new();
    for a in &ATTRIBUTES {
        if let Some(w) = (a.want)(&want.privileges)
            && w != (a.have)(have)
        {
            options.push(keyword(a, w));
        }
    }
    if let Some(limit) = want.connection_limit
        && limit != have.connection_limit
    {
        options.push(format!("CONNECTION LIMIT {limit}"));
    }
    if let Some(verifier) = password_verifier {
        options.push(format!("PASSWORD {}", literal(verifier)));
    }
    let mut statements = Vec::new();
    if !options.is_empty() {
        statements.push(format!(
            "ALTER ROLE {} WITH {}",
            ident(name),
            options.join(" ")
        ));
    }
    let (set, reset) = parameter_changes(want, have);
    for (param, value) in set {
        statements.push(format!(
            "ALTER ROLE {} SET {param} TO {}",
            ident(name),
            literal(&value)
        ));
    }
    for param in reset {
        // Names read back from rolconfig are not validated like spec names, so quote them.
        statements.push(format!(
            "ALTER ROLE {} RESET {}",
            ident(name),
            ident(&param)
        ));
    }
    statements.join("; ")
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
