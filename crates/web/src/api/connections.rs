//! Connections: how one is shown (never a secret), listing those the caller may read, creating,
//! editing (secrets can be replaced, never read), deleting, testing, and starting delegated
//! sign-in with Microsoft.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use deskbridge_connector_entra::{
    AuthMethod, EntraSettings, NewCredential, NewEntraConnection, SECRET_CERTIFICATE, SECRET_CLIENT_SECRET,
    SyncMethod,
};
use deskbridge_core::{ConnectionId, ErrorCode};
use deskbridge_source::ConnectionSecrets;
use deskbridge_store::{Access, Connection, WriteContext};
use serde::Deserialize;
use serde_json::{Value, json};

use super::parse_body;
use super::runs::run_preview;
use crate::AppState;
use crate::access::{Caller, Scope};
use crate::error::{ApiError, ApiResult};

/// A connection as the API and UI show it: settings without the mapping, credential state
/// (kind and expiry), never a secret.
pub(crate) async fn connection_view(state: &AppState, c: &Connection, access: Access) -> ApiResult<Value> {
    let mut tx = state.store.read().await?;
    let secrets = ConnectionSecrets(c.id);
    let secret_expiry = secrets.expiry(&mut tx, SECRET_CLIENT_SECRET).await?;
    let cert_expiry = secrets.expiry(&mut tx, SECRET_CERTIFICATE).await?;
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
            ErrorCode::InvalidConfiguration,
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

pub(super) async fn list_connections(
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

pub(super) async fn create_connection(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<Response> {
    let body: NewConnectionBody = parse_body(&body)?;
    let connection = create(&state, &caller, body).await?;
    let view = connection_view(&state, &connection, Access::Modify).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

pub(super) async fn get_connection(
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
    let secrets = ConnectionSecrets(connection.id);
    let mut tx = state.store.begin(WriteContext::manual()).await?;
    match (non_empty(body.client_secret), non_empty(body.certificate_pem)) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "give client_secret or certificate_pem, not both",
            ));
        }
        (Some(secret), None) => {
            secrets
                .put(&mut tx, SECRET_CLIENT_SECRET, secret.trim(), expires)
                .await?;
            secrets.delete(&mut tx, SECRET_CERTIFICATE).await?;
            settings.auth = AuthMethod::ClientSecret;
        }
        (None, Some(pem)) => {
            // Refused now if it cannot sign; its own expiry is what the check shows.
            let not_after = deskbridge_connector_entra::certificate_expiry(&pem)
                .map_err(|e| ApiError::invalid(e.to_string()))?;
            secrets
                .put(&mut tx, SECRET_CERTIFICATE, &pem, Some(not_after))
                .await?;
            secrets.delete(&mut tx, SECRET_CLIENT_SECRET).await?;
            settings.auth = AuthMethod::Certificate;
        }
        (None, None) => {}
    }
    let config = serde_json::to_value(&settings).map_err(ApiError::internal)?;
    tx.update_connection_config(connection.id, &config).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn edit_connection(
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

pub(super) async fn delete_connection(
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

pub(super) async fn test_connection(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> Json<Value> {
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

pub(super) async fn authorize(
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
