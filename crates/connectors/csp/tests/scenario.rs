//! A CSP sync imports every GDAP customer tenant's users into the right desk customers; a tenant
//! whose GDAP app has no consent is reported (naming it, with the remedy) and skipped while the
//! others import, and is imported once consent is granted.

use deskbridge_core::RecordId;
use deskbridge_graph::GraphConfig;
use deskbridge_store::{Entity, RecordScope, Store, WriteContext};
use deskbridge_sync::SyncOptions;
use deskbridge_testkit::store_test;
use serde_json::json;

use crate::{add_and_authorize, clock, partner, set_consent, sources};

/// The desk users `connection` imported from `tenant`, each with the customer of its site.
async fn imported(
    store: &Store,
    connection: deskbridge_core::ConnectionId,
    tenant: &str,
) -> Vec<Option<i64>> {
    let scope = RecordScope::OfConnectionTenant {
        connection,
        tenant_id: tenant.to_owned(),
        external_ids: Vec::new(),
    };
    let mut tx = store.read().await.unwrap();
    let users = tx.list_scoped(Entity::User, &scope, None, 1_000).await.unwrap();
    let mut out = Vec::new();
    for user in users {
        let site = user.get("site_id").as_i64().map(RecordId);
        let customer = match site {
            Some(site) => tx
                .get(Entity::Site, site)
                .await
                .unwrap()
                .and_then(|s| s.get("customer_id").as_i64()),
            None => None,
        };
        out.push(customer);
    }
    tx.commit().await.unwrap();
    out
}

async fn customer_of(store: &Store, tenant: &str) -> Option<RecordId> {
    let mut tx = store.read().await.unwrap();
    let owner = tx.customer_of_tenant(tenant).await.unwrap();
    tx.commit().await.unwrap();
    owner
}

fn tenant_name(emu: &deskbridge_emulator::Emulator, tenant: &str) -> String {
    emu.summary()
        .tenants
        .iter()
        .find(|t| t.id == tenant)
        .map(|t| t.display_name.clone())
        .unwrap()
}

store_test! {
    async fn a_csp_sync_imports_every_gdap_tenant_into_its_customer(db: &TestDb) {
        let (emu, tenants) = partner(71, 3, 12).await;
        let registry = sources(GraphConfig::default());
        // A desk customer that already has the second tenant's name: matched by name, not duplicated.
        let existing = {
            let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
            let name = tenant_name(&emu, &tenants[1]);
            let id = tx
                .insert(Entity::Customer, None, &[("name".to_owned(), json!(name))].into_iter().collect())
                .await
                .unwrap();
            tx.commit().await.unwrap();
            id
        };
        let connection = add_and_authorize(&db.store, &registry, &emu, "csp").await;
        let outcome = deskbridge_sync::sync(&db.store, &registry, "csp", &SyncOptions::default(), &clock())
            .await
            .unwrap();
        assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
        let mut customers = Vec::new();
        for tenant in &tenants {
            let customer = customer_of(&db.store, tenant).await.expect("the tenant has its desk customer");
            let users = imported(&db.store, connection.id, tenant).await;
            assert_eq!(users.len(), 12, "tenant {tenant}");
            assert!(users.iter().all(|c| *c == Some(customer.0)), "tenant {tenant}'s users are at its customer's sites");
            customers.push(customer);
        }
        assert_eq!(customers[1], existing, "matched by name");
        customers.dedup();
        assert_eq!(customers.len(), 3, "one customer per tenant");

        // The same world again changes nothing.
        let again = deskbridge_sync::sync(&db.store, &registry, "csp", &SyncOptions { full: true, ..SyncOptions::default() }, &clock())
            .await
            .unwrap();
        assert_eq!(again.status, "succeeded", "{:?}", again.errors);
        assert_eq!(again.counts.created + again.counts.updated + again.counts.deactivated, 0);

        // A change in one tenant arrives by that tenant's delta round.
        let user = emu.with_world(|w| w.tenant(&tenants[0]).unwrap().users[0].id.clone());
        let summary = emu.summary();
        let response = reqwest::Client::new()
            .patch(format!("{}/tenants/{}/users/{user}", summary.admin_url, tenants[0]))
            .json(&json!({ "jobTitle": "Head of Synthetic Data" }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        let delta = deskbridge_sync::sync(&db.store, &registry, "csp", &SyncOptions::default(), &clock())
            .await
            .unwrap();
        assert_eq!(delta.status, "succeeded", "{:?}", delta.errors);
        assert_eq!(delta.mode, "delta");
        assert_eq!(delta.counts.updated, 1, "{:?}", delta.notes);
    }
}

store_test! {
    async fn new_endpoints_drop_the_sign_in_and_the_secrets(db: &TestDb) {
        let (emu, _) = partner(73, 1, 3).await;
        let registry = sources(GraphConfig::default());
        let connection = add_and_authorize(&db.store, &registry, &emu, "csp-moved").await;
        let source = registry.get("csp").unwrap();
        let values = deskbridge_source::settings::validate(
            source.settings(),
            json!({ "partner_center_url": "https://api.partnercenter.microsoft.com" }).as_object().unwrap(),
            deskbridge_source::settings::Purpose::Edit,
            registry.endpoint_policy(),
        )
        .unwrap();
        source.edit(&db.store, &connection, values).await.unwrap();
        let mut tx = db.store.read().await.unwrap();
        let moved = tx.connection(connection.id).await.unwrap().unwrap();
        let secrets = deskbridge_source::ConnectionSecrets(connection.id);
        assert!(secrets.get(&mut tx, deskbridge_connector_csp::SECRET_GDAP_SECRET).await.unwrap().is_none());
        assert!(secrets.get(&mut tx, deskbridge_connector_csp::SECRET_PARTNER_SECRET).await.unwrap().is_none());
        tx.commit().await.unwrap();
        assert_eq!(source.sign_in().unwrap().authorised(&db.store, &moved).await.unwrap(), Some(false));
        assert_eq!(moved.config["partner_center_url"], "https://api.partnercenter.microsoft.com");
    }
}

store_test! {
    async fn a_tenant_without_consent_is_reported_and_skipped_while_the_others_import(db: &TestDb) {
        let (emu, tenants) = partner(72, 3, 10).await;
        let registry = sources(GraphConfig::default());
        set_consent(&emu, &tenants[2], false).await;
        let connection = add_and_authorize(&db.store, &registry, &emu, "csp-consent").await;
        let outcome = deskbridge_sync::sync(&db.store, &registry, "csp-consent", &SyncOptions::default(), &clock())
            .await
            .unwrap();
        assert_eq!(outcome.status, "partial", "{:?}", outcome.errors);
        let broken: Vec<_> = outcome
            .errors
            .iter()
            .filter(|e| e.tenant_id.as_deref() == Some(tenants[2].as_str()))
            .collect();
        assert_eq!(broken.len(), 1, "{:?}", outcome.errors);
        let error = broken[0];
        assert_eq!(error.code, "AADSTS7000229", "{error:?}");
        assert!(error.message.contains(&tenants[2]), "{error:?}");
        assert!(error.message.contains(&tenant_name(&emu, &tenants[2])), "{error:?}");
        assert!(error.remedy.as_deref().unwrap_or_default().contains("admin consent"), "{error:?}");
        for tenant in &tenants[..2] {
            assert_eq!(imported(&db.store, connection.id, tenant).await.len(), 10, "tenant {tenant}");
        }
        assert!(imported(&db.store, connection.id, &tenants[2]).await.is_empty());

        // The check says the same, per tenant.
        let cx = deskbridge_source::SourceContext::detached(db.store.clone(), clock());
        let points = registry.get("csp").unwrap().check(&cx, &connection, "production").await;
        let failed: Vec<_> = points.iter().filter(|p| !p.ok).collect();
        assert_eq!(failed.len(), 1, "{points:?}");
        assert!(failed[0].detail.contains(&tenants[2]), "{points:?}");
        assert!(failed[0].remedy.contains("admin consent"), "{points:?}");

        // Consent granted: the next sync imports it, and the others are unchanged.
        set_consent(&emu, &tenants[2], true).await;
        let healed = deskbridge_sync::sync(&db.store, &registry, "csp-consent", &SyncOptions::default(), &clock())
            .await
            .unwrap();
        assert_eq!(healed.status, "succeeded", "{:?}", healed.errors);
        assert_eq!(imported(&db.store, connection.id, &tenants[2]).await.len(), 10);
    }
}

store_test! {
    async fn each_gdap_tenants_devices_become_assets_of_its_own_customer(db: &TestDb) {
        let (emu, tenants) = partner(74, 3, 20).await;
        let registry = sources(GraphConfig::default());
        set_consent(&emu, &tenants[2], false).await;
        let connection = add_and_authorize(&db.store, &registry, &emu, "csp-assets").await;
        deskbridge_sync::sync(&db.store, &registry, "csp-assets", &SyncOptions::default(), &clock())
            .await
            .unwrap();
        let mut mapping = deskbridge_sync::open_connection(&db.store, &registry, "csp-assets")
            .await
            .unwrap()
            .mapping()
            .clone();
        mapping.assets = Some(deskbridge_mapping::AssetMappings::default());
        deskbridge_sync::save_mappings(&db.store, &registry, "csp-assets", mapping, &clock())
            .await
            .unwrap();
        let assets = SyncOptions { entity: deskbridge_source::SyncEntity::Assets, ..SyncOptions::default() };
        let outcome = deskbridge_sync::sync(&db.store, &registry, "csp-assets", &assets, &clock())
            .await
            .unwrap();
        // The unconsented tenant is reported and skipped; the others' devices are imported.
        assert_eq!(outcome.status, "partial", "{:?}", outcome.errors);
        assert!(
            outcome.errors.iter().any(|e| e.tenant_id.as_deref() == Some(tenants[2].as_str())
                && e.message.contains(&tenant_name(&emu, &tenants[2]))),
            "{:?}",
            outcome.errors
        );
        let mut tx = db.store.read().await.unwrap();
        for (i, tenant) in tenants.iter().enumerate() {
            let customer = tx.customer_of_tenant(tenant).await.unwrap().unwrap();
            let scope = RecordScope::ImportedFromTenant { connection: connection.id, tenant_id: tenant.clone() };
            let assets = tx.list_scoped(Entity::Asset, &scope, None, 1_000).await.unwrap();
            let devices = emu.with_world(|w| {
                w.tenant(tenant).unwrap().devices.iter().filter(|d| d.management_agent != "msSense").count()
            });
            if i == 2 {
                assert!(assets.is_empty(), "tenant {tenant} was not read");
                continue;
            }
            assert_eq!(assets.len(), devices, "tenant {tenant}");
            for asset in &assets {
                // Everything about an asset stays within its tenant's customer.
                assert_eq!(asset.get("customer_id"), &json!(customer.0));
                let site = tx.get(Entity::Site, RecordId(asset.get("site_id").as_i64().unwrap())).await.unwrap().unwrap();
                assert_eq!(site.get("customer_id"), &json!(customer.0));
                if let Some(user) = asset.get("user_id").as_i64() {
                    let user = tx.get(Entity::User, RecordId(user)).await.unwrap().unwrap();
                    assert_eq!(user.get("azure_tenant_id"), &json!(tenant), "a device's user is of its own tenant");
                }
            }
        }
        tx.commit().await.unwrap();
    }
}

store_test! {
    async fn a_run_for_one_customer_tenant_imports_that_tenant_alone(db: &TestDb) {
        let (emu, tenants) = partner(75, 3, 10).await;
        let registry = sources(GraphConfig::default());
        let connection = add_and_authorize(&db.store, &registry, &emu, "csp-one").await;
        // The first sync assigns the tenants to their customers; then one tenant is imported alone.
        let one = SyncOptions { tenant: Some(tenants[1].to_uppercase()), ..SyncOptions::default() };
        deskbridge_sync::sync(&db.store, &registry, "csp-one", &SyncOptions { plan_only: true, ..SyncOptions::default() }, &clock())
            .await
            .unwrap();
        let outcome = deskbridge_sync::sync(&db.store, &registry, "csp-one", &one, &clock()).await.unwrap();
        assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
        assert_eq!(imported(&db.store, connection.id, &tenants[1]).await.len(), 10);
        for other in [&tenants[0], &tenants[2]] {
            assert!(imported(&db.store, connection.id, other).await.is_empty(), "tenant {other} was not read");
        }
        // A tenant that is not the connection's is refused, naming its tenants.
        let stranger = SyncOptions { tenant: Some("00000000-0000-4000-8000-00000000dead".into()), ..SyncOptions::default() };
        let error = deskbridge_sync::sync(&db.store, &registry, "csp-one", &stranger, &clock()).await.unwrap_err();
        assert!(error.to_string().contains("has no tenant 00000000-0000-4000-8000-00000000dead"), "{error}");
        assert!(error.to_string().contains(&tenants[0]), "{error}");
    }
}

store_test! {
    async fn the_check_reads_each_tenants_devices_once_assets_are_imported(db: &TestDb) {
        let (emu, tenants) = partner(76, 2, 6).await;
        let registry = sources(GraphConfig::default());
        let connection = add_and_authorize(&db.store, &registry, &emu, "csp-check").await;
        deskbridge_sync::sync(&db.store, &registry, "csp-check", &SyncOptions::default(), &clock())
            .await
            .unwrap();
        let cx = deskbridge_source::SourceContext::detached(db.store.clone(), clock());
        let points = registry.get("csp").unwrap().check(&cx, &connection, "production").await;
        assert!(points.iter().all(|p| !p.name.ends_with(" devices")), "{points:?}");
        let mut mapping = deskbridge_sync::open_connection(&db.store, &registry, "csp-check")
            .await
            .unwrap()
            .mapping()
            .clone();
        mapping.assets = Some(deskbridge_mapping::AssetMappings::default());
        deskbridge_sync::save_mappings(&db.store, &registry, "csp-check", mapping, &clock())
            .await
            .unwrap();
        let mut tx = db.store.read().await.unwrap();
        let connection = tx.connection(connection.id).await.unwrap().unwrap();
        tx.commit().await.unwrap();
        let points = registry.get("csp").unwrap().check(&cx, &connection, "production").await;
        for tenant in &tenants {
            let name = tenant_name(&emu, tenant);
            let devices = points
                .iter()
                .find(|p| p.name == format!("tenant {name} devices"))
                .unwrap_or_else(|| panic!("a devices point for {name}: {points:?}"));
            assert!(devices.ok, "{devices:?}");
            assert!(devices.detail.contains("managed devices"), "{devices:?}");
        }
    }
}

store_test! {
    async fn a_tenant_another_connection_already_reads_is_left_out_with_a_warning(db: &TestDb) {
        use deskbridge_connector_entra::{EntraSource, NewCredential, NewEntraConnection, add_entra_connection};
        let (emu, tenants) = partner(99, 2, 3).await;
        let registry = sources(GraphConfig::default()).with(std::sync::Arc::new(EntraSource::new(GraphConfig::default())));
        let summary = emu.summary();
        let gdap = summary.apps.iter().find(|a| a.kind == "gdap_multi_tenant").unwrap().clone();
        let entra = |name: &str| NewEntraConnection {
            name: name.into(),
            tenant_id: tenants[0].clone(),
            client_id: gdap.client_id.clone(),
            credential: NewCredential::ClientSecret { value: gdap.client_secret.clone().unwrap(), expires_at: None },
            authority_host: Some(summary.authority_host.clone()),
            graph_url: Some(summary.graph_url.clone()),
            customer: Some("First Ltd".into()),
            enabled_instances: None,
            last_sign_in: false,
        };
        add_entra_connection(&db.store, &entra("first")).await.unwrap();
        let first = deskbridge_sync::sync(&db.store, &registry, "first", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(first.status, "succeeded", "{:?}", first.errors);
        // The CSP connection finds both tenants; the one "first" reads is left out, the other imports.
        let connection = add_and_authorize(&db.store, &registry, &emu, "csp-both").await;
        let outcome = deskbridge_sync::sync(&db.store, &registry, "csp-both", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(outcome.status, "partial", "{:?}", outcome.errors);
        let warned: Vec<_> = outcome.errors.iter().filter(|e| e.tenant_id.as_deref() == Some(tenants[0].as_str())).collect();
        assert_eq!(warned.len(), 1, "{:?}", outcome.errors);
        assert!(warned[0].message.contains("connection \"first\" already reads it"), "{:?}", warned[0]);
        assert_eq!(imported(&db.store, connection.id, &tenants[1]).await.len(), 3);
        assert!(imported(&db.store, connection.id, &tenants[0]).await.is_empty(), "nothing taken over from \"first\"");
        // A second Entra connection on the same tenant is refused before it reads anything.
        add_entra_connection(&db.store, &entra("second")).await.unwrap();
        let error = deskbridge_sync::sync(&db.store, &registry, "second", &SyncOptions::default(), &clock()).await.unwrap_err();
        assert!(error.to_string().contains("is already read by connection \"first\""), "{error}");
        // The same in a run of every connection, which reads who reads what once for all.
        let names: Vec<String> = ["first", "csp-both", "second"].iter().map(|n| (*n).to_owned()).collect();
        let all = deskbridge_sync::sync_many(&db.store, &registry, &names, &SyncOptions::default(), 4, &clock()).await.unwrap();
        assert_eq!(all[0].result.as_ref().map(|o| o.status.as_str()).unwrap(), "succeeded");
        let both = all[1].result.as_ref().unwrap();
        assert!(both.errors.iter().any(|e| e.message.contains("connection \"first\" already reads it")), "{:?}", both.errors);
        let second = all[2].result.as_ref().unwrap_err();
        assert!(second.to_string().contains("is already read by connection \"first\""), "{second}");
        assert!(imported(&db.store, connection.id, &tenants[0]).await.is_empty());
    }
}
