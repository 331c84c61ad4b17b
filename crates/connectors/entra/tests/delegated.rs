//! Delegated connections against the emulator, on SQLite and PostgreSQL: a sign-in through the
//! authorize endpoint (code + PKCE) seals a refresh token, syncs use and rotate it, and a sign-in
//! that is refused, forged or replayed changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use deskbridge_connector_entra::{
    NewCredential, NewEntraConnection, SECRET_REFRESH_TOKEN, add_entra_connection,
    begin_delegated_authorization, complete_delegated_authorization, complete_delegated_redirect,
};
use deskbridge_core::{SharedClock, SystemClock};
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use deskbridge_store::Entity;
use deskbridge_sync::SyncOptions;

use crate::sync;
use deskbridge_testkit::{TestDb, store_test};

const REDIRECT: &str = "http://127.0.0.1:8765/callback";

async fn emulator() -> Emulator {
    let world = World::generate(&GenerateOptions {
        seed: 5,
        tenants: 1,
        users_per_tenant: Some(40),
        ..GenerateOptions::default()
    })
    .unwrap();
    Emulator::start(EmulatorConfig::new(world)).await.unwrap()
}

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

async fn add_delegated(db: &TestDb, emu: &Emulator, name: &str) -> deskbridge_core::ConnectionId {
    let summary = emu.summary();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .unwrap();
    add_entra_connection(
        &db.store,
        &NewEntraConnection {
            name: name.into(),
            tenant_id: summary.tenants[0].id.clone(),
            client_id: app.client_id.clone(),
            credential: NewCredential::Delegated {
                client_secret: app.client_secret.clone(),
                expires_at: None,
            },
            authority_host: Some(summary.authority_host.clone()),
            graph_url: Some(summary.graph_url.clone()),
            customer: Some("Fabrikam".into()),
            enabled_instances: None,
            last_sign_in: false,
        },
    )
    .await
    .unwrap()
    .id
}

/// What the browser does: open the authorize URL (the emulator signs in at once with
/// auto-approve) and come back with the redirect's Location.
async fn sign_in(url: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 302, "the authorize endpoint redirects back");
    response.headers()["location"].to_str().unwrap().to_owned()
}

async fn refresh_token(db: &TestDb, id: deskbridge_core::ConnectionId) -> Option<String> {
    let mut tx = db.store.read().await.unwrap();
    let token = tx
        .get_secret(&deskbridge_source::ConnectionSecrets(id).reference(SECRET_REFRESH_TOKEN))
        .await
        .unwrap()
        .map(|t| t.as_str().to_owned());
    tx.commit().await.unwrap();
    token
}

store_test! {
    async fn a_signed_in_delegated_connection_imports_and_rotates_its_refresh_token(db: &TestDb) {
    let emu = emulator().await;
    emu.set_auto_approve(true);
    let id = add_delegated(db, &emu, "delegated").await;

    // Before anyone signs in, a sync fails with what to do about it, recorded against its run.
    let failed = sync(&db.store, "delegated", &SyncOptions::default(), &clock()).await.unwrap();
    assert_eq!(failed.status, "failed");
    let err = &failed.errors[0].message;
    assert!(err.contains("not authorised yet"), "{err}");
    assert!(err.contains("deskbridge connection authorize"), "{err}");
    assert_eq!(failed.counts.created, 0);

    let pending = begin_delegated_authorization(&db.store, "delegated", REDIRECT, &clock()).await.unwrap();
    let url = url::Url::parse(&pending.url).unwrap();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["redirect_uri"], REDIRECT);
    assert!(query["scope"].split(' ').any(|s| s == "offline_access"));
    assert_eq!(query["state"], pending.state);

    let redirect = sign_in(&pending.url).await;
    let name = complete_delegated_redirect(&db.store, &redirect, &clock()).await.unwrap();
    assert_eq!(name, "delegated");
    let first = refresh_token(db, id).await.expect("the refresh token is sealed");

    // The same redirect cannot be used twice.
    let replay = complete_delegated_redirect(&db.store, &redirect, &clock()).await.unwrap_err();
    assert!(replay.to_string().contains("already been used"), "{replay}");

    let outcome = sync(&db.store, "delegated", &SyncOptions::default(), &clock()).await.unwrap();
    assert_eq!(outcome.status, "succeeded", "{outcome:?}");
    assert!(outcome.counts.created > 0);
    let mut tx = db.store.read().await.unwrap();
    let users = tx.list(Entity::User, None, 1000).await.unwrap();
    tx.commit().await.unwrap();
    assert!(users.len() >= 30, "the tenant's users were imported: {}", users.len());

    // Microsoft rotated the refresh token when the sync redeemed it: the new one is sealed.
    let rotated = refresh_token(db, id).await.unwrap();
    assert_ne!(first, rotated, "the rotated refresh token replaces the first");

    // The sealed token is not in the database in clear.
    if let Some(file) = &db.sqlite_file {
        let bytes = std::fs::read(file).unwrap();
        let wal = std::fs::read(file.with_extension("db-wal")).unwrap_or_default();
        for haystack in [&bytes, &wal] {
            assert!(!haystack.windows(rotated.len()).any(|w| w == rotated.as_bytes()));
        }
    }
    }
}

store_test! {
    async fn refused_forged_and_foreign_sign_ins_change_nothing(db: &TestDb) {
    let emu = emulator().await;
    let id = add_delegated(db, &emu, "delegated").await;
    let pending = begin_delegated_authorization(&db.store, "delegated", REDIRECT, &clock()).await.unwrap();

    // The administrator cancels on the sign-in page.
    let err = complete_delegated_redirect(
        &db.store,
        &format!(
            "{REDIRECT}?error=access_denied&error_description=AADSTS65004%3A+User+declined+to+consent&state={}",
            pending.state
        ),
        &clock(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "AADSTS65004");
    assert!(err.remedy().unwrap().contains("accept the permissions"));

    // A state that was never issued, or that names the connection but not its secret part.
    for state in ["garbage".to_owned(), format!("{}.forged", id.0), "999.x".to_owned()] {
        let err = complete_delegated_authorization(&db.store, &state, "code", &clock()).await.unwrap_err();
        assert!(err.to_string().contains("not started here"), "{state}: {err}");
    }
    // A code the identity platform does not know is refused with its AADSTS code.
    let err = complete_delegated_authorization(&db.store, &pending.state, "not-a-code", &clock())
        .await
        .unwrap_err();
    assert!(err.code().starts_with("AADSTS"), "{err:?}");
    assert!(refresh_token(db, id).await.is_none());

    // Application-permission connections are not signed in to.
    let summary = emu.summary();
    let app = summary.apps.iter().find(|a| a.kind == "multi_tenant_secret").unwrap();
    add_entra_connection(
        &db.store,
        &NewEntraConnection {
            name: "app-only".into(),
            tenant_id: summary.tenants[0].id.clone(),
            client_id: app.client_id.clone(),
            credential: NewCredential::ClientSecret {
                value: app.client_secret.clone().unwrap(),
                expires_at: None,
            },
            authority_host: Some(summary.authority_host.clone()),
            graph_url: Some(summary.graph_url.clone()),
            customer: Some("Fabrikam".into()),
            enabled_instances: None,
            last_sign_in: false,
        },
    )
    .await
    .unwrap();
    let err = begin_delegated_authorization(&db.store, "app-only", REDIRECT, &clock()).await.unwrap_err();
    assert!(err.to_string().contains("application permissions"), "{err}");
    }
}
