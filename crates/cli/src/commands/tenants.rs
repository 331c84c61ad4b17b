//! `deskbridge tenants`: a many-tenant connection's customer tenants (CSP's Tenants tab) — which
//! desk customer each goes to, or none, and the settings a tenant overrides; and a tenant's admin
//! consent of the connection's multi-tenant app (`tenants consent`), through a loopback redirect.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Subcommand;
use deskbridge_core::{ErrorCode, RecordId, SharedClock, SystemClock};
use deskbridge_source::{TenantCustomer, TenantEntry, TenantUpdate};
use deskbridge_store::Entity;
use serde_json::{Value, json};

use super::loopback::{Finish, Loopback};
use crate::error::CliError;
use crate::output::{self, say};
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
        /// gdap (read through the tenant's GDAP relationship, with admin consent there) or dap
        /// (through delegated admin privileges, retired by Microsoft), or `connection` to follow
        /// the connection's type for new tenants.
        #[arg(long)]
        relationship_type: Option<String>,
    },
    /// Grant the GDAP app admin consent in one tenant: prints the URL to open as an
    /// administrator of that tenant, waits on a loopback address for Microsoft's redirect,
    /// records the grant, then runs the configuration check's point for the tenant. The GDAP
    /// app needs `http://localhost/callback` (or `http://127.0.0.1/callback`) as a redirect URI.
    Consent {
        #[arg(long)]
        connection: String,
        #[arg(long)]
        tenant: String,
        /// Loopback address to receive the redirect on (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// Host name in the redirect URI: `127.0.0.1` or `localhost`, as registered on the app.
        #[arg(long, default_value = "127.0.0.1")]
        redirect_host: String,
        /// Give up after this many seconds without a redirect.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// This instance's kind, for the check (a connection runs only where it is enabled).
        #[arg(long, env = "DESKBRIDGE_INSTANCE", default_value = "production")]
        instance: String,
    },
    /// Reset the deltas of one tenant (or, without --tenant, of every tenant): the next run reads
    /// it whole, as a first import does.
    ResetDeltas {
        #[arg(long)]
        connection: String,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Give every tenant assigned to a desk customer that customer's catch-all site mapping, if
    /// it has no site mapping of its own (the guide's "generate mappings").
    GenerateMappings {
        #[arg(long)]
        connection: String,
    },
}

fn row(entry: &TenantEntry) -> Value {
    json!({
        "tenant_id": entry.tenant_id,
        "name": entry.name,
        "customer": entry.customer_name.clone().unwrap_or_else(|| "do not import".into()),
        "licence_import": entry.overrides.get("licence_import").cloned().unwrap_or_else(|| "(connection's)".into()),
        "relationship": entry.relationship.clone().unwrap_or_else(|| "not known yet".into()),
        "relationship_type": entry.overrides.get("relationship_type").cloned().unwrap_or_else(|| "(connection's)".into()),
        "admin_consent": entry.consented_at.as_ref().map_or_else(|| "unknown".to_owned(), |at| format!("granted {at}")),
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
        TenantsCommand::Set { connection, .. }
        | TenantsCommand::Consent { connection, .. }
        | TenantsCommand::ResetDeltas { connection, .. }
        | TenantsCommand::GenerateMappings { connection } => (connection.clone(), false),
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
        TenantsCommand::ResetDeltas { tenant, .. } => {
            let mut tx = store.begin(deskbridge_store::WriteContext::manual()).await?;
            let cleared = match &tenant {
                Some(tenant) => {
                    if !table
                        .tenants(&store, &connection)
                        .await?
                        .iter()
                        .any(|t| t.tenant_id.eq_ignore_ascii_case(tenant))
                    {
                        return Err(CliError::new(
                            ErrorCode::NotFound,
                            format!("connection {name:?} has no tenant {tenant} (deskbridge tenants list --connection {name:?})"),
                        )
                        .into());
                    }
                    tx.clear_tenant_cursors(connection.id, tenant).await?
                }
                None => tx.clear_cursors(connection.id, None).await?,
            };
            tx.commit().await?;
            store.close().await;
            output::outln!(
                "{}: {cleared} cursor(s) forgotten; the next run reads {} whole",
                tenant.as_deref().unwrap_or("every tenant"),
                if tenant.is_some() { "it" } else { "them" }
            );
        }
        TenantsCommand::GenerateMappings { .. } => {
            let added = table.generate_mappings(&store, &connection).await?;
            store.close().await;
            output::outln!("{added} catch-all site mapping(s) added");
        }
        TenantsCommand::Consent {
            tenant,
            listen,
            redirect_host,
            timeout,
            instance,
            ..
        } => {
            let result = consent(
                &store,
                &sources,
                &connection,
                &tenant,
                listen,
                &redirect_host,
                timeout,
                &instance,
            )
            .await;
            store.close().await;
            return result;
        }
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
                    output::table(
                        &[
                            "tenant_id",
                            "name",
                            "customer",
                            "relationship",
                            "relationship_type",
                            "licence_import",
                            "admin_consent"
                        ],
                        &rows
                    )
                );
            }
        }
        TenantsCommand::Set {
            tenant,
            customer,
            do_not_import,
            licence_import,
            relationship_type,
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
            if let Some(kind) = relationship_type {
                let value = (kind != "connection").then_some(kind);
                update.overrides.insert("relationship_type".into(), value);
            }
            if update == TenantUpdate::default() {
                return Err(CliError::new(
                    ErrorCode::InvalidInput,
                    "nothing to change: give --customer, --do-not-import, --licence-import or --relationship-type",
                )
                .into());
            }
            let entry = table
                .set_tenant(&store, &connection, &tenant, &update)
                .await
                .with_context(|| format!("tenant {tenant} was not changed"))?;
            store.close().await;
            output::outln!(
                "tenant {} ({}): {}; licence import {}; relationship type {}",
                entry.name,
                entry.tenant_id,
                entry
                    .customer_name
                    .as_deref()
                    .map_or_else(|| "not imported".to_owned(), |c| format!("imported into {c}")),
                entry
                    .overrides
                    .get("licence_import")
                    .map_or("as the connection's", String::as_str),
                entry
                    .overrides
                    .get("relationship_type")
                    .map_or("as the connection's", String::as_str)
            );
        }
    }
    Ok(())
}

/// `tenants consent`: the admin consent through the loopback, then the tenant's check point.
#[allow(clippy::too_many_arguments)]
async fn consent(
    store: &deskbridge_store::Store,
    sources: &deskbridge_source::SourceRegistry,
    connection: &deskbridge_store::Connection,
    tenant: &str,
    listen: std::net::SocketAddr,
    redirect_host: &str,
    timeout: u64,
    instance: &str,
) -> anyhow::Result<()> {
    let clock: SharedClock = Arc::new(SystemClock);
    let loopback = Loopback::bind(listen, redirect_host).await?;
    let redirect_uri = loopback.redirect_uri.clone();
    let table = sources
        .source_of(connection)?
        .tenant_table()
        .ok_or_else(|| CliError::new(ErrorCode::InvalidInput, "the connection has no tenant table"))?;
    let url = table
        .begin_consent(store, connection, tenant, &redirect_uri, &clock)
        .await?;
    let finish: Finish = {
        let (store, sources, connection, clock) =
            (store.clone(), sources.clone(), connection.clone(), clock.clone());
        Arc::new(move |redirect| {
            let (store, sources, connection, clock) =
                (store.clone(), sources.clone(), connection.clone(), clock.clone());
            Box::pin(async move {
                let source = sources.source_of(&connection)?;
                let table = source.tenant_table().ok_or_else(|| {
                    deskbridge_source::SyncError::Internal(
                        "the connector no longer has a tenant table".into(),
                    )
                })?;
                let entry = table
                    .complete_consent(&store, &connection, &redirect, &clock)
                    .await?;
                Ok((
                    "Admin consent granted".to_owned(),
                    format!(
                        "tenant {} ({}): admin consent granted {}",
                        entry.name,
                        entry.tenant_id,
                        entry.consented_at.unwrap_or_default()
                    ),
                ))
            })
        })
    };
    say(&format!(
        "Open this address in a browser and sign in as an administrator of tenant {tenant} (a Global \
         Administrator or Privileged Role Administrator of that customer) to accept the GDAP app's permissions:\n\
         {url}\nWaiting for the consent to come back to {redirect_uri} …"
    ));
    let text = loopback.wait(timeout, "admin consent", finish).await?;
    output::outln!("{text}");
    // Whether the GDAP app can now read the tenant: the check's point for it.
    let entry = table
        .tenants(store, connection)
        .await?
        .into_iter()
        .find(|t| t.tenant_id.eq_ignore_ascii_case(tenant));
    let Some(entry) = entry else {
        return Ok(());
    };
    if entry.customer_id.is_none() {
        output::outln!(
            "the tenant is not imported (do not import), so the check skips it: give it a desk customer \
             (deskbridge tenants set --connection {:?} --tenant {} --customer …) to read it",
            connection.name,
            entry.tenant_id
        );
        return Ok(());
    }
    let report = deskbridge_sync::check_connection(store, sources, &connection.name, instance, &clock).await;
    let point = format!("tenant {}", entry.name);
    let mine: Vec<_> = report
        .points
        .iter()
        .filter(|p| p.name == point || p.name.starts_with(&format!("{point} ")))
        .collect();
    // No point for the tenant: an earlier point failed and the check stopped before it.
    let shown: Vec<_> = if mine.is_empty() {
        report.points.iter().filter(|p| !p.ok).collect()
    } else {
        mine
    };
    for p in &shown {
        if p.ok {
            output::outln!("pass  {:<18} {}", p.name, p.detail);
        } else {
            output::outln!(
                "FAIL  {:<18} {}\n      {:<18} remedy: {}",
                p.name,
                p.detail,
                "",
                p.remedy
            );
        }
    }
    if shown.is_empty() || shown.iter().any(|p| !p.ok) {
        anyhow::bail!(CliError::new(
            ErrorCode::CheckFailed,
            format!(
                "admin consent is recorded, but the check does not show the GDAP app reading tenant {}: see above \
                 (Microsoft may take a few minutes to apply a consent; run deskbridge check --connection {:?} again)",
                entry.tenant_id, connection.name
            ),
        ));
    }
    Ok(())
}
