//! The plan: exactly what a sync would change, with the rule and reason for each change. The
//! preview shows it; apply executes it.

use std::collections::BTreeMap;

use deskbridge_core::RecordId;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub generated_at: jiff::Timestamp,
    /// In apply order: sites, then users, agents and tickets (each by tenant, then external id).
    /// Held tenants' changes are not here but in `held`.
    pub changes: Vec<Change>,
    /// The existing desk record each change updates, keyed by [`Plan::target_key`]. Changes
    /// that create records have no entry, nor do updates of records this run created in an
    /// earlier step (a line manager linked at a tenant's end): those update the record this
    /// connection carries the change's external id on.
    pub targets: BTreeMap<String, RecordId>,
    /// Changes not made because of a lock.
    pub locked: Vec<LockedChange>,
    /// One verdict per tenant.
    pub circuit_breaker: Vec<BreakerVerdict>,
    pub held: Vec<HeldTenant>,
    /// Records that could not be planned; nothing is changed for them.
    pub errors: Vec<PlanError>,
    /// Things an administrator should know that are not changes (e.g. a partial read).
    pub notes: Vec<String>,
    pub counts: Counts,
}

/// One planned change. This shape is part of the CLI's `sync --plan --json` contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub entity: Entity,
    /// The source's external id (Entra: the object id) for users and agents, `<customer id>/<name>` for a new site,
    /// `<customer id>/<sku id>` for a licence (`-` for no customer), the ticket id for tickets.
    pub external_id: String,
    /// The record's name for people (a user's display name, UPN or object id; a site's name),
    /// when the planner knows it; the preview adds the desk's names for the rest. Absent from
    /// the JSON when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub action: Action,
    pub fields: BTreeMap<String, FieldChange>,
    /// The mapping or rule that decided the change, e.g. `site mapping #2 'London staff' (seq 10)`.
    pub rule: String,
    /// Why, as a sentence.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub before: Value,
    pub after: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Site,
    Licence,
    User,
    Agent,
    Ticket,
    /// A desk asset type, created when a device needs one that does not exist.
    AssetType,
    /// A desk asset, from a managed device.
    Asset,
    /// A subscription the partner sells the customer (CSP), with its term and price.
    Subscription,
    /// A customer's metered usage for a period (consumption billing).
    UsageLine,
    /// A row of a desk custom table, from a row of a source table (custom table syncs).
    CustomRow,
    /// A desk customer, from a row of the source's organisations table (Dynamics: an account).
    Customer,
}

impl Entity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Site => "site",
            Self::Licence => "licence",
            Self::User => "user",
            Self::Agent => "agent",
            Self::Ticket => "ticket",
            Self::AssetType => "asset_type",
            Self::Asset => "asset",
            Self::Subscription => "subscription",
            Self::UsageLine => "usage_line",
            Self::CustomRow => "custom_row",
            Self::Customer => "customer",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Deactivate,
    Reactivate,
    /// Matched an existing desk record by email, network login or name, and links it.
    Link,
    /// Ambiguous: several desk records fit. Recorded, never guessed.
    Conflict,
    /// Not imported, with the reason.
    Skip,
}

impl Action {
    pub const ALL: [Self; 7] = [
        Self::Create,
        Self::Update,
        Self::Deactivate,
        Self::Reactivate,
        Self::Link,
        Self::Conflict,
        Self::Skip,
    ];

    /// The action named `name` as the plan's JSON spells it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name.trim())
    }

    /// Actions from a comma-separated list (`create,update`), as the preview's filter takes them;
    /// an unknown name is refused with the names there are.
    pub fn parse_list(list: &str) -> Result<Vec<Self>, String> {
        list.split(',')
            .filter(|name| !name.trim().is_empty())
            .map(|name| {
                Self::parse(name).ok_or_else(|| {
                    let names: Vec<&str> = Self::ALL.iter().map(|a| a.as_str()).collect();
                    format!(
                        "{:?} is not an action; use one or more of: {}",
                        name.trim(),
                        names.join(", ")
                    )
                })
            })
            .collect()
    }

    /// The action's name as the plan's JSON spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Deactivate => "deactivate",
            Self::Reactivate => "reactivate",
            Self::Link => "link",
            Self::Conflict => "conflict",
            Self::Skip => "skip",
        }
    }

    /// Whether applying the change writes anything.
    pub fn writes(self) -> bool {
        !matches!(self, Self::Conflict | Self::Skip)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockedChange {
    pub entity: Entity,
    pub external_id: String,
    pub field: String,
    pub current: Value,
    pub wanted: Value,
    /// Which lock, e.g. `record lock: keep active` or `field lock: never overwrite 'phone'`.
    pub lock: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerVerdict {
    pub tenant_id: String,
    pub held: bool,
    pub deactivations: usize,
    /// Active desk users and agents of this tenant from this connection before the run.
    pub active_records: usize,
    pub reason: String,
    /// Existing users and agents this run moves to another site (and so, perhaps, customer).
    #[serde(default)]
    pub moves: usize,
    /// Per field (the site aside, see `moves`): the existing users and agents whose field this
    /// run changes.
    #[serde(default)]
    pub field_changes: BTreeMap<String, usize>,
}

/// A tenant whose changes the circuit breaker held back. Nothing of it is applied until an
/// administrator approves (see [`crate::PlanInput::approved_tenants`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldTenant {
    pub tenant_id: String,
    pub reason: String,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanError {
    pub tenant_id: String,
    pub external_id: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counts {
    /// Records created (users, agents, sites).
    pub created: usize,
    /// Records updated, linked or reactivated (tickets re-assigned included).
    pub updated: usize,
    pub deactivated: usize,
    /// Users and agents the sync looked at and found already right.
    pub unchanged: usize,
    pub conflicts: usize,
    pub errors: usize,
}

impl Plan {
    pub fn target_key(entity: Entity, external_id: &str) -> String {
        format!("{}:{external_id}", entity.as_str())
    }

    /// The existing desk record a change targets, if it is not a create.
    pub fn target_of(&self, change: &Change) -> Option<RecordId> {
        self.targets
            .get(&Self::target_key(change.entity, &change.external_id))
            .copied()
    }

    /// Changes that write something (not skips or conflicts).
    pub fn writes(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|change| change.action.writes())
    }

    /// Users the run did not import, and why.
    pub fn not_imported(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|change| change.action == Action::Skip)
    }

    pub fn is_held(&self) -> bool {
        !self.held.is_empty()
    }

    /// Appends the plan of a later step of the same run (a page, a tenant's end), as a preview of
    /// a page-wise run shows them: changes stay in step order, so that what a step refers to was
    /// created by it or an earlier step, and counts add up.
    pub fn absorb(&mut self, later: Plan) {
        self.changes.extend(later.changes);
        self.targets.extend(later.targets);
        self.locked.extend(later.locked);
        self.circuit_breaker.extend(later.circuit_breaker);
        self.held.extend(later.held);
        self.errors.extend(later.errors);
        self.notes.extend(later.notes);
        let counts = later.counts;
        self.counts.created += counts.created;
        self.counts.updated += counts.updated;
        self.counts.deactivated += counts.deactivated;
        self.counts.unchanged += counts.unchanged;
        self.counts.conflicts += counts.conflicts;
        self.counts.errors += counts.errors;
    }
}

/// A reference to a record that may be created by the same plan. Existing records are plain
/// ids; records the plan creates are named so that apply can resolve them in any order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reference {
    Id(RecordId),
    /// `{"site": {"customer_id": 3, "name": "Leeds"}}`
    NewSite {
        customer_id: RecordId,
        name: String,
    },
    /// `{"user": "<external id>"}`
    NewUser(String),
    /// `{"agent": "<external id>"}`
    NewAgent(String),
    /// `{"licence": {"customer_id": 3, "sku_id": "<guid>"}}` (customer null when the tenant has none)
    NewLicence {
        customer_id: Option<RecordId>,
        sku_id: String,
    },
    /// `{"asset_type": "<name>"}`
    NewAssetType(String),
}

impl Reference {
    pub fn to_value(&self) -> Value {
        match self {
            Self::Id(id) => json!(id.0),
            Self::NewSite { customer_id, name } => {
                json!({"site": {"customer_id": customer_id.0, "name": name}})
            }
            Self::NewUser(external_id) => json!({ "user": external_id }),
            Self::NewAgent(external_id) => json!({ "agent": external_id }),
            Self::NewLicence { customer_id, sku_id } => {
                json!({"licence": {"customer_id": customer_id.map(|c| c.0), "sku_id": sku_id}})
            }
            Self::NewAssetType(name) => json!({ "asset_type": name }),
        }
    }

    /// Reads a field value back as a reference; `None` for null and for anything else.
    pub fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Number(number) => number.as_i64().map(|id| Self::Id(RecordId(id))),
            Value::Object(map) if map.len() == 1 => {
                if let Some(Value::String(id)) = map.get("user") {
                    return Some(Self::NewUser(id.clone()));
                }
                if let Some(Value::String(id)) = map.get("agent") {
                    return Some(Self::NewAgent(id.clone()));
                }
                if let Some(Value::String(name)) = map.get("asset_type") {
                    return Some(Self::NewAssetType(name.clone()));
                }
                if let Some(licence) = map.get("licence") {
                    return Some(Self::NewLicence {
                        customer_id: licence.get("customer_id").and_then(Value::as_i64).map(RecordId),
                        sku_id: licence.get("sku_id")?.as_str()?.to_owned(),
                    });
                }
                let site = map.get("site")?;
                Some(Self::NewSite {
                    customer_id: RecordId(site.get("customer_id")?.as_i64()?),
                    name: site.get("name")?.as_str()?.to_owned(),
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Action;

    #[test]
    fn action_names_are_the_json_names() {
        for action in Action::ALL {
            assert_eq!(
                serde_json::to_value(action).unwrap(),
                serde_json::json!(action.as_str())
            );
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
    }

    #[test]
    fn action_lists_parse_or_name_the_actions_there_are() {
        assert_eq!(
            Action::parse_list("create, update"),
            Ok(vec![Action::Create, Action::Update])
        );
        let wrong = Action::parse_list("create,delete").unwrap_err();
        assert!(wrong.contains("\"delete\" is not an action"), "{wrong}");
        assert!(wrong.contains("deactivate"), "{wrong}");
    }
}
