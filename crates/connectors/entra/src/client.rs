//! Graph clients and tokens for Entra connections.
//!
//! One Graph client per app registration (Graph URL and client id) serves every connection of the
//! process: Microsoft counts the per-app resource-unit budget and the app-wide limit on requests
//! in flight across tenants, so they must really be shared. Each operation still gets its own
//! request records: the shared client's log routes entries to the operations in progress by
//! tenant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use deskbridge_core::SharedClock;
use deskbridge_graph::{GraphClient, GraphConfig, GraphTenant, RequestLog, RequestLogEntry};
use deskbridge_msauth::{
    AppCredentials, AppTokenProvider, Authority, CertificateCredential, ClientCredential, SecretString,
    TokenClient, TokenProvider,
};
use deskbridge_source::{ConnectionSecrets, RequestRecord, RequestSink, SyncError};
use deskbridge_store::{Connection, Store, StoreTx};

use crate::ENTRA_KIND;
use crate::settings::{AuthMethod, EntraSettings, SECRET_CERTIFICATE, SECRET_CLIENT_SECRET};

/// The token scope of the Graph instance at `graph_url` (national clouds have their own).
pub fn scope_for(graph_url: &str) -> String {
    // National clouds have their own Graph resource; the public cloud's serves everything else.
    match url::Url::parse(graph_url) {
        Ok(u)
            if u.host_str()
                .is_some_and(|h| h.starts_with("graph.") && h != "graph.microsoft.com") =>
        {
            format!("{}://{}/.default", u.scheme(), u.host_str().unwrap_or_default())
        }
        _ => deskbridge_msauth::GRAPH_DEFAULT_SCOPE.to_owned(),
    }
}

/// The client credential sealed for the connection: required for application permissions,
/// optional for delegated ones (a public client has none).
pub(crate) async fn app_credential(
    tx: &mut StoreTx,
    connection: &Connection,
    auth: AuthMethod,
) -> Result<Option<ClientCredential>, SyncError> {
    let missing =
        |what: &str| SyncError::Credential(format!("connection {:?} has no {what} stored", connection.name));
    let secrets = ConnectionSecrets(connection.id);
    match auth {
        AuthMethod::ClientSecret | AuthMethod::Delegated => {
            match secrets.get(tx, SECRET_CLIENT_SECRET).await? {
                Some(secret) => Ok(Some(ClientCredential::Secret(SecretString::from(
                    secret.as_str().to_owned(),
                )))),
                None if auth == AuthMethod::Delegated => Ok(None),
                None => Err(missing("client secret")),
            }
        }
        AuthMethod::Certificate => {
            let pem = secrets
                .get(tx, SECRET_CERTIFICATE)
                .await?
                .ok_or_else(|| missing("certificate"))?;
            let cert = CertificateCredential::from_pem_bundle(pem.as_bytes())
                .map_err(|e| SyncError::Credential(format!("the stored certificate cannot be used: {e}")))?;
            Ok(Some(ClientCredential::Certificate(Arc::new(cert))))
        }
    }
}

/// Where the connection's access tokens come from: client credentials for application
/// permissions, the sealed (and rotated) refresh token for delegated ones. The configuration
/// check uses this too, so it tests exactly what a sync will use.
pub async fn token_provider(
    store: &Store,
    connection: &Connection,
    settings: &EntraSettings,
    http: &reqwest::Client,
    clock: &SharedClock,
) -> Result<Arc<dyn TokenProvider>, SyncError> {
    let mut tx = store.read().await?;
    let credential = app_credential(&mut tx, connection, settings.auth).await?;
    tx.commit().await?;
    let authority = Authority::new(&settings.authority_host)
        .map_err(|e| SyncError::BadSettings(connection.name.clone(), e.to_string()))?;
    let token_client = TokenClient::new(http.clone(), authority, clock.clone());
    let app = AppCredentials {
        client_id: settings.client_id.clone(),
        credential,
    };
    Ok(match settings.auth {
        AuthMethod::Delegated => {
            Arc::new(crate::delegated::delegated_provider(store, connection, token_client, app).await?)
        }
        AuthMethod::ClientSecret | AuthMethod::Certificate => {
            Arc::new(AppTokenProvider::new(token_client, app))
        }
    })
}

/// Routes Graph's request log entries to the sinks of the operations in progress, by tenant. Two
/// operations on the same tenant at once (two connections, one tenant) both receive the tenant's
/// entries: an outbound log may then list a request too many, never one too few.
#[derive(Default)]
struct RoutedLog {
    by_tenant: Mutex<HashMap<String, Vec<Weak<dyn RequestSink>>>>,
}

impl RoutedLog {
    fn register(&self, tenant: &str, sink: &Arc<dyn RequestSink>) {
        let mut map = self.by_tenant.lock().unwrap_or_else(PoisonError::into_inner);
        // Operations that finished dropped their sink: forget them so the map stays small.
        map.retain(|_, sinks| {
            sinks.retain(|s| s.strong_count() > 0);
            !sinks.is_empty()
        });
        map.entry(tenant.to_owned())
            .or_default()
            .push(Arc::downgrade(sink));
    }
}

fn record_of(entry: RequestLogEntry) -> RequestRecord {
    RequestRecord {
        source: ENTRA_KIND,
        tenant: entry.tenant,
        method: entry.method,
        path: entry.path,
        status: entry.status,
        duration: entry.duration,
        request_id: entry.request_id,
        retry_after: entry.retry_after,
        error: entry.error,
    }
}

impl RequestLog for RoutedLog {
    fn record(&self, entry: RequestLogEntry) {
        let sinks: Vec<Arc<dyn RequestSink>> = {
            let map = self.by_tenant.lock().unwrap_or_else(PoisonError::into_inner);
            map.get(&entry.tenant)
                .map(|sinks| sinks.iter().filter_map(Weak::upgrade).collect())
                .unwrap_or_default()
        };
        if sinks.is_empty() {
            return;
        }
        let record = record_of(entry);
        for sink in &sinks {
            sink.record(record.clone());
        }
    }
}

/// The Graph clients of the process: one per (Graph URL, client id), one HTTP pool.
pub(crate) struct SharedGraph {
    config: GraphConfig,
    clients: Mutex<HashMap<(String, String), GraphClient>>,
    log: Arc<RoutedLog>,
}

impl SharedGraph {
    pub(crate) fn new(config: GraphConfig) -> Self {
        Self {
            config,
            clients: Mutex::new(HashMap::new()),
            log: Arc::new(RoutedLog::default()),
        }
    }

    /// The tenant handle of one connection on its app's shared client; its requests are reported
    /// to `sink`.
    pub(crate) async fn tenant(
        &self,
        store: &Store,
        connection: &Connection,
        settings: &EntraSettings,
        clock: &SharedClock,
        sink: &Arc<dyn RequestSink>,
    ) -> Result<GraphTenant, SyncError> {
        let http = deskbridge_source::http_client(&connection.name)?;
        let tokens = token_provider(store, connection, settings, &http, clock).await?;
        let client = {
            let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
            let key = (settings.graph_url.clone(), settings.client_id.clone());
            match clients.get(&key) {
                Some(c) => c.clone(),
                None => {
                    let mut config = self.config.clone().with_base_url(settings.graph_url.clone());
                    config.scope = scope_for(&settings.graph_url);
                    let log: Arc<dyn RequestLog> = self.log.clone();
                    let c = GraphClient::with_log(http, config, clock.clone(), log)
                        .map_err(|e| SyncError::BadSettings(connection.name.clone(), e.to_string()))?;
                    clients.insert(key, c.clone());
                    c
                }
            }
        };
        self.log.register(&settings.tenant_id, sink);
        Ok(client.tenant(&settings.tenant_id, tokens))
    }

    /// The configuration Graph clients are built with (the check builds its own probe client).
    pub(crate) fn config(&self) -> &GraphConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deskbridge_source::MemoryRequests;
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
    fn entries_reach_the_operation_of_their_tenant_only() {
        let routed = RoutedLog::default();
        let a = Arc::new(MemoryRequests::default());
        let b = Arc::new(MemoryRequests::default());
        let (sink_a, sink_b): (Arc<dyn RequestSink>, Arc<dyn RequestSink>) = (a.clone(), b.clone());
        routed.register("a", &sink_a);
        routed.register("b", &sink_b);
        routed.record(entry("a"));
        routed.record(entry("a"));
        routed.record(entry("b"));
        routed.record(entry("c"));
        assert_eq!(a.entries().len(), 2);
        assert_eq!(b.entries().len(), 1);
        assert_eq!(b.entries()[0].tenant, "b");
        assert_eq!(b.entries()[0].source, "entra");
    }

    #[test]
    fn finished_operations_are_forgotten() {
        let routed = RoutedLog::default();
        let a: Arc<dyn RequestSink> = Arc::new(MemoryRequests::default());
        routed.register("a", &a);
        drop(a);
        let b_log = Arc::new(MemoryRequests::default());
        let b: Arc<dyn RequestSink> = b_log.clone();
        routed.register("b", &b);
        routed.record(entry("a"));
        let map = routed.by_tenant.lock().unwrap();
        assert!(!map.contains_key("a"));
        assert_eq!(map["b"].len(), 1);
        drop(map);
        assert!(b_log.entries().is_empty());
    }
}
