//! deskbridge-connector-csp: Microsoft CSP (Partner Center with GDAP) as a source of the pipeline.
//!
//! An MSP connects its Partner Center once and every customer tenant it may read becomes a
//! partition of one connection. What it owns:
//! - CSP connections' settings ([`CspSettings`], described as data for forms, the API and export):
//!   the Partner Center app (single-tenant, delegated `user_impersonation`; a partner admin signs in
//!   once and the refresh token is sealed and rotated), the multi-tenant GDAP app (application
//!   permissions, a client secret or a certificate), the endpoints (authority host, Graph,
//!   Partner Center), the sync options Entra has (delta, sync method, last sign-in) and the
//!   tenant table (customer tenant → desk customer);
//! - the Partner Center sign-in ([`SignIn`](deskbridge_source::SignIn)): authorization code with
//!   PKCE, state `"{connection id}.…"`;
//! - tenant discovery ([`refresh_tenants`]): Partner Center's customers with an active GDAP
//!   relationship (Graph `delegatedAdminRelationships` in the partner tenant), each matched to a
//!   desk customer by tenant id, then by name, else created (under the connection's top level)
//!   with its main site and a generated catch-all site mapping;
//! - reading each customer tenant's users through Graph with the GDAP app's client credentials
//!   against that tenant, with the Entra connector's full and delta reads; a tenant the app cannot
//!   reach (no consent: AADSTS7000229 / AADSTS700016 / `Authorization_IdentityNotFound`; no GDAP
//!   access) is reported with its remedy and skipped, its partition partial, while the others import;
//! - the configuration check's CSP points (both apps' tokens, Partner Center, GDAP, per-tenant
//!   consent);
//! - licences and subscriptions by the licence import type, with marketplace prices
//!   (`subscriptions`), the `licences` entity that refreshes them alone;
//! - "adjust quantity": a subscription's seats written back to Partner Center (`write_back`);
//! - consumption billing: customers' Azure usage as desk usage lines (`consumption`);
//! - the Tenants tab: desk customer or "do not import" per tenant, licence import type and
//!   relationship type per tenant (`tenant_table`), and the per-tenant admin-consent flow
//!   (`consent`);
//! - the relationship type (the older guide's GDAP or DAP): a GDAP tenant is read with an active
//!   GDAP relationship and the GDAP app's consent in the tenant; a DAP tenant with the partner's
//!   delegated admin privileges (a contract in the partner tenant, Graph `/contracts`), which
//!   pre-consent the GDAP app as an AdminAgents member; new tenants take the connection's type;
//! - discovery before each run takes its mappings ([`deskbridge_source::SourceConnection::prepare`]), so a tenant
//!   first found by a sync is imported by that sync;
//! - registering the instance's Partner Center webhook receiver ([`register_webhook`] and the
//!   rest of the `webhooks` module; the receiver itself is the web crate's);
//! - [`CspSource`], which the binary registers.
//!
//! Invariants: no credential is sent anywhere but the connection's endpoints; a tenant that was
//! not read completely is never reported complete (nobody is deactivated for it); Microsoft's
//! codes are kept and carry a remedy.

mod auth;
mod check;
#[cfg(test)]
mod common_errors;
mod consent;
mod consumption;
mod inbound;
mod log;
mod manage;
mod settings;
mod source;
mod subscriptions;
mod tenant_table;
mod tenants;
mod webhooks;
mod write_back;

pub use auth::PARTNER_CENTER_USER_IMPERSONATION;
/// What Partner Center holds of a webhook registration, as [`register_webhook`] and
/// [`WebhookStatus`] give it: the connector's to hand out, so nothing past it speaks the client.
pub use deskbridge_partner::WebhookRegistration;
pub use inbound::{Delivery, PartnerWebhooks, Refusal, RefusalKind, licences_tenant};
pub use settings::{
    CspSettings, CspTenant, GdapAuth, LicenceImport, SECRET_GDAP_CERTIFICATE, SECRET_GDAP_SECRET,
    SECRET_PARTNER_REFRESH_TOKEN, SECRET_PARTNER_SECRET,
};
pub use source::CspSource;
pub use tenants::{TenantDiscovery, refresh_tenants};
pub use webhooks::{
    SUBSCRIPTION_EVENTS, WebhookStatus, register_webhook, send_test_webhook, unregister_webhook,
    webhook_status,
};

/// The connection kind of CSP connections in the store.
pub const CSP_KIND: &str = "csp";

/// `8-4-4-4-12` hexadecimal digits: a tenant id as Partner Center gives it.
pub(crate) fn settings_guid(text: &str) -> bool {
    deskbridge_source::settings::is_guid(text)
}
