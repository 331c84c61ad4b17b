//! Jobs, leases, takeover, cancellation, backoff and schedule firing in the store, on SQLite and
//! PostgreSQL, with an injected clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use deskbridge_agent::Metrics;
use deskbridge_agent::scheduler::fire_due;
use deskbridge_core::{ConnectionId, SharedClock};
use deskbridge_store::{
    Dialect, FireOutcome, JobStatus, NewConnection, NewJob, NewSchedule, Store, WriteContext,
};
use deskbridge_testkit::{TestDb, store_test};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

async fn connection(store: &Store, name: &str) -> ConnectionId {
    let mut tx = store.begin(WriteContext::manual()).await.unwrap();
    let c = tx
        .create_connection(&NewConnection {
            name: name.into(),
            kind: "entra".into(),
            config: json!({}),
            enabled_instances: "production".into(),
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    c.id
}

fn job(c: ConnectionId) -> NewJob {
    NewJob {
        connection_id: c,
        entity: "directory".into(),
        full: false,
        origin: "manual".into(),
        schedule_id: None,
        due_at: None,
        tenant_id: None,
    }
}

async fn enqueue(store: &Store, c: ConnectionId) -> Option<deskbridge_store::JobId> {
    let mut tx = store.begin(WriteContext::manual()).await.unwrap();
    let id = tx.enqueue_job(&job(c)).await.unwrap();
    tx.commit().await.unwrap();
    id
}

fn later(db: &TestDb, secs: i64) -> Timestamp {
    db.clock
        .now()
        .checked_add(SignedDuration::from_secs(secs))
        .unwrap()
}

async fn claim(db: &TestDb, worker: &str) -> Option<deskbridge_store::ClaimedJob> {
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let claimed = tx.claim_job(worker, later(db, 30)).await.unwrap();
    tx.commit().await.unwrap();
    claimed
}

use deskbridge_core::Clock as _;

store_test! {
    async fn one_active_job_per_connection_and_entity(db: &TestDb) {
        let a = connection(&db.store, "a").await;
        let b = connection(&db.store, "b").await;
        let first = enqueue(&db.store, a).await.expect("queued");
        assert_eq!(enqueue(&db.store, a).await, None, "a second queued job for a/directory is refused");
        assert!(enqueue(&db.store, b).await.is_some(), "another connection is independent");
        let claimed = claim(db, "w1").await.unwrap();
        assert_eq!(claimed.job.id, first);
        assert_eq!(claimed.job.status, JobStatus::Running);
        assert!(!claimed.taken_over);
        assert_eq!(enqueue(&db.store, a).await, None, "nor while it runs");
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        assert!(tx.finish_job(first, "w1", 1, JobStatus::Succeeded, None, &json!({})).await.unwrap());
        tx.commit().await.unwrap();
        assert!(enqueue(&db.store, a).await.is_some(), "after it finished, a new one may queue");
    }
}

store_test! {
    async fn a_job_whose_lease_expires_is_taken_over_and_the_old_worker_is_locked_out(db: &TestDb) {
        let a = connection(&db.store, "a").await;
        let id = enqueue(&db.store, a).await.unwrap();
        let first = claim(db, "w1").await.unwrap();
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let run = tx.start_run(Some(a), "sync").await.unwrap();
        assert!(tx.set_job_run(id, "w1", first.job.attempts, run).await.unwrap());
        assert_eq!(tx.active_job_for_run(run).await.unwrap().map(|j| j.id), Some(id), "the run's job is found by its run");
        tx.commit().await.unwrap();

        assert!(claim(db, "w2").await.is_none(), "a live lease is not claimable");
        db.clock.advance(SignedDuration::from_secs(31));
        let taken = claim(db, "w2").await.unwrap();
        assert!(taken.taken_over);
        assert_eq!(taken.job.id, id);
        assert_eq!(taken.job.attempts, 2);
        assert_eq!(taken.job.takeovers, 1);
        assert_eq!(taken.abandoned_run, Some(run));

        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let old_run = tx.run(run).await.unwrap().unwrap();
        assert_eq!(old_run.status, deskbridge_store::RunStatus::Failed, "the abandoned run is closed");
        assert!(old_run.message.unwrap().contains("lost its lease"));
        // the first worker can neither renew nor finish
        assert_eq!(tx.heartbeat_job(id, "w1", 1, later(db, 30), &json!({})).await.unwrap(), None);
        assert!(!tx.finish_job(id, "w1", 1, JobStatus::Succeeded, None, &json!({})).await.unwrap());
        assert_eq!(tx.heartbeat_job(id, "w2", 2, later(db, 30), &json!({"pages": 3})).await.unwrap(), Some(false));
        assert!(tx.finish_job(id, "w2", 2, JobStatus::Succeeded, None, &json!({"pages": 4})).await.unwrap());
        assert!(tx.active_job_for_run(run).await.unwrap().is_none(), "a finished job no longer answers for a run");
        let done = tx.job(id).await.unwrap().unwrap();
        tx.commit().await.unwrap();
        assert_eq!(done.status, JobStatus::Succeeded);
        assert_eq!(done.progress["pages"], 4);
        assert_eq!(done.lease_owner, None);
    }
}

store_test! {
    async fn cancelling_a_queued_job_ends_it_and_a_running_one_is_told_at_its_heartbeat(db: &TestDb) {
        let a = connection(&db.store, "a").await;
        let b = connection(&db.store, "b").await;
        let queued = enqueue(&db.store, a).await.unwrap();
        let running = enqueue(&db.store, b).await.unwrap();
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        assert_eq!(tx.cancel_job(queued).await.unwrap(), Some(JobStatus::Cancelled));
        tx.commit().await.unwrap();
        let claimed = claim(db, "w1").await.unwrap();
        assert_eq!(claimed.job.id, running, "a cancelled job is never claimed");
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        assert_eq!(tx.cancel_job(running).await.unwrap(), Some(JobStatus::Running));
        assert_eq!(tx.heartbeat_job(running, "w1", 1, later(db, 30), &json!({})).await.unwrap(), Some(true));
        assert_eq!(tx.cancel_job(deskbridge_store::JobId(999_999)).await.unwrap(), None);
        tx.commit().await.unwrap();
    }
}

store_test! {
    async fn a_failing_connection_backs_off_and_the_others_run(db: &TestDb) {
        let bad = connection(&db.store, "bad").await;
        let good = connection(&db.store, "good").await;
        let bad_job = enqueue(&db.store, bad).await.unwrap();
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let health = tx.record_connection_outcome(bad, Some(("token refused", later(db, 120)))).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(health.consecutive_failures, 1);
        let good_job = enqueue(&db.store, good).await.unwrap();
        let claimed = claim(db, "w1").await.unwrap();
        assert_eq!(claimed.job.id, good_job, "the backing-off connection's older job waits");
        assert!(claim(db, "w1").await.is_none());
        db.clock.advance(SignedDuration::from_secs(121));
        assert_eq!(claim(db, "w1").await.unwrap().job.id, bad_job);
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let health = tx.record_connection_outcome(bad, None).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(health.consecutive_failures, 0);
        assert_eq!(health.not_before, None);
    }
}

store_test! {
    async fn several_schedulers_fire_each_due_time_once(db: &TestDb) {
        let a = connection(&db.store, "a").await;
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let schedule = tx
            .add_schedule(&NewSchedule {
                connection_id: a,
                entity: "directory".into(),
                kind: "interval".into(),
                spec: "600".into(),
                time_zone: "UTC".into(),
                window_start: None,
                window_end: None,
                next_due: db.clock.now(),
            })
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let clock: SharedClock = db.clock.clone();
        let metrics = Metrics::default();
        for round in 0..3 {
            // four schedulers at once
            let results = futures_join(&db.store, &clock, &metrics).await;
            let enqueued: Vec<_> = results
                .iter()
                .flatten()
                .filter(|f| matches!(f.outcome, FireOutcome::Enqueued(_)))
                .collect();
            assert_eq!(enqueued.len(), 1, "round {round}: {results:?}");
            // nothing is due until the clock moves
            assert!(fire_due(&db.store, &clock, &metrics).await.unwrap().is_empty());
            // the job runs and ends before the next due time
            let claimed = claim(db, "w1").await.unwrap();
            assert_eq!(claimed.job.schedule_id, Some(schedule));
            let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
            tx.finish_job(claimed.job.id, "w1", 1, JobStatus::Succeeded, None, &json!({})).await.unwrap();
            tx.commit().await.unwrap();
            db.clock.advance(SignedDuration::from_secs(600));
        }
        let mut tx = db.store.read().await.unwrap();
        let jobs = tx.jobs(None, 100).await.unwrap();
        let schedules = tx.schedules().await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(jobs.len(), 3);
        let mut dues: Vec<_> = jobs.iter().map(|j| j.due_at.clone().unwrap()).collect();
        dues.dedup();
        assert_eq!(dues.len(), 3, "one job per due time");
        assert_eq!(schedules[0].next_due, deskbridge_store::format_timestamp(db.clock.now()));

        // A due time that finds the connection's job still queued is served by that job.
        let pending = enqueue(&db.store, a).await.unwrap();
        let fired = fire_due(&db.store, &clock, &metrics).await.unwrap();
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].outcome, FireOutcome::Coalesced);
        let mut tx = db.store.read().await.unwrap();
        assert_eq!(tx.jobs(Some(JobStatus::Queued), 10).await.unwrap().iter().map(|j| j.id).collect::<Vec<_>>(), vec![pending]);
        tx.commit().await.unwrap();
    }
}

async fn futures_join(
    store: &Store,
    clock: &SharedClock,
    metrics: &Metrics,
) -> Vec<Vec<deskbridge_agent::scheduler::Fired>> {
    let (a, b, c, d) = tokio::join!(
        fire_due(store, clock, metrics),
        fire_due(store, clock, metrics),
        fire_due(store, clock, metrics),
        fire_due(store, clock, metrics),
    );
    vec![a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap()]
}

store_test! {
    async fn concurrent_claims_take_different_jobs(db: &TestDb) {
        if db.store.dialect() != Dialect::Postgres {
            return; // SQLite has one writer: claims are serialised by BEGIN IMMEDIATE
        }
        let a = connection(&db.store, "a").await;
        let b = connection(&db.store, "b").await;
        enqueue(&db.store, a).await.unwrap();
        enqueue(&db.store, b).await.unwrap();
        // The first claim's transaction stays open: SKIP LOCKED lets the second pass its row.
        let mut first = db.store.begin(WriteContext::manual()).await.unwrap();
        let one = first.claim_job("w1", later(db, 30)).await.unwrap().unwrap();
        let two = claim(db, "w2").await.unwrap();
        first.commit().await.unwrap();
        assert_ne!(one.job.id, two.job.id);
        assert!(claim(db, "w3").await.is_none());
    }
}

store_test! {
    async fn a_job_for_one_tenant_keeps_its_tenant_through_the_claim(db: &TestDb) {
        let c = connection(&db.store, "csp").await;
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let id = tx
            .enqueue_job(&NewJob { tenant_id: Some("tenant-b".into()), entity: "assets".into(), ..job(c) })
            .await
            .unwrap()
            .unwrap();
        tx.commit().await.unwrap();
        let claimed = claim(db, "w1").await.unwrap();
        assert_eq!(claimed.job.id, id);
        assert_eq!(claimed.job.tenant_id.as_deref(), Some("tenant-b"));
        assert_eq!(claimed.job.entity, "assets");
        assert_eq!(claimed.job.status, JobStatus::Running);
    }
}
