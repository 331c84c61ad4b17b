//! The scheduler: fires due schedules into jobs. Any number of schedulers may run at once (one
//! in `serve`, one in each `worker`); each due time is fired by exactly one of them through the
//! compare-and-set in [`deskbridge_store::StoreTx::fire_schedule`], with no leader election.

use std::sync::Arc;
use std::time::Duration;

use deskbridge_core::SharedClock;
use deskbridge_store::{FireOutcome, JobId, NewJob, Schedule, Store, WriteContext};
use serde::Serialize;
use tokio::sync::watch;

use crate::AgentError;
use crate::metrics::{Metrics, labels};
use crate::schedule::ScheduleSpec;

/// What one pass over the due schedules did.
#[derive(Debug, Clone, Serialize)]
pub struct Fired {
    pub schedule_id: i64,
    pub connection: String,
    pub due: String,
    pub outcome: FireOutcome,
}

/// Parses a stored schedule.
pub fn spec_of(schedule: &Schedule) -> Result<ScheduleSpec, AgentError> {
    let window = match (&schedule.window_start, &schedule.window_end) {
        (Some(a), Some(b)) => Some((a.as_str(), b.as_str())),
        _ => None,
    };
    Ok(ScheduleSpec::from_parts(
        &schedule.kind,
        &schedule.spec,
        &schedule.time_zone,
        window,
    )?)
}

/// Fires every schedule due at the clock's now. Each fire is its own transaction.
pub async fn fire_due(
    store: &Store,
    clock: &SharedClock,
    metrics: &Metrics,
) -> Result<Vec<Fired>, AgentError> {
    let now = clock.now();
    let mut tx = store.read().await?;
    let due = tx.due_schedules(now, 200).await?;
    tx.commit().await?;
    let mut fired = Vec::new();
    for schedule in due {
        let spec = match spec_of(&schedule) {
            Ok(s) => s,
            Err(e) => {
                // A schedule that cannot be parsed must not stop the others; disable nothing,
                // say so every pass until it is fixed or removed.
                tracing::warn!(schedule = schedule.id.0, error = %e, "schedule cannot be evaluated");
                continue;
            }
        };
        let due_at = deskbridge_store::parse_timestamp(&schedule.next_due).map_err(AgentError::Corrupt)?;
        let Some(next) = spec.next_due(due_at, now) else {
            tracing::warn!(schedule = schedule.id.0, "schedule has no further due time");
            continue;
        };
        let mut tx = store.begin(WriteContext::manual()).await?;
        let outcome = tx.fire_schedule(&schedule, &schedule.next_due, next).await?;
        tx.commit().await?;
        let label = match outcome {
            FireOutcome::Enqueued(_) => "enqueued",
            FireOutcome::Coalesced => "coalesced",
            FireOutcome::AlreadyFired => "already_fired",
        };
        metrics.add(
            "deskbridge_schedule_fires_total",
            labels(&[("outcome", label)]),
            1.0,
        );
        tracing::debug!(schedule = schedule.id.0, connection = %schedule.connection, due = %schedule.next_due, outcome = label, "schedule due");
        fired.push(Fired {
            schedule_id: schedule.id.0,
            connection: schedule.connection.clone(),
            due: schedule.next_due.clone(),
            outcome,
        });
    }
    Ok(fired)
}

/// "Start processing": enqueues a job for every enabled schedule now, whatever its next due
/// time (a connection with a job already queued or running keeps that one).
pub async fn start_processing(store: &Store) -> Result<Vec<(Schedule, Option<JobId>)>, AgentError> {
    let mut tx = store.begin(WriteContext::manual()).await?;
    let schedules = tx.schedules().await?;
    let mut out = Vec::new();
    for schedule in schedules.into_iter().filter(|s| s.enabled) {
        let job = tx
            .enqueue_job(&NewJob {
                connection_id: schedule.connection_id,
                entity: schedule.entity.clone(),
                full: false,
                origin: "start".into(),
                schedule_id: None,
                due_at: None,
                tenant_id: None,
            })
            .await?;
        out.push((schedule, job));
    }
    tx.commit().await?;
    Ok(out)
}

/// Runs [`fire_due`] every `tick` until `shutdown` turns true.
pub async fn run(
    store: Store,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    tick: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        if let Err(e) = fire_due(&store, &clock, &metrics).await {
            tracing::warn!(error = %e, "scheduler pass failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.changed() => {}
        }
    }
}
