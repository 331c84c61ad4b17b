//! The trait every connector implements, and what a connector is given to work with.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use deskbridge_core::{ConnectionId, RecordId, SharedClock};
use deskbridge_mapping::MappingConfig;
use deskbridge_store::{Connection, Store};
use futures::stream::BoxStream;

use crate::settings::{Setting, SettingValues};
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

impl SourceContext {
    /// The context of an operation outside a run (a check, a mapping's validation, a reset):
    /// its requests are counted in memory and logged nowhere.
    pub fn detached(store: Store, clock: SharedClock) -> Self {
        Self {
            store,
            clock,
            requests: Arc::new(crate::MemoryRequests::default()),
        }
    }
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
    /// What to prepare at Microsoft before adding a connection of this kind (shown above the
    /// new-connection form).
    fn setup(&self) -> &'static str {
        ""
    }
    /// Whether a connection of this kind attaches what it finds to existing desk customers (a
    /// partner's connection matching each customer tenant to the customer owning the tenant or
    /// having its name), rather than importing into the one customer it was created for. Adding
    /// such a connection gives access to those customers' data: only an administrator may.
    fn attaches_existing_customers(&self) -> bool {
        false
    }
    /// The kind's settings: the web's forms, the API's validation and the export file are built
    /// from them (see [`crate::settings`]).
    fn settings(&self) -> &'static [Setting];
    /// Creates a connection of this kind (and what the desk needs for it, such as its customer),
    /// in one transaction: nothing is written if anything is refused.
    fn create<'a>(
        &'a self,
        store: &'a Store,
        new: NewConnection,
    ) -> BoxFuture<'a, Result<deskbridge_store::Connection, SyncError>>;
    /// Changes a connection's settings: only those in `values` (validated against
    /// [`Source::settings`]); a secret given replaces the sealed one.
    fn edit<'a>(
        &'a self,
        store: &'a Store,
        connection: &'a Connection,
        values: SettingValues,
    ) -> BoxFuture<'a, Result<(), SyncError>>;
    /// How an administrator signs a connection of this kind in interactively, if it can be.
    fn sign_in(&self) -> Option<&dyn SignIn> {
        None
    }
    /// What the connection's stored cursors say: for people (label, value lines) and for scripts.
    fn cursors<'a>(
        &'a self,
        cx: &'a SourceContext,
        connection: &'a Connection,
    ) -> BoxFuture<'a, Result<CursorReport, SyncError>> {
        Box::pin(async move { crate::cursors::stored_cursors(&cx.store, connection).await })
    }
    /// Resets the connection's cursors. Every kind can [`CursorReset::Clear`]; only a kind that
    /// can take cursors from now without reading ([`Source::can_start_from_now`]) can
    /// [`CursorReset::Latest`].
    fn reset_cursors<'a>(
        &'a self,
        cx: &'a SourceContext,
        connection: &'a Connection,
        reset: CursorReset,
    ) -> BoxFuture<'a, Result<(), SyncError>> {
        Box::pin(async move {
            match reset {
                CursorReset::Clear => crate::cursors::clear_cursors(&cx.store, connection.id)
                    .await
                    .map(|_| ()),
                CursorReset::Latest => Err(SyncError::BadSettings(
                    connection.name.clone(),
                    format!(
                        "a {} connection cannot start from now: clear its cursors to read everything",
                        self.label()
                    ),
                )),
            }
        })
    }
    /// Whether [`CursorReset::Latest`] is possible.
    fn can_start_from_now(&self) -> bool {
        false
    }
    /// Whether saving `new` over `old` restarts the connection's cursors, which the administrator
    /// confirms first (Entra, as its guide says: a change to the user or site field/filter
    /// mappings takes the latest delta once confirmed, or reads everything again if asked).
    /// Default: a mapping change leaves the cursors as they are.
    fn mapping_change_restarts_cursors(
        &self,
        _connection: &Connection,
        _old: &deskbridge_mapping::MappingConfig,
        _new: &deskbridge_mapping::MappingConfig,
    ) -> bool {
        false
    }
    /// Opens a stored connection of this kind: its settings parsed and validated.
    fn open(&self, connection: &Connection) -> Result<Box<dyn SourceConnection>, SyncError>;
    /// How the desk changes this kind's subscriptions at the source (write-back), if it can.
    fn subscription_writer(&self) -> Option<&dyn SubscriptionWriter> {
        None
    }
    /// How the desk assigns and removes this kind's licences on users at the source, if it can.
    fn licence_writer(&self) -> Option<&dyn LicenceWriter> {
        None
    }
    /// Whether what this kind reads of a tenant is the tenant's directory, which one connection
    /// reads (Entra, CSP: two would import the same people twice); `false` for kinds whose
    /// partitions several connections share (several Dynamics organisations of one tenant).
    fn reads_tenant_directory(&self) -> bool {
        true
    }
    /// The table of customer tenants administrators manage, for kinds with many (CSP).
    fn tenant_table(&self) -> Option<&dyn TenantTable> {
        None
    }
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

/// A new quantity for a subscription, as sent to its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantityChange {
    /// The customer tenant the subscription belongs to.
    pub tenant_id: String,
    /// The subscription's id at the source.
    pub subscription_id: String,
    pub quantity: i64,
    /// The change's idempotency key, the same on every attempt (a UUID).
    pub request_id: String,
}

/// Writes subscriptions back to their source. A change the source's rules refuse is an
/// [`SyncError::Upstream`] with [`deskbridge_core::ErrorCode::ChangeRefused`], saying why and
/// when it would have been allowed; a change sent twice with the same request id is made once.
pub trait SubscriptionWriter: Send + Sync {
    /// Sets the quantity; returns the subscription as the source now has it.
    fn set_quantity<'a>(
        &'a self,
        cx: &'a SourceContext,
        connection: &'a Connection,
        change: &'a QuantityChange,
    ) -> BoxFuture<'a, Result<deskbridge_mapping::SourceSubscription, SyncError>>;
}

/// A licence to assign to or remove from a user, as sent to its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenceAssignment {
    /// The tenant the user and the licence belong to.
    pub tenant_id: String,
    /// The user's id at the source (Entra's object id).
    pub user_id: String,
    /// The licence's SKU id.
    pub sku_id: String,
    /// Assign (`true`) or remove (`false`).
    pub assign: bool,
}

/// The licence's units as the source counts them after a change, when it could say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LicenceUnits {
    pub total: i64,
    pub consumed: i64,
}

/// Writes users' licence assignments back to their source. The source's refusals (no free
/// units, no usage location) are [`SyncError::Upstream`] with
/// [`deskbridge_core::ErrorCode::ChangeRefused`], saying why and what to do; a missing permission
/// names the permission and the consent to grant. Sending the same assignment twice is harmless.
pub trait LicenceWriter: Send + Sync {
    /// Whether `connection` allows licences to be managed from the desk (its own setting).
    fn manages_licences(&self, connection: &Connection) -> Result<bool, SyncError>;
    /// Assigns or removes the licence; returns the licence's units afterwards, when the source
    /// could be asked (`None`: the change was made, the count not read).
    fn assign<'a>(
        &'a self,
        cx: &'a SourceContext,
        connection: &'a Connection,
        change: &'a LicenceAssignment,
    ) -> BoxFuture<'a, Result<Option<LicenceUnits>, SyncError>>;
}

/// One customer tenant of a many-tenant connection, as its Tenants tab shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TenantEntry {
    pub tenant_id: String,
    /// The tenant's name at the source (the customer's company name).
    pub name: String,
    /// The desk customer its records go to; `None`: "do not import".
    pub customer_id: Option<RecordId>,
    pub customer_name: Option<String>,
    /// This tenant's own values of the settings it may override ([`TenantTable::overridable`]);
    /// a setting left out follows the connection's.
    pub overrides: std::collections::BTreeMap<String, String>,
    /// When an administrator of the tenant last granted the connection's app admin consent
    /// through this service (RFC 3339); `None`: unknown here (it may have been granted
    /// elsewhere: the configuration check says whether the app can read the tenant).
    pub consented_at: Option<String>,
    /// The relationship the source last reported with this tenant, in people's words (CSP:
    /// "reseller and GDAP", "reseller, no active GDAP", "no longer listed"); `None`: not known yet.
    pub relationship: Option<String>,
}

/// Where a tenant's records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantCustomer {
    DoNotImport,
    Customer(RecordId),
}

/// A change to one tenant: `None` leaves that part as it is; an override set to `None` follows
/// the connection's setting again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantUpdate {
    pub customer: Option<TenantCustomer>,
    pub overrides: std::collections::BTreeMap<String, Option<String>>,
}

/// The customer tenants of a connection, as administrators manage them: which desk customer each
/// goes to (or none), and the settings a tenant may override. Assigning a tenant to a customer
/// gives it the customer's catch-all site mapping.
pub trait TenantTable: Send + Sync {
    /// The settings a tenant may override (validated as the connection's own are).
    fn overridable(&self) -> &'static [Setting];
    fn tenants<'a>(
        &'a self,
        store: &'a Store,
        connection: &'a Connection,
    ) -> BoxFuture<'a, Result<Vec<TenantEntry>, SyncError>>;
    fn set_tenant<'a>(
        &'a self,
        store: &'a Store,
        connection: &'a Connection,
        tenant_id: &'a str,
        update: &'a TenantUpdate,
    ) -> BoxFuture<'a, Result<TenantEntry, SyncError>>;
    /// Starts an admin consent for one of the connection's tenants: the URL to send an
    /// administrator of that tenant to (the identity platform's admin-consent page for the
    /// connection's multi-tenant app). `redirect_uri` must be registered on the app; the
    /// `state` in the URL is unguessable and bound to the connection and the tenant (see
    /// [`crate::consent`]).
    fn begin_consent<'a>(
        &'a self,
        store: &'a Store,
        connection: &'a Connection,
        tenant_id: &'a str,
        redirect_uri: &'a str,
        clock: &'a SharedClock,
    ) -> BoxFuture<'a, Result<String, SyncError>>;
    /// Finishes an admin consent from the whole redirect (`…?admin_consent=True&tenant=…&state=…`
    /// or `…?error=…&error_description=…&state=…`): records the grant on the tenant, or says why
    /// it was refused and what to do. A redirect for another tenant than the one asked for, or
    /// whose state is not pending here, is refused.
    fn complete_consent<'a>(
        &'a self,
        store: &'a Store,
        connection: &'a Connection,
        redirect: &'a str,
        clock: &'a SharedClock,
    ) -> BoxFuture<'a, Result<TenantEntry, SyncError>>;
    /// The guide's "generate mappings": every tenant assigned to a desk customer gets that
    /// customer's catch-all site mapping if it has none. Returns how many were added.
    fn generate_mappings<'a>(
        &'a self,
        store: &'a Store,
        connection: &'a Connection,
    ) -> BoxFuture<'a, Result<usize, SyncError>>;
}

/// A new connection, as asked for: the parts every kind has, and the kind's validated settings.
#[derive(Debug, Clone)]
pub struct NewConnection {
    pub name: String,
    /// The desk customer to import into (found by name, or created with its main site), where
    /// the kind imports into one customer; `None` lets the kind choose (the connection's name,
    /// for a one-tenant connection).
    pub customer: Option<String>,
    /// The instances that run it (`production`, `test`, or both comma separated; checked).
    pub enabled_instances: String,
    pub settings: SettingValues,
}

/// How to reset a connection's cursors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorReset {
    /// Forget them: the next run reads everything.
    Clear,
    /// Take cursors that start from now: the next run sees only changes made from here on,
    /// without reading everything first.
    Latest,
}

/// A connection's cursors described by its connector.
#[derive(Debug, Clone, Default)]
pub struct CursorReport {
    /// For people: (what, value) lines, in order.
    pub lines: Vec<(String, String)>,
    /// For scripts (`--json`, the API).
    pub json: serde_json::Value,
}

/// Interactive sign-in: an administrator signs in with Microsoft in a browser and the connector
/// keeps what comes back (a refresh token, sealed). The `state` a connector puts in its sign-in
/// URL starts with the connection's id and a dot (`"42.…"`), so whichever process receives the
/// redirect finds the connection, and through its kind the connector ([`sign_in_connection`]).
pub trait SignIn: Send + Sync {
    /// Whether this connection is one that signs in (a connection of the kind may instead use
    /// application permissions) and whether it has been signed in: `None` when it does not sign
    /// in.
    fn authorised<'a>(
        &'a self,
        store: &'a Store,
        connection: &'a Connection,
    ) -> BoxFuture<'a, Result<Option<bool>, SyncError>>;
    /// Starts a sign-in: the URL to send the administrator's browser to. `redirect_uri` must be
    /// registered on the app.
    fn begin<'a>(
        &'a self,
        store: &'a Store,
        connection: &'a Connection,
        redirect_uri: &'a str,
        clock: &'a SharedClock,
    ) -> BoxFuture<'a, Result<String, SyncError>>;
    /// The loopback redirect URI a native sign-in (the CLI's) should come back to, when the
    /// connection names one registered on its app (Dynamics 365: its callback URL, as data
    /// platforms register `http://localhost:33333`); `None`: any loopback port on `/callback`.
    fn native_redirect(&self, _connection: &Connection) -> Option<String> {
        None
    }
    /// Finishes a sign-in from the whole redirect (`…?code=…&state=…` or `…?error=…`).
    fn complete<'a>(
        &'a self,
        store: &'a Store,
        connection: &'a Connection,
        redirect: &'a str,
        clock: &'a SharedClock,
    ) -> BoxFuture<'a, Result<(), SyncError>>;
}

/// The connection a sign-in redirect belongs to, from its `state` (see [`SignIn`]).
pub fn sign_in_connection(redirect: &str) -> Result<ConnectionId, SyncError> {
    let url = url::Url::parse(redirect)
        .or_else(|_| url::Url::parse("http://localhost/").and_then(|base| base.join(redirect)))
        .map_err(|e| SyncError::Credential(format!("the sign-in redirect is not a URL: {e}")))?;
    url.query_pairs()
        .find(|(k, _)| k == "state")
        .and_then(|(_, state)| state.split_once('.').and_then(|(id, _)| id.parse().ok()))
        .map(ConnectionId)
        .ok_or_else(|| {
            SyncError::Credential(
                "this sign-in was not started here or has already been used: start the authorisation again"
                    .into(),
            )
        })
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
    /// The device properties an asset mapping may read; empty when the connector reads no
    /// devices.
    fn device_properties(&self) -> crate::desk::SourceProperties {
        crate::desk::SourceProperties::new()
    }
    /// The partitions the connection reads.
    fn partitions(&self) -> Vec<Partition>;
    /// Brings what the connection reads up to date before a run takes its mappings and
    /// partitions (CSP: discovers the partner's customer tenants, so a tenant found now is
    /// imported by this run, not the next). The default does nothing.
    ///
    /// An `Err` is not the run's failure: the pipeline goes on with the connection as opened,
    /// and the read, which meets the same cause, records it against the run.
    fn prepare<'a>(&'a mut self, _cx: &'a SourceContext) -> BoxFuture<'a, Result<(), SyncError>> {
        Box::pin(async { Ok(()) })
    }
    /// Learns what the source's records carry that `mapping` reads, before it is validated
    /// against [`SourceConnection::source_properties`] (Dynamics 365: the types of the contact
    /// columns a field mapping names beyond the usual ones, from the organisation's metadata).
    /// Called before mappings are saved and before a run validates them; a source that knows its
    /// properties up front learns nothing (the default).
    fn describe<'a>(
        &'a mut self,
        _cx: &'a SourceContext,
        _mapping: &'a deskbridge_mapping::MappingConfig,
    ) -> BoxFuture<'a, Result<(), SyncError>> {
        Box::pin(async { Ok(()) })
    }
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
    /// Reads the group named `name` (its address, and its people in the source's order) to add
    /// as ticket followers. Default: this kind of source has no such groups.
    fn distribution_group<'a>(
        &'a self,
        _cx: &'a SourceContext,
        name: &'a str,
    ) -> BoxFuture<'a, Result<deskbridge_mapping::DistributionGroup, SyncError>> {
        let connection = self.connection().name.clone();
        Box::pin(async move {
            Err(SyncError::Conflict(format!(
                "connection {connection:?} cannot read distribution groups (looking for {name:?}): choose a \
                 Microsoft Entra ID connection"
            )))
        })
    }
}
