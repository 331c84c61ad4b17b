//! `deskbridge mappings show|set`: mappings as code, validated before they are saved.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mappings_round_trip_and_invalid_ones_are_refused() {
    let world = World::generate(&GenerateOptions {
        seed: 4,
        tenants: 1,
        users_per_tenant: Some(10),
        ..GenerateOptions::default()
    })
    .unwrap();
    let emu = Emulator::start(EmulatorConfig::new(world)).await.unwrap();
    let summary = emu.summary();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_deskbridge"))
            .env("DESKBRIDGE_ALLOWED_ENDPOINT_HOSTS", "127.0.0.1")
            .args(args)
            .env("DESKBRIDGE_DATA_DIR", dir.path())
            .env_remove("DESKBRIDGE_DATABASE_URL")
            .env("MAPPINGS_TEST_SECRET", app.client_secret.clone().unwrap())
            .output()
            .unwrap()
    };
    let tenant = summary.tenants[0].id.clone();
    let add = run(&[
        "connection",
        "add",
        "entra",
        "--name",
        "c",
        "--tenant-id",
        &tenant,
        "--client-id",
        &app.client_id,
        "--client-secret-env",
        "MAPPINGS_TEST_SECRET",
        "--authority-host",
        &summary.authority_host,
        "--graph-url",
        &summary.graph_url,
    ]);
    assert!(add.status.success(), "{}", String::from_utf8_lossy(&add.stderr));
    let shown = run(&["mappings", "show", "--connection", "c"]);
    assert!(shown.status.success());
    let mut mapping: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(mapping["site_mappings"][0]["name"], json!("All users"));

    let file = dir.path().join("mappings.json");
    mapping["site_mappings"][0]["group"] = json!({"name": "Nobody Has This Group"});
    std::fs::write(&file, mapping.to_string()).unwrap();
    let refused = run(&[
        "mappings",
        "set",
        "--connection",
        "c",
        "--file",
        file.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Nobody Has This Group"));

    std::fs::write(&file, r#"{"version": 1, "user_fields": "not a list"}"#).unwrap();
    let malformed = run(&[
        "mappings",
        "set",
        "--connection",
        "c",
        "--file",
        file.to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&malformed.stderr);
    assert!(
        said.contains("at user_fields (line 1): expected a list, found text \"not a list\""),
        "the JSON path and the kinds are named in plain words: {said}"
    );

    // A wrong kind deeper down, and text that is not JSON: plain words, no parser type names.
    let mut wrong_kind = mapping.clone();
    wrong_kind["circuit_breaker"]["floor"] = json!("ten");
    std::fs::write(&file, serde_json::to_string_pretty(&wrong_kind).unwrap()).unwrap();
    let out = run(&[
        "mappings",
        "set",
        "--connection",
        "c",
        "--file",
        file.to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("at circuit_breaker.floor (line ")
            && said.contains("expected a whole number (0 or more), found text \"ten\""),
        "{said}"
    );
    assert!(!said.contains("u32") && !said.contains("invalid type"), "{said}");
    std::fs::write(&file, r#"{"version": 1,,}"#).unwrap();
    let out = run(&[
        "mappings",
        "set",
        "--connection",
        "c",
        "--file",
        file.to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("the JSON is not well-formed at line 1: an object's key must be text in quotes"),
        "{said}"
    );
    assert_eq!(said.matches("error:").count(), 1, "said once: {said}");

    // Field mappings are typed and checked when saved: a type mismatch, an unknown desk field
    // and a field mapped twice are each refused with a message naming the mapping.
    let set_fields = |fields: Value| {
        let mut candidate = mapping.clone();
        candidate["site_mappings"][0]["group"] = Value::Null;
        candidate["user_fields"] = fields;
        std::fs::write(&file, candidate.to_string()).unwrap();
        let out = run(&[
            "mappings",
            "set",
            "--connection",
            "c",
            "--file",
            file.to_str().unwrap(),
        ]);
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let name_field = mapping["user_fields"][0].clone();
    let with_target = |target: &str| {
        let mut field = name_field.clone();
        field["target"] = json!(target);
        field
    };
    let mismatch = set_fields(json!([with_target("last_sign_in")]));
    assert!(
        mismatch.contains("type mismatch: source property 'displayName' is text"),
        "{mismatch}"
    );
    assert!(mismatch.contains("'last_sign_in'"), "{mismatch}");
    let unknown = set_fields(json!([with_target("favourite_colour")]));
    assert!(unknown.contains("favourite_colour"), "{unknown}");
    let twice = set_fields(json!([with_target("name"), with_target("name")]));
    assert!(twice.contains("already mapped"), "{twice}");
    let unchanged: Value =
        serde_json::from_slice(&run(&["mappings", "show", "--connection", "c"]).stdout).unwrap();
    assert_eq!(
        unchanged["user_fields"], mapping["user_fields"],
        "refused mappings are not saved"
    );

    mapping["site_mappings"][0]["group"] = Value::Null;
    mapping["site_mappings"][0]["name"] = json!("Everyone");
    std::fs::write(&file, mapping.to_string()).unwrap();
    let saved = run(&[
        "mappings",
        "set",
        "--connection",
        "c",
        "--file",
        file.to_str().unwrap(),
    ]);
    assert!(
        saved.status.success(),
        "{}",
        String::from_utf8_lossy(&saved.stderr)
    );
    let again: Value =
        serde_json::from_slice(&run(&["mappings", "show", "--connection", "c"]).stdout).unwrap();
    assert_eq!(again["site_mappings"][0]["name"], json!("Everyone"));

    // A new connection maps line managers, for users and agents.
    for people in ["user_fields", "agent_fields"] {
        assert!(
            again[people]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["target"] == "line_manager_id"),
            "{people}: {}",
            again[people]
        );
    }

    // With delta queries on and links taken, a site mapping change restarts them: refused
    // without an answer (no terminal to ask), saved with --yes (the latest delta).
    assert!(
        run(&["connection", "delta", "--name", "c", "--enable"])
            .status
            .success()
    );
    let synced = run(&["sync", "--connection", "c"]);
    let progress = String::from_utf8_lossy(&synced.stderr);
    assert!(synced.status.success(), "{progress}");
    // Without a terminal, progress comes as plain lines on stderr.
    assert!(
        progress.contains("c: ") && progress.contains("record(s)"),
        "{progress}"
    );
    mapping["site_mappings"][0]["name"] = json!("All the people");
    std::fs::write(&file, mapping.to_string()).unwrap();
    let set = [
        "mappings",
        "set",
        "--connection",
        "c",
        "--file",
        file.to_str().unwrap(),
    ];
    let unconfirmed = run(&set);
    assert!(!unconfirmed.status.success());
    let said = String::from_utf8_lossy(&unconfirmed.stderr);
    assert!(said.contains("--yes") && said.contains("--reset clear"), "{said}");
    let shown: Value =
        serde_json::from_slice(&run(&["mappings", "show", "--connection", "c"]).stdout).unwrap();
    assert_eq!(
        shown["site_mappings"][0]["name"],
        json!("Everyone"),
        "nothing saved"
    );
    let confirmed = run(&[&set[..], &["--yes"]].concat());
    assert!(
        confirmed.status.success(),
        "{}",
        String::from_utf8_lossy(&confirmed.stderr)
    );
    let shown: Value =
        serde_json::from_slice(&run(&["mappings", "show", "--connection", "c"]).stdout).unwrap();
    assert_eq!(shown["site_mappings"][0]["name"], json!("All the people"));
    let next = run(&["sync", "--connection", "c", "--json"]);
    assert!(
        !String::from_utf8_lossy(&next.stderr).contains("record(s)"),
        "--json: no progress lines"
    );
    let next: Value = serde_json::from_slice(&next.stdout).unwrap();
    assert_eq!(next["mode"], json!("delta"), "the latest delta was taken: {next}");

    // Groups as ticket followers: the desk-wide setting and its default connection.
    let settings = run(&[
        "followers",
        "settings",
        "--enable",
        "--default-connection",
        "c",
        "--json",
    ]);
    assert!(
        settings.status.success(),
        "{}",
        String::from_utf8_lossy(&settings.stderr)
    );
    let settings: Value = serde_json::from_slice(&settings.stdout).unwrap();
    assert_eq!(settings["enabled"], json!(true));
    assert_eq!(settings["default_connection"]["name"], json!("c"));
    let unknown = run(&["followers", "settings", "--default-connection", "nope"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no connection named \"nope\""));
    let no_ticket = run(&["followers", "add", "--ticket", "424242", "--group", "Newsletter"]);
    assert!(!no_ticket.status.success());
    assert!(String::from_utf8_lossy(&no_ticket.stderr).contains("no ticket 424242"));
    emu.shutdown().await;
}
