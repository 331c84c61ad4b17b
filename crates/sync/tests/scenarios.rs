//! Mapping rules through the whole pipeline: configuration in the connection, the emulator as the
//! tenant, the store as the desk.

use deskbridge_core::RecordId;
use deskbridge_mapping::{
    FieldLock, GroupFilter, GroupToCab, GroupToRecord, LicenceManagement, LicenceTypeChoice, MappingConfig,
    RecordKind, RecordLock, ServiceAccounts, SiteMapping, SiteTarget, UnmatchedSite,
};
use deskbridge_store::{Fields, WriteContext};

use crate::*;

/// Rewrites the connection's mapping configuration.
async fn configure(db: &TestDb, name: &str, change: impl FnOnce(&mut MappingConfig)) {
    let (connection, mut settings) = deskbridge_connector_entra::load_entra_connection(&db.store, name)
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

        // An administrator approves: the same deactivations go through, once.
        let approve = SyncOptions { approve_held: true, ..SyncOptions::default() };
        let approved = sync(&db.store, "contoso", &approve, &clock()).await.unwrap();
        assert_eq!(approved.status, "succeeded", "{approved:?}");
        assert_eq!(approved.counts.deactivated, gone as i64);
        let desk = desk_users(db).await;
        assert!(members[..gone].iter().all(|id| desk[id].get("active") == &json!(false)));
        let mut tx = db.store.read().await.unwrap();
        let old = tx.run(held.run_id.unwrap()).await.unwrap().unwrap();
        assert!(old.message.unwrap_or_default().starts_with("approved"), "the held run records its approval");
        tx.commit().await.unwrap();
        let again = sync(&db.store, "contoso", &approve, &clock()).await;
        assert!(again.is_err(), "nothing is left to approve");
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

/// The tenant's member users with the properties the scenarios decide on, from Graph itself.
async fn graph_users(fx: &Fixture) -> Vec<Value> {
    let summary = fx.emu.summary();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .unwrap();
    let token = fx.emu.issue_app_token(&app.client_id, &fx.tenant).unwrap();
    let url = format!(
        "{}/users?$select=id,displayName,department,jobTitle,userType,userPrincipalName,accountEnabled&$expand=manager($select=id)&$top=999",
        summary.graph_url
    );
    let page: Value = fx
        .http
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| !is_guest(u))
        .cloned()
        .collect()
}

async fn group_with(fx: &Fixture, name: &str, members: &[&str]) -> String {
    let group = fx
        .admin(
            reqwest::Method::POST,
            "groups",
            Some(json!({"displayName": name, "securityEnabled": true})),
        )
        .await;
    let id = group["id"].as_str().unwrap().to_owned();
    for m in members {
        fx.admin(
            reqwest::Method::POST,
            &format!("groups/{id}/members"),
            Some(json!({"id": m})),
        )
        .await;
    }
    id
}

async fn site_names(db: &TestDb) -> BTreeMap<i64, String> {
    let mut tx = db.store.read().await.unwrap();
    let sites = tx.list(Entity::Site, None, 10_000).await.unwrap();
    tx.commit().await.unwrap();
    sites
        .into_iter()
        .map(|s| (s.id.0, s.text("name").unwrap_or_default().to_owned()))
        .collect()
}

store_test! {
    async fn the_three_kinds_of_site_mapping_with_group_and_attribute_filters(db: &TestDb) {
        let fx = emulator(40).await;
        fx.connect(db, "contoso").await;
        let (_, settings) = deskbridge_connector_entra::load_entra_connection(&db.store, "contoso").await.unwrap();
        let customer = settings.customer_id;
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let site = |name: &str| -> Fields {
            [("customer_id".to_owned(), json!(customer.0)), ("name".to_owned(), json!(name))].into_iter().collect()
        };
        let london = tx.insert(Entity::Site, None, &site("London")).await.unwrap();
        tx.insert(Entity::Site, None, &site("Paris")).await.unwrap();
        let main = tx.main_site(customer).await.unwrap().unwrap();
        tx.commit().await.unwrap();

        let members: Vec<String> = graph_users(&fx).await.iter().filter_map(|u| u["id"].as_str().map(str::to_owned)).collect();
        let londoner = members[0].clone();
        group_with(&fx, "London Office", &[&londoner]).await;
        fx.admin(reqwest::Method::PATCH, &format!("users/{}", members[1]), Some(json!({"department": "Sales", "jobTitle": "Rep"}))).await;
        fx.admin(reqwest::Method::PATCH, &format!("users/{}", members[2]), Some(json!({"department": "Support", "jobTitle": null}))).await;
        fx.admin(reqwest::Method::PATCH, &format!("users/{}", members[3]), Some(json!({"department": "Finance", "jobTitle": "Paris"}))).await;
        configure(db, "contoso", |m| {
            m.site_mappings = vec![
                SiteMapping {
                    id: 1,
                    name: "London office".into(),
                    sequence: 10,
                    target: SiteTarget::ExistingSite { site_id: london },
                    group: Some(GroupFilter { name: "London Office".into(), nested: false }),
                    ..SiteMapping::default()
                },
                SiteMapping {
                    id: 2,
                    name: "Departments starting with S".into(),
                    sequence: 20,
                    target: SiteTarget::CustomerByField { customer_id: customer, field: "department".into() },
                    filter: Some("startswith(department,'S')".into()),
                    ..SiteMapping::default()
                },
                SiteMapping {
                    id: 3,
                    name: "Site named by job title".into(),
                    sequence: 30,
                    target: SiteTarget::MatchSiteField {
                        customer_id: Some(customer),
                        site_field: "name".into(),
                        user_field: "job_title".into(),
                        unmatched: UnmatchedSite::DefaultSite { site_id: main },
                    },
                    ..SiteMapping::default()
                },
            ];
        })
        .await;
        let outcome = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
        let sites = site_names(db).await;
        let desk = desk_users(db).await;
        for user in graph_users(&fx).await {
            let id = user["id"].as_str().unwrap();
            let department = user["department"].as_str().unwrap_or_default();
            let job = user["jobTitle"].as_str().unwrap_or_default();
            let expected = if id == londoner {
                "London".to_owned()
            } else if department.to_lowercase().starts_with('s') {
                department.to_owned()
            } else if job.eq_ignore_ascii_case("paris") {
                "Paris".to_owned()
            } else {
                "Main".to_owned()
            };
            let site_id = desk[id].get("site_id").as_i64().unwrap();
            assert!(sites[&site_id].eq_ignore_ascii_case(&expected), "{} ({department}/{job}) is on {}, not {expected}", user["displayName"], sites[&site_id]);
        }
        assert!(sites.values().any(|n| n == "Sales") && sites.values().any(|n| n == "Support"), "kind 2 created the sites: {sites:?}");
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn licence_management_teams_cabs_service_accounts_and_the_no_manager_role(db: &TestDb) {
        let fx = emulator(30).await;
        fx.connect(db, "contoso").await;
        let agents_role = named(db, Entity::AgentRole, "Agents").await;
        let named_role = named(db, Entity::AgentRole, "Named").await;
        let disabled_role = named(db, Entity::AgentRole, "Disabled").await;
        let team = named(db, Entity::Team, "1st Line").await;
        let cab = named(db, Entity::Cab, "Change Board").await;
        let approver = named(db, Entity::CabRole, "Approver").await;
        let exec = named(db, Entity::UserRole, "Executive").await;
        let users = graph_users(&fx).await;
        let ids: Vec<&str> = users.iter().filter(|u| u["accountEnabled"] == json!(true)).filter_map(|u| u["id"].as_str()).collect();
        let (a, b, c, staff) = (ids[0], ids[1], ids[2], ids[3]);
        group_with(&fx, "IT", &[a, b, c]).await;
        group_with(&fx, "Named Licence", &[a]).await;
        group_with(&fx, "Disabled Agents", &[c]).await;
        group_with(&fx, "Change", &[b, staff]).await;
        group_with(&fx, "Staff", &[a, b, c, staff]).await;
        configure(db, "contoso", |m| {
            m.site_mappings.push(SiteMapping {
                id: 2,
                name: "IT agents".into(),
                sequence: 10,
                target: SiteTarget::Agent { licence_type: LicenceTypeChoice::NoChange, creation_type: None },
                group: Some(GroupFilter { name: "IT".into(), nested: false }),
                ..SiteMapping::default()
            });
            m.advanced.agent_roles = vec![
                GroupToRecord { group: "IT".into(), id: agents_role },
                GroupToRecord { group: "Named Licence".into(), id: named_role },
                GroupToRecord { group: "Disabled Agents".into(), id: disabled_role },
            ];
            m.advanced.teams = vec![GroupToRecord { group: "IT".into(), id: team }];
            m.advanced.cabs = vec![GroupToCab { group: "Change".into(), cab_id: cab, cab_role_id: Some(approver) }];
            m.advanced.role_for_users_without_manager = Some(exec);
            m.licence_management = LicenceManagement { enabled: true, named_licence_roles: vec![named_role], inactive_roles: vec![disabled_role] };
            m.service_accounts = Some(ServiceAccounts { group: Some("Staff".into()), required_skus: vec![] });
        })
        .await;
        // The preview keeps ids in the fields and names them beside: roles, teams, CABs.
        let preview = sync(&db.store, "contoso", &SyncOptions { plan_only: true, ..SyncOptions::default() }, &clock()).await.unwrap();
        let summary = preview.summary.clone().unwrap();
        let agent_b = preview
            .changes
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.entity == deskbridge_mapping::Entity::Agent && c.external_id == b)
            .unwrap();
        assert_eq!(agent_b.fields["roles"].after, json!([agents_role.0]));
        assert_eq!(summary.names["agent_role"][&agents_role.0.to_string()], "Agents", "{:?}", summary.names);
        assert_eq!(summary.names["team"][&team.0.to_string()], "1st Line", "{:?}", summary.names);
        assert_eq!(summary.names["cab"][&cab.0.to_string()], "Change Board", "{:?}", summary.names);
        assert_eq!(summary.names["cab_role"][&approver.0.to_string()], "Approver", "{:?}", summary.names);
        let describe = |field: &str| summary.describe(agent_b.entity, field, &agent_b.fields[field].after).unwrap();
        assert_eq!(describe("roles"), format!("role {} \"Agents\"", agents_role.0));
        assert!(describe("teams").starts_with(&format!("team {} \"1st Line\" (assign", team.0)), "{}", describe("teams"));
        assert_eq!(describe("cabs"), format!("CAB {} \"Change Board\" (role {} \"Approver\")", cab.0, approver.0));
        assert_eq!(summary.describe(agent_b.entity, "name", &json!("B")), None, "only references are described");
        let json = serde_json::to_value(&preview.summary).unwrap();
        assert_eq!(json["names"]["team"][team.0.to_string()], json!("1st Line"));

        let outcome = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
        let agents = desk_agents(db).await;
        assert_eq!(agents[a].get("licence_type"), &json!("named"), "a role that gives a named licence");
        assert_eq!(agents[b].get("licence_type"), &json!("concurrent"));
        assert_eq!(agents[c].get("active"), &json!(false), "a role that makes agents inactive");
        assert_eq!(agents[a].get("active"), &json!(true));
        let in_team = |id: &str| agents[id].get("teams").as_array().unwrap().iter().any(|t| t["team_id"] == json!(team.0));
        assert!(in_team(a) && in_team(b), "group → team");
        assert_eq!(agents[b].get("cabs"), &json!([{"cab_id": cab.0, "cab_role_id": approver.0}]), "group → CAB with its role");
        let desk = desk_users(db).await;
        assert_eq!(desk[staff].get("is_service_account"), &json!(false));
        // The guide: users in the group are added to the CAB too, not only agents.
        assert_eq!(desk[staff].get("cabs"), &json!([{"cab_id": cab.0, "cab_role_id": approver.0}]), "group → CAB for a user");
        assert_eq!(desk[b].get("cabs"), &json!([{"cab_id": cab.0, "cab_role_id": approver.0}]), "an agent's user record too");
        assert_eq!(desk[a].get("cabs"), &json!([]), "not in the group");
        // A run that changes nothing writes nothing, CAB memberships included.
        let again = sync(&db.store, "contoso", &SyncOptions { full: true, ..SyncOptions::default() }, &clock()).await.unwrap();
        assert_eq!((again.counts.created, again.counts.updated), (0, 0), "{:?}", again.counts);
        let outsider = ids.iter().find(|id| ![a, b, c, staff].contains(id)).unwrap();
        assert_eq!(desk[*outsider].get("is_service_account"), &json!(true), "users outside the group are service accounts");
        for user in &users {
            let id = user["id"].as_str().unwrap();
            let has_exec = desk[id].get("roles").as_array().unwrap().contains(&json!(exec.0));
            assert_eq!(has_exec, user.get("manager").is_none_or(Value::is_null), "{}: role for users with no manager", user["displayName"]);
        }
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn invalid_mappings_are_refused_on_save_with_the_exact_problem(db: &TestDb) {
        let fx = emulator(10).await;
        fx.connect(db, "contoso").await;
        group_with(&fx, "Real Group", &[]).await;
        let (_, settings) = deskbridge_connector_entra::load_entra_connection(&db.store, "contoso").await.unwrap();
        let save = |m: MappingConfig| async move {
            deskbridge_sync::save_mappings(&db.store, &sources(), "contoso", m, &clock()).await
        };
        let with_mapping = |change: &dyn Fn(&mut SiteMapping)| {
            let mut m = settings.mapping.clone();
            change(&mut m.site_mappings[0]);
            m
        };
        let err = save(with_mapping(&|s| s.group = Some(GroupFilter { name: "No Such Group".into(), nested: false }))).await.unwrap_err();
        assert!(err.to_string().contains("No Such Group"), "{err}");
        let err = save(with_mapping(&|s| s.filter = Some("department eq 'Sales".into()))).await.unwrap_err();
        assert!(err.to_string().contains("column"), "the parse error says where: {err}");
        let err = save(with_mapping(&|s| s.target = SiteTarget::ExistingSite { site_id: RecordId(99_999) })).await.unwrap_err();
        assert!(err.to_string().contains("99999"), "{err}");
        let mut bad_field = settings.mapping.clone();
        bad_field.user_fields.push(deskbridge_mapping::FieldMapping::property("shoeSize", "email"));
        let err = save(bad_field).await.unwrap_err();
        assert!(err.to_string().contains("shoeSize"), "{err}");
        // Nothing of that was stored; a valid change is.
        let (_, unchanged) = deskbridge_connector_entra::load_entra_connection(&db.store, "contoso").await.unwrap();
        assert_eq!(unchanged.mapping, settings.mapping);
        save(with_mapping(&|s| s.group = Some(GroupFilter { name: "Real Group".into(), nested: false }))).await.unwrap();
        let (_, saved) = deskbridge_connector_entra::load_entra_connection(&db.store, "contoso").await.unwrap();
        assert_eq!(saved.mapping.site_mappings[0].group.as_ref().unwrap().name, "Real Group");
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn agents_leave_a_mapped_team_with_their_group_when_removal_is_on(db: &TestDb) {
        let fx = emulator(20).await;
        fx.connect(db, "contoso").await;
        let team = named(db, Entity::Team, "2nd Line").await;
        let ids = active_members(&fx).await;
        let (a, b) = (ids[0].clone(), ids[1].clone());
        group_with(&fx, "Agents", &[&a, &b]).await;
        let team_group = group_with(&fx, "Team 2", &[&a, &b]).await;
        configure(db, "contoso", |m| {
            m.site_mappings.push(SiteMapping {
                id: 2,
                name: "Agents".into(),
                sequence: 10,
                target: SiteTarget::Agent { licence_type: LicenceTypeChoice::NoChange, creation_type: None },
                group: Some(GroupFilter { name: "Agents".into(), nested: false }),
                ..SiteMapping::default()
            });
            m.advanced.teams = vec![GroupToRecord { group: "Team 2".into(), id: team }];
            m.advanced.remove_agents_from_unmapped_teams = true;
        })
        .await;
        sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        let teams_of = |agents: &BTreeMap<String, deskbridge_store::Record>, id: &str| -> Vec<i64> {
            agents[id].get("teams").as_array().unwrap().iter().filter_map(|t| t["team_id"].as_i64()).collect()
        };
        let agents = desk_agents(db).await;
        assert_eq!((teams_of(&agents, &a), teams_of(&agents, &b)), (vec![team.0], vec![team.0]));
        fx.admin(reqwest::Method::DELETE, &format!("groups/{team_group}/members/{b}"), None).await;
        let delta = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(delta.status, "succeeded", "{:?}", delta.errors);
        let agents = desk_agents(db).await;
        assert_eq!(teams_of(&agents, &a), vec![team.0]);
        assert!(teams_of(&agents, &b).is_empty(), "b left the team with the group");
        assert_eq!(agents[&b].get("active"), &json!(true), "and is still an agent");
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn external_users_are_excluded_included_or_included_when_licensed(db: &TestDb) {
        let fx = emulator(60).await;
        fx.connect(db, "contoso").await;
        let summary = fx.emu.summary();
        let app = summary.apps.iter().find(|a| a.kind == "multi_tenant_secret").unwrap();
        let token = fx.emu.issue_app_token(&app.client_id, &fx.tenant).unwrap();
        let url = format!("{}/users?$select=id,userType,userPrincipalName,assignedLicenses&$top=999", summary.graph_url);
        let page: Value = fx.http.get(&url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        let guests: Vec<(String, bool)> = page["value"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| is_guest(u))
            .map(|u| (u["id"].as_str().unwrap().to_owned(), !u["assignedLicenses"].as_array().unwrap().is_empty()))
            .collect();
        assert!(!guests.is_empty(), "the world has guests");
        let imported = |desk: &BTreeMap<String, deskbridge_store::Record>, id: &str| desk.get(id).is_some();

        sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        let desk = desk_users(db).await;
        assert!(guests.iter().all(|(id, _)| !imported(&desk, id)), "excluded by default");

        configure(db, "contoso", |m| m.site_mappings[0].external_users = deskbridge_mapping::ExternalUsers::IncludeIfLicensed).await;
        sync(&db.store, "contoso", &SyncOptions { full: true, ..SyncOptions::default() }, &clock()).await.unwrap();
        let desk = desk_users(db).await;
        for (id, licensed) in &guests {
            assert_eq!(imported(&desk, id), *licensed, "guest {id}, licensed: {licensed}");
        }

        configure(db, "contoso", |m| m.site_mappings[0].external_users = deskbridge_mapping::ExternalUsers::Include).await;
        sync(&db.store, "contoso", &SyncOptions { full: true, ..SyncOptions::default() }, &clock()).await.unwrap();
        let desk = desk_users(db).await;
        assert!(guests.iter().all(|(id, _)| imported(&desk, id)), "all guests once included");
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn a_renamed_or_nested_mapped_group_replans_its_members_in_a_delta_round(db: &TestDb) {
        let fx = emulator(30).await;
        fx.connect(db, "contoso").await;
        let (_, settings) = deskbridge_connector_entra::load_entra_connection(&db.store, "contoso").await.unwrap();
        let customer = settings.customer_id;
        let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
        let fields: Fields = [("customer_id".to_owned(), json!(customer.0)), ("name".to_owned(), json!("London"))]
            .into_iter()
            .collect();
        let london = tx.insert(Entity::Site, None, &fields).await.unwrap();
        let main = tx.main_site(customer).await.unwrap().unwrap();
        tx.commit().await.unwrap();
        let members: Vec<String> = graph_users(&fx).await.iter().filter_map(|u| u["id"].as_str().map(str::to_owned)).collect();
        let office = group_with(&fx, "London Office", &[&members[0], &members[1]]).await;
        configure(db, "contoso", |m| {
            m.site_mappings = vec![
                SiteMapping {
                    id: 1,
                    name: "London office".into(),
                    sequence: 10,
                    target: SiteTarget::ExistingSite { site_id: london },
                    group: Some(GroupFilter { name: "London Office".into(), nested: true }),
                    ..SiteMapping::default()
                },
                SiteMapping {
                    id: 2,
                    name: "Everyone else".into(),
                    sequence: 50,
                    target: SiteTarget::ExistingSite { site_id: main },
                    ..SiteMapping::default()
                },
            ];
        })
        .await;
        let site_of = |desk: &BTreeMap<String, deskbridge_store::Record>, id: &str| desk[id].get("site_id").as_i64().unwrap();
        let first = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(first.mode, "full");
        let desk = desk_users(db).await;
        assert_eq!(site_of(&desk, &members[0]), london.0);
        assert_eq!(site_of(&desk, &members[2]), main.0);
        assert_eq!(sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap().mode, "delta");

        // The mapped group is renamed, and another group takes its name: both sets of members move.
        fx.admin(reqwest::Method::PATCH, &format!("groups/{office}"), Some(json!({"displayName": "London Office (old)"}))).await;
        let new_office = group_with(&fx, "London Office", &[&members[2]]).await;
        let round = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(round.mode, "delta", "{:?}", round.notes);
        let desk = desk_users(db).await;
        assert_eq!(site_of(&desk, &members[0]), main.0, "left the mapped group by its rename");
        assert_eq!(site_of(&desk, &members[1]), main.0);
        assert_eq!(site_of(&desk, &members[2]), london.0, "joined by the new group taking the name");

        // A group joins the mapped group: its users are now nested members.
        let team = group_with(&fx, "Platform Team", &[&members[3]]).await;
        fx.admin(reqwest::Method::POST, &format!("groups/{new_office}/members"), Some(json!({"id": team}))).await;
        let round = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(round.mode, "delta");
        assert_eq!(site_of(&desk_users(db).await, &members[3]), london.0, "a nested member through the new subgroup");

        // A mapping change: the next run plans everyone under the new rules.
        configure(db, "contoso", |m| m.site_mappings[0].target = SiteTarget::ExistingSite { site_id: main }).await;
        let round = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(round.mode, "full", "{:?}", round.notes);
        assert!(round.notes.iter().any(|n| n.contains("mappings changed")));
        let desk = desk_users(db).await;
        assert_eq!(site_of(&desk, &members[2]), main.0);
        fx.emu.shutdown().await;
    }
}
