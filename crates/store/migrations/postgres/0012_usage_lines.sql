-- Consumption billing: each customer's metered usage (Azure plan resources, per day) as a source
-- reports it, for finance to list, export and bill (the guide's consumption billing lines). A line
-- is the source's record: the same line read again updates it, never doubles it.
CREATE TABLE usage_lines (
    id BIGSERIAL PRIMARY KEY,
    customer_id BIGINT REFERENCES customers (id) ON DELETE CASCADE,
    subscription_id BIGINT REFERENCES subscriptions (id) ON DELETE SET NULL,
    tenant_id TEXT,
    usage_start TEXT,
    usage_end TEXT,
    resource_id TEXT,
    resource_name TEXT,
    category TEXT,
    subcategory TEXT,
    region TEXT,
    quantity DOUBLE PRECISION,
    unit TEXT,
    resource_uri TEXT,
    source_connection_id BIGINT,
    external_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX usage_lines_source ON usage_lines (source_connection_id, external_id);
CREATE INDEX usage_lines_by_customer ON usage_lines (customer_id, usage_start);
