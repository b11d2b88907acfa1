//! The store of Tessera's Secrets when the controller's account may read and write Secrets
//! but not list and watch them: every read is a GET and publishing works as without the
//! store. A binary of its own, because the store's scope is the process's.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::json;
use tessera_engine::api::common::{ConnectionDetails, SecretReference};
use tessera_engine::connection_secret::{self, Publish, SecretOwner};
use tessera_engine::secret_store::{self, Scope};
use tessera_tests::{TestEnv, apply, namespace, unique, wait_for};

/// The process's log, kept in memory.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn count(&self, text: &str) -> usize {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        String::from_utf8_lossy(&bytes).matches(text).count()
    }
}

const REFUSED: &str = "may not list and watch Secrets";

#[tokio::test]
async fn without_list_and_watch_secrets_are_read_with_gets_and_still_published() {
    let log = Log::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || writer.clone())
        .init();
    let env = TestEnv::load();
    let admin = env.kube().await;
    let ns = namespace(&admin, &unique("secret-nowatch")).await;
    // testenv's unprivileged user may get, create and patch Secrets here, nothing more.
    apply(
        &admin,
        json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": { "name": "secrets-no-list", "namespace": &ns },
            "rules": [{ "apiGroups": [""], "resources": ["secrets"],
                        "verbs": ["get", "create", "patch", "update"] }] }),
    )
    .await;
    apply(
        &admin,
        json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": { "name": "secrets-no-list", "namespace": &ns },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secrets-no-list" },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "developer" }] }),
    )
    .await;
    let client = env.kube_from(env.get("KUBECONFIG_DEVELOPER")).await;
    secret_store::set_scope(Scope::Namespaces(vec![ns.clone()]));
    let target = SecretReference {
        name: unique("conn"),
        namespace: ns.clone(),
    };
    let publish = |value: &'static str| {
        let (client, target) = (client.clone(), target.clone());
        async move {
            connection_secret::publish_owned(
                &client,
                "tessera-test",
                SecretOwner {
                    reference: None,
                    name: "test",
                    shard: None,
                },
                &target,
                None,
                &ConnectionDetails(
                    [("user".to_string(), value.as_bytes().to_vec())]
                        .into_iter()
                        .collect(),
                ),
                Publish::Always,
            )
            .await
            .expect("publish without list and watch")
        }
    };
    assert!(publish("a").await, "created");
    // The store's watch is refused once, and said so once.
    wait_for(Duration::from_secs(30), || async {
        (log.count(REFUSED) > 0).then_some(())
    })
    .await
    .expect("a warning that Secrets may not be listed and watched");
    for _ in 0..3 {
        let found = secret_store::lookup(&client, &ns, &target.name)
            .await
            .expect("a GET is allowed");
        assert!(!found.cached, "there is no store without list and watch");
        assert!(found.secret.is_some());
    }
    assert!(!publish("a").await, "unchanged: nothing written");
    assert!(publish("b").await, "changed: written");
    let written = Api::<Secret>::namespaced(admin.clone(), &ns)
        .get(&target.name)
        .await
        .expect("the Secret");
    assert_eq!(
        written.data.and_then(|mut d| d.remove("user")).map(|v| v.0),
        Some(b"b".to_vec())
    );
    assert_eq!(log.count(REFUSED), 1, "one warning, not one per read");
}
