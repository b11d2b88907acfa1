//! A small walker over structural OpenAPI v3 schemas (a CRD version's `openAPIV3Schema`),
//! enough to check objects the way the API server would and to look up field paths.
//!
//! Supported: `type`, `nullable`, `enum`, `required`, `properties`,
//! `additionalProperties` (schema or boolean), `items`, `x-kubernetes-preserve-unknown-fields`,
//! `x-kubernetes-int-or-string`, `x-kubernetes-embedded-resource`, `default`, `pattern`,
//! `minLength`/`maxLength`, `minimum`/`maximum` (with the `exclusive*` flags),
//! `minItems`/`maxItems`. Not supported (ignored): `format`, CEL validations, `oneOf`/
//! `anyOf`/`allOf`/`not`, which structural schemas use only to add constraints.
//!
//! As in the API server, `null` counts as absent unless the field is `nullable`.

use std::fmt::Write as _;

use regex::Regex;
use serde_json::Value;

use crate::compose::fieldpath::{FieldPath, Segment};

/// A placeholder value the validator accepts for any schema without looking inside: a
/// field that a patch will set, whose value is not known offline.
pub(crate) const PATCHED: &str = "\u{0}set-by-a-patch";

/// A place in an object that does not fit its schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// Field path of the place, e.g. `spec.forProvider.connectionLimit` (empty: the object).
    pub path: String,
    /// What is wrong, e.g. `must be an integer, not a string`.
    pub message: String,
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.path.as_str(), self.message.starts_with("is ")) {
            ("", _) => write!(f, "{}", self.message),
            (path, true) => write!(f, "{path} {}", self.message),
            (path, false) => write!(f, "{path}: {}", self.message),
        }
    }
}

/// The problems of `value` against `schema`, in document order.
pub fn validate(schema: &Value, value: &Value) -> Vec<Issue> {
    let mut out = Vec::new();
    check(schema, value, "", &mut out);
    out
}

/// Fills in `default`s of absent fields whose parent object is present, top-down (so the
/// defaults of a defaulted object apply too), as the API server does.
pub fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, sub) in props {
                    let absent = map.get(name).is_none_or(|v| v.is_null() && !nullable(sub));
                    if let (true, Some(default)) = (absent, sub.get("default")) {
                        map.insert(name.clone(), default.clone());
                    }
                }
            }
            for (name, v) in map.iter_mut() {
                if let Some(sub) = property(schema, name) {
                    apply_defaults(sub, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for item in items {
                    apply_defaults(sub, item);
                }
            }
        }
        _ => {}
    }
}

/// The schema of a field, by name, of an object schema: its property, or the
/// `additionalProperties` schema.
fn property<'a>(schema: &'a Value, name: &str) -> Option<&'a Value> {
    schema
        .get("properties")
        .and_then(|p| p.get(name))
        .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()))
}

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name) == Some(&Value::Bool(true))
}

fn nullable(schema: &Value) -> bool {
    flag(schema, "nullable")
}

fn check(schema: &Value, value: &Value, path: &str, out: &mut Vec<Issue>) {
    let mut issue = |message: String| {
        out.push(Issue {
            path: path.to_string(),
            message,
        })
    };
    if value.as_str() == Some(PATCHED) || value.is_null() {
        return;
    }
    let accepted = Types::of_schema(schema);
    if !accepted.contains_value(value) {
        issue(format!(
            "must be {}, not {}",
            accepted.describe(),
            Types::of_value(value).describe()
        ));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        issue(format!(
            "must be one of {}, not {}",
            list(allowed),
            short(value)
        ));
    }
    match value {
        Value::String(s) => check_string(schema, s, &mut issue),
        Value::Number(n) => check_number(schema, n.as_f64().unwrap_or(0.0), &mut issue),
        Value::Array(items) => {
            check_count(schema, items.len(), "items", &mut issue);
            if let Some(sub) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(sub, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::Object(map) => check_object(schema, map, path, out),
        _ => {}
    }
}

fn check_object(
    schema: &Value,
    map: &serde_json::Map<String, Value>,
    path: &str,
    out: &mut Vec<Issue>,
) {
    let props = schema.get("properties").and_then(Value::as_object);
    for name in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if map.get(name).is_none_or(Value::is_null) {
            out.push(Issue {
                path: join(path, name),
                message: "is required but missing".to_string(),
            });
        }
    }
    let additional = schema.get("additionalProperties");
    let open = flag(schema, "x-kubernetes-preserve-unknown-fields")
        || additional == Some(&Value::Bool(true))
        || schema.get("type").is_none();
    let embedded = flag(schema, "x-kubernetes-embedded-resource");
    for (name, v) in map {
        if let Some(sub) = property(schema, name) {
            check(sub, v, &join(path, name), out);
        } else {
            let envelope = embedded && matches!(name.as_str(), "apiVersion" | "kind" | "metadata");
            if open || envelope {
                continue;
            }
            let known: Vec<&str> = props
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let mut message = "unknown field".to_string();
            if let Some(close) = closest(name, &known) {
                let _ = write!(message, "; did you mean {close}?");
            }
            out.push(Issue {
                path: join(path, name),
                message,
            });
        }
    }
}

fn check_string(schema: &Value, s: &str, issue: &mut impl FnMut(String)) {
    check_count(schema, s.chars().count(), "characters", issue);
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && let Ok(re) = Regex::new(pattern)
        && !re.is_match(s)
    {
        issue(format!(
            "{} does not match the pattern {pattern:?}",
            short(&s.into())
        ));
    }
}

fn check_count(schema: &Value, n: usize, what: &str, issue: &mut impl FnMut(String)) {
    let (min_key, max_key) = match what {
        "items" => ("minItems", "maxItems"),
        _ => ("minLength", "maxLength"),
    };
    if let Some(min) = schema.get(min_key).and_then(Value::as_u64)
        && (n as u64) < min
    {
        issue(format!("must have at least {min} {what}, not {n}"));
    }
    if let Some(max) = schema.get(max_key).and_then(Value::as_u64)
        && (n as u64) > max
    {
        issue(format!("must have at most {max} {what}, not {n}"));
    }
}

fn check_number(schema: &Value, n: f64, issue: &mut impl FnMut(String)) {
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        let exclusive = flag(schema, "exclusiveMinimum");
        if n < min || (exclusive && n == min) {
            let op = if exclusive {
                "greater than"
            } else {
                "at least"
            };
            issue(format!("must be {op} {min}, not {n}"));
        }
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        let exclusive = flag(schema, "exclusiveMaximum");
        if n > max || (exclusive && n == max) {
            let op = if exclusive { "less than" } else { "at most" };
            issue(format!("must be {op} {max}, not {n}"));
        }
    }
}

/// `parent.name`, or `parent[name]` when the name has characters a field path cannot
/// write after a dot.
pub(crate) fn join(parent: &str, name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$');
    match (parent.is_empty(), plain) {
        (true, true) => name.to_string(),
        (false, true) => format!("{parent}.{name}"),
        (_, false) => format!("{parent}[{name}]"),
    }
}

fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 40 {
        format!("{}...", text.chars().take(37).collect::<String>())
    } else {
        text
    }
}

fn list(values: &[Value]) -> String {
    values.iter().map(short).collect::<Vec<_>>().join(", ")
}

/// The known name that `name` was most likely meant to be: same letters in another case,
/// a few edits away (one per four letters, at most three), or one starting with the
/// other (`roleName` for `role`).
fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = name.chars().count().div_ceil(4).clamp(1, 3);
    let lower = name.to_ascii_lowercase();
    known
        .iter()
        .map(|k| {
            let k_lower = k.to_ascii_lowercase();
            let prefix = k_lower.len().min(lower.len()) >= 4
                && (k_lower.starts_with(&lower) || lower.starts_with(&k_lower));
            let d = match edit_distance(&k_lower, &lower) {
                d if d > limit && prefix => limit,
                d => d,
            };
            (d, *k)
        })
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Where a field path leads in a schema.
#[derive(Clone, Debug, PartialEq)]
pub enum Lookup<'a> {
    /// The schema of the field.
    Found(&'a Value),
    /// Somewhere the schema allows anything (preserved unknown fields): no more is known.
    Any,
    /// A field the schema does not have.
    Missing {
        /// The path up to and including the missing field.
        field: String,
        /// A known field path with a similar name.
        suggestion: Option<String>,
    },
    /// The path treats a value as an object or list that the schema says is not one.
    Mismatch(String),
}

/// Follows `path` through `schema`.
pub fn lookup<'a>(schema: &'a Value, path: &FieldPath) -> Lookup<'a> {
    let mut node = schema;
    let mut at = String::new();
    for segment in path.segments() {
        let ty = node.get("type").and_then(Value::as_str);
        let open = flag(node, "x-kubernetes-preserve-unknown-fields") || ty.is_none();
        match segment {
            Segment::Field(name) => {
                if let Some(sub) = property(node, name) {
                    node = sub;
                } else if open || node.get("additionalProperties") == Some(&Value::Bool(true)) {
                    return Lookup::Any;
                } else if ty == Some("object") {
                    let known: Vec<&str> = node
                        .get("properties")
                        .and_then(Value::as_object)
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    return Lookup::Missing {
                        field: join(&at, name),
                        suggestion: closest(name, &known).map(|c| join(&at, c)),
                    };
                } else {
                    let what = Types::of_schema(node).describe();
                    let hint = if ty == Some("array") {
                        format!("; index it, e.g. {at}[0]")
                    } else {
                        String::new()
                    };
                    return Lookup::Mismatch(format!("{at} is {what}, not an object{hint}"));
                }
                at = join(&at, name);
            }
            Segment::Index(i) => {
                if ty == Some("array") {
                    match node.get("items") {
                        Some(items) => node = items,
                        None => return Lookup::Any,
                    }
                } else if open && ty != Some("object") {
                    return Lookup::Any;
                } else {
                    let what = Types::of_schema(node).describe();
                    return Lookup::Mismatch(format!("{at} is {what}, not a list"));
                }
                at = format!("{at}[{i}]");
            }
        }
    }
    Lookup::Found(node)
}

/// A set of JSON types, for what a schema accepts and what a patch may produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Types(u8);

impl Types {
    /// Strings.
    pub const STRING: Types = Types(1);
    /// Integers (and floats without a fraction).
    pub const INTEGER: Types = Types(2);
    /// Numbers with a fraction.
    pub const FLOAT: Types = Types(4);
    /// Integers and floats.
    pub const NUMBER: Types = Types(2 | 4);
    /// Booleans.
    pub const BOOLEAN: Types = Types(8);
    /// Objects.
    pub const OBJECT: Types = Types(16);
    /// Lists.
    pub const ARRAY: Types = Types(32);
    /// Anything: not known.
    pub const ANY: Types = Types(63);
    const NONE: Types = Types(0);

    /// The types a schema node accepts.
    pub fn of_schema(schema: &Value) -> Types {
        if flag(schema, "x-kubernetes-int-or-string") {
            return Types::STRING | Types::INTEGER;
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("string") => Types::STRING,
            Some("integer") => Types::INTEGER,
            Some("number") => Types::NUMBER,
            Some("boolean") => Types::BOOLEAN,
            Some("object") => Types::OBJECT,
            Some("array") => Types::ARRAY,
            _ => Types::ANY,
        }
    }

    /// The type of a value (`ANY` for null).
    pub fn of_value(value: &Value) -> Types {
        match value {
            Value::Null => Types::ANY,
            Value::Bool(_) => Types::BOOLEAN,
            Value::Number(n) if n.is_f64() && n.as_f64().is_some_and(|f| f.fract() != 0.0) => {
                Types::FLOAT
            }
            Value::Number(_) => Types::INTEGER,
            Value::String(_) => Types::STRING,
            Value::Array(_) => Types::ARRAY,
            Value::Object(_) => Types::OBJECT,
        }
    }

    fn contains_value(self, value: &Value) -> bool {
        value.is_null() || self.overlaps(Types::of_value(value))
    }

    /// Whether nothing is known.
    pub fn is_any(self) -> bool {
        self == Types::ANY
    }

    /// Whether the two sets share a type.
    pub fn overlaps(self, other: Types) -> bool {
        self.0 & other.0 != 0
    }

    /// The types in both sets.
    pub fn intersect(self, other: Types) -> Types {
        Types(self.0 & other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self == Types::NONE
    }

    /// `a string`, `an integer or a string`, `anything`.
    pub fn describe(self) -> String {
        if self.is_any() {
            return "anything".to_string();
        }
        let names: Vec<&str> = [
            (Types::STRING, "a string"),
            (Types::NUMBER, "a number"),
            (Types::INTEGER, "an integer"),
            (Types::FLOAT, "a float"),
            (Types::BOOLEAN, "a boolean"),
            (Types::OBJECT, "an object"),
            (Types::ARRAY, "a list"),
        ]
        .into_iter()
        .scan(Types::NONE, |seen, (t, name)| {
            let show = self.0 & t.0 == t.0 && seen.0 & t.0 != t.0;
            seen.0 |= if show { t.0 } else { 0 };
            Some(show.then_some(name))
        })
        .flatten()
        .collect();
        match names.as_slice() {
            [] => "nothing".to_string(),
            [one] => one.to_string(),
            [init @ .., last] => format!("{} or {last}", init.join(", ")),
        }
    }
}

impl std::ops::BitOr for Types {
    type Output = Types;
    fn bitor(self, other: Types) -> Types {
        Types(self.0 | other.0)
    }
}

#[cfg(test)]
mod tests;
