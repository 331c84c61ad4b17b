//! Creating and editing Dynamics 365 connections from validated settings (the web's forms, the
//! API, imported files, the CLI and connection strings all give these): which credential goes
//! with which AuthScheme, and what a change replaces.

use deskbridge_connector_entra::certificate_expiry;
use deskbridge_source::settings::{SettingValues, credential_moved};
use deskbridge_source::{ConnectionSecrets, NewConnection, SyncError};
use deskbridge_store::{Connection, Store, WriteContext};

use crate::DYNAMICS_KIND;
use crate::settings::{
    AuthScheme, CRM_ONLINE, Credential, DEFAULT_CALLBACK_URL, DynamicsSettings, SECRET_CERTIFICATE,
    SECRET_CLIENT_SECRET, SECRET_REFRESH_TOKEN, SETTINGS, check_values, customer_of, new_connection_mappings,
};

fn refused(what: impl Into<String>) -> SyncError {
    SyncError::InvalidSettings(what.into())
}

/// Creates a Dynamics 365 connection, its customer (found by name or created with its main
/// site) and its sealed credential, in one transaction.
pub(crate) async fn create(store: &Store, new: NewConnection) -> Result<Connection, SyncError> {
    let values = &new.settings;
    check_values(values, true)?;
    let required = |key: &str, label: &str| {
        values
            .text(key)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| refused(format!("{label}: required")))
    };
    let url = required("url", "URL")?;
    let tenant_id = required("tenant_id", "Azure tenant")?;
    let client_id = required("client_id", "Client ID")?;
    let auth_scheme = values
        .text("auth_scheme")
        .and_then(AuthScheme::parse)
        .unwrap_or(AuthScheme::AzureServicePrincipal);
    let secret = values.text(SECRET_CLIENT_SECRET).map(str::trim);
    let pem = values.text(SECRET_CERTIFICATE);
    let credential = match (secret, pem) {
        (Some(_), None) => Credential::ClientSecret,
        (None, Some(_)) => Credential::Certificate,
        _ => Credential::None,
    };
    // Refused before anything is written if it cannot sign a client assertion.
    let not_after = pem
        .map(|pem| {
            certificate_expiry(pem).map_err(|e| refused(format!("Certificate and private key (PEM): {e}")))
        })
        .transpose()?;
    let authority_host = required("authority_host", "Identity platform host")?;
    let mut tx = store.begin(WriteContext::manual()).await?;
    let customer = new.customer.clone().unwrap_or_else(|| new.name.clone());
    let found = customer_of(&mut tx, &customer, &tenant_id).await?;
    let (customer_id, main_site) = (found.customer, found.main_site);
    let settings = DynamicsSettings {
        url,
        crm_version: values.text("crm_version").unwrap_or(CRM_ONLINE).to_owned(),
        tenant_id,
        client_id,
        auth_scheme,
        credential,
        callback_url: values
            .text("callback_url")
            .unwrap_or(DEFAULT_CALLBACK_URL)
            .to_owned(),
        authority_host,
        customer_id,
        mapping: new_connection_mappings(main_site),
    };
    let config = serde_json::to_value(&settings)
        .map_err(|e| SyncError::BadSettings(new.name.clone(), e.to_string()))?;
    let connection = tx
        .create_connection(&deskbridge_store::NewConnection {
            name: new.name.clone(),
            kind: DYNAMICS_KIND.into(),
            config,
            enabled_instances: new.enabled_instances.clone(),
        })
        .await?;
    if found.created {
        tx.record_created_customer(connection.id, customer_id).await?;
    }
    let secrets = ConnectionSecrets(connection.id);
    if let Some(secret) = secret {
        secrets.put(&mut tx, SECRET_CLIENT_SECRET, secret, None).await?;
    }
    if let Some(pem) = pem {
        secrets.put(&mut tx, SECRET_CERTIFICATE, pem, not_after).await?;
    }
    tx.commit().await?;
    Ok(connection)
}

/// Changes a connection: the settings given, and the credential when one is given. A new URL,
/// authority host or tenant forgets every sealed credential (a credential only goes where it was
/// entered for); a new app or AuthScheme forgets the signed-in user's refresh token. A new tenant
/// must not belong to another desk customer.
pub(crate) async fn edit(
    store: &Store,
    connection: &Connection,
    values: SettingValues,
) -> Result<(), SyncError> {
    check_values(&values, false)?;
    let mut settings = DynamicsSettings::of(connection)?;
    // A credential goes only to the endpoints and tenant it was entered for.
    let credential_moved = credential_moved(SETTINGS, &connection.config, &values).is_some();
    let new_tenant = values
        .text("tenant_id")
        .filter(|t| !t.eq_ignore_ascii_case(&settings.tenant_id))
        .map(str::to_owned);
    let mut sign_in_void = false;
    if let Some(url) = values.text("url") {
        settings.url = url.to_owned();
    }
    if let Some(version) = values.text("crm_version") {
        settings.crm_version = version.to_owned();
    }
    if let Some(tenant) = values.text("tenant_id") {
        sign_in_void |= !tenant.eq_ignore_ascii_case(&settings.tenant_id);
        settings.tenant_id = tenant.to_owned();
    }
    if let Some(client) = values.text("client_id") {
        sign_in_void |= !client.eq_ignore_ascii_case(&settings.client_id);
        settings.client_id = client.to_owned();
    }
    if let Some(callback) = values.text("callback_url") {
        settings.callback_url = callback.to_owned();
    }
    if let Some(host) = values.text("authority_host") {
        settings.authority_host = host.to_owned();
    }
    if let Some(scheme) = values.text("auth_scheme").and_then(AuthScheme::parse) {
        sign_in_void |= scheme != settings.auth_scheme;
        settings.auth_scheme = scheme;
    }
    let secret = values.text(SECRET_CLIENT_SECRET).map(str::trim);
    let pem = values.text(SECRET_CERTIFICATE);
    let not_after = pem
        .map(|pem| {
            certificate_expiry(pem).map_err(|e| refused(format!("Certificate and private key (PEM): {e}")))
        })
        .transpose()?;
    let secrets = ConnectionSecrets(connection.id);
    let mut tx = store.begin(WriteContext::manual()).await?;
    if let Some(tenant) = &new_tenant {
        deskbridge_source::desk::claim_tenant(&mut tx, settings.customer_id, tenant).await?;
    }
    if credential_moved {
        secrets.forget_all(&mut tx).await?;
    } else if sign_in_void {
        secrets.delete(&mut tx, SECRET_REFRESH_TOKEN).await?;
    }
    // A connection never keeps a credential it does not use: a new one replaces the other kind.
    if let Some(secret) = secret {
        secrets.put(&mut tx, SECRET_CLIENT_SECRET, secret, None).await?;
        secrets.delete(&mut tx, SECRET_CERTIFICATE).await?;
        settings.credential = Credential::ClientSecret;
    }
    if let Some(pem) = pem {
        secrets.put(&mut tx, SECRET_CERTIFICATE, pem, not_after).await?;
        secrets.delete(&mut tx, SECRET_CLIENT_SECRET).await?;
        settings.credential = Credential::Certificate;
    }
    if settings.auth_scheme == AuthScheme::AzureServicePrincipal && settings.credential == Credential::None {
        return Err(refused(
            "Client secret: required for AuthScheme AzureServicePrincipal (or give a certificate)",
        ));
    }
    let config = serde_json::to_value(&settings)
        .map_err(|e| SyncError::BadSettings(connection.name.clone(), e.to_string()))?;
    tx.update_connection_config(connection.id, &config).await?;
    tx.commit().await?;
    Ok(())
}
