use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use deskbridge_agent::health::{ConnectionHealthView, SortKey, connection_health, customers_text};
use deskbridge_core::{ErrorCode, SharedClock, SystemClock};
use deskbridge_source::settings::{Purpose, enabled_instances, validate};
use deskbridge_source::{
    ConnectionSecrets, CursorReset, NewConnection, Source, SourceContext, SourceRegistry,
};
use deskbridge_store::{Connection, Store};
use deskbridge_sync::{NewConnectionCheck, check_new_connection, remove_connection};
use serde_json::{Map, Value, json};

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
    /// List connections (never their secrets) with their health: customer, last run (status,
    /// when, counts), next scheduled run, open errors and held runs.
    List {
        #[arg(long)]
        json: bool,
        /// Order by name, status (worst first), last-run (newest first) or errors (most first).
        #[arg(long, default_value = "name", value_parser = clap::value_parser!(SortKey))]
        sort: SortKey,
        /// Only connections that need someone: their last run failed, or they have open errors
        /// or held runs.
        #[arg(long)]
        failing: bool,
    },
    /// Authorise a delegated connection: sign in with Microsoft in a browser; the refresh token
    /// is sealed in the store. Listens on a loopback address for the redirect.
    Authorize(AuthorizeArgs),
    /// Show or change a connection's delta settings (on/off, sync method), or reset its delta
    /// links: "clear" makes the next run a full import, "latest" starts tracking from now.
    Delta(DeltaArgs),
    /// Remove a connection, its cursors, runs and sealed credentials (imported desk records stay).
    /// The desk customer it created goes too when it holds nothing else; otherwise it is kept,
    /// and the output says what it still holds.
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
    /// A Microsoft CSP partner: every customer tenant Partner Center lists with an active GDAP
    /// relationship, read with the multi-tenant GDAP app. Authorise the Partner Center app
    /// afterwards with `deskbridge connection authorize`.
    Csp(Box<CspArgs>),
    /// A Dynamics 365 organisation (Dataverse): its contacts become desk users. AuthScheme
    /// AzureServicePrincipal (the default) signs in as an application user; AzureAD is authorised
    /// afterwards with `deskbridge connection authorize`. The settings may come from a connection
    /// string (`Key=Value;…`) in an environment variable.
    Dynamics(Box<DynamicsArgs>),
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
    /// Reset the stored delta links. With --sync-method: how the method change restarts them
    /// (`latest`: the guide's way, tracking starts now; `clear`: the next run reads everything).
    #[arg(long, value_enum)]
    pub reset: Option<ResetArg>,
    /// Confirm a sync method change without being asked: take the latest delta.
    #[arg(long)]
    pub yes: bool,
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

/// The administrator's answer when a change restarts the delta links (the guide asks before it
/// takes the latest delta): `--reset` says how, `--yes` takes the latest, a terminal asks after
/// `why`; without a terminal and without an answer, `None` (the change is then refused, saying
/// which flag to give).
pub(crate) fn confirm_delta_restart(
    reset: Option<ResetArg>,
    yes: bool,
    why: &str,
) -> anyhow::Result<Option<CursorReset>> {
    Ok(match reset {
        Some(ResetArg::Clear) => Some(CursorReset::Clear),
        Some(ResetArg::Latest) => Some(CursorReset::Latest),
        None if yes => Some(CursorReset::Latest),
        None if std::io::IsTerminal::is_terminal(&std::io::stdin())
            && std::io::IsTerminal::is_terminal(&std::io::stderr()) =>
        {
            eprint!("{why} (--reset clear reads the whole tenant again instead). Go on? [y/N] ");
            let mut answer = String::new();
            std::io::stdin().read_line(&mut answer)?;
            if !matches!(answer.trim(), "y" | "Y" | "yes") {
                bail!(CliError::new(ErrorCode::InvalidInput, "nothing was changed"));
            }
            Some(CursorReset::Latest)
        }
        None => None,
    })
}

#[derive(Args, Debug)]
pub struct AuthorizeArgs {
    /// The delegated connection to authorise.
    #[arg(long)]
    pub name: String,
    /// Loopback address to receive the redirect on (port 0: any free port). The app registration
    /// needs `http://localhost/callback` (or `http://127.0.0.1/callback`) as a redirect URI;
    /// Microsoft accepts any port for loopback redirects. Default: the connection's loopback
    /// callback URL when it names one (a Dynamics 365 connection's, e.g. http://localhost:33333),
    /// else 127.0.0.1:0.
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Host name in the redirect URI: `127.0.0.1` (the loopback literal RFC 8252 recommends) or
    /// `localhost`, as registered on the app.
    #[arg(long)]
    pub redirect_host: Option<String>,
    /// Give up after this many seconds without a redirect.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

/// The check a new connection may pass before it is saved.
#[derive(Args, Debug)]
pub struct BeforeSaving {
    /// Check the connection (the points of `deskbridge check`) before saving it: when a required
    /// point fails, nothing is saved and the points say what to do. A connection that signs in
    /// interactively is saved unchecked: it cannot be checked before it is authorised.
    #[arg(long)]
    pub check: bool,
    /// This instance's kind, for the check's instance point (a warning only here).
    #[arg(long, env = "DESKBRIDGE_INSTANCE", default_value = "production")]
    pub instance: String,
}

#[derive(Args, Debug)]
pub struct EntraArgs {
    #[command(flatten)]
    pub before_saving: BeforeSaving,
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
    /// Use delta queries after the first full import (off on a new connection, as in the guide;
    /// `connection delta --enable` turns them on later).
    #[arg(long)]
    pub delta: bool,
    /// Allow licences to be managed from the desk (`deskbridge licences assign|remove`): needs
    /// LicenseAssignment.ReadWrite.All with admin consent.
    #[arg(long)]
    pub manage_licences: bool,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("gdap_credential").required(true).args(["gdap_secret_env", "gdap_certificate"])))]
pub struct CspArgs {
    #[command(flatten)]
    pub before_saving: BeforeSaving,
    #[arg(long)]
    pub name: String,
    /// The CSP-enabled (partner) tenant's id.
    #[arg(long)]
    pub partner_tenant_id: String,
    /// The Partner Center app's client id (single-tenant, delegated user_impersonation).
    #[arg(long)]
    pub partner_client_id: String,
    /// Read the Partner Center app's client secret from this environment variable.
    #[arg(long)]
    pub partner_client_secret_env: Option<String>,
    /// The multi-tenant GDAP app's client id.
    #[arg(long)]
    pub gdap_client_id: String,
    /// Read the GDAP app's client secret from this environment variable.
    #[arg(long)]
    pub gdap_secret_env: Option<String>,
    /// A PEM file holding the GDAP app's certificate and private key.
    #[arg(long)]
    pub gdap_certificate: Option<PathBuf>,
    /// Identity platform host (national clouds, the emulator).
    #[arg(long)]
    pub authority_host: Option<String>,
    /// Graph version root (national clouds, the emulator).
    #[arg(long)]
    pub graph_url: Option<String>,
    /// Partner Center root (national clouds, the emulator).
    #[arg(long)]
    pub partner_center_url: Option<String>,
    /// The partner API root, where price sheets are read (the emulator).
    #[arg(long)]
    pub partner_api_url: Option<String>,
    /// What customers' licences are imported as: subscribed_skus (every tier; the default),
    /// subscriptions (tier 1 / direct) or subscriptions_and_skus.
    #[arg(long)]
    pub licence_import: Option<String>,
    /// How newly found customer tenants are read: gdap (the default: an active GDAP relationship
    /// and admin consent in the tenant) or dap (delegated admin privileges, retired by Microsoft).
    #[arg(long)]
    pub relationship_type: Option<String>,
    /// Import subscription prices from this marketplace's price sheet: GB or US (tier 1), or off.
    #[arg(long)]
    pub subscription_pricing: Option<String>,
    /// The desk top level (by name) that customers created for new tenants go under.
    #[arg(long)]
    pub top_level: Option<String>,
    /// Instances the connection runs on: production, test, or production,test.
    #[arg(long, default_value = "production")]
    pub instances: String,
    /// Import each user's last sign-in date (AuditLog.Read.All on the GDAP app; P1/P2 tenants).
    #[arg(long)]
    pub last_sign_in: bool,
}

#[derive(Args, Debug)]
pub struct DynamicsArgs {
    #[command(flatten)]
    pub before_saving: BeforeSaving,
    #[arg(long)]
    pub name: String,
    /// The organisation's root URL, like https://contoso.crm.dynamics.com/.
    #[arg(long)]
    pub url: Option<String>,
    /// Azure tenant: the directory (tenant) id, or one of its verified domains.
    #[arg(long)]
    pub tenant_id: Option<String>,
    /// Application (client) id.
    #[arg(long)]
    pub client_id: Option<String>,
    /// Read the client secret's value from this environment variable.
    #[arg(long, group = "dynamics_credential")]
    pub client_secret_env: Option<String>,
    /// A PEM file holding the certificate and its private key.
    #[arg(long, group = "dynamics_credential")]
    pub certificate: Option<PathBuf>,
    /// AzureServicePrincipal (client credentials; default) or AzureAD (a user signs in).
    #[arg(long)]
    pub auth_scheme: Option<String>,
    /// CRMOnline (the default and the only one: on-premises servers are not supported).
    #[arg(long)]
    pub crm_version: Option<String>,
    /// The redirect URI registered on the app (AzureAD; default http://localhost:33333).
    #[arg(long)]
    pub callback_url: Option<String>,
    /// Identity platform host (national clouds, the emulator).
    #[arg(long)]
    pub authority_host: Option<String>,
    /// Read a connection string (`URL=…;AuthScheme=…;OAuthClientId=…;…`) from this environment
    /// variable; it may hold a secret, so it is never a flag. Flags may add what it lacks.
    #[arg(long)]
    pub connection_string_env: Option<String>,
    /// The desk customer to import into (created when missing; default: the connection's name).
    #[arg(long)]
    pub customer: Option<String>,
    /// Instances the connection runs on: production, test, or production,test.
    #[arg(long, default_value = "production")]
    pub instances: String,
}

pub async fn run(global: &GlobalArgs, command: ConnectionCommand) -> anyhow::Result<()> {
    let store = global.open_store().await?;
    let registry = global.registry();
    let result = match command {
        ConnectionCommand::Add {
            kind: AddKind::Entra(args),
        } => add(&store, &registry, *args).await,
        ConnectionCommand::Add {
            kind: AddKind::Csp(args),
        } => add_csp(&store, &registry, *args).await,
        ConnectionCommand::Add {
            kind: AddKind::Dynamics(args),
        } => add_dynamics(&store, &registry, *args).await,
        ConnectionCommand::List { json, sort, failing } => list(&store, &registry, json, sort, failing).await,
        ConnectionCommand::Authorize(args) => super::authorize::run(&store, &registry, args).await,
        ConnectionCommand::Delta(args) => delta(&store, &registry, args).await,
        ConnectionCommand::Remove { name } => remove(&store, &name).await,
    };
    store.close().await;
    result
}

/// `connection add entra`: the flags become the Entra connector's settings, checked and created
/// through the registry like the API's and the UI's.
async fn add(store: &Store, registry: &SourceRegistry, args: EntraArgs) -> anyhow::Result<()> {
    let secret = if let Some(var) = &args.client_secret_env {
        Some(std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?)
    } else if let Some(file) = &args.client_secret_file {
        let value =
            std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        Some(value.trim().to_owned())
    } else {
        None
    };
    let certificate = match &args.certificate {
        Some(file) => {
            Some(std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?)
        }
        None => None,
    };
    if secret.is_none() && certificate.is_none() && !args.delegated {
        bail!(CliError::new(
            ErrorCode::InvalidInput,
            "give a credential: --client-secret-env VAR, --client-secret-file FILE or --certificate FILE \
             (or --delegated to sign in)"
        ));
    }
    let mut settings = Map::new();
    let mut set = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            settings.insert(key.to_owned(), value);
        }
    };
    set("tenant_id", Some(json!(args.tenant_id)));
    set("client_id", Some(json!(args.client_id)));
    set("auth", args.delegated.then(|| json!("delegated")));
    set("client_secret", secret.map(Value::from));
    set("certificate_pem", certificate.map(Value::from));
    set("secret_expires_at", args.secret_expires.map(Value::from));
    set("authority_host", args.authority_host.map(Value::from));
    set("graph_url", args.graph_url.map(Value::from));
    set("delta", Some(json!(args.delta)));
    set("last_sign_in", Some(json!(args.last_sign_in)));
    set("manage_licences", Some(json!(args.manage_licences)));
    let source = source_of_kind(registry, "entra")?;
    let settings = validate(
        source.settings(),
        &settings,
        Purpose::Create,
        registry.endpoint_policy(),
    )?;
    registry
        .refuse_tenant_read_elsewhere(store, "entra", &args.tenant_id)
        .await?;
    let new = NewConnection {
        name: deskbridge_source::settings::connection_name(&args.name)?,
        customer: args.customer,
        enabled_instances: enabled_instances(Some(&args.instances))?,
        settings,
    };
    let connection = create_checked(store, source, new, &args.before_saving).await?;
    crate::output::outln!("added connection {:?} (id {})", connection.name, connection.id);
    if args.delegated {
        crate::output::outln!(
            "authorise it by signing in: deskbridge connection authorize --name {}",
            connection.name
        );
    } else {
        crate::output::outln!(
            "next: deskbridge check --connection {0}, then deskbridge sync --connection {0} --plan",
            connection.name
        );
    }
    Ok(())
}

fn env_secret(var: &str) -> anyhow::Result<String> {
    std::env::var(var).with_context(|| format!("environment variable {var} is not set"))
}

/// `connection add csp`: the flags become the CSP connector's settings, checked and created
/// through the registry like the API's and the UI's.
async fn add_csp(store: &Store, registry: &SourceRegistry, args: CspArgs) -> anyhow::Result<()> {
    let partner_secret = args
        .partner_client_secret_env
        .as_deref()
        .map(env_secret)
        .transpose()?;
    let gdap_secret = args.gdap_secret_env.as_deref().map(env_secret).transpose()?;
    let gdap_certificate = match &args.gdap_certificate {
        Some(file) => {
            Some(std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?)
        }
        None => None,
    };
    let mut settings = Map::new();
    let mut set = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            settings.insert(key.to_owned(), value);
        }
    };
    set("partner_tenant_id", Some(json!(args.partner_tenant_id)));
    set("partner_client_id", Some(json!(args.partner_client_id)));
    set("partner_client_secret", partner_secret.map(Value::from));
    set("gdap_client_id", Some(json!(args.gdap_client_id)));
    set("gdap_client_secret", gdap_secret.map(Value::from));
    set("gdap_certificate_pem", gdap_certificate.map(Value::from));
    set("authority_host", args.authority_host.map(Value::from));
    set("graph_url", args.graph_url.map(Value::from));
    set("partner_center_url", args.partner_center_url.map(Value::from));
    set("partner_api_url", args.partner_api_url.map(Value::from));
    set("licence_import", args.licence_import.map(Value::from));
    set("relationship_type", args.relationship_type.map(Value::from));
    set("subscription_pricing", args.subscription_pricing.map(Value::from));
    set("top_level", args.top_level.map(Value::from));
    set("last_sign_in", Some(json!(args.last_sign_in)));
    let source = source_of_kind(registry, "csp")?;
    let settings = validate(
        source.settings(),
        &settings,
        Purpose::Create,
        registry.endpoint_policy(),
    )?;
    let new = NewConnection {
        name: deskbridge_source::settings::connection_name(&args.name)?,
        customer: None,
        enabled_instances: enabled_instances(Some(&args.instances))?,
        settings,
    };
    let connection = create_checked(store, source, new, &args.before_saving).await?;
    crate::output::outln!("added connection {:?} (id {})", connection.name, connection.id);
    crate::output::outln!(
        "authorise the Partner Center app by signing in as a partner admin: deskbridge connection authorize --name {}",
        connection.name
    );
    Ok(())
}

/// `connection add dynamics`: the flags (and the connection string, if one is given) become the
/// Dynamics connector's settings, checked and created through the registry like the API's and the
/// UI's.
async fn add_dynamics(store: &Store, registry: &SourceRegistry, args: DynamicsArgs) -> anyhow::Result<()> {
    let (mut settings, mut certificate_file) = match &args.connection_string_env {
        Some(var) => {
            let parsed = deskbridge_connectors::dynamics::parse_connection_string(&env_secret(var)?)?;
            (parsed.settings, parsed.certificate_file.map(PathBuf::from))
        }
        None => (Map::new(), None),
    };
    if let Some(file) = &args.certificate {
        if certificate_file.is_some() {
            bail!(CliError::new(
                ErrorCode::InvalidInput,
                "--certificate and the connection string's OAuthJWTCert both give a certificate: give one"
            ));
        }
        certificate_file = Some(file.clone());
    }
    let secret = args.client_secret_env.as_deref().map(env_secret).transpose()?;
    let certificate = match &certificate_file {
        Some(file) => {
            Some(std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?)
        }
        None => None,
    };
    let flags = [
        ("url", "--url", args.url.map(Value::from)),
        ("tenant_id", "--tenant-id", args.tenant_id.map(Value::from)),
        ("client_id", "--client-id", args.client_id.map(Value::from)),
        ("client_secret", "--client-secret-env", secret.map(Value::from)),
        ("certificate_pem", "--certificate", certificate.map(Value::from)),
        ("auth_scheme", "--auth-scheme", args.auth_scheme.map(Value::from)),
        ("crm_version", "--crm-version", args.crm_version.map(Value::from)),
        (
            "callback_url",
            "--callback-url",
            args.callback_url.map(Value::from),
        ),
        (
            "authority_host",
            "--authority-host",
            args.authority_host.map(Value::from),
        ),
    ];
    for (key, flag, value) in flags {
        let Some(value) = value else { continue };
        // The certificate's file was already refused above when given twice.
        if key != "certificate_pem" && settings.contains_key(key) {
            bail!(CliError::new(
                ErrorCode::InvalidInput,
                format!("{flag} and the connection string both give {key}: give it once")
            ));
        }
        settings.insert(key.to_owned(), value);
    }
    let source = source_of_kind(registry, "dynamics")?;
    let settings = validate(
        source.settings(),
        &settings,
        Purpose::Create,
        registry.endpoint_policy(),
    )?;
    let signs_in = settings.text("auth_scheme") == Some("AzureAD");
    let new = NewConnection {
        name: deskbridge_source::settings::connection_name(&args.name)?,
        customer: args.customer,
        enabled_instances: enabled_instances(Some(&args.instances))?,
        settings,
    };
    let connection = create_checked(store, source, new, &args.before_saving).await?;
    crate::output::outln!("added connection {:?} (id {})", connection.name, connection.id);
    if signs_in {
        crate::output::outln!(
            "authorise it by signing in with a user of the organisation: deskbridge connection authorize --name {}",
            connection.name
        );
    } else {
        crate::output::outln!(
            "next: deskbridge check --connection {0} (\"connection available\" when all is well), then \
             deskbridge sync --connection {0} --plan",
            connection.name
        );
    }
    Ok(())
}

/// Creates the connection, first checking it when asked (`--check`): a required point that fails
/// saves nothing and ends the command with the points and their remedies.
async fn create_checked(
    store: &Store,
    source: &std::sync::Arc<dyn Source>,
    new: NewConnection,
    before_saving: &BeforeSaving,
) -> anyhow::Result<Connection> {
    if before_saving.check {
        let clock: SharedClock = std::sync::Arc::new(SystemClock);
        let name = new.name.clone();
        match check_new_connection(store, source, new.clone(), &before_saving.instance, &clock).await? {
            NewConnectionCheck::Passed(report) => super::check::print_points(&report, "warn"),
            NewConnectionCheck::Failed(report) => {
                super::check::print_points(&report, "FAIL");
                let failed = report.points.iter().filter(|p| !p.ok).count();
                bail!(CliError::new(
                    ErrorCode::CheckFailed,
                    format!(
                        "{failed} of {} checks failed for the new connection {name:?}: nothing was saved; \
                         fix what the points say and add it again",
                        report.points.len()
                    )
                ));
            }
            NewConnectionCheck::NeedsAuthorisation => crate::output::outln!(
                "not checked: the connection signs in interactively and cannot be checked before it is \
                 authorised; after `deskbridge connection authorize --name {name}`, run `deskbridge check \
                 --connection {name}`"
            ),
        }
    }
    Ok(source.create(store, new).await?)
}

fn source_of_kind<'a>(
    registry: &'a SourceRegistry,
    kind: &str,
) -> anyhow::Result<&'a std::sync::Arc<dyn Source>> {
    registry.get(kind).ok_or_else(|| {
        CliError::new(
            ErrorCode::InvalidConfiguration,
            format!("this deskbridge has no connector for {kind:?}"),
        )
        .into()
    })
}

/// The connection named `name`.
pub(super) async fn connection_named(store: &Store, name: &str) -> anyhow::Result<Connection> {
    let mut tx = store.read().await?;
    let connection = tx.connection_by_name(name).await?;
    tx.commit().await?;
    connection
        .ok_or_else(|| CliError::new(ErrorCode::NotFound, format!("no connection named {name:?}")).into())
}

async fn list(
    store: &Store,
    registry: &SourceRegistry,
    as_json: bool,
    sort: SortKey,
    failing: bool,
) -> anyhow::Result<()> {
    let mut tx = store.read().await?;
    let connections = tx.connections().await?;
    tx.commit().await?;
    let mut health = connection_health(store, registry, &connections, sort).await?;
    if failing {
        health.retain(ConnectionHealthView::needs_attention);
    }
    let by_id: std::collections::HashMap<_, _> = connections.into_iter().map(|c| (c.id, c)).collect();
    let mut rows = Vec::new();
    for view in health {
        let Some(c) = by_id.get(&view.id) else { continue };
        let source = registry.get(&c.kind);
        let mut expiry = None;
        let mut tx = store.read().await?;
        for setting in source
            .map_or(&[][..], |s| s.settings())
            .iter()
            .filter(|s| s.is_secret())
        {
            expiry = expiry.or(ConnectionSecrets(c.id).expiry(&mut tx, setting.key).await?);
        }
        // Why a switched-off connection is off (a demo's, once its emulator has stopped).
        let disabled = tx.connection_disabled(c.id).await?;
        tx.commit().await?;
        // A connection that signs in is usable once someone has (its refresh token is sealed).
        let authorised = match source.and_then(|s| s.sign_in()) {
            Some(sign_in) => json!(sign_in.authorised(store, c).await?),
            None => Value::Null,
        };
        let last = view.last_run.as_ref();
        let count = |f: fn(&deskbridge_store::RunCounts) -> i64| last.map(|r| f(&r.counts));
        rows.push(json!({
            "id": c.id.0,
            "name": c.name,
            "kind": c.kind,
            "tenant_id": c.config.get("tenant_id"),
            "client_id": c.config.get("client_id"),
            "auth": c.config.get("auth").or_else(|| c.config.get("auth_scheme")),
            "authority_host": c.config.get("authority_host"),
            "graph_url": c.config.get("graph_url"),
            "enabled_instances": c.enabled_instances,
            "credential_expires": expiry,
            "authorised": authorised,
            "customers": view.customers,
            "customer": customers_text(&view.customers),
            "health": view.health,
            "last_run": view.last_run,
            "next_run": view.next_run,
            "open_errors": view.open_errors,
            "held_runs": view.held_runs,
            // The table's columns.
            "last_status": last.map(|r| format!("{} ({})", r.status.as_str(), r.entity)),
            "last_run_at": last.and_then(|r| r.at.clone()),
            "created": count(|c| c.created),
            "updated": count(|c| c.updated),
            "deactivated": count(|c| c.deactivated),
            "errors": count(|c| c.errors),
            "held": view.held_runs.len(),
            "disabled": disabled,
        }));
    }
    if as_json {
        crate::output::outln!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        crate::output::out!(
            "{}",
            output::table(
                &[
                    "name",
                    "customer",
                    "kind",
                    "health",
                    "last_status",
                    "last_run_at",
                    "created",
                    "updated",
                    "deactivated",
                    "errors",
                    "next_run",
                    "open_errors",
                    "held",
                    "credential_expires",
                    "disabled",
                ],
                &rows
            )
        );
    }
    Ok(())
}

/// `connection remove`: the connection goes, with a customer it created when that holds nothing
/// else; a customer kept is named with what it still holds.
async fn remove(store: &Store, name: &str) -> anyhow::Result<()> {
    let connection = connection_named(store, name).await?;
    let removal = remove_connection(store, &connection).await?;
    crate::output::outln!("removed connection {name:?} (the desk records it imported stay)");
    for line in removal.lines() {
        crate::output::outln!("{line}");
    }
    Ok(())
}

/// `connection delta`: the connection's sync settings and cursor resets, through its connector.
async fn delta(store: &Store, registry: &SourceRegistry, args: DeltaArgs) -> anyhow::Result<()> {
    let connection = connection_named(store, &args.name).await?;
    let source = registry.source_of(&connection)?;
    let clock: SharedClock = std::sync::Arc::new(SystemClock);
    let cx = SourceContext::detached(store.clone(), clock);
    let mut changes = Map::new();
    if args.enable || args.disable {
        changes.insert("delta".into(), json!(args.enable));
    }
    if let Some(method) = args.sync_method {
        let method = match method {
            SyncMethodArg::AllChanges => "all_changes",
            SyncMethodArg::MappedFieldsOnly => "mapped_fields_only",
        };
        changes.insert("sync_method".into(), json!(method));
        let current = connection.config.get("sync_method").and_then(Value::as_str);
        let has_links = {
            let mut tx = store.read().await?;
            let links = tx.cursors_of(connection.id).await?;
            tx.commit().await?;
            !links.is_empty()
        };
        if current != Some(method) && has_links {
            // The guide: a new method takes the latest delta, after a confirmation.
            let choice = confirm_delta_restart(
                args.reset,
                args.yes,
                "Changing the sync method restarts the delta queries: the latest delta is taken, so tracking \
                 starts now and earlier changes are not read under the new method",
            )?;
            if let Some(choice) = choice {
                let choice = match choice {
                    CursorReset::Clear => "clear",
                    CursorReset::Latest => "latest",
                };
                changes.insert("delta_links".into(), json!(choice));
            }
        }
    }
    let reset_with_change = changes.contains_key("delta_links");
    let connection = if changes.is_empty() {
        connection
    } else {
        let values = validate(
            source.settings(),
            &changes,
            Purpose::Edit,
            registry.endpoint_policy(),
        )?;
        source.edit(store, &connection, values).await?;
        connection_named(store, &args.name).await?
    };
    if let Some(reset) = args.reset.filter(|_| !reset_with_change) {
        let reset = match reset {
            ResetArg::Clear => CursorReset::Clear,
            ResetArg::Latest => CursorReset::Latest,
        };
        source.reset_cursors(&cx, &connection, reset).await?;
    }
    let report = source.cursors(&cx, &connection).await?;
    if args.json {
        crate::output::print_json(&report.json)?;
        return Ok(());
    }
    crate::output::outln!("connection:     {}", connection.name);
    for (what, value) in &report.lines {
        crate::output::outln!("{:<15} {value}", format!("{what}:"));
    }
    Ok(())
}
