//! Licence management from the desk: a desk user's licences, assigned and removed at the source
//! that imported the user (Entra's `assignLicense`), and the journal of the changes asked. The
//! user is reached through the connection that imported it (see [`crate::access`]), so an agent
//! changes licences only of users its modify grant covers.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use deskbridge_core::RecordId;
use deskbridge_store::{DirectoryFilter, Entity, LicenceAction, Record};
use deskbridge_sync::LicenceOutcome;
use serde::Deserialize;
use serde_json::{Value, json};

use super::parse_body;
use crate::AppState;
use crate::access::{Caller, Scope};
use crate::error::{ApiError, ApiResult};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssignBody {
    pub licence_id: i64,
}

/// A licence as the user's page lists it: its name and free units.
fn licence_json(l: &Record) -> Value {
    let total = l.get("total_units").as_i64();
    let consumed = l.get("consumed_units").as_i64();
    json!({
        "id": l.id.0,
        "name": l.text("friendly_name"),
        "part_number": l.text("part_number"),
        "sku_id": l.text("sku_id"),
        "total_units": total,
        "consumed_units": consumed,
        "free_units": total.zip(consumed).map(|(t, c)| (t - c).max(0)),
    })
}

fn id_of(text: &str, what: &str) -> ApiResult<RecordId> {
    text.parse()
        .map(RecordId)
        .map_err(|_| ApiError::not_found(format!("{text:?} is not a {what} id")))
}

/// The user, the licences they hold, the licences of their tenant that may be assigned, whether
/// the connection allows licence management, and the changes asked — what the user's page shows.
pub(crate) async fn user_licences(state: &AppState, scope: &Scope, user: &str) -> ApiResult<Value> {
    let user = id_of(user, "user")?;
    let connection = &scope.connection;
    let managed = match super::source_of(state, connection)?.licence_writer() {
        Some(writer) => writer.manages_licences(connection)?,
        None => false,
    };
    let customers = super::connection_customers(state, connection)?;
    let mut tx = state.store.read().await?;
    let record = tx
        .get(Entity::User, user)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("there is no user {user}")))?;
    let held: Vec<i64> = record
        .get("licences")
        .as_array()
        .map(|ids| ids.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    let mut holds = Vec::new();
    for id in &held {
        if let Some(l) = tx.get(Entity::Licence, RecordId(*id)).await? {
            holds.push(licence_json(&l));
        }
    }
    let mut available = Vec::new();
    for customer in customers {
        let filter = DirectoryFilter {
            connection: Some(connection.id),
            customer: Some(customer),
            limit: 500,
            ..DirectoryFilter::default()
        };
        for l in tx.directory_page(Entity::Licence, &filter).await? {
            if l.get("customer_id").as_i64() == Some(customer.0)
                && l.source.is_some()
                && !held.contains(&l.id.0)
            {
                available.push(licence_json(&l));
            }
        }
    }
    let changes = tx.licence_changes(user, 50).await?;
    tx.commit().await?;
    Ok(json!({
        "user": {
            "id": record.id.0,
            "name": record.text("name"),
            "email": record.text("email"),
            "connection": connection.name,
        },
        "manage_licences": managed,
        "licences": holds,
        "available": available,
        "changes": changes,
    }))
}

/// Assigns or removes a licence on one of the scope's users, as `who` asked.
pub(crate) async fn change_licence(
    state: &AppState,
    user: &str,
    licence: RecordId,
    action: LicenceAction,
    who: &str,
) -> ApiResult<LicenceOutcome> {
    let user = id_of(user, "user")?;
    Ok(deskbridge_sync::change_user_licence(
        &state.store,
        &state.sources,
        user,
        licence,
        action,
        who,
        &state.clock,
    )
    .await?)
}

pub(super) async fn list(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path(user): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(user_licences(&state, &scope, &user).await?))
}

pub(super) async fn assign(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(user): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: AssignBody = parse_body(&body)?;
    let outcome = change_licence(
        &state,
        &user,
        RecordId(body.licence_id),
        LicenceAction::Assign,
        &caller.account.username,
    )
    .await?;
    Ok(Json(json!(outcome)))
}

pub(super) async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((user, licence)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let licence = id_of(&licence, "licence")?;
    let outcome = change_licence(
        &state,
        &user,
        licence,
        LicenceAction::Remove,
        &caller.account.username,
    )
    .await?;
    Ok(Json(json!(outcome)))
}
