#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The preview an administrator reads before a sync: per user, the mapping and rule that decided
//! each change. Snapshots of the plan JSON (the `changes` shape is the CLI's `sync --plan --json`).

mod common;

use common::*;
use deskbridge_core::RecordId;
use deskbridge_mapping::*;
use serde_json::json;

fn contoso_read() -> TenantRead {
    full_read(vec![
        user(&oid(1), "Ann Lee")
            .groups(&["Loc-London", "All Staff"])
            .manager(&oid(2))
            .prop("givenName", json!("Ann"))
            .build(),
        user(&oid(2), "Dan Boss")
            .groups(&["Loc-London", "All Staff", "Executives"])
            .prop("jobTitle", json!("CEO"))
            .build(),
        user(&oid(3), "Lee Ds")
            .groups(&["All Staff"])
            .prop("officeLocation", json!("LDS"))
            .manager(&oid(2))
            .build(),
        user(&oid(4), "Bri Stol")
            .groups(&["All Staff"])
            .prop("city", json!("Bristol"))
            .prop("department", json!("Sales"))
            .manager(&oid(2))
            .build(),
        user(&oid(5), "Gus Guest")
            .guest()
            .prop("city", json!("Leeds"))
            .build(),
        user(&oid(6), "Sam Desk")
            .groups(&["IT Service Desk", "All Staff"])
            .prop("department", json!("1st Line"))
            .manager(&oid(7))
            .build(),
        user(&oid(7), "Tina Lead")
            .groups(&["IT Service Desk", "IT Change", "All Staff"])
            .prop("department", json!("2nd Line"))
            .manager(&oid(2))
            .build(),
        user(&oid(8), "Rita Retired")
            .groups(&["Loc-London", "All Staff"])
            .disabled()
            .build(),
    ])
}

fn contoso_desk() -> DeskSnapshot {
    let mut kept = imported(
        13,
        &oid(13),
        json!({"name": "Vic Vip", "active": true, "site_id": 11}),
    );
    kept.locks.keep_active = true;
    DeskSnapshot {
        users: vec![
            manual(
                10,
                json!({"name": "Ann Lee (typed by hand)", "email": "ann.lee@contoso.com", "site_id": 10, "active": true}),
            ),
            imported(
                11,
                &oid(8),
                json!({"name": "Rita Retired", "email": "rita.retired@contoso.com", "network_login": "rita.retired@contoso.com",
                "site_id": 11, "active": true, "roles": [1], "is_service_account": false, "line_manager_id": null}),
            ),
            imported(
                12,
                &oid(12),
                json!({"name": "Lou Leaver", "site_id": 11, "active": true}),
            ),
            kept,
        ],
        agents: vec![imported(
            20,
            &oid(20),
            json!({"name": "Old Timer", "active": true, "roles": [1], "licence_type": "concurrent",
            "teams": [{"team_id": 3, "can_be_assigned": true, "can_see_unassigned": false, "can_see_others_tickets": false}]}),
        )],
        tickets: vec![DeskTicket {
            id: RecordId(500),
            agent_id: Some(RecordId(20)),
            team_id: Some(RecordId(1)),
            followers: vec![],
        }],
        ..empty_desk()
    }
}

#[test]
fn preview_of_a_realistic_configuration() {
    let validated = validated(&config());
    let plan = plan(&validated, &input(vec![contoso_read()]), &contoso_desk(), now());
    insta::assert_json_snapshot!("contoso_first_sync", plan);
    insta::assert_snapshot!("contoso_first_sync_text", plan.to_text(false));

    // Every imported user's change names the site mapping that decided it.
    for change in plan
        .changes
        .iter()
        .filter(|c| c.entity == Entity::User && c.action == Action::Create)
    {
        assert!(change.rule.starts_with("site mapping #"), "{change:#?}");
        assert!(
            change.reason.contains("selected by site mapping #"),
            "{change:#?}"
        );
    }
    let applied = apply_to_snapshot(&contoso_desk(), &plan, CONNECTION).unwrap();
    let second = deskbridge_mapping::plan(&validated, &input(vec![contoso_read()]), &applied, now());
    assert_eq!(second.writes().count(), 0, "{:#?}", second.changes);
    insta::assert_json_snapshot!("contoso_second_sync_counts", second.counts);
}

#[test]
fn preview_of_a_held_tenant() {
    let desk = DeskSnapshot {
        users: (1..=12)
            .map(|n| {
                imported(
                    i64::from(n),
                    &oid(n),
                    json!({"name": format!("User {n}"), "active": true, "site_id": 10}),
                )
            })
            .collect(),
        ..empty_desk()
    };
    let mut config = MappingConfig::generated(RecordId(10));
    config.imports.deactivate_not_found = true;
    let plan = plan(
        &validated(&config),
        &input(vec![full_read(vec![user(&oid(1), "User 1").build()])]),
        &desk,
        now(),
    );
    insta::assert_snapshot!("held_tenant_text", plan.to_text(true));
    insta::assert_json_snapshot!("held_tenant", plan, {".held[0].changes" => insta::dynamic_redaction(|value, _| {
        // Eleven near-identical deactivations: keep the count and the first one.
        let changes = value.as_slice().unwrap();
        insta::internals::Content::Seq(vec![changes[0].clone(), format!("… {} deactivations in all", changes.len()).into()])
    })});
}
