//! deskbridge-sync: the pipeline every import follows, whatever the source.
//!
//! source (through `deskbridge-source`) → map (pure, `deskbridge-mapping`) → plan → apply → logs.
//!
//! What it owns:
//! - runs ([`sync`]) of each entity a source reads (the directory's people, managed devices
//!   as assets, rows of source tables into desk custom tables, the source's organisations as
//!   desk customers, [`SyncOptions::entity`]): plan only (the preview, nothing written), or plan and apply; the run's
//!   lifecycle (started, held for approval, approved, failed, partial, succeeded), its notes,
//!   errors and outbound log;
//! - the desk side of planning: the snapshot loaded from the store ([`load_snapshot`]);
//! - applying a plan to the store ([`apply_plan`]) in transactions of bounded size, each with its
//!   journal rows, inbound log and counts, the cursors in the last one, so a crash at any point
//!   leaves a state that the next run converges from;
//! - a run's live progress ([`RunProgress`]: stage, tenant, pages, records, requests, changes),
//!   told to the observer as it changes and kept on the run's row;
//! - runs that end when their owner dies ([`liveness`]): a heartbeat while a run goes on, and
//!   runs whose process stopped closed as interrupted;
//! - many runs at once ([`sync_many`]), taking turns at the CPU-bound stages;
//! - write-back of a subscription's quantity to its source ([`set_subscription_quantity`]),
//!   journalled per change and idempotent under retries;
//! - distribution groups added as ticket followers ([`add_group_followers`]), read through a
//!   connection's source;
//! - saving a connection's mappings ([`save_mappings`]) and its configuration check
//!   ([`check_connection`]), both dispatched to the connection's source.
//!
//! It knows no Microsoft API: connectors live under `crates/connectors/` and are reached through
//! the [`deskbridge_source::SourceRegistry`] the caller passes in.
//!
//! Invariants: a preview and a sync run the same code up to apply; applying the same input twice
//! changes nothing; a tenant that could not be read completely never has anyone deactivated for
//! being absent; errors carry the upstream code and a remedy and are recorded against the run.

mod apply;
mod assets;
mod breaker;
mod check;
mod customers;
mod desk;
mod followers;
mod licence_write_back;
pub mod liveness;
mod many;
mod mappings;
mod preview;
mod progress;
mod remove;
mod rows;
mod run;
mod steps;
mod write_back;

pub use apply::{ApplyReport, apply_plan};
pub use check::{NewConnectionCheck, check_connection, check_new_connection};
pub use desk::SnapshotScope;
pub use deskbridge_source::SyncError;
pub use deskbridge_source::desk::load_catalog;
pub use followers::{FollowersAdded, add_group_followers};
pub use licence_write_back::{LicenceOutcome, change_user_licence};
pub use many::{ManyResult, sync_many};
pub use mappings::{mapping_change_needs_confirmation, save_mappings, save_mappings_confirmed};
pub use preview::{PreviewSummary, skip_reason};
pub use progress::{RunProgress, Stage};
pub use remove::{ConnectionRemoval, KeptCustomer, remove_connection};
pub use run::{
    OutcomeCounts, SyncObserver, SyncOptions, SyncOutcome, Timings, entity_of_run_kind, load_connection,
    open_connection, sync,
};
pub use write_back::set_subscription_quantity;
