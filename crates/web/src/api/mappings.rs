//! A connection's mappings as one JSON document: reading it, and replacing it (validated against
//! the desk and the tenant before it is saved).

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::{Extension, Json};
use deskbridge_mapping::{MappingConfig, SiteTarget};
use deskbridge_source::CursorReset;
use deskbridge_store::Connection;
use serde_json::Value;

use super::connections::source_of;
use super::{parse_body, parse_query};
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

/// How a change that restarts the delta links restarts them, as the API and the forms give it
/// (`?delta_links=latest|clear`; the guide asks before it takes the latest delta).
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeltaLinksQuery {
    delta_links: Option<DeltaLinks>,
}

#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum DeltaLinks {
    Latest,
    Clear,
}

impl DeltaLinksQuery {
    /// From a form's `delta_links` field: empty or absent is no answer.
    pub(crate) fn from_form(value: &str) -> ApiResult<Self> {
        let delta_links = match value.trim() {
            "" => None,
            "latest" => Some(DeltaLinks::Latest),
            "clear" => Some(DeltaLinks::Clear),
            other => {
                return Err(ApiError::invalid(format!(
                    "delta_links: {other:?} is neither \"latest\" nor \"clear\""
                )));
            }
        };
        Ok(Self { delta_links })
    }

    pub(crate) fn restart(self) -> Option<CursorReset> {
        self.delta_links.map(|links| match links {
            DeltaLinks::Latest => CursorReset::Latest,
            DeltaLinks::Clear => CursorReset::Clear,
        })
    }
}

pub(crate) async fn save_mappings(
    state: &AppState,
    caller: &Caller,
    connection: &Connection,
    mapping: MappingConfig,
    restart: Option<CursorReset>,
) -> ApiResult<()> {
    if !caller.is_admin() {
        let before = source_of(state, connection)?.open(connection)?.mapping().clone();
        check_customer_reach(&before, &mapping)?;
    }
    deskbridge_sync::save_mappings_confirmed(
        &state.store,
        &state.sources,
        &connection.name,
        mapping,
        restart,
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
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let links: DeltaLinksQuery = parse_query(query)?;
    let mapping: MappingConfig = parse_body(&body)?;
    save_mappings(
        &state,
        &caller,
        &scope.connection,
        mapping.clone(),
        links.restart(),
    )
    .await?;
    Ok(Json(serde_json::to_value(&mapping).map_err(ApiError::internal)?))
}
