//! Properties of the asset planner over generated devices and desks: type rules, matching, and
//! applying a plan then planning again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::assets::*;
use common::*;
use deskbridge_core::RecordId;
use deskbridge_mapping::*;
use proptest::prelude::*;
use serde_json::json;

const OSES: [&str; 5] = ["Windows", "iOS", "Android", "macOS", ""];
const OWNERS: [&str; 3] = ["company", "personal", "unknown"];

/// (filter, type, the test's own reading of the filter).
type Rule = (&'static str, &'static str, fn(&str, &str) -> bool);

const RULES: [Rule; 4] = [
    ("operatingSystem eq 'iOS'", "Phone", |os, _| os == "iOS"),
    ("managedDeviceOwnerType eq 'personal'", "BYOD", |_, owner| {
        owner == "personal"
    }),
    ("operatingSystem eq 'Windows'", "Laptop", |os, _| os == "Windows"),
    (
        "operatingSystem eq 'iOS' or operatingSystem eq 'Android'",
        "Mobile",
        |os, _| os == "iOS" || os == "Android",
    ),
];

fn typed_devices() -> impl Strategy<Value = Vec<(u32, &'static str, &'static str)>> {
    prop::collection::btree_map(
        1u32..40,
        (
            prop::sample::select(OSES.to_vec()),
            prop::sample::select(OWNERS.to_vec()),
        ),
        0..12,
    )
    .prop_map(|devices| {
        devices
            .into_iter()
            .map(|(n, (os, owner))| (n, os, owner))
            .collect()
    })
}

fn build(devices: &[(u32, &str, &str)]) -> Vec<SourceDevice> {
    devices
        .iter()
        .map(|(n, os, owner)| {
            device(*n, &format!("Dev-{n}"), &format!("SER{n}"))
                .os(os)
                .prop("managedDeviceOwnerType", json!(owner))
                .build()
        })
        .collect()
}

fn expected_type(order: &[usize], os: &str, owner: &str) -> &'static str {
    order
        .iter()
        .map(|i| RULES[*i])
        .find(|(_, _, matches)| matches(os, owner))
        .map_or("Other", |(_, name, _)| name)
}

fn sorted(plan: &Plan) -> Vec<Change> {
    let mut changes = plan.changes.clone();
    changes.sort_by(|a, b| (a.entity, &a.external_id).cmp(&(b.entity, &b.external_id)));
    changes
}

fn present_serial(serial: &str) -> bool {
    present(&json!(serial))
}

const SERIALS: [&str; 7] = [
    "S1",
    " s1 ",
    "S2",
    "",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "S3",
];

/// A desk asset: (customer, serial, imported by this connection from device n).
type AssetSeed = (i64, &'static str, Option<u32>);

fn desk_assets() -> impl Strategy<Value = Vec<AssetSeed>> {
    prop::collection::vec(
        (
            prop::sample::select(vec![1i64, 1, 2]),
            prop::sample::select(SERIALS.to_vec()),
            prop::option::weighted(0.3, 1u32..10),
        ),
        0..6,
    )
}

fn matching_devices() -> impl Strategy<Value = BTreeMap<u32, (&'static str, &'static str)>> {
    prop::collection::btree_map(
        1u32..10,
        (
            prop::sample::select(SERIALS.to_vec()),
            prop::sample::select(vec!["ann@contoso.com", "bob@contoso.com", "", "nobody@x.com"]),
        ),
        0..8,
    )
}

fn desk_of(seeds: &[AssetSeed]) -> AssetDesk {
    let mut desk = asset_desk();
    for (i, (customer, serial, imported)) in seeds.iter().enumerate() {
        let id = 50 + i64::try_from(i).unwrap();
        let fields = json!({"serial_number": serial, "name": format!("Asset {id}")});
        desk.assets.push(match imported {
            Some(n) => imported_asset(id, &dev(*n), fields),
            None => manual_asset(id, *customer, fields),
        });
    }
    desk
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_first_matching_rule_decides_whatever_the_device_order(
        devices in typed_devices(),
        order in Just(vec![0usize, 1, 2, 3]).prop_shuffle(),
        shuffled in any::<u64>(),
        page in 1usize..5,
    ) {
        let config = with_assets(AssetMappings {
            types: AssetTypes::Rules {
                rules: order
                    .iter()
                    .map(|i| AssetTypeRule { filter: RULES[*i].0.into(), asset_type: RULES[*i].1.into() })
                    .collect(),
                unmatched: UnmatchedDevice::Fallback { asset_type: "Other".into() },
            },
            ..AssetMappings::default()
        });
        let built = build(&devices);
        let plan = run(&config, &built, &asset_desk());
        for (n, os, owner) in &devices {
            let wanted = expected_type(&order, os, owner);
            let reference = match wanted {
                "Laptop" => json!(1),
                "Phone" => json!(2),
                other => json!({"asset_type": other}),
            };
            prop_assert_eq!(after(change_for(&plan, &dev(*n)), "asset_type_id"), &reference);
        }
        let created: BTreeSet<&str> = plan
            .changes
            .iter()
            .filter(|c| c.entity == Entity::AssetType)
            .map(|c| c.external_id.as_str())
            .collect();
        let types = plan.changes.iter().filter(|c| c.entity == Entity::AssetType).count();
        prop_assert_eq!(types, created.len(), "each type is created once");
        // Another order of the same devices, and pages of them, plan the same.
        let mut other = built.clone();
        let rotate = usize::try_from(shuffled % (other.len().max(1) as u64)).unwrap();
        other.rotate_left(rotate);
        other.reverse();
        prop_assert_eq!(&run(&config, &other, &asset_desk()), &plan);
        let mut in_order = built.clone();
        in_order.sort_by(|a, b| a.external_id.cmp(&b.external_id));
        prop_assert_eq!(sorted(&run_pages(&config, &in_order, &asset_desk(), page)), sorted(&plan));
    }

    #[test]
    fn matching_never_links_on_no_value_nor_one_asset_twice_and_settles(
        devices in matching_devices(),
        seeds in desk_assets(),
        page in 1usize..4,
    ) {
        let config = with_assets(AssetMappings {
            types: AssetTypes::Single { asset_type: "Laptop".into() },
            ..AssetMappings::default()
        });
        let built: Vec<SourceDevice> = devices
            .iter()
            .map(|(n, (serial, upn))| device(*n, &format!("Dev-{n}"), serial).upn(upn).build())
            .collect();
        let desk = desk_of(&seeds);
        // One page: page-wise, a device fitting an asset an earlier page linked is a conflict
        // once and created the next run (as for users), which is not "no writes".
        let plan = run(&config, &built, &desk);
        for change in plan.changes.iter().filter(|c| c.action == Action::Link) {
            let n = devices
                .keys()
                .find(|n| dev(**n) == change.external_id)
                .unwrap();
            prop_assert!(present_serial(devices[n].0), "{change:#?}");
            let target = plan.target_of(change).unwrap();
            let asset = desk.assets.iter().find(|a| a.id == target).unwrap();
            prop_assert!(asset.source.is_none());
            prop_assert_eq!(asset.customer_id, Some(RecordId(1)), "only the tenant's customer");
        }
        let mut targeted = BTreeSet::new();
        for id in plan.targets.values() {
            prop_assert!(targeted.insert(*id), "asset {id} targeted twice: {:#?}", plan.targets);
        }
        // Page-wise too, no asset is linked or updated for two devices.
        let paged = run_pages(&config, &built, &desk, page);
        let mut targeted = BTreeSet::new();
        for id in paged.targets.values() {
            prop_assert!(targeted.insert(*id), "asset {id} targeted twice: {:#?}", paged.targets);
        }
        let applied = apply_assets(&plan, &desk, CONNECTION).unwrap();
        let again = run(&config, &built, &applied);
        let writes: Vec<&Change> = again.writes().collect();
        prop_assert!(writes.is_empty(), "{writes:#?}");
    }
}
