//! Accounts (administrators only): listing, adding (with a one-time password, returned once),
//! changing role, rights or disabled state, and deleting. No one can demote, disable or delete
//! their own account.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use deskbridge_store::{Account, Role, SignInFailures, SignInSubject, WriteContext};
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

/// Accounts with their sign-in state: `locked_until` (RFC 3339, while failed sign-ins block the
/// account) and `failed_sign_ins` (failures in a row).
pub(crate) async fn accounts_with_sign_in_state(
    state: &AppState,
) -> ApiResult<Vec<(Account, Option<SignInFailures>)>> {
    let now = state.store.now();
    let mut tx = state.store.read().await?;
    let accounts = tx.accounts().await?;
    let mut out = Vec::with_capacity(accounts.len());
    for account in accounts {
        let failures = tx
            .sign_in_failures(SignInSubject::Account, &auth::account_key(&account.username))
            .await?
            .map(|mut f| {
                f.blocked_until = f.blocked_at(now).map(deskbridge_store::format_timestamp);
                f
            });
        out.push((account, failures));
    }
    tx.commit().await?;
    Ok(out)
}

fn account_json(account: &Account, failures: Option<&SignInFailures>) -> Value {
    let mut value = json!(account);
    value["locked_until"] = json!(failures.and_then(|f| f.blocked_until.clone()));
    value["failed_sign_ins"] = json!(failures.map_or(0, |f| f.failures));
    value
}

pub(super) async fn list_accounts(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let accounts = accounts_with_sign_in_state(&state).await?;
    let accounts: Vec<Value> = accounts
        .iter()
        .map(|(a, f)| account_json(a, f.as_ref()))
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
        json!({ "account": account_json(&account, None), "unlocked": unlocked }),
    ))
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
