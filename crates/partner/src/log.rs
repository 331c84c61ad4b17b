//! The outbound request log: one entry per attempt, without tokens or bodies.
use std::sync::Mutex;
use std::time::Duration;

/// One attempt of a Partner Center call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLogEntry {
    pub method: String,
    /// Path and query (the continuation token travels in a header, never here).
    pub path: String,
    /// `None` when no response arrived.
    pub status: Option<u16>,
    pub duration: Duration,
    pub attempt: u32,
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
    pub retry_after: Option<Duration>,
    pub error: Option<String>,
}

/// Receives every attempt (the guides' "outbound requests" log).
pub trait RequestLog: Send + Sync {
    fn record(&self, entry: RequestLogEntry);
}

/// Drops every entry.
#[derive(Debug, Default)]
pub struct NoRequestLog;

impl RequestLog for NoRequestLog {
    fn record(&self, _: RequestLogEntry) {}
}

/// Keeps entries in memory (tests, the CLI's `--verbose`).
#[derive(Debug, Default)]
pub struct MemoryRequestLog(Mutex<Vec<RequestLogEntry>>);

impl MemoryRequestLog {
    pub fn entries(&self) -> Vec<RequestLogEntry> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl RequestLog for MemoryRequestLog {
    fn record(&self, entry: RequestLogEntry) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(entry);
    }
}
