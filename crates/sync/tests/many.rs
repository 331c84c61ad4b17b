//! `sync_many`: many connections through one bounded pool and one Graph client per app.

use super::*;
use deskbridge_sync::sync_many;

store_test! {
    async fn many_connections_sync_at_once_and_each_run_logs_only_its_tenant(db: &TestDb) {
        let world = World::generate(&GenerateOptions { seed: 5, tenants: 3, users_per_tenant: Some(15), ..GenerateOptions::default() })
            .unwrap();
        let emu = Emulator::start(EmulatorConfig::new(world)).await.unwrap();
        let summary = emu.summary();
        let app = summary.apps.iter().find(|a| a.kind == "multi_tenant_secret").unwrap();
        let mut names = Vec::new();
        for (i, tenant) in summary.tenants.iter().enumerate() {
            let name = format!("tenant-{i}");
            add_entra_connection(
                &db.store,
                &NewEntraConnection {
                    name: name.clone(),
                    tenant_id: tenant.id.clone(),
                    client_id: app.client_id.clone(),
                    credential: NewCredential::ClientSecret { value: app.client_secret.clone().unwrap(), expires_at: None },
                    authority_host: Some(summary.authority_host.clone()),
                    graph_url: Some(summary.graph_url.clone()),
                    customer: Some(format!("Customer {i}")),
                    enabled_instances: None,
                    last_sign_in: false,
                },
            )
            .await
            .unwrap();
            names.push(name);
        }
        let results = sync_many(&db.store, &sources(), &names, &SyncOptions::default(), 2, &clock()).await.unwrap();
        assert_eq!(results.iter().map(|r| r.connection.clone()).collect::<Vec<_>>(), names, "in the order asked");
        let log = emu.request_log();
        let mut tx = db.store.read().await.unwrap();
        for (r, tenant) in results.iter().zip(&summary.tenants) {
            let outcome = r.result.as_ref().unwrap();
            assert_eq!(outcome.status, "succeeded", "{outcome:?}");
            assert!(outcome.counts.created >= 15, "{outcome:?}");
            let logged = tx.outbound_log(outcome.run_id, 10_000).await.unwrap();
            let expected = log
                .iter()
                .filter(|e| e.path.starts_with("/v1.0") && e.tenant.as_deref() == Some(tenant.id.as_str()))
                .count();
            assert!(expected > 0);
            assert_eq!(logged.len(), expected, "the run of {} logs its tenant's requests only", r.connection);
            assert!(logged.iter().all(|l| l["tenant_id"] == json!(tenant.id)), "{logged:?}");
        }
        tx.commit().await.unwrap();
        // A second round: delta, nothing changed.
        let again = sync_many(&db.store, &sources(), &names, &SyncOptions::default(), 8, &clock()).await.unwrap();
        for r in &again {
            let outcome = r.result.as_ref().unwrap();
            assert_eq!((outcome.mode.as_str(), outcome.counts.created, outcome.counts.updated), ("delta", 0, 0), "{outcome:?}");
        }
        emu.shutdown().await;
    }
}
