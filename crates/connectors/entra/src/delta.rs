//! An Entra connection's delta settings: on or off, the sync method ("all changes" or "mapped
//! fields only", with the mapped fields a delta cannot track), and resetting the stored links —
//! "clear" (the next run is a full import) or "get latest" (start tracking from now).

use std::sync::Arc;

use deskbridge_core::{ConnectionId, SharedClock};
use deskbridge_mapping::ValidatedConfig;
use deskbridge_source::desk::validated;
use deskbridge_source::{CursorReport, MemoryRequests, RequestSink, SyncError};
use deskbridge_store::{CursorKey, Store, WriteContext};
use serde::Serialize;

use crate::client::SharedGraph;
use crate::read::{self, DELTA_TRACKING, DeltaTracking, USERS_DELTA};
use crate::settings::{EntraSettings, SyncMethod, load_entra_connection};
use crate::source::user_properties;

/// How to reset a connection's delta links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaReset {
    /// Forget the links: the next run is a full import.
    Clear,
    /// Take links that start from now (`$deltatoken=latest`): the next run sees only changes
    /// made from here on, without a full import.
    Latest,
}

/// A connection's delta settings and the state of its stored links.
#[derive(Debug, Clone, Serialize)]
pub struct DeltaStatus {
    pub connection: String,
    pub enabled: bool,
    pub sync_method: SyncMethod,
    /// What the delta queries listen to under the current settings and mappings.
    pub tracking: DeltaTracking,
    /// When the stored users link was saved, if there is one.
    pub links_saved_at: Option<String>,
    /// Whether the stored links were taken with the current settings; if not, the next run is a
    /// full import that starts tracking with them.
    pub links_current: bool,
}

/// Reads a connection's delta settings and link state.
pub async fn delta_status(store: &Store, name: &str) -> Result<DeltaStatus, SyncError> {
    let (connection, settings) = load_entra_connection(store, name).await?;
    let config = validated(store, &settings.mapping, None, &user_properties()).await?;
    let tracking = delta_tracking(&settings, &config);
    let key = |stream: &str| CursorKey {
        connection_id: connection.id,
        tenant_id: settings.tenant_id.clone(),
        stream: stream.into(),
    };
    let mut tx = store.read().await?;
    let users = tx.cursor(&key(USERS_DELTA)).await?;
    let fingerprint = tx.cursor(&key(DELTA_TRACKING)).await?;
    tx.commit().await?;
    let taken_with = fingerprint.map_or_else(|| DeltaTracking::all_changes().fingerprint(), |c| c.value);
    Ok(DeltaStatus {
        connection: connection.name,
        enabled: settings.delta,
        sync_method: settings.sync_method,
        links_current: users.is_some() && taken_with == tracking.fingerprint(),
        links_saved_at: users.map(|c| c.updated_at),
        tracking,
    })
}

/// Turns delta queries on or off and sets the sync method. Returns the new status, whose
/// `tracking.untracked` lists the mapped fields a "mapped fields only" delta cannot listen to.
pub async fn set_delta_settings(
    store: &Store,
    name: &str,
    enabled: Option<bool>,
    sync_method: Option<SyncMethod>,
) -> Result<DeltaStatus, SyncError> {
    let (connection, mut settings) = load_entra_connection(store, name).await?;
    if let Some(enabled) = enabled {
        settings.delta = enabled;
    }
    if let Some(method) = sync_method {
        settings.sync_method = method;
    }
    let config =
        serde_json::to_value(&settings).map_err(|e| SyncError::BadSettings(name.into(), e.to_string()))?;
    let mut tx = store.begin(WriteContext::manual()).await?;
    tx.update_connection_config(connection.id, &config).await?;
    tx.commit().await?;
    delta_status(store, name).await
}

/// Forgets the connection's delta links (the "clear" reset): its next sync is a full import.
/// Returns how many links there were.
pub async fn clear_deltas(store: &Store, connection: ConnectionId) -> Result<u64, SyncError> {
    let mut tx = store.begin(WriteContext::manual()).await?;
    let cleared = tx.clear_cursors(connection, None).await?;
    tx.commit().await?;
    Ok(cleared)
}

/// Resets the connection's delta links (see [`DeltaReset`]).
pub async fn reset_deltas(
    store: &Store,
    name: &str,
    reset: DeltaReset,
    clock: &SharedClock,
) -> Result<DeltaStatus, SyncError> {
    let (connection, settings) = load_entra_connection(store, name).await?;
    match reset {
        DeltaReset::Clear => {
            clear_deltas(store, connection.id).await?;
        }
        DeltaReset::Latest => {
            let config = validated(store, &settings.mapping, None, &user_properties()).await?;
            let tracking = delta_tracking(&settings, &config);
            let graph = SharedGraph::new(deskbridge_graph::GraphConfig::default());
            let requests: Arc<dyn RequestSink> = Arc::new(MemoryRequests::default());
            let tenant = graph
                .tenant(store, &connection, &settings, clock, &requests)
                .await?;
            let mut requests = 0;
            let links = read::latest_links(&tenant, &tracking, &mut requests)
                .await
                .map_err(|e| crate::error::from_graph(&e))?;
            let mut tx = store.begin(WriteContext::manual()).await?;
            for (stream, value) in links {
                let key = CursorKey {
                    connection_id: connection.id,
                    tenant_id: settings.tenant_id.clone(),
                    stream,
                };
                tx.set_cursor(&key, &value).await?;
            }
            tx.commit().await?;
        }
    }
    delta_status(store, name).await
}

/// What the connection's delta queries listen to, from its sync method and mappings.
pub fn delta_tracking(settings: &EntraSettings, config: &ValidatedConfig) -> DeltaTracking {
    use sha2::Digest as _;
    let mut tracking = match settings.sync_method {
        SyncMethod::AllChanges => DeltaTracking::all_changes(),
        SyncMethod::MappedFieldsOnly => DeltaTracking::mapped_fields_only(&config.property_uses()),
    };
    let mappings = serde_json::to_vec(&settings.mapping).unwrap_or_default();
    tracking.mappings_digest = hex::encode(&sha2::Sha256::digest(&mappings)[..12]);
    tracking
}

/// The delta status for people (the CLI's and the UI's lines) and scripts.
pub(crate) fn report(status: &DeltaStatus) -> CursorReport {
    let mut lines = vec![
        (
            "delta queries".to_owned(),
            if status.enabled { "on" } else { "off" }.to_owned(),
        ),
        (
            "sync method".to_owned(),
            match status.sync_method {
                SyncMethod::AllChanges => "all changes",
                SyncMethod::MappedFieldsOnly => "mapped fields only",
            }
            .to_owned(),
        ),
        (
            "users listen".to_owned(),
            status
                .tracking
                .users_select
                .clone()
                .unwrap_or_else(|| "every change".into()),
        ),
        (
            "groups listen".to_owned(),
            status
                .tracking
                .groups_select
                .clone()
                .unwrap_or_else(|| "every change".into()),
        ),
        (
            "delta links".to_owned(),
            match (&status.links_saved_at, status.links_current) {
                (None, _) => "none; the next run is a full import".to_owned(),
                (Some(at), true) => format!("saved {at}"),
                (Some(at), false) => format!(
                    "saved {at} under other settings; the next run is a full import \
                     (or take the latest links to start from now)"
                ),
            },
        ),
    ];
    for field in &status.tracking.untracked {
        lines.push((
            "not tracked".to_owned(),
            format!(
                "{} ({}), used by {}; its changes arrive with the next change to a tracked field",
                field.property,
                field.reason,
                field.used_by.join(", ")
            ),
        ));
    }
    CursorReport {
        lines,
        json: serde_json::to_value(status).unwrap_or_default(),
    }
}
