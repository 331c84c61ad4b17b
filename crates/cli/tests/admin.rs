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
