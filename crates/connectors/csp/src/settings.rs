//! CSP connections' settings: what is stored in the connection's configuration (never a secret),
//! the credentials sealed beside it, and the same described as data
//! ([`deskbridge_source::settings`]) for forms, the API and export files.

use deskbridge_connector_entra::SyncMethod;
use deskbridge_core::RecordId;
use deskbridge_mapping::MappingConfig;
use deskbridge_source::SyncError;
use deskbridge_source::settings::{Choice, Required, Setting, SettingKind, SettingPart};
use deskbridge_store::Connection;
use serde::{Deserialize, Serialize};

use crate::CSP_KIND;

/// The Partner Center app's client secret (a confidential app; a public client has none).
pub const SECRET_PARTNER_SECRET: &str = "partner_client_secret";
/// The Partner Center app's refresh token, sealed at sign-in and replaced on every rotation.
pub const SECRET_PARTNER_REFRESH_TOKEN: &str = "partner_refresh_token";
/// The GDAP app's client secret.
pub const SECRET_GDAP_SECRET: &str = "gdap_client_secret";
/// The GDAP app's certificate and private key (PEM).
pub const SECRET_GDAP_CERTIFICATE: &str = "gdap_certificate_pem";

const GDAP_AUTH: &[Choice] = &[
    Choice {
        value: "client_secret",
        label: "Client secret",
    },
    Choice {
        value: "certificate",
        label: "Certificate",
    },
];

pub(crate) const LICENCE_IMPORT: &[Choice] = &[
    Choice {
        value: "subscribed_skus",
        label: "All subscribed SKUs (tier 2 / indirect partners must use this)",
    },
    Choice {
        value: "subscriptions",
        label: "Your subscriptions (tier 1 / direct partners)",
    },
    Choice {
        value: "subscriptions_and_skus",
        label: "Your subscriptions and SKUs (tier 1 with indirect customers, or to manage licence assignment)",
    },
];

pub(crate) const RELATIONSHIP_TYPE: &[Choice] = &[
    Choice {
        value: "gdap",
        label: "GDAP (the GDAP app needs admin consent in the tenant)",
    },
    Choice {
        value: "dap",
        label: "DAP (delegated admin privileges, retired by Microsoft: no consent per tenant)",
    },
];

const SUBSCRIPTION_PRICING: &[Choice] = &[
    Choice {
        value: "off",
        label: "Do not import prices",
    },
    Choice {
        value: "GB",
        label: "GB marketplace",
    },
    Choice {
        value: "US",
        label: "US marketplace",
    },
];

/// A CSP connection's settings, as forms, the API and export files know them.
pub(crate) const SETTINGS: &[Setting] = &[
    Setting {
        key: "partner_tenant_id",
        label: "Partner tenant id",
        help: "The CSP-enabled (partner) tenant: its directory id or a verified domain.",
        kind: SettingKind::Tenant,
        required: Required::Always,
        part: SettingPart::Identity,
    },
    Setting {
        key: "partner_client_id",
        label: "Partner Center app: client id",
        help: "The single-tenant app registration with the Partner Center API's delegated user_impersonation \
               permission (API fa3d9a0c-3fb0-42cc-9193-47c7ecd2edbd). A partner admin signs in once after \
               adding the connection (deskbridge connection authorize).",
        kind: SettingKind::Guid,
        required: Required::Always,
        part: SettingPart::Identity,
    },
    Setting {
        key: SECRET_PARTNER_SECRET,
        label: "Partner Center app: client secret value",
        help: "Write-only. Needed if the app is confidential (the usual case); replacing it keeps the sign-in.",
        kind: SettingKind::Secret,
        required: Required::Optional,
        part: SettingPart::Credential,
    },
    Setting {
        key: "gdap_client_id",
        label: "GDAP app: client id",
        help: "The multi-tenant app registration with Graph application permissions, member of the \
               AdminAgents group and consented in each customer tenant.",
        kind: SettingKind::Guid,
        required: Required::Always,
        part: SettingPart::Identity,
    },
    Setting {
        key: "gdap_auth",
        label: "GDAP app: authentication",
        help: "Left empty: a certificate if one is given, otherwise a client secret.",
        kind: SettingKind::Choice { options: GDAP_AUTH },
        required: Required::Optional,
        part: SettingPart::Credential,
    },
    Setting {
        key: SECRET_GDAP_SECRET,
        label: "GDAP app: client secret value",
        help: "Write-only: sealed in the database and never shown again.",
        kind: SettingKind::Secret,
        required: Required::When {
            key: "gdap_auth",
            values: &["client_secret"],
        },
        part: SettingPart::Credential,
    },
    Setting {
        key: SECRET_GDAP_CERTIFICATE,
        label: "GDAP app: certificate and private key (PEM)",
        help: "Write-only. Its expiry is read from the certificate.",
        kind: SettingKind::Certificate,
        required: Required::When {
            key: "gdap_auth",
            values: &["certificate"],
        },
        part: SettingPart::Credential,
    },
    deskbridge_connector_entra::AUTHORITY_HOST,
    deskbridge_connector_entra::GRAPH_URL,
    Setting {
        key: "partner_center_url",
        label: "Partner Center URL",
        help: "Leave empty for Microsoft's public cloud.",
        kind: SettingKind::Endpoint {
            default: deskbridge_partner::DEFAULT_PARTNER_CENTER_URL,
        },
        required: Required::Optional,
        part: SettingPart::Identity,
    },
    Setting {
        key: "partner_api_url",
        label: "Partner API URL (price sheets)",
        help: "Where subscription prices are read. Leave empty for Microsoft's public cloud.",
        kind: SettingKind::Endpoint {
            default: deskbridge_partner::DEFAULT_PARTNER_API_URL,
        },
        required: Required::Optional,
        part: SettingPart::Identity,
    },
    Setting {
        key: "top_level",
        label: "Top level for new customers",
        help: "The desk top level (by name) that customers created for new tenants are placed under; \
               empty: none.",
        kind: SettingKind::Text,
        required: Required::Optional,
        part: SettingPart::Sync,
    },
    Setting {
        key: "relationship_type",
        label: "Relationship type for new tenants",
        help: "How a newly found customer tenant is read: GDAP (an active GDAP relationship, and admin consent \
               for the GDAP app granted in the tenant) or DAP (the partner's delegated admin privileges: the \
               GDAP app, a member of AdminAgents, reads the tenant without consent there). A tenant may \
               override it on the Tenants tab. Microsoft has retired DAP; use it only for tenants that still \
               have it.",
        kind: SettingKind::Choice {
            options: RELATIONSHIP_TYPE,
        },
        required: Required::Optional,
        part: SettingPart::Sync,
    },
    Setting {
        key: "licence_import",
        label: "Licence import type",
        help: "SKUs (every tier) carry quantities and the users assigned; subscriptions (tier 1 / direct \
               partners) carry quantity, term, billing cycle, commitment and price. A customer tenant may \
               override it on the Tenants tab.",
        kind: SettingKind::Choice {
            options: LICENCE_IMPORT,
        },
        required: Required::Optional,
        part: SettingPart::Sync,
    },
    Setting {
        key: "subscription_pricing",
        label: "Subscription pricing",
        help: "Tier 1 only: each subscription's price per unit from the chosen marketplace's price sheet. \
               Needs the Partner Center app's delegated permission for the partner API (price sheets).",
        kind: SettingKind::Choice {
            options: SUBSCRIPTION_PRICING,
        },
        required: Required::Optional,
        part: SettingPart::Sync,
    },
    Setting {
        key: "last_sign_in",
        label: "Import last sign-in dates",
        help: "Needs AuditLog.Read.All on the GDAP app and a P1/P2 customer tenant; other tenants are \
               imported without the dates, with a warning.",
        kind: SettingKind::Flag { default: false },
        required: Required::Optional,
        part: SettingPart::Sync,
    },
    Setting {
        key: "delta",
        label: "Use delta queries after the first full import",
        help: "Per customer tenant.",
        kind: SettingKind::Flag { default: true },
        required: Required::Optional,
        part: SettingPart::Sync,
    },
    deskbridge_connector_entra::SYNC_METHOD,
];

/// How the GDAP app authenticates (client credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GdapAuth {
    ClientSecret,
    Certificate,
}

/// What a customer tenant's licences are imported as (the guide's licence import type).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenceImport {
    /// Graph's subscribed SKUs of the tenant become desk licences (quantities and assignments).
    #[default]
    SubscribedSkus,
    /// Partner Center's subscriptions of the customer become desk subscriptions; no SKU licences.
    Subscriptions,
    /// Both.
    SubscriptionsAndSkus,
}

impl LicenceImport {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "subscribed_skus" => Some(Self::SubscribedSkus),
            "subscriptions" => Some(Self::Subscriptions),
            "subscriptions_and_skus" => Some(Self::SubscriptionsAndSkus),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SubscribedSkus => "subscribed_skus",
            Self::Subscriptions => "subscriptions",
            Self::SubscriptionsAndSkus => "subscriptions_and_skus",
        }
    }

    /// Whether the tenant's subscribed SKUs become licences.
    pub fn skus(self) -> bool {
        self != Self::Subscriptions
    }

    /// Whether the customer's subscriptions are read.
    pub fn subscriptions(self) -> bool {
        self != Self::SubscribedSkus
    }
}

/// How a customer tenant is read (the guide's relationship type).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelationshipType {
    /// Through the tenant's active GDAP relationship, with the GDAP app consented in the tenant.
    #[default]
    Gdap,
    /// Through the partner's delegated admin privileges (DAP): the GDAP app, a member of the
    /// partner's AdminAgents group, is pre-consented in every DAP customer tenant.
    Dap,
}

impl RelationshipType {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "gdap" => Some(Self::Gdap),
            "dap" => Some(Self::Dap),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gdap => "gdap",
            Self::Dap => "dap",
        }
    }
}

/// One customer tenant of the connection and the desk customer its users go to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CspTenant {
    pub tenant_id: String,
    /// The customer's company name in Partner Center, as last seen.
    pub name: String,
    /// The desk customer; `None`: do not import.
    pub customer_id: Option<RecordId>,
    /// This tenant's licence import type, when it differs from the connection's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licence_import: Option<LicenceImport>,
    /// How this tenant is read: set to the connection's type for new tenants when it is found;
    /// `None` (tenants found before the setting existed): the connection's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relationship_type: Option<RelationshipType>,
    /// When an administrator of the tenant granted the GDAP app admin consent through this
    /// service's consent flow; `None`: not known here (settings from before the flow have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consented_at: Option<jiff::Timestamp>,
    /// The relationship discovery last found (see [`Relationship`]); `None`: before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relationship: Option<Relationship>,
}

/// A customer tenant's relationship with the partner, as the last discovery found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relationship {
    /// Partner Center lists the customer and its GDAP relationship is active: it is read.
    ResellerAndGdap,
    /// Partner Center lists the customer, but no GDAP relationship is active: it cannot be read.
    ResellerWithoutGdap,
    /// Partner Center lists the customer, with an active GDAP relationship and DAP (a contract
    /// in the partner tenant).
    ResellerGdapAndDap,
    /// Partner Center lists the customer, with DAP but no active GDAP relationship.
    ResellerDapOnly,
    /// Partner Center no longer lists the customer.
    NotListed,
}

impl Relationship {
    pub fn label(self) -> &'static str {
        match self {
            Self::ResellerAndGdap => "reseller and GDAP (active)",
            Self::ResellerWithoutGdap => "reseller, no active GDAP",
            Self::ResellerGdapAndDap => "reseller, GDAP (active) and DAP",
            Self::ResellerDapOnly => "reseller, DAP only (no active GDAP)",
            Self::NotListed => "no longer listed by Partner Center",
        }
    }
}

/// The stored (non-secret) settings of a CSP connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CspSettings {
    pub partner_tenant_id: String,
    pub partner_client_id: String,
    pub gdap_client_id: String,
    pub gdap_auth: GdapAuth,
    pub authority_host: String,
    pub graph_url: String,
    pub partner_center_url: String,
    #[serde(default = "default_partner_api_url")]
    pub partner_api_url: String,
    #[serde(default = "yes")]
    pub delta: bool,
    #[serde(default)]
    pub sync_method: SyncMethod,
    #[serde(default)]
    pub last_sign_in: bool,
    #[serde(default)]
    pub licence_import: LicenceImport,
    /// The relationship type newly found tenants are given.
    #[serde(default)]
    pub relationship_type: RelationshipType,
    /// The desk top level that customers created for new tenants go under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_level_id: Option<RecordId>,
    /// The marketplace (`GB`, `US`) whose price sheet prices the subscriptions; `None`: prices
    /// are not imported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_pricing: Option<String>,
    /// The customer tenants found so far, in the order found.
    #[serde(default)]
    pub tenants: Vec<CspTenant>,
    pub mapping: MappingConfig,
}

fn yes() -> bool {
    true
}

fn default_partner_api_url() -> String {
    deskbridge_partner::DEFAULT_PARTNER_API_URL.to_owned()
}

impl CspSettings {
    /// The settings of a stored connection, which must be a CSP connection.
    pub fn of(connection: &Connection) -> Result<Self, SyncError> {
        if connection.kind != CSP_KIND {
            return Err(SyncError::WrongKind {
                name: connection.name.clone(),
                kind: connection.kind.clone(),
                expected: "a CSP connection".into(),
            });
        }
        serde_json::from_value(connection.config.clone())
            .map_err(|e| SyncError::BadSettings(connection.name.clone(), e.to_string()))
    }

    /// The stored form.
    pub fn to_config(&self, name: &str) -> Result<serde_json::Value, SyncError> {
        serde_json::to_value(self).map_err(|e| SyncError::BadSettings(name.to_owned(), e.to_string()))
    }

    /// What `tenant_id`'s licences are imported as: its own override, else the connection's.
    pub fn licence_import_of(&self, tenant_id: &str) -> LicenceImport {
        self.tenant(tenant_id)
            .and_then(|t| t.licence_import)
            .unwrap_or(self.licence_import)
    }

    /// How `tenant_id` is read: its own type, else the connection's.
    pub fn relationship_type_of(&self, tenant_id: &str) -> RelationshipType {
        self.tenant(tenant_id)
            .and_then(|t| t.relationship_type)
            .unwrap_or(self.relationship_type)
    }

    /// The tenant's entry, if the connection has found it.
    pub fn tenant(&self, tenant_id: &str) -> Option<&CspTenant> {
        self.tenants
            .iter()
            .find(|t| t.tenant_id.eq_ignore_ascii_case(tenant_id))
    }
}

/// What a new CSP connection's mappings start with: the usual field mappings with line managers,
/// no site mapping (each customer tenant gets its catch-all mapping when it is assigned to a desk
/// customer), and users deleted in a tenant made inactive on the desk, as Entra's new connections
/// do.
pub(crate) fn new_connection_mappings(last_sign_in: bool) -> MappingConfig {
    let mut mapping = MappingConfig::generated(RecordId(0)).with_line_managers();
    mapping.site_mappings.clear();
    mapping.imports.deactivate_not_found = true;
    if last_sign_in {
        mapping
            .user_fields
            .push(deskbridge_mapping::FieldMapping::property(
                "signInActivity/lastSignInDateTime",
                "last_sign_in",
            ));
    }
    mapping
}
