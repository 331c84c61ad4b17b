//! The sign-in limits, `next`, password changes and API tokens, oversized bodies and the route
//! table's access rules (issue 20, "medium and low"), on SQLite and PostgreSQL. Time moves on the
//! store's test clock, never on the wall clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use deskbridge_connector_entra::{NewCredential, NewEntraConnection, add_entra_connection};
use deskbridge_core::{ConnectionId, SharedClock};
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use deskbridge_store::{NewAccount, Role, WriteContext};
use deskbridge_testkit::{TestDb, store_test};
use deskbridge_web::access::ENDPOINTS;
use deskbridge_web::{AppState, auth, router};
use jiff::SignedDuration;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const PASSWORD: &str = "correct horse battery";

#[derive(Clone)]
struct Person {
    id: i64,
    token: String,
    cookie: String,
    csrf: String,
}

/// An account with a password, an API token and a session.
async fn person(db: &TestDb, name: &str, role: Role) -> Person {
    let token = format!("{}{}", auth::API_TOKEN_PREFIX, auth::random_token(32));
    let session = auth::random_token(32);
    let csrf = auth::random_token(32);
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let account = tx
        .create_account(&NewAccount {
            username: name.into(),
            display_name: name.into(),
            password_hash: auth::hash_password(PASSWORD).unwrap(),
            role,
            can_configure_connections: false,
            must_change_password: false,
        })
        .await
        .unwrap();
    tx.create_api_token(account.id, "script", &auth::token_hash(&token), None)
        .await
        .unwrap();
    let expires = db.store.now() + SignedDuration::from_hours(24 * 365);
    tx.create_session(account.id, &auth::token_hash(&session), &csrf, expires)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    Person {
        id: account.id,
        token,
        cookie: format!("{}={session}", auth::SESSION_COOKIE),
        csrf,
    }
}

/// The application on the test's clock (so sign-in blocks end when the test says).
fn app(db: &TestDb, trust_forwarded_for: bool) -> Router {
    let mut state = AppState::new(
        db.store.clone(),
        deskbridge_connectors::registry(),
        db.clock.clone() as SharedClock,
    );
    state.trust_forwarded_for = trust_forwarded_for;
    router(state)
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

    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .map_or("", |v| v.to_str().unwrap())
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
    send(app, req.unwrap()).await
}

async fn page(app: &Router, method: Method, path: &str, who: &Person, form: &[(&str, &str)]) -> Reply {
    let req = Request::builder()
        .method(method.clone())
        .uri(path)
        .header(header::COOKIE, &who.cookie);
    let req = if method == Method::POST {
        let mut pairs = form.to_vec();
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

/// Where a sign-in comes from.
#[derive(Clone, Copy, Default)]
struct Origin<'a> {
    peer: Option<&'a str>,
    forwarded_for: Option<&'a str>,
}

/// Signs in through the form (fetching it first for its double-submit token).
async fn sign_in_as(app: &Router, username: &str, password: &str, next: &str, from: Origin<'_>) -> Reply {
    let form = send(app, Request::builder().uri("/login").body(Body::empty()).unwrap()).await;
    let set = form.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
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
            ("next", next),
        ])
        .finish();
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/login")
        .header(
            header::COOKIE,
            format!("{}={login_csrf}", auth::LOGIN_CSRF_COOKIE),
        )
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(f) = from.forwarded_for {
        req = req.header("x-forwarded-for", f);
    }
    let mut req = req.body(Body::from(body)).unwrap();
    if let Some(peer) = from.peer {
        let addr: SocketAddr = format!("{peer}:40000").parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
    }
    send(app, req).await
}

async fn sign_in(app: &Router, username: &str, password: &str) -> Reply {
    sign_in_as(app, username, password, "/connections", Origin::default()).await
}

store_test! {
    async fn failed_sign_ins_lock_an_account_until_the_wait_ends_or_an_administrator_unlocks_it(db: &TestDb) {
        let app = app(db, false);
        let admin = person(db, "admin", Role::Administrator).await;
        person(db, "ann", Role::Agent).await;
        for _ in 0..4 {
            let wrong = sign_in(&app, "ann", "not the password").await;
            assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
            assert!(wrong.text.contains("Wrong username or password."), "{}", wrong.text);
        }
        // The fifth failure in a row locks the account, and says so.
        let fifth = sign_in(&app, "ann", "not the password").await;
        assert_eq!(fifth.status, StatusCode::TOO_MANY_REQUESTS, "{}", fifth.text);
        assert!(fifth.text.contains("try again in 1 minute, or ask an administrator to unlock the account"), "{}", fifth.text);
        assert_eq!(fifth.headers.get(header::RETRY_AFTER).unwrap(), "60");
        // While locked even the right password is refused, without checking it.
        let checks = auth::password_checks();
        let locked = sign_in(&app, "ann", PASSWORD).await;
        assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(locked.text.contains("Too many failed sign-ins for this account"), "{}", locked.text);
        assert_eq!(auth::password_checks(), checks, "a blocked sign-in runs no argon2");
        // Administrators see the lock, and lift it.
        let listed = api(&app, Method::GET, "/api/v1/accounts", &admin.token, None).await;
        let ann = listed.json()["accounts"].as_array().unwrap().iter().find(|a| a["username"] == "ann").unwrap().clone();
        assert_eq!(ann["failed_sign_ins"], 5);
        assert!(ann["locked_until"].is_string(), "{ann}");
        let accounts_page = page(&app, Method::GET, "/admin/accounts", &admin, &[]).await;
        assert!(accounts_page.text.contains("Unlock ann") && accounts_page.text.contains("locked until"), "{}", accounts_page.text);
        let ann_id = ann["id"].as_i64().unwrap();
        let unlocked = api(&app, Method::POST, &format!("/api/v1/accounts/{ann_id}/unlock"), &admin.token, None).await;
        assert_eq!(unlocked.status, StatusCode::OK, "{}", unlocked.text);
        assert_eq!(unlocked.json()["unlocked"], true);
        assert!(unlocked.json()["account"]["locked_until"].is_null());
        assert_eq!(sign_in(&app, "ann", PASSWORD).await.status, StatusCode::SEE_OTHER);
        // Locked again: the wait doubles, and ends by itself.
        for _ in 0..5 {
            sign_in(&app, "ann", "not the password").await;
        }
        // Attempts while locked are refused and not counted; the next failure after the wait
        // locks for twice as long.
        assert_eq!(sign_in(&app, "ann", "not the password").await.status, StatusCode::TOO_MANY_REQUESTS);
        db.clock.advance(SignedDuration::from_secs(61));
        let sixth = sign_in(&app, "ann", "not the password").await;
        assert_eq!(sixth.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(sixth.text.contains("Wrong username or password. Too many failed sign-ins"), "{}", sixth.text);
        let again = sign_in(&app, "ann", PASSWORD).await;
        assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(again.text.contains("try again in 2 minutes"), "{}", again.text);
        db.clock.advance(SignedDuration::from_secs(121));
        assert_eq!(sign_in(&app, "ann", PASSWORD).await.status, StatusCode::SEE_OTHER, "the wait is over");
        // The UI's unlock button does the same as the API.
        for _ in 0..5 {
            sign_in(&app, "ann", "not the password").await;
        }
        assert_eq!(sign_in(&app, "ann", PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);
        let ui = page(&app, Method::POST, "/admin/accounts", &admin, &[("action", "unlock"), ("account_id", &ann_id.to_string())]).await;
        assert_eq!(ui.status, StatusCode::OK, "{}", ui.text);
        assert!(ui.text.contains("ann is unlocked"), "{}", ui.text);
        assert_eq!(sign_in(&app, "ann", PASSWORD).await.status, StatusCode::SEE_OTHER);
        // An agent cannot unlock anyone.
        let agent = person(db, "bob", Role::Agent).await;
        let refused = api(&app, Method::POST, &format!("/api/v1/accounts/{ann_id}/unlock"), &agent.token, None).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
    }
}

store_test! {
    async fn an_unknown_username_costs_the_same_work_and_gets_the_same_answers(db: &TestDb) {
        let app = app(db, false);
        person(db, "ann", Role::Agent).await;
        for (who, password) in [("ann", "wrong password"), ("nobody", "wrong password")] {
            let before = auth::password_checks();
            let reply = sign_in(&app, who, password).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{who}");
            assert!(reply.text.contains("Wrong username or password."), "{who}");
            assert!(auth::password_checks() > before, "{who}: one argon2 verification");
        }
        // The dummy hash has the parameters of a real one.
        let real = auth::hash_password("x").unwrap();
        let params = |h: &str| h.rsplitn(3, '$').nth(2).unwrap().to_owned();
        assert_eq!(params(auth::unknown_user_hash()), params(&real));
        // An unknown username is locked like a known one, so the answers tell nothing apart.
        for _ in 0..4 {
            sign_in(&app, "nobody", "wrong password").await;
        }
        let locked = sign_in(&app, "nobody", "wrong password").await;
        assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(locked.text.contains("Too many failed sign-ins for this account"), "{}", locked.text);
    }
}

store_test! {
    async fn a_disabled_account_is_told_so_whatever_the_password_and_is_let_in_once_enabled(db: &TestDb) {
        let app = app(db, false);
        let admin = person(db, "admin", Role::Administrator).await;
        let ann = person(db, "ann", Role::Agent).await;
        assert_eq!(api(&app, Method::GET, "/api/v1/me", &ann.token, None).await.status, StatusCode::OK);
        // An agent cannot disable anyone.
        let refused = api(&app, Method::PATCH, &format!("/api/v1/accounts/{}", admin.id), &ann.token, Some(json!({"disabled": true}))).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        let disabled = api(&app, Method::PATCH, &format!("/api/v1/accounts/{}", ann.id), &admin.token, Some(json!({"disabled": true}))).await;
        assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.text);
        assert_eq!(disabled.json()["account"]["disabled"], true);
        // Its API token and its session stop working at once.
        let token = api(&app, Method::GET, "/api/v1/me", &ann.token, None).await;
        assert_eq!(token.status, StatusCode::UNAUTHORIZED);
        assert_eq!(page(&app, Method::GET, "/connections", &ann, &[]).await.status, StatusCode::SEE_OTHER, "to the sign-in page");
        // The same answer for the right and a wrong password, each after one argon2 check, and
        // never a lock (no answer rewards a right guess, so there is nothing to slow down).
        for password in [PASSWORD, "wrong password", PASSWORD, "wrong", "wrong", "wrong", "wrong"] {
            let before = auth::password_checks();
            let reply = sign_in(&app, "ann", password).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{password}: {}", reply.text);
            assert!(reply.text.contains("This account is disabled. Ask an administrator to enable it again."), "{}", reply.text);
            assert!(!reply.text.contains("Wrong username or password"), "{}", reply.text);
            assert!(auth::password_checks() > before, "one argon2 verification");
        }
        // Enabled again: the token works, and a sign-in too (and is recorded).
        let enabled = api(&app, Method::PATCH, &format!("/api/v1/accounts/{}", ann.id), &admin.token, Some(json!({"disabled": false}))).await;
        assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.text);
        assert_eq!(api(&app, Method::GET, "/api/v1/me", &ann.token, None).await.status, StatusCode::OK);
        assert_eq!(sign_in(&app, "ann", PASSWORD).await.status, StatusCode::SEE_OTHER);
        let listed = api(&app, Method::GET, "/api/v1/accounts", &admin.token, None).await;
        let row = listed.json()["accounts"].as_array().unwrap().iter().find(|a| a["username"] == "ann").unwrap().clone();
        assert_eq!(row["last_sign_in_at"], "2026-11-23T10:00:00.000000Z", "{row}");
        // No one disables (or demotes) themselves, and the last enabled administrator stays so.
        let own = api(&app, Method::PATCH, &format!("/api/v1/accounts/{}", admin.id), &admin.token, Some(json!({"disabled": true}))).await;
        assert_eq!(own.status, StatusCode::CONFLICT, "{}", own.text);
        let last = auth::change_account(&db.store, admin.id, auth::AccountChange { disabled: Some(true), ..Default::default() }).await.unwrap_err();
        assert!(last.message.contains("\"admin\" is the last enabled administrator; it cannot be disabled"), "{}", last.message);
        let second = person(db, "root", Role::Administrator).await;
        let demoted = api(&app, Method::PATCH, &format!("/api/v1/accounts/{}", second.id), &admin.token, Some(json!({"role": "agent"}))).await;
        assert_eq!(demoted.status, StatusCode::OK, "another administrator remains: {}", demoted.text);
    }
}

store_test! {
    async fn a_password_reset_gives_a_one_time_password_and_ends_the_sessions(db: &TestDb) {
        let app = app(db, false);
        let admin = person(db, "admin", Role::Administrator).await;
        let ann = person(db, "ann", Role::Agent).await;
        // Administrators only.
        let refused = api(&app, Method::POST, &format!("/api/v1/accounts/{}/reset-password", admin.id), &ann.token, None).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        let own = api(&app, Method::POST, &format!("/api/v1/accounts/{}/reset-password", admin.id), &admin.token, None).await;
        assert_eq!(own.status, StatusCode::CONFLICT, "{}", own.text);
        assert!(own.json()["error"]["remedy"].as_str().unwrap().contains("/account"));
        let missing = api(&app, Method::POST, "/api/v1/accounts/999/reset-password", &admin.token, None).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        // A lock from failed sign-ins is lifted with it.
        for _ in 0..5 {
            sign_in(&app, "ann", "not the password").await;
        }
        let reset = api(&app, Method::POST, &format!("/api/v1/accounts/{}/reset-password", ann.id), &admin.token, None).await;
        assert_eq!(reset.status, StatusCode::OK, "{}", reset.text);
        let password = reset.json()["one_time_password"].as_str().unwrap().to_owned();
        assert!(password.len() >= 16);
        assert_eq!(reset.json()["account"]["must_change_password"], true);
        assert!(reset.json()["account"].get("password_hash").is_none());
        // The session ended; the token is refused until a new password is chosen.
        assert_eq!(page(&app, Method::GET, "/connections", &ann, &[]).await.status, StatusCode::SEE_OTHER);
        let token = api(&app, Method::GET, "/api/v1/connections", &ann.token, None).await;
        assert_eq!(token.status, StatusCode::FORBIDDEN);
        assert_eq!(token.json()["error"]["code"], "password_change_required");
        // The old password is gone; the one-time one leads to the password form.
        assert_eq!(sign_in(&app, "ann", PASSWORD).await.status, StatusCode::UNAUTHORIZED);
        let signed = sign_in(&app, "ann", &password).await;
        assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.text);
        assert_eq!(signed.location(), "/account");
        // It is shown once: the account list never carries it.
        let listed = api(&app, Method::GET, "/api/v1/accounts", &admin.token, None).await;
        assert!(!listed.text.contains(&password));
    }
}

store_test! {
    async fn the_accounts_page_resets_disables_and_enables_with_a_confirmation(db: &TestDb) {
        let app = app(db, false);
        let admin = person(db, "admin", Role::Administrator).await;
        let ann = person(db, "ann", Role::Agent).await;
        let ann_id = ann.id.to_string();
        let view = page(&app, Method::GET, "/admin/accounts", &admin, &[]).await;
        assert!(view.text.contains("Last signed in") && view.text.contains("never"), "{}", view.text);
        // One cannot pick oneself to reset or disable.
        for id in ["reset-password", "disable-account"] {
            let form = view.text.split(&format!("id=\"{id}\"")).nth(1).unwrap().split("</form>").next().unwrap();
            assert!(form.contains(">ann</option>") && !form.contains(">admin</option>"), "{form}");
        }
        let own = page(&app, Method::POST, "/admin/accounts", &admin, &[("action", "reset"), ("account_id", &admin.id.to_string()), ("confirm", "on")]).await;
        assert!(own.text.contains("Change your own password on your account page"), "{}", own.text);
        // Nothing happens without the tick.
        let unticked = page(&app, Method::POST, "/admin/accounts", &admin, &[("action", "reset"), ("account_id", &ann_id)]).await;
        assert!(unticked.text.contains("Tick the box to confirm the reset of ann"), "{}", unticked.text);
        assert_eq!(api(&app, Method::GET, "/api/v1/me", &ann.token, None).await.status, StatusCode::OK);
        let reset = page(&app, Method::POST, "/admin/accounts", &admin, &[("action", "reset"), ("account_id", &ann_id), ("confirm", "on")]).await;
        assert!(reset.text.contains("ann&#39;s password was reset") || reset.text.contains("ann's password was reset"), "{}", reset.text);
        let shown = reset.text.split("<code id=\"shown-once\">").nth(1).unwrap().split('<').next().unwrap();
        assert!(shown.len() >= 16, "{shown}");
        assert_eq!(sign_in(&app, "ann", shown).await.location(), "/account");
        // Disabling: confirmed, never oneself.
        let own = page(&app, Method::POST, "/admin/accounts", &admin, &[("action", "disable"), ("account_id", &admin.id.to_string()), ("confirm", "on")]).await;
        assert!(own.text.contains("You cannot disable your own account"), "{}", own.text);
        let unticked = page(&app, Method::POST, "/admin/accounts", &admin, &[("action", "disable"), ("account_id", &ann_id)]).await;
        assert!(unticked.text.contains("Tick the box to confirm disabling ann"), "{}", unticked.text);
        let disabled = page(&app, Method::POST, "/admin/accounts", &admin, &[("action", "disable"), ("account_id", &ann_id), ("confirm", "on")]).await;
        assert!(disabled.text.contains("ann is disabled"), "{}", disabled.text);
        assert!(sign_in(&app, "ann", shown).await.text.contains("This account is disabled"));
        let enabled = page(&app, Method::POST, "/admin/accounts", &admin, &[("action", "enable"), ("account_id", &ann_id)]).await;
        assert!(enabled.text.contains("ann is enabled"), "{}", enabled.text);
        assert_eq!(sign_in(&app, "ann", shown).await.status, StatusCode::SEE_OTHER);
        // An agent reaches none of it.
        let bob = person(db, "bob", Role::Agent).await;
        let agent = page(&app, Method::POST, "/admin/accounts", &bob, &[("action", "disable"), ("account_id", &admin.id.to_string()), ("confirm", "on")]).await;
        assert_eq!(agent.status, StatusCode::FORBIDDEN);
    }
}

store_test! {
    async fn failed_sign_ins_from_one_address_block_that_address(db: &TestDb) {
        let app = app(db, false);
        person(db, "ann", Role::Agent).await;
        let office = Origin { peer: Some("192.0.2.10"), forwarded_for: None };
        // Twenty failures spread over many usernames (none reaches the account limit).
        for i in 0..20 {
            let reply = sign_in_as(&app, &format!("guess{}", i % 5), "nope", "/connections", office).await;
            let expect = if i < 19 { StatusCode::UNAUTHORIZED } else { StatusCode::TOO_MANY_REQUESTS };
            assert_eq!(reply.status, expect, "attempt {i}: {}", reply.text);
        }
        let blocked = sign_in_as(&app, "ann", PASSWORD, "/connections", office).await;
        assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(blocked.text.contains("Too many failed sign-ins from your network address; try again in 1 minute"), "{}", blocked.text);
        // Another address is not affected.
        let home = Origin { peer: Some("198.51.100.3"), forwarded_for: None };
        assert_eq!(sign_in_as(&app, "ann", PASSWORD, "/connections", home).await.status, StatusCode::SEE_OTHER);
        // X-Forwarded-For is ignored unless deskbridge is told a proxy writes it...
        let spoofed = Origin { peer: Some("192.0.2.10"), forwarded_for: Some("203.0.113.9") };
        assert_eq!(sign_in_as(&app, "ann", PASSWORD, "/connections", spoofed).await.status, StatusCode::TOO_MANY_REQUESTS);
        // ...and then its last entry (the one the proxy added) is the client.
        let proxied = self::app(db, true);
        let via_proxy = Origin { peer: Some("127.0.0.1"), forwarded_for: Some("192.0.2.10, 203.0.113.9") };
        assert_eq!(sign_in_as(&proxied, "ann", PASSWORD, "/connections", via_proxy).await.status, StatusCode::SEE_OTHER);
        let from_office = Origin { peer: Some("127.0.0.1"), forwarded_for: Some("203.0.113.9, 192.0.2.10") };
        assert_eq!(sign_in_as(&proxied, "ann", PASSWORD, "/connections", from_office).await.status, StatusCode::TOO_MANY_REQUESTS);
        db.clock.advance(SignedDuration::from_secs(61));
        assert_eq!(sign_in_as(&app, "ann", PASSWORD, "/connections", office).await.status, StatusCode::SEE_OTHER);
    }
}

store_test! {
    async fn next_is_followed_only_to_a_relative_path_on_this_site(db: &TestDb) {
        let app = app(db, false);
        person(db, "ann", Role::Agent).await;
        for (next, to) in [
            ("/connections/7?tab=logs", "/connections/7?tab=logs"),
            ("//evil.example/", "/connections"),
            ("/\\evil.example", "/connections"),
            ("/\t/evil.example", "/connections"),
            ("https://evil.example/", "/connections"),
            ("/runs/1\r\nSet-Cookie: x=1", "/connections"),
        ] {
            let reply = sign_in_as(&app, "ann", PASSWORD, next, Origin::default()).await;
            assert_eq!(reply.status, StatusCode::SEE_OTHER, "{next:?}");
            assert_eq!(reply.location(), to, "{next:?}");
        }
        // The form carries only a safe `next` either.
        let form = send(&app, Request::builder().uri("/login?next=%2F%2Fevil.example").body(Body::empty()).unwrap()).await;
        assert!(!form.text.contains("evil.example"), "{}", form.text);
        assert!(form.text.contains("value=\"/connections\""), "{}", form.text);
    }
}

store_test! {
    async fn a_password_change_revokes_the_accounts_api_tokens_unless_told_to_keep_them(db: &TestDb) {
        let app = app(db, false);
        let ann = person(db, "ann", Role::Agent).await;
        assert_eq!(api(&app, Method::GET, "/api/v1/me", &ann.token, None).await.status, StatusCode::OK);
        // The form asks, and revoking is the default.
        let form = page(&app, Method::GET, "/account", &ann, &[]).await;
        assert!(form.text.contains("Revoke them (recommended)"), "{}", form.text);
        let changed = page(&app, Method::POST, "/account/password", &ann, &[
            ("current", PASSWORD), ("new", "a much longer password"), ("confirm", "a much longer password"),
        ]).await;
        assert!(changed.text.contains("1 API token(s) were revoked"), "{}", changed.text);
        let gone = api(&app, Method::GET, "/api/v1/me", &ann.token, None).await;
        assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
        assert_eq!(gone.json()["error"]["code"], "unauthenticated");
        // Keeping them is a choice.
        let kept = api(&app, Method::POST, "/api/v1/tokens", &person(db, "bob", Role::Agent).await.token, Some(json!({"name": "x"}))).await;
        assert_eq!(kept.status, StatusCode::CREATED);
        let bob = person(db, "carol", Role::Agent).await;
        let changed = page(&app, Method::POST, "/account/password", &bob, &[
            ("current", PASSWORD), ("new", "a much longer password"), ("confirm", "a much longer password"), ("tokens", "keep"),
        ]).await;
        assert!(changed.text.contains("Your password was changed"), "{}", changed.text);
        assert_eq!(api(&app, Method::GET, "/api/v1/me", &bob.token, None).await.status, StatusCode::OK);
    }
}

store_test! {
    async fn an_oversized_body_gets_the_apis_json_error(db: &TestDb) {
        let app = app(db, false);
        let admin = person(db, "admin", Role::Administrator).await;
        let big = "x".repeat(deskbridge_web::access::BODY_LIMIT + 1);
        for declared in [true, false] {
            let mut req = Request::builder()
                .method(Method::POST)
                .uri("/api/v1/tokens")
                .header(header::AUTHORIZATION, format!("Bearer {}", admin.token))
                .header(header::CONTENT_TYPE, "application/json");
            if declared {
                req = req.header(header::CONTENT_LENGTH, big.len());
            }
            let reply = send(&app, req.body(Body::from(big.clone())).unwrap()).await;
            assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "declared {declared}: {}", reply.text);
            assert_eq!(reply.json()["error"]["code"], "payload_too_large");
            assert!(reply.json()["error"]["message"].as_str().unwrap().contains("4 MiB"));
        }
        // A page answers with an error page of the same status.
        let req = Request::builder()
            .method(Method::POST)
            .uri("/account/tokens")
            .header(header::COOKIE, &admin.cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={}&name={big}", admin.csrf)))
            .unwrap();
        let reply = send(&app, req).await;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(reply.text.contains("payload_too_large"), "{}", reply.text);
        // The sign-in form too (it is public).
        let req = Request::builder().method(Method::POST).uri("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(big.clone())).unwrap();
        assert_eq!(send(&app, req).await.status, StatusCode::PAYLOAD_TOO_LARGE);
        // A body under the limit still goes through.
        let ok = api(&app, Method::POST, "/api/v1/tokens", &admin.token, Some(json!({"name": "small"}))).await;
        assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
    }
}

async fn emulator() -> Emulator {
    let world = World::generate(&GenerateOptions {
        seed: 5,
        tenants: 1,
        users_per_tenant: Some(3),
        ..GenerateOptions::default()
    })
    .unwrap();
    Emulator::start(EmulatorConfig::new(world)).await.unwrap()
}

async fn add_connection(db: &TestDb, emu: &Emulator) -> ConnectionId {
    let summary = emu.summary();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .unwrap();
    add_entra_connection(
        &db.store,
        &NewEntraConnection {
            name: "own".into(),
            tenant_id: summary.tenants[0].id.clone(),
            client_id: app.client_id.clone(),
            credential: NewCredential::ClientSecret {
                value: app.client_secret.clone().unwrap(),
                expires_at: None,
            },
            authority_host: Some(summary.authority_host.clone()),
            graph_url: Some(summary.graph_url.clone()),
            customer: Some("Contoso".into()),
            enabled_instances: None,
            last_sign_in: false,
        },
    )
    .await
    .unwrap()
    .id
}

store_test! {
    async fn the_apis_authorize_route_has_its_access_rule(db: &TestDb) {
        let emu = emulator().await;
        let app = app(db, false);
        let id = add_connection(db, &emu).await;
        let admin = person(db, "admin", Role::Administrator).await;
        let reader = person(db, "reader", Role::Agent).await;
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        tx.set_grant(reader.id, id, Some(deskbridge_store::Access::Read)).await.unwrap();
        tx.commit().await.unwrap();
        let path = format!("/api/v1/connections/{id}/authorize");
        let as_admin = api(&app, Method::POST, &path, &admin.token, None).await;
        assert_ne!(as_admin.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", as_admin.text);
        assert!(!as_admin.text.contains("no access rule"), "{}", as_admin.text);
        let as_reader = api(&app, Method::POST, &path, &reader.token, None).await;
        assert_eq!(as_reader.status, StatusCode::FORBIDDEN, "reading is not enough: {}", as_reader.text);
        emu.shutdown().await;
    }
}

/// Every route the API and the pages register (read from their route tables' source) has an
/// access rule in `ENDPOINTS`: a route without one answers 500 to everyone.
#[test]
fn every_registered_route_has_an_access_rule() {
    let mut missing = Vec::new();
    let mut seen = 0;
    for source in [
        include_str!("../src/api/mod.rs"),
        include_str!("../src/ui/mod.rs"),
        include_str!("../src/lib.rs"),
    ] {
        for chunk in source.split(".route(").skip(1) {
            let Some(path) = chunk.split('"').nth(1) else {
                continue;
            };
            // The route's handlers run to the next `.route(` (or the end of the table).
            let handlers = chunk.split("\n}").next().unwrap_or(chunk);
            for (word, method) in [
                ("get(", "GET"),
                ("post(", "POST"),
                ("put(", "PUT"),
                ("patch(", "PATCH"),
                ("delete(", "DELETE"),
            ] {
                let registered = handlers.match_indices(word).any(|(at, _)| {
                    at == 0 || !handlers[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                });
                if registered {
                    seen += 1;
                    if !ENDPOINTS.iter().any(|e| e.path == path && e.method == method) {
                        missing.push(format!("{method} {path}"));
                    }
                }
            }
        }
    }
    assert!(
        seen > 60,
        "only {seen} routes found: has the route table's layout changed?"
    );
    assert!(missing.is_empty(), "routes without an access rule: {missing:?}");
}
