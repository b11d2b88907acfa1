//! The store of the Secrets Tessera writes (`tessera_engine::secret_store`) against the real
//! kube-apiserver: it holds Tessera's Secrets only, connection Secrets are published from
//! it, and the API server refuses a write that names an old resourceVersion, which is what
//! keeps a write decided from an out-of-date copy from landing.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tessera_engine::api::common::{ConnectionDetails, SecretReference};
use tessera_engine::connection_secret::{self, Publish, SecretOwner};
use tessera_engine::secret_store;
use tessera_tests::{TestEnv, apply, namespace, unique, wait_for};

fn details(pairs: &[(&str, &str)]) -> ConnectionDetails {
    ConnectionDetails(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect(),
    )
}

async fn publish(
    client: &kube::Client,
    target: &SecretReference,
    details: &ConnectionDetails,
) -> bool {
    connection_secret::publish_owned(
        client,
        "tessera-test",
        SecretOwner {
            reference: None,
            name: "test",
            shard: None,
        },
        target,
        None,
        details,
        Publish::Always,
    )
    .await
    .expect("publish")
}

/// The value of `key` in the Secret `namespace/name`, read from the API server.
/// The store's copy of Tessera's Secret `namespace/name`, once the watch has delivered it.
async fn stored_copy(client: &kube::Client, namespace: &str, name: &str) -> std::sync::Arc<Secret> {
    wait_for(Duration::from_secs(60), || async {
        let found = secret_store::lookup(client, namespace, name)
            .await
            .expect("lookup");
        found.cached.then_some(found.secret)
    })
    .await
    .expect("the published Secret reaches the store")
    .expect("a Secret")
}

async fn value(client: &kube::Client, namespace: &str, name: &str, key: &str) -> Option<String> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .expect("get")?;
    let bytes = secret.data?.remove(key)?;
    Some(String::from_utf8(bytes.0).expect("UTF-8"))
}

#[tokio::test]
async fn tessera_secrets_are_served_from_the_store_and_others_from_the_api_server() {
    let env = TestEnv::load();
    let client = env.kube().await;
    let ns = namespace(&client, &unique("secret-store")).await;
    let theirs = unique("theirs");
    apply(
        &client,
        json!({ "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": &theirs, "namespace": &ns },
            "stringData": { "token": "not-tessera's" } }),
    )
    .await;
    let target = SecretReference {
        name: unique("conn"),
        namespace: ns.clone(),
    };
    assert!(publish(&client, &target, &details(&[("user", "a")])).await);

    // Once the watch has delivered it, Tessera's Secret is read from the store.
    let stored = stored_copy(&client, &ns, &target.name).await;
    assert_eq!(
        stored
            .data
            .as_ref()
            .and_then(|d| d.get("user"))
            .map(|v| v.0.clone()),
        Some(b"a".to_vec())
    );
    assert!(
        stored.metadata.managed_fields.is_none(),
        "the store keeps no managedFields"
    );

    // Someone else's Secret is never in the store: it is read from the API server.
    let found = secret_store::lookup(&client, &ns, &theirs)
        .await
        .expect("lookup");
    assert!(
        !found.cached,
        "a Secret without Tessera's label is not stored"
    );
    assert!(found.secret.is_some(), "it is read from the API server");
    let missing = secret_store::lookup(&client, &ns, "does-not-exist")
        .await
        .expect("lookup");
    assert!(!missing.cached && missing.secret.is_none());

    // Unchanged details are not written; a changed value is, from the stored copy.
    assert!(!publish(&client, &target, &details(&[("user", "a")])).await);
    assert!(publish(&client, &target, &details(&[("user", "b")])).await);
    assert_eq!(
        value(&client, &ns, &target.name, "user").await.as_deref(),
        Some("b")
    );
    // The store catches up; publishing the same value again writes nothing.
    wait_for(Duration::from_secs(60), || async {
        let found = secret_store::lookup(&client, &ns, &target.name)
            .await
            .expect("lookup");
        let user = found.secret?.data.as_ref()?.get("user")?.0.clone();
        (found.cached && user == b"b").then_some(())
    })
    .await
    .expect("the store sees the new value");
    assert!(!publish(&client, &target, &details(&[("user", "b")])).await);
}

#[tokio::test]
async fn a_secret_changed_behind_the_stored_copy_is_written_from_a_fresh_read() {
    let env = TestEnv::load();
    let client = env.kube().await;
    let ns = namespace(&client, &unique("secret-store")).await;
    let target = SecretReference {
        name: unique("conn"),
        namespace: ns.clone(),
    };
    assert!(publish(&client, &target, &details(&[("user", "a")])).await);
    let stored = stored_copy(&client, &ns, &target.name).await;
    let old_version = stored.metadata.resource_version.clone().expect("version");

    // Someone changes the Secret: an apply naming the version the stored copy had is
    // refused, so a write decided from that copy cannot land on what it did not see.
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let theirs = json!({ "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": &target.name, "namespace": &ns },
        "stringData": { "other": "theirs" } });
    api.patch(
        &target.name,
        &PatchParams::apply("someone-else"),
        &Patch::Apply(&theirs),
    )
    .await
    .expect("someone else's change");
    let conditional = json!({ "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": &target.name, "namespace": &ns, "resourceVersion": old_version },
        "stringData": { "user": "c" } });
    match api
        .patch(
            &target.name,
            &PatchParams::apply("tessera-test").force(),
            &Patch::Apply(&conditional),
        )
        .await
    {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 409, "{e:?}"),
        other => panic!("an apply naming an old resourceVersion was not refused: {other:?}"),
    }

    // publish_owned, whatever its copy says, ends with the value written and the other
    // writer's key kept.
    assert!(publish(&client, &target, &details(&[("user", "c")])).await);
    assert_eq!(
        value(&client, &ns, &target.name, "user").await.as_deref(),
        Some("c")
    );
    assert_eq!(
        value(&client, &ns, &target.name, "other").await.as_deref(),
        Some("theirs")
    );
}
