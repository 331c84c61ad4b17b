//! A many-tenant connection's customer tenants (CSP's Tenants tab): the list, and one tenant's
//! change — its desk customer (an administrator's act: it attaches the tenant's data to an
//! existing customer), "do not import", or a setting it overrides; and a tenant's admin consent
//! (the URL to send the tenant's administrator to, and the callback that records the grant).

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

/// Where Microsoft's admin-consent page sends the administrator back to on this site (it must be
/// registered on the GDAP app, as `/auth/microsoft/callback` is on the sign-in app).
pub(crate) fn consent_callback_uri(state: &AppState, headers: &axum::http::HeaderMap) -> ApiResult<String> {
    let sign_in = super::callback_uri(state, headers)?;
    Ok(sign_in.replace("/auth/microsoft/callback", CONSENT_CALLBACK))
}

/// The path of the admin-consent callback.
pub(crate) const CONSENT_CALLBACK: &str = "/auth/microsoft/consent";

/// Starts an admin consent for one of the connection's tenants: the URL to send the browser to.
pub(crate) async fn begin_consent(
    state: &AppState,
    connection: &Connection,
    tenant: &str,
    redirect: &str,
) -> ApiResult<String> {
    Ok(table_of(state, connection)?
        .begin_consent(&state.store, connection, tenant, redirect, &state.clock)
        .await?)
}

/// The connection an admin-consent redirect belongs to (its `state` starts with the connection's
/// id, as a sign-in's does); a redirect that names none is the browser's doing, not Microsoft's.
pub(crate) async fn consent_connection(state: &AppState, redirect: &str) -> ApiResult<Connection> {
    let unknown = || ApiError::from(deskbridge_source::consent::unknown_consent());
    let id = deskbridge_source::sign_in_connection(redirect).map_err(|_| unknown())?;
    let mut tx = state.store.read().await?;
    let connection = tx.connection(id).await?;
    tx.commit().await?;
    connection.ok_or_else(unknown)
}

/// Finishes an admin consent from Microsoft's redirect to this site.
pub(crate) async fn complete_consent(
    state: &AppState,
    connection: &Connection,
    redirect: &str,
) -> ApiResult<TenantEntry> {
    Ok(table_of(state, connection)?
        .complete_consent(&state.store, connection, redirect, &state.clock)
        .await?)
}

pub(super) async fn consent(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path((_, tenant)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Json<Value>> {
    let redirect = consent_callback_uri(&state, &headers)?;
    let url = begin_consent(&state, &scope.connection, &tenant, &redirect).await?;
    Ok(Json(json!({ "url": url, "redirect_uri": redirect })))
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

/// Forgets the cursors of one of the connection's tenants (or of every tenant): its next run
/// reads it whole. Returns how many cursors there were.
pub(crate) async fn reset_tenant_deltas(
    state: &AppState,
    connection: &Connection,
    tenant: Option<&str>,
) -> ApiResult<u64> {
    if let Some(tenant) = tenant
        && !tenants_of(state, connection)
            .await?
            .iter()
            .any(|t| t.tenant_id.eq_ignore_ascii_case(tenant))
    {
        return Err(ApiError::not_found(format!(
            "connection {:?} has no tenant {tenant}",
            connection.name
        )));
    }
    let mut tx = state
        .store
        .begin(deskbridge_store::WriteContext::manual())
        .await?;
    let cleared = match tenant {
        Some(tenant) => tx.clear_tenant_cursors(connection.id, tenant).await?,
        None => tx.clear_cursors(connection.id, None).await?,
    };
    tx.commit().await?;
    Ok(cleared)
}

pub(super) async fn reset_route(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path((_, tenant)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let cleared = reset_tenant_deltas(&state, &scope.connection, Some(&tenant)).await?;
    Ok(Json(json!({ "cleared": cleared })))
}

pub(super) async fn generate_route(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> ApiResult<Json<Value>> {
    let added = table_of(&state, &scope.connection)?
        .generate_mappings(&state.store, &scope.connection)
        .await?;
    Ok(Json(json!({ "added": added })))
}
