//! Where a connection's credential may go, over the API, on SQLite and PostgreSQL (issue 20): CSP
//! connections are added by administrators only, a connection's tenant and endpoints are changed
//! by administrators only (which drops its sealed credentials), a tenant owned by another customer
//! is refused, and an imported file cannot name a host that is not Microsoft's. Nothing here
//! reaches Microsoft: creating and editing connections sends no request.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use deskbridge_connector_entra::{NewCredential, NewEntraConnection, add_entra_connection};
use deskbridge_core::{ConnectionId, SharedClock};
use deskbridge_source::ConnectionSecrets;
use deskbridge_store::{Access, NewAccount, Role, WriteContext};
use deskbridge_testkit::{TestDb, store_test};
use deskbridge_web::{AppState, auth, router};
use jiff::SignedDuration;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const CONTOSO_TENANT: &str = "11111111-1111-4111-8111-111111111111";
const FABRIKAM_TENANT: &str = "22222222-2222-4222-8222-222222222222";
const FRESH_TENANT: &str = "33333333-3333-4333-8333-333333333333";
const NORTHWIND_TENANT: &str = "44444444-4444-4444-8444-444444444444";
const PARTNER_TENANT: &str = "55555555-5555-4555-8555-555555555555";
const APP: &str = "66666666-6666-4666-8666-666666666666";
const GDAP_APP: &str = "77777777-7777-4777-8777-777777777777";

/// An account with an API token: its id and the token (the token is also the session cookie's
/// value, for pages).
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
    tx.create_session(account.id, &auth::token_hash(&token), "csrf", expires)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (account.id, token)
}

async fn grant(db: &TestDb, account: i64, connection: ConnectionId) {
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    tx.set_grant(account, connection, Some(Access::Modify))
        .await
        .unwrap();
    tx.commit().await.unwrap();
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

/// A page, as the signed-in `token`'s account sees it.
async fn page(app: &Router, path: &str, token: &str) -> Reply {
    let req = Request::builder()
        .uri(path)
        .header(header::COOKIE, format!("{}={token}", auth::SESSION_COOKIE))
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
    Reply {
        status,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// An Entra connection on Microsoft's default endpoints, importing `tenant` into `customer`.
async fn entra(
    db: &TestDb,
    name: &str,
    tenant: &str,
    customer: &str,
    credential: NewCredential,
) -> ConnectionId {
    add_entra_connection(
        &db.store,
        &NewEntraConnection {
            name: name.into(),
            tenant_id: tenant.into(),
            client_id: APP.into(),
            credential,
            authority_host: None,
            graph_url: None,
            customer: Some(customer.into()),
            enabled_instances: None,
            last_sign_in: false,
        },
    )
    .await
    .unwrap()
    .id
}

fn client_secret() -> NewCredential {
    NewCredential::ClientSecret {
        value: "the-app-secret".into(),
        expires_at: None,
    }
}

async fn secret(db: &TestDb, connection: ConnectionId, field: &str) -> Option<String> {
    let mut tx = db.store.read().await.unwrap();
    let value = ConnectionSecrets(connection).get(&mut tx, field).await.unwrap();
    tx.commit().await.unwrap();
    value.map(|v| v.to_string())
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
        // The pages neither offer the agent a CSP connection nor show its form.
        let listed = page(&app, "/connections", &agent).await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
        assert!(listed.text.contains("kind=dynamics") && !listed.text.contains("kind=csp"), "{}", listed.text);
        assert!(page(&app, "/connections", &admin).await.text.contains("kind=csp"));
        let form = page(&app, "/connections/new?kind=csp", &agent).await;
        assert_eq!(form.status, StatusCode::FORBIDDEN, "{}", form.text);
        assert!(form.text.contains("an administrator must add"), "{}", form.text);
        // The agent may still add a connection of a kind that imports into a new customer of its own.
        created(&app, &agent, dynamics_body("Northwind", NORTHWIND_TENANT)).await;
        created(&app, &admin, csp_body("Partner")).await;
    }
}

store_test! {
    async fn a_connections_tenant_is_changed_by_an_administrator_only_and_never_to_another_customers(db: &TestDb) {
        let app = app(db);
        let (_, admin) = person(db, "admin", Role::Administrator, true).await;
        let (agent_id, agent) = person(db, "agent", Role::Agent, true).await;
        let contoso = entra(db, "contoso", CONTOSO_TENANT, "Contoso", client_secret()).await;
        entra(db, "fabrikam", FABRIKAM_TENANT, "Fabrikam", client_secret()).await;
        let northwind = created(&app, &admin, dynamics_body("Northwind", NORTHWIND_TENANT)).await;
        grant(db, agent_id, contoso).await;
        grant(db, agent_id, northwind).await;
        for (id, secret_field) in [(contoso, "client_secret"), (northwind, "client_secret")] {
            let path = format!("/api/v1/connections/{id}");
            // The tenant is where the credential goes, like an endpoint: not an agent's to change,
            // through the API or an imported file.
            let moved = api(&app, Method::PATCH, &path, &agent, Some(json!({ "tenant_id": FRESH_TENANT }))).await;
            assert_eq!(moved.status, StatusCode::FORBIDDEN, "{}", moved.text);
            assert!(moved.message().contains("only an administrator may change a connection's endpoints and tenant"), "{}", moved.text);
            let mut file = api(&app, Method::GET, &format!("{path}/export"), &agent, None).await.json();
            file["settings"]["tenant_id"] = json!(FRESH_TENANT);
            let imported = api(&app, Method::POST, &format!("{path}/import"), &agent, Some(file)).await;
            assert_eq!(imported.status, StatusCode::FORBIDDEN, "{}", imported.text);
            // Given unchanged, it is no change.
            let view = api(&app, Method::GET, &path, &agent, None).await.json();
            let same = api(&app, Method::PATCH, &path, &agent, Some(json!({ "tenant_id": view["settings"]["tenant_id"] }))).await;
            assert_eq!(same.status, StatusCode::OK, "{}", same.text);
            // An administrator may not point it at another customer's tenant: that customer's data
            // would come into this one.
            let taken = api(&app, Method::PATCH, &path, &admin, Some(json!({ "tenant_id": FABRIKAM_TENANT }))).await;
            assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.text);
            let message = taken.message();
            assert!(message.contains(&format!("the tenant {FABRIKAM_TENANT} already belongs to the desk customer \"Fabrikam\"")), "{message}");
            assert!(!message.to_ascii_lowercase().contains("unique"), "{message}");
            assert!(secret(db, id, secret_field).await.is_some(), "a refused change changes nothing");
            // A tenant no customer owns: the connection reads it, its customer owns it, and the
            // credential entered for the old tenant is dropped.
            let fresh = api(&app, Method::PATCH, &path, &admin, Some(json!({ "tenant_id": FRESH_TENANT }))).await;
            assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.text);
            assert_eq!(fresh.json()["settings"]["tenant_id"], FRESH_TENANT);
            assert!(secret(db, id, secret_field).await.is_none(), "the secret stayed with the old tenant");
            let mut tx = db.store.read().await.unwrap();
            let owner = tx.customer_of_tenant(FRESH_TENANT).await.unwrap();
            tx.commit().await.unwrap();
            let connection = api(&app, Method::GET, &path, &admin, None).await.json();
            assert!(owner.is_some() && connection["settings"]["customer_id"] == json!(owner.map(|o| o.0)), "{connection}");
            // Put back, for the next kind to claim the fresh tenant again.
            let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
            let customer = owner.unwrap();
            tx.update(deskbridge_store::Entity::Customer, customer, &[("tenant_ids".to_owned(), json!([]))].into_iter().collect()).await.unwrap();
            tx.commit().await.unwrap();
        }
    }
}

store_test! {
    async fn csp_and_dynamics_endpoints_are_an_administrators_and_imports_name_only_allowed_hosts(db: &TestDb) {
        let app = app(db);
        let (_, admin) = person(db, "admin", Role::Administrator, true).await;
        let (agent_id, agent) = person(db, "agent", Role::Agent, true).await;
        let csp = created(&app, &admin, csp_body("Partner")).await;
        let dynamics = created(&app, &admin, dynamics_body("Northwind", NORTHWIND_TENANT)).await;
        grant(db, agent_id, csp).await;
        grant(db, agent_id, dynamics).await;
        for (id, key, moved_to, secret_field) in [
            (csp, "partner_center_url", "https://partner.partnercenterapi.microsoftonline.cn", "gdap_client_secret"),
            (dynamics, "url", "https://northwind.crm.microsoftdynamics.us", "client_secret"),
        ] {
            let path = format!("/api/v1/connections/{id}");
            // An imported file naming a host that is neither Microsoft's nor allowed is refused, by
            // anyone, and nothing of it is applied.
            let mut file = api(&app, Method::GET, &format!("{path}/export"), &admin, None).await.json();
            let before = file["settings"][key].clone();
            file["settings"][key] = json!("https://evil.example");
            let imported = api(&app, Method::POST, &format!("{path}/import"), &admin, Some(file)).await;
            assert_eq!(imported.status, StatusCode::BAD_REQUEST, "{key}: {}", imported.text);
            assert!(imported.message().contains("evil.example is not one of Microsoft's cloud endpoints"), "{}", imported.text);
            let now = api(&app, Method::GET, &path, &admin, None).await.json();
            assert_eq!(now["settings"][key], before, "{key}: nothing was imported");
            // An agent with modify access may not move it, even to Microsoft's other clouds.
            let moved = api(&app, Method::PATCH, &path, &agent, Some(json!({ key: moved_to }))).await;
            assert_eq!(moved.status, StatusCode::FORBIDDEN, "{key}: {}", moved.text);
            assert!(secret(db, id, secret_field).await.is_some());
            // An administrator may: the secret entered for the old endpoint is dropped.
            let moved = api(&app, Method::PATCH, &path, &admin, Some(json!({ key: moved_to }))).await;
            assert_eq!(moved.status, StatusCode::OK, "{key}: {}", moved.text);
            assert_eq!(moved.json()["settings"][key], moved_to);
            assert!(secret(db, id, secret_field).await.is_none(), "{key}: the secret stayed with the old endpoint");
        }
        // A CSP connection's partner tenant is its tenant: an administrator's to change, and the
        // credentials entered for the old partner go.
        let path = format!("/api/v1/connections/{csp}");
        let partner = json!({ "partner_tenant_id": FRESH_TENANT });
        let moved = api(&app, Method::PATCH, &path, &agent, Some(partner.clone())).await;
        assert_eq!(moved.status, StatusCode::FORBIDDEN, "{}", moved.text);
        let again = api(&app, Method::PATCH, &path, &admin, Some(json!({ "gdap_client_secret": "another-gdap-secret" }))).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.text);
        let moved = api(&app, Method::PATCH, &path, &admin, Some(partner)).await;
        assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
        assert!(secret(db, csp, "gdap_client_secret").await.is_none(), "the GDAP secret stayed with the old partner");
    }
}

store_test! {
    async fn a_delegated_sign_in_is_dropped_when_the_endpoints_or_tenant_move(db: &TestDb) {
        let app = app(db);
        let (_, admin) = person(db, "admin", Role::Administrator, true).await;
        let delegated = || NewCredential::Delegated { client_secret: None, expires_at: None };
        let by_endpoint = entra(db, "by-endpoint", CONTOSO_TENANT, "Contoso", delegated()).await;
        let by_tenant = entra(db, "by-tenant", FABRIKAM_TENANT, "Fabrikam", delegated()).await;
        for (id, change) in [
            (by_endpoint, json!({ "authority_host": "https://login.microsoftonline.us" })),
            (by_tenant, json!({ "tenant_id": FRESH_TENANT })),
        ] {
            // What a completed sign-in leaves (see delegated.rs): the user's refresh token, sealed.
            let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
            ConnectionSecrets(id).put(&mut tx, "refresh_token", "the-users-refresh-token", None).await.unwrap();
            tx.commit().await.unwrap();
            let path = format!("/api/v1/connections/{id}");
            assert_eq!(api(&app, Method::GET, &path, &admin, None).await.json()["credential"]["authorised"], true);
            let moved = api(&app, Method::PATCH, &path, &admin, Some(change.clone())).await;
            assert_eq!(moved.status, StatusCode::OK, "{change}: {}", moved.text);
            assert!(secret(db, id, "refresh_token").await.is_none(), "{change}: the sign-in stayed");
            assert_eq!(moved.json()["credential"]["authorised"], false, "{change}: must be authorised again");
        }
    }
}

/// A subscription `connection` imported (as a sync would have stored it).
async fn imported_subscription(db: &TestDb, connection: ConnectionId, external: &str) -> i64 {
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let fields = [
        ("friendly_name".to_owned(), json!("Business Basic")),
        ("quantity".to_owned(), json!(10)),
        ("tenant_id".to_owned(), json!(FRESH_TENANT)),
        ("unit_type".to_owned(), json!("Licenses")),
    ]
    .into_iter()
    .collect();
    let id = tx
        .insert(
            deskbridge_store::Entity::Subscription,
            Some(&deskbridge_store::SourceKey::new(connection, external)),
            &fields,
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id.0
}

store_test! {
    async fn a_subscriptions_quantity_is_adjusted_only_through_the_connection_that_imported_it(db: &TestDb) {
        let app = app(db);
        let (_, admin) = person(db, "admin", Role::Administrator, true).await;
        let (reader_id, reader) = person(db, "reader", Role::Agent, false).await;
        let (writer_id, writer) = person(db, "writer", Role::Agent, false).await;
        let partner = created(&app, &admin, csp_body("Partner")).await;
        let other = created(&app, &admin, csp_body("Other partner")).await;
        let subscription = imported_subscription(db, partner, "a1b2").await;
        {
            let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
            tx.set_grant(reader_id, partner, Some(Access::Read)).await.unwrap();
            tx.set_grant(writer_id, other, Some(Access::Modify)).await.unwrap();
            tx.commit().await.unwrap();
        }
        let path = |c: ConnectionId| format!("/api/v1/connections/{}/subscriptions/{subscription}/quantity", c.0);
        let body = Some(json!({ "quantity": 12 }));
        // Reading a connection is not changing its subscriptions.
        let refused = api(&app, Method::POST, &path(partner), &reader, body.clone()).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
        // Modify on another connection does not reach this one's subscription.
        let stranger = api(&app, Method::POST, &path(other), &writer, body.clone()).await;
        assert_eq!(stranger.status, StatusCode::NOT_FOUND, "{}", stranger.text);
        assert!(stranger.message().contains("imported no subscription"), "{}", stranger.text);
        // Not a seat count.
        let zero = api(&app, Method::POST, &path(partner), &admin, Some(json!({ "quantity": 0 }))).await;
        assert_eq!(zero.status, StatusCode::BAD_REQUEST, "{}", zero.text);
        // A tenant the connection has not found yet: nothing is sent; the journal says why.
        let unknown = api(&app, Method::POST, &path(partner), &admin, body).await;
        assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.text);
        assert!(unknown.message().contains("has no customer tenant"), "{}", unknown.text);
        let changes = api(
            &app,
            Method::GET,
            &format!("/api/v1/connections/{}/subscriptions/{subscription}/changes", partner.0),
            &reader,
            None,
        )
        .await;
        assert_eq!(changes.status, StatusCode::OK, "{}", changes.text);
        assert_eq!(changes.json()["changes"][0]["status"], "failed", "journalled: {}", changes.text);
        // The page offers the form to those who may change the connection, and only to them.
        let listing = format!("/connections/{}/directory/subscriptions", partner.0);
        let for_admin = page(&app, &listing, &admin).await;
        assert_eq!(for_admin.status, StatusCode::OK, "{}", for_admin.text);
        assert!(for_admin.text.contains("Adjust quantity"), "{}", for_admin.text);
        assert!(for_admin.text.contains("Business Basic"), "{}", for_admin.text);
        let for_reader = page(&app, &listing, &reader).await;
        assert_eq!(for_reader.status, StatusCode::OK, "{}", for_reader.text);
        assert!(!for_reader.text.contains("Adjust quantity"), "{}", for_reader.text);
    }
}

store_test! {
    async fn a_csp_tenants_customer_is_an_administrators_choice_and_its_overrides_its_modifiers(db: &TestDb) {
        let app = app(db);
        let (_, admin) = person(db, "admin", Role::Administrator, true).await;
        let (agent_id, agent) = person(db, "agent", Role::Agent, false).await;
        let partner = created(&app, &admin, csp_body("Partner")).await;
        grant(db, agent_id, partner).await;
        // The tenant a sync would have found, not imported yet; and a desk customer for it.
        let holding = {
            let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
            let mut config = tx.connection(partner).await.unwrap().unwrap().config;
            config["tenants"] = json!([{ "tenant_id": FRESH_TENANT, "name": "Fresh Ltd", "customer_id": null }]);
            tx.update_connection_config(partner, &config).await.unwrap();
            let customer = deskbridge_source::desk::customer_for_tenant(&mut tx, "Holding Ltd", NORTHWIND_TENANT).await.unwrap().customer;
            tx.commit().await.unwrap();
            customer
        };
        let tenants = format!("/api/v1/connections/{}/tenants", partner.0);
        let listed = api(&app, Method::GET, &tenants, &agent, None).await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
        assert_eq!(listed.json()["tenants"][0]["name"], "Fresh Ltd");
        assert_eq!(listed.json()["tenants"][0]["customer_id"], Value::Null);
        let one = format!("{tenants}/{FRESH_TENANT}");
        let refused = api(&app, Method::PATCH, &one, &agent, Some(json!({ "customer": holding.0 }))).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
        assert!(refused.message().contains("only an administrator"), "{}", refused.text);
        let own = api(&app, Method::PATCH, &one, &agent, Some(json!({ "licence_import": "subscriptions" }))).await;
        assert_eq!(own.status, StatusCode::OK, "{}", own.text);
        assert_eq!(own.json()["tenant"]["overrides"]["licence_import"], "subscriptions");
        let dap = api(&app, Method::PATCH, &one, &agent, Some(json!({ "relationship_type": "dap" }))).await;
        assert_eq!(dap.status, StatusCode::OK, "{}", dap.text);
        assert_eq!(dap.json()["tenant"]["overrides"]["relationship_type"], "dap");
        let wrong = api(&app, Method::PATCH, &one, &agent, Some(json!({ "relationship_type": "cap" }))).await;
        assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.text);
        assert!(wrong.message().contains("is not one of gdap, dap"), "{}", wrong.text);
        let unknown = api(&app, Method::PATCH, &one, &agent, Some(json!({ "colour": "blue" }))).await;
        assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.text);
        let assigned = api(&app, Method::PATCH, &one, &admin, Some(json!({ "customer": holding.0 }))).await;
        assert_eq!(assigned.status, StatusCode::OK, "{}", assigned.text);
        assert_eq!(assigned.json()["tenant"]["customer_name"], "Holding Ltd");
        let mut tx = db.store.read().await.unwrap();
        assert_eq!(tx.customer_of_tenant(FRESH_TENANT).await.unwrap(), Some(holding));
        tx.commit().await.unwrap();
        // The Tenants tab: the table for both, the customer choice for the administrator only.
        let tab = format!("/connections/{}/tenants", partner.0);
        let for_admin = page(&app, &tab, &admin).await;
        assert_eq!(for_admin.status, StatusCode::OK, "{}", for_admin.text);
        assert!(for_admin.text.contains("Holding Ltd") && for_admin.text.contains("Desk customer"), "{}", for_admin.text);
        assert!(
            for_admin.text.contains("Relationship type") && for_admin.text.contains("DAP (delegated admin privileges"),
            "the tenant's own relationship type, by its label: {}",
            for_admin.text
        );
        let for_agent = page(&app, &tab, &agent).await;
        assert_eq!(for_agent.status, StatusCode::OK, "{}", for_agent.text);
        assert!(for_agent.text.contains("Change a tenant"), "{}", for_agent.text);
        assert!(!for_agent.text.contains("Desk customer</label>"), "{}", for_agent.text);
    }
}

store_test! {
    async fn a_connections_usage_exports_as_csv_to_those_who_may_read_it(db: &TestDb) {
        let app = app(db);
        let (_, admin) = person(db, "admin", Role::Administrator, true).await;
        let (reader_id, reader) = person(db, "finance", Role::Agent, false).await;
        let (_, stranger) = person(db, "stranger", Role::Agent, false).await;
        let partner = created(&app, &admin, csp_body("Partner")).await;
        {
            let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
            tx.set_grant(reader_id, partner, Some(Access::Read)).await.unwrap();
            let fields = [
                ("resource_name".to_owned(), json!("=HYPERLINK(\"http://evil\")")),
                ("quantity".to_owned(), json!(24.0)),
                ("unit".to_owned(), json!("1 Hour")),
                ("usage_start".to_owned(), json!("2026-12-01T00:00:00Z")),
            ]
            .into_iter()
            .collect();
            tx.insert(
                deskbridge_store::Entity::UsageLine,
                Some(&deskbridge_store::SourceKey::new(partner, "line-1")),
                &fields,
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }
        let path = format!("/api/v1/connections/{}/usage.csv", partner.0);
        let csv = api(&app, Method::GET, &path, &reader, None).await;
        assert_eq!(csv.status, StatusCode::OK, "{}", csv.text);
        assert!(csv.text.starts_with("customer,usage_start,usage_end,resource_name"), "{}", csv.text);
        assert!(csv.text.contains(",24.0,1 Hour,"), "{}", csv.text);
        assert!(csv.text.contains("\"'=HYPERLINK(\"\"http://evil\"\")\""), "a formula stays text: {}", csv.text);
        let refused = api(&app, Method::GET, &path, &stranger, None).await;
        assert!(matches!(refused.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND), "{}", refused.text);
    }
}

store_test! {
    async fn only_an_administrator_sets_up_a_customer_import_or_places_people_under_imported_customers(db: &TestDb) {
        let app = app(db);
        let (_, admin) = person(db, "admin", Role::Administrator, true).await;
        let (agent_id, agent) = person(db, "agent", Role::Agent, true).await;
        let northwind = created(&app, &admin, dynamics_body("Northwind", NORTHWIND_TENANT)).await;
        grant(db, agent_id, northwind).await;
        let path = format!("/api/v1/connections/{}/mappings", northwind.0);
        let before = api(&app, Method::GET, &path, &agent, None).await.json();

        // Accounts as customers link, rename and deactivate desk customers beyond the
        // connection's own: an agent with modify access may not turn that on.
        let mut customers = before.clone();
        customers["customers"] = json!({"fields": [{"source": "name", "target": "name"}], "match_fields": ["name"]});
        let refused = api(&app, Method::PUT, &path, &agent, Some(customers.clone())).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
        assert!(refused.message().contains("only an administrator sets up or changes customer imports"), "{}", refused.text);
        // Nor place people under imported customers.
        let mut placed = before.clone();
        placed["site_mappings"][0]["target"] = json!({
            "kind": "imported_customer", "property": "_parentcustomerid_value", "unmatched": {"action": "do_not_import"},
        });
        let refused = api(&app, Method::PUT, &path, &agent, Some(placed.clone())).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
        assert!(refused.message().contains("imported_customer"), "{}", refused.text);
        assert_eq!(api(&app, Method::GET, &path, &agent, None).await.json(), before, "nothing was saved");

        // An administrator may; then the agent still changes everything else, not those parts.
        let saved = api(&app, Method::PUT, &path, &admin, Some(customers)).await;
        assert_eq!(saved.status, StatusCode::OK, "{}", saved.text);
        let mut other = api(&app, Method::GET, &path, &agent, None).await.json();
        other["circuit_breaker"]["floor"] = json!(7);
        other["circuit_breaker"]["max_change_percent"] = json!(45.0);
        let kept = api(&app, Method::PUT, &path, &agent, Some(other.clone())).await;
        assert_eq!(kept.status, StatusCode::OK, "{}", kept.text);
        let stored = api(&app, Method::GET, &path, &agent, None).await.json();
        assert_eq!(stored["circuit_breaker"]["max_change_percent"], json!(45.0), "the mass-change share is saved");
        let mut wrong = stored.clone();
        wrong["circuit_breaker"]["max_change_percent"] = json!(150.0);
        let refused = api(&app, Method::PUT, &path, &agent, Some(wrong)).await;
        assert!(refused.status.is_client_error(), "{}", refused.text);
        assert!(refused.text.contains("moved or changed must be more than 0 and at most 100 percent, not 150"), "{}", refused.text);
        other["customers"]["removed"] = json!("deactivate");
        let refused = api(&app, Method::PUT, &path, &agent, Some(other)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
        // A run names one table mapping only in a custom-table run, and only one the connection has.
        let preview = format!("/api/v1/connections/{}/preview", northwind.0);
        for (body, says) in [
            (json!({"entity": "directory", "table": "contracts"}), "table: \"contracts\" is named only with entity custom_tables, not directory"),
            (json!({"table": "contracts"}), "table: \"contracts\" is named only with entity custom_tables"),
            (json!({"entity": "custom_tables", "table": "contracts"}), "no custom table mapping fills desk table \"contracts\"; the mapped desk tables are: none"),
            (json!({"entity": "custom_tables:contracts"}), "no custom table mapping fills desk table \"contracts\""),
            (json!({"entity": "custom_tables:a", "table": "b"}), "table: \"b\" and the entity's \"a\" differ"),
        ] {
            let refused = api(&app, Method::POST, &preview, &admin, Some(body.clone())).await;
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{body}: {}", refused.text);
            assert!(refused.message().contains(says), "{body}: {}", refused.text);
        }
        // The mapping tab shows the import to the agent, without its forms.
        let tab = page(&app, &format!("/connections/{}/mappings/customers", northwind.0), &agent).await;
        assert_eq!(tab.status, StatusCode::OK, "{}", tab.text);
        assert!(tab.text.contains("become desk customers"), "{}", tab.text);
        assert!(page(&app, &format!("/connections/{}/mappings/customers", northwind.0), &admin).await.text.contains("customer-settings"));
    }
}
