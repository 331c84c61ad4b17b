//! The pieces every scenario uses: the emulator (in this process), a fresh store with one Entra
//! connection per tenant, and the sync as a child `deskbridge sync --all` process whose time,
//! memory and CPU are measured apart from the emulator's.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use deskbridge_connector_entra::{NewCredential, NewEntraConnection, add_entra_connection};
use deskbridge_core::{SharedClock, SystemClock};
use deskbridge_emulator::{Emulator, EmulatorConfig, Faults, GenerateOptions, Summary, World};
use deskbridge_secrets::KeyFile;
use deskbridge_store::{Store, StoreOptions};
use serde::Serialize;
use serde_json::Value;
use sqlx::{ConnectOptions as _, Connection as _};
use tokio::io::AsyncReadExt as _;

use crate::floor::{self, Floor, TenantShape};
use crate::procfs;

/// The emulator of one scenario, serving a generated world from this process.
pub struct Served {
    pub emu: Emulator,
    pub summary: Summary,
    /// Tenant shapes in the order of `summary.tenants`.
    pub shapes: Vec<TenantShape>,
}

/// What the dataset holds.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Dataset {
    pub tenants: u64,
    pub users: u64,
    pub groups: u64,
    pub memberships: u64,
}

impl Served {
    /// Generates `tenants` × `users` (same seed, same world) and serves it.
    pub async fn start(seed: u64, tenants: usize, users: usize, faults: Faults) -> anyhow::Result<Self> {
        let world = World::generate(&GenerateOptions {
            seed,
            tenants,
            users_per_tenant: Some(users),
            ..GenerateOptions::default()
        })?;
        let mut by_id = floor::shapes(&world);
        let mut config = EmulatorConfig::new(world);
        // Room for every request of the largest scenario, so the counts are complete.
        config.request_log_capacity = 4_000_000;
        config.faults = faults;
        let emu = Emulator::start(config).await?;
        let summary = emu.summary();
        let shapes = summary
            .tenants
            .iter()
            .map(|t| {
                by_id
                    .remove(&t.id)
                    .context("a tenant of the summary is not in the world")
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { emu, summary, shapes })
    }

    pub fn dataset(&self) -> Dataset {
        Dataset {
            tenants: self.shapes.len() as u64,
            users: self.shapes.iter().map(|s| s.users).sum(),
            groups: self.shapes.iter().map(|s| s.groups).sum(),
            memberships: self.shapes.iter().flat_map(|s| &s.members).sum(),
        }
    }

    /// The multi-tenant app every connection uses (so all share the per-app limits).
    pub fn app(&self) -> anyhow::Result<(&deskbridge_emulator::AppSummary, String)> {
        let app = self
            .summary
            .apps
            .iter()
            .find(|a| a.kind == "multi_tenant_secret")
            .context("the generated world has no multi-tenant app")?;
        let secret = app
            .client_secret
            .clone()
            .context("the multi-tenant app has no secret")?;
        Ok((app, secret))
    }

    /// Requests, resource units and 429s the emulator logged from `from` on.
    pub fn traffic_since(&self, from: usize) -> Traffic {
        let log = self.emu.request_log();
        let mut t = Traffic::default();
        for e in log.iter().skip(from) {
            if !e.path.contains("/v1.0/") {
                t.token_requests += 1;
                continue;
            }
            t.requests += 1;
            t.resource_units += u64::from(e.resource_units.unwrap_or(0));
            if e.status == 429 {
                t.throttled += 1;
            }
        }
        t
    }

    pub fn log_len(&self) -> usize {
        self.emu.request_log().len()
    }

    pub async fn shutdown(self) {
        self.emu.shutdown().await;
    }
}

/// What the emulator saw during a run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Traffic {
    /// Graph requests (retries included).
    pub requests: u64,
    pub resource_units: u64,
    /// 429 answers.
    pub throttled: u64,
    pub token_requests: u64,
}

/// Where a run's store lives: a fresh SQLite file, or a fresh PostgreSQL database that is
/// dropped afterwards.
pub struct Db {
    dir: PathBuf,
    postgres: Option<(String, String, String)>, // (server URL, database URL, database name)
}

impl Db {
    pub fn label(&self) -> &'static str {
        if self.postgres.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// A new SQLite database in `dir` (which must not hold one yet).
    pub fn sqlite(dir: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self { dir, postgres: None })
    }

    /// A new database on the PostgreSQL server of `server_url` (the key file lives in `dir`).
    pub async fn postgres(server_url: &str, dir: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let name = format!("deskbridge_bench_{}", uuid::Uuid::new_v4().simple());
        let mut url =
            url::Url::parse(server_url).with_context(|| format!("{server_url:?} is not a PostgreSQL URL"))?;
        let mut admin = admin(server_url)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(server_url)))?;
        // The name is ours: a fixed prefix and a UUID's hex digits.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .context("cannot create the benchmark's database (the user needs CREATEDB)")?;
        admin.close().await.ok();
        url.set_path(&format!("/{name}"));
        Ok(Self {
            dir,
            postgres: Some((server_url.to_owned(), url.to_string(), name)),
        })
    }

    pub async fn open(&self) -> anyhow::Result<Store> {
        let clock: SharedClock = Arc::new(SystemClock);
        let (keys, _) = KeyFile::new(self.dir.join("secret.key")).load_or_create()?;
        let options = StoreOptions::new(clock).with_keys(keys);
        let store = match &self.postgres {
            Some((_, url, _)) => Store::connect(url, options).await?,
            None => Store::open_sqlite_file(&self.dir.join("deskbridge.db"), options).await?,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The global options that point a `deskbridge` process at this store.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["--data-dir".into(), self.dir.display().to_string()];
        if let Some((_, url, _)) = &self.postgres {
            args.push("--database".into());
            args.push(url.clone());
        }
        args
    }

    /// Drops the PostgreSQL database (SQLite files go with the work directory).
    pub async fn remove(self) -> anyhow::Result<()> {
        if let Some((server, _, name)) = self.postgres {
            async {
                let mut admin = admin(&server).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await?;
                admin.close().await.ok();
                anyhow::Ok(())
            }
            .await
            .with_context(|| format!("cannot drop the benchmark's database {name}; drop it by hand"))?;
        }
        Ok(())
    }
}

/// A connection to the server for creating and dropping databases. Its statements are not
/// logged: DROP DATABASE waits for a checkpoint and often takes seconds, which is no news.
async fn admin(server_url: &str) -> anyhow::Result<sqlx::PgConnection> {
    let options: sqlx::postgres::PgConnectOptions = server_url.parse()?;
    Ok(options.disable_statement_logging().connect().await?)
}

fn redact(url: &str) -> String {
    deskbridge_core::redact::url(url)
}

/// Adds one Entra connection per tenant of the world (`bench-0`, `bench-1`, …).
pub async fn connect_all(db: &Db, world: &Served) -> anyhow::Result<()> {
    let store = db.open().await?;
    let (app, secret) = world.app()?;
    for (i, tenant) in world.summary.tenants.iter().enumerate() {
        add_entra_connection(
            &store,
            &NewEntraConnection {
                name: format!("bench-{i}"),
                tenant_id: tenant.id.clone(),
                client_id: app.client_id.clone(),
                credential: NewCredential::ClientSecret {
                    value: secret.clone(),
                    expires_at: None,
                },
                authority_host: Some(world.summary.authority_host.clone()),
                graph_url: Some(world.summary.graph_url.clone()),
                customer: Some(format!("{} ({i})", tenant.display_name)),
                enabled_instances: None,
                last_sign_in: false,
            },
        )
        .await
        .with_context(|| format!("cannot add the connection of tenant {}", tenant.id))?;
        by_group(&store, &format!("bench-{i}")).await?;
    }
    store.close().await;
    Ok(())
}

/// Turns on asset import for every bench connection, with the default asset settings (one type,
/// users by user principal name, serial numbers matched).
pub async fn import_assets(db: &Db) -> anyhow::Result<()> {
    let store = db.open().await?;
    let mut tx = store.begin(deskbridge_store::WriteContext::manual()).await?;
    let assets = serde_json::to_value(deskbridge_mapping::AssetMappings::default())?;
    for connection in tx.connections().await? {
        let mut config = connection.config.clone();
        let mapping = config
            .pointer_mut("/mapping")
            .and_then(Value::as_object_mut)
            .context("a bench connection has no mapping")?;
        mapping.insert("assets".into(), assets.clone());
        tx.update_connection_config(connection.id, &config).await?;
    }
    tx.commit().await?;
    store.close().await;
    Ok(())
}

/// Puts the members of "All Staff" (nested groups included) on the customer's main site ahead
/// of the catch-all mapping. A mapping that uses groups makes the sync read every group's
/// members, as the scenarios (users, groups and memberships) ask.
async fn by_group(store: &Store, name: &str) -> anyhow::Result<()> {
    let mut tx = store.begin(deskbridge_store::WriteContext::manual()).await?;
    let connection = tx
        .connection_by_name(name)
        .await?
        .with_context(|| format!("connection {name} vanished"))?;
    let mut config = connection.config.clone();
    let mappings = config
        .pointer_mut("/mapping/site_mappings")
        .and_then(Value::as_array_mut)
        .context("a new connection has no site mappings")?;
    let mut staff = mappings
        .first()
        .cloned()
        .context("a new connection has no site mapping")?;
    staff["id"] = serde_json::json!(mappings.len() + 1);
    staff["name"] = serde_json::json!("All Staff");
    staff["sequence"] = serde_json::json!(10);
    staff["group"] = serde_json::json!({"name": "All Staff", "nested": true});
    mappings.insert(0, staff);
    tx.update_connection_config(connection.id, &config).await?;
    tx.commit().await?;
    Ok(())
}

/// What the child sync process reported and what was measured around it. In the scale-out
/// scenario the children are the workers: the time is the queue's, the CPU their sum and the
/// peak RSS the largest of them.
#[derive(Debug, Clone, Serialize)]
pub struct ChildRun {
    /// The sync's own time (from the child: all connections, store open and migration excluded);
    /// scale-out: from spawning the workers until every job has ended.
    pub seconds: f64,
    /// The child process from spawn to exit (scale-out: until the last worker has exited).
    pub process_seconds: f64,
    pub peak_rss_bytes: Option<u64>,
    pub sync_cpu_seconds: Option<f64>,
    /// CPU this process (the emulator, mostly) used meanwhile.
    pub emulator_cpu_seconds: Option<f64>,
    /// Seconds the syncs spent reading, planning and applying, summed over syncs (they
    /// overlap), and waiting for SQLite's one writer (part of applying), as the sync reports.
    pub stages: Option<Stages>,
    pub failed_connections: u64,
    pub created: i64,
    pub updated: i64,
    pub deactivated: i64,
    pub unchanged: i64,
    pub errors: i64,
    pub traffic: Traffic,
}

/// A `deskbridge` command on `db`'s store and nothing else: the environment's database URL, key
/// and instance settings are removed, since they would point the child at another store, make it
/// unseal secrets with another key than the harness sealed them with, or keep a worker off the
/// connections.
pub fn deskbridge_command(exe: &Path, db: &Db) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(exe);
    command.args(db.args());
    for var in [
        "DESKBRIDGE_DATABASE_URL",
        "DESKBRIDGE_SECRET_KEY",
        "DESKBRIDGE_KEY_FILE",
        "DESKBRIDGE_INSTANCE",
    ] {
        command.env_remove(var);
    }
    // The benchmark's connections point at the emulator on the loopback address.
    command.env("DESKBRIDGE_ALLOWED_ENDPOINT_HOSTS", "127.0.0.1");
    command
}

/// Where the syncs' time went (see [`ChildRun::stages`]).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stages {
    pub read_seconds: f64,
    pub plan_seconds: f64,
    pub apply_seconds: f64,
    pub writer_wait_seconds: f64,
}

impl Stages {
    fn from_report(report: &Value) -> Option<Self> {
        let stage = |k: &str| report.get("stage_seconds")?.get(k)?.as_f64();
        Some(Self {
            read_seconds: stage("read")?,
            plan_seconds: stage("plan")?,
            apply_seconds: stage("apply")?,
            writer_wait_seconds: report.get("writer_wait_seconds")?.as_f64()?,
        })
    }
}

/// Runs `deskbridge sync --all --json` against `db` and measures it.
pub async fn run_sync(
    exe: &Path,
    db: &Db,
    world: &Served,
    concurrency: usize,
    full: bool,
) -> anyhow::Result<ChildRun> {
    run_sync_of(exe, db, world, concurrency, full, "directory").await
}

/// [`run_sync`] of one entity (`directory` or `assets`).
pub async fn run_sync_of(
    exe: &Path,
    db: &Db,
    world: &Served,
    concurrency: usize,
    full: bool,
    entity: &str,
) -> anyhow::Result<ChildRun> {
    let log_from = world.log_len();
    let cpu_before = procfs::cpu_seconds("self");
    let mut command = deskbridge_command(exe, db);
    command
        .args([
            "sync",
            "--all",
            "--json",
            "--concurrency",
            &concurrency.to_string(),
            "--entity",
            entity,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if full {
        command.arg("--full");
    }
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    let pid = child.id().map(|p| p.to_string());
    let mut stdout = child.stdout.take().context("no stdout of the sync process")?;
    let mut stderr = child.stderr.take().context("no stderr of the sync process")?;
    let read_out = tokio::spawn(async move {
        let mut s = String::new();
        stdout.read_to_string(&mut s).await.map(|_| s)
    });
    let read_err = tokio::spawn(async move {
        let mut s = String::new();
        stderr.read_to_string(&mut s).await.map(|_| s)
    });
    // The child reports its own high-water mark at the end; sampling meanwhile is the fallback
    // should it die first.
    let mut sampled: Option<u64> = None;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                if let Some(pid) = &pid {
                    sampled = sampled.max(procfs::peak_rss_bytes(pid));
                }
            }
        }
    };
    let process_seconds = started.elapsed().as_secs_f64();
    let emulator_cpu_seconds = match (cpu_before, procfs::cpu_seconds("self")) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let out = read_out.await??;
    let err = read_err.await??;
    let Some(report) = out
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
    else {
        bail!(
            "the sync process ({status}) printed no JSON report; its errors:\n{}",
            tail(&err)
        );
    };
    let int = |k: &str| report.get(k).and_then(Value::as_i64).unwrap_or(0);
    let run = ChildRun {
        seconds: report
            .get("seconds")
            .and_then(Value::as_f64)
            .unwrap_or(process_seconds),
        process_seconds,
        peak_rss_bytes: report.get("peak_rss_bytes").and_then(Value::as_u64).max(sampled),
        sync_cpu_seconds: report.get("cpu_seconds").and_then(Value::as_f64),
        emulator_cpu_seconds,
        stages: Stages::from_report(&report),
        failed_connections: u64::try_from(int("failed")).unwrap_or(0),
        created: int("created"),
        updated: int("updated"),
        deactivated: int("deactivated"),
        unchanged: int("unchanged"),
        errors: int("errors"),
        traffic: world.traffic_since(log_from),
    };
    if run.failed_connections > 0 {
        let first = report
            .get("connections")
            .and_then(Value::as_array)
            .and_then(|c| {
                c.iter().find_map(|c| {
                    c.get("error").cloned().or_else(|| {
                        let o = c.get("outcome")?;
                        (o.get("status")? == "failed").then(|| o.get("errors").cloned().unwrap_or_default())
                    })
                })
            })
            .unwrap_or_default();
        bail!(
            "{} connections failed to sync; the first: {first}\n{}",
            run.failed_connections,
            tail(&err)
        );
    }
    Ok(run)
}

/// The last 20 lines of a child's standard error, for an error message.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A measured run with its floor, as the report lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub name: String,
    pub database: String,
    /// What the run imported: `users` (a directory run) or `devices` (an asset run).
    pub unit: &'static str,
    /// How many of them.
    pub records: u64,
    pub records_per_second: f64,
    pub floor: Floor,
    /// measured / floor.
    pub ratio: f64,
    #[serde(flatten)]
    pub run: ChildRun,
}

impl RunReport {
    pub fn new(name: impl Into<String>, db: &Db, users: u64, floor: Floor, run: ChildRun) -> Self {
        Self::of("users", name, db, users, floor, run)
    }

    /// An asset run's report: devices per second.
    pub fn devices(name: impl Into<String>, db: &Db, devices: u64, floor: Floor, run: ChildRun) -> Self {
        Self::of("devices", name, db, devices, floor, run)
    }

    /// A run's report in `unit`s (users, devices, contacts…) per second.
    pub fn of(
        unit: &'static str,
        name: impl Into<String>,
        db: &Db,
        records: u64,
        floor: Floor,
        run: ChildRun,
    ) -> Self {
        let seconds = run.seconds.max(1e-9);
        Self {
            name: name.into(),
            database: db.label().into(),
            unit,
            records,
            records_per_second: records as f64 / seconds,
            ratio: if floor.seconds > 0.0 {
                run.seconds / floor.seconds
            } else {
                f64::INFINITY
            },
            floor,
            run,
        }
    }

    /// One line of summary.
    pub fn line(&self) -> String {
        let rss = self
            .run
            .peak_rss_bytes
            .map_or("?".to_owned(), |b| format!("{:.0} MiB", b as f64 / 1_048_576.0));
        let unit = self.unit;
        format!(
            "{} ({}): {} {unit} in {:.2} s = {:.0} {unit}/s; {} requests, {} RU, {} × 429; floor {:.2} s ({}) → {:.2}× the floor; peak RSS {}; CPU sync {:.1} s, emulator {:.1} s",
            self.name,
            self.database,
            self.records,
            self.run.seconds,
            self.records_per_second,
            self.run.traffic.requests,
            self.run.traffic.resource_units,
            self.run.traffic.throttled,
            self.floor.seconds,
            self.floor.binding,
            self.ratio,
            rss,
            self.run.sync_cpu_seconds.unwrap_or(f64::NAN),
            self.run.emulator_cpu_seconds.unwrap_or(f64::NAN),
        ) + &self.run.stages.map_or_else(String::new, |s| {
            let wait = if self.database == "sqlite" {
                format!(" (waiting for the SQLite writer {:.1} s)", s.writer_wait_seconds)
            } else {
                String::new()
            };
            format!(
                "; summed over syncs: read {:.1} s, plan {:.1} s, apply {:.1} s{wait}",
                s.read_seconds, s.plan_seconds, s.apply_seconds
            )
        })
    }
}
