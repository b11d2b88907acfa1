//! The pure side of DBInstances: what AWS has ([`Have`]), what differs from the spec, the
//! ModifyDBInstance fields that change it, tag changes, and late initialisation.

use std::collections::BTreeMap;

use tessera_engine::managed::ProviderError;

use crate::api::DBInstanceParameters;
use crate::tags::tag_changes;

/// A DB instance as DescribeDBInstances answers it. `pending` holds the changes AWS has
/// accepted but applies in the next maintenance window: they count as done.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Have {
    pub status: String,
    pub engine: String,
    pub engine_version: Option<String>,
    pub db_instance_class: Option<String>,
    pub allocated_storage: Option<i32>,
    pub max_allocated_storage: Option<i32>,
    pub storage_type: Option<String>,
    pub iops: Option<i32>,
    pub master_username: Option<String>,
    pub db_name: Option<String>,
    pub port: Option<i32>,
    pub backup_retention_period: Option<i32>,
    pub preferred_backup_window: Option<String>,
    pub preferred_maintenance_window: Option<String>,
    pub multi_az: Option<bool>,
    pub publicly_accessible: Option<bool>,
    pub db_subnet_group_name: Option<String>,
    pub vpc_security_group_ids: Vec<String>,
    pub db_parameter_group_name: Option<String>,
    pub deletion_protection: Option<bool>,
    pub tags: BTreeMap<String, String>,
    pub address: Option<String>,
    pub arn: Option<String>,
    pub resource_id: Option<String>,
    pub pending: Pending,
}

/// Changes AWS accepted for the next maintenance window (PendingModifiedValues).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Pending {
    pub db_instance_class: Option<String>,
    pub allocated_storage: Option<i32>,
    pub engine_version: Option<String>,
    pub multi_az: Option<bool>,
    pub iops: Option<i32>,
    pub storage_type: Option<String>,
    pub port: Option<i32>,
    pub backup_retention_period: Option<i32>,
}

impl Have {
    /// Whether AWS reports the instance usable.
    pub fn available(&self) -> bool {
        self.status == "available"
    }

    /// Whether the instance is still being made rather than unavailable after it was
    /// usable: AWS says `creating`, or, while the managed resource has not been Ready since
    /// its create (`not_ready_since_create`), one of the steps RDS runs right after a
    /// create (the first backup, configuring monitoring or log exports).
    pub fn creating(&self, not_ready_since_create: bool) -> bool {
        match self.status.as_str() {
            "creating" => true,
            "backing-up"
            | "configuring-enhanced-monitoring"
            | "configuring-iam-database-auth"
            | "configuring-log-exports" => not_ready_since_create,
            _ => false,
        }
    }
}

/// The ModifyDBInstance fields that make the instance match the spec: only the changed ones.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Modify {
    pub engine_version: Option<String>,
    pub db_instance_class: Option<String>,
    pub allocated_storage: Option<i32>,
    pub max_allocated_storage: Option<i32>,
    pub storage_type: Option<String>,
    pub iops: Option<i32>,
    pub port: Option<i32>,
    pub backup_retention_period: Option<i32>,
    pub preferred_backup_window: Option<String>,
    pub preferred_maintenance_window: Option<String>,
    pub multi_az: Option<bool>,
    pub publicly_accessible: Option<bool>,
    pub db_subnet_group_name: Option<String>,
    pub vpc_security_group_ids: Option<Vec<String>>,
    pub db_parameter_group_name: Option<String>,
    pub deletion_protection: Option<bool>,
}

impl Modify {
    pub fn is_empty(&self) -> bool {
        *self == Modify::default()
    }
}

/// Checks a DB instance identifier as RDS does: 1 to 63 lower-case letters, digits and
/// hyphens, starting with a letter, without two hyphens in a row or a trailing hyphen.
/// Upper case is refused: RDS would lower-case it, and the identifier would no longer
/// match the external name.
pub(crate) fn validate_identifier(what: &str, id: &str) -> Result<(), ProviderError> {
    let ok = !id.is_empty()
        && id.len() <= 63
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.ends_with('-')
        && !id.contains("--");
    if ok {
        Ok(())
    } else {
        Err(ProviderError::InvalidSpec(format!(
            "{what} {id:?} is not a valid RDS identifier: use 1 to 63 lower-case letters, \
             digits and hyphens, starting with a letter, without a trailing hyphen or two \
             hyphens in a row"
        )))
    }
}

/// Whether the engine version AWS runs satisfies the wanted one: equal, or `want` is a
/// prefix of it at a dot (`16` matches `16.4`).
pub(crate) fn version_matches(want: &str, have: &str) -> bool {
    want == have
        || have
            .strip_prefix(want)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// The fields the spec wants changed that cannot change, as one error that says what to do.
pub(crate) fn immutable_conflicts(
    want: &DBInstanceParameters,
    have: &Have,
) -> Option<ProviderError> {
    let mut problems = Vec::new();
    if !want.engine.eq_ignore_ascii_case(&have.engine) {
        problems.push(format!(
            "engine cannot change after creation: the instance runs {}, the spec asks {}",
            have.engine, want.engine
        ));
    }
    if let Some(have_user) = &have.master_username
        && *have_user != want.master_username
    {
        problems.push(format!(
            "masterUsername cannot change after creation: the instance has {have_user}, the spec asks {}",
            want.master_username
        ));
    }
    if let Some(w) = &want.db_name
        && have.db_name.as_ref().is_some_and(|h| h != w)
    {
        problems.push(format!(
            "dbName cannot change after creation: the instance has {}, the spec asks {w}",
            have.db_name.as_deref().unwrap_or_default()
        ));
    }
    if let (Some(w), Some(h)) = (
        want.allocated_storage,
        have.pending.allocated_storage.or(have.allocated_storage),
    ) && w < h
    {
        problems.push(format!(
            "allocatedStorage cannot shrink: the instance has {h} GiB, the spec asks {w} GiB"
        ));
    }
    if problems.is_empty() {
        None
    } else {
        Some(ProviderError::InvalidSpec(format!(
            "{}; create a new DBInstance instead",
            problems.join("; ")
        )))
    }
}

/// The ModifyDBInstance fields for what differs, and the differences in words.
pub(crate) fn plan_modify(want: &DBInstanceParameters, have: &Have) -> (Modify, Vec<String>) {
    let mut m = Modify::default();
    let mut words = Vec::new();
    let p = &have.pending;

    fn differs<T: PartialEq + Clone + std::fmt::Debug>(
        words: &mut Vec<String>,
        field: &str,
        want: &Option<T>,
        have: Option<&T>,
    ) -> Option<T> {
        let w = want.as_ref()?;
        if have == Some(w) {
            return None;
        }
        words.push(match have {
            Some(h) => format!("{field}: want {w:?}, have {h:?}"),
            None => format!("{field}: want {w:?}, have none"),
        });
        Some(w.clone())
    }

    if let Some(w) = &want.engine_version {
        let h = p.engine_version.as_ref().or(have.engine_version.as_ref());
        if !h.is_some_and(|h| version_matches(w, h)) {
            words.push(format!("engineVersion: want {w:?}, have {h:?}"));
            m.engine_version = Some(w.clone());
        }
    }
    m.db_instance_class = differs(
        &mut words,
        "dbInstanceClass",
        &Some(want.db_instance_class.clone()),
        p.db_instance_class
            .as_ref()
            .or(have.db_instance_class.as_ref()),
    );
    m.allocated_storage = differs(
        &mut words,
        "allocatedStorage",
        &want.allocated_storage,
        p.allocated_storage
            .as_ref()
            .or(have.allocated_storage.as_ref()),
    );
    m.max_allocated_storage = differs(
        &mut words,
        "maxAllocatedStorage",
        &want.max_allocated_storage,
        have.max_allocated_storage.as_ref(),
    );
    m.storage_type = differs(
        &mut words,
        "storageType",
        &want.storage_type,
        p.storage_type.as_ref().or(have.storage_type.as_ref()),
    );
    m.iops = differs(
        &mut words,
        "iops",
        &want.iops,
        p.iops.as_ref().or(have.iops.as_ref()),
    );
    m.port = differs(
        &mut words,
        "port",
        &want.port,
        p.port.as_ref().or(have.port.as_ref()),
    );
    m.backup_retention_period = differs(
        &mut words,
        "backupRetentionPeriod",
        &want.backup_retention_period,
        p.backup_retention_period
            .as_ref()
            .or(have.backup_retention_period.as_ref()),
    );
    m.preferred_backup_window = differs(
        &mut words,
        "preferredBackupWindow",
        &want.preferred_backup_window,
        have.preferred_backup_window.as_ref(),
    );
    m.preferred_maintenance_window = differs(
        &mut words,
        "preferredMaintenanceWindow",
        &want.preferred_maintenance_window,
        have.preferred_maintenance_window.as_ref(),
    );
    m.multi_az = differs(
        &mut words,
        "multiAZ",
        &want.multi_az,
        p.multi_az.as_ref().or(have.multi_az.as_ref()),
    );
    m.publicly_accessible = differs(
        &mut words,
        "publiclyAccessible",
        &want.publicly_accessible,
        have.publicly_accessible.as_ref(),
    );
    m.db_subnet_group_name = differs(
        &mut words,
        "dbSubnetGroupName",
        &want.db_subnet_group_name,
        have.db_subnet_group_name.as_ref(),
    );
    if let Some(w) = &want.vpc_security_group_ids {
        let mut a = w.clone();
        let mut b = have.vpc_security_group_ids.clone();
        a.sort();
        b.sort();
        if a != b {
            words.push(format!("vpcSecurityGroupIds: want {a:?}, have {b:?}"));
            m.vpc_security_group_ids = Some(w.clone());
        }
    }
    m.db_parameter_group_name = differs(
        &mut words,
        "dbParameterGroupName",
        &want.db_parameter_group_name,
        have.db_parameter_group_name.as_ref(),
    );
    m.deletion_protection = differs(
        &mut words,
        "deletionProtection",
        &want.deletion_protection,
        have.deletion_protection.as_ref(),
    );
    (m, words)
}

/// The tag differences in words (Tessera's own tags are never counted).
pub(crate) fn tag_diff(want: &DBInstanceParameters, have: &Have) -> Option<String> {
    let want = want.tags.as_ref()?;
    let (add, remove) = tag_changes(want, &have.tags);
    if add.is_empty() && remove.is_empty() {
        return None;
    }
    let add: Vec<&String> = add.keys().collect();
    Some(format!("tags: set {add:?}, remove {remove:?}"))
}

/// Fills the spec fields left out with what AWS chose; whether anything was filled.
pub(crate) fn late_initialize(want: &mut DBInstanceParameters, have: &Have) -> bool {
    let mut changed = false;
    fn fill<T: Clone>(changed: &mut bool, field: &mut Option<T>, have: Option<&T>) {
        if field.is_none()
            && let Some(h) = have
        {
            *field = Some(h.clone());
            *changed = true;
        }
    }
    fill(
        &mut changed,
        &mut want.engine_version,
        have.engine_version.as_ref(),
    );
    fill(
        &mut changed,
        &mut want.allocated_storage,
        have.allocated_storage.as_ref(),
    );
    fill(
        &mut changed,
        &mut want.storage_type,
        have.storage_type.as_ref(),
    );
    fill(&mut changed, &mut want.port, have.port.as_ref());
    fill(
        &mut changed,
        &mut want.backup_retention_period,
        have.backup_retention_period.as_ref(),
    );
    fill(
        &mut changed,
        &mut want.preferred_backup_window,
        have.preferred_backup_window.as_ref(),
    );
    fill(
        &mut changed,
        &mut want.preferred_maintenance_window,
        have.preferred_maintenance_window.as_ref(),
    );
    fill(&mut changed, &mut want.multi_az, have.multi_az.as_ref());
    fill(
        &mut changed,
        &mut want.publicly_accessible,
        have.publicly_accessible.as_ref(),
    );
    fill(
        &mut changed,
        &mut want.deletion_protection,
        have.deletion_protection.as_ref(),
    );
    changed
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
