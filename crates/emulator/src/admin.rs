//! The admin API under `/_admin`: change the world while it runs and switch faults.
//! Loopback callers only; no authentication. Every change goes through [`World`]'s mutation
//! methods, so delta queries report it.
// Handlers return axum responses as errors; they are built once per failed request.
#![allow(clippy::result_large_err)]
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};

use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::EmulatorError;
use crate::limits::Faults;
use crate::server::{AppState, summary_of};
use crate::world::{AssignedLicense, Group, ManagedDevice, User, World, device_from_json};

type St = State<Arc<AppState>>;

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/world", get(world_summary))
        .route("/dataset", get(dataset))
        .route("/faults", get(get_faults).put(put_faults))
        .route("/requests", get(requests))
        .route("/auto-approve", axum::routing::put(auto_approve))
        .route("/tenants/{tid}/users", post(create_user))
        .route(
            "/tenants/{tid}/users/{id}",
            get(get_user).patch(update_user).delete(delete_user),
        )
        .route("/tenants/{tid}/users/{id}/restore", post(restore_user))
        .route("/tenants/{tid}/users/{id}/licenses", post(licenses))
        .route("/tenants/{tid}/groups", post(create_group))
        .route(
            "/tenants/{tid}/groups/{id}",
            get(get_group).patch(update_group).delete(delete_group),
        )
        .route("/tenants/{tid}/groups/{id}/restore", post(restore_group))
        .route("/tenants/{tid}/devices", post(create_device))
        .route(
            "/tenants/{tid}/devices/{id}",
            get(get_device).patch(update_device).delete(delete_device),
        )
        .route("/tenants/{tid}/groups/{id}/members", post(add_member))
        .route(
            "/tenants/{tid}/groups/{id}/members/{member}",
            delete(remove_member),
        )
        .route("/graph/subscriptions", get(graph_subscriptions))
        .route("/graph/subscriptions/{id}/lifecycle", post(lifecycle_event))
        .route("/graph/subscriptions/{id}/expire", post(expire_subscription))
        .route("/graph/notifications", get(graph_notifications))
        .nest("/partner", crate::partner::admin::router())
        .layer(axum::middleware::from_fn(loopback_only))
}

async fn loopback_only(req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    if peer.is_some_and(|p| !p.ip().is_loopback()) {
        return fail(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "the admin API answers loopback callers only",
        );
    }
    next.run(req).await
}

fn fail(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn from_error(e: EmulatorError) -> Response {
    let message = e.to_string();
    match e {
        EmulatorError::NotFound(_) => fail(StatusCode::NOT_FOUND, "NotFound", &message),
        EmulatorError::Conflict(_) => fail(StatusCode::CONFLICT, "Conflict", &message),
        _ => fail(StatusCode::BAD_REQUEST, "BadRequest", &message),
    }
}

fn parse_object(body: &Bytes) -> Result<Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(fail(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the body must be a JSON object",
        )),
        Err(e) => Err(fail(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("invalid JSON: {e}"),
        )),
    }
}

fn ok(value: impl serde::Serialize) -> Response {
    axum::Json(value).into_response()
}

fn with_world<R>(
    state: &AppState,
    f: impl FnOnce(&mut World) -> Result<R, EmulatorError>,
) -> Result<R, Response> {
    let mut world = state.world.write().unwrap_or_else(PoisonError::into_inner);
    f(&mut world).map_err(from_error)
}

async fn world_summary(State(state): St) -> Response {
    let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
    ok(summary_of(&world, &state.base_url))
}

async fn dataset(State(state): St) -> Response {
    let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
    ok(&*world)
}

async fn get_faults(State(state): St) -> Response {
    ok(state
        .faults
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone())
}

/// Merges the given keys into the current settings. `"expire_delta_tokens_now": true` declares
/// every delta token issued so far expired.
async fn put_faults(State(state): St, body: Bytes) -> Response {
    let mut patch = match parse_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let expire_now = patch
        .remove("expire_delta_tokens_now")
        .is_some_and(|v| v == Value::Bool(true));
    let mut faults = state.faults.lock().unwrap_or_else(PoisonError::into_inner);
    let mut current = match serde_json::to_value(&*faults) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    current.extend(patch);
    match serde_json::from_value::<Faults>(Value::Object(current)) {
        Ok(mut next) => {
            if expire_now {
                next.delta_tokens_expired_before = Some(state.clock.now());
            }
            *faults = next.clone();
            ok(next)
        }
        Err(e) => fail(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("invalid fault settings: {e}"),
        ),
    }
}

async fn requests(State(state): St) -> Response {
    let log: Vec<_> = state
        .log
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .cloned()
        .collect();
    ok(log)
}

#[derive(Deserialize)]
struct Enabled {
    enabled: bool,
}

async fn auto_approve(State(state): St, axum::Json(body): axum::Json<Enabled>) -> Response {
    state
        .auto_approve
        .store(body.enabled, std::sync::atomic::Ordering::Relaxed);
    ok(json!({"enabled": body.enabled}))
}

async fn create_user(State(state): St, Path(tid): Path<String>, body: Bytes) -> Response {
    let patch = match parse_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    if !patch.get("userPrincipalName").is_some_and(Value::is_string) {
        return fail(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "userPrincipalName is required",
        );
    }
    let mut base = json!({"id": "", "accountEnabled": true, "userType": "Member",
                          "createdDateTime": state.clock.now().to_string()});
    if let Value::Object(m) = &mut base {
        for (k, v) in patch {
            if k == "manager@odata.bind" {
                let id = v.as_str().map(|s| s.rsplit('/').next().unwrap_or(s).to_owned());
                m.insert("managerId".into(), id.map_or(Value::Null, Value::String));
            } else {
                m.insert(k, v);
            }
        }
    }
    let user: User = match serde_json::from_value(base) {
        Ok(u) => u,
        Err(e) => {
            return fail(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("invalid user: {e}"),
            );
        }
    };
    match with_world(&state, |w| w.create_user(&tid, user)) {
        Ok(u) => (StatusCode::CREATED, axum::Json(u)).into_response(),
        Err(r) => r,
    }
}

async fn get_user(State(state): St, Path((tid, id)): Path<(String, String)>) -> Response {
    let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
    let user = world
        .tenant(&tid)
        .and_then(|t| t.user_index(&id).map(|i| t.users[i].clone()));
    match user {
        Some(u) => ok(u),
        None => fail(StatusCode::NOT_FOUND, "NotFound", &format!("user {id}")),
    }
}

async fn update_user(State(state): St, Path((tid, id)): Path<(String, String)>, body: Bytes) -> Response {
    let patch = match parse_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    match with_world(&state, |w| w.update_user(&tid, &id, &patch)) {
        Ok(u) => ok(u),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct DeleteQuery {
    #[serde(default)]
    hard: bool,
}

async fn delete_user(
    State(state): St,
    Path((tid, id)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> Response {
    let now = state.clock.now();
    let result = with_world(&state, |w| {
        if q.hard {
            w.hard_delete_user(&tid, &id)
        } else {
            w.soft_delete_user(&tid, &id, now)
        }
    });
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => r,
    }
}

async fn restore_user(State(state): St, Path((tid, id)): Path<(String, String)>) -> Response {
    match with_world(&state, |w| w.restore_user(&tid, &id)) {
        Ok(u) => ok(u),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LicenseChange {
    #[serde(default)]
    add_licenses: Vec<AssignedLicense>,
    #[serde(default)]
    remove_licenses: Vec<String>,
}

async fn licenses(State(state): St, Path((tid, id)): Path<(String, String)>, body: Bytes) -> Response {
    let change: LicenseChange = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return fail(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("invalid licence change: {e}"),
            );
        }
    };
    match with_world(&state, |w| {
        w.set_user_licenses(&tid, &id, &change.add_licenses, &change.remove_licenses)
    }) {
        Ok(u) => ok(u),
        Err(r) => r,
    }
}

async fn create_group(State(state): St, Path(tid): Path<String>, body: Bytes) -> Response {
    let patch = match parse_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Some(name) = patch
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return fail(StatusCode::BAD_REQUEST, "BadRequest", "displayName is required");
    };
    let nickname: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
    let mut base = json!({"id": "", "displayName": name, "mailEnabled": false, "mailNickname": nickname,
                          "securityEnabled": true, "createdDateTime": state.clock.now().to_string()});
    if let Value::Object(m) = &mut base {
        for (k, v) in patch {
            if k != "members@odata.bind" {
                m.insert(k, v);
            }
        }
    }
    let group: Group = match serde_json::from_value(base) {
        Ok(g) => g,
        Err(e) => {
            return fail(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("invalid group: {e}"),
            );
        }
    };
    match with_world(&state, |w| w.create_group(&tid, group)) {
        Ok(g) => (StatusCode::CREATED, axum::Json(g)).into_response(),
        Err(r) => r,
    }
}

async fn get_group(State(state): St, Path((tid, id)): Path<(String, String)>) -> Response {
    let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
    let group = world
        .tenant(&tid)
        .and_then(|t| t.group_index(&id).map(|i| t.groups[i].clone()));
    match group {
        Some(g) => ok(g),
        None => fail(StatusCode::NOT_FOUND, "NotFound", &format!("group {id}")),
    }
}

async fn update_group(State(state): St, Path((tid, id)): Path<(String, String)>, body: Bytes) -> Response {
    let patch = match parse_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    match with_world(&state, |w| w.update_group(&tid, &id, &patch)) {
        Ok(g) => ok(g),
        Err(r) => r,
    }
}

async fn delete_group(
    State(state): St,
    Path((tid, id)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> Response {
    let now = state.clock.now();
    let result = with_world(&state, |w| {
        if q.hard {
            w.hard_delete_group(&tid, &id)
        } else {
            w.soft_delete_group(&tid, &id, now)
        }
    });
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => r,
    }
}

async fn restore_group(State(state): St, Path((tid, id)): Path<(String, String)>) -> Response {
    match with_world(&state, |w| w.restore_group(&tid, &id)) {
        Ok(g) => ok(g),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct MemberBody {
    id: String,
}

async fn add_member(State(state): St, Path((tid, id)): Path<(String, String)>, body: Bytes) -> Response {
    let member: MemberBody = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return fail(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("expected {{\"id\": …}}: {e}"),
            );
        }
    };
    match with_world(&state, |w| w.add_member(&tid, &id, &member.id)) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => r,
    }
}

async fn remove_member(
    State(state): St,
    Path((tid, id, member)): Path<(String, String, String)>,
) -> Response {
    match with_world(&state, |w| w.remove_member(&tid, &id, &member)) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => r,
    }
}

/// Creates a managed device from Graph's JSON: what is missing is filled in as Intune sends it
/// (`""`, `0001-01-01T00:00:00Z`, `unknown`), and an absent or empty `id` is generated.
async fn create_device(State(state): St, Path(tid): Path<String>, body: Bytes) -> Response {
    let given = match parse_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let mut base = match serde_json::to_value(ManagedDevice::default()) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    base.extend(given);
    let device = match device_from_json(Value::Object(base)) {
        Ok(d) => d,
        Err(e) => return from_error(e),
    };
    match with_world(&state, |w| w.create_device(&tid, device)) {
        Ok(d) => (StatusCode::CREATED, axum::Json(d)).into_response(),
        Err(r) => r,
    }
}

async fn get_device(State(state): St, Path((tid, id)): Path<(String, String)>) -> Response {
    let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
    match world.tenant(&tid).and_then(|t| t.device(&id)) {
        Some(d) => ok(d),
        None => fail(StatusCode::NOT_FOUND, "NotFound", &format!("device {id}")),
    }
}

async fn update_device(State(state): St, Path((tid, id)): Path<(String, String)>, body: Bytes) -> Response {
    let patch = match parse_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    match with_world(&state, |w| w.update_device(&tid, &id, &patch)) {
        Ok(d) => ok(d),
        Err(r) => r,
    }
}

async fn delete_device(State(state): St, Path((tid, id)): Path<(String, String)>) -> Response {
    match with_world(&state, |w| w.delete_device(&tid, &id)) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => r,
    }
}

async fn graph_subscriptions(State(state): St) -> Response {
    ok(state.notifications.list())
}

async fn graph_notifications(State(state): St) -> Response {
    ok(state.notifications.deliveries())
}

/// `{"event": "reauthorizationRequired" | "missed" | "subscriptionRemoved"}`: sent to the
/// subscription's lifecycle URL.
async fn lifecycle_event(State(state): St, Path(id): Path<String>, body: Bytes) -> Response {
    let body = match parse_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Some(event) = body.get("event").and_then(Value::as_str) else {
        return fail(StatusCode::BAD_REQUEST, "BadRequest", "event is required");
    };
    match crate::graph::deliveries::lifecycle(&state, &id, event) {
        Ok(()) => (StatusCode::ACCEPTED, axum::Json(json!({"sent": event}))).into_response(),
        Err(e) => from_error(e),
    }
}

async fn expire_subscription(State(state): St, Path(id): Path<String>) -> Response {
    match state.notifications.expire(&id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => from_error(e),
    }
}
