-- Assets imported from managed devices remember the tenant they were read from: a tenant's end
-- gives the deletion status only to the assets of that tenant a complete read did not find.
ALTER TABLE assets ADD COLUMN tenant_id TEXT;
CREATE INDEX assets_by_connection_tenant ON assets (source_connection_id, lower(tenant_id));
-- The asset matching field is compared ignoring case and surrounding spaces, within the tenant's
-- customer (as the planner compares it).
CREATE INDEX assets_by_customer_serial ON assets (customer_id, lower(trim(serial_number)));
CREATE INDEX assets_by_customer_name ON assets (customer_id, lower(trim(name)));
