#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The page-wise planner: a tenant read a page at a time, as the streaming pipeline drives it,
//! and what only the tenant's end decides.

mod common;

use std::collections::BTreeSet;

use common::*;
use deskbridge_core::RecordId;
use deskbridge_mapping::*;
use serde_json::{Value, json};

fn simple_config() -> ValidatedConfig {
    let mut config = MappingConfig::generated(RecordId(10));
    config.imports.deactivate_not_found = true;
    validated(&config)
}

/// A tenant driven step by step, applying each step's plan to `desk` when `apply` is set (a
/// sync) and never otherwise (a preview).
struct Run<'c> {
    planner: RunPlanner<'c>,
    desk: DeskSnapshot,
    apply: bool,
    steps: Vec<Plan>,
}

impl<'c> Run<'c> {
    fn begin(config: &'c ValidatedConfig, desk: DeskSnapshot, mode: ReadMode, apply: bool) -> Self {
        let mut planner = RunPlanner::new(config, CONNECTION, BTreeSet::new(), now());
        let header = TenantHeader {
            tenant_id: TENANT.into(),
            customer_id: Some(RecordId(1)),
            mode,
            active_records: planner.finish_records(TENANT, &desk).active_count(TENANT),
        };
        let licences = planner.begin_tenant(&header, Default::default(), &desk);
        let mut run = Self {
            planner,
            desk,
            apply,
            steps: Vec::new(),
        };
        run.record(licences);
        run
    }

    fn record(&mut self, plan: Plan) -> &Plan {
        if self.apply {
            self.desk = apply_to_snapshot(&self.desk, &plan, CONNECTION).unwrap();
        }
        self.steps.push(plan);
        self.steps.last().unwrap()
    }

    fn page(&mut self, users: Vec<SourceUser>, removed: Vec<Removal>) -> &Plan {
        let page_desk = self.planner.lookups(&users).select(&self.desk, CONNECTION);
        let plan = self.planner.plan_page(TENANT, &users, &removed, &page_desk);
        self.record(plan)
    }

    fn finish(&mut self, completeness: Completeness) -> &Plan {
        let records = self.planner.finish_records(TENANT, &self.desk);
        let plan = self.planner.finish_tenant(TENANT, completeness, &records);
        self.record(plan)
    }

    fn joined(&self) -> Plan {
        let mut steps = self.steps.iter().cloned();
        let mut joined = steps.next().unwrap();
        steps.for_each(|step| joined.absorb(step));
        joined
    }
}

fn find<'p>(plan: &'p Plan, entity: Entity, external_id: &str) -> Option<&'p Change> {
    plan.changes
        .iter()
        .find(|c| c.entity == entity && c.external_id == external_id)
}

fn imported_users(count: u32) -> DeskSnapshot {
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
fn a_manager_in_a_later_page_is_linked_at_the_end() {
    let config = validated(&common::config());
    for apply in [false, true] {
        let mut run = Run::begin(&config, empty_desk(), ReadMode::Full, apply);
        let report = user(&oid(1), "Ann Lee")
            .groups(&["Loc-London"])
            .manager(&oid(9))
            .build();
        let page = run.page(vec![report], vec![]).clone();
        let created = find(&page, Entity::User, &oid(1)).unwrap();
        assert_eq!(created.action, Action::Create);
        assert!(
            !created.fields.contains_key("line_manager_id"),
            "the manager is not known yet: left to the end"
        );
        let boss = user(&oid(9), "Big Boss").groups(&["Loc-London"]).build();
        run.page(vec![boss], vec![]);
        let end = run.finish(Completeness::Complete).clone();
        let link = find(&end, Entity::User, &oid(1)).unwrap();
        assert_eq!(link.action, Action::Update);
        assert_eq!(
            link.fields["line_manager_id"],
            FieldChange {
                before: Value::Null,
                after: json!({"user": oid(9)})
            }
        );
        assert_eq!(
            end.target_of(link),
            None,
            "created by this run: applied by external id"
        );
        let desk = if apply {
            run.desk.clone()
        } else {
            apply_to_snapshot(&empty_desk(), &run.joined(), CONNECTION).unwrap()
        };
        let id_of = |n: u32| {
            desk.users
                .iter()
                .find(|u| u.source.as_ref().unwrap().external_id == oid(n))
                .unwrap()
                .id
        };
        let ann = desk.users.iter().find(|u| u.id == id_of(1)).unwrap();
        assert_eq!(ann.fields["line_manager_id"], json!(id_of(9).0));
        let pages = run.joined().pages(1);
        let position = |action: Action| {
            pages
                .iter()
                .position(|p| p.iter().any(|c| c.external_id == oid(1) && c.action == action))
                .unwrap()
        };
        assert!(position(Action::Create) < position(Action::Update));
    }
}

#[test]
fn a_desk_record_matched_again_in_a_later_page_is_a_conflict_and_stays_linked() {
    let config = simple_config();
    let desk = DeskSnapshot {
        users: vec![manual(5, json!({"name": "Shared", "email": "desk@contoso.com"}))],
        ..empty_desk()
    };
    let mut plans = Vec::new();
    for apply in [false, true] {
        let mut run = Run::begin(&config, desk.clone(), ReadMode::Full, apply);
        let first = user(&oid(1), "One")
            .prop("mail", json!("desk@contoso.com"))
            .build();
        let page = run.page(vec![first], vec![]).clone();
        let link = find(&page, Entity::User, &oid(1)).unwrap();
        assert_eq!(link.action, Action::Link);
        assert_eq!(page.target_of(link), Some(RecordId(5)));
        let second = user(&oid(2), "Two")
            .prop("mail", json!("desk@contoso.com"))
            .build();
        let page = run.page(vec![second], vec![]).clone();
        let conflict = find(&page, Entity::User, &oid(2)).unwrap();
        assert_eq!(conflict.action, Action::Conflict);
        assert_eq!(conflict.rule, "user matching (email)");
        assert_eq!(
            conflict.reason,
            format!(
                "Two: desk user Shared (id 5) was linked earlier in this run to {} and also fits on email 'desk@contoso.com'; not linked, resolve by hand",
                oid(1)
            )
        );
        run.finish(Completeness::Complete);
        plans.push(serde_json::to_value(run.joined()).unwrap());
    }
    assert_eq!(plans[0], plans[1], "a preview plans what a sync does");
}

#[test]
fn a_record_contested_within_a_page_stays_contested_in_later_pages() {
    let config = simple_config();
    let desk = DeskSnapshot {
        users: vec![manual(5, json!({"name": "Shared", "email": "desk@contoso.com"}))],
        ..empty_desk()
    };
    let mut run = Run::begin(&config, desk, ReadMode::Full, true);
    let fits = |n: u32| {
        user(&oid(n), &format!("User {n}"))
            .prop("mail", json!("desk@contoso.com"))
            .build()
    };
    let page = run.page(vec![fits(1), fits(2)], vec![]).clone();
    assert_eq!(page.counts.conflicts, 2);
    let page = run.page(vec![fits(3)], vec![]).clone();
    let conflict = find(&page, Entity::User, &oid(3)).unwrap();
    assert_eq!(conflict.action, Action::Conflict);
    assert!(
        conflict.reason.contains("fits several source users of this run"),
        "{}",
        conflict.reason
    );
}

#[test]
fn a_partial_read_in_pages_deactivates_nobody() {
    let config = simple_config();
    let mut run = Run::begin(&config, imported_users(20), ReadMode::Full, true);
    run.page(
        (1..=3)
            .map(|n| user(&oid(n), &format!("User {n}")).build())
            .collect(),
        vec![],
    );
    run.page(vec![user(&oid(4), "User 4").build()], vec![]);
    let end = run.finish(Completeness::Partial).clone();
    assert!(end.changes.is_empty(), "{:#?}", end.changes);
    assert!(!end.is_held());
    assert_eq!(end.circuit_breaker[0].deactivations, 0);
    assert_eq!(
        end.notes,
        vec![format!(
            "tenant {TENANT}: the full read was partial; records it did not see were not deactivated"
        )]
    );
}

#[test]
fn the_breaker_holds_only_the_deactivations_and_the_tickets_they_reassign() {
    let mut settings = common::config();
    settings.site_mappings.retain(|m| m.id == 1 || m.id == 2);
    settings.advanced.full_role_management = false;
    let config = validated(&settings);
    let mut desk = imported_users(30);
    for record in &mut desk.users {
        record.fields.insert("site_id".into(), json!(11));
    }
    desk.agents = vec![imported(
        40,
        &oid(40),
        json!({"name": "Agent Forty", "active": true, "roles": [1], "licence_type": "concurrent"}),
    )];
    desk.tickets = vec![DeskTicket {
        id: RecordId(500),
        agent_id: Some(RecordId(40)),
        team_id: None,
        followers: vec![],
    }];
    let mut run = Run::begin(&config, desk, ReadMode::Full, true);
    // User 1 changes name (an update: deferred to the end, and applied there since one update is
    // no mass change); user 2 is disabled (deferred too); everyone else, the agent included, is
    // gone.
    let renamed = user(&oid(1), "User One")
        .groups(&["Loc-London"])
        .prop("mail", json!("user.1@contoso.com"))
        .prop("userPrincipalName", json!("user.1@contoso.com"))
        .build();
    let disabled = user(&oid(2), "User 2")
        .groups(&["Loc-London"])
        .prop("mail", json!("user.2@contoso.com"))
        .prop("userPrincipalName", json!("user.2@contoso.com"))
        .disabled()
        .build();
    let page = run.page(vec![renamed, disabled], vec![]).clone();
    assert!(
        page.changes.is_empty(),
        "an update and a deactivation wait for the breaker: {:#?}",
        page.changes
    );
    let end = run.finish(Completeness::Complete).clone();
    let verdict = &end.circuit_breaker[0];
    assert!(verdict.held);
    assert_eq!((verdict.deactivations, verdict.active_records), (30, 31));
    assert!(
        verdict.reason.ends_with(
            "its deactivations (and the tickets they re-assign) are held for approval, the rest of the tenant is applied"
        ),
        "{}",
        verdict.reason
    );
    let renamed = find(&end, Entity::User, &oid(1)).unwrap();
    assert_eq!(renamed.action, Action::Update);
    assert_eq!(
        end.changes.len(),
        1,
        "only the update applies: {:#?}",
        end.changes
    );
    let held = &end.held[0].changes;
    assert!(
        held.iter()
            .all(|c| c.action == Action::Deactivate || c.entity == Entity::Ticket)
    );
    assert_eq!(held.iter().filter(|c| c.action == Action::Deactivate).count(), 30);
    let disabled = held.iter().find(|c| c.external_id == oid(2)).unwrap();
    assert_eq!(disabled.rule, "accountEnabled → inactive");
    let ticket = held.iter().find(|c| c.entity == Entity::Ticket).unwrap();
    assert_eq!(ticket.external_id, "500");
    assert_eq!(end.counts.deactivated, 0);
    let renamed = run.desk.users.iter().find(|u| u.id == RecordId(1)).unwrap();
    assert_eq!(renamed.fields["name"], json!("User One"), "applied at the end");
    assert!(
        run.desk.users.iter().all(DeskRecord::is_active),
        "nothing held was applied"
    );
}

#[test]
fn a_user_replayed_in_a_later_page_is_planned_once_and_a_differing_copy_is_an_error() {
    let config = simple_config();
    let mut run = Run::begin(&config, empty_desk(), ReadMode::Full, false);
    let ann = user(&oid(1), "Ann Lee").build();
    let first = run.page(vec![ann.clone()], vec![]).clone();
    assert_eq!(
        find(&first, Entity::User, &oid(1)).unwrap().action,
        Action::Create
    );
    let replay = run
        .page(vec![ann, user(&oid(2), "Bob Roe").build()], vec![])
        .clone();
    assert!(find(&replay, Entity::User, &oid(1)).is_none(), "planned once");
    assert!(replay.errors.is_empty());
    let differing = run.page(vec![user(&oid(1), "Ann Other").build()], vec![]).clone();
    assert!(differing.changes.is_empty());
    assert_eq!(
        differing.errors[0].message,
        "the user was read again in this run with content that differs from the copy planned before; this copy is not planned"
    );
    assert_eq!(differing.errors[0].external_id, oid(1));
    let end = run.finish(Completeness::Complete).clone();
    assert!(
        end.changes.is_empty(),
        "the replayed user was seen: {:#?}",
        end.changes
    );
}

#[test]
fn delta_removals_in_pages_are_deactivated_at_the_end_unless_read_again() {
    let config = simple_config();
    let mut run = Run::begin(&config, imported_users(20), ReadMode::Delta, true);
    let removed = vec![
        Removal {
            external_id: oid(1),
            reason: RemovalReason::Deleted,
        },
        Removal {
            external_id: oid(2),
            reason: RemovalReason::Changed,
        },
    ];
    let page = run.page(vec![], removed).clone();
    assert!(page.changes.is_empty(), "removals wait for the end");
    // A later page restores user 2.
    let restored = user(&oid(2), "User 2")
        .prop("mail", json!("user.2@contoso.com"))
        .prop("userPrincipalName", json!("user.2@contoso.com"))
        .build();
    run.page(vec![restored], vec![]);
    let lookups = run.planner.finish_lookups(TENANT);
    assert_eq!(lookups.external_ids, BTreeSet::from([oid(1)]));
    let end = run.finish(Completeness::Complete).clone();
    let gone = find(&end, Entity::User, &oid(1)).unwrap();
    assert_eq!(gone.action, Action::Deactivate);
    assert_eq!(gone.rule, "deactivate users deleted in Entra (delta)");
    assert!(
        find(&end, Entity::User, &oid(2)).is_none(),
        "read again: a restore wins"
    );
    assert_eq!(
        end.counts.deactivated, 1,
        "absent from a delta is not deactivated"
    );
    assert!(!run.desk.users[0].is_active());
}

#[test]
fn lookups_name_the_users_their_managers_and_the_match_values() {
    let config = simple_config();
    let planner = RunPlanner::new(&config, CONNECTION, BTreeSet::new(), now());
    let ann = user(&oid(1).to_uppercase(), "Ann Lee")
        .prop("mail", json!(" Ann.Lee@Contoso.com "))
        .manager(&oid(9))
        .build();
    let lookups = planner.lookups(&[ann]);
    assert_eq!(lookups.external_ids, BTreeSet::from([oid(1), oid(9)]));
    assert_eq!(
        lookups.match_values[&MatchField::Email],
        BTreeSet::from(["ann.lee@contoso.com".to_owned()])
    );
    let desk = DeskSnapshot {
        users: vec![
            manual(1, json!({"name": "Someone", "email": "ANN.LEE@contoso.com"})),
            manual(2, json!({"name": "Else", "email": "else@contoso.com"})),
            imported(3, &oid(9), json!({"name": "Boss"})),
        ],
        ..empty_desk()
    };
    let ids: Vec<i64> = lookups
        .select(&desk, CONNECTION)
        .users
        .iter()
        .map(|u| u.id.0)
        .collect();
    assert_eq!(ids, vec![1, 3]);
}

#[test]
fn a_page_before_begin_tenant_plans_nothing_and_says_so() {
    let config = simple_config();
    let mut planner = RunPlanner::new(&config, CONNECTION, BTreeSet::new(), now());
    let plan = planner.plan_page(TENANT, &[user(&oid(1), "Ann").build()], &[], &empty_desk());
    assert!(plan.changes.is_empty());
    assert_eq!(
        plan.errors[0].message,
        "the tenant was planned before begin_tenant; nothing of it is planned"
    );
}
