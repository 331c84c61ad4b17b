//! The per-tenant admin consent of the GDAP app (the guide's "Expected Enterprise App
//! Permissions Acceptance Screen"): an administrator of the customer tenant opens the identity
//! platform's admin-consent page for the GDAP app, accepts, and is sent back with
//! `admin_consent=True&tenant=…&state=…` (or `error=…`); the grant is recorded on the tenant
//! (`consented_at` in the connection's settings), so the Tenants tab can say when it was given.
//!
//! Why the state and tenant are checked here and not only by Microsoft: the redirect arrives at a
//! public callback, so a forged or replayed one, or one for a tenant other than the one asked
//! for, must not mark a tenant consented.

use deskbridge_core::{ErrorCode, SharedClock};
use deskbridge_msauth::{Authority, random_state};
use deskbridge_source::consent::{ConsentRedirect, PendingConsent, parse_consent_redirect, state_prefix};
use deskbridge_source::{SyncError, TenantEntry};
use deskbridge_store::{Connection, Store, WriteContext};

use crate::settings::CspSettings;

fn no_such_tenant(connection: &Connection, tenant_id: &str) -> SyncError {
    SyncError::InvalidSettings(format!(
        "connection {:?} has no customer tenant {tenant_id}: a sync lists the partner's customers (deskbridge \
         sync --connection {:?} --plan finds new ones)",
        connection.name, connection.name
    ))
}

/// The GDAP app's admin-consent URL for `tenant_id`, with its pending state sealed.
pub(crate) async fn begin(
    store: &Store,
    connection: &Connection,
    tenant_id: &str,
    redirect_uri: &str,
    clock: &SharedClock,
) -> Result<String, SyncError> {
    let settings = CspSettings::of(connection)?;
    // Only a tenant the connection found: the state names it, and the grant is recorded on it.
    let tenant = settings
        .tenant(tenant_id)
        .ok_or_else(|| no_such_tenant(connection, tenant_id))?;
    let authority = Authority::new(&settings.authority_host)
        .map_err(|e| SyncError::BadSettings(connection.name.clone(), e.to_string()))?;
    let mut url = authority
        .admin_consent_endpoint(&tenant.tenant_id)
        .map_err(|e| SyncError::BadSettings(connection.name.clone(), e.to_string()))?;
    let pending = PendingConsent {
        state: random_state(&state_prefix(connection.id, &tenant.tenant_id)),
        tenant_id: tenant.tenant_id.clone(),
        redirect_uri: redirect_uri.to_owned(),
    };
    url.query_pairs_mut()
        .append_pair("client_id", &settings.gdap_client_id)
        .append_pair(
            "scope",
            &deskbridge_connector_entra::scope_for(&settings.graph_url),
        )
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", &pending.state);
    pending.seal(store, connection.id, clock).await?;
    Ok(url.into())
}

/// Records the grant the redirect reports, or says why there is none.
pub(crate) async fn complete(
    store: &Store,
    connection: &Connection,
    redirect: &str,
    clock: &SharedClock,
) -> Result<TenantEntry, SyncError> {
    let (state, granted_in) = match parse_consent_redirect(redirect)? {
        ConsentRedirect::Granted { state, tenant } => (state, Ok(tenant)),
        ConsentRedirect::Refused { state, refusal } => (state, Err(refusal)),
    };
    let pending = PendingConsent::take(store, connection.id, &state, clock).await?;
    let mut tx = store.begin(WriteContext::manual()).await?;
    // A refusal ends this consent too: a new attempt starts with a new state.
    PendingConsent::forget(&mut tx, connection.id, &pending.tenant_id).await?;
    let tenant = match granted_in {
        Ok(tenant) => tenant,
        Err(refusal) => {
            tx.commit().await?;
            let remedy = match refusal.error.as_str() {
                "access_denied" => format!(
                    "An administrator of tenant {} (a Global Administrator or Privileged Role Administrator of the \
                     customer, signed in to that tenant, not a guest) must accept the permissions: start the consent \
                     again (deskbridge tenants consent --connection {:?} --tenant {}, or the Tenants tab).",
                    pending.tenant_id, connection.name, pending.tenant_id
                ),
                _ => format!(
                    "Check that the GDAP app is multi-tenant and has this redirect URI registered ({}), then start the \
                     consent again.",
                    pending.redirect_uri
                ),
            };
            return Err(refusal.into_error("the admin consent", remedy));
        }
    };
    if !tenant.eq_ignore_ascii_case(&pending.tenant_id) {
        tx.commit().await?;
        return Err(SyncError::Upstream {
            error_code: ErrorCode::InvalidSignIn,
            code: ErrorCode::InvalidSignIn.as_str().to_owned(),
            message: format!(
                "the admin consent came back for tenant {tenant}, not for {} which it was started for",
                pending.tenant_id
            ),
            remedy: format!(
                "Sign in to the consent page as an administrator of tenant {} and start the consent again.",
                pending.tenant_id
            ),
        });
    }
    // The settings as stored now: a sync may have changed them since the consent started.
    let current = tx
        .connection(connection.id)
        .await?
        .ok_or_else(|| SyncError::UnknownConnection(connection.name.clone()))?;
    let mut settings = CspSettings::of(&current)?;
    let Some(index) = settings
        .tenants
        .iter()
        .position(|t| t.tenant_id.eq_ignore_ascii_case(&pending.tenant_id))
    else {
        tx.commit().await?;
        return Err(no_such_tenant(connection, &pending.tenant_id));
    };
    settings.tenants[index].consented_at = Some(clock.now());
    tx.update_connection_config(connection.id, &settings.to_config(&connection.name)?)
        .await?;
    let done = crate::tenant_table::entry(&mut tx, &settings.tenants[index]).await?;
    tx.commit().await?;
    Ok(done)
}
