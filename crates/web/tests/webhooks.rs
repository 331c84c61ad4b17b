//! Partner Center webhooks end to end, on SQLite and PostgreSQL: the emulator's Partner Center
//! with GDAP customers, a CSP connection signed in and synced, the app listening on 127.0.0.1 and
//! registered as the partner's webhook. A genuine signed delivery enqueues one licences job for
//! its tenant, which the worker runs; forged, stale, replayed deliveries, certificates from a
//! host not allowed or not chaining to the roots are refused without a job; an unknown customer is
//! accepted and does nothing. With the same setup, a tenant's admin consent through the site: the
//! Tenants tab's button for those who may change the connection, the API's consent URL, and the
//! callback that records the grant only for a state pending here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use deskbridge_core::{ManualClock, SharedClock, SystemClock};
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use deskbridge_source::settings::{EndpointPolicy, Purpose, validate};
use deskbridge_source::{NewConnection, SourceContext, SourceRegistry};
use deskbridge_store::{Connection, Entity, Job, RecordScope, Store};
use deskbridge_sync::SyncOptions;
use deskbridge_testkit::store_test;
use deskbridge_web::AppState;
use deskbridge_web::webhooks::PartnerWebhooks;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const REDIRECT: &str = "http://127.0.0.1:8765/callback";
const NAME: &str = "csp-hooks";

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

fn registry() -> SourceRegistry {
    deskbridge_connectors::registry().with_endpoint_policy(EndpointPolicy::allowing(["127.0.0.1"]))
}

/// A partner with `tenants` customer tenants, every GDAP relationship active and the GDAP app
/// consented everywhere (as the CSP connector's tests set it up).
async fn partner(seed: u64, tenants: usize) -> (Emulator, Vec<String>) {
    let mut world = World::generate(&GenerateOptions {
        seed,
        tenants,
        users_per_tenant: Some(3),
        ..GenerateOptions::default()
    })
    .unwrap();
    let partner = world.partner_tenant_id.clone().unwrap();
    let customers: Vec<String> = world
        .tenants
        .iter()
        .filter(|t| t.id != partner)
        .map(|t| t.id.clone())
        .collect();
    for tenant in &mut world.tenants {
        if tenant.id == partner {
            for r in &mut tenant.gdap_relationships {
                r.status = "active".into();
            }
        }
    }
    let emu = Emulator::start(EmulatorConfig::new(world)).await.unwrap();
    emu.set_auto_approve(true);
    let summary = emu.summary();
    let gdap = summary
        .apps
        .iter()
        .find(|a| a.kind == "gdap_multi_tenant")
        .unwrap();
    let http = reqwest::Client::new();
    for tenant in &customers {
        for (path, body) in [
            (format!("/partner/gdap/{tenant}"), json!({ "status": "active" })),
            (
                "/partner/consent".to_owned(),
                json!({ "client_id": gdap.client_id, "tenant": tenant, "consented": true }),
            ),
        ] {
            let r = http
                .put(format!("{}{path}", summary.admin_url))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
        }
    }
    (emu, customers)
}

/// Adds the CSP connection, signs the Partner Center app in (the emulator approves at once),
/// imports subscriptions as well as SKUs, and syncs everything once.
async fn connect(store: &Store, sources: &SourceRegistry, emu: &Emulator) -> Connection {
    let summary = emu.summary();
    let app = |kind: &str| summary.apps.iter().find(|a| a.kind == kind).unwrap().clone();
    let (partner, gdap) = (app("partner_center"), app("gdap_multi_tenant"));
    let source = sources.get("csp").unwrap();
    let settings = json!({
        "partner_tenant_id": summary.partner_tenant_id.clone().unwrap(),
        "partner_client_id": partner.client_id,
        "partner_client_secret": partner.client_secret,
        "gdap_client_id": gdap.client_id,
        "gdap_client_secret": gdap.client_secret,
        "authority_host": summary.authority_host,
        "graph_url": summary.graph_url,
        "partner_center_url": summary.partner_center_url,
        "partner_api_url": summary.partner_api_url,
    });
    let values = validate(
        source.settings(),
        settings.as_object().unwrap(),
        Purpose::Create,
        sources.endpoint_policy(),
    )
    .unwrap();
    let connection = source
        .create(
            store,
            NewConnection {
                name: NAME.into(),
                customer: None,
                enabled_instances: "production".into(),
                settings: values,
            },
        )
        .await
        .unwrap();
    let sign_in = source.sign_in().unwrap();
    let url = sign_in
        .begin(store, &connection, REDIRECT, &clock())
        .await
        .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http.get(&url).send().await.unwrap();
    let redirect = response.headers()["location"].to_str().unwrap().to_owned();
    sign_in
        .complete(store, &connection, &redirect, &clock())
        .await
        .unwrap();
    let change = json!({ "licence_import": "subscriptions_and_skus" });
    let values = validate(
        source.settings(),
        change.as_object().unwrap(),
        Purpose::Edit,
        sources.endpoint_policy(),
    )
    .unwrap();
    source.edit(store, &connection, values).await.unwrap();
    // The first run finds the tenants; the second reads them.
    for _ in 0..2 {
        let outcome = deskbridge_sync::sync(store, sources, NAME, &SyncOptions::default(), &clock())
            .await
            .unwrap();
        assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
    }
    let mut tx = store.read().await.unwrap();
    let connection = tx.connection(connection.id).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    connection
}

/// What reached the app: every request's headers and body, to replay and tamper with.
type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

async fn record(State(seen): State<Seen>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, 1 << 20).await.unwrap();
    seen.lock().unwrap().push((parts.headers.clone(), bytes.clone()));
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

fn state(store: &Store, emu: &Emulator, clock: SharedClock) -> AppState {
    let mut state = AppState::new(store.clone(), registry(), clock);
    let receiver = PartnerWebhooks::new(emu.webhook_root_pem(), &["127.0.0.1".to_owned()], true).unwrap();
    state.partner_webhooks = Some(Arc::new(receiver));
    state
}

async fn serve(state: AppState, seen: Seen) -> SocketAddr {
    let app = deskbridge_web::router(state).layer(axum::middleware::from_fn_with_state(seen, record));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Asks the emulator's Partner Center to deliver an event and waits for the delivery's status.
async fn emit(emu: &Emulator, event: Value) -> u16 {
    let before = emu.webhook_deliveries().len();
    let r = reqwest::Client::new()
        .post(format!("{}/partner/events", emu.summary().admin_url))
        .json(&event)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
    for _ in 0..200 {
        if let Some(attempt) = emu.webhook_deliveries().get(before) {
            return attempt
                .status
                .unwrap_or_else(|| panic!("delivery failed: {:?}", attempt.error));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no delivery of {event}");
}

fn subscription_event(emu: &Emulator, customer: &str, subscription: &str) -> Value {
    json!({
        "EventName": "subscription-updated",
        "ResourceName": "subscription",
        "ResourceUri": format!("{}/webhooks/v1/customers/{customer}/subscriptions/{subscription}", emu.summary().partner_center_url),
    })
}

async fn jobs(store: &Store) -> Vec<Job> {
    let mut tx = store.read().await.unwrap();
    let jobs = tx.jobs(None, 100).await.unwrap();
    tx.commit().await.unwrap();
    jobs
}

/// Sends a captured delivery again, with `edit` applied to its headers and body.
async fn resend(
    addr: SocketAddr,
    (headers, body): &(HeaderMap, Bytes),
    edit: impl FnOnce(&mut HeaderMap, &mut Vec<u8>),
) -> (u16, Value) {
    let mut headers = headers.clone();
    let mut body = body.to_vec();
    edit(&mut headers, &mut body);
    headers.remove("host");
    headers.remove("content-length");
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/webhooks/partner-center"))
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn desk_quantity(store: &Store, connection: &Connection, tenant: &str, subscription: &str) -> Value {
    let scope = RecordScope::ImportedFromTenant {
        connection: connection.id,
        tenant_id: tenant.to_owned(),
    };
    let mut tx = store.read().await.unwrap();
    let records = tx
        .list_scoped(Entity::Subscription, &scope, None, 1_000)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    records
        .iter()
        .find(|r| {
            r.source
                .as_ref()
                .is_some_and(|s| s.external_id.eq_ignore_ascii_case(subscription))
        })
        .map(|r| r.get("quantity").clone())
        .unwrap_or_else(|| panic!("no desk subscription {subscription}"))
}

store_test! {
    async fn partner_center_deliveries_are_verified_and_enqueue_one_licences_job(db: &TestDb) {
        let (emu, tenants) = partner(93, 2).await;
        let sources = registry();
        let connection = connect(&db.store, &sources, &emu).await;
        let seen: Seen = Arc::default();
        let addr = serve(state(&db.store, &emu, clock()), seen.clone()).await;
        let cx = SourceContext::detached(db.store.clone(), clock());
        let url = format!("http://{addr}/webhooks/partner-center");
        let registered = deskbridge_connectors::csp::register_webhook(&cx, NAME, &url).await.unwrap();
        assert_eq!(registered.webhook_url, url);
        assert!(registered.webhook_events.iter().any(|e| e == "subscription-updated"), "{registered:?}");

        // More seats in Partner Center, announced by a signed delivery.
        let first = tenants[0].clone();
        let (subscription, quantity) = emu.with_world_mut(|w| {
            let s = w.partner_center.subscriptions.iter_mut().find(|s| s.customer_id == first && s.status == "active" && s.unit_type != "Usage-based").unwrap();
            s.quantity += 3;
            (s.id.clone(), s.quantity)
        });
        assert_ne!(desk_quantity(&db.store, &connection, &first, &subscription).await, json!(quantity));
        assert_eq!(emit(&emu, subscription_event(&emu, &first, &subscription)).await, 200);
        let queued = jobs(&db.store).await;
        assert_eq!(queued.len(), 1, "{queued:?}");
        assert_eq!((queued[0].entity.as_str(), queued[0].tenant_id.as_deref(), queued[0].connection_id), ("licences", Some(first.as_str()), connection.id));
        assert_eq!(queued[0].origin, "webhook");
        // A second event for the tenant while the job is pending: no second job.
        assert_eq!(emit(&emu, subscription_event(&emu, &first, &subscription)).await, 200);
        assert_eq!(jobs(&db.store).await.len(), 1);

        // The worker runs the job: the desk subscription has the new quantity.
        let worker = deskbridge_agent::Worker::new(
            db.store.clone(),
            sources.clone(),
            clock(),
            deskbridge_agent::WorkerConfig::new("w1"),
            Arc::default(),
        );
        let (_stop, mut no_shutdown) = tokio::sync::watch::channel(false);
        let report = worker.run_one(&mut no_shutdown).await.unwrap().unwrap();
        assert_eq!(report.status, deskbridge_store::JobStatus::Succeeded, "{report:?}");
        assert_eq!(desk_quantity(&db.store, &connection, &first, &subscription).await, json!(quantity));

        let genuine = seen.lock().unwrap()[0].clone();
        let jobs_before = jobs(&db.store).await.len();
        // Replayed: the same delivery again.
        let (status, body) = resend(addr, &genuine, |_, _| {}).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["error"]["code"], "conflict");
        // Forged: another customer in a body the signature does not cover.
        let (status, body) = resend(addr, &genuine, |_, b| {
            *b = String::from_utf8(b.clone()).unwrap().replace(&first, &tenants[1]).into_bytes();
        }).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "unauthenticated");
        assert!(body["error"]["message"].as_str().unwrap().contains("signature"), "{body}");
        // A certificate from a host not allowed is not even fetched.
        let (status, body) = resend(addr, &genuine, |h, _| {
            let url = h["x-ms-certificate-url"].to_str().unwrap().replace("127.0.0.1", "localhost");
            h.insert("x-ms-certificate-url", url.parse().unwrap());
        }).await;
        assert_eq!(status, 401, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("not an allowed certificate host"), "{body}");
        // Not a Partner Center event at all.
        let (status, body) = resend(addr, &genuine, |_, b| *b = b"not json".to_vec()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "invalid_input");
        // Stale: the genuine delivery, received four days later.
        let later = Arc::new(ManualClock::new(clock().now() + jiff::SignedDuration::from_hours(96)));
        let stale_addr = serve(state(&db.store, &emu, later), Arc::default()).await;
        let (status, body) = resend(stale_addr, &genuine, |_, _| {}).await;
        assert_eq!(status, 401, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("time window"), "{body}");
        // Signed by a certificate that does not chain to the configured roots (another emulator's).
        let other = Emulator::start(EmulatorConfig::new(World::generate(&GenerateOptions { seed: 2, tenants: 1, ..GenerateOptions::default() }).unwrap())).await.unwrap();
        let mut untrusting = AppState::new(db.store.clone(), registry(), clock());
        untrusting.partner_webhooks = Some(Arc::new(PartnerWebhooks::new(other.webhook_root_pem(), &["127.0.0.1".to_owned()], true).unwrap()));
        let untrusting_addr = serve(untrusting, Arc::default()).await;
        let (status, body) = resend(untrusting_addr, &genuine, |_, _| {}).await;
        assert_eq!(status, 401, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("not trusted"), "{body}");
        other.shutdown().await;
        assert_eq!(jobs(&db.store).await.len(), jobs_before, "no refused delivery enqueued anything");

        // A customer no connection has: accepted, the same answer, nothing enqueued.
        let stranger = "0f0e0d0c-0b0a-4000-8000-000000000001";
        assert_eq!(emit(&emu, subscription_event(&emu, stranger, "sub")).await, 200);
        assert_eq!(jobs(&db.store).await.len(), jobs_before);

        // Unregistered: Partner Center has no registration left.
        assert!(deskbridge_connectors::csp::unregister_webhook(&cx, NAME).await.unwrap());
        let status = deskbridge_connectors::csp::webhook_status(&cx, NAME).await.unwrap();
        assert_eq!(status.registration, None);
        emu.shutdown().await;
    }
}

store_test! {
    async fn the_webhook_route_is_not_found_unless_configured(db: &TestDb) {
        let app = deskbridge_web::router(AppState::new(db.store.clone(), registry(), clock()));
        let request = axum::http::Request::post("/webhooks/partner-center")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"EventName":"test-created"}"#))
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 404);
        let body: Value = serde_json::from_slice(&to_bytes(response.into_body(), 1 << 16).await.unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "not_found");
        assert!(body["error"]["remedy"].as_str().unwrap().contains("--partner-webhook-roots"), "{body}");
    }
}

/// An account with an API token that is also its session cookie's value.
async fn person(store: &Store, name: &str, role: deskbridge_store::Role) -> (i64, String) {
    use deskbridge_web::auth;
    let token = format!("{}{}", auth::API_TOKEN_PREFIX, auth::random_token(32));
    let mut tx = store
        .begin(deskbridge_store::WriteContext::manual())
        .await
        .unwrap();
    let account = tx
        .create_account(&deskbridge_store::NewAccount {
            username: name.into(),
            display_name: name.into(),
            password_hash: auth::hash_password("correct horse battery").unwrap(),
            role,
            can_configure_connections: false,
            must_change_password: false,
        })
        .await
        .unwrap();
    let expires = store.now() + jiff::SignedDuration::from_hours(24);
    tx.create_api_token(account.id, "script", &auth::token_hash(&token), Some(expires))
        .await
        .unwrap();
    tx.create_session(account.id, &auth::token_hash(&token), "csrf", expires)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (account.id, token)
}

store_test! {
    async fn a_tenants_admin_consent_comes_back_to_the_sites_callback_checked_by_its_state(db: &TestDb) {
        let (emu, tenants) = partner(151, 2).await;
        let sources = registry();
        let connection = connect(&db.store, &sources, &emu).await;
        let summary = emu.summary();
        let gdap = summary.apps.iter().find(|a| a.kind == "gdap_multi_tenant").unwrap();
        let withdrawn = reqwest::Client::new()
            .put(format!("{}/partner/consent", summary.admin_url))
            .json(&json!({ "client_id": gdap.client_id, "tenant": tenants[0], "consented": false }))
            .send()
            .await
            .unwrap();
        assert!(withdrawn.status().is_success());
        let addr = serve(state(&db.store, &emu, clock()), Seen::default()).await;
        let (_, admin) = person(&db.store, "ada", deskbridge_store::Role::Administrator).await;
        let (reader_id, reader) = person(&db.store, "rea", deskbridge_store::Role::Agent).await;
        let mut tx = db.store.begin(deskbridge_store::WriteContext::manual()).await.unwrap();
        tx.set_grant(reader_id, connection.id, Some(deskbridge_store::Access::Read)).await.unwrap();
        tx.commit().await.unwrap();
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let cookie = |token: &str| format!("{}={token}", deskbridge_web::auth::SESSION_COOKIE);
        let page = |path: String, token: String| {
            let http = http.clone();
            let cookie = cookie(&token);
            async move {
                let r = http.get(format!("http://{addr}{path}")).header("cookie", cookie).send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        let tab = format!("/connections/{}/tenants", connection.id);

        // Those who may change the connection see the button; a reader does not.
        let (status, text) = page(tab.clone(), admin.clone()).await;
        assert_eq!(status, 200);
        assert!(text.contains("grant-consent") && text.contains("Unknown (run the check)"), "{text}");
        let (status, text) = page(tab.clone(), reader.clone()).await;
        assert_eq!(status, 200);
        assert!(!text.contains("grant-consent"), "{text}");
        let start = |tenant: String, token: String| {
            let http = http.clone();
            async move {
                http.post(format!("http://{addr}/api/v1/connections/{}/tenants/{tenant}/consent", connection.id))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
            }
        };
        assert_eq!(start(tenants[0].clone(), reader.clone()).await.status(), 403);

        // The page's button sends the browser to Microsoft's admin-consent page.
        let form = |token: &str, tenant: &str| {
            http.post(format!("http://{addr}{tab}/consent"))
                .header("cookie", cookie(token))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("csrf=csrf&tenant={tenant}"))
                .send()
        };
        let r = form(&admin, &tenants[0]).await.unwrap();
        assert_eq!(r.status(), 303);
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.contains(&format!("/{}/v2.0/adminconsent?", tenants[0])), "{location}");
        assert!(location.contains("%2Fauth%2Fmicrosoft%2Fconsent"), "{location}");
        assert_eq!(form(&reader, &tenants[0]).await.unwrap().status(), 403);

        // The API gives the URL, with this site's callback as the redirect.
        let r = start(tenants[0].clone(), admin.clone()).await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        let url = body["url"].as_str().unwrap().to_owned();
        assert!(url.contains(&format!("/{}/v2.0/adminconsent?", tenants[0])), "{url}");
        assert_eq!(body["redirect_uri"], format!("http://{addr}/auth/microsoft/consent"));

        // A forged state, or none, is refused and records nothing.
        for forged in [
            format!("?admin_consent=True&tenant={0}&state={1}.{0}.guessed", tenants[0], connection.id.0),
            format!("?admin_consent=True&tenant={}", tenants[0]),
        ] {
            let (status, text) = page(format!("/auth/microsoft/consent{forged}"), admin.clone()).await;
            assert!((400..500).contains(&status), "{status} {text}");
        }
        // Signed in is not enough: recording the grant needs modify on the connection.
        let response = http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 302);
        let back = response.headers()["location"].to_str().unwrap().to_owned();
        let path = back.strip_prefix(&format!("http://{addr}")).unwrap().to_owned();
        let (status, _) = page(path.clone(), reader.clone()).await;
        assert_eq!(status, 403);
        // The administrator's browser comes back: the grant is recorded and shown.
        let (status, text) = page(path.clone(), admin.clone()).await;
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("Admin consent granted in"), "{text}");
        // The time is a <time> the viewer's browser shows in its zone, UTC until then.
        assert!(text.contains("Granted <time datetime=\"20"), "{text}");
        let (status, _) = page(path, admin.clone()).await;
        assert!((400..500).contains(&status), "a redirect is used once");
        let listed: Value = http
            .get(format!("http://{addr}/api/v1/connections/{}/tenants", connection.id))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let consented: Vec<&Value> = listed["tenants"].as_array().unwrap().iter().filter(|t| !t["consented_at"].is_null()).collect();
        assert_eq!(consented.len(), 1, "{listed}");
        assert_eq!(consented[0]["tenant_id"], tenants[0].as_str());

        // Refused at Microsoft: the Tenants tab says so with Microsoft's code and what to do.
        let body: Value = start(tenants[1].clone(), admin.clone()).await.json().await.unwrap();
        let state = url::Url::parse(body["url"].as_str().unwrap())
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1
            .into_owned();
        let (status, text) = page(
            format!("/auth/microsoft/consent?error=access_denied&error_description=AADSTS65004%3A+User+declined&state={state}"),
            admin.clone(),
        )
        .await;
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("Admin consent was not granted") && text.contains("AADSTS65004"), "{text}");
    }
}
