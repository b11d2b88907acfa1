//! The finalizer branch against a client whose requests a function answers: which
//! branch runs, and which patches reach the API server.

use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::*;

const FIN: &str = "example.org/finalizer";

#[derive(Debug, thiserror::Error)]
enum TestError {
    #[error(transparent)]
    Finalizer(#[from] FinalizerError),
}

/// Requests seen as `METHOD path body`, answered with the object or a 404.
#[derive(Clone, Default)]
struct Server {
    requests: Arc<Mutex<Vec<String>>>,
    gone: bool,
}

impl Server {
    fn api(&self) -> Api<ConfigMap> {
        let server = self.clone();
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let server = server.clone();
            async move {
                let method = req.method().to_string();
                let path = req.uri().path().to_string();
                let body = req.into_body().collect_bytes().await.unwrap_or_default();
                let body = String::from_utf8_lossy(&body).to_string();
                server
                    .requests
                    .lock()
                    .unwrap()
                    .push(format!("{method} {path} {body}"));
                let (status, answer) = if server.gone {
                    (
                        404,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                               "reason": "NotFound", "code": 404, "message": "gone"}),
                    )
                } else {
                    (
                        200,
                        json!({"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "a", "namespace": "ns"}}),
                    )
                };
                let response = http::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(answer.to_string().into_bytes()))
                    .expect("response");
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        Api::namespaced(kube::Client::new(service, "ns"), "ns")
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn object(finalizers: &[&str], deleting: bool) -> Arc<ConfigMap> {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("a".into());
    cm.metadata.namespace = Some("ns".into());
    cm.metadata.finalizers = Some(finalizers.iter().map(|f| f.to_string()).collect());
    if deleting {
        cm.metadata.deletion_timestamp = Some(Time(Default::default()));
    }
    Arc::new(cm)
}

/// Runs the branch; returns the action, the event it ran (if any) and the requests.
async fn run(
    server: Server,
    obj: Arc<ConfigMap>,
    next: fn() -> Next,
) -> (Result<Action, TestError>, Option<&'static str>, Vec<String>) {
    let ran = Mutex::new(None);
    let result = finalizer(&server.api(), FIN, obj, |event| {
        *ran.lock().unwrap() = Some(match event {
            Event::Apply(_) => "apply",
            Event::Cleanup(_) => "cleanup",
        });
        async move { Ok::<_, TestError>(next()) }
    })
    .await;
    let ran = *ran.lock().unwrap();
    (result, ran, server.requests())
}

fn patch_ops(request: &str) -> Value {
    let body = request.splitn(3, ' ').nth(2).unwrap_or_default();
    serde_json::from_str(body).unwrap_or(Value::Null)
}

fn requeue() -> Next {
    Next::Requeue(Action::requeue(std::time::Duration::from_secs(7)))
}

#[tokio::test]
async fn a_live_object_gets_the_finalizer_and_is_applied_in_the_same_pass() {
    let (result, ran, requests) = run(Server::default(), object(&["other"], false), requeue).await;
    assert_eq!(ran, Some("apply"));
    assert_eq!(
        result.expect("ok"),
        Action::requeue(std::time::Duration::from_secs(7))
    );
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].starts_with("PATCH /api/v1/namespaces/ns/configmaps/a "));
    assert_eq!(
        patch_ops(&requests[0]),
        json!([
            { "op": "test", "path": "/metadata/finalizers", "value": ["other"] },
            { "op": "add", "path": "/metadata/finalizers/-", "value": FIN },
        ]),
        "the add tests the list, so someone else's finalizer is never dropped"
    );
}

#[tokio::test]
async fn an_object_that_has_the_finalizer_is_applied_without_writes() {
    let (_, ran, requests) = run(Server::default(), object(&[FIN], false), requeue).await;
    assert_eq!(ran, Some("apply"));
    assert!(requests.is_empty(), "{requests:?}");
}

#[tokio::test]
async fn cleanup_keeps_the_finalizer_until_it_says_release() {
    let (result, ran, requests) = run(Server::default(), object(&[FIN], true), requeue).await;
    assert_eq!(ran, Some("cleanup"));
    assert!(result.is_ok());
    assert!(requests.is_empty(), "{requests:?}");

    let (result, ran, requests) = run(Server::default(), object(&["other", FIN], true), || {
        Next::Release
    })
    .await;
    assert_eq!(ran, Some("cleanup"));
    assert_eq!(result.expect("ok"), Action::await_change());
    assert_eq!(
        patch_ops(&requests[0]),
        json!([
            { "op": "test", "path": "/metadata/finalizers/1", "value": FIN },
            { "op": "remove", "path": "/metadata/finalizers/1" },
        ])
    );
}

#[tokio::test]
async fn an_object_deleted_without_the_finalizer_is_left_alone() {
    let (result, ran, requests) = run(Server::default(), object(&[], true), requeue).await;
    assert_eq!(ran, None);
    assert_eq!(result.expect("ok"), Action::await_change());
    assert!(requests.is_empty(), "{requests:?}");
}

#[tokio::test]
async fn an_object_gone_since_the_cache_saw_it_is_not_an_error() {
    let gone = Server {
        gone: true,
        ..Server::default()
    };
    let (result, ran, _) = run(gone.clone(), object(&[], false), requeue).await;
    assert_eq!(ran, None, "nothing to apply for an object that is gone");
    assert_eq!(result.expect("ok"), Action::await_change());

    let (result, ran, _) = run(gone, object(&[FIN], true), || Next::Release).await;
    assert_eq!(ran, Some("cleanup"));
    assert_eq!(result.expect("ok"), Action::await_change());
}
