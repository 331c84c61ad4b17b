//! `deskbridge admin create`: accounts for the admin UI and API from the command line (the first
//! administrator on a fresh install, or a recovery account). `deskbridge admin unlock`: lifts a
//! sign-in block after failed sign-ins (of an account, or of a client address), say when the
//! only administrator is the one locked out.

use clap::{Subcommand, ValueEnum};
use deskbridge_core::{ErrorCode, HasErrorCode as _};
use deskbridge_store::Role;

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
    if let AdminCommand::Unlock { username, address } = command {
        let result = unlock(&store, username.as_deref(), address).await;
        store.close().await;
        for line in result? {
            crate::output::outln!("{line}");
        }
        return Ok(());
    }
    let result = match command {
        AdminCommand::Create {
            username,
            role,
            can_configure_connections,
        } => {
            let role = match role {
                RoleArg::Administrator => Role::Administrator,
                RoleArg::Agent => Role::Agent,
            };
            deskbridge_web::auth::create_account(&store, &username, role, can_configure_connections)
                .await
                .map_err(|e| CliError::new(e.code, e.message))
        }
        AdminCommand::Unlock { .. } => return Ok(()),
    };
    store.close().await;
    let created = result?;
    crate::output::outln!(
        "created {} {:?}; one-time password: {}",
        created.account.role.as_str(),
        created.account.username,
        created.one_time_password
    );
    crate::output::outln!("Sign in with it and choose a new password; it is not shown again.");
    Ok(())
}

async fn unlock(
    store: &deskbridge_store::Store,
    username: Option<&str>,
    address: Option<std::net::IpAddr>,
) -> Result<Vec<String>, CliError> {
    let mut said = Vec::new();
    let api = |e: deskbridge_web::ApiError| CliError::new(e.code, e.message);
    if let Some(username) = username {
        let mut tx = store
            .read()
            .await
            .map_err(|e| CliError::new(e.error_code(), e.to_string()))?;
        let found = tx
            .account_for_sign_in(username)
            .await
            .map_err(|e| CliError::new(e.error_code(), e.to_string()))?;
        tx.commit()
            .await
            .map_err(|e| CliError::new(e.error_code(), e.to_string()))?;
        if found.is_none() {
            return Err(CliError::new(
                ErrorCode::NotFound,
                format!("there is no account {username:?}"),
            ));
        }
        let cleared = deskbridge_web::auth::unlock_account(store, username)
            .await
            .map_err(api)?;
        said.push(if cleared {
            format!("unlocked {username:?}: it can sign in again now")
        } else {
            format!("{username:?} was not locked")
        });
    }
    if let Some(address) = address {
        let cleared = deskbridge_web::auth::unlock_address(store, address)
            .await
            .map_err(api)?;
        said.push(if cleared {
            format!("lifted the sign-in block on {address}")
        } else {
            format!("{address} was not blocked")
        });
    }
    Ok(said)
}
