use serde::Serialize;

/// The stable error codes deskbridge reports. Each carries the kind of failure (which decides
/// how the CLI exits and which HTTP status the API answers with) and never changes meaning once
/// released. New failures get new codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    // configuration and input
    InvalidConfiguration,
    InvalidInput,
    NotFound,
    AlreadyExists,
    // storage
    DatabaseUnavailable,
    DatabaseError,
    MigrationFailed,
    // secrets
    SecretKeyMissing,
    SecretKeyInvalid,
    SecretUndecryptable,
    // upstream (Microsoft)
    UpstreamAuthentication,
    UpstreamPermission,
    UpstreamThrottled,
    UpstreamUnavailable,
    UpstreamMalformedResponse,
    UpstreamNotFound,
    // everything else
    Internal,
}

/// How a failure should be treated by callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The caller sent something wrong; retrying the same request will fail again.
    InvalidRequest,
    /// Something outside deskbridge failed; retrying later may succeed.
    Unavailable,
    /// A bug or an inconsistency in deskbridge itself.
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidConfiguration => "invalid_configuration",
            Self::InvalidInput => "invalid_input",
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::DatabaseUnavailable => "database_unavailable",
            Self::DatabaseError => "database_error",
            Self::MigrationFailed => "migration_failed",
            Self::SecretKeyMissing => "secret_key_missing",
            Self::SecretKeyInvalid => "secret_key_invalid",
            Self::SecretUndecryptable => "secret_undecryptable",
            Self::UpstreamAuthentication => "upstream_authentication",
            Self::UpstreamPermission => "upstream_permission",
            Self::UpstreamThrottled => "upstream_throttled",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamMalformedResponse => "upstream_malformed_response",
            Self::UpstreamNotFound => "upstream_not_found",
            Self::Internal => "internal",
        }
    }

    pub fn kind(self) -> ErrorKind {
        match self {
            Self::InvalidConfiguration
            | Self::InvalidInput
            | Self::NotFound
            | Self::AlreadyExists
            | Self::SecretKeyMissing
            | Self::SecretKeyInvalid
            | Self::SecretUndecryptable
            | Self::UpstreamAuthentication
            | Self::UpstreamPermission
            | Self::UpstreamNotFound => ErrorKind::InvalidRequest,
            Self::DatabaseUnavailable
            | Self::UpstreamThrottled
            | Self::UpstreamUnavailable
            | Self::UpstreamMalformedResponse => ErrorKind::Unavailable,
            Self::DatabaseError | Self::MigrationFailed | Self::Internal => ErrorKind::Internal,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
