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
//! 6,000 requests / 300 s and 52 concurrent requests — both shared by every client of one
//! organisation in the process, the concurrency cap lowered when Dataverse answers "too many
//! concurrent requests" (module `protection`) — and typed errors carrying Dataverse's hex error code
//! and message.
//!
//! # Use
//! ```no_run
//! # async fn demo(tokens: std::sync::Arc<dyn deskbridge_msauth::TokenProvider>) -> Result<(), deskbridge_dataverse::DataverseError> {
//! use deskbridge_dataverse::{Annotations, Change, DataverseClient, DataverseConfig, Expand, Query, filter};
//! let config = DataverseConfig::new("https://contoso.crm.dynamics.com", "<tenant id>");
//! let dv = DataverseClient::new(reqwest::Client::new(), config, tokens)?; // scope {org}/.default
//! let me = dv.who_am_i().await?;                                          // the connection test
//! let since = jiff::Timestamp::now();                                     // the last successful sync
//! let query = Query::new("contacts")
//!     .select(["fullname", "emailaddress1", "_parentcustomerid_value", "cr7a1_hobbies"])
//!     .filter(format!("modifiedon ge {}", filter::date_time(since)))
//!     .expand(Expand::new("parentcustomerid_account").select(["name"]))
//!     .page_size(5_000)
//!     .formatted_values();
//! let mut pager = dv.pager(&query);
//! while let Some(page) = pager.next_page().await? {
//!     for row in page.rows {
//!         let _parent = row.lookup("parentcustomerid");       // id, table, navigation, name
//!         let _hobbies = row.options("cr7a1_hobbies");        // "1,9" → [1, 9]
//!         let _labels = row.option_labels("cr7a1_hobbies");   // "Reading; Swimming"
//!     }
//! }
//! // Change tracking: a full round, then only the changes.
//! let mut round = dv.changes(&Query::new("accounts").select(["name"]));
//! let mut delta_link = None;
//! while let Some(page) = round.next_page().await? {
//!     for change in page.changes {
//!         match change { Change::Upsert(_row) => {}, Change::Deleted { id: _ } => {} }
//!     }
//!     delta_link = page.delta_link.or(delta_link);
//! }
//! if let Some(link) = delta_link {
//!     match dv.changes_since(&link, None, Annotations::None).next_page().await {
//!         Err(e) if e.is_change_token_expired() => { /* read the table in full */ }
//!         other => { let _ = other?; }
//!     }
//! }
//! let _choices = dv.option_sets("contact").await?;                    // values and labels
//! # let _ = me; Ok(()) }
//! ```
//!
//! Invariants:
//! - Links from Dataverse are requested exactly as received, and only on the org's own origin
//!   (so a token never goes elsewhere).
//! - After a 429 with Retry-After, no request goes to the organisation before the time has passed,
//!   from any client of it in the process.
//! - After a 429 for too many concurrent requests, the process has no more requests in flight to
//!   the organisation than the lowered cap (requests already in flight end as they are).
//! - Tokens never reach errors or `Debug` output.
//! - A body that does not have the documented shape is an error naming the URL, never a panic.

mod client;
mod error;
mod metadata;
mod page;
mod protection;
mod query;
mod row;

pub use client::{ChangePager, DataverseClient, DataverseConfig, Pager, REQUESTS_PER_WINDOW, WhoAmI};
pub use error::{DataverseApiError, DataverseError, DataverseErrorClass, codes};
pub use metadata::{AttributeMetadata, EntityMetadata, OptionMetadata, OptionSetMetadata};
pub use page::{Change, ChangePage, Page};
pub use protection::WINDOW;
pub use query::{Annotations, Expand, Query, filter};
pub use row::{FieldError, Lookup, Row};
