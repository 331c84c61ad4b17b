//! Organization.Read.All is optional, as the guide's permission table says: an app with only the
//! mandatory permissions imports the users, and the run says licences were left out and why.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use deskbridge_store::Entity;
use deskbridge_sync::SyncOptions;
use deskbridge_testkit::store_test;

use crate::assets::{clock, fixture, records};
use crate::sync;

store_test! {
    async fn users_import_without_organization_read_all_and_the_run_says_so(db: &TestDb) {
    let fx = fixture(db, "single_tenant").await; // User.Read.All and Group.Read.All only
    let run = sync(&db.store, "c", &SyncOptions::default(), &clock()).await.unwrap();
    assert_eq!(run.status, "partial", "{run:?}");
    assert!(run.counts.created > 0, "the users are imported: {run:?}");
    assert_eq!(run.errors.len(), 1, "{:?}", run.errors);
    let error = &run.errors[0];
    assert_eq!(error.entity.as_deref(), Some("licence"));
    assert_eq!(error.tenant_id.as_deref(), Some(fx.tenant.as_str()));
    assert!(error.message.starts_with("licences were not imported"), "{error:?}");
    assert!(error.remedy.as_deref().unwrap_or_default().contains("Organization.Read.All"), "{error:?}");
    assert!(records(db, Entity::Licence).await.is_empty());
    assert!(!records(db, Entity::User).await.is_empty());
    }
}
