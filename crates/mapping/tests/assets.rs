//! Intune managed devices become desk assets (issue #15): validation, types, user links,
//! matching, sites, deletion and reactivation, page-wise runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::assets::*;
use common::*;
use deskbridge_core::RecordId;
use deskbridge_mapping::*;
use serde_json::{Value, json};

fn rules(list: &[(&str, &str)], unmatched: UnmatchedDevice) -> AssetTypes {
    AssetTypes::Rules {
        rules: list
            .iter()
            .map(|(filter, asset_type)| AssetTypeRule {
                filter: (*filter).into(),
                asset_type: (*asset_type).into(),
            })
            .collect(),
        unmatched,
    }
}

fn single(name: &str) -> AssetMappings {
    AssetMappings {
        types: AssetTypes::Single {
            asset_type: name.into(),
        },
        ..AssetMappings::default()
    }
}

fn writes(plan: &Plan) -> Vec<&Change> {
    plan.writes().collect()
}

// ---------------------------------------------------------------- validation

#[test]
fn the_default_asset_configuration_and_the_readme_example_validate() {
    with_assets(AssetMappings::default());
    let readme = include_str!("../README.md");
    let start = readme
        .find("```json asset-example")
        .expect("the README has the asset example");
    let body = &readme[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    let body = &body[..body.find("```").unwrap()];
    let example: MappingConfig = serde_json::from_str(body).unwrap();
    let config = MappingConfig {
        assets: example.assets,
        ..MappingConfig::generated(RecordId(10))
    };
    let validated = validate(&config, &asset_catalog()).unwrap();
    assert!(validated.imports_assets());
    let select = validated.device_properties();
    for property in [
        "id",
        "deviceName",
        "serialNumber",
        "operatingSystem",
        "managementAgent",
        "userPrincipalName",
    ] {
        assert!(select.contains(property), "{property} missing from {select:?}");
    }
}

#[test]
fn validation_names_each_problem_with_its_path() {
    let assets = AssetMappings {
        types: rules(
            &[
                ("operatingSystem eq 'Windows'", "Laptop"),
                ("operatingSystem eq", "Phone"),
                ("operatingSytem eq 'iOS'", "Phone"),
                ("model eq 'x'", "  "),
            ],
            UnmatchedDevice::Fallback {
                asset_type: "".into(),
            },
        ),
        fields: vec![
            FieldMapping::property("deviceName", "name"),
            FieldMapping::property("serialNumber", "name"),
            FieldMapping::property("model", "status"),
            FieldMapping::property("model", "custom:Nope"),
            FieldMapping::property("isEncrypted", "custom:Storage"),
        ],
        match_field: "serial_number".into(),
        default_site: Some(RecordId(99)),
        new_status: " ".into(),
        deleted_status: "".into(),
        ..AssetMappings::default()
    };
    let config = MappingConfig {
        assets: Some(assets),
        ..MappingConfig::generated(RecordId(10))
    };
    let errors = validate(&config, &asset_catalog()).unwrap_err();
    let at = |location: &str| {
        errors
            .iter()
            .find(|e| e.location == location)
            .unwrap_or_else(|| panic!("no error at {location}: {errors:#?}"))
            .message
            .clone()
    };
    assert!(at("assets.types.rules[1].filter").contains("does not parse"));
    assert!(
        at("assets.types.rules[2].filter")
            .contains("unknown device property 'operatingSytem' (did you mean 'operatingSystem'?)")
    );
    assert!(at("assets.types.rules[3].asset_type").contains("name the asset type"));
    assert!(at("assets.types.unmatched.asset_type").contains("name the asset type"));
    assert!(at("assets.fields[1]").contains("already mapped by assets.fields[0]"));
    assert!(at("assets.fields[2]").contains("set by deskbridge itself"));
    assert!(at("assets.fields[3]").contains("unknown asset custom field 'Nope'"));
    assert!(at("assets.fields[4]").contains("type mismatch"));
    assert!(at("assets.match_field").contains("needs an asset field mapping"));
    assert!(at("assets.default_site").contains("site 99 does not exist"));
    assert!(at("assets.new_status").contains("status"));
    assert!(at("assets.deleted_status").contains("status"));
}

#[test]
fn rules_need_at_least_one_rule() {
    let config = MappingConfig {
        assets: Some(AssetMappings {
            types: rules(&[], UnmatchedDevice::Exclude),
            ..AssetMappings::default()
        }),
        ..MappingConfig::generated(RecordId(10))
    };
    let errors = validate(&config, &asset_catalog()).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].location, "assets.types.rules");
}

#[test]
fn user_custom_fields_are_not_asset_fields_and_the_match_field_must_be_an_asset_field() {
    let assets = AssetMappings {
        fields: vec![
            FieldMapping::property("serialNumber", "serial_number"),
            FieldMapping::property("model", "custom:Office"),
        ],
        match_field: "custom:Office".into(),
        ..AssetMappings::default()
    };
    let config = MappingConfig {
        assets: Some(assets),
        ..MappingConfig::generated(RecordId(10))
    };
    let errors = validate(&config, &asset_catalog()).unwrap_err();
    assert!(errors.iter().any(|e| e.location == "assets.fields[1]"));
    assert!(errors.iter().any(|e| e.location == "assets.match_field"));
}

#[test]
fn a_planner_needs_an_asset_configuration() {
    let config = validated(&MappingConfig::generated(RecordId(10)));
    assert!(AssetPlanner::new(&config, CONNECTION, now()).is_err());
}

// ---------------------------------------------------------------- types

#[test]
fn a_single_missing_type_is_created_once_and_referenced() {
    let config = with_assets(single("Managed device"));
    let devices = [device(1, "PC-1", "S1").build(), device(2, "PC-2", "S2").build()];
    let plan = run(&config, &devices, &asset_desk());
    let types: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.entity == Entity::AssetType)
        .collect();
    assert_eq!(types.len(), 1);
    assert_eq!(types[0].action, Action::Create);
    assert_eq!(types[0].external_id, "Managed device");
    for n in [1, 2] {
        let change = change_for(&plan, &dev(n));
        assert_eq!(change.action, Action::Create);
        assert_eq!(
            after(change, "asset_type_id"),
            &json!({"asset_type": "Managed device"})
        );
        assert_eq!(after(change, "status"), &json!("active"));
        assert_eq!(after(change, "customer_id"), &json!(1));
        assert_eq!(after(change, "tenant_id"), &json!(TENANT));
        assert_eq!(after(change, "site_id"), &json!(10), "no user: the main site");
    }
    assert_eq!(plan.counts.created, 3);
    let pages = plan.pages(1);
    assert_eq!(pages.len(), 3);
    assert_eq!(
        pages[0][0].entity,
        Entity::AssetType,
        "the type first: the assets refer to it"
    );
    let applied = apply_assets(&plan, &asset_desk(), CONNECTION).unwrap();
    assert_eq!(applied.asset_types.len(), 3);
    assert!(
        applied
            .assets
            .iter()
            .all(|a| a.fields["asset_type_id"] == json!(3))
    );
}

#[test]
fn a_field_names_the_type_ignoring_case_with_a_fallback_or_a_skip() {
    let field = |fallback: Option<&str>| AssetMappings {
        types: AssetTypes::Field {
            property: "operatingSystem".into(),
            fallback: fallback.map(str::to_owned),
        },
        ..AssetMappings::default()
    };
    let devices = [
        device(1, "PC-1", "S1").os("laptop").build(),
        device(2, "PC-2", "S2").os("").build(),
        device(3, "PC-3", "S3").os("iOS").build(),
    ];
    let plan = run(&with_assets(field(Some("Unknown OS"))), &devices, &asset_desk());
    assert_eq!(after(change_for(&plan, &dev(1)), "asset_type_id"), &json!(1));
    assert_eq!(
        after(change_for(&plan, &dev(2)), "asset_type_id"),
        &json!({"asset_type": "Unknown OS"})
    );
    assert_eq!(
        after(change_for(&plan, &dev(3)), "asset_type_id"),
        &json!({"asset_type": "iOS"})
    );
    let plan = run(&with_assets(field(None)), &devices, &asset_desk());
    let skipped = change_for(&plan, &dev(2));
    assert_eq!(skipped.action, Action::Skip);
    assert!(skipped.reason.contains("no fallback"), "{}", skipped.reason);
}

#[test]
fn the_first_matching_rule_decides_and_the_fallback_takes_the_rest() {
    let assets = AssetMappings {
        types: rules(
            &[
                (
                    "operatingSystem eq 'iOS' or operatingSystem eq 'Android'",
                    "Phone",
                ),
                (
                    "operatingSystem eq 'Windows' and managedDeviceOwnerType eq 'company'",
                    "Laptop",
                ),
                ("operatingSystem eq 'Windows'", "Personal PC"),
            ],
            UnmatchedDevice::Fallback {
                asset_type: "Other".into(),
            },
        ),
        ..AssetMappings::default()
    };
    let devices = [
        device(1, "Phone-1", "S1").os("IOS").build(),
        device(2, "PC-2", "S2").build(),
        device(3, "PC-3", "S3")
            .prop("managedDeviceOwnerType", json!("personal"))
            .build(),
        device(4, "Mac-4", "S4").os("macOS").build(),
    ];
    let plan = run(&with_assets(assets), &devices, &asset_desk());
    let phone = change_for(&plan, &dev(1));
    assert_eq!(after(phone, "asset_type_id"), &json!(2));
    assert!(phone.reason.contains("asset type rule 1"), "{}", phone.reason);
    assert_eq!(after(change_for(&plan, &dev(2)), "asset_type_id"), &json!(1));
    assert_eq!(
        after(change_for(&plan, &dev(3)), "asset_type_id"),
        &json!({"asset_type": "Personal PC"})
    );
    assert_eq!(
        after(change_for(&plan, &dev(4)), "asset_type_id"),
        &json!({"asset_type": "Other"})
    );
}

#[test]
fn unmatched_devices_are_skipped_when_the_rules_exclude_them() {
    let assets = AssetMappings {
        types: rules(
            &[("operatingSystem eq 'Windows'", "Laptop")],
            UnmatchedDevice::Exclude,
        ),
        ..AssetMappings::default()
    };
    let devices = [
        device(1, "PC-1", "S1").build(),
        device(2, "Mac", "S2").os("macOS").build(),
    ];
    let plan = run(&with_assets(assets), &devices, &asset_desk());
    assert_eq!(change_for(&plan, &dev(1)).action, Action::Create);
    let skipped = change_for(&plan, &dev(2));
    assert_eq!(skipped.action, Action::Skip);
    assert_eq!(skipped.rule, "asset type rules");
    assert!(skipped.reason.contains("matches no asset type rule"));
}

#[test]
fn existing_assets_keep_their_type_when_asked() {
    let assets = AssetMappings {
        keep_existing_types: true,
        ..single("Managed device")
    };
    let mut desk = asset_desk();
    desk.assets.push(imported_asset(
        50,
        &dev(1),
        json!({"name": "PC-1", "serial_number": "S1", "asset_type_id": 1, "site_id": 10, "status": "active"}),
    ));
    let plan = run(&with_assets(assets), &[device(1, "PC-1", "S1").build()], &desk);
    assert!(
        plan.changes.iter().all(|c| c.entity != Entity::AssetType),
        "{plan:#?}"
    );
    assert!(writes(&plan).is_empty(), "{plan:#?}");
    assert_eq!(plan.counts.unchanged, 1);
    // Without the option the type follows the configuration.
    let plan = run(
        &with_assets(single("Managed device")),
        &[device(1, "PC-1", "S1").build()],
        &desk,
    );
    let change = change_for(&plan, &dev(1));
    assert_eq!(change.action, Action::Update);
    assert_eq!(change.fields["asset_type_id"].before, json!(1));
}

// ---------------------------------------------------------------- users and sites

#[test]
fn the_asset_method_links_users_by_login_then_email_on_their_site() {
    let config = with_assets(single("Laptop"));
    let devices = [
        device(1, "PC-1", "S1").upn("ANN@contoso.com").build(),
        device(2, "PC-2", "S2").upn("robert@contoso.com").build(),
        device(3, "PC-3", "S3").upn("ghost@contoso.com").build(),
        device(4, "PC-4", "S4").build(),
    ];
    let plan = run(&config, &devices, &asset_desk());
    let ann = change_for(&plan, &dev(1));
    assert_eq!(after(ann, "user_id"), &json!(101));
    assert_eq!(after(ann, "site_id"), &json!(11));
    let bob = change_for(&plan, &dev(2));
    assert_eq!(after(bob, "user_id"), &json!(102), "by email when no login fits");
    assert_eq!(after(bob, "site_id"), &json!(12));
    let ghost = change_for(&plan, &dev(3));
    assert!(!ghost.fields.contains_key("user_id"), "no dangling link");
    assert!(ghost.reason.contains("no active desk user"), "{}", ghost.reason);
    assert_eq!(after(ghost, "site_id"), &json!(10));
    assert!(change_for(&plan, &dev(4)).reason.contains("names no user"));
}

#[test]
fn ambiguous_inactive_and_other_customers_users_are_not_linked() {
    let config = with_assets(single("Laptop"));
    let mut desk = asset_desk();
    desk.users
        .push(desk_user(103, "u-cy", "cy@contoso.com", "cy@contoso.com", 11));
    desk.users.push(desk_user(104, "u-cy2", "CY@contoso.com", "", 12));
    let mut inactive = desk_user(105, "u-di", "di@contoso.com", "di@contoso.com", 11);
    inactive.fields.insert("active".into(), json!(false));
    desk.users.push(inactive);
    desk.users
        .push(desk_user(106, "u-ed", "ed@fabrikam.com", "ed@fabrikam.com", 20));
    let devices = [
        device(1, "PC-1", "S1").upn("cy@contoso.com").build(),
        device(2, "PC-2", "S2").upn("di@contoso.com").build(),
        device(3, "PC-3", "S3").upn("ed@fabrikam.com").build(),
    ];
    let plan = run(&config, &devices, &desk);
    let ambiguous = change_for(&plan, &dev(1));
    assert!(!ambiguous.fields.contains_key("user_id"));
    assert!(ambiguous.reason.contains("ambiguous"), "{}", ambiguous.reason);
    assert!(ambiguous.reason.contains("103, 104"), "{}", ambiguous.reason);
    assert!(!change_for(&plan, &dev(2)).fields.contains_key("user_id"));
    assert!(!change_for(&plan, &dev(3)).fields.contains_key("user_id"));
}

#[test]
fn the_user_method_and_user_ids_match_the_connections_users() {
    let by_owner = with_assets(AssetMappings {
        user_link: AssetUserLink::User,
        ..single("Laptop")
    });
    let devices = [device(1, "PC-1", "S1").owner("U-BOB").build()];
    let plan = run(&by_owner, &devices, &asset_desk());
    assert_eq!(after(change_for(&plan, &dev(1)), "user_id"), &json!(102));
    let by_id = with_assets(AssetMappings {
        user_link: AssetUserLink::Asset {
            field: DeviceUserField::UserId,
        },
        ..single("Laptop")
    });
    let devices = [device(1, "PC-1", "S1").prop("userId", json!("u-ann")).build()];
    let plan = run(&by_id, &devices, &asset_desk());
    assert_eq!(after(change_for(&plan, &dev(1)), "user_id"), &json!(101));
}

#[test]
fn a_device_changing_owner_moves_and_an_asset_without_user_keeps_its_site() {
    let config = with_assets(single("Laptop"));
    let mut desk = asset_desk();
    let fields = |user: Value, site: i64| {
        json!({"name": "PC-1", "serial_number": "S1", "asset_type_id": 1, "site_id": site,
               "status": "active", "user_id": user})
    };
    desk.assets
        .push(imported_asset(50, &dev(1), fields(json!(101), 11)));
    desk.assets
        .push(imported_asset(51, &dev(2), fields(json!(102), 12)));
    let devices = [
        device(1, "PC-1", "S1").upn("bob@contoso.com").build(),
        device(2, "PC-1", "S1").build(),
    ];
    let plan = run(&config, &devices, &desk);
    let moved = change_for(&plan, &dev(1));
    assert_eq!(moved.action, Action::Update);
    assert_eq!(moved.fields["user_id"].before, json!(101));
    assert_eq!(after(moved, "user_id"), &json!(102));
    assert_eq!(after(moved, "site_id"), &json!(12));
    let orphan = change_for(&plan, &dev(2));
    assert_eq!(after(orphan, "user_id"), &Value::Null);
    assert!(
        !orphan.fields.contains_key("site_id"),
        "kept, not moved to the default"
    );
}

#[test]
fn the_site_falls_back_to_the_default_then_the_main_site_else_a_skip() {
    let with_default = with_assets(AssetMappings {
        default_site: Some(RecordId(12)),
        ..single("Laptop")
    });
    let devices = [device(1, "PC-1", "S1").build()];
    let plan = run(&with_default, &devices, &asset_desk());
    assert_eq!(after(change_for(&plan, &dev(1)), "site_id"), &json!(12));
    let mut desk = asset_desk();
    desk.sites.iter_mut().for_each(|s| s.is_main = false);
    let plan = run(&with_assets(single("Laptop")), &devices, &desk);
    let skipped = change_for(&plan, &dev(1));
    assert_eq!(skipped.action, Action::Skip);
    assert!(
        skipped.reason.contains("set a default site"),
        "{}",
        skipped.reason
    );
}

// ---------------------------------------------------------------- matching

#[test]
fn serial_numbers_link_hand_made_assets_of_the_customer_only() {
    let config = with_assets(single("Laptop"));
    let mut desk = asset_desk();
    desk.assets.push(manual_asset(
        60,
        1,
        json!({"name": "Old PC", "serial_number": " s1 ", "site_id": 11}),
    ));
    desk.assets.push(manual_asset(
        61,
        2,
        json!({"name": "Their PC", "serial_number": "S2"}),
    ));
    let devices = [device(1, "PC-1", "S1").build(), device(2, "PC-2", "S2").build()];
    let plan = run(&config, &devices, &desk);
    let linked = change_for(&plan, &dev(1));
    assert_eq!(linked.action, Action::Link);
    assert_eq!(linked.rule, "asset matching field 'serial_number'");
    assert_eq!(plan.target_of(linked), Some(RecordId(60)));
    assert_eq!(after(linked, "name"), &json!("PC-1"));
    assert!(
        !linked.fields.contains_key("site_id"),
        "a linked asset without user keeps its site"
    );
    assert!(
        !linked.fields.contains_key("status"),
        "the status of a linked asset is its own"
    );
    assert_eq!(
        change_for(&plan, &dev(2)).action,
        Action::Create,
        "another customer's asset"
    );
    let applied = apply_assets(&plan, &desk, CONNECTION).unwrap();
    let asset = applied.assets.iter().find(|a| a.id == RecordId(60)).unwrap();
    assert_eq!(asset.source.as_ref().unwrap().external_id, dev(1));
    assert!(writes(&run(&config, &devices, &applied)).is_empty());
}

#[test]
fn duplicate_serials_on_the_desk_are_a_conflict_naming_both() {
    let config = with_assets(single("Laptop"));
    let mut desk = asset_desk();
    desk.assets
        .push(manual_asset(60, 1, json!({"serial_number": "S1"})));
    desk.assets
        .push(manual_asset(61, 1, json!({"serial_number": "s1"})));
    let plan = run(&config, &[device(1, "PC-1", "S1").build()], &desk);
    let conflict = change_for(&plan, &dev(1));
    assert_eq!(conflict.action, Action::Conflict);
    assert!(conflict.reason.contains("60, 61"), "{}", conflict.reason);
    assert_eq!(plan.counts.conflicts, 1);
    assert!(writes(&plan).is_empty());
}

#[test]
fn two_devices_fitting_one_asset_are_both_conflicts() {
    let config = with_assets(single("Laptop"));
    let mut desk = asset_desk();
    desk.assets
        .push(manual_asset(60, 1, json!({"serial_number": "S1"})));
    let devices = [device(1, "PC-1", "S1").build(), device(2, "PC-2", "S1").build()];
    let plan = run(&config, &devices, &desk);
    for n in [1, 2] {
        assert_eq!(change_for(&plan, &dev(n)).action, Action::Conflict);
    }
    // Page-wise, the first page links it and the later device is the conflict.
    let plan = run_pages(&config, &devices, &desk, 1);
    assert_eq!(change_for(&plan, &dev(1)).action, Action::Link);
    let later = change_for(&plan, &dev(2));
    assert_eq!(later.action, Action::Conflict);
    assert!(
        later.reason.contains("linked earlier in this run"),
        "{}",
        later.reason
    );
}

#[test]
fn empty_and_placeholder_serials_never_match() {
    let config = with_assets(single("Laptop"));
    let mut desk = asset_desk();
    desk.assets
        .push(manual_asset(60, 1, json!({"serial_number": ""})));
    desk.assets.push(manual_asset(
        61,
        1,
        json!({"serial_number": "0001-01-01T00:00:00Z"}),
    ));
    desk.assets
        .push(manual_asset(62, 1, json!({"name": "no serial"})));
    let devices = [
        device(1, "PC-1", "").build(),
        device(2, "PC-2", "0001-01-01T00:00:00Z").build(),
        device(3, "PC-3", "   ").build(),
    ];
    let plan = run(&config, &devices, &desk);
    for n in 1..=3 {
        let change = change_for(&plan, &dev(n));
        assert_eq!(change.action, Action::Create, "{change:#?}");
        assert!(!change.fields.contains_key("serial_number"));
    }
}

#[test]
fn an_unknown_value_does_not_wipe_an_existing_assets_field() {
    let config = with_assets(single("Laptop"));
    let mut desk = asset_desk();
    desk.assets.push(imported_asset(
        50,
        &dev(1),
        json!({"name": "PC-1", "serial_number": "S1", "asset_type_id": 1, "site_id": 10, "status": "active"}),
    ));
    let plan = run(&config, &[device(1, "PC-1", "").build()], &desk);
    assert!(writes(&plan).is_empty(), "{plan:#?}");
}

// ---------------------------------------------------------------- exclusion, deletion

#[test]
fn sense_devices_are_skipped_and_their_assets_left_alone() {
    let config = with_assets(single("Laptop"));
    let mut desk = asset_desk();
    desk.assets.push(imported_asset(
        50,
        &dev(1),
        json!({"name": "Srv", "status": "active"}),
    ));
    let devices = [device(1, "Srv", "S1")
        .prop("managementAgent", json!("MSSENSE"))
        .build()];
    let plan = run(&config, &devices, &desk);
    assert_eq!(plan.changes.len(), 1, "{plan:#?}");
    let skipped = change_for(&plan, &dev(1));
    assert_eq!(skipped.action, Action::Skip);
    assert_eq!(skipped.rule, "asset exclusion (Sense)");
    // Not excluded when the option is off.
    let config = with_assets(AssetMappings {
        exclude_sense: false,
        ..single("Laptop")
    });
    assert_eq!(
        change_for(&run(&config, &devices, &desk), &dev(1)).action,
        Action::Update
    );
}

#[test]
fn missing_devices_get_the_deletion_status_only_after_a_complete_read() {
    let config = with_assets(single("Laptop"));
    let mut desk = asset_desk();
    let fields = json!({"name": "Gone", "asset_type_id": 1, "site_id": 10, "status": "active"});
    desk.assets.push(imported_asset(50, &dev(1), fields));
    desk.assets.push(imported_asset(
        51,
        &dev(2),
        json!({"name": "Retired", "status": "retired"}),
    ));
    let plan = run(&config, &[], &desk);
    assert_eq!(plan.changes.len(), 1, "{plan:#?}");
    let retired = change_for(&plan, &dev(1));
    assert_eq!(retired.action, Action::Deactivate);
    assert_eq!(after(retired, "status"), &json!("retired"));
    assert_eq!(plan.counts.deactivated, 1);
    let applied = apply_assets(&plan, &desk, CONNECTION).unwrap();
    assert_eq!(applied.assets.len(), 2, "never deleted");
    for completeness in [Completeness::Partial, Completeness::Failed] {
        let mut planner = AssetPlanner::new(&config, CONNECTION, now()).unwrap();
        planner.begin_tenant(TENANT, Some(RecordId(1)));
        let end = planner.finish_tenant(completeness, &connection_assets(&desk));
        assert!(end.changes.is_empty());
        assert_eq!(end.notes.len(), 1);
    }
}

#[test]
fn a_device_seen_again_reactivates_its_asset() {
    let config = with_assets(single("Laptop"));
    let mut desk = asset_desk();
    desk.assets.push(imported_asset(
        50,
        &dev(1),
        json!({"name": "PC-1", "serial_number": "S1", "asset_type_id": 1, "site_id": 10, "status": "Retired"}),
    ));
    let plan = run(&config, &[device(1, "PC-1", "S1").build()], &desk);
    let back = change_for(&plan, &dev(1));
    assert_eq!(back.action, Action::Reactivate);
    assert_eq!(after(back, "status"), &json!("active"));
    let applied = apply_assets(&plan, &desk, CONNECTION).unwrap();
    assert!(writes(&run(&config, &[device(1, "PC-1", "S1").build()], &applied)).is_empty());
}

// ---------------------------------------------------------------- runs

fn mixed_devices() -> Vec<SourceDevice> {
    vec![
        device(5, "PC-5", "S5").upn("ann@contoso.com").build(),
        device(1, "PC-1", "S1").build(),
        device(3, "Phone-3", "").os("iOS").upn("bob@contoso.com").build(),
        device(2, "Srv-2", "S2")
            .prop("managementAgent", json!("msSense"))
            .build(),
        device(4, "PC-4", "S4")
            .prop("totalStorageSpaceInBytes", json!(512))
            .build(),
        device(6, "Mac-6", "S6").os("macOS").build(),
    ]
}

fn mixed_config() -> ValidatedConfig {
    let mut fields = AssetMappings::generated_fields();
    fields.push(FieldMapping::property(
        "totalStorageSpaceInBytes",
        "custom:Storage",
    ));
    fields.push(FieldMapping::property("complianceState", "custom:Compliance"));
    with_assets(AssetMappings {
        types: rules(
            &[
                ("operatingSystem eq 'iOS'", "Phone"),
                ("operatingSystem eq 'Windows'", "Laptop"),
            ],
            UnmatchedDevice::Fallback {
                asset_type: "Mac".into(),
            },
        ),
        fields,
        ..AssetMappings::default()
    })
}

fn mixed_desk() -> AssetDesk {
    let mut desk = asset_desk();
    desk.assets
        .push(manual_asset(60, 1, json!({"serial_number": "S1", "site_id": 12})));
    desk.assets.push(imported_asset(
        61,
        &dev(4),
        json!({"name": "old", "status": "active", "site_id": 10}),
    ));
    desk.assets.push(imported_asset(
        62,
        &dev(9),
        json!({"name": "gone", "status": "active"}),
    ));
    desk
}

#[test]
fn plans_are_deterministic_whatever_the_device_order() {
    let config = mixed_config();
    let devices = mixed_devices();
    let mut reversed = devices.clone();
    reversed.reverse();
    let a = serde_json::to_string(&run(&config, &devices, &mixed_desk())).unwrap();
    let b = serde_json::to_string(&run(&config, &reversed, &mixed_desk())).unwrap();
    assert_eq!(a, b);
}

#[test]
fn pages_plan_what_the_whole_read_plans() {
    let config = mixed_config();
    let mut devices = mixed_devices();
    devices.sort_by(|a, b| a.external_id.cmp(&b.external_id));
    let whole = run(&config, &devices, &mixed_desk());
    for size in [1, 2, 4] {
        let paged = run_pages(&config, &devices, &mixed_desk(), size);
        let mut a = whole.changes.clone();
        let mut b = paged.changes.clone();
        a.sort_by(|x, y| (x.entity, &x.external_id).cmp(&(y.entity, &y.external_id)));
        b.sort_by(|x, y| (x.entity, &x.external_id).cmp(&(y.entity, &y.external_id)));
        assert_eq!(a, b, "pages of {size}");
        assert_eq!(whole.counts, paged.counts);
        assert_eq!(whole.targets, paged.targets);
    }
}

#[test]
fn a_sync_applying_each_page_plans_like_a_preview_and_settles() {
    let config = mixed_config();
    let mut devices = mixed_devices();
    devices.sort_by(|a, b| a.external_id.cmp(&b.external_id));
    let preview = run_pages(&config, &devices, &mixed_desk(), 2);
    let mut planner = AssetPlanner::new(&config, CONNECTION, now()).unwrap();
    planner.begin_tenant(TENANT, Some(RecordId(1)));
    let mut desk = mixed_desk();
    let mut changes = Vec::new();
    for page in devices.chunks(2) {
        let plan = planner.plan_page(page, &desk);
        desk = apply_assets(&plan, &desk, CONNECTION).unwrap();
        changes.extend(plan.changes);
    }
    let end = planner.finish_tenant(Completeness::Complete, &connection_assets(&desk));
    desk = apply_assets(&end, &desk, CONNECTION).unwrap();
    changes.extend(end.changes);
    assert_eq!(changes, preview.changes);
    let again = run(&config, &devices, &desk);
    assert!(writes(&again).is_empty(), "{:#?}", writes(&again));
}

#[test]
fn the_mixed_run_plans_each_kind_of_change() {
    let plan = run(&mixed_config(), &mixed_devices(), &mixed_desk());
    let action = |n: u32| change_for(&plan, &dev(n)).action;
    assert_eq!(action(1), Action::Link);
    assert_eq!(action(2), Action::Skip);
    assert_eq!(action(3), Action::Create);
    assert_eq!(action(4), Action::Update);
    assert_eq!(action(5), Action::Create);
    assert_eq!(action(9), Action::Deactivate);
    assert_eq!(after(change_for(&plan, &dev(4)), "custom:Storage"), &json!(512));
    assert_eq!(after(change_for(&plan, &dev(3)), "asset_type_id"), &json!(2));
    let mac = plan
        .changes
        .iter()
        .find(|c| c.entity == Entity::AssetType)
        .unwrap();
    assert_eq!(mac.external_id, "Mac");
    for change in &plan.changes {
        assert!(
            !change.rule.is_empty() && !change.reason.is_empty(),
            "{change:#?}"
        );
    }
}

#[test]
fn lookups_name_what_a_page_needs_lower_cased() {
    let config = with_assets(single("Laptop"));
    let planner = AssetPlanner::new(&config, CONNECTION, now()).unwrap();
    let devices = [
        device(1, "PC-1", "AB12").upn("Ann@Contoso.com").build(),
        device(2, "PC-2", "").build(),
        device(3, "Srv", "X9")
            .prop("managementAgent", json!("msSense"))
            .build(),
    ];
    let lookups = planner.lookups(&devices);
    assert_eq!(lookups.source_ids, [dev(1), dev(2)].into());
    assert_eq!(lookups.match_values, ["ab12".to_owned()].into());
    assert_eq!(lookups.user_logins, ["ann@contoso.com".to_owned()].into());
    assert!(lookups.user_ids.is_empty() && lookups.user_emails.is_empty());
}

#[test]
fn a_device_read_twice_is_planned_once() {
    let config = with_assets(single("Laptop"));
    let copy = device(1, "PC-1", "S1").build();
    let plan = run_pages(&config, &[copy.clone(), copy.clone()], &asset_desk(), 1);
    assert_eq!(plan.changes.len(), 1);
    let differing = device(1, "PC-1b", "S1").build();
    let plan = run(&config, &[copy, differing], &asset_desk());
    assert_eq!(plan.changes.len(), 1);
    assert_eq!(plan.errors.len(), 1);
}

#[test]
fn two_assets_carrying_one_missing_device_keep_their_status() {
    let config = with_assets(single("Laptop"));
    let mut desk = asset_desk();
    desk.assets
        .push(imported_asset(50, &dev(1), json!({"status": "active"})));
    desk.assets.push(imported_asset(
        51,
        &dev(1).to_uppercase(),
        json!({"status": "active"}),
    ));
    let plan = run(&config, &[], &desk);
    assert!(plan.changes.is_empty(), "{plan:#?}");
    assert_eq!(plan.errors.len(), 2);
    // Read, the device fits both: a conflict, never a guess.
    let plan = run(&config, &[device(1, "PC-1", "S1").build()], &desk);
    let conflict = change_for(&plan, &dev(1));
    assert_eq!(conflict.action, Action::Conflict);
    assert!(conflict.reason.contains("50, 51"), "{}", conflict.reason);
}

#[test]
fn the_intune_catalog_types_jailbroken_as_text_and_storage_as_a_number() {
    let properties = Catalog::intune_device_properties();
    assert_eq!(properties["jailBroken"], SourceType::String);
    assert_eq!(properties["totalStorageSpaceInBytes"], SourceType::Integer);
    assert_eq!(properties["enrolledDateTime"], SourceType::DateTime);
    assert_eq!(
        asset_catalog()
            .device_property("SERIALNUMBER")
            .map(|(name, _)| name),
        Some("serialNumber")
    );
}

#[test]
fn a_tenant_without_customer_matches_any_asset_and_sets_no_customer() {
    let config = with_assets(AssetMappings {
        default_site: Some(RecordId(20)),
        ..single("Laptop")
    });
    let mut desk = asset_desk();
    desk.sites = common::desk_sites();
    desk.users
        .push(desk_user(106, "u-ed", "ed@fabrikam.com", "ed@fabrikam.com", 20));
    desk.assets
        .push(manual_asset(60, 2, json!({"serial_number": "S1"})));
    let devices = [
        device(1, "PC-1", "S1").build(),
        device(2, "PC-2", "S2").upn("ed@fabrikam.com").build(),
    ];
    let mut planner = AssetPlanner::new(&config, CONNECTION, now()).unwrap();
    planner.begin_tenant(TENANT, None);
    let plan = planner.plan_page(&devices, &desk);
    assert_eq!(change_for(&plan, &dev(1)).action, Action::Link);
    let created = change_for(&plan, &dev(2));
    assert!(!created.fields.contains_key("customer_id"));
    assert_eq!(after(created, "user_id"), &json!(106), "any site's user");
    assert_eq!(after(created, "site_id"), &json!(20));
}

#[test]
fn values_a_field_cannot_hold_are_plan_errors_and_templates_join_properties() {
    let fields = vec![
        FieldMapping {
            source: FieldSource::Template("{manufacturer} {model}".into()),
            target: "name".into(),
        },
        FieldMapping::property("serialNumber", "serial_number"),
        FieldMapping::property("totalStorageSpaceInBytes", "custom:Storage"),
    ];
    let config = with_assets(AssetMappings {
        fields,
        ..single("Laptop")
    });
    let devices = [device(1, "PC-1", "S1")
        .prop("manufacturer", json!("Dell"))
        .prop("model", json!(" Latitude "))
        .prop("totalStorageSpaceInBytes", json!("lots"))
        .build()];
    let plan = run(&config, &devices, &asset_desk());
    let created = change_for(&plan, &dev(1));
    assert_eq!(after(created, "name"), &json!("Dell Latitude"));
    assert!(!created.fields.contains_key("custom:Storage"));
    assert_eq!(plan.errors.len(), 1);
    assert!(
        plan.errors[0].message.contains("custom:Storage"),
        "{:?}",
        plan.errors
    );
}

#[test]
fn another_integrations_asset_is_linked_and_the_reason_says_so() {
    let config = with_assets(single("Laptop"));
    let mut desk = asset_desk();
    let mut rmm = manual_asset(70, 1, json!({"serial_number": "S3", "asset_type_id": 2}));
    rmm.source = Some(SourceIdentity {
        connection_id: deskbridge_core::ConnectionId(99),
        external_id: "rmm-3".into(),
    });
    desk.assets.push(rmm);
    let plan = run(&config, &[device(3, "PC-3", "S3").build()], &desk);
    let linked = change_for(&plan, &dev(3));
    assert_eq!(linked.action, Action::Link);
    assert!(
        linked.reason.contains("device rmm-3 of connection 99"),
        "{}",
        linked.reason
    );
    let applied = apply_assets(&plan, &desk, CONNECTION).unwrap();
    assert_eq!(
        applied.assets[0].source.as_ref().unwrap().connection_id,
        CONNECTION
    );
    assert!(writes(&run(&config, &[device(3, "PC-3", "S3").build()], &applied)).is_empty());
}

#[test]
fn an_asset_the_desk_lists_twice_is_one_candidate() {
    let config = with_assets(single("Laptop"));
    let mut desk = asset_desk();
    desk.assets
        .push(manual_asset(60, 1, json!({"serial_number": "S1"})));
    desk.assets
        .push(manual_asset(60, 1, json!({"serial_number": "S1"})));
    let plan = run(&config, &[device(1, "PC-1", "S1").build()], &desk);
    assert_eq!(change_for(&plan, &dev(1)).action, Action::Link);
}

#[test]
fn pages_or_an_end_without_a_begun_tenant_plan_nothing_and_say_so() {
    let config = with_assets(single("Laptop"));
    let mut planner = AssetPlanner::new(&config, CONNECTION, now()).unwrap();
    let page = planner.plan_page(&[device(1, "PC-1", "S1").build()], &asset_desk());
    assert!(page.changes.is_empty());
    assert_eq!(page.errors.len(), 1);
    let end = planner.finish_tenant(Completeness::Complete, &[imported_asset(50, &dev(1), json!({}))]);
    assert!(end.changes.is_empty());
    assert_eq!(end.errors.len(), 1);
}

#[test]
fn locks_keep_fields_and_statuses_and_say_what_they_kept() {
    let mut settings = single("Laptop");
    settings.field_locks = vec!["name".into()];
    settings.record_locks = vec![AssetRecordLock {
        device_id: dev(2),
        keep_status: true,
        fields: vec!["serial_number".into()],
    }];
    let config = with_assets(settings);
    let mut desk = asset_desk();
    desk.assets.push(imported_asset(
        50,
        &dev(1),
        json!({"name": "Hand-named", "serial_number": "S1", "asset_type_id": 1, "site_id": 10, "status": "active"}),
    ));
    desk.assets.push(imported_asset(
        51,
        &dev(2),
        json!({"name": "Kept", "serial_number": "OLD", "asset_type_id": 1, "site_id": 10, "status": "active"}),
    ));
    desk.assets.push(imported_asset(
        52,
        &dev(3),
        json!({"name": "Locked away", "serial_number": "S3", "asset_type_id": 1, "site_id": 10, "status": "active"}),
    ));
    // Device 1 renamed in Intune, device 2 with a new serial, device 3 gone (its asset holds a
    // record lock only through device 2's id, so it gets the deletion status).
    let plan = run(
        &config,
        &[device(1, "PC-1", "S1").build(), device(2, "Kept", "NEW").build()],
        &desk,
    );
    assert!(plan.changes.iter().all(|c| c.external_id != dev(1)), "{plan:#?}");
    assert!(plan.changes.iter().all(|c| c.external_id != dev(2)), "{plan:#?}");
    let locks: Vec<(&str, &str, &str)> = plan
        .locked
        .iter()
        .map(|l| (l.external_id.as_str(), l.field.as_str(), l.lock.as_str()))
        .collect();
    assert!(
        locks.contains(&(
            dev(1).as_str(),
            "name",
            "field lock: never overwrite 'name' of assets"
        )),
        "{locks:?}"
    );
    assert!(
        locks.contains(&(
            dev(2).as_str(),
            "serial_number",
            "record lock: never overwrite 'serial_number' of this asset"
        )),
        "{locks:?}"
    );
    assert_eq!(change_for(&plan, &dev(3)).action, Action::Deactivate);

    // Device 2 leaves too: its asset keeps its status, and the plan says which lock kept it.
    let plan = run(&config, &[device(1, "PC-1", "S1").build()], &desk);
    assert!(plan.changes.iter().all(|c| c.external_id != dev(2)), "{plan:#?}");
    assert!(
        plan.locked.iter().any(|l| l.external_id == dev(2)
            && l.field == "status"
            && l.lock == "record lock: keep this asset's status"),
        "{:?}",
        plan.locked
    );
}

#[test]
fn locks_name_fields_a_sync_writes() {
    let mut settings = single("Laptop");
    settings.field_locks = vec!["colour".into()];
    settings.record_locks = vec![AssetRecordLock {
        device_id: " ".into(),
        keep_status: true,
        fields: vec![],
    }];
    let config = MappingConfig {
        assets: Some(settings),
        ..MappingConfig::generated(RecordId(10))
    };
    let errors = validate(&config, &asset_catalog()).unwrap_err();
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|e| e.contains("assets.field_locks[0]") && e.contains("'colour'")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|e| e.contains("assets.record_locks[0].device_id")),
        "{text:?}"
    );
}
