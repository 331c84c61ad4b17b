//! Exporting a connection's configuration as a readable file (settings and mappings, never a
//! secret) and importing such a file into an existing connection.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use deskbridge_mapping::MappingConfig;
use deskbridge_source::CursorReset;
use deskbridge_source::settings::{Purpose, SettingPart, credential_moved, validate, visible_values};
use deskbridge_store::{Connection, Entity};
use serde::Deserialize;
use serde_json::{Value, json};

use super::connections::{edit_values, source_of};
use super::mappings::{DeltaLinksQuery, save_mappings};
use super::{parse_body, parse_query};
use crate::AppState;
use crate::access::{Caller, Scope};
use crate::error::{ApiError, ApiResult};

/// The exported file's format version.
pub const EXPORT_VERSION: u32 = 1;

/// A connection's configuration as a readable file: settings and mappings, never a secret.
pub(crate) async fn export_document(state: &AppState, connection: &Connection) -> ApiResult<Value> {
    let source = source_of(state, connection)?;
    let opened = source.open(connection)?;
    let customer = match deskbridge_source::desk::id_of(&connection.config["customer_id"]) {
        Some(id) => {
            let mut tx = state.store.read().await?;
            let customer = tx.get(Entity::Customer, id).await?;
            tx.commit().await?;
            customer.and_then(|c| c.text("name").map(str::to_owned))
        }
        None => None,
    };
    Ok(json!({
        "deskbridge_export": EXPORT_VERSION,
        "name": connection.name,
        "kind": connection.kind,
        "enabled_instances": connection.enabled_instances,
        "customer": customer,
        "settings": visible_values(source.settings(), &connection.config),
        "mapping": opened.mapping(),
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
struct ImportDocument {
    deskbridge_export: u32,
    kind: String,
    settings: Option<serde_json::Map<String, Value>>,
    mapping: MappingConfig,
}

/// Applies an exported file to an existing connection: its mappings (validated first, so a bad
/// file changes nothing) and its settings, except how it signs in: secrets are not in the file,
/// and the credential settings (the authentication method) stay as they are.
pub(crate) async fn import_document(
    state: &AppState,
    caller: &Caller,
    connection: &Connection,
    bytes: &[u8],
    restart: Option<CursorReset>,
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
    let source = source_of(state, connection)?;
    // Checked before anything is saved: a file with a bad setting changes nothing.
    let settings = match &doc.settings {
        Some(s) => Some(
            validate(
                source.settings(),
                s,
                Purpose::Edit,
                state.sources.endpoint_policy(),
            )?
            .without(source.settings(), SettingPart::Credential),
        ),
        None => None,
    };
    if let Some(values) = &settings
        && !caller.is_admin()
        && let Some(setting) = credential_moved(source.settings(), &connection.config, values)
    {
        return Err(ApiError::new(
            deskbridge_core::ErrorCode::Forbidden,
            format!(
                "the file changes the connection's {}, an endpoint or tenant, which only an administrator may \
                 change; nothing was imported: import it unchanged there, or ask an administrator",
                setting.label
            ),
        ));
    }
    save_mappings(state, caller, connection, doc.mapping, restart).await?;
    if let Some(values) = settings {
        let mut tx = state.store.read().await?;
        let current = tx
            .connection(connection.id)
            .await?
            .ok_or_else(|| ApiError::not_found("the connection was deleted meanwhile"))?;
        tx.commit().await?;
        edit_values(state, caller, &current, values).await?;
    }
    Ok(())
}

pub(super) async fn import(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let links: DeltaLinksQuery = parse_query(query)?;
    import_document(&state, &caller, &scope.connection, &body, links.restart()).await?;
    let mut tx = state.store.read().await?;
    let updated = tx
        .connection(scope.connection.id)
        .await?
        .ok_or_else(|| ApiError::not_found("the connection was deleted meanwhile"))?;
    tx.commit().await?;
    Ok(Json(export_document(&state, &updated).await?))
}
