//! `deskbridge connection add dynamics` (from flags and from a connection string in the
//! environment), `deskbridge check` saying "connection available", and a sync of the
//! organisation's contacts, end to end with the binary against the emulator's Dataverse.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamics_connection_is_added_checked_and_synced_from_the_cli() {
    let world = World::generate(&GenerateOptions {
        seed: 11,
        tenants: 1,
        users_per_tenant: Some(5),
        dataverse_orgs: 1,
        dataverse_contacts: Some(25),
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
    let org = &summary.dataverse_orgs[0];
    let secret = app.client_secret.clone().unwrap();
    let connection_string = format!(
        "AuthType=ClientSecret;Url={}/;AppId={};ClientSecret='{}';TenantId={};AuthorityHost={}",
        org.url, app.client_id, secret, org.tenant, summary.authority_host
    );
    let dir = tempfile::tempdir().unwrap();
    let command = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_deskbridge"));
        c.args(args)
            .env("DESKBRIDGE_ALLOWED_ENDPOINT_HOSTS", "127.0.0.1")
            .env("DESKBRIDGE_DATA_DIR", dir.path())
            .env_remove("DESKBRIDGE_DATABASE_URL")
            .env("DYN_TEST_SECRET", &secret)
            .env("DYN_TEST_CONNECTION", &connection_string);
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

    // A bad property is refused by its name, and nothing is added.
    let refused = command(&[
        "connection",
        "add",
        "dynamics",
        "--name",
        "bad",
        "--url",
        &org.url,
        "--tenant-id",
        &org.tenant,
        "--client-id",
        &app.client_id,
        "--client-secret-env",
        "DYN_TEST_SECRET",
        "--crm-version",
        "CRM2011+",
    ])
    .output()
    .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("CRM version: \"CRM2011+\" is not one of CRMOnline"),
        "{stderr}"
    );

    // From flags.
    let added = run(&[
        "connection",
        "add",
        "dynamics",
        "--name",
        "flags",
        "--url",
        &org.url,
        "--tenant-id",
        &org.tenant,
        "--client-id",
        &app.client_id,
        "--client-secret-env",
        "DYN_TEST_SECRET",
        "--authority-host",
        &summary.authority_host,
        "--customer",
        "Contoso",
    ]);
    assert!(added.contains("added connection \"flags\""), "{added}");
    // From a connection string; a flag may not say the same again.
    let twice = command(&[
        "connection",
        "add",
        "dynamics",
        "--name",
        "twice",
        "--connection-string-env",
        "DYN_TEST_CONNECTION",
        "--url",
        &org.url,
    ])
    .output()
    .unwrap();
    assert!(!twice.status.success());
    assert!(String::from_utf8_lossy(&twice.stderr).contains("--url and the connection string both give url"));
    run(&[
        "connection",
        "add",
        "dynamics",
        "--name",
        "string",
        "--connection-string-env",
        "DYN_TEST_CONNECTION",
        "--customer",
        "Contoso",
    ]);
    let listed: Value = serde_json::from_str(&run(&["connection", "list", "--json"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed[1]["kind"], "dynamics");
    assert_eq!(listed[1]["auth"], "AzureServicePrincipal");
    assert!(!listed.to_string().contains(&secret), "no secret is listed");

    let checked = run(&["check", "--connection", "string"]);
    assert!(checked.contains("connection available"), "{checked}");
    let synced: Value = serde_json::from_str(&run(&["sync", "--connection", "string", "--json"])).unwrap();
    assert_eq!(synced["status"], "succeeded", "{synced}");
    assert!(synced["counts"]["created"].as_i64().unwrap() > 0, "{synced}");
}
