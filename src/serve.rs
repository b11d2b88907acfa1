//! The controller's HTTP endpoints on `--metrics-addr`: `/metrics` (Prometheus text),
//! `/livez` (the process and its async runtime answer) and `/readyz` (every running
//! controller's cache holds its first full list; a standby replica, which runs no
//! controller, is ready too).

use std::net::SocketAddr;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tessera_engine::metrics;

/// The content type of the Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn metrics_text() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, PROMETHEUS_TEXT)],
        metrics::encode_text(),
    )
}

async fn livez() -> &'static str {
    "ok\n"
}

async fn readyz() -> (StatusCode, String) {
    let unsynced = metrics::unsynced_caches();
    if unsynced.is_empty() {
        (StatusCode::OK, "ok\n".into())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("caches not yet synced: {}\n", unsynced.join(", ")),
        )
    }
}

/// Binds `addr` (failing at once when it cannot) and serves the endpoints in a task for
/// the rest of the process.
pub async fn start(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("--metrics-addr {addr}: cannot listen: {e}"))?;
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz));
    tracing::info!(%addr, "serving /metrics, /livez and /readyz");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(())
}
