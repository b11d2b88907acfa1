//! DBSubnetGroups: CreateDBSubnetGroup, ModifyDBSubnetGroup, DeleteDBSubnetGroup, observed
//! with DescribeDBSubnetGroups and ListTagsForResource (the describe carries no tags).

use std::collections::BTreeMap;

use async_trait::async_trait;
use tessera_engine::api::common::ConnectionDetails;
use tessera_engine::managed::machine::external_name;
use tessera_engine::managed::{CreateIdentity, ExternalClient, Observation, ProviderError};

use crate::api::{DBSubnetGroup, DBSubnetGroupObservation, DBSubnetGroupParameters, OWNERSHIP_TAG};
use crate::connector::{RdsClient, deleting, uid};
use crate::error::aws_error;
use crate::tags;

/// A DB subnet group as AWS has it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Have {
    pub description: String,
    pub subnet_ids: Vec<String>,
    pub arn: Option<String>,
    pub status: Option<String>,
    pub vpc_id: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// Checks a DB subnet group name: 1 to 255 lower-case letters, digits, hyphens,
/// underscores and periods (RDS lower-cases names, so upper case would not match the
/// external name), and not `default`, which RDS reserves.
pub(crate) fn validate_name(name: &str) -> Result<(), ProviderError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name != "default"
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ProviderError::InvalidSpec(format!(
            "the DB subnet group name {name:?} is not valid: use 1 to 255 lower-case letters, \
             digits, hyphens, underscores and periods, and not \"default\""
        )))
    }
}

/// What differs, in words.
pub(crate) fn diff(want: &DBSubnetGroupParameters, have: &Have) -> Vec<String> {
    let mut out = Vec::new();
    if want.description != have.description {
        out.push(format!(
            "description: want {:?}, have {:?}",
            want.description, have.description
        ));
    }
    let mut a = want.subnet_ids.clone();
    let mut b = have.subnet_ids.clone();
    a.sort();
    a.dedup();
    b.sort();
    if a != b {
        out.push(format!("subnetIds: want {a:?}, have {b:?}"));
    }
    if let Some(want_tags) = &want.tags {
        let (add, remove) = tags::tag_changes(want_tags, &have.tags);
        if !add.is_empty() || !remove.is_empty() {
            let add: Vec<&String> = add.keys().collect();
            out.push(format!("tags: set {add:?}, remove {remove:?}"));
        }
    }
    out
}

impl RdsClient {
    async fn describe_subnet_group(&self, name: &str) -> Result<Option<Have>, ProviderError> {
        let out = match self
            .rds
            .describe_db_subnet_groups()
            .db_subnet_group_name(name)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_db_subnet_group_not_found_fault()) =>
            {
                return Ok(None);
            }
            Err(e) => {
                return Err(aws_error(
                    &self.provider_config,
                    &format!("DescribeDBSubnetGroups {name}"),
                    e,
                ));
            }
        };
        let Some(g) = out.db_subnet_groups().first() else {
            return Ok(None);
        };
        let arn = g.db_subnet_group_arn().map(str::to_string);
        let tags = match &arn {
            Some(arn) => {
                let out = self
                    .rds
                    .list_tags_for_resource()
                    .resource_name(arn)
                    .send()
                    .await
                    .map_err(|e| {
                        aws_error(
                            &self.provider_config,
                            &format!("ListTagsForResource {arn}"),
                            e,
                        )
                    })?;
                tags::from_sdk(out.tag_list())
            }
            None => BTreeMap::new(),
        };
        Ok(Some(Have {
            description: g
                .db_subnet_group_description()
                .unwrap_or_default()
                .to_string(),
            subnet_ids: g
                .subnets()
                .iter()
                .filter_map(|s| s.subnet_identifier().map(str::to_string))
                .collect(),
            arn,
            status: g.subnet_group_status().map(str::to_string),
            vpc_id: g.vpc_id().map(str::to_string),
            tags,
        }))
    }
}

#[async_trait]
impl ExternalClient<DBSubnetGroup> for RdsClient {
    fn create_identity(&self) -> CreateIdentity {
        // The name is the external name, and RDS refuses a second group of it.
        CreateIdentity::Deterministic
    }

    fn marks_ownership(&self) -> bool {
        true
    }

    async fn mark(&self, mr: &DBSubnetGroup) -> Result<(), ProviderError> {
        let name = external_name(mr);
        let Some(have) = self.describe_subnet_group(&name).await? else {
            return Err(ProviderError::Transient(format!(
                "DB subnet group {name:?} disappeared before it could be tagged"
            )));
        };
        let arn = have.arn.unwrap_or_default();
        self.rds
            .add_tags_to_resource()
            .resource_name(&arn)
            .set_tags(Some(tags::to_sdk(&BTreeMap::from([(
                OWNERSHIP_TAG.to_string(),
                uid(mr).to_string(),
            )]))))
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

    async fn observe(&self, mr: &mut DBSubnetGroup) -> Result<Observation, ProviderError> {
        let name = external_name(mr);
        if !deleting(mr) {
            validate_name(&name)?;
        }
        let Some(have) = self.describe_subnet_group(&name).await? else {
            return Ok(Observation::absent());
        };
        let ownership = tags::ownership(&have.tags, uid(mr));
        mr.status.get_or_insert_with(Default::default).at_provider =
            Some(DBSubnetGroupObservation {
                arn: have.arn.clone(),
                status: have.status.clone(),
                vpc_id: have.vpc_id.clone(),
            });
        let diff = if deleting(mr) {
            Vec::new()
        } else {
            diff(&mr.spec.for_provider, &have)
        };
        Ok(Observation {
            exists: true,
            up_to_date: diff.is_empty(),
            available: true,
            diff: (!diff.is_empty()).then(|| diff.join("; ")),
            ownership,
            ..Observation::default()
        })
    }

    async fn create(&self, mr: &mut DBSubnetGroup) -> Result<ConnectionDetails, ProviderError> {
        let name = external_name(mr);
        validate_name(&name)?;
        let want = &mr.spec.for_provider;
        let mut all_tags = want.tags.clone().unwrap_or_default();
        all_tags.insert(OWNERSHIP_TAG.to_string(), uid(mr).to_string());
        match self
            .rds
            .create_db_subnet_group()
            .db_subnet_group_name(&name)
            .db_subnet_group_description(&want.description)
            .set_subnet_ids(Some(want.subnet_ids.clone()))
            .set_tags(Some(tags::to_sdk(&all_tags)))
            .send()
            .await
        {
            Ok(_) => Ok(ConnectionDetails::new()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_db_subnet_group_already_exists_fault()) =>
            {
                Err(ProviderError::Transient(format!(
                    "CreateDBSubnetGroup {name}: a DB subnet group of this name already exists"
                )))
            }
            Err(e) => Err(aws_error(
                &self.provider_config,
                &format!("CreateDBSubnetGroup {name}"),
                e,
            )),
        }
    }

    async fn update(&self, mr: &mut DBSubnetGroup) -> Result<ConnectionDetails, ProviderError> {
        let name = external_name(mr);
        let Some(have) = self.describe_subnet_group(&name).await? else {
            return Err(ProviderError::Transient(format!(
                "DB subnet group {name:?} disappeared before it could be modified"
            )));
        };
        let want = &mr.spec.for_provider;
        let mut a = want.subnet_ids.clone();
        let mut b = have.subnet_ids.clone();
        a.sort();
        a.dedup();
        b.sort();
        if want.description != have.description || a != b {
            self.rds
                .modify_db_subnet_group()
                .db_subnet_group_name(&name)
                .db_subnet_group_description(&want.description)
                .set_subnet_ids(Some(want.subnet_ids.clone()))
                .send()
                .await
                .map_err(|e| {
                    aws_error(
                        &self.provider_config,
                        &format!("ModifyDBSubnetGroup {name}"),
                        e,
                    )
                })?;
        }
        if let (Some(want_tags), Some(arn)) = (&want.tags, &have.arn) {
            let (add, remove) = tags::tag_changes(want_tags, &have.tags);
            if !add.is_empty() {
                self.rds
                    .add_tags_to_resource()
                    .resource_name(arn)
                    .set_tags(Some(tags::to_sdk(&add)))
                    .send()
                    .await
                    .map_err(|e| {
                        aws_error(
                            &self.provider_config,
                            &format!("AddTagsToResource {arn}"),
                            e,
                        )
                    })?;
            }
            if !remove.is_empty() {
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
            }
        }
        Ok(ConnectionDetails::new())
    }

    async fn delete(&self, mr: &DBSubnetGroup) -> Result<(), ProviderError> {
        let name = external_name(mr);
        match self
            .rds
            .delete_db_subnet_group()
            .db_subnet_group_name(&name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_db_subnet_group_not_found_fault()) =>
            {
                Ok(())
            }
            Err(e) => Err(aws_error(
                &self.provider_config,
                &format!("DeleteDBSubnetGroup {name}"),
                e,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_lists_compare_as_sets_and_description_changes_count() {
        let want = DBSubnetGroupParameters {
            description: "d".into(),
            subnet_ids: vec!["subnet-b".into(), "subnet-a".into()],
            tags: None,
        };
        let have = Have {
            description: "d".into(),
            subnet_ids: vec!["subnet-a".into(), "subnet-b".into()],
            ..Have::default()
        };
        assert!(diff(&want, &have).is_empty());
        let want2 = DBSubnetGroupParameters {
            description: "e".into(),
            ..want
        };
        assert_eq!(diff(&want2, &have).len(), 1);
    }

    #[test]
    fn names_follow_rds_rules() {
        assert!(validate_name("my-group_1.a").is_ok());
        for bad in ["", "default", "My-Group", "a b"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
