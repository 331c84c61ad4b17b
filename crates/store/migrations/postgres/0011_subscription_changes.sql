-- Changes the desk asks a source to make to a subscription (write-back: a new quantity), one row
-- per change asked for. The row is the change's journal (who asked, from what to what, what the
-- source answered) and its idempotency key: a change retried reuses the row's request id, which
-- the source applies once.
CREATE TABLE subscription_changes (
    id BIGSERIAL PRIMARY KEY,
    subscription_id BIGINT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    connection_id BIGINT NOT NULL,
    tenant_id TEXT NOT NULL,
    external_id TEXT NOT NULL,
    quantity_before BIGINT,
    quantity_after BIGINT NOT NULL,
    request_id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('pending', 'applied', 'refused', 'failed')),
    message TEXT,
    requested_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX subscription_changes_by_subscription ON subscription_changes (subscription_id, id);
