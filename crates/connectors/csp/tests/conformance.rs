//! The source conformance suite (`deskbridge-conformance`) for CSP against the emulator, on SQLite
//! and PostgreSQL: each world a partner of its own with one GDAP customer tenant.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deskbridge_conformance::{Check, Corruption, Harness, World, check};
use deskbridge_core::{Clock as _, SystemClock};
use deskbridge_emulator::Emulator;
use deskbridge_graph::GraphConfig;
use deskbridge_source::{BoxFuture, SourceRegistry};
use deskbridge_store::Store;
use deskbridge_testkit::store_test;
use serde_json::json;

use crate::{add_and_authorize, partner, sources};

struct Csp {
    seed: AtomicU64,
}

static CSP: Csp = Csp {
    seed: AtomicU64::new(3_000),
};

struct CspWorld {
    emu: Emulator,
    tenant: String,
    connection: String,
}

fn quick() -> GraphConfig {
    // An unreadable page is given up on after one retry, quickly: the checks break pages on purpose.
    GraphConfig {
        max_attempts: 2,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        ..GraphConfig::default()
    }
}

impl Harness for Csp {
    fn sources(&self) -> SourceRegistry {
        sources(quick())
    }

    fn world<'a>(
        &'a self,
        store: &'a Store,
        people: usize,
        page_size: usize,
    ) -> BoxFuture<'a, Box<dyn World>> {
        Box::pin(async move {
            let seed = self.seed.fetch_add(1, Ordering::SeqCst);
            let (emu, tenants) = partner(seed, 1, people).await;
            let connection = format!("csp-conformance-{seed}");
            add_and_authorize(store, &sources(quick()), &emu, &connection).await;
            emu.update_faults(|f| f.max_page_size = Some(page_size));
            Box::new(CspWorld {
                emu,
                tenant: tenants[0].clone(),
                connection,
            }) as Box<dyn World>
        })
    }
}

impl CspWorld {
    fn live_users(&self) -> Vec<String> {
        self.emu.with_world(|w| {
            w.tenant(&self.tenant)
                .map(|t| {
                    t.users
                        .iter()
                        .filter(|u| u.deleted_date_time.is_none())
                        .map(|u| u.id.clone())
                        .collect()
                })
                .unwrap_or_default()
        })
    }
}

impl World for CspWorld {
    fn connection(&self) -> &str {
        &self.connection
    }

    fn partition(&self) -> &str {
        &self.tenant
    }

    fn people(&self) -> usize {
        self.live_users().len()
    }

    fn remove_people(&self, n: usize) {
        let now = SystemClock.now();
        for id in self.live_users().into_iter().rev().take(n) {
            self.emu
                .with_world_mut(|w| w.soft_delete_user(&self.tenant, &id, now))
                .unwrap();
        }
    }

    fn break_page(&self, page: Option<usize>) {
        self.emu.update_faults(|f| f.malformed_users_page = page);
    }

    fn corrupt_person(&self, corruption: Corruption) -> String {
        let id = self.live_users().into_iter().next().unwrap();
        let (property, value) = match corruption {
            Corruption::WrongType => ("accountEnabled", json!("yes")),
            Corruption::Oversize => ("displayName", json!("x".repeat(20 * 1024))),
        };
        self.emu
            .update_faults(|f| f.corrupt_user_properties = vec![(id.clone(), property.to_owned(), value)]);
        id
    }

    fn heal_people(&self) {
        self.emu.update_faults(|f| f.corrupt_user_properties.clear());
    }
}

store_test! {
    async fn conformance_preview_equals_apply(db: &TestDb) {
        check(&CSP, db, Check::PreviewEqualsApply).await;
    }
}

store_test! {
    async fn conformance_apply_twice_is_a_no_op(db: &TestDb) {
        check(&CSP, db, Check::ApplyTwiceIsANoOp).await;
    }
}

store_test! {
    async fn conformance_a_partial_read_deactivates_nobody(db: &TestDb) {
        check(&CSP, db, Check::PartialReadDeactivatesNobody).await;
    }
}

store_test! {
    async fn conformance_a_crash_at_any_page_resumes_without_duplicates(db: &TestDb) {
        check(&CSP, db, Check::CrashAtAnyPageResumesWithoutDuplicates).await;
    }
}

store_test! {
    async fn conformance_an_unreadable_page_fails_and_keeps_what_was_committed(db: &TestDb) {
        check(&CSP, db, Check::UnreadablePageFailsAndKeepsWhatWasCommitted).await;
    }
}

store_test! {
    async fn conformance_bad_records_are_errors_and_the_rest_is_imported(db: &TestDb) {
        check(&CSP, db, Check::BadRecordsAreErrorsAndTheRestIsImported).await;
    }
}
