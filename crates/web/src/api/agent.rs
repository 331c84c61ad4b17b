//! The sync agent's side of a connection: its configuration check, and its delta cursors (reset
//! so the next sync reads everything, or taken from now so it sees only later changes).

use axum::extract::State;
use axum::{Extension, Json};
use deskbridge_store::Connection;
use serde_json::{Value, json};

use deskbridge_source::{CursorReport, CursorReset};

use super::connections::{source_of, working_source};
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

/// "Reset": forgets the connection's cursors, so the next sync reads everything. Returns how
/// many there were.
pub(crate) async fn clear_cursors(state: &AppState, connection: &Connection) -> ApiResult<u64> {
    Ok(deskbridge_source::clear_cursors(&state.store, connection.id).await?)
}

pub(super) async fn reset_cursors(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> ApiResult<Json<Value>> {
    let cleared = clear_cursors(&state, &scope.connection).await?;
    Ok(Json(json!({ "cleared": cleared })))
}

/// What the connection's connector says of its cursors.
pub(crate) async fn cursor_report(state: &AppState, connection: &Connection) -> ApiResult<CursorReport> {
    let cx = state.source_context();
    Ok(source_of(state, connection)?.cursors(&cx, connection).await?)
}

/// "Get latest": cursors that start from now, so the next sync sees only later changes without
/// reading everything (where the connector can). Returns the cursors' report.
pub(crate) async fn take_latest_cursors(state: &AppState, connection: &Connection) -> ApiResult<Value> {
    let cx = state.source_context();
    working_source(state, connection)?
        .reset_cursors(&cx, connection, CursorReset::Latest)
        .await?;
    Ok(cursor_report(state, connection).await?.json)
}

pub(super) async fn latest_cursors(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> ApiResult<Json<Value>> {
    Ok(Json(take_latest_cursors(&state, &scope.connection).await?))
}
