//! Applying a plan to an in-memory desk snapshot: what the store does, without a database. The
//! pipeline uses it for previews of several steps; the tests use it to check that applying a
//! plan and planning again changes nothing.

use std::collections::BTreeMap;

use deskbridge_core::{ConnectionId, RecordId};
use serde_json::{Map, Value};

use crate::input::{
    DeskLicence, DeskRecord, DeskSite, DeskSnapshot, DeskSourceRecord, RecordLocks, SourceIdentity,
};
use crate::plan::{Action, Change, Entity, Plan, Reference};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("the {entity} change for '{external_id}' updates a record, but the plan names none")]
    MissingTarget {
        entity: &'static str,
        external_id: String,
    },
    #[error("the plan updates {entity} {id}, which is not in the snapshot")]
    UnknownRecord { entity: &'static str, id: RecordId },
    #[error(
        "the {entity} '{external_id}' field '{field}' refers to {reference}, which neither exists nor is created by the plan"
    )]
    UnresolvedReference {
        entity: &'static str,
        external_id: String,
        field: String,
        reference: String,
    },
    #[error("the new {entity} '{external_id}' lacks {field}")]
    Incomplete {
        entity: &'static str,
        external_id: String,
        field: &'static str,
    },
}

/// A plan that does not fit the snapshot it is applied to is a bug in its caller.
impl deskbridge_core::HasErrorCode for ApplyError {
    fn error_code(&self) -> deskbridge_core::ErrorCode {
        deskbridge_core::ErrorCode::Internal
    }
}

/// Fields of a licence record kept in [`DeskLicence::fields`].
const LICENCE_COLUMNS: [&str; 5] = [
    "part_number",
    "friendly_name",
    "total_units",
    "consumed_units",
    "capability_status",
];

/// Applies `plan.changes` (never the held tenants') to a copy of `snapshot`. New records get the
/// next free ids; symbolic references are resolved after every record exists, so the order of
/// changes does not matter.
pub fn apply_to_snapshot(
    snapshot: &DeskSnapshot,
    plan: &Plan,
    connection_id: ConnectionId,
) -> Result<DeskSnapshot, ApplyError> {
    let mut desk = snapshot.clone();
    let next = |ids: &mut dyn Iterator<Item = RecordId>| ids.map(|id| id.0).max().unwrap_or(0) + 1;
    let mut next_user = next(&mut desk.users.iter().map(|r| r.id));
    let mut next_agent = next(&mut desk.agents.iter().map(|r| r.id));
    let mut next_site = next(&mut desk.sites.iter().map(|s| s.id));
    let mut next_licence = next(&mut desk.licences.iter().map(|l| l.id));
    let mut next_subscription = next(&mut desk.subscriptions.iter().chain(&desk.usage_lines).map(|s| s.id));
    // Positions of the records that existed before: updates only ever target those.
    let positions = |records: &[DeskRecord]| -> BTreeMap<RecordId, usize> {
        records
            .iter()
            .enumerate()
            .map(|(position, record)| (record.id, position))
            .collect()
    };
    let user_positions = positions(&desk.users);
    let agent_positions = positions(&desk.agents);

    for change in plan.changes.iter().filter(|c| c.action.writes()) {
        let after = |field: &str| {
            change
                .fields
                .get(field)
                .map(|f| f.after.clone())
                .unwrap_or(Value::Null)
        };
        let incomplete = |field: &'static str| ApplyError::Incomplete {
            entity: change.entity.as_str(),
            external_id: change.external_id.clone(),
            field,
        };
        match (change.entity, change.action) {
            (Entity::Site, Action::Create) => {
                let customer = after("customer_id")
                    .as_i64()
                    .ok_or_else(|| incomplete("customer_id"))?;
                let name = after("name")
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| incomplete("name"))?;
                desk.sites.push(DeskSite {
                    id: RecordId(next_site),
                    customer_id: RecordId(customer),
                    name,
                    is_main: after("is_main").as_bool().unwrap_or(false),
                    fields: BTreeMap::new(),
                });
                next_site += 1;
            }
            (Entity::Licence, Action::Create) => {
                let sku_id = after("sku_id")
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| incomplete("sku_id"))?;
                desk.licences.push(DeskLicence {
                    id: RecordId(next_licence),
                    sku_id,
                    customer_id: after("customer_id").as_i64().map(RecordId),
                    fields: licence_fields(change),
                });
                next_licence += 1;
            }
            (entity @ (Entity::Subscription | Entity::UsageLine), Action::Create) => {
                let records = if entity == Entity::Subscription {
                    &mut desk.subscriptions
                } else {
                    &mut desk.usage_lines
                };
                records.push(DeskSourceRecord {
                    id: RecordId(next_subscription),
                    external_id: change.external_id.clone(),
                    fields: change
                        .fields
                        .iter()
                        .map(|(name, field)| (name.clone(), field.after.clone()))
                        .collect(),
                });
                next_subscription += 1;
            }
            (Entity::User | Entity::Agent, Action::Create) => {
                let (records, next_id) = match change.entity {
                    Entity::User => (&mut desk.users, &mut next_user),
                    _ => (&mut desk.agents, &mut next_agent),
                };
                let fields: Map<String, Value> = change
                    .fields
                    .iter()
                    .filter(|(_, f)| !f.after.is_null())
                    .map(|(name, f)| (name.clone(), f.after.clone()))
                    .collect();
                records.push(DeskRecord {
                    id: RecordId(*next_id),
                    source: Some(SourceIdentity {
                        connection_id,
                        external_id: change.external_id.clone(),
                    }),
                    fields,
                    locks: RecordLocks::default(),
                });
                *next_id += 1;
            }
            (entity, _) => {
                // A change without a target updates the record this connection created for the
                // external id earlier in the run (a line manager linked at a tenant's end).
                let created_earlier = || {
                    let records = match entity {
                        Entity::User => &desk.users,
                        Entity::Agent => &desk.agents,
                        _ => return None,
                    };
                    let mut carrying = records.iter().filter(|r| {
                        r.source.as_ref().is_some_and(|s| {
                            s.connection_id == connection_id
                                && s.external_id.eq_ignore_ascii_case(&change.external_id)
                        })
                    });
                    match (carrying.next(), carrying.next()) {
                        (Some(only), None) => Some(only.id),
                        _ => None,
                    }
                };
                let id = plan.target_of(change).or_else(created_earlier).ok_or_else(|| {
                    ApplyError::MissingTarget {
                        entity: entity.as_str(),
                        external_id: change.external_id.clone(),
                    }
                })?;
                let unknown = || ApplyError::UnknownRecord {
                    entity: entity.as_str(),
                    id,
                };
                match entity {
                    Entity::Ticket => {
                        let ticket = desk.tickets.iter_mut().find(|t| t.id == id).ok_or_else(unknown)?;
                        if let Some(field) = change.fields.get("agent_id") {
                            ticket.agent_id = field.after.as_i64().map(RecordId);
                        }
                        if let Some(field) = change.fields.get("team_id") {
                            ticket.team_id = field.after.as_i64().map(RecordId);
                        }
                    }
                    Entity::Licence => {
                        let licence = desk
                            .licences
                            .iter_mut()
                            .find(|l| l.id == id)
                            .ok_or_else(unknown)?;
                        for (name, value) in licence_fields(change) {
                            licence.fields.insert(name, value);
                        }
                    }
                    Entity::User | Entity::Agent => {
                        let (records, positions) = if entity == Entity::User {
                            (&mut desk.users, &user_positions)
                        } else {
                            (&mut desk.agents, &agent_positions)
                        };
                        let position = positions
                            .get(&id)
                            .copied()
                            .or_else(|| records.iter().position(|r| r.id == id));
                        let record = position
                            .and_then(|position| records.get_mut(position))
                            .ok_or_else(unknown)?;
                        for (name, field) in &change.fields {
                            if field.after.is_null() {
                                record.fields.remove(name);
                            } else {
                                record.fields.insert(name.clone(), field.after.clone());
                            }
                        }
                        if record.source.is_none() || change.action == Action::Link {
                            record.source = Some(SourceIdentity {
                                connection_id,
                                external_id: change.external_id.clone(),
                            });
                        }
                    }
                    Entity::Subscription | Entity::UsageLine => {
                        let records = if entity == Entity::Subscription {
                            &mut desk.subscriptions
                        } else {
                            &mut desk.usage_lines
                        };
                        let subscription = records.iter_mut().find(|s| s.id == id).ok_or_else(unknown)?;
                        for (name, field) in &change.fields {
                            subscription.fields.insert(name.clone(), field.after.clone());
                        }
                    }
                    // Asset, custom-row and customer plans are applied to their own snapshots
                    // (`apply_assets`, `apply_rows`, `apply_customers`), not this one.
                    Entity::Site
                    | Entity::AssetType
                    | Entity::Asset
                    | Entity::CustomRow
                    | Entity::Customer => {
                        return Err(unknown());
                    }
                }
            }
        }
    }
    resolve_references(&mut desk, connection_id)?;
    Ok(desk)
}

fn licence_fields(change: &Change) -> BTreeMap<String, Value> {
    change
        .fields
        .iter()
        .filter(|(name, _)| LICENCE_COLUMNS.contains(&name.as_str()))
        .map(|(name, field)| (name.clone(), field.after.clone()))
        .collect()
}

struct Resolver {
    users: BTreeMap<String, RecordId>,
    agents: BTreeMap<String, RecordId>,
    sites: BTreeMap<(i64, String), RecordId>,
    licences: BTreeMap<(Option<i64>, String), RecordId>,
}

impl Resolver {
    fn resolve(&self, reference: &Reference) -> Option<RecordId> {
        match reference {
            Reference::Id(id) => Some(*id),
            Reference::NewSite { customer_id, name } => {
                self.sites.get(&(customer_id.0, name.to_lowercase())).copied()
            }
            Reference::NewUser(object_id) => self.users.get(&object_id.to_ascii_lowercase()).copied(),
            Reference::NewAgent(object_id) => self.agents.get(&object_id.to_ascii_lowercase()).copied(),
            Reference::NewLicence { customer_id, sku_id } => self
                .licences
                .get(&(customer_id.map(|c| c.0), sku_id.to_lowercase()))
                .copied(),
            Reference::NewAssetType(_) => None,
        }
    }
}

fn resolve_references(desk: &mut DeskSnapshot, connection_id: ConnectionId) -> Result<(), ApplyError> {
    let by_source = |records: &[DeskRecord]| -> BTreeMap<String, RecordId> {
        records
            .iter()
            .filter_map(|r| {
                let source = r.source.as_ref().filter(|s| s.connection_id == connection_id)?;
                Some((source.external_id.to_ascii_lowercase(), r.id))
            })
            .collect()
    };
    let resolver = Resolver {
        users: by_source(&desk.users),
        agents: by_source(&desk.agents),
        sites: desk
            .sites
            .iter()
            .map(|s| ((s.customer_id.0, s.name.to_lowercase()), s.id))
            .collect(),
        licences: desk
            .licences
            .iter()
            .rev()
            .map(|l| ((l.customer_id.map(|c| c.0), l.sku_id.to_lowercase()), l.id))
            .collect(),
    };
    for (entity, records) in [("user", &mut desk.users), ("agent", &mut desk.agents)] {
        for record in records.iter_mut() {
            let external_id = record
                .source
                .as_ref()
                .map(|s| s.external_id.clone())
                .unwrap_or_default();
            for (name, value) in record.fields.iter_mut() {
                let unresolved = |value: &Value| ApplyError::UnresolvedReference {
                    entity,
                    external_id: external_id.clone(),
                    field: name.clone(),
                    reference: value.to_string(),
                };
                match value {
                    Value::Object(_) => {
                        let Some(reference) = Reference::from_value(value) else {
                            continue;
                        };
                        let id = resolver.resolve(&reference).ok_or_else(|| unresolved(value))?;
                        *value = Value::from(id.0);
                    }
                    // Sets of ids (`licences`) may hold references; resolved, they are kept
                    // ascending like every id set.
                    Value::Array(items) if items.iter().any(Value::is_object) => {
                        let mut ids = Vec::with_capacity(items.len());
                        for item in items.iter() {
                            match Reference::from_value(item) {
                                Some(reference) if item.is_object() => {
                                    ids.push(resolver.resolve(&reference).ok_or_else(|| unresolved(item))?.0);
                                }
                                Some(Reference::Id(id)) => ids.push(id.0),
                                _ => {
                                    ids.clear();
                                    break;
                                }
                            }
                        }
                        if ids.len() == items.len() {
                            ids.sort_unstable();
                            ids.dedup();
                            *value = Value::Array(ids.into_iter().map(Value::from).collect());
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}
