//! Managed devices imported as desk assets through an Entra connection, against the emulator's
//! Intune, on SQLite and PostgreSQL: type rules, user linking by both methods, serial matching of
//! hand-made assets (duplicates and empty serials are conflicts or new assets, never guesses),
//! the deletion status, Sense exclusion, an owner change, keep-existing-types, and a preview that
//! writes nothing and plans exactly what the sync then does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use deskbridge_connector_entra::{NewCredential, NewEntraConnection, add_entra_connection};
use deskbridge_core::{RecordId, SharedClock, SystemClock};
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use deskbridge_mapping::{
    Action, AssetMappings, AssetTypeRule, AssetTypes, AssetUserLink, DeviceUserField, UnmatchedDevice,
};
use deskbridge_source::SyncEntity;
use deskbridge_store::{Entity, Fields, Record, WriteContext};
use deskbridge_sync::{SyncOptions, SyncOutcome};
use deskbridge_testkit::{TestDb, store_test};
use serde_json::{Value, json};

use crate::{sources, sync};

pub(crate) struct Fixture {
    pub(crate) emu: Emulator,
    pub(crate) tenant: String,
}

pub(crate) fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

/// A one-tenant world and an Entra connection "c" to it with the app of `app_kind`.
pub(crate) async fn fixture(db: &TestDb, app_kind: &str) -> Fixture {
    let world = World::generate(&GenerateOptions {
        seed: 77,
        tenants: 1,
        users_per_tenant: Some(40),
        ..GenerateOptions::default()
    })
    .unwrap();
    let emu = Emulator::start(EmulatorConfig::new(world)).await.unwrap();
    let summary = emu.summary();
    let tenant = summary.tenants[0].id.clone();
    let app = summary.apps.iter().find(|a| a.kind == app_kind).unwrap();
    add_entra_connection(
        &db.store,
        &NewEntraConnection {
            name: "c".into(),
            tenant_id: tenant.clone(),
            client_id: app.client_id.clone(),
            credential: NewCredential::ClientSecret {
                value: app.client_secret.clone().unwrap(),
                expires_at: None,
            },
            authority_host: Some(summary.authority_host.clone()),
            graph_url: Some(summary.graph_url.clone()),
            customer: None,
            enabled_instances: None,
            last_sign_in: false,
        },
    )
    .await
    .unwrap();
    Fixture { emu, tenant }
}

fn assets_options() -> SyncOptions {
    SyncOptions {
        entity: SyncEntity::Assets,
        ..SyncOptions::default()
    }
}

fn preview_options() -> SyncOptions {
    SyncOptions {
        plan_only: true,
        ..assets_options()
    }
}

/// Rules by operating system, a fallback, users by UPN.
fn rules() -> AssetMappings {
    AssetMappings {
        types: AssetTypes::Rules {
            rules: vec![
                AssetTypeRule {
                    filter: "operatingSystem eq 'Windows'".into(),
                    asset_type: "Laptop".into(),
                },
                AssetTypeRule {
                    filter: "operatingSystem eq 'iOS' or operatingSystem eq 'Android'".into(),
                    asset_type: "Phone".into(),
                },
            ],
            unmatched: UnmatchedDevice::Fallback {
                asset_type: "Other device".into(),
            },
        },
        ..AssetMappings::default()
    }
}

async fn set_assets(db: &TestDb, assets: AssetMappings) {
    let mut mapping = deskbridge_sync::open_connection(&db.store, &sources(), "c")
        .await
        .unwrap()
        .mapping()
        .clone();
    mapping.assets = Some(assets);
    deskbridge_sync::save_mappings(&db.store, &sources(), "c", mapping, &clock())
        .await
        .unwrap();
}

pub(crate) async fn records(db: &TestDb, entity: Entity) -> Vec<Record> {
    let mut tx = db.store.read().await.unwrap();
    let records = tx.list(entity, None, 10_000).await.unwrap();
    tx.commit().await.unwrap();
    records
}

fn active(record: &Record) -> bool {
    record.get("active").as_bool().unwrap_or(true)
}

fn device_id(asset: &Record) -> Option<&str> {
    asset.source.as_ref().map(|s| s.external_id.as_str())
}

async fn asset_of(db: &TestDb, device: &str) -> Record {
    records(db, Entity::Asset)
        .await
        .into_iter()
        .find(|a| device_id(a) == Some(device))
        .unwrap_or_else(|| panic!("no asset for device {device}"))
}

async fn type_name(db: &TestDb, asset: &Record) -> String {
    let id = asset.get("asset_type_id").as_i64().unwrap();
    let mut tx = db.store.read().await.unwrap();
    let ty = tx.get(Entity::AssetType, RecordId(id)).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    ty.get("name").as_str().unwrap().to_owned()
}

impl Fixture {
    /// The tenant's devices as the emulator holds them (camelCase, as Graph sends them).
    fn devices(&self) -> Vec<Value> {
        self.emu.with_world(|w| {
            w.tenants[0]
                .devices
                .iter()
                .map(|d| serde_json::to_value(d).unwrap())
                .collect()
        })
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/tenants/{}/devices{path}", self.emu.admin_url(), self.tenant);
        let mut request = reqwest::Client::new().request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        response.json().await.unwrap_or(Value::Null)
    }

    async fn add_device(&self, body: Value) -> String {
        let device = self.admin(reqwest::Method::POST, "", Some(body)).await;
        device["id"].as_str().unwrap().to_owned()
    }
}

fn planned(outcome: &SyncOutcome, action: Action) -> usize {
    outcome
        .changes
        .as_ref()
        .unwrap()
        .iter()
        .filter(|c| c.action == action && c.entity == deskbridge_mapping::Entity::Asset)
        .count()
}

store_test! {
    async fn devices_become_typed_assets_of_their_users_and_a_second_run_changes_nothing(db: &TestDb) {
    let fx = fixture(db, "multi_tenant_secret").await;
    sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    set_assets(db, rules()).await;
    let devices = fx.devices();
    assert!(!devices.is_empty());

    // The preview writes nothing, and plans exactly what the sync then does.
    let preview = sync(&db.store, "c", &preview_options(), &clock()).await.unwrap();
    assert_eq!(preview.status, "planned");
    assert!(records(db, Entity::Asset).await.is_empty(), "a preview writes nothing");
    assert!(records(db, Entity::AssetType).await.is_empty());
    let run = sync(&db.store, "c", &assets_options(), &clock()).await.unwrap();
    assert_eq!(run.status, "succeeded", "{run:?}");
    assert_eq!(run.counts.created, preview.counts.created, "{run:?} vs {preview:?}");
    let assets = records(db, Entity::Asset).await;
    let types = records(db, Entity::AssetType).await;
    assert_eq!(assets.len() + types.len(), usize::try_from(run.counts.created).unwrap());
    assert_eq!(assets.len(), planned(&preview, Action::Create));

    // Defender-managed devices are skipped; every other device is an asset.
    let sense: Vec<&Value> = devices.iter().filter(|d| d["managementAgent"] == "msSense").collect();
    assert!(!sense.is_empty(), "the generated tenant has a Sense device");
    assert_eq!(assets.len(), devices.len() - sense.len());
    for device in &sense {
        let id = device["id"].as_str().unwrap();
        assert!(assets.iter().all(|a| device_id(a) != Some(id)));
    }

    // Types by rule, users by UPN, the user's site, the new status, the tenant remembered.
    let users = records(db, Entity::User).await;
    for device in devices.iter().filter(|d| d["managementAgent"] != "msSense") {
        let asset = asset_of(db, device["id"].as_str().unwrap()).await;
        let expected = match device["operatingSystem"].as_str().unwrap() {
            "Windows" => "Laptop",
            "iOS" | "Android" => "Phone",
            _ => "Other device",
        };
        assert_eq!(type_name(db, &asset).await, expected);
        assert_eq!(asset.get("status"), &json!("active"));
        assert_eq!(asset.get("tenant_id"), &json!(fx.tenant));
        let upn = device["userPrincipalName"].as_str().unwrap_or_default();
        // Only active users are linked: a device of a disabled account belongs to nobody.
        let owner = users
            .iter()
            .find(|u| !upn.is_empty() && u.get("network_login").as_str() == Some(upn) && active(u));
        match owner {
            Some(user) => {
                assert_eq!(asset.get("user_id"), &json!(user.id.0));
                assert_eq!(asset.get("site_id"), user.get("site_id"));
            }
            None => {
                assert_eq!(asset.get("user_id"), &Value::Null);
                assert!(asset.get("site_id").is_i64(), "placed at the customer's main site");
            }
        }
        let serial = device["serialNumber"].as_str().unwrap_or_default();
        if serial.is_empty() {
            assert_eq!(asset.get("serial_number"), &Value::Null, "Intune's \"\" is no serial");
        } else {
            assert_eq!(asset.get("serial_number"), &json!(serial));
        }
    }

    let again = sync(&db.store, "c", &assets_options(), &clock()).await.unwrap();
    assert_eq!(
        (again.counts.created, again.counts.updated, again.counts.deactivated),
        (0, 0, 0),
        "{again:?}"
    );
    }
}

store_test! {
    async fn serials_link_hand_made_assets_and_never_guess(db: &TestDb) {
    let fx = fixture(db, "multi_tenant_secret").await;
    sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    set_assets(db, rules()).await;
    let customer = records(db, Entity::Customer).await[0].id;
    let one = fx.add_device(json!({"deviceName": "LINK-ME", "serialNumber": "SER-LINK", "operatingSystem": "Windows"})).await;
    let two = fx.add_device(json!({"deviceName": "TWO-FIT", "serialNumber": "SER-DUP", "operatingSystem": "Windows"})).await;
    let blank = fx.add_device(json!({"deviceName": "NO-SERIAL", "serialNumber": "", "operatingSystem": "macOS"})).await;
    let foreign = fx.add_device(json!({"deviceName": "FOREIGN", "serialNumber": "SER-OTHER", "operatingSystem": "iOS"})).await;
    // Hand-made desk assets: one to link, two sharing a serial, one without a serial, and one of
    // another customer with the serial of a device.
    let other = {
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let other: Fields = [("name".to_owned(), json!("Someone Else Ltd"))].into_iter().collect();
        let other = tx.insert(Entity::Customer, None, &other).await.unwrap();
        let asset = |name: &str, serial: Option<&str>, customer: RecordId| -> Fields {
            let mut f: Fields = [
                ("name".to_owned(), json!(name)),
                ("customer_id".to_owned(), json!(customer.0)),
                ("status".to_owned(), json!("in stock")),
            ]
            .into_iter()
            .collect();
            if let Some(serial) = serial {
                f.insert("serial_number".into(), json!(serial));
            }
            f
        };
        for (name, serial, owner) in [
            ("Hand-made laptop", Some("  ser-link "), customer),
            ("Dup A", Some("SER-DUP"), customer),
            ("Dup B", Some("SER-DUP"), customer),
            ("Blank", None, customer),
            ("Other customer's", Some("SER-OTHER"), other),
        ] {
            tx.insert(Entity::Asset, None, &asset(name, serial, owner)).await.unwrap();
        }
        tx.commit().await.unwrap();
        other
    };
    let run = sync(&db.store, "c", &assets_options(), &clock()).await.unwrap();
    assert_eq!(run.status, "succeeded", "{run:?}");
    let assets = records(db, Entity::Asset).await;
    let named = |name: &str| assets.iter().find(|a| a.get("name") == &json!(name)).unwrap();
    // Linked, ignoring case: the hand-made asset now carries the device and its name.
    let linked = asset_of(db, &one).await;
    assert_eq!(linked.id, named("LINK-ME").id);
    assert_eq!(linked.get("status"), &json!("in stock"), "a linked asset keeps its status");
    assert!(assets.iter().all(|a| a.get("name") != &json!("Hand-made laptop")));
    // Two candidates: a conflict, nothing guessed or created.
    assert!(assets.iter().all(|a| device_id(a) != Some(two.as_str())));
    assert!(run.counts.conflicts >= 1);
    assert!(named("Dup A").source.is_none() && named("Dup B").source.is_none());
    // No serial never matches no serial: a new asset, the blank one untouched.
    assert_ne!(asset_of(db, &blank).await.id, named("Blank").id);
    assert!(named("Blank").source.is_none());
    // Another customer's asset is never matched.
    let mine = asset_of(db, &foreign).await;
    assert_eq!(mine.get("customer_id"), &json!(customer.0));
    let theirs = named("Other customer's");
    assert!(theirs.source.is_none());
    assert_eq!(theirs.get("customer_id"), &json!(other.0));
    }
}

store_test! {
    async fn deleted_devices_are_retired_and_an_owner_change_moves_the_asset(db: &TestDb) {
    let fx = fixture(db, "multi_tenant_secret").await;
    sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    set_assets(db, rules()).await;
    let users = records(db, Entity::User).await;
    let (ann, bob) = (&users[0], &users[1]);
    let upn = |u: &Record| u.get("network_login").as_str().unwrap().to_owned();
    let moved = fx
        .add_device(json!({"deviceName": "MOVER", "serialNumber": "SER-MOVE", "operatingSystem": "Windows",
                           "userPrincipalName": upn(ann)}))
        .await;
    let doomed = fx
        .add_device(json!({"deviceName": "DOOMED", "serialNumber": "SER-GONE", "operatingSystem": "Android"}))
        .await;
    sync(&db.store, "c", &assets_options(), &clock()).await.unwrap();
    assert_eq!(asset_of(db, &moved).await.get("user_id"), &json!(ann.id.0));

    fx.admin(reqwest::Method::PATCH, &format!("/{moved}"), Some(json!({"userPrincipalName": upn(bob)}))).await;
    fx.admin(reqwest::Method::DELETE, &format!("/{doomed}"), None).await;
    let run = sync(&db.store, "c", &assets_options(), &clock()).await.unwrap();
    assert_eq!(run.counts.deactivated, 1, "{run:?}");
    let asset = asset_of(db, &moved).await;
    assert_eq!(asset.get("user_id"), &json!(bob.id.0));
    assert_eq!(asset.get("site_id"), bob.get("site_id"));
    // Never deleted: the asset stays with the deletion status.
    let gone = asset_of(db, &doomed).await;
    assert_eq!(gone.get("status"), &json!("retired"));

    // The device comes back: the asset is active again.
    fx.add_device(json!({"id": doomed, "deviceName": "DOOMED", "serialNumber": "SER-GONE", "operatingSystem": "Android"}))
        .await;
    sync(&db.store, "c", &assets_options(), &clock()).await.unwrap();
    assert_eq!(asset_of(db, &doomed).await.get("status"), &json!("active"));
    }
}

store_test! {
    async fn field_types_the_user_method_and_keeping_existing_types(db: &TestDb) {
    let fx = fixture(db, "multi_tenant_secret").await;
    sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    set_assets(
        db,
        AssetMappings {
            types: AssetTypes::Field { property: "operatingSystem".into(), fallback: None },
            user_link: AssetUserLink::User,
            ..AssetMappings::default()
        },
    )
    .await;
    sync(&db.store, "c", &assets_options(), &clock()).await.unwrap();
    let users = records(db, Entity::User).await;
    for device in fx.devices().iter().filter(|d| d["managementAgent"] != "msSense") {
        let asset = asset_of(db, device["id"].as_str().unwrap()).await;
        assert_eq!(type_name(db, &asset).await, device["operatingSystem"].as_str().unwrap());
        // The user method: the owner is the user whose device list holds it.
        let owner = device["userId"].as_str().unwrap_or_default();
        let user = users.iter().find(|u| device_id(u) == Some(owner) && active(u));
        assert_eq!(asset.get("user_id"), &user.map_or(Value::Null, |u| json!(u.id.0)));
    }
    assert!(
        fx.emu.request_log().iter().any(|r| r.path.contains("/managedDevices") && r.path.starts_with("/v1.0/users/")),
        "the user method lists each user's devices"
    );

    // Keep existing types: a single type from now on changes no existing asset's type.
    set_assets(
        db,
        AssetMappings {
            types: AssetTypes::Single { asset_type: "Managed device".into() },
            keep_existing_types: true,
            user_link: AssetUserLink::Asset { field: DeviceUserField::UserId },
            ..AssetMappings::default()
        },
    )
    .await;
    let before: Vec<(RecordId, Value)> =
        records(db, Entity::Asset).await.iter().map(|a| (a.id, a.get("asset_type_id").clone())).collect();
    let run = sync(&db.store, "c", &assets_options(), &clock()).await.unwrap();
    assert_eq!(run.status, "succeeded", "{run:?}");
    let after: Vec<(RecordId, Value)> =
        records(db, Entity::Asset).await.iter().map(|a| (a.id, a.get("asset_type_id").clone())).collect();
    assert_eq!(before, after);
    }
}

store_test! {
    async fn a_missing_permission_fails_the_run_with_its_remedy(db: &TestDb) {
    let _fx = fixture(db, "single_tenant").await;
    set_assets(db, rules()).await;
    let run = sync(&db.store, "c", &assets_options(), &clock()).await.unwrap();
    assert_eq!(run.status, "failed", "{run:?}");
    let error = &run.errors[0];
    assert!(
        error.remedy.as_deref().unwrap_or_default().contains("DeviceManagementManagedDevices.Read.All"),
        "{error:?}"
    );
    assert!(records(db, Entity::Asset).await.is_empty());
    }
}

store_test! {
    async fn the_check_names_the_device_permission_once_assets_are_imported(db: &TestDb) {
    let _fx = fixture(db, "single_tenant").await;
    let report = deskbridge_sync::check_connection(&db.store, &sources(), "c", "production", &clock()).await;
    let permissions = report.points.iter().find(|p| p.name == "permissions").unwrap();
    assert!(!permissions.detail.contains("DeviceManagementManagedDevices"), "{permissions:?}");
    set_assets(db, rules()).await;
    let report = deskbridge_sync::check_connection(&db.store, &sources(), "c", "production", &clock()).await;
    let permissions = report.points.iter().find(|p| p.name == "permissions").unwrap();
    assert!(!permissions.ok, "{permissions:?}");
    assert!(permissions.detail.contains("DeviceManagementManagedDevices.Read.All for managed devices"), "{permissions:?}");
    assert!(
        permissions.remedy.contains("DeviceManagementManagedDevices.Read.All"),
        "{permissions:?}"
    );
    }
}

store_test! {
    async fn an_asset_run_needs_asset_mappings(db: &TestDb) {
    let _fx = fixture(db, "multi_tenant_secret").await;
    let error = sync(&db.store, "c", &assets_options(), &clock()).await.unwrap_err();
    assert!(error.to_string().contains("asset import is not set up"), "{error}");
    }
}

store_test! {
    async fn rules_that_exclude_leave_unmatched_devices_out(db: &TestDb) {
    let fx = fixture(db, "multi_tenant_secret").await;
    sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    set_assets(
        db,
        AssetMappings {
            types: AssetTypes::Rules {
                rules: vec![AssetTypeRule { filter: "operatingSystem eq 'Windows'".into(), asset_type: "Laptop".into() }],
                unmatched: UnmatchedDevice::Exclude,
            },
            ..AssetMappings::default()
        },
    )
    .await;
    let preview = sync(&db.store, "c", &preview_options(), &clock()).await.unwrap();
    let skipped = planned(&preview, Action::Skip);
    let run = sync(&db.store, "c", &assets_options(), &clock()).await.unwrap();
    assert_eq!(run.status, "succeeded", "{run:?}");
    let devices = fx.devices();
    let windows = devices
        .iter()
        .filter(|d| d["operatingSystem"] == "Windows" && d["managementAgent"] != "msSense")
        .count();
    let assets = records(db, Entity::Asset).await;
    assert_eq!(assets.len(), windows, "only Windows devices are imported");
    assert_eq!(skipped, devices.len() - windows, "the others (and Sense) are reported skips");
    for asset in &assets {
        assert_eq!(type_name(db, asset).await, "Laptop");
    }
    }
}

store_test! {
    async fn a_mass_deletion_is_held_until_approved(db: &TestDb) {
    let fx = fixture(db, "multi_tenant_secret").await;
    sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    set_assets(db, rules()).await;
    sync(&db.store, "c", &assets_options(), &clock()).await.unwrap();
    let before = records(db, Entity::Asset).await.len();
    assert!(before > 12, "enough assets to trip the breaker: {before}");
    // Most devices leave Intune at once: more than the breaker's share.
    let gone: Vec<String> = fx
        .devices()
        .iter()
        .filter(|d| d["managementAgent"] != "msSense")
        .take(before - 1)
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    for id in &gone {
        fx.admin(reqwest::Method::DELETE, &format!("/{id}"), None).await;
    }
    let held = sync(&db.store, "c", &assets_options(), &clock()).await.unwrap();
    assert_eq!(held.status, "held", "{held:?}");
    assert!(held.held.as_deref().unwrap_or_default().contains("deletion status"), "{held:?}");
    let statuses = |assets: Vec<Record>| {
        assets.iter().filter(|a| a.get("status") == &json!("retired")).count()
    };
    assert_eq!(statuses(records(db, Entity::Asset).await), 0, "nothing retired while held");
    let approved = sync(
        &db.store,
        "c",
        &SyncOptions { approve_held: true, ..assets_options() },
        &clock(),
    )
    .await
    .unwrap();
    assert_eq!(approved.status, "succeeded", "{approved:?}");
    assert_eq!(statuses(records(db, Entity::Asset).await), gone.len());
    }
}
