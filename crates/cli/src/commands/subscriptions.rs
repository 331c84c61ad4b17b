//! `deskbridge subscriptions`: write-back of a subscription's quantity to its source ("adjust
//! quantity"), and the journal of the changes asked.

use std::sync::Arc;

use clap::Subcommand;
use deskbridge_core::{RecordId, SharedClock, SystemClock};
use serde_json::json;

use crate::output;
use crate::settings::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum SubscriptionsCommand {
    /// Set a subscription's seats at its source (Partner Center for CSP). Asking again for the
    /// same quantity after a failure sends the same change again, which the source makes once.
    Adjust {
        /// The desk subscription's id (deskbridge directory subscriptions).
        #[arg(long)]
        id: i64,
        /// The new number of seats.
        #[arg(long)]
        quantity: i64,
        /// Print the change as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The changes asked of a subscription, newest first, with what the source answered.
    Changes {
        #[arg(long)]
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

/// Who asks, as the write-back journals record it: the operating-system user of the CLI.
pub(crate) fn requester() -> String {
    match std::env::var("USER") {
        Ok(user) if !user.trim().is_empty() => format!("cli:{}", user.trim()),
        _ => "cli".into(),
    }
}

pub async fn run(global: &GlobalArgs, command: SubscriptionsCommand) -> anyhow::Result<()> {
    let store = global.open_store().await?;
    match command {
        SubscriptionsCommand::Adjust { id, quantity, json } => {
            let sources = global.registry();
            let clock: SharedClock = Arc::new(SystemClock);
            let result = deskbridge_sync::set_subscription_quantity(
                &store,
                &sources,
                RecordId(id),
                quantity,
                &requester(),
                &clock,
            )
            .await;
            store.close().await;
            let change = result?;
            if json {
                output::outln!("{}", serde_json::to_string_pretty(&change)?);
            } else {
                output::outln!(
                    "subscription {id}: {} → {} seats ({}; request id {})",
                    change
                        .quantity_before
                        .map_or_else(|| "?".to_owned(), |q| q.to_string()),
                    change.quantity_after,
                    change.message.as_deref().unwrap_or("applied"),
                    change.request_id
                );
            }
        }
        SubscriptionsCommand::Changes { id, json } => {
            let mut tx = store.read().await?;
            let changes = tx.subscription_changes(RecordId(id), 100).await?;
            tx.commit().await?;
            store.close().await;
            let rows: Vec<serde_json::Value> = changes
                .iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "when": c.updated_at,
                        "by": c.requested_by,
                        "before": c.quantity_before,
                        "after": c.quantity_after,
                        "status": c.status,
                        "message": c.message,
                    })
                })
                .collect();
            if json {
                output::outln!("{}", serde_json::to_string_pretty(&changes)?);
            } else {
                output::out!(
                    "{}",
                    output::table(
                        &["id", "when", "by", "before", "after", "status", "message"],
                        &rows
                    )
                );
            }
        }
    }
    Ok(())
}
