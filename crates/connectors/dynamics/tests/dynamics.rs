//! The Dynamics 365 connector's tests, one binary (link time): each module starts the emulator's
//! Dataverse and a store (SQLite and PostgreSQL) and drives the connector as the pipeline, CLI and
//! web do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;
mod customers;
mod protection;
mod scenario;
mod tables;

use std::sync::Arc;
use std::time::Duration;

use deskbridge_connector_dynamics::DynamicsSource;
use deskbridge_core::{SharedClock, SystemClock};
use deskbridge_dataverse::DataverseConfig;
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use deskbridge_source::settings::{EndpointPolicy, Purpose, validate};
use deskbridge_source::{CheckPoint, NewConnection, SourceContext, SourceRegistry, SyncError};
use deskbridge_store::{Connection, Store};
use serde_json::Value;

/// Organisation clients that give up quickly (the tests break pages and answers on purpose).
pub fn quick() -> DataverseConfig {
    DataverseConfig {
        max_attempts: 2,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        ..DataverseConfig::new("", "")
    }
}

/// A registry with the Dynamics connector reading `page_size` contacts a page, allowing the
/// emulator's host.
pub fn sources(page_size: u32) -> SourceRegistry {
    SourceRegistry::new()
        .with(Arc::new(DynamicsSource::new(quick(), page_size)))
        .with_endpoint_policy(EndpointPolicy::allowing(["127.0.0.1"]))
}

pub fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

/// An emulated world with one Dataverse organisation of `contacts` contacts, all active.
pub async fn emulator(seed: u64, contacts: usize) -> Emulator {
    let mut world = World::generate(&GenerateOptions {
        seed,
        tenants: 1,
        users_per_tenant: Some(8),
        dataverse_orgs: 1,
        dataverse_contacts: Some(contacts),
        ..GenerateOptions::default()
    })
    .unwrap();
    for org in &mut world.dataverse_orgs {
        for table in org.tables.iter_mut().filter(|t| t.logical_name == "contact") {
            for row in &mut table.rows {
                row.values.insert("statecode".into(), Value::from(0));
                row.values.insert("statuscode".into(), Value::from(1));
            }
        }
    }
    Emulator::start(EmulatorConfig::new(world)).await.unwrap()
}

/// The organisation's URL, tenant and name.
pub fn org(emu: &Emulator) -> (String, String, String) {
    let summary = emu.summary();
    let org = &summary.dataverse_orgs[0];
    (org.url.clone(), org.tenant.clone(), org.name.clone())
}

/// The emulator's app of `kind`: client id and secret.
pub fn app(emu: &Emulator, kind: &str) -> (String, String) {
    let summary = emu.summary();
    let app = summary.apps.iter().find(|a| a.kind == kind).unwrap();
    (
        app.client_id.clone(),
        app.client_secret.clone().unwrap_or_default(),
    )
}

/// Adds a connection as the API and the CLI do: the settings validated against the kind's
/// description, then created by the connector.
pub async fn add(store: &Store, name: &str, settings: Value) -> Result<Connection, SyncError> {
    let registry = sources(5_000);
    let source = registry.get("dynamics").unwrap();
    let values = validate(
        source.settings(),
        settings.as_object().unwrap(),
        Purpose::Create,
        registry.endpoint_policy(),
    )?;
    source
        .create(
            store,
            NewConnection {
                name: deskbridge_source::settings::connection_name(name)?,
                // One desk customer per tenant: a tenant belongs to one customer.
                customer: Some(format!(
                    "customer of {}",
                    settings["tenant_id"].as_str().unwrap_or(name)
                )),
                enabled_instances: "production".into(),
                settings: values,
            },
        )
        .await
}

/// The settings of a service-principal connection to the emulator's organisation.
pub fn service_principal(emu: &Emulator) -> Value {
    let (url, tenant, _) = org(emu);
    let (client, secret) = app(emu, "multi_tenant_secret");
    serde_json::json!({
        "url": url,
        "tenant_id": tenant,
        "client_id": client,
        "client_secret": secret,
        "authority_host": emu.summary().authority_host,
    })
}

pub async fn connection(store: &Store, name: &str) -> Connection {
    let mut tx = store.read().await.unwrap();
    let connection = tx.connection_by_name(name).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    connection
}

/// "Test connection": the connector's check points.
pub async fn check(store: &Store, name: &str) -> Vec<CheckPoint> {
    let registry = sources(5_000);
    let connection = connection(store, name).await;
    let cx = SourceContext::detached(store.clone(), clock());
    registry
        .source_of(&connection)
        .unwrap()
        .check(&cx, &connection, "production")
        .await
}

/// The point named `name`.
pub fn point<'a>(points: &'a [CheckPoint], name: &str) -> &'a CheckPoint {
    points
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no point {name}: {points:#?}"))
}

pub async fn sync(store: &Store, name: &str, page_size: u32, full: bool) -> deskbridge_sync::SyncOutcome {
    let options = deskbridge_sync::SyncOptions {
        full,
        ..deskbridge_sync::SyncOptions::default()
    };
    deskbridge_sync::sync(store, &sources(page_size), name, &options, &clock())
        .await
        .unwrap()
}
