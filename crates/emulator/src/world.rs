//! The simulated cloud: tenants, directory objects, licences, devices, GDAP relationships and
//! app registrations, plus the per-tenant change log that delta queries read.
//!
//! Invariants: object ids are unique within a tenant (users, groups, roles and devices share one
//! id space, as directory objects do); `index` is rebuilt whenever objects are added or loaded;
//! soft-deleted objects stay in their vectors with `deleted_date_time` set, hard-deleted ones
//! are removed. Every mutation goes through the `World` methods so the change log sees it.
use std::collections::HashMap;
use std::path::Path;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::EmulatorError;

/// A string many users share (city, department, company…): stored once per distinct value.
pub type Shared = std::sync::Arc<str>;

/// Hands out one [`Shared`] per distinct value, so 100,000 users in one city share one string.
#[derive(Debug, Default)]
pub struct Interner(HashMap<Box<str>, Shared>);

impl Interner {
    pub fn get(&mut self, value: &str) -> Shared {
        if let Some(shared) = self.0.get(value) {
            return shared.clone();
        }
        let shared: Shared = Shared::from(value);
        self.0.insert(value.into(), shared.clone());
        shared
    }

    fn share(&mut self, value: &mut Option<Shared>) {
        if let Some(v) = value {
            *v = self.get(v);
        }
    }
}

/// Everything the emulator serves. Serialises to the JSON dataset format.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct World {
    /// Customer tenants first, then the partner tenant (if any).
    pub tenants: Vec<Tenant>,
    pub apps: Vec<App>,
    #[serde(default)]
    pub partner_tenant_id: Option<String>,
    /// Users who can sign in interactively (authorization code flow), any tenant.
    #[serde(default = "default_password")]
    pub sign_in_password: String,
    /// Dataverse organisations (Dynamics 365 environments), each in one tenant.
    #[serde(default)]
    pub dataverse_orgs: Vec<crate::dataverse::Org>,
    /// Partner Center: customers, subscriptions, prices, usage, webhook registration.
    #[serde(default)]
    pub partner_center: crate::partner::model::PartnerCenterData,
}

fn default_password() -> String {
    "emulator".to_owned()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub id: String,
    pub display_name: String,
    /// The initial `*.onmicrosoft.com` domain.
    pub domain: String,
    #[serde(default)]
    pub extra_domains: Vec<String>,
    /// Entra ID P1/P2: `signInActivity` is available only then.
    pub premium: bool,
    #[serde(default)]
    pub is_partner: bool,
    pub country_letter_code: String,
    pub created_date_time: Timestamp,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub groups: Vec<Group>,
    #[serde(default)]
    pub directory_roles: Vec<DirectoryRole>,
    #[serde(default)]
    pub skus: Vec<Sku>,
    #[serde(default)]
    pub devices: Vec<ManagedDevice>,
    #[serde(default)]
    pub gdap_relationships: Vec<GdapRelationship>,
    /// A partner tenant's contracts (Graph `/contracts`): the customers that gave it delegated
    /// admin privileges (DAP).
    #[serde(default)]
    pub contracts: Vec<Contract>,
    #[serde(skip)]
    pub index: HashMap<String, ObjectRef>,
    #[serde(skip)]
    pub changes: ChangeLog,
}

/// Where an object id points inside its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectRef {
    User(usize),
    Group(usize),
    Role(usize),
    Device(usize),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub user_principal_name: String,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub mail: Option<String>,
    pub mail_nickname: Option<String>,
    pub job_title: Option<Shared>,
    pub mobile_phone: Option<String>,
    #[serde(default)]
    pub business_phones: Vec<String>,
    pub office_location: Option<Shared>,
    pub preferred_language: Option<Shared>,
    pub account_enabled: bool,
    /// "Member" or "Guest".
    pub user_type: String,
    pub department: Option<Shared>,
    pub company_name: Option<Shared>,
    pub employee_id: Option<String>,
    pub city: Option<Shared>,
    pub country: Option<Shared>,
    pub usage_location: Option<Shared>,
    pub created_date_time: Option<Timestamp>,
    pub on_premises_sync_enabled: Option<bool>,
    pub on_premises_immutable_id: Option<String>,
    pub on_premises_sam_account_name: Option<String>,
    #[serde(default)]
    pub assigned_licenses: Vec<AssignedLicense>,
    pub manager_id: Option<String>,
    pub sign_in_activity: Option<SignInActivity>,
    pub deleted_date_time: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedLicense {
    pub sku_id: String,
    #[serde(default)]
    pub disabled_plans: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignInActivity {
    pub last_sign_in_date_time: Option<Timestamp>,
    pub last_non_interactive_sign_in_date_time: Option<Timestamp>,
    pub last_successful_sign_in_date_time: Option<Timestamp>,
}

/// The kinds of directory object a membership can point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ObjectKind {
    User,
    Group,
    Device,
    ServicePrincipal,
    OrgContact,
}

impl ObjectKind {
    pub fn odata_type(self) -> &'static str {
        match self {
            Self::User => "#microsoft.graph.user",
            Self::Group => "#microsoft.graph.group",
            Self::Device => "#microsoft.graph.device",
            Self::ServicePrincipal => "#microsoft.graph.servicePrincipal",
            Self::OrgContact => "#microsoft.graph.orgContact",
        }
    }

    /// The cast segment, e.g. `microsoft.graph.user`.
    pub fn cast_name(self) -> &'static str {
        &self.odata_type()[1..]
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberRef {
    pub kind: ObjectKind,
    pub id: String,
    /// Display name for members that are not users or groups of this tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub id: String,
    pub display_name: String,
    pub description: Option<String>,
    pub mail: Option<String>,
    pub mail_enabled: bool,
    pub mail_nickname: String,
    pub security_enabled: bool,
    #[serde(default)]
    pub group_types: Vec<String>,
    pub membership_rule: Option<String>,
    pub membership_rule_processing_state: Option<String>,
    pub visibility: Option<String>,
    pub created_date_time: Option<Timestamp>,
    pub on_premises_sync_enabled: Option<bool>,
    #[serde(default)]
    pub members: Vec<MemberRef>,
    pub deleted_date_time: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryRole {
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub role_template_id: String,
    #[serde(default)]
    pub member_ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sku {
    pub sku_id: String,
    pub sku_part_number: String,
    /// "User" or "Company".
    pub applies_to: String,
    pub capability_status: String,
    pub prepaid_enabled: i32,
    #[serde(default)]
    pub prepaid_suspended: i32,
    #[serde(default)]
    pub prepaid_warning: i32,
    #[serde(default)]
    pub subscription_ids: Vec<String>,
    pub service_plans: Vec<ServicePlan>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePlan {
    pub service_plan_id: String,
    pub service_plan_name: String,
    pub applies_to: String,
}

/// An Intune managed device. Missing strings are `""` and unset dates
/// `0001-01-01T00:00:00Z`, as Intune sends them. Serialises with Graph's property names (so
/// `azureADDeviceId`, not the `azureAdDeviceId` camelCase would give); datasets written before
/// that spelling still load through the aliases.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedDevice {
    pub id: String,
    pub user_id: String,
    pub device_name: String,
    pub managed_device_owner_type: String,
    pub enrolled_date_time: String,
    pub last_sync_date_time: String,
    pub operating_system: String,
    pub os_version: String,
    pub compliance_state: String,
    pub management_agent: String,
    #[serde(rename = "azureADDeviceId", alias = "azureAdDeviceId")]
    pub azure_ad_device_id: String,
    #[serde(rename = "azureADRegistered", alias = "azureAdRegistered")]
    pub azure_ad_registered: Option<bool>,
    pub device_enrollment_type: String,
    pub device_registration_state: String,
    pub is_encrypted: bool,
    pub is_supervised: bool,
    pub jail_broken: String,
    pub user_principal_name: String,
    pub user_display_name: String,
    pub email_address: String,
    pub model: String,
    pub manufacturer: String,
    pub serial_number: String,
    pub imei: String,
    pub meid: String,
    pub wi_fi_mac_address: String,
    pub phone_number: String,
    pub total_storage_space_in_bytes: i64,
    pub free_storage_space_in_bytes: i64,
    pub compliance_grace_period_expiration_date_time: String,
    pub partner_reported_threat_state: String,
    pub device_category_display_name: String,
    pub exchange_access_state: String,
    pub exchange_last_successful_sync_date_time: String,
    pub eas_activated: bool,
    pub eas_device_id: String,
    pub managed_device_name: String,
}

/// Intune's value for a date that was never set.
pub const UNSET_DATE: &str = "0001-01-01T00:00:00Z";
/// Intune's value for a date that never comes (no compliance grace period running).
pub const NEVER_DATE: &str = "9999-12-31T23:59:59Z";

impl Default for ManagedDevice {
    /// A device with nothing known, spelled as Intune sends one: `""` for strings, the unset date
    /// for dates, "never" for the grace period, and the enums' `unknown` where they have one.
    fn default() -> Self {
        Self {
            id: String::new(),
            user_id: String::new(),
            device_name: String::new(),
            managed_device_owner_type: "unknown".into(),
            enrolled_date_time: UNSET_DATE.into(),
            last_sync_date_time: UNSET_DATE.into(),
            operating_system: String::new(),
            os_version: String::new(),
            compliance_state: "unknown".into(),
            management_agent: "unknown".into(),
            azure_ad_device_id: String::new(),
            azure_ad_registered: None,
            device_enrollment_type: "unknown".into(),
            device_registration_state: "unknown".into(),
            is_encrypted: false,
            is_supervised: false,
            jail_broken: "Unknown".into(),
            user_principal_name: String::new(),
            user_display_name: String::new(),
            email_address: String::new(),
            model: String::new(),
            manufacturer: String::new(),
            serial_number: String::new(),
            imei: String::new(),
            meid: String::new(),
            wi_fi_mac_address: String::new(),
            phone_number: String::new(),
            total_storage_space_in_bytes: 0,
            free_storage_space_in_bytes: 0,
            compliance_grace_period_expiration_date_time: NEVER_DATE.into(),
            partner_reported_threat_state: "unknown".into(),
            device_category_display_name: String::new(),
            exchange_access_state: "none".into(),
            exchange_last_successful_sync_date_time: UNSET_DATE.into(),
            eas_activated: false,
            eas_device_id: String::new(),
            managed_device_name: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GdapRelationship {
    pub id: String,
    pub display_name: String,
    pub customer_tenant_id: String,
    pub customer_display_name: String,
    pub status: String,
    pub duration: String,
    pub auto_extend_duration: String,
    pub role_definition_ids: Vec<String>,
    pub created_date_time: Timestamp,
    pub last_modified_date_time: Timestamp,
    pub activated_date_time: Option<Timestamp>,
    pub end_date_time: Option<Timestamp>,
}

/// A partner's contract with a customer tenant (DAP): while it stands, the partner's AdminAgents
/// (users and service principals) administer the customer without consent there.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contract {
    pub id: String,
    /// `SyndicationPartner`, `BreadthPartner` or `ResellerPartner`.
    pub contract_type: String,
    pub customer_id: String,
    pub default_domain_name: String,
    pub display_name: String,
}

/// How an app authenticates and where it may get tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppKind {
    MultiTenantSecret,
    Certificate,
    SingleTenant,
    ExpiredSecret,
    Unconsented,
    /// The CSP partner's single-tenant Partner Center app (delegated, app+user).
    PartnerCenter,
    /// The CSP partner's multi-tenant app: consented per customer, gated by GDAP.
    Gdap,
}

impl AppKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MultiTenantSecret => "multi_tenant_secret",
            Self::Certificate => "certificate",
            Self::SingleTenant => "single_tenant",
            Self::ExpiredSecret => "expired_secret",
            Self::Unconsented => "unconsented",
            Self::PartnerCenter => "partner_center",
            Self::Gdap => "gdap_multi_tenant",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct App {
    pub client_id: String,
    pub display_name: String,
    pub kind: AppKind,
    pub home_tenant_id: String,
    pub multi_tenant: bool,
    #[serde(default)]
    pub secrets: Vec<ClientSecret>,
    #[serde(default)]
    pub certificates: Vec<AppCertificate>,
    /// Application permissions (app roles on Graph), granted where the app is consented.
    #[serde(default)]
    pub application_permissions: Vec<String>,
    /// Delegated scopes the app may request.
    #[serde(default)]
    pub delegated_scopes: Vec<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Tenants where the app has a service principal (consent).
    #[serde(default)]
    pub consented_tenants: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientSecret {
    pub key_id: String,
    pub value: String,
    pub end_date_time: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppCertificate {
    pub key_id: String,
    /// PEM of the certificate (public part, what the app registration holds).
    pub certificate_pem: String,
    /// PEM (PKCS#8) of the private key, so test clients can sign assertions. Synthetic.
    pub private_key_pem: String,
    /// Hex SHA-1 thumbprint (upper case), as the portal shows it.
    pub thumbprint_sha1: String,
    /// base64url SHA-256 of the DER certificate (`x5t#S256`).
    pub x5t_s256: String,
    /// base64url SHA-1 of the DER certificate (`x5t`).
    pub x5t: String,
    pub end_date_time: Timestamp,
}

/// One change, in the order it happened. Delta links are positions in this log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A user was created, restored or changed; `properties` names the Graph properties that
    /// changed (`None`: all of them), so a delta with `$select` reports only changes it tracks.
    User {
        id: String,
        properties: Option<Vec<String>>,
    },
    /// The user's manager reference was removed or replaced (reported as `manager@delta` removal).
    ManagerRemoved {
        user_id: String,
        manager_id: String,
    },
    UserRemoved {
        id: String,
        hard: bool,
    },
    Group {
        id: String,
    },
    GroupRemoved {
        id: String,
        hard: bool,
    },
    Membership {
        group_id: String,
        member: MemberRef,
        removed: bool,
    },
}

/// Append-only log of changes. `base` is the sequence number of the first entry kept.
#[derive(Debug, Clone, Default)]
pub struct ChangeLog {
    pub entries: Vec<Change>,
}

impl ChangeLog {
    pub fn head(&self) -> u64 {
        self.entries.len() as u64
    }

    pub fn since(&self, seq: u64) -> &[Change] {
        let start = usize::try_from(seq).unwrap_or(usize::MAX).min(self.entries.len());
        &self.entries[start..]
    }

    fn push(&mut self, change: Change) {
        self.entries.push(change);
    }
}

/// Graph's property names of a managed device, in the order the world serialises them.
pub fn device_properties() -> Vec<String> {
    match serde_json::to_value(ManagedDevice::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// A device from Graph-shaped JSON: every property known (annotations such as `@odata.type`
/// are dropped), enum values from Graph's enums, so a typo fails here rather than in a client.
pub fn device_from_json(value: serde_json::Value) -> Result<ManagedDevice, EmulatorError> {
    let serde_json::Value::Object(mut map) = value else {
        return Err(EmulatorError::BadRequest(
            "a device must be a JSON object".to_owned(),
        ));
    };
    map.retain(|k, _| !k.starts_with('@') && !k.contains("@odata."));
    let known = device_properties();
    let unknown: Vec<&str> = map
        .keys()
        .filter(|k| !known.iter().any(|p| p == *k))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(EmulatorError::BadRequest(format!(
            "unknown managedDevice properties: {} (Graph's names are case-sensitive, e.g. azureADDeviceId)",
            unknown.join(", ")
        )));
    }
    let device: ManagedDevice = serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| EmulatorError::BadRequest(format!("invalid device: {e}")))?;
    check_device(&device)?;
    Ok(device)
}

/// Members of the Graph enums a managed device's properties take (v1.0 metadata).
const DEVICE_ENUMS: &[(&str, &[&str])] = &[
    (
        "managedDeviceOwnerType",
        &["unknown", "company", "personal", "unknownFutureValue"],
    ),
    (
        "complianceState",
        &[
            "unknown",
            "compliant",
            "noncompliant",
            "conflict",
            "error",
            "inGracePeriod",
            "configManager",
        ],
    ),
    (
        "managementAgent",
        &[
            "eas",
            "mdm",
            "easMdm",
            "intuneClient",
            "easIntuneClient",
            "configurationManagerClient",
            "configurationManagerClientMdm",
            "configurationManagerClientMdmEas",
            "unknown",
            "jamf",
            "googleCloudDevicePolicyController",
            "microsoft365ManagedMdm",
            "msSense",
        ],
    ),
    (
        "deviceEnrollmentType",
        &[
            "unknown",
            "userEnrollment",
            "deviceEnrollmentManager",
            "appleBulkWithUser",
            "appleBulkWithoutUser",
            "windowsAzureADJoin",
            "windowsBulkUserless",
            "windowsAutoEnrollment",
            "windowsBulkAzureDomainJoin",
            "windowsCoManagement",
            "windowsAzureADJoinUsingDeviceAuth",
            "appleUserEnrollment",
            "appleUserEnrollmentWithServiceAccount",
            "unknownFutureValue",
        ],
    ),
    (
        "deviceRegistrationState",
        &[
            "notRegistered",
            "registered",
            "revoked",
            "keyConflict",
            "approvalPending",
            "certificateReset",
            "notRegisteredPendingEnrollment",
            "unknown",
        ],
    ),
    (
        "partnerReportedThreatState",
        &[
            "unknown",
            "activated",
            "deactivated",
            "secured",
            "lowSeverity",
            "mediumSeverity",
            "highSeverity",
            "unresponsive",
            "compromised",
            "misconfigured",
        ],
    ),
    (
        "exchangeAccessState",
        &["none", "unknown", "allowed", "blocked", "quarantined"],
    ),
];

fn check_device(d: &ManagedDevice) -> Result<(), EmulatorError> {
    let values = [
        &d.managed_device_owner_type,
        &d.compliance_state,
        &d.management_agent,
        &d.device_enrollment_type,
        &d.device_registration_state,
        &d.partner_reported_threat_state,
        &d.exchange_access_state,
    ];
    for ((property, members), value) in DEVICE_ENUMS.iter().zip(values) {
        if !members.contains(&value.as_str()) {
            return Err(EmulatorError::BadRequest(format!(
                "{property}: '{value}' is not one of {}",
                members.join(", ")
            )));
        }
    }
    let dates = [
        ("enrolledDateTime", &d.enrolled_date_time),
        ("lastSyncDateTime", &d.last_sync_date_time),
        (
            "complianceGracePeriodExpirationDateTime",
            &d.compliance_grace_period_expiration_date_time,
        ),
        (
            "exchangeLastSuccessfulSyncDateTime",
            &d.exchange_last_successful_sync_date_time,
        ),
    ];
    for (property, value) in dates {
        // The "never" sentinel lies beyond the range of jiff's timestamps, yet Intune sends it.
        if value.as_str() != NEVER_DATE && value.parse::<Timestamp>().is_err() {
            return Err(EmulatorError::BadRequest(format!(
                "{property}: '{value}' is not a date-time such as {UNSET_DATE}"
            )));
        }
    }
    Ok(())
}

impl Tenant {
    pub fn rebuild_index(&mut self) {
        let mut index = HashMap::with_capacity(self.users.len() + self.groups.len() + self.devices.len());
        for (i, u) in self.users.iter().enumerate() {
            index.insert(u.id.clone(), ObjectRef::User(i));
        }
        for (i, g) in self.groups.iter().enumerate() {
            index.insert(g.id.clone(), ObjectRef::Group(i));
        }
        for (i, r) in self.directory_roles.iter().enumerate() {
            index.insert(r.id.clone(), ObjectRef::Role(i));
        }
        for (i, d) in self.devices.iter().enumerate() {
            index.insert(d.id.clone(), ObjectRef::Device(i));
        }
        self.index = index;
    }

    /// A live (not soft-deleted) user by id or user principal name.
    pub fn user(&self, id_or_upn: &str) -> Option<&User> {
        self.user_index(id_or_upn)
            .map(|i| &self.users[i])
            .filter(|u| u.deleted_date_time.is_none())
    }

    /// Index of a user by id or UPN, deleted or not.
    pub fn user_index(&self, id_or_upn: &str) -> Option<usize> {
        match self
            .index
            .get(&id_or_upn.to_ascii_lowercase())
            .or_else(|| self.index.get(id_or_upn))
        {
            Some(ObjectRef::User(i)) => Some(*i),
            _ if id_or_upn.contains('@') => self
                .users
                .iter()
                .position(|u| u.user_principal_name.eq_ignore_ascii_case(id_or_upn)),
            _ => None,
        }
    }

    pub fn group_index(&self, id: &str) -> Option<usize> {
        match self.index.get(id) {
            Some(ObjectRef::Group(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn group(&self, id: &str) -> Option<&Group> {
        self.group_index(id)
            .map(|i| &self.groups[i])
            .filter(|g| g.deleted_date_time.is_none())
    }

    pub fn device_index(&self, id: &str) -> Option<usize> {
        match self.index.get(id) {
            Some(ObjectRef::Device(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn device(&self, id: &str) -> Option<&ManagedDevice> {
        self.device_index(id).map(|i| &self.devices[i])
    }

    pub fn live_users(&self) -> impl Iterator<Item = &User> {
        self.users.iter().filter(|u| u.deleted_date_time.is_none())
    }

    pub fn live_groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.iter().filter(|g| g.deleted_date_time.is_none())
    }

    /// Number of live users (what the summary reports).
    pub fn user_count(&self) -> usize {
        self.live_users().count()
    }

    /// Units of a SKU consumed by live users.
    pub fn consumed_units(&self, sku_id: &str) -> usize {
        self.live_users()
            .filter(|u| u.assigned_licenses.iter().any(|l| l.sku_id == sku_id))
            .count()
    }

    /// Whether a member reference points at a live object (members of other kinds always do).
    pub fn member_is_live(&self, member: &MemberRef) -> bool {
        match member.kind {
            ObjectKind::User => self.user(&member.id).is_some(),
            ObjectKind::Group => self.group(&member.id).is_some(),
            _ => true,
        }
    }

    fn new_id_is_free(&self, id: &str) -> bool {
        !self.index.contains_key(id)
    }
}

impl World {
    pub fn tenant(&self, id_or_domain: &str) -> Option<&Tenant> {
        self.tenant_index(id_or_domain).map(|i| &self.tenants[i])
    }

    pub fn tenant_index(&self, id_or_domain: &str) -> Option<usize> {
        self.tenants.iter().position(|t| {
            t.id.eq_ignore_ascii_case(id_or_domain)
                || t.domain.eq_ignore_ascii_case(id_or_domain)
                || t.extra_domains
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(id_or_domain))
        })
    }

    pub fn app(&self, client_id: &str) -> Option<&App> {
        self.apps
            .iter()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }

    pub fn customer_tenants(&self) -> impl Iterator<Item = &Tenant> {
        self.tenants.iter().filter(|t| !t.is_partner)
    }

    /// Makes equal repeated values (cities, departments…) share one allocation, as generated
    /// worlds do; a loaded dataset would otherwise hold one copy per user.
    pub fn share_strings(&mut self) {
        let mut interner = Interner::default();
        for t in &mut self.tenants {
            for u in &mut t.users {
                for field in [
                    &mut u.job_title,
                    &mut u.office_location,
                    &mut u.preferred_language,
                    &mut u.department,
                    &mut u.company_name,
                    &mut u.city,
                    &mut u.country,
                    &mut u.usage_location,
                ] {
                    interner.share(field);
                }
            }
        }
    }

    pub fn rebuild_indexes(&mut self) {
        for t in &mut self.tenants {
            t.rebuild_index();
        }
        for o in &mut self.dataverse_orgs {
            o.rebuild_indexes();
        }
    }

    /// Reads a dataset written by [`World::save_json`] (or by hand).
    pub fn load_json(path: &Path) -> Result<World, EmulatorError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| EmulatorError::Dataset(format!("cannot read {}: {e}", path.display())))?;
        Self::from_json_str(&text)
    }

    pub fn from_json_str(text: &str) -> Result<World, EmulatorError> {
        let mut world: World = serde_json::from_str(text)
            .map_err(|e| EmulatorError::Dataset(format!("invalid dataset JSON: {e}")))?;
        world.validate()?;
        world.share_strings();
        world.rebuild_indexes();
        Ok(world)
    }

    pub fn save_json(&self, path: &Path) -> Result<(), EmulatorError> {
        let text = serde_json::to_string(self)
            .map_err(|e| EmulatorError::Dataset(format!("cannot serialise the world: {e}")))?;
        std::fs::write(path, text)
            .map_err(|e| EmulatorError::Dataset(format!("cannot write {}: {e}", path.display())))
    }

    fn validate(&self) -> Result<(), EmulatorError> {
        for t in &self.tenants {
            let mut seen = std::collections::HashSet::new();
            let ids = t
                .users
                .iter()
                .map(|u| &u.id)
                .chain(t.groups.iter().map(|g| &g.id))
                .chain(t.devices.iter().map(|d| &d.id));
            for id in ids {
                if !seen.insert(id.as_str()) {
                    return Err(EmulatorError::Dataset(format!(
                        "tenant {}: duplicate object id {id}",
                        t.id
                    )));
                }
            }
        }
        for a in &self.apps {
            if self.tenant(&a.home_tenant_id).is_none() {
                return Err(EmulatorError::Dataset(format!(
                    "app {}: home tenant {} is not in the dataset",
                    a.client_id, a.home_tenant_id
                )));
            }
        }
        Ok(())
    }

    fn tenant_mut(&mut self, tenant: &str) -> Result<&mut Tenant, EmulatorError> {
        let i = self
            .tenant_index(tenant)
            .ok_or_else(|| EmulatorError::NotFound(format!("tenant {tenant}")))?;
        Ok(&mut self.tenants[i])
    }

    // ---- mutations (admin API and Graph writes); each records its change ----

    pub fn create_user(&mut self, tenant: &str, mut user: User) -> Result<User, EmulatorError> {
        let t = self.tenant_mut(tenant)?;
        if user.id.is_empty() {
            user.id = uuid::Uuid::new_v4().to_string();
        }
        if !t.new_id_is_free(&user.id) {
            return Err(EmulatorError::Conflict(format!(
                "object {} already exists",
                user.id
            )));
        }
        if t.users.iter().any(|u| {
            u.user_principal_name
                .eq_ignore_ascii_case(&user.user_principal_name)
        }) {
            return Err(EmulatorError::Conflict(format!(
                "userPrincipalName {} already exists",
                user.user_principal_name
            )));
        }
        t.index.insert(user.id.clone(), ObjectRef::User(t.users.len()));
        t.changes.push(Change::User {
            id: user.id.clone(),
            properties: None,
        });
        t.users.push(user.clone());
        Ok(user)
    }

    /// Applies a JSON merge of Graph-shaped properties onto a user.
    pub fn update_user(
        &mut self,
        tenant: &str,
        id: &str,
        patch: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<User, EmulatorError> {
        let t = self.tenant_mut(tenant)?;
        let i = t
            .user_index(id)
            .ok_or_else(|| EmulatorError::NotFound(format!("user {id}")))?;
        let mut current = serde_json::to_value(&t.users[i])
            .map_err(|e| EmulatorError::BadRequest(format!("cannot apply the update: {e}")))?;
        if let serde_json::Value::Object(map) = &mut current {
            for (k, v) in patch {
                if k == "id" {
                    continue;
                }
                if k == "manager@odata.bind" || k == "managerId" {
                    let manager = v.as_str().map(|s| s.rsplit('/').next().unwrap_or(s).to_owned());
                    map.insert(
                        "managerId".to_owned(),
                        manager.map_or(serde_json::Value::Null, Into::into),
                    );
                    continue;
                }
                map.insert(k.clone(), v.clone());
            }
        }
        let updated: User = serde_json::from_value(current)
            .map_err(|e| EmulatorError::BadRequest(format!("invalid user properties: {e}")))?;
        let before = serde_json::to_value(&t.users[i]).unwrap_or_default();
        let after = serde_json::to_value(&updated).unwrap_or_default();
        let changed: Vec<String> = match (before, after) {
            (serde_json::Value::Object(before), serde_json::Value::Object(after)) => after
                .iter()
                .filter(|(k, v)| before.get(k.as_str()) != Some(v))
                .map(|(k, _)| {
                    if k == "managerId" {
                        "manager".to_owned()
                    } else {
                        k.clone()
                    }
                })
                .collect(),
            _ => Vec::new(),
        };
        let old_manager = t.users[i].manager_id.take();
        t.users[i] = updated.clone();
        let id = updated.id.clone();
        if let Some(old) = old_manager
            && updated.manager_id.as_deref() != Some(old.as_str())
        {
            t.changes.push(Change::ManagerRemoved {
                user_id: id.clone(),
                manager_id: old,
            });
        }
        if !changed.is_empty() {
            t.changes.push(Change::User {
                id,
                properties: Some(changed),
            });
        }
        Ok(updated)
    }

    pub fn set_user_licenses(
        &mut self,
        tenant: &str,
        id: &str,
        add: &[AssignedLicense],
        remove: &[String],
    ) -> Result<User, EmulatorError> {
        let t = self.tenant_mut(tenant)?;
        let i = t
            .user_index(id)
            .ok_or_else(|| EmulatorError::NotFound(format!("user {id}")))?;
        if t.users[i].usage_location.is_none() && !add.is_empty() {
            return Err(EmulatorError::InvalidUsageLocation);
        }
        for l in add.iter().map(|l| &l.sku_id).chain(remove) {
            if !t.skus.iter().any(|s| s.sku_id.eq_ignore_ascii_case(l)) {
                return Err(EmulatorError::BadRequest(format!(
                    "License {l} does not correspond to a valid company License."
                )));
            }
        }
        for l in add {
            let sku = t.skus.iter().find(|s| s.sku_id.eq_ignore_ascii_case(&l.sku_id));
            let already = t.users[i]
                .assigned_licenses
                .iter()
                .any(|a| a.sku_id.eq_ignore_ascii_case(&l.sku_id));
            if let Some(sku) = sku
                && !already
                && t.consumed_units(&sku.sku_id) >= usize::try_from(sku.prepaid_enabled).unwrap_or(0)
            {
                // Graph's own wording (a 400 Request_BadRequest), which names the SKU.
                return Err(EmulatorError::BadRequest(format!(
                    "Subscription with SKU {} does not have any available licenses.",
                    sku.sku_id
                )));
            }
        }
        let user = &mut t.users[i];
        user.assigned_licenses
            .retain(|a| !remove.iter().any(|r| r.eq_ignore_ascii_case(&a.sku_id)));
        for l in add {
            user.assigned_licenses
                .retain(|a| !a.sku_id.eq_ignore_ascii_case(&l.sku_id));
            user.assigned_licenses.push(l.clone());
        }
        let user = user.clone();
        t.changes.push(Change::User {
            id: user.id.clone(),
            properties: Some(vec!["assignedLicenses".into(), "assignedPlans".into()]),
        });
        Ok(user)
    }

    pub fn soft_delete_user(&mut self, tenant: &str, id: &str, now: Timestamp) -> Result<(), EmulatorError> {
        let t = self.tenant_mut(tenant)?;
        let i = t
            .user_index(id)
            .ok_or_else(|| EmulatorError::NotFound(format!("user {id}")))?;
        if t.users[i].deleted_date_time.is_some() {
            return Err(EmulatorError::NotFound(format!("user {id}")));
        }
        t.users[i].deleted_date_time = Some(now);
        let id = t.users[i].id.clone();
        t.changes.push(Change::UserRemoved { id, hard: false });
        Ok(())
    }

    pub fn restore_user(&mut self, tenant: &str, id: &str) -> Result<User, EmulatorError> {
        let t = self.tenant_mut(tenant)?;
        let i = t
            .user_index(id)
            .ok_or_else(|| EmulatorError::NotFound(format!("user {id}")))?;
        if t.users[i].deleted_date_time.take().is_none() {
            return Err(EmulatorError::BadRequest(format!("user {id} is not deleted")));
        }
        let user = t.users[i].clone();
        t.changes.push(Change::User {
            id: user.id.clone(),
            properties: None,
        });
        Ok(user)
    }

    pub fn hard_delete_user(&mut self, tenant: &str, id: &str) -> Result<(), EmulatorError> {
        let t = self.tenant_mut(tenant)?;
        let i = t
            .user_index(id)
            .ok_or_else(|| EmulatorError::NotFound(format!("user {id}")))?;
        let removed = t.users.remove(i);
        for g in &mut t.groups {
            g.members.retain(|m| m.id != removed.id);
        }
        let mut reports = Vec::new();
        for u in &mut t.users {
            if u.manager_id.as_deref() == Some(removed.id.as_str()) {
                u.manager_id = None;
                reports.push(u.id.clone());
            }
        }
        for user_id in reports {
            t.changes.push(Change::ManagerRemoved {
                user_id: user_id.clone(),
                manager_id: removed.id.clone(),
            });
            t.changes.push(Change::User {
                id: user_id,
                properties: Some(vec!["manager".into()]),
            });
        }
        t.rebuild_index();
        t.changes.push(Change::UserRemoved {
            id: removed.id,
            hard: true,
        });
        Ok(())
    }

    // Intune's managed devices have no delta query in Graph v1.0, so device changes are not
    // logged; only the group memberships a deleted device leaves are (groups/delta sees those).

    pub fn create_device(
        &mut self,
        tenant: &str,
        mut device: ManagedDevice,
    ) -> Result<ManagedDevice, EmulatorError> {
        let t = self.tenant_mut(tenant)?;
        if device.id.is_empty() {
            device.id = uuid::Uuid::new_v4().to_string();
        }
        if !t.new_id_is_free(&device.id) {
            return Err(EmulatorError::Conflict(format!(
                "object {} already exists",
                device.id
            )));
        }
        check_device(&device)?;
        t.index
            .insert(device.id.clone(), ObjectRef::Device(t.devices.len()));
        t.devices.push(device.clone());
        Ok(device)
    }

    /// Applies a JSON merge of Graph-shaped properties onto a device (`id` cannot change).
    pub fn update_device(
        &mut self,
        tenant: &str,
        id: &str,
        patch: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<ManagedDevice, EmulatorError> {
        let t = self.tenant_mut(tenant)?;
        let i = t
            .device_index(id)
            .ok_or_else(|| EmulatorError::NotFound(format!("device {id}")))?;
        let mut current = serde_json::to_value(&t.devices[i])
            .map_err(|e| EmulatorError::BadRequest(format!("cannot apply the update: {e}")))?;
        if let serde_json::Value::Object(map) = &mut current {
            for (k, v) in patch {
                if k != "id" {
                    map.insert(k.clone(), v.clone());
                }
            }
        }
        let updated = device_from_json(current)?;
        t.devices[i] = updated.clone();
        Ok(updated)
    }

    pub fn delete_device(&mut self, tenant: &str, id: &str) -> Result<(), EmulatorError> {
        let t = self.tenant_mut(tenant)?;
        let i = t
            .device_index(id)
            .ok_or_else(|| EmulatorError::NotFound(format!("device {id}")))?;
        let removed = t.devices.remove(i);
        let mut left = Vec::new();
        for g in &mut t.groups {
            if let Some(pos) = g.members.iter().position(|m| m.id == removed.id) {
                left.push((g.id.clone(), g.members.remove(pos)));
            }
        }
        for (group_id, member) in left {
            t.changes.push(Change::Membership {
                group_id,
                member,
                removed: true,
            });
        }
        // Later devices moved down one place, so their index entries are stale.
        t.rebuild_index();
        Ok(())
    }

    pub fn create_group(&mut self, tenant: &str, mut group: Group) -> Result<Group, EmulatorError> {
        let t = self.tenant_mut(tenant)?;
        if group.id.is_empty() {
            group.id = uuid::Uuid::new_v4().to_string();
        }
        if !t.new_id_is_free(&group.id) {
            return Err(EmulatorError::Conflict(format!(
                "object {} already exists",
                group.id
            )));
        }
        t.index.insert(group.id.clone(), ObjectRef::Group(t.groups.len()));
        t.changes.push(Change::Group { id: group.id.clone() });
        for m in &group.members {
            t.changes.push(Change::Membership {
                group_id: group.id.clone(),
                member: m.clone(),
                removed: false,
            });
        }
        t.groups.push(group.clone());
        Ok(group)
    }

    pub fn update_group(
        &mut self,
        tenant: &str,
        id: &str,
        patch: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Group, EmulatorError> {
        let t = self.tenant_mut(tenant)?;
        let i = t
            .group_index(id)
            .ok_or_else(|| EmulatorError::NotFound(format!("group {id}")))?;
        let mut current = serde_json::to_value(&t.groups[i])
            .map_err(|e| EmulatorError::BadRequest(format!("cannot apply the update: {e}")))?;
        if let serde_json::Value::Object(map) = &mut current {
            for (k, v) in patch {
                if k != "id" && k != "members" {
                    map.insert(k.clone(), v.clone());
                }
            }
        }
        let updated: Group = serde_json::from_value(current)
            .map_err(|e| EmulatorError::BadRequest(format!("invalid group properties: {e}")))?;
        t.groups[i] = updated.clone();
        t.changes.push(Change::Group {
            id: updated.id.clone(),
        });
        Ok(updated)
    }

    pub fn soft_delete_group(&mut self, tenant: &str, id: &str, now: Timestamp) -> Result<(), EmulatorError> {
        let t = self.tenant_mut(tenant)?;
        let i = t
            .group_index(id)
            .ok_or_else(|| EmulatorError::NotFound(format!("group {id}")))?;
        if t.groups[i].deleted_date_time.is_some() {
            return Err(EmulatorError::NotFound(format!("group {id}")));
        }
        t.groups[i].deleted_date_time = Some(now);
        let id = t.groups[i].id.clone();
        t.changes.push(Change::GroupRemoved { id, hard: false });
        Ok(())
    }

    pub fn restore_group(&mut self, tenant: &str, id: &str) -> Result<Group, EmulatorError> {
        let t = self.tenant_mut(tenant)?;
        let i = t
            .group_index(id)
            .ok_or_else(|| EmulatorError::NotFound(format!("group {id}")))?;
        if t.groups[i].deleted_date_time.take().is_none() {
            return Err(EmulatorError::BadRequest(format!("group {id} is not deleted")));
        }
        let group = t.groups[i].clone();
        t.changes.push(Change::Group { id: group.id.clone() });
        Ok(group)
    }

    pub fn hard_delete_group(&mut self, tenant: &str, id: &str) -> Result<(), EmulatorError> {
        let t = self.tenant_mut(tenant)?;
        let i = t
            .group_index(id)
            .ok_or_else(|| EmulatorError::NotFound(format!("group {id}")))?;
        let removed = t.groups.remove(i);
        for g in &mut t.groups {
            g.members.retain(|m| m.id != removed.id);
        }
        t.rebuild_index();
        t.changes.push(Change::GroupRemoved {
            id: removed.id,
            hard: true,
        });
        Ok(())
    }

    pub fn add_member(&mut self, tenant: &str, group_id: &str, member_id: &str) -> Result<(), EmulatorError> {
        let t = self.tenant_mut(tenant)?;
        let gi = t
            .group_index(group_id)
            .ok_or_else(|| EmulatorError::NotFound(format!("group {group_id}")))?;
        let kind = match t.index.get(member_id) {
            Some(ObjectRef::User(_)) => ObjectKind::User,
            Some(ObjectRef::Group(_)) => ObjectKind::Group,
            Some(ObjectRef::Device(_)) => ObjectKind::Device,
            _ => return Err(EmulatorError::NotFound(format!("directory object {member_id}"))),
        };
        if member_id == t.groups[gi].id {
            return Err(EmulatorError::BadRequest(
                "A group cannot be a member of itself.".to_owned(),
            ));
        }
        if t.groups[gi].members.iter().any(|m| m.id == member_id) {
            return Err(EmulatorError::Conflict(
                "One or more added object references already exist for the following modified properties: \
                 'members'."
                    .to_owned(),
            ));
        }
        let member = MemberRef {
            kind,
            id: member_id.to_owned(),
            display_name: None,
        };
        t.groups[gi].members.push(member.clone());
        let group_id = t.groups[gi].id.clone();
        t.changes.push(Change::Membership {
            group_id,
            member,
            removed: false,
        });
        Ok(())
    }

    pub fn remove_member(
        &mut self,
        tenant: &str,
        group_id: &str,
        member_id: &str,
    ) -> Result<(), EmulatorError> {
        let t = self.tenant_mut(tenant)?;
        let gi = t
            .group_index(group_id)
            .ok_or_else(|| EmulatorError::NotFound(format!("group {group_id}")))?;
        let pos = t.groups[gi]
            .members
            .iter()
            .position(|m| m.id == member_id)
            .ok_or_else(|| EmulatorError::NotFound(format!("member {member_id} of group {group_id}")))?;
        let member = t.groups[gi].members.remove(pos);
        let group_id = t.groups[gi].id.clone();
        t.changes.push(Change::Membership {
            group_id,
            member,
            removed: true,
        });
        Ok(())
    }
}
