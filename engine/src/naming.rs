//! Deterministic names of the objects Tessera creates for others, so that a crash or a
//! second controller never creates a second copy.

use sha2::{Digest, Sha256};

/// The composite of a new claim: `<claim name>-<first 16 hex digits of
/// sha256("<ns>/<name>")>`, so two namespaces never collide and a crash never creates a
/// second composite. 64 bits of the hash make a collision found offline (a claim name
/// chosen to take another namespace's composite) infeasible. Names that would pass 63
/// characters are cut before the suffix.
///
/// Claims bound before the suffix was widened keep their composite, named by
/// [`legacy_claim_composite_name`]: live objects are never renamed.
pub fn claim_composite_name(namespace: &str, name: &str) -> String {
    hashed_name(namespace, name, 16)
}

/// The composite name of claims bound by earlier versions: 8 hex digits of the hash.
/// Only ever looked up, never given to a new composite.
pub fn legacy_claim_composite_name(namespace: &str, name: &str) -> String {
    hashed_name(namespace, name, 8)
}

fn hashed_name(namespace: &str, name: &str, hex_digits: usize) -> String {
    let digest = Sha256::digest(format!("{namespace}/{name}").as_bytes());
    let hex: String = digest
        .iter()
        .take(hex_digits / 2)
        .map(|b| format!("{b:02x}"))
        .collect();
    let keep = name.len().min(63 - 1 - hex_digits);
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

/// The field manager of the composite controller given Tessera's `field_manager`; each
/// composite applies its resources as this followed by `/` and its name.
pub fn composites_manager(field_manager: &str) -> String {
    format!("{field_manager}/composite")
}

/// The prefix of the field managers the composites apply their resources with
/// ([`composites_manager`] and `/`): the stores of composed resources keep their entries
/// of `managedFields`, which each composite's apply decision reads.
pub fn composed_managers(field_manager: &str) -> String {
    format!("{}/", composites_manager(field_manager))
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
            a.starts_with("orders-db-") && a.len() == "orders-db-".len() + 16,
            "{a}"
        );
        let long = claim_composite_name("ns", &"x".repeat(80));
        assert!(long.len() <= 63, "{long}");
    }

    #[test]
    fn claim_composite_names_carry_64_bits_of_the_hash() {
        let name = claim_composite_name("shop", "orders-db");
        assert_eq!(name, "orders-db-24ad43c52a215a6f");
        // The legacy name's suffix is a prefix of the new one: the same hash, cut shorter.
        assert_eq!(
            legacy_claim_composite_name("shop", "orders-db"),
            "orders-db-24ad43c5"
        );
    }

    #[test]
    fn long_claim_names_are_cut_to_fit_63_characters_with_the_full_suffix() {
        for len in [40, 46, 47, 53, 54, 62, 63, 100] {
            let claim = "a-".repeat(len / 2) + &"b".repeat(len % 2);
            let name = claim_composite_name("team-a", &claim);
            assert!(name.len() <= 63, "{len}: {name}");
            let (base, suffix) = name.rsplit_once('-').expect("a suffix");
            assert_eq!(suffix.len(), 16, "{len}: {name}");
            assert!(claim.starts_with(base), "{len}: {name}");
            assert!(!base.ends_with(['-', '.']), "{len}: {name}");
        }
    }
}
