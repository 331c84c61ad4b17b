//! A connection's schedules: listing, adding (an interval or a cron expression, in a time zone,
//! optionally within a daily window) and removing.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use deskbridge_core::ErrorCode;
use deskbridge_store::{Connection, WriteContext};
use serde::Deserialize;
use serde_json::{Value, json};

use super::parse_body;
use crate::AppState;
use crate::access::Scope;
use crate::error::{ApiError, ApiResult};

/// A schedule as an administrator gives it: an interval (`15m`) or a cron expression.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleBody {
    #[serde(default)]
    pub every: Option<String>,
    #[serde(default)]
    pub cron: Option<String>,
    #[serde(default)]
    pub time_zone: Option<String>,
    /// A daily window runs may start in, `HH:MM-HH:MM` in the time zone.
    #[serde(default)]
    pub window: Option<String>,
    #[serde(default)]
    pub entity: Option<String>,
}

/// The connection's schedules.
pub(crate) async fn schedules_of(
    state: &AppState,
    connection: &Connection,
) -> ApiResult<Vec<deskbridge_store::Schedule>> {
    let mut tx = state.store.read().await?;
    let all = tx.schedules().await?;
    tx.commit().await?;
    Ok(all
        .into_iter()
        .filter(|s| s.connection_id == connection.id)
        .collect())
}

pub(crate) async fn add_schedule(
    state: &AppState,
    connection: &Connection,
    body: ScheduleBody,
) -> ApiResult<deskbridge_store::ScheduleId> {
    let new = deskbridge_agent::schedule::new_schedule(
        &state.sources,
        connection,
        body.entity.as_deref().unwrap_or("directory"),
        body.every.as_deref(),
        body.cron.as_deref(),
        body.time_zone
            .as_deref()
            .filter(|z| !z.trim().is_empty())
            .unwrap_or("UTC"),
        body.window.as_deref(),
        state.clock.now(),
    )
    .map_err(|e| ApiError::invalid(e.to_string()).with_code(ErrorCode::InvalidSchedule))?;
    let mut tx = state.store.begin(WriteContext::manual()).await?;
    let id = tx.add_schedule(&new).await?;
    tx.commit().await?;
    Ok(id)
}

/// Removes one of the connection's schedules (a schedule of another connection is not found).
pub(crate) async fn remove_schedule(state: &AppState, connection: &Connection, id: i64) -> ApiResult<()> {
    if !schedules_of(state, connection)
        .await?
        .iter()
        .any(|s| s.id.0 == id)
    {
        return Err(ApiError::not_found(format!(
            "connection {:?} has no schedule {id}",
            connection.name
        )));
    }
    let mut tx = state.store.begin(WriteContext::manual()).await?;
    tx.remove_schedule(deskbridge_store::ScheduleId(id)).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn list_schedules(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "schedules": schedules_of(&state, &scope.connection).await? }),
    ))
}

pub(super) async fn add_schedule_route(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let body: ScheduleBody = parse_body(&body)?;
    let id = add_schedule(&state, &scope.connection, body).await?;
    let schedule = schedules_of(&state, &scope.connection)
        .await?
        .into_iter()
        .find(|s| s.id == id);
    Ok((StatusCode::CREATED, Json(json!({ "schedule": schedule }))))
}

pub(super) async fn remove_schedule_route(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path((_, schedule)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id: i64 = schedule
        .parse()
        .map_err(|_| ApiError::invalid(format!("{schedule:?} is not a schedule id")))?;
    remove_schedule(&state, &scope.connection, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
