#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Partner Center client end to end against the in-process emulator: app+user tokens from a
//! real authorization-code sign-in, paging, quantity changes, errors, throttling, prices, usage
//! and webhook verification.

use std::sync::Arc;
use std::time::Duration;

use deskbridge_core::{Clock, ManualClock, SharedClock};
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, Summary, World};
use deskbridge_msauth::{
    AccessToken, AppCredentials, AuthError, Authority, AuthorizationRequest, BoxFuture, ClientCredential,
    DelegatedTokenProvider, RefreshTokenSink, SecretString, TokenClient, TokenProvider,
};
use deskbridge_partner::*;

const START: &str = "2026-11-01T00:00:00Z";

struct Sink;
impl RefreshTokenSink for Sink {
    fn store<'a>(&'a self, _: &'a str, _: &'a SecretString) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

struct Env {
    emu: Emulator,
    summary: Summary,
    clock: Arc<ManualClock>,
    client: PartnerClient,
    log: Arc<MemoryRequestLog>,
}

async fn start(tweak: impl FnOnce(&mut PartnerConfig)) -> Env {
    let world = World::generate(&GenerateOptions {
        seed: 5,
        tenants: 2,
        users_per_tenant: Some(20),
        ..GenerateOptions::default()
    })
    .unwrap();
    let clock = Arc::new(ManualClock::new(START.parse().unwrap()));
    let shared: SharedClock = clock.clone();
    let mut config = EmulatorConfig::new(world);
    config.clock = shared.clone();
    config.auto_approve = true;
    let emu = Emulator::start(config).await.unwrap();
    let summary = emu.summary();
    let partner = summary.partner_tenant_id.clone().unwrap();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "partner_center")
        .unwrap()
        .clone();

    // A real sign-in: authorize (auto-approved), then redeem the code.
    let authority = Authority::new(&summary.authority_host).unwrap();
    let redirect = "http://localhost/callback";
    let request = AuthorizationRequest::new(
        &authority,
        &partner,
        &app.client_id,
        redirect,
        &[
            "openid",
            "offline_access",
            "https://api.partnercenter.microsoft.com/user_impersonation",
        ],
    )
    .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http.get(request.url.clone()).send().await.unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let code = request.code_from_redirect(&location).unwrap();
    let credentials = AppCredentials {
        client_id: app.client_id.clone(),
        credential: Some(ClientCredential::Secret(
            app.client_secret.clone().unwrap().into(),
        )),
    };
    let tokens = DelegatedTokenProvider::from_authorization_code(
        TokenClient::new(reqwest::Client::new(), authority, shared.clone()),
        credentials,
        &partner,
        &code,
        redirect,
        &request.code_verifier,
        PARTNER_CENTER_SCOPE,
        Arc::new(Sink),
    )
    .await
    .unwrap();
    let mut config =
        PartnerConfig::default().with_urls(&summary.partner_center_url, &summary.partner_api_url);
    config.page_size = 1;
    config.backoff_base = Duration::from_millis(10);
    config.max_retry_after = Duration::from_secs(5);
    tweak(&mut config);
    let log = Arc::new(MemoryRequestLog::default());
    let client = PartnerClient::with_log(
        reqwest::Client::new(),
        config,
        shared,
        Arc::new(tokens),
        partner,
        log.clone(),
    )
    .unwrap();
    Env {
        emu,
        summary,
        clock,
        client,
        log,
    }
}

#[tokio::test]
async fn reads_customers_subscriptions_skus_prices_and_usage() {
    let env = start(|_| {}).await;
    let customers = env.client.customers().collect_all().await.unwrap();
    let ids: Vec<&str> = customers.iter().map(|c| c.id.as_str()).collect();
    let tenants: Vec<&str> = env.summary.tenants.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, tenants);
    assert_eq!(customers[0].relationship_to_partner.as_deref(), Some("reseller"));
    assert_eq!(customers[0].tenant_id(), tenants[0]);
    let one = env.client.customer(tenants[1]).await.unwrap();
    assert_eq!(
        one.company_profile.company_name.as_deref(),
        Some(env.summary.tenants[1].display_name.as_str())
    );
    let prefix = env.summary.tenants[1].domain[..5].to_owned();
    let filtered = env
        .client
        .customers_filtered(&CustomerFilter::DomainStartsWith(prefix))
        .collect_all()
        .await
        .unwrap();
    assert_eq!(filtered.len(), 1);

    let subs = env.client.subscriptions(tenants[0]).await.unwrap();
    let azure = subs
        .iter()
        .find(|s| s.unit_type.as_deref() == Some("Usage-based"))
        .unwrap();
    assert_eq!(azure.commitment_end_date, None, "the 9999 sentinel is not a date");
    for s in subs.iter().filter(|s| s.unit_type.as_deref() == Some("Licenses")) {
        assert_eq!(s.id, s.id.to_uppercase());
        assert!(s.commitment_end_date.is_some() && s.term_duration.is_some() && s.etag().is_some());
    }
    let skus = env.client.subscribed_skus(tenants[0]).await.unwrap();
    assert!(!skus.is_empty() && skus.iter().all(|k| !k.product_sku.id.is_empty()));

    for (market, currency) in [("GB", "GBP"), ("US", "USD")] {
        let rows = env.client.price_sheet(market).await.unwrap();
        assert!(rows.iter().all(|r| r.currency == currency && r.market == market));
        let nce = subs
            .iter()
            .find(|s| s.offer_id.as_deref().is_some_and(|o| o.starts_with("CFQ7TTC0")))
            .unwrap();
        let price = rows
            .iter()
            .find(|r| r.prices(nce))
            .expect("a price for the subscription");
        assert!(price.unit_price > 0.0);
    }

    let start: jiff::Timestamp = "2026-10-01T00:00:00Z".parse().unwrap();
    let usage = env
        .client
        .azure_utilization(tenants[0], &azure.id, start, START.parse().unwrap())
        .collect_all()
        .await
        .unwrap();
    assert_eq!(usage.len(), 90);
    assert!(
        usage
            .iter()
            .all(|u| u.usage_start_time.is_some() && u.resource.category.is_some())
    );
    env.emu.shutdown().await;
}

#[tokio::test]
async fn quantity_changes_follow_the_new_commerce_rules_and_are_idempotent() {
    let env = start(|_| {}).await;
    let cid = env.summary.tenants[0].id.clone();
    let subs = env.client.subscriptions(&cid).await.unwrap();
    let now = env.clock.now();
    let old = subs
        .iter()
        .skip(1)
        .find(|s| {
            s.offer_id.as_deref().is_some_and(|o| o.contains(':'))
                && s.unit_type.as_deref() == Some("Licenses")
        })
        .unwrap()
        .clone();
    assert!(!old.can_reduce_at(now));
    assert!(subs[0].can_reduce_at(now));
    let id = uuid::Uuid::new_v4();
    let bigger = env
        .client
        .update_subscription_quantity(&cid, &old, old.quantity + 2, id)
        .await
        .unwrap();
    assert_eq!(bigger.quantity, old.quantity + 2);
    // Retrying the same change (same MS-RequestId) does not add two more seats.
    let again = env
        .client
        .update_subscription_quantity(&cid, &old, old.quantity + 2, id)
        .await
        .unwrap();
    assert_eq!(again.quantity, old.quantity + 2);
    let patches: Vec<RequestLogEntry> = env
        .log
        .entries()
        .into_iter()
        .filter(|e| e.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 2);
    assert!(
        patches
            .iter()
            .all(|e| e.request_id.as_deref() == Some(id.to_string().as_str()) && e.status == Some(200))
    );
    assert_eq!(
        env.client.subscription(&cid, &old.id).await.unwrap().quantity,
        old.quantity + 2
    );
    // The old etag no longer matches.
    let stale = env
        .client
        .update_subscription_quantity(&cid, &old, old.quantity + 3, uuid::Uuid::new_v4())
        .await
        .unwrap_err();
    assert_eq!(stale.class(), Some(PartnerErrorClass::PreconditionFailed));
    // A reduction outside the window: Partner Center's code and the call's ids.
    let err = env
        .client
        .update_subscription_quantity(&cid, &bigger, 1, uuid::Uuid::new_v4())
        .await
        .unwrap_err();
    let api = err.api().unwrap();
    assert_eq!(
        (api.status, api.code, api.class),
        (400, Some(800002), PartnerErrorClass::Rejected)
    );
    assert!(
        api.request_id.is_some()
            && api.correlation_id.is_some()
            && api.source_name.as_deref() == Some("PartnerFD")
    );
    assert!(err.to_string().contains("800002"));
    // Inside the window it is allowed.
    let reduced = env
        .client
        .update_subscription_quantity(&cid, &subs[0], 1, uuid::Uuid::new_v4())
        .await
        .unwrap();
    assert_eq!(reduced.quantity, 1);
    env.emu.shutdown().await;
}

#[tokio::test]
async fn throttled_calls_wait_for_retry_after_or_fail_with_it() {
    let env = start(|_| {}).await;
    let cid = env.summary.tenants[0].id.clone();
    env.emu.update_partner_faults(|f| {
        f.force_429 = 2;
        f.retry_after_secs = 1;
    });
    let started = std::time::Instant::now();
    env.client.customer(&cid).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(2));
    let statuses: Vec<Option<u16>> = env.log.entries().iter().rev().take(3).map(|e| e.status).collect();
    assert_eq!(statuses, vec![Some(200), Some(429), Some(429)]);
    assert_eq!(
        env.log.entries().iter().rev().nth(1).unwrap().retry_after,
        Some(Duration::from_secs(1))
    );
    env.emu.update_partner_faults(|f| {
        f.force_429 = 1;
        f.retry_after_secs = 600;
    });
    let err = env.client.customer(&cid).await.unwrap_err();
    let api = err.api().unwrap();
    assert_eq!(api.class, PartnerErrorClass::Throttled);
    assert_eq!(api.retry_after, Some(Duration::from_secs(600)));
    assert!(api.description.contains("Rate limit is exceeded"));
    // Unknown customers are a typed 404 with Partner Center's code.
    let fresh = start(|_| {}).await;
    let err = fresh
        .client
        .customer("00000000-0000-0000-0000-0000000000aa")
        .await
        .unwrap_err();
    assert_eq!(
        (err.class(), err.api().unwrap().code),
        (Some(PartnerErrorClass::NotFound), Some(3000))
    );
    env.emu.shutdown().await;
    fresh.emu.shutdown().await;
}

#[tokio::test]
async fn webhook_deliveries_verify_against_the_fetched_certificate() {
    use axum::routing::post;
    let env = start(|_| {}).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(reqwest::header::HeaderMap, bytes::Bytes)>();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: reqwest::header::HeaderMap, body: bytes::Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    assert_eq!(env.client.webhook_registration().await.unwrap(), None);
    let events = env.client.webhook_events().await.unwrap();
    assert!(events.iter().any(|e| e == "subscription-updated"));
    let reg = env
        .client
        .register_webhook(&hook, &["subscription-updated"])
        .await
        .unwrap();
    assert_eq!(reg.webhook_url, hook);
    let reg = env
        .client
        .register_webhook(&hook, &["subscription-updated", "test-created"])
        .await
        .unwrap();
    assert_eq!(reg.webhook_events.len(), 2);
    let correlation = env.client.send_validation_event().await.unwrap();
    let (headers, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();

    let mut verifier = WebhookVerifier::new(env.emu.webhook_root_pem()).unwrap();
    // Microsoft's hosts only by default: the emulator's is refused until allowed.
    assert!(matches!(
        verifier.certificate_url(&headers),
        Err(WebhookError::CertificateUrl(_))
    ));
    verifier.allowed_certificate_hosts = vec!["127.0.0.1".into()];
    verifier.allow_http_certificate_url = true;
    let url = verifier.certificate_url(&headers).unwrap();
    let cert = fetch_certificate(&reqwest::Client::new(), &url).await.unwrap();
    let now = env.clock.now();
    let event = verifier.verify(&headers, &body, &cert, now).unwrap();
    assert_eq!(event.event_name, "test-created");
    assert!(event.changed_at().is_some());
    assert_eq!(
        env.client.validation_event_status(&correlation).await.unwrap(),
        "completed"
    );

    // Tampered body, untrusted root, stale event, wrong organisation, missing header.
    let mut tampered = body.to_vec();
    tampered.push(b' ');
    assert_eq!(
        verifier.verify(&headers, &tampered, &cert, now),
        Err(WebhookError::BadSignature)
    );
    let other_root = env
        .summary
        .apps
        .iter()
        .find(|a| a.kind == "certificate")
        .unwrap()
        .certificate_pem
        .clone()
        .unwrap();
    let mut stranger = verifier.clone();
    stranger.trusted_roots = WebhookVerifier::new(&other_root).unwrap().trusted_roots;
    assert!(matches!(
        stranger.verify(&headers, &body, &cert, now),
        Err(WebhookError::Untrusted(_))
    ));
    let later = now.checked_add(jiff::SignedDuration::from_hours(24 * 4)).unwrap();
    assert!(matches!(
        verifier.verify(&headers, &body, &cert, later),
        Err(WebhookError::Stale(_))
    ));
    let mut picky = verifier.clone();
    picky.required_organization = Some("Someone Else".into());
    assert!(matches!(
        picky.verify(&headers, &body, &cert, now),
        Err(WebhookError::Untrusted(_))
    ));
    let mut bare = headers.clone();
    bare.remove("authorization");
    assert_eq!(
        verifier.verify(&bare, &body, &cert, now),
        Err(WebhookError::MissingHeader("Authorization"))
    );

    // A quantity change arrives as a verified subscription-updated event.
    let cid = env.summary.tenants[0].id.clone();
    let subs = env.client.subscriptions(&cid).await.unwrap();
    env.client
        .update_subscription_quantity(&cid, &subs[0], subs[0].quantity + 1, uuid::Uuid::new_v4())
        .await
        .unwrap();
    let (headers, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let event = verifier
        .verify_delivery(&reqwest::Client::new(), &headers, &body, now)
        .await
        .unwrap();
    assert_eq!(event.event_name, "subscription-updated");
    assert!(
        event
            .resource_uri
            .unwrap()
            .to_lowercase()
            .ends_with(&subs[0].id.to_lowercase())
    );
    env.client.delete_webhook().await.unwrap();
    assert_eq!(env.client.webhook_registration().await.unwrap(), None);
    env.emu.shutdown().await;
}

/// Tokens without a token endpoint, for the fake server below.
#[derive(Debug)]
struct Fixed;
impl TokenProvider for Fixed {
    fn access_token<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, Result<AccessToken, AuthError>> {
        Box::pin(async {
            Ok(AccessToken::new(
                "t".to_owned().into(),
                "2099-01-01T00:00:00Z".parse().unwrap(),
            ))
        })
    }
    fn invalidate<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

#[tokio::test]
async fn malformed_responses_are_errors_not_panics() {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/v1/customers",
            get(|| async { "{\"totalCount\":1,\"items\":[{\"id\":" }),
        )
        .route("/v1/customers/{id}", get(|| async { "{\"id\": 5}" }))
        .route(
            "/v1/customers/{id}/subscriptions",
            get(|| async { "{\"items\": \"none\"}" }),
        )
        .route(
            "/v1/customers/{id}/subscribedskus",
            get(|| async { "\u{feff}{\"items\": [], \"links\": {\"next\": 3}}" }),
        )
        .route(
            "/v1/customers/{id}/subscriptions/{sid}",
            get(|| async { "{\"id\":\"A\",\"quantity\":1,\"creationDate\":\"someday\"}" }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let clock: SharedClock = Arc::new(ManualClock::new(START.parse().unwrap()));
    let client = PartnerClient::new(
        reqwest::Client::new(),
        PartnerConfig::default().with_urls(&base, &base),
        clock,
        Arc::new(Fixed),
        "partner",
    )
    .unwrap();
    let malformed = |e: PartnerError| assert!(matches!(e, PartnerError::Malformed { .. }), "{e}");
    malformed(client.customers().collect_all().await.unwrap_err());
    malformed(client.customer("x").await.unwrap_err());
    malformed(client.subscriptions("x").await.unwrap_err());
    malformed(client.subscribed_skus("x").await.unwrap_err());
    malformed(client.subscription("x", "A").await.unwrap_err());
    assert!(
        PartnerClient::new(
            reqwest::Client::new(),
            PartnerConfig::default().with_urls("not a url", &base),
            Arc::new(ManualClock::new(START.parse().unwrap())),
            Arc::new(Fixed),
            "p"
        )
        .is_err()
    );
}
