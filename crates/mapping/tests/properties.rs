#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::*;
use deskbridge_core::RecordId;
use deskbridge_mapping::*;
use proptest::prelude::*;
use serde_json::{Value, json};

const NAMES: [&str; 4] = ["Ann Lee", "Bob Roe", "Cy Young", "Di Ng"];
const GROUPS: [&str; 7] = [
    "All Staff",
    "Loc-London",
    "IT Service Desk",
    "IT Change",
    "Leavers",
    "Executives",
    "Licensed Users",
];

fn source_user() -> impl Strategy<Value = SourceUser> {
    (
        1u32..16,
        prop::sample::select(NAMES.to_vec()),
        prop::sample::subsequence(GROUPS.to_vec(), 0..4),
        prop::option::of(prop::sample::select(vec!["LDS", "LDN", "LXX", "MAIN"])),
        prop::option::of(prop::sample::select(vec!["Leeds", "Bristol", "bristol"])),
        prop::option::of(prop::sample::select(vec!["2nd line", "1st Line", "Sales"])),
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            prop::option::of(1u32..16),
        ),
    )
        .prop_map(
            |(n, name, groups, office, city, department, (enabled, guest, licensed, manager))| {
                let mut builder = user(&oid(n), name).groups(&groups);
                if let Some(office) = office {
                    builder = builder.prop("officeLocation", json!(office));
                }
                if let Some(city) = city {
                    builder = builder.prop("city", json!(city));
                }
                if let Some(department) = department {
                    builder = builder.prop("department", json!(department));
                }
                if !enabled {
                    builder = builder.disabled();
                }
                if guest {
                    builder = builder.guest();
                }
                if licensed {
                    let visio = "c5928f49-12ba-48f7-ada3-0d743a3601d5";
                    let skus = if n.is_multiple_of(3) {
                        vec![E3, visio]
                    } else {
                        vec![E3]
                    };
                    builder = builder.skus(&skus);
                }
                if let Some(manager) = manager {
                    builder = builder.manager(&oid(manager));
                }
                builder.build()
            },
        )
}

fn desk_record(id: i64) -> impl Strategy<Value = DeskRecord> {
    (1u32..16, any::<bool>(), any::<bool>(), prop::sample::select(NAMES.to_vec()), prop::sample::subsequence(vec![1i64, 2, 3, 4], 0..3))
        .prop_map(move |(n, linked, active, name, roles)| {
            let email = format!("{}@contoso.com", name.to_lowercase().replace(' ', "."));
            let fields = json!({"name": name, "email": email, "active": active, "site_id": 10, "roles": roles,
                "teams": [{"team_id": 3, "can_be_assigned": true, "can_see_unassigned": false, "can_see_others_tickets": false}]});
            if linked { imported(id, &oid(n), fields) } else { manual(id, fields) }
        })
}

fn desk() -> impl Strategy<Value = DeskSnapshot> {
    (
        prop::collection::vec(any::<u8>(), 0..6),
        prop::collection::vec(any::<u8>(), 0..4),
    )
        .prop_flat_map(|(users, agents)| {
            let users: Vec<_> = (0..users.len() as i64).map(|i| desk_record(i + 1)).collect();
            let agents: Vec<_> = (0..agents.len() as i64).map(|i| desk_record(i + 1)).collect();
            (users, agents)
        })
        .prop_map(|(users, agents)| {
            let tickets = agents
                .iter()
                .map(|agent| DeskTicket {
                    id: RecordId(100 + agent.id.0),
                    agent_id: Some(agent.id),
                    team_id: None,
                    followers: vec![],
                })
                .collect();
            DeskSnapshot {
                users,
                agents,
                tickets,
                ..empty_desk()
            }
        })
}

fn read() -> impl Strategy<Value = TenantRead> {
    (
        prop::collection::vec(source_user(), 0..10),
        prop::sample::select(vec![
            Completeness::Complete,
            Completeness::Partial,
            Completeness::Failed,
        ]),
        any::<bool>(),
        prop::collection::vec((1u32..16, any::<bool>()), 0..3),
    )
        .prop_map(|(users, completeness, delta, removed)| TenantRead {
            subscribed_skus: (!delta).then(|| {
                vec![
                    SubscribedSku {
                        sku_id: E3.to_uppercase(),
                        sku_part_number: "ENTERPRISEPACK".into(),
                        friendly_name: None,
                        enabled_units: Some(25),
                        consumed_units: Some(users.len() as i64),
                        capability_status: Some("Enabled".into()),
                    },
                    SubscribedSku {
                        sku_id: "c5928f49-12ba-48f7-ada3-0d743a3601d5".into(),
                        sku_part_number: "VISIOCLIENT".into(),
                        friendly_name: Some("Visio".into()),
                        enabled_units: None,
                        consumed_units: None,
                        capability_status: None,
                    },
                ]
            }),
            subscriptions: None,
            usage: None,
            mode: if delta { ReadMode::Delta } else { ReadMode::Full },
            completeness,
            removed: if delta {
                removed
                    .into_iter()
                    .map(|(n, hard)| Removal {
                        external_id: oid(n),
                        reason: if hard {
                            RemovalReason::Deleted
                        } else {
                            RemovalReason::Changed
                        },
                    })
                    .collect()
            } else {
                vec![]
            },
            ..full_read(users)
        })
}

/// The realistic configuration and variations of its switches.
fn variant_config(variant: u8) -> MappingConfig {
    let mut config = config();
    match variant {
        1 => {
            config.advanced.full_role_management = false;
            config.licence_management.enabled = false;
            config.imports.sync_account_enabled = false;
        }
        2 => {
            config.advanced.remove_agents_from_unmapped_teams = false;
            config.imports.deactivate_not_found = false;
            config.service_accounts = None;
            config.site_mappings[0].target = SiteTarget::Agent {
                licence_type: LicenceTypeChoice::Named,
                creation_type: Some("Member".into()),
            };
        }
        3 => {
            config.imports.match_order = vec![MatchField::Name, MatchField::Email];
            config.advanced.nested_groups = true;
            config.field_locks = vec![FieldLock {
                entity: RecordKind::User,
                field: "email".into(),
            }];
        }
        _ => {}
    }
    config
}

fn approved(read: TenantRead) -> PlanInput {
    let mut input = input(vec![read]);
    input.approved_tenants.insert(TENANT.into());
    input
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn mapping_is_deterministic_and_ignores_input_order(read in read(), desk in desk(), seed in any::<u64>()) {
        let config = validated(&config());
        let first = plan(&config, &input(vec![read.clone()]), &desk, now());
        let again = plan(&config, &input(vec![read.clone()]), &desk, now());
        prop_assert_eq!(serde_json::to_string(&first).unwrap(), serde_json::to_string(&again).unwrap());
        let mut shuffled = read;
        let len = shuffled.users.len();
        if len > 1 {
            shuffled.users.rotate_left((seed as usize) % len);
            shuffled.users.reverse();
        }
        let reordered = plan(&config, &input(vec![shuffled]), &desk, now());
        prop_assert_eq!(serde_json::to_string(&first).unwrap(), serde_json::to_string(&reordered).unwrap());
    }

    #[test]
    fn applying_a_plan_then_planning_again_writes_nothing(
        read in read(),
        other in read(),
        desk in desk(),
        variant in 0u8..4,
    ) {
        let config = validated(&variant_config(variant));
        let mut other = other;
        other.tenant_id = OTHER_TENANT.into();
        // Object ids are global: the second tenant's users get their own.
        for user in &mut other.users {
            user.external_id = user.external_id.replace("-8000-", "-9000-");
        }
        let mut input = approved(read);
        input.tenants.push(other);
        input.approved_tenants.insert(OTHER_TENANT.into());
        let first = plan(&config, &input, &desk, now());
        let applied = apply_to_snapshot(&desk, &first, CONNECTION).unwrap();
        let second = plan(&config, &input, &applied, now());
        let writes: Vec<&Change> = second.writes().collect();
        prop_assert!(writes.is_empty(), "second plan writes {:#?}\nfirst plan {:#?}", writes, first.changes);
    }

    #[test]
    fn applying_page_by_page_converges_too(read in read(), desk in desk(), page_size in 1usize..4) {
        let config = validated(&config());
        let input = approved(read);
        let first = plan(&config, &input, &desk, now());
        let mut applied = desk.clone();
        for page in first.pages(page_size) {
            let one_page = Plan { changes: page, ..first.clone() };
            applied = apply_to_snapshot(&applied, &one_page, CONNECTION).unwrap();
        }
        let second = plan(&config, &input, &applied, now());
        let writes: Vec<&Change> = second.writes().collect();
        prop_assert!(writes.is_empty(), "second plan writes {:#?}", writes);
    }

    #[test]
    fn no_deactivation_of_records_a_partial_or_failed_read_did_not_see(
        mut read in read(),
        desk in desk(),
        partial in any::<bool>(),
    ) {
        read.mode = ReadMode::Full;
        read.removed.clear();
        read.completeness = if partial { Completeness::Partial } else { Completeness::Failed };
        let seen: BTreeSet<String> = read.users.iter().map(|u| u.external_id.clone()).collect();
        let plan = plan(&validated(&config()), &approved(read), &desk, now());
        for change in plan.changes.iter().chain(plan.held.iter().flat_map(|h| &h.changes)) {
            if change.action == Action::Deactivate {
                prop_assert!(seen.contains(&change.external_id), "deactivated unseen {}: {:#?}", change.external_id, change);
            }
        }
    }

    #[test]
    fn sequence_order_decides_overlaps(
        mappings in prop::collection::btree_map(1u32..50, (-5i32..5, prop::sample::select(vec![10i64, 11, 12])), 1..6),
    ) {
        let mut config = MappingConfig::generated(RecordId(10));
        config.site_mappings = mappings
            .iter()
            .map(|(id, (sequence, site))| SiteMapping {
                id: *id,
                name: format!("m{id}"),
                sequence: *sequence,
                target: SiteTarget::ExistingSite { site_id: RecordId(*site) },
                ..SiteMapping::default()
            })
            .collect();
        let (winner_id, (winner_seq, winner_site)) = mappings
            .iter()
            .min_by_key(|(id, (sequence, _))| (*sequence, **id))
            .unwrap();
        let plan = plan(&validated(&config), &input(vec![full_read(vec![user(&oid(1), "Ann Lee").build()])]), &empty_desk(), now());
        let change = &plan.changes[0];
        prop_assert_eq!(&change.rule, &format!("site mapping #{winner_id} 'm{winner_id}' (seq {winner_seq})"));
        prop_assert_eq!(&change.fields["site_id"].after, &Value::from(*winner_site));
    }
}

// ---------- page-wise planning ----------

/// Plans `read` with a [`RunPlanner`] in pages of the given sizes (cycled), each page's desk
/// holding only what [`RunPlanner::lookups`] asks for. With `apply`, every step's plan is applied
/// before the next step (a sync); without, the desk never changes (a preview). Returns every
/// step's plan joined, and the desk at the end.
fn plan_in_pages(
    config: &ValidatedConfig,
    read: &TenantRead,
    desk: &DeskSnapshot,
    sizes: &[usize],
    apply: bool,
) -> (Plan, DeskSnapshot) {
    let tenant = read.tenant_id.as_str();
    let mut planner = RunPlanner::new(config, CONNECTION, [tenant.to_owned()].into(), now());
    let mut current = desk.clone();
    let step = |plan: &Plan, current: &mut DeskSnapshot| {
        if apply {
            *current = apply_to_snapshot(current, plan, CONNECTION).unwrap();
        }
    };
    let header = TenantHeader {
        tenant_id: tenant.to_owned(),
        customer_id: read.customer_id,
        mode: read.mode,
        active_records: planner.finish_records(tenant, desk).active_count(tenant),
    };
    let mut joined = planner.begin_tenant(
        &header,
        deskbridge_mapping::TenantReference {
            skus: read.subscribed_skus.as_deref(),
            subscriptions: read.subscriptions.as_deref(),
            usage: read.usage.as_deref(),
        },
        &current,
    );
    step(&joined, &mut current);
    let mut rest = read.users.as_slice();
    let mut removed = read.removed.as_slice();
    let mut page = 0;
    while !rest.is_empty() || !removed.is_empty() {
        let size = sizes[page % sizes.len()].max(1).min(rest.len());
        let (users, later) = rest.split_at(size);
        // Removals ride along with the pages, one per page.
        let (gone, later_removed) = removed.split_at(removed.len().min(1));
        let page_desk = planner.lookups(users).select(&current, CONNECTION);
        let plan = planner.plan_page(tenant, users, gone, &page_desk);
        step(&plan, &mut current);
        joined.absorb(plan);
        rest = later;
        removed = later_removed;
        page += 1;
    }
    let records = planner.finish_records(tenant, &current);
    let end = planner.finish_tenant(tenant, read.completeness, &records);
    step(&end, &mut current);
    joined.absorb(end);
    (joined, current)
}

/// A later page's user fitting a desk record an earlier page linked: a conflict this run, a new
/// record the next (the record is linked by then) — by design, see the engine's documentation.
fn has_cross_page_conflict(plan: &Plan) -> bool {
    plan.changes.iter().any(|c| {
        c.action == Action::Conflict
            && (c.reason.contains("earlier in this run") || c.reason.contains("of this run"))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Preview = apply: a page-wise run plans the same whether or not each page is applied before
    /// the next (replays across pages included), and a sync applied page by page converges:
    /// planning again (whole) writes nothing. Convergence is checked on the read with one copy
    /// per person, since the whole plan treats differing copies in different pages differently
    /// (by design); and skipped when a later page's user fitted a record an earlier page linked
    /// (that user is created by the next run, by design). The generator avoids neither case.
    #[test]
    fn pages_plan_the_same_applied_or_not_and_converge(
        read in read(),
        desk in desk(),
        sizes in prop::collection::vec(1usize..5, 1..4),
        variant in 0u8..4,
    ) {
        let config = validated(&variant_config(variant));
        let (preview, _) = plan_in_pages(&config, &read, &desk, &sizes, false);
        let (sync, _) = plan_in_pages(&config, &read, &desk, &sizes, true);
        prop_assert_eq!(
            serde_json::to_value(&preview).unwrap(),
            serde_json::to_value(&sync).unwrap(),
            "preview and sync differ"
        );

        let mut once = read;
        let mut seen = BTreeSet::new();
        once.users.retain(|user| seen.insert(user.external_id.to_ascii_lowercase()));
        let (preview, _) = plan_in_pages(&config, &once, &desk, &sizes, false);
        let (sync, applied) = plan_in_pages(&config, &once, &desk, &sizes, true);
        prop_assert_eq!(
            serde_json::to_value(&preview).unwrap(),
            serde_json::to_value(&sync).unwrap(),
            "preview and sync differ"
        );
        if !has_cross_page_conflict(&sync) {
            let again = plan(&config, &approved(once), &applied, now());
            let writes: Vec<&Change> = again.writes().collect();
            prop_assert!(writes.is_empty(), "planning again writes {:#?}\npaged plan {:#?}", writes, sync.changes);
        }
    }
}
