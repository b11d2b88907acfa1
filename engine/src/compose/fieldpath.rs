//! Crossplane field paths on `serde_json::Value`.
//!
//! A field path is a `.`-separated list of field names, each optionally followed by
//! bracketed segments: `[0]` indexes a list, `[any text]` names a field whose name contains
//! dots or slashes (no quotes): `spec.items[0].name`,
//! `metadata.annotations[example.org/owner]`, `data[tls.crt]`.
//!
//! - [`get`] returns `None` when any step is missing, out of range or `null`.
//! - [`set`] creates missing objects and lists on the way (a list is grown with `null`s up
//!   to the index) and replaces `null`s; it fails when a step has the wrong type.
//! - [`delete`] removes a field or list element; a missing path is not an error.
//! - [`merge`] writes like `set`, or merges into the existing value per `MergeOptions`.
//!
//! An explicit `null` counts as missing everywhere: Kubernetes objects use it for "unset".

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::str::FromStr;

use serde_json::{Map, Value};

use super::ComposeError;
use super::limits::{MAX_FIELD_PATH_INDEX, MAX_FIELD_PATH_SEGMENTS};
use crate::api::composition::MergeOptions;

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// A field of an object.
    Field(String),
    /// An element of a list.
    Index(usize),
}

/// A parsed field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldPath {
    raw: String,
    segments: Vec<Segment>,
}

impl FieldPath {
    /// Parses a field path.
    pub fn parse(path: &str) -> Result<FieldPath, ComposeError> {
        let err = |reason: &str| ComposeError::field_path(path, reason);
        if path.is_empty() {
            return Err(err("is empty"));
        }
        let mut segments = Vec::new();
        let mut chars = path.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '[' => {
                    let start = i + 1;
                    let mut end = None;
                    for (j, c) in chars.by_ref() {
                        if c == ']' {
                            end = Some(j);
                            break;
                        }
                    }
                    let end = end.ok_or_else(|| err("unterminated '['"))?;
                    let inner = &path[start..end];
                    if inner.is_empty() {
                        return Err(err("empty brackets '[]'"));
                    }
                    if inner == "*" {
                        return Err(err("wildcards '[*]' are not supported"));
                    }
                    segments.push(if inner.bytes().all(|b| b.is_ascii_digit()) {
                        // Writing at an index grows the list up to it: bounded here.
                        let index = inner
                            .parse::<usize>()
                            .ok()
                            .filter(|i| *i <= MAX_FIELD_PATH_INDEX)
                            .ok_or_else(|| {
                                err(&format!(
                                    "index [{inner}] is larger than the limit of {MAX_FIELD_PATH_INDEX}"
                                ))
                            })?;
                        Segment::Index(index)
                    } else {
                        Segment::Field(inner.to_string())
                    });
                    match chars.peek() {
                        None | Some((_, '[')) => {}
                        Some((_, '.')) => {
                            chars.next();
                            if chars.peek().is_none() {
                                return Err(err("ends with '.'"));
                            }
                        }
                        Some((_, c)) => {
                            return Err(err(&format!(
                                "expected '.' or '[' after ']', found '{c}'"
                            )));
                        }
                    }
                }
                ']' => return Err(err("unexpected ']'")),
                '.' => return Err(err("empty field name")),
                _ => {
                    let start = i;
                    let mut end = path.len();
                    while let Some(&(j, c)) = chars.peek() {
                        if c == '.' || c == '[' {
                            end = j;
                            break;
                        }
                        if c == ']' {
                            return Err(err("unexpected ']'"));
                        }
                        chars.next();
                    }
                    segments.push(Segment::Field(path[start..end].to_string()));
                    if let Some(&(_, '.')) = chars.peek() {
                        chars.next();
                        match chars.peek() {
                            None => return Err(err("ends with '.'")),
                            Some((_, '.')) => return Err(err("empty field name")),
                            _ => {}
                        }
                    }
                }
            }
        }
        if segments.len() > MAX_FIELD_PATH_SEGMENTS {
            return Err(err(&format!(
                "has {} segments, more than the limit of {MAX_FIELD_PATH_SEGMENTS}",
                segments.len()
            )));
        }
        Ok(FieldPath {
            raw: path.to_string(),
            segments,
        })
    }

    /// The segments of the path.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The value at this path, or `None` when any step is missing, out of range or `null`.
    pub fn get<'a>(&self, root: &'a Value) -> Result<Option<&'a Value>, ComposeError> {
        let mut current = root;
        for (n, segment) in self.segments.iter().enumerate() {
            current = match (segment, current) {
                (_, Value::Null) => return Ok(None),
                (Segment::Field(name), Value::Object(map)) => match map.get(name) {
                    Some(v) => v,
                    None => return Ok(None),
                },
                (Segment::Index(i), Value::Array(items)) => match items.get(*i) {
                    Some(v) => v,
                    None => return Ok(None),
                },
                (segment, other) => return Err(self.type_error(n, segment, other)),
            };
        }
        Ok(match current {
            Value::Null => None,
            v => Some(v),
        })
    }

    /// Sets the value at this path, creating missing objects and lists on the way.
    pub fn set(&self, root: &mut Value, value: Value) -> Result<(), ComposeError> {
        let slot = self.slot(root)?;
        *slot = value;
        Ok(())
    }

    /// Removes the field or list element at this path. Returns whether anything was removed.
    pub fn delete(&self, root: &mut Value) -> Result<bool, ComposeError> {
        let Some((last, parents)) = self.segments.split_last() else {
            return Ok(false);
        };
        let mut current = root;
        for (n, segment) in parents.iter().enumerate() {
            current = match (segment, current) {
                (_, Value::Null) => return Ok(false),
                (Segment::Field(name), Value::Object(map)) => match map.get_mut(name) {
                    Some(v) => v,
                    None => return Ok(false),
                },
                (Segment::Index(i), Value::Array(items)) => match items.get_mut(*i) {
                    Some(v) => v,
                    None => return Ok(false),
                },
                (segment, other) => return Err(self.type_error(n, segment, other)),
            };
        }
        match (last, current) {
            (_, Value::Null) => Ok(false),
            (Segment::Field(name), Value::Object(map)) => Ok(map.remove(name).is_some()),
            (Segment::Index(i), Value::Array(items)) if *i < items.len() => {
                items.remove(*i);
                Ok(true)
            }
            (Segment::Index(_), Value::Array(_)) => Ok(false),
            (segment, other) => Err(self.type_error(parents.len(), segment, other)),
        }
    }

    /// Writes `value` at this path. Without merge options the existing value is replaced,
    /// as [`FieldPath::set`] does. With merge options (even empty ones, as in Crossplane),
    /// objects are merged deeply: the patched values win, or with `keepMapValues` the
    /// existing ones do. Lists are replaced, or with `appendSlice` appended to, skipping
    /// items already present.
    ///
    /// Unlike Crossplane (whose merge library treats `""`, `0` and `false` as "empty"),
    /// every existing non-null value counts as set.
    pub fn merge(
        &self,
        root: &mut Value,
        value: Value,
        options: Option<&MergeOptions>,
    ) -> Result<(), ComposeError> {
        let keep = options.and_then(|o| o.keep_map_values).unwrap_or(false);
        let append = options.and_then(|o| o.append_slice).unwrap_or(false);
        if options.is_none() {
            return self.set(root, value);
        }
        let slot = self.slot(root)?;
        merge_values(slot, value, keep, append);
        Ok(())
    }

    /// The (possibly new) slot at this path.
    fn slot<'a>(&self, root: &'a mut Value) -> Result<&'a mut Value, ComposeError> {
        let mut current = root;
        for (n, segment) in self.segments.iter().enumerate() {
            if current.is_null() {
                *current = match segment {
                    Segment::Field(_) => Value::Object(Map::new()),
                    Segment::Index(_) => Value::Array(Vec::new()),
                };
            }
            current = match (segment, current) {
                (Segment::Field(name), Value::Object(map)) => {
                    map.entry(name.clone()).or_insert(Value::Null)
                }
                (Segment::Index(i), Value::Array(items)) => {
                    if items.len() <= *i {
                        items.resize(*i + 1, Value::Null);
                    }
                    &mut items[*i]
                }
                (segment, other) => return Err(self.type_error(n, segment, other)),
            };
        }
        Ok(current)
    }

    /// "spec.x is a string, not an object".
    fn type_error(&self, n: usize, segment: &Segment, found: &Value) -> ComposeError {
        let expected = match segment {
            Segment::Field(_) => "an object",
            Segment::Index(_) => "a list",
        };
        let at = if n == 0 {
            "the root".to_string()
        } else {
            display_segments(&self.segments[..n])
        };
        ComposeError::field_path(
            &self.raw,
            format!("{at} is {}, not {expected}", describe(found)),
        )
    }
}

/// Merges `src` into `dst`, the way Crossplane's merge options do.
fn merge_values(dst: &mut Value, src: Value, keep_map_values: bool, append_slice: bool) {
    match (dst, src) {
        (Value::Object(dst), Value::Object(src)) => {
            for (k, v) in src {
                match dst.get_mut(&k) {
                    Some(existing) if !existing.is_null() => {
                        let both_objects = existing.is_object() && v.is_object();
                        let both_lists = existing.is_array() && v.is_array();
                        if both_objects || (both_lists && append_slice) {
                            merge_values(existing, v, keep_map_values, append_slice);
                        } else if !keep_map_values {
                            *existing = v;
                        }
                    }
                    _ => {
                        dst.insert(k, v);
                    }
                }
            }
        }
        (Value::Array(dst), Value::Array(src)) if append_slice => append_missing(dst, src),
        (dst @ Value::Null, src) => *dst = src,
        (dst, src) => {
            if !keep_map_values {
                *dst = src;
            }
        }
    }
}

/// Appends the items of `src` that `dst` does not hold yet (nor an earlier item of `src`).
/// Items are bucketed by a hash of their content and compared only within their bucket,
/// so appending a list of many distinct items takes linear time, not quadratic.
fn append_missing(dst: &mut Vec<Value>, src: Vec<Value>) {
    let state = RandomState::new();
    let hash = |v: &Value| {
        let mut hasher = state.build_hasher();
        hash_value(v, &mut hasher);
        hasher.finish()
    };
    let mut buckets: HashMap<u64, Vec<usize>> = HashMap::with_capacity(dst.len() + src.len());
    for (i, item) in dst.iter().enumerate() {
        buckets.entry(hash(item)).or_default().push(i);
    }
    for item in src {
        let bucket = buckets.entry(hash(&item)).or_default();
        if !bucket.iter().any(|&i| dst[i] == item) {
            bucket.push(dst.len());
            dst.push(item);
        }
    }
}

/// Hashes a value so that equal values (by `Value`'s `==`) hash equally: object entries
/// in key order whatever the map's order, numbers by their value as a float (so `1` and
/// `1.0`, which are not equal, may share a hash).
fn hash_value(value: &Value, state: &mut impl Hasher) {
    match value {
        Value::Null => state.write_u8(0),
        Value::Bool(b) => {
            state.write_u8(1);
            b.hash(state);
        }
        Value::Number(n) => {
            state.write_u8(2);
            // `+ 0.0` makes -0.0 (equal to 0.0) hash as 0.0.
            (n.as_f64().unwrap_or(0.0) + 0.0).to_bits().hash(state);
        }
        Value::String(s) => {
            state.write_u8(3);
            s.hash(state);
        }
        Value::Array(items) => {
            state.write_u8(4);
            state.write_usize(items.len());
            for item in items {
                hash_value(item, state);
            }
        }
        Value::Object(map) => {
            state.write_u8(5);
            state.write_usize(map.len());
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by_key(|(k, _)| *k);
            for (k, v) in entries {
                k.hash(state);
                hash_value(v, state);
            }
        }
    }
}

impl FromStr for FieldPath {
    type Err = ComposeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FieldPath::parse(s)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

fn display_segments(segments: &[Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Field(name) if name.contains(['.', '[', ']', '/']) => {
                out.push('[');
                out.push_str(name);
                out.push(']');
            }
            Segment::Field(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// "a string", "an object", ... for error messages.
pub(crate) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The value at `path` in `root`; `None` when missing or `null`.
pub fn get<'a>(root: &'a Value, path: &str) -> Result<Option<&'a Value>, ComposeError> {
    FieldPath::parse(path)?.get(root)
}

/// Sets `value` at `path` in `root`, creating missing objects and lists.
pub fn set(root: &mut Value, path: &str, value: Value) -> Result<(), ComposeError> {
    FieldPath::parse(path)?.set(root, value)
}

/// Removes the field or element at `path`; returns whether anything was removed.
pub fn delete(root: &mut Value, path: &str) -> Result<bool, ComposeError> {
    FieldPath::parse(path)?.delete(root)
}

/// Writes `value` at `path` per `options` (see [`FieldPath::merge`]).
pub fn merge(
    root: &mut Value,
    path: &str,
    value: Value,
    options: Option<&MergeOptions>,
) -> Result<(), ComposeError> {
    FieldPath::parse(path)?.merge(root, value, options)
}

#[cfg(test)]
mod tests;
