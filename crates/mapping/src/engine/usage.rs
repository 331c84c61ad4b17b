//! Consumption billing: a customer's usage lines (CSP: Azure utilisation records, daily), planned
//! by `begin_tenant` when they were read this run. A line is the source's record, created once
//! and updated when the source corrects it (usage is reported late and revised); it is linked to
//! the desk subscription it is billed under when the desk has it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::owned::OwnedRecord;
use super::page::PagePlanner;
use crate::input::SourceUsageLine;
use crate::plan::Entity;

impl PagePlanner<'_, '_> {
    pub(crate) fn plan_usage(&mut self, lines: &[SourceUsageLine]) {
        let customer_id = self.customer_id;
        let tenant_id = self.tenant_id.clone();
        let snapshot = self.snapshot;
        let existing: BTreeMap<String, _> = snapshot
            .usage_lines
            .iter()
            .map(|l| (l.external_id.to_lowercase(), l))
            .collect();
        let subscriptions: BTreeMap<String, _> = snapshot
            .subscriptions
            .iter()
            .map(|s| (s.external_id.to_lowercase(), s.id))
            .collect();
        let mut seen = BTreeSet::new();
        for line in lines {
            let key = line.external_id.to_lowercase();
            if !seen.insert(key.clone()) {
                continue;
            }
            let subscription = line
                .subscription_external_id
                .as_deref()
                .and_then(|s| subscriptions.get(&s.to_lowercase()));
            let mut wanted = BTreeMap::from([
                ("tenant_id".to_owned(), json!(tenant_id.to_lowercase())),
                ("usage_start".to_owned(), json!(line.usage_start)),
                ("usage_end".to_owned(), json!(line.usage_end)),
                ("resource_id".to_owned(), json!(line.resource_id)),
                ("resource_name".to_owned(), json!(line.resource_name)),
                ("category".to_owned(), json!(line.category)),
                ("subcategory".to_owned(), json!(line.subcategory)),
                ("region".to_owned(), json!(line.region)),
                ("quantity".to_owned(), json!(line.quantity)),
                ("unit".to_owned(), json!(line.unit)),
                ("resource_uri".to_owned(), json!(line.resource_uri)),
                ("subscription_id".to_owned(), json!(subscription.map(|id| id.0))),
            ]);
            let existing = existing.get(&key).copied();
            if existing.is_none()
                && let Some(customer) = customer_id
            {
                wanted.insert("customer_id".into(), json!(customer.0));
            }
            let what = format!(
                "{} {} of {}",
                line.quantity,
                line.unit.as_deref().unwrap_or("units"),
                line.resource_name
                    .as_deref()
                    .or(line.resource_id.as_deref())
                    .unwrap_or("a resource")
            );
            let when = line.usage_start.as_deref().unwrap_or("an unknown day");
            self.plan_owned(OwnedRecord {
                entity: Entity::UsageLine,
                external_id: key,
                wanted,
                existing,
                rule: "consumption import",
                new_reason: format!("{what} used from {when} in tenant {tenant_id}."),
                update_reason: format!("{what} from {when}, as the source now reports it."),
            });
        }
    }
}
