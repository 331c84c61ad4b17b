//! The caller's own API tokens: listing, minting (the token is in the answer once; only its hash
//! is kept) and deleting.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use deskbridge_store::WriteContext;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{parse_body, parse_id};
use crate::AppState;
use crate::access::Caller;
use crate::auth;
use crate::error::{ApiError, ApiResult};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTokenBody {
    name: String,
    expires_in_days: Option<u32>,
}

pub(super) async fn list_tokens(
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

pub(super) async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<Response> {
    let body: NewTokenBody = parse_body(&body)?;
    let minted = mint_token(&state, &caller, &body.name, body.expires_in_days).await?;
    Ok((StatusCode::CREATED, Json(minted)).into_response())
}

pub(super) async fn delete_token(
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
