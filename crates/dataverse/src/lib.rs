//! deskbridge-dataverse: the Dataverse Web API v9.2 client (Dynamics 365) the Dynamics
//! connector reads organisations with.
//!
//! It owns the wire side of Dataverse: the org URL and its API root, bearer tokens for
//! `{org}/.default` from a [`deskbridge_msauth::TokenProvider`] (application users and delegated
//! users alike), a typed query builder (`$select`, `$filter`, `$expand` nested, `$orderby`, `$top`,
//! `$count`, `Prefer: odata.maxpagesize`, annotations), paging through `@odata.nextLink` (paging
//! cookies, followed verbatim), change tracking (`Prefer: odata.track-changes`, `@odata.deltaLink`,
//! `$deletedEntity` rows, expired tokens recognised), rows whose formatted values, lookups and
//! option values are read from annotations, metadata (entities, attributes, option sets with
//! labels), `WhoAmI` for the connection test, retries on 429 (service protection) and 5xx with
//! `Retry-After` honoured for the whole organisation, a client-side budget under Dataverse's
//! 6,000 requests / 300 s and 52 concurrent requests, and typed errors carrying Dataverse's hex
//! error code and message.
//!
//! Invariants:
//! - Links from Dataverse are requested exactly as received, and only on the org's own origin
//!   (so a token never goes elsewhere).
//! - After a 429 with Retry-After, no request goes to the organisation before the time has passed.
//! - Tokens never reach errors or `Debug` output.
//! - A body that does not have the documented shape is an error naming the URL, never a panic.

mod client;
mod error;
mod metadata;
mod page;
mod query;
mod row;

pub use client::{ChangePager, DataverseClient, DataverseConfig, Pager, REQUESTS_PER_WINDOW, WINDOW, WhoAmI};
pub use error::{DataverseApiError, DataverseError, DataverseErrorClass, codes};
pub use metadata::{AttributeMetadata, EntityMetadata, OptionMetadata, OptionSetMetadata};
pub use page::{Change, ChangePage, Page};
pub use query::{Annotations, Expand, Query, filter};
pub use row::{FieldError, Lookup, Row};
