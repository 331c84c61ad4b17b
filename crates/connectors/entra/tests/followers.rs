//! Distribution groups as ticket followers, end to end against the emulator on SQLite and
//! PostgreSQL: the desk-wide setting and its default connection, the connection's own switch and
//! mode, the group read from Graph, and the ticket's followers in the store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use deskbridge_core::{RecordId, SharedClock, SystemClock};
use deskbridge_mapping::{FollowerMode, FollowerOptions};
use deskbridge_store::{Entity, FollowerSettings, WriteContext};
use deskbridge_sync::{SyncOptions, add_group_followers};
use deskbridge_testkit::{TestDb, store_test};
use serde_json::{Value, json};

use crate::delta_settings::fixture;
use crate::{sources, sync};

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

async fn followers_of(db: &TestDb, ticket: RecordId) -> Vec<String> {
    let mut tx = db.store.read().await.unwrap();
    let record = tx.get(Entity::Ticket, ticket).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    match record.get("followers") {
        Value::Array(items) => items.iter().map(|v| v.as_str().unwrap().to_owned()).collect(),
        other => panic!("followers: {other}"),
    }
}

async fn set_options(db: &TestDb, options: FollowerOptions) {
    let registry = sources();
    let mut mapping = deskbridge_sync::open_connection(&db.store, &registry, "c")
        .await
        .unwrap()
        .mapping()
        .clone();
    mapping.followers = options;
    deskbridge_sync::save_mappings(&db.store, &registry, "c", mapping, &clock())
        .await
        .unwrap();
}

store_test! {
    async fn a_distribution_group_follows_a_ticket_by_its_address_or_by_its_people(db: &TestDb) {
    let _fx = fixture(db, false).await;
    sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    let registry = sources();
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let fields = [
        ("summary".to_owned(), json!("The printer is on fire")),
        ("followers".to_owned(), json!(["email:facilities@example.test"])),
    ]
    .into_iter()
    .collect();
    let ticket = tx.insert(Entity::Ticket, None, &fields).await.unwrap();
    tx.commit().await.unwrap();
    let add = |group: &'static str, connection: Option<&'static str>| {
        let registry = &registry;
        async move { add_group_followers(&db.store, registry, ticket, group, connection, &clock()).await }
    };

    // Off for the desk until an administrator allows it.
    let off = add("Newsletter", Some("c")).await.unwrap_err();
    assert!(off.to_string().contains("followers settings --enable"), "{off}");

    // Allowed, but no connection named and no default.
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    tx.set_follower_settings(&FollowerSettings { enabled: true, default_connection: None }, "test")
        .await
        .unwrap();
    let c = tx.connection_by_name("c").await.unwrap().unwrap();
    tx.commit().await.unwrap();
    let no_default = add("Newsletter", None).await.unwrap_err();
    assert!(no_default.to_string().contains("--default-connection"), "{no_default}");

    // The default connection has not allowed its groups yet.
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    tx.set_follower_settings(&FollowerSettings { enabled: true, default_connection: Some(c.id) }, "test")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let not_allowed = add("Newsletter", None).await.unwrap_err();
    assert!(not_allowed.to_string().contains("does not allow"), "{not_allowed}");

    // The list's address follows, read through the default connection; the ticket keeps its
    // earlier follower, and the same group twice adds nothing.
    set_options(db, FollowerOptions { enabled: true, mode: FollowerMode::GroupAddress, member_cap: 100 }).await;
    let added = add("Newsletter", None).await.unwrap();
    assert_eq!(added.connection, "c");
    assert_eq!(added.added.len(), 1, "{added:?}");
    assert!(added.added[0].starts_with("email:newsletter@"), "{added:?}");
    assert_eq!(followers_of(db, ticket).await.len(), 2);
    assert_eq!(followers_of(db, ticket).await[0], "email:facilities@example.test");
    let again = add("Newsletter", None).await.unwrap();
    assert!(again.added.is_empty());
    assert_eq!(again.already_following, 1);

    // Its people follow, each as the desk user imported for them, up to the member cap.
    set_options(db, FollowerOptions { enabled: true, mode: FollowerMode::Members, member_cap: 3 }).await;
    let people = add("Helpdesk Escalation", Some("c")).await.unwrap();
    assert_eq!(people.added.len(), 3, "{people:?}");
    assert_eq!(people.over_cap, 2);
    let mut tx = db.store.read().await.unwrap();
    for follower in &people.added {
        let id: i64 = follower.strip_prefix("user:").unwrap().parse().unwrap();
        let user = tx.get(Entity::User, RecordId(id)).await.unwrap().unwrap();
        assert_eq!(user.source.as_ref().unwrap().connection_id, c.id);
    }
    tx.commit().await.unwrap();
    assert_eq!(followers_of(db, ticket).await.len(), 5);

    // Names that match nothing are said as such, and change nothing.
    let unknown = add("No Such Group", None).await.unwrap_err();
    assert!(unknown.to_string().contains("no group named"), "{unknown}");
    let no_ticket =
        add_group_followers(&db.store, &registry, RecordId(999_999), "Newsletter", None, &clock()).await.unwrap_err();
    assert!(no_ticket.to_string().contains("no ticket"), "{no_ticket}");
    assert_eq!(followers_of(db, ticket).await.len(), 5);
    }
}
