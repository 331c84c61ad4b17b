//! The clients of the process and where their requests are reported.
//!
//! One Graph client per GDAP app registration (Graph URL and client id) serves every CSP
//! connection of the process, because Microsoft counts an app's limits across tenants; its log
//! routes each request to the operations in progress for that tenant. Partner Center clients are
//! made per operation (they hold the partner's delegated tokens) and report to its sink.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use deskbridge_core::SharedClock;
use deskbridge_graph::{GraphClient, GraphConfig, GraphTenant};
use deskbridge_msauth::TokenProvider;
use deskbridge_partner::{PartnerClient, PartnerConfig};
use deskbridge_source::{RequestRecord, RequestSink, SyncError};
use deskbridge_store::Connection;

use crate::CSP_KIND;
use crate::settings::CspSettings;

/// Routes Graph's request log entries to the sinks of the operations in progress, by tenant.
#[derive(Default)]
struct RoutedLog {
    by_tenant: Mutex<HashMap<String, Vec<Weak<dyn RequestSink>>>>,
}

impl RoutedLog {
    fn register(&self, tenant: &str, sink: &Arc<dyn RequestSink>) {
        let mut map = self.by_tenant.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, sinks| {
            sinks.retain(|s| s.strong_count() > 0);
            !sinks.is_empty()
        });
        map.entry(tenant.to_ascii_lowercase())
            .or_default()
            .push(Arc::downgrade(sink));
    }
}

impl deskbridge_graph::RequestLog for RoutedLog {
    fn record(&self, entry: deskbridge_graph::RequestLogEntry) {
        let sinks: Vec<Arc<dyn RequestSink>> = {
            let map = self.by_tenant.lock().unwrap_or_else(PoisonError::into_inner);
            map.get(&entry.tenant.to_ascii_lowercase())
                .map(|sinks| sinks.iter().filter_map(Weak::upgrade).collect())
                .unwrap_or_default()
        };
        if sinks.is_empty() {
            return;
        }
        let record = RequestRecord {
            source: CSP_KIND,
            tenant: entry.tenant,
            method: entry.method,
            path: entry.path,
            status: entry.status,
            duration: entry.duration,
            request_id: entry.request_id,
            retry_after: entry.retry_after,
            error: entry.error,
        };
        for sink in &sinks {
            sink.record(record.clone());
        }
    }
}

/// Partner Center's requests, reported to one operation's sink under the partner tenant.
struct PartnerLog {
    tenant: String,
    sink: Arc<dyn RequestSink>,
}

impl deskbridge_partner::RequestLog for PartnerLog {
    fn record(&self, entry: deskbridge_partner::RequestLogEntry) {
        self.sink.record(RequestRecord {
            source: CSP_KIND,
            tenant: self.tenant.clone(),
            method: entry.method,
            path: entry.path,
            status: entry.status,
            duration: entry.duration,
            request_id: entry.request_id,
            retry_after: entry.retry_after,
            error: entry.error,
        });
    }
}

/// What every CSP connection of the process shares.
pub(crate) struct Shared {
    pub(crate) graph_config: GraphConfig,
    pub(crate) partner_config: PartnerConfig,
    clients: Mutex<HashMap<(String, String), GraphClient>>,
    log: Arc<RoutedLog>,
}

impl Shared {
    pub(crate) fn new(graph_config: GraphConfig, partner_config: PartnerConfig) -> Self {
        Self {
            graph_config,
            partner_config,
            clients: Mutex::new(HashMap::new()),
            log: Arc::new(RoutedLog::default()),
        }
    }

    /// A tenant handle on the GDAP app's shared Graph client; its requests go to `sink`.
    #[allow(clippy::too_many_arguments)] // each is a distinct part: who, where, with which tokens, reported where
    pub(crate) fn tenant(
        &self,
        connection: &Connection,
        settings: &CspSettings,
        http: &reqwest::Client,
        clock: &SharedClock,
        tenant_id: &str,
        tokens: Arc<dyn TokenProvider>,
        sink: &Arc<dyn RequestSink>,
    ) -> Result<GraphTenant, SyncError> {
        let client = {
            let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
            let key = (settings.graph_url.clone(), settings.gdap_client_id.clone());
            match clients.get(&key) {
                Some(c) => c.clone(),
                None => {
                    let mut config = self
                        .graph_config
                        .clone()
                        .with_base_url(settings.graph_url.clone());
                    config.scope = deskbridge_connector_entra::scope_for(&settings.graph_url);
                    let log: Arc<dyn deskbridge_graph::RequestLog> = self.log.clone();
                    let c = GraphClient::with_log(http.clone(), config, clock.clone(), log)
                        .map_err(|e| SyncError::BadSettings(connection.name.clone(), e.to_string()))?;
                    clients.insert(key, c.clone());
                    c
                }
            }
        };
        self.log.register(tenant_id, sink);
        Ok(client.tenant(tenant_id, tokens))
    }

    /// A Partner Center client of the partner tenant with the partner's delegated tokens.
    pub(crate) fn partner(
        &self,
        connection: &Connection,
        settings: &CspSettings,
        http: &reqwest::Client,
        clock: &SharedClock,
        tokens: Arc<dyn TokenProvider>,
        sink: &Arc<dyn RequestSink>,
    ) -> Result<PartnerClient, SyncError> {
        let mut config = self.partner_config.clone();
        config.base_url = settings.partner_center_url.clone();
        config.partner_api_url = settings.partner_api_url.clone();
        PartnerClient::with_log(
            http.clone(),
            config,
            clock.clone(),
            tokens,
            settings.partner_tenant_id.clone(),
            Arc::new(PartnerLog {
                tenant: settings.partner_tenant_id.clone(),
                sink: sink.clone(),
            }),
        )
        .map_err(|e| SyncError::BadSettings(connection.name.clone(), e.to_string()))
    }
}
