//! Devices, a desk of assets and runs of the asset planner, for the asset tests.

use deskbridge_core::RecordId;
use deskbridge_mapping::*;
use serde_json::{Map, Value, json};

use super::{CONNECTION, TENANT, catalog, desk_sites, now};

/// The test catalog with Intune's device properties and two asset custom fields.
pub fn asset_catalog() -> Catalog {
    let mut catalog = catalog();
    catalog.device_properties = Catalog::intune_device_properties();
    catalog.custom_fields.push(CustomField {
        name: "Compliance".into(),
        field_type: CustomFieldType::Text,
        options: vec![],
        option_ids: Default::default(),
        entity: CustomFieldEntity::Asset,
    });
    catalog.custom_fields.push(CustomField {
        name: "Storage".into(),
        field_type: CustomFieldType::Number,
        options: vec![],
        option_ids: Default::default(),
        entity: CustomFieldEntity::Asset,
    });
    catalog.asset_types = vec![super::named(1, "Laptop"), super::named(2, "Phone")];
    catalog
}

pub fn with_assets(assets: AssetMappings) -> ValidatedConfig {
    let config = MappingConfig {
        assets: Some(assets),
        ..MappingConfig::generated(RecordId(10))
    };
    match validate(&config, &asset_catalog()) {
        Ok(validated) => validated,
        Err(errors) => panic!("asset configuration rejected: {errors:#?}"),
    }
}

pub fn dev(n: u32) -> String {
    format!("d0000000-0000-4000-8000-{n:012}")
}

pub struct DeviceBuilder(pub SourceDevice);

/// A Windows laptop with a UPN, as Intune reports one.
pub fn device(n: u32, name: &str, serial: &str) -> DeviceBuilder {
    let properties: Map<String, Value> = json!({
        "id": dev(n),
        "deviceName": name,
        "serialNumber": serial,
        "operatingSystem": "Windows",
        "managedDeviceOwnerType": "company",
        "managementAgent": "mdm",
        "userPrincipalName": "",
        "emailAddress": "",
        "userId": "",
        "enrolledDateTime": "2025-01-02T03:04:05Z",
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    DeviceBuilder(SourceDevice {
        external_id: dev(n),
        properties,
        owner_id: None,
    })
}

impl DeviceBuilder {
    pub fn prop(mut self, name: &str, value: Value) -> Self {
        self.0.properties.insert(name.into(), value);
        self
    }

    pub fn upn(self, upn: &str) -> Self {
        self.prop("userPrincipalName", json!(upn))
    }

    pub fn os(self, os: &str) -> Self {
        self.prop("operatingSystem", json!(os))
    }

    pub fn owner(mut self, owner: &str) -> Self {
        self.0.owner_id = Some(owner.into());
        self
    }

    pub fn build(self) -> SourceDevice {
        self.0
    }
}

/// An active desk user on `site`, imported by this connection as `external_id`.
pub fn desk_user(id: i64, external_id: &str, login: &str, email: &str, site: i64) -> DeskRecord {
    DeskRecord {
        id: RecordId(id),
        source: Some(SourceIdentity {
            connection_id: CONNECTION,
            external_id: external_id.into(),
        }),
        fields: json!({"network_login": login, "email": email, "site_id": site, "name": login})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        locks: RecordLocks::default(),
    }
}

/// An asset typed in by hand (or by another tool) for customer 1.
pub fn manual_asset(id: i64, customer: i64, fields: Value) -> DeskAsset {
    DeskAsset {
        id: RecordId(id),
        source: None,
        customer_id: Some(RecordId(customer)),
        tenant_id: None,
        fields: fields.as_object().cloned().unwrap_or_default(),
    }
}

/// An asset this connection imported from `device` of the test tenant.
pub fn imported_asset(id: i64, device: &str, fields: Value) -> DeskAsset {
    DeskAsset {
        id: RecordId(id),
        source: Some(SourceIdentity {
            connection_id: CONNECTION,
            external_id: device.into(),
        }),
        customer_id: Some(RecordId(1)),
        tenant_id: Some(TENANT.into()),
        fields: fields.as_object().cloned().unwrap_or_default(),
    }
}

/// Customer 1's sites (10 is its main site), the types Laptop (1) and Phone (2), and users
/// ann (site 11), bob (site 12).
pub fn asset_desk() -> AssetDesk {
    AssetDesk {
        assets: Vec::new(),
        users: vec![
            desk_user(101, "u-ann", "ann@contoso.com", "ann@contoso.com", 11),
            desk_user(102, "u-bob", "bob@contoso.com", "robert@contoso.com", 12),
        ],
        asset_types: vec![super::named(1, "Laptop"), super::named(2, "Phone")],
        sites: desk_sites()
            .into_iter()
            .filter(|s| s.customer_id == RecordId(1))
            .collect(),
    }
}

/// The assets a complete run's end is given: this connection's assets of the test tenant.
pub fn connection_assets(desk: &AssetDesk) -> Vec<DeskAsset> {
    desk.assets
        .iter()
        .filter(|a| a.source.as_ref().is_some_and(|s| s.connection_id == CONNECTION))
        .cloned()
        .collect()
}

/// A whole run over the test tenant (customer 1) in pages of `page_size` devices, each page
/// planned against `desk` as given (a preview), ended after a complete read.
pub fn run_pages(
    config: &ValidatedConfig,
    devices: &[SourceDevice],
    desk: &AssetDesk,
    page_size: usize,
) -> Plan {
    let mut planner = AssetPlanner::new(config, CONNECTION, now()).unwrap();
    planner.begin_tenant(TENANT, Some(RecordId(1)));
    let mut plan: Option<Plan> = None;
    for page in devices.chunks(page_size.max(1)) {
        let part = planner.plan_page(page, desk);
        match plan.as_mut() {
            Some(plan) => plan.absorb(part),
            None => plan = Some(part),
        }
    }
    let end = planner.finish_tenant(Completeness::Complete, &connection_assets(desk));
    match plan {
        Some(mut plan) => {
            plan.absorb(end);
            plan
        }
        None => end,
    }
}

/// A whole run in one page.
pub fn run(config: &ValidatedConfig, devices: &[SourceDevice], desk: &AssetDesk) -> Plan {
    run_pages(config, devices, desk, devices.len())
}

/// The asset change for a device.
pub fn change_for<'p>(plan: &'p Plan, device: &str) -> &'p Change {
    plan.changes
        .iter()
        .find(|c| c.entity == Entity::Asset && c.external_id == device)
        .unwrap_or_else(|| panic!("no asset change for {device} in {:#?}", plan.changes))
}

pub fn after<'c>(change: &'c Change, field: &str) -> &'c Value {
    &change
        .fields
        .get(field)
        .unwrap_or_else(|| panic!("no field {field} in {change:#?}"))
        .after
}
