//! Records that are the source's own — subscriptions, usage lines: matched by the source's id
//! alone, every known column following the source. A value the source does not give (`null`) is
//! left out of a create and never written over a known one: nothing from outside is coerced into
//! a default.

use std::collections::BTreeMap;

use serde_json::Value;

use super::diff::same;
use super::page::PagePlanner;
use crate::input::DeskSourceRecord;
use crate::plan::{Action, Change, Entity, FieldChange, Plan};

/// One source record to plan.
pub(crate) struct OwnedRecord<'a> {
    pub(crate) entity: Entity,
    /// Lower-cased.
    pub(crate) external_id: String,
    /// The desk columns as the source has them (`customer_id` included for a create).
    pub(crate) wanted: BTreeMap<String, Value>,
    /// The desk's record for it, if any.
    pub(crate) existing: Option<&'a DeskSourceRecord>,
    pub(crate) rule: &'a str,
    /// Why it is created; why it is updated.
    pub(crate) new_reason: String,
    pub(crate) update_reason: String,
}

/// Whether a desk value and a source value are the same: timestamps as instants (the desk keeps
/// its own canonical form), anything else as [`same`] says.
pub(crate) fn same_value(desk: &Value, source: &Value) -> bool {
    if let (Value::String(a), Value::String(b)) = (desk, source)
        && let (Ok(a), Ok(b)) = (a.parse::<jiff::Timestamp>(), b.parse::<jiff::Timestamp>())
    {
        return a == b;
    }
    same(desk, source)
}

impl PagePlanner<'_, '_> {
    /// A create for a record the desk does not have, an update of the columns that differ, or
    /// nothing.
    pub(crate) fn plan_owned(&mut self, record: OwnedRecord<'_>) {
        let known = record.wanted.into_iter().filter(|(_, value)| !value.is_null());
        let Some(desk) = record.existing else {
            let fields = known
                .map(|(field, after)| {
                    (
                        field,
                        FieldChange {
                            before: Value::Null,
                            after,
                        },
                    )
                })
                .collect();
            self.push(Change {
                entity: record.entity,
                external_id: record.external_id,
                name: None,
                action: Action::Create,
                fields,
                rule: record.rule.to_owned(),
                reason: record.new_reason,
            });
            return;
        };
        let fields: BTreeMap<String, FieldChange> = known
            .filter_map(|(field, after)| {
                let before = desk.fields.get(&field).cloned().unwrap_or(Value::Null);
                (!same_value(&before, &after)).then_some((field, FieldChange { before, after }))
            })
            .collect();
        if fields.is_empty() {
            return;
        }
        self.out()
            .targets
            .insert(Plan::target_key(record.entity, &record.external_id), desk.id);
        self.push(Change {
            entity: record.entity,
            external_id: record.external_id,
            name: None,
            action: Action::Update,
            fields,
            rule: record.rule.to_owned(),
            reason: record.update_reason,
        });
    }
}
