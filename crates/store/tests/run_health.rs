//! Run heartbeats, closing the runs whose process died, workers' presence, and the read-only
//! views the health list and the run history are built from.

use crate::store_test;
use deskbridge_core::RunId;
use deskbridge_store::{NewConnection, NewJob, NewSchedule, RunCounts, RunFilter, RunStatus, WriteContext};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

fn new_connection(name: &str) -> NewConnection {
    NewConnection {
        name: name.into(),
        kind: "entra".into(),
        config: json!({"tenant_id": name}),
        enabled_instances: "production".into(),
    }
}

fn minutes(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

store_test! {
    async fn a_run_without_heartbeats_is_closed_as_interrupted(db: &TestDb) {
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let a = tx.create_connection(&new_connection("alpha")).await.unwrap().id;
        let b = tx.create_connection(&new_connection("beta")).await.unwrap().id;
        let dead = tx.start_run(Some(a), "sync").await.unwrap();
        let other = tx.start_run(Some(b), "sync").await.unwrap();
        tx.commit().await.unwrap();

        // Ten minutes later the run of beta still beats; alpha's process is gone.
        db.clock.advance(minutes(10));
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        assert!(tx.heartbeat_run(other).await.unwrap());
        let stale_before = db.store.now().checked_sub(minutes(2)).unwrap();
        // Only the connection asked about is closed.
        assert_eq!(tx.close_stale_runs(Some(b), stale_before).await.unwrap(), Vec::<RunId>::new());
        assert_eq!(tx.close_stale_runs(None, stale_before).await.unwrap(), vec![dead]);
        let run = tx.run(dead).await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Interrupted);
        assert!(run.ended_at.is_some());
        let message = run.message.unwrap();
        assert!(message.contains("resumes from the last committed tenant"), "{message}");
        assert_eq!(tx.run(other).await.unwrap().unwrap().status, RunStatus::Running);
        // An ended run has no heartbeat to renew, and is not closed again.
        assert!(!tx.heartbeat_run(dead).await.unwrap());
        assert!(!tx.interrupt_run(dead, "again").await.unwrap());
        assert!(tx.interrupt_run(other, "interrupted: stopped by SIGTERM").await.unwrap());
        assert_eq!(tx.run(other).await.unwrap().unwrap().status, RunStatus::Interrupted);
        tx.commit().await.unwrap();
    }
}

store_test! {
    async fn workers_are_live_until_they_stop_or_go_quiet(db: &TestDb) {
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        tx.worker_seen("w1").await.unwrap();
        tx.worker_seen("w2").await.unwrap();
        tx.commit().await.unwrap();
        db.clock.advance(minutes(5));
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        tx.worker_seen("w1").await.unwrap();
        let recent = db.store.now().checked_sub(minutes(1)).unwrap();
        let live: Vec<String> = tx.live_workers(recent).await.unwrap().into_iter().map(|w| w.id).collect();
        assert_eq!(live, ["w1"]);
        tx.worker_gone("w1").await.unwrap();
        assert!(tx.live_workers(recent).await.unwrap().is_empty());
        tx.commit().await.unwrap();
    }
}

store_test! {
    async fn the_history_lists_every_run_with_its_connection_and_job(db: &TestDb) {
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let a = tx.create_connection(&new_connection("alpha")).await.unwrap().id;
        let b = tx.create_connection(&new_connection("beta")).await.unwrap().id;
        let cli = tx.start_run(Some(a), "sync").await.unwrap();
        tx.finish_run(cli, RunStatus::Succeeded, None).await.unwrap();
        let job = tx
            .enqueue_job(&NewJob {
                connection_id: b,
                entity: "directory".into(),
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
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let claimed = tx.claim_job("w1", Timestamp::MAX).await.unwrap().unwrap();
        let queued = tx.start_run(Some(b), "assets").await.unwrap();
        assert!(tx.set_job_run(job, "w1", claimed.job.attempts, queued).await.unwrap());
        tx.finish_run(queued, RunStatus::Failed, Some("boom")).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = db.store.read().await.unwrap();
        let all = tx.run_history(&RunFilter { limit: 10, ..RunFilter::default() }).await.unwrap();
        assert_eq!(all.iter().map(|r| r.run.id).collect::<Vec<_>>(), [queued, cli], "newest first");
        assert_eq!(all[0].connection.as_deref(), Some("beta"));
        assert_eq!(all[0].job_id, Some(job));
        assert_eq!(all[0].job_origin.as_deref(), Some("schedule"));
        assert_eq!(all[1].connection.as_deref(), Some("alpha"));
        assert_eq!(all[1].job_id, None, "a CLI sync has no job");
        let only_a = tx
            .run_history(&RunFilter { connection: Some(a), limit: 10, ..RunFilter::default() })
            .await
            .unwrap();
        assert_eq!(only_a.len(), 1);
        let failed = tx
            .run_history(&RunFilter { status: Some(RunStatus::Failed), limit: 10, ..RunFilter::default() })
            .await
            .unwrap();
        assert_eq!(failed.iter().map(|r| r.run.id).collect::<Vec<_>>(), [queued]);
        // An agent granted alpha alone sees alpha's runs alone; granted nothing, nothing.
        let visible = tx
            .run_history(&RunFilter { visible: Some(vec![a]), limit: 10, ..RunFilter::default() })
            .await
            .unwrap();
        assert_eq!(visible.iter().map(|r| r.run.id).collect::<Vec<_>>(), [cli]);
        let none = tx
            .run_history(&RunFilter { visible: Some(vec![]), limit: 10, ..RunFilter::default() })
            .await
            .unwrap();
        assert!(none.is_empty());
        tx.commit().await.unwrap();
    }
}

store_test! {
    async fn the_newest_run_of_each_kind_and_the_next_due_time(db: &TestDb) {
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let a = tx.create_connection(&new_connection("alpha")).await.unwrap().id;
        let b = tx.create_connection(&new_connection("beta")).await.unwrap().id;
        let mut newest = Vec::new();
        for kind in ["sync", "full", "sync", "assets"] {
            let run = tx.start_run(Some(a), kind).await.unwrap();
            tx.add_run_counts(run, &RunCounts { errors: 1, ..RunCounts::default() }).await.unwrap();
            newest.push(run);
        }
        let due = "2026-11-24T06:00:00Z".parse::<Timestamp>().unwrap();
        for (hours, enabled) in [(0, true), (-3, false), (2, true)] {
            let id = tx
                .add_schedule(&NewSchedule {
                    connection_id: a,
                    entity: "directory".into(),
                    kind: "interval".into(),
                    spec: "3600".into(),
                    time_zone: "UTC".into(),
                    window_start: None,
                    window_end: None,
                    next_due: due.checked_add(SignedDuration::from_hours(hours)).unwrap(),
                })
                .await
                .unwrap();
            if !enabled {
                tx.set_schedule_enabled(id, false).await.unwrap();
            }
        }
        tx.commit().await.unwrap();
        let mut tx = db.store.read().await.unwrap();
        let latest = tx.latest_runs(&["sync", "full", "assets", "licences"]).await.unwrap();
        let ids: Vec<RunId> = latest.iter().map(|r| r.id).collect();
        // sync's newest (the third), full's only one, assets' only one.
        assert_eq!(ids, [newest[1], newest[2], newest[3]]);
        let next = tx.next_due_by_connection().await.unwrap();
        assert_eq!(next.get(&a).map(String::as_str), Some("2026-11-24T06:00:00.000000Z"), "a disabled schedule does not count");
        assert_eq!(next.get(&b), None);
        tx.commit().await.unwrap();
    }
}
