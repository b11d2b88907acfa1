//! One watch and one store for several controllers (`scaffold::SharedWatch`, which the
//! composite and claim controllers of an XRD share), against the real API server: every
//! subscriber gets every object the one watch applies or deletes, and one that subscribes
//! once the store is filled (a controller restarted by its supervisor) gets the whole store
//! first.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::discovery::ApiResource;
use serde_json::json;
use tessera_engine::scaffold::{Keep, SharedWatch};
use tessera_engine::stored::StoredObject;
use tessera_tests::{TestEnv, namespace, unique, wait_for};

/// A client of the test cluster that counts its watch requests of ConfigMaps.
async fn counting_watches(env: &TestEnv) -> (kube::Client, Arc<AtomicUsize>) {
    env.kube_counting(|req| {
        let uri = req.uri();
        uri.path().ends_with("/configmaps") && uri.query().is_some_and(|q| q.contains("watch=true"))
    })
    .await
}

async fn create(client: &kube::Client, ns: &str, name: &str, label: &str) {
    let map: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "test.tessera.dev/watch": label } },
        "data": { "key": "value" },
    }))
    .expect("ConfigMap");
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &map)
        .await
        .expect("create ConfigMap");
}

/// The name of the next object `events` delivers (within a minute).
async fn next_name(
    events: &mut (impl Stream<Item = Result<StoredObject, kube::runtime::watcher::Error>> + Unpin),
) -> String {
    let obj = tokio::time::timeout(Duration::from_secs(60), events.next())
        .await
        .expect("an object within a minute")
        .expect("the stream goes on")
        .expect("no watch error");
    use kube::ResourceExt;
    obj.name_any()
}

#[tokio::test]
async fn subscribers_share_one_watch_and_a_late_one_starts_from_the_whole_store() {
    let env = TestEnv::load();
    let client = env.kube().await;
    let ns = namespace(&client, &unique("shared-watch")).await;
    let label = unique("w");
    create(&client, &ns, "before", &label).await;

    let (counting, watches) = counting_watches(&env).await;
    let shared = SharedWatch::start(
        counting,
        ApiResource::erase::<ConfigMap>(&()),
        Some(&format!("test.tessera.dev/watch={label}")),
        Keep::default(),
    );
    let mut early = Box::pin(shared.subscribe());
    // Subscribed before the first list: the list's objects come as events.
    assert_eq!(next_name(&mut early).await, "before");

    let store = shared.store();
    wait_for(Duration::from_secs(60), || async {
        (store.state().len() == 1).then_some(())
    })
    .await
    .expect("the store holds the listed object");
    // Subscribed once the store is filled: the store's objects come first.
    let mut late = Box::pin(shared.subscribe());
    assert_eq!(next_name(&mut late).await, "before");

    create(&client, &ns, "after", &label).await;
    assert_eq!(next_name(&mut early).await, "after");
    assert_eq!(next_name(&mut late).await, "after");
    let stored = store.state();
    let mut names: Vec<_> = stored
        .iter()
        .map(|o| kube::ResourceExt::name_any(o.as_ref()))
        .collect();
    names.sort();
    assert_eq!(names, ["after", "before"], "the shared store holds both");

    // A deletion reaches the subscribers too (a claim being deleted waits for its
    // composite to be gone), once it has left the store.
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .delete("after", &Default::default())
        .await
        .expect("delete ConfigMap");
    assert_eq!(next_name(&mut early).await, "after");
    assert_eq!(next_name(&mut late).await, "after");
    assert_eq!(store.state().len(), 1, "the deleted object left the store");
    assert_eq!(
        watches.load(Ordering::SeqCst),
        1,
        "two subscribers, one watch request"
    );

    // Dropped, the watch stops and its subscribers' streams end.
    drop(shared);
    let end = tokio::time::timeout(Duration::from_secs(10), early.next())
        .await
        .expect("the stream ends once the watch is dropped");
    assert!(end.is_none(), "no more objects: {end:?}");
}
