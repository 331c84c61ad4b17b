//! Customers: rows of the source's organisations table (Dynamics 365: `account`) → desk
//! customers, planned a page at a time (a customer import is its own run, entity `customers`,
//! run before the people whose site is their customer's, see
//! [`crate::SiteTarget::ImportedCustomer`]).
//!
//! The configuration ([`CustomerMappings`], in [`crate::MappingConfig::customers`]) names an
//! optional filter, the field mappings (a source path → `name` or `custom:<customer field>`), the
//! fields an existing desk customer is matched on, the top level new customers go under, and what
//! a deleted source row does to its customer.
//!
//! Per read: [`CustomerPlanner::begin`], then [`CustomerPlanner::plan_page`] for each page, then
//! [`CustomerPlanner::finish`], each given the desk's customers as they were when the read began
//! (a small table, loaded once, so a preview plans exactly what the sync applies); the finish
//! removes, as the mapping says, the customers the connection imported that a complete full read
//! did not find.
//!
//! Invariants:
//! - Matching: this connection's source id first; then, only when the mapping lists `name` in
//!   `match_fields`, a desk customer of the same name (trimmed, ignoring case) that no connection
//!   imported. Two candidates, or one another connection imported, are a `conflict`, never a guess.
//! - Values are typed, never coerced: a value that does not fit its desk field (a number for the
//!   name, a label that is not one of a select's options) is a per-record error; nothing changes
//!   for that customer and the read counts as partial (nobody is removed for being absent).
//! - `active` follows the source row's state (`statecode` 0 is active) when the source gives it,
//!   and is never guessed when it does not.
//! - A removed customer is deactivated, never deleted: its sites, users and tickets stay.

use std::collections::{BTreeMap, BTreeSet};

use deskbridge_core::{ConnectionId, RecordId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::catalog::{CustomField, CustomFieldType};
use crate::input::{Completeness, ReadMode, Removal, SourceIdentity};
use crate::plan::{Action, Change, Entity, FieldChange, Plan, PlanError};
use crate::rows::{MAX_PATH_SEGMENTS, RowField, SourceRow, empty_plan, fits};

/// How the source's organisations become desk customers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerMappings {
    /// Only rows matching this OData filter (`statecode eq 0`, `accountcategorycode eq 1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Source path → `name` or `custom:<customer field>`; `name` must be mapped, once.
    #[serde(default = "default_fields")]
    pub fields: Vec<RowField>,
    /// Desk fields an existing customer that no connection imported is linked by (only `name`);
    /// empty: customers are matched by source id alone, and every other one is created.
    #[serde(default)]
    pub match_fields: Vec<CustomerMatchField>,
    /// The top level new customers go under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_level_id: Option<RecordId>,
    /// What a deleted source row (or, after a complete full read, one not found) does.
    #[serde(default)]
    pub removed: RemovedCustomers,
}

impl Default for CustomerMappings {
    fn default() -> Self {
        Self {
            filter: None,
            fields: default_fields(),
            match_fields: Vec::new(),
            top_level_id: None,
            removed: RemovedCustomers::default(),
        }
    }
}

fn default_fields() -> Vec<RowField> {
    vec![RowField {
        source: "name".into(),
        target: "name".into(),
    }]
}

impl CustomerMappings {
    /// The filter without a leading `$filter=`, when one is set and not blank.
    pub fn filter_text(&self) -> Option<&str> {
        let text = self.filter.as_deref()?.trim();
        let text = text.strip_prefix("$filter=").unwrap_or(text).trim();
        (!text.is_empty()).then_some(text)
    }

    /// Checks the mapping's shape and its targets against the desk's customer custom fields
    /// (`custom_fields`: those of entity customer). Each problem is one message.
    pub fn check(&self, custom_fields: &[CustomField]) -> Vec<String> {
        let mut problems = Vec::new();
        if self.filter.is_some() && self.filter_text().is_none() {
            problems
                .push("customer mappings: the filter is empty; remove it or give an OData filter".to_owned());
        }
        let mut targets = BTreeSet::new();
        for (i, field) in self.fields.iter().enumerate() {
            let label = format!(
                "customer field mapping #{} ({} → {})",
                i + 1,
                field.source,
                field.target
            );
            let segments = field.segments();
            if segments.len() > MAX_PATH_SEGMENTS || segments.iter().any(|s| s.trim().is_empty()) {
                problems.push(format!(
                    "{label}: the source is not a column, lookup/column or lookup/lookup/column path"
                ));
            }
            if !targets.insert(field.target.as_str()) {
                problems.push(format!(
                    "{label}: {} is mapped twice; map each desk field once",
                    field.target
                ));
            }
            if field.target == "name" {
                continue;
            }
            match field.target.strip_prefix("custom:") {
                Some(name) if custom_fields.iter().any(|f| f.name == name) => {}
                Some(name) => problems.push(format!(
                    "{label}: the desk has no customer custom field {name:?}{}",
                    listed(custom_fields)
                )),
                None => problems.push(format!(
                    "{label}: a customer field mapping writes name or custom:<customer field>; active and the top \
                     level are set by the import itself"
                )),
            }
        }
        if !targets.contains("name") {
            problems.push(
                "customer mappings: no field mapping writes name; map the source's name column (account: name) to \
                 name"
                    .to_owned(),
            );
        }
        problems
    }
}

fn listed(custom_fields: &[CustomField]) -> String {
    if custom_fields.is_empty() {
        "; it has none".to_owned()
    } else {
        format!(
            " (it has {})",
            custom_fields
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// A desk field existing customers are matched on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerMatchField {
    Name,
}

/// What a source row deleted (or not found by a complete full read) does to its customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovedCustomers {
    /// The customer stays as it is (a note says so).
    #[default]
    Keep,
    /// The customer is made inactive; its sites, users and tickets stay.
    Deactivate,
}

/// A desk customer, as planning sees it: `fields` holds `name` and `custom:<field>` values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeskCustomer {
    pub id: RecordId,
    pub source: Option<SourceIdentity>,
    pub active: bool,
    pub fields: Map<String, Value>,
}

impl DeskCustomer {
    pub fn name(&self) -> &str {
        self.fields
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

struct Open {
    tenant: String,
    mode: ReadMode,
    seen: BTreeSet<String>,
    refused: usize,
    /// Desk customers this read linked by name, with the row each was linked to: a second row of
    /// the same name is a conflict, not a second link.
    linked: BTreeMap<RecordId, String>,
}

/// Plans desk customers, a page at a time.
pub struct CustomerPlanner {
    mappings: CustomerMappings,
    /// Desk type and options of each mapped target (`text` for `name`).
    targets: BTreeMap<String, (String, Vec<String>)>,
    connection: ConnectionId,
    open: Option<Open>,
}

const RULE: &str = "customer mappings";

impl CustomerPlanner {
    /// A planner for `mappings`, checked against the desk's customer custom fields.
    pub fn new(
        mappings: &CustomerMappings,
        custom_fields: &[CustomField],
        connection: ConnectionId,
    ) -> Result<Self, Vec<String>> {
        let problems = mappings.check(custom_fields);
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut targets = BTreeMap::new();
        for field in &mappings.fields {
            let typed = match field.target.strip_prefix("custom:") {
                None => ("text".to_owned(), Vec::new()),
                Some(name) => match custom_fields.iter().find(|f| f.name == name) {
                    Some(f) => (type_name(f.field_type).to_owned(), f.options.clone()),
                    None => continue,
                },
            };
            targets.insert(field.target.clone(), typed);
        }
        Ok(Self {
            mappings: mappings.clone(),
            targets,
            connection,
            open: None,
        })
    }

    /// A read begins.
    pub fn begin(&mut self, tenant: &str, mode: ReadMode) {
        self.open = Some(Open {
            tenant: tenant.to_owned(),
            mode,
            seen: BTreeSet::new(),
            refused: 0,
            linked: BTreeMap::new(),
        });
    }

    fn matches_by_name(&self) -> bool {
        self.mappings.match_fields.contains(&CustomerMatchField::Name)
    }

    /// The row's name as matching compares it (trimmed, lower-cased).
    fn name_of(&self, row: &SourceRow) -> Option<String> {
        let source = &self.mappings.fields.iter().find(|f| f.target == "name")?.source;
        let name = row.values.get(source)?.as_str()?.trim().to_lowercase();
        (!name.is_empty()).then_some(name)
    }

    /// Plans a page: creates, updates, links and (as the mapping says) deactivations, against
    /// the desk's customers.
    pub fn plan_page(&mut self, rows: &[SourceRow], removed: &[Removal], desk: &[DeskCustomer]) -> Plan {
        let mut plan = empty_plan();
        let Some(mut open) = self.open.take() else {
            plan.notes
                .push("the source sent customers outside a read; nothing was planned for them".into());
            return plan;
        };
        let own: BTreeMap<&str, &DeskCustomer> = desk
            .iter()
            .filter_map(|c| {
                let source = c.source.as_ref()?;
                (source.connection_id == self.connection).then_some((source.external_id.as_str(), c))
            })
            .collect();
        for row in rows {
            open.seen.insert(row.external_id.clone());
            let wanted = match self.wanted(row) {
                Ok(wanted) => wanted,
                Err(message) => {
                    open.refused += 1;
                    plan.counts.errors += 1;
                    plan.errors.push(PlanError {
                        tenant_id: open.tenant.clone(),
                        external_id: row.external_id.clone(),
                        message: format!(
                            "{message}; the customer was not imported, nor changed (it is read again when it changes \
                             in the source, or by a full read)"
                        ),
                    });
                    continue;
                }
            };
            match own.get(row.external_id.as_str()) {
                Some(existing) => self.update(&mut plan, row, existing, wanted, None),
                None => match self.by_name(row, desk, &open.linked) {
                    NameMatch::None => self.create(&mut plan, row, wanted),
                    NameMatch::One(existing) => {
                        open.linked.insert(existing.id, row.external_id.clone());
                        let why = format!("linked to desk customer {} of the same name", existing.id);
                        self.update(&mut plan, row, existing, wanted, Some(why));
                    }
                    NameMatch::Conflict(reason) => {
                        plan.counts.conflicts += 1;
                        plan.changes.push(Change {
                            entity: Entity::Customer,
                            external_id: row.external_id.clone(),
                            name: None,
                            action: Action::Conflict,
                            fields: BTreeMap::new(),
                            rule: "customer matching field 'name'".into(),
                            reason,
                        });
                    }
                },
            }
        }
        for removal in removed {
            if let Some(existing) = own.get(removal.external_id.as_str()) {
                self.remove(&mut plan, existing, "was deleted in the source");
            }
        }
        self.open = Some(open);
        plan
    }

    /// The read is over: a complete full read removes (as the mapping says) the customers this
    /// connection imported that it did not find (`desk`: the desk's customers).
    pub fn finish(&mut self, completeness: Completeness, desk: &[DeskCustomer]) -> Plan {
        let mut plan = empty_plan();
        let Some(open) = self.open.take() else {
            return plan;
        };
        if open.mode != ReadMode::Full {
            return plan;
        }
        let absent: Vec<&DeskCustomer> = desk
            .iter()
            .filter(|c| {
                c.source.as_ref().is_some_and(|s| {
                    s.connection_id == self.connection && !open.seen.contains(&s.external_id)
                })
            })
            .collect();
        if absent.is_empty() {
            return plan;
        }
        if completeness != Completeness::Complete || open.refused > 0 {
            plan.notes.push(format!(
                "{} customer(s) were not found, but the read was not complete, so none was deactivated",
                absent.len()
            ));
            return plan;
        }
        for existing in absent {
            self.remove(
                &mut plan,
                existing,
                "is no longer in the source (a complete full read did not find it)",
            );
        }
        plan
    }

    /// The desk fields a row asks for, typed; an error names the field and the value.
    fn wanted(&self, row: &SourceRow) -> Result<BTreeMap<String, Value>, String> {
        let mut out = BTreeMap::new();
        for field in &self.mappings.fields {
            let Some((ty, options)) = self.targets.get(&field.target) else {
                continue;
            };
            let value = row.values.get(&field.source).cloned().unwrap_or(Value::Null);
            let value = match value {
                Value::String(text) if ty == "text" => {
                    let text = text.trim();
                    if text.is_empty() { Value::Null } else { json!(text) }
                }
                other => other,
            };
            if !fits(ty, &value) {
                return Err(format!(
                    "{} is {value}, which does not fit the customer's {} (of type {ty})",
                    field.source, field.target
                ));
            }
            let unknown: Vec<&str> = match &value {
                Value::String(s) if ty == "single_select" => vec![s.as_str()],
                Value::Array(items) if ty == "multi_select" => {
                    items.iter().filter_map(Value::as_str).collect()
                }
                _ => Vec::new(),
            }
            .into_iter()
            .filter(|v| !options.iter().any(|o| o == v))
            .collect();
            if !unknown.is_empty() {
                return Err(format!(
                    "{} is {value}: {} not among the options of the customer's {} ({}); add the option to the \
                     desk's custom field or map another column",
                    field.source,
                    unknown.join(", "),
                    field.target,
                    options.join(", ")
                ));
            }
            out.insert(field.target.clone(), value);
        }
        if out.get("name").is_none_or(Value::is_null) {
            return Err("the row has no name; a desk customer needs one".to_owned());
        }
        if let Some(state) = row.state {
            out.insert("active".into(), json!(state == 0));
        }
        Ok(out)
    }

    fn by_name<'d>(
        &self,
        row: &SourceRow,
        desk: &'d [DeskCustomer],
        linked: &BTreeMap<RecordId, String>,
    ) -> NameMatch<'d> {
        if !self.matches_by_name() {
            return NameMatch::None;
        }
        let Some(name) = self.name_of(row) else {
            return NameMatch::None;
        };
        let same: Vec<&DeskCustomer> = desk
            .iter()
            .filter(|c| c.name().trim().to_lowercase() == name)
            .collect();
        match same.as_slice() {
            [] => NameMatch::None,
            [one] => match &one.source {
                None => match linked.get(&one.id) {
                    None => NameMatch::One(one),
                    Some(other) => NameMatch::Conflict(format!(
                        "the desk customer {:?} ({}) of the same name was linked to source row {other} in this read; \
                         two source rows have one name: rename one of them",
                        one.name(),
                        one.id
                    )),
                },
                Some(s) if s.connection_id == self.connection => NameMatch::Conflict(format!(
                    "the desk customer {:?} ({}) of the same name is this connection's import of source row {}; \
                     two source rows have one name: rename one of them",
                    one.name(),
                    one.id,
                    s.external_id
                )),
                Some(s) => NameMatch::Conflict(format!(
                    "the desk customer {:?} ({}) of the same name is imported by connection {}; it is not linked \
                     to this one",
                    one.name(),
                    one.id,
                    s.connection_id
                )),
            },
            several => NameMatch::Conflict(format!(
                "{} desk customers are named {:?} ({}); none was linked",
                several.len(),
                several[0].name(),
                several
                    .iter()
                    .map(|c| c.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    fn create(&self, plan: &mut Plan, row: &SourceRow, wanted: BTreeMap<String, Value>) {
        let mut fields: BTreeMap<String, FieldChange> = wanted
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, after)| {
                (
                    k,
                    FieldChange {
                        before: Value::Null,
                        after,
                    },
                )
            })
            .collect();
        if let Some(top) = self.mappings.top_level_id {
            fields.insert(
                "top_level_id".into(),
                FieldChange {
                    before: Value::Null,
                    after: json!(top.0),
                },
            );
        }
        let name = fields
            .get("name")
            .and_then(|f| f.after.as_str())
            .unwrap_or_default()
            .to_owned();
        plan.counts.created += 1;
        plan.changes.push(Change {
            entity: Entity::Customer,
            external_id: row.external_id.clone(),
            name: None,
            action: Action::Create,
            fields,
            rule: RULE.into(),
            reason: format!(
                "{name:?} (source row {}) is not a desk customer yet",
                row.external_id
            ),
        });
    }

    fn update(
        &self,
        plan: &mut Plan,
        row: &SourceRow,
        existing: &DeskCustomer,
        wanted: BTreeMap<String, Value>,
        linked: Option<String>,
    ) {
        let fields: BTreeMap<String, FieldChange> = wanted
            .into_iter()
            .filter_map(|(k, after)| {
                let before = if k == "active" {
                    json!(existing.active)
                } else {
                    existing.fields.get(&k).cloned().unwrap_or(Value::Null)
                };
                (before != after).then_some((k, FieldChange { before, after }))
            })
            .collect();
        if fields.is_empty() && linked.is_none() {
            plan.counts.unchanged += 1;
            return;
        }
        let action = match (&linked, fields.get("active").and_then(|f| f.after.as_bool())) {
            (Some(_), _) => Action::Link,
            (None, Some(false)) => Action::Deactivate,
            (None, Some(true)) => Action::Reactivate,
            (None, None) => Action::Update,
        };
        match action {
            Action::Deactivate => plan.counts.deactivated += 1,
            _ => plan.counts.updated += 1,
        }
        let changed: Vec<&str> = fields.keys().map(String::as_str).collect();
        let reason = match linked {
            Some(why) => format!("{why}; source row {}", row.external_id),
            None if action == Action::Deactivate => {
                format!("source row {} is inactive", row.external_id)
            }
            None => format!("source row {} changed: {}", row.external_id, changed.join(", ")),
        };
        plan.targets
            .insert(Plan::target_key(Entity::Customer, &row.external_id), existing.id);
        plan.changes.push(Change {
            entity: Entity::Customer,
            external_id: row.external_id.clone(),
            name: None,
            action,
            fields,
            rule: RULE.into(),
            reason,
        });
    }

    fn remove(&self, plan: &mut Plan, existing: &DeskCustomer, why: &str) {
        let Some(source) = &existing.source else {
            return;
        };
        match self.mappings.removed {
            RemovedCustomers::Keep => plan.notes.push(format!(
                "desk customer {:?} ({}, source row {}) {why}; kept, as the customer mappings' removed is \"keep\"",
                existing.name(),
                existing.id,
                source.external_id
            )),
            RemovedCustomers::Deactivate if !existing.active => {}
            RemovedCustomers::Deactivate => {
                plan.counts.deactivated += 1;
                plan.targets
                    .insert(Plan::target_key(Entity::Customer, &source.external_id), existing.id);
                plan.changes.push(Change {
                    entity: Entity::Customer,
                    external_id: source.external_id.clone(),
                    name: None,
                    action: Action::Deactivate,
                    fields: [(
                        "active".to_owned(),
                        FieldChange {
                            before: json!(true),
                            after: json!(false),
                        },
                    )]
                    .into_iter()
                    .collect(),
                    rule: RULE.into(),
                    reason: format!("{:?} {why}", existing.name()),
                });
            }
        }
    }
}

enum NameMatch<'d> {
    None,
    One(&'d DeskCustomer),
    Conflict(String),
}

fn type_name(ty: CustomFieldType) -> &'static str {
    match ty {
        CustomFieldType::Text => "text",
        CustomFieldType::Number => "number",
        CustomFieldType::Date => "date",
        CustomFieldType::Boolean => "boolean",
        CustomFieldType::SingleSelect => "single_select",
        CustomFieldType::MultiSelect => "multi_select",
    }
}

/// Applies a plan's customer changes to in-memory desk customers, as the store would (ids from
/// `next_id`): for tests of "applying then planning again changes nothing".
pub fn apply_customers(
    desk: &mut Vec<DeskCustomer>,
    plan: &Plan,
    connection: ConnectionId,
    next_id: &mut i64,
) {
    for change in plan
        .changes
        .iter()
        .filter(|c| c.entity == Entity::Customer && c.action.writes())
    {
        let target = plan.target_of(change).or_else(|| {
            desk.iter()
                .find(|c| {
                    c.source
                        .as_ref()
                        .is_some_and(|s| s.connection_id == connection && s.external_id == change.external_id)
                })
                .map(|c| c.id)
        });
        let customer = match (change.action, target) {
            (Action::Create, None) => {
                *next_id += 1;
                desk.push(DeskCustomer {
                    id: RecordId(*next_id),
                    source: None,
                    active: true,
                    fields: Map::new(),
                });
                desk.last_mut()
            }
            (_, Some(id)) => desk.iter_mut().find(|c| c.id == id),
            (_, None) => None,
        };
        let Some(customer) = customer else {
            continue;
        };
        customer.source = Some(SourceIdentity {
            connection_id: connection,
            external_id: change.external_id.clone(),
        });
        for (name, field) in &change.fields {
            match name.as_str() {
                "active" => customer.active = field.after.as_bool().unwrap_or(customer.active),
                "top_level_id" => {}
                _ => {
                    customer.fields.insert(name.clone(), field.after.clone());
                }
            }
        }
    }
}
