//! Scenario 6, scale-out: one full import per connection is queued on a fresh PostgreSQL database
//! and drained by one `deskbridge worker` process; then the same on another fresh database with
//! `--workers` of them. Reported: both times, the speed-up, and each run's ratio to the floor.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use deskbridge_agent::entities;
use deskbridge_store::{Job, JobId, JobStatus, NewJob, RunCounts, Store, WriteContext};
use serde::Serialize;
use serde_json::json;
use tokio::io::AsyncReadExt as _;
use tokio::task::JoinHandle;

use crate::cli::BenchArgs;
use crate::floor::{self, Floor};
use crate::harness::{ChildRun, Db, RunReport, Served, connect_all, deskbridge_command, tail};
use crate::procfs;
use crate::scenarios::{Report, faults, floor_settings};

/// Where the test suite finds its PostgreSQL server; scale-out falls back to it.
pub const TEST_POSTGRES_ENV: &str = "DESKBRIDGE_TEST_POSTGRES_URL";
/// How often the bench looks at the queue: a measured time is late by at most this.
const QUEUE_POLL: Duration = Duration::from_millis(50);
/// `deskbridge worker --poll-ms`: how soon an idle worker looks for a job again.
const WORKER_POLL_MS: u64 = 100;
/// How long a worker, idle by then, may take to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// The comparison of the two runs.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleOutReport {
    /// Full imports queued, one per connection.
    pub jobs: usize,
    /// Workers of the second run.
    pub workers: usize,
    pub one_worker_seconds: f64,
    pub workers_seconds: f64,
    /// One worker's time over the workers' time.
    pub speed_up: f64,
    /// The floor of this dataset (the same for both runs).
    pub floor_seconds: f64,
}

impl ScaleOutReport {
    pub fn line(&self) -> String {
        format!(
            "scale-out: {} full imports drained in {:.2} s by 1 worker and {:.2} s by {} workers = {:.2}× speed-up; floor {:.2} s → {:.2}× and {:.2}× the floor",
            self.jobs,
            self.one_worker_seconds,
            self.workers_seconds,
            self.workers,
            self.speed_up,
            self.floor_seconds,
            self.one_worker_seconds / self.floor_seconds.max(1e-9),
            self.workers_seconds / self.floor_seconds.max(1e-9),
        )
    }
}

/// The PostgreSQL server: `--postgres` (or its environment variable), else the test suite's.
fn postgres_url(flag: Option<&str>, test_env: Option<&str>) -> anyhow::Result<String> {
    [flag, test_env]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|url| !url.is_empty())
        .map(str::to_owned)
        .with_context(|| {
            format!(
                "scale-out needs PostgreSQL: its workers share one database. Pass --postgres \
                 postgres://USER@HOST:5432/postgres (a user who may create databases: each run gets a \
                 fresh one, dropped after), or set DESKBRIDGE_BENCH_POSTGRES_URL or {TEST_POSTGRES_ENV}"
            )
        })
}

pub async fn scale_out(args: &BenchArgs, exe: &Path, work: &Path, report: &mut Report) -> anyhow::Result<()> {
    let test_url = std::env::var(TEST_POSTGRES_ENV).ok();
    let url = postgres_url(args.postgres.as_deref(), test_url.as_deref())?;
    if args.workers < 2 {
        bail!(
            "--workers must be at least 2 (the run is compared with one worker), not {}",
            args.workers
        );
    }
    let (connections, users) = args.size();
    if connections == 0 {
        bail!("--connections must be at least 1");
    }
    let latency_ms = args.latency_ms();
    report.settings = json!({"connections": connections, "users_per_tenant": users,
        "latency_ms": latency_ms, "throttling": !args.no_throttle, "workers": args.workers,
        "worker_poll_ms": WORKER_POLL_MS, "seed": args.seed, "postgres": true});
    if let Some(machine) = report.machine.as_object_mut() {
        machine.insert(
            "emulator".into(),
            json!("in the bench process; the workers are child deskbridge worker processes"),
        );
    }
    let world = Served::start(
        args.seed,
        connections,
        users,
        faults(!args.no_throttle, latency_ms),
    )
    .await?;
    report.datasets.insert("world".into(), world.dataset());
    let result = async {
        let floor = floor::full_sync(&world.shapes, floor_settings(latency_ms));
        let mut seconds = Vec::new();
        for workers in [1, args.workers] {
            let db = Db::postgres(&url, work.join(format!("scale-out-{workers}"))).await?;
            let run = timed_drain(exe, &db, &world, workers, floor.clone()).await;
            // Dropped whatever the outcome: a failed run leaves no database behind either.
            let removed = db.remove().await;
            let run = run?;
            removed?;
            seconds.push(run.run.seconds);
            report.runs.push(run);
        }
        if let [one, many] = seconds[..] {
            report.scale_out = Some(ScaleOutReport {
                jobs: connections,
                workers: args.workers,
                one_worker_seconds: one,
                workers_seconds: many,
                speed_up: one / many.max(1e-9),
                floor_seconds: floor.seconds,
            });
        }
        anyhow::Ok(())
    }
    .await;
    world.shutdown().await;
    result
}

/// Adds the connections to `db`, queues their full imports and times `workers` workers draining
/// the queue.
async fn timed_drain(
    exe: &Path,
    db: &Db,
    world: &Served,
    workers: usize,
    floor: Floor,
) -> anyhow::Result<RunReport> {
    connect_all(db, world).await?;
    let store = db.open().await?;
    let result = async {
        let jobs = queue_full_imports(&store).await?;
        drain(exe, db, &store, world, &jobs, workers).await
    }
    .await;
    store.close().await;
    let run = result?;
    let name = format!(
        "{} full imports drained by {workers} worker{}",
        world.shapes.len(),
        if workers == 1 { "" } else { "s" }
    );
    Ok(RunReport::new(name, db, world.dataset().users, floor, run))
}

/// One full import per connection, queued as `deskbridge runs start --full` queues it.
async fn queue_full_imports(store: &Store) -> anyhow::Result<Vec<JobId>> {
    let mut tx = store.begin(WriteContext::manual()).await?;
    let mut jobs = Vec::new();
    for connection in tx.connections().await? {
        // A run imports the connection kind's entity (the directory, for Entra).
        let entity = entities::supported(&deskbridge_connectors::registry(), &connection.kind)
            .first()
            .with_context(|| format!("{} connections have nothing to import", connection.kind))?;
        let job = tx
            .enqueue_job(&NewJob {
                connection_id: connection.id,
                entity: (*entity).to_owned(),
                full: true,
                origin: "manual".into(),
                schedule_id: None,
                due_at: None,
                tenant_id: None,
            })
            .await?
            .with_context(|| format!("connection {} already had a job queued", connection.name))?;
        jobs.push(job);
    }
    tx.commit().await?;
    if jobs.is_empty() {
        bail!("no connection to import: the benchmark's database has none");
    }
    Ok(jobs)
}

/// Spawns the workers, waits until every job has ended, stops the workers, and checks that every
/// job succeeded.
async fn drain(
    exe: &Path,
    db: &Db,
    store: &Store,
    world: &Served,
    jobs: &[JobId],
    workers: usize,
) -> anyhow::Result<ChildRun> {
    let log_from = world.log_len();
    let cpu_before = procfs::cpu_seconds("self");
    let started = Instant::now();
    let mut pool = (0..workers)
        .map(|n| WorkerProcess::spawn(exe, db, format!("bench-{n}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut peak_rss: Option<u64> = None;
    let finished = loop {
        tokio::time::sleep(QUEUE_POLL).await;
        for worker in &mut pool {
            if let Some(status) = worker.child.try_wait()? {
                let errors = worker.errors().await;
                bail!(
                    "worker {} exited ({status}) before the queue was drained; its errors:\n{}",
                    worker.id,
                    tail(&errors)
                );
            }
            peak_rss = peak_rss.max(procfs::peak_rss_bytes(&worker.pid));
        }
        let now = queue(store, jobs).await?;
        if now.iter().all(|job| !job.status.is_active()) {
            break now;
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    // Read before stopping them: /proc forgets a process once it is reaped.
    let mut worker_cpu = Some(0.0);
    for worker in &pool {
        peak_rss = peak_rss.max(procfs::peak_rss_bytes(&worker.pid));
        worker_cpu = worker_cpu
            .zip(procfs::cpu_seconds(&worker.pid))
            .map(|(sum, cpu)| sum + cpu);
    }
    stop(&mut pool).await?;
    let process_seconds = started.elapsed().as_secs_f64();
    let emulator_cpu_seconds = match (cpu_before, procfs::cpu_seconds("self")) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let failed = failures(&finished);
    if !failed.is_empty() {
        bail!(
            "{} of {} jobs did not succeed:\n{}",
            failed.len(),
            finished.len(),
            failed.join("\n")
        );
    }
    let counts = run_counts(store, &finished).await?;
    Ok(ChildRun {
        seconds,
        process_seconds,
        peak_rss_bytes: peak_rss,
        sync_cpu_seconds: worker_cpu,
        emulator_cpu_seconds,
        stages: None,
        failed_connections: 0,
        created: counts.created,
        updated: counts.updated,
        deactivated: counts.deactivated,
        unchanged: counts.unchanged,
        errors: counts.errors,
        traffic: world.traffic_since(log_from),
    })
}

/// The queued jobs as they are now.
async fn queue(store: &Store, jobs: &[JobId]) -> anyhow::Result<Vec<Job>> {
    let limit = u32::try_from(jobs.len()).unwrap_or(u32::MAX);
    let mut tx = store.read().await?;
    // The database is the run's own: its newest jobs are the ones queued.
    let now: Vec<Job> = tx
        .jobs(None, limit)
        .await?
        .into_iter()
        .filter(|job| jobs.contains(&job.id))
        .collect();
    tx.commit().await?;
    if now.len() != jobs.len() {
        bail!(
            "{} of the {} queued jobs are gone from the queue",
            jobs.len() - now.len(),
            jobs.len()
        );
    }
    Ok(now)
}

/// One line per job that ended other than succeeded.
fn failures(jobs: &[Job]) -> Vec<String> {
    jobs.iter()
        .filter(|job| job.status != JobStatus::Succeeded)
        .map(|job| {
            format!(
                "job {} of {}: {}{}",
                job.id,
                job.connection,
                job.status.as_str(),
                job.message.as_deref().map_or(String::new(), |m| format!(": {m}"))
            )
        })
        .collect()
}

/// What the jobs' runs did to the desk, summed.
async fn run_counts(store: &Store, jobs: &[Job]) -> anyhow::Result<RunCounts> {
    let mut tx = store.read().await?;
    let mut sum = RunCounts::default();
    for id in jobs.iter().filter_map(|job| job.run_id) {
        if let Some(run) = tx.run(id).await? {
            sum.created += run.counts.created;
            sum.updated += run.counts.updated;
            sum.deactivated += run.counts.deactivated;
            sum.unchanged += run.counts.unchanged;
            sum.conflicts += run.counts.conflicts;
            sum.errors += run.counts.errors;
        }
    }
    tx.commit().await?;
    Ok(sum)
}

/// A `deskbridge worker` child process; killed (SIGKILL) if dropped before it is stopped.
struct WorkerProcess {
    id: String,
    pid: String,
    child: tokio::process::Child,
    stderr: Option<JoinHandle<std::io::Result<Vec<u8>>>>,
}

impl WorkerProcess {
    fn spawn(exe: &Path, db: &Db, id: String) -> anyhow::Result<Self> {
        let mut command = deskbridge_command(exe, db);
        // No scheduler: there are no schedules, and a scheduler would only add queries.
        command
            .args(["worker", "--worker-id", &id, "--no-scheduler"])
            .args(["--poll-ms", &WORKER_POLL_MS.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {} worker", exe.display()))?;
        let pid = child
            .id()
            .with_context(|| format!("worker {id} exited as it started"))?
            .to_string();
        let stderr = child.stderr.take().map(|mut stderr| {
            tokio::spawn(async move {
                let mut bytes = Vec::new();
                stderr.read_to_end(&mut bytes).await.map(|_| bytes)
            })
        });
        Ok(Self {
            id,
            pid,
            child,
            stderr,
        })
    }

    /// What the worker wrote on standard error (complete once it has exited).
    async fn errors(&mut self) -> String {
        match self.stderr.take() {
            Some(read) => match read.await {
                Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
                _ => String::new(),
            },
            None => String::new(),
        }
    }
}

/// Stops every worker by its PID with SIGTERM (all at once, then waits for each): they are idle,
/// so each should exit at once and cleanly.
async fn stop(pool: &mut [WorkerProcess]) -> anyhow::Result<()> {
    for worker in pool.iter() {
        // The `kill` utility: sending a signal from here would need unsafe code, which the
        // workspace forbids.
        let status = tokio::process::Command::new("kill")
            .args(["-TERM", &worker.pid])
            .stdin(Stdio::null())
            .status()
            .await
            .context("cannot run kill to stop the workers")?;
        if !status.success() {
            bail!(
                "kill -TERM {} (worker {}) failed: {status}",
                worker.pid,
                worker.id
            );
        }
    }
    for worker in pool.iter_mut() {
        let Ok(status) = tokio::time::timeout(STOP_GRACE, worker.child.wait()).await else {
            worker.child.kill().await.ok();
            bail!(
                "worker {} did not exit within {} s of SIGTERM; it was killed",
                worker.id,
                STOP_GRACE.as_secs()
            );
        };
        let status = status?;
        if !status.success() {
            let errors = worker.errors().await;
            bail!(
                "worker {} exited with {status} after SIGTERM; its errors:\n{}",
                worker.id,
                tail(&errors)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use deskbridge_core::ConnectionId;

    #[test]
    fn the_flag_comes_first_then_the_test_server() {
        let flag = "postgres://a@127.0.0.1:5432/postgres";
        let test = "postgres://b@127.0.0.1:5432/test";
        assert_eq!(postgres_url(Some(flag), Some(test)).unwrap(), flag);
        assert_eq!(postgres_url(None, Some(test)).unwrap(), test);
        assert_eq!(postgres_url(Some(" "), Some(test)).unwrap(), test);
    }

    #[test]
    fn without_a_server_it_says_why_and_how() {
        let message = format!("{:#}", postgres_url(None, Some("")).unwrap_err());
        assert!(message.contains("needs PostgreSQL"), "{message}");
        assert!(message.contains("--postgres"), "{message}");
        assert!(message.contains(TEST_POSTGRES_ENV), "{message}");
    }

    fn job(id: i64, status: JobStatus, message: Option<&str>) -> Job {
        Job {
            id: JobId(id),
            connection_id: ConnectionId(id),
            connection: format!("bench-{id}"),
            entity: "directory".into(),
            status,
            full: true,
            origin: "manual".into(),
            schedule_id: None,
            due_at: None,
            attempts: 1,
            takeovers: 0,
            lease_owner: None,
            lease_expires_at: None,
            heartbeat_at: None,
            cancel_requested: false,
            run_id: None,
            progress: json!({}),
            message: message.map(str::to_owned),
            created_at: String::new(),
            started_at: None,
            ended_at: None,
            tenant_id: None,
        }
    }

    #[test]
    fn every_job_that_did_not_succeed_is_named() {
        let jobs = [
            job(1, JobStatus::Succeeded, None),
            job(2, JobStatus::Failed, Some("token refused")),
            job(3, JobStatus::Partial, None),
        ];
        assert_eq!(
            failures(&jobs),
            [
                "job 2 of bench-2: failed: token refused",
                "job 3 of bench-3: partial"
            ]
        );
    }

    #[test]
    fn the_summary_gives_both_times_the_speed_up_and_the_ratios() {
        let report = ScaleOutReport {
            jobs: 9,
            workers: 3,
            one_worker_seconds: 30.0,
            workers_seconds: 12.0,
            speed_up: 2.5,
            floor_seconds: 2.0,
        };
        assert_eq!(
            report.line(),
            "scale-out: 9 full imports drained in 30.00 s by 1 worker and 12.00 s by 3 workers = 2.50× speed-up; floor 2.00 s → 15.00× and 6.00× the floor"
        );
    }
}
