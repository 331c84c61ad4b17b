//! The admin UI in people's words, on SQLite and PostgreSQL against the in-process emulator:
//! times as `<time>` elements with a UTC fallback to the second, intervals in words, sites as
//! "Site — Customer", the site-mapping, advanced-mapping, group-mapping and lock forms saving
//! through the same validation as the JSON (a bad value named in words, nothing saved), and destructive forms
//! changing nothing without their tick box.
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
    /// The display name of one of the tenant's groups.
    group: String,
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
    let group = world.tenants[0].groups[0].display_name.clone();
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
            name: "words".into(),
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
        group,
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

/// The connection's stored mapping configuration, through the API.
async fn mapping(fx: &Fixture) -> Value {
    let r = api(
        &fx.app,
        Method::GET,
        &format!("/api/v1/connections/{}/mappings", fx.id),
        &fx.admin,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json()
}

/// The text of the page's error notice (empty when none).
fn error_of(html: &str) -> &str {
    html.split_once(r#"<p class="error" role="alert">"#)
        .and_then(|(_, rest)| rest.split_once("</p>"))
        .map_or("", |(e, _)| e)
}

store_test! {
    async fn times_show_as_time_elements_and_schedules_in_words(db: &TestDb) {
        let fx = fixture(db).await;
        let added = post_form(&fx.app, &format!("/connections/{}/schedules", fx.id), &fx.admin, &[("every", "30m"), ("time_zone", "UTC")]).await;
        assert_eq!(added.status, StatusCode::OK, "{}", added.text);
        assert!(added.text.contains("every 30 minutes"), "the interval in words: {}", added.text);
        assert!(!added.text.contains("1800 s"), "no raw seconds: {}", added.text);
        // The next due time is a <time> with its RFC 3339 instant and a UTC fallback to the second.
        let at = added.text.split_once("<time datetime=\"").map(|(_, rest)| rest).expect("a <time> element");
        let (stamp, rest) = at.split_once("\">").unwrap();
        assert!(stamp.len() == 20 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T', "RFC 3339 to the second: {stamp}");
        let fallback = rest.split_once("</time>").unwrap().0;
        assert_eq!(fallback, format!("{} {} UTC", &stamp[..10], &stamp[11..19]), "the UTC fallback");
        // Every page loads the script that shows them in the viewer's zone.
        assert!(added.text.contains(r#"<script src="/static/app.js"></script>"#), "{}", added.text);
        let script = get_page(&fx.app, "/static/app.js", &fx.admin).await;
        assert!(script.text.contains("time[datetime]") && script.text.contains("resolvedOptions().timeZone"), "{}", script.text);
        // The account page's token times are <time> elements too.
        let account = get_page(&fx.app, "/account", &fx.admin).await;
        assert!(account.text.contains("<time datetime=\""), "{}", account.text);
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn sites_read_as_site_and_customer_and_the_target_form_saves_through_validation(db: &TestDb) {
        let fx = fixture(db).await;
        let sites = format!("/connections/{}/mappings/sites", fx.id);
        let page = get_page(&fx.app, &sites, &fx.admin).await;
        assert!(page.text.contains("Main — Contoso"), "the site picker and table name the customer: {}", page.text);
        let customer = mapping(&fx).await["site_mappings"][0]["target"]["site_id"].clone();
        assert!(customer.is_i64(), "the generated mapping targets the main site");
        // The customer picker offers the connection's customer by name.
        let (_, picker) = page.text.split_once(r#"name="customer_id""#).unwrap();
        let picker = picker.split_once("</select>").unwrap().0;
        let customer_id = picker.split_once(r#"<option value=""#).unwrap().1.split_once('"').unwrap().0.to_owned();
        assert!(picker.contains(">Contoso</option>"), "{picker}");
        // "A site per value" without its property is refused in words, and nothing is saved.
        let before = mapping(&fx).await;
        let refused = post_form(&fx.app, &sites, &fx.admin, &[("op", "add"), ("name", "Offices"), ("sequence", "20"), ("target", "customer_by_field"), ("customer_id", &customer_id), ("by", " ")]).await;
        assert_eq!(error_of(&refused.text), "Not saved: Property that names the site: give a user property, e.g. officeLocation.", "{}", refused.text);
        assert_eq!(mapping(&fx).await, before, "nothing was saved");
        // A bad sequence names the field.
        let refused = post_form(&fx.app, &sites, &fx.admin, &[("op", "add"), ("name", "Offices"), ("sequence", "ten"), ("target", "existing_site"), ("site_id", &customer.to_string())]).await;
        assert_eq!(error_of(&refused.text), "Not saved: Sequence must be a whole number from -100000 to 100000.", "{}", refused.text);
        // Saved: the configuration holds the target, and the table says it in words.
        let saved = post_form(&fx.app, &sites, &fx.admin, &[("op", "add"), ("name", "Offices"), ("sequence", "20"), ("target", "customer_by_field"), ("customer_id", &customer_id), ("by", "officeLocation"), ("group", ""), ("filter", ""), ("external_users", "exclude")]).await;
        assert!(saved.text.contains("Mappings saved"), "{}", saved.text);
        assert!(saved.text.contains("A site per value of officeLocation under Contoso (made when missing)"), "{}", saved.text);
        let now = mapping(&fx).await;
        let offices = now["site_mappings"].as_array().unwrap().iter().find(|m| m["name"] == "Offices").unwrap().clone();
        assert_eq!(offices["target"], json!({"kind": "customer_by_field", "customer_id": customer_id.parse::<i64>().unwrap(), "field": "officeLocation"}));
        assert_eq!(offices["sequence"], 20);
        // Removing it needs the tick box.
        let id = offices["id"].to_string();
        let unticked = post_form(&fx.app, &sites, &fx.admin, &[("op", "remove"), ("mapping", &id)]).await;
        assert_eq!(error_of(&unticked.text), "Not saved: Nothing was changed: tick the box to confirm the removal of “Offices”.", "{}", unticked.text);
        assert_eq!(mapping(&fx).await, now, "nothing was removed");
        let removed = post_form(&fx.app, &sites, &fx.admin, &[("op", "remove"), ("mapping", &id), ("confirm", "on")]).await;
        assert!(removed.text.contains("Mappings saved"), "{}", removed.text);
        assert!(mapping(&fx).await["site_mappings"].as_array().unwrap().iter().all(|m| m["name"] != "Offices"));
        // A read-only account sees the names, not the forms, and cannot post them.
        let seen = get_page(&fx.app, &sites, &fx.reader).await;
        assert!(seen.text.contains("Main — Contoso") && !seen.text.contains("Add site mapping") && !seen.text.contains("Yes, remove"), "{}", seen.text);
        let refused = post_form(&fx.app, &sites, &fx.reader, &[("op", "remove"), ("mapping", "1"), ("confirm", "on")]).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn the_advanced_forms_save_through_the_same_validation_as_the_json(db: &TestDb) {
        let fx = fixture(db).await;
        let advanced = format!("/connections/{}/mappings/advanced", fx.id);
        let page = get_page(&fx.app, &advanced, &fx.admin).await;
        for form in ["Save circuit breaker", "Save followers", "Save service accounts", "Save licence management", "Save role options", "Advanced mappings (as code)"] {
            assert!(page.text.contains(form), "{form}: {}", page.text);
        }
        assert!(page.text.contains(r#"name="max_deactivate_percent" value="20" min="0" max="100" step="any" required"#), "a bounded number: {}", page.text);
        // Out of bounds, or not a number: refused in words, nothing saved.
        let before = mapping(&fx).await;
        for bad in ["150", "0", "abc", "NaN", ""] {
            let refused = post_form(&fx.app, &advanced, &fx.admin, &[("op", "circuit-breaker"), ("max_deactivate_percent", bad), ("max_change_percent", "30"), ("floor", "3")]).await;
            assert_eq!(error_of(&refused.text), "Not saved: Maximum share to deactivate must be a number more than 0 and at most 100.", "{bad}: {}", refused.text);
        }
        let refused = post_form(&fx.app, &advanced, &fx.admin, &[("op", "circuit-breaker"), ("max_deactivate_percent", "35"), ("max_change_percent", "30"), ("floor", "-1")]).await;
        assert_eq!(error_of(&refused.text), "Not saved: Always allow this many deactivations must be a whole number, 0 or more.", "{}", refused.text);
        let refused = post_form(&fx.app, &advanced, &fx.admin, &[("op", "circuit-breaker"), ("max_deactivate_percent", "35"), ("max_change_percent", "101"), ("floor", "3")]).await;
        assert_eq!(error_of(&refused.text), "Not saved: Maximum share to move or change must be a number more than 0 and at most 100.", "{}", refused.text);
        let refused = post_form(&fx.app, &advanced, &fx.admin, &[("op", "followers"), ("mode", "members"), ("member_cap", "0")]).await;
        assert_eq!(error_of(&refused.text), "Not saved: Most members added must be a whole number, 1 or more.", "{}", refused.text);
        // A value the form reads but the configuration's validation refuses: its message, nothing saved.
        let refused = post_form(&fx.app, &advanced, &fx.admin, &[("op", "service-accounts"), ("enabled", "on"), ("group", ""), ("required_skus", "not-a-sku")]).await;
        assert!(error_of(&refused.text).contains("is not a SKU id"), "{}", refused.text);
        assert!(!refused.text.contains("serde") && !refused.text.contains("invalid type"), "{}", refused.text);
        assert_eq!(mapping(&fx).await, before, "nothing was saved");
        // Saved: the stored configuration shows each change, and the form shows it back.
        let saved = post_form(&fx.app, &advanced, &fx.admin, &[("op", "circuit-breaker"), ("max_deactivate_percent", "35.5"), ("max_change_percent", "25"), ("floor", "3")]).await;
        assert!(saved.text.contains("Mappings saved"), "{}", saved.text);
        assert!(saved.text.contains(r#"name="max_deactivate_percent" value="35.5""#), "{}", saved.text);
        let saved = post_form(&fx.app, &advanced, &fx.admin, &[("op", "followers"), ("enabled", "on"), ("mode", "members"), ("member_cap", "25")]).await;
        assert!(saved.text.contains("Mappings saved"), "{}", saved.text);
        let saved = post_form(&fx.app, &advanced, &fx.admin, &[("op", "advanced-options"), ("nested_groups", "on")]).await;
        assert!(saved.text.contains("Mappings saved"), "{}", saved.text);
        let saved = post_form(&fx.app, &advanced, &fx.admin, &[("op", "import-options"), ("match_order", "email"), ("deactivate_not_found", "on"), ("sync_account_enabled", "on")]).await;
        assert!(saved.text.contains("Mappings saved"), "{}", saved.text);
        let now = mapping(&fx).await;
        assert_eq!(now["circuit_breaker"], json!({"max_deactivate_percent": 35.5, "max_change_percent": 25.0, "floor": 3}));
        assert_eq!(now["followers"], json!({"enabled": true, "mode": "members", "member_cap": 25}));
        assert_eq!(now["advanced"]["nested_groups"], true);
        assert_eq!(now["advanced"]["full_role_management"], false);
        assert_eq!(now["imports"], json!({"match_order": ["email"], "deactivate_not_found": true, "sync_account_enabled": true, "reassign_tickets_of_inactive_agents": false}));
        // The JSON editor is still there for mappings-as-code and shows the same values.
        let code = saved.text.split_once(r#"name="json""#).expect("the JSON editor").1.split_once("</textarea>").unwrap().0;
        assert!(code.contains("max_deactivate_percent&#34;: 35.5"), "{code}");
        // A reader sees no forms and cannot post one.
        let seen = get_page(&fx.app, &advanced, &fx.reader).await;
        assert!(!seen.text.contains("Save circuit breaker"), "{}", seen.text);
        let refused = post_form(&fx.app, &advanced, &fx.reader, &[("op", "circuit-breaker"), ("max_deactivate_percent", "90"), ("max_change_percent", "30"), ("floor", "3")]).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn destructive_forms_change_nothing_without_their_tick_box(db: &TestDb) {
        let fx = fixture(db).await;
        let id = fx.id;
        let added = post_form(&fx.app, &format!("/connections/{id}/schedules"), &fx.admin, &[("every", "2h"), ("time_zone", "UTC")]).await;
        assert!(added.text.contains("every 2 hours"), "{}", added.text);
        let schedules = api(&fx.app, Method::GET, &format!("/api/v1/connections/{id}/schedules"), &fx.admin, None).await.json();
        let schedule = schedules["schedules"][0]["id"].as_i64().unwrap();
        // Each destructive form says what will happen beside its tick box.
        assert!(added.text.contains(&format!("Yes, remove schedule {schedule}: it no longer starts syncs")), "{}", added.text);
        assert!(added.text.contains("Yes, forget the delta links: the next sync reads every record again"), "{}", added.text);
        let remove = format!("/connections/{id}/schedules/{schedule}/remove");
        let unticked = post_form(&fx.app, &remove, &fx.admin, &[]).await;
        assert_eq!(error_of(&unticked.text), format!("Nothing was changed: tick the box to confirm the removal of schedule {schedule}."), "{}", unticked.text);
        let still = api(&fx.app, Method::GET, &format!("/api/v1/connections/{id}/schedules"), &fx.admin, None).await;
        assert!(still.text.contains("7200"), "the schedule is still there: {}", still.text);
        let removed = post_form(&fx.app, &remove, &fx.admin, &[("confirm", "on")]).await;
        assert!(removed.text.contains(&format!("Schedule {schedule} removed.")), "{}", removed.text);
        let reset = post_form(&fx.app, &format!("/connections/{id}/cursors/reset"), &fx.admin, &[]).await;
        assert_eq!(error_of(&reset.text), "Nothing was changed: tick the box to confirm the reset of the delta.", "{}", reset.text);
        let reset = post_form(&fx.app, &format!("/connections/{id}/cursors/reset"), &fx.admin, &[("confirm", "on")]).await;
        assert!(reset.text.contains("Delta reset"), "{}", reset.text);
        // A tenant allowed to sign in stays allowed until the removal is ticked.
        let tenant = "11111111-2222-3333-4444-555555555555";
        let allowed = post_form(&fx.app, "/admin/sso", &fx.admin, &[("action", "allow"), ("tenant_id", tenant), ("note", "Partner staff")]).await;
        assert!(allowed.text.contains(&format!("Yes, people of Partner staff ({tenant}) can no longer sign in")), "{}", allowed.text);
        let unticked = post_form(&fx.app, "/admin/sso", &fx.admin, &[("action", "disallow"), ("tenant_id", tenant)]).await;
        assert_eq!(error_of(&unticked.text), "Nothing was changed: tick the box to confirm removing the tenant.", "{}", unticked.text);
        assert!(unticked.text.contains(&format!("Remove Partner staff ({tenant})")), "still listed: {}", unticked.text);
        let removed = post_form(&fx.app, "/admin/sso", &fx.admin, &[("action", "disallow"), ("tenant_id", tenant), ("confirm", "on")]).await;
        assert!(removed.text.contains("may no longer sign in"), "{}", removed.text);
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn the_directory_names_sites_with_their_customer(db: &TestDb) {
        let fx = fixture(db).await;
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let config = tx.connection(fx.id).await.unwrap().unwrap().config;
        let customer = deskbridge_core::RecordId(config["customer_id"].as_i64().unwrap());
        let site = tx.main_site(customer).await.unwrap().unwrap();
        let fields: deskbridge_store::Fields = [
            ("site_id".to_owned(), json!(site.0)),
            ("name".to_owned(), json!("Ada Lovelace")),
            ("email".to_owned(), json!("ada@contoso.test")),
        ]
        .into_iter()
        .collect();
        let user = tx.insert(deskbridge_store::Entity::User, Some(&deskbridge_store::SourceKey::new(fx.id, "ada")), &fields).await.unwrap();
        tx.commit().await.unwrap();
        let users = get_page(&fx.app, &format!("/connections/{}/directory/users", fx.id), &fx.admin).await;
        assert_eq!(users.status, StatusCode::OK, "{}", users.text);
        assert!(users.text.contains("<td>Main — Contoso</td>"), "{}", users.text);
        assert!(users.text.contains(&format!(r#"<a href="/users/{}">Ada Lovelace</a>"#, user.0)), "{}", users.text);
        assert!(!users.text.contains(&format!("<td>{}</td><td>Ada", site.0)), "{}", users.text);
        let sites = get_page(&fx.app, &format!("/connections/{}/directory/sites", fx.id), &fx.admin).await;
        assert!(sites.text.contains("<td>Contoso</td>"), "{}", sites.text);
        fx.emu.shutdown().await;
    }
}

/// Desk records by name, made directly in the store (the desk's own roles, teams and CABs).
async fn desk_record(db: &TestDb, entity: deskbridge_store::Entity, name: &str) -> i64 {
    let fields: deskbridge_store::Fields = [("name".to_owned(), json!(name))].into_iter().collect();
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let id = tx.insert(entity, None, &fields).await.unwrap();
    tx.commit().await.unwrap();
    id.0
}

store_test! {
    async fn groups_give_roles_teams_and_cabs_through_forms_that_name_them(db: &TestDb) {
        use deskbridge_store::Entity;
        let fx = fixture(db).await;
        let role = desk_record(db, Entity::AgentRole, "Second line").await;
        let user_role = desk_record(db, Entity::UserRole, "Approver").await;
        let team = desk_record(db, Entity::Team, "Network team").await;
        let cab = desk_record(db, Entity::Cab, "Change board").await;
        let cab_role = desk_record(db, Entity::CabRole, "Chair").await;
        let advanced = format!("/connections/{}/mappings/advanced", fx.id);
        let page = get_page(&fx.app, &advanced, &fx.admin).await;
        for form in ["Add agent role mapping", "Add user role mapping", "Add team mapping", "Add CAB mapping", "Advanced mappings (as code)"] {
            assert!(page.text.contains(form), "{form}: {}", page.text);
        }
        assert!(page.text.contains(&format!(r#"<option value="{role}">Second line</option>"#)), "the desk's roles by name: {}", page.text);
        assert!(page.text.contains(&format!(r#"<option value="{cab_role}">Chair</option>"#)), "{}", page.text);
        // Refused in words naming the field; nothing saved.
        let before = mapping(&fx).await;
        let refused = post_form(&fx.app, &advanced, &fx.admin, &[("op", "add-agent-role"), ("group", "  "), ("id", &role.to_string())]).await;
        assert_eq!(error_of(&refused.text), "Not saved: Group name must not be empty.", "{}", refused.text);
        let refused = post_form(&fx.app, &advanced, &fx.admin, &[("op", "add-team"), ("group", &fx.group), ("id", "")]).await;
        assert_eq!(error_of(&refused.text), "Not saved: Team: choose one from the list.", "{}", refused.text);
        let refused = post_form(&fx.app, &advanced, &fx.admin, &[("op", "add-cab"), ("group", &fx.group), ("id", &cab.to_string()), ("cab_role_id", "chair")]).await;
        assert_eq!(error_of(&refused.text), "Not saved: CAB role: choose one from the list.", "{}", refused.text);
        // The whole configuration's validation: a group the tenant lacks, a role the desk lacks.
        let refused = post_form(&fx.app, &advanced, &fx.admin, &[("op", "add-agent-role"), ("group", "No such group"), ("id", &role.to_string())]).await;
        assert!(error_of(&refused.text).contains("unknown Azure group &#39;No such group&#39;"), "{}", refused.text);
        let refused = post_form(&fx.app, &advanced, &fx.admin, &[("op", "add-user-role"), ("group", &fx.group), ("id", "4242")]).await;
        assert!(error_of(&refused.text).contains("user role 4242 does not exist"), "a record the desk lacks: {}", refused.text);
        assert!(!refused.text.contains("serde") && !refused.text.contains("invalid type"), "{}", refused.text);
        assert_eq!(mapping(&fx).await, before, "nothing was saved");
        // Saved: each list holds its entry, and the table names the records.
        for (op, id, extra) in [("add-agent-role", role, None), ("add-user-role", user_role, None), ("add-team", team, None), ("add-cab", cab, Some(cab_role))] {
            let id = id.to_string();
            let extra = extra.map(|r| r.to_string()).unwrap_or_default();
            let saved = post_form(&fx.app, &advanced, &fx.admin, &[("op", op), ("group", &fx.group), ("id", &id), ("cab_role_id", &extra)]).await;
            assert!(saved.text.contains("Mappings saved"), "{op}: {}", saved.text);
        }
        let now = mapping(&fx).await;
        assert_eq!(now["advanced"]["agent_roles"], json!([{"group": fx.group, "id": role}]));
        assert_eq!(now["advanced"]["user_roles"], json!([{"group": fx.group, "id": user_role}]));
        assert_eq!(now["advanced"]["teams"], json!([{"group": fx.group, "id": team}]));
        assert_eq!(now["advanced"]["cabs"], json!([{"group": fx.group, "cab_id": cab, "cab_role_id": cab_role}]));
        let page = get_page(&fx.app, &advanced, &fx.admin).await;
        let table = page.text.split_once(r#"id="group-mappings""#).expect("the table").1.split_once("</table>").unwrap().0;
        for name in ["<td>Second line</td>", "<td>Approver</td>", "<td>Network team</td>", "<td>Change board, as Chair</td>"] {
            assert!(table.contains(name), "{name}: {table}");
        }
        assert!(!table.contains(&format!("<td>{role}</td>")), "names, not ids: {table}");
        // Removing one needs the tick box.
        let remove = [("op", "remove-group-mapping"), ("list", "teams"), ("group", fx.group.as_str()), ("id", &team.to_string())];
        let unticked = post_form(&fx.app, &advanced, &fx.admin, &remove).await;
        assert_eq!(error_of(&unticked.text), format!("Not saved: Nothing was changed: tick the box to confirm the removal of the mapping of “{}”.", fx.group), "{}", unticked.text);
        assert_eq!(mapping(&fx).await, now, "nothing was removed");
        let mut ticked = remove.to_vec();
        ticked.push(("confirm", "on"));
        let removed = post_form(&fx.app, &advanced, &fx.admin, &ticked).await;
        assert!(removed.text.contains("Mappings saved"), "{}", removed.text);
        let after = mapping(&fx).await;
        assert_eq!(after["advanced"]["teams"], json!([]));
        assert_eq!(after["advanced"]["agent_roles"], now["advanced"]["agent_roles"], "the other lists are untouched");
        // A reader sees the names but no forms, and cannot post one.
        let seen = get_page(&fx.app, &advanced, &fx.reader).await;
        assert!(seen.text.contains("<td>Second line</td>") && !seen.text.contains("Add agent role mapping") && !seen.text.contains("Yes, members of"), "{}", seen.text);
        let refused = post_form(&fx.app, &advanced, &fx.reader, &[("op", "add-team"), ("group", &fx.group), ("id", &team.to_string())]).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn field_and_record_locks_are_added_and_removed_through_forms(db: &TestDb) {
        let fx = fixture(db).await;
        let advanced = format!("/connections/{}/mappings/advanced", fx.id);
        let page = get_page(&fx.app, &advanced, &fx.admin).await;
        assert!(page.text.contains("Add field lock") && page.text.contains("Add record lock"), "{}", page.text);
        let before = mapping(&fx).await;
        let refused = post_form(&fx.app, &advanced, &fx.admin, &[("op", "add-field-lock"), ("entity", "user"), ("field", " ")]).await;
        assert_eq!(error_of(&refused.text), "Not saved: Desk field must not be empty.", "{}", refused.text);
        let refused = post_form(&fx.app, &advanced, &fx.admin, &[("op", "add-field-lock"), ("entity", "robot"), ("field", "job_title")]).await;
        assert_eq!(error_of(&refused.text), "Not saved: Applies to: choose users or agents.", "{}", refused.text);
        let refused = post_form(&fx.app, &advanced, &fx.admin, &[("op", "add-field-lock"), ("entity", "user"), ("field", "no_such_field")]).await;
        assert!(error_of(&refused.text).contains("unknown desk user field &#39;no_such_field&#39;"), "{}", refused.text);
        let refused = post_form(&fx.app, &advanced, &fx.admin, &[("op", "add-record-lock"), ("entity", "user"), ("external_id", "")]).await;
        assert_eq!(error_of(&refused.text), "Not saved: Entra object id must not be empty.", "{}", refused.text);
        let object = "0f3c2a1b-1111-2222-3333-444455556666";
        let refused = post_form(&fx.app, &advanced, &fx.admin, &[("op", "add-record-lock"), ("entity", "user"), ("external_id", object), ("fields", "")]).await;
        assert!(error_of(&refused.text).contains("the lock neither keeps the record active nor names a field"), "{}", refused.text);
        assert_eq!(mapping(&fx).await, before, "nothing was saved");
        // Saved, and shown in the tables.
        let saved = post_form(&fx.app, &advanced, &fx.admin, &[("op", "add-field-lock"), ("entity", "agent"), ("field", "job_title")]).await;
        assert!(saved.text.contains("Mappings saved"), "{}", saved.text);
        let saved = post_form(&fx.app, &advanced, &fx.admin, &[("op", "add-record-lock"), ("entity", "user"), ("external_id", object), ("keep_active", "on"), ("fields", "job_title, phone")]).await;
        assert!(saved.text.contains("Mappings saved"), "{}", saved.text);
        let now = mapping(&fx).await;
        assert_eq!(now["field_locks"], json!([{"entity": "agent", "field": "job_title"}]));
        assert_eq!(now["record_locks"], json!([{"entity": "user", "external_id": object, "keep_active": true, "fields": ["job_title", "phone"]}]));
        let table = saved.text.split_once(r#"id="record-locks""#).expect("the table").1.split_once("</table>").unwrap().0;
        assert!(table.contains(&format!("<td>{object}</td>")) && table.contains("<td>job_title, phone</td>"), "{table}");
        // Removals need their tick box.
        let unlock = [("op", "remove-field-lock"), ("entity", "agent"), ("field", "job_title")];
        let unticked = post_form(&fx.app, &advanced, &fx.admin, &unlock).await;
        assert_eq!(error_of(&unticked.text), "Not saved: Nothing was changed: tick the box to confirm unlocking “job_title”.", "{}", unticked.text);
        let unlock_record = [("op", "remove-record-lock"), ("entity", "user"), ("external_id", object)];
        let unticked = post_form(&fx.app, &advanced, &fx.admin, &unlock_record).await;
        assert_eq!(error_of(&unticked.text), format!("Not saved: Nothing was changed: tick the box to confirm the removal of the lock on {object}."), "{}", unticked.text);
        assert_eq!(mapping(&fx).await, now, "nothing was removed");
        for form in [&unlock[..], &unlock_record[..]] {
            let mut ticked = form.to_vec();
            ticked.push(("confirm", "on"));
            let removed = post_form(&fx.app, &advanced, &fx.admin, &ticked).await;
            assert!(removed.text.contains("Mappings saved"), "{}", removed.text);
        }
        let after = mapping(&fx).await;
        assert_eq!((after["field_locks"].clone(), after["record_locks"].clone()), (json!([]), json!([])));
        // A reader sees no forms and cannot post one.
        let seen = get_page(&fx.app, &advanced, &fx.reader).await;
        assert!(seen.text.contains("Record locks") && !seen.text.contains("Add record lock"), "{}", seen.text);
        let refused = post_form(&fx.app, &advanced, &fx.reader, &[("op", "add-field-lock"), ("entity", "user"), ("field", "job_title")]).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn licence_management_roles_are_added_and_removed_through_forms(db: &TestDb) {
        let fx = fixture(db).await;
        let role = desk_record(db, deskbridge_store::Entity::AgentRole, "Named seat").await;
        let advanced = format!("/connections/{}/mappings/advanced", fx.id);
        let page = get_page(&fx.app, &advanced, &fx.admin).await;
        assert!(page.text.contains("Add licence role") && page.text.contains("Named seat"), "{}", page.text);
        let before = mapping(&fx).await;
        let refused = post_form(&fx.app, &advanced, &fx.admin, &[("op", "add-licence-role"), ("list", "named"), ("id", "")]).await;
        assert_eq!(error_of(&refused.text), "Not saved: Agent role: choose one from the list.", "{}", refused.text);
        let refused = post_form(&fx.app, &advanced, &fx.admin, &[("op", "add-licence-role"), ("list", "bogus"), ("id", &role.to_string())]).await;
        assert_eq!(error_of(&refused.text), "Not saved: What it does: choose one from the list.", "{}", refused.text);
        assert_eq!(mapping(&fx).await, before, "nothing was saved");
        let saved = post_form(&fx.app, &advanced, &fx.admin, &[("op", "add-licence-role"), ("list", "named"), ("id", &role.to_string())]).await;
        assert!(saved.text.contains("Mappings saved"), "{}", saved.text);
        assert_eq!(mapping(&fx).await["licence_management"]["named_licence_roles"], json!([role]));
        let table = saved.text.split_once(r#"id="licence-roles""#).expect("the table").1.split_once("</table>").unwrap().0;
        assert!(table.contains("<td>Named seat</td>") && table.contains("gives a named licence"), "{table}");
        let twice = post_form(&fx.app, &advanced, &fx.admin, &[("op", "add-licence-role"), ("list", "named"), ("id", &role.to_string())]).await;
        assert_eq!(error_of(&twice.text), "Not saved: That agent role is on the list already.", "{}", twice.text);
        // The removal needs its tick box.
        let remove = [("op", "remove-licence-role"), ("list", "named"), ("id", &role.to_string() as &str)];
        let unticked = post_form(&fx.app, &advanced, &fx.admin, &remove).await;
        assert!(error_of(&unticked.text).contains("tick the box"), "{}", unticked.text);
        let mut ticked = remove.to_vec();
        ticked.push(("confirm", "on"));
        let removed = post_form(&fx.app, &advanced, &fx.admin, &ticked).await;
        assert!(removed.text.contains("Mappings saved"), "{}", removed.text);
        assert_eq!(mapping(&fx).await["licence_management"]["named_licence_roles"], json!([]));
        // A reader sees the table, no form, and cannot post one.
        let seen = get_page(&fx.app, &advanced, &fx.reader).await;
        assert!(seen.text.contains("Agent roles and licences") && !seen.text.contains("Add licence role"), "{}", seen.text);
        let refused = post_form(&fx.app, &advanced, &fx.reader, &[("op", "add-licence-role"), ("list", "named"), ("id", &role.to_string())]).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        fx.emu.shutdown().await;
    }
}

/// The value of the first option of the select named `name` that has one.
fn first_option(html: &str, name: &str) -> String {
    let select = html
        .split_once(&format!(r#"name="{name}""#))
        .unwrap_or_else(|| panic!("no select {name}: {html}"))
        .1;
    let select = select.split_once("</select>").unwrap().0;
    select
        .split(r#"<option value=""#)
        .skip(1)
        .map(|o| o.split_once('"').unwrap().0)
        .find(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("{name} offers nothing: {select}"))
        .to_owned()
}

store_test! {
    async fn the_match_site_field_and_imported_customer_targets_are_forms_too(db: &TestDb) {
        let fx = fixture(db).await;
        let sites = format!("/connections/{}/mappings/sites", fx.id);
        let page = get_page(&fx.app, &sites, &fx.admin).await;
        assert!(page.text.contains("To the site whose field holds the user&#39;s value") && page.text.contains("To the main site of the imported customer a property names"), "{}", page.text);
        let user_field = first_option(&page.text, "user_field");
        let property = first_option(&page.text, "customer_property");
        let customer = first_option(&page.text, "match_customer_id");
        let main_site = first_option(&page.text, "unmatched_site_id");
        let base = |target: &'static str| vec![("op", "add"), ("name", "Matched"), ("sequence", "30"), ("target", target), ("external_users", "exclude")];
        // Refused naming the field; nothing saved.
        let before = mapping(&fx).await;
        let mut form = base("match_site_field");
        form.extend([("site_field", "name"), ("user_field", user_field.as_str()), ("match_customer_id", ""), ("unmatched", "default_site"), ("unmatched_site_id", "")]);
        let refused = post_form(&fx.app, &sites, &fx.admin, &form).await;
        assert_eq!(error_of(&refused.text), "Not saved: Site for the others: choose one from the list.", "{}", refused.text);
        let mut form = base("match_site_field");
        form.extend([("site_field", "name"), ("user_field", ""), ("unmatched", "do_not_import")]);
        let refused = post_form(&fx.app, &sites, &fx.admin, &form).await;
        assert_eq!(error_of(&refused.text), "Not saved: User field: choose one from the list.", "{}", refused.text);
        let mut form = base("imported_customer");
        form.extend([("customer_property", ""), ("unmatched", "do_not_import")]);
        let refused = post_form(&fx.app, &sites, &fx.admin, &form).await;
        assert_eq!(error_of(&refused.text), "Not saved: Property that names the customer: choose one from the list.", "{}", refused.text);
        let mut form = base("imported_customer");
        form.extend([("customer_property", property.as_str()), ("unmatched", "")]);
        let refused = post_form(&fx.app, &sites, &fx.admin, &form).await;
        assert_eq!(error_of(&refused.text), "Not saved: Users who match no site: choose one from the list.", "{}", refused.text);
        // What the form reads but the whole configuration's validation refuses.
        let mut form = base("match_site_field");
        form.extend([("site_field", "custom:nope"), ("user_field", user_field.as_str()), ("unmatched", "do_not_import")]);
        let refused = post_form(&fx.app, &sites, &fx.admin, &form).await;
        assert!(error_of(&refused.text).contains("unknown site custom field &#39;nope&#39;"), "{}", refused.text);
        assert_eq!(mapping(&fx).await, before, "nothing was saved");
        // Saved, and the table says each in words.
        let mut form = base("match_site_field");
        form.extend([("site_field", "name"), ("user_field", user_field.as_str()), ("match_customer_id", customer.as_str()), ("unmatched", "default_site"), ("unmatched_site_id", main_site.as_str())]);
        let saved = post_form(&fx.app, &sites, &fx.admin, &form).await;
        assert!(saved.text.contains("Mappings saved"), "{}", saved.text);
        assert!(saved.text.contains(&format!("The site of Contoso whose name is the user&#39;s {user_field}; others go to Main — Contoso")), "{}", saved.text);
        let mut form = base("imported_customer");
        form[1] = ("name", "Parents");
        form.extend([("customer_property", property.as_str()), ("unmatched", "do_not_import")]);
        let saved = post_form(&fx.app, &sites, &fx.admin, &form).await;
        assert!(saved.text.contains("Mappings saved"), "{}", saved.text);
        assert!(saved.text.contains(&format!("The main site of the imported customer named by {property}; others are not imported")), "{}", saved.text);
        let now = mapping(&fx).await;
        let target = |name: &str| now["site_mappings"].as_array().unwrap().iter().find(|m| m["name"] == name).unwrap()["target"].clone();
        assert_eq!(target("Matched"), json!({"kind": "match_site_field", "customer_id": customer.parse::<i64>().unwrap(), "site_field": "name", "user_field": user_field, "unmatched": {"action": "default_site", "site_id": main_site.parse::<i64>().unwrap()}}));
        assert_eq!(target("Parents"), json!({"kind": "imported_customer", "property": property, "unmatched": {"action": "do_not_import"}}));
        // A reader sees neither form and cannot post one.
        let seen = get_page(&fx.app, &sites, &fx.reader).await;
        assert!(!seen.text.contains(r#"name="customer_property""#), "{}", seen.text);
        let mut form = base("imported_customer");
        form.extend([("customer_property", property.as_str()), ("unmatched", "do_not_import")]);
        let refused = post_form(&fx.app, &sites, &fx.reader, &form).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        fx.emu.shutdown().await;
    }
}
