-- Partner Center webhook deliveries already accepted, so a replayed one is refused: one row per
-- key (`sig:` + SHA-256 of the signature, `event:` + SHA-256 of the event name, resource and
-- change date). Rows older than the accepted event age are pruned: such an event is refused as
-- stale before its key is looked up.
CREATE TABLE webhook_deliveries (
    key TEXT PRIMARY KEY,
    received_at TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received_at);

-- One queued or running job per connection, entity and tenant: a webhook's licences job for one
-- customer tenant must not be swallowed by another tenant's pending one (NULL: every tenant).
DROP INDEX jobs_one_active;
CREATE UNIQUE INDEX jobs_one_active ON jobs (connection_id, entity, COALESCE(tenant_id, ''))
    WHERE status IN ('queued', 'running');
