//! A connection's mappings as one JSON document: reading it, and replacing it (validated against
//! the desk and the tenant before it is saved).

use axum::body::Bytes;
use axum::extract::State;
use axum::{Extension, Json};
use deskbridge_mapping::MappingConfig;
use deskbridge_store::Connection;
use serde_json::Value;

use super::connections::source_of;
use super::parse_body;
use crate::AppState;
use crate::access::Scope;
use crate::error::{ApiError, ApiResult};

pub(super) async fn get_mappings(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> ApiResult<Json<Value>> {
    let opened = source_of(&state, &scope.connection)?.open(&scope.connection)?;
    Ok(Json(
        serde_json::to_value(opened.mapping()).map_err(ApiError::internal)?,
    ))
}

pub(crate) async fn save_mappings(
    state: &AppState,
    connection: &Connection,
    mapping: MappingConfig,
) -> ApiResult<()> {
    deskbridge_sync::save_mappings(
        &state.store,
        &state.sources,
        &connection.name,
        mapping,
        &state.clock,
    )
    .await?;
    Ok(())
}

pub(super) async fn put_mappings(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let mapping: MappingConfig = parse_body(&body)?;
    save_mappings(&state, &scope.connection, mapping.clone()).await?;
    Ok(Json(serde_json::to_value(&mapping).map_err(ApiError::internal)?))
}
