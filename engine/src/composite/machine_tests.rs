//! Table tests of the composite machine, with a closure-based fake of the cluster (in the
//! spirit of crossplane-runtime's `ExternalClientFns`): every read and write is logged, so
//! each case states the exact requests a reconcile makes.

use std::sync::Mutex;

use serde_json::json;

use super::*;
use crate::api::common::condition_type;
use crate::composite::fixtures::{
    composite, composition, deleting, drifted_database, dropped, live, new_composite,
};

type ApplyFn = Box<dyn Fn(&Value) -> Result<Value, kube::Error> + Send + Sync>;

/// The fake cluster: the composite's children, closures for applies, the connection
/// Secrets of the composed resources, and a log of every call.
struct ClusterFns {
    children: Mutex<Vec<Value>>,
    apply: ApplyFn,
    /// What the composite's connection Secret holds: publishing the same keys writes nothing.
    published: Mutex<ConnectionDetails>,
    role_secret: ConnectionDetails,
    /// The controller of the role's connection Secret (by default the live role).
    role_secret_controller: Option<String>,
    calls: Mutex<Vec<String>>,
}

impl ClusterFns {
    fn new(children: Vec<Value>) -> Self {
        ClusterFns {
            children: Mutex::new(children),
            apply: Box::new(|o| Ok(stored(o, false))),
            published: Mutex::new(ConnectionDetails::new()),
            role_secret: ConnectionDetails::new(),
            role_secret_controller: Some("uid-role".to_string()),
            calls: Mutex::new(Vec::new()),
        }
    }

    fn with_role_secret(mut self) -> Self {
        self.role_secret.insert("username", "orders");
        self.role_secret.insert("password", "s3cret");
        self
    }

    fn log(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

/// `object` as the API server stores it after an apply, with `Ready` as given.
fn stored(object: &Value, ready: bool) -> Value {
    let mut o = object.clone();
    // The API server gives every object a UID; the fixtures' live objects use the same form.
    o["metadata"]["uid"] = json!(format!("uid-{}", resource_of(object)));
    o["status"] = json!({
        "atProvider": {"state": if ready { "ready" } else { "creating" }},
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
    });
    o
}

fn resource_of(object: &Value) -> String {
    plan::resource_name(object)
}

fn invalid() -> kube::Error {
    kube::Error::Api(
        kube::core::Status::failure("spec.forProvider.login: Invalid value", "Invalid")
            .with_code(422)
            .boxed(),
    )
}

#[async_trait]
impl Effects for ClusterFns {
    async fn observe(&self, _kinds: &[KindRef]) -> Result<Vec<Value>, Error> {
        self.log("observe".into());
        Ok(self.children.lock().unwrap().clone())
    }
    async fn apply(&self, object: &Value) -> Result<Value, kube::Error> {
        self.log(format!("apply {}", resource_of(object)));
        let stored = (self.apply)(object)?;
        let mut children = self.children.lock().unwrap();
        children.retain(|c| ObjectKey::of(c) != ObjectKey::of(&stored));
        children.push(stored.clone());
        Ok(stored)
    }
    async fn delete(&self, object: &Value) -> Result<(), kube::Error> {
        self.log(format!("delete {}", resource_of(object)));
        // Gone at once: the composed resources of these tests have no finalizers.
        let mut children = self.children.lock().unwrap();
        children.retain(|c| ObjectKey::of(c) != ObjectKey::of(object));
        Ok(())
    }
    async fn read_secret(
        &self,
        secret: &SecretReference,
        _ready: bool,
    ) -> Result<Option<ComposedSecret>, kube::Error> {
        self.log(format!("read-secret {}/{}", secret.namespace, secret.name));
        Ok((!self.role_secret.is_empty()).then(|| ComposedSecret {
            controller_uid: self.role_secret_controller.clone(),
            details: self.role_secret.clone(),
        }))
    }
    async fn publish_secret(
        &self,
        secret: &SecretReference,
        _secret_type: Option<&str>,
        details: &ConnectionDetails,
        create: bool,
    ) -> Result<bool, kube::Error> {
        let mut published = self.published.lock().unwrap();
        if details.0.iter().all(|(k, v)| published.0.get(k) == Some(v)) {
            return Ok(false);
        }
        if published.is_empty() && !create {
            self.log(format!(
                "publish-waits {}/{}",
                secret.namespace, secret.name
            ));
            return Ok(false);
        }
        self.log(format!("publish {}/{}", secret.namespace, secret.name));
        *published = details.clone();
        Ok(true)
    }
    async fn write_refs(&self, refs: &SpecRefs) -> Result<Option<i64>, kube::Error> {
        self.log(format!("write-refs {}", refs.resources.len()));
        Ok(None)
    }
}

const MANAGER: &str = "tessera/composite/orders";

/// The default allow-list of a controller with the PostgreSQL provider.
static COMPOSABLE: std::sync::LazyLock<ComposableResources> =
    std::sync::LazyLock::new(|| ComposableResources::defaults(["postgresql.sql.tessera.dev"]));

fn input<'a>(
    xr: &'a Value,
    spec: &'a XrSpec,
    c: &'a CompositionSpec,
    keys: &'a [String],
) -> Input<'a> {
    Input {
        xr,
        spec,
        composition: c,
        chosen: SpecRefs {
            composition: Some("shared-postgres".into()),
            revision: Some("shared-postgres-1".into()),
            resources: Vec::new(),
            selected_by: None,
        },
        connection_secret_keys: keys,
        connection_secret_type: None,
        manager: MANAGER,
        composable: &COMPOSABLE,
    }
}

fn all_ready() -> Vec<Value> {
    vec![
        live("role", true),
        live("database", true),
        live("grant", true),
    ]
}

/// What a reconcile should do.
struct Want {
    calls: &'static [&'static str],
    /// `(status, message)` of Ready; `None` when the reconcile stopped before readiness.
    ready: Option<(&'static str, &'static str)>,
    events: &'static [&'static str],
    /// The start of each error message, in order.
    errors: &'static [&'static str],
    /// The keys of the connection Secret after the reconcile.
    published: &'static [&'static str],
    /// Whether the reconcile says it wrote the connection Secret.
    published_now: bool,
}

const WAITING_FOR_ALL: (&str, &str) = ("False", "Waiting for resources: role, database, grant");

const NONE: Want = Want {
    calls: &[],
    ready: Some(("True", "")),
    events: &[],
    errors: &[],
    published: &[],
    published_now: false,
};

struct Case {
    reason: &'static str,
    xr: Value,
    cluster: ClusterFns,
    /// The XRD's `connectionSecretKeys`.
    keys: &'static [&'static str],
    want: Want,
}

fn publish_all_keys(cluster: ClusterFns) -> ClusterFns {
    let mut held = ConnectionDetails::new();
    for (k, v) in [
        ("password", "s3cret"),
        ("port", "5432"),
        ("url", "postgres://orders:s3cret@db:5432/app"),
        ("username", "orders"),
    ] {
        held.insert(k, v);
    }
    *cluster.published.lock().unwrap() = held;
    cluster
}

#[tokio::test]
async fn a_reconcile_makes_exactly_the_requests_its_observations_call_for() {
    let cases = vec![
        Case {
            reason: "a new composite creates the resource without dependsOn, records every rendered resource once, and waits; its Secret waits until all are ready",
            xr: new_composite(),
            cluster: ClusterFns::new(vec![]).with_role_secret(),
            keys: &[],
            want: Want {
                calls: &[
                    "observe",
                    "apply role",
                    "read-secret tessera-system/orders-role",
                    "publish-waits shop/orders-conn",
                    "write-refs 3",
                ],
                ready: Some(WAITING_FOR_ALL),
                ..NONE
            },
        },
        Case {
            reason: "a resource that comes back ready from its apply lets its dependents be created in the same reconcile",
            xr: composite(),
            cluster: ClusterFns {
                apply: Box::new(|o| Ok(stored(o, true))),
                ..ClusterFns::new(vec![]).with_role_secret()
            },
            keys: &[],
            want: Want {
                calls: &[
                    "observe",
                    "apply role",
                    "apply database",
                    "apply grant",
                    "read-secret tessera-system/orders-role",
                    "publish shop/orders-conn",
                ],
                published: &["password", "port", "url", "username"],
                published_now: true,
                ..NONE
            },
        },
        Case {
            reason: "a ready dependency lets the next layer be created; the layer after waits for it",
            xr: composite(),
            cluster: ClusterFns::new(vec![live("role", true)]).with_role_secret(),
            keys: &[],
            want: Want {
                calls: &[
                    "observe",
                    "apply database",
                    "read-secret tessera-system/orders-role",
                    "publish-waits shop/orders-conn",
                ],
                ready: Some(("False", "Waiting for resources: database, grant")),
                ..NONE
            },
        },
        Case {
            reason: "an unready dependency holds creation: no writes until it is ready",
            xr: composite(),
            cluster: publish_all_keys(
                ClusterFns::new(vec![live("role", false)]).with_role_secret(),
            ),
            keys: &[],
            want: Want {
                calls: &["observe", "read-secret tessera-system/orders-role"],
                ready: Some(WAITING_FOR_ALL),
                published: &["password", "port", "url", "username"],
                ..NONE
            },
        },
        Case {
            reason: "the steady state makes no writes: everything in sync and ready, the Secret holding its values",
            xr: composite(),
            cluster: publish_all_keys(ClusterFns::new(all_ready()).with_role_secret()),
            keys: &[],
            want: Want {
                calls: &["observe", "read-secret tessera-system/orders-role"],
                published: &["password", "port", "url", "username"],
                ..NONE
            },
        },
        Case {
            reason: "a resource changed by hand is applied again, without a creation event, even while its dependency is not ready",
            xr: composite(),
            cluster: publish_all_keys(
                ClusterFns::new(vec![live("role", false), drifted_database(true)])
                    .with_role_secret(),
            ),
            keys: &[],
            want: Want {
                calls: &[
                    "observe",
                    "apply database",
                    "read-secret tessera-system/orders-role",
                ],
                ready: Some(("False", "Waiting for resources: role, database, grant")),
                published: &["password", "port", "url", "username"],
                ..NONE
            },
        },
        Case {
            reason: "a resource the Composition no longer renders is deleted, with an event",
            xr: composite(),
            cluster: publish_all_keys(
                ClusterFns::new([all_ready(), vec![dropped("cache")]].concat()).with_role_secret(),
            ),
            keys: &[],
            want: Want {
                calls: &[
                    "observe",
                    "delete cache",
                    "read-secret tessera-system/orders-role",
                ],
                events: &["DeletedResource"],
                published: &["password", "port", "url", "username"],
                ..NONE
            },
        },
        Case {
            reason: "garbage already being deleted is left to finish",
            xr: composite(),
            cluster: publish_all_keys(
                ClusterFns::new([all_ready(), vec![deleting(dropped("cache"))]].concat())
                    .with_role_secret(),
            ),
            keys: &[],
            want: Want {
                calls: &["observe", "read-secret tessera-system/orders-role"],
                published: &["password", "port", "url", "username"],
                ..NONE
            },
        },
        Case {
            reason: "a failing readiness check keeps Ready false, naming the resource",
            xr: composite(),
            cluster: publish_all_keys(
                ClusterFns::new(vec![
                    live("role", true),
                    live("database", false),
                    live("grant", true),
                ])
                .with_role_secret(),
            ),
            keys: &[],
            want: Want {
                calls: &["observe", "read-secret tessera-system/orders-role"],
                ready: Some(("False", "Waiting for resources: database")),
                published: &["password", "port", "url", "username"],
                ..NONE
            },
        },
        Case {
            reason: "only the XRD's connectionSecretKeys reach the composite's Secret",
            xr: composite(),
            cluster: ClusterFns::new(all_ready()).with_role_secret(),
            keys: &["url", "username"],
            want: Want {
                calls: &[
                    "observe",
                    "read-secret tessera-system/orders-role",
                    "publish shop/orders-conn",
                ],
                published: &["url", "username"],
                published_now: true,
                ..NONE
            },
        },
        Case {
            reason: "a connection Secret that its composed resource does not control is not copied",
            xr: composite(),
            cluster: ClusterFns {
                role_secret_controller: Some("uid-of-another-application".to_string()),
                ..ClusterFns::new(all_ready()).with_role_secret()
            },
            keys: &["url", "username"],
            want: Want {
                calls: &["observe", "read-secret tessera-system/orders-role"],
                ready: None,
                errors: &[
                    "connection Secret tessera-system/orders-role of resource 'role' is not controlled by that resource",
                ],
                ..NONE
            },
        },
        Case {
            reason: "a connection Secret without a controller is not copied either",
            xr: composite(),
            cluster: ClusterFns {
                role_secret_controller: None,
                ..ClusterFns::new(all_ready()).with_role_secret()
            },
            keys: &["url", "username"],
            want: Want {
                calls: &["observe", "read-secret tessera-system/orders-role"],
                ready: None,
                errors: &[
                    "connection Secret tessera-system/orders-role of resource 'role' is not controlled by that resource",
                ],
                ..NONE
            },
        },
        Case {
            reason: "a composite without a connection Secret reference publishes nothing",
            xr: {
                let mut xr = composite();
                xr["spec"]
                    .as_object_mut()
                    .map(|s| s.remove("writeConnectionSecretToRef"));
                xr
            },
            cluster: ClusterFns::new(all_ready()).with_role_secret(),
            keys: &[],
            want: Want {
                calls: &["observe", "read-secret tessera-system/orders-role"],
                ..NONE
            },
        },
        Case {
            reason: "an apply the API server refuses is reported on the resource, and its dependents keep waiting",
            xr: composite(),
            cluster: ClusterFns {
                apply: Box::new(|_| Err(invalid())),
                ..ClusterFns::new(vec![])
            },
            keys: &[],
            want: Want {
                calls: &["observe", "apply role"],
                ready: Some(WAITING_FOR_ALL),
                errors: &["cannot apply Role \"orders-role\" (resource 'role')"],
                ..NONE
            },
        },
        Case {
            reason: "an apply the API server refuses is reported on its resource, and the rest of the reconcile goes on",
            xr: composite(),
            cluster: publish_all_keys(ClusterFns {
                apply: Box::new(|_| Err(invalid())),
                ..ClusterFns::new(vec![live("role", true)]).with_role_secret()
            }),
            keys: &[],
            want: Want {
                calls: &[
                    "observe",
                    "apply database",
                    "read-secret tessera-system/orders-role",
                ],
                ready: Some(("False", "Waiting for resources: database, grant")),
                errors: &["cannot apply Database \"orders-database\" (resource 'database')"],
                published: &["password", "port", "url", "username"],
                ..NONE
            },
        },
    ];
    for case in cases {
        let spec: XrSpec = serde_json::from_value(case.xr["spec"].clone()).expect("spec");
        let composition = composition();
        let keys: Vec<String> = case.keys.iter().map(|k| k.to_string()).collect();
        let input = input(&case.xr, &spec, &composition, &keys);
        let report = converge(&input, &case.cluster).await;
        let reason = case.reason;
        assert_eq!(case.cluster.calls(), case.want.calls, "calls: {reason}");
        let ready = report.status.ready.as_ref().map(|ready| {
            assert_eq!(ready.type_, condition_type::READY, "{reason}");
            (ready.status.as_str(), ready.message.as_str())
        });
        assert_eq!(ready, case.want.ready, "ready: {reason}");
        let events: Vec<&str> = report.events.iter().map(|e| e.reason).collect();
        assert_eq!(events, case.want.events, "events: {reason}");
        let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errors.len(),
            case.want.errors.len(),
            "errors {errors:?}: {reason}"
        );
        for (got, want) in errors.iter().zip(case.want.errors) {
            assert!(got.starts_with(want), "error {got:?}: {reason}");
        }
        let published = case.cluster.published.lock().unwrap().clone();
        assert_eq!(
            published.keys().collect::<Vec<_>>(),
            case.want.published,
            "published: {reason}"
        );
        assert_eq!(
            report.status.published_at.is_some(),
            case.want.published_now,
            "published now: {reason}"
        );
    }
}

#[tokio::test]
async fn a_composition_rendering_a_refused_kind_reads_applies_and_deletes_nothing() {
    let no_grants = ComposableResources::parse(
        "postgresql.sql.tessera.dev/Role, postgresql.sql.tessera.dev/Database, core/Secret",
        std::iter::empty::<String>(),
    )
    .expect("list");
    let composition = composition();
    let keys = Vec::new();
    for (reason, xr, calls) in [
        (
            "a composite with everything recorded: not even garbage is deleted",
            composite(),
            &[][..],
        ),
        (
            "a new composite records only its chosen Composition",
            new_composite(),
            &["write-refs 0"][..],
        ),
    ] {
        // A drifted database and a dropped resource: without the refusal, a reconcile
        // would apply the one and delete the other.
        let cluster = ClusterFns::new(vec![
            live("role", true),
            drifted_database(true),
            dropped("cache"),
        ])
        .with_role_secret();
        let spec: XrSpec = serde_json::from_value(xr["spec"].clone()).expect("spec");
        let input = Input {
            composable: &no_grants,
            ..input(&xr, &spec, &composition, &keys)
        };
        let report = converge(&input, &cluster).await;
        assert_eq!(cluster.calls(), calls, "{reason}");
        let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            [
                "resource 'grant' (postgresql.sql.tessera.dev/v1alpha1 Grant) is not in the \
              controller's composable resources (postgresql.sql.tessera.dev/Role, \
              postgresql.sql.tessera.dev/Database, core/Secret); nothing of this composite is \
              applied until the Composition drops it or the platform team allows it (tessera \
              controller --composable-resources)"
            ],
            "{reason}"
        );
        assert_eq!(
            report.errors[0].reason(),
            "CompositionNotAllowed",
            "{reason}"
        );
        assert!(
            report.status.ready.is_none(),
            "Ready is left as it was: {reason}"
        );
        assert!(report.events.is_empty(), "{reason}");
    }
}

#[tokio::test]
async fn published_connection_details_are_filtered_and_formatted() {
    let xr = composite();
    let spec: XrSpec = serde_json::from_value(xr["spec"].clone()).expect("spec");
    let composition = composition();
    let keys = vec!["url".to_string()];
    let cluster = ClusterFns::new(all_ready()).with_role_secret();
    converge(&input(&xr, &spec, &composition, &keys), &cluster).await;
    let published = cluster.published.lock().unwrap().clone();
    assert_eq!(
        published.get_str("url"),
        Some("postgres://orders:s3cret@db:5432/app")
    );
    assert_eq!(
        published.get("password"),
        None,
        "filtered by connectionSecretKeys"
    );
}

#[tokio::test]
async fn to_composite_patches_of_observed_resources_reach_the_status() {
    let xr = composite();
    let spec: XrSpec = serde_json::from_value(xr["spec"].clone()).expect("spec");
    let composition = composition();
    let cluster = ClusterFns::new(all_ready());
    let report = converge(&input(&xr, &spec, &composition, &[]), &cluster).await;
    assert_eq!(
        report
            .status
            .patched
            .and_then(|s| s.get("roleOid").cloned()),
        Some(json!(42))
    );
}

#[tokio::test]
async fn deleting_a_composite_takes_one_round_per_depends_on_layer() {
    let xr = composite();
    let spec: XrSpec = serde_json::from_value(xr["spec"].clone()).expect("spec");
    let composition = composition();
    let cluster = ClusterFns::new(all_ready());
    let mut rounds = Vec::new();
    loop {
        let before = cluster.calls().len();
        let progress = delete_composed(&spec, Some(&composition), &cluster)
            .await
            .expect("progress");
        assert!(progress.errors.is_empty());
        if progress.remaining.is_empty() {
            break;
        }
        let deleted: Vec<String> = cluster.calls()[before..]
            .iter()
            .filter(|c| c.starts_with("delete "))
            .cloned()
            .collect();
        let events: Vec<&str> = progress.events.iter().map(|e| e.reason).collect();
        assert_eq!(events, vec!["DeletingResource"; deleted.len()]);
        rounds.push((progress.remaining, deleted));
        assert!(rounds.len() <= 3, "deletion never finishes: {rounds:?}");
    }
    assert_eq!(
        rounds,
        vec![
            (
                vec!["role".to_string(), "database".into(), "grant".into()],
                vec!["delete grant".to_string()]
            ),
            (
                vec!["role".to_string(), "database".into()],
                vec!["delete database".to_string()]
            ),
            (vec!["role".to_string()], vec!["delete role".to_string()]),
        ]
    );
}

#[tokio::test]
async fn a_resource_still_being_deleted_holds_the_layer_before_it() {
    let xr = composite();
    let spec: XrSpec = serde_json::from_value(xr["spec"].clone()).expect("spec");
    let composition = composition();
    let cluster = ClusterFns::new(vec![live("role", true), deleting(live("database", true))]);
    let progress = delete_composed(&spec, Some(&composition), &cluster)
        .await
        .expect("progress");
    assert_eq!(cluster.calls(), ["observe"]);
    assert_eq!(progress.remaining, ["role", "database"]);
}
