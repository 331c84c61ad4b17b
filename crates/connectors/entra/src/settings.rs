//! Entra connections' settings: what is stored in the connection's configuration (never a secret) and the
//! credentials sealed beside it.

use deskbridge_core::RecordId;
use deskbridge_mapping::MappingConfig;
use deskbridge_source::settings::{Choice, Required, Setting, SettingKind, SettingPart};
use deskbridge_source::{ConnectionSecrets, SyncError};
use deskbridge_store::{Connection, NewConnection, Store, WriteContext};
use serde::{Deserialize, Serialize};

use crate::ENTRA_KIND;

pub const SECRET_CLIENT_SECRET: &str = "client_secret";
pub const SECRET_CERTIFICATE: &str = "certificate_pem";
/// The sealed refresh token of a delegated connection.
pub const SECRET_REFRESH_TOKEN: &str = "refresh_token";

const AUTH_METHODS: &[Choice] = &[
    Choice {
        value: "client_secret",
        label: "Application permissions with a client secret",
    },
    Choice {
        value: "certificate",
        label: "Application permissions with a certificate",
    },
    Choice {
        value: "delegated",
        label: "Delegated permissions: an administrator signs in with Microsoft after adding it",
    },
];

pub const SYNC_METHODS: &[Choice] = &[
    Choice {
        value: "all_changes",
        label: "Listen to all changes",
    },
    Choice {
        value: "mapped_fields_only",
        label: "Only changes to mapped fields",
    },
];

/// The identity platform host: an endpoint, the public cloud's by default (shared by every connector that signs in with Entra).
pub const AUTHORITY_HOST: Setting = Setting {
    key: "authority_host",
    label: "Identity platform host",
    help: "Leave empty for Microsoft's public cloud.",
    kind: SettingKind::Endpoint {
        default: deskbridge_msauth::PUBLIC_CLOUD_AUTHORITY,
    },
    required: Required::Optional,
    part: SettingPart::Identity,
};

/// Graph's version root: an endpoint, the public cloud's by default.
pub const GRAPH_URL: Setting = Setting {
    key: "graph_url",
    label: "Graph URL",
    help: "Leave empty for Microsoft's public cloud.",
    kind: SettingKind::Endpoint {
        default: deskbridge_graph::DEFAULT_GRAPH_BASE_URL,
    },
    required: Required::Optional,
    part: SettingPart::Identity,
};

/// What a delta query listens to: every change, or the mapped fields only.
pub const SYNC_METHOD: Setting = Setting {
    key: "sync_method",
    label: "Sync method",
    help: "What a delta query listens to.",
    kind: SettingKind::Choice {
        options: SYNC_METHODS,
    },
    required: Required::Optional,
    part: SettingPart::Sync,
};

/// An Entra connection's settings, as forms, the API and export files know them. The keys are
/// those of [`EntraSettings`] and of the sealed secrets.
pub(crate) const SETTINGS: &[Setting] = &[
    Setting {
        key: "tenant_id",
        label: "Tenant id",
        help: "Directory (tenant) id from the app registration's overview, or one of the tenant's verified domains.",
        kind: SettingKind::Tenant,
        required: Required::Always,
        part: SettingPart::Identity,
    },
    Setting {
        key: "client_id",
        label: "Client id",
        help: "Application (client) id from the app registration's overview.",
        kind: SettingKind::Guid,
        required: Required::Always,
        part: SettingPart::Identity,
    },
    Setting {
        key: "auth",
        label: "Authentication",
        help: "Left empty: a certificate if one is given, otherwise a client secret.",
        kind: SettingKind::Choice {
            options: AUTH_METHODS,
        },
        required: Required::Optional,
        part: SettingPart::Credential,
    },
    Setting {
        key: SECRET_CLIENT_SECRET,
        label: "Client secret value",
        help: "Write-only: it is sealed in the database and never shown again. A delegated connection needs one only if the app is confidential.",
        kind: SettingKind::Secret,
        required: Required::When {
            key: "auth",
            values: &["client_secret"],
        },
        part: SettingPart::Credential,
    },
    Setting {
        key: "secret_expires_at",
        label: "Secret expires (RFC 3339, optional)",
        help: "From the app registration's certificates & secrets page; the check warns before it passes.",
        kind: SettingKind::Time,
        required: Required::Optional,
        part: SettingPart::Credential,
    },
    Setting {
        key: SECRET_CERTIFICATE,
        label: "Certificate and private key (PEM)",
        help: "Write-only. Its expiry is read from the certificate.",
        kind: SettingKind::Certificate,
        required: Required::When {
            key: "auth",
            values: &["certificate"],
        },
        part: SettingPart::Credential,
    },
    AUTHORITY_HOST,
    GRAPH_URL,
    Setting {
        key: "last_sign_in",
        label: "Import last sign-in dates",
        help: "Needs AuditLog.Read.All and a P1/P2 tenant.",
        kind: SettingKind::Flag { default: false },
        required: Required::Optional,
        part: SettingPart::Sync,
    },
    Setting {
        key: "delta",
        label: "Use delta queries after the first full import",
        help: "Off on a new connection, as in the guide: every run reads the tenant whole until it is turned on.",
        kind: SettingKind::Flag { default: false },
        required: Required::Optional,
        part: SettingPart::Sync,
    },
    SYNC_METHOD,
    DELTA_LINKS_SETTING,
    MANAGE_LICENCES,
];

/// The guide's "allow licences to be managed from within the desk": assigning or removing a
/// licence on a desk user changes it in Entra. One connection per tenant may have it.
pub const MANAGE_LICENCES: Setting = Setting {
    key: "manage_licences",
    label: "Manage licences from the desk",
    help: "Assigning a licence imported from this tenant to a desk user adds it to their Entra account; removing \
           it removes it in Entra. Needs the LicenseAssignment.ReadWrite.All permission (and Organization.Read.All \
           to import the licences), granted with admin consent; re-authorise the connection after adding it.",
    kind: SettingKind::Flag { default: false },
    required: Required::Optional,
    part: SettingPart::Sync,
};

/// What to do with the stored delta links when the sync method changes (see
/// [`DELTA_LINKS_SETTING`]); an action taken with the change, never stored.
pub const DELTA_LINKS: &[Choice] = &[
    Choice {
        value: "latest",
        label: "Take the latest delta: track from now on (changes made before are not read again)",
    },
    Choice {
        value: "clear",
        label: "Read the whole tenant again on the next run",
    },
];

/// The guide: changing the sync method takes the latest delta after a confirmation. Asked when
/// the method changes while delta links are stored; the change is refused without an answer.
pub const DELTA_LINKS_SETTING: Setting = Setting {
    key: "delta_links",
    label: "When the sync method changes",
    help: "Changing the sync method restarts the delta queries: take the latest delta (the guide's way: \
           tracking starts now, earlier changes are not read under the new method) or read the whole tenant \
           again on the next run. Needed only when the method changes while delta links are stored.",
    kind: SettingKind::Choice { options: DELTA_LINKS },
    required: Required::Optional,
    part: SettingPart::Sync,
};

/// How the connection authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// Application permissions, client credentials with a client secret.
    ClientSecret,
    /// Application permissions, client credentials with a certificate (PS256 assertion).
    Certificate,
    /// Delegated permissions: an administrator signs in (authorization code with PKCE) and the
    /// refresh token is sealed; a confidential app also has a client secret.
    Delegated,
}

/// "Listen to all changes" or only to the fields the mappings use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMethod {
    #[default]
    AllChanges,
    MappedFieldsOnly,
}

/// The stored (non-secret) settings of an Entra connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntraSettings {
    pub tenant_id: String,
    pub client_id: String,
    pub auth: AuthMethod,
    /// The identity platform host; national clouds and the emulator use others.
    pub authority_host: String,
    /// Graph's version root.
    pub graph_url: String,
    /// The desk customer this tenant's users belong to.
    pub customer_id: RecordId,
    /// Use delta queries after the first full import.
    #[serde(default = "yes")]
    pub delta: bool,
    #[serde(default)]
    pub sync_method: SyncMethod,
    /// Import the last sign-in date (needs AuditLog.Read.All and a premium tenant).
    #[serde(default)]
    pub last_sign_in: bool,
    /// Licences may be assigned and removed from the desk (needs LicenseAssignment.ReadWrite.All).
    #[serde(default)]
    pub manage_licences: bool,
    pub mapping: MappingConfig,
}

fn yes() -> bool {
    true
}

/// A credential as given when the connection is added.
#[derive(Debug, Clone)]
pub enum NewCredential {
    ClientSecret {
        value: String,
        expires_at: Option<jiff::Timestamp>,
    },
    /// The certificate and its private key, PEM.
    Certificate { pem: String },
    /// Delegated permissions; the client secret of a confidential app (a public client has
    /// none). The connection is usable once authorised by a sign-in.
    Delegated {
        client_secret: Option<String>,
        expires_at: Option<jiff::Timestamp>,
    },
}

#[derive(Debug, Clone)]
pub struct NewEntraConnection {
    pub name: String,
    pub tenant_id: String,
    pub client_id: String,
    pub credential: NewCredential,
    pub authority_host: Option<String>,
    pub graph_url: Option<String>,
    /// The customer to import into (created, with its main site, when no customer has the name);
    /// defaults to the connection's name.
    pub customer: Option<String>,
    /// "production", "test" or both, comma separated.
    pub enabled_instances: Option<String>,
    /// Import each user's last sign-in date (needs AuditLog.Read.All and a premium tenant).
    pub last_sign_in: bool,
}

fn check_url(name: &str, what: &str, url: &str) -> Result<String, SyncError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| SyncError::BadSettings(name.into(), format!("{what} {url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(SyncError::BadSettings(
            name.into(),
            format!("{what} must be an http(s) URL, not {url:?}"),
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Creates an Entra connection for a program (the demo, the benchmarks, tests): the usual field
/// mappings, one catch-all site mapping to its customer's main site, and delta queries,
/// deactivation of users not found and matching by email then network login turned on.
/// Connections people create ([`crate::EntraSource`]'s `create`: the CLI, the API, the UI) start
/// with the guide's opt-in defaults instead. Everything is written in one transaction.
pub async fn add_entra_connection(store: &Store, new: &NewEntraConnection) -> Result<Connection, SyncError> {
    let authority = check_url(
        &new.name,
        "authority host",
        new.authority_host
            .as_deref()
            .unwrap_or(deskbridge_msauth::PUBLIC_CLOUD_AUTHORITY),
    )?;
    let graph = check_url(
        &new.name,
        "Graph URL",
        new.graph_url
            .as_deref()
            .unwrap_or(deskbridge_graph::DEFAULT_GRAPH_BASE_URL),
    )?;
    if new.tenant_id.trim().is_empty() || new.client_id.trim().is_empty() {
        return Err(SyncError::BadSettings(
            new.name.clone(),
            "tenant id and client id are required".into(),
        ));
    }
    let instances = deskbridge_source::settings::enabled_instances(new.enabled_instances.as_deref())?;
    let mut tx = store.begin(WriteContext::manual()).await?;
    let customer_name = new.customer.clone().unwrap_or_else(|| new.name.clone());
    let found =
        deskbridge_source::desk::customer_for_tenant(&mut tx, &customer_name, new.tenant_id.trim()).await?;
    let (customer, main_site) = (found.customer, found.main_site);
    let settings = EntraSettings {
        tenant_id: new.tenant_id.trim().to_owned(),
        client_id: new.client_id.trim().to_owned(),
        auth: match new.credential {
            NewCredential::ClientSecret { .. } => AuthMethod::ClientSecret,
            NewCredential::Certificate { .. } => AuthMethod::Certificate,
            NewCredential::Delegated { .. } => AuthMethod::Delegated,
        },
        authority_host: authority,
        graph_url: graph,
        customer_id: customer,
        delta: true,
        sync_method: SyncMethod::AllChanges,
        last_sign_in: new.last_sign_in,
        manage_licences: false,
        mapping: new_connection_mappings(main_site, new.last_sign_in),
    };
    let config = serde_json::to_value(&settings)
        .map_err(|e| SyncError::BadSettings(new.name.clone(), e.to_string()))?;
    let connection = tx
        .create_connection(&NewConnection {
            name: new.name.clone(),
            kind: ENTRA_KIND.into(),
            config,
            enabled_instances: instances,
        })
        .await?;
    if found.created {
        tx.record_created_customer(connection.id, customer).await?;
    }
    match &new.credential {
        NewCredential::ClientSecret { value, expires_at }
        | NewCredential::Delegated {
            client_secret: Some(value),
            expires_at,
        } => {
            if value.trim().is_empty() {
                return Err(SyncError::BadSettings(
                    new.name.clone(),
                    "the client secret is empty".into(),
                ));
            }
            ConnectionSecrets(connection.id)
                .put(&mut tx, SECRET_CLIENT_SECRET, value, *expires_at)
                .await?;
        }
        NewCredential::Certificate { pem } => {
            let expires = certificate_expiry(pem)?;
            ConnectionSecrets(connection.id)
                .put(&mut tx, SECRET_CERTIFICATE, pem, Some(expires))
                .await?;
        }
        NewCredential::Delegated {
            client_secret: None, ..
        } => {}
    }
    tx.commit().await?;
    Ok(connection)
}

/// Checks a certificate bundle (PEM: the certificate and its private key) the way a sync will use
/// it, and gives its expiry. Everything that stores a connection's certificate goes through this,
/// so a file that cannot sign a client assertion is refused when it is given, not at the next sync.
pub fn certificate_expiry(pem: &str) -> Result<jiff::Timestamp, SyncError> {
    let cert = deskbridge_msauth::CertificateCredential::from_pem_bundle(pem.as_bytes())
        .map_err(|e| SyncError::Credential(format!("the certificate cannot be used: {e}")))?;
    Ok(cert.not_after())
}

/// The guides' generated mappings, plus one choice of ours: users deleted in Entra are made
/// inactive on the desk. A directory that keeps leavers active is the worse failure, and the
/// circuit breaker holds any run that would deactivate a large share of a tenant.
fn new_connection_mappings(main_site: RecordId, last_sign_in: bool) -> MappingConfig {
    let mut mapping = MappingConfig::generated(main_site);
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

/// Loads a connection's settings by name.
pub async fn load_entra_connection(
    store: &Store,
    name: &str,
) -> Result<(Connection, EntraSettings), SyncError> {
    let mut tx = store.read().await?;
    let connection = tx
        .connection_by_name(name)
        .await?
        .ok_or_else(|| SyncError::UnknownConnection(name.into()))?;
    tx.commit().await?;
    let settings = EntraSettings::of(&connection)?;
    Ok((connection, settings))
}

impl EntraSettings {
    /// The settings of a stored connection, which must be an Entra connection.
    pub fn of(connection: &Connection) -> Result<Self, SyncError> {
        if connection.kind != ENTRA_KIND {
            return Err(SyncError::WrongKind {
                name: connection.name.clone(),
                kind: connection.kind.clone(),
                expected: "an Entra connection".into(),
            });
        }
        serde_json::from_value(connection.config.clone())
            .map_err(|e| SyncError::BadSettings(connection.name.clone(), e.to_string()))
    }
}
