//! Which source serves which connection kind. The binary builds the registry once, with every
//! connector it ships; the pipeline, the agent and the web reach connectors only through it.

use std::sync::Arc;

use deskbridge_store::Connection;

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

    /// The sources, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Source>> + '_ {
        self.sources.iter()
    }

    /// The kinds served, in registration order.
    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.sources.iter().map(|s| s.kind())
    }
}
