//! `deskbridge directory …`: what the desk's directory holds, as a table for people (customer and
//! site names rather than ids; long cells cut on a terminal unless `--wide`), JSON for scripts
//! or CSV for a spreadsheet; narrowed by `--customer NAME`, `--site NAME` and `--search TEXT`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal as _;

use clap::{Args, ValueEnum};
use deskbridge_core::ErrorCode;
use deskbridge_store::Entity;
use serde_json::Value;

use super::directory_names::Names;
use crate::error::CliError;
use crate::output;
use crate::settings::GlobalArgs;

/// The widest a table cell is on a terminal (without `--wide`): one long email or serial
/// number should not push every other column off the screen.
const CELL_WIDTH: usize = 36;

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
    /// Only the records of this customer (its name, ignoring case).
    #[arg(long, value_name = "NAME")]
    pub customer: Option<String>,
    /// Only the records of this site (its name, ignoring case; with `--customer`, that
    /// customer's site): users, agents and assets.
    #[arg(long, value_name = "NAME")]
    pub site: Option<String>,
    /// Only records whose name, email or login (or serial or part number) contains this text,
    /// ignoring case.
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
    /// Show whole cells: on a terminal, cells longer than 36 characters are cut with "…"
    /// (never in --json, --csv or when the output goes to a pipe or file).
    #[arg(long)]
    pub wide: bool,
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
            Self::Sites => &["id", "customer", "name", "is_main", "active"],
            Self::Users => &[
                "id",
                "name",
                "email",
                "customer",
                "site",
                "active",
                "is_service_account",
            ],
            Self::Agents => &[
                "id",
                "name",
                "email",
                "customer",
                "site",
                "licence_type",
                "active",
                "roles",
                "teams",
            ],
            Self::Licences => &[
                "id",
                "customer",
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
                "customer",
                "user",
                "site",
                "status",
                "source",
            ],
            Self::CustomRows => &["id", "source"],
        }
    }

    /// Whether a row has a site to filter on.
    fn has_site(self) -> bool {
        matches!(self, Self::Users | Self::Agents | Self::Assets)
    }
}

/// Fields `--search` looks in (those a row has).
const SEARCHED: &[&str] = &[
    "name",
    "email",
    "network_login",
    "serial_number",
    "part_number",
    "friendly_name",
    "resource_name",
];

fn matches_search(row: &serde_json::Map<String, Value>, needle: &str) -> bool {
    SEARCHED.iter().any(|field| {
        row.get(*field)
            .and_then(Value::as_str)
            .is_some_and(|v| v.to_lowercase().contains(needle))
    })
}

/// Refuses filters that mean nothing for the listing, saying which go with what.
fn check_filters(args: &DirectoryArgs) -> Result<(), CliError> {
    let invalid = |text: &str| Err(CliError::new(ErrorCode::InvalidInput, text));
    if matches!(args.what, Listing::CustomRows) {
        if args.customer.is_some() || args.site.is_some() || args.search.is_some() {
            return invalid("--customer, --site and --search do not go with custom-rows");
        }
        return Ok(());
    }
    if args.table.is_some() {
        return invalid("--table goes with custom-rows only");
    }
    if matches!(args.what, Listing::Customers) && args.customer.is_some() {
        return invalid("to find customers by name use --search TEXT; --customer narrows the other listings");
    }
    if args.site.is_some() && !args.what.has_site() {
        return invalid("--site goes with users, agents and assets");
    }
    Ok(())
}

const PAGE: u32 = 500;

pub async fn run(global: &GlobalArgs, args: DirectoryArgs) -> anyhow::Result<()> {
    check_filters(&args)?;
    if matches!(args.what, Listing::CustomRows) {
        return custom_rows(global, &args).await;
    }
    let store = global.open_store().await?;
    let mut tx = store.read().await?;
    let result = read(&mut tx, &args).await;
    tx.commit().await?;
    store.close().await;
    let rows = result?;
    print(&args, args.what.columns(), &rows)
}

/// The listing's rows, each with its customer's and site's names, narrowed by the filters.
async fn read(tx: &mut deskbridge_store::StoreTx, args: &DirectoryArgs) -> anyhow::Result<Vec<Value>> {
    let entity = args.what.entity();
    let mut names = Names::load(tx).await?;
    let customers = args
        .customer
        .as_deref()
        .map(|name| names.customers_named(name))
        .transpose()?;
    let sites = args
        .site
        .as_deref()
        .map(|name| names.sites_named(name, customers.as_ref()))
        .transpose()?;
    let needle = args
        .search
        .as_deref()
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty());
    let wanted = |set: &Option<BTreeSet<i64>>, id: Option<i64>| {
        set.as_ref()
            .is_none_or(|set| id.is_some_and(|id| set.contains(&id)))
    };
    let mut rows: Vec<Value> = Vec::new();
    let mut after = None;
    loop {
        let page = tx.list(entity, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for record in &page {
            let Value::Object(mut row) = record.to_json() else {
                continue;
            };
            if needle.as_deref().is_some_and(|n| !matches_search(&row, n)) {
                continue;
            }
            let owner = names.owner(tx, entity, &row).await?;
            if !wanted(&customers, owner.customer) || !wanted(&sites, owner.site) {
                continue;
            }
            if entity != Entity::Customer {
                row.insert(
                    "customer".into(),
                    owner
                        .customer
                        .map_or(Value::Null, |c| Value::String(names.customer(c))),
                );
            }
            if args.what.has_site() {
                row.insert(
                    "site".into(),
                    owner.site.map_or(Value::Null, |s| Value::String(names.site(s))),
                );
            }
            rows.push(Value::Object(row));
        }
    }
    if matches!(args.what, Listing::Assets) {
        name_asset_references(tx, &mut rows).await?;
    }
    if matches!(args.what, Listing::Agents) && !args.json {
        name_agent_links(tx, &mut rows).await?;
    }
    Ok(rows)
}

/// An agent's roles and teams by name for people (the JSON keeps the ids, for scripts).
async fn name_agent_links(tx: &mut deskbridge_store::StoreTx, rows: &mut [Value]) -> anyhow::Result<()> {
    let mut names = deskbridge_store::RecordNames::default();
    for row in rows.iter_mut() {
        let Value::Object(agent) = row else { continue };
        for (field, key, entity) in [
            ("roles", None, Entity::AgentRole),
            ("teams", Some("team_id"), Entity::Team),
        ] {
            let named = names.of_links(tx, agent, field, key, entity).await?;
            agent.insert(field.into(), Value::Array(named));
        }
    }
    Ok(())
}

/// Prints rows as JSON, CSV or a table (cells cut on a terminal unless `--wide`).
fn print(args: &DirectoryArgs, columns: &[&str], rows: &[Value]) -> anyhow::Result<()> {
    if args.json {
        crate::output::outln!("{}", serde_json::to_string_pretty(rows)?);
    } else if args.csv {
        crate::output::out!("{}", deskbridge_core::csv::to_csv(columns, rows));
    } else {
        let width = (!args.wide && std::io::stdout().is_terminal()).then_some(CELL_WIDTH);
        crate::output::out!("{}", output::table_cut(columns, rows, width));
    }
    Ok(())
}

/// Adds the names an asset's ids stand for (`asset_type`, `user`, and `source`: the
/// connection and device id it came from), so the listing says "Ann Lee", not "user 7".
async fn name_asset_references(tx: &mut deskbridge_store::StoreTx, rows: &mut [Value]) -> anyhow::Result<()> {
    let mut names = deskbridge_store::RecordNames::default();
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
        ] {
            let Some(id) = asset.get(field).and_then(Value::as_i64) else {
                asset.insert(label.into(), Value::Null);
                continue;
            };
            let name = names.name(tx, entity, id).await?;
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
    print(args, &names, &rows)
}
