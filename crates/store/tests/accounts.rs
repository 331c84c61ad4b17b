use crate::store_test;
use deskbridge_core::ConnectionId;
use deskbridge_store::{
    Access, DirectoryFilter, Entity, InboundEntry, LogFilter, LogKind, NewAccount, NewConnection, Role,
    SourceKey, StoreError, WriteContext,
};
use serde_json::json;

use crate::harness::TestDb;
use crate::records::{customer, fields};

fn agent(name: &str) -> NewAccount {
    NewAccount {
        username: name.into(),
        display_name: format!("{name} (agent)"),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        role: Role::Agent,
        can_configure_connections: false,
        must_change_password: false,
    }
}

async fn connection(db: &TestDb, name: &str) -> ConnectionId {
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let c = tx
        .create_connection(&NewConnection {
            name: name.into(),
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
    async fn accounts_sign_in_lookup_and_duplicate_names(db: &TestDb) {
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        assert_eq!(tx.account_count().await.unwrap(), 0);
        let a = tx.create_account(&agent("ann")).await.unwrap();
        assert_eq!(a.role, Role::Agent);
        assert!(!a.can_configure_connections);
        tx.commit().await.unwrap();
        // A failed statement ends a PostgreSQL transaction: the duplicate gets its own.
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let dup = tx.create_account(&agent("ann")).await.unwrap_err();
        assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");
        tx.rollback().await.unwrap();

        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let (found, hash) = tx.account_for_sign_in("ann").await.unwrap().unwrap();
        assert_eq!(found.id, a.id);
        assert!(hash.starts_with("$argon2id$"));
        assert!(tx.account_for_sign_in("bob").await.unwrap().is_none());
        tx.set_account_password(a.id, "$argon2id$other", true).await.unwrap();
        tx.update_account(a.id, Role::Administrator, true, false).await.unwrap();
        let changed = tx.account(a.id).await.unwrap().unwrap();
        assert_eq!(changed.role, Role::Administrator);
        assert!(changed.must_change_password && changed.can_configure_connections);
        assert_eq!(tx.accounts().await.unwrap().len(), 1);
        tx.commit().await.unwrap();
    }
}

store_test! {
    async fn sessions_expire_and_end_with_a_disabled_account(db: &TestDb) {
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let a = tx.create_account(&agent("ann")).await.unwrap();
        let expires = db.store.now() + jiff::SignedDuration::from_hours(1);
        let kept = tx.create_session(a.id, "hash-1", "csrf-1", expires).await.unwrap();
        tx.create_session(a.id, "hash-other", "csrf-other", expires).await.unwrap();
        assert_eq!(tx.delete_sessions_of(a.id, Some(kept)).await.unwrap(), 1, "all but the kept one end");
        assert!(tx.session_by_token_hash("hash-other").await.unwrap().is_none());
        tx.commit().await.unwrap();

        let mut tx = db.store.read().await.unwrap();
        let (session, account) = tx.session_by_token_hash("hash-1").await.unwrap().unwrap();
        assert_eq!((session.csrf_token.as_str(), account.id), ("csrf-1", a.id));
        assert!(tx.session_by_token_hash("hash-2").await.unwrap().is_none());
        tx.commit().await.unwrap();

        db.clock.advance(jiff::SignedDuration::from_hours(2));
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        assert!(tx.session_by_token_hash("hash-1").await.unwrap().is_none(), "expired");
        assert_eq!(tx.delete_expired_sessions().await.unwrap(), 1);
        let expires = db.store.now() + jiff::SignedDuration::from_hours(1);
        tx.create_session(a.id, "hash-3", "csrf-3", expires).await.unwrap();
        tx.update_account(a.id, Role::Agent, false, true).await.unwrap();
        assert!(tx.session_by_token_hash("hash-3").await.unwrap().is_none(), "disabled");
        tx.commit().await.unwrap();
    }
}

store_test! {
    async fn api_tokens_are_found_by_hash_and_revoked_by_their_owner_only(db: &TestDb) {
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let a = tx.create_account(&agent("ann")).await.unwrap();
        let b = tx.create_account(&agent("bob")).await.unwrap();
        let t = tx.create_api_token(a.id, "script", "tok-hash", None).await.unwrap();
        let (found, owner) = tx.use_api_token("tok-hash").await.unwrap().unwrap();
        assert_eq!((found.id, owner.id), (t.id, a.id));
        assert!(tx.api_tokens(a.id).await.unwrap()[0].last_used_at.is_some());
        assert!(!tx.delete_api_token(b.id, t.id).await.unwrap());
        assert!(tx.delete_api_token(a.id, t.id).await.unwrap());
        assert!(tx.use_api_token("tok-hash").await.unwrap().is_none());
        tx.commit().await.unwrap();
    }
}

store_test! {
    async fn grants_per_connection_go_with_the_connection(db: &TestDb) {
        let one = connection(db, "one").await;
        let two = connection(db, "two").await;
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let a = tx.create_account(&agent("ann")).await.unwrap();
        tx.set_grant(a.id, one, Some(Access::Read)).await.unwrap();
        tx.set_grant(a.id, one, Some(Access::Modify)).await.unwrap();
        tx.set_grant(a.id, two, Some(Access::Read)).await.unwrap();
        assert_eq!(tx.grant(a.id, one).await.unwrap(), Some(Access::Modify));
        assert_eq!(tx.grants_of_account(a.id).await.unwrap().len(), 2);
        tx.set_grant(a.id, two, None).await.unwrap();
        assert_eq!(tx.grant(a.id, two).await.unwrap(), None);
        tx.delete_connection(one).await.unwrap();
        assert!(tx.grants_of_account(a.id).await.unwrap().is_empty());
        tx.commit().await.unwrap();
    }
}

store_test! {
    async fn log_and_directory_pages_filter_by_connection_and_text(db: &TestDb) {
        let one = connection(db, "one").await;
        let two = connection(db, "two").await;
        let (_, site) = customer(db, "Contoso").await;
        for (c, ids) in [(one, ["a-1", "a-2", "a-3"]), (two, ["b-1", "b-2", "b-3"])] {
            let ctx = WriteContext { connection_id: Some(c), ..WriteContext::default() };
            let mut tx = db.store.begin(ctx).await.unwrap();
            for id in ids {
                tx.log_inbound(&InboundEntry {
                    entity: "user".into(),
                    external_id: Some(id.into()),
                    action: "create".into(),
                    result: "ok".into(),
                    ..InboundEntry::default()
                })
                .await
                .unwrap();
                tx.insert(
                    Entity::User,
                    Some(&SourceKey::new(c, id)),
                    &fields(json!({"name": format!("User {id}"), "email": format!("{id}@example.test"), "site_id": site.0})),
                )
                .await
                .unwrap();
            }
            tx.commit().await.unwrap();
        }
        let mut tx = db.store.read().await.unwrap();
        let page = tx
            .log_page(LogKind::Inbound, &LogFilter { connection: Some(one), limit: 2, ..LogFilter::default() })
            .await
            .unwrap();
        let ids: Vec<_> = page.iter().map(|e| e["external_id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(ids, ["a-3", "a-2"], "newest first, one connection");
        let before = page[1]["id"].as_i64();
        let rest = tx
            .log_page(LogKind::Inbound, &LogFilter { connection: Some(one), before, limit: 10, ..LogFilter::default() })
            .await
            .unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0]["external_id"], "a-1");
        let found = tx
            .log_page(LogKind::Inbound, &LogFilter { search: Some("B-2".into()), limit: 10, ..LogFilter::default() })
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0]["connection_id"], two.0);
        let wild = tx
            .log_page(LogKind::Inbound, &LogFilter { search: Some("%".into()), limit: 10, ..LogFilter::default() })
            .await
            .unwrap();
        assert!(wild.is_empty(), "a % is searched for, not a wildcard");

        let users = tx
            .directory_page(Entity::User, &DirectoryFilter { connection: Some(two), limit: 2, ..DirectoryFilter::default() })
            .await
            .unwrap();
        assert_eq!(users.len(), 2);
        assert!(users.iter().all(|u| u.source.as_ref().unwrap().connection_id == two));
        let next = tx
            .directory_page(
                Entity::User,
                &DirectoryFilter { connection: Some(two), after: Some(users[1].id), limit: 2, ..DirectoryFilter::default() },
            )
            .await
            .unwrap();
        assert_eq!(next.len(), 1);
        let searched = tx
            .directory_page(Entity::User, &DirectoryFilter { search: Some("a-2@".into()), limit: 50, ..DirectoryFilter::default() })
            .await
            .unwrap();
        assert_eq!(searched.len(), 1);
        assert_eq!(searched[0].text("name"), Some("User a-2"));
        tx.commit().await.unwrap();
    }
}
