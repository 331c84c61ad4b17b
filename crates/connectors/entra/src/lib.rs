//! deskbridge-connector-entra: Microsoft Entra ID as a source of the pipeline.
//!
//! What it owns:
//! - Entra connections' settings ([`EntraSettings`]): tenant, app, endpoints (authority host and
//!   Graph URL, the public cloud by default), delta options and the mapping configuration, with
//!   credentials sealed beside them ([`add_entra_connection`]);
//! - tokens: client credentials with a secret or a certificate, or a delegated sign-in whose
//!   refresh token is sealed and rotated ([`begin_delegated_authorization`]);
//! - reading a tenant through `deskbridge-graph` ([`read`]): a full read (users with managers and
//!   licences, groups and their members, subscribed SKUs) or a delta round that uses Graph's
//!   change tracking as a trigger and fetches the current state of each changed user; the delta
//!   settings and resets ([`set_delta_settings`], [`reset_deltas`]);
//! - the configuration check's Entra points;
//! - licence management from the desk ([`licences`]): a licence assigned to or removed from a
//!   desk user is sent to Entra as `assignLicense`, when the connection allows it;
//! - [`EntraSource`], which the binary registers: the pipeline, agent and web reach all of the
//!   above through `deskbridge-source`'s traits.
//!
//! Invariants: Microsoft's errors keep Microsoft's code and carry a remedy; a tenant that could
//! not be read completely is reported partial, never complete; the Graph client of an app
//! registration is shared by all its connections, so Microsoft's per-app limits hold across them.

mod check;
mod client;
mod delegated;
mod delta;
mod error;
mod licences;
mod manage;
pub mod notifications;
pub mod read;
mod settings;
mod source;

pub use check::{EXPIRY_WARNING_DAYS, granted_permissions};
pub use client::{scope_for, token_provider};
pub use delegated::{
    PendingAuthorization, begin_delegated_authorization, complete_delegated_authorization,
    complete_delegated_redirect,
};
pub use delta::{
    DeltaReset, DeltaStatus, clear_deltas, delta_status, delta_tracking, reset_deltas, set_delta_settings,
};
pub use error::{from_auth, from_graph};
pub use settings::{
    AUTHORITY_HOST, AuthMethod, EntraSettings, GRAPH_URL, NewCredential, NewEntraConnection,
    SECRET_CERTIFICATE, SECRET_CLIENT_SECRET, SECRET_REFRESH_TOKEN, SYNC_METHOD, SYNC_METHODS, SyncMethod,
    add_entra_connection, certificate_expiry, load_entra_connection,
};
pub use source::{EntraSource, emit_delta, failed_after_resync, resync_note};

/// The connection kind of Entra connections in the store.
pub const ENTRA_KIND: &str = "entra";
