//! The desk side of planning: what the store holds, as the mapping engine reads it — a step at a
//! time, so a sync holds a page of desk records, never the whole desk.

use std::collections::{BTreeMap, BTreeSet};

use deskbridge_core::{ConnectionId, RecordId};
use deskbridge_mapping::{
    ConnectionRecord, DeskLicence, DeskLookups, DeskRecord, DeskSite, DeskSnapshot, DeskSourceRecord,
    DeskTicket, FinishLookups, ImportedCustomer, MappingConfig, RecordKind, RecordLocks, SiteTarget,
    SourceIdentity,
};
use deskbridge_source::desk::{id_of, listed};
use deskbridge_store::{Entity, Record, RecordScope, StoreTx};

use crate::SyncError;

/// Records per query when a listing pages through a table.
const PAGE: u32 = 1_000;

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

/// Whose plan a snapshot is for.
#[derive(Debug, Clone)]
pub struct SnapshotScope {
    pub connection: ConnectionId,
    pub tenant_id: String,
    pub customer: Option<RecordId>,
    /// The customers whose sites the plan can place users in; `None`: every site (a mapping
    /// matches sites of any customer).
    pub site_customers: Option<Vec<RecordId>>,
    /// Whether a mapping places people under the customers the connection imported.
    pub imported_customers: bool,
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
        let mut imported_customers = false;
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
                SiteTarget::ImportedCustomer { .. } => imported_customers = true,
                // Sites named by id are referenced by id: the plan needs no copy of them.
                SiteTarget::ExistingSite { .. } | SiteTarget::Agent { .. } => {}
            }
        }
        Self {
            connection,
            tenant_id: tenant_id.to_owned(),
            customer: Some(customer),
            site_customers: (!every_site).then(|| customers.into_iter().collect()),
            imported_customers,
        }
    }
}

/// The sites and licences a plan of `scope`'s connection reads: the sites of the customers its
/// mappings place users under, and the licences of its customer (and of none). Small tables,
/// loaded once per tenant; users and agents are loaded a page at a time ([`load_page_records`]).
pub async fn load_reference(tx: &mut StoreTx, scope: &SnapshotScope) -> Result<DeskSnapshot, SyncError> {
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
    let imported_customers = if scope.imported_customers {
        load_imported_customers(tx, scope.connection).await?
    } else {
        BTreeMap::new()
    };
    Ok(DeskSnapshot {
        sites,
        licences,
        imported_customers,
        ..DeskSnapshot::default()
    })
}

/// The customers `connection` imported, by lower-cased source id, with their main sites (two
/// queries, whatever their number).
async fn load_imported_customers(
    tx: &mut StoreTx,
    connection: ConnectionId,
) -> Result<BTreeMap<String, ImportedCustomer>, SyncError> {
    let customers: Vec<Record> = listed(tx, Entity::Customer, None)
        .await?
        .into_iter()
        .filter(|c| c.source.as_ref().is_some_and(|s| s.connection_id == connection))
        .collect();
    if customers.is_empty() {
        return Ok(BTreeMap::new());
    }
    let ids = customers.iter().map(|c| c.id).collect();
    let main_sites: BTreeMap<RecordId, RecordId> =
        listed(tx, Entity::Site, Some(&RecordScope::OfCustomers(ids)))
            .await?
            .into_iter()
            .filter(|s| s.get("is_main").as_bool().unwrap_or(false))
            .filter_map(|s| Some((id_of(s.get("customer_id"))?, s.id)))
            .collect();
    Ok(customers
        .into_iter()
        .filter_map(|c| {
            let external = c.source.as_ref()?.external_id.to_lowercase();
            Some((
                external,
                ImportedCustomer {
                    customer_id: c.id,
                    name: c.text("name").unwrap_or_default().to_owned(),
                    main_site: main_sites.get(&c.id).copied(),
                },
            ))
        })
        .collect())
}

/// The subscriptions `connection` imported from `tenant_id`: what planning the tenant's
/// subscriptions compares with (and marks deleted when the source no longer lists them).
pub async fn load_subscriptions(
    tx: &mut StoreTx,
    connection: ConnectionId,
    tenant_id: &str,
) -> Result<Vec<DeskSourceRecord>, SyncError> {
    let scope = RecordScope::ImportedFromTenant {
        connection,
        tenant_id: tenant_id.to_owned(),
    };
    Ok(listed(tx, Entity::Subscription, Some(&scope))
        .await?
        .into_iter()
        .filter_map(|record| {
            Some(DeskSourceRecord {
                id: record.id,
                external_id: record.source.as_ref()?.external_id.to_lowercase(),
                fields: record.fields.into_iter().collect(),
            })
        })
        .collect())
}

/// The usage lines `connection` imported under these external ids (lower-cased): what planning
/// a read of usage compares with — the lines it names, not the tenant's whole history.
pub async fn load_usage_lines(
    tx: &mut StoreTx,
    connection: ConnectionId,
    external_ids: &[String],
) -> Result<Vec<DeskSourceRecord>, SyncError> {
    let mut out = Vec::new();
    for chunk in external_ids.chunks(500) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let ids: Vec<RecordId> = tx
            .ids_by_source(Entity::UsageLine, connection, &refs)
            .await?
            .into_values()
            .collect();
        if ids.is_empty() {
            continue;
        }
        out.extend(
            listed(tx, Entity::UsageLine, Some(&RecordScope::Ids(ids)))
                .await?
                .into_iter()
                .filter_map(|record| {
                    Some(DeskSourceRecord {
                        id: record.id,
                        external_id: record.source.as_ref()?.external_id.to_lowercase(),
                        fields: record.fields.into_iter().collect(),
                    })
                }),
        );
    }
    Ok(out)
}

/// The desk users and agents a page of `connection`'s read of `tenant_id` can match or change:
/// what the planner's [`DeskLookups`] name, found by index.
pub async fn load_page_records(
    tx: &mut StoreTx,
    connection: ConnectionId,
    tenant_id: &str,
    lookups: &DeskLookups,
) -> Result<(Vec<DeskRecord>, Vec<DeskRecord>), SyncError> {
    let scope = RecordScope::Lookup {
        connection,
        tenant_id: tenant_id.to_owned(),
        external_ids: lookups.external_ids.iter().cloned().collect(),
        by_column: lookups
            .match_values
            .iter()
            .map(|(field, values)| (field.desk_field().to_owned(), values.iter().cloned().collect()))
            .collect(),
    };
    let users = listed(tx, Entity::User, Some(&scope))
        .await?
        .into_iter()
        .map(desk_record)
        .collect();
    let agents = listed(tx, Entity::Agent, Some(&scope))
        .await?
        .into_iter()
        .map(desk_record)
        .collect();
    Ok((users, agents))
}

/// This connection's records a tenant's end reads ([`FinishLookups`]), each made compact as it is
/// read, keeping only those `wanted` says (the people the run did not read): a tenant of any size
/// costs a page of whole records at a time, and what is kept is what may be deactivated.
pub async fn load_connection_records(
    tx: &mut StoreTx,
    connection: ConnectionId,
    finish: &FinishLookups,
    wanted: impl Fn(&ConnectionRecord) -> bool,
) -> Result<Vec<ConnectionRecord>, SyncError> {
    let scope = RecordScope::OfConnectionTenant {
        connection,
        tenant_id: finish.tenant_id.clone(),
        external_ids: finish.external_ids.iter().cloned().collect(),
    };
    let mut out = Vec::new();
    for (entity, kind) in [
        (Entity::User, RecordKind::User),
        (Entity::Agent, RecordKind::Agent),
    ] {
        let mut after = None;
        loop {
            let page = tx.list_scoped(entity, &scope, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            out.extend(
                page.into_iter()
                    .filter_map(|r| ConnectionRecord::from_desk(&desk_record(r), kind, connection))
                    .filter(|r| wanted(r)),
            );
        }
    }
    Ok(out)
}

/// The tickets assigned to `agents` (of those this connection imported).
pub async fn load_tickets(
    tx: &mut StoreTx,
    connection: ConnectionId,
    agents: &BTreeSet<RecordId>,
) -> Result<Vec<DeskTicket>, SyncError> {
    if agents.is_empty() {
        return Ok(Vec::new());
    }
    Ok(listed(
        tx,
        Entity::Ticket,
        Some(&RecordScope::AssignedToAgentsOf(connection)),
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
    .filter(|t| t.agent_id.is_some_and(|a| agents.contains(&a)))
    .collect())
}
