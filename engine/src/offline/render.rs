//! `tessera render`: a claim (or composite) and a Composition in, the composite and its
//! composed resources out, as the controllers would apply them, using their functions:
//!
//! 1. a claim becomes its composite with [`crate::claim::bind::desired_composite`], that
//!    is [`crate::claim::claim_to_composite`] (after
//!    the claim CRD's schema defaults, as the API server applies them);
//! 2. the Composition is chosen with [`crate::composite::select::select_composition`];
//! 3. [`crate::compose::render()`] renders the composed resources, which must all be of
//!    kinds the controller may compose ([`crate::composite::plan::not_composable`]);
//! 4. with observed resources, [`crate::compose::observe()`] and the composite
//!    controller's status functions give the composite's status and connection keys.
//!
//! The output is a YAML stream with `#` comments saying what the controller would do
//! with each object. It never contains connection secret values, only their keys.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kube::api::DynamicObject;
use serde_json::{Value, json};

use super::catalog::{Catalog, Found};
use super::documents::{Document, read_file};
use super::observed::read_observed;
use super::validate::check_object;
use super::{Problem, Problems};
use crate::api::composition::{ComposedTemplate, Composition, ConnectionDetailType};
use crate::api::xrd::CompositeResourceDefinition;
use crate::composable::ComposableResources;
use crate::compose::{ObservedResource, RenderedResource, dependency_order, observe};
use crate::composite::plan::{creation_blockers, not_composable};
use crate::composite::select::{XrSpec, connection_target, select_composition};
use crate::composite::status::{
    StatusUpdate, next_status, ready_condition_explained, synced_condition,
};

/// The files `tessera render` reads.
#[derive(Clone, Copy, Debug)]
pub struct RenderInput<'a> {
    /// The claim or composite resource (one object).
    pub claim_or_xr: &'a Path,
    /// The Composition(s); the one the controller would select is used.
    pub composition: &'a Path,
    /// The XRD, needed for a claim; also searched for in the other two files.
    pub xrd: Option<&'a Path>,
    /// A file or directory of observed composed resources (with status) and their
    /// connection Secrets.
    pub observed: Option<&'a Path>,
    /// The kinds the controller may compose: rendering anything else fails, with the
    /// message the composite would get.
    pub composable: &'a ComposableResources,
}

/// The claim or composite, and what is known about its kind.
struct Subject<'a> {
    doc: &'a Document,
    xrd: Option<&'a CompositeResourceDefinition>,
    /// The composite, as the claim controller applies it (or as given).
    xr: Value,
    /// `namespace/name` of the claim, for a claim.
    claim: Option<String>,
}

/// Renders the files of `input` into the output of `tessera render`.
pub fn render(input: &RenderInput<'_>) -> Result<String, Problems> {
    let resource_docs = read_file(input.claim_or_xr)?;
    let composition_docs = read_file(input.composition)?;
    let xrd_docs = match input.xrd {
        Some(path) => read_file(path)?,
        None => Vec::new(),
    };
    let mut xrds = Vec::new();
    for doc in xrd_docs
        .iter()
        .chain(&composition_docs)
        .chain(&resource_docs)
    {
        if doc.kind() == "CompositeResourceDefinition" {
            let xrd = serde_json::from_value::<CompositeResourceDefinition>(doc.object.clone())
                .map_err(|e| doc.problem("", format!("cannot be read: {e}")))?;
            xrds.push((doc, xrd));
        }
    }
    let subject = subject(input, &resource_docs, &xrds)?;
    let mut notes = Vec::new();
    let (comp_doc, composition) =
        choose_composition(input, &composition_docs, &subject, &mut notes)?;
    let mut xr = subject.xr.clone();
    xr["spec"]["compositionRef"] = json!({ "name": comp_doc.name() });
    let spec = &composition.spec;
    let comp_problem =
        |e: &dyn std::fmt::Display| Problems::from(comp_doc.problem("", e.to_string()));
    let rendered = crate::compose::render(&xr, spec).map_err(|e| comp_problem(&e))?;
    let refused = not_composable(&rendered, input.composable);
    if !refused.is_empty() {
        let error = crate::composite::Error::NotComposable {
            resources: refused,
            allowed: input.composable.to_string(),
        };
        return Err(comp_problem(&error));
    }
    let order = dependency_order(spec).map_err(|e| comp_problem(&e))?;

    let keys_allowed: &[String] = subject
        .xrd
        .map_or(&[], |x| x.spec.connection_secret_keys.as_slice());
    let xr_spec: XrSpec = serde_json::from_value(xr["spec"].clone()).unwrap_or_default();
    let secret = connection_target(&xr_spec, spec, "<uid>")
        .map(|s| format!("connection secret {}/{}", s.namespace, s.name))
        .unwrap_or_else(|| "no connection secret".to_string());
    let (secret_line, progress) = match input.observed {
        None => {
            let keys = declared_keys(&composition, keys_allowed);
            let line = format!(
                "{secret}; keys once the resources are ready: {}",
                list(&keys)
            );
            (line, Progress::Unknown)
        }
        Some(dir) => {
            let observed = read_observed(dir, spec, &rendered, &mut notes)?;
            let live = observed.live();
            let state = observe(&xr, spec, &live, keys_allowed).map_err(|e| comp_problem(&e))?;
            // The composite controller writes status and resourceRefs, never other fields.
            let update = StatusUpdate {
                generation: None,
                ready: Some(ready_condition_explained(
                    &order,
                    &state.ready,
                    &state.problems,
                )),
                synced: Some(synced_condition(None)),
                patched: state.composite.get("status").cloned(),
                published_at: None,
            };
            xr["status"] = without_times(next_status(&Value::Null, update, ""));
            xr["spec"]["resourceRefs"] = resource_refs(&rendered, &live);
            let keys: Vec<String> = state.connection.keys().map(str::to_string).collect();
            let progress = Progress::Observed {
                exists: live.into_keys().collect(),
                ready: state.ready,
            };
            (format!("{secret}; keys: {}", list(&keys)), progress)
        }
    };

    let header = match &subject.claim {
        Some(claim) => format!(
            "{} {claim} -> {} {}",
            subject.doc.kind(),
            str_at(&xr, "/kind"),
            str_at(&xr, "/metadata/name")
        ),
        None => format!("{} {}", str_at(&xr, "/kind"), str_at(&xr, "/metadata/name")),
    };
    let mut out = format!(
        "# tessera render: {header}, Composition {}\n",
        comp_doc.name()
    );
    for note in &notes {
        out.push_str(&format!("# note: {note}\n"));
    }
    out.push_str("---\n");
    match &subject.claim {
        Some(claim) => out.push_str(&format!(
            "# the composite resource of claim {claim}, as the claim controller applies it\n"
        )),
        None => out.push_str("# the composite resource\n"),
    }
    out.push_str(&format!("# {secret_line}\n"));
    out.push_str(&yaml(&xr));
    for (i, r) in rendered.iter().enumerate() {
        let Some(template) = spec.resources.iter().find(|t| t.name == r.template) else {
            continue;
        };
        out.push_str(&format!(
            "---\n# resources[{i}] '{}': {} {}{}\n",
            r.template,
            str_at(&r.object, "/kind"),
            r.name(),
            progress.of(template)
        ));
        out.push_str(&yaml(&r.object));
    }
    Ok(out)
}

/// How far the controller got with the composed resources, as far as render knows.
enum Progress {
    /// Nothing was observed.
    Unknown,
    /// Observed resources: which exist, and which are ready.
    Observed {
        exists: BTreeSet<String>,
        ready: BTreeMap<String, bool>,
    },
}

impl Progress {
    /// A note on what the controller does with the resource of `template`.
    fn of(&self, template: &ComposedTemplate) -> String {
        match self {
            Progress::Unknown => match template.depends_on.as_slice() {
                [] => String::new(),
                deps => format!("; created once ready: {}", deps.join(", ")),
            },
            Progress::Observed { exists, ready } if exists.contains(&template.name) => {
                let is_ready = ready.get(&template.name).copied().unwrap_or(false);
                let state = if is_ready { "ready" } else { "not ready" };
                format!("; observed, {state}")
            }
            Progress::Observed { ready, .. } => {
                match creation_blockers(template, ready, false).as_slice() {
                    [] => "; not observed: the controller creates it now".to_string(),
                    blockers => format!("; not created yet: waits for {}", blockers.join(", ")),
                }
            }
        }
    }
}

/// The claim or composite of `docs`, turned into the composite the controllers see.
fn subject<'a>(
    input: &RenderInput<'_>,
    docs: &'a [Document],
    xrds: &'a [(&'a Document, CompositeResourceDefinition)],
) -> Result<Subject<'a>, Problems> {
    let file = input.claim_or_xr.display().to_string();
    let candidates: Vec<&Document> = docs
        .iter()
        .filter(|d| !matches!(d.kind(), "CompositeResourceDefinition" | "Composition"))
        .collect();
    let doc = match candidates.as_slice() {
        [one] => *one,
        [] => {
            return Err(
                Problem::error(&file, None, "", "holds no claim or composite resource").into(),
            );
        }
        many => {
            let names: Vec<String> = many.iter().map(|d| d.resource()).collect();
            return Err(Problem::error(
                &file,
                None,
                "",
                format!(
                    "holds {} objects ({}); give one claim or composite resource",
                    many.len(),
                    names.join(", ")
                ),
            )
            .into());
        }
    };
    let xrd = xrds.iter().find(|(_, x)| {
        let s = &x.spec;
        doc.group() == s.group
            && (doc.kind() == s.names.kind
                || s.claim_names.as_ref().is_some_and(|c| c.kind == doc.kind()))
    });
    let Some((xrd_doc, xrd)) = xrd else {
        if input.xrd.is_some() || !str_at(&doc.object, "/metadata/namespace").is_empty() {
            return Err(doc
                .problem(
                    "",
                    format!(
                        "no XRD among the files defines {} in {}; pass the XRD with --xrd",
                        doc.kind(),
                        doc.group()
                    ),
                )
                .into());
        }
        return Ok(Subject {
            doc,
            xrd: None,
            xr: doc.object.clone(),
            claim: None,
        });
    };
    let mut catalog = Catalog::new();
    catalog
        .add_xrd(xrd)
        .map_err(|e| Problems::from(xrd_doc.problem("", e)))?;
    let Found::Kind(info) = catalog.find(doc.api_version(), doc.kind()) else {
        return Err(doc
            .problem(
                "",
                format!(
                    "{} is not a served version of the XRD {}",
                    doc.api_version(),
                    xrd_doc.name()
                ),
            )
            .into());
    };
    let mut problems = Vec::new();
    check_object(doc, &info.schema, info.namespaced, &mut problems);
    problems.retain(Problem::is_error);
    if !problems.is_empty() {
        return Err(Problems(problems));
    }
    let mut object = doc.object.clone();
    super::schema::apply_defaults(&info.schema, &mut object);
    if doc.kind() == xrd.spec.names.kind {
        return Ok(Subject {
            doc,
            xrd: Some(xrd),
            xr: object,
            claim: None,
        });
    }
    let namespace = str_at(&object, "/metadata/namespace").to_string();
    if namespace.is_empty() {
        return Err(doc
            .problem(
                "",
                "a claim needs metadata.namespace here: render cannot know which namespace kubectl or Argo CD would use",
            )
            .into());
    }
    let claim: DynamicObject = serde_json::from_value(object)
        .map_err(|e| Problems::from(doc.problem("", format!("cannot be read: {e}"))))?;
    // As the controller names it; a claim file carrying status keeps its bound composite.
    let xr_name = crate::claim::bind::bound_composite_name(&claim, &xrd.spec)
        .unwrap_or_else(|| crate::naming::claim_composite_name(&namespace, doc.name()));
    let mut xr = crate::claim::bind::desired_composite(&claim, &xrd.spec, &xr_name)
        .map_err(|e| Problems::from(doc.problem("", e.to_string())))?;
    if let Found::Kind(xr_info) = catalog.find(str_at(&xr, "/apiVersion"), str_at(&xr, "/kind")) {
        let info = xr_info.clone();
        super::schema::apply_defaults(&info.schema, &mut xr);
    }
    Ok(Subject {
        doc,
        xrd: Some(xrd),
        xr,
        claim: Some(format!("{namespace}/{}", doc.name())),
    })
}

/// The Composition the controller would select for the composite, among those in the
/// composition file. When it would select none of them but the file holds exactly one
/// Composition of the composite's kind, that one is used and a note says so.
fn choose_composition<'a>(
    input: &RenderInput<'_>,
    docs: &'a [Document],
    subject: &Subject<'_>,
    notes: &mut Vec<String>,
) -> Result<(&'a Document, Composition), Problems> {
    let file = input.composition.display().to_string();
    let mut found = Vec::new();
    for doc in docs.iter().filter(|d| d.kind() == "Composition") {
        let c = serde_json::from_value::<Composition>(doc.object.clone())
            .map_err(|e| doc.problem("", format!("cannot be read: {e}")))?;
        found.push((doc, c));
    }
    let xr_type = crate::api::xrd::TypeReference {
        api_version: str_at(&subject.xr, "/apiVersion").to_string(),
        kind: str_at(&subject.xr, "/kind").to_string(),
    };
    let of_type: Vec<&(&Document, Composition)> = found
        .iter()
        .filter(|(_, c)| c.spec.composite_type_ref == xr_type)
        .collect();
    let single = |reason: String, notes: &mut Vec<String>| match of_type.as_slice() {
        [one] => {
            notes.push(reason);
            Ok((one.0, one.1.clone()))
        }
        [] => Err(Problems::from(Problem::error(
            &file,
            None,
            "",
            format!(
                "holds no Composition for {} {}",
                xr_type.kind, xr_type.api_version
            ),
        ))),
        _ => Err(Problems::from(Problem::error(&file, None, "", reason))),
    };
    let spec: XrSpec = serde_json::from_value(subject.xr["spec"].clone()).unwrap_or_default();
    let Some(xrd) = subject.xrd else {
        // Without an XRD: spec.compositionRef, or the only Composition of the kind.
        if let Some(r) = &spec.composition_ref
            && let Some((doc, c)) = of_type.iter().find(|(d, _)| d.name() == r.name)
        {
            return Ok((*doc, c.clone()));
        }
        return single(
            format!(
                "no XRD given: rendered with the only Composition for {} in {file}",
                xr_type.kind
            ),
            notes,
        );
    };
    let compositions: Vec<&Composition> = found.iter().map(|(_, c)| c).collect();
    match select_composition(&spec, &xrd.spec, &xr_type, &compositions) {
        Ok(chosen) => {
            let name = chosen.metadata.name.as_deref().unwrap_or_default();
            let (doc, c) = found
                .iter()
                .find(|(d, _)| d.name() == name)
                .ok_or_else(|| {
                    Problems::from(Problem::error(
                        &file,
                        None,
                        "",
                        "lost the chosen Composition",
                    ))
                })?;
            Ok((*doc, c.clone()))
        }
        Err(e) => single(
            format!(
                "the controller would not select this Composition ({e}); rendered with the only one for {} in {file}",
                xr_type.kind
            ),
            notes,
        ),
    }
}

/// The keys the Composition's connection details produce, filtered by the XRD's keys.
fn declared_keys(composition: &Composition, allowed: &[String]) -> Vec<String> {
    let mut keys: Vec<String> = composition
        .spec
        .resources
        .iter()
        .flat_map(|t| &t.connection_details)
        .filter_map(|d| match (&d.name, d.detail_type()) {
            (Some(n), _) => Some(n.clone()),
            (None, Some(ConnectionDetailType::FromConnectionSecretKey)) => {
                d.from_connection_secret_key.clone()
            }
            _ => None,
        })
        .filter(|k| allowed.is_empty() || allowed.contains(k))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// `spec.resourceRefs` as the composite controller records them: the rendered resources
/// that exist.
fn resource_refs(
    rendered: &[RenderedResource],
    live: &BTreeMap<String, ObservedResource<'_>>,
) -> Value {
    let refs: Vec<Value> = rendered
        .iter()
        .filter(|r| live.contains_key(&r.template))
        .map(|r| {
            json!({
                "apiVersion": str_at(&r.object, "/apiVersion"),
                "kind": str_at(&r.object, "/kind"),
                "name": r.name(),
            })
        })
        .collect();
    Value::Array(refs)
}

/// The status without `lastTransitionTime`s: offline there is no time worth printing.
fn without_times(mut status: Value) -> Value {
    if let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conditions.iter_mut().filter_map(Value::as_object_mut) {
            c.remove("lastTransitionTime");
        }
    }
    status
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    super::documents::str_at(value, pointer)
}

fn list(keys: &[String]) -> String {
    if keys.is_empty() {
        "none".to_string()
    } else {
        keys.join(", ")
    }
}

fn yaml(value: &Value) -> String {
    // A JSON value always serialises to YAML.
    serde_yaml::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests;
