//! Connections: how one is shown (never a secret), listing those the caller may read, creating,
//! editing (secrets can be replaced, never read), deleting, testing, and starting delegated
//! sign-in with Microsoft.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use deskbridge_source::CheckReport;
use deskbridge_source::settings::{
    Purpose, Setting, SettingValues, connection_name, credential_moved, enabled_instances, validate,
};
use deskbridge_source::{ConnectionSecrets, NewConnection, Source};
use deskbridge_store::{Access, Connection, WriteContext};
use deskbridge_sync::{ConnectionRemoval, NewConnectionCheck, check_new_connection, remove_connection};
use serde_json::{Map, Value, json};

use super::parse_body;
use super::runs::run_preview;
use crate::AppState;
use crate::access::{Caller, Scope};
use crate::error::{ApiError, ApiResult};

/// The connector of a connection, to show or change its settings (an error naming the kind if
/// this build has none).
pub(crate) fn source_of<'a>(
    state: &'a AppState,
    c: &Connection,
) -> ApiResult<&'a std::sync::Arc<dyn Source>> {
    Ok(state.sources.describe(c)?)
}

/// The connector of a connection, to work with it (sign in, reset cursors): its endpoints are
/// checked against the instance's endpoint policy first.
pub(crate) fn working_source<'a>(
    state: &'a AppState,
    c: &Connection,
) -> ApiResult<&'a std::sync::Arc<dyn Source>> {
    Ok(state.sources.source_of(c)?)
}

/// A connection as the API and UI show it: settings without the mapping, credential state
/// (authentication method, expiry of the sealed secret, whether a sign-in is done), never a
/// secret.
pub(crate) async fn connection_view(state: &AppState, c: &Connection, access: Access) -> ApiResult<Value> {
    let schema: &[Setting] = state.sources.get(&c.kind).map_or(&[], |s| s.settings());
    let mut tx = state.store.read().await?;
    let mut expires_at = None;
    for setting in schema.iter().filter(|s| s.is_secret()) {
        if let Some(at) = ConnectionSecrets(c.id).expiry(&mut tx, setting.key).await? {
            expires_at = Some(at);
            break;
        }
    }
    tx.commit().await?;
    let authorised = match state.sources.get(&c.kind).and_then(|s| s.sign_in()) {
        Some(sign_in) => sign_in.authorised(&state.store, c).await?,
        None => None,
    };
    let mut settings = c.config.clone();
    if let Some(obj) = settings.as_object_mut() {
        obj.remove("mapping");
    }
    Ok(json!({
        "id": c.id,
        "name": c.name,
        "kind": c.kind,
        "enabled_instances": c.enabled_instances,
        "settings": settings,
        "credential": {
            "kind": c.config.get("auth"),
            "expires_at": expires_at,
            "authorised": authorised,
        },
        "access": access.as_str(),
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    }))
}

/// The connections the caller may read, with its access to each.
pub(crate) async fn visible_connections(
    state: &AppState,
    caller: &Caller,
) -> ApiResult<Vec<(Connection, Access)>> {
    let mut tx = state.store.read().await?;
    let all = tx.connections().await?;
    let out = if caller.is_admin() {
        all.into_iter().map(|c| (c, Access::Modify)).collect()
    } else {
        let grants = tx.grants_of_account(caller.account.id).await?;
        all.into_iter()
            .filter_map(|c| {
                let g = grants.iter().find(|g| g.connection_id == c.id)?;
                Some((c, g.access))
            })
            .collect()
    };
    tx.commit().await?;
    Ok(out)
}

/// The connections the caller may read, each with its health (`?sort=name|status|last-run|errors`,
/// `?failing=true` for those that need someone).
pub(super) async fn list_connections(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let query = super::HealthQuery::parse(query)?;
    let mut out = Vec::new();
    for (health, c, access) in super::visible_health(&state, &caller, &query).await? {
        let mut view = connection_view(&state, &c, access).await?;
        view["health"] = serde_json::to_value(&health).map_err(ApiError::internal)?;
        out.push(view);
    }
    Ok(Json(json!({ "connections": out })))
}

/// Whether the caller may add a connection of `source`'s kind at all: a kind that attaches what
/// it finds to existing customers is an administrator's, since the rule that an agent's connection
/// starts a customer of its own cannot hold for it.
pub(crate) fn may_create(caller: &Caller, source: &dyn Source) -> ApiResult<()> {
    if caller.is_admin() || !source.attaches_existing_customers() {
        return Ok(());
    }
    Err(ApiError::new(
        deskbridge_core::ErrorCode::Forbidden,
        format!(
            "an administrator must add {} connections: they import every customer of the partner into the \
             existing desk customers, which an agent may not attach connections to; ask an administrator",
            source.label()
        ),
    ))
}

/// What creating a connection came to.
pub(crate) enum Created {
    /// Saved. With `check`: the check's report when it ran (it may hold warnings), or `None`
    /// when the connection must be authorised before it can be checked.
    Saved {
        connection: Connection,
        check: Option<Option<CheckReport>>,
    },
    /// The check asked for failed: nothing was saved.
    CheckFailed(CheckReport),
}

impl Created {
    /// What a failed check answers: the catalogue's error, whose message counts the failed
    /// points; the points themselves go beside it.
    pub(crate) fn check_error(report: &CheckReport) -> ApiError {
        let failed = report.points.iter().filter(|p| !p.ok).count();
        ApiError::new(
            deskbridge_core::ErrorCode::CheckFailed,
            format!(
                "{failed} of {} checks failed: nothing was saved",
                report.points.len()
            ),
        )
        .with_remedy("Do what the failed points say, then add the connection again.")
    }
}

/// A new connection as the API and the UI's form give it: the parts every kind has (`name`,
/// `kind` — `entra` when absent —, `customer`, `enabled_instances`, `check`) and the kind's
/// settings, checked against its description ([`Source::settings`]). With `"check": true` the
/// connection is checked first (the points of its configuration check) and saved only when no
/// required point fails.
pub(crate) async fn create(
    state: &AppState,
    caller: &Caller,
    mut body: Map<String, Value>,
) -> ApiResult<Created> {
    let check = match body.remove("check") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "check: expected true or false, not {other}"
            )));
        }
    };
    let mut take = |key: &str| -> ApiResult<Option<String>> {
        match body.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s).filter(|s| !s.trim().is_empty())),
            Some(other) => Err(ApiError::invalid(format!("{key}: expected text, not {other}"))),
        }
    };
    let kind = take("kind")?.unwrap_or_else(|| "entra".to_owned());
    let name = connection_name(&take("name")?.unwrap_or_default())?;
    let customer = take("customer")?.map(|c| c.trim().to_owned());
    let instances = enabled_instances(take("enabled_instances")?.as_deref())?;
    let source = state.sources.get(kind.trim()).ok_or_else(|| {
        let kinds: Vec<&str> = state.sources.kinds().collect();
        ApiError::invalid(format!(
            "kind: this deskbridge has no connector for {kind:?} (it has: {})",
            kinds.join(", ")
        ))
    })?;
    may_create(caller, source.as_ref())?;
    let settings = validate(
        source.settings(),
        &body,
        Purpose::Create,
        state.sources.endpoint_policy(),
    )?;
    if !caller.is_admin() {
        // Attaching a connection to an existing customer gives its reader that customer's data:
        // an administrator's act. An agent's connection starts a customer of its own.
        let customer_name = customer.clone().unwrap_or_else(|| name.clone());
        let mut tx = state.store.read().await?;
        let existing = tx
            .find_by_text(deskbridge_store::Entity::Customer, "name", &customer_name)
            .await?;
        tx.commit().await?;
        if !existing.is_empty() {
            return Err(ApiError::new(
                deskbridge_core::ErrorCode::Forbidden,
                format!(
                    "the desk customer {customer_name:?} exists already: only an administrator may add a \
                     connection to an existing customer; choose a new customer name, or ask an administrator"
                ),
            ));
        }
    }
    if let Some(tenant) = settings.text("tenant_id") {
        state
            .sources
            .refuse_tenant_read_elsewhere(&state.store, source.kind(), tenant)
            .await?;
    }
    let new = NewConnection {
        name,
        customer,
        enabled_instances: instances,
        settings,
    };
    let checked = if check {
        match check_new_connection(
            &state.store,
            source,
            new.clone(),
            &state.sync_options.instance,
            &state.clock,
        )
        .await?
        {
            NewConnectionCheck::Failed(report) => return Ok(Created::CheckFailed(report)),
            NewConnectionCheck::Passed(report) => Some(Some(report)),
            NewConnectionCheck::NeedsAuthorisation => Some(None),
        }
    } else {
        None
    };
    let connection = source.create(&state.store, new).await?;
    if !caller.is_admin() {
        let mut tx = state.store.begin(WriteContext::manual()).await?;
        tx.set_grant(caller.account.id, connection.id, Some(Access::Modify))
            .await?;
        tx.commit().await?;
    }
    Ok(Created::Saved {
        connection,
        check: checked,
    })
}

/// `POST /api/v1/connections`: 201 with the connection (and `check`: the report, or `null` when
/// it must be authorised first); a failed check answers `check_failed` with the `check` report
/// beside the error, and saves nothing.
pub(super) async fn create_connection(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<Response> {
    let body: Map<String, Value> = parse_body(&body)?;
    match create(&state, &caller, body).await? {
        Created::Saved { connection, check } => {
            let mut view = connection_view(&state, &connection, Access::Modify).await?;
            if let Some(report) = check {
                view["check"] = serde_json::to_value(&report).map_err(ApiError::internal)?;
            }
            Ok((StatusCode::CREATED, Json(view)).into_response())
        }
        Created::CheckFailed(report) => {
            let error = Created::check_error(&report);
            let mut body = error.body();
            body["check"] = serde_json::to_value(&report).map_err(ApiError::internal)?;
            Ok((error.status(), Json(body)).into_response())
        }
    }
}

pub(super) async fn get_connection(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        connection_view(&state, &scope.connection, scope.access).await?,
    ))
}

/// Changes a connection's settings: those given (absent or empty ones stay as they are), checked
/// against its kind's description. Secrets can be replaced, never read.
pub(crate) async fn edit(
    state: &AppState,
    caller: &Caller,
    connection: &Connection,
    body: Map<String, Value>,
) -> ApiResult<()> {
    let source = source_of(state, connection)?;
    let values = validate(
        source.settings(),
        &body,
        Purpose::Edit,
        state.sources.endpoint_policy(),
    )?;
    edit_values(state, caller, connection, values).await
}

/// Changes a connection's settings with values already validated. Its endpoints and its tenant
/// are part of its credential: only an administrator changes them, and the connector then drops
/// the stored credentials (they must be entered again).
pub(crate) async fn edit_values(
    state: &AppState,
    caller: &Caller,
    connection: &Connection,
    values: SettingValues,
) -> ApiResult<()> {
    if values.is_empty() {
        return Ok(());
    }
    let source = source_of(state, connection)?;
    if !caller.is_admin()
        && let Some(setting) = credential_moved(source.settings(), &connection.config, &values)
    {
        return Err(ApiError::new(
            deskbridge_core::ErrorCode::Forbidden,
            format!(
                "{}: only an administrator may change a connection's endpoints and tenant (its credential \
                 is sent to them); leave it as it is, or ask an administrator",
                setting.label
            ),
        ));
    }
    source_of(state, connection)?
        .edit(&state.store, connection, values)
        .await?;
    Ok(())
}

pub(super) async fn edit_connection(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: Map<String, Value> = parse_body(&body)?;
    edit(&state, &caller, &scope.connection, body).await?;
    let mut tx = state.store.read().await?;
    let updated = tx
        .connection(scope.connection.id)
        .await?
        .ok_or_else(|| ApiError::not_found("the connection was deleted meanwhile"))?;
    tx.commit().await?;
    Ok(Json(connection_view(&state, &updated, scope.access).await?))
}

/// Removes a connection, with the desk customer it created when that holds nothing else.
pub(crate) async fn delete(state: &AppState, connection: &Connection) -> ApiResult<ConnectionRemoval> {
    Ok(remove_connection(&state.store, connection).await?)
}

/// `DELETE /api/v1/connections/{id}`: `{removed_customers, kept_customers: [{name, holds}], notes}`.
pub(super) async fn delete_connection(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> ApiResult<Json<Value>> {
    let removal = delete(&state, &scope.connection).await?;
    let mut body = serde_json::to_value(&removal).map_err(ApiError::internal)?;
    body["notes"] = json!(removal.lines());
    Ok(Json(body))
}

/// Tests credentials, permissions and mappings by planning a sync (nothing is written): what
/// fails is reported with Microsoft's code and the remedy.
pub(crate) async fn test(state: &AppState, connection: &Connection) -> Value {
    match run_preview(state, connection, &crate::runs::RunRequest::default()).await {
        Ok(outcome) => json!({
            "ok": true,
            "detail": format!(
                "signed in and read the tenant: {} users and agents would be created, {} updated, {} deactivated",
                outcome.counts.created, outcome.counts.updated, outcome.counts.deactivated
            ),
        }),
        Err(e) => json!({ "ok": false, "error": e.body()["error"] }),
    }
}

pub(super) async fn test_connection(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> Json<Value> {
    Json(test(&state, &scope.connection).await)
}

/// Where Microsoft's sign-in comes back to: this site's callback, as the browser reached it.
pub(crate) fn callback_uri(state: &AppState, headers: &axum::http::HeaderMap) -> ApiResult<String> {
    site_uri(state, headers, "/auth/microsoft/callback")
}

/// The address of `path` on this site, as the browser reached it (for redirect URIs).
pub(crate) fn site_uri(state: &AppState, headers: &axum::http::HeaderMap, path: &str) -> ApiResult<String> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| {
            ApiError::invalid("the request has no Host header to build the sign-in return address from")
        })?;
    let scheme = if state.secure_cookies { "https" } else { "http" };
    Ok(format!("{scheme}://{host}{path}"))
}

/// Starts an interactive sign-in for the connection: the URL to send the browser to.
pub(crate) async fn begin_sign_in(
    state: &AppState,
    connection: &Connection,
    redirect: &str,
) -> ApiResult<String> {
    let sign_in = working_source(state, connection)?.sign_in().ok_or_else(|| {
        ApiError::invalid(format!(
            "a {} connection is not authorised by signing in",
            connection.kind
        ))
    })?;
    Ok(sign_in
        .begin(&state.store, connection, redirect, &state.clock)
        .await?)
}

/// Finishes a sign-in from Microsoft's redirect to this site: the connection it was for.
pub(crate) async fn complete_sign_in(state: &AppState, redirect: &str) -> ApiResult<Connection> {
    // A state or code that is not pending here is the browser's doing, not Microsoft's.
    let refused = |e: deskbridge_source::SyncError| match e {
        deskbridge_source::SyncError::Credential(message) => {
            ApiError::new(deskbridge_core::ErrorCode::InvalidSignIn, message)
        }
        other => ApiError::from(other),
    };
    let id = deskbridge_source::sign_in_connection(redirect).map_err(refused)?;
    let mut tx = state.store.read().await?;
    let connection = tx.connection(id).await?;
    tx.commit().await?;
    let unknown = || {
        ApiError::new(
            deskbridge_core::ErrorCode::InvalidSignIn,
            "this sign-in was not started here or has already been used: start the authorisation again",
        )
    };
    let connection = connection.ok_or_else(unknown)?;
    let sign_in = working_source(state, &connection)?
        .sign_in()
        .ok_or_else(unknown)?;
    sign_in
        .complete(&state.store, &connection, redirect, &state.clock)
        .await
        .map_err(refused)?;
    Ok(connection)
}

pub(super) async fn authorize(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Json<Value>> {
    let redirect = callback_uri(&state, &headers)?;
    let url = begin_sign_in(&state, &scope.connection, &redirect).await?;
    Ok(Json(json!({ "url": url, "redirect_uri": redirect })))
}
