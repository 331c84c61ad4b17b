//! `deskbridge sso …`: single sign-on to the admin UI with Microsoft work accounts, from the
//! command line: `show` the configuration and the allowed tenants (with where each comes from),
//! `set` the app registration (client id, secret from an environment variable or a file,
//! authority) and turn it on or off, `allow` and `disallow` a tenant by hand, `link` and
//! `unlink` an account's Microsoft identity. The rules are the web layer's
//! (`deskbridge_web::sso`), so the CLI, the API and the Single sign-on page cannot disagree.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Subcommand;
use deskbridge_core::{SharedClock, SystemClock};
use deskbridge_web::sso::{self, SsoChange};
use deskbridge_web::{ApiError, AppState};

use crate::error::CliError;
use crate::settings::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum SsoCommand {
    /// The configuration (never the secret) and every allowed tenant with where it comes from.
    Show {
        /// Print JSON (the API's object) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Change the configuration; what is not given is kept.
    Set {
        /// The app registration's Application (client) ID.
        #[arg(long)]
        client_id: Option<String>,
        /// Read the client secret from this environment variable.
        #[arg(long, conflicts_with = "client_secret_file")]
        client_secret_env: Option<String>,
        /// Read the client secret from this file.
        #[arg(long)]
        client_secret_file: Option<PathBuf>,
        /// The sign-in host (default https://login.microsoftonline.com).
        #[arg(long)]
        authority: Option<String>,
        /// Turn single sign-on on (needs the client id and a secret).
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Turn single sign-on off (password sign-in is unchanged).
        #[arg(long)]
        disable: bool,
    },
    /// Allow a tenant to sign in.
    Allow {
        /// The tenant id (a GUID).
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Remove a tenant allowed by hand.
    Disallow {
        #[arg(long)]
        tenant: String,
    },
    /// Link an account to the Microsoft identity it signs in with.
    Link {
        #[arg(long)]
        username: String,
        /// The person's tenant id.
        #[arg(long)]
        tenant: String,
        /// The person's object id in that tenant.
        #[arg(long)]
        object: String,
    },
    /// Remove an account's Microsoft identity.
    Unlink {
        #[arg(long)]
        username: String,
    },
}

pub async fn run(global: &GlobalArgs, command: SsoCommand) -> anyhow::Result<()> {
    let store = global.open_store().await?;
    let clock: SharedClock = Arc::new(SystemClock);
    let state = AppState::new(store.clone(), global.registry(), clock);
    let result = dispatch(&state, command).await;
    store.close().await;
    crate::output::out!("{}", result?);
    Ok(())
}

fn api(e: ApiError) -> anyhow::Error {
    let message = match &e.remedy {
        Some(remedy) => format!("{} ({remedy})", e.message),
        None => e.message.clone(),
    };
    CliError::new(e.code, message).into()
}

async fn dispatch(state: &AppState, command: SsoCommand) -> anyhow::Result<String> {
    match command {
        SsoCommand::Show { json } => show(state, json).await,
        SsoCommand::Set {
            client_id,
            client_secret_env,
            client_secret_file,
            authority,
            enable,
            disable,
        } => {
            let client_secret = if let Some(var) = &client_secret_env {
                Some(std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?)
            } else if let Some(file) = &client_secret_file {
                Some(
                    std::fs::read_to_string(file)
                        .with_context(|| format!("cannot read {}", file.display()))?,
                )
            } else {
                None
            };
            let change = SsoChange {
                enabled: (enable || disable).then_some(enable),
                client_id,
                client_secret,
                authority,
            };
            let saved = sso::save(state, change).await.map_err(api)?;
            Ok(format!(
                "single sign-on is {}; register the redirect URI https://<this site>{} on the app\n",
                if saved.enabled { "on" } else { "off" },
                sso::CALLBACK_PATH
            ))
        }
        SsoCommand::Allow { tenant, note } => {
            let id = sso::allow(&state.store, &tenant, &note).await.map_err(api)?;
            Ok(format!("tenant {id} may sign in\n"))
        }
        SsoCommand::Disallow { tenant } => {
            sso::disallow(&state.store, &tenant).await.map_err(api)?;
            Ok(format!("tenant {} may no longer sign in\n", tenant.trim()))
        }
        SsoCommand::Link {
            username,
            tenant,
            object,
        } => {
            let account = deskbridge_web::auth::account_named(&state.store, &username)
                .await
                .map_err(api)?;
            let linked = sso::link(&state.store, account.id, Some((&tenant, &object)))
                .await
                .map_err(api)?;
            Ok(format!(
                "{} signs in with object {} of tenant {}\n",
                linked.username,
                linked.linked_object_id.unwrap_or_default(),
                linked.linked_tenant_id.unwrap_or_default()
            ))
        }
        SsoCommand::Unlink { username } => {
            let account = deskbridge_web::auth::account_named(&state.store, &username)
                .await
                .map_err(api)?;
            sso::link(&state.store, account.id, None).await.map_err(api)?;
            Ok(format!(
                "{} has no Microsoft identity any more\n",
                account.username
            ))
        }
    }
}

async fn show(state: &AppState, json: bool) -> anyhow::Result<String> {
    let redirect = format!("https://<this site>{}", sso::CALLBACK_PATH);
    let view = sso::view(state, redirect).await.map_err(api)?;
    if json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&view)?));
    }
    let mut out = format!(
        "single sign-on: {}\nclient id: {}\nclient secret: {}\nauthority: {}\nredirect URI: {}\nallowed tenants:\n",
        if view.enabled { "on" } else { "off" },
        if view.client_id.is_empty() {
            "(not set)"
        } else {
            &view.client_id
        },
        if view.client_secret_set {
            "saved"
        } else {
            "(not set)"
        },
        view.authority,
        view.redirect_uri,
    );
    if view.allowed_tenants.is_empty() {
        out.push_str("  (none: nobody can sign in with Microsoft)\n");
    }
    for t in &view.allowed_tenants {
        out.push_str(&format!("  {}  {}  ({})\n", t.tenant_id, t.note, t.origin));
    }
    Ok(out)
}
