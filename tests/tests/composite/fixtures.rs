//! Fixtures of the composite tests: the XRD and its generated CRD, the controllers, and
//! Compositions of PostgreSQL Roles, Databases and Grants.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tessera_engine::api::xrd::CompositeResourceDefinition;
use tessera_tests::{
    PG_API, TEST_NAMESPACE, TestEnv, get, install_crds, pg_provider_config,
    start_composite_controller_in_process, start_controller_in_process, wait_crd_established,
};

/// apiVersion of the composite kind of this binary.
pub const XR_API: &str = "composite.tests.tessera.dev/v1alpha1";
/// The composite kind of this binary.
pub const XR_KIND: &str = "XTestDatabase";
/// apiVersion of the engine's own kinds.
pub const COMP_API: &str = "apiextensions.tessera.dev/v1";
/// The ProviderConfig every composition of this binary uses.
pub const PC: &str = "composite-tests";

/// The XRD of the composite kind of this binary: `spec.parameters` and the status field
/// the compositions patch back.
pub fn xrd() -> CompositeResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": COMP_API, "kind": "CompositeResourceDefinition",
        "metadata": {"name": "xtestdatabases.composite.tests.tessera.dev"},
        "spec": {
            "group": "composite.tests.tessera.dev",
            "names": {"kind": XR_KIND, "plural": "xtestdatabases"},
            "connectionSecretKeys": ["username", "password", "endpoint", "port", "database", "url"],
            "versions": [{
                "name": "v1alpha1", "served": true, "referenceable": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"parameters": {
                        "type": "object",
                        "properties": {
                            "connectionLimit": {"type": "integer"},
                            "size": {"type": "string"},
                            "name": {"type": "string"},
                        },
                    }}},
                    "status": {"type": "object", "properties": {
                        "roleConnectionLimit": {"type": "integer"},
                    }},
                }}},
            }],
        },
    }))
    .expect("XRD")
}

/// Installs the CRDs (the engine's, PostgreSQL's and the composite's), a ProviderConfig,
/// and starts the managed, composite and revision controllers (once per binary).
pub async fn setup() -> (TestEnv, kube::Client) {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    // The composite CRD as the XRD controller generates it (that controller is not run
    // here: the composite controller is started directly).
    let crd = tessera_engine::xrd::composite_crd(&xrd()).expect("composite CRD");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        &crd.name_any(),
        &PatchParams::apply("tessera-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply composite CRD");
    wait_crd_established(&client, &crd.name_any())
        .await
        .expect("composite CRD established");
    pg_provider_config(&env, &client, PC, env.get("POSTGRES_PASSWORD")).await;
    start_controller_in_process(&env);
    start_composite_controller_in_process(&env, xrd());
    (env, client)
}

/// A `string` transform of type Format.
pub fn format(fmt: &str) -> Value {
    json!([{"type": "string", "string": {"type": "Format", "fmt": fmt}}])
}

/// A Role whose connection Secret is read back, with a ready `url`.
pub fn role_template() -> Value {
    json!({
        "name": "role",
        "base": {"apiVersion": PG_API, "kind": "Role", "spec": {
            "providerConfigRef": {"name": PC},
            "forProvider": {"privileges": {"login": true}},
            "writeConnectionSecretToRef": {"namespace": TEST_NAMESPACE},
        }},
        "patches": [
            {"fromFieldPath": "metadata.uid", "toFieldPath": "spec.writeConnectionSecretToRef.name",
             "transforms": format("%s-role")},
            {"fromFieldPath": "spec.parameters.connectionLimit", "toFieldPath": "spec.forProvider.connectionLimit"},
            {"type": "ToCompositeFieldPath", "fromFieldPath": "status.atProvider.connectionLimit",
             "toFieldPath": "status.roleConnectionLimit"},
        ],
        "connectionDetails": [
            {"fromConnectionSecretKey": "username"},
            {"fromConnectionSecretKey": "password"},
            {"fromConnectionSecretKey": "endpoint"},
            {"fromConnectionSecretKey": "port"},
            {"name": "database", "fromFieldPath": "metadata.labels[tessera.dev/composite]"},
            {"name": "url", "fmt": "postgres://{username}:{password}@{endpoint}:{port}/{database}"},
        ],
    })
}

/// A Database named like the composite, owned by its role; created after the role.
pub fn database_template() -> Value {
    json!({
        "name": "database",
        "dependsOn": ["role"],
        "base": {"apiVersion": PG_API, "kind": "Database", "spec": {"providerConfigRef": {"name": PC}}},
        "patches": [
            {"fromFieldPath": "metadata.name", "toFieldPath": "metadata.annotations[tessera.dev/external-name]"},
            {"fromFieldPath": "metadata.name", "toFieldPath": "spec.forProvider.owner", "transforms": format("%s-role")},
        ],
    })
}

/// A Grant of CONNECT and CREATE on the database to the role; created after both.
pub fn grant_template() -> Value {
    json!({
        "name": "grant",
        "dependsOn": ["role", "database"],
        "base": {"apiVersion": PG_API, "kind": "Grant", "spec": {
            "providerConfigRef": {"name": PC},
            "forProvider": {"privileges": ["CONNECT", "CREATE"]},
        }},
        "patches": [
            {"fromFieldPath": "metadata.name", "toFieldPath": "spec.forProvider.role", "transforms": format("%s-role")},
            {"fromFieldPath": "metadata.name", "toFieldPath": "spec.forProvider.database"},
        ],
    })
}

/// A Role without login (no password, no Secret): quick to compose.
pub fn plain_role(name: &str, limit: i64) -> Value {
    json!({
        "name": name,
        "base": {"apiVersion": PG_API, "kind": "Role", "spec": {
            "providerConfigRef": {"name": PC},
            "forProvider": {"connectionLimit": limit},
        }},
    })
}

/// A Composition of the composite kind of this binary.
pub fn composition(name: &str, resources: Vec<Value>) -> Value {
    json!({
        "apiVersion": COMP_API, "kind": "Composition",
        "metadata": {"name": name},
        "spec": {
            "compositeTypeRef": {"apiVersion": XR_API, "kind": XR_KIND},
            "resources": resources,
        },
    })
}

/// A composite of the kind of this binary.
pub fn xr(name: &str, spec: Value) -> Value {
    json!({"apiVersion": XR_API, "kind": XR_KIND, "metadata": {"name": name}, "spec": spec})
}

/// Reads a composite that must exist.
pub async fn get_xr(client: &kube::Client, name: &str) -> DynamicObject {
    get(client, XR_API, XR_KIND, name)
        .await
        .expect("composite exists")
}

/// A string field of an object.
pub fn str_at<'a>(o: &'a DynamicObject, pointer: &str) -> Option<&'a str> {
    o.data.pointer(pointer).and_then(Value::as_str)
}

/// An RFC 3339 time the runtime wrote (annotations and condition transition times carry
/// microseconds, so two of them order events that happen within one second).
fn precise_time(s: &str) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    serde_json::from_value(json!(s)).unwrap_or_else(|e| panic!("RFC 3339 time {s:?}: {e}"))
}

/// Microseconds since the epoch of an RFC 3339 time.
pub fn micros(s: &str) -> i64 {
    precise_time(s).0.as_microsecond()
}

/// Microseconds since the epoch now, on the clock the in-process controllers also use.
pub fn now_micros() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since_epoch.as_micros()).expect("in range")
}

/// What a watch saw of one composed resource.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seen {
    /// When the watch first saw it (µs since the epoch, the test's clock).
    pub appeared: i64,
    /// The transition time of the first Ready=True the watch saw (µs, as the managed
    /// runtime wrote it): the first time it became Ready, even if it flapped later.
    pub first_ready: Option<i64>,
}

/// The composed resources (by name) of the composite `composite`, as watches of Roles,
/// Databases and Grants saw them. The watches are established before this returns, so
/// apply the composite after it.
pub async fn watch_composed(
    client: &kube::Client,
    composite: &str,
) -> std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Seen>>> {
    use futures::StreamExt;
    use kube::runtime::watcher;

    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let mut ready = Vec::new();
    for kind in ["Role", "Database", "Grant"] {
        let (group, version) = PG_API.split_once('/').expect("group/version");
        let ar = kube::discovery::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            group, version, kind,
        ));
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let config =
            watcher::Config::default().labels(&format!("tessera.dev/composite={composite}"));
        let (tx, rx) = tokio::sync::oneshot::channel();
        ready.push(rx);
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut events = std::pin::pin!(watcher(api, config));
            while let Some(event) = events.next().await {
                match event {
                    Ok(watcher::Event::InitDone) => {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                        let ready = tessera_tests::condition(&o, "Ready")
                            .filter(|c| c.is_true())
                            .and_then(|c| c.last_transition_time)
                            .map(|t| micros(&t));
                        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                        let entry = seen.entry(o.name_any()).or_insert_with(|| Seen {
                            appeared: now_micros(),
                            first_ready: None,
                        });
                        entry.first_ready = entry.first_ready.or(ready);
                    }
                    _ => {}
                }
            }
        });
    }
    for rx in ready {
        rx.await.expect("watch established");
    }
    seen
}

/// Asserts that the external create of a composed resource never failed (a failed
/// attempt, e.g. one made before a dependency existed, would be retried and hide an early
/// start).
pub fn assert_no_failed_create(o: &DynamicObject) {
    let annotations = o.annotations();
    assert!(
        !annotations.contains_key("tessera.dev/external-create-failed"),
        "{}: an external create failed: {annotations:?}",
        o.name_any()
    );
}

/// When the external create of a composed resource started (the runtime's
/// create-pending annotation), if it was created rather than found existing.
pub fn create_started_at(o: &DynamicObject) -> Option<i64> {
    o.annotations()
        .get("tessera.dev/external-create-pending")
        .map(|t| micros(t))
}
