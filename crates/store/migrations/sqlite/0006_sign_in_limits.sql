-- Failed sign-ins, counted per username (as typed, whether or not such an account exists, so the
-- answer never tells which usernames exist) and per client address. After a few failures in a row the
-- key is blocked until `blocked_until`, a delay that doubles with each further failure; a successful
-- sign-in or an administrator's unlock deletes the row. Rows untouched for a day are forgotten.
CREATE TABLE sign_in_failures (
    -- 'account' (key: the username) or 'address' (key: the client's IP address).
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    failures BIGINT NOT NULL DEFAULT 0,
    last_failure_at TEXT NOT NULL,
    blocked_until TEXT,
    PRIMARY KEY (kind, key)
);
CREATE INDEX sign_in_failures_last ON sign_in_failures (last_failure_at);
