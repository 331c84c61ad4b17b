-- Subscriptions imported from Partner Center remember the customer tenant they belong to (a
-- tenant's read marks the ones Partner Center no longer lists), the new-commerce window in which
-- seats may still be reduced, whether they are trials, the unit they are sold in, and the
-- marketplace their price came from.
ALTER TABLE subscriptions ADD COLUMN tenant_id TEXT;
ALTER TABLE subscriptions ADD COLUMN cancellation_allowed_until TEXT;
ALTER TABLE subscriptions ADD COLUMN is_trial BOOLEAN;
ALTER TABLE subscriptions ADD COLUMN unit_type TEXT;
ALTER TABLE subscriptions ADD COLUMN market TEXT;
CREATE INDEX subscriptions_by_connection_tenant ON subscriptions (source_connection_id, lower(tenant_id));
