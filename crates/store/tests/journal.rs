use crate::store_test;
use deskbridge_core::{ConnectionId, RunId};
use deskbridge_store::{CursorKey, Entity, NewConnection, SourceKey, WriteContext};
use serde_json::json;

use crate::harness::TestDb;
use crate::records::{customer, fields};

async fn connection(db: &TestDb) -> ConnectionId {
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let c = tx
        .create_connection(&NewConnection {
            name: "contoso".into(),
            kind: "entra".into(),
            config: json!({}),
            enabled_instances: "production".into(),
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    c.id
}

store_test! {
    async fn the_journal_shows_exactly_the_field_level_change(db: &TestDb) {
        let (_, site) = customer(db, "Contoso").await;
        let conn = connection(db).await;
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let run = tx.start_run(Some(conn), "full").await.unwrap();
        tx.commit().await.unwrap();

        let source = SourceKey::new(conn, "u-1");
        let mut tx = db.store.begin(WriteContext::for_run(conn, run)).await.unwrap();
        let id = tx
            .upsert_by_source(Entity::User, &source, &fields(json!({"site_id": site.0, "name": "Ada", "job_title": "Engineer"})))
            .await
            .unwrap()
            .id();
        tx.commit().await.unwrap();

        db.clock.advance(jiff::SignedDuration::from_secs(60));
        let mut tx = db.store.begin(WriteContext::for_run(conn, run)).await.unwrap();
        tx.update(Entity::User, id, &fields(json!({"name": "Ada", "job_title": "Principal Engineer"}))).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = db.store.read().await.unwrap();
        let journal = tx.journal_for_record(Entity::User, id).await.unwrap();
        let creates: Vec<_> = journal.iter().filter(|j| j.action == "create").map(|j| j.field.as_str()).collect();
        assert_eq!(creates, ["job_title", "name", "site_id"]);
        let updates: Vec<_> = journal.iter().filter(|j| j.action == "update").collect();
        assert_eq!(updates.len(), 1, "only the field that changed is journaled: {updates:?}");
        let u = updates[0];
        assert_eq!((u.field.as_str(), &u.before, &u.after), ("job_title", &json!("Engineer"), &json!("Principal Engineer")));
        assert_eq!(u.run_id, Some(run));
        assert_eq!(u.connection_id, Some(conn));
        assert_eq!(u.at, "2026-11-23T10:01:00.000000Z");
        assert_eq!(tx.journal_for_run(run).await.unwrap().len(), journal.len());
    }
}

store_test! {
    async fn a_failed_transaction_leaves_no_data_journal_or_cursor(db: &TestDb) {
        let (_, site) = customer(db, "Contoso").await;
        let conn = connection(db).await;
        let before_journal = db.store.read().await.unwrap().journal_all().await.unwrap().len();
        let key = CursorKey { connection_id: conn, tenant_id: "t1".into(), stream: "users/delta".into() };

        // A page that fails half-way: first user written, cursor saved, then a bad record.
        let mut tx = db.store.begin(WriteContext::for_run(conn, RunId(1))).await.unwrap();
        tx.upsert_by_source(Entity::User, &SourceKey::new(conn, "u-1"), &fields(json!({"site_id": site.0, "name": "One"})))
            .await
            .unwrap();
        tx.set_cursor(&key, "https://graph.example/v1.0/users/delta?$deltatoken=abc").await.unwrap();
        let bad = tx
            .upsert_by_source(Entity::User, &SourceKey::new(conn, "u-2"), &fields(json!({"site_id": site.0, "name": 42})))
            .await;
        assert!(bad.is_err());
        drop(tx); // dropped without commit: rolled back

        // And one that fails in the database itself (a constraint), then rolls back explicitly.
        let mut tx = db.store.begin(WriteContext::for_run(conn, RunId(1))).await.unwrap();
        tx.insert(Entity::Team, None, &fields(json!({"name": "Dup"}))).await.unwrap();
        tx.set_cursor(&key, "second").await.unwrap();
        assert!(tx.insert(Entity::Team, None, &fields(json!({"name": "Dup"}))).await.is_err());
        tx.rollback().await.unwrap();

        let mut tx = db.store.read().await.unwrap();
        assert_eq!(tx.count(Entity::User).await.unwrap(), 0);
        assert_eq!(tx.count(Entity::Team).await.unwrap(), 0);
        assert_eq!(tx.journal_all().await.unwrap().len(), before_journal);
        assert!(tx.cursor(&key).await.unwrap().is_none());
    }
}

store_test! {
    async fn deleting_keeps_the_whole_record_in_the_journal(db: &TestDb) {
        let (_, site) = customer(db, "Contoso").await;
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let id = tx.insert(Entity::User, None, &fields(json!({"site_id": site.0, "name": "Temp"}))).await.unwrap();
        tx.delete(Entity::User, id).await.unwrap();
        let journal = tx.journal_for_record(Entity::User, id).await.unwrap();
        let last = journal.last().unwrap();
        assert_eq!(last.action, "delete");
        assert_eq!(last.before["name"], json!("Temp"));
        assert!(tx.get(Entity::User, id).await.unwrap().is_none());
        tx.commit().await.unwrap();
    }
}
