//! Pure decisions about composed resources: whether one may be created yet (`dependsOn`),
//! which ones are garbage, and which may be deleted now while the composite is being
//! deleted.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::composition::ComposedTemplate;
use crate::objects::ObjectKey;

/// The resources `template` waits for before it may be created: those it `dependsOn` that
/// are not ready. A resource that exists already is never held back (it is updated even
/// while a dependency is not ready).
pub fn creation_blockers<'t>(
    template: &'t ComposedTemplate,
    ready: &BTreeMap<String, bool>,
    exists: bool,
) -> Vec<&'t str> {
    if exists {
        return Vec::new();
    }
    template
        .depends_on
        .iter()
        .filter(|d| !ready.get(d.as_str()).copied().unwrap_or(false))
        .map(String::as_str)
        .collect()
}

/// The live composed resources that are no longer rendered: to be deleted.
pub fn garbage<'a>(rendered: &BTreeSet<ObjectKey>, live: &'a [ObjectKey]) -> Vec<&'a ObjectKey> {
    live.iter().filter(|k| !rendered.contains(k)).collect()
}

/// While the composite is being deleted: which of the `live` composed resources (by
/// `resources[].name`) may be deleted now. A resource waits while another live resource
/// depends on it, so deletion runs in reverse `dependsOn` order, each layer gone before the
/// next is deleted; without `dependsOn` all go at once. `depends_on` maps each resource
/// name to the names it depends on.
pub fn deletable_now<'a>(
    depends_on: &BTreeMap<String, Vec<String>>,
    live: &'a BTreeSet<String>,
) -> BTreeSet<&'a str> {
    live.iter()
        .filter(|name| {
            !live.iter().any(|other| {
                other != *name
                    && depends_on
                        .get(other)
                        .is_some_and(|deps| deps.iter().any(|d| d == *name))
            })
        })
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
