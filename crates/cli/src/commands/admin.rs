//! `deskbridge admin create`: accounts for the admin UI and API from the command line (the first
//! administrator on a fresh install, or a recovery account).

use clap::{Subcommand, ValueEnum};
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
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum RoleArg {
    Administrator,
    Agent,
}

pub async fn run(global: &GlobalArgs, command: AdminCommand) -> anyhow::Result<()> {
    let store = global.open_store().await?;
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
