//! The one error shape of the API, `{"error": {"code", "message", "remedy"?}}`, with stable
//! codes; pages render the same error as HTML.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use deskbridge_store::StoreError;
use deskbridge_sync::SyncError;
use serde_json::json;

/// An error answered to a client. The message never contains a secret.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub remedy: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            remedy: None,
        }
    }

    pub fn with_code(mut self, code: &str) -> Self {
        self.code = code.to_owned();
        self
    }

    pub fn with_remedy(mut self, remedy: impl Into<String>) -> Self {
        self.remedy = Some(remedy.into());
        self
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in, or send an API token as `Authorization: Bearer …`",
        )
    }

    pub fn forbidden(what: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", what)
    }

    pub fn csrf() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "csrf_failed",
            "the request did not carry this session's CSRF token",
        )
        .with_remedy("Reload the page and submit the form again; scripts should use an API token.")
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn invalid(what: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", what)
    }

    pub fn conflict(what: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", what)
    }

    pub fn internal(what: impl std::fmt::Display) -> Self {
        tracing::error!(error = %what, "internal error answering a request");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", what.to_string())
    }

    pub fn body(&self) -> serde_json::Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(remedy) = &self.remedy {
            error["remedy"] = json!(remedy);
        }
        json!({ "error": error })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let code = e.code();
        let status = match &e {
            StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
            StoreError::Conflict(_) => StatusCode::CONFLICT,
            StoreError::UnknownField { .. } | StoreError::InvalidValue { .. } => StatusCode::BAD_REQUEST,
            StoreError::Connect { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(error = %e, "store error answering a request");
        }
        Self::new(status, code.as_str(), e.to_string())
    }
}

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        let status = match &e {
            SyncError::UnknownConnection(_) => StatusCode::NOT_FOUND,
            SyncError::WrongKind { .. }
            | SyncError::UnsupportedKind { .. }
            | SyncError::BadSettings(..)
            | SyncError::InvalidMappings(_) => StatusCode::UNPROCESSABLE_ENTITY,
            SyncError::Store(inner) => return Self::from(clone_store_error(inner)),
            SyncError::Upstream { .. } | SyncError::Credential(_) => StatusCode::BAD_GATEWAY,
            SyncError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut out = Self::new(status, &e.code(), e.to_string());
        out.remedy = e.remedy();
        out
    }
}

/// Store errors are not `Clone`; the API needs only their code, status and text.
fn clone_store_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::NotFound { entity, id } => StoreError::NotFound { entity, id: *id },
        StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
        other => StoreError::Corrupt("store".into(), other.to_string()),
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
