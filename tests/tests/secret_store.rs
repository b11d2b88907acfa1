//! The store of the Secrets Tessera writes (`tessera_engine::secret_store`) against the real
//! kube-apiserver: it holds Tessera's Secrets only, connection Secrets are published from
//! it, and the API server refuses a write that names an old resourceVersion, which is what
//! keeps a write decided from an out-of-date copy from landing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tessera_engine::api::common::{ConnectionDetails, SecretReference};
use tessera_engine::connection_secret::{self, Publish, SecretOwner};
use tessera_engine::secret_store::{self, Stored};
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
    publish_when(client, target, details, Publish::Always).await
}

async fn publish_when(
    client: &kube::Client,
    target: &SecretReference,
    details: &ConnectionDetails,
    when: Publish,
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
        when,
    )
    .await
    .expect("publish")
}

/// A client of the test cluster that counts its GETs of Secret `name`.
async fn counting_gets(env: &TestEnv, name: &str) -> (kube::Client, Arc<AtomicUsize>) {
    let path = format!("/secrets/{name}");
    env.kube_counting(move |req| {
        req.method() == http::Method::GET && req.uri().path().ends_with(&path)
    })
    .await
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

/// Runs `read` until one run went from start to end with the store listed and without the
/// Secret `namespace/name`, and returns the GETs `gets` counted during that run. The
/// store's watch belongs to the runtime of the test that started it and stops when that
/// test ends (then starts again at the next read): a run meanwhile does not count.
async fn gets_while_absent<F, Fut>(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    gets: &AtomicUsize,
    read: F,
) -> usize
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let absent = || {
        matches!(
            secret_store::stored(client, namespace, name),
            Stored::Absent
        )
    };
    for _ in 0..600 {
        if !absent() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let before = gets.load(Ordering::SeqCst);
        read().await;
        if absent() {
            return gets.load(Ordering::SeqCst) - before;
        }
    }
    panic!("the store never stayed listed, without {namespace}/{name}, for one read");
}

#[tokio::test]
async fn a_secret_the_listed_store_lacks_is_not_read_while_it_may_not_be_created() {
    // A composite publishes its connection Secret with `IfExists` at every reconcile until
    // its resources are Ready: a Secret that does not exist yet must not cost a GET each
    // time. Once the details are complete the Secret is created, after one GET (someone
    // else's Secret of that name is never in the store).
    let env = TestEnv::load();
    let client = env.kube().await;
    let ns = namespace(&client, &unique("secret-absent")).await;
    let name = unique("conn");
    let target = SecretReference {
        name: name.clone(),
        namespace: ns.clone(),
    };
    let (counting, gets) = counting_gets(&env, &name).await;
    let incomplete = details(&[("endpoint", "db.example.org")]);

    let published = gets_while_absent(&client, &ns, &name, &gets, || async {
        assert!(
            !publish_when(&counting, &target, &incomplete, Publish::IfExists).await,
            "nothing is created before the details are complete"
        );
    })
    .await;
    assert_eq!(
        published, 0,
        "an IfExists publish read a Secret absent from the listed store from the API server"
    );
    // The same for a composite reading a composed resource's Secret before the resource
    // is Ready; once it is, the Secret is read from the API server.
    let not_expected = gets_while_absent(&client, &ns, &name, &gets, || async {
        let found = secret_store::lookup_expected(&counting, &ns, &name, false)
            .await
            .expect("lookup");
        assert!(found.secret.is_none());
    })
    .await;
    assert_eq!(
        not_expected, 0,
        "a Secret not expected yet and absent from the listed store was read with a GET"
    );
    let expected = gets_while_absent(&client, &ns, &name, &gets, || async {
        let found = secret_store::lookup_expected(&counting, &ns, &name, true)
            .await
            .expect("lookup");
        assert!(found.secret.is_none() && !found.cached);
    })
    .await;
    assert_eq!(
        expected, 1,
        "an expected Secret the store lacks is read with a GET"
    );
    assert!(
        Api::<Secret>::namespaced(client.clone(), &ns)
            .get_opt(&name)
            .await
            .expect("get")
            .is_none(),
        "an IfExists publish created the Secret"
    );

    // Complete details: created, after a GET.
    let before = gets.load(Ordering::SeqCst);
    let complete = details(&[("endpoint", "db.example.org"), ("password", "pw")]);
    assert!(publish_when(&counting, &target, &complete, Publish::Always).await);
    assert_eq!(
        gets.load(Ordering::SeqCst) - before,
        1,
        "a Secret about to be created is read from the API server first"
    );
    assert_eq!(
        value(&client, &ns, &name, "password").await.as_deref(),
        Some("pw")
    );
    // Once stored, an IfExists publish updates it.
    stored_copy(&client, &ns, &name).await;
    let changed = details(&[("endpoint", "db2.example.org"), ("password", "pw")]);
    assert!(publish_when(&counting, &target, &changed, Publish::IfExists).await);
    assert_eq!(
        value(&client, &ns, &name, "endpoint").await.as_deref(),
        Some("db2.example.org")
    );
}
