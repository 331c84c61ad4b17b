//! Connections, runs, cursors, the request logs and integration errors: what deskbridge knows
//! about its own syncs. Cursors and counts are written through the same [`StoreTx`] as the data
//! they cover, so a crash never leaves a cursor ahead of its data.

use deskbridge_core::{ConnectionId, RecordId, RunId, redact};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::{Sql, SqlType, StoreTx};
use crate::schema::Entity;
use crate::{Result, StoreError, format_timestamp};

/// A configured connection to an upstream system.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Connection {
    pub id: ConnectionId,
    pub name: String,
    pub kind: String,
    /// Kind-specific settings; never holds a secret (those are sealed separately).
    pub config: Value,
    /// "production", "test" or "production,test".
    pub enabled_instances: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone)]
pub struct NewConnection {
    pub name: String,
    pub kind: String,
    pub config: Value,
    pub enabled_instances: String,
}

/// The state of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    /// Finished, but some tenants or records failed (see its errors).
    Partial,
    Failed,
    /// Stopped before applying anything, waiting for an administrator (circuit breaker).
    Held,
    Cancelled,
    /// Its process stopped before it ended (killed, Ctrl-C, a lost heartbeat): what its tenants
    /// committed stays, and the next run resumes from their cursors.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Partial => "partial",
            Self::Failed => "failed",
            Self::Held => "held",
            Self::Cancelled => "cancelled",
            Self::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Running,
            Self::Succeeded,
            Self::Partial,
            Self::Failed,
            Self::Held,
            Self::Cancelled,
            Self::Interrupted,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// Queued or running: a job in this state still holds its connection and entity.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

/// What a run did to the desk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    pub created: i64,
    pub updated: i64,
    pub deactivated: i64,
    pub unchanged: i64,
    pub conflicts: i64,
    pub errors: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    pub id: RunId,
    pub connection_id: Option<ConnectionId>,
    pub kind: String,
    pub status: RunStatus,
    pub counts: RunCounts,
    pub message: Option<String>,
    pub progress: Value,
    pub created_at: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    /// When the process running it last said it was alive (see `StoreTx::heartbeat_run`).
    pub heartbeat_at: Option<String>,
}

/// Which cursor: per connection, tenant and stream (e.g. "users/delta").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CursorKey {
    pub connection_id: ConnectionId,
    pub tenant_id: String,
    pub stream: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cursor {
    pub value: String,
    pub run_id: Option<RunId>,
    pub updated_at: String,
}

/// One processed inbound change: what arrived, which rule matched, what was done.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InboundEntry {
    pub tenant_id: Option<String>,
    pub entity: String,
    pub external_id: Option<String>,
    pub payload: Option<Value>,
    pub rule: Option<String>,
    pub action: String,
    pub result: String,
}

/// One request deskbridge sent upstream. Credentials are redacted when it is stored.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OutboundEntry {
    pub tenant_id: Option<String>,
    pub method: String,
    pub url: String,
    pub request_headers: Vec<(String, String)>,
    pub request_body: Option<String>,
    pub status: Option<u16>,
    pub response_headers: Vec<(String, String)>,
    pub response_body: Option<String>,
    pub duration_ms: Option<i64>,
    pub request_id: Option<String>,
}

/// A failure recorded against a run, tenant and record, with what to do about it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IntegrationError {
    pub tenant_id: Option<String>,
    pub entity: Option<String>,
    pub external_id: Option<String>,
    pub code: String,
    pub message: String,
    pub remedy: Option<String>,
}

/// A journal row: one field of one record changed by one write.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JournalEntry {
    pub id: i64,
    pub run_id: Option<RunId>,
    pub connection_id: Option<ConnectionId>,
    pub entity: String,
    pub record_id: i64,
    pub action: String,
    pub field: String,
    pub before: Value,
    pub after: Value,
    pub at: String,
}

const CONNECTION_COLUMNS: &str = "id, name, kind, config, enabled_instances, created_at, updated_at";
const CONNECTION_TYPES: [SqlType; 7] = [
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
];

fn connection_from_row(row: &[Sql]) -> Result<Connection> {
    match row {
        [
            Sql::Int(id),
            Sql::Text(name),
            Sql::Text(kind),
            Sql::Text(config),
            Sql::Text(inst),
            Sql::Text(c),
            Sql::Text(u),
        ] => Ok(Connection {
            id: ConnectionId(*id),
            name: name.clone(),
            kind: kind.clone(),
            config: serde_json::from_str(config)
                .map_err(|e| StoreError::Corrupt(format!("connection {name} config"), e.to_string()))?,
            enabled_instances: inst.clone(),
            created_at: c.clone(),
            updated_at: u.clone(),
        }),
        _ => Err(StoreError::Corrupt(
            "connections".into(),
            "unexpected row shape".into(),
        )),
    }
}

pub(crate) const RUN_COLUMNS: &str = "id, connection_id, kind, status, created_count, updated_count, deactivated_count, \
    unchanged_count, conflict_count, error_count, message, progress, created_at, started_at, ended_at, heartbeat_at";
pub(crate) const RUN_TYPES: [SqlType; 16] = [
    SqlType::Int,
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
];

pub(crate) fn run_from_row(row: &[Sql]) -> Result<Run> {
    let corrupt = || StoreError::Corrupt("runs".into(), "unexpected row shape".into());
    let int = |i: usize| row.get(i).and_then(Sql::as_int).unwrap_or(0);
    let text = |i: usize| row.get(i).and_then(Sql::as_text).map(str::to_owned);
    let status = text(3).and_then(|s| RunStatus::parse(&s)).ok_or_else(corrupt)?;
    Ok(Run {
        id: RunId(row.first().and_then(Sql::as_int).ok_or_else(corrupt)?),
        connection_id: row.get(1).and_then(Sql::as_int).map(ConnectionId),
        kind: text(2).ok_or_else(corrupt)?,
        status,
        counts: RunCounts {
            created: int(4),
            updated: int(5),
            deactivated: int(6),
            unchanged: int(7),
            conflicts: int(8),
            errors: int(9),
        },
        message: text(10),
        progress: text(11)
            .and_then(|p| serde_json::from_str(&p).ok())
            .unwrap_or(Value::Null),
        created_at: text(12).ok_or_else(corrupt)?,
        started_at: text(13),
        ended_at: text(14),
        heartbeat_at: text(15),
    })
}

impl StoreTx {
    fn now_text(&self) -> Sql {
        Sql::Text(format_timestamp(self.at))
    }

    fn run_arg(&self) -> Sql {
        Sql::opt_int(self.ctx.run_id.map(|r| r.0))
    }

    fn connection_arg(&self) -> Sql {
        Sql::opt_int(self.ctx.connection_id.map(|c| c.0))
    }

    // ------------------------------------------------------------------ connections

    pub async fn create_connection(&mut self, new: &NewConnection) -> Result<Connection> {
        let sql = format!(
            "INSERT INTO connections (name, kind, config, enabled_instances, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING {CONNECTION_COLUMNS}"
        );
        let args = [
            Sql::text(new.name.clone()),
            Sql::text(new.kind.clone()),
            Sql::Text(new.config.to_string()),
            Sql::text(new.enabled_instances.clone()),
            self.now_text(),
        ];
        let row = self
            .row(&sql, &args, &CONNECTION_TYPES)
            .await
            .map_err(|e| match e {
                StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                    StoreError::Conflict(format!("a connection named {:?} already exists", new.name))
                }
                other => other,
            })?;
        connection_from_row(&row.ok_or_else(|| StoreError::Corrupt("connections".into(), "no row".into()))?)
    }

    pub async fn update_connection_config(&mut self, id: ConnectionId, config: &Value) -> Result<()> {
        let n = self
            .execute(
                "UPDATE connections SET config = $1, updated_at = $2 WHERE id = $3",
                &[Sql::Text(config.to_string()), self.now_text(), Sql::Int(id.0)],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound {
                entity: "connection",
                id: id.0,
            });
        }
        Ok(())
    }

    pub async fn connection_by_name(&mut self, name: &str) -> Result<Option<Connection>> {
        let sql = format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE name = $1");
        self.row(&sql, &[Sql::text(name)], &CONNECTION_TYPES)
            .await?
            .as_deref()
            .map(connection_from_row)
            .transpose()
    }

    pub async fn connection(&mut self, id: ConnectionId) -> Result<Option<Connection>> {
        let sql = format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = $1");
        self.row(&sql, &[Sql::Int(id.0)], &CONNECTION_TYPES)
            .await?
            .as_deref()
            .map(connection_from_row)
            .transpose()
    }

    pub async fn connections(&mut self) -> Result<Vec<Connection>> {
        let sql = format!("SELECT {CONNECTION_COLUMNS} FROM connections ORDER BY name");
        self.rows(&sql, &[], &CONNECTION_TYPES)
            .await?
            .iter()
            .map(|r| connection_from_row(r))
            .collect()
    }

    /// Removes a connection, its cursors, runs and sealed secrets. Desk records it imported stay.
    pub async fn delete_connection(&mut self, id: ConnectionId) -> Result<()> {
        self.execute(
            "DELETE FROM secrets WHERE owner_table = 'connections' AND owner_id = $1",
            &[Sql::text(id.0.to_string())],
        )
        .await?;
        let n = self
            .execute("DELETE FROM connections WHERE id = $1", &[Sql::Int(id.0)])
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound {
                entity: "connection",
                id: id.0,
            });
        }
        Ok(())
    }

    /// Switches `connection` off with `reason` (said to whoever syncs it: what happened and what
    /// to do), or changes the reason of one already off.
    pub async fn disable_connection(&mut self, connection: ConnectionId, reason: &str) -> Result<()> {
        self.execute(
            "INSERT INTO disabled_connections (connection_id, reason, disabled_at) VALUES ($1, $2, $3) \
             ON CONFLICT (connection_id) DO UPDATE SET reason = excluded.reason, disabled_at = excluded.disabled_at",
            &[Sql::Int(connection.0), Sql::text(reason), self.now_text()],
        )
        .await?;
        Ok(())
    }

    /// Switches `connection` back on; whether it was off.
    pub async fn enable_connection(&mut self, connection: ConnectionId) -> Result<bool> {
        let n = self
            .execute(
                "DELETE FROM disabled_connections WHERE connection_id = $1",
                &[Sql::Int(connection.0)],
            )
            .await?;
        Ok(n > 0)
    }

    /// Why `connection` is switched off, if it is.
    pub async fn connection_disabled(&mut self, connection: ConnectionId) -> Result<Option<String>> {
        let row = self
            .row(
                "SELECT reason FROM disabled_connections WHERE connection_id = $1",
                &[Sql::Int(connection.0)],
                &[SqlType::Text],
            )
            .await?;
        Ok(row.and_then(|r| r.first().and_then(Sql::as_text).map(str::to_owned)))
    }

    /// Notes that `connection` created the desk customer `customer` for itself (see
    /// [`StoreTx::created_customers`]); call it in the transaction that created both.
    pub async fn record_created_customer(
        &mut self,
        connection: ConnectionId,
        customer: RecordId,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO connection_created_customers (connection_id, customer_id) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
            &[Sql::Int(connection.0), Sql::Int(customer.0)],
        )
        .await?;
        Ok(())
    }

    /// The desk customers `connection` created for itself (and that still exist), in id order.
    pub async fn created_customers(&mut self, connection: ConnectionId) -> Result<Vec<RecordId>> {
        let rows = self
            .rows(
                "SELECT customer_id FROM connection_created_customers WHERE connection_id = $1 \
                 ORDER BY customer_id",
                &[Sql::Int(connection.0)],
                &[SqlType::Int],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| r.first().and_then(Sql::as_int).map(RecordId))
            .collect())
    }

    /// What the desk customer `customer` holds beyond its main site, its tenants and its custom
    /// fields: (what, how many) for each kind of record that refers to it and has any.
    pub async fn customer_holdings(&mut self, customer: RecordId) -> Result<Vec<(&'static str, i64)>> {
        const HOLDINGS: &[(&str, &str)] = &[
            (
                "sites besides the main site",
                "SELECT COUNT(*) FROM sites WHERE customer_id = $1 AND NOT COALESCE(is_main, FALSE)",
            ),
            (
                "users",
                "SELECT COUNT(*) FROM users WHERE site_id IN (SELECT id FROM sites WHERE customer_id = $1)",
            ),
            (
                "agents",
                "SELECT COUNT(*) FROM agents WHERE user_id IN (SELECT u.id FROM users u JOIN sites s ON \
                 s.id = u.site_id WHERE s.customer_id = $1)",
            ),
            ("assets", "SELECT COUNT(*) FROM assets WHERE customer_id = $1"),
            (
                "subscriptions",
                "SELECT COUNT(*) FROM subscriptions WHERE customer_id = $1",
            ),
            ("licences", "SELECT COUNT(*) FROM licences WHERE customer_id = $1"),
            (
                "usage lines",
                "SELECT COUNT(*) FROM usage_lines WHERE customer_id = $1",
            ),
        ];
        let mut out = Vec::new();
        for (what, sql) in HOLDINGS {
            let row = self.row(sql, &[Sql::Int(customer.0)], &[SqlType::Int]).await?;
            let n = row.and_then(|r| r.first().and_then(Sql::as_int)).unwrap_or(0);
            if n > 0 {
                out.push((*what, n));
            }
        }
        Ok(out)
    }

    // ------------------------------------------------------------------ runs

    /// Starts a run now (status running).
    pub async fn start_run(&mut self, connection_id: Option<ConnectionId>, kind: &str) -> Result<RunId> {
        let args = [
            Sql::opt_int(connection_id.map(|c| c.0)),
            Sql::text(kind),
            self.now_text(),
        ];
        let sql = "INSERT INTO runs (connection_id, kind, status, created_at, started_at, heartbeat_at) \
                   VALUES ($1, $2, 'running', $3, $3, $3) RETURNING id";
        Ok(RunId(self.insert_returning_id(sql, &args, "runs").await?))
    }

    /// Adds to a run's counts; call it in the transaction that made the changes counted.
    pub async fn add_run_counts(&mut self, run: RunId, add: &RunCounts) -> Result<()> {
        self.execute(
            "UPDATE runs SET created_count = created_count + $1, updated_count = updated_count + $2, \
             deactivated_count = deactivated_count + $3, unchanged_count = unchanged_count + $4, \
             conflict_count = conflict_count + $5, error_count = error_count + $6 WHERE id = $7",
            &[
                Sql::Int(add.created),
                Sql::Int(add.updated),
                Sql::Int(add.deactivated),
                Sql::Int(add.unchanged),
                Sql::Int(add.conflicts),
                Sql::Int(add.errors),
                Sql::Int(run.0),
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn set_run_progress(&mut self, run: RunId, progress: &Value) -> Result<()> {
        self.execute(
            "UPDATE runs SET progress = $1 WHERE id = $2",
            &[Sql::Text(progress.to_string()), Sql::Int(run.0)],
        )
        .await?;
        Ok(())
    }

    pub async fn finish_run(&mut self, run: RunId, status: RunStatus, message: Option<&str>) -> Result<()> {
        let ended = if matches!(status, RunStatus::Running | RunStatus::Queued | RunStatus::Held) {
            Sql::Null(SqlType::Text)
        } else {
            self.now_text()
        };
        self.execute(
            "UPDATE runs SET status = $1, message = $2, ended_at = $3 WHERE id = $4",
            &[
                Sql::text(status.as_str()),
                Sql::opt_text(message),
                ended,
                Sql::Int(run.0),
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn run(&mut self, id: RunId) -> Result<Option<Run>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
        self.row(&sql, &[Sql::Int(id.0)], &RUN_TYPES)
            .await?
            .as_deref()
            .map(run_from_row)
            .transpose()
    }

    /// The newest runs first.
    pub async fn runs(&mut self, connection: Option<ConnectionId>, limit: u32) -> Result<Vec<Run>> {
        let (sql, args) = match connection {
            Some(c) => (
                format!("SELECT {RUN_COLUMNS} FROM runs WHERE connection_id = $1 ORDER BY id DESC LIMIT $2"),
                vec![Sql::Int(c.0), Sql::Int(i64::from(limit))],
            ),
            None => (
                format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT $1"),
                vec![Sql::Int(i64::from(limit))],
            ),
        };
        self.rows(&sql, &args, &RUN_TYPES)
            .await?
            .iter()
            .map(|r| run_from_row(r))
            .collect()
    }

    // ------------------------------------------------------------------ cursors

    /// Saves a cursor; call it in the transaction that applied the page it covers.
    pub async fn set_cursor(&mut self, key: &CursorKey, value: &str) -> Result<()> {
        self.execute(
            "INSERT INTO cursors (connection_id, tenant_id, stream, value, run_id, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (connection_id, tenant_id, stream) DO UPDATE SET value = excluded.value, run_id = excluded.run_id, \
             updated_at = excluded.updated_at",
            &[
                Sql::Int(key.connection_id.0),
                Sql::text(key.tenant_id.clone()),
                Sql::text(key.stream.clone()),
                Sql::text(value),
                self.run_arg(),
                self.now_text(),
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn cursor(&mut self, key: &CursorKey) -> Result<Option<Cursor>> {
        let row = self
            .row(
                "SELECT value, run_id, updated_at FROM cursors WHERE connection_id = $1 AND tenant_id = $2 AND stream = $3",
                &[Sql::Int(key.connection_id.0), Sql::text(key.tenant_id.clone()), Sql::text(key.stream.clone())],
                &[SqlType::Text, SqlType::Int, SqlType::Text],
            )
            .await?;
        Ok(row.and_then(|r| match r.as_slice() {
            [Sql::Text(value), run, Sql::Text(at)] => Some(Cursor {
                value: value.clone(),
                run_id: run.as_int().map(RunId),
                updated_at: at.clone(),
            }),
            _ => None,
        }))
    }

    /// When the connection's cursors last moved (the end of its last delta round), RFC 3339;
    /// `None` when it has none.
    pub async fn cursors_updated_at(&mut self, connection: ConnectionId) -> Result<Option<String>> {
        let row = self
            .row(
                "SELECT MAX(updated_at) FROM cursors WHERE connection_id = $1",
                &[Sql::Int(connection.0)],
                &[SqlType::Text],
            )
            .await?;
        Ok(row.and_then(|r| r.first().and_then(|v| v.as_text().map(str::to_owned))))
    }

    /// Every cursor of a connection, as (tenant, stream, value), ordered by tenant and stream.
    pub async fn cursors_of(&mut self, connection: ConnectionId) -> Result<Vec<(String, String, String)>> {
        let rows = self
            .rows(
                "SELECT tenant_id, stream, value FROM cursors WHERE connection_id = $1 ORDER BY tenant_id, stream",
                &[Sql::Int(connection.0)],
                &[SqlType::Text, SqlType::Text, SqlType::Text],
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| match r.as_slice() {
                [Sql::Text(tenant), Sql::Text(stream), Sql::Text(value)] => {
                    Some((tenant.clone(), stream.clone(), value.clone()))
                }
                _ => None,
            })
            .collect())
    }

    /// Forgets cursors: one stream of one tenant, or (with `None`) all of a connection's.
    /// Forgets every cursor of one tenant of the connection (its next run reads it whole).
    pub async fn clear_tenant_cursors(&mut self, connection: ConnectionId, tenant_id: &str) -> Result<u64> {
        self.execute(
            "DELETE FROM cursors WHERE connection_id = $1 AND lower(tenant_id) = lower($2)",
            &[Sql::Int(connection.0), Sql::text(tenant_id)],
        )
        .await
    }

    pub async fn clear_cursors(&mut self, connection: ConnectionId, key: Option<&CursorKey>) -> Result<u64> {
        match key {
            Some(k) => {
                self.execute(
                    "DELETE FROM cursors WHERE connection_id = $1 AND tenant_id = $2 AND stream = $3",
                    &[
                        Sql::Int(connection.0),
                        Sql::text(k.tenant_id.clone()),
                        Sql::text(k.stream.clone()),
                    ],
                )
                .await
            }
            None => {
                self.execute(
                    "DELETE FROM cursors WHERE connection_id = $1",
                    &[Sql::Int(connection.0)],
                )
                .await
            }
        }
    }

    // ------------------------------------------------------------------ logs and errors

    pub async fn log_inbound(&mut self, entry: &InboundEntry) -> Result<()> {
        let payload = entry.payload.as_ref().map(redact::json_text);
        // Queued: an import's log goes out as a few multi-row inserts.
        self.append_row(
            "inbound_log",
            "(run_id, connection_id, tenant_id, entity, external_id, payload, rule, action, result, at)",
            vec![
                self.run_arg(),
                self.connection_arg(),
                Sql::opt_text(entry.tenant_id.clone()),
                Sql::text(entry.entity.clone()),
                Sql::opt_text(entry.external_id.clone()),
                Sql::opt_text(payload),
                Sql::opt_text(entry.rule.clone()),
                Sql::text(entry.action.clone()),
                Sql::text(entry.result.clone()),
                self.now_text(),
            ],
        )
        .await
    }

    /// Stores an outbound request with every credential redacted (headers, query, bodies).
    pub async fn log_outbound(&mut self, entry: &OutboundEntry) -> Result<()> {
        let headers = |h: &[(String, String)]| {
            let redacted = redact::headers(h.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            serde_json::to_string(&redacted).unwrap_or_default()
        };
        self.execute(
            "INSERT INTO outbound_log (run_id, connection_id, tenant_id, method, url, request_headers, request_body, status, \
             response_headers, response_body, duration_ms, request_id, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            &[
                self.run_arg(),
                self.connection_arg(),
                Sql::opt_text(entry.tenant_id.clone()),
                Sql::text(entry.method.clone()),
                Sql::Text(redact::url(&entry.url)),
                Sql::Text(headers(&entry.request_headers)),
                Sql::opt_text(entry.request_body.as_deref().map(redact::body)),
                Sql::opt_int(entry.status.map(i64::from)),
                Sql::Text(headers(&entry.response_headers)),
                Sql::opt_text(entry.response_body.as_deref().map(redact::body)),
                Sql::opt_int(entry.duration_ms),
                Sql::opt_text(entry.request_id.clone()),
                self.now_text(),
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn record_error(&mut self, error: &IntegrationError) -> Result<()> {
        self.execute(
            "INSERT INTO integration_errors (run_id, connection_id, tenant_id, entity, external_id, code, message, remedy, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                self.run_arg(),
                self.connection_arg(),
                Sql::opt_text(error.tenant_id.clone()),
                Sql::opt_text(error.entity.clone()),
                Sql::opt_text(error.external_id.clone()),
                Sql::text(error.code.clone()),
                Sql::text(error.message.clone()),
                Sql::opt_text(error.remedy.clone()),
                self.now_text(),
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn errors_for_run(&mut self, run: RunId) -> Result<Vec<IntegrationError>> {
        let rows = self
            .rows(
                "SELECT tenant_id, entity, external_id, code, message, remedy FROM integration_errors WHERE run_id = $1 ORDER BY id",
                &[Sql::Int(run.0)],
                &[SqlType::Text; 6],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let text = |i: usize| r.get(i).and_then(Sql::as_text).map(str::to_owned);
                IntegrationError {
                    tenant_id: text(0),
                    entity: text(1),
                    external_id: text(2),
                    code: text(3).unwrap_or_default(),
                    message: text(4).unwrap_or_default(),
                    remedy: text(5),
                }
            })
            .collect())
    }

    // ------------------------------------------------------------------ journal

    /// The journal of one record, oldest first.
    pub async fn journal_for_record(
        &mut self,
        entity: Entity,
        id: deskbridge_core::RecordId,
    ) -> Result<Vec<JournalEntry>> {
        self.journal_where(
            "entity = $1 AND record_id = $2",
            &[Sql::text(entity.name()), Sql::Int(id.0)],
        )
        .await
    }

    /// Everything a run changed, oldest first.
    pub async fn journal_for_run(&mut self, run: RunId) -> Result<Vec<JournalEntry>> {
        self.journal_where("run_id = $1", &[Sql::Int(run.0)]).await
    }

    /// The whole journal (tests and audits of small stores), oldest first.
    pub async fn journal_all(&mut self) -> Result<Vec<JournalEntry>> {
        self.journal_where("1 = 1", &[]).await
    }

    async fn journal_where(&mut self, condition: &str, args: &[Sql]) -> Result<Vec<JournalEntry>> {
        let sql = format!(
            "SELECT id, run_id, connection_id, entity, record_id, action, field, before_value, after_value, at \
             FROM journal WHERE {condition} ORDER BY id"
        );
        let types = [
            SqlType::Int,
            SqlType::Int,
            SqlType::Int,
            SqlType::Text,
            SqlType::Int,
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
        ];
        let parse = |v: Option<&Sql>| -> Value {
            v.and_then(Sql::as_text)
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or(Value::Null)
        };
        let rows = self.rows(&sql, args, &types).await?;
        Ok(rows
            .iter()
            .map(|r| {
                let text = |i: usize| r.get(i).and_then(Sql::as_text).unwrap_or_default().to_owned();
                JournalEntry {
                    id: r.first().and_then(Sql::as_int).unwrap_or_default(),
                    run_id: r.get(1).and_then(Sql::as_int).map(RunId),
                    connection_id: r.get(2).and_then(Sql::as_int).map(ConnectionId),
                    entity: text(3),
                    record_id: r.get(4).and_then(Sql::as_int).unwrap_or_default(),
                    action: text(5),
                    field: text(6),
                    before: parse(r.get(7)),
                    after: parse(r.get(8)),
                    at: text(9),
                }
            })
            .collect())
    }
}

impl StoreTx {
    /// The inbound log, newest first, of one run (or of everything).
    pub async fn inbound_log(&mut self, run: Option<RunId>, limit: u32) -> Result<Vec<Value>> {
        let columns = [
            "id",
            "run_id",
            "connection_id",
            "tenant_id",
            "entity",
            "external_id",
            "payload",
            "rule",
            "action",
            "result",
            "at",
        ];
        let types = [
            SqlType::Int,
            SqlType::Int,
            SqlType::Int,
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
        ];
        self.log_rows("inbound_log", &columns, &types, run, limit).await
    }

    /// The outbound request log, newest first, of one run (or of everything).
    pub async fn outbound_log(&mut self, run: Option<RunId>, limit: u32) -> Result<Vec<Value>> {
        let columns = [
            "id",
            "run_id",
            "connection_id",
            "tenant_id",
            "method",
            "url",
            "request_headers",
            "request_body",
            "status",
            "response_headers",
            "response_body",
            "duration_ms",
            "request_id",
            "at",
        ];
        let types = [
            SqlType::Int,
            SqlType::Int,
            SqlType::Int,
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
            SqlType::Int,
            SqlType::Text,
            SqlType::Text,
            SqlType::Int,
            SqlType::Text,
            SqlType::Text,
        ];
        self.log_rows("outbound_log", &columns, &types, run, limit).await
    }

    async fn log_rows(
        &mut self,
        table: &str,
        columns: &[&str],
        types: &[SqlType],
        run: Option<RunId>,
        limit: u32,
    ) -> Result<Vec<Value>> {
        let (condition, mut args) = match run {
            Some(r) => ("WHERE run_id = $1", vec![Sql::Int(r.0)]),
            None => ("", Vec::new()),
        };
        args.push(Sql::Int(i64::from(limit)));
        let sql = format!(
            "SELECT {} FROM {table} {condition} ORDER BY id DESC LIMIT ${}",
            columns.join(", "),
            args.len()
        );
        let rows = self.rows(&sql, &args, types).await?;
        Ok(rows
            .into_iter()
            .map(|row| log_entry(columns.iter().copied(), row))
            .collect())
    }
}

/// A log row as a JSON object by column name; headers and payloads, stored as JSON text, are
/// parsed back.
pub(crate) fn log_entry<'c>(columns: impl Iterator<Item = &'c str>, row: Vec<Sql>) -> Value {
    let obj = columns
        .zip(row)
        .map(|(c, v)| {
            let value = match v {
                Sql::Int(i) => Value::from(i),
                Sql::Text(t) if c.ends_with("headers") || c == "payload" => {
                    serde_json::from_str(&t).unwrap_or(Value::String(t))
                }
                Sql::Text(t) => Value::String(t),
                _ => Value::Null,
            };
            (c.to_owned(), value)
        })
        .collect();
    Value::Object(obj)
}
