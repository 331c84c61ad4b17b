//! The desk side of planning: what the store holds, as the mapping engine reads it.

use std::collections::BTreeSet;

use deskbridge_core::{ConnectionId, RecordId};
use deskbridge_mapping::{
    Catalog, CatalogSite, CustomField, CustomFieldEntity, CustomFieldType, DeskLicence, DeskRecord, DeskSite,
    DeskSnapshot, DeskTicket, MappingConfig, NamedRecord, RecordLocks, SiteTarget, SourceIdentity,
    UnmatchedSite,
};
use deskbridge_store::{Entity, Record, RecordScope, StoreTx};
use serde_json::Value;

use crate::SyncError;

const PAGE: u32 = 1_000;

/// Which records, and how much of each, a listing reads.
#[derive(Clone, Copy)]
enum Listing<'a> {
    /// Every record, whole.
    All,
    /// Every record, columns only (no link sets or custom fields).
    Columns,
    /// The records in a scope, whole.
    Scoped(&'a RecordScope),
}

/// Every record of `entity` the listing names, page by page.
async fn every(tx: &mut StoreTx, entity: Entity, listing: Listing<'_>) -> Result<Vec<Record>, SyncError> {
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
async fn listed(
    tx: &mut StoreTx,
    entity: Entity,
    scope: Option<&RecordScope>,
) -> Result<Vec<Record>, SyncError> {
    every(tx, entity, scope.map_or(Listing::All, Listing::Scoped)).await
}

fn desk_record(record: Record) -> DeskRecord {
    DeskRecord {
        id: record.id,
        source: record.source.map(|s| SourceIdentity {
            connection_id: s.connection_id,
            external_id: s.external_id,
        }),
        fields: record.fields.into_iter().collect(),
        locks: RecordLocks::default(),
    }
}

fn id_of(value: &Value) -> Option<RecordId> {
    value.as_i64().map(RecordId)
}

/// Whose plan a snapshot is for.
#[derive(Debug, Clone)]
pub struct SnapshotScope {
    pub connection: ConnectionId,
    pub tenant_id: String,
    pub customer: Option<RecordId>,
    /// The customers whose sites the plan can place users in; `None`: every site (a mapping
    /// matches sites of any customer).
    pub site_customers: Option<Vec<RecordId>>,
}

impl SnapshotScope {
    /// The scope of a sync of `connection` (reading `tenant_id` for `customer`) under `mapping`.
    pub fn of(
        connection: ConnectionId,
        tenant_id: &str,
        customer: RecordId,
        mapping: &MappingConfig,
    ) -> Self {
        let mut customers: BTreeSet<RecordId> = [customer].into_iter().collect();
        let mut every_site = false;
        for site_mapping in &mapping.site_mappings {
            match &site_mapping.target {
                SiteTarget::CustomerByField { customer_id, .. } => {
                    customers.insert(*customer_id);
                }
                SiteTarget::MatchSiteField { customer_id, .. } => match customer_id {
                    Some(c) => {
                        customers.insert(*c);
                    }
                    None => every_site = true,
                },
                // Sites named by id are referenced by id: the plan needs no copy of them.
                SiteTarget::ExistingSite { .. } | SiteTarget::Agent { .. } => {}
            }
        }
        Self {
            connection,
            tenant_id: tenant_id.to_owned(),
            customer: Some(customer),
            site_customers: (!every_site).then(|| customers.into_iter().collect()),
        }
    }
}

/// The desk records a plan of `scope`'s connection reads: the users and agents it can match or
/// change, the sites of the customers its mappings place users under, the licences of its
/// customer, and the tickets of its agents. The rest of
/// a many-tenant desk is left out, so a sync costs the size of its tenant, not of the desk.
pub async fn load_snapshot(tx: &mut StoreTx, scope: &SnapshotScope) -> Result<DeskSnapshot, SyncError> {
    let syncable = RecordScope::SyncableBy {
        connection: scope.connection,
        tenant_id: scope.tenant_id.clone(),
    };
    let users = listed(tx, Entity::User, Some(&syncable))
        .await?
        .into_iter()
        .map(desk_record)
        .collect();
    let agents = listed(tx, Entity::Agent, Some(&syncable))
        .await?
        .into_iter()
        .map(desk_record)
        .collect();
    let site_scope = scope.site_customers.clone().map(RecordScope::OfCustomers);
    let sites = listed(tx, Entity::Site, site_scope.as_ref())
        .await?
        .into_iter()
        .filter_map(|s| {
            Some(DeskSite {
                id: s.id,
                customer_id: id_of(s.get("customer_id"))?,
                name: s.text("name")?.to_owned(),
                is_main: s.get("is_main").as_bool().unwrap_or(false),
                fields: s.fields.clone(),
            })
        })
        .collect();
    let licences = listed(
        tx,
        Entity::Licence,
        scope.customer.map(RecordScope::OfCustomerOrNone).as_ref(),
    )
    .await?
    .into_iter()
    .filter_map(|l| {
        Some(DeskLicence {
            id: l.id,
            sku_id: l.text("sku_id")?.to_owned(),
            customer_id: id_of(l.get("customer_id")),
            fields: l.fields.clone(),
        })
    })
    .collect();
    let tickets = listed(
        tx,
        Entity::Ticket,
        Some(&RecordScope::AssignedToAgentsOf(scope.connection)),
    )
    .await?
    .into_iter()
    .map(|t| DeskTicket {
        id: t.id,
        agent_id: id_of(t.get("agent_id")),
        team_id: id_of(t.get("team_id")),
        followers: t
            .get("followers")
            .as_array()
            .map(|f| f.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
    })
    .collect();
    Ok(DeskSnapshot {
        users,
        agents,
        sites,
        licences,
        tickets,
    })
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
            SiteTarget::Agent { .. } => {}
        }
    }
    let mut catalog = catalog_without_customers_and_sites(tx, groups).await?;
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
pub async fn load_catalog(tx: &mut StoreTx, groups: BTreeSet<String>) -> Result<Catalog, SyncError> {
    let mut catalog = catalog_without_customers_and_sites(tx, groups).await?;
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
        graph_properties: Catalog::graph_user_properties(),
    })
}
