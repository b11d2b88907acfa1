//! Why an XRD cannot be turned into CRDs.

/// Why an XRD cannot be turned into CRDs. Messages are lower-case; the controller
/// capitalises them for conditions.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum XrdError {
    /// `metadata.name` is not `<names.plural>.<group>`.
    #[error("metadata.name must be {expected} (<names.plural>.<group>), not {name}")]
    Name {
        /// The XRD's name.
        name: String,
        /// The name it must have.
        expected: String,
    },
    /// `spec.group` is not a DNS subdomain with a dot.
    #[error(
        "spec.group {group:?} is not a valid API group: use a lower-case domain with at least one dot, e.g. platform.example.org"
    )]
    Group {
        /// The group as written.
        group: String,
    },
    /// A kind, plural, singular or short name is malformed.
    #[error("{field} {value:?} is invalid: {reason}")]
    Names {
        /// Path of the field, e.g. `spec.names.plural`.
        field: String,
        /// The value as written.
        value: String,
        /// What it must look like.
        reason: &'static str,
    },
    /// The claim's kind or plural equals the composite's.
    #[error("spec.claimNames.{field} must differ from spec.names.{field}")]
    ClaimNamesClash {
        /// `kind` or `plural`.
        field: &'static str,
    },
    /// A version's name is malformed or repeated.
    #[error("version {name:?} is invalid: {reason}")]
    Version {
        /// The version's name.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Not exactly one version is referenceable.
    #[error("exactly one version must be referenceable, but {count} are")]
    Referenceable {
        /// How many versions are referenceable.
        count: usize,
    },
    /// `spec.connectionSecretType` is no usable Secret type, or `connectionSecretKeys` lack
    /// a key that type requires.
    #[error("spec.connectionSecretType: {reason}")]
    ConnectionSecretType {
        /// What is wrong.
        reason: String,
    },
    /// No version is served.
    #[error("no version is served; set served: true on at least one version")]
    NoServedVersion,
    /// A version's schema cannot be used.
    #[error("version {version}: openAPIV3Schema {reason}")]
    Schema {
        /// The version's name.
        version: String,
        /// What is wrong.
        reason: String,
    },
}
