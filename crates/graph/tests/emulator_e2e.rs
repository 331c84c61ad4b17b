#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The token client and the Graph client end to end against the in-process emulator.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use deskbridge_core::{ManualClock, SharedClock, SystemClock};
use deskbridge_emulator::{Emulator, EmulatorConfig, Faults, GenerateOptions, Summary, World};
use deskbridge_graph::*;
use deskbridge_msauth::{
    AppCredentials, AppTokenProvider, AuthErrorClass, Authority, CertificateCredential, ClientCredential,
    GRAPH_DEFAULT_SCOPE, TokenClient, TokenProvider,
};

async fn start(clock: SharedClock) -> (Emulator, Summary) {
    let world = World::generate(&GenerateOptions {
        seed: 11,
        tenants: 2,
        users_per_tenant: Some(60),
        ..GenerateOptions::default()
    })
    .unwrap();
    let mut config = EmulatorConfig::new(world);
    config.clock = clock;
    let emulator = Emulator::start(config).await.unwrap();
    let summary = emulator.summary();
    (emulator, summary)
}

fn app(summary: &Summary, kind: &str) -> deskbridge_emulator::AppSummary {
    summary
        .apps
        .iter()
        .find(|a| a.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} app"))
        .clone()
}

fn token_client(summary: &Summary, clock: SharedClock) -> TokenClient {
    TokenClient::new(
        reqwest::Client::new(),
        Authority::new(&summary.authority_host).unwrap(),
        clock,
    )
}

fn graph(
    summary: &Summary,
    clock: SharedClock,
    log: Arc<MemoryRequestLog>,
    tweak: impl FnOnce(&mut GraphConfig),
) -> GraphClient {
    let mut config = GraphConfig::default().with_base_url(summary.graph_url.clone());
    tweak(&mut config);
    GraphClient::with_log(reqwest::Client::new(), config, clock, log).unwrap()
}

async fn all_users(tenant: &GraphTenant, first: String) -> (Vec<User>, usize) {
    let mut pager = tenant.pager::<User>(first);
    let mut users = Vec::new();
    let mut pages = 0;
    while let Some(page) = pager.next_page().await.unwrap() {
        pages += 1;
        users.extend(page.value);
    }
    (users, pages)
}

#[tokio::test]
async fn secret_and_certificate_apps_read_a_tenant() {
    let clock: SharedClock = Arc::new(ManualClock::new("2026-11-23T12:00:00Z".parse().unwrap()));
    let (emulator, summary) = start(clock.clone()).await;
    let tenant_id = summary.tenants[0].id.clone();
    let expected_users = summary.tenants[0].users;

    let secret_app = app(&summary, "multi_tenant_secret");
    let secret = AppCredentials {
        client_id: secret_app.client_id.clone(),
        credential: Some(ClientCredential::Secret(
            secret_app.client_secret.clone().unwrap().into(),
        )),
    };
    let log = Arc::new(MemoryRequestLog::default());
    let client = graph(&summary, clock.clone(), log.clone(), |_| {});
    let tokens: Arc<dyn TokenProvider> = Arc::new(AppTokenProvider::new(
        token_client(&summary, clock.clone()),
        secret,
    ));
    let tenant = client.tenant(&tenant_id, tokens);

    let query = Query::new("/users").select(USER_SELECT).top(25).build();
    let (users, pages) = all_users(&tenant, query).await;
    assert_eq!(users.len(), expected_users);
    assert!(pages >= 3, "60 users at 25 per page: {pages} pages");
    let ids: BTreeSet<&str> = users.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids.len(), expected_users, "no duplicates across pages");
    assert!(users.iter().all(|u| u.user_principal_name.is_some()));

    let organization = tenant.get_page::<Organization>("/organization").await.unwrap();
    assert_eq!(organization.value[0].id, tenant_id);
    let skus = tenant.get_page::<SubscribedSku>("/subscribedSkus").await.unwrap();
    assert!(!skus.value.is_empty());
    let groups = tenant
        .get_page::<Group>(&Query::new("/groups").select(GROUP_SELECT).top(999).build())
        .await
        .unwrap();
    let group = groups.value.first().unwrap();
    let members = tenant
        .get_page::<DirectoryObjectRef>(
            &Query::new(format!("/groups/{}/members", group.id))
                .select(&["id"])
                .build(),
        )
        .await
        .unwrap();
    assert!(members.value.iter().all(|m| !m.id.is_empty()));

    // A delta round ends in a deltaLink; following it right away finds nothing new.
    let mut pager = tenant.pager::<User>(Query::new("/users/delta").select(&["id", "displayName"]).build());
    let mut delta_link = None;
    let mut seen = 0;
    while let Some(page) = pager.next_page().await.unwrap() {
        seen += page.value.len();
        delta_link = page.delta_link.or(delta_link);
    }
    assert_eq!(seen, expected_users);
    let next_round = tenant.get_page::<User>(&delta_link.unwrap()).await.unwrap();
    assert!(next_round.value.is_empty() && next_round.removed.is_empty());
    assert!(next_round.delta_link.is_some());

    // The certificate app gets its token with a PS256 assertion and reads the same tenant.
    let cert_app = app(&summary, "certificate");
    let credential = CertificateCredential::from_pem(
        cert_app.certificate_pem.clone().unwrap().as_bytes(),
        cert_app.private_key_pem.clone().unwrap().as_bytes(),
    )
    .unwrap();
    let cert_tokens: Arc<dyn TokenProvider> = Arc::new(AppTokenProvider::new(
        token_client(&summary, clock.clone()),
        AppCredentials {
            client_id: cert_app.client_id.clone(),
            credential: Some(ClientCredential::Certificate(Arc::new(credential))),
        },
    ));
    let cert_tenant_id = cert_app
        .consented_tenants
        .first()
        .cloned()
        .unwrap_or(tenant_id.clone());
    let cert_tenant = client.tenant(&cert_tenant_id, cert_tokens);
    let organization = cert_tenant
        .get_page::<Organization>("/organization")
        .await
        .unwrap();
    assert_eq!(organization.value[0].id, cert_tenant_id);

    assert!(
        log.entries().iter().all(|e| e.status == Some(200)),
        "{:?}",
        log.entries()
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn token_errors_from_the_emulator_are_classified() {
    let clock: SharedClock = Arc::new(ManualClock::new("2026-11-23T12:00:00Z".parse().unwrap()));
    let (emulator, summary) = start(clock.clone()).await;
    let tenant_id = summary.tenants[0].id.clone();
    let tokens = token_client(&summary, clock);
    let secret_app = app(&summary, "multi_tenant_secret");

    let wrong_secret = AppCredentials {
        client_id: secret_app.client_id.clone(),
        credential: Some(ClientCredential::Secret("not-the-secret".into())),
    };
    let err = tokens
        .client_credentials(&tenant_id, &wrong_secret, GRAPH_DEFAULT_SCOPE)
        .await
        .unwrap_err();
    assert_eq!(
        err.microsoft().map(|m| m.class()),
        Some(AuthErrorClass::InvalidClientSecret),
        "{err}"
    );

    let expired = app(&summary, "expired_secret");
    let expired_credentials = AppCredentials {
        client_id: expired.client_id.clone(),
        credential: Some(ClientCredential::Secret(
            expired.client_secret.clone().unwrap().into(),
        )),
    };
    let expired_tenant = expired
        .consented_tenants
        .first()
        .cloned()
        .unwrap_or(tenant_id.clone());
    let err = tokens
        .client_credentials(&expired_tenant, &expired_credentials, GRAPH_DEFAULT_SCOPE)
        .await
        .unwrap_err();
    assert_eq!(
        err.microsoft().map(|m| m.class()),
        Some(AuthErrorClass::ExpiredClientSecret),
        "{err}"
    );

    let unconsented = app(&summary, "unconsented");
    let unconsented_credentials = AppCredentials {
        client_id: unconsented.client_id.clone(),
        credential: unconsented
            .client_secret
            .clone()
            .map(|s| ClientCredential::Secret(s.into())),
    };
    let err = tokens
        .client_credentials(&tenant_id, &unconsented_credentials, GRAPH_DEFAULT_SCOPE)
        .await
        .unwrap_err();
    let class = err.microsoft().map(|m| m.class());
    assert!(
        matches!(
            class,
            Some(AuthErrorClass::AppNotFoundInTenant | AuthErrorClass::MissingServicePrincipal)
        ),
        "{err}"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn faults_are_survived_and_retry_after_is_never_undercut() {
    let clock: SharedClock = Arc::new(SystemClock);
    let (emulator, summary) = start(clock.clone()).await;
    let tenant_id = summary.tenants[1].id.clone();
    let expected_users = summary.tenants[1].users;
    emulator.set_faults(Faults {
        random_429_percent: 20.0,
        random_503_percent: 5.0,
        dropped_connection_percent: 5.0,
        malformed_page_percent: 5.0,
        retry_after_secs: 1,
        seed: 5,
        ..Faults::default()
    });
    let secret_app = app(&summary, "multi_tenant_secret");
    let credentials = AppCredentials {
        client_id: secret_app.client_id.clone(),
        credential: Some(ClientCredential::Secret(
            secret_app.client_secret.clone().unwrap().into(),
        )),
    };
    let log = Arc::new(MemoryRequestLog::default());
    let client = graph(&summary, clock.clone(), log.clone(), |c| {
        c.max_attempts = 12;
        c.backoff_base = Duration::from_millis(20);
        c.backoff_max = Duration::from_millis(200);
    });
    let tenant = client.tenant(
        &tenant_id,
        Arc::new(AppTokenProvider::new(token_client(&summary, clock), credentials)),
    );
    let (users, _) = all_users(
        &tenant,
        Query::new("/users").select(&["id", "displayName"]).top(3).build(),
    )
    .await;
    let ids: BTreeSet<&str> = users.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids.len(), expected_users);
    assert_eq!(users.len(), expected_users);

    // From the emulator's own log: after each 429/503 with Retry-After, the tenant's next request
    // arrives no earlier than that.
    let served: Vec<_> = emulator
        .request_log()
        .into_iter()
        .filter(|e| e.tenant.as_deref() == Some(tenant_id.as_str()) && e.path.contains("/v1.0/"))
        .collect();
    let throttles = served.iter().filter(|e| matches!(e.status, 429 | 503)).count();
    assert!(throttles > 0, "the fault dice never threw a 429/503: {served:?}");
    let mut checked = 0;
    for (i, entry) in served.iter().enumerate() {
        let (Some(seconds), 429 | 503) = (entry.retry_after, entry.status) else {
            continue;
        };
        if let Some(next) = served.get(i + 1) {
            let gap = next.time.duration_since(entry.time);
            // The emulator stamps a request when it arrives; allow for its own timestamp granularity.
            assert!(
                gap >= jiff::SignedDuration::from_millis(seconds as i64 * 1000 - 20),
                "gap {gap:?} after {entry:?}"
            );
            checked += 1;
        }
    }
    assert!(checked > 0);
    let retried: HashMap<String, u32> = log
        .entries()
        .iter()
        .filter(|e| e.attempt > 1)
        .map(|e| (e.path.clone(), e.attempt))
        .collect();
    assert!(!retried.is_empty());
    emulator.shutdown().await;
}
