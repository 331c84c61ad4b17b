//! `deskbridge serve`: one process with everything an embedded set-up needs — the HTTP listener
//! (`/metrics`, `/healthz`, and the web UI and API when merged in), a scheduler and one worker,
//! on SQLite by default.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use deskbridge_agent::{Metrics, Worker};
use deskbridge_core::{SharedClock, SystemClock};

use super::agent_common::{WorkerArgs, listen, shutdown_signal};
use crate::settings::GlobalArgs;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to serve HTTP on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

pub async fn run(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<()> {
    let store = global.open_store().await?;
    let clock: SharedClock = Arc::new(SystemClock);
    let metrics = Arc::new(Metrics::default());
    let shutdown = shutdown_signal();
    let config = args.worker.config();
    // The seam for the web UI/API: pass its router here and it shares the listener.
    let web: Option<axum::Router> = None;
    let http = listen(
        args.listen,
        store.clone(),
        metrics.clone(),
        "serve".into(),
        web,
        shutdown.clone(),
    )
    .await?;
    let scheduler = (!args.worker.no_scheduler).then(|| {
        tokio::spawn(deskbridge_agent::scheduler::run(
            store.clone(),
            clock.clone(),
            metrics.clone(),
            Duration::from_millis(args.worker.scheduler_tick_ms.max(10)),
            shutdown.clone(),
        ))
    });
    Worker::new(store.clone(), clock, config, metrics)
        .run(shutdown)
        .await;
    if let Some(task) = scheduler {
        let _ = task.await;
    }
    let _ = http.await;
    store.close().await;
    Ok(())
}
