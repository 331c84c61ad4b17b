//! Subscriptions: the desk's copy of what the partner sells each customer (CSP), planned by
//! `begin_tenant` from the customer's subscriptions when they were read this run. A subscription
//! is the source's own record, so it is matched by its id alone and every column follows the
//! source — except the price, which changes only when a price list was read and priced it.
//! A subscription of the tenant that the source no longer lists is marked `deleted`, never
//! removed: invoices may still name it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::owned::OwnedRecord;
use super::page::PagePlanner;
use crate::input::SourceSubscription;
use crate::plan::{Action, Change, Entity, FieldChange, Plan};

/// What marks a subscription the source no longer lists.
const GONE: &str = "deleted";

/// The desk's columns for a source subscription (`None` values are "not known": left out of a
/// create, and never written over a known value).
fn desired(subscription: &SourceSubscription, tenant_id: &str) -> BTreeMap<String, Value> {
    let mut fields = BTreeMap::from([
        ("offer_id".to_owned(), json!(subscription.offer_id)),
        ("offer_name".to_owned(), json!(subscription.offer_name)),
        ("friendly_name".to_owned(), json!(subscription.friendly_name)),
        ("quantity".to_owned(), json!(subscription.quantity)),
        ("status".to_owned(), json!(subscription.status)),
        ("billing_cycle".to_owned(), json!(subscription.billing_cycle)),
        ("term_duration".to_owned(), json!(subscription.term_duration)),
        ("unit_type".to_owned(), json!(subscription.unit_type)),
        ("start_date".to_owned(), json!(subscription.start_date)),
        ("end_date".to_owned(), json!(subscription.end_date)),
        (
            "cancellation_allowed_until".to_owned(),
            json!(subscription.cancellation_allowed_until),
        ),
        ("auto_renew".to_owned(), json!(subscription.auto_renew)),
        ("is_trial".to_owned(), json!(subscription.is_trial)),
        ("tenant_id".to_owned(), json!(tenant_id.to_lowercase())),
    ]);
    if let Some(price) = &subscription.price {
        fields.insert("unit_price".into(), json!(price.unit_price));
        fields.insert("currency".into(), json!(price.currency));
        fields.insert("market".into(), json!(price.market));
    }
    fields
}

/// A readable name for reasons: the friendly name, else the offer, else the id.
fn label(subscription: &SourceSubscription) -> String {
    let name = subscription
        .friendly_name
        .as_deref()
        .or(subscription.offer_name.as_deref())
        .unwrap_or(&subscription.external_id);
    format!("{name} ({})", subscription.external_id)
}

impl PagePlanner<'_, '_> {
    /// Desk subscriptions from the customer's subscriptions: created, updated, or (those of the
    /// tenant no longer listed) marked deleted.
    pub(crate) fn plan_subscriptions(&mut self, subscriptions: &[SourceSubscription]) {
        let customer_id = self.customer_id;
        let tenant_id = self.tenant_id.clone();
        let snapshot = self.snapshot;
        let existing: BTreeMap<String, &crate::input::DeskSourceRecord> = snapshot
            .subscriptions
            .iter()
            .map(|s| (s.external_id.to_lowercase(), s))
            .collect();
        let rule = "subscription import".to_owned();
        let mut listed = BTreeSet::new();
        for subscription in subscriptions {
            let key = subscription.external_id.to_lowercase();
            if !listed.insert(key.clone()) {
                continue; // listed twice: the first copy decides
            }
            let mut wanted = desired(subscription, &tenant_id);
            let existing = existing.get(&key).copied();
            if existing.is_none()
                && let Some(customer) = customer_id
            {
                wanted.insert("customer_id".into(), json!(customer.0));
            }
            self.plan_owned(OwnedRecord {
                entity: Entity::Subscription,
                external_id: key,
                wanted,
                existing,
                rule: &rule,
                new_reason: format!(
                    "{} is a subscription of tenant {tenant_id} and is not on the desk yet.",
                    label(subscription)
                ),
                update_reason: format!("{} as the source lists it.", label(subscription)),
            });
        }
        for (key, desk) in existing {
            let status = desk.fields.get("status").and_then(Value::as_str);
            let of_tenant = desk
                .fields
                .get("tenant_id")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case(&tenant_id));
            if !of_tenant || listed.contains(&key) || status == Some(GONE) {
                continue;
            }
            self.out()
                .targets
                .insert(Plan::target_key(Entity::Subscription, &key), desk.id);
            let change = FieldChange {
                before: desk.fields.get("status").cloned().unwrap_or(Value::Null),
                after: json!(GONE),
            };
            self.push(Change {
                entity: Entity::Subscription,
                external_id: key.clone(),
                name: None,
                action: Action::Update,
                fields: BTreeMap::from([("status".to_owned(), change)]),
                rule: rule.clone(),
                reason: format!(
                    "subscription {key} of tenant {tenant_id} is no longer listed by the source: marked deleted, \
                     kept for the invoices that name it."
                ),
            });
        }
    }
}
