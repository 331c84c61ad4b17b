//! The desk side of planning: what the store holds, as the mapping engine reads it.

use std::collections::BTreeSet;

use deskbridge_core::RecordId;
use deskbridge_mapping::{
    Catalog, CatalogSite, CustomField, CustomFieldEntity, CustomFieldType, DeskLicence, DeskRecord, DeskSite,
    DeskSnapshot, DeskTicket, NamedRecord, RecordLocks, SourceIdentity,
};
use deskbridge_store::{Entity, Record, StoreTx};
use serde_json::Value;

use crate::SyncError;

const PAGE: u32 = 1_000;

async fn all(tx: &mut StoreTx, entity: Entity) -> Result<Vec<Record>, SyncError> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = tx.list(entity, after, PAGE).await?;
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

/// The desk records a plan reads: users, agents, sites, licences and tickets.
pub async fn load_snapshot(tx: &mut StoreTx) -> Result<DeskSnapshot, SyncError> {
    let users = all(tx, Entity::User)
        .await?
        .into_iter()
        .map(desk_record)
        .collect();
    let agents = all(tx, Entity::Agent)
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
    let licences = all(tx, Entity::Licence)
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
    let tickets = all(tx, Entity::Ticket)
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
