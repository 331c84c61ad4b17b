//! The trait every connector implements, and what a connector is given to work with.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use deskbridge_core::{RecordId, SharedClock};
use deskbridge_mapping::MappingConfig;
use deskbridge_store::{Connection, Store};
use futures::stream::BoxStream;

use crate::{CheckPoint, ReadEvent, ReadRequest, RequestSink, SyncError};

/// A boxed future: trait objects cannot have `async fn`s.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a connector works with during one operation.
#[derive(Clone)]
pub struct SourceContext {
    pub store: Store,
    pub clock: SharedClock,
    /// Where the operation's upstream requests are reported (the run's outbound log, a job's
    /// progress and metrics).
    pub requests: Arc<dyn RequestSink>,
}

/// One kind of source (Microsoft Entra ID, …). One value per kind lives for the whole process
/// in the [`crate::SourceRegistry`], so it may keep what its connections share (an HTTP client
/// per app registration, whose request budget Microsoft counts across tenants).
pub trait Source: Send + Sync {
    /// The connection kind in the store (`entra`, …).
    fn kind(&self) -> &'static str;
    /// A name for people ("Microsoft Entra ID").
    fn label(&self) -> &'static str;
    /// The entities a schedule of this kind's connections may name.
    fn entities(&self) -> &'static [&'static str];
    /// Opens a stored connection of this kind: its settings parsed and validated.
    fn open(&self, connection: &Connection) -> Result<Box<dyn SourceConnection>, SyncError>;
    /// The configuration check of a connection of this kind, after the generic points (the
    /// connection exists, is enabled on this `instance`): each point passed or failed with its
    /// remedy, in order.
    fn check<'a>(
        &'a self,
        cx: &'a SourceContext,
        connection: &'a Connection,
        instance: &'a str,
    ) -> BoxFuture<'a, Vec<CheckPoint>>;
}

/// A partition of a connection's data: a tenant, and the desk customer its records go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub tenant_id: String,
    pub customer_id: RecordId,
}

/// One stored connection, opened by its [`Source`].
pub trait SourceConnection: Send + Sync {
    fn connection(&self) -> &Connection;
    /// The connection's mapping configuration.
    fn mapping(&self) -> &MappingConfig;
    /// The properties the source's records carry, for validating field mappings.
    fn source_properties(&self) -> crate::desk::SourceProperties;
    /// The partitions the connection reads.
    fn partitions(&self) -> Vec<Partition>;
    /// Notes about how the source will read under these mappings, shown before a run's changes
    /// (e.g. mapped fields a delta query cannot track).
    fn read_notes(&self, config: &deskbridge_mapping::ValidatedConfig) -> Vec<String>;
    /// Reads the connection's partitions (see [`ReadEvent`] for the order). An `Err` item ends
    /// the read: what it yielded before stays valid.
    fn read<'a>(
        &'a self,
        cx: &'a SourceContext,
        request: ReadRequest<'a>,
    ) -> BoxStream<'a, Result<ReadEvent, SyncError>>;
    /// The names of the source's groups, for validating a mapping before it is saved.
    fn group_names<'a>(&'a self, cx: &'a SourceContext)
    -> BoxFuture<'a, Result<BTreeSet<String>, SyncError>>;
    /// The connection's settings (as stored) with `mapping` as its mapping configuration.
    fn settings_with_mapping(&self, mapping: &MappingConfig) -> Result<serde_json::Value, SyncError>;
}
