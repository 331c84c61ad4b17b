//! deskbridge-store: the service desk's directory and deskbridge's own state, on SQLite or
//! PostgreSQL through one code path.
//!
//! What it owns:
//! - the desk's data model (customers, sites, users, agents, roles, teams, CABs, custom fields and
//!   tables, licences, subscriptions, assets, tickets), described once in [`schema`] and written
//!   through generic, typed record operations ([`StoreTx::insert`], [`StoreTx::update`],
//!   [`StoreTx::upsert_by_source`]);
//! - the change journal: every write made through a [`StoreTx`] records, in the same transaction,
//!   one row per changed field with its value before and after, the run and the connection;
//! - sync state: connections, runs, cursors (committed with the page they cover), inbound and
//!   outbound request logs (secrets redacted) and integration errors;
//! - secrets at rest, sealed with `deskbridge-secrets` and bound to their row and field.
//!
//! Invariants: a [`StoreTx`] is all or nothing (data, journal and cursor together); records
//! imported from outside are found again by their source identity (connection, external id);
//! both dialects run the same SQL text except where [`Dialect`] says otherwise.

mod accounts;
mod custom_tables;
mod db;
mod desk_settings;
mod error;
mod graph_subscriptions;
mod jobs;
mod licence_changes;
mod liveness;
mod migrate;
mod names;
mod overview;
mod records;
pub mod schema;
mod secrets;
mod sso;
mod subscription_changes;
mod sync_state;
mod time;
mod webhooks;

pub use accounts::{
    Access, Account, ApiToken, DirectoryFilter, Grant, LogFilter, LogKind, NewAccount, Role, Session,
    SignInFailures, SignInPolicy, SignInSubject,
};
pub use custom_tables::CustomRow;
pub use db::{Dialect, Store, StoreOptions, StoreTx, WriteContext};
pub use desk_settings::FollowerSettings;
pub use error::StoreError;
pub use graph_subscriptions::{GraphSubscriptionRow, SubscriptionAction};
pub use jobs::{
    ClaimedJob, ConnectionHealth, FireOutcome, Job, JobId, JobStatus, NewJob, NewSchedule, Schedule,
    ScheduleId,
};
pub use licence_changes::{LicenceAction, LicenceChange, NewLicenceChange};
pub use liveness::WorkerPresence;
pub use migrate::AppliedMigration;
pub use names::RecordNames;
pub use overview::{RunFilter, RunListing};
pub use records::{
    CustomFieldDefinition, FieldChange, Fields, Record, RecordScope, SourceKey, UpsertOutcome,
};
pub use schema::Entity;
pub use secrets::{RotationReport, SecretRef};
pub use sso::{AllowedTenant, DeskPerson, PendingSsoSignIn, SsoSettings, sso_secret};
pub use subscription_changes::{ChangeStatus, NewSubscriptionChange, SubscriptionChange};
pub use sync_state::{
    Connection, Cursor, CursorKey, InboundEntry, IntegrationError, JournalEntry, NewConnection,
    OutboundEntry, Run, RunCounts, RunStatus,
};
pub use time::{format_timestamp, parse_timestamp};

/// Results of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
