//! The configuration check of an Entra connection: a list of points, each passed or failed with
//! what was found and what to do about it. The pipeline's `check_connection` dispatches here
//! through the source registry (`deskbridge check`, the web API, the agent).
//!
//! Points, in order: the connection and its settings, instance enablement, the stored credential
//! (present, usable, not a Secret ID pasted for the value, not expired or near expiry), a token
//! (the guides' sign-in errors explained), consent (the app's service principal in the tenant),
//! permissions granted (the token's `roles`, or `scp` for a delegated token) against those the
//! enabled features need, the tenant reachable, sign-in data when enabled (needs a premium
//! tenant), the mappings, and the delta state.

use std::collections::BTreeSet;
use std::sync::Arc;

use base64::Engine as _;
use deskbridge_core::SharedClock;
use deskbridge_graph::{GraphClient, GraphConfig, GraphErrorClass};
use deskbridge_msauth::{
    AppCredentials, AppTokenProvider, AuthErrorClass, Authority, CertificateCredential, ClientCredential,
    SecretString, TokenClient, TokenProvider,
};
use deskbridge_source::{CheckPoint, ConnectionSecrets, SourceContext};
use deskbridge_store::{Connection, CursorKey, Store};
use jiff::SignedDuration;

use crate::settings::{
    AuthMethod, EntraSettings, SECRET_CERTIFICATE, SECRET_CLIENT_SECRET, SECRET_REFRESH_TOKEN,
};

/// A secret expiring within this many days fails the check: there must be time to rotate it.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// One permission the enabled features need: any of `accepted` will do; `name` is the one to
/// grant.
struct Requirement {
    feature: &'static str,
    name: &'static str,
    accepted: &'static [&'static str],
}

const READ_USERS: Requirement = Requirement {
    feature: "users",
    name: "User.Read.All",
    accepted: &[
        "User.Read.All",
        "User.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ],
};
const READ_GROUPS: Requirement = Requirement {
    feature: "groups and memberships",
    // The guide's name; GroupMember.Read.All (narrower) is accepted as well.
    name: "Group.Read.All",
    accepted: &[
        "GroupMember.Read.All",
        "GroupMember.ReadWrite.All",
        "Group.Read.All",
        "Group.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ],
};
const READ_ORG: Requirement = Requirement {
    feature: "licences (subscribed SKUs)",
    name: "Organization.Read.All",
    accepted: &[
        "Organization.Read.All",
        "Organization.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ],
};
const READ_DEVICES: Requirement = Requirement {
    feature: "managed devices (assets)",
    name: "DeviceManagementManagedDevices.Read.All",
    accepted: &[
        "DeviceManagementManagedDevices.Read.All",
        "DeviceManagementManagedDevices.ReadWrite.All",
    ],
};
const READ_SIGN_INS: Requirement = Requirement {
    feature: "last sign-in dates",
    name: "AuditLog.Read.All",
    accepted: &["AuditLog.Read.All"],
};

/// The permission (and what it is for) a Graph call needs, from the call's method and URL as a
/// Graph error records it: what a 403 names, as `check` would.
pub(crate) fn permission_for_request(request: &str) -> Option<(&'static str, &'static str)> {
    let url = request.to_ascii_lowercase();
    let path = url.split('?').next().unwrap_or(&url);
    let requirement = if url.contains("signinactivity") {
        &READ_SIGN_INS
    } else if path.ends_with("/assignlicense") {
        return Some((
            crate::licences::LICENCE_WRITE_PERMISSION,
            "licence changes from the desk",
        ));
    } else if path.contains("/devicemanagement/") {
        &READ_DEVICES
    } else if path.contains("/subscribedskus") || path.contains("/organization") {
        &READ_ORG
    } else if path.contains("/groups") || path.contains("/memberof") || path.contains("/transitivememberof") {
        &READ_GROUPS
    } else if path.contains("/users") {
        &READ_USERS
    } else {
        return None;
    };
    Some((requirement.name, requirement.feature))
}

/// A point for a permission the connection works without: passed either way, saying what it
/// enables when it is missing.
fn optional_permission(token: &str, permission: &Requirement) -> CheckPoint {
    let name = "licences_permission";
    match granted_permissions(token) {
        Ok(granted) if permission.accepted.iter().any(|p| granted.contains(*p)) => CheckPoint::pass(
            name,
            format!("{} granted: {} are imported", permission.name, permission.feature),
        ),
        Ok(_) => CheckPoint::pass(
            name,
            format!(
                "{} not granted (optional): {} are not imported, and users import without them; grant it with \
                 admin consent to import them",
                permission.name, permission.feature
            ),
        ),
        Err(e) => CheckPoint::pass(name, format!("not known: {e}")),
    }
}

/// LicenseAssignment.ReadWrite.All: needed only when licences are managed from the desk; then
/// its absence fails, with the consent to grant.
fn licence_management_permission(token: &str, settings: &EntraSettings) -> CheckPoint {
    let name = "licence_management_permission";
    let permission = crate::licences::LICENCE_WRITE_PERMISSION;
    let accepted = [permission, "User.ReadWrite.All", "Directory.ReadWrite.All"];
    let granted = match granted_permissions(token) {
        Ok(granted) => accepted.iter().any(|p| granted.contains(*p)),
        Err(e) => return CheckPoint::pass(name, format!("not known: {e}")),
    };
    match (settings.manage_licences, granted) {
        (true, true) => CheckPoint::pass(
            name,
            format!("{permission} granted: licences can be assigned and removed from the desk"),
        ),
        (true, false) => CheckPoint::fail(
            name,
            format!(
                "licences are managed from the desk, but {permission} is not granted: Microsoft will refuse every \
                 licence change"
            ),
            crate::licences::consent_remedy(settings.auth),
        ),
        (false, _) => CheckPoint::pass(
            name,
            format!(
                "licence management from the desk is off: {permission} is not needed (it is, with re-authorising, \
                 once the option is turned on)"
            ),
        ),
    }
}

/// The permissions in an access token: app roles (`roles`) or delegated scopes (`scp`). The
/// token is only decoded, not verified: it came straight from the token endpoint over TLS, and
/// this reads what was granted, it does not authorise anything.
pub fn granted_permissions(token: &str) -> Result<BTreeSet<String>, String> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| "the access token is not a JWT".to_owned())?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| format!("the access token's payload is not base64url: {e}"))?;
    let claims: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("the access token's payload is not JSON: {e}"))?;
    let mut out = BTreeSet::new();
    if let Some(roles) = claims.get("roles").and_then(|r| r.as_array()) {
        out.extend(roles.iter().filter_map(|r| r.as_str().map(str::to_owned)));
    }
    if let Some(scp) = claims.get("scp").and_then(|s| s.as_str()) {
        out.extend(scp.split_whitespace().map(str::to_owned));
    }
    Ok(out)
}

/// A GUID-shaped value: what a client secret's "Secret ID" looks like (a value never does).
fn looks_like_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.trim().split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Checks an Entra connection on an instance of kind `instance`.
pub(crate) async fn check(
    cx: &SourceContext,
    graph: &GraphConfig,
    connection: &Connection,
    instance: &str,
) -> Vec<CheckPoint> {
    let (store, clock) = (&cx.store, &cx.clock);
    let name = connection.name.as_str();
    let graph = Some(graph.clone());
    let mut points = Vec::new();
    let settings = match EntraSettings::of(connection) {
        Ok(settings) => settings,
        Err(e) => {
            points.push(CheckPoint::fail(
                "connection",
                e.to_string(),
                e.remedy()
                    .unwrap_or_else(|| "Add the connection again with valid settings.".into()),
            ));
            return points;
        }
    };
    points.push(CheckPoint::pass(
        "connection",
        format!(
            "Entra connection to tenant {} with app {}",
            settings.tenant_id, settings.client_id
        ),
    ));
    points.push(CheckPoint::instance(connection, instance));

    // The credential as stored.
    let (field, what) = match settings.auth {
        AuthMethod::ClientSecret => (SECRET_CLIENT_SECRET, "client secret"),
        AuthMethod::Certificate => (SECRET_CERTIFICATE, "certificate"),
        AuthMethod::Delegated => {
            let token = delegated_token(store, connection, &settings, clock, &mut points).await;
            return after_token(store, &settings, connection.id, graph, clock, points, token, true).await;
        }
    };
    let secrets = ConnectionSecrets(connection.id);
    let stored = async {
        let mut tx = store.read().await?;
        let value = secrets.get(&mut tx, field).await?;
        let expiry = secrets.expiry(&mut tx, field).await?;
        tx.commit().await?;
        Ok::<_, deskbridge_source::SyncError>((value, expiry))
    }
    .await;
    let (value, expiry) = match stored {
        Ok(v) => v,
        Err(e) => {
            points.push(CheckPoint::fail(
                "credential",
                format!("the {what} cannot be read: {e}"),
                "Check the master key (DESKBRIDGE_SECRET_KEY or the key file) is the one the secret was sealed with.",
            ));
            return points;
        }
    };
    let credential = match (settings.auth, value) {
        (_, None) => {
            points.push(CheckPoint::fail(
                "credential",
                format!("no {what} is stored for the connection"),
                format!("Add the connection again with its {what}."),
            ));
            None
        }
        (AuthMethod::ClientSecret, Some(secret)) if looks_like_guid(&secret) => {
            points.push(CheckPoint::fail(
                "credential",
                "the stored client secret is a GUID: that is the secret's Secret ID, not its value",
                "Paste the secret's Value (shown once, when the secret is created), not its Secret ID; create a new secret if the value was not kept.",
            ));
            Some(ClientCredential::Secret(SecretString::from(
                secret.as_str().to_owned(),
            )))
        }
        (AuthMethod::ClientSecret, Some(secret)) => {
            points.push(CheckPoint::pass(
                "credential",
                "a client secret is stored (sealed)",
            ));
            Some(ClientCredential::Secret(SecretString::from(
                secret.as_str().to_owned(),
            )))
        }
        (AuthMethod::Certificate, Some(pem)) => {
            match CertificateCredential::from_pem_bundle(pem.as_bytes()) {
                Ok(cert) => {
                    points.push(CheckPoint::pass(
                        "credential",
                        "a certificate with its private key is stored (sealed)",
                    ));
                    Some(ClientCredential::Certificate(Arc::new(cert)))
                }
                Err(e) => {
                    points.push(CheckPoint::fail(
                    "credential",
                    format!("the stored certificate cannot be used: {e}"),
                    "Add the connection again with a PEM file holding the certificate and its private key.",
                ));
                    None
                }
            }
        }
        // Delegated connections returned above.
        (AuthMethod::Delegated, Some(_)) => None,
    };
    let now = clock.now();
    points.push(match expiry.as_deref().map(deskbridge_store::parse_timestamp) {
        None => CheckPoint::pass(
            "credential_expiry",
            format!("the {what}'s expiry is not recorded (give --secret-expires when adding the connection to have it checked)"),
        ),
        Some(Err(e)) => CheckPoint::fail("credential_expiry", e, "Record the expiry again when updating the credential."),
        Some(Ok(at)) if at <= now => CheckPoint::fail(
            "credential_expiry",
            format!("the {what} expired at {at}"),
            "Create a new secret in the app registration and update the connection.",
        ),
        Some(Ok(at)) if at <= now.checked_add(SignedDuration::from_hours(24 * EXPIRY_WARNING_DAYS)).unwrap_or(now) => {
            CheckPoint::fail(
                "credential_expiry",
                format!("the {what} expires at {at}, within {EXPIRY_WARNING_DAYS} days"),
                "Create a new secret in the app registration now and update the connection before it expires.",
            )
        }
        Some(Ok(at)) => CheckPoint::pass("credential_expiry", format!("valid until {at}")),
    });

    // A token, and what it says was granted.
    let token = match credential {
        None => None,
        Some(credential) => {
            let providers = async {
                let http = deskbridge_source::http_client(name).map_err(|e| e.to_string())?;
                let authority = Authority::new(&settings.authority_host).map_err(|e| e.to_string())?;
                let tokens = Arc::new(AppTokenProvider::new(
                    TokenClient::new(http.clone(), authority, clock.clone()),
                    AppCredentials {
                        client_id: settings.client_id.clone(),
                        credential: Some(credential),
                    },
                ));
                Ok::<_, String>((http, tokens))
            }
            .await;
            match providers {
                Err(e) => {
                    points.push(CheckPoint::fail(
                        "token",
                        e,
                        "Check the connection's authority host.",
                    ));
                    None
                }
                Ok((http, tokens)) => {
                    let scope = crate::client::scope_for(&settings.graph_url);
                    match tokens.access_token(&settings.tenant_id, &scope).await {
                        Ok(token) => {
                            points.push(CheckPoint::pass("token", "an app-only access token was issued"));
                            points.push(CheckPoint::pass(
                                "consent",
                                "the app has a service principal (admin consent) in the tenant",
                            ));
                            Some((http, tokens as Arc<dyn TokenProvider>, token))
                        }
                        Err(e) => {
                            let detail = e.to_string();
                            let remedy = e.microsoft().map_or(
                                "Check the connection's tenant id, client id, credential and authority host.",
                                |m| m.remedy(),
                            );
                            let consent_problem = e.microsoft().is_some_and(|m| {
                                matches!(
                                    m.class(),
                                    AuthErrorClass::MissingServicePrincipal
                                        | AuthErrorClass::AppNotFoundInTenant
                                )
                            });
                            if consent_problem {
                                points.push(CheckPoint::blocked("token", "consent"));
                                points.push(CheckPoint::fail("consent", detail, remedy));
                            } else {
                                points.push(CheckPoint::fail("token", detail, remedy));
                            }
                            None
                        }
                    }
                }
            }
        }
    };
    after_token(
        store,
        &settings,
        connection.id,
        graph,
        clock,
        points,
        token,
        false,
    )
    .await
}

/// A delegated connection's token: its sealed refresh token redeemed the way a sync does it.
async fn delegated_token(
    store: &Store,
    connection: &Connection,
    settings: &EntraSettings,
    clock: &SharedClock,
    points: &mut Vec<CheckPoint>,
) -> Option<(
    reqwest::Client,
    Arc<dyn TokenProvider>,
    deskbridge_msauth::AccessToken,
)> {
    let authorised = async {
        let mut tx = store.read().await?;
        let token = ConnectionSecrets(connection.id)
            .get(&mut tx, SECRET_REFRESH_TOKEN)
            .await?;
        tx.commit().await?;
        Ok::<_, deskbridge_source::SyncError>(token.is_some())
    }
    .await;
    match authorised {
        Ok(true) => points.push(CheckPoint::pass(
            "credential",
            "delegated: a signed-in administrator's refresh token is stored (sealed)",
        )),
        Ok(false) => {
            points.push(CheckPoint::fail(
                "credential",
                "delegated connection not authorised yet: nobody has signed in",
                format!(
                    "Sign in with Microsoft on the connection's details page, or run `deskbridge connection authorize --name {}`.",
                    connection.name
                ),
            ));
            points.push(CheckPoint::blocked("token", "credential"));
            return None;
        }
        Err(e) => {
            points.push(CheckPoint::fail(
                "credential",
                format!("the refresh token cannot be read: {e}"),
                "Check the master key (DESKBRIDGE_SECRET_KEY or the key file) is the one the token was sealed with.",
            ));
            points.push(CheckPoint::blocked("token", "credential"));
            return None;
        }
    }
    let http = match deskbridge_source::http_client(&connection.name) {
        Ok(http) => http,
        Err(e) => {
            points.push(CheckPoint::fail(
                "token",
                e.to_string(),
                "Check this machine's TLS set-up.",
            ));
            return None;
        }
    };
    let tokens = match crate::client::token_provider(store, connection, settings, &http, clock).await {
        Ok(tokens) => tokens,
        Err(e) => {
            points.push(CheckPoint::fail(
                "token",
                e.to_string(),
                e.remedy()
                    .unwrap_or_else(|| "Check the connection's settings.".into()),
            ));
            return None;
        }
    };
    let scope = crate::client::scope_for(&settings.graph_url);
    match tokens.access_token(&settings.tenant_id, &scope).await {
        Ok(token) => {
            points.push(CheckPoint::pass(
                "token",
                "a delegated access token was issued from the stored sign-in",
            ));
            Some((http, tokens, token))
        }
        Err(e) => {
            let remedy = e.microsoft().map_or_else(
                || "Check the connection's authority host and sign in again.".to_owned(),
                |m| format!("{} Then sign in again to authorise the connection.", m.remedy()),
            );
            points.push(CheckPoint::fail("token", e.to_string(), remedy));
            None
        }
    }
}

/// The points that need a token (permissions, tenant reachable, sign-in data), then mappings and
/// delta state.
#[allow(clippy::too_many_arguments)] // the check's context, passed on as it is
async fn after_token(
    store: &Store,
    settings: &EntraSettings,
    connection: deskbridge_core::ConnectionId,
    graph: Option<GraphConfig>,
    clock: &SharedClock,
    mut points: Vec<CheckPoint>,
    token: Option<(
        reqwest::Client,
        Arc<dyn TokenProvider>,
        deskbridge_msauth::AccessToken,
    )>,
    delegated: bool,
) -> Vec<CheckPoint> {
    let Some((http, tokens, token)) = token else {
        for name in ["permissions", "tenant_reachable"] {
            points.push(CheckPoint::blocked(name, "token"));
        }
        if settings.last_sign_in {
            points.push(CheckPoint::blocked("sign_in_data", "token"));
        }
        if settings.manage_licences {
            points.push(CheckPoint::blocked("licence_management_permission", "token"));
        }
        mappings_and_delta(store, settings, connection, &mut points).await;
        return points;
    };

    // Organization.Read.All is optional (the guide's table): without it users import and
    // licences are left as they are. It has its own point, which says what it would enable.
    let mut required = vec![READ_USERS, READ_GROUPS];
    if settings.last_sign_in {
        required.push(READ_SIGN_INS);
    }
    if settings.mapping.assets.is_some() {
        required.push(READ_DEVICES);
    }
    points.push(match granted_permissions(token.bearer()) {
        Err(e) => CheckPoint::fail("permissions", e, "Check the authority host points at Microsoft's identity platform."),
        Ok(granted) => {
            let missing: Vec<&Requirement> = required
                .iter()
                .filter(|r| !r.accepted.iter().any(|p| granted.contains(*p)))
                .collect();
            if missing.is_empty() {
                CheckPoint::pass(
                    "permissions",
                    format!(
                        "granted {} — enough for {}",
                        granted.iter().cloned().collect::<Vec<_>>().join(", "),
                        required.iter().map(|r| r.feature).collect::<Vec<_>>().join(", ")
                    ),
                )
            } else {
                CheckPoint::fail(
                    "permissions",
                    format!(
                        "missing {} (granted: {})",
                        missing
                            .iter()
                            .map(|r| format!("{} for {}", r.name, r.feature))
                            .collect::<Vec<_>>()
                            .join("; "),
                        if granted.is_empty() { "none".to_owned() } else { granted.iter().cloned().collect::<Vec<_>>().join(", ") }
                    ),
                    format!(
                        "Add the Microsoft Graph {} permission(s) {} to the app registration and grant admin consent in the tenant{}.",
                        if delegated { "delegated" } else { "application" },
                        missing.iter().map(|r| r.name).collect::<Vec<_>>().join(", "),
                        if delegated { ", then sign in again" } else { "" }
                    ),
                )
            }
        }
    });
    points.push(optional_permission(token.bearer(), &READ_ORG));
    points.push(licence_management_permission(token.bearer(), settings));

    let config = graph
        .unwrap_or_default()
        .with_base_url(settings.graph_url.clone());
    match GraphClient::new(http, config, clock.clone()) {
        Err(e) => points.push(CheckPoint::fail(
            "tenant_reachable",
            e.to_string(),
            "Check the connection's Graph URL.",
        )),
        Ok(client) => {
            let tenant = client.tenant(&settings.tenant_id, tokens);
            points.push(
                match tenant
                    .get_json::<serde_json::Value>("/users?$select=id&$top=1")
                    .await
                {
                    Ok(_) => CheckPoint::pass(
                        "tenant_reachable",
                        format!("Graph answered for tenant {}", settings.tenant_id),
                    ),
                    Err(e) => CheckPoint::fail(
                        "tenant_reachable",
                        e.to_string(),
                        e.api().map_or(
                            "Check the Graph URL and this machine's network access to it.",
                            |a| a.class.remedy(),
                        ),
                    ),
                },
            );
            if settings.last_sign_in {
                points.push(
                    match tenant
                        .get_json::<serde_json::Value>("/users?$select=id,signInActivity&$top=1")
                        .await
                    {
                        Ok(_) => CheckPoint::pass("sign_in_data", "sign-in activity is readable"),
                        Err(e) => {
                            let remedy = match e.class() {
                                Some(GraphErrorClass::NonPremiumTenant) => {
                                    "Sign-in activity needs a Microsoft Entra ID P1 or P2 licence in the tenant; turn the last sign-in option off for this connection, or license the tenant.".to_owned()
                                }
                                Some(class) => class.remedy().to_owned(),
                                None => "Check the Graph URL and this machine's network access to it.".to_owned(),
                            };
                            CheckPoint::fail("sign_in_data", e.to_string(), remedy)
                        }
                    },
                );
            }
        }
    }
    mappings_and_delta(store, settings, connection, &mut points).await;
    points
}

async fn mappings_and_delta(
    store: &Store,
    settings: &EntraSettings,
    connection: deskbridge_core::ConnectionId,
    points: &mut Vec<CheckPoint>,
) {
    let mut cursors = Vec::new();
    let catalog = async {
        let mut tx = store.read().await?;
        for stream in [crate::read::USERS_DELTA, crate::read::GROUPS_DELTA] {
            let key = CursorKey {
                connection_id: connection,
                tenant_id: settings.tenant_id.clone(),
                stream: stream.into(),
            };
            cursors.push((stream, tx.cursor(&key).await?));
        }
        let catalog = deskbridge_source::desk::load_catalog(
            &mut tx,
            settings.mapping.group_names(),
            &crate::source::user_properties(),
        )
        .await;
        tx.commit().await?;
        catalog
    }
    .await;
    points.push(match catalog {
        Err(e) => CheckPoint::fail("mappings", e.to_string(), "Check the database is reachable."),
        Ok(catalog) => match deskbridge_mapping::validate(&settings.mapping, &catalog) {
            Ok(_) => CheckPoint::pass("mappings", "the mapping configuration is valid against the desk"),
            Err(errors) => CheckPoint::fail(
                "mappings",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
                "Fix the mappings with `deskbridge mappings show|set`.",
            ),
        },
    });
    let saved: Vec<String> = cursors
        .iter()
        .filter_map(|(stream, c)| c.as_ref().map(|c| format!("{stream} saved {}", c.updated_at)))
        .collect();
    points.push(CheckPoint::pass(
        "delta_state",
        if !settings.delta {
            "delta is off: every run is a full import".to_owned()
        } else if saved.len() == cursors.len() {
            format!(
                "delta tokens present ({}): the next run reads changes only",
                saved.join(", ")
            )
        } else {
            "no delta tokens yet: the next run is a full import".to_owned()
        },
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_call_names_the_permission_it_needs() {
        let cases = [
            (
                "GET https://graph.microsoft.com/v1.0/users/delta?$select=id,displayName",
                "User.Read.All",
            ),
            (
                "GET https://graph.microsoft.com/v1.0/users?$select=id,signInActivity",
                "AuditLog.Read.All",
            ),
            (
                "GET https://graph.microsoft.com/v1.0/groups/delta",
                "Group.Read.All",
            ),
            (
                "GET https://graph.microsoft.com/v1.0/users/abc/memberOf",
                "Group.Read.All",
            ),
            (
                "GET https://graph.microsoft.com/v1.0/subscribedSkus",
                "Organization.Read.All",
            ),
            (
                "GET https://graph.microsoft.com/v1.0/deviceManagement/managedDevices",
                "DeviceManagementManagedDevices.Read.All",
            ),
            (
                "POST https://graph.microsoft.com/v1.0/users/abc/assignLicense",
                "LicenseAssignment.ReadWrite.All",
            ),
        ];
        for (request, permission) in cases {
            assert_eq!(
                permission_for_request(request).map(|(name, _)| name),
                Some(permission),
                "{request}"
            );
        }
        assert_eq!(
            permission_for_request("GET https://graph.microsoft.com/v1.0/me"),
            None
        );
    }

    #[test]
    fn permissions_come_from_roles_or_scp() {
        let b64 =
            |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let app = format!(
            "x.{}.y",
            b64(serde_json::json!({"roles": ["User.Read.All", "Group.Read.All"]}))
        );
        assert_eq!(
            granted_permissions(&app).unwrap().into_iter().collect::<Vec<_>>(),
            ["Group.Read.All", "User.Read.All"]
        );
        let delegated = format!(
            "x.{}.y",
            b64(serde_json::json!({"scp": "User.Read Directory.Read.All"}))
        );
        assert!(
            granted_permissions(&delegated)
                .unwrap()
                .contains("Directory.Read.All")
        );
        assert!(granted_permissions("opaque").is_err());
    }

    #[test]
    fn secret_ids_are_told_from_values() {
        assert!(looks_like_guid("6a1c2b0e-1111-2222-3333-444455556666"));
        assert!(!looks_like_guid("abc~Q8x0vS2mYtY1uZr3pL9eK7wN5hJ6gF4dC2bA1z"));
    }
}
