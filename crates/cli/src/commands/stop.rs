//! A `deskbridge sync` stopped by Ctrl-C or SIGTERM ends its runs as `interrupted` and says so,
//! rather than leaving them "running" until another process notices their heartbeat stopped.
//! Stopping drops the sync's future: the transaction in flight rolls back, and what the tenants
//! before it committed (their data and cursors together) stays, so the next run resumes there.

use std::future::Future;
use std::sync::{Mutex, PoisonError};

use deskbridge_core::{ErrorCode, RunId};
use deskbridge_store::Store;
use deskbridge_sync::SyncObserver;

use crate::error::CliError;

/// The runs this process started (told by the sync as each begins).
#[derive(Debug, Default)]
pub struct StartedRuns(Mutex<Vec<RunId>>);

impl StartedRuns {
    fn all(&self) -> Vec<RunId> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl SyncObserver for StartedRuns {
    fn run_started(&self, run: RunId) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(run);
    }
}

/// Resolves with the signal's name on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed
/// when this is called, before the work it races starts.
fn stop_signal() -> impl Future<Output = &'static str> {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        #[cfg(unix)]
        if let Ok(mut term) = term {
            return tokio::select! {
                _ = ctrl_c => "Ctrl-C",
                _ = term.recv() => "SIGTERM",
            };
        }
        match ctrl_c.await {
            Ok(()) => "Ctrl-C",
            // No handler could be installed: never resolve, the work goes on unstoppable as before.
            Err(_) => std::future::pending().await,
        }
    }
}

/// Runs `work` unless the process is told to stop first; then the runs in `started` still
/// running are closed as interrupted, and the error says so.
pub async fn unless_stopped<T>(
    store: &Store,
    started: &StartedRuns,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let stop = stop_signal();
    let signal = tokio::select! {
        done = work => return done,
        signal = stop => signal,
    };
    // The sync's future is dropped here: its heartbeats stop and its open transaction rolls back.
    let why = format!("the sync was stopped by {signal}");
    let closed = deskbridge_sync::liveness::interrupt_runs(store, &started.all(), &why).await?;
    store.close().await;
    let runs = match closed.as_slice() {
        [] => "no run had started yet".to_owned(),
        [one] => format!("run {one} is marked interrupted"),
        many => format!(
            "runs {} are marked interrupted",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Err(CliError::new(
        ErrorCode::RunFailed,
        format!(
            "interrupted by {signal}: {runs}; what was committed stays, and the next run resumes from the last \
             committed tenant"
        ),
    )
    .into())
}
