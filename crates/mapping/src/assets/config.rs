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
