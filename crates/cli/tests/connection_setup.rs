//! Safer connection set-up and a preview a person can read, with the binary, on SQLite and
//! PostgreSQL: `connection add --check` saves nothing when a required point fails, a delegated
//! connection is saved unchecked (it cannot be checked before it is authorised), `connection
//! remove` takes the customer it created only when that holds nothing else; `sync --plan` names
//! the records, counts per action, filters by action, says what a delta preview covers, and
//! never moves a cursor or writes a desk record.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Output;

use common::{deskbridge, drop_postgres, json_of, postgres, run_ok, run_ok_output, stdout};
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};

/// The emulator, and the display name of a user of its first tenant.
async fn emulator() -> (Emulator, String) {
    let world = World::generate(&GenerateOptions {
        seed: 18,
        tenants: 2,
        users_per_tenant: Some(12),
        ..GenerateOptions::default()
    })
    .unwrap();
    let a_user = world.tenants[0]
        .users
        .iter()
        .find_map(|u| u.display_name.clone())
        .unwrap();
    (Emulator::start(EmulatorConfig::new(world)).await.unwrap(), a_user)
}

/// `connection add entra` for the emulator's tenant `tenant` with `secret`, and `extra` flags.
fn add(
    data: &Path,
    db: Option<&str>,
    emu: &Emulator,
    name: &str,
    tenant: usize,
    secret: &str,
    extra: &[&str],
) -> Output {
    let summary = emu.summary();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .unwrap();
    deskbridge(data, db)
        .args(["connection", "add", "entra", "--name", name])
        .args([
            "--tenant-id",
            &summary.tenants[tenant].id,
            "--client-id",
            &app.client_id,
        ])
        .args(["--client-secret-env", "SETUP_TEST_SECRET"])
        .args([
            "--authority-host",
            &summary.authority_host,
            "--graph-url",
            &summary.graph_url,
        ])
        .args(extra)
        .env("SETUP_TEST_SECRET", secret)
        .output()
        .unwrap()
}

fn good_secret(emu: &Emulator) -> String {
    emu.summary()
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .unwrap()
        .client_secret
        .clone()
        .unwrap()
}

fn customers(data: &Path, db: Option<&str>) -> Vec<String> {
    json_of(deskbridge(data, db).args(["directory", "customers", "--json"]))
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn add_check_and_remove(data: &Path, db: Option<&str>) {
    let (emu, _) = emulator().await;
    let secret = good_secret(&emu);

    // A wrong secret: the check fails, the points say what to do, nothing is saved.
    let failed = add(data, db, &emu, "alpha", 0, "not-the-secret", &["--check"]);
    assert!(!failed.status.success(), "{}", stdout(&failed));
    let text = stdout(&failed);
    assert!(text.contains("FAIL"), "{text}");
    assert!(text.contains("remedy:"), "{text}");
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("nothing was saved"), "{stderr}");
    let list = json_of(deskbridge(data, db).args(["connection", "list", "--json"]));
    assert_eq!(list, serde_json::json!([]), "no connection");
    assert!(customers(data, db).is_empty(), "no customer");

    // The right secret: checked, then saved.
    let passed = add(data, db, &emu, "alpha", 0, &secret, &["--check"]);
    let text = run_ok_output(&passed);
    assert!(text.contains("pass  connection"), "{text}");
    assert!(text.contains("added connection \"alpha\""), "{text}");
    assert!(
        text.contains("next: deskbridge check --connection alpha"),
        "{text}"
    );
    assert_eq!(customers(data, db), ["alpha"]);

    // A taken name is said once, in the store's words, with nothing else added.
    let taken = add(data, db, &emu, "alpha", 1, &secret, &[]);
    assert!(!taken.status.success());
    let said = String::from_utf8_lossy(&taken.stderr);
    assert_eq!(said.matches("already exists").count(), 1, "said once: {said}");
    assert!(!said.contains("store:"), "{said}");

    // A sync that cannot reach Microsoft says the cause once, in words, with the right remedy.
    let unreachable = deskbridge(data, db)
        .args(["connection", "add", "entra", "--name", "offline", "--tenant-id"])
        .arg(&emu.summary().tenants[1].id)
        .args(["--client-id", "00000000-0000-0000-0000-000000000001"])
        .args(["--client-secret-env", "SETUP_TEST_SECRET"])
        .args([
            "--authority-host",
            "http://127.0.0.1:9",
            "--graph-url",
            "http://127.0.0.1:9/v1.0",
        ])
        .env("SETUP_TEST_SECRET", &secret)
        .output()
        .unwrap();
    run_ok_output(&unreachable);
    let failed = deskbridge(data, db)
        .args(["sync", "--connection", "offline"])
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let out = format!("{}{}", stdout(&failed), String::from_utf8_lossy(&failed.stderr));
    assert_eq!(
        out.matches("connection was refused").count(),
        1,
        "said once: {out}"
    );
    assert!(out.contains("[upstream_unavailable]"), "{out}");
    assert!(
        out.contains("reaches the connection's identity platform host"),
        "{out}"
    );
    assert!(!out.contains("error sending request"), "{out}");
    assert!(!out.contains("Check the connection's credentials"), "{out}");
    // Its customer, created with it and holding nothing, goes with it (the tenant is free again).
    run_ok(deskbridge(data, db).args(["connection", "remove", "--name", "offline"]));
    assert_eq!(customers(data, db), ["alpha"]);

    // A delegated connection cannot be checked before it is authorised: saved, and said so.
    let delegated = add(data, db, &emu, "gamma", 1, &secret, &["--check", "--delegated"]);
    let text = run_ok_output(&delegated);
    assert!(text.contains("cannot be checked before it is"), "{text}");
    assert!(text.contains("added connection \"gamma\""), "{text}");

    // Removing a connection whose customer holds nothing else removes the customer too.
    let removed = run_ok(deskbridge(data, db).args(["connection", "remove", "--name", "gamma"]));
    assert!(
        removed.contains("removed the desk customer \"gamma\""),
        "{removed}"
    );
    assert_eq!(customers(data, db), ["alpha"]);

    // A customer holding imported users is kept, and the output says what it holds.
    run_ok(deskbridge(data, db).args(["sync", "--connection", "alpha"]));
    let kept = run_ok(deskbridge(data, db).args(["connection", "remove", "--name", "alpha"]));
    assert!(kept.contains("kept the desk customer \"alpha\""), "{kept}");
    assert!(kept.contains(" users"), "{kept}");
    assert_eq!(customers(data, db), ["alpha"]);
    let list = json_of(deskbridge(data, db).args(["connection", "list", "--json"]));
    assert_eq!(list, serde_json::json!([]));

    // A connection added to an existing customer did not create it: removing it keeps it
    // without a word about it.
    let attached = add(data, db, &emu, "beta", 1, &secret, &["--customer", "alpha"]);
    run_ok_output(&attached);
    let removed = run_ok(deskbridge(data, db).args(["connection", "remove", "--name", "beta"]));
    assert!(!removed.contains("customer"), "{removed}");
    assert_eq!(customers(data, db), ["alpha"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_check_and_remove_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    add_check_and_remove(dir.path(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_check_and_remove_postgres() {
    let Some((url, admin, name)) = postgres("setup").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    add_check_and_remove(dir.path(), Some(&url)).await;
    drop_postgres(&admin, &name).await;
}

async fn readable_preview(data: &Path, db: Option<&str>) {
    let (emu, a_user) = emulator().await;
    let secret = good_secret(&emu);
    run_ok_output(&add(data, db, &emu, "alpha", 0, &secret, &["--delta"]));

    // Names beside the ids, counts per action.
    let preview = run_ok(deskbridge(data, db).args(["sync", "--connection", "alpha", "--plan"]));
    assert!(preview.contains(&a_user), "the user's name: {preview}");
    assert!(preview.contains("by action: create: "), "{preview}");
    let json = json_of(deskbridge(data, db).args(["sync", "--connection", "alpha", "--plan", "--json"]));
    let changes = json["changes"].as_array().unwrap();
    assert!(
        changes.iter().all(|c| c["external_id"].is_string()),
        "ids are kept"
    );
    assert!(
        changes.iter().any(|c| c["name"] == a_user.as_str()),
        "{changes:#?}"
    );
    assert!(
        json["summary"]["actions"]["create"].as_u64().unwrap() > 0,
        "{:#}",
        json["summary"]
    );
    assert!(json["summary"]["covers"].is_null(), "a first read is full");

    // The filter: only what was asked for; the counts still cover everything.
    let sites = json_of(deskbridge(data, db).args([
        "sync",
        "--connection",
        "alpha",
        "--plan",
        "--json",
        "--action",
        "skip",
    ]));
    assert!(
        sites["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["action"] == "skip")
    );
    assert_eq!(sites["summary"], json["summary"]);
    let bad = deskbridge(data, db)
        .args(["sync", "--connection", "alpha", "--plan", "--action", "delete"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("\"delete\" is not an action"));

    // Nothing was written by the previews.
    let users = json_of(deskbridge(data, db).args(["directory", "users", "--json"]));
    assert_eq!(users, serde_json::json!([]), "a preview writes no desk record");

    // After a real run, a preview is a delta one and says what it covers; a full preview moves
    // no cursor.
    run_ok(deskbridge(data, db).args(["sync", "--connection", "alpha"]));
    let cursors = || json_of(deskbridge(data, db).args(["connection", "delta", "--name", "alpha", "--json"]));
    let before = cursors();
    let delta = run_ok(deskbridge(data, db).args(["sync", "--connection", "alpha", "--plan"]));
    assert!(
        delta.contains("delta preview: changes since the last delta round on "),
        "{delta}"
    );
    assert!(delta.contains("--full"), "{delta}");
    let full =
        json_of(deskbridge(data, db).args(["sync", "--connection", "alpha", "--plan", "--full", "--json"]));
    assert_eq!(full["mode"], "full");
    assert!(full["summary"]["covers"].is_null());
    assert_eq!(cursors(), before, "a preview moves no cursor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_names_counts_filters_and_explains_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    readable_preview(dir.path(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_names_counts_filters_and_explains_postgres() {
    let Some((url, admin, name)) = postgres("preview").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    readable_preview(dir.path(), Some(&url)).await;
    drop_postgres(&admin, &name).await;
}
