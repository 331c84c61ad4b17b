//! Webhook deliveries are accepted once (by any of their keys) and forgotten by age; a pending job
//! is one per connection, entity and tenant.

use crate::store_test;
use deskbridge_store::{NewConnection, NewJob, WriteContext};
use jiff::SignedDuration;
use serde_json::json;

store_test! {
    async fn a_webhook_delivery_is_recorded_once_and_forgotten_by_age(db: &TestDb) {
        let day = SignedDuration::from_hours(24);
        let record = |keys: Vec<&'static str>| async move {
            let keys: Vec<String> = keys.into_iter().map(str::to_owned).collect();
            let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
            let fresh = tx.record_webhook_delivery(&keys, day).await.unwrap();
            if fresh {
                tx.commit().await.unwrap();
            }
            fresh
        };
        assert!(record(vec!["sig:a", "event:a"]).await);
        // The same signature, or the same event under another signature: a replay.
        assert!(!record(vec!["sig:a", "event:b"]).await);
        assert!(!record(vec!["sig:b", "event:a"]).await);
        // The refused one left nothing behind.
        assert!(record(vec!["sig:b", "event:b"]).await);
        // Forgotten once older than the window.
        db.clock.advance(day + SignedDuration::from_secs(1));
        assert!(record(vec!["sig:a", "event:a"]).await);
    }
}

store_test! {
    async fn a_pending_job_is_one_per_connection_entity_and_tenant(db: &TestDb) {
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let c = tx
            .create_connection(&NewConnection {
                name: "csp".into(),
                kind: "csp".into(),
                config: json!({}),
                enabled_instances: "production".into(),
            })
            .await
            .unwrap();
        let job = |tenant: Option<&str>| NewJob {
            connection_id: c.id,
            entity: "licences".into(),
            full: false,
            origin: "webhook".into(),
            schedule_id: None,
            due_at: None,
            tenant_id: tenant.map(str::to_owned),
        };
        assert!(tx.enqueue_job(&job(Some("t1"))).await.unwrap().is_some());
        assert!(tx.enqueue_job(&job(Some("t1"))).await.unwrap().is_none());
        assert!(tx.enqueue_job(&job(Some("t2"))).await.unwrap().is_some());
        assert!(tx.enqueue_job(&job(None)).await.unwrap().is_some());
        assert!(tx.enqueue_job(&job(None)).await.unwrap().is_none());
        tx.commit().await.unwrap();
    }
}
