//! deskbridge-core: the vocabulary every other crate shares and nothing that does I/O.
//!
//! It owns the [`Clock`] (time is always a parameter, so tests control it), the typed
//! identifiers of the desk's records and of sync state, and the catalogue of stable error
//! codes ([`ErrorCode`]) that the CLI, the JSON API and the logs report. Crates map their own
//! errors onto these codes; a code, once published, keeps its meaning.

mod clock;
mod error_code;
mod ids;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use error_code::ErrorCode;
pub use ids::{ConnectionId, RecordId, RunId};
pub mod redact;
