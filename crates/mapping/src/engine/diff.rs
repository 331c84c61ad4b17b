//! Diffing: the wanted state of a desk user or agent against its record, through the locks, into
//! one change (create, link, reactivate — or an update or deactivation, deferred to the tenant's
//! end for the circuit breaker); and the canonical shapes of desk values (id sets, teams, CABs) and their equality.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::DeferredChange;
use super::matching::{Match, RecordIndex};
use super::page::PagePlanner;
use crate::config::{MappingConfig, RecordKind};
use crate::input::{DeskRecord, SourceUser};
use crate::plan::{Action, Change, Entity, FieldChange, LockedChange, Plan};

/// The desk record a match names, if any.
pub(crate) fn existing<'s>(index: &RecordIndex<'s>, matched: &Match) -> Option<&'s DeskRecord> {
    match matched {
        Match::ByObjectId(i) | Match::ByField { index: i, .. } => index.records.get(*i),
        Match::New | Match::Conflict { .. } => None,
    }
}

impl PagePlanner<'_, '_> {
    /// Turns the wanted state of one record into a change: a create when there is no record,
    /// otherwise the fields that differ and no lock protects.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn diff(
        &mut self,
        kind: RecordKind,
        user: &SourceUser,
        existing: Option<&DeskRecord>,
        matched: &Match,
        desired: BTreeMap<String, (Value, String)>,
        rule: &str,
        head: String,
        deactivation_rule: Option<String>,
    ) {
        let entity = match kind {
            RecordKind::User => Entity::User,
            RecordKind::Agent => Entity::Agent,
        };
        let Some(record) = existing else {
            let fields: BTreeMap<String, FieldChange> = desired
                .iter()
                .filter(|(_, (value, _))| !is_empty(value))
                .map(|(field, (value, _))| {
                    (
                        field.clone(),
                        FieldChange {
                            before: Value::Null,
                            after: value.clone(),
                        },
                    )
                })
                .collect();
            let origins = desired
                .iter()
                .filter(|(_, (value, why))| !is_empty(value) && !why.is_empty())
                .map(|(field, (_, why))| format!("{field} ← {why}"))
                .collect::<Vec<_>>()
                .join("; ");
            let change = Change {
                entity,
                external_id: user.external_id.clone(),
                name: Some(user.label()),
                action: Action::Create,
                fields,
                rule: rule.to_owned(),
                reason: format!("New {}: {head}. {origins}.", entity.as_str()),
            };
            self.push(change);
            return;
        };
        let mut fields = BTreeMap::new();
        let mut origins = Vec::new();
        for (field, (wanted, why)) in desired {
            let current = record.fields.get(&field).cloned().unwrap_or(Value::Null);
            if same(&current, &wanted) {
                continue;
            }
            if let Some(lock) = lock_for(self.settings, kind, record, &field, &wanted) {
                self.out().locked.push(LockedChange {
                    entity,
                    external_id: user.external_id.clone(),
                    field: field.clone(),
                    current,
                    wanted,
                    lock,
                });
                continue;
            }
            if !why.is_empty() {
                origins.push(format!("{field} ← {why}"));
            }
            fields.insert(
                field,
                FieldChange {
                    before: current,
                    after: wanted,
                },
            );
        }
        let becomes = fields
            .get("active")
            .map(|change| change.after.as_bool().unwrap_or(true));
        let (action, rule, head) = match (matched, becomes) {
            (Match::ByField { field, value, .. }, _) => (
                Action::Link,
                rule.to_owned(),
                format!(
                    "{head}; linked to existing desk {} {} matched on {} '{value}'",
                    entity.as_str(),
                    record.label(),
                    field.desk_field()
                ),
            ),
            (_, Some(false)) if record.is_active() => (
                Action::Deactivate,
                deactivation_rule.unwrap_or_else(|| rule.to_owned()),
                head,
            ),
            (_, Some(true)) if !record.is_active() => (Action::Reactivate, rule.to_owned(), head),
            _ if fields.is_empty() => {
                self.out().unchanged += 1;
                return;
            }
            _ => (Action::Update, rule.to_owned(), head),
        };
        let change = Change {
            entity,
            external_id: user.external_id.clone(),
            name: Some(user.label()),
            action,
            fields,
            rule,
            reason: format!(
                "{head}. {}.",
                if origins.is_empty() {
                    "No field changes".into()
                } else {
                    origins.join("; ")
                }
            ),
        };
        if matches!(action, Action::Deactivate | Action::Update) {
            // Held back until the tenant's end: the circuit breaker counts deactivations with the
            // records found absent, and updates by field (moves and mass changes), and may hold
            // either. Links and reactivations are not counted: they apply with their page.
            let deferred = DeferredChange {
                change,
                target: record.id,
                agent_label: (kind == RecordKind::Agent && action == Action::Deactivate)
                    .then(|| record.label()),
                active: record.is_active(),
            };
            if let Some(tenant) = self.run.tenants.get_mut(&self.tenant_id) {
                match action {
                    Action::Deactivate => tenant.deactivations.push(deferred),
                    _ => tenant.updates.push(deferred),
                }
            }
            return;
        }
        self.out()
            .targets
            .insert(Plan::target_key(entity, &user.external_id), record.id);
        self.push(change);
    }
}

/// The lock that keeps `field` of `record` from becoming `wanted`, named for the plan.
pub(crate) fn lock_for(
    settings: &MappingConfig,
    kind: RecordKind,
    record: &DeskRecord,
    field: &str,
    wanted: &Value,
) -> Option<String> {
    let external_id = record
        .source
        .as_ref()
        .map(|s| s.external_id.as_str())
        .or_else(|| record.text("azure_object_id"));
    let configured = settings.record_locks.iter().find(|lock| {
        lock.entity == kind && external_id.is_some_and(|id| id.eq_ignore_ascii_case(&lock.external_id))
    });
    let deactivating = field == "active" && wanted == &Value::Bool(false);
    if deactivating && record.locks.keep_active {
        return Some("record lock: keep active".into());
    }
    if deactivating && configured.is_some_and(|lock| lock.keep_active) {
        return Some("record lock (configuration): keep active".into());
    }
    if record.locks.fields.contains(field) {
        return Some(format!("record lock: never overwrite '{field}'"));
    }
    if configured.is_some_and(|lock| lock.fields.iter().any(|f| f == field)) {
        return Some(format!("record lock (configuration): never overwrite '{field}'"));
    }
    settings
        .field_locks
        .iter()
        .any(|lock| lock.entity == kind && lock.field == field)
        .then(|| format!("field lock: never overwrite '{field}' on any {}", kind_name(kind)))
}

pub(crate) fn kind_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::User => "user",
        RecordKind::Agent => "agent",
    }
}

pub(crate) fn describe_sources(sources: &BTreeMap<i64, String>, what: &str) -> String {
    sources
        .iter()
        .map(|(id, why)| format!("{what} {id} from {why}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// Equality of desk values, where null, a missing value and an empty set are alike and numbers
/// compare by value.
pub(crate) fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, value)| y.get(key).is_some_and(|other| same(value, other)))
        }
        _ if is_empty(a) && is_empty(b) => true,
        _ => a == b,
    }
}

pub(crate) fn ids_of(value: Option<&Value>) -> BTreeSet<i64> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

pub(crate) fn ids_value(ids: &BTreeSet<i64>) -> Value {
    Value::Array(ids.iter().map(|id| json!(id)).collect())
}

pub(crate) fn teams_of(value: Option<&Value>) -> BTreeMap<i64, [bool; 3]> {
    let flag =
        |entry: &Map<String, Value>, name: &str| entry.get(name).and_then(Value::as_bool).unwrap_or(false);
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_object)
                .filter_map(|entry| {
                    let team = entry.get("team_id")?.as_i64()?;
                    Some((
                        team,
                        [
                            flag(entry, "can_be_assigned"),
                            flag(entry, "can_see_unassigned"),
                            flag(entry, "can_see_others_tickets"),
                        ],
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn teams_value(teams: &BTreeMap<i64, [bool; 3]>) -> Value {
    Value::Array(
        teams
            .iter()
            .map(|(team, [assigned, unassigned, others])| {
                json!({"team_id": team, "can_be_assigned": assigned, "can_see_unassigned": unassigned, "can_see_others_tickets": others})
            })
            .collect(),
    )
}

pub(crate) fn cabs_of(value: Option<&Value>) -> BTreeMap<i64, Option<i64>> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|entry| {
                    Some((
                        entry.get("cab_id")?.as_i64()?,
                        entry.get("cab_role_id").and_then(Value::as_i64),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn cabs_value(cabs: &BTreeMap<i64, Option<i64>>) -> Value {
    Value::Array(
        cabs.iter()
            .map(|(cab, role)| json!({"cab_id": cab, "cab_role_id": role}))
            .collect(),
    )
}
