//! Creating and editing Entra connections from validated settings (what the web's forms, the
//! API and imported files give): which credential goes with which authentication method, and
//! what a change of credential replaces.

use deskbridge_source::settings::{SettingValues, credential_moved};
use deskbridge_source::{ConnectionSecrets, NewConnection, SyncError};
use deskbridge_store::{Connection, Store, WriteContext};

use crate::settings::{
    AuthMethod, EntraSettings, NewCredential, NewEntraConnection, SECRET_CERTIFICATE, SECRET_CLIENT_SECRET,
    SECRET_REFRESH_TOKEN, SETTINGS, SyncMethod, add_entra_connection, certificate_expiry,
};

fn refused(what: impl Into<String>) -> SyncError {
    SyncError::InvalidSettings(what.into())
}

fn auth_method(value: &str) -> Option<AuthMethod> {
    match value {
        "client_secret" => Some(AuthMethod::ClientSecret),
        "certificate" => Some(AuthMethod::Certificate),
        "delegated" => Some(AuthMethod::Delegated),
        _ => None,
    }
}

fn sync_method(value: &str) -> Option<SyncMethod> {
    match value {
        "all_changes" => Some(SyncMethod::AllChanges),
        "mapped_fields_only" => Some(SyncMethod::MappedFieldsOnly),
        _ => None,
    }
}

/// The credential the settings give for a new connection: the authentication method chosen, or
/// inferred from the credential given (a certificate alone means certificate authentication).
fn new_credential(values: &SettingValues) -> Result<NewCredential, SyncError> {
    let secret = values.text(SECRET_CLIENT_SECRET).map(|s| s.trim().to_owned());
    let pem = values.text(SECRET_CERTIFICATE).map(str::to_owned);
    let expires_at = values.time("secret_expires_at");
    let auth = match values.text("auth") {
        Some(chosen) => {
            auth_method(chosen).ok_or_else(|| refused(format!("Authentication: {chosen:?} is unknown")))?
        }
        None if pem.is_some() && secret.is_none() => AuthMethod::Certificate,
        None => AuthMethod::ClientSecret,
    };
    match (auth, secret, pem) {
        (AuthMethod::ClientSecret, Some(value), None) => {
            Ok(NewCredential::ClientSecret { value, expires_at })
        }
        (AuthMethod::ClientSecret, None, None) => Err(refused(
            "Client secret value: required (or give a certificate, or choose delegated permissions)",
        )),
        (AuthMethod::Certificate, None, Some(pem)) => {
            if expires_at.is_some() {
                return Err(refused(
                    "Secret expires: a certificate's expiry is read from the certificate; leave it empty",
                ));
            }
            Ok(NewCredential::Certificate { pem })
        }
        (AuthMethod::Certificate, None, None) => Err(refused("Certificate and private key (PEM): required")),
        (AuthMethod::Delegated, client_secret, None) => Ok(NewCredential::Delegated {
            client_secret,
            expires_at,
        }),
        _ => Err(refused(
            "give one credential: a client secret or a certificate (a delegated connection: a client secret or none)",
        )),
    }
}

/// Creates an Entra connection from validated settings ([`crate::EntraSource`]'s `create`).
pub(crate) async fn create(store: &Store, new: NewConnection) -> Result<Connection, SyncError> {
    let values = &new.settings;
    let required = |key: &str, label: &str| {
        values
            .text(key)
            .map(str::to_owned)
            .ok_or_else(|| refused(format!("{label}: required")))
    };
    let tenant_id = required("tenant_id", "Tenant id")?;
    let client_id = required("client_id", "Client id")?;
    let credential = new_credential(values)?;
    let connection = add_entra_connection(
        store,
        &NewEntraConnection {
            name: new.name.clone(),
            tenant_id,
            client_id,
            credential,
            authority_host: values.text("authority_host").map(str::to_owned),
            graph_url: values.text("graph_url").map(str::to_owned),
            customer: new.customer.clone(),
            enabled_instances: Some(new.enabled_instances.clone()),
            last_sign_in: values.flag("last_sign_in").unwrap_or(false),
        },
    )
    .await?;
    // A connection people create starts with the guide's opt-in defaults (the typed constructor
    // turns them on, for programs that want them): delta queries off unless asked for; an
    // existing desk record linked by the Azure object id only (matching by email or network
    // login is the administrator's choice, as it would take over hand-made records); users not
    // found left as they are until "deactivate users not found" is turned on. Line managers are
    // mapped, as the README's quick start promises.
    let delta = values.flag("delta").unwrap_or(false);
    let method = values.text("sync_method").and_then(sync_method);
    let mut settings = EntraSettings::of(&connection)?;
    settings.delta = delta;
    settings.sync_method = method.unwrap_or(settings.sync_method);
    settings.manage_licences = values.flag("manage_licences").unwrap_or(false);
    settings.mapping.imports.match_order.clear();
    settings.mapping.imports.deactivate_not_found = false;
    settings.mapping = std::mem::take(&mut settings.mapping).with_line_managers();
    let config = serde_json::to_value(&settings)
        .map_err(|e| SyncError::BadSettings(connection.name.clone(), e.to_string()))?;
    let mut tx = store.begin(WriteContext::manual()).await?;
    tx.update_connection_config(connection.id, &config).await?;
    tx.commit().await?;
    let mut tx = store.read().await?;
    let updated = tx.connection(connection.id).await?;
    tx.commit().await?;
    updated.ok_or_else(|| SyncError::UnknownConnection(connection.name.clone()))
}

/// Changes an Entra connection: the settings given, and the credential when one is given or the
/// authentication method changes. A new secret replaces a certificate and the other way round;
/// a delegated connection keeps its sign-in when its app's secret is replaced. New endpoints or a
/// new tenant drop every sealed credential; a new tenant must not belong to another desk customer.
pub(crate) async fn edit(
    store: &Store,
    connection: &Connection,
    values: SettingValues,
) -> Result<(), SyncError> {
    let mut settings = EntraSettings::of(connection)?;
    // A credential goes only to the endpoints and tenant it was entered for: new endpoints or a
    // new tenant, new credential (the delegated sign-in's refresh token included).
    let credential_moved = credential_moved(SETTINGS, &connection.config, &values).is_some();
    let new_tenant = values
        .text("tenant_id")
        .filter(|t| !t.eq_ignore_ascii_case(&settings.tenant_id))
        .map(str::to_owned);
    if let Some(t) = values.text("tenant_id") {
        settings.tenant_id = t.to_owned();
    }
    if let Some(c) = values.text("client_id") {
        settings.client_id = c.to_owned();
    }
    if let Some(a) = values.text("authority_host") {
        settings.authority_host = a.to_owned();
    }
    if let Some(g) = values.text("graph_url") {
        settings.graph_url = g.to_owned();
    }
    if let Some(d) = values.flag("delta") {
        settings.delta = d;
    }
    let method_changed = values
        .text("sync_method")
        .and_then(sync_method)
        .is_some_and(|m| m != settings.sync_method);
    if let Some(m) = values.text("sync_method").and_then(sync_method) {
        settings.sync_method = m;
    }
    let delta_links = values.text("delta_links").map(str::to_owned);
    if let Some(l) = values.flag("last_sign_in") {
        settings.last_sign_in = l;
    }
    if let Some(m) = values.flag("manage_licences") {
        settings.manage_licences = m;
    }
    let secret = values.text(SECRET_CLIENT_SECRET).map(str::trim);
    let pem = values.text(SECRET_CERTIFICATE);
    let expires = values.time("secret_expires_at");
    let chosen = values.text("auth").and_then(auth_method);
    let auth = match (chosen, secret, pem) {
        (_, Some(_), Some(_)) => {
            return Err(refused("give a client secret or a certificate, not both"));
        }
        (Some(auth), _, _) => auth,
        (None, Some(_), None) if settings.auth == AuthMethod::Delegated => AuthMethod::Delegated,
        (None, Some(_), None) => AuthMethod::ClientSecret,
        (None, None, Some(_)) => AuthMethod::Certificate,
        (None, None, None) => settings.auth,
    };
    if expires.is_some() && secret.is_none() {
        return Err(refused(
            "Secret expires: give it with the new client secret it belongs to",
        ));
    }
    let secrets = ConnectionSecrets(connection.id);
    let mut tx = store.begin(WriteContext::manual()).await?;
    // The guide: a new sync method takes the latest delta, after the administrator confirms it;
    // reading everything again is the explicit alternative. Nothing changes without an answer.
    let mut take_latest = false;
    if method_changed && !tx.cursors_of(connection.id).await?.is_empty() {
        match delta_links.as_deref() {
            Some("latest") => take_latest = true,
            Some("clear") => {
                tx.clear_cursors(connection.id, None).await?;
            }
            _ => {
                return Err(SyncError::Conflict(format!(
                    "connection {:?} has delta links taken under the current sync method: changing the method \
                     restarts them. Confirm how: take the latest delta (tracking starts now; earlier changes are \
                     not read under the new method) or read the whole tenant again on the next run (CLI: --yes \
                     or --reset clear; API: \"delta_links\": \"latest\" or \"clear\"; the form: \"When the sync \
                     method changes\")",
                    connection.name
                )));
            }
        }
    }
    if let Some(tenant) = &new_tenant {
        deskbridge_source::desk::claim_tenant(&mut tx, settings.customer_id, tenant).await?;
    }
    if credential_moved {
        secrets.forget_all(&mut tx).await?;
    }
    match auth {
        AuthMethod::ClientSecret | AuthMethod::Delegated if pem.is_some() => {
            return Err(refused(
                "a certificate was given, but the connection signs in with a client secret: choose certificate authentication",
            ));
        }
        AuthMethod::Certificate if secret.is_some() => {
            return Err(refused(
                "a client secret was given, but the connection signs in with a certificate: choose client secret authentication",
            ));
        }
        _ => {}
    }
    if let Some(secret) = secret {
        secrets
            .put(&mut tx, SECRET_CLIENT_SECRET, secret, expires)
            .await?;
    }
    if let Some(pem) = pem {
        // Refused now if it cannot sign; its own expiry is what the check shows.
        let not_after = certificate_expiry(pem).map_err(|e| refused(e.to_string()))?;
        secrets
            .put(&mut tx, SECRET_CERTIFICATE, pem, Some(not_after))
            .await?;
    }
    if auth != settings.auth {
        // The credential the new method signs in with must be there, and the old one goes: a
        // connection never keeps a credential it does not use.
        match auth {
            AuthMethod::ClientSecret => {
                if secret.is_none() && secrets.get(&mut tx, SECRET_CLIENT_SECRET).await?.is_none() {
                    return Err(refused(
                        "Client secret value: required to sign in with a client secret",
                    ));
                }
                secrets.delete(&mut tx, SECRET_CERTIFICATE).await?;
                secrets.delete(&mut tx, SECRET_REFRESH_TOKEN).await?;
            }
            AuthMethod::Certificate => {
                if pem.is_none() && secrets.get(&mut tx, SECRET_CERTIFICATE).await?.is_none() {
                    return Err(refused(
                        "Certificate and private key (PEM): required to sign in with a certificate",
                    ));
                }
                secrets.delete(&mut tx, SECRET_CLIENT_SECRET).await?;
                secrets.delete(&mut tx, SECRET_REFRESH_TOKEN).await?;
            }
            AuthMethod::Delegated => {
                secrets.delete(&mut tx, SECRET_CERTIFICATE).await?;
            }
        }
        settings.auth = auth;
    }
    let config = serde_json::to_value(&settings)
        .map_err(|e| SyncError::BadSettings(connection.name.clone(), e.to_string()))?;
    tx.update_connection_config(connection.id, &config).await?;
    tx.commit().await?;
    if take_latest {
        let clock: deskbridge_core::SharedClock = std::sync::Arc::new(deskbridge_core::SystemClock);
        crate::delta::reset_deltas(store, &connection.name, crate::delta::DeltaReset::Latest, &clock)
            .await
            .map_err(|e| SyncError::Upstream {
                error_code: deskbridge_core::HasErrorCode::error_code(&e),
                code: e.code(),
                message: format!(
                    "the sync method was changed, but the latest delta could not be taken: {e} (the next run \
                         reads the tenant whole)"
                ),
                remedy: e
                    .remedy()
                    .unwrap_or_else(|| "Take it later: deskbridge connection delta --reset latest.".into()),
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use deskbridge_source::settings::{EndpointPolicy, Purpose, validate};
    use serde_json::json;

    use super::*;

    fn values(v: serde_json::Value) -> SettingValues {
        validate(
            SETTINGS,
            v.as_object().expect("object"),
            Purpose::Create,
            &EndpointPolicy::default(),
        )
        .expect("valid")
    }

    const TENANT: &str = "11111111-1111-1111-1111-111111111111";

    #[test]
    fn the_credential_decides_the_method_unless_one_is_chosen() {
        let secret = values(json!({ "tenant_id": TENANT, "client_id": TENANT, "client_secret": "s" }));
        assert!(matches!(
            new_credential(&secret),
            Ok(NewCredential::ClientSecret { .. })
        ));
        let cert = values(json!({ "tenant_id": TENANT, "client_id": TENANT, "certificate_pem": "pem" }));
        assert!(matches!(
            new_credential(&cert),
            Ok(NewCredential::Certificate { .. })
        ));
        let delegated = values(json!({ "tenant_id": TENANT, "client_id": TENANT, "auth": "delegated" }));
        assert!(matches!(
            new_credential(&delegated),
            Ok(NewCredential::Delegated {
                client_secret: None,
                ..
            })
        ));
        let none = values(json!({ "tenant_id": TENANT, "client_id": TENANT }));
        assert!(new_credential(&none).is_err());
        let both = values(json!({
            "tenant_id": TENANT, "client_id": TENANT, "client_secret": "s", "certificate_pem": "pem"
        }));
        assert!(new_credential(&both).is_err());
    }
}
