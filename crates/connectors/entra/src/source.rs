//! Entra ID as a [`Source`]: a connection reads one tenant — in full (users with managers and
//! licences, groups and their members, subscribed SKUs), streamed a Graph page at a time, or as a
//! delta round from the stored delta links — and yields it as one partition.

use std::collections::BTreeSet;
use std::sync::Arc;

use deskbridge_graph::{GraphConfig, GraphTenant};
use deskbridge_mapping::{DistributionGroup, MappingConfig, ValidatedConfig};
use deskbridge_source::desk::SourceProperties;
use deskbridge_source::settings::{Setting, SettingValues};
use deskbridge_source::{
    BoxFuture, CheckPoint, CursorReport, CursorReset, Emitter, LicenceWriter, NewConnection, Page, Partition,
    PartitionEnd, PartitionStart, ReadEvent, ReadRequest, SignIn, Source, SourceConnection, SourceContext,
    SourceRecord, StoredCursors, SyncEntity, SyncError, read_stream,
};
use deskbridge_store::{Connection, IntegrationError, Store};
use futures::stream::BoxStream;
use serde_json::{Map, Value};

use crate::ENTRA_KIND;
use crate::client::SharedGraph;
use crate::delta::delta_tracking;
use crate::error::from_graph;
use crate::licences::EntraLicenceWriter;
use crate::read::{self, DeltaTracking, GROUPS_DELTA, TenantData, USERS_DELTA};
use crate::settings::EntraSettings;

/// The properties of Graph's `user`, which field mappings may read.
pub(crate) fn user_properties() -> SourceProperties {
    deskbridge_mapping::Catalog::entra_user_properties()
}

/// Users per page handed to the pipeline.
const PAGE_SIZE: usize = 1_000;

/// Microsoft Entra ID. One per process: its Graph clients are shared by every Entra connection.
pub struct EntraSource {
    graph: Arc<SharedGraph>,
    licences: EntraLicenceWriter,
}

impl Default for EntraSource {
    fn default() -> Self {
        Self::new(GraphConfig::default())
    }
}

impl EntraSource {
    /// A source whose Graph clients use `config` (retries, budgets; the base URL comes from each
    /// connection).
    pub fn new(config: GraphConfig) -> Self {
        let graph = Arc::new(SharedGraph::new(config));
        Self {
            licences: EntraLicenceWriter { graph: graph.clone() },
            graph,
        }
    }
}

impl Source for EntraSource {
    fn kind(&self) -> &'static str {
        ENTRA_KIND
    }

    fn label(&self) -> &'static str {
        "Microsoft Entra ID"
    }

    /// An Entra connection imports the directory as one unit: users, groups, memberships and
    /// licences are read and planned together (memberships drive site and role mapping).
    fn entities(&self) -> &'static [&'static str] {
        &["directory", "assets"]
    }

    fn open(&self, connection: &Connection) -> Result<Box<dyn SourceConnection>, SyncError> {
        Ok(Box::new(EntraConnection {
            settings: EntraSettings::of(connection)?,
            connection: connection.clone(),
            graph: self.graph.clone(),
        }))
    }

    fn check<'a>(
        &'a self,
        cx: &'a SourceContext,
        connection: &'a Connection,
        instance: &'a str,
    ) -> BoxFuture<'a, Vec<CheckPoint>> {
        Box::pin(crate::check::check(cx, self.graph.config(), connection, instance))
    }

    fn setup(&self) -> &'static str {
        "Register an app in the tenant with the User.Read.All and Group.Read.All application permissions \
         (optional: Organization.Read.All for licences, AuditLog.Read.All for last sign-in dates, \
         DeviceManagementManagedDevices.Read.All for devices as assets, LicenseAssignment.ReadWrite.All to manage \
         licences from the desk), grant admin consent, \
         then enter its ids and a credential. For delegated permissions, add this site's \
         /auth/microsoft/callback as a redirect URI."
    }

    fn settings(&self) -> &'static [Setting] {
        crate::settings::SETTINGS
    }

    fn create<'a>(
        &'a self,
        store: &'a Store,
        new: NewConnection,
    ) -> BoxFuture<'a, Result<Connection, SyncError>> {
        Box::pin(crate::manage::create(store, new))
    }

    fn edit<'a>(
        &'a self,
        store: &'a Store,
        connection: &'a Connection,
        values: SettingValues,
    ) -> BoxFuture<'a, Result<(), SyncError>> {
        Box::pin(crate::manage::edit(store, connection, values))
    }

    fn sign_in(&self) -> Option<&dyn SignIn> {
        Some(&crate::delegated::EntraSignIn)
    }

    fn licence_writer(&self) -> Option<&dyn LicenceWriter> {
        Some(&self.licences)
    }

    /// The delta settings and the state of the stored delta links.
    fn cursors<'a>(
        &'a self,
        cx: &'a SourceContext,
        connection: &'a Connection,
    ) -> BoxFuture<'a, Result<CursorReport, SyncError>> {
        Box::pin(async move {
            let status = crate::delta::delta_status(&cx.store, &connection.name).await?;
            Ok(crate::delta::report(&status))
        })
    }

    fn reset_cursors<'a>(
        &'a self,
        cx: &'a SourceContext,
        connection: &'a Connection,
        reset: CursorReset,
    ) -> BoxFuture<'a, Result<(), SyncError>> {
        Box::pin(async move {
            let reset = match reset {
                CursorReset::Clear => crate::delta::DeltaReset::Clear,
                CursorReset::Latest => crate::delta::DeltaReset::Latest,
            };
            crate::delta::reset_deltas(&cx.store, &connection.name, reset, &cx.clock).await?;
            Ok(())
        })
    }

    /// `$deltatoken=latest` gives links that start from now without reading the tenant.
    fn can_start_from_now(&self) -> bool {
        true
    }

    /// The guide: changing the user or site field/filter mappings of a connection that reads
    /// through delta queries takes the latest delta, after a confirmation.
    fn mapping_change_restarts_cursors(
        &self,
        connection: &Connection,
        old: &MappingConfig,
        new: &MappingConfig,
    ) -> bool {
        EntraSettings::of(connection).is_ok_and(|s| s.delta)
            && (old.user_fields != new.user_fields
                || old.agent_fields != new.agent_fields
                || old.site_mappings != new.site_mappings)
    }
}

/// One Entra connection, opened.
struct EntraConnection {
    connection: Connection,
    settings: EntraSettings,
    graph: Arc<SharedGraph>,
}

impl EntraConnection {
    async fn tenant(&self, cx: &SourceContext) -> Result<GraphTenant, SyncError> {
        self.graph
            .tenant(
                &cx.store,
                &self.connection,
                &self.settings,
                &cx.clock,
                &cx.requests,
            )
            .await
    }

    /// Reads the tenant into `out`: a delta round when the stored links were taken under the
    /// current settings, a full read otherwise (or when the delta token is refused).
    async fn read_into(
        &self,
        cx: &SourceContext,
        request: ReadRequest<'_>,
        out: &mut Emitter,
    ) -> Result<(), SyncError> {
        let config = request.config;
        let settings = &self.settings;
        if request.entity == SyncEntity::Assets {
            let tenant = self.tenant(cx).await?;
            let link = settings
                .mapping
                .assets
                .as_ref()
                .map(|a| a.user_link)
                .unwrap_or_default();
            return read::read_devices(&tenant, Some(settings.customer_id), config, link, out).await;
        }
        let tenant_id = settings.tenant_id.as_str();
        let select = read::user_select(&config.source_properties());
        let with_groups = config.uses_groups();
        let tracking = delta_tracking(settings, config);
        let tenant = self.tenant(cx).await?;
        let cursors: &StoredCursors = request.cursors;
        let users_link = cursors.get(tenant_id, USERS_DELTA);
        let groups_link = cursors.get(tenant_id, GROUPS_DELTA);
        let mapped_groups = cursors.get(tenant_id, read::MAPPED_GROUPS);
        let mapped_names = settings.mapping.group_names();
        // Links taken before the tracking settings were recorded listened to all changes.
        let tracked = cursors
            .get(tenant_id, read::DELTA_TRACKING)
            .map_or_else(|| DeltaTracking::all_changes().fingerprint(), str::to_owned);
        let same_tracking = tracked == tracking.fingerprint();
        if settings.delta && !request.full && !same_tracking && users_link.is_some() {
            out.emit(ReadEvent::Note(
                "the sync method or the mappings changed since the delta links were taken; running a full import, \
                 which plans every user under the new settings and starts tracking with them"
                    .into(),
            ))
            .await?;
        }
        let mut delta_start = read::DeltaStart::Latest;
        if settings.delta
            && !request.full
            && same_tracking
            && let (Some(users), Some(groups)) = (users_link, groups_link)
        {
            out.emit(ReadEvent::Mode(deskbridge_mapping::ReadMode::Delta))
                .await?;
            let state = read::DeltaState {
                users_link: users,
                groups_link: groups,
                mapped_groups,
            };
            match read::read_delta(
                &tenant,
                &select,
                with_groups,
                settings.customer_id,
                state,
                &mapped_names,
            )
            .await
            {
                Ok(mut data) => {
                    if let Some(sign_ins) = self.sign_ins(&tenant, &mut data.requests, out).await? {
                        read::add_sign_ins(&mut data.read.users, &sign_ins);
                    }
                    return emit_delta(data, out).await;
                }
                // Microsoft's synchronisation reset: the stored links and the mapped groups seen
                // with them are set aside, and the round restarts from the `Location` Graph gave
                // (on the connection's Graph host only) or a delta query without a token, as a
                // full read. The links are replaced with the read's last writes; a read that fails
                // leaves them, so the next run meets the same answer and starts over.
                Err(e) if e.is_resync_required() => {
                    let (start, set_aside) = read::DeltaStart::after_resync(&tenant, &e);
                    out.emit(ReadEvent::Note(resync_note(&e, &start))).await?;
                    if let Some(note) = set_aside {
                        out.emit(ReadEvent::Note(note)).await?;
                    }
                    delta_start = start;
                }
                Err(e) => return Err(from_graph(&e)),
            }
        }
        let mut sign_in_requests = 0;
        let sign_ins = self.sign_ins(&tenant, &mut sign_in_requests, out).await?;
        let full = read::FullRead {
            select: &select,
            with_groups,
            customer: settings.customer_id,
            tracking: &tracking,
            mapped_names: &mapped_names,
            sign_ins: sign_ins.as_ref(),
            licences: true,
            subscriptions: None,
            delta_start: &delta_start,
        };
        let resync = delta_start.is_resync();
        read::read_full(&tenant, full, out)
            .await
            .map_err(|e| if resync { failed_after_resync(e) } else { e })
    }

    /// The users' last sign-in dates when the connection imports them; a tenant without them
    /// gives a warning (the run goes on without the dates), not a failure.
    async fn sign_ins(
        &self,
        tenant: &GraphTenant,
        requests: &mut u64,
        out: &mut Emitter,
    ) -> Result<Option<read::SignIns>, SyncError> {
        if !self.settings.last_sign_in {
            return Ok(None);
        }
        let unavailable = match read::read_sign_ins(tenant, requests).await {
            Ok(Ok(sign_ins)) => return Ok(Some(sign_ins)),
            Ok(Err(unavailable)) => unavailable,
            Err(e) => read::SignInUnavailable {
                code: e.code().as_str().to_owned(),
                message: e.to_string(),
                remedy: String::new(),
            },
        };
        out.emit(ReadEvent::Warning(IntegrationError {
            tenant_id: Some(self.settings.tenant_id.clone()),
            entity: Some("user".into()),
            external_id: None,
            code: unavailable.code,
            message: format!("last sign-in dates were not imported: {}", unavailable.message),
            remedy: Some(if unavailable.remedy.is_empty() {
                "Sign-in activity needs AuditLog.Read.All and a Microsoft Entra ID P1 or P2 tenant.".into()
            } else {
                unavailable.remedy
            }),
        }))
        .await?;
        Ok(None)
    }
}

/// What the run notes when Graph asks for a resync: what Graph said, and what is done instead.
pub fn resync_note(e: &deskbridge_graph::GraphError, start: &read::DeltaStart) -> String {
    let said = match e.api() {
        Some(api) => format!("HTTP {} {}: {}", api.status, api.code, api.message),
        None => e.to_string(),
    };
    let from = match start {
        read::DeltaStart::Resync {
            users: Some(_),
            groups: Some(_),
        } => "the Location Graph gave",
        read::DeltaStart::Resync { users: Some(_), .. } => {
            "the Location Graph gave for users and a groups delta query without a token"
        }
        read::DeltaStart::Resync { groups: Some(_), .. } => {
            "the Location Graph gave for groups and a users delta query without a token"
        }
        _ => "delta queries without a token",
    };
    format!(
        "Graph refused the stored delta links and asked for a resync ({said}); the links were set aside and \
         this run is a full import whose new links come from {from}"
    )
}

/// A full import that replaced refused delta links failed: the error says so, and that it is
/// this import that failed (not the delta round before it).
pub fn failed_after_resync(e: SyncError) -> SyncError {
    match e {
        SyncError::Upstream {
            error_code,
            code,
            message,
            remedy,
        } => SyncError::Upstream {
            error_code,
            code,
            message: format!(
                "the full import that replaces the delta links Graph refused failed (the stored links are \
                 kept until one completes; the next run starts it again): {message}"
            ),
            remedy,
        },
        other => other,
    }
}

/// A delta round as events: the partition opened, its changed users a page at a time (the
/// removals with the last), and closed with its new links. Public for connectors that read
/// tenants through Graph the way Entra does (CSP).
pub async fn emit_delta(data: TenantData, out: &mut Emitter) -> Result<(), SyncError> {
    let TenantData {
        read,
        rejected,
        cursors,
        requests,
    } = data;
    let completeness = if rejected.is_empty() {
        read.completeness
    } else {
        deskbridge_mapping::Completeness::Partial
    };
    out.emit(ReadEvent::Begin(PartitionStart {
        tenant_id: read.tenant_id.clone(),
        customer_id: read.customer_id,
        mode: read.mode,
        subscribed_skus: read.subscribed_skus,
        subscriptions: read.subscriptions,
        usage: read.usage,
        groups: None,
    }))
    .await?;
    for user in rejected {
        out.emit(ReadEvent::Warning(read::rejected_error(&read.tenant_id, user)))
            .await?;
    }
    let mut users = read.users;
    let mut removed = Some(read.removed);
    loop {
        let rest = users.split_off(users.len().min(PAGE_SIZE));
        let last = rest.is_empty();
        out.emit(ReadEvent::Page(Page {
            tenant_id: read.tenant_id.clone(),
            records: users.into_iter().map(SourceRecord::User).collect(),
            removed: if last {
                removed.take().unwrap_or_default()
            } else {
                Vec::new()
            },
            cursors: Vec::new(),
        }))
        .await?;
        if last {
            break;
        }
        users = rest;
    }
    out.emit(ReadEvent::End(PartitionEnd {
        tenant_id: read.tenant_id,
        completeness,
        cursors,
        requests,
    }))
    .await
}

impl SourceConnection for EntraConnection {
    fn connection(&self) -> &Connection {
        &self.connection
    }

    fn mapping(&self) -> &MappingConfig {
        &self.settings.mapping
    }

    fn source_properties(&self) -> SourceProperties {
        user_properties()
    }

    fn device_properties(&self) -> SourceProperties {
        read::device_properties()
    }

    fn partitions(&self) -> Vec<Partition> {
        vec![Partition {
            tenant_id: self.settings.tenant_id.clone(),
            customer_id: self.settings.customer_id,
        }]
    }

    fn read_notes(&self, config: &ValidatedConfig) -> Vec<String> {
        delta_tracking(&self.settings, config)
            .untracked
            .iter()
            .map(|field| {
                format!(
                    "{} is not tracked by the \"mapped fields only\" delta ({}); used by {}. Its changes arrive \
                     with the next change to a tracked field",
                    field.property,
                    field.reason,
                    field.used_by.join(", ")
                )
            })
            .collect()
    }

    fn read<'a>(
        &'a self,
        cx: &'a SourceContext,
        request: ReadRequest<'a>,
    ) -> BoxStream<'a, Result<ReadEvent, SyncError>> {
        read_stream(move |mut out| async move { self.read_into(cx, request, &mut out).await })
    }

    fn group_names<'a>(
        &'a self,
        cx: &'a SourceContext,
    ) -> BoxFuture<'a, Result<BTreeSet<String>, SyncError>> {
        Box::pin(async move {
            let tenant = self.tenant(cx).await?;
            let mut groups = BTreeSet::new();
            let mut pager = tenant.pager::<Map<String, Value>>("/groups?$select=displayName&$top=999");
            while let Some(page) = pager.next_page().await.map_err(|e| from_graph(&e))? {
                groups.extend(
                    page.value
                        .iter()
                        .filter_map(|g| g.get("displayName")?.as_str().map(str::to_owned)),
                );
            }
            Ok(groups)
        })
    }

    fn settings_with_mapping(&self, mapping: &MappingConfig) -> Result<Value, SyncError> {
        let mut settings = self.settings.clone();
        settings.mapping = mapping.clone();
        serde_json::to_value(&settings)
            .map_err(|e| SyncError::BadSettings(self.connection.name.clone(), e.to_string()))
    }

    fn distribution_group<'a>(
        &'a self,
        cx: &'a SourceContext,
        name: &'a str,
    ) -> BoxFuture<'a, Result<DistributionGroup, SyncError>> {
        Box::pin(async move {
            let tenant = self.tenant(cx).await?;
            crate::read::distribution_group(&tenant, name)
                .await
                .map_err(|e| match e {
                    crate::read::GroupLookup::Graph(e) => from_graph(&e),
                    crate::read::GroupLookup::NotFound => SyncError::Conflict(format!(
                        "tenant {} has no group named {name:?}: give the group's display name as Entra shows it",
                        self.settings.tenant_id
                    )),
                    crate::read::GroupLookup::Ambiguous(n) => SyncError::Conflict(format!(
                        "tenant {} has {n} groups named {name:?}: rename one in Entra so the name says which",
                        self.settings.tenant_id
                    )),
                })
        })
    }
}
