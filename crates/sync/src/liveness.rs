//! Runs that end when their owner dies. While a run goes on, a task of its process renews the
//! run's heartbeat every [`RUN_HEARTBEAT`]; a running run whose heartbeat is older than
//! [`RUN_LEASE`] belongs to a process that is gone (killed, crashed, its machine lost) and is
//! closed as `interrupted` — at the start of the next sync of its connection, and by every
//! worker as it goes. Nothing is lost by that: cursors are committed with the data of their
//! tenant, so the next run resumes from the last committed tenant.

use std::time::Duration;

use deskbridge_core::{ConnectionId, RunId};
use deskbridge_store::{Store, StoreTx, WriteContext};
use jiff::SignedDuration;

use crate::SyncError;

/// How often a run in progress says it is alive.
pub const RUN_HEARTBEAT: Duration = Duration::from_secs(15);

/// How long a run may go without a heartbeat before it is taken for dead. Generous against
/// [`RUN_HEARTBEAT`]: on SQLite a heartbeat waits for the sync's own write transaction.
pub const RUN_LEASE: Duration = Duration::from_secs(120);

/// Keeps a run's heartbeat while it lives; dropping it (the run ended, or its future was
/// dropped) stops the heartbeats.
#[derive(Debug)]
pub struct RunHeartbeat(tokio::task::JoinHandle<()>);

impl RunHeartbeat {
    /// Starts renewing `run`'s heartbeat every [`RUN_HEARTBEAT`].
    pub fn start(store: &Store, run: RunId) -> Self {
        Self::every(store, run, RUN_HEARTBEAT)
    }

    /// Starts renewing `run`'s heartbeat every `period`.
    pub fn every(store: &Store, run: RunId, period: Duration) -> Self {
        let store = store.clone();
        Self(tokio::spawn(async move {
            let mut beat = tokio::time::interval(period);
            beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            beat.tick().await; // immediate: the run was just started with a heartbeat
            loop {
                beat.tick().await;
                let renewed = async {
                    let mut tx = store.begin(WriteContext::manual()).await?;
                    let running = tx.heartbeat_run(run).await?;
                    tx.commit().await?;
                    Ok::<_, deskbridge_store::StoreError>(running)
                }
                .await;
                match renewed {
                    Ok(true) => {}
                    Ok(false) => {
                        // Closed by someone else, which only happens when heartbeats could not
                        // be written for a whole lease; what this run commits still counts.
                        tracing::warn!(run = run.0, "the run was closed while it still ran");
                        return;
                    }
                    // The database may be back before the lease runs out.
                    Err(e) => tracing::warn!(run = run.0, error = %e, "could not renew the run's heartbeat"),
                }
            }
        }))
    }
}

impl Drop for RunHeartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Closes, in `tx`, the runs (of `connection`, or of all) whose heartbeat is older than
/// [`RUN_LEASE`] at the transaction's time.
pub async fn close_stale_in(
    tx: &mut StoreTx,
    connection: Option<ConnectionId>,
) -> Result<Vec<RunId>, SyncError> {
    let lease = SignedDuration::try_from(RUN_LEASE).unwrap_or(SignedDuration::MAX);
    let stale_before = tx.at().checked_sub(lease).unwrap_or(tx.at());
    let closed = tx.close_stale_runs(connection, stale_before).await?;
    if !closed.is_empty() {
        let ids: Vec<i64> = closed.iter().map(|r| r.0).collect();
        tracing::warn!(runs = ?ids, "closed runs whose process stopped without ending them as interrupted");
    }
    Ok(closed)
}

/// Closes the runs (of `connection`, or of all) whose process has stopped heartbeating.
pub async fn close_stale_runs(
    store: &Store,
    connection: Option<ConnectionId>,
) -> Result<Vec<RunId>, SyncError> {
    let mut tx = store.begin(WriteContext::manual()).await?;
    let closed = close_stale_in(&mut tx, connection).await?;
    tx.commit().await?;
    Ok(closed)
}

/// Closes runs of this process that were stopped (Ctrl-C, SIGTERM) as interrupted, saying why.
/// Returns those that were still running.
pub async fn interrupt_runs(store: &Store, runs: &[RunId], why: &str) -> Result<Vec<RunId>, SyncError> {
    let message = format!("interrupted: {why}; the next run resumes from the last committed tenant");
    let mut tx = store.begin(WriteContext::manual()).await?;
    let mut closed = Vec::new();
    for run in runs {
        if tx.interrupt_run(*run, &message).await? {
            closed.push(*run);
        }
    }
    tx.commit().await?;
    Ok(closed)
}
