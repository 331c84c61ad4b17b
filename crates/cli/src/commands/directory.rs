use std::collections::BTreeMap;

use clap::{Args, ValueEnum};
use deskbridge_core::RecordId;
use deskbridge_store::Entity;
use serde_json::Value;

use crate::output;
use crate::settings::GlobalArgs;

#[derive(Args, Debug)]
pub struct DirectoryArgs {
    /// What to list.
    #[arg(value_enum)]
    pub what: Listing,
    /// Print a JSON array instead of a table.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV (the table's columns) for a spreadsheet: finance's consumption export.
    #[arg(long)]
    pub csv: bool,
    /// With `custom-rows`: the desk custom table to list.
    #[arg(long)]
    pub table: Option<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum Listing {
    Customers,
    Sites,
    Users,
    Agents,
    Licences,
    Subscriptions,
    /// Consumption: each customer's metered usage, per resource and day.
    Usage,
    Assets,
    /// The rows of a desk custom table (`--table NAME`), with the connection and source row each
    /// was imported from.
    CustomRows,
}

impl Listing {
    fn entity(self) -> Entity {
        match self {
            Self::Customers => Entity::Customer,
            Self::Sites => Entity::Site,
            Self::Users => Entity::User,
            Self::Agents => Entity::Agent,
            Self::Licences => Entity::Licence,
            Self::Subscriptions => Entity::Subscription,
            Self::Usage => Entity::UsageLine,
            Self::Assets => Entity::Asset,
            // Listed by `custom_rows`, never through an entity.
            Self::CustomRows => Entity::Customer,
        }
    }

    fn columns(self) -> &'static [&'static str] {
        match self {
            Self::Customers => &["id", "name", "tenant_ids", "active"],
            Self::Sites => &["id", "customer_id", "name", "is_main", "active"],
            Self::Users => &["id", "name", "email", "site_id", "active", "is_service_account"],
            Self::Agents => &["id", "name", "email", "licence_type", "active", "roles"],
            Self::Licences => &[
                "id",
                "customer_id",
                "part_number",
                "friendly_name",
                "consumed_units",
                "total_units",
            ],
            Self::Subscriptions => &[
                "id",
                "customer",
                "friendly_name",
                "quantity",
                "status",
                "billing_cycle",
                "term_duration",
                "end_date",
                "unit_price",
                "currency",
            ],
            Self::Usage => &[
                "id",
                "customer",
                "usage_start",
                "resource_name",
                "category",
                "subcategory",
                "region",
                "quantity",
                "unit",
            ],
            Self::Assets => &[
                "id",
                "name",
                "asset_type",
                "serial_number",
                "user",
                "site",
                "status",
                "source",
            ],
            Self::CustomRows => &["id", "source"],
        }
    }
}

const PAGE: u32 = 500;

pub async fn run(global: &GlobalArgs, args: DirectoryArgs) -> anyhow::Result<()> {
    if matches!(args.what, Listing::CustomRows) {
        return custom_rows(global, &args).await;
    }
    if args.table.is_some() {
        anyhow::bail!("--table goes with custom-rows only");
    }
    let store = global.open_store().await?;
    let mut tx = store.read().await?;
    let mut rows: Vec<Value> = Vec::new();
    let mut after = None;
    loop {
        let page = tx.list(args.what.entity(), after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        rows.extend(page.iter().map(|r| r.to_json()));
    }
    if matches!(args.what, Listing::Assets) {
        name_asset_references(&mut tx, &mut rows).await?;
    }
    if matches!(args.what, Listing::Subscriptions | Listing::Usage) {
        name_customers(&mut tx, &mut rows).await?;
    }
    tx.commit().await?;
    store.close().await;
    if args.json {
        crate::output::outln!("{}", serde_json::to_string_pretty(&rows)?);
    } else if args.csv {
        crate::output::out!("{}", deskbridge_core::csv::to_csv(args.what.columns(), &rows));
    } else {
        crate::output::out!("{}", output::table(args.what.columns(), &rows));
    }
    Ok(())
}

/// Adds each row's customer name (`customer`) beside its `customer_id`.
async fn name_customers(tx: &mut deskbridge_store::StoreTx, rows: &mut [Value]) -> anyhow::Result<()> {
    let mut names: BTreeMap<i64, String> = BTreeMap::new();
    for row in rows.iter_mut() {
        let Value::Object(record) = row else { continue };
        let Some(id) = record.get("customer_id").and_then(Value::as_i64) else {
            record.insert("customer".into(), Value::Null);
            continue;
        };
        let name = match names.get(&id) {
            Some(name) => name.clone(),
            None => {
                let name = tx
                    .get(Entity::Customer, RecordId(id))
                    .await?
                    .and_then(|r| r.text("name").map(str::to_owned))
                    .unwrap_or_else(|| format!("#{id} (gone)"));
                names.insert(id, name.clone());
                name
            }
        };
        record.insert("customer".into(), Value::String(name));
    }
    Ok(())
}

/// Adds the names an asset's ids stand for (`asset_type`, `user`, `site`, and `source`: the
/// connection and device id it came from), so the listing says "Ann Lee", not "user 7".
async fn name_asset_references(tx: &mut deskbridge_store::StoreTx, rows: &mut [Value]) -> anyhow::Result<()> {
    let mut names: BTreeMap<(Entity, i64), String> = BTreeMap::new();
    let connections: BTreeMap<i64, String> = tx
        .connections()
        .await?
        .into_iter()
        .map(|c| (c.id.0, c.name))
        .collect();
    for row in rows.iter_mut() {
        let Value::Object(asset) = row else { continue };
        for (field, entity, label) in [
            ("asset_type_id", Entity::AssetType, "asset_type"),
            ("user_id", Entity::User, "user"),
            ("site_id", Entity::Site, "site"),
        ] {
            let Some(id) = asset.get(field).and_then(Value::as_i64) else {
                asset.insert(label.into(), Value::Null);
                continue;
            };
            let name = match names.get(&(entity, id)) {
                Some(name) => name.clone(),
                None => {
                    let name = tx
                        .get(entity, RecordId(id))
                        .await?
                        .and_then(|r| r.text("name").map(str::to_owned))
                        .unwrap_or_else(|| format!("#{id} (gone)"));
                    names.insert((entity, id), name.clone());
                    name
                }
            };
            asset.insert(label.into(), Value::String(name));
        }
        let source = match (
            asset.get("source_connection_id").and_then(Value::as_i64),
            asset.get("external_id").and_then(Value::as_str),
        ) {
            (Some(connection), Some(device)) => {
                let connection = connections
                    .get(&connection)
                    .cloned()
                    .unwrap_or_else(|| format!("connection #{connection} (gone)"));
                Value::String(format!("{connection}: {device}"))
            }
            _ => Value::String("desk".into()),
        };
        asset.insert("source".into(), source);
    }
    Ok(())
}

/// `directory custom-rows --table NAME`: a desk custom table's rows, each with the connection and
/// source row it was imported from (`connection/source id`), its columns in name order.
async fn custom_rows(global: &GlobalArgs, args: &DirectoryArgs) -> anyhow::Result<()> {
    let Some(table) = args.table.as_deref() else {
        anyhow::bail!("custom-rows needs --table NAME (the desk custom table to list)");
    };
    let store = global.open_store().await?;
    let mut tx = store.read().await?;
    let Some(columns) = tx.custom_table_columns(table).await? else {
        let names = tx.custom_table_names().await?;
        tx.commit().await?;
        store.close().await;
        anyhow::bail!(
            "there is no custom table {table:?}; the desk's custom tables are: {}",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        );
    };
    let connections: BTreeMap<i64, String> = tx
        .connections()
        .await?
        .into_iter()
        .map(|c| (c.id.0, c.name))
        .collect();
    let mut rows: Vec<Value> = Vec::new();
    let mut after = None;
    loop {
        let page = tx.custom_rows(table, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for row in page {
            let mut out = serde_json::Map::new();
            out.insert("id".into(), Value::from(row.id.0));
            out.insert(
                "source".into(),
                row.source.map_or(Value::Null, |s| {
                    let connection = connections
                        .get(&s.connection_id.0)
                        .cloned()
                        .unwrap_or_else(|| format!("#{}", s.connection_id.0));
                    Value::String(format!("{connection}/{}", s.external_id))
                }),
            );
            for (name, value) in row.data {
                out.insert(name, value);
            }
            rows.push(Value::Object(out));
        }
    }
    tx.commit().await?;
    store.close().await;
    let mut names: Vec<&str> = vec!["id"];
    names.extend(columns.keys().map(String::as_str));
    names.push("source");
    if args.json {
        crate::output::outln!("{}", serde_json::to_string_pretty(&rows)?);
    } else if args.csv {
        crate::output::out!("{}", deskbridge_core::csv::to_csv(&names, &rows));
    } else {
        crate::output::out!("{}", output::table(&names, &rows));
    }
    Ok(())
}
