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
