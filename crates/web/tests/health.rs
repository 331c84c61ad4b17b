//! The connections' health and the run history through the API and the pages, on SQLite and
//! PostgreSQL: what an agent sees is only what it is granted; sorting and the failing filter;
//! a failing connection is marked; every run is listed with its connection's name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use deskbridge_connector_entra::{NewCredential, NewEntraConnection, add_entra_connection};
use deskbridge_core::{ConnectionId, SharedClock, SystemClock};
use deskbridge_source::settings::EndpointPolicy;
use deskbridge_store::{Access, NewAccount, Role, RunCounts, RunStatus, WriteContext};
use deskbridge_testkit::{TestDb, store_test};
use deskbridge_web::{AppState, auth, router};
use serde_json::Value;
use tower::ServiceExt as _;

/// A connection nothing is read from: its settings alone are enough for the health view.
async fn add_connection(db: &TestDb, name: &str, tenant: &str) -> ConnectionId {
    add_entra_connection(
        &db.store,
        &NewEntraConnection {
            name: name.into(),
            tenant_id: tenant.into(),
            client_id: "00000000-0000-0000-0000-000000000001".into(),
            credential: NewCredential::ClientSecret {
                value: "unused".into(),
                expires_at: None,
            },
            authority_host: Some("http://127.0.0.1:9".into()),
            graph_url: Some("http://127.0.0.1:9/v1.0".into()),
            customer: Some(format!("{name} Ltd")),
            enabled_instances: None,
            last_sign_in: false,
        },
    )
    .await
    .unwrap()
    .id
}

/// An account with an API token and a session cookie.
async fn person(db: &TestDb, name: &str, role: Role) -> (i64, String, String) {
    let token = format!("{}{}", auth::API_TOKEN_PREFIX, auth::random_token(32));
    let session = auth::random_token(32);
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let account = tx
        .create_account(&NewAccount {
            username: name.into(),
            display_name: name.into(),
            password_hash: auth::hash_password("correct horse battery").unwrap(),
            role,
            can_configure_connections: false,
            must_change_password: false,
        })
        .await
        .unwrap();
    tx.create_api_token(account.id, "test", &auth::token_hash(&token), None)
        .await
        .unwrap();
    let expires = db.store.now() + jiff::SignedDuration::from_hours(24);
    tx.create_session(account.id, &auth::token_hash(&session), "csrf", expires)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (account.id, token, format!("{}={session}", auth::SESSION_COOKIE))
}

async fn get(app: &Router, path: &str, token: Option<&str>, cookie: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::builder().method(Method::GET).uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn get_json(app: &Router, path: &str, token: &str) -> Value {
    let (status, text) = get(app, path, Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c["name"]
                .as_str()
                .or(c["connection"].as_str())
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

store_test! {
    async fn health_and_history_show_what_the_caller_may_read(db: &TestDb) {
        let alpha = add_connection(db, "alpha", "11111111-1111-1111-1111-111111111111").await;
        let beta = add_connection(db, "beta", "22222222-2222-2222-2222-222222222222").await;
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let ok = tx.start_run(Some(alpha), "sync").await.unwrap();
        tx.add_run_counts(ok, &RunCounts { created: 3, ..RunCounts::default() }).await.unwrap();
        tx.finish_run(ok, RunStatus::Succeeded, None).await.unwrap();
        let failed = tx.start_run(Some(beta), "sync").await.unwrap();
        tx.add_run_counts(failed, &RunCounts { errors: 2, ..RunCounts::default() }).await.unwrap();
        tx.finish_run(failed, RunStatus::Failed, Some("the secret is wrong")).await.unwrap();
        let held = tx.start_run(Some(beta), "assets").await.unwrap();
        tx.finish_run(held, RunStatus::Held, Some("too many deactivations")).await.unwrap();
        tx.commit().await.unwrap();
        let (agent, agent_token, agent_cookie) = person(db, "agent", Role::Agent).await;
        let (_, admin_token, admin_cookie) = person(db, "admin", Role::Administrator).await;
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        tx.set_grant(agent, alpha, Some(Access::Read)).await.unwrap();
        tx.commit().await.unwrap();
        let clock: SharedClock = Arc::new(SystemClock);
        let app = router(AppState::new(
            db.store.clone(),
            deskbridge_connectors::registry().with_endpoint_policy(EndpointPolicy::allowing(["127.0.0.1"])),
            clock,
        ));

        // The agent sees its one connection, with its health.
        let list = get_json(&app, "/api/v1/connections", &agent_token).await;
        assert_eq!(names(&list, "connections"), ["alpha"]);
        let health = &list["connections"][0]["health"];
        assert_eq!(health["customers"], serde_json::json!(["alpha Ltd"]), "{health:#}");
        assert_eq!(health["health"], "ok");
        assert_eq!(health["last_run"]["status"], "succeeded");
        assert_eq!(health["last_run"]["counts"]["created"], 3);
        let failing = get_json(&app, "/api/v1/connections?failing=true", &agent_token).await;
        assert_eq!(names(&failing, "connections"), Vec::<String>::new(), "beta is not the agent's");

        // The administrator sees both; beta is failing, with open errors and a held run.
        let list = get_json(&app, "/api/v1/connections?sort=errors", &admin_token).await;
        assert_eq!(names(&list, "connections"), ["beta", "alpha"]);
        let beta_health = &list["connections"][0]["health"];
        assert_eq!(beta_health["health"], "failing", "{beta_health:#}");
        assert_eq!(beta_health["open_errors"], 2);
        assert_eq!(beta_health["held_runs"][0]["id"], held.0);
        assert_eq!(beta_health["held_runs"][0]["entity"], "assets");
        let failing = get_json(&app, "/api/v1/connections?failing=true", &admin_token).await;
        assert_eq!(names(&failing, "connections"), ["beta"]);
        let (status, text) = get(&app, "/api/v1/connections?sort=size", Some(&admin_token), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(text.contains("sort: cannot sort by \\\"size\\\"; sort by one of: name, status, last-run, errors"), "{text}");

        // The run history: every run for the administrator, the agent's connection's for the agent.
        let runs = get_json(&app, "/api/v1/runs", &admin_token).await;
        assert_eq!(names(&runs, "runs"), ["beta", "beta", "alpha"]);
        assert_eq!(runs["runs"][2]["entity"], "directory");
        assert!(runs["runs"][2]["duration_seconds"].is_i64(), "{:#}", runs["runs"][2]);
        let only_failed = get_json(&app, "/api/v1/runs?status=failed", &admin_token).await;
        assert_eq!(only_failed["runs"][0]["id"], failed.0);
        let runs = get_json(&app, "/api/v1/runs", &agent_token).await;
        assert_eq!(names(&runs, "runs"), ["alpha"]);
        let (status, _) = get(&app, "/api/v1/runs?connection=beta", Some(&agent_token), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "another connection cannot be named");
        let own = get_json(&app, &format!("/api/v1/connections/{alpha}/runs"), &agent_token).await;
        assert_eq!(own["runs"][0]["connection"], "alpha");

        // The pages: a failing connection is marked, sorting works without script, the runs page.
        let (status, html) = get(&app, "/connections?sort=status", None, Some(&admin_cookie)).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(html.contains("<td class=\"bad\">failing</td>"), "{html}");
        assert!(html.find(">beta<").unwrap() < html.find(">alpha<").unwrap(), "worst first");
        assert!(html.contains("href=\"/connections?sort=errors\""), "{html}");
        assert!(html.contains("1 awaiting approval"), "{html}");
        let (_, html) = get(&app, "/connections?sort=name", None, Some(&admin_cookie)).await;
        assert!(html.find(">alpha<").unwrap() < html.find(">beta<").unwrap());
        let (status, html) = get(&app, "/runs", None, Some(&agent_cookie)).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(html.contains(">alpha<") && !html.contains(">beta<") && html.contains("direct"), "{html}");
        let (status, _) = get(&app, "/runs", None, None).await;
        assert_ne!(status, StatusCode::OK, "signed in only");
    }
}
