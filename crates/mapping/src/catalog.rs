//! What exists on both sides when a configuration is saved: desk records it may refer to, and
//! the tenant's groups and the source's user properties.

use std::collections::{BTreeMap, BTreeSet};

use deskbridge_core::RecordId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Catalog {
    pub customers: Vec<NamedRecord>,
    pub sites: Vec<CatalogSite>,
    pub user_roles: Vec<NamedRecord>,
    pub agent_roles: Vec<NamedRecord>,
    pub teams: Vec<NamedRecord>,
    pub cabs: Vec<NamedRecord>,
    pub cab_roles: Vec<NamedRecord>,
    pub custom_fields: Vec<CustomField>,
    /// Display names of the tenant's groups (all tenants of the connection).
    pub groups: BTreeSet<String>,
    /// Source user properties a mapping may read, by path (`/` for nested ones).
    #[serde(alias = "graph_properties")]
    pub source_properties: BTreeMap<String, SourceType>,
    /// Source device properties an asset mapping or type rule may read (empty: the connector
    /// reads no devices).
    pub device_properties: BTreeMap<String, SourceType>,
    /// Every desk asset type (rules name types; a missing one is created by the sync).
    pub asset_types: Vec<NamedRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedRecord {
    pub id: RecordId,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogSite {
    pub id: RecordId,
    pub customer_id: RecordId,
    pub name: String,
    /// Site fields by desk name (`custom:<name>` for custom fields).
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomField {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: CustomFieldType,
    /// Allowed values of a single or multi select.
    #[serde(default)]
    pub options: Vec<String>,
    /// The options' external ids (the source's option values, e.g. a Dataverse choice's
    /// `100000001`) → the option's value: how an option-set source value is mapped, value by value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub option_ids: BTreeMap<String, String>,
    /// Which records carry it.
    #[serde(default = "default_custom_field_entity")]
    pub entity: CustomFieldEntity,
}

fn default_custom_field_entity() -> CustomFieldEntity {
    CustomFieldEntity::User
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomFieldEntity {
    User,
    Agent,
    Site,
    Asset,
    Customer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomFieldType {
    Text,
    Number,
    Date,
    Boolean,
    SingleSelect,
    MultiSelect,
}

/// The type of a source user property, as far as mapping cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceType {
    String,
    Boolean,
    Integer,
    DateTime,
    StringCollection,
    Object,
    ObjectCollection,
    /// The `manager` navigation property.
    Manager,
    /// A choice (Dataverse option set): an integer option value, mapped to a desk select option
    /// through the option's external id.
    OptionSet,
    /// A multi-select choice: option values as Dataverse sends them, `"1,9"`.
    MultiOptionSet,
}

impl SourceType {
    pub fn describe(self) -> &'static str {
        match self {
            Self::String => "text",
            Self::Boolean => "boolean",
            Self::Integer => "number",
            Self::DateTime => "date-time",
            Self::StringCollection => "text collection",
            Self::Object => "object",
            Self::ObjectCollection => "object collection",
            Self::Manager => "manager reference",
            Self::OptionSet => "option set",
            Self::MultiOptionSet => "multi-select option set",
        }
    }
}

impl Catalog {
    /// The Entra (Graph v1.0) user properties deskbridge reads (types from Graph's CSDL schema):
    /// what the Entra connector puts in [`Catalog::source_properties`].
    pub fn entra_user_properties() -> BTreeMap<String, SourceType> {
        use SourceType::*;
        let mut properties: BTreeMap<std::string::String, SourceType> = [
            ("id", String),
            ("accountEnabled", Boolean),
            ("displayName", String),
            ("givenName", String),
            ("surname", String),
            ("mail", String),
            ("mailNickname", String),
            ("userPrincipalName", String),
            ("jobTitle", String),
            ("department", String),
            ("companyName", String),
            ("officeLocation", String),
            ("mobilePhone", String),
            ("faxNumber", String),
            ("businessPhones", StringCollection),
            ("otherMails", StringCollection),
            ("proxyAddresses", StringCollection),
            ("employeeId", String),
            ("employeeType", String),
            ("employeeHireDate", DateTime),
            ("employeeLeaveDateTime", DateTime),
            ("city", String),
            ("state", String),
            ("country", String),
            ("streetAddress", String),
            ("postalCode", String),
            ("usageLocation", String),
            ("preferredLanguage", String),
            ("userType", String),
            ("creationType", String),
            ("externalUserState", String),
            ("createdDateTime", DateTime),
            ("onPremisesSamAccountName", String),
            ("onPremisesUserPrincipalName", String),
            ("onPremisesDomainName", String),
            ("onPremisesImmutableId", String),
            ("onPremisesSyncEnabled", Boolean),
            ("onPremisesLastSyncDateTime", DateTime),
            ("onPremisesExtensionAttributes", Object),
            ("signInActivity", Object),
            ("signInActivity/lastSignInDateTime", DateTime),
            ("signInActivity/lastSuccessfulSignInDateTime", DateTime),
            ("assignedLicenses", ObjectCollection),
            ("assignedLicenses/skuId", String),
            ("manager", Manager),
        ]
        .into_iter()
        .map(|(name, ty)| (name.to_owned(), ty))
        .collect();
        for index in 1..=15 {
            properties.insert(
                format!("onPremisesExtensionAttributes/extensionAttribute{index}"),
                String,
            );
        }
        properties
    }

    /// The Intune managed device properties deskbridge reads (Graph v1.0 `managedDevice`, as the
    /// API notes' B7 lists them): what a device connector puts in
    /// [`Catalog::device_properties`]. `jailBroken` is text ("True", "False", "Unknown"), and
    /// missing values arrive as `""` or placeholder dates (see [`crate::present`]).
    pub fn intune_device_properties() -> BTreeMap<String, SourceType> {
        use SourceType::*;
        [
            ("id", String),
            ("userId", String),
            ("deviceName", String),
            ("managedDeviceName", String),
            ("managedDeviceOwnerType", String),
            ("enrolledDateTime", DateTime),
            ("lastSyncDateTime", DateTime),
            ("operatingSystem", String),
            ("osVersion", String),
            ("complianceState", String),
            ("managementAgent", String),
            ("azureADDeviceId", String),
            ("azureADRegistered", Boolean),
            ("deviceEnrollmentType", String),
            ("deviceRegistrationState", String),
            ("isEncrypted", Boolean),
            ("isSupervised", Boolean),
            ("jailBroken", String),
            ("userPrincipalName", String),
            ("userDisplayName", String),
            ("emailAddress", String),
            ("model", String),
            ("manufacturer", String),
            ("serialNumber", String),
            ("imei", String),
            ("meid", String),
            ("wiFiMacAddress", String),
            ("phoneNumber", String),
            ("totalStorageSpaceInBytes", Integer),
            ("freeStorageSpaceInBytes", Integer),
            ("complianceGracePeriodExpirationDateTime", DateTime),
            ("partnerReportedThreatState", String),
            ("deviceCategoryDisplayName", String),
            ("exchangeAccessState", String),
            ("exchangeLastSuccessfulSyncDateTime", DateTime),
            ("easActivated", Boolean),
            ("easDeviceId", String),
        ]
        .into_iter()
        .map(|(name, ty)| (name.to_owned(), ty))
        .collect()
    }

    /// Looks a device property up exactly, then ignoring case (as Graph does).
    pub fn device_property(&self, path: &str) -> Option<(&str, SourceType)> {
        self.device_properties
            .get_key_value(path)
            .map(|(k, v)| (k.as_str(), *v))
            .or_else(|| {
                self.device_properties
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(path))
                    .map(|(k, v)| (k.as_str(), *v))
            })
    }

    /// Looks a source property up exactly, then ignoring case (as Graph does).
    pub fn source_property(&self, path: &str) -> Option<(&str, SourceType)> {
        self.source_properties
            .get_key_value(path)
            .map(|(k, v)| (k.as_str(), *v))
            .or_else(|| {
                self.source_properties
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(path))
                    .map(|(k, v)| (k.as_str(), *v))
            })
    }

    pub fn custom_field(&self, name: &str, entity: CustomFieldEntity) -> Option<&CustomField> {
        self.custom_fields
            .iter()
            .find(|field| field.name == name && field.entity == entity)
    }
}
