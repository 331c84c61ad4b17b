//! The agent's HTTP endpoints: `/metrics` (Prometheus text) and `/healthz`. [`app`] returns an
//! axum router so the process serving it (`deskbridge serve`, `deskbridge worker
//! --metrics-listen`) can merge other routers (the web UI and API) into the same listener.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use deskbridge_store::Store;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::{Metrics, labels};

/// What the endpoints read.
#[derive(Debug, Clone)]
pub struct HttpState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// Named in `/healthz` (the worker id, or "serve").
    pub process: String,
}

/// `/metrics` and `/healthz`.
pub fn app(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(state)
}

async fn metrics(State(state): State<HttpState>) -> Response {
    // Queue depth is the database's, read at scrape time: every process reports the same.
    match queue(&state.store).await {
        Ok(counts) => {
            for status in ["queued", "running"] {
                let n = counts.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
                state
                    .metrics
                    .set("deskbridge_jobs", labels(&[("status", status)]), n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the queue depth"),
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
        .into_response()
}

async fn queue(store: &Store) -> Result<Vec<(String, i64)>, deskbridge_store::StoreError> {
    let mut tx = store.read().await?;
    let counts = tx.job_counts().await?;
    tx.commit().await?;
    Ok(counts)
}

async fn healthz(State(state): State<HttpState>) -> Response {
    match queue(&state.store).await {
        Ok(_) => (
            StatusCode::OK,
            axum::Json(json!({"status": "ok", "process": state.process, "database": "ok"})),
        )
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({
                "status": "unavailable", "process": state.process, "database": e.to_string(),
                "remedy": "Check that the database is reachable from this process.",
            })),
        )
            .into_response(),
    }
}

/// Serves `router` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
        })
        .await
}
