#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The circuit breaker on mass changes: a run that would move more than the configured share of
//! a tenant's active records to another site, or change more than that share of any one field,
//! is held for approval like a mass deactivation — in the whole plan (the tenant whole) and in
//! the page-wise run (the deferred updates; the rest applies).

mod common;

use std::collections::BTreeSet;

use common::*;
use deskbridge_core::RecordId;
use deskbridge_mapping::*;
use proptest::prelude::*;
use serde_json::json;

fn config() -> MappingConfig {
    let mut config = MappingConfig::generated(RecordId(10));
    config.imports.deactivate_not_found = true;
    config
}

/// `count` users this connection imported earlier, all at site 10 with no department.
fn desk(count: u32) -> DeskSnapshot {
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

/// The `count` users as read, the first `sales` of them now in the Sales department.
fn read(count: u32, sales: u32) -> Vec<SourceUser> {
    (1..=count)
        .map(|n| {
            let user = user(&oid(n), &format!("User {n}"));
            if n <= sales {
                user.prop("department", json!("Sales")).build()
            } else {
                user.build()
            }
        })
        .collect()
}

fn whole(config: &MappingConfig, users: Vec<SourceUser>, desk: &DeskSnapshot, approved: bool) -> Plan {
    let mut input = input(vec![full_read(users)]);
    if approved {
        input.approved_tenants.insert(TENANT.into());
    }
    plan(&validated(config), &input, desk, now())
}

fn departments(desk: &DeskSnapshot) -> usize {
    desk.users
        .iter()
        .filter(|u| u.fields.get("department") == Some(&json!("Sales")))
        .count()
}

#[test]
fn a_mass_field_change_holds_the_whole_tenant_with_a_reason_naming_the_field() {
    let desk = desk(40);
    let plan = whole(&config(), read(40, 20), &desk, false);
    assert!(plan.is_held());
    assert!(
        plan.changes.is_empty(),
        "nothing of the tenant is applied: {:#?}",
        plan.changes
    );
    let verdict = &plan.circuit_breaker[0];
    assert!(verdict.held);
    assert_eq!(verdict.field_changes.get("department"), Some(&20));
    assert_eq!(
        (verdict.moves, verdict.deactivations, verdict.active_records),
        (0, 0, 40)
    );
    assert_eq!(
        verdict.reason,
        "this run would change `department` on 20 of 40 active records (50.0 %), more than the 30 % allowed; \
         held for approval, nothing of this tenant is applied"
    );
    let held = &plan.held[0];
    assert_eq!(held.reason, verdict.reason);
    assert_eq!(held.changes.len(), 20, "the plan to review: every held update");
    assert!(
        held.changes
            .iter()
            .all(|c| c.action == Action::Update && c.fields["department"].after == json!("Sales"))
    );
    let applied = apply_to_snapshot(&desk, &plan, CONNECTION).unwrap();
    assert_eq!(departments(&applied), 0, "nothing changed");

    // Approved, the same changes go through.
    let approved = whole(&config(), read(40, 20), &desk, true);
    assert!(!approved.is_held());
    assert_eq!(approved.counts.updated, 20);
    assert!(
        approved.circuit_breaker[0]
            .reason
            .ends_with("; approved by an administrator")
    );
    let applied = apply_to_snapshot(&desk, &approved, CONNECTION).unwrap();
    assert_eq!(departments(&applied), 20);
}

#[test]
fn changes_within_the_share_or_the_floor_are_applied() {
    // 12 of 40 is 30 %: not more than allowed.
    let plan = whole(&config(), read(40, 12), &desk(40), false);
    assert!(!plan.is_held(), "{:?}", plan.circuit_breaker);
    assert_eq!(plan.counts.updated, 12);
    assert_eq!(
        plan.circuit_breaker[0].reason,
        "0 deactivation(s) of 40 active records (0.0 %): not more than the floor of 10, so the breaker does not trip; \
         0 move(s) to another site and at most 12 change(s) of one field: within the 30 % allowed"
    );
    // 10 of 11 is 91 %, but not more than the floor of 10.
    let plan = whole(&config(), read(11, 10), &desk(11), false);
    assert!(!plan.is_held(), "{:?}", plan.circuit_breaker);
    assert_eq!(plan.counts.updated, 10);
    assert!(
        plan.circuit_breaker[0]
            .reason
            .ends_with("at most 10 change(s) of one field: not more than the floor of 10"),
        "{}",
        plan.circuit_breaker[0].reason
    );
    // With a lower floor, the same run is held.
    let mut low = config();
    low.circuit_breaker.floor = 2;
    assert!(whole(&low, read(11, 10), &desk(11), false).is_held());
    // And with a share of 100 %, never.
    let mut lax = config();
    lax.circuit_breaker.max_change_percent = 100.0;
    assert!(!whole(&lax, read(40, 40), &desk(40), false).is_held());
}

#[test]
fn moving_most_users_to_another_site_is_held() {
    let mut moved = config();
    moved.site_mappings[0].target = SiteTarget::ExistingSite {
        site_id: RecordId(11),
    };
    let desk = desk(30);
    let plan = whole(&moved, read(30, 0), &desk, false);
    assert!(plan.is_held());
    let verdict = &plan.circuit_breaker[0];
    assert_eq!(verdict.moves, 30);
    assert!(
        !verdict.field_changes.contains_key("site_id"),
        "a move is counted as a move"
    );
    assert!(
        verdict.reason.starts_with(
            "this run would move 30 of 30 active records (100.0 %) to another site, more than the 30 % allowed"
        ),
        "{}",
        verdict.reason
    );
    let applied = apply_to_snapshot(&desk, &plan, CONNECTION).unwrap();
    assert!(applied.users.iter().all(|u| u.fields["site_id"] == json!(10)));
}

#[test]
fn updates_of_inactive_records_are_not_weighed_against_the_active_ones() {
    let mut desk = desk(40);
    for record in &mut desk.users[10..] {
        record.fields.insert("active".into(), json!(false));
    }
    let users: Vec<SourceUser> = (1..=40)
        .map(|n| {
            let user = user(&oid(n), &format!("User {n}")).prop("department", json!("Sales"));
            if n > 10 {
                user.disabled().build()
            } else {
                user.build()
            }
        })
        .collect();
    let plan = whole(&config(), users, &desk, false);
    let verdict = &plan.circuit_breaker[0];
    assert_eq!(
        (verdict.active_records, verdict.field_changes["department"]),
        (10, 10)
    );
    assert!(
        !plan.is_held(),
        "10 changes are not more than the floor: {}",
        verdict.reason
    );
    assert_eq!(plan.counts.updated, 40, "the inactive records' updates apply too");
}

/// One tenant read a page at a time, each step applied to the desk before the next.
struct Pages<'c> {
    planner: RunPlanner<'c>,
    desk: DeskSnapshot,
    steps: Vec<Plan>,
}

impl<'c> Pages<'c> {
    fn begin(config: &'c ValidatedConfig, desk: DeskSnapshot, approved: bool) -> Self {
        let approved: BTreeSet<String> = approved.then(|| TENANT.to_owned()).into_iter().collect();
        let mut planner = RunPlanner::new(config, CONNECTION, approved, now());
        let header = TenantHeader {
            tenant_id: TENANT.into(),
            customer_id: Some(RecordId(1)),
            mode: ReadMode::Full,
            active_records: planner.finish_records(TENANT, &desk).active_count(TENANT),
        };
        let licences = planner.begin_tenant(&header, Default::default(), &desk);
        let mut run = Self {
            planner,
            desk,
            steps: Vec::new(),
        };
        run.apply(licences);
        run
    }

    fn apply(&mut self, plan: Plan) {
        self.desk = apply_to_snapshot(&self.desk, &plan, CONNECTION).unwrap();
        self.steps.push(plan);
    }

    fn run(mut self, users: Vec<SourceUser>, page_size: usize) -> (DeskSnapshot, Vec<Plan>) {
        for page in users.chunks(page_size.max(1)) {
            let page_desk = self.planner.lookups(page).select(&self.desk, CONNECTION);
            let plan = self.planner.plan_page(TENANT, page, &[], &page_desk);
            self.apply(plan);
        }
        let records = self.planner.finish_records(TENANT, &self.desk);
        let end = self
            .planner
            .finish_tenant(TENANT, Completeness::Complete, &records);
        self.apply(end);
        (self.desk, self.steps)
    }
}

#[test]
fn page_wise_the_updates_wait_for_the_breaker_and_the_rest_applies() {
    let config = validated(&config());
    // 30 imported users, 25 of them now in Sales, and 5 new users.
    let mut users = read(30, 25);
    users.extend((31..=35).map(|n| user(&oid(n), &format!("User {n}")).build()));
    let (after, steps) = Pages::begin(&config, desk(30), false).run(users.clone(), 7);
    let (pages, end) = steps.split_at(steps.len() - 1);
    assert!(
        pages
            .iter()
            .flat_map(|p| &p.changes)
            .all(|c| c.action == Action::Create),
        "the pages apply their creates and defer their updates"
    );
    let end = &end[0];
    assert!(end.is_held());
    assert!(end.changes.is_empty(), "{:#?}", end.changes);
    assert_eq!(end.held[0].changes.len(), 25);
    assert!(
        end.circuit_breaker[0].reason.ends_with(
            "; its updates of existing records are held for approval, the rest of the tenant is applied"
        ),
        "{}",
        end.circuit_breaker[0].reason
    );
    assert_eq!(departments(&after), 0, "no held update was applied");
    assert_eq!(after.users.len(), 35, "the new users were created");

    // The approving run reads the same users again: every update goes through.
    let (approved, steps) = Pages::begin(&config, after.clone(), true).run(users, 7);
    assert!(steps.iter().all(|s| !s.is_held()));
    assert_eq!(departments(&approved), 25);
}

#[test]
fn page_wise_a_mass_deactivation_holds_the_deactivations_and_applies_the_updates() {
    let config = validated(&config());
    // 40 imported users: 5 change department, 20 are gone from the read.
    let (after, steps) = Pages::begin(&config, desk(40), false).run(read(20, 5), 6);
    let end = steps.last().unwrap();
    let verdict = &end.circuit_breaker[0];
    assert!(verdict.held);
    assert_eq!(
        (verdict.deactivations, verdict.field_changes["department"]),
        (20, 5)
    );
    assert!(end.held[0].changes.iter().all(|c| c.action == Action::Deactivate));
    assert_eq!(departments(&after), 5, "the updates within the share apply");
    assert!(after.users.iter().all(DeskRecord::is_active));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the page size and counts: the tenant is held exactly when the changed records
    /// are more than the floor and more than the share; held, no update is applied; not held,
    /// every update is — page-wise and whole alike.
    #[test]
    fn held_exactly_when_over_the_floor_and_the_share(
        active in 1u32..60,
        changed_share in 0u32..=100,
        floor in 0u32..15,
        percent in 1u32..=100,
        page_size in 1usize..25,
    ) {
        let changed = active * changed_share / 100;
        let mut settings = config();
        settings.circuit_breaker.floor = floor;
        settings.circuit_breaker.max_change_percent = f64::from(percent);
        let config = validated(&settings);
        let trips = changed > floor && f64::from(changed) * 100.0 / f64::from(active) > f64::from(percent);

        let (after, steps) = Pages::begin(&config, desk(active), false).run(read(active, changed), page_size);
        let end = steps.last().unwrap();
        prop_assert_eq!(end.is_held(), trips, "{:?}", end.circuit_breaker);
        prop_assert_eq!(end.circuit_breaker[0].field_changes.get("department").copied().unwrap_or(0), changed as usize);
        prop_assert_eq!(departments(&after), if trips { 0 } else { changed as usize });

        let whole_plan = whole(&settings, read(active, changed), &desk(active), false);
        prop_assert_eq!(whole_plan.is_held(), trips);
        let applied = apply_to_snapshot(&desk(active), &whole_plan, CONNECTION).unwrap();
        prop_assert_eq!(departments(&applied), if trips { 0 } else { changed as usize });

        if trips {
            let (approved, _) = Pages::begin(&config, after, true).run(read(active, changed), page_size);
            prop_assert_eq!(departments(&approved), changed as usize);
        }
    }
}
