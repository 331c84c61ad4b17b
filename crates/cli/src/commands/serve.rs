//! `deskbridge serve`: the admin UI and JSON API on one listener. A thin shell around
//! `deskbridge_web::router`; on a fresh install it creates the first administrator and prints
//! its one-time password.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use deskbridge_core::{SharedClock, SystemClock};
use serde_json::json;

use crate::settings::GlobalArgs;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one; the first output line says which).
    #[arg(long, default_value = "127.0.0.1:8080", env = "DESKBRIDGE_LISTEN")]
    pub listen: String,
    /// Mark cookies Secure: set when users reach deskbridge over https (directly or via a proxy).
    #[arg(long, env = "DESKBRIDGE_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// The first administrator's username, created on first start when there is no account.
    #[arg(long, default_value = "admin")]
    pub admin_username: String,
}

pub async fn run(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<()> {
    let store = global.open_store().await?;
    let clock: SharedClock = Arc::new(SystemClock);
    let first = deskbridge_web::auth::ensure_first_administrator(&store, &args.admin_username)
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the first administrator: {}", e.message))?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let mut ready = json!({ "url": format!("http://{addr}") });
    if let Some(created) = &first {
        ready["first_admin"] = json!({
            "username": created.account.username,
            "one_time_password": created.one_time_password,
        });
    }
    // One JSON line first, for scripts; then the same for people.
    println!("{ready}");
    if let Some(created) = &first {
        println!(
            "created the first administrator {:?}; one-time password: {} (shown once: sign in and choose a new one)",
            created.account.username, created.one_time_password
        );
    }
    println!("serving the admin UI and API on http://{addr}");
    let mut state = deskbridge_web::AppState::new(store.clone(), clock);
    state.secure_cookies = args.secure_cookies;
    let app = deskbridge_web::router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
        .context("the web server failed")?;
    store.close().await;
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
