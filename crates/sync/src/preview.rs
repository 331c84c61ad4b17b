//! What a preview adds for people to the plan's changes: each change's record named (the
//! planner names what it read; the desk names the rest: the record a change updates, a site's
//! customer), a count per action, skips counted by reason, the names of the desk records an
//! agent's or user's fields refer to by id (roles, teams, CABs), and in delta mode what the
//! preview covers. Nothing here writes.

use std::collections::{BTreeMap, HashMap};

use deskbridge_core::{ConnectionId, RecordId};
use deskbridge_mapping::{Action, Change, Entity as PlanEntity, Plan};
use deskbridge_store::{Entity, Store, StoreTx};
use serde::Serialize;
use serde_json::Value;

use crate::SyncError;

/// The counts a preview shows above its changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PreviewSummary {
    /// Changes per action (`create`, `update`, `deactivate`, `skip`, `conflict`, …), errors
    /// under `error`.
    pub actions: BTreeMap<String, usize>,
    /// Skipped records per reason ("matched no site mapping", the mapping that skipped them).
    pub skipped: BTreeMap<String, usize>,
    /// What a delta preview covers, for people; `None` for a full read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub covers: Option<String>,
    /// The desk names of the records the changes' fields refer to by id, per kind of record
    /// (`agent_role`, `user_role`, `team`, `cab`, `cab_role`) and id: the changes' `fields`
    /// keep the ids, as the plan does, and these name them. A record no longer on the desk has
    /// no entry.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub names: BTreeMap<String, BTreeMap<String, String>>,
}

impl PreviewSummary {
    /// The desk name of the `kind` record `id` (see [`PreviewSummary::names`]), if the preview has it.
    pub fn name_of(&self, kind: &str, id: &Value) -> Option<&str> {
        let id = id.as_i64()?;
        self.names.get(kind)?.get(&id.to_string()).map(String::as_str)
    }

    /// A field's value for people when the field refers to roles, teams or CABs by id: each id
    /// followed by its desk name (`role 3 "Service desk"`, `team 1 "First line" (assign,
    /// unassigned)`, `none`); `None` for any other field.
    pub fn describe(&self, entity: PlanEntity, field: &str, value: &Value) -> Option<String> {
        let named = |kind: &str, id: &Value| match self.name_of(kind, id) {
            Some(name) => format!("{id} {name:?}"),
            None => id.to_string(),
        };
        let list = |items: &[Value], one: &dyn Fn(&Value) -> String| {
            if items.is_empty() {
                "none".to_owned()
            } else {
                items.iter().map(one).collect::<Vec<_>>().join("; ")
            }
        };
        let kinds = reference_kinds(entity, field)?;
        Some(match (kinds, value) {
            (_, Value::Null) => "none".to_owned(),
            (References::Ids(kind), Value::Array(items)) => {
                list(items, &|id| format!("{} {}", kind.word(), named(kind.key(), id)))
            }
            (References::Ids(kind), id) => {
                format!("{} {}", kind.word(), named(kind.key(), id))
            }
            (References::Teams, Value::Array(items)) => list(items, &|item| {
                let flags: Vec<&str> = [
                    ("can_be_assigned", "assign"),
                    ("can_see_unassigned", "unassigned"),
                    ("can_see_others_tickets", "others"),
                ]
                .iter()
                .filter(|(key, _)| item.get(*key).and_then(Value::as_bool).unwrap_or(false))
                .map(|(_, word)| *word)
                .collect();
                format!(
                    "team {} ({})",
                    named(Entity::Team.name(), item.get("team_id").unwrap_or(&Value::Null)),
                    flags.join(", ")
                )
            }),
            (References::Cabs, Value::Array(items)) => list(items, &|item| {
                let cab = named(Entity::Cab.name(), item.get("cab_id").unwrap_or(&Value::Null));
                match item.get("cab_role_id").filter(|role| !role.is_null()) {
                    Some(role) => format!("CAB {cab} (role {})", named(Entity::CabRole.name(), role)),
                    None => format!("CAB {cab}"),
                }
            }),
            (_, other) => other.to_string(),
        })
    }
}

/// A kind of desk record a field refers to by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    AgentRole,
    UserRole,
    Team,
}

impl Kind {
    fn key(self) -> &'static str {
        self.entity().name()
    }

    fn word(self) -> &'static str {
        match self {
            Self::AgentRole | Self::UserRole => "role",
            Self::Team => "team",
        }
    }

    fn entity(self) -> Entity {
        match self {
            Self::AgentRole => Entity::AgentRole,
            Self::UserRole => Entity::UserRole,
            Self::Team => Entity::Team,
        }
    }
}

/// How a field refers to desk records.
enum References {
    /// An id, or an array of ids, of one kind.
    Ids(Kind),
    /// Agents' `teams`: `{team_id, can_be_assigned, …}` objects.
    Teams,
    /// `cabs`: `{cab_id, cab_role_id}` objects.
    Cabs,
}

/// What records a person's field refers to by id, if it does.
fn reference_kinds(entity: PlanEntity, field: &str) -> Option<References> {
    match (entity, field) {
        (PlanEntity::Agent, "roles") => Some(References::Ids(Kind::AgentRole)),
        (PlanEntity::User, "roles") => Some(References::Ids(Kind::UserRole)),
        (PlanEntity::Agent, "default_team_id") => Some(References::Ids(Kind::Team)),
        (PlanEntity::Agent, "teams") => Some(References::Teams),
        (PlanEntity::Agent | PlanEntity::User, "cabs") => Some(References::Cabs),
        _ => None,
    }
}

/// The (desk entity, id) pairs a change's fields refer to, before and after.
fn referenced(change: &Change) -> Vec<(Entity, i64)> {
    let mut out = Vec::new();
    for (field, values) in &change.fields {
        let Some(kinds) = reference_kinds(change.entity, field) else {
            continue;
        };
        for value in [&values.before, &values.after] {
            let items = match value {
                Value::Array(items) => items.as_slice(),
                other => std::slice::from_ref(other),
            };
            for item in items {
                match kinds {
                    References::Ids(kind) => out.extend(item.as_i64().map(|id| (kind.entity(), id))),
                    References::Teams => {
                        out.extend(
                            item.get("team_id")
                                .and_then(Value::as_i64)
                                .map(|id| (Entity::Team, id)),
                        );
                    }
                    References::Cabs => {
                        out.extend(
                            item.get("cab_id")
                                .and_then(Value::as_i64)
                                .map(|id| (Entity::Cab, id)),
                        );
                        out.extend(
                            item.get("cab_role_id")
                                .and_then(Value::as_i64)
                                .map(|id| (Entity::CabRole, id)),
                        );
                    }
                }
            }
        }
    }
    out
}

/// The desk names of every record the changes' fields refer to by id (see
/// [`PreviewSummary::names`]), each read once.
async fn reference_names(
    store: &Store,
    changes: &[Change],
) -> Result<BTreeMap<String, BTreeMap<String, String>>, SyncError> {
    let wanted: std::collections::BTreeSet<(&'static str, Entity, i64)> = changes
        .iter()
        .flat_map(referenced)
        .map(|(entity, id)| (entity.name(), entity, id))
        .collect();
    let mut names: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    if wanted.is_empty() {
        return Ok(names);
    }
    let mut tx = store.read().await?;
    for (key, entity, id) in wanted {
        if let Some(name) = record_name(&mut tx, entity, RecordId(id)).await? {
            names
                .entry(key.to_owned())
                .or_default()
                .insert(id.to_string(), name);
        }
    }
    tx.commit().await?;
    Ok(names)
}

/// Why a skip was skipped, short enough to count by: the rule that decided it.
pub fn skip_reason(change: &Change) -> String {
    match change.rule.as_str() {
        "site mappings" => "matched no site mapping".to_owned(),
        rule => rule.to_owned(),
    }
}

/// Names every change the planner left unnamed, from the desk: the record it updates (its
/// name), or a new record's name field; and adds a site's or licence's customer to its name.
pub(crate) async fn name_changes(
    store: &Store,
    plan: &Plan,
    changes: &mut [Change],
) -> Result<(), SyncError> {
    let mut tx = store.read().await?;
    let mut customers: HashMap<i64, Option<String>> = HashMap::new();
    for change in changes.iter_mut() {
        if change.name.is_none() {
            change.name = field_name(change);
        }
        if change.name.is_none()
            && let (Some(id), Some(entity)) =
                (plan.target_of(change), crate::apply::store_entity(change.entity))
        {
            change.name = tx.get(entity, id).await?.as_ref().and_then(record_text_name);
        }
        // A site or licence belongs to a customer: its name says which.
        if matches!(change.entity, PlanEntity::Site | PlanEntity::Licence)
            && let Some(customer) = site_customer(change)
        {
            let customer_name = match customers.get(&customer) {
                Some(name) => name.clone(),
                None => {
                    let name = record_name(&mut tx, Entity::Customer, RecordId(customer)).await?;
                    customers.insert(customer, name.clone());
                    name
                }
            };
            if let (Some(site), Some(customer)) = (&change.name, customer_name) {
                change.name = Some(format!("{site} (customer {customer})"));
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The summary of a preview's changes (all of them, before any filter by action).
pub(crate) async fn summarise(
    store: &Store,
    connection: ConnectionId,
    mode: &str,
    changes: &[Change],
    errors: usize,
) -> Result<PreviewSummary, SyncError> {
    let mut summary = counted(changes, errors);
    summary.names = reference_names(store, changes).await?;
    if mode == "delta" {
        let mut tx = store.read().await?;
        let since = tx.cursors_updated_at(connection).await?;
        tx.commit().await?;
        summary.covers = Some(format!(
            "changes since the last delta round{}; records that did not change are not shown; a full \
             preview (`--full`, \"Full preview\") reads everything and moves no cursor",
            since.map(|at| format!(" on {at}")).unwrap_or_default()
        ));
    }
    Ok(summary)
}

/// Changes per action and skips per reason.
fn counted(changes: &[Change], errors: usize) -> PreviewSummary {
    let mut summary = PreviewSummary::default();
    for change in changes {
        *summary
            .actions
            .entry(change.action.as_str().to_owned())
            .or_default() += 1;
        if change.action == Action::Skip {
            *summary.skipped.entry(skip_reason(change)).or_default() += 1;
        }
    }
    if errors > 0 {
        summary.actions.insert("error".to_owned(), errors);
    }
    summary
}

async fn record_name(tx: &mut StoreTx, entity: Entity, id: RecordId) -> Result<Option<String>, SyncError> {
    Ok(tx
        .get(entity, id)
        .await?
        .and_then(|r| r.text("name").map(str::to_owned)))
}

/// The fields that name a record, best first: a person's or site's name, a licence's name, an
/// email address, a ticket's summary.
const NAME_FIELDS: &[&str] = &["name", "friendly_name", "part_number", "email", "summary"];

/// A new or changed record's name, from the first of its [`NAME_FIELDS`] the change carries.
fn field_name(change: &Change) -> Option<String> {
    NAME_FIELDS.iter().find_map(|field| {
        let values = change.fields.get(*field)?;
        [&values.after, &values.before]
            .into_iter()
            .find_map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned))
    })
}

/// A desk record's name, from the first of its [`NAME_FIELDS`] it has.
fn record_text_name(record: &deskbridge_store::Record) -> Option<String> {
    NAME_FIELDS
        .iter()
        .find_map(|field| record.text(field).filter(|s| !s.is_empty()))
        .map(str::to_owned)
}

/// The customer a site or licence change belongs to: its `customer_id` field, or its external
/// id (`<customer id>/<name>`, `<customer id>/<sku id>`).
fn site_customer(change: &Change) -> Option<i64> {
    change
        .fields
        .get("customer_id")
        .and_then(|f| f.after.as_i64().or_else(|| f.before.as_i64()))
        .or_else(|| {
            change
                .external_id
                .split_once('/')
                .and_then(|(id, _)| id.parse().ok())
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use deskbridge_mapping::FieldChange;
    use serde_json::json;

    use super::*;

    fn change(action: Action, rule: &str) -> Change {
        Change {
            entity: PlanEntity::User,
            external_id: "id".into(),
            name: None,
            action,
            fields: BTreeMap::new(),
            rule: rule.into(),
            reason: String::new(),
        }
    }

    #[test]
    fn changes_are_counted_per_action_and_skips_per_reason() {
        let changes = [
            change(Action::Create, "site mapping #1"),
            change(Action::Skip, "site mappings"),
            change(Action::Skip, "site mappings"),
            change(Action::Skip, "site mapping #2 'Contractors' (seq 20)"),
            change(Action::Update, "site mapping #1"),
        ];
        let summary = counted(&changes, 2);
        assert_eq!(
            summary.actions,
            BTreeMap::from([
                ("create".into(), 1),
                ("error".into(), 2),
                ("skip".into(), 3),
                ("update".into(), 1)
            ])
        );
        assert_eq!(
            summary.skipped,
            BTreeMap::from([
                ("matched no site mapping".into(), 2),
                ("site mapping #2 'Contractors' (seq 20)".into(), 1)
            ])
        );
        assert_eq!(summary.covers, None);
    }

    #[test]
    fn roles_teams_and_cabs_are_described_by_name_beside_their_ids() {
        let mut summary = PreviewSummary::default();
        summary.names.insert(
            "agent_role".into(),
            BTreeMap::from([("3".to_owned(), "Service Desk".to_owned())]),
        );
        summary.names.insert(
            "team".into(),
            BTreeMap::from([("1".to_owned(), "1st Line".to_owned())]),
        );
        let describe = |field: &str, value: Value| summary.describe(PlanEntity::Agent, field, &value);
        assert_eq!(
            describe("roles", json!([3, 9])).as_deref(),
            Some("role 3 \"Service Desk\"; role 9"),
            "a role no longer on the desk keeps its id"
        );
        assert_eq!(describe("roles", json!([])).as_deref(), Some("none"));
        assert_eq!(describe("default_team_id", json!(null)).as_deref(), Some("none"));
        assert_eq!(
            describe(
                "teams",
                json!([{"team_id": 1, "can_be_assigned": true, "can_see_unassigned": false}])
            )
            .as_deref(),
            Some("team 1 \"1st Line\" (assign)")
        );
        assert_eq!(describe("name", json!("Ann")), None, "not a reference");
        assert_eq!(
            summary
                .describe(PlanEntity::User, "roles", &json!([3]))
                .as_deref(),
            Some("role 3"),
            "a user's roles are user roles, not agent roles"
        );
    }

    #[test]
    fn a_site_is_named_by_its_field_and_belongs_to_its_customer() {
        let mut site = change(Action::Create, "site mapping #1");
        site.entity = PlanEntity::Site;
        site.external_id = "7/Leeds".into();
        assert_eq!(site_customer(&site), Some(7));
        assert_eq!(field_name(&site), None);
        site.fields.insert(
            "name".into(),
            FieldChange {
                before: json!(null),
                after: json!("Leeds"),
            },
        );
        site.fields.insert(
            "customer_id".into(),
            FieldChange {
                before: json!(null),
                after: json!(3),
            },
        );
        assert_eq!(field_name(&site).as_deref(), Some("Leeds"));
        assert_eq!(site_customer(&site), Some(3));
    }
}
