//! The CSP connector's tests, one binary (link time): the emulator's Partner Center with GDAP
//! customer tenants, a CSP connection added through the registry as the CLI and web add one, the
//! Partner Center app signed in through `SignIn`, and syncs through the pipeline, on SQLite and
//! PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;
mod consent;
mod consumption;
mod dap;
mod scale;
mod scenario;
mod subscriptions;
mod tenants;
mod write_back;

use std::sync::Arc;

use deskbridge_connector_csp::CspSource;
use deskbridge_core::{SharedClock, SystemClock};
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use deskbridge_graph::GraphConfig;
use deskbridge_partner::PartnerConfig;
use deskbridge_source::settings::{Purpose, validate};
use deskbridge_source::{NewConnection, SourceRegistry};
use deskbridge_store::{Connection, Store};
use serde_json::json;

pub const REDIRECT: &str = "http://127.0.0.1:8765/callback";

pub fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

/// A registry with the CSP connector, allowed to reach the emulator.
pub fn sources(graph: GraphConfig) -> SourceRegistry {
    SourceRegistry::new()
        .with(Arc::new(CspSource::new(graph, PartnerConfig::default())))
        .with_endpoint_policy(deskbridge_source::settings::EndpointPolicy::allowing([
            "127.0.0.1",
        ]))
}

fn kind_of(app: &deskbridge_emulator::world::App) -> String {
    serde_json::to_value(app.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A partner with `tenants` customer tenants of `users` people each (members, enabled: everyone
/// the default mappings import), every GDAP relationship active and the GDAP app consented in
/// every customer tenant. Returns the emulator and the customer tenant ids.
pub async fn partner(seed: u64, tenants: usize, users: usize) -> (Emulator, Vec<String>) {
    let mut world = World::generate(&GenerateOptions {
        seed,
        tenants,
        users_per_tenant: Some(users),
        ..GenerateOptions::default()
    })
    .unwrap();
    let partner = world.partner_tenant_id.clone().unwrap();
    let mut customers = Vec::new();
    for tenant in &mut world.tenants {
        if tenant.id == partner {
            for r in &mut tenant.gdap_relationships {
                r.status = "active".into();
            }
            continue;
        }
        customers.push(tenant.id.clone());
        for user in &mut tenant.users {
            user.user_type = "Member".into();
            user.account_enabled = true;
            user.user_principal_name = user.user_principal_name.replace("#EXT#", "");
        }
    }
    for app in &mut world.apps {
        if kind_of(app) == "gdap_multi_tenant" {
            for t in &customers {
                if !app.consented_tenants.contains(t) {
                    app.consented_tenants.push(t.clone());
                }
            }
        }
    }
    let emu = Emulator::start(EmulatorConfig::new(world)).await.unwrap();
    emu.set_auto_approve(true);
    // Through the admin API as well: what the emulator derives from them is kept consistent.
    let admin = emu.summary().admin_url;
    for tenant in &customers {
        let response = reqwest::Client::new()
            .put(format!("{admin}/partner/gdap/{tenant}"))
            .json(&json!({ "status": "active" }))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{}",
            response.text().await.unwrap_or_default()
        );
        set_consent(&emu, tenant, true).await;
    }
    (emu, customers)
}

/// Adds (or withdraws) the GDAP app's consent in `tenant`, through the emulator's admin API.
pub async fn set_consent(emu: &Emulator, tenant: &str, consented: bool) {
    let summary = emu.summary();
    let gdap = summary
        .apps
        .iter()
        .find(|a| a.kind == "gdap_multi_tenant")
        .unwrap();
    let response = reqwest::Client::new()
        .put(format!("{}/partner/consent", summary.admin_url))
        .json(&json!({ "client_id": gdap.client_id, "tenant": tenant, "consented": consented }))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap_or_default()
    );
}

/// What the browser does: open the authorize URL (the emulator signs in at once with
/// auto-approve) and come back with the redirect's Location.
pub async fn browser(url: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 302, "the authorize endpoint redirects back");
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// Adds a CSP connection as `deskbridge connection add csp` does (the flags as settings, validated
/// against the connector's description and the endpoint policy), then signs the Partner Center
/// app in through `SignIn`, as `deskbridge connection authorize` does.
pub async fn add_and_authorize(
    store: &Store,
    sources: &SourceRegistry,
    emu: &Emulator,
    name: &str,
) -> Connection {
    add_and_authorize_with(store, sources, emu, name, json!({})).await
}

/// [`add_and_authorize`] with more settings (`extra`, a JSON object of setting → value).
pub async fn add_and_authorize_with(
    store: &Store,
    sources: &SourceRegistry,
    emu: &Emulator,
    name: &str,
    extra: serde_json::Value,
) -> Connection {
    let summary = emu.summary();
    let app = |kind: &str| summary.apps.iter().find(|a| a.kind == kind).unwrap().clone();
    let (partner, gdap) = (app("partner_center"), app("gdap_multi_tenant"));
    let source = sources.get("csp").unwrap();
    let settings = json!({
        "partner_tenant_id": summary.partner_tenant_id.clone().unwrap(),
        "partner_client_id": partner.client_id,
        "partner_client_secret": partner.client_secret,
        "gdap_client_id": gdap.client_id,
        "gdap_client_secret": gdap.client_secret,
        "authority_host": summary.authority_host,
        "graph_url": summary.graph_url,
        "partner_center_url": summary.partner_center_url,
        "partner_api_url": summary.partner_api_url,
    });
    let mut settings = settings;
    if let (Some(all), Some(more)) = (settings.as_object_mut(), extra.as_object()) {
        all.extend(more.clone());
    }
    let values = validate(
        source.settings(),
        settings.as_object().unwrap(),
        Purpose::Create,
        sources.endpoint_policy(),
    )
    .unwrap();
    let connection = source
        .create(
            store,
            NewConnection {
                name: name.into(),
                customer: None,
                enabled_instances: "production".into(),
                settings: values,
            },
        )
        .await
        .unwrap();
    let sign_in = source.sign_in().unwrap();
    assert_eq!(sign_in.authorised(store, &connection).await.unwrap(), Some(false));
    let url = sign_in
        .begin(store, &connection, REDIRECT, &clock())
        .await
        .unwrap();
    assert!(url.contains("user_impersonation"), "{url}");
    let redirect = browser(&url).await;
    sign_in
        .complete(store, &connection, &redirect, &clock())
        .await
        .unwrap();
    assert_eq!(sign_in.authorised(store, &connection).await.unwrap(), Some(true));
    let mut tx = store.read().await.unwrap();
    let connection = tx.connection(connection.id).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    connection
}
