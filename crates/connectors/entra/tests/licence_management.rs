//! Licence management from the desk against the emulator, on SQLite and PostgreSQL: assigning and
//! removing a licence writes `assignLicense` to Entra, journals the change and only then moves the
//! desk's link and unit counts; a repeat changes nothing; an open change is re-sent, not doubled;
//! the option off, a licence of another tenant, no free units, no usage location, a missing
//! permission and an unreachable Graph are each refused (or failed) with their reason and no desk
//! change; the check fails when the option is on without LicenseAssignment.ReadWrite.All.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use deskbridge_core::{ErrorCode, HasErrorCode as _, RecordId, SharedClock, SystemClock};
use deskbridge_emulator::Emulator;
use deskbridge_source::settings::{Purpose, validate};
use deskbridge_store::{
    ChangeStatus, Entity, Fields, LicenceAction, LicenceChange, NewLicenceChange, Record, WriteContext,
};
use deskbridge_sync::{LicenceOutcome, SyncError, SyncOptions, change_user_licence, check_connection};
use deskbridge_testkit::{TestDb, store_test};
use serde_json::json;

use crate::assets::{fixture, records};
use crate::{sources, sync};

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

/// Turns "manage licences from the desk" on or off, through the connector's edit.
async fn set_managed(db: &TestDb, on: bool) {
    let registry = sources();
    let source = registry.get("entra").unwrap();
    let values = validate(
        source.settings(),
        json!({ "manage_licences": on }).as_object().unwrap(),
        Purpose::Edit,
        registry.endpoint_policy(),
    )
    .unwrap();
    let mut tx = db.store.read().await.unwrap();
    let connection = tx.connection_by_name("c").await.unwrap().unwrap();
    tx.commit().await.unwrap();
    source.edit(&db.store, &connection, values).await.unwrap();
}

/// The case a test works on: a member with a usage location, and a licence they do not hold
/// with free units, both as Entra has them and as the desk does.
struct Case {
    emu: Emulator,
    tenant: String,
    object_id: String,
    sku_id: String,
    user: RecordId,
    licence: RecordId,
}

/// A synced one-tenant world, licence management on (or not), and the case to work on.
async fn case(db: &TestDb, app_kind: &str, managed: bool) -> Case {
    let fx = fixture(db, app_kind).await;
    let run = sync(&db.store, "c", &SyncOptions::default(), &clock())
        .await
        .unwrap();
    assert!(run.status == "succeeded" || run.status == "partial", "{run:?}");
    if managed {
        set_managed(db, true).await;
    }
    let (object_id, sku_id) = fx.emu.with_world(|w| {
        let t = &w.tenants[0];
        t.users
            .iter()
            .filter(|u| u.account_enabled && u.user_type == "Member" && u.usage_location.is_some())
            .find_map(|u| {
                t.skus
                    .iter()
                    .filter(|s| s.applies_to == "User")
                    .filter(|s| !u.assigned_licenses.iter().any(|l| l.sku_id == s.sku_id))
                    .find(|s| t.consumed_units(&s.sku_id) < usize::try_from(s.prepaid_enabled).unwrap())
                    .map(|s| (u.id.clone(), s.sku_id.clone()))
            })
            .expect("a user without some licence that has free units")
    });
    let user = desk_user(db, &object_id).await.id;
    let licence = desk_licence(db, &sku_id).await.id;
    Case {
        emu: fx.emu,
        tenant: fx.tenant,
        object_id,
        sku_id,
        user,
        licence,
    }
}

async fn desk_user(db: &TestDb, object_id: &str) -> Record {
    records(db, Entity::User)
        .await
        .into_iter()
        .find(|u| {
            u.source
                .as_ref()
                .is_some_and(|s| s.external_id.eq_ignore_ascii_case(object_id))
        })
        .unwrap_or_else(|| panic!("user {object_id} is not on the desk"))
}

async fn desk_licence(db: &TestDb, sku_id: &str) -> Record {
    records(db, Entity::Licence)
        .await
        .into_iter()
        .find(|l| l.text("sku_id").is_some_and(|s| s.eq_ignore_ascii_case(sku_id)))
        .unwrap_or_else(|| panic!("licence {sku_id} is not on the desk"))
}

async fn get(db: &TestDb, entity: Entity, id: RecordId) -> Record {
    let mut tx = db.store.read().await.unwrap();
    let record = tx.get(entity, id).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    record
}

fn holds(user: &Record, licence: RecordId) -> bool {
    user.get("licences")
        .as_array()
        .unwrap()
        .iter()
        .any(|id| id.as_i64() == Some(licence.0))
}

async fn changes(db: &TestDb, user: RecordId) -> Vec<LicenceChange> {
    let mut tx = db.store.read().await.unwrap();
    let changes = tx.licence_changes(user, 100).await.unwrap();
    tx.commit().await.unwrap();
    changes
}

async fn ask(c: &Case, db: &TestDb, action: LicenceAction) -> Result<LicenceOutcome, SyncError> {
    change_user_licence(
        &db.store,
        &sources(),
        c.user,
        c.licence,
        action,
        "alice",
        &clock(),
    )
    .await
}

impl Case {
    fn entra_holds(&self) -> bool {
        self.emu.with_world(|w| {
            w.tenants[0]
                .users
                .iter()
                .find(|u| u.id == self.object_id)
                .unwrap()
                .assigned_licenses
                .iter()
                .any(|l| l.sku_id == self.sku_id)
        })
    }

    fn entra_consumed(&self) -> i64 {
        self.emu
            .with_world(|w| i64::try_from(w.tenants[0].consumed_units(&self.sku_id)).unwrap())
    }
}

store_test! {
    async fn assigning_and_removing_write_to_entra_then_the_desk(db: &TestDb) {
    let c = case(db, "multi_tenant_secret", true).await;
    let outcome = ask(&c, db, LicenceAction::Assign).await.unwrap();
    let change = outcome.change.clone().expect("a change was sent");
    assert_eq!(change.status, ChangeStatus::Applied, "{change:?}");
    assert_eq!(change.action, LicenceAction::Assign);
    assert_eq!(change.requested_by, "alice");
    assert_eq!(change.tenant_id, c.tenant);
    assert!(c.entra_holds(), "Entra has the licence");
    assert!(holds(&get(db, Entity::User, c.user).await, c.licence), "the desk follows");
    let licence = get(db, Entity::Licence, c.licence).await;
    assert_eq!(licence.get("consumed_units").as_i64(), Some(c.entra_consumed()), "{licence:?}");
    assert!(outcome.message.contains("units now assigned"), "{}", outcome.message);

    // The desk's link changed through the journal, attributed to the connection.
    let mut tx = db.store.read().await.unwrap();
    let journal = tx.journal_for_record(Entity::User, c.user).await.unwrap();
    tx.commit().await.unwrap();
    let entry = journal.iter().rev().find(|j| j.field == "licences").expect("journalled");
    assert_eq!(entry.connection_id, Some(change.connection_id));
    assert!(entry.after.to_string().contains(&c.licence.0.to_string()), "{entry:?}");

    // Asked again: nothing is sent, no second change.
    let again = ask(&c, db, LicenceAction::Assign).await.unwrap();
    assert!(again.change.is_none(), "{again:?}");
    assert!(again.message.contains("already has"), "{}", again.message);
    assert_eq!(changes(db, c.user).await.len(), 1);

    let removed = ask(&c, db, LicenceAction::Remove).await.unwrap();
    assert_eq!(removed.change.unwrap().status, ChangeStatus::Applied);
    assert!(!c.entra_holds(), "Entra no longer has it");
    assert!(!holds(&get(db, Entity::User, c.user).await, c.licence));
    let licence = get(db, Entity::Licence, c.licence).await;
    assert_eq!(licence.get("consumed_units").as_i64(), Some(c.entra_consumed()));
    let gone = ask(&c, db, LicenceAction::Remove).await.unwrap();
    assert!(gone.change.is_none() && gone.message.contains("does not have"), "{gone:?}");
    let all = changes(db, c.user).await;
    assert_eq!(all.len(), 2, "{all:?}");
    c.emu.shutdown().await;
    }
}

store_test! {
    async fn an_open_change_is_sent_again_not_doubled(db: &TestDb) {
    let c = case(db, "multi_tenant_secret", true).await;
    // A change whose answer was lost: written, never finished.
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let open = tx
        .add_licence_change(&NewLicenceChange {
            user_id: c.user,
            licence_id: c.licence,
            connection_id: desk_user(db, &c.object_id).await.source.unwrap().connection_id,
            tenant_id: c.tenant.clone(),
            user_external_id: c.object_id.clone(),
            sku_id: c.sku_id.clone(),
            action: LicenceAction::Assign,
            requested_by: "bob".into(),
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let outcome = ask(&c, db, LicenceAction::Assign).await.unwrap();
    let change = outcome.change.unwrap();
    assert_eq!(change.id, open.id, "the open change is re-sent");
    assert_eq!(change.status, ChangeStatus::Applied);
    assert_eq!(changes(db, c.user).await.len(), 1);
    assert!(c.entra_holds());
    c.emu.shutdown().await;
    }
}

/// The error of a refused change, with the desk and Entra left as they were.
async fn refused(c: &Case, db: &TestDb) -> SyncError {
    let before = get(db, Entity::User, c.user).await;
    let err = ask(c, db, LicenceAction::Assign).await.unwrap_err();
    assert!(!c.entra_holds(), "nothing changed in Entra");
    let after = get(db, Entity::User, c.user).await;
    assert_eq!(
        before.get("licences"),
        after.get("licences"),
        "nothing changed on the desk"
    );
    err
}

store_test! {
    async fn the_option_off_refuses_without_a_call(db: &TestDb) {
    let c = case(db, "multi_tenant_secret", false).await;
    let err = refused(&c, db).await;
    assert!(matches!(err, SyncError::Conflict(_)), "{err:?}");
    assert!(err.to_string().contains("Manage licences from the desk"), "{err}");
    assert!(changes(db, c.user).await.is_empty(), "nothing asked, nothing journalled");
    c.emu.shutdown().await;
    }
}

store_test! {
    async fn a_licence_of_another_tenant_is_refused(db: &TestDb) {
    let c = case(db, "multi_tenant_secret", true).await;
    // A licence the desk has for another customer (hand-made, not this tenant's).
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let other_customer = tx
        .insert(Entity::Customer, None, &Fields::from([("name".to_owned(), json!("Fabrikam"))]))
        .await
        .unwrap();
    let other = tx
        .insert(
            Entity::Licence,
            None,
            &Fields::from([
                ("friendly_name".to_owned(), json!("Fabrikam E5")),
                ("customer_id".to_owned(), json!(other_customer.0)),
                ("sku_id".to_owned(), json!(c.sku_id)),
            ]),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let err = change_user_licence(&db.store, &sources(), c.user, other, LicenceAction::Assign, "alice", &clock())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not a licence imported from the tenant"), "{err}");
    assert!(!c.entra_holds());
    assert!(changes(db, c.user).await.is_empty());
    c.emu.shutdown().await;
    }
}

store_test! {
    async fn no_free_units_is_refused_with_the_counts(db: &TestDb) {
    let c = case(db, "multi_tenant_secret", true).await;
    let used = c.entra_consumed();
    c.emu.with_world_mut(|w| {
        let sku = w.tenants[0].skus.iter_mut().find(|s| s.sku_id == c.sku_id).unwrap();
        sku.prepaid_enabled = i32::try_from(used).unwrap();
    });
    let err = refused(&c, db).await;
    assert_eq!(err.error_code(), ErrorCode::ChangeRefused, "{err:?}");
    assert_eq!(err.code(), "Request_BadRequest");
    let message = err.to_string();
    assert!(message.contains("no free units"), "{message}");
    assert!(message.contains(&format!("{used} of {used} units")), "{message}");
    let change = &changes(db, c.user).await[0];
    assert_eq!(change.status, ChangeStatus::Refused);
    assert!(change.message.as_deref().unwrap().contains("buy more units"), "{change:?}");
    c.emu.shutdown().await;
    }
}

store_test! {
    async fn no_usage_location_is_refused_with_the_remedy(db: &TestDb) {
    let c = case(db, "multi_tenant_secret", true).await;
    c.emu.with_world_mut(|w| {
        let user = w.tenants[0].users.iter_mut().find(|u| u.id == c.object_id).unwrap();
        user.usage_location = None;
    });
    let err = refused(&c, db).await;
    assert_eq!(err.error_code(), ErrorCode::ChangeRefused, "{err:?}");
    assert!(err.to_string().contains("no usage location"), "{err}");
    assert!(err.remedy().unwrap().contains("usage location"), "{err:?}");
    assert_eq!(changes(db, c.user).await[0].status, ChangeStatus::Refused);
    c.emu.shutdown().await;
    }
}

store_test! {
    async fn a_missing_permission_names_it_and_the_consent(db: &TestDb) {
    let c = case(db, "multi_tenant_secret", true).await;
    c.emu.with_world_mut(|w| {
        for app in &mut w.apps {
            app.application_permissions
                .retain(|p| !matches!(p.as_str(), "User.ReadWrite.All" | "Directory.ReadWrite.All" | "LicenseAssignment.ReadWrite.All"));
        }
    });
    let err = refused(&c, db).await;
    assert_eq!(err.code(), "Authorization_RequestDenied", "{err:?}");
    assert!(err.to_string().contains("LicenseAssignment.ReadWrite.All"), "{err}");
    assert!(err.remedy().unwrap().contains("admin consent"), "{err:?}");
    assert_eq!(changes(db, c.user).await[0].status, ChangeStatus::Refused);

    // The check says the same before anyone tries.
    let report = check_connection(&db.store, &sources(), "c", "production", &clock()).await;
    let point = report.points.iter().find(|p| p.name == "licence_management_permission").unwrap();
    assert!(!point.ok, "{point:?}");
    assert!(point.remedy.contains("LicenseAssignment.ReadWrite.All"), "{point:?}");
    c.emu.shutdown().await;
    }
}

store_test! {
    async fn an_unreachable_graph_fails_the_change_open_to_a_retry(db: &TestDb) {
    let c = case(db, "multi_tenant_secret", true).await;
    let Case { emu, user, licence, .. } = c;
    emu.shutdown().await;
    let before = get(db, Entity::User, user).await;
    let err = change_user_licence(&db.store, &sources(), user, licence, LicenceAction::Assign, "alice", &clock())
        .await
        .unwrap_err();
    assert_ne!(err.error_code(), ErrorCode::ChangeRefused, "{err:?}");
    let change = &changes(db, user).await[0];
    assert_eq!(change.status, ChangeStatus::Failed, "{change:?}");
    assert!(change.status.is_open());
    assert_eq!(before.get("licences"), get(db, Entity::User, user).await.get("licences"));
    }
}

store_test! {
    async fn the_check_passes_with_the_permission_and_the_option_on(db: &TestDb) {
    let c = case(db, "multi_tenant_secret", true).await;
    let report = check_connection(&db.store, &sources(), "c", "production", &clock()).await;
    let point = report.points.iter().find(|p| p.name == "licence_management_permission").unwrap();
    assert!(point.ok, "{point:?}");
    set_managed(db, false).await;
    let report = check_connection(&db.store, &sources(), "c", "production", &clock()).await;
    let point = report.points.iter().find(|p| p.name == "licence_management_permission").unwrap();
    assert!(point.ok && point.detail.contains("is off"), "{point:?}");
    c.emu.shutdown().await;
    }
}
