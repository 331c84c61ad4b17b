//! deskbridge-csdl: reads Microsoft Graph's OData CSDL metadata and checks JSON bodies against it.
//!
//! It owns the in-memory model of the schema (entity, complex and enum types with their base types,
//! properties, navigation properties and nullability) and the rules that decide whether a JSON value is
//! something real Microsoft Graph could have sent. The emulator's tests use it to prove that what the
//! emulator serves has Graph's names, types and nullability.
//!
//! Invariants:
//! - Type names are always stored fully qualified (`microsoft.graph.user`); schema aliases (`graph.`,
//!   `self.`) are resolved while loading, and callers may pass either form.
//! - Checking never panics and never stops at the first problem: every violation is reported with a
//!   JSON path (`$.assignedLicenses[0].skuId`) so a failing test names the exact spot.
//! - Loading is strict (a malformed document is an error); checking is total (any JSON value yields a
//!   list, possibly empty, of violations).

mod check;
mod model;
mod primitive;

use std::path::{Path, PathBuf};

pub use model::Schema;

/// Failure to load a CSDL document.
#[derive(Debug, thiserror::Error)]
pub enum CsdlError {
    #[error("cannot read CSDL file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CSDL document is not well-formed XML: {0}")]
    Xml(#[from] roxmltree::Error),
    #[error("CSDL document is invalid: {0}")]
    Invalid(String),
}

/// One way in which a JSON value departs from the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON path of the offending value, rooted at `$` (e.g. `$.value[2].assignedLicenses[0].skuId`).
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Environment variable that points at another copy of Graph's v1.0 metadata.
pub const METADATA_PATH_ENV: &str = "DESKBRIDGE_GRAPH_CSDL";

/// Where Graph's v1.0 metadata lives in a checkout: `../shared/data/graph-v1.0-metadata.xml` beside the
/// workspace root, unless `DESKBRIDGE_GRAPH_CSDL` names another file.
pub fn default_metadata_path() -> PathBuf {
    if let Some(overridden) = std::env::var_os(METADATA_PATH_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(overridden);
    }
    // CARGO_MANIFEST_DIR is <workspace>/crates/csdl; the shared folder sits beside the workspace.
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace_root = manifest_dir
        .parent()
        .and_then(Path::parent)
        .unwrap_or(manifest_dir);
    workspace_root
        .join("..")
        .join("shared")
        .join("data")
        .join("graph-v1.0-metadata.xml")
}
