//! Running many tenants unattended, from the command line, on SQLite and PostgreSQL: the health
//! view of `connection list` (customer, last and next run, open errors; sorting; `--failing`),
//! one run history in `runs list`, `runs start` saying when no worker is there, and a `sync`
//! stopped by SIGTERM that ends its run as interrupted and is resumed by the next one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{deskbridge, drop_postgres, json_of, postgres, run_ok};
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use serde_json::Value;

async fn emulator(users: usize) -> Emulator {
    let world = World::generate(&GenerateOptions {
        seed: 8,
        tenants: 2,
        users_per_tenant: Some(users),
        ..GenerateOptions::default()
    })
    .unwrap();
    Emulator::start(EmulatorConfig::new(world)).await.unwrap()
}

/// Adds an Entra connection for the emulator's tenant `tenant`, with a working or a wrong secret.
fn add(data: &Path, db: Option<&str>, emu: &Emulator, name: &str, tenant: usize, secret_ok: bool) {
    let summary = emu.summary();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .unwrap();
    let secret = if secret_ok {
        app.client_secret.clone().unwrap()
    } else {
        "not-the-secret".to_owned()
    };
    run_ok(
        deskbridge(data, db)
            .args(["connection", "add", "entra", "--name", name])
            .args([
                "--tenant-id",
                &summary.tenants[tenant].id,
                "--client-id",
                &app.client_id,
            ])
            .args(["--client-secret-env", "HEALTH_TEST_SECRET"])
            .args([
                "--authority-host",
                &summary.authority_host,
                "--graph-url",
                &summary.graph_url,
            ])
            .args(["--customer", &format!("{name} Ltd")])
            .env("HEALTH_TEST_SECRET", secret),
    );
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

async fn health_and_history(data: &Path, db: Option<&str>) {
    let emu = emulator(15).await;
    add(data, db, &emu, "alpha", 0, true);
    add(data, db, &emu, "beta", 1, false);
    run_ok(deskbridge(data, db).args(["sync", "--connection", "alpha"]));
    let failed = deskbridge(data, db)
        .args(["sync", "--connection", "beta"])
        .output()
        .unwrap();
    assert!(!failed.status.success(), "a wrong secret fails the sync");
    run_ok(deskbridge(data, db).args(["schedule", "add", "--connection", "alpha", "--every", "1h"]));

    // The health view: customer, last run and counts, next run, open errors.
    let list = json_of(deskbridge(data, db).args(["connection", "list", "--json"]));
    assert_eq!(names(&list), ["alpha", "beta"]);
    let alpha = &list[0];
    assert_eq!(alpha["customer"], "alpha Ltd", "{alpha:#}");
    assert_eq!(alpha["health"], "ok", "{alpha:#}");
    assert_eq!(alpha["last_run"]["status"], "succeeded");
    assert_eq!(alpha["last_run"]["entity"], "directory");
    assert!(
        alpha["last_run"]["counts"]["created"].as_i64().unwrap() > 0,
        "{alpha:#}"
    );
    assert!(
        alpha["next_run"].is_string(),
        "a scheduled connection has a next run: {alpha:#}"
    );
    assert_eq!(alpha["open_errors"], 0);
    let beta = &list[1];
    assert_eq!(beta["health"], "failing", "{beta:#}");
    assert_eq!(beta["last_run"]["status"], "failed");
    assert!(beta["open_errors"].as_i64().unwrap() >= 1, "{beta:#}");
    assert!(beta["next_run"].is_null());

    // Sorting and the failing filter.
    let by_errors = json_of(deskbridge(data, db).args(["connection", "list", "--json", "--sort", "errors"]));
    assert_eq!(names(&by_errors), ["beta", "alpha"]);
    let by_status = json_of(deskbridge(data, db).args(["connection", "list", "--json", "--sort", "status"]));
    assert_eq!(names(&by_status), ["beta", "alpha"]);
    let failing = json_of(deskbridge(data, db).args(["connection", "list", "--json", "--failing"]));
    assert_eq!(names(&failing), ["beta"]);
    let table = run_ok(deskbridge(data, db).args(["connection", "list", "--failing"]));
    assert!(
        table.contains("beta Ltd") && table.contains("failing") && !table.contains("alpha"),
        "{table}"
    );
    let bad = deskbridge(data, db)
        .args(["connection", "list", "--sort", "size"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("name, status, last-run, errors"));

    // One run history: both CLI runs, newest first, with names, entity, duration, who queued it.
    let runs = json_of(deskbridge(data, db).args(["runs", "list", "--json"]));
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_eq!(runs[0]["connection"], "beta");
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(runs[1]["connection"], "alpha");
    assert_eq!(runs[1]["entity"], "directory");
    assert_eq!(runs[1]["queued_by"], "direct");
    assert!(runs[1]["duration_seconds"].as_i64().is_some(), "{:#}", runs[1]);
    assert!(runs[1]["created"].as_i64().unwrap() > 0);
    let only_alpha = json_of(deskbridge(data, db).args(["runs", "list", "--json", "--connection", "alpha"]));
    assert_eq!(only_alpha.as_array().unwrap().len(), 1);
    let only_failed = json_of(deskbridge(data, db).args(["runs", "list", "--json", "--status", "failed"]));
    assert_eq!(only_failed[0]["connection"], "beta");
    assert_eq!(only_failed.as_array().unwrap().len(), 1);
    let unknown = deskbridge(data, db)
        .args(["runs", "list", "--connection", "gamma"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no connection named \"gamma\""));

    // Queueing a run with no worker about says so, and how to start one; the job is in the history.
    let start = deskbridge(data, db)
        .args(["runs", "start", "--connection", "alpha"])
        .output()
        .unwrap();
    assert!(start.status.success());
    let said = String::from_utf8_lossy(&start.stderr);
    assert!(
        said.contains("no worker is running") && said.contains("deskbridge serve"),
        "{said}"
    );
    let runs = json_of(deskbridge(data, db).args(["runs", "list", "--json"]));
    assert_eq!(runs[0]["status"], "queued", "{runs:#}");
    assert_eq!(runs[0]["connection"], "alpha");
    assert!(runs[0]["job_id"].is_i64());
    let table = run_ok(deskbridge(data, db).args(["runs", "list"]));
    assert!(
        table.contains("waiting for a worker") && table.contains("direct"),
        "{table}"
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_list_shows_health_and_runs_list_every_run_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    health_and_history(dir.path(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_list_shows_health_and_runs_list_every_run_postgres() {
    let Some((url, admin, name)) = postgres("health").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    health_and_history(dir.path(), Some(&url)).await;
    drop_postgres(&admin, &name).await;
}

async fn sigterm_interrupts(data: &Path, db: Option<&str>) {
    let world = World::generate(&GenerateOptions {
        seed: 9,
        tenants: 1,
        users_per_tenant: Some(1_000),
        ..GenerateOptions::default()
    })
    .unwrap();
    let mut config = EmulatorConfig::new(world);
    // Slow round trips keep the sync going long enough to be stopped in the middle.
    config.faults.latency_ms = 300;
    let emu = Emulator::start(config).await.unwrap();
    add(data, db, &emu, "slow", 0, true);
    let child = deskbridge(data, db)
        .args(["sync", "--connection", "slow", "--full"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until its run is in the history as running.
    let started = Instant::now();
    let run = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run never started"
        );
        let runs = json_of(deskbridge(data, db).args(["runs", "list", "--json"]));
        if let Some(run) = runs.as_array().unwrap().first()
            && run["status"] == "running"
        {
            break run["run_id"].as_i64().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("interrupted by SIGTERM"), "{said}");
    assert!(
        said.contains(&format!("run {run} is marked interrupted")),
        "{said}"
    );
    assert!(
        said.contains("the next run resumes from the last committed tenant"),
        "{said}"
    );
    let runs = json_of(deskbridge(data, db).args(["runs", "list", "--json"]));
    assert_eq!(runs[0]["run_id"], run);
    assert_eq!(runs[0]["status"], "interrupted", "{:#}", runs[0]);
    // The next sync runs through.
    let mut faults = emu.faults();
    faults.latency_ms = 0;
    emu.set_faults(faults);
    let next = json_of(deskbridge(data, db).args(["sync", "--connection", "slow", "--json"]));
    assert_eq!(next["status"], "succeeded", "{next:#}");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_stopped_by_sigterm_ends_its_run_as_interrupted_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    sigterm_interrupts(dir.path(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_stopped_by_sigterm_ends_its_run_as_interrupted_postgres() {
    let Some((url, admin, name)) = postgres("health").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    sigterm_interrupts(dir.path(), Some(&url)).await;
    drop_postgres(&admin, &name).await;
}
