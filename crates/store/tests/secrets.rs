use crate::store_test;
use deskbridge_secrets::{KeyFile, KeyRing};
use deskbridge_store::{Dialect, SecretRef, StoreError, WriteContext};

use crate::harness::TestDb;

const PLAINTEXT: &str = "Xq8~s3cr3t.value_from-the-portal";

/// Every byte the database holds, as text: the SQLite file and its WAL, or every row of every
/// table of the test's PostgreSQL schema (bytea shown as hex).
async fn raw_contents(db: &TestDb) -> Vec<u8> {
    match db.store.dialect() {
        Dialect::Sqlite => {
            let file = db.sqlite_file.clone().unwrap();
            let mut bytes = std::fs::read(&file).unwrap();
            for suffix in ["-wal", "-shm"] {
                if let Ok(more) = std::fs::read(format!("{}{suffix}", file.display())) {
                    bytes.extend(more);
                }
            }
            bytes
        }
        Dialect::Postgres => {
            let (url, schema) = db.postgres.clone().unwrap();
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
            )
            .bind(&schema)
            .fetch_all(&pool)
            .await
            .unwrap();
            assert!(tables.iter().any(|t| t == "secrets"));
            let mut out = Vec::new();
            for table in tables {
                let sql = format!("SELECT CAST(t AS TEXT) FROM \"{schema}\".\"{table}\" t");
                let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                for row in rows {
                    out.extend(row.into_bytes());
                }
            }
            pool.close().await;
            out
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

store_test! {
    async fn secrets_never_reach_the_database_in_plain_text(db: &TestDb) {
        let secret = SecretRef::new("connections", 1, "client_secret");
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        tx.put_secret(&secret, PLAINTEXT, Some("2027-06-30T00:00:00Z".parse().unwrap())).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = db.store.read().await.unwrap();
        assert_eq!(tx.get_secret(&secret).await.unwrap().unwrap().as_str(), PLAINTEXT);
        assert_eq!(tx.secret_expiry(&secret).await.unwrap().as_deref(), Some("2027-06-30T00:00:00.000000Z"));
        tx.commit().await.unwrap();

        let raw = raw_contents(db).await;
        assert!(contains(&raw, b"2027-06-30"), "the search does see the table's contents");
        assert!(!contains(&raw, PLAINTEXT.as_bytes()), "plain text found in the database");
        assert!(!contains(&raw, hex::encode(PLAINTEXT).as_bytes()), "plain text (hex) found in the database");
        assert!(!contains(&raw, &PLAINTEXT.as_bytes()[..12]), "part of the secret found in the database");
    }
}

store_test! {
    async fn a_sealed_value_only_opens_where_it_was_stored(db: &TestDb) {
        let a = SecretRef::new("connections", 1, "client_secret");
        let b = SecretRef::new("connections", 2, "client_secret");
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        tx.put_secret(&a, "value-a", None).await.unwrap();
        tx.put_secret(&b, "value-b", None).await.unwrap();
        tx.commit().await.unwrap();
        // Swap the ciphertexts between rows, as an attacker with database access might.
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        tx.swap_sealed_for_tests(&a, &b).await.unwrap();
        let err = tx.get_secret(&a).await.unwrap_err();
        assert!(matches!(err, StoreError::Secret(..)), "{err}");
        assert!(err.to_string().contains("connections/1/client_secret"));
        assert!(!err.to_string().contains("value-"));
    }
}

store_test! {
    async fn rotation_keeps_secrets_readable_with_the_new_key_only(db: &TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let key_file = KeyFile::new(dir.path().join("secret.key"));
        key_file.store(&db.keys).unwrap();
        let secret = SecretRef::new("connections", 7, "refresh_token");
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        tx.put_secret(&secret, PLAINTEXT, None).await.unwrap();
        tx.commit().await.unwrap();

        let report = db.store.rotate_keys(&key_file).await.unwrap();
        assert_eq!(report.old_key_id, db.keys.active_key_id());
        assert_ne!(report.new_key_id, report.old_key_id);
        assert_eq!(report.resealed, 1);

        let new_ring = key_file.load().unwrap();
        assert_eq!(new_ring.active_key_id(), report.new_key_id);
        assert!(new_ring.retired().is_empty(), "the old key is gone from the key file");
        let mut tx = db.store.read().await.unwrap();
        assert_eq!(tx.get_secret(&secret).await.unwrap().unwrap().as_str(), PLAINTEXT);
        tx.commit().await.unwrap();

        // With only the old key the secret no longer opens.
        db.store.set_keys(KeyRing::new(db.keys.active().clone()));
        let mut tx = db.store.read().await.unwrap();
        assert!(matches!(tx.get_secret(&secret).await, Err(StoreError::Secret(..))));
        tx.commit().await.unwrap();
        db.store.set_keys(new_ring);
        assert!(!contains(&raw_contents(db).await, PLAINTEXT.as_bytes()));
    }
}
