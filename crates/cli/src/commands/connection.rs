use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use deskbridge_sync::{NewCredential, NewEntraConnection, add_entra_connection};
use serde_json::json;

use crate::output;
use crate::settings::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum ConnectionCommand {
    /// Add a connection.
    Add {
        #[command(subcommand)]
        kind: AddKind,
    },
    /// List connections (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a connection, its cursors, runs and sealed credentials (imported desk records stay).
    Remove {
        /// The connection's name.
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AddKind {
    /// A Microsoft Entra ID tenant, read with application permissions.
    Entra(Box<EntraArgs>),
}

#[derive(Args, Debug)]
pub struct EntraArgs {
    #[arg(long)]
    pub name: String,
    /// Directory (tenant) id.
    #[arg(long)]
    pub tenant_id: String,
    /// Application (client) id.
    #[arg(long)]
    pub client_id: String,
    /// Read the client secret's value from this environment variable.
    #[arg(long, group = "credential")]
    pub client_secret_env: Option<String>,
    /// Read the client secret's value from this file.
    #[arg(long, group = "credential")]
    pub client_secret_file: Option<PathBuf>,
    /// A PEM file holding the certificate and its private key.
    #[arg(long, group = "credential")]
    pub certificate: Option<PathBuf>,
    /// When the client secret expires (shown by checks; RFC 3339).
    #[arg(long)]
    pub secret_expires: Option<String>,
    /// Identity platform host (national clouds, the emulator).
    #[arg(long)]
    pub authority_host: Option<String>,
    /// Graph version root (national clouds, the emulator).
    #[arg(long)]
    pub graph_url: Option<String>,
    /// The desk customer to import into (created when missing; default: the connection's name).
    #[arg(long)]
    pub customer: Option<String>,
    /// Instances the connection runs on: production, test, or production,test.
    #[arg(long, default_value = "production")]
    pub instances: String,
    /// Import each user's last sign-in date (needs AuditLog.Read.All and an Entra ID P1/P2 tenant;
    /// a tenant without either gets an error on its runs and is imported without the dates).
    #[arg(long)]
    pub last_sign_in: bool,
}

pub async fn run(global: &GlobalArgs, command: ConnectionCommand) -> anyhow::Result<()> {
    let store = global.open_store().await?;
    let result = match command {
        ConnectionCommand::Add {
            kind: AddKind::Entra(args),
        } => add(&store, *args).await,
        ConnectionCommand::List { json } => list(&store, json).await,
        ConnectionCommand::Remove { name } => remove(&store, &name).await,
    };
    store.close().await;
    result
}

async fn add(store: &deskbridge_store::Store, args: EntraArgs) -> anyhow::Result<()> {
    let credential = if let Some(var) = &args.client_secret_env {
        let value = std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?;
        NewCredential::ClientSecret {
            value,
            expires_at: parse_expiry(args.secret_expires.as_deref())?,
        }
    } else if let Some(file) = &args.client_secret_file {
        let value =
            std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        NewCredential::ClientSecret {
            value: value.trim().to_owned(),
            expires_at: parse_expiry(args.secret_expires.as_deref())?,
        }
    } else if let Some(file) = &args.certificate {
        let pem = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        NewCredential::Certificate { pem }
    } else {
        bail!("give a credential: --client-secret-env VAR, --client-secret-file FILE or --certificate FILE");
    };
    let connection = add_entra_connection(
        store,
        &NewEntraConnection {
            name: args.name,
            tenant_id: args.tenant_id,
            client_id: args.client_id,
            credential,
            authority_host: args.authority_host,
            graph_url: args.graph_url,
            customer: args.customer,
            enabled_instances: Some(args.instances),
            last_sign_in: args.last_sign_in,
        },
    )
    .await?;
    println!("added connection {:?} (id {})", connection.name, connection.id);
    Ok(())
}

fn parse_expiry(text: Option<&str>) -> anyhow::Result<Option<jiff::Timestamp>> {
    text.map(|t| {
        t.parse::<jiff::Timestamp>()
            .with_context(|| format!("--secret-expires {t:?} is not an RFC 3339 time"))
    })
    .transpose()
}

async fn list(store: &deskbridge_store::Store, as_json: bool) -> anyhow::Result<()> {
    let mut tx = store.read().await?;
    let connections = tx.connections().await?;
    let mut rows = Vec::new();
    for c in connections {
        let expiry = tx
            .secret_expiry(&deskbridge_store::SecretRef::new(
                "connections",
                c.id,
                deskbridge_sync::SECRET_CLIENT_SECRET,
            ))
            .await?
            .or(tx
                .secret_expiry(&deskbridge_store::SecretRef::new(
                    "connections",
                    c.id,
                    deskbridge_sync::SECRET_CERTIFICATE,
                ))
                .await?);
        rows.push(json!({
            "id": c.id.0,
            "name": c.name,
            "kind": c.kind,
            "tenant_id": c.config.get("tenant_id"),
            "client_id": c.config.get("client_id"),
            "auth": c.config.get("auth"),
            "authority_host": c.config.get("authority_host"),
            "graph_url": c.config.get("graph_url"),
            "enabled_instances": c.enabled_instances,
            "credential_expires": expiry,
        }));
    }
    tx.commit().await?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!(
            "{}",
            output::table(
                &["id", "name", "kind", "tenant_id", "auth", "credential_expires"],
                &rows
            )
        );
    }
    Ok(())
}

async fn remove(store: &deskbridge_store::Store, name: &str) -> anyhow::Result<()> {
    let mut tx = store.begin(deskbridge_store::WriteContext::manual()).await?;
    let Some(connection) = tx.connection_by_name(name).await? else {
        bail!("no connection named {name:?}")
    };
    tx.delete_connection(connection.id).await?;
    tx.commit().await?;
    println!("removed connection {name:?}");
    Ok(())
}
