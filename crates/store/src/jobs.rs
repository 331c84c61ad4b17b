//! The sync agent's durable state: jobs (a run to do, with a lease and a heartbeat), schedules
//! (when to enqueue one) and per-connection backoff.
//!
//! Invariants, kept by the database rather than by the workers:
//! - at most one queued or running job per connection and entity (a partial unique index);
//! - a schedule fires once per due time (a compare-and-set on `next_due` in the transaction that
//!   enqueues the job, and a unique index on (schedule, due time));
//! - a job is claimed by one worker: `FOR UPDATE SKIP LOCKED` on PostgreSQL, the single writer
//!   (`BEGIN IMMEDIATE`) on SQLite; a running job whose lease has expired is claimable again
//!   (takeover), and the worker that lost it can no longer heartbeat or finish it.

use deskbridge_core::{ConnectionId, RunId};
use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::db::{Dialect, Sql, SqlType, StoreTx};
use crate::{Result, StoreError, format_timestamp, parse_timestamp};

/// A job's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A schedule's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ScheduleId(pub i64);

impl std::fmt::Display for ScheduleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a job is in its life: the same states as a run, so one type serves both.
pub use crate::sync_state::RunStatus as JobStatus;

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub connection_id: ConnectionId,
    pub entity: String,
    /// Ignore delta cursors.
    pub full: bool,
    /// "schedule", "manual" or "start".
    pub origin: String,
    pub schedule_id: Option<ScheduleId>,
    pub due_at: Option<Timestamp>,
    /// Only this partition (tenant) of the connection; `None`: all of them.
    pub tenant_id: Option<String>,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: JobId,
    pub connection_id: ConnectionId,
    pub connection: String,
    pub entity: String,
    pub status: JobStatus,
    pub full: bool,
    pub origin: String,
    pub schedule_id: Option<ScheduleId>,
    pub due_at: Option<String>,
    pub attempts: i64,
    pub takeovers: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<String>,
    pub heartbeat_at: Option<String>,
    pub cancel_requested: bool,
    pub run_id: Option<RunId>,
    /// Pages, requests, records and the current tenant, as the worker last reported them.
    pub progress: Value,
    pub message: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    /// Only this partition (tenant) of the connection; `None`: all of them.
    pub tenant_id: Option<String>,
}

/// A job a worker has just claimed, with what it needs to know about how.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimedJob {
    pub job: Job,
    /// The job was running under another worker whose lease expired.
    pub taken_over: bool,
    /// The run the previous worker left behind (marked failed by the takeover).
    pub abandoned_run: Option<RunId>,
}

/// A schedule to add.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub connection_id: ConnectionId,
    pub entity: String,
    /// "interval" or "cron".
    pub kind: String,
    /// Seconds for an interval, the expression for cron.
    pub spec: String,
    pub time_zone: String,
    /// Local "HH:MM" bounds of the window runs may start in.
    pub window_start: Option<String>,
    pub window_end: Option<String>,
    pub next_due: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schedule {
    pub id: ScheduleId,
    pub connection_id: ConnectionId,
    pub connection: String,
    pub entity: String,
    pub kind: String,
    pub spec: String,
    pub time_zone: String,
    pub window_start: Option<String>,
    pub window_end: Option<String>,
    pub enabled: bool,
    pub next_due: String,
    pub last_fired_at: Option<String>,
}

/// What firing a due schedule did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "job")]
pub enum FireOutcome {
    /// This caller fired it and enqueued the job.
    Enqueued(JobId),
    /// This caller fired it, but a job for the connection and entity was already queued or
    /// running, so the due time is served by that one.
    Coalesced,
    /// Another scheduler fired this due time first.
    AlreadyFired,
}

/// A connection's failure streak and how long to leave it alone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionHealth {
    pub connection_id: ConnectionId,
    pub consecutive_failures: i64,
    pub not_before: Option<String>,
    pub last_error: Option<String>,
}

const JOB_COLUMNS: &str = "j.id, j.connection_id, c.name, j.entity, j.status, j.full_read, j.origin, j.schedule_id, \
    j.due_at, j.attempts, j.takeovers, j.lease_owner, j.lease_expires_at, j.heartbeat_at, j.cancel_requested, \
    j.run_id, j.progress, j.message, j.created_at, j.started_at, j.ended_at, j.tenant_id";
const JOB_TYPES: [SqlType; 22] = [
    SqlType::Int,
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Int,
    SqlType::Text,
    SqlType::Int,
    SqlType::Text,
    SqlType::Int,
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Int,
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
];

fn job_from_row(row: &[Sql]) -> Result<Job> {
    let corrupt = || StoreError::Corrupt("jobs".into(), "unexpected row shape".into());
    let int = |i: usize| row.get(i).and_then(Sql::as_int);
    let text = |i: usize| row.get(i).and_then(Sql::as_text).map(str::to_owned);
    Ok(Job {
        id: JobId(int(0).ok_or_else(corrupt)?),
        connection_id: ConnectionId(int(1).ok_or_else(corrupt)?),
        connection: text(2).ok_or_else(corrupt)?,
        entity: text(3).ok_or_else(corrupt)?,
        status: text(4).and_then(|s| JobStatus::parse(&s)).ok_or_else(corrupt)?,
        full: int(5).unwrap_or(0) != 0,
        origin: text(6).ok_or_else(corrupt)?,
        schedule_id: int(7).map(ScheduleId),
        due_at: text(8),
        attempts: int(9).unwrap_or(0),
        takeovers: int(10).unwrap_or(0),
        lease_owner: text(11),
        lease_expires_at: text(12),
        heartbeat_at: text(13),
        cancel_requested: int(14).unwrap_or(0) != 0,
        run_id: int(15).map(RunId),
        progress: text(16)
            .and_then(|p| serde_json::from_str(&p).ok())
            .unwrap_or(Value::Null),
        message: text(17),
        created_at: text(18).ok_or_else(corrupt)?,
        started_at: text(19),
        ended_at: text(20),
        tenant_id: text(21),
    })
}

const SCHEDULE_COLUMNS: &str = "s.id, s.connection_id, c.name, s.entity, s.kind, s.spec, s.time_zone, \
    s.window_start, s.window_end, s.enabled, s.next_due, s.last_fired_at";
const SCHEDULE_TYPES: [SqlType; 12] = [
    SqlType::Int,
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
];

fn schedule_from_row(row: &[Sql]) -> Result<Schedule> {
    let corrupt = || StoreError::Corrupt("schedules".into(), "unexpected row shape".into());
    let int = |i: usize| row.get(i).and_then(Sql::as_int);
    let text = |i: usize| row.get(i).and_then(Sql::as_text).map(str::to_owned);
    Ok(Schedule {
        id: ScheduleId(int(0).ok_or_else(corrupt)?),
        connection_id: ConnectionId(int(1).ok_or_else(corrupt)?),
        connection: text(2).ok_or_else(corrupt)?,
        entity: text(3).ok_or_else(corrupt)?,
        kind: text(4).ok_or_else(corrupt)?,
        spec: text(5).ok_or_else(corrupt)?,
        time_zone: text(6).ok_or_else(corrupt)?,
        window_start: text(7),
        window_end: text(8),
        enabled: int(9).unwrap_or(0) != 0,
        next_due: text(10).ok_or_else(corrupt)?,
        last_fired_at: text(11),
    })
}

fn ts(t: Timestamp) -> Sql {
    Sql::Text(format_timestamp(t))
}

impl StoreTx {
    // ------------------------------------------------------------------ jobs

    /// Enqueues a job unless one for the same connection and entity is already queued or
    /// running (then `None`: the pending one will do the work).
    pub async fn enqueue_job(&mut self, new: &NewJob) -> Result<Option<JobId>> {
        let at = self.at;
        let row = self
            .row(
                "INSERT INTO jobs (connection_id, entity, status, full_read, origin, schedule_id, due_at, created_at, \
                 tenant_id) VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING id",
                &[
                    Sql::Int(new.connection_id.0),
                    Sql::text(new.entity.clone()),
                    Sql::Int(i64::from(new.full)),
                    Sql::text(new.origin.clone()),
                    Sql::opt_int(new.schedule_id.map(|s| s.0)),
                    Sql::opt_text(new.due_at.map(format_timestamp)),
                    ts(at),
                    Sql::opt_text(new.tenant_id.clone()),
                ],
                &[SqlType::Int],
            )
            .await?;
        Ok(row.and_then(|r| r.first().and_then(Sql::as_int)).map(JobId))
    }

    /// The queued or running job whose current run is `run`, if any.
    pub async fn active_job_for_run(&mut self, run: RunId) -> Result<Option<Job>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs j JOIN connections c ON c.id = j.connection_id \
             WHERE j.run_id = $1 AND j.status IN ('queued', 'running')"
        );
        self.row(&sql, &[Sql::Int(run.0)], &JOB_TYPES)
            .await?
            .as_deref()
            .map(job_from_row)
            .transpose()
    }

    pub async fn job(&mut self, id: JobId) -> Result<Option<Job>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs j JOIN connections c ON c.id = j.connection_id WHERE j.id = $1"
        );
        self.row(&sql, &[Sql::Int(id.0)], &JOB_TYPES)
            .await?
            .as_deref()
            .map(job_from_row)
            .transpose()
    }

    /// The newest jobs first, optionally only those in `status`.
    pub async fn jobs(&mut self, status: Option<JobStatus>, limit: u32) -> Result<Vec<Job>> {
        let (filter, args) = match status {
            Some(s) => (
                "WHERE j.status = $2",
                vec![Sql::Int(i64::from(limit)), Sql::text(s.as_str())],
            ),
            None => ("", vec![Sql::Int(i64::from(limit))]),
        };
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs j JOIN connections c ON c.id = j.connection_id {filter} \
             ORDER BY j.id DESC LIMIT $1"
        );
        self.rows(&sql, &args, &JOB_TYPES)
            .await?
            .iter()
            .map(|r| job_from_row(r))
            .collect()
    }

    /// How many jobs are in each status.
    pub async fn job_counts(&mut self) -> Result<Vec<(String, i64)>> {
        let rows = self
            .rows(
                "SELECT status, COUNT(*) FROM jobs GROUP BY status ORDER BY status",
                &[],
                &[SqlType::Text, SqlType::Int],
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| match r.as_slice() {
                [Sql::Text(s), Sql::Int(n)] => Some((s.clone(), *n)),
                _ => None,
            })
            .collect())
    }

    /// Claims the oldest claimable job for `worker` with a lease until `lease_until`: a queued
    /// job of a connection not backing off, or a running job whose lease has expired (a
    /// takeover: the run the lost worker left behind is marked failed).
    pub async fn claim_job(&mut self, worker: &str, lease_until: Timestamp) -> Result<Option<ClaimedJob>> {
        let now = self.at;
        let lock = match self.dialect() {
            Dialect::Postgres => " FOR UPDATE OF j SKIP LOCKED",
            Dialect::Sqlite => "", // BEGIN IMMEDIATE: this transaction is the only writer
        };
        let sql = format!(
            "SELECT j.id, j.status, j.run_id FROM jobs j \
             WHERE (j.status = 'queued' AND NOT EXISTS (SELECT 1 FROM connection_health h \
                    WHERE h.connection_id = j.connection_id AND h.not_before > $1)) \
                OR (j.status = 'running' AND j.lease_expires_at < $1) \
             ORDER BY j.id LIMIT 1{lock}"
        );
        let Some(row) = self
            .row(&sql, &[ts(now)], &[SqlType::Int, SqlType::Text, SqlType::Int])
            .await?
        else {
            return Ok(None);
        };
        let (id, taken_over, abandoned_run) = match row.as_slice() {
            [Sql::Int(id), Sql::Text(status), run] => {
                (JobId(*id), status == "running", run.as_int().map(RunId))
            }
            _ => return Err(StoreError::Corrupt("jobs".into(), "unexpected claim row".into())),
        };
        self.execute(
            "UPDATE jobs SET status = 'running', lease_owner = $1, lease_expires_at = $2, heartbeat_at = $3, \
             attempts = attempts + 1, takeovers = takeovers + $4, started_at = COALESCE(started_at, $3) \
             WHERE id = $5",
            &[
                Sql::text(worker),
                ts(lease_until),
                ts(now),
                Sql::Int(i64::from(taken_over)),
                Sql::Int(id.0),
            ],
        )
        .await?;
        let abandoned_run = if taken_over { abandoned_run } else { None };
        if let Some(run) = abandoned_run {
            self.execute(
                "UPDATE runs SET status = 'failed', message = $1, ended_at = $2 WHERE id = $3 AND status = 'running'",
                &[
                    Sql::text(format!("the worker running job {id} lost its lease; {worker} took the job over")),
                    ts(now),
                    Sql::Int(run.0),
                ],
            )
            .await?;
        }
        let job = self
            .job(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("jobs".into(), format!("claimed job {id} vanished")))?;
        Ok(Some(ClaimedJob {
            job,
            taken_over,
            abandoned_run,
        }))
    }

    /// Extends the lease and saves progress. `Ok(None)` when the worker no longer holds the job
    /// (its lease expired and another worker took it over, or it was finished); otherwise
    /// whether cancellation was requested.
    pub async fn heartbeat_job(
        &mut self,
        id: JobId,
        worker: &str,
        attempt: i64,
        lease_until: Timestamp,
        progress: &Value,
    ) -> Result<Option<bool>> {
        let now = self.at;
        let row = self
            .row(
                "UPDATE jobs SET lease_expires_at = $1, heartbeat_at = $2, progress = $3 \
                 WHERE id = $4 AND status = 'running' AND lease_owner = $5 AND attempts = $6 \
                 RETURNING cancel_requested",
                &[
                    ts(lease_until),
                    ts(now),
                    Sql::Text(progress.to_string()),
                    Sql::Int(id.0),
                    Sql::text(worker),
                    Sql::Int(attempt),
                ],
                &[SqlType::Int],
            )
            .await?;
        Ok(row.map(|r| r.first().and_then(Sql::as_int).unwrap_or(0) != 0))
    }

    /// Records the run the job's current attempt started.
    pub async fn set_job_run(&mut self, id: JobId, worker: &str, attempt: i64, run: RunId) -> Result<bool> {
        let n = self
            .execute(
                "UPDATE jobs SET run_id = $1 WHERE id = $2 AND status = 'running' AND lease_owner = $3 AND attempts = $4",
                &[Sql::Int(run.0), Sql::Int(id.0), Sql::text(worker), Sql::Int(attempt)],
            )
            .await?;
        Ok(n == 1)
    }

    /// Finishes the job this worker holds. `false` when it no longer holds it.
    pub async fn finish_job(
        &mut self,
        id: JobId,
        worker: &str,
        attempt: i64,
        status: JobStatus,
        message: Option<&str>,
        progress: &Value,
    ) -> Result<bool> {
        let now = self.at;
        let n = self
            .execute(
                "UPDATE jobs SET status = $1, message = $2, ended_at = $3, progress = $4, lease_owner = NULL, \
                 lease_expires_at = NULL WHERE id = $5 AND status = 'running' AND lease_owner = $6 AND attempts = $7",
                &[
                    Sql::text(status.as_str()),
                    Sql::opt_text(message),
                    ts(now),
                    Sql::Text(progress.to_string()),
                    Sql::Int(id.0),
                    Sql::text(worker),
                    Sql::Int(attempt),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Hands a held job back to the queue (graceful shutdown): another worker picks it up.
    pub async fn release_job(&mut self, id: JobId, worker: &str, attempt: i64) -> Result<bool> {
        let n = self
            .execute(
                "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL \
                 WHERE id = $1 AND status = 'running' AND lease_owner = $2 AND attempts = $3",
                &[Sql::Int(id.0), Sql::text(worker), Sql::Int(attempt)],
            )
            .await?;
        Ok(n == 1)
    }

    /// Asks for a job to stop. A queued job is cancelled at once; a running one is stopped by
    /// its worker at its next heartbeat. Returns the job's status afterwards, or `None` if there
    /// is no such job.
    pub async fn cancel_job(&mut self, id: JobId) -> Result<Option<JobStatus>> {
        let now = self.at;
        self.execute(
            "UPDATE jobs SET status = 'cancelled', ended_at = $1, message = 'cancelled before it started', \
             cancel_requested = 1 WHERE id = $2 AND status = 'queued'",
            &[ts(now), Sql::Int(id.0)],
        )
        .await?;
        self.execute(
            "UPDATE jobs SET cancel_requested = 1 WHERE id = $1 AND status = 'running'",
            &[Sql::Int(id.0)],
        )
        .await?;
        Ok(self.job(id).await?.map(|j| j.status))
    }

    // ------------------------------------------------------------------ schedules

    pub async fn add_schedule(&mut self, new: &NewSchedule) -> Result<ScheduleId> {
        let at = self.at;
        let id = self
            .insert_returning_id(
                "INSERT INTO schedules (connection_id, entity, kind, spec, time_zone, window_start, window_end, \
                 enabled, next_due, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9, $9) \
                 RETURNING id",
                &[
                    Sql::Int(new.connection_id.0),
                    Sql::text(new.entity.clone()),
                    Sql::text(new.kind.clone()),
                    Sql::text(new.spec.clone()),
                    Sql::text(new.time_zone.clone()),
                    Sql::opt_text(new.window_start.clone()),
                    Sql::opt_text(new.window_end.clone()),
                    ts(new.next_due),
                    ts(at),
                ],
                "schedules",
            )
            .await?;
        Ok(ScheduleId(id))
    }

    pub async fn schedules(&mut self) -> Result<Vec<Schedule>> {
        let sql = format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules s JOIN connections c ON c.id = s.connection_id ORDER BY s.id"
        );
        self.rows(&sql, &[], &SCHEDULE_TYPES)
            .await?
            .iter()
            .map(|r| schedule_from_row(r))
            .collect()
    }

    /// Enabled schedules whose next due time is at or before `now`.
    pub async fn due_schedules(&mut self, now: Timestamp, limit: u32) -> Result<Vec<Schedule>> {
        let sql = format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules s JOIN connections c ON c.id = s.connection_id \
             WHERE s.enabled = 1 AND s.next_due <= $1 ORDER BY s.next_due, s.id LIMIT $2"
        );
        self.rows(&sql, &[ts(now), Sql::Int(i64::from(limit))], &SCHEDULE_TYPES)
            .await?
            .iter()
            .map(|r| schedule_from_row(r))
            .collect()
    }

    pub async fn remove_schedule(&mut self, id: ScheduleId) -> Result<bool> {
        Ok(self
            .execute("DELETE FROM schedules WHERE id = $1", &[Sql::Int(id.0)])
            .await?
            == 1)
    }

    pub async fn set_schedule_enabled(&mut self, id: ScheduleId, enabled: bool) -> Result<bool> {
        let at = self.at;
        Ok(self
            .execute(
                "UPDATE schedules SET enabled = $1, updated_at = $2 WHERE id = $3",
                &[Sql::Int(i64::from(enabled)), ts(at), Sql::Int(id.0)],
            )
            .await?
            == 1)
    }

    /// Fires the schedule's due time `due` (as read from `next_due`): moves `next_due` to `next`
    /// only if it still is `due` — the compare-and-set that makes several schedulers fire each
    /// due time once — and, in the same transaction, enqueues the job.
    pub async fn fire_schedule(
        &mut self,
        schedule: &Schedule,
        due: &str,
        next: Timestamp,
    ) -> Result<FireOutcome> {
        let at = self.at;
        let n = self
            .execute(
                "UPDATE schedules SET next_due = $1, last_fired_at = $2 WHERE id = $3 AND next_due = $4 AND enabled = 1",
                &[ts(next), ts(at), Sql::Int(schedule.id.0), Sql::text(due)],
            )
            .await?;
        if n == 0 {
            return Ok(FireOutcome::AlreadyFired);
        }
        let due_at = parse_timestamp(due).map_err(|e| StoreError::Corrupt("schedules".into(), e))?;
        let job = self
            .enqueue_job(&NewJob {
                connection_id: schedule.connection_id,
                entity: schedule.entity.clone(),
                full: false,
                origin: "schedule".into(),
                schedule_id: Some(schedule.id),
                due_at: Some(due_at),
                tenant_id: None,
            })
            .await?;
        Ok(job.map_or(FireOutcome::Coalesced, FireOutcome::Enqueued))
    }

    // ------------------------------------------------------------------ backoff

    /// Records a job's outcome for its connection: a failure lengthens the streak and sets how
    /// long to leave the connection alone (`not_before`); a success clears it.
    pub async fn record_connection_outcome(
        &mut self,
        connection: ConnectionId,
        failed: Option<(&str, Timestamp)>,
    ) -> Result<ConnectionHealth> {
        let at = self.at;
        match failed {
            Some((error, not_before)) => {
                self.execute(
                    "INSERT INTO connection_health (connection_id, consecutive_failures, not_before, last_error, updated_at) \
                     VALUES ($1, 1, $2, $3, $4) ON CONFLICT (connection_id) DO UPDATE SET \
                     consecutive_failures = connection_health.consecutive_failures + 1, not_before = $2, \
                     last_error = $3, updated_at = $4",
                    &[Sql::Int(connection.0), ts(not_before), Sql::text(error), ts(at)],
                )
                .await?;
            }
            None => {
                self.execute(
                    "INSERT INTO connection_health (connection_id, consecutive_failures, updated_at) VALUES ($1, 0, $2) \
                     ON CONFLICT (connection_id) DO UPDATE SET consecutive_failures = 0, not_before = NULL, \
                     last_error = NULL, updated_at = $2",
                    &[Sql::Int(connection.0), ts(at)],
                )
                .await?;
            }
        }
        self.connection_health(connection).await
    }

    pub async fn connection_health(&mut self, connection: ConnectionId) -> Result<ConnectionHealth> {
        let row = self
            .row(
                "SELECT consecutive_failures, not_before, last_error FROM connection_health WHERE connection_id = $1",
                &[Sql::Int(connection.0)],
                &[SqlType::Int, SqlType::Text, SqlType::Text],
            )
            .await?;
        Ok(match row.as_deref() {
            Some([failures, not_before, error]) => ConnectionHealth {
                connection_id: connection,
                consecutive_failures: failures.as_int().unwrap_or(0),
                not_before: not_before.as_text().map(str::to_owned),
                last_error: error.as_text().map(str::to_owned),
            },
            _ => ConnectionHealth {
                connection_id: connection,
                consecutive_failures: 0,
                not_before: None,
                last_error: None,
            },
        })
    }
}
