//! Dataverse's service protection (MICROSOFT-APIS.md E7) through the connector, on SQLite and
//! PostgreSQL: an import where about a fifth of the requests are answered 429 with `Retry-After`
//! still brings every contact exactly once, each 429 retried after its pause; and an import that
//! runs while connection tests of the same organisation crowd its concurrency limit (set to 2
//! here, 52 in Dataverse) succeeds, the client having kept to the limit once told. No timing is
//! asserted: the evidence is the emulator's request log and its per-user load record.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use deskbridge_connector_dynamics::{CONNECTION_AVAILABLE, DynamicsSource};
use deskbridge_dataverse::DataverseConfig;
use deskbridge_emulator::{Emulator, Faults, ServiceLimits};
use deskbridge_source::settings::EndpointPolicy;
use deskbridge_source::{SourceContext, SourceRegistry};
use deskbridge_store::{Entity, RecordScope, Store};
use deskbridge_testkit::store_test;

use crate::{add, clock, connection, emulator, org, service_principal};

/// A registry whose organisation clients retry as the product's do (eight tries, waiting out
/// every Retry-After), reading `page_size` contacts a page.
fn patient(page_size: u32) -> SourceRegistry {
    let config = DataverseConfig {
        max_attempts: 8,
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..DataverseConfig::new("", "")
    };
    SourceRegistry::new()
        .with(Arc::new(DynamicsSource::new(config, page_size)))
        .with_endpoint_policy(EndpointPolicy::allowing(["127.0.0.1"]))
}

async fn import(store: &Store, registry: &SourceRegistry, name: &str) -> deskbridge_sync::SyncOutcome {
    let options = deskbridge_sync::SyncOptions {
        full: true,
        ..deskbridge_sync::SyncOptions::default()
    };
    deskbridge_sync::sync(store, registry, name, &options, &clock())
        .await
        .unwrap_or_else(|e| panic!("the import of {name} failed to run: {e}"))
}

/// The external ids of the desk users the connection imported, duplicates kept.
async fn imported_ids(store: &Store, name: &str, tenant: &str) -> Vec<String> {
    let scope = RecordScope::OfConnectionTenant {
        connection: connection(store, name).await.id,
        tenant_id: tenant.to_owned(),
        external_ids: Vec::new(),
    };
    let mut tx = store.read().await.unwrap();
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = tx.list_scoped(Entity::User, &scope, after, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        out.extend(
            page.into_iter()
                .filter_map(|r| r.source.map(|s| s.external_id.to_ascii_lowercase())),
        );
    }
    tx.commit().await.unwrap();
    out
}

/// The organisation's contact ids (lower case).
fn contact_ids(emu: &Emulator, org_name: &str) -> BTreeSet<String> {
    emu.with_world(|w| {
        let org = w.dataverse_orgs.iter().find(|o| o.name == org_name).unwrap();
        org.table("contact")
            .unwrap()
            .rows
            .iter()
            .map(|r| r.id.to_ascii_lowercase())
            .collect()
    })
}

/// Every contact of the organisation imported, and each once.
async fn assert_each_contact_once(store: &Store, emu: &Emulator, name: &str) {
    let (_, tenant, org_name) = org(emu);
    let ids = imported_ids(store, name, &tenant).await;
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(
        ids.len(),
        unique.len(),
        "a contact was imported twice: {} users for {} contacts",
        ids.len(),
        unique.len()
    );
    let expected = contact_ids(emu, &org_name);
    let missing: Vec<_> = expected.difference(&unique).take(5).collect();
    let extra: Vec<_> = unique.difference(&expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the imported users are not the organisation's contacts: missing {missing:?}…, not contacts {extra:?}…"
    );
}

store_test! {
    async fn a_fifth_of_the_requests_throttled_every_contact_arrives_once_after_each_retry_after(db: &TestDb) {
        // 2,000 contacts, 100 a page: 20 pages, so about four 429s at a fifth.
        let emu = emulator(61, 2_000).await;
        add(&db.store, "throttled", service_principal(&emu)).await.unwrap();
        let from = emu.request_log().len();
        emu.set_faults(Faults {
            random_429_percent: 20.0,
            retry_after_secs: 1,
            seed: 7,
            ..Faults::default()
        });
        let outcome = import(&db.store, &patient(100), "throttled").await;
        emu.set_faults(Faults::default());
        assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
        assert_eq!(outcome.counts.created, 2_000, "{:?}", outcome.counts);
        assert_each_contact_once(&db.store, &emu, "throttled").await;

        // The emulator's log of the organisation's requests (tokens are the identity platform's).
        let log: Vec<_> = emu.request_log().into_iter().skip(from).filter(|e| e.path.contains("/org/")).collect();
        let throttled: Vec<usize> = (0..log.len()).filter(|&i| log[i].status == 429).collect();
        let share = throttled.len() as f64 / log.len() as f64;
        assert!(
            throttled.len() >= 2 && (0.05..=0.5).contains(&share),
            "expected about a fifth of {} requests answered 429, got {}",
            log.len(),
            throttled.len()
        );
        for &i in &throttled {
            let answer = &log[i];
            assert_eq!(answer.retry_after, Some(1), "a 429 without Retry-After: {answer:?}");
            // The read is one chain of pages: what follows a 429 is its retry, the same request
            // (the same paging cookie), sent once the pause was over.
            let next = log.get(i + 1).unwrap_or_else(|| panic!("the 429 to {} was never retried", answer.path));
            assert_eq!(next.path, answer.path, "after a 429 the client asked for something else");
            let waited = next.time.duration_since(answer.time);
            assert!(
                waited >= jiff::SignedDuration::from_millis(950),
                "the retry of {} came {waited:?} after a 429 asking for 1 s",
                answer.path
            );
        }
        // 20 pages, each answered once with 200, and the 429s on top.
        let pages = log.iter().filter(|e| e.status == 200).count();
        assert_eq!(pages, 20, "pages read: {pages}; log: {:?}", log.iter().map(|e| e.status).collect::<Vec<_>>());
        assert_eq!(log.len(), pages + throttled.len(), "a request failed otherwise than with 429");
        emu.shutdown().await;
    }
}

store_test! {
    async fn the_concurrency_limit_is_hit_then_kept_and_the_import_succeeds(db: &TestDb) {
        // Dataverse allows 52 requests in flight per user; here 2, each request held 60 ms on
        // the server. An import and three actors running "Test connection" of the same
        // organisation, four times each, share the application user: up to four in flight.
        const LIMIT: u32 = 2;
        const ACTORS: u64 = 4;
        let emu = emulator(62, 600).await;
        add(&db.store, "crowded", service_principal(&emu)).await.unwrap();
        let registry = patient(50);
        emu.set_dataverse_limits(ServiceLimits {
            concurrent_requests: LIMIT,
            execution_ms: 60,
            ..ServiceLimits::default()
        });
        emu.set_faults(Faults { throttling: true, ..Faults::default() });

        let tests = |actor: usize| {
            let registry = &registry;
            let store = db.store.clone();
            async move {
                let connection = connection(&store, "crowded").await;
                let cx = SourceContext::detached(store.clone(), clock());
                let source = registry.source_of(&connection).unwrap();
                let mut results = Vec::new();
                for round in 0..4 {
                    let points = source.check(&cx, &connection, "production").await;
                    let result = points.iter().find(|p| p.name == "result").map(|p| p.detail.clone());
                    results.push((actor, round, result, points));
                }
                results
            }
        };
        let (outcome, a, b, c) = tokio::join!(
            import(&db.store, &registry, "crowded"),
            tests(1),
            tests(2),
            tests(3)
        );
        emu.set_faults(Faults::default());
        assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
        assert_eq!(outcome.counts.created, 600, "{:?}", outcome.counts);
        assert_each_contact_once(&db.store, &emu, "crowded").await;
        for (actor, round, result, points) in a.into_iter().chain(b).chain(c) {
            assert_eq!(
                result.as_deref(),
                Some(CONNECTION_AVAILABLE),
                "connection test {round} of actor {actor} failed while the import ran: {points:#?}"
            );
        }

        let (_, _, org_name) = org(&emu);
        let load = emu.dataverse_load();
        let load = load.iter().find(|l| l.org == org_name).expect("the organisation saw no request");
        let rejected = &load.concurrency_rejections;
        // The limit was hit: more than two requests reached the server at once…
        assert!(
            !rejected.is_empty() && load.peak_in_flight > LIMIT,
            "the actors never crowded the limit of {LIMIT} (peak {} in flight over {} requests): the test proves nothing",
            load.peak_in_flight,
            load.arrivals
        );
        // …and honoured from then on: once the first 429 was answered, only the requests already
        // on their way (one per other actor at most) could still find the limit full; every
        // request sent after it waited for a slot under the cap the 429 named.
        let (first, last) = (rejected[0], rejected[rejected.len() - 1]);
        assert!(
            last - first < ACTORS,
            "arrivals {rejected:?} of {} were refused for concurrency: the client kept sending more than {LIMIT} \
             at once after the first refusal (arrival {first})",
            load.arrivals
        );
        assert!(
            rejected.len() < ACTORS as usize,
            "{} refusals for concurrency, more than the {} requests that can be in flight when the first is answered",
            rejected.len(),
            ACTORS - 1
        );
        emu.shutdown().await;
    }
}
