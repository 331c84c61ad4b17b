//! The sync agent across processes: three `deskbridge worker` processes share one PostgreSQL
//! database and a dozen connections. Every scheduled run happens exactly once; a worker killed
//! with SIGKILL mid-run loses its lease, another worker takes the job over, and the desk ends
//! the same as after an undisturbed run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use serde_json::Value;

const CONNECTIONS: usize = 12;

fn deskbridge(data: &Path, database: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deskbridge"));
    cmd.env("DESKBRIDGE_ALLOWED_ENDPOINT_HOSTS", "127.0.0.1");
    cmd.env("DESKBRIDGE_DATA_DIR", data)
        .env_remove("DESKBRIDGE_SECRET_KEY")
        .env_remove("DESKBRIDGE_KEY_FILE")
        .env("DESKBRIDGE_LOG", "error");
    match database {
        Some(url) => cmd.env("DESKBRIDGE_DATABASE_URL", url),
        None => cmd.env_remove("DESKBRIDGE_DATABASE_URL"),
    };
    cmd
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn add_connections(data: &Path, database: Option<&str>, emu: &Emulator) {
    let summary = emu.summary();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .unwrap();
    for (i, tenant) in summary.tenants.iter().take(CONNECTIONS).enumerate() {
        run_ok(
            deskbridge(data, database)
                .args(["connection", "add", "entra", "--name", &format!("c{i:02}")])
                .args(["--tenant-id", &tenant.id, "--client-id", &app.client_id])
                .args(["--client-secret-env", "AGENT_TEST_SECRET"])
                .args([
                    "--authority-host",
                    &summary.authority_host,
                    "--graph-url",
                    &summary.graph_url,
                ])
                .args(["--customer", &format!("Customer {i:02}")])
                .env("AGENT_TEST_SECRET", app.client_secret.clone().unwrap()),
        );
    }
}

/// The desk's users keyed by Azure object id, with the fields a sync writes (store ids blanked).
fn desk(data: &Path, database: Option<&str>) -> BTreeMap<String, Value> {
    let users: Vec<Value> = serde_json::from_str(&run_ok(deskbridge(data, database).args([
        "directory",
        "users",
        "--json",
    ])))
    .unwrap();
    let mut out = BTreeMap::new();
    for user in users {
        let key = user["external_id"].as_str().unwrap().to_owned();
        let kept = serde_json::json!({
            "name": user["name"], "email": user["email"], "network_login": user["network_login"],
            "active": user["active"], "licences": user["licences"].as_array().map_or(0, Vec::len),
        });
        assert!(
            out.insert(key.clone(), kept).is_none(),
            "user {key} is on the desk twice"
        );
    }
    out
}

fn jobs(data: &Path, database: &str) -> Vec<Value> {
    serde_json::from_str(&run_ok(
        deskbridge(data, Some(database)).args(["runs", "jobs", "--json", "--limit", "1000"]),
    ))
    .unwrap()
}

struct Workers(Vec<(String, Child, String)>);

impl Drop for Workers {
    fn drop(&mut self) {
        for (_, child, _) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn_worker(data: &Path, database: &str, id: &str) -> (String, Child, String) {
    let mut child = deskbridge(data, Some(database))
        .args([
            "worker",
            "--worker-id",
            id,
            "--lease-secs",
            "3",
            "--heartbeat-ms",
            "500",
        ])
        .args([
            "--poll-ms",
            "100",
            "--scheduler-tick-ms",
            "100",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let listening: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    (
        id.to_owned(),
        child,
        listening["listening"].as_str().unwrap().to_owned(),
    )
}

async fn fresh_database(admin: &str) -> (String, String) {
    let name = format!("agent_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let pool = sqlx::PgPool::connect(admin).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let mut url = url::Url::parse(admin).unwrap();
    url.set_path(&name);
    (url.to_string(), name)
}

async fn drop_database(admin: &str, name: &str) {
    let pool = sqlx::PgPool::connect(admin).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_run_every_scheduled_job_once_and_take_over_from_a_killed_one() {
    let admin = match std::env::var("DESKBRIDGE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("DESKBRIDGE_TEST_POSTGRES_URL must be set in CI")
        }
        _ => {
            eprintln!("skipping: DESKBRIDGE_TEST_POSTGRES_URL is not set");
            return;
        }
    };
    let world = World::generate(&GenerateOptions {
        seed: 5,
        tenants: CONNECTIONS,
        users_per_tenant: Some(400),
        ..GenerateOptions::default()
    })
    .unwrap();
    let mut config = EmulatorConfig::new(world);
    // Latency makes each run last long enough to be killed in the middle of it.
    config.faults.latency_ms = 40;
    let emu = Emulator::start(config).await.unwrap();

    // The reference: each connection synced once, undisturbed, in an embedded database.
    let reference_dir = tempfile::tempdir().unwrap();
    add_connections(reference_dir.path(), None, &emu);
    for i in 0..CONNECTIONS {
        run_ok(deskbridge(reference_dir.path(), None).args(["sync", "--connection", &format!("c{i:02}")]));
    }
    let reference = desk(reference_dir.path(), None);
    assert!(reference.len() > CONNECTIONS * 300, "{} users", reference.len());
    // The workers' runs read each chain of pages one round trip at a time: slower round trips
    // keep them in flight long enough to be caught and killed mid-run.
    let mut faults = emu.faults();
    faults.latency_ms = 250;
    emu.set_faults(faults);

    let (database, db_name) = fresh_database(&admin).await;
    let dir = tempfile::tempdir().unwrap();
    add_connections(dir.path(), Some(&database), &emu);
    for i in 0..CONNECTIONS {
        run_ok(deskbridge(dir.path(), Some(&database)).args([
            "schedule",
            "add",
            "--connection",
            &format!("c{i:02}"),
            "--every",
            "1h",
        ]));
    }
    let mut workers = Workers(
        ["w1", "w2", "w3"]
            .iter()
            .map(|id| spawn_worker(dir.path(), &database, id))
            .collect(),
    );

    // Kill the first worker seen running a job that has read some pages.
    let started = Instant::now();
    let (killed_worker, killed_job) = loop {
        assert!(started.elapsed() < Duration::from_secs(120), "no job got going");
        let all = jobs(dir.path(), &database);
        assert!(
            all.len() < CONNECTIONS
                || all
                    .iter()
                    .any(|j| j["status"] == "queued" || j["status"] == "running"),
            "every job finished before one could be caught mid-run: make the runs longer"
        );
        let running = all
            .into_iter()
            .find(|j| j["status"] == "running" && j["progress"]["pages"].as_u64().unwrap_or(0) >= 2);
        if let Some(job) = running {
            let owner = job["lease_owner"].as_str().unwrap().to_owned();
            let (_, child, _) = workers.0.iter_mut().find(|(id, _, _)| *id == owner).unwrap();
            child.kill().unwrap(); // SIGKILL: no chance to hand the job back
            child.wait().unwrap();
            break (owner, job["id"].as_i64().unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    workers.0.retain(|(id, _, _)| *id != killed_worker);

    // Wait for every job to end.
    let finished = loop {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "jobs did not finish: {:#?}",
            jobs(dir.path(), &database)
        );
        let all = jobs(dir.path(), &database);
        if all.len() >= CONNECTIONS
            && all
                .iter()
                .all(|j| j["status"] != "queued" && j["status"] != "running")
        {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    // Every scheduled due time ran exactly once, and every run succeeded.
    assert_eq!(finished.len(), CONNECTIONS, "{finished:#?}");
    let mut per_schedule = BTreeMap::new();
    for job in &finished {
        assert_eq!(job["status"], "succeeded", "{job:#}");
        assert_eq!(job["origin"], "schedule");
        *per_schedule
            .entry(job["schedule_id"].as_i64().unwrap())
            .or_insert(0) += 1;
    }
    assert_eq!(per_schedule.len(), CONNECTIONS);
    assert!(per_schedule.values().all(|n| *n == 1), "{per_schedule:?}");

    // The killed worker's job was taken over once by a survivor.
    let job = finished.iter().find(|j| j["id"] == killed_job).unwrap();
    assert_eq!(job["takeovers"], 1, "{job:#}");
    assert_eq!(job["attempts"], 2, "{job:#}");
    let mut takeovers = 0.0;
    let http = reqwest::Client::new();
    for (_, _, addr) in &workers.0 {
        let text = http
            .get(format!("{addr}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for line in text
            .lines()
            .filter(|l| l.starts_with("deskbridge_lease_takeovers_total"))
        {
            takeovers += line.rsplit(' ').next().unwrap().parse::<f64>().unwrap();
        }
        assert!(
            text.contains(
                "deskbridge_source_requests_total{source=\"entra\",endpoint=\"users\",status=\"200\"}"
            ),
            "{text}"
        );
        let health = http.get(format!("{addr}/healthz")).send().await.unwrap();
        assert!(health.status().is_success());
    }
    assert_eq!(takeovers, 1.0);

    // The desk is the same as after the undisturbed runs.
    let after = desk(dir.path(), Some(&database));
    assert_eq!(after.len(), reference.len(), "same number of users");
    for (id, user) in &reference {
        assert_eq!(after.get(id), Some(user), "user {id}");
    }

    // Graceful shutdown: SIGTERM, and the survivors exit cleanly.
    for (_, child, _) in &mut workers.0 {
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
    for (id, child, _) in &mut workers.0 {
        let status = child.wait().unwrap();
        assert!(status.success(), "worker {id} exited with {status}");
    }
    workers.0.clear();
    drop_database(&admin, &db_name).await;
    emu.shutdown().await;
}

/// `deskbridge check --json` keeps the contract (name, ok, detail, remedy per point) and its exit
/// status says whether every point passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_prints_each_point_and_fails_when_one_fails() {
    let world = World::generate(&GenerateOptions {
        seed: 8,
        tenants: 2,
        users_per_tenant: Some(5),
        ..GenerateOptions::default()
    })
    .unwrap();
    let emu = Emulator::start(EmulatorConfig::new(world)).await.unwrap();
    let summary = emu.summary();
    let dir = tempfile::tempdir().unwrap();
    for (i, (name, kind)) in [("good", "multi_tenant_secret"), ("expired", "expired_secret")]
        .into_iter()
        .enumerate()
    {
        let app = summary.apps.iter().find(|a| a.kind == kind).unwrap();
        run_ok(
            deskbridge(dir.path(), None)
                .args(["connection", "add", "entra", "--name", name])
                .args([
                    "--tenant-id",
                    &summary.tenants[i].id,
                    "--client-id",
                    &app.client_id,
                ])
                .args(["--client-secret-env", "CHECK_TEST_SECRET"])
                .args([
                    "--authority-host",
                    &summary.authority_host,
                    "--graph-url",
                    &summary.graph_url,
                ])
                .env("CHECK_TEST_SECRET", app.client_secret.clone().unwrap()),
        );
    }
    let good = deskbridge(dir.path(), None)
        .args(["check", "--connection", "good", "--json"])
        .output()
        .unwrap();
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    let report: Value = serde_json::from_slice(&good.stdout).unwrap();
    assert_eq!(report["ok"], true);
    for p in report["points"].as_array().unwrap() {
        for key in ["name", "ok", "detail", "remedy"] {
            assert!(p.get(key).is_some(), "{p}");
        }
    }
    let expired = deskbridge(dir.path(), None)
        .args(["check", "--connection", "expired"])
        .output()
        .unwrap();
    assert!(!expired.status.success());
    let text = String::from_utf8(expired.stdout).unwrap();
    assert!(text.contains("FAIL  token"), "{text}");
    assert!(text.contains("remedy: The client secret has expired"), "{text}");
    emu.shutdown().await;
}

/// `deskbridge serve` on the embedded SQLite database: /healthz, a queued run processed by its
/// worker, the run in /metrics, and a clean exit on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_queued_jobs_and_serves_metrics_and_health() {
    let world = World::generate(&GenerateOptions {
        seed: 12,
        tenants: 1,
        users_per_tenant: Some(20),
        ..GenerateOptions::default()
    })
    .unwrap();
    let emu = Emulator::start(EmulatorConfig::new(world)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let summary = emu.summary();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .unwrap();
    run_ok(
        deskbridge(dir.path(), None)
            .args(["connection", "add", "entra", "--name", "contoso"])
            .args([
                "--tenant-id",
                &summary.tenants[0].id,
                "--client-id",
                &app.client_id,
            ])
            .args(["--client-secret-env", "SERVE_TEST_SECRET"])
            .args([
                "--authority-host",
                &summary.authority_host,
                "--graph-url",
                &summary.graph_url,
            ])
            .env("SERVE_TEST_SECRET", app.client_secret.clone().unwrap()),
    );
    let mut child = deskbridge(dir.path(), None)
        .args(["serve", "--listen", "127.0.0.1:0", "--poll-ms", "100"])
        .env("DESKBRIDGE_METRICS_TOKEN", "metrics-token-for-the-test")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let listening: Value = serde_json::from_str(&line).unwrap();
    let base = listening["listening"].as_str().unwrap().to_owned();
    let mut server = Workers(vec![("serve".into(), child, base.clone())]);
    let http = reqwest::Client::new();
    let health: Value = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");

    let queued: Value = serde_json::from_str(&run_ok(deskbridge(dir.path(), None).args([
        "runs",
        "start",
        "--connection",
        "contoso",
        "--json",
    ])))
    .unwrap();
    assert_eq!(queued["queued"], true);
    let started = Instant::now();
    let job = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the job did not finish"
        );
        let all: Vec<Value> = serde_json::from_str(&run_ok(
            deskbridge(dir.path(), None).args(["runs", "jobs", "--json"]),
        ))
        .unwrap();
        if all[0]["status"] != "queued" && all[0]["status"] != "running" {
            break all[0].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job["status"], "succeeded", "{job:#}");
    assert!(job["records"].as_i64().unwrap() > 0, "{job:#}");
    let metrics = http
        .get(format!("{base}/metrics"))
        .bearer_auth("metrics-token-for-the-test")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("deskbridge_runs_total{status=\"succeeded\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("deskbridge_jobs{status=\"queued\"} 0"),
        "{metrics}"
    );

    let (_, child, _) = &mut server.0[0];
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success());
    server.0.clear();
    emu.shutdown().await;
}

/// `deskbridge schedule` and `deskbridge runs` manage the queue from the command line.
#[test]
fn schedules_and_runs_are_managed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        deskbridge(dir.path(), None)
            .args(["connection", "add", "entra", "--name", "contoso"])
            .args([
                "--tenant-id",
                "00000000-0000-0000-0000-00000000000a",
                "--client-id",
                "00000000-0000-0000-0000-00000000000b",
            ])
            .args(["--client-secret-env", "CLI_TEST_SECRET"])
            .env("CLI_TEST_SECRET", "abc~not-used-by-this-test"),
    );
    let added: Value = serde_json::from_str(&run_ok(deskbridge(dir.path(), None).args([
        "schedule",
        "add",
        "--connection",
        "contoso",
        "--cron",
        "30 1 * * *",
        "--time-zone",
        "Europe/London",
        "--window",
        "01:00-05:00",
        "--json",
    ])))
    .unwrap();
    let id = added["id"].as_i64().unwrap().to_string();
    assert!(
        added["next_due"].as_str().unwrap().contains("T01:30:00")
            || added["next_due"].as_str().unwrap().contains("T00:30:00")
    );
    // Refused, with the reason: an unknown entity, a bad cron field, an unknown zone.
    for bad in [
        vec!["--entity", "devices", "--every", "1h"],
        vec!["--cron", "0 25 * * *"],
        vec!["--every", "1h", "--time-zone", "Mars/Olympus"],
    ] {
        let out = deskbridge(dir.path(), None)
            .args(["schedule", "add", "--connection", "contoso"])
            .args(&bad)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad:?} was accepted");
        assert!(!out.stderr.is_empty());
    }
    let list: Vec<Value> = serde_json::from_str(&run_ok(
        deskbridge(dir.path(), None).args(["schedule", "list", "--json"]),
    ))
    .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["window"], "01:00-05:00");
    let started: Vec<Value> = serde_json::from_str(&run_ok(deskbridge(dir.path(), None).args([
        "schedule",
        "start-all",
        "--json",
    ])))
    .unwrap();
    assert_eq!(started[0]["queued"], true);
    let again: Vec<Value> = serde_json::from_str(&run_ok(deskbridge(dir.path(), None).args([
        "schedule",
        "start-all",
        "--json",
    ])))
    .unwrap();
    assert_eq!(
        again[0]["queued"], false,
        "one queued job per connection and entity"
    );
    let job = started[0]["job_id"].as_i64().unwrap().to_string();
    assert!(run_ok(deskbridge(dir.path(), None).args(["runs", "cancel", &job])).contains("cancelled"));
    let jobs: Vec<Value> = serde_json::from_str(&run_ok(
        deskbridge(dir.path(), None).args(["runs", "jobs", "--json"]),
    ))
    .unwrap();
    assert_eq!(jobs[0]["status"], "cancelled");
    run_ok(deskbridge(dir.path(), None).args(["schedule", "disable", &id]));
    run_ok(deskbridge(dir.path(), None).args(["schedule", "remove", &id]));
    assert!(
        !deskbridge(dir.path(), None)
            .args(["schedule", "remove", &id])
            .output()
            .unwrap()
            .status
            .success()
    );
}

/// `deskbridge serve --graph-notification-url`: the Entra connection is subscribed to its
/// tenant's users and groups once the listener is up, and a change in the tenant reaches the
/// desk through a notification and the delta round it queues (no schedule exists). A URL Graph
/// could not deliver to (plain http on another host) stops serve before it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_subscribes_to_graph_and_a_notified_change_reaches_the_desk() {
    let world = World::generate(&GenerateOptions {
        seed: 21,
        tenants: 1,
        users_per_tenant: Some(6),
        ..GenerateOptions::default()
    })
    .unwrap();
    let emu = Emulator::start(EmulatorConfig::new(world)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let summary = emu.summary();
    let tenant = summary.tenants[0].id.clone();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .unwrap();
    run_ok(
        deskbridge(dir.path(), None)
            .args(["connection", "add", "entra", "--name", "contoso"])
            .args(["--tenant-id", &tenant, "--client-id", &app.client_id])
            .args(["--client-secret-env", "SERVE_TEST_SECRET"])
            .args([
                "--authority-host",
                &summary.authority_host,
                "--graph-url",
                &summary.graph_url,
            ])
            .env("SERVE_TEST_SECRET", app.client_secret.clone().unwrap()),
    );
    // Notifications trigger delta rounds: a connection without delta queries is not subscribed.
    run_ok(deskbridge(dir.path(), None).args(["connection", "delta", "--name", "contoso", "--enable"]));
    run_ok(deskbridge(dir.path(), None).args(["sync", "--connection", "contoso"]));

    let refused = deskbridge(dir.path(), None)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--graph-notification-url",
            "http://desk.example.com",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("--graph-notification-url") && said.contains("https"),
        "{said}"
    );

    // The public URL must be known before serve starts: a free port, then serve on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = deskbridge(dir.path(), None)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--poll-ms",
            "100",
        ])
        .args(["--graph-notification-url", &base])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _server = Workers(vec![("serve".into(), child, base.clone())]);
    let started = Instant::now();
    while emu.graph_subscriptions().len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve did not subscribe"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        emu.graph_subscriptions()
            .iter()
            .all(|s| s.notification_url == format!("{base}/webhooks/graph"))
    );

    let user = emu.with_world(|w| {
        w.tenant(&tenant)
            .unwrap()
            .live_users()
            .find(|u| u.user_type == "Member")
            .unwrap()
            .id
            .clone()
    });
    let patch = serde_json::json!({ "displayName": "Notified Name" });
    emu.with_world_mut(|w| w.update_user(&tenant, &user, patch.as_object().unwrap()))
        .unwrap();
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the change did not reach the desk"
        );
        let users: Vec<Value> = serde_json::from_str(&run_ok(deskbridge(dir.path(), None).args([
            "directory",
            "users",
            "--json",
        ])))
        .unwrap();
        if users.iter().any(|u| u["name"] == "Notified Name") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let jobs: Vec<Value> = serde_json::from_str(&run_ok(
        deskbridge(dir.path(), None).args(["runs", "jobs", "--json"]),
    ))
    .unwrap();
    assert!(
        jobs.iter()
            .any(|j| j["origin"] == "notification" && j["status"] == "succeeded"),
        "{jobs:#?}"
    );
    emu.shutdown().await;
}
