//! Where a connection's credential may go, over the API, on SQLite and PostgreSQL (issue 20): CSP
//! connections, which attach tenants to existing customers, are added by administrators only.
//! Nothing here reaches Microsoft: creating a connection sends no request.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use deskbridge_core::{ConnectionId, SharedClock};
use deskbridge_store::{NewAccount, Role, WriteContext};
use deskbridge_testkit::{TestDb, store_test};
use deskbridge_web::{AppState, auth, router};
use jiff::SignedDuration;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const NORTHWIND_TENANT: &str = "44444444-4444-4444-8444-444444444444";
const PARTNER_TENANT: &str = "55555555-5555-4555-8555-555555555555";
const APP: &str = "66666666-6666-4666-8666-666666666666";
const GDAP_APP: &str = "77777777-7777-4777-8777-777777777777";

/// An account with an API token: its id and the token.
async fn person(db: &TestDb, name: &str, role: Role, can_configure: bool) -> (i64, String) {
    let token = format!("{}{}", auth::API_TOKEN_PREFIX, auth::random_token(32));
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let account = tx
        .create_account(&NewAccount {
            username: name.into(),
            display_name: name.into(),
            password_hash: auth::hash_password("correct horse battery").unwrap(),
            role,
            can_configure_connections: can_configure,
            must_change_password: false,
        })
        .await
        .unwrap();
    let expires = db.store.now() + SignedDuration::from_hours(24 * 365);
    tx.create_api_token(account.id, "script", &auth::token_hash(&token), Some(expires))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (account.id, token)
}

/// The application with the default endpoint policy: Microsoft's hosts only.
fn app(db: &TestDb) -> Router {
    router(AppState::new(
        db.store.clone(),
        deskbridge_connectors::registry(),
        db.clock.clone() as SharedClock,
    ))
}

struct Reply {
    status: StatusCode,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The error's message, as a person reads it.
    fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

async fn api(app: &Router, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    };
    let res = app.clone().oneshot(req.unwrap()).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
    Reply {
        status,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn csp_body(name: &str) -> Value {
    json!({
        "kind": "csp", "name": name, "partner_tenant_id": PARTNER_TENANT, "partner_client_id": APP,
        "gdap_client_id": GDAP_APP, "gdap_client_secret": "the-gdap-secret",
    })
}

fn dynamics_body(name: &str, tenant: &str) -> Value {
    json!({
        "kind": "dynamics", "name": name, "customer": name, "url": "https://northwind.crm4.dynamics.com",
        "tenant_id": tenant, "client_id": APP, "client_secret": "the-dynamics-secret",
    })
}

async fn created(app: &Router, token: &str, body: Value) -> ConnectionId {
    let reply = api(app, Method::POST, "/api/v1/connections", token, Some(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    ConnectionId(reply.json()["id"].as_i64().unwrap())
}

store_test! {
    async fn only_an_administrator_adds_a_csp_connection(db: &TestDb) {
        let app = app(db);
        let (_, admin) = person(db, "admin", Role::Administrator, true).await;
        let (_, agent) = person(db, "agent", Role::Agent, true).await;
        // A CSP connection attaches every customer tenant of the partner to the existing desk
        // customer of the same tenant or name: an agent's connection must start a new customer.
        let refused = api(&app, Method::POST, "/api/v1/connections", &agent, Some(csp_body("Partner"))).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
        let message = refused.message();
        assert!(message.contains("an administrator must add"), "{message}");
        assert!(message.contains("import every customer of the partner into the existing desk customers"), "{message}");
        let list = api(&app, Method::GET, "/api/v1/connections", &admin, None).await.json();
        assert_eq!(list["connections"], json!([]), "nothing was created");
        // The agent may still add a connection of a kind that imports into a new customer of its own.
        created(&app, &agent, dynamics_body("Northwind", NORTHWIND_TENANT)).await;
        created(&app, &admin, csp_body("Partner")).await;
    }
}
