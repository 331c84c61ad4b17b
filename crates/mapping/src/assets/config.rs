//! How managed devices become desk assets: the part of a connection's mapping configuration an
//! administrator edits under "Assets" (the CSP guide's section 7). Absent
//! ([`crate::MappingConfig::assets`] is `None`): devices are not imported.

use deskbridge_core::RecordId;
use serde::{Deserialize, Serialize};

use crate::config::FieldMapping;

/// Asset import settings of one connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AssetMappings {
    /// How a device's asset type is decided.
    pub types: AssetTypes,
    /// "Don't update the type of existing assets": a matched desk asset keeps its type (useful
    /// when another tool classifies assets and devices only add detail).
    pub keep_existing_types: bool,
    /// How a device is linked to a desk user.
    pub user_link: AssetUserLink,
    /// Device property → desk asset field (`name`, `serial_number` or `custom:<name>`). Each desk
    /// field at most once; typed as user field mappings are.
    pub fields: Vec<FieldMapping>,
    /// The global asset matching field: a desk asset (of the tenant's customer, from any source)
    /// whose value of this desk field equals the device's is updated rather than duplicated.
    /// `serial_number` by default; empty values and Intune's placeholders never match.
    pub match_field: String,
    /// Where a device goes when it is linked to no desk user: this site, or, when `None`, the
    /// main site of the tenant's customer. Must belong to one of the connection's customers.
    pub default_site: Option<RecordId>,
    /// The status a new asset gets.
    pub new_status: String,
    /// The status an asset gets when its device was deleted from the source (never a hard
    /// delete). Applied only after a complete read of the tenant.
    pub deleted_status: String,
    /// Leave out devices managed by Microsoft Defender for Endpoint (`managementAgent` is
    /// `msSense`): they are not imported, and assets already imported from them are left alone.
    pub exclude_sense: bool,
    /// Desk asset fields a sync never overwrites on an existing asset (`name`, `serial_number`,
    /// `site_id`, `user_id`, `asset_type_id`, `status` or `custom:<name>`), as field locks do
    /// for people. The change that was not made is listed with the lock.
    pub field_locks: Vec<String>,
    /// Locks on single assets, by device id.
    pub record_locks: Vec<AssetRecordLock>,
}

/// "Never give this asset the deletion status" / "never overwrite these fields of this asset".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetRecordLock {
    /// The device id (Intune: the managed device id).
    pub device_id: String,
    /// Keep the asset's status when its device leaves the source.
    #[serde(default)]
    pub keep_status: bool,
    #[serde(default)]
    pub fields: Vec<String>,
}

impl AssetMappings {
    /// The lock that keeps `field` of the asset of `device_id` as it is, if any, named for people.
    pub fn lock_on(&self, device_id: &str, field: &str) -> Option<String> {
        if self.field_locks.iter().any(|f| f == field) {
            return Some(format!("field lock: never overwrite '{field}' of assets"));
        }
        self.record_locks
            .iter()
            .find(|lock| {
                lock.device_id.eq_ignore_ascii_case(device_id) && lock.fields.iter().any(|f| f == field)
            })
            .map(|_| format!("record lock: never overwrite '{field}' of this asset"))
    }

    /// Whether the asset of `device_id` keeps its status when the device leaves the source.
    pub fn keeps_status(&self, device_id: &str) -> bool {
        self.record_locks
            .iter()
            .any(|lock| lock.keep_status && lock.device_id.eq_ignore_ascii_case(device_id))
    }
}

impl Default for AssetMappings {
    fn default() -> Self {
        Self {
            types: AssetTypes::Single {
                asset_type: "Managed device".into(),
            },
            keep_existing_types: false,
            user_link: AssetUserLink::default(),
            fields: AssetMappings::generated_fields(),
            match_field: "serial_number".into(),
            default_site: None,
            new_status: "active".into(),
            deleted_status: "retired".into(),
            exclude_sense: true,
            field_locks: Vec::new(),
            record_locks: Vec::new(),
        }
    }
}

impl AssetMappings {
    /// The field mappings a new asset configuration starts with.
    pub fn generated_fields() -> Vec<FieldMapping> {
        vec![
            FieldMapping::property("deviceName", "name"),
            FieldMapping::property("serialNumber", "serial_number"),
        ]
    }
}

/// How a device's asset type is decided. Types are named; a type that does not exist on the desk
/// is created (once per name, ignoring case).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum AssetTypes {
    /// The same type for every device.
    Single { asset_type: String },
    /// The value of a device property names the type (`operatingSystem` → "Windows", "iOS"…).
    /// A device whose value is empty gets `fallback`, or is not imported when there is none.
    Field {
        property: String,
        #[serde(default)]
        fallback: Option<String>,
    },
    /// Ordered rules: the first whose filter matches decides; a device no rule matches gets
    /// `unmatched`.
    Rules {
        rules: Vec<AssetTypeRule>,
        unmatched: UnmatchedDevice,
    },
}

/// One asset type rule: an OData `$filter` over the device's properties (e.g.
/// `operatingSystem eq 'Windows' and managedDeviceOwnerType eq 'company'`) and the type it gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetTypeRule {
    pub filter: String,
    pub asset_type: String,
}

/// What happens to a device no type rule matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "then", rename_all = "snake_case", deny_unknown_fields)]
pub enum UnmatchedDevice {
    /// It gets this type.
    Fallback { asset_type: String },
    /// It is not imported (a `skip` with the reason).
    Exclude,
}

/// How a device is linked to a desk user. A device whose user is not on the desk (or is
/// ambiguous there) is linked to nobody: no dangling link, and the reason is in the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum AssetUserLink {
    /// Recommended: a device field is matched to a desk user of the tenant's customer.
    Asset { field: DeviceUserField },
    /// Older: the source lists each imported user's devices; the owner it reports
    /// ([`crate::SourceDevice::owner_id`]) is matched by the user's external id.
    User,
    /// Devices are linked to no user.
    None,
}

impl Default for AssetUserLink {
    fn default() -> Self {
        Self::Asset {
            field: DeviceUserField::UserPrincipalName,
        }
    }
}

/// The device field the asset method matches to a desk user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DeviceUserField {
    /// The user's object id: the desk user this connection imported with that external id.
    UserId,
    /// The user principal name: a desk user whose network login (then email) equals it.
    UserPrincipalName,
    /// The device's email address: a desk user whose email equals it.
    EmailAddress,
}
