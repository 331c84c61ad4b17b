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

    // A custom table sync: the desk table defined, the table mapping set with the mappings JSON,
    // the run of entity custom_tables, and the rows listed.
    let defined = run(&[
        "custom-tables",
        "add",
        "--name",
        "contracts",
        "--column",
        "name:text",
        "--column",
        "account:text",
        "--column",
        "seats:number",
    ]);
    assert!(defined.contains("custom table contracts defined"), "{defined}");
    let tables: Value = serde_json::from_str(&run(&["custom-tables", "list", "--json"])).unwrap();
    assert_eq!(
        tables[0]["columns"], "account:text, name:text, seats:number",
        "{tables}"
    );
    let mut mapping: Value =
        serde_json::from_str(&run(&["mappings", "show", "--connection", "string"])).unwrap();
    mapping["custom_tables"] = serde_json::json!([{
        "source_table": "cr7a1_contract",
        "desk_table": "contracts",
        "fields": [
            {"source": "cr7a1_name", "target": "name"},
            {"source": "cr7a1_accountid/name", "target": "account"},
            {"source": "cr7a1_seats", "target": "seats"},
        ],
    }]);
    let file = dir.path().join("mappings.json");
    std::fs::write(&file, mapping.to_string()).unwrap();
    run(&[
        "mappings",
        "set",
        "--connection",
        "string",
        "--file",
        file.to_str().unwrap(),
    ]);
    let synced: Value = serde_json::from_str(&run(&[
        "sync",
        "--connection",
        "string",
        "--entity",
        "custom_tables",
        "--json",
    ]))
    .unwrap();
    assert_eq!(synced["status"], "succeeded", "{synced}");
    let created = synced["counts"]["created"].as_u64().unwrap();
    assert!(created > 0, "{synced}");
    let rows: Value = serde_json::from_str(&run(&[
        "directory",
        "custom-rows",
        "--table",
        "contracts",
        "--json",
    ]))
    .unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len() as u64, created);
    assert!(
        rows[0]["source"].as_str().unwrap().starts_with("string/"),
        "{rows:?}"
    );
    assert!(
        rows[0]["account"].as_str().is_some_and(|a| !a.is_empty()),
        "{rows:?}"
    );
    let table = run(&["directory", "custom-rows", "--table", "contracts"]);
    assert!(
        table.contains("SEATS") && table.contains("Support agreement"),
        "{table}"
    );
    // One custom table as a schedulable entity of its own: queued, then run by a worker.
    let refused = command(&["runs", "start", "--connection", "string", "--entity", "assets"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("a dynamics connection syncs customers, directory, custom_tables"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let queued: Value = serde_json::from_str(&run(&[
        "runs",
        "start",
        "--connection",
        "string",
        "--entity",
        "custom_tables:contracts",
        "--full",
        "--json",
    ]))
    .unwrap();
    assert_eq!(queued["queued"], true, "{queued}");
    let mut worker = command(&[
        "worker",
        "--poll-ms",
        "100",
        "--scheduler-tick-ms",
        "100",
        "--no-scheduler",
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let mut job = Value::Null;
    for _ in 0..100 {
        let jobs: Value = serde_json::from_str(&run(&["runs", "jobs", "--json"])).unwrap();
        job = jobs
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["entity"] == "custom_tables:contracts")
            .cloned()
            .unwrap_or(Value::Null);
        if job["status"] == "succeeded" || job["status"] == "failed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["run"]["counts"]["unchanged"].as_u64(), Some(created), "{job}");

    let missing = command(&["directory", "custom-rows", "--table", "nope"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("there is no custom table \"nope\"; the desk's custom tables are: contracts")
    );
}

#[test]
fn custom_fields_are_defined_with_options_whose_external_ids_map_option_sets() {
    let dir = tempfile::tempdir().unwrap();
    let command = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_deskbridge"));
        c.args(args)
            .env("DESKBRIDGE_DATA_DIR", dir.path())
            .env_remove("DESKBRIDGE_DATABASE_URL");
        c.output().unwrap()
    };
    let run = |args: &[&str]| {
        let out = command(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let added = run(&[
        "custom-fields",
        "add",
        "--entity",
        "user",
        "--name",
        "hobbies",
        "--type",
        "multi_select",
        "--option",
        "Reading=1",
        "--option",
        "Swimming=9",
        "--option",
        "Travel",
    ]);
    assert!(
        added.contains("custom field hobbies defined on user records"),
        "{added}"
    );
    assert!(
        added.contains("with 3 option(s); map it with the target custom:hobbies"),
        "{added}"
    );
    run(&[
        "custom-fields",
        "add",
        "--entity",
        "customer",
        "--name",
        "employees",
        "--type",
        "number",
    ]);
    run(&[
        "custom-fields",
        "set-option",
        "--entity",
        "user",
        "--field",
        "hobbies",
        "--value",
        "Travel",
        "--external-id",
        "10",
    ]);
    let listed: Value = serde_json::from_str(&run(&["custom-fields", "list", "--json"])).unwrap();
    let hobbies = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "hobbies")
        .unwrap();
    assert_eq!(hobbies["options"], "Reading=1, Swimming=9, Travel=10", "{listed}");
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["entity"] == "customer" && f["type"] == "number"),
        "{listed}"
    );
    let table = run(&["custom-fields", "list"]);
    assert!(table.contains("Reading=1, Swimming=9, Travel=10"), "{table}");
    // An unknown option, a select without options and an unknown entity are refused by name.
    let wrong = command(&[
        "custom-fields",
        "set-option",
        "--entity",
        "user",
        "--field",
        "hobbies",
        "--value",
        "Golf",
        "--external-id",
        "3",
    ]);
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains(
            "the custom field hobbies has no option \"Golf\" (its options: Reading, Swimming, Travel)"
        ),
        "{stderr}"
    );
    let bare = command(&[
        "custom-fields",
        "add",
        "--entity",
        "user",
        "--name",
        "tier",
        "--type",
        "single_select",
    ]);
    assert!(
        String::from_utf8_lossy(&bare.stderr).contains("needs its options"),
        "{}",
        String::from_utf8_lossy(&bare.stderr)
    );
    let nowhere = command(&[
        "custom-fields",
        "add",
        "--entity",
        "ticket",
        "--name",
        "x",
        "--type",
        "text",
    ]);
    assert!(
        String::from_utf8_lossy(&nowhere.stderr)
            .contains("custom fields are on user, agent, site, asset, customer")
    );
    run(&[
        "custom-fields",
        "set-option",
        "--entity",
        "user",
        "--field",
        "hobbies",
        "--value",
        "Travel",
        "--clear",
    ]);
    let listed: Value = serde_json::from_str(&run(&["custom-fields", "list", "--json"])).unwrap();
    let hobbies = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "hobbies")
        .unwrap();
    assert_eq!(hobbies["options"], "Reading=1, Swimming=9, Travel");
}

/// `AzureAD`: `connection authorize` comes back to the connection's own callback URL (a loopback
/// one with its port, registered on the app as it is), not to a port of its choosing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_azure_ad_connection_is_authorised_through_its_own_callback_url() {
    let world = World::generate(&GenerateOptions {
        seed: 12,
        tenants: 1,
        users_per_tenant: Some(5),
        dataverse_orgs: 1,
        dataverse_contacts: Some(10),
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
    let org = &summary.dataverse_orgs[0];
    // A free port for the callback URL (released before the command binds it).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let callback = format!("http://localhost:{port}/callback");
    let dir = tempfile::tempdir().unwrap();
    let command = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_deskbridge"));
        c.args(args)
            .env("DESKBRIDGE_ALLOWED_ENDPOINT_HOSTS", "127.0.0.1")
            .env("DESKBRIDGE_DATA_DIR", dir.path())
            .env_remove("DESKBRIDGE_DATABASE_URL")
            .env("DYN_TEST_SECRET", app.client_secret.clone().unwrap());
        c
    };
    let out = command(&[
        "connection",
        "add",
        "dynamics",
        "--name",
        "signed",
        "--url",
        &format!("{}/", org.url),
        "--tenant-id",
        &org.tenant,
        "--client-id",
        &app.client_id,
        "--client-secret-env",
        "DYN_TEST_SECRET",
        "--auth-scheme",
        "AzureAD",
        "--callback-url",
        &callback,
        "--authority-host",
        &summary.authority_host,
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut child = command(&["connection", "authorize", "--name", "signed", "--timeout", "60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
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
    let encoded = format!("redirect_uri=http%3A%2F%2Flocalhost%3A{port}%2Fcallback");
    assert!(url.contains(&encoded), "{url}");
    let page = reqwest::get(&url).await.unwrap();
    assert!(page.status().is_success());
    let done = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let listed: Value = serde_json::from_str(&String::from_utf8_lossy(
        &command(&["connection", "list", "--json"])
            .output()
            .unwrap()
            .stdout,
    ))
    .unwrap();
    assert_eq!(listed[0]["authorised"], true, "{listed}");
    emu.shutdown().await;
}
