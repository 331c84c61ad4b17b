//! Read-only views across connections: the run history (every run, whoever started it, with
//! its connection's name and the job that queued it) and what the connections' health view is
//! built from. Each is a fixed, small number of queries whatever the number of connections, so
//! the lists stay fast with hundreds of them.

use std::collections::HashMap;

use deskbridge_core::ConnectionId;
use serde::Serialize;

use crate::db::{Sql, SqlType, StoreTx};
use crate::jobs::JobId;
use crate::sync_state::{RUN_COLUMNS, RUN_TYPES, Run, RunStatus, run_from_row};
use crate::{Result, StoreError};

/// Which runs [`StoreTx::run_history`] lists.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only this connection's runs.
    pub connection: Option<ConnectionId>,
    /// Only runs of these connections (what the caller may read); `None`: every connection's.
    pub visible: Option<Vec<ConnectionId>>,
    pub status: Option<RunStatus>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// One run of the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunListing {
    #[serde(flatten)]
    pub run: Run,
    /// The connection's name (`None` for a run of no connection, or of one since removed).
    pub connection: Option<String>,
    /// The job that queued it, when one did (a schedule, `runs start`, the UI under `serve`);
    /// `None`: it was run directly (`deskbridge sync`, the UI without workers).
    pub job_id: Option<JobId>,
    /// The job's origin: "schedule", "manual" or "start".
    pub job_origin: Option<String>,
}

/// `r.id, r.connection_id, …`: the run columns of a query that joins other tables.
fn run_columns(alias: &str) -> String {
    RUN_COLUMNS
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$first, $first+1, …` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl StoreTx {
    /// Every kind of run — CLI syncs, scheduled and queued jobs, runs started in the UI — newest
    /// first, with the connection's name and the job that queued each.
    pub async fn run_history(&mut self, filter: &RunFilter) -> Result<Vec<RunListing>> {
        let mut conditions = Vec::new();
        let mut args = Vec::new();
        if let Some(c) = filter.connection {
            args.push(Sql::Int(c.0));
            conditions.push(format!("r.connection_id = ${}", args.len()));
        }
        if let Some(visible) = &filter.visible {
            if visible.is_empty() {
                return Ok(Vec::new());
            }
            let first = args.len() + 1;
            args.extend(visible.iter().map(|c| Sql::Int(c.0)));
            conditions.push(format!(
                "r.connection_id IN ({})",
                placeholders(first, visible.len())
            ));
        }
        if let Some(status) = filter.status {
            args.push(Sql::text(status.as_str()));
            conditions.push(format!("r.status = ${}", args.len()));
        }
        args.push(Sql::Int(i64::from(filter.limit.max(1))));
        let limit = args.len();
        let condition = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        // The job through a scalar subquery on jobs(run_id): one per run, never a duplicate row.
        let sql = format!(
            "SELECT {}, c.name, (SELECT MIN(j.id) FROM jobs j WHERE j.run_id = r.id) AS job_id \
             FROM runs r LEFT JOIN connections c ON c.id = r.connection_id {condition} \
             ORDER BY r.id DESC LIMIT ${limit}",
            run_columns("r")
        );
        let mut types = RUN_TYPES.to_vec();
        types.extend([SqlType::Text, SqlType::Int]);
        let rows = self.rows(&sql, &args, &types).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let n = RUN_TYPES.len();
            let run = run_from_row(row.get(..n).unwrap_or_default())?;
            out.push(RunListing {
                run,
                connection: row.get(n).and_then(Sql::as_text).map(str::to_owned),
                job_id: row.get(n + 1).and_then(Sql::as_int).map(JobId),
                job_origin: None,
            });
        }
        // The origins of the jobs found, in one query.
        let jobs: Vec<i64> = out.iter().filter_map(|r| r.job_id.map(|j| j.0)).collect();
        if !jobs.is_empty() {
            let sql = format!(
                "SELECT id, origin FROM jobs WHERE id IN ({})",
                placeholders(1, jobs.len())
            );
            let args: Vec<Sql> = jobs.iter().map(|j| Sql::Int(*j)).collect();
            let origins: HashMap<i64, String> = self
                .rows(&sql, &args, &[SqlType::Int, SqlType::Text])
                .await?
                .into_iter()
                .filter_map(|r| match r.as_slice() {
                    [Sql::Int(id), Sql::Text(origin)] => Some((*id, origin.clone())),
                    _ => None,
                })
                .collect();
            for listing in &mut out {
                listing.job_origin = listing.job_id.and_then(|j| origins.get(&j.0).cloned());
            }
        }
        Ok(out)
    }

    /// The newest run of each of `kinds` of every connection (at most one per connection and
    /// kind): one indexed lookup per pair, in one query.
    pub async fn latest_runs(&mut self, kinds: &[&str]) -> Result<Vec<Run>> {
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let kind_rows = (1..=kinds.len())
            .map(|i| format!("SELECT ${i} AS kind"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let sql = format!(
            "SELECT {} FROM runs r WHERE r.id IN (SELECT (SELECT MAX(x.id) FROM runs x \
             WHERE x.connection_id = c.id AND x.kind = k.kind) FROM connections c CROSS JOIN ({kind_rows}) k) \
             ORDER BY r.id",
            run_columns("r")
        );
        let args: Vec<Sql> = kinds.iter().map(|k| Sql::text(*k)).collect();
        self.rows(&sql, &args, &RUN_TYPES)
            .await?
            .iter()
            .map(|r| run_from_row(r))
            .collect()
    }

    /// When each connection's next scheduled run is due: the earliest `next_due` of its enabled
    /// schedules.
    pub async fn next_due_by_connection(&mut self) -> Result<HashMap<ConnectionId, String>> {
        let rows = self
            .rows(
                "SELECT connection_id, MIN(next_due) FROM schedules WHERE enabled = 1 GROUP BY connection_id",
                &[],
                &[SqlType::Int, SqlType::Text],
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| match r.as_slice() {
                [Sql::Int(c), Sql::Text(due)] => Some((ConnectionId(*c), due.clone())),
                _ => None,
            })
            .collect())
    }

    /// The names of the desk customers with these ids (those that exist).
    pub async fn customer_names(&mut self, ids: &[i64]) -> Result<HashMap<i64, String>> {
        let mut names = HashMap::new();
        // Bounded statements: a CSP connection may have thousands of customers.
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT id, name FROM customers WHERE id IN ({})",
                placeholders(1, chunk.len())
            );
            let args: Vec<Sql> = chunk.iter().map(|i| Sql::Int(*i)).collect();
            for row in self.rows(&sql, &args, &[SqlType::Int, SqlType::Text]).await? {
                match row.as_slice() {
                    [Sql::Int(id), Sql::Text(name)] => {
                        names.insert(*id, name.clone());
                    }
                    _ => {
                        return Err(StoreError::Corrupt(
                            "customers".into(),
                            "unexpected row shape".into(),
                        ));
                    }
                }
            }
        }
        Ok(names)
    }
}
