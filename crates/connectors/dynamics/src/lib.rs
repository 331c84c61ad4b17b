//! deskbridge-connector-dynamics: Dynamics 365 (Dataverse) as a source of the pipeline.
//!
//! What it owns:
//! - Dynamics 365 connections' settings as a data platform's connection form lists them
//!   ([`settings`]): name, URL (an organisation's root, under the endpoint policy), CRM version
//!   (`CRMOnline`), Azure tenant, client ID, client secret or certificate, AuthScheme
//!   (`AzureServicePrincipal` or `AzureAD`), callback URL and authority host, each validated with
//!   a message naming it; creating and editing them (an endpoint change drops the sealed
//!   credentials);
//! - importing a connection string (`Key=Value;…`, as data platforms and the Dataverse SDK write
//!   them) into the same settings ([`connection_string`]);
//! - tokens: client credentials, or a user's sign-in (authorization code with PKCE through
//!   `deskbridge-source`'s shared sign-in mechanics) whose refresh token is sealed and rotated;
//! - "Test connection" (the check): the URL is an organisation's, a token, `WhoAmI`, Read
//!   privilege on contact and account, then "connection available" or exactly why not;
//! - reading the organisation's **contacts** as people ([`read`]): one partition (the
//!   organisation, into the connection's customer), pages of up to 5,000, change tracking with
//!   the delta link stored as the `contacts/delta` cursor, deleted contacts as removals, and an
//!   expired token answered by a full read;
//! - **custom table syncs** ([`tables`], the entity `custom_tables`): each table mapping of the
//!   connection's mappings (`MappingConfig::custom_tables`) resolved against the organisation's
//!   `EntityDefinitions` (table, columns, lookup targets), then read as its own partition — with
//!   change tracking when the table has it and the mapping no filter (cursor
//!   `table/<logical>/delta`, deleted rows as removals, an expired token answered by a full read),
//!   otherwise with a `modifiedon` watermark (cursor `table/<logical>/since`), a filter's
//!   `$-INTEGRATORLASTSYNC` replaced by the last complete read's start as a date-time literal;
//!   child and grandchild lookups through nested `$expand`, or batched lookups where Dataverse
//!   refuses `$expand` (change tracking); values typed as Dataverse gives them (choices as labels);
//! - the check's per-table points (columns, Read privilege, change tracking);
//! - [`DynamicsSource`], which the binary registers.
//!
//! A schedule or job names `custom_tables` (every table mapping) or `custom_tables:<desk table>`
//! (that mapping alone).
//!
//! Not here yet (the next slice of the issue): accounts → customers, option-set and lookup field
//! mappings beyond the contact columns for people, and a field-by-field form for table mappings
//! (the web's Custom tables tab edits them as JSON).

mod auth;
mod check;
pub mod connection_string;
mod error;
mod manage;
pub mod read;
pub mod settings;
mod source;
pub mod tables;

pub use check::CONNECTION_AVAILABLE;
pub use error::from_dataverse;
pub use settings::{
    AuthScheme, DynamicsSettings, SECRET_CERTIFICATE, SECRET_CLIENT_SECRET, SECRET_REFRESH_TOKEN,
};
pub use source::DynamicsSource;

/// The connection kind of Dynamics 365 connections in the store.
pub const DYNAMICS_KIND: &str = "dynamics";
