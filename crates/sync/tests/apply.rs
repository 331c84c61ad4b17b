//! Applying a plan: a transaction of good changes commits in one pass; one bad change is
//! rolled back alone and recorded while the rest of its transaction commits; a plan applied
//! again after an interruption converges instead of duplicating.

use std::collections::BTreeMap;

use deskbridge_mapping::{Action, Change, Counts, Entity as PlanEntity, FieldChange, Plan};
use deskbridge_store::{Entity, WriteContext};
use deskbridge_sync::apply_plan;
use deskbridge_testkit::store_test;
use serde_json::{Value, json};

use crate::emulator;

fn create(external: &str, fields: Value) -> Change {
    let fields = fields
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                FieldChange {
                    before: Value::Null,
                    after: v.clone(),
                },
            )
        })
        .collect();
    Change {
        entity: PlanEntity::User,
        external_id: external.into(),
        name: None,
        action: Action::Create,
        fields,
        rule: "test rule".into(),
        reason: "test".into(),
    }
}

fn plan(changes: Vec<Change>) -> Plan {
    Plan {
        generated_at: jiff::Timestamp::UNIX_EPOCH,
        changes,
        targets: BTreeMap::new(),
        locked: Vec::new(),
        circuit_breaker: Vec::new(),
        held: Vec::new(),
        errors: Vec::new(),
        notes: Vec::new(),
        counts: Counts::default(),
    }
}

store_test! {
    async fn one_bad_change_fails_alone_and_a_reapplied_plan_converges(db: &TestDb) {
        let fx = emulator(1).await;
        fx.connect(db, "apply").await;
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let connection = tx.connection_by_name("apply").await.unwrap().unwrap();
        let customer = tx.find_by_text(Entity::Customer, "name", "Contoso").await.unwrap()[0].id;
        let site = tx.main_site(customer).await.unwrap().unwrap();
        let licence = tx
            .insert(
                Entity::Licence,
                None,
                &[
                    ("sku_id".to_owned(), json!("sku-1")),
                    ("friendly_name".to_owned(), json!("Plan 1")),
                    ("customer_id".to_owned(), json!(customer.0)),
                ]
                    .into_iter()
                    .collect(),
            )
            .await
            .unwrap();
        let run = tx.start_run(Some(connection.id), "full").await.unwrap();
        tx.commit().await.unwrap();

        let good = |n: u32| {
            create(
                &format!("obj-{n}"),
                json!({"name": format!("User {n}"), "site_id": site.0, "licences": [licence.0],
                       "line_manager_id": {"user": "obj-1"}}),
            )
        };
        // The second user names a site that does not exist: the store refuses it.
        let bad = create("obj-bad", json!({"name": "Bad", "site_id": 999_999}));
        let plan = plan(vec![good(1), bad, good(2), good(3)]);
        let report = apply_plan(&db.store, connection.id, run, &fx.tenant, &plan, &[]).await.unwrap();
        assert_eq!(report.counts.created, 3, "{report:?}");
        assert_eq!(report.counts.errors, 1);
        assert_eq!(report.errors[0].external_id.as_deref(), Some("obj-bad"));
        assert!(report.errors[0].message.contains("does not exist"), "{}", report.errors[0].message);

        let mut tx = db.store.read().await.unwrap();
        let users = tx.list(Entity::User, None, 100).await.unwrap();
        assert_eq!(users.len(), 3);
        let manager = users.iter().find(|u| u.text("name") == Some("User 1")).unwrap().id;
        for user in &users {
            assert_eq!(user.get("licences"), &json!([licence.0]), "queued link rows were written");
            assert_eq!(user.get("line_manager_id"), &json!(manager.0), "the manager reference resolved");
        }
        let journal = tx.journal_for_run(run).await.unwrap();
        let journaled: std::collections::BTreeSet<i64> = journal.iter().map(|j| j.record_id).collect();
        assert_eq!(journaled.len(), 3, "only the created users are journaled: {journal:?}");
        let inbound = tx.inbound_log(Some(run), 100).await.unwrap();
        assert_eq!(inbound.len(), 4, "every change is logged, the failed one as an error");
        assert_eq!(
            inbound.iter().filter(|e| e["action"] == json!("error")).count(),
            1,
            "{inbound:?}"
        );
        let errors = tx.errors_for_run(run).await.unwrap();
        assert_eq!(errors.len(), 1);
        tx.commit().await.unwrap();

        // The same plan again (a run taken over after a crash): nothing is duplicated.
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let rerun = tx.start_run(Some(connection.id), "full").await.unwrap();
        tx.commit().await.unwrap();
        let again = apply_plan(&db.store, connection.id, rerun, &fx.tenant, &plan, &[]).await.unwrap();
        assert_eq!(again.counts.errors, 1);
        let mut tx = db.store.read().await.unwrap();
        assert_eq!(tx.count(Entity::User).await.unwrap(), 3);
        let rejournaled = tx.journal_for_run(rerun).await.unwrap();
        assert!(rejournaled.is_empty(), "nothing changed the second time: {rejournaled:?}");
        tx.commit().await.unwrap();
    }
}
