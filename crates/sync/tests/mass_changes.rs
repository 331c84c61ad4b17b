//! Mass changes through the whole pipeline: a run that would move most of a tenant's users to
//! another site, or change one field of most of them, is held for approval like a mass
//! deactivation — nothing of it applied, the tenant's cursors where they were — and approving it
//! applies every held change once.

use deskbridge_mapping::{MappingConfig, SiteTarget};
use deskbridge_store::{Fields, WriteContext};

use crate::*;

async fn configure(db: &TestDb, name: &str, change: impl FnOnce(&mut MappingConfig)) {
    let (connection, mut settings) = deskbridge_connector_entra::load_entra_connection(&db.store, name)
        .await
        .unwrap();
    change(&mut settings.mapping);
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    tx.update_connection_config(connection.id, &serde_json::to_value(&settings).unwrap())
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// The connection's stored cursors: (tenant, stream, value).
async fn cursors(db: &TestDb, name: &str) -> Vec<(String, String, String)> {
    let (connection, _) = deskbridge_connector_entra::load_entra_connection(&db.store, name)
        .await
        .unwrap();
    let mut tx = db.store.read().await.unwrap();
    let cursors = tx.cursors_of(connection.id).await.unwrap();
    tx.commit().await.unwrap();
    cursors
}

/// Approves the connection's held run (reading the tenant whole when `full`) and checks it
/// succeeded.
async fn approve(db: &TestDb, full: bool) -> SyncOutcome {
    let approve = SyncOptions {
        approve_held: true,
        full,
        ..SyncOptions::default()
    };
    let approved = sync(&db.store, "contoso", &approve, &clock()).await.unwrap();
    assert_eq!(approved.status, "succeeded", "{approved:?}");
    approved
}

store_test! {
    async fn moving_most_users_to_another_site_is_held_until_approved(db: &TestDb) {
        let fx = emulator(40).await;
        fx.connect(db, "contoso").await;
        let first = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(first.status, "succeeded", "{:?}", first.errors);
        let before = desk_users(db).await;
        let cursors_before = cursors(db, "contoso").await;
        assert!(!cursors_before.is_empty(), "the first run stored its cursors");

        // An administrator points the catch-all mapping at another site: everyone would move.
        let (_, settings) = deskbridge_connector_entra::load_entra_connection(&db.store, "contoso").await.unwrap();
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let fields: Fields = [("customer_id".to_owned(), json!(settings.customer_id.0)), ("name".to_owned(), json!("Leeds"))]
            .into_iter()
            .collect();
        let leeds = tx.insert(Entity::Site, None, &fields).await.unwrap();
        tx.commit().await.unwrap();
        configure(db, "contoso", |m| m.site_mappings[0].target = SiteTarget::ExistingSite { site_id: leeds }).await;
        // A delta round would read no user: the mapping's change shows in a full read.
        let full = SyncOptions { full: true, ..SyncOptions::default() };

        // The preview shows the held plan to review.
        let preview = sync(&db.store, "contoso", &SyncOptions { plan_only: true, ..full.clone() }, &clock()).await.unwrap();
        assert_eq!(preview.status, "held", "{preview:?}");
        let moves = preview
            .changes
            .unwrap()
            .into_iter()
            .filter(|c| c.fields.get("site_id").is_some_and(|f| f.after == json!(leeds.0)))
            .count();
        assert_eq!(moves, before.len(), "every user's move is in the plan to review");
        // The breaker weighs the active users' moves against the active users.
        let active = before.values().filter(|u| u.get("active") == &json!(true)).count();

        let held = sync(&db.store, "contoso", &full, &clock()).await.unwrap();
        assert_eq!(held.status, "held", "{held:?}");
        let reason = held.held.clone().unwrap_or_default();
        assert!(
            reason.starts_with(&format!("this run would move {active} of {active} active records (100.0 %) to another site, more than the 30 % allowed")),
            "the reason names what tripped: {reason}"
        );
        assert_eq!(desk_users(db).await, before, "nothing moved");
        assert_eq!(cursors(db, "contoso").await, cursors_before, "the cursors stay where they were");
        let mut tx = db.store.read().await.unwrap();
        let run = tx.run(held.run_id.unwrap()).await.unwrap().unwrap();
        assert_eq!(run.status, deskbridge_store::RunStatus::Held);
        assert_eq!(run.message.as_deref(), Some(reason.as_str()));
        tx.commit().await.unwrap();

        let approved = approve(db, true).await;
        assert_eq!(approved.counts.updated, before.len() as i64, "{approved:?}");
        for (id, user) in &desk_users(db).await {
            assert_eq!(user.get("site_id"), &json!(leeds.0), "{id} moved");
        }
        let again = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(again.status, "succeeded", "{again:?}");
        assert_eq!(again.counts.updated, 0, "every move was applied once");
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn a_mass_department_change_is_held_and_a_small_one_applies(db: &TestDb) {
        let fx = emulator(40).await;
        fx.connect(db, "contoso").await;
        let first = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(first.status, "succeeded", "{:?}", first.errors);
        let members: Vec<String> = fx
            .users()
            .await
            .into_iter()
            .filter(|u| !is_guest(u) && u["accountEnabled"] == json!(true))
            .filter_map(|u| u["id"].as_str().map(str::to_owned))
            .collect();
        assert!(members.len() > 20, "{} members", members.len());

        // A few changes are within the breaker's share: applied by a delta run.
        for id in &members[..3] {
            fx.admin(reqwest::Method::PATCH, &format!("users/{id}"), Some(json!({"department": "Finance"}))).await;
        }
        let small = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!((small.status.as_str(), small.mode.as_str()), ("succeeded", "delta"), "{small:?}");
        let desk = desk_users(db).await;
        assert!(members[..3].iter().all(|id| desk[id].get("department") == &json!("Finance")));

        // Most of the tenant's department changes at once: held, nothing applied.
        let renamed = &members[3..];
        for id in renamed {
            fx.admin(reqwest::Method::PATCH, &format!("users/{id}"), Some(json!({"department": "Reorganised"}))).await;
        }
        let before = desk_users(db).await;
        let cursors_before = cursors(db, "contoso").await;
        let held = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(held.status, "held", "{held:?}");
        let reason = held.held.clone().unwrap_or_default();
        assert!(
            reason.contains(&format!("would change `department` on {} of ", renamed.len())) && reason.contains("more than the 30 % allowed"),
            "{reason}"
        );
        assert_eq!(desk_users(db).await, before, "no department changed");
        assert_eq!(cursors(db, "contoso").await, cursors_before, "the delta link stays where it was");

        // Approved: the approving run reads the same changes again and applies every one.
        approve(db, false).await;
        let desk = desk_users(db).await;
        for id in renamed {
            assert_eq!(desk[id].get("department"), &json!("Reorganised"), "{id}");
        }
        assert!(members[..3].iter().all(|id| desk[id].get("department") == &json!("Finance")));
        fx.emu.shutdown().await;
    }
}
