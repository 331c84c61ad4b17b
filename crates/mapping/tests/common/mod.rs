//! A small synthetic desk and tenant shared by the mapping tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use deskbridge_core::{ConnectionId, RecordId};
use deskbridge_mapping::*;
use serde_json::{Map, Value, json};

pub const CONNECTION: ConnectionId = ConnectionId(7);
pub const TENANT: &str = "11111111-1111-4111-8111-111111111111";
pub const OTHER_TENANT: &str = "22222222-2222-4222-8222-222222222222";
pub const E3: &str = "6fd2c87f-b296-42f0-b197-1e91e994b900";
pub const E5: &str = "c7df2760-2c81-4ef7-b578-5b5392b571df";

pub fn named(id: i64, name: &str) -> NamedRecord {
    NamedRecord {
        id: RecordId(id),
        name: name.into(),
    }
}

pub fn site(id: i64, customer: i64, name: &str, code: &str) -> CatalogSite {
    CatalogSite {
        id: RecordId(id),
        customer_id: RecordId(customer),
        name: name.into(),
        fields: BTreeMap::from([("custom:Code".to_owned(), json!(code))]),
    }
}

pub fn catalog() -> Catalog {
    Catalog {
        customers: vec![named(1, "Contoso Ltd"), named(2, "Fabrikam")],
        sites: vec![
            site(10, 1, "Main", "MAIN"),
            site(11, 1, "London", "LDN"),
            site(12, 1, "Leeds", "LDS"),
            site(20, 2, "Main", "FAB"),
        ],
        user_roles: vec![named(1, "Staff"), named(2, "Managers"), named(3, "Executives")],
        agent_roles: vec![
            named(1, "Service Desk"),
            named(2, "Change Manager"),
            named(3, "Leavers"),
            named(4, "Named Licence"),
        ],
        teams: vec![
            named(1, "1st Line"),
            named(2, "2nd Line"),
            named(3, "Infrastructure"),
        ],
        cabs: vec![named(1, "Main CAB")],
        cab_roles: vec![named(1, "Chair")],
        custom_fields: vec![
            CustomField {
                name: "Office".into(),
                field_type: CustomFieldType::Text,
                options: vec![],
                option_ids: Default::default(),
                entity: CustomFieldEntity::User,
            },
            CustomField {
                name: "IsVip".into(),
                field_type: CustomFieldType::Boolean,
                options: vec![],
                option_ids: Default::default(),
                entity: CustomFieldEntity::User,
            },
            CustomField {
                name: "StartDate".into(),
                field_type: CustomFieldType::Date,
                options: vec![],
                option_ids: Default::default(),
                entity: CustomFieldEntity::User,
            },
            CustomField {
                name: "Tier".into(),
                field_type: CustomFieldType::SingleSelect,
                options: vec!["Gold".into(), "Silver".into()],
                option_ids: [("100000000", "Gold"), ("100000001", "Silver")]
                    .into_iter()
                    .map(|(id, value)| (id.to_owned(), value.to_owned()))
                    .collect(),
                entity: CustomFieldEntity::User,
            },
            CustomField {
                name: "Code".into(),
                field_type: CustomFieldType::Text,
                options: vec![],
                option_ids: Default::default(),
                entity: CustomFieldEntity::Site,
            },
        ],
        groups: [
            "All Staff",
            "Loc-London",
            "IT Service Desk",
            "IT Change",
            "Leavers",
            "Executives",
            "Licensed Users",
        ]
        .map(str::to_owned)
        .into(),
        source_properties: Catalog::entra_user_properties(),
        ..Catalog::default()
    }
}

/// The realistic configuration the snapshot tests preview.
pub fn config() -> MappingConfig {
    let mut config = MappingConfig::generated(RecordId(10));
    config
        .user_fields
        .push(FieldMapping::property("officeLocation", "custom:Office"));
    config
        .user_fields
        .push(FieldMapping::property("manager", "line_manager_id"));
    config
        .agent_fields
        .push(FieldMapping::property("manager", "line_manager_id"));
    config
        .agent_fields
        .push(FieldMapping::property("department", "team"));
    config.site_mappings = vec![
        SiteMapping {
            id: 1,
            name: "Service desk agents".into(),
            sequence: 5,
            target: SiteTarget::Agent {
                licence_type: LicenceTypeChoice::NoChange,
                creation_type: None,
            },
            group: Some(GroupFilter {
                name: "IT Service Desk".into(),
                nested: false,
            }),
            ..SiteMapping::default()
        },
        SiteMapping {
            id: 2,
            name: "London staff".into(),
            sequence: 10,
            target: SiteTarget::ExistingSite {
                site_id: RecordId(11),
            },
            group: Some(GroupFilter {
                name: "Loc-London".into(),
                nested: true,
            }),
            user_role_id: Some(RecordId(1)),
            ..SiteMapping::default()
        },
        SiteMapping {
            id: 3,
            name: "Offices by code".into(),
            sequence: 20,
            target: SiteTarget::MatchSiteField {
                customer_id: Some(RecordId(1)),
                site_field: "custom:Code".into(),
                user_field: "custom:Office".into(),
                unmatched: UnmatchedSite::DoNotImport,
            },
            filter: Some("startswith(officeLocation,'L') and officeLocation ne 'LDN'".into()),
            ..SiteMapping::default()
        },
        SiteMapping {
            id: 4,
            name: "Everyone else".into(),
            sequence: 50,
            target: SiteTarget::CustomerByField {
                customer_id: RecordId(1),
                field: "city".into(),
            },
            filter: Some("accountEnabled eq true or department ne null".into()),
            external_users: ExternalUsers::IncludeIfLicensed,
            values: BTreeMap::from([("custom:IsVip".to_owned(), json!(false))]),
            ..SiteMapping::default()
        },
    ];
    config.advanced = AdvancedMappings {
        agent_roles: vec![
            GroupToRecord {
                group: "IT Service Desk".into(),
                id: RecordId(1),
            },
            GroupToRecord {
                group: "IT Change".into(),
                id: RecordId(2),
            },
            GroupToRecord {
                group: "Leavers".into(),
                id: RecordId(3),
            },
        ],
        user_roles: vec![GroupToRecord {
            group: "Executives".into(),
            id: RecordId(3),
        }],
        teams: vec![GroupToRecord {
            group: "IT Change".into(),
            id: RecordId(3),
        }],
        remove_agents_from_unmapped_teams: true,
        cabs: vec![GroupToCab {
            group: "IT Change".into(),
            cab_id: RecordId(1),
            cab_role_id: Some(RecordId(1)),
        }],
        full_role_management: true,
        role_for_users_without_manager: Some(RecordId(2)),
        nested_groups: false,
    };
    config.licence_management = LicenceManagement {
        enabled: true,
        named_licence_roles: vec![RecordId(2)],
        inactive_roles: vec![RecordId(3)],
    };
    config.service_accounts = Some(ServiceAccounts {
        group: Some("All Staff".into()),
        required_skus: vec![],
    });
    config.imports.deactivate_not_found = true;
    config.imports.reassign_tickets_of_inactive_agents = true;
    config
}

pub fn validated(config: &MappingConfig) -> ValidatedConfig {
    match validate(config, &catalog()) {
        Ok(validated) => validated,
        Err(errors) => panic!("configuration rejected: {errors:#?}"),
    }
}

pub struct UserBuilder(pub SourceUser);

pub fn user(object_id: &str, display_name: &str) -> UserBuilder {
    let mut properties = Map::new();
    let login = display_name.to_lowercase().replace(' ', ".");
    properties.insert("displayName".into(), json!(display_name));
    properties.insert("userPrincipalName".into(), json!(format!("{login}@contoso.com")));
    properties.insert("mail".into(), json!(format!("{login}@contoso.com")));
    properties.insert("accountEnabled".into(), json!(true));
    properties.insert("userType".into(), json!("Member"));
    UserBuilder(SourceUser {
        external_id: object_id.into(),
        properties,
        manager_id: None,
        groups: BTreeSet::new(),
        transitive_groups: BTreeSet::new(),
        sku_ids: BTreeSet::new(),
        account_enabled: true,
        external: false,
    })
}

impl UserBuilder {
    pub fn prop(mut self, name: &str, value: Value) -> Self {
        self.0.properties.insert(name.into(), value);
        self
    }
    pub fn groups(mut self, groups: &[&str]) -> Self {
        for group in groups {
            self.0.groups.insert((*group).into());
            self.0.transitive_groups.insert((*group).into());
        }
        self
    }
    pub fn nested_groups(mut self, groups: &[&str]) -> Self {
        for group in groups {
            self.0.transitive_groups.insert((*group).into());
        }
        self
    }
    pub fn manager(mut self, manager: &str) -> Self {
        self.0.manager_id = Some(manager.into());
        self
    }
    pub fn skus(mut self, skus: &[&str]) -> Self {
        self.0.sku_ids = skus.iter().map(|s| (*s).to_owned()).collect();
        self
    }
    pub fn disabled(mut self) -> Self {
        self.0.account_enabled = false;
        self.0.properties.insert("accountEnabled".into(), json!(false));
        self
    }
    pub fn guest(mut self) -> Self {
        self.0.properties.insert("userType".into(), json!("Guest"));
        self
    }
    /// The user as the Entra connector hands it over: guests detected from their properties.
    pub fn build(mut self) -> SourceUser {
        // As the Entra connector decides it: userType Guest, or #EXT# in the user principal name.
        let text = |key: &str| {
            self.0
                .properties
                .get(key)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        self.0.external = text("userType").eq_ignore_ascii_case("guest")
            || text("userPrincipalName").to_ascii_uppercase().contains("#EXT#");
        self.0
    }
}

pub fn full_read(users: Vec<SourceUser>) -> TenantRead {
    TenantRead {
        tenant_id: TENANT.into(),
        customer_id: Some(RecordId(1)),
        mode: ReadMode::Full,
        completeness: Completeness::Complete,
        users,
        removed: vec![],
        subscribed_skus: None,
        subscriptions: None,
        usage: None,
    }
}

pub fn input(tenants: Vec<TenantRead>) -> PlanInput {
    PlanInput {
        connection_id: CONNECTION,
        tenants,
        approved_tenants: BTreeSet::new(),
    }
}

pub fn desk_sites() -> Vec<DeskSite> {
    catalog()
        .sites
        .into_iter()
        .map(|s| DeskSite {
            id: s.id,
            customer_id: s.customer_id,
            name: s.name,
            is_main: s.id.0 == 10,
            fields: s.fields,
        })
        .collect()
}

pub fn empty_desk() -> DeskSnapshot {
    DeskSnapshot {
        sites: desk_sites(),
        licences: vec![
            DeskLicence {
                id: RecordId(1),
                sku_id: E3.into(),
                customer_id: Some(RecordId(1)),
                fields: BTreeMap::new(),
            },
            DeskLicence {
                id: RecordId(2),
                sku_id: E5.into(),
                customer_id: Some(RecordId(1)),
                fields: BTreeMap::new(),
            },
        ],
        ..DeskSnapshot::default()
    }
}

/// A desk record imported earlier by this connection.
pub fn imported(id: i64, object_id: &str, fields: Value) -> DeskRecord {
    let mut fields = fields.as_object().cloned().unwrap_or_default();
    fields.insert("azure_object_id".into(), json!(object_id));
    fields.insert("azure_tenant_id".into(), json!(TENANT));
    DeskRecord {
        id: RecordId(id),
        source: Some(SourceIdentity {
            connection_id: CONNECTION,
            external_id: object_id.into(),
        }),
        fields,
        locks: RecordLocks::default(),
    }
}

/// A desk record typed in by hand, not linked to Azure.
pub fn manual(id: i64, fields: Value) -> DeskRecord {
    DeskRecord {
        id: RecordId(id),
        source: None,
        fields: fields.as_object().cloned().unwrap_or_default(),
        locks: RecordLocks::default(),
    }
}

pub fn now() -> jiff::Timestamp {
    "2026-11-23T09:00:00Z".parse().unwrap()
}

pub fn oid(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

pub mod assets;
