//! What `serve` and `worker` share: the worker's settings from the command line, the shutdown
//! signal, and the metrics listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use deskbridge_agent::http::{HttpState, app, health_only, serve};
use deskbridge_agent::{Metrics, WorkerConfig};
use deskbridge_store::Store;
use tokio::sync::watch;

#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    /// Names this worker in leases and logs (default: host name and process id).
    #[arg(long)]
    pub worker_id: Option<String>,
    /// Seconds a claimed job stays this worker's without a heartbeat; after that another
    /// worker takes it over.
    #[arg(long, default_value_t = 30)]
    pub lease_secs: u64,
    /// Milliseconds between heartbeats (default: a third of the lease).
    #[arg(long)]
    pub heartbeat_ms: Option<u64>,
    /// Milliseconds to wait before looking again when there is no job.
    #[arg(long, default_value_t = 1_000)]
    pub poll_ms: u64,
    /// Milliseconds between scheduler passes.
    #[arg(long, default_value_t = 1_000)]
    pub scheduler_tick_ms: u64,
    /// Do not run a scheduler in this process (another process fires schedules).
    #[arg(long)]
    pub no_scheduler: bool,
    /// Seconds a connection is left alone after its first failure (doubles per failure in a row).
    #[arg(long, default_value_t = 60)]
    pub backoff_secs: u64,
    /// This instance's kind; a connection runs only on instances it is enabled for.
    #[arg(long, env = "DESKBRIDGE_INSTANCE", default_value = "production")]
    pub instance: String,
}

impl WorkerArgs {
    pub fn config(&self) -> WorkerConfig {
        let id = self.worker_id.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
            format!("{host}-{}", std::process::id())
        });
        let lease = Duration::from_secs(self.lease_secs.max(1));
        let mut config = WorkerConfig::new(id);
        config.lease = lease;
        config.heartbeat = self
            .heartbeat_ms
            .map_or(lease / 3, Duration::from_millis)
            .max(Duration::from_millis(50));
        config.poll = Duration::from_millis(self.poll_ms.max(10));
        config.instance = self.instance.clone();
        config.backoff_base = Duration::from_secs(self.backoff_secs);
        config.backoff_max = config.backoff_base.saturating_mul(64);
        config
    }
}

/// A channel that turns true on Ctrl-C or SIGTERM.
pub fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
            match term {
                Ok(mut term) => {
                    tokio::select! {
                        _ = ctrl_c => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        tracing::info!("shutting down: finishing or handing back the current job");
        let _ = tx.send(true);
    });
    rx
}

/// Binds `addr` and serves `/metrics` and `/healthz` (plus `extra`) until shutdown. Prints one
/// JSON line on standard output — `listening` and `url` (the bound address, useful with port 0)
/// and the keys of `ready` — and returns the listener's task and URL.
pub async fn listen(
    addr: SocketAddr,
    store: Store,
    metrics: Arc<Metrics>,
    process: String,
    extra: Option<axum::Router>,
    ready: serde_json::Value,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(tokio::task::JoinHandle<()>, String)> {
    let spec = Listen {
        addr,
        process,
        metrics: MetricsHere::Open,
        extra,
        ready: Some(ready),
    };
    listen_with(spec, store, metrics, shutdown).await
}

/// Whether a listener serves `/metrics`.
#[derive(Debug, Clone)]
pub enum MetricsHere {
    /// To anyone who reaches the address (a listener of its own, chosen by the operator).
    Open,
    /// Only with `Authorization: Bearer <token>`.
    Token(String),
    /// Not at all: `/metrics` answers 404 with this remedy.
    No(&'static str),
}

/// One HTTP listener of the agent.
pub struct Listen {
    pub addr: SocketAddr,
    /// Named in `/healthz`.
    pub process: String,
    pub metrics: MetricsHere,
    /// Routes merged into the listener (the admin UI and API).
    pub extra: Option<axum::Router>,
    /// Printed as the ready line with `listening` and `url`; `None` prints nothing.
    pub ready: Option<serde_json::Value>,
}

/// Binds and serves one listener until shutdown; returns its task and URL.
pub async fn listen_with(
    spec: Listen,
    store: Store,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(tokio::task::JoinHandle<()>, String)> {
    let addr = spec.addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    let url = format!("http://{bound}");
    if let Some(ready) = spec.ready {
        let mut line = serde_json::json!({"listening": url, "url": url});
        if let (Some(line), serde_json::Value::Object(ready)) = (line.as_object_mut(), ready) {
            line.extend(ready);
        }
        crate::output::say(&line.to_string());
    }
    let state = |metrics_token| HttpState {
        store,
        metrics,
        process: spec.process,
        metrics_token,
    };
    let mut router = match spec.metrics {
        MetricsHere::Open => app(state(None)),
        MetricsHere::Token(token) => app(state(Some(token))),
        MetricsHere::No(remedy) => health_only(state(None), remedy),
    };
    if let Some(extra) = spec.extra {
        router = router.merge(extra);
    }
    let task = tokio::spawn(async move {
        if let Err(e) = serve(listener, router, shutdown).await {
            tracing::error!(error = %e, "the HTTP listener stopped");
        }
    });
    Ok((task, url))
}

/// Runs this process's share of the sync agent until `shutdown`: the scheduler (unless
/// `--no-scheduler`) and one worker. `serve` and `worker` both end with it.
pub async fn run_agent(
    args: &WorkerArgs,
    config: WorkerConfig,
    store: &Store,
    sources: deskbridge_source::SourceRegistry,
    clock: deskbridge_core::SharedClock,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) {
    let scheduler = (!args.no_scheduler).then(|| {
        tokio::spawn(deskbridge_agent::scheduler::run(
            store.clone(),
            clock.clone(),
            metrics.clone(),
            Duration::from_millis(args.scheduler_tick_ms.max(10)),
            shutdown.clone(),
        ))
    });
    deskbridge_agent::Worker::new(store.clone(), sources, clock, config, metrics)
        .run(shutdown)
        .await;
    if let Some(task) = scheduler {
        let _ = task.await;
    }
}
