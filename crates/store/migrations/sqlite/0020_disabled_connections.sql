-- Connections switched off, each with why: a sync of one (by hand, on a schedule or from a
-- notification) is refused with that reason instead of reaching for a source that is not there
-- (the demo's connections once its emulator has stopped). Enabling a connection removes its row.
CREATE TABLE disabled_connections (
    connection_id BIGINT PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    reason TEXT NOT NULL,
    disabled_at TEXT NOT NULL
);
