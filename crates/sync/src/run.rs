//! One sync of one connection: read, plan, and (unless previewing) apply — the same code up to
//! apply, so what a preview shows is what the sync does.

use std::collections::BTreeSet;
use std::sync::Arc;

use std::time::Instant;

use deskbridge_core::{ErrorCode, RunId, SharedClock};
use deskbridge_mapping::{Change, Counts, ReadMode, RunPlanner};
use deskbridge_source::desk::validated_with_devices;
use deskbridge_source::{
    FanOut, MemoryRequests, ReadEvent, ReadRequest, RequestRecord, RequestSink, SourceConnection,
    SourceContext, SourceRegistry, StoredCursors, SyncEntity,
};
use deskbridge_store::{
    Connection, IntegrationError, OutboundEntry, RunCounts, RunStatus, Store, WriteContext,
};
use futures::StreamExt as _;
use serde::Serialize;

use crate::SyncError;
use crate::assets::AssetRun;
use crate::steps::{StepContext, StepPlanner, Steps};

/// How to run.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// What to import: the directory (users and agents) or managed devices as assets.
    pub entity: SyncEntity,
    /// Import only this partition (a customer tenant of the connection); `None`: all of them.
    pub tenant: Option<String>,
    /// Preview: read and plan, write nothing.
    pub plan_only: bool,
    /// Ignore delta cursors and read everything.
    pub full: bool,
    /// What this deskbridge instance is ("production" or "test"); a connection runs only where
    /// it is enabled.
    pub instance: String,
    /// An administrator approves the connection's held run: the circuit breaker lets this run's
    /// deactivations, moves and field changes through (only when the last run was held).
    pub approve_held: bool,
    /// Told when the run starts and of every upstream request (a job's progress and metrics).
    pub observer: Option<Arc<dyn SyncObserver>>,
    /// A custom-table run of this table mapping alone (its desk table's name); `None`: every one.
    pub table: Option<String>,
    /// Which connections read which tenants, taken once for a run of many connections (so each
    /// sync does not read every connection again); `None`: this sync reads them itself.
    pub tenant_readers: Option<Arc<deskbridge_source::TenantReaders>>,
}

/// Watches a sync as it goes. Calls must be cheap and never block: they are made from the
/// request path. Stopping a sync is done by dropping its future (every committed step is
/// idempotent), not through this trait.
pub trait SyncObserver: Send + Sync + std::fmt::Debug {
    /// The run row was created.
    fn run_started(&self, _run: RunId) {}
    /// One upstream request attempt finished (each page read is one).
    fn request(&self, _request: &RequestRecord) {}
    /// The run's progress changed (a stage began, a page was read, planned or applied, a
    /// request was made).
    fn progress(&self, _progress: &crate::RunProgress) {}
}

/// Passes each request to the observer.
struct Observed(Arc<dyn SyncObserver>);

impl RequestSink for Observed {
    fn record(&self, request: RequestRecord) {
        self.0.request(&request);
    }
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            entity: SyncEntity::Directory,
            tenant: None,
            plan_only: false,
            full: false,
            instance: "production".into(),
            approve_held: false,
            observer: None,
            table: None,
            tenant_readers: None,
        }
    }
}

/// The counts of the CLI's `--json` contract.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutcomeCounts {
    pub created: i64,
    pub updated: i64,
    pub deactivated: i64,
    pub unchanged: i64,
    pub conflicts: i64,
    pub errors: i64,
}

impl From<RunCounts> for OutcomeCounts {
    fn from(c: RunCounts) -> Self {
        Self {
            created: c.created,
            updated: c.updated,
            deactivated: c.deactivated,
            unchanged: c.unchanged,
            conflicts: c.conflicts,
            errors: c.errors,
        }
    }
}

impl From<Counts> for OutcomeCounts {
    fn from(c: Counts) -> Self {
        let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        Self {
            created: n(c.created),
            updated: n(c.updated),
            deactivated: n(c.deactivated),
            unchanged: n(c.unchanged),
            conflicts: n(c.conflicts),
            errors: n(c.errors),
        }
    }
}

/// What a sync did (or, for a preview, would do).
#[derive(Debug, Clone, Serialize)]
pub struct SyncOutcome {
    pub run_id: Option<RunId>,
    pub status: String,
    /// "full" or "delta".
    pub mode: String,
    pub counts: OutcomeCounts,
    /// The plan's changes (a preview lists them all, including users not imported).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<Change>>,
    /// A preview's counts per action and per skip reason, and what a delta preview covers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<crate::PreviewSummary>,
    pub errors: Vec<IntegrationError>,
    /// Changes a field or record lock kept from being made, with the lock.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locked: Vec<deskbridge_mapping::LockedChange>,
    /// Why the run was held for approval, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    pub notes: Vec<String>,
    pub requests: u64,
    /// Where the sync's time went.
    pub timings: Timings,
}

impl SyncOutcome {
    /// Keeps a preview's changes whose action is one of `actions` (all of them when empty); the
    /// counts and the summary still describe every change.
    pub fn retain_actions(&mut self, actions: &[deskbridge_mapping::Action]) {
        if let Some(changes) = &mut self.changes
            && !actions.is_empty()
        {
            changes.retain(|c| actions.contains(&c.action));
        }
    }
}

/// Seconds a sync spent in each stage (wall clock; stages of concurrent syncs overlap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Timings {
    /// Reading the source, memberships and sign-ins included.
    pub read_seconds: f64,
    /// Loading the desk snapshot and planning.
    pub plan_seconds: f64,
    /// Writing the plan, waiting for the database included.
    pub apply_seconds: f64,
}

/// Runs one sync of the connection named `name`, reading it through its source in `sources`.
pub async fn sync(
    store: &Store,
    sources: &SourceRegistry,
    name: &str,
    options: &SyncOptions,
    clock: &SharedClock,
) -> Result<SyncOutcome, SyncError> {
    sync_with(store, sources, name, options, clock, None).await
}

/// A stored connection by name.
pub async fn load_connection(store: &Store, name: &str) -> Result<Connection, SyncError> {
    let mut tx = store.read().await?;
    let connection = tx
        .connection_by_name(name)
        .await?
        .ok_or_else(|| SyncError::UnknownConnection(name.into()))?;
    tx.commit().await?;
    Ok(connection)
}

/// Refuses a sync of a switched-off connection with its reason, before the source is reached.
async fn refuse_disabled(store: &Store, name: &str) -> Result<(), SyncError> {
    let connection = load_connection(store, name).await?;
    let mut tx = store.read().await?;
    let disabled = tx.connection_disabled(connection.id).await?;
    tx.commit().await?;
    match disabled {
        Some(reason) => Err(SyncError::Disabled {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A connection's source, opened: its settings parsed and validated.
pub async fn open_connection(
    store: &Store,
    sources: &SourceRegistry,
    name: &str,
) -> Result<Box<dyn SourceConnection>, SyncError> {
    let connection = load_connection(store, name).await?;
    sources.source_of(&connection)?.open(&connection)
}

/// Events a run's read may fetch ahead of the steps: two pages in memory at most beside the one
/// being planned, enough to keep a page request in flight while the steps work.
const READ_AHEAD: usize = 2;

/// The run an administrator approves with this sync, when asked to: the connection's last run,
/// which must have been held.
async fn held_run_to_approve(
    store: &Store,
    connection: &Connection,
    options: &SyncOptions,
) -> Result<Option<RunId>, SyncError> {
    if !options.approve_held {
        return Ok(None);
    }
    // The last run of the same entity: an asset run never approves a held directory run.
    let mut tx = store.read().await?;
    let last = tx
        .runs(Some(connection.id), 50)
        .await?
        .into_iter()
        .find(|run| entity_of_run_kind(&run.kind) == options.entity);
    tx.commit().await?;
    match last {
        Some(run) if run.status == RunStatus::Held => Ok(Some(run.id)),
        _ => Err(SyncError::BadSettings(
            connection.name.clone(),
            format!(
                "there is no held run to approve: the connection's last {} run was not held",
                options.entity
            ),
        )),
    }
}

/// The connection's stored cursors.
async fn stored_cursors(store: &Store, connection: &Connection) -> Result<StoredCursors, SyncError> {
    let mut tx = store.read().await?;
    let rows = tx.cursors_of(connection.id).await?;
    tx.commit().await?;
    let mut cursors = StoredCursors::default();
    for (tenant, stream, value) in rows {
        cursors.insert(&tenant, &stream, value);
    }
    Ok(cursors)
}

/// [`sync`], taking turns at planning and applying from `turns` when given (see
/// [`crate::sync_many`]).
pub(crate) async fn sync_with(
    store: &Store,
    sources: &SourceRegistry,
    name: &str,
    options: &SyncOptions,
    clock: &SharedClock,
    turns: Option<&Arc<tokio::sync::Semaphore>>,
) -> Result<SyncOutcome, SyncError> {
    refuse_disabled(store, name).await?;
    let mut source = open_connection(store, sources, name).await?;
    let requests = Arc::new(MemoryRequests::default());
    let progress = Arc::new(crate::progress::ProgressTracker::new(
        name,
        options.observer.clone(),
    ));
    let mut sinks: Vec<Arc<dyn RequestSink>> = vec![requests.clone(), progress.clone()];
    if let Some(observer) = &options.observer {
        sinks.push(Arc::new(Observed(observer.clone())));
    }
    let cx = SourceContext {
        store: store.clone(),
        clock: clock.clone(),
        requests: Arc::new(FanOut(sinks)),
    };
    // What the connection reads is brought up to date before its mappings and partitions are
    // taken (a CSP tenant found now is imported now). A failure here is met again by the read,
    // which records it against the run.
    if let Err(e) = source.prepare(&cx).await {
        // Debug, not warn: the read meets the same failure and the run says it, once.
        tracing::debug!(connection = name, error = %e, "the connection could not be brought up to date before the run");
    }
    let connection = source.connection().clone();
    if !connection
        .enabled_instances
        .split(',')
        .any(|i| i.trim() == options.instance)
    {
        return Err(SyncError::BadSettings(
            name.into(),
            format!(
                "the connection is enabled for {} instances only, and this is a {} instance",
                connection.enabled_instances, options.instance
            ),
        ));
    }
    // The columns the mappings read beyond the usual ones are learnt now (typed from the source's
    // metadata), so that the mappings are validated against what the source really carries.
    let current = source.mapping().clone();
    source.describe(&cx, &current).await?;
    let mapping = source.mapping();
    let every_partition = source.partitions();
    let mut partitions = every_partition.clone();
    if let Some(only) = &options.tenant {
        partitions.retain(|p| p.tenant_id.eq_ignore_ascii_case(only));
        if partitions.is_empty() {
            return Err(SyncError::BadSettings(
                name.into(),
                format!(
                    "the connection has no tenant {only}; its tenants are {}",
                    tenant_list(&*source)
                ),
            ));
        }
    }
    let first_tenant = partitions
        .first()
        .map(|p| p.tenant_id.clone())
        .unwrap_or_default();
    let properties = source.source_properties();
    // Every source has a directory run (its people); the other entities only where it says so.
    if options.entity != SyncEntity::Directory
        && !source_entities(sources, &connection).contains(&options.entity.as_str())
    {
        return Err(SyncError::BadSettings(
            name.into(),
            format!(
                "a {} connection does not import {}",
                connection.kind,
                match options.entity {
                    SyncEntity::Assets => "managed devices",
                    SyncEntity::Consumption => "consumption (usage)",
                    SyncEntity::CustomTables => "custom tables",
                    SyncEntity::Customers => "customers",
                    SyncEntity::Licences | SyncEntity::Directory => {
                        "licences on their own (its directory runs import them)"
                    }
                }
            ),
        ));
    }
    if options.entity == SyncEntity::Assets && mapping.assets.is_none() {
        return Err(SyncError::BadSettings(
            name.into(),
            "asset import is not set up: turn it on and choose the asset type, user matching and statuses in \
             the connection's mappings (Assets)"
                .into(),
        ));
    }
    let one_table;
    let mapping = match &options.table {
        None => mapping,
        Some(table) => {
            one_table = only_table(mapping, options.entity, table)
                .map_err(|e| SyncError::BadSettings(name.into(), e))?;
            &one_table
        }
    };
    if options.entity == SyncEntity::CustomTables && mapping.custom_tables.is_empty() {
        return Err(SyncError::BadSettings(
            name.into(),
            "no custom table syncs are set up: add table mappings (custom_tables) to the connection's mappings".into(),
        ));
    }
    if options.entity == SyncEntity::Customers && mapping.customers.is_none() {
        return Err(SyncError::BadSettings(
            name.into(),
            "customer import is not set up: add customer mappings (customers: the name column, and optionally a \
             filter, custom fields and matching by name) to the connection's mappings"
                .into(),
        ));
    }
    let devices = match options.entity {
        SyncEntity::Assets => source.device_properties(),
        SyncEntity::Directory
        | SyncEntity::Licences
        | SyncEntity::Consumption
        | SyncEntity::CustomTables
        | SyncEntity::Customers => Default::default(),
    };
    let config = validated_with_devices(store, mapping, None, &properties, &devices).await?;
    // Re-checked here: a mapping changed in the database behind our back moves nobody to another
    // customer's sites.
    // Every customer of the connection, also in a run of one tenant: the mappings are checked
    // against what the connection may import into, not against this run's tenant alone.
    let customers = every_partition.iter().map(|p| p.customer_id).collect();
    let mut tx = store.read().await?;
    let targets = deskbridge_source::desk::check_target_customers(&mut tx, mapping, &customers).await;
    let tables = match options.entity {
        SyncEntity::CustomTables => deskbridge_source::desk::check_custom_tables(&mut tx, mapping).await,
        _ => Ok(()),
    };
    tx.commit().await?;
    targets?;
    tables?;
    // A tenant is read by one connection, the one that read it first: a second would import the
    // same people again or take the first one's records for its own.
    let taken = match &options.tenant_readers {
        Some(readers) => readers.read_before(sources, &connection),
        None => sources.tenants_read_before(store, &connection).await?,
    };
    let read_elsewhere =
        |p: &deskbridge_source::Partition| taken.contains_key(&p.tenant_id.to_ascii_lowercase());
    if !partitions.is_empty() && partitions.iter().all(read_elsewhere) {
        let (tenant, other) = taken
            .iter()
            .next()
            .map_or(("", ""), |(t, o)| (t.as_str(), o.as_str()));
        return Err(SyncError::Conflict(format!(
            "tenant {tenant} is already read by connection {other:?}: a tenant is read by one connection, so that \
             no one is imported twice; remove one of the two connections (or, for a CSP connection, set the \
             tenant to \"do not import\")"
        )));
    }
    let skip: BTreeSet<String> = taken.keys().cloned().collect();
    let held_run = held_run_to_approve(store, &connection, options).await?;
    let run = start_run(store, &connection, options).await?;
    // The run's heartbeat, for as long as this future lives (see `crate::liveness`).
    let _heartbeat = run.map(|run| crate::liveness::RunHeartbeat::start(store, run));
    // An approved run lets the held tenants' changes through.
    let approved: BTreeSet<String> = match held_run {
        Some(_) => partitions.iter().map(|p| p.tenant_id.clone()).collect(),
        None => BTreeSet::new(),
    };
    let planner = match options.entity {
        // Licences and consumption runs plan their partitions' reference lists with the
        // directory's planner; they read no user, so they deactivate nobody.
        SyncEntity::Directory | SyncEntity::Licences | SyncEntity::Consumption => StepPlanner::Directory(
            Box::new(RunPlanner::new(&config, connection.id, approved, clock.now())),
        ),
        SyncEntity::Assets => {
            let planner = deskbridge_mapping::AssetPlanner::new(&config, connection.id, clock.now())
                .map_err(|e| SyncError::BadSettings(name.into(), e))?;
            StepPlanner::Assets(Box::new(AssetRun::new(planner, connection.id, mapping, approved)))
        }
        SyncEntity::CustomTables => StepPlanner::Rows(Box::new(crate::rows::RowRun::new(
            deskbridge_mapping::RowPlanner::new(&mapping.custom_tables),
            connection.id,
            mapping.circuit_breaker.clone(),
            approved,
        ))),
        SyncEntity::Customers => {
            let customers = mapping.customers.clone().unwrap_or_default();
            let fields = deskbridge_source::desk::customer_custom_fields(store).await?;
            let planner = deskbridge_mapping::CustomerPlanner::new(&customers, &fields, connection.id)
                .map_err(|problems| SyncError::InvalidMappings(problems.join("; ")))?;
            StepPlanner::Customers(Box::new(crate::customers::CustomerRun::new(
                planner,
                mapping.circuit_breaker.clone(),
                approved,
            )))
        }
    };
    let mut steps = Steps::new(
        StepContext {
            store,
            connection: &connection,
            mapping,
            properties: &properties,
            default_customer: partitions.first().map(|p| p.customer_id),
            run,
            turns,
            progress: &progress,
        },
        planner,
    );
    steps.notes = source.read_notes(&config);
    for (tenant, other) in &taken {
        steps.take(ReadEvent::Warning(IntegrationError {
            tenant_id: Some(tenant.clone()),
            entity: Some("tenant".into()),
            external_id: Some(tenant.clone()),
            code: ErrorCode::Conflict.as_str().into(),
            message: format!("tenant {tenant} was not read: connection {other:?} already reads it"),
            remedy: Some(
                "A tenant is read by one connection. Set it to \"do not import\" on this connection's Tenants tab, \
                 or remove the other connection."
                    .into(),
            ),
        }))
        .await?;
    }
    let cursors = stored_cursors(store, &connection).await?;
    let request = ReadRequest {
        entity: options.entity,
        tenant: options.tenant.as_deref(),
        skip: &skip,
        full: options.full,
        config: &config,
        cursors: &cursors,
    };
    let started = Instant::now();
    // The mode the source said it reads in, for a run that fails before a partition begins.
    let mut announced = None;
    let mut failure = {
        // Read ahead: the source fetches its next pages while this one is planned and applied,
        // so Microsoft's latency overlaps our work. The events keep their order; when the steps
        // stop (a failure), the read is dropped with whatever it had fetched ahead.
        let mut events = source.read(&cx, request);
        let (ahead, mut fetched) = tokio::sync::mpsc::channel(READ_AHEAD);
        let reading = async move {
            while let Some(event) = events.next().await {
                if ahead.send(event).await.is_err() {
                    break;
                }
            }
        };
        let taking = async {
            while let Some(event) = fetched.recv().await {
                let taken = match event {
                    Ok(ReadEvent::Mode(mode)) => {
                        announced = Some(mode);
                        Ok(())
                    }
                    Ok(event) => steps.take(event).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = taken {
                    return Some(e);
                }
            }
            None
        };
        let mut reading = std::pin::pin!(reading);
        let mut taking = std::pin::pin!(taking);
        tokio::select! {
            failure = &mut taking => failure,
            () = &mut reading => taking.await,
        }
    };
    if failure.is_none()
        && let Some(tenant) = steps.open_partition()
    {
        failure = Some(SyncError::Internal(format!(
            "the source's read stopped inside tenant {tenant}"
        )));
    }
    let timings = &mut steps.timings;
    timings.read_seconds =
        (started.elapsed().as_secs_f64() - timings.plan_seconds - timings.apply_seconds).max(0.0);
    let made = save_requests(store, connection.id, run, &requests).await?;
    let mode = match steps.mode.or(announced) {
        Some(ReadMode::Full) => "full",
        Some(ReadMode::Delta) => "delta",
        None => "none",
    };
    if let Some(e) = failure {
        // A read that broke off never ended its partition, whose requests the steps count: the
        // requests the run made up to the failure are those the source recorded.
        let made = made.max(steps.requests);
        let outcome = fail(store, connection.id, run, &first_tenant, (mode, made), e).await?;
        // The failure first, then what the steps recorded before it.
        let mut errors = outcome.errors;
        errors.extend(steps.errors);
        errors.extend(steps.apply_errors);
        return Ok(SyncOutcome {
            errors,
            notes: steps.notes,
            ..outcome
        });
    }
    let Some(run) = run else {
        let (mut changes, counts) = match steps.preview.take() {
            Some(mut plan) => {
                let mut changes = std::mem::take(&mut plan.changes);
                changes.extend(std::mem::take(&mut plan.held).into_iter().flat_map(|h| h.changes));
                crate::preview::name_changes(store, &plan, &mut changes).await?;
                (changes, plan.counts.into())
            }
            None => (Vec::new(), OutcomeCounts::default()),
        };
        changes.sort_by(|a, b| (a.entity, &a.external_id).cmp(&(b.entity, &b.external_id)));
        let summary =
            crate::preview::summarise(store, connection.id, mode, &changes, steps.errors.len()).await?;
        return Ok(SyncOutcome {
            run_id: None,
            status: if steps.held.is_some() {
                "held".into()
            } else {
                "planned".into()
            },
            mode: mode.into(),
            counts,
            changes: Some(changes),
            summary: Some(summary),
            locked: steps.locked,
            errors: steps.errors,
            held: steps.held,
            notes: steps.notes,
            requests: steps.requests,
            timings: steps.timings,
        });
    };
    let mut tx = store.begin(WriteContext::for_run(connection.id, run)).await?;
    let status = if steps.held.is_some() {
        RunStatus::Held
    } else if steps.errors.is_empty() && steps.apply_errors.is_empty() {
        RunStatus::Succeeded
    } else {
        RunStatus::Partial
    };
    progress.update(|p| p.stage = crate::Stage::Done);
    tx.set_run_progress(run, &progress.json()?).await?;
    tx.finish_run(run, status, steps.held.as_deref()).await?;
    if let (Some(held), None) = (held_run, &steps.held) {
        let note = format!("approved; applied by run {run}");
        tx.finish_run(held, RunStatus::Cancelled, Some(&note)).await?;
    }
    let final_run = tx.run(run).await?;
    tx.commit().await?;
    let mut errors = steps.errors;
    errors.extend(steps.apply_errors);
    Ok(SyncOutcome {
        run_id: Some(run),
        status: status.as_str().into(),
        mode: mode.into(),
        counts: final_run.map(|r| r.counts.into()).unwrap_or_default(),
        changes: None,
        summary: None,
        locked: steps.locked,
        errors,
        held: steps.held,
        notes: steps.notes,
        requests: steps.requests,
        timings: steps.timings,
    })
}

/// Starts the run's row (a preview has none) and tells the observer.
async fn start_run(
    store: &Store,
    connection: &Connection,
    options: &SyncOptions,
) -> Result<Option<RunId>, SyncError> {
    if options.plan_only {
        return Ok(None);
    }
    let mut tx = store.begin(WriteContext::manual()).await?;
    // A run of this connection whose process died ends here, before the new one starts.
    crate::liveness::close_stale_in(&mut tx, Some(connection.id)).await?;
    let run = tx
        .start_run(Some(connection.id), run_kind(options.entity, options.full))
        .await?;
    tx.commit().await?;
    if let Some(observer) = &options.observer {
        observer.run_started(run);
    }
    Ok(Some(run))
}

/// The kind a run is stored with: `sync` or `full` for the directory, `assets` for devices.
fn run_kind(entity: SyncEntity, full: bool) -> &'static str {
    match (entity, full) {
        (SyncEntity::Assets, _) => "assets",
        (SyncEntity::Licences, _) => "licences",
        (SyncEntity::Consumption, _) => "consumption",
        (SyncEntity::CustomTables, _) => "custom_tables",
        (SyncEntity::Customers, _) => "customers",
        (SyncEntity::Directory, true) => "full",
        (SyncEntity::Directory, false) => "sync",
    }
}

/// The entity a run of this kind was of: asset and licence runs are stored under their entity's
/// name; every other kind (`sync`, `full`) is a directory run.
pub fn entity_of_run_kind(kind: &str) -> SyncEntity {
    match SyncEntity::parse(kind) {
        Some(entity) if entity != SyncEntity::Directory => entity,
        _ => SyncEntity::Directory,
    }
}

/// The mappings with one custom table mapping, the one filling desk table `table`.
fn only_table(
    mapping: &deskbridge_mapping::MappingConfig,
    entity: SyncEntity,
    table: &str,
) -> Result<deskbridge_mapping::MappingConfig, String> {
    if entity != SyncEntity::CustomTables {
        return Err(format!(
            "a table ({table}) is named only in a custom_tables run, not a {entity} run"
        ));
    }
    let mut one = mapping.clone();
    one.custom_tables.retain(|t| t.desk_table == table);
    if one.custom_tables.is_empty() {
        let mapped: Vec<&str> = mapping
            .custom_tables
            .iter()
            .map(|t| t.desk_table.as_str())
            .collect();
        return Err(format!(
            "no custom table mapping fills desk table {table:?}; the mapped desk tables are: {}",
            if mapped.is_empty() {
                "none".to_owned()
            } else {
                mapped.join(", ")
            }
        ));
    }
    Ok(one)
}

/// The connection's tenants, for a message.
fn tenant_list(source: &dyn SourceConnection) -> String {
    let tenants: Vec<String> = source.partitions().into_iter().map(|p| p.tenant_id).collect();
    if tenants.is_empty() {
        "none yet".into()
    } else {
        tenants.join(", ")
    }
}

/// The entities the connection's kind imports.
fn source_entities(sources: &SourceRegistry, connection: &Connection) -> &'static [&'static str] {
    sources
        .get(&connection.kind)
        .map_or(&[], |source| source.entities())
}

/// Stores the run's upstream requests in the outbound log (paths without tokens or cursors), and
/// says how many there were.
async fn save_requests(
    store: &Store,
    connection: deskbridge_core::ConnectionId,
    run: Option<RunId>,
    log: &MemoryRequests,
) -> Result<u64, SyncError> {
    let entries = log.take();
    let made = u64::try_from(entries.len()).unwrap_or(u64::MAX);
    let Some(run) = run else { return Ok(made) }; // a preview writes nothing
    if entries.is_empty() {
        return Ok(made);
    }
    let mut tx = store.begin(WriteContext::for_run(connection, run)).await?;
    for entry in entries {
        tx.log_outbound(&OutboundEntry {
            tenant_id: Some(entry.tenant.clone()),
            method: entry.method.clone(),
            url: entry.path.clone(),
            status: entry.status,
            duration_ms: i64::try_from(entry.duration.as_millis()).ok(),
            request_id: entry.request_id.clone(),
            response_body: entry.error.clone(),
            ..OutboundEntry::default()
        })
        .await?;
    }
    tx.commit().await?;
    Ok(made)
}

/// Records a failure against the run (when there is one) and reports it, with the mode the run
/// was in and the requests it made up to the failure (in the run's progress, too).
async fn fail(
    store: &Store,
    connection: deskbridge_core::ConnectionId,
    run: Option<RunId>,
    tenant: &str,
    (mode, requests): (&str, u64),
    e: SyncError,
) -> Result<SyncOutcome, SyncError> {
    let Some(run) = run else { return Err(e) };
    let error = IntegrationError {
        tenant_id: Some(tenant.to_owned()),
        entity: None,
        external_id: None,
        // Microsoft's code when Microsoft failed (what its documentation knows), else ours.
        code: e.code(),
        message: e.to_string(),
        remedy: e.remedy(),
    };
    let mut tx = store.begin(WriteContext::for_run(connection, run)).await?;
    tx.record_error(&error).await?;
    tx.add_run_counts(
        run,
        &RunCounts {
            errors: 1,
            ..RunCounts::default()
        },
    )
    .await?;
    tx.set_run_progress(
        run,
        &serde_json::json!({"stage": "failed", "mode": mode, "requests": requests}),
    )
    .await?;
    tx.finish_run(run, RunStatus::Failed, Some(&e.to_string()))
        .await?;
    // What the steps before the failure applied stays, and is counted.
    let counts = tx
        .run(run)
        .await?
        .map(|r| r.counts.into())
        .unwrap_or(OutcomeCounts {
            errors: 1,
            ..OutcomeCounts::default()
        });
    tx.commit().await?;
    Ok(SyncOutcome {
        run_id: Some(run),
        status: RunStatus::Failed.as_str().into(),
        mode: mode.into(),
        counts,
        changes: None,
        summary: None,
        locked: Vec::new(),
        errors: vec![error],
        held: None,
        notes: Vec::new(),
        requests,
        timings: Timings::default(),
    })
}
