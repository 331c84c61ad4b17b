//! What asset planning reads: the devices a connector read, and the desk records the planner
//! asked for ([`crate::AssetLookups`]).

use std::collections::BTreeSet;

use deskbridge_core::RecordId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::catalog::NamedRecord;
use crate::input::{DeskRecord, DeskSite, SourceIdentity};

/// A managed device as its connector read it. Properties are kept as received (Intune: `""` for
/// unknown strings, `0001-01-01T00:00:00Z` for unset dates): the planner, not the connector,
/// decides that such values are "no value", so that mapping and matching treat them alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceDevice {
    /// The device's stable id in the source (Intune: the managed device id). Compared ignoring
    /// ASCII case.
    pub external_id: String,
    /// The source's properties (`deviceName`, `serialNumber`, `operatingSystem`,
    /// `managementAgent`, `userPrincipalName`, …): what field mappings and type rules read.
    pub properties: Map<String, Value>,
    /// The user method: the external id of the user whose device list held this device.
    #[serde(default)]
    pub owner_id: Option<String>,
}

/// A desk asset as planning sees it.
///
/// `fields` uses the desk names: `name`, `serial_number`, `status`, `site_id`, `user_id`,
/// `asset_type_id` (ids as numbers) and `custom:<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeskAsset {
    pub id: RecordId,
    /// The connection that imported or linked it, and the device id there.
    #[serde(default)]
    pub source: Option<SourceIdentity>,
    #[serde(default)]
    pub customer_id: Option<RecordId>,
    /// The tenant it was read from, when a connection imported it.
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub fields: Map<String, Value>,
}

/// The desk records a page of devices needs, as [`crate::AssetPlanner::lookups`] asked for them
/// (more is harmless: the planner filters by customer itself).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AssetDesk {
    pub assets: Vec<DeskAsset>,
    /// Desk users with their source identity and `email`, `network_login`, `site_id`, `active`.
    pub users: Vec<DeskRecord>,
    /// Every asset type on the desk.
    pub asset_types: Vec<NamedRecord>,
    /// The sites of the tenant's customer (all sites when the tenant has no customer), and the
    /// configured default site.
    pub sites: Vec<DeskSite>,
}

/// What to load from the desk for one page of devices. Values are lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AssetLookups {
    /// Assets this connection imported with one of these device ids.
    pub source_ids: BTreeSet<String>,
    /// Assets whose matching field ([`crate::AssetMappings::match_field`]) has one of these
    /// values.
    pub match_values: BTreeSet<String>,
    /// Users this connection imported with one of these external ids.
    pub user_ids: BTreeSet<String>,
    /// Users whose network login or email is one of these.
    pub user_logins: BTreeSet<String>,
    /// Users whose email is one of these.
    pub user_emails: BTreeSet<String>,
}

/// A value that counts as present: Intune's empty strings and placeholder dates do not.
pub fn present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(text) => {
            let text = text.trim();
            !(text.is_empty() || text.starts_with("0001-01-01") || text.starts_with("9999-12-31"))
        }
        _ => true,
    }
}
