//! The Entra connector's tests, one binary (link time): each module sets up the emulator and a
//! store (SQLite and PostgreSQL) and drives the connector as the pipeline, CLI and web do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod assets;
mod check;
mod conformance;
mod delegated;
mod delta_settings;
mod followers;
mod licence_management;
mod licences;
mod resync;

use std::sync::Arc;

use deskbridge_connector_entra::EntraSource;
use deskbridge_source::SourceRegistry;

/// A registry with the Entra connector only, as the binary registers it.
pub fn sources() -> SourceRegistry {
    SourceRegistry::new()
        .with(Arc::new(EntraSource::default()))
        .with_endpoint_policy(deskbridge_source::settings::EndpointPolicy::allowing([
            "127.0.0.1",
        ]))
}

/// One sync of `name` through the Entra connector.
pub async fn sync(
    store: &deskbridge_store::Store,
    name: &str,
    options: &deskbridge_sync::SyncOptions,
    clock: &deskbridge_core::SharedClock,
) -> Result<deskbridge_sync::SyncOutcome, deskbridge_sync::SyncError> {
    deskbridge_sync::sync(store, &sources(), name, options, clock).await
}
