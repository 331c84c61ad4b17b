//! The bootstrap settings every command shares: where the database is, where the data directory
//! and key file are, how to log. Everything else lives in the database.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use deskbridge_core::{SharedClock, SystemClock};
use deskbridge_secrets::{KeyFile, KeyRing, SECRET_KEY_ENV};
use deskbridge_store::{Store, StoreOptions};

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Database URL: postgres://… for PostgreSQL, sqlite://PATH for another SQLite file.
    /// Default: the embedded SQLite database in the data directory.
    #[arg(long, global = true, env = "DESKBRIDGE_DATABASE_URL")]
    pub database: Option<String>,
    /// Directory for the embedded database and the key file.
    #[arg(
        long,
        global = true,
        env = "DESKBRIDGE_DATA_DIR",
        default_value = "./deskbridge-data"
    )]
    pub data_dir: PathBuf,
    /// File holding the master key that seals secrets (created with mode 0600 when missing).
    /// Ignored when DESKBRIDGE_SECRET_KEY is set. Default: secret.key in the data directory.
    #[arg(long, global = true, env = "DESKBRIDGE_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// A host connections' endpoints may name besides Microsoft's clouds (`host` or
    /// `host:port`; repeat, or comma separate in the variable): an emulator, a test double, a
    /// proxy. A connection's credential is sent to its endpoints, so nothing else is accepted.
    #[arg(
        long = "allow-endpoint-host",
        global = true,
        env = "DESKBRIDGE_ALLOWED_ENDPOINT_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_endpoint_hosts: Vec<String>,
}

impl GlobalArgs {
    /// The connectors of this build, with the instance's endpoint policy.
    pub fn registry(&self) -> deskbridge_source::SourceRegistry {
        deskbridge_connectors::registry().with_endpoint_policy(
            deskbridge_source::settings::EndpointPolicy::allowing(&self.allowed_endpoint_hosts),
        )
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn init_logging(format: LogFormat) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DESKBRIDGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,deskbridge=info"));
    // Logs go to standard error: coloured only when that is a terminal and NO_COLOR is unset.
    let ansi = crate::output::colour(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

impl GlobalArgs {
    pub fn key_file(&self) -> KeyFile {
        KeyFile::new(
            self.key_file
                .clone()
                .unwrap_or_else(|| self.data_dir.join("secret.key")),
        )
    }

    /// The key ring: from DESKBRIDGE_SECRET_KEY when set, else from the key file, which is
    /// created on first use for the embedded set-up.
    pub fn keys(&self) -> anyhow::Result<KeyRing> {
        if let Ok(value) = std::env::var(SECRET_KEY_ENV) {
            return KeyRing::from_env_value(&value)
                .with_context(|| format!("{SECRET_KEY_ENV} is not a valid key"));
        }
        let file = self.key_file();
        let (ring, created) = file.load_or_create()?;
        if created {
            tracing::info!(path = %file.path().display(), "created a new master key file");
        }
        Ok(ring)
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("deskbridge.db")
    }

    /// Opens the store as it is, without migrating.
    pub async fn connect_store(&self) -> anyhow::Result<Store> {
        let clock: SharedClock = Arc::new(SystemClock);
        let options = StoreOptions::new(clock).with_keys(self.keys()?);
        let store = match &self.database {
            Some(url) => Store::connect(url, options).await?,
            None => {
                create_dir(&self.data_dir)?;
                Store::open_sqlite_file(&self.sqlite_path(), options).await?
            }
        };
        Ok(store)
    }

    /// Opens the store and brings its schema up to date (every command does this on start).
    pub async fn open_store(&self) -> anyhow::Result<Store> {
        let store = self.connect_store().await?;
        let applied = store.migrate().await?;
        for m in &applied {
            tracing::info!(version = m.version, name = %m.name, "applied migration");
        }
        Ok(store)
    }

    /// Where the database is, for people (no password).
    pub fn database_label(&self) -> String {
        match &self.database {
            Some(url) => deskbridge_core::redact::url(&redact_password(url)),
            None => self.sqlite_path().display().to_string(),
        }
    }
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))
}

fn redact_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:REDACTED{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_show() {
        assert_eq!(
            super::redact_password("postgres://app:pw@db:5432/x"),
            "postgres://app:REDACTED@db:5432/x"
        );
        assert_eq!(super::redact_password("postgres://db/x"), "postgres://db/x");
    }
}
