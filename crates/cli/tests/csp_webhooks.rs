//! `deskbridge csp webhook register|status|send-test|unregister` against the emulator's Partner
//! Center, with `deskbridge serve --partner-webhook-roots …` receiving the test delivery: a CSP
//! connection added and authorised from the CLI, the binary throughout. Also `tenants consent`, a
//! tenant's admin consent through the CLI's loopback listener.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use serde_json::Value;

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_is_registered_tested_and_removed_from_the_cli() {
    let world = World::generate(&GenerateOptions {
        seed: 17,
        tenants: 1,
        users_per_tenant: Some(2),
        ..GenerateOptions::default()
    })
    .unwrap();
    let emu = Emulator::start(EmulatorConfig::new(world)).await.unwrap();
    emu.set_auto_approve(true);
    let summary = emu.summary();
    let app = |kind: &str| summary.apps.iter().find(|a| a.kind == kind).unwrap().clone();
    let (partner, gdap) = (app("partner_center"), app("gdap_multi_tenant"));
    let dir = tempfile::tempdir().unwrap();
    let roots = dir.path().join("webhook-roots.pem");
    std::fs::write(&roots, emu.webhook_root_pem()).unwrap();
    let command = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_deskbridge"));
        c.args(args)
            .env("DESKBRIDGE_ALLOWED_ENDPOINT_HOSTS", "127.0.0.1")
            .env("DESKBRIDGE_DATA_DIR", dir.path())
            .env_remove("DESKBRIDGE_DATABASE_URL")
            .env_remove("DESKBRIDGE_SECRET_KEY")
            .env_remove("DESKBRIDGE_KEY_FILE")
            .env("PC_SECRET", partner.client_secret.clone().unwrap_or_default())
            .env("GDAP_SECRET", gdap.client_secret.clone().unwrap_or_default());
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
    let json = |args: &[&str]| -> Value { serde_json::from_str(&run(args)).unwrap() };
    run(&[
        "connection",
        "add",
        "csp",
        "--name",
        "c",
        "--partner-tenant-id",
        summary.partner_tenant_id.as_deref().unwrap(),
        "--partner-client-id",
        &partner.client_id,
        "--partner-client-secret-env",
        "PC_SECRET",
        "--gdap-client-id",
        &gdap.client_id,
        "--gdap-secret-env",
        "GDAP_SECRET",
        "--authority-host",
        &summary.authority_host,
        "--graph-url",
        &summary.graph_url,
        "--partner-center-url",
        &summary.partner_center_url,
        "--partner-api-url",
        &summary.partner_api_url,
    ]);

    // Before the partner admin signs in, the command says what to do.
    let early = command(&["csp", "webhook", "status", "--connection", "c"])
        .output()
        .unwrap();
    assert!(!early.status.success());
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("authorize"),
        "{}",
        String::from_utf8_lossy(&early.stderr)
    );
    authorize(&command).await;

    let status = json(&["csp", "webhook", "status", "--connection", "c", "--json"]);
    assert_eq!(status["registration"], Value::Null, "{status}");
    assert!(
        status["supported_events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "subscription-updated"),
        "{status}"
    );

    // The receiver: serve with the emulator's root, its host and plain http allowed.
    let roots = roots.to_str().unwrap().to_owned();
    let mut serve = command(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--no-scheduler",
        "--partner-webhook-roots",
        &roots,
        "--partner-webhook-certificate-host",
        "127.0.0.1",
        "--partner-webhook-allow-http",
    ]);
    let mut child = serve
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _serve = Serve(child);
    let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let url = format!("{}/webhooks/partner-center", ready["url"].as_str().unwrap());

    let registered = json(&[
        "csp",
        "webhook",
        "register",
        "--connection",
        "c",
        "--url",
        &url,
        "--json",
    ]);
    assert_eq!(registered["WebhookUrl"], url.as_str(), "{registered}");
    let events = registered["WebhookEvents"].as_array().unwrap();
    assert!(events.iter().any(|e| e == "subscription-updated"), "{registered}");
    let human = run(&["csp", "webhook", "status", "--connection", "c"]);
    assert!(human.contains(&format!("registered: {url}")), "{human}");

    // A test delivery reaches serve, is verified and answered 2xx.
    let tested = json(&[
        "csp",
        "webhook",
        "send-test",
        "--connection",
        "c",
        "--wait",
        "20",
        "--json",
    ]);
    assert_eq!(tested["status"], "completed", "{tested}");
    let delivered = emu.webhook_deliveries();
    assert!(
        delivered
            .iter()
            .any(|d| d.event_name == "test-created" && d.status == Some(200)),
        "{delivered:?}"
    );

    let removed = json(&["csp", "webhook", "unregister", "--connection", "c", "--json"]);
    assert_eq!(removed["removed"], true);
    let status = json(&["csp", "webhook", "status", "--connection", "c", "--json"]);
    assert_eq!(status["registration"], Value::Null);
    assert!(run(&["csp", "webhook", "unregister", "--connection", "c"]).contains("no registration"));

    // Webhook flags without the roots: serve refuses to start and says what is missing.
    let refused = command(&["serve", "--listen", "127.0.0.1:0", "--partner-webhook-allow-http"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--partner-webhook-roots"));
    emu.shutdown().await;
}

/// `connection authorize`: the browser's part is a GET of the printed URL (the emulator approves
/// at once and redirects to the command's loopback listener).
async fn authorize(command: &dyn Fn(&[&str]) -> Command) {
    let mut child = command(&["connection", "authorize", "--name", "c", "--timeout", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
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
    let page = reqwest::get(&url).await.unwrap();
    assert!(page.status().is_success(), "{url}");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `deskbridge tenants consent`: a customer tenant without the GDAP app's consent, found by a
/// sync, is consented through the printed URL (the emulator approves at once and redirects to the
/// command's loopback listener); the command then shows the check's point for the tenant, which
/// passes, and `tenants list` shows the grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_admin_consent_is_granted_from_the_cli_and_checked() {
    let mut world = World::generate(&GenerateOptions {
        seed: 23,
        tenants: 2,
        users_per_tenant: Some(2),
        ..GenerateOptions::default()
    })
    .unwrap();
    let partner_id = world.partner_tenant_id.clone().unwrap();
    let customers: Vec<String> = world
        .tenants
        .iter()
        .filter(|t| t.id != partner_id)
        .map(|t| t.id.clone())
        .collect();
    for tenant in &mut world.tenants {
        if tenant.id == partner_id {
            for r in &mut tenant.gdap_relationships {
                r.status = "active".into();
            }
        }
    }
    let emu = Emulator::start(EmulatorConfig::new(world)).await.unwrap();
    emu.set_auto_approve(true);
    let summary = emu.summary();
    let app = |kind: &str| summary.apps.iter().find(|a| a.kind == kind).unwrap().clone();
    let (partner, gdap) = (app("partner_center"), app("gdap_multi_tenant"));
    let http = reqwest::Client::new();
    for (i, tenant) in customers.iter().enumerate() {
        for (path, body) in [
            (
                format!("/partner/gdap/{tenant}"),
                serde_json::json!({ "status": "active" }),
            ),
            (
                "/partner/consent".to_owned(),
                serde_json::json!({ "client_id": gdap.client_id, "tenant": tenant, "consented": i != 0 }),
            ),
        ] {
            let r = http
                .put(format!("{}{path}", summary.admin_url))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let command = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_deskbridge"));
        c.args(args)
            .env("DESKBRIDGE_ALLOWED_ENDPOINT_HOSTS", "127.0.0.1")
            .env("DESKBRIDGE_DATA_DIR", dir.path())
            .env_remove("DESKBRIDGE_DATABASE_URL")
            .env_remove("DESKBRIDGE_SECRET_KEY")
            .env_remove("DESKBRIDGE_KEY_FILE")
            .env("PC_SECRET", partner.client_secret.clone().unwrap_or_default())
            .env("GDAP_SECRET", gdap.client_secret.clone().unwrap_or_default());
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
    run(&[
        "connection",
        "add",
        "csp",
        "--name",
        "c",
        "--partner-tenant-id",
        &partner_id,
        "--partner-client-id",
        &partner.client_id,
        "--partner-client-secret-env",
        "PC_SECRET",
        "--gdap-client-id",
        &gdap.client_id,
        "--gdap-secret-env",
        "GDAP_SECRET",
        "--authority-host",
        &summary.authority_host,
        "--graph-url",
        &summary.graph_url,
        "--partner-center-url",
        &summary.partner_center_url,
        "--partner-api-url",
        &summary.partner_api_url,
    ]);
    authorize(&command).await;
    // The sync finds both tenants; the one without consent is reported, not imported.
    let synced = command(&["sync", "--connection", "c"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&synced.stdout).contains("AADSTS7000229")
            || String::from_utf8_lossy(&synced.stderr).contains("AADSTS7000229"),
        "{}",
        String::from_utf8_lossy(&synced.stdout)
    );
    let listed = run(&["tenants", "list", "--connection", "c"]);
    assert!(
        listed.contains("unknown") && !listed.contains("granted"),
        "{listed}"
    );

    let mut child = command(&[
        "tenants",
        "consent",
        "--connection",
        "c",
        "--tenant",
        &customers[0],
        "--timeout",
        "60",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
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
    assert!(
        url.contains(&format!("/{}/v2.0/adminconsent?", customers[0])),
        "{url}"
    );
    let page = reqwest::get(&url).await.unwrap();
    assert!(page.status().is_success(), "{url}");
    let mut rest = Vec::new();
    while let Some(line) = lines.recv().await {
        rest.push(line);
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let rest = rest.join("\n");
    assert!(
        out.status.success(),
        "{rest}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(rest.contains("admin consent granted"), "{rest}");
    assert!(rest.contains("pass  tenant "), "the tenant's check point: {rest}");
    let listed = run(&["tenants", "list", "--connection", "c", "--json"]);
    let entries: Value = serde_json::from_str(&listed).unwrap();
    let granted: Vec<&Value> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["consented_at"].is_null())
        .collect();
    assert_eq!(granted.len(), 1, "{listed}");
    assert_eq!(granted[0]["tenant_id"], customers[0].as_str());

    // The tenant's own relationship type, and back to the connection's.
    let set = run(&[
        "tenants",
        "set",
        "--connection",
        "c",
        "--tenant",
        &customers[0],
        "--relationship-type",
        "dap",
    ]);
    assert!(set.contains("relationship type dap"), "{set}");
    let listed = run(&["tenants", "list", "--connection", "c"]);
    assert!(
        listed.to_lowercase().contains("relationship_type") && listed.contains("dap"),
        "{listed}"
    );
    let wrong = command(&[
        "tenants",
        "set",
        "--connection",
        "c",
        "--tenant",
        &customers[0],
        "--relationship-type",
        "cap",
    ])
    .output()
    .unwrap();
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("is not one of gdap, dap"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    let back = run(&[
        "tenants",
        "set",
        "--connection",
        "c",
        "--tenant",
        &customers[0],
        "--relationship-type",
        "connection",
    ]);
    assert!(back.contains("relationship type as the connection's"), "{back}");
    emu.shutdown().await;
}
