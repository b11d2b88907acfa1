//! Readiness checks: whether an observed composed resource counts as ready.

use serde_json::Value;

use super::ComposeError;
use super::fieldpath::{FieldPath, describe};
use crate::api::composition::{ComposedTemplate, ReadinessCheck, ReadinessCheckType};

/// Whether `observed` (the composed resource as read from the API server) is ready: all of
/// the template's readiness checks pass, or, when it has none, its `Ready` condition is
/// `True`.
///
/// A check that cannot run (a missing `fieldPath`, a field of the wrong type) is an error;
/// a field that is simply not there yet means "not ready".
pub fn is_ready(template: &ComposedTemplate, observed: &Value) -> Result<bool, ComposeError> {
    if template.readiness_checks.is_empty() {
        return Ok(condition_status(observed, "Ready") == Some("True"));
    }
    for (index, check) in template.readiness_checks.iter().enumerate() {
        let passed = run_check(check, observed).map_err(|reason| ComposeError::ReadinessCheck {
            resource: template.name.clone(),
            index,
            reason,
        })?;
        if !passed {
            return Ok(false);
        }
    }
    Ok(true)
}

fn run_check(check: &ReadinessCheck, observed: &Value) -> Result<bool, String> {
    let ty = check.type_;
    let value = || -> Result<Option<&Value>, String> {
        let path = check
            .field_path
            .as_deref()
            .ok_or_else(|| format!("type {ty:?} requires fieldPath"))?;
        FieldPath::parse(path)
            .and_then(|p| p.get(observed))
            .map_err(|e| e.to_string())
    };
    let wrong_type = |v: &Value, want: &str| {
        format!(
            "field {} is {}, not {want}",
            check.field_path.as_deref().unwrap_or_default(),
            describe(v)
        )
    };
    match ty {
        ReadinessCheckType::None => Ok(true),
        ReadinessCheckType::NonEmpty => Ok(value()?.is_some()),
        ReadinessCheckType::MatchString => {
            let want = check
                .match_string
                .as_deref()
                .ok_or("type MatchString requires matchString")?;
            match value()? {
                None => Ok(false),
                Some(Value::String(s)) => Ok(s == want),
                Some(v) => Err(wrong_type(v, "a string")),
            }
        }
        ReadinessCheckType::MatchInteger => {
            let want = check
                .match_integer
                .ok_or("type MatchInteger requires matchInteger")?;
            match value()? {
                None => Ok(false),
                Some(Value::Number(n)) => Ok(n.as_i64() == Some(want)
                    || n.as_f64()
                        .is_some_and(|f| f.fract() == 0.0 && f == want as f64)),
                Some(v) => Err(wrong_type(v, "an integer")),
            }
        }
        ReadinessCheckType::MatchTrue | ReadinessCheckType::MatchFalse => {
            let want = ty == ReadinessCheckType::MatchTrue;
            match value()? {
                None => Ok(false),
                Some(Value::Bool(b)) => Ok(*b == want),
                Some(v) => Err(wrong_type(v, "a boolean")),
            }
        }
        ReadinessCheckType::MatchCondition => {
            let want = check.match_condition.clone().unwrap_or_default();
            Ok(condition_status(observed, &want.type_) == Some(want.status.as_str()))
        }
    }
}

/// Longest message of a composed resource quoted in its composite's conditions.
const MAX_PROBLEM_LENGTH: usize = 512;

/// Why the composed resource `observed` is not ready, in its own words, for the
/// composite's (and so the claim's) `Ready` message: the message of its `Synced=False`
/// condition (a failure: bad input, refused credentials, an external error), else that of
/// its `Ready=False` condition (e.g. "AWS status of DB instance \"x\": creating"), with
/// the reason, e.g. "ReconcileError: InvalidParameterValue: ...". `None` when neither
/// says anything. Messages are bounded in length.
pub fn problem(observed: &Value) -> Option<String> {
    let conditions = observed.pointer("/status/conditions")?.as_array()?;
    let failing = |type_: &str| {
        conditions.iter().find_map(|c| {
            let message = c.get("message")?.as_str()?;
            (c.get("type")?.as_str()? == type_
                && c.get("status")?.as_str()? == "False"
                && !message.is_empty())
            .then(|| (c.get("reason").and_then(Value::as_str), message))
        })
    };
    let (reason, message) = failing("Synced").or_else(|| failing("Ready"))?;
    let mut text = match reason {
        Some(r) if !r.is_empty() => format!("{r}: {message}"),
        _ => message.to_string(),
    };
    if text.len() > MAX_PROBLEM_LENGTH {
        let mut end = MAX_PROBLEM_LENGTH;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    Some(text)
}

/// The status of the condition of type `type_` in `status.conditions`, if present.
pub(crate) fn condition_status<'a>(observed: &'a Value, type_: &str) -> Option<&'a str> {
    observed
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))?
        .get("status")?
        .as_str()
}

#[cfg(test)]
mod tests;
