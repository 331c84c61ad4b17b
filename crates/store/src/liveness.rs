//! Who is alive: a run's heartbeat while it goes on, closing the runs whose process died, and the
//! workers that say they are there to take jobs.
//!
//! A run is written by one process (a CLI `sync`, a worker, `serve`). If that process dies, nothing
//! else would ever end the run: its heartbeat is what tells a live run from an orphan. A running
//! run whose heartbeat is older than the caller's lease is closed as `interrupted`; what its
//! tenants committed stays (cursors are committed with their data), so the next run resumes.

use deskbridge_core::{ConnectionId, RunId};
use jiff::Timestamp;
use serde::Serialize;

use crate::db::{Sql, SqlType, StoreTx};
use crate::{Result, format_timestamp};

/// A worker that said it was alive.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerPresence {
    pub id: String,
    pub started_at: String,
    pub seen_at: String,
}

impl StoreTx {
    /// Renews a run's heartbeat. `false` when the run is no longer running (it ended, or another
    /// process closed it as interrupted).
    pub async fn heartbeat_run(&mut self, run: RunId) -> Result<bool> {
        let at = Sql::Text(format_timestamp(self.at));
        let n = self
            .execute(
                "UPDATE runs SET heartbeat_at = $1 WHERE id = $2 AND status = 'running'",
                &[at, Sql::Int(run.0)],
            )
            .await?;
        Ok(n == 1)
    }

    /// Closes as `interrupted` the running runs (of `connection`, or of every connection) whose
    /// heartbeat is older than `stale_before` — a run from before heartbeats existed counts from
    /// its start. Returns the runs closed, oldest first.
    pub async fn close_stale_runs(
        &mut self,
        connection: Option<ConnectionId>,
        stale_before: Timestamp,
    ) -> Result<Vec<RunId>> {
        let now = Sql::Text(format_timestamp(self.at));
        let cutoff = format_timestamp(stale_before);
        let message = format!(
            "interrupted: the process running it stopped (no sign of life since before {cutoff}); the next run \
             resumes from the last committed tenant"
        );
        let mut args = vec![now, Sql::Text(message), Sql::Text(cutoff)];
        let only = match connection {
            Some(c) => {
                args.push(Sql::Int(c.0));
                " AND connection_id = $4"
            }
            None => "",
        };
        let sql = format!(
            "UPDATE runs SET status = 'interrupted', ended_at = $1, message = $2 \
             WHERE status = 'running' AND COALESCE(heartbeat_at, started_at, created_at) < $3{only} RETURNING id"
        );
        let mut runs: Vec<RunId> = self
            .rows(&sql, &args, &[SqlType::Int])
            .await?
            .iter()
            .filter_map(|r| r.first().and_then(Sql::as_int).map(RunId))
            .collect();
        runs.sort();
        Ok(runs)
    }

    /// Closes one run as `interrupted` with `message` (its own process was stopped), unless it
    /// has already ended. `true` when it was still running.
    pub async fn interrupt_run(&mut self, run: RunId, message: &str) -> Result<bool> {
        let now = Sql::Text(format_timestamp(self.at));
        let n = self
            .execute(
                "UPDATE runs SET status = 'interrupted', ended_at = $1, message = $2 \
                 WHERE id = $3 AND status = 'running'",
                &[now, Sql::text(message), Sql::Int(run.0)],
            )
            .await?;
        Ok(n == 1)
    }

    /// Records that worker `id` is alive now.
    pub async fn worker_seen(&mut self, id: &str) -> Result<()> {
        let now = Sql::Text(format_timestamp(self.at));
        self.execute(
            "INSERT INTO workers (id, started_at, seen_at) VALUES ($1, $2, $2) \
             ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
            &[Sql::text(id), now],
        )
        .await?;
        Ok(())
    }

    /// Forgets worker `id` (it stopped cleanly).
    pub async fn worker_gone(&mut self, id: &str) -> Result<()> {
        self.execute("DELETE FROM workers WHERE id = $1", &[Sql::text(id)])
            .await?;
        Ok(())
    }

    /// The workers seen since `seen_after`, most recently seen first.
    pub async fn live_workers(&mut self, seen_after: Timestamp) -> Result<Vec<WorkerPresence>> {
        let rows = self
            .rows(
                "SELECT id, started_at, seen_at FROM workers WHERE seen_at >= $1 ORDER BY seen_at DESC, id",
                &[Sql::Text(format_timestamp(seen_after))],
                &[SqlType::Text; 3],
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| match r.as_slice() {
                [Sql::Text(id), Sql::Text(started), Sql::Text(seen)] => Some(WorkerPresence {
                    id: id.clone(),
                    started_at: started.clone(),
                    seen_at: seen.clone(),
                }),
                _ => None,
            })
            .collect())
    }
}
