use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// One HTTP attempt against Graph, as the pipeline stores it in its outbound log.
/// Holds no token, secret or body; `$skiptoken` / `$deltatoken` values are redacted from `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLogEntry {
    pub tenant: String,
    pub method: String,
    /// Path and query relative to the host, e.g. `/v1.0/users?$select=id&$skiptoken=REDACTED`.
    pub path: String,
    /// `None` when no response arrived (connection failure).
    pub status: Option<u16>,
    pub duration: Duration,
    /// Time this attempt waited before it was sent: backoff, Retry-After pause, RU budget, a free slot.
    pub waited: Duration,
    /// Graph's `request-id` response header.
    pub request_id: Option<String>,
    pub retry_after: Option<Duration>,
    /// 1 for the first try of a request, 2 for its first retry, ...
    pub attempt: u32,
    /// Resource units the client charged to its budget for this attempt.
    pub resource_units: u32,
    /// Connection error text when `status` is `None`.
    pub error: Option<String>,
}

/// Receives every request the Graph client makes. Implementations must be cheap and not block.
pub trait RequestLog: Send + Sync {
    fn record(&self, entry: RequestLogEntry);
}

/// Discards entries.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRequestLog;

impl RequestLog for NoRequestLog {
    fn record(&self, _entry: RequestLogEntry) {}
}

/// Keeps entries in memory (tests, and short CLI runs that print them afterwards).
#[derive(Debug, Default)]
pub struct MemoryRequestLog {
    entries: Mutex<Vec<RequestLogEntry>>,
}

impl MemoryRequestLog {
    pub fn entries(&self) -> Vec<RequestLogEntry> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl RequestLog for MemoryRequestLog {
    fn record(&self, entry: RequestLogEntry) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(entry);
    }
}

/// Path and query with the values of cursors (`$skiptoken`, `$deltatoken`) and credentials
/// (`code`, `access_token`, …) replaced: the shared rules of [`deskbridge_core::redact`].
pub(crate) fn redact_path(path_and_query: &str) -> String {
    deskbridge_core::redact::url(path_and_query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_values_are_elided() {
        assert_eq!(
            redact_path("/v1.0/users?$select=id&$skiptoken=RFNwdAoAAQ"),
            "/v1.0/users?$select=id&$skiptoken=REDACTED"
        );
        assert_eq!(
            redact_path("/v1.0/users/delta?%24deltatoken=abc"),
            "/v1.0/users/delta?%24deltatoken=REDACTED"
        );
        assert_eq!(redact_path("/v1.0/organization"), "/v1.0/organization");
    }
}
