use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use deskbridge_connector_entra::{
    NewCredential, NewEntraConnection, SECRET_CERTIFICATE, SECRET_CLIENT_SECRET, SECRET_REFRESH_TOKEN,
    add_entra_connection,
};
use deskbridge_core::ErrorCode;
use deskbridge_source::ConnectionSecrets;
use serde_json::json;

use crate::error::CliError;
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
    /// Authorise a delegated connection: sign in with Microsoft in a browser; the refresh token
    /// is sealed in the store. Listens on a loopback address for the redirect.
    Authorize(AuthorizeArgs),
    /// Show or change a connection's delta settings (on/off, sync method), or reset its delta
    /// links: "clear" makes the next run a full import, "latest" starts tracking from now.
    Delta(DeltaArgs),
    /// Remove a connection, its cursors, runs and sealed credentials (imported desk records stay).
    Remove {
        /// The connection's name.
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AddKind {
    /// A Microsoft Entra ID tenant, read with application or delegated permissions.
    Entra(Box<EntraArgs>),
}

#[derive(Args, Debug)]
pub struct DeltaArgs {
    #[arg(long)]
    pub name: String,
    /// Use delta queries after the first full import.
    #[arg(long, conflicts_with = "disable")]
    pub enable: bool,
    /// Always run full imports.
    #[arg(long)]
    pub disable: bool,
    /// What the delta listens to: every change, or only the fields the mappings use.
    #[arg(long, value_enum)]
    pub sync_method: Option<SyncMethodArg>,
    /// Reset the stored delta links.
    #[arg(long, value_enum)]
    pub reset: Option<ResetArg>,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum SyncMethodArg {
    AllChanges,
    MappedFieldsOnly,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ResetArg {
    /// Forget the links: the next run is a full import.
    Clear,
    /// Start tracking from now: the next run sees only later changes.
    Latest,
}

#[derive(Args, Debug)]
pub struct AuthorizeArgs {
    /// The delegated connection to authorise.
    #[arg(long)]
    pub name: String,
    /// Loopback address to receive the redirect on (port 0: any free port). The app registration
    /// needs `http://localhost/callback` (or `http://127.0.0.1/callback`) as a redirect URI;
    /// Microsoft accepts any port for loopback redirects.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// Host name in the redirect URI: `127.0.0.1` (the loopback literal RFC 8252 recommends) or
    /// `localhost`, as registered on the app.
    #[arg(long, default_value = "127.0.0.1")]
    pub redirect_host: String,
    /// Give up after this many seconds without a redirect.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
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
    /// Delegated permissions: authorise afterwards with `deskbridge connection authorize`. A
    /// confidential app also gives its secret with --client-secret-env / --client-secret-file.
    #[arg(long, conflicts_with = "certificate")]
    pub delegated: bool,
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
        ConnectionCommand::Authorize(args) => super::authorize::run(&store, args).await,
        ConnectionCommand::Delta(args) => delta(&store, args).await,
        ConnectionCommand::Remove { name } => remove(&store, &name).await,
    };
    store.close().await;
    result
}

async fn add(store: &deskbridge_store::Store, args: EntraArgs) -> anyhow::Result<()> {
    let secret = if let Some(var) = &args.client_secret_env {
        Some(std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?)
    } else if let Some(file) = &args.client_secret_file {
        let value =
            std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        Some(value.trim().to_owned())
    } else {
        None
    };
    let credential = if args.delegated {
        NewCredential::Delegated {
            client_secret: secret,
            expires_at: parse_expiry(args.secret_expires.as_deref())?,
        }
    } else if let Some(value) = secret {
        NewCredential::ClientSecret {
            value,
            expires_at: parse_expiry(args.secret_expires.as_deref())?,
        }
    } else if let Some(file) = &args.certificate {
        let pem = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        NewCredential::Certificate { pem }
    } else {
        bail!(CliError::new(
            ErrorCode::InvalidInput,
            "give a credential: --client-secret-env VAR, --client-secret-file FILE or --certificate FILE \
             (or --delegated to sign in)"
        ));
    };
    let delegated = args.delegated;
    let name = args.name.clone();
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
    if delegated {
        println!("authorise it by signing in: deskbridge connection authorize --name {name}");
    }
    Ok(())
}

fn parse_expiry(text: Option<&str>) -> anyhow::Result<Option<jiff::Timestamp>> {
    text.map(|t| {
        t.parse::<jiff::Timestamp>().map_err(|e| {
            CliError::new(
                ErrorCode::InvalidInput,
                format!("--secret-expires {t:?} is not an RFC 3339 time: {e}"),
            )
            .into()
        })
    })
    .transpose()
}

async fn list(store: &deskbridge_store::Store, as_json: bool) -> anyhow::Result<()> {
    let mut tx = store.read().await?;
    let connections = tx.connections().await?;
    let mut rows = Vec::new();
    for c in connections {
        let secrets = ConnectionSecrets(c.id);
        let expiry = secrets
            .expiry(&mut tx, SECRET_CLIENT_SECRET)
            .await?
            .or(secrets.expiry(&mut tx, SECRET_CERTIFICATE).await?);
        // A delegated connection is usable once someone has signed in and its refresh token is sealed.
        let authorised = if c.config.get("auth").and_then(|a| a.as_str()) == Some("delegated") {
            json!(secrets.get(&mut tx, SECRET_REFRESH_TOKEN).await?.is_some())
        } else {
            serde_json::Value::Null
        };
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
            "authorised": authorised,
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
        bail!(CliError::new(
            ErrorCode::NotFound,
            format!("no connection named {name:?}")
        ))
    };
    tx.delete_connection(connection.id).await?;
    tx.commit().await?;
    println!("removed connection {name:?}");
    Ok(())
}

async fn delta(store: &deskbridge_store::Store, args: DeltaArgs) -> anyhow::Result<()> {
    use deskbridge_connector_entra::{DeltaReset, SyncMethod};
    let enabled = match (args.enable, args.disable) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let method = args.sync_method.map(|m| match m {
        SyncMethodArg::AllChanges => SyncMethod::AllChanges,
        SyncMethodArg::MappedFieldsOnly => SyncMethod::MappedFieldsOnly,
    });
    let mut status = if enabled.is_some() || method.is_some() {
        deskbridge_connector_entra::set_delta_settings(store, &args.name, enabled, method).await?
    } else {
        deskbridge_connector_entra::delta_status(store, &args.name).await?
    };
    if let Some(reset) = args.reset {
        let reset = match reset {
            ResetArg::Clear => DeltaReset::Clear,
            ResetArg::Latest => DeltaReset::Latest,
        };
        let clock: deskbridge_core::SharedClock = std::sync::Arc::new(deskbridge_core::SystemClock);
        status = deskbridge_connector_entra::reset_deltas(store, &args.name, reset, &clock).await?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    println!("connection:     {}", status.connection);
    println!("delta queries:  {}", if status.enabled { "on" } else { "off" });
    println!(
        "sync method:    {}",
        match status.sync_method {
            SyncMethod::AllChanges => "all changes",
            SyncMethod::MappedFieldsOnly => "mapped fields only",
        }
    );
    println!(
        "users listen:   {}",
        status.tracking.users_select.as_deref().unwrap_or("every change")
    );
    println!(
        "groups listen:  {}",
        status.tracking.groups_select.as_deref().unwrap_or("every change")
    );
    match (&status.links_saved_at, status.links_current) {
        (None, _) => println!("delta links:    none; the next run is a full import"),
        (Some(at), true) => println!("delta links:    saved {at}"),
        (Some(at), false) => println!(
            "delta links:    saved {at} under other settings; the next run is a full import \
             (or reset with --reset latest to start from now)"
        ),
    }
    for field in &status.tracking.untracked {
        println!(
            "not tracked:    {} ({}), used by {}; its changes arrive with the next change to a tracked field",
            field.property,
            field.reason,
            field.used_by.join(", ")
        );
    }
    Ok(())
}
