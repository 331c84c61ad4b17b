//! The sync agent's side of a connection: its configuration check, and its delta cursors (reset
//! so the next sync reads everything, or taken from now so it sees only later changes).

use axum::extract::State;
use axum::{Extension, Json};
use deskbridge_store::Connection;
use serde_json::{Value, json};

use crate::AppState;
use crate::access::Scope;
use crate::error::{ApiError, ApiResult};

/// The configuration check of the connection, by its source: each point passed or failed, with
/// the remedy.
pub(crate) async fn run_check(state: &AppState, connection: &Connection) -> deskbridge_source::CheckReport {
    deskbridge_sync::check_connection(
        &state.store,
        &state.sources,
        &connection.name,
        &state.sync_options.instance,
        &state.clock,
    )
    .await
}

pub(super) async fn check(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> ApiResult<Json<Value>> {
    let report = run_check(&state, &scope.connection).await;
    Ok(Json(serde_json::to_value(&report).map_err(ApiError::internal)?))
}

pub(super) async fn reset_cursors(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> ApiResult<Json<Value>> {
    let cleared = deskbridge_connector_entra::clear_deltas(&state.store, scope.connection.id).await?;
    Ok(Json(json!({ "cleared": cleared })))
}

/// "Get latest": delta links that start from now, so the next sync sees only later changes
/// without a full import.
pub(crate) async fn take_latest_cursors(state: &AppState, connection: &Connection) -> ApiResult<Value> {
    let status = deskbridge_connector_entra::reset_deltas(
        &state.store,
        &connection.name,
        deskbridge_connector_entra::DeltaReset::Latest,
        &state.clock,
    )
    .await?;
    serde_json::to_value(&status).map_err(ApiError::internal)
}

pub(super) async fn latest_cursors(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> ApiResult<Json<Value>> {
    Ok(Json(take_latest_cursors(&state, &scope.connection).await?))
}
