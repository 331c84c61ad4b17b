//! `deskbridge admin …`: the accounts of the admin UI and API from the command line, which works
//! when no administrator can sign in any more. `create` makes an account with a one-time
//! password (the first administrator on a fresh install, or a recovery account); `list` shows
//! every account with its sign-in state; `reset-password` gives one a new one-time password and
//! ends its sessions; `disable` and `enable` stop and allow its sign-ins (the last enabled
//! administrator stays enabled); `unlock` lifts a sign-in block after failed sign-ins (of an
//! account, or of a client address). The rules are the web layer's (`deskbridge_web::auth`), so
//! the CLI, the API and the UI cannot disagree.

use clap::{Subcommand, ValueEnum};
use deskbridge_store::{Role, Store};
use deskbridge_web::ApiError;
use deskbridge_web::auth::{self, AccountChange};
use serde_json::{Value, json};

use crate::error::CliError;
use crate::settings::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create an account with a one-time password (printed once; the account chooses its own
    /// password at first sign-in).
    Create {
        #[arg(long)]
        username: String,
        #[arg(long, value_enum, default_value_t = RoleArg::Administrator)]
        role: RoleArg,
        /// Let an agent create connections ("can configure Entra connections").
        #[arg(long)]
        can_configure_connections: bool,
    },
    /// Every account: role, permission, whether it is disabled or locked, its last sign-in.
    List {
        /// Print a JSON array (the API's account objects) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Give an account a new one-time password (printed once) and end its sessions; it chooses
    /// its own password at its next sign-in.
    ResetPassword {
        #[arg(long)]
        username: String,
    },
    /// Stop an account from signing in: its sessions end and its API tokens are refused.
    Disable {
        #[arg(long)]
        username: String,
    },
    /// Let a disabled account sign in again.
    Enable {
        #[arg(long)]
        username: String,
    },
    /// Lift the sign-in block that failed sign-ins put on an account (or on a client address).
    Unlock {
        /// The account's username.
        #[arg(long, required_unless_present = "address")]
        username: Option<String>,
        /// A client address blocked after too many failed sign-ins from it.
        #[arg(long)]
        address: Option<std::net::IpAddr>,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum RoleArg {
    Administrator,
    Agent,
}

pub async fn run(global: &GlobalArgs, command: AdminCommand) -> anyhow::Result<()> {
    let store = global.open_store().await?;
    // The store is closed whatever happened, before anything is printed.
    let result = dispatch(&store, command).await;
    store.close().await;
    crate::output::out!("{}", result?);
    Ok(())
}

/// Runs one command; what to print.
async fn dispatch(store: &Store, command: AdminCommand) -> Result<String, CliError> {
    match command {
        AdminCommand::Create {
            username,
            role,
            can_configure_connections,
        } => {
            let role = match role {
                RoleArg::Administrator => Role::Administrator,
                RoleArg::Agent => Role::Agent,
            };
            let created = auth::create_account(store, &username, role, can_configure_connections)
                .await
                .map_err(api)?;
            Ok(format!(
                "created {} {:?}; one-time password: {}\nSign in with it and choose a new password; it is not shown again.\n",
                created.account.role.as_str(),
                created.account.username,
                created.one_time_password
            ))
        }
        AdminCommand::List { json } => list(store, json).await,
        AdminCommand::ResetPassword { username } => {
            let account = auth::account_named(store, &username).await.map_err(api)?;
            let reset = auth::reset_password(store, account.id).await.map_err(api)?;
            Ok(format!(
                "reset the password of {:?}; one-time password: {}\nIts sessions have ended; it signs in with this \
                 password and chooses a new one (its API tokens are refused until then). It is not shown again.\n",
                reset.account.username, reset.one_time_password
            ))
        }
        AdminCommand::Disable { username } => set_disabled(store, &username, true).await,
        AdminCommand::Enable { username } => set_disabled(store, &username, false).await,
        AdminCommand::Unlock { username, address } => {
            let lines = unlock(store, username.as_deref(), address).await?;
            Ok(lines.iter().map(|l| format!("{l}\n")).collect())
        }
    }
}

/// An error of the web layer as the CLI says it: the message, then what to do.
fn api(e: ApiError) -> CliError {
    let message = match &e.remedy {
        Some(remedy) => format!("{}; {}", e.message, lowercase_first(remedy)),
        None => e.message.clone(),
    };
    CliError::new(e.code, message)
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect::<String>())
}

async fn list(store: &Store, json: bool) -> Result<String, CliError> {
    let accounts = auth::accounts_with_sign_in_state(store).await.map_err(api)?;
    if json {
        let values: Vec<Value> = accounts
            .iter()
            .map(|(a, f)| auth::account_json(a, f.as_ref()))
            .collect();
        let text = serde_json::to_string_pretty(&values)
            .map_err(|e| CliError::new(deskbridge_core::ErrorCode::Internal, e.to_string()))?;
        return Ok(format!("{text}\n"));
    }
    let rows: Vec<Value> = accounts
        .iter()
        .map(|(a, failures)| {
            json!({
                "username": a.username,
                "role": a.role.as_str(),
                "configures_connections": if a.can_configure_connections { "yes" } else { "no" },
                "state": if a.disabled {
                    "disabled"
                } else if a.must_change_password {
                    "must set a password"
                } else {
                    "active"
                },
                "locked": match failures.as_ref().and_then(|f| f.blocked_until.as_deref()) {
                    Some(until) => format!("until {until}"),
                    None => "no".to_owned(),
                },
                "last_sign_in": a.last_sign_in_at.as_deref().unwrap_or("never"),
            })
        })
        .collect();
    Ok(crate::output::table(
        &[
            "username",
            "role",
            "configures_connections",
            "state",
            "locked",
            "last_sign_in",
        ],
        &rows,
    ))
}

async fn set_disabled(store: &Store, username: &str, disabled: bool) -> Result<String, CliError> {
    let account = auth::account_named(store, username).await.map_err(api)?;
    if account.disabled == disabled {
        return Ok(format!(
            "{:?} was already {}\n",
            account.username,
            if disabled { "disabled" } else { "enabled" }
        ));
    }
    let change = AccountChange {
        disabled: Some(disabled),
        ..AccountChange::default()
    };
    let changed = auth::change_account(store, account.id, change)
        .await
        .map_err(api)?;
    Ok(if disabled {
        format!(
            "disabled {:?}: its sessions have ended, it cannot sign in and its API tokens are refused\n",
            changed.username
        )
    } else {
        format!("enabled {:?}: it can sign in again\n", changed.username)
    })
}

async fn unlock(
    store: &Store,
    username: Option<&str>,
    address: Option<std::net::IpAddr>,
) -> Result<Vec<String>, CliError> {
    let mut said = Vec::new();
    if let Some(username) = username {
        let account = auth::account_named(store, username).await.map_err(api)?;
        let cleared = auth::unlock_account(store, &account.username)
            .await
            .map_err(api)?;
        said.push(if cleared {
            format!("unlocked {:?}: it can sign in again now", account.username)
        } else {
            format!("{:?} was not locked", account.username)
        });
    }
    if let Some(address) = address {
        let cleared = auth::unlock_address(store, address).await.map_err(api)?;
        said.push(if cleared {
            format!("lifted the sign-in block on {address}")
        } else {
            format!("{address} was not blocked")
        });
    }
    Ok(said)
}
