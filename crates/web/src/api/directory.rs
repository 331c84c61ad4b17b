//! The imported directory listings (customers, sites, users, agents, teams, licences, assets),
//! of one connection or of all, a page at a time.

use axum::extract::{Path, RawQuery, State};
use axum::{Extension, Json};
use deskbridge_core::RecordId;
use deskbridge_store::{Connection, DirectoryFilter, Entity};
use serde::Deserialize;
use serde_json::{Value, json};

use super::parse_query;
use crate::AppState;
use crate::access::Scope;
use crate::error::{ApiError, ApiResult};

/// The directory listings, by their plural name.
pub(crate) const DIRECTORY_KINDS: &[(&str, Entity)] = &[
    ("customers", Entity::Customer),
    ("sites", Entity::Site),
    ("users", Entity::User),
    ("agents", Entity::Agent),
    ("teams", Entity::Team),
    ("licences", Entity::Licence),
    ("assets", Entity::Asset),
];

pub(crate) fn directory_entity(kind: &str) -> ApiResult<Entity> {
    DIRECTORY_KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, e)| *e)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no directory listing {kind:?}: use customers, sites, users, agents, teams, licences or assets"
            ))
        })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct DirectoryQuery {
    pub q: Option<String>,
    pub after: Option<i64>,
    pub limit: Option<u32>,
}

pub(crate) async fn directory_page(
    state: &AppState,
    entity: Entity,
    q: DirectoryQuery,
    connection: Option<&Connection>,
) -> ApiResult<Value> {
    // A connection that imports into one customer says which in its settings.
    let customer = connection.and_then(|c| deskbridge_source::desk::id_of(&c.config["customer_id"]));
    let filter = DirectoryFilter {
        connection: connection.map(|c| c.id),
        customer,
        search: q.q,
        after: q.after.map(RecordId),
        limit: q.limit.unwrap_or(50).clamp(1, 500),
    };
    let mut tx = state.store.read().await?;
    let records = tx.directory_page(entity, &filter).await?;
    tx.commit().await?;
    let next = if records.len() == filter.limit as usize {
        records.last().map(|r| r.id.0)
    } else {
        None
    };
    let items: Vec<Value> = records.iter().map(deskbridge_store::Record::to_json).collect();
    Ok(json!({ "items": items, "next_after": next }))
}

pub(super) async fn connection_directory(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path((_, kind)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let entity = directory_entity(&kind)?;
    let q: DirectoryQuery = parse_query(query)?;
    Ok(Json(
        directory_page(&state, entity, q, Some(&scope.connection)).await?,
    ))
}

pub(super) async fn directory(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let entity = directory_entity(&kind)?;
    let q: DirectoryQuery = parse_query(query)?;
    Ok(Json(directory_page(&state, entity, q, None).await?))
}
