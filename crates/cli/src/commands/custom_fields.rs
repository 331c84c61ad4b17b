//! `deskbridge custom-fields`: the desk's custom fields on users, agents, sites, assets and
//! customers, which field mappings fill (`custom:<name>`): define one (a select with its options
//! and their external ids), list them, and set the external id of an option — the source's option
//! value it stands for (a Dynamics 365 choice's `100000001`), through which an option set is
//! mapped value by value.

use clap::Subcommand;
use deskbridge_store::Entity;
use serde_json::{Value, json};

use crate::output::{self, say};
use crate::settings::GlobalArgs;

/// The records that carry custom fields.
const ENTITIES: &[&str] = &["user", "agent", "site", "asset", "customer"];

#[derive(Subcommand, Debug)]
pub enum CustomFieldsCommand {
    /// Define a custom field. A select's options are given with `--option VALUE` or
    /// `--option VALUE=EXTERNAL_ID` (the source's option value, e.g. Reading=1).
    Add {
        /// user, agent, site, asset or customer.
        #[arg(long)]
        entity: String,
        #[arg(long)]
        name: String,
        /// text, number, date, boolean, single_select or multi_select.
        #[arg(long = "type")]
        field_type: String,
        #[arg(long = "option")]
        options: Vec<String>,
    },
    /// The custom fields, with their options and the options' external ids.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Set (or with --clear, remove) the external id of one option of a select field.
    SetOption {
        #[arg(long)]
        entity: String,
        #[arg(long)]
        field: String,
        /// The option's value, as the desk shows it.
        #[arg(long)]
        value: String,
        #[arg(long, required_unless_present = "clear")]
        external_id: Option<String>,
        #[arg(long, conflicts_with = "external_id")]
        clear: bool,
    },
}

fn entity(name: &str) -> anyhow::Result<Entity> {
    let name = name.trim().to_ascii_lowercase();
    match Entity::from_name(&name) {
        Some(entity) if ENTITIES.contains(&name.as_str()) => Ok(entity),
        _ => anyhow::bail!("--entity {name:?}: custom fields are on {}", ENTITIES.join(", ")),
    }
}

pub async fn run(global: &GlobalArgs, command: CustomFieldsCommand) -> anyhow::Result<()> {
    match command {
        CustomFieldsCommand::Add {
            entity: on,
            name,
            field_type,
            options,
        } => {
            let on = entity(&on)?;
            let select = field_type.trim().ends_with("select");
            if select && options.is_empty() {
                anyhow::bail!(
                    "a {} field needs its options: --option VALUE[=EXTERNAL_ID], once per option",
                    field_type.trim()
                );
            }
            if !select && !options.is_empty() {
                anyhow::bail!("only single_select and multi_select fields have options");
            }
            let options: Vec<(String, Option<String>, Option<String>)> = options
                .iter()
                .map(|o| match o.split_once('=') {
                    Some((value, id)) => (
                        value.trim().to_owned(),
                        None,
                        Some(id.trim().to_owned()).filter(|i| !i.is_empty()),
                    ),
                    None => (o.trim().to_owned(), None, None),
                })
                .collect();
            if let Some((value, ..)) = options.iter().find(|(value, ..)| value.is_empty()) {
                anyhow::bail!("--option {value:?}: an option needs a value");
            }
            let store = global.open_store().await?;
            let mut tx = store.begin(deskbridge_store::WriteContext::manual()).await?;
            let id = tx
                .define_custom_field(on, name.trim(), field_type.trim(), &options)
                .await?;
            tx.commit().await?;
            store.close().await;
            say(&format!(
                "custom field {} defined on {} records (id {id}){}; map it with the target custom:{}",
                name.trim(),
                on.spec().name,
                if options.is_empty() {
                    String::new()
                } else {
                    format!(" with {} option(s)", options.len())
                },
                name.trim()
            ));
            Ok(())
        }
        CustomFieldsCommand::List { json } => {
            let store = global.open_store().await?;
            let mut tx = store.read().await?;
            let definitions = tx.custom_field_definitions().await?;
            tx.commit().await?;
            store.close().await;
            let rows: Vec<Value> = definitions
                .iter()
                .map(|d| {
                    let by_value: std::collections::BTreeMap<&str, &str> = d
                        .option_ids
                        .iter()
                        .map(|(id, v)| (v.as_str(), id.as_str()))
                        .collect();
                    json!({
                        "entity": d.entity,
                        "name": d.name,
                        "type": d.field_type,
                        "options": d.options.iter().map(|o| match by_value.get(o.as_str()) {
                            Some(id) => format!("{o}={id}"),
                            None => o.clone(),
                        }).collect::<Vec<_>>().join(", "),
                        "option_ids": d.option_ids,
                    })
                })
                .collect();
            if json {
                output::print_json(&rows)
            } else {
                crate::output::out!("{}", output::table(&["entity", "name", "type", "options"], &rows));
                Ok(())
            }
        }
        CustomFieldsCommand::SetOption {
            entity: on,
            field,
            value,
            external_id,
            clear,
        } => {
            let on = entity(&on)?;
            let external = if clear {
                None
            } else {
                external_id.as_deref().map(str::trim)
            };
            let store = global.open_store().await?;
            let mut tx = store.begin(deskbridge_store::WriteContext::manual()).await?;
            tx.set_custom_field_option_external_id(on, field.trim(), value.trim(), external)
                .await?;
            tx.commit().await?;
            store.close().await;
            say(&match external {
                Some(id) => {
                    format!("option {value:?} of {field} now stands for the source's option value {id}")
                }
                None => format!("option {value:?} of {field} has no external id now"),
            });
            Ok(())
        }
    }
}
