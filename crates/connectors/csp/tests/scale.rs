//! 300 customer tenants under Microsoft's weather — 20 % of Graph requests throttled (429 with
//! Retry-After), 5 % failing (503), Partner Center throttling its first calls — converge to the
//! world exactly: every tenant in its own desk customer with exactly its users, nothing doubled.

use std::sync::Arc;
use std::time::Duration;

use deskbridge_connector_csp::CspSource;
use deskbridge_graph::GraphConfig;
use deskbridge_partner::PartnerConfig;
use deskbridge_source::SourceRegistry;
use deskbridge_store::{Entity, RecordScope};
use deskbridge_sync::SyncOptions;
use deskbridge_testkit::store_test;

use crate::{add_and_authorize, clock, partner};

const TENANTS: usize = 300;
const USERS: usize = 2;

store_test! {
    async fn three_hundred_tenants_under_throttling_and_outages_converge_to_the_world(db: &TestDb) {
        let (emu, tenants) = partner(97, TENANTS, USERS).await;
        // Retries quick enough for a test; what is measured is that they happen and converge.
        let graph = GraphConfig {
            max_attempts: 8,
            backoff_base: Duration::from_millis(2),
            backoff_max: Duration::from_millis(20),
            ..GraphConfig::default()
        };
        let partner_config = PartnerConfig {
            backoff_base: Duration::from_millis(2),
            backoff_max: Duration::from_millis(20),
            ..PartnerConfig::default()
        };
        let registry = SourceRegistry::new()
            .with(Arc::new(CspSource::new(graph, partner_config)))
            .with_endpoint_policy(deskbridge_source::settings::EndpointPolicy::allowing(["127.0.0.1"]));
        let connection = add_and_authorize(&db.store, &registry, &emu, "csp-300").await;
        emu.update_faults(|f| {
            f.random_429_percent = 20.0;
            f.random_503_percent = 5.0;
            f.retry_after_secs = 0;
            f.seed = 300;
        });
        emu.update_partner_faults(|f| {
            f.force_429 = 3;
            f.retry_after_secs = 0;
        });
        // A tenant whose retries ran out is reported and read again by the next run; nobody is
        // deactivated for it meanwhile. Three runs are plenty at these rates.
        let mut runs = 0;
        loop {
            runs += 1;
            let outcome = deskbridge_sync::sync(&db.store, &registry, "csp-300", &SyncOptions { full: true, ..SyncOptions::default() }, &clock())
                .await
                .unwrap();
            assert_eq!(outcome.counts.deactivated, 0, "nobody is deactivated by a fault");
            if outcome.status == "succeeded" {
                break;
            }
            assert!(runs < 4, "still not converged after {runs} runs: {:?}", outcome.errors);
        }
        let throttled = emu.request_log().iter().filter(|e| e.status == 429).count();
        let failed = emu.request_log().iter().filter(|e| e.status == 503).count();
        assert!(throttled > 100 && failed > 20, "the faults were met: {throttled} × 429, {failed} × 503");
        emu.update_faults(|f| {
            f.random_429_percent = 0.0;
            f.random_503_percent = 0.0;
        });
        // Partner Center lists every customer but the last (managed through GDAP only, without a
        // reseller relationship): those are the tenants a CSP connection imports.
        let listed: Vec<String> = emu.with_world(|w| w.partner_center.customers.iter().map(|c| c.tenant_id.clone()).collect());
        assert_eq!(listed.len(), tenants.len() - 1);
        let mut tx = db.store.read().await.unwrap();
        let mut customers = std::collections::BTreeSet::new();
        for tenant in &listed {
            let customer = tx.customer_of_tenant(tenant).await.unwrap().expect("each tenant has its customer");
            assert!(customers.insert(customer), "one customer per tenant");
            let scope = RecordScope::OfConnectionTenant { connection: connection.id, tenant_id: tenant.clone(), external_ids: Vec::new() };
            let users = tx.list_scoped(Entity::User, &scope, None, 100).await.unwrap();
            let world: Vec<String> = emu.with_world(|w| w.tenant(tenant).unwrap().users.iter().map(|u| u.id.clone()).collect());
            let mut desk: Vec<String> = users.iter().filter_map(|u| u.source.as_ref().map(|s| s.external_id.clone())).collect();
            desk.sort();
            let mut world = world;
            world.sort();
            assert_eq!(desk, world, "tenant {tenant}: exactly its users");
        }
        tx.commit().await.unwrap();
        // And once more without faults: nothing left to do.
        let calm = deskbridge_sync::sync(&db.store, &registry, "csp-300", &SyncOptions { full: true, ..SyncOptions::default() }, &clock())
            .await
            .unwrap();
        assert_eq!(calm.status, "succeeded", "{:?}", calm.errors);
        assert_eq!(calm.counts.created + calm.counts.updated + calm.counts.deactivated, 0);
    }
}
