//! Distribution groups as ticket followers: the desk-wide setting (anyone signed in reads it, an
//! administrator changes it) and adding a group to a ticket's followers. The group is read
//! through a connection — the one named, or the desk's default — which the caller must be
//! granted: a group's members are that connection's data.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use deskbridge_core::{ConnectionId, RecordId};
use deskbridge_store::{Access, FollowerSettings, WriteContext};
use serde::Deserialize;
use serde_json::{Value, json};

use super::parse_body;
use crate::AppState;
use crate::access::{Caller, scope_for};
use crate::error::{ApiError, ApiResult};

/// The setting as the API and the settings page show it: the default connection by name.
async fn follower_settings_view(state: &AppState) -> ApiResult<Value> {
    let mut tx = state.store.read().await?;
    let settings = tx.follower_settings().await?;
    let default = match settings.default_connection {
        Some(id) => Some(match tx.connection(id).await? {
            Some(c) => json!({"id": c.id, "name": c.name}),
            None => json!({"id": id, "name": null, "removed": true}),
        }),
        None => None,
    };
    tx.commit().await?;
    Ok(json!({"enabled": settings.enabled, "default_connection": default}))
}

pub(super) async fn get_settings(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(follower_settings_view(&state).await?))
}

/// Changes the setting; the default connection must exist.
pub(crate) async fn save_follower_settings(
    state: &AppState,
    caller: &Caller,
    settings: FollowerSettings,
) -> ApiResult<()> {
    let mut tx = state.store.begin(WriteContext::manual()).await?;
    if let Some(id) = settings.default_connection
        && tx.connection(id).await?.is_none()
    {
        return Err(ApiError::invalid(format!(
            "default_connection: there is no connection {id}; nothing was saved"
        )));
    }
    tx.set_follower_settings(&settings, &caller.account.username)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn put_settings(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let settings: FollowerSettings = parse_body(&body)?;
    save_follower_settings(&state, &caller, settings).await?;
    Ok(Json(follower_settings_view(&state).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    group: String,
    /// The connection's id; the desk's default connection when left out.
    connection: Option<ConnectionId>,
}

pub(super) async fn add_followers(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(ticket): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: AddBody = parse_body(&body)?;
    let ticket: i64 = ticket
        .parse()
        .map_err(|_| ApiError::not_found(format!("{ticket:?} is not a ticket id")))?;
    if body.group.trim().is_empty() {
        return Err(ApiError::invalid("group: give the group's display name"));
    }
    let connection = match body.connection {
        Some(id) => id,
        None => {
            let mut tx = state.store.read().await?;
            let settings = tx.follower_settings().await?;
            tx.commit().await?;
            settings.default_connection.ok_or_else(|| {
                ApiError::invalid(
                    "connection: the desk has no default connection for followers; name one (its id)",
                )
            })?
        }
    };
    // A group's members are the connection's data: read access to it is needed.
    let scope = scope_for(&state, &caller, connection, Access::Read).await?;
    let added = deskbridge_sync::add_group_followers(
        &state.store,
        &state.sources,
        RecordId(ticket),
        body.group.trim(),
        Some(&scope.connection.name),
        &state.clock,
    )
    .await?;
    Ok(Json(serde_json::to_value(&added).map_err(ApiError::internal)?))
}
