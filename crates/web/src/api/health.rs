//! The connections' health (`GET /api/v1/connections?sort=…&failing=true`) and the run history
//! of every connection the caller may read (`GET /api/v1/runs`): what the CLI's `connection
//! list` and `runs list` show, for the connections the caller is granted.

use axum::extract::{RawQuery, State};
use axum::{Extension, Json};
use deskbridge_agent::health::{ConnectionHealthView, SortKey, connection_health, run_seconds};
use deskbridge_core::ConnectionId;
use deskbridge_store::{Access, Connection, RunFilter, RunListing, RunStatus};
use serde::Deserialize;
use serde_json::{Value, json};

use super::parse_query;
use crate::AppState;
use crate::access::Caller;
use crate::error::{ApiError, ApiResult};

/// How the connection list is asked for.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct HealthQuery {
    /// `name` (default), `status` (worst first), `last-run` (newest first) or `errors`.
    pub sort: Option<String>,
    /// Only the connections that need someone (failed, open errors, held runs).
    pub failing: Option<String>,
}

impl HealthQuery {
    pub(crate) fn parse(raw: Option<String>) -> ApiResult<Self> {
        parse_query(raw)
    }

    pub(crate) fn sort(&self) -> ApiResult<SortKey> {
        match self.sort.as_deref().map(str::trim) {
            None | Some("") => Ok(SortKey::Name),
            Some(key) => key
                .parse()
                .map_err(|e: String| ApiError::invalid(format!("sort: {e}"))),
        }
    }

    pub(crate) fn failing(&self) -> ApiResult<bool> {
        match self.failing.as_deref().map(str::trim) {
            None | Some("" | "false" | "0") => Ok(false),
            Some("true" | "1" | "on") => Ok(true),
            Some(other) => Err(ApiError::invalid(format!(
                "failing: expected true or false, not {other:?}"
            ))),
        }
    }
}

/// The health of the connections the caller may read, with its access to each, sorted and
/// filtered as asked.
pub(crate) async fn visible_health(
    state: &AppState,
    caller: &Caller,
    query: &HealthQuery,
) -> ApiResult<Vec<(ConnectionHealthView, Connection, Access)>> {
    let sort = query.sort()?;
    let failing = query.failing()?;
    let visible = super::visible_connections(state, caller).await?;
    let connections: Vec<Connection> = visible.iter().map(|(c, _)| c.clone()).collect();
    let mut views = connection_health(&state.store, &state.sources, &connections, sort).await?;
    if failing {
        views.retain(ConnectionHealthView::needs_attention);
    }
    let mut by_id: std::collections::HashMap<ConnectionId, (Connection, Access)> =
        visible.into_iter().map(|(c, a)| (c.id, (c, a))).collect();
    Ok(views
        .into_iter()
        .filter_map(|v| {
            let (c, a) = by_id.remove(&v.id)?;
            Some((v, c, a))
        })
        .collect())
}

/// A run of the history as the API shows it: the run, its connection's name, the entity it
/// imported, how long it took and the job that queued it.
pub(crate) fn listing_json(listing: &RunListing, now: jiff::Timestamp) -> Value {
    let mut v = serde_json::to_value(listing).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "entity".into(),
            json!(deskbridge_sync::entity_of_run_kind(&listing.run.kind).as_str()),
        );
        obj.insert("duration_seconds".into(), json!(run_seconds(&listing.run, now)));
    }
    v
}

/// How the run history is asked for.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryQuery {
    /// Only this connection's runs (by name).
    pub connection: Option<String>,
    pub status: Option<String>,
    pub limit: Option<u32>,
}

/// The run history of the connections the caller may read (an administrator: every run).
pub(crate) async fn visible_history(
    state: &AppState,
    caller: &Caller,
    query: &HistoryQuery,
) -> ApiResult<Vec<RunListing>> {
    let status = match query.status.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            ApiError::invalid(format!(
                "status: {s:?} is not a run status; use one of: queued, running, succeeded, partial, failed, held, \
                 cancelled, interrupted"
            ))
        })?),
    };
    let visible = super::visible_connections(state, caller).await?;
    let connection = match query.connection.as_deref().map(str::trim) {
        None | Some("") => None,
        // A connection the caller may not read is one it cannot name: the same answer as none.
        Some(name) => Some(
            visible
                .iter()
                .find(|(c, _)| c.name == name)
                .map(|(c, _)| c.id)
                .ok_or_else(|| {
                    ApiError::not_found(format!("no connection named {name:?} that you may read"))
                })?,
        ),
    };
    let filter = RunFilter {
        connection,
        visible: (!caller.is_admin()).then(|| visible.iter().map(|(c, _)| c.id).collect()),
        status,
        limit: query.limit.unwrap_or(100).clamp(1, 1_000),
    };
    let mut tx = state.store.read().await?;
    let runs = tx.run_history(&filter).await?;
    tx.commit().await?;
    Ok(runs)
}

pub(super) async fn list_all_runs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let query: HistoryQuery = parse_query(query)?;
    let runs = visible_history(&state, &caller, &query).await?;
    let now = state.clock.now();
    let runs: Vec<Value> = runs.iter().map(|r| listing_json(r, now)).collect();
    Ok(Json(json!({ "runs": runs })))
}
