//! The Tenants tab through the connector's tenant table: the tenants a sync found with their desk
//! customers; "do not import" leaves a tenant out of the next sync (deactivating nobody); a tenant
//! given to another desk customer moves there with that customer's catch-all site mapping, and its
//! users follow; a tenant's licence import type overrides the connection's.

use deskbridge_graph::GraphConfig;
use deskbridge_source::{TenantCustomer, TenantUpdate};
use deskbridge_store::{Entity, RecordScope, WriteContext};
use deskbridge_sync::SyncOptions;
use deskbridge_testkit::store_test;
use serde_json::json;

use crate::{add_and_authorize, clock, partner, sources};

store_test! {
    async fn tenants_are_listed_left_out_moved_and_overridden(db: &TestDb) {
        let (emu, tenants) = partner(98, 3, 4).await;
        let registry = sources(GraphConfig::default());
        let connection = add_and_authorize(&db.store, &registry, &emu, "csp-tab").await;
        let outcome = deskbridge_sync::sync(&db.store, &registry, "csp-tab", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
        let table = registry.get("csp").unwrap().tenant_table().unwrap();
        let load = || async {
            let mut tx = db.store.read().await.unwrap();
            let c = tx.connection(connection.id).await.unwrap().unwrap();
            tx.commit().await.unwrap();
            c
        };
        let listed = table.tenants(&db.store, &load().await).await.unwrap();
        assert_eq!(listed.len(), 3);
        assert!(listed.iter().all(|t| t.customer_id.is_some() && t.customer_name.is_some()), "{listed:?}");

        // An unknown tenant says how tenants are found.
        let unknown = table
            .set_tenant(&db.store, &load().await, "00000000-0000-4000-8000-000000000000", &TenantUpdate::default())
            .await
            .unwrap_err();
        assert!(unknown.to_string().contains("has no customer tenant"), "{unknown}");

        // Do not import the first: the next sync leaves it out and deactivates nobody.
        let left_out = TenantUpdate { customer: Some(TenantCustomer::DoNotImport), ..TenantUpdate::default() };
        let entry = table.set_tenant(&db.store, &load().await, &tenants[0], &left_out).await.unwrap();
        assert_eq!(entry.customer_id, None);
        emu.with_world_mut(|w| w.tenants.iter_mut().find(|t| t.id == tenants[0]).unwrap().users.clear());
        let outcome = deskbridge_sync::sync(&db.store, &registry, "csp-tab", &SyncOptions { full: true, ..SyncOptions::default() }, &clock())
            .await
            .unwrap();
        assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
        assert_eq!(outcome.counts.deactivated, 0, "a tenant not imported is not read");

        // Give the second tenant to another desk customer: its users move to that customer's main site.
        let (other, main_site) = {
            let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
            let found = deskbridge_source::desk::customer_for_tenant(&mut tx, "Holding Ltd", "99999999-9999-4999-8999-999999999999").await.unwrap();
            tx.commit().await.unwrap();
            (found.customer, found.main_site)
        };
        let moved = TenantUpdate { customer: Some(TenantCustomer::Customer(other)), ..TenantUpdate::default() };
        let entry = table.set_tenant(&db.store, &load().await, &tenants[1], &moved).await.unwrap();
        assert_eq!(entry.customer_name.as_deref(), Some("Holding Ltd"));
        let mut tx = db.store.read().await.unwrap();
        assert_eq!(tx.customer_of_tenant(&tenants[1]).await.unwrap(), Some(other), "the tenant is the new customer's");
        tx.commit().await.unwrap();
        let outcome = deskbridge_sync::sync(&db.store, &registry, "csp-tab", &SyncOptions { full: true, ..SyncOptions::default() }, &clock())
            .await
            .unwrap();
        assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
        let mut tx = db.store.read().await.unwrap();
        let scope = RecordScope::OfConnectionTenant { connection: connection.id, tenant_id: tenants[1].clone(), external_ids: Vec::new() };
        let users = tx.list_scoped(Entity::User, &scope, None, 100).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(users.len(), 4);
        assert!(users.iter().all(|u| u.get("site_id") == &json!(main_site.0)), "users follow their tenant: {users:?}");

        // A tenant's own licence import type, and back to the connection's.
        let mut own = TenantUpdate::default();
        own.overrides.insert("licence_import".into(), Some("subscriptions".into()));
        let entry = table.set_tenant(&db.store, &load().await, &tenants[2], &own).await.unwrap();
        assert_eq!(entry.overrides.get("licence_import").map(String::as_str), Some("subscriptions"));
        let mut bad = TenantUpdate::default();
        bad.overrides.insert("licence_import".into(), Some("everything".into()));
        let error = table.set_tenant(&db.store, &load().await, &tenants[2], &bad).await.unwrap_err();
        assert!(error.to_string().contains("is not one of"), "{error}");
        let mut back = TenantUpdate::default();
        back.overrides.insert("licence_import".into(), None);
        let entry = table.set_tenant(&db.store, &load().await, &tenants[2], &back).await.unwrap();
        assert!(!entry.overrides.contains_key("licence_import"), "{:?}", entry.overrides);
        // A tenant keeps the relationship type it was found with (the connection's, GDAP).
        assert_eq!(entry.overrides.get("relationship_type").map(String::as_str), Some("gdap"));
    }
}

store_test! {
    async fn relationships_are_kept_mappings_generated_and_one_tenants_deltas_reset(db: &TestDb) {
        let (emu, tenants) = partner(102, 2, 3).await;
        let registry = sources(GraphConfig::default());
        // Customers created for new tenants go under the connection's top level.
        {
            let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
            tx.insert(Entity::TopLevel, None, &[("name".to_owned(), json!("Managed customers"))].into_iter().collect())
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        let connection = crate::add_and_authorize_with(&db.store, &registry, &emu, "csp-more", json!({ "top_level": "Managed customers" })).await;
        let source = registry.get("csp").unwrap();
        let bad = deskbridge_source::settings::validate(
            source.settings(),
            json!({ "top_level": "Nowhere" }).as_object().unwrap(),
            deskbridge_source::settings::Purpose::Edit,
            registry.endpoint_policy(),
        )
        .unwrap();
        let error = source.edit(&db.store, &connection, bad).await.unwrap_err();
        assert!(error.to_string().contains("no desk top level named \"Nowhere\""), "{error}");
        let outcome = deskbridge_sync::sync(&db.store, &registry, "csp-more", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
        let load = || async {
            let mut tx = db.store.read().await.unwrap();
            let c = tx.connection(connection.id).await.unwrap().unwrap();
            tx.commit().await.unwrap();
            c
        };
        let mut tx = db.store.read().await.unwrap();
        for tenant in &tenants {
            let customer = tx.customer_of_tenant(tenant).await.unwrap().unwrap();
            let record = tx.get(Entity::Customer, customer).await.unwrap().unwrap();
            assert!(record.get("top_level_id").as_i64().is_some(), "under the top level: {record:?}");
        }
        tx.commit().await.unwrap();
        let table = source.tenant_table().unwrap();
        let listed = table.tenants(&db.store, &load().await).await.unwrap();
        assert!(listed.iter().all(|t| t.relationship.as_deref() == Some("reseller and GDAP (active)")), "{listed:?}");

        // The second tenant's GDAP relationship ends: the next discovery says so.
        let admin = emu.summary().admin_url;
        let response = reqwest::Client::new()
            .put(format!("{admin}/partner/gdap/{}", tenants[1]))
            .json(&json!({ "status": "terminated" }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        deskbridge_sync::sync(&db.store, &registry, "csp-more", &SyncOptions::default(), &clock()).await.unwrap();
        let listed = table.tenants(&db.store, &load().await).await.unwrap();
        let second = listed.iter().find(|t| t.tenant_id == tenants[1]).unwrap();
        assert_eq!(second.relationship.as_deref(), Some("reseller, no active GDAP"));

        // Generate mappings: a tenant whose site mapping was removed gets its catch-all again.
        {
            let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
            let mut config = tx.connection(connection.id).await.unwrap().unwrap().config;
            let mappings = config["mapping"]["site_mappings"].as_array_mut().unwrap();
            mappings.retain(|m| m["tenant_id"] != json!(tenants[0]));
            tx.update_connection_config(connection.id, &config).await.unwrap();
            tx.commit().await.unwrap();
        }
        assert_eq!(table.generate_mappings(&db.store, &load().await).await.unwrap(), 1);
        assert_eq!(table.generate_mappings(&db.store, &load().await).await.unwrap(), 0, "nothing left to add");

        // One tenant's deltas reset: its cursors go, the other's stay.
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let before = tx.cursors_of(connection.id).await.unwrap();
        assert!(before.iter().any(|(t, _, _)| t == &tenants[0]), "{before:?}");
        tx.clear_tenant_cursors(connection.id, &tenants[0].to_uppercase()).await.unwrap();
        let after = tx.cursors_of(connection.id).await.unwrap();
        tx.commit().await.unwrap();
        assert!(after.iter().all(|(t, _, _)| t != &tenants[0]), "{after:?}");
        assert!(after.iter().any(|(t, _, _)| t == &tenants[1]), "{after:?}");
    }
}

store_test! {
    async fn a_tenant_found_during_a_sync_is_imported_by_that_sync(db: &TestDb) {
        let (emu, tenants) = partner(104, 2, 3).await;
        let admin = emu.summary().admin_url;
        let gdap = |tenant: String, status: &'static str| {
            let admin = admin.clone();
            async move {
                let response = reqwest::Client::new()
                    .put(format!("{admin}/partner/gdap/{tenant}"))
                    .json(&json!({ "status": status }))
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success(), "{}", response.text().await.unwrap_or_default());
            }
        };
        // The second customer's GDAP relationship is awaiting approval when the partner admin
        // signs in and when the first sync runs: it is not assigned, nothing of it imported.
        gdap(tenants[1].clone(), "approvalPending").await;
        let registry = sources(GraphConfig::default());
        add_and_authorize(&db.store, &registry, &emu, "csp-new").await;
        let first = deskbridge_sync::sync(&db.store, &registry, "csp-new", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(first.status, "succeeded", "{:?}", first.errors);
        let mut tx = db.store.read().await.unwrap();
        assert_eq!(tx.customer_of_tenant(&tenants[1]).await.unwrap(), None);
        tx.commit().await.unwrap();

        // Approved: the next sync finds the tenant, assigns it and imports its users in the same run.
        gdap(tenants[1].clone(), "active").await;
        let second = deskbridge_sync::sync(&db.store, &registry, "csp-new", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(second.status, "succeeded", "{:?}", second.errors);
        assert!(
            second.notes.iter().any(|n| n.contains("new customer tenant") && n.contains(&tenants[1])),
            "{:?}",
            second.notes
        );
        let mut tx = db.store.read().await.unwrap();
        let customer = tx.customer_of_tenant(&tenants[1]).await.unwrap().expect("assigned");
        let site = tx.main_site(customer).await.unwrap().unwrap();
        let users = tx.list(Entity::User, None, 1000).await.unwrap();
        tx.commit().await.unwrap();
        let theirs: Vec<_> = users.iter().filter(|u| u.get("site_id") == &json!(site.0)).collect();
        assert_eq!(theirs.len(), 3, "{users:?}");
        // The run's outbound log holds the discovery's Partner Center requests.
        let run = second.run_id.unwrap();
        let mut tx = db.store.read().await.unwrap();
        let requests = tx.outbound_log(Some(run), 1000).await.unwrap();
        tx.commit().await.unwrap();
        assert!(
            requests.iter().any(|r| r["url"].as_str().is_some_and(|u| u.contains("/v1/customers"))),
            "{requests:?}"
        );
    }
}

store_test! {
    async fn tenants_mapped_to_customers_may_sign_in_until_unmapped_or_the_connection_goes(db: &TestDb) {
        let (emu, tenants) = partner(99, 3, 2).await;
        let registry = sources(GraphConfig::default());
        let connection = add_and_authorize(&db.store, &registry, &emu, "csp-sso").await;
        let outcome = deskbridge_sync::sync(&db.store, &registry, "csp-sso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
        let mapped = registry.mapped_tenants(&db.store).await.unwrap();
        let mut ids: Vec<&str> = mapped.iter().map(|t| t.tenant_id.as_str()).collect();
        ids.sort_unstable();
        let mut expected: Vec<String> = tenants.iter().map(|t| t.to_lowercase()).collect();
        expected.sort_unstable();
        assert_eq!(ids, expected);
        assert!(mapped.iter().all(|t| t.connection_name == "csp-sso" && t.customer_name.is_some()), "{mapped:?}");

        // "Do not import" takes the tenant off the list at once.
        let table = registry.get("csp").unwrap().tenant_table().unwrap();
        let mut tx = db.store.read().await.unwrap();
        let stored = tx.connection(connection.id).await.unwrap().unwrap();
        tx.commit().await.unwrap();
        let left_out = TenantUpdate { customer: Some(TenantCustomer::DoNotImport), ..TenantUpdate::default() };
        table.set_tenant(&db.store, &stored, &tenants[0], &left_out).await.unwrap();
        let mapped = registry.mapped_tenants(&db.store).await.unwrap();
        assert_eq!(mapped.len(), 2);
        assert!(mapped.iter().all(|t| !t.tenant_id.eq_ignore_ascii_case(&tenants[0])));

        // Deleting the connection takes its tenants with it.
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        tx.delete_connection(connection.id).await.unwrap();
        tx.commit().await.unwrap();
        assert!(registry.mapped_tenants(&db.store).await.unwrap().is_empty());
    }
}

store_test! {
    async fn removing_the_connection_removes_the_customers_it_created_that_hold_nothing_else(db: &TestDb) {
        let (emu, tenants) = partner(131, 3, 4).await;
        let registry = sources(GraphConfig::default());
        // A desk customer that already has the third tenant's name: the connection assigns the
        // tenant to it and did not create it, so removing the connection leaves it alone.
        let third_name = emu.with_world(|w| w.tenant(&tenants[2]).unwrap().display_name.clone());
        let existing = {
            let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
            let found = deskbridge_source::desk::customer_for_tenant(&mut tx, &third_name, "99999999-9999-4999-8999-999999999999")
                .await
                .unwrap();
            tx.commit().await.unwrap();
            found.customer
        };
        let connection = add_and_authorize(&db.store, &registry, &emu, "csp-gone").await;
        let table = registry.get("csp").unwrap().tenant_table().unwrap();
        let load = || deskbridge_sync::load_connection(&db.store, "csp-gone");
        let listed = table.tenants(&db.store, &load().await.unwrap()).await.unwrap();
        let name_of = |tenant: &str| {
            listed.iter().find(|t| t.tenant_id == tenant).and_then(|t| t.customer_name.clone()).unwrap()
        };
        let (first, second) = (name_of(&tenants[0]), name_of(&tenants[1]));
        assert_eq!(name_of(&tenants[2]), third_name);
        let mut tx = db.store.read().await.unwrap();
        let created = tx.created_customers(connection.id).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(created.len(), 2, "the sign-in created a customer for each tenant without one: {created:?}");
        assert!(!created.contains(&existing), "a customer matched by name was not created by the connection");

        // The first tenant is left out before anything is imported: its customer holds nothing.
        let left_out = TenantUpdate { customer: Some(TenantCustomer::DoNotImport), ..TenantUpdate::default() };
        table.set_tenant(&db.store, &load().await.unwrap(), &tenants[0], &left_out).await.unwrap();
        let outcome = deskbridge_sync::sync(&db.store, &registry, "csp-gone", &SyncOptions { full: true, ..SyncOptions::default() }, &clock())
            .await
            .unwrap();
        assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);

        let connection = load().await.unwrap();
        let removal = deskbridge_sync::remove_connection(&db.store, &connection).await.unwrap();
        assert_eq!(removal.removed_customers, vec![first.clone()], "{removal:?}");
        assert_eq!(removal.kept_customers.len(), 1, "{removal:?}");
        assert_eq!(removal.kept_customers[0].name, second);
        assert!(removal.kept_customers[0].holds.contains(&"4 users".to_owned()), "{removal:?}");
        assert!(removal.lines().iter().any(|l| l.contains(&format!("kept the desk customer {second:?}"))), "{:?}", removal.lines());

        let mut tx = db.store.read().await.unwrap();
        let names: Vec<String> = tx
            .list(Entity::Customer, None, 100)
            .await
            .unwrap()
            .iter()
            .filter_map(|c| c.text("name").map(str::to_owned))
            .collect();
        assert!(tx.connection_by_name("csp-gone").await.unwrap().is_none());
        tx.commit().await.unwrap();
        assert!(!names.contains(&first), "{names:?}");
        assert!(names.contains(&second) && names.contains(&third_name), "{names:?}");
    }
}
