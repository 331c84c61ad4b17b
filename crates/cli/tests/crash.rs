//! Crash safety: `deskbridge sync` killed with SIGKILL at many points of a large import, then run
//! again, ends with the same desk as an undisturbed run: no duplicates, nothing lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use serde_json::Value;

fn deskbridge(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deskbridge"));
    cmd.env("DESKBRIDGE_ALLOWED_ENDPOINT_HOSTS", "127.0.0.1");
    cmd.env("DESKBRIDGE_DATA_DIR", data)
        .env_remove("DESKBRIDGE_DATABASE_URL")
        .env_remove("DESKBRIDGE_SECRET_KEY")
        .env_remove("DESKBRIDGE_KEY_FILE")
        .env("DESKBRIDGE_LOG", "error");
    cmd
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn add_connection(data: &Path, emu: &Emulator) {
    let summary = emu.summary();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .unwrap();
    let tenant = &summary.tenants[0];
    run_ok(
        deskbridge(data)
            .args([
                "connection",
                "add",
                "entra",
                "--name",
                "big",
                "--tenant-id",
                &tenant.id,
                "--client-id",
                &app.client_id,
            ])
            .args([
                "--client-secret-env",
                "CRASH_TEST_SECRET",
                "--authority-host",
                &summary.authority_host,
            ])
            .args(["--graph-url", &summary.graph_url])
            .env("CRASH_TEST_SECRET", app.client_secret.clone().unwrap()),
    );
}

/// What the desk holds, keyed by Azure object id: the fields a sync writes.
fn desk(data: &Path) -> BTreeMap<String, Value> {
    let users: Vec<Value> =
        serde_json::from_str(&run_ok(deskbridge(data).args(["directory", "users", "--json"]))).unwrap();
    let mut out = BTreeMap::new();
    for user in users {
        let key = user["external_id"].as_str().unwrap().to_owned();
        let kept = serde_json::json!({
            "name": user["name"], "email": user["email"], "network_login": user["network_login"],
            "active": user["active"], "site_id": user["site_id"], "licences": user["licences"],
        });
        assert!(
            out.insert(key.clone(), kept).is_none(),
            "user {key} is on the desk twice"
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_sync_at_any_point_converges_to_the_same_desk() {
    let world = World::generate(&GenerateOptions {
        seed: 3,
        tenants: 1,
        users_per_tenant: Some(1_500),
        ..GenerateOptions::default()
    })
    .unwrap();
    let emu = Emulator::start(EmulatorConfig::new(world)).await.unwrap();

    // The reference: one undisturbed run.
    let reference_dir = tempfile::tempdir().unwrap();
    add_connection(reference_dir.path(), &emu);
    run_ok(deskbridge(reference_dir.path()).args(["sync", "--connection", "big"]));
    let reference = desk(reference_dir.path());
    assert!(reference.len() > 1_000, "{} users imported", reference.len());

    let dir = tempfile::tempdir().unwrap();
    add_connection(dir.path(), &emu);
    let mut killed = 0;
    for delay_ms in [40, 90, 150, 220, 300, 400, 550, 750, 1_000, 1_400] {
        let mut child = deskbridge(dir.path())
            .args(["sync", "--connection", "big", "--full"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
    }
    assert!(
        killed >= 3,
        "only {killed} runs were still going when killed: the import is too small to test this"
    );
    run_ok(deskbridge(dir.path()).args(["sync", "--connection", "big"]));
    let after = desk(dir.path());
    assert_eq!(after.len(), reference.len(), "same number of users");
    for (id, user) in &reference {
        let mut got = after.get(id).unwrap_or_else(|| panic!("user {id} lost")).clone();
        let mut want = user.clone();
        // Site and licence ids are the store's own and may differ between two databases.
        for v in [&mut got, &mut want] {
            v["site_id"] = Value::Null;
            v["licences"] = serde_json::json!(v["licences"].as_array().map_or(0, Vec::len));
        }
        assert_eq!(got, want, "user {id}");
    }
    emu.shutdown().await;
}
