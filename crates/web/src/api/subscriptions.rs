//! Write-back of a subscription's quantity ("adjust quantity") through the connection that
//! imported it, and the journal of the changes asked. A subscription another connection imported
//! is not found here: the connection in the path is the one the caller was granted.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use deskbridge_core::RecordId;
use deskbridge_store::{Connection, Entity, SubscriptionChange};
use serde::Deserialize;
use serde_json::{Value, json};

use super::parse_body;
use crate::AppState;
use crate::access::{Caller, Scope};
use crate::error::{ApiError, ApiResult};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuantityBody {
    pub quantity: i64,
}

/// The desk subscription `id`, which must be one `connection` imported.
async fn own_subscription(state: &AppState, connection: &Connection, id: &str) -> ApiResult<RecordId> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::invalid(format!("{id:?} is not a subscription id")))?;
    let mut tx = state.store.read().await?;
    let record = tx.get(Entity::Subscription, RecordId(id)).await?;
    tx.commit().await?;
    match record {
        Some(record)
            if record
                .source
                .as_ref()
                .is_some_and(|s| s.connection_id == connection.id) =>
        {
            Ok(record.id)
        }
        _ => Err(ApiError::not_found(format!(
            "connection {:?} imported no subscription {id}",
            connection.name
        ))),
    }
}

/// Sets the seats of one of the connection's subscriptions at its source, as `who` asked.
pub(crate) async fn adjust_quantity(
    state: &AppState,
    connection: &Connection,
    subscription: &str,
    quantity: i64,
    who: &str,
) -> ApiResult<SubscriptionChange> {
    let id = own_subscription(state, connection, subscription).await?;
    Ok(deskbridge_sync::set_subscription_quantity(
        &state.store,
        &state.sources,
        id,
        quantity,
        who,
        &state.clock,
    )
    .await?)
}

/// The changes asked of one of the connection's subscriptions, newest first.
async fn changes_of(
    state: &AppState,
    connection: &Connection,
    subscription: &str,
) -> ApiResult<Vec<SubscriptionChange>> {
    let id = own_subscription(state, connection, subscription).await?;
    let mut tx = state.store.read().await?;
    let changes = tx.subscription_changes(id, 100).await?;
    tx.commit().await?;
    Ok(changes)
}

pub(super) async fn set_quantity(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Extension(caller): Extension<Caller>,
    Path((_, subscription)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: QuantityBody = parse_body(&body)?;
    let change = adjust_quantity(
        &state,
        &scope.connection,
        &subscription,
        body.quantity,
        &caller.account.username,
    )
    .await?;
    Ok(Json(json!({ "change": change })))
}

pub(super) async fn list_changes(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path((_, subscription)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "changes": changes_of(&state, &scope.connection, &subscription).await? }),
    ))
}
