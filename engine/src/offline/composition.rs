//! Checks of a Composition against the schema of its composite kind (from the XRD) and
//! the schemas of the kinds it composes: patch paths exist, values fit, required fields
//! are set, connection details and readiness checks read fields that exist.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Problem;
use super::catalog::{Catalog, Found, KindInfo};
use super::documents::Document;
use super::produced::{Produced, fits, through_transforms};
use super::schema::{self, Lookup, PATCHED, Types};
use crate::api::composition::{
    ComposedTemplate, CompositionSpec, ConnectionDetailType, Patch, PatchType, ReadinessCheckType,
};
use crate::compose::{ComposeError, FieldPath, dependency_order, expand_patches};

/// One side of a patch: the composite or a composed resource.
#[derive(Clone, Copy)]
struct Side<'a> {
    kind: &'a str,
    schema: Option<&'a Value>,
}

/// Appends the problems of the Composition in `doc` to `out`.
pub(super) fn check(
    doc: &Document,
    spec: &CompositionSpec,
    catalog: &Catalog,
    out: &mut Vec<Problem>,
) {
    let type_ref = &spec.composite_type_ref;
    let composite = match catalog.find(&type_ref.api_version, &type_ref.kind) {
        Found::Kind(k) if k.xrd.as_ref().is_some_and(|x| x.names.kind == k.kind) => Some(k),
        Found::Kind(k) => {
            out.push(doc.problem(
                " spec.compositeTypeRef",
                format!(
                    "{} is not the composite kind of an XRD; a Composition composes an XRD's composite (XR) kind",
                    k.kind
                ),
            ));
            None
        }
        _ => {
            out.push(doc.problem(
                " spec.compositeTypeRef",
                unknown_kind(catalog, &type_ref.api_version, &type_ref.kind),
            ));
            None
        }
    };
    let xr = Side {
        kind: &type_ref.kind,
        schema: composite.map(|k| &k.schema),
    };
    if let Err(e) = dependency_order(spec) {
        out.push(doc.problem(" spec.resources", e.to_string()));
    }
    let mut produced_keys = BTreeSet::new();
    let allowed_keys: &[String] = composite
        .and_then(|k| k.xrd.as_ref())
        .map_or(&[], |x| x.connection_secret_keys.as_slice());
    for (i, template) in spec.resources.iter().enumerate() {
        let label = format!(" resources[{i}] '{}'", template.name);
        let composed = composed_kind(doc, &label, template, catalog, out);
        let side = Side {
            kind: template
                .base
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            schema: composed.map(|k| &k.schema),
        };
        let patches = match expand_patches(template, &spec.patch_sets) {
            Ok(p) => p,
            Err(ComposeError::Patch { patch, error, .. }) => {
                out.push(doc.problem(&format!("{label} {patch}"), error.to_string()));
                Vec::new()
            }
            Err(e) => {
                out.push(doc.problem(&label, e.to_string()));
                Vec::new()
            }
        };
        for (origin, patch) in &patches {
            for message in check_patch(patch, xr, side) {
                out.push(doc.problem(&format!("{label} {origin}"), message));
            }
        }
        if let Some(schema) = side.schema {
            check_base(
                doc,
                &label,
                template,
                patches.iter().map(|(_, p)| *p),
                schema,
                out,
            );
        }
        let keys = check_connection_details(doc, &label, template, side, allowed_keys, out);
        produced_keys.extend(keys);
        check_readiness(doc, &label, template, side, out);
    }
    for key in allowed_keys {
        if !produced_keys.contains(key.as_str()) {
            out.push(
                doc.problem(
                    " spec.resources",
                    format!(
                        "no resource provides the connection secret key '{key}' that the XRD lists"
                    ),
                )
                .warning(),
            );
        }
    }
}

/// The message for a kind the catalog does not know.
pub(super) fn unknown_kind(catalog: &Catalog, api_version: &str, kind: &str) -> String {
    let mut message = format!(
        "unknown kind {kind} in {api_version}: no CRD or XRD among the checked files defines it"
    );
    let versions = catalog.versions_of(api_version, kind);
    if !versions.is_empty() {
        message.push_str(&format!(" (known as {})", versions.join(", ")));
    }
    message
}

fn composed_kind<'c>(
    doc: &Document,
    label: &str,
    template: &ComposedTemplate,
    catalog: &'c Catalog,
    out: &mut Vec<Problem>,
) -> Option<&'c KindInfo> {
    let text = |f: &str| {
        template
            .base
            .get(f)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let (Some(api_version), Some(kind)) = (text("apiVersion"), text("kind")) else {
        out.push(doc.problem(label, "base must be an object with apiVersion and kind"));
        return None;
    };
    match catalog.find(api_version, kind) {
        Found::Kind(k) => Some(k),
        _ => {
            out.push(doc.problem(
                &format!("{label} base"),
                unknown_kind(catalog, api_version, kind),
            ));
            None
        }
    }
}

/// Problems of one patch (already expanded from its patch set).
fn check_patch(patch: &Patch, xr: Side<'_>, composed: Side<'_>) -> Vec<String> {
    let ty = patch.patch_type();
    let (from, to) = match ty {
        PatchType::FromCompositeFieldPath | PatchType::CombineFromComposite => (xr, composed),
        PatchType::ToCompositeFieldPath | PatchType::CombineToComposite => (composed, xr),
        PatchType::PatchSet => return Vec::new(),
    };
    let mut errors = Vec::new();
    let (produced, target) = match ty {
        PatchType::FromCompositeFieldPath | PatchType::ToCompositeFieldPath => {
            let Some(source) = patch.from_field_path.as_deref() else {
                return vec![format!("type {ty:?} requires fromFieldPath")];
            };
            let produced = read(from, "fromFieldPath", source).unwrap_or_else(|e| {
                errors.push(e);
                Produced::any()
            });
            (produced, patch.target_field_path().unwrap_or(source))
        }
        _ => {
            let Some(combine) = &patch.combine else {
                return vec![format!("type {ty:?} requires combine")];
            };
            if combine.variables.is_empty() {
                errors.push("combine requires at least one variable".to_string());
            }
            for (k, v) in combine.variables.iter().enumerate() {
                let field = format!("combine.variables[{k}].fromFieldPath");
                if let Err(e) = read(from, &field, &v.from_field_path) {
                    errors.push(e);
                }
            }
            if combine.string.is_none() {
                errors.push("combine strategy string requires string.fmt".to_string());
            }
            let Some(target) = patch.to_field_path.as_deref() else {
                errors.push(format!("type {ty:?} requires toFieldPath"));
                return errors;
            };
            (Produced::of(Types::STRING), target)
        }
    };
    let target_schema = match write(to, target) {
        Ok(node) => node,
        Err(e) => {
            errors.push(e);
            None
        }
    };
    match through_transforms(&patch.transforms, produced) {
        Err(e) => errors.push(e),
        Ok(produced) => {
            if let Some(node) = target_schema
                && let Err(e) = fits(&produced, node)
            {
                errors.push(format!("toFieldPath {target}: {e}"));
            }
        }
    }
    errors
}

/// What reading `path` from `side` gives, or why `path` does not exist there.
fn read(side: Side<'_>, field: &str, path: &str) -> Result<Produced, String> {
    match resolve(side, field, path)? {
        Some(node) => Ok(Produced::of_schema(node)),
        None => Ok(Produced::any()),
    }
}

/// The schema of the target `path` on `side`, `None` when not known.
fn write<'a>(side: Side<'a>, path: &str) -> Result<Option<&'a Value>, String> {
    resolve(side, "toFieldPath", path)
}

fn resolve<'a>(side: Side<'a>, field: &str, path: &str) -> Result<Option<&'a Value>, String> {
    let parsed = FieldPath::parse(path).map_err(|e| format!("{field}: {e}"))?;
    let Some(schema) = side.schema else {
        return Ok(None);
    };
    match schema::lookup(schema, &parsed) {
        Lookup::Found(node) => Ok(Some(node)),
        Lookup::Any => Ok(None),
        Lookup::Missing {
            field: missing,
            suggestion,
        } => {
            let mut message = format!("{field} {path} is not in the schema of {}", side.kind);
            if missing != path {
                message.push_str(&format!(" (it has no {missing})"));
            }
            if let Some(s) = suggestion {
                message.push_str(&format!("; did you mean {s}?"));
            }
            Err(message)
        }
        Lookup::Mismatch(why) => Err(format!(
            "{field} {path} does not fit the schema of {}: {why}",
            side.kind
        )),
    }
}

/// The base with a placeholder at every field a patch from the composite sets, checked
/// against the composed kind's schema: unknown fields, wrong types, required fields that
/// nothing sets.
fn check_base<'p>(
    doc: &Document,
    label: &str,
    template: &ComposedTemplate,
    patches: impl Iterator<Item = &'p Patch>,
    schema: &Value,
    out: &mut Vec<Problem>,
) {
    let mut shadow = template.base.clone();
    for patch in patches {
        let sets_field = matches!(
            patch.patch_type(),
            PatchType::FromCompositeFieldPath | PatchType::CombineFromComposite
        );
        if let (true, Some(target)) = (sets_field, patch.target_field_path())
            && let Ok(path) = FieldPath::parse(target)
            && matches!(
                schema::lookup(schema, &path),
                Lookup::Found(_) | Lookup::Any
            )
        {
            // A path that does not fit the schema is reported with its patch, not here.
            let _ = path.set(&mut shadow, Value::String(PATCHED.to_string()));
        }
    }
    schema::apply_defaults(schema, &mut shadow);
    for issue in schema::validate(schema, &shadow) {
        let message = if issue.message == "is required but missing" {
            format!(
                "{} is required, but neither the base nor a patch sets it",
                issue.path
            )
        } else {
            format!("base: {issue}")
        };
        out.push(doc.problem(label, message));
    }
}

/// Checks the connection details of `template`; returns the keys they produce.
fn check_connection_details(
    doc: &Document,
    label: &str,
    template: &ComposedTemplate,
    side: Side<'_>,
    allowed: &[String],
    out: &mut Vec<Problem>,
) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for (j, detail) in template.connection_details.iter().enumerate() {
        let at = format!("{label} connectionDetails[{j}]");
        let mut fail = |message: String| out.push(doc.problem(&at, message));
        let Some(ty) = detail.detail_type() else {
            fail("set one of value, fmt, fromConnectionSecretKey or fromFieldPath".to_string());
            continue;
        };
        let name = match (&detail.name, ty) {
            (Some(n), _) => n.clone(),
            (None, ConnectionDetailType::FromConnectionSecretKey) => detail
                .from_connection_secret_key
                .clone()
                .unwrap_or_default(),
            (None, _) => {
                fail(format!("type {ty:?} requires name"));
                continue;
            }
        };
        let required = |field: &str| format!("type {ty:?} requires {field}");
        match ty {
            ConnectionDetailType::FromConnectionSecretKey
                if detail.from_connection_secret_key.is_none() =>
            {
                fail(required("fromConnectionSecretKey"))
            }
            ConnectionDetailType::FromValue if detail.value.is_none() => fail(required("value")),
            ConnectionDetailType::FromFieldPath => match &detail.from_field_path {
                None => fail(required("fromFieldPath")),
                Some(path) => {
                    if let Err(e) = resolve(side, "fromFieldPath", path) {
                        fail(e);
                    }
                }
            },
            ConnectionDetailType::Format => match detail.fmt.as_deref().map(placeholders) {
                None => fail(required("fmt")),
                Some(Err(e)) => fail(e),
                Some(Ok(names)) => {
                    for key in names.iter().filter(|k| !keys.contains(k)) {
                        fail(format!(
                            "fmt names {{{key}}}, which no earlier connection detail of this resource provides (it has: {})",
                            if keys.is_empty() {
                                "none".to_string()
                            } else {
                                keys.join(", ")
                            }
                        ));
                    }
                }
            },
            _ => {}
        }
        if !allowed.is_empty() && !allowed.contains(&name) {
            out.push(
                doc.problem(
                    &at,
                    format!(
                        "'{name}' is not among the XRD's connectionSecretKeys, so it never reaches the connection secret"
                    ),
                )
                .warning(),
            );
        }
        keys.push(name);
    }
    keys
}

/// The keys a `Format` connection detail's `fmt` refers to, read as the engine reads them.
fn placeholders(fmt: &str) -> Result<Vec<String>, String> {
    Ok(crate::compose::connection::parse_format(fmt)?
        .into_iter()
        .filter_map(|part| match part {
            crate::compose::connection::FormatPart::Key(key) => Some(key.to_string()),
            crate::compose::connection::FormatPart::Literal(_) => None,
        })
        .collect())
}

fn check_readiness(
    doc: &Document,
    label: &str,
    template: &ComposedTemplate,
    side: Side<'_>,
    out: &mut Vec<Problem>,
) {
    for (j, check) in template.readiness_checks.iter().enumerate() {
        let at = format!("{label} readinessChecks[{j}]");
        let (wants, value_field, has_value) = match check.type_ {
            ReadinessCheckType::None | ReadinessCheckType::MatchCondition => continue,
            ReadinessCheckType::NonEmpty => (Types::ANY, "", true),
            ReadinessCheckType::MatchString => {
                (Types::STRING, "matchString", check.match_string.is_some())
            }
            ReadinessCheckType::MatchInteger => (
                Types::INTEGER,
                "matchInteger",
                check.match_integer.is_some(),
            ),
            ReadinessCheckType::MatchTrue | ReadinessCheckType::MatchFalse => {
                (Types::BOOLEAN, "", true)
            }
        };
        let ty = check.type_;
        if !has_value {
            out.push(doc.problem(&at, format!("type {ty:?} requires {value_field}")));
        }
        let Some(path) = &check.field_path else {
            out.push(doc.problem(&at, format!("type {ty:?} requires fieldPath")));
            continue;
        };
        match resolve(side, "fieldPath", path) {
            Err(e) => out.push(doc.problem(&at, e)),
            Ok(Some(node)) => {
                let has = Types::of_schema(node);
                if !has.is_any() && !has.overlaps(wants) {
                    out.push(doc.problem(
                        &at,
                        format!(
                            "type {ty:?} needs {}, but fieldPath {path} is {}",
                            wants.describe(),
                            has.describe()
                        ),
                    ));
                }
            }
            Ok(None) => {}
        }
    }
}
