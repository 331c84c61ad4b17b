//! `deskbridge admin create`: accounts for the admin UI from the command line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

fn deskbridge(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deskbridge"))
        .args(args)
        .env("DESKBRIDGE_DATA_DIR", data_dir)
        .env_remove("DESKBRIDGE_DATABASE_URL")
        .env_remove("DESKBRIDGE_SECRET_KEY")
        .env_remove("DESKBRIDGE_KEY_FILE")
        .output()
        .unwrap()
}

#[test]
fn admin_create_prints_a_one_time_password_once_and_refuses_a_taken_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = deskbridge(dir.path(), &["admin", "create", "--username", "ann"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let password = text
        .split("one-time password: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_else(|| panic!("no password in {text}"));
    assert!(password.len() >= 16, "{password}");
    assert!(text.contains("created administrator \"ann\""), "{text}");

    let agent = deskbridge(
        dir.path(),
        &[
            "admin",
            "create",
            "--username",
            "bob",
            "--role",
            "agent",
            "--can-configure-connections",
        ],
    );
    assert!(agent.status.success());
    assert!(String::from_utf8_lossy(&agent.stdout).contains("created agent \"bob\""));

    let again = deskbridge(dir.path(), &["admin", "create", "--username", "ann"]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("already exists"), "{err}");
    assert!(!err.contains(password));

    let bad = deskbridge(dir.path(), &["admin", "create", "--username", "no spaces"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a valid username"));
}

/// `deskbridge admin unlock` lifts the block failed sign-ins put on an account or an address.
#[tokio::test]
async fn admin_unlock_lifts_a_sign_in_block() {
    use deskbridge_core::{SharedClock, SystemClock};
    use deskbridge_store::{SignInSubject, Store, StoreOptions, WriteContext};
    use deskbridge_web::auth::{ACCOUNT_POLICY, ADDRESS_POLICY};

    let dir = tempfile::tempdir().unwrap();
    assert!(
        deskbridge(dir.path(), &["admin", "create", "--username", "ann"])
            .status
            .success()
    );
    let clock: SharedClock = std::sync::Arc::new(SystemClock);
    let store = Store::open_sqlite_file(&dir.path().join("deskbridge.db"), StoreOptions::new(clock))
        .await
        .unwrap();
    let mut tx = store.begin(WriteContext::manual()).await.unwrap();
    for _ in 0..ACCOUNT_POLICY.free {
        tx.record_sign_in_failure(SignInSubject::Account, "ann", &ACCOUNT_POLICY)
            .await
            .unwrap();
    }
    for _ in 0..ADDRESS_POLICY.free {
        tx.record_sign_in_failure(SignInSubject::Address, "192.0.2.7", &ADDRESS_POLICY)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let blocked = |subject| {
        let store = store.clone();
        async move {
            let mut tx = store.read().await.unwrap();
            let n = tx.blocked_sign_ins(subject).await.unwrap().len();
            tx.commit().await.unwrap();
            n
        }
    };
    assert_eq!(blocked(SignInSubject::Account).await, 1);

    let out = deskbridge(dir.path(), &["admin", "unlock", "--username", "ann"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("unlocked \"ann\""));
    assert_eq!(blocked(SignInSubject::Account).await, 0);
    let again = deskbridge(dir.path(), &["admin", "unlock", "--username", "ann"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("was not locked"));

    assert_eq!(blocked(SignInSubject::Address).await, 1);
    let out = deskbridge(dir.path(), &["admin", "unlock", "--address", "192.0.2.7"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("lifted the sign-in block on 192.0.2.7"));
    assert_eq!(blocked(SignInSubject::Address).await, 0);

    let unknown = deskbridge(dir.path(), &["admin", "unlock", "--username", "nobody"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("there is no account \"nobody\""));
    let nothing = deskbridge(dir.path(), &["admin", "unlock"]);
    assert!(!nothing.status.success(), "a username or an address is needed");
    store.close().await;
}
