//! The baseline: `bench/baseline/users_to_sqlite.py` on Microsoft's Graph SDK for Python, in a
//! virtual environment the harness creates (and reuses while the pinned requirements are
//! unchanged), run against the same emulator world in the same invocation.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::harness::Served;

/// The script and its pinned requirements, built into the binary so a clean clone needs nothing else.
pub const SCRIPT: &str = include_str!("../../../bench/baseline/users_to_sqlite.py");
pub const REQUIREMENTS: &str = include_str!("../../../bench/baseline/requirements.txt");

/// Properties the script selects: what a typical script keeps of a user.
const SELECT: &[&str] = &[
    "id",
    "displayName",
    "userPrincipalName",
    "mail",
    "accountEnabled",
    "userType",
    "department",
    "jobTitle",
];

/// What the baseline did.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineRun {
    pub users: u64,
    pub seconds: f64,
    pub users_per_second: f64,
    pub process_seconds: f64,
    pub venv: String,
}

/// Creates (or reuses) the virtual environment with the pinned SDK; returns its python.
pub async fn ensure_venv(venv: &Path, python: &str) -> anyhow::Result<PathBuf> {
    let want = hex::encode(Sha256::digest(REQUIREMENTS.as_bytes()));
    let stamp = venv.join(".requirements.sha256");
    let bin = venv.join("bin").join("python");
    if bin.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == want) {
        return Ok(bin);
    }
    if venv.exists() {
        std::fs::remove_dir_all(venv).with_context(|| format!("cannot remove {}", venv.display()))?;
    }
    eprintln!(
        "creating the baseline's virtual environment in {} (once)",
        venv.display()
    );
    run_quiet(python, &["-m", "venv", &venv.display().to_string()])
        .await
        .context("cannot create a virtual environment: is python3 with its venv module installed?")?;
    let requirements = venv.join("requirements.txt");
    std::fs::write(&requirements, REQUIREMENTS)?;
    run_quiet(
        &venv.join("bin").join("pip").display().to_string(),
        &[
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            &requirements.display().to_string(),
        ],
    )
    .await
    .context("cannot install the Graph SDK for Python: the package index must be reachable once")?;
    std::fs::write(&stamp, &want)?;
    Ok(bin)
}

async fn run_quiet(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Runs the script over every tenant of `world`, writing to a SQLite file in `dir`.
pub async fn run(python: &Path, venv: &Path, world: &Served, dir: &Path) -> anyhow::Result<BaselineRun> {
    std::fs::create_dir_all(dir)?;
    let script = dir.join("users_to_sqlite.py");
    std::fs::write(&script, SCRIPT)?;
    let (app, _) = world.app()?;
    let tenants = world
        .summary
        .tenants
        .iter()
        .map(|t| Ok(json!({"id": t.id, "token": world.emu.issue_app_token(&app.client_id, &t.id)?})))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let database = dir.join("baseline.db");
    let _ = std::fs::remove_file(&database);
    let config = json!({
        "graph_url": world.summary.graph_url,
        "database": database.display().to_string(),
        "select": SELECT,
        "tenants": tenants,
    });
    let config_file = dir.join("baseline.json");
    std::fs::write(&config_file, serde_json::to_vec(&config)?)?;
    let started = Instant::now();
    let out = tokio::process::Command::new(python)
        .arg(&script)
        .arg(&config_file)
        // A CA bundle from the environment would only confuse httpx; the emulator is plain HTTP here.
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("SSL_CERT_FILE")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("cannot run {}", python.display()))?;
    let process_seconds = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok());
    let Some(report) = report.filter(|_| out.status.success()) else {
        bail!(
            "the baseline script failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let users = report.get("users").and_then(Value::as_u64).unwrap_or(0);
    let stored = report.get("stored").and_then(Value::as_u64).unwrap_or(0);
    let seconds = report
        .get("seconds")
        .and_then(Value::as_f64)
        .unwrap_or(process_seconds);
    let expected = world.dataset().users;
    if users != expected || stored != expected {
        bail!("the baseline read {users} users and stored {stored}, but the world has {expected}");
    }
    Ok(BaselineRun {
        users,
        seconds,
        users_per_second: users as f64 / seconds.max(1e-9),
        process_seconds,
        venv: venv.display().to_string(),
    })
}
