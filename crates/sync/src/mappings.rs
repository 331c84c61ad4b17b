//! Saving a connection's mapping configuration: validated against the desk and the source's
//! actual groups before it is stored, so a bad mapping is refused with the exact problem instead
//! of failing a sync later.

use deskbridge_core::SharedClock;
use deskbridge_mapping::{MappingConfig, validate};
use deskbridge_source::{CursorReset, SourceContext, SourceRegistry};
use deskbridge_store::{Store, WriteContext};

use deskbridge_source::desk::check_target_customers;

use crate::{SyncError, load_catalog, open_connection};

/// Validates `mapping` for the connection `name` and stores it. Group names are checked against
/// the source's groups as it lists them now. A change that restarts the connection's cursors is
/// refused until confirmed: see [`save_mappings_confirmed`].
pub async fn save_mappings(
    store: &Store,
    sources: &SourceRegistry,
    name: &str,
    mapping: MappingConfig,
    clock: &SharedClock,
) -> Result<(), SyncError> {
    save_mappings_confirmed(store, sources, name, mapping, None, clock).await
}

/// Whether saving `mapping` for the connection `name` would need the administrator's answer of
/// [`save_mappings_confirmed`] (so a terminal can ask before saving): the change restarts the
/// cursors, and the connection has some.
pub async fn mapping_change_needs_confirmation(
    store: &Store,
    sources: &SourceRegistry,
    name: &str,
    mapping: &MappingConfig,
) -> Result<bool, SyncError> {
    let source = open_connection(store, sources, name).await?;
    let connection = source.connection();
    if !sources
        .source_of(connection)?
        .mapping_change_restarts_cursors(connection, source.mapping(), mapping)
    {
        return Ok(false);
    }
    let mut tx = store.read().await?;
    let cursors = tx.cursors_of(connection.id).await?;
    tx.commit().await?;
    Ok(!cursors.is_empty())
}

/// [`save_mappings`], with the administrator's answer for a change that restarts the cursors
/// ([`deskbridge_source::Source::mapping_change_restarts_cursors`]): take the latest ones
/// (tracking starts now) or clear them (the next run reads everything). Without an answer such a
/// change is refused and nothing is saved. The answer is ignored when nothing restarts.
pub async fn save_mappings_confirmed(
    store: &Store,
    sources: &SourceRegistry,
    name: &str,
    mapping: MappingConfig,
    restart: Option<CursorReset>,
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
    let connection = source.connection().clone();
    let kind = sources.source_of(&connection)?;
    let restarts = kind.mapping_change_restarts_cursors(&connection, source.mapping(), &mapping);
    let config = source.settings_with_mapping(&mapping)?;
    let mut tx = store.begin(WriteContext::manual()).await?;
    let mut take_latest = false;
    if restarts && !tx.cursors_of(connection.id).await?.is_empty() {
        match restart {
            Some(CursorReset::Latest) => take_latest = true,
            Some(CursorReset::Clear) => {
                tx.clear_cursors(connection.id, None).await?;
            }
            None => {
                return Err(SyncError::Conflict(format!(
                    "connection {name:?} reads changes through delta queries, and changing its user or site \
                     mappings restarts them; nothing was saved. Confirm how: take the latest delta (tracking \
                     starts now; people who do not change are not read again under the new mappings) or read \
                     the whole tenant again on the next run (CLI: --yes, or --reset clear; API: \
                     ?delta_links=latest or ?delta_links=clear; the form asks)"
                )));
            }
        }
    }
    tx.update_connection_config(connection.id, &config).await?;
    tx.commit().await?;
    if take_latest {
        kind.reset_cursors(&cx, &connection, CursorReset::Latest)
            .await
            .map_err(|e| {
                let message = format!(
                    "the mappings were saved, but the latest delta could not be taken: {e}. The next run goes on \
                     from the delta links it had"
                );
                match e {
                    SyncError::Upstream { error_code, code, remedy, .. } => SyncError::Upstream {
                        error_code,
                        code,
                        message,
                        remedy,
                    },
                    _ => SyncError::Conflict(message),
                }
            })?;
    }
    Ok(())
}
