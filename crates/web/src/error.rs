//! The one error shape of the API, `{"error": {"code", "message", "remedy"?,
//! "catalogue_code"?}}`, with stable codes; pages render the same error as HTML.
//!
//! The code is always a catalogue [`ErrorCode`], and its HTTP status is the catalogue's
//! ([`ErrorCode::http_status`]): nothing here decides a status. A failure Microsoft reported
//! shows Microsoft's code in `code` (as the API always has) and ours in `catalogue_code`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use deskbridge_core::{ErrorCode, HasErrorCode};
use deskbridge_store::StoreError;
use deskbridge_sync::SyncError;
use serde_json::json;

/// An error answered to a client. The message never contains a secret.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The catalogue code; it decides the status.
    pub code: ErrorCode,
    /// Microsoft's own code (`AADSTS7000215`, `access_denied`, …) when Microsoft reported the
    /// failure.
    pub upstream_code: Option<String>,
    pub message: String,
    pub remedy: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            upstream_code: None,
            message: message.into(),
            remedy: None,
        }
    }

    /// A more precise code than the constructor's (which may change the status with it).
    pub fn with_code(mut self, code: ErrorCode) -> Self {
        self.code = code;
        self
    }

    /// Microsoft's code for the failure, shown in the body's `code`.
    pub fn with_upstream_code(mut self, code: impl Into<String>) -> Self {
        self.upstream_code = Some(code.into());
        self
    }

    pub fn with_remedy(mut self, remedy: impl Into<String>) -> Self {
        self.remedy = Some(remedy.into());
        self
    }

    /// The catalogue's status for the code.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The code the client sees: Microsoft's when there is one, else the catalogue's.
    pub fn shown_code(&self) -> &str {
        self.upstream_code.as_deref().unwrap_or(self.code.as_str())
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            ErrorCode::Unauthenticated,
            "sign in, or send an API token as `Authorization: Bearer …`",
        )
    }

    pub fn forbidden(what: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, what)
    }

    pub fn csrf() -> Self {
        Self::new(
            ErrorCode::CsrfFailed,
            "the request did not carry this session's CSRF token",
        )
        .with_remedy("Reload the page and submit the form again; scripts should use an API token.")
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, what)
    }

    pub fn invalid(what: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, what)
    }

    pub fn conflict(what: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, what)
    }

    pub fn internal(what: impl std::fmt::Display) -> Self {
        tracing::error!(error = %what, "internal error answering a request");
        Self::new(ErrorCode::Internal, what.to_string())
    }

    pub fn body(&self) -> serde_json::Value {
        let mut error = json!({"code": self.shown_code(), "message": self.message});
        if let Some(remedy) = &self.remedy {
            error["remedy"] = json!(remedy);
        }
        // Added beside Microsoft's code, never instead of it: clients match on `code`.
        if self.upstream_code.is_some() {
            error["catalogue_code"] = json!(self.code.as_str());
        }
        json!({ "error": error })
    }

    fn from_store(e: &StoreError) -> Self {
        // The database's own words (SQL, constraint and driver text) go to the server's log,
        // not to the client: they say nothing a caller can act on, and name the schema.
        let hidden = match e {
            StoreError::Database(_) | StoreError::Migration { .. } => Some((
                "the database could not complete the request",
                "Try again; if it fails again, the server's log has the database's own message.",
            )),
            StoreError::Connect { .. } => Some((
                "the database cannot be reached",
                "Check that the database is running and reachable; the server's log has the details.",
            )),
            _ => None,
        };
        let out = match hidden {
            Some((message, remedy)) => Self::new(e.error_code(), message).with_remedy(remedy),
            None => Self::new(e.error_code(), e.to_string()),
        };
        if out.status().is_server_error() {
            tracing::error!(error = %e, "store error answering a request");
        }
        out
    }
}

impl HasErrorCode for ApiError {
    fn error_code(&self) -> ErrorCode {
        self.code
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.shown_code(), self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), Json(self.body())).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::from_store(&e)
    }
}

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        // A store failure reads as the store's own (without the "store: " prefix).
        if let SyncError::Store(inner) = &e {
            return Self::from_store(inner);
        }
        let mut out = Self::new(e.error_code(), e.to_string());
        out.upstream_code = e.upstream_code().map(str::to_owned);
        out.remedy = e.remedy();
        out
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(e: ApiError) -> (u16, serde_json::Value) {
        let body = e.body();
        (e.into_response().status().as_u16(), body)
    }

    #[test]
    fn statuses_come_from_the_catalogue() {
        let cases = [
            (ApiError::unauthenticated(), ErrorCode::Unauthenticated, 401),
            (ApiError::csrf(), ErrorCode::CsrfFailed, 403),
            (ApiError::not_found("no run 9"), ErrorCode::NotFound, 404),
            (ApiError::invalid("bad"), ErrorCode::InvalidInput, 400),
            (
                ApiError::conflict("busy").with_code(ErrorCode::RunInProgress),
                ErrorCode::RunInProgress,
                409,
            ),
            (
                ApiError::forbidden("first").with_code(ErrorCode::PasswordChangeRequired),
                ErrorCode::PasswordChangeRequired,
                403,
            ),
            (
                ApiError::from(StoreError::Conflict("taken".into())),
                ErrorCode::AlreadyExists,
                409,
            ),
            (
                ApiError::from(SyncError::UnknownConnection("nope".into())),
                ErrorCode::NotFound,
                404,
            ),
            (
                ApiError::from(SyncError::InvalidMappings("x".into())),
                ErrorCode::InvalidConfiguration,
                422,
            ),
        ];
        for (error, code, status) in cases {
            assert_eq!(error.code, code);
            assert_eq!(code.http_status(), status);
            let (answered_status, body) = answered(error);
            assert_eq!(answered_status, status, "{code}");
            assert_eq!(body["error"]["code"], code.as_str());
            assert!(body["error"].get("catalogue_code").is_none());
        }
    }

    #[test]
    fn microsofts_code_stays_in_code_and_ours_is_added_beside_it() {
        let error = ApiError::from(SyncError::Upstream {
            error_code: ErrorCode::UpstreamAuthentication,
            code: "AADSTS7000215".into(),
            message: "invalid client secret".into(),
            remedy: "Paste the secret's Value.".into(),
        });
        let (status, body) = answered(error);
        assert_eq!(status, 502);
        assert_eq!(body["error"]["code"], "AADSTS7000215");
        assert_eq!(body["error"]["catalogue_code"], "upstream_authentication");
        assert_eq!(body["error"]["remedy"], "Paste the secret's Value.");
        // Without a code from Microsoft, ours is the only one.
        let error = ApiError::from(SyncError::Upstream {
            error_code: ErrorCode::UpstreamUnavailable,
            code: ErrorCode::UpstreamUnavailable.as_str().into(),
            message: "cannot reach graph".into(),
            remedy: String::new(),
        });
        let (status, body) = answered(error);
        assert_eq!(status, 502);
        assert_eq!(body["error"]["code"], "upstream_unavailable");
        assert!(body["error"].get("catalogue_code").is_none());
    }
}
