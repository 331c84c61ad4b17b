//! What a preview adds for people to the plan's changes: each change's record named (the
//! planner names what it read; the desk names the rest: the record a change updates, a site's
//! customer), a count per action, skips counted by reason, and in delta mode what the preview
//! covers. Nothing here writes.

use std::collections::{BTreeMap, HashMap};

use deskbridge_core::{ConnectionId, RecordId};
use deskbridge_mapping::{Action, Change, Entity as PlanEntity, Plan};
use deskbridge_store::{Entity, Store, StoreTx};
use serde::Serialize;

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
