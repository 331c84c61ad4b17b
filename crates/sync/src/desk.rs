//! The desk side of planning: what the store holds, as the mapping engine reads it.

use std::collections::BTreeSet;

use deskbridge_core::{ConnectionId, RecordId};
use deskbridge_mapping::{
    Catalog, CatalogSite, CustomField, CustomFieldEntity, CustomFieldType, DeskLicence, DeskRecord, DeskSite,
    DeskSnapshot, DeskTicket, NamedRecord, RecordLocks, SourceIdentity,
};
use deskbridge_store::{Entity, Record, RecordScope, StoreTx};
use serde_json::Value;

use crate::SyncError;

const PAGE: u32 = 1_000;

async fn all(tx: &mut StoreTx, entity: Entity) -> Result<Vec<Record>, SyncError> {
    listed(tx, entity, None).await
}

/// Every record of `entity` (in `scope` when given), page by page.
async fn listed(
    tx: &mut StoreTx,
    entity: Entity,
    scope: Option<&RecordScope>,
) -> Result<Vec<Record>, SyncError> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = match scope {
            Some(scope) => tx.list_scoped(entity, scope, after, PAGE).await?,
            None => tx.list(entity, after, PAGE).await?,
        };
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        out.extend(page);
    }
    Ok(out)
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
}

/// The desk records a plan of `scope`'s connection reads: the users and agents it can match or
/// change, every site, the licences of its customer, and the tickets of its agents. The rest of
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
    let sites = all(tx, Entity::Site)
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
    Ok(all(tx, entity)
        .await?
        .into_iter()
        .filter_map(|r| {
            Some(NamedRecord {
                id: r.id,
                name: r.text("name")?.to_owned(),
            })
        })
        .collect())
}

/// What exists on the desk (and which groups the tenant has), for validating mappings.
pub async fn load_catalog(tx: &mut StoreTx, groups: BTreeSet<String>) -> Result<Catalog, SyncError> {
    let sites = all(tx, Entity::Site)
        .await?
        .into_iter()
        .filter_map(|s| {
            Some(CatalogSite {
                id: s.id,
                customer_id: id_of(s.get("customer_id"))?,
                name: s.text("name")?.to_owned(),
                fields: s.fields.clone(),
            })
        })
        .collect();
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
        customers: named(tx, Entity::Customer).await?,
        sites,
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
