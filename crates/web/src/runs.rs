//! Starting and cancelling syncs from the UI and API. For now a sync runs on a task of this
//! process; its progress is read from its run row (counts grow as each batch commits), so the
//! UI shows the same thing whichever process runs it. This is the one place to rewire when runs
//! go through the job queue.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use deskbridge_core::{ConnectionId, RunId};
use deskbridge_store::{Connection, RunStatus, WriteContext};
use deskbridge_sync::{SyncOptions, SyncOutcome};
use tokio::task::JoinHandle;

use crate::AppState;
use crate::error::ApiError;

/// Syncs in flight, one per connection at most.
#[derive(Default)]
pub struct Runs {
    tasks: Mutex<HashMap<ConnectionId, Task>>,
}

struct Task {
    handle: JoinHandle<()>,
    /// The run row, once the sync has created it.
    run: Option<RunId>,
}

/// What starting a sync gave.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Started {
    pub run_id: Option<RunId>,
    /// Set when the sync ended (or failed) before it could be watched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<SyncOutcome>,
}

/// How long `start` waits for the sync to create its run row (it first gets a token).
const WAIT_FOR_RUN: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(25);

impl Runs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, Task>> {
        self.tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn busy(&self, connection: ConnectionId) -> bool {
        self.lock()
            .get(&connection)
            .is_some_and(|t| !t.handle.is_finished())
    }

    /// Starts a sync of `connection`; returns once its run row exists (or it has ended).
    pub async fn start(
        &self,
        state: &AppState,
        connection: &Connection,
        full: bool,
        approve_held: bool,
    ) -> Result<Started, ApiError> {
        if self.busy(connection.id) {
            return Err(
                ApiError::conflict(format!("a sync of {:?} is already running", connection.name))
                    .with_code("run_in_progress"),
            );
        }
        let newest_before = newest_run(state, connection.id).await?;
        let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
        let options = SyncOptions {
            plan_only: false,
            full,
            approve_held,
            ..state.sync_options.clone()
        };
        let store = state.store.clone();
        let clock = state.clock.clone();
        let name = connection.name.clone();
        let handle = tokio::spawn(async move {
            let result = deskbridge_sync::sync(&store, &name, &options, &clock).await;
            if let Err(e) = &result {
                tracing::warn!(connection = %name, error = %e, "sync started from the UI failed");
            }
            let _ = done_tx.send(result);
        });
        self.lock().insert(connection.id, Task { handle, run: None });
        let deadline = tokio::time::Instant::now() + WAIT_FOR_RUN;
        loop {
            match done_rx.try_recv() {
                Ok(Ok(outcome)) => {
                    return Ok(Started {
                        run_id: outcome.run_id,
                        outcome: Some(outcome),
                    });
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                    return Err(ApiError::internal("the sync task ended without an answer"));
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
            }
            let newest = newest_run(state, connection.id).await?;
            if newest > newest_before
                && let Some(run) = newest
            {
                if let Some(task) = self.lock().get_mut(&connection.id) {
                    task.run = Some(run);
                }
                return Ok(Started {
                    run_id: Some(run),
                    outcome: None,
                });
            }
            if tokio::time::Instant::now() > deadline {
                return Ok(Started {
                    run_id: None,
                    outcome: None,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Cancels the run if this process is running it: the task stops at its next await, what
    /// its committed batches wrote stays (the next sync converges from it), the run is marked
    /// cancelled. Returns whether anything was cancelled.
    pub async fn cancel(&self, state: &AppState, run: RunId, by: &str) -> Result<bool, ApiError> {
        let mut tx = state.store.read().await?;
        let row = tx.run(run).await?;
        tx.commit().await?;
        let Some(row) = row else {
            return Err(ApiError::not_found(format!("no run {run}")));
        };
        if !matches!(
            row.status,
            RunStatus::Running | RunStatus::Queued | RunStatus::Held
        ) {
            return Ok(false);
        }
        if let Some(connection) = row.connection_id {
            let task = {
                let mut tasks = self.lock();
                match tasks.get(&connection) {
                    Some(t) if t.run == Some(run) || t.run.is_none() => tasks.remove(&connection),
                    _ => None,
                }
            };
            if let Some(task) = task {
                task.handle.abort();
                let _ = task.handle.await;
            }
        }
        let mut tx = state.store.begin(WriteContext::manual()).await?;
        tx.finish_run(run, RunStatus::Cancelled, Some(&format!("cancelled by {by}")))
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}

async fn newest_run(state: &AppState, connection: ConnectionId) -> Result<Option<RunId>, ApiError> {
    let mut tx = state.store.read().await?;
    let runs = tx.runs(Some(connection), 1).await?;
    tx.commit().await?;
    Ok(runs.first().map(|r| r.id))
}
