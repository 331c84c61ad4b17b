-- A job may import one partition (a customer tenant of a CSP connection) rather than all of them,
-- as "import now for one site" does.
ALTER TABLE jobs ADD COLUMN tenant_id TEXT;
