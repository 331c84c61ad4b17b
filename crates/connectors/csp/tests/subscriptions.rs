//! Licences and subscriptions by the guide's licence import type: subscribed SKUs become desk
//! licences, Partner Center's subscriptions become desk subscriptions (term, billing cycle,
//! commitment, price from the chosen marketplace), per connection or overridden per tenant; a
//! change in Partner Center arrives with the next run, a subscription no longer listed is marked
//! deleted, and a customer whose subscriptions cannot be read is reported while its users import.

use deskbridge_graph::GraphConfig;
use deskbridge_source::SourceRegistry;
use deskbridge_source::settings::{Purpose, validate};
use deskbridge_store::{Connection, Entity, Record, RecordScope, Store, WriteContext};
use deskbridge_sync::SyncOptions;
use deskbridge_testkit::store_test;
use serde_json::{Value, json};

use crate::{add_and_authorize, clock, partner, sources};

/// Changes the connection's settings as the API's PATCH does (validated, then the connector's edit).
async fn edit(
    store: &Store,
    registry: &SourceRegistry,
    connection: &Connection,
    change: Value,
) -> Connection {
    let source = registry.get("csp").unwrap();
    let values = validate(
        source.settings(),
        change.as_object().unwrap(),
        Purpose::Edit,
        registry.endpoint_policy(),
    )
    .unwrap();
    source.edit(store, connection, values).await.unwrap();
    let mut tx = store.read().await.unwrap();
    let connection = tx.connection(connection.id).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    connection
}

/// The desk subscriptions `connection` imported from `tenant`.
async fn desk_subscriptions(store: &Store, connection: &Connection, tenant: &str) -> Vec<Record> {
    let scope = RecordScope::ImportedFromTenant {
        connection: connection.id,
        tenant_id: tenant.to_owned(),
    };
    let mut tx = store.read().await.unwrap();
    let out = tx
        .list_scoped(Entity::Subscription, &scope, None, 1_000)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    out
}

/// The desk licences of the tenant's customer.
async fn desk_licences(store: &Store, tenant: &str) -> Vec<Record> {
    let mut tx = store.read().await.unwrap();
    let customer = tx.customer_of_tenant(tenant).await.unwrap().unwrap();
    let out = tx
        .list_scoped(
            Entity::Licence,
            &RecordScope::OfCustomers(vec![customer]),
            None,
            1_000,
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    out
}

fn by_id<'r>(records: &'r [Record], id: &str) -> &'r Record {
    records
        .iter()
        .find(|r| {
            r.source
                .as_ref()
                .is_some_and(|s| s.external_id.eq_ignore_ascii_case(id))
        })
        .unwrap_or_else(|| panic!("no desk subscription {id}"))
}

store_test! {
    async fn subscriptions_import_with_their_terms_and_marketplace_prices(db: &TestDb) {
        let (emu, tenants) = partner(81, 2, 5).await;
        let registry = sources(GraphConfig::default());
        let connection = add_and_authorize(&db.store, &registry, &emu, "csp-subs").await;
        let connection = edit(&db.store, &registry, &connection, json!({
            "licence_import": "subscriptions_and_skus",
            "subscription_pricing": "GB",
        }))
        .await;
        // The first run finds the tenants; the second reads them.
        for _ in 0..2 {
            let outcome = deskbridge_sync::sync(&db.store, &registry, "csp-subs", &SyncOptions::default(), &clock())
                .await
                .unwrap();
            assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
        }
        let world = emu.with_world(|w| w.partner_center.clone());
        for tenant in &tenants {
            let customer = {
                let mut tx = db.store.read().await.unwrap();
                let c = tx.customer_of_tenant(tenant).await.unwrap().unwrap();
                tx.commit().await.unwrap();
                c
            };
            let desk = desk_subscriptions(&db.store, &connection, tenant).await;
            let wanted: Vec<_> = world.subscriptions.iter().filter(|s| s.customer_id == *tenant).collect();
            assert!(!wanted.is_empty());
            assert_eq!(desk.len(), wanted.len(), "tenant {tenant}");
            for source in wanted {
                let record = by_id(&desk, &source.id);
                assert_eq!(record.get("customer_id"), &json!(customer.0));
                assert_eq!(record.get("quantity"), &json!(source.quantity));
                assert_eq!(record.get("status"), &json!(source.status));
                assert_eq!(record.get("billing_cycle"), &json!(source.billing_cycle));
                assert_eq!(record.get("term_duration"), &json!(source.term_duration));
                assert_eq!(record.get("friendly_name"), &json!(source.friendly_name));
                assert_eq!(record.get("auto_renew"), &json!(source.auto_renew_enabled));
                if source.unit_type == "Usage-based" {
                    // Partner Center's 9999-… "no end" is no date on the desk, and usage has no price.
                    assert_eq!(record.get("end_date"), &Value::Null, "{record:?}");
                    assert_eq!(record.get("unit_price"), &Value::Null, "{record:?}");
                    continue;
                }
                let instant = |field: &str| record.get(field).as_str().map(|t| t.parse::<jiff::Timestamp>().unwrap());
                assert_eq!(instant("end_date"), Some(source.commitment_end_date));
                assert_eq!(instant("start_date"), Some(source.effective_start_date));
                assert_eq!(instant("cancellation_allowed_until"), source.cancellation_allowed_until_date);
                if source.new_commerce {
                    let plan = match source.billing_cycle.as_str() {
                        "annual" => "Annual",
                        _ => "Monthly",
                    };
                    let price = world
                        .prices
                        .iter()
                        .find(|p| {
                            p.market == "GB"
                                && Some(&p.product_id) == source.product_id.as_ref()
                                && Some(&p.sku_id) == source.price_sku_id.as_ref()
                                && Some(&p.term_duration) == source.term_duration.as_ref()
                                && p.billing_plan == plan
                        })
                        .expect("the price sheet prices every new-commerce offer");
                    assert_eq!(record.get("unit_price").as_f64(), price.unit_price.parse::<f64>().ok(), "{record:?}");
                    assert_eq!(record.get("currency"), &json!("GBP"));
                    assert_eq!(record.get("market"), &json!("GB"));
                } else {
                    // A legacy offer is not on the licence-based price sheet: no price, not a zero.
                    assert_eq!(record.get("unit_price"), &Value::Null, "{record:?}");
                }
            }
            // SKUs too, with this import type.
            assert!(!desk_licences(&db.store, tenant).await.is_empty(), "tenant {tenant}");
        }

        // Partner Center changes: more seats on one subscription, another gone from the list.
        let first = tenants[0].clone();
        let (grown, gone) = emu.with_world_mut(|w| {
            let mut own = w.partner_center.subscriptions.iter_mut().filter(|s| s.customer_id == first);
            let grown = own.next().unwrap();
            grown.quantity += 3;
            let grown = (grown.id.clone(), grown.quantity);
            let gone = own.next().unwrap().id.clone();
            w.partner_center.subscriptions.retain(|s| s.id != gone);
            (grown, gone)
        });
        let outcome = deskbridge_sync::sync(&db.store, &registry, "csp-subs", &SyncOptions::default(), &clock())
            .await
            .unwrap();
        assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
        assert_eq!(outcome.mode, "delta", "subscriptions are read with a delta round of the users too");
        let desk = desk_subscriptions(&db.store, &connection, &first).await;
        assert_eq!(by_id(&desk, &grown.0).get("quantity"), &json!(grown.1));
        assert_eq!(by_id(&desk, &gone).get("status"), &json!("deleted"), "kept, marked deleted");

        // The same world again changes nothing.
        let again = deskbridge_sync::sync(&db.store, &registry, "csp-subs", &SyncOptions { full: true, ..SyncOptions::default() }, &clock())
            .await
            .unwrap();
        assert_eq!(again.counts.created + again.counts.updated + again.counts.deactivated, 0, "{:?}", again.notes);

        // The check covers the modules: the subscriptions and the price sheet are readable.
        let cx = deskbridge_source::SourceContext::detached(db.store.clone(), clock());
        let points = registry.get("csp").unwrap().check(&cx, &connection, "production").await;
        for module in ["subscriptions", "subscription prices"] {
            let point = points.iter().find(|p| p.name == module).unwrap_or_else(|| panic!("{module}: {points:?}"));
            assert!(point.ok, "{point:?}");
        }
        // The directory lists them with the customer's name.
        let mut tx = db.store.read().await.unwrap();
        let all = tx.list(Entity::Subscription, None, 1_000).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(all.len(), world.subscriptions.len());
    }
}

store_test! {
    async fn the_licence_import_type_and_a_tenants_override_decide_what_is_imported(db: &TestDb) {
        let (emu, tenants) = partner(82, 2, 4).await;
        let registry = sources(GraphConfig::default());
        let connection = add_and_authorize(&db.store, &registry, &emu, "csp-types").await;
        // Your subscriptions only: no SKU licences, no prices.
        let connection = edit(&db.store, &registry, &connection, json!({ "licence_import": "subscriptions" })).await;
        for _ in 0..2 {
            let outcome = deskbridge_sync::sync(&db.store, &registry, "csp-types", &SyncOptions::default(), &clock())
                .await
                .unwrap();
            assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
        }
        for tenant in &tenants {
            assert!(desk_licences(&db.store, tenant).await.is_empty(), "no SKUs for tenant {tenant}");
            let desk = desk_subscriptions(&db.store, &connection, tenant).await;
            assert!(!desk.is_empty());
            assert!(desk.iter().all(|s| s.get("unit_price").is_null()), "prices are not imported");
        }
        // The first tenant is overridden to all subscribed SKUs (the Tenants tab's override).
        {
            let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
            let mut config = tx.connection(connection.id).await.unwrap().unwrap().config;
            let entry = config["tenants"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .find(|t| t["tenant_id"] == json!(tenants[0]))
                .unwrap();
            entry["licence_import"] = json!("subscribed_skus");
            tx.update_connection_config(connection.id, &config).await.unwrap();
            tx.commit().await.unwrap();
        }
        let outcome = deskbridge_sync::sync(&db.store, &registry, "csp-types", &SyncOptions { full: true, ..SyncOptions::default() }, &clock())
            .await
            .unwrap();
        assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
        let skus = emu.with_world(|w| w.tenant(&tenants[0]).unwrap().skus.len());
        assert_eq!(desk_licences(&db.store, &tenants[0]).await.len(), skus, "SKUs for the overridden tenant");
        assert!(desk_licences(&db.store, &tenants[1]).await.is_empty(), "the other keeps the connection's type");
        // Subscriptions the overridden tenant no longer imports stay as they were: not marked deleted.
        let kept = desk_subscriptions(&db.store, &connection, &tenants[0]).await;
        assert!(kept.iter().all(|s| s.get("status") != &json!("deleted")), "{kept:?}");
    }
}

store_test! {
    async fn a_customer_whose_subscriptions_cannot_be_read_is_reported_and_its_users_import(db: &TestDb) {
        let (emu, tenants) = partner(83, 2, 4).await;
        let registry = sources(GraphConfig::default());
        let connection = add_and_authorize(&db.store, &registry, &emu, "csp-forbidden").await;
        let connection = edit(&db.store, &registry, &connection, json!({ "licence_import": "subscriptions_and_skus" })).await;
        emu.update_partner_faults(|f| f.forbidden_subscriptions = vec![tenants[1].clone()]);
        let outcome = deskbridge_sync::sync(&db.store, &registry, "csp-forbidden", &SyncOptions::default(), &clock())
            .await
            .unwrap();
        let about: Vec<_> = outcome
            .errors
            .iter()
            .filter(|e| e.entity.as_deref() == Some("subscription"))
            .collect();
        assert_eq!(about.len(), 1, "{:?}", outcome.errors);
        assert_eq!(about[0].tenant_id.as_deref(), Some(tenants[1].as_str()));
        assert!(about[0].message.contains("were not imported"), "{:?}", about[0]);
        assert!(about[0].code.contains("2003"), "Partner Center's code is kept: {:?}", about[0]);
        assert!(!about[0].remedy.clone().unwrap_or_default().is_empty());
        assert!(desk_subscriptions(&db.store, &connection, &tenants[1]).await.is_empty());
        assert!(!desk_subscriptions(&db.store, &connection, &tenants[0]).await.is_empty());
        // The tenant's users and SKUs are imported all the same.
        assert!(!desk_licences(&db.store, &tenants[1]).await.is_empty());
        let mut tx = db.store.read().await.unwrap();
        let scope = RecordScope::OfConnectionTenant {
            connection: connection.id,
            tenant_id: tenants[1].clone(),
            external_ids: Vec::new(),
        };
        assert_eq!(tx.list_scoped(Entity::User, &scope, None, 100).await.unwrap().len(), 4);
        tx.commit().await.unwrap();
    }
}

store_test! {
    async fn a_licences_run_refreshes_licences_and_subscriptions_and_reads_no_user(db: &TestDb) {
        let (emu, tenants) = partner(84, 2, 4).await;
        let registry = sources(GraphConfig::default());
        let connection = add_and_authorize(&db.store, &registry, &emu, "csp-licences").await;
        let connection = edit(&db.store, &registry, &connection, json!({ "licence_import": "subscriptions_and_skus" })).await;
        let outcome = deskbridge_sync::sync(&db.store, &registry, "csp-licences", &SyncOptions::default(), &clock())
            .await
            .unwrap();
        assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
        // More seats in Partner Center, and every user gone from the tenant: a licences run takes
        // the seats and leaves the users alone (it does not read them).
        let first = tenants[0].clone();
        let grown = emu.with_world_mut(|w| {
            let subscription = w.partner_center.subscriptions.iter_mut().find(|s| s.customer_id == first).unwrap();
            subscription.quantity += 2;
            let grown = (subscription.id.clone(), subscription.quantity);
            w.tenants.iter_mut().find(|t| t.id == first).unwrap().users.clear();
            grown
        });
        let licences = SyncOptions {
            entity: deskbridge_source::SyncEntity::Licences,
            tenant: Some(first.clone()),
            ..SyncOptions::default()
        };
        let outcome = deskbridge_sync::sync(&db.store, &registry, "csp-licences", &licences, &clock())
            .await
            .unwrap();
        assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
        assert_eq!(outcome.counts.deactivated, 0);
        let desk = desk_subscriptions(&db.store, &connection, &first).await;
        assert_eq!(by_id(&desk, &grown.0).get("quantity"), &json!(grown.1));
        let mut tx = db.store.read().await.unwrap();
        let runs = tx.runs(Some(connection.id), 1).await.unwrap();
        assert_eq!(runs[0].kind, "licences");
        let scope = RecordScope::OfConnectionTenant { connection: connection.id, tenant_id: first.clone(), external_ids: Vec::new() };
        let users = tx.list_scoped(Entity::User, &scope, None, 100).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(users.len(), 4);
        assert!(users.iter().all(|u| u.get("active") != &json!(false)), "nobody deactivated");
    }
}
