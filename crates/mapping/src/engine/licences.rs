//! Licences: desk licences from a tenant's subscribed SKUs (one per customer and SKU, planned by
//! `begin_tenant` before the tenant's users), and the licences a user's SKUs link to.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::diff::same;
use super::page::PagePlanner;
use crate::input::{SourceUser, SubscribedSku};
use crate::plan::{Action, Change, Entity, FieldChange, Plan, Reference};

impl PagePlanner<'_, '_> {
    /// The desk licences for the user's SKUs: existing ones by id (of the tenant's customer, or
    /// without a customer), then those this plan creates, by reference.
    pub(crate) fn licences_for(&self, user: &SourceUser) -> Value {
        let customer_id = self.customer_id;
        let mut ids = BTreeSet::new();
        let mut created = BTreeSet::new();
        for sku in &user.sku_ids {
            let sku = sku.to_lowercase();
            // A licence this run creates is named by reference even once it exists: a sync's
            // later page shows it on the desk, a preview's does not.
            let planned = self.run.new_licences.contains(&(customer_id, sku.clone()));
            let existing: Vec<i64> = self
                .licences_by_sku
                .get(&sku)
                .into_iter()
                .flatten()
                .filter(|licence| !(planned && licence.customer_id == customer_id))
                .filter(|licence| match (customer_id, licence.customer_id) {
                    (Some(wanted), Some(owner)) => wanted == owner,
                    _ => true,
                })
                .map(|licence| licence.id.0)
                .collect();
            if !existing.is_empty() {
                ids.extend(existing);
            } else if planned {
                created.insert(sku);
            }
        }
        let mut values: Vec<Value> = ids.into_iter().map(Value::from).collect();
        values.extend(
            created
                .into_iter()
                .map(|sku_id| Reference::NewLicence { customer_id, sku_id }.to_value()),
        );
        Value::Array(values)
    }

    /// Desk licences from the tenant's subscribed SKUs, one per customer and SKU.
    pub(crate) fn plan_licences(&mut self, skus: &[SubscribedSku]) {
        let customer_id = self.customer_id;
        let tenant_id = self.tenant_id.clone();
        let mut skus: Vec<&SubscribedSku> = skus.iter().collect();
        skus.sort_by_key(|sku| sku.sku_id.to_lowercase());
        skus.dedup_by_key(|sku| sku.sku_id.to_lowercase());
        let customer_text = customer_id.map_or_else(|| "-".to_owned(), |c| c.to_string());
        for sku in skus {
            let sku_key = sku.sku_id.to_lowercase();
            if !self.run.planned_licences.insert((customer_id, sku_key.clone())) {
                // The first tenant (by id) of the customer decides the licence's figures.
                continue;
            }
            let external_id = format!("{customer_text}/{sku_key}");
            let existing = self
                .licences_by_sku
                .get(&sku_key)
                .into_iter()
                .flatten()
                .filter(|licence| licence.customer_id == customer_id)
                .min_by_key(|licence| licence.id)
                .copied();
            let mut desired = BTreeMap::from([
                ("part_number".to_owned(), json!(sku.sku_part_number)),
                ("total_units".to_owned(), json!(sku.enabled_units)),
                ("consumed_units".to_owned(), json!(sku.consumed_units)),
                ("capability_status".to_owned(), json!(sku.capability_status)),
            ]);
            let rule = "licence import".to_owned();
            let Some(licence) = existing else {
                if !self.run.new_licences.insert((customer_id, sku_key.clone())) {
                    continue; // another tenant of the same customer already creates it
                }
                let name = sku
                    .friendly_name
                    .clone()
                    .unwrap_or_else(|| sku.sku_part_number.clone());
                desired.insert("friendly_name".into(), json!(name));
                desired.insert("sku_id".into(), json!(sku_key));
                if let Some(customer) = customer_id {
                    desired.insert("customer_id".into(), json!(customer.0));
                }
                let fields = desired
                    .into_iter()
                    .filter(|(_, value)| !value.is_null())
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
                let reason = format!(
                    "{} ({}) is subscribed in tenant {} and the desk has no licence for it under customer {customer_text}.",
                    sku.sku_part_number, sku.sku_id, tenant_id
                );
                let change = Change {
                    entity: Entity::Licence,
                    external_id,
                    name: None,
                    action: Action::Create,
                    fields,
                    rule,
                    reason,
                };
                self.push(change);
                continue;
            };
            let fields: BTreeMap<String, FieldChange> = desired
                .into_iter()
                .filter_map(|(field, after)| {
                    let before = licence.fields.get(&field).cloned().unwrap_or(Value::Null);
                    (!same(&before, &after)).then_some((field, FieldChange { before, after }))
                })
                .collect();
            if fields.is_empty() {
                continue;
            }
            self.out()
                .targets
                .insert(Plan::target_key(Entity::Licence, &external_id), licence.id);
            let reason = format!(
                "{} ({}) as subscribed in tenant {}.",
                sku.sku_part_number, sku.sku_id, tenant_id
            );
            let change = Change {
                entity: Entity::Licence,
                external_id,
                name: None,
                action: Action::Update,
                fields,
                rule,
                reason,
            };
            self.push(change);
        }
    }
}
