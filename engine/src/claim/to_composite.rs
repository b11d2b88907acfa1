//! From a claim to the composite resource (XR) that the claim controller applies for it,
//! as a pure function: `tessera render` and the claim controller build the same object.
//!
//! ```text
//!  PostgresDatabase shop/orders-db            XPostgresDatabase orders-db-1a2b3c4d
//!    spec: {connectionLimit: 20,        ──▶     labels: tessera.dev/claim-name, -namespace
//!           writeConnectionSecretToRef:         spec: {connectionLimit: 20,
//!             {name: orders-db}}                       claimRef: {.., namespace: shop, name: orders-db},
//!                                                      writeConnectionSecretToRef:
//!                                                        {name: orders-db, namespace: shop}}
//! ```

use serde_json::{Map, Value, json};

use crate::api::xrd::CompositeResourceDefinitionSpec;
use crate::compose::{LABEL_CLAIM_NAME, LABEL_CLAIM_NAMESPACE};
use crate::naming::claim_composite_name;
use crate::shard::LABEL_SHARD;

/// Claim spec fields that are not copied to the composite: the Secret reference is
/// rewritten to point into the claim's namespace, and the binding fields are Tessera's.
const NOT_COPIED: [&str; 4] = [
    "writeConnectionSecretToRef",
    "resourceRef",
    "claimRef",
    "resourceRefs",
];

/// Claim spec fields that choose a Composition: refused when the XRD forbids claims to
/// choose.
const COMPOSITION_CHOICE: [&str; 3] = [
    "compositionRef",
    "compositionSelector",
    "compositionRevisionRef",
];

/// Why a claim cannot be turned into a composite resource. Messages are lower-case.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClaimToCompositeError {
    /// The claim lacks a field the composite is built from.
    #[error("the claim has no {field}")]
    Missing {
        /// The missing field, e.g. `metadata.namespace`.
        field: &'static str,
    },
    /// The claim is not of the XRD's claim kind.
    #[error("{kind} in {api_version} is not the claim kind of this XRD ({expected})")]
    NotAClaim {
        /// The claim's kind.
        kind: String,
        /// The claim's apiVersion.
        api_version: String,
        /// The claim kind the XRD defines, or a note that it defines none.
        expected: String,
    },
    /// The XRD has no referenceable version, so the composite has no apiVersion.
    #[error("the XRD has no referenceable version")]
    NoReferenceableVersion,
    /// The claim chooses its Composition, which its XRD forbids.
    #[error(
        "claims of kind {kind} may not choose their Composition (their XRD sets \
         claimCompositionSelection: Forbidden): remove {} from the claim; the platform team's \
         default Composition is used",
        .fields.iter().map(|f| format!("spec.{f}")).collect::<Vec<_>>().join(", ")
    )]
    CompositionChoiceForbidden {
        /// The claim's kind.
        kind: String,
        /// The claim's spec fields that choose a Composition.
        fields: Vec<&'static str>,
    },
    /// The claim's `spec` is not an object.
    #[error("the claim's spec must be an object")]
    SpecNotAnObject,
}

/// Reason of a claim's `Synced=False` condition when it chooses its Composition and its XRD
/// forbids that.
pub const REASON_COMPOSITION_CHOICE_FORBIDDEN: &str = "CompositionChoiceForbidden";

impl ClaimToCompositeError {
    /// The reason of the claim's `Synced=False` condition (and its event):
    /// [`REASON_COMPOSITION_CHOICE_FORBIDDEN`], else `ReconcileError`.
    pub fn reason(&self) -> &'static str {
        match self {
            ClaimToCompositeError::CompositionChoiceForbidden { .. } => {
                REASON_COMPOSITION_CHOICE_FORBIDDEN
            }
            _ => crate::api::common::reason::RECONCILE_ERROR,
        }
    }
}

/// The composite resource of `claim`, for the XRD `xrd` that defines both kinds.
///
/// - `apiVersion`/`kind`: the XRD's composite kind at its referenceable version;
/// - `metadata.name`: [`claim_composite_name`] of the claim's namespace and name;
/// - `metadata.labels`: `tessera.dev/claim-name` and `tessera.dev/claim-namespace`;
/// - `spec`: a copy of the claim's spec without the binding fields (`resourceRef`,
///   `resourceRefs`, `claimRef`), plus `claimRef` (apiVersion, kind, namespace, name of
///   the claim) and, when the claim names a connection Secret,
///   `writeConnectionSecretToRef: {name: <claim's>, namespace: <claim's namespace>}`, so
///   that the composite writes the claim's Secret straight into the claim's namespace.
///
/// When the XRD sets `claimCompositionSelection: Forbidden`, a claim that sets
/// `compositionRef`, `compositionSelector` or `compositionRevisionRef` is refused.
///
/// The result holds only what the claim determines; the composite controller adds the
/// rest (e.g. `compositionRef`, `resourceRefs`). Values of the claim are copied as they
/// are: apply the claim CRD's schema defaults first, as the API server would have.
pub fn claim_to_composite(
    claim: &Value,
    xrd: &CompositeResourceDefinitionSpec,
) -> Result<Value, ClaimToCompositeError> {
    let str_at = |pointer: &str| {
        claim
            .pointer(pointer)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let missing = |field| ClaimToCompositeError::Missing { field };
    let api_version = str_at("/apiVersion").ok_or(missing("apiVersion"))?;
    let kind = str_at("/kind").ok_or(missing("kind"))?;
    let name = str_at("/metadata/name").ok_or(missing("metadata.name"))?;
    let namespace = str_at("/metadata/namespace").ok_or(missing("metadata.namespace"))?;

    let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
    let claim_kind = xrd.claim_names.as_ref().map(|n| n.kind.as_str());
    if claim_kind != Some(kind) || group != xrd.group {
        return Err(ClaimToCompositeError::NotAClaim {
            kind: kind.to_string(),
            api_version: api_version.to_string(),
            expected: match claim_kind {
                Some(k) => format!("{k} in group {}", xrd.group),
                None => "it offers no claim".to_string(),
            },
        });
    }
    let composite_type = xrd
        .composite_type()
        .ok_or(ClaimToCompositeError::NoReferenceableVersion)?;

    let mut spec = match claim.get("spec") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(spec)) => spec.clone(),
        Some(_) => return Err(ClaimToCompositeError::SpecNotAnObject),
    };
    let secret_name = claim
        .pointer("/spec/writeConnectionSecretToRef/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    if !xrd.claims_may_choose_composition() {
        let fields: Vec<&'static str> = COMPOSITION_CHOICE
            .into_iter()
            .filter(|f| spec.get(*f).is_some_and(|v| !v.is_null()))
            .collect();
        if !fields.is_empty() {
            return Err(ClaimToCompositeError::CompositionChoiceForbidden {
                kind: kind.to_string(),
                fields,
            });
        }
    }
    for field in NOT_COPIED {
        spec.remove(field);
    }
    if let Some(secret_name) = secret_name {
        // One hop: the composite writes the Secret straight into the claim's namespace.
        spec.insert(
            "writeConnectionSecretToRef".into(),
            json!({"name": secret_name, "namespace": namespace}),
        );
    }
    spec.insert(
        "claimRef".into(),
        json!({
            "apiVersion": api_version,
            "kind": kind,
            "name": name,
            "namespace": namespace,
        }),
    );

    let mut labels = json!({
        LABEL_CLAIM_NAME: name,
        LABEL_CLAIM_NAMESPACE: namespace,
    });
    // The composite stays in its claim's shard.
    if let Some(shard) = str_at("/metadata/labels/shard.tessera.dev~1key") {
        labels[LABEL_SHARD] = shard.into();
    }
    Ok(json!({
        "apiVersion": composite_type.api_version,
        "kind": composite_type.kind,
        "metadata": {
            "name": claim_composite_name(namespace, name),
            "labels": labels,
        },
        "spec": spec,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::xrd::ClaimCompositionSelection;

    fn xrd() -> CompositeResourceDefinitionSpec {
        serde_json::from_value(json!({
            "group": "platform.tessera.dev",
            "names": {"kind": "XPostgresDatabase", "plural": "xpostgresdatabases"},
            "claimNames": {"kind": "PostgresDatabase", "plural": "postgresdatabases"},
            "versions": [{"name": "v1alpha1", "served": true, "referenceable": true}],
        }))
        .expect("xrd parses")
    }

    fn claim() -> Value {
        json!({
            "apiVersion": "platform.tessera.dev/v1alpha1",
            "kind": "PostgresDatabase",
            "metadata": {"name": "orders-db", "namespace": "shop", "labels": {"team": "a"}},
            "spec": {
                "connectionLimit": 20,
                "compositionRef": {"name": "postgres-shared"},
                "writeConnectionSecretToRef": {"name": "orders-db"},
                "resourceRef": {"name": "someone-elses"},
            },
        })
    }

    #[test]
    fn claim_becomes_a_composite_bound_to_it_with_its_secret_in_the_claim_namespace() {
        let xr = claim_to_composite(&claim(), &xrd()).expect("converts");
        let name = claim_composite_name("shop", "orders-db");
        assert_eq!(
            xr,
            json!({
                "apiVersion": "platform.tessera.dev/v1alpha1",
                "kind": "XPostgresDatabase",
                "metadata": {
                    "name": name,
                    "labels": {
                        "tessera.dev/claim-name": "orders-db",
                        "tessera.dev/claim-namespace": "shop",
                    },
                },
                "spec": {
                    "connectionLimit": 20,
                    "compositionRef": {"name": "postgres-shared"},
                    "claimRef": {
                        "apiVersion": "platform.tessera.dev/v1alpha1",
                        "kind": "PostgresDatabase",
                        "name": "orders-db",
                        "namespace": "shop",
                    },
                    "writeConnectionSecretToRef": {"name": "orders-db", "namespace": "shop"},
                },
            })
        );
    }

    #[test]
    fn claim_without_secret_or_spec_gets_only_a_claim_ref() {
        let mut c = claim();
        c.as_object_mut().expect("object").remove("spec");
        let xr = claim_to_composite(&c, &xrd()).expect("converts");
        let spec = xr["spec"].as_object().expect("spec");
        assert_eq!(spec.keys().collect::<Vec<_>>(), ["claimRef"]);
    }

    #[test]
    fn claim_of_another_kind_or_without_namespace_is_refused() {
        let mut other = claim();
        other["kind"] = json!("RedisCache");
        assert!(matches!(
            claim_to_composite(&other, &xrd()),
            Err(ClaimToCompositeError::NotAClaim { .. })
        ));
        let mut no_ns = claim();
        no_ns["metadata"]
            .as_object_mut()
            .expect("metadata")
            .remove("namespace");
        assert_eq!(
            claim_to_composite(&no_ns, &xrd()).unwrap_err().to_string(),
            "the claim has no metadata.namespace"
        );
    }

    #[test]
    fn a_claim_choosing_its_composition_is_refused_when_the_xrd_forbids_it() {
        let mut forbidding = xrd();
        forbidding.claim_composition_selection = Some(ClaimCompositionSelection::Forbidden);
        let cases = [
            (
                "a compositionRef is refused",
                json!({"compositionRef": {"name": "postgres-shared"}}),
                Some("spec.compositionRef"),
            ),
            (
                "a selector and a revision are refused, each named",
                json!({"compositionSelector": {"matchLabels": {"tier": "gold"}},
                       "compositionRevisionRef": {"name": "postgres-shared-1"}}),
                Some("spec.compositionSelector, spec.compositionRevisionRef"),
            ),
            (
                "a null field chooses nothing",
                json!({"compositionRef": null}),
                None,
            ),
            (
                "the update policy is the claim's own",
                json!({"compositionUpdatePolicy": "Manual", "connectionLimit": 20}),
                None,
            ),
        ];
        for (reason, spec, refused) in cases {
            let mut c = claim();
            c["spec"] = spec;
            let got = claim_to_composite(&c, &forbidding);
            match refused {
                Some(fields) => {
                    let e = got.expect_err(reason);
                    assert_eq!(e.reason(), "CompositionChoiceForbidden", "{reason}");
                    assert_eq!(
                        e.to_string(),
                        format!(
                            "claims of kind PostgresDatabase may not choose their Composition \
                             (their XRD sets claimCompositionSelection: Forbidden): remove \
                             {fields} from the claim; the platform team's default Composition \
                             is used"
                        ),
                        "{reason}"
                    );
                }
                None => {
                    got.expect(reason);
                }
            }
        }
        assert!(
            claim_to_composite(&claim(), &xrd()).is_ok(),
            "claims may choose when the XRD does not forbid it"
        );
        let mut allowing = xrd();
        allowing.claim_composition_selection = Some(ClaimCompositionSelection::Allowed);
        let xr = claim_to_composite(&claim(), &allowing).expect("allowed");
        assert_eq!(
            xr["spec"]["compositionRef"],
            json!({"name": "postgres-shared"})
        );
    }
}
