//! Safer connection set-up and the readable preview through the API and the UI, on SQLite and
//! PostgreSQL, against the in-process emulator: `"check": true` saves nothing when the check
//! fails and answers the points; the new-connection form ticks the check by default and shows
//! the points of a failed one; DELETE takes the customer a connection created only when it holds
//! nothing else; the preview filters by `?action=` and its page has the filter.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use deskbridge_core::{SharedClock, SystemClock};
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use deskbridge_source::settings::EndpointPolicy;
use deskbridge_store::{Entity, NewAccount, Role, WriteContext};
use deskbridge_testkit::{TestDb, store_test};
use deskbridge_web::{AppState, auth, router};
use serde_json::{Value, json};
use tower::ServiceExt as _;

struct Admin {
    token: String,
    cookie: String,
    csrf: String,
}

async fn admin(db: &TestDb) -> Admin {
    let token = format!("{}{}", auth::API_TOKEN_PREFIX, auth::random_token(32));
    let session = auth::random_token(32);
    let csrf = auth::random_token(32);
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let account = tx
        .create_account(&NewAccount {
            username: "admin".into(),
            display_name: "Admin".into(),
            password_hash: auth::hash_password("correct horse battery").unwrap(),
            role: Role::Administrator,
            can_configure_connections: true,
            must_change_password: false,
        })
        .await
        .unwrap();
    tx.create_api_token(account.id, "test", &auth::token_hash(&token), None)
        .await
        .unwrap();
    let expires = db.store.now() + jiff::SignedDuration::from_hours(24);
    tx.create_session(account.id, &auth::token_hash(&session), &csrf, expires)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    Admin {
        token,
        cookie: format!("{}={session}", auth::SESSION_COOKIE),
        csrf,
    }
}

fn app(db: &TestDb) -> Router {
    let clock: SharedClock = Arc::new(SystemClock);
    router(AppState::new(
        db.store.clone(),
        deskbridge_connectors::registry().with_endpoint_policy(EndpointPolicy::allowing(["127.0.0.1"])),
        clock,
    ))
}

async fn emulator() -> Emulator {
    let world = World::generate(&GenerateOptions {
        seed: 28,
        tenants: 2,
        users_per_tenant: Some(10),
        ..GenerateOptions::default()
    })
    .unwrap();
    Emulator::start(EmulatorConfig::new(world)).await.unwrap()
}

/// The settings of an Entra connection to the emulator's tenant `tenant` with `secret`.
fn entra(emu: &Emulator, name: &str, tenant: usize, secret: Option<&str>) -> Value {
    let summary = emu.summary();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .unwrap();
    json!({
        "kind": "entra",
        "name": name,
        "tenant_id": summary.tenants[tenant].id,
        "client_id": app.client_id,
        "client_secret": secret.map_or_else(|| app.client_secret.clone().unwrap(), str::to_owned),
        "authority_host": summary.authority_host,
        "graph_url": summary.graph_url,
    })
}

struct Reply {
    status: StatusCode,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

async fn send(app: &Router, req: Request<Body>) -> Reply {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
    Reply {
        status,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn api(app: &Router, who: &Admin, method: Method, path: &str, body: Option<Value>) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {}", who.token));
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    };
    send(app, req.unwrap()).await
}

async fn page(app: &Router, who: &Admin, method: Method, path: &str, form: &[(&str, &str)]) -> Reply {
    let req = Request::builder()
        .method(method.clone())
        .uri(path)
        .header(header::COOKIE, &who.cookie);
    let req = if method == Method::POST {
        let mut pairs: Vec<(&str, &str)> = form.to_vec();
        pairs.push(("csrf", &who.csrf));
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
    } else {
        req.body(Body::empty())
    };
    send(app, req.unwrap()).await
}

async fn customer_names(db: &TestDb) -> Vec<String> {
    let mut tx = db.store.read().await.unwrap();
    let all = tx.list(Entity::Customer, None, 100).await.unwrap();
    tx.commit().await.unwrap();
    all.iter()
        .filter_map(|c| c.text("name").map(str::to_owned))
        .collect()
}

async fn connection_count(db: &TestDb) -> usize {
    let mut tx = db.store.read().await.unwrap();
    let n = tx.connections().await.unwrap().len();
    tx.commit().await.unwrap();
    n
}

store_test! {
    async fn the_api_checks_before_saving_and_removes_an_empty_created_customer(db: &TestDb) {
        let emu = emulator().await;
        let app = app(db);
        let who = admin(db).await;

        // A failed check: check_failed, the points beside the error, nothing saved.
        let mut body = entra(&emu, "alpha", 0, Some("not-the-secret"));
        body["check"] = json!(true);
        let failed = api(&app, &who, Method::POST, "/api/v1/connections", Some(body)).await;
        assert_eq!(failed.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", failed.text);
        let failed = failed.json();
        assert_eq!(failed["error"]["code"], "check_failed", "{failed:#}");
        assert!(failed["error"]["message"].as_str().unwrap().contains("nothing was saved"));
        let points = failed["check"]["points"].as_array().unwrap();
        assert!(points.iter().any(|p| p["ok"] == false && !p["remedy"].as_str().unwrap().is_empty()), "{points:#?}");
        assert_eq!(connection_count(db).await, 0);
        assert!(customer_names(db).await.is_empty(), "no customer");
        let bad = api(&app, &who, Method::POST, "/api/v1/connections", Some(json!({"name": "x", "check": "yes"}))).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);

        // A passing check saves, with the report.
        let mut body = entra(&emu, "alpha", 0, None);
        body["check"] = json!(true);
        let saved = api(&app, &who, Method::POST, "/api/v1/connections", Some(body)).await;
        assert_eq!(saved.status, StatusCode::CREATED, "{}", saved.text);
        let saved = saved.json();
        assert_eq!(saved["check"]["ok"], true, "{saved:#}");
        let id = saved["id"].as_i64().unwrap();

        // The preview: names, counts, the action filter.
        let preview = api(&app, &who, Method::POST, &format!("/api/v1/connections/{id}/preview?action=create"), None).await;
        assert_eq!(preview.status, StatusCode::OK, "{}", preview.text);
        let preview = preview.json();
        let changes = preview["changes"].as_array().unwrap();
        assert!(!changes.is_empty());
        assert!(changes.iter().all(|c| c["action"] == "create"), "{changes:#?}");
        assert!(changes.iter().all(|c| c["name"].is_string()), "every change is named: {changes:#?}");
        assert_eq!(preview["summary"]["actions"]["create"].as_u64(), Some(changes.len() as u64));
        let wrong = api(&app, &who, Method::POST, &format!("/api/v1/connections/{id}/preview?action=remove"), None).await;
        assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.text);
        assert!(wrong.json()["error"]["message"].as_str().unwrap().contains("\"remove\" is not an action"));
        assert!(customer_names(db).await == ["alpha"], "a preview writes nothing");

        // Removed while its customer holds nothing: the customer goes too.
        let removed = api(&app, &who, Method::DELETE, &format!("/api/v1/connections/{id}"), None).await;
        assert_eq!(removed.status, StatusCode::OK, "{}", removed.text);
        assert_eq!(removed.json()["removed_customers"], json!(["alpha"]));
        assert!(customer_names(db).await.is_empty());
        emu.shutdown().await;
    }
}

store_test! {
    async fn a_created_customer_holding_records_is_kept(db: &TestDb) {
        let emu = emulator().await;
        let app = app(db);
        let who = admin(db).await;
        let saved = api(&app, &who, Method::POST, "/api/v1/connections", Some(entra(&emu, "beta", 1, None))).await;
        assert_eq!(saved.status, StatusCode::CREATED, "{}", saved.text);
        let id = saved.json()["id"].as_i64().unwrap();
        let clock: SharedClock = Arc::new(SystemClock);
        let registry = deskbridge_connectors::registry().with_endpoint_policy(EndpointPolicy::allowing(["127.0.0.1"]));
        let outcome = deskbridge_sync::sync(&db.store, &registry, "beta", &deskbridge_sync::SyncOptions::default(), &clock).await.unwrap();
        assert!(outcome.counts.created > 0, "{outcome:?}");
        let removed = api(&app, &who, Method::DELETE, &format!("/api/v1/connections/{id}"), None).await;
        assert_eq!(removed.status, StatusCode::OK, "{}", removed.text);
        let removed = removed.json();
        assert_eq!(removed["removed_customers"], json!([]));
        assert_eq!(removed["kept_customers"][0]["name"], "beta", "{removed:#}");
        let holds = removed["kept_customers"][0]["holds"].as_array().unwrap();
        assert!(holds.iter().any(|h| h.as_str().unwrap().ends_with(" users")), "{holds:?}");
        assert!(removed["notes"][0].as_str().unwrap().contains("kept the desk customer \"beta\""));
        assert_eq!(customer_names(db).await, ["beta"]);
        assert_eq!(connection_count(db).await, 0);
        emu.shutdown().await;
    }
}

store_test! {
    async fn the_ui_checks_by_default_and_the_preview_has_a_filter(db: &TestDb) {
        let emu = emulator().await;
        let app = app(db);
        let who = admin(db).await;
        let form = page(&app, &who, Method::GET, "/connections/new?kind=entra", &[]).await;
        assert_eq!(form.status, StatusCode::OK);
        assert!(form.text.contains("Check the connection before saving"), "{}", form.text);
        assert!(form.text.contains(r#"name="check" value="on" checked"#), "ticked by default");

        // A failed check re-shows the form with the points; nothing is saved.
        let settings = entra(&emu, "gamma", 0, Some("not-the-secret"));
        let text = |key: &str| settings[key].as_str().unwrap().to_owned();
        let fields = [
            ("kind", "entra".to_owned()),
            ("name", "gamma".to_owned()),
            ("tenant_id", text("tenant_id")),
            ("client_id", text("client_id")),
            ("client_secret", text("client_secret")),
            ("authority_host", text("authority_host")),
            ("graph_url", text("graph_url")),
            ("check", "on".to_owned()),
        ];
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let failed = page(&app, &who, Method::POST, "/connections", &pairs).await;
        assert_eq!(failed.status, StatusCode::OK, "{}", failed.text);
        assert!(failed.text.contains("nothing was saved"), "{}", failed.text);
        assert!(failed.text.contains(r#"id="checks""#), "the points: {}", failed.text);
        assert_eq!(connection_count(db).await, 0);
        assert!(customer_names(db).await.is_empty());

        // Unticked, the same settings are saved unchecked.
        let unchecked: Vec<(&str, &str)> = pairs.iter().copied().filter(|(k, _)| *k != "check").collect();
        let saved = page(&app, &who, Method::POST, "/connections", &unchecked).await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
        assert_eq!(connection_count(db).await, 1);

        // The Imports tab offers the filter and the full preview.
        let mut tx = db.store.read().await.unwrap();
        let id = tx.connection_by_name("gamma").await.unwrap().unwrap().id;
        tx.commit().await.unwrap();
        let imports = page(&app, &who, Method::GET, &format!("/connections/{id}/imports"), &[]).await;
        assert!(imports.text.contains(r#"name="action""#), "{}", imports.text);
        assert!(imports.text.contains("Full preview"), "{}", imports.text);
        emu.shutdown().await;
    }
}
