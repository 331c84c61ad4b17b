//! Syncing many connections at once: a bounded pool of [`crate::sync`] runs. Sources share what
//! their connections must share themselves (an Entra app's Graph client, whose budget Microsoft
//! counts across tenants); the pool shares turns at the CPU-bound stages.

use std::sync::Arc;

use deskbridge_core::SharedClock;
use deskbridge_source::SourceRegistry;
use deskbridge_store::Store;
use futures::StreamExt as _;

use crate::SyncError;
use crate::run::{SyncOptions, SyncOutcome, sync_with};

/// What [`sync_many`] did with one connection.
#[derive(Debug)]
pub struct ManyResult {
    pub connection: String,
    pub result: Result<SyncOutcome, SyncError>,
}

/// Syncs the named connections, at most `concurrency` at a time. Results come back in the order of
/// `names`; one connection failing does not stop the others.
pub async fn sync_many(
    store: &Store,
    sources: &SourceRegistry,
    names: &[String],
    options: &SyncOptions,
    concurrency: usize,
    clock: &SharedClock,
) -> Result<Vec<ManyResult>, SyncError> {
    // Turns at planning and applying, one per core. Reading waits on Microsoft and overlaps
    // freely; planning and applying are CPU work, and dozens of syncs doing it at once only take
    // the CPU from each other (and, on SQLite, from the one writer everybody waits for).
    let turns = Arc::new(tokio::sync::Semaphore::new(
        std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
    ));
    // Which connection reads which tenant, read once for the whole run: each sync asking the
    // store for every connection would cost every sync the whole connection list (quadratic in
    // the number of connections, in time and in memory).
    let mut options = options.clone();
    if options.tenant_readers.is_none() {
        options.tenant_readers = Some(Arc::new(sources.tenant_readers(store).await?));
    }
    let options = &options;
    // Each sync is its own task, so reading, planning and applying several tenants use every core.
    let mut results: Vec<(usize, ManyResult)> = futures::stream::iter(names.iter().cloned().enumerate())
        .map(|(i, name)| {
            let (store, sources, options, clock, turns) = (
                store.clone(),
                sources.clone(),
                options.clone(),
                clock.clone(),
                turns.clone(),
            );
            async move {
                let connection = name.clone();
                let task = tokio::spawn(async move {
                    sync_with(&store, &sources, &name, &options, &clock, Some(&turns)).await
                });
                let result = task.await.unwrap_or_else(|e| {
                    Err(SyncError::Internal(format!(
                        "the sync of {connection:?} stopped unexpectedly: {e}"
                    )))
                });
                (i, ManyResult { connection, result })
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, r)| r).collect())
}
