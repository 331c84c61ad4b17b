use crate::store_test;
use deskbridge_store::{
    CursorKey, InboundEntry, IntegrationError, NewConnection, OutboundEntry, RunCounts, RunStatus,
    StoreError, WriteContext,
};
use serde_json::json;

fn new_connection(name: &str) -> NewConnection {
    NewConnection {
        name: name.into(),
        kind: "entra".into(),
        config: json!({"tenant_id": "t"}),
        enabled_instances: "production".into(),
    }
}

store_test! {
    async fn connections_are_unique_by_name(db: &TestDb) {
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let c = tx.create_connection(&new_connection("contoso")).await.unwrap();
        assert_eq!(c.config, json!({"tenant_id": "t"}));
        let dup = tx.create_connection(&new_connection("contoso")).await.unwrap_err();
        assert!(matches!(dup, StoreError::Conflict(ref m) if m.contains("\"contoso\"")), "{dup}");
    }
}

store_test! {
    async fn a_connection_is_disabled_with_a_reason_enabled_again_and_forgotten_with_it(db: &TestDb) {
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let c = tx.create_connection(&new_connection("demo")).await.unwrap();
        let other = tx.create_connection(&new_connection("other")).await.unwrap();
        assert_eq!(tx.connection_disabled(c.id).await.unwrap(), None);
        tx.disable_connection(c.id, "its emulator has stopped").await.unwrap();
        tx.disable_connection(c.id, "its emulator has stopped; run the demo again").await.unwrap();
        assert_eq!(
            tx.connection_disabled(c.id).await.unwrap().as_deref(),
            Some("its emulator has stopped; run the demo again"),
            "disabled again: the latest reason"
        );
        assert_eq!(tx.connection_disabled(other.id).await.unwrap(), None, "only that one");
        assert!(tx.enable_connection(c.id).await.unwrap());
        assert!(!tx.enable_connection(c.id).await.unwrap(), "already enabled");
        assert_eq!(tx.connection_disabled(c.id).await.unwrap(), None);
        tx.disable_connection(other.id, "off").await.unwrap();
        tx.delete_connection(other.id).await.unwrap();
        assert_eq!(tx.connection_disabled(other.id).await.unwrap(), None, "removed with its connection");
        tx.commit().await.unwrap();
    }
}

store_test! {
    async fn runs_cursors_logs_and_errors(db: &TestDb) {
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let conn = tx.create_connection(&new_connection("contoso")).await.unwrap().id;
        let run = tx.start_run(Some(conn), "full").await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = db.store.begin(WriteContext::for_run(conn, run)).await.unwrap();
        tx.add_run_counts(run, &RunCounts { created: 3, updated: 1, ..Default::default() }).await.unwrap();
        tx.add_run_counts(run, &RunCounts { created: 2, errors: 1, ..Default::default() }).await.unwrap();
        let key = CursorKey { connection_id: conn, tenant_id: "t1".into(), stream: "users/delta".into() };
        tx.set_cursor(&key, "token-1").await.unwrap();
        tx.set_cursor(&key, "token-2").await.unwrap();
        tx.log_inbound(&InboundEntry {
            tenant_id: Some("t1".into()),
            entity: "user".into(),
            external_id: Some("u1".into()),
            payload: Some(json!({"displayName": "Ada", "password": "hunter2"})),
            rule: Some("site mapping #1".into()),
            action: "create".into(),
            result: "created user 1".into(),
        })
        .await
        .unwrap();
        tx.log_outbound(&OutboundEntry {
            tenant_id: Some("t1".into()),
            method: "POST".into(),
            url: "https://login.example/t1/oauth2/v2.0/token?code=abc".into(),
            request_headers: vec![("Authorization".into(), "Basic c2VjcmV0".into())],
            request_body: Some("grant_type=client_credentials&client_secret=very-secret-value".into()),
            status: Some(200),
            response_body: Some(r#"{"access_token":"eyJ.secret.token","expires_in":3599}"#.into()),
            ..Default::default()
        })
        .await
        .unwrap();
        tx.record_error(&IntegrationError {
            tenant_id: Some("t1".into()),
            code: "AADSTS7000215".into(),
            message: "Invalid client secret provided".into(),
            remedy: Some("Paste the secret's value, not its ID".into()),
            ..Default::default()
        })
        .await
        .unwrap();
        tx.finish_run(run, RunStatus::Partial, Some("1 tenant failed")).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = db.store.read().await.unwrap();
        let r = tx.run(run).await.unwrap().unwrap();
        assert_eq!((r.status, r.counts.created, r.counts.updated, r.counts.errors), (RunStatus::Partial, 5, 1, 1));
        assert!(r.ended_at.is_some());
        let cursor = tx.cursor(&key).await.unwrap().unwrap();
        assert_eq!((cursor.value.as_str(), cursor.run_id), ("token-2", Some(run)));
        assert_eq!(tx.errors_for_run(run).await.unwrap()[0].code, "AADSTS7000215");
        assert_eq!(tx.runs(Some(conn), 10).await.unwrap().len(), 1);
        tx.commit().await.unwrap();

        // Nothing secret reached the logs.
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let inbound = tx.inbound_log(Some(run), 100).await.unwrap();
        let outbound = tx.outbound_log(Some(run), 100).await.unwrap();
        assert_eq!((inbound.len(), outbound.len()), (1, 1));
        let dump = format!("{inbound:?}{outbound:?}");
        for secret in ["hunter2", "c2VjcmV0", "very-secret-value", "eyJ.secret.token", "code=abc"] {
            assert!(!dump.contains(secret), "{secret} leaked into the logs: {dump}");
        }
        assert!(dump.contains("created user 1"));
        tx.clear_cursors(conn, None).await.unwrap();
        assert!(tx.cursor(&key).await.unwrap().is_none());
        tx.commit().await.unwrap();
    }
}
