//! Saving a connection's mapping configuration: validated against the desk and the source's
//! actual groups before it is stored, so a bad mapping is refused with the exact problem instead
//! of failing a sync later.

use deskbridge_core::SharedClock;
use deskbridge_mapping::{MappingConfig, validate};
use deskbridge_source::{SourceContext, SourceRegistry};
use deskbridge_store::{Store, WriteContext};

use deskbridge_source::desk::check_target_customers;

use crate::{SyncError, load_catalog, open_connection};

/// Validates `mapping` for the connection `name` and stores it. Group names are checked against
/// the source's groups as it lists them now.
pub async fn save_mappings(
    store: &Store,
    sources: &SourceRegistry,
    name: &str,
    mapping: MappingConfig,
    clock: &SharedClock,
) -> Result<(), SyncError> {
    let mut source = open_connection(store, sources, name).await?;
    let cx = SourceContext::detached(store.clone(), clock.clone());
    source.describe(&cx, &mapping).await?;
    let groups = source.group_names(&cx).await?;
    let mut tx = store.read().await?;
    let catalog = load_catalog(&mut tx, groups, &source.source_properties()).await?;
    let customers = source.partitions().iter().map(|p| p.customer_id).collect();
    let targets = check_target_customers(&mut tx, &mapping, &customers).await;
    let tables = deskbridge_source::desk::check_custom_tables(&mut tx, &mapping).await;
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
    targets?;
    tables?;
    let config = source.settings_with_mapping(&mapping)?;
    let mut tx = store.begin(WriteContext::manual()).await?;
    tx.update_connection_config(source.connection().id, &config)
        .await?;
    tx.commit().await?;
    Ok(())
}
