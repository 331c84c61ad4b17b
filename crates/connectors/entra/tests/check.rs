//! `check_connection` against emulator set-ups that produce each failure the guides list: wrong
//! secret, Secret ID instead of value, expired secret, missing permission, missing service
//! principal, non-premium tenant for sign-in data — and a connection that passes everything.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use deskbridge_connector_entra::{NewCredential, NewEntraConnection, add_entra_connection};
use deskbridge_core::{SharedClock, SystemClock};
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use deskbridge_source::{CheckPoint, CheckReport};
use deskbridge_sync::check_connection;
use deskbridge_testkit::TestDb;

use crate::sources;

struct Setup {
    emu: Emulator,
    world: World,
}

async fn setup() -> Setup {
    let mut world = World::generate(&GenerateOptions {
        seed: 21,
        tenants: 3,
        users_per_tenant: Some(5),
        ..GenerateOptions::default()
    })
    .unwrap();
    // one licensed (premium) customer tenant and one without Entra ID P1/P2
    let partner = world.partner_tenant_id.clone();
    let mut customers = world
        .tenants
        .iter_mut()
        .filter(|t| Some(&t.id) != partner.as_ref());
    customers.next().unwrap().premium = true;
    customers.next().unwrap().premium = false;
    let emu = Emulator::start(EmulatorConfig::new(world.clone())).await.unwrap();
    Setup { emu, world }
}

impl Setup {
    fn app(&self, kind: &str) -> &deskbridge_emulator::world::App {
        self.world.apps.iter().find(|a| a.kind.as_str() == kind).unwrap()
    }

    fn customer_tenant(&self, premium: bool) -> String {
        let summary = self.emu.summary();
        summary
            .tenants
            .iter()
            .find(|t| t.premium == premium && Some(&t.id) != self.world.partner_tenant_id.as_ref())
            .unwrap_or_else(|| panic!("no customer tenant with premium={premium}"))
            .id
            .clone()
    }

    async fn add(
        &self,
        db: &TestDb,
        tenant: &str,
        client_id: &str,
        secret: &str,
        expires: Option<&str>,
        last_sign_in: bool,
    ) {
        let summary = self.emu.summary();
        add_entra_connection(
            &db.store,
            &NewEntraConnection {
                name: "c".into(),
                tenant_id: tenant.into(),
                client_id: client_id.into(),
                credential: NewCredential::ClientSecret {
                    value: secret.into(),
                    expires_at: expires.map(|e| e.parse().unwrap()),
                },
                authority_host: Some(summary.authority_host.clone()),
                graph_url: Some(summary.graph_url.clone()),
                customer: Some("Contoso".into()),
                enabled_instances: None,
                last_sign_in,
            },
        )
        .await
        .unwrap();
    }
}

async fn check(db: &TestDb) -> CheckReport {
    let clock: SharedClock = Arc::new(SystemClock);
    let store = db.store.clone();
    // spawned: the web API runs the check in a handler, so its future must be Send
    tokio::spawn(async move { check_connection(&store, &sources(), "c", "production", &clock).await })
        .await
        .unwrap()
}

fn point<'a>(report: &'a CheckReport, name: &str) -> &'a CheckPoint {
    report
        .points
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no point {name}: {report:#?}"))
}

fn failed(report: &CheckReport) -> Vec<&str> {
    report
        .points
        .iter()
        .filter(|p| !p.ok)
        .map(|p| p.name.as_str())
        .collect()
}

#[tokio::test]
async fn a_good_connection_passes_every_point() {
    let s = setup().await;
    let db = deskbridge_testkit::sqlite().await;
    let app = s.app("multi_tenant_secret");
    s.add(
        &db,
        &s.customer_tenant(true),
        &app.client_id,
        &app.secrets[0].value,
        Some("2099-01-01T00:00:00Z"),
        true,
    )
    .await;
    let report = check(&db).await;
    assert!(report.ok, "{report:#?}");
    for name in [
        "connection",
        "instance",
        "credential",
        "credential_expiry",
        "token",
        "consent",
        "permissions",
        "tenant_reachable",
        "sign_in_data",
        "mappings",
        "delta_state",
    ] {
        assert!(point(&report, name).ok);
    }
    assert!(point(&report, "permissions").detail.contains("User.Read.All"));
    s.emu.shutdown().await;
}

#[tokio::test]
async fn a_wrong_secret_is_explained() {
    let s = setup().await;
    let db = deskbridge_testkit::sqlite().await;
    let app = s.app("multi_tenant_secret");
    s.add(
        &db,
        &s.customer_tenant(true),
        &app.client_id,
        "Wr0~ngSecretValueThatWasNeverIssued1234567",
        None,
        false,
    )
    .await;
    let report = check(&db).await;
    assert!(!report.ok);
    let token = point(&report, "token");
    assert!(!token.ok);
    assert!(token.detail.contains("7000215"), "{token:?}");
    assert!(token.remedy.contains("Value"), "{token:?}");
    assert_eq!(failed(&report), ["token", "permissions", "tenant_reachable"]);
    s.emu.shutdown().await;
}

#[tokio::test]
async fn a_secret_id_pasted_for_the_value_is_recognised() {
    let s = setup().await;
    let db = deskbridge_testkit::sqlite().await;
    let app = s.app("multi_tenant_secret");
    s.add(
        &db,
        &s.customer_tenant(true),
        &app.client_id,
        &app.secrets[0].key_id,
        None,
        false,
    )
    .await;
    let report = check(&db).await;
    let credential = point(&report, "credential");
    assert!(!credential.ok);
    assert!(credential.detail.contains("Secret ID"), "{credential:?}");
    assert!(!point(&report, "token").ok);
    s.emu.shutdown().await;
}

#[tokio::test]
async fn an_expired_secret_is_reported_by_its_date_and_by_the_sign_in() {
    let s = setup().await;
    let db = deskbridge_testkit::sqlite().await;
    let app = s.app("expired_secret");
    let expired = app.secrets[0].end_date_time.to_string();
    s.add(
        &db,
        &s.customer_tenant(true),
        &app.client_id,
        &app.secrets[0].value,
        Some(&expired),
        false,
    )
    .await;
    let report = check(&db).await;
    let expiry = point(&report, "credential_expiry");
    assert!(!expiry.ok && expiry.detail.contains("expired"), "{expiry:?}");
    let token = point(&report, "token");
    assert!(!token.ok && token.detail.contains("7000222"), "{token:?}");
    assert!(token.remedy.contains("expired"), "{token:?}");
    s.emu.shutdown().await;
}

#[tokio::test]
async fn organization_read_all_is_optional_and_the_check_says_what_it_enables() {
    let s = setup().await;
    let db = deskbridge_testkit::sqlite().await;
    let app = s.app("single_tenant"); // User.Read.All and Group.Read.All only
    s.add(
        &db,
        &app.home_tenant_id,
        &app.client_id,
        &app.secrets[0].value,
        None,
        false,
    )
    .await;
    let report = check(&db).await;
    assert!(point(&report, "token").ok, "{report:#?}");
    assert!(point(&report, "permissions").ok, "{report:#?}");
    let licences = point(&report, "licences_permission");
    assert!(licences.ok, "optional: {licences:?}");
    assert!(
        licences
            .detail
            .contains("Organization.Read.All not granted (optional)"),
        "{licences:?}"
    );
    assert!(failed(&report).is_empty(), "{report:#?}");
    s.emu.shutdown().await;
}

#[tokio::test]
async fn a_missing_service_principal_fails_consent() {
    let s = setup().await;
    let db = deskbridge_testkit::sqlite().await;
    let app = s.app("unconsented");
    s.add(
        &db,
        &s.customer_tenant(true),
        &app.client_id,
        &app.secrets[0].value,
        None,
        false,
    )
    .await;
    let report = check(&db).await;
    let consent = point(&report, "consent");
    assert!(!consent.ok, "{report:#?}");
    assert!(consent.remedy.to_lowercase().contains("consent"), "{consent:?}");
    s.emu.shutdown().await;
}

#[tokio::test]
async fn sign_in_data_on_a_non_premium_tenant_is_reported() {
    let s = setup().await;
    let db = deskbridge_testkit::sqlite().await;
    let app = s.app("multi_tenant_secret");
    s.add(
        &db,
        &s.customer_tenant(false),
        &app.client_id,
        &app.secrets[0].value,
        None,
        true,
    )
    .await;
    let report = check(&db).await;
    let sign_in = point(&report, "sign_in_data");
    assert!(!sign_in.ok, "{report:#?}");
    assert!(sign_in.remedy.contains("P1"), "{sign_in:?}");
    assert_eq!(failed(&report), ["sign_in_data"]);
    s.emu.shutdown().await;
}

#[tokio::test]
async fn a_delegated_connection_is_checked_with_its_signed_in_token() {
    let s = setup().await;
    s.emu.set_auto_approve(true);
    let db = deskbridge_testkit::sqlite().await;
    let app = s.app("multi_tenant_secret");
    let summary = s.emu.summary();
    add_entra_connection(
        &db.store,
        &NewEntraConnection {
            name: "c".into(),
            tenant_id: s.customer_tenant(true),
            client_id: app.client_id.clone(),
            credential: NewCredential::Delegated {
                client_secret: Some(app.secrets[0].value.clone()),
                expires_at: None,
            },
            authority_host: Some(summary.authority_host.clone()),
            graph_url: Some(summary.graph_url.clone()),
            customer: Some("Contoso".into()),
            enabled_instances: None,
            last_sign_in: false,
        },
    )
    .await
    .unwrap();

    // Nobody has signed in: the credential point fails and says how to sign in.
    let report = check(&db).await;
    assert!(!point(&report, "credential").ok, "{report:#?}");
    assert!(
        point(&report, "credential")
            .remedy
            .contains("connection authorize --name c")
    );
    assert!(!point(&report, "token").ok, "blocked by the credential");

    // After a sign-in, the stored refresh token gives a delegated token whose scopes are checked.
    let clock: SharedClock = Arc::new(SystemClock);
    let pending = deskbridge_connector_entra::begin_delegated_authorization(
        &db.store,
        "c",
        "http://127.0.0.1:9/callback",
        &clock,
    )
    .await
    .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http.get(&pending.url).send().await.unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    deskbridge_connector_entra::complete_delegated_redirect(&db.store, &location, &clock)
        .await
        .unwrap();
    let report = check(&db).await;
    assert!(report.ok, "{report:#?}");
    assert!(point(&report, "token").detail.contains("delegated"));
    assert!(point(&report, "tenant_reachable").ok);
    assert!(
        point(&report, "permissions")
            .detail
            .contains("Directory.Read.All"),
        "{report:#?}"
    );
    s.emu.shutdown().await;
}

#[tokio::test]
async fn a_sync_refused_by_graph_names_the_missing_permission_as_the_check_does() {
    let s = setup().await;
    let db = deskbridge_testkit::sqlite().await;
    let app = s.app("single_tenant");
    s.add(
        &db,
        &app.home_tenant_id,
        &app.client_id,
        &app.secrets[0].value,
        None,
        false,
    )
    .await;
    let client_id = app.client_id.clone();
    s.emu.with_world_mut(|w| {
        for app in w.apps.iter_mut().filter(|a| a.client_id == client_id) {
            app.application_permissions
                .retain(|p| !matches!(p.as_str(), "User.Read.All" | "Directory.Read.All"));
        }
    });
    let clock: SharedClock = Arc::new(SystemClock);
    let outcome = deskbridge_sync::sync(
        &db.store,
        &sources(),
        "c",
        &deskbridge_sync::SyncOptions::default(),
        &clock,
    )
    .await
    .unwrap();
    assert_eq!(outcome.status, "failed", "{outcome:?}");
    let refused = outcome
        .errors
        .iter()
        .find(|e| e.code == "Authorization_RequestDenied")
        .unwrap_or_else(|| panic!("{outcome:#?}"));
    let remedy = refused.remedy.as_deref().unwrap();
    assert!(remedy.contains("User.Read.All"), "{remedy}");
    assert!(remedy.contains("admin consent"), "{remedy}");
    // The check names the same permission.
    let report = check(&db).await;
    let permissions = point(&report, "permissions");
    assert!(!permissions.ok, "{report:#?}");
    assert!(
        format!("{} {}", permissions.detail, permissions.remedy).contains("User.Read.All"),
        "{permissions:?}"
    );
    s.emu.shutdown().await;
}
