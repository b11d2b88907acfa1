//! Deterministic names of the objects Tessera creates for others, so that a crash or a
//! second controller never creates a second copy.

use sha2::{Digest, Sha256};

/// The composite of a claim: `<claim name>-<first 8 hex digits of sha256("<ns>/<name>")>`,
/// so two namespaces never collide and a crash never creates a second composite. Names
/// that would pass 63 characters are cut before the suffix.
pub fn claim_composite_name(namespace: &str, name: &str) -> String {
    let digest = Sha256::digest(format!("{namespace}/{name}").as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let keep = name.len().min(63 - 9);
    let mut base = name[..floor_char_boundary(name, keep)].to_string();
    while base.ends_with(['-', '.']) {
        base.pop();
    }
    format!("{base}-{hex}")
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_composite_names_are_deterministic_and_namespace_specific() {
        let a = claim_composite_name("team-a", "orders-db");
        assert_eq!(
            a,
            claim_composite_name("team-a", "orders-db"),
            "deterministic"
        );
        assert_ne!(
            a,
            claim_composite_name("team-b", "orders-db"),
            "namespaces differ"
        );
        assert!(
            a.starts_with("orders-db-") && a.len() == "orders-db-".len() + 8,
            "{a}"
        );
        let long = claim_composite_name("ns", &"x".repeat(80));
        assert!(long.len() <= 63, "{long}");
    }
}
