//! AWS tags: the ownership mark, and what to add and remove so that a resource has the
//! spec's tags.

use std::collections::BTreeMap;

use tessera_engine::managed::Ownership;

use crate::api::OWNERSHIP_TAG;

/// Tessera's own tags (`tessera.dev/...`): never removed to match a spec, never a diff.
pub(crate) fn managed_tag(key: &str) -> bool {
    key.starts_with("tessera.dev/")
}

/// Who a resource with `tags` belongs to, seen by the managed resource with `uid`.
pub(crate) fn ownership(tags: &BTreeMap<String, String>, uid: &str) -> Ownership {
    match tags.get(OWNERSHIP_TAG) {
        None => Ownership::Unmarked,
        Some(v) if !uid.is_empty() && v == uid => Ownership::Ours,
        Some(v) => Ownership::Other(v.clone()),
    }
}

/// The tags to set (new or changed values) and the keys to remove so that `have` becomes
/// `want`, leaving Tessera's own tags alone.
pub(crate) fn tag_changes(
    want: &BTreeMap<String, String>,
    have: &BTreeMap<String, String>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let add = want
        .iter()
        .filter(|(k, v)| !managed_tag(k) && have.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let remove = have
        .keys()
        .filter(|k| !managed_tag(k) && !want.contains_key(*k))
        .cloned()
        .collect();
    (add, remove)
}

/// SDK tags as a map.
pub(crate) fn from_sdk(tags: &[aws_sdk_rds::types::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// A map as SDK tags.
pub(crate) fn to_sdk(tags: &BTreeMap<String, String>) -> Vec<aws_sdk_rds::types::Tag> {
    tags.iter()
        .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tag_changes_set_new_and_changed_values_remove_others_and_keep_tesseras_own() {
        let want = map(&[("team", "a"), ("env", "prod")]);
        let have = map(&[("team", "b"), ("old", "x"), (OWNERSHIP_TAG, "uid-1")]);
        let (add, remove) = tag_changes(&want, &have);
        assert_eq!(add, map(&[("team", "a"), ("env", "prod")]));
        assert_eq!(remove, vec!["old".to_string()]);
        let (add, remove) = tag_changes(&have, &have);
        assert!(add.is_empty() && remove.is_empty());
    }

    #[test]
    fn the_ownership_tag_tells_ours_from_another_resources_and_unmarked() {
        assert_eq!(
            ownership(&map(&[(OWNERSHIP_TAG, "u1")]), "u1"),
            Ownership::Ours
        );
        assert_eq!(
            ownership(&map(&[(OWNERSHIP_TAG, "u2")]), "u1"),
            Ownership::Other("u2".into())
        );
        assert_eq!(ownership(&map(&[("team", "a")]), "u1"), Ownership::Unmarked);
    }
}
