//! "Adjust quantity": a desk subscription's new seat count goes to Partner Center, journalled per
//! change; a reduction outside the new-commerce window is refused with the reason and the date,
//! without a write; a lost answer is retried with the same request id and made once; a failed
//! change asked again reuses its request id.

use std::sync::Arc;
use std::time::Duration;

use deskbridge_connector_csp::CspSource;
use deskbridge_core::{ErrorCode, HasErrorCode as _, RecordId};
use deskbridge_graph::GraphConfig;
use deskbridge_partner::PartnerConfig;
use deskbridge_source::SourceRegistry;
use deskbridge_source::settings::{Purpose, validate};
use deskbridge_store::{ChangeStatus, Entity, Store};
use deskbridge_sync::{SyncOptions, set_subscription_quantity};
use deskbridge_testkit::store_test;
use serde_json::json;

use crate::{add_and_authorize, clock, partner};

/// The CSP connector with quick Partner Center retries (two tries, milliseconds apart).
fn quick_sources() -> SourceRegistry {
    let partner = PartnerConfig {
        max_attempts: 2,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(10),
        ..PartnerConfig::default()
    };
    SourceRegistry::new()
        .with(Arc::new(CspSource::new(GraphConfig::default(), partner)))
        .with_endpoint_policy(deskbridge_source::settings::EndpointPolicy::allowing([
            "127.0.0.1",
        ]))
}

/// A partner of one customer whose subscriptions are imported; returns the emulator and tenant.
async fn imported(
    db: &Store,
    registry: &SourceRegistry,
    seed: u64,
    name: &str,
) -> (deskbridge_emulator::Emulator, String) {
    let (emu, tenants) = partner(seed, 1, 3).await;
    let connection = add_and_authorize(db, registry, &emu, name).await;
    let source = registry.get("csp").unwrap();
    let values = validate(
        source.settings(),
        json!({ "licence_import": "subscriptions" }).as_object().unwrap(),
        Purpose::Edit,
        registry.endpoint_policy(),
    )
    .unwrap();
    source.edit(db, &connection, values).await.unwrap();
    let outcome = deskbridge_sync::sync(db, registry, name, &SyncOptions::default(), &clock())
        .await
        .unwrap();
    assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
    (emu, tenants[0].clone())
}

/// The desk id of the world's subscription `id`.
async fn desk_id(db: &Store, id: &str) -> RecordId {
    let mut tx = db.read().await.unwrap();
    let all = tx.list(Entity::Subscription, None, 1_000).await.unwrap();
    tx.commit().await.unwrap();
    all.iter()
        .find(|r| {
            r.source
                .as_ref()
                .is_some_and(|s| s.external_id.eq_ignore_ascii_case(id))
        })
        .map(|r| r.id)
        .unwrap_or_else(|| panic!("subscription {id} is not on the desk"))
}

fn world_subscription(
    emu: &deskbridge_emulator::Emulator,
    pick: impl Fn(&deskbridge_emulator::partner::model::PcSubscription) -> bool,
) -> (String, i64) {
    emu.with_world(|w| {
        let s = w
            .partner_center
            .subscriptions
            .iter()
            .find(|s| pick(s))
            .expect("such a subscription");
        (s.id.clone(), s.quantity)
    })
}

fn world_quantity(emu: &deskbridge_emulator::Emulator, id: &str) -> i64 {
    emu.with_world(|w| {
        w.partner_center
            .subscriptions
            .iter()
            .find(|s| s.id == id)
            .unwrap()
            .quantity
    })
}

fn patches(emu: &deskbridge_emulator::Emulator, id: &str) -> Vec<u16> {
    emu.request_log()
        .iter()
        .filter(|e| e.method == "PATCH" && e.path.to_lowercase().ends_with(&id.to_lowercase()))
        .map(|e| e.status)
        .collect()
}

store_test! {
    async fn a_new_quantity_goes_to_partner_center_and_is_journalled(db: &TestDb) {
        let registry = quick_sources();
        let (emu, _) = imported(&db.store, &registry, 91, "csp-adjust").await;
        // Renewed two days ago: inside the window, so seats may go up and down.
        let (fresh, seats) = world_subscription(&emu, |s| s.new_commerce);
        emu.with_world_mut(|w| {
            let s = w.partner_center.subscriptions.iter_mut().find(|s| s.id == fresh).unwrap();
            s.cancellation_allowed_until_date = clock().now().checked_add(jiff::SignedDuration::from_hours(120)).ok();
        });
        let id = desk_id(&db.store, &fresh).await;
        let change = set_subscription_quantity(&db.store, &registry, id, seats + 2, "ann", &clock()).await.unwrap();
        assert_eq!(change.status, ChangeStatus::Applied);
        assert_eq!((change.quantity_before, change.quantity_after), (Some(seats), seats + 2));
        assert_eq!(change.requested_by, "ann");
        assert_eq!(world_quantity(&emu, &fresh), seats + 2);
        let mut tx = db.store.read().await.unwrap();
        assert_eq!(tx.get(Entity::Subscription, id).await.unwrap().unwrap().get("quantity"), &json!(seats + 2));
        tx.commit().await.unwrap();
        let down = set_subscription_quantity(&db.store, &registry, id, seats + 1, "ann", &clock()).await.unwrap();
        assert_eq!(down.status, ChangeStatus::Applied, "a reduction inside the window");
        assert_eq!(world_quantity(&emu, &fresh), seats + 1);
        // The same quantity again is not a change.
        let same = set_subscription_quantity(&db.store, &registry, id, seats + 1, "ann", &clock()).await.unwrap_err();
        assert!(same.to_string().contains("already has"), "{same}");
        let mut tx = db.store.read().await.unwrap();
        let journal = tx.subscription_changes(id, 10).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(journal.len(), 2, "{journal:?}");
        assert_ne!(journal[0].request_id, journal[1].request_id, "two changes, two request ids");
    }
}

store_test! {
    async fn a_reduction_outside_the_new_commerce_window_is_refused_with_the_reason_and_date(db: &TestDb) {
        let registry = quick_sources();
        let (emu, _) = imported(&db.store, &registry, 92, "csp-window").await;
        let now = clock().now();
        let (old, seats) = world_subscription(&emu, |s| {
            s.new_commerce && s.quantity > 1 && s.cancellation_allowed_until_date.is_some_and(|until| until < now)
        });
        let until = emu.with_world(|w| {
            w.partner_center.subscriptions.iter().find(|s| s.id == old).unwrap().cancellation_allowed_until_date.unwrap()
        });
        let id = desk_id(&db.store, &old).await;
        let error = set_subscription_quantity(&db.store, &registry, id, seats - 1, "ann", &clock()).await.unwrap_err();
        assert_eq!(error.error_code(), ErrorCode::ChangeRefused, "{error}");
        assert!(error.to_string().contains(&until.to_string()), "the date the window ended: {error}");
        assert!(error.remedy().unwrap().contains("Increase the quantity"), "{error:?}");
        assert_eq!(world_quantity(&emu, &old), seats, "unchanged");
        assert!(patches(&emu, &old).is_empty(), "nothing was sent");
        let mut tx = db.store.read().await.unwrap();
        let journal = tx.subscription_changes(id, 10).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(journal[0].status, ChangeStatus::Refused);
        assert!(journal[0].message.as_deref().unwrap().contains("cancellation window"), "{journal:?}");
        // An increase of the same subscription is allowed at any time.
        let up = set_subscription_quantity(&db.store, &registry, id, seats + 5, "ann", &clock()).await.unwrap();
        assert_eq!(up.status, ChangeStatus::Applied);
        // A usage-based subscription has no seats to change.
        if let Some((usage, _)) = emu.with_world(|w| {
            w.partner_center.subscriptions.iter().find(|s| s.unit_type == "Usage-based").map(|s| (s.id.clone(), s.quantity))
        }) {
            let id = desk_id(&db.store, &usage).await;
            let error = set_subscription_quantity(&db.store, &registry, id, 3, "ann", &clock()).await.unwrap_err();
            assert_eq!(error.error_code(), ErrorCode::ChangeRefused, "{error}");
        }
    }
}

store_test! {
    async fn a_lost_answer_and_a_retried_change_are_made_once_with_one_request_id(db: &TestDb) {
        let registry = quick_sources();
        let (emu, _) = imported(&db.store, &registry, 93, "csp-retry").await;
        let (target, seats) = world_subscription(&emu, |s| s.new_commerce);
        let id = desk_id(&db.store, &target).await;
        // One answer lost: the client's second try (same MS-RequestId) gets the first answer.
        emu.update_partner_faults(|f| f.lose_write_answers = 1);
        let change = set_subscription_quantity(&db.store, &registry, id, seats + 1, "ann", &clock()).await.unwrap();
        assert_eq!(change.status, ChangeStatus::Applied);
        assert_eq!(patches(&emu, &target), [503, 200]);
        assert_eq!(world_quantity(&emu, &target), seats + 1);
        // Every answer lost: the change is made at Partner Center but fails here, and stays open.
        emu.update_partner_faults(|f| f.lose_write_answers = 2);
        let error = set_subscription_quantity(&db.store, &registry, id, seats + 3, "ann", &clock()).await.unwrap_err();
        assert_eq!(error.error_code(), ErrorCode::UpstreamUnavailable, "{error}");
        let mut tx = db.store.read().await.unwrap();
        let failed = tx.subscription_changes(id, 1).await.unwrap().remove(0);
        tx.commit().await.unwrap();
        assert_eq!(failed.status, ChangeStatus::Failed);
        // Asked again: the same row and request id, answered from Partner Center's first answer.
        let retried = set_subscription_quantity(&db.store, &registry, id, seats + 3, "bob", &clock()).await.unwrap();
        assert_eq!(retried.id, failed.id);
        assert_eq!(retried.request_id, failed.request_id);
        assert_eq!(retried.status, ChangeStatus::Applied);
        assert_eq!(world_quantity(&emu, &target), seats + 3);
        let mut tx = db.store.read().await.unwrap();
        assert_eq!(tx.subscription_changes(id, 10).await.unwrap().len(), 2, "two changes asked, each once");
        tx.commit().await.unwrap();
    }
}
