-- Settings of the desk as a whole (not of one connection), one row per setting: its value as JSON,
-- and who changed it last. The first is how distribution groups follow tickets: allowed or not,
-- and the connection a group is read through when none is named.
CREATE TABLE desk_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
