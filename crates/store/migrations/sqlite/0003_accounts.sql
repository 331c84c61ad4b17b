-- deskbridge schema v3: who may use the admin UI and API, and what each may touch.
-- Passwords, session tokens and API tokens are stored only as hashes; a database dump gives no way in.

CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL DEFAULT '',
    -- PHC string (argon2id); the plain password is never stored.
    password_hash TEXT NOT NULL,
    -- 'administrator' or 'agent'.
    role TEXT NOT NULL,
    -- An agent with this permission may create connections (and gets read and modify on them).
    can_configure_connections BOOLEAN NOT NULL DEFAULT FALSE,
    -- Set for a one-time password: the account must choose a new one at its next sign-in.
    must_change_password BOOLEAN NOT NULL DEFAULT FALSE,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Browser sessions: the cookie holds a random token, the table its SHA-256.
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    -- The synchroniser token every form and unsafe API call of this session must send back.
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX sessions_account ON sessions (account_id);

-- Bearer tokens for scripts; shown once when created, stored as SHA-256.
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    expires_at TEXT
);
CREATE INDEX api_tokens_account ON api_tokens (account_id);

-- Per-connection access for agents: 'read' or 'modify' (read and modify).
CREATE TABLE connection_grants (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    connection_id BIGINT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    access TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (account_id, connection_id)
);
CREATE INDEX connection_grants_connection ON connection_grants (connection_id);
