//! Accounts (administrators only): listing, adding (with a one-time password, returned once),
//! resetting a password (a new one-time password, returned once), changing role, rights or
//! disabled state, and deleting. No one can reset their own password (they change it), nor
//! demote, disable or delete their own account, and the last enabled administrator stays one.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use deskbridge_store::{Account, Role, SignInFailures, WriteContext};
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

/// Accounts with their sign-in state (see [`auth::accounts_with_sign_in_state`]).
pub(crate) async fn accounts_with_sign_in_state(
    state: &AppState,
) -> ApiResult<Vec<(Account, Option<SignInFailures>)>> {
    auth::accounts_with_sign_in_state(&state.store).await
}

pub(super) async fn list_accounts(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let accounts = accounts_with_sign_in_state(&state).await?;
    let accounts: Vec<Value> = accounts
        .iter()
        .map(|(a, f)| auth::account_json(a, f.as_ref()))
        .collect();
    Ok(Json(json!({ "accounts": accounts })))
}

/// Lifts an account's sign-in block (and forgets its failed sign-ins).
pub(super) async fn unlock_account(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id, "account")?;
    let mut tx = state.store.read().await?;
    let account = tx
        .account(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no account {id}")))?;
    tx.commit().await?;
    let unlocked = auth::unlock_account(&state.store, &account.username).await?;
    tracing::info!(account = %account.username, unlocked, "an administrator lifted a sign-in block");
    Ok(Json(
        json!({ "account": auth::account_json(&account, None), "unlocked": unlocked }),
    ))
}

/// Gives the account a new one-time password, returned once; its sessions end, and it must
/// choose its own password at its next sign-in.
pub(super) async fn reset_password(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id, "account")?;
    // A reset would sign the caller out: its own password changes with the current one.
    if id == caller.account.id {
        return Err(ApiError::conflict("you cannot reset your own password")
            .with_remedy("Change it on the account page (/account), with your current password."));
    }
    let reset = auth::reset_password(&state.store, id).await?;
    tracing::info!(account = %reset.account.username, "an administrator reset a password");
    Ok(Json(json!({
        "account": reset.account,
        "one_time_password": reset.one_time_password,
    })))
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
    if id == caller.account.id
        && (body.role.is_some_and(|r| r != Role::Administrator) || body.disabled == Some(true))
    {
        return Err(ApiError::conflict(
            "you cannot demote or disable your own account; another administrator can",
        ));
    }
    let updated = auth::change_account(
        &state.store,
        id,
        auth::AccountChange {
            role: body.role,
            can_configure_connections: body.can_configure_connections,
            disabled: body.disabled,
        },
    )
    .await?;
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
