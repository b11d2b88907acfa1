//! The CompositionRevision controller: keeps an immutable, numbered snapshot of every
//! Composition spec, so that composite resources can stay on a revision
//! (`compositionUpdatePolicy: Manual`) or follow the newest one (`Automatic`).
//!
//! ```text
//!  Composition (spec hash h) ──▶ newest revision labelled hash h? ── yes ─▶ nothing to do
//!                                   │ no
//!                                   ├─ an older revision has hash h (a revert) ─▶ renumber it newest + 1
//!                                   └─ otherwise ─▶ create `<composition>-<h>`, revision newest + 1
//! ```
//!
//! A revision is labelled `tessera.dev/composition-name` and `tessera.dev/composition-hash`
//! and owned by its Composition, so deleting a Composition deletes its revisions. The
//! composite controllers watch revisions, so a new revision re-queues the composites that
//! use its Composition at once.

use std::sync::Arc;

use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::instrument;

use crate::api::composition::{
    Composition, CompositionRevision, CompositionSpec, LABEL_COMPOSITION_HASH,
    LABEL_COMPOSITION_NAME,
};
use crate::composition_options::CompositionOptions;
use crate::scaffold::{self, Backoff, Recorder};

/// Hex digits of the spec hash used in revision names and labels.
const HASH_LEN: usize = 7;
/// Longest object name the API server accepts (a DNS subdomain).
const MAX_NAME_LEN: usize = 253;

/// Why a revision could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Listing the revisions of a Composition failed.
    #[error("failed to list revisions of Composition {0}: {1}")]
    List(String, #[source] kube::Error),
    /// Creating or renumbering a revision failed.
    #[error("failed to apply CompositionRevision {0}: {1}")]
    Apply(String, #[source] kube::Error),
    /// The Composition could not be serialised (never expected).
    #[error("failed to serialise Composition {0}: {1}")]
    Serialize(String, #[source] serde_json::Error),
}

impl scaffold::ErrorReason for Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::List(..) => "ListRevisions",
            Error::Apply(..) => "ApplyRevision",
            Error::Serialize(..) => "Serialize",
        }
    }
}

/// The hash of a Composition spec: the first 7 hex digits of the SHA-256 of its canonical
/// JSON (object keys sorted, no whitespace), so that the same spec always has the same
/// hash however its YAML was written.
pub fn spec_hash(spec: &CompositionSpec) -> String {
    let value = serde_json::to_value(spec).unwrap_or(Value::Null);
    let digest = Sha256::digest(canonical_json(&value).as_bytes());
    digest
        .iter()
        .flat_map(|b| [b >> 4, b & 0xf])
        .take(HASH_LEN)
        .map(|n| char::from_digit(u32::from(n), 16).unwrap_or('0'))
        .collect()
}

/// JSON text of `value` with the keys of every object sorted.
fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// The name of the revision of `composition` with spec hash `hash`:
/// `<composition>-<hash>`, the composition name cut so the whole fits 253 characters.
pub fn revision_name(composition: &str, hash: &str) -> String {
    let keep = composition.len().min(MAX_NAME_LEN - hash.len() - 1);
    let mut base = composition[..floor_char_boundary(composition, keep)].to_string();
    while base.ends_with(['-', '.']) {
        base.pop();
    }
    format!("{base}-{hash}")
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// What is known about one existing revision of a Composition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevisionInfo {
    /// The revision's name.
    pub name: String,
    /// Its `spec.revision`.
    pub revision: i64,
    /// Its `tessera.dev/composition-hash` label.
    pub hash: Option<String>,
}

impl RevisionInfo {
    /// The facts of a CompositionRevision object.
    pub fn of(rev: &CompositionRevision) -> Self {
        RevisionInfo {
            name: rev.name_any(),
            revision: rev.spec.revision,
            hash: rev.labels().get(LABEL_COMPOSITION_HASH).cloned(),
        }
    }
}

/// What the revision controller does for a Composition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevisionPlan {
    /// The newest revision already snapshots the current spec.
    UpToDate,
    /// Create a revision with this name and number.
    Create {
        /// Name of the new revision.
        name: String,
        /// Its `spec.revision`: one more than the newest.
        revision: i64,
    },
    /// The spec went back to the one of an older revision: make that revision the newest.
    Renumber {
        /// Name of the existing revision.
        name: String,
        /// Its new `spec.revision`: one more than the newest.
        revision: i64,
    },
}

/// Decides what to do for Composition `composition` whose spec hash is `hash`, given its
/// existing revisions.
pub fn plan(composition: &str, hash: &str, revisions: &[RevisionInfo]) -> RevisionPlan {
    let newest = revisions.iter().max_by_key(|r| r.revision);
    if newest.is_some_and(|n| n.hash.as_deref() == Some(hash)) {
        return RevisionPlan::UpToDate;
    }
    let next = newest.map_or(1, |n| n.revision + 1);
    match revisions.iter().find(|r| r.hash.as_deref() == Some(hash)) {
        Some(old) => RevisionPlan::Renumber {
            name: old.name.clone(),
            revision: next,
        },
        None => RevisionPlan::Create {
            name: revision_name(composition, hash),
            revision: next,
        },
    }
}

/// The newest revision (highest `spec.revision`) among `revisions`.
pub fn newest<'a, I>(revisions: I) -> Option<&'a CompositionRevision>
where
    I: IntoIterator<Item = &'a CompositionRevision>,
{
    revisions.into_iter().max_by_key(|r| r.spec.revision)
}

struct Ctx {
    client: kube::Client,
    recorder: Recorder,
    opts: CompositionOptions,
    backoff: Backoff,
}

impl scaffold::Context for Ctx {
    fn backoff(&self) -> &Backoff {
        &self.backoff
    }
    fn client(&self) -> &kube::Client {
        &self.client
    }
    fn recorder(&self) -> &Recorder {
        &self.recorder
    }
}

/// Runs the CompositionRevision controller until the process is asked to stop.
///
/// # Expected flow
/// Every Composition is reconciled when it or one of its revisions changes, and every
/// poll interval: its spec hash is compared with the `tessera.dev/composition-hash` label
/// of its newest revision, and a revision is created (or an older one with the same hash
/// renumbered) when they differ.
///
/// # Guarantees
/// Revision names are deterministic (`<composition>-<hash>`) and written with server-side
/// apply, so a crash or a second controller never creates two revisions of one spec.
pub async fn run_revisions(client: kube::Client, opts: CompositionOptions) {
    let revisions: Api<CompositionRevision> = Api::all(client.clone());
    let controller = scaffold::controller(Api::<Composition>::all(client.clone()), ())
        .owns(revisions, watcher::Config::default().any_semantic());
    let concurrency = opts.max_concurrent_reconciles;
    let ctx = Arc::new(Ctx {
        recorder: scaffold::recorder(client.clone(), opts.field_manager.clone()),
        client,
        opts,
        backoff: Backoff::default(),
    });
    scaffold::run(controller, (), concurrency, reconcile, ctx).await;
}

#[instrument(skip_all, fields(kind = "Composition", name = %comp.name_any()))]
async fn reconcile(comp: Arc<Composition>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if comp.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = comp.name_any();
    let api: Api<CompositionRevision> = Api::all(ctx.client.clone());
    let existing = api
        .list(&ListParams::default().labels(&format!("{LABEL_COMPOSITION_NAME}={name}")))
        .await
        .map_err(|e| Error::List(name.clone(), e))?;
    let infos: Vec<RevisionInfo> = existing.items.iter().map(RevisionInfo::of).collect();
    let hash = spec_hash(&comp.spec);
    let (rev_name, revision, created) = match plan(&name, &hash, &infos) {
        RevisionPlan::UpToDate => {
            ctx.backoff.reset(comp.as_ref());
            return Ok(Action::requeue(ctx.opts.poll_interval));
        }
        RevisionPlan::Create { name, revision } => (name, revision, true),
        RevisionPlan::Renumber { name, revision } => (name, revision, false),
    };
    let body = revision_object(&comp, &rev_name, &hash, revision)
        .map_err(|e| Error::Serialize(name.clone(), e))?;
    api.patch(
        &rev_name,
        &PatchParams::apply(&format!("{}/revisions", ctx.opts.field_manager)).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|e| Error::Apply(rev_name.clone(), e))?;
    let note = if created {
        format!("Created CompositionRevision {rev_name:?} (revision {revision})")
    } else {
        format!("Made CompositionRevision {rev_name:?} the newest again (revision {revision})")
    };
    let event = Event {
        type_: EventType::Normal,
        reason: "RevisionCreated".to_string(),
        note: Some(note),
        action: "CreateRevision".to_string(),
        secondary: None,
    };
    scaffold::publish_event(&ctx.recorder, comp.as_ref(), &(), event).await;
    ctx.backoff.reset(comp.as_ref());
    Ok(Action::requeue(ctx.opts.poll_interval))
}

/// The CompositionRevision `name` snapshotting `comp`'s spec, as applied.
fn revision_object(
    comp: &Composition,
    name: &str,
    hash: &str,
    revision: i64,
) -> Result<Value, serde_json::Error> {
    let mut spec = serde_json::to_value(&comp.spec)?;
    if let Some(map) = spec.as_object_mut() {
        map.insert("revision".into(), json!(revision));
    }
    Ok(json!({
        "apiVersion": CompositionRevision::api_version(&()),
        "kind": CompositionRevision::kind(&()),
        "metadata": {
            "name": name,
            "labels": {
                LABEL_COMPOSITION_NAME: comp.name_any(),
                LABEL_COMPOSITION_HASH: hash,
            },
            "ownerReferences": comp.controller_owner_ref(&()).into_iter().collect::<Vec<_>>(),
        },
        "spec": spec,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(v: Value) -> CompositionSpec {
        serde_json::from_value(v).expect("composition spec")
    }

    fn info(name: &str, revision: i64, hash: &str) -> RevisionInfo {
        RevisionInfo {
            name: name.into(),
            revision,
            hash: Some(hash.into()),
        }
    }

    #[test]
    fn spec_hash_ignores_key_order_and_changes_with_content() {
        let a = spec(json!({
            "compositeTypeRef": {"apiVersion": "g/v1", "kind": "X"},
            "resources": [{"name": "r", "base": {"kind": "K", "apiVersion": "a/v1", "spec": {"x": 1, "y": 2}}}],
        }));
        let b = spec(json!({
            "resources": [{"base": {"apiVersion": "a/v1", "spec": {"y": 2, "x": 1}, "kind": "K"}, "name": "r"}],
            "compositeTypeRef": {"kind": "X", "apiVersion": "g/v1"},
        }));
        let c = spec(json!({
            "compositeTypeRef": {"apiVersion": "g/v1", "kind": "X"},
            "resources": [{"name": "r", "base": {"kind": "K", "apiVersion": "a/v1", "spec": {"x": 1, "y": 3}}}],
        }));
        assert_eq!(spec_hash(&a), spec_hash(&b));
        assert_ne!(spec_hash(&a), spec_hash(&c));
        assert_eq!(spec_hash(&a).len(), 7);
        assert!(spec_hash(&a).chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn revision_plans() {
        struct Case {
            reason: &'static str,
            revisions: Vec<RevisionInfo>,
            want: RevisionPlan,
        }
        let cases = [
            Case {
                reason: "the first revision is number 1",
                revisions: vec![],
                want: RevisionPlan::Create {
                    name: "comp-abc1234".into(),
                    revision: 1,
                },
            },
            Case {
                reason: "nothing to do when the newest revision has the spec's hash",
                revisions: vec![
                    info("comp-0000000", 1, "0000000"),
                    info("comp-abc1234", 2, "abc1234"),
                ],
                want: RevisionPlan::UpToDate,
            },
            Case {
                reason: "a changed spec gets the next number",
                revisions: vec![
                    info("comp-0000000", 1, "0000000"),
                    info("comp-1111111", 2, "1111111"),
                ],
                want: RevisionPlan::Create {
                    name: "comp-abc1234".into(),
                    revision: 3,
                },
            },
            Case {
                reason: "a revert renumbers the older revision instead of creating a duplicate",
                revisions: vec![
                    info("comp-abc1234", 1, "abc1234"),
                    info("comp-1111111", 2, "1111111"),
                ],
                want: RevisionPlan::Renumber {
                    name: "comp-abc1234".into(),
                    revision: 3,
                },
            },
            Case {
                reason: "a revision without a hash label counts for numbering only",
                revisions: vec![RevisionInfo {
                    name: "manual".into(),
                    revision: 7,
                    hash: None,
                }],
                want: RevisionPlan::Create {
                    name: "comp-abc1234".into(),
                    revision: 8,
                },
            },
        ];
        for case in cases {
            assert_eq!(
                plan("comp", "abc1234", &case.revisions),
                case.want,
                "{}",
                case.reason
            );
        }
    }

    #[test]
    fn revision_names_fit_the_api_server_limit() {
        assert_eq!(
            revision_name("shared-postgres", "abc1234"),
            "shared-postgres-abc1234"
        );
        let long = revision_name(&"c".repeat(300), "abc1234");
        assert_eq!(long.len(), MAX_NAME_LEN);
        assert!(long.ends_with("-abc1234"));
    }

    #[test]
    fn revision_object_snapshots_spec_with_labels_and_owner() {
        let comp: Composition = serde_json::from_value(json!({
            "apiVersion": "apiextensions.tessera.dev/v1", "kind": "Composition",
            "metadata": {"name": "comp", "uid": "u1"},
            "spec": {"compositeTypeRef": {"apiVersion": "g/v1", "kind": "X"}, "resources": []},
        }))
        .expect("composition");
        let obj = revision_object(&comp, "comp-abc1234", "abc1234", 4).expect("object");
        assert_eq!(obj["spec"]["revision"], 4);
        assert_eq!(obj["spec"]["compositeTypeRef"]["kind"], "X");
        assert_eq!(obj["metadata"]["labels"][LABEL_COMPOSITION_NAME], "comp");
        assert_eq!(obj["metadata"]["labels"][LABEL_COMPOSITION_HASH], "abc1234");
        assert_eq!(obj["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(obj["metadata"]["ownerReferences"][0]["controller"], true);
        let rev: CompositionRevision = serde_json::from_value(obj).expect("a valid revision");
        assert_eq!(rev.spec.composition, comp.spec);
    }
}
