//! Managed devices as desk assets through the admin UI and API, on SQLite and PostgreSQL against
//! the in-process emulator: the Assets mapping form, the Imports tab's device buttons and
//! preview, starting an asset import, the asset directory with names, and what a read-only
//! account may not do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use deskbridge_connector_entra::{NewCredential, NewEntraConnection, add_entra_connection};
use deskbridge_core::{ConnectionId, SharedClock, SystemClock};
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use deskbridge_source::settings::EndpointPolicy;
use deskbridge_store::{Access, NewAccount, Role, WriteContext};
use deskbridge_testkit::{TestDb, store_test};
use deskbridge_web::{AppState, auth, router};
use serde_json::{Value, json};
use tower::ServiceExt as _;

struct Person {
    id: i64,
    token: String,
    cookie: String,
    csrf: String,
}

struct Fixture {
    emu: Emulator,
    app: Router,
    id: ConnectionId,
    admin: Person,
    reader: Person,
}

async fn person(db: &TestDb, name: &str, role: Role) -> Person {
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
            can_configure_connections: false,
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
    Person {
        id: account.id,
        token,
        cookie: format!("{}={session}", auth::SESSION_COOKIE),
        csrf,
    }
}

async fn fixture(db: &TestDb) -> Fixture {
    let world = World::generate(&GenerateOptions {
        seed: 5,
        tenants: 1,
        users_per_tenant: Some(12),
        ..GenerateOptions::default()
    })
    .unwrap();
    let emu = Emulator::start(EmulatorConfig::new(world)).await.unwrap();
    let summary = emu.summary();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .unwrap();
    let id = add_entra_connection(
        &db.store,
        &NewEntraConnection {
            name: "devices".into(),
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
    .id;
    let admin = person(db, "admin", Role::Administrator).await;
    let reader_account = person(db, "reader", Role::Agent).await;
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    tx.set_grant(reader_account.id, id, Some(Access::Read))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let state = AppState::new(
        db.store.clone(),
        deskbridge_connectors::registry().with_endpoint_policy(EndpointPolicy::allowing(["127.0.0.1"])),
        clock,
    );
    Fixture {
        emu,
        app: router(state),
        id,
        admin,
        reader: reader_account,
    }
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

async fn api(app: &Router, method: Method, path: &str, who: &Person, body: Option<Value>) -> Reply {
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

async fn get_page(app: &Router, path: &str, who: &Person) -> Reply {
    let req = Request::builder()
        .uri(path)
        .header(header::COOKIE, &who.cookie)
        .body(Body::empty());
    send(app, req.unwrap()).await
}

async fn post_form(app: &Router, path: &str, who: &Person, form: &[(&str, &str)]) -> Reply {
    let mut pairs = form.to_vec();
    pairs.push(("csrf", &who.csrf));
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::COOKIE, &who.cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body));
    send(app, req.unwrap()).await
}

/// The settings form as an administrator fills it in: rules come from the rule form.
fn settings<'a>(mode: &'a str, single: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("op", "settings"),
        ("enabled", "on"),
        ("type_mode", mode),
        ("asset_type", single),
        ("type_property", "operatingSystem"),
        ("type_fallback", ""),
        ("unmatched", "fallback"),
        ("unmatched_type", "Other device"),
        ("user_method", "asset"),
        ("user_field", "userPrincipalName"),
        ("match_field", "serial_number"),
        ("default_site", ""),
        ("new_status", "active"),
        ("deleted_status", "retired"),
        ("exclude_sense", "on"),
    ]
}

async fn finish(fx: &Fixture, started: Reply) -> Value {
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text);
    let run = started.json()["run_id"].as_i64().unwrap();
    let mut last = Value::Null;
    for _ in 0..600 {
        last = api(
            &fx.app,
            Method::GET,
            &format!("/api/v1/runs/{run}"),
            &fx.admin,
            None,
        )
        .await
        .json();
        if last["finished"] == true {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(last["run"]["status"], "succeeded", "{last}");
    last
}

store_test! {
    async fn the_assets_form_saves_rules_and_refuses_a_bad_filter(db: &TestDb) {
        let fx = fixture(db).await;
        let path = format!("/connections/{}/mappings/assets", fx.id);
        let off = get_page(&fx.app, &path, &fx.admin).await;
        assert_eq!(off.status, StatusCode::OK, "{}", off.text);
        assert!(off.text.contains("Asset import is off") && off.text.contains("Save asset settings"), "{}", off.text);
        assert!(off.text.contains("operatingSystem") && off.text.contains("Serial number"), "the selects list device properties and desk fields");
        // Rules mode needs a rule first: said once, with what to do.
        let no_rule = post_form(&fx.app, &path, &fx.admin, &settings("rules", "")).await;
        assert_eq!(no_rule.text.matches("Not saved").count(), 1, "{}", no_rule.text);
        assert!(no_rule.text.contains("Add a type rule"));
        let saved = post_form(&fx.app, &path, &fx.admin, &settings("single", "Laptop")).await;
        assert!(saved.text.contains("Mappings saved") && saved.text.contains("every device is a &#39;Laptop&#39;"), "{}", saved.text);
        let rule = post_form(&fx.app, &path, &fx.admin, &[("op", "add-rule"), ("filter", "operatingSystem eq 'Windows'"), ("asset_type", "Windows PC")]).await;
        assert!(rule.text.contains("Mappings saved") && rule.text.contains("Remove rule 1"), "{}", rule.text);
        let bad = post_form(&fx.app, &path, &fx.admin, &[("op", "add-rule"), ("filter", "operatingSystem eq"), ("asset_type", "Broken")]).await;
        assert_eq!(bad.text.matches("Not saved").count(), 1, "{}", bad.text);
        assert!(bad.text.contains("assets.types.rules[1]"), "the message points at the rule: {}", bad.text);
        let field = post_form(&fx.app, &path, &fx.admin, &[("op", "add-field"), ("source", "model"), ("target", "name")]).await;
        assert!(field.text.contains("Mappings saved"), "{}", field.text);
        let stored = api(&fx.app, Method::GET, &format!("/api/v1/connections/{}/mappings", fx.id), &fx.admin, None).await.json();
        let assets = &stored["assets"];
        assert_eq!(assets["types"]["mode"], "rules", "{assets}");
        assert_eq!(assets["types"]["rules"].as_array().unwrap().len(), 1, "the bad rule was not saved: {assets}");
        assert_eq!(assets["types"]["rules"][0]["asset_type"], "Windows PC");
        assert_eq!(assets["types"]["unmatched"], json!({"then": "fallback", "asset_type": "Laptop"}), "switching to rules keeps the single type for the rest");
        let names: Vec<&Value> = assets["fields"].as_array().unwrap().iter().filter(|f| f["target"] == "name").collect();
        assert_eq!(names.len(), 1, "a desk field is mapped once: {assets}");
        assert_eq!(names[0]["source"]["property"], "model");
        // Another customer's site is neither offered nor accepted as the default site.
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let fabrikam = tx
            .insert(deskbridge_store::Entity::Customer, None, &[("name".to_owned(), json!("Fabrikam"))].into_iter().collect())
            .await
            .unwrap();
        let foreign_site = tx.main_site(fabrikam).await.unwrap().unwrap().0.to_string();
        tx.commit().await.unwrap();
        let picker = get_page(&fx.app, &path, &fx.admin).await;
        assert!(picker.text.contains("— Contoso") && !picker.text.contains("— Fabrikam"), "{}", picker.text);
        let mut foreign = settings("single", "Laptop");
        foreign.retain(|(k, _)| *k != "default_site");
        foreign.push(("default_site", &foreign_site));
        let refused_site = post_form(&fx.app, &path, &fx.admin, &foreign).await;
        assert_eq!(refused_site.text.matches("Not saved").count(), 1, "{}", refused_site.text);
        assert!(refused_site.text.contains("Fabrikam"), "the refusal names the other customer: {}", refused_site.text);
        // A read-only account sees the settings, not the forms, and cannot post them.
        let seen = get_page(&fx.app, &path, &fx.reader).await;
        assert_eq!(seen.status, StatusCode::OK);
        assert!(seen.text.contains("Windows PC") && !seen.text.contains("Save asset settings") && !seen.text.contains("Remove rule"), "{}", seen.text);
        let refused = post_form(&fx.app, &path, &fx.reader, &settings("single", "Hacked")).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        // Remove the rule; turning asset import off forgets it.
        let removed = post_form(&fx.app, &path, &fx.admin, &[("op", "remove-rule"), ("index", "0"), ("confirm", "on")]).await;
        assert_eq!(removed.text.matches("Not saved").count(), 1, "the last rule cannot go while the mode is rules: {}", removed.text);
        let off = post_form(&fx.app, &path, &fx.admin, &[("op", "settings")]).await;
        assert!(off.text.contains("Mappings saved") && off.text.contains("Asset import is off"), "{}", off.text);
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn devices_are_previewed_and_imported_as_named_assets(db: &TestDb) {
        let fx = fixture(db).await;
        let id = fx.id;
        let imports = format!("/connections/{id}/imports");
        // Not set up: the tab says where, and offers no button that would fail.
        let before = get_page(&fx.app, &imports, &fx.admin).await;
        assert!(before.text.contains("Managed devices") && before.text.contains("Set up asset import"), "{}", before.text);
        assert!(!before.text.contains("Import managed devices"));
        let refused = api(&fx.app, Method::POST, &format!("/api/v1/connections/{id}/runs"), &fx.admin, Some(json!({"entity": "assets"}))).await;
        assert!(refused.text.contains("asset import is not set up"), "{}", refused.text);
        let rules = post_form(&fx.app, &format!("/connections/{id}/mappings/assets"), &fx.admin, &settings("single", "Laptop")).await;
        assert!(rules.text.contains("Mappings saved"), "{}", rules.text);
        let rule = post_form(&fx.app, &format!("/connections/{id}/mappings/assets"), &fx.admin, &[("op", "add-rule"), ("filter", "operatingSystem eq 'Windows'"), ("asset_type", "Windows PC")]).await;
        assert!(rule.text.contains("Mappings saved"), "{}", rule.text);
        let tab = get_page(&fx.app, &imports, &fx.admin).await;
        assert!(tab.text.contains("Preview device import") && tab.text.contains("Import managed devices"), "{}", tab.text);
        let read_tab = get_page(&fx.app, &imports, &fx.reader).await;
        assert!(read_tab.text.contains("Preview device import") && !read_tab.text.contains("Import managed devices"));
        // The directory first, so devices find their users.
        finish(&fx, api(&fx.app, Method::POST, &format!("/api/v1/connections/{id}/runs"), &fx.admin, Some(json!({"full": false}))).await).await;
        // Entities: unknown, or not one this kind imports, are refused naming the allowed ones.
        let unknown = api(&fx.app, Method::POST, &format!("/api/v1/connections/{id}/runs"), &fx.admin, Some(json!({"entity": "printers"}))).await;
        assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.text);
        assert_eq!(unknown.json()["error"]["code"], "invalid_input");
        assert!(unknown.text.contains("directory, assets"), "{}", unknown.text);
        // A tenant that is not the connection's is refused before anything runs.
        for path in ["runs", "preview"] {
            let stranger = api(&fx.app, Method::POST, &format!("/api/v1/connections/{id}/{path}"), &fx.admin,
                Some(json!({"entity": "assets", "tenant": "00000000-0000-4000-8000-00000000dead"}))).await;
            assert_eq!(stranger.status, StatusCode::BAD_REQUEST, "{}", stranger.text);
            assert!(stranger.text.contains("is not one of this connection's tenants"), "{}", stranger.text);
        }
        let read_only = api(&fx.app, Method::POST, &format!("/api/v1/connections/{id}/runs"), &fx.reader, Some(json!({"entity": "assets"}))).await;
        assert_eq!(read_only.status, StatusCode::FORBIDDEN, "{}", read_only.text);
        let read_only_page = post_form(&fx.app, &format!("/connections/{id}/runs"), &fx.reader, &[("entity", "assets")]).await;
        assert_eq!(read_only_page.status, StatusCode::FORBIDDEN);
        // Previews: the API's with and without a body, the page's with names.
        let plain = api(&fx.app, Method::POST, &format!("/api/v1/connections/{id}/preview"), &fx.admin, None).await;
        assert_eq!(plain.status, StatusCode::OK, "{}", plain.text);
        assert!(plain.json()["changes"].as_array().unwrap().iter().all(|c| c["entity"] != "asset"));
        let devices = api(&fx.app, Method::POST, &format!("/api/v1/connections/{id}/preview"), &fx.reader, Some(json!({"entity": "assets"}))).await;
        assert_eq!(devices.status, StatusCode::OK, "{}", devices.text);
        let planned = devices.json()["changes"].as_array().unwrap().iter().filter(|c| c["entity"] == "asset" && c["action"] == "create").count();
        assert!(planned > 0, "{}", devices.text);
        let shown = post_form(&fx.app, &format!("/connections/{id}/preview"), &fx.reader, &[("entity", "assets")]).await;
        assert_eq!(shown.status, StatusCode::OK);
        assert!(shown.text.contains("Device import preview") && shown.text.contains("Asset type"), "{}", shown.text);
        assert!(shown.text.contains("Windows PC (new)") && shown.text.contains("Laptop (new)"), "types by name: {}", shown.text);
        assert!(!shown.text.contains("{&quot;asset_type") && !shown.text.contains("{\"asset_type"), "no raw references");
        assert!(!shown.text.contains("Import managed devices"), "a reader gets no import button");
        // Import through the API; the assets are listed by name.
        let done = finish(&fx, api(&fx.app, Method::POST, &format!("/api/v1/connections/{id}/runs"), &fx.admin, Some(json!({"entity": "assets"}))).await).await;
        assert_eq!(done["run"]["kind"], "assets", "{done}");
        assert!(done["run"]["counts"]["created"].as_i64().unwrap() > 0, "{done}");
        let listed = api(&fx.app, Method::GET, &format!("/api/v1/connections/{id}/directory/assets?limit=500"), &fx.reader, None).await.json();
        let items = listed["items"].as_array().unwrap();
        assert_eq!(items.len(), planned, "{listed}");
        assert!(items.iter().all(|a| matches!(a["asset_type"].as_str(), Some("Windows PC" | "Laptop"))), "{listed}");
        assert!(items.iter().all(|a| a["site"].is_string() && a["customer"] == "Contoso"), "{listed}");
        assert!(items.iter().any(|a| a["user"].is_string()), "some devices are linked to their users: {listed}");
        let customer = items[0]["customer_id"].as_i64().unwrap();
        let by_customer = api(&fx.app, Method::GET, &format!("/api/v1/connections/{id}/directory/assets?limit=500&customer={customer}"), &fx.reader, None).await.json();
        assert_eq!(by_customer["items"].as_array().unwrap().len(), items.len());
        let foreign = api(&fx.app, Method::GET, &format!("/api/v1/connections/{id}/directory/assets?customer={}", customer + 1000), &fx.reader, None).await;
        assert_eq!(foreign.status, StatusCode::NOT_FOUND, "a customer the connection does not import into is not listed: {}", foreign.text);
        let everything = api(&fx.app, Method::GET, &format!("/api/v1/directory/assets?customer={customer}&limit=2"), &fx.reader, None).await;
        assert_eq!(everything.status, StatusCode::FORBIDDEN, "the whole directory is an administrator's");
        let admin_view = api(&fx.app, Method::GET, &format!("/api/v1/directory/assets?customer={customer}&limit=2"), &fx.admin, None).await.json();
        assert_eq!(admin_view["items"].as_array().unwrap().len(), 2);
        assert!(admin_view["next_after"].is_i64());
        let page = get_page(&fx.app, &format!("/connections/{id}/directory/assets?customer={customer}"), &fx.reader).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        assert!(page.text.contains("Windows PC") && page.text.contains("Contoso") && page.text.contains("Asset type"), "{}", page.text);
        // Importing again from the page goes to the run.
        let again = post_form(&fx.app, &format!("/connections/{id}/runs"), &fx.admin, &[("entity", "assets")]).await;
        assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.text);
        fx.emu.shutdown().await;
    }
}
