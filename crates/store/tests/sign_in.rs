//! Failed sign-ins per username and per address, and the SQLite files' permissions.

use crate::store_test;
use deskbridge_core::{SharedClock, SystemClock};
use deskbridge_store::{SignInPolicy, SignInSubject, Store, StoreOptions, WriteContext};
use jiff::SignedDuration;

const POLICY: SignInPolicy = SignInPolicy {
    free: 3,
    first_block: SignedDuration::from_secs(60),
    max_block: SignedDuration::from_secs(300),
    forget_after: SignedDuration::from_secs(24 * 3600),
};

#[test]
fn blocks_double_from_the_free_count_up_to_the_cap() {
    let blocks: Vec<i64> = (1..=8).map(|n| POLICY.block_after(n).as_secs()).collect();
    assert_eq!(blocks, [0, 0, 60, 120, 240, 300, 300, 300]);
    assert_eq!(POLICY.block_after(i64::MAX).as_secs(), 300);
}

store_test! {
    async fn failed_sign_ins_are_counted_block_and_are_forgotten(db: &TestDb) {
        let fail = |key: &'static str| async move {
            let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
            let f = tx.record_sign_in_failure(SignInSubject::Account, key, &POLICY).await.unwrap();
            tx.commit().await.unwrap();
            f
        };
        assert_eq!(fail("ann").await.blocked_until, None);
        assert_eq!(fail("ann").await.failures, 2);
        let third = fail("ann").await;
        assert_eq!(third.failures, 3);
        let now = db.store.now();
        assert_eq!(third.blocked_at(now), Some(now + SignedDuration::from_secs(60)));
        // Another subject and the other kind are counted apart.
        assert_eq!(fail("bob").await.failures, 1);
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        assert!(tx.sign_in_failures(SignInSubject::Address, "ann").await.unwrap().is_none());
        let blocked = tx.blocked_sign_ins(SignInSubject::Account).await.unwrap();
        assert_eq!(blocked.iter().map(|b| b.key.as_str()).collect::<Vec<_>>(), ["ann"]);
        tx.commit().await.unwrap();
        // The block ends by itself.
        db.clock.advance(SignedDuration::from_secs(61));
        let mut tx = db.store.read().await.unwrap();
        let kept = tx.sign_in_failures(SignInSubject::Account, "ann").await.unwrap().unwrap();
        assert_eq!(kept.blocked_at(db.store.now()), None);
        assert!(tx.blocked_sign_ins(SignInSubject::Account).await.unwrap().is_empty());
        tx.commit().await.unwrap();
        // The next failure doubles it.
        let fourth = fail("ann").await;
        assert_eq!(fourth.blocked_at(db.store.now()), Some(db.store.now() + SignedDuration::from_secs(120)));
        // An unlock forgets everything.
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        assert!(tx.clear_sign_in_failures(SignInSubject::Account, "ann").await.unwrap());
        assert!(!tx.clear_sign_in_failures(SignInSubject::Account, "ann").await.unwrap());
        tx.commit().await.unwrap();
        assert_eq!(fail("ann").await.failures, 1);
        // A day without failures starts the count again.
        db.clock.advance(SignedDuration::from_hours(25));
        assert_eq!(fail("ann").await.failures, 1);
        let mut tx = db.store.read().await.unwrap();
        assert!(tx.sign_in_failures(SignInSubject::Account, "bob").await.unwrap().is_none(), "quiet subjects are forgotten");
        tx.commit().await.unwrap();
    }
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn the_sqlite_database_and_its_wal_and_shm_files_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let clock: SharedClock = std::sync::Arc::new(SystemClock);
    for (i, open_by_url) in [false, true].into_iter().enumerate() {
        let file = dir.path().join(format!("desk{i}.db"));
        let store = if open_by_url {
            Store::connect(
                &format!("sqlite://{}", file.display()),
                StoreOptions::new(clock.clone()),
            )
            .await
            .unwrap()
        } else {
            Store::open_sqlite_file(&file, StoreOptions::new(clock.clone()))
                .await
                .unwrap()
        };
        store.migrate().await.unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let path = std::path::PathBuf::from(format!("{}{suffix}", file.display()));
            assert!(path.exists(), "{} exists while the store is open", path.display());
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
        store.close().await;
    }
    // A database an older version left readable by others is narrowed when opened.
    let old = dir.path().join("desk0.db");
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = Store::open_sqlite_file(&old, StoreOptions::new(clock))
        .await
        .unwrap();
    assert_eq!(mode(&old), 0o600);
    store.close().await;
}
