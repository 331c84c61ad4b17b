//! deskbridge-sync: the pipeline every import follows, built first for Microsoft Entra ID.
//!
//! source pages → normalise → map (pure, `deskbridge-mapping`) → plan → apply → logs.
//!
//! What it owns:
//! - Entra connections ([`EntraSettings`]): tenant, app, endpoints (authority host and Graph URL,
//!   the public cloud by default), the mapping configuration, with credentials sealed in the store;
//! - reading a tenant through `deskbridge-graph` ([`read`]): a full read (users with managers and
//!   licences, groups and their members, subscribed SKUs) or a delta round that uses Graph's
//!   change tracking as a trigger and fetches the current state of each changed user;
//! - the desk side of planning: the snapshot and catalog loaded from the store;
//! - applying a plan to the store ([`apply`]) in transactions of bounded size, each with its journal
//!   rows, inbound log and counts, the delta cursors in the last one, so a crash at any point
//!   leaves a state that the next run converges from;
//! - delegated authorisation ([`begin_delegated_authorization`]): a sign-in whose refresh token
//!   is sealed and rotated in the store;
//! - runs ([`sync`]): plan only (the preview, nothing written), or plan and apply;
//! - many runs at once ([`sync_many`]): a bounded pool sharing one Graph client per app.
//!
//! Invariants: a preview and a sync run the same code up to apply; applying the same input twice
//! changes nothing; a tenant that could not be read completely never has anyone deactivated for
//! being absent; errors carry the Microsoft code and a remedy and are recorded against the run.

mod apply;
mod connection;
mod delegated;
mod delta;
mod desk;
mod error;
mod many;
mod mappings;
pub mod read;
mod run;

pub use apply::{ApplyReport, apply_plan};
pub use connection::{
    AuthMethod, EntraSettings, NewCredential, NewEntraConnection, SECRET_CERTIFICATE, SECRET_CLIENT_SECRET,
    SyncMethod, add_entra_connection, load_entra_connection,
};
pub use delegated::{
    PendingAuthorization, SECRET_REFRESH_TOKEN, begin_delegated_authorization,
    complete_delegated_authorization, complete_delegated_redirect,
};
pub use delta::{DeltaReset, DeltaStatus, clear_deltas, delta_status, reset_deltas, set_delta_settings};
pub use desk::{SnapshotScope, load_catalog, load_snapshot};
pub use error::SyncError;
pub use many::{ManyResult, sync_many};
pub use mappings::save_mappings;
pub use run::{
    SyncObserver, SyncOptions, SyncOutcome, Timings, delta_tracking, http_client, scope_for as graph_scope,
    sync, token_provider,
};

/// The connection kind of Entra connections in the store.
pub const ENTRA_KIND: &str = "entra";
