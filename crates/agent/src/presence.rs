//! A worker's presence: while it runs, it says so in the store every [`PRESENCE_EVERY`] (so that
//! `deskbridge runs start` can tell when no worker is there to take a job), and closes the runs
//! whose process stopped without ending them (see `deskbridge_sync::liveness`). It forgets itself
//! when it stops cleanly; a worker that died drops out after [`PRESENCE_LEASE`].

use std::time::Duration;

use deskbridge_store::{Store, StoreError, WorkerPresence, WriteContext};
use jiff::SignedDuration;
use tokio::sync::watch;

/// How often a worker says it is alive.
pub const PRESENCE_EVERY: Duration = Duration::from_secs(10);

/// A worker not seen for this long is taken for gone.
pub const PRESENCE_LEASE: Duration = Duration::from_secs(45);

/// Every how many presence beats the stale runs are looked for.
const STALE_RUNS_EVERY: u32 = 3;

/// Says `worker` is alive until `shutdown` turns true, then forgets it.
pub async fn keep_present(store: Store, worker: String, mut shutdown: watch::Receiver<bool>) {
    let mut beats: u32 = 0;
    while !*shutdown.borrow() {
        let seen = async {
            let mut tx = store.begin(WriteContext::manual()).await?;
            tx.worker_seen(&worker).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = seen {
            tracing::warn!(worker = %worker, error = %e, "could not record that the worker is alive");
        }
        if beats.is_multiple_of(STALE_RUNS_EVERY)
            && let Err(e) = deskbridge_sync::liveness::close_stale_runs(&store, None).await
        {
            tracing::warn!(error = %e, "could not close the runs whose process stopped");
        }
        beats = beats.wrapping_add(1);
        tokio::select! {
            _ = tokio::time::sleep(PRESENCE_EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
    let gone = async {
        let mut tx = store.begin(WriteContext::manual()).await?;
        tx.worker_gone(&worker).await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = gone {
        tracing::warn!(worker = %worker, error = %e, "could not record that the worker stopped");
    }
}

/// The workers alive now (seen within [`PRESENCE_LEASE`]).
pub async fn live_workers(store: &Store) -> Result<Vec<WorkerPresence>, StoreError> {
    let lease = SignedDuration::try_from(PRESENCE_LEASE).unwrap_or(SignedDuration::MAX);
    let now = store.now();
    let mut tx = store.read().await?;
    let workers = tx.live_workers(now.checked_sub(lease).unwrap_or(now)).await?;
    tx.commit().await?;
    Ok(workers)
}
