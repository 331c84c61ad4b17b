//! `deskbridge runs list`: one history of every run — CLI syncs, scheduled and queued runs, runs
//! started in the UI — newest first, with the jobs still waiting for a worker as queued rows.

use anyhow::Context as _;
use deskbridge_agent::health::{duration_text, run_seconds};
use deskbridge_core::ErrorCode;
use deskbridge_store::{Job, JobStatus, RunFilter, RunListing, RunStatus, Store};
use serde_json::{Value, json};

use crate::error::CliError;
use crate::output;

/// The columns of the table for people.
const COLUMNS: &[&str] = &[
    "run",
    "connection",
    "entity",
    "status",
    "started",
    "duration",
    "created",
    "updated",
    "deactivated",
    "errors",
    "queued_by",
    "message",
];

pub async fn list(
    store: &Store,
    connection: Option<&str>,
    status: Option<&str>,
    limit: u32,
    json: bool,
) -> anyhow::Result<()> {
    let status = status
        .map(|s| {
            RunStatus::parse(s.trim()).with_context(|| {
                format!(
                    "unknown status {s:?}; use one of: queued, running, succeeded, partial, failed, held, \
                     cancelled, interrupted"
                )
            })
        })
        .transpose()
        .map_err(|e| CliError::new(ErrorCode::InvalidInput, e.to_string()))?;
    let mut tx = store.read().await?;
    let connection = match connection {
        Some(name) => Some(tx.connection_by_name(name).await?.ok_or_else(|| {
            CliError::new(
                ErrorCode::NotFound,
                format!("no connection named {name:?}; see `deskbridge connection list`"),
            )
        })?),
        None => None,
    };
    let runs = tx
        .run_history(&RunFilter {
            connection: connection.as_ref().map(|c| c.id),
            visible: None,
            status,
            limit,
        })
        .await?;
    // Jobs no worker has started yet have no run: they are part of the history as queued rows.
    let waiting: Vec<Job> = if matches!(status, None | Some(RunStatus::Queued)) {
        tx.jobs(Some(JobStatus::Queued), limit)
            .await?
            .into_iter()
            .filter(|j| connection.as_ref().is_none_or(|c| c.id == j.connection_id))
            .collect()
    } else {
        Vec::new()
    };
    tx.commit().await?;
    let now = store.now();
    let mut rows: Vec<(String, Value)> = runs
        .iter()
        .map(|r| (r.run.created_at.clone(), run_row(r, now)))
        .chain(waiting.iter().map(|j| (j.created_at.clone(), job_row(j))))
        .collect();
    // Newest first; timestamps are fixed-width UTC text.
    rows.sort_by(|a, b| b.0.cmp(&a.0));
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let rows: Vec<Value> = rows.into_iter().map(|(_, v)| v).collect();
    output::print_rows(json, COLUMNS, &rows)
}

/// Who queued a run: `job 12 (schedule)`, or `direct` for a run no job queued (a CLI sync, the
/// UI without workers).
fn queued_by(job: Option<i64>, origin: Option<&str>) -> String {
    match (job, origin) {
        (Some(job), Some(origin)) => format!("job {job} ({origin})"),
        (Some(job), None) => format!("job {job}"),
        (None, _) => "direct".into(),
    }
}

fn run_row(listing: &RunListing, now: jiff::Timestamp) -> Value {
    let run = &listing.run;
    let seconds = run_seconds(run, now);
    let c = &run.counts;
    json!({
        "run": run.id,
        "run_id": run.id,
        "connection": listing.connection,
        "entity": deskbridge_sync::entity_of_run_kind(&run.kind).as_str(),
        "kind": run.kind,
        "status": run.status,
        "started": run.started_at,
        "ended": run.ended_at,
        "duration_seconds": seconds,
        "duration": seconds.map(duration_text),
        "created": c.created,
        "updated": c.updated,
        "deactivated": c.deactivated,
        "unchanged": c.unchanged,
        "conflicts": c.conflicts,
        "errors": c.errors,
        "job_id": listing.job_id,
        "job_origin": listing.job_origin,
        "queued_by": queued_by(listing.job_id.map(|j| j.0), listing.job_origin.as_deref()),
        "message": run.message,
    })
}

fn job_row(job: &Job) -> Value {
    json!({
        "run": Value::Null,
        "run_id": Value::Null,
        "connection": job.connection,
        "entity": job.entity,
        "status": job.status,
        "started": Value::Null,
        "ended": Value::Null,
        "duration_seconds": Value::Null,
        "duration": Value::Null,
        "created": 0,
        "updated": 0,
        "deactivated": 0,
        "unchanged": 0,
        "conflicts": 0,
        "errors": 0,
        "job_id": job.id,
        "job_origin": job.origin,
        "queued_by": queued_by(Some(job.id.0), Some(&job.origin)),
        "message": "waiting for a worker",
    })
}
