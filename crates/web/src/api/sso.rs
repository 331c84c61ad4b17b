//! Single sign-on (administrators only): the configuration (the client secret is write-only),
//! the tenants allowed by hand, and the Microsoft identity an account signs in with. The rules
//! are in [`crate::sso`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{parse_body, parse_id};
use crate::AppState;
use crate::error::ApiResult;
use crate::sso::{self, SsoChange};

async fn view_json(state: &AppState, headers: &HeaderMap) -> ApiResult<Json<Value>> {
    let view = sso::view(state, sso::callback_uri(state, headers)?).await?;
    Ok(Json(json!(view)))
}

pub(super) async fn get_sso(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    view_json(&state, &headers).await
}

pub(super) async fn patch_sso(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let change: SsoChange = parse_body(&body)?;
    sso::save(&state, change).await?;
    view_json(&state, &headers).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowBody {
    tenant_id: String,
    #[serde(default)]
    note: String,
}

pub(super) async fn allow_tenant(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let body: AllowBody = parse_body(&body)?;
    sso::allow(&state.store, &body.tenant_id, &body.note).await?;
    Ok((StatusCode::CREATED, view_json(&state, &headers).await?).into_response())
}

pub(super) async fn disallow_tenant(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> ApiResult<StatusCode> {
    sso::disallow(&state.store, &tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityBody {
    tenant_id: String,
    object_id: String,
}

pub(super) async fn link_identity(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id, "account")?;
    let body: IdentityBody = parse_body(&body)?;
    let account = sso::link(&state.store, id, Some((&body.tenant_id, &body.object_id))).await?;
    tracing::info!(account = %account.username, "an administrator linked an account to a Microsoft identity");
    Ok(Json(json!({ "account": account })))
}

pub(super) async fn unlink_identity(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id, "account")?;
    let account = sso::link(&state.store, id, None).await?;
    tracing::info!(account = %account.username, "an administrator unlinked an account's Microsoft identity");
    Ok(Json(json!({ "account": account })))
}
