//! Starting and cancelling syncs from the UI and API. Under `deskbridge serve` a sync is a job
//! in the sync agent's queue, run by whichever worker claims it (at most one per connection);
//! an embedded router without workers runs it on a task of this process. Either way progress is
//! read from the run row (counts grow as each batch commits), so the UI shows the same thing
//! whichever process runs it. Approving a held run always runs here: it applies the plan an
//! administrator has just looked at.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use deskbridge_core::{ConnectionId, ErrorCode, RunId};
use deskbridge_source::SyncEntity;
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

/// What a run started from the UI or API imports.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    pub entity: SyncEntity,
    /// Only this tenant of the connection (checked to be one of its tenants); `None`: all.
    pub tenant: Option<String>,
    /// Ignore delta cursors.
    pub full: bool,
    /// A custom-table run of this table mapping alone (by its desk table).
    pub table: Option<String>,
}

impl RunRequest {
    /// The entity as jobs and schedules name it: `custom_tables:<desk table>` for one table.
    fn job_entity(&self) -> String {
        match &self.table {
            Some(table) => format!("{}:{table}", self.entity.as_str()),
            None => self.entity.as_str().to_owned(),
        }
    }
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

    /// Starts a sync of `connection` importing `entity` (the caller has checked that its kind
    /// imports it); returns once its run row exists (or it has ended).
    pub async fn start(
        &self,
        state: &AppState,
        connection: &Connection,
        request: &RunRequest,
        approve_held: bool,
    ) -> Result<Started, ApiError> {
        if state.job_queue && !approve_held {
            return enqueue(state, connection, request).await;
        }
        if self.busy(connection.id) {
            return Err(
                ApiError::conflict(format!("a sync of {:?} is already running", connection.name))
                    .with_code(ErrorCode::RunInProgress),
            );
        }
        let newest_before = newest_run(state, connection.id).await?;
        let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
        let options = SyncOptions {
            entity: request.entity,
            tenant: request.tenant.clone(),
            table: request.table.clone(),
            plan_only: false,
            full: request.full,
            approve_held,
            ..state.sync_options.clone()
        };
        let store = state.store.clone();
        let sources = state.sources.clone();
        let clock = state.clock.clone();
        let name = connection.name.clone();
        let handle = tokio::spawn(async move {
            let result = deskbridge_sync::sync(&store, &sources, &name, &options, &clock).await;
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
        // A run of the job queue: ask its worker to stop (at its next heartbeat).
        let mut tx = state.store.begin(WriteContext::manual()).await?;
        let job = tx.active_job_for_run(run).await?;
        if let Some(job) = &job {
            tx.cancel_job(job.id).await?;
        }
        tx.commit().await?;
        if job.is_some() {
            return Ok(true);
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

/// Queues a sync of the connection for the workers, and waits (briefly) for one to start it.
async fn enqueue(
    state: &AppState,
    connection: &Connection,
    request: &RunRequest,
) -> Result<Started, ApiError> {
    let mut tx = state.store.begin(WriteContext::manual()).await?;
    let job = tx
        .enqueue_job(&deskbridge_store::NewJob {
            connection_id: connection.id,
            entity: request.job_entity(),
            full: request.full,
            origin: "manual".into(),
            schedule_id: None,
            due_at: None,
            tenant_id: request.tenant.clone(),
        })
        .await?;
    tx.commit().await?;
    let Some(job) = job else {
        return Err(ApiError::conflict(format!(
            "a sync of {:?} is already queued or running",
            connection.name
        ))
        .with_code(ErrorCode::RunInProgress));
    };
    let deadline = tokio::time::Instant::now() + WAIT_FOR_RUN;
    loop {
        let mut tx = state.store.read().await?;
        let row = tx.job(job).await?;
        tx.commit().await?;
        match row {
            Some(row) if row.run_id.is_some() => {
                return Ok(Started {
                    run_id: row.run_id,
                    outcome: None,
                });
            }
            Some(row) if !row.status.is_active() => {
                return Err(ApiError::conflict(format!(
                    "the sync ended before it started: {}",
                    row.message.unwrap_or_else(|| row.status.as_str().to_owned())
                ))
                .with_code(ErrorCode::RunNotStarted));
            }
            None => return Err(ApiError::internal("the queued sync disappeared")),
            Some(_) => {}
        }
        if tokio::time::Instant::now() > deadline {
            // Queued behind other work: the runs list shows it when a worker picks it up.
            return Ok(Started {
                run_id: None,
                outcome: None,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn newest_run(state: &AppState, connection: ConnectionId) -> Result<Option<RunId>, ApiError> {
    let mut tx = state.store.read().await?;
    let runs = tx.runs(Some(connection), 1).await?;
    tx.commit().await?;
    Ok(runs.first().map(|r| r.id))
}
