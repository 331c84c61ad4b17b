-- Single sign-on to the admin UI with Microsoft credentials (OpenID Connect, `deskbridge sso`).
-- One configuration row (id 1); its client secret is sealed in `secrets` as (sso, 1, client_secret).
CREATE TABLE sso_settings (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    enabled BOOLEAN NOT NULL DEFAULT FALSE,
    client_id TEXT NOT NULL,
    authority TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- The tenants an administrator allowed by hand (tenant GUIDs, lower case). Tenants a CSP connection
-- maps to a desk customer are allowed too, computed from its tenant table, not stored here.
CREATE TABLE sso_allowed_tenants (
    tenant_id TEXT PRIMARY KEY,
    note TEXT NOT NULL DEFAULT '',
    added_at TEXT NOT NULL
);

-- Sign-ins started and not finished: the hash of their `state`, the nonce the id token must
-- carry, the PKCE verifier and where to go after. Taken (deleted) once, so a state is never used twice.
CREATE TABLE sso_sign_ins (
    state_hash TEXT PRIMARY KEY,
    nonce TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    next TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

-- The Microsoft identity an account signs in with: (tenant id, object id), both lower case.
ALTER TABLE accounts ADD COLUMN linked_tenant_id TEXT;
ALTER TABLE accounts ADD COLUMN linked_object_id TEXT;
CREATE UNIQUE INDEX accounts_linked_identity ON accounts (linked_tenant_id, linked_object_id);
