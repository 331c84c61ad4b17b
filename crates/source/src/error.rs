//! The error of every connection operation — reading a source, checking, planning, applying —
//! whether the pipeline or a connector raised it.
//!
//! Its catalogue code ([`HasErrorCode`]) decides the API's status and the CLI's exit status;
//! [`SyncError::code`] is what people see and what a run records, which for a failure Microsoft
//! reported is Microsoft's own code.

use deskbridge_core::{ErrorCode, HasErrorCode};

/// Why a sync (or another operation on a connection) could not run or finish. Each carries a
/// stable code and, where there is one, what the administrator can do about it. Microsoft's own
/// codes (`AADSTS7000215`, `Authorization_RequestDenied`, …) travel as data in
/// [`SyncError::Upstream`], beside ours.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("no connection named {0:?}")]
    UnknownConnection(String),
    #[error("connection {name:?} is a {kind} connection, not {expected}")]
    WrongKind {
        name: String,
        kind: String,
        /// What the operation needs, e.g. "an Entra connection".
        expected: String,
    },
    #[error("connection {name:?} is of kind {kind:?}, which this deskbridge has no connector for")]
    UnsupportedKind { name: String, kind: String },
    /// The connection is switched off; `reason` says why and what to do.
    #[error("connection {name:?} is disabled: {reason}")]
    Disabled { name: String, reason: String },
    #[error("connection {0:?} has invalid settings: {1}")]
    BadSettings(String, String),
    /// Settings given for a connection that its kind refuses: every problem, each named by the
    /// setting's label.
    #[error("{0}")]
    InvalidSettings(String),
    /// What was asked clashes with what exists (a tenant another customer owns, …).
    #[error("{0}")]
    Conflict(String),
    #[error("the mapping configuration is invalid: {0}")]
    InvalidMappings(String),
    #[error("{0}")]
    Store(#[from] deskbridge_store::StoreError),
    /// Microsoft (or the way to it) failed.
    #[error("{message}")]
    Upstream {
        /// Which kind of upstream failure this is: one of the `upstream_*` codes, classified by
        /// the connector from what Microsoft answered.
        error_code: ErrorCode,
        /// Microsoft's own code (`AADSTS7000215`, `Authorization_RequestDenied`, …), or the
        /// catalogue's string when Microsoft sent none (the connection failed, say).
        code: String,
        message: String,
        remedy: String,
    },
    #[error("{0}")]
    Credential(String),
    /// A bug or a task that stopped unexpectedly.
    #[error("{0}")]
    Internal(String),
}

impl SyncError {
    /// The code people see and a run records: for a failure Microsoft reported, Microsoft's code
    /// (what its documentation and support know it by); otherwise the catalogue's string.
    pub fn code(&self) -> String {
        match self.upstream_code() {
            Some(code) => code.to_owned(),
            None => self.error_code().as_str().to_owned(),
        }
    }

    /// Microsoft's code, for an upstream failure Microsoft gave one for.
    pub fn upstream_code(&self) -> Option<&str> {
        match self {
            Self::Upstream { code, error_code, .. } if code != error_code.as_str() => Some(code),
            _ => None,
        }
    }

    pub fn remedy(&self) -> Option<String> {
        match self {
            Self::Upstream { remedy, .. } if !remedy.is_empty() => Some(remedy.clone()),
            Self::Credential(_) => {
                Some("Check the connection's credentials (secret value or certificate).".into())
            }
            Self::UnsupportedKind { .. } => {
                Some("Run a deskbridge built with this connector, or remove the connection.".into())
            }
            Self::Internal(_) => Some("Run the sync again; report the problem if it repeats.".into()),
            Self::BadSettings(..) => Some(
                "Correct the connection's settings on its details page (or PATCH /api/v1/connections/{id})."
                    .into(),
            ),
            _ => None,
        }
    }
}

/// The catalogue code, which decides the HTTP status and the CLI's exit status.
impl HasErrorCode for SyncError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::UnknownConnection(_) => ErrorCode::NotFound,
            Self::WrongKind { .. }
            | Self::UnsupportedKind { .. }
            | Self::BadSettings(..)
            | Self::InvalidMappings(_) => ErrorCode::InvalidConfiguration,
            Self::InvalidSettings(_) => ErrorCode::InvalidInput,
            Self::Conflict(_) | Self::Disabled { .. } => ErrorCode::Conflict,
            Self::Store(e) => e.error_code(),
            Self::Upstream { error_code, .. } => *error_code,
            Self::Credential(_) => ErrorCode::UpstreamAuthentication,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}
