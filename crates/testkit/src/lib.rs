//! deskbridge-testkit: what tests need to run against both stores.
//!
//! [`store_test!`] runs a test body once on SQLite (a temporary file in WAL mode) and once on
//! PostgreSQL (a fresh schema on the server named by `DESKBRIDGE_TEST_POSTGRES_URL`); with
//! `CI=true` a missing or unreachable PostgreSQL fails the test instead of skipping it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test support: failing loudly is the point

use std::path::PathBuf;
use std::sync::Arc;

use deskbridge_core::{ManualClock, SharedClock};
use deskbridge_secrets::{KeyRing, MasterKey};
use deskbridge_store::{Store, StoreOptions};

pub const POSTGRES_URL_ENV: &str = "DESKBRIDGE_TEST_POSTGRES_URL";

/// A store for one test, and what must live as long as it.
pub struct TestDb {
    pub store: Store,
    pub clock: Arc<ManualClock>,
    pub keys: KeyRing,
    /// The SQLite file, when on SQLite.
    pub sqlite_file: Option<PathBuf>,
    pub postgres: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new("2026-11-23T10:00:00Z".parse().unwrap()))
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deskbridge.db");
    let clock = clock();
    let keys = KeyRing::new(MasterKey::generate());
    let options = StoreOptions::new(clock.clone() as SharedClock).with_keys(keys.clone());
    let store = Store::open_sqlite_file(&file, options).await.unwrap();
    store.migrate().await.unwrap();
    TestDb {
        store,
        clock,
        keys,
        sqlite_file: Some(file),
        postgres: None,
        _dir: Some(dir),
    }
}

pub async fn postgres(test: &str) -> Option<TestDb> {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let url = match std::env::var(POSTGRES_URL_ENV) {
        Ok(url) if !url.is_empty() => url,
        _ if in_ci => panic!(
            "{POSTGRES_URL_ENV} must be set when CI=true: the PostgreSQL half of the store tests may not be skipped"
        ),
        _ => {
            eprintln!("skipping the PostgreSQL run of {test}: {POSTGRES_URL_ENV} is not set");
            return None;
        }
    };
    // PostgreSQL truncates identifiers at 63 bytes: keep the name well under that.
    let schema = format!(
        "t_{}_{}",
        test.chars().take(24).collect::<String>(),
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    );
    let clock = clock();
    let keys = KeyRing::new(MasterKey::generate());
    let options = StoreOptions::new(clock.clone() as SharedClock).with_keys(keys.clone());
    let store = Store::connect_postgres_schema(&url, &schema, options)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {POSTGRES_URL_ENV} is not reachable: {e}"));
    store.migrate().await.unwrap();
    Some(TestDb {
        store,
        clock,
        keys,
        sqlite_file: None,
        postgres: Some((url, schema)),
        _dir: None,
    })
}

impl TestDb {
    /// Drops the test's PostgreSQL schema.
    pub async fn cleanup(self) {
        self.store.close().await;
        if let Some((url, schema)) = self.postgres {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
}

/// Runs the test body once per database.
#[macro_export]
macro_rules! store_test {
    ($(#[$meta:meta])* async fn $name:ident($db:ident: &TestDb) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($db: &$crate::TestDb) $body

            #[tokio::test]
            async fn sqlite() {
                let db = $crate::sqlite().await;
                body(&db).await;
                db.cleanup().await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(db) = $crate::postgres(stringify!($name)).await {
                    body(&db).await;
                    db.cleanup().await;
                }
            }
        }
    };
}
