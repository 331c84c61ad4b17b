//! The worker: claims a job, runs the sync under a lease it keeps alive with heartbeats, and
//! finishes the job — or stops it when cancelled, hands it back at shutdown, and gives up when
//! it can no longer prove it holds the lease (another worker takes over).
//!
//! Stopping a sync means dropping its future: the transaction in flight rolls back, and every
//! committed step (500-change batches, cursors in the last one) is idempotent, so whoever runs
//! the job next converges from the last commit, exactly as after a SIGKILL.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use deskbridge_core::{RunId, SharedClock};
use deskbridge_source::{RequestRecord, SourceRegistry, SyncEntity};
use deskbridge_store::{ClaimedJob, JobStatus, RunStatus, Store, WriteContext};
use deskbridge_sync::{SyncObserver, SyncOptions, SyncOutcome};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use tracing::Instrument as _;

use crate::AgentError;
use crate::metrics::{Metrics, endpoint, labels};

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Names this worker in leases and logs (host and process id by default).
    pub worker_id: String,
    /// How long a claim lasts without a heartbeat; another worker takes the job over after it.
    pub lease: Duration,
    /// How often the lease is renewed and progress saved (a third of the lease is sensible).
    pub heartbeat: Duration,
    /// How long to wait before looking again when the queue is empty.
    pub poll: Duration,
    /// This instance's kind; a connection runs only where it is enabled.
    pub instance: String,
    /// Backoff after a connection's first failure; doubles with each failure in a row.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl WorkerConfig {
    pub fn new(worker_id: impl Into<String>) -> Self {
        Self {
            worker_id: worker_id.into(),
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            poll: Duration::from_secs(2),
            instance: "production".into(),
            backoff_base: Duration::from_secs(60),
            backoff_max: Duration::from_secs(3_600),
        }
    }
}

/// What happened to one claimed job.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub job_id: i64,
    pub connection: String,
    pub status: JobStatus,
    pub run_id: Option<RunId>,
    pub taken_over: bool,
    pub message: Option<String>,
}

/// A job's live progress: what the worker saves with each heartbeat.
#[derive(Debug, Default)]
struct Progress {
    run: Option<RunId>,
    pages: u64,
    requests: u64,
    throttled: u64,
    tenant: Option<String>,
    stage: &'static str,
}

impl Progress {
    fn to_json(&self) -> Value {
        json!({
            "stage": self.stage,
            "tenant": self.tenant,
            "pages": self.pages,
            "requests": self.requests,
            "throttled": self.throttled,
            "run_id": self.run,
        })
    }
}

/// Watches the sync for the job: progress and request metrics.
#[derive(Debug)]
struct JobObserver {
    progress: Mutex<Progress>,
    metrics: Arc<Metrics>,
    span: tracing::Span,
}

impl JobObserver {
    fn with<T>(&self, f: impl FnOnce(&mut Progress) -> T) -> T {
        f(&mut self.progress.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl SyncObserver for JobObserver {
    fn run_started(&self, run: RunId) {
        self.span.record("run", run.0);
        self.with(|p| {
            p.run = Some(run);
            p.stage = "reading";
        });
    }

    fn request(&self, entry: &RequestRecord) {
        let status = entry.status.unwrap_or(0);
        let source = labels(&[("source", entry.source)]);
        self.metrics.add(
            "deskbridge_source_requests_total",
            labels(&[
                ("source", entry.source),
                ("endpoint", &endpoint(&entry.path)),
                ("status", &status.to_string()),
            ]),
            1.0,
        );
        self.metrics
            .observe("deskbridge_page_duration_seconds", source.clone(), entry.duration);
        if entry.throttled() {
            self.metrics
                .add("deskbridge_source_throttled_total", source.clone(), 1.0);
        }
        if let Some(wait) = entry.retry_after {
            self.metrics.add(
                "deskbridge_source_retry_after_seconds_total",
                source,
                wait.as_secs_f64(),
            );
        }
        self.with(|p| {
            p.requests += 1;
            if (200..300).contains(&status) && entry.method == "GET" {
                p.pages += 1;
            }
            if status == 429 {
                p.throttled += 1;
            }
            if p.tenant.as_deref() != Some(entry.tenant.as_str()) {
                p.tenant = Some(entry.tenant.clone());
            }
        });
    }
}

/// Why the sync future was stopped before it finished.
enum Stopped {
    Cancelled,
    LostLease,
    Shutdown,
}

fn later(now: Timestamp, by: Duration) -> Timestamp {
    now.checked_add(SignedDuration::try_from(by).unwrap_or(SignedDuration::MAX))
        .unwrap_or(now)
}

/// One worker: claims and runs jobs one at a time.
#[derive(Debug, Clone)]
pub struct Worker {
    store: Store,
    sources: SourceRegistry,
    clock: SharedClock,
    config: WorkerConfig,
    metrics: Arc<Metrics>,
}

impl Worker {
    pub fn new(
        store: Store,
        sources: SourceRegistry,
        clock: SharedClock,
        config: WorkerConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            sources,
            clock,
            config,
            metrics,
        }
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Claims jobs and runs them until `shutdown` turns true. A store error (the database gone
    /// away) is logged and retried after the poll interval: the worker outlives outages.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(worker = %self.config.worker_id, "worker started");
        let presence = tokio::spawn(crate::presence::keep_present(
            self.store.clone(),
            self.config.worker_id.clone(),
            shutdown.clone(),
        ));
        while !*shutdown.borrow() {
            let idle = match self.run_one(&mut shutdown).await {
                Ok(Some(_)) => false,
                Ok(None) => true,
                Err(e) => {
                    tracing::warn!(worker = %self.config.worker_id, error = %e, "worker could not claim or finish a job");
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = tokio::time::sleep(self.config.poll) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        let _ = presence.await;
        tracing::info!(worker = %self.config.worker_id, "worker stopped");
    }

    /// Claims one job and runs it to its end. `Ok(None)` when there was nothing to claim.
    pub async fn run_one(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<JobReport>, AgentError> {
        let me = self.config.worker_id.as_str();
        let mut tx = self.store.begin(WriteContext::manual()).await?;
        let lease_until = later(tx.at(), self.config.lease);
        let claimed = tx.claim_job(me, lease_until).await?;
        tx.commit().await?;
        let Some(ClaimedJob {
            job,
            taken_over,
            abandoned_run,
        }) = claimed
        else {
            return Ok(None);
        };
        let span = tracing::info_span!(
            "job",
            job = job.id.0,
            connection = %job.connection,
            entity = %job.entity,
            tenant = tracing::field::Empty,
            run = tracing::field::Empty,
            worker = %me,
        );
        if taken_over {
            self.metrics
                .add("deskbridge_lease_takeovers_total", String::new(), 1.0);
            span.in_scope(|| {
                tracing::warn!(attempt = job.attempts, abandoned_run = ?abandoned_run, "took over a job whose worker lost its lease");
            });
        }
        let observer = Arc::new(JobObserver {
            progress: Mutex::new(Progress {
                stage: "starting",
                ..Progress::default()
            }),
            metrics: self.metrics.clone(),
            span: span.clone(),
        });
        // A job names its entity as schedules do; one this build cannot run fails the job with
        // the reason (the queue only accepts entities a source serves, so this is a stale row).
        let Some((entity, table)) = SyncEntity::parse_with_table(&job.entity) else {
            let message = format!("the job's entity {:?} is not one deskbridge syncs", job.entity);
            self.failed(&job, job.attempts, &message, &observer).await?;
            return Ok(Some(JobReport {
                job_id: job.id.0,
                connection: job.connection.clone(),
                status: JobStatus::Failed,
                run_id: None,
                taken_over,
                message: Some(message),
            }));
        };
        let options = SyncOptions {
            entity,
            tenant: job.tenant_id.clone(),
            full: job.full,
            instance: self.config.instance.clone(),
            observer: Some(observer.clone()),
            table,
            ..SyncOptions::default()
        };
        let attempt = job.attempts;
        let started = Instant::now();
        let result = self
            .drive(&job.connection, &options, job.id, attempt, &observer, shutdown)
            .instrument(span.clone())
            .await;
        let run = observer.with(|p| p.run);
        let tenant = observer.with(|p| p.tenant.clone());
        if let Some(t) = &tenant {
            span.record("tenant", t.as_str());
        }
        let report = async {
            let (status, message) = match result {
                Ok(Ok(outcome)) => self.finished(&job, attempt, &outcome, &observer).await?,
                Ok(Err(e)) => {
                    let message = e.to_string();
                    self.failed(&job, attempt, &message, &observer).await?;
                    (JobStatus::Failed, Some(message))
                }
                Err(Stopped::Cancelled) => {
                    self.stop(
                        &job,
                        attempt,
                        run,
                        RunStatus::Cancelled,
                        "cancelled by an administrator",
                        &observer,
                    )
                    .await?;
                    (
                        JobStatus::Cancelled,
                        Some("cancelled by an administrator".to_owned()),
                    )
                }
                Err(Stopped::Shutdown) => {
                    let mut tx = self.store.begin(WriteContext::manual()).await?;
                    if let Some(run) = run {
                        tx.finish_run(
                            run,
                            RunStatus::Cancelled,
                            Some("the worker shut down; the job went back to the queue"),
                        )
                        .await?;
                    }
                    tx.release_job(job.id, me, attempt).await?;
                    tx.commit().await?;
                    tracing::info!("handed the job back at shutdown");
                    (JobStatus::Queued, Some("handed back at shutdown".to_owned()))
                }
                Err(Stopped::LostLease) => {
                    tracing::warn!(
                        "lost the lease; stopped the run and left the job to the worker that takes it over"
                    );
                    (JobStatus::Running, Some("lost the lease".to_owned()))
                }
            };
            if !matches!(status, JobStatus::Queued | JobStatus::Running) {
                self.metrics.add(
                    "deskbridge_runs_total",
                    labels(&[("status", status.as_str())]),
                    1.0,
                );
                self.metrics.observe(
                    "deskbridge_run_duration_seconds",
                    String::new(),
                    started.elapsed(),
                );
                tracing::info!(
                    status = status.as_str(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "job finished"
                );
            }
            Ok::<_, AgentError>(JobReport {
                job_id: job.id.0,
                connection: job.connection.clone(),
                status,
                run_id: run,
                taken_over,
                message,
            })
        }
        .instrument(span)
        .await?;
        Ok(Some(report))
    }

    /// Runs the sync while renewing the lease; stops it on cancel, shutdown or a lost lease.
    /// Heartbeats run in their own task: on SQLite a heartbeat may wait for the sync's write
    /// transaction to commit, and the sync must be able to go on meanwhile.
    async fn drive(
        &self,
        connection: &str,
        options: &SyncOptions,
        job: deskbridge_store::JobId,
        attempt: i64,
        observer: &Arc<JobObserver>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Result<SyncOutcome, deskbridge_sync::SyncError>, Stopped> {
        let (stop_tx, mut stop_rx) = tokio::sync::mpsc::channel::<Stopped>(1);
        let beats = tokio::spawn(
            heartbeats(
                self.store.clone(),
                self.clock.clone(),
                self.config.clone(),
                job,
                attempt,
                observer.clone(),
                stop_tx,
            )
            .instrument(tracing::Span::current()),
        );
        // Aborts the heartbeat task however this function ends (a heartbeat in flight rolls back).
        struct AbortOnDrop(tokio::task::JoinHandle<()>);
        impl Drop for AbortOnDrop {
            fn drop(&mut self) {
                self.0.abort();
            }
        }
        let _beats = AbortOnDrop(beats);
        let sync = deskbridge_sync::sync(&self.store, &self.sources, connection, options, &self.clock);
        tokio::pin!(sync);
        loop {
            tokio::select! {
                outcome = &mut sync => return Ok(outcome),
                Some(stopped) = stop_rx.recv() => return Err(stopped),
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        return Err(Stopped::Shutdown);
                    }
                }
            }
        }
    }

    async fn finished(
        &self,
        job: &deskbridge_store::Job,
        attempt: i64,
        outcome: &SyncOutcome,
        observer: &JobObserver,
    ) -> Result<(JobStatus, Option<String>), AgentError> {
        let status = match outcome.status.as_str() {
            "succeeded" => JobStatus::Succeeded,
            "partial" => JobStatus::Partial,
            "held" => JobStatus::Held,
            _ => JobStatus::Failed,
        };
        for (action, n) in [
            ("created", outcome.counts.created),
            ("updated", outcome.counts.updated),
            ("deactivated", outcome.counts.deactivated),
        ] {
            self.metrics.add(
                "deskbridge_records_total",
                labels(&[("action", action)]),
                n as f64,
            );
        }
        let message = outcome
            .held
            .clone()
            .or_else(|| outcome.errors.first().map(|e| e.message.clone()));
        let progress = observer.with(|p| {
            p.stage = "finished";
            let mut v = p.to_json();
            v["records"] = serde_json::to_value(outcome.counts).unwrap_or(Value::Null);
            v
        });
        let mut tx = self.store.begin(WriteContext::manual()).await?;
        if let Some(run) = outcome.run_id {
            tx.set_job_run(job.id, &self.config.worker_id, attempt, run)
                .await?;
        }
        let held = tx
            .finish_job(
                job.id,
                &self.config.worker_id,
                attempt,
                status,
                message.as_deref(),
                &progress,
            )
            .await?;
        if status == JobStatus::Failed {
            self.back_off(&mut tx, job, message.as_deref().unwrap_or("the run failed"))
                .await?;
        } else {
            tx.record_connection_outcome(job.connection_id, None).await?;
        }
        tx.commit().await?;
        if !held {
            tracing::warn!(
                "the job was taken over before this worker finished it; its result stands, the job's record is the other worker's"
            );
        }
        Ok((status, message))
    }

    async fn failed(
        &self,
        job: &deskbridge_store::Job,
        attempt: i64,
        message: &str,
        observer: &JobObserver,
    ) -> Result<(), AgentError> {
        tracing::warn!(error = %message, "the sync could not run");
        let progress = observer.with(|p| {
            p.stage = "failed";
            p.to_json()
        });
        let mut tx = self.store.begin(WriteContext::manual()).await?;
        tx.finish_job(
            job.id,
            &self.config.worker_id,
            attempt,
            JobStatus::Failed,
            Some(message),
            &progress,
        )
        .await?;
        self.back_off(&mut tx, job, message).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A failing connection is left alone for a while, doubling with each failure in a row.
    async fn back_off(
        &self,
        tx: &mut deskbridge_store::StoreTx,
        job: &deskbridge_store::Job,
        message: &str,
    ) -> Result<(), AgentError> {
        let streak = tx
            .connection_health(job.connection_id)
            .await?
            .consecutive_failures;
        let delay = backoff_delay(self.config.backoff_base, self.config.backoff_max, streak + 1);
        let not_before = later(tx.at(), delay);
        tx.record_connection_outcome(job.connection_id, Some((message, not_before)))
            .await?;
        tracing::info!(
            failures = streak + 1,
            backoff_s = delay.as_secs(),
            "connection backs off"
        );
        Ok(())
    }

    async fn stop(
        &self,
        job: &deskbridge_store::Job,
        attempt: i64,
        run: Option<RunId>,
        run_status: RunStatus,
        message: &str,
        observer: &JobObserver,
    ) -> Result<(), AgentError> {
        let progress = observer.with(|p| {
            p.stage = "cancelled";
            p.to_json()
        });
        let mut tx = self.store.begin(WriteContext::manual()).await?;
        if let Some(run) = run {
            tx.finish_run(run, run_status, Some(message)).await?;
            tx.set_job_run(job.id, &self.config.worker_id, attempt, run)
                .await?;
        }
        tx.finish_job(
            job.id,
            &self.config.worker_id,
            attempt,
            JobStatus::Cancelled,
            Some(message),
            &progress,
        )
        .await?;
        tx.commit().await?;
        tracing::info!("job cancelled");
        Ok(())
    }
}

/// Renews the lease and saves progress every heartbeat; reports cancellation or a lost lease.
async fn heartbeats(
    store: Store,
    clock: SharedClock,
    config: WorkerConfig,
    job: deskbridge_store::JobId,
    attempt: i64,
    observer: Arc<JobObserver>,
    stop: tokio::sync::mpsc::Sender<Stopped>,
) {
    let me = config.worker_id.as_str();
    let mut beat = tokio::time::interval(config.heartbeat);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.tick().await; // the first tick is immediate; the claim just set the lease
    let mut lease_until = later(clock.now(), config.lease);
    let mut run_recorded = false;
    loop {
        beat.tick().await;
        let progress = observer.with(|p| p.to_json());
        let run = observer.with(|p| p.run);
        let next_until = later(clock.now(), config.lease);
        let result = async {
            let mut tx = store.begin(WriteContext::manual()).await?;
            if let (Some(run), false) = (run, run_recorded) {
                tx.set_job_run(job, me, attempt, run).await?;
            }
            let held = tx.heartbeat_job(job, me, attempt, next_until, &progress).await?;
            tx.commit().await?;
            Ok::<_, deskbridge_store::StoreError>(held)
        }
        .await;
        let stopped = match result {
            Ok(Some(cancel)) => {
                lease_until = next_until;
                run_recorded |= run.is_some();
                cancel.then_some(Stopped::Cancelled)
            }
            Ok(None) => Some(Stopped::LostLease),
            Err(e) => {
                // The database may be back before the lease runs out; past it, another worker
                // may already be running the job.
                tracing::warn!(error = %e, "heartbeat failed");
                (clock.now() >= lease_until).then_some(Stopped::LostLease)
            }
        };
        if let Some(stopped) = stopped {
            let _ = stop.send(stopped).await;
            return;
        }
    }
}

/// `base × 2^(failures−1)`, at most `max`.
pub fn backoff_delay(base: Duration, max: Duration, failures: i64) -> Duration {
    let exp = u32::try_from(failures.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    base.saturating_mul(2u32.saturating_pow(exp)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let base = Duration::from_secs(60);
        let max = Duration::from_secs(3_600);
        assert_eq!(backoff_delay(base, max, 1), Duration::from_secs(60));
        assert_eq!(backoff_delay(base, max, 2), Duration::from_secs(120));
        assert_eq!(backoff_delay(base, max, 4), Duration::from_secs(480));
        assert_eq!(backoff_delay(base, max, 30), max);
    }
}
