//! Connection details: which values of a composed resource reach the composite's
//! connection Secret.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a connection detail's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = crate::api::schema::drop_description)]
pub enum ConnectionDetailType {
    /// A key of the composed resource's own connection details.
    FromConnectionSecretKey,
    /// A field of the composed resource.
    FromFieldPath,
    /// A fixed value.
    FromValue,
    /// A template filled from the connection details gathered before it for the same
    /// resource, e.g. `postgres://{username}:{password}@{endpoint}:{port}/{database}`.
    Format,
}

/// One key of the composite resource's connection Secret, taken from a composed resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionDetail {
    /// Key in the composite's connection Secret. Defaults to `fromConnectionSecretKey`;
    /// required by the other types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// `FromConnectionSecretKey`, `FromFieldPath`, `FromValue` or `Format`. When omitted it
    /// is inferred from the fields that are set, in this order: `value`, `fmt`,
    /// `fromConnectionSecretKey`, `fromFieldPath`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<ConnectionDetailType>,

    /// Key of the composed resource's connection details to copy, for
    /// `FromConnectionSecretKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_connection_secret_key: Option<String>,

    /// Field path on the composed resource whose value is copied, for `FromFieldPath`,
    /// e.g. `status.atProvider.endpoint`. Non-string values are written as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_field_path: Option<String>,

    /// Fixed value, for `FromValue`, e.g. a well-known port. Never put secrets here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,

    /// Template for `Format`: `{key}` is replaced by the value of `key` among the
    /// connection details of this resource listed before this one; `{{` and `}}` are
    /// literal braces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fmt: Option<String>,
}

impl ConnectionDetail {
    /// The detail's type: as written, or inferred from the fields that are set.
    /// `None` when nothing identifies a source.
    pub fn detail_type(&self) -> Option<ConnectionDetailType> {
        if self.type_.is_some() {
            return self.type_;
        }
        if self.value.is_some() {
            Some(ConnectionDetailType::FromValue)
        } else if self.fmt.is_some() {
            Some(ConnectionDetailType::Format)
        } else if self.from_connection_secret_key.is_some() {
            Some(ConnectionDetailType::FromConnectionSecretKey)
        } else if self.from_field_path.is_some() {
            Some(ConnectionDetailType::FromFieldPath)
        } else {
            None
        }
    }
}
