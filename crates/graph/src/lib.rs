//! deskbridge-graph: the Microsoft Graph v1.0 client the sync pipeline reads tenants with.
//!
//! It owns the wire side of Graph: typed models (users, groups, directory object references,
//! subscribed SKUs, licence details, Intune managed devices, organization, GDAP relationships) that
//! keep unknown properties in `extra`; paging that follows `@odata.nextLink` verbatim and ends delta
//! rounds at `@odata.deltaLink`; `$select` helpers; `$batch` with per-item retries; retries with
//! exponential backoff and jitter; Retry-After honoured per tenant; a client-side resource-unit budget
//! per app + tenant and per app; bounded concurrency; typed errors; and a request log sink.
//!
//! Invariants:
//! - Links from Graph are requested exactly as received, and only on Graph's own origin (so a token
//!   never goes elsewhere).
//! - After a 429/503 with Retry-After, no request goes to that tenant before the time has passed.
//! - Tokens and secrets never reach logs or errors; cursor tokens are elided from logged paths.
//! - A body that does not parse is an error naming the URL and JSON path, never a panic.

mod batch;
mod budget;
mod client;
mod error;
mod log;
mod models;
mod page;
mod select;
mod serde_helpers;

pub use batch::{BatchRequest, BatchResponse, MAX_BATCH_REQUESTS};
pub use budget::{APP_RESOURCE_UNITS_PER_20S, INTUNE_REQUESTS_PER_20S, TenantSize, resource_unit_cost};
pub use client::{
    DEFAULT_GRAPH_BASE_URL, GraphClient, GraphConfig, GraphRequest, GraphResponse, GraphTenant, Pager,
};
pub use error::{GraphApiError, GraphError, GraphErrorClass};
pub use log::{MemoryRequestLog, NoRequestLog, RequestLog, RequestLogEntry};
pub use models::*;
pub use page::{MembershipChanges, Page, Removed};
pub use select::{GROUP_SELECT, Query, USER_SELECT};
