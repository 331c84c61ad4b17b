//! `deskbridge serve`: one process with everything an embedded set-up needs — the admin UI and
//! JSON API, `/metrics` and `/healthz` on one listener, a scheduler and one worker, on SQLite by
//! default. On a fresh install it creates the first administrator and prints its one-time
//! password.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;
use deskbridge_agent::Metrics;
use deskbridge_core::{SharedClock, SystemClock};
use serde_json::json;

use super::agent_common::{WorkerArgs, listen, run_agent, shutdown_signal};
use crate::error::CliError;
use crate::output::say;
use crate::settings::GlobalArgs;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one; the first output line says which).
    #[arg(long, default_value = "127.0.0.1:8080", env = "DESKBRIDGE_LISTEN")]
    pub listen: SocketAddr,
    /// Mark cookies Secure: set when users reach deskbridge over https (directly or via a proxy).
    #[arg(long, env = "DESKBRIDGE_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// The first administrator's username, created on first start when there is no account.
    #[arg(long, default_value = "admin")]
    pub admin_username: String,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

pub async fn run(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<()> {
    let store = global.open_store().await?;
    let clock: SharedClock = Arc::new(SystemClock);
    let first = deskbridge_web::auth::ensure_first_administrator(&store, &args.admin_username)
        .await
        .map_err(|e| {
            CliError::new(
                e.code,
                format!("cannot create the first administrator: {}", e.message),
            )
        })?;
    let metrics = Arc::new(Metrics::default());
    let shutdown = shutdown_signal();
    let config = args.worker.config();
    let mut web = deskbridge_web::AppState::new(store.clone(), global.registry(), clock.clone());
    web.secure_cookies = args.secure_cookies;
    web.job_queue = true;
    let mut ready = json!({});
    if let Some(created) = &first {
        ready["first_admin"] = json!({
            "username": created.account.username,
            "one_time_password": created.one_time_password,
        });
    }
    let (http, url) = listen(
        args.listen,
        store.clone(),
        metrics.clone(),
        "serve".into(),
        Some(deskbridge_web::router(web)),
        ready,
        shutdown.clone(),
    )
    .await?;
    if let Some(created) = &first {
        say(&format!(
            "created the first administrator {:?}; one-time password: {} (shown once: sign in and choose a new one)",
            created.account.username, created.one_time_password
        ));
    }
    say(&format!("serving the admin UI and API on {url}"));
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
    let _ = http.await;
    store.close().await;
    Ok(())
}
