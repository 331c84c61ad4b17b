//! Connections, transactions and the three primitives (execute, rows, script) that every other
//! module builds on. This is the only place that knows there are two databases.

use std::path::Path;
use std::str::FromStr as _;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use deskbridge_core::{ConnectionId, RunId, SharedClock};
use deskbridge_secrets::KeyRing;
use jiff::Timestamp;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Postgres, Row as _, Sqlite, Transaction};

use crate::{Result, StoreError};

/// Which SQL dialect a store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub clock: SharedClock,
    /// Connections in the pool (SQLite writes are serialised by the database whatever this is).
    pub max_connections: u32,
    /// The key ring that seals and opens secrets; without one, secret operations fail clearly.
    pub keys: Option<KeyRing>,
}

impl StoreOptions {
    pub fn new(clock: SharedClock) -> Self {
        Self {
            clock,
            max_connections: 8,
            keys: None,
        }
    }

    pub fn with_keys(mut self, keys: KeyRing) -> Self {
        self.keys = Some(keys);
        self
    }
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The store: a pool on SQLite or PostgreSQL plus the clock and keys its writes use. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    clock: SharedClock,
    keys: Arc<RwLock<Option<Arc<KeyRing>>>>,
    /// SQLite has one writer per database. Writers of this process queue here, in order, without
    /// holding a pooled connection, instead of polling the file lock until the busy timeout
    /// gives up (which is what failed concurrent syncs with "database is locked"). `None` on
    /// PostgreSQL, where writers run in parallel.
    writer: Option<Arc<tokio::sync::Mutex<()>>>,
    /// Microseconds writers of this process have spent waiting for `writer`, all told.
    writer_wait_micros: Arc<std::sync::atomic::AtomicU64>,
}

/// The database file is created owner-only (0600), like the key file: it holds the directory,
/// account hashes and sealed secrets. SQLite creates the WAL and shared-memory files with the
/// database file's permissions, so they are 0600 too. A database, WAL or SHM file left readable
/// by others (made by an older version) is narrowed to 0600.
#[cfg(unix)]
fn private_sqlite_files(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        // Exists already, or its folder does not: SQLite reports the latter itself.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::NotFound
            ) => {}
        Err(e) => return Err(e),
    }
    let mut files = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        files.push(name.into());
    }
    for file in files {
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(file = %file.display(), "the database file was readable by others: now 0600");
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn private_sqlite_files(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

impl Store {
    /// Opens `url`: `sqlite://PATH` (created if missing), `sqlite::memory:`, or `postgres://…`.
    /// Does not migrate; call [`Store::migrate`].
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self> {
        let connect_err = |source| StoreError::Connect {
            target: redact_url(url),
            source,
        };
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url).map_err(connect_err)?;
            Pool::Postgres(
                Self::postgres_pool(opts, options.max_connections)
                    .await
                    .map_err(connect_err)?,
            )
        } else if url.starts_with("sqlite:") {
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(connect_err)?
                .create_if_missing(true);
            if !in_memory {
                private_sqlite_files(opts.get_filename()).map_err(|e| connect_err(sqlx::Error::Io(e)))?;
            }
            Pool::Sqlite(
                Self::sqlite_pool(opts, in_memory, options.max_connections)
                    .await
                    .map_err(connect_err)?,
            )
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        Ok(Self::from_pool(pool, options))
    }

    /// Opens (creating if needed) the embedded SQLite database file at `path`.
    pub async fn open_sqlite_file(path: &Path, options: StoreOptions) -> Result<Self> {
        let connect_err = |source| StoreError::Connect {
            target: path.display().to_string(),
            source,
        };
        private_sqlite_files(path).map_err(|e| connect_err(sqlx::Error::Io(e)))?;
        let opts = SqliteConnectOptions::new().filename(path).create_if_missing(true);
        let pool = Self::sqlite_pool(opts, false, options.max_connections)
            .await
            .map_err(connect_err)?;
        Ok(Self::from_pool(Pool::Sqlite(pool), options))
    }

    /// Opens a PostgreSQL database whose tables live in `schema` (created if missing). Tests use
    /// this to give every test a database of its own on one server.
    pub async fn connect_postgres_schema(url: &str, schema: &str, options: StoreOptions) -> Result<Self> {
        let connect_err = |source| StoreError::Connect {
            target: redact_url(url),
            source,
        };
        let quoted = format!("\"{}\"", schema.replace('"', "\"\""));
        let base = PgConnectOptions::from_str(url).map_err(connect_err)?;
        {
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(base.clone())
                .await
                .map_err(connect_err)?;
            sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {quoted}")))
                .execute(&pool)
                .await
                .map_err(connect_err)?;
            pool.close().await;
        }
        let opts = base.options([("search_path", schema)]);
        let pool = Self::postgres_pool(opts, options.max_connections)
            .await
            .map_err(connect_err)?;
        Ok(Self::from_pool(Pool::Postgres(pool), options))
    }

    fn from_pool(pool: Pool, options: StoreOptions) -> Self {
        let writer = matches!(pool, Pool::Sqlite(_)).then(|| Arc::new(tokio::sync::Mutex::new(())));
        Self {
            pool,
            clock: options.clock,
            keys: Arc::new(RwLock::new(options.keys.map(Arc::new))),
            writer,
            writer_wait_micros: Arc::default(),
        }
    }

    async fn sqlite_pool(opts: SqliteConnectOptions, in_memory: bool, max: u32) -> sqlx::Result<SqlitePool> {
        let opts = opts
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            .synchronous(SqliteSynchronous::Normal)
            .journal_mode(if in_memory {
                SqliteJournalMode::Memory
            } else {
                SqliteJournalMode::Wal
            });
        // An in-memory database lives as long as its one connection: never let the pool drop it.
        let pool = if in_memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(max.max(1))
        };
        pool.connect_with(opts).await
    }

    async fn postgres_pool(opts: PgConnectOptions, max: u32) -> sqlx::Result<PgPool> {
        PgPoolOptions::new()
            .max_connections(max.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await
    }

    /// How long this process's writers have waited for SQLite's one writer, all told (zero on
    /// PostgreSQL). Benchmarks report it: time a sync spends here is time another sync's writes
    /// took.
    pub fn writer_wait(&self) -> Duration {
        Duration::from_micros(self.writer_wait_micros.load(std::sync::atomic::Ordering::Relaxed))
    }

    pub fn dialect(&self) -> Dialect {
        match self.pool {
            Pool::Sqlite(_) => Dialect::Sqlite,
            Pool::Postgres(_) => Dialect::Postgres,
        }
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Replaces the key ring used for secrets (after a rotation).
    pub fn set_keys(&self, keys: KeyRing) {
        let mut guard = self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard = Some(Arc::new(keys));
    }

    pub(crate) fn keys(&self) -> Option<Arc<KeyRing>> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Starts a write transaction. Everything written through it, with its journal rows, is
    /// committed together or not at all. On SQLite it first waits for this process's writer turn,
    /// so a task must not begin a second write transaction while its first is open: the second
    /// would wait for a turn the first never gives back.
    pub async fn begin(&self, ctx: WriteContext) -> Result<StoreTx> {
        let writer = match &self.writer {
            Some(lock) => {
                let started = std::time::Instant::now();
                let turn = lock.clone().lock_owned().await;
                let waited = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.writer_wait_micros
                    .fetch_add(waited, std::sync::atomic::Ordering::Relaxed);
                Some(turn)
            }
            None => None,
        };
        let conn = match &self.pool {
            // IMMEDIATE takes the write lock up front: two writers never deadlock upgrading.
            Pool::Sqlite(p) => Conn::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(p) => Conn::Postgres(p.begin().await?),
        };
        let at = ctx.at.unwrap_or_else(|| self.clock.now());
        Ok(StoreTx {
            conn,
            _writer: writer,
            pending: Vec::new(),
            known_ids: std::collections::HashMap::new(),
            ctx,
            at,
            store: self.clone(),
        })
    }

    /// Starts a transaction for reading only (nothing it does is journaled).
    pub async fn read(&self) -> Result<StoreTx> {
        let conn = match &self.pool {
            Pool::Sqlite(p) => Conn::Sqlite(p.begin().await?),
            Pool::Postgres(p) => Conn::Postgres(p.begin().await?),
        };
        Ok(StoreTx {
            conn,
            _writer: None,
            pending: Vec::new(),
            known_ids: std::collections::HashMap::new(),
            ctx: WriteContext::default(),
            at: self.clock.now(),
            store: self.clone(),
        })
    }

    /// An empty, migrated in-memory SQLite store with this store's clock and keys, whatever
    /// dialect this one speaks: a place to try something out and throw it away (a connection
    /// created and checked before it is saved, see `deskbridge_sync::check_new_connection`).
    /// Nothing done there reaches this store.
    pub async fn scratch(&self) -> Result<Self> {
        let scratch = Self::connect("sqlite::memory:", StoreOptions::new(self.clock.clone())).await?;
        if let Some(keys) = self.keys() {
            *scratch
                .keys
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(keys);
        }
        scratch.migrate().await?;
        Ok(scratch)
    }

    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

/// Who is writing: the run and connection every journal row of the transaction is attributed
/// to (none for an administrator's manual change), and optionally the time to record.
#[derive(Debug, Clone, Default)]
pub struct WriteContext {
    pub run_id: Option<RunId>,
    pub connection_id: Option<ConnectionId>,
    pub at: Option<Timestamp>,
}

impl WriteContext {
    pub fn manual() -> Self {
        Self::default()
    }

    pub fn for_run(connection_id: ConnectionId, run_id: RunId) -> Self {
        Self {
            run_id: Some(run_id),
            connection_id: Some(connection_id),
            at: None,
        }
    }
}

enum Conn {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// One transaction on the store.
pub struct StoreTx {
    conn: Conn,
    /// This process's SQLite write turn, given back after the transaction ends (declared after
    /// `conn` so it drops after it).
    _writer: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// Rows of append-only tables (the journal, the inbound log) not yet sent: a large import
    /// writes them as a few multi-row INSERTs instead of one statement per row. They are sent
    /// before anything could read them (a statement naming their table, a savepoint, commit).
    pending: Vec<PendingRows>,
    /// Records this transaction has seen exist, so a reference to them is checked once, not
    /// once per row naming them. Forgotten on a delete or a rollback to a savepoint.
    known_ids: std::collections::HashMap<&'static str, std::collections::HashSet<i64>>,
    pub(crate) ctx: WriteContext,
    pub(crate) at: Timestamp,
    pub(crate) store: Store,
}

impl std::fmt::Debug for StoreTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreTx")
            .field("ctx", &self.ctx)
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

/// Buffered rows of one append-only table.
struct PendingRows {
    table: &'static str,
    /// `(a, b, c)` column list.
    columns: String,
    width: usize,
    /// `width` values per row, row after row.
    values: Vec<Sql>,
}

/// Rows per multi-row INSERT: few distinct statements to prepare, and far below both databases'
/// bind-parameter limits (32,766 on SQLite, 65,535 on PostgreSQL) for any table's width.
const ROWS_PER_INSERT: usize = 100;

/// A value bound to or read from SQL. Nulls are typed because PostgreSQL needs to know.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Sql {
    Null(SqlType),
    Text(String),
    Int(i64),
    Bool(bool),
    Float(f64),
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SqlType {
    Text,
    Int,
    Bool,
    Float,
    Bytes,
}

impl Sql {
    pub(crate) fn text(s: impl Into<String>) -> Self {
        Sql::Text(s.into())
    }

    pub(crate) fn opt_text(s: Option<impl Into<String>>) -> Self {
        s.map_or(Sql::Null(SqlType::Text), |s| Sql::Text(s.into()))
    }

    pub(crate) fn opt_int(i: Option<i64>) -> Self {
        i.map_or(Sql::Null(SqlType::Int), Sql::Int)
    }

    pub(crate) fn as_text(&self) -> Option<&str> {
        match self {
            Sql::Text(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Sql::Int(i) => Some(*i),
            _ => None,
        }
    }
}

macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut q = $query;
        for arg in $args {
            q = match arg {
                Sql::Null(SqlType::Text) => q.bind(None::<String>),
                Sql::Null(SqlType::Int) => q.bind(None::<i64>),
                Sql::Null(SqlType::Bool) => q.bind(None::<bool>),
                Sql::Null(SqlType::Float) => q.bind(None::<f64>),
                Sql::Null(SqlType::Bytes) => q.bind(None::<Vec<u8>>),
                Sql::Text(v) => q.bind(v.as_str()),
                Sql::Int(v) => q.bind(*v),
                Sql::Bool(v) => q.bind(*v),
                Sql::Float(v) => q.bind(*v),
                Sql::Bytes(v) => q.bind(v.as_slice()),
            };
        }
        q
    }};
}

macro_rules! decode_row {
    ($row:expr, $types:expr) => {{
        let mut out = Vec::with_capacity($types.len());
        for (i, ty) in $types.iter().enumerate() {
            out.push(match ty {
                SqlType::Text => $row
                    .try_get::<Option<String>, _>(i)?
                    .map_or(Sql::Null(*ty), Sql::Text),
                SqlType::Int => $row
                    .try_get::<Option<i64>, _>(i)?
                    .map_or(Sql::Null(*ty), Sql::Int),
                SqlType::Bool => $row
                    .try_get::<Option<bool>, _>(i)?
                    .map_or(Sql::Null(*ty), Sql::Bool),
                SqlType::Float => $row
                    .try_get::<Option<f64>, _>(i)?
                    .map_or(Sql::Null(*ty), Sql::Float),
                SqlType::Bytes => $row
                    .try_get::<Option<Vec<u8>>, _>(i)?
                    .map_or(Sql::Null(*ty), Sql::Bytes),
            });
        }
        out
    }};
}

impl StoreTx {
    pub fn dialect(&self) -> Dialect {
        self.store.dialect()
    }

    /// The time this transaction records its writes at.
    pub fn at(&self) -> Timestamp {
        self.at
    }

    pub fn context(&self) -> &WriteContext {
        &self.ctx
    }

    /// Queues a row of an append-only table (see [`StoreTx::pending`]); `row` has one value per
    /// column of `columns`.
    pub(crate) async fn append_row(
        &mut self,
        table: &'static str,
        columns: &str,
        row: Vec<Sql>,
    ) -> Result<()> {
        let index = match self.pending.iter().position(|p| p.table == table) {
            Some(i) => i,
            None => {
                self.pending.push(PendingRows {
                    table,
                    columns: columns.to_owned(),
                    width: row.len(),
                    values: Vec::new(),
                });
                self.pending.len() - 1
            }
        };
        let full = match self.pending.get_mut(index) {
            Some(p) => {
                debug_assert_eq!(p.width, row.len(), "every row of {table} has the same columns");
                p.values.extend(row);
                p.values.len() >= p.width * ROWS_PER_INSERT * 4
            }
            None => false,
        };
        if full {
            self.flush_pending().await?;
        }
        Ok(())
    }

    /// Sends every queued row.
    pub(crate) async fn flush_pending(&mut self) -> Result<()> {
        for pending in std::mem::take(&mut self.pending) {
            let width = pending.width.max(1);
            for chunk in pending.values.chunks(width * ROWS_PER_INSERT) {
                let rows = chunk.len() / width;
                let mut sql = format!("INSERT INTO {} {} VALUES ", pending.table, pending.columns);
                for row in 0..rows {
                    if row > 0 {
                        sql.push_str(", ");
                    }
                    sql.push('(');
                    sql.push_str(&placeholders(row * width + 1, width));
                    sql.push(')');
                }
                self.run_execute(&sql, chunk).await?;
            }
        }
        Ok(())
    }

    /// Sends queued rows a statement could read.
    async fn flush_if_read(&mut self, sql: &str) -> Result<()> {
        if self.pending.iter().any(|p| sql.contains(p.table)) {
            self.flush_pending().await?;
        }
        Ok(())
    }

    /// A DELETE may remove records this transaction knew, directly or by cascade: forget them
    /// all, and send queued rows first (they may name a record the DELETE removes).
    async fn before_delete(&mut self, sql: &str) -> Result<()> {
        if sql.trim_start().starts_with("DELETE") {
            self.flush_pending().await?;
            self.known_ids.clear();
        }
        Ok(())
    }

    /// Deletes rows of a link table (a record's roles, teams, licences). Link rows are referenced
    /// by nothing, so no record this transaction knows goes with them.
    pub(crate) async fn delete_link_rows(&mut self, sql: &str, args: &[Sql]) -> Result<u64> {
        self.flush_if_read(sql).await?;
        self.run_execute(sql, args).await
    }

    /// Whether `id` of `table` is known to exist in this transaction.
    pub(crate) fn known_to_exist(&self, table: &'static str, id: i64) -> bool {
        self.known_ids.get(table).is_some_and(|ids| ids.contains(&id))
    }

    pub(crate) fn remember_exists(&mut self, table: &'static str, id: i64) {
        self.known_ids.entry(table).or_default().insert(id);
    }

    pub(crate) async fn execute(&mut self, sql: &str, args: &[Sql]) -> Result<u64> {
        self.flush_if_read(sql).await?;
        self.before_delete(sql).await?;
        self.run_execute(sql, args).await
    }

    async fn run_execute(&mut self, sql: &str, args: &[Sql]) -> Result<u64> {
        Ok(match &mut self.conn {
            Conn::Sqlite(tx) => bind_all!(
                sqlx::query(AssertSqlSafe(sqlite_sql(sql))).persistent(cached(args)),
                args
            )
            .execute(&mut **tx)
            .await?
            .rows_affected(),
            Conn::Postgres(tx) => bind_all!(
                sqlx::query(AssertSqlSafe(sql.to_owned())).persistent(cached(args)),
                args
            )
            .execute(&mut **tx)
            .await?
            .rows_affected(),
        })
    }

    pub(crate) async fn rows(&mut self, sql: &str, args: &[Sql], types: &[SqlType]) -> Result<Vec<Vec<Sql>>> {
        self.flush_if_read(sql).await?;
        self.before_delete(sql).await?;
        let mut out = Vec::new();
        match &mut self.conn {
            Conn::Sqlite(tx) => {
                let sql = AssertSqlSafe(sqlite_sql(sql));
                for row in bind_all!(sqlx::query(sql).persistent(cached(args)), args)
                    .fetch_all(&mut **tx)
                    .await?
                {
                    out.push(decode_row!(row, types));
                }
            }
            Conn::Postgres(tx) => {
                let sql = AssertSqlSafe(sql.to_owned());
                for row in bind_all!(sqlx::query(sql).persistent(cached(args)), args)
                    .fetch_all(&mut **tx)
                    .await?
                {
                    out.push(decode_row!(row, types));
                }
            }
        }
        Ok(out)
    }

    /// Runs an `INSERT … RETURNING id` and gives the new id. No id back is an error, never 0.
    pub(crate) async fn insert_returning_id(&mut self, sql: &str, args: &[Sql], table: &str) -> Result<i64> {
        self.row(sql, args, &[SqlType::Int])
            .await?
            .and_then(|r| r.first().and_then(Sql::as_int))
            .ok_or_else(|| StoreError::Corrupt(table.to_owned(), "the insert returned no id".to_owned()))
    }

    pub(crate) async fn row(
        &mut self,
        sql: &str,
        args: &[Sql],
        types: &[SqlType],
    ) -> Result<Option<Vec<Sql>>> {
        Ok(self.rows(sql, args, types).await?.into_iter().next())
    }

    /// Runs a multi-statement script (migrations, in a transaction of their own).
    pub(crate) async fn script(&mut self, sql: &str) -> std::result::Result<(), sqlx::Error> {
        self.known_ids.clear();
        let sql = AssertSqlSafe(sql.to_owned());
        match &mut self.conn {
            Conn::Sqlite(tx) => sqlx::raw_sql(sql).execute(&mut **tx).await.map(|_| ()),
            Conn::Postgres(tx) => sqlx::raw_sql(sql).execute(&mut **tx).await.map(|_| ()),
        }
    }

    pub async fn commit(mut self) -> Result<()> {
        self.flush_pending().await?;
        match self.conn {
            Conn::Sqlite(tx) => tx.commit().await?,
            Conn::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        match self.conn {
            Conn::Sqlite(tx) => tx.rollback().await?,
            Conn::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

/// Statements with more parameters than this are list queries (`IN (…)` over a page of ids,
/// multi-row inserts) whose text changes with the list's length: they are not kept in the
/// connection's statement cache, which would otherwise hold up to a hundred large prepared
/// statements per connection, growing with the number of pages a sync reads.
const CACHED_PARAMETERS: usize = 64;

fn cached(args: &[Sql]) -> bool {
    args.len() <= CACHED_PARAMETERS
}

/// `sql` for SQLite: numbered parameters `$1, $2, …` that appear once each and in order become
/// anonymous `?`. SQLite finds a numbered parameter's name by a linear search of the
/// statement's parameter list, and sqlx asks for every parameter's name, so binding a
/// statement with n numbered parameters costs O(n²): a 900-value multi-row insert spent most of
/// an import's time there. Anonymous parameters have no name to search for. Any other use of
/// parameters (one repeated, out of order) is left as written.
pub(crate) fn sqlite_sql(sql: &str) -> String {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut expected = 1u64;
    let mut in_literal = false;
    let mut copied = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\'' => in_literal = !in_literal,
            b'$' if !in_literal => {
                let digits = bytes
                    .get(i + 1..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|d| d.is_ascii_digit())
                    .count();
                if digits > 0 {
                    let number: Option<u64> = sql.get(i + 1..i + 1 + digits).and_then(|n| n.parse().ok());
                    if number != Some(expected) {
                        return sql.to_owned();
                    }
                    expected += 1;
                    out.push_str(sql.get(copied..i).unwrap_or_default());
                    out.push('?');
                    copied = i + 1 + digits;
                    i = copied;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(sql.get(copied..).unwrap_or_default());
    out
}

/// `$from, $from+1, …` for `count` bind parameters (both dialects accept `$n`).
pub(crate) fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The URL with any password replaced, for messages and logs.
pub(crate) fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("REDACTED"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

impl StoreTx {
    /// Marks a point to return to if the next writes fail; both databases keep the rest of the
    /// transaction usable after [`StoreTx::rollback_to_savepoint`].
    pub async fn savepoint(&mut self) -> Result<()> {
        // Queued rows belong before the savepoint: a rollback to it must keep them.
        self.flush_pending().await?;
        self.execute("SAVEPOINT deskbridge_step", &[]).await.map(|_| ())
    }

    pub async fn release_savepoint(&mut self) -> Result<()> {
        // A queued row that fails must fail the step that queued it.
        self.flush_pending().await?;
        self.execute("RELEASE SAVEPOINT deskbridge_step", &[])
            .await
            .map(|_| ())
    }

    /// Undoes everything written since [`StoreTx::savepoint`], journal rows included.
    pub async fn rollback_to_savepoint(&mut self) -> Result<()> {
        // Everything queued since the savepoint is undone with it, and records created since
        // may be gone.
        self.pending.clear();
        self.known_ids.clear();
        self.execute("ROLLBACK TO SAVEPOINT deskbridge_step", &[]).await?;
        self.release_savepoint().await
    }
}

#[cfg(test)]
mod tests {
    use super::sqlite_sql;

    #[test]
    fn sequential_numbered_parameters_become_anonymous() {
        assert_eq!(
            sqlite_sql("INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"
        );
        assert_eq!(sqlite_sql("SELECT 1"), "SELECT 1");
        assert_eq!(
            sqlite_sql("SELECT $1 WHERE x = '$2' AND y = $2"),
            "SELECT ? WHERE x = '$2' AND y = ?"
        );
    }

    #[test]
    fn repeated_or_reordered_parameters_are_left_as_written() {
        for sql in [
            "INSERT INTO t VALUES ($1, $2, $2)",
            "SELECT * FROM t WHERE id > $2 AND x = $1",
            "SELECT $1, $3",
        ] {
            assert_eq!(sqlite_sql(sql), sql);
        }
    }
}
