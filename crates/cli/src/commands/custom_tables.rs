//! `deskbridge custom-tables`: the desk's custom tables, which custom table syncs fill (a
//! connection's `custom_tables` mappings name them): define one with its typed columns, list them.
//! Their rows are listed by `deskbridge directory custom-rows --table NAME`.

use clap::Subcommand;
use serde_json::{Value, json};

use crate::output::{self, say};
use crate::settings::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum CustomTablesCommand {
    /// Define a custom table: `--column name:type` once per column (text, number, date, boolean,
    /// single_select, multi_select).
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        label: Option<String>,
        #[arg(long = "column", required = true)]
        columns: Vec<String>,
    },
    /// The custom tables and their columns.
    List {
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(global: &GlobalArgs, command: CustomTablesCommand) -> anyhow::Result<()> {
    match command {
        CustomTablesCommand::Add { name, label, columns } => {
            let mut parsed = Vec::new();
            for column in &columns {
                let Some((column, ty)) = column.split_once(':') else {
                    anyhow::bail!(
                        "--column {column:?}: give name:type, e.g. seats:number (types: text, number, date, boolean, \
                         single_select, multi_select)"
                    );
                };
                parsed.push((column.trim(), ty.trim()));
            }
            let store = global.open_store().await?;
            let mut tx = store.begin(deskbridge_store::WriteContext::manual()).await?;
            let id = tx
                .define_custom_table(name.trim(), label.as_deref(), &parsed)
                .await?;
            tx.commit().await?;
            store.close().await;
            say(&format!(
                "custom table {} defined (id {id}) with {} column(s)",
                name.trim(),
                parsed.len()
            ));
            Ok(())
        }
        CustomTablesCommand::List { json } => {
            let store = global.open_store().await?;
            let mut tx = store.read().await?;
            let mut rows = Vec::new();
            for name in tx.custom_table_names().await? {
                let columns = tx.custom_table_columns(&name).await?.unwrap_or_default();
                rows.push(json!({
                    "name": name,
                    "columns": columns
                        .iter()
                        .map(|(c, t)| format!("{c}:{t}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    "column_types": columns,
                }));
            }
            tx.commit().await?;
            store.close().await;
            if json {
                output::print_json(&rows)
            } else {
                let rows: Vec<Value> = rows;
                crate::output::out!("{}", output::table(&["name", "columns"], &rows));
                Ok(())
            }
        }
    }
}
