//! Runs that end when their owner dies: a run whose process stopped heartbeating is closed as
//! interrupted when the next sync of its connection starts, and that sync resumes from the
//! committed cursors; a run that keeps its heartbeat is left alone.

use std::time::Duration;

use deskbridge_store::{RunStatus, WriteContext};
use deskbridge_sync::liveness::{RunHeartbeat, close_stale_runs};
use jiff::SignedDuration;

use super::*;

store_test! {
    async fn a_dead_run_is_closed_as_interrupted_and_the_next_sync_resumes(db: &TestDb) {
        let fx = emulator(20).await;
        fx.connect(db, "contoso").await;
        let first = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(first.status, "succeeded");

        // A sync whose process was killed: its run was started and never ended.
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let connection = tx.connection_by_name("contoso").await.unwrap().unwrap().id;
        let dead = tx.start_run(Some(connection), "sync").await.unwrap();
        tx.commit().await.unwrap();

        // Within the lease it may be a sync still going on elsewhere: nothing is closed.
        db.clock.advance(SignedDuration::from_secs(30));
        assert!(close_stale_runs(&db.store, Some(connection)).await.unwrap().is_empty());

        // Past it, the next sync of the connection closes it first, then runs from the cursors.
        db.clock.advance(SignedDuration::from_mins(10));
        let next = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(next.status, "succeeded", "{next:?}");
        assert_eq!(next.mode, "delta", "the next run resumes from the committed cursors");
        let mut tx = db.store.read().await.unwrap();
        let run = tx.run(dead).await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Interrupted);
        assert!(run.message.unwrap_or_default().contains("the next run resumes"));
        let newest = tx.run(next.run_id.unwrap()).await.unwrap().unwrap();
        assert_eq!(newest.status, RunStatus::Succeeded);
        assert!(newest.heartbeat_at.is_some(), "a run starts with a heartbeat");
        tx.commit().await.unwrap();
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn a_run_that_keeps_its_heartbeat_is_left_running(db: &TestDb) {
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let run = tx.start_run(None, "sync").await.unwrap();
        tx.commit().await.unwrap();
        let beat = RunHeartbeat::every(&db.store, run, Duration::from_millis(20));
        for _ in 0..3 {
            db.clock.advance(SignedDuration::from_mins(5));
            // Long enough for a heartbeat at the new time to land.
            tokio::time::sleep(Duration::from_millis(150)).await;
            assert!(close_stale_runs(&db.store, None).await.unwrap().is_empty(), "a live run was closed");
        }
        // Its process stops: the heartbeats stop with it.
        drop(beat);
        db.clock.advance(SignedDuration::from_mins(5));
        assert_eq!(close_stale_runs(&db.store, None).await.unwrap(), vec![run]);
    }
}

/// Every progress update a sync told its observer.
#[derive(Debug, Default)]
struct Told(std::sync::Mutex<Vec<deskbridge_sync::RunProgress>>);

impl deskbridge_sync::SyncObserver for Told {
    fn progress(&self, progress: &deskbridge_sync::RunProgress) {
        self.0.lock().unwrap().push(progress.clone());
    }
}

store_test! {
    async fn a_run_tells_its_progress_as_it_goes_and_keeps_the_last_on_its_row(db: &TestDb) {
        let fx = emulator(30).await;
        fx.connect(db, "contoso").await;
        let told = Arc::new(Told::default());
        let options = SyncOptions { observer: Some(told.clone()), ..SyncOptions::default() };
        let outcome = sync(&db.store, "contoso", &options, &clock()).await.unwrap();
        assert_eq!(outcome.status, "succeeded", "{outcome:?}");

        let seen = told.0.lock().unwrap().clone();
        for stage in ["reading", "planning", "applying"] {
            assert!(seen.iter().any(|p| p.stage.as_str() == stage), "{stage} in {seen:?}");
        }
        assert!(seen.iter().all(|p| p.connection == "contoso"));
        assert!(seen.iter().any(|p| p.tenant.as_deref() == Some(fx.tenant.as_str())));
        // Counts only grow.
        for pair in seen.windows(2) {
            assert!(pair[1].requests >= pair[0].requests && pair[1].records >= pair[0].records);
            assert!(pair[1].pages >= pair[0].pages && pair[1].changes >= pair[0].changes);
        }
        let last = seen.last().unwrap();
        assert_eq!(last.stage.as_str(), "done");
        assert_eq!(last.records, 30, "every person read once");
        assert_eq!(last.tenants_done, 1);
        assert!(last.pages >= 1 && last.requests >= 1);
        assert_eq!(last.changes, u64::try_from(outcome.counts.created + outcome.counts.updated).unwrap());

        // The run's row keeps the last: what the run page and the API show.
        let mut tx = db.store.read().await.unwrap();
        let row = tx.run(outcome.run_id.unwrap()).await.unwrap().unwrap();
        tx.commit().await.unwrap();
        assert_eq!(row.progress["stage"], json!("done"));
        assert_eq!(row.progress["records"], json!(30));
        assert_eq!(row.progress["tenant"], json!(fx.tenant));

        // A preview tells its progress too, with planned changes.
        let told = Arc::new(Told::default());
        let options = SyncOptions { observer: Some(told.clone()), plan_only: true, full: true, ..SyncOptions::default() };
        sync(&db.store, "contoso", &options, &clock()).await.unwrap();
        let seen = told.0.lock().unwrap().clone();
        assert_eq!(seen.last().unwrap().records, 30);
        assert!(seen.iter().all(|p| p.stage.as_str() != "applying"), "a preview applies nothing");
        fx.emu.shutdown().await;
    }
}
