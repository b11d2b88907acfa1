//! Who an object in Vault belongs to, from the uid mark each kind keeps there (see
//! `crate::api::MANAGED_RESOURCE_UID`).

use tessera_engine::managed::client::Ownership;

/// Whether `s` looks like a Kubernetes uid: ASCII letters, digits and dashes, at most 64.
fn is_uid(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Who an object marked with `marked` belongs to, seen by the managed resource with `uid`.
pub(crate) fn of(marked: Option<&str>, uid: Option<&str>) -> Ownership {
    match marked.map(str::trim) {
        Some(m) if is_uid(m) && uid == Some(m) => Ownership::Ours,
        Some(m) if is_uid(m) => Ownership::Other(m.to_string()),
        _ => Ownership::Unmarked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_decides_and_a_malformed_one_is_no_mark() {
        for (reason, marked, want) in [
            ("no mark", None, Ownership::Unmarked),
            ("this object's mark", Some("u-1"), Ownership::Ours),
            (
                "another's mark",
                Some("u-2"),
                Ownership::Other("u-2".into()),
            ),
            ("not a uid", Some("x y"), Ownership::Unmarked),
            ("empty", Some(""), Ownership::Unmarked),
        ] {
            assert_eq!(of(marked, Some("u-1")), want, "{reason}");
        }
    }
}
