use anyhow::bail;
use clap::Subcommand;
use deskbridge_core::ErrorCode;
use deskbridge_secrets::SECRET_KEY_ENV;

use crate::error::CliError;
use crate::settings::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Generate a new master key, re-seal every secret with it and retire the old key.
    Rotate,
}

pub async fn run(global: &GlobalArgs, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Rotate => {
            if std::env::var_os(SECRET_KEY_ENV).is_some() {
                bail!(CliError::new(
                    ErrorCode::InvalidConfiguration,
                    format!(
                        "the master key comes from {SECRET_KEY_ENV}, which deskbridge cannot rewrite: unset it and use \
                         a key file (--key-file) to rotate, then move the new key wherever you keep it"
                    )
                ));
            }
            let store = global.open_store().await?;
            let report = store.rotate_keys(&global.key_file()).await?;
            crate::output::outln!(
                "rotated the master key {} -> {}; re-sealed {} secret(s); key file {}",
                report.old_key_id,
                report.new_key_id,
                report.resealed,
                global.key_file().path().display()
            );
            store.close().await;
            Ok(())
        }
    }
}
