//! The `deskbridge` binary, run as a user would run it.
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

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn migrate_creates_the_embedded_database_and_a_private_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = ok(&deskbridge(&data, &["migrate"]));
    assert!(out.contains("applied migration 1 (init)"), "{out}");
    assert!(out.contains("schema is up to date"), "{out}");
    assert!(data.join("deskbridge.db").exists());
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(data.join("secret.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // Twice is fine, and applies nothing the second time.
    let again = ok(&deskbridge(&data, &["migrate"]));
    assert!(!again.contains("applied migration"), "{again}");
}

#[test]
fn directory_lists_are_empty_json_arrays_on_a_new_store() {
    let dir = tempfile::tempdir().unwrap();
    for what in ["customers", "sites", "users", "agents", "licences", "assets"] {
        let out = ok(&deskbridge(dir.path(), &["directory", what, "--json"]));
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value, serde_json::json!([]), "{what}");
    }
    let table = ok(&deskbridge(dir.path(), &["directory", "users"]));
    assert_eq!(
        table.lines().next().unwrap(),
        "ID  NAME  EMAIL  CUSTOMER  SITE  ACTIVE  IS_SERVICE_ACCOUNT"
    );
}

#[test]
fn keys_rotate_replaces_the_key_in_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    ok(&deskbridge(dir.path(), &["migrate"]));
    let before = std::fs::read_to_string(dir.path().join("secret.key")).unwrap();
    let out = ok(&deskbridge(dir.path(), &["keys", "rotate"]));
    assert!(out.starts_with("rotated the master key"), "{out}");
    let after = std::fs::read_to_string(dir.path().join("secret.key")).unwrap();
    assert_ne!(before, after);
    assert!(
        !out.contains(after.split('"').nth(7).unwrap_or("x")),
        "the key itself is never printed"
    );
}

#[test]
fn bad_settings_fail_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = deskbridge(dir.path(), &["--database", "mysql://nope", "migrate"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL"));
    let out = deskbridge(dir.path(), &["directory", "planets"]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}

#[test]
fn failures_exit_with_their_catalogue_code() {
    // The documented statuses (deskbridge_core::exit): 2 for an unknown name or invalid input.
    let dir = tempfile::tempdir().unwrap();
    ok(&deskbridge(dir.path(), &["migrate"]));
    for args in [
        &["sync", "--connection", "nope"][..],
        &["connection", "remove", "--name", "nope"],
        &["schedule", "add", "--connection", "nope", "--every", "1h"],
    ] {
        let out = deskbridge(dir.path(), args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("nope"), "{args:?}");
    }
    let out = deskbridge(
        dir.path(),
        &[
            "connection",
            "add",
            "entra",
            "--name",
            "contoso",
            "--tenant-id",
            "00000000-0000-0000-0000-000000000001",
            "--client-id",
            "00000000-0000-0000-0000-000000000002",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "no credential is invalid input: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("give a credential"));
}

#[test]
fn connection_add_checks_the_settings_as_the_api_does() {
    let dir = tempfile::tempdir().unwrap();
    ok(&deskbridge(dir.path(), &["migrate"]));
    let out = Command::new(env!("CARGO_BIN_EXE_deskbridge"))
        .args([
            "connection",
            "add",
            "entra",
            "--name",
            "contoso",
            "--tenant-id",
            "contoso",
            "--client-id",
            "my-app",
            "--client-secret-env",
            "DESKBRIDGE_TEST_SECRET",
            "--graph-url",
            "graph.microsoft.com",
        ])
        .env("DESKBRIDGE_DATA_DIR", dir.path())
        .env("DESKBRIDGE_TEST_SECRET", "s3cret")
        .env_remove("DESKBRIDGE_DATABASE_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for expected in [
        "Tenant id: \"contoso\"",
        "Client id: \"my-app\" is not a GUID",
        "Graph URL:",
    ] {
        assert!(stderr.contains(expected), "{expected:?} missing from {stderr}");
    }
    assert!(!stderr.contains("s3cret"));
    let listed = ok(&deskbridge(dir.path(), &["connection", "list", "--json"]));
    assert_eq!(listed.trim(), "[]", "nothing was created");
}

#[test]
fn connection_add_refuses_an_endpoint_host_the_instance_does_not_allow() {
    let dir = tempfile::tempdir().unwrap();
    ok(&deskbridge(dir.path(), &["migrate"]));
    // The credential would be sent to the Graph URL: a host that is not Microsoft's needs an
    // administrator's --allow-endpoint-host (or DESKBRIDGE_ALLOWED_ENDPOINT_HOSTS), given here
    // for another host only.
    let out = Command::new(env!("CARGO_BIN_EXE_deskbridge"))
        .args([
            "connection",
            "add",
            "entra",
            "--name",
            "contoso",
            "--tenant-id",
            "00000000-0000-0000-0000-000000000001",
            "--client-id",
            "00000000-0000-0000-0000-000000000002",
            "--client-secret-env",
            "DESKBRIDGE_TEST_SECRET",
            "--graph-url",
            "https://evil.example/v1.0",
        ])
        .env("DESKBRIDGE_DATA_DIR", dir.path())
        .env("DESKBRIDGE_TEST_SECRET", "s3cret")
        .env("DESKBRIDGE_ALLOWED_ENDPOINT_HOSTS", "127.0.0.1")
        .env_remove("DESKBRIDGE_DATABASE_URL")
        .env_remove("DESKBRIDGE_SECRET_KEY")
        .env_remove("DESKBRIDGE_KEY_FILE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("Graph URL: evil.example is not one of Microsoft's cloud endpoints"),
        "{stderr}"
    );
    assert!(stderr.contains("--allow-endpoint-host evil.example"), "{stderr}");
    assert!(!stderr.contains("s3cret"));
    let listed = ok(&deskbridge(dir.path(), &["connection", "list", "--json"]));
    assert_eq!(listed.trim(), "[]", "nothing was created");
}

#[test]
fn a_closed_standard_output_ends_nothing_with_a_panic() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    ok(&deskbridge(dir.path(), &["migrate"]));
    // A reader that stops at once (`deskbridge … | head -c0`): the write fails with a broken pipe.
    let mut child = Command::new(env!("CARGO_BIN_EXE_deskbridge"))
        .args(["directory", "users"])
        .env("DESKBRIDGE_DATA_DIR", dir.path())
        .env_remove("DESKBRIDGE_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.status.code().is_some(),
        "killed by a signal: {:?}",
        out.status
    );
}

/// `deskbridge directory users | head -1` on a directory far larger than a pipe's buffer: the
/// reader goes away after one line, and the binary ends quietly with status 0.
#[tokio::test]
async fn directory_users_piped_into_head_ends_quietly() {
    use deskbridge_store::{Entity, WriteContext};
    use std::io::{BufRead as _, BufReader};
    use std::process::Stdio;
    let db = deskbridge_testkit::sqlite().await;
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let fields = |v: serde_json::Value| -> deskbridge_store::Fields {
        v.as_object().unwrap().clone().into_iter().collect()
    };
    let customer = tx
        .insert(
            Entity::Customer,
            None,
            &fields(serde_json::json!({"name": "Contoso"})),
        )
        .await
        .unwrap();
    let site = tx.main_site(customer).await.unwrap().unwrap();
    for i in 0..3000 {
        let user = serde_json::json!({"name": format!("User {i}"), "email": format!("user{i}@contoso.example"), "site_id": site.0});
        tx.insert(Entity::User, None, &fields(user)).await.unwrap();
    }
    tx.commit().await.unwrap();
    let data = db.sqlite_file.as_ref().unwrap().parent().unwrap().to_owned();
    let mut child = Command::new(env!("CARGO_BIN_EXE_deskbridge"))
        .args(["directory", "users"])
        .env("DESKBRIDGE_DATA_DIR", &data)
        .env("DESKBRIDGE_LOG", "error")
        .env_remove("DESKBRIDGE_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader (and the pipe's read end) is gone now, as after `head -1`.
    assert!(first.starts_with("ID ") && first.contains(" EMAIL "), "{first}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "nothing said about the closed pipe: {stderr}");
    // The same through a shell pipeline, as a person types it (pipefail: the status is
    // deskbridge's too).
    let shell = Command::new("bash")
        .args([
            "-c",
            &format!(
                "set -o pipefail; {} directory users | head -1",
                env!("CARGO_BIN_EXE_deskbridge")
            ),
        ])
        .env("DESKBRIDGE_DATA_DIR", &data)
        .env("DESKBRIDGE_LOG", "error")
        .env_remove("DESKBRIDGE_DATABASE_URL")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shell.stdout);
    assert_eq!(shell.status.code(), Some(0), "{text}");
    assert!(text.starts_with("ID ") && text.contains(" EMAIL "), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        String::from_utf8_lossy(&shell.stderr).is_empty(),
        "{}",
        String::from_utf8_lossy(&shell.stderr)
    );
    db.cleanup().await;
}

/// Colour only on a terminal: piped output and logs hold no escape codes; on a terminal the
/// logs are coloured unless NO_COLOR is set (checked where `script` can give the binary one).
#[test]
fn no_colour_codes_unless_on_a_terminal_without_no_color() {
    let dir = tempfile::tempdir().unwrap();
    ok(&deskbridge(dir.path(), &["migrate"]));
    let piped = Command::new(env!("CARGO_BIN_EXE_deskbridge"))
        .args(["directory", "users"])
        .env("DESKBRIDGE_DATA_DIR", dir.path())
        .env("DESKBRIDGE_LOG", "debug")
        .env_remove("DESKBRIDGE_DATABASE_URL")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(piped.status.success());
    assert!(!piped.stderr.is_empty(), "debug logs were written");
    for (stream, bytes) in [("stdout", &piped.stdout), ("stderr", &piped.stderr)] {
        assert!(
            !bytes.contains(&0x1b),
            "{stream} holds an escape code: {}",
            String::from_utf8_lossy(bytes)
        );
    }
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipping the terminal half: no `script`");
        return;
    }
    let on_terminal = |no_color: Option<&str>| -> Vec<u8> {
        let command = format!("{} directory users", env!("CARGO_BIN_EXE_deskbridge"));
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &command, "/dev/null"])
            .env("DESKBRIDGE_DATA_DIR", dir.path())
            .env("DESKBRIDGE_LOG", "debug")
            .env_remove("DESKBRIDGE_DATABASE_URL");
        match no_color {
            Some(v) => cmd.env("NO_COLOR", v),
            None => cmd.env_remove("NO_COLOR"),
        };
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        out.stdout
    };
    assert!(on_terminal(None).contains(&0x1b), "a terminal gets coloured logs");
    assert!(
        !on_terminal(Some("1")).contains(&0x1b),
        "NO_COLOR turns colour off"
    );
}

#[tokio::test]
async fn migrate_creates_the_schema_in_an_empty_postgres_database() {
    let Some(base) = postgres_url() else { return };
    let name = format!(
        "deskbridge_cli_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let admin = sqlx::PgPool::connect(&base).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let url = with_database(&base, &name);
    let dir = tempfile::tempdir().unwrap();
    let outcome = check_postgres_migrate(&url, dir.path()).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
        .execute(&admin)
        .await
        .unwrap();
    outcome.unwrap();
}

/// The checks, returning instead of panicking so the test database is always dropped.
async fn check_postgres_migrate(url: &str, data: &Path) -> Result<(), String> {
    let out = deskbridge(data, &["--database", url, "migrate"]);
    if !out.status.success() {
        return Err(format!(
            "migrate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let db = sqlx::PgPool::connect(url).await.map_err(|e| e.to_string())?;
    let tables: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'")
            .fetch_one(&db)
            .await
            .map_err(|e| e.to_string())?;
    db.close().await;
    if tables < 30 {
        return Err(format!("only {tables} tables"));
    }
    let out = deskbridge(data, &["--database", url, "directory", "users", "--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || stdout.trim() != "[]" {
        return Err(format!(
            "directory users: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn postgres_url() -> Option<String> {
    match std::env::var("DESKBRIDGE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("DESKBRIDGE_TEST_POSTGRES_URL must be set when CI=true")
        }
        _ => {
            eprintln!("skipping: DESKBRIDGE_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// The same server URL with another database name.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let root = base.rsplit_once('/').map_or(base, |(root, _)| root);
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// The per-tenant lines of the CSP demo's summary: (users in the tenant, imported, the rest as
/// the line accounts for them).
fn reconciled(out: &str) -> Vec<(i64, i64, i64)> {
    let number = |text: &str| -> i64 { text.trim().split(' ').next().unwrap().parse().unwrap() };
    out.lines()
        .filter(|l| l.starts_with("    ") && l.contains(" users = "))
        .map(|l| {
            let (head, parts) = l.split_once(" users = ").unwrap();
            let users = number(head.rsplit_once(": ").unwrap().1);
            let mut parts = parts.split(" + ").map(number);
            let imported = parts.next().unwrap();
            (users, imported, parts.sum())
        })
        .collect()
}

#[test]
fn the_demo_connects_through_csp_and_accounts_for_every_user_of_every_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["demo", "--no-serve", "--tenants", "3", "--users-per-tenant", "30"];
    let out = ok(&deskbridge(dir.path(), &args));
    assert!(out.contains("CSP: Partner Center with GDAP"), "{out}");
    assert!(out.contains("one connection (demo-csp)"), "{out}");
    let lines = reconciled(&out);
    assert_eq!(lines.len(), 3, "one line per customer tenant: {out}");
    for (users, imported, rest) in &lines {
        assert_eq!(
            users,
            &(imported + rest),
            "every user is imported or said why not: {out}"
        );
    }
    let imported: i64 = lines.iter().map(|l| l.1).sum();
    assert!(imported > 0, "{out}");
    // The sample world has a customer whose GDAP relationship is not active: said, not imported.
    assert!(out.contains("has no active GDAP relationship"), "{out}");
    let subscriptions: i64 = out
        .lines()
        .find(|l| l.contains("on the desk:"))
        .and_then(|l| l.split(", ").find(|p| p.ends_with(" subscriptions")))
        .and_then(|p| p.split(' ').next()?.parse().ok())
        .unwrap();
    assert!(subscriptions > 0, "{out}");
    let users = json(dir.path(), &["directory", "users"]);
    let csp_users = users
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["source_connection_id"] == connection_id(dir.path(), &[], "demo-csp"))
        .count();
    assert_eq!(csp_users as i64, imported, "{out}");
    let assets = json(dir.path(), &["directory", "assets"]);
    assert!(!assets.as_array().unwrap().is_empty(), "{out}");
    // Then the Dynamics 365 organisation: accounts, contacts and contracts, each accounted for.
    let org = DemoOrg::of_world(3, 30);
    org.check_summary(&out);
    org.check_desk(dir.path(), &[]);
    let desk = desk_json(dir.path(), &[]);

    // Again on the same data directory: a new emulator (same world), the connections pointed at
    // it and signed in again, nothing to change.
    let again = ok(&deskbridge(dir.path(), &args));
    assert!(
        again.contains("created 0, updated 0, deactivated 0, errors 0"),
        "{again}"
    );
    assert_eq!(reconciled(&again), lines, "{again}");
    assert!(
        again.contains(
            "demo-dynamics was set up by an earlier demo on this data directory: pointed at this run's emulator, \
             its mappings kept, everything read again: nothing changed"
        ),
        "{again}"
    );
    let accounts = org.accounts.len();
    assert!(
        again.contains(&format!(
            "{accounts} accounts = 0 customers created + {accounts} already on the desk from an earlier demo"
        )),
        "{again}"
    );
    org.check_summary(&again);
    assert_eq!(
        desk_json(dir.path(), &[]),
        desk,
        "the second demo changed nothing on the desk"
    );
}

/// `deskbridge ARGS --json`, parsed (ARGS may start with `--database URL`).
fn json(data_dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&ok(&deskbridge(data_dir, &args))).unwrap()
}

/// The id of the connection named `name`, as the directory's JSON gives `source_connection_id`.
fn connection_id(data_dir: &Path, global: &[&str], name: &str) -> serde_json::Value {
    let connections = json(data_dir, &[global, &["connection", "list"]].concat());
    connections
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no connection {name}: {connections}"))["id"]
        .clone()
}

/// What a rerun must leave as it was: customers, sites, users and the contracts' rows.
fn desk_json(data_dir: &Path, global: &[&str]) -> Vec<serde_json::Value> {
    [
        &["directory", "customers"][..],
        &["directory", "sites"],
        &["directory", "users"],
        &["directory", "custom-rows", "--table", "contracts"],
    ]
    .iter()
    .map(|args| json(data_dir, &[global, args].concat()))
    .collect()
}

/// The demo's Dynamics 365 organisation as the sample world generates it (the demo's seed and
/// contacts): what its summary and the desk must account for.
struct DemoOrg {
    /// The organisation's URL segment and its friendly name.
    name: String,
    friendly_name: String,
    /// The Entra tenant's name: the desk customer of contacts without an imported account.
    tenant_name: String,
    accounts: std::collections::BTreeSet<String>,
    /// Each contact's full name and its parent account's name.
    contacts: Vec<(String, Option<String>)>,
    /// Each contract's name and its account's name.
    contracts: Vec<(String, String)>,
}

impl DemoOrg {
    fn of_world(tenants: usize, users_per_tenant: usize) -> Self {
        let world = deskbridge_emulator::World::generate(&deskbridge_emulator::GenerateOptions {
            seed: 7,
            tenants,
            users_per_tenant: Some(users_per_tenant),
            dataverse_orgs: 1,
            dataverse_contacts: Some(100),
            ..deskbridge_emulator::GenerateOptions::default()
        })
        .unwrap();
        let org = &world.dataverse_orgs[0];
        let rows = |table: &str| &org.table(table).unwrap().rows;
        let account_name = |id: &serde_json::Value| -> String {
            let id = id.as_str().unwrap();
            let row = rows("account").iter().find(|r| r.id == id).unwrap();
            row.values["name"].as_str().unwrap().to_owned()
        };
        let tenant = world.tenants.iter().find(|t| t.id == org.tenant_id).unwrap();
        Self {
            name: org.name.clone(),
            friendly_name: org.friendly_name.clone(),
            tenant_name: tenant.display_name.clone(),
            accounts: rows("account")
                .iter()
                .map(|r| r.values["name"].as_str().unwrap().to_owned())
                .collect(),
            contacts: rows("contact")
                .iter()
                .map(|r| {
                    let parent = r
                        .values
                        .get("parentcustomerid")
                        .filter(|p| p["table"] == "account")
                        .map(|p| account_name(&p["id"]));
                    (r.values["fullname"].as_str().unwrap().to_owned(), parent)
                })
                .collect(),
            contracts: rows("cr7a1_contract")
                .iter()
                .map(|r| {
                    (
                        r.values["cr7a1_name"].as_str().unwrap().to_owned(),
                        account_name(&r.values["cr7a1_accountid"]["id"]),
                    )
                })
                .collect(),
        }
    }

    /// The summary names the organisation and reconciles its accounts, contacts and contracts.
    fn check_summary(&self, out: &str) {
        let (accounts, contacts, contracts) =
            (self.accounts.len(), self.contacts.len(), self.contracts.len());
        assert!(accounts >= 20 && contacts == 100 && contracts > accounts, "{out}");
        assert!(
            out.contains("Dynamics 365: one organisation, connection demo-dynamics"),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "organisation:       {} ({}): {accounts} accounts, {contacts} contacts, {contracts} rows of \
                 cr7a1_contract",
                self.friendly_name, self.name
            )),
            "{out}"
        );
        let on_accounts = self.contacts.iter().filter(|c| c.1.is_some()).count();
        assert!(on_accounts > 0 && on_accounts < contacts, "{on_accounts}");
        let line = out.lines().find(|l| l.contains("  contacts:  ")).unwrap();
        assert!(
            line.contains(&format!(
                "{contacts} contacts = {on_accounts} on their account's customer + {} on the default site (Main of \
                 {}:",
                contacts - on_accounts,
                self.tenant_name
            )),
            "{out}"
        );
        assert!(line.contains("+ 0 skipped"), "every contact is active: {out}");
        assert!(
            out.contains(&format!(
                "{contracts} rows of cr7a1_contract = {contracts} in desk table contracts"
            )),
            "{out}"
        );
        // A few customers by name, with their people and contracts.
        let examples: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("    ") && l.contains(" users (") && l.contains("; contracts: "))
            .collect();
        assert_eq!(examples.len(), 3, "{out}");
        for example in examples {
            let (customer, rest) = example.trim().split_once(": ").unwrap();
            assert!(self.accounts.contains(customer), "{example}");
            let person = rest
                .split_once(" users (")
                .unwrap()
                .1
                .split([',', ')'])
                .next()
                .unwrap();
            assert!(
                self.contacts
                    .iter()
                    .any(|(name, parent)| name == person && parent.as_deref() == Some(customer)),
                "{example}"
            );
            let contract = rest
                .split_once("; contracts: ")
                .unwrap()
                .1
                .split(", ")
                .next()
                .unwrap();
            assert!(
                self.contracts
                    .iter()
                    .any(|(name, account)| name == contract && account == customer),
                "{example}"
            );
        }
    }

    /// The desk holds a customer with a main site per account, each contact on its account's
    /// customer's main site (or on the organisation's customer's), and every contract's row.
    fn check_desk(&self, data_dir: &Path, global: &[&str]) {
        let list = |args: &[&str]| json(data_dir, &[global, args].concat());
        let customers = list(&["directory", "customers"]);
        let names: Vec<&str> = customers
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        for account in &self.accounts {
            assert_eq!(
                names.iter().filter(|n| *n == account).count(),
                1,
                "{account}: {customers}"
            );
        }
        let sites = list(&["directory", "sites"]);
        let main_site = |customer: &str| {
            let site = sites
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["customer"] == customer && s["is_main"] == true)
                .unwrap_or_else(|| panic!("{customer} has no main site: {sites}"));
            site["id"].clone()
        };
        let dynamics = connection_id(data_dir, global, "demo-dynamics");
        let users = list(&["directory", "users"]);
        let users: Vec<&serde_json::Value> = users
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["source_connection_id"] == dynamics)
            .collect();
        assert_eq!(users.len(), self.contacts.len());
        let mut expected: std::collections::BTreeMap<&str, usize> = Default::default();
        for (_, parent) in &self.contacts {
            *expected
                .entry(parent.as_deref().unwrap_or(&self.tenant_name))
                .or_default() += 1;
        }
        for (customer, count) in expected {
            let site = main_site(customer);
            let on_it: Vec<_> = users.iter().filter(|u| u["customer"] == customer).collect();
            assert_eq!(on_it.len(), count, "users of {customer}");
            assert!(
                on_it.iter().all(|u| u["site_id"] == site),
                "{customer}: {on_it:?}"
            );
        }
        for (name, parent) in &self.contacts {
            let customer = parent.as_deref().unwrap_or(&self.tenant_name);
            assert!(
                users
                    .iter()
                    .any(|u| u["name"] == name.as_str() && u["customer"] == customer),
                "{name} on {customer}"
            );
        }
        let rows = list(&["directory", "custom-rows", "--table", "contracts"]);
        let mut rows: Vec<(String, String)> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert!(
                    r["seats"].is_number() && r["number"].is_string() && r["tier"].is_string(),
                    "{r}"
                );
                (
                    r["name"].as_str().unwrap().to_owned(),
                    r["account"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        rows.sort();
        let mut contracts = self.contracts.clone();
        contracts.sort();
        assert_eq!(rows, contracts);
    }
}

#[test]
fn the_entra_only_demo_imports_users_and_devices_and_the_directory_names_each_assets_type_user_and_site() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(&deskbridge(
        dir.path(),
        &[
            "demo",
            "--no-serve",
            "--entra-only",
            "--tenants",
            "2",
            "--users-per-tenant",
            "30",
        ],
    ));
    assert!(out.contains("Entra only: one connection per tenant"), "{out}");
    assert!(
        !out.contains("Dynamics 365"),
        "the earliest demo has no Dynamics 365: {out}"
    );
    assert!(out.contains("delta import:"), "{out}");
    assert!(out.contains("device import:"), "{out}");
    assert!(out.contains("errors 0"), "{out}");
    let assets: serde_json::Value =
        serde_json::from_str(&ok(&deskbridge(dir.path(), &["directory", "assets", "--json"]))).unwrap();
    let assets = assets.as_array().unwrap();
    assert!(!assets.is_empty(), "{out}");
    for asset in assets {
        for key in ["serial_number", "asset_type", "user_id", "site_id", "status"] {
            assert!(asset.get(key).is_some(), "{key} in {asset}");
        }
        let ty = asset["asset_type"].as_str().unwrap();
        assert!(
            ["Computer", "Mobile phone", "Other device"].contains(&ty),
            "{asset}"
        );
        assert_eq!(asset["status"], "active");
        assert!(asset["site"].is_string(), "{asset}");
    }
    assert!(
        assets.iter().any(|a| a["user"].is_string()),
        "some devices have users"
    );
    let table = ok(&deskbridge(dir.path(), &["directory", "assets"]));
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "ID",
            "NAME",
            "ASSET_TYPE",
            "SERIAL_NUMBER",
            "CUSTOMER",
            "USER",
            "SITE",
            "STATUS",
            "SOURCE"
        ],
        "{table}"
    );
    // An entity deskbridge does not sync is refused before anything is read.
    let bad = deskbridge(dir.path(), &["sync", "--connection", "x", "--entity", "planets"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("use one of: directory, assets"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn the_demo_without_dynamics_adds_no_dynamics_connection_and_no_desk_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(&deskbridge(
        dir.path(),
        &[
            "demo",
            "--no-serve",
            "--no-dynamics",
            "--tenants",
            "2",
            "--users-per-tenant",
            "5",
        ],
    ));
    assert!(out.contains("CSP: Partner Center with GDAP"), "{out}");
    assert!(!out.contains("Dynamics 365"), "{out}");
    let connections = json(dir.path(), &["connection", "list"]);
    let kinds: Vec<&str> = connections
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["csp"], "{connections}");
    assert_eq!(
        json(dir.path(), &["custom-tables", "list"]),
        serde_json::json!([])
    );
}

#[tokio::test]
async fn the_demo_imports_its_dynamics_organisation_into_postgres_too() {
    let Some(base) = postgres_url() else { return };
    let name = format!(
        "deskbridge_demo_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let admin = sqlx::PgPool::connect(&base).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let url = with_database(&base, &name);
    let dir = tempfile::tempdir().unwrap();
    // The checks panic inside; the database is dropped either way.
    let outcome = std::panic::catch_unwind(|| {
        let global = ["--database", url.as_str()];
        let args = [
            &global[..],
            &["demo", "--no-serve", "--tenants", "2", "--users-per-tenant", "10"],
        ]
        .concat();
        let org = DemoOrg::of_world(2, 10);
        let out = ok(&deskbridge(dir.path(), &args));
        org.check_summary(&out);
        org.check_desk(dir.path(), &global);
        let desk = desk_json(dir.path(), &global);
        let again = ok(&deskbridge(dir.path(), &args));
        assert!(
            again.contains("everything read again: nothing changed"),
            "{again}"
        );
        org.check_summary(&again);
        assert_eq!(
            desk_json(dir.path(), &global),
            desk,
            "the second demo changed nothing on the desk"
        );
    });
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
        .execute(&admin)
        .await
        .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn an_asset_run_of_every_connection_leaves_out_those_without_asset_import() {
    let dir = tempfile::tempdir().unwrap();
    ok(&deskbridge(dir.path(), &["migrate"]));
    let added = Command::new(env!("CARGO_BIN_EXE_deskbridge"))
        .args([
            "connection",
            "add",
            "entra",
            "--name",
            "contoso",
            "--tenant-id",
            "11111111-2222-4333-8444-555555555555",
            "--client-id",
            "66666666-7777-4888-8999-aaaaaaaaaaaa",
            "--client-secret-env",
            "DESKBRIDGE_TEST_SECRET",
        ])
        .env("DESKBRIDGE_DATA_DIR", dir.path())
        .env(
            "DESKBRIDGE_TEST_SECRET",
            "s3cret-value-of-forty-characters-or-so~~",
        )
        .env_remove("DESKBRIDGE_DATABASE_URL")
        .output()
        .unwrap();
    ok(&added);
    // Nothing is contacted: the only connection does not import assets, so it is left out, said
    // once, and the run of "every connection" has nothing to fail.
    let out = deskbridge(dir.path(), &["sync", "--all", "--entity", "assets", "--json"]);
    let stdout = ok(&out);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["connections"], serde_json::json!([]), "{stdout}");
    assert_eq!(report["failed"], 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not importing assets for contoso"), "{stderr}");
}

#[test]
fn connection_add_entra_leaves_delta_queries_off_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    ok(&deskbridge(dir.path(), &["migrate"]));
    let add = |name: &str, tenant: &str, extra: &[&str]| {
        let mut args = vec![
            "connection",
            "add",
            "entra",
            "--name",
            name,
            "--tenant-id",
            tenant,
            "--client-id",
            "00000000-0000-0000-0000-000000000002",
            "--client-secret-env",
            "DESKBRIDGE_TEST_SECRET",
        ];
        args.extend_from_slice(extra);
        let out = Command::new(env!("CARGO_BIN_EXE_deskbridge"))
            .args(&args)
            .env("DESKBRIDGE_DATA_DIR", dir.path())
            .env("DESKBRIDGE_TEST_SECRET", "s3cret")
            .env_remove("DESKBRIDGE_DATABASE_URL")
            .env_remove("DESKBRIDGE_SECRET_KEY")
            .env_remove("DESKBRIDGE_KEY_FILE")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    add("plain", "00000000-0000-0000-0000-000000000001", &[]);
    add("tracked", "00000000-0000-0000-0000-000000000003", &["--delta"]);
    let delta_of = |name: &str| {
        let shown = ok(&deskbridge(
            dir.path(),
            &["connection", "delta", "--name", name, "--json"],
        ));
        serde_json::from_str::<serde_json::Value>(&shown).unwrap()
    };
    let plain = delta_of("plain");
    assert_eq!(plain["enabled"], false, "{plain}");
    let tracked = delta_of("tracked");
    assert_eq!(tracked["enabled"], true, "{tracked}");
}

#[test]
fn licences_assign_names_what_it_cannot_find_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    ok(&deskbridge(dir.path(), &["migrate"]));
    let unknown_user = deskbridge(
        dir.path(),
        &[
            "licences",
            "assign",
            "--user",
            "nobody@contoso.test",
            "--licence",
            "E3",
        ],
    );
    assert_eq!(unknown_user.status.code(), Some(2), "{unknown_user:?}");
    let said = String::from_utf8_lossy(&unknown_user.stderr);
    assert!(
        said.contains("no user has the email \"nobody@contoso.test\""),
        "{said}"
    );
    let unknown_id = deskbridge(
        dir.path(),
        &["licences", "remove", "--user", "42", "--licence", "7"],
    );
    assert_eq!(unknown_id.status.code(), Some(2), "{unknown_id:?}");
    assert!(
        String::from_utf8_lossy(&unknown_id.stderr).contains("there is no user 42"),
        "{unknown_id:?}"
    );
    let help = ok(&deskbridge(dir.path(), &["licences", "--help"]));
    for command in ["assign", "remove", "changes"] {
        assert!(help.contains(command), "{help}");
    }
}
