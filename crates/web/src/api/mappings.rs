//! A connection's mappings as one JSON document: reading it, and replacing it (validated against
//! the desk and the tenant before it is saved).

use axum::body::Bytes;
use axum::extract::State;
use axum::{Extension, Json};
use deskbridge_mapping::{MappingConfig, SiteTarget};
use deskbridge_store::Connection;
use serde_json::Value;

use super::connections::source_of;
use super::parse_body;
use crate::AppState;
use crate::access::{Caller, Scope};
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
    caller: &Caller,
    connection: &Connection,
    mapping: MappingConfig,
) -> ApiResult<()> {
    if !caller.is_admin() {
        let before = source_of(state, connection)?.open(connection)?.mapping().clone();
        check_customer_reach(&before, &mapping)?;
    }
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

/// Importing customers, and placing people under the customers a connection imported, reach
/// beyond one desk customer (existing customers are linked by name, renamed, deactivated): only
/// an administrator sets them up or changes them. Anything else an agent may change as before.
fn check_customer_reach(before: &MappingConfig, after: &MappingConfig) -> ApiResult<()> {
    let placements = |m: &MappingConfig| -> Vec<String> {
        m.site_mappings
            .iter()
            .filter(|s| matches!(s.target, SiteTarget::ImportedCustomer { .. }))
            .map(|s| serde_json::to_string(s).unwrap_or_default())
            .collect()
    };
    if before.customers != after.customers {
        return Err(ApiError::forbidden(
            "only an administrator sets up or changes customer imports (customers): they create, link and \
             deactivate desk customers beyond this connection's own; nothing was saved",
        ));
    }
    if placements(before) != placements(after) {
        return Err(ApiError::forbidden(
            "only an administrator adds or changes site mappings that place people under imported customers \
             (imported_customer); nothing was saved",
        ));
    }
    Ok(())
}

pub(super) async fn put_mappings(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let mapping: MappingConfig = parse_body(&body)?;
    save_mappings(&state, &caller, &scope.connection, mapping.clone()).await?;
    Ok(Json(serde_json::to_value(&mapping).map_err(ApiError::internal)?))
}
