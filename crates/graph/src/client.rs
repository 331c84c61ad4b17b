use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deskbridge_core::SharedClock;
use deskbridge_msauth::{GRAPH_DEFAULT_SCOPE, TokenProvider};
use rand::Rng as _;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use url::Url;

use crate::budget::{
    APP_RESOURCE_UNITS_PER_20S, Bucket, INTUNE_REQUESTS_PER_20S, TenantSize, resource_unit_cost,
};
use crate::error::{GraphApiError, GraphError};
use crate::log::{NoRequestLog, RequestLog, RequestLogEntry, redact_path};
use crate::page::{Page, parse_object, parse_page};

/// The public cloud's Graph v1.0 root.
pub const DEFAULT_GRAPH_BASE_URL: &str = "https://graph.microsoft.com/v1.0";

/// How the Graph client talks to Graph. Only the endpoints differ between clouds and the emulator.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// Version root, e.g. `https://graph.microsoft.com/v1.0` (national clouds and the emulator differ).
    pub base_url: String,
    /// Token scope for this Graph instance.
    pub scope: String,
    /// Tries per request, the first included, for 5xx, 429/503 and dropped connections.
    pub max_attempts: u32,
    /// First backoff delay; doubled per retry, capped at `backoff_max`, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A Retry-After longer than this fails the request instead of waiting (the tenant stays paused).
    pub max_retry_after: Duration,
    /// Requests in flight across all tenants.
    pub max_concurrent_requests: usize,
    /// Requests in flight per tenant.
    pub max_concurrent_per_tenant: usize,
    /// Follow Microsoft's resource-unit limits on the client side.
    pub budget_enabled: bool,
    /// Fraction of Microsoft's limits this client allows itself (other apps share the tenant).
    pub budget_share: f64,
    /// Overrides the per tenant RU / 10 s limit (otherwise by [`TenantSize`]).
    pub tenant_resource_units_per_10s: Option<u32>,
    /// Per app RU / 20 s across all tenants.
    pub app_resource_units_per_20s: u32,
    /// Longest wait for one response; a request that takes longer counts as a dropped connection.
    pub request_timeout: Option<Duration>,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            base_url: DEFAULT_GRAPH_BASE_URL.to_string(),
            scope: GRAPH_DEFAULT_SCOPE.to_string(),
            max_attempts: 8,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
            max_concurrent_requests: 64,
            max_concurrent_per_tenant: 8,
            budget_enabled: true,
            budget_share: 0.9,
            tenant_resource_units_per_10s: None,
            app_resource_units_per_20s: APP_RESOURCE_UNITS_PER_20S,
            request_timeout: Some(Duration::from_secs(120)),
        }
    }
}

impl GraphConfig {
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }
}

const TENANT_WINDOW: Duration = Duration::from_secs(10);
const APP_WINDOW: Duration = Duration::from_secs(20);

/// The Graph client of one application (client id): shared HTTP pool, app-wide budget and
/// concurrency. Cheap to clone. Use one per app so the per-app budget is really shared.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: GraphConfig,
    base: Url,
    base_str: String,
    clock: SharedClock,
    log: Arc<dyn RequestLog>,
    global_permits: Arc<Semaphore>,
    app_budget: Mutex<Bucket>,
    tenants: Mutex<HashMap<String, Arc<TenantState>>>,
}

struct TenantState {
    /// No request to the tenant before this instant (Retry-After).
    not_before: Mutex<Option<Instant>>,
    budget: Mutex<Bucket>,
    intune_budget: Mutex<Bucket>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("base_url", &self.inner.base_str)
            .finish_non_exhaustive()
    }
}

impl GraphClient {
    pub fn new(http: reqwest::Client, config: GraphConfig, clock: SharedClock) -> Result<Self, GraphError> {
        Self::with_log(http, config, clock, Arc::new(NoRequestLog))
    }

    pub fn with_log(
        http: reqwest::Client,
        config: GraphConfig,
        clock: SharedClock,
        log: Arc<dyn RequestLog>,
    ) -> Result<Self, GraphError> {
        let base_str = config.base_url.trim().trim_end_matches('/').to_string();
        let base = Url::parse(&base_str)
            .map_err(|e| GraphError::InvalidRequest(format!("base URL {base_str:?} is not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.query().is_some() {
            return Err(GraphError::InvalidRequest(format!(
                "base URL {base_str:?} must be http(s) without a query"
            )));
        }
        let app_limit = scaled(config.app_resource_units_per_20s, config.budget_share);
        let inner = Inner {
            http,
            global_permits: Arc::new(Semaphore::new(config.max_concurrent_requests.max(1))),
            app_budget: Mutex::new(Bucket::new(app_limit, APP_WINDOW, Instant::now())),
            config,
            base,
            base_str,
            clock,
            log,
            tenants: Mutex::new(HashMap::new()),
        };
        Ok(GraphClient {
            inner: Arc::new(inner),
        })
    }

    pub fn config(&self) -> &GraphConfig {
        &self.inner.config
    }

    /// A handle for calls to one tenant with tokens from `tokens`. Handles for the same tenant share
    /// its Retry-After pause, budget and concurrency limit.
    pub fn tenant(&self, tenant_id: &str, tokens: Arc<dyn TokenProvider>) -> GraphTenant {
        let state = {
            let mut tenants = self.inner.tenants.lock().unwrap_or_else(PoisonError::into_inner);
            tenants
                .entry(tenant_id.to_string())
                .or_insert_with(|| {
                    let limit = self
                        .inner
                        .config
                        .tenant_resource_units_per_10s
                        .unwrap_or_else(|| TenantSize::default().resource_units_per_10s());
                    let now = Instant::now();
                    Arc::new(TenantState {
                        not_before: Mutex::new(None),
                        budget: Mutex::new(Bucket::new(
                            scaled(limit, self.inner.config.budget_share),
                            TENANT_WINDOW,
                            now,
                        )),
                        intune_budget: Mutex::new(Bucket::new(
                            scaled(INTUNE_REQUESTS_PER_20S, self.inner.config.budget_share),
                            APP_WINDOW,
                            now,
                        )),
                        permits: Arc::new(Semaphore::new(self.inner.config.max_concurrent_per_tenant.max(1))),
                    })
                })
                .clone()
        };
        GraphTenant {
            client: self.clone(),
            tenant_id: tenant_id.to_string(),
            tokens,
            state,
        }
    }
}

fn scaled(limit: u32, share: f64) -> u32 {
    let share = if share.is_finite() {
        share.clamp(0.01, 1.0)
    } else {
        1.0
    };
    // Limits are at most a few hundred thousand: the product fits and rounds safely.
    let value = (f64::from(limit) * share).floor();
    if value >= 1.0 && value <= f64::from(u32::MAX) {
        value as u32
    } else {
        1
    }
}

/// A request to send through [`GraphTenant::send`].
#[derive(Debug, Clone)]
pub struct GraphRequest {
    pub method: Method,
    /// A path below the version root (`/users?$select=id`) or an absolute link Graph returned.
    pub url: String,
    pub body: Option<Value>,
    /// Adds `ConsistencyLevel: eventual` (needed for `$count`, `$search` and advanced filters).
    pub eventual_consistency: bool,
    /// Safe to resend after a 5xx or a dropped connection (the server may have acted on it).
    /// True for GET; a POST is only resent after 429/503, which reject before acting.
    pub idempotent: bool,
}

impl GraphRequest {
    pub fn get(url: impl Into<String>) -> Self {
        GraphRequest {
            method: Method::GET,
            url: url.into(),
            body: None,
            eventual_consistency: false,
            idempotent: true,
        }
    }

    pub fn post(url: impl Into<String>, body: Value) -> Self {
        GraphRequest {
            method: Method::POST,
            url: url.into(),
            body: Some(body),
            eventual_consistency: false,
            idempotent: false,
        }
    }

    pub fn eventual(mut self) -> Self {
        self.eventual_consistency = true;
        self
    }

    /// Marks a POST as safe to resend (e.g. a `$batch` of GETs, or a query action).
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }
}

/// A successful (2xx) response.
#[derive(Debug, Clone)]
pub struct GraphResponse {
    pub status: u16,
    /// The URL requested (absolute).
    pub url: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Calls to one tenant. Cheap to clone.
#[derive(Clone)]
pub struct GraphTenant {
    client: GraphClient,
    tenant_id: String,
    tokens: Arc<dyn TokenProvider>,
    state: Arc<TenantState>,
}

impl std::fmt::Debug for GraphTenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphTenant")
            .field("tenant_id", &self.tenant_id)
            .finish_non_exhaustive()
    }
}

enum Attempt {
    Response {
        status: u16,
        headers: HeaderMap,
        body: Vec<u8>,
    },
    /// No (complete) response. `never_sent`: the connection failed before the request went out.
    Dropped { reason: String, never_sent: bool },
}

impl GraphTenant {
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    pub(crate) fn client(&self) -> &GraphClient {
        &self.client
    }

    /// Sets the tenant's RU tier once its user count is known (unless the config overrides it).
    pub fn set_size(&self, size: TenantSize) {
        if self.client.inner.config.tenant_resource_units_per_10s.is_some() {
            return;
        }
        let limit = scaled(
            size.resource_units_per_10s(),
            self.client.inner.config.budget_share,
        );
        lock(&self.state.budget).set_limit(limit, TENANT_WINDOW, Instant::now());
    }

    /// GETs one page of a collection (a path, or a `@odata.nextLink` / `@odata.deltaLink` verbatim).
    pub async fn get_page<T: DeserializeOwned>(&self, path_or_link: &str) -> Result<Page<T>, GraphError> {
        self.get_parsed(path_or_link, |url, body| parse_page(url, body))
            .await
    }

    /// GETs a single object.
    pub async fn get_json<T: DeserializeOwned>(&self, path_or_link: &str) -> Result<T, GraphError> {
        self.get_parsed(path_or_link, |url, body| parse_object(url, body))
            .await
    }

    /// A body that is not even JSON (cut short, garbled on the way) is fetched again; a well-formed
    /// body of the wrong shape is not, since asking again would give the same answer.
    async fn get_parsed<R>(
        &self,
        path_or_link: &str,
        parse: impl Fn(&str, &[u8]) -> Result<R, GraphError>,
    ) -> Result<R, GraphError> {
        let mut fetches: u32 = 0;
        loop {
            fetches += 1;
            let response = self.send(GraphRequest::get(path_or_link)).await?;
            match parse(&response.url, &response.body) {
                Err(GraphError::Malformed { .. })
                    if fetches < self.client.inner.config.max_attempts
                        && serde_json::from_slice::<serde::de::IgnoredAny>(&response.body).is_err() =>
                {
                    tokio::time::sleep(self.backoff(fetches)).await;
                }
                result => return result,
            }
        }
    }

    /// Iterates the pages of a collection or a delta round, following `@odata.nextLink` verbatim.
    pub fn pager<T: DeserializeOwned>(&self, first: impl Into<String>) -> Pager<T> {
        Pager {
            tenant: self.clone(),
            next: Some(first.into()),
            marker: PhantomData,
        }
    }

    /// Sends a request with retries, Retry-After, budget and concurrency limits; returns the 2xx
    /// response or a typed error.
    pub async fn send(&self, request: GraphRequest) -> Result<GraphResponse, GraphError> {
        self.send_with_cost(request, None).await
    }

    /// `send` with the RU cost given by the caller (a `$batch` costs the sum of its parts).
    pub(crate) async fn send_with_cost(
        &self,
        request: GraphRequest,
        cost_override: Option<u32>,
    ) -> Result<GraphResponse, GraphError> {
        let inner = &self.client.inner;
        let url = self.resolve(&request.url)?;
        let parsed = Url::parse(&url).map_err(|e| {
            GraphError::InvalidRequest(format!("bad URL {:?}: {e}", deskbridge_core::redact::url(&url)))
        })?;
        let path_and_query = match parsed.query() {
            Some(query) => format!("{}?{query}", parsed.path()),
            None => parsed.path().to_string(),
        };
        let logged_path = redact_path(&path_and_query);
        let below_root = path_and_query
            .strip_prefix(inner.base.path().trim_end_matches('/'))
            .unwrap_or(&path_and_query);
        let cost = cost_override.unwrap_or_else(|| resource_unit_cost(below_root));
        let intune = below_root.to_ascii_lowercase().starts_with("/devicemanagement");
        let description = format!("{} {}", request.method, logged_path);
        let mut retried_token = false;
        let mut attempt: u32 = 0;
        let mut ready_since = Instant::now();
        loop {
            attempt += 1;
            let permits = self.admit(cost, intune).await?;
            let token = match self
                .tokens
                .access_token(&self.tenant_id, &inner.config.scope)
                .await
            {
                Ok(token) => token,
                // The token endpoint throttled or was unreachable: that is worth a retry, a
                // rejected credential is not.
                Err(source) if source.is_transient() && attempt < inner.config.max_attempts => {
                    drop(permits);
                    tokio::time::sleep(self.backoff(attempt)).await;
                    continue;
                }
                Err(source) => {
                    return Err(GraphError::Auth {
                        tenant: self.tenant_id.clone(),
                        source,
                    });
                }
            };
            let mut builder = inner
                .http
                .request(request.method.clone(), parsed.clone())
                .bearer_auth(token.bearer())
                .header("client-request-id", uuid::Uuid::new_v4().to_string());
            if let Some(timeout) = inner.config.request_timeout {
                builder = builder.timeout(timeout);
            }
            if request.eventual_consistency {
                builder = builder.header("ConsistencyLevel", "eventual");
            }
            if let Some(body) = &request.body {
                builder = builder.json(body);
            }
            let started = Instant::now();
            let waited = started.saturating_duration_since(ready_since);
            let outcome = match builder.send().await {
                Err(e) => Attempt::Dropped {
                    reason: describe(&e),
                    never_sent: e.is_connect(),
                },
                Ok(response) => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    match response.bytes().await {
                        Ok(body) => Attempt::Response {
                            status,
                            headers,
                            body: body.to_vec(),
                        },
                        Err(e) => Attempt::Dropped {
                            reason: describe(&e),
                            never_sent: e.is_connect(),
                        },
                    }
                }
            };
            drop(permits);
            let duration = started.elapsed();
            ready_since = Instant::now();
            let mut entry = RequestLogEntry {
                tenant: self.tenant_id.clone(),
                method: request.method.to_string(),
                path: logged_path.clone(),
                status: None,
                duration,
                waited,
                request_id: None,
                retry_after: None,
                attempt,
                resource_units: if inner.config.budget_enabled { cost } else { 0 },
                error: None,
            };
            let (status, headers, body) = match outcome {
                Attempt::Dropped { reason, never_sent } => {
                    entry.error = Some(reason.clone());
                    inner.log.record(entry);
                    if attempt >= inner.config.max_attempts || !(request.idempotent || never_sent) {
                        return Err(GraphError::Transport {
                            url: description,
                            attempts: attempt,
                            reason,
                        });
                    }
                    tokio::time::sleep(self.backoff(attempt)).await;
                    continue;
                }
                Attempt::Response {
                    status,
                    headers,
                    body,
                } => (status, headers, body),
            };
            let retry_after = retry_after(&headers, &inner.clock);
            entry.status = Some(status);
            entry.request_id = header_text(&headers, "request-id");
            entry.retry_after = retry_after;
            inner.log.record(entry);

            if (200..300).contains(&status) {
                return Ok(GraphResponse {
                    status,
                    url,
                    headers,
                    body,
                });
            }
            let api_error = || {
                let mut error = GraphApiError::from_body(status, &body, description.clone());
                error.retry_after = retry_after;
                error.location = header_text(&headers, "location");
                GraphError::Api(Box::new(error))
            };
            match status {
                401 if !retried_token => {
                    // An expired or revoked token: fetch a fresh one once before giving up.
                    retried_token = true;
                    self.tokens.invalidate(&self.tenant_id, &inner.config.scope).await;
                }
                429 | 503 => {
                    let wait = retry_after.unwrap_or_else(|| self.backoff(attempt));
                    self.pause_tenant(wait);
                    if wait > inner.config.max_retry_after || attempt >= inner.config.max_attempts {
                        return Err(api_error());
                    }
                }
                500..=599 => {
                    if attempt >= inner.config.max_attempts || !request.idempotent {
                        return Err(api_error());
                    }
                    tokio::time::sleep(retry_after.unwrap_or_else(|| self.backoff(attempt))).await;
                }
                _ => return Err(api_error()),
            }
        }
    }

    /// Whether `link` (an absolute URL, or a path below the version root) is on this client's
    /// Graph origin: only such links are sent the tenant's token. A `Location` Graph gives with a
    /// 410 is followed only if it is.
    pub fn is_graph_link(&self, link: &str) -> bool {
        self.resolve(link).is_ok()
    }

    /// Absolute URL for a path below the version root, or a link checked to stay on Graph's origin
    /// (a link elsewhere would receive the tenant's token).
    fn resolve(&self, path_or_link: &str) -> Result<String, GraphError> {
        let inner = &self.client.inner;
        let trimmed = path_or_link.trim();
        if trimmed.starts_with("https://") || trimmed.starts_with("http://") {
            let link = Url::parse(trimmed).map_err(|e| {
                GraphError::InvalidRequest(format!(
                    "link {:?} is not a URL: {e}",
                    deskbridge_core::redact::url(trimmed)
                ))
            })?;
            if link.origin() != inner.base.origin() {
                return Err(GraphError::InvalidRequest(format!(
                    "refusing to follow a link to {} (Graph is {})",
                    link.origin().ascii_serialization(),
                    inner.base.origin().ascii_serialization()
                )));
            }
            return Ok(trimmed.to_string());
        }
        if trimmed.is_empty() {
            return Err(GraphError::InvalidRequest("empty request path".into()));
        }
        let root_path = inner.base.path().trim_end_matches('/');
        if !root_path.is_empty() && trimmed.starts_with(&format!("{root_path}/")) {
            // A host-relative link that already names the version root (`/v1.0/users?...`).
            return Ok(format!("{}{trimmed}", inner.base.origin().ascii_serialization()));
        }
        let separator = if trimmed.starts_with('/') { "" } else { "/" };
        Ok(format!("{}{separator}{trimmed}", inner.base_str))
    }

    /// Waits for the tenant's Retry-After pause, the RU budget and a concurrency slot.
    async fn admit(
        &self,
        cost: u32,
        intune: bool,
    ) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit), GraphError> {
        let inner = &self.client.inner;
        if inner.config.budget_enabled {
            let now = Instant::now();
            let mut wait = lock(&inner.app_budget).reserve(cost, now);
            wait = wait.max(lock(&self.state.budget).reserve(cost, now));
            if intune {
                wait = wait.max(lock(&self.state.intune_budget).reserve(1, now));
            }
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        let closed = |_| GraphError::InvalidRequest("the Graph client is shutting down".into());
        loop {
            self.fail_if_paused_too_long()?;
            self.wait_for_pause().await;
            let global = inner
                .global_permits
                .clone()
                .acquire_owned()
                .await
                .map_err(closed)?;
            let tenant = self.state.permits.clone().acquire_owned().await.map_err(closed)?;
            // The pause may have been extended while this request queued for a slot.
            if self.paused_until().is_none_or(|until| until <= Instant::now()) {
                return Ok((global, tenant));
            }
        }
    }

    /// A tenant paused for longer than `max_retry_after` fails fast instead of holding the caller.
    fn fail_if_paused_too_long(&self) -> Result<(), GraphError> {
        let Some(until) = self.paused_until() else {
            return Ok(());
        };
        let remaining = until.saturating_duration_since(Instant::now());
        if remaining <= self.client.inner.config.max_retry_after {
            return Ok(());
        }
        Err(GraphError::Api(Box::new(GraphApiError {
            status: 429,
            code: "TenantPaused".into(),
            message: format!(
                "Graph asked not to call this tenant for another {}s",
                remaining.as_secs()
            ),
            request_id: None,
            client_request_id: None,
            date: None,
            request: format!("tenant {}", self.tenant_id),
            retry_after: Some(remaining),
            location: None,
            class: crate::GraphErrorClass::Throttled,
        })))
    }

    fn paused_until(&self) -> Option<Instant> {
        *lock(&self.state.not_before)
    }

    async fn wait_for_pause(&self) {
        while let Some(until) = self.paused_until() {
            if until <= Instant::now() {
                return;
            }
            tokio::time::sleep_until(until).await;
        }
    }

    /// No request goes to this tenant for `wait` (extends, never shortens, an existing pause).
    pub(crate) fn pause_tenant(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut not_before = lock(&self.state.not_before);
        if not_before.is_none_or(|current| current < until) {
            *not_before = Some(until);
        }
    }

    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let config = &self.client.inner.config;
        let exponent = attempt.saturating_sub(1).min(16);
        let ceiling = config
            .backoff_base
            .saturating_mul(1u32 << exponent)
            .min(config.backoff_max);
        // Jitter in [ceiling/2, ceiling] spreads retries of many tenants apart.
        let half = ceiling / 2;
        let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rand::rng().random_range(0..=jitter_ms))
    }
}

/// Pages of a collection or delta round. `next_page` returns `Ok(None)` after the last page.
pub struct Pager<T> {
    tenant: GraphTenant,
    next: Option<String>,
    marker: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Pager<T> {
    pub async fn next_page(&mut self) -> Result<Option<Page<T>>, GraphError> {
        let Some(link) = self.next.take() else {
            return Ok(None);
        };
        match self.tenant.get_page::<T>(&link).await {
            Ok(page) => {
                self.next = page.next_link.clone();
                Ok(Some(page))
            }
            Err(error) => {
                // Keep the link so the caller may retry the same page later.
                self.next = Some(link);
                Err(error)
            }
        }
    }

    /// The link the next call will fetch.
    pub fn next_link(&self) -> Option<&str> {
        self.next.as_deref()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `Retry-After` as seconds or an HTTP date (compared with the injected clock).
fn retry_after(headers: &HeaderMap, clock: &SharedClock) -> Option<Duration> {
    let raw = header_text(headers, "retry-after")?;
    let raw = raw.trim();
    if let Ok(seconds) = raw.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::from_secs_f64(seconds.min(86_400.0)));
    }
    let when = jiff::fmt::rfc2822::parse(raw).ok()?.timestamp();
    let delta = when.duration_since(clock.now());
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

/// A transport error with its causes; reqwest names the URL, whose cursors are redacted.
fn describe(error: &reqwest::Error) -> String {
    deskbridge_core::transport_words(error)
}

#[cfg(test)]
mod tests {
    use deskbridge_core::ManualClock;
    use reqwest::header::HeaderValue;

    use super::*;

    /// Graph's errors redact URLs with the shared rules: a transport error (which quotes the URL)
    /// and a malformed page never show a cursor or a code.
    #[tokio::test]
    async fn graph_errors_redact_cursors_and_credentials() {
        let url = "http://127.0.0.1:1/v1.0/users/delta?$deltatoken=d3lta&code=c0de";
        let refused = reqwest::Client::new().get(url).send().await.unwrap_err();
        let reason = describe(&refused);
        // The reason names the cause; the URL is the error's own, said once.
        assert!(reason.contains("refused"), "{reason}");
        let malformed = crate::page::parse_page::<Value>(
            "https://graph.microsoft.com/v1.0/users?$skiptoken=sk1p&$top=999",
            b"{\"value\": [",
        )
        .unwrap_err()
        .to_string();
        for (text, secrets) in [(&reason, ["d3lta", "c0de"]), (&malformed, ["sk1p", "sk1p"])] {
            for secret in secrets {
                assert!(!text.contains(secret), "{text}");
            }
        }
        assert!(malformed.contains("$skiptoken=REDACTED&$top=999"), "{malformed}");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let clock: SharedClock = Arc::new(ManualClock::new("2026-11-23T12:00:00Z".parse().unwrap()));
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers, &clock), Some(Duration::from_secs(7)));
        headers.insert(
            "retry-after",
            HeaderValue::from_static("Mon, 23 Nov 2026 12:00:30 GMT"),
        );
        assert_eq!(retry_after(&headers, &clock), Some(Duration::from_secs(30)));
        headers.insert(
            "retry-after",
            HeaderValue::from_static("Mon, 23 Nov 2026 11:00:00 GMT"),
        );
        assert_eq!(retry_after(&headers, &clock), Some(Duration::ZERO));
        headers.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, &clock), None);
    }

    #[test]
    fn budget_share_scales_limits() {
        assert_eq!(scaled(3_500, 0.9), 3_150);
        assert_eq!(scaled(10, f64::NAN), 10);
        assert_eq!(scaled(1, 0.01), 1);
    }
}
