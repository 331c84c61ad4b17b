//! Saving a connection's mapping configuration: validated against the desk and the tenant's
//! actual groups before it is stored, so a bad mapping is refused with the exact problem instead
//! of failing a sync later.

use std::collections::BTreeSet;

use deskbridge_core::SharedClock;
use deskbridge_mapping::{MappingConfig, validate};
use deskbridge_store::{Store, WriteContext};
use serde_json::{Map, Value};

use crate::error::from_graph;
use crate::{SyncError, SyncOptions, load_catalog, load_entra_connection};

/// Validates `mapping` for the connection `name` and stores it. Group names are checked against
/// the tenant's groups as Graph lists them now.
pub async fn save_mappings(
    store: &Store,
    name: &str,
    mapping: MappingConfig,
    clock: &SharedClock,
    options: &SyncOptions,
) -> Result<(), SyncError> {
    let (connection, mut settings) = load_entra_connection(store, name).await?;
    let (tenant, _) = crate::run::graph_for(store, &connection, &settings, clock, options).await?;
    let mut groups = BTreeSet::new();
    let mut pager = tenant.pager::<Map<String, Value>>("/groups?$select=displayName&$top=999");
    while let Some(page) = pager.next_page().await.map_err(|e| from_graph(&e))? {
        groups.extend(
            page.value
                .iter()
                .filter_map(|g| g.get("displayName")?.as_str().map(str::to_owned)),
        );
    }
    let mut tx = store.read().await?;
    let catalog = load_catalog(&mut tx, groups).await?;
    tx.commit().await?;
    validate(&mapping, &catalog).map_err(|errors| {
        SyncError::InvalidMappings(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    settings.mapping = mapping;
    let config =
        serde_json::to_value(&settings).map_err(|e| SyncError::BadSettings(name.into(), e.to_string()))?;
    let mut tx = store.begin(WriteContext::manual()).await?;
    tx.update_connection_config(connection.id, &config).await?;
    tx.commit().await?;
    Ok(())
}
