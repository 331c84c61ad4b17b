//! Applying a plan to an in-memory desk snapshot: what the store does, without a database. The
//! pipeline uses it for previews of several steps; the tests use it to check that applying a
//! plan and planning again changes nothing.

use std::collections::BTreeMap;

use deskbridge_core::{ConnectionId, RecordId};
use serde_json::{Map, Value};

use crate::input::{DeskRecord, DeskSite, DeskSnapshot, RecordLocks, SourceIdentity};
use crate::plan::{Action, Entity, Plan, Reference};

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
    #[error("the new site '{external_id}' lacks {field}")]
    IncompleteSite {
        external_id: String,
        field: &'static str,
    },
}

impl ApplyError {
    /// A plan that does not fit the snapshot it is applied to is a bug in its caller.
    pub fn code(&self) -> deskbridge_core::ErrorCode {
        deskbridge_core::ErrorCode::Internal
    }
}

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
        match (change.entity, change.action) {
            (Entity::Site, Action::Create) => {
                let customer = after("customer_id")
                    .as_i64()
                    .ok_or_else(|| ApplyError::IncompleteSite {
                        external_id: change.external_id.clone(),
                        field: "customer_id",
                    })?;
                let name =
                    after("name")
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| ApplyError::IncompleteSite {
                            external_id: change.external_id.clone(),
                            field: "name",
                        })?;
                desk.sites.push(DeskSite {
                    id: RecordId(next_site),
                    customer_id: RecordId(customer),
                    name,
                    is_main: after("is_main").as_bool().unwrap_or(false),
                    fields: BTreeMap::new(),
                });
                next_site += 1;
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
                let id = plan.target_of(change).ok_or_else(|| ApplyError::MissingTarget {
                    entity: entity.as_str(),
                    external_id: change.external_id.clone(),
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
                    Entity::User | Entity::Agent => {
                        let (records, positions) = if entity == Entity::User {
                            (&mut desk.users, &user_positions)
                        } else {
                            (&mut desk.agents, &agent_positions)
                        };
                        let record = positions
                            .get(&id)
                            .and_then(|position| records.get_mut(*position))
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
                    Entity::Site => return Err(unknown()),
                }
            }
        }
    }
    resolve_references(&mut desk, connection_id)?;
    Ok(desk)
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
    let users = by_source(&desk.users);
    let agents = by_source(&desk.agents);
    let sites: BTreeMap<(i64, String), RecordId> = desk
        .sites
        .iter()
        .map(|s| ((s.customer_id.0, s.name.to_lowercase()), s.id))
        .collect();
    for (entity, records) in [("user", &mut desk.users), ("agent", &mut desk.agents)] {
        for record in records.iter_mut() {
            for (name, value) in record.fields.iter_mut() {
                if !value.is_object() {
                    continue;
                }
                let Some(reference) = Reference::from_value(value) else {
                    continue;
                };
                let resolved = match &reference {
                    Reference::Id(id) => Some(*id),
                    Reference::NewSite { customer_id, name } => {
                        sites.get(&(customer_id.0, name.to_lowercase())).copied()
                    }
                    Reference::NewUser(object_id) => users.get(&object_id.to_ascii_lowercase()).copied(),
                    Reference::NewAgent(object_id) => agents.get(&object_id.to_ascii_lowercase()).copied(),
                };
                match resolved {
                    Some(id) => *value = Value::from(id.0),
                    None => {
                        return Err(ApplyError::UnresolvedReference {
                            entity,
                            external_id: record
                                .source
                                .as_ref()
                                .map(|s| s.external_id.clone())
                                .unwrap_or_default(),
                            field: name.clone(),
                            reference: value.to_string(),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}
