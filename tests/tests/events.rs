//! Tessera's events (`tessera_engine::scaffold::Recorder`) against the real kube-apiserver:
//! a repeated warning becomes a count on one Event, while transition events are
//! published without being kept in memory, so each one is an Event of its own.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;
use kube::runtime::events::{EventType, Reporter};
use serde_json::json;
use tessera_engine::scaffold::{self, Recorder};
use tessera_tests::{TestEnv, apply, namespace, unique, wait_for};

/// The events about ConfigMap `name` in `ns` with reason `reason`: (count of Event
/// objects, their series counts summed, 1 for an event without a series).
async fn events(client: &kube::Client, ns: &str, name: &str, reason: &str) -> (usize, i32) {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let list = api.list(&ListParams::default()).await.expect("list events");
    let ours: Vec<_> = list
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect();
    let seen = ours
        .iter()
        .map(|e| e.series.as_ref().map_or(1, |s| s.count))
        .sum();
    (ours.len(), seen)
}

#[tokio::test]
async fn warnings_are_counted_on_one_event_and_transitions_are_not_kept() {
    let env = TestEnv::load();
    let client = env.kube().await;
    let ns = namespace(&client, &unique("events")).await;
    let name = "subject";
    apply(
        &client,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": ns}}),
    )
    .await;
    let cm: ConfigMap = Api::namespaced(client.clone(), &ns)
        .get(name)
        .await
        .expect("read the ConfigMap");
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "tessera-test".into(),
            instance: None,
        },
    );
    for _ in 0..2 {
        scaffold::publish(
            &recorder,
            &cm,
            &(),
            EventType::Warning,
            "Failing",
            "it failed".into(),
        )
        .await;
        scaffold::publish(
            &recorder,
            &cm,
            &(),
            EventType::Normal,
            "Ready",
            "it is ready".into(),
        )
        .await;
    }

    // Both of each reason are recorded: as (Event objects, events counted).
    let recorded = |reason: &'static str| {
        let (client, ns) = (client.clone(), ns.clone());
        async move {
            wait_for(Duration::from_secs(30), || async {
                let seen = events(&client, &ns, name, reason).await;
                (seen.1 == 2).then_some(seen)
            })
            .await
            .unwrap_or_else(|_| panic!("both {reason} events are recorded"))
        }
    };
    assert_eq!(
        recorded("Failing").await,
        (1, 2),
        "a repeated warning is one Event counted twice"
    );
    let normal = recorded("Ready").await;
    assert_eq!(
        normal,
        (2, 2),
        "a transition event is not kept after it is published, so a second one is an Event of its own"
    );
}
