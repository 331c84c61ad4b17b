use std::time::Duration;

use deskbridge_msauth::AuthError;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// What a failed Partner Center call means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartnerErrorClass {
    /// 429: wait for `retry_after` and try again.
    Throttled,
    /// 401: the token was refused (expired, wrong audience, not the partner's).
    Unauthorized,
    /// 403: the signed-in user or app lacks the role (or app-only is not allowed here).
    Forbidden,
    /// 404: no such customer or subscription (or no relationship with it).
    NotFound,
    /// 409: already exists.
    Conflict,
    /// 412: the object changed since it was read (`If-Match`).
    PreconditionFailed,
    /// Any other 4xx: the request was refused as invalid (e.g. a seat reduction outside the
    /// new-commerce cancellation window).
    Rejected,
    /// 5xx: Partner Center failed.
    Server,
}

/// An error answer from Partner Center: `{code, description, data, source}` plus the ids of the call.
#[derive(Debug, Clone)]
pub struct PartnerApiError {
    pub status: u16,
    /// Partner Center's numeric error code, when the body carried one.
    pub code: Option<i64>,
    pub description: String,
    pub data: Vec<Value>,
    /// `source` of the body (e.g. `PartnerFD`).
    pub source_name: Option<String>,
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
    pub retry_after: Option<Duration>,
    /// `METHOD path` of the request.
    pub request: String,
    pub class: PartnerErrorClass,
}

impl PartnerApiError {
    pub(crate) fn from_response(status: u16, headers: &HeaderMap, body: &[u8], request: String) -> Self {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let parsed: Option<Value> = serde_json::from_slice(crate::page::strip_bom(body)).ok();
        let field = |name: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.as_object())
                .and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                .map(|(_, v)| v.clone())
        };
        let code = field("code").and_then(|c| c.as_i64().or_else(|| c.as_str().and_then(|s| s.parse().ok())));
        let description = field("description")
            .or_else(|| field("message"))
            .and_then(|d| d.as_str().map(str::to_owned))
            .unwrap_or_else(|| {
                let snippet: String = String::from_utf8_lossy(body).chars().take(200).collect();
                if snippet.trim().is_empty() {
                    format!("HTTP {status} without a body")
                } else {
                    snippet
                }
            });
        let class = match status {
            429 => PartnerErrorClass::Throttled,
            401 => PartnerErrorClass::Unauthorized,
            403 => PartnerErrorClass::Forbidden,
            404 => PartnerErrorClass::NotFound,
            409 => PartnerErrorClass::Conflict,
            412 => PartnerErrorClass::PreconditionFailed,
            500..=599 => PartnerErrorClass::Server,
            _ => PartnerErrorClass::Rejected,
        };
        PartnerApiError {
            status,
            code,
            description,
            data: field("data")
                .and_then(|d| d.as_array().cloned())
                .unwrap_or_default(),
            source_name: field("source").and_then(|s| s.as_str().map(str::to_owned)),
            request_id: text("MS-RequestId"),
            correlation_id: text("MS-CorrelationId"),
            retry_after: None,
            request,
            class,
        }
    }
}

impl std::fmt::Display for PartnerApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Partner Center answered {} to {}", self.status, self.request)?;
        if let Some(code) = self.code {
            write!(f, " (code {code})")?;
        }
        write!(f, ": {}", self.description)?;
        if let Some(id) = &self.request_id {
            write!(f, " [MS-RequestId {id}")?;
            if let Some(c) = &self.correlation_id {
                write!(f, ", MS-CorrelationId {c}")?;
            }
            write!(f, "]")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PartnerError {
    #[error("{0}")]
    Api(Box<PartnerApiError>),
    #[error("no token for the partner tenant {tenant}: {source}")]
    Auth { tenant: String, source: AuthError },
    #[error("{url}: no response after {attempts} attempt(s): {reason}")]
    Transport {
        url: String,
        attempts: u32,
        reason: String,
    },
    #[error("{url}: the response is not what Partner Center documents: {detail}")]
    Malformed { url: String, detail: String },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl PartnerError {
    /// The API error, if Partner Center answered with one.
    pub fn api(&self) -> Option<&PartnerApiError> {
        match self {
            PartnerError::Api(e) => Some(e),
            _ => None,
        }
    }

    pub fn class(&self) -> Option<PartnerErrorClass> {
        self.api().map(|e| e.class)
    }
}
