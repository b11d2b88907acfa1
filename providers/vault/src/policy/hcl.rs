//! Vault policy text: rendering `rules` to canonical HCL, the ownership mark, and the
//! comparison by meaning that keeps Vault's own formatting from looking like drift.
//!
//! A policy's meaning is, per path, its capabilities and its other settings
//! (`allowed_parameters`, `min_wrapping_ttl`, ...). Path blocks that repeat a path are
//! merged, as Vault merges them.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{MANAGED_RESOURCE_UID, PolicyRule};

/// The first line of a policy written by a managed resource: `# tessera.dev/managed-resource-uid=<uid>`.
pub(crate) fn mark_line(uid: &str) -> String {
    format!("# {MANAGED_RESOURCE_UID}={uid}")
}

/// The uid of the managed resource that wrote `text`, from its mark line.
pub(crate) fn marked_uid(text: &str) -> Option<String> {
    let first = text.lines().next()?.trim();
    let uid = first
        .strip_prefix('#')?
        .trim_start()
        .strip_prefix(MANAGED_RESOURCE_UID)?
        .strip_prefix('=')?
        .trim();
    (!uid.is_empty()).then(|| uid.to_string())
}

/// `text` without its mark line.
pub(crate) fn strip_mark(text: &str) -> &str {
    if marked_uid(text).is_some() {
        text.split_once('\n').map_or("", |(_, rest)| rest)
    } else {
        text
    }
}

/// `text` with the mark line of `uid` in front (replacing any mark it has).
pub(crate) fn with_mark(text: &str, uid: &str) -> String {
    format!("{}\n{}", mark_line(uid), strip_mark(text))
}

/// Checks `rules` and renders them as HCL: one `path` block per path of each rule, with
/// the rule's sorted, de-duplicated capabilities and its description as a comment. A rule
/// without paths grants nothing and is left out (a composition can then offer optional
/// rules), but at least one rule must have paths.
pub(crate) fn render(rules: &[PolicyRule]) -> Result<String, String> {
    if rules.iter().all(|r| r.paths.is_empty()) {
        return Err("forProvider.rules has no rule with paths: list at least one path".to_string());
    }
    let mut out = String::new();
    for (i, rule) in rules.iter().enumerate() {
        if rule.paths.is_empty() {
            continue;
        }
        if rule.capabilities.is_empty() {
            return Err(format!("forProvider.rules[{i}].capabilities is empty"));
        }
        let mut caps = BTreeSet::new();
        for c in &rule.capabilities {
            if c.is_empty() || !c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_') {
                return Err(format!(
                    "forProvider.rules[{i}].capabilities: {c:?} is not a capability \
                     (create, read, update, patch, delete, list, sudo, deny)"
                ));
            }
            caps.insert(c.as_str());
        }
        if let Some(d) = &rule.description {
            for line in d.lines() {
                out.push_str(&format!("# {}\n", line.trim_end()));
            }
        }
        let caps: Vec<String> = caps.iter().map(|c| format!("\"{c}\"")).collect();
        for p in &rule.paths {
            if p.is_empty()
                || p.chars()
                    .any(|ch| ch == '"' || ch == '\\' || ch.is_control())
            {
                return Err(format!(
                    "forProvider.rules[{i}].paths: {p:?} is not a Vault path (empty, or \
                     with a quote, a backslash or a control character)"
                ));
            }
            out.push_str(&format!(
                "path \"{p}\" {{\n  capabilities = [{}]\n}}\n",
                caps.join(", ")
            ));
        }
    }
    Ok(out)
}

/// The meaning of one path block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PathRules {
    pub capabilities: BTreeSet<String>,
    /// Other attributes, by name, as canonical text.
    pub settings: BTreeMap<String, String>,
}

/// The meaning of a policy: its rules by path.
pub(crate) type Meaning = BTreeMap<String, PathRules>;

/// Parses policy HCL into its meaning; `Err` when the text is not HCL this parser knows
/// (the comparison then falls back to the text).
pub(crate) fn meaning(text: &str) -> Result<Meaning, String> {
    let body = hcl::parse(text).map_err(|e| e.to_string())?;
    let mut out = Meaning::new();
    for structure in body.into_inner() {
        let block = match structure {
            hcl::Structure::Block(b) => b,
            hcl::Structure::Attribute(a) => {
                return Err(format!("unexpected top-level attribute {}", a.key.as_str()));
            }
        };
        if block.identifier.as_str() != "path" || block.labels.len() != 1 {
            return Err(format!("unexpected block {}", block.identifier.as_str()));
        }
        let path = block.labels[0].as_str().to_string();
        let entry = out.entry(path).or_default();
        for s in block.body.into_inner() {
            match s {
                hcl::Structure::Attribute(a) if a.key.as_str() == "capabilities" => {
                    let value = hcl::Value::from(a.expr);
                    let list = value
                        .as_array()
                        .ok_or_else(|| "capabilities is not a list".to_string())?;
                    for c in list {
                        let c = c
                            .as_str()
                            .ok_or_else(|| "a capability is not a string".to_string())?;
                        entry.capabilities.insert(c.to_string());
                    }
                }
                hcl::Structure::Attribute(a) => {
                    let value = hcl::Value::from(a.expr);
                    entry
                        .settings
                        .insert(a.key.as_str().to_string(), canonical(&value));
                }
                hcl::Structure::Block(b) => {
                    // e.g. allowed_parameters written as a block.
                    let value = hcl::to_string(&b.body).map_err(|e| e.to_string())?;
                    entry
                        .settings
                        .insert(b.identifier.as_str().to_string(), value);
                }
            }
        }
    }
    Ok(out)
}

fn canonical(value: &hcl::Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| format!("{value:?}"))
}

/// How `have` (Vault's) differs from `want` (the spec's), in words; `None` when they mean
/// the same. Falls back to comparing the text (whitespace-insensitive, mark ignored) when
/// either side cannot be parsed.
pub(crate) fn difference(want: &str, have: &str) -> Option<String> {
    let (want, have) = (strip_mark(want), strip_mark(have));
    match (meaning(want), meaning(have)) {
        (Ok(w), Ok(h)) => describe(&w, &h),
        _ => {
            let words = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
            (words(want) != words(have)).then(|| "the policy text differs".to_string())
        }
    }
}

fn list(set: &BTreeSet<String>) -> String {
    format!("[{}]", set.iter().cloned().collect::<Vec<_>>().join(", "))
}

/// The differences between two meanings, in words.
pub(crate) fn describe(want: &Meaning, have: &Meaning) -> Option<String> {
    let mut out = Vec::new();
    for (path, w) in want {
        match have.get(path) {
            None => out.push(format!("path {path:?} is missing")),
            Some(h) => {
                if w.capabilities != h.capabilities {
                    out.push(format!(
                        "path {path:?} has capabilities {} instead of {}",
                        list(&h.capabilities),
                        list(&w.capabilities)
                    ));
                }
                let keys: BTreeSet<&String> = w.settings.keys().chain(h.settings.keys()).collect();
                for k in keys {
                    if w.settings.get(k) != h.settings.get(k) {
                        out.push(format!("path {path:?}: {k} differs"));
                    }
                }
            }
        }
    }
    for path in have.keys().filter(|p| !want.contains_key(*p)) {
        out.push(format!("path {path:?} is not in the spec"));
    }
    (!out.is_empty()).then(|| out.join("; "))
}

#[cfg(test)]
#[path = "hcl_tests.rs"]
mod tests;
