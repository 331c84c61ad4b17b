-- The sync agent: schedules, durable jobs with leases, and per-connection backoff.

CREATE TABLE schedules (
    id INTEGER PRIMARY KEY,
    connection_id BIGINT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    entity TEXT NOT NULL,
    kind TEXT NOT NULL,
    spec TEXT NOT NULL,
    time_zone TEXT NOT NULL DEFAULT 'UTC',
    window_start TEXT,
    window_end TEXT,
    enabled BIGINT NOT NULL DEFAULT 1,
    next_due TEXT NOT NULL,
    last_fired_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX schedules_due ON schedules (enabled, next_due);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    connection_id BIGINT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    entity TEXT NOT NULL,
    status TEXT NOT NULL,
    full_read BIGINT NOT NULL DEFAULT 0,
    origin TEXT NOT NULL,
    schedule_id BIGINT REFERENCES schedules (id) ON DELETE SET NULL,
    due_at TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    takeovers BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires_at TEXT,
    heartbeat_at TEXT,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    run_id BIGINT REFERENCES runs (id) ON DELETE SET NULL,
    progress TEXT NOT NULL DEFAULT '{}',
    message TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT
);
-- At most one queued or running job per connection and entity, whatever the number of workers.
CREATE UNIQUE INDEX jobs_one_active ON jobs (connection_id, entity) WHERE status IN ('queued', 'running');
-- A schedule fires once per due time.
CREATE UNIQUE INDEX jobs_once_per_due ON jobs (schedule_id, due_at);
CREATE INDEX jobs_by_status ON jobs (status, id);

CREATE TABLE connection_health (
    connection_id BIGINT PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    not_before TEXT,
    last_error TEXT,
    updated_at TEXT NOT NULL
);
