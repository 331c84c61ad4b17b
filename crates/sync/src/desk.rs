//! The desk side of planning: what the store holds, as the mapping engine reads it.

use std::collections::BTreeSet;

use deskbridge_core::{ConnectionId, RecordId};
use deskbridge_mapping::{
    DeskLicence, DeskRecord, DeskSite, DeskSnapshot, DeskTicket, MappingConfig, RecordLocks, SiteTarget,
    SourceIdentity,
};
use deskbridge_source::desk::{id_of, listed};
use deskbridge_store::{Entity, Record, RecordScope, StoreTx};

use crate::SyncError;

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
