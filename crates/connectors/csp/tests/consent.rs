//! The per-tenant admin consent through the connector's tenant table, against the emulator's
//! admin-consent page: a tenant without consent is reported by the check; the consent URL,
//! auto-approved, comes back with a redirect that records the grant, after which the tenant
//! imports and the check passes; a redirect with a wrong state, for another tenant, replayed, or
//! refused (`access_denied`) records nothing and says what to do.

use deskbridge_graph::GraphConfig;
use deskbridge_source::SourceContext;
use deskbridge_sync::SyncOptions;
use deskbridge_testkit::store_test;

use crate::{REDIRECT, add_and_authorize, browser, clock, partner, set_consent, sources};

/// The `state` query parameter of a URL.
fn state_of(url: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned()
}

store_test! {
    async fn admin_consent_is_granted_per_tenant_and_forged_or_refused_redirects_are_not(db: &TestDb) {
        let (emu, tenants) = partner(141, 3, 4).await;
        let registry = sources(GraphConfig::default());
        set_consent(&emu, &tenants[2], false).await;
        let name = "csp-admin-consent";
        let connection = add_and_authorize(&db.store, &registry, &emu, name).await;
        let outcome = deskbridge_sync::sync(&db.store, &registry, name, &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(outcome.status, "partial", "{:?}", outcome.errors);
        let source = registry.get("csp").unwrap();
        let table = source.tenant_table().unwrap();
        let load = || async {
            let mut tx = db.store.read().await.unwrap();
            let c = tx.connection(connection.id).await.unwrap().unwrap();
            tx.commit().await.unwrap();
            c
        };
        let listed = table.tenants(&db.store, &load().await).await.unwrap();
        assert!(listed.iter().all(|t| t.consented_at.is_none()), "{listed:?}");

        // The check says what is missing for that tenant.
        let cx = SourceContext::detached(db.store.clone(), clock());
        let points = source.check(&cx, &load().await, "production").await;
        let failed: Vec<_> = points.iter().filter(|p| !p.ok).collect();
        assert_eq!(failed.len(), 1, "{points:?}");
        assert!(failed[0].detail.contains(&tenants[2]) && failed[0].remedy.contains("admin consent"), "{points:?}");

        // A tenant the connection has not found cannot be consented through it.
        let unknown = table
            .begin_consent(&db.store, &load().await, "00000000-0000-4000-8000-000000000000", REDIRECT, &clock())
            .await
            .unwrap_err();
        assert!(unknown.to_string().contains("has no customer tenant"), "{unknown}");

        // A grant for another tenant than the one asked for is refused (and ends that attempt).
        let url = table.begin_consent(&db.store, &load().await, &tenants[2], REDIRECT, &clock()).await.unwrap();
        assert!(url.contains(&format!("/{}/v2.0/adminconsent?", tenants[2])), "{url}");
        let state = state_of(&url);
        assert!(state.starts_with(&format!("{}.{}.", connection.id.0, tenants[2])), "{state}");
        let other = format!("{REDIRECT}?admin_consent=True&tenant={}&state={state}", tenants[0]);
        let error = table.complete_consent(&db.store, &load().await, &other, &clock()).await.unwrap_err();
        assert!(error.to_string().contains("not for"), "{error}");
        let again = format!("{REDIRECT}?admin_consent=True&tenant={}&state={state}", tenants[2]);
        let error = table.complete_consent(&db.store, &load().await, &again, &clock()).await.unwrap_err();
        assert_eq!(error.code(), "invalid_sign_in", "{error}");

        // A state that is not the one sealed is refused.
        let url = table.begin_consent(&db.store, &load().await, &tenants[2], REDIRECT, &clock()).await.unwrap();
        let forged = format!(
            "{REDIRECT}?admin_consent=True&tenant={}&state={}.{}.guessed",
            tenants[2], connection.id.0, tenants[2]
        );
        let error = table.complete_consent(&db.store, &load().await, &forged, &clock()).await.unwrap_err();
        assert!(error.to_string().contains("not started here"), "{error}");
        assert!(error.remedy().unwrap_or_default().contains("Start the admin consent again"), "{error}");

        // The administrator accepts (the emulator's auto-approve): the grant is recorded.
        let redirect = browser(&url).await;
        assert!(redirect.contains("admin_consent=True"), "{redirect}");
        let entry = table.complete_consent(&db.store, &load().await, &redirect, &clock()).await.unwrap();
        assert_eq!(entry.tenant_id, tenants[2]);
        assert!(entry.consented_at.is_some(), "{entry:?}");
        let listed = table.tenants(&db.store, &load().await).await.unwrap();
        let consented: Vec<_> = listed.iter().filter(|t| t.consented_at.is_some()).map(|t| t.tenant_id.clone()).collect();
        assert_eq!(consented, vec![tenants[2].clone()]);
        // Used once only.
        let replayed = table.complete_consent(&db.store, &load().await, &redirect, &clock()).await.unwrap_err();
        assert_eq!(replayed.code(), "invalid_sign_in", "{replayed}");

        // The next sync imports the tenant and the check passes.
        let healed = deskbridge_sync::sync(&db.store, &registry, name, &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(healed.status, "succeeded", "{:?}", healed.errors);
        let points = source.check(&cx, &load().await, "production").await;
        assert!(points.iter().all(|p| p.ok), "{points:?}");

        // Refused at Microsoft: Microsoft's code is kept, with what to do.
        let url = table.begin_consent(&db.store, &load().await, &tenants[1], REDIRECT, &clock()).await.unwrap();
        let denied = format!(
            "{REDIRECT}?error=access_denied&error_description=AADSTS65004%3A+User+declined+to+consent+to+access+the+app.&state={}",
            state_of(&url)
        );
        let error = table.complete_consent(&db.store, &load().await, &denied, &clock()).await.unwrap_err();
        assert_eq!(error.code(), "AADSTS65004", "{error}");
        assert!(error.to_string().contains("access_denied"), "{error}");
        assert!(error.remedy().unwrap_or_default().contains(&format!("administrator of tenant {}", tenants[1])), "{error}");
        let listed = table.tenants(&db.store, &load().await).await.unwrap();
        assert!(listed.iter().find(|t| t.tenant_id == tenants[1]).unwrap().consented_at.is_none());
    }
}
