//! The source conformance suite (`deskbridge-conformance`) for Entra ID against the emulator, on
//! SQLite and PostgreSQL: each check on a store of its own, each world a tenant of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deskbridge_conformance::{Check, Corruption, Harness, World, check};
use deskbridge_connector_entra::{EntraSource, NewCredential, NewEntraConnection, add_entra_connection};
use deskbridge_core::{Clock as _, SystemClock};
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions};
use deskbridge_graph::GraphConfig;
use deskbridge_source::{BoxFuture, SourceRegistry};
use deskbridge_store::Store;
use deskbridge_testkit::store_test;
use serde_json::json;

/// Entra through its emulator. Every world has its own seed, so its own tenant and object ids:
/// worlds sharing a store never see each other's people.
struct Entra {
    seed: AtomicU64,
}

static ENTRA: Entra = Entra {
    seed: AtomicU64::new(1_000),
};

struct EntraWorld {
    emu: Emulator,
    tenant: String,
    connection: String,
}

impl Harness for Entra {
    fn sources(&self) -> SourceRegistry {
        // An unreadable page is given up on after one retry, quickly: the checks break pages on
        // purpose, and Microsoft's own retry policy would make each check wait half a minute.
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

    fn world<'a>(
        &'a self,
        store: &'a Store,
        people: usize,
        page_size: usize,
    ) -> BoxFuture<'a, Box<dyn World>> {
        Box::pin(async move {
            let seed = self.seed.fetch_add(1, Ordering::SeqCst);
            let mut world = deskbridge_emulator::World::generate(&GenerateOptions {
                seed,
                tenants: 1,
                users_per_tenant: Some(people),
                ..GenerateOptions::default()
            })
            .unwrap();
            let partner = world.partner_tenant_id.clone();
            let tenant = world
                .tenants
                .iter_mut()
                .find(|t| Some(&t.id) != partner.as_ref())
                .unwrap();
            // Members only, all enabled: everyone the default mappings import.
            for user in &mut tenant.users {
                user.user_type = "Member".into();
                user.account_enabled = true;
                user.user_principal_name = user.user_principal_name.replace("#EXT#", "");
            }
            let tenant_id = tenant.id.clone();
            let emu = Emulator::start(EmulatorConfig::new(world)).await.unwrap();
            emu.update_faults(|f| f.max_page_size = Some(page_size));
            let summary = emu.summary();
            let app = summary
                .apps
                .iter()
                .find(|a| a.kind == "multi_tenant_secret")
                .unwrap();
            let connection = format!("conformance-{seed}");
            add_entra_connection(
                store,
                &NewEntraConnection {
                    name: connection.clone(),
                    tenant_id: tenant_id.clone(),
                    client_id: app.client_id.clone(),
                    credential: NewCredential::ClientSecret {
                        value: app.client_secret.clone().unwrap(),
                        expires_at: None,
                    },
                    authority_host: Some(summary.authority_host.clone()),
                    graph_url: Some(summary.graph_url.clone()),
                    customer: Some(format!("Customer {seed}")),
                    enabled_instances: None,
                    last_sign_in: false,
                },
            )
            .await
            .unwrap();
            Box::new(EntraWorld {
                emu,
                tenant: tenant_id,
                connection,
            }) as Box<dyn World>
        })
    }
}

impl EntraWorld {
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

impl World for EntraWorld {
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
            // Text where Graph sends a boolean: it must not become "enabled".
            Corruption::WrongType => ("accountEnabled", json!("yes")),
            Corruption::Oversize => ("displayName", json!("x".repeat(20 * 1024))),
        };
        let spoiled = (id.clone(), property.to_owned(), value);
        self.emu
            .update_faults(|f| f.corrupt_user_properties = vec![spoiled]);
        id
    }

    fn heal_people(&self) {
        self.emu.update_faults(|f| f.corrupt_user_properties.clear());
    }
}

store_test! {
    async fn conformance_preview_equals_apply(db: &TestDb) {
        check(&ENTRA, db, Check::PreviewEqualsApply).await;
    }
}

store_test! {
    async fn conformance_apply_twice_is_a_no_op(db: &TestDb) {
        check(&ENTRA, db, Check::ApplyTwiceIsANoOp).await;
    }
}

store_test! {
    async fn conformance_a_partial_read_deactivates_nobody(db: &TestDb) {
        check(&ENTRA, db, Check::PartialReadDeactivatesNobody).await;
    }
}

store_test! {
    async fn conformance_a_crash_at_any_page_resumes_without_duplicates(db: &TestDb) {
        check(&ENTRA, db, Check::CrashAtAnyPageResumesWithoutDuplicates).await;
    }
}

store_test! {
    async fn conformance_an_unreadable_page_fails_and_keeps_what_was_committed(db: &TestDb) {
        check(&ENTRA, db, Check::UnreadablePageFailsAndKeepsWhatWasCommitted).await;
    }
}

store_test! {
    async fn conformance_bad_records_are_errors_and_the_rest_is_imported(db: &TestDb) {
        check(&ENTRA, db, Check::BadRecordsAreErrorsAndTheRestIsImported).await;
    }
}
