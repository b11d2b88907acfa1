//! The objects of a watch by the value of one label, kept beside its store.
//!
//! A composite reads its composed resources from the store of their kind's watch. Picking
//! them out by their `tessera.dev/composite` label was a pass over the whole store per
//! reconcile: with 3,000 composites of 3 resources, every reconcile of every composite
//! looked at 9,000 objects, which made the CPU a claim costs grow with the number of
//! claims. The index answers with the keys of the objects carrying one value, and the
//! store gives their current copies.
//!
//! The index follows the watch's events before the store applies them, so it is at most
//! one event ahead of the store: a key whose object the store does not hold yet is
//! skipped by the reader, and an object the store still holds after its deletion event is
//! not listed (as if the store were one event further). A relist replaces the whole index
//! when it is complete, as it replaces the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

/// An object of the watch: its namespace (`None`: cluster-scoped) and name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectKey {
    /// The namespace, for a namespaced kind.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

/// Which objects carry which value of the label.
#[derive(Debug, Default)]
struct Entries {
    /// The label's value of each labelled object.
    of: HashMap<Arc<ObjectKey>, Arc<str>>,
    /// The objects carrying each value.
    by_value: HashMap<Arc<str>, Vec<Arc<ObjectKey>>>,
}

impl Entries {
    fn set(&mut self, key: ObjectKey, value: Option<&str>) {
        if let Some(old) = self.of.get(&key) {
            if value == Some(&**old) {
                return;
            }
            let old = old.clone();
            self.remove(&key, &old);
        }
        let Some(value) = value else {
            return;
        };
        let value: Arc<str> = self
            .by_value
            .get_key_value(value)
            .map_or_else(|| Arc::from(value), |(v, _)| v.clone());
        let key = Arc::new(key);
        self.by_value
            .entry(value.clone())
            .or_default()
            .push(key.clone());
        self.of.insert(key, value);
    }

    fn remove(&mut self, key: &ObjectKey, value: &str) {
        self.of.remove(key);
        if let Some(keys) = self.by_value.get_mut(value) {
            keys.retain(|k| **k != *key);
            if keys.is_empty() {
                self.by_value.remove(value);
            }
        }
    }
}

#[derive(Debug, Default)]
struct State {
    entries: Entries,
    /// The entries of a relist in progress, swapped in when it is complete.
    relist: Option<Entries>,
}

/// The objects of one watch by the value of label `label`.
#[derive(Debug)]
pub struct LabelIndex {
    label: &'static str,
    state: Mutex<State>,
}

impl LabelIndex {
    /// An empty index of label `label`.
    pub fn new(label: &'static str) -> Self {
        LabelIndex {
            label,
            state: Mutex::new(State::default()),
        }
    }

    fn key_and_value<'o, K: Resource>(&self, obj: &'o K) -> (ObjectKey, Option<&'o str>) {
        let key = ObjectKey {
            namespace: obj.meta().namespace.clone(),
            name: obj.name_any(),
        };
        let value = obj
            .meta()
            .labels
            .as_ref()
            .and_then(|l| l.get(self.label))
            .map(String::as_str);
        (key, value)
    }

    /// Follows one event of the watch (before the store applies it).
    pub fn observe<K: Resource>(&self, event: &watcher::Event<K>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Apply(obj) => {
                let (key, value) = self.key_and_value(obj);
                state.entries.set(key, value);
            }
            watcher::Event::Delete(obj) => {
                let (key, _) = self.key_and_value(obj);
                state.entries.set(key, None);
            }
            watcher::Event::Init => state.relist = Some(Entries::default()),
            watcher::Event::InitApply(obj) => {
                let (key, value) = self.key_and_value(obj);
                state
                    .relist
                    .get_or_insert_with(Entries::default)
                    .set(key, value);
            }
            watcher::Event::InitDone => {
                if let Some(relisted) = state.relist.take() {
                    state.entries = relisted;
                }
            }
        }
    }

    /// The objects whose label has the value `value`.
    pub fn keys(&self, value: &str) -> Vec<Arc<ObjectKey>> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .entries
            .by_value
            .get(value)
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::DynamicObject;
    use serde_json::json;

    const LABEL: &str = "example.org/owner";

    fn obj(name: &str, owner: Option<&str>) -> DynamicObject {
        let mut o = json!({
            "apiVersion": "g/v1", "kind": "K",
            "metadata": { "name": name, "namespace": "ns" },
        });
        if let Some(owner) = owner {
            o["metadata"]["labels"] = json!({ LABEL: owner, "other": "x" });
        }
        serde_json::from_value(o).expect("object")
    }

    fn names(index: &LabelIndex, value: &str) -> Vec<String> {
        let mut names: Vec<String> = index.keys(value).iter().map(|k| k.name.clone()).collect();
        names.sort();
        names
    }

    #[test]
    fn objects_are_found_by_their_label_value_as_the_events_change_them() {
        let index = LabelIndex::new(LABEL);
        for (name, owner) in [("a1", "a"), ("a2", "a"), ("b1", "b")] {
            index.observe(&watcher::Event::Apply(obj(name, Some(owner))));
        }
        index.observe(&watcher::Event::Apply(obj("free", None)));
        assert_eq!(names(&index, "a"), ["a1", "a2"]);
        assert_eq!(names(&index, "b"), ["b1"]);
        assert!(names(&index, "x").is_empty());
        let key = &index.keys("b")[0];
        assert_eq!(key.namespace.as_deref(), Some("ns"));

        // An update with the same value adds nothing twice.
        index.observe(&watcher::Event::Apply(obj("a1", Some("a"))));
        assert_eq!(names(&index, "a"), ["a1", "a2"]);

        // Relabelled: listed under the new value only; unlabelled: under none.
        index.observe(&watcher::Event::Apply(obj("a2", Some("b"))));
        assert_eq!(names(&index, "a"), ["a1"]);
        assert_eq!(names(&index, "b"), ["a2", "b1"]);
        index.observe(&watcher::Event::Apply(obj("b1", None)));
        assert_eq!(names(&index, "b"), ["a2"]);

        index.observe(&watcher::Event::Delete(obj("a1", Some("a"))));
        assert!(names(&index, "a").is_empty());
        let state = index.state.lock().unwrap();
        assert!(
            !state.entries.by_value.contains_key("a"),
            "a value without objects is dropped"
        );
        assert_eq!(state.entries.of.len(), 1, "only a2 is labelled");
    }

    #[test]
    fn a_relist_replaces_the_index_once_it_is_complete() {
        let index = LabelIndex::new(LABEL);
        index.observe(&watcher::Event::Apply(obj("gone", Some("a"))));
        index.observe(&watcher::Event::Apply(obj("kept", Some("a"))));

        index.observe(&watcher::Event::<DynamicObject>::Init);
        index.observe(&watcher::Event::InitApply(obj("kept", Some("a"))));
        index.observe(&watcher::Event::InitApply(obj("new", Some("a"))));
        assert_eq!(
            names(&index, "a"),
            ["gone", "kept"],
            "until the relist is complete, the index answers as before (as the store does)"
        );
        index.observe(&watcher::Event::<DynamicObject>::InitDone);
        assert_eq!(
            names(&index, "a"),
            ["kept", "new"],
            "an object missing from the relist is gone"
        );
    }
}
