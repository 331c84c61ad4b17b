//! `deskbridge connection add entra --delegated`, `connection authorize` (a sign-in through the
//! emulator's authorize endpoint coming back to the CLI's loopback listener) and
//! `connection delta`, end to end with the binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegated_connection_is_authorised_from_the_cli_and_syncs() {
    let world = World::generate(&GenerateOptions {
        seed: 9,
        tenants: 1,
        users_per_tenant: Some(25),
        ..GenerateOptions::default()
    })
    .unwrap();
    let emu = Emulator::start(EmulatorConfig::new(world)).await.unwrap();
    emu.set_auto_approve(true);
    let summary = emu.summary();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let command = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_deskbridge"));
        c.env("DESKBRIDGE_ALLOWED_ENDPOINT_HOSTS", "127.0.0.1");
        c.args(args)
            .env("DESKBRIDGE_DATA_DIR", dir.path())
            .env_remove("DESKBRIDGE_DATABASE_URL")
            .env("DELEGATED_TEST_SECRET", app.client_secret.clone().unwrap());
        c
    };
    let run = |args: &[&str]| {
        let out = command(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let added = run(&[
        "connection",
        "add",
        "entra",
        "--name",
        "d",
        "--tenant-id",
        &summary.tenants[0].id,
        "--client-id",
        &app.client_id,
        "--client-secret-env",
        "DELEGATED_TEST_SECRET",
        "--delegated",
        "--authority-host",
        &summary.authority_host,
        "--graph-url",
        &summary.graph_url,
    ]);
    assert!(
        added.contains("deskbridge connection authorize --name d"),
        "{added}"
    );
    let listed: Value = serde_json::from_str(&run(&["connection", "list", "--json"])).unwrap();
    assert_eq!(listed[0]["auth"], "delegated");
    assert_eq!(listed[0]["authorised"], false);

    // Not yet authorised: the sync says what to do.
    let early = command(&["sync", "--connection", "d"]).output().unwrap();
    assert!(!early.status.success());
    assert!(String::from_utf8_lossy(&early.stderr).contains("connection authorize"));

    let mut child = command(&["connection", "authorize", "--name", "d", "--timeout", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read every line the command prints (a reader that stopped would break its pipe).
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut url = String::new();
    while let Some(line) = lines.recv().await {
        if line.starts_with("http") {
            url = line;
            break;
        }
    }
    assert!(url.contains("code_challenge="), "{url}");
    assert!(url.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A"), "{url}");
    // The browser: the emulator signs in at once and redirects to the CLI's loopback listener.
    let page = reqwest::get(&url).await.unwrap();
    assert!(page.status().is_success());
    assert!(page.text().await.unwrap().contains("is authorised"));
    let status = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );

    let listed: Value = serde_json::from_str(&run(&["connection", "list", "--json"])).unwrap();
    assert_eq!(listed[0]["authorised"], true);
    // Delta queries are off on a new connection, as in the guide: turned on here.
    let enabled: Value = serde_json::from_str(&run(&[
        "connection",
        "delta",
        "--name",
        "d",
        "--enable",
        "--json",
    ]))
    .unwrap();
    assert_eq!(enabled["enabled"], true, "{enabled}");
    let synced: Value = serde_json::from_str(&run(&["sync", "--connection", "d", "--json"])).unwrap();
    assert_eq!(synced["status"], "succeeded", "{synced}");
    assert!(synced["counts"]["created"].as_i64().unwrap() > 0);

    // A new sync method restarts the delta links: without a terminal to ask on, it needs --yes
    // (the latest delta) or --reset clear, and nothing changes without them.
    let unconfirmed = command(&[
        "connection",
        "delta",
        "--name",
        "d",
        "--sync-method",
        "mapped-fields-only",
    ])
    .output()
    .unwrap();
    assert!(!unconfirmed.status.success());
    let said = String::from_utf8_lossy(&unconfirmed.stderr);
    assert!(said.contains("--yes") && said.contains("--reset clear"), "{said}");
    let delta: Value = serde_json::from_str(&run(&[
        "connection",
        "delta",
        "--name",
        "d",
        "--sync-method",
        "mapped-fields-only",
        "--yes",
        "--json",
    ]))
    .unwrap();
    assert_eq!(delta["sync_method"], "mapped_fields_only");
    assert_eq!(
        delta["links_current"], true,
        "the latest delta, taken under the new method: {delta}"
    );
    let reset: Value = serde_json::from_str(&run(&[
        "connection",
        "delta",
        "--name",
        "d",
        "--reset",
        "latest",
        "--json",
    ]))
    .unwrap();
    assert_eq!(reset["links_current"], true);
    let text = run(&["connection", "delta", "--name", "d"]);
    assert!(text.contains("mapped fields only"), "{text}");
    let synced: Value = serde_json::from_str(&run(&["sync", "--connection", "d", "--json"])).unwrap();
    assert_eq!(synced["status"], "succeeded", "{synced}");
    emu.shutdown().await;
}
