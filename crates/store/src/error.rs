use deskbridge_core::{ErrorCode, HasErrorCode};

/// Why a store operation failed. Messages name the entity, field or value at fault and never
/// contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {target}: {source}")]
    Connect { target: String, source: sqlx::Error },
    #[error("unsupported database URL {0:?}: use sqlite://PATH, sqlite::memory: or postgres://…")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: i64,
        name: String,
        source: sqlx::Error,
    },
    #[error(
        "migration {version} ({name}) was changed after it was applied (checksum {applied} in the database, {expected} in this build)"
    )]
    MigrationChanged {
        version: i64,
        name: String,
        applied: String,
        expected: String,
    },
    #[error(
        "the database has migration {0}, which this build does not know: it was written by a newer deskbridge"
    )]
    DatabaseTooNew(i64),
    #[error("{entity} has no field {field:?}")]
    UnknownField { entity: &'static str, field: String },
    #[error("{entity}.{field}: {message}")]
    InvalidValue {
        entity: &'static str,
        field: String,
        message: String,
    },
    #[error("{entity} {id} does not exist")]
    NotFound { entity: &'static str, id: i64 },
    #[error("{0}")]
    Conflict(String),
    #[error("secret {0}: {1}")]
    Secret(String, deskbridge_secrets::SealError),
    #[error("the stored value of {0} is not valid: {1}")]
    Corrupt(String, String),
}

impl HasErrorCode for StoreError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Connect { .. } => ErrorCode::DatabaseUnavailable,
            Self::UnsupportedUrl(_) => ErrorCode::InvalidConfiguration,
            Self::Database(e) if is_unavailable(e) => ErrorCode::DatabaseUnavailable,
            Self::Database(_) | Self::Corrupt(..) => ErrorCode::DatabaseError,
            Self::Migration { .. } | Self::MigrationChanged { .. } | Self::DatabaseTooNew(_) => {
                ErrorCode::MigrationFailed
            }
            Self::UnknownField { .. } | Self::InvalidValue { .. } => ErrorCode::InvalidInput,
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::Conflict(_) => ErrorCode::AlreadyExists,
            Self::Secret(..) => ErrorCode::SecretUndecryptable,
        }
    }
}

fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_)
    )
}
