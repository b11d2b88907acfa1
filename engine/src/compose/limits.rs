//! Bounds on what a Composition and a composite may make the engine compute.
//!
//! A Composition is written by a platform team and a composite's fields by whoever may
//! create a claim; neither may make the controller allocate without bound, recurse until
//! the stack overflows, or panic. Each bound is checked before the work it guards and
//! fails with a [`ComposeError`](super::ComposeError) that names the field, never with a
//! panic. The values are far above what any real composition needs; docs/limits.md lists
//! them for users.

use serde_json::Value;

/// Largest width or precision of a verb in a Go-style format (`%1024s`, `%.1024f`), as in
/// a `string` transform's `fmt` or a combine patch's `string.fmt`.
pub const MAX_FORMAT_WIDTH: usize = 1024;

/// Largest list index in a field path (`spec.items[4096]`). Writing at an index grows the
/// list with `null`s up to it, so the index bounds that allocation.
pub const MAX_FIELD_PATH_INDEX: usize = 4096;

/// Most segments (fields and indexes) in one field path. Writing at a path creates the
/// objects on the way, so this bounds the nesting a single write adds.
pub const MAX_FIELD_PATH_SEGMENTS: usize = 64;

/// Longest regular expression (in bytes) of a `match` or `string` transform.
pub const MAX_REGEX_LEN: usize = 1024;

/// Largest compiled form of a regular expression, and largest lazy DFA cache, in bytes
/// (the `regex` crate's `size_limit` and `dfa_size_limit`).
pub const MAX_REGEX_COMPILED_BYTES: usize = 1 << 20;

/// Deepest nesting of a value (objects and lists in each other) that a patch reads or
/// writes or a transform takes or produces. Formatting, hashing and merging values
/// recurse once per level.
pub const MAX_VALUE_DEPTH: usize = 64;

/// Longest string (in bytes) a transform may produce. Chained transforms (`ToJson`,
/// `ToBase64`, `Format`) each grow their input; this stops the growth.
pub const MAX_TRANSFORM_OUTPUT_BYTES: usize = 1 << 20;

/// Largest total size, in bytes of JSON, of the composed resources rendered for one
/// composite. The API server refuses any one object above about 1.5 MiB; this bounds the
/// memory of one render at a few such objects.
pub const MAX_RENDERED_BYTES: usize = 4 << 20;

/// Whether `value` nests deeper than `max` levels; a scalar is depth 0, `[1]` depth 1.
/// Recurses at most `max + 1` levels, whatever the depth of `value`.
pub(crate) fn deeper_than(value: &Value, max: usize) -> bool {
    let children: Box<dyn Iterator<Item = &Value>> = match value {
        Value::Array(items) => Box::new(items.iter()),
        Value::Object(map) => Box::new(map.values()),
        _ => return false,
    };
    if max == 0 {
        return true;
    }
    children.into_iter().any(|v| deeper_than(v, max - 1))
}

/// The length of `value` serialised as JSON, without building the text.
pub(crate) fn json_len(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing a `Value` into a writer that never fails cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

#[cfg(test)]
mod tests;
