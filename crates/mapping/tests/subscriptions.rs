#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Subscriptions (CSP) as the planner sees them: the source's own records, matched by id; every
//! column follows the source except a price nobody read; a subscription of the tenant the source
//! no longer lists is marked deleted (never another tenant's); applying the plan converges.

mod common;

use std::collections::BTreeMap;

use common::*;
use deskbridge_core::RecordId;
use deskbridge_mapping::*;
use serde_json::{Value, json};

fn subscription(id: &str, quantity: i64) -> SourceSubscription {
    SourceSubscription {
        external_id: id.into(),
        offer_id: Some("CFQ7TTC0LH18:0001:P1Y".into()),
        offer_name: Some("Microsoft 365 Business Basic".into()),
        friendly_name: Some("Business Basic".into()),
        quantity,
        status: Some("active".into()),
        billing_cycle: Some("monthly".into()),
        term_duration: Some("P1Y".into()),
        unit_type: Some("Licenses".into()),
        start_date: Some("2026-01-05T00:00:00Z".into()),
        end_date: Some("2027-01-05T00:00:00Z".into()),
        cancellation_allowed_until: Some("2026-01-12T00:00:00Z".into()),
        auto_renew: Some(true),
        is_trial: Some(false),
        price: None,
    }
}

fn read_with(subscriptions: Option<Vec<SourceSubscription>>) -> TenantRead {
    TenantRead {
        subscriptions,
        ..full_read(vec![])
    }
}

fn run(reads: Vec<TenantRead>, desk: &DeskSnapshot) -> Plan {
    plan(&validated(&config()), &input(reads), desk, now())
}

fn changes(plan: &Plan) -> Vec<&Change> {
    plan.changes
        .iter()
        .filter(|c| c.entity == Entity::Subscription)
        .collect()
}

fn desk_subscription(id: i64, external: &str, fields: Value) -> DeskSourceRecord {
    DeskSourceRecord {
        id: RecordId(id),
        external_id: external.into(),
        fields: serde_json::from_value::<BTreeMap<String, Value>>(fields).unwrap(),
    }
}

#[test]
fn a_new_subscription_is_created_for_the_tenants_customer_with_its_terms() {
    let plan = run(vec![read_with(Some(vec![subscription("a1", 10)]))], &empty_desk());
    let created = changes(&plan);
    assert_eq!(created.len(), 1);
    let change = created[0];
    assert_eq!(change.action, Action::Create);
    assert_eq!(change.external_id, "a1");
    let after = |f: &str| {
        change
            .fields
            .get(f)
            .map(|c| c.after.clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(after("customer_id"), json!(1));
    assert_eq!(after("quantity"), json!(10));
    assert_eq!(after("term_duration"), json!("P1Y"));
    assert_eq!(after("tenant_id"), json!(TENANT));
    assert_eq!(after("unit_price"), Value::Null, "no price read: none written");
    assert!(change.reason.contains("Business Basic (a1)"), "{}", change.reason);
}

#[test]
fn nothing_is_planned_when_subscriptions_were_not_read() {
    let desk = DeskSnapshot {
        subscriptions: vec![desk_subscription(
            5,
            "a1",
            json!({ "tenant_id": TENANT, "quantity": 3 }),
        )],
        ..empty_desk()
    };
    assert!(changes(&run(vec![read_with(None)], &desk)).is_empty());
}

#[test]
fn changes_update_the_record_and_dates_compare_as_instants() {
    let stored = json!({
        "tenant_id": TENANT,
        "customer_id": 1,
        "offer_id": "CFQ7TTC0LH18:0001:P1Y",
        "offer_name": "Microsoft 365 Business Basic",
        "friendly_name": "Business Basic",
        "quantity": 10,
        "status": "active",
        "billing_cycle": "monthly",
        "term_duration": "P1Y",
        "unit_type": "Licenses",
        // The desk's canonical form of the same instants.
        "start_date": "2026-01-05T00:00:00.000000Z",
        "end_date": "2027-01-05T00:00:00.000000Z",
        "cancellation_allowed_until": "2026-01-12T00:00:00.000000Z",
        "auto_renew": true,
        "is_trial": false,
        "unit_price": 4.25,
        "currency": "GBP",
        "market": "GB",
    });
    let desk = DeskSnapshot {
        subscriptions: vec![desk_subscription(5, "a1", stored)],
        ..empty_desk()
    };
    // The same subscription without a price read: nothing to do (the stored price stays).
    assert!(changes(&run(vec![read_with(Some(vec![subscription("a1", 10)]))], &desk)).is_empty());
    // More seats and a new price: one update with exactly those fields.
    let mut grown = subscription("a1", 12);
    grown.price = Some(SubscriptionPrice {
        unit_price: 4.5,
        currency: "GBP".into(),
        market: "GB".into(),
    });
    let plan = run(vec![read_with(Some(vec![grown]))], &desk);
    let updates = changes(&plan);
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].action, Action::Update);
    let fields: Vec<&str> = updates[0].fields.keys().map(String::as_str).collect();
    assert_eq!(fields, ["quantity", "unit_price"]);
    assert_eq!(plan.target_of(updates[0]), Some(RecordId(5)));
}

#[test]
fn a_subscription_no_longer_listed_is_marked_deleted_but_only_for_its_own_tenant() {
    let desk = DeskSnapshot {
        subscriptions: vec![
            desk_subscription(5, "gone", json!({ "tenant_id": TENANT, "status": "active" })),
            desk_subscription(
                6,
                "elsewhere",
                json!({ "tenant_id": OTHER_TENANT, "status": "active" }),
            ),
            desk_subscription(7, "old", json!({ "tenant_id": TENANT, "status": "deleted" })),
        ],
        ..empty_desk()
    };
    let plan = run(vec![read_with(Some(vec![]))], &desk);
    let marked = changes(&plan);
    assert_eq!(marked.len(), 1, "{marked:#?}");
    assert_eq!(marked[0].external_id, "gone");
    assert_eq!(marked[0].fields["status"].after, json!("deleted"));
    assert!(
        marked[0].reason.contains("no longer listed"),
        "{}",
        marked[0].reason
    );
}

#[test]
fn applying_the_plan_converges() {
    let reads = || {
        vec![read_with(Some(vec![
            subscription("a1", 10),
            subscription("b2", 1),
        ]))]
    };
    let first = run(reads(), &empty_desk());
    let desk = apply_to_snapshot(&empty_desk(), &first, CONNECTION).unwrap();
    assert_eq!(desk.subscriptions.len(), 2);
    assert!(
        changes(&run(reads(), &desk)).is_empty(),
        "a second plan of the same read changes nothing"
    );
}
