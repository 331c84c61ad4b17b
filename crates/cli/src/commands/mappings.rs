use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Subcommand;
use deskbridge_core::{ErrorCode, SharedClock, SystemClock};
use deskbridge_mapping::MappingConfig;
use deskbridge_sync::{open_connection, save_mappings};

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
    Set {
        #[arg(long)]
        connection: String,
        #[arg(long)]
        file: PathBuf,
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
            MappingsCommand::Set { connection, file } => {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let mut de = serde_json::Deserializer::from_str(&text);
                let mapping: MappingConfig = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                    CliError::new(
                        ErrorCode::InvalidInput,
                        format!("{} at {}: {}", file.display(), e.path(), e.inner()),
                    )
                })?;
                let clock: SharedClock = Arc::new(SystemClock);
                save_mappings(&store, &global.registry(), &connection, mapping, &clock).await?;
                crate::output::outln!("saved the mappings of {connection:?}");
            }
        }
        Ok::<(), anyhow::Error>(())
    }
    .await;
    store.close().await;
    result
}
