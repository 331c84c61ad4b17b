use std::sync::Arc;

use clap::Args;
use deskbridge_core::{SharedClock, SystemClock};
use deskbridge_sync::{SyncOptions, SyncOutcome, sync};

use crate::settings::GlobalArgs;

#[derive(Args, Debug)]
pub struct SyncArgs {
    /// The connection to sync.
    #[arg(long)]
    pub connection: String,
    /// Show what the sync would change and write nothing.
    #[arg(long)]
    pub plan: bool,
    /// Read everything, ignoring delta tokens.
    #[arg(long)]
    pub full: bool,
    /// Print one JSON object (run_id, status, counts, and with --plan the changes).
    #[arg(long)]
    pub json: bool,
    /// Approve the connection's held run: apply what the circuit breaker stopped.
    #[arg(long, conflicts_with = "plan")]
    pub approve_held: bool,
    /// This instance's kind; a connection runs only on instances it is enabled for.
    #[arg(long, env = "DESKBRIDGE_INSTANCE", default_value = "production")]
    pub instance: String,
}

pub async fn run(global: &GlobalArgs, args: SyncArgs) -> anyhow::Result<()> {
    let store = global.open_store().await?;
    let clock: SharedClock = Arc::new(SystemClock);
    let options = SyncOptions {
        plan_only: args.plan,
        full: args.full,
        instance: args.instance.clone(),
        graph: None,
        approve_held: args.approve_held,
        observer: None,
    };
    let outcome = sync(&store, &args.connection, &options, &clock).await;
    store.close().await;
    let outcome = outcome?;
    if args.json {
        println!("{}", serde_json::to_string(&outcome)?);
    } else {
        print_outcome(&outcome);
    }
    if matches!(outcome.status.as_str(), "failed") {
        anyhow::bail!(
            "the sync failed: {}",
            outcome
                .errors
                .first()
                .map_or("see the run's errors", |e| e.message.as_str())
        );
    }
    Ok(())
}

pub fn print_outcome(outcome: &SyncOutcome) {
    if let Some(changes) = &outcome.changes {
        for change in changes {
            let fields: Vec<String> = change
                .fields
                .iter()
                .map(|(name, f)| format!("{name}: {} -> {}", short(&f.before), short(&f.after)))
                .collect();
            println!(
                "{:<10} {:<6} {:<38} {}  [{}] {}",
                change.action.as_str(),
                change.entity.as_str(),
                change.external_id,
                fields.join(", "),
                change.rule,
                change.reason
            );
        }
    }
    let c = &outcome.counts;
    println!(
        "{} ({}): created {}, updated {}, deactivated {}, unchanged {}, conflicts {}, errors {}{}",
        outcome.status,
        outcome.mode,
        c.created,
        c.updated,
        c.deactivated,
        c.unchanged,
        c.conflicts,
        c.errors,
        outcome.run_id.map(|r| format!("; run {r}")).unwrap_or_default()
    );
    if let Some(reason) = &outcome.held {
        println!("held for approval: {reason}");
    }
    for note in &outcome.notes {
        println!("note: {note}");
    }
    for e in &outcome.errors {
        println!(
            "error [{}] {}{}",
            e.code,
            e.message,
            e.remedy.as_ref().map(|r| format!(" — {r}")).unwrap_or_default()
        );
    }
}

fn short(v: &serde_json::Value) -> String {
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(39).collect::<String>())
    } else {
        text
    }
}
