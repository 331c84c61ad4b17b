//! `deskbridge licences`: licence management from the desk — assign a licence to a desk user, or
//! remove it, at the source that imported the user (Entra's `assignLicense`), and the journal of
//! the changes asked.

use std::sync::Arc;

use clap::{Args, Subcommand};
use deskbridge_core::{ErrorCode, RecordId, SharedClock, SystemClock};
use deskbridge_store::{Entity, LicenceAction, Record, StoreTx};
use serde_json::json;

use crate::commands::subscriptions::requester;
use crate::error::CliError;
use crate::output;
use crate::settings::GlobalArgs;

#[derive(Args, Debug)]
pub struct LicenceArgs {
    /// The desk user: their id or email address.
    #[arg(long)]
    user: String,
    /// The licence: its desk id, name or SKU part number (one of the user's tenant's licences).
    #[arg(long)]
    licence: String,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
pub enum LicencesCommand {
    /// Assign a licence to a desk user in Entra (the connection must allow licences to be
    /// managed from the desk). Asking again after a failure sends the same change again.
    Assign(LicenceArgs),
    /// Remove a licence from a desk user in Entra.
    Remove(LicenceArgs),
    /// The licence changes asked for a user, newest first, with what the source answered.
    Changes {
        /// The desk user: their id or email address.
        #[arg(long)]
        user: String,
        #[arg(long)]
        json: bool,
    },
}

fn not_found(message: String) -> anyhow::Error {
    CliError::new(ErrorCode::NotFound, message).into()
}

/// The one record `given` names: by id, else by the text fields tried in order.
async fn find_one(
    tx: &mut StoreTx,
    entity: Entity,
    given: &str,
    fields: &[&str],
    among: impl Fn(&Record) -> bool,
) -> anyhow::Result<Record> {
    let what = entity.spec().name;
    if let Ok(id) = given.trim().parse::<i64>() {
        return tx
            .get(entity, RecordId(id))
            .await?
            .ok_or_else(|| not_found(format!("there is no {what} {id}")));
    }
    for field in fields {
        let found: Vec<Record> = tx
            .find_by_text(entity, field, given.trim())
            .await?
            .into_iter()
            .filter(&among)
            .collect();
        match found.as_slice() {
            [] => {}
            [one] => return Ok(one.clone()),
            many => {
                let ids: Vec<String> = many.iter().map(|r| r.id.to_string()).collect();
                return Err(CliError::new(
                    ErrorCode::InvalidInput,
                    format!(
                        "{given:?} names {} {what}s (ids {}): give the id",
                        many.len(),
                        ids.join(", ")
                    ),
                )
                .into());
            }
        }
    }
    Err(not_found(format!(
        "no {what} has the {} {given:?}",
        fields.join(" or ")
    )))
}

/// The desk user and licence the arguments name; a licence by name is looked for among the
/// user's customer's licences.
async fn resolve(tx: &mut StoreTx, user: &str, licence: &str) -> anyhow::Result<(RecordId, RecordId)> {
    let user = find_one(tx, Entity::User, user, &["email"], |_| true).await?;
    let customer = match user.get("site_id").as_i64() {
        Some(site) => tx
            .get(Entity::Site, RecordId(site))
            .await?
            .and_then(|s| s.get("customer_id").as_i64()),
        None => None,
    };
    let licence = find_one(
        tx,
        Entity::Licence,
        licence,
        &["friendly_name", "part_number"],
        |l| customer.is_none() || l.get("customer_id").as_i64() == customer,
    )
    .await?;
    Ok((user.id, licence.id))
}

pub async fn run(global: &GlobalArgs, command: LicencesCommand) -> anyhow::Result<()> {
    let store = global.open_store().await?;
    let (args, action) = match command {
        LicencesCommand::Assign(args) => (args, LicenceAction::Assign),
        LicencesCommand::Remove(args) => (args, LicenceAction::Remove),
        LicencesCommand::Changes { user, json } => {
            let mut tx = store.read().await?;
            let user = find_one(&mut tx, Entity::User, &user, &["email"], |_| true).await?;
            let changes = tx.licence_changes(user.id, 100).await?;
            tx.commit().await?;
            store.close().await;
            if json {
                output::outln!("{}", serde_json::to_string_pretty(&changes)?);
            } else {
                let rows: Vec<serde_json::Value> = changes
                    .iter()
                    .map(|c| {
                        json!({
                            "id": c.id,
                            "when": c.updated_at,
                            "by": c.requested_by,
                            "licence": c.licence_id.0,
                            "action": c.action,
                            "status": c.status,
                            "message": c.message,
                        })
                    })
                    .collect();
                output::out!(
                    "{}",
                    output::table(
                        &["id", "when", "by", "licence", "action", "status", "message"],
                        &rows
                    )
                );
            }
            return Ok(());
        }
    };
    let mut tx = store.read().await?;
    let resolved = resolve(&mut tx, &args.user, &args.licence).await;
    tx.commit().await?;
    let (user, licence) = match resolved {
        Ok(ids) => ids,
        Err(e) => {
            store.close().await;
            return Err(e);
        }
    };
    let sources = global.registry();
    let clock: SharedClock = Arc::new(SystemClock);
    let result =
        deskbridge_sync::change_user_licence(&store, &sources, user, licence, action, &requester(), &clock)
            .await;
    store.close().await;
    let outcome = result?;
    if args.json {
        output::outln!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        output::outln!("{}", outcome.message);
    }
    Ok(())
}
