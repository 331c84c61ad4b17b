//! Consumption billing: each customer's Azure usage (usage-based subscriptions' daily
//! utilisation) becomes desk usage lines linked to their customer and subscription; reading the
//! same days again changes nothing, a revised day updates its line, and a customer Partner Center
//! refuses is reported while the others are read.

use deskbridge_graph::GraphConfig;
use deskbridge_source::SyncEntity;
use deskbridge_source::settings::{Purpose, validate};
use deskbridge_store::{Entity, RecordScope};
use deskbridge_sync::SyncOptions;
use deskbridge_testkit::store_test;
use jiff::SignedDuration;
use serde_json::json;

use crate::{add_and_authorize, clock, partner, sources};

store_test! {
    async fn usage_becomes_lines_of_its_customer_read_once_and_revised(db: &TestDb) {
        let (emu, tenants) = partner(101, 2, 3).await;
        let registry = sources(GraphConfig::default());
        let connection = add_and_authorize(&db.store, &registry, &emu, "csp-usage").await;
        let source = registry.get("csp").unwrap();
        let values = validate(
            source.settings(),
            json!({ "licence_import": "subscriptions_and_skus" }).as_object().unwrap(),
            Purpose::Edit,
            registry.endpoint_policy(),
        )
        .unwrap();
        source.edit(&db.store, &connection, values).await.unwrap();
        let outcome = deskbridge_sync::sync(&db.store, &registry, "csp-usage", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
        // The world's usage is of the 30 days before its reference time: moved to the 30 days
        // before today, the window a first consumption read covers.
        let now = clock().now();
        let today = jiff::Timestamp::from_second(now.as_second() - now.as_second().rem_euclid(86_400)).unwrap();
        let shift = emu.with_world_mut(|w| {
            let newest = w.partner_center.usage.iter().map(|u| u.usage_end_time).max().unwrap();
            let shift = today.duration_since(newest);
            for u in &mut w.partner_center.usage {
                u.usage_start_time = u.usage_start_time.checked_add(shift).unwrap();
                u.usage_end_time = u.usage_end_time.checked_add(shift).unwrap();
            }
            shift
        });
        assert!(shift > SignedDuration::ZERO);
        let usage = SyncOptions { entity: SyncEntity::Consumption, ..SyncOptions::default() };
        let outcome = deskbridge_sync::sync(&db.store, &registry, "csp-usage", &usage, &clock()).await.unwrap();
        assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
        assert_eq!(outcome.counts.deactivated, 0);
        let world = emu.with_world(|w| w.partner_center.usage.clone());
        let mut tx = db.store.read().await.unwrap();
        let mut lines_total = 0;
        for tenant in &tenants {
            let customer = tx.customer_of_tenant(tenant).await.unwrap().unwrap();
            let scope = RecordScope::ImportedFromTenant { connection: connection.id, tenant_id: tenant.clone() };
            let lines = tx.list_scoped(Entity::UsageLine, &scope, None, 10_000).await.unwrap();
            let expected: Vec<_> = world.iter().filter(|u| u.customer_id == *tenant).collect();
            assert_eq!(lines.len(), expected.len(), "tenant {tenant}");
            lines_total += lines.len();
            for line in &lines {
                assert_eq!(line.get("customer_id"), &json!(customer.0));
                let subscription = line.get("subscription_id").as_i64().expect("linked to its subscription");
                let sub = tx.get(Entity::Subscription, deskbridge_core::RecordId(subscription)).await.unwrap().unwrap();
                assert_eq!(sub.get("unit_type"), &json!("Usage-based"));
            }
            let sum: f64 = lines.iter().filter_map(|l| l.get("quantity").as_f64()).sum();
            let wanted: f64 = expected.iter().map(|u| u.quantity).sum();
            assert!((sum - wanted).abs() < 1e-6, "tenant {tenant}: {sum} against {wanted}");
        }
        tx.commit().await.unwrap();
        assert!(lines_total > 0, "the world has usage");
        assert_eq!(outcome.counts.created as usize, lines_total, "{:?}", outcome.counts);

        // The same days again: nothing changes, nothing doubles.
        let again = deskbridge_sync::sync(&db.store, &registry, "csp-usage", &usage, &clock()).await.unwrap();
        assert_eq!(again.status, "succeeded", "{:?}", again.errors);
        assert_eq!(again.counts.created + again.counts.updated, 0, "{:?}", again.counts);

        // A revised day (reported late): its line is updated.
        emu.with_world_mut(|w| {
            let newest = w.partner_center.usage.iter_mut().max_by_key(|u| u.usage_start_time).unwrap();
            newest.quantity += 1.0;
        });
        let revised = deskbridge_sync::sync(&db.store, &registry, "csp-usage", &usage, &clock()).await.unwrap();
        assert_eq!(revised.counts.updated, 1, "{:?}", revised.counts);
        assert_eq!(revised.counts.created, 0);

        // A customer whose subscriptions Partner Center refuses is reported; the others are read.
        emu.update_partner_faults(|f| f.forbidden_subscriptions = vec![tenants[1].clone()]);
        let partial = deskbridge_sync::sync(&db.store, &registry, "csp-usage", &usage, &clock()).await.unwrap();
        assert_eq!(partial.status, "partial", "{:?}", partial.errors);
        assert!(
            partial.errors.iter().any(|e| e.tenant_id.as_deref() == Some(tenants[1].as_str()) && e.message.contains("usage")),
            "{:?}",
            partial.errors
        );
    }
}
