//! Delta settings against the emulator, on SQLite and PostgreSQL: "mapped fields only" listens
//! to the mapped properties alone and reports the ones a delta cannot track; changing the method
//! re-reads in full; "clear" and "get latest" resets do what they say.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use deskbridge_connector_entra::{
    DeltaReset, NewCredential, NewEntraConnection, SyncMethod, add_entra_connection, delta_status,
    reset_deltas, set_delta_settings,
};
use deskbridge_core::{SharedClock, SystemClock};
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use deskbridge_store::Entity;
use deskbridge_sync::SyncOptions;

use crate::sync;
use deskbridge_testkit::{TestDb, store_test};
use serde_json::{Value, json};

pub(crate) struct Fixture {
    pub(crate) emu: Emulator,
    tenant: String,
}

/// One generated tenant of 30 people in the emulator, and the connection "c" to it (delta
/// queries on, as programs create it).
pub(crate) async fn fixture(db: &TestDb, last_sign_in: bool) -> Fixture {
    let world = World::generate(&GenerateOptions {
        seed: 21,
        tenants: 1,
        users_per_tenant: Some(30),
        ..GenerateOptions::default()
    })
    .unwrap();
    let emu = Emulator::start(EmulatorConfig::new(world)).await.unwrap();
    let summary = emu.summary();
    let tenant = summary.tenants[0].id.clone();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .unwrap();
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
            last_sign_in,
        },
    )
    .await
    .unwrap();
    Fixture { emu, tenant }
}

impl Fixture {
    pub(crate) async fn patch_user(&self, id: &str, body: Value) {
        let url = format!("{}/tenants/{}/users/{id}", self.emu.admin_url(), self.tenant);
        let response = reqwest::Client::new()
            .patch(url)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    pub(crate) async fn some_user(&self, db: &TestDb) -> (String, String) {
        let mut tx = db.store.read().await.unwrap();
        let users = tx.list(Entity::User, None, 10).await.unwrap();
        tx.commit().await.unwrap();
        let user = &users[0];
        (
            user.source.as_ref().unwrap().external_id.clone(),
            user.get("name").as_str().unwrap().to_owned(),
        )
    }

    /// How many times the user was read on its own (a delta round fetches each changed user).
    fn user_reads(&self, id: &str) -> usize {
        self.emu
            .request_log()
            .iter()
            .filter(|r| r.method == "GET" && r.path.starts_with(&format!("/v1.0/users/{id}?")))
            .count()
    }
}

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

store_test! {
    async fn mapped_fields_only_listens_to_mapped_properties_only(db: &TestDb) {
    let fx = fixture(db, false).await;
    let status = set_delta_settings(&db.store, "c", None, Some(SyncMethod::MappedFieldsOnly)).await.unwrap();
    let users_select = status.tracking.users_select.clone().unwrap();
    for mapped in ["displayName", "mail", "jobTitle", "employeeId", "userPrincipalName", "accountEnabled"] {
        assert!(users_select.split(',').any(|p| p == mapped), "{mapped} in {users_select}");
    }
    assert!(!users_select.split(',').any(|p| p == "officeLocation"));
    assert_eq!(status.tracking.groups_select.as_deref(), Some("displayName,members"));
    assert!(status.tracking.untracked.is_empty());

    let first = sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    assert_eq!(first.mode, "full");
    let (id, _) = fx.some_user(db).await;

    // An unmapped property changes: the delta does not report it, nothing is fetched.
    fx.patch_user(&id, json!({"officeLocation": "Building 7"})).await;
    let quiet = sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    assert_eq!(quiet.mode, "delta");
    assert_eq!(fx.user_reads(&id), 0, "an unmapped change is not listened to");
    assert_eq!(quiet.counts.updated, 0);

    // A mapped property changes: the user is fetched and updated.
    fx.patch_user(&id, json!({"jobTitle": "Chief Listener"})).await;
    let loud = sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    assert_eq!(loud.mode, "delta");
    assert_eq!(fx.user_reads(&id), 1);
    assert_eq!(loud.counts.updated, 1, "{loud:?}");
    let mut tx = db.store.read().await.unwrap();
    let users = tx.list(Entity::User, None, 1000).await.unwrap();
    tx.commit().await.unwrap();
    let user = users
        .iter()
        .find(|u| u.source.as_ref().is_some_and(|s| s.external_id == id))
        .unwrap();
    assert_eq!(user.get("job_title"), &json!("Chief Listener"));
    }
}

store_test! {
    async fn all_changes_listens_to_every_property(db: &TestDb) {
    let fx = fixture(db, false).await;
    sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    let (id, _) = fx.some_user(db).await;
    fx.patch_user(&id, json!({"officeLocation": "Building 7"})).await;
    let round = sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    assert_eq!(round.mode, "delta");
    assert_eq!(fx.user_reads(&id), 1, "every change is listened to");
    assert_eq!(round.counts.updated, 0, "nothing mapped changed");
    }
}

store_test! {
    async fn fields_a_delta_cannot_track_are_reported_with_where_they_are_used(db: &TestDb) {
    let _fx = fixture(db, true).await;
    let status = set_delta_settings(&db.store, "c", None, Some(SyncMethod::MappedFieldsOnly)).await.unwrap();
    let untracked = &status.tracking.untracked;
    assert_eq!(untracked.len(), 1, "{untracked:?}");
    assert_eq!(untracked[0].property, "signInActivity");
    assert_eq!(untracked[0].used_by, vec!["user field last_sign_in".to_owned()]);
    assert!(!status.tracking.users_select.unwrap().contains("signInActivity"));
    // All changes tracks everything, so nothing is reported.
    let status = set_delta_settings(&db.store, "c", None, Some(SyncMethod::AllChanges)).await.unwrap();
    assert!(status.tracking.untracked.is_empty());
    }
}

store_test! {
    async fn changing_the_method_reads_in_full_and_resets_do_what_they_say(db: &TestDb) {
    let fx = fixture(db, false).await;
    sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    assert!(delta_status(&db.store, "c").await.unwrap().links_current);

    // Links taken under "all changes" are not followed under "mapped fields only".
    let status = set_delta_settings(&db.store, "c", None, Some(SyncMethod::MappedFieldsOnly)).await.unwrap();
    assert!(!status.links_current);
    let run = sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    assert_eq!(run.mode, "full", "{:?} {:?}", run.notes, run.errors);
    assert!(run.notes.iter().any(|n| n.contains("sync method or the mappings changed")));
    assert!(delta_status(&db.store, "c").await.unwrap().links_current);
    assert_eq!(sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap().mode, "delta");

    // Clear: the next run is a full import.
    let status = reset_deltas(&db.store, "c", DeltaReset::Clear, &clock()).await.unwrap();
    assert!(status.links_saved_at.is_none());
    assert_eq!(sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap().mode, "full");

    // Get latest: a change made before the reset is not seen; one made after is.
    let (id, _) = fx.some_user(db).await;
    fx.patch_user(&id, json!({"jobTitle": "Before The Reset"})).await;
    let status = reset_deltas(&db.store, "c", DeltaReset::Latest, &clock()).await.unwrap();
    assert!(status.links_current);
    let after_reset = sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    assert_eq!(after_reset.mode, "delta");
    assert_eq!(after_reset.counts.updated, 0);
    fx.patch_user(&id, json!({"jobTitle": "After The Reset"})).await;
    let later = sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    assert_eq!(later.counts.updated, 1);

    // Delta off: every run is a full import.
    set_delta_settings(&db.store, "c", Some(false), None).await.unwrap();
    assert_eq!(sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap().mode, "full");
    }
}

store_test! {
    async fn a_new_sync_method_takes_the_latest_delta_once_confirmed_or_reads_everything_if_asked(db: &TestDb) {
    let fx = fixture(db, false).await;
    sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    let registry = crate::sources();
    let source = registry.get("entra").unwrap();
    let connection = || async {
        let mut tx = db.store.read().await.unwrap();
        let c = tx.connection_by_name("c").await.unwrap().unwrap();
        tx.commit().await.unwrap();
        c
    };
    let values = |body: Value| {
        deskbridge_source::settings::validate(
            source.settings(),
            body.as_object().unwrap(),
            deskbridge_source::settings::Purpose::Edit,
            registry.endpoint_policy(),
        )
        .unwrap()
    };
    // Unconfirmed: refused, nothing changed, and the message says how to confirm.
    let refused = source
        .edit(&db.store, &connection().await, values(json!({ "sync_method": "mapped_fields_only" })))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("\"delta_links\": \"latest\" or \"clear\""), "{refused}");
    assert!(refused.to_string().contains("--yes"), "{refused}");
    assert_eq!(connection().await.config["sync_method"], "all_changes");

    // Confirmed, the guide's way: the latest delta is taken, so a change made before is not
    // read and the next run is a delta round under the new method.
    let (id, _) = fx.some_user(db).await;
    fx.patch_user(&id, json!({"jobTitle": "Before The Change"})).await;
    source
        .edit(
            &db.store,
            &connection().await,
            values(json!({ "sync_method": "mapped_fields_only", "delta_links": "latest" })),
        )
        .await
        .unwrap();
    assert_eq!(connection().await.config["sync_method"], "mapped_fields_only");
    assert!(connection().await.config.get("delta_links").is_none(), "an action, not a setting");
    assert!(delta_status(&db.store, "c").await.unwrap().links_current);
    let run = sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    assert_eq!((run.mode.as_str(), run.counts.updated), ("delta", 0), "{:?}", run.notes);

    // The explicit alternative: read the whole tenant again.
    source
        .edit(
            &db.store,
            &connection().await,
            values(json!({ "sync_method": "all_changes", "delta_links": "clear" })),
        )
        .await
        .unwrap();
    assert!(delta_status(&db.store, "c").await.unwrap().links_saved_at.is_none());
    let run = sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    assert_eq!(run.mode, "full");
    assert_eq!(run.counts.updated, 1, "the change made before is read now: {:?}", run.counts);

    // The same method again needs no answer.
    source
        .edit(&db.store, &connection().await, values(json!({ "sync_method": "all_changes" })))
        .await
        .unwrap();
    }
}

/// The desk user "c" imported as `id`.
async fn desk_user(db: &TestDb, id: &str) -> deskbridge_store::Record {
    let mut tx = db.store.read().await.unwrap();
    let users = tx.list(Entity::User, None, 1000).await.unwrap();
    tx.commit().await.unwrap();
    users
        .into_iter()
        .find(|u| u.source.as_ref().is_some_and(|s| s.external_id == id))
        .unwrap()
}

store_test! {
    async fn a_mapping_change_restarts_the_delta_links_only_once_confirmed(db: &TestDb) {
    let fx = fixture(db, false).await;
    sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    let registry = crate::sources();
    let mapping = || async {
        deskbridge_sync::open_connection(&db.store, &registry, "c").await.unwrap().mapping().clone()
    };
    let mut without_department = mapping().await;
    without_department.user_fields.retain(|f| f.target != "department");
    assert!(
        deskbridge_sync::mapping_change_needs_confirmation(&db.store, &registry, "c", &without_department)
            .await
            .unwrap()
    );

    // Unconfirmed: refused, nothing saved, and the message says how to confirm.
    let refused = deskbridge_sync::save_mappings(&db.store, &registry, "c", without_department.clone(), &clock())
        .await
        .unwrap_err();
    assert!(matches!(refused, deskbridge_sync::SyncError::Conflict(_)), "{refused:?}");
    assert!(refused.to_string().contains("--yes"), "{refused}");
    assert!(refused.to_string().contains("?delta_links=latest"), "{refused}");
    assert!(mapping().await.user_fields.iter().any(|f| f.target == "department"));

    // Confirmed, the guide's way: saved, and the latest delta taken, so a change made before is
    // not read and the next run is a delta round.
    let (id, _) = fx.some_user(db).await;
    fx.patch_user(&id, json!({"jobTitle": "Before The Change"})).await;
    deskbridge_sync::save_mappings_confirmed(
        &db.store,
        &registry,
        "c",
        without_department.clone(),
        Some(deskbridge_source::CursorReset::Latest),
        &clock(),
    )
    .await
    .unwrap();
    assert!(!mapping().await.user_fields.iter().any(|f| f.target == "department"));
    let run = sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    assert_eq!((run.mode.as_str(), run.counts.updated), ("delta", 0), "{:?}", run.notes);

    // The explicit alternative: read the whole tenant again on the next run.
    let mut without_job_title = mapping().await;
    without_job_title.user_fields.retain(|f| f.target != "job_title");
    deskbridge_sync::save_mappings_confirmed(
        &db.store,
        &registry,
        "c",
        without_job_title,
        Some(deskbridge_source::CursorReset::Clear),
        &clock(),
    )
    .await
    .unwrap();
    assert_eq!(sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap().mode, "full");

    // A change elsewhere in the mappings restarts nothing, so needs no answer.
    let mut breaker = mapping().await;
    breaker.circuit_breaker.max_deactivate_percent = 40.0;
    assert!(
        !deskbridge_sync::mapping_change_needs_confirmation(&db.store, &registry, "c", &breaker).await.unwrap()
    );
    deskbridge_sync::save_mappings(&db.store, &registry, "c", breaker, &clock()).await.unwrap();

    // Without delta queries, nothing restarts either.
    set_delta_settings(&db.store, "c", Some(false), None).await.unwrap();
    let mut again = mapping().await;
    again.user_fields.retain(|f| f.target != "mobile");
    deskbridge_sync::save_mappings(&db.store, &registry, "c", again, &clock()).await.unwrap();
    }
}

store_test! {
    async fn a_person_that_cannot_be_read_keeps_the_delta_link_until_it_can(db: &TestDb) {
    let fx = fixture(db, false).await;
    sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    let (id, _) = fx.some_user(db).await;
    assert_eq!(desk_user(db, &id).await.get("active"), &json!(true));

    // The person changes, and Graph sends "false" as text where it sends a boolean: an error
    // against that person, nothing of it applied, and the delta link stays.
    fx.patch_user(&id, json!({"jobTitle": "Changed Meanwhile"})).await;
    fx.emu.update_faults(|f| {
        f.corrupt_user_properties = vec![(id.clone(), "accountEnabled".into(), json!("false"))];
    });
    let bad = sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    assert_eq!(bad.mode, "delta");
    let error = bad
        .errors
        .iter()
        .find(|e| e.external_id.as_deref() == Some(id.as_str()))
        .unwrap_or_else(|| panic!("an error against {id}: {:?}", bad.errors));
    assert!(error.message.contains("accountEnabled"), "{}", error.message);
    assert!(bad.notes.iter().any(|n| n.contains("reads those records again")), "{:?}", bad.notes);
    let user = desk_user(db, &id).await;
    assert_eq!(user.get("active"), &json!(true), "never coerced into a default");
    assert_ne!(user.get("job_title"), &json!("Changed Meanwhile"));

    // Still wrong next round: read again, still refused (the link did not move past it).
    let again = sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    assert!(again.errors.iter().any(|e| e.external_id.as_deref() == Some(id.as_str())));

    // Graph sends it right again: the change the link held back arrives with a delta round.
    fx.emu.update_faults(|f| f.corrupt_user_properties.clear());
    let healed = sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    assert_eq!(healed.mode, "delta");
    assert!(healed.errors.is_empty(), "{:?}", healed.errors);
    assert_eq!(desk_user(db, &id).await.get("job_title"), &json!("Changed Meanwhile"));
    // And the link moves on: a quiet round reads nobody.
    let quiet = sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    assert_eq!((quiet.mode.as_str(), quiet.counts.updated), ("delta", 0));
    assert!(quiet.errors.is_empty());
    }
}
