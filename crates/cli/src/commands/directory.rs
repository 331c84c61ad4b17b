use clap::{Args, ValueEnum};
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
    #[arg(long)]
    pub json: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum Listing {
    Customers,
    Sites,
    Users,
    Agents,
    Licences,
    Assets,
}

impl Listing {
    fn entity(self) -> Entity {
        match self {
            Self::Customers => Entity::Customer,
            Self::Sites => Entity::Site,
            Self::Users => Entity::User,
            Self::Agents => Entity::Agent,
            Self::Licences => Entity::Licence,
            Self::Assets => Entity::Asset,
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
            Self::Assets => &["id", "name", "serial_number", "status", "user_id"],
        }
    }
}

const PAGE: u32 = 500;

pub async fn run(global: &GlobalArgs, args: DirectoryArgs) -> anyhow::Result<()> {
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
    tx.commit().await?;
    store.close().await;
    if args.json {
        crate::output::outln!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        crate::output::out!("{}", output::table(args.what.columns(), &rows));
    }
    Ok(())
}
