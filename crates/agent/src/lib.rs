//! deskbridge-agent: the sync agent — durable jobs run by workers under leases, schedules that
//! enqueue them, and the agent's metrics.
//!
//! What it owns:
//! - [`schedule`] and [`cron`]: when a schedule is next due (interval or cron, time zone, daily
//!   window, daylight-saving changes), as pure functions of a given time;
//! - [`scheduler`]: firing due schedules into jobs, once per due time however many schedulers
//!   run; "start processing" (enqueue everything enabled now);
//! - [`worker`]: claiming a job, running the sync under a heartbeat-renewed lease, progress,
//!   cancellation, graceful hand-back at shutdown, takeover of jobs whose worker died, and
//!   per-connection backoff after failures;
//! - [`metrics`] and [`http`]: the Prometheus text exposition, `/metrics` and `/healthz`;
//! - [`presence`]: workers saying they are alive (and closing runs whose process died);
//! - [`health`]: the connections' health view (last and next run, open errors, held runs);
//! - [`entities`]: which entities each connection kind can sync (from its source).
//!
//! The jobs and schedules themselves live in the store (`deskbridge_store::jobs`), where the
//! database enforces one active job per connection and entity and one fire per due time.

pub mod cron;
pub mod health;
pub mod http;
pub mod metrics;
pub mod presence;
pub mod schedule;
pub mod scheduler;
pub mod worker;

pub use metrics::Metrics;
pub use worker::{JobReport, Worker, WorkerConfig};

/// Errors of the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Store(#[from] deskbridge_store::StoreError),
    #[error(transparent)]
    Schedule(#[from] schedule::ScheduleError),
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Invalid(String),
}

impl deskbridge_core::HasErrorCode for AgentError {
    fn error_code(&self) -> deskbridge_core::ErrorCode {
        use deskbridge_core::ErrorCode;
        match self {
            AgentError::Store(e) => e.error_code(),
            AgentError::Schedule(e) => e.error_code(),
            // Like the store's own unreadable values.
            AgentError::Corrupt(_) => ErrorCode::DatabaseError,
            AgentError::Invalid(_) => ErrorCode::InvalidInput,
        }
    }
}

/// The entities a connection kind can sync, for schedules and jobs: its source says.
pub mod entities {
    use deskbridge_source::SourceRegistry;

    use crate::AgentError;

    /// The entities of `kind`'s connections; none for a kind no source serves.
    pub fn supported(sources: &SourceRegistry, kind: &str) -> &'static [&'static str] {
        sources.get(kind).map_or(&[], |source| source.entities())
    }

    /// Checks `entity` against the connection kind's list.
    pub fn validate(sources: &SourceRegistry, kind: &str, entity: &str) -> Result<(), AgentError> {
        let list = supported(sources, kind);
        // One custom table of a kind that syncs custom tables: `custom_tables:<desk table>`.
        let one_table = matches!(
            deskbridge_source::SyncEntity::parse_with_table(entity),
            Some((deskbridge_source::SyncEntity::CustomTables, Some(_)))
        ) && list.contains(&deskbridge_source::SyncEntity::CustomTables.as_str());
        if list.contains(&entity) || one_table {
            Ok(())
        } else if list.is_empty() {
            Err(AgentError::Invalid(format!(
                "{kind} connections cannot be scheduled"
            )))
        } else {
            Err(AgentError::Invalid(format!(
                "a {kind} connection syncs {}; {entity:?} is not one of them",
                list.join(", ")
            )))
        }
    }
}
