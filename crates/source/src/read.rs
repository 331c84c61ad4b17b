//! What a source yields when it reads: partitions (a tenant each), each opened with the
//! reference data rules need first, then pages of records, then closed with its completeness and
//! the cursors to commit once its records are applied.

use std::collections::{BTreeMap, BTreeSet};

use deskbridge_core::RecordId;
use deskbridge_mapping::{
    Completeness, ReadMode, Removal, SourceDevice, SourceRow, SourceSubscription, SourceUsageLine,
    SourceUser, SubscribedSku, ValidatedConfig,
};
use deskbridge_store::IntegrationError;

/// A cursor to store: the stream it belongs to (`users/delta`, …) and its value.
pub type NewCursor = (String, String);

/// What a run imports: the directory (users, agents, sites, licences) or managed devices as
/// assets. Each is its own run with its own entity name, as schedules and jobs name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SyncEntity {
    #[default]
    Directory,
    Assets,
    /// Licences and subscriptions only (CSP's "tenants and their licences" module; what a Partner
    /// Center webhook refreshes): no user is read, so nobody is deactivated.
    Licences,
    /// Consumption billing: each customer's metered usage since the last read (CSP: Azure
    /// utilisation of usage-based subscriptions). No user is read.
    Consumption,
    /// Custom table syncs: rows of source tables into desk custom tables, per the connection's
    /// table mappings (`MappingConfig::custom_tables`). No user is read.
    CustomTables,
    /// The source's organisations (Dynamics 365: accounts) as desk customers, per the
    /// connection's customer mappings (`MappingConfig::customers`). No user is read.
    Customers,
}

impl SyncEntity {
    pub const ALL: [SyncEntity; 6] = [
        Self::Directory,
        Self::Assets,
        Self::Licences,
        Self::Consumption,
        Self::CustomTables,
        Self::Customers,
    ];

    /// The name schedules, jobs and the CLI use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Directory => "directory",
            Self::Assets => "assets",
            Self::Licences => "licences",
            Self::Consumption => "consumption",
            Self::CustomTables => "custom_tables",
            Self::Customers => "customers",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// An entity as schedules and jobs name it, with the table of a one-table custom-table run:
    /// `custom_tables:<desk table>` is the custom-table run of that table mapping alone.
    pub fn parse_with_table(name: &str) -> Option<(Self, Option<String>)> {
        match name.split_once(':') {
            Some((entity, table)) => {
                let table = table.trim();
                (Self::parse(entity) == Some(Self::CustomTables) && !table.is_empty() && !table.contains('/'))
                    .then(|| (Self::CustomTables, Some(table.to_owned())))
            }
            None => Self::parse(name).map(|e| (e, None)),
        }
    }
}

impl std::fmt::Display for SyncEntity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a run asks a source to read.
#[derive(Clone, Copy)]
pub struct ReadRequest<'a> {
    /// What to read: users (with their groups and licences) or managed devices.
    pub entity: SyncEntity,
    /// Only this partition (tenant), when the run imports one customer's tenant; the pipeline
    /// has checked that it is one of the connection's.
    pub tenant: Option<&'a str>,
    /// Partitions (lower-cased tenant ids) not to read: another connection already reads them
    /// (the pipeline has warned). A source reads none of these.
    pub skip: &'a BTreeSet<String>,
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
    /// The partition just begun reads the table mapping of this desk custom table (a
    /// `custom_tables` run: one partition per table mapping, each with its own cursors).
    CustomTable(String),
    /// The mode the read of the next partition takes, said before its first request (its `Begin`
    /// may come many requests later; a later `Mode` replaces it, as when a refused delta round
    /// becomes a full read): a run that fails before `Begin` reports the mode it failed in.
    Mode(ReadMode),
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
    /// The partition's customer's subscriptions, when read this run (CSP): planned with the
    /// licences; `None` changes no desk subscription.
    pub subscriptions: Option<Vec<SourceSubscription>>,
    /// The partition's customer's usage lines, when read this run (consumption billing).
    pub usage: Option<Vec<SourceUsageLine>>,
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
    /// A managed device: a desk asset (an asset run reads only these).
    Device(SourceDevice),
    /// A row of a source table for a desk custom table (a custom-table run reads only these).
    Row(SourceRow),
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

/// Hands a source's read events to the pipeline as they are produced. Sending waits until the
/// pipeline has taken the previous event, so a source that emits a page at a time holds one page.
pub struct Emitter(futures::channel::mpsc::Sender<Result<ReadEvent, crate::SyncError>>);

impl Emitter {
    /// Sends one event; an error when the pipeline stopped reading (the read should stop too).
    pub async fn emit(&mut self, event: ReadEvent) -> Result<(), crate::SyncError> {
        use futures::SinkExt as _;
        self.0
            .send(Ok(event))
            .await
            .map_err(|_| crate::SyncError::Internal("the pipeline stopped taking the read's events".into()))
    }
}

/// A read as a stream of events, produced by `produce` as the stream is polled (no task is
/// spawned, so the producer may borrow the connection and the context). An error `produce`
/// returns is the stream's last item.
pub fn read_stream<'a, Fut>(
    produce: impl FnOnce(Emitter) -> Fut,
) -> futures::stream::BoxStream<'a, Result<ReadEvent, crate::SyncError>>
where
    Fut: std::future::Future<Output = Result<(), crate::SyncError>> + Send + 'a,
{
    use futures::{SinkExt as _, StreamExt as _};
    let (sender, receiver) = futures::channel::mpsc::channel(0);
    let mut last = sender.clone();
    let producing = produce(Emitter(sender));
    let producer = async move {
        if let Err(e) = producing.await {
            // The pipeline may have stopped reading already; then nobody needs the error.
            let _ = last.send(Err(e)).await;
        }
    };
    // The producer yields nothing itself: it runs while the receiver is polled, and the stream
    // ends once it has finished and every event it sent was taken.
    let producer = futures::stream::once(producer).filter_map(|()| futures::future::ready(None));
    Box::pin(futures::stream::select(receiver, producer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt as _;

    fn note(text: &str) -> ReadEvent {
        ReadEvent::Note(text.to_owned())
    }

    #[test]
    fn a_custom_table_is_an_entity_of_its_own() {
        assert_eq!(
            SyncEntity::parse_with_table("assets"),
            Some((SyncEntity::Assets, None))
        );
        assert_eq!(
            SyncEntity::parse_with_table("custom_tables:contracts"),
            Some((SyncEntity::CustomTables, Some("contracts".to_owned())))
        );
        assert_eq!(
            SyncEntity::parse_with_table("custom_tables"),
            Some((SyncEntity::CustomTables, None))
        );
        assert_eq!(SyncEntity::parse_with_table("custom_tables:"), None);
        assert_eq!(SyncEntity::parse_with_table("assets:contracts"), None);
        assert_eq!(SyncEntity::parse("custom_tables:contracts"), None);
    }

    #[tokio::test]
    async fn events_arrive_in_order_and_an_error_ends_the_stream() {
        let stream = read_stream(|mut out| async move {
            out.emit(note("one")).await?;
            out.emit(note("two")).await?;
            Err(crate::SyncError::Internal("the read broke".into()))
        });
        let items: Vec<_> = stream.collect().await;
        assert_eq!(items.len(), 3);
        assert!(matches!(&items[0], Ok(ReadEvent::Note(n)) if n == "one"));
        assert!(matches!(&items[1], Ok(ReadEvent::Note(n)) if n == "two"));
        assert!(matches!(&items[2], Err(e) if e.to_string() == "the read broke"));
    }

    #[tokio::test]
    async fn the_producer_waits_for_the_pipeline() {
        let produced = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = produced.clone();
        let mut stream = read_stream(move |mut out| async move {
            for i in 0..100 {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                out.emit(note(&i.to_string())).await?;
            }
            Ok(())
        });
        let first = stream.next().await;
        assert!(matches!(first, Some(Ok(ReadEvent::Note(_)))));
        // One event taken: the producer may be at most a couple of events ahead, never at 100.
        assert!(produced.load(std::sync::atomic::Ordering::SeqCst) <= 3);
        assert_eq!(stream.count().await, 99);
    }
}
