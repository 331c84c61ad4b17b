//! Partner Center REST v1 (under `{base}/pc`) and the partner API's price sheets (under
//! `{base}/pc-api`): authentication of Partner Center tokens, Partner Center's error body, its
//! 429 with `Retry-After`, `MS-RequestId`/`MS-CorrelationId`, and dispatch to the resources.
//!
//! Files: `model` (the dataset part), `generate`, `customers` (customers, subscriptions,
//! subscribed SKUs, usage, application consents), `pricing`, `webhooks` (registration and signed
//! delivery), `admin` (the `/_admin/partner` hooks), `consent` (the interactive admin-consent
//! endpoint of the identity platform).
//!
//! Invariants: a customer id is its tenant id; GDAP and consent live in the directory side
//! (`Tenant::gdap_relationships`, `App::consented_tenants`) and are read, never copied; every
//! change of a subscription's quantity also changes the directory SKU's prepaid units.
pub(crate) mod admin;
pub(crate) mod consent;
mod customers;
pub(crate) mod generate;
pub mod model;
mod pricing;
pub mod webhooks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::EmulatorError;
use crate::server::{AppState, LogInfo};
use crate::world::{AppKind, World};

pub(crate) use webhooks::WebhookKeys;

/// The Partner Center resource (token audience).
pub(crate) const PC_RESOURCE: &str = "https://api.partnercenter.microsoft.com";
/// The partner API resource (price sheets).
pub(crate) const PARTNER_API_RESOURCE: &str = "https://api.partner.microsoft.com";
/// Requests per minute per partner tenant and API family (subscriptions: documented; others: chosen).
const PER_MINUTE: u32 = 500;

/// Partner Center fault switches (`PUT /_admin/partner/faults`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PartnerFaults {
    /// The next this-many Partner Center requests are answered 429.
    pub force_429: u32,
    /// Retry-After of forced 429s.
    pub retry_after_secs: u64,
    /// Enforce the per-minute request limits (also on when the global `throttling` fault is).
    pub throttling: bool,
    /// Pause between webhook delivery attempts.
    pub delivery_retry_ms: u64,
    /// Customers (ids) whose subscription list answers 403 (code 2003), as for a customer the
    /// signed-in partner user may not see.
    #[serde(default)]
    pub forbidden_subscriptions: Vec<String>,
    /// The next this-many writes are made but answered 503, as when the answer is lost on the
    /// way back: the client's retry with the same `MS-RequestId` gets the first answer.
    #[serde(default)]
    pub lose_write_answers: u32,
}

impl Default for PartnerFaults {
    fn default() -> Self {
        Self {
            force_429: 0,
            retry_after_secs: 57,
            throttling: false,
            delivery_retry_ms: 1_000,
            forbidden_subscriptions: Vec::new(),
            lose_write_answers: 0,
        }
    }
}

/// (partner tenant, API family): requests are counted per minute.
type WindowKey = (String, &'static str);

/// Partner Center's state beside the world: faults, limits, idempotency, webhook keys and logs.
pub(crate) struct PartnerState {
    pub faults: Mutex<PartnerFaults>,
    windows: Mutex<HashMap<WindowKey, (i64, u32)>>,
    replies: Mutex<HashMap<String, (StatusCode, Value)>>,
    pub keys: WebhookKeys,
    pub webhooks: webhooks::WebhookLog,
    pub http: reqwest::Client,
}

impl PartnerState {
    pub(crate) fn new() -> Result<Self, EmulatorError> {
        Ok(Self {
            faults: Mutex::new(PartnerFaults::default()),
            windows: Mutex::new(HashMap::new()),
            replies: Mutex::new(HashMap::new()),
            keys: WebhookKeys::generate()?,
            webhooks: webhooks::WebhookLog::default(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .map_err(|e| EmulatorError::Crypto(format!("webhook HTTP client: {e}")))?,
        })
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A Partner Center error: rendered as `{code, description, data, source}`.
#[derive(Debug)]
pub(crate) struct PcError {
    pub status: StatusCode,
    pub code: i64,
    pub description: String,
}

pub(crate) fn pc_err(status: StatusCode, code: i64, description: impl Into<String>) -> PcError {
    PcError {
        status,
        code,
        description: description.into(),
    }
}

pub(crate) fn not_found(what: &str) -> PcError {
    pc_err(StatusCode::NOT_FOUND, 3000, format!("{what} was not found."))
}

pub(crate) fn bad_request(description: impl Into<String>) -> PcError {
    pc_err(StatusCode::BAD_REQUEST, 2000, description)
}

pub(crate) type PcResult<T> = Result<T, PcError>;

pub(crate) enum Payload {
    Json(Value),
    Csv(String),
    Der(Vec<u8>),
    Empty,
}

pub(crate) struct Reply {
    pub status: StatusCode,
    pub payload: Payload,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn ok(v: Value) -> Self {
        Self::with(StatusCode::OK, v)
    }
    pub fn with(status: StatusCode, v: Value) -> Self {
        Self {
            status,
            payload: Payload::Json(v),
            headers: vec![],
        }
    }
}

/// The authenticated caller: the partner tenant, the app and (app+user) the signed-in user.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub tenant_id: String,
    pub app_id: String,
    pub user: Option<String>,
}

/// One request after authentication.
pub(crate) struct Ctx<'a> {
    pub state: &'a AppState,
    pub caller: Caller,
    pub method: Method,
    /// Path segments after the prefix, percent-decoded.
    pub segs: Vec<String>,
    pub query: Vec<(String, String)>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// Webhook events to deliver once the response is built.
    pub events: Vec<webhooks::Event>,
}

impl Ctx<'_> {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The Partner Center base URL (what `links` and webhook `ResourceUri`s point at).
    pub fn pc_url(&self) -> String {
        format!("{}/pc", self.state.base_url)
    }

    pub fn now(&self) -> jiff::Timestamp {
        self.state.clock.now()
    }

    pub fn require_user(&self) -> PcResult<()> {
        if self.caller.user.is_some() {
            Ok(())
        } else {
            Err(pc_err(
                StatusCode::FORBIDDEN,
                2003,
                "This operation requires app+user (delegated) authentication; an app-only token is not accepted.",
            ))
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Deserialize)]
struct TokenClaims {
    aud: Option<String>,
    tid: Option<String>,
    appid: Option<String>,
    exp: Option<i64>,
    idtyp: Option<String>,
    oid: Option<String>,
}

fn unauthorized(description: &str) -> PcError {
    pc_err(StatusCode::UNAUTHORIZED, 900401, description)
}

fn authenticate(state: &AppState, headers: &HeaderMap, audience: &str) -> PcResult<Caller> {
    let header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .unwrap_or("")
        .trim();
    if token.is_empty() {
        return Err(unauthorized("Unauthorized: the request has no bearer token."));
    }
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<TokenClaims>(token, &state.signing.decoding, &validation)
        .map_err(|_| unauthorized("Unauthorized: the token's signature is invalid."))?
        .claims;
    let aud = claims.aud.unwrap_or_default();
    if aud.trim_end_matches('/') != audience {
        return Err(unauthorized(&format!(
            "Unauthorized: the token's audience {aud} is not {audience}."
        )));
    }
    if claims.exp.is_none_or(|e| e <= state.clock.now().as_second()) {
        return Err(unauthorized("Unauthorized: the token has expired."));
    }
    let tid = claims.tid.unwrap_or_default();
    let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
    let partner = world.partner_tenant_id.clone().unwrap_or_default();
    if !tid.eq_ignore_ascii_case(&partner) {
        return Err(pc_err(
            StatusCode::FORBIDDEN,
            2003,
            "The tenant of the token is not a partner tenant: Partner Center is called with the partner's tokens.",
        ));
    }
    let app_id = claims.appid.unwrap_or_default();
    if world.app(&app_id).is_none() {
        return Err(unauthorized("Unauthorized: the token's application is unknown."));
    }
    Ok(Caller {
        tenant_id: partner,
        app_id,
        user: (claims.idtyp.as_deref() == Some("user"))
            .then_some(claims.oid)
            .flatten(),
    })
}

/// The API family of a path (limits are counted per partner tenant and family).
fn family(segs: &[String]) -> &'static str {
    match segs.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["v1", "customers", _, "subscriptions", ..] => "subscriptions",
        ["v1", "customers", ..] => "customers",
        ["webhooks", ..] => "webhooks",
        _ => "other",
    }
}

fn throttled(retry_after: u64) -> Response {
    let body = json!({"statusCode": 429, "message": format!("Rate limit is exceeded. Try again in {retry_after} seconds.")});
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, body.to_string()).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        resp.headers_mut().insert(http::header::RETRY_AFTER, v);
    }
    resp
}

/// Forced 429s and the per-minute limits.
fn limit(state: &AppState, caller: &Caller, family: &'static str) -> Option<Response> {
    let global = lock(&state.faults).throttling;
    let (forced, retry_after, on) = {
        let mut f = lock(&state.partner.faults);
        let forced = f.force_429 > 0;
        if forced {
            f.force_429 -= 1;
        }
        (forced, f.retry_after_secs, f.throttling || global)
    };
    if forced {
        return Some(throttled(retry_after));
    }
    if !on {
        return None;
    }
    let now = state.clock.now().as_second();
    let minute = now.div_euclid(60);
    let mut windows = lock(&state.partner.windows);
    let entry = windows
        .entry((caller.tenant_id.clone(), family))
        .or_insert((minute, 0));
    if entry.0 != minute {
        *entry = (minute, 0);
    }
    if entry.1 >= PER_MINUTE {
        let wait = u64::try_from(60 - now.rem_euclid(60)).unwrap_or(60).max(1);
        return Some(throttled(wait));
    }
    entry.1 += 1;
    None
}

fn render(reply: Result<Reply, PcError>) -> Response {
    match reply {
        Ok(reply) => {
            let (body, ct) = match reply.payload {
                Payload::Json(v) => (
                    Body::from(serde_json::to_vec(&v).unwrap_or_default()),
                    Some("application/json; charset=utf-8"),
                ),
                Payload::Csv(text) => (Body::from(text), Some("text/csv")),
                Payload::Der(bytes) => (Body::from(bytes), Some("application/pkix-cert")),
                Payload::Empty => (Body::empty(), None),
            };
            let mut resp = Response::new(body);
            *resp.status_mut() = reply.status;
            if let Some(ct) = ct {
                resp.headers_mut()
                    .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
            }
            for (k, v) in reply.headers {
                if let (Ok(k), Ok(v)) = (
                    http::HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(&v),
                ) {
                    resp.headers_mut().append(k, v);
                }
            }
            resp
        }
        Err(e) => {
            let body =
                json!({"code": e.code, "description": e.description, "data": [], "source": "PartnerFD"});
            let mut resp = (e.status, body.to_string()).into_response();
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            resp
        }
    }
}

fn with_ids(mut resp: Response, request_id: &str, correlation_id: &str, log: LogInfo) -> Response {
    let h = resp.headers_mut();
    for (k, v) in [
        ("MS-RequestId", request_id),
        ("MS-CorrelationId", correlation_id),
        ("MS-CV", "emulated.0"),
        ("MS-ServerId", "101112616"),
    ] {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    }
    resp.extensions_mut().insert(log);
    resp
}

/// `{base}/pc/…`: Partner Center REST.
pub(crate) async fn handle(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().strip_prefix("/pc").unwrap_or("/");
    serve(state, method, path, uri.query(), headers, body, PC_RESOURCE).await
}

/// `{base}/pc-api/…`: the partner API (price sheets).
pub(crate) async fn handle_partner_api(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().strip_prefix("/pc-api").unwrap_or("/");
    serve(
        state,
        method,
        path,
        uri.query(),
        headers,
        body,
        PARTNER_API_RESOURCE,
    )
    .await
}

async fn serve(
    state: Arc<AppState>,
    method: Method,
    path: &str,
    query: Option<&str>,
    headers: HeaderMap,
    body: Bytes,
    audience: &'static str,
) -> Response {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let request_id = header("MS-RequestId").unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let correlation_id = header("MS-CorrelationId").unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    if audience == PC_RESOURCE && method == Method::GET && segs == ["certificates", "webhook-signing.cer"] {
        return render(Ok(Reply {
            status: StatusCode::OK,
            payload: Payload::Der(state.partner.keys.cert_der.clone()),
            headers: vec![],
        }));
    }
    let mut log = LogInfo::default();
    let caller = match authenticate(&state, &headers, audience) {
        Ok(c) => c,
        Err(e) => return with_ids(render(Err(e)), &request_id, &correlation_id, log),
    };
    log.tenant = Some(caller.tenant_id.clone());
    log.app = Some(caller.app_id.clone());
    if let Some(resp) = limit(&state, &caller, family(&segs)) {
        return with_ids(resp, &request_id, &correlation_id, log);
    }
    // A write repeated with the same MS-RequestId gets the first answer again (idempotency).
    let replay_key = (method != Method::GET).then(|| format!("{request_id} {method} {path}"));
    if let Some(key) = &replay_key
        && let Some((status, value)) = lock(&state.partner.replies).get(key).cloned()
    {
        if let Some(lost) = answer_lost(&state) {
            return with_ids(render(Err(lost)), &request_id, &correlation_id, log);
        }
        return with_ids(
            render(Ok(Reply::with(status, value))),
            &request_id,
            &correlation_id,
            log,
        );
    }
    let query: Vec<(String, String)> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let mut ctx = Ctx {
        state: &state,
        caller,
        method: method.clone(),
        segs,
        query,
        headers: &headers,
        body: &body,
        events: vec![],
    };
    let reply = if audience == PC_RESOURCE {
        route(&mut ctx)
    } else {
        pricing::route(&ctx)
    };
    let events = std::mem::take(&mut ctx.events);
    drop(ctx);
    if let (
        Some(key),
        Ok(Reply {
            status,
            payload: Payload::Json(v),
            ..
        }),
    ) = (&replay_key, &reply)
    {
        let mut replies = lock(&state.partner.replies);
        if replies.len() > 10_000 {
            replies.clear();
        }
        replies.insert(key.clone(), (*status, v.clone()));
    }
    for event in events {
        webhooks::deliver(state.clone(), event);
    }
    if replay_key.is_some()
        && reply.is_ok()
        && let Some(lost) = answer_lost(&state)
    {
        return with_ids(render(Err(lost)), &request_id, &correlation_id, log);
    }
    with_ids(render(reply), &request_id, &correlation_id, log)
}

/// The `lose_write_answers` fault: a write's answer replaced by a 503 (the write stands).
fn answer_lost(state: &AppState) -> Option<PcError> {
    let mut faults = lock(&state.partner.faults);
    if faults.lose_write_answers == 0 {
        return None;
    }
    faults.lose_write_answers -= 1;
    Some(pc_err(
        StatusCode::SERVICE_UNAVAILABLE,
        5000,
        "The service is temporarily unavailable. Retry the request.",
    ))
}

fn route(ctx: &mut Ctx<'_>) -> PcResult<Reply> {
    let segs: Vec<String> = ctx.segs.clone();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match s.as_slice() {
        ["webhooks", "v1", "registration", rest @ ..] => webhooks::route(ctx, rest),
        ["v1", "customers", rest @ ..] => customers::route(ctx, rest),
        _ => Err(not_found(&format!("The resource /{}", s.join("/")))),
    }
}

/// Whether an app may read a customer tenant's directory through Graph. The CSP's multi-tenant
/// app needs a service principal there (consent) and an active GDAP relationship; other apps
/// are not gated. Returns Graph's (status, code, message) on refusal.
pub(crate) fn graph_gate(
    world: &World,
    app_id: &str,
    tenant_id: &str,
) -> Result<(), (StatusCode, &'static str, String)> {
    let Some(app) = world.app(app_id) else {
        return Ok(());
    };
    if app.kind != AppKind::Gdap
        || world
            .partner_tenant_id
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case(tenant_id))
    {
        return Ok(());
    }
    // DAP: an AdminAgents member administers the customer without consent or GDAP there.
    if dap_preconsented(world, app, tenant_id) {
        return Ok(());
    }
    if !app
        .consented_tenants
        .iter()
        .any(|t| t.eq_ignore_ascii_case(tenant_id))
    {
        return Err((
            StatusCode::UNAUTHORIZED,
            "Authorization_IdentityNotFound",
            "The identity of the calling application could not be established.".into(),
        ));
    }
    if !active_gdap(world, tenant_id) {
        return Err((
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.".into(),
        ));
    }
    Ok(())
}

/// Whether the partner has DAP with the customer tenant (a contract in the partner tenant).
pub(crate) fn has_dap(world: &World, tenant_id: &str) -> bool {
    world
        .partner_tenant_id
        .as_deref()
        .and_then(|p| world.tenant(p))
        .is_some_and(|p| {
            p.contracts
                .iter()
                .any(|c| c.customer_id.eq_ignore_ascii_case(tenant_id))
        })
}

/// Whether `app` is pre-consented in the customer tenant through DAP: the customer has DAP with
/// the partner, the app is the partner's own multi-tenant app and its service principal is a
/// member of the partner's AdminAgents group.
pub(crate) fn dap_preconsented(world: &World, app: &crate::world::App, tenant_id: &str) -> bool {
    let Some(partner) = world.partner_tenant_id.as_deref().and_then(|p| world.tenant(p)) else {
        return false;
    };
    app.multi_tenant
        && app.home_tenant_id.eq_ignore_ascii_case(&partner.id)
        && has_dap(world, tenant_id)
        && partner.groups.iter().any(|g| {
            g.display_name.eq_ignore_ascii_case("AdminAgents")
                && g.members.iter().any(|m| {
                    m.kind == crate::world::ObjectKind::ServicePrincipal
                        && m.id.eq_ignore_ascii_case(&app.client_id)
                })
        })
}

/// Whether the partner has an active GDAP relationship with the customer tenant.
pub(crate) fn active_gdap(world: &World, tenant_id: &str) -> bool {
    world
        .partner_tenant_id
        .as_deref()
        .and_then(|p| world.tenant(p))
        .is_some_and(|p| {
            p.gdap_relationships
                .iter()
                .any(|r| r.customer_tenant_id.eq_ignore_ascii_case(tenant_id) && r.status == "active")
        })
}
