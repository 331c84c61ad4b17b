//! Licence management from the desk (the guide's "allow licences to be managed from within the
//! desk"): assigning or removing a licence on a desk user is sent to Entra as the user's
//! `assignLicense`, with the connection's own credential.
//!
//! Graph's refusals are told apart so each says what to do: no free units (with the counts read
//! back from `subscribedSkus`), no usage location, a missing LicenseAssignment.ReadWrite.All. After
//! a change the SKU's units are read again so the desk's licence shows the new consumed count;
//! reading them needs Organization.Read.All, without which the change stands and the count waits
//! for the next sync.

use std::sync::Arc;

use deskbridge_core::ErrorCode;
use deskbridge_graph::{GraphError, GraphErrorClass, GraphRequest, GraphTenant};
use deskbridge_source::{
    BoxFuture, LicenceAssignment, LicenceUnits, LicenceWriter, SourceContext, SyncError,
};
use deskbridge_store::Connection;
use serde_json::{Map, Value, json};

use crate::client::SharedGraph;
use crate::error::from_graph;
use crate::settings::{AuthMethod, EntraSettings};

/// The permission the guide names for licence management.
pub(crate) const LICENCE_WRITE_PERMISSION: &str = "LicenseAssignment.ReadWrite.All";

/// Graph's message when a SKU has no unit left to assign ("Subscription with SKU … does not have
/// any available licenses.").
const NO_UNITS: &str = "does not have any available licenses";
/// Graph's message for a user without a usage location.
const NO_USAGE_LOCATION: &str = "invalid usage location";

/// The Entra connector's [`LicenceWriter`].
pub(crate) struct EntraLicenceWriter {
    pub(crate) graph: Arc<SharedGraph>,
}

fn refused(code: &str, message: String, remedy: String) -> SyncError {
    SyncError::Upstream {
        error_code: ErrorCode::ChangeRefused,
        code: code.to_owned(),
        message,
        remedy,
    }
}

/// What to grant when Graph refuses the app: the permission, admin consent, and re-authorising.
pub(crate) fn consent_remedy(auth: AuthMethod) -> String {
    format!(
        "Add the Microsoft Graph {} permission {LICENCE_WRITE_PERMISSION} to the app registration, grant admin \
         consent in the tenant{}, then try again.",
        if auth == AuthMethod::Delegated {
            "delegated"
        } else {
            "application"
        },
        if auth == AuthMethod::Delegated {
            " and sign in with Microsoft again on the connection's page"
        } else {
            ""
        }
    )
}

/// The SKU's units as Graph counts them now, if they can be read.
async fn units(tenant: &GraphTenant, sku_id: &str) -> Option<LicenceUnits> {
    let page = tenant
        .get_page::<Map<String, Value>>("/subscribedSkus")
        .await
        .ok()?;
    let sku = page
        .value
        .iter()
        .filter_map(crate::read::subscribed_sku)
        .find(|s| s.sku_id.eq_ignore_ascii_case(sku_id))?;
    Some(LicenceUnits {
        total: sku.enabled_units?,
        consumed: sku.consumed_units?,
    })
}

impl EntraLicenceWriter {
    async fn send(
        &self,
        cx: &SourceContext,
        connection: &Connection,
        change: &LicenceAssignment,
    ) -> Result<Option<LicenceUnits>, SyncError> {
        let settings = EntraSettings::of(connection)?;
        if !settings.tenant_id.eq_ignore_ascii_case(&change.tenant_id) {
            return Err(SyncError::Conflict(format!(
                "connection {:?} reads tenant {}, not {}",
                connection.name, settings.tenant_id, change.tenant_id
            )));
        }
        // Object ids are GUIDs; anything else from the store never goes into a URL.
        if !change
            .user_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(SyncError::Conflict(format!(
                "{:?} is not an Entra object id: run a sync of connection {:?} first",
                change.user_id, connection.name
            )));
        }
        let tenant = self
            .graph
            .tenant(&cx.store, connection, &settings, &cx.clock, &cx.requests)
            .await?;
        let body = if change.assign {
            json!({"addLicenses": [{"skuId": change.sku_id, "disabledPlans": []}], "removeLicenses": []})
        } else {
            json!({"addLicenses": [], "removeLicenses": [change.sku_id]})
        };
        let path = format!("/users/{}/assignLicense", change.user_id);
        match tenant.send(GraphRequest::post(path, body)).await {
            Ok(_) => Ok(units(&tenant, &change.sku_id).await),
            Err(e) => Err(refusal(&tenant, &settings, change, &e).await),
        }
    }
}

/// Graph's refusal, told as what happened and what to do.
async fn refusal(
    tenant: &GraphTenant,
    settings: &EntraSettings,
    change: &LicenceAssignment,
    e: &GraphError,
) -> SyncError {
    let Some(api) = e.api() else {
        return from_graph(e);
    };
    let message = api.message.to_lowercase();
    match api.class {
        GraphErrorClass::PermissionDenied => SyncError::Upstream {
            error_code: ErrorCode::ChangeRefused,
            code: api.code.clone(),
            message: format!(
                "Microsoft refused the licence change: the app is not allowed to assign licences in tenant {} \
                     (it needs {LICENCE_WRITE_PERMISSION}): {}",
                settings.tenant_id, api.message
            ),
            remedy: consent_remedy(settings.auth),
        },
        GraphErrorClass::BadRequest if message.contains(NO_UNITS) => {
            let counts = match units(tenant, &change.sku_id).await {
                Some(u) => format!(" ({} of {} units are assigned)", u.consumed, u.total),
                None => String::new(),
            };
            refused(
                &api.code,
                format!(
                    "the licence has no free units in tenant {}{counts}: {}",
                    settings.tenant_id, api.message
                ),
                "Free a unit by removing the licence from someone who no longer needs it, or buy more \
                     units, then try again."
                    .to_owned(),
            )
        }
        GraphErrorClass::BadRequest if message.contains(NO_USAGE_LOCATION) => refused(
            &api.code,
            format!("the user has no usage location in Entra: {}", api.message),
            "Set the user's usage location (the country where they use the services) in Entra, then try \
                 again."
                .to_owned(),
        ),
        GraphErrorClass::BadRequest | GraphErrorClass::NotFound => refused(
            &api.code,
            format!("Microsoft refused the licence change: {}", api.message),
            "Run a sync of the connection so the desk has the user and the licence as Entra has them, then \
                 try again."
                .to_owned(),
        ),
        _ => from_graph(e),
    }
}

impl LicenceWriter for EntraLicenceWriter {
    fn manages_licences(&self, connection: &Connection) -> Result<bool, SyncError> {
        Ok(EntraSettings::of(connection)?.manage_licences)
    }

    fn assign<'a>(
        &'a self,
        cx: &'a SourceContext,
        connection: &'a Connection,
        change: &'a LicenceAssignment,
    ) -> BoxFuture<'a, Result<Option<LicenceUnits>, SyncError>> {
        Box::pin(self.send(cx, connection, change))
    }
}
