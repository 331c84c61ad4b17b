//! Exporting a connection's configuration as a readable file (settings and mappings, never a
//! secret) and importing such a file into an existing connection.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use deskbridge_connector_entra::SyncMethod;
use deskbridge_mapping::MappingConfig;
use deskbridge_store::{Connection, Entity};
use serde::Deserialize;
use serde_json::{Value, json};

use super::connections::{EditConnectionBody, edit, settings_of};
use super::mappings::save_mappings;
use super::parse_body;
use crate::AppState;
use crate::access::Scope;
use crate::error::{ApiError, ApiResult};

/// The exported file's format version.
pub const EXPORT_VERSION: u32 = 1;

/// A connection's configuration as a readable file: settings and mappings, never a secret.
pub(crate) async fn export_document(state: &AppState, connection: &Connection) -> ApiResult<Value> {
    let settings = settings_of(connection)?;
    let mut tx = state.store.read().await?;
    let customer = tx.get(Entity::Customer, settings.customer_id).await?;
    tx.commit().await?;
    Ok(json!({
        "deskbridge_export": EXPORT_VERSION,
        "name": connection.name,
        "kind": connection.kind,
        "enabled_instances": connection.enabled_instances,
        "customer": customer.as_ref().and_then(|c| c.text("name")),
        "settings": {
            "tenant_id": settings.tenant_id,
            "client_id": settings.client_id,
            "auth": settings.auth,
            "authority_host": settings.authority_host,
            "graph_url": settings.graph_url,
            "delta": settings.delta,
            "sync_method": settings.sync_method,
            "last_sign_in": settings.last_sign_in,
        },
        "mapping": settings.mapping,
    }))
}

pub(super) async fn export(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> ApiResult<Response> {
    let doc = export_document(&state, &scope.connection).await?;
    let text = serde_json::to_string_pretty(&doc).map_err(ApiError::internal)?;
    let disposition = format!(
        "attachment; filename=\"{}.deskbridge.json\"",
        scope
            .connection
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            })
            .collect::<String>()
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        text,
    )
        .into_response())
}

#[derive(Deserialize)]
struct ImportSettings {
    tenant_id: Option<String>,
    client_id: Option<String>,
    authority_host: Option<String>,
    graph_url: Option<String>,
    delta: Option<bool>,
    sync_method: Option<SyncMethod>,
    last_sign_in: Option<bool>,
}

#[derive(Deserialize)]
struct ImportDocument {
    deskbridge_export: u32,
    kind: String,
    settings: Option<ImportSettings>,
    mapping: MappingConfig,
}

/// Applies an exported file to an existing connection: its mappings (validated first, so a bad
/// file changes nothing) and its settings. Secrets are not in the file and stay as they are.
pub(crate) async fn import_document(
    state: &AppState,
    connection: &Connection,
    bytes: &[u8],
) -> ApiResult<()> {
    let doc: ImportDocument = parse_body(bytes)?;
    if doc.deskbridge_export != EXPORT_VERSION {
        return Err(ApiError::invalid(format!(
            "the file has export version {}, this deskbridge reads version {EXPORT_VERSION}",
            doc.deskbridge_export
        )));
    }
    if doc.kind != connection.kind {
        return Err(ApiError::invalid(format!(
            "the file is of a {} connection, this is a {} connection",
            doc.kind, connection.kind
        )));
    }
    save_mappings(state, connection, doc.mapping).await?;
    if let Some(s) = doc.settings {
        let mut tx = state.store.read().await?;
        let current = tx
            .connection(connection.id)
            .await?
            .ok_or_else(|| ApiError::not_found("the connection was deleted meanwhile"))?;
        tx.commit().await?;
        edit(
            state,
            &current,
            EditConnectionBody {
                tenant_id: s.tenant_id,
                client_id: s.client_id,
                authority_host: s.authority_host,
                graph_url: s.graph_url,
                delta: s.delta,
                sync_method: s.sync_method,
                last_sign_in: s.last_sign_in,
                ..EditConnectionBody::default()
            },
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn import(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    import_document(&state, &scope.connection, &body).await?;
    let mut tx = state.store.read().await?;
    let updated = tx
        .connection(scope.connection.id)
        .await?
        .ok_or_else(|| ApiError::not_found("the connection was deleted meanwhile"))?;
    tx.commit().await?;
    Ok(Json(export_document(&state, &updated).await?))
}
