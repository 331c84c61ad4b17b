-- Licence assignments the desk asks a source to make on a user (write-back: assign or remove a
-- licence in Entra), one row per change asked for: who asked, which user and licence, what the
-- source answered. Written before the source is called, so a crash or a lost answer leaves an
-- open change, which asking again re-sends instead of adding a second one.
CREATE TABLE licence_changes (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    licence_id BIGINT NOT NULL REFERENCES licences (id) ON DELETE CASCADE,
    connection_id BIGINT NOT NULL,
    tenant_id TEXT NOT NULL,
    user_external_id TEXT NOT NULL,
    sku_id TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('assign', 'remove')),
    status TEXT NOT NULL CHECK (status IN ('pending', 'applied', 'refused', 'failed')),
    message TEXT,
    requested_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX licence_changes_by_user ON licence_changes (user_id, id);
