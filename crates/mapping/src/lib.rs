//! deskbridge-mapping: the pure mapping engine — configuration and records in, a plan out.
//!
//! It owns the mapping configuration ([`MappingConfig`], versioned JSON stored per connection),
//! its validation against what exists ([`validate`] with a [`Catalog`]), and planning: which
//! source users become which desk users and agents, on which site, with which roles, teams, CABs,
//! licences and state, and which records are deactivated. The [`Plan`] is both the preview an
//! administrator reads and what apply executes. Planning comes two ways: [`RunPlanner`] a tenant
//! and a page of users at a time (the streaming pipeline; memory flat in tenant size), and
//! [`plan`] for a whole run at once (a thin wrapper driving the same planner).
//!
//! Managed devices become desk assets through a separate page-wise planner, [`AssetPlanner`]
//! (types by name, rule or property; matching by device id then a global matching field such as
//! the serial number; linked users and sites; a deletion status, never a delete), configured by
//! [`MappingConfig::assets`].
//!
//! Rows of any source table become rows of desk custom tables through [`RowPlanner`] (field
//! mappings with child and grandchild lookup paths, values typed and never coerced, removed rows
//! deleted or kept as the mapping says), configured by [`MappingConfig::custom_tables`].
//!
//! Rows of the source's organisations table (Dynamics 365: accounts) become desk customers
//! through [`CustomerPlanner`], configured by [`MappingConfig::customers`]; people can then be
//! placed on the main site of the customer imported from their parent row
//! ([`SiteTarget::ImportedCustomer`]).
//!
//! The engine speaks source records, not Graph: a connector turns what it reads into
//! [`SourceUser`]s (external id, properties, groups, licences, `external`), and names the
//! properties a mapping may read in the [`Catalog`].
//!
//! Invariants:
//! - No I/O, no clock: `now` is a parameter. The same inputs give the same plan, byte for byte.
//! - Site mappings run in (sequence, id) order — lower sequence first, equal sequences by
//!   lower id — and the first matching user mapping wins; agent mappings (`*agent*`) are
//!   evaluated the same way, separately. Users matched by no mapping are `skip` changes.
//! - Matching: the external id first; then the configured fields, each only against desk records
//!   not yet linked to any source person. Two candidates are a `conflict`, never a guess; so is a
//!   desk record that several source users fit (in [`plan`]: anywhere in the read; page-wise: in
//!   one page, or a later page's user fitting a record an earlier page linked or contested).
//! - Nothing is deactivated for being absent unless the tenant's read was full *and* complete;
//!   delta removals deactivate (hard `deleted` and soft `changed` alike — a soft-deleted user
//!   cannot sign in, and a restore arrives as an update that reactivates it).
//! - A tenant whose run would deactivate more than the configured share (and more than the
//!   floor) is held: its deactivations and the ticket re-assignments they cause move to
//!   [`Plan::held`] and are never applied ([`plan`], which applies nothing before the verdict,
//!   holds the tenant whole). Page-wise, deactivations wait for the tenant's end for this.
//! - Page-wise, a preview (no page applied before the next) and a sync (each applied) plan the
//!   same: the planner trusts its run state, not a later page's desk, about what the run did.
//! - References to records created by the same plan are symbolic ([`Reference`]), so apply
//!   resolves them in any order.
//! - Applying a plan and planning again gives no writes ([`apply_to_snapshot`]), whether it is
//!   applied whole, in [`Plan::pages`] (whose references always resolve within the page or an
//!   earlier one), or step by step as [`RunPlanner`] plans it.
//!
//! See the crate's README for the configuration's JSON and the decisions taken where the guides
//! are silent (tie-breaks, soft-deleted users, team flags, licences).

mod apply;
mod assets;
mod catalog;
mod config;
mod customers;
mod engine;
mod fields;
mod followers;
mod input;
mod pages;
mod plan;
mod render;
mod rows;
mod validate;

pub use apply::{ApplyError, apply_to_snapshot};
pub use assets::{
    AssetDesk, AssetLookups, AssetMappings, AssetPlanner, AssetRecordLock, AssetTypeRule, AssetTypes,
    AssetUserLink, DeskAsset, DeviceUserField, SourceDevice, UnmatchedDevice, apply_assets, present,
};
pub use catalog::{
    Catalog, CatalogSite, CustomField, CustomFieldEntity, CustomFieldType, NamedRecord, SourceType,
};
pub use config::{
    AdvancedMappings, CONFIG_VERSION, CircuitBreaker, ExternalUsers, FieldLock, FieldMapping, FieldSource,
    FollowerMode, FollowerOptions, GroupFilter, GroupToCab, GroupToRecord, ImportOptions, LicenceManagement,
    LicenceTypeChoice, MappingConfig, MatchField, RecordKind, RecordLock, ServiceAccounts, SiteMapping,
    SiteTarget, UnmatchedSite,
};
pub use customers::{
    CustomerMappings, CustomerMatchField, CustomerPlanner, DeskCustomer, RemovedCustomers, apply_customers,
};
pub use engine::{
    ConnectionRecord, ConnectionRecords, DeskLookups, FinishLookups, RunPlanner, TenantHeader,
    TenantReference, plan,
};
pub use followers::{DistributionGroup, FollowerError, FollowerPlan, GroupMember, followers_for_group};
pub use input::{
    Completeness, DeskLicence, DeskRecord, DeskSite, DeskSnapshot, DeskSourceRecord, DeskTicket,
    ImportedCustomer, PlanInput, ReadMode, RecordLocks, Removal, RemovalReason, SourceIdentity,
    SourceSubscription, SourceUsageLine, SourceUser, SubscribedSku, SubscriptionPrice, TenantRead,
};
pub use plan::{
    Action, BreakerVerdict, Change, Counts, Entity, FieldChange, HeldTenant, LockedChange, Plan, PlanError,
    Reference,
};
pub use rows::{
    CustomTableMapping, DeskColumns, DeskRow, LAST_SYNC_VARIABLE, MAX_PATH_SEGMENTS, RemovedRows, RowField,
    RowLookups, RowPlanner, SourceRow, apply_rows, check_against_desk, check_table_mappings, fits, row_key,
    split_row_key,
};
pub use validate::{ConfigError, ValidatedConfig, closest, validate};
