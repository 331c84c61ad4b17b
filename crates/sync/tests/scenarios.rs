//! Mapping rules through the whole pipeline: configuration in the connection, the emulator as the
//! tenant, the store as the desk.

use deskbridge_core::RecordId;
use deskbridge_mapping::{
    FieldLock, GroupFilter, GroupToRecord, LicenceTypeChoice, MappingConfig, RecordKind, RecordLock,
    SiteMapping, SiteTarget,
};
use deskbridge_store::{Fields, WriteContext};

use crate::*;

/// Rewrites the connection's mapping configuration.
async fn configure(db: &TestDb, name: &str, change: impl FnOnce(&mut MappingConfig)) {
    let (connection, mut settings) = deskbridge_sync::load_entra_connection(&db.store, name)
        .await
        .unwrap();
    change(&mut settings.mapping);
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    tx.update_connection_config(connection.id, &serde_json::to_value(&settings).unwrap())
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn named(db: &TestDb, entity: Entity, name: &str) -> RecordId {
    let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
    let fields: Fields = [("name".to_owned(), json!(name))].into_iter().collect();
    let id = tx.insert(entity, None, &fields).await.unwrap();
    tx.commit().await.unwrap();
    id
}

async fn active_members(fx: &Fixture) -> Vec<String> {
    fx.users()
        .await
        .into_iter()
        .filter(|u| !is_guest(u) && u["accountEnabled"] == json!(true))
        .filter_map(|u| u["id"].as_str().map(str::to_owned))
        .collect()
}

/// Desk agents imported from the connection, by Azure object id.
async fn desk_agents(db: &TestDb) -> BTreeMap<String, deskbridge_store::Record> {
    let mut tx = db.store.read().await.unwrap();
    let agents = tx.list(Entity::Agent, None, 10_000).await.unwrap();
    tx.commit().await.unwrap();
    agents
        .into_iter()
        .filter_map(|a| Some((a.source.clone()?.external_id, a)))
        .collect()
}

store_test! {
    async fn a_tenant_whose_users_vanish_is_held_not_emptied(db: &TestDb) {
        let fx = emulator(60).await;
        fx.connect(db, "contoso").await;
        let first = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(first.status, "succeeded");
        let before = desk_users(db).await;
        let members = active_members(&fx).await;
        let gone = members.len() / 2;
        assert!(gone > 10, "enough users vanish to pass the breaker's floor");
        for id in &members[..gone] {
            fx.admin(reqwest::Method::DELETE, &format!("users/{id}?hard=true"), None).await;
        }
        let held = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(held.status, "held", "{held:?}");
        assert!(held.held.as_deref().unwrap_or_default().contains("20"), "the reason names the limit: {:?}", held.held);
        assert_eq!(desk_users(db).await, before, "nothing was applied");
        let mut tx = db.store.read().await.unwrap();
        let run = tx.run(held.run_id.unwrap()).await.unwrap().unwrap();
        assert_eq!(run.status, deskbridge_store::RunStatus::Held);
        assert!(run.message.is_some());
        tx.commit().await.unwrap();
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn agents_follow_their_groups_with_full_role_management(db: &TestDb) {
        let fx = emulator(30).await;
        fx.connect(db, "contoso").await;
        let role = named(db, Entity::AgentRole, "Service Desk").await;
        let group = fx.admin(reqwest::Method::POST, "groups", Some(json!({"displayName": "IT Agents", "securityEnabled": true}))).await;
        let group_id = group["id"].as_str().unwrap().to_owned();
        let members = active_members(&fx).await;
        let (a, b) = (members[0].clone(), members[1].clone());
        for m in [&a, &b] {
            fx.admin(reqwest::Method::POST, &format!("groups/{group_id}/members"), Some(json!({"id": m}))).await;
        }
        configure(db, "contoso", |m| {
            m.site_mappings.push(SiteMapping {
                id: 2,
                name: "Agents".into(),
                sequence: 10,
                target: SiteTarget::Agent { licence_type: LicenceTypeChoice::NoChange, creation_type: None },
                group: Some(GroupFilter { name: "IT Agents".into(), nested: false }),
                ..SiteMapping::default()
            });
            m.advanced.agent_roles = vec![GroupToRecord { group: "IT Agents".into(), id: role }];
            m.advanced.full_role_management = true;
        })
        .await;

        let first = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(first.status, "succeeded", "{:?}", first.errors);
        let agents = desk_agents(db).await;
        assert_eq!(agents.len(), 2, "only the group's members are agents: {:?}", agents.keys().collect::<Vec<_>>());
        for id in [&a, &b] {
            let agent = &agents[id];
            assert_eq!(agent.get("roles"), &json!([role.0]));
            assert_eq!(agent.get("active"), &json!(true));
            assert_eq!(agent.get("licence_type"), &json!("concurrent"), "new agents are concurrent");
        }
        let users = desk_users(db).await;
        assert!(users.contains_key(&a) && users.contains_key(&b), "agents are imported as users too");

        // b leaves the group: full role management leaves b without roles, so inactive.
        fx.admin(reqwest::Method::DELETE, &format!("groups/{group_id}/members/{b}"), None).await;
        let delta = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(delta.mode, "delta");
        let agents = desk_agents(db).await;
        assert_eq!(agents[&a].get("active"), &json!(true));
        assert_eq!(agents[&b].get("roles"), &json!([]));
        assert_eq!(agents[&b].get("active"), &json!(false), "{delta:?}");
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn locked_fields_and_kept_users_are_left_alone_and_the_preview_says_so(db: &TestDb) {
        let fx = emulator(30).await;
        fx.connect(db, "contoso").await;
        let first = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(first.status, "succeeded");
        let members = active_members(&fx).await;
        let (renamed, leaver) = (members[0].clone(), members[1].clone());
        configure(db, "contoso", |m| {
            m.field_locks = vec![FieldLock { entity: RecordKind::User, field: "name".into() }];
            m.record_locks = vec![RecordLock { entity: RecordKind::User, external_id: leaver.clone(), keep_active: true, fields: vec![] }];
        })
        .await;
        let old_name = desk_users(db).await[&renamed].get("name").clone();
        fx.admin(reqwest::Method::PATCH, &format!("users/{renamed}"), Some(json!({"displayName": "Locked Out", "jobTitle": "Changed Title"}))).await;
        fx.admin(reqwest::Method::DELETE, &format!("users/{leaver}?hard=true"), None).await;

        let preview = sync(&db.store, "contoso", &SyncOptions { plan_only: true, ..SyncOptions::default() }, &clock()).await.unwrap();
        let changes = preview.changes.unwrap();
        let renamed_change = changes.iter().find(|c| c.external_id == renamed).expect("a change for the renamed user");
        assert!(!renamed_change.fields.contains_key("name"), "the locked field is not changed: {renamed_change:?}");
        assert!(renamed_change.fields.contains_key("job_title"), "other fields still are");
        let lock = preview.locked.iter().find(|l| l.external_id == renamed && l.field == "name").expect("the skipped change is shown");
        assert_eq!(lock.wanted, json!("Locked Out"));
        assert!(!lock.lock.is_empty(), "and which lock kept it");
        assert!(
            !changes.iter().any(|c| c.external_id == leaver && c.action == deskbridge_mapping::Action::Deactivate),
            "a kept user is not deactivated"
        );

        let applied = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(applied.status, "succeeded", "{:?}", applied.errors);
        let desk = desk_users(db).await;
        assert_eq!(desk[&renamed].get("name"), &old_name);
        assert_eq!(desk[&renamed].get("job_title"), &json!("Changed Title"));
        assert_eq!(desk[&leaver].get("active"), &json!(true));
        fx.emu.shutdown().await;
    }
}
