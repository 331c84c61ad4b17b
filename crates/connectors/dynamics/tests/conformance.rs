//! The source conformance suite (`deskbridge-conformance`) for Dynamics 365 against the
//! emulator's Dataverse, on SQLite and PostgreSQL: each check on a store of its own, each world an
//! organisation (and tenant) of its own.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use deskbridge_conformance::{Check, Corruption, Harness, World, check};
use deskbridge_core::{Clock as _, SystemClock};
use deskbridge_emulator::Emulator;
use deskbridge_source::{BoxFuture, SourceRegistry};
use deskbridge_store::Store;
use deskbridge_testkit::store_test;
use serde_json::{Map, Value, json};

/// The suite's page size (its `PAGE_SIZE`): the registry is built before the world, so the
/// source reads this many contacts a page.
const SUITE_PAGE_SIZE: usize = 10;

struct Dynamics {
    seed: AtomicU64,
}

static DYNAMICS: Dynamics = Dynamics {
    seed: AtomicU64::new(3_000),
};

struct DynamicsWorld {
    emu: Emulator,
    org: String,
    tenant: String,
    connection: String,
    /// What a corruption replaced: (contact, column, value before).
    spoiled: Mutex<Vec<(String, String, Value)>>,
}

impl Harness for Dynamics {
    fn sources(&self) -> SourceRegistry {
        crate::sources(SUITE_PAGE_SIZE as u32)
    }

    fn world<'a>(
        &'a self,
        store: &'a Store,
        people: usize,
        page_size: usize,
    ) -> BoxFuture<'a, Box<dyn World>> {
        Box::pin(async move {
            assert_eq!(
                page_size, SUITE_PAGE_SIZE,
                "the registry reads {SUITE_PAGE_SIZE} a page"
            );
            let seed = self.seed.fetch_add(1, Ordering::SeqCst);
            let emu = crate::emulator(seed, people).await;
            let (_, tenant, org) = crate::org(&emu);
            let connection = format!("dynamics-{seed}");
            crate::add(store, &connection, crate::service_principal(&emu))
                .await
                .unwrap();
            Box::new(DynamicsWorld {
                emu,
                org,
                tenant,
                connection,
                spoiled: Mutex::new(Vec::new()),
            }) as Box<dyn World>
        })
    }
}

impl DynamicsWorld {
    /// The contacts' ids in listing order (Dataverse's default order here: by id).
    fn contacts(&self) -> Vec<String> {
        self.emu.with_world(|w| {
            let mut ids: Vec<String> = w
                .dataverse_org(&self.org)
                .and_then(|o| o.table("contact"))
                .map(|t| t.rows.iter().map(|r| r.id.clone()).collect())
                .unwrap_or_default();
            ids.sort();
            ids
        })
    }

    fn set(&self, id: &str, column: &str, value: Value) -> Value {
        let now = SystemClock.now();
        self.emu.with_world_mut(|w| {
            let org = w.dataverse_org_mut(&self.org).unwrap();
            let before = org
                .table("contact")
                .and_then(|t| t.row(id))
                .and_then(|r| r.values.get(column).cloned())
                .unwrap_or(Value::Null);
            let mut values = Map::new();
            values.insert(column.to_owned(), value);
            org.update_row("contact", id, values, now).unwrap();
            before
        })
    }
}

impl World for DynamicsWorld {
    fn connection(&self) -> &str {
        &self.connection
    }

    fn partition(&self) -> &str {
        &self.tenant
    }

    fn people(&self) -> usize {
        self.contacts().len()
    }

    fn remove_people(&self, n: usize) {
        let now = SystemClock.now();
        for id in self.contacts().into_iter().rev().take(n) {
            self.emu.with_world_mut(|w| {
                w.dataverse_org_mut(&self.org)
                    .unwrap()
                    .delete_row("contact", &id, now)
                    .unwrap();
            });
        }
    }

    fn break_page(&self, page: Option<usize>) {
        self.emu.update_faults(|f| f.malformed_users_page = page);
    }

    fn corrupt_person(&self, corruption: Corruption) -> String {
        let id = self.contacts().into_iter().next().unwrap();
        let (column, value) = match corruption {
            // Text where Dataverse sends an integer: it must not become "active".
            Corruption::WrongType => ("statecode", json!("yes")),
            Corruption::Oversize => ("fullname", json!("x".repeat(20 * 1024))),
        };
        let before = self.set(&id, column, value);
        self.spoiled
            .lock()
            .unwrap()
            .push((id.clone(), column.to_owned(), before));
        id
    }

    fn heal_people(&self) {
        let spoiled = std::mem::take(&mut *self.spoiled.lock().unwrap());
        for (id, column, before) in spoiled.into_iter().rev() {
            self.set(&id, &column, before);
        }
    }
}

store_test! {
    async fn conformance_preview_equals_apply(db: &TestDb) {
        check(&DYNAMICS, db, Check::PreviewEqualsApply).await;
    }
}

store_test! {
    async fn conformance_apply_twice_is_a_no_op(db: &TestDb) {
        check(&DYNAMICS, db, Check::ApplyTwiceIsANoOp).await;
    }
}

store_test! {
    async fn conformance_a_partial_read_deactivates_nobody(db: &TestDb) {
        check(&DYNAMICS, db, Check::PartialReadDeactivatesNobody).await;
    }
}

store_test! {
    async fn conformance_a_crash_at_any_page_resumes_without_duplicates(db: &TestDb) {
        check(&DYNAMICS, db, Check::CrashAtAnyPageResumesWithoutDuplicates).await;
    }
}

store_test! {
    async fn conformance_an_unreadable_page_fails_and_keeps_what_was_committed(db: &TestDb) {
        check(&DYNAMICS, db, Check::UnreadablePageFailsAndKeepsWhatWasCommitted).await;
    }
}

store_test! {
    async fn conformance_bad_records_are_errors_and_the_rest_is_imported(db: &TestDb) {
        check(&DYNAMICS, db, Check::BadRecordsAreErrorsAndTheRestIsImported).await;
    }
}
