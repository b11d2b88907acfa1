//! No password or token the suite created ever reaches a controller log, an Event or the
//! status (conditions included) of any object. `scripts/test` runs this binary last, after
//! every other test; it reads what the others left (tests/src/audit.rs): the secret values
//! they recorded, the logs of every controller they ran, and the Events and objects still
//! in the cluster. Run alone, mid-suite, it checks what exists so far.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Event, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DynamicObject, GroupVersionKind, ListParams};
use kube::discovery::ApiResource;
use tessera_tests::TestEnv;
use tessera_tests::audit::{
    MIN_SECRET_LEN, is_secret_key, log_dir, record_secrets, recorded_secrets, state_dir,
};

/// The secret values: those recorded by the tests, the testenv's own credentials, and the
/// secret keys of every Secret still in the cluster (connection Secrets among them).
async fn secret_values(client: &kube::Client) -> BTreeSet<String> {
    let env_file = std::fs::read_to_string(state_dir().join("env")).expect("testenv env file");
    let from_env: Vec<String> = env_file
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| is_secret_key(k))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .collect();
    let secrets: Api<Secret> = Api::all(client.clone());
    let mut in_cluster = Vec::new();
    for s in secrets
        .list(&ListParams::default())
        .await
        .expect("list Secrets")
        .items
    {
        for (k, v) in s.data.unwrap_or_default() {
            if is_secret_key(&k) {
                in_cluster.push(String::from_utf8_lossy(&v.0).into_owned());
            }
        }
    }
    record_secrets(in_cluster.iter().map(String::as_str));
    let mut all: BTreeSet<String> = recorded_secrets().into_iter().collect();
    all.extend(from_env);
    all.retain(|v| v.len() >= MIN_SECRET_LEN);
    all
}

/// Every place a secret must not be: (where, text).
async fn haystacks(client: &kube::Client) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(log_dir())
        .expect("read the log dir")
        .flatten()
    {
        let text = std::fs::read(entry.path()).expect("read a controller log");
        out.push((
            entry.path().display().to_string(),
            String::from_utf8_lossy(&text).into_owned(),
        ));
    }
    let events: Api<Event> = Api::all(client.clone());
    for e in events
        .list(&ListParams::default())
        .await
        .expect("list Events")
        .items
    {
        let object = &e.involved_object;
        out.push((
            format!(
                "Event {} about {:?} {:?}/{:?}",
                e.metadata.name.unwrap_or_default(),
                object.kind,
                object.namespace,
                object.name
            ),
            format!(
                "{} {}",
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default()
            ),
        ));
    }
    // The status of every object of every custom kind (managed resources, ProviderConfigs,
    // composites, claims, XRDs, Compositions): conditions and everything else in status.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crds
        .list(&ListParams::default())
        .await
        .expect("list CRDs")
        .items
    {
        let spec = &crd.spec;
        let Some(version) = spec.versions.iter().find(|v| v.served) else {
            continue;
        };
        let gvk = GroupVersionKind::gvk(&spec.group, &version.name, &spec.names.kind);
        let ar = ApiResource::from_gvk_with_plural(&gvk, &spec.names.plural);
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let Ok(list) = api.list(&ListParams::default()).await else {
            continue; // a CRD being deleted
        };
        for o in list.items {
            if let Some(status) = o.data.get("status") {
                out.push((
                    format!(
                        "status of {} {}/{}",
                        spec.names.kind,
                        o.metadata.namespace.clone().unwrap_or_default(),
                        o.metadata.name.clone().unwrap_or_default()
                    ),
                    status.to_string(),
                ));
            }
        }
    }
    out
}

#[tokio::test]
async fn no_password_or_token_appears_in_controller_logs_events_or_status() {
    let env = TestEnv::load();
    let client = env.kube().await;
    let secrets = secret_values(&client).await;
    assert!(
        secrets.contains(env.get("POSTGRES_PASSWORD")),
        "the testenv's own passwords are searched for"
    );
    let haystacks = haystacks(&client).await;
    let logs = haystacks
        .iter()
        .filter(|(w, _)| w.ends_with(".log"))
        .count();
    let mut hits = Vec::new();
    for (place, text) in &haystacks {
        for s in &secrets {
            if text.contains(s.as_str()) {
                // Never print the value itself: say where, and which recorded value (by
                // length and first character) matched.
                hits.push(format!(
                    "{place}: a secret of {} bytes starting with {:?}",
                    s.len(),
                    s.chars().next().unwrap_or(' ')
                ));
            }
        }
    }
    eprintln!(
        "searched {} places ({logs} controller logs) for {} secret values",
        haystacks.len(),
        secrets.len()
    );
    assert!(hits.is_empty(), "secrets found:\n{}", hits.join("\n"));
}
