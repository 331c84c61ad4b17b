-- deskbridge schema v1.
-- Timestamps are TEXT in UTC, fixed width (YYYY-MM-DDTHH:MM:SS.ffffffZ), so they sort and compare
-- the same way on SQLite and PostgreSQL and one code path serves both. JSON is TEXT for the same reason.
-- Records imported from outside keep their source identity (source_connection_id, external_id):
-- re-imports find and update them instead of creating duplicates.

-- ---------------------------------------------------------------- configuration and sync state
CREATE TABLE connections (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    config TEXT NOT NULL DEFAULT '{}',
    enabled_instances TEXT NOT NULL DEFAULT 'production',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Sealed secrets (client secrets, private keys, refresh tokens); never plain text.
CREATE TABLE secrets (
    id INTEGER PRIMARY KEY,
    owner_table TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    field TEXT NOT NULL,
    key_id TEXT NOT NULL,
    sealed BLOB NOT NULL,
    expires_at TEXT,
    updated_at TEXT NOT NULL,
    UNIQUE (owner_table, owner_id, field)
);

CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    connection_id BIGINT REFERENCES connections (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    created_count BIGINT NOT NULL DEFAULT 0,
    updated_count BIGINT NOT NULL DEFAULT 0,
    deactivated_count BIGINT NOT NULL DEFAULT 0,
    unchanged_count BIGINT NOT NULL DEFAULT 0,
    conflict_count BIGINT NOT NULL DEFAULT 0,
    error_count BIGINT NOT NULL DEFAULT 0,
    message TEXT,
    progress TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT
);
CREATE INDEX runs_by_connection ON runs (connection_id, id);

-- Delta tokens and watermarks, written in the same transaction as the data they cover.
CREATE TABLE cursors (
    connection_id BIGINT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    value TEXT NOT NULL,
    run_id BIGINT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (connection_id, tenant_id, stream)
);

-- The change journal: one row per field changed by a write, in the write's transaction.
CREATE TABLE journal (
    id INTEGER PRIMARY KEY,
    run_id BIGINT,
    connection_id BIGINT,
    entity TEXT NOT NULL,
    record_id BIGINT NOT NULL,
    action TEXT NOT NULL,
    field TEXT NOT NULL,
    before_value TEXT,
    after_value TEXT,
    at TEXT NOT NULL
);
CREATE INDEX journal_by_record ON journal (entity, record_id, id);
CREATE INDEX journal_by_run ON journal (run_id, id);

CREATE TABLE inbound_log (
    id INTEGER PRIMARY KEY,
    run_id BIGINT,
    connection_id BIGINT,
    tenant_id TEXT,
    entity TEXT NOT NULL,
    external_id TEXT,
    payload TEXT,
    rule TEXT,
    action TEXT NOT NULL,
    result TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX inbound_log_by_run ON inbound_log (run_id, id);
CREATE INDEX inbound_log_by_connection ON inbound_log (connection_id, id);

CREATE TABLE outbound_log (
    id INTEGER PRIMARY KEY,
    run_id BIGINT,
    connection_id BIGINT,
    tenant_id TEXT,
    method TEXT NOT NULL,
    url TEXT NOT NULL,
    request_headers TEXT,
    request_body TEXT,
    status BIGINT,
    response_headers TEXT,
    response_body TEXT,
    duration_ms BIGINT,
    request_id TEXT,
    at TEXT NOT NULL
);
CREATE INDEX outbound_log_by_run ON outbound_log (run_id, id);
CREATE INDEX outbound_log_by_connection ON outbound_log (connection_id, id);

CREATE TABLE integration_errors (
    id INTEGER PRIMARY KEY,
    run_id BIGINT,
    connection_id BIGINT,
    tenant_id TEXT,
    entity TEXT,
    external_id TEXT,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    remedy TEXT,
    at TEXT NOT NULL
);
CREATE INDEX integration_errors_by_run ON integration_errors (run_id, id);
CREATE INDEX integration_errors_by_connection ON integration_errors (connection_id, id);

-- ---------------------------------------------------------------- the service desk's directory
CREATE TABLE top_levels (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    source_connection_id BIGINT,
    external_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX top_levels_source ON top_levels (source_connection_id, external_id);

CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    top_level_id BIGINT REFERENCES top_levels (id) ON DELETE SET NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    source_connection_id BIGINT,
    external_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX customers_source ON customers (source_connection_id, external_id);
CREATE INDEX customers_by_name ON customers (lower(name));

-- A customer's Azure tenants: several tenants may belong to one customer, never the reverse.
CREATE TABLE customer_tenants (
    customer_id BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL UNIQUE,
    PRIMARY KEY (customer_id, tenant_id)
);

CREATE TABLE sites (
    id INTEGER PRIMARY KEY,
    customer_id BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    is_main BOOLEAN NOT NULL DEFAULT FALSE,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    source_connection_id BIGINT,
    external_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX sites_source ON sites (source_connection_id, external_id);
CREATE UNIQUE INDEX sites_one_main_per_customer ON sites (customer_id) WHERE is_main;
CREATE INDEX sites_by_customer ON sites (customer_id, lower(name));

CREATE TABLE user_roles (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    source_connection_id BIGINT,
    external_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX user_roles_source ON user_roles (source_connection_id, external_id);

CREATE TABLE agent_roles (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    source_connection_id BIGINT,
    external_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX agent_roles_source ON agent_roles (source_connection_id, external_id);

CREATE TABLE teams (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    source_connection_id BIGINT,
    external_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX teams_source ON teams (source_connection_id, external_id);

CREATE TABLE cabs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    source_connection_id BIGINT,
    external_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX cabs_source ON cabs (source_connection_id, external_id);

CREATE TABLE cab_roles (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    source_connection_id BIGINT,
    external_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX cab_roles_source ON cab_roles (source_connection_id, external_id);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    site_id BIGINT NOT NULL REFERENCES sites (id),
    first_name TEXT,
    last_name TEXT,
    name TEXT NOT NULL,
    email TEXT,
    network_login TEXT,
    azure_object_id TEXT,
    azure_tenant_id TEXT,
    phone TEXT,
    mobile TEXT,
    job_title TEXT,
    department TEXT,
    employee_id TEXT,
    creation_type TEXT,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    is_service_account BOOLEAN NOT NULL DEFAULT FALSE,
    line_manager_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    last_sign_in TEXT,
    source_connection_id BIGINT,
    external_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX users_source ON users (source_connection_id, external_id);
CREATE INDEX users_by_azure_object_id ON users (azure_object_id);
CREATE INDEX users_by_email ON users (lower(email));
CREATE INDEX users_by_network_login ON users (lower(network_login));
CREATE INDEX users_by_site ON users (site_id);

CREATE TABLE user_role_assignments (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id BIGINT NOT NULL REFERENCES user_roles (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
);

CREATE TABLE agents (
    id INTEGER PRIMARY KEY,
    user_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    name TEXT NOT NULL,
    email TEXT,
    network_login TEXT,
    azure_object_id TEXT,
    azure_tenant_id TEXT,
    phone TEXT,
    job_title TEXT,
    department TEXT,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    licence_type TEXT NOT NULL DEFAULT 'concurrent' CHECK (licence_type IN ('named', 'concurrent')),
    creation_type TEXT,
    line_manager_id BIGINT REFERENCES agents (id) ON DELETE SET NULL,
    default_team_id BIGINT REFERENCES teams (id) ON DELETE SET NULL,
    source_connection_id BIGINT,
    external_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX agents_source ON agents (source_connection_id, external_id);
CREATE INDEX agents_by_azure_object_id ON agents (azure_object_id);
CREATE INDEX agents_by_email ON agents (lower(email));

CREATE TABLE agent_role_assignments (
    agent_id BIGINT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    role_id BIGINT NOT NULL REFERENCES agent_roles (id) ON DELETE CASCADE,
    PRIMARY KEY (agent_id, role_id)
);

CREATE TABLE agent_teams (
    agent_id BIGINT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    team_id BIGINT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    can_be_assigned BOOLEAN NOT NULL DEFAULT TRUE,
    can_see_unassigned BOOLEAN NOT NULL DEFAULT TRUE,
    can_see_others_tickets BOOLEAN NOT NULL DEFAULT TRUE,
    PRIMARY KEY (agent_id, team_id)
);

CREATE TABLE cab_user_members (
    cab_id BIGINT NOT NULL REFERENCES cabs (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    cab_role_id BIGINT REFERENCES cab_roles (id) ON DELETE SET NULL,
    PRIMARY KEY (cab_id, user_id)
);

CREATE TABLE cab_agent_members (
    cab_id BIGINT NOT NULL REFERENCES cabs (id) ON DELETE CASCADE,
    agent_id BIGINT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    cab_role_id BIGINT REFERENCES cab_roles (id) ON DELETE SET NULL,
    PRIMARY KEY (cab_id, agent_id)
);

CREATE TABLE custom_fields (
    id INTEGER PRIMARY KEY,
    entity TEXT NOT NULL,
    name TEXT NOT NULL,
    label TEXT,
    field_type TEXT NOT NULL
        CHECK (field_type IN ('text', 'number', 'date', 'boolean', 'single_select', 'multi_select')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (entity, name)
);

CREATE TABLE custom_field_options (
    id INTEGER PRIMARY KEY,
    field_id BIGINT NOT NULL REFERENCES custom_fields (id) ON DELETE CASCADE,
    value TEXT NOT NULL,
    label TEXT,
    external_id TEXT,
    UNIQUE (field_id, value)
);

CREATE TABLE custom_field_values (
    field_id BIGINT NOT NULL REFERENCES custom_fields (id) ON DELETE CASCADE,
    record_id BIGINT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (field_id, record_id)
);

CREATE TABLE custom_tables (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    label TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE custom_table_columns (
    id INTEGER PRIMARY KEY,
    table_id BIGINT NOT NULL REFERENCES custom_tables (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    field_type TEXT NOT NULL
        CHECK (field_type IN ('text', 'number', 'date', 'boolean', 'single_select', 'multi_select')),
    UNIQUE (table_id, name)
);

CREATE TABLE custom_table_rows (
    id INTEGER PRIMARY KEY,
    table_id BIGINT NOT NULL REFERENCES custom_tables (id) ON DELETE CASCADE,
    data TEXT NOT NULL DEFAULT '{}',
    source_connection_id BIGINT,
    external_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX custom_table_rows_source ON custom_table_rows (table_id, source_connection_id, external_id);

CREATE TABLE licences (
    id INTEGER PRIMARY KEY,
    customer_id BIGINT REFERENCES customers (id) ON DELETE CASCADE,
    sku_id TEXT,
    part_number TEXT,
    friendly_name TEXT NOT NULL,
    total_units BIGINT,
    consumed_units BIGINT,
    capability_status TEXT,
    source_connection_id BIGINT,
    external_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX licences_source ON licences (source_connection_id, external_id);
CREATE INDEX licences_by_sku ON licences (customer_id, sku_id);

CREATE TABLE user_licences (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    licence_id BIGINT NOT NULL REFERENCES licences (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, licence_id)
);

CREATE TABLE subscriptions (
    id INTEGER PRIMARY KEY,
    customer_id BIGINT REFERENCES customers (id) ON DELETE CASCADE,
    licence_id BIGINT REFERENCES licences (id) ON DELETE SET NULL,
    offer_id TEXT,
    offer_name TEXT,
    friendly_name TEXT,
    quantity BIGINT,
    status TEXT,
    billing_cycle TEXT,
    term_duration TEXT,
    start_date TEXT,
    end_date TEXT,
    auto_renew BOOLEAN,
    unit_price DOUBLE PRECISION,
    currency TEXT,
    source_connection_id BIGINT,
    external_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX subscriptions_source ON subscriptions (source_connection_id, external_id);

CREATE TABLE asset_types (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    source_connection_id BIGINT,
    external_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX asset_types_source ON asset_types (source_connection_id, external_id);

CREATE TABLE assets (
    id INTEGER PRIMARY KEY,
    customer_id BIGINT REFERENCES customers (id) ON DELETE CASCADE,
    site_id BIGINT REFERENCES sites (id) ON DELETE SET NULL,
    user_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    asset_type_id BIGINT REFERENCES asset_types (id) ON DELETE SET NULL,
    name TEXT,
    serial_number TEXT,
    status TEXT NOT NULL DEFAULT 'active',
    source_connection_id BIGINT,
    external_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX assets_source ON assets (source_connection_id, external_id);
CREATE INDEX assets_by_serial ON assets (serial_number);

CREATE TABLE tickets (
    id INTEGER PRIMARY KEY,
    summary TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    agent_id BIGINT REFERENCES agents (id) ON DELETE SET NULL,
    team_id BIGINT REFERENCES teams (id) ON DELETE SET NULL,
    source_connection_id BIGINT,
    external_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX tickets_source ON tickets (source_connection_id, external_id);
CREATE INDEX tickets_by_agent ON tickets (agent_id);

-- A follower is a desk user, or an email address when the person is not in the desk.
CREATE TABLE ticket_followers (
    ticket_id BIGINT NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    follower TEXT NOT NULL,
    PRIMARY KEY (ticket_id, follower)
);
