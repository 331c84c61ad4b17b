//! `deskbridge csp webhook register|status|unregister|send-test`: the partner's Partner Center
//! webhook registration, with a CSP connection's partner sign-in. Each prints what Partner
//! Center answered (`--json` for scripts). Receiving is `serve --partner-webhook-roots`.

use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use deskbridge_connectors::csp;
use deskbridge_core::HasErrorCode as _;
use deskbridge_core::{SharedClock, SystemClock};
use deskbridge_source::{SourceContext, SyncError};
use serde_json::json;

use crate::error::CliError;
use crate::output::{outln, print_json};
use crate::settings::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum CspCommand {
    /// Partner Center webhooks: where Partner Center sends subscription changes.
    Webhook {
        #[command(subcommand)]
        command: WebhookCommand,
    },
}

#[derive(Args, Debug)]
pub struct Which {
    /// The CSP connection whose partner sign-in calls Partner Center.
    #[arg(long)]
    pub connection: String,
    /// Print Partner Center's answer as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum WebhookCommand {
    /// Register this instance's receiver (or move the registration to URL) for subscription events.
    Register {
        #[command(flatten)]
        which: Which,
        /// The receiver's public URL: https://HOST/webhooks/partner-center of `deskbridge serve`.
        #[arg(long)]
        url: String,
    },
    /// Show the partner's registration and the events Partner Center can deliver.
    Status {
        #[command(flatten)]
        which: Which,
    },
    /// Remove the partner's registration (Partner Center stops delivering).
    Unregister {
        #[command(flatten)]
        which: Which,
    },
    /// Ask Partner Center for a test delivery and wait for its outcome.
    SendTest {
        #[command(flatten)]
        which: Which,
        /// Seconds to wait for the delivery's outcome.
        #[arg(long, default_value_t = 30)]
        wait: u64,
    },
}

pub async fn run(global: &GlobalArgs, command: CspCommand) -> anyhow::Result<()> {
    let CspCommand::Webhook { command } = command;
    let store = global.open_store().await?;
    let clock: SharedClock = Arc::new(SystemClock);
    let cx = SourceContext::detached(store.clone(), clock);
    let result = webhook(&cx, command).await;
    store.close().await;
    result
}

/// The failure with what to do about it (a run records the remedy apart; here it is the message).
fn with_remedy(e: SyncError) -> CliError {
    let message = match e.remedy() {
        Some(remedy) if !remedy.is_empty() => format!("{e}. {remedy}"),
        _ => e.to_string(),
    };
    CliError::new(e.error_code(), message)
}

async fn webhook(cx: &SourceContext, command: WebhookCommand) -> anyhow::Result<()> {
    match command {
        WebhookCommand::Register { which, url } => {
            let registered = csp::register_webhook(cx, &which.connection, &url)
                .await
                .map_err(with_remedy)?;
            if which.json {
                return print_json(&registered);
            }
            outln!(
                "Partner Center delivers {} to {} (subscriber {})",
                registered.webhook_events.join(", "),
                registered.webhook_url,
                registered.subscriber_id.as_deref().unwrap_or("-")
            );
        }
        WebhookCommand::Status { which } => {
            let status = csp::webhook_status(cx, &which.connection)
                .await
                .map_err(with_remedy)?;
            if which.json {
                return print_json(&json!({
                    "registration": status.registration,
                    "supported_events": status.supported_events,
                }));
            }
            match &status.registration {
                Some(r) => outln!(
                    "registered: {} for {} (subscriber {})",
                    r.webhook_url,
                    r.webhook_events.join(", "),
                    r.subscriber_id.as_deref().unwrap_or("-")
                ),
                None => outln!(
                    "not registered; register with: deskbridge csp webhook register --connection {} --url https://HOST/webhooks/partner-center",
                    which.connection
                ),
            }
            outln!(
                "Partner Center can deliver: {}",
                status.supported_events.join(", ")
            );
        }
        WebhookCommand::Unregister { which } => {
            let removed = csp::unregister_webhook(cx, &which.connection)
                .await
                .map_err(with_remedy)?;
            if which.json {
                return print_json(&json!({ "removed": removed }));
            }
            outln!(
                "{}",
                if removed {
                    "the registration was removed: Partner Center stops delivering"
                } else {
                    "there was no registration"
                }
            );
        }
        WebhookCommand::SendTest { which, wait } => {
            let (id, status) = csp::send_test_webhook(cx, &which.connection, Duration::from_secs(wait))
                .await
                .map_err(with_remedy)?;
            if which.json {
                return print_json(&json!({ "correlation_id": id, "status": status }));
            }
            outln!("test delivery {id}: {status}");
        }
    }
    Ok(())
}
