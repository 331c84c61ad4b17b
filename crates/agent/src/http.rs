//! The agent's HTTP endpoints: `/metrics` (Prometheus text) and `/healthz`. [`app`] returns an
//! axum router so the process serving it (`deskbridge serve`, `deskbridge worker
//! --metrics-listen`) can merge other routers (the web UI and API) into the same listener.
//!
//! `/metrics` tells how many runs, jobs and errors there are: with a token configured
//! ([`HttpState::metrics_token`]) it answers only `Authorization: Bearer <token>`; a listener
//! that must not show it at all uses [`health_only`].

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use deskbridge_core::ErrorCode;
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
    /// When set, `/metrics` answers only requests carrying `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
}

/// `/metrics` and `/healthz`.
pub fn app(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(state)
}

/// `/healthz` only; `/metrics` answers 404 with what to configure (the UI's listener when
/// metrics have no token, or are served on a listener of their own).
pub fn health_only(state: HttpState, remedy: &'static str) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/metrics",
            get(move || async move {
                error(
                    StatusCode::NOT_FOUND,
                    ErrorCode::NotFound,
                    "metrics are not served on this address",
                    remedy,
                )
            }),
        )
        .with_state(state)
}

fn error(status: StatusCode, code: ErrorCode, message: &str, remedy: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code.as_str(), "message": message, "remedy": remedy}})),
    )
        .into_response()
}

/// Compares in time independent of where the values differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn metrics(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    if let Some(expected) = state.metrics_token.as_deref() {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        if !same_secret(sent.as_bytes(), expected.as_bytes()) {
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                "/metrics needs the metrics token",
                "Send `Authorization: Bearer <token>` with the token given to deskbridge as --metrics-token-file or DESKBRIDGE_METRICS_TOKEN.",
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return response;
        }
    }
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
    // The peer's address reaches handlers (the sign-in limits count failures per address).
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    })
    .await
}
