-- Graph change notification subscriptions, one row per connection, tenant and resource (users,
-- groups): Graph's subscription id while one exists, the SHA-256 of its random clientState (the
-- state itself is kept nowhere: a notification is verified by hashing what it carries), its
-- expiry, what a lifecycle notification asked for (`reauthorize`, `resubscribe`), a delta round
-- a notification asked for while one was running, counted refusals, and the last error in
-- people's words. The row stays when creation fails, so the error is shown against the
-- connection.
CREATE TABLE graph_subscriptions (
    connection_id BIGINT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    subscription_id TEXT,
    client_state_hash TEXT,
    expires_at TEXT,
    action TEXT,
    pending_round BIGINT NOT NULL DEFAULT 0,
    refused BIGINT NOT NULL DEFAULT 0,
    notified_at TEXT,
    error TEXT,
    remedy TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (connection_id, tenant_id, resource)
);
CREATE UNIQUE INDEX graph_subscriptions_id ON graph_subscriptions (subscription_id);
