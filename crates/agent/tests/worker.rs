//! The worker in process against the emulator: progress while a job runs, cancellation, and a
//! graceful shutdown that hands the job back — then a clean run. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use deskbridge_agent::{Metrics, Worker, WorkerConfig};
use deskbridge_connector_entra::{NewCredential, NewEntraConnection, add_entra_connection};
use deskbridge_core::{SharedClock, SystemClock};
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use deskbridge_store::{JobId, JobStatus, NewJob, RunStatus, Store, WriteContext};
use deskbridge_testkit::{TestDb, store_test};
use tokio::sync::watch;

async fn emulator() -> Emulator {
    let world = World::generate(&GenerateOptions {
        seed: 4,
        tenants: 2,
        users_per_tenant: Some(600),
        ..GenerateOptions::default()
    })
    .unwrap();
    let mut config = EmulatorConfig::new(world);
    config.faults.latency_ms = 30; // long enough runs to watch and stop
    Emulator::start(config).await.unwrap()
}

async fn connect(db: &TestDb, emu: &Emulator) -> deskbridge_core::ConnectionId {
    let summary = emu.summary();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .unwrap();
    add_entra_connection(
        &db.store,
        &NewEntraConnection {
            name: "contoso".into(),
            tenant_id: summary.tenants[0].id.clone(),
            client_id: app.client_id.clone(),
            credential: NewCredential::ClientSecret {
                value: app.client_secret.clone().unwrap(),
                expires_at: None,
            },
            authority_host: Some(summary.authority_host.clone()),
            graph_url: Some(summary.graph_url.clone()),
            customer: Some("Contoso".into()),
            enabled_instances: None,
            last_sign_in: false,
        },
    )
    .await
    .unwrap();
    let mut tx = db.store.read().await.unwrap();
    let id = tx.connection_by_name("contoso").await.unwrap().unwrap().id;
    tx.commit().await.unwrap();
    id
}

async fn enqueue(store: &Store, c: deskbridge_core::ConnectionId) -> JobId {
    let mut tx = store.begin(WriteContext::manual()).await.unwrap();
    let id = tx
        .enqueue_job(&NewJob {
            connection_id: c,
            entity: "directory".into(),
            full: true,
            origin: "manual".into(),
            schedule_id: None,
            due_at: None,
            tenant_id: None,
        })
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn job(store: &Store, id: JobId) -> deskbridge_store::Job {
    let mut tx = store.read().await.unwrap();
    let job = tx.job(id).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    job
}

/// Waits until the job has saved progress with some pages read.
async fn wait_for_pages(store: &Store, id: JobId) -> deskbridge_store::Job {
    for _ in 0..600 {
        let j = job(store, id).await;
        if j.progress["pages"].as_u64().unwrap_or(0) >= 1 && j.run_id.is_some() {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("job {id} showed no progress: {:?}", job(store, id).await);
}

fn worker(db: &TestDb, id: &str) -> (Worker, Arc<Metrics>) {
    // The store's clock is the test's manual one; the worker measures leases on the real clock,
    // as tokens do, so both see leases that do not expire during the test.
    let clock: SharedClock = Arc::new(SystemClock);
    let mut config = WorkerConfig::new(id);
    config.heartbeat = Duration::from_millis(50);
    config.lease = Duration::from_secs(3_600);
    let metrics = Arc::new(Metrics::default());
    (
        Worker::new(db.store.clone(), sources(), clock, config, metrics.clone()),
        metrics,
    )
}

/// The connectors, as the binary registers them.
fn sources() -> deskbridge_source::SourceRegistry {
    deskbridge_connectors::registry().with_endpoint_policy(
        deskbridge_source::settings::EndpointPolicy::allowing(["127.0.0.1"]),
    )
}

store_test! {
    async fn a_running_job_shows_progress_can_be_cancelled_and_is_handed_back_at_shutdown(db: &TestDb) {
        let emu = emulator().await;
        let c = connect(db, &emu).await;

        // Cancel while it runs.
        let first = enqueue(&db.store, c).await;
        let (w, _) = worker(db, "w1");
        let (_never, mut no_shutdown) = watch::channel(false);
        let task = tokio::spawn(async move { w.run_one(&mut no_shutdown).await });
        let running = wait_for_pages(&db.store, first).await;
        assert_eq!(running.status, JobStatus::Running);
        assert_eq!(running.progress["tenant"], emu.summary().tenants[0].id.as_str());
        assert!(running.progress["requests"].as_u64().unwrap() >= 1);
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        assert_eq!(tx.cancel_job(first).await.unwrap(), Some(JobStatus::Running));
        tx.commit().await.unwrap();
        let report = task.await.unwrap().unwrap().unwrap();
        assert_eq!(report.status, JobStatus::Cancelled);
        let cancelled = job(&db.store, first).await;
        assert_eq!(cancelled.status, JobStatus::Cancelled);
        let mut tx = db.store.read().await.unwrap();
        let run = tx.run(cancelled.run_id.unwrap()).await.unwrap().unwrap();
        tx.commit().await.unwrap();
        assert_eq!(run.status, RunStatus::Cancelled);

        // Shut down while it runs: the job goes back to the queue.
        let second = enqueue(&db.store, c).await;
        let (w, _) = worker(db, "w2");
        let (stop, mut shutdown) = watch::channel(false);
        let task = tokio::spawn(async move { w.run_one(&mut shutdown).await });
        wait_for_pages(&db.store, second).await;
        stop.send(true).unwrap();
        let report = task.await.unwrap().unwrap().unwrap();
        assert_eq!(report.status, JobStatus::Queued);
        let handed_back = job(&db.store, second).await;
        assert_eq!(handed_back.status, JobStatus::Queued);
        assert_eq!(handed_back.lease_owner, None);

        // Another worker picks it up and finishes it.
        let (w, metrics) = worker(db, "w3");
        let (_never, mut no_shutdown) = watch::channel(false);
        let report = w.run_one(&mut no_shutdown).await.unwrap().unwrap();
        assert_eq!(report.job_id, second.0);
        assert_eq!(report.status, JobStatus::Succeeded, "{report:?}");
        let done = job(&db.store, second).await;
        assert_eq!(done.attempts, 2);
        assert_eq!(done.progress["stage"], "finished");
        assert!(done.progress["records"]["created"].as_i64().unwrap() > 0, "{:?}", done.progress);
        let text = metrics.render();
        assert!(text.contains("deskbridge_runs_total{status=\"succeeded\"} 1"), "{text}");
        assert!(text.contains("deskbridge_records_total{action=\"created\"}"), "{text}");
        assert!(text.contains("deskbridge_page_duration_seconds_count"), "{text}");
        emu.shutdown().await;
    }
}

store_test! {
    async fn a_failing_connection_records_its_error_and_backs_off_while_others_run(db: &TestDb) {
        let emu = emulator().await;
        let good = connect(db, &emu).await;
        let summary = emu.summary();
        let app = summary.apps.iter().find(|a| a.kind == "multi_tenant_secret").unwrap();
        add_entra_connection(
            &db.store,
            &NewEntraConnection {
                name: "broken".into(),
                tenant_id: summary.tenants.iter().find(|t| t.id != summary.tenants[0].id).unwrap().id.clone(),
                client_id: app.client_id.clone(),
                credential: NewCredential::ClientSecret { value: "Wr0~ngSecretValueThatWasNeverIssued1234567".into(), expires_at: None },
                authority_host: Some(summary.authority_host.clone()),
                graph_url: Some(summary.graph_url.clone()),
                customer: Some("Broken".into()),
                enabled_instances: None,
                last_sign_in: false,
            },
        )
        .await
        .unwrap();
        let mut tx = db.store.read().await.unwrap();
        let broken = tx.connection_by_name("broken").await.unwrap().unwrap().id;
        tx.commit().await.unwrap();

        let failing = enqueue(&db.store, broken).await;
        let (w, _) = worker(db, "w1");
        let (_never, mut no_shutdown) = watch::channel(false);
        let report = w.run_one(&mut no_shutdown).await.unwrap().unwrap();
        assert_eq!(report.job_id, failing.0);
        assert_eq!(report.status, JobStatus::Failed);
        assert!(report.message.as_deref().unwrap_or_default().contains("7000215"), "{report:?}");
        let mut tx = db.store.read().await.unwrap();
        let health = tx.connection_health(broken).await.unwrap();
        let errors = tx.errors_for_run(report.run_id.unwrap()).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(health.consecutive_failures, 1);
        assert!(health.not_before.is_some());
        assert!(errors.iter().any(|e| e.remedy.as_deref().unwrap_or_default().contains("Value")), "{errors:?}");

        // The broken connection's next job waits out its backoff; the good one runs meanwhile.
        let retry = enqueue(&db.store, broken).await;
        let ok = enqueue(&db.store, good).await;
        let report = w.run_one(&mut no_shutdown).await.unwrap().unwrap();
        assert_eq!(report.job_id, ok.0);
        assert_eq!(report.status, JobStatus::Succeeded);
        assert!(w.run_one(&mut no_shutdown).await.unwrap().is_none(), "the retry is not claimable yet");
        db.clock.advance(jiff::SignedDuration::from_secs(61));
        let report = w.run_one(&mut no_shutdown).await.unwrap().unwrap();
        assert_eq!(report.job_id, retry.0);
        assert_eq!(report.status, JobStatus::Failed);
        let mut tx = db.store.read().await.unwrap();
        assert_eq!(tx.connection_health(broken).await.unwrap().consecutive_failures, 2);
        tx.commit().await.unwrap();
        emu.shutdown().await;
    }
}

store_test! {
    async fn a_job_of_the_assets_entity_imports_managed_devices(db: &TestDb) {
        let world = World::generate(&GenerateOptions {
            seed: 5,
            tenants: 1,
            users_per_tenant: Some(30),
            ..GenerateOptions::default()
        })
        .unwrap();
        let emu = Emulator::start(EmulatorConfig::new(world)).await.unwrap();
        let c = connect(db, &emu).await;
        let clock: SharedClock = Arc::new(SystemClock);
        let mut mapping = deskbridge_sync::open_connection(&db.store, &sources(), "contoso")
            .await
            .unwrap()
            .mapping()
            .clone();
        mapping.assets = Some(deskbridge_mapping::AssetMappings::default());
        deskbridge_sync::save_mappings(&db.store, &sources(), "contoso", mapping, &clock).await.unwrap();
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let queued = tx
            .enqueue_job(&NewJob {
                connection_id: c,
                entity: "assets".into(),
                full: false,
                origin: "schedule".into(),
                schedule_id: None,
                due_at: None,
                tenant_id: None,
            })
            .await
            .unwrap()
            .unwrap();
        tx.commit().await.unwrap();
        let (w, _) = worker(db, "w1");
        let (_never, mut no_shutdown) = watch::channel(false);
        let report = w.run_one(&mut no_shutdown).await.unwrap().unwrap();
        assert_eq!(report.job_id, queued.0);
        assert_eq!(report.status, JobStatus::Succeeded, "{report:?}");
        let mut tx = db.store.read().await.unwrap();
        let run = tx.run(report.run_id.unwrap()).await.unwrap().unwrap();
        let assets = tx.count(deskbridge_store::Entity::Asset).await.unwrap();
        let users = tx.count(deskbridge_store::Entity::User).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(run.kind, "assets");
        assert!(assets > 0, "devices became assets");
        assert_eq!(users, 0, "an asset job reads no users");
        emu.shutdown().await;
    }
}
