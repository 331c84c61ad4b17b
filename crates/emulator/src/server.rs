//! The listener, shared state, request log and the [`Emulator`] handle.
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use axum::Router;
use axum::body::Body as AxumBody;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use deskbridge_core::{SharedClock, SystemClock};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jiff::Timestamp;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::crypto::{self, SigningKey};
use crate::generate::Rng;
use crate::graph;
use crate::identity::{self, AuthCode, RefreshGrant};
use crate::limits::{Faults, Throttle};
use crate::world::World;
use crate::{EmulatorError, admin};

/// How to run an emulator.
#[derive(Clone)]
pub struct EmulatorConfig {
    pub world: World,
    pub listen: SocketAddr,
    /// Serve HTTPS with a freshly generated CA (see [`Emulator::ca_pem`]).
    pub tls: bool,
    pub faults: Faults,
    pub clock: SharedClock,
    /// The authorize endpoint signs in and consents without showing the page.
    pub auto_approve: bool,
    /// Most recent requests kept in the request log.
    pub request_log_capacity: usize,
}

impl EmulatorConfig {
    pub fn new(world: World) -> Self {
        Self {
            world,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            faults: Faults::default(),
            clock: Arc::new(SystemClock),
            auto_approve: false,
            request_log_capacity: 100_000,
        }
    }
}

/// One served request.
#[derive(Debug, Clone, Serialize)]
pub struct RequestLogEntry {
    pub time: Timestamp,
    pub method: String,
    pub path: String,
    pub tenant: Option<String>,
    pub app: Option<String>,
    pub status: u16,
    pub retry_after: Option<u64>,
    pub resource_units: Option<u32>,
}

/// The first line the CLI prints: what a client needs to connect.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub base_url: String,
    pub tenants: Vec<TenantSummary>,
    pub apps: Vec<AppSummary>,
    pub admin_url: String,
    pub graph_url: String,
    pub authority_host: String,
    pub partner_tenant_id: Option<String>,
    pub partner_tenant: Option<TenantSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert_file: Option<String>,
    /// Dataverse organisations: `{url, tenant, name, tables, rows}`.
    pub dataverse_orgs: Vec<crate::dataverse::OrgSummary>,
    /// Partner Center REST (`{partner_center_url}/v1/customers`…).
    pub partner_center_url: String,
    /// The partner API (price sheets: `{partner_api_url}/v1.0/sales/pricesheets(…)/$value`).
    pub partner_api_url: String,
    /// PEM of the root that issued the webhook signing certificate.
    pub webhook_root_pem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantSummary {
    pub id: String,
    pub domain: String,
    pub users: usize,
    pub display_name: String,
    pub premium: bool,
    pub groups: usize,
    pub devices: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppSummary {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub kind: String,
    pub tenant_id: String,
    pub permissions: Vec<String>,
    pub consented_tenants: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_pem: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_pem: Option<String>,
    /// Hex SHA-1 thumbprint of the certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbprint: Option<String>,
    /// Hex SHA-256 thumbprint of the certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbprint_sha256: Option<String>,
    pub redirect_uris: Vec<String>,
}

/// Fields the Graph and identity handlers leave for the request log.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogInfo {
    pub tenant: Option<String>,
    pub app: Option<String>,
    pub resource_units: Option<u32>,
}

pub(crate) struct AppState {
    pub world: RwLock<World>,
    pub base_url: String,
    pub clock: SharedClock,
    pub signing: SigningKey,
    pub faults: Mutex<Faults>,
    pub throttle: Mutex<Throttle>,
    pub dice: Mutex<Rng>,
    pub log: Mutex<VecDeque<RequestLogEntry>>,
    pub log_capacity: usize,
    pub codes: Mutex<HashMap<String, AuthCode>>,
    pub refresh_tokens: Mutex<HashMap<String, RefreshGrant>>,
    pub auto_approve: std::sync::atomic::AtomicBool,
    pub dataverse: crate::dataverse::Protection,
    pub partner: crate::partner::PartnerState,
    /// Graph's change notification subscriptions and their deliveries.
    pub notifications: graph::subscriptions::Notifications,
}

/// A running emulator. Dropping it without [`Emulator::shutdown`] leaves the server running
/// until the runtime ends.
pub struct Emulator {
    state: Arc<AppState>,
    local_addr: SocketAddr,
    ca_pem: Option<String>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("base_url", &self.state.base_url)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Binds, generates keys (and TLS material), and starts serving in the background.
    pub async fn start(config: EmulatorConfig) -> Result<Emulator, EmulatorError> {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let host = if local_addr.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            local_addr.ip().to_string()
        };
        let host_in_url = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let scheme = if config.tls { "https" } else { "http" };
        let base_url = format!("{scheme}://{host_in_url}:{}", local_addr.port());
        let tls = if config.tls {
            Some(crypto::generate_tls(&[
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                host.clone(),
            ])?)
        } else {
            None
        };
        let signing = tokio::task::spawn_blocking(crypto::generate_signing_key)
            .await
            .map_err(|e| EmulatorError::Crypto(format!("key generation task: {e}")))??;
        let mut world = config.world;
        world.rebuild_indexes();
        let seed = config.faults.seed;
        let state = Arc::new(AppState {
            world: RwLock::new(world),
            base_url,
            clock: config.clock,
            signing,
            faults: Mutex::new(config.faults),
            throttle: Mutex::new(Throttle::default()),
            dice: Mutex::new(Rng::new(seed)),
            log: Mutex::new(VecDeque::new()),
            log_capacity: config.request_log_capacity,
            codes: Mutex::new(HashMap::new()),
            refresh_tokens: Mutex::new(HashMap::new()),
            auto_approve: std::sync::atomic::AtomicBool::new(config.auto_approve),
            dataverse: Default::default(),
            partner: tokio::task::spawn_blocking(crate::partner::PartnerState::new)
                .await
                .map_err(|e| EmulatorError::Crypto(format!("key generation task: {e}")))??,
            notifications: graph::subscriptions::Notifications::new()?,
        });
        let router = router(state.clone());
        let (stop, stopped) = watch::channel(false);
        let acceptor = tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.server_config.clone()));
        tokio::spawn(graph::deliveries::watch(state.clone(), stopped.clone()));
        let task = tokio::spawn(serve(listener, router, acceptor, stopped));
        Ok(Emulator {
            state,
            local_addr,
            ca_pem: tls.map(|t| t.ca_pem),
            stop,
            task,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.state.base_url
    }

    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.state.base_url)
    }

    pub fn admin_url(&self) -> String {
        format!("{}/_admin", self.state.base_url)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// PEM of the CA that signed the server certificate (TLS only).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    pub fn summary(&self) -> Summary {
        let world = self.state.world.read().unwrap_or_else(PoisonError::into_inner);
        let mut summary = summary_of(&world, &self.state.base_url);
        summary.webhook_root_pem = Some(self.webhook_root_pem().to_owned());
        summary
    }

    /// PEM of the root that issued the Partner Center webhook signing certificate.
    pub fn webhook_root_pem(&self) -> &str {
        &self.state.partner.keys.root_pem
    }

    /// Partner Center fault switches (forced 429s, limits, delivery pace).
    pub fn update_partner_faults(&self, change: impl FnOnce(&mut crate::PartnerFaults)) {
        change(&mut crate::partner::lock(&self.state.partner.faults));
    }

    /// Webhook delivery attempts so far.
    pub fn webhook_deliveries(&self) -> Vec<crate::DeliveryAttempt> {
        crate::partner::lock(&self.state.partner.webhooks.attempts).clone()
    }

    /// Graph's change notification subscriptions now (expired ones are gone).
    pub fn graph_subscriptions(&self) -> Vec<crate::GraphSubscription> {
        self.state.notifications.list()
    }

    /// Graph change notification deliveries so far: validation requests, change batches and
    /// lifecycle notifications, every attempt.
    pub fn graph_notifications(&self) -> Vec<crate::NotificationDelivery> {
        self.state.notifications.deliveries()
    }

    /// Sends a lifecycle notification (`reauthorizationRequired`, `missed`,
    /// `subscriptionRemoved`) for a Graph subscription, as the admin API does.
    pub fn send_lifecycle_event(&self, subscription: &str, event: &str) -> Result<(), EmulatorError> {
        graph::deliveries::lifecycle(&self.state, subscription, event)
    }

    /// Lets a Graph subscription expire now: it is deleted and delivers nothing more.
    pub fn expire_graph_subscription(&self, subscription: &str) -> Result<(), EmulatorError> {
        self.state.notifications.expire(subscription)
    }

    /// The pause between attempts of a failed notification delivery (200 ms by default).
    pub fn set_notification_retry_pause(&self, pause: std::time::Duration) {
        *self
            .state
            .notifications
            .retry_pause
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = pause;
    }

    pub fn faults(&self) -> Faults {
        self.state
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.state.faults.lock().unwrap_or_else(PoisonError::into_inner) = faults;
    }

    /// Changes some fault settings in place, e.g. `emu.update_faults(|f| f.throttling = true)`.
    pub fn update_faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.state.faults.lock().unwrap_or_else(PoisonError::into_inner));
    }

    pub fn set_auto_approve(&self, on: bool) {
        self.state
            .auto_approve
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn request_log(&self) -> Vec<RequestLogEntry> {
        self.state
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Reads the world (e.g. to pick ids in tests).
    pub fn with_world<R>(&self, f: impl FnOnce(&World) -> R) -> R {
        f(&self.state.world.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Changes the world in place; use [`World`]'s mutation methods so delta sees the change.
    pub fn with_world_mut<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut self.state.world.write().unwrap_or_else(PoisonError::into_inner))
    }

    /// Issues an app-only Graph access token directly (for in-process tests and benchmarks).
    pub fn issue_app_token(&self, client_id: &str, tenant: &str) -> Result<String, EmulatorError> {
        identity::issue_app_token(&self.state, client_id, tenant)
    }

    /// What each Dataverse (org, user) has sent: arrivals, the most in flight at once, and which
    /// arrivals were answered "too many concurrent requests".
    pub fn dataverse_load(&self) -> Vec<crate::DataverseLoad> {
        self.state.dataverse.load()
    }

    /// Dataverse's service protection limits (enforced while `Faults::throttling` is on).
    pub fn set_dataverse_limits(&self, limits: crate::ServiceLimits) {
        *self
            .state
            .dataverse
            .limits
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = limits;
    }

    /// Stops accepting, closes connections, and waits for the server task.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

pub(crate) fn summary_of(world: &World, base_url: &str) -> Summary {
    let tenant_summary = |t: &crate::world::Tenant| TenantSummary {
        id: t.id.clone(),
        domain: t.domain.clone(),
        users: t.user_count(),
        display_name: t.display_name.clone(),
        premium: t.premium,
        groups: t.live_groups().count(),
        devices: t.devices.len(),
    };
    let hex = |b64: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .map(|b| b.iter().map(|x| format!("{x:02X}")).collect::<String>())
            .ok()
    };
    Summary {
        base_url: base_url.to_owned(),
        tenants: world.customer_tenants().map(tenant_summary).collect(),
        apps: world
            .apps
            .iter()
            .map(|a| {
                let cert = a.certificates.first();
                AppSummary {
                    client_id: a.client_id.clone(),
                    client_secret: a.secrets.first().map(|s| s.value.clone()),
                    kind: a.kind.as_str().to_owned(),
                    tenant_id: a.home_tenant_id.clone(),
                    permissions: a.application_permissions.clone(),
                    consented_tenants: a.consented_tenants.clone(),
                    certificate_pem: cert.map(|c| c.certificate_pem.clone()),
                    private_key_pem: cert.map(|c| c.private_key_pem.clone()),
                    thumbprint: cert.map(|c| c.thumbprint_sha1.clone()),
                    thumbprint_sha256: cert.and_then(|c| hex(&c.x5t_s256)),
                    redirect_uris: a.redirect_uris.clone(),
                }
            })
            .collect(),
        admin_url: format!("{base_url}/_admin"),
        graph_url: format!("{base_url}/v1.0"),
        authority_host: base_url.to_owned(),
        partner_tenant_id: world.partner_tenant_id.clone(),
        partner_tenant: world.tenants.iter().find(|t| t.is_partner).map(tenant_summary),
        ca_cert_file: None,
        dataverse_orgs: crate::dataverse::summaries(world, base_url),
        partner_center_url: format!("{base_url}/pc"),
        partner_api_url: format!("{base_url}/pc-api"),
        webhook_root_pem: None,
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1.0/{*rest}", axum::routing::any(graph_handler))
        .route("/pc/{*rest}", axum::routing::any(crate::partner::handle))
        .route(
            "/pc-api/{*rest}",
            axum::routing::any(crate::partner::handle_partner_api),
        )
        .route(
            "/{tenant}/v2.0/adminconsent",
            axum::routing::get(crate::partner::consent::admin_consent)
                .post(crate::partner::consent::admin_consent_submit),
        )
        .nest("/_admin", admin::router())
        .route(
            "/org/{org}/api/data/v9.2",
            axum::routing::any(crate::dataverse::handler),
        )
        .route(
            "/org/{org}/api/data/v9.2/{*rest}",
            axum::routing::any(crate::dataverse::handler),
        )
        .route(
            "/{tenant}/oauth2/v2.0/token",
            axum::routing::post(identity::token),
        )
        .route(
            "/{tenant}/oauth2/v2.0/authorize",
            axum::routing::get(identity::authorize).post(identity::authorize_submit),
        )
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            axum::routing::get(identity::openid_configuration),
        )
        .route(
            "/{tenant}/discovery/v2.0/keys",
            axum::routing::get(identity::jwks),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn graph_handler(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().strip_prefix("/v1.0").unwrap_or("/").to_owned();
    let query = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let req = graph::Req {
        method,
        path,
        query,
        headers: &headers,
        body: &body,
    };
    let resp = if graph::subscriptions::is_subscriptions(&req.path) {
        graph::dispatch_subscriptions(&state, req).await
    } else {
        graph::dispatch(&state, req, true)
    };
    into_response(resp)
}

fn into_response(resp: graph::Resp) -> Response {
    let info = LogInfo {
        tenant: resp.tenant.clone(),
        app: resp.app.clone(),
        resource_units: resp.resource_units,
    };
    let json_type =
        "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
    let (body, content_type) = match resp.body {
        graph::Body::Json(v) => (
            AxumBody::from(serde_json::to_vec(&v).unwrap_or_default()),
            Some(json_type),
        ),
        graph::Body::Text(t) => (AxumBody::from(t), Some("text/plain")),
        graph::Body::Malformed(t) => (AxumBody::from(t), Some(json_type)),
        graph::Body::Drop => {
            let broken = futures::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "dropped",
                ))
            });
            (AxumBody::from_stream(broken), Some(json_type))
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = resp.status;
    let headers = response.headers_mut();
    if let Some(ct) = content_type {
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    for (k, v) in resp.headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            headers.append(name, value);
        }
    }
    response.extensions_mut().insert(info);
    response
}

/// Latency injection and the request log.
async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let latency = state
        .faults
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .latency_ms;
    if latency > 0 && !path.starts_with("/_admin") {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    let response = next.run(req).await;
    let info = response
        .extensions()
        .get::<LogInfo>()
        .cloned()
        .unwrap_or_default();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let entry = RequestLogEntry {
        time: state.clock.now(),
        method,
        path,
        tenant: info.tenant,
        app: info.app,
        status: response.status().as_u16(),
        retry_after,
        resource_units: info.resource_units,
    };
    let mut log = state.log.lock().unwrap_or_else(PoisonError::into_inner);
    if log.len() >= state.log_capacity {
        log.pop_front();
    }
    log.push_back(entry);
    drop(log);
    response.into_response()
}

async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let router = router.clone();
                let tls = tls.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(ConnectInfo(peer));
                        let router = router.clone();
                        async move {
                            use tower::ServiceExt;
                            router.oneshot(req.map(AxumBody::new)).await
                        }
                    });
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

/// What a browser does with an authorize (or admin-consent) URL of an emulator that approves
/// sign-ins at once ([`Emulator::set_auto_approve`], `--auto-approve`): opens it and comes back
/// with the redirect's `Location`, for the caller to complete the sign-in with.
pub async fn follow_approved_sign_in(url: &str) -> Result<String, EmulatorError> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| EmulatorError::BadRequest(format!("cannot make an HTTP client: {e}")))?;
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| EmulatorError::BadRequest(format!("the emulator's sign-in did not answer: {e}")))?;
    response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| {
            EmulatorError::BadRequest(format!(
                "the emulator's sign-in answered {} without a redirect back (is auto-approve on?)",
                response.status()
            ))
        })
}
