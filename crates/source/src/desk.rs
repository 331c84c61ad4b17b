//! What connectors and the pipeline read of the desk: its records listed page by page, and the
//! catalog a mapping configuration is validated against (customers, sites, roles, teams, boards,
//! custom fields, and the source's groups).

use std::collections::{BTreeMap, BTreeSet};

use deskbridge_core::RecordId;
use deskbridge_mapping::{
    Catalog, CatalogSite, CustomField, CustomFieldEntity, CustomFieldType, MappingConfig, NamedRecord,
    SiteTarget, SourceType, UnmatchedSite, ValidatedConfig, validate,
};
use deskbridge_store::{Entity, Record, RecordScope, Store, StoreTx};
use serde_json::Value;

use crate::SyncError;

/// The properties a source's records carry, by name, with their types: what field mappings may
/// read (each source says its own).
pub type SourceProperties = BTreeMap<String, SourceType>;

const PAGE: u32 = 1_000;

/// Which records, and how much of each, a listing reads.
#[derive(Clone, Copy)]
pub enum Listing<'a> {
    /// Every record, whole.
    All,
    /// Every record, columns only (no link sets or custom fields).
    Columns,
    /// The records in a scope, whole.
    Scoped(&'a RecordScope),
}

/// Every record of `entity` the listing names, page by page.
pub async fn every(tx: &mut StoreTx, entity: Entity, listing: Listing<'_>) -> Result<Vec<Record>, SyncError> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = match listing {
            Listing::All => tx.list(entity, after, PAGE).await?,
            Listing::Columns => tx.list_columns(entity, after, PAGE).await?,
            Listing::Scoped(scope) => tx.list_scoped(entity, scope, after, PAGE).await?,
        };
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        out.extend(page);
    }
    Ok(out)
}

/// Every record of `entity` (in `scope` when given), whole.
pub async fn listed(
    tx: &mut StoreTx,
    entity: Entity,
    scope: Option<&RecordScope>,
) -> Result<Vec<Record>, SyncError> {
    every(tx, entity, scope.map_or(Listing::All, Listing::Scoped)).await
}

pub fn id_of(value: &Value) -> Option<RecordId> {
    value.as_i64().map(RecordId)
}

async fn named(tx: &mut StoreTx, entity: Entity) -> Result<Vec<NamedRecord>, SyncError> {
    Ok(every(tx, entity, Listing::Columns)
        .await?
        .into_iter()
        .filter_map(named_record)
        .collect())
}

/// [`load_catalog`] for validating `mapping` only: of the desk's customers and sites, just those the
/// mappings name by id (validation asks only whether they exist). A sync validates its mappings
/// once or twice, and a desk of a thousand customers made that most of a small tenant's sync.
pub async fn load_catalog_for(
    tx: &mut StoreTx,
    groups: BTreeSet<String>,
    properties: &SourceProperties,
    mapping: &MappingConfig,
) -> Result<Catalog, SyncError> {
    let mut customers = BTreeSet::new();
    let mut sites = BTreeSet::new();
    for site_mapping in &mapping.site_mappings {
        match &site_mapping.target {
            SiteTarget::ExistingSite { site_id } => {
                sites.insert(*site_id);
            }
            SiteTarget::CustomerByField { customer_id, .. } => {
                customers.insert(*customer_id);
            }
            SiteTarget::MatchSiteField {
                customer_id,
                unmatched,
                ..
            } => {
                customers.extend(*customer_id);
                if let UnmatchedSite::DefaultSite { site_id } = unmatched {
                    sites.insert(*site_id);
                }
            }
            SiteTarget::ImportedCustomer { unmatched, .. } => {
                if let UnmatchedSite::DefaultSite { site_id } = unmatched {
                    sites.insert(*site_id);
                }
            }
            SiteTarget::Agent { .. } => {}
        }
    }
    sites.extend(mapping.assets.as_ref().and_then(|a| a.default_site));
    let mut catalog = catalog_without_customers_and_sites(tx, groups, properties).await?;
    let sites = RecordScope::Ids(sites.into_iter().collect());
    catalog.sites = listed(tx, Entity::Site, Some(&sites))
        .await?
        .into_iter()
        .filter_map(catalog_site)
        .collect();
    let customers = RecordScope::Ids(customers.into_iter().collect());
    catalog.customers = listed(tx, Entity::Customer, Some(&customers))
        .await?
        .into_iter()
        .filter_map(named_record)
        .collect();
    Ok(catalog)
}

fn catalog_site(s: Record) -> Option<CatalogSite> {
    Some(CatalogSite {
        id: s.id,
        customer_id: id_of(s.get("customer_id"))?,
        name: s.text("name")?.to_owned(),
        fields: s.fields.clone(),
    })
}

fn named_record(r: Record) -> Option<NamedRecord> {
    Some(NamedRecord {
        id: r.id,
        name: r.text("name")?.to_owned(),
    })
}

/// What exists on the desk (and which groups the tenant has), for validating mappings. Validation
/// needs ids and names, so link sets and custom fields are not read: every sync validates, and on
/// a desk of many customers this was most of a quiet delta round's work.
pub async fn load_catalog(
    tx: &mut StoreTx,
    groups: BTreeSet<String>,
    properties: &SourceProperties,
) -> Result<Catalog, SyncError> {
    let mut catalog = catalog_without_customers_and_sites(tx, groups, properties).await?;
    catalog.sites = every(tx, Entity::Site, Listing::Columns)
        .await?
        .into_iter()
        .filter_map(catalog_site)
        .collect();
    catalog.customers = named(tx, Entity::Customer).await?;
    Ok(catalog)
}

/// The catalog's desk-wide part: roles, teams, boards, custom fields (customers and sites empty).
async fn catalog_without_customers_and_sites(
    tx: &mut StoreTx,
    groups: BTreeSet<String>,
    properties: &SourceProperties,
) -> Result<Catalog, SyncError> {
    let custom_fields = tx
        .custom_field_definitions()
        .await?
        .into_iter()
        .filter_map(|d| {
            let entity = match d.entity.as_str() {
                "user" => CustomFieldEntity::User,
                "agent" => CustomFieldEntity::Agent,
                "site" => CustomFieldEntity::Site,
                "asset" => CustomFieldEntity::Asset,
                "customer" => CustomFieldEntity::Customer,
                _ => return None,
            };
            let field_type = match d.field_type.as_str() {
                "text" => CustomFieldType::Text,
                "number" => CustomFieldType::Number,
                "date" => CustomFieldType::Date,
                "boolean" => CustomFieldType::Boolean,
                "single_select" => CustomFieldType::SingleSelect,
                "multi_select" => CustomFieldType::MultiSelect,
                _ => return None,
            };
            Some(CustomField {
                name: d.name,
                field_type,
                options: d.options,
                option_ids: d.option_ids,
                entity,
            })
        })
        .collect();
    Ok(Catalog {
        customers: Vec::new(),
        sites: Vec::new(),
        user_roles: named(tx, Entity::UserRole).await?,
        agent_roles: named(tx, Entity::AgentRole).await?,
        teams: named(tx, Entity::Team).await?,
        cabs: named(tx, Entity::Cab).await?,
        cab_roles: named(tx, Entity::CabRole).await?,
        custom_fields,
        groups,
        source_properties: properties.clone(),
        device_properties: BTreeMap::new(),
        asset_types: named(tx, Entity::AssetType).await?,
    })
}

/// The desk's customer custom fields: what customer mappings may write.
pub async fn customer_custom_fields(store: &Store) -> Result<Vec<CustomField>, SyncError> {
    let mut tx = store.read().await?;
    let catalog =
        catalog_without_customers_and_sites(&mut tx, BTreeSet::new(), &SourceProperties::new()).await?;
    tx.commit().await?;
    Ok(catalog
        .custom_fields
        .into_iter()
        .filter(|f| f.entity == CustomFieldEntity::Customer)
        .collect())
}

/// Validates `mapping` against what exists on the desk. `groups: None` accepts every group the
/// mappings name (a delta round does not list the source's groups).
pub async fn validated(
    store: &Store,
    mapping: &MappingConfig,
    groups: Option<BTreeSet<String>>,
    properties: &SourceProperties,
) -> Result<ValidatedConfig, SyncError> {
    validated_with_devices(store, mapping, groups, properties, &SourceProperties::new()).await
}

/// [`validated`], also checking what asset mappings read against the source's device
/// properties (`devices`; empty: not checked).
pub async fn validated_with_devices(
    store: &Store,
    mapping: &MappingConfig,
    groups: Option<BTreeSet<String>>,
    properties: &SourceProperties,
    devices: &SourceProperties,
) -> Result<ValidatedConfig, SyncError> {
    let groups = groups.unwrap_or_else(|| mapping.group_names());
    let mut tx = store.read().await?;
    let mut catalog = load_catalog_for(&mut tx, groups, properties, mapping).await?;
    tx.commit().await?;
    catalog.device_properties = devices.clone();
    validate(mapping, &catalog).map_err(|errors| {
        SyncError::InvalidMappings(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}

/// The desk customer a new connection imports a tenant into, as [`customer_for_tenant`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantCustomerFound {
    pub customer: RecordId,
    pub main_site: RecordId,
    /// Whether it was created now (no customer had the name): the connection created it for
    /// itself, and removing the connection may remove it.
    pub created: bool,
}

/// The desk customer a new connection imports a tenant into: the customer named `name` (created,
/// with its main site, when there is none), with `tenant_id` added to its tenants.
pub async fn customer_for_tenant(
    tx: &mut StoreTx,
    name: &str,
    tenant_id: &str,
) -> Result<TenantCustomerFound, SyncError> {
    let (customer, created) = match tx
        .find_by_text(Entity::Customer, "name", name)
        .await?
        .into_iter()
        .next()
    {
        Some(c) => (c.id, false),
        None => {
            let id = tx
                .insert(
                    Entity::Customer,
                    None,
                    &[("name".to_owned(), serde_json::json!(name))]
                        .into_iter()
                        .collect(),
                )
                .await?;
            (id, true)
        }
    };
    if let Some(owner_name) = tenant_owned_elsewhere(tx, customer, tenant_id).await? {
        return Err(SyncError::Conflict(format!(
            "the tenant {tenant_id} already belongs to the desk customer {owner_name:?}: import it into that \
             customer (customer: {owner_name:?}) or remove the tenant from it first"
        )));
    }
    add_tenant(tx, customer, tenant_id).await?;
    let main_site = tx
        .main_site(customer)
        .await?
        .ok_or_else(|| SyncError::InvalidSettings(format!("the desk customer {name:?} has no main site")))?;
    Ok(TenantCustomerFound {
        customer,
        main_site,
        created,
    })
}

/// The name of the desk customer owning `tenant_id`, when that is another customer than
/// `customer`: a tenant belongs to one customer, so a connection of `customer` may not read it.
pub async fn tenant_owned_elsewhere(
    tx: &mut StoreTx,
    customer: RecordId,
    tenant_id: &str,
) -> Result<Option<String>, SyncError> {
    match tx.customer_of_tenant(tenant_id).await? {
        Some(owner) if owner != customer => Ok(Some(
            tx.get(Entity::Customer, owner)
                .await?
                .and_then(|c| c.text("name").map(str::to_owned))
                .unwrap_or_else(|| format!("#{owner}")),
        )),
        _ => Ok(None),
    }
}

/// A connection of the desk customer `customer` is changed to read `tenant_id`: refused when
/// another customer owns the tenant (its data would come into this customer), otherwise the tenant
/// is added to the customer's tenants. The tenant it read before stays the customer's: another of
/// its connections may read it too.
pub async fn claim_tenant(tx: &mut StoreTx, customer: RecordId, tenant_id: &str) -> Result<(), SyncError> {
    if let Some(owner_name) = tenant_owned_elsewhere(tx, customer, tenant_id).await? {
        return Err(SyncError::Conflict(format!(
            "the tenant {tenant_id} already belongs to the desk customer {owner_name:?}, and a connection reads \
             only its own customer's tenants: use a connection of {owner_name:?}, or remove the tenant from \
             that customer first"
        )));
    }
    add_tenant(tx, customer, tenant_id).await
}

/// Adds `tenant_id` to the tenants of the desk customer `customer` (nothing when it is there).
pub async fn add_tenant(tx: &mut StoreTx, customer: RecordId, tenant_id: &str) -> Result<(), SyncError> {
    let record = tx.get(Entity::Customer, customer).await?;
    let mut tenants: Vec<Value> = record
        .and_then(|c| c.get("tenant_ids").as_array().cloned())
        .unwrap_or_default();
    if !tenants
        .iter()
        .any(|t| t.as_str().is_some_and(|t| t.eq_ignore_ascii_case(tenant_id)))
    {
        tenants.push(serde_json::json!(tenant_id));
        tx.update(
            Entity::Customer,
            customer,
            &[("tenant_ids".to_owned(), serde_json::json!(tenants))]
                .into_iter()
                .collect(),
        )
        .await?;
    }
    Ok(())
}

/// Refuses a mapping whose site targets belong to a customer the connection does not import into
/// (`customers`: its partitions' customers), naming each target and its customer: a mapping that
/// did so would move the connection's users into another customer's sites. A connection with no
/// partitions yet imports nothing, so nothing is refused. Checked when mappings are saved and
/// again when a run plans, since the configuration may have been changed behind our back.
pub async fn check_target_customers(
    tx: &mut StoreTx,
    mapping: &MappingConfig,
    customers: &BTreeSet<RecordId>,
) -> Result<(), SyncError> {
    if customers.is_empty() {
        return Ok(());
    }
    let mut own = Vec::new();
    for id in customers {
        own.push(customer_name(tx, *id).await?);
    }
    let own = own.join(", ");
    let mut problems = Vec::new();
    for site_mapping in &mapping.site_mappings {
        let label = format!("site mapping {:?}", site_mapping.name);
        let mut sites = Vec::new();
        let mut named_customers = Vec::new();
        match &site_mapping.target {
            SiteTarget::ExistingSite { site_id } => sites.push(*site_id),
            SiteTarget::CustomerByField { customer_id, .. } => named_customers.push(*customer_id),
            SiteTarget::MatchSiteField {
                customer_id,
                unmatched,
                ..
            } => {
                match customer_id {
                    Some(c) => named_customers.push(*c),
                    None => problems.push(format!(
                        "{label} matches among every customer's sites: choose this connection's customer ({own})"
                    )),
                }
                if let UnmatchedSite::DefaultSite { site_id } = unmatched {
                    sites.push(*site_id);
                }
            }
            // The customers this connection imported itself (an administrator's connection: see
            // `Source::attaches_existing_customers`); only the default site is checked.
            SiteTarget::ImportedCustomer { unmatched, .. } => {
                if let UnmatchedSite::DefaultSite { site_id } = unmatched {
                    sites.push(*site_id);
                }
            }
            SiteTarget::Agent { .. } => {}
        }
        for customer in named_customers {
            if !customers.contains(&customer) {
                let name = customer_name(tx, customer).await?;
                problems.push(format!(
                    "{label} names the customer {name}, not this connection's customer ({own})"
                ));
            }
        }
        for site in sites {
            let Some(record) = tx.get(Entity::Site, site).await? else {
                continue; // a missing site is the mapping validation's to report
            };
            let Some(owner) = id_of(record.get("customer_id")) else {
                continue;
            };
            if !customers.contains(&owner) {
                let site_name = record.text("name").unwrap_or_default().to_owned();
                let owner_name = customer_name(tx, owner).await?;
                problems.push(format!(
                    "{label} targets the site {site_name:?} (#{site}) of the customer {owner_name}, not of this \
                     connection's customer ({own})"
                ));
            }
        }
    }
    if let Some(site) = mapping.assets.as_ref().and_then(|a| a.default_site)
        && let Some(record) = tx.get(Entity::Site, site).await?
        && let Some(owner) = id_of(record.get("customer_id"))
        && !customers.contains(&owner)
    {
        let site_name = record.text("name").unwrap_or_default().to_owned();
        let owner_name = customer_name(tx, owner).await?;
        problems.push(format!(
            "the assets' default site {site_name:?} (#{site}) belongs to the customer {owner_name}, not to this \
             connection's customer ({own}); leave it empty to use each customer's main site"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SyncError::InvalidMappings(problems.join("; ")))
    }
}

/// A customer's name, quoted, for messages (its id when it has gone).
async fn customer_name(tx: &mut StoreTx, id: RecordId) -> Result<String, SyncError> {
    Ok(tx
        .get(Entity::Customer, id)
        .await?
        .and_then(|c| c.text("name").map(|n| format!("{n:?}")))
        .unwrap_or_else(|| format!("#{id}")))
}

/// Checks the connection's custom table mappings against the desk: every desk table exists and
/// has the mapped columns. Every problem is named (mapping, table, column), with the remedy.
pub async fn check_custom_tables(tx: &mut StoreTx, mapping: &MappingConfig) -> Result<(), SyncError> {
    let mut problems = Vec::new();
    for table in &mapping.custom_tables {
        let columns = tx.custom_table_columns(&table.desk_table).await?;
        problems.extend(deskbridge_mapping::check_against_desk(table, columns.as_ref()));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SyncError::InvalidMappings(problems.join("; ")))
    }
}
