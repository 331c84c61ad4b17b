//! Typed Graph resources the sync reads. Every entity keeps the properties it does not model in
//! `extra`, so custom and unknown fields (extension attributes, newly selected properties) stay
//! available to field mappings.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::serde_helpers::{empty_as_none, graph_time, null_as_empty, one_or_many};

/// Why a delta entry was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RemovedReason {
    /// Soft-deleted (still restorable), or for a membership: no longer a member.
    Changed,
    /// Hard-deleted.
    Deleted,
    #[serde(other)]
    Unknown,
}

/// The `@removed` annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedMarker {
    pub reason: RemovedReason,
}

/// A reference to a directory object: group members, `memberOf`, `members@delta`, `manager@delta`,
/// an expanded `manager`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DirectoryObjectRef {
    #[serde(rename = "@odata.type", default, skip_serializing_if = "Option::is_none")]
    pub odata_type: Option<String>,
    pub id: String,
    #[serde(rename = "@removed", default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<RemovedMarker>,
    /// Whatever else was selected or expanded (displayName, userPrincipalName, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl DirectoryObjectRef {
    /// `microsoft.graph.user` for `#microsoft.graph.user`.
    pub fn type_name(&self) -> Option<&str> {
        self.odata_type.as_deref().map(|t| t.trim_start_matches('#'))
    }

    pub fn is_user(&self) -> bool {
        self.type_name()
            .is_some_and(|t| t.eq_ignore_ascii_case("microsoft.graph.user"))
    }

    pub fn is_group(&self) -> bool {
        self.type_name()
            .is_some_and(|t| t.eq_ignore_ascii_case("microsoft.graph.group"))
    }

    pub fn is_removed(&self) -> bool {
        self.removed.is_some()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedLicense {
    pub sku_id: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub disabled_plans: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignInActivity {
    #[serde(default, deserialize_with = "graph_time")]
    pub last_sign_in_date_time: Option<Timestamp>,
    #[serde(default, deserialize_with = "graph_time")]
    pub last_non_interactive_sign_in_date_time: Option<Timestamp>,
    #[serde(default, deserialize_with = "graph_time")]
    pub last_successful_sign_in_date_time: Option<Timestamp>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(rename = "@odata.type", default, skip_serializing_if = "Option::is_none")]
    pub odata_type: Option<String>,
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub surname: Option<String>,
    #[serde(default)]
    pub user_principal_name: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default)]
    pub mail_nickname: Option<String>,
    #[serde(default)]
    pub job_title: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub company_name: Option<String>,
    #[serde(default)]
    pub office_location: Option<String>,
    #[serde(default)]
    pub mobile_phone: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub business_phones: Vec<String>,
    #[serde(default)]
    pub account_enabled: Option<bool>,
    #[serde(default)]
    pub user_type: Option<String>,
    #[serde(default)]
    pub usage_location: Option<String>,
    #[serde(default)]
    pub employee_id: Option<String>,
    #[serde(default)]
    pub preferred_language: Option<String>,
    #[serde(default)]
    pub on_premises_immutable_id: Option<String>,
    #[serde(default)]
    pub on_premises_sam_account_name: Option<String>,
    #[serde(default)]
    pub on_premises_sync_enabled: Option<bool>,
    #[serde(default, deserialize_with = "graph_time")]
    pub created_date_time: Option<Timestamp>,
    #[serde(default, deserialize_with = "graph_time")]
    pub deleted_date_time: Option<Timestamp>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub assigned_licenses: Vec<AssignedLicense>,
    #[serde(default)]
    pub sign_in_activity: Option<SignInActivity>,
    /// Present with `$expand=manager`.
    #[serde(default)]
    pub manager: Option<DirectoryObjectRef>,
    /// Manager changes in a users delta (a removal carries `@removed`).
    #[serde(
        rename = "manager@delta",
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Option::is_none"
    )]
    pub manager_delta: Option<Vec<DirectoryObjectRef>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    #[serde(rename = "@odata.type", default, skip_serializing_if = "Option::is_none")]
    pub odata_type: Option<String>,
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default)]
    pub mail_enabled: Option<bool>,
    #[serde(default)]
    pub mail_nickname: Option<String>,
    #[serde(default)]
    pub security_enabled: Option<bool>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub group_types: Vec<String>,
    #[serde(default)]
    pub membership_rule: Option<String>,
    #[serde(default)]
    pub on_premises_sync_enabled: Option<bool>,
    #[serde(default)]
    pub visibility: Option<String>,
    #[serde(default, deserialize_with = "graph_time")]
    pub created_date_time: Option<Timestamp>,
    #[serde(default, deserialize_with = "graph_time")]
    pub deleted_date_time: Option<Timestamp>,
    /// Membership changes in a groups delta with `$select=...,members`. Large groups are split over
    /// several pages: merge them (see [`crate::MembershipChanges`]), never overwrite.
    #[serde(rename = "members@delta", default, skip_serializing_if = "Option::is_none")]
    pub members_delta: Option<Vec<DirectoryObjectRef>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePlanInfo {
    pub service_plan_id: Option<String>,
    #[serde(default)]
    pub service_plan_name: Option<String>,
    #[serde(default)]
    pub provisioning_status: Option<String>,
    #[serde(default)]
    pub applies_to: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseUnitsDetail {
    #[serde(default)]
    pub enabled: Option<i64>,
    #[serde(default)]
    pub locked_out: Option<i64>,
    #[serde(default)]
    pub suspended: Option<i64>,
    #[serde(default)]
    pub warning: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscribedSku {
    pub id: String,
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub account_name: Option<String>,
    #[serde(default)]
    pub applies_to: Option<String>,
    #[serde(default)]
    pub capability_status: Option<String>,
    #[serde(default)]
    pub consumed_units: Option<i64>,
    #[serde(default)]
    pub prepaid_units: Option<LicenseUnitsDetail>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub service_plans: Vec<ServicePlanInfo>,
    #[serde(default)]
    pub sku_id: Option<String>,
    #[serde(default)]
    pub sku_part_number: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub subscription_ids: Vec<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseDetails {
    pub id: String,
    #[serde(default)]
    pub sku_id: Option<String>,
    #[serde(default)]
    pub sku_part_number: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub service_plans: Vec<ServicePlanInfo>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An Intune managed device. Intune sends `""` for unknown strings and `0001-01-01T00:00:00Z` for
/// unset dates; both become `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedDevice {
    pub id: String,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub device_name: Option<String>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub managed_device_name: Option<String>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub managed_device_owner_type: Option<String>,
    #[serde(default, deserialize_with = "graph_time")]
    pub enrolled_date_time: Option<Timestamp>,
    #[serde(default, deserialize_with = "graph_time")]
    pub last_sync_date_time: Option<Timestamp>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub operating_system: Option<String>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub os_version: Option<String>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub compliance_state: Option<String>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub management_agent: Option<String>,
    #[serde(default, deserialize_with = "empty_as_none", rename = "azureADDeviceId")]
    pub azure_ad_device_id: Option<String>,
    #[serde(default, rename = "azureADRegistered")]
    pub azure_ad_registered: Option<bool>,
    #[serde(default)]
    pub is_encrypted: Option<bool>,
    #[serde(default)]
    pub is_supervised: Option<bool>,
    /// A string on the wire: "True", "False" or "Unknown".
    #[serde(default, deserialize_with = "empty_as_none")]
    pub jail_broken: Option<String>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub user_principal_name: Option<String>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub user_display_name: Option<String>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub email_address: Option<String>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub model: Option<String>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub manufacturer: Option<String>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub serial_number: Option<String>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub imei: Option<String>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub meid: Option<String>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub wi_fi_mac_address: Option<String>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub total_storage_space_in_bytes: Option<i64>,
    #[serde(default)]
    pub free_storage_space_in_bytes: Option<i64>,
    #[serde(default, deserialize_with = "graph_time")]
    pub compliance_grace_period_expiration_date_time: Option<Timestamp>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedDomain {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub is_default: Option<bool>,
    #[serde(default)]
    pub is_initial: Option<bool>,
    #[serde(default)]
    pub capabilities: Option<String>,
    #[serde(default, rename = "type")]
    pub domain_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedPlan {
    #[serde(default, deserialize_with = "graph_time")]
    pub assigned_date_time: Option<Timestamp>,
    #[serde(default)]
    pub capability_status: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub service_plan_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub tenant_type: Option<String>,
    #[serde(default)]
    pub country_letter_code: Option<String>,
    #[serde(default)]
    pub preferred_language: Option<String>,
    #[serde(default, deserialize_with = "graph_time")]
    pub created_date_time: Option<Timestamp>,
    #[serde(default)]
    pub on_premises_sync_enabled: Option<bool>,
    #[serde(default, deserialize_with = "graph_time")]
    pub on_premises_last_sync_date_time: Option<Timestamp>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub verified_domains: Vec<VerifiedDomain>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub assigned_plans: Vec<AssignedPlan>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Organization {
    /// The default verified domain, else the initial one.
    pub fn default_domain(&self) -> Option<&str> {
        let pick = |want: fn(&VerifiedDomain) -> bool| self.verified_domains.iter().find(|d| want(d));
        pick(|d| d.is_default == Some(true))
            .or_else(|| pick(|d| d.is_initial == Some(true)))
            .and_then(|d| d.name.as_deref())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DelegatedAdminCustomer {
    pub tenant_id: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnifiedRole {
    pub role_definition_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DelegatedAdminAccessDetails {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub unified_roles: Vec<UnifiedRole>,
}

/// A partnership of the partner tenant with a customer tenant (`GET /contracts`, in partner
/// tenants only): the delegated administration (DAP) a customer gave its partner.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contract {
    pub id: String,
    /// `SyndicationPartner`, `BreadthPartner` or `ResellerPartner`.
    #[serde(default)]
    pub contract_type: Option<String>,
    /// The customer tenant's id.
    #[serde(default)]
    pub customer_id: Option<String>,
    #[serde(default)]
    pub default_domain_name: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A GDAP relationship between the partner and a customer tenant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DelegatedAdminRelationship {
    #[serde(rename = "@odata.type", default, skip_serializing_if = "Option::is_none")]
    pub odata_type: Option<String>,
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// ISO 8601 duration, e.g. `P730D`.
    #[serde(default)]
    pub duration: Option<String>,
    #[serde(default)]
    pub auto_extend_duration: Option<String>,
    /// activating, active, approvalPending, approved, created, expired, expiring, terminated, ...
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub customer: Option<DelegatedAdminCustomer>,
    #[serde(default)]
    pub access_details: Option<DelegatedAdminAccessDetails>,
    #[serde(default, deserialize_with = "graph_time")]
    pub created_date_time: Option<Timestamp>,
    #[serde(default, deserialize_with = "graph_time")]
    pub last_modified_date_time: Option<Timestamp>,
    #[serde(default, deserialize_with = "graph_time")]
    pub activated_date_time: Option<Timestamp>,
    #[serde(default, deserialize_with = "graph_time")]
    pub end_date_time: Option<Timestamp>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn unknown_properties_stay_in_extra() {
        let user: User = serde_json::from_value(json!({
            "id": "u1",
            "displayName": "Adele",
            "businessPhones": null,
            "extension_0123456789abcdef0123456789abcdef_costCenter": "42",
            "onPremisesExtensionAttributes": {"extensionAttribute1": "x"}
        }))
        .unwrap();
        assert_eq!(user.display_name.as_deref(), Some("Adele"));
        assert!(user.business_phones.is_empty());
        assert_eq!(
            user.extra["extension_0123456789abcdef0123456789abcdef_costCenter"],
            "42"
        );
        assert_eq!(
            user.extra["onPremisesExtensionAttributes"]["extensionAttribute1"],
            "x"
        );
    }

    #[test]
    fn manager_delta_accepts_object_or_array() {
        let single: User = serde_json::from_value(json!({
            "id": "u1", "manager@delta": {"@odata.type": "#microsoft.graph.user", "id": "m1"}
        }))
        .unwrap();
        assert_eq!(single.manager_delta.unwrap()[0].id, "m1");
        let removed: User = serde_json::from_value(json!({
            "id": "u1", "manager@delta": [{"id": "m1", "@removed": {"reason": "deleted"}}]
        }))
        .unwrap();
        let entry = &removed.manager_delta.unwrap()[0];
        assert_eq!(
            entry.removed,
            Some(RemovedMarker {
                reason: RemovedReason::Deleted
            })
        );
    }

    #[test]
    fn intune_quirks_become_none() {
        let device: ManagedDevice = serde_json::from_value(json!({
            "id": "d1",
            "serialNumber": "",
            "imei": "",
            "enrolledDateTime": "0001-01-01T00:00:00Z",
            "lastSyncDateTime": "2026-11-22T22:10:05Z",
            "complianceGracePeriodExpirationDateTime": "9999-12-31T23:59:59Z",
            "azureADDeviceId": "b2c1",
            "jailBroken": "Unknown",
            "totalStorageSpaceInBytes": 0
        }))
        .unwrap();
        assert_eq!(device.serial_number, None);
        assert_eq!(device.imei, None);
        assert_eq!(device.enrolled_date_time, None);
        assert!(device.last_sync_date_time.is_some());
        assert!(device.compliance_grace_period_expiration_date_time.is_some());
        assert_eq!(device.azure_ad_device_id.as_deref(), Some("b2c1"));
        assert_eq!(device.total_storage_space_in_bytes, Some(0));
    }

    #[test]
    fn organization_default_domain() {
        let organization: Organization = serde_json::from_value(json!({
            "id": "t1",
            "verifiedDomains": [
                {"name": "contoso.onmicrosoft.com", "isInitial": true, "isDefault": false, "type": "Managed"},
                {"name": "contoso.example", "isInitial": false, "isDefault": true, "type": "Managed"}
            ]
        }))
        .unwrap();
        assert_eq!(organization.default_domain(), Some("contoso.example"));
    }
}
