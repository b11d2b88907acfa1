//! Connection details: which values of a composed resource reach the composite's (and
//! so the claim's) connection Secret.
//!
//! Values are secrets. They live in [`ConnectionDetails`], whose `Debug` prints keys only,
//! and no error message here contains a value.

use serde_json::Value;

use super::ComposeError;
use super::fieldpath::FieldPath;
use super::limits::{MAX_VALUE_DEPTH, deeper_than};
use super::sprintf::go_json;
pub use crate::api::common::ConnectionDetails;
use crate::api::composition::{ComposedTemplate, ConnectionDetailType};

/// The connection details that `template` contributes to its composite, taken from the
/// `observed` composed resource and its own connection details (`connection`, the data of
/// its connection Secret).
///
/// Details are processed in order. A source that is not there yet (a key missing from the
/// resource's connection details, a field not yet in its status, a `Format` placeholder
/// naming a key not gathered) skips the detail; a detail that is not configured
/// correctly is an error.
pub fn extract_connection_details(
    template: &ComposedTemplate,
    observed: &Value,
    connection: &ConnectionDetails,
) -> Result<ConnectionDetails, ComposeError> {
    let mut out = ConnectionDetails::new();
    for (index, detail) in template.connection_details.iter().enumerate() {
        let fail = |reason: String| ComposeError::ConnectionDetail {
            resource: template.name.clone(),
            index,
            reason,
        };
        let Some(ty) = detail.detail_type() else {
            return Err(fail(
                "set one of value, fmt, fromConnectionSecretKey or fromFieldPath".to_string(),
            ));
        };
        let required = |field: &str| fail(format!("type {ty:?} requires {field}"));
        let name = match (&detail.name, ty) {
            (Some(name), _) => name.clone(),
            (None, ConnectionDetailType::FromConnectionSecretKey) => detail
                .from_connection_secret_key
                .clone()
                .ok_or_else(|| required("fromConnectionSecretKey"))?,
            (None, _) => return Err(required("name")),
        };
        if name.is_empty() {
            return Err(fail("name must not be empty".to_string()));
        }
        let value: Option<Vec<u8>> = match ty {
            ConnectionDetailType::FromValue => Some(
                detail
                    .value
                    .as_ref()
                    .ok_or_else(|| required("value"))?
                    .clone()
                    .into_bytes(),
            ),
            ConnectionDetailType::FromConnectionSecretKey => {
                let key = detail
                    .from_connection_secret_key
                    .as_deref()
                    .ok_or_else(|| required("fromConnectionSecretKey"))?;
                connection.get(key).map(<[u8]>::to_vec)
            }
            ConnectionDetailType::FromFieldPath => {
                let path = detail
                    .from_field_path
                    .as_deref()
                    .ok_or_else(|| required("fromFieldPath"))?;
                let found = FieldPath::parse(path)
                    .and_then(|p| p.get(observed))
                    .map_err(|e| fail(e.to_string()))?;
                if found.is_some_and(|v| deeper_than(v, MAX_VALUE_DEPTH)) {
                    return Err(fail(format!(
                        "field {path} nests deeper than the limit of {MAX_VALUE_DEPTH} levels"
                    )));
                }
                found.map(|v| match v {
                    Value::String(s) => s.clone().into_bytes(),
                    other => go_json(other).into_bytes(),
                })
            }
            ConnectionDetailType::Format => {
                let fmt = detail.fmt.as_deref().ok_or_else(|| required("fmt"))?;
                format_details(fmt, &out).map_err(fail)?
            }
        };
        if let Some(value) = value {
            out.insert(name, value);
        }
    }
    Ok(out)
}

/// A piece of a `Format` connection detail's `fmt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatPart<'a> {
    /// Text copied as is (`{{` and `}}` become single braces).
    Literal(&'a str),
    /// A `{key}` placeholder.
    Key(&'a str),
}

/// Splits `fmt` into literal text and `{key}` placeholders; `{{` and `}}` are literal
/// braces. The one parser of `fmt`, for the controller and `tessera validate` alike.
pub fn parse_format(fmt: &str) -> Result<Vec<FormatPart<'_>>, String> {
    let mut parts = Vec::new();
    let mut rest = fmt;
    while let Some(pos) = rest.find(['{', '}']) {
        if pos > 0 {
            parts.push(FormatPart::Literal(&rest[..pos]));
        }
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("{{") {
            parts.push(FormatPart::Literal("{"));
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            parts.push(FormatPart::Literal("}"));
            rest = after;
        } else if let Some(after) = tail.strip_prefix('{') {
            let end = after
                .find('}')
                .ok_or_else(|| format!("fmt {fmt:?} has an unclosed '{{'"))?;
            let key = &after[..end];
            if key.is_empty() || key.contains('{') {
                return Err(format!("fmt {fmt:?} has an empty or malformed placeholder"));
            }
            parts.push(FormatPart::Key(key));
            rest = &after[end + 1..];
        } else {
            return Err(format!(
                "fmt {fmt:?} has a '}}' without '{{'; write '}}}}' for a literal brace"
            ));
        }
    }
    if !rest.is_empty() {
        parts.push(FormatPart::Literal(rest));
    }
    Ok(parts)
}

/// Fills `{key}` placeholders of `fmt` from `details`; `{{` and `}}` are literal braces.
/// `Ok(None)` when a placeholder names a key that is not (yet) in `details`.
fn format_details(fmt: &str, details: &ConnectionDetails) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::with_capacity(fmt.len());
    for part in parse_format(fmt)? {
        match part {
            FormatPart::Literal(text) => out.extend_from_slice(text.as_bytes()),
            FormatPart::Key(key) => match details.get(key) {
                Some(value) => out.extend_from_slice(value),
                None => return Ok(None),
            },
        }
    }
    Ok(Some(out))
}

/// Keeps only the keys listed in `allowed` (the XRD's `connectionSecretKeys`); an empty
/// list keeps every key, as in Crossplane.
pub fn filter_connection_details(
    details: ConnectionDetails,
    allowed: &[String],
) -> ConnectionDetails {
    if allowed.is_empty() {
        return details;
    }
    ConnectionDetails(
        details
            .0
            .into_iter()
            .filter(|(k, _)| allowed.iter().any(|a| a == k))
            .collect(),
    )
}

#[cfg(test)]
mod tests;
