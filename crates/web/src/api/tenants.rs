//! A many-tenant connection's customer tenants (CSP's Tenants tab): the list, and one tenant's
//! change — its desk customer (an administrator's act: it attaches the tenant's data to an
//! existing customer), "do not import", or a setting it overrides.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use deskbridge_core::RecordId;
use deskbridge_source::{TenantCustomer, TenantEntry, TenantTable, TenantUpdate};
use deskbridge_store::Connection;
use serde_json::{Map, Value, json};

use super::parse_body;
use crate::AppState;
use crate::access::{Caller, Scope};
use crate::error::{ApiError, ApiResult};

/// The connection's tenant table; a single-tenant kind has none.
pub(crate) fn table_of<'a>(state: &'a AppState, connection: &Connection) -> ApiResult<&'a dyn TenantTable> {
    super::source_of(state, connection)?
        .tenant_table()
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "a {} connection reads one tenant, set in its settings: it has no tenant table",
                connection.kind
            ))
        })
}

pub(crate) async fn tenants_of(state: &AppState, connection: &Connection) -> ApiResult<Vec<TenantEntry>> {
    Ok(table_of(state, connection)?
        .tenants(&state.store, connection)
        .await?)
}

/// Changes one tenant as `caller` asked: `{"customer": id | null, "<override>": "value" | null}`
/// (a key left out is left as it is; `null` means "do not import" / "the connection's").
pub(crate) async fn change_tenant(
    state: &AppState,
    caller: &Caller,
    connection: &Connection,
    tenant: &str,
    body: &Map<String, Value>,
) -> ApiResult<TenantEntry> {
    let table = table_of(state, connection)?;
    let mut update = TenantUpdate::default();
    for (key, value) in body {
        if key == "customer" {
            if !caller.is_admin() {
                return Err(ApiError::forbidden(
                    "only an administrator may choose a tenant's desk customer: it puts the tenant's users and \
                     licences into that customer",
                ));
            }
            update.customer = Some(match value {
                Value::Null => TenantCustomer::DoNotImport,
                v => TenantCustomer::Customer(RecordId(v.as_i64().ok_or_else(|| {
                    ApiError::invalid("customer: expected a desk customer's id (a whole number), or null for \"do not import\"")
                })?)),
            });
        } else if table.overridable().iter().any(|s| s.key == key) {
            let text = match value {
                Value::Null => None,
                Value::String(s) if s.trim().is_empty() => None,
                Value::String(s) => Some(s.trim().to_owned()),
                _ => {
                    return Err(ApiError::invalid(format!(
                        "{key}: expected text, or null for the connection's"
                    )));
                }
            };
            update.overrides.insert(key.clone(), text);
        } else {
            let known: Vec<&str> = table.overridable().iter().map(|s| s.key).collect();
            return Err(ApiError::invalid(format!(
                "{key:?} cannot be set on a tenant: give customer or one of {}",
                known.join(", ")
            )));
        }
    }
    Ok(table
        .set_tenant(&state.store, connection, tenant, &update)
        .await?)
}

pub(super) async fn list_tenants(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "tenants": tenants_of(&state, &scope.connection).await? }),
    ))
}

pub(super) async fn set_tenant(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Extension(caller): Extension<Caller>,
    Path((_, tenant)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: Map<String, Value> = parse_body(&body)?;
    let entry = change_tenant(&state, &caller, &scope.connection, &tenant, &body).await?;
    Ok(Json(json!({ "tenant": entry })))
}
