//! `deskbridge runs list|jobs|start|cancel`: the run history — every run, whoever started it
//! (a CLI sync, a schedule, the UI) —, the job queue (what is queued, what runs where and how far
//! it got), starting a run now and cancelling one.

use anyhow::{Context as _, bail};
use clap::Subcommand;
use deskbridge_agent::entities;
use deskbridge_core::ErrorCode;
use deskbridge_store::{JobId, JobStatus, NewJob, WriteContext};
use serde_json::{Value, json};

use crate::error::CliError;
use crate::output;
use crate::settings::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum RunsCommand {
    /// List every run, newest first — CLI syncs, scheduled and queued runs, runs started in the
    /// UI — with its connection, entity, status, when, duration, counts and the job that queued
    /// it; jobs still waiting for a worker are listed as queued.
    List {
        /// Only this connection's runs.
        #[arg(long)]
        connection: Option<String>,
        /// Only runs in this status (queued, running, succeeded, partial, failed, held, cancelled,
        /// interrupted).
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// List jobs (the queue), newest first, with progress (pages, requests, tenant), lease and
    /// attempts, and their run's counts.
    Jobs {
        /// Only jobs in this status (queued, running, succeeded, partial, failed, held, cancelled).
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Queue a run of one connection now (a worker or `serve` runs it).
    Start {
        #[arg(long)]
        connection: String,
        #[arg(long, default_value = "directory")]
        entity: String,
        /// Only this tenant of the connection (a CSP customer tenant's id).
        #[arg(long)]
        tenant: Option<String>,
        /// Read everything, ignoring delta tokens.
        #[arg(long)]
        full: bool,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a job: a queued one at once, a running one at its worker's next heartbeat.
    Cancel { job: i64 },
}

pub async fn run(global: &GlobalArgs, command: RunsCommand) -> anyhow::Result<()> {
    let store = global.open_store().await?;
    let result = run_with(&store, command).await;
    store.close().await;
    result
}

async fn run_with(store: &deskbridge_store::Store, command: RunsCommand) -> anyhow::Result<()> {
    match command {
        RunsCommand::List {
            connection,
            status,
            limit,
            json,
        } => super::run_history::list(store, connection.as_deref(), status.as_deref(), limit, json).await?,
        RunsCommand::Jobs { status, limit, json } => {
            let status = status
                .map(|s| JobStatus::parse(&s).with_context(|| format!("unknown status {s:?}")))
                .transpose()?;
            let mut tx = store.read().await?;
            let jobs = tx.jobs(status, limit).await?;
            let mut rows = Vec::new();
            for job in jobs {
                let run = match job.run_id {
                    Some(id) => tx.run(id).await?,
                    None => None,
                };
                let mut v = serde_json::to_value(&job)?;
                v["run"] = serde_json::to_value(&run)?;
                v["pages"] = job.progress.get("pages").cloned().unwrap_or(Value::Null);
                v["tenant"] = job.progress.get("tenant").cloned().unwrap_or(Value::Null);
                v["records"] = run.as_ref().map_or(Value::Null, |r| {
                    json!(r.counts.created + r.counts.updated + r.counts.deactivated + r.counts.unchanged)
                });
                rows.push(v);
            }
            tx.commit().await?;
            output::print_rows(
                json,
                &[
                    "id",
                    "connection",
                    "entity",
                    "status",
                    "origin",
                    "attempts",
                    "takeovers",
                    "lease_owner",
                    "pages",
                    "records",
                    "tenant",
                    "run_id",
                    "message",
                ],
                &rows,
            )?;
        }
        RunsCommand::Start {
            connection,
            entity,
            tenant,
            full,
            json,
        } => {
            let mut tx = store.begin(WriteContext::manual()).await?;
            let conn = tx.connection_by_name(&connection).await?.ok_or_else(|| {
                CliError::new(
                    ErrorCode::NotFound,
                    format!("no connection named {connection:?}; see `deskbridge connection list`"),
                )
            })?;
            entities::validate(&deskbridge_connectors::registry(), &conn.kind, &entity)?;
            let job = tx
                .enqueue_job(&NewJob {
                    connection_id: conn.id,
                    entity: entity.clone(),
                    full,
                    origin: "manual".into(),
                    schedule_id: None,
                    due_at: None,
                    tenant_id: tenant,
                })
                .await?;
            tx.commit().await?;
            // A queued job waits for a worker: say so when none is there to take it.
            let workers = deskbridge_agent::presence::live_workers(store).await?;
            match (job, json) {
                (Some(job), true) => crate::output::outln!(
                    "{}",
                    json!({"job_id": job, "queued": true, "workers": workers.len()})
                ),
                (None, true) => crate::output::outln!(
                    "{}",
                    json!({"job_id": null, "queued": false, "workers": workers.len()})
                ),
                (Some(job), false) => crate::output::outln!("queued job {job} for {connection} {entity}"),
                (None, false) => crate::output::outln!(
                    "{connection} {entity} already has a job queued or running; see `deskbridge runs list`"
                ),
            }
            if workers.is_empty() {
                eprintln!(
                    "no worker is running to take the job: it waits in the queue until one starts. Start one with \
                     `deskbridge serve` (the admin UI with a worker) or `deskbridge worker`, against this database"
                );
            }
        }
        RunsCommand::Cancel { job } => {
            let mut tx = store.begin(WriteContext::manual()).await?;
            let status = tx.cancel_job(JobId(job)).await?;
            tx.commit().await?;
            match status {
                None => bail!(CliError::new(
                    ErrorCode::NotFound,
                    format!("no job {job}; see `deskbridge runs list`")
                )),
                Some(JobStatus::Cancelled) => crate::output::outln!("job {job} cancelled"),
                Some(JobStatus::Running) => {
                    crate::output::outln!("job {job} is running; its worker stops it at its next heartbeat")
                }
                Some(other) => crate::output::outln!("job {job} had already ended ({})", other.as_str()),
            }
        }
    }
    Ok(())
}
