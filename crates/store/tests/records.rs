use crate::store_test;
use deskbridge_core::{ConnectionId, RecordId};
use deskbridge_store::{Entity, Fields, SourceKey, StoreError, UpsertOutcome, WriteContext};
use serde_json::{Value, json};

use crate::harness::TestDb;

pub fn fields(value: Value) -> Fields {
    value.as_object().unwrap().clone().into_iter().collect()
}

/// A customer (with its main site) to hang users on.
pub async fn customer(db: &TestDb, name: &str) -> (RecordId, RecordId) {
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let customer = tx
        .insert(Entity::Customer, None, &fields(json!({"name": name})))
        .await
        .unwrap();
    let site = tx.main_site(customer).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    (customer, site)
}

store_test! {
    async fn every_entity_table_matches_its_description(db: &TestDb) {
        // Reading one record of each kind touches every column the schema describes.
        let mut tx = db.store.read().await.unwrap();
        for entity in Entity::ALL {
            tx.list(entity, None, 1).await.unwrap_or_else(|e| panic!("{entity}: {e}"));
            assert_eq!(tx.count(entity).await.unwrap(), 0, "{entity} starts empty");
        }
    }
}

store_test! {
    async fn migrate_twice_applies_nothing_the_second_time(db: &TestDb) {
        assert!(db.store.migrate().await.unwrap().is_empty());
    }
}

store_test! {
    async fn a_customer_gets_a_main_site_and_a_user_reads_back(db: &TestDb) {
        let (customer, site) = customer(db, "Contoso").await;
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let sites = tx.list(Entity::Site, None, 10).await.unwrap();
        assert_eq!(sites.len(), 1);
        assert_eq!(sites[0].get("is_main"), &json!(true));
        assert_eq!(sites[0].get("customer_id"), &json!(customer.0));
        let user = tx
            .insert(
                Entity::User,
                None,
                &fields(json!({
                    "site_id": site.0, "name": "Zoë Ångström", "email": "zoe@contoso.example",
                    "active": true, "last_sign_in": "2026-11-01T08:30:00+01:00"
                })),
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut tx = db.store.read().await.unwrap();
        let read = tx.get(Entity::User, user).await.unwrap().unwrap();
        assert_eq!(read.text("name"), Some("Zoë Ångström"));
        assert_eq!(read.get("last_sign_in"), &json!("2026-11-01T07:30:00.000000Z"));
        assert_eq!(read.get("is_service_account"), &json!(false), "defaults are read back");
        assert_eq!(read.get("roles"), &json!([]));
        assert_eq!(read.get("email"), &json!("zoe@contoso.example"));
        assert!(read.source.is_none());
    }
}

store_test! {
    async fn reimporting_the_same_external_record_updates_instead_of_duplicating(db: &TestDb) {
        let (_, site) = customer(db, "Fabrikam").await;
        let source = SourceKey::new(ConnectionId(1), "0b3c-object-id");
        let user = fields(json!({"site_id": site.0, "name": "Ada", "email": "ada@fabrikam.example"}));
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let first = tx.upsert_by_source(Entity::User, &source, &user).await.unwrap();
        assert!(matches!(first, UpsertOutcome::Created(_)));
        let again = tx.upsert_by_source(Entity::User, &source, &user).await.unwrap();
        assert_eq!(again, UpsertOutcome::Unchanged(first.id()));
        let changed = fields(json!({"site_id": site.0, "name": "Ada Lovelace", "email": "ada@fabrikam.example"}));
        let UpsertOutcome::Updated(id, changes) = tx.upsert_by_source(Entity::User, &source, &changed).await.unwrap() else {
            panic!("expected an update");
        };
        assert_eq!(id, first.id());
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].field, "name");
        assert_eq!(tx.count(Entity::User).await.unwrap(), 1);
        let other_connection = SourceKey::new(ConnectionId(2), "0b3c-object-id");
        let other = tx.upsert_by_source(Entity::User, &other_connection, &user).await.unwrap();
        assert_ne!(other.id(), first.id(), "the same external id from another connection is another record");
        tx.commit().await.unwrap();
        let mut tx = db.store.read().await.unwrap();
        assert_eq!(tx.find_by_source(Entity::User, &source).await.unwrap().unwrap().text("name"), Some("Ada Lovelace"));
    }
}

store_test! {
    async fn invalid_values_are_rejected_with_the_field_named(db: &TestDb) {
        let (_, site) = customer(db, "Northwind").await;
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let err = tx.insert(Entity::User, None, &fields(json!({"site_id": site.0, "name": "x", "colour": "red"}))).await;
        assert!(matches!(err, Err(StoreError::UnknownField { field, .. }) if field == "colour"));
        let err = tx.insert(Entity::User, None, &fields(json!({"site_id": site.0, "name": "x", "active": "yes"}))).await;
        assert_eq!(err.unwrap_err().to_string(), "user.active: expected true or false, got text");
        let err = tx.insert(Entity::User, None, &fields(json!({"name": "x"}))).await;
        assert_eq!(err.unwrap_err().to_string(), "user.site_id: is required");
        let err = tx.insert(Entity::User, None, &fields(json!({"site_id": 999_999, "name": "x"}))).await;
        assert_eq!(err.unwrap_err().to_string(), "user.site_id: site 999999 does not exist");
        let err = tx.insert(Entity::User, None, &fields(json!({"site_id": site.0, "name": "x", "last_sign_in": "tuesday"}))).await;
        assert!(err.unwrap_err().to_string().starts_with("user.last_sign_in: \"tuesday\" is not an RFC 3339 timestamp"));
        let err = tx.insert(Entity::Agent, None, &fields(json!({"name": "x", "teams": [{"team_id": 1, "boss": true}]}))).await;
        assert_eq!(err.unwrap_err().to_string(), "agent.teams: unknown key \"boss\" in an element");
    }
}

store_test! {
    async fn links_and_flags_are_sets(db: &TestDb) {
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let service = tx.insert(Entity::Team, None, &fields(json!({"name": "Service Desk"}))).await.unwrap();
        let infra = tx.insert(Entity::Team, None, &fields(json!({"name": "Infrastructure"}))).await.unwrap();
        let admin = tx.insert(Entity::AgentRole, None, &fields(json!({"name": "Administrator"}))).await.unwrap();
        let agent = tx
            .insert(
                Entity::Agent,
                None,
                &fields(json!({
                    "name": "Grace", "licence_type": "named", "default_team_id": service.0,
                    "roles": [admin.0],
                    "teams": [
                        {"team_id": infra.0, "can_be_assigned": true, "can_see_unassigned": false, "can_see_others_tickets": false},
                        {"team_id": service.0, "can_be_assigned": true, "can_see_unassigned": true, "can_see_others_tickets": true}
                    ]
                })),
            )
            .await
            .unwrap();
        let record = tx.get(Entity::Agent, agent).await.unwrap().unwrap();
        assert_eq!(record.get("roles"), &json!([admin.0]));
        let teams = record.get("teams").as_array().unwrap().clone();
        assert_eq!(teams.len(), 2);
        assert_eq!(teams[0]["team_id"], json!(service.0), "sorted by team id");
        // The same set in another order is no change.
        let reordered = fields(json!({"teams": [teams[1].clone(), teams[0].clone()]}));
        assert!(tx.update(Entity::Agent, agent, &reordered).await.unwrap().is_empty());
        let changes = tx.update(Entity::Agent, agent, &fields(json!({"roles": []}))).await.unwrap();
        assert_eq!(changes[0].before, json!([admin.0]));
        assert_eq!(changes[0].after, json!([]));
        tx.commit().await.unwrap();
    }
}

store_test! {
    async fn custom_fields_are_typed(db: &TestDb) {
        let (_, site) = customer(db, "Tailspin").await;
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        tx.define_custom_field(Entity::User, "cost_centre", "number", &[]).await.unwrap();
        let options = [
            ("EMEA".to_owned(), Some("Europe".to_owned()), Some("100000001".to_owned())),
            ("APAC".to_owned(), None, Some("100000002".to_owned())),
        ];
        tx.define_custom_field(Entity::User, "regions", "multi_select", &options).await.unwrap();
        tx.define_custom_field(Entity::User, "start", "date", &[]).await.unwrap();
        let user = tx
            .insert(
                Entity::User,
                None,
                &fields(json!({"site_id": site.0, "name": "Kim", "custom:cost_centre": 4711, "custom:regions": ["EMEA"], "custom:start": "2024-02-29"})),
            )
            .await
            .unwrap();
        let record = tx.get(Entity::User, user).await.unwrap().unwrap();
        assert_eq!(record.get("custom:cost_centre"), &json!(4711));
        assert_eq!(record.get("custom:regions"), &json!(["EMEA"]));
        assert_eq!(record.get("custom:start"), &json!("2024-02-29"));
        let err = tx.update(Entity::User, user, &fields(json!({"custom:regions": ["Mars"]}))).await.unwrap_err();
        assert_eq!(err.to_string(), "user.custom:regions: \"Mars\" is not one of the field's options");
        let err = tx.update(Entity::User, user, &fields(json!({"custom:cost_centre": "lots"}))).await.unwrap_err();
        assert_eq!(err.to_string(), "user.custom:cost_centre: expected a number, got text");
        let err = tx.update(Entity::User, user, &fields(json!({"custom:shoe_size": 9}))).await.unwrap_err();
        assert!(matches!(err, StoreError::UnknownField { field, .. } if field == "custom:shoe_size"));
        let changes = tx.update(Entity::User, user, &fields(json!({"custom:cost_centre": null}))).await.unwrap();
        assert_eq!(changes[0].before, json!(4711));
        assert!(!tx.get(Entity::User, user).await.unwrap().unwrap().fields.contains_key("custom:cost_centre"));
        tx.commit().await.unwrap();
    }
}

store_test! {
    async fn keyset_paging_lists_every_record_once(db: &TestDb) {
        let (_, site) = customer(db, "Paging").await;
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        for i in 0..25 {
            tx.insert(Entity::User, None, &fields(json!({"site_id": site.0, "name": format!("user {i}")}))).await.unwrap();
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = tx.list(Entity::User, after, 10).await.unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            seen.extend(page.iter().map(|r| r.text("name").unwrap().to_owned()));
        }
        assert_eq!(seen.len(), 25);
        let matches = tx.find_by_text(Entity::User, "name", "USER 7").await.unwrap();
        assert_eq!(matches.len(), 1, "matching ignores case");
        tx.commit().await.unwrap();
    }
}

store_test! {
    async fn custom_table_rows_are_typed_and_reimported_by_source(db: &TestDb) {
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        tx.define_custom_table("contracts", Some("Contracts"), &[("title", "text"), ("value", "number"), ("signed", "date")])
            .await
            .unwrap();
        let source = SourceKey::new(ConnectionId(3), "crm-row-1");
        let row = json!({"title": "Support", "value": 1200, "signed": "2026-01-15"});
        let first = tx.upsert_custom_row("contracts", &source, row.as_object().unwrap()).await.unwrap();
        assert!(matches!(first, UpsertOutcome::Created(_)));
        assert_eq!(
            tx.upsert_custom_row("contracts", &source, row.as_object().unwrap()).await.unwrap(),
            UpsertOutcome::Unchanged(first.id())
        );
        let changed = json!({"value": 1500});
        let UpsertOutcome::Updated(_, changes) = tx.upsert_custom_row("contracts", &source, changed.as_object().unwrap()).await.unwrap()
        else {
            panic!("expected an update")
        };
        assert_eq!((changes[0].field.as_str(), &changes[0].before, &changes[0].after), ("value", &json!(1200), &json!(1500)));
        let rows = tx.custom_rows("contracts", None, 10).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].data["title"], json!("Support"));
        assert_eq!(rows[0].data["value"], json!(1500));
        let bad = json!({"value": "a lot"});
        let err = tx.upsert_custom_row("contracts", &source, bad.as_object().unwrap()).await.unwrap_err();
        assert_eq!(err.to_string(), "custom_table_row.contracts.value: expected a number value, got \"a lot\"");
        let unknown = json!({"colour": "red"});
        assert!(tx.upsert_custom_row("contracts", &source, unknown.as_object().unwrap()).await.is_err());
        let journal = tx.journal_all().await.unwrap();
        assert!(journal.iter().any(|j| j.entity == "custom_table:contracts" && j.action == "update" && j.field == "value"));
        tx.commit().await.unwrap();
    }
}

store_test! {
    async fn insert_many_creates_each_record_as_insert_would(db: &TestDb) {
        let (_, site) = customer(db, "Contoso").await;
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let connection = tx
            .create_connection(&deskbridge_store::NewConnection {
                name: "bulk".into(),
                kind: "entra".into(),
                config: json!({}),
                enabled_instances: "production".into(),
            })
            .await
            .unwrap()
            .id;
        let role = tx
            .insert(Entity::UserRole, None, &fields(json!({"name": "Requester"})))
            .await
            .unwrap();
        // 250 users over three shapes: with a phone and a role, without either, and one
        // setting `active` (the others take the column's default).
        let rows: Vec<(String, Fields)> = (0..250)
            .map(|i| {
                let value = match i % 3 {
                    0 => json!({"site_id": site.0, "name": format!("User {i}"), "phone": "0100", "roles": [role.0]}),
                    1 => json!({"site_id": site.0, "name": format!("User {i}")}),
                    _ => json!({"site_id": site.0, "name": format!("User {i}"), "active": false}),
                };
                (format!("obj-{i:03}"), fields(value))
            })
            .collect();
        let refs: Vec<(&str, &Fields)> = rows.iter().map(|(e, f)| (e.as_str(), f)).collect();
        let ids = tx.insert_many(Entity::User, connection, &refs).await.unwrap();
        tx.commit().await.unwrap();

        assert_eq!(ids.len(), 250);
        let mut tx = db.store.read().await.unwrap();
        for (i, id) in ids.iter().enumerate() {
            let user = tx.get(Entity::User, *id).await.unwrap().unwrap();
            assert_eq!(user.text("name"), Some(format!("User {i}").as_str()), "ids follow the rows");
            assert_eq!(
                user.source,
                Some(SourceKey::new(connection, format!("obj-{i:03}")))
            );
            let (active, roles) = match i % 3 {
                0 => (true, json!([role.0])),
                1 => (true, json!([])),
                _ => (false, json!([])),
            };
            assert_eq!(user.get("active"), &json!(active), "user {i}");
            assert_eq!(user.get("roles"), &roles, "user {i}");
            let journal = tx.journal_for_record(Entity::User, *id).await.unwrap();
            assert!(journal.iter().all(|j| j.action == "create"));
            assert!(journal.iter().any(|j| j.field == "name"), "{journal:?}");
        }
        tx.commit().await.unwrap();

        // A row whose source id exists already fails the whole call, and nothing of it stays.
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let again = [("obj-new", &rows[1].1), ("obj-000", &rows[1].1)];
        let err = tx.insert_many(Entity::User, connection, &again).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("this user was imported already from the same source record"), "{text}");
        tx.rollback().await.unwrap();
        let mut tx = db.store.read().await.unwrap();
        assert_eq!(tx.count(Entity::User).await.unwrap(), 250);
        tx.commit().await.unwrap();
    }
}

store_test! {
    async fn sqlite_writers_queue_for_their_turn_and_postgres_writers_do_not_wait(db: &TestDb) {
        let mut first = db.store.begin(WriteContext::manual()).await.unwrap();
        first
            .insert(Entity::Customer, None, &fields(json!({"name": "First"})))
            .await
            .unwrap();
        let store = db.store.clone();
        let second = tokio::spawn(async move {
            let mut tx = store.begin(WriteContext::manual()).await.unwrap();
            tx.insert(Entity::Customer, None, &fields(json!({"name": "Second"})))
                .await
                .unwrap();
            tx.commit().await.unwrap();
        });
        match db.store.dialect() {
            deskbridge_store::Dialect::Sqlite => {
                // One writer at a time: the second waits in the process's queue (not on SQLite's
                // file lock, whose busy timeout used to fail concurrent syncs) until the first ends.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                assert!(!second.is_finished(), "the second writer began while the first held the turn");
                first.commit().await.unwrap();
                second.await.unwrap();
                assert!(db.store.writer_wait() > std::time::Duration::ZERO);
            }
            deskbridge_store::Dialect::Postgres => {
                // Writers of different rows run side by side.
                second.await.unwrap();
                first.commit().await.unwrap();
                assert_eq!(db.store.writer_wait(), std::time::Duration::ZERO);
            }
        }
        let mut tx = db.store.read().await.unwrap();
        let names: Vec<String> = tx
            .list(Entity::Customer, None, 10)
            .await
            .unwrap()
            .iter()
            .filter_map(|c| c.text("name").map(str::to_owned))
            .collect();
        assert_eq!(names, ["First", "Second"]);
        tx.commit().await.unwrap();
    }
}

store_test! {
    async fn a_clash_names_the_field_not_the_databases_text(db: &TestDb) {
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        tx.insert(Entity::UserRole, None, &fields(json!({"name": "Support"}))).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let err = tx
            .insert(Entity::UserRole, None, &fields(json!({"name": "Support"})))
            .await
            .unwrap_err();
        tx.rollback().await.unwrap();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("a user role with the same name already exists: choose another name"), "{text}");
        // Neither SQLite's nor PostgreSQL's wording (table, index, value) reaches the person.
        for database in ["UNIQUE", "unique constraint", "duplicate key", "user_roles", "Support", "Key ("] {
            assert!(!text.contains(database), "{database:?} in {text}");
        }
    }
}
