//! `/_admin/partner/…`: Partner Center hooks for tests and demos (loopback only, like the rest
//! of the admin API). Faults (forced 429s, limits, delivery pace), subscription edits (e.g. move
//! `cancellationAllowedUntilDate` to leave the new-commerce window), GDAP status and consent per
//! customer tenant, webhook events on demand, and the delivery log.
use std::sync::{Arc, PoisonError};

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::model::PcSubscription;
use super::webhooks::{self, Event};
use super::*;

type St = State<Arc<AppState>>;

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(show))
        .route("/faults", get(get_faults).put(put_faults))
        .route("/customers/{cid}/subscriptions/{sid}", patch(edit_subscription))
        .route("/gdap/{tenant}", put(set_gdap))
        .route("/dap/{tenant}", put(set_dap))
        .route("/consent", put(set_consent))
        .route("/events", post(emit))
        .route("/deliveries", get(deliveries))
}

fn fail(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": status.as_u16().to_string(), "message": message}})),
    )
        .into_response()
}

fn ok(v: impl serde::Serialize) -> Response {
    axum::Json(v).into_response()
}

async fn show(State(state): St) -> Response {
    let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
    ok(&world.partner_center)
}

async fn get_faults(State(state): St) -> Response {
    ok(lock(&state.partner.faults).clone())
}

async fn put_faults(State(state): St, body: Bytes) -> Response {
    let mut faults = lock(&state.partner.faults);
    let mut current = serde_json::to_value(&*faults).unwrap_or_default();
    let Ok(Value::Object(patch)) = serde_json::from_slice::<Value>(&body) else {
        return fail(StatusCode::BAD_REQUEST, "the body must be a JSON object");
    };
    if let Value::Object(m) = &mut current {
        m.extend(patch);
    }
    match serde_json::from_value::<PartnerFaults>(current) {
        Ok(f) => {
            *faults = f.clone();
            ok(f)
        }
        Err(e) => fail(StatusCode::BAD_REQUEST, &format!("invalid fault settings: {e}")),
    }
}

async fn edit_subscription(
    State(state): St,
    Path((cid, sid)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Ok(Value::Object(patch)) = serde_json::from_slice::<Value>(&body) else {
        return fail(StatusCode::BAD_REQUEST, "the body must be a JSON object");
    };
    let mut world = state.world.write().unwrap_or_else(PoisonError::into_inner);
    let Some(sub) = world
        .partner_center
        .subscriptions
        .iter_mut()
        .find(|s| s.customer_id.eq_ignore_ascii_case(&cid) && s.id.eq_ignore_ascii_case(&sid))
    else {
        return fail(
            StatusCode::NOT_FOUND,
            &format!("subscription {sid} of customer {cid}"),
        );
    };
    let mut current = serde_json::to_value(&*sub).unwrap_or_default();
    if let Value::Object(m) = &mut current {
        for (k, v) in patch {
            if k != "id" && k != "customerId" {
                m.insert(k, v);
            }
        }
    }
    match serde_json::from_value::<PcSubscription>(current) {
        Ok(updated) => {
            *sub = updated.clone();
            ok(updated)
        }
        Err(e) => fail(
            StatusCode::BAD_REQUEST,
            &format!("invalid subscription fields: {e}"),
        ),
    }
}

#[derive(Deserialize)]
struct GdapStatus {
    status: String,
}

async fn set_gdap(
    State(state): St,
    Path(tenant): Path<String>,
    axum::Json(body): axum::Json<GdapStatus>,
) -> Response {
    let now = state.clock.now();
    let mut world = state.world.write().unwrap_or_else(PoisonError::into_inner);
    let Some(pi) = world
        .partner_tenant_id
        .clone()
        .and_then(|p| world.tenant_index(&p))
    else {
        return fail(StatusCode::NOT_FOUND, "the world has no partner tenant");
    };
    let mut changed = 0;
    for r in &mut world.tenants[pi].gdap_relationships {
        if r.customer_tenant_id.eq_ignore_ascii_case(&tenant) {
            r.status = body.status.clone();
            r.last_modified_date_time = now;
            if body.status == "active" && r.activated_date_time.is_none() {
                r.activated_date_time = Some(now);
            }
            changed += 1;
        }
    }
    if changed == 0 {
        return fail(
            StatusCode::NOT_FOUND,
            &format!("no GDAP relationship with {tenant}"),
        );
    }
    ok(json!({"tenant": tenant, "status": body.status, "relationships": changed}))
}

#[derive(Deserialize)]
struct DapState {
    active: bool,
}

/// Gives or takes the partner's delegated admin privileges (DAP) with a customer tenant: a
/// contract in the partner tenant (Graph `/contracts`).
async fn set_dap(
    State(state): St,
    Path(tenant): Path<String>,
    axum::Json(body): axum::Json<DapState>,
) -> Response {
    let mut world = state.world.write().unwrap_or_else(PoisonError::into_inner);
    let Some(pi) = world
        .partner_tenant_id
        .clone()
        .and_then(|p| world.tenant_index(&p))
    else {
        return fail(StatusCode::NOT_FOUND, "the world has no partner tenant");
    };
    let Some((customer_id, domain, name)) = world
        .tenant(&tenant)
        .filter(|t| t.id != world.tenants[pi].id)
        .map(|t| (t.id.clone(), t.domain.clone(), t.display_name.clone()))
    else {
        return fail(StatusCode::NOT_FOUND, &format!("no customer tenant {tenant}"));
    };
    let contracts = &mut world.tenants[pi].contracts;
    contracts.retain(|c| !c.customer_id.eq_ignore_ascii_case(&customer_id));
    if body.active {
        contracts.push(crate::world::Contract {
            id: uuid::Uuid::new_v4().to_string(),
            contract_type: "ResellerPartner".into(),
            customer_id: customer_id.clone(),
            default_domain_name: domain,
            display_name: name,
        });
    }
    ok(json!({"tenant": customer_id, "dap": body.active}))
}

#[derive(Deserialize)]
struct Consent {
    client_id: String,
    tenant: String,
    consented: bool,
}

async fn set_consent(State(state): St, axum::Json(body): axum::Json<Consent>) -> Response {
    let mut world = state.world.write().unwrap_or_else(PoisonError::into_inner);
    let Some(tid) = world.tenant(&body.tenant).map(|t| t.id.clone()) else {
        return fail(StatusCode::NOT_FOUND, &format!("tenant {}", body.tenant));
    };
    let Some(app) = world
        .apps
        .iter_mut()
        .find(|a| a.client_id.eq_ignore_ascii_case(&body.client_id))
    else {
        return fail(StatusCode::NOT_FOUND, &format!("app {}", body.client_id));
    };
    app.consented_tenants.retain(|t| !t.eq_ignore_ascii_case(&tid));
    if body.consented {
        app.consented_tenants.push(tid.clone());
    }
    ok(json!({"client_id": app.client_id, "tenant": tid, "consented": body.consented}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EmitBody {
    event_name: String,
    #[serde(default)]
    resource_name: Option<String>,
    #[serde(default)]
    resource_uri: Option<String>,
}

async fn emit(State(state): St, axum::Json(body): axum::Json<EmitBody>) -> Response {
    let now = state.clock.now();
    let uri = body
        .resource_uri
        .unwrap_or_else(|| format!("{}/pc/webhooks/v1/registration", state.base_url));
    let event = Event::new(
        &body.event_name,
        body.resource_name.as_deref().unwrap_or("event"),
        uri,
        now,
    );
    webhooks::deliver(state.clone(), event);
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"queued": body.event_name})),
    )
        .into_response()
}

async fn deliveries(State(state): St) -> Response {
    ok(lock(&state.partner.webhooks.attempts).clone())
}
