//! `deskbridge tenants`: a many-tenant connection's customer tenants (CSP's Tenants tab) — which
//! desk customer each goes to, or none, and the settings a tenant overrides.

use anyhow::Context as _;
use clap::Subcommand;
use deskbridge_core::{ErrorCode, RecordId};
use deskbridge_source::{TenantCustomer, TenantEntry, TenantUpdate};
use deskbridge_store::Entity;
use serde_json::{Value, json};

use crate::error::CliError;
use crate::output;
use crate::settings::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum TenantsCommand {
    /// Every customer tenant the connection found, with its desk customer and overrides.
    List {
        #[arg(long)]
        connection: String,
        #[arg(long)]
        json: bool,
    },
    /// Change one tenant: its desk customer (by id or name; assigning one adds the customer's
    /// catch-all site mapping), "do not import", or its licence import type.
    Set {
        #[arg(long)]
        connection: String,
        #[arg(long)]
        tenant: String,
        /// The desk customer (id or exact name) the tenant's records go to.
        #[arg(long, conflicts_with = "do_not_import")]
        customer: Option<String>,
        /// Stop importing the tenant (its records already on the desk stay as they are).
        #[arg(long)]
        do_not_import: bool,
        /// subscribed_skus, subscriptions, subscriptions_and_skus, or `connection` to follow the
        /// connection's setting again.
        #[arg(long)]
        licence_import: Option<String>,
    },
}

fn row(entry: &TenantEntry) -> Value {
    json!({
        "tenant_id": entry.tenant_id,
        "name": entry.name,
        "customer": entry.customer_name.clone().unwrap_or_else(|| "do not import".into()),
        "licence_import": entry.overrides.get("licence_import").cloned().unwrap_or_else(|| "(connection's)".into()),
    })
}

/// A desk customer by id, else by exact name.
async fn customer_named(store: &deskbridge_store::Store, text: &str) -> anyhow::Result<RecordId> {
    let mut tx = store.read().await?;
    let found = match text.trim().parse::<i64>() {
        Ok(id) => tx.get(Entity::Customer, RecordId(id)).await?.map(|c| c.id),
        Err(_) => tx
            .find_by_text(Entity::Customer, "name", text.trim())
            .await?
            .into_iter()
            .next()
            .map(|c| c.id),
    };
    tx.commit().await?;
    found.ok_or_else(|| {
        CliError::new(
            ErrorCode::NotFound,
            format!("there is no desk customer {text:?} (give its id or exact name: deskbridge directory customers)"),
        )
        .into()
    })
}

pub async fn run(global: &GlobalArgs, command: TenantsCommand) -> anyhow::Result<()> {
    let store = global.open_store().await?;
    let sources = global.registry();
    let (name, json_out) = match &command {
        TenantsCommand::List { connection, json } => (connection.clone(), *json),
        TenantsCommand::Set { connection, .. } => (connection.clone(), false),
    };
    let connection = deskbridge_sync::load_connection(&store, &name).await?;
    let source = sources.source_of(&connection)?;
    let table = source.tenant_table().ok_or_else(|| {
        CliError::new(
            ErrorCode::InvalidInput,
            format!(
                "a {} connection has one tenant, set in its settings: it has no tenant table",
                connection.kind
            ),
        )
    })?;
    match command {
        TenantsCommand::List { .. } => {
            let entries = table.tenants(&store, &connection).await?;
            store.close().await;
            if json_out {
                output::outln!("{}", serde_json::to_string_pretty(&entries)?);
            } else if entries.is_empty() {
                output::outln!(
                    "connection {name:?} has found no customer tenant yet: run a sync (or sync --plan) first"
                );
            } else {
                let rows: Vec<Value> = entries.iter().map(row).collect();
                output::out!(
                    "{}",
                    output::table(&["tenant_id", "name", "customer", "licence_import"], &rows)
                );
            }
        }
        TenantsCommand::Set {
            tenant,
            customer,
            do_not_import,
            licence_import,
            ..
        } => {
            let mut update = TenantUpdate::default();
            if do_not_import {
                update.customer = Some(TenantCustomer::DoNotImport);
            } else if let Some(customer) = customer {
                update.customer = Some(TenantCustomer::Customer(customer_named(&store, &customer).await?));
            }
            if let Some(import) = licence_import {
                let value = (import != "connection").then_some(import);
                update.overrides.insert("licence_import".into(), value);
            }
            if update == TenantUpdate::default() {
                return Err(CliError::new(
                    ErrorCode::InvalidInput,
                    "nothing to change: give --customer, --do-not-import or --licence-import",
                )
                .into());
            }
            let entry = table
                .set_tenant(&store, &connection, &tenant, &update)
                .await
                .with_context(|| format!("tenant {tenant} was not changed"))?;
            store.close().await;
            output::outln!(
                "tenant {} ({}): {}; licence import {}",
                entry.name,
                entry.tenant_id,
                entry
                    .customer_name
                    .as_deref()
                    .map_or_else(|| "not imported".to_owned(), |c| format!("imported into {c}")),
                entry
                    .overrides
                    .get("licence_import")
                    .map_or("as the connection's", String::as_str)
            );
        }
    }
    Ok(())
}
