//! Which source serves which connection kind. The binary builds the registry once, with every
//! connector it ships; the pipeline, the agent and the web reach connectors only through it.

use std::sync::Arc;

use deskbridge_store::Connection;

use crate::{Source, SyncError};

/// The sources this process knows, by kind.
#[derive(Clone, Default)]
pub struct SourceRegistry {
    sources: Vec<Arc<dyn Source>>,
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

    /// The source of connections of `kind`.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Source>> {
        self.sources.iter().find(|s| s.kind() == kind)
    }

    /// The source of `connection`, or why there is none.
    pub fn source_of(&self, connection: &Connection) -> Result<&Arc<dyn Source>, SyncError> {
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
