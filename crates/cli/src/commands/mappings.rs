use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Subcommand;
use deskbridge_core::{ErrorCode, SharedClock, SystemClock};
use deskbridge_mapping::MappingConfig;
use deskbridge_sync::{mapping_change_needs_confirmation, open_connection, save_mappings_confirmed};

use super::connection::{ResetArg, confirm_delta_restart};

use crate::error::CliError;
use crate::settings::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum MappingsCommand {
    /// Print a connection's mapping configuration as JSON (mappings as code).
    Show {
        #[arg(long)]
        connection: String,
    },
    /// Replace a connection's mapping configuration with a JSON file, after validating it against
    /// the desk and the tenant's groups; nothing is saved when anything is wrong.
    ///
    /// On a connection that reads through delta queries, a change to the user or site mappings
    /// restarts the delta links once confirmed (a terminal asks; or give --yes or --reset).
    Set {
        #[arg(long)]
        connection: String,
        #[arg(long)]
        file: PathBuf,
        /// How the delta links restart, if they must (`latest`: tracking starts now, the guide's
        /// way; `clear`: the next run reads the whole tenant again).
        #[arg(long, value_enum)]
        reset: Option<ResetArg>,
        /// Confirm without being asked: take the latest delta.
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(global: &GlobalArgs, command: MappingsCommand) -> anyhow::Result<()> {
    let store = global.open_store().await?;
    let result = async {
        match command {
            MappingsCommand::Show { connection } => {
                let source = open_connection(&store, &global.registry(), &connection).await?;
                crate::output::outln!("{}", serde_json::to_string_pretty(source.mapping())?);
            }
            MappingsCommand::Set {
                connection,
                file,
                reset,
                yes,
            } => {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let mapping: MappingConfig = deskbridge_core::parse_json(text.as_bytes()).map_err(|e| {
                    CliError::new(ErrorCode::InvalidInput, format!("{}: {e}", file.display()))
                })?;
                let clock: SharedClock = Arc::new(SystemClock);
                let registry = global.registry();
                let restart = if mapping_change_needs_confirmation(&store, &registry, &connection, &mapping)
                    .await?
                {
                    confirm_delta_restart(
                        reset,
                        yes,
                        "Changing the user or site mappings restarts the delta queries: the latest delta is \
                         taken, so tracking starts now and people who do not change are not read again under \
                         the new mappings",
                    )?
                } else {
                    None
                };
                save_mappings_confirmed(&store, &registry, &connection, mapping, restart, &clock).await?;
                crate::output::outln!("saved the mappings of {connection:?}");
            }
        }
        Ok::<(), anyhow::Error>(())
    }
    .await;
    store.close().await;
    result
}
