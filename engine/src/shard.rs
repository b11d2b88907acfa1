//! Horizontal sharding: several controller Deployments split the claims, composites and
//! managed resources of one cluster by the label [`LABEL_SHARD`], in the style of Flux's
//! `sharding.fluxcd.io/key`.
//!
//! ```text
//!  claim {shard.tessera.dev/key: a} ──▶ composite {…key: a} ──▶ composed resources {…key: a}
//!                                                                 └─▶ connection Secrets {…key: a}
//!  tessera controller --shard 'shard.tessera.dev/key in (a)'   reconciles only those
//!  tessera controller --shard '!shard.tessera.dev/key'          reconciles the unlabelled rest
//! ```
//!
//! Every watch of claims, composites and managed resources carries the shard's label
//! selector, and every object Tessera creates carries its owner's shard label, so an
//! object never leaves the shard of the claim (or managed resource) it came from.
//! Kubernetes stays the only coordination: the shards share nothing else. XRDs and
//! Compositions are cluster configuration: every shard watches them all (each starts the
//! claim and composite controllers of every XRD), and their writes are identical
//! server-side applies.

use std::collections::BTreeMap;

/// The label that assigns an object to a shard; its value names the shard.
pub const LABEL_SHARD: &str = "shard.tessera.dev/key";

/// The shard label of `labels`, if it has one.
pub fn of(labels: &BTreeMap<String, String>) -> Option<&str> {
    labels.get(LABEL_SHARD).map(String::as_str)
}

/// The label selector of a watch: `base` (a selector the watch needs anyway, or empty)
/// and the shard's selector, both of which must match.
pub fn selector(base: Option<&str>, shard: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = [base, shard]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

/// Checks that `selector` is a selector on [`LABEL_SHARD`] alone, in one of the forms
/// `KEY in (a,b)`, `KEY notin (a)`, `KEY=a`, `KEY==a`, `KEY!=a`, `KEY` or `!KEY`.
/// The API server checks the syntax again when the watches start.
pub fn validate(selector: &str) -> Result<(), String> {
    let s = selector.trim();
    let fail = || {
        Err(format!(
            "{selector:?} is not a shard selector: use \"{LABEL_SHARD} in (NAME)\" for a shard, \
             or \"!{LABEL_SHARD}\" for the main controller of a sharded install"
        ))
    };
    let value_ok = |v: &str| {
        !v.is_empty()
            && v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if s == LABEL_SHARD || s.strip_prefix('!').map(str::trim) == Some(LABEL_SHARD) {
        return Ok(());
    }
    let Some(rest) = s.strip_prefix(LABEL_SHARD).map(str::trim_start) else {
        return fail();
    };
    for op in ["==", "!=", "="] {
        if let Some(v) = rest.strip_prefix(op) {
            return if value_ok(v.trim()) { Ok(()) } else { fail() };
        }
    }
    let set = rest
        .strip_prefix("notin")
        .or_else(|| rest.strip_prefix("in"))
        .map(str::trim)
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.strip_suffix(')'));
    match set {
        Some(values) if values.split(',').all(|v| value_ok(v.trim())) => Ok(()),
        _ => fail(),
    }
}

/// The default name of the leader-election Lease of the controllers running with
/// `shard`: `tessera` without a shard and for the main controller of a sharded install
/// (`!KEY`), `tessera-<values>` for `KEY in (values)` or `KEY=value`, and
/// `tessera-<8 hex digits of the selector's SHA-256>` for any other selector.
pub fn lease_name(shard: Option<&str>) -> String {
    let Some(s) = shard.map(str::trim) else {
        return "tessera".into();
    };
    if s.starts_with('!') {
        return "tessera".into();
    }
    let rest = s.strip_prefix(LABEL_SHARD).unwrap_or(s).trim_start();
    let values = rest
        .strip_prefix("in")
        .map(str::trim)
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.strip_suffix(')'))
        .or_else(|| rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')));
    let name = values.map(|v| {
        v.split(',')
            .map(|v| {
                v.trim()
                    .to_ascii_lowercase()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
            })
            .filter(|v| !v.is_empty())
            .collect::<Vec<_>>()
            .join("-")
    });
    match name {
        Some(n) if !n.is_empty() && n.len() <= 200 => format!("tessera-{n}"),
        _ => {
            use sha2::{Digest, Sha256};
            let digest = Sha256::digest(s.as_bytes());
            let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
            format!("tessera-{hex}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_selectors_are_checked_and_name_their_lease() {
        let cases: [(&str, &str, Option<&str>); 9] = [
            ("a shard", "shard.tessera.dev/key in (a)", Some("tessera-a")),
            (
                "a shard of two values",
                "shard.tessera.dev/key in (a, b)",
                Some("tessera-a-b"),
            ),
            (
                "the main controller of a sharded install",
                "!shard.tessera.dev/key",
                Some("tessera"),
            ),
            ("equality", "shard.tessera.dev/key=x1", Some("tessera-x1")),
            (
                "a negated set",
                "shard.tessera.dev/key notin (a)",
                Some("tessera-"),
            ),
            ("another label key", "team in (a)", None),
            ("two requirements", "shard.tessera.dev/key in (a),x=y", None),
            ("an empty set", "shard.tessera.dev/key in ()", None),
            ("a value with a space", "shard.tessera.dev/key=a b", None),
        ];
        for (reason, selector, lease) in cases {
            assert_eq!(validate(selector).is_ok(), lease.is_some(), "{reason}");
            if let Some(lease) = lease {
                assert!(lease_name(Some(selector)).starts_with(lease), "{reason}");
            }
        }
        assert_eq!(lease_name(None), "tessera", "no shard");
    }

    #[test]
    fn watch_selectors_combine_the_watch_s_own_and_the_shard_s() {
        assert_eq!(selector(None, None), None);
        assert_eq!(
            selector(Some("tessera.dev/composite"), None).as_deref(),
            Some("tessera.dev/composite")
        );
        assert_eq!(
            selector(
                Some("tessera.dev/composite"),
                Some("!shard.tessera.dev/key")
            )
            .as_deref(),
            Some("tessera.dev/composite,!shard.tessera.dev/key")
        );
        assert_eq!(
            selector(None, Some("shard.tessera.dev/key in (a)")).as_deref(),
            Some("shard.tessera.dev/key in (a)")
        );
    }
}
