//! Requests a source makes upstream, as the pipeline sees them: for the run's outbound log, the
//! job's progress and the metrics, labelled by source kind rather than by any one API.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// One request attempt a connector made (each page read is one; a retry is another).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// The source kind that made it (`entra`, …).
    pub source: &'static str,
    /// The tenant (partition) it was made for.
    pub tenant: String,
    pub method: String,
    /// Path and query without credentials or cursors' secrets (what the outbound log stores).
    pub path: String,
    /// `None`: no response (a dropped connection or a timeout).
    pub status: Option<u16>,
    pub duration: Duration,
    /// Microsoft's request id, when the response carried one.
    pub request_id: Option<String>,
    /// What the service asked us to wait before retrying, when it did.
    pub retry_after: Option<Duration>,
    /// The error body or message of a failed attempt.
    pub error: Option<String>,
}

impl RequestRecord {
    /// A response that tells the client to slow down.
    pub fn throttled(&self) -> bool {
        self.status == Some(429)
    }
}

/// Receives request records as they happen. Calls must be cheap and never block: they are made
/// from the request path.
pub trait RequestSink: Send + Sync {
    fn record(&self, request: RequestRecord);
}

/// Keeps a run's requests for its outbound log.
#[derive(Debug, Default)]
pub struct MemoryRequests {
    entries: Mutex<Vec<RequestRecord>>,
}

impl MemoryRequests {
    /// The requests so far, in the order they finished.
    pub fn entries(&self) -> Vec<RequestRecord> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Takes the requests so far, leaving none.
    pub fn take(&self) -> Vec<RequestRecord> {
        std::mem::take(&mut *self.entries.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl RequestSink for MemoryRequests {
    fn record(&self, request: RequestRecord) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
    }
}

/// Passes each record to every sink (the run's log, a job's observer).
pub struct FanOut(pub Vec<Arc<dyn RequestSink>>);

impl RequestSink for FanOut {
    fn record(&self, request: RequestRecord) {
        if let Some((last, rest)) = self.0.split_last() {
            for sink in rest {
                sink.record(request.clone());
            }
            last.record(request);
        }
    }
}
