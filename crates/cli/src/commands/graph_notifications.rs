//! `serve --graph-notification-url`: Microsoft Graph change notifications for the Entra
//! connections. The web receives them (`POST /webhooks/graph[/lifecycle]`); this runs the
//! subscriber beside it: a full pass (subscribe, renew, reauthorize, re-create) at start, every
//! minute and whenever a lifecycle notification asks, and in between, every few seconds, the delta
//! rounds a notification could not queue while one was running.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use deskbridge_connectors::entra::{SubscriberConfig, maintain, queue_pending};
use deskbridge_core::{ErrorCode, SharedClock};
use deskbridge_store::Store;
use deskbridge_web::graph_notifications::GraphNotifications;
use tokio::sync::watch;

use crate::error::CliError;

/// How often the subscriber makes a full pass.
const FULL_PASS: Duration = Duration::from_secs(60);
/// How often the rounds left pending are queued.
const PENDING_PASS: Duration = Duration::from_secs(2);

#[derive(Args, Debug)]
pub struct GraphNotificationArgs {
    /// This instance's public https URL (e.g. https://desk.example.com): turns Graph change
    /// notifications on. Graph delivers to its /webhooks/graph and /webhooks/graph/lifecycle.
    #[arg(long, env = "DESKBRIDGE_GRAPH_NOTIFICATION_URL")]
    pub graph_notification_url: Option<String>,
}

impl GraphNotificationArgs {
    /// The subscriber's configuration, or `None` when notifications are off.
    pub fn config(&self, instance: &str) -> anyhow::Result<Option<SubscriberConfig>> {
        let Some(base) = &self.graph_notification_url else {
            return Ok(None);
        };
        let wrong = |why: &str| {
            CliError::new(
                ErrorCode::InvalidConfiguration,
                format!("--graph-notification-url {base:?} {why}; give this instance's public https URL"),
            )
        };
        let url = url::Url::parse(base).map_err(|_| wrong("is not a URL"))?;
        // Graph delivers over https only; plain http is accepted on a loopback host, where only
        // an emulator can reach it.
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
            return Err(wrong("is not https").into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(wrong("has a query or a fragment").into());
        }
        Ok(Some(SubscriberConfig::new(url.as_str(), instance)))
    }
}

/// Runs the subscriber until shutdown.
pub async fn run_subscriber(
    store: Store,
    clock: SharedClock,
    config: SubscriberConfig,
    receiver: Arc<GraphNotifications>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last_full: Option<Instant> = None;
    let mut woken = false;
    loop {
        if woken || last_full.is_none_or(|at| at.elapsed() >= FULL_PASS) {
            match maintain(&store, &clock, &config).await {
                Ok(pass) => tracing::info!(?pass, "Graph subscriptions kept"),
                Err(e) => tracing::warn!(error = %e, "the Graph subscriptions pass failed; it runs again"),
            }
            last_full = Some(Instant::now());
        } else if let Err(e) = queue_pending(&store).await {
            tracing::warn!(error = %e, "cannot queue the delta rounds notifications asked for");
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            () = receiver.wake.notified() => woken = true,
            () = tokio::time::sleep(PENDING_PASS) => woken = false,
        }
    }
}
