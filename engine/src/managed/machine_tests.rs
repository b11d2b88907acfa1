//! Table tests of the managed state machine, with closure-based fakes of the provider
//! ([`crate::testing::ExternalClientFns`]) and of the cluster writes.

use std::sync::Mutex;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::*;
use crate::api::common::{ResourceSpec, ResourceStatus};
use crate::managed::{Observation, Ownership};

/// A managed kind that exists only in these tests.
#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "test.tessera.dev",
    version = "v1",
    kind = "Widget",
    status = "WidgetStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct WidgetSpec {
    #[serde(flatten)]
    resource: ResourceSpec,
    for_provider: WidgetParameters,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
struct WidgetParameters {
    size: Option<i64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct WidgetStatus {
    #[serde(flatten)]
    resource: ResourceStatus,
}

crate::impl_managed!(Widget);

type ObserveFn = crate::testing::ObserveFn<Widget>;
type ExternalClientFns = crate::testing::ExternalClientFns<Widget>;

/// The fake cluster: records every write.
#[derive(Default)]
struct RecordingEffects {
    writes: Mutex<Vec<String>>,
    secrets: Mutex<Vec<ConnectionDetails>>,
    /// The API server refuses the connection Secret with this message.
    refuse_secret: Option<&'static str>,
    /// Whether a write of this pass added the finalizer.
    finalizer_added: Mutex<bool>,
}

impl RecordingEffects {
    /// Whether `obj` still lacks the finalizer in this pass (and marks it added: the
    /// write being recorded adds it).
    fn adds_finalizer(&self, obj: &Widget) -> bool {
        let mut added = self.finalizer_added.lock().unwrap();
        let missing = !*added
            && !obj
                .metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == crate::managed::FINALIZER);
        *added |= missing;
        missing
    }
}

impl RecordingEffects {
    fn writes(&self) -> Vec<String> {
        self.writes.lock().unwrap().clone()
    }
}

#[async_trait]
impl Effects<Widget> for RecordingEffects {
    async fn annotate(&self, obj: &Widget, values: &[(&str, String)]) -> Result<(), Error> {
        let keys: Vec<&str> = values.iter().map(|(k, _)| *k).collect();
        let with = if self.adds_finalizer(obj) {
            "finalizer,"
        } else {
            ""
        };
        self.writes
            .lock()
            .unwrap()
            .push(format!("annotate {with}{}", keys.join(",")));
        Ok(())
    }
    async fn ensure_finalizer(&self, obj: &Widget) -> Result<(), Error> {
        if self.adds_finalizer(obj) {
            self.writes.lock().unwrap().push("add-finalizer".into());
        }
        Ok(())
    }
    async fn remove_finalizer(&self, _obj: &Widget) -> Result<(), Error> {
        self.writes.lock().unwrap().push("remove-finalizer".into());
        Ok(())
    }
    async fn late_initialize(&self, _obj: &Widget, v: serde_json::Value) -> Result<(), Error> {
        self.writes.lock().unwrap().push(format!("late-init {v}"));
        Ok(())
    }
    async fn publish_secret(
        &self,
        _obj: &Widget,
        target: &SecretReference,
        _secret_type: Option<&str>,
        details: &ConnectionDetails,
    ) -> Result<(), Error> {
        if let Some(message) = self.refuse_secret {
            let status = kube::core::Status::failure(message, "NotFound").with_code(404);
            return Err(Error::WriteSecret(
                "widget".into(),
                kube::Error::Api(status.boxed()),
            ));
        }
        self.writes
            .lock()
            .unwrap()
            .push(format!("secret {}/{}", target.namespace, target.name));
        self.secrets.lock().unwrap().push(details.clone());
        Ok(())
    }
    async fn event(&self, _obj: &Widget, reason: &str, _note: String) {
        self.writes.lock().unwrap().push(format!("event {reason}"));
    }
    async fn warning(&self, _obj: &Widget, reason: &str, _note: String) {
        self.writes
            .lock()
            .unwrap()
            .push(format!("warning {reason}"));
    }
}

fn widget() -> Widget {
    let mut w = Widget::new(
        "w1",
        WidgetSpec {
            resource: ResourceSpec::default(),
            for_provider: WidgetParameters::default(),
        },
    );
    w.metadata.generation = Some(1);
    w.metadata.finalizers = Some(vec![crate::managed::FINALIZER.to_string()]);
    annotated(w, &[(annotations::EXTERNAL_NAME, "w1")])
}

fn without_finalizer(mut w: Widget) -> Widget {
    w.metadata.finalizers = None;
    w
}

fn deleting(mut w: Widget) -> Widget {
    w.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Default::default(),
    ));
    w
}

fn with_policies(mut w: Widget, p: &[ManagementAction]) -> Widget {
    w.spec.resource.management_policies = p.to_vec();
    w
}

fn annotated(mut w: Widget, kv: &[(&str, &str)]) -> Widget {
    let a = w.metadata.annotations.get_or_insert_with(Default::default);
    for (k, v) in kv {
        a.insert(k.to_string(), v.to_string());
    }
    w
}

/// This object's records say it created its external resource.
fn created(w: Widget) -> Widget {
    annotated(
        w,
        &[
            (
                annotations::EXTERNAL_CREATE_PENDING,
                "2026-01-01T00:00:00.000000Z",
            ),
            (
                annotations::EXTERNAL_CREATE_SUCCEEDED,
                "2026-01-01T00:00:01.000000Z",
            ),
        ],
    )
}

fn adopting(mut w: Widget) -> Widget {
    w.spec.resource.adopt_existing = true;
    w
}

/// A create was started (pending recorded) after an earlier success, and its result was
/// never recorded.
fn interrupted_create() -> Widget {
    annotated(
        widget(),
        &[
            (
                annotations::EXTERNAL_CREATE_PENDING,
                "2026-01-02T00:00:00.000000Z",
            ),
            (
                annotations::EXTERNAL_CREATE_SUCCEEDED,
                "2026-01-01T00:00:00.000000Z",
            ),
        ],
    )
}

/// Observe says absent on the first call and `then` afterwards.
fn absent_then(then: Observation) -> ObserveFn {
    Box::new(move |n, _| {
        Ok(if n == 1 {
            Observation::absent()
        } else {
            then.clone()
        })
    })
}

/// An observation of a resource that carries this object's mark.
fn ours(o: Observation) -> Observation {
    o.with_ownership(Ownership::Ours)
}

fn always(o: Observation) -> ObserveFn {
    Box::new(move |_, _| Ok(o.clone()))
}

/// What a pass should do.
struct Want {
    calls: &'static [&'static str],
    writes: &'static [&'static str],
    /// `Some((status, reason))` of Ready; `None` when the pass must not set Ready.
    ready: Option<(&'static str, &'static str)>,
    synced: Option<(&'static str, &'static str)>,
    finalizer_removed: bool,
    provider_error: bool,
}

const NONE: Want = Want {
    calls: &[],
    writes: &[],
    ready: None,
    synced: None,
    finalizer_removed: false,
    provider_error: false,
};

struct Case {
    reason: &'static str,
    obj: Widget,
    client: ExternalClientFns,
    want: Want,
}

#[tokio::test]
async fn state_machine_table() {
    let cases = vec![
        Case {
            reason: "an absent resource is created between a pending and a succeeded annotation, then read back",
            obj: widget(),
            client: ExternalClientFns::new(absent_then(Observation::up_to_date())),
            want: Want {
                calls: &["observe", "create", "observe"],
                writes: &[
                    "annotate tessera.dev/external-name,tessera.dev/external-create-pending",
                    "annotate tessera.dev/external-create-succeeded",
                    "event Created",
                ],
                ready: Some(("True", "Available")),
                synced: Some(("True", "ReconcileSuccess")),
                ..NONE
            },
        },
        Case {
            reason: "a new object gets its finalizer in the same write as the create-pending \
                     annotation, before the create: one write less, and deletion still waits \
                     for whatever the create makes",
            obj: without_finalizer(widget()),
            client: ExternalClientFns::new(absent_then(Observation::up_to_date())),
            want: Want {
                calls: &["observe", "create", "observe"],
                writes: &[
                    "annotate finalizer,tessera.dev/external-name,tessera.dev/external-create-pending",
                    "annotate tessera.dev/external-create-succeeded",
                    "event Created",
                ],
                ready: Some(("True", "Available")),
                synced: Some(("True", "ReconcileSuccess")),
                ..NONE
            },
        },
        Case {
            reason: "a new object whose external resource exists gets its finalizer before \
                     anything is changed (here an update)",
            obj: without_finalizer(widget()),
            client: ExternalClientFns::new(always(ours(Observation::drifted("size")))),
            want: Want {
                calls: &["observe", "update", "observe"],
                writes: &["add-finalizer", "event Updated"],
                ready: Some(("True", "Available")),
                synced: Some(("True", "ReconcileSuccess")),
                ..NONE
            },
        },
        Case {
            reason: "a new object whose external resource exists, with no external name \
                     recorded, gets its finalizer in the same write as the external name",
            obj: without_finalizer(Widget {
                metadata: kube::api::ObjectMeta {
                    annotations: None,
                    ..widget().metadata
                },
                ..widget()
            }),
            client: ExternalClientFns::new(always(ours(Observation::drifted("size")))),
            want: Want {
                calls: &["observe", "update", "observe"],
                writes: &[
                    "annotate finalizer,tessera.dev/external-name",
                    "event Updated",
                ],
                ready: Some(("True", "Available")),
                synced: Some(("True", "ReconcileSuccess")),
                ..NONE
            },
        },
        Case {
            reason: "a failed create is recorded with the failed annotation and reported",
            obj: widget(),
            client: ExternalClientFns {
                create: Box::new(|| Err(ProviderError::InvalidSpec("bad name".into()))),
                ..ExternalClientFns::new(always(Observation::absent()))
            },
            want: Want {
                calls: &["observe", "create"],
                writes: &[
                    "annotate tessera.dev/external-name,tessera.dev/external-create-pending",
                    "annotate tessera.dev/external-create-failed",
                ],
                provider_error: true,
                ..NONE
            },
        },
        Case {
            reason: "an unrecorded create of a kind whose identity the external system assigns \
                     stops instead of creating again: what that create made cannot be looked up \
                     by name, so a second create could duplicate it",
            obj: interrupted_create(),
            client: ExternalClientFns::new(always(Observation::absent())),
            want: Want {
                calls: &["observe"],
                writes: &[],
                ready: Some(("False", "Creating")),
                synced: Some(("False", "ReconcileError")),
                ..NONE
            },
        },
        Case {
            reason: "an unrecorded create of a kind with a deterministic identity whose resource \
                     is absent is retried: the name was persisted before the create and the \
                     external system refuses a second resource of that name",
            obj: interrupted_create(),
            client: ExternalClientFns {
                create_identity: CreateIdentity::Deterministic,
                ..ExternalClientFns::new(absent_then(Observation::up_to_date()))
            },
            want: Want {
                calls: &["observe", "create", "observe"],
                writes: &[
                    "annotate tessera.dev/external-name,tessera.dev/external-create-pending",
                    "annotate tessera.dev/external-create-succeeded",
                    "event Created",
                ],
                ready: Some(("True", "Available")),
                synced: Some(("True", "ReconcileSuccess")),
                ..NONE
            },
        },
        Case {
            reason: "a retried create of a deterministic kind that conflicts (the resource appeared \
                     meanwhile) is recorded as failed, so the next observe finds the resource and \
                     the adoption rule decides",
            obj: interrupted_create(),
            client: ExternalClientFns {
                create_identity: CreateIdentity::Deterministic,
                create: Box::new(|| Err(ProviderError::Transient("role already exists".into()))),
                ..ExternalClientFns::new(always(Observation::absent()))
            },
            want: Want {
                calls: &["observe", "create"],
                writes: &[
                    "annotate tessera.dev/external-name,tessera.dev/external-create-pending",
                    "annotate tessera.dev/external-create-failed",
                ],
                provider_error: true,
                ..NONE
            },
        },
        Case {
            reason: "a create the external system never answered (a lost reply, a timeout) is not \
                     recorded as failed: it stays pending, so the next pass takes what it made for \
                     this object's own",
            obj: widget(),
            client: ExternalClientFns {
                create_identity: CreateIdentity::Deterministic,
                create: Box::new(|| {
                    Err(ProviderError::Unanswered(
                        "cannot create database: the connection was closed".into(),
                    ))
                }),
                ..ExternalClientFns::new(always(Observation::absent()))
            },
            want: Want {
                calls: &["observe", "create"],
                writes: &["annotate tessera.dev/external-name,tessera.dev/external-create-pending"],
                provider_error: true,
                ..NONE
            },
        },
        Case {
            reason: "after an unanswered create, the unmarked resource it made is marked and \
                     managed, not refused as someone else's",
            obj: interrupted_create(),
            client: ExternalClientFns {
                create_identity: CreateIdentity::Deterministic,
                marks_ownership: true,
                ..ExternalClientFns::new(always(
                    Observation::up_to_date().with_ownership(Ownership::Unmarked),
                ))
            },
            want: Want {
                calls: &["observe", "mark"],
                writes: &[
                    "event Marked",
                    "annotate tessera.dev/external-create-succeeded",
                ],
                ready: Some(("True", "Available")),
                synced: Some(("True", "ReconcileSuccess")),
                ..NONE
            },
        },
        Case {
            reason: "an unrecorded create of a deterministic kind whose resource exists is adopted, \
                     not created again",
            obj: interrupted_create(),
            client: ExternalClientFns {
                create_identity: CreateIdentity::Deterministic,
                ..ExternalClientFns::new(always(Observation::up_to_date()))
            },
            want: Want {
                calls: &["observe"],
                writes: &["annotate tessera.dev/external-create-succeeded"],
                ready: Some(("True", "Available")),
                synced: Some(("True", "ReconcileSuccess")),
                ..NONE
            },
        },
        Case {
            reason: "a pending annotation older than the failed one allows a new create",
            obj: annotated(
                widget(),
                &[
                    (
                        annotations::EXTERNAL_CREATE_PENDING,
                        "2026-01-01T00:00:00.000000Z",
                    ),
                    (
                        annotations::EXTERNAL_CREATE_FAILED,
                        "2026-01-02T00:00:00.000000Z",
                    ),
                ],
            ),
            client: ExternalClientFns::new(absent_then(Observation::up_to_date())),
            want: Want {
                calls: &["observe", "create", "observe"],
                writes: &[
                    "annotate tessera.dev/external-name,tessera.dev/external-create-pending",
                    "annotate tessera.dev/external-create-succeeded",
                    "event Created",
                ],
                ready: Some(("True", "Available")),
                synced: Some(("True", "ReconcileSuccess")),
                ..NONE
            },
        },
        Case {
            reason: "an interrupted create whose resource exists is adopted, not created again",
            obj: annotated(
                widget(),
                &[(
                    annotations::EXTERNAL_CREATE_PENDING,
                    "2026-01-02T00:00:00.000000Z",
                )],
            ),
            client: ExternalClientFns::new(always(Observation::up_to_date())),
            want: Want {
                calls: &["observe"],
                writes: &["annotate tessera.dev/external-create-succeeded"],
                ready: Some(("True", "Available")),
                synced: Some(("True", "ReconcileSuccess")),
                ..NONE
            },
        },
        Case {
            reason: "an Observe-only resource that does not exist is never created",
            obj: with_policies(widget(), &[ManagementAction::Observe]),
            client: ExternalClientFns::new(always(Observation::absent())),
            want: Want {
                calls: &["observe"],
                writes: &[],
                ready: Some(("False", "Unavailable")),
                synced: Some(("True", "ReconcileSuccess")),
                ..NONE
            },
        },
        Case {
            reason: "a drifted resource is updated and the update is an event",
            obj: widget(),
            client: ExternalClientFns::new(always(ours(Observation::drifted(
                "size: want 2, have 1",
            )))),
            want: Want {
                calls: &["observe", "update", "observe"],
                writes: &["event Updated"],
                ready: Some(("True", "Available")),
                synced: Some(("True", "ReconcileSuccess")),
                ..NONE
            },
        },
        Case {
            reason: "an Observe-only drifted resource is never updated",
            obj: with_policies(widget(), &[ManagementAction::Observe]),
            client: ExternalClientFns::new(always(Observation::drifted("size: want 2, have 1"))),
            want: Want {
                calls: &["observe"],
                writes: &[],
                ready: Some(("True", "Available")),
                synced: Some(("True", "ReconcileSuccess")),
                ..NONE
            },
        },
        Case {
            reason: "an existing resource without a recorded external name gets it recorded once",
            obj: {
                let mut w = widget();
                w.metadata.annotations = None;
                w
            },
            client: ExternalClientFns::new(always(ours(Observation::up_to_date()))),
            want: Want {
                calls: &["observe"],
                writes: &["annotate tessera.dev/external-name"],
                ready: Some(("True", "Available")),
                synced: Some(("True", "ReconcileSuccess")),
                ..NONE
            },
        },
        Case {
            reason: "an up-to-date resource in steady state causes no writes at all",
            obj: widget(),
            client: ExternalClientFns::new(always(ours(Observation::up_to_date()))),
            want: Want {
                calls: &["observe"],
                writes: &[],
                ready: Some(("True", "Available")),
                synced: Some(("True", "ReconcileSuccess")),
                ..NONE
            },
        },
        Case {
            reason: "an existing but not yet usable resource is Ready=False Unavailable",
            obj: widget(),
            client: ExternalClientFns::new(always(Observation {
                available: false,
                ..ours(Observation::up_to_date())
            })),
            want: Want {
                calls: &["observe"],
                ready: Some(("False", "Unavailable")),
                synced: Some(("True", "ReconcileSuccess")),
                ..NONE
            },
        },
        Case {
            reason: "an observe error is a provider failure and nothing is written",
            obj: widget(),
            client: ExternalClientFns::new(Box::new(|_, _| {
                Err(ProviderError::Transient("connection refused".into()))
            })),
            want: Want {
                calls: &["observe"],
                provider_error: true,
                ..NONE
            },
        },
        Case {
            reason: "deleting with policy Delete deletes, confirms it is gone, then drops the finalizer",
            obj: deleting(widget()),
            client: ExternalClientFns::new(Box::new(|n, _| {
                Ok(if n == 1 {
                    ours(Observation::up_to_date())
                } else {
                    Observation::absent()
                })
            })),
            want: Want {
                calls: &["observe", "delete", "observe"],
                writes: &["remove-finalizer", "event Deleted"],
                finalizer_removed: true,
                ..NONE
            },
        },
        Case {
            reason: "deleting keeps the finalizer while the external resource is still there",
            obj: deleting(widget()),
            client: ExternalClientFns::new(always(ours(Observation::up_to_date()))),
            want: Want {
                calls: &["observe", "delete", "observe"],
                writes: &[],
                ready: Some(("False", "Deleting")),
                synced: Some(("True", "ReconcileSuccess")),
                ..NONE
            },
        },
        Case {
            reason: "deleting with policy Orphan never calls delete",
            obj: {
                let mut w = deleting(widget());
                w.spec.resource.deletion_policy = crate::api::common::DeletionPolicy::Orphan;
                w
            },
            client: ExternalClientFns::new(always(Observation::up_to_date())),
            want: Want {
                calls: &["observe"],
                writes: &["remove-finalizer", "event Orphaned"],
                finalizer_removed: true,
                ..NONE
            },
        },
        Case {
            reason: "deleting without the Delete management policy orphans",
            obj: deleting(with_policies(
                widget(),
                &[ManagementAction::Observe, ManagementAction::Create],
            )),
            client: ExternalClientFns::new(always(Observation::up_to_date())),
            want: Want {
                calls: &["observe"],
                writes: &["remove-finalizer", "event Orphaned"],
                finalizer_removed: true,
                ..NONE
            },
        },
        Case {
            reason: "a failed delete keeps the finalizer and reports the error",
            obj: deleting(widget()),
            client: ExternalClientFns {
                delete: Box::new(|| Err(ProviderError::Transient("role owns objects".into()))),
                ..ExternalClientFns::new(always(ours(Observation::up_to_date())))
            },
            want: Want {
                calls: &["observe", "delete"],
                writes: &[],
                provider_error: true,
                ..NONE
            },
        },
        Case {
            reason: "deleting an object whose spec never named a valid external resource releases it",
            obj: deleting(widget()),
            client: ExternalClientFns::new(Box::new(|_, _| {
                Err(ProviderError::InvalidSpec("name too long".into()))
            })),
            want: Want {
                calls: &["observe"],
                writes: &["remove-finalizer", "event Released"],
                finalizer_removed: true,
                ..NONE
            },
        },
        Case {
            reason: "deleting with an invalid spec after a create was attempted keeps the finalizer",
            obj: annotated(
                deleting(widget()),
                &[(
                    annotations::EXTERNAL_CREATE_PENDING,
                    "2026-01-01T00:00:00.000000Z",
                )],
            ),
            client: ExternalClientFns::new(Box::new(|_, _| {
                Err(ProviderError::InvalidSpec("encoding cannot change".into()))
            })),
            want: Want {
                calls: &["observe"],
                writes: &[],
                provider_error: true,
                ..NONE
            },
        },
        Case {
            reason: "the connection secret gets what create and observe returned",
            obj: {
                let mut w = widget();
                w.spec.resource.write_connection_secret_to_ref = Some(SecretReference {
                    name: "conn".into(),
                    namespace: "apps".into(),
                });
                w
            },
            client: ExternalClientFns {
                create: Box::new(|| {
                    let mut cd = ConnectionDetails::new();
                    cd.insert("password", "s3cret");
                    Ok(cd)
                }),
                ..ExternalClientFns::new(absent_then(Observation::up_to_date().with_connection({
                    let mut cd = ConnectionDetails::new();
                    cd.insert("endpoint", "db");
                    cd
                })))
            },
            want: Want {
                calls: &["observe", "create", "observe"],
                writes: &[
                    "annotate tessera.dev/external-name,tessera.dev/external-create-pending",
                    "annotate tessera.dev/external-create-succeeded",
                    "event Created",
                    "secret apps/conn",
                ],
                ready: Some(("True", "Available")),
                synced: Some(("True", "ReconcileSuccess")),
                ..NONE
            },
        },
        Case {
            reason: "an existing resource that is not marked and that this object never created \
                     is refused: no update, one warning, Synced=False ExternalResourceNotOwned",
            obj: widget(),
            client: ExternalClientFns::new(always(Observation::drifted("password"))),
            want: Want {
                calls: &["observe"],
                writes: &["warning ExternalResourceNotOwned"],
                ready: Some(("False", "Unavailable")),
                synced: Some(("False", "ExternalResourceNotOwned")),
                ..NONE
            },
        },
        Case {
            reason: "a refusal already reported in Synced is not reported again (no event per poll)",
            obj: {
                let mut w = widget();
                let message = not_owned_message(&Ownership::Unmarked, "w1");
                w.status = Some(WidgetStatus {
                    resource: ResourceStatus {
                        conditions: vec![Condition::not_owned(message)],
                        ..ResourceStatus::default()
                    },
                });
                w
            },
            client: ExternalClientFns::new(always(Observation::up_to_date())),
            want: Want {
                calls: &["observe"],
                writes: &[],
                ready: Some(("False", "Unavailable")),
                synced: Some(("False", "ExternalResourceNotOwned")),
                ..NONE
            },
        },
        Case {
            reason: "a resource marked by another managed resource is refused",
            obj: widget(),
            client: ExternalClientFns {
                marks_ownership: true,
                ..ExternalClientFns::new(always(
                    Observation::drifted("size").with_ownership(Ownership::Other("u2".into())),
                ))
            },
            want: Want {
                calls: &["observe"],
                writes: &["warning ExternalResourceNotOwned"],
                ready: Some(("False", "Unavailable")),
                synced: Some(("False", "ExternalResourceNotOwned")),
                ..NONE
            },
        },
        Case {
            reason: "adoptExisting marks an unmarked resource, announces it, then updates it",
            obj: adopting(widget()),
            client: ExternalClientFns {
                marks_ownership: true,
                ..ExternalClientFns::new(always(Observation::drifted("size")))
            },
            want: Want {
                calls: &["observe", "mark", "update", "observe"],
                writes: &["event Adopted", "event Updated"],
                ready: Some(("True", "Available")),
                synced: Some(("True", "ReconcileSuccess")),
                ..NONE
            },
        },
        Case {
            reason: "adoptExisting takes over a resource marked by another managed resource",
            obj: adopting(widget()),
            client: ExternalClientFns {
                marks_ownership: true,
                ..ExternalClientFns::new(always(
                    Observation::up_to_date().with_ownership(Ownership::Other("u2".into())),
                ))
            },
            want: Want {
                calls: &["observe", "mark"],
                writes: &["event Adopted"],
                ready: Some(("True", "Available")),
                synced: Some(("True", "ReconcileSuccess")),
                ..NONE
            },
        },
        Case {
            reason: "a protected resource is refused even with adoptExisting",
            obj: adopting(widget()),
            client: ExternalClientFns {
                marks_ownership: true,
                ..ExternalClientFns::new(always(
                    Observation::drifted("password")
                        .with_ownership(Ownership::Protected("a superuser".into())),
                ))
            },
            want: Want {
                calls: &["observe"],
                writes: &["warning ExternalResourceNotOwned"],
                ready: Some(("False", "Unavailable")),
                synced: Some(("False", "ExternalResourceNotOwned")),
                ..NONE
            },
        },
        Case {
            reason: "an Observe-only object reads a protected resource without marking it",
            obj: with_policies(widget(), &[ManagementAction::Observe]),
            client: ExternalClientFns {
                marks_ownership: true,
                ..ExternalClientFns::new(always(
                    Observation::drifted("password")
                        .with_ownership(Ownership::Protected("a superuser".into())),
                ))
            },
            want: Want {
                calls: &["observe"],
                writes: &[],
                ready: Some(("True", "Available")),
                synced: Some(("True", "ReconcileSuccess")),
                ..NONE
            },
        },
        Case {
            reason: "an unmarked resource this object created (legacy, or a crash before the mark) \
                     is marked again and managed",
            obj: created(widget()),
            client: ExternalClientFns {
                marks_ownership: true,
                ..ExternalClientFns::new(always(Observation::up_to_date()))
            },
            want: Want {
                calls: &["observe", "mark"],
                writes: &["event Marked"],
                ready: Some(("True", "Available")),
                synced: Some(("True", "ReconcileSuccess")),
                ..NONE
            },
        },
        Case {
            reason: "a kind that cannot mark manages what its records say it created, writing nothing",
            obj: created(widget()),
            client: ExternalClientFns::new(always(Observation::up_to_date())),
            want: Want {
                calls: &["observe"],
                writes: &[],
                ready: Some(("True", "Available")),
                synced: Some(("True", "ReconcileSuccess")),
                ..NONE
            },
        },
        Case {
            reason: "a create that failed last (the name was taken meanwhile) does not make an \
                     unmarked resource this object's own",
            obj: annotated(
                created(widget()),
                &[
                    (
                        annotations::EXTERNAL_CREATE_PENDING,
                        "2026-01-02T00:00:00.000000Z",
                    ),
                    (
                        annotations::EXTERNAL_CREATE_FAILED,
                        "2026-01-02T00:00:01.000000Z",
                    ),
                ],
            ),
            client: ExternalClientFns {
                marks_ownership: true,
                ..ExternalClientFns::new(always(Observation::up_to_date()))
            },
            want: Want {
                calls: &["observe"],
                writes: &["warning ExternalResourceNotOwned"],
                ready: Some(("False", "Unavailable")),
                synced: Some(("False", "ExternalResourceNotOwned")),
                ..NONE
            },
        },
        Case {
            reason: "a NotTracked kind (a grant) is managed as before",
            obj: widget(),
            client: ExternalClientFns::new(always(
                Observation::drifted("privileges").with_ownership(Ownership::NotTracked),
            )),
            want: Want {
                calls: &["observe", "update", "observe"],
                writes: &["event Updated"],
                ready: Some(("True", "Available")),
                synced: Some(("True", "ReconcileSuccess")),
                ..NONE
            },
        },
        Case {
            reason: "deleting never deletes an unmarked resource this object did not create: \
                     the finalizer goes and an event says it was left in place",
            obj: deleting(widget()),
            client: ExternalClientFns::new(always(Observation::up_to_date())),
            want: Want {
                calls: &["observe"],
                writes: &["remove-finalizer", "event LeftInPlace"],
                finalizer_removed: true,
                ..NONE
            },
        },
        Case {
            reason: "deleting never deletes a protected resource, even with adoptExisting",
            obj: deleting(adopting(widget())),
            client: ExternalClientFns::new(always(
                Observation::up_to_date().with_ownership(Ownership::Protected("system".into())),
            )),
            want: Want {
                calls: &["observe"],
                writes: &["remove-finalizer", "event LeftInPlace"],
                finalizer_removed: true,
                ..NONE
            },
        },
        Case {
            reason: "deleting never deletes a resource marked by another managed resource",
            obj: deleting(created(widget())),
            client: ExternalClientFns::new(always(
                Observation::up_to_date().with_ownership(Ownership::Other("u2".into())),
            )),
            want: Want {
                calls: &["observe"],
                writes: &["remove-finalizer", "event LeftInPlace"],
                finalizer_removed: true,
                ..NONE
            },
        },
        Case {
            reason: "deleting with adoptExisting deletes an unmarked resource not yet marked: \
                     the object asked to manage it",
            obj: deleting(adopting(widget())),
            client: ExternalClientFns::new(Box::new(|n, _| {
                Ok(if n == 1 {
                    Observation::up_to_date()
                } else {
                    Observation::absent()
                })
            })),
            want: Want {
                calls: &["observe", "delete", "observe"],
                writes: &["remove-finalizer", "event Deleted"],
                finalizer_removed: true,
                ..NONE
            },
        },
        Case {
            reason: "deleting deletes an unmarked resource that this object's records say it created",
            obj: deleting(created(widget())),
            client: ExternalClientFns::new(Box::new(|n, _| {
                Ok(if n == 1 {
                    Observation::up_to_date()
                } else {
                    Observation::absent()
                })
            })),
            want: Want {
                calls: &["observe", "delete", "observe"],
                writes: &["remove-finalizer", "event Deleted"],
                finalizer_removed: true,
                ..NONE
            },
        },
    ];

    for case in cases {
        let effects = RecordingEffects::default();
        let mut mr = case.obj.clone();
        let result = drive(&effects, &case.client, &mut mr, Duration::from_secs(60)).await;
        assert_eq!(
            case.client.calls(),
            case.want.calls,
            "calls: {}",
            case.reason
        );
        assert_eq!(
            effects.writes(),
            case.want.writes,
            "writes: {}",
            case.reason
        );
        match result {
            Ok(Step::FinalizerRemoved) => {
                assert!(
                    case.want.finalizer_removed,
                    "finalizer removed: {}",
                    case.reason
                )
            }
            Ok(Step::Done { outcome, .. }) => {
                assert!(!case.want.finalizer_removed, "{}", case.reason);
                assert!(!case.want.provider_error, "{}", case.reason);
                let ready = outcome
                    .ready
                    .as_ref()
                    .map(|c| (c.status.as_str(), c.reason.as_str()));
                assert_eq!(ready, case.want.ready, "ready: {}", case.reason);
                let synced = (
                    outcome.synced.status.as_str(),
                    outcome.synced.reason.as_str(),
                );
                assert_eq!(Some(synced), case.want.synced, "synced: {}", case.reason);
            }
            Err(Failure::Provider(_)) => assert!(case.want.provider_error, "{}", case.reason),
            Err(Failure::Released) => {
                assert!(case.want.finalizer_removed, "released: {}", case.reason)
            }
            Err(Failure::Kube(e)) => panic!("{}: unexpected kube error {e}", case.reason),
        }
    }
}

#[tokio::test]
async fn connection_secret_merges_observed_and_created_details() {
    let effects = RecordingEffects::default();
    let mut obj = widget();
    obj.spec.resource.write_connection_secret_to_ref = Some(SecretReference {
        name: "conn".into(),
        namespace: "apps".into(),
    });
    let client = ExternalClientFns {
        create: Box::new(|| {
            let mut cd = ConnectionDetails::new();
            cd.insert("password", "s3cret");
            Ok(cd)
        }),
        ..ExternalClientFns::new(absent_then(Observation::up_to_date().with_connection({
            let mut cd = ConnectionDetails::new();
            cd.insert("endpoint", "db");
            cd
        })))
    };
    let mut mr = obj.clone();
    drive(&effects, &client, &mut mr, Duration::from_secs(60))
        .await
        .map_err(|_| "drive failed")
        .unwrap();
    let secrets = effects.secrets.lock().unwrap();
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].get_str("password"), Some("s3cret"));
    assert_eq!(secrets[0].get_str("endpoint"), Some("db"));
}

#[tokio::test]
async fn a_connection_secret_the_api_server_refuses_is_the_objects_failure_with_its_message() {
    let effects = RecordingEffects {
        refuse_secret: Some("namespaces \"apps\" not found"),
        ..RecordingEffects::default()
    };
    let mut obj = widget();
    obj.spec.resource.write_connection_secret_to_ref = Some(SecretReference {
        name: "conn".into(),
        namespace: "apps".into(),
    });
    let client = ExternalClientFns::new(absent_then(Observation::up_to_date()));
    let mut mr = obj.clone();
    match drive(&effects, &client, &mut mr, Duration::from_secs(60)).await {
        Err(Failure::Provider(ProviderError::Transient(message))) => assert_eq!(
            message,
            "cannot write the connection Secret apps/conn: namespaces \"apps\" not found \
             (NotFound); create the namespace or fix spec.writeConnectionSecretToRef"
        ),
        Err(Failure::Kube(e)) => panic!("a controller error, so no condition says it: {e}"),
        _ => panic!("the refused Secret is a failure of the object"),
    }
}

#[test]
fn create_incomplete_compares_pending_with_both_results() {
    let cases = [
        ("no annotations: nothing pending", vec![], false),
        (
            "pending alone is incomplete",
            vec![(
                annotations::EXTERNAL_CREATE_PENDING,
                "2026-01-01T00:00:00.000000Z",
            )],
            true,
        ),
        (
            "succeeded after pending is complete",
            vec![
                (
                    annotations::EXTERNAL_CREATE_PENDING,
                    "2026-01-01T00:00:00.000000Z",
                ),
                (
                    annotations::EXTERNAL_CREATE_SUCCEEDED,
                    "2026-01-01T00:00:01.000000Z",
                ),
            ],
            false,
        ),
        (
            "failed after pending is complete",
            vec![
                (
                    annotations::EXTERNAL_CREATE_PENDING,
                    "2026-01-01T00:00:00.000000Z",
                ),
                (
                    annotations::EXTERNAL_CREATE_FAILED,
                    "2026-01-01T00:00:01.000000Z",
                ),
            ],
            false,
        ),
        (
            "a newer pending after an old success is incomplete",
            vec![
                (
                    annotations::EXTERNAL_CREATE_PENDING,
                    "2026-01-02T00:00:00.000000Z",
                ),
                (
                    annotations::EXTERNAL_CREATE_SUCCEEDED,
                    "2026-01-01T00:00:00.000000Z",
                ),
            ],
            true,
        ),
    ];
    for (reason, kv, want) in cases {
        assert_eq!(
            create_incomplete(&annotated(widget(), &kv)),
            want,
            "{reason}"
        );
    }
}

#[test]
fn created_here_trusts_only_a_create_that_succeeded_or_was_interrupted() {
    let t = |n: u8| format!("2026-01-01T00:00:0{n}.000000Z");
    let cases = [
        ("no records: not created here", vec![], false),
        (
            "a create in flight when the process died counts",
            vec![(annotations::EXTERNAL_CREATE_PENDING, t(1))],
            true,
        ),
        (
            "a succeeded create counts",
            vec![
                (annotations::EXTERNAL_CREATE_PENDING, t(1)),
                (annotations::EXTERNAL_CREATE_SUCCEEDED, t(2)),
            ],
            true,
        ),
        (
            "a failed create does not count",
            vec![
                (annotations::EXTERNAL_CREATE_PENDING, t(1)),
                (annotations::EXTERNAL_CREATE_FAILED, t(2)),
            ],
            false,
        ),
        (
            "a success followed by a failed re-create does not count",
            vec![
                (annotations::EXTERNAL_CREATE_PENDING, t(3)),
                (annotations::EXTERNAL_CREATE_SUCCEEDED, t(2)),
                (annotations::EXTERNAL_CREATE_FAILED, t(4)),
            ],
            false,
        ),
    ];
    for (reason, kv, want) in cases {
        let kv: Vec<(&str, &str)> = kv.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(created_here(&annotated(widget(), &kv)), want, "{reason}");
    }
}

#[test]
fn refusal_messages_say_what_is_wrong_and_what_to_do() {
    let unmarked = not_owned_message(&Ownership::Unmarked, "app");
    assert_eq!(
        unmarked,
        "External resource \"app\" exists and was not created by Tessera; set \
         spec.adoptExisting: true to manage it, or managementPolicies: [\"Observe\"] to only read it"
    );
    let other = not_owned_message(&Ownership::Other("1234".into()), "app");
    assert!(
        other.contains("uid 1234") && other.contains("adoptExisting"),
        "{other}"
    );
    let protected = not_owned_message(&Ownership::Protected("a superuser".into()), "postgres");
    assert!(
        protected.contains("a superuser") && !protected.contains("adoptExisting"),
        "adoptExisting cannot help with a protected resource: {protected}"
    );
}

#[tokio::test]
async fn a_resource_not_yet_usable_says_why_on_the_ready_condition() {
    let effects = RecordingEffects::default();
    let client = ExternalClientFns::new(always(Observation {
        available: false,
        unavailable_message: Some("AWS status of DB instance \"db\": creating".into()),
        ..ours(Observation::up_to_date())
    }));
    let mut mr = widget();
    let Ok(Step::Done { outcome, .. }) =
        drive(&effects, &client, &mut mr, Duration::from_secs(60)).await
    else {
        panic!("want a finished pass");
    };
    let ready = outcome.ready.expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Unavailable")
    );
    assert_eq!(ready.message, "AWS status of DB instance \"db\": creating");
}

#[tokio::test]
async fn a_resource_still_being_created_is_ready_false_creating_with_the_external_status() {
    let effects = RecordingEffects::default();
    let client = ExternalClientFns::new(always(Observation {
        available: false,
        creating: true,
        unavailable_message: Some("AWS status of DB instance \"db\": backing-up".into()),
        ..ours(Observation::up_to_date())
    }));
    let mut mr = widget();
    let Ok(Step::Done { outcome, .. }) =
        drive(&effects, &client, &mut mr, Duration::from_secs(60)).await
    else {
        panic!("want a finished pass");
    };
    let ready = outcome.ready.expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Creating")
    );
    assert_eq!(
        ready.message,
        "AWS status of DB instance \"db\": backing-up"
    );
}
