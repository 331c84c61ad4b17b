//! Router-level tests of the admin UI and API (tower `oneshot`, no socket), on SQLite and
//! PostgreSQL, against the in-process emulator: the authorisation matrix over every route,
//! CSRF, secrets never coming back, sign-in with a one-time password, and the main flow.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use deskbridge_connector_entra::{NewCredential, NewEntraConnection, add_entra_connection};
use deskbridge_core::{ConnectionId, RunId, SharedClock, SystemClock};
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use deskbridge_source::settings::EndpointPolicy;
use deskbridge_store::{Access, NewAccount, Role, RunStatus, WriteContext};
use deskbridge_testkit::{TestDb, store_test};
use deskbridge_web::access::{ENDPOINTS, Need, Surface};
use deskbridge_web::{AppState, auth, router};
use serde_json::{Value, json};
use tower::ServiceExt as _;

struct Fixture {
    emu: Emulator,
    app: Router,
    own: ConnectionId,
    other: ConnectionId,
    own_run: RunId,
    other_run: RunId,
    /// A desk user each connection imported (user routes reach the connection through it), for
    /// the tests that ask for them ([`with_users`]); none otherwise.
    own_user: i64,
    other_user: i64,
    /// Role name → (account id, API token, session cookie, CSRF token).
    people: Vec<Person>,
}

#[derive(Clone)]
struct Person {
    name: &'static str,
    id: i64,
    token: String,
    cookie: String,
    csrf: String,
}

async fn emulator() -> Emulator {
    let world = World::generate(&GenerateOptions {
        seed: 5,
        tenants: 2,
        users_per_tenant: Some(12),
        ..GenerateOptions::default()
    })
    .unwrap();
    Emulator::start(EmulatorConfig::new(world)).await.unwrap()
}

fn app_secret(emu: &Emulator) -> (String, String) {
    let summary = emu.summary();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .unwrap();
    (app.client_id.clone(), app.client_secret.clone().unwrap())
}

async fn add_connection(db: &TestDb, emu: &Emulator, name: &str) -> ConnectionId {
    let summary = emu.summary();
    let (client_id, secret) = app_secret(emu);
    add_entra_connection(
        &db.store,
        &NewEntraConnection {
            name: name.into(),
            tenant_id: summary.tenants[0].id.clone(),
            client_id,
            credential: NewCredential::ClientSecret {
                value: secret,
                expires_at: None,
            },
            authority_host: Some(summary.authority_host.clone()),
            graph_url: Some(summary.graph_url.clone()),
            // A tenant belongs to one customer: every connection here imports into the same.
            customer: Some("Contoso".into()),
            enabled_instances: None,
            last_sign_in: false,
        },
    )
    .await
    .unwrap()
    .id
}

async fn person(db: &TestDb, name: &'static str, role: Role, can_configure: bool) -> Person {
    let token = format!("{}{}", auth::API_TOKEN_PREFIX, auth::random_token(32));
    let session = auth::random_token(32);
    let csrf = auth::random_token(32);
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
    tx.create_api_token(account.id, "test", &auth::token_hash(&token), None)
        .await
        .unwrap();
    let expires = db.store.now() + jiff::SignedDuration::from_hours(24 * 365);
    tx.create_session(account.id, &auth::token_hash(&session), &csrf, expires)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    Person {
        name,
        id: account.id,
        token,
        cookie: format!("{}={session}", auth::SESSION_COOKIE),
        csrf,
    }
}

async fn finished_run(db: &TestDb, connection: ConnectionId) -> RunId {
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let run = tx.start_run(Some(connection), "sync").await.unwrap();
    tx.finish_run(run, RunStatus::Succeeded, None).await.unwrap();
    tx.commit().await.unwrap();
    run
}

fn state(db: &TestDb) -> AppState {
    let clock: SharedClock = Arc::new(SystemClock);
    AppState::new(
        db.store.clone(),
        deskbridge_connectors::registry().with_endpoint_policy(EndpointPolicy::allowing(["127.0.0.1"])),
        clock,
    )
}

/// A desk user imported by `connection`.
async fn imported_user(db: &TestDb, connection: ConnectionId, object_id: &str) -> i64 {
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let config = tx.connection(connection).await.unwrap().unwrap().config;
    let customer = deskbridge_core::RecordId(config["customer_id"].as_i64().unwrap());
    let site = tx.main_site(customer).await.unwrap().unwrap();
    let fields: deskbridge_store::Fields = [
        ("site_id".to_owned(), json!(site.0)),
        ("name".to_owned(), json!(format!("User {object_id}"))),
        ("email".to_owned(), json!(format!("{object_id}@contoso.test"))),
    ]
    .into_iter()
    .collect();
    let id = tx
        .insert(
            deskbridge_store::Entity::User,
            Some(&deskbridge_store::SourceKey::new(connection, object_id)),
            &fields,
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id.0
}

/// The fixture with a desk user imported by each connection.
async fn with_users(db: &TestDb) -> Fixture {
    let mut fx = fixture(db).await;
    fx.own_user = imported_user(db, fx.own, "own-user").await;
    fx.other_user = imported_user(db, fx.other, "other-user").await;
    fx
}

async fn fixture(db: &TestDb) -> Fixture {
    let emu = emulator().await;
    let own = add_connection(db, &emu, "own").await;
    let other = add_connection(db, &emu, "other").await;
    let own_run = finished_run(db, own).await;
    let other_run = finished_run(db, other).await;
    let reader = person(db, "reader", Role::Agent, false).await;
    let modifier = person(db, "modifier", Role::Agent, false).await;
    let creator = person(db, "creator", Role::Agent, true).await;
    let admin = person(db, "admin", Role::Administrator, true).await;
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    tx.set_grant(reader.id, own, Some(Access::Read)).await.unwrap();
    tx.set_grant(modifier.id, own, Some(Access::Modify))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    Fixture {
        emu,
        app: router(state(db)),
        own,
        other,
        own_run,
        other_run,
        own_user: 0,
        other_user: 0,
        people: vec![reader, modifier, creator, admin],
    }
}

impl Fixture {
    fn who(&self, name: &str) -> &Person {
        self.people.iter().find(|p| p.name == name).unwrap()
    }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
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
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
    Reply {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn api(app: &Router, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    };
    send(app, req.unwrap()).await
}

async fn page(
    app: &Router,
    method: Method,
    path: &str,
    who: Option<&Person>,
    form: &[(&str, &str)],
) -> Reply {
    let mut req = Request::builder().method(method.clone()).uri(path);
    if let Some(p) = who {
        req = req.header(header::COOKIE, &p.cookie);
    }
    let req = if method == Method::POST {
        let mut pairs: Vec<(&str, &str)> = form.to_vec();
        if let Some(p) = who {
            pairs.push(("csrf", &p.csrf));
        }
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

/// The concrete path of a route for a target connection (own or other).
fn concrete(fx: &Fixture, path: &str, own: bool, account: i64) -> String {
    let (c, r, u) = if own {
        (fx.own, fx.own_run, fx.own_user)
    } else {
        (fx.other, fx.other_run, fx.other_user)
    };
    path.replace("{id}", &c.to_string())
        .replace("{run_id}", &r.to_string())
        .replace("{user_id}", &u.to_string())
        .replace("{licence_id}", "999999")
        .replace("{log}", "inbound")
        .replace("{kind}", "users")
        .replace("{section}", "fields")
        .replace("{account_id}", &account.to_string())
        .replace("{token_id}", "999999")
        .replace("{file}", "style.css")
        .replace("{schedule}", "999999")
}

/// Whether `who` may call a route with requirement `need` on the own or other connection.
fn allowed(who: Option<&str>, need: Need, own: bool) -> bool {
    match (who, need) {
        (_, Need::Public) => true,
        (None, _) => false,
        (Some("admin"), _) => true,
        (Some(_), Need::Signed) => true,
        (Some(_), Need::Admin) => false,
        (Some(w), Need::CreateConnection) => w == "creator",
        (Some(w), Need::Connection(a) | Need::Run(a) | Need::User(a)) => {
            own && match a {
                Access::Read => matches!(w, "reader" | "modifier"),
                Access::Modify => w == "modifier",
            }
        }
    }
}

/// A body that passes access checks but is refused by the handler, so allowed calls change
/// nothing (a 400 proves the request got past the access check).
fn harmless_body(method: &str, path: &str) -> Option<Value> {
    match (method, path) {
        ("GET" | "DELETE", _) => None,
        (_, p)
            if p.ends_with("/test")
                || p.ends_with("/preview")
                || p.ends_with("/cursors/reset")
                || p.ends_with("/cursors/latest") =>
        {
            None
        }
        (_, p) if p.ends_with("/cancel") || p.ends_with("/approve") => None,
        _ => Some(json!({"not_a_field": true})),
    }
}

store_test! {
    async fn every_route_allows_and_denies_by_role_and_connection(db: &TestDb) {
        let fx = with_users(db).await;
        // A connection and an account each DELETE may remove without spoiling the rest.
        let mut roles: Vec<Option<&Person>> = vec![None];
        roles.extend(fx.people.iter().map(Some));
        let mut endpoints: Vec<_> = ENDPOINTS.iter().collect();
        // Signing out ends the session the other page checks use: last.
        endpoints.sort_by_key(|e| e.path == "/logout");
        let mut checked = 0;
        for ep in endpoints {
            let targets: &[bool] = if ep.path.contains("{id}") || ep.path.contains("{run_id}") || ep.path.contains("{user_id}") { &[true, false] } else { &[true] };
            for who in &roles {
                for &own in targets {
                    let name = who.map(|p| p.name);
                    let expect = allowed(name, ep.need, own);
                    let method = Method::from_bytes(ep.method.as_bytes()).unwrap();
                    let mut path_account = fx.who("reader").id;
                    let mut path = concrete(&fx, ep.path, own, path_account);
                    if ep.method == "DELETE" && ep.path == "/api/v1/connections/{id}" {
                        // A throwaway connection with the same grants as own / none.
                        let id = add_connection(db, &fx.emu, &format!("tmp-{checked}")).await;
                        if own {
                            let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
                            for (p, a) in [("reader", Access::Read), ("modifier", Access::Modify)] {
                                tx.set_grant(fx.who(p).id, id, Some(a)).await.unwrap();
                            }
                            tx.commit().await.unwrap();
                        }
                        path = format!("/api/v1/connections/{id}");
                    }
                    // Deleting an account or resetting its password spoils it for later checks.
                    if (ep.method == "DELETE" && ep.path == "/api/v1/accounts/{account_id}")
                        || ep.path == "/api/v1/accounts/{account_id}/reset-password"
                    {
                        path_account = person(db, Box::leak(format!("victim{checked}").into_boxed_str()), Role::Agent, false).await.id;
                        path = concrete(&fx, ep.path, own, path_account);
                    }
                    let reply = match ep.surface {
                        Surface::Api => api(&fx.app, method, &path, who.map(|p| p.token.as_str()), harmless_body(ep.method, ep.path)).await,
                        Surface::Page => page(&fx.app, method, &path, *who, &[("op", "none")]).await,
                    };
                    let denied = match (ep.surface, name) {
                        (Surface::Page, None) => reply.status == StatusCode::SEE_OTHER
                            && reply.headers.get(header::LOCATION).unwrap().to_str().unwrap().starts_with("/login"),
                        (_, None) => reply.status == StatusCode::UNAUTHORIZED,
                        _ => reply.status == StatusCode::FORBIDDEN,
                    };
                    let context = format!(
                        "{} {} as {} on {} connection: {} {}",
                        ep.method, path, name.unwrap_or("anonymous"), if own { "own" } else { "other" },
                        reply.status, reply.text.chars().take(300).collect::<String>()
                    );
                    assert_ne!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{context}");
                    if ep.need == Need::Public {
                        // Public routes answer everyone; a sign-in without credentials is a 401 from the handler.
                        assert!(reply.status != StatusCode::FORBIDDEN, "public: {context}");
                    } else if expect {
                        assert!(!denied && reply.status != StatusCode::UNAUTHORIZED && reply.status != StatusCode::FORBIDDEN, "should be allowed: {context}");
                    } else {
                        assert!(denied, "should be denied: {context}");
                        if ep.surface == Surface::Api {
                            let code = reply.json()["error"]["code"].as_str().unwrap().to_owned();
                            assert!(matches!(code.as_str(), "unauthenticated" | "forbidden"), "{context}");
                        }
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > ENDPOINTS.len() * 5, "{checked} checks");
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn agents_list_only_the_connections_granted_to_them(db: &TestDb) {
        let fx = fixture(db).await;
        let names = |reply: Reply| -> Vec<String> {
            reply.json()["connections"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect()
        };
        let reader = names(api(&fx.app, Method::GET, "/api/v1/connections", Some(&fx.who("reader").token), None).await);
        assert_eq!(reader, ["own"]);
        let creator = names(api(&fx.app, Method::GET, "/api/v1/connections", Some(&fx.who("creator").token), None).await);
        assert!(creator.is_empty());
        let admin = names(api(&fx.app, Method::GET, "/api/v1/connections", Some(&fx.who("admin").token), None).await);
        assert_eq!(admin, ["other", "own"]);
        // The connection list page shows the same.
        let html = page(&fx.app, Method::GET, "/connections", Some(fx.who("reader")), &[]).await.text;
        assert!(html.contains("/connections/") && html.contains(">own<") && !html.contains(">other<"), "{html}");
        // An agent who creates a connection may then read and change it.
        let (client_id, secret) = app_secret(&fx.emu);
        let summary = fx.emu.summary();
        let creator_token = fx.who("creator").token.clone();
        let new = |tenant: &str, customer: &str| json!({
            "name": "created", "tenant_id": tenant, "client_id": client_id, "client_secret": secret,
            "authority_host": summary.authority_host, "graph_url": summary.graph_url, "customer": customer,
        });
        // Not into another customer, by its name or by its tenant: that would give the agent its data.
        let existing = api(&fx.app, Method::POST, "/api/v1/connections", Some(&creator_token), Some(new(&summary.tenants[0].id, "Contoso"))).await;
        assert_eq!(existing.status, StatusCode::FORBIDDEN, "{}", existing.text);
        assert!(existing.text.contains("only an administrator may add a connection to an existing customer"), "{}", existing.text);
        let owned = api(&fx.app, Method::POST, "/api/v1/connections", Some(&creator_token), Some(new(&summary.tenants[0].id, "Created Ltd"))).await;
        // (It is also read by the connection "own": a tenant is read by one connection.)
        assert_eq!(owned.status, StatusCode::CONFLICT, "{}", owned.text);
        assert!(owned.text.contains("already read by connection \\\"own\\\""), "{}", owned.text);
        let created = api(&fx.app, Method::POST, "/api/v1/connections", Some(&creator_token), Some(new(&summary.tenants[1].id, "Created Ltd"))).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        assert_eq!(created.json()["access"], "modify");
        let creator = names(api(&fx.app, Method::GET, "/api/v1/connections", Some(&fx.who("creator").token), None).await);
        assert_eq!(creator, ["created"]);
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn a_post_without_the_csrf_token_is_rejected(db: &TestDb) {
        let fx = fixture(db).await;
        let admin = fx.who("admin").clone();
        let reset = format!("/connections/{}/cursors/reset", fx.own);
        // No token.
        let req = Request::builder().method(Method::POST).uri(&reset)
            .header(header::COOKIE, &admin.cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("x=1")).unwrap();
        let reply = send(&fx.app, req).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert!(reply.text.contains("csrf_failed"), "{}", reply.text);
        // A wrong token.
        let req = Request::builder().method(Method::POST).uri(&reset)
            .header(header::COOKIE, &admin.cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("csrf=guessed")).unwrap();
        assert_eq!(send(&fx.app, req).await.status, StatusCode::FORBIDDEN);
        // The API with a cookie needs the header too; a Bearer token does not.
        let patch = format!("/api/v1/connections/{}", fx.own);
        let req = Request::builder().method(Method::PATCH).uri(&patch)
            .header(header::COOKIE, &admin.cookie)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"delta": false}"#)).unwrap();
        let reply = send(&fx.app, req).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert_eq!(reply.json()["error"]["code"], "csrf_failed");
        let req = Request::builder().method(Method::PATCH).uri(&patch)
            .header(header::COOKIE, &admin.cookie)
            .header("x-csrf-token", &admin.csrf)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"delta": false}"#)).unwrap();
        let reply = send(&fx.app, req).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.json()["settings"]["delta"], false);
        // With the token (and the reset's tick box) the form goes through.
        let ok = page(&fx.app, Method::POST, &reset, Some(&admin), &[("confirm", "on")]).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
        assert!(ok.text.contains("Delta reset"));
        // The sign-in form is protected too (double submit: cookie and field must agree).
        let req = Request::builder().method(Method::POST).uri("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("username=admin&password=correct+horse+battery&csrf=x")).unwrap();
        let reply = send(&fx.app, req).await;
        assert!(reply.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().starts_with(auth::LOGIN_CSRF_COOKIE));
        assert!(reply.text.contains("did not come from this site"));
        fx.emu.shutdown().await;
    }
}

/// Signs in through the form; returns the session cookie.
async fn sign_in(app: &Router, username: &str, password: &str) -> Reply {
    let form = page(app, Method::GET, "/login", None, &[]).await;
    let set = form
        .headers
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let login_csrf = set
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("username", username),
            ("password", password),
            ("csrf", &login_csrf),
            ("next", "/connections"),
        ])
        .finish();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/login")
        .header(
            header::COOKIE,
            format!("{}={login_csrf}", auth::LOGIN_CSRF_COOKIE),
        )
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    send(app, req).await
}

fn session_of(reply: &Reply) -> String {
    reply
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with(auth::SESSION_COOKIE))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

fn csrf_in(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_owned()
}

store_test! {
    async fn the_first_administrator_signs_in_with_a_one_time_password_and_must_change_it(db: &TestDb) {
        let app = router(state(db));
        let first = auth::ensure_first_administrator(&db.store, "admin").await.unwrap().unwrap();
        assert!(auth::ensure_first_administrator(&db.store, "admin").await.unwrap().is_none(), "only once");
        let wrong = sign_in(&app, "admin", "not it").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        let ok = sign_in(&app, "admin", &first.one_time_password).await;
        assert_eq!(ok.status, StatusCode::SEE_OTHER);
        assert_eq!(ok.headers.get(header::LOCATION).unwrap(), "/account");
        let cookie_header = ok.headers.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).find(|v| v.starts_with(auth::SESSION_COOKIE)).unwrap();
        assert!(cookie_header.contains("HttpOnly") && cookie_header.contains("SameSite=Lax"), "{cookie_header}");
        let cookie = session_of(&ok);
        let who = Person { name: "admin", id: first.account.id, token: String::new(), cookie: cookie.clone(), csrf: String::new() };
        let blocked = page(&app, Method::GET, "/connections", Some(&who), &[]).await;
        assert_eq!(blocked.status, StatusCode::FORBIDDEN);
        assert!(blocked.text.contains("password_change_required"));
        let account = page(&app, Method::GET, "/account", Some(&who), &[]).await;
        let who = Person { csrf: csrf_in(&account.text), ..who };
        let short = page(&app, Method::POST, "/account/password", Some(&who), &[("current", &first.one_time_password), ("new", "short"), ("confirm", "short")]).await;
        assert!(short.text.contains("at least 12 characters"), "{}", short.text);
        let elsewhere = session_of(&sign_in(&app, "admin", &first.one_time_password).await);
        let changed = page(&app, Method::POST, "/account/password", Some(&who), &[("current", &first.one_time_password), ("new", "a much longer password"), ("confirm", "a much longer password")]).await;
        let other = Person { name: "admin", id: first.account.id, token: String::new(), cookie: elsewhere, csrf: String::new() };
        assert_eq!(page(&app, Method::GET, "/account", Some(&other), &[]).await.status, StatusCode::SEE_OTHER, "the other session ended");
        assert!(changed.text.contains("Your password was changed"), "{}", changed.text);
        assert_eq!(page(&app, Method::GET, "/connections", Some(&who), &[]).await.status, StatusCode::OK);
        assert_eq!(sign_in(&app, "admin", &first.one_time_password).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(sign_in(&app, "admin", "a much longer password").await.status, StatusCode::SEE_OTHER);
        // Signing out ends the session.
        let out = page(&app, Method::POST, "/logout", Some(&who), &[]).await;
        assert_eq!(out.status, StatusCode::SEE_OTHER);
        let after = page(&app, Method::GET, "/connections", Some(&who), &[]).await;
        assert_eq!(after.status, StatusCode::SEE_OTHER, "back to the sign-in page");
    }
}

store_test! {
    async fn secrets_entered_never_come_back(db: &TestDb) {
        let fx = fixture(db).await;
        let admin = fx.who("admin").clone();
        let (client_id, secret) = app_secret(&fx.emu);
        let summary = fx.emu.summary();
        // Through the UI form, as an administrator would.
        let created = page(&fx.app, Method::POST, "/connections", Some(&admin), &[
            ("name", "ui-made"), ("tenant_id", &summary.tenants[1].id), ("client_id", &client_id),
            ("client_secret", &secret), ("authority_host", &summary.authority_host), ("graph_url", &summary.graph_url),
            ("customer", "Contoso"),
        ]).await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text);
        let location = created.headers.get(header::LOCATION).unwrap().to_str().unwrap().to_owned();
        let id: i64 = location.trim_start_matches("/connections/").split('?').next().unwrap().parse().unwrap();
        // A rotated secret, through the API.
        let rotated = "rotated-secret-value-1234567890";
        let patched = api(&fx.app, Method::PATCH, &format!("/api/v1/connections/{id}"), Some(&admin.token), Some(json!({"client_secret": rotated}))).await;
        assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
        // A certificate that cannot sign is refused when it is given, and nothing changes.
        let bad = api(&fx.app, Method::PATCH, &format!("/api/v1/connections/{id}"), Some(&admin.token), Some(json!({"certificate_pem": "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n"}))).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
        assert!(bad.text.contains("the certificate cannot be used"), "{}", bad.text);
        let unchanged = api(&fx.app, Method::GET, &format!("/api/v1/connections/{id}"), Some(&admin.token), None).await;
        assert!(unchanged.text.contains("client_secret"), "{}", unchanged.text);
        // A failing create echoes the form back, but not the secret.
        let failed = page(&fx.app, Method::POST, "/connections", Some(&admin), &[
            ("name", "ui-made"), ("tenant_id", &summary.tenants[1].id), ("client_id", &client_id),
            ("client_secret", "echo-me-not-0987654321"), ("customer", "Contoso"),
        ]).await;
        // (Refused as its tenant is read by the first "ui-made" already.)
        assert!(failed.text.contains("already read by connection") && !failed.text.contains("echo-me-not"), "{}", failed.text);
        let invalid = page(&fx.app, Method::POST, "/connections", Some(&admin), &[
            ("name", "ui-invalid"), ("tenant_id", "t"), ("client_id", "c"), ("client_secret", "echo-me-not-0987654321"),
        ]).await;
        assert!(invalid.text.contains("Client id: &#34;c&#34; is not a GUID") && !invalid.text.contains("echo-me-not"), "{}", invalid.text);
        let mut seen = vec![patched.text];
        for path in ["/api/v1/connections".to_owned(), format!("/api/v1/connections/{id}"), format!("/api/v1/connections/{id}/export"), format!("/api/v1/connections/{id}/mappings"), "/api/v1/openapi.json".to_owned()] {
            let r = api(&fx.app, Method::GET, &path, Some(&admin.token), None).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
            seen.push(r.text);
        }
        for path in ["/connections".to_owned(), format!("/connections/{id}"), format!("/connections/{id}/mappings/advanced"), format!("/connections/{id}/imports"), format!("/connections/{id}/agent"), format!("/connections/{id}/logs?log=outbound")] {
            let r = page(&fx.app, Method::GET, &path, Some(&admin), &[]).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
            seen.push(r.text);
        }
        for text in &seen {
            assert!(!text.contains(&secret), "the client secret came back: {text}");
            assert!(!text.contains(rotated), "the rotated secret came back: {text}");
        }
        // An API token is shown once, when created.
        let token = api(&fx.app, Method::POST, "/api/v1/tokens", Some(&admin.token), Some(json!({"name": "ci"}))).await;
        assert_eq!(token.status, StatusCode::CREATED);
        let value = token.json()["token"].as_str().unwrap().to_owned();
        let listed = api(&fx.app, Method::GET, "/api/v1/tokens", Some(&admin.token), None).await;
        assert!(!listed.text.contains(&value) && listed.text.contains("\"ci\""));
        assert_eq!(api(&fx.app, Method::GET, "/api/v1/me", Some(&value), None).await.status, StatusCode::OK);
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn main_flow_through_the_api(db: &TestDb) {
        let fx = fixture(db).await;
        let token = fx.who("admin").token.clone();
        let own = fx.own;
        // OpenAPI lists every API route.
        let doc = api(&fx.app, Method::GET, "/api/v1/openapi.json", None, None).await.json();
        for ep in ENDPOINTS.iter().filter(|e| e.surface == Surface::Api) {
            assert!(doc["paths"][ep.path][ep.method.to_lowercase()].is_object(), "{} {}", ep.method, ep.path);
        }
        // Mappings: add a field mapping; a bad one is refused with the problem.
        let mut mapping = api(&fx.app, Method::GET, &format!("/api/v1/connections/{own}/mappings"), Some(&token), None).await.json();
        mapping["user_fields"].as_array_mut().unwrap().push(json!({"source": {"property": "officeLocation"}, "target": "location"}));
        let bad = api(&fx.app, Method::PUT, &format!("/api/v1/connections/{own}/mappings"), Some(&token), Some(mapping.clone())).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
        assert_eq!(bad.json()["error"]["code"], "invalid_configuration");
        mapping["user_fields"].as_array_mut().unwrap().pop();
        mapping["user_fields"].as_array_mut().unwrap().push(json!({"source": {"property": "officeLocation"}, "target": "creation_type"}));
        let saved = api(&fx.app, Method::PUT, &format!("/api/v1/connections/{own}/mappings"), Some(&token), Some(mapping.clone())).await;
        assert_eq!(saved.status, StatusCode::OK, "{}", saved.text);
        let stored = api(&fx.app, Method::GET, &format!("/api/v1/connections/{own}/mappings"), Some(&token), None).await.json();
        assert_eq!(stored, mapping);
        // Preview: every user with the rule that decided it; nothing written.
        let preview = api(&fx.app, Method::POST, &format!("/api/v1/connections/{own}/preview"), Some(&token), None).await;
        assert_eq!(preview.status, StatusCode::OK, "{}", preview.text);
        let preview = preview.json();
        let changes = preview["changes"].as_array().unwrap();
        assert!(changes.iter().any(|c| c["entity"] == "user" && c["action"] == "create" && !c["rule"].as_str().unwrap().is_empty()), "{preview}");
        let users_before = api(&fx.app, Method::GET, &format!("/api/v1/connections/{own}/directory/users"), Some(&token), None).await.json();
        assert!(users_before["items"].as_array().unwrap().is_empty());
        // Run it and watch its progress to the end.
        let started = api(&fx.app, Method::POST, &format!("/api/v1/connections/{own}/runs"), Some(&token), Some(json!({}))).await;
        assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text);
        let run = started.json()["run_id"].as_i64().unwrap();
        let mut last = Value::Null;
        for _ in 0..600 {
            last = api(&fx.app, Method::GET, &format!("/api/v1/runs/{run}"), Some(&token), None).await.json();
            if last["finished"] == true { break; }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(last["run"]["status"], "succeeded", "{last}");
        let created = last["run"]["counts"]["created"].as_i64().unwrap();
        assert!(created > 0);
        let history = api(&fx.app, Method::GET, &format!("/api/v1/connections/{own}/runs"), Some(&token), None).await.json();
        assert_eq!(history["runs"][0]["id"], run);
        // The imported users, searchable and paged; the logs.
        let users = api(&fx.app, Method::GET, &format!("/api/v1/connections/{own}/directory/users?limit=5"), Some(&token), None).await.json();
        assert_eq!(users["items"].as_array().unwrap().len(), 5);
        let after = users["next_after"].as_i64().unwrap();
        let more = api(&fx.app, Method::GET, &format!("/api/v1/connections/{own}/directory/users?limit=5&after={after}"), Some(&token), None).await.json();
        assert!(more["items"][0]["id"].as_i64().unwrap() > after);
        let name = users["items"][0]["name"].as_str().unwrap().to_owned();
        let q: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
        let found = api(&fx.app, Method::GET, &format!("/api/v1/connections/{own}/directory/users?q={q}"), Some(&token), None).await.json();
        assert!(found["items"].as_array().unwrap().iter().any(|u| u["name"] == name.as_str()));
        let inbound = api(&fx.app, Method::GET, &format!("/api/v1/connections/{own}/logs/inbound?run={run}&limit=3"), Some(&token), None).await.json();
        assert_eq!(inbound["entries"].as_array().unwrap().len(), 3);
        let outbound = api(&fx.app, Method::GET, &format!("/api/v1/connections/{own}/logs/outbound?run={run}"), Some(&token), None).await.json();
        assert!(outbound["entries"].as_array().unwrap().iter().all(|e| e["connection_id"] == own.0));
        let other = api(&fx.app, Method::GET, &format!("/api/v1/connections/{}/logs/inbound", fx.other), Some(&token), None).await.json();
        assert!(other["entries"].as_array().unwrap().is_empty(), "another connection's log is separate");
        let bad_log = api(&fx.app, Method::GET, &format!("/api/v1/connections/{own}/logs/nope"), Some(&token), None).await;
        assert_eq!(bad_log.status, StatusCode::NOT_FOUND);
        assert_eq!(bad_log.json()["error"]["code"], "not_found");
        // Export and import round trip; the file has no secret.
        let export = api(&fx.app, Method::GET, &format!("/api/v1/connections/{own}/export"), Some(&token), None).await;
        assert!(export.headers.get(header::CONTENT_DISPOSITION).unwrap().to_str().unwrap().contains("own.deskbridge.json"));
        let mut file = export.json();
        assert_eq!(file["deskbridge_export"], 1);
        file["settings"]["delta"] = json!(false);
        let imported = api(&fx.app, Method::POST, &format!("/api/v1/connections/{}/import", fx.other), Some(&token), Some(file.clone())).await;
        assert_eq!(imported.status, StatusCode::OK, "{}", imported.text);
        assert_eq!(imported.json()["mapping"], file["mapping"]);
        assert_eq!(imported.json()["settings"]["delta"], false);
        // One error shape, even for a malformed body.
        let malformed = api(&fx.app, Method::POST, &format!("/api/v1/connections/{own}/import"), Some(&token), Some(json!([1, 2]))).await;
        assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
        assert_eq!(malformed.json()["error"]["code"], "invalid_input");
        // The run pages show it.
        let run_page = page(&fx.app, Method::GET, &format!("/runs/{run}"), Some(fx.who("reader")), &[]).await;
        assert_eq!(run_page.status, StatusCode::OK);
        assert!(run_page.text.contains("succeeded") && run_page.text.contains("run-finished"));
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn every_page_renders_for_an_administrator(db: &TestDb) {
        let fx = fixture(db).await;
        let admin = fx.who("admin").clone();
        let id = fx.own;
        for (path, expect) in [
            ("/connections".to_owned(), "Connections"),
            ("/connections/new".to_owned(), "Add a Microsoft Entra ID connection"),
            (format!("/connections/{id}"), "Authorisation"),
            (format!("/connections/{id}/mappings/fields"), "Add a field mapping"),
            (format!("/connections/{id}/mappings/sites"), "Add a site mapping"),
            (format!("/connections/{id}/mappings/assets"), "Save asset settings"),
            (format!("/connections/{id}/mappings/tables"), "Custom table syncs"),
            (format!("/connections/{id}/mappings/customers"), "Customers are not imported"),
            (format!("/connections/{id}/mappings/advanced"), "Advanced mappings"),
            (format!("/connections/{id}/directory/assets"), "Directory: assets"),
            (format!("/connections/{id}/imports"), "Preview import"),
            (format!("/connections/{id}/agent"), "Reset delta"),
            (format!("/connections/{id}/check"), "✓ passed"),
            (format!("/connections/{id}/logs?log=errors"), "Errors"),
            (format!("/connections/{id}/runs"), "Run"),
            (format!("/connections/{id}/directory/users"), "Directory: users"),
            ("/directory/customers".to_owned(), "Directory: customers"),
            ("/admin/accounts".to_owned(), "Add an account"),
            ("/account".to_owned(), "API tokens"),
        ] {
            let r = page(&fx.app, Method::GET, &path, Some(&admin), &[]).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
            assert!(r.text.contains(expect), "{path} lacks {expect:?}: {}", r.text);
            if r.text.contains("type=\"text\"") || r.text.contains("<textarea") || r.text.contains("<select") {
                assert!(r.text.contains("<label for="), "{path} labels its controls");
            }
        }
        // Add a field mapping and a site mapping through the forms.
        let fields = page(&fx.app, Method::POST, &format!("/connections/{id}/mappings/fields"), Some(&admin), &[("op", "add"), ("for", "user"), ("source", "officeLocation"), ("target", "creation_type")]).await;
        assert!(fields.text.contains("Mappings saved") && fields.text.contains("creation_type"), "{}", fields.text);
        let mut tx = db.store.read().await.unwrap();
        let sites = tx.directory_page(deskbridge_store::Entity::Site, &deskbridge_store::DirectoryFilter { limit: 10, ..Default::default() }).await.unwrap();
        tx.commit().await.unwrap();
        let site = sites[0].id.0.to_string();
        let added = page(&fx.app, Method::POST, &format!("/connections/{id}/mappings/sites"), Some(&admin), &[("op", "add"), ("name", "London office"), ("sequence", "5"), ("site_id", &site), ("filter", "officeLocation eq 'London'")]).await;
        assert!(added.text.contains("Mappings saved") && added.text.contains("London office"), "{}", added.text);
        // A custom table mapping, saved as code: refused while the desk table does not exist, then saved.
        let tables = format!("/connections/{id}/mappings/tables");
        let json = r#"{"custom_tables": [{"source_table": "cr7a1_contract", "desk_table": "contracts", "filter": "modifiedon ge $-INTEGRATORLASTSYNC", "fields": [{"source": "cr7a1_name", "target": "name"}, {"source": "cr7a1_accountid/name", "target": "account"}]}]}"#;
        let refused = page(&fx.app, Method::POST, &tables, Some(&admin), &[("op", "replace"), ("json", json)]).await;
        assert!(refused.text.contains("Not saved") && refused.text.contains("the desk has no custom table"), "{}", refused.text);
        let mut tx = db.store.begin(deskbridge_store::WriteContext::manual()).await.unwrap();
        tx.define_custom_table("contracts", None, &[("name", "text"), ("account", "text")]).await.unwrap();
        tx.commit().await.unwrap();
        let saved = page(&fx.app, Method::POST, &tables, Some(&admin), &[("op", "replace"), ("json", json)]).await;
        assert!(saved.text.contains("Mappings saved") && saved.text.contains("cr7a1_accountid/name → account"), "{}", saved.text);
        assert!(saved.text.contains("contracts: account (text), name (text)"), "{}", saved.text);
        // Field by field through the forms: a second table mapping with its first field, another
        // field, a removal that must be confirmed, and a column the desk table lacks refused.
        let mut tx = db.store.begin(deskbridge_store::WriteContext::manual()).await.unwrap();
        tx.define_custom_table("renewals", None, &[("title", "text"), ("seats", "number")]).await.unwrap();
        tx.commit().await.unwrap();
        let form = page(&fx.app, Method::GET, &tables, Some(&admin), &[]).await;
        assert!(form.text.contains("Add a table mapping") && form.text.contains("renewals (2 column(s))"), "{}", form.text);
        assert!(!form.text.contains("contracts (2 column(s))"), "a desk table already filled is not offered");
        let added = page(&fx.app, Method::POST, &tables, Some(&admin), &[("op", "add-table"), ("source_table", "cr7a1_renewal"), ("desk_table", "renewals"), ("source", "cr7a1_title"), ("target", "title"), ("filter", "statecode eq 0"), ("removed_rows", "keep")]).await;
        assert!(added.text.contains("Mappings saved") && added.text.contains("cr7a1_title → title"), "{}", added.text);
        let field = page(&fx.app, Method::POST, &tables, Some(&admin), &[("op", "add-field"), ("table", "renewals"), ("source", "cr7a1_seats"), ("target", "seats")]).await;
        assert!(field.text.contains("Mappings saved") && field.text.contains("cr7a1_seats → seats"), "{}", field.text);
        let wrong = page(&fx.app, Method::POST, &tables, Some(&admin), &[("op", "add-field"), ("table", "renewals"), ("source", "cr7a1_x"), ("target", "nowhere")]).await;
        assert!(wrong.text.contains("Not saved") && wrong.text.contains("has no column") && wrong.text.contains("nowhere"), "{}", wrong.text);
        let unconfirmed = page(&fx.app, Method::POST, &tables, Some(&admin), &[("op", "remove"), ("table", "renewals"), ("target", "seats")]).await;
        assert!(unconfirmed.text.contains("Not saved") && unconfirmed.text.contains("to remove"), "{}", unconfirmed.text);
        let removed = page(&fx.app, Method::POST, &tables, Some(&admin), &[("op", "remove"), ("table", "renewals"), ("target", ""), ("confirm", "on")]).await;
        assert!(removed.text.contains("Mappings saved") && !removed.text.contains("cr7a1_renewal"), "{}", removed.text);
        let preview = page(&fx.app, Method::POST, &format!("/connections/{id}/preview"), Some(&admin), &[]).await;
        assert!(preview.text.contains("Import preview") && preview.text.contains("Decided by"), "{}", preview.text);
        // An account with a one-time password shown once.
        let made = page(&fx.app, Method::POST, "/admin/accounts", Some(&admin), &[("username", "newagent"), ("role", "agent")]).await;
        assert!(made.text.contains("shown-once"), "{}", made.text);
        let again = page(&fx.app, Method::GET, "/admin/accounts", Some(&admin), &[]).await;
        assert!(!again.text.contains("shown-once"));
        // Static assets are embedded.
        let css = page(&fx.app, Method::GET, "/static/style.css", None, &[]).await;
        assert_eq!(css.status, StatusCode::OK);
        assert_eq!(css.headers.get(header::CONTENT_TYPE).unwrap(), "text/css; charset=utf-8");
        let missing = page(&fx.app, Method::GET, "/nowhere", Some(&admin), &[]).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        let missing_api = api(&fx.app, Method::GET, "/api/v1/nowhere", Some(&admin.token), None).await;
        assert_eq!(missing_api.json()["error"]["code"], "not_found");
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn sign_in_with_microsoft_authorises_a_delegated_connection(db: &TestDb) {
        let fx = fixture(db).await;
        fx.emu.set_auto_approve(true);
        let admin = fx.who("admin").clone();
        let (client_id, secret) = app_secret(&fx.emu);
        let summary = fx.emu.summary();
        let created = api(&fx.app, Method::POST, "/api/v1/connections", Some(&admin.token), Some(json!({
            "name": "delegated", "tenant_id": summary.tenants[1].id, "client_id": client_id, "client_secret": secret,
            "auth": "delegated", "authority_host": summary.authority_host, "graph_url": summary.graph_url, "customer": "Contoso",
        }))).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        let id = created.json()["id"].as_i64().unwrap();
        assert_eq!(created.json()["credential"]["kind"], "delegated");
        let details = page(&fx.app, Method::GET, &format!("/connections/{id}"), Some(&admin), &[]).await;
        assert!(details.text.contains("Sign in with Microsoft"), "{}", details.text);
        // The redirect URIs to register (Microsoft refuses others with AADSTS50011).
        assert!(details.text.contains("Redirect URIs to register"), "{}", details.text);
        assert!(details.text.contains("/auth/microsoft/callback (platform Web)"), "{}", details.text);
        // The button sends the browser to Microsoft's authorize endpoint, returning to our callback.
        let req = Request::builder().method(Method::POST).uri(format!("/connections/{id}/authorize"))
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::COOKIE, &admin.cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={}", admin.csrf))).unwrap();
        let go = send(&fx.app, req).await;
        assert_eq!(go.status, StatusCode::SEE_OTHER, "{}", go.text);
        let authorize = go.headers.get(header::LOCATION).unwrap().to_str().unwrap().to_owned();
        let url = url::Url::parse(&authorize).unwrap();
        let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(query["redirect_uri"], "http://127.0.0.1:8080/auth/microsoft/callback");
        // The emulator signs in at once and redirects back with a code.
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let back = http.get(&authorize).send().await.unwrap();
        assert_eq!(back.status(), 302);
        let back = url::Url::parse(back.headers()["location"].to_str().unwrap()).unwrap();
        assert_eq!(back.path(), "/auth/microsoft/callback");
        let callback = page(&fx.app, Method::GET, &format!("/auth/microsoft/callback?{}", back.query().unwrap()), Some(&admin), &[]).await;
        assert_eq!(callback.status, StatusCode::OK, "{}", callback.text);
        assert!(callback.text.contains("the connection is authorised"), "{}", callback.text);
        // Now it works, and the refresh token is not shown anywhere.
        let test = api(&fx.app, Method::POST, &format!("/api/v1/connections/{id}/test"), Some(&admin.token), None).await;
        assert_eq!(test.json()["ok"], true, "{}", test.text);
        let again = page(&fx.app, Method::GET, &format!("/connections/{id}"), Some(&admin), &[]).await;
        assert!(!again.text.contains(&secret));
        // A code that does not belong to a pending sign-in is refused.
        let bogus = page(&fx.app, Method::GET, "/auth/microsoft/callback?code=x&state=nope", Some(&admin), &[]).await;
        assert!(bogus.status.is_client_error(), "{}", bogus.status);
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn schedules_and_the_check_through_the_api(db: &TestDb) {
        let fx = fixture(db).await;
        let token = fx.who("modifier").token.clone();
        let own = fx.own;
        let base = format!("/api/v1/connections/{own}/schedules");
        let added = api(&fx.app, Method::POST, &base, Some(&token), Some(json!({"every": "15m", "time_zone": "Europe/London", "window": "08:00-18:00"}))).await;
        assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
        let schedule = added.json()["schedule"].clone();
        assert_eq!(schedule["kind"], "interval");
        assert_eq!(schedule["spec"], "900");
        assert_eq!(schedule["window_start"], "08:00");
        let cron = api(&fx.app, Method::POST, &base, Some(&token), Some(json!({"cron": "0 */2 * * *"}))).await;
        assert_eq!(cron.status, StatusCode::CREATED, "{}", cron.text);
        for bad in [json!({"every": "15m", "cron": "0 * * * *"}), json!({"every": "soon"}), json!({"cron": "0 * * * *", "time_zone": "Mars/Olympus"}), json!({"every": "1h", "window": "late"})] {
            let refused = api(&fx.app, Method::POST, &base, Some(&token), Some(bad.clone())).await;
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bad}: {}", refused.text);
            assert_eq!(refused.json()["error"]["code"], "invalid_schedule", "{bad}");
        }
        let listed = api(&fx.app, Method::GET, &base, Some(&token), None).await.json();
        assert_eq!(listed["schedules"].as_array().unwrap().len(), 2);
        // Another connection's schedule cannot be removed through this one.
        let admin = fx.who("admin").token.clone();
        let theirs = api(&fx.app, Method::POST, &format!("/api/v1/connections/{}/schedules", fx.other), Some(&admin), Some(json!({"every": "1h"}))).await.json();
        let theirs = theirs["schedule"]["id"].as_i64().unwrap();
        let foreign = api(&fx.app, Method::DELETE, &format!("{base}/{theirs}"), Some(&token), None).await;
        assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.text);
        let id = schedule["id"].as_i64().unwrap();
        let removed = api(&fx.app, Method::DELETE, &format!("{base}/{id}"), Some(&token), None).await;
        assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
        let listed = api(&fx.app, Method::GET, &base, Some(&token), None).await.json();
        assert_eq!(listed["schedules"].as_array().unwrap().len(), 1);

        // Get latest: links that start from now, taken under the current settings.
        let latest = api(&fx.app, Method::POST, &format!("/api/v1/connections/{own}/cursors/latest"), Some(&token), None).await;
        assert_eq!(latest.status, StatusCode::OK, "{}", latest.text);
        assert_eq!(latest.json()["links_current"], true, "{}", latest.text);

        // The configuration check: one point per line with name, ok, detail and remedy.
        let check = api(&fx.app, Method::GET, &format!("/api/v1/connections/{own}/check"), Some(&fx.who("reader").token), None).await;
        assert_eq!(check.status, StatusCode::OK, "{}", check.text);
        let report = check.json();
        assert_eq!(report["ok"], true, "{report}");
        let points = report["points"].as_array().unwrap();
        assert!(points.iter().any(|p| p["name"] == "token" && p["ok"] == true), "{report}");
        for p in points {
            assert!(p["name"].is_string() && p["detail"].is_string() && p["remedy"].is_string(), "{p}");
        }
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn connection_settings_are_checked_and_shown_from_the_connectors_description(db: &TestDb) {
        let fx = fixture(db).await;
        let admin = fx.who("admin").clone();
        let (client_id, secret) = app_secret(&fx.emu);
        let summary = fx.emu.summary();
        // Every problem is named once, by the setting's label; nothing is created.
        let refused = api(&fx.app, Method::POST, "/api/v1/connections", Some(&admin.token), Some(json!({
            "name": "bad", "tenant_id": "not a tenant", "client_id": "app", "client_secret": "s",
            "graph_url": "ftp://graph", "colour": "blue",
        }))).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
        let error = &refused.json()["error"];
        assert_eq!(error["code"], "invalid_input");
        let message = error["message"].as_str().unwrap();
        for expected in ["Tenant id:", "Client id: \"app\" is not a GUID", "Graph URL:", "unknown setting \"colour\""] {
            assert!(message.contains(expected), "{expected:?} missing from {message}");
        }
        let unknown_kind = api(&fx.app, Method::POST, "/api/v1/connections", Some(&admin.token), Some(json!({
            "name": "x", "kind": "teletype",
        }))).await;
        assert_eq!(unknown_kind.status, StatusCode::BAD_REQUEST, "{}", unknown_kind.text);
        assert!(unknown_kind.text.contains("no connector for \\\"teletype\\\""), "{}", unknown_kind.text);
        let listed = api(&fx.app, Method::GET, "/api/v1/connections", Some(&admin.token), None).await;
        assert!(!listed.text.contains("\"bad\""), "a refused connection was created: {}", listed.text);

        // A tenant another connection reads (of another customer, or of the same) is a clear
        // refusal, not a database error.
        let owned = api(&fx.app, Method::POST, "/api/v1/connections", Some(&admin.token), Some(json!({
            "name": "elsewhere", "tenant_id": summary.tenants[0].id, "client_id": client_id,
            "client_secret": secret, "customer": "Fabrikam",
        }))).await;
        assert_eq!(owned.status, StatusCode::CONFLICT, "{}", owned.text);
        assert!(owned.text.contains("is already read by connection \\\"own\\\""), "{}", owned.text);
        let twice = api(&fx.app, Method::POST, "/api/v1/connections", Some(&admin.token), Some(json!({
            "name": "twice", "tenant_id": summary.tenants[0].id, "client_id": client_id,
            "client_secret": secret, "customer": "Contoso",
        }))).await;
        assert_eq!(twice.status, StatusCode::CONFLICT, "{}", twice.text);
        assert!(twice.text.contains("a tenant is read by one connection"), "{}", twice.text);

        // A delegated connection keeps signing in when its app's secret is replaced.
        let created = api(&fx.app, Method::POST, "/api/v1/connections", Some(&admin.token), Some(json!({
            "name": "delegated", "tenant_id": summary.tenants[1].id, "client_id": client_id, "customer": "Contoso",
            "auth": "delegated", "authority_host": summary.authority_host, "graph_url": summary.graph_url,
        }))).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        assert_eq!(created.json()["credential"]["authorised"], false);
        let id = created.json()["id"].as_i64().unwrap();
        let path = format!("/api/v1/connections/{id}");
        // A connection people create starts with the guide's opt-in defaults: no delta queries,
        // records linked by the Azure object id only, nobody deactivated for being absent.
        assert_eq!(created.json()["settings"]["delta"], false, "{}", created.text);
        let mappings = api(&fx.app, Method::GET, &format!("{path}/mappings"), Some(&admin.token), None).await;
        assert_eq!(mappings.json()["imports"]["match_order"], json!([]), "{}", mappings.text);
        assert_eq!(mappings.json()["imports"]["deactivate_not_found"], false, "{}", mappings.text);
        let edited = api(&fx.app, Method::PATCH, &path, Some(&admin.token), Some(json!({ "client_secret": secret }))).await;
        assert_eq!(edited.status, StatusCode::OK, "{}", edited.text);
        assert_eq!(edited.json()["credential"]["kind"], "delegated");
        // Choosing a method whose credential is missing is refused, and changes nothing.
        let no_cert = api(&fx.app, Method::PATCH, &path, Some(&admin.token), Some(json!({ "auth": "certificate" }))).await;
        assert_eq!(no_cert.status, StatusCode::BAD_REQUEST, "{}", no_cert.text);
        assert!(no_cert.text.contains("Certificate and private key (PEM): required"), "{}", no_cert.text);
        let now = api(&fx.app, Method::GET, &path, Some(&admin.token), None).await;
        assert_eq!(now.json()["credential"]["kind"], "delegated");

        // An exported file carries the method for reading, but importing it changes no credential.
        let own = format!("/api/v1/connections/{}", fx.own);
        let export = api(&fx.app, Method::GET, &format!("{own}/export"), Some(&admin.token), None).await;
        let mut file = export.json();
        assert_eq!(file["settings"]["auth"], "client_secret");
        assert!(!export.text.contains(&secret));
        file["settings"]["auth"] = json!("certificate");
        file["settings"]["sync_method"] = json!("mapped_fields_only");
        let imported = api(&fx.app, Method::POST, &format!("{own}/import"), Some(&admin.token), Some(file.clone())).await;
        assert_eq!(imported.status, StatusCode::OK, "{}", imported.text);
        assert_eq!(imported.json()["settings"]["auth"], "client_secret");
        assert_eq!(imported.json()["settings"]["sync_method"], "mapped_fields_only");
        // A bad setting in the file changes nothing, mappings included.
        file["settings"]["graph_url"] = json!("not a url");
        file["mapping"]["imports"]["deactivate_not_found"] = json!(false);
        let bad = api(&fx.app, Method::POST, &format!("{own}/import"), Some(&admin.token), Some(file)).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
        let mappings = api(&fx.app, Method::GET, &format!("{own}/mappings"), Some(&admin.token), None).await;
        assert_eq!(mappings.json()["imports"]["deactivate_not_found"], true);

        // The OpenAPI document describes each connector's settings.
        let doc = api(&fx.app, Method::GET, "/api/v1/openapi.json", None, None).await.json();
        let body = &doc["paths"]["/api/v1/connections"]["post"]["requestBody"]["content"]["application/json"]["schema"];
        let entra = body["oneOf"].as_array().unwrap().iter().find(|k| k["properties"]["kind"]["enum"][0] == "entra").unwrap();
        assert_eq!(entra["properties"]["client_id"]["format"], "uuid");
        assert_eq!(entra["properties"]["client_secret"]["writeOnly"], true);
        assert!(entra["required"].as_array().unwrap().contains(&json!("tenant_id")));

        // The form is built from the same description.
        let form = page(&fx.app, Method::GET, "/connections/new?kind=entra", Some(&admin), &[]).await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.text);
        for label in [
            "Authentication",
            "Client secret value",
            "Identity platform host",
            "Use delta queries",
            "When the sync method changes",
        ] {
            assert!(form.text.contains(label), "{label:?} missing from the form");
        }
        let no_such = page(&fx.app, Method::GET, "/connections/new?kind=teletype", Some(&admin), &[]).await;
        assert_eq!(no_such.status, StatusCode::NOT_FOUND);
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn endpoints_are_part_of_the_credential(db: &TestDb) {
        let fx = fixture(db).await;
        let admin = fx.who("admin").clone();
        let modifier = fx.who("modifier").token.clone();
        let own = format!("/api/v1/connections/{}", fx.own);
        let summary = fx.emu.summary();
        // A host that is neither Microsoft's nor allowed by the instance is refused everywhere.
        for (who, body) in [
            (&admin.token, json!({ "authority_host": "https://attacker.example" })),
            (&admin.token, json!({ "graph_url": "http://graph.microsoft.com/v1.0" })),
        ] {
            let refused = api(&fx.app, Method::PATCH, &own, Some(who), Some(body.clone())).await;
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{body}: {}", refused.text);
        }
        let (client_id, secret) = app_secret(&fx.emu);
        let elsewhere = api(&fx.app, Method::POST, "/api/v1/connections", Some(&admin.token), Some(json!({
            "name": "elsewhere", "tenant_id": summary.tenants[1].id, "client_id": client_id, "client_secret": secret,
            "authority_host": "https://attacker.example", "customer": "Fabrikam",
        }))).await;
        assert_eq!(elsewhere.status, StatusCode::BAD_REQUEST, "{}", elsewhere.text);
        assert!(elsewhere.text.contains("attacker.example is not one of Microsoft's cloud endpoints"), "{}", elsewhere.text);
        // An agent with read and modify may not move the endpoints at all (even to a Microsoft host),
        // through the API or an imported file; nothing changes.
        let moved = api(&fx.app, Method::PATCH, &own, Some(&modifier), Some(json!({ "graph_url": "https://graph.microsoft.us/v1.0" }))).await;
        assert_eq!(moved.status, StatusCode::FORBIDDEN, "{}", moved.text);
        let mut file = api(&fx.app, Method::GET, &format!("{own}/export"), Some(&modifier), None).await.json();
        file["settings"]["authority_host"] = json!("https://login.microsoftonline.us");
        file["mapping"]["imports"]["deactivate_not_found"] = json!(false);
        let imported = api(&fx.app, Method::POST, &format!("{own}/import"), Some(&modifier), Some(file)).await;
        assert_eq!(imported.status, StatusCode::FORBIDDEN, "{}", imported.text);
        let mappings = api(&fx.app, Method::GET, &format!("{own}/mappings"), Some(&modifier), None).await;
        assert_eq!(mappings.json()["imports"]["deactivate_not_found"], true, "nothing of the file was applied");
        // The agent may still change what is not an endpoint, and give an endpoint unchanged.
        let same = api(&fx.app, Method::PATCH, &own, Some(&modifier), Some(json!({ "graph_url": summary.graph_url, "delta": false }))).await;
        assert_eq!(same.status, StatusCode::OK, "{}", same.text);
        // An administrator may move them: the stored secret is dropped and must be entered again.
        let before = api(&fx.app, Method::GET, &own, Some(&admin.token), None).await.json();
        assert!(before["credential"]["kind"] == "client_secret");
        let moved = api(&fx.app, Method::PATCH, &own, Some(&admin.token), Some(json!({ "graph_url": "https://graph.microsoft.us/v1.0" }))).await;
        assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
        let test = api(&fx.app, Method::POST, &format!("{own}/test"), Some(&admin.token), None).await.json();
        assert_eq!(test["ok"], false, "{test}");
        let mut tx = db.store.read().await.unwrap();
        let secret_left = deskbridge_source::ConnectionSecrets(fx.own).get(&mut tx, "client_secret").await.unwrap();
        tx.commit().await.unwrap();
        assert!(secret_left.is_none(), "the secret stayed with the old endpoints");
        // A configuration changed behind deskbridge's back is refused before anything is sent.
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let other = tx.connection(fx.other).await.unwrap().unwrap();
        let mut config = other.config.clone();
        config["authority_host"] = json!("https://attacker.example");
        tx.update_connection_config(fx.other, &config).await.unwrap();
        tx.commit().await.unwrap();
        let test = api(&fx.app, Method::POST, &format!("/api/v1/connections/{}/test", fx.other), Some(&admin.token), None).await.json();
        assert_eq!(test["ok"], false);
        assert!(test["error"]["message"].as_str().unwrap().contains("attacker.example is not one of Microsoft's"), "{test}");
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn a_mapping_never_targets_another_customers_sites(db: &TestDb) {
        let fx = fixture(db).await;
        let admin = fx.who("admin").clone();
        let own = format!("/api/v1/connections/{}", fx.own);
        // Another customer, with its main site.
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let fabrikam = tx
            .insert(deskbridge_store::Entity::Customer, None, &[("name".to_owned(), json!("Fabrikam"))].into_iter().collect())
            .await
            .unwrap();
        let fabrikam_site = tx.main_site(fabrikam).await.unwrap().unwrap();
        tx.commit().await.unwrap();
        // The site picker offers only this connection's customer's sites.
        let picker = page(&fx.app, Method::GET, &format!("/connections/{}/mappings/sites", fx.own), Some(&admin), &[]).await;
        assert!(picker.text.contains("Main — Contoso") && !picker.text.contains("— Fabrikam"), "{}", picker.text);
        let mut mapping = api(&fx.app, Method::GET, &format!("{own}/mappings"), Some(&admin.token), None).await.json();
        let good = mapping.clone();
        mapping["site_mappings"][0]["target"] = json!({ "kind": "existing_site", "site_id": fabrikam_site.0 });
        let refused = api(&fx.app, Method::PUT, &format!("{own}/mappings"), Some(&admin.token), Some(mapping.clone())).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.text);
        assert!(refused.text.contains("of the customer \\\"Fabrikam\\\", not of this connection's customer (\\\"Contoso\\\")"), "{}", refused.text);
        let now = api(&fx.app, Method::GET, &format!("{own}/mappings"), Some(&admin.token), None).await.json();
        assert_eq!(now, good, "nothing was saved");
        // Matching among every customer's sites is refused for the same reason.
        mapping["site_mappings"][0]["target"] = json!({
            "kind": "match_site_field", "customer_id": null, "site_field": "name", "user_field": "department",
            "unmatched": { "action": "do_not_import" },
        });
        let every = api(&fx.app, Method::PUT, &format!("{own}/mappings"), Some(&admin.token), Some(mapping.clone())).await;
        assert_eq!(every.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", every.text);
        assert!(every.text.contains("matches among every customer's sites"), "{}", every.text);
        // Written into the database behind deskbridge's back, it fails the run before anything moves.
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let connection = tx.connection(fx.own).await.unwrap().unwrap();
        let mut config = connection.config.clone();
        config["mapping"]["site_mappings"][0]["target"] = json!({ "kind": "existing_site", "site_id": fabrikam_site.0 });
        tx.update_connection_config(fx.own, &config).await.unwrap();
        tx.commit().await.unwrap();
        let test = api(&fx.app, Method::POST, &format!("{own}/test"), Some(&admin.token), None).await.json();
        assert_eq!(test["ok"], false, "{test}");
        assert!(test["error"]["message"].as_str().unwrap().contains("Fabrikam"), "{test}");
        let mut tx = db.store.read().await.unwrap();
        let users = tx.list(deskbridge_store::Entity::User, None, 1000).await.unwrap();
        tx.commit().await.unwrap();
        assert!(users.iter().all(|u| u.get("site_id") != &json!(fabrikam_site.0)), "a user was moved");
        fx.emu.shutdown().await;
    }
}

/// Gives `connection` a delta link, as a finished delta-enabled sync leaves it.
async fn with_delta_link(db: &TestDb, connection: ConnectionId) {
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let tenant = tx.connection(connection).await.unwrap().unwrap().config["tenant_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = deskbridge_store::CursorKey {
        connection_id: connection,
        tenant_id: tenant,
        stream: "users/delta".into(),
    };
    tx.set_cursor(&key, "https://graph.example/delta?$deltatoken=x")
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn cursor_count(db: &TestDb, connection: ConnectionId) -> usize {
    let mut tx = db.store.read().await.unwrap();
    let n = tx.cursors_of(connection).await.unwrap().len();
    tx.commit().await.unwrap();
    n
}

store_test! {
    async fn a_mapping_change_that_restarts_the_delta_links_is_confirmed_first(db: &TestDb) {
        let fx = fixture(db).await;
        with_delta_link(db, fx.own).await;
        let admin = fx.who("admin");
        let path = format!("/api/v1/connections/{}/mappings", fx.own);
        let mut mapping = api(&fx.app, Method::GET, &path, Some(&admin.token), None).await.json();
        mapping["user_fields"].as_array_mut().unwrap().retain(|f| f["target"] != "department");

        // The API: refused without an answer, nothing saved; saved with one.
        let refused = api(&fx.app, Method::PUT, &path, Some(&admin.token), Some(mapping.clone())).await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
        assert!(refused.text.contains("delta_links=latest"), "{}", refused.text);
        let unchanged = api(&fx.app, Method::GET, &path, Some(&admin.token), None).await.json();
        assert!(unchanged["user_fields"].as_array().unwrap().iter().any(|f| f["target"] == "department"));
        let bad = api(&fx.app, Method::PUT, &format!("{path}?delta_links=soon"), Some(&admin.token), Some(mapping.clone())).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
        let saved = api(&fx.app, Method::PUT, &format!("{path}?delta_links=clear"), Some(&admin.token), Some(mapping)).await;
        assert_eq!(saved.status, StatusCode::OK, "{}", saved.text);
        assert_eq!(cursor_count(db, fx.own).await, 0, "clear: the next run reads everything");

        // The form: a warning page that saves nothing, then the confirmation that does.
        with_delta_link(db, fx.own).await;
        let form_path = format!("/connections/{}/mappings/fields", fx.own);
        let fields = json!([
            {"source": {"property": "displayName"}, "target": "name"},
            {"source": {"property": "mail"}, "target": "email"},
            {"source": {"property": "userPrincipalName"}, "target": "network_login"},
        ])
        .to_string();
        let patch = json!({"user_fields": serde_json::from_str::<Value>(&fields).unwrap()}).to_string();
        let warned = page(&fx.app, Method::POST, &form_path, Some(admin), &[("op", "replace"), ("json", &patch)]).await;
        assert_eq!(warned.status, StatusCode::OK);
        assert!(warned.text.contains("Confirm: the delta queries restart"), "{}", warned.text);
        assert!(warned.text.contains("Take the latest delta"));
        let still = api(&fx.app, Method::GET, &path, Some(&admin.token), None).await.json();
        assert!(still["user_fields"].as_array().unwrap().len() > 3, "nothing saved before the confirmation");
        let mut pending = still.clone();
        pending["user_fields"] = serde_json::from_str(&fields).unwrap();
        let pending = pending.to_string();
        let confirmed = page(
            &fx.app,
            Method::POST,
            &form_path,
            Some(admin),
            &[("op", "confirm"), ("pending", &pending), ("delta_links", "clear")],
        )
        .await;
        assert!(confirmed.text.contains("Mappings saved."), "{}", confirmed.text);
        let now = api(&fx.app, Method::GET, &path, Some(&admin.token), None).await.json();
        assert_eq!(now["user_fields"].as_array().unwrap().len(), 3);
        assert_eq!(cursor_count(db, fx.own).await, 0);
    }
}

store_test! {
    async fn ticket_followers_need_the_desk_setting_and_the_connection(db: &TestDb) {
        let fx = fixture(db).await;
        let admin = fx.who("admin");
        let reader = fx.who("reader");
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let fields = [("summary".to_owned(), json!("VPN down"))].into_iter().collect();
        let ticket = tx.insert(deskbridge_store::Entity::Ticket, None, &fields).await.unwrap();
        tx.commit().await.unwrap();
        let follow = format!("/api/v1/tickets/{ticket}/followers");

        // Only an administrator changes the setting; the default connection must exist.
        let settings = json!({"enabled": true, "default_connection": fx.other.0});
        let denied = api(&fx.app, Method::PUT, "/api/v1/settings/followers", Some(&reader.token), Some(settings.clone())).await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
        let missing = api(&fx.app, Method::PUT, "/api/v1/settings/followers", Some(&admin.token), Some(json!({"enabled": true, "default_connection": 999_999}))).await;
        assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{}", missing.text);
        let saved = api(&fx.app, Method::PUT, "/api/v1/settings/followers", Some(&admin.token), Some(settings)).await;
        assert_eq!(saved.status, StatusCode::OK, "{}", saved.text);
        let shown = api(&fx.app, Method::GET, "/api/v1/settings/followers", Some(&reader.token), None).await.json();
        assert_eq!(shown["enabled"], true);
        assert_eq!(shown["default_connection"]["name"], "other");

        // The reader is not granted the default connection: the group is not read for them.
        let body = json!({"group": "Newsletter"});
        let other = api(&fx.app, Method::POST, &follow, Some(&reader.token), Some(body.clone())).await;
        assert_eq!(other.status, StatusCode::FORBIDDEN, "{}", other.text);
        // Through their own connection, which has not allowed its groups as followers yet.
        let own = api(&fx.app, Method::POST, &follow, Some(&reader.token), Some(json!({"group": "Newsletter", "connection": fx.own.0}))).await;
        assert_eq!(own.status, StatusCode::CONFLICT, "{}", own.text);
        assert!(own.text.contains("does not allow"), "{}", own.text);

        // The settings page: an administrator's form.
        let settings_page = page(&fx.app, Method::GET, "/admin/settings", Some(admin), &[]).await;
        assert!(settings_page.text.contains("Allow groups to be added as ticket followers"));
        let own_id = fx.own.0.to_string();
        let posted = page(&fx.app, Method::POST, "/admin/settings", Some(admin), &[("enabled", "on"), ("default_connection", &own_id)]).await;
        assert!(posted.text.contains("Settings saved."), "{}", posted.text);
        let shown = api(&fx.app, Method::GET, "/api/v1/settings/followers", Some(&admin.token), None).await.json();
        assert_eq!(shown["default_connection"]["name"], "own");
    }
}

store_test! {
    async fn licences_are_managed_on_a_users_page_by_those_who_may_change_the_connection(db: &TestDb) {
        let fx = with_users(db).await;
        let registry = deskbridge_connectors::registry().with_endpoint_policy(EndpointPolicy::allowing(["127.0.0.1"]));
        let clock: SharedClock = Arc::new(SystemClock);
        let run = deskbridge_sync::sync(&db.store, &registry, "own", &deskbridge_sync::SyncOptions::default(), &clock)
            .await
            .unwrap();
        assert_eq!(run.status, "succeeded", "{run:?}");
        // A member with a usage location, and a licence of the tenant they do not hold.
        let (object_id, sku_id) = fx.emu.with_world(|w| {
            let t = &w.tenants[0];
            t.users
                .iter()
                .filter(|u| u.account_enabled && u.user_type == "Member" && u.usage_location.is_some())
                .find_map(|u| {
                    t.skus
                        .iter()
                        .filter(|s| s.applies_to == "User" && !u.assigned_licenses.iter().any(|l| l.sku_id == s.sku_id))
                        .find(|s| t.consumed_units(&s.sku_id) < usize::try_from(s.prepaid_enabled).unwrap())
                        .map(|s| (u.id.clone(), s.sku_id.clone()))
                })
                .unwrap()
        });
        let mut tx = db.store.read().await.unwrap();
        let user = tx
            .id_by_source(deskbridge_store::Entity::User, &deskbridge_store::SourceKey::new(fx.own, object_id.clone()))
            .await
            .unwrap()
            .unwrap()
            .0;
        let licence = tx
            .find_by_text(deskbridge_store::Entity::Licence, "sku_id", &sku_id)
            .await
            .unwrap()[0]
            .id
            .0;
        tx.commit().await.unwrap();
        let (admin, reader, modifier, creator) = (fx.who("admin"), fx.who("reader"), fx.who("modifier"), fx.who("creator"));
        let path = format!("/api/v1/users/{user}/licences");
        let body = Some(json!({ "licence_id": licence }));

        // The option is off: refused with how to turn it on; nothing sent.
        let off = api(&fx.app, Method::POST, &path, Some(&modifier.token), body.clone()).await;
        assert_eq!(off.status, StatusCode::CONFLICT, "{}", off.text);
        assert!(off.text.contains("Manage licences from the desk"), "{}", off.text);
        let patched = api(&fx.app, Method::PATCH, &format!("/api/v1/connections/{}", fx.own), Some(&admin.token), Some(json!({ "manage_licences": true }))).await;
        assert!(patched.status.is_success(), "{}", patched.text);

        // Reading the connection is not changing its users' licences; no grant at all is not either.
        for who in [reader, creator] {
            let refused = api(&fx.app, Method::POST, &path, Some(&who.token), body.clone()).await;
            assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}: {}", who.name, refused.text);
        }
        // Modify on "own" does not reach a user of "other".
        let stranger = api(&fx.app, Method::POST, &format!("/api/v1/users/{}/licences", fx.other_user), Some(&modifier.token), body.clone()).await;
        assert_eq!(stranger.status, StatusCode::FORBIDDEN, "{}", stranger.text);
        // Bad input.
        let unknown = api(&fx.app, Method::POST, &path, Some(&modifier.token), Some(json!({ "licence_id": 999_999 }))).await;
        assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.text);
        let shapeless = api(&fx.app, Method::POST, &path, Some(&modifier.token), Some(json!({ "licence": "E5" }))).await;
        assert_eq!(shapeless.status, StatusCode::BAD_REQUEST, "{}", shapeless.text);

        let assigned = api(&fx.app, Method::POST, &path, Some(&modifier.token), body.clone()).await;
        assert_eq!(assigned.status, StatusCode::OK, "{}", assigned.text);
        assert_eq!(assigned.json()["change"]["status"], "applied", "{}", assigned.text);
        assert_eq!(assigned.json()["change"]["requested_by"], "modifier");
        let held = fx.emu.with_world(|w| {
            w.tenants[0].users.iter().find(|u| u.id == object_id).unwrap().assigned_licenses.iter().any(|l| l.sku_id == sku_id)
        });
        assert!(held, "Entra has it");
        let again = api(&fx.app, Method::POST, &path, Some(&modifier.token), body.clone()).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.text);
        assert!(again.json()["change"].is_null(), "nothing sent twice: {}", again.text);

        // Readers see the licences and the journal, without the forms.
        let listing = api(&fx.app, Method::GET, &path, Some(&reader.token), None).await;
        assert_eq!(listing.status, StatusCode::OK, "{}", listing.text);
        let listing = listing.json();
        assert!(listing["licences"].as_array().unwrap().iter().any(|l| l["id"] == licence), "{listing}");
        assert_eq!(listing["changes"][0]["action"], "assign");
        assert_eq!(listing["manage_licences"], true);
        let for_reader = page(&fx.app, Method::GET, &format!("/users/{user}"), Some(reader), &[]).await;
        assert_eq!(for_reader.status, StatusCode::OK, "{}", for_reader.text);
        assert!(for_reader.text.contains("Licence changes") && !for_reader.text.contains("Remove licence"), "{}", for_reader.text);
        let for_modifier = page(&fx.app, Method::GET, &format!("/users/{user}"), Some(modifier), &[]).await;
        assert!(for_modifier.text.contains("Remove licence"), "{}", for_modifier.text);
        assert!(for_modifier.text.contains(" free of "), "units shown: {}", for_modifier.text);
        // The users listing links to the page.
        let users = page(&fx.app, Method::GET, &format!("/connections/{}/directory/users", fx.own), Some(modifier), &[]).await;
        assert!(users.text.contains(&format!("href=\"/users/{user}\"")), "{}", users.text);

        // Removing from the page needs the tick box; then it goes to Entra.
        let remove = format!("/users/{user}/licences/remove");
        let licence_text = licence.to_string();
        let unconfirmed = page(&fx.app, Method::POST, &remove, Some(modifier), &[("licence_id", &licence_text)]).await;
        assert!(unconfirmed.text.contains("Tick the box"), "{}", unconfirmed.text);
        let removed = page(&fx.app, Method::POST, &remove, Some(modifier), &[("licence_id", &licence_text), ("confirm", "on")]).await;
        assert_eq!(removed.status, StatusCode::OK, "{}", removed.text);
        assert!(removed.text.contains("removed from"), "{}", removed.text);
        assert!(removed.text.contains("Assign licence"), "the licence is offered again: {}", removed.text);
        let held = fx.emu.with_world(|w| {
            w.tenants[0].users.iter().find(|u| u.id == object_id).unwrap().assigned_licenses.iter().any(|l| l.sku_id == sku_id)
        });
        assert!(!held, "Entra no longer has it");
        let gone = api(&fx.app, Method::DELETE, &format!("{path}/{licence}"), Some(&modifier.token), None).await;
        assert_eq!(gone.status, StatusCode::OK, "{}", gone.text);
        assert!(gone.json()["change"].is_null(), "{}", gone.text);
        fx.emu.shutdown().await;
    }
}
