//! The inbound, outbound and error logs, of one connection or of all, newest first, a page at a
//! time.

use axum::extract::{Path, RawQuery, State};
use axum::{Extension, Json};
use deskbridge_core::{ConnectionId, RunId};
use deskbridge_store::{LogFilter, LogKind};
use serde::Deserialize;
use serde_json::{Value, json};

use super::parse_query;
use crate::AppState;
use crate::access::Scope;
use crate::error::{ApiError, ApiResult};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogQuery {
    pub run: Option<i64>,
    pub q: Option<String>,
    pub before: Option<i64>,
    pub limit: Option<u32>,
    pub connection: Option<i64>,
}

pub(crate) fn log_kind(name: &str) -> ApiResult<LogKind> {
    match name {
        "inbound" => Ok(LogKind::Inbound),
        "outbound" => Ok(LogKind::Outbound),
        "errors" => Ok(LogKind::Errors),
        other => Err(ApiError::not_found(format!(
            "no log {other:?}: use inbound, outbound or errors"
        ))),
    }
}

pub(crate) async fn log_page(state: &AppState, kind: LogKind, filter: &LogFilter) -> ApiResult<Value> {
    let mut tx = state.store.read().await?;
    let entries = tx.log_page(kind, filter).await?;
    tx.commit().await?;
    let next = if entries.len() == filter.limit as usize {
        entries.last().and_then(|e| e["id"].as_i64())
    } else {
        None
    };
    Ok(json!({ "entries": entries, "next_before": next }))
}

fn log_filter(q: LogQuery, connection: Option<ConnectionId>) -> LogFilter {
    LogFilter {
        connection,
        run: q.run.map(RunId),
        search: q.q,
        before: q.before,
        limit: q.limit.unwrap_or(50).clamp(1, 1000),
    }
}

pub(super) async fn connection_log(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path((_, log)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let kind = log_kind(&log)?;
    let q: LogQuery = parse_query(query)?;
    if q.connection.is_some() {
        return Err(ApiError::invalid("the connection is in the path"));
    }
    Ok(Json(
        log_page(&state, kind, &log_filter(q, Some(scope.connection.id))).await?,
    ))
}

pub(super) async fn any_log(
    State(state): State<AppState>,
    Path(log): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let kind = log_kind(&log)?;
    let q: LogQuery = parse_query(query)?;
    let connection = q.connection.map(ConnectionId);
    Ok(Json(log_page(&state, kind, &log_filter(q, connection)).await?))
}
