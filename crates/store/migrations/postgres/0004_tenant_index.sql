-- A sync reads only the users and agents its connection can match or change (RecordScope::SyncableBy).
-- Each part of that scope is found by an index (these, the source index and the object-id index), so a
-- sync of one tenant costs the size of that tenant, not of a desk shared by hundreds of tenants.
CREATE INDEX users_by_tenant ON users (lower(azure_tenant_id));
CREATE INDEX agents_by_tenant ON agents (lower(azure_tenant_id));
