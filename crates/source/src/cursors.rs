//! What every kind can do with a connection's stored cursors: list them and forget them.

use deskbridge_core::ConnectionId;
use deskbridge_store::{Connection, Store, WriteContext};
use serde_json::json;

use crate::{CursorReport, SyncError};

/// The connection's cursors as stored: one line per tenant and stream (never the value, which
/// is the source's and may carry tokens).
pub async fn stored_cursors(store: &Store, connection: &Connection) -> Result<CursorReport, SyncError> {
    let mut tx = store.read().await?;
    let cursors = tx.cursors_of(connection.id).await?;
    tx.commit().await?;
    let lines = if cursors.is_empty() {
        vec![(
            "cursors".to_owned(),
            "none; the next run reads everything".to_owned(),
        )]
    } else {
        cursors
            .iter()
            .map(|(tenant, stream, _)| (format!("{tenant} {stream}"), "saved".to_owned()))
            .collect()
    };
    let json = json!({
        "connection": connection.name,
        "cursors": cursors
            .iter()
            .map(|(tenant, stream, _)| json!({ "tenant_id": tenant, "stream": stream }))
            .collect::<Vec<_>>(),
    });
    Ok(CursorReport { lines, json })
}

/// Forgets every cursor of the connection: its next run reads everything. Returns how many
/// there were.
pub async fn clear_cursors(store: &Store, connection: ConnectionId) -> Result<u64, SyncError> {
    let mut tx = store.begin(WriteContext::manual()).await?;
    let cleared = tx.clear_cursors(connection, None).await?;
    tx.commit().await?;
    Ok(cleared)
}
