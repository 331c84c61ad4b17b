//! One sync of one connection: read, plan, and (unless previewing) apply — the same code up to
//! apply, so what a preview shows is what the sync does.

use std::collections::BTreeSet;
use std::sync::Arc;

use deskbridge_core::{RunId, SharedClock};
use deskbridge_graph::{GraphClient, GraphConfig, MemoryRequestLog, RequestLog, RequestLogEntry};
use deskbridge_mapping::{Change, Counts, MappingConfig, Plan, PlanInput, ValidatedConfig, validate};
use deskbridge_msauth::{
    AppCredentials, AppTokenProvider, Authority, CertificateCredential, ClientCredential, SecretString,
    TokenClient, TokenProvider,
};
use deskbridge_store::{
    Connection, CursorKey, IntegrationError, OutboundEntry, RunCounts, RunStatus, Store, WriteContext,
};
use serde::Serialize;

use crate::connection::{AuthMethod, EntraSettings, SECRET_CERTIFICATE, SECRET_CLIENT_SECRET, secret_ref};
use crate::read::{self, GROUPS_DELTA, TenantData, USERS_DELTA};
use crate::{SyncError, apply_plan, load_entra_connection, load_snapshot};

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
    /// Overrides the Graph client's settings (tests turn retries down).
    pub graph: Option<GraphConfig>,
    /// An administrator approves the connection's held run: the circuit breaker lets this run's
    /// deactivations through (only when the last run was held).
    pub approve_held: bool,
    /// Told when the run starts and of every Graph request (a job's progress and metrics).
    pub observer: Option<Arc<dyn SyncObserver>>,
}

/// Watches a sync as it goes. Calls must be cheap and never block: they are made from the
/// request path. Stopping a sync is done by dropping its future (every committed step is
/// idempotent), not through this trait.
pub trait SyncObserver: Send + Sync + std::fmt::Debug {
    /// The run row was created.
    fn run_started(&self, _run: RunId) {}
    /// One Graph request attempt finished (each page read is one).
    fn request(&self, _entry: &RequestLogEntry) {}
}

/// Passes each request to the run's own log and to the observer.
struct ObservedLog {
    log: Arc<MemoryRequestLog>,
    observer: Arc<dyn SyncObserver>,
}

impl RequestLog for ObservedLog {
    fn record(&self, entry: RequestLogEntry) {
        self.observer.request(&entry);
        self.log.record(entry);
    }
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            plan_only: false,
            full: false,
            instance: "production".into(),
            graph: None,
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
    /// Reading the tenant from Graph, memberships and sign-ins included.
    pub read_seconds: f64,
    /// Loading the desk snapshot and planning.
    pub plan_seconds: f64,
    /// Writing the plan, waiting for the database included.
    pub apply_seconds: f64,
}

/// The token scope of the Graph instance at `graph_url` (national clouds have their own).
pub fn scope_for(graph_url: &str) -> String {
    // National clouds have their own Graph resource; the public cloud's serves everything else.
    match url::Url::parse(graph_url) {
        Ok(u)
            if u.host_str()
                .is_some_and(|h| h.starts_with("graph.") && h != "graph.microsoft.com") =>
        {
            format!("{}://{}/.default", u.scheme(), u.host_str().unwrap_or_default())
        }
        _ => deskbridge_msauth::GRAPH_DEFAULT_SCOPE.to_owned(),
    }
}

/// The client credential sealed for the connection: required for application permissions,
/// optional for delegated ones (a public client has none).
pub(crate) async fn app_credential(
    tx: &mut deskbridge_store::StoreTx,
    connection: &Connection,
    auth: AuthMethod,
) -> Result<Option<ClientCredential>, SyncError> {
    let missing =
        |what: &str| SyncError::Credential(format!("connection {:?} has no {what} stored", connection.name));
    match auth {
        AuthMethod::ClientSecret | AuthMethod::Delegated => {
            let secret = tx
                .get_secret(&secret_ref(connection.id, SECRET_CLIENT_SECRET))
                .await?;
            match secret {
                Some(secret) => Ok(Some(ClientCredential::Secret(SecretString::from(
                    secret.as_str().to_owned(),
                )))),
                None if auth == AuthMethod::Delegated => Ok(None),
                None => Err(missing("client secret")),
            }
        }
        AuthMethod::Certificate => {
            let pem = tx
                .get_secret(&secret_ref(connection.id, SECRET_CERTIFICATE))
                .await?
                .ok_or_else(|| missing("certificate"))?;
            let cert = CertificateCredential::from_pem_bundle(pem.as_bytes())
                .map_err(|e| SyncError::Credential(format!("the stored certificate cannot be used: {e}")))?;
            Ok(Some(ClientCredential::Certificate(Arc::new(cert))))
        }
    }
}

/// The HTTP client deskbridge talks to Microsoft with (its user agent names it); `connection`
/// labels the error.
///
/// One client serves the whole process (clones share its connection pool): building one loads
/// the system's root certificates, milliseconds of CPU that a worker or a sync of hundreds of
/// tenants would otherwise spend per sync.
pub fn http_client(connection: &str) -> Result<reqwest::Client, SyncError> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    let client = reqwest::Client::builder()
        .user_agent(concat!("deskbridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SyncError::BadSettings(connection.to_owned(), e.to_string()))?;
    Ok(CLIENT.get_or_init(|| client).clone())
}

pub(crate) async fn graph_for(
    store: &Store,
    connection: &Connection,
    settings: &EntraSettings,
    clock: &SharedClock,
    options: &SyncOptions,
) -> Result<(deskbridge_graph::GraphTenant, Arc<MemoryRequestLog>), SyncError> {
    graph_for_with(store, connection, settings, clock, options, None).await
}

/// Where the connection's access tokens come from: client credentials for application
/// permissions, the sealed (and rotated) refresh token for delegated ones. The configuration
/// check uses this too, so it tests exactly what a sync will use.
pub async fn token_provider(
    store: &Store,
    connection: &Connection,
    settings: &EntraSettings,
    http: &reqwest::Client,
    clock: &SharedClock,
) -> Result<Arc<dyn TokenProvider>, SyncError> {
    let mut tx = store.read().await?;
    let credential = app_credential(&mut tx, connection, settings.auth).await?;
    tx.commit().await?;
    let authority = Authority::new(&settings.authority_host)
        .map_err(|e| SyncError::BadSettings(connection.name.clone(), e.to_string()))?;
    let token_client = TokenClient::new(http.clone(), authority, clock.clone());
    let app = AppCredentials {
        client_id: settings.client_id.clone(),
        credential,
    };
    Ok(match settings.auth {
        AuthMethod::Delegated => {
            Arc::new(crate::delegated::delegated_provider(store, connection, token_client, app).await?)
        }
        AuthMethod::ClientSecret | AuthMethod::Certificate => {
            Arc::new(AppTokenProvider::new(token_client, app))
        }
    })
}

/// [`graph_for`], taking the app's client from `shared` when given.
async fn graph_for_with(
    store: &Store,
    connection: &Connection,
    settings: &EntraSettings,
    clock: &SharedClock,
    options: &SyncOptions,
    shared: Option<&crate::many::SharedGraph>,
) -> Result<(deskbridge_graph::GraphTenant, Arc<MemoryRequestLog>), SyncError> {
    let http = match shared {
        Some(shared) => shared.http.clone(),
        None => http_client(&connection.name)?,
    };
    let tokens = token_provider(store, connection, settings, &http, clock).await?;
    if let Some(shared) = shared {
        // One Graph client per app registration: the per-app resource-unit budget is shared.
        return shared.tenant(connection, settings, tokens, clock, options);
    }
    let mut config = options
        .graph
        .clone()
        .unwrap_or_default()
        .with_base_url(settings.graph_url.clone());
    config.scope = scope_for(&settings.graph_url);
    let log = Arc::new(MemoryRequestLog::default());
    let sink: Arc<dyn RequestLog> = match &options.observer {
        Some(observer) => Arc::new(ObservedLog {
            log: log.clone(),
            observer: observer.clone(),
        }),
        None => log.clone(),
    };
    let client = GraphClient::with_log(http, config, clock.clone(), sink)
        .map_err(|e| SyncError::BadSettings(connection.name.clone(), e.to_string()))?;
    Ok((client.tenant(&settings.tenant_id, tokens), log))
}

/// Validates mappings against what exists. `groups: None` accepts every group the mappings name
/// (a delta round does not list the tenant's groups).
pub(crate) async fn validated(
    store: &Store,
    mapping: &MappingConfig,
    groups: Option<BTreeSet<String>>,
) -> Result<ValidatedConfig, SyncError> {
    let groups = groups.unwrap_or_else(|| mapping.group_names());
    let mut tx = store.read().await?;
    let catalog = crate::desk::load_catalog_for(&mut tx, groups, mapping).await?;
    tx.commit().await?;
    validate(mapping, &catalog).map_err(|errors| {
        SyncError::InvalidMappings(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}

/// Runs one sync of the connection named `name`.
pub async fn sync(
    store: &Store,
    name: &str,
    options: &SyncOptions,
    clock: &SharedClock,
) -> Result<SyncOutcome, SyncError> {
    sync_with(store, name, options, clock, None).await
}

/// [`sync`], with Graph clients shared between concurrent syncs (see [`crate::sync_many`]).
pub(crate) async fn sync_with(
    store: &Store,
    name: &str,
    options: &SyncOptions,
    clock: &SharedClock,
    shared: Option<&crate::many::SharedGraph>,
) -> Result<SyncOutcome, SyncError> {
    let (connection, settings) = load_entra_connection(store, name).await?;
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
    let lenient = validated(store, &settings.mapping, None).await?;
    let select = read::user_select(&lenient.graph_select());
    let with_groups = lenient.uses_groups();
    let tracking = delta_tracking(&settings, &lenient);
    let (tenant, requests) = graph_for_with(store, &connection, &settings, clock, options, shared).await?;
    let key = |stream: &str| CursorKey {
        connection_id: connection.id,
        tenant_id: settings.tenant_id.clone(),
        stream: stream.into(),
    };

    let held_run = if options.approve_held {
        let mut tx = store.read().await?;
        let last = tx.runs(Some(connection.id), 1).await?.into_iter().next();
        tx.commit().await?;
        match last {
            Some(run) if run.status == RunStatus::Held => Some(run.id),
            _ => {
                return Err(SyncError::BadSettings(
                    name.into(),
                    "there is no held run to approve: the connection's last run was not held".into(),
                ));
            }
        }
    } else {
        None
    };
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
    let mut notes = Vec::new();
    for field in &tracking.untracked {
        notes.push(format!(
            "{} is not tracked by the \"mapped fields only\" delta ({}); used by {}. Its changes arrive \
             with the next change to a tracked field",
            field.property,
            field.reason,
            field.used_by.join(", ")
        ));
    }
    let mut timings = Timings::default();
    let read_started = std::time::Instant::now();
    let mut data = match read_tenant(
        store,
        &tenant,
        &settings,
        &select,
        with_groups,
        &tracking,
        options,
        &key,
        &mut notes,
    )
    .await
    {
        Ok(data) => data,
        Err(e) => {
            save_requests(store, connection.id, run, &requests).await?;
            return fail(store, connection.id, run, &settings.tenant_id, e).await;
        }
    };
    let mut warnings = Vec::new();
    if settings.last_sign_in {
        let mut data_requests = data.requests;
        let unavailable = match read::read_sign_ins(&tenant, &mut data.read.users, &mut data_requests).await {
            Ok(u) => u,
            Err(e) => Some(read::SignInUnavailable {
                code: e.code().to_string(),
                message: e.to_string(),
                remedy: String::new(),
            }),
        };
        data.requests = data_requests;
        if let Some(u) = unavailable {
            warnings.push(IntegrationError {
                tenant_id: Some(settings.tenant_id.clone()),
                entity: Some("user".into()),
                external_id: None,
                code: u.code,
                message: format!("last sign-in dates were not imported: {}", u.message),
                remedy: Some(if u.remedy.is_empty() {
                    "Sign-in activity needs AuditLog.Read.All and a Microsoft Entra ID P1 or P2 tenant."
                        .into()
                } else {
                    u.remedy
                }),
            });
        }
    }
    timings.read_seconds = read_started.elapsed().as_secs_f64();
    // Held until the sync ends (see `SharedGraph::processing`); a closed semaphore never happens.
    let _turn = match shared {
        Some(shared) => shared.processing.clone().acquire_owned().await.ok(),
        None => None,
    };
    let plan_started = std::time::Instant::now();
    let mode = match data.read.mode {
        deskbridge_mapping::ReadMode::Full => "full",
        deskbridge_mapping::ReadMode::Delta => "delta",
    };
    let config = if data.read.mode == deskbridge_mapping::ReadMode::Full {
        validated(store, &settings.mapping, Some(data.groups.clone())).await
    } else {
        Ok(lenient)
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            save_requests(store, connection.id, run, &requests).await?;
            return fail(store, connection.id, run, &settings.tenant_id, e).await;
        }
    };
    let mut tx = store.read().await?;
    let scope = crate::desk::SnapshotScope::of(
        connection.id,
        &settings.tenant_id,
        settings.customer_id,
        &settings.mapping,
    );
    let snapshot = load_snapshot(&mut tx, &scope).await?;
    tx.commit().await?;
    let approved: BTreeSet<String> = if held_run.is_some() {
        [settings.tenant_id.clone()].into_iter().collect()
    } else {
        BTreeSet::new()
    };
    let input = PlanInput {
        connection_id: connection.id,
        tenants: vec![data.read],
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
            requests: data.requests,
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
            requests: data.requests,
            timings,
        });
    }
    let cursors: Vec<(CursorKey, String)> = data
        .cursors
        .iter()
        .map(|(stream, value)| (key(stream), value.clone()))
        .collect();
    let apply_started = std::time::Instant::now();
    let report = apply_plan(store, connection.id, run, &settings.tenant_id, &plan, &cursors).await?;
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
        requests: data.requests,
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

#[allow(clippy::too_many_arguments)]
async fn read_tenant(
    store: &Store,
    tenant: &deskbridge_graph::GraphTenant,
    settings: &EntraSettings,
    select: &str,
    with_groups: bool,
    tracking: &read::DeltaTracking,
    options: &SyncOptions,
    key: &(dyn Fn(&str) -> CursorKey + Sync),
    notes: &mut Vec<String>,
) -> Result<TenantData, SyncError> {
    let mut tx = store.read().await?;
    let users_link = tx.cursor(&key(USERS_DELTA)).await?;
    let groups_link = tx.cursor(&key(GROUPS_DELTA)).await?;
    let tracked = tx.cursor(&key(read::DELTA_TRACKING)).await?;
    let mapped_groups = tx.cursor(&key(read::MAPPED_GROUPS)).await?;
    tx.commit().await?;
    let mapped_names = settings.mapping.group_names();
    // Links taken before the tracking settings were recorded listened to all changes.
    let tracked = tracked.map_or_else(|| read::DeltaTracking::all_changes().fingerprint(), |c| c.value);
    let same_tracking = tracked == tracking.fingerprint();
    if settings.delta && !options.full && !same_tracking && users_link.is_some() {
        notes.push(
            "the sync method or the mappings changed since the delta links were taken; running a full import, \
             which plans every user under the new settings and starts tracking with them"
                .into(),
        );
    }
    if settings.delta
        && !options.full
        && same_tracking
        && let (Some(users), Some(groups)) = (users_link, groups_link)
    {
        match read::read_delta(
            tenant,
            select,
            with_groups,
            settings.customer_id,
            read::DeltaState {
                users_link: &users.value,
                groups_link: &groups.value,
                mapped_groups: mapped_groups.as_ref().map(|c| c.value.as_str()),
            },
            &mapped_names,
        )
        .await
        {
            Ok(data) => return Ok(data),
            Err(e) if e.is_resync_required() => {
                notes.push(format!(
                    "the delta token was refused ({e}); running a full import instead"
                ));
            }
            Err(e) => return Err(crate::error::from_graph(&e)),
        }
    }
    read::read_full(
        tenant,
        select,
        with_groups,
        settings.customer_id,
        tracking,
        &mapped_names,
    )
    .await
}

/// What the connection's delta queries listen to, from its sync method and mappings.
pub fn delta_tracking(settings: &EntraSettings, config: &ValidatedConfig) -> read::DeltaTracking {
    use sha2::Digest as _;
    let mut tracking = match settings.sync_method {
        crate::SyncMethod::AllChanges => read::DeltaTracking::all_changes(),
        crate::SyncMethod::MappedFieldsOnly => {
            read::DeltaTracking::mapped_fields_only(&config.property_uses())
        }
    };
    let mappings = serde_json::to_vec(&settings.mapping).unwrap_or_default();
    tracking.mappings_digest = hex::encode(&sha2::Sha256::digest(&mappings)[..12]);
    tracking
}

/// Stores the run's Graph requests in the outbound log (paths without tokens or cursors).
async fn save_requests(
    store: &Store,
    connection: deskbridge_core::ConnectionId,
    run: Option<RunId>,
    log: &MemoryRequestLog,
) -> Result<(), SyncError> {
    let Some(run) = run else { return Ok(()) }; // a preview writes nothing
    let mut tx = store.begin(WriteContext::for_run(connection, run)).await?;
    for entry in log.entries() {
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
