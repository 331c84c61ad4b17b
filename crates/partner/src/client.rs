use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deskbridge_core::SharedClock;
use deskbridge_msauth::TokenProvider;
use rand::Rng as _;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::time::Instant;
use url::Url;

use crate::error::{PartnerApiError, PartnerError};
use crate::log::{NoRequestLog, RequestLog, RequestLogEntry};
use crate::models::*;
use crate::page::{NextPage, Page, Pager, malformed, parse_page, strip_bom};
use crate::pricing::{PriceSheetRow, parse_price_sheet};

/// The public cloud's Partner Center root.
pub const DEFAULT_PARTNER_CENTER_URL: &str = "https://api.partnercenter.microsoft.com";
/// The partner API's root (price sheets).
pub const DEFAULT_PARTNER_API_URL: &str = "https://api.partner.microsoft.com";
/// Token scope for Partner Center.
pub const PARTNER_CENTER_SCOPE: &str = "https://api.partnercenter.microsoft.com/.default";
/// Token scope for the partner API.
pub const PARTNER_API_SCOPE: &str = "https://api.partner.microsoft.com/.default";

/// How the client talks to Partner Center. Only the endpoints differ between clouds and the emulator.
#[derive(Debug, Clone)]
pub struct PartnerConfig {
    /// Partner Center root, e.g. `https://api.partnercenter.microsoft.com` (no `/v1`).
    pub base_url: String,
    /// The partner API root (price sheets).
    pub partner_api_url: String,
    pub scope: String,
    pub partner_api_scope: String,
    /// `size` of customer pages (1–500).
    pub page_size: u32,
    /// Tries per request, the first included, for 429, 5xx and dropped connections.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A Retry-After longer than this fails the request instead of waiting.
    pub max_retry_after: Duration,
    pub request_timeout: Option<Duration>,
    /// Sent as `MS-PartnerCenter-Application`.
    pub application_name: Option<String>,
    /// Requests this client sends per rolling minute (Partner Center allows 500 per minute per
    /// partner tenant on subscriptions; leave room for other tools). `None`: no client-side limit.
    pub requests_per_minute: Option<u32>,
    /// Requests in flight at once.
    pub max_concurrent_requests: usize,
}

impl Default for PartnerConfig {
    fn default() -> Self {
        PartnerConfig {
            base_url: DEFAULT_PARTNER_CENTER_URL.into(),
            partner_api_url: DEFAULT_PARTNER_API_URL.into(),
            scope: PARTNER_CENTER_SCOPE.into(),
            partner_api_scope: PARTNER_API_SCOPE.into(),
            page_size: 100,
            max_attempts: 6,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
            request_timeout: Some(Duration::from_secs(120)),
            application_name: Some("deskbridge".into()),
            requests_per_minute: Some(450),
            max_concurrent_requests: 8,
        }
    }
}

impl PartnerConfig {
    pub fn with_urls(mut self, base_url: impl Into<String>, partner_api_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self.partner_api_url = partner_api_url.into();
        self
    }
}

/// A customer-list filter (Partner Center supports `starts_with` on these two fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerFilter {
    CompanyNameStartsWith(String),
    DomainStartsWith(String),
}

/// The Partner Center client of one partner (tokens for the partner tenant). Cheap to clone.
#[derive(Clone)]
pub struct PartnerClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: PartnerConfig,
    base: Url,
    base_str: String,
    api_str: String,
    clock: SharedClock,
    tokens: Arc<dyn TokenProvider>,
    partner_tenant: String,
    /// No request before this instant (Retry-After).
    paused_until: Mutex<Option<Instant>>,
    /// When the requests of the last minute were sent (the client-side budget).
    sent: Mutex<VecDeque<Instant>>,
    permits: Arc<tokio::sync::Semaphore>,
    log: Arc<dyn RequestLog>,
}

impl std::fmt::Debug for PartnerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartnerClient")
            .field("base_url", &self.inner.base_str)
            .field("partner_tenant", &self.inner.partner_tenant)
            .finish_non_exhaustive()
    }
}

/// One request.
struct Call {
    method: Method,
    /// Absolute URL.
    url: String,
    partner_api: bool,
    body: Option<Value>,
    if_match: Option<String>,
    /// Kept across retries (idempotency); a fresh one per call otherwise.
    request_id: Option<String>,
    continuation: Option<String>,
    /// Safe to resend after a 5xx or a dropped connection.
    idempotent: bool,
}

struct Answer {
    url: String,
    body: Vec<u8>,
}

fn root(raw: &str, what: &str) -> Result<(Url, String), PartnerError> {
    let trimmed = raw.trim().trim_end_matches('/').to_owned();
    let url = Url::parse(&trimmed)
        .map_err(|e| PartnerError::InvalidRequest(format!("{what} {trimmed:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
        return Err(PartnerError::InvalidRequest(format!(
            "{what} {trimmed:?} must be http(s) without a query"
        )));
    }
    Ok((url, trimmed))
}

fn path_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl PartnerClient {
    /// A client for the partner tenant `partner_tenant`, with tokens from `tokens` (app+user for
    /// most writes and the price sheet; app-only works for some reads).
    pub fn new(
        http: reqwest::Client,
        config: PartnerConfig,
        clock: SharedClock,
        tokens: Arc<dyn TokenProvider>,
        partner_tenant: impl Into<String>,
    ) -> Result<Self, PartnerError> {
        Self::with_log(
            http,
            config,
            clock,
            tokens,
            partner_tenant,
            Arc::new(NoRequestLog),
        )
    }

    /// As [`PartnerClient::new`], recording every attempt in `log`.
    pub fn with_log(
        http: reqwest::Client,
        config: PartnerConfig,
        clock: SharedClock,
        tokens: Arc<dyn TokenProvider>,
        partner_tenant: impl Into<String>,
        log: Arc<dyn RequestLog>,
    ) -> Result<Self, PartnerError> {
        let (base, base_str) = root(&config.base_url, "Partner Center URL")?;
        let (_, api_str) = root(&config.partner_api_url, "partner API URL")?;
        let config_permits = config.max_concurrent_requests.max(1);
        if !(1..=500).contains(&config.page_size) {
            return Err(PartnerError::InvalidRequest(
                "page_size must be between 1 and 500".into(),
            ));
        }
        Ok(PartnerClient {
            inner: Arc::new(Inner {
                http,
                config,
                base,
                base_str,
                api_str,
                clock,
                tokens,
                partner_tenant: partner_tenant.into(),
                paused_until: Mutex::new(None),
                sent: Mutex::new(VecDeque::new()),
                permits: Arc::new(tokio::sync::Semaphore::new(config_permits)),
                log,
            }),
        })
    }

    pub fn config(&self) -> &PartnerConfig {
        &self.inner.config
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.inner.base_str)
    }

    /// Resolves a `links.next` URI: absolute on Partner Center's origin, or relative to the root
    /// (with or without the `/v1` prefix, which Partner Center omits in some links).
    fn resolve_link(&self, uri: &str) -> Result<String, PartnerError> {
        let uri = uri.trim();
        if uri.starts_with("http://") || uri.starts_with("https://") {
            let link =
                Url::parse(uri).map_err(|e| PartnerError::InvalidRequest(format!("link {uri:?}: {e}")))?;
            if link.origin() != self.inner.base.origin() {
                return Err(PartnerError::InvalidRequest(format!(
                    "refusing to follow a link to {} (Partner Center is {})",
                    link.origin().ascii_serialization(),
                    self.inner.base.origin().ascii_serialization()
                )));
            }
            return Ok(uri.to_owned());
        }
        let rest = uri.trim_start_matches('/');
        if rest.is_empty() {
            return Err(PartnerError::InvalidRequest("empty link".into()));
        }
        if rest.starts_with("v1/") || rest.starts_with("webhooks/") {
            Ok(format!("{}/{rest}", self.inner.base_str))
        } else {
            Ok(format!("{}/v1/{rest}", self.inner.base_str))
        }
    }

    fn call(method: Method, url: String) -> Call {
        let idempotent = method == Method::GET;
        Call {
            method,
            url,
            partner_api: false,
            body: None,
            if_match: None,
            request_id: None,
            continuation: None,
            idempotent,
        }
    }

    async fn send(&self, call: Call) -> Result<Answer, PartnerError> {
        let inner = &self.inner;
        let scope = if call.partner_api {
            &inner.config.partner_api_scope
        } else {
            &inner.config.scope
        };
        let parsed = Url::parse(&call.url).ok();
        let path = parsed
            .as_ref()
            .map_or_else(|| call.url.clone(), |u| u.path().to_owned());
        let logged_path = parsed.as_ref().map_or_else(
            || deskbridge_core::redact::url(&path),
            |u| match u.query() {
                Some(q) => deskbridge_core::redact::url(&format!("{}?{q}", u.path())),
                None => u.path().to_owned(),
            },
        );
        let description = format!("{} {path}", call.method);
        let correlation_id = uuid::Uuid::new_v4().to_string();
        let mut retried_token = false;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            self.wait_for_pause(&description).await?;
            self.wait_for_budget().await;
            let permit = inner
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| PartnerError::InvalidRequest("the client is shutting down".into()))?;
            let token = match inner.tokens.access_token(&inner.partner_tenant, scope).await {
                Ok(t) => t,
                Err(source) if source.is_transient() && attempt < inner.config.max_attempts => {
                    drop(permit);
                    tokio::time::sleep(self.backoff(attempt)).await;
                    continue;
                }
                Err(source) => {
                    return Err(PartnerError::Auth {
                        tenant: inner.partner_tenant.clone(),
                        source,
                    });
                }
            };
            let request_id = call
                .request_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let mut builder = inner
                .http
                .request(call.method.clone(), &call.url)
                .bearer_auth(token.bearer())
                .header("Accept", "application/json")
                .header("MS-RequestId", &request_id)
                .header("MS-CorrelationId", &correlation_id)
                .header("MS-Contract-Version", "v1")
                .header("X-Locale", "en-US");
            if let Some(name) = &inner.config.application_name {
                builder = builder.header("MS-PartnerCenter-Application", name);
            }
            if let Some(timeout) = inner.config.request_timeout {
                builder = builder.timeout(timeout);
            }
            if let Some(tag) = &call.if_match {
                builder = builder.header("If-Match", tag);
            }
            if let Some(token) = &call.continuation {
                builder = builder.header("MS-ContinuationToken", token);
            }
            if let Some(body) = &call.body {
                builder = builder.json(body);
            }
            let started = Instant::now();
            let received = match builder.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    response.bytes().await.map(|b| (status, headers, b.to_vec()))
                }
                Err(e) => Err(e),
            };
            drop(permit);
            let mut entry = RequestLogEntry {
                method: call.method.to_string(),
                path: logged_path.clone(),
                status: None,
                duration: started.elapsed(),
                attempt,
                request_id: Some(request_id),
                correlation_id: Some(correlation_id.clone()),
                retry_after: None,
                error: None,
            };
            let (status, headers, body) = match received {
                Ok(answer) => answer,
                Err(e) => {
                    let reason = transport_reason(&e);
                    entry.error = Some(reason.clone());
                    inner.log.record(entry);
                    if attempt >= inner.config.max_attempts || !(call.idempotent || e.is_connect()) {
                        return Err(PartnerError::Transport {
                            url: description,
                            attempts: attempt,
                            reason,
                        });
                    }
                    tokio::time::sleep(self.backoff(attempt)).await;
                    continue;
                }
            };
            let retry_after = retry_after(&headers, &inner.clock);
            entry.status = Some(status);
            entry.retry_after = retry_after;
            inner.log.record(entry);
            if (200..300).contains(&status) {
                return Ok(Answer {
                    url: call.url.clone(),
                    body,
                });
            }
            let api_error = || {
                let mut e = PartnerApiError::from_response(status, &headers, &body, description.clone());
                e.retry_after = retry_after;
                PartnerError::Api(Box::new(e))
            };
            match status {
                401 if !retried_token => {
                    retried_token = true;
                    inner.tokens.invalidate(&inner.partner_tenant, scope).await;
                }
                429 | 503 => {
                    let wait = retry_after.unwrap_or_else(|| self.backoff(attempt));
                    self.pause(wait);
                    if wait > inner.config.max_retry_after || attempt >= inner.config.max_attempts {
                        return Err(api_error());
                    }
                }
                500..=599 => {
                    if attempt >= inner.config.max_attempts || !call.idempotent {
                        return Err(api_error());
                    }
                    tokio::time::sleep(retry_after.unwrap_or_else(|| self.backoff(attempt))).await;
                }
                _ => return Err(api_error()),
            }
        }
    }

    /// Waits until sending stays within `requests_per_minute`, then counts this request.
    async fn wait_for_budget(&self) {
        let Some(limit) = self.inner.config.requests_per_minute.filter(|l| *l > 0) else {
            return;
        };
        let window = Duration::from_secs(60);
        loop {
            let wait = {
                let mut sent = self.inner.sent.lock().unwrap_or_else(PoisonError::into_inner);
                let now = Instant::now();
                while sent.front().is_some_and(|t| now.duration_since(*t) >= window) {
                    sent.pop_front();
                }
                if sent.len() < usize::try_from(limit).unwrap_or(usize::MAX) {
                    sent.push_back(now);
                    return;
                }
                sent.front()
                    .map_or(Duration::ZERO, |t| window.saturating_sub(now.duration_since(*t)))
            };
            tokio::time::sleep(wait).await;
        }
    }

    fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self
            .inner
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
        }
    }

    async fn wait_for_pause(&self, description: &str) -> Result<(), PartnerError> {
        loop {
            let until = *self
                .inner
                .paused_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let Some(until) = until else { return Ok(()) };
            let now = Instant::now();
            if until <= now {
                return Ok(());
            }
            if until - now > self.inner.config.max_retry_after {
                return Err(PartnerError::InvalidRequest(format!(
                    "{description}: Partner Center asked not to call for another {}s",
                    (until - now).as_secs()
                )));
            }
            tokio::time::sleep_until(until).await;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let config = &self.inner.config;
        let ceiling = config
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(config.backoff_max);
        let half = ceiling / 2;
        let jitter = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rand::rng().random_range(0..=jitter))
    }

    async fn get_json<T: DeserializeOwned>(&self, url: String) -> Result<(T, Value), PartnerError> {
        let answer = self.send(Self::call(Method::GET, url)).await?;
        parse_object(&answer)
    }

    pub(crate) async fn get_page<T: DeserializeOwned>(
        &self,
        next: &NextPage,
        with_raw: fn(&mut T, Value),
    ) -> Result<Page<T>, PartnerError> {
        let mut call = Self::call(Method::GET, self.resolve_link(&next.uri)?);
        call.continuation = next.continuation_token.clone();
        let answer = self.send(call).await?;
        parse_page(&answer.url, &answer.body, with_raw)
    }

    fn pager<T>(&self, first: String, with_raw: fn(&mut T, Value)) -> Pager<T> {
        Pager {
            client: self.clone(),
            next: Some(NextPage {
                uri: first,
                continuation_token: None,
            }),
            with_raw,
            buffered: VecDeque::new(),
        }
    }

    // ---- customers ----

    /// The partner's customers, page by page (`/v1/customers?size=…`).
    pub fn customers(&self) -> Pager<Customer> {
        self.pager(
            format!("/v1/customers?size={}", self.inner.config.page_size),
            |_, _| {},
        )
    }

    /// Customers whose company name or domain starts with a prefix.
    pub fn customers_filtered(&self, filter: &CustomerFilter) -> Pager<Customer> {
        let (field, value) = match filter {
            CustomerFilter::CompanyNameStartsWith(v) => ("CompanyName", v),
            CustomerFilter::DomainStartsWith(v) => ("Domain", v),
        };
        let json = json!({"Field": field, "Value": value, "Operator": "starts_with"}).to_string();
        let encoded: String = url::form_urlencoded::byte_serialize(json.as_bytes()).collect();
        self.pager(
            format!(
                "/v1/customers?size={}&filter={encoded}",
                self.inner.config.page_size
            ),
            |_, _| {},
        )
    }

    pub async fn customer(&self, customer_id: &str) -> Result<Customer, PartnerError> {
        let url = self.url(&format!("/v1/customers/{}", path_segment(customer_id)));
        Ok(self.get_json(url).await?.0)
    }

    // ---- subscriptions ----

    /// All subscriptions of a customer (following `links.next` if Partner Center pages them).
    pub async fn subscriptions(&self, customer_id: &str) -> Result<Vec<Subscription>, PartnerError> {
        self.pager(
            format!("/v1/customers/{}/subscriptions", path_segment(customer_id)),
            |s: &mut Subscription, raw| s.raw = raw,
        )
        .collect_all()
        .await
    }

    pub async fn subscription(
        &self,
        customer_id: &str,
        subscription_id: &str,
    ) -> Result<Subscription, PartnerError> {
        let url = self.url(&format!(
            "/v1/customers/{}/subscriptions/{}",
            path_segment(customer_id),
            path_segment(subscription_id)
        ));
        let (mut s, raw): (Subscription, Value) = self.get_json(url).await?;
        s.raw = raw;
        Ok(s)
    }

    /// Changes the seats of a subscription: PATCHes the full subscription as read (so
    /// `subscription` must come from [`PartnerClient::subscription`] or
    /// [`PartnerClient::subscriptions`]) with `quantity` changed and `If-Match` on its etag.
    /// `request_id` is sent as `MS-RequestId` on every attempt: give the same id when retrying a
    /// change so Partner Center applies it once.
    pub async fn update_subscription_quantity(
        &self,
        customer_id: &str,
        subscription: &Subscription,
        quantity: i64,
        request_id: uuid::Uuid,
    ) -> Result<Subscription, PartnerError> {
        if quantity < 1 {
            return Err(PartnerError::InvalidRequest("quantity must be at least 1".into()));
        }
        let mut body = match &subscription.raw {
            Value::Object(map) => Value::Object(map.clone()),
            _ => serde_json::to_value(subscription).map_err(|e| {
                PartnerError::InvalidRequest(format!("cannot serialise the subscription: {e}"))
            })?,
        };
        body["quantity"] = json!(quantity);
        let url = self.url(&format!(
            "/v1/customers/{}/subscriptions/{}",
            path_segment(customer_id),
            path_segment(&subscription.id)
        ));
        let mut call = Self::call(Method::PATCH, url);
        call.body = Some(body);
        call.if_match = subscription.etag().map(str::to_owned);
        call.request_id = Some(request_id.to_string());
        // The same MS-RequestId makes a resend safe.
        call.idempotent = true;
        let answer = self.send(call).await?;
        let (mut s, raw): (Subscription, Value) = parse_object(&answer)?;
        s.raw = raw;
        Ok(s)
    }

    pub async fn subscribed_skus(&self, customer_id: &str) -> Result<Vec<SubscribedSku>, PartnerError> {
        self.pager(
            format!("/v1/customers/{}/subscribedskus", path_segment(customer_id)),
            |_, _| {},
        )
        .collect_all()
        .await
    }

    /// Azure utilisation (consumption) records of a usage-based subscription, reported in
    /// `[start, end)`, daily, with instance details.
    pub fn azure_utilization(
        &self,
        customer_id: &str,
        subscription_id: &str,
        start: jiff::Timestamp,
        end: jiff::Timestamp,
    ) -> Pager<UtilizationRecord> {
        let fmt = |t: jiff::Timestamp| path_segment(&t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
        self.pager(
            format!(
                "/v1/customers/{}/subscriptions/{}/utilizations/azure?start_time={}&end_time={}&granularity=daily&show_details=true&size=1000",
                path_segment(customer_id),
                path_segment(subscription_id),
                fmt(start),
                fmt(end)
            ),
            |_, _| {},
        )
    }

    // ---- prices ----

    /// The licence-based (new commerce) price sheet of a market (`GB`, `US`…), current month.
    /// Needs an app+user token for the partner API.
    pub async fn price_sheet(&self, market: &str) -> Result<Vec<PriceSheetRow>, PartnerError> {
        if market.len() != 2 || !market.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(PartnerError::InvalidRequest(format!(
                "market {market:?} is not a two-letter code"
            )));
        }
        let url = format!(
            "{}/v1.0/sales/pricesheets(Market='{}',PricesheetView='updatedlicensebased')/$value?timeline=current",
            self.inner.api_str,
            market.to_ascii_uppercase()
        );
        let mut call = Self::call(Method::GET, url);
        call.partner_api = true;
        let answer = self.send(call).await?;
        let text = std::str::from_utf8(strip_bom(&answer.body))
            .map_err(|e| malformed(&answer.url, format!("the price sheet is not UTF-8: {e}")))?;
        parse_price_sheet(text).map_err(|e| malformed(&answer.url, e))
    }

    // ---- application consent ----

    /// Grants the multi-tenant app application permissions in a customer tenant (it gains a
    /// service principal there). `scopes` are Graph application permissions.
    pub async fn grant_application_consent(
        &self,
        customer_id: &str,
        application_id: &str,
        display_name: &str,
        scopes: &[&str],
    ) -> Result<ApplicationConsent, PartnerError> {
        let url = self.url(&format!(
            "/v1/customers/{}/applicationconsents",
            path_segment(customer_id)
        ));
        let mut call = Self::call(Method::POST, url);
        call.body = Some(json!({
            "applicationId": application_id,
            "displayName": display_name,
            "applicationGrants": [{"enterpriseApplicationId": "00000003-0000-0000-c000-000000000000",
                                   "scope": scopes.join(",")}],
        }));
        let answer = self.send(call).await?;
        Ok(parse_object(&answer)?.0)
    }

    // ---- webhooks ----

    /// The registration, or `None` if the partner has none.
    pub async fn webhook_registration(&self) -> Result<Option<WebhookRegistration>, PartnerError> {
        match self.get_json(self.url("/webhooks/v1/registration")).await {
            Ok((r, _)) => Ok(Some(r)),
            Err(PartnerError::Api(e)) if e.status == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Registers (or, if one exists, updates) the webhook URL and the events it receives.
    pub async fn register_webhook(
        &self,
        url: &str,
        events: &[&str],
    ) -> Result<WebhookRegistration, PartnerError> {
        let method = if self.webhook_registration().await?.is_some() {
            Method::PUT
        } else {
            Method::POST
        };
        let mut call = Self::call(method, self.url("/webhooks/v1/registration"));
        call.body = Some(json!({"WebhookUrl": url, "WebhookEvents": events}));
        let answer = self.send(call).await?;
        Ok(parse_object(&answer)?.0)
    }

    pub async fn delete_webhook(&self) -> Result<(), PartnerError> {
        self.send(Self::call(Method::DELETE, self.url("/webhooks/v1/registration")))
            .await
            .map(|_| ())
    }

    /// The event names Partner Center can deliver.
    pub async fn webhook_events(&self) -> Result<Vec<String>, PartnerError> {
        Ok(self
            .get_json(self.url("/webhooks/v1/registration/events"))
            .await?
            .0)
    }

    /// Asks for a `test-created` delivery; returns its correlation id.
    pub async fn send_validation_event(&self) -> Result<String, PartnerError> {
        let answer = self
            .send(Self::call(
                Method::POST,
                self.url("/webhooks/v1/registration/validationEvents"),
            ))
            .await?;
        let (v, _): (Value, Value) = parse_object(&answer)?;
        v.get("correlationId")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| malformed(&answer.url, "no correlationId"))
    }

    /// The delivery status of a validation event (`completed`, `failed`, `inProgress`).
    pub async fn validation_event_status(&self, correlation_id: &str) -> Result<String, PartnerError> {
        let url = self.url(&format!(
            "/webhooks/v1/registration/validationEvents/{}",
            path_segment(correlation_id)
        ));
        let (v, _): (Value, Value) = self.get_json(url.clone()).await?;
        v.get("status")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| malformed(&url, "no status"))
    }
}

fn parse_object<T: DeserializeOwned>(answer: &Answer) -> Result<(T, Value), PartnerError> {
    let raw: Value = serde_json::from_slice(strip_bom(&answer.body))
        .map_err(|e| malformed(&answer.url, format!("not JSON: {e}")))?;
    let typed = serde_json::from_value(raw.clone()).map_err(|e| malformed(&answer.url, e.to_string()))?;
    Ok((typed, raw))
}

/// `Retry-After` as seconds or an HTTP date (compared with the injected clock).
fn retry_after(headers: &HeaderMap, clock: &SharedClock) -> Option<Duration> {
    let raw = headers.get("retry-after")?.to_str().ok()?.trim().to_owned();
    if let Ok(seconds) = raw.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::from_secs_f64(seconds.min(86_400.0)));
    }
    let when = jiff::fmt::rfc2822::parse(&raw).ok()?.timestamp();
    Some(Duration::try_from(when.duration_since(clock.now())).unwrap_or(Duration::ZERO))
}

/// A transport error's text; reqwest quotes the URL, redacted with the shared rules.
fn transport_reason(error: &reqwest::Error) -> String {
    deskbridge_core::transport_words(error)
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    /// Partner Center's errors redact URLs with the shared rules (deskbridge_core::redact).
    #[tokio::test]
    async fn partner_errors_redact_cursors_and_credentials() {
        let url = "http://127.0.0.1:1/v1/customers?seekOperation=next&$skiptoken=sk1p&code=c0de";
        let refused = reqwest::Client::new().get(url).send().await.unwrap_err();
        let transport = PartnerError::Transport {
            url: "GET /v1/customers".into(),
            attempts: 1,
            reason: transport_reason(&refused),
        }
        .to_string();
        let malformed = crate::page::malformed(url, "not JSON").to_string();
        for text in [&transport, &malformed] {
            for secret in ["sk1p", "c0de"] {
                assert!(!text.contains(secret), "{text}");
            }
        }
        assert!(malformed.contains("seekOperation=next"), "{malformed}");
    }
}
