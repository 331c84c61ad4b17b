//! deskbridge-source: the boundary between the pipeline and the connectors.
//!
//! Every connector (Microsoft Entra ID today; Partner Center, Intune and Dataverse next) lives in
//! its own crate under `crates/connectors/` and implements [`Source`]; the binary registers them
//! in a [`SourceRegistry`], and the pipeline (`deskbridge-sync`), the agent, the web and the CLI
//! reach a connector only through it. Nothing here speaks a Microsoft API.
//!
//! What it owns:
//! - [`Source`] (one per kind: opens connections, runs the configuration check) and
//!   [`SourceConnection`] (one stored connection: its mappings, partitions, and a `read` that
//!   yields [`ReadEvent`]s — partitions opened with their reference data, pages of typed
//!   [`SourceRecord`]s with removals and the cursors each page advances, and completeness);
//! - the check's vocabulary ([`CheckPoint`], [`CheckReport`]);
//! - a connection's sealed credentials ([`ConnectionSecrets`]): the only code that knows where
//!   they live in the store;
//! - the requests a connector makes, as the pipeline logs and measures them ([`RequestRecord`],
//!   labelled by source kind) and the one HTTP client ([`http_client`]);
//! - what both sides read of the desk ([`desk`]): records page by page, and the catalog a mapping
//!   configuration is validated against;
//! - a kind's settings as data ([`settings`]): forms, API validation and export come from them;
//! - creating and editing connections, interactive sign-in ([`SignIn`]) and cursor resets, as
//!   each kind does them, with the sign-in mechanics they share ([`sign_in`]: the sealed pending
//!   state, the state check, the redirect's code or refusal);
//! - the error every connection operation reports ([`SyncError`]).
//!
//! Why a trait object rather than an enum of connectors: the pipeline, agent and web must
//! compile without any connector (so none of them can reach into one), and the binary decides
//! which connectors it ships. Futures are boxed ([`BoxFuture`]) because trait objects cannot have
//! `async fn`s; the cost is one allocation per call, against reads that take network round trips.

mod check;
pub mod consent;
mod cursors;
pub mod desk;
mod error;
mod http;
mod read;
mod registry;
mod requests;
mod secrets;
pub mod settings;
pub mod sign_in;
mod source;

pub use check::{CheckPoint, CheckReport};
pub use cursors::{clear_cursors, stored_cursors};
pub use error::SyncError;
pub use http::http_client;
pub use read::{
    Emitter, NewCursor, Page, PartitionEnd, PartitionStart, ReadEvent, ReadRequest, SourceRecord,
    StoredCursors, SyncEntity, read_stream,
};
pub use registry::{MappedTenant, SourceRegistry, TenantReaders};
pub use requests::{FanOut, MemoryRequests, RequestRecord, RequestSink};
pub use secrets::ConnectionSecrets;
pub use source::{
    BoxFuture, CursorReport, CursorReset, LicenceAssignment, LicenceUnits, LicenceWriter, NewConnection,
    Partition, QuantityChange, SignIn, Source, SourceConnection, SourceContext, SubscriptionWriter,
    TenantCustomer, TenantEntry, TenantTable, TenantUpdate, sign_in_connection,
};
