//! deskbridge-conformance: the checks every connector must pass, written once (Vector's source
//! compliance idea). A connector's own tests implement [`Harness`] over its part of the emulator
//! and run [`check`] for each [`Check`], on SQLite and PostgreSQL (`store_test!`).
//!
//! What every source must guarantee, through the whole pipeline:
//! - **preview equals apply**: what a preview plans is what the sync then does;
//! - **apply twice is a no-op**: a second full sync of an unchanged source writes nothing;
//! - **a partial read deactivates nobody**: people missing from a read that broke off are left
//!   alone (and are deactivated once a complete read confirms they are gone);
//! - **a crash at any page resumes without duplicates**: a read that breaks at page *n* keeps the
//!   pages before it, and the next sync finishes the import with every person once;
//! - **bad pages fail clearly and keep what was committed**: a page no retry can parse fails the
//!   run with a clear error and the earlier pages stay; a record of the wrong type or with an
//!   oversize value is an error against that record, the rest is imported, and nobody is
//!   deactivated for being absent from that read.
//!
//! It is its own crate, not a module of `deskbridge-testkit`, because it drives the pipeline
//! (`deskbridge-sync`), whose own tests use the testkit: a module there would make the two
//! depend on each other.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test support: failing loudly is the point

use std::sync::Arc;

use deskbridge_core::{ConnectionId, SharedClock, SystemClock};
use deskbridge_mapping::{Action, Entity};
use deskbridge_source::{BoxFuture, SourceRegistry};
use deskbridge_store::{RecordScope, Store};
use deskbridge_sync::{SyncOptions, SyncOutcome};
use deskbridge_testkit::TestDb;

/// How a person's record is spoiled for the bad-record checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    /// A property the pipeline reads holds a value of the wrong type (e.g. text for a boolean).
    WrongType,
    /// A text property longer than any the source allows.
    Oversize,
}

/// One connector's emulated source: a partition of people it reads in pages, and the faults the
/// checks need. Connection and partition are the harness's own: each [`Harness::world`] is fresh.
pub trait World: Send + Sync {
    /// The connection's name in the store.
    fn connection(&self) -> &str;
    /// The partition (tenant) the connection reads.
    fn partition(&self) -> &str;
    /// How many people the source holds now.
    fn people(&self) -> usize;
    /// Removes `n` people from the source, so that a complete read no longer finds them.
    fn remove_people(&self, n: usize);
    /// From now on the listing's page `page` (1 for the first) is unreadable (not valid JSON) every
    /// time; `None` heals it.
    fn break_page(&self, page: Option<usize>);
    /// Spoils the first person the listing returns (so on its first page); returns that person's
    /// external id.
    fn corrupt_person(&self, corruption: Corruption) -> String;
    /// Undoes every corruption.
    fn heal_people(&self);
}

/// What a connector gives the suite.
pub trait Harness: Send + Sync {
    /// The registry with this connector, set to give up quickly on an unreadable page (the
    /// checks break pages on purpose).
    fn sources(&self) -> SourceRegistry;
    /// A fresh world of `people` people listed `page_size` to a page, and a connection to it
    /// added to `store`.
    fn world<'a>(
        &'a self,
        store: &'a Store,
        people: usize,
        page_size: usize,
    ) -> BoxFuture<'a, Box<dyn World>>;
}

/// The checks, each run on its own store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    PreviewEqualsApply,
    ApplyTwiceIsANoOp,
    PartialReadDeactivatesNobody,
    CrashAtAnyPageResumesWithoutDuplicates,
    UnreadablePageFailsAndKeepsWhatWasCommitted,
    BadRecordsAreErrorsAndTheRestIsImported,
}

impl Check {
    pub const ALL: [Check; 6] = [
        Check::PreviewEqualsApply,
        Check::ApplyTwiceIsANoOp,
        Check::PartialReadDeactivatesNobody,
        Check::CrashAtAnyPageResumesWithoutDuplicates,
        Check::UnreadablePageFailsAndKeepsWhatWasCommitted,
        Check::BadRecordsAreErrorsAndTheRestIsImported,
    ];
}

/// People per world and per page: four pages and a bit, so that "any page" means something.
const PEOPLE: usize = 42;
const PAGE_SIZE: usize = 10;

/// Runs one check of `harness` on `db`.
pub async fn check(harness: &dyn Harness, db: &TestDb, check: Check) {
    let run = Runner {
        sources: harness.sources(),
        store: db.store.clone(),
    };
    match check {
        Check::PreviewEqualsApply => preview_equals_apply(harness, &run).await,
        Check::ApplyTwiceIsANoOp => apply_twice_is_a_no_op(harness, &run).await,
        Check::PartialReadDeactivatesNobody => partial_read_deactivates_nobody(harness, &run).await,
        Check::CrashAtAnyPageResumesWithoutDuplicates => crash_at_any_page(harness, &run).await,
        Check::UnreadablePageFailsAndKeepsWhatWasCommitted => unreadable_page(harness, &run).await,
        Check::BadRecordsAreErrorsAndTheRestIsImported => bad_records(harness, &run).await,
    }
}

struct Runner {
    sources: SourceRegistry,
    store: Store,
}

impl Runner {
    async fn sync(&self, world: &dyn World, preview: bool) -> SyncOutcome {
        let clock: SharedClock = Arc::new(SystemClock);
        let options = SyncOptions {
            plan_only: preview,
            full: true,
            ..SyncOptions::default()
        };
        deskbridge_sync::sync(&self.store, &self.sources, world.connection(), &options, &clock)
            .await
            .unwrap_or_else(|e| panic!("the sync of {} could not run: {e}", world.connection()))
    }

    async fn connection_id(&self, world: &dyn World) -> ConnectionId {
        let mut tx = self.store.read().await.unwrap();
        let connection = tx.connection_by_name(world.connection()).await.unwrap().unwrap();
        tx.commit().await.unwrap();
        connection.id
    }

    /// The desk users the connection imported from the world's partition: (external id, active).
    async fn imported(&self, world: &dyn World) -> Vec<(String, bool)> {
        let scope = RecordScope::OfConnectionTenant {
            connection: self.connection_id(world).await,
            tenant_id: world.partition().to_owned(),
            external_ids: Vec::new(),
        };
        let mut tx = self.store.read().await.unwrap();
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = tx
                .list_scoped(deskbridge_store::Entity::User, &scope, after, 500)
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            out.extend(page.into_iter().map(|r| {
                let active = r.get("active").as_bool().unwrap_or(true);
                (r.source.map(|s| s.external_id).unwrap_or_default(), active)
            }));
        }
        tx.commit().await.unwrap();
        out
    }
}

/// Every person once, and how many are active.
fn assert_no_duplicates(imported: &[(String, bool)]) {
    let mut ids: Vec<String> = imported.iter().map(|(id, _)| id.to_ascii_lowercase()).collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "a person was imported twice");
}

fn active(imported: &[(String, bool)]) -> usize {
    imported.iter().filter(|(_, active)| *active).count()
}

async fn preview_equals_apply(harness: &dyn Harness, run: &Runner) {
    let world = harness.world(&run.store, PEOPLE, PAGE_SIZE).await;
    let preview = run.sync(world.as_ref(), true).await;
    assert_eq!(preview.status, "planned", "{:?}", preview.errors);
    assert!(
        run.imported(world.as_ref()).await.is_empty(),
        "a preview wrote users"
    );
    let applied = run.sync(world.as_ref(), false).await;
    assert_eq!(applied.status, "succeeded", "{:?}", applied.errors);
    let (p, a) = (preview.counts, applied.counts);
    assert_eq!(
        (p.created, p.updated, p.deactivated, p.conflicts),
        (a.created, a.updated, a.deactivated, a.conflicts),
        "the preview planned what the sync did not do"
    );
    // The preview's new users are exactly the users the sync imported.
    let mut planned: Vec<String> = preview
        .changes
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.entity == Entity::User && c.action == Action::Create)
        .map(|c| c.external_id.to_ascii_lowercase())
        .collect();
    planned.sort();
    let mut imported: Vec<String> = run
        .imported(world.as_ref())
        .await
        .into_iter()
        .map(|(id, _)| id.to_ascii_lowercase())
        .collect();
    imported.sort();
    assert_eq!(planned, imported);
}

async fn apply_twice_is_a_no_op(harness: &dyn Harness, run: &Runner) {
    let world = harness.world(&run.store, PEOPLE, PAGE_SIZE).await;
    let first = run.sync(world.as_ref(), false).await;
    assert_eq!(first.status, "succeeded", "{:?}", first.errors);
    assert!(first.counts.created > 0);
    let second = run.sync(world.as_ref(), false).await;
    assert_eq!(second.status, "succeeded", "{:?}", second.errors);
    let c = second.counts;
    assert_eq!(
        (c.created, c.updated, c.deactivated),
        (0, 0, 0),
        "a second sync of an unchanged source wrote something"
    );
    assert_no_duplicates(&run.imported(world.as_ref()).await);
}

async fn partial_read_deactivates_nobody(harness: &dyn Harness, run: &Runner) {
    let world = harness.world(&run.store, PEOPLE, PAGE_SIZE).await;
    assert_eq!(run.sync(world.as_ref(), false).await.status, "succeeded");
    let everyone = active(&run.imported(world.as_ref()).await);
    world.remove_people(5);
    world.break_page(Some(3));
    let broken = run.sync(world.as_ref(), false).await;
    assert_eq!(broken.status, "failed", "a read that broke off must fail the run");
    assert_eq!(broken.counts.deactivated, 0);
    assert_eq!(
        active(&run.imported(world.as_ref()).await),
        everyone,
        "a partial read deactivated someone"
    );
    // The control: a complete read confirms they are gone.
    world.break_page(None);
    let complete = run.sync(world.as_ref(), false).await;
    assert_eq!(complete.status, "succeeded", "{:?}", complete.errors);
    assert_eq!(complete.counts.deactivated, 5);
}

async fn crash_at_any_page(harness: &dyn Harness, run: &Runner) {
    let pages = PEOPLE.div_ceil(PAGE_SIZE);
    for page in 1..=pages {
        let world = harness.world(&run.store, PEOPLE, PAGE_SIZE).await;
        world.break_page(Some(page));
        let broken = run.sync(world.as_ref(), false).await;
        assert_eq!(broken.status, "failed", "page {page}");
        // What was committed before the break stays: the pages before it, at least.
        let kept = run.imported(world.as_ref()).await;
        assert!(
            kept.len() >= (page - 1) * PAGE_SIZE,
            "page {page}: {} imported, the pages before the break hold {}",
            kept.len(),
            (page - 1) * PAGE_SIZE
        );
        world.break_page(None);
        let resumed = run.sync(world.as_ref(), false).await;
        assert_eq!(resumed.status, "succeeded", "page {page}: {:?}", resumed.errors);
        let imported = run.imported(world.as_ref()).await;
        assert_no_duplicates(&imported);
        assert_eq!(
            imported.len(),
            world.people(),
            "page {page}: not everyone was imported"
        );
        assert_eq!(
            kept.len() + resumed.counts.created as usize,
            world.people(),
            "page {page}: the resumed sync created what was already there"
        );
    }
}

async fn unreadable_page(harness: &dyn Harness, run: &Runner) {
    let world = harness.world(&run.store, PEOPLE, PAGE_SIZE).await;
    world.break_page(Some(2));
    let broken = run.sync(world.as_ref(), false).await;
    assert_eq!(broken.status, "failed");
    let error = broken.errors.first().expect("the failure is recorded");
    assert!(
        error.message.to_ascii_lowercase().contains("json") || error.message.contains("malformed"),
        "the error says what was wrong with the page: {}",
        error.message
    );
    let kept = run.imported(world.as_ref()).await;
    assert_eq!(
        kept.len(),
        PAGE_SIZE,
        "the page before the unreadable one is kept"
    );
    // A record refused before the break stays recorded against the failed run.
    let world = harness.world(&run.store, PEOPLE, PAGE_SIZE).await;
    let spoiled = world.corrupt_person(Corruption::WrongType);
    world.break_page(Some(2));
    let broken = run.sync(world.as_ref(), false).await;
    assert_eq!(broken.status, "failed");
    let names = |errors: &[deskbridge_store::IntegrationError]| {
        errors
            .iter()
            .any(|e| e.external_id.as_deref() == Some(spoiled.as_str()))
    };
    assert!(names(&broken.errors), "{:?}", broken.errors);
    let run_id = broken.run_id.expect("a run");
    let mut tx = run.store.read().await.unwrap();
    let stored = tx.errors_for_run(run_id).await.unwrap();
    tx.commit().await.unwrap();
    assert!(
        names(&stored),
        "the refused record is recorded against the run: {stored:?}"
    );
}

async fn bad_records(harness: &dyn Harness, run: &Runner) {
    for corruption in [Corruption::WrongType, Corruption::Oversize] {
        let world = harness.world(&run.store, PEOPLE, PAGE_SIZE).await;
        assert_eq!(run.sync(world.as_ref(), false).await.status, "succeeded");
        let everyone = active(&run.imported(world.as_ref()).await);
        let spoiled = world.corrupt_person(corruption);
        let outcome = run.sync(world.as_ref(), false).await;
        assert_eq!(outcome.status, "partial", "{corruption:?}: {:?}", outcome.errors);
        let errors: Vec<_> = outcome
            .errors
            .iter()
            .filter(|e| e.external_id.as_deref() == Some(spoiled.as_str()))
            .collect();
        assert_eq!(
            errors.len(),
            1,
            "{corruption:?}: one error names the record: {:?}",
            outcome.errors
        );
        assert_eq!(
            outcome.counts.deactivated, 0,
            "{corruption:?}: a bad record deactivated someone"
        );
        let imported = run.imported(world.as_ref()).await;
        assert_eq!(active(&imported), everyone, "{corruption:?}");
        assert!(
            imported
                .iter()
                .any(|(id, active)| id.eq_ignore_ascii_case(&spoiled) && *active),
            "{corruption:?}: the spoiled person's desk record is left as it was"
        );
        world.heal_people();
        let healed = run.sync(world.as_ref(), false).await;
        assert_eq!(healed.status, "succeeded", "{corruption:?}: {:?}", healed.errors);
    }
}
