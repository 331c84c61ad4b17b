//! Which source serves which connection kind. The binary builds the registry once, with every
//! connector it ships; the pipeline, the agent and the web reach connectors only through it.

use std::collections::BTreeMap;
use std::sync::Arc;

use deskbridge_store::{Connection, Store};

use crate::settings::EndpointPolicy;
use crate::{Source, SyncError};

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

    /// The tenants of `connection` that an earlier connection (a lower id) already reads, each
    /// with that connection's name. A tenant is read by one connection: two would import the
    /// same people twice or take each other's records for their own. A connection that cannot be
    /// opened reads nothing here.
    pub async fn tenants_read_before(
        &self,
        store: &Store,
        connection: &Connection,
    ) -> Result<BTreeMap<String, String>, SyncError> {
        let own: Vec<String> = match self.describe(connection).and_then(|s| {
            if s.reads_tenant_directory() {
                s.open(connection)
            } else {
                Err(SyncError::Internal(String::new()))
            }
        }) {
            Ok(open) => open
                .partitions()
                .into_iter()
                .map(|p| p.tenant_id.to_ascii_lowercase())
                .collect(),
            Err(_) => return Ok(BTreeMap::new()),
        };
        if own.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut tx = store.read().await?;
        let mut others = tx.connections().await?;
        tx.commit().await?;
        // The earliest reader is named: it is the one that keeps the tenant.
        others.sort_by_key(|o| o.id);
        let mut taken = BTreeMap::new();
        for other in others.iter().filter(|o| o.id < connection.id) {
            let Ok(source) = self.describe(other) else {
                continue;
            };
            if !source.reads_tenant_directory() {
                continue;
            }
            let Ok(open) = source.open(other) else { continue };
            for partition in open.partitions() {
                let tenant = partition.tenant_id.to_ascii_lowercase();
                if own.contains(&tenant) {
                    taken.entry(tenant).or_insert_with(|| other.name.clone());
                }
            }
        }
        Ok(taken)
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
