//! Creating and editing CSP connections from validated settings (what the web's forms, the API,
//! imported files and `deskbridge connection add csp` give): which GDAP credential is used, and
//! what a change of credential or endpoint replaces.

use deskbridge_connector_entra::{SyncMethod, certificate_expiry};
use deskbridge_source::settings::{SettingValues, credential_moved};
use deskbridge_source::{ConnectionSecrets, NewConnection, SyncError};
use deskbridge_store::{Connection, Store, StoreTx, WriteContext};

use crate::CSP_KIND;
use crate::settings::{
    CspSettings, GdapAuth, LicenceImport, RelationshipType, SECRET_GDAP_CERTIFICATE, SECRET_GDAP_SECRET,
    SECRET_PARTNER_REFRESH_TOKEN, SECRET_PARTNER_SECRET, SETTINGS, new_connection_mappings,
};

fn refused(what: impl Into<String>) -> SyncError {
    SyncError::InvalidSettings(what.into())
}

fn gdap_auth(value: &str) -> Option<GdapAuth> {
    match value {
        "client_secret" => Some(GdapAuth::ClientSecret),
        "certificate" => Some(GdapAuth::Certificate),
        _ => None,
    }
}

/// The marketplace of `subscription_pricing` (`off`: no prices).
fn pricing_market(value: &str) -> Result<Option<String>, SyncError> {
    match value {
        "off" => Ok(None),
        "GB" | "US" => Ok(Some(value.to_owned())),
        other => Err(refused(format!(
            "Subscription pricing: {other:?} is not one of off, GB, US"
        ))),
    }
}

/// The desk top level named `name` (empty: none).
async fn top_level(store: &Store, name: &str) -> Result<Option<deskbridge_core::RecordId>, SyncError> {
    let name = name.trim();
    if name.is_empty() {
        return Ok(None);
    }
    let mut tx = store.read().await?;
    let found = tx
        .find_by_text(deskbridge_store::Entity::TopLevel, "name", name)
        .await?
        .into_iter()
        .next()
        .map(|r| r.id);
    tx.commit().await?;
    found.map(Some).ok_or_else(|| {
        refused(format!(
            "Top level for new customers: there is no desk top level named {name:?}"
        ))
    })
}

fn licence_import(value: &str) -> Result<LicenceImport, SyncError> {
    LicenceImport::parse(value).ok_or_else(|| {
        refused(format!(
            "Licence import type: {value:?} is not one of subscribed_skus, subscriptions, subscriptions_and_skus"
        ))
    })
}

fn relationship_type(value: &str) -> Result<RelationshipType, SyncError> {
    RelationshipType::parse(value).ok_or_else(|| {
        refused(format!(
            "Relationship type for new tenants: {value:?} is not one of gdap, dap"
        ))
    })
}

fn sync_method(value: &str) -> Option<SyncMethod> {
    match value {
        "all_changes" => Some(SyncMethod::AllChanges),
        "mapped_fields_only" => Some(SyncMethod::MappedFieldsOnly),
        _ => None,
    }
}

/// The GDAP app's credential for a new connection: the method chosen, or inferred from the one
/// credential given.
fn new_gdap_credential(values: &SettingValues) -> Result<(GdapAuth, GdapCredential), SyncError> {
    let secret = values
        .text(SECRET_GDAP_SECRET)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let pem = values.text(SECRET_GDAP_CERTIFICATE).map(str::to_owned);
    let auth = match values.text("gdap_auth") {
        Some(chosen) => gdap_auth(chosen)
            .ok_or_else(|| refused(format!("GDAP app: authentication: {chosen:?} is unknown")))?,
        None if pem.is_some() && secret.is_none() => GdapAuth::Certificate,
        None => GdapAuth::ClientSecret,
    };
    match (auth, secret, pem) {
        (GdapAuth::ClientSecret, Some(secret), None) => Ok((auth, GdapCredential::Secret(secret))),
        (GdapAuth::Certificate, None, Some(pem)) => Ok((auth, GdapCredential::Certificate(pem))),
        (GdapAuth::ClientSecret, None, None) => Err(refused(
            "GDAP app: client secret value: required (or give the GDAP app's certificate)",
        )),
        (GdapAuth::Certificate, None, None) => {
            Err(refused("GDAP app: certificate and private key (PEM): required"))
        }
        _ => Err(refused(
            "GDAP app: give one credential, a client secret or a certificate, matching its authentication",
        )),
    }
}

enum GdapCredential {
    Secret(String),
    Certificate(String),
}

async fn seal_gdap(
    tx: &mut StoreTx,
    secrets: ConnectionSecrets,
    credential: &GdapCredential,
) -> Result<(), SyncError> {
    match credential {
        GdapCredential::Secret(secret) => {
            secrets.put(tx, SECRET_GDAP_SECRET, secret, None).await?;
            secrets.delete(tx, SECRET_GDAP_CERTIFICATE).await?;
        }
        GdapCredential::Certificate(pem) => {
            // Refused now if it cannot sign a client assertion; its own expiry is what the check shows.
            let not_after = certificate_expiry(pem).map_err(|e| refused(format!("GDAP app: {e}")))?;
            secrets
                .put(tx, SECRET_GDAP_CERTIFICATE, pem, Some(not_after))
                .await?;
            secrets.delete(tx, SECRET_GDAP_SECRET).await?;
        }
    }
    Ok(())
}

/// Creates a CSP connection from validated settings ([`crate::CspSource`]'s `create`). A CSP
/// connection imports each customer tenant into its own desk customer, so `new.customer` is not
/// used: customers are matched or created as tenants are found.
pub(crate) async fn create(store: &Store, new: NewConnection) -> Result<Connection, SyncError> {
    let values = &new.settings;
    let required = |key: &str, label: &str| {
        values
            .text(key)
            .map(str::to_owned)
            .ok_or_else(|| refused(format!("{label}: required")))
    };
    let endpoint = |key: &str, default: &str| {
        values
            .text(key)
            .unwrap_or(default)
            .trim_end_matches('/')
            .to_owned()
    };
    let partner_tenant_id = required("partner_tenant_id", "Partner tenant id")?;
    let partner_client_id = required("partner_client_id", "Partner Center app: client id")?;
    let gdap_client_id = required("gdap_client_id", "GDAP app: client id")?;
    let (auth, credential) = new_gdap_credential(values)?;
    let last_sign_in = values.flag("last_sign_in").unwrap_or(false);
    let settings = CspSettings {
        partner_tenant_id,
        partner_client_id,
        gdap_client_id,
        gdap_auth: auth,
        authority_host: endpoint("authority_host", deskbridge_msauth::PUBLIC_CLOUD_AUTHORITY),
        graph_url: endpoint("graph_url", deskbridge_graph::DEFAULT_GRAPH_BASE_URL),
        partner_center_url: endpoint(
            "partner_center_url",
            deskbridge_partner::DEFAULT_PARTNER_CENTER_URL,
        ),
        partner_api_url: endpoint("partner_api_url", deskbridge_partner::DEFAULT_PARTNER_API_URL),
        delta: values.flag("delta").unwrap_or(true),
        sync_method: values
            .text("sync_method")
            .and_then(sync_method)
            .unwrap_or_default(),
        last_sign_in,
        licence_import: values
            .text("licence_import")
            .map(licence_import)
            .transpose()?
            .unwrap_or_default(),
        relationship_type: values
            .text("relationship_type")
            .map(relationship_type)
            .transpose()?
            .unwrap_or_default(),
        top_level_id: match values.text("top_level") {
            Some(name) => top_level(store, name).await?,
            None => None,
        },
        subscription_pricing: values
            .text("subscription_pricing")
            .map(pricing_market)
            .transpose()?
            .flatten(),
        tenants: Vec::new(),
        mapping: new_connection_mappings(last_sign_in),
    };
    let config = settings.to_config(&new.name)?;
    let mut tx = store.begin(WriteContext::manual()).await?;
    let connection = tx
        .create_connection(&deskbridge_store::NewConnection {
            name: new.name.clone(),
            kind: CSP_KIND.into(),
            config,
            enabled_instances: new.enabled_instances.clone(),
        })
        .await?;
    let secrets = ConnectionSecrets(connection.id);
    seal_gdap(&mut tx, secrets, &credential).await?;
    if let Some(secret) = values
        .text(SECRET_PARTNER_SECRET)
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        secrets.put(&mut tx, SECRET_PARTNER_SECRET, secret, None).await?;
    }
    tx.commit().await?;
    Ok(connection)
}

/// Changes a CSP connection: the settings given, and a credential when one is given. New
/// endpoints or a new partner tenant drop every sealed secret (a credential only goes where it was
/// entered for), the Partner Center sign-in included; a new Partner Center secret keeps the
/// sign-in; a GDAP secret replaces a certificate and the other way round.
pub(crate) async fn edit(
    store: &Store,
    connection: &Connection,
    values: SettingValues,
) -> Result<(), SyncError> {
    let mut settings = CspSettings::of(connection)?;
    // New endpoints or another partner tenant: the credentials were entered for the old ones.
    let credential_moved = credential_moved(SETTINGS, &connection.config, &values).is_some();
    let partner_moved = values
        .text("partner_tenant_id")
        .is_some_and(|t| !t.eq_ignore_ascii_case(&settings.partner_tenant_id))
        || values
            .text("partner_client_id")
            .is_some_and(|c| !c.eq_ignore_ascii_case(&settings.partner_client_id));
    if let Some(t) = values.text("partner_tenant_id") {
        settings.partner_tenant_id = t.to_owned();
    }
    if let Some(c) = values.text("partner_client_id") {
        settings.partner_client_id = c.to_owned();
    }
    if let Some(c) = values.text("gdap_client_id") {
        settings.gdap_client_id = c.to_owned();
    }
    for (key, field) in [
        ("authority_host", &mut settings.authority_host),
        ("graph_url", &mut settings.graph_url),
        ("partner_center_url", &mut settings.partner_center_url),
        ("partner_api_url", &mut settings.partner_api_url),
    ] {
        if let Some(v) = values.text(key) {
            *field = v.trim_end_matches('/').to_owned();
        }
    }
    if let Some(d) = values.flag("delta") {
        settings.delta = d;
    }
    if let Some(m) = values.text("sync_method").and_then(sync_method) {
        settings.sync_method = m;
    }
    if let Some(l) = values.flag("last_sign_in") {
        settings.last_sign_in = l;
    }
    if let Some(import) = values.text("licence_import") {
        settings.licence_import = licence_import(import)?;
    }
    if let Some(kind) = values.text("relationship_type") {
        settings.relationship_type = relationship_type(kind)?;
    }
    if let Some(name) = values.text("top_level") {
        settings.top_level_id = top_level(store, name).await?;
    }
    if let Some(market) = values.text("subscription_pricing") {
        settings.subscription_pricing = pricing_market(market)?;
    }
    let secret = values
        .text(SECRET_GDAP_SECRET)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let pem = values.text(SECRET_GDAP_CERTIFICATE);
    let chosen = values.text("gdap_auth").and_then(gdap_auth);
    let auth = match (chosen, secret, pem) {
        (_, Some(_), Some(_)) => {
            return Err(refused(
                "GDAP app: give a client secret or a certificate, not both",
            ));
        }
        (Some(GdapAuth::ClientSecret), None, Some(_)) | (Some(GdapAuth::Certificate), Some(_), None) => {
            return Err(refused(
                "GDAP app: the credential given does not match the authentication chosen",
            ));
        }
        (Some(auth), _, _) => auth,
        (None, Some(_), None) => GdapAuth::ClientSecret,
        (None, None, Some(_)) => GdapAuth::Certificate,
        (None, None, None) => settings.gdap_auth,
    };
    let secrets = ConnectionSecrets(connection.id);
    let mut tx = store.begin(WriteContext::manual()).await?;
    if credential_moved {
        secrets.forget_all(&mut tx).await?;
    } else if partner_moved {
        // Another partner or app: the sign-in was someone else's.
        secrets.delete(&mut tx, SECRET_PARTNER_REFRESH_TOKEN).await?;
    }
    if let Some(secret) = secret {
        seal_gdap(&mut tx, secrets, &GdapCredential::Secret(secret.to_owned())).await?;
    }
    if let Some(pem) = pem {
        seal_gdap(&mut tx, secrets, &GdapCredential::Certificate(pem.to_owned())).await?;
    }
    if auth != settings.gdap_auth && secret.is_none() && pem.is_none() {
        return Err(refused(match auth {
            GdapAuth::ClientSecret => {
                "GDAP app: client secret value: required to sign in with a client secret"
            }
            GdapAuth::Certificate => {
                "GDAP app: certificate and private key (PEM): required to sign in with a certificate"
            }
        }));
    }
    settings.gdap_auth = auth;
    if let Some(partner_secret) = values
        .text(SECRET_PARTNER_SECRET)
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        secrets
            .put(&mut tx, SECRET_PARTNER_SECRET, partner_secret, None)
            .await?;
    }
    // A credential that went with moved endpoints must be given again, in this edit or the next.
    tx.update_connection_config(connection.id, &settings.to_config(&connection.name)?)
        .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use deskbridge_source::settings::{EndpointPolicy, Purpose, validate};
    use serde_json::json;

    use super::*;

    const ID: &str = "11111111-1111-1111-1111-111111111111";

    fn values(v: serde_json::Value) -> SettingValues {
        validate(
            SETTINGS,
            v.as_object().expect("object"),
            Purpose::Create,
            &EndpointPolicy::default(),
        )
        .expect("valid")
    }

    #[test]
    fn the_gdap_credential_decides_the_method_unless_one_is_chosen() {
        let base = json!({ "partner_tenant_id": ID, "partner_client_id": ID, "gdap_client_id": ID });
        let with = |extra: serde_json::Value| {
            let mut v = base.clone();
            if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
                v.extend(extra.clone());
            }
            values(v)
        };
        assert!(matches!(
            new_gdap_credential(&with(json!({ "gdap_client_secret": "s" }))),
            Ok((GdapAuth::ClientSecret, GdapCredential::Secret(_)))
        ));
        assert!(matches!(
            new_gdap_credential(&with(json!({ "gdap_certificate_pem": "pem" }))),
            Ok((GdapAuth::Certificate, GdapCredential::Certificate(_)))
        ));
        assert!(new_gdap_credential(&with(json!({}))).is_err());
        assert!(
            new_gdap_credential(&with(
                json!({ "gdap_client_secret": "s", "gdap_certificate_pem": "p" })
            ))
            .is_err()
        );
    }

    #[test]
    fn the_endpoints_are_endpoints_for_the_policy() {
        let err = validate(
            SETTINGS,
            json!({ "partner_tenant_id": ID, "partner_client_id": ID, "gdap_client_id": ID,
                    "gdap_client_secret": "s", "partner_center_url": "https://evil.example" })
            .as_object()
            .expect("object"),
            Purpose::Create,
            &EndpointPolicy::default(),
        )
        .expect_err("refused");
        assert!(err.to_string().contains("Partner Center URL"), "{err}");
    }
}
