-- Runs that end when their owner dies: a run keeps a heartbeat while it goes on, and a running run
-- whose heartbeat is older than the lease is closed as 'interrupted' (the next run resumes from
-- the cursors its tenants committed). Runs started before this migration have none: their
-- started_at stands in for it.
ALTER TABLE runs ADD COLUMN heartbeat_at TEXT;
CREATE INDEX runs_running ON runs (status, heartbeat_at);
-- The health view and the run history find each connection's newest run of each kind, and the
-- job that queued a run, without reading every run.
CREATE INDEX runs_by_connection_kind ON runs (connection_id, kind, id);
CREATE INDEX jobs_by_run ON jobs (run_id);

-- Workers say they are alive, so that queueing a job can tell when none is there to take it.
CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    seen_at TEXT NOT NULL
);
