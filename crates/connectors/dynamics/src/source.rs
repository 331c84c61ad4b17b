//! Dynamics 365 as a [`Source`]: a connection reads one organisation — its contacts, as one
//! partition whose customer is the connection's — in full (starting change tracking) or as the
//! changes since the stored delta link; and, in a `custom_tables` run, each table mapping's table
//! as its own partition ([`crate::tables`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use deskbridge_dataverse::{DataverseClient, DataverseConfig};
use deskbridge_mapping::{MappingConfig, ValidatedConfig};
use deskbridge_msauth::TokenProvider;
use deskbridge_source::desk::SourceProperties;
use deskbridge_source::settings::{Setting, SettingValues};
use deskbridge_source::{
    BoxFuture, CheckPoint, CursorReport, Emitter, NewConnection, Partition, ReadEvent, ReadRequest, SignIn,
    Source, SourceConnection, SourceContext, SyncEntity, SyncError, read_stream,
};
use deskbridge_store::{Connection, Store};
use futures::stream::BoxStream;
use serde_json::{Value, json};

use crate::DYNAMICS_KIND;
use crate::read::{CONTACTS_DELTA, ContactsRead, DeltaStart, ExtraColumn, MAX_PAGE_SIZE};
use crate::settings::DynamicsSettings;

/// Dynamics 365 (Dataverse). One per process.
pub struct DynamicsSource {
    /// Retries, budgets and timeouts of every organisation's client (the URL and tenant come from
    /// each connection).
    template: DataverseConfig,
    /// Contacts per page asked of Dataverse (`Prefer: odata.maxpagesize`, at most 5,000).
    page_size: u32,
}

impl Default for DynamicsSource {
    fn default() -> Self {
        Self::new(DataverseConfig::new("", ""), MAX_PAGE_SIZE)
    }
}

impl DynamicsSource {
    /// A source whose organisation clients use `template`'s retries and limits, reading
    /// `page_size` contacts a page (clamped to Dataverse's 1..=5,000).
    pub fn new(template: DataverseConfig, page_size: u32) -> Self {
        Self {
            template,
            page_size: page_size.clamp(1, MAX_PAGE_SIZE),
        }
    }

    /// The client of the connection's organisation, with its tokens.
    pub(crate) fn client(
        &self,
        settings: &DynamicsSettings,
        tokens: Arc<dyn TokenProvider>,
        http: &reqwest::Client,
    ) -> Result<DataverseClient, SyncError> {
        let config = DataverseConfig {
            org_url: settings.url.clone(),
            tenant_id: settings.tenant_id.clone(),
            scope: Some(settings.scope()),
            ..self.template.clone()
        };
        DataverseClient::new(http.clone(), config, tokens).map_err(|e| crate::error::from_dataverse(&e))
    }
}

impl Source for DynamicsSource {
    fn kind(&self) -> &'static str {
        DYNAMICS_KIND
    }

    fn label(&self) -> &'static str {
        "Dynamics 365"
    }

    /// An organisation's rows, not its tenant's directory: several organisations (connections)
    /// of one tenant are usual.
    fn reads_tenant_directory(&self) -> bool {
        false
    }

    fn entities(&self) -> &'static [&'static str] {
        // Contacts are the directory's people; "contacts" was listed here before, which no job
        // could run (the worker knows entities by `SyncEntity` names).
        &["customers", "directory", "custom_tables"]
    }

    fn setup(&self) -> &'static str {
        "Register an app in the organisation's tenant. AzureServicePrincipal: give it a client secret or \
         certificate and add it as an application user of the environment (Power Platform admin center > \
         Environments > Settings > Users + permissions > Application users) with a security role that reads \
         Contact and Account. AzureAD: give it Dynamics CRM's delegated user_impersonation permission and \
         register the callback URL (the CLI signs in through http://127.0.0.1/callback on any port)."
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
        Some(&crate::auth::DynamicsSignIn)
    }

    /// Whether the contacts' delta link is stored (never the link itself: it is a token).
    fn cursors<'a>(
        &'a self,
        cx: &'a SourceContext,
        connection: &'a Connection,
    ) -> BoxFuture<'a, Result<CursorReport, SyncError>> {
        Box::pin(async move {
            let settings = DynamicsSettings::of(connection)?;
            let mut tx = cx.store.read().await?;
            let cursors = tx.cursors_of(connection.id).await?;
            tx.commit().await?;
            let delta = cursors.iter().any(|(_, stream, _)| stream == CONTACTS_DELTA);
            let mut lines = vec![(
                "contacts".to_owned(),
                if delta {
                    "change-tracking link saved: the next run reads only created, updated and deleted contacts"
                        .to_owned()
                } else {
                    "none: the next run reads every contact".to_owned()
                },
            )];
            if settings.mapping.customers.is_some() {
                let prefix = crate::tables::CUSTOMER_STREAMS;
                let table = crate::tables::ACCOUNT_TABLE;
                let line = if cursors
                    .iter()
                    .any(|(_, s, _)| *s == format!("{prefix}/{table}/delta"))
                {
                    "change-tracking link saved: the next run reads only created, updated and deleted accounts"
                        .to_owned()
                } else if let Some((_, _, at)) = cursors
                    .iter()
                    .find(|(_, s, _)| *s == format!("{prefix}/{table}/since"))
                {
                    format!("last complete read began {at}: the next run reads accounts modified since")
                } else {
                    "none: the next run reads every account".to_owned()
                };
                lines.push(("accounts → customers".to_owned(), line));
            }
            for table in &settings.mapping.custom_tables {
                let logical = table.source_table.to_ascii_lowercase();
                let delta = crate::tables::delta_cursor(&logical);
                let since = crate::tables::since_cursor(&logical);
                let line = if cursors.iter().any(|(_, stream, _)| *stream == delta) {
                    "change-tracking link saved: the next run reads only created, updated and deleted rows"
                        .to_owned()
                } else if let Some((_, _, at)) = cursors.iter().find(|(_, stream, _)| *stream == since) {
                    format!("last complete read began {at}: the next run reads rows modified since")
                } else {
                    "none: the next run reads every row".to_owned()
                };
                lines.push((format!("table {logical} → {}", table.desk_table), line));
            }
            Ok(CursorReport {
                lines,
                json: json!({
                    "connection": connection.name,
                    "organisation": settings.url,
                    "streams": cursors.iter().map(|(tenant, stream, _)| json!({"tenant_id": tenant, "stream": stream})).collect::<Vec<_>>(),
                }),
            })
        })
    }

    fn open(&self, connection: &Connection) -> Result<Box<dyn SourceConnection>, SyncError> {
        Ok(Box::new(DynamicsConnection {
            settings: DynamicsSettings::of(connection)?,
            connection: connection.clone(),
            template: self.template.clone(),
            page_size: self.page_size,
            extra: Vec::new(),
        }))
    }

    fn check<'a>(
        &'a self,
        cx: &'a SourceContext,
        connection: &'a Connection,
        instance: &'a str,
    ) -> BoxFuture<'a, Vec<CheckPoint>> {
        Box::pin(crate::check::check(cx, self, connection, instance))
    }
}

/// One Dynamics 365 connection, opened.
struct DynamicsConnection {
    connection: Connection,
    settings: DynamicsSettings,
    template: DataverseConfig,
    page_size: u32,
    /// The contact columns the mappings read beyond the usual ones (see `describe`).
    extra: Vec<ExtraColumn>,
}

impl DynamicsConnection {
    /// The organisation's client, with the connection's tokens.
    async fn client(&self, cx: &SourceContext) -> Result<DataverseClient, SyncError> {
        let http = deskbridge_source::http_client(&self.connection.name)?;
        let tokens =
            crate::auth::token_provider(&cx.store, &self.connection, &self.settings, &http, &cx.clock)
                .await?;
        DynamicsSource::new(self.template.clone(), self.page_size).client(&self.settings, tokens, &http)
    }

    /// Types the contact columns `mapping` reads beyond the usual ones from the organisation's
    /// metadata (one request, made only when there are such columns). A column the contact table
    /// does not have is left out: validation then names it as unknown.
    async fn learn_columns(&mut self, cx: &SourceContext, mapping: &MappingConfig) -> Result<(), SyncError> {
        let wanted: Vec<String> = mapping
            .properties_read()
            .into_iter()
            .filter(|p| !crate::read::is_contact_property(p))
            .collect();
        if wanted.is_empty() {
            self.extra = Vec::new();
            return Ok(());
        }
        let client = self.client(cx).await?;
        let attributes = client
            .attributes("contact")
            .await
            .map_err(|e| crate::error::from_dataverse(&e))?;
        self.extra = wanted
            .iter()
            .filter_map(|name| {
                let attribute = attributes
                    .iter()
                    .find(|a| a.logical_name.eq_ignore_ascii_case(name))?;
                Some(ExtraColumn {
                    name: attribute.logical_name.clone(),
                    ty: crate::read::column_type(attribute)?,
                })
            })
            .collect();
        Ok(())
    }

    async fn read_into(
        &self,
        cx: &SourceContext,
        request: ReadRequest<'_>,
        out: &mut Emitter,
    ) -> Result<(), SyncError> {
        let client = self.client(cx).await?;
        let tenant = self.settings.tenant_id.as_str();
        if request.entity == SyncEntity::Customers {
            let Some(customers) = &request.config.config().customers else {
                return Err(SyncError::BadSettings(
                    self.connection.name.clone(),
                    "customer import is not set up: add customer mappings to the connection's mappings"
                        .into(),
                ));
            };
            let reader = crate::tables::TableReader {
                client: &client,
                tenant,
                customer: self.settings.customer_id,
                page_size: self.page_size,
                requests: cx.requests.as_ref(),
                started_at: cx.clock.now(),
            };
            return crate::tables::read_customers(
                &reader,
                customers,
                request.cursors,
                request.full,
                &cx.clock,
                out,
            )
            .await;
        }
        if request.entity == SyncEntity::CustomTables {
            let reader = crate::tables::TableReader {
                client: &client,
                tenant,
                customer: self.settings.customer_id,
                page_size: self.page_size,
                requests: cx.requests.as_ref(),
                started_at: cx.clock.now(),
            };
            let mappings = &request.config.config().custom_tables;
            return crate::tables::read_tables(
                &reader,
                mappings,
                request.cursors,
                request.full,
                &cx.clock,
                out,
            )
            .await;
        }
        let read = ContactsRead {
            client: &client,
            tenant,
            customer: self.settings.customer_id,
            page_size: self.page_size,
            requests: cx.requests.as_ref(),
            extra: &self.extra,
        };
        if !request.full
            && let Some(link) = request.cursors.get(tenant, CONTACTS_DELTA)
        {
            match read.delta(link, out).await {
                Ok(()) => return Ok(()),
                Err(DeltaStart::Failed(e)) => return Err(e),
                Err(DeltaStart::Expired(e)) => {
                    out.emit(ReadEvent::Note(format!(
                        "the contacts' change-tracking token has expired ({}); running a full read instead, which \
                         deactivates only what a complete read does not find",
                        e.api().map(|a| a.code.as_str()).unwrap_or_default()
                    )))
                    .await?;
                }
            }
        }
        read.full(out).await
    }
}

impl SourceConnection for DynamicsConnection {
    fn connection(&self) -> &Connection {
        &self.connection
    }

    fn mapping(&self) -> &MappingConfig {
        &self.settings.mapping
    }

    fn source_properties(&self) -> SourceProperties {
        let mut properties = crate::read::contact_properties();
        properties.extend(self.extra.iter().map(|c| (c.name.clone(), c.ty)));
        properties
    }

    fn describe<'a>(
        &'a mut self,
        cx: &'a SourceContext,
        mapping: &'a MappingConfig,
    ) -> BoxFuture<'a, Result<(), SyncError>> {
        Box::pin(self.learn_columns(cx, mapping))
    }

    fn partitions(&self) -> Vec<Partition> {
        vec![Partition {
            tenant_id: self.settings.tenant_id.clone(),
            customer_id: self.settings.customer_id,
        }]
    }

    fn read_notes(&self, config: &ValidatedConfig) -> Vec<String> {
        config
            .property_uses()
            .get("parentcustomerid_account")
            .map(|used_by| {
                vec![format!(
                    "parentcustomerid_account/name is the parent account's name as the contact's lookup carries it \
                     (used by {}): change tracking reports a renamed account's contacts only when they change \
                     themselves; a full read (deskbridge sync --full) refreshes every name",
                    used_by.join(", ")
                )]
            })
            .unwrap_or_default()
    }

    fn read<'a>(
        &'a self,
        cx: &'a SourceContext,
        request: ReadRequest<'a>,
    ) -> BoxStream<'a, Result<ReadEvent, SyncError>> {
        read_stream(move |mut out| async move { self.read_into(cx, request, &mut out).await })
    }

    /// Contacts have no groups: site mappings cannot name one.
    fn group_names<'a>(
        &'a self,
        _cx: &'a SourceContext,
    ) -> BoxFuture<'a, Result<BTreeSet<String>, SyncError>> {
        Box::pin(async { Ok(BTreeSet::new()) })
    }

    fn settings_with_mapping(&self, mapping: &MappingConfig) -> Result<Value, SyncError> {
        let mut settings = self.settings.clone();
        settings.mapping = mapping.clone();
        serde_json::to_value(&settings)
            .map_err(|e| SyncError::BadSettings(self.connection.name.clone(), e.to_string()))
    }
}
