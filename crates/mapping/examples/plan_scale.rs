//! Measures planning at scale on synthetic data: `cargo run --release -p deskbridge-mapping
//! --example plan_scale -- [tenants] [users per tenant]`. Prints timings; asserts nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::time::Instant;

use deskbridge_core::{ConnectionId, RecordId};
use deskbridge_mapping::*;
use serde_json::{Map, json};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let tenants: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(200);
    let per_tenant: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(250);
    let connection = ConnectionId(1);

    let groups = ["Staff", "London", "Service Desk", "Change"];
    let mut catalog = Catalog {
        customers: (1..=i64::from(tenants))
            .map(|id| NamedRecord {
                id: RecordId(id),
                name: format!("Customer {id}"),
            })
            .collect(),
        sites: (1..=i64::from(tenants))
            .map(|id| CatalogSite {
                id: RecordId(id),
                customer_id: RecordId(id),
                name: "Main".into(),
                fields: BTreeMap::new(),
            })
            .collect(),
        agent_roles: vec![
            NamedRecord {
                id: RecordId(1),
                name: "Desk".into(),
            },
            NamedRecord {
                id: RecordId(2),
                name: "Change".into(),
            },
        ],
        user_roles: vec![NamedRecord {
            id: RecordId(1),
            name: "Staff".into(),
        }],
        teams: vec![NamedRecord {
            id: RecordId(1),
            name: "1st Line".into(),
        }],
        groups: groups.map(str::to_owned).into(),
        source_properties: Catalog::entra_user_properties(),
        ..Catalog::default()
    };
    catalog.custom_fields.clear();

    let mut config = MappingConfig::generated(RecordId(1));
    config
        .user_fields
        .push(FieldMapping::property("manager", "line_manager_id"));
    config.site_mappings.clear();
    config.site_mappings.push(SiteMapping {
        id: 1,
        name: "Agents".into(),
        sequence: 1,
        target: SiteTarget::Agent {
            licence_type: LicenceTypeChoice::NoChange,
            creation_type: None,
        },
        group: Some(GroupFilter {
            name: "Service Desk".into(),
            nested: false,
        }),
        ..SiteMapping::default()
    });
    for tenant in 1..=tenants {
        config.site_mappings.push(SiteMapping {
            id: tenant + 1,
            name: format!("Tenant {tenant}"),
            sequence: 50,
            tenant_id: Some(tenant_id(tenant)),
            target: SiteTarget::ExistingSite {
                site_id: RecordId(i64::from(tenant)),
            },
            filter: Some("accountEnabled eq true and not startswith(displayName,'svc')".into()),
            ..SiteMapping::default()
        });
    }
    config.advanced.agent_roles = vec![
        GroupToRecord {
            group: "Service Desk".into(),
            id: RecordId(1),
        },
        GroupToRecord {
            group: "Change".into(),
            id: RecordId(2),
        },
    ];
    config.advanced.user_roles = vec![GroupToRecord {
        group: "Staff".into(),
        id: RecordId(1),
    }];
    config.imports.deactivate_not_found = true;

    let started = Instant::now();
    let validated = validate(&config, &catalog).map_err(|errors| format!("{errors:?}"))?;
    let validate_time = started.elapsed();

    let reads: Vec<TenantRead> = (1..=tenants)
        .map(|tenant| TenantRead {
            tenant_id: tenant_id(tenant),
            customer_id: Some(RecordId(i64::from(tenant))),
            mode: ReadMode::Full,
            completeness: Completeness::Complete,
            users: (0..per_tenant).map(|n| source_user(tenant, n, &groups)).collect(),
            removed: vec![],
            subscribed_skus: Some(vec![SubscribedSku {
                sku_id: "6fd2c87f-b296-42f0-b197-1e91e994b900".into(),
                sku_part_number: "ENTERPRISEPACK".into(),
                friendly_name: Some("Office 365 E3".into()),
                enabled_units: Some(i64::from(per_tenant)),
                consumed_units: Some(i64::from(per_tenant) / 2),
                capability_status: Some("Enabled".into()),
            }]),
            subscriptions: None,
            usage: None,
        })
        .collect();
    let total = u64::from(tenants) * u64::from(per_tenant);
    let input = PlanInput {
        connection_id: connection,
        tenants: reads,
        approved_tenants: BTreeSet::new(),
    };
    let desk = DeskSnapshot {
        sites: catalog
            .sites
            .iter()
            .map(|s| DeskSite {
                id: s.id,
                customer_id: s.customer_id,
                name: s.name.clone(),
                is_main: true,
                fields: s.fields.clone(),
            })
            .collect(),
        ..DeskSnapshot::default()
    };

    let started = Instant::now();
    let first = plan(&validated, &input, &desk, "2026-11-23T09:00:00Z".parse()?);
    let first_time = started.elapsed();
    let started = Instant::now();
    let applied = apply_to_snapshot(&desk, &first, connection)?;
    let apply_time = started.elapsed();
    let started = Instant::now();
    let second = plan(&validated, &input, &applied, "2026-11-23T10:00:00Z".parse()?);
    let second_time = started.elapsed();
    let json_bytes = serde_json::to_vec(&first)?.len();

    println!(
        "tenants {tenants}, users {total}, site mappings {}",
        config.site_mappings.len()
    );
    println!("validate: {validate_time:?}");
    println!(
        "first plan (empty desk): {first_time:?} — {:?}, {:.0} users/s",
        first.counts,
        total as f64 / first_time.as_secs_f64()
    );
    println!("apply_to_snapshot: {apply_time:?}");
    println!(
        "second plan (converged desk): {second_time:?} — {:?}, {:.0} users/s",
        second.counts,
        total as f64 / second_time.as_secs_f64()
    );
    println!("plan JSON: {:.1} MB", json_bytes as f64 / 1e6);
    Ok(())
}

fn tenant_id(tenant: u32) -> String {
    format!("{tenant:08x}-0000-4000-8000-000000000000")
}

fn source_user(tenant: u32, n: u32, groups: &[&str]) -> SourceUser {
    let object_id = format!("{tenant:08x}-0000-4000-8000-{n:012}");
    let mut properties = Map::new();
    let name = if n.is_multiple_of(50) {
        format!("svc account {n}")
    } else {
        format!("User {tenant}-{n}")
    };
    properties.insert("displayName".into(), json!(name));
    properties.insert("givenName".into(), json!("User"));
    properties.insert("surname".into(), json!(format!("{tenant}-{n}")));
    properties.insert("mail".into(), json!(format!("user{n}@t{tenant}.example")));
    properties.insert(
        "userPrincipalName".into(),
        json!(format!("user{n}@t{tenant}.example")),
    );
    properties.insert("accountEnabled".into(), json!(!n.is_multiple_of(17)));
    properties.insert("jobTitle".into(), json!("Engineer"));
    let mut member_of: BTreeSet<String> = BTreeSet::new();
    member_of.insert(groups[0].into());
    if n.is_multiple_of(10) {
        member_of.insert(groups[2].into());
    }
    if n.is_multiple_of(25) {
        member_of.insert(groups[3].into());
    }
    SourceUser {
        external_id: object_id,
        properties,
        manager_id: (n > 0).then(|| format!("{tenant:08x}-0000-4000-8000-{:012}", n / 10)),
        transitive_groups: member_of.clone(),
        groups: member_of,
        account_enabled: !n.is_multiple_of(17),
        external: false,
        sku_ids: if n.is_multiple_of(2) {
            BTreeSet::from(["6fd2c87f-b296-42f0-b197-1e91e994b900".to_owned()])
        } else {
            BTreeSet::new()
        },
    }
}
