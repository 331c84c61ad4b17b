//! The relationship type (the older guide's DAP or GDAP): new tenants take the connection's type;
//! a tenant read through DAP needs neither GDAP nor consent there (the GDAP app, an AdminAgents
//! member, is pre-consented by DAP); a tenant set to DAP without DAP, or to GDAP without GDAP, is
//! reported with what to do and skipped while the others import; the Tenants tab and the check
//! say which relationship each tenant has.

use deskbridge_graph::GraphConfig;
use deskbridge_source::TenantUpdate;
use deskbridge_source::settings::{Purpose, validate};
use deskbridge_store::{Connection, Entity, RecordScope, Store};
use deskbridge_sync::SyncOptions;
use deskbridge_testkit::store_test;
use serde_json::json;

use crate::{add_and_authorize, clock, partner, set_consent, sources};

async fn put(emu: &deskbridge_emulator::Emulator, path: String, body: serde_json::Value) {
    let response = reqwest::Client::new()
        .put(format!("{}/partner/{path}", emu.summary().admin_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap_or_default()
    );
}

async fn users_of(store: &Store, connection: &Connection, tenant: &str) -> usize {
    let scope = RecordScope::OfConnectionTenant {
        connection: connection.id,
        tenant_id: tenant.to_owned(),
        external_ids: Vec::new(),
    };
    let mut tx = store.read().await.unwrap();
    let users = tx.list_scoped(Entity::User, &scope, None, 1_000).await.unwrap();
    tx.commit().await.unwrap();
    users.iter().filter(|u| u.get("active") != &json!(false)).count()
}

async fn load(store: &Store, connection: &Connection) -> Connection {
    let mut tx = store.read().await.unwrap();
    let c = tx.connection(connection.id).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    c
}

store_test! {
    async fn tenants_read_through_dap_need_no_consent_and_a_missing_relationship_says_what_to_do(db: &TestDb) {
        let (emu, tenants) = partner(106, 3, 3).await;
        let (dap_only, gdap, neither) = (&tenants[0], &tenants[1], &tenants[2]);
        // The first customer has DAP only (its GDAP relationship ended, the GDAP app never
        // consented there); the third has neither.
        put(&emu, format!("dap/{dap_only}"), json!({ "active": true })).await;
        for tenant in [dap_only, neither] {
            put(&emu, format!("gdap/{tenant}"), json!({ "status": "terminated" })).await;
            set_consent(&emu, tenant, false).await;
        }
        let registry = sources(GraphConfig::default());
        let source = registry.get("csp").unwrap();
        let table = source.tenant_table().unwrap();
        let connection = add_and_authorize(&db.store, &registry, &emu, "csp-dap").await;
        let first = deskbridge_sync::sync(&db.store, &registry, "csp-dap", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(first.status, "succeeded", "{:?}", first.errors);
        assert_eq!(users_of(&db.store, &connection, gdap).await, 3);
        assert_eq!(users_of(&db.store, &connection, dap_only).await, 0, "new tenants are GDAP: not readable");

        // New tenants are read through DAP from now on: the DAP customer is found, assigned and
        // imported in the same run, without consent; the GDAP tenant keeps its type.
        let values = validate(
            source.settings(),
            json!({ "relationship_type": "dap" }).as_object().unwrap(),
            Purpose::Edit,
            registry.endpoint_policy(),
        )
        .unwrap();
        source.edit(&db.store, &load(&db.store, &connection).await, values).await.unwrap();
        let second = deskbridge_sync::sync(&db.store, &registry, "csp-dap", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(second.status, "succeeded", "{:?}", second.errors);
        assert_eq!(users_of(&db.store, &connection, dap_only).await, 3, "{:?}", second.notes);
        assert_eq!(users_of(&db.store, &connection, gdap).await, 3);
        assert!(
            second.notes.iter().any(|n| n.contains(neither.as_str()) && n.contains("no DAP")),
            "{:?}",
            second.notes
        );
        let listed = table.tenants(&db.store, &load(&db.store, &connection).await).await.unwrap();
        let entry = |tenant: &str| listed.iter().find(|t| t.tenant_id == tenant).unwrap().clone();
        assert_eq!(entry(dap_only).overrides.get("relationship_type").map(String::as_str), Some("dap"));
        assert_eq!(entry(dap_only).relationship.as_deref(), Some("reseller, DAP only (no active GDAP)"));
        assert_eq!(entry(gdap).overrides.get("relationship_type").map(String::as_str), Some("gdap"));
        assert_eq!(entry(gdap).relationship.as_deref(), Some("reseller and GDAP (active)"));
        assert!(listed.iter().all(|t| &t.tenant_id != neither), "{listed:?}");

        // The check reads the DAP tenant through DAP.
        let cx = deskbridge_source::SourceContext::detached(db.store.clone(), clock());
        let points = source.check(&cx, &load(&db.store, &connection).await, "production").await;
        assert!(
            points.iter().any(|p| p.ok && p.detail.contains(dap_only.as_str()) && p.detail.contains("through DAP")),
            "{points:?}"
        );
        assert!(points.iter().all(|p| p.ok), "{points:?}");

        // The GDAP tenant set to DAP, which it does not have: skipped with what to do, and
        // nobody of it deactivated; the DAP tenant still imports.
        let mut to_dap = TenantUpdate::default();
        to_dap.overrides.insert("relationship_type".into(), Some("dap".into()));
        table.set_tenant(&db.store, &load(&db.store, &connection).await, gdap, &to_dap).await.unwrap();
        let mut bad = TenantUpdate::default();
        bad.overrides.insert("relationship_type".into(), Some("cap".into()));
        let refused = table.set_tenant(&db.store, &load(&db.store, &connection).await, gdap, &bad).await.unwrap_err();
        assert!(refused.to_string().contains("is not one of gdap, dap"), "{refused}");
        let third = deskbridge_sync::sync(&db.store, &registry, "csp-dap", &SyncOptions { full: true, ..SyncOptions::default() }, &clock())
            .await
            .unwrap();
        assert_eq!(third.counts.deactivated, 0, "{:?}", third.counts);
        let warning = third.errors.iter().find(|e| e.tenant_id.as_deref() == Some(gdap.as_str())).expect("the tenant is reported");
        assert_eq!(warning.code, "dap_not_available", "{warning:?}");
        assert!(warning.remedy.as_deref().unwrap_or_default().contains("--relationship-type gdap"), "{warning:?}");
        assert_eq!(users_of(&db.store, &connection, gdap).await, 3);
        assert_eq!(users_of(&db.store, &connection, dap_only).await, 3);

        // The DAP tenant's DAP ends: it is reported the same way, and the check fails its point.
        put(&emu, format!("dap/{dap_only}"), json!({ "active": false })).await;
        let fourth = deskbridge_sync::sync(&db.store, &registry, "csp-dap", &SyncOptions { full: true, ..SyncOptions::default() }, &clock())
            .await
            .unwrap();
        assert_eq!(fourth.counts.deactivated, 0);
        assert!(fourth.errors.iter().any(|e| e.tenant_id.as_deref() == Some(dap_only.as_str()) && e.code == "dap_not_available"), "{:?}", fourth.errors);
        let points = source.check(&cx, &load(&db.store, &connection).await, "production").await;
        assert!(
            points.iter().any(|p| !p.ok && p.detail.contains(dap_only.as_str()) && p.remedy.contains("retired DAP")),
            "{points:?}"
        );
    }
}
