//! The scenarios: each builds its world, runs the sync as a child process, and reports figures
//! against the floor model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use deskbridge_emulator::Faults;
use deskbridge_graph::GraphConfig;
use serde::Serialize;
use serde_json::json;

use crate::baseline::{self, BaselineRun};
use crate::cli::{BenchArgs, Scenario};
use crate::csp::CspReport;
use crate::dataverse::DataverseReport;
use crate::floor::{self, DeltaChanges, FloorSettings};
use crate::harness::{Dataset, Db, RunReport, Served, connect_all, import_assets, run_sync, run_sync_of};
use crate::scaleout::{self, ScaleOutReport};

/// A target of issue 7, and whether this run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub what: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

/// The baseline comparison.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineReport {
    pub sdk: BaselineRun,
    /// deskbridge's users per second over the SDK script's.
    pub multiple: f64,
}

/// The JSON report of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub command: String,
    pub settings: serde_json::Value,
    pub machine: serde_json::Value,
    pub datasets: BTreeMap<String, Dataset>,
    pub runs: Vec<RunReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_out: Option<ScaleOutReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csp: Option<CspReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataverse: Option<DataverseReport>,
    pub targets: Vec<Target>,
}

impl Report {
    /// The summary: one line per run, the baseline or the scale-out comparison, and the targets.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .datasets
            .iter()
            .map(|(name, d)| {
                format!(
                    "dataset {name}: {} tenants, {} users, {} groups, {} memberships",
                    d.tenants, d.users, d.groups, d.memberships
                )
            })
            .collect();
        out.extend(self.runs.iter().map(RunReport::line));
        if let Some(b) = &self.baseline {
            out.push(format!(
                "baseline (msgraph-sdk → SQLite): {} users in {:.2} s = {:.0} users/s; deskbridge is {:.1}× as fast",
                b.sdk.users, b.sdk.seconds, b.sdk.users_per_second, b.multiple
            ));
        }
        if let Some(s) = &self.scale_out {
            out.push(s.line());
        }
        if let Some(c) = &self.csp {
            out.push(c.line());
        }
        if let Some(d) = &self.dataverse {
            out.push(d.line());
        }
        for t in &self.targets {
            out.push(format!(
                "target {}: {} — measured {}: {}",
                t.what,
                t.target,
                t.measured,
                if t.met { "met" } else { "NOT met" }
            ));
        }
        out
    }
}

pub(crate) fn floor_settings(latency_ms: u64) -> FloorSettings {
    // The child runs with the Graph client's defaults: C and c are its concurrency limits.
    let graph = GraphConfig::default();
    FloorSettings {
        latency_s: latency_ms as f64 / 1_000.0,
        app_concurrency: graph.max_concurrent_requests as u64,
        tenant_concurrency: graph.max_concurrent_per_tenant as u64,
    }
}

pub(crate) fn faults(throttling: bool, latency_ms: u64) -> Faults {
    Faults {
        throttling,
        latency_ms,
        ..Faults::default()
    }
}

/// Runs the scenario; `exe` is the `deskbridge` binary that runs the syncs (and the workers).
pub async fn run(args: &BenchArgs, exe: &Path) -> anyhow::Result<Report> {
    let temp;
    let work: PathBuf = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("deskbridge-bench-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            temp.path().to_owned()
        }
    };
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let mut report = Report {
        scenario: args.scenario.name().into(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        settings: json!({}),
        machine: json!({
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "emulator": "in the bench process; the sync is a child deskbridge process",
        }),
        datasets: BTreeMap::new(),
        runs: Vec::new(),
        baseline: None,
        scale_out: None,
        csp: None,
        dataverse: None,
        targets: Vec::new(),
    };
    match args.scenario {
        Scenario::Latency => latency(args, exe, &work, &mut report).await?,
        Scenario::Cpu => cpu(args, exe, &work, &mut report).await?,
        Scenario::Delta => delta(args, exe, &work, &mut report).await?,
        Scenario::Memory => memory(args, exe, &work, &mut report).await?,
        Scenario::Baseline => baseline_scenario(args, exe, &work, &mut report).await?,
        Scenario::ScaleOut => scaleout::scale_out(args, exe, &work, &mut report).await?,
        Scenario::CspLatency => crate::csp::csp_latency(args, exe, &work, &mut report).await?,
        Scenario::Dataverse => crate::dataverse::dataverse(args, exe, &work, &mut report).await?,
    }
    Ok(report)
}

async fn full_sync_run(
    name: &str,
    exe: &Path,
    db: &Db,
    world: &Served,
    args: &BenchArgs,
    latency_ms: u64,
) -> anyhow::Result<RunReport> {
    connect_all(db, world).await?;
    let run = run_sync(exe, db, world, args.concurrency, true).await?;
    let floor = floor::full_sync(&world.shapes, floor_settings(latency_ms));
    Ok(RunReport::new(name, db, world.dataset().users, floor, run))
}

async fn latency(args: &BenchArgs, exe: &Path, work: &Path, report: &mut Report) -> anyhow::Result<()> {
    let (tenants, users) = args.size();
    let latency_ms = args.latency_ms();
    report.settings = json!({"tenants": tenants, "users_per_tenant": users, "latency_ms": latency_ms,
        "throttling": !args.no_throttle, "concurrency": args.concurrency, "seed": args.seed,
        "postgres": args.postgres.is_some()});
    let world = Served::start(args.seed, tenants, users, faults(!args.no_throttle, latency_ms)).await?;
    report.datasets.insert("world".into(), world.dataset());
    let result = async {
        let db = Db::sqlite(work.join("latency"))?;
        let run = full_sync_run("latency-bound full sync", exe, &db, &world, args, latency_ms).await?;
        report.targets.push(Target {
            what: "latency-bound full sync".into(),
            target: "≤ 1.25× the floor".into(),
            measured: format!("{:.2}×", run.ratio),
            met: run.ratio <= 1.25,
        });
        report.runs.push(run);
        // The same reads into PostgreSQL, where the syncs' writes run side by side.
        if let Some(url) = &args.postgres {
            let db = Db::postgres(url, work.join("latency-postgres")).await?;
            let run = full_sync_run("latency-bound full sync", exe, &db, &world, args, latency_ms).await;
            db.remove().await?;
            report.runs.push(run?);
        }
        anyhow::Ok(())
    }
    .await;
    world.shutdown().await;
    result
}

async fn cpu(args: &BenchArgs, exe: &Path, work: &Path, report: &mut Report) -> anyhow::Result<()> {
    let (tenants, users) = args.size();
    report.settings = json!({"tenants": tenants, "users_per_tenant": users, "latency_ms": 0,
        "throttling": false, "concurrency": args.concurrency, "seed": args.seed,
        "postgres": args.postgres.is_some()});
    let world = Served::start(args.seed, tenants, users, faults(false, 0)).await?;
    report.datasets.insert("world".into(), world.dataset());
    let result = async {
        let db = Db::sqlite(work.join("cpu-sqlite"))?;
        let run = full_sync_run("CPU-bound full sync", exe, &db, &world, args, 0).await?;
        report.targets.push(Target {
            what: "CPU-bound full sync into SQLite".into(),
            target: "≥ 50,000 users/s".into(),
            measured: format!("{:.0} users/s", run.records_per_second),
            met: run.records_per_second >= 50_000.0,
        });
        report.runs.push(run);
        // Then the tenants' managed devices as assets, reported beside users per second.
        import_assets(&db).await?;
        let devices: Vec<u64> = world.summary.tenants.iter().map(|t| t.devices as u64).collect();
        let run = run_sync_of(exe, &db, &world, args.concurrency, false, "assets").await?;
        let floor = floor::device_import(devices.iter().copied(), floor_settings(0));
        let run = RunReport::devices("CPU-bound device import", &db, devices.iter().sum(), floor, run);
        report.targets.push(Target {
            what: "CPU-bound device import into SQLite".into(),
            target: "reported beside users/s (no target set)".into(),
            measured: format!("{:.0} devices/s", run.records_per_second),
            met: run.run.failed_connections == 0 && run.run.errors == 0,
        });
        report.runs.push(run);
        if let Some(url) = &args.postgres {
            let db = Db::postgres(url, work.join("cpu-postgres")).await?;
            let run = full_sync_run("CPU-bound full sync", exe, &db, &world, args, 0).await;
            db.remove().await?;
            report.runs.push(run?);
        }
        anyhow::Ok(())
    }
    .await;
    world.shutdown().await;
    result
}

async fn delta(args: &BenchArgs, exe: &Path, work: &Path, report: &mut Report) -> anyhow::Result<()> {
    let (tenants, users) = args.size();
    let latency_ms = args.latency_ms();
    report.settings = json!({"tenants": tenants, "users_per_tenant": users, "latency_ms": latency_ms,
        "throttling": !args.no_throttle, "concurrency": args.concurrency, "seed": args.seed,
        "change_percent": args.change_percent});
    let world = Served::start(args.seed, tenants, users, faults(!args.no_throttle, latency_ms)).await?;
    report.datasets.insert("world".into(), world.dataset());
    let result = async {
        let db = Db::sqlite(work.join("delta"))?;
        let settings = floor_settings(latency_ms);
        let full = full_sync_run(
            "full sync (before the delta rounds)",
            exe,
            &db,
            &world,
            args,
            latency_ms,
        )
        .await?;
        report.runs.push(full);

        let quiet = run_sync(exe, &db, &world, args.concurrency, false).await?;
        let floor = floor::delta_round(vec![DeltaChanges::default(); tenants], settings);
        report
            .runs
            .push(RunReport::new("delta round, 0 % changed", &db, 0, floor, quiet));

        let changes = change_users(&world, args.change_percent)?;
        let changed: u64 = changes.iter().map(|c| c.users).sum();
        let busy = run_sync(exe, &db, &world, args.concurrency, false).await?;
        let floor = floor::delta_round(changes, settings);
        let name = format!("delta round, {} % changed", args.change_percent);
        report.runs.push(RunReport::new(name, &db, changed, floor, busy));
        anyhow::Ok(())
    }
    .await;
    world.shutdown().await;
    result
}

/// Renames every n-th live user of each tenant (n = 100 / percent) through the emulator, so the
/// next delta round reports them; returns the changes per tenant.
fn change_users(world: &Served, percent: f64) -> anyhow::Result<Vec<DeltaChanges>> {
    if !(percent > 0.0 && percent <= 100.0) {
        bail!("--change-percent must be in (0, 100], not {percent}");
    }
    let step = ((100.0 / percent).round() as usize).max(1);
    let tenant_ids: Vec<String> = world.summary.tenants.iter().map(|t| t.id.clone()).collect();
    world.emu.with_world_mut(|w| {
        tenant_ids
            .iter()
            .map(|tid| {
                let ids: Vec<(String, String)> = w
                    .tenant(tid)
                    .map(|t| {
                        t.live_users()
                            .enumerate()
                            .filter(|(i, _)| i % step == step - 1)
                            .map(|(_, u)| (u.id.clone(), u.display_name.clone().unwrap_or_default()))
                            .collect()
                    })
                    .unwrap_or_default();
                for (id, name) in &ids {
                    let mut patch = serde_json::Map::new();
                    patch.insert("displayName".into(), json!(format!("{name} (changed)")));
                    w.update_user(tid, id, &patch)?;
                }
                Ok(DeltaChanges {
                    users: ids.len() as u64,
                    groups: 0,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })
}

async fn memory(args: &BenchArgs, exe: &Path, work: &Path, report: &mut Report) -> anyhow::Result<()> {
    let (large, small_tenants, small_users) = args.memory_sizes();
    report.settings = json!({"large_tenant_users": large, "small_tenants": small_tenants,
        "small_tenant_users": small_users, "latency_ms": 0, "throttling": false,
        "concurrency": args.concurrency, "seed": args.seed});
    let mut peaks = Vec::new();
    // A tenant a tenth the size of the large one: memory must not grow with the tenant.
    let tenth = (large / 10).max(1);
    for (name, tenants, users) in [
        ("one tenant a tenth the size", 1, tenth),
        ("one large tenant", 1, large),
        ("many small tenants", small_tenants, small_users),
    ] {
        let world = Served::start(args.seed, tenants, users, faults(false, 0)).await?;
        report.datasets.insert(name.into(), world.dataset());
        let db = Db::sqlite(work.join(format!("memory-{tenants}x{users}")))?;
        let run = full_sync_run(&format!("memory: {name}"), exe, &db, &world, args, 0).await;
        world.shutdown().await;
        let run = run?;
        peaks.push(run.run.peak_rss_bytes.unwrap_or(0));
        report.runs.push(run);
    }
    let worst = peaks.iter().copied().max().unwrap_or(0);
    report.targets.push(Target {
        what: "peak RSS of the sync process".into(),
        target: "≤ 200 MB whatever the tenant size".into(),
        measured: peaks
            .iter()
            .map(|b| format!("{:.0} MB", *b as f64 / 1e6))
            .collect::<Vec<_>>()
            .join(", "),
        met: worst > 0 && worst <= 200_000_000,
    });
    let (tenth_peak, large_peak) = (
        peaks.first().copied().unwrap_or(0),
        peaks.get(1).copied().unwrap_or(0),
    );
    let growth = large_peak as f64 / tenth_peak.max(1) as f64;
    report.targets.push(Target {
        what: format!("peak RSS of the {large}-user tenant against the {tenth}-user tenant"),
        target: "≤ 1.3× (flat in tenant size)".into(),
        measured: format!("{growth:.2}×"),
        met: tenth_peak > 0 && growth <= 1.3,
    });
    Ok(())
}

async fn baseline_scenario(
    args: &BenchArgs,
    exe: &Path,
    work: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let (tenants, users) = args.size();
    report.settings = json!({"tenants": tenants, "users_per_tenant": users, "latency_ms": 0,
        "throttling": false, "concurrency": args.concurrency, "seed": args.seed});
    let venv = match &args.venv {
        Some(v) => v.clone(),
        None => default_venv(exe),
    };
    // Before the emulator starts: creating the environment can take a minute, once.
    let python = baseline::ensure_venv(&venv, &args.python).await?;
    let world = Served::start(args.seed, tenants, users, faults(false, 0)).await?;
    report.datasets.insert("world".into(), world.dataset());
    let result = async {
        let db = Db::sqlite(work.join("baseline-deskbridge"))?;
        let ours = full_sync_run("deskbridge full sync", exe, &db, &world, args, 0).await?;
        let sdk = baseline::run(&python, &venv, &world, &work.join("baseline-sdk")).await?;
        let multiple = ours.records_per_second / sdk.users_per_second.max(1e-9);
        report.targets.push(Target {
            what: "speed against the Graph SDK for Python".into(),
            target: "≥ 100× the SDK baseline".into(),
            measured: format!("{multiple:.1}×"),
            met: multiple >= 100.0,
        });
        report.runs.push(ours);
        report.baseline = Some(BaselineReport { sdk, multiple });
        anyhow::Ok(())
    }
    .await;
    world.shutdown().await;
    result
}

/// `bench-baseline-venv` in the cargo target directory the binary was built into (or next to
/// the binary when it was installed elsewhere).
fn default_venv(exe: &Path) -> PathBuf {
    let dir = exe.parent().unwrap_or(Path::new("."));
    let target = match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug" | "release") => dir.parent().unwrap_or(dir),
        _ => dir,
    };
    target.join("bench-baseline-venv")
}
