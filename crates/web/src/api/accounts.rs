//! Accounts (administrators only): listing, adding (with a one-time password, returned once),
//! changing role, rights or disabled state, and deleting. No one can demote, disable or delete
//! their own account.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use deskbridge_store::{Role, WriteContext};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{parse_body, parse_id};
use crate::AppState;
use crate::access::Caller;
use crate::auth;
use crate::error::{ApiError, ApiResult};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccountBody {
    username: String,
    role: Role,
    #[serde(default)]
    can_configure_connections: bool,
}

pub(super) async fn list_accounts(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let mut tx = state.store.read().await?;
    let accounts = tx.accounts().await?;
    tx.commit().await?;
    Ok(Json(json!({ "accounts": accounts })))
}

pub(super) async fn create_account(State(state): State<AppState>, body: Bytes) -> ApiResult<Response> {
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

pub(super) async fn edit_account(
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

pub(super) async fn delete_account(
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
