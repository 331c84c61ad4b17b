//! `deskbridge followers`: distribution groups as ticket followers. `settings` shows or sets the
//! desk-wide switch and the default connection groups are read through; `add` adds a group to a
//! ticket's followers (its address, or its people, as the connection's mappings say).

use std::sync::Arc;

use anyhow::Context as _;
use clap::Subcommand;
use deskbridge_core::{RecordId, SharedClock, SystemClock};
use deskbridge_store::{Entity, FollowerSettings, Store, WriteContext};
use serde_json::json;

use crate::output;
use crate::settings::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum FollowersCommand {
    /// Show, or change, whether groups may follow tickets on this desk and the connection a
    /// group is read through when none is named. Each connection allows it too, in its mappings
    /// ("followers": {"enabled": true, "mode": "group_address" | "members", "member_cap": 100}).
    Settings {
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
        /// The connection (by name) groups are read through when none is named.
        #[arg(long, conflicts_with = "no_default_connection")]
        default_connection: Option<String>,
        /// Forget the default connection.
        #[arg(long)]
        no_default_connection: bool,
        #[arg(long)]
        json: bool,
    },
    /// Add a distribution group as followers of a desk ticket.
    Add {
        /// The desk ticket's id.
        #[arg(long)]
        ticket: i64,
        /// The group's display name in the source.
        #[arg(long)]
        group: String,
        /// The connection to read the group through (default: the desk's default connection).
        #[arg(long)]
        connection: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// Who changes the settings, as the table records it: the operating-system user of the CLI.
fn changed_by() -> String {
    match std::env::var("USER") {
        Ok(user) if !user.trim().is_empty() => format!("cli:{}", user.trim()),
        _ => "cli".into(),
    }
}

pub async fn run(global: &GlobalArgs, command: FollowersCommand) -> anyhow::Result<()> {
    let store = global.open_store().await?;
    let result = run_with(global, &store, command).await;
    store.close().await;
    result
}

async fn run_with(global: &GlobalArgs, store: &Store, command: FollowersCommand) -> anyhow::Result<()> {
    match command {
        FollowersCommand::Settings {
            enable,
            disable,
            default_connection,
            no_default_connection,
            json,
        } => {
            let mut tx = store.begin(WriteContext::manual()).await?;
            let mut settings = tx.follower_settings().await?;
            let before = settings;
            if enable || disable {
                settings.enabled = enable;
            }
            if let Some(name) = &default_connection {
                let connection = tx.connection_by_name(name).await?.with_context(|| {
                    format!("there is no connection named {name:?} (deskbridge connection list)")
                })?;
                settings.default_connection = Some(connection.id);
            }
            if no_default_connection {
                settings.default_connection = None;
            }
            if settings != before {
                tx.set_follower_settings(&settings, &changed_by()).await?;
            }
            let default_name = match settings.default_connection {
                Some(id) => tx.connection(id).await?.map(|c| c.name),
                None => None,
            };
            tx.commit().await?;
            show_settings(&settings, default_name.as_deref(), json)
        }
        FollowersCommand::Add {
            ticket,
            group,
            connection,
            json,
        } => {
            let clock: SharedClock = Arc::new(SystemClock);
            let added = deskbridge_sync::add_group_followers(
                store,
                &global.registry(),
                RecordId(ticket),
                &group,
                connection.as_deref(),
                &clock,
            )
            .await?;
            if json {
                return output::print_json(&added);
            }
            let mut tx = store.read().await?;
            let mut names = Vec::new();
            for follower in &added.added {
                names.push(follower_name(&mut tx, follower).await?);
            }
            tx.commit().await?;
            output::outln!(
                "ticket {ticket}: group {:?} (read through {}) added {} follower(s){}",
                added.group,
                added.connection,
                added.added.len(),
                if names.is_empty() {
                    String::new()
                } else {
                    format!(": {}", names.join(", "))
                }
            );
            if added.already_following > 0 {
                output::outln!("  {} already followed the ticket", added.already_following);
            }
            if added.over_cap > 0 {
                output::outln!(
                    "  {} member(s) left out by the connection's member cap (followers.member_cap)",
                    added.over_cap
                );
            }
            if added.unreachable > 0 {
                output::outln!(
                    "  {} member(s) have neither a desk user nor an email address, so cannot follow",
                    added.unreachable
                );
            }
            Ok(())
        }
    }
}

/// A follower in people's words: a desk user by name, an address as it is.
async fn follower_name(tx: &mut deskbridge_store::StoreTx, follower: &str) -> anyhow::Result<String> {
    if let Some(id) = follower
        .strip_prefix("user:")
        .and_then(|id| id.parse::<i64>().ok())
        && let Some(user) = tx.get(Entity::User, RecordId(id)).await?
        && let Some(name) = user.get("name").as_str()
    {
        return Ok(name.to_owned());
    }
    Ok(follower.strip_prefix("email:").unwrap_or(follower).to_owned())
}

fn show_settings(settings: &FollowerSettings, default_name: Option<&str>, json: bool) -> anyhow::Result<()> {
    if json {
        return output::print_json(&json!({
            "enabled": settings.enabled,
            "default_connection": settings.default_connection.map(|id| json!({"id": id, "name": default_name})),
        }));
    }
    output::outln!(
        "groups as ticket followers: {}",
        if settings.enabled {
            "allowed"
        } else {
            "not allowed"
        }
    );
    output::outln!(
        "default connection:         {}",
        match (settings.default_connection, default_name) {
            (Some(_), Some(name)) => name.to_owned(),
            (Some(id), None) => format!("connection {id}, which was removed: set another"),
            (None, _) => "none (name one with each group)".to_owned(),
        }
    );
    Ok(())
}
