//! `deskbridge serve`: one process with everything an embedded set-up needs — the admin UI and
//! JSON API and `/healthz` on one listener, a scheduler and one worker, on SQLite by default. On
//! a fresh install it creates the first administrator and prints its one-time password.
//!
//! `/metrics` is never open on the UI's listener (which is the one put on the network): it is
//! served there only to a bearer token (`--metrics-token-file` / `DESKBRIDGE_METRICS_TOKEN`), or
//! on a listener of its own (`--metrics-listen`, with the token too when one is given).

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;
use deskbridge_agent::Metrics;
use deskbridge_core::{SharedClock, SystemClock};
use serde_json::json;

use deskbridge_core::ErrorCode;

use super::agent_common::{Listen, MetricsHere, WorkerArgs, listen_with, run_agent, shutdown_signal};
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
    /// Serve /metrics (and /healthz) on this address instead of the UI's (e.g. 127.0.0.1:9464).
    #[arg(long, env = "DESKBRIDGE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// A file holding the token /metrics requires (`Authorization: Bearer <token>`).
    #[arg(long, env = "DESKBRIDGE_METRICS_TOKEN_FILE", conflicts_with = "metrics_token")]
    pub metrics_token_file: Option<std::path::PathBuf>,
    /// The token /metrics requires; prefer the environment variable or the file (a command line
    /// can be read by other users of the host).
    #[arg(long, env = "DESKBRIDGE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Count failed sign-ins per client address from the last X-Forwarded-For entry: set only
    /// when a reverse proxy that writes that header is in front of deskbridge.
    #[arg(long, env = "DESKBRIDGE_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
    #[command(flatten)]
    pub partner_webhooks: PartnerWebhookArgs,
    #[command(flatten)]
    pub graph_notifications: super::graph_notifications::GraphNotificationArgs,
    /// The first administrator's username, created on first start when there is no account.
    #[arg(long, default_value = "admin")]
    pub admin_username: String,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

/// Receiving Partner Center webhooks at `POST /webhooks/partner-center` (off unless the roots are
/// given: the route then answers 404).
#[derive(Args, Debug)]
pub struct PartnerWebhookArgs {
    /// A PEM file of the root certificates Partner Center's signing certificate must chain to;
    /// turns the webhook receiver on. Microsoft's roots are not shipped with deskbridge.
    #[arg(long, env = "DESKBRIDGE_PARTNER_WEBHOOK_ROOTS")]
    pub partner_webhook_roots: Option<std::path::PathBuf>,
    /// A host the signing certificate may be fetched from (`host`, or `.suffix` for a domain;
    /// repeat, or comma separate in the variable). Default: Microsoft's domains.
    #[arg(
        long = "partner-webhook-certificate-host",
        env = "DESKBRIDGE_PARTNER_WEBHOOK_CERTIFICATE_HOSTS",
        value_delimiter = ','
    )]
    pub partner_webhook_certificate_hosts: Vec<String>,
    /// Accept http:// certificate URLs (an emulator on a loopback host; never for Microsoft).
    #[arg(long, env = "DESKBRIDGE_PARTNER_WEBHOOK_ALLOW_HTTP")]
    pub partner_webhook_allow_http: bool,
}

impl PartnerWebhookArgs {
    /// The receiver's configuration, or `None` when webhooks are off.
    pub fn receiver(&self) -> anyhow::Result<Option<Arc<deskbridge_web::webhooks::PartnerWebhooks>>> {
        let Some(path) = &self.partner_webhook_roots else {
            if !self.partner_webhook_certificate_hosts.is_empty() || self.partner_webhook_allow_http {
                return Err(CliError::new(
                    ErrorCode::InvalidConfiguration,
                    "the Partner Center webhook flags need --partner-webhook-roots FILE as well",
                )
                .into());
            }
            return Ok(None);
        };
        let pem = std::fs::read_to_string(path).map_err(|e| {
            CliError::new(
                ErrorCode::InvalidConfiguration,
                format!(
                    "cannot read the Partner Center webhook roots {}: {e}; give a readable PEM file",
                    path.display()
                ),
            )
        })?;
        let receiver = deskbridge_web::webhooks::PartnerWebhooks::new(
            &pem,
            &self.partner_webhook_certificate_hosts,
            self.partner_webhook_allow_http,
        )
        .map_err(|e| {
            CliError::new(
                ErrorCode::InvalidConfiguration,
                format!(
                    "the Partner Center webhook roots {} are not usable: {e}; give PEM certificates",
                    path.display()
                ),
            )
        })?;
        Ok(Some(Arc::new(receiver)))
    }
}

pub async fn run(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<()> {
    // Before anything starts: a bad flag stops serve with what to fix.
    let partner_webhooks = args.partner_webhooks.receiver()?;
    let subscriber = args.graph_notifications.config(&args.worker.instance)?;
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
    web.partner_webhooks = partner_webhooks;
    let receiver = subscriber
        .as_ref()
        .map(|_| Arc::new(deskbridge_web::graph_notifications::GraphNotifications::default()));
    web.graph_notifications = receiver.clone();
    let mut ready = json!({});
    if let Some(created) = &first {
        ready["first_admin"] = json!({
            "username": created.account.username,
            "one_time_password": created.one_time_password,
        });
    }
    web.trust_forwarded_for = args.trust_forwarded_for;
    let token = metrics_token(&args)?;
    let mut metrics_task = None;
    let on_ui = match (args.metrics_listen, token.clone()) {
        (Some(addr), token) => {
            let (task, metrics_url) = listen_with(
                Listen {
                    addr,
                    process: "serve".into(),
                    metrics: token.map_or(MetricsHere::Open, MetricsHere::Token),
                    extra: None,
                    ready: None,
                },
                store.clone(),
                metrics.clone(),
                shutdown.clone(),
            )
            .await?;
            ready["metrics_url"] = json!(format!("{metrics_url}/metrics"));
            metrics_task = Some(task);
            MetricsHere::No("metrics are served on the address given as --metrics-listen")
        }
        (None, Some(token)) => MetricsHere::Token(token),
        (None, None) => MetricsHere::No(
            "Start serve with --metrics-listen ADDR (a listener for metrics only) or with a token \
             (--metrics-token-file FILE or DESKBRIDGE_METRICS_TOKEN) and send it as a Bearer token.",
        ),
    };
    let (http, url) = listen_with(
        Listen {
            addr: args.listen,
            process: "serve".into(),
            metrics: on_ui,
            extra: Some(deskbridge_web::router(web)),
            ready: Some(ready),
        },
        store.clone(),
        metrics.clone(),
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
    // Once the listener is up: subscribing runs Graph's handshake against it.
    let subscriber_task = subscriber.zip(receiver).map(|(config, receiver)| {
        say(&format!(
            "Graph change notifications on: Graph delivers to {}",
            config.notification_url
        ));
        tokio::spawn(super::graph_notifications::run_subscriber(
            store.clone(),
            clock.clone(),
            config,
            receiver,
            shutdown.clone(),
        ))
    });
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
    if let Some(task) = subscriber_task {
        let _ = task.await;
    }
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    store.close().await;
    Ok(())
}

/// The token `/metrics` requires, if one is configured.
fn metrics_token(args: &ServeArgs) -> anyhow::Result<Option<String>> {
    let token = match (&args.metrics_token_file, &args.metrics_token) {
        (Some(file), _) => Some(
            std::fs::read_to_string(file)
                .map_err(|e| {
                    CliError::new(
                        ErrorCode::InvalidConfiguration,
                        format!("cannot read the metrics token file {}: {e}", file.display()),
                    )
                })?
                .trim()
                .to_owned(),
        ),
        (None, Some(token)) => Some(token.trim().to_owned()),
        (None, None) => None,
    };
    match token {
        Some(t) if t.chars().count() < 16 => Err(CliError::new(
            ErrorCode::InvalidConfiguration,
            "the metrics token is too short: use at least 16 characters (for example `openssl rand -hex 32`)",
        )
        .into()),
        other => Ok(other),
    }
}
