//! A run's progress while it goes: which stage it is in (reading the source, planning,
//! applying), the tenant, and how many pages, records, requests and changes so far. Steps update
//! it as they go; the observer hears of every update (the CLI's progress lines), and a run's row
//! keeps the latest (at most once a second), which the run page and `GET /api/v1/runs/{id}` show
//! while the run goes on.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use deskbridge_core::RunId;
use deskbridge_source::{RequestRecord, RequestSink};
use deskbridge_store::{Store, WriteContext};
use serde::Serialize;

use crate::{SyncError, SyncObserver};

/// Where a run is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Reading the source (and waiting for it).
    #[default]
    Reading,
    /// Working out the changes of a page.
    Planning,
    /// Writing a page's changes to the desk.
    Applying,
    /// The run has ended (its status says how).
    Done,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reading => "reading",
            Self::Planning => "planning",
            Self::Applying => "applying",
            Self::Done => "done",
        }
    }
}

/// A run's progress so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunProgress {
    /// The connection's name (several runs may report to one observer).
    pub connection: String,
    pub stage: Stage,
    /// The tenant (partition) being read.
    pub tenant: Option<String>,
    /// Tenants read to their end.
    pub tenants_done: u64,
    pub pages: u64,
    /// Records read from the source.
    pub records: u64,
    /// Upstream requests made.
    pub requests: u64,
    /// Records created, updated or deactivated on the desk (a preview: planned).
    pub changes: u64,
}

/// Keeps a run's progress, tells the observer, and saves it on the run's row now and then.
pub(crate) struct ProgressTracker {
    state: Mutex<Tracked>,
    observer: Option<Arc<dyn SyncObserver>>,
}

struct Tracked {
    progress: RunProgress,
    saved_at: Option<Instant>,
}

/// How often the run's row takes the progress (each save is a small write transaction).
const SAVE_EVERY: Duration = Duration::from_secs(1);

impl std::fmt::Debug for ProgressTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressTracker").finish_non_exhaustive()
    }
}

impl ProgressTracker {
    pub(crate) fn new(connection: &str, observer: Option<Arc<dyn SyncObserver>>) -> Self {
        Self {
            state: Mutex::new(Tracked {
                progress: RunProgress {
                    connection: connection.to_owned(),
                    ..RunProgress::default()
                },
                saved_at: None,
            }),
            observer,
        }
    }

    /// Changes the progress and tells the observer.
    pub(crate) fn update(&self, change: impl FnOnce(&mut RunProgress)) {
        let snapshot = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            change(&mut state.progress);
            state.progress.clone()
        };
        if let Some(observer) = &self.observer {
            observer.progress(&snapshot);
        }
    }

    /// The progress as the run's row keeps it.
    pub(crate) fn json(&self) -> Result<serde_json::Value, SyncError> {
        let progress = self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .progress
            .clone();
        serde_json::to_value(&progress).map_err(|e| SyncError::Internal(e.to_string()))
    }

    /// Saves the progress on the run's row, unless it was saved less than a second ago.
    pub(crate) async fn save(&self, store: &Store, run: RunId) -> Result<(), SyncError> {
        let due = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let due = state.saved_at.is_none_or(|at| at.elapsed() >= SAVE_EVERY);
            if due {
                state.saved_at = Some(Instant::now());
            }
            due.then_some(())
        };
        if due.is_none() {
            return Ok(());
        }
        let value = self.json()?;
        let mut tx = store.begin(WriteContext::manual()).await?;
        tx.set_run_progress(run, &value).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Counts the run's requests as they are made.
impl RequestSink for ProgressTracker {
    fn record(&self, _request: RequestRecord) {
        self.update(|p| p.requests += 1);
    }
}
