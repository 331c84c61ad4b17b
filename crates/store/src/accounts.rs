//! Who may use the admin UI and API: accounts (password hashes only), browser sessions and API
//! tokens (stored as SHA-256 of the random token, never the token), roles, and per-connection
//! grants. Also the paged, filtered reads of logs and the directory that the UI and API show,
//! which need a connection filter the sync-side reads do not have.
//!
//! Hashing passwords and minting tokens is the web layer's job; this module stores what it is
//! given and answers lookups. Expired sessions and tokens are never returned.

use deskbridge_core::{ConnectionId, RecordId, RunId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::{Sql, SqlType, StoreTx};
use crate::records::Record;
use crate::schema::{ColumnType, Entity};
use crate::{Result, StoreError, format_timestamp};

/// What an account is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees and changes everything, manages accounts.
    Administrator,
    /// Sees only the connections granted to it (and creates some, with the permission).
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Administrator => "administrator",
            Self::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "administrator" => Some(Self::Administrator),
            "agent" => Some(Self::Agent),
            _ => None,
        }
    }
}

/// An agent's access to one connection. `Modify` includes reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Read,
    Modify,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Modify => "modify",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Self::Read),
            "modify" => Some(Self::Modify),
            _ => None,
        }
    }
}

/// An account as shown to administrators (no password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub can_configure_connections: bool,
    pub must_change_password: bool,
    pub disabled: bool,
    pub created_at: String,
    pub updated_at: String,
    /// When it last signed in (RFC 3339); `None` before its first sign-in.
    pub last_sign_in_at: Option<String>,
    /// The Microsoft identity it may sign in with (single sign-on): tenant id and object id.
    pub linked_tenant_id: Option<String>,
    pub linked_object_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewAccount {
    pub username: String,
    pub display_name: String,
    /// A PHC string from the web layer's password hasher.
    pub password_hash: String,
    pub role: Role,
    pub can_configure_connections: bool,
    pub must_change_password: bool,
}

/// A live browser session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: i64,
    pub account_id: i64,
    pub csrf_token: String,
    pub expires_at: String,
}

/// An API token's description (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
}

/// One agent's access to one connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub account_id: i64,
    pub connection_id: ConnectionId,
    pub access: Access,
}

pub(crate) const ACCOUNT_COLUMNS: &str = "id, username, display_name, role, can_configure_connections, must_change_password, \
                               disabled, created_at, updated_at, last_sign_in_at, linked_tenant_id, linked_object_id";
pub(crate) const ACCOUNT_TYPES: [SqlType; 12] = [
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Bool,
    SqlType::Bool,
    SqlType::Bool,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
];

pub(crate) fn account_from_row(row: &[Sql]) -> Result<Account> {
    let corrupt = |what: &str| StoreError::Corrupt("accounts".into(), what.into());
    let text = |i: usize| row.get(i).and_then(Sql::as_text).map(str::to_owned);
    let flag = |i: usize| matches!(row.get(i), Some(Sql::Bool(true)));
    let role_text = text(3).ok_or_else(|| corrupt("role"))?;
    Ok(Account {
        id: row.first().and_then(Sql::as_int).ok_or_else(|| corrupt("id"))?,
        username: text(1).ok_or_else(|| corrupt("username"))?,
        display_name: text(2).unwrap_or_default(),
        role: Role::parse(&role_text).ok_or_else(|| corrupt(&format!("unknown role {role_text:?}")))?,
        can_configure_connections: flag(4),
        must_change_password: flag(5),
        disabled: flag(6),
        created_at: text(7).unwrap_or_default(),
        updated_at: text(8).unwrap_or_default(),
        last_sign_in_at: text(9),
        linked_tenant_id: text(10),
        linked_object_id: text(11),
    })
}

const TOKEN_COLUMNS: &str = "id, account_id, name, created_at, last_used_at, expires_at";
const TOKEN_TYPES: [SqlType; 6] = [
    SqlType::Int,
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
];

fn token_from_row(row: &[Sql]) -> Result<ApiToken> {
    let corrupt = |what: &str| StoreError::Corrupt("api_tokens".into(), what.into());
    let text = |i: usize| row.get(i).and_then(Sql::as_text).map(str::to_owned);
    Ok(ApiToken {
        id: row.first().and_then(Sql::as_int).ok_or_else(|| corrupt("id"))?,
        account_id: row
            .get(1)
            .and_then(Sql::as_int)
            .ok_or_else(|| corrupt("account_id"))?,
        name: text(2).unwrap_or_default(),
        created_at: text(3).unwrap_or_default(),
        last_used_at: text(4),
        expires_at: text(5),
    })
}

pub(crate) fn unique_violation(e: StoreError, what: String) -> StoreError {
    match e {
        StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            StoreError::Conflict(what)
        }
        other => other,
    }
}

impl StoreTx {
    fn at_text(&self) -> Sql {
        Sql::Text(format_timestamp(self.at))
    }

    // ------------------------------------------------------------------ accounts

    pub async fn create_account(&mut self, new: &NewAccount) -> Result<Account> {
        let sql = format!(
            "INSERT INTO accounts (username, display_name, password_hash, role, can_configure_connections, \
             must_change_password, disabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, FALSE, $7, $7) \
             RETURNING {ACCOUNT_COLUMNS}"
        );
        let args = [
            Sql::text(new.username.clone()),
            Sql::text(new.display_name.clone()),
            Sql::text(new.password_hash.clone()),
            Sql::text(new.role.as_str()),
            Sql::Bool(new.can_configure_connections),
            Sql::Bool(new.must_change_password),
            self.at_text(),
        ];
        let row = self
            .row(&sql, &args, &ACCOUNT_TYPES)
            .await
            .map_err(|e| unique_violation(e, format!("an account named {:?} already exists", new.username)))?
            .ok_or_else(|| StoreError::Corrupt("accounts".into(), "the insert returned no row".into()))?;
        account_from_row(&row)
    }

    pub async fn account(&mut self, id: i64) -> Result<Option<Account>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1");
        self.row(&sql, &[Sql::Int(id)], &ACCOUNT_TYPES)
            .await?
            .as_deref()
            .map(account_from_row)
            .transpose()
    }

    /// The account and its password hash, for signing in.
    pub async fn account_for_sign_in(&mut self, username: &str) -> Result<Option<(Account, String)>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS}, password_hash FROM accounts WHERE username = $1");
        let mut types = ACCOUNT_TYPES.to_vec();
        types.push(SqlType::Text);
        let Some(row) = self.row(&sql, &[Sql::text(username)], &types).await? else {
            return Ok(None);
        };
        let account = account_from_row(&row)?;
        let hash = row
            .get(ACCOUNT_TYPES.len())
            .and_then(Sql::as_text)
            .ok_or_else(|| StoreError::Corrupt("accounts".into(), "password_hash".into()))?
            .to_owned();
        Ok(Some((account, hash)))
    }

    pub async fn accounts(&mut self) -> Result<Vec<Account>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY username");
        self.rows(&sql, &[], &ACCOUNT_TYPES)
            .await?
            .iter()
            .map(|r| account_from_row(r))
            .collect()
    }

    /// The account with this username (exactly as stored).
    pub async fn account_named(&mut self, username: &str) -> Result<Option<Account>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE username = $1");
        self.row(&sql, &[Sql::text(username)], &ACCOUNT_TYPES)
            .await?
            .as_deref()
            .map(account_from_row)
            .transpose()
    }

    /// How many administrators may sign in (not disabled), but `except`: what is left if that
    /// one is disabled or demoted.
    pub async fn enabled_administrators_except(&mut self, except: i64) -> Result<i64> {
        let row = self
            .row(
                "SELECT COUNT(*) FROM accounts WHERE role = $1 AND disabled = FALSE AND id <> $2",
                &[Sql::text(Role::Administrator.as_str()), Sql::Int(except)],
                &[SqlType::Int],
            )
            .await?;
        Ok(row.and_then(|r| r.first().and_then(Sql::as_int)).unwrap_or(0))
    }

    /// Notes a successful sign-in (at the transaction's time).
    pub async fn record_sign_in(&mut self, id: i64) -> Result<()> {
        self.execute(
            "UPDATE accounts SET last_sign_in_at = $1 WHERE id = $2",
            &[self.at_text(), Sql::Int(id)],
        )
        .await?;
        Ok(())
    }

    pub async fn account_count(&mut self) -> Result<i64> {
        let row = self
            .row("SELECT COUNT(*) FROM accounts", &[], &[SqlType::Int])
            .await?;
        Ok(row.and_then(|r| r.first().and_then(Sql::as_int)).unwrap_or(0))
    }

    /// Replaces the password hash; `must_change` marks a one-time password.
    pub async fn set_account_password(
        &mut self,
        id: i64,
        password_hash: &str,
        must_change: bool,
    ) -> Result<()> {
        let n = self
            .execute(
                "UPDATE accounts SET password_hash = $1, must_change_password = $2, updated_at = $3 WHERE id = $4",
                &[Sql::text(password_hash), Sql::Bool(must_change), self.at_text(), Sql::Int(id)],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound {
                entity: "account",
                id,
            });
        }
        Ok(())
    }

    /// Changes an account's role and permission, or disables it (which also ends its sessions).
    pub async fn update_account(
        &mut self,
        id: i64,
        role: Role,
        can_configure_connections: bool,
        disabled: bool,
    ) -> Result<()> {
        let n = self
            .execute(
                "UPDATE accounts SET role = $1, can_configure_connections = $2, disabled = $3, updated_at = $4 WHERE id = $5",
                &[
                    Sql::text(role.as_str()),
                    Sql::Bool(can_configure_connections),
                    Sql::Bool(disabled),
                    self.at_text(),
                    Sql::Int(id),
                ],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound {
                entity: "account",
                id,
            });
        }
        if disabled {
            self.execute("DELETE FROM sessions WHERE account_id = $1", &[Sql::Int(id)])
                .await?;
        }
        Ok(())
    }

    pub async fn delete_account(&mut self, id: i64) -> Result<()> {
        let n = self
            .execute("DELETE FROM accounts WHERE id = $1", &[Sql::Int(id)])
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound {
                entity: "account",
                id,
            });
        }
        Ok(())
    }

    // ------------------------------------------------------------------ sessions

    pub async fn create_session(
        &mut self,
        account_id: i64,
        token_hash: &str,
        csrf_token: &str,
        expires_at: jiff::Timestamp,
    ) -> Result<i64> {
        let args = [
            Sql::Int(account_id),
            Sql::text(token_hash),
            Sql::text(csrf_token),
            self.at_text(),
            Sql::Text(format_timestamp(expires_at)),
        ];
        self.insert_returning_id(
            "INSERT INTO sessions (account_id, token_hash, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &args,
            "sessions",
        )
        .await
    }

    /// The unexpired session with this token hash and its (enabled) account.
    pub async fn session_by_token_hash(&mut self, token_hash: &str) -> Result<Option<(Session, Account)>> {
        let row = self
            .row(
                "SELECT id, account_id, csrf_token, expires_at FROM sessions WHERE token_hash = $1 AND expires_at > $2",
                &[Sql::text(token_hash), self.at_text()],
                &[SqlType::Int, SqlType::Int, SqlType::Text, SqlType::Text],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let corrupt = |what: &str| StoreError::Corrupt("sessions".into(), what.into());
        let session = Session {
            id: row.first().and_then(Sql::as_int).ok_or_else(|| corrupt("id"))?,
            account_id: row
                .get(1)
                .and_then(Sql::as_int)
                .ok_or_else(|| corrupt("account_id"))?,
            csrf_token: row.get(2).and_then(Sql::as_text).unwrap_or_default().to_owned(),
            expires_at: row.get(3).and_then(Sql::as_text).unwrap_or_default().to_owned(),
        };
        match self.account(session.account_id).await? {
            Some(account) if !account.disabled => Ok(Some((session, account))),
            _ => Ok(None),
        }
    }

    pub async fn delete_session(&mut self, token_hash: &str) -> Result<()> {
        self.execute(
            "DELETE FROM sessions WHERE token_hash = $1",
            &[Sql::text(token_hash)],
        )
        .await?;
        Ok(())
    }

    /// Ends every session of an account but `keep` (after a password change, the one that made
    /// it stays).
    pub async fn delete_sessions_of(&mut self, account_id: i64, keep: Option<i64>) -> Result<u64> {
        self.execute(
            "DELETE FROM sessions WHERE account_id = $1 AND id <> $2",
            &[Sql::Int(account_id), Sql::Int(keep.unwrap_or(0))],
        )
        .await
    }

    pub async fn delete_expired_sessions(&mut self) -> Result<u64> {
        let now = self.at_text();
        self.execute("DELETE FROM sessions WHERE expires_at <= $1", &[now])
            .await
    }

    // ------------------------------------------------------------------ API tokens

    pub async fn create_api_token(
        &mut self,
        account_id: i64,
        name: &str,
        token_hash: &str,
        expires_at: Option<jiff::Timestamp>,
    ) -> Result<ApiToken> {
        let sql = format!(
            "INSERT INTO api_tokens (account_id, name, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) \
             RETURNING {TOKEN_COLUMNS}"
        );
        let args = [
            Sql::Int(account_id),
            Sql::text(name),
            Sql::text(token_hash),
            self.at_text(),
            Sql::opt_text(expires_at.map(format_timestamp)),
        ];
        let row = self
            .row(&sql, &args, &TOKEN_TYPES)
            .await?
            .ok_or_else(|| StoreError::Corrupt("api_tokens".into(), "the insert returned no row".into()))?;
        token_from_row(&row)
    }

    /// The unexpired token with this hash and its (enabled) account; records its use.
    pub async fn use_api_token(&mut self, token_hash: &str) -> Result<Option<(ApiToken, Account)>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1 AND (expires_at IS NULL OR expires_at > $2)"
        );
        let Some(row) = self
            .row(&sql, &[Sql::text(token_hash), self.at_text()], &TOKEN_TYPES)
            .await?
        else {
            return Ok(None);
        };
        let token = token_from_row(&row)?;
        self.execute(
            "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2",
            &[self.at_text(), Sql::Int(token.id)],
        )
        .await?;
        match self.account(token.account_id).await? {
            Some(account) if !account.disabled => Ok(Some((token, account))),
            _ => Ok(None),
        }
    }

    pub async fn api_tokens(&mut self, account_id: i64) -> Result<Vec<ApiToken>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE account_id = $1 ORDER BY id");
        self.rows(&sql, &[Sql::Int(account_id)], &TOKEN_TYPES)
            .await?
            .iter()
            .map(|r| token_from_row(r))
            .collect()
    }

    /// Revokes every token of an account (after a password change); how many there were.
    pub async fn delete_api_tokens_of(&mut self, account_id: i64) -> Result<u64> {
        self.execute(
            "DELETE FROM api_tokens WHERE account_id = $1",
            &[Sql::Int(account_id)],
        )
        .await
    }

    /// Revokes one of an account's tokens; false when it has no such token.
    pub async fn delete_api_token(&mut self, account_id: i64, id: i64) -> Result<bool> {
        let n = self
            .execute(
                "DELETE FROM api_tokens WHERE id = $1 AND account_id = $2",
                &[Sql::Int(id), Sql::Int(account_id)],
            )
            .await?;
        Ok(n > 0)
    }

    // ------------------------------------------------------------------ grants

    /// Grants (or with `None` revokes) an account's access to a connection.
    pub async fn set_grant(
        &mut self,
        account_id: i64,
        connection: ConnectionId,
        access: Option<Access>,
    ) -> Result<()> {
        match access {
            Some(access) => {
                self.execute(
                    "INSERT INTO connection_grants (account_id, connection_id, access, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (account_id, connection_id) DO UPDATE SET access = excluded.access",
                    &[
                        Sql::Int(account_id),
                        Sql::Int(connection.0),
                        Sql::text(access.as_str()),
                        self.at_text(),
                    ],
                )
                .await?;
            }
            None => {
                self.execute(
                    "DELETE FROM connection_grants WHERE account_id = $1 AND connection_id = $2",
                    &[Sql::Int(account_id), Sql::Int(connection.0)],
                )
                .await?;
            }
        }
        Ok(())
    }

    pub async fn grant(&mut self, account_id: i64, connection: ConnectionId) -> Result<Option<Access>> {
        let row = self
            .row(
                "SELECT access FROM connection_grants WHERE account_id = $1 AND connection_id = $2",
                &[Sql::Int(account_id), Sql::Int(connection.0)],
                &[SqlType::Text],
            )
            .await?;
        Ok(row.and_then(|r| r.first().and_then(Sql::as_text).and_then(Access::parse)))
    }

    pub async fn grants_of_account(&mut self, account_id: i64) -> Result<Vec<Grant>> {
        self.grants_where("account_id = $1", account_id).await
    }

    pub async fn grants_of_connection(&mut self, connection: ConnectionId) -> Result<Vec<Grant>> {
        self.grants_where("connection_id = $1", connection.0).await
    }

    async fn grants_where(&mut self, condition: &str, value: i64) -> Result<Vec<Grant>> {
        let sql = format!(
            "SELECT account_id, connection_id, access FROM connection_grants WHERE {condition} ORDER BY account_id, connection_id"
        );
        let rows = self
            .rows(
                &sql,
                &[Sql::Int(value)],
                &[SqlType::Int, SqlType::Int, SqlType::Text],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some(Grant {
                    account_id: r.first().and_then(Sql::as_int)?,
                    connection_id: ConnectionId(r.get(1).and_then(Sql::as_int)?),
                    access: r.get(2).and_then(Sql::as_text).and_then(Access::parse)?,
                })
            })
            .collect())
    }
}

// ---------------------------------------------------------------------- paged reads for the UI

/// Which log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogKind {
    Inbound,
    Outbound,
    Errors,
}

/// A page of a log, newest first: entries with an id below `before` (all when `None`).
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub connection: Option<ConnectionId>,
    pub run: Option<RunId>,
    /// Text the entry's external id, URL, code or message contains.
    pub search: Option<String>,
    pub before: Option<i64>,
    pub limit: u32,
}

/// A page of one directory listing, in id order after `after`.
#[derive(Debug, Clone, Default)]
pub struct DirectoryFilter {
    /// Only records imported by this connection (or, with `customer`, belonging to its customer).
    pub connection: Option<ConnectionId>,
    /// With `connection`: also the connection's customer and the records that belong to it.
    pub customer: Option<RecordId>,
    /// Text the name (or email) contains, case-insensitive.
    pub search: Option<String>,
    pub after: Option<RecordId>,
    pub limit: u32,
}

fn log_columns(
    kind: LogKind,
) -> (
    &'static str,
    Vec<(&'static str, SqlType)>,
    &'static [&'static str],
) {
    use SqlType::{Int, Text};
    match kind {
        LogKind::Inbound => (
            "inbound_log",
            vec![
                ("id", Int),
                ("run_id", Int),
                ("connection_id", Int),
                ("tenant_id", Text),
                ("entity", Text),
                ("external_id", Text),
                ("payload", Text),
                ("rule", Text),
                ("action", Text),
                ("result", Text),
                ("at", Text),
            ],
            &["external_id", "rule", "action", "result"],
        ),
        LogKind::Outbound => (
            "outbound_log",
            vec![
                ("id", Int),
                ("run_id", Int),
                ("connection_id", Int),
                ("tenant_id", Text),
                ("method", Text),
                ("url", Text),
                ("request_headers", Text),
                ("request_body", Text),
                ("status", Int),
                ("response_headers", Text),
                ("response_body", Text),
                ("duration_ms", Int),
                ("request_id", Text),
                ("at", Text),
            ],
            &["url", "method"],
        ),
        LogKind::Errors => (
            "integration_errors",
            vec![
                ("id", Int),
                ("run_id", Int),
                ("connection_id", Int),
                ("tenant_id", Text),
                ("entity", Text),
                ("external_id", Text),
                ("code", Text),
                ("message", Text),
                ("remedy", Text),
                ("at", Text),
            ],
            &["external_id", "code", "message"],
        ),
    }
}

/// `%text%` for LIKE with the wildcards in `text` escaped (the statement says `ESCAPE '\'`).
fn like_pattern(text: &str) -> String {
    let mut out = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl StoreTx {
    /// One page of a log as JSON objects (headers and payloads parsed), newest first. Bodies and
    /// headers were redacted when they were logged.
    pub async fn log_page(&mut self, kind: LogKind, filter: &LogFilter) -> Result<Vec<Value>> {
        let (table, columns, searchable) = log_columns(kind);
        let mut conditions = Vec::new();
        let mut args = Vec::new();
        if let Some(c) = filter.connection {
            args.push(Sql::Int(c.0));
            conditions.push(format!("connection_id = ${}", args.len()));
        }
        if let Some(r) = filter.run {
            args.push(Sql::Int(r.0));
            conditions.push(format!("run_id = ${}", args.len()));
        }
        if let Some(b) = filter.before {
            args.push(Sql::Int(b));
            conditions.push(format!("id < ${}", args.len()));
        }
        if let Some(q) = filter.search.as_deref().filter(|q| !q.trim().is_empty()) {
            args.push(Sql::Text(like_pattern(q.trim())));
            let n = args.len();
            let any = searchable
                .iter()
                .map(|c| format!("LOWER(COALESCE({c}, '')) LIKE ${n} ESCAPE '\\'"))
                .collect::<Vec<_>>()
                .join(" OR ");
            conditions.push(format!("({any})"));
        }
        args.push(Sql::Int(i64::from(filter.limit.clamp(1, 1000))));
        let sql = format!(
            "SELECT {} FROM {table} {} ORDER BY id DESC LIMIT ${}",
            columns.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", "),
            if conditions.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", conditions.join(" AND "))
            },
            args.len()
        );
        let types: Vec<SqlType> = columns.iter().map(|(_, t)| *t).collect();
        let rows = self.rows(&sql, &args, &types).await?;
        Ok(rows
            .into_iter()
            .map(|row| crate::sync_state::log_entry(columns.iter().map(|(c, _)| *c), row))
            .collect())
    }

    /// One page of a directory listing, optionally only what one connection imported and only
    /// records whose name (or email) contains the search text.
    pub async fn directory_page(&mut self, entity: Entity, filter: &DirectoryFilter) -> Result<Vec<Record>> {
        let spec = entity.spec();
        let mut conditions = vec!["id > $1".to_owned()];
        let mut args = vec![Sql::Int(filter.after.map_or(0, |a| a.0))];
        if let Some(c) = filter.connection {
            args.push(Sql::Int(c.0));
            let mut any = format!("source_connection_id = ${}", args.len());
            if let Some(customer) = filter.customer {
                let column = if entity == Entity::Customer {
                    Some("id")
                } else {
                    spec.column("customer_id").map(|_| "customer_id")
                };
                if let Some(column) = column {
                    args.push(Sql::Int(customer.0));
                    any = format!("{any} OR {column} = ${}", args.len());
                }
            }
            conditions.push(format!("({any})"));
        }
        if let Some(q) = filter.search.as_deref().filter(|q| !q.trim().is_empty()) {
            let searchable: Vec<&str> = ["name", "email", "part_number", "friendly_name", "serial_number"]
                .into_iter()
                .filter(|c| spec.column(c).is_some_and(|col| col.ty == ColumnType::Text))
                .collect();
            if !searchable.is_empty() {
                args.push(Sql::Text(like_pattern(q.trim())));
                let n = args.len();
                let any = searchable
                    .iter()
                    .map(|c| format!("LOWER(COALESCE({c}, '')) LIKE ${n} ESCAPE '\\'"))
                    .collect::<Vec<_>>()
                    .join(" OR ");
                conditions.push(format!("({any})"));
            }
        }
        args.push(Sql::Int(i64::from(filter.limit.clamp(1, 500))));
        let sql = format!(
            "SELECT id FROM {} WHERE {} ORDER BY id LIMIT ${}",
            spec.table,
            conditions.join(" AND "),
            args.len()
        );
        let ids = self.rows(&sql, &args, &[SqlType::Int]).await?;
        // Whole records (with their link sets) through the one generic reader.
        let mut out = Vec::with_capacity(ids.len());
        for id in ids.iter().filter_map(|r| r.first().and_then(Sql::as_int)) {
            if let Some(record) = self.get(entity, RecordId(id)).await? {
                out.push(record);
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------- sign-in limits

/// What a count of failed sign-ins is kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInSubject {
    /// A username, as typed (whether or not such an account exists).
    Account,
    /// A client's network address.
    Address,
}

impl SignInSubject {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Address => "address",
        }
    }
}

/// How failed sign-ins turn into waits: the first `free` failures in a row cost nothing; the
/// failure that reaches `free` blocks the subject for `first_block`, and each further one for
/// twice as long as the one before, up to `max_block`. A subject with no failure for
/// `forget_after` starts again from zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInPolicy {
    pub free: i64,
    pub first_block: jiff::SignedDuration,
    pub max_block: jiff::SignedDuration,
    pub forget_after: jiff::SignedDuration,
}

impl SignInPolicy {
    /// How long the `failures`-th failure in a row blocks the subject (zero while free).
    pub fn block_after(&self, failures: i64) -> jiff::SignedDuration {
        if failures < self.free.max(1) {
            return jiff::SignedDuration::ZERO;
        }
        let doublings = u32::try_from(failures - self.free.max(1))
            .unwrap_or(u32::MAX)
            .min(30);
        let factor = 1_i32.checked_shl(doublings).unwrap_or(i32::MAX);
        self.first_block
            .checked_mul(factor)
            .unwrap_or(self.max_block)
            .min(self.max_block)
    }
}

/// The failed sign-ins kept for one subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignInFailures {
    pub subject: SignInSubject,
    /// The username or the address.
    pub key: String,
    /// Failures in a row.
    pub failures: i64,
    pub last_failure_at: String,
    /// Until when sign-ins are refused (without looking at the password); `None` while free.
    pub blocked_until: Option<String>,
}

impl SignInFailures {
    /// Until when the subject is blocked, when that is after `now`.
    pub fn blocked_at(&self, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
        self.blocked_until
            .as_deref()
            .and_then(|t| crate::parse_timestamp(t).ok())
            .filter(|until| *until > now)
    }
}

fn failures_from_row(subject: SignInSubject, row: &[Sql]) -> Result<SignInFailures> {
    let corrupt = |what: &str| StoreError::Corrupt("sign_in_failures".into(), what.into());
    Ok(SignInFailures {
        subject,
        key: row
            .first()
            .and_then(Sql::as_text)
            .ok_or_else(|| corrupt("key"))?
            .to_owned(),
        failures: row
            .get(1)
            .and_then(Sql::as_int)
            .ok_or_else(|| corrupt("failures"))?,
        last_failure_at: row.get(2).and_then(Sql::as_text).unwrap_or_default().to_owned(),
        blocked_until: row.get(3).and_then(Sql::as_text).map(str::to_owned),
    })
}

const FAILURE_TYPES: [SqlType; 4] = [SqlType::Text, SqlType::Int, SqlType::Text, SqlType::Text];

impl StoreTx {
    /// The failures kept for a subject, if any.
    pub async fn sign_in_failures(
        &mut self,
        subject: SignInSubject,
        key: &str,
    ) -> Result<Option<SignInFailures>> {
        let row = self
            .row(
                "SELECT key, failures, last_failure_at, blocked_until FROM sign_in_failures WHERE kind = $1 AND key = $2",
                &[Sql::text(subject.as_str()), Sql::text(key)],
                &FAILURE_TYPES,
            )
            .await?;
        row.as_deref().map(|r| failures_from_row(subject, r)).transpose()
    }

    /// Counts one more failed sign-in for a subject (at the transaction's time) and blocks it
    /// as `policy` says; returns the new count and block. Forgets subjects that have been quiet
    /// for `policy.forget_after`.
    pub async fn record_sign_in_failure(
        &mut self,
        subject: SignInSubject,
        key: &str,
        policy: &SignInPolicy,
    ) -> Result<SignInFailures> {
        let now = self.at;
        let cutoff = Sql::Text(format_timestamp(
            now.saturating_sub(policy.forget_after).unwrap_or(now),
        ));
        self.execute(
            "DELETE FROM sign_in_failures WHERE kind = $1 AND last_failure_at < $2 \
             AND (blocked_until IS NULL OR blocked_until < $3)",
            &[Sql::text(subject.as_str()), cutoff.clone(), self.at_text()],
        )
        .await?;
        // One statement, so that concurrent failures each count.
        let row = self
            .row(
                "INSERT INTO sign_in_failures (kind, key, failures, last_failure_at) VALUES ($1, $2, 1, $3) \
                 ON CONFLICT (kind, key) DO UPDATE SET \
                 failures = CASE WHEN sign_in_failures.last_failure_at < $4 THEN 1 ELSE sign_in_failures.failures + 1 END, \
                 last_failure_at = excluded.last_failure_at \
                 RETURNING failures",
                &[Sql::text(subject.as_str()), Sql::text(key), self.at_text(), cutoff],
                &[SqlType::Int],
            )
            .await?;
        let failures = row.and_then(|r| r.first().and_then(Sql::as_int)).ok_or_else(|| {
            StoreError::Corrupt("sign_in_failures".into(), "the upsert returned no row".into())
        })?;
        let block = policy.block_after(failures);
        let blocked_until = (block > jiff::SignedDuration::ZERO)
            .then(|| format_timestamp(now.saturating_add(block).unwrap_or(now)));
        self.execute(
            "UPDATE sign_in_failures SET blocked_until = $1 WHERE kind = $2 AND key = $3",
            &[
                Sql::opt_text(blocked_until.clone()),
                Sql::text(subject.as_str()),
                Sql::text(key),
            ],
        )
        .await?;
        Ok(SignInFailures {
            subject,
            key: key.to_owned(),
            failures,
            last_failure_at: format_timestamp(now),
            blocked_until,
        })
    }

    /// Forgets a subject's failures (a successful sign-in, an administrator's unlock); true when
    /// there were some.
    pub async fn clear_sign_in_failures(&mut self, subject: SignInSubject, key: &str) -> Result<bool> {
        let n = self
            .execute(
                "DELETE FROM sign_in_failures WHERE kind = $1 AND key = $2",
                &[Sql::text(subject.as_str()), Sql::text(key)],
            )
            .await?;
        Ok(n > 0)
    }

    /// Every subject of a kind blocked now, by key.
    pub async fn blocked_sign_ins(&mut self, subject: SignInSubject) -> Result<Vec<SignInFailures>> {
        let rows = self
            .rows(
                "SELECT key, failures, last_failure_at, blocked_until FROM sign_in_failures \
                 WHERE kind = $1 AND blocked_until > $2 ORDER BY key",
                &[Sql::text(subject.as_str()), self.at_text()],
                &FAILURE_TYPES,
            )
            .await?;
        rows.iter().map(|r| failures_from_row(subject, r)).collect()
    }
}
