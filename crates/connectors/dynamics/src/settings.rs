//! Dynamics 365 connections' settings, as a data platform's connection form lists them (URL, CRM
//! version, Azure tenant, client id, client secret or certificate, AuthScheme, callback URL,
//! authority host): described as data for forms, the API and exports, stored (never a secret) in
//! the connection's configuration, with the credentials sealed beside it.
//!
//! The shared `validate` checks each value's form (a GUID, a tenant, an endpoint the policy
//! allows, a choice); [`check_values`] adds what only this kind knows: the URL is an
//! organisation's root, the credential fits the AuthScheme, the callback URL is one Microsoft
//! accepts as a redirect URI.

use deskbridge_core::RecordId;
use deskbridge_mapping::MappingConfig;
use deskbridge_source::settings::{Choice, Required, Setting, SettingKind, SettingPart, SettingValues};
use deskbridge_source::{SyncError, desk};
use deskbridge_store::Connection;
use serde::{Deserialize, Serialize};

use crate::DYNAMICS_KIND;

pub const SECRET_CLIENT_SECRET: &str = "client_secret";
pub const SECRET_CERTIFICATE: &str = "certificate_pem";
/// The sealed refresh token of an `AzureAD` connection (a user signed in).
pub const SECRET_REFRESH_TOKEN: &str = "refresh_token";

/// The one CRM version this connector speaks: Dataverse online (the Web API v9.2).
pub const CRM_ONLINE: &str = "CRMOnline";

const CRM_VERSIONS: &[Choice] = &[Choice {
    value: CRM_ONLINE,
    label: "Dynamics 365 online (Dataverse)",
}];

const AUTH_SCHEMES: &[Choice] = &[
    Choice {
        value: "AzureServicePrincipal",
        label: "AzureServicePrincipal: the app signs in as itself (application user, client credentials)",
    },
    Choice {
        value: "AzureAD",
        label: "AzureAD: a user signs in once in a browser (delegated permissions); the refresh is handled for you",
    },
];

/// A Dynamics 365 connection's settings, as forms, the API and export files know them. The
/// connection's name is the connection's own (every kind has one).
pub(crate) const SETTINGS: &[Setting] = &[
    Setting {
        key: "url",
        label: "URL",
        help: "The root URL of the organisation, like https://contoso.crm.dynamics.com/ (Power Platform admin \
               center > Environments > your environment > Environment URL).",
        // No default: an empty default stands for "not given" (see `check_values`).
        kind: SettingKind::Endpoint { default: "" },
        required: Required::Always,
        part: SettingPart::Identity,
    },
    Setting {
        key: "crm_version",
        label: "CRM version",
        help: "CRMOnline: Dynamics 365 online. On-premises servers (CRM2011+) are not supported.",
        kind: SettingKind::Choice {
            options: CRM_VERSIONS,
        },
        required: Required::Optional,
        part: SettingPart::Identity,
    },
    Setting {
        key: "tenant_id",
        label: "Azure tenant",
        help: "Directory (tenant) id from the app registration's overview, or one of the tenant's verified domains.",
        kind: SettingKind::Tenant,
        required: Required::Always,
        part: SettingPart::Identity,
    },
    Setting {
        key: "client_id",
        label: "Client ID",
        help: "Application (client) id from the app registration's overview.",
        kind: SettingKind::Guid,
        required: Required::Always,
        part: SettingPart::Identity,
    },
    Setting {
        key: "auth_scheme",
        label: "AuthScheme",
        help: "AzureServicePrincipal (default): register the app as an application user of the environment. \
               AzureAD: a user signs in after the connection is added (deskbridge connection authorize).",
        kind: SettingKind::Choice {
            options: AUTH_SCHEMES,
        },
        required: Required::Optional,
        part: SettingPart::Credential,
    },
    Setting {
        key: SECRET_CLIENT_SECRET,
        label: "Client secret",
        help: "The secret's Value (not its Secret ID). Write-only: sealed in the database and never shown again.",
        kind: SettingKind::Secret,
        required: Required::Optional,
        part: SettingPart::Credential,
    },
    Setting {
        key: SECRET_CERTIFICATE,
        label: "Certificate and private key (PEM)",
        help: "Instead of a client secret. Write-only; its expiry is read from the certificate.",
        kind: SettingKind::Certificate,
        required: Required::Optional,
        part: SettingPart::Credential,
    },
    Setting {
        key: "callback_url",
        label: "Callback URL",
        help: "AzureAD only: the redirect URI registered on the app (default http://localhost:33333), named in the \
               remedy when Microsoft refuses a redirect. deskbridge connection authorize comes back to \
               http://127.0.0.1/callback (any port) and the web to its /auth/microsoft/callback: register those too.",
        kind: SettingKind::Text,
        required: Required::Optional,
        part: SettingPart::Identity,
    },
    deskbridge_connector_entra::AUTHORITY_HOST,
];

/// The callback URL a data platform's Dynamics connector registers by default.
pub const DEFAULT_CALLBACK_URL: &str = "http://localhost:33333";

/// How the connection signs in (the data platforms' `AuthScheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthScheme {
    /// Client credentials: the app is an application user of the organisation.
    AzureServicePrincipal,
    /// A user signs in (authorization code with PKCE); the refresh token is sealed and rotated.
    #[serde(rename = "AzureAD")]
    AzureAd,
}

impl AuthScheme {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "AzureServicePrincipal" => Some(Self::AzureServicePrincipal),
            "AzureAD" => Some(Self::AzureAd),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AzureServicePrincipal => "AzureServicePrincipal",
            Self::AzureAd => "AzureAD",
        }
    }
}

/// Which credential the app presents (an `AzureAD` public client presents none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    ClientSecret,
    Certificate,
    None,
}

/// The stored (non-secret) settings of a Dynamics 365 connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DynamicsSettings {
    /// The organisation URL, without a trailing slash.
    pub url: String,
    pub crm_version: String,
    pub tenant_id: String,
    pub client_id: String,
    pub auth_scheme: AuthScheme,
    pub credential: Credential,
    /// The redirect URI registered on the app (`AzureAD`).
    pub callback_url: String,
    /// The identity platform host.
    pub authority_host: String,
    /// The desk customer the organisation's contacts belong to.
    pub customer_id: RecordId,
    pub mapping: MappingConfig,
}

impl DynamicsSettings {
    /// The settings of a stored connection, which must be a Dynamics 365 connection.
    pub fn of(connection: &Connection) -> Result<Self, SyncError> {
        if connection.kind != DYNAMICS_KIND {
            return Err(SyncError::WrongKind {
                name: connection.name.clone(),
                kind: connection.kind.clone(),
                expected: "a Dynamics 365 connection".into(),
            });
        }
        serde_json::from_value(connection.config.clone())
            .map_err(|e| SyncError::BadSettings(connection.name.clone(), e.to_string()))
    }

    /// The scope of the organisation's tokens: the app's own permissions (`.default`) for a
    /// service principal, Dataverse's delegated `user_impersonation` for a signed-in user.
    pub fn scope(&self) -> String {
        match self.auth_scheme {
            AuthScheme::AzureServicePrincipal => format!("{}/.default", self.url),
            AuthScheme::AzureAd => format!("{}/user_impersonation", self.url),
        }
    }
}

fn refused(what: impl Into<String>) -> SyncError {
    SyncError::InvalidSettings(what.into())
}

/// Hosts of Dataverse organisations in Microsoft's clouds (see the endpoint policy).
const DATAVERSE_SUFFIXES: &[&str] = &[
    ".dynamics.com",
    ".microsoftdynamics.us",
    ".appsplatform.us",
    ".dynamics.cn",
];

/// The organisation URL's own rules, after the endpoint policy allowed its host: Microsoft's
/// organisations are reached at their root (`https://contoso.crm.dynamics.com`), so a pasted
/// Web API or app URL is refused with what to give instead.
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    let microsoft = DATAVERSE_SUFFIXES.iter().any(|s| host.ends_with(s));
    if !microsoft {
        // An allowed host of the administrator's (the emulator, a proxy): its path may name the
        // organisation.
        return Ok(());
    }
    let path = parsed.path().trim_end_matches('/');
    if !path.is_empty() {
        let root = format!("https://{host}/");
        return Err(if path.starts_with("/api/data") {
            format!("{url:?} is the Web API's address; give the organisation's root URL, {root}")
        } else {
            format!("{url:?} names a page of the organisation; give its root URL, {root}")
        });
    }
    // `{org}.crm.dynamics.com`: the organisation's own label comes before the regional one.
    if host.split('.').count() < 4 || host.starts_with("crm") {
        return Err(format!(
            "{host} is not an organisation's host; it looks like https://contoso.crm.dynamics.com/ (the \
             environment URL in the Power Platform admin center)"
        ));
    }
    Ok(())
}

/// Whether a callback URL is one Microsoft accepts as a redirect URI: https, or http on a
/// loopback host (`localhost`, `127.0.0.1`); no fragment.
pub fn check_callback_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "{url:?}: Microsoft accepts http redirect URIs only on localhost or 127.0.0.1; use https"
            ));
        }
        other => return Err(format!("{url:?}: a redirect URI is http(s), not {other}")),
    }
    if parsed.fragment().is_some() {
        return Err(format!("{url:?}: a redirect URI has no fragment (#…)"));
    }
    Ok(())
}

/// What validation as data cannot say, on settings for a new connection (`creating`) or an edit
/// of one: every problem at once, each naming its setting.
pub fn check_values(values: &SettingValues, creating: bool) -> Result<(), SyncError> {
    let mut problems = Vec::new();
    match values.text("url") {
        Some(url) if !url.is_empty() => {
            if let Err(e) = check_url(url) {
                problems.push(format!("URL: {e}"));
            }
        }
        _ if creating => problems.push(
            "URL: required (the organisation's root URL, like https://contoso.crm.dynamics.com/)".into(),
        ),
        _ => {}
    }
    if let Some(callback) = values.text("callback_url")
        && let Err(e) = check_callback_url(callback)
    {
        problems.push(format!("Callback URL: {e}"));
    }
    let scheme = values
        .text("auth_scheme")
        .and_then(AuthScheme::parse)
        .unwrap_or(AuthScheme::AzureServicePrincipal);
    let secret = values.text(SECRET_CLIENT_SECRET).is_some();
    let certificate = values.text(SECRET_CERTIFICATE).is_some();
    if secret && certificate {
        problems.push(
            "Client secret / Certificate: give one credential, a client secret or a certificate, not both"
                .into(),
        );
    }
    if creating && scheme == AuthScheme::AzureServicePrincipal && !secret && !certificate {
        problems.push(
            "Client secret: required for AuthScheme AzureServicePrincipal (or give a certificate)".into(),
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(refused(problems.join("; ")))
    }
}

/// The mappings a new connection starts with: the contact columns into the desk user's fields,
/// and one catch-all site mapping to the customer's main site.
pub(crate) fn new_connection_mappings(main_site: RecordId) -> MappingConfig {
    let mut mapping = MappingConfig::generated(main_site);
    let user = deskbridge_mapping::FieldMapping::property;
    mapping.user_fields = vec![
        user("fullname", "name"),
        user("firstname", "first_name"),
        user("lastname", "last_name"),
        user("emailaddress1", "email"),
        user("telephone1", "phone"),
        user("mobilephone", "mobile"),
        user("jobtitle", "job_title"),
    ];
    // Contacts are customers' people, not the service desk's agents.
    mapping.agent_fields = Vec::new();
    mapping.imports.deactivate_not_found = true;
    // A contact has an email address, not a network login.
    mapping.imports.match_order = vec![deskbridge_mapping::MatchField::Email];
    mapping
}

/// Where a new connection's records go: the customer named `customer` (or the connection's
/// name), created with its main site when missing, linked to the organisation's tenant.
pub(crate) async fn customer_of(
    tx: &mut deskbridge_store::StoreTx,
    customer: &str,
    tenant_id: &str,
) -> Result<desk::TenantCustomerFound, SyncError> {
    desk::customer_for_tenant(tx, customer, tenant_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organisation_urls_are_roots() {
        assert!(check_url("https://contoso.crm.dynamics.com").is_ok());
        assert!(check_url("https://contoso.crm4.dynamics.com").is_ok());
        assert!(check_url("http://127.0.0.1:9000/org/contoso").is_ok());
        let api = check_url("https://contoso.crm.dynamics.com/api/data/v9.2").unwrap_err();
        assert!(api.contains("Web API"), "{api}");
        let page = check_url("https://contoso.crm.dynamics.com/main.aspx").unwrap_err();
        assert!(
            page.contains("root URL, https://contoso.crm.dynamics.com/"),
            "{page}"
        );
        assert!(check_url("https://crm.dynamics.com").is_err());
    }

    #[test]
    fn callback_urls_are_redirect_uris() {
        assert!(check_callback_url("http://localhost:33333").is_ok());
        assert!(check_callback_url("https://desk.example.com/auth/microsoft/callback").is_ok());
        assert!(check_callback_url("http://desk.example.com/callback").is_err());
        assert!(check_callback_url("ftp://localhost/").is_err());
        assert!(check_callback_url("http://localhost/#x").is_err());
    }
}
