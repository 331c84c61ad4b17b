//! The JSON API under `/api/v1`. Access is already checked when a handler runs (see
//! [`crate::access`]); handlers find the caller and the connection in the request's extensions.
//! Bodies and queries are parsed here so that a bad one gets the API's error shape.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use deskbridge_connector_entra::{
    AuthMethod, EntraSettings, NewCredential, NewEntraConnection, SECRET_CERTIFICATE, SECRET_CLIENT_SECRET,
    SyncMethod,
};
use deskbridge_core::{ConnectionId, RecordId, RunId};
use deskbridge_mapping::MappingConfig;
use deskbridge_store::{
    Access, Connection, DirectoryFilter, Entity, LogFilter, LogKind, Role, RunStatus, SecretRef, WriteContext,
};
use deskbridge_sync::SyncOptions;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::AppState;
use crate::access::{Caller, Scope};
use crate::auth;
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/me", get(me))
        .route(
            "/api/v1/connections",
            get(list_connections).post(create_connection),
        )
        .route(
            "/api/v1/connections/{id}",
            get(get_connection)
                .patch(edit_connection)
                .delete(delete_connection),
        )
        .route("/api/v1/connections/{id}/test", post(test_connection))
        .route("/api/v1/connections/{id}/authorize", post(authorize))
        .route(
            "/api/v1/connections/{id}/mappings",
            get(get_mappings).put(put_mappings),
        )
        .route("/api/v1/connections/{id}/preview", post(preview))
        .route("/api/v1/connections/{id}/check", get(check))
        .route(
            "/api/v1/connections/{id}/schedules",
            get(list_schedules).post(add_schedule_route),
        )
        .route(
            "/api/v1/connections/{id}/schedules/{schedule}",
            axum::routing::delete(remove_schedule_route),
        )
        .route("/api/v1/connections/{id}/runs", get(list_runs).post(start_run))
        .route("/api/v1/connections/{id}/cursors/reset", post(reset_cursors))
        .route("/api/v1/connections/{id}/cursors/latest", post(latest_cursors))
        .route("/api/v1/connections/{id}/logs/{log}", get(connection_log))
        .route(
            "/api/v1/connections/{id}/directory/{kind}",
            get(connection_directory),
        )
        .route("/api/v1/connections/{id}/export", get(export))
        .route("/api/v1/connections/{id}/import", post(import))
        .route("/api/v1/connections/{id}/grants", get(list_grants))
        .route("/api/v1/connections/{id}/grants/{account_id}", put(set_grant))
        .route("/api/v1/runs/{run_id}", get(get_run))
        .route("/api/v1/runs/{run_id}/cancel", post(cancel_run))
        .route("/api/v1/runs/{run_id}/approve", post(approve_run))
        .route("/api/v1/logs/{log}", get(any_log))
        .route("/api/v1/directory/{kind}", get(directory))
        .route("/api/v1/accounts", get(list_accounts).post(create_account))
        .route(
            "/api/v1/accounts/{account_id}",
            axum::routing::patch(edit_account).delete(delete_account),
        )
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{token_id}", axum::routing::delete(delete_token))
}

// ---------------------------------------------------------------------- parsing helpers

pub(crate) fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.is_empty() {
        return serde_json::from_slice(b"{}")
            .map_err(|e| ApiError::invalid(format!("the request needs a JSON body: {e}")));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(format!("the JSON body is not valid: {e}")))
}

pub(crate) fn parse_query<T: DeserializeOwned>(raw: Option<String>) -> ApiResult<T> {
    serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::invalid(format!("the query is not valid: {e}")))
}

fn parse_id(text: &str, what: &str) -> ApiResult<i64> {
    text.parse()
        .map_err(|_| ApiError::not_found(format!("{text:?} is not a {what} id")))
}

// ---------------------------------------------------------------------- views

/// A connection as the API and UI show it: settings without the mapping, credential state
/// (kind and expiry), never a secret.
pub(crate) async fn connection_view(state: &AppState, c: &Connection, access: Access) -> ApiResult<Value> {
    let mut tx = state.store.read().await?;
    let secret_expiry = tx
        .secret_expiry(&SecretRef::new("connections", c.id, SECRET_CLIENT_SECRET))
        .await?;
    let cert_expiry = tx
        .secret_expiry(&SecretRef::new("connections", c.id, SECRET_CERTIFICATE))
        .await?;
    tx.commit().await?;
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
            "expires_at": secret_expiry.or(cert_expiry),
        },
        "access": access.as_str(),
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    }))
}

pub(crate) fn settings_of(c: &Connection) -> ApiResult<EntraSettings> {
    serde_json::from_value(c.config.clone()).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_configuration",
            format!(
                "connection {:?} has settings this version cannot read: {e}",
                c.name
            ),
        )
    })
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

// ---------------------------------------------------------------------- meta and accounts

async fn openapi() -> Response {
    Json(crate::openapi::document()).into_response()
}

async fn me(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> ApiResult<Json<Value>> {
    let mut tx = state.store.read().await?;
    let grants = tx.grants_of_account(caller.account.id).await?;
    tx.commit().await?;
    Ok(Json(json!({ "account": caller.account, "grants": grants })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccountBody {
    username: String,
    role: Role,
    #[serde(default)]
    can_configure_connections: bool,
}

async fn list_accounts(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let mut tx = state.store.read().await?;
    let accounts = tx.accounts().await?;
    tx.commit().await?;
    Ok(Json(json!({ "accounts": accounts })))
}

async fn create_account(State(state): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let body: NewAccountBody = parse_body(&body)?;
    let created = auth::create_account(
        &state.store,
        &body.username,
        body.role,
        body.can_configure_connections,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "account": created.account,
            "one_time_password": created.one_time_password,
        })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditAccountBody {
    role: Option<Role>,
    can_configure_connections: Option<bool>,
    disabled: Option<bool>,
}

async fn edit_account(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id, "account")?;
    let body: EditAccountBody = parse_body(&body)?;
    let mut tx = state.store.begin(WriteContext::manual()).await?;
    let account = tx
        .account(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no account {id}")))?;
    let role = body.role.unwrap_or(account.role);
    let disabled = body.disabled.unwrap_or(account.disabled);
    if id == caller.account.id && (role != Role::Administrator || disabled) {
        return Err(ApiError::conflict(
            "you cannot demote or disable your own account; another administrator can",
        ));
    }
    tx.update_account(
        id,
        role,
        body.can_configure_connections
            .unwrap_or(account.can_configure_connections),
        disabled,
    )
    .await?;
    let updated = tx.account(id).await?;
    tx.commit().await?;
    Ok(Json(json!({ "account": updated })))
}

async fn delete_account(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id, "account")?;
    if id == caller.account.id {
        return Err(ApiError::conflict("you cannot delete your own account"));
    }
    let mut tx = state.store.begin(WriteContext::manual()).await?;
    tx.delete_account(id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTokenBody {
    name: String,
    expires_in_days: Option<u32>,
}

async fn list_tokens(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    let mut tx = state.store.read().await?;
    let tokens = tx.api_tokens(caller.account.id).await?;
    tx.commit().await?;
    Ok(Json(json!({ "tokens": tokens })))
}

/// Mints an API token for the caller; the token is in the answer once and only its hash is kept.
pub(crate) async fn mint_token(
    state: &AppState,
    caller: &Caller,
    name: &str,
    days: Option<u32>,
) -> ApiResult<Value> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::invalid("give the token a name"));
    }
    let token = format!("{}{}", auth::API_TOKEN_PREFIX, auth::random_token(32));
    let expires = days.map(|d| state.clock.now() + jiff::SignedDuration::from_hours(24 * i64::from(d)));
    let mut tx = state.store.begin(WriteContext::manual()).await?;
    let stored = tx
        .create_api_token(caller.account.id, name, &auth::token_hash(&token), expires)
        .await?;
    tx.commit().await?;
    Ok(json!({ "token": token, "id": stored.id, "name": stored.name, "expires_at": stored.expires_at }))
}

async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<Response> {
    let body: NewTokenBody = parse_body(&body)?;
    let minted = mint_token(&state, &caller, &body.name, body.expires_in_days).await?;
    Ok((StatusCode::CREATED, Json(minted)).into_response())
}

async fn delete_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id, "token")?;
    let mut tx = state.store.begin(WriteContext::manual()).await?;
    let deleted = tx.delete_api_token(caller.account.id, id).await?;
    tx.commit().await?;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("you have no token {id}")))
    }
}

// ---------------------------------------------------------------------- connections

async fn list_connections(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    let mut out = Vec::new();
    for (c, access) in visible_connections(&state, &caller).await? {
        out.push(connection_view(&state, &c, access).await?);
    }
    Ok(Json(json!({ "connections": out })))
}

/// The body of a new Entra connection. Exactly one of `client_secret` and `certificate_pem`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewConnectionBody {
    pub name: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub certificate_pem: Option<String>,
    pub secret_expires_at: Option<String>,
    /// Delegated permissions: an administrator signs in (POST …/authorize) after creating it;
    /// `client_secret` is then the confidential app's secret, if it has one.
    #[serde(default)]
    pub delegated: bool,
    pub authority_host: Option<String>,
    pub graph_url: Option<String>,
    pub customer: Option<String>,
    pub enabled_instances: Option<String>,
    #[serde(default)]
    pub last_sign_in: bool,
}

fn parse_time(text: Option<&str>, what: &str) -> ApiResult<Option<jiff::Timestamp>> {
    text.filter(|t| !t.trim().is_empty())
        .map(|t| {
            t.trim()
                .parse::<jiff::Timestamp>()
                .map_err(|e| ApiError::invalid(format!("{what} {t:?} is not an RFC 3339 time: {e}")))
        })
        .transpose()
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|v| !v.trim().is_empty())
}

/// Creates a connection; an agent who creates one gets read and modify on it.
pub(crate) async fn create(
    state: &AppState,
    caller: &Caller,
    body: NewConnectionBody,
) -> ApiResult<Connection> {
    let credential = match (non_empty(body.client_secret), non_empty(body.certificate_pem)) {
        (secret, None) if body.delegated => NewCredential::Delegated {
            client_secret: secret.map(|s| s.trim().to_owned()),
            expires_at: parse_time(body.secret_expires_at.as_deref(), "secret_expires_at")?,
        },
        (Some(value), None) => NewCredential::ClientSecret {
            value: value.trim().to_owned(),
            expires_at: parse_time(body.secret_expires_at.as_deref(), "secret_expires_at")?,
        },
        (None, Some(pem)) => NewCredential::Certificate { pem },
        _ => {
            return Err(ApiError::invalid(
                "give exactly one credential: client_secret or certificate_pem",
            ));
        }
    };
    if body.name.trim().is_empty() {
        return Err(ApiError::invalid("the connection needs a name"));
    }
    let connection = deskbridge_connector_entra::add_entra_connection(
        &state.store,
        &NewEntraConnection {
            name: body.name.trim().to_owned(),
            tenant_id: body.tenant_id,
            client_id: body.client_id,
            credential,
            authority_host: non_empty(body.authority_host),
            graph_url: non_empty(body.graph_url),
            customer: non_empty(body.customer),
            enabled_instances: non_empty(body.enabled_instances),
            last_sign_in: body.last_sign_in,
        },
    )
    .await?;
    if !caller.is_admin() {
        let mut tx = state.store.begin(WriteContext::manual()).await?;
        tx.set_grant(caller.account.id, connection.id, Some(Access::Modify))
            .await?;
        tx.commit().await?;
    }
    Ok(connection)
}

async fn create_connection(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<Response> {
    let body: NewConnectionBody = parse_body(&body)?;
    let connection = create(&state, &caller, body).await?;
    let view = connection_view(&state, &connection, Access::Modify).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn get_connection(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        connection_view(&state, &scope.connection, scope.access).await?,
    ))
}

/// A change to a connection. Absent fields stay as they are; secrets can be replaced, never read.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditConnectionBody {
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub certificate_pem: Option<String>,
    pub secret_expires_at: Option<String>,
    pub authority_host: Option<String>,
    pub graph_url: Option<String>,
    pub delta: Option<bool>,
    pub sync_method: Option<SyncMethod>,
    pub last_sign_in: Option<bool>,
}

fn check_url(what: &str, value: &str) -> ApiResult<String> {
    match url::Url::parse(value.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(value.trim().trim_end_matches('/').to_owned()),
        _ => Err(ApiError::invalid(format!(
            "{what} must be an http(s) URL, not {value:?}"
        ))),
    }
}

pub(crate) async fn edit(
    state: &AppState,
    connection: &Connection,
    body: EditConnectionBody,
) -> ApiResult<()> {
    let mut settings = settings_of(connection)?;
    if let Some(t) = non_empty(body.tenant_id) {
        settings.tenant_id = t.trim().to_owned();
    }
    if let Some(c) = non_empty(body.client_id) {
        settings.client_id = c.trim().to_owned();
    }
    if let Some(a) = non_empty(body.authority_host) {
        settings.authority_host = check_url("authority_host", &a)?;
    }
    if let Some(g) = non_empty(body.graph_url) {
        settings.graph_url = check_url("graph_url", &g)?;
    }
    if let Some(d) = body.delta {
        settings.delta = d;
    }
    if let Some(m) = body.sync_method {
        settings.sync_method = m;
    }
    if let Some(l) = body.last_sign_in {
        settings.last_sign_in = l;
    }
    let expires = parse_time(body.secret_expires_at.as_deref(), "secret_expires_at")?;
    let mut tx = state.store.begin(WriteContext::manual()).await?;
    match (non_empty(body.client_secret), non_empty(body.certificate_pem)) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "give client_secret or certificate_pem, not both",
            ));
        }
        (Some(secret), None) => {
            tx.put_secret(
                &SecretRef::new("connections", connection.id, SECRET_CLIENT_SECRET),
                secret.trim(),
                expires,
            )
            .await?;
            tx.delete_secret(&SecretRef::new("connections", connection.id, SECRET_CERTIFICATE))
                .await?;
            settings.auth = AuthMethod::ClientSecret;
        }
        (None, Some(pem)) => {
            tx.put_secret(
                &SecretRef::new("connections", connection.id, SECRET_CERTIFICATE),
                &pem,
                expires,
            )
            .await?;
            tx.delete_secret(&SecretRef::new(
                "connections",
                connection.id,
                SECRET_CLIENT_SECRET,
            ))
            .await?;
            settings.auth = AuthMethod::Certificate;
        }
        (None, None) => {}
    }
    let config = serde_json::to_value(&settings).map_err(ApiError::internal)?;
    tx.update_connection_config(connection.id, &config).await?;
    tx.commit().await?;
    Ok(())
}

async fn edit_connection(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: EditConnectionBody = parse_body(&body)?;
    edit(&state, &scope.connection, body).await?;
    let mut tx = state.store.read().await?;
    let updated = tx
        .connection(scope.connection.id)
        .await?
        .ok_or_else(|| ApiError::not_found("the connection was deleted meanwhile"))?;
    tx.commit().await?;
    Ok(Json(connection_view(&state, &updated, scope.access).await?))
}

pub(crate) async fn delete(state: &AppState, id: ConnectionId) -> ApiResult<()> {
    let mut tx = state.store.begin(WriteContext::manual()).await?;
    tx.delete_connection(id).await?;
    tx.commit().await?;
    Ok(())
}

async fn delete_connection(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> ApiResult<StatusCode> {
    delete(&state, scope.connection.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Tests credentials, permissions and mappings by planning a sync (nothing is written): what
/// fails is reported with Microsoft's code and the remedy.
pub(crate) async fn test(state: &AppState, connection: &Connection) -> Value {
    match run_preview(state, connection).await {
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

async fn test_connection(State(state): State<AppState>, Extension(scope): Extension<Scope>) -> Json<Value> {
    Json(test(&state, &scope.connection).await)
}

/// Where Microsoft's sign-in comes back to: this site's callback, as the browser reached it.
pub(crate) fn callback_uri(state: &AppState, headers: &axum::http::HeaderMap) -> ApiResult<String> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| {
            ApiError::invalid("the request has no Host header to build the sign-in return address from")
        })?;
    let scheme = if state.secure_cookies { "https" } else { "http" };
    Ok(format!("{scheme}://{host}/auth/microsoft/callback"))
}

async fn authorize(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Json<Value>> {
    let redirect = callback_uri(&state, &headers)?;
    let pending = deskbridge_connector_entra::begin_delegated_authorization(
        &state.store,
        &scope.connection.name,
        &redirect,
        &state.clock,
    )
    .await?;
    Ok(Json(json!({ "url": pending.url, "redirect_uri": redirect })))
}

// ---------------------------------------------------------------------- mappings

async fn get_mappings(Extension(scope): Extension<Scope>) -> ApiResult<Json<Value>> {
    let settings = settings_of(&scope.connection)?;
    Ok(Json(
        serde_json::to_value(&settings.mapping).map_err(ApiError::internal)?,
    ))
}

pub(crate) async fn save_mappings(
    state: &AppState,
    connection: &Connection,
    mapping: MappingConfig,
) -> ApiResult<()> {
    deskbridge_sync::save_mappings(
        &state.store,
        &state.sources,
        &connection.name,
        mapping,
        &state.clock,
    )
    .await?;
    Ok(())
}

async fn put_mappings(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let mapping: MappingConfig = parse_body(&body)?;
    save_mappings(&state, &scope.connection, mapping.clone()).await?;
    Ok(Json(serde_json::to_value(&mapping).map_err(ApiError::internal)?))
}

// ---------------------------------------------------------------------- runs and previews

pub(crate) async fn run_preview(
    state: &AppState,
    connection: &Connection,
) -> ApiResult<deskbridge_sync::SyncOutcome> {
    let options = SyncOptions {
        plan_only: true,
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
    .map_err(|e| ApiError::invalid(e.to_string()).with_code("invalid_schedule"))?;
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

async fn list_schedules(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "schedules": schedules_of(&state, &scope.connection).await? }),
    ))
}

async fn add_schedule_route(
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

async fn remove_schedule_route(
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

async fn check(State(state): State<AppState>, Extension(scope): Extension<Scope>) -> ApiResult<Json<Value>> {
    let report = run_check(&state, &scope.connection).await;
    Ok(Json(serde_json::to_value(&report).map_err(ApiError::internal)?))
}

async fn preview(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> ApiResult<Json<Value>> {
    let outcome = run_preview(&state, &scope.connection).await?;
    Ok(Json(serde_json::to_value(&outcome).map_err(ApiError::internal)?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    limit: Option<u32>,
}

async fn list_runs(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let q: PageQuery = parse_query(query)?;
    let mut tx = state.store.read().await?;
    let runs = tx
        .runs(Some(scope.connection.id), q.limit.unwrap_or(50).clamp(1, 500))
        .await?;
    tx.commit().await?;
    Ok(Json(json!({ "runs": runs })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StartBody {
    #[serde(default)]
    full: bool,
}

async fn start_run(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> ApiResult<Response> {
    let body: StartBody = parse_body(&body)?;
    let started = state
        .runs
        .start(&state, &scope.connection, body.full, false)
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

async fn get_run(State(state): State<AppState>, Path(run_id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(run_view(&state, RunId(parse_id(&run_id, "run")?)).await?))
}

async fn cancel_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(run_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let run = RunId(parse_id(&run_id, "run")?);
    let cancelled = state.runs.cancel(&state, run, &caller.account.username).await?;
    if !cancelled {
        return Err(ApiError::conflict(format!("run {run} has already finished")).with_code("run_finished"));
    }
    Ok(Json(run_view(&state, run).await?))
}

/// Starts the sync that lets a held run's deactivations through.
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
                .with_code("run_not_held"),
        );
    }
    state.runs.start(state, &connection, false, true).await
}

async fn approve_run(
    State(state): State<AppState>,
    scope: Option<Extension<Scope>>,
    Path(run_id): Path<String>,
) -> ApiResult<Response> {
    let run = RunId(parse_id(&run_id, "run")?);
    let started = approve(&state, scope.as_ref().map(|s| &s.0), run).await?;
    Ok((StatusCode::ACCEPTED, Json(json!(started))).into_response())
}

async fn reset_cursors(
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

async fn latest_cursors(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> ApiResult<Json<Value>> {
    Ok(Json(take_latest_cursors(&state, &scope.connection).await?))
}

// ---------------------------------------------------------------------- logs and directory

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

async fn connection_log(
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

async fn any_log(
    State(state): State<AppState>,
    Path(log): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let kind = log_kind(&log)?;
    let q: LogQuery = parse_query(query)?;
    let connection = q.connection.map(ConnectionId);
    Ok(Json(log_page(&state, kind, &log_filter(q, connection)).await?))
}

/// The directory listings, by their plural name.
pub(crate) const DIRECTORY_KINDS: &[(&str, Entity)] = &[
    ("customers", Entity::Customer),
    ("sites", Entity::Site),
    ("users", Entity::User),
    ("agents", Entity::Agent),
    ("teams", Entity::Team),
    ("licences", Entity::Licence),
    ("assets", Entity::Asset),
];

pub(crate) fn directory_entity(kind: &str) -> ApiResult<Entity> {
    DIRECTORY_KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, e)| *e)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no directory listing {kind:?}: use customers, sites, users, agents, teams, licences or assets"
            ))
        })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct DirectoryQuery {
    pub q: Option<String>,
    pub after: Option<i64>,
    pub limit: Option<u32>,
}

pub(crate) async fn directory_page(
    state: &AppState,
    entity: Entity,
    q: DirectoryQuery,
    connection: Option<&Connection>,
) -> ApiResult<Value> {
    let customer = connection
        .and_then(|c| settings_of(c).ok())
        .map(|s| s.customer_id);
    let filter = DirectoryFilter {
        connection: connection.map(|c| c.id),
        customer,
        search: q.q,
        after: q.after.map(RecordId),
        limit: q.limit.unwrap_or(50).clamp(1, 500),
    };
    let mut tx = state.store.read().await?;
    let records = tx.directory_page(entity, &filter).await?;
    tx.commit().await?;
    let next = if records.len() == filter.limit as usize {
        records.last().map(|r| r.id.0)
    } else {
        None
    };
    let items: Vec<Value> = records.iter().map(deskbridge_store::Record::to_json).collect();
    Ok(json!({ "items": items, "next_after": next }))
}

async fn connection_directory(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path((_, kind)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let entity = directory_entity(&kind)?;
    let q: DirectoryQuery = parse_query(query)?;
    Ok(Json(
        directory_page(&state, entity, q, Some(&scope.connection)).await?,
    ))
}

async fn directory(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let entity = directory_entity(&kind)?;
    let q: DirectoryQuery = parse_query(query)?;
    Ok(Json(directory_page(&state, entity, q, None).await?))
}

// ---------------------------------------------------------------------- export / import

/// The exported file's format version.
pub const EXPORT_VERSION: u32 = 1;

/// A connection's configuration as a readable file: settings and mappings, never a secret.
pub(crate) async fn export_document(state: &AppState, connection: &Connection) -> ApiResult<Value> {
    let settings = settings_of(connection)?;
    let mut tx = state.store.read().await?;
    let customer = tx.get(Entity::Customer, settings.customer_id).await?;
    tx.commit().await?;
    Ok(json!({
        "deskbridge_export": EXPORT_VERSION,
        "name": connection.name,
        "kind": connection.kind,
        "enabled_instances": connection.enabled_instances,
        "customer": customer.as_ref().and_then(|c| c.text("name")),
        "settings": {
            "tenant_id": settings.tenant_id,
            "client_id": settings.client_id,
            "auth": settings.auth,
            "authority_host": settings.authority_host,
            "graph_url": settings.graph_url,
            "delta": settings.delta,
            "sync_method": settings.sync_method,
            "last_sign_in": settings.last_sign_in,
        },
        "mapping": settings.mapping,
    }))
}

async fn export(State(state): State<AppState>, Extension(scope): Extension<Scope>) -> ApiResult<Response> {
    let doc = export_document(&state, &scope.connection).await?;
    let text = serde_json::to_string_pretty(&doc).map_err(ApiError::internal)?;
    let disposition = format!(
        "attachment; filename=\"{}.deskbridge.json\"",
        scope
            .connection
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            })
            .collect::<String>()
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        text,
    )
        .into_response())
}

#[derive(Deserialize)]
struct ImportSettings {
    tenant_id: Option<String>,
    client_id: Option<String>,
    authority_host: Option<String>,
    graph_url: Option<String>,
    delta: Option<bool>,
    sync_method: Option<SyncMethod>,
    last_sign_in: Option<bool>,
}

#[derive(Deserialize)]
struct ImportDocument {
    deskbridge_export: u32,
    kind: String,
    settings: Option<ImportSettings>,
    mapping: MappingConfig,
}

/// Applies an exported file to an existing connection: its mappings (validated first, so a bad
/// file changes nothing) and its settings. Secrets are not in the file and stay as they are.
pub(crate) async fn import_document(
    state: &AppState,
    connection: &Connection,
    bytes: &[u8],
) -> ApiResult<()> {
    let doc: ImportDocument = parse_body(bytes)?;
    if doc.deskbridge_export != EXPORT_VERSION {
        return Err(ApiError::invalid(format!(
            "the file has export version {}, this deskbridge reads version {EXPORT_VERSION}",
            doc.deskbridge_export
        )));
    }
    if doc.kind != connection.kind {
        return Err(ApiError::invalid(format!(
            "the file is of a {} connection, this is a {} connection",
            doc.kind, connection.kind
        )));
    }
    save_mappings(state, connection, doc.mapping).await?;
    if let Some(s) = doc.settings {
        let mut tx = state.store.read().await?;
        let current = tx
            .connection(connection.id)
            .await?
            .ok_or_else(|| ApiError::not_found("the connection was deleted meanwhile"))?;
        tx.commit().await?;
        edit(
            state,
            &current,
            EditConnectionBody {
                tenant_id: s.tenant_id,
                client_id: s.client_id,
                authority_host: s.authority_host,
                graph_url: s.graph_url,
                delta: s.delta,
                sync_method: s.sync_method,
                last_sign_in: s.last_sign_in,
                ..EditConnectionBody::default()
            },
        )
        .await?;
    }
    Ok(())
}

async fn import(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    import_document(&state, &scope.connection, &body).await?;
    let mut tx = state.store.read().await?;
    let updated = tx
        .connection(scope.connection.id)
        .await?
        .ok_or_else(|| ApiError::not_found("the connection was deleted meanwhile"))?;
    tx.commit().await?;
    Ok(Json(export_document(&state, &updated).await?))
}

// ---------------------------------------------------------------------- grants

async fn list_grants(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> ApiResult<Json<Value>> {
    let mut tx = state.store.read().await?;
    let grants = tx.grants_of_connection(scope.connection.id).await?;
    tx.commit().await?;
    Ok(Json(json!({ "grants": grants })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    /// "read", "modify", or null to revoke.
    access: Option<Access>,
}

pub(crate) async fn grant(
    state: &AppState,
    connection: ConnectionId,
    account_id: i64,
    access: Option<Access>,
) -> ApiResult<()> {
    let mut tx = state.store.begin(WriteContext::manual()).await?;
    let account = tx
        .account(account_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no account {account_id}")))?;
    if account.role == Role::Administrator {
        return Err(ApiError::invalid(format!(
            "{} is an administrator and has access to every connection",
            account.username
        )));
    }
    tx.set_grant(account_id, connection, access).await?;
    tx.commit().await?;
    Ok(())
}

async fn set_grant(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path((_, account_id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let account_id = parse_id(&account_id, "account")?;
    let body: GrantBody = parse_body(&body)?;
    grant(&state, scope.connection.id, account_id, body.access).await?;
    Ok(Json(
        json!({ "account_id": account_id, "connection_id": scope.connection.id, "access": body.access }),
    ))
}
