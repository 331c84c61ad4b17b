//! Which agents may read or modify a connection (administrators see every connection).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use deskbridge_core::ConnectionId;
use deskbridge_store::{Access, Role, WriteContext};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{parse_body, parse_id};
use crate::AppState;
use crate::access::Scope;
use crate::error::{ApiError, ApiResult};

pub(super) async fn list_grants(
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

pub(super) async fn set_grant(
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
