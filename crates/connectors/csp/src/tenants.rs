//! The connection's customer tenants: Partner Center's customers (app+user, the partner admin's
//! sign-in) with an active GDAP relationship (Graph `delegatedAdminRelationships` in the partner
//! tenant, read with the GDAP app), each assigned to a desk customer — the one that already has
//! the tenant id, else the one with the customer's name, else a new one with its main site — with
//! the generated catch-all site mapping (the guide's "generate mappings" for that tenant).
//!
//! Also here: what a failure to reach one customer tenant means, in the guide's words (consent,
//! GDAP), so that tenant is reported and skipped and the others are read.

use std::collections::BTreeSet;
use std::sync::Arc;

use deskbridge_connector_entra::{from_auth, from_graph};
use deskbridge_core::{ConnectionId, ErrorCode, HasErrorCode as _, RecordId};
use deskbridge_graph::{Contract, DelegatedAdminRelationship, GraphError, GraphErrorClass, GraphTenant};
use deskbridge_msauth::TokenProvider;
use deskbridge_partner::{PartnerError, PartnerErrorClass};
use deskbridge_source::{SourceContext, SyncError};
use deskbridge_store::{Connection, Entity, StoreTx, WriteContext};

use crate::auth::Tokens;
use crate::log::Shared;
use crate::settings::{CspSettings, CspTenant, Relationship, RelationshipType};

/// What a discovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantDiscovery {
    /// Customers Partner Center lists that can be read: an active GDAP relationship, or (for a
    /// tenant read through DAP) DAP: (tenant id, name).
    pub readable: Vec<(String, String)>,
    /// Customers Partner Center lists that cannot be read (no active GDAP relationship, or no DAP
    /// for a tenant read through DAP): (tenant id, name).
    pub without_gdap: Vec<(String, String)>,
    /// Tenants this discovery assigned to a desk customer (new to the connection).
    pub assigned: Vec<String>,
    /// The customers with DAP (a contract in the partner tenant), lower-case; `None`: the
    /// contracts could not be listed (the reason in [`TenantDiscovery::dap_unknown`]).
    pub dap: Option<BTreeSet<String>>,
    /// Why the partner's contracts (DAP) could not be listed, when they could not.
    pub dap_unknown: Option<String>,
    /// The customers with an active GDAP relationship, lower-case.
    pub gdap_active: BTreeSet<String>,
}

/// Whether `tenant_id` is among the DAP customers; `None` when they are not known.
fn dap_with(dap: Option<&BTreeSet<String>>, tenant_id: &str) -> Option<bool> {
    dap.map(|dap| dap.contains(&tenant_id.to_ascii_lowercase()))
}

impl TenantDiscovery {
    /// Whether the partner has DAP with `tenant_id`: `None` when that is not known.
    pub fn has_dap(&self, tenant_id: &str) -> Option<bool> {
        dap_with(self.dap.as_ref(), tenant_id)
    }
}

/// Lists the customer tenants of the connection `name` and assigns the new ones to desk
/// customers (see the module's documentation). Needs the Partner Center sign-in.
pub async fn refresh_tenants(cx: &SourceContext, name: &str) -> Result<TenantDiscovery, SyncError> {
    refresh_with(cx, &Shared::new(Default::default(), Default::default()), name).await
}

/// [`refresh_tenants`] on the process's shared clients.
pub(crate) async fn refresh_with(
    cx: &SourceContext,
    shared: &Shared,
    name: &str,
) -> Result<TenantDiscovery, SyncError> {
    let mut tx = cx.store.read().await?;
    let connection = tx
        .connection_by_name(name)
        .await?
        .ok_or_else(|| SyncError::UnknownConnection(name.into()))?;
    tx.commit().await?;
    let settings = CspSettings::of(&connection)?;
    let http = deskbridge_source::http_client(&connection.name)?;
    let tokens = crate::auth::tokens(&cx.store, &connection, &settings, &http, &cx.clock).await?;
    Ok(discover(cx, shared, &connection, &settings, &tokens, &http)
        .await?
        .0)
}

/// Partner Center's failures with Partner Center's code and the guide's remedy.
pub(crate) fn from_partner(e: &PartnerError) -> SyncError {
    if let PartnerError::Auth { source, .. } = e {
        return from_auth(source);
    }
    let (error_code, remedy) = match e.class() {
        Some(PartnerErrorClass::Forbidden | PartnerErrorClass::Unauthorized) => (
            ErrorCode::UpstreamPermission,
            "Sign in to Partner Center with the account the connection was authorised with and open the \
             customer list: if it does not load, give that user access to customers (admin agent), then \
             authorise the connection again (deskbridge connection authorize). Check the Partner Center app has \
             the Partner Center API's user_impersonation permission.",
        ),
        Some(PartnerErrorClass::Throttled) => (
            ErrorCode::UpstreamThrottled,
            "Partner Center is limiting requests: the next run continues.",
        ),
        Some(PartnerErrorClass::Server) | None
            if matches!(e, PartnerError::Transport { .. } | PartnerError::Api(_)) =>
        {
            (
                ErrorCode::UpstreamUnavailable,
                "Partner Center could not be reached or failed: the next run tries again.",
            )
        }
        _ if matches!(e, PartnerError::Malformed { .. }) => (
            ErrorCode::UpstreamMalformedResponse,
            "Partner Center answered with something it does not document: report it if it repeats.",
        ),
        _ => (ErrorCode::UpstreamUnavailable, ""),
    };
    SyncError::Upstream {
        error_code,
        code: e
            .api()
            .and_then(|a| a.code)
            .map_or_else(|| error_code.as_str().to_owned(), |c| format!("PartnerCenter{c}")),
        message: format!("Partner Center: {e}"),
        remedy: remedy.to_owned(),
    }
}

/// The tenant ids (lower-case) with an active GDAP relationship.
async fn active_gdap(partner: &GraphTenant) -> Result<BTreeSet<String>, SyncError> {
    let mut pager = partner
        .pager::<DelegatedAdminRelationship>("/tenantRelationships/delegatedAdminRelationships?$top=300");
    let mut active = BTreeSet::new();
    loop {
        let page = match pager.next_page().await {
            Ok(Some(page)) => page,
            Ok(None) => break,
            Err(e) => {
                let mut error = from_graph(&e);
                if let SyncError::Upstream { message, remedy, .. } = &mut error {
                    *message = format!("the GDAP relationships could not be listed: {message}");
                    if matches!(e, GraphError::Api(ref api) if api.class == GraphErrorClass::PermissionDenied)
                    {
                        *remedy = "Give the GDAP app the Microsoft Graph application permission \
                                   DelegatedAdminRelationship.Read.All and grant admin consent in the partner tenant."
                            .into();
                    }
                }
                return Err(error);
            }
        };
        for relationship in page.value {
            if relationship.status.as_deref() == Some("active")
                && let Some(customer) = relationship.customer
            {
                active.insert(customer.tenant_id.to_ascii_lowercase());
            }
        }
    }
    Ok(active)
}

/// The customer tenants (lower-case) the partner has DAP with: a contract in the partner tenant
/// (`GET /contracts`, Directory.Read.All).
async fn dap_contracts(partner: &GraphTenant) -> Result<BTreeSet<String>, SyncError> {
    let mut pager = partner.pager::<Contract>("/contracts");
    let mut dap = BTreeSet::new();
    loop {
        match pager.next_page().await {
            Ok(Some(page)) => dap.extend(
                page.value
                    .into_iter()
                    .filter_map(|c| c.customer_id)
                    .map(|t| t.to_ascii_lowercase()),
            ),
            Ok(None) => return Ok(dap),
            Err(e) => return Err(from_graph(&e)),
        }
    }
}

/// Lists the customers and which of them can be read (an active GDAP relationship, or DAP for a
/// tenant read through DAP); writes nothing.
pub(crate) async fn list(
    cx: &SourceContext,
    shared: &Shared,
    connection: &Connection,
    settings: &CspSettings,
    tokens: &Tokens,
    http: &reqwest::Client,
) -> Result<TenantDiscovery, SyncError> {
    let partner_tokens: Arc<dyn TokenProvider> = match &tokens.partner {
        Ok(p) => p.clone(),
        Err(_) => return Err(crate::auth::not_signed_in(connection)),
    };
    let partner = shared.partner(
        connection,
        settings,
        http,
        &cx.clock,
        partner_tokens,
        &cx.requests,
    )?;
    let customers = partner
        .customers()
        .collect_all()
        .await
        .map_err(|e| from_partner(&e))?;
    let gdap_partner = shared.tenant(
        connection,
        settings,
        http,
        &cx.clock,
        &settings.partner_tenant_id,
        tokens.gdap.clone(),
        &cx.requests,
    )?;
    let active = active_gdap(&gdap_partner).await?;
    let mut found = TenantDiscovery::default();
    match dap_contracts(&gdap_partner).await {
        Ok(dap) => found.dap = Some(dap),
        Err(e) => found.dap_unknown = Some(e.to_string()),
    }
    let mut seen = BTreeSet::new();
    for customer in &customers {
        let tenant_id = customer.tenant_id().to_ascii_lowercase();
        if !crate::settings_guid(&tenant_id) || !seen.insert(tenant_id.clone()) {
            continue;
        }
        let profile = &customer.company_profile;
        let name = profile
            .company_name
            .clone()
            .or_else(|| profile.domain.clone())
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| tenant_id.clone());
        // A tenant read through DAP needs the partner's DAP with it, not GDAP (unknown DAP: the
        // read finds out, and says what to do if it cannot).
        let readable = match settings.relationship_type_of(&tenant_id) {
            RelationshipType::Gdap => active.contains(&tenant_id),
            RelationshipType::Dap => found.has_dap(&tenant_id) != Some(false),
        };
        if readable {
            found.readable.push((tenant_id, name));
        } else {
            found.without_gdap.push((tenant_id, name));
        }
    }
    found.gdap_active = active;
    Ok(found)
}

/// Lists the tenants and assigns the new ones; returns what was found and the settings as now
/// stored.
pub(crate) async fn discover(
    cx: &SourceContext,
    shared: &Shared,
    connection: &Connection,
    settings: &CspSettings,
    tokens: &Tokens,
    http: &reqwest::Client,
) -> Result<(TenantDiscovery, CspSettings), SyncError> {
    let mut found = list(cx, shared, connection, settings, tokens, http).await?;
    let new: Vec<&(String, String)> = found
        .readable
        .iter()
        .filter(|(t, _)| settings.tenant(t).is_none())
        .collect();
    let listed = |tenant: &str| {
        found
            .readable
            .iter()
            .chain(&found.without_gdap)
            .any(|(t, _)| t.eq_ignore_ascii_case(tenant))
    };
    let relationship_of = |tenant: &str| {
        let gdap = found.gdap_active.contains(&tenant.to_ascii_lowercase());
        // The field, not `found.has_dap`: the closure must not hold `found` while tenants are assigned.
        let dap = dap_with(found.dap.as_ref(), tenant) == Some(true);
        match (listed(tenant), gdap, dap) {
            (false, _, _) => Relationship::NotListed,
            (true, true, false) => Relationship::ResellerAndGdap,
            (true, true, true) => Relationship::ResellerGdapAndDap,
            (true, false, true) => Relationship::ResellerDapOnly,
            (true, false, false) => Relationship::ResellerWithoutGdap,
        }
    };
    // The settings are written when something changed: new tenants, or a known tenant's
    // relationship (so the Tenants tab shows it without asking Partner Center again).
    let moved = settings
        .tenants
        .iter()
        .any(|t| t.relationship != Some(relationship_of(&t.tenant_id)));
    if new.is_empty() && !moved {
        return Ok((found, settings.clone()));
    }
    let mut tx = cx.store.begin(WriteContext::manual()).await?;
    // The stored settings as they are now (another operation may have added tenants).
    let current = tx
        .connection(connection.id)
        .await?
        .ok_or_else(|| SyncError::UnknownConnection(connection.name.clone()))?;
    let mut updated = CspSettings::of(&current)?;
    for tenant in &mut updated.tenants {
        tenant.relationship = Some(relationship_of(&tenant.tenant_id));
    }
    for (tenant_id, name) in new {
        if updated.tenant(tenant_id).is_some() {
            continue;
        }
        let (customer, customer_name, main_site) =
            desk_customer(&mut tx, connection.id, tenant_id, name, updated.top_level_id).await?;
        updated
            .mapping
            .add_tenant_mapping(tenant_id, &customer_name, main_site);
        updated.tenants.push(CspTenant {
            tenant_id: tenant_id.clone(),
            name: name.clone(),
            customer_id: Some(customer),
            licence_import: None,
            // A new tenant keeps the type it was found with, whatever the connection's becomes.
            relationship_type: Some(updated.relationship_type),
            consented_at: None,
            relationship: Some(relationship_of(tenant_id)),
        });
        found.assigned.push(tenant_id.clone());
    }
    tx.update_connection_config(connection.id, &updated.to_config(&connection.name)?)
        .await?;
    tx.commit().await?;
    Ok((found, updated))
}

/// The desk customer of a tenant: the one that has its tenant id, else the one with its name,
/// else a new one (with its main site), recorded as the connection's so that removing the
/// connection removes it when it holds nothing else; returns it, its name and its main site.
async fn desk_customer(
    tx: &mut StoreTx,
    connection: ConnectionId,
    tenant_id: &str,
    name: &str,
    top_level: Option<RecordId>,
) -> Result<(RecordId, String, RecordId), SyncError> {
    if let Some(owner) = tx.customer_of_tenant(tenant_id).await? {
        let owner_name = tx
            .get(Entity::Customer, owner)
            .await?
            .and_then(|c| c.text("name").map(str::to_owned))
            .unwrap_or_else(|| name.to_owned());
        let main_site = tx.main_site(owner).await?.ok_or_else(|| {
            SyncError::InvalidSettings(format!("the desk customer {owner_name:?} has no main site"))
        })?;
        return Ok((owner, owner_name, main_site));
    }
    let found = deskbridge_source::desk::customer_for_tenant(tx, name, tenant_id).await?;
    let (customer, main_site) = (found.customer, found.main_site);
    if found.created {
        tx.record_created_customer(connection, customer).await?;
    }
    // A customer created for a new tenant goes under the connection's top level; one matched by
    // name keeps its own.
    if found.created
        && let Some(top_level) = top_level
    {
        tx.update(
            Entity::Customer,
            customer,
            &[("top_level_id".to_owned(), serde_json::json!(top_level.0))]
                .into_iter()
                .collect(),
        )
        .await?;
    }
    Ok((customer, name.to_owned(), main_site))
}

/// Why a customer tenant cannot be read, when the failure is about access to that tenant (no
/// consent, no GDAP) rather than the read itself: (Microsoft's code, what happened, the remedy).
pub(crate) fn access_failure(
    tenant: &str,
    name: &str,
    error: &SyncError,
    kind: RelationshipType,
) -> Option<(String, String, String)> {
    let SyncError::Upstream { code, message, .. } = error else {
        return None;
    };
    let consent = "Grant admin consent for the GDAP app in this customer tenant (sign in as a native admin of \
                   the tenant and accept the app's permissions), and check the GDAP relationship with it is \
                   active, with the needed roles (e.g. Directory Readers) assigned to the AdminAgents group the \
                   GDAP app is a member of.";
    let gdap = "Check the GDAP relationship with this customer is active and that its access assignment gives \
                the AdminAgents group (with the GDAP app as a member) a role such as Directory Readers; check the \
                GDAP app has Graph application (not delegated) permissions.";
    let dap = "This tenant is read through DAP: check the customer still has delegated admin privileges (DAP) \
               with the partner and the GDAP app's service principal is a member of the partner's AdminAgents \
               group. Microsoft has retired DAP: better, set the tenant's relationship type to GDAP (Tenants \
               tab, or deskbridge tenants set --relationship-type gdap), establish a GDAP relationship and \
               grant admin consent.";
    let (what, remedy) = match code.as_str() {
        "AADSTS7000229" | "AADSTS700016" | "Authorization_IdentityNotFound"
            if kind == RelationshipType::Dap =>
        {
            ("the GDAP app is not pre-consented in the tenant through DAP", dap)
        }
        _ if kind == RelationshipType::Dap
            && (code == "Authorization_RequestDenied"
                || error.error_code() == ErrorCode::UpstreamPermission) =>
        {
            ("access to the tenant through DAP was refused", dap)
        }
        "AADSTS7000229" | "AADSTS700016" | "Authorization_IdentityNotFound" => (
            "the GDAP app has no admin consent (no service principal) in the tenant",
            consent,
        ),
        "Authorization_RequestDenied" => ("the GDAP app has insufficient privileges in the tenant", gdap),
        _ if error.error_code() == ErrorCode::UpstreamPermission => {
            ("access to the tenant was refused", gdap)
        }
        _ => return None,
    };
    Some((
        code.clone(),
        format!("customer tenant {name} ({tenant}) was not read: {what}: {message}"),
        remedy.to_owned(),
    ))
}
