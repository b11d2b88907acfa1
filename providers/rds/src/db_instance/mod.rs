//! DBInstances: CreateDBInstance, ModifyDBInstance (only the changed fields),
//! DeleteDBInstance, observed with one DescribeDBInstances per poll (its answer carries
//! the tags, so the ownership mark costs no extra call).
//!
//! ```text
//!  observe: DescribeDBInstances ─▶ Have ─▶ ownership tag, status.atProvider,
//!           immutable fields (InvalidSpec), late-init, diff (fields, tags, password)
//!  create:  master password (generated into its Secret first) ─▶ CreateDBInstance + tags
//!  update:  ModifyDBInstance(changed fields [+ password]) ─▶ Add/RemoveTagsToResource
//!  delete:  DeleteDBInstance (final snapshot unless skipFinalSnapshot); NotFound = done
//! ```

mod plan;

use async_trait::async_trait;
use aws_sdk_rds::types::DbInstance;
use tessera_engine::api::common::{ConnectionDetails, condition_type, find_condition, reason};
use tessera_engine::managed::machine::external_name;
use tessera_engine::managed::{
    CreateIdentity, ExternalClient, Observation, Ownership, ProviderError,
};

use crate::api::{DBInstance, DBInstanceObservation, OWNERSHIP_TAG};
use crate::connector::{RdsClient, deleting, uid};
use crate::error::aws_error;
use crate::password::{FIELD_MANAGER, Password, Source, Sourced, source_for_instance};
use crate::tags;
use plan::{Have, Pending};

fn have_from(db: &DbInstance) -> Have {
    let p = db.pending_modified_values();
    Have {
        status: db.db_instance_status().unwrap_or_default().to_string(),
        engine: db.engine().unwrap_or_default().to_string(),
        engine_version: db.engine_version().map(str::to_string),
        db_instance_class: db.db_instance_class().map(str::to_string),
        allocated_storage: db.allocated_storage(),
        max_allocated_storage: db.max_allocated_storage(),
        storage_type: db.storage_type().map(str::to_string),
        iops: db.iops(),
        master_username: db.master_username().map(str::to_string),
        db_name: db.db_name().map(str::to_string),
        port: db
            .endpoint()
            .and_then(|e| e.port())
            .or(db.db_instance_port().filter(|p| *p != 0)),
        backup_retention_period: db.backup_retention_period(),
        preferred_backup_window: db.preferred_backup_window().map(str::to_string),
        preferred_maintenance_window: db.preferred_maintenance_window().map(str::to_string),
        multi_az: db.multi_az(),
        publicly_accessible: db.publicly_accessible(),
        db_subnet_group_name: db
            .db_subnet_group()
            .and_then(|g| g.db_subnet_group_name())
            .map(str::to_string),
        vpc_security_group_ids: db
            .vpc_security_groups()
            .iter()
            .filter_map(|g| g.vpc_security_group_id().map(str::to_string))
            .collect(),
        db_parameter_group_name: db
            .db_parameter_groups()
            .first()
            .and_then(|g| g.db_parameter_group_name())
            .map(str::to_string),
        deletion_protection: db.deletion_protection(),
        tags: tags::from_sdk(db.tag_list()),
        address: db.endpoint().and_then(|e| e.address()).map(str::to_string),
        arn: db.db_instance_arn().map(str::to_string),
        resource_id: db.dbi_resource_id().map(str::to_string),
        pending: Pending {
            db_instance_class: p.and_then(|p| p.db_instance_class()).map(str::to_string),
            allocated_storage: p.and_then(|p| p.allocated_storage()),
            engine_version: p.and_then(|p| p.engine_version()).map(str::to_string),
            multi_az: p.and_then(|p| p.multi_az()),
            iops: p.and_then(|p| p.iops()),
            storage_type: p.and_then(|p| p.storage_type()).map(str::to_string),
            port: p.and_then(|p| p.port()),
            backup_retention_period: p.and_then(|p| p.backup_retention_period()),
        },
    }
}

fn connection(
    mr: &DBInstance,
    have: Option<&Have>,
    password: Option<&Password>,
) -> ConnectionDetails {
    let mut c = ConnectionDetails::new();
    c.insert("username", mr.spec.for_provider.master_username.as_str());
    if let Some(h) = have {
        if let Some(a) = &h.address {
            c.insert("endpoint", a.as_str());
        }
        if let Some(p) = h.port {
            c.insert("port", p.to_string());
        }
    }
    if let Some(p) = password {
        c.insert("password", p.expose());
    }
    c
}

/// Records the version of the Secret whose password was just set.
fn remember_password(mr: &mut DBInstance, sourced: &Sourced) {
    let status = mr.status.get_or_insert_with(Default::default);
    status
        .at_provider
        .get_or_insert_with(Default::default)
        .password_secret_version = Some(sourced.version.clone());
}

/// Whether the DBInstance has not been Ready since it was created: its Ready condition is
/// absent or `Creating` (the reason the runtime gives a fresh resource and a create).
fn not_ready_since_create(mr: &DBInstance) -> bool {
    let conditions = mr
        .status
        .as_ref()
        .map(|s| s.resource.conditions.as_slice())
        .unwrap_or_default();
    find_condition(conditions, condition_type::READY).is_none_or(|c| c.reason == reason::CREATING)
}

/// The version of the password Secret last set, from status.
fn remembered(mr: &DBInstance) -> Option<String> {
    mr.status
        .as_ref()
        .and_then(|s| s.at_provider.as_ref())
        .and_then(|a| a.password_secret_version.clone())
}

impl RdsClient {
    /// The DB instance `id`, or `None` when AWS has none of that identifier.
    async fn describe_instance(&self, id: &str) -> Result<Option<Have>, ProviderError> {
        match self
            .rds
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
        {
            Ok(out) => Ok(out.db_instances().first().map(have_from)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_db_instance_not_found_fault()) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws_error(
                &self.provider_config,
                &format!("DescribeDBInstances {id}"),
                e,
            )),
        }
    }

    async fn add_tags(
        &self,
        arn: &str,
        add: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        if add.is_empty() {
            return Ok(());
        }
        self.rds
            .add_tags_to_resource()
            .resource_name(arn)
            .set_tags(Some(tags::to_sdk(add)))
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    &self.provider_config,
                    &format!("AddTagsToResource {arn}"),
                    e,
                )
            })?;
        Ok(())
    }

    async fn remove_tags(&self, arn: &str, remove: Vec<String>) -> Result<(), ProviderError> {
        if remove.is_empty() {
            return Ok(());
        }
        self.rds
            .remove_tags_from_resource()
            .resource_name(arn)
            .set_tag_keys(Some(remove))
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    &self.provider_config,
                    &format!("RemoveTagsFromResource {arn}"),
                    e,
                )
            })?;
        Ok(())
    }

    /// The password to create with: the referenced one, the generated one already in its
    /// Secret (an earlier create that did not finish), or a new one, stored first.
    async fn password_for_create(
        &self,
        mr: &DBInstance,
        source: &Source,
    ) -> Result<Sourced, ProviderError> {
        if let Some(p) = source.read_fresh(&self.kube).await? {
            return Ok(p);
        }
        match source {
            Source::Reference(_) => Err(ProviderError::InvalidSpec(format!(
                "the master password {} does not exist; create it or change masterPasswordSecretRef",
                source.describe()
            ))),
            Source::Generated { .. } => {
                source
                    .store(&self.kube, mr, FIELD_MANAGER, Password::generate())
                    .await
            }
        }
    }
}

#[async_trait]
impl ExternalClient<DBInstance> for RdsClient {
    fn create_identity(&self) -> CreateIdentity {
        // The identifier is the external name, and RDS refuses a second instance of it.
        CreateIdentity::Deterministic
    }

    fn marks_ownership(&self) -> bool {
        true
    }

    async fn mark(&self, mr: &DBInstance) -> Result<(), ProviderError> {
        let id = external_name(mr);
        let Some(have) = self.describe_instance(&id).await? else {
            return Err(ProviderError::Transient(format!(
                "DB instance {id:?} disappeared before it could be tagged"
            )));
        };
        let arn = have.arn.unwrap_or_default();
        let tag =
            std::collections::BTreeMap::from([(OWNERSHIP_TAG.to_string(), uid(mr).to_string())]);
        self.add_tags(&arn, &tag).await
    }

    async fn observe(&self, mr: &mut DBInstance) -> Result<Observation, ProviderError> {
        let id = external_name(mr);
        if !deleting(mr) {
            plan::validate_identifier("the DB instance identifier", &id)?;
        }
        let Some(have) = self.describe_instance(&id).await? else {
            return Ok(Observation::absent());
        };
        let ownership = tags::ownership(&have.tags, uid(mr));
        {
            let status = mr.status.get_or_insert_with(Default::default);
            let previous = status.at_provider.take().unwrap_or_default();
            status.at_provider = Some(DBInstanceObservation {
                status: Some(have.status.clone()),
                address: have.address.clone(),
                port: have.port,
                arn: have.arn.clone(),
                resource_id: have.resource_id.clone(),
                engine_version: have.engine_version.clone(),
                password_secret_version: previous.password_secret_version,
            });
        }
        let unavailable_message = (!have.available())
            .then(|| format!("AWS status of DB instance {id:?}: {}", have.status));
        let creating = !have.available() && have.creating(not_ready_since_create(mr));
        if deleting(mr) {
            return Ok(Observation {
                exists: true,
                up_to_date: true,
                available: have.available(),
                unavailable_message,
                creating,
                ownership,
                ..Observation::default()
            });
        }
        let may_change = mr
            .spec
            .resource
            .allows(tessera_engine::api::common::ManagementAction::Update)
            && ownership == Ownership::Ours;
        if may_change
            && let Some(conflict) = plan::immutable_conflicts(&mr.spec.for_provider, &have)
        {
            return Err(conflict);
        }
        let late_initialized = plan::late_initialize(&mut mr.spec.for_provider, &have);
        let (_, mut diff) = plan::plan_modify(&mr.spec.for_provider, &have);
        diff.extend(plan::tag_diff(&mr.spec.for_provider, &have));

        let source = source_for_instance(mr, &self.password_namespace);
        let password = source.read(&self.kube).await?;
        let remembered = remembered(mr);
        match (&password, &source) {
            (None, Source::Reference(_)) => diff.push(format!(
                "masterPassword: the {} does not exist",
                source.describe()
            )),
            (None, Source::Generated { .. }) => diff.push(format!(
                "masterPassword: the generated {} is missing; a new password will be set",
                source.describe()
            )),
            (Some(p), _) if remembered.as_deref() != Some(&p.version) => diff.push(format!(
                "masterPassword: the {} changed since the password was last set",
                source.describe()
            )),
            _ => {}
        }
        Ok(Observation {
            exists: true,
            up_to_date: diff.is_empty(),
            late_initialized,
            available: have.available(),
            unavailable_message,
            creating,
            connection: connection(mr, Some(&have), password.as_ref().map(|p| &p.password)),
            diff: (!diff.is_empty()).then(|| diff.join("; ")),
            ownership,
        })
    }

    async fn create(&self, mr: &mut DBInstance) -> Result<ConnectionDetails, ProviderError> {
        let id = external_name(mr);
        plan::validate_identifier("the DB instance identifier", &id)?;
        let source = source_for_instance(mr, &self.password_namespace);
        let password = self.password_for_create(mr, &source).await?;
        let want = &mr.spec.for_provider;
        let mut all_tags = want.tags.clone().unwrap_or_default();
        all_tags.insert(OWNERSHIP_TAG.to_string(), uid(mr).to_string());
        let result = self
            .rds
            .create_db_instance()
            .db_instance_identifier(&id)
            .engine(&want.engine)
            .set_engine_version(want.engine_version.clone())
            .db_instance_class(&want.db_instance_class)
            .set_allocated_storage(want.allocated_storage)
            .set_max_allocated_storage(want.max_allocated_storage)
            .set_storage_type(want.storage_type.clone())
            .set_iops(want.iops)
            .master_username(&want.master_username)
            .master_user_password(password.password.expose())
            .set_db_name(want.db_name.clone())
            .set_port(want.port)
            .set_backup_retention_period(want.backup_retention_period)
            .set_preferred_backup_window(want.preferred_backup_window.clone())
            .set_preferred_maintenance_window(want.preferred_maintenance_window.clone())
            .set_multi_az(want.multi_az)
            .set_publicly_accessible(want.publicly_accessible)
            .set_db_subnet_group_name(want.db_subnet_group_name.clone())
            .set_vpc_security_group_ids(want.vpc_security_group_ids.clone())
            .set_db_parameter_group_name(want.db_parameter_group_name.clone())
            .set_deletion_protection(want.deletion_protection)
            .set_tags(Some(tags::to_sdk(&all_tags)))
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_db_instance_already_exists_fault()) =>
            {
                // Made meanwhile (by an earlier try of this create, or by someone else):
                // never taken over here; the next observe reads its ownership tag.
                return Err(ProviderError::Transient(format!(
                    "CreateDBInstance {id}: a DB instance of this identifier already exists"
                )));
            }
            Err(e) => {
                return Err(aws_error(
                    &self.provider_config,
                    &format!("CreateDBInstance {id}"),
                    e,
                ));
            }
        }
        remember_password(mr, &password);
        Ok(connection(mr, None, Some(&password.password)))
    }

    async fn update(&self, mr: &mut DBInstance) -> Result<ConnectionDetails, ProviderError> {
        let id = external_name(mr);
        let Some(have) = self.describe_instance(&id).await? else {
            return Err(ProviderError::Transient(format!(
                "DB instance {id:?} disappeared before it could be modified"
            )));
        };
        if let Some(conflict) = plan::immutable_conflicts(&mr.spec.for_provider, &have) {
            return Err(conflict);
        }
        let want = mr.spec.for_provider.clone();
        let (m, _) = plan::plan_modify(&want, &have);

        let source = source_for_instance(mr, &self.password_namespace);
        let mut password = source.read_fresh(&self.kube).await?;
        let remembered = remembered(mr);
        let set_password = match (&password, &source) {
            (None, Source::Reference(_)) => {
                return Err(ProviderError::InvalidSpec(format!(
                    "the master password {} does not exist; create it or change masterPasswordSecretRef",
                    source.describe()
                )));
            }
            (None, Source::Generated { .. }) => {
                // The Secret first: a crash before ModifyDBInstance only repeats it.
                let written = source
                    .store(&self.kube, mr, FIELD_MANAGER, Password::generate())
                    .await?;
                password = Some(written);
                true
            }
            (Some(p), _) => remembered.as_deref() != Some(&p.version),
        };
        let new_password = password.as_ref().filter(|_| set_password);

        if !m.is_empty() || new_password.is_some() {
            if !have.available() {
                return Err(ProviderError::Transient(format!(
                    "DB instance {id:?} is {}; it is modified once it is available",
                    have.status
                )));
            }
            self.rds
                .modify_db_instance()
                .db_instance_identifier(&id)
                .apply_immediately(want.apply_immediately)
                .set_engine_version(m.engine_version.clone())
                .set_allow_major_version_upgrade(m.engine_version.as_ref().map(|_| true))
                .set_db_instance_class(m.db_instance_class.clone())
                .set_allocated_storage(m.allocated_storage)
                .set_max_allocated_storage(m.max_allocated_storage)
                .set_storage_type(m.storage_type.clone())
                .set_iops(m.iops)
                .set_db_port_number(m.port)
                .set_backup_retention_period(m.backup_retention_period)
                .set_preferred_backup_window(m.preferred_backup_window.clone())
                .set_preferred_maintenance_window(m.preferred_maintenance_window.clone())
                .set_multi_az(m.multi_az)
                .set_publicly_accessible(m.publicly_accessible)
                .set_db_subnet_group_name(m.db_subnet_group_name.clone())
                .set_vpc_security_group_ids(m.vpc_security_group_ids.clone())
                .set_db_parameter_group_name(m.db_parameter_group_name.clone())
                .set_deletion_protection(m.deletion_protection)
                .set_master_user_password(new_password.map(|p| p.password.expose().to_string()))
                .send()
                .await
                .map_err(|e| {
                    aws_error(&self.provider_config, &format!("ModifyDBInstance {id}"), e)
                })?;
            if let Some(p) = new_password {
                remember_password(mr, p);
            }
        }
        if let (Some(want_tags), Some(arn)) = (&want.tags, &have.arn) {
            let (add, remove) = tags::tag_changes(want_tags, &have.tags);
            self.add_tags(arn, &add).await?;
            self.remove_tags(arn, remove).await?;
        }
        Ok(connection(
            mr,
            Some(&have),
            password.as_ref().map(|p| &p.password),
        ))
    }

    async fn delete(&self, mr: &DBInstance) -> Result<(), ProviderError> {
        let id = external_name(mr);
        let status = mr
            .status
            .as_ref()
            .and_then(|s| s.at_provider.as_ref())
            .and_then(|a| a.status.as_deref());
        if status == Some("deleting") {
            return Ok(());
        }
        let want = &mr.spec.for_provider;
        let snapshot = (!want.skip_final_snapshot).then(|| {
            want.final_db_snapshot_identifier
                .clone()
                .unwrap_or_else(|| format!("{id}-final"))
        });
        match self
            .rds
            .delete_db_instance()
            .db_instance_identifier(&id)
            .skip_final_snapshot(want.skip_final_snapshot)
            .set_final_db_snapshot_identifier(snapshot)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_db_instance_not_found_fault()) =>
            {
                Ok(())
            }
            Err(e) => Err(aws_error(
                &self.provider_config,
                &format!("DeleteDBInstance {id}"),
                e,
            )),
        }
    }
}
