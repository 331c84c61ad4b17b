//! Errors: Dataverse's own (`{"error": {"code": "0x…", "message"}}`, kept verbatim with a
//! classification and a remedy), authentication, transport and malformed bodies.
use std::time::Duration;

use deskbridge_core::{ErrorCode, HasErrorCode};
use deskbridge_msauth::AuthError;
use serde_json::Value;

/// Dataverse error codes the client recognises.
pub mod codes {
    /// Service protection: number of requests (6,000 / 300 s).
    pub const TOO_MANY_REQUESTS: &str = "0x80072322";
    /// Service protection: combined execution time (20 min / 300 s).
    pub const EXECUTION_TIME: &str = "0x80072321";
    /// Service protection: concurrent requests (52).
    pub const CONCURRENT_REQUESTS: &str = "0x80072326";
    /// A query Dataverse does not accept.
    pub const BAD_QUERY: &str = "0x80060888";
    /// The caller lacks a privilege (commonly seen; not verified).
    pub const MISSING_PRIVILEGE: &str = "0x80040220";
    /// The caller is not a user of the organisation (not verified).
    pub const NOT_A_MEMBER: &str = "0x80072560";
    /// A change-tracking token expired (not verified; the message is the documented one).
    pub const EXPIRED_VERSION_STAMP: &str = "0x80044352";
    /// A row does not exist (commonly seen; not verified).
    pub const NOT_FOUND: &str = "0x80040217";
}

/// Everything a Dataverse call can fail with. Messages never carry tokens.
#[derive(Debug, thiserror::Error)]
pub enum DataverseError {
    /// No token could be obtained for the organisation.
    #[error("cannot authenticate to {org}: {source}")]
    Auth {
        org: String,
        #[source]
        source: AuthError,
    },
    /// Dataverse answered with an error status.
    #[error("{0}")]
    Api(Box<DataverseApiError>),
    /// A 2xx body without the documented shape.
    #[error("malformed response from {url}: {message}")]
    Malformed { url: String, message: String },
    /// The connection failed on every attempt.
    #[error("cannot reach {url} after {attempts} attempt(s): {reason}")]
    Transport {
        url: String,
        attempts: u32,
        reason: String,
    },
    /// The call itself is wrong (a bad org URL, a link to another host).
    #[error("invalid Dataverse request: {0}")]
    InvalidRequest(String),
}

impl DataverseError {
    pub fn api(&self) -> Option<&DataverseApiError> {
        match self {
            DataverseError::Api(api) => Some(api),
            _ => None,
        }
    }

    pub fn class(&self) -> Option<DataverseErrorClass> {
        self.api().map(|a| a.class)
    }

    /// The delta token expired: discard it and read the table in full.
    pub fn is_change_token_expired(&self) -> bool {
        self.class() == Some(DataverseErrorClass::ChangeTokenExpired)
    }

    /// What an administrator should do about it, for a connection test or a run's error.
    pub fn remedy(&self) -> &'static str {
        match self {
            DataverseError::Auth { .. } => {
                "check the tenant id, client id and secret or certificate (an expired secret must be renewed)"
            }
            DataverseError::Api(api) => api.class.remedy(),
            DataverseError::Malformed { .. } => "Dataverse sent an unexpected response; retry later",
            DataverseError::Transport { .. } => "check the organisation URL and the network",
            DataverseError::InvalidRequest(_) => "check the organisation URL",
        }
    }
}

impl HasErrorCode for DataverseError {
    fn error_code(&self) -> ErrorCode {
        match self {
            DataverseError::Auth { source, .. } => source.error_code(),
            DataverseError::Api(api) => match api.class {
                DataverseErrorClass::Authentication => ErrorCode::UpstreamAuthentication,
                DataverseErrorClass::NotAMember | DataverseErrorClass::MissingPrivilege => {
                    ErrorCode::UpstreamPermission
                }
                DataverseErrorClass::NotFound => ErrorCode::UpstreamNotFound,
                DataverseErrorClass::Throttled => ErrorCode::UpstreamThrottled,
                DataverseErrorClass::Unavailable => ErrorCode::UpstreamUnavailable,
                DataverseErrorClass::ChangeTokenExpired
                | DataverseErrorClass::BadQuery
                | DataverseErrorClass::Concurrency
                | DataverseErrorClass::Other => ErrorCode::InvalidInput,
            },
            DataverseError::Malformed { .. } => ErrorCode::UpstreamMalformedResponse,
            DataverseError::Transport { .. } => ErrorCode::UpstreamUnavailable,
            DataverseError::InvalidRequest(_) => ErrorCode::InvalidConfiguration,
        }
    }
}

/// How a Dataverse error should be handled and explained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataverseErrorClass {
    /// 401: the token was refused (wrong tenant or org URL, expired).
    Authentication,
    /// 403: the app is not an application user (or the user not a user) of the organisation.
    NotAMember,
    /// 403: a security role lacks a privilege on a table.
    MissingPrivilege,
    /// 404: no such row, table or entity set.
    NotFound,
    /// 400: the change-tracking token expired; a full read is needed.
    ChangeTokenExpired,
    /// Other 400s: the query is wrong.
    BadQuery,
    /// 412: the row changed since it was read.
    Concurrency,
    /// 429 (service protection) after every retry.
    Throttled,
    /// 5xx after every retry.
    Unavailable,
    Other,
}

impl DataverseErrorClass {
    pub fn classify(status: u16, code: &str, message: &str) -> Self {
        let code_is = |c: &str| code.eq_ignore_ascii_case(c);
        match status {
            401 => Self::Authentication,
            403 if code_is(codes::NOT_A_MEMBER) || message.contains("not a member of the organization") => {
                Self::NotAMember
            }
            403 => Self::MissingPrivilege,
            404 => Self::NotFound,
            412 => Self::Concurrency,
            429 => Self::Throttled,
            _ if code_is(codes::EXPIRED_VERSION_STAMP)
                || message.contains("Version stamp associated with the client has expired") =>
            {
                Self::ChangeTokenExpired
            }
            400 => Self::BadQuery,
            500..=599 => Self::Unavailable,
            _ => Self::Other,
        }
    }

    pub fn remedy(self) -> &'static str {
        match self {
            Self::Authentication => {
                "the token was refused: check that the URL is the organisation's and the tenant is the one it belongs to"
            }
            Self::NotAMember => {
                "register the app as an application user in the environment (Power Platform admin center > Application users), \
                 or give the signing-in user access to the environment"
            }
            Self::MissingPrivilege => {
                "assign a security role with read privilege on the table to the application user"
            }
            Self::NotFound => "check the table (entity set) name",
            Self::ChangeTokenExpired => "run a full import: the change-tracking token has expired",
            Self::BadQuery => "check the filter, columns and expands of the mapping",
            Self::Concurrency => "read the row again and retry",
            Self::Throttled => "Dataverse's service protection limits were reached; the next run continues",
            Self::Unavailable => "Dataverse is unavailable; retry later",
            Self::Other => "see Dataverse's message",
        }
    }
}

/// Dataverse's error, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataverseApiError {
    pub status: u16,
    /// The hex code (`0x80072322`), or `""` when the body had none (a 401 has no body).
    pub code: String,
    pub message: String,
    pub class: DataverseErrorClass,
    pub retry_after: Option<Duration>,
    /// `METHOD path` of the request (no host, no tokens).
    pub request: String,
}

impl std::fmt::Display for DataverseApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} answered HTTP {}", self.request, self.status)?;
        if !self.code.is_empty() {
            write!(f, " {}", self.code)?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl DataverseApiError {
    pub(crate) fn from_body(
        status: u16,
        body: &[u8],
        request: String,
        retry_after: Option<Duration>,
    ) -> Self {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        let text = |key: &str| {
            error
                .and_then(|e| e.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let code = text("code");
        let mut message = text("message");
        if message.is_empty() && error.is_none() && !body.is_empty() {
            let excerpt: String = String::from_utf8_lossy(body).chars().take(200).collect();
            message = excerpt;
        }
        DataverseApiError {
            status,
            class: DataverseErrorClass::classify(status, &code, &message),
            code,
            message,
            retry_after,
            request,
        }
    }
}
