//! Syncing many connections at once: a bounded pool of [`crate::sync`] runs that share one Graph
//! client per app registration, so the per-app resource-unit budget and the app-wide limit on
//! requests in flight are really shared (Microsoft counts them per app, across tenants).
//!
//! Each run still keeps its own outbound log: the shared client's request log routes entries to
//! the runs in progress by tenant id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use deskbridge_core::SharedClock;
use deskbridge_graph::{GraphClient, GraphTenant, MemoryRequestLog, RequestLog, RequestLogEntry};
use deskbridge_msauth::TokenProvider;
use deskbridge_store::{Connection, Store};
use futures::StreamExt as _;

use crate::SyncError;
use crate::connection::EntraSettings;
use crate::run::{SyncOptions, SyncOutcome, scope_for, sync_with};

/// Graph clients shared by concurrent syncs: one per (Graph URL, client id), one HTTP pool.
pub(crate) struct SharedGraph {
    pub(crate) http: reqwest::Client,
    clients: Mutex<HashMap<(String, String), GraphClient>>,
    log: Arc<RoutedLog>,
    /// Turns at planning and applying, one per core. Reading waits on Microsoft and overlaps
    /// freely; planning and applying are CPU work, and dozens of syncs doing it at once only
    /// take the CPU from each other (and, on SQLite, from the one writer everybody waits for).
    pub(crate) processing: Arc<tokio::sync::Semaphore>,
}

/// Routes request log entries to the logs of the runs in progress, by tenant. Two runs of the
/// same tenant at once (two connections, one tenant) both receive the tenant's entries: an
/// outbound log may then list a request too many, never one too few.
#[derive(Default)]
struct RoutedLog {
    by_tenant: Mutex<HashMap<String, Vec<Weak<MemoryRequestLog>>>>,
}

impl RoutedLog {
    fn register(&self, tenant: &str) -> Arc<MemoryRequestLog> {
        let log = Arc::new(MemoryRequestLog::default());
        let mut map = self.by_tenant.lock().unwrap_or_else(PoisonError::into_inner);
        // Runs that finished dropped their log: forget them so the map stays small.
        map.retain(|_, logs| {
            logs.retain(|l| l.strong_count() > 0);
            !logs.is_empty()
        });
        map.entry(tenant.to_owned())
            .or_default()
            .push(Arc::downgrade(&log));
        log
    }
}

impl RequestLog for RoutedLog {
    fn record(&self, entry: RequestLogEntry) {
        let logs: Vec<Arc<MemoryRequestLog>> = {
            let map = self.by_tenant.lock().unwrap_or_else(PoisonError::into_inner);
            map.get(&entry.tenant)
                .map(|logs| logs.iter().filter_map(Weak::upgrade).collect())
                .unwrap_or_default()
        };
        if let Some((last, rest)) = logs.split_last() {
            for log in rest {
                log.record(entry.clone());
            }
            last.record(entry);
        }
    }
}

impl SharedGraph {
    fn new() -> Result<Self, SyncError> {
        let http = crate::run::http_client("(all connections)")?;
        Ok(Self {
            http,
            clients: Mutex::new(HashMap::new()),
            log: Arc::new(RoutedLog::default()),
            processing: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            )),
        })
    }

    /// The tenant handle of one connection on its app's shared client, and the run's own log.
    pub(crate) fn tenant(
        &self,
        connection: &Connection,
        settings: &EntraSettings,
        tokens: Arc<dyn TokenProvider>,
        clock: &SharedClock,
        options: &SyncOptions,
    ) -> Result<(GraphTenant, Arc<MemoryRequestLog>), SyncError> {
        let bad = |e: String| SyncError::BadSettings(connection.name.clone(), e);
        let client = {
            let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
            let key = (settings.graph_url.clone(), settings.client_id.clone());
            match clients.get(&key) {
                Some(c) => c.clone(),
                None => {
                    let mut config = options
                        .graph
                        .clone()
                        .unwrap_or_default()
                        .with_base_url(settings.graph_url.clone());
                    config.scope = scope_for(&settings.graph_url);
                    let log: Arc<dyn RequestLog> = self.log.clone();
                    let c = GraphClient::with_log(self.http.clone(), config, clock.clone(), log)
                        .map_err(|e| bad(e.to_string()))?;
                    clients.insert(key, c.clone());
                    c
                }
            }
        };
        let log = self.log.register(&settings.tenant_id);
        Ok((client.tenant(&settings.tenant_id, tokens), log))
    }
}

/// What [`sync_many`] did with one connection.
#[derive(Debug)]
pub struct ManyResult {
    pub connection: String,
    pub result: Result<SyncOutcome, SyncError>,
}

/// Syncs the named connections, at most `concurrency` at a time, with one Graph client per app
/// registration. Results come back in the order of `names`; one connection failing does not stop
/// the others.
pub async fn sync_many(
    store: &Store,
    names: &[String],
    options: &SyncOptions,
    concurrency: usize,
    clock: &SharedClock,
) -> Result<Vec<ManyResult>, SyncError> {
    let shared = Arc::new(SharedGraph::new()?);
    // Each sync is its own task, so reading, planning and applying several tenants use every core.
    let mut results: Vec<(usize, ManyResult)> = futures::stream::iter(names.iter().cloned().enumerate())
        .map(|(i, name)| {
            let (store, options, clock, shared) =
                (store.clone(), options.clone(), clock.clone(), shared.clone());
            async move {
                let connection = name.clone();
                let task =
                    tokio::spawn(
                        async move { sync_with(&store, &name, &options, &clock, Some(&shared)).await },
                    );
                let result = task.await.unwrap_or_else(|e| {
                    Err(SyncError::Upstream {
                        code: "internal".into(),
                        message: format!("the sync of {connection:?} stopped unexpectedly: {e}"),
                        remedy: "Run the sync again; report the problem if it repeats.".into(),
                    })
                });
                (i, ManyResult { connection, result })
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, r)| r).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(tenant: &str) -> RequestLogEntry {
        RequestLogEntry {
            tenant: tenant.into(),
            method: "GET".into(),
            path: "/v1.0/users".into(),
            status: Some(200),
            duration: Duration::ZERO,
            waited: Duration::ZERO,
            request_id: None,
            retry_after: None,
            attempt: 1,
            resource_units: 1,
            error: None,
        }
    }

    #[test]
    fn entries_reach_the_run_of_their_tenant_only() {
        let routed = RoutedLog::default();
        let a = routed.register("a");
        let b = routed.register("b");
        routed.record(entry("a"));
        routed.record(entry("a"));
        routed.record(entry("b"));
        routed.record(entry("c"));
        assert_eq!(a.entries().len(), 2);
        assert_eq!(b.entries().len(), 1);
        assert_eq!(b.entries()[0].tenant, "b");
    }

    #[test]
    fn finished_runs_are_forgotten() {
        let routed = RoutedLog::default();
        drop(routed.register("a"));
        let b = routed.register("b");
        routed.record(entry("a"));
        let map = routed.by_tenant.lock().unwrap();
        assert!(!map.contains_key("a"));
        assert_eq!(map["b"].len(), 1);
        drop(map);
        assert!(b.entries().is_empty());
    }
}
