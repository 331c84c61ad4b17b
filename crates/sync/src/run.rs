//! One sync of one connection: read, plan, and (unless previewing) apply — the same code up to
//! apply, so what a preview shows is what the sync does.

use std::collections::BTreeSet;
use std::sync::Arc;

use deskbridge_core::{RunId, SharedClock};
use deskbridge_mapping::{Change, Counts, Plan, PlanInput, ReadMode, TenantRead};
use deskbridge_source::desk::validated;
use deskbridge_source::{
    FanOut, MemoryRequests, ReadEvent, ReadRequest, RequestRecord, RequestSink, SourceConnection,
    SourceContext, SourceRecord, SourceRegistry, StoredCursors,
};
use deskbridge_store::{
    Connection, CursorKey, IntegrationError, OutboundEntry, RunCounts, RunStatus, Store, WriteContext,
};
use serde::Serialize;

use crate::{SyncError, apply_plan, load_snapshot};

/// How to run.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Preview: read and plan, write nothing.
    pub plan_only: bool,
    /// Ignore delta cursors and read everything.
    pub full: bool,
    /// What this deskbridge instance is ("production" or "test"); a connection runs only where
    /// it is enabled.
    pub instance: String,
    /// An administrator approves the connection's held run: the circuit breaker lets this run's
    /// deactivations through (only when the last run was held).
    pub approve_held: bool,
    /// Told when the run starts and of every upstream request (a job's progress and metrics).
    pub observer: Option<Arc<dyn SyncObserver>>,
}

/// Watches a sync as it goes. Calls must be cheap and never block: they are made from the
/// request path. Stopping a sync is done by dropping its future (every committed step is
/// idempotent), not through this trait.
pub trait SyncObserver: Send + Sync + std::fmt::Debug {
    /// The run row was created.
    fn run_started(&self, _run: RunId) {}
    /// One upstream request attempt finished (each page read is one).
    fn request(&self, _request: &RequestRecord) {}
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
            plan_only: false,
            full: false,
            instance: "production".into(),
            approve_held: false,
            observer: None,
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

/// A connection's source, opened: its settings parsed and validated.
pub async fn open_connection(
    store: &Store,
    sources: &SourceRegistry,
    name: &str,
) -> Result<Box<dyn SourceConnection>, SyncError> {
    let connection = load_connection(store, name).await?;
    sources.source_of(&connection)?.open(&connection)
}

/// What a source's read of one connection gave, gathered.
struct Gathered {
    tenants: Vec<TenantRead>,
    /// Every group name of the read partitions, when all were listed (full reads).
    groups: Option<BTreeSet<String>>,
    cursors: Vec<(CursorKey, String)>,
    warnings: Vec<IntegrationError>,
    requests: u64,
}

/// Follows the source's read to its end, gathering its partitions whole.
async fn gather(
    source: &dyn SourceConnection,
    cx: &SourceContext,
    request: ReadRequest<'_>,
    notes: &mut Vec<String>,
) -> Result<Gathered, SyncError> {
    use futures::StreamExt as _;
    let connection = source.connection().id;
    let mut gathered = Gathered {
        tenants: Vec::new(),
        groups: Some(BTreeSet::new()),
        cursors: Vec::new(),
        warnings: Vec::new(),
        requests: 0,
    };
    let mut events = source.read(cx, request);
    let mut open: Option<TenantRead> = None;
    let key = |tenant: &str, stream: String| CursorKey {
        connection_id: connection,
        tenant_id: tenant.to_owned(),
        stream,
    };
    while let Some(event) = events.next().await {
        match event? {
            ReadEvent::Note(note) => notes.push(note),
            ReadEvent::Warning(warning) => gathered.warnings.push(warning),
            ReadEvent::Begin(start) => {
                if let Some(open) = &open {
                    return Err(SyncError::Internal(format!(
                        "the source began tenant {} before ending tenant {}",
                        start.tenant_id, open.tenant_id
                    )));
                }
                match (&mut gathered.groups, start.groups) {
                    (Some(all), Some(groups)) => all.extend(groups),
                    (all, _) => *all = None,
                }
                open = Some(TenantRead {
                    tenant_id: start.tenant_id,
                    customer_id: start.customer_id,
                    mode: start.mode,
                    completeness: deskbridge_mapping::Completeness::Partial,
                    users: Vec::new(),
                    removed: Vec::new(),
                    subscribed_skus: start.subscribed_skus,
                });
            }
            ReadEvent::Page(page) => {
                let tenant = open
                    .as_mut()
                    .filter(|t| t.tenant_id == page.tenant_id)
                    .ok_or_else(|| {
                        SyncError::Internal(format!(
                            "the source sent a page of tenant {} outside that tenant's read",
                            page.tenant_id
                        ))
                    })?;
                for record in page.records {
                    match record {
                        SourceRecord::User(user) => tenant.users.push(user),
                    }
                }
                tenant.removed.extend(page.removed);
                let tenant_id = tenant.tenant_id.clone();
                gathered.cursors.extend(
                    page.cursors
                        .into_iter()
                        .map(|(stream, value)| (key(&tenant_id, stream), value)),
                );
            }
            ReadEvent::End(end) => {
                let mut tenant = open
                    .take()
                    .filter(|t| t.tenant_id == end.tenant_id)
                    .ok_or_else(|| {
                        SyncError::Internal(format!(
                            "the source ended tenant {} without beginning it",
                            end.tenant_id
                        ))
                    })?;
                tenant.completeness = end.completeness;
                gathered.requests += end.requests;
                gathered.cursors.extend(
                    end.cursors
                        .into_iter()
                        .map(|(stream, value)| (key(&end.tenant_id, stream), value)),
                );
                gathered.tenants.push(tenant);
            }
        }
    }
    if let Some(open) = open {
        return Err(SyncError::Internal(format!(
            "the source's read stopped inside tenant {}",
            open.tenant_id
        )));
    }
    Ok(gathered)
}

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
    let mut tx = store.read().await?;
    let last = tx.runs(Some(connection.id), 1).await?.into_iter().next();
    tx.commit().await?;
    match last {
        Some(run) if run.status == RunStatus::Held => Ok(Some(run.id)),
        _ => Err(SyncError::BadSettings(
            connection.name.clone(),
            "there is no held run to approve: the connection's last run was not held".into(),
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
    let source = open_connection(store, sources, name).await?;
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
    let mapping = source.mapping();
    let partitions = source.partitions();
    let first_tenant = partitions
        .first()
        .map(|p| p.tenant_id.clone())
        .unwrap_or_default();
    let properties = source.source_properties();
    let lenient = validated(store, mapping, None, &properties).await?;
    let held_run = held_run_to_approve(store, &connection, options).await?;
    let run = if options.plan_only {
        None
    } else {
        let mut tx = store.begin(WriteContext::manual()).await?;
        let run = tx
            .start_run(Some(connection.id), if options.full { "full" } else { "sync" })
            .await?;
        tx.commit().await?;
        if let Some(observer) = &options.observer {
            observer.run_started(run);
        }
        Some(run)
    };
    let mut notes = source.read_notes(&lenient);
    let requests = Arc::new(MemoryRequests::default());
    let sink: Arc<dyn RequestSink> = match &options.observer {
        Some(observer) => Arc::new(FanOut(vec![
            requests.clone(),
            Arc::new(Observed(observer.clone())),
        ])),
        None => requests.clone(),
    };
    let cx = SourceContext {
        store: store.clone(),
        clock: clock.clone(),
        requests: sink,
    };
    let mut timings = Timings::default();
    let read_started = std::time::Instant::now();
    let cursors = stored_cursors(store, &connection).await?;
    let request = ReadRequest {
        full: options.full,
        config: &lenient,
        cursors: &cursors,
    };
    let gathered = match gather(source.as_ref(), &cx, request, &mut notes).await {
        Ok(gathered) => gathered,
        Err(e) => {
            save_requests(store, connection.id, run, &requests).await?;
            return fail(store, connection.id, run, &first_tenant, e).await;
        }
    };
    timings.read_seconds = read_started.elapsed().as_secs_f64();
    // Held until the sync ends (see `sync_many`); a closed semaphore never happens.
    let _turn = match turns {
        Some(turns) => turns.clone().acquire_owned().await.ok(),
        None => None,
    };
    let plan_started = std::time::Instant::now();
    let Gathered {
        tenants,
        groups,
        cursors,
        warnings,
        requests: request_count,
    } = gathered;
    let (Some(read), true) = (tenants.first(), tenants.len() == 1) else {
        let e = SyncError::Internal(format!(
            "the source read {} tenants for one connection; this pipeline plans exactly one",
            tenants.len()
        ));
        save_requests(store, connection.id, run, &requests).await?;
        return fail(store, connection.id, run, &first_tenant, e).await;
    };
    let tenant_id = read.tenant_id.clone();
    let customer = read
        .customer_id
        .or_else(|| partitions.first().map(|p| p.customer_id));
    let mode = match read.mode {
        ReadMode::Full => "full",
        ReadMode::Delta => "delta",
    };
    let config = if read.mode == ReadMode::Full && groups.is_some() {
        validated(store, mapping, groups, &properties).await
    } else {
        Ok(lenient)
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            save_requests(store, connection.id, run, &requests).await?;
            return fail(store, connection.id, run, &tenant_id, e).await;
        }
    };
    let snapshot = match customer {
        Some(customer) => {
            let scope = crate::desk::SnapshotScope::of(connection.id, &tenant_id, customer, mapping);
            let mut tx = store.read().await?;
            let snapshot = load_snapshot(&mut tx, &scope).await?;
            tx.commit().await?;
            snapshot
        }
        None => deskbridge_mapping::DeskSnapshot::default(),
    };
    let approved: BTreeSet<String> = if held_run.is_some() {
        [tenant_id.clone()].into_iter().collect()
    } else {
        BTreeSet::new()
    };
    let input = PlanInput {
        connection_id: connection.id,
        tenants,
        approved_tenants: approved,
    };
    let plan: Plan = deskbridge_mapping::plan(&config, &input, &snapshot, clock.now());
    timings.plan_seconds = plan_started.elapsed().as_secs_f64();
    // The tenant's read and the desk snapshot are not needed to apply: free them first.
    drop(input);
    drop(snapshot);
    notes.extend(plan.notes.iter().cloned());
    let held = plan.held.first().map(|h| h.reason.clone());
    let Some(run) = run else {
        let mut changes = plan.changes.clone();
        changes.extend(plan.held.iter().flat_map(|h| h.changes.iter().cloned()));
        return Ok(SyncOutcome {
            run_id: None,
            status: if held.is_some() {
                "held".into()
            } else {
                "planned".into()
            },
            mode: mode.into(),
            counts: plan.counts.into(),
            changes: Some(changes),
            locked: plan.locked.clone(),
            errors: plan_errors(&plan),
            held,
            notes,
            requests: request_count,
            timings,
        });
    };
    save_requests(store, connection.id, Some(run), &requests).await?;
    if let Some(reason) = &held {
        let mut tx = store.begin(WriteContext::for_run(connection.id, run)).await?;
        tx.finish_run(run, RunStatus::Held, Some(reason)).await?;
        tx.commit().await?;
        return Ok(SyncOutcome {
            run_id: Some(run),
            status: "held".into(),
            mode: mode.into(),
            counts: OutcomeCounts::default(),
            changes: None,
            locked: plan.locked.clone(),
            errors: Vec::new(),
            held,
            notes,
            requests: request_count,
            timings,
        });
    }
    let apply_started = std::time::Instant::now();
    let report = apply_plan(store, connection.id, run, &tenant_id, &plan, &cursors).await?;
    timings.apply_seconds = apply_started.elapsed().as_secs_f64();
    let mut tx = store.begin(WriteContext::for_run(connection.id, run)).await?;
    for e in plan_errors(&plan).iter().chain(&warnings) {
        tx.record_error(e).await?;
    }
    let plan_error_count = (plan.errors.len() + warnings.len()) as i64;
    tx.add_run_counts(
        run,
        &RunCounts {
            errors: plan_error_count,
            ..RunCounts::default()
        },
    )
    .await?;
    let status = if report.errors.is_empty() && plan.errors.is_empty() && warnings.is_empty() {
        RunStatus::Succeeded
    } else {
        RunStatus::Partial
    };
    tx.finish_run(run, status, None).await?;
    if let Some(held) = held_run {
        let note = format!("approved; applied by run {run}");
        tx.finish_run(held, RunStatus::Cancelled, Some(&note)).await?;
    }
    let final_run = tx.run(run).await?;
    tx.commit().await?;
    let mut errors = plan_errors(&plan);
    errors.extend(warnings);
    errors.extend(report.errors);
    Ok(SyncOutcome {
        run_id: Some(run),
        status: status.as_str().into(),
        mode: mode.into(),
        counts: final_run.map(|r| r.counts.into()).unwrap_or_default(),
        changes: None,
        locked: plan.locked.clone(),
        errors,
        held: None,
        notes,
        requests: request_count,
        timings,
    })
}

fn plan_errors(plan: &Plan) -> Vec<IntegrationError> {
    plan.errors
        .iter()
        .map(|e| IntegrationError {
            tenant_id: Some(e.tenant_id.clone()),
            entity: Some("user".into()),
            external_id: Some(e.external_id.clone()),
            code: "mapping_error".into(),
            message: e.message.clone(),
            remedy: Some("Fix the mapping or the source value named in the message.".into()),
        })
        .collect()
}

/// Stores the run's upstream requests in the outbound log (paths without tokens or cursors).
async fn save_requests(
    store: &Store,
    connection: deskbridge_core::ConnectionId,
    run: Option<RunId>,
    log: &MemoryRequests,
) -> Result<(), SyncError> {
    let Some(run) = run else { return Ok(()) }; // a preview writes nothing
    let entries = log.take();
    if entries.is_empty() {
        return Ok(());
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
    Ok(())
}

/// Records a failure against the run (when there is one) and reports it.
async fn fail(
    store: &Store,
    connection: deskbridge_core::ConnectionId,
    run: Option<RunId>,
    tenant: &str,
    e: SyncError,
) -> Result<SyncOutcome, SyncError> {
    let Some(run) = run else { return Err(e) };
    let error = IntegrationError {
        tenant_id: Some(tenant.to_owned()),
        entity: None,
        external_id: None,
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
    tx.finish_run(run, RunStatus::Failed, Some(&e.to_string()))
        .await?;
    tx.commit().await?;
    Ok(SyncOutcome {
        run_id: Some(run),
        status: RunStatus::Failed.as_str().into(),
        mode: "none".into(),
        counts: OutcomeCounts {
            errors: 1,
            ..OutcomeCounts::default()
        },
        changes: None,
        locked: Vec::new(),
        errors: vec![error],
        held: None,
        notes: Vec::new(),
        requests: 0,
        timings: Timings::default(),
    })
}
