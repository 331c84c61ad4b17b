#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::*;
use deskbridge_core::RecordId;
use deskbridge_mapping::*;
use serde_json::{Value, json};

fn run(config: &MappingConfig, reads: Vec<TenantRead>, desk: &DeskSnapshot) -> Plan {
    plan(&validated(config), &input(reads), desk, now())
}

fn find<'p>(plan: &'p Plan, entity: Entity, external_id: &str) -> &'p Change {
    plan.changes
        .iter()
        .find(|c| c.entity == entity && c.external_id == external_id)
        .unwrap_or_else(|| panic!("no {entity:?} change for {external_id}: {:#?}", plan.changes))
}

fn after(change: &Change, field: &str) -> Value {
    change
        .fields
        .get(field)
        .map(|f| f.after.clone())
        .unwrap_or_else(|| panic!("{field} not changed in {change:#?}"))
}

fn writes(plan: &Plan) -> Vec<&Change> {
    plan.writes().collect()
}

/// Applies the plan and plans again from the result: nothing more to write.
fn assert_converges(config: &MappingConfig, reads: Vec<TenantRead>, desk: &DeskSnapshot) -> DeskSnapshot {
    let first = run(config, reads.clone(), desk);
    let applied = apply_to_snapshot(desk, &first, CONNECTION).unwrap();
    let second = run(config, reads, &applied);
    assert!(
        writes(&second).is_empty(),
        "second plan still writes: {:#?}",
        writes(&second)
    );
    assert_eq!(
        second.counts.created + second.counts.updated + second.counts.deactivated,
        0
    );
    applied
}

fn simple_config() -> MappingConfig {
    let mut config = MappingConfig::generated(RecordId(10));
    config.imports.deactivate_not_found = true;
    config
}

// ---------- field mappings, the catch-all and matching ----------

#[test]
fn generated_configuration_imports_every_member_to_the_main_site() {
    let config = simple_config();
    let ann = user(&oid(1), "Ann Lee")
        .prop("givenName", json!("Ann"))
        .prop("surname", json!("Lee"))
        .prop("businessPhones", json!(["+44 20 1234"]))
        .prop("jobTitle", json!("Buyer"))
        .build();
    let guest = user(&oid(2), "Gus Guest").guest().build();
    let plan = run(&config, vec![full_read(vec![ann, guest])], &empty_desk());
    let create = find(&plan, Entity::User, &oid(1));
    assert_eq!(create.action, Action::Create);
    assert_eq!(create.rule, "site mapping #1 'All users' (seq 50)");
    assert_eq!(after(create, "site_id"), json!(10));
    assert_eq!(after(create, "first_name"), json!("Ann"));
    assert_eq!(after(create, "phone"), json!("+44 20 1234"));
    assert_eq!(after(create, "email"), json!("ann.lee@contoso.com"));
    assert_eq!(after(create, "network_login"), json!("ann.lee@contoso.com"));
    assert_eq!(after(create, "azure_object_id"), json!(oid(1)));
    assert_eq!(after(create, "azure_tenant_id"), json!(TENANT));
    assert_eq!(after(create, "active"), json!(true));
    assert!(create.fields.values().all(|f| f.before.is_null()));
    assert!(
        create.reason.contains("no conditions (catch-all)"),
        "{}",
        create.reason
    );
    let skipped = find(&plan, Entity::User, &oid(2));
    assert_eq!(skipped.action, Action::Skip);
    assert_eq!(
        skipped.reason,
        "Gus Guest matched no site mapping (site mapping #1 'All users' (seq 50): external users are not included). Not imported."
    );
    assert_eq!(plan.counts.created, 1);
    assert_conv(&config, vec![full_read(vec![user(&oid(1), "Ann Lee").build()])]);
}

fn assert_conv(config: &MappingConfig, reads: Vec<TenantRead>) {
    assert_converges(config, reads, &empty_desk());
}

#[test]
fn updates_show_before_and_after_and_unchanged_users_are_counted() {
    let config = simple_config();
    let desk = assert_converges(
        &config,
        vec![full_read(vec![user(&oid(1), "Ann Lee").build()])],
        &empty_desk(),
    );
    let renamed = user(&oid(1), "Ann Lee-Smith")
        .prop("jobTitle", json!("Head Buyer"))
        .prop("mail", json!("ann.lee@contoso.com"))
        .prop("userPrincipalName", json!("ann.lee@contoso.com"))
        .build();
    let plan = run(
        &config,
        vec![full_read(vec![renamed.clone(), user(&oid(2), "Bob Roe").build()])],
        &desk,
    );
    let update = find(&plan, Entity::User, &oid(1));
    assert_eq!(update.action, Action::Update);
    assert_eq!(
        update.fields["name"],
        FieldChange {
            before: json!("Ann Lee"),
            after: json!("Ann Lee-Smith")
        }
    );
    assert_eq!(
        update.fields["job_title"],
        FieldChange {
            before: Value::Null,
            after: json!("Head Buyer")
        }
    );
    assert!(
        !update.fields.contains_key("email"),
        "unchanged fields are not listed"
    );
    assert!(
        update.reason.contains("name ← field mapping #1 (displayName)"),
        "{}",
        update.reason
    );
    assert_eq!(plan.target_of(update), Some(RecordId(1)));
    assert_eq!((plan.counts.created, plan.counts.updated), (1, 1));
    let both = vec![renamed.clone(), user(&oid(2), "Bob Roe").build()];
    let plan = run(
        &config,
        vec![full_read(both)],
        &apply_to_snapshot(&desk, &plan, CONNECTION).unwrap(),
    );
    assert_eq!(plan.counts.unchanged, 2);
    assert!(writes(&plan).is_empty());
}

#[test]
fn matching_uses_object_id_first_then_the_configured_fields() {
    let mut config = simple_config();
    config.imports.match_order = vec![MatchField::NetworkLogin, MatchField::Email];
    let desk = DeskSnapshot {
        users: vec![
            manual(
                5,
                json!({"name": "Ann (typed by hand)", "email": "someone@else.com", "network_login": "ANN.LEE@contoso.com", "site_id": 10}),
            ),
            imported(
                6,
                &oid(2),
                json!({"name": "Bob Roe", "email": "ann.lee@contoso.com", "site_id": 10}),
            ),
            manual(7, json!({"name": "Cy", "email": "cy@contoso.com", "site_id": 10})),
            manual(
                8,
                json!({"name": "Cy again", "email": "cy@contoso.com", "site_id": 10}),
            ),
        ],
        ..empty_desk()
    };
    let ann = user(&oid(1), "Ann Lee").build();
    let bob = user(&oid(2), "Bob Roe").build();
    let cy = user(&oid(3), "Cy")
        .prop("userPrincipalName", json!("cy@corp.contoso.com"))
        .prop("mail", json!("cy@contoso.com"))
        .build();
    let plan = run(&config, vec![full_read(vec![ann, bob, cy])], &desk);

    let link = find(&plan, Entity::User, &oid(1));
    assert_eq!(link.action, Action::Link);
    assert_eq!(plan.target_of(link), Some(RecordId(5)));
    assert_eq!(link.fields["azure_object_id"].after, json!(oid(1)));
    assert!(link.reason.contains("linked to existing desk user Ann (typed by hand) (id 5) matched on network_login 'ann.lee@contoso.com'"), "{}", link.reason);

    // Bob is found by object id even though his desk email equals Ann's.
    let bob = find(&plan, Entity::User, &oid(2));
    assert_eq!(plan.target_of(bob), Some(RecordId(6)));

    let conflict = find(&plan, Entity::User, &oid(3));
    assert_eq!(conflict.action, Action::Conflict);
    assert_eq!(conflict.rule, "user matching (email)");
    assert_eq!(
        conflict.reason,
        "Cy: 2 desk users have email 'cy@contoso.com' (ids 7, 8); not linked, resolve by hand"
    );
    assert_eq!(plan.counts.conflicts, 1);

    let applied = apply_to_snapshot(&desk, &plan, CONNECTION).unwrap();
    let ann = applied.users.iter().find(|u| u.id == RecordId(5)).unwrap();
    assert_eq!(ann.source.as_ref().unwrap().external_id, oid(1));
    assert_eq!(applied.users.len(), 4, "a conflict creates nothing");
}

#[test]
fn two_source_users_fitting_one_desk_record_is_a_conflict() {
    let config = simple_config();
    let desk = DeskSnapshot {
        users: vec![manual(5, json!({"name": "Shared", "email": "desk@contoso.com"}))],
        ..empty_desk()
    };
    let first = user(&oid(1), "One")
        .prop("mail", json!("desk@contoso.com"))
        .build();
    let second = user(&oid(2), "Two")
        .prop("mail", json!("desk@contoso.com"))
        .build();
    let plan = run(
        &config,
        vec![full_read(vec![first.clone(), second.clone()])],
        &desk,
    );
    for n in [1, 2] {
        let conflict = find(&plan, Entity::User, &oid(n));
        assert_eq!(conflict.action, Action::Conflict, "neither is linked");
        let expected = format!(
            "desk user Shared (id 5) fits 2 Azure users on email 'desk@contoso.com' ({}, {}); not linked, resolve by hand",
            oid(1),
            oid(2)
        );
        assert!(conflict.reason.ends_with(&expected), "{}", conflict.reason);
    }
    assert_eq!(plan.counts.conflicts, 2);
    let applied = apply_to_snapshot(&desk, &plan, CONNECTION).unwrap();
    let again = run(&config, vec![full_read(vec![first, second])], &applied);
    assert_eq!(again.counts.conflicts, 2, "the same next time");
}

// ---------- site mappings ----------

#[test]
fn sequence_order_decides_overlaps_and_ties_go_to_the_lower_id() {
    let londoner = user(&oid(1), "Lon Don")
        .groups(&["Loc-London", "IT Change"])
        .prop("city", json!("London"))
        .build();
    let plan = run(&config(), vec![full_read(vec![londoner.clone()])], &empty_desk());
    let change = find(&plan, Entity::User, &oid(1));
    assert_eq!(change.rule, "site mapping #2 'London staff' (seq 10)");
    assert_eq!(after(change, "site_id"), json!(11));

    let mut config = config();
    config.site_mappings[1].sequence = 60;
    let plan = run(&config, vec![full_read(vec![londoner.clone()])], &empty_desk());
    assert_eq!(
        find(&plan, Entity::User, &oid(1)).rule,
        "site mapping #4 'Everyone else' (seq 50)"
    );

    config.site_mappings[1].sequence = 50;
    let plan = run(&config, vec![full_read(vec![londoner])], &empty_desk());
    assert_eq!(
        find(&plan, Entity::User, &oid(1)).rule,
        "site mapping #2 'London staff' (seq 50)"
    );
}

#[test]
fn nested_group_membership_counts_only_when_asked() {
    let nested = user(&oid(1), "Nested").nested_groups(&["Loc-London"]).build();
    let plan = run(&config(), vec![full_read(vec![nested.clone()])], &empty_desk());
    assert_eq!(
        find(&plan, Entity::User, &oid(1)).rule,
        "site mapping #2 'London staff' (seq 10)"
    );
    let mut config = config();
    config.site_mappings[1].group.as_mut().unwrap().nested = false;
    let plan = run(&config, vec![full_read(vec![nested])], &empty_desk());
    let change = find(&plan, Entity::User, &oid(1));
    assert_ne!(change.rule, "site mapping #2 'London staff' (seq 10)");
}

#[test]
fn kind_two_creates_one_site_per_distinct_value() {
    let people = vec![
        user(&oid(1), "A").prop("city", json!("Bristol")).build(),
        user(&oid(2), "B").prop("city", json!("bristol")).build(),
        user(&oid(3), "C").prop("city", json!("Leeds")).build(),
        user(&oid(4), "D").build(),
    ];
    let mut config = config();
    config.site_mappings.retain(|m| m.id == 4);
    let plan = run(&config, vec![full_read(people.clone())], &empty_desk());
    let sites: Vec<&Change> = plan.changes.iter().filter(|c| c.entity == Entity::Site).collect();
    assert_eq!(sites.len(), 1, "{sites:#?}");
    assert_eq!(sites[0].external_id, "1/Bristol");
    assert_eq!(sites[0].rule, "site mapping #4 'Everyone else' (seq 50)");
    let new_site = json!({"site": {"customer_id": 1, "name": "Bristol"}});
    assert_eq!(after(find(&plan, Entity::User, &oid(1)), "site_id"), new_site);
    assert_eq!(after(find(&plan, Entity::User, &oid(2)), "site_id"), new_site);
    assert_eq!(
        after(find(&plan, Entity::User, &oid(3)), "site_id"),
        json!(12),
        "an existing site of that name is used"
    );
    let skipped = find(&plan, Entity::User, &oid(4));
    assert_eq!(skipped.action, Action::Skip);
    assert!(
        skipped.reason.contains("no value in 'city' to name a site"),
        "{}",
        skipped.reason
    );
    assert_eq!(
        after(find(&plan, Entity::User, &oid(1)), "custom:IsVip"),
        json!(false),
        "values to apply"
    );
    let applied = assert_converges(&config, vec![full_read(people)], &empty_desk());
    let bristol = applied.sites.iter().find(|s| s.name == "Bristol").unwrap();
    assert_eq!(
        applied
            .users
            .iter()
            .filter(|u| u.fields["site_id"] == json!(bristol.id.0))
            .count(),
        2
    );
}

#[test]
fn kind_three_matches_a_site_field_or_skips_or_defaults() {
    let leeds = user(&oid(1), "Lee Ds")
        .prop("officeLocation", json!("lds"))
        .build();
    let nowhere = user(&oid(2), "No Where")
        .prop("officeLocation", json!("LXX"))
        .build();
    let plan = run(
        &config(),
        vec![full_read(vec![leeds.clone(), nowhere.clone()])],
        &empty_desk(),
    );
    let matched = find(&plan, Entity::User, &oid(1));
    assert_eq!(after(matched, "site_id"), json!(12));
    assert!(
        matched
            .reason
            .contains("site 'Leeds' (12) whose custom:Code equals custom:Office 'lds'"),
        "{}",
        matched.reason
    );
    let skipped = find(&plan, Entity::User, &oid(2));
    assert_eq!(skipped.action, Action::Skip);
    assert_eq!(skipped.rule, "site mapping #3 'Offices by code' (seq 20)");
    assert!(
        skipped
            .reason
            .contains("no site's custom:Code equals custom:Office 'LXX' and the mapping says do not import"),
        "{}",
        skipped.reason
    );

    let mut config = config();
    config.site_mappings[2].target = SiteTarget::MatchSiteField {
        customer_id: Some(RecordId(1)),
        site_field: "custom:Code".into(),
        user_field: "custom:Office".into(),
        unmatched: UnmatchedSite::DefaultSite {
            site_id: RecordId(10),
        },
    };
    let plan = run(&config, vec![full_read(vec![nowhere])], &empty_desk());
    assert_eq!(after(find(&plan, Entity::User, &oid(2)), "site_id"), json!(10));
}

#[test]
fn an_agent_whose_user_mapping_says_do_not_import_is_an_agent_and_a_reported_skip_and_an_agent_no_user_mapping_selects_is_a_user_on_the_customers_main_site()
 {
    let agent = user(&oid(1), "Desk Agent")
        .groups(&["IT Service Desk"])
        .prop("officeLocation", json!("LXX"))
        .build();
    let plain_agent = user(&oid(2), "Plain Agent").groups(&["IT Service Desk"]).build();
    let plan = run(
        &config(),
        vec![full_read(vec![agent, plain_agent])],
        &empty_desk(),
    );
    assert_eq!(find(&plan, Entity::Agent, &oid(1)).action, Action::Create);
    let skip = find(&plan, Entity::User, &oid(1));
    assert_eq!(skip.action, Action::Skip);
    assert_eq!(skip.rule, "site mapping #3 'Offices by code' (seq 20)");
    assert_eq!(find(&plan, Entity::Agent, &oid(2)).action, Action::Create);
    // The agent site imports agents as users too (the guide): one no user mapping selects is a
    // user on the main site of the tenant's customer, not a skipped user.
    let user = find(&plan, Entity::User, &oid(2));
    assert_eq!(user.action, Action::Create);
    let main = empty_desk()
        .sites
        .iter()
        .find(|s| s.is_main && s.customer_id == RecordId(1))
        .unwrap()
        .id;
    assert_eq!(after(user, "site_id"), json!(main.0));
    assert!(
        user.reason
            .contains("a user too, as the agent site imports agents as users"),
        "{}",
        user.reason
    );
    // Without a main site for the customer there is nowhere to put the user: the agent alone, and
    // no skipped user.
    let mut no_main = empty_desk();
    no_main.sites.retain(|s| !s.is_main);
    let plain = user_of(&oid(2));
    let plan = run(&config(), vec![full_read(vec![plain])], &no_main);
    assert_eq!(find(&plan, Entity::Agent, &oid(2)).action, Action::Create);
    assert!(
        plan.changes
            .iter()
            .all(|c| !(c.entity == Entity::User && c.external_id == oid(2)))
    );
}

fn user_of(id: &str) -> deskbridge_mapping::SourceUser {
    user(id, "Plain Agent").groups(&["IT Service Desk"]).build()
}

#[test]
fn external_users_need_inclusion_and_optionally_a_licence() {
    let unlicensed = user(&oid(1), "Guest One")
        .guest()
        .prop("city", json!("Leeds"))
        .build();
    let licensed = user(&oid(2), "Guest Two")
        .prop("userPrincipalName", json!("g2_x.com#EXT#@contoso.com"))
        .prop("city", json!("Leeds"))
        .skus(&[E3])
        .build();
    let plan = run(
        &config(),
        vec![full_read(vec![unlicensed, licensed])],
        &empty_desk(),
    );
    let skipped = find(&plan, Entity::User, &oid(1));
    assert_eq!(skipped.action, Action::Skip);
    assert!(
        skipped
            .reason
            .contains("external users need a licence and this one has none"),
        "{}",
        skipped.reason
    );
    let imported = find(&plan, Entity::User, &oid(2));
    assert_eq!(imported.action, Action::Create);
    assert!(
        imported.reason.contains("licensed external user"),
        "{}",
        imported.reason
    );
    assert_eq!(after(imported, "licences"), json!([1]));
}

#[test]
fn tenant_restricted_mapping_only_selects_its_tenant() {
    let mut config = simple_config();
    config.site_mappings[0].tenant_id = Some(OTHER_TENANT.into());
    let plan = run(
        &config,
        vec![full_read(vec![user(&oid(1), "A").build()])],
        &empty_desk(),
    );
    let skip = find(&plan, Entity::User, &oid(1));
    assert!(
        skip.reason
            .contains(&format!("no site mapping applies to tenant {TENANT}")),
        "{}",
        skip.reason
    );
}

#[test]
fn generated_tenant_mappings_route_each_tenant_to_its_customer() {
    let mut config = simple_config();
    config.site_mappings.clear();
    assert_eq!(config.add_tenant_mapping(TENANT, "Contoso Ltd", RecordId(10)), 1);
    assert_eq!(
        config.add_tenant_mapping(OTHER_TENANT, "Fabrikam", RecordId(20)),
        2
    );
    assert_eq!(
        config.add_tenant_mapping(&TENANT.to_uppercase(), "Contoso Ltd", RecordId(10)),
        1,
        "not twice"
    );
    let other = TenantRead {
        tenant_id: OTHER_TENANT.into(),
        customer_id: Some(RecordId(2)),
        ..full_read(vec![user(&oid(2), "Fab User").build()])
    };
    let plan = run(
        &config,
        vec![full_read(vec![user(&oid(1), "Con User").build()]), other],
        &empty_desk(),
    );
    assert_eq!(after(find(&plan, Entity::User, &oid(1)), "site_id"), json!(10));
    let fab = find(&plan, Entity::User, &oid(2));
    assert_eq!(after(fab, "site_id"), json!(20));
    assert_eq!(fab.rule, "site mapping #2 'Fabrikam (all users)' (seq 50)");
    assert_eq!(after(fab, "azure_tenant_id"), json!(OTHER_TENANT));
    assert_eq!(plan.circuit_breaker.len(), 2);
}

// ---------- roles, managers, service accounts ----------

#[test]
fn user_roles_come_from_the_mapping_groups_and_missing_manager() {
    let boss = user(&oid(1), "Big Boss")
        .groups(&["Loc-London", "Executives", "All Staff"])
        .build();
    let staff = user(&oid(2), "Small Staff")
        .groups(&["Loc-London", "All Staff"])
        .manager(&oid(1))
        .build();
    let contractor = user(&oid(3), "Con Tractor")
        .groups(&["Loc-London"])
        .manager(&oid(9))
        .build();
    let plan = run(
        &config(),
        vec![full_read(vec![boss, staff, contractor])],
        &empty_desk(),
    );
    let boss = find(&plan, Entity::User, &oid(1));
    assert_eq!(after(boss, "roles"), json!([1, 2, 3]));
    assert_eq!(after(boss, "is_service_account"), json!(false));
    let staff = find(&plan, Entity::User, &oid(2));
    assert_eq!(after(staff, "roles"), json!([1]));
    assert_eq!(
        after(staff, "line_manager_id"),
        json!({"user": oid(1)}),
        "a manager created in the same run"
    );
    let contractor = find(&plan, Entity::User, &oid(3));
    assert_eq!(after(contractor, "is_service_account"), json!(true));
    assert!(
        !contractor.fields.contains_key("line_manager_id"),
        "manager not imported: no line manager"
    );
    assert!(
        contractor
            .reason
            .contains("is_service_account ← service accounts: not in group 'All Staff'"),
        "{}",
        contractor.reason
    );
    let applied = apply_to_snapshot(&empty_desk(), &plan, CONNECTION).unwrap();
    let boss_id = applied
        .users
        .iter()
        .find(|u| u.source.as_ref().unwrap().external_id == oid(1))
        .unwrap()
        .id;
    let staff = applied
        .users
        .iter()
        .find(|u| u.source.as_ref().unwrap().external_id == oid(2))
        .unwrap();
    assert_eq!(staff.fields["line_manager_id"], json!(boss_id.0));
}

#[test]
fn service_accounts_by_missing_licence() {
    let mut config = simple_config();
    config.service_accounts = Some(ServiceAccounts {
        group: None,
        required_skus: vec![E3.into(), E5.into()],
    });
    let licensed = user(&oid(1), "Lic Ensed").skus(&[E5]).build();
    let unlicensed = user(&oid(2), "Scanner").build();
    let plan = run(
        &config,
        vec![full_read(vec![licensed, unlicensed])],
        &empty_desk(),
    );
    assert_eq!(
        after(find(&plan, Entity::User, &oid(1)), "is_service_account"),
        json!(false)
    );
    assert_eq!(
        after(find(&plan, Entity::User, &oid(2)), "is_service_account"),
        json!(true)
    );
}

// ---------- agents ----------

#[test]
fn agents_licence_team_roles_cabs_and_line_manager() {
    let lead = user(&oid(9), "Lead Agent")
        .groups(&["IT Service Desk", "IT Change"])
        .prop("department", json!("2nd line"))
        .build();
    let agent = user(&oid(2), "Desk Agent")
        .groups(&["IT Service Desk"])
        .prop("department", json!("Nowhere"))
        .manager(&oid(9))
        .build();
    let plan = run(
        &config(),
        vec![full_read(vec![agent.clone(), lead.clone()])],
        &empty_desk(),
    );

    let lead_change = find(&plan, Entity::Agent, &oid(9));
    assert_eq!(lead_change.action, Action::Create);
    assert_eq!(lead_change.rule, "site mapping #1 'Service desk agents' (seq 5)");
    assert_eq!(after(lead_change, "roles"), json!([1, 2]));
    assert_eq!(
        after(lead_change, "licence_type"),
        json!("named"),
        "role 2 gives a named licence"
    );
    assert_eq!(after(lead_change, "default_team_id"), json!(2));
    assert_eq!(
        after(lead_change, "teams"),
        json!([
            {"team_id": 2, "can_be_assigned": true, "can_see_unassigned": true, "can_see_others_tickets": true},
            {"team_id": 3, "can_be_assigned": true, "can_see_unassigned": false, "can_see_others_tickets": false}
        ])
    );
    assert_eq!(
        after(lead_change, "cabs"),
        json!([{"cab_id": 1, "cab_role_id": 1}])
    );

    let agent_change = find(&plan, Entity::Agent, &oid(2));
    assert_eq!(after(agent_change, "licence_type"), json!("concurrent"));
    assert!(
        !agent_change.fields.contains_key("default_team_id"),
        "unknown team name: new agent gets none"
    );
    assert_eq!(
        after(agent_change, "line_manager_id"),
        json!({"agent": oid(9)}),
        "manager planned later in the same run"
    );

    let desk = assert_converges(
        &config(),
        vec![full_read(vec![agent.clone(), lead.clone()])],
        &empty_desk(),
    );
    let lead_id = desk
        .agents
        .iter()
        .find(|a| a.source.as_ref().unwrap().external_id == oid(9))
        .unwrap()
        .id;
    let agent_record = desk
        .agents
        .iter()
        .find(|a| a.source.as_ref().unwrap().external_id == oid(2))
        .unwrap();
    assert_eq!(agent_record.fields["line_manager_id"], json!(lead_id.0));
}

#[test]
fn line_manager_only_when_the_manager_is_an_imported_agent() {
    let agent = user(&oid(2), "Desk Agent")
        .groups(&["IT Service Desk"])
        .manager(&oid(8))
        .build();
    let plain_manager = user(&oid(8), "Plain Manager").groups(&["Loc-London"]).build();
    let plan = run(
        &config(),
        vec![full_read(vec![agent, plain_manager])],
        &empty_desk(),
    );
    let change = find(&plan, Entity::Agent, &oid(2));
    assert!(!change.fields.contains_key("line_manager_id"));
}

#[test]
fn licence_type_no_change_keeps_existing_agents() {
    let mut config = config();
    config.licence_management.enabled = false;
    let desk = DeskSnapshot {
        agents: vec![imported(
            3,
            &oid(2),
            json!({"name": "Desk Agent", "licence_type": "named", "roles": [1]}),
        )],
        ..empty_desk()
    };
    let agent = user(&oid(2), "Desk Agent").groups(&["IT Service Desk"]).build();
    let plan = run(&config, vec![full_read(vec![agent.clone()])], &desk);
    let change = find(&plan, Entity::Agent, &oid(2));
    assert!(!change.fields.contains_key("licence_type"), "{change:#?}");
    config.site_mappings[0].target = SiteTarget::Agent {
        licence_type: LicenceTypeChoice::Concurrent,
        creation_type: Some("Member".into()),
    };
    let plan = run(&config, vec![full_read(vec![agent])], &desk);
    let change = find(&plan, Entity::Agent, &oid(2));
    assert_eq!(
        change.fields["licence_type"],
        FieldChange {
            before: json!("named"),
            after: json!("concurrent")
        }
    );
    assert_eq!(after(change, "creation_type"), json!("Member"));
}

#[test]
fn full_role_management_replaces_roles_and_deactivates_agents_left_without_any() {
    let desk = DeskSnapshot {
        agents: vec![
            imported(
                3,
                &oid(2),
                json!({"name": "Desk Agent", "roles": [1, 4], "active": true}),
            ),
            imported(
                4,
                &oid(5),
                json!({"name": "Gone Agent", "roles": [1], "active": true,
                "teams": [{"team_id": 3, "can_be_assigned": true, "can_see_unassigned": false, "can_see_others_tickets": false},
                          {"team_id": 1, "can_be_assigned": true, "can_see_unassigned": true, "can_see_others_tickets": true}]}),
            ),
        ],
        tickets: vec![
            DeskTicket {
                id: RecordId(100),
                agent_id: Some(RecordId(4)),
                team_id: None,
                followers: vec![],
            },
            DeskTicket {
                id: RecordId(101),
                agent_id: Some(RecordId(3)),
                team_id: None,
                followers: vec![],
            },
        ],
        ..empty_desk()
    };
    // Desk Agent keeps the agent site (group) but loses role 4; Gone Agent left the service desk
    // group: it no longer matches the agent mapping, but is still in the read.
    let desk_agent = user(&oid(2), "Desk Agent").groups(&["IT Service Desk"]).build();
    let mut config = config();
    config.site_mappings[0].group = None;
    config.site_mappings[0].filter = Some("department ne 'Finance'".into());
    let gone = user(&oid(5), "Gone Agent")
        .prop("department", json!("Sales"))
        .build();
    let plan = run(&config, vec![full_read(vec![desk_agent, gone])], &desk);
    let kept = find(&plan, Entity::Agent, &oid(2));
    assert_eq!(kept.action, Action::Update);
    assert_eq!(
        kept.fields["roles"],
        FieldChange {
            before: json!([1, 4]),
            after: json!([1])
        }
    );
    let deactivated = find(&plan, Entity::Agent, &oid(5));
    assert_eq!(deactivated.action, Action::Deactivate);
    assert_eq!(deactivated.rule, "full role management");
    assert!(
        deactivated
            .reason
            .contains("active ← full role management: no group gives this agent a role"),
        "{}",
        deactivated.reason
    );
    assert_eq!(
        deactivated.fields["teams"].after,
        json!([{"team_id": 1, "can_be_assigned": true, "can_see_unassigned": true, "can_see_others_tickets": true}]),
        "removed from the mapped team 3, kept in the manually given team 1"
    );
    let ticket = find(&plan, Entity::Ticket, "100");
    assert_eq!(
        ticket.fields["agent_id"],
        FieldChange {
            before: json!(4),
            after: Value::Null
        }
    );
    assert_eq!(ticket.rule, "re-assign tickets of agents made inactive");
    assert!(plan.changes.iter().all(|c| c.external_id != "101"));
    let applied = apply_to_snapshot(&desk, &plan, CONNECTION).unwrap();
    assert_eq!(applied.tickets[0].agent_id, None);
    assert_eq!(applied.tickets[1].agent_id, Some(RecordId(3)));
}

#[test]
fn full_role_management_reaches_agents_no_mapping_selects_any_more() {
    let desk = DeskSnapshot {
        agents: vec![
            imported(
                3,
                &oid(2),
                json!({"name": "Ex Desk", "roles": [1], "active": true}),
            ),
            imported(
                4,
                &oid(3),
                json!({"name": "Change Only", "roles": [1, 2], "active": true}),
            ),
        ],
        ..empty_desk()
    };
    // Both left 'IT Service Desk' (the agent site's group); one is still in 'IT Change'.
    let ex_desk = user(&oid(2), "Ex Desk").groups(&["Loc-London"]).build();
    let change_only = user(&oid(3), "Change Only")
        .groups(&["IT Change"])
        .prop("city", json!("Leeds"))
        .build();
    let plan = run(
        &config(),
        vec![full_read(vec![ex_desk.clone(), change_only.clone()])],
        &desk,
    );
    let ex = find(&plan, Entity::Agent, &oid(2));
    assert_eq!(ex.action, Action::Deactivate);
    assert_eq!(ex.rule, "full role management");
    assert_eq!(
        ex.fields["roles"],
        FieldChange {
            before: json!([1]),
            after: json!([])
        }
    );
    let kept = find(&plan, Entity::Agent, &oid(3));
    assert_eq!(kept.action, Action::Update);
    assert_eq!(
        kept.fields["roles"],
        FieldChange {
            before: json!([1, 2]),
            after: json!([2])
        }
    );
    assert_eq!(
        find(&plan, Entity::User, &oid(2)).action,
        Action::Create,
        "the user side is planned as usual"
    );
    assert_converges(
        &config(),
        vec![full_read(vec![ex_desk.clone(), change_only.clone()])],
        &desk,
    );

    let mut without = config();
    without.advanced.full_role_management = false;
    let plan = run(&without, vec![full_read(vec![ex_desk, change_only])], &desk);
    assert!(
        plan.changes.iter().all(|c| c.entity != Entity::Agent),
        "{:#?}",
        plan.changes
    );
}

#[test]
fn licence_management_inactive_role_and_account_disabled() {
    let leaver = user(&oid(2), "Leaving Agent")
        .groups(&["IT Service Desk", "Leavers"])
        .build();
    let disabled = user(&oid(3), "Disabled Agent")
        .groups(&["IT Service Desk"])
        .disabled()
        .build();
    let desk = DeskSnapshot {
        agents: vec![
            imported(
                3,
                &oid(2),
                json!({"name": "Leaving Agent", "roles": [1, 3], "active": true, "licence_type": "concurrent"}),
            ),
            imported(
                4,
                &oid(3),
                json!({"name": "Disabled Agent", "roles": [1], "active": true, "licence_type": "concurrent"}),
            ),
        ],
        ..empty_desk()
    };
    let plan = run(&config(), vec![full_read(vec![leaver, disabled])], &desk);
    let leaver = find(&plan, Entity::Agent, &oid(2));
    assert_eq!(leaver.action, Action::Deactivate);
    assert_eq!(leaver.rule, "licence management");
    assert!(
        leaver
            .reason
            .contains("licence management: agent role 3 makes agents inactive"),
        "{}",
        leaver.reason
    );
    let disabled = find(&plan, Entity::Agent, &oid(3));
    assert_eq!(disabled.action, Action::Deactivate);
    assert_eq!(disabled.rule, "accountEnabled → inactive");
}

#[test]
fn a_deactivated_user_comes_back_when_enabled_again() {
    let config = simple_config();
    let desk = DeskSnapshot {
        users: vec![imported(1, &oid(1), json!({"name": "Ann Lee", "active": false}))],
        ..empty_desk()
    };
    let plan = run(
        &config,
        vec![full_read(vec![user(&oid(1), "Ann Lee").build()])],
        &desk,
    );
    let change = find(&plan, Entity::User, &oid(1));
    assert_eq!(change.action, Action::Reactivate);
    assert_eq!(
        change.fields["active"],
        FieldChange {
            before: json!(false),
            after: json!(true)
        }
    );
}

// ---------- not found, deletions, partial reads ----------

/// `count` users imported earlier as `user(oid(n), "User n")` maps them: reading them again changes
/// nothing.
fn desk_with_imported_users(count: u32) -> DeskSnapshot {
    DeskSnapshot {
        users: (1..=count)
            .map(|n| {
                imported(
                    i64::from(n),
                    &oid(n),
                    json!({"name": format!("User {n}"), "active": true, "site_id": 10,
                           "email": format!("user.{n}@contoso.com"), "network_login": format!("user.{n}@contoso.com")}),
                )
            })
            .collect(),
        ..empty_desk()
    }
}

#[test]
fn not_found_on_a_complete_full_read_is_deactivated() {
    let desk = desk_with_imported_users(20);
    let present: Vec<SourceUser> = (2..=20)
        .map(|n| user(&oid(n), &format!("User {n}")).build())
        .collect();
    let plan = run(&simple_config(), vec![full_read(present)], &desk);
    let gone = find(&plan, Entity::User, &oid(1));
    assert_eq!(gone.action, Action::Deactivate);
    assert_eq!(gone.rule, "deactivate users not found (full import)");
    assert_eq!(
        gone.reason,
        format!("Desk user User 1 (id 1): not found in the complete full read of tenant {TENANT}.")
    );
    assert_eq!(plan.counts.deactivated, 1);
    assert!(!plan.circuit_breaker[0].held);
}

#[test]
fn partial_or_failed_reads_deactivate_nobody() {
    let desk = desk_with_imported_users(20);
    for completeness in [Completeness::Partial, Completeness::Failed] {
        let mut read = full_read(
            (1..=5)
                .map(|n| user(&oid(n), &format!("User {n}")).build())
                .collect(),
        );
        read.completeness = completeness;
        let plan = run(&simple_config(), vec![read], &desk);
        assert!(
            plan.changes.iter().all(|c| c.action != Action::Deactivate),
            "{:#?}",
            plan.changes
        );
        assert_eq!(plan.notes.len(), 1);
        assert!(
            plan.notes[0].contains("records it did not see were not deactivated"),
            "{}",
            plan.notes[0]
        );
    }
}

#[test]
fn delta_removals_deactivate_both_kinds_with_distinct_reasons() {
    let desk = desk_with_imported_users(20);
    let read = TenantRead {
        mode: ReadMode::Delta,
        removed: vec![
            Removal {
                external_id: oid(1),
                reason: RemovalReason::Deleted,
            },
            Removal {
                external_id: oid(2),
                reason: RemovalReason::Changed,
            },
            Removal {
                external_id: oid(3),
                reason: RemovalReason::Deleted,
            },
        ],
        ..full_read(vec![user(&oid(3), "User 3").build()])
    };
    let plan = run(&simple_config(), vec![read.clone()], &desk);
    let hard = find(&plan, Entity::User, &oid(1));
    assert_eq!(hard.rule, "deactivate users deleted in Entra (delta)");
    assert!(
        hard.reason.contains("permanently deleted in Entra"),
        "{}",
        hard.reason
    );
    let soft = find(&plan, Entity::User, &oid(2));
    assert_eq!(soft.action, Action::Deactivate);
    assert!(soft.reason.contains("recycle bin"), "{}", soft.reason);
    assert!(
        plan.changes
            .iter()
            .all(|c| c.external_id != oid(3) || c.action != Action::Deactivate),
        "present wins"
    );
    assert_eq!(
        plan.counts.deactivated, 2,
        "users absent from a delta are not deactivated"
    );

    let mut config = simple_config();
    config.imports.deactivate_not_found = false;
    let plan = run(&config, vec![read], &desk);
    assert_eq!(plan.counts.deactivated, 0);
    assert!(
        plan.notes[0].contains("2 deletion(s) reported by delta were not applied"),
        "{:?}",
        plan.notes
    );
}

// ---------- circuit breaker and locks ----------

#[test]
fn a_tenant_whose_users_vanish_is_held_not_emptied() {
    let desk = desk_with_imported_users(40);
    let plan = run(
        &simple_config(),
        vec![full_read(vec![user(&oid(1), "User 1").build()])],
        &desk,
    );
    assert!(plan.is_held());
    assert_eq!(plan.changes.len(), 0, "nothing of the tenant is applied");
    assert_eq!(
        plan.held[0]
            .changes
            .iter()
            .filter(|c| c.action == Action::Deactivate)
            .count(),
        39
    );
    let verdict = &plan.circuit_breaker[0];
    assert!(verdict.held);
    assert_eq!((verdict.deactivations, verdict.active_records), (39, 40));
    assert_eq!(
        verdict.reason,
        "this run would deactivate 39 of 40 active records (97.5 %), more than the 20 % allowed; held for approval, nothing of this tenant is applied"
    );
    assert_eq!(plan.counts.deactivated, 0);
    let applied = apply_to_snapshot(&desk, &plan, CONNECTION).unwrap();
    assert!(applied.users.iter().all(DeskRecord::is_active));

    let mut approved = input(vec![full_read(vec![user(&oid(1), "User 1").build()])]);
    approved.approved_tenants.insert(TENANT.into());
    let plan = plan_with(&simple_config(), &approved, &desk);
    assert!(!plan.is_held());
    assert_eq!(plan.counts.deactivated, 39);
    assert!(
        plan.circuit_breaker[0]
            .reason
            .ends_with("approved by an administrator")
    );
}

fn plan_with(config: &MappingConfig, input: &PlanInput, desk: &DeskSnapshot) -> Plan {
    plan(&validated(config), input, desk, now())
}

#[test]
fn the_breaker_floor_lets_small_tenants_change() {
    let desk = desk_with_imported_users(4);
    let plan = run(&simple_config(), vec![full_read(vec![])], &desk);
    assert!(!plan.is_held(), "4 deactivations are below the floor of 10");
    assert_eq!(plan.counts.deactivated, 4);
    let mut config = simple_config();
    config.circuit_breaker.floor = 2;
    let plan = run(&config, vec![full_read(vec![])], &desk);
    assert!(plan.is_held());
}

#[test]
fn locks_skip_changes_and_say_which_lock() {
    let mut config = simple_config();
    config.field_locks = vec![FieldLock {
        entity: RecordKind::User,
        field: "job_title".into(),
    }];
    let mut record = imported(
        1,
        &oid(1),
        json!({"name": "Ann Lee", "active": true, "site_id": 10, "email": "old@contoso.com", "job_title": "Typed"}),
    );
    record.locks = RecordLocks {
        fields: ["email".to_owned()].into(),
        keep_active: true,
    };
    let desk = DeskSnapshot {
        users: vec![record],
        ..empty_desk()
    };
    let ann = user(&oid(1), "Ann Lee")
        .prop("jobTitle", json!("Buyer"))
        .disabled()
        .build();
    let plan = run(&config, vec![full_read(vec![ann.clone()])], &desk);
    let locks: BTreeMap<&str, &str> = plan
        .locked
        .iter()
        .map(|l| (l.field.as_str(), l.lock.as_str()))
        .collect();
    assert_eq!(locks["email"], "record lock: never overwrite 'email'");
    assert_eq!(
        locks["job_title"],
        "field lock: never overwrite 'job_title' on any user"
    );
    assert_eq!(locks["active"], "record lock: keep active");
    let change = find(&plan, Entity::User, &oid(1));
    assert_eq!(change.action, Action::Update);
    assert!(!change.fields.contains_key("email") && !change.fields.contains_key("active"));
    // Not found either: still kept active.
    let plan = run(&config, vec![full_read(vec![])], &desk);
    assert!(plan.changes.is_empty());
    assert_eq!(plan.locked[0].lock, "record lock: keep active");
}

#[test]
fn record_locks_from_the_configuration() {
    let mut config = simple_config();
    config.record_locks = vec![RecordLock {
        entity: RecordKind::User,
        external_id: oid(1).to_uppercase(),
        keep_active: true,
        fields: vec!["name".into()],
    }];
    let desk = DeskSnapshot {
        users: vec![imported(
            1,
            &oid(1),
            json!({"name": "Ann Lee", "active": true, "site_id": 10}),
        )],
        ..empty_desk()
    };
    let renamed = user(&oid(1), "Ann Renamed").disabled().build();
    let plan = run(&config, vec![full_read(vec![renamed])], &desk);
    let locks: BTreeMap<&str, &str> = plan
        .locked
        .iter()
        .map(|l| (l.field.as_str(), l.lock.as_str()))
        .collect();
    assert_eq!(
        locks["name"],
        "record lock (configuration): never overwrite 'name'"
    );
    assert_eq!(locks["active"], "record lock (configuration): keep active");
    let change = find(&plan, Entity::User, &oid(1));
    assert_eq!(change.action, Action::Update, "the email and login still change");
    assert!(!change.fields.contains_key("name") && !change.fields.contains_key("active"));
    let gone = run(&config, vec![full_read(vec![])], &desk);
    assert!(gone.changes.is_empty(), "kept active when not found either");
}

// ---------- errors ----------

#[test]
fn bad_values_become_plan_errors_and_nothing_panics() {
    let mut config = simple_config();
    config
        .user_fields
        .push(FieldMapping::property("employeeType", "custom:Tier"));
    config.site_mappings[0].filter = Some("employeeHireDate gt 2020-01-01T00:00:00Z".into());
    let odd_tier = user(&oid(1), "Odd Tier")
        .prop("employeeType", json!("Platinum"))
        .prop("employeeHireDate", json!("2021-05-01T00:00:00Z"))
        .build();
    let odd_date = user(&oid(2), "Odd Date")
        .prop("employeeHireDate", json!("last spring"))
        .build();
    let plan = run(&config, vec![full_read(vec![odd_tier, odd_date])], &empty_desk());
    assert_eq!(plan.errors.len(), 2, "{:#?}", plan.errors);
    assert_eq!(
        plan.errors[0].message,
        "custom:Tier: field mapping #11 (employeeType): \"Platinum\" is not one of the options (Gold, Silver); field left as it is"
    );
    assert_eq!(
        plan.errors[1].message,
        "site mapping #1 'All users' (seq 50): the filter `employeeHireDate gt 2020-01-01T00:00:00Z` cannot be evaluated: the value \"last spring\" cannot be read as a date-time"
    );
    let created = find(&plan, Entity::User, &oid(1));
    assert!(!created.fields.contains_key("custom:Tier"));
    assert!(plan.changes.iter().all(|c| c.external_id != oid(2)));
    assert_eq!(plan.counts.errors, 2);
}

#[test]
fn duplicate_users_in_a_read_are_planned_once_or_not_at_all() {
    let replay = vec![user(&oid(1), "A").build(), user(&oid(1), "A").build()];
    let plan = run(&simple_config(), vec![full_read(replay)], &empty_desk());
    assert_eq!(plan.changes.len(), 1);
    assert!(plan.errors.is_empty());
    let disagreeing = vec![user(&oid(1), "A").build(), user(&oid(1), "B").build()];
    let plan = run(&simple_config(), vec![full_read(disagreeing)], &empty_desk());
    assert!(plan.changes.is_empty());
    assert_eq!(
        plan.errors[0].message,
        "the user appears 2 times in the read with different content; not planned"
    );
}

#[test]
fn two_desk_records_with_one_azure_id_are_never_deactivated_by_guess() {
    let desk = DeskSnapshot {
        users: vec![
            imported(1, &oid(1), json!({"name": "A"})),
            imported(2, &oid(1), json!({"name": "A copy"})),
        ],
        ..empty_desk()
    };
    let plan = run(&simple_config(), vec![full_read(vec![])], &desk);
    assert!(plan.changes.is_empty());
    assert_eq!(
        plan.errors[0].message,
        format!(
            "2 desk users carry Azure object id {} (ids 1, 2); none is deactivated, resolve by hand",
            oid(1)
        )
    );
}

// ---------- followers ----------

#[test]
fn distribution_groups_as_followers_in_both_modes() {
    let desk = DeskSnapshot {
        users: vec![imported(4, &oid(1), json!({"name": "Ann"}))],
        ..empty_desk()
    };
    let group = DistributionGroup {
        name: "Project X".into(),
        mail: Some("projectx@contoso.com".into()),
        members: vec![
            GroupMember {
                external_id: oid(1),
                mail: Some("ann@contoso.com".into()),
            },
            GroupMember {
                external_id: oid(2),
                mail: Some("bob@contoso.com".into()),
            },
            GroupMember {
                external_id: oid(3),
                mail: None,
            },
            GroupMember {
                external_id: oid(4),
                mail: Some("dee@contoso.com".into()),
            },
        ],
    };
    let mut options = FollowerOptions {
        enabled: true,
        ..FollowerOptions::default()
    };
    let by_address = followers_for_group(&options, &group, &desk, CONNECTION).unwrap();
    assert_eq!(by_address.followers, vec!["email:projectx@contoso.com"]);
    options.mode = FollowerMode::Members;
    options.member_cap = 3;
    let members = followers_for_group(&options, &group, &desk, CONNECTION).unwrap();
    assert_eq!(members.followers, vec!["user:4", "email:bob@contoso.com"]);
    assert_eq!((members.over_cap, members.unreachable), (1, 1));
    options.enabled = false;
    assert_eq!(
        followers_for_group(&options, &group, &desk, CONNECTION).unwrap_err(),
        FollowerError::Disabled
    );
    let no_mail = DistributionGroup { mail: None, ..group };
    let options = FollowerOptions {
        enabled: true,
        ..FollowerOptions::default()
    };
    assert_eq!(
        followers_for_group(&options, &no_mail, &desk, CONNECTION)
            .unwrap_err()
            .to_string(),
        "the group 'Project X' has no email address, so it cannot follow as a list"
    );
}

// ---------- apply errors ----------

#[test]
fn apply_rejects_plans_that_do_not_fit_the_snapshot() {
    let desk = empty_desk();
    let mut plan = run(
        &simple_config(),
        vec![full_read(vec![user(&oid(1), "Ann Lee").build()])],
        &desk,
    );
    let mut update = plan.changes[0].clone();
    update.action = Action::Update;
    let mut broken = plan.clone();
    broken.changes = vec![update.clone()];
    let error = apply_to_snapshot(&desk, &broken, CONNECTION).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "the user change for '{}' updates a record, but the plan names none",
            oid(1)
        )
    );
    assert_eq!(
        deskbridge_core::HasErrorCode::error_code(&error),
        deskbridge_core::ErrorCode::Internal
    );

    broken
        .targets
        .insert(Plan::target_key(Entity::User, &oid(1)), RecordId(99));
    assert_eq!(
        apply_to_snapshot(&desk, &broken, CONNECTION).unwrap_err(),
        ApplyError::UnknownRecord {
            entity: "user",
            id: RecordId(99)
        }
    );

    let create = &mut plan.changes[0];
    create.fields.insert(
        "line_manager_id".into(),
        FieldChange {
            before: Value::Null,
            after: json!({"user": "not-in-this-plan"}),
        },
    );
    assert_eq!(
        apply_to_snapshot(&desk, &plan, CONNECTION)
            .unwrap_err()
            .to_string(),
        format!(
            "the user '{}' field 'line_manager_id' refers to {{\"user\":\"not-in-this-plan\"}}, which neither exists nor is created by the plan",
            oid(1)
        )
    );
}

#[test]
fn plan_json_keeps_the_cli_change_shape() {
    let plan = run(
        &simple_config(),
        vec![full_read(vec![user(&oid(1), "Ann Lee").build()])],
        &empty_desk(),
    );
    let json = serde_json::to_value(&plan).unwrap();
    let change = json["changes"][0].as_object().unwrap();
    let keys: Vec<&str> = change.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        vec![
            "entity",
            "external_id",
            "name",
            "action",
            "fields",
            "rule",
            "reason"
        ]
    );
    assert_eq!(change["entity"], json!("user"));
    assert_eq!(
        change["external_id"],
        json!(oid(1)),
        "the id stays beside the name"
    );
    assert_eq!(change["name"], json!("Ann Lee"));
    assert_eq!(change["action"], json!("create"));
    assert_eq!(
        change["fields"]["name"],
        json!({"before": null, "after": "Ann Lee"})
    );
    for key in [
        "created",
        "updated",
        "deactivated",
        "unchanged",
        "conflicts",
        "errors",
    ] {
        assert!(json["counts"][key].is_u64(), "{key}");
    }
    let back: Plan = serde_json::from_value(json).unwrap();
    assert_eq!(back, plan);
}

// ---------- pages ----------

#[test]
fn pages_put_every_created_reference_first_and_apply_page_by_page() {
    // Sorted by object id the subordinates (1, 2) come before their manager (9), and the agent
    // lead (8) after the agent (3) it manages.
    let people = vec![
        user(&oid(1), "Ann Lee")
            .groups(&["Loc-London"])
            .manager(&oid(9))
            .build(),
        user(&oid(2), "Bri Stol")
            .prop("city", json!("Bristol"))
            .manager(&oid(9))
            .build(),
        user(&oid(3), "Desk Agent")
            .groups(&["IT Service Desk"])
            .manager(&oid(8))
            .build(),
        user(&oid(8), "Lead Agent").groups(&["IT Service Desk"]).build(),
        user(&oid(9), "Boss").groups(&["Loc-London"]).build(),
    ];
    let plan = run(&config(), vec![full_read(people.clone())], &empty_desk());
    let pages = plan.pages(1);
    assert_eq!(pages.iter().map(Vec::len).sum::<usize>(), plan.writes().count());
    let position = |entity: Entity, id: &str| {
        pages
            .iter()
            .position(|page| page.iter().any(|c| c.entity == entity && c.external_id == id))
            .unwrap()
    };
    assert!(position(Entity::User, &oid(9)) < position(Entity::User, &oid(1)));
    assert!(position(Entity::Site, "1/Bristol") < position(Entity::User, &oid(2)));
    assert!(position(Entity::Agent, &oid(8)) < position(Entity::Agent, &oid(3)));

    let mut desk = empty_desk();
    for page in &pages {
        let one_page = Plan {
            changes: page.clone(),
            ..plan.clone()
        };
        desk = apply_to_snapshot(&desk, &one_page, CONNECTION).unwrap();
    }
    let again = run(&config(), vec![full_read(people)], &desk);
    assert_eq!(again.writes().count(), 0, "{:#?}", again.changes);
}

#[test]
fn references_in_a_cycle_share_one_page() {
    let mut config = config();
    config.site_mappings.retain(|m| m.id == 1);
    // Agents only: without a main site for the tenant's customer, the agent site's people are not
    // users too (see the test of an agent whose user mapping says do not import).
    let mut no_main = empty_desk();
    no_main.sites.retain(|s| !s.is_main);
    let people = vec![
        user(&oid(1), "Agent One")
            .groups(&["IT Service Desk"])
            .manager(&oid(2))
            .build(),
        user(&oid(2), "Agent Two")
            .groups(&["IT Service Desk"])
            .manager(&oid(1))
            .build(),
        user(&oid(3), "Agent Three").groups(&["IT Service Desk"]).build(),
    ];
    let plan = run(&config, vec![full_read(people)], &no_main);
    let pages = plan.pages(1);
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0][0].external_id, oid(3));
    let cycle: Vec<&str> = pages[1].iter().map(|c| c.external_id.as_str()).collect();
    assert_eq!(cycle, vec![oid(1), oid(2)]);
    let desk = apply_to_snapshot(
        &no_main,
        &Plan {
            changes: pages[1].clone(),
            ..plan.clone()
        },
        CONNECTION,
    )
    .unwrap();
    assert_eq!(desk.agents.len(), 2);
    assert_eq!(plan.pages(0).len(), 2, "a page holds at least one change");
}

// ---------- licences ----------

fn sku(id: &str, part: &str, enabled: i64, consumed: i64) -> SubscribedSku {
    SubscribedSku {
        sku_id: id.into(),
        sku_part_number: part.into(),
        friendly_name: None,
        enabled_units: Some(enabled),
        consumed_units: Some(consumed),
        capability_status: Some("Enabled".into()),
    }
}

#[test]
fn subscribed_skus_become_licences_and_users_link_to_new_ones_by_reference() {
    const VISIO: &str = "c5928f49-12ba-48f7-ada3-0d743a3601d5";
    let mut desk = empty_desk();
    desk.licences[0].fields = BTreeMap::from([
        ("part_number".to_owned(), json!("ENTERPRISEPACK")),
        ("total_units".to_owned(), json!(10)),
    ]);
    let mut read = full_read(vec![user(&oid(1), "Ann Lee").skus(&[E3, VISIO]).build()]);
    read.subscribed_skus = Some(vec![
        sku(VISIO, "VISIOCLIENT", 5, 1),
        sku(E3, "ENTERPRISEPACK", 25, 20),
    ]);
    let plan = run(&simple_config(), vec![read.clone()], &desk);

    let visio = find(&plan, Entity::Licence, &format!("1/{VISIO}"));
    assert_eq!(visio.action, Action::Create);
    assert_eq!(visio.rule, "licence import");
    assert_eq!(after(visio, "friendly_name"), json!("VISIOCLIENT"));
    assert_eq!(after(visio, "customer_id"), json!(1));
    assert_eq!(after(visio, "total_units"), json!(5));
    let e3 = find(&plan, Entity::Licence, &format!("1/{E3}"));
    assert_eq!(e3.action, Action::Update);
    assert_eq!(
        e3.fields["total_units"],
        FieldChange {
            before: json!(10),
            after: json!(25)
        }
    );
    assert!(
        !e3.fields.contains_key("friendly_name"),
        "an administrator's licence name is kept"
    );
    assert_eq!(plan.target_of(e3), Some(RecordId(1)));
    let ann = find(&plan, Entity::User, &oid(1));
    assert_eq!(
        after(ann, "licences"),
        json!([1, {"licence": {"customer_id": 1, "sku_id": VISIO}}])
    );

    let pages = plan.pages(1);
    assert_eq!(
        pages[0][0].entity,
        Entity::Licence,
        "licences are created before the users linking them"
    );
    let applied = assert_converges(&simple_config(), vec![read], &desk);
    let visio_id = applied.licences.iter().find(|l| l.sku_id == VISIO).unwrap().id;
    let ann = applied
        .users
        .iter()
        .find(|u| u.source.as_ref().unwrap().external_id == oid(1))
        .unwrap();
    assert_eq!(ann.fields["licences"], json!([1, visio_id.0]));
}
