use std::time::Duration;

use deskbridge_core::{ErrorCode, HasErrorCode};
use deskbridge_msauth::AuthError;
use serde_json::Value;

/// Everything a Graph call can fail with. Messages name the URL (without tokens) but never carry
/// credentials or access tokens.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// No token could be obtained for the tenant.
    #[error("cannot authenticate to tenant {tenant}: {source}")]
    Auth {
        tenant: String,
        #[source]
        source: AuthError,
    },
    /// Graph answered with an error status.
    #[error("{0}")]
    Api(Box<GraphApiError>),
    /// A 2xx body that does not have the expected shape.
    #[error("malformed response from {url} at {json_path}: {message}")]
    Malformed {
        url: String,
        json_path: String,
        message: String,
    },
    /// The connection failed on every attempt.
    #[error("cannot reach {url} after {attempts} attempt(s): {reason}")]
    Transport {
        url: String,
        attempts: u32,
        reason: String,
    },
    /// The call itself is wrong (e.g. more than 20 batch requests, a link to another host).
    #[error("invalid Graph request: {0}")]
    InvalidRequest(String),
}

impl GraphError {
    /// The catalogue code ([`HasErrorCode::error_code`]), for callers that do not import the
    /// trait.
    pub fn code(&self) -> ErrorCode {
        self.error_code()
    }

    pub fn class(&self) -> Option<GraphErrorClass> {
        match self {
            GraphError::Api(api) => Some(api.class),
            _ => None,
        }
    }

    /// A delta token expired or became invalid: discard delta state and run a full import.
    pub fn is_resync_required(&self) -> bool {
        self.class() == Some(GraphErrorClass::ResyncRequired)
    }

    pub fn api(&self) -> Option<&GraphApiError> {
        match self {
            GraphError::Api(api) => Some(api),
            _ => None,
        }
    }
}

/// Graph's own code (`Authorization_RequestDenied`, …) stays in [`GraphApiError::code`]; the
/// catalogue code says which kind of upstream failure it is.
impl HasErrorCode for GraphError {
    fn error_code(&self) -> ErrorCode {
        match self {
            GraphError::Auth { source, .. } => source.error_code(),
            GraphError::Api(api) => match api.class {
                GraphErrorClass::Authentication => ErrorCode::UpstreamAuthentication,
                GraphErrorClass::PermissionDenied | GraphErrorClass::NonPremiumTenant => {
                    ErrorCode::UpstreamPermission
                }
                GraphErrorClass::NotFound => ErrorCode::UpstreamNotFound,
                GraphErrorClass::Throttled => ErrorCode::UpstreamThrottled,
                GraphErrorClass::Unavailable => ErrorCode::UpstreamUnavailable,
                GraphErrorClass::ResyncRequired | GraphErrorClass::BadRequest | GraphErrorClass::Other => {
                    ErrorCode::InvalidInput
                }
            },
            GraphError::Malformed { .. } => ErrorCode::UpstreamMalformedResponse,
            GraphError::Transport { .. } => ErrorCode::UpstreamUnavailable,
            GraphError::InvalidRequest(_) => ErrorCode::InvalidInput,
        }
    }
}

/// How a Graph error should be handled and explained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GraphErrorClass {
    /// 401 (InvalidAuthenticationToken): the token was refused.
    Authentication,
    /// 403 (Authorization_RequestDenied): the app lacks a permission or admin consent.
    PermissionDenied,
    /// 403 Authentication_RequestFromNonPremiumTenantOrB2CTenant: signInActivity needs Entra ID P1/P2.
    NonPremiumTenant,
    /// 404.
    NotFound,
    /// 410 or resyncRequired / syncStateNotFound / syncStateInvalid: do a full resync.
    ResyncRequired,
    /// 429 after all retries.
    Throttled,
    /// 5xx after all retries.
    Unavailable,
    /// Other 400s: the request is wrong.
    BadRequest,
    Other,
}

impl GraphErrorClass {
    pub fn classify(status: u16, code: &str) -> Self {
        let code_is = |candidates: &[&str]| candidates.iter().any(|c| c.eq_ignore_ascii_case(code));
        if status == 410 || code_is(&["resyncRequired", "syncStateNotFound", "syncStateInvalid"]) {
            return GraphErrorClass::ResyncRequired;
        }
        match status {
            401 => GraphErrorClass::Authentication,
            403 if code_is(&["Authentication_RequestFromNonPremiumTenantOrB2CTenant"]) => {
                GraphErrorClass::NonPremiumTenant
            }
            403 => GraphErrorClass::PermissionDenied,
            404 => GraphErrorClass::NotFound,
            429 => GraphErrorClass::Throttled,
            500..=599 => GraphErrorClass::Unavailable,
            400 => GraphErrorClass::BadRequest,
            _ => GraphErrorClass::Other,
        }
    }

    /// What the person running the sync should do.
    pub fn remedy(self) -> &'static str {
        match self {
            GraphErrorClass::Authentication => {
                "Microsoft Graph refused the access token (expired, or unreadable: 'CompactToken parsing \
                 failed'). Check the connection's tenant and credentials; a connection that signs in (delegated, \
                 Partner Center) must be authorised again."
            }
            GraphErrorClass::PermissionDenied => {
                "The app lacks a Graph permission for this call. Add the application permission and grant \
                 admin consent in the tenant."
            }
            GraphErrorClass::NonPremiumTenant => {
                "Last sign-in dates need a Microsoft Entra ID P1 or P2 licence in the tenant (and \
                 AuditLog.Read.All). Turn the sign-in date off for this connection or license the tenant."
            }
            GraphErrorClass::NotFound => "The object does not exist (any more) in the tenant.",
            GraphErrorClass::ResyncRequired => {
                "Graph no longer accepts the delta link (it expired or is invalid) and asks for a resync: the \
                 stored delta links are replaced by a fresh delta round with a full import. A full import that \
                 fails leaves them, and the next run starts it again."
            }
            GraphErrorClass::Throttled => {
                "Microsoft Graph is throttling this app. The next run will continue."
            }
            GraphErrorClass::Unavailable => "Microsoft Graph is unavailable. The next run will retry.",
            GraphErrorClass::BadRequest | GraphErrorClass::Other => {
                "Microsoft Graph rejected the request. See the error code and message."
            }
        }
    }
}

/// Graph's error body (`{"error": {"code", "message", "innerError": {"request-id", "date"}}}`) with context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
    pub client_request_id: Option<String>,
    pub date: Option<String>,
    /// Method and URL of the request, with tokens elided.
    pub request: String,
    pub retry_after: Option<Duration>,
    /// For 410 resync: the fresh delta URL Graph offers in `Location`.
    pub location: Option<String>,
    pub class: GraphErrorClass,
}

impl GraphApiError {
    /// Builds the error from a status and a body that may or may not be Graph's error shape.
    pub(crate) fn from_body(status: u16, body: &[u8], request: String) -> Self {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        let text = |v: Option<&Value>, key: &str| {
            v.and_then(|v| v.get(key))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let inner = error.and_then(|e| e.get("innerError").or_else(|| e.get("innererror")));
        let code = text(error, "code").unwrap_or_else(|| format!("HTTP{status}"));
        let message = text(error, "message").unwrap_or_else(|| {
            let raw = String::from_utf8_lossy(body);
            let excerpt: String = raw.chars().take(200).collect();
            if excerpt.trim().is_empty() {
                "(empty body)".to_string()
            } else {
                excerpt
            }
        });
        GraphApiError {
            status,
            class: GraphErrorClass::classify(status, &code),
            code,
            message,
            request_id: text(inner, "request-id"),
            client_request_id: text(inner, "client-request-id"),
            date: text(inner, "date"),
            request,
            retry_after: None,
            location: None,
        }
    }
}

impl std::fmt::Display for GraphApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} failed: HTTP {} {}: {}",
            self.request, self.status, self.code, self.message
        )?;
        if let Some(id) = &self.request_id {
            write!(f, " [request-id {id}]")?;
        }
        write!(f, ". {}", self.class.remedy())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_status_and_code() {
        assert_eq!(
            GraphErrorClass::classify(401, "InvalidAuthenticationToken"),
            GraphErrorClass::Authentication
        );
        assert_eq!(
            GraphErrorClass::classify(403, "Authorization_RequestDenied"),
            GraphErrorClass::PermissionDenied
        );
        assert_eq!(
            GraphErrorClass::classify(403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant"),
            GraphErrorClass::NonPremiumTenant
        );
        assert_eq!(
            GraphErrorClass::classify(404, "Request_ResourceNotFound"),
            GraphErrorClass::NotFound
        );
        assert_eq!(
            GraphErrorClass::classify(410, "whatever"),
            GraphErrorClass::ResyncRequired
        );
        assert_eq!(
            GraphErrorClass::classify(400, "syncStateNotFound"),
            GraphErrorClass::ResyncRequired
        );
        assert_eq!(
            GraphErrorClass::classify(400, "SyncStateInvalid"),
            GraphErrorClass::ResyncRequired
        );
        assert_eq!(
            GraphErrorClass::classify(429, "TooManyRequests"),
            GraphErrorClass::Throttled
        );
        assert_eq!(
            GraphErrorClass::classify(503, "serviceNotAvailable"),
            GraphErrorClass::Unavailable
        );
        assert_eq!(
            GraphErrorClass::classify(400, "Request_BadRequest"),
            GraphErrorClass::BadRequest
        );
    }

    #[test]
    fn error_body_fields_are_extracted() {
        let body = br#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.","innerError":{"date":"2026-11-23T12:00:00","request-id":"rid-1","client-request-id":"cid-1"}}}"#;
        let error = GraphApiError::from_body(403, body, "GET /users".into());
        assert_eq!(error.code, "Authorization_RequestDenied");
        assert_eq!(error.request_id.as_deref(), Some("rid-1"));
        assert_eq!(error.client_request_id.as_deref(), Some("cid-1"));
        assert_eq!(error.date.as_deref(), Some("2026-11-23T12:00:00"));
        assert!(error.to_string().contains("admin consent"));
        let gateway = GraphApiError::from_body(502, b"<html>Bad Gateway</html>", "GET /users".into());
        assert_eq!(gateway.code, "HTTP502");
        assert_eq!(gateway.class, GraphErrorClass::Unavailable);
        assert!(gateway.message.contains("Bad Gateway"));
    }
}
