//! `deskbridge schedule add|list|remove|enable|disable`: when each connection syncs.

use std::sync::Arc;

use anyhow::bail;
use clap::Subcommand;
use deskbridge_agent::schedule::new_schedule;
use deskbridge_agent::scheduler;
use deskbridge_core::{ErrorCode, SharedClock, SystemClock};
use deskbridge_store::{ScheduleId, WriteContext, format_timestamp};
use serde_json::json;

use crate::error::CliError;
use crate::output;
use crate::settings::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum ScheduleCommand {
    /// Add a schedule: every interval, or on a cron expression, in a time zone, optionally only
    /// inside a daily window.
    Add {
        #[arg(long)]
        connection: String,
        /// What to sync (an Entra connection syncs "directory").
        #[arg(long, default_value = "directory")]
        entity: String,
        /// An interval: 90s, 15m, 2h, 1d. The first run is due at once.
        #[arg(long, group = "when", required = true)]
        every: Option<String>,
        /// A five-field cron expression, e.g. "0 */4 * * *".
        #[arg(long, group = "when", required = true)]
        cron: Option<String>,
        /// IANA time zone the cron expression and window are read in.
        #[arg(long, default_value = "UTC")]
        time_zone: String,
        /// Runs start only inside this daily window, HH:MM-HH:MM (may wrap midnight).
        #[arg(long)]
        window: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List schedules with their next due time.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a schedule.
    Remove { id: i64 },
    /// Enable a schedule.
    Enable { id: i64 },
    /// Disable a schedule (it keeps its settings).
    Disable { id: i64 },
    /// "Start processing": queue a run now for every enabled schedule.
    StartAll {
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(global: &GlobalArgs, command: ScheduleCommand) -> anyhow::Result<()> {
    let store = global.open_store().await?;
    let result = run_with(&store, command).await;
    store.close().await;
    result
}

async fn run_with(store: &deskbridge_store::Store, command: ScheduleCommand) -> anyhow::Result<()> {
    let clock: SharedClock = Arc::new(SystemClock);
    match command {
        ScheduleCommand::Add {
            connection,
            entity,
            every,
            cron,
            time_zone,
            window,
            json,
        } => {
            let mut tx = store.begin(WriteContext::manual()).await?;
            let conn = tx.connection_by_name(&connection).await?.ok_or_else(|| {
                CliError::new(
                    ErrorCode::NotFound,
                    format!("no connection named {connection:?}; see `deskbridge connection list`"),
                )
            })?;
            let new = new_schedule(
                &deskbridge_connectors::registry(),
                &conn,
                &entity,
                every.as_deref(),
                cron.as_deref(),
                &time_zone,
                window.as_deref(),
                clock.now(),
            )?;
            let first = new.next_due;
            let id = tx.add_schedule(&new).await?;
            tx.commit().await?;
            if json {
                crate::output::outln!("{}", json!({"id": id, "next_due": format_timestamp(first)}));
            } else {
                crate::output::outln!("schedule {id} added; first due {}", format_timestamp(first));
            }
        }
        ScheduleCommand::List { json } => {
            let mut tx = store.read().await?;
            let schedules = tx.schedules().await?;
            tx.commit().await?;
            let rows: Vec<serde_json::Value> = schedules
                .iter()
                .map(|s| {
                    let mut v = serde_json::to_value(s).unwrap_or_default();
                    v["when"] = json!(if s.kind == "interval" {
                        format!("every {}s", s.spec)
                    } else {
                        format!("cron {}", s.spec)
                    });
                    v["window"] = json!(match (&s.window_start, &s.window_end) {
                        (Some(a), Some(b)) => format!("{a}-{b}"),
                        _ => String::new(),
                    });
                    v
                })
                .collect();
            output::print_rows(
                json,
                &[
                    "id",
                    "connection",
                    "entity",
                    "when",
                    "time_zone",
                    "window",
                    "enabled",
                    "next_due",
                    "last_fired_at",
                ],
                &rows,
            )?;
        }
        ScheduleCommand::Remove { id } => {
            let mut tx = store.begin(WriteContext::manual()).await?;
            let removed = tx.remove_schedule(ScheduleId(id)).await?;
            tx.commit().await?;
            if !removed {
                bail!(CliError::new(
                    ErrorCode::NotFound,
                    format!("no schedule {id}; see `deskbridge schedule list`")
                ));
            }
            crate::output::outln!("schedule {id} removed");
        }
        ScheduleCommand::Enable { id } | ScheduleCommand::Disable { id } => {
            let enable = matches!(command, ScheduleCommand::Enable { .. });
            let mut tx = store.begin(WriteContext::manual()).await?;
            let changed = tx.set_schedule_enabled(ScheduleId(id), enable).await?;
            tx.commit().await?;
            if !changed {
                bail!(CliError::new(
                    ErrorCode::NotFound,
                    format!("no schedule {id}; see `deskbridge schedule list`")
                ));
            }
            crate::output::outln!("schedule {id} {}", if enable { "enabled" } else { "disabled" });
        }
        ScheduleCommand::StartAll { json } => {
            let started = scheduler::start_processing(store).await?;
            let rows: Vec<serde_json::Value> = started
                .iter()
                .map(|(s, job)| json!({"schedule_id": s.id, "connection": s.connection, "entity": s.entity, "job_id": job, "queued": job.is_some()}))
                .collect();
            if json {
                crate::output::outln!("{}", serde_json::to_string(&rows)?);
            } else {
                for (s, job) in &started {
                    match job {
                        Some(job) => crate::output::outln!("{} {}: queued job {job}", s.connection, s.entity),
                        None => crate::output::outln!(
                            "{} {}: a job is already queued or running",
                            s.connection,
                            s.entity
                        ),
                    }
                }
            }
        }
    }
    Ok(())
}
