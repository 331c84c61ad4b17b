//! The demo's Dynamics 365 organisation: the sample world's Dataverse organisation (accounts,
//! contacts and the custom table `cr7a1_contract`) connected as `deskbridge connection add
//! dynamics` connects one (a service principal), its accounts imported as desk customers, its
//! contacts as users on their account's customer's main site (or on the connection's customer's
//! main site when they have no imported account), and its contracts into the desk custom table
//! `contracts`, in that order: people are placed by the customers the run before created. The
//! summary accounts for every account, contact and contract row, by name.
//!
//! A second demo on the same data directory points the connection at the new emulator (the
//! same world, so the same rows), keeps the mappings and the desk table it set up the first
//! time, reads everything again and changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use deskbridge_core::{RecordId, SharedClock};
use deskbridge_emulator::{Emulator, World};
use deskbridge_mapping::{
    CustomTableMapping, CustomerMappings, RemovedCustomers, RemovedRows, RowField, SiteTarget, UnmatchedSite,
};
use deskbridge_source::settings::{Purpose, validate};
use deskbridge_source::{NewConnection, SourceRegistry, SyncEntity};
use deskbridge_store::{Connection, Entity, Record, RecordScope, Store, WriteContext};
use deskbridge_sync::{SyncOptions, SyncOutcome, sync};
use serde_json::{Value, json};

use super::{Demo, Progress, SCOPE_LIMIT, line};
use crate::output::outln;

/// The demo's Dynamics 365 connection.
pub(super) const DYNAMICS_NAME: &str = "demo-dynamics";
/// The emulator's custom table the demo imports.
const CONTRACT_TABLE: &str = "cr7a1_contract";
/// The desk custom table it goes into.
pub(super) const DESK_TABLE: &str = "contracts";
/// Desk columns of `contracts`: a few of the contract's columns and its account's name (a child
/// lookup through `cr7a1_accountid`).
const DESK_COLUMNS: &[(&str, &str, &str)] = &[
    ("cr7a1_name", "name", "text"),
    ("cr7a1_contractnumber", "number", "text"),
    ("cr7a1_seats", "seats", "number"),
    ("cr7a1_tier", "tier", "single_select"),
    ("cr7a1_startdate", "starts", "date"),
    ("cr7a1_accountid/name", "account", "text"),
];

/// Makes the sample organisation's accounts and contacts active, as a customer's CRM mostly is
/// (the generator leaves about one in twelve inactive, which the connector's tests cover): the
/// demo shows where people go, not who is left out for being inactive.
pub(super) fn activate(world: &mut World) {
    for org in &mut world.dataverse_orgs {
        for table in org
            .tables
            .iter_mut()
            .filter(|t| t.logical_name == "account" || t.logical_name == "contact")
        {
            for row in &mut table.rows {
                row.values.insert("statecode".into(), json!(0));
                row.values.insert("statuscode".into(), json!(1));
            }
        }
    }
}

/// A contact's parent in Dynamics 365.
#[derive(Debug, Clone, PartialEq)]
enum Parent {
    None,
    Account(String),
    Contact,
}

/// What the organisation holds, read from the emulator before the import (names, for the
/// summary; the import reads it through the Web API like any organisation).
struct OrgContents {
    friendly_name: String,
    /// Account id → name.
    accounts: BTreeMap<String, String>,
    /// Contact id → (full name, parent).
    contacts: BTreeMap<String, (String, Parent)>,
    contracts: usize,
}

fn contents(emu: &Emulator, org_name: &str) -> anyhow::Result<OrgContents> {
    emu.with_world(|w| {
        let org = w
            .dataverse_orgs
            .iter()
            .find(|o| o.name == org_name)
            .with_context(|| format!("the sample world has no organisation {org_name}"))?;
        let rows = |table: &str| {
            org.table(table)
                .map(|t| t.rows.as_slice())
                .with_context(|| format!("the sample organisation has no table {table}"))
        };
        let text = |values: &serde_json::Map<String, Value>, column: &str| {
            values
                .get(column)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let accounts = rows("account")?
            .iter()
            .map(|r| (r.id.to_lowercase(), text(&r.values, "name")))
            .collect();
        let contacts = rows("contact")?
            .iter()
            .map(|r| {
                let parent = match r.values.get("parentcustomerid") {
                    Some(p) if p["table"] == "account" => {
                        Parent::Account(p["id"].as_str().unwrap_or_default().to_lowercase())
                    }
                    Some(p) if p["table"] == "contact" => Parent::Contact,
                    _ => Parent::None,
                };
                (r.id.to_lowercase(), (text(&r.values, "fullname"), parent))
            })
            .collect();
        Ok(OrgContents {
            friendly_name: org.friendly_name.clone(),
            accounts,
            contacts,
            contracts: rows(CONTRACT_TABLE)?.len(),
        })
    })
}

/// The Dynamics part of the demo: connect, set up, import customers, contacts and contracts.
/// What it did, for [`print_summary`]; `None` when the sample world has no organisation.
pub(super) async fn import(demo: &Demo<'_>) -> anyhow::Result<Option<Imported>> {
    let Demo {
        emu,
        summary,
        store,
        sources,
        clock,
        ..
    } = demo;
    // The organisation belongs to the first customer tenant: a world without one has none.
    let Some(org) = summary.dataverse_orgs.first() else {
        eprintln!(
            "no Dynamics 365 organisation: the sample world has no customer tenant to hold one (give --tenants 1 \
             or more to see it)"
        );
        return Ok(None);
    };
    let world = contents(emu, &org.name)?;
    let again = connect(store, sources, summary, org).await?;
    demo.adopt(DYNAMICS_NAME).await?;
    let connection = deskbridge_sync::load_connection(store, DYNAMICS_NAME).await?;
    let customer = connection
        .config
        .get("customer_id")
        .and_then(Value::as_i64)
        .map(RecordId)
        .context("the demo's Dynamics connection has no customer")?;
    let default_site = {
        let mut tx = store.read().await?;
        let site = tx.main_site(customer).await?;
        tx.commit().await?;
        site.context("the Dynamics connection's customer has no main site")?
    };
    set_up(store, sources, default_site, clock).await?;

    // Customers first: the contacts' run places people by the customers it created.
    let progress = Progress::new(3, "dynamics");
    let customers = import_entity(demo, SyncEntity::Customers, &progress).await?;
    let people = import_entity(demo, SyncEntity::Directory, &progress).await?;
    let tables = import_entity(demo, SyncEntity::CustomTables, &progress).await?;
    progress.finish();

    let desk = desk_view(store, &connection, &org.tenant, default_site, customer).await?;
    // The import counts what it skipped but keeps no reasons; a preview of the same read plans
    // the same skips, each with its reason (only asked when some contact is missing).
    let reasons = if desk.users.len() < world.contacts.len() {
        skip_reasons(store, sources, clock).await?
    } else {
        Vec::new()
    };
    Ok(Some(Imported {
        org_name: org.name.clone(),
        world,
        desk,
        again,
        customers,
        people,
        tables,
        reasons,
    }))
}

/// A full read of one entity of the demo's Dynamics connection (on a rerun, everything is
/// compared again, whatever cursor the last demo's emulator left).
async fn import_entity(
    demo: &Demo<'_>,
    entity: SyncEntity,
    progress: &Progress,
) -> anyhow::Result<SyncOutcome> {
    let options = SyncOptions {
        entity,
        full: true,
        ..SyncOptions::default()
    };
    let outcome = sync(demo.store, demo.sources, DYNAMICS_NAME, &options, &demo.clock).await?;
    progress.step(line(&format!("{DYNAMICS_NAME} {entity}"), &outcome));
    Ok(outcome)
}

/// Adds the demo's Dynamics connection as `deskbridge connection add dynamics` does, for the
/// desk customer that owns the organisation's tenant (the CSP sign-in assigned it) or one named
/// after the tenant; or points the existing one at this run's emulator. Whether it existed.
async fn connect(
    store: &Store,
    sources: &SourceRegistry,
    summary: &deskbridge_emulator::Summary,
    org: &deskbridge_emulator::OrgSummary,
) -> anyhow::Result<bool> {
    let source = sources
        .get("dynamics")
        .context("this deskbridge has no Dynamics 365 connector")?;
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .context("the sample world has no multi-tenant app")?;
    let secret = app
        .client_secret
        .clone()
        .context("the sample app has no secret")?;
    let mut settings = serde_json::Map::new();
    settings.insert("url".into(), json!(org.url));
    settings.insert("tenant_id".into(), json!(org.tenant));
    settings.insert("client_id".into(), json!(app.client_id));
    settings.insert("client_secret".into(), json!(secret));
    settings.insert("authority_host".into(), json!(summary.authority_host));
    let mut tx = store.read().await?;
    let existing = tx.connection_by_name(DYNAMICS_NAME).await?;
    let owner = match tx.customer_of_tenant(&org.tenant).await? {
        Some(id) => tx
            .get(Entity::Customer, id)
            .await?
            .and_then(|c| c.text("name").map(str::to_owned)),
        None => None,
    };
    tx.commit().await?;
    if let Some(existing) = existing {
        // A new emulator listens on a new port: the URL and authority move, and the secret is
        // given again (a credential only goes where it was entered for).
        let values = validate(
            source.settings(),
            &settings,
            Purpose::Edit,
            sources.endpoint_policy(),
        )?;
        source.edit(store, &existing, values).await?;
        return Ok(true);
    }
    let tenant_name = summary
        .tenants
        .iter()
        .find(|t| t.id.eq_ignore_ascii_case(&org.tenant))
        .map(|t| t.display_name.clone());
    let values = validate(
        source.settings(),
        &settings,
        Purpose::Create,
        sources.endpoint_policy(),
    )?;
    source
        .create(
            store,
            NewConnection {
                name: DYNAMICS_NAME.into(),
                customer: owner.or(tenant_name),
                enabled_instances: "production".into(),
                settings: values,
            },
        )
        .await?;
    Ok(false)
}

/// Defines the desk table `contracts` and turns on the customer, placement and table mappings
/// (once; a later demo keeps what was set, as it does with asset import).
async fn set_up(
    store: &Store,
    sources: &SourceRegistry,
    default_site: RecordId,
    clock: &SharedClock,
) -> anyhow::Result<()> {
    let mut tx = store.read().await?;
    let defined = tx.custom_table_columns(DESK_TABLE).await?.is_some();
    tx.commit().await?;
    if !defined {
        // As `deskbridge custom-tables add --name contracts --column name:text …` defines it.
        let columns: Vec<(&str, &str)> = DESK_COLUMNS.iter().map(|(_, c, t)| (*c, *t)).collect();
        let mut tx = store.begin(WriteContext::manual()).await?;
        tx.define_custom_table(DESK_TABLE, Some("Contracts"), &columns)
            .await?;
        tx.commit().await?;
    }
    let mut mapping = deskbridge_sync::open_connection(store, sources, DYNAMICS_NAME)
        .await?
        .mapping()
        .clone();
    if mapping.customers.is_some() {
        return Ok(());
    }
    mapping.customers = Some(CustomerMappings {
        fields: vec![RowField {
            source: "name".into(),
            target: "name".into(),
        }],
        // Every account becomes its own customer: none is linked to a desk customer by name.
        match_fields: Vec::new(),
        removed: RemovedCustomers::Keep,
        ..CustomerMappings::default()
    });
    let site_mapping = mapping
        .site_mappings
        .first_mut()
        .context("the demo's Dynamics connection has no site mapping")?;
    site_mapping.target = SiteTarget::ImportedCustomer {
        property: "_parentcustomerid_value".into(),
        unmatched: UnmatchedSite::DefaultSite {
            site_id: default_site,
        },
    };
    mapping.custom_tables = vec![CustomTableMapping {
        source_table: CONTRACT_TABLE.into(),
        desk_table: DESK_TABLE.into(),
        filter: None,
        fields: DESK_COLUMNS
            .iter()
            .map(|(source, target, _)| RowField {
                source: (*source).into(),
                target: (*target).into(),
            })
            .collect(),
        removed_rows: RemovedRows::Delete,
    }];
    deskbridge_sync::save_mappings(store, sources, DYNAMICS_NAME, mapping, clock).await?;
    Ok(())
}

/// What the desk holds from the connection after the imports.
struct DeskView {
    /// The connection's customers: source id (lower case) → (name, main site).
    customers: BTreeMap<String, (String, Option<RecordId>)>,
    /// The connection's users: (contact id, name, site).
    users: Vec<(String, String, Option<RecordId>)>,
    /// The default site's and its customer's names.
    default_site: (String, String),
    default_site_id: RecordId,
    /// `contracts` rows the connection imported: (name, account).
    contracts: Vec<(String, String)>,
}

async fn desk_view(
    store: &Store,
    connection: &Connection,
    tenant: &str,
    default_site: RecordId,
    customer: RecordId,
) -> anyhow::Result<DeskView> {
    let mine = |r: &Record| {
        r.source
            .as_ref()
            .filter(|s| s.connection_id == connection.id)
            .map(|s| s.external_id.to_lowercase())
    };
    let mut tx = store.read().await?;
    let mut customers = BTreeMap::new();
    for record in tx.list(Entity::Customer, None, SCOPE_LIMIT).await? {
        if let Some(id) = mine(&record) {
            let site = tx.main_site(record.id).await?;
            customers.insert(id, (record.text("name").unwrap_or_default().to_owned(), site));
        }
    }
    let scope = RecordScope::OfConnectionTenant {
        connection: connection.id,
        tenant_id: tenant.to_owned(),
        external_ids: Vec::new(),
    };
    let users = tx
        .list_scoped(Entity::User, &scope, None, SCOPE_LIMIT)
        .await?
        .iter()
        .filter(|u| u.get("active").as_bool() != Some(false))
        .filter_map(|u| {
            Some((
                mine(u)?,
                u.text("name").unwrap_or_default().to_owned(),
                u.get("site_id").as_i64().map(RecordId),
            ))
        })
        .collect();
    let name_of = |record: Option<Record>| {
        record
            .and_then(|r| r.text("name").map(str::to_owned))
            .unwrap_or_default()
    };
    let site_name = name_of(tx.get(Entity::Site, default_site).await?);
    let customer_name = name_of(tx.get(Entity::Customer, customer).await?);
    let contracts = tx
        .custom_rows_of_connection(DESK_TABLE, connection.id)
        .await?
        .into_iter()
        .map(|r| {
            let text = |c: &str| {
                r.data
                    .get(c)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            (text("name"), text("account"))
        })
        .collect();
    tx.commit().await?;
    Ok(DeskView {
        customers,
        users,
        default_site: (site_name, customer_name),
        default_site_id: default_site,
        contracts,
    })
}

/// Why contacts were not imported, as a preview of the contacts plans them: each skip's reason.
async fn skip_reasons(
    store: &Store,
    sources: &SourceRegistry,
    clock: &SharedClock,
) -> anyhow::Result<Vec<String>> {
    let options = SyncOptions {
        entity: SyncEntity::Directory,
        full: true,
        plan_only: true,
        ..SyncOptions::default()
    };
    let preview = sync(store, sources, DYNAMICS_NAME, &options, clock).await?;
    let mut reasons: Vec<String> = preview
        .changes
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.action == deskbridge_mapping::Action::Skip)
        .map(|c| c.reason)
        .collect();
    reasons.extend(preview.errors.into_iter().map(|e| e.message));
    Ok(reasons)
}

/// What the Dynamics part of the demo did.
pub(super) struct Imported {
    org_name: String,
    world: OrgContents,
    desk: DeskView,
    /// The connection was set up by an earlier demo on this data directory.
    again: bool,
    customers: SyncOutcome,
    people: SyncOutcome,
    tables: SyncOutcome,
    /// Why contacts were skipped (one entry per contact).
    reasons: Vec<String>,
}

/// Up to `n` names, then how many more.
fn some(names: impl IntoIterator<Item = String>, n: usize) -> String {
    let names: Vec<String> = names.into_iter().filter(|n| !n.is_empty()).collect();
    let mut shown = names.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > n {
        shown.push_str(&format!(" and {} more", names.len() - n));
    }
    shown
}

fn counts(o: &SyncOutcome) -> String {
    format!(
        "created {}, updated {}, unchanged {}, errors {}",
        o.counts.created, o.counts.updated, o.counts.unchanged, o.counts.errors
    )
}

/// The Dynamics part of the summary: every account, contact and contract row accounted for.
pub(super) fn print_summary(r: &Imported) {
    let (world, desk) = (&r.world, &r.desk);
    let (customers_run, people_run, tables_run) = (&r.customers, &r.people, &r.tables);
    outln!("deskbridge demo summary (Dynamics 365: one organisation, connection {DYNAMICS_NAME})");
    outln!(
        "  organisation:       {} ({}): {} accounts, {} contacts, {} rows of {CONTRACT_TABLE}",
        world.friendly_name,
        r.org_name,
        world.accounts.len(),
        world.contacts.len(),
        world.contracts
    );
    if r.again {
        let changed: i64 = [customers_run, people_run, tables_run]
            .iter()
            .map(|o| o.counts.created + o.counts.updated + o.counts.deactivated)
            .sum();
        outln!(
            "  again:              {DYNAMICS_NAME} was set up by an earlier demo on this data directory: \
             pointed at this run's emulator, its mappings kept, everything read again: {}",
            if changed == 0 {
                "nothing changed".to_owned()
            } else {
                format!("{changed} changes (the organisation differs from the last demo's)")
            }
        );
    }

    // Accounts: each one a customer of this connection, created now or by an earlier demo.
    let imported = world
        .accounts
        .keys()
        .filter(|id| desk.customers.contains_key(*id))
        .count();
    let created = usize::try_from(customers_run.counts.created).unwrap_or(0);
    let mut parts = vec![format!("{} customers created", created.min(imported))];
    if imported > created {
        parts.push(format!(
            "{} already on the desk from an earlier demo",
            imported - created
        ));
    }
    if world.accounts.len() > imported {
        parts.push(format!(
            "{} not imported ({})",
            world.accounts.len() - imported,
            first_error(customers_run)
        ));
    }
    let with_site = desk.customers.values().filter(|(_, s)| s.is_some()).count();
    outln!(
        "  accounts:           {} accounts = {}; {with_site} with a main site ({})",
        world.accounts.len(),
        parts.join(" + "),
        counts(customers_run)
    );

    // Contacts: on their account's customer's main site, on the default site, or skipped.
    let main_sites: BTreeSet<RecordId> = desk.customers.values().filter_map(|(_, s)| *s).collect();
    let (mut on_account, mut other_site) = (0, 0);
    let mut on_default: BTreeMap<&str, usize> = BTreeMap::new();
    let mut per_customer: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (contact, name, site) in &desk.users {
        let parent = world.contacts.get(contact).map(|(_, p)| p);
        match site {
            Some(site) if main_sites.contains(site) => {
                on_account += 1;
                if let Some(Parent::Account(account)) = parent
                    && let Some((customer, _)) = desk.customers.get(account)
                {
                    per_customer
                        .entry(customer.clone())
                        .or_default()
                        .push(name.clone());
                }
            }
            Some(site) if *site == desk.default_site_id => {
                let why = match parent {
                    Some(Parent::Account(_)) => "whose account was not imported",
                    Some(Parent::Contact) => "whose parent is a contact",
                    _ => "without a parent account",
                };
                *on_default.entry(why).or_default() += 1;
            }
            _ => other_site += 1,
        }
    }
    let on_default_total: usize = on_default.values().sum();
    let mut parts = vec![
        format!("{on_account} on their account's customer"),
        format!(
            "{on_default_total} on the default site ({} of {}{})",
            desk.default_site.0,
            desk.default_site.1,
            if on_default.is_empty() {
                String::new()
            } else {
                format!(
                    ": {}",
                    on_default
                        .iter()
                        .map(|(why, n)| format!("{n} {why}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ),
    ];
    if other_site > 0 {
        parts.push(format!(
            "{other_site} on other sites (kept by a lock or moved by hand)"
        ));
    }
    let skipped = world.contacts.len().saturating_sub(desk.users.len());
    parts.push(format!("{skipped} skipped{}", skip_why(skipped, &r.reasons)));
    outln!(
        "  contacts:           {} contacts = {} ({})",
        world.contacts.len(),
        parts.join(" + "),
        counts(people_run)
    );

    // Contract rows: each one a row of the desk table.
    let mut parts = vec![format!("{} in desk table {DESK_TABLE}", desk.contracts.len())];
    if world.contracts > desk.contracts.len() {
        parts.push(format!(
            "{} not imported ({})",
            world.contracts - desk.contracts.len(),
            first_error(tables_run)
        ));
    }
    outln!(
        "  contracts:          {} rows of {CONTRACT_TABLE} = {} ({})",
        world.contracts,
        parts.join(" + "),
        counts(tables_run)
    );

    // A few by name: the customers with the most people, their contacts and contracts.
    let mut busiest: Vec<(&String, &Vec<String>)> = per_customer.iter().collect();
    busiest.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
    for (customer, people) in busiest.into_iter().take(3) {
        let contracts = desk
            .contracts
            .iter()
            .filter(|(_, account)| account == customer)
            .map(|(name, _)| name.clone());
        outln!(
            "    {customer}: {} users ({}); contracts: {}",
            people.len(),
            some(people.iter().cloned(), 3),
            match some(contracts, 3) {
                none if none.is_empty() => "none".to_owned(),
                names => names,
            }
        );
    }
}

/// Why `skipped` contacts were not imported: the reasons the sync or its preview gave, the most
/// common first.
fn skip_why(skipped: usize, reasons: &[String]) -> String {
    if skipped == 0 {
        return String::new();
    }
    let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    for reason in reasons {
        *by_reason.entry(reason.as_str()).or_default() += 1;
    }
    let mut by_reason: Vec<(&str, usize)> = by_reason.into_iter().collect();
    by_reason.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    match by_reason.first() {
        Some((reason, n)) if by_reason.len() == 1 => format!(": {reason} ({n})"),
        Some(_) => format!(
            ": {}",
            by_reason
                .iter()
                .take(3)
                .map(|(reason, n)| format!("{reason} ({n})"))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        None => format!(": see deskbridge sync --connection {DYNAMICS_NAME} --entity directory --plan"),
    }
}

/// The first error of a run, with its remedy, or where to look when it has none.
fn first_error(o: &SyncOutcome) -> String {
    match o.errors.first() {
        Some(e) => match &e.remedy {
            Some(remedy) => format!("{} ({remedy})", e.message),
            None => e.message.clone(),
        },
        None => "see deskbridge runs list".to_owned(),
    }
}
