//! Change notifications for users and groups (`/v1.0/subscriptions`), as Graph keeps them:
//! create (after the validation handshake with the notification URL and the lifecycle URL), list,
//! get, renew (PATCH), delete and reauthorize. `deliveries.rs` posts the `{"value":[…]}` batches
//! with each subscription's `clientState`, and lifecycle notifications on demand (admin API).
//!
//! Graph's basic notifications are not signed (only rich notifications with encrypted resource
//! data carry validation tokens): what a receiver checks is `clientState`.
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::{Method, StatusCode};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};

use super::{Body, Caller, READ_GROUPS, READ_USERS, Req, Resp};
use crate::EmulatorError;
use crate::server::AppState;

/// Graph's longest lifetime of a users or groups subscription: 41,760 minutes (29 days).
const MAX_LIFETIME_MINUTES: i64 = 41_760;
const MAX_CLIENT_STATE: usize = 128;
pub(crate) const LIFECYCLE_EVENTS: &[&str] = &["reauthorizationRequired", "missed", "subscriptionRemoved"];

/// What a subscription listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscribedResource {
    Users,
    Groups,
}

/// A subscription as the emulator keeps it (returned to tests and the admin API).
#[derive(Debug, Clone, Serialize)]
pub struct GraphSubscription {
    pub id: String,
    pub tenant_id: String,
    pub application_id: String,
    pub resource: SubscribedResource,
    pub change_types: Vec<String>,
    pub notification_url: String,
    pub lifecycle_notification_url: Option<String>,
    pub client_state: Option<String>,
    pub expiration: Timestamp,
    /// A `reauthorizationRequired` was sent and not yet answered: deliveries are paused and the
    /// changes meanwhile are lost, as Graph's eventually are.
    pub paused: bool,
    /// Position in the tenant's change log up to which changes were notified.
    #[serde(skip)]
    pub(super) seen: u64,
}

/// One delivery attempt (a change batch, a lifecycle notification, or a validation request).
#[derive(Debug, Clone, Serialize)]
pub struct NotificationDelivery {
    pub url: String,
    pub subscription_ids: Vec<String>,
    /// `None` for change notifications.
    pub lifecycle_event: Option<String>,
    /// Resource ids the batch names.
    pub resources: Vec<String>,
    pub attempt: u32,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub time: Timestamp,
}

/// The subscriptions and the delivery log, beside the world.
pub(crate) struct Notifications {
    pub(super) subs: Mutex<Vec<GraphSubscription>>,
    pub(super) log: Mutex<Vec<NotificationDelivery>>,
    pub(super) http: reqwest::Client,
    /// Pause between two attempts of a failed delivery.
    pub retry_pause: Mutex<Duration>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Notifications {
    pub(crate) fn new() -> Result<Self, EmulatorError> {
        Ok(Self {
            subs: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            // Graph answers the handshake within 10 s and a delivery within 3 s.
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(3))
                .build()
                .map_err(|e| EmulatorError::Crypto(format!("notification HTTP client: {e}")))?,
            retry_pause: Mutex::new(Duration::from_millis(200)),
        })
    }

    pub(crate) fn list(&self) -> Vec<GraphSubscription> {
        lock(&self.subs).clone()
    }

    pub(crate) fn deliveries(&self) -> Vec<NotificationDelivery> {
        lock(&self.log).clone()
    }

    /// Makes a subscription expire now: it is deleted, and nothing more is delivered for it.
    pub(crate) fn expire(&self, id: &str) -> Result<(), EmulatorError> {
        let mut subs = lock(&self.subs);
        let before = subs.len();
        subs.retain(|s| !s.id.eq_ignore_ascii_case(id));
        if subs.len() == before {
            return Err(EmulatorError::NotFound(format!("subscription {id}")));
        }
        Ok(())
    }
}

/// Graph's timestamps: seven fractional digits and `Z`.
pub(super) fn iso(t: Timestamp) -> String {
    format!(
        "{}.{:07}Z",
        t.strftime("%Y-%m-%dT%H:%M:%S"),
        t.subsec_nanosecond() / 100
    )
}

fn fail(status: StatusCode, code: &str, message: impl Into<String>, now: Timestamp) -> Resp {
    let request_id = uuid::Uuid::new_v4().to_string();
    Resp::json(
        status,
        json!({"error": {"code": code, "message": message.into(), "innerError": {
            "date": now.strftime("%Y-%m-%dT%H:%M:%S").to_string(),
            "request-id": request_id, "client-request-id": request_id}}}),
    )
}

fn render(s: &GraphSubscription) -> Value {
    let resource = match s.resource {
        SubscribedResource::Users => "users",
        SubscribedResource::Groups => "groups",
    };
    json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
        "id": s.id,
        "resource": resource,
        "applicationId": s.application_id,
        "changeType": s.change_types.join(","),
        "clientState": s.client_state,
        "notificationUrl": s.notification_url,
        "lifecycleNotificationUrl": s.lifecycle_notification_url,
        "expirationDateTime": iso(s.expiration),
        "creatorId": s.application_id,
        "includeResourceData": false,
        "latestSupportedTlsVersion": "v1_2",
        "encryptionCertificate": null,
        "encryptionCertificateId": null,
        "notificationQueryOptions": null,
        "notificationUrlAppId": null,
    })
}

/// `/subscriptions[/{id}[/reauthorize]]`, for an authenticated caller.
pub(crate) async fn handle(state: &Arc<AppState>, req: &Req<'_>, caller: &Caller) -> Resp {
    let now = state.clock.now();
    let segments: Vec<String> = req
        .path
        .trim_matches('/')
        .split('/')
        .map(super::decode_segment)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.method.clone();
    let mut resp = match (segments.as_slice(), method) {
        (["subscriptions"], Method::POST) => create(state, req, caller, now).await,
        (["subscriptions"], Method::GET) => {
            let subs = lock(&state.notifications.subs);
            let mine: Vec<Value> = subs
                .iter()
                .filter(|s| s.tenant_id == caller.tenant_id && s.application_id == caller.app_id)
                .map(render)
                .map(|mut v| {
                    if let Some(m) = v.as_object_mut() {
                        m.remove("@odata.context");
                    }
                    v
                })
                .collect();
            Resp::json(
                StatusCode::OK,
                json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions", "value": mine}),
            )
        }
        (["subscriptions", id], m) => one(state, req, caller, id, m, now),
        (["subscriptions", id, action], Method::POST) if super::strip_namespace(action) == "reauthorize" => {
            let mut subs = lock(&state.notifications.subs);
            match find(&mut subs, caller, id) {
                Some(s) => {
                    s.paused = false;
                    Resp {
                        body: Body::Text(String::new()),
                        ..Resp::json(StatusCode::NO_CONTENT, Value::Null)
                    }
                }
                None => missing(id, now),
            }
        }
        _ => fail(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            format!("{} is not supported on {}.", req.method, req.path),
            now,
        ),
    };
    resp.tenant = Some(caller.tenant_id.clone());
    resp.app = Some(caller.app_id.clone());
    resp
}

fn find<'a>(
    subs: &'a mut [GraphSubscription],
    caller: &Caller,
    id: &str,
) -> Option<&'a mut GraphSubscription> {
    subs.iter_mut().find(|s| {
        s.id.eq_ignore_ascii_case(id) && s.tenant_id == caller.tenant_id && s.application_id == caller.app_id
    })
}

fn missing(id: &str, now: Timestamp) -> Resp {
    fail(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!("The object was not found. Subscription '{id}'."),
        now,
    )
}

/// A requested expiry: after now and at most 41,760 minutes ahead.
fn expiry(value: Option<&Value>, now: Timestamp) -> Result<Timestamp, String> {
    let text = value
        .and_then(Value::as_str)
        .ok_or("expirationDateTime is required.")?;
    let at: Timestamp = text
        .parse()
        .map_err(|_| format!("expirationDateTime '{text}' is not a valid date and time."))?;
    if at <= now {
        return Err("Subscription expiration must be in the future.".into());
    }
    if at.duration_since(now) > SignedDuration::from_mins(MAX_LIFETIME_MINUTES) {
        return Err(format!(
            "Subscription expiration can only be {MAX_LIFETIME_MINUTES} minutes in the future."
        ));
    }
    Ok(at)
}

fn one(state: &AppState, req: &Req<'_>, caller: &Caller, id: &str, method: Method, now: Timestamp) -> Resp {
    let mut subs = lock(&state.notifications.subs);
    match method {
        Method::GET => find(&mut subs, caller, id)
            .map_or_else(|| missing(id, now), |s| Resp::json(StatusCode::OK, render(s))),
        Method::PATCH => {
            let body: Value = match serde_json::from_slice(req.body) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    return fail(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "The request body must be a JSON object.",
                        now,
                    );
                }
            };
            let at = match expiry(body.get("expirationDateTime"), now) {
                Ok(at) => at,
                Err(message) => return fail(StatusCode::BAD_REQUEST, "InvalidRequest", message, now),
            };
            match find(&mut subs, caller, id) {
                Some(s) => {
                    // Renewing also reauthorizes.
                    s.expiration = at;
                    s.paused = false;
                    Resp::json(StatusCode::OK, render(s))
                }
                None => missing(id, now),
            }
        }
        Method::DELETE => {
            if find(&mut subs, caller, id).is_none() {
                return missing(id, now);
            }
            subs.retain(|s| !s.id.eq_ignore_ascii_case(id));
            Resp {
                body: Body::Text(String::new()),
                ..Resp::json(StatusCode::NO_CONTENT, Value::Null)
            }
        }
        other => fail(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            format!("{other} is not supported on /subscriptions/{id}."),
            now,
        ),
    }
}

/// An https URL, or http on a loopback host (the emulator's tests; Graph accepts https only).
fn webhook_url(value: Option<&Value>, name: &str) -> Result<Option<String>, String> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let text = value.as_str().ok_or(format!("{name} must be a string."))?;
    let url = url::Url::parse(text).map_err(|_| format!("{name} '{text}' is not a valid URL."))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if url.scheme() == "https" || (url.scheme() == "http" && loopback) {
        Ok(Some(text.to_owned()))
    } else {
        Err(format!("{name} must be an https URL: '{text}'."))
    }
}

async fn create(state: &Arc<AppState>, req: &Req<'_>, caller: &Caller, now: Timestamp) -> Resp {
    let bad = |message: String| fail(StatusCode::BAD_REQUEST, "InvalidRequest", message, now);
    let body: Value = match serde_json::from_slice(req.body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return fail(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "The request body must be a JSON object.",
                now,
            );
        }
    };
    let resource = match body
        .get("resource")
        .and_then(Value::as_str)
        .map(|r| r.trim_matches('/').to_ascii_lowercase())
    {
        Some(r) if r == "users" => SubscribedResource::Users,
        Some(r) if r == "groups" => SubscribedResource::Groups,
        Some(r) => return bad(format!("Resource '{r}' is not supported.")),
        None => return bad("resource is required.".into()),
    };
    let needed = match resource {
        SubscribedResource::Users => READ_USERS,
        SubscribedResource::Groups => READ_GROUPS,
    };
    if caller.require(needed).is_err() {
        return fail(
            StatusCode::FORBIDDEN,
            "ExtensionError",
            "Operation: Create; Exception: [Status Code: Forbidden; Reason: Insufficient privileges to complete the operation.]",
            now,
        );
    }
    let Some(change_type) = body.get("changeType").and_then(Value::as_str) else {
        return bad("changeType is required.".into());
    };
    let change_types: Vec<String> = change_type.split(',').map(|c| c.trim().to_owned()).collect();
    if let Some(wrong) = change_types
        .iter()
        .find(|c| !matches!(c.as_str(), "created" | "updated" | "deleted"))
    {
        return bad(format!(
            "'{wrong}' is not a valid changeType: use created, updated or deleted, comma separated."
        ));
    }
    let notification_url = match webhook_url(body.get("notificationUrl"), "notificationUrl") {
        Ok(Some(url)) => url,
        Ok(None) => return bad("notificationUrl is required.".into()),
        Err(message) => return bad(message),
    };
    let lifecycle_url = match webhook_url(body.get("lifecycleNotificationUrl"), "lifecycleNotificationUrl") {
        Ok(url) => url,
        Err(message) => return bad(message),
    };
    let client_state = match body.get("clientState") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= MAX_CLIENT_STATE => Some(s.clone()),
        Some(Value::String(_)) => {
            return bad(format!(
                "clientState exceeds the maximum length of {MAX_CLIENT_STATE} characters."
            ));
        }
        Some(_) => return bad("clientState must be a string.".into()),
    };
    let expiration = match expiry(body.get("expirationDateTime"), now) {
        Ok(at) => at,
        Err(message) => return bad(message),
    };
    // The handshake, before anything is kept: both URLs must echo their token.
    for url in std::iter::once(&notification_url).chain(lifecycle_url.as_ref()) {
        if let Err(reason) = handshake(state, url).await {
            return fail(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                format!(
                    "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request. ({reason})"
                ),
                now,
            );
        }
    }
    let seen = {
        let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
        world.tenant(&caller.tenant_id).map_or(0, |t| t.changes.head())
    };
    let sub = GraphSubscription {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: caller.tenant_id.clone(),
        application_id: caller.app_id.clone(),
        resource,
        change_types,
        notification_url,
        lifecycle_notification_url: lifecycle_url,
        client_state,
        expiration,
        paused: false,
        seen,
    };
    let rendered = render(&sub);
    lock(&state.notifications.subs).push(sub);
    let mut resp = Resp::json(StatusCode::CREATED, rendered);
    resp.headers.push((
        "Location".into(),
        format!("{}/v1.0/subscriptions", state.base_url),
    ));
    resp
}

/// POSTs `url?validationToken=…` and checks the answer: 200, `text/plain`, the token.
async fn handshake(state: &AppState, url: &str) -> Result<(), String> {
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        uuid::Uuid::new_v4()
    );
    let mut target = url::Url::parse(url).map_err(|e| e.to_string())?;
    target.query_pairs_mut().append_pair("validationToken", &token);
    let sent = state
        .notifications
        .http
        .post(target)
        .header("Content-Type", "text/plain; charset=utf-8")
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    let outcome = match sent {
        Err(e) => Err(format!("the endpoint did not answer: {e}")),
        Ok(r) => {
            let status = r.status();
            let plain = r
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/plain"));
            let echoed = r.text().await.unwrap_or_default();
            if status != StatusCode::OK {
                Err(format!("HTTP {}", status.as_u16()))
            } else if !plain {
                Err("the answer was not text/plain".into())
            } else if echoed != token {
                Err("the answer was not the validation token".into())
            } else {
                Ok(())
            }
        }
    };
    lock(&state.notifications.log).push(NotificationDelivery {
        url: url.to_owned(),
        subscription_ids: vec![],
        lifecycle_event: Some("validation".into()),
        resources: vec![],
        attempt: 1,
        status: None,
        error: outcome.as_ref().err().cloned(),
        time: state.clock.now(),
    });
    outcome
}

/// Whether a request is for the subscriptions API (handled here, asynchronously).
pub(crate) fn is_subscriptions(path: &str) -> bool {
    let p = path.trim_start_matches('/');
    p.eq_ignore_ascii_case("subscriptions") || p.to_ascii_lowercase().starts_with("subscriptions/")
}
