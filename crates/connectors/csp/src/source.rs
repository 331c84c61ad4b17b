//! CSP as a [`Source`]: a connection reads every customer tenant of a partner — the customers
//! Partner Center lists with an active GDAP relationship, each one partition going to its desk
//! customer — through Graph with the GDAP app, with the Entra connector's full and delta reads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use deskbridge_connector_entra::read::{self, DeltaTracking, GROUPS_DELTA, USERS_DELTA};
use deskbridge_connector_entra::{SyncMethod, emit_delta, from_graph};
use deskbridge_core::RecordId;
use deskbridge_graph::{GraphConfig, GraphTenant};
use deskbridge_mapping::{Completeness, MappingConfig, ReadMode, SourceSubscription, ValidatedConfig};
use deskbridge_partner::PartnerConfig;
use deskbridge_source::desk::SourceProperties;
use deskbridge_source::settings::{Setting, SettingValues};
use deskbridge_source::{
    BoxFuture, CheckPoint, Emitter, NewConnection, Partition, PartitionEnd, PartitionStart, ReadEvent,
    ReadRequest, SignIn, Source, SourceConnection, SourceContext, SyncEntity, SyncError, read_stream,
};
use deskbridge_store::{Connection, IntegrationError, Store};
use futures::stream::BoxStream;
use serde_json::{Map, Value};

use crate::CSP_KIND;
use crate::auth::{PartnerSignIn, Tokens};
use crate::log::Shared;
use crate::settings::{CspSettings, RelationshipType};
use crate::subscriptions::SubscriptionReader;
use crate::tenants::{TenantDiscovery, access_failure, discover};
use crate::write_back::CspWriter;

/// Microsoft CSP. One per process: its Graph clients are shared by every CSP connection.
pub struct CspSource {
    shared: Arc<Shared>,
    sign_in: PartnerSignIn,
    writer: CspWriter,
}

impl Default for CspSource {
    fn default() -> Self {
        Self::new(GraphConfig::default(), PartnerConfig::default())
    }
}

impl CspSource {
    /// A source whose Graph and Partner Center clients use these configurations (retries,
    /// budgets; the URLs come from each connection).
    pub fn new(graph: GraphConfig, partner: PartnerConfig) -> Self {
        let shared = Arc::new(Shared::new(graph, partner));
        Self {
            sign_in: PartnerSignIn {
                shared: shared.clone(),
            },
            writer: CspWriter {
                shared: shared.clone(),
            },
            shared,
        }
    }
}

impl Source for CspSource {
    fn kind(&self) -> &'static str {
        CSP_KIND
    }

    fn label(&self) -> &'static str {
        "Microsoft CSP (Partner Center with GDAP)"
    }

    /// Each customer tenant found is attached to the desk customer owning it or having its name.
    fn attaches_existing_customers(&self) -> bool {
        true
    }

    /// Users of every customer tenant, read and planned together per tenant (as Entra's
    /// directory, with the tenant's licences and subscriptions), their devices, and the licences
    /// and subscriptions alone (what a Partner Center webhook refreshes).
    fn entities(&self) -> &'static [&'static str] {
        &["directory", "assets", "licences", "consumption"]
    }

    fn setup(&self) -> &'static str {
        "Register two apps in the partner tenant, as the CSP guide describes: a single-tenant Partner Center app \
         with the Partner Center API's delegated user_impersonation permission (API \
         fa3d9a0c-3fb0-42cc-9193-47c7ecd2edbd) and a client secret, with this site's /auth/microsoft/callback (and \
         http://localhost/callback for the CLI) as redirect URIs; and a multi-tenant GDAP app with the Graph \
         application permissions User.Read.All, Group.Read.All, Organization.Read.All and \
         DelegatedAdminRelationship.Read.All (AuditLog.Read.All for last sign-in dates; Directory.Read.All to \
         tell which customers still have DAP), a secret or a \
         certificate, added to the AdminAgents group, with this site's /auth/microsoft/consent (and \
         http://127.0.0.1/callback for the CLI) as redirect URIs for the per-tenant admin consent. After adding \
         the connection, a partner admin signs in once (authorize); then grant admin consent in each customer \
         tenant from the Tenants tab (or deskbridge tenants consent)."
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
        Some(&self.sign_in)
    }

    fn subscription_writer(&self) -> Option<&dyn deskbridge_source::SubscriptionWriter> {
        Some(&self.writer)
    }

    fn tenant_table(&self) -> Option<&dyn deskbridge_source::TenantTable> {
        Some(&crate::tenant_table::CspTenants)
    }

    fn open(&self, connection: &Connection) -> Result<Box<dyn SourceConnection>, SyncError> {
        Ok(Box::new(CspConnection {
            settings: CspSettings::of(connection)?,
            connection: connection.clone(),
            shared: self.shared.clone(),
            discovered: std::sync::Mutex::new(None),
        }))
    }

    fn check<'a>(
        &'a self,
        cx: &'a SourceContext,
        connection: &'a Connection,
        instance: &'a str,
    ) -> BoxFuture<'a, Vec<CheckPoint>> {
        Box::pin(crate::check::check(cx, &self.shared, connection, instance))
    }
}

/// One CSP connection, opened.
struct CspConnection {
    connection: Connection,
    settings: CspSettings,
    shared: Arc<Shared>,
    /// What [`SourceConnection::prepare`] discovered, for the run's read to take instead of
    /// asking Partner Center again.
    discovered: std::sync::Mutex<Option<TenantDiscovery>>,
}

/// A customer tenant to read this run.
struct TenantToRead<'a> {
    tenant_id: &'a str,
    name: &'a str,
    customer: RecordId,
}

/// What the delta links of one tenant were taken under: the sync method and the mappings that
/// apply to that tenant (so assigning another tenant does not restart everyone's deltas).
fn tracking(settings: &CspSettings, config: &ValidatedConfig, tenant_id: &str) -> DeltaTracking {
    use sha2::Digest as _;
    let mut tracking = match settings.sync_method {
        SyncMethod::AllChanges => DeltaTracking::all_changes(),
        SyncMethod::MappedFieldsOnly => DeltaTracking::mapped_fields_only(&config.property_uses()),
    };
    let mut mapping = settings.mapping.clone();
    mapping.site_mappings.retain(|m| {
        m.tenant_id
            .as_deref()
            .is_none_or(|t| t.eq_ignore_ascii_case(tenant_id))
    });
    let bytes = serde_json::to_vec(&mapping).unwrap_or_default();
    tracking.mappings_digest = hex::encode(&sha2::Sha256::digest(&bytes)[..12]);
    tracking
}

/// A tenant that cannot be read this run: a warning naming it with the remedy, and its partition
/// ended partial (nobody is deactivated for it).
async fn skip_tenant(
    out: &mut Emitter,
    tenant: &TenantToRead<'_>,
    code: String,
    message: String,
    remedy: String,
    subscriptions: Option<Vec<SourceSubscription>>,
) -> Result<(), SyncError> {
    out.emit(ReadEvent::Warning(IntegrationError {
        tenant_id: Some(tenant.tenant_id.to_owned()),
        entity: Some("tenant".into()),
        external_id: Some(tenant.tenant_id.to_owned()),
        code,
        message,
        remedy: Some(remedy),
    }))
    .await?;
    out.emit(ReadEvent::Begin(PartitionStart {
        tenant_id: tenant.tenant_id.to_owned(),
        customer_id: Some(tenant.customer),
        mode: ReadMode::Full,
        subscribed_skus: None,
        subscriptions,
        usage: None,
        groups: None,
    }))
    .await?;
    out.emit(ReadEvent::End(PartitionEnd {
        tenant_id: tenant.tenant_id.to_owned(),
        completeness: Completeness::Partial,
        cursors: Vec::new(),
        requests: 0,
    }))
    .await
}

/// A tenant's licences and subscriptions without its users: a partition read as a delta with no
/// changes, so the planner updates the reference lists and deactivates nobody.
async fn licences_only(
    graph: &GraphTenant,
    tenant: &TenantToRead<'_>,
    skus: bool,
    subscriptions: Option<Vec<SourceSubscription>>,
    out: &mut Emitter,
) -> Result<(), SyncError> {
    let subscribed_skus = if skus {
        read::read_licences(graph, out).await?
    } else {
        None
    };
    out.emit(ReadEvent::Begin(PartitionStart {
        tenant_id: tenant.tenant_id.to_owned(),
        customer_id: Some(tenant.customer),
        mode: ReadMode::Delta,
        subscribed_skus,
        subscriptions,
        usage: None,
        groups: None,
    }))
    .await?;
    out.emit(ReadEvent::End(PartitionEnd {
        tenant_id: tenant.tenant_id.to_owned(),
        completeness: Completeness::Complete,
        cursors: Vec::new(),
        requests: u64::from(skus),
    }))
    .await
}

impl CspConnection {
    async fn read_into(
        &self,
        cx: &SourceContext,
        request: ReadRequest<'_>,
        out: &mut Emitter,
    ) -> Result<(), SyncError> {
        let http = deskbridge_source::http_client(&self.connection.name)?;
        let tokens =
            crate::auth::tokens(&cx.store, &self.connection, &self.settings, &http, &cx.clock).await?;
        let prepared = self
            .discovered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let found = match prepared {
            Some(found) => found,
            None => {
                discover(cx, &self.shared, &self.connection, &self.settings, &tokens, &http)
                    .await?
                    .0
            }
        };
        let mut subscriptions = self.subscription_reader(cx, &tokens, &http)?;
        let usage_partner = match (&tokens.partner, request.entity) {
            (Ok(partner_tokens), SyncEntity::Consumption) => Some(self.shared.partner(
                &self.connection,
                &self.settings,
                &http,
                &cx.clock,
                partner_tokens.clone(),
                &cx.requests,
            )?),
            _ => None,
        };
        for tenant_id in &found.assigned {
            let name = found
                .readable
                .iter()
                .find(|(t, _)| t == tenant_id)
                .map_or(tenant_id.as_str(), |(_, n)| n.as_str());
            out.emit(ReadEvent::Note(format!(
                "new customer tenant {name} ({tenant_id}): assigned to its desk customer with a catch-all site \
                 mapping to the customer's main site"
            )))
            .await?;
        }
        let readable: BTreeSet<&str> = found.readable.iter().map(|(t, _)| t.as_str()).collect();
        let without_gdap: BTreeMap<&str, &str> = found
            .without_gdap
            .iter()
            .map(|(t, n)| (t.as_str(), n.as_str()))
            .collect();
        for (tenant_id, name) in &found.without_gdap {
            if self.settings.tenant(tenant_id).is_none() {
                out.emit(ReadEvent::Note(match self.settings.relationship_type {
                    RelationshipType::Gdap => format!(
                        "customer {name} ({tenant_id}) has no active GDAP relationship: its users are not read"
                    ),
                    RelationshipType::Dap => format!(
                        "customer {name} ({tenant_id}) has no DAP with the partner (new tenants are read through \
                         DAP): its users are not read"
                    ),
                }))
                .await?;
            }
        }
        let reads_dap = self.settings.tenants.iter().any(|t| {
            t.customer_id.is_some()
                && self.settings.relationship_type_of(&t.tenant_id) == RelationshipType::Dap
        });
        if let (Some(reason), true) = (&found.dap_unknown, reads_dap) {
            out.emit(ReadEvent::Note(format!(
                "the partner's DAP customers (Graph /contracts in the partner tenant, Directory.Read.All) could not \
                 be listed, so the tenants read through DAP are tried as they are: {reason}"
            )))
            .await?;
        }
        for stored in &self.settings.tenants {
            let Some(customer) = stored.customer_id else {
                continue;
            };
            // A run for one customer tenant reads that tenant alone; a tenant another connection
            // reads is not read here (the pipeline has said so).
            if request
                .tenant
                .is_some_and(|only| !only.eq_ignore_ascii_case(&stored.tenant_id))
                || request.skip.contains(&stored.tenant_id.to_ascii_lowercase())
            {
                continue;
            }
            let tenant = TenantToRead {
                tenant_id: &stored.tenant_id,
                name: &stored.name,
                customer,
            };
            let id = stored.tenant_id.to_ascii_lowercase();
            // Usage comes from Partner Center alone: no GDAP access is needed to read it.
            if let Some(partner) = &usage_partner {
                let usage_tenant = crate::consumption::UsageTenant {
                    tenant_id: &stored.tenant_id,
                    name: &stored.name,
                    customer,
                };
                let with_subscriptions = self.settings.licence_import_of(&stored.tenant_id).subscriptions();
                crate::consumption::read_usage(
                    partner,
                    &usage_tenant,
                    request.cursors,
                    cx.clock.now(),
                    with_subscriptions,
                    out,
                )
                .await?;
                continue;
            }
            if readable.contains(id.as_str()) {
                self.read_tenant(cx, request, &tokens, &http, &tenant, &mut subscriptions, out)
                    .await?;
            } else if without_gdap.contains_key(id.as_str())
                && self.settings.relationship_type_of(&stored.tenant_id) == RelationshipType::Dap
            {
                skip_tenant(
                    out,
                    &tenant,
                    "dap_not_available".into(),
                    format!(
                        "customer tenant {} ({}) was not read: it is read through DAP, but the partner has no \
                         delegated admin privileges (DAP) with it",
                        tenant.name, tenant.tenant_id
                    ),
                    "Microsoft has retired DAP: set the tenant's relationship type to GDAP (Tenants tab, or \
                     deskbridge tenants set --relationship-type gdap), establish a GDAP relationship with it in \
                     Partner Center and grant the GDAP app admin consent in the tenant."
                        .into(),
                    None,
                )
                .await?;
            } else if without_gdap.contains_key(id.as_str()) {
                skip_tenant(
                    out,
                    &tenant,
                    "gdap_not_active".into(),
                    format!(
                        "customer tenant {} ({}) was not read: its GDAP relationship is not active (expired, \
                         terminated or pending approval)",
                        tenant.name, tenant.tenant_id
                    ),
                    "Renew or re-establish the GDAP relationship with this customer in Partner Center, with its \
                     roles assigned to the AdminAgents group."
                        .into(),
                    None,
                )
                .await?;
            } else {
                skip_tenant(
                    out,
                    &tenant,
                    "customer_not_listed".into(),
                    format!(
                        "customer tenant {} ({}) was not read: Partner Center no longer lists it as a customer",
                        tenant.name, tenant.tenant_id
                    ),
                    "Check the reseller relationship with this customer in Partner Center (it may have been \
                     ended or have expired), and that the signed-in partner user can see every customer."
                        .into(),
                    None,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// The run's reader of customers' subscriptions, when the connection imports subscriptions
    /// for any tenant (Partner Center needs the partner admin's sign-in, which discovery has
    /// already required).
    fn subscription_reader(
        &self,
        cx: &SourceContext,
        tokens: &Tokens,
        http: &reqwest::Client,
    ) -> Result<Option<SubscriptionReader>, SyncError> {
        let settings = &self.settings;
        let wanted = settings
            .tenants
            .iter()
            .any(|t| t.customer_id.is_some() && settings.licence_import_of(&t.tenant_id).subscriptions());
        let Ok(partner_tokens) = &tokens.partner else {
            return Ok(None);
        };
        if !wanted {
            return Ok(None);
        }
        let partner = self.shared.partner(
            &self.connection,
            settings,
            http,
            &cx.clock,
            partner_tokens.clone(),
            &cx.requests,
        )?;
        Ok(Some(SubscriptionReader::new(
            partner,
            settings.subscription_pricing.clone(),
        )))
    }

    /// Reads one customer tenant; a tenant the GDAP app cannot reach is skipped with a warning
    /// (its subscriptions, which Partner Center gives without GDAP, are still imported).
    #[allow(clippy::too_many_arguments)]
    async fn read_tenant(
        &self,
        cx: &SourceContext,
        request: ReadRequest<'_>,
        tokens: &Tokens,
        http: &reqwest::Client,
        tenant: &TenantToRead<'_>,
        subscriptions: &mut Option<SubscriptionReader>,
        out: &mut Emitter,
    ) -> Result<(), SyncError> {
        let import = self.settings.licence_import_of(tenant.tenant_id);
        let subscriptions = match subscriptions {
            Some(reader) if import.subscriptions() && request.entity != SyncEntity::Assets => {
                reader.read(tenant.tenant_id, tenant.name, out).await?
            }
            _ => None,
        };
        let graph = self.shared.tenant(
            &self.connection,
            &self.settings,
            http,
            &cx.clock,
            tenant.tenant_id,
            tokens.gdap.clone(),
            &cx.requests,
        )?;
        // The probe: can the GDAP app read this tenant at all? Failures of access (consent,
        // GDAP) and of the tenant (an outage) stop this tenant only.
        if let Err(e) = graph
            .get_page::<Map<String, Value>>("/organization?$select=id")
            .await
        {
            let error = from_graph(&e);
            let kind = self.settings.relationship_type_of(tenant.tenant_id);
            let (code, message, remedy) = access_failure(tenant.tenant_id, tenant.name, &error, kind)
                .unwrap_or_else(|| {
                    (
                        error.code(),
                        format!(
                            "customer tenant {} ({}) was not read: {error}",
                            tenant.name, tenant.tenant_id
                        ),
                        error
                            .remedy()
                            .unwrap_or_else(|| "The next run tries this tenant again.".into()),
                    )
                });
            return skip_tenant(out, tenant, code, message, remedy, subscriptions).await;
        }
        let config = request.config;
        let settings = &self.settings;
        if request.entity == SyncEntity::Assets {
            let link = settings
                .mapping
                .assets
                .as_ref()
                .map(|a| a.user_link)
                .unwrap_or_default();
            return match read::read_devices(&graph, Some(tenant.customer), config, link, out).await {
                Ok(()) => Ok(()),
                // This tenant's devices could not be listed (no Intune, no permission): the
                // other tenants' devices are still imported.
                Err(error) => {
                    let message = format!(
                        "the devices of customer tenant {} ({}) were not read: {error}",
                        tenant.name, tenant.tenant_id
                    );
                    let remedy = error
                        .remedy()
                        .unwrap_or_else(|| "The next asset run tries this tenant again.".into());
                    skip_tenant(out, tenant, error.code(), message, remedy, None).await
                }
            };
        }
        if request.entity == SyncEntity::Licences {
            return licences_only(&graph, tenant, import.skus(), subscriptions, out).await;
        }
        let tenant_id = graph.tenant_id().to_owned();
        let select = read::user_select(&config.source_properties());
        let with_groups = config.uses_groups();
        let tracking = tracking(settings, config, &tenant_id);
        let cursors = request.cursors;
        let users_link = cursors.get(&tenant_id, USERS_DELTA);
        let groups_link = cursors.get(&tenant_id, GROUPS_DELTA);
        let mapped_groups = cursors.get(&tenant_id, read::MAPPED_GROUPS);
        let mapped_names = settings.mapping.group_names();
        let same_tracking = cursors
            .get(&tenant_id, read::DELTA_TRACKING)
            .is_some_and(|t| t == tracking.fingerprint());
        if settings.delta && !request.full && !same_tracking && users_link.is_some() {
            out.emit(ReadEvent::Note(format!(
                "{}: the sync method or the mappings changed since the delta links were taken; running a full \
                 import of this tenant",
                tenant.name
            )))
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
                &graph,
                &select,
                with_groups,
                tenant.customer,
                state,
                &mapped_names,
            )
            .await
            {
                Ok(mut data) => {
                    if let Some(sign_ins) = self.sign_ins(&graph, &mut data.requests, out).await? {
                        read::add_sign_ins(&mut data.read.users, &sign_ins);
                    }
                    if !import.skus() {
                        data.read.subscribed_skus = None;
                    }
                    data.read.subscriptions = subscriptions;
                    return emit_delta(data, out).await;
                }
                // Microsoft's synchronisation reset, as the Entra connector does it.
                Err(e) if e.is_resync_required() => {
                    let (start, set_aside) = read::DeltaStart::after_resync(&graph, &e);
                    let note = deskbridge_connector_entra::resync_note(&e, &start);
                    out.emit(ReadEvent::Note(format!("{}: {note}", tenant.name)))
                        .await?;
                    if let Some(note) = set_aside {
                        out.emit(ReadEvent::Note(format!("{}: {note}", tenant.name)))
                            .await?;
                    }
                    delta_start = start;
                }
                Err(e) => return Err(from_graph(&e)),
            }
        }
        let mut sign_in_requests = 0;
        let sign_ins = self.sign_ins(&graph, &mut sign_in_requests, out).await?;
        let full = read::FullRead {
            select: &select,
            with_groups,
            customer: tenant.customer,
            tracking: &tracking,
            mapped_names: &mapped_names,
            sign_ins: sign_ins.as_ref(),
            licences: import.skus(),
            subscriptions: subscriptions.as_deref(),
            delta_start: &delta_start,
        };
        let resync = delta_start.is_resync();
        read::read_full(&graph, full, out).await.map_err(|e| {
            if resync {
                deskbridge_connector_entra::failed_after_resync(e)
            } else {
                e
            }
        })
    }

    /// The users' last sign-in dates when the connection imports them; a tenant without them gives
    /// a warning (the tenant is imported without the dates).
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
            tenant_id: Some(tenant.tenant_id().to_owned()),
            entity: Some("user".into()),
            external_id: None,
            code: unavailable.code,
            message: format!("last sign-in dates were not imported: {}", unavailable.message),
            remedy: Some(if unavailable.remedy.is_empty() {
                "Sign-in activity needs AuditLog.Read.All on the GDAP app and a Microsoft Entra ID P1 or P2 tenant."
                    .into()
            } else {
                unavailable.remedy
            }),
        }))
        .await?;
        Ok(None)
    }
}

impl SourceConnection for CspConnection {
    fn connection(&self) -> &Connection {
        &self.connection
    }

    fn mapping(&self) -> &MappingConfig {
        &self.settings.mapping
    }

    fn source_properties(&self) -> SourceProperties {
        deskbridge_mapping::Catalog::entra_user_properties()
    }

    fn device_properties(&self) -> SourceProperties {
        read::device_properties()
    }

    /// Discovers the customer tenants before the run takes the mappings and partitions: a tenant
    /// found now is assigned (with its catch-all site mapping) and read in this run.
    fn prepare<'a>(&'a mut self, cx: &'a SourceContext) -> BoxFuture<'a, Result<(), SyncError>> {
        Box::pin(async move {
            let http = deskbridge_source::http_client(&self.connection.name)?;
            let tokens =
                crate::auth::tokens(&cx.store, &self.connection, &self.settings, &http, &cx.clock).await?;
            let (found, _) =
                discover(cx, &self.shared, &self.connection, &self.settings, &tokens, &http).await?;
            if !found.assigned.is_empty() {
                let mut tx = cx.store.read().await?;
                let current = tx.connection(self.connection.id).await?;
                tx.commit().await?;
                let current =
                    current.ok_or_else(|| SyncError::UnknownConnection(self.connection.name.clone()))?;
                self.settings = CspSettings::of(&current)?;
                self.connection = current;
            }
            *self
                .discovered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(found);
            Ok(())
        })
    }

    fn partitions(&self) -> Vec<Partition> {
        self.settings
            .tenants
            .iter()
            .filter_map(|t| {
                Some(Partition {
                    tenant_id: t.tenant_id.clone(),
                    customer_id: t.customer_id?,
                })
            })
            .collect()
    }

    fn read_notes(&self, _config: &ValidatedConfig) -> Vec<String> {
        Vec::new()
    }

    fn read<'a>(
        &'a self,
        cx: &'a SourceContext,
        request: ReadRequest<'a>,
    ) -> BoxStream<'a, Result<ReadEvent, SyncError>> {
        read_stream(move |mut out| async move { self.read_into(cx, request, &mut out).await })
    }

    /// The groups of every customer tenant the GDAP app can read (a tenant it cannot is left out).
    fn group_names<'a>(
        &'a self,
        cx: &'a SourceContext,
    ) -> BoxFuture<'a, Result<BTreeSet<String>, SyncError>> {
        Box::pin(async move {
            let http = deskbridge_source::http_client(&self.connection.name)?;
            let tokens =
                crate::auth::tokens(&cx.store, &self.connection, &self.settings, &http, &cx.clock).await?;
            let mut groups = BTreeSet::new();
            for partition in self.partitions() {
                let tenant = self.shared.tenant(
                    &self.connection,
                    &self.settings,
                    &http,
                    &cx.clock,
                    &partition.tenant_id,
                    tokens.gdap.clone(),
                    &cx.requests,
                )?;
                let mut pager = tenant.pager::<Map<String, Value>>("/groups?$select=displayName&$top=999");
                loop {
                    match pager.next_page().await {
                        Ok(Some(page)) => groups.extend(
                            page.value
                                .iter()
                                .filter_map(|g| g.get("displayName")?.as_str().map(str::to_owned)),
                        ),
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(tenant = %partition.tenant_id, error = %e, "groups not listed");
                            break;
                        }
                    }
                }
            }
            Ok(groups)
        })
    }

    fn settings_with_mapping(&self, mapping: &MappingConfig) -> Result<Value, SyncError> {
        let mut settings = self.settings.clone();
        settings.mapping = mapping.clone();
        settings.to_config(&self.connection.name)
    }
}
