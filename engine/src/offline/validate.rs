//! `tessera validate`: checks files of Kubernetes objects offline, the way the API server
//! and the composition engine would see them.
//!
//! - every object of a known kind (a CRD or XRD among the inputs, the engine's own kinds,
//!   and the CRDs the caller passes, e.g. those `tessera crds` renders) against its
//!   schema: types, enums, required fields, unknown fields, after the schema's defaults;
//! - XRDs: names, versions and schemas, by generating their CRDs as the XRD controller does;
//! - Compositions: see [`super::composition`] (patch paths, types, required fields,
//!   connection details, readiness checks, dependencies).
//!
//! Objects of groups nobody defines (`v1` Secrets, Namespaces, ...) are skipped; an
//! unknown kind in a known group (or in a `tessera.dev` group) is an error.

use serde_json::Value;

use super::catalog::{Catalog, Found};
use super::composition::{self, unknown_kind};
use super::documents::Document;
use super::{Problem, Severity, schema};
use crate::api::composition::CompositionSpec;
use crate::api::xrd::CompositeResourceDefinition;
use crate::composable::ComposableResources;

/// The apiVersion of the engine's own kinds (XRD, Composition).
const ENGINE_API_VERSION: &str = "apiextensions.tessera.dev/v1";
/// The apiVersion of CRDs.
const CRD_API_VERSION: &str = "apiextensions.k8s.io/v1";

/// What `validate` found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// The problems, in file order.
    pub problems: Vec<Problem>,
    /// Objects read.
    pub objects: usize,
    /// Objects of kinds without a known schema, not checked.
    pub skipped: usize,
}

impl Report {
    /// Number of errors.
    pub fn errors(&self) -> usize {
        self.problems.iter().filter(|p| p.is_error()).count()
    }

    /// Number of warnings.
    pub fn warnings(&self) -> usize {
        self.problems.len() - self.errors()
    }

    /// One line for the end of the output, e.g.
    /// `7 objects in 4 files: no problems (1 of a kind without schema not checked)`.
    pub fn summary(&self, files: usize) -> String {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut line = format!(
            "{} in {}: ",
            plural(self.objects, "object", "objects"),
            plural(files, "file", "files")
        );
        match (self.errors(), self.warnings()) {
            (0, 0) => line.push_str("no problems"),
            (e, w) => {
                let mut parts = Vec::new();
                if e > 0 {
                    parts.push(plural(e, "error", "errors"));
                }
                if w > 0 {
                    parts.push(plural(w, "warning", "warnings"));
                }
                line.push_str(&parts.join(", "));
            }
        }
        if self.skipped > 0 {
            line.push_str(&format!(
                " ({} of kinds without a schema not checked)",
                self.skipped
            ));
        }
        line
    }
}

/// Checks `docs`. `crds` are CRDs known besides the engine's own and those among `docs`
/// (for `tessera validate`: the providers' CRDs, rendered in-process).
pub fn validate(docs: &[Document], crds: &[Value]) -> Report {
    let mut report = Report {
        objects: docs.len(),
        ..Report::default()
    };
    let problems = &mut report.problems;
    let mut catalog = Catalog::new();
    for crd in crds {
        // Callers pass generated CRDs; a broken one is a bug there, not in the user's files.
        let _ = catalog.add_crd(crd);
    }
    // Definitions first, so objects can come before their CRD or XRD in the inputs.
    for doc in docs {
        match (doc.api_version(), doc.kind()) {
            (CRD_API_VERSION, "CustomResourceDefinition") => {
                if let Err(e) = catalog.add_crd(&doc.object) {
                    problems.push(doc.problem("", e));
                }
            }
            (ENGINE_API_VERSION, "CompositeResourceDefinition") => {
                // When the XRD cannot be read, the schema check below says why.
                if let Ok(xrd) =
                    serde_json::from_value::<CompositeResourceDefinition>(doc.object.clone())
                    && let Err(e) = catalog.add_xrd(&xrd)
                {
                    problems.push(doc.problem("", e));
                }
            }
            _ => {}
        }
    }
    for doc in docs {
        if (doc.api_version(), doc.kind()) == (CRD_API_VERSION, "CustomResourceDefinition") {
            continue;
        }
        if doc.api_version().is_empty() || doc.kind().is_empty() {
            problems.push(doc.problem("", "apiVersion and kind are required"));
            continue;
        }
        let info = match catalog.find(doc.api_version(), doc.kind()) {
            Found::Kind(info) => info,
            Found::UnknownGroup if !doc.group().ends_with("tessera.dev") => {
                report.skipped += 1;
                continue;
            }
            _ => {
                problems
                    .push(doc.problem("", unknown_kind(&catalog, doc.api_version(), doc.kind())));
                continue;
            }
        };
        let before = problems.len();
        check_object(doc, &info.schema, info.namespaced, problems);
        let clean = problems[before..]
            .iter()
            .all(|p| p.severity != Severity::Error);
        if (doc.api_version(), doc.kind()) == (ENGINE_API_VERSION, "Composition") && clean {
            match serde_json::from_value::<CompositionSpec>(doc.object["spec"].clone()) {
                Ok(spec) => composition::check(doc, &spec, &catalog, problems),
                Err(e) => problems.push(doc.problem(" spec", format!("cannot be read: {e}"))),
            }
        }
    }
    report
}

/// The resources of the Compositions among `docs` whose base kind `composable` does not
/// list: the composite controller with that `--composable-resources` list applies nothing
/// of a composite that uses such a Composition. (Patches may set a kind too: the
/// controllers check the rendered objects, `tessera render` shows those.)
pub fn not_composable(docs: &[Document], composable: &ComposableResources) -> Vec<Problem> {
    let mut out = Vec::new();
    for doc in docs {
        if (doc.api_version(), doc.kind()) != (ENGINE_API_VERSION, "Composition") {
            continue;
        }
        let resources = doc
            .object
            .pointer("/spec/resources")
            .and_then(Value::as_array);
        for (i, template) in resources.into_iter().flatten().enumerate() {
            let text = |p: &str| template.pointer(p).and_then(Value::as_str).unwrap_or("");
            let (api_version, kind) = (text("/base/apiVersion"), text("/base/kind"));
            if api_version.is_empty() || kind.is_empty() || composable.allows(api_version, kind) {
                continue;
            }
            out.push(doc.problem(
                &format!(" resources[{i}] '{}' base", text("/name")),
                format!(
                    "{api_version} {kind} is not in the controller's composable resources \
                     ({composable}): a composite using this Composition gets none of its \
                     resources applied (tessera controller --composable-resources; give \
                     tessera validate the same list)"
                ),
            ));
        }
    }
    out
}

/// Checks one object against its kind's schema, after the schema's defaults.
pub(super) fn check_object(
    doc: &Document,
    schema: &Value,
    namespaced: bool,
    out: &mut Vec<Problem>,
) {
    let mut object = doc.object.clone();
    schema::apply_defaults(schema, &mut object);
    if doc.name().is_empty() && object.pointer("/metadata/generateName").is_none() {
        out.push(doc.problem("", "metadata.name is required"));
    }
    if !namespaced && object.pointer("/metadata/namespace").is_some() {
        out.push(
            doc.problem(
                "",
                format!(
                    "{} is cluster-scoped; metadata.namespace is ignored",
                    doc.kind()
                ),
            )
            .warning(),
        );
    }
    for issue in schema::validate(schema, &object) {
        out.push(doc.problem("", issue.to_string()));
    }
}

#[cfg(test)]
mod tests;
