//! Graph change notifications end to end, on SQLite and PostgreSQL: the emulator's Graph, an
//! Entra connection synced once, the app listening on 127.0.0.1 with notifications on, and the
//! subscriber's passes run by the test. A change in the emulator is notified, verified, and turns
//! into a delta round of the connection (no schedule exists) that the worker runs and that brings
//! the change to the desk. Forged notifications (wrong clientState, wrong tenant, unknown
//! subscription) enqueue nothing and are counted; an expired subscription is made again and
//! delivery resumes; `missed` queues a round; `reauthorizationRequired` is answered by a
//! reauthorization and `subscriptionRemoved` by a new subscription; an endpoint that does not echo
//! the validation token gets no subscription, and the error is recorded in people's words.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use deskbridge_connector_entra::{NewCredential, NewEntraConnection, add_entra_connection};
use deskbridge_connectors::entra::{SubscriberConfig, maintain};
use deskbridge_core::{ConnectionId, SharedClock, SystemClock};
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, SubscribedResource, World};
use deskbridge_source::SourceRegistry;
use deskbridge_source::settings::EndpointPolicy;
use deskbridge_store::{Entity, GraphSubscriptionRow, Job, JobStatus, Store, SubscriptionAction};
use deskbridge_sync::SyncOptions;
use deskbridge_testkit::{TestDb, store_test};
use deskbridge_web::AppState;
use deskbridge_web::graph_notifications::GraphNotifications;
use serde_json::{Value, json};

const NAME: &str = "contoso";

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

fn registry() -> SourceRegistry {
    deskbridge_connectors::registry().with_endpoint_policy(EndpointPolicy::allowing(["127.0.0.1"]))
}

struct Fixture {
    emu: Emulator,
    tenant: String,
    connection: ConnectionId,
    addr: SocketAddr,
    receiver: Arc<GraphNotifications>,
    config: SubscriberConfig,
}

/// The emulator, the connection synced once (so delta links exist), the app serving with
/// notifications on. Nothing is subscribed yet.
async fn fixture(db: &TestDb) -> Fixture {
    let world = World::generate(&GenerateOptions {
        seed: 19,
        tenants: 1,
        users_per_tenant: Some(8),
        ..GenerateOptions::default()
    })
    .unwrap();
    let emu = Emulator::start(EmulatorConfig::new(world)).await.unwrap();
    emu.set_notification_retry_pause(Duration::from_millis(20));
    let summary = emu.summary();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .unwrap();
    let tenant = summary.tenants[0].id.clone();
    let connection = add_entra_connection(
        &db.store,
        &NewEntraConnection {
            name: NAME.into(),
            tenant_id: tenant.clone(),
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
    let outcome = deskbridge_sync::sync(&db.store, &registry(), NAME, &SyncOptions::default(), &clock())
        .await
        .unwrap();
    assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
    let receiver = Arc::new(GraphNotifications::default());
    let mut state = AppState::new(db.store.clone(), registry(), clock());
    state.graph_notifications = Some(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = deskbridge_web::router(state);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = SubscriberConfig::new(&format!("http://{addr}"), "production");
    Fixture {
        emu,
        tenant,
        connection,
        addr,
        receiver,
        config,
    }
}

async fn jobs(store: &Store) -> Vec<Job> {
    let mut tx = store.read().await.unwrap();
    let jobs = tx.jobs(None, 100).await.unwrap();
    tx.commit().await.unwrap();
    jobs
}

async fn rows(store: &Store) -> Vec<GraphSubscriptionRow> {
    let mut tx = store.read().await.unwrap();
    let rows = tx.graph_subscriptions(None).await.unwrap();
    tx.commit().await.unwrap();
    rows
}

/// Waits (up to 15 s) for a queued job; deliveries are asynchronous.
async fn queued_job(store: &Store) -> Job {
    for _ in 0..600 {
        if let Some(job) = jobs(store)
            .await
            .into_iter()
            .find(|j| j.status == JobStatus::Queued)
        {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no job was queued");
}

/// Runs the one queued job with a worker, as serve's would.
async fn run_job(store: &Store) {
    let worker = deskbridge_agent::Worker::new(
        store.clone(),
        registry(),
        clock(),
        deskbridge_agent::WorkerConfig::new("w1"),
        Arc::default(),
    );
    let (_stop, mut no_shutdown) = tokio::sync::watch::channel(false);
    let report = worker.run_one(&mut no_shutdown).await.unwrap().unwrap();
    assert_eq!(report.status, JobStatus::Succeeded, "{report:?}");
}

fn member(emu: &Emulator, tenant: &str) -> String {
    emu.with_world(|w| {
        w.tenant(tenant)
            .unwrap()
            .live_users()
            .find(|u| u.user_type == "Member")
            .unwrap()
            .id
            .clone()
    })
}

fn change_title(emu: &Emulator, tenant: &str, user: &str, title: &str) {
    let patch = json!({ "jobTitle": title });
    emu.with_world_mut(|w| w.update_user(tenant, user, patch.as_object().unwrap()))
        .unwrap();
}

async fn desk_title(store: &Store, user: &str) -> Value {
    let mut tx = store.read().await.unwrap();
    let mut after = None;
    loop {
        let page = tx.list(Entity::User, after, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        if let Some(record) = page
            .iter()
            .find(|r| r.source.as_ref().is_some_and(|s| s.external_id == user))
        {
            let title = record.get("job_title").clone();
            tx.commit().await.unwrap();
            return title;
        }
    }
    panic!("no desk user {user}");
}

fn users_subscription(emu: &Emulator) -> deskbridge_emulator::GraphSubscription {
    emu.graph_subscriptions()
        .into_iter()
        .find(|s| s.resource == SubscribedResource::Users)
        .expect("a users subscription")
}

async fn post(addr: SocketAddr, path: &str, body: Value) -> u16 {
    reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

store_test! {
    async fn a_change_in_the_tenant_reaches_the_desk_through_a_notification(db: &TestDb) {
        let fx = fixture(db).await;
        let pass = maintain(&db.store, &clock(), &fx.config).await.unwrap();
        assert_eq!((pass.created, pass.failed), (2, 0), "{pass:?} {:?}", rows(&db.store).await);
        let subs = fx.emu.graph_subscriptions();
        assert_eq!(subs.len(), 2, "users and groups: {subs:?}");
        assert!(subs.iter().all(|s| s.notification_url == format!("http://{}/webhooks/graph", fx.addr)));
        assert!(subs.iter().all(|s| s.lifecycle_notification_url.as_deref() == Some(format!("http://{}/webhooks/graph/lifecycle", fx.addr).as_str())));
        // Each has its own clientState, and the store keeps only its hash.
        assert_ne!(subs[0].client_state, subs[1].client_state);
        for row in rows(&db.store).await {
            let sub = subs.iter().find(|s| Some(&s.id) == row.subscription_id.as_ref()).unwrap();
            let state = sub.client_state.clone().unwrap();
            assert_eq!(row.client_state_hash.as_deref(), Some(deskbridge_connectors::entra::client_state_hash(&state).as_str()));
            assert_ne!(row.client_state_hash.as_deref(), Some(state.as_str()));
        }
        // A second pass has nothing to do.
        let again = maintain(&db.store, &clock(), &fx.config).await.unwrap();
        assert_eq!((again.created, again.renewed, again.failed), (0, 0, 0), "{again:?}");
        assert!(jobs(&db.store).await.is_empty());

        let user = member(&fx.emu, &fx.tenant);
        change_title(&fx.emu, &fx.tenant, &user, "Notified Title");
        let job = queued_job(&db.store).await;
        assert_eq!((job.connection_id, job.entity.as_str(), job.full, job.origin.as_str(), job.schedule_id), (fx.connection, "directory", false, "notification", None));
        let delivered = fx.emu.graph_notifications();
        let batch = delivered.iter().find(|d| d.lifecycle_event.is_none()).unwrap();
        assert!(batch.resources.contains(&user), "{batch:?}");
        assert_eq!(batch.status, Some(202));
        assert_ne!(desk_title(&db.store, &user).await, json!("Notified Title"));
        run_job(&db.store).await;
        assert_eq!(desk_title(&db.store, &user).await, json!("Notified Title"));
        assert_eq!(fx.receiver.refused.load(Ordering::Relaxed), 0);
        let row = rows(&db.store).await.into_iter().find(|r| r.resource == "users").unwrap();
        assert!(row.notified_at.is_some() && row.refused == 0, "{row:?}");
    }
}

store_test! {
    async fn forged_notifications_enqueue_nothing_and_are_counted(db: &TestDb) {
        let fx = fixture(db).await;
        maintain(&db.store, &clock(), &fx.config).await.unwrap();
        let sub = users_subscription(&fx.emu);
        let user = member(&fx.emu, &fx.tenant);
        let notification = |client_state: &str, tenant: &str, id: &str| json!({"value": [{
            "subscriptionId": id, "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z",
            "changeType": "updated", "resource": format!("Users/{user}"), "clientState": client_state,
            "tenantId": tenant, "resourceData": {"@odata.type": "#Microsoft.Graph.User", "id": user},
        }]});
        let genuine = sub.client_state.clone().unwrap();
        let forged = [
            notification("guessed", &fx.tenant, &sub.id),
            notification("", &fx.tenant, &sub.id),
            notification(&genuine, "00000000-0000-0000-0000-000000000000", &sub.id),
            notification(&genuine, &fx.tenant, "5d1b1c62-0000-4000-8000-000000000000"),
            json!({"value": [{"subscriptionId": sub.id, "changeType": "updated", "tenantId": fx.tenant}]}),
        ];
        for body in &forged {
            // The same answer as a genuine one: a caller learns nothing.
            assert_eq!(post(fx.addr, "/webhooks/graph", body.clone()).await, 202, "{body}");
        }
        // A forged lifecycle notification asks for nothing either.
        let mut lifecycle = notification("guessed", &fx.tenant, &sub.id);
        lifecycle["value"][0]["lifecycleEvent"] = json!("subscriptionRemoved");
        assert_eq!(post(fx.addr, "/webhooks/graph/lifecycle", lifecycle).await, 202);
        assert!(jobs(&db.store).await.is_empty(), "{:?}", jobs(&db.store).await);
        assert_eq!(fx.receiver.refused.load(Ordering::Relaxed), 6);
        let row = rows(&db.store).await.into_iter().find(|r| r.resource == "users").unwrap();
        assert_eq!((row.refused, row.action, row.notified_at), (5, None, None), "{row:?}");
        // Not a notification at all.
        let r = reqwest::Client::new().post(format!("http://{}/webhooks/graph", fx.addr)).body("nonsense").send().await.unwrap();
        assert_eq!(r.status().as_u16(), 400);
        let error: Value = r.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_input", "{error}");
        // The genuine clientState is accepted: the check is what refused the others.
        assert_eq!(post(fx.addr, "/webhooks/graph", notification(&genuine, &fx.tenant, &sub.id)).await, 202);
        assert_eq!(jobs(&db.store).await.len(), 1);
    }
}

store_test! {
    async fn an_expired_subscription_is_made_again_and_delivery_resumes(db: &TestDb) {
        let fx = fixture(db).await;
        maintain(&db.store, &clock(), &fx.config).await.unwrap();
        let expired = users_subscription(&fx.emu);
        fx.emu.expire_graph_subscription(&expired.id).unwrap();
        assert_eq!(fx.emu.graph_subscriptions().len(), 1);
        let pass = maintain(&db.store, &clock(), &fx.config).await.unwrap();
        assert_eq!((pass.created, pass.failed), (1, 0), "{pass:?}");
        let renewed = users_subscription(&fx.emu);
        assert_ne!(renewed.id, expired.id);
        let row = rows(&db.store).await.into_iter().find(|r| r.resource == "users").unwrap();
        assert_eq!(row.subscription_id.as_deref(), Some(renewed.id.as_str()));

        let user = member(&fx.emu, &fx.tenant);
        change_title(&fx.emu, &fx.tenant, &user, "After Expiry");
        let job = queued_job(&db.store).await;
        assert_eq!(job.origin, "notification");
        run_job(&db.store).await;
        assert_eq!(desk_title(&db.store, &user).await, json!("After Expiry"));

        // Close to its end, a subscription is renewed in place.
        let mut soon = fx.config.clone();
        soon.renew_before = soon.lifetime.saturating_add(jiff::SignedDuration::from_hours(1));
        let pass = maintain(&db.store, &clock(), &soon).await.unwrap();
        assert_eq!((pass.renewed, pass.created), (2, 0), "{pass:?}");
        assert_eq!(users_subscription(&fx.emu).id, renewed.id);
    }
}

store_test! {
    async fn lifecycle_notifications_are_answered(db: &TestDb) {
        let fx = fixture(db).await;
        maintain(&db.store, &clock(), &fx.config).await.unwrap();
        let sub = users_subscription(&fx.emu);

        // missed: a delta round.
        fx.emu.send_lifecycle_event(&sub.id, "missed").unwrap();
        let job = queued_job(&db.store).await;
        assert_eq!((job.origin.as_str(), job.entity.as_str()), ("notification", "directory"));
        run_job(&db.store).await;

        // reauthorizationRequired: Graph pauses deliveries; the next pass reauthorizes.
        fx.emu.send_lifecycle_event(&sub.id, "reauthorizationRequired").unwrap();
        for _ in 0..600 {
            if rows(&db.store).await.iter().any(|r| r.action == Some(SubscriptionAction::Reauthorize)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(users_subscription(&fx.emu).paused);
        let pass = maintain(&db.store, &clock(), &fx.config).await.unwrap();
        assert_eq!((pass.reauthorized, pass.created), (1, 0), "{pass:?}");
        assert!(!users_subscription(&fx.emu).paused);
        assert!(rows(&db.store).await.iter().all(|r| r.action.is_none()));

        // subscriptionRemoved: a delta round, and a new subscription on the next pass.
        fx.emu.send_lifecycle_event(&sub.id, "subscriptionRemoved").unwrap();
        queued_job(&db.store).await;
        assert!(rows(&db.store).await.iter().any(|r| r.action == Some(SubscriptionAction::Resubscribe)));
        let pass = maintain(&db.store, &clock(), &fx.config).await.unwrap();
        assert_eq!((pass.created, pass.failed), (1, 0), "{pass:?}");
        assert_ne!(users_subscription(&fx.emu).id, sub.id);
        run_job(&db.store).await;
        let user = member(&fx.emu, &fx.tenant);
        change_title(&fx.emu, &fx.tenant, &user, "Resubscribed");
        queued_job(&db.store).await;
        run_job(&db.store).await;
        assert_eq!(desk_title(&db.store, &user).await, json!("Resubscribed"));
    }
}

store_test! {
    async fn the_validation_handshake_decides_whether_graph_subscribes(db: &TestDb) {
        let fx = fixture(db).await;
        // The app answers the handshake: the token, decoded, as plain text.
        let r = reqwest::Client::new()
            .post(format!("http://{}/webhooks/graph?validationToken=Validation%3A%20Testing%20a%2Bb", fx.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        assert_eq!(r.text().await.unwrap(), "Validation: Testing a+b");

        // An endpoint that answers 200 but not the token: Graph refuses the subscription.
        let wrong = axum::Router::new().route("/webhooks/graph", axum::routing::post(|| async { "not the token" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let wrong_addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, wrong).await });
        let config = SubscriberConfig::new(&format!("http://{wrong_addr}"), "production");
        let pass = maintain(&db.store, &clock(), &config).await.unwrap();
        assert_eq!((pass.created, pass.failed), (0, 2), "{pass:?}");
        assert!(fx.emu.graph_subscriptions().is_empty());
        let rows = rows(&db.store).await;
        assert_eq!(rows.len(), 2);
        for row in &rows {
            assert!(row.subscription_id.is_none());
            let error = row.error.as_deref().unwrap();
            assert!(error.contains("could not reach the notification URL"), "{error}");
            assert!(row.remedy.as_deref().unwrap().contains("https"), "{row:?}");
        }
        // Fixed: the next pass subscribes and clears the error.
        let pass = maintain(&db.store, &clock(), &fx.config).await.unwrap();
        assert_eq!((pass.created, pass.failed), (2, 0), "{pass:?}");
        assert!(super::rows(&db.store).await.iter().all(|r| r.error.is_none()));

        // Graph's own checks: the lifetime, the clientState's length, the resource.
        let summary = fx.emu.summary();
        let app = summary.apps.iter().find(|a| a.kind == "multi_tenant_secret").unwrap();
        let token = fx.emu.issue_app_token(&app.client_id, &fx.tenant).unwrap();
        let far = clock().now().saturating_add(jiff::SignedDuration::from_mins(41_761)).unwrap();
        let soon = clock().now().saturating_add(jiff::SignedDuration::from_hours(1)).unwrap();
        let url = format!("http://{}/webhooks/graph", fx.addr);
        for (body, says) in [
            (json!({"changeType": "updated", "notificationUrl": url, "resource": "users", "expirationDateTime": far.to_string(), "clientState": "x"}), "41760 minutes"),
            (json!({"changeType": "updated", "notificationUrl": url, "resource": "users", "expirationDateTime": soon.to_string(), "clientState": "x".repeat(129)}), "clientState"),
            (json!({"changeType": "updated", "notificationUrl": url, "resource": "devices", "expirationDateTime": soon.to_string()}), "not supported"),
            (json!({"changeType": "renamed", "notificationUrl": url, "resource": "users", "expirationDateTime": soon.to_string()}), "changeType"),
        ] {
            let r = reqwest::Client::new().post(format!("{}/subscriptions", summary.graph_url)).bearer_auth(&token).json(&body).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 400, "{body}");
            let error: Value = r.json().await.unwrap();
            assert!(error["error"]["message"].as_str().unwrap().contains(says), "{error}");
        }
    }
}

store_test! {
    async fn the_routes_answer_404_when_notifications_are_off(db: &TestDb) {
        let state = AppState::new(db.store.clone(), registry(), clock());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = deskbridge_web::router(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        assert_eq!(post(addr, "/webhooks/graph?validationToken=x", json!({})).await, 404);
        assert_eq!(post(addr, "/webhooks/graph/lifecycle", json!({"value": []})).await, 404);
    }
}
