//! Single sign-on with Microsoft work accounts, against the emulated identity platform, on SQLite
//! and PostgreSQL: the configuration through the API (admin only, the secret write-only, the
//! authority held to the endpoint policy), an imported agent's first sign-in (a disabled Agent
//! account) and the sign-in once enabled (the same session as a password's), an administrator
//! linked by hand, and every refusal: a tenant outside the list, a desk user who is not an agent,
//! someone matching nothing, a disabled account, a replayed state, a state from another browser,
//! single sign-on off, an open redirect. The id token checks (signature, `alg`, `aud`, `exp`,
//! `nonce`, `iss`) are tested on forged tokens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use deskbridge_core::SharedClock;
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World, follow_approved_sign_in};
use deskbridge_msauth::Authority;
use deskbridge_msauth::oidc::{Expected, IdTokenError, SigningKeys, verify_id_token};
use deskbridge_source::settings::EndpointPolicy;
use deskbridge_store::{Entity, NewAccount, Role, WriteContext};
use deskbridge_testkit::{TestDb, store_test};
use deskbridge_web::{AppState, auth, router};
use jiff::SignedDuration;
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// The host the browser reaches deskbridge at (the emulator accepts any loopback port).
const SITE: &str = "127.0.0.1:8400";

struct Fx {
    emu: Emulator,
    app: Router,
    admin_token: String,
    client_id: String,
    secret: String,
    /// Two customer tenants: the first is allowed, the second is not.
    allowed: String,
    other: String,
}

/// A person of the emulated directory: (user principal name, object id).
fn people(emu: &Emulator, tenant: &str) -> Vec<(String, String)> {
    emu.with_world(|w| {
        w.tenants
            .iter()
            .find(|t| t.id == tenant)
            .unwrap()
            .live_users()
            .filter(|u| u.account_enabled && u.user_type == "Member")
            .map(|u| (u.user_principal_name.clone(), u.id.clone()))
            .collect()
    })
}

async fn setup(db: &TestDb) -> Fx {
    let world = World::generate(&GenerateOptions {
        seed: 17,
        tenants: 2,
        users_per_tenant: Some(8),
        ..GenerateOptions::default()
    })
    .unwrap();
    let mut config = EmulatorConfig::new(world);
    config.auto_approve = true;
    // One clock for both sides: the id token's times are checked against deskbridge's.
    config.clock = db.clock.clone() as SharedClock;
    let emu = Emulator::start(config).await.unwrap();
    let summary = emu.summary();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .unwrap();
    let (client_id, secret) = (app.client_id.clone(), app.client_secret.clone().unwrap());
    let registry = deskbridge_connectors::registry()
        .with_endpoint_policy(EndpointPolicy::allowing([emu.local_addr().to_string()]));
    let state = AppState::new(db.store.clone(), registry, db.clock.clone() as SharedClock);
    let admin_token = format!("{}{}", auth::API_TOKEN_PREFIX, auth::random_token(32));
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let admin = tx
        .create_account(&NewAccount {
            username: "root".into(),
            display_name: "root".into(),
            password_hash: auth::hash_password("correct horse battery").unwrap(),
            role: Role::Administrator,
            can_configure_connections: true,
            must_change_password: false,
        })
        .await
        .unwrap();
    let expires = db.store.now() + SignedDuration::from_hours(24);
    tx.create_api_token(admin.id, "script", &auth::token_hash(&admin_token), Some(expires))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    Fx {
        allowed: summary.tenants[0].id.clone(),
        other: summary.tenants[1].id.clone(),
        emu,
        app: router(state),
        admin_token,
        client_id,
        secret,
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .unwrap_or_default()
    }

    /// The value a `Set-Cookie` of this reply gives `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.strip_prefix(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap_or_default().to_owned())
    }
}

async fn call(
    app: &Router,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    cookie: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, SITE);
    if let Some(token) = bearer {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let request = match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 4 << 20).await.unwrap();
    Reply {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

impl Fx {
    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        call(&self.app, method, path, Some(&self.admin_token), None, body).await
    }

    async fn turn_on(&self) {
        let reply = self
            .admin(
                Method::PATCH,
                "/api/v1/sso",
                Some(json!({"enabled": true, "client_id": self.client_id, "client_secret": self.secret, "authority": self.emu.base_url()})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let reply = self
            .admin(
                Method::POST,
                "/api/v1/sso/tenants",
                Some(json!({"tenant_id": self.allowed, "note": "our tenant"})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    }

    /// "Sign in with Microsoft" as `login`: the start, the emulator's approved sign-in, and the
    /// callback with this browser's state cookie. Returns the callback's reply and its URL.
    async fn sign_in(&self, login: &str, next: &str) -> (Reply, String, String) {
        let start = call(
            &self.app,
            Method::GET,
            &format!("/auth/sso/start?next={next}"),
            None,
            None,
            None,
        )
        .await;
        assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.text);
        let state = start.cookie("deskbridge_sso").unwrap();
        let authorize = format!("{}&login_hint={}", start.location(), login);
        let back = follow_approved_sign_in(&authorize).await.unwrap();
        let path = back.strip_prefix(&format!("http://{SITE}")).unwrap().to_owned();
        let cookie = format!("deskbridge_sso={state}");
        let reply = call(&self.app, Method::GET, &path, None, Some(&cookie), None).await;
        (reply, path, cookie)
    }
}

async fn add_agent(db: &TestDb, name: &str, tenant: &str, object_id: &str, active: bool) -> i64 {
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let fields =
        json!({"name": name, "azure_tenant_id": tenant, "azure_object_id": object_id, "active": active});
    let id = tx
        .insert(
            Entity::Agent,
            None,
            &fields.as_object().unwrap().clone().into_iter().collect(),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id.0
}

async fn add_user(db: &TestDb, name: &str, tenant: &str, object_id: &str) {
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let to_fields = |v: Value| v.as_object().unwrap().clone().into_iter().collect();
    let customer = tx
        .insert(Entity::Customer, None, &to_fields(json!({"name": "Contoso"})))
        .await
        .unwrap();
    let site = tx
        .insert(
            Entity::Site,
            None,
            &to_fields(json!({"name": "Main", "customer_id": customer.0})),
        )
        .await
        .unwrap();
    tx.insert(
        Entity::User,
        None,
        &to_fields(
            json!({"name": name, "site_id": site.0, "azure_tenant_id": tenant, "azure_object_id": object_id}),
        ),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn account_named(db: &TestDb, username: &str) -> deskbridge_store::Account {
    let mut tx = db.store.read().await.unwrap();
    let account = tx.account_named(username).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    account
}

store_test! {
    async fn the_configuration_is_for_administrators_and_its_secret_never_comes_out(db: &TestDb) {
        let fx = setup(db).await;
        // Turning it on needs a client id and a secret.
        let reply = fx.admin(Method::PATCH, "/api/v1/sso", Some(json!({"enabled": true}))).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
        assert!(reply.text.contains("client id and a client secret"), "{}", reply.text);
        let reply = fx.admin(Method::PATCH, "/api/v1/sso", Some(json!({"client_id": "not-a-guid"}))).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert!(reply.text.contains("is not a GUID"), "{}", reply.text);
        // The client secret goes only to an authority the endpoint policy allows.
        let reply = fx
            .admin(Method::PATCH, "/api/v1/sso", Some(json!({"client_id": fx.client_id, "authority": "https://login.evil.example"})))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert!(reply.text.contains("authority is refused"), "{}", reply.text);
        let reply = fx.admin(Method::PATCH, "/api/v1/sso", Some(json!({"surprise": 1}))).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        fx.turn_on().await;
        let view = fx.admin(Method::GET, "/api/v1/sso", None).await;
        assert_eq!(view.status, StatusCode::OK);
        assert!(!view.text.contains(&fx.secret), "the secret never comes out");
        let view = view.json();
        assert_eq!(view["client_secret_set"], true);
        assert_eq!(view["redirect_uri"], format!("http://{SITE}/auth/sso/callback"));
        assert_eq!(view["allowed_tenants"][0]["tenant_id"], fx.allowed);
        assert_eq!(view["allowed_tenants"][0]["origin"], "added by an administrator");
        // Tenants are GUIDs; removing one not in the list says so.
        let reply = fx.admin(Method::POST, "/api/v1/sso/tenants", Some(json!({"tenant_id": "contoso.com"}))).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        let reply = fx.admin(Method::DELETE, &format!("/api/v1/sso/tenants/{}", fx.other), None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
        // An agent sees none of it.
        let agent_token = format!("{}{}", auth::API_TOKEN_PREFIX, auth::random_token(32));
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let agent = tx
            .create_account(&NewAccount {
                username: "agnes".into(),
                display_name: "agnes".into(),
                password_hash: auth::hash_password("correct horse battery").unwrap(),
                role: Role::Agent,
                can_configure_connections: true,
                must_change_password: false,
            })
            .await
            .unwrap();
        tx.create_api_token(agent.id, "s", &auth::token_hash(&agent_token), Some(db.store.now() + SignedDuration::from_hours(1)))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        for (method, path) in [
            (Method::GET, "/api/v1/sso".to_owned()),
            (Method::PATCH, "/api/v1/sso".to_owned()),
            (Method::POST, "/api/v1/sso/tenants".to_owned()),
            (Method::PUT, format!("/api/v1/accounts/{}/microsoft-identity", agent.id)),
            (Method::GET, "/admin/sso".to_owned()),
        ] {
            let reply = call(&fx.app, method.clone(), &path, Some(&agent_token), None, Some(json!({"enabled": false}))).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path}: {}", reply.text);
        }
        // The page shows the redirect URI to register.
        let cookie = format!("deskbridge_session={}", fx.admin_token);
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let root = tx.account_named("root").await.unwrap().unwrap();
        tx.create_session(root.id, &auth::token_hash(&fx.admin_token), "csrf", db.store.now() + SignedDuration::from_hours(1))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let page = call(&fx.app, Method::GET, "/admin/sso", None, Some(&cookie), None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        assert!(page.text.contains(&format!("http://{SITE}/auth/sso/callback")), "{}", page.text);
        assert!(!page.text.contains(&fx.secret));
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn an_imported_agent_signs_in_once_an_administrator_enables_its_account(db: &TestDb) {
        let fx = setup(db).await;
        // Off: no button, and the start refuses.
        let login = call(&fx.app, Method::GET, "/login", None, None, None).await;
        assert!(!login.text.contains("Sign in with Microsoft"), "{}", login.text);
        let start = call(&fx.app, Method::GET, "/auth/sso/start", None, None, None).await;
        assert_eq!(start.status, StatusCode::UNAUTHORIZED);
        assert!(start.text.contains("Single sign-on is turned off"), "{}", start.text);
        fx.turn_on().await;
        let login = call(&fx.app, Method::GET, "/login", None, None, None).await;
        assert!(login.text.contains("Sign in with Microsoft"), "{}", login.text);

        let (upn, oid) = people(&fx.emu, &fx.allowed)[0].clone();
        add_agent(db, "Ada Agent", &fx.allowed.to_uppercase(), &oid, true).await;
        // The first sign-in creates a disabled Agent account linked to the identity.
        let (reply, _, _) = fx.sign_in(&upn, "/runs").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
        assert!(reply.text.contains("an administrator must enable it"), "{}", reply.text);
        assert!(reply.cookie("deskbridge_session").is_none());
        let account = account_named(db, &upn.to_lowercase()).await;
        assert_eq!(account.role, Role::Agent);
        assert!(account.disabled);
        assert!(!account.can_configure_connections);
        assert_eq!(account.linked_tenant_id.as_deref(), Some(fx.allowed.as_str()));
        assert_eq!(account.linked_object_id.as_deref(), Some(oid.as_str()));
        // Disabled: refused, saying so.
        let (reply, _, _) = fx.sign_in(&upn, "/runs").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(reply.text.contains("is disabled"), "{}", reply.text);
        // Enabled: signed in, with the same session as a password gives, to where it was going.
        let reply = fx.admin(Method::PATCH, &format!("/api/v1/accounts/{}", account.id), Some(json!({"disabled": false}))).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let (reply, used, cookie) = fx.sign_in(&upn, "/runs").await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text);
        assert_eq!(reply.location(), "/runs");
        let session = reply.cookie("deskbridge_session").unwrap();
        assert_eq!(reply.cookie("deskbridge_sso").as_deref(), Some(""), "the state cookie is cleared");
        let me = call(&fx.app, Method::GET, "/api/v1/me", None, Some(&format!("deskbridge_session={session}")), None).await;
        assert_eq!(me.status, StatusCode::OK, "{}", me.text);
        assert_eq!(me.json()["account"]["username"], upn.to_lowercase());
        assert!(account_named(db, &upn.to_lowercase()).await.last_sign_in_at.is_some());
        // The same redirect again (a replayed state and code) is refused.
        let replay = call(&fx.app, Method::GET, &used, None, Some(&cookie), None).await;
        assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
        assert!(replay.text.contains("already used"), "{}", replay.text);
        assert!(replay.cookie("deskbridge_session").is_none());
        // An open redirect in "next" lands on the connections instead.
        for next in ["https://evil.example/", "//evil.example/x", "/%5Cevil.example"] {
            let (reply, _, _) = fx.sign_in(&upn, next).await;
            assert_eq!(reply.status, StatusCode::SEE_OTHER, "{next}: {}", reply.text);
            assert!(reply.location().starts_with('/') && !reply.location().starts_with("//"), "{next}: {}", reply.location());
            assert!(!reply.location().contains("evil"), "{next}: {}", reply.location());
        }
        // The agent record deactivated: its account no longer signs in.
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let agents = tx.agents_by_identity(&fx.allowed, &oid).await.unwrap();
        let fields = json!({"active": false});
        tx.update(Entity::Agent, deskbridge_core::RecordId(agents[0].id), &fields.as_object().unwrap().clone().into_iter().collect())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let (reply, _, _) = fx.sign_in(&upn, "/runs").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(reply.text.contains("no longer active"), "{}", reply.text);
        // Off again: the callback refuses.
        let reply = fx.admin(Method::PATCH, "/api/v1/sso", Some(json!({"enabled": false}))).await;
        assert_eq!(reply.status, StatusCode::OK);
        let reply = call(&fx.app, Method::GET, "/auth/sso/callback?code=x&state=y", None, Some("deskbridge_sso=y"), None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(reply.text.contains("turned off"), "{}", reply.text);
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn strangers_users_other_tenants_and_other_browsers_are_refused(db: &TestDb) {
        let fx = setup(db).await;
        fx.turn_on().await;
        let people_here = people(&fx.emu, &fx.allowed);
        let (user_upn, user_oid) = people_here[1].clone();
        let (stranger_upn, _) = people_here[2].clone();
        let (admin_upn, admin_oid) = people_here[3].clone();
        let (far_upn, far_oid) = people(&fx.emu, &fx.other)[0].clone();
        add_user(db, "Uma User", &fx.allowed, &user_oid).await;
        add_agent(db, "Far Agent", &fx.other, &far_oid, true).await;

        // A tenant outside the list: refused, naming the tenant; no account is made.
        let before = fx.admin(Method::GET, "/api/v1/accounts", None).await.json()["accounts"].as_array().unwrap().len();
        let (reply, _, _) = fx.sign_in(&far_upn, "/").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(reply.text.contains(&format!("tenant {} is not allowed", fx.other)), "{}", reply.text);
        // A desk user who is not an agent.
        let (reply, _, _) = fx.sign_in(&user_upn, "/").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(reply.text.contains("not an agent"), "{}", reply.text);
        // Someone the desk does not know.
        let (reply, _, _) = fx.sign_in(&stranger_upn, "/").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(reply.text.contains("No desk agent was imported"), "{}", reply.text);
        let after = fx.admin(Method::GET, "/api/v1/accounts", None).await.json()["accounts"].as_array().unwrap().len();
        assert_eq!(before, after, "a refusal creates no account");

        // A redirect whose state this browser did not start (a link carrying someone else's code).
        let start = call(&fx.app, Method::GET, "/auth/sso/start", None, None, None).await;
        let back = follow_approved_sign_in(&format!("{}&login_hint={}", start.location(), admin_upn)).await.unwrap();
        let path = back.strip_prefix(&format!("http://{SITE}")).unwrap();
        for cookie in [None, Some("deskbridge_sso=someone-elses")] {
            let reply = call(&fx.app, Method::GET, path, None, cookie, None).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
            assert!(reply.text.contains("not started in this browser"), "{}", reply.text);
        }
        // Microsoft's own refusal is shown.
        let state = start.cookie("deskbridge_sso").unwrap();
        let reply = call(
            &fx.app,
            Method::GET,
            &format!("/auth/sso/callback?error=access_denied&error_description=AADSTS65004%3A+User+declined&state={state}"),
            None,
            Some(&format!("deskbridge_sso={state}")),
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(reply.text.contains("AADSTS65004"), "{}", reply.text);

        // An administrator linked by hand signs in (SSO never makes one; an administrator links it).
        let root = account_named(db, "root").await;
        let reply = fx
            .admin(Method::PUT, &format!("/api/v1/accounts/{}/microsoft-identity", root.id), Some(json!({"tenant_id": fx.allowed, "object_id": admin_oid})))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let (reply, _, _) = fx.sign_in(&admin_upn, "/admin/accounts").await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text);
        assert_eq!(reply.location(), "/admin/accounts");
        // One identity, one account.
        let reply = fx
            .admin(Method::POST, "/api/v1/accounts", Some(json!({"username": "second", "role": "administrator"})))
            .await;
        let second = reply.json()["account"]["id"].as_i64().unwrap();
        let reply = fx
            .admin(Method::PUT, &format!("/api/v1/accounts/{second}/microsoft-identity"), Some(json!({"tenant_id": fx.allowed, "object_id": admin_oid})))
            .await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
        let reply = fx
            .admin(Method::PUT, &format!("/api/v1/accounts/{second}/microsoft-identity"), Some(json!({"tenant_id": fx.allowed, "object_id": "nope"})))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
        // Unlinked, it is a stranger again.
        let reply = fx.admin(Method::DELETE, &format!("/api/v1/accounts/{}/microsoft-identity", root.id), None).await;
        assert_eq!(reply.status, StatusCode::OK);
        let (reply, _, _) = fx.sign_in(&admin_upn, "/").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        // Removing the tenant from the list refuses its people.
        let reply = fx.admin(Method::DELETE, &format!("/api/v1/sso/tenants/{}", fx.allowed.to_uppercase()), None).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
        let (reply, _, _) = fx.sign_in(&user_upn, "/").await;
        assert!(reply.text.contains("is not allowed"), "{}", reply.text);
        // Password sign-in is unchanged beside it.
        let form = call(&fx.app, Method::GET, "/login", None, None, None).await;
        assert_eq!(form.status, StatusCode::OK);
        fx.emu.shutdown().await;
    }
}

// ---------------------------------------------------------------------- the id token's checks

struct Forger {
    key: deskbridge_emulator::crypto::SigningKey,
    keys: SigningKeys,
    authority: Authority,
}

const CLIENT: &str = "6f1d1e2a-3b4c-4d5e-8f70-8192a3b4c5d6";
const TENANT: &str = "0b1c2d3e-4f50-4617-8829-3a4b5c6d7e8f";

fn forger() -> Forger {
    let key = deskbridge_emulator::crypto::generate_signing_key().unwrap();
    let jwks = json!({"keys": [{"kty": "RSA", "use": "sig", "kid": key.kid, "n": key.n, "e": key.e, "alg": "RS256"}]});
    Forger {
        keys: SigningKeys::from_jwks(serde_json::from_value(jwks).unwrap()),
        key,
        authority: Authority::new("https://login.microsoftonline.com").unwrap(),
    }
}

fn now() -> jiff::Timestamp {
    "2026-11-23T10:00:00Z".parse().unwrap()
}

fn claims() -> Value {
    let t = now().as_second();
    json!({"aud": CLIENT, "iss": format!("https://login.microsoftonline.com/{TENANT}/v2.0"), "iat": t, "nbf": t, "exp": t + 3600,
           "oid": "AAAAAAAA-1111-4222-8333-444444444444", "tid": TENANT, "nonce": "n-1", "preferred_username": "ada@contoso.example", "ver": "2.0"})
}

fn sign(key: &deskbridge_emulator::crypto::SigningKey, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

fn check(f: &Forger, token: &str) -> Result<deskbridge_msauth::oidc::IdTokenClaims, IdTokenError> {
    verify_id_token(
        token,
        &f.keys,
        &Expected {
            authority: &f.authority,
            client_id: CLIENT,
            nonce: "n-1",
            now: now(),
        },
    )
}

#[test]
fn only_a_genuine_id_token_for_this_app_and_sign_in_passes() {
    let f = forger();
    let good = check(&f, &sign(&f.key, &claims())).unwrap();
    assert_eq!(good.tenant_id, TENANT);
    assert_eq!(good.object_id, "aaaaaaaa-1111-4222-8333-444444444444");
    assert_eq!(good.preferred_username.as_deref(), Some("ada@contoso.example"));

    // Signed by another key under the published key's id: a forgery.
    let mut other = deskbridge_emulator::crypto::generate_signing_key().unwrap();
    other.kid = f.key.kid.clone();
    assert_eq!(check(&f, &sign(&other, &claims())), Err(IdTokenError::Signature));
    // A key the identity platform does not publish.
    let stranger = deskbridge_emulator::crypto::generate_signing_key().unwrap();
    assert!(matches!(
        check(&f, &sign(&stranger, &claims())),
        Err(IdTokenError::UnknownKey(_))
    ));
    // `alg: none`, and a symmetric algorithm keyed with something public.
    use base64::Engine as _;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": f.key.kid})),
        b64(&claims())
    );
    assert!(
        matches!(check(&f, &none), Err(IdTokenError::Malformed(_))),
        "{:?}",
        check(&f, &none)
    );
    let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs.kid = Some(f.key.kid.clone());
    let hs256 = jsonwebtoken::encode(
        &hs,
        &claims(),
        &jsonwebtoken::EncodingKey::from_secret(f.key.n.as_bytes()),
    )
    .unwrap();
    assert!(matches!(check(&f, &hs256), Err(IdTokenError::Algorithm(_))));
    // Another application's token.
    let mut c = claims();
    c["aud"] = json!("11111111-2222-4333-8444-555555555555");
    assert!(matches!(
        check(&f, &sign(&f.key, &c)),
        Err(IdTokenError::Audience(_))
    ));
    // Expired (beyond the five minutes of clock skew), or not valid yet.
    let mut c = claims();
    c["exp"] = json!(now().as_second() - 301);
    assert_eq!(check(&f, &sign(&f.key, &c)), Err(IdTokenError::Expired));
    let mut c = claims();
    c["nbf"] = json!(now().as_second() + 3600);
    assert_eq!(check(&f, &sign(&f.key, &c)), Err(IdTokenError::Expired));
    // Another sign-in's nonce (a replayed token), or none.
    let mut c = claims();
    c["nonce"] = json!("n-2");
    assert_eq!(check(&f, &sign(&f.key, &c)), Err(IdTokenError::Nonce));
    let mut c = claims();
    c.as_object_mut().unwrap().remove("nonce");
    assert_eq!(
        check(&f, &sign(&f.key, &c)),
        Err(IdTokenError::MissingClaim("nonce"))
    );
    // An issuer that is not the token's own tenant's (a token minted by another tenant claiming ours).
    let mut c = claims();
    c["iss"] = json!("https://login.microsoftonline.com/99999999-9999-4999-8999-999999999999/v2.0");
    assert!(matches!(
        check(&f, &sign(&f.key, &c)),
        Err(IdTokenError::Issuer { .. })
    ));
    let mut c = claims();
    c["iss"] = json!(format!("https://evil.example/{TENANT}/v2.0"));
    assert!(matches!(
        check(&f, &sign(&f.key, &c)),
        Err(IdTokenError::Issuer { .. })
    ));
    // Not a JWT at all.
    assert!(matches!(check(&f, "garbage"), Err(IdTokenError::Malformed(_))));
}
