//! Previews and runs: planning a sync without writing, a connection's runs, starting one, a
//! run's state and errors, cancelling a run and approving a held one.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use deskbridge_core::{ErrorCode, RunId};
use deskbridge_source::SyncEntity;
use deskbridge_store::{Connection, RunStatus};
use deskbridge_sync::SyncOptions;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{parse_body, parse_id, parse_query};
use crate::AppState;
use crate::access::{Caller, Scope};
use crate::error::{ApiError, ApiResult};
use crate::runs::RunRequest;

/// What a run of `connection` may import, from the name a caller gave (`None`: the directory),
/// with the one table mapping a custom-table run may be limited to: named by `table`, or in the
/// entity as schedules name it (`custom_tables:<desk table>`), and checked to be one of the
/// connection's table mappings. An unknown name, one the connection's kind does not import and a
/// table no mapping fills are the caller's mistake (400), said before anything is read.
fn entity_and_table(
    state: &AppState,
    connection: &Connection,
    name: Option<&str>,
    table: Option<&str>,
) -> ApiResult<(SyncEntity, Option<String>)> {
    let table = table.map(str::trim).filter(|t| !t.is_empty());
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        if let Some(table) = table {
            return Err(ApiError::invalid(format!(
                "table: {table:?} is named only with entity custom_tables"
            )));
        }
        return Ok((SyncEntity::Directory, None));
    };
    let (name, named_table) = match name.split_once(':') {
        Some((entity, table)) => (entity.trim(), Some(table.trim()).filter(|t| !t.is_empty())),
        None => (name, None),
    };
    let table = match (table, named_table) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::invalid(format!(
                "table: {a:?} and the entity's {b:?} differ; name the table once"
            )));
        }
        (a, b) => a.or(b).map(str::to_owned),
    };
    let entity = SyncEntity::parse(name).ok_or_else(|| {
        let known: Vec<&str> = SyncEntity::ALL.iter().map(|e| e.as_str()).collect();
        ApiError::invalid(format!(
            "entity: {name:?} is not something deskbridge imports; use one of: {}",
            known.join(", ")
        ))
    })?;
    let imports = super::source_of(state, connection)?.entities();
    if !imports.contains(&entity.as_str()) {
        return Err(ApiError::invalid(format!(
            "entity: a {} connection does not import {entity}; it imports: {}",
            connection.kind,
            imports.join(", ")
        )));
    }
    if let Some(table) = &table {
        if entity != SyncEntity::CustomTables {
            return Err(ApiError::invalid(format!(
                "table: {table:?} is named only with entity custom_tables, not {entity}"
            )));
        }
        let opened = super::source_of(state, connection)?.open(connection)?;
        let mapped: Vec<&str> = opened
            .mapping()
            .custom_tables
            .iter()
            .map(|t| t.desk_table.as_str())
            .collect();
        if !mapped.contains(&table.as_str()) {
            return Err(ApiError::invalid(format!(
                "table: no custom table mapping fills desk table {table:?}; the mapped desk tables are: {}",
                if mapped.is_empty() {
                    "none".to_owned()
                } else {
                    mapped.join(", ")
                }
            )));
        }
    }
    Ok((entity, table))
}

/// The run a caller asks for, checked: the entity as [`entity_and_table`] checks it, and the tenant,
/// when given, one of the connection's (so a run never names another customer's tenant).
pub(crate) fn run_request(
    state: &AppState,
    connection: &Connection,
    entity: Option<&str>,
    table: Option<&str>,
    tenant: Option<&str>,
    full: bool,
) -> ApiResult<RunRequest> {
    let (entity, table) = entity_and_table(state, connection, entity, table)?;
    let tenant = match tenant.map(str::trim).filter(|t| !t.is_empty()) {
        None => None,
        Some(wanted) => {
            let partitions = super::source_of(state, connection)?
                .open(connection)?
                .partitions();
            let found = partitions
                .iter()
                .find(|p| p.tenant_id.eq_ignore_ascii_case(wanted))
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "tenant: {wanted:?} is not one of this connection's tenants ({})",
                        partitions
                            .iter()
                            .map(|p| p.tenant_id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
            Some(found.tenant_id.clone())
        }
    };
    Ok(RunRequest {
        entity,
        tenant,
        full,
        table,
    })
}

pub(crate) async fn run_preview(
    state: &AppState,
    connection: &Connection,
    request: &RunRequest,
) -> ApiResult<deskbridge_sync::SyncOutcome> {
    let options = SyncOptions {
        entity: request.entity,
        tenant: request.tenant.clone(),
        table: request.table.clone(),
        plan_only: true,
        full: request.full,
        ..state.sync_options.clone()
    };
    Ok(deskbridge_sync::sync(
        &state.store,
        &state.sources,
        &connection.name,
        &options,
        &state.clock,
    )
    .await?)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PreviewBody {
    entity: Option<String>,
    /// Only this table mapping (by its desk table) of a custom-table run.
    table: Option<String>,
    /// Only this tenant of the connection.
    tenant: Option<String>,
    /// A full preview: read everything, as if there were no delta cursors (none moves).
    #[serde(default)]
    full: bool,
}

/// The actions a preview shows, from `?action=create,update` (every action when absent).
pub(crate) fn preview_actions(query: Option<&str>) -> ApiResult<Vec<deskbridge_mapping::Action>> {
    let mut actions = Vec::new();
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key == "action" {
            actions.extend(
                deskbridge_mapping::Action::parse_list(&value)
                    .map_err(|e| ApiError::invalid(format!("action: {e}")))?,
            );
        }
    }
    Ok(actions)
}

/// `POST /api/v1/connections/{id}/preview[?action=create,update]`: what an import would do,
/// written nowhere: the changes (each with its record's name), the counts, the summary (per
/// action, skips per reason, what a delta preview covers).
pub(super) async fn preview(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let actions = preview_actions(query.as_deref())?;
    // An empty body (as before entities existed) previews the directory.
    let body: PreviewBody = parse_body(&body)?;
    let request = run_request(
        &state,
        &scope.connection,
        body.entity.as_deref(),
        body.table.as_deref(),
        body.tenant.as_deref(),
        body.full,
    )?;
    let mut outcome = run_preview(&state, &scope.connection, &request).await?;
    outcome.retain_actions(&actions);
    Ok(Json(serde_json::to_value(&outcome).map_err(ApiError::internal)?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    limit: Option<u32>,
}

pub(super) async fn list_runs(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let q: PageQuery = parse_query(query)?;
    // The same rows as the history of every connection (`GET /api/v1/runs`, `runs list`).
    let mut tx = state.store.read().await?;
    let runs = tx
        .run_history(&deskbridge_store::RunFilter {
            connection: Some(scope.connection.id),
            limit: q.limit.unwrap_or(50).clamp(1, 500),
            ..deskbridge_store::RunFilter::default()
        })
        .await?;
    tx.commit().await?;
    let now = state.clock.now();
    let runs: Vec<Value> = runs.iter().map(|r| super::listing_json(r, now)).collect();
    Ok(Json(json!({ "runs": runs })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StartBody {
    #[serde(default)]
    full: bool,
    /// `directory` (when absent), `assets`, `customers`, `custom_tables` (or
    /// `custom_tables:<desk table>`), … as the connection's kind imports.
    entity: Option<String>,
    /// Only this table mapping (by its desk table) of a custom-table run.
    table: Option<String>,
    /// Only this tenant of the connection (a CSP customer tenant).
    tenant: Option<String>,
}

pub(super) async fn start_run(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> ApiResult<Response> {
    let body: StartBody = parse_body(&body)?;
    let request = run_request(
        &state,
        &scope.connection,
        body.entity.as_deref(),
        body.table.as_deref(),
        body.tenant.as_deref(),
        body.full,
    )?;
    let started = state
        .runs
        .start(&state, &scope.connection, &request, false)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!(started))).into_response())
}

pub(crate) async fn run_view(state: &AppState, run: RunId) -> ApiResult<Value> {
    let mut tx = state.store.read().await?;
    let row = tx
        .run(run)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run {run}")))?;
    let errors = tx.errors_for_run(run).await?;
    tx.commit().await?;
    let finished = !matches!(row.status, RunStatus::Running | RunStatus::Queued);
    Ok(json!({ "run": row, "errors": errors, "finished": finished }))
}

pub(super) async fn get_run(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(run_view(&state, RunId(parse_id(&run_id, "run")?)).await?))
}

pub(super) async fn cancel_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(run_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let run = RunId(parse_id(&run_id, "run")?);
    let cancelled = state.runs.cancel(&state, run, &caller.account.username).await?;
    if !cancelled {
        return Err(
            ApiError::conflict(format!("run {run} has already finished")).with_code(ErrorCode::RunFinished)
        );
    }
    Ok(Json(run_view(&state, run).await?))
}

/// Starts the sync that lets a held run's changes (mass deactivations, moves or field changes)
/// through.
pub(crate) async fn approve(
    state: &AppState,
    scope: Option<&Scope>,
    run: RunId,
) -> ApiResult<crate::runs::Started> {
    let mut tx = state.store.read().await?;
    let row = tx
        .run(run)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run {run}")))?;
    let connection = match (scope, row.connection_id) {
        (Some(s), _) => s.connection.clone(),
        (None, Some(c)) => tx
            .connection(c)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no connection {c}")))?,
        (None, None) => return Err(ApiError::invalid(format!("run {run} belongs to no connection"))),
    };
    tx.commit().await?;
    if row.status != RunStatus::Held {
        return Err(
            ApiError::conflict(format!("run {run} is {}, not held", row.status.as_str()))
                .with_code(ErrorCode::RunNotHeld),
        );
    }
    // The approving run imports what the held one did: approving a held asset run must not
    // start a directory run (which would find nothing held and apply nothing).
    let request = RunRequest {
        entity: deskbridge_sync::entity_of_run_kind(&row.kind),
        ..RunRequest::default()
    };
    state.runs.start(state, &connection, &request, true).await
}

pub(super) async fn approve_run(
    State(state): State<AppState>,
    scope: Option<Extension<Scope>>,
    Path(run_id): Path<String>,
) -> ApiResult<Response> {
    let run = RunId(parse_id(&run_id, "run")?);
    let started = approve(&state, scope.as_ref().map(|s| &s.0), run).await?;
    Ok((StatusCode::ACCEPTED, Json(json!(started))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_run_is_approved_as_the_entity_it_imported() {
        assert_eq!(deskbridge_sync::entity_of_run_kind("assets"), SyncEntity::Assets);
        assert_eq!(deskbridge_sync::entity_of_run_kind("sync"), SyncEntity::Directory);
        assert_eq!(deskbridge_sync::entity_of_run_kind("full"), SyncEntity::Directory);
        assert_eq!(
            deskbridge_sync::entity_of_run_kind("licences"),
            SyncEntity::Licences
        );
    }
}
