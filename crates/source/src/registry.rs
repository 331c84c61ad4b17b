//! Which source serves which connection kind. The binary builds the registry once, with every
//! connector it ships; the pipeline, the agent and the web reach connectors only through it.

use std::collections::BTreeMap;
use std::sync::Arc;

use deskbridge_store::{Connection, Store};

use crate::settings::EndpointPolicy;
use crate::{Source, SyncError};

/// A customer tenant a connection maps to a desk customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedTenant {
    /// Lower case.
    pub tenant_id: String,
    pub tenant_name: String,
    pub customer_name: Option<String>,
    /// The connection that maps it.
    pub connection_name: String,
}

/// The sources this process knows, by kind, and the endpoints their connections may name.
#[derive(Clone, Default)]
pub struct SourceRegistry {
    sources: Vec<Arc<dyn Source>>,
    endpoints: EndpointPolicy,
}

impl std::fmt::Debug for SourceRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.kinds()).finish()
    }
}

impl SourceRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a source; a later source of the same kind replaces the earlier one.
    #[must_use]
    pub fn with(mut self, source: Arc<dyn Source>) -> Self {
        self.sources.retain(|s| s.kind() != source.kind());
        self.sources.push(source);
        self
    }

    /// Sets which hosts connections' endpoints may name (Microsoft's clouds by default).
    #[must_use]
    pub fn with_endpoint_policy(mut self, policy: EndpointPolicy) -> Self {
        self.endpoints = policy;
        self
    }

    pub fn endpoint_policy(&self) -> &EndpointPolicy {
        &self.endpoints
    }

    /// The source of connections of `kind`, to describe or change them (nothing is sent to
    /// Microsoft through it without [`SourceRegistry::source_of`]).
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Source>> {
        self.sources.iter().find(|s| s.kind() == kind)
    }

    /// The source of `connection`, to work with it — read, check, sign in: its stored endpoints
    /// are checked against the policy first, so no credential goes to a host the policy refuses
    /// (however the configuration got there).
    pub fn source_of(&self, connection: &Connection) -> Result<&Arc<dyn Source>, SyncError> {
        let source = self.describe(connection)?;
        self.endpoints
            .check_stored(&connection.name, source.settings(), &connection.config)?;
        Ok(source)
    }

    /// The source of `connection`, to show or change its settings (its endpoints unchecked, so a
    /// connection whose endpoint the policy now refuses can still be corrected).
    pub fn describe(&self, connection: &Connection) -> Result<&Arc<dyn Source>, SyncError> {
        self.get(&connection.kind)
            .ok_or_else(|| SyncError::UnsupportedKind {
                name: connection.name.clone(),
                kind: connection.kind.clone(),
            })
    }

    /// The customer tenants connections map to a desk customer (those a tenant table lists with
    /// a customer), each with the connection's name: the tenants single sign-on allows without
    /// an administrator adding them. Computed, not stored, so a tenant unmapped or a connection
    /// deleted stops being allowed at once. A connection whose tenants cannot be read adds none.
    pub async fn mapped_tenants(&self, store: &Store) -> Result<Vec<MappedTenant>, SyncError> {
        let mut tx = store.read().await?;
        let connections = tx.connections().await?;
        tx.commit().await?;
        let mut out = Vec::new();
        for connection in &connections {
            let Some(table) = self.get(&connection.kind).and_then(|s| s.tenant_table()) else {
                continue;
            };
            let tenants = match table.tenants(store, connection).await {
                Ok(tenants) => tenants,
                Err(e) => {
                    tracing::warn!(connection = %connection.name, error = %e, "its tenants are not allowed to sign in: they cannot be read");
                    continue;
                }
            };
            out.extend(
                tenants
                    .into_iter()
                    .filter(|t| t.customer_id.is_some())
                    .map(|t| MappedTenant {
                        tenant_id: t.tenant_id.to_lowercase(),
                        tenant_name: t.name,
                        customer_name: t.customer_name,
                        connection_name: connection.name.clone(),
                    }),
            );
        }
        Ok(out)
    }

    /// The tenants of `connection` that an earlier connection (a lower id) already reads, each
    /// with that connection's name. A tenant is read by one connection: two would import the
    /// same people twice or take each other's records for their own. A connection that cannot be
    /// opened reads nothing here. Reads every connection: a run of many connections takes one
    /// [`SourceRegistry::tenant_readers`] snapshot and asks it instead.
    pub async fn tenants_read_before(
        &self,
        store: &Store,
        connection: &Connection,
    ) -> Result<BTreeMap<String, String>, SyncError> {
        if self.tenants_read_by(connection).is_empty() {
            return Ok(BTreeMap::new());
        }
        Ok(self.tenant_readers(store).await?.read_before(self, connection))
    }

    /// Every connection that reads tenant directories, with the tenants it reads, at this
    /// moment: what [`TenantReaders::read_before`] answers from without reading the store again.
    pub async fn tenant_readers(&self, store: &Store) -> Result<TenantReaders, SyncError> {
        let mut tx = store.read().await?;
        let connections = tx.connections().await?;
        tx.commit().await?;
        let mut readers: Vec<(i64, String, Vec<String>)> = connections
            .iter()
            .map(|c| (c.id.0, c.name.clone(), self.tenants_read_by(c)))
            .filter(|(_, _, tenants)| !tenants.is_empty())
            .collect();
        // The earliest reader is named: it is the one that keeps the tenant.
        readers.sort_by_key(|(id, _, _)| *id);
        Ok(TenantReaders { readers })
    }

    /// The tenants (lower-case) whose directory `connection` reads; none for a kind whose
    /// partitions several connections share, or a connection that cannot be opened.
    fn tenants_read_by(&self, connection: &Connection) -> Vec<String> {
        match self.describe(connection) {
            Ok(source) if source.reads_tenant_directory() => source
                .open(connection)
                .map(|open| {
                    open.partitions()
                        .into_iter()
                        .map(|p| p.tenant_id.to_ascii_lowercase())
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Refuses a new connection of `kind` for `tenant_id` when another connection already reads
    /// that tenant's directory (409, naming it).
    pub async fn refuse_tenant_read_elsewhere(
        &self,
        store: &Store,
        kind: &str,
        tenant_id: &str,
    ) -> Result<(), SyncError> {
        if !self.get(kind).is_some_and(|s| s.reads_tenant_directory()) {
            return Ok(());
        }
        let mut tx = store.read().await?;
        let mut others = tx.connections().await?;
        tx.commit().await?;
        others.sort_by_key(|o| o.id);
        for other in &others {
            let Ok(source) = self.describe(other) else {
                continue;
            };
            if !source.reads_tenant_directory() {
                continue;
            }
            let Ok(open) = source.open(other) else { continue };
            if open
                .partitions()
                .iter()
                .any(|p| p.tenant_id.eq_ignore_ascii_case(tenant_id))
            {
                return Err(SyncError::Conflict(format!(
                    "the tenant {tenant_id} is already read by connection {:?}: a tenant is read by one \
                     connection, so that no one is imported twice; change that connection instead, or remove it \
                     first",
                    other.name
                )));
            }
        }
        Ok(())
    }

    /// The sources, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Source>> + '_ {
        self.sources.iter()
    }

    /// The kinds served, in registration order.
    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.sources.iter().map(|s| s.kind())
    }
}

/// Which connections read which tenants' directories, as [`SourceRegistry::tenant_readers`]
/// found them.
#[derive(Debug, Clone, Default)]
pub struct TenantReaders {
    /// (connection id, name, tenants), by connection id.
    readers: Vec<(i64, String, Vec<String>)>,
}

impl TenantReaders {
    /// The tenants of `connection` (as it is now) that a connection with a lower id reads, each
    /// with that connection's name.
    pub fn read_before(
        &self,
        registry: &SourceRegistry,
        connection: &Connection,
    ) -> BTreeMap<String, String> {
        let own = registry.tenants_read_by(connection);
        let mut taken = BTreeMap::new();
        for (_, name, tenants) in self.readers.iter().filter(|(id, _, _)| *id < connection.id.0) {
            for tenant in tenants.iter().filter(|t| own.contains(t)) {
                taken.entry(tenant.clone()).or_insert_with(|| name.clone());
            }
        }
        taken
    }
}
