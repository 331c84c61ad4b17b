//! `deskbridge worker`: claims and runs jobs (and, unless told otherwise, fires due schedules)
//! until stopped. Run several against one PostgreSQL database to scale out.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;
use deskbridge_agent::Metrics;
use deskbridge_core::{SharedClock, SystemClock};

use super::agent_common::{WorkerArgs, listen, run_agent, shutdown_signal};
use crate::settings::GlobalArgs;

#[derive(Args, Debug)]
pub struct WorkerCommand {
    #[command(flatten)]
    pub worker: WorkerArgs,
    /// Also serve /metrics and /healthz on this address (e.g. 127.0.0.1:9464).
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
}

pub async fn run(global: &GlobalArgs, args: WorkerCommand) -> anyhow::Result<()> {
    let store = global.open_store().await?;
    let clock: SharedClock = Arc::new(SystemClock);
    let metrics = Arc::new(Metrics::default());
    let shutdown = shutdown_signal();
    let config = args.worker.config();
    let id = config.worker_id.clone();
    let http = match args.metrics_listen {
        Some(addr) => Some(
            listen(
                addr,
                store.clone(),
                metrics.clone(),
                id.clone(),
                None,
                serde_json::json!({"worker": id}),
                shutdown.clone(),
            )
            .await?
            .0,
        ),
        None => None,
    };
    run_agent(
        &args.worker,
        config,
        &store,
        global.registry(),
        clock,
        metrics,
        shutdown,
    )
    .await;
    if let Some(task) = http {
        let _ = task.await;
    }
    store.close().await;
    Ok(())
}
