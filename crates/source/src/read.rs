//! What a source yields when it reads: partitions (a tenant each), each opened with the
//! reference data rules need first, then pages of records, then closed with its completeness and
//! the cursors to commit once its records are applied.

use std::collections::{BTreeMap, BTreeSet};

use deskbridge_core::RecordId;
use deskbridge_mapping::{Completeness, ReadMode, Removal, SourceUser, SubscribedSku, ValidatedConfig};
use deskbridge_store::IntegrationError;

/// A cursor to store: the stream it belongs to (`users/delta`, …) and its value.
pub type NewCursor = (String, String);

/// What a run asks a source to read.
#[derive(Clone, Copy)]
pub struct ReadRequest<'a> {
    /// Ignore stored cursors and read everything.
    pub full: bool,
    /// The run's validated mappings: what the rules read (properties, groups), so a source asks
    /// only for that.
    pub config: &'a ValidatedConfig,
    /// The connection's stored cursors.
    pub cursors: &'a StoredCursors,
}

/// The cursors a connection has stored, by partition (tenant) and stream.
#[derive(Debug, Clone, Default)]
pub struct StoredCursors {
    by_key: BTreeMap<(String, String), String>,
}

impl StoredCursors {
    pub fn insert(&mut self, tenant: &str, stream: &str, value: String) {
        self.by_key.insert((tenant.to_owned(), stream.to_owned()), value);
    }

    pub fn get(&self, tenant: &str, stream: &str) -> Option<&str> {
        self.by_key
            .get(&(tenant.to_owned(), stream.to_owned()))
            .map(String::as_str)
    }
}

/// One step of a read, in the order the pipeline consumes them: for each partition a
/// [`ReadEvent::Begin`], its [`ReadEvent::Page`]s and an [`ReadEvent::End`]; notes and warnings
/// may come at any point.
#[derive(Debug, Clone)]
pub enum ReadEvent {
    Begin(PartitionStart),
    Page(Page),
    End(PartitionEnd),
    /// Something an administrator should know that is not a change (e.g. "the delta token was
    /// refused; running a full import instead").
    Note(String),
    /// A part of the read that failed without failing the run (e.g. sign-in dates that need a
    /// premium tenant): recorded against the run, and the run ends partial.
    Warning(IntegrationError),
}

/// A partition's read begins.
#[derive(Debug, Clone)]
pub struct PartitionStart {
    pub tenant_id: String,
    /// The desk customer the partition's records belong to.
    pub customer_id: Option<RecordId>,
    /// Full (absence means "not in the source", if the read completes) or delta.
    pub mode: ReadMode,
    /// The partition's subscribed licences, when read this run (planned before its users).
    pub subscribed_skus: Option<Vec<SubscribedSku>>,
    /// Every group name of the partition, when listed (full reads): mappings naming a group that
    /// does not exist are refused.
    pub groups: Option<BTreeSet<String>>,
}

/// Records of one partition, with the removals the source reported and the cursors this page
/// advances (committed in the same transaction as the page's changes).
#[derive(Debug, Clone)]
pub struct Page {
    pub tenant_id: String,
    pub records: Vec<SourceRecord>,
    pub removed: Vec<Removal>,
    pub cursors: Vec<NewCursor>,
}

/// One record of a source, typed by entity. Every connector normalises to these: the mapping
/// engine never sees a wire format.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceRecord {
    /// A person: a user of the desk or, by the agent mappings, an agent.
    User(SourceUser),
}

/// A partition's read is over.
#[derive(Debug, Clone)]
pub struct PartitionEnd {
    pub tenant_id: String,
    /// Only a complete full read lets the absent be deactivated.
    pub completeness: Completeness,
    /// Cursors committed with the partition's last writes (e.g. delta links taken before a full
    /// read began).
    pub cursors: Vec<NewCursor>,
    /// Requests the partition's read made.
    pub requests: u64,
}
