//! Microsoft's synchronisation reset against the emulator, on SQLite and PostgreSQL: a 410
//! `resyncRequired` restarts the round from the `Location` Graph gives (or a delta query without a
//! token when it gives none) as a full import, never needing `$deltatoken=latest`; a full import
//! that fails fails the run with its own error, in the mode it was in and with the requests it
//! made, and the next run recovers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use deskbridge_connector_entra::{EntraSource, NewCredential, NewEntraConnection, add_entra_connection};
use deskbridge_core::{Clock as _, SharedClock, SystemClock};
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use deskbridge_graph::GraphConfig;
use deskbridge_source::SourceRegistry;
use deskbridge_store::{CursorKey, Entity};
use deskbridge_sync::{SyncOptions, SyncOutcome};
use deskbridge_testkit::{TestDb, store_test};
use serde_json::{Value, json};

struct Fixture {
    emu: Emulator,
    tenant: String,
}

/// Entra with Graph's retries made quick: the tests break pages on purpose.
fn sources() -> SourceRegistry {
    let config = GraphConfig {
        max_attempts: 2,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        ..GraphConfig::default()
    };
    SourceRegistry::new()
        .with(Arc::new(EntraSource::new(config)))
        .with_endpoint_policy(deskbridge_source::settings::EndpointPolicy::allowing([
            "127.0.0.1",
        ]))
}

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

async fn sync(db: &TestDb) -> SyncOutcome {
    deskbridge_sync::sync(&db.store, &sources(), "c", &SyncOptions::default(), &clock())
        .await
        .unwrap()
}

async fn fixture(db: &TestDb) -> Fixture {
    let world = World::generate(&GenerateOptions {
        seed: 47,
        tenants: 1,
        users_per_tenant: Some(30),
        ..GenerateOptions::default()
    })
    .unwrap();
    let emu = Emulator::start(EmulatorConfig::new(world)).await.unwrap();
    // Several pages per listing and round: a restart must follow a whole chain.
    emu.update_faults(|f| f.max_page_size = Some(7));
    let summary = emu.summary();
    let tenant = summary.tenants[0].id.clone();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .unwrap();
    add_entra_connection(
        &db.store,
        &NewEntraConnection {
            name: "c".into(),
            tenant_id: tenant.clone(),
            client_id: app.client_id.clone(),
            credential: NewCredential::ClientSecret {
                value: app.client_secret.clone().unwrap(),
                expires_at: None,
            },
            authority_host: Some(summary.authority_host.clone()),
            graph_url: Some(summary.graph_url.clone()),
            customer: None,
            enabled_instances: None,
            last_sign_in: false,
        },
    )
    .await
    .unwrap();
    Fixture { emu, tenant }
}

impl Fixture {
    async fn patch_user(&self, id: &str, body: Value) {
        let url = format!("{}/tenants/{}/users/{id}", self.emu.admin_url(), self.tenant);
        let response = reqwest::Client::new()
            .patch(url)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// Two imported users' ids.
    async fn two_users(&self, db: &TestDb) -> (String, String) {
        let mut tx = db.store.read().await.unwrap();
        let users = tx.list(Entity::User, None, 10).await.unwrap();
        tx.commit().await.unwrap();
        let id = |i: usize| users[i].source.as_ref().unwrap().external_id.clone();
        (id(0), id(1))
    }

    async fn user_name(&self, db: &TestDb, external_id: &str) -> Option<String> {
        let mut tx = db.store.read().await.unwrap();
        let users = tx.list(Entity::User, None, 1_000).await.unwrap();
        tx.commit().await.unwrap();
        users
            .iter()
            .find(|u| u.source.as_ref().is_some_and(|s| s.external_id == external_id))
            .map(|u| u.get("name").as_str().unwrap_or_default().to_owned())
    }

    /// Delta tokens issued so far are refused (410 `resyncRequired`); those issued from the
    /// next second on are taken.
    async fn expire_delta_tokens(&self) {
        let now = SystemClock.now();
        self.emu
            .update_faults(|f| f.delta_tokens_expired_before = Some(now));
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }

    /// The Graph requests (method, path and query) the emulator answered since `from`.
    fn graph_requests(&self, from: usize) -> Vec<String> {
        self.emu
            .request_log()
            .iter()
            .skip(from)
            .filter(|r| r.path.starts_with("/v1.0/"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    fn log_len(&self) -> usize {
        self.emu.request_log().len()
    }
}

async fn stored_users_link(db: &TestDb, fx: &Fixture) -> Option<String> {
    let mut tx = db.store.read().await.unwrap();
    let connection = tx.connection_by_name("c").await.unwrap().unwrap();
    let cursor = tx
        .cursor(&CursorKey {
            connection_id: connection.id,
            tenant_id: fx.tenant.clone(),
            stream: "users/delta".into(),
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    cursor.map(|c| c.value)
}

async fn run_progress(db: &TestDb, outcome: &SyncOutcome) -> Value {
    let mut tx = db.store.read().await.unwrap();
    let run = tx.run(outcome.run_id.unwrap()).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    run.progress
}

store_test! {
    async fn a_resync_restarts_from_graphs_location_as_a_full_import(db: &TestDb) {
        let fx = fixture(db).await;
        let first = sync(db).await;
        assert_eq!((first.status.as_str(), first.mode.as_str()), ("succeeded", "full"), "{first:?}");
        let (renamed, deleted) = fx.two_users(db).await;
        fx.patch_user(&renamed, json!({"displayName": "Renamed During Resync"})).await;
        fx.emu
            .with_world_mut(|w| w.soft_delete_user(&fx.tenant, &deleted, SystemClock.now()))
            .unwrap();
        fx.expire_delta_tokens().await;

        let from = fx.log_len();
        let second = sync(db).await;
        assert_eq!((second.status.as_str(), second.mode.as_str()), ("succeeded", "full"), "{second:?}");
        assert!(
            second.notes.iter().any(|n| n.contains("resyncRequired") && n.contains("the Location Graph gave")),
            "{:?}",
            second.notes
        );
        let requests = fx.graph_requests(from);
        assert!(
            requests.iter().any(|r| r.starts_with("GET /v1.0/users/delta?$deltatoken=") && r.ends_with("$deltatoken=")),
            "the users round restarts from the Location (an empty token): {requests:#?}"
        );
        assert!(
            !requests.iter().any(|r| r.contains("deltatoken=latest")),
            "recovery does not use $deltatoken=latest: {requests:#?}"
        );
        // A complete full read: the change is imported and the user gone from Entra deactivated.
        assert_eq!(
            fx.user_name(db, &renamed).await.unwrap(),
            "Renamed During Resync"
        );
        assert_eq!(second.counts.deactivated, 1, "{second:?}");

        // The fresh round's links are stored and followed: the next run is a delta round.
        let third = sync(db).await;
        assert_eq!((third.status.as_str(), third.mode.as_str()), ("succeeded", "delta"), "{third:?}");
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn without_a_location_or_latest_a_tokenless_delta_query_restarts_the_round(db: &TestDb) {
        let fx = fixture(db).await;
        fx.emu.update_faults(|f| {
            f.resync_without_location = true;
            f.refuse_latest_delta_token = true;
        });
        // A first import needs no `$deltatoken=latest` either: a round without a token gives
        // its links.
        let first = sync(db).await;
        assert_eq!((first.status.as_str(), first.mode.as_str()), ("succeeded", "full"), "{first:?}");
        assert!(stored_users_link(db, &fx).await.is_some());
        let (renamed, _) = fx.two_users(db).await;
        fx.patch_user(&renamed, json!({"displayName": "Renamed Without Location"})).await;
        fx.expire_delta_tokens().await;

        let from = fx.log_len();
        let second = sync(db).await;
        assert_eq!((second.status.as_str(), second.mode.as_str()), ("succeeded", "full"), "{second:?}");
        assert!(
            second.notes.iter().any(|n| n.contains("delta queries without a token")),
            "{:?}",
            second.notes
        );
        let requests = fx.graph_requests(from);
        assert!(requests.iter().any(|r| r == "GET /v1.0/users/delta"), "{requests:#?}");
        assert!(requests.iter().any(|r| r == "GET /v1.0/groups/delta"), "{requests:#?}");
        assert!(!requests.iter().any(|r| r.contains("deltatoken=latest")), "{requests:#?}");
        assert_eq!(
            fx.user_name(db, &renamed).await.unwrap(),
            "Renamed Without Location"
        );
        let third = sync(db).await;
        assert_eq!((third.status.as_str(), third.mode.as_str()), ("succeeded", "delta"), "{third:?}");
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn a_location_refused_in_turn_gives_way_to_a_tokenless_delta_query(db: &TestDb) {
        let fx = fixture(db).await;
        let first = sync(db).await;
        assert_eq!(first.status, "succeeded", "{first:?}");
        fx.emu.update_faults(|f| f.resync_location_refused = true);
        fx.expire_delta_tokens().await;
        let from = fx.log_len();
        let second = sync(db).await;
        assert_eq!((second.status.as_str(), second.mode.as_str()), ("succeeded", "full"), "{second:?}");
        let requests = fx.graph_requests(from);
        assert!(
            requests.iter().any(|r| r.starts_with("GET /v1.0/users/delta?$deltatoken=bm90")),
            "the Location was tried: {requests:#?}"
        );
        assert!(requests.iter().any(|r| r == "GET /v1.0/users/delta"), "{requests:#?}");
        let third = sync(db).await;
        assert_eq!((third.status.as_str(), third.mode.as_str()), ("succeeded", "delta"), "{third:?}");
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn a_failed_resync_import_fails_with_its_own_error_and_the_next_run_recovers(db: &TestDb) {
        let fx = fixture(db).await;
        let first = sync(db).await;
        assert_eq!(first.status, "succeeded", "{first:?}");
        let old_link = stored_users_link(db, &fx).await.unwrap();
        let (renamed, _) = fx.two_users(db).await;
        fx.patch_user(&renamed, json!({"displayName": "Renamed After Failure"})).await;
        fx.expire_delta_tokens().await;
        // The full import's user listing cannot be read: the recovery fails once.
        fx.emu.update_faults(|f| f.malformed_users_page = Some(1));

        let failed = sync(db).await;
        assert_eq!((failed.status.as_str(), failed.mode.as_str()), ("failed", "full"), "{failed:?}");
        let error = &failed.errors[0];
        assert!(
            error.message.contains("the full import that replaces the delta links Graph refused failed"),
            "{error:?}"
        );
        assert!(error.message.contains("malformed response"), "says what failed: {error:?}");
        assert!(!error.message.contains("runs a full import instead"), "{error:?}");
        assert!(!error.message.contains("$skiptoken=") || error.message.contains("$skiptoken=REDACTED"), "{error:?}");
        // The requests made up to the failure and the mode are the run's, in the outcome and
        // in its row.
        assert!(failed.requests >= 4, "the 410 round, the fresh rounds and the listing: {failed:?}");
        let progress = run_progress(db, &failed).await;
        assert_eq!(progress["mode"], "full", "{progress}");
        assert_eq!(progress["requests"].as_u64(), Some(failed.requests), "{progress}");
        // The links are left as they were: the next run meets the same resync and starts over.
        assert_eq!(stored_users_link(db, &fx).await.as_deref(), Some(old_link.as_str()));
        assert_ne!(fx.user_name(db, &renamed).await.unwrap(), "Renamed After Failure");

        fx.emu.update_faults(|f| f.malformed_users_page = None);
        let recovered = sync(db).await;
        assert_eq!((recovered.status.as_str(), recovered.mode.as_str()), ("succeeded", "full"), "{recovered:?}");
        assert_eq!(
            fx.user_name(db, &renamed).await.unwrap(),
            "Renamed After Failure"
        );
        assert_ne!(stored_users_link(db, &fx).await.as_deref(), Some(old_link.as_str()));
        let delta = sync(db).await;
        assert_eq!((delta.status.as_str(), delta.mode.as_str()), ("succeeded", "delta"), "{delta:?}");
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn a_failed_delta_round_reports_its_mode_and_requests(db: &TestDb) {
        let fx = fixture(db).await;
        let first = sync(db).await;
        assert_eq!(first.status, "succeeded", "{first:?}");
        fx.emu.update_faults(|f| {
            f.random_503_percent = 100.0;
            f.retry_after_secs = 0;
        });
        let failed = sync(db).await;
        assert_eq!((failed.status.as_str(), failed.mode.as_str()), ("failed", "delta"), "{failed:?}");
        assert!(failed.requests >= 2, "{failed:?}");
        let progress = run_progress(db, &failed).await;
        assert_eq!(progress["mode"], "delta", "{progress}");
        assert_eq!(progress["requests"].as_u64(), Some(failed.requests), "{progress}");
        fx.emu.shutdown().await;
    }
}
