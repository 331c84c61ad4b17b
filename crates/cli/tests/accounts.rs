//! `deskbridge admin list|reset-password|disable|enable` and the names and filters of
//! `deskbridge directory …`, run as a user runs them, on SQLite and PostgreSQL: the test seeds
//! the store through the library and reads what the binary prints.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};

use deskbridge_store::{Entity, Role, WriteContext};
use deskbridge_testkit::{TestDb, store_test};
use deskbridge_web::auth;
use serde_json::{Value, json};

/// Runs the binary on the test's store: the SQLite file's directory, or the PostgreSQL schema
/// through the URL's `options` (a data directory of its own holds the key file).
struct Cli {
    data: PathBuf,
    database: Option<String>,
    _dir: tempfile::TempDir,
}

impl Cli {
    fn of(db: &TestDb) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (data, database) = match (&db.sqlite_file, &db.postgres) {
            (Some(file), _) => (file.parent().unwrap().to_owned(), None),
            (None, Some((url, schema))) => {
                let joiner = if url.contains('?') { '&' } else { '?' };
                let url = format!("{url}{joiner}options=-c%20search_path%3D{schema}");
                (dir.path().to_owned(), Some(url))
            }
            (None, None) => panic!("a test store is SQLite or PostgreSQL"),
        };
        Self {
            data,
            database,
            _dir: dir,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_deskbridge"));
        cmd.args(args)
            .env("DESKBRIDGE_DATA_DIR", &self.data)
            .env("DESKBRIDGE_LOG", "error")
            .env_remove("DESKBRIDGE_SECRET_KEY")
            .env_remove("DESKBRIDGE_KEY_FILE");
        match &self.database {
            Some(url) => cmd.env("DESKBRIDGE_DATABASE_URL", url),
            None => cmd.env_remove("DESKBRIDGE_DATABASE_URL"),
        };
        cmd.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A command that must fail with exit status 2; its standard error.
    fn refused(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }
}

fn one_time_password(out: &str) -> String {
    out.split("one-time password: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_else(|| panic!("no one-time password in {out}"))
        .to_owned()
}

fn account<'a>(list: &'a Value, username: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|a| a["username"] == username)
        .unwrap_or_else(|| panic!("no {username} in {list}"))
}

/// A session and an API token for the account; their token values.
async fn sign_in_everywhere(db: &TestDb, id: i64) -> (String, String) {
    let session = auth::random_token(32);
    let token = format!("{}{}", auth::API_TOKEN_PREFIX, auth::random_token(32));
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let expires = db.store.now() + jiff::SignedDuration::from_hours(1);
    tx.create_session(id, &auth::token_hash(&session), "csrf", expires)
        .await
        .unwrap();
    tx.create_api_token(id, "script", &auth::token_hash(&token), None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (session, token)
}

/// Whether the session and the API token still let the account in.
async fn still_in(db: &TestDb, session: &str, token: &str) -> (bool, bool) {
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let session = tx
        .session_by_token_hash(&auth::token_hash(session))
        .await
        .unwrap()
        .is_some();
    let token = tx
        .use_api_token(&auth::token_hash(token))
        .await
        .unwrap()
        .is_some();
    tx.commit().await.unwrap();
    (session, token)
}

store_test! {
    async fn admin_lists_resets_disables_and_enables_accounts(db: &TestDb) {
        let cli = Cli::of(db);
        cli.ok(&["admin", "create", "--username", "ann"]);
        cli.ok(&["admin", "create", "--username", "bob", "--role", "agent", "--can-configure-connections"]);

        let table = cli.ok(&["admin", "list"]);
        let mut lines = table.lines();
        assert_eq!(
            lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
            ["USERNAME", "ROLE", "CONFIGURES_CONNECTIONS", "STATE", "LOCKED", "LAST_SIGN_IN"]
        );
        let bob_line = table.lines().find(|l| l.starts_with("bob")).unwrap();
        for expected in ["agent", "yes", "must set a password", "no", "never"] {
            assert!(bob_line.contains(expected), "{expected:?} in {bob_line}");
        }
        let list = cli.json(&["admin", "list", "--json"]);
        let bob = account(&list, "bob");
        assert_eq!(bob["role"], "agent");
        assert_eq!(bob["can_configure_connections"], true);
        assert_eq!(bob["disabled"], false);
        assert_eq!(bob["locked_until"], Value::Null);
        assert_eq!(bob["failed_sign_ins"], 0);
        assert_eq!(bob["last_sign_in_at"], Value::Null);
        assert!(bob.get("password_hash").is_none(), "{bob}");
        let bob_id = bob["id"].as_i64().unwrap();
        let ann_id = account(&list, "ann")["id"].as_i64().unwrap();

        // A sign-in is recorded and shown.
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        tx.record_sign_in(bob_id).await.unwrap();
        tx.commit().await.unwrap();
        let signed = cli.json(&["admin", "list", "--json"]);
        let at = account(&signed, "bob")["last_sign_in_at"].as_str().unwrap().to_owned();
        assert!(cli.ok(&["admin", "list"]).contains(&at));

        // The only administrator stays enabled, and an administrator.
        let err = cli.refused(&["admin", "disable", "--username", "ann"]);
        assert!(err.contains("\"ann\" is the last enabled administrator; it cannot be disabled"), "{err}");
        assert!(err.contains("create or enable another administrator first"), "{err}");
        let demote = auth::change_account(&db.store, ann_id, auth::AccountChange { role: Some(Role::Agent), ..Default::default() }).await;
        assert!(demote.unwrap_err().message.contains("cannot be made an agent"));

        // Disabling ends the sessions and refuses the API tokens at once; enabling lets the
        // tokens in again (sessions stay ended).
        let (session, token) = sign_in_everywhere(db, bob_id).await;
        assert_eq!(still_in(db, &session, &token).await, (true, true));
        let out = cli.ok(&["admin", "disable", "--username", "bob"]);
        assert!(out.contains("disabled \"bob\": its sessions have ended"), "{out}");
        assert_eq!(still_in(db, &session, &token).await, (false, false));
        assert!(cli.ok(&["admin", "list"]).lines().any(|l| l.starts_with("bob") && l.contains("disabled")));
        assert_eq!(account(&cli.json(&["admin", "list", "--json"]), "bob")["disabled"], true);
        assert!(cli.ok(&["admin", "disable", "--username", "bob"]).contains("\"bob\" was already disabled"));
        assert!(cli.ok(&["admin", "enable", "--username", "bob"]).contains("enabled \"bob\": it can sign in again"));
        assert_eq!(still_in(db, &session, &token).await, (false, true));

        // A second administrator: now either may be disabled, but not both.
        cli.ok(&["admin", "create", "--username", "cat"]);
        cli.ok(&["admin", "disable", "--username", "ann"]);
        assert!(cli.refused(&["admin", "disable", "--username", "cat"]).contains("last enabled administrator"));
        cli.ok(&["admin", "enable", "--username", "ann"]);

        // A reset: a new one-time password, printed once, that the account must change; its
        // sessions end and its failed sign-ins are forgotten.
        let (session, token) = sign_in_everywhere(db, bob_id).await;
        // The binary reads the wall clock: the block must last past it.
        db.clock.set(deskbridge_core::Clock::now(&deskbridge_core::SystemClock));
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        for _ in 0..auth::ACCOUNT_POLICY.free {
            tx.record_sign_in_failure(deskbridge_store::SignInSubject::Account, "bob", &auth::ACCOUNT_POLICY).await.unwrap();
        }
        tx.commit().await.unwrap();
        assert!(cli.ok(&["admin", "list"]).lines().any(|l| l.starts_with("bob") && l.contains("until ")));
        let out = cli.ok(&["admin", "reset-password", "--username", "bob"]);
        let password = one_time_password(&out);
        assert!(password.len() >= 16, "{password}");
        assert!(out.contains("Its sessions have ended"), "{out}");
        let mut tx = db.store.read().await.unwrap();
        let (after, hash) = tx.account_for_sign_in("bob").await.unwrap().unwrap();
        tx.commit().await.unwrap();
        assert!(after.must_change_password);
        assert!(auth::verify_password(&password, &hash));
        assert!(!still_in(db, &session, &token).await.0, "the session ended");
        let bob = account(&cli.json(&["admin", "list", "--json"]), "bob").clone();
        assert_eq!(bob["locked_until"], Value::Null, "{bob}");
        assert!(!cli.ok(&["admin", "list"]).contains(&password), "shown once");

        // Unknown usernames are named, with where to look.
        for command in ["reset-password", "disable", "enable"] {
            let err = cli.refused(&["admin", command, "--username", "nobody"]);
            assert!(err.contains("there is no account \"nobody\""), "{err}");
            assert!(err.contains("deskbridge admin list"), "{err}");
        }
    }
}

fn fields(value: Value) -> deskbridge_store::Fields {
    value.as_object().unwrap().clone().into_iter().collect()
}

/// Contoso (main site "Main" and "Leeds", tenant T1) and Fabrikam (main site "Main"), a user in
/// each site, an agent who is a Contoso user, an agent known only by Fabrikam's tenant, and an
/// asset at Leeds.
async fn seed_directory(db: &TestDb) {
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let contoso = tx
        .insert(
            Entity::Customer,
            None,
            &fields(json!({"name": "Contoso", "tenant_ids": ["T1"]})),
        )
        .await
        .unwrap();
    let fabrikam = tx
        .insert(
            Entity::Customer,
            None,
            &fields(json!({"name": "Fabrikam", "tenant_ids": ["T2"]})),
        )
        .await
        .unwrap();
    let contoso_main = tx.main_site(contoso).await.unwrap().unwrap();
    let fabrikam_main = tx.main_site(fabrikam).await.unwrap().unwrap();
    let leeds = tx
        .insert(
            Entity::Site,
            None,
            &fields(json!({"name": "Leeds", "customer_id": contoso.0})),
        )
        .await
        .unwrap();
    let long = "Maximilian-Alexander Ölçek-Þórsdóttir Nguyễn";
    let ann = tx
        .insert(
            Entity::User,
            None,
            &fields(json!({"name": "Ann Smith", "email": "ann@contoso.example", "site_id": contoso_main.0})),
        )
        .await
        .unwrap();
    tx.insert(
        Entity::User,
        None,
        &fields(json!({"name": long, "email": "max@contoso.example", "site_id": leeds.0})),
    )
    .await
    .unwrap();
    tx.insert(Entity::User, None, &fields(json!({"name": "Fay Fox", "email": "fay@fabrikam.example", "network_login": "FABRIKAM\\fsmith", "site_id": fabrikam_main.0})))
        .await
        .unwrap();
    tx.insert(
        Entity::Agent,
        None,
        &fields(json!({"name": "Ann Smith", "email": "ann@contoso.example", "user_id": ann.0})),
    )
    .await
    .unwrap();
    tx.insert(
        Entity::Agent,
        None,
        &fields(json!({"name": "Gus Grey", "azure_tenant_id": "t2"})),
    )
    .await
    .unwrap();
    tx.insert(
        Entity::Asset,
        None,
        &fields(json!({"name": "LAPTOP-1", "serial_number": "SN-42", "site_id": leeds.0})),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// The rows of a table printed to a pipe, split on runs of two or more spaces.
fn table_rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

store_test! {
    async fn directory_listings_show_names_and_filter_by_customer_site_and_text(db: &TestDb) {
        seed_directory(db).await;
        let cli = Cli::of(db);
        let users = table_rows(&cli.ok(&["directory", "users"]));
        assert_eq!(users[0], ["ID", "NAME", "EMAIL", "CUSTOMER", "SITE", "ACTIVE", "IS_SERVICE_ACCOUNT"]);
        assert_eq!(&users[1][1..5], ["Ann Smith", "ann@contoso.example", "Contoso", "Main"]);
        // A pipe gets whole cells.
        assert_eq!(&users[2][1..5], ["Maximilian-Alexander Ölçek-Þórsdóttir Nguyễn", "max@contoso.example", "Contoso", "Leeds"]);
        assert_eq!(&users[3][3..5], ["Fabrikam", "Main"]);

        let names = |args: &[&str]| -> Vec<String> {
            let mut all = vec!["directory"];
            all.extend_from_slice(args);
            all.push("--json");
            cli.json(&all).as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect()
        };
        assert_eq!(names(&["users", "--customer", "fabrikam"]), ["Fay Fox"]);
        assert_eq!(names(&["users", "--site", "leeds"]).len(), 1);
        assert_eq!(names(&["users", "--customer", "Contoso", "--site", "Main"]), ["Ann Smith"]);
        assert_eq!(names(&["users", "--site", "main"]), ["Ann Smith", "Fay Fox"], "every site of that name");
        // --search looks in name, email and login, ignoring case.
        assert_eq!(names(&["users", "--search", "SMITH"]), ["Ann Smith", "Fay Fox"]);
        assert_eq!(names(&["users", "--search", "max@"]).len(), 1);
        assert!(names(&["users", "--search", "nobody"]).is_empty());
        // Agents: through their user, or their tenant's customer.
        let agents = cli.json(&["directory", "agents", "--json"]);
        assert_eq!(agents[0]["customer"], "Contoso");
        assert_eq!(agents[0]["site"], "Main");
        assert_eq!(agents[1]["customer"], "Fabrikam");
        assert_eq!(agents[1]["site"], Value::Null);
        assert_eq!(names(&["agents", "--customer", "Fabrikam"]), ["Gus Grey"]);
        // Sites and assets.
        let sites = table_rows(&cli.ok(&["directory", "sites", "--customer", "Contoso"]));
        assert_eq!(sites[0], ["ID", "CUSTOMER", "NAME", "IS_MAIN", "ACTIVE"]);
        assert_eq!(sites.len(), 3, "{sites:?}");
        assert!(sites[1..].iter().all(|r| r[1] == "Contoso"));
        let assets = cli.json(&["directory", "assets", "--site", "Leeds", "--json"]);
        assert_eq!(assets[0]["customer"], "Contoso");
        assert_eq!(assets[0]["site"], "Leeds");
        assert!(assets[0]["site_id"].is_i64(), "the ids stay in the JSON");
        assert_eq!(names(&["assets", "--search", "sn-4"]), ["LAPTOP-1"]);

        // Unknown names are errors that offer close ones.
        let err = cli.refused(&["directory", "users", "--customer", "Contso"]);
        assert!(err.contains("there is no customer named \"Contso\"; did you mean \"Contoso\"?"), "{err}");
        let err = cli.refused(&["directory", "users", "--customer", "Fabrikam", "--site", "Leeds"]);
        assert!(err.contains("there is no site of that customer named \"Leeds\""), "{err}");
        let err = cli.refused(&["directory", "users", "--site", "leds"]);
        assert!(err.contains("did you mean \"Leeds\"?"), "{err}");
        // Filters that mean nothing for a listing say which go where.
        assert!(cli.refused(&["directory", "customers", "--site", "Main"]).contains("--site goes with users, agents and assets"));
        assert!(cli.refused(&["directory", "customers", "--customer", "x"]).contains("--search"));
    }
}

/// On a terminal (`script` gives the binary one) long cells are cut with "…" unless `--wide`;
/// skipped where `script` is missing.
#[tokio::test]
async fn a_terminal_gets_cut_cells_unless_wide() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipping: no `script` to run the binary on a terminal");
        return;
    }
    let db = deskbridge_testkit::sqlite().await;
    seed_directory(&db).await;
    let data = db.sqlite_file.as_ref().unwrap().parent().unwrap().to_owned();
    let on_terminal = |extra: &str| -> String {
        let command = format!("{} directory users {extra}", env!("CARGO_BIN_EXE_deskbridge"));
        let out = Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env("DESKBRIDGE_DATA_DIR", &data)
            .env("DESKBRIDGE_LOG", "error")
            .env_remove("DESKBRIDGE_DATABASE_URL")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
        String::from_utf8(out.stdout).unwrap()
    };
    let cut = on_terminal("");
    assert!(cut.contains("Maximilian-Alexander Ölçek-Þórsdótt…"), "{cut}");
    let wide = on_terminal("--wide");
    assert!(
        wide.contains("Maximilian-Alexander Ölçek-Þórsdóttir Nguyễn"),
        "{wide}"
    );
    db.cleanup().await;
}
