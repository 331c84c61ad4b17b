//! deskbridge-core: the vocabulary every other crate shares and nothing that does I/O.
//!
//! It owns the [`Clock`] (time is always a parameter, so tests control it), the typed
//! identifiers of the desk's records and of sync state, and the catalogue of stable error
//! codes ([`ErrorCode`]) that the CLI, the JSON API and the logs report, with what follows from
//! a code (its [`ErrorKind`], HTTP status and CLI exit status); and CSV for exports people open
//! in spreadsheets ([`csv`]). Every crate's error type
//! implements [`HasErrorCode`] to map itself onto a code; a code, once published, keeps its
//! meaning and its string.

mod clock;
pub mod csv;
pub mod error_code;
mod ids;
mod json;
mod transport;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use error_code::{ErrorCode, ErrorKind, HasErrorCode, exit};
pub use ids::{ConnectionId, RecordId, RunId};
pub use json::{JsonProblem, json_from_value, json_kind, parse_json, plain_words};
pub use transport::transport_words;
pub mod redact;
