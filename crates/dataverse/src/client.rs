//! The HTTP side: a [`DataverseClient`] per organisation (connection). Its Retry-After pause,
//! request budget and concurrency limit are the organisation's (`crate::protection`), shared
//! with every other client of the same organisation in the process.
use std::sync::Arc;
use std::time::Duration;

use deskbridge_msauth::TokenProvider;
use rand::Rng as _;
use reqwest::Method;
use serde_json::Value;
use url::Url;

use crate::error::{DataverseApiError, DataverseError};
use crate::metadata::{self, AttributeMetadata, EntityMetadata, OptionSetMetadata};
use crate::page::{ChangePage, Page, parse_changes, parse_object, parse_page};
use crate::protection::{MAX_CONCURRENT, OrgLimits};
use crate::query::{Annotations, Query, encode, prefer_header};
use crate::row::Row;

/// Dataverse's service protection limit: requests per user per window (the window is
/// [`crate::WINDOW`]).
pub const REQUESTS_PER_WINDOW: u32 = 6_000;

/// How to reach one organisation.
#[derive(Debug, Clone)]
pub struct DataverseConfig {
    /// The organisation URL, e.g. `https://contoso.crm.dynamics.com` (the emulator's
    /// `{base}/org/{name}`); the API root is `{org_url}/api/data/{api_version}`.
    pub org_url: String,
    /// The Entra tenant of the organisation (tokens are requested there).
    pub tenant_id: String,
    /// Token scope; default `{org_url}/.default`.
    pub scope: Option<String>,
    pub api_version: String,
    /// Tries per request, the first included, for 429, 5xx and dropped connections.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A Retry-After longer than this fails the request instead of waiting.
    pub max_retry_after: Duration,
    /// Requests in flight (at most Dataverse's 52), for every client of the organisation in the
    /// process together (the strictest client's setting holds); lowered while Dataverse answers
    /// "too many concurrent requests".
    pub max_concurrent_requests: usize,
    /// Share of the 6,000 requests / 300 s the process allows itself for the organisation (other
    /// integrations share the user; the strictest client's share holds).
    pub budget_share: f64,
    pub request_timeout: Option<Duration>,
}

impl DataverseConfig {
    pub fn new(org_url: impl Into<String>, tenant_id: impl Into<String>) -> Self {
        DataverseConfig {
            org_url: org_url.into(),
            tenant_id: tenant_id.into(),
            scope: None,
            api_version: "v9.2".into(),
            max_attempts: 8,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
            max_concurrent_requests: 16,
            budget_share: 0.9,
            request_timeout: Some(Duration::from_secs(120)),
        }
    }
}

/// Who the connection is, as `WhoAmI` says: proof that the connection works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoAmI {
    pub user_id: String,
    pub business_unit_id: String,
    pub organization_id: String,
}

/// The client of one organisation. Cheap to clone.
#[derive(Clone)]
pub struct DataverseClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: DataverseConfig,
    org: Url,
    org_str: String,
    api: String,
    scope: String,
    tokens: Arc<dyn TokenProvider>,
    /// The organisation's pause, budget and concurrency gate, shared in the process.
    limits: Arc<OrgLimits>,
}

impl std::fmt::Debug for DataverseClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataverseClient")
            .field("org_url", &self.inner.org_str)
            .finish_non_exhaustive()
    }
}

struct Response {
    url: String,
    body: Vec<u8>,
}

impl DataverseClient {
    pub fn new(
        http: reqwest::Client,
        config: DataverseConfig,
        tokens: Arc<dyn TokenProvider>,
    ) -> Result<Self, DataverseError> {
        let org_str = config.org_url.trim().trim_end_matches('/').to_owned();
        let org = Url::parse(&org_str).map_err(|e| {
            DataverseError::InvalidRequest(format!("organisation URL {org_str:?} is not a URL: {e}"))
        })?;
        if !matches!(org.scheme(), "http" | "https") || org.query().is_some() || org.host_str().is_none() {
            return Err(DataverseError::InvalidRequest(format!(
                "organisation URL {org_str:?} must be http(s) with a host and no query"
            )));
        }
        if config.tenant_id.trim().is_empty() {
            return Err(DataverseError::InvalidRequest("the tenant id is empty".into()));
        }
        let api = format!("{org_str}/api/data/{}", config.api_version.trim_matches('/'));
        let scope = config
            .scope
            .clone()
            .unwrap_or_else(|| format!("{org_str}/.default"));
        let share = if config.budget_share.is_finite() {
            config.budget_share.clamp(0.01, 1.0)
        } else {
            1.0
        };
        let budget = ((f64::from(REQUESTS_PER_WINDOW) * share).floor() as usize).max(1);
        let limits = OrgLimits::of(
            &org_str,
            budget,
            config.max_concurrent_requests.clamp(1, MAX_CONCURRENT),
        );
        Ok(DataverseClient {
            inner: Arc::new(Inner {
                http,
                config,
                org,
                org_str,
                api,
                scope,
                tokens,
                limits,
            }),
        })
    }

    pub fn org_url(&self) -> &str {
        &self.inner.org_str
    }

    /// `{org_url}/api/data/v9.2`.
    pub fn api_url(&self) -> &str {
        &self.inner.api
    }

    /// `WhoAmI`: the cheapest call that proves URL, token and application user are right.
    pub async fn who_am_i(&self) -> Result<WhoAmI, DataverseError> {
        let response = self.send(Method::GET, "WhoAmI", None).await?;
        let map = parse_object(&response.url, &response.body)?;
        let field = |k: &str| {
            map.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| DataverseError::Malformed {
                    url: response.url.clone(),
                    message: format!("WhoAmI without {k}"),
                })
        };
        Ok(WhoAmI {
            user_id: field("UserId")?,
            business_unit_id: field("BusinessUnitId")?,
            organization_id: field("OrganizationId")?,
        })
    }

    /// The first page of a query.
    pub async fn get_page(&self, query: &Query) -> Result<Page, DataverseError> {
        self.page_at(&query.path(), query.prefer().as_deref()).await
    }

    /// A page by link (`@odata.nextLink` / `@odata.deltaLink` verbatim) or path below the API root,
    /// with the query's `Prefer` header.
    pub async fn page_at(&self, link: &str, prefer: Option<&str>) -> Result<Page, DataverseError> {
        let response = self.send(Method::GET, link, prefer).await?;
        parse_page(&response.url, &response.body)
    }

    /// Pages of a query, following `@odata.nextLink`.
    pub fn pager(&self, query: &Query) -> Pager {
        Pager {
            client: self.clone(),
            next: Some(query.path()),
            prefer: query.prefer(),
        }
    }

    /// Every row of a query (all pages).
    pub async fn get_all(&self, query: &Query) -> Result<Vec<Row>, DataverseError> {
        let mut pager = self.pager(query);
        let mut rows = Vec::new();
        while let Some(page) = pager.next_page().await? {
            rows.extend(page.rows);
        }
        Ok(rows)
    }

    /// A change-tracking round from the start: every row (as [`crate::Change::Upsert`]), then
    /// the `@odata.deltaLink` on the last page. The query may only carry `$select` (and page size
    /// and annotations); Dataverse refuses filters, orderings and expands with change tracking.
    pub fn changes(&self, query: &Query) -> ChangePager {
        let tracked = query.clone().track_changes();
        ChangePager {
            client: self.clone(),
            next: Some(tracked.path()),
            prefer: tracked.prefer(),
        }
    }

    /// The changes since a previous round's `@odata.deltaLink`. An expired token fails with
    /// [`DataverseError::is_change_token_expired`]: read the table in full again.
    pub fn changes_since(
        &self,
        delta_link: &str,
        page_size: Option<u32>,
        annotations: Annotations,
    ) -> ChangePager {
        ChangePager {
            client: self.clone(),
            next: Some(delta_link.to_owned()),
            prefer: prefer_header(true, page_size, annotations),
        }
    }

    /// One row by primary key.
    pub async fn retrieve(
        &self,
        entity_set: &str,
        id: &str,
        select: &[&str],
        annotations: Annotations,
    ) -> Result<Row, DataverseError> {
        let id = uuid::Uuid::parse_str(id)
            .map_err(|_| DataverseError::InvalidRequest(format!("{id:?} is not a GUID")))?;
        let mut path = format!("{entity_set}({id})");
        if !select.is_empty() {
            path.push_str(&format!("?$select={}", encode(&select.join(","))));
        }
        let prefer = prefer_header(false, None, annotations);
        let response = self.send(Method::GET, &path, prefer.as_deref()).await?;
        Ok(Row::new(parse_object(&response.url, &response.body)?))
    }

    const ENTITY_SELECT: &'static str = "LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute,ChangeTrackingEnabled,IsCustomEntity,DisplayName";

    /// Every table's metadata (no attributes).
    pub async fn entity_definitions(&self) -> Result<Vec<EntityMetadata>, DataverseError> {
        let path = format!("EntityDefinitions?$select={}", Self::ENTITY_SELECT);
        let response = self.send(Method::GET, &path, None).await?;
        let page = parse_page(&response.url, &response.body)?;
        page.rows
            .iter()
            .map(|r| metadata::entity(&response.url, &r.0))
            .collect()
    }

    /// One table's metadata by logical name (`account`, `cr7a1_contract`).
    pub async fn entity_definition(&self, logical_name: &str) -> Result<EntityMetadata, DataverseError> {
        let path = format!(
            "EntityDefinitions(LogicalName='{}')?$select={}",
            encode(logical_name),
            Self::ENTITY_SELECT
        );
        let response = self.send(Method::GET, &path, None).await?;
        metadata::entity(&response.url, &parse_object(&response.url, &response.body)?)
    }

    /// A table's columns.
    pub async fn attributes(&self, logical_name: &str) -> Result<Vec<AttributeMetadata>, DataverseError> {
        let path = format!(
            "EntityDefinitions(LogicalName='{}')/Attributes?$select=LogicalName,AttributeType,AttributeTypeName,DisplayName",
            encode(logical_name)
        );
        let response = self.send(Method::GET, &path, None).await?;
        let page = parse_page(&response.url, &response.body)?;
        page.rows
            .iter()
            .map(|r| metadata::attribute(&response.url, &r.0))
            .collect()
    }

    /// A table's lookup columns (lookup, customer and owner) with the tables each may point to:
    /// `Targets` is a property of `LookupAttributeMetadata` only, so it is read through that cast.
    pub async fn lookup_targets(&self, logical_name: &str) -> Result<Vec<AttributeMetadata>, DataverseError> {
        let path = format!(
            "EntityDefinitions(LogicalName='{}')/Attributes/Microsoft.Dynamics.CRM.LookupAttributeMetadata\
             ?$select=LogicalName,AttributeType,Targets",
            encode(logical_name)
        );
        let response = self.send(Method::GET, &path, None).await?;
        let page = parse_page(&response.url, &response.body)?;
        page.rows
            .iter()
            .map(|r| metadata::attribute(&response.url, &r.0))
            .collect()
    }

    /// A table's choice columns (single and multi-select) with their options and labels.
    pub async fn option_sets(&self, logical_name: &str) -> Result<Vec<OptionSetMetadata>, DataverseError> {
        let mut out = Vec::new();
        for (cast, multi) in [
            ("PicklistAttributeMetadata", false),
            ("MultiSelectPicklistAttributeMetadata", true),
        ] {
            let path = format!(
                "EntityDefinitions(LogicalName='{}')/Attributes/Microsoft.Dynamics.CRM.{cast}?$select=LogicalName\
                 &$expand=OptionSet($select=Name,Options),GlobalOptionSet($select=Name,Options)",
                encode(logical_name)
            );
            let response = self.send(Method::GET, &path, None).await?;
            let page = parse_page(&response.url, &response.body)?;
            for row in &page.rows {
                out.push(metadata::option_set(&response.url, &row.0, multi)?);
            }
        }
        Ok(out)
    }

    /// Absolute URL for a path below the API root, or a link checked to stay on the org's origin.
    fn resolve(&self, path_or_link: &str) -> Result<String, DataverseError> {
        let trimmed = path_or_link.trim();
        if trimmed.is_empty() {
            return Err(DataverseError::InvalidRequest("empty request path".into()));
        }
        if trimmed.starts_with("https://") || trimmed.starts_with("http://") {
            let link = Url::parse(trimmed).map_err(|e| {
                DataverseError::InvalidRequest(format!(
                    "link {:?} is not a URL: {e}",
                    deskbridge_core::redact::url(trimmed)
                ))
            })?;
            if link.origin() != self.inner.org.origin() {
                return Err(DataverseError::InvalidRequest(format!(
                    "refusing to follow a link to {} (the organisation is {})",
                    link.origin().ascii_serialization(),
                    self.inner.org.origin().ascii_serialization()
                )));
            }
            return Ok(trimmed.to_owned());
        }
        Ok(format!("{}/{}", self.inner.api, trimmed.trim_start_matches('/')))
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let c = &self.inner.config;
        let exp = c
            .backoff_base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)));
        let capped = exp.min(c.backoff_max);
        let jitter = rand::rng().random_range(0.5..=1.0);
        capped.mul_f64(jitter)
    }

    /// Waits for a Retry-After pause and the request budget, both the organisation's.
    async fn admit(&self, request: &str) -> Result<(), DataverseError> {
        let limits = &self.inner.limits;
        loop {
            if let Some(remaining) = limits.paused_for() {
                if remaining > self.inner.config.max_retry_after {
                    return Err(DataverseError::Api(Box::new(DataverseApiError {
                        status: 429,
                        code: crate::codes::TOO_MANY_REQUESTS.into(),
                        message: format!("Dataverse asked not to call for another {}s", remaining.as_secs()),
                        class: crate::DataverseErrorClass::Throttled,
                        retry_after: Some(remaining),
                        request: request.to_owned(),
                    })));
                }
                tokio::time::sleep(remaining).await;
                continue;
            }
            match limits.take_budget() {
                None => return Ok(()),
                Some(w) => tokio::time::sleep(w.max(Duration::from_millis(10))).await,
            }
        }
    }

    async fn send(
        &self,
        method: Method,
        path_or_link: &str,
        prefer: Option<&str>,
    ) -> Result<Response, DataverseError> {
        let inner = &self.inner;
        let url = self.resolve(path_or_link)?;
        let parsed = Url::parse(&url).map_err(|e| {
            DataverseError::InvalidRequest(format!("bad URL {:?}: {e}", deskbridge_core::redact::url(&url)))
        })?;
        let described = format!("{method} {}", parsed.path());
        let mut attempt: u32 = 0;
        let mut retried_token = false;
        loop {
            attempt += 1;
            let permit = loop {
                self.admit(&described).await?;
                let permit = inner.limits.acquire().await;
                // A 429 may have paused the organisation while this request waited for a slot:
                // wait the pause out again (its budget is counted twice: on the safe side).
                if inner.limits.paused_for().is_none() {
                    break permit;
                }
            };
            let generation = permit.generation();
            let token = match inner
                .tokens
                .access_token(&inner.config.tenant_id, &inner.scope)
                .await
            {
                Ok(t) => t,
                Err(source) if source.is_transient() && attempt < inner.config.max_attempts => {
                    tokio::time::sleep(self.backoff(attempt)).await;
                    continue;
                }
                Err(source) => {
                    return Err(DataverseError::Auth {
                        org: inner.org_str.clone(),
                        source,
                    });
                }
            };
            let mut builder = inner
                .http
                .request(method.clone(), parsed.clone())
                .bearer_auth(token.bearer())
                .header("OData-MaxVersion", "4.0")
                .header("OData-Version", "4.0")
                .header("Accept", "application/json")
                .header("If-None-Match", "null");
            if let Some(p) = prefer {
                builder = builder.header("Prefer", p);
            }
            if let Some(t) = inner.config.request_timeout {
                builder = builder.timeout(t);
            }
            let outcome = match builder.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let headers = r.headers().clone();
                    r.bytes().await.map(|b| (status, headers, b.to_vec()))
                }
                Err(e) => Err(e),
            };
            let (status, headers, body) = match outcome {
                Ok(o) => o,
                Err(e) => {
                    drop(permit);
                    let idempotent = method == Method::GET || e.is_connect();
                    if attempt >= inner.config.max_attempts || !idempotent {
                        return Err(DataverseError::Transport {
                            url: described,
                            attempts: attempt,
                            reason: transport_reason(&e),
                        });
                    }
                    tokio::time::sleep(self.backoff(attempt)).await;
                    continue;
                }
            };
            if (200..300).contains(&status) {
                return Ok(Response { url, body });
            }
            let retry_after = headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            if status == 429 {
                // Service protection (E7), while this request still holds its slot, so no request
                // waiting for one goes out before the pause and the lowered cap are in place:
                // nothing goes to the organisation before Retry-After has passed, and "too many
                // concurrent requests" lowers how many may be in flight.
                inner
                    .limits
                    .pause(retry_after.unwrap_or_else(|| self.backoff(attempt)));
                let error = DataverseApiError::from_body(status, &body, String::new(), None);
                if error.code.eq_ignore_ascii_case(crate::codes::CONCURRENT_REQUESTS) {
                    inner.limits.too_many_concurrent(generation, &error.message);
                }
            }
            drop(permit);
            let api_error = || {
                DataverseError::Api(Box::new(DataverseApiError::from_body(
                    status,
                    &body,
                    described.clone(),
                    retry_after,
                )))
            };
            match status {
                401 if !retried_token => {
                    retried_token = true;
                    inner
                        .tokens
                        .invalidate(&inner.config.tenant_id, &inner.scope)
                        .await;
                }
                429 => {
                    // The pause is set above; the retry waits for it in `admit`.
                    let too_long = retry_after.is_some_and(|w| w > inner.config.max_retry_after);
                    if too_long || attempt >= inner.config.max_attempts {
                        return Err(api_error());
                    }
                }
                500 | 502..=504 if method == Method::GET => {
                    if attempt >= inner.config.max_attempts {
                        return Err(api_error());
                    }
                    tokio::time::sleep(retry_after.unwrap_or_else(|| self.backoff(attempt))).await;
                }
                _ => return Err(api_error()),
            }
        }
    }
}

/// Pages of a query: `next_page` until `None`.
#[derive(Debug)]
pub struct Pager {
    client: DataverseClient,
    next: Option<String>,
    prefer: Option<String>,
}

impl Pager {
    pub async fn next_page(&mut self) -> Result<Option<Page>, DataverseError> {
        let Some(link) = self.next.take() else {
            return Ok(None);
        };
        let page = self.client.page_at(&link, self.prefer.as_deref()).await?;
        self.next = page.next_link.clone();
        Ok(Some(page))
    }
}

/// Pages of a change-tracking round; the last carries the `delta_link` to keep for next time.
#[derive(Debug)]
pub struct ChangePager {
    client: DataverseClient,
    next: Option<String>,
    prefer: Option<String>,
}

impl ChangePager {
    pub async fn next_page(&mut self) -> Result<Option<ChangePage>, DataverseError> {
        let Some(link) = self.next.take() else {
            return Ok(None);
        };
        let response = self
            .client
            .send(Method::GET, &link, self.prefer.as_deref())
            .await?;
        let page = parse_changes(&response.url, &response.body)?;
        self.next = page.next_link.clone();
        Ok(Some(page))
    }
}

/// A transport error's text; reqwest quotes the URL, redacted with the shared rules.
fn transport_reason(error: &reqwest::Error) -> String {
    deskbridge_core::transport_words(error)
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    /// Dataverse's errors redact URLs with the shared rules (deskbridge_core::redact): change
    /// tracking's `$deltatoken` and paging's `$skiptoken` never show.
    #[tokio::test]
    async fn dataverse_errors_redact_cursors() {
        let url =
            "http://127.0.0.1:1/api/data/v9.2/contacts?$select=fullname&$deltatoken=919042%2108%2f22%2f2017";
        let refused = reqwest::Client::new().get(url).send().await.unwrap_err();
        let transport = DataverseError::Transport {
            url: "GET /api/data/v9.2/contacts".into(),
            attempts: 1,
            reason: transport_reason(&refused),
        }
        .to_string();
        let malformed = crate::page::parse_page(
            "https://org.crm.dynamics.com/api/data/v9.2/contacts?$skiptoken=%3Ccookie%20pagenumber=2%3E",
            b"{",
        )
        .unwrap_err()
        .to_string();
        for text in [&transport, &malformed] {
            for secret in ["919042", "cookie"] {
                assert!(!text.contains(secret), "{text}");
            }
        }
        // The cause in words, not the client's layers with the URL again.
        assert!(transport.contains("the connection was refused"), "{transport}");
    }
}
