//! How a failed command ends: its catalogue code, hence its exit status.
//!
//! Commands return `anyhow::Error`. The libraries' errors travel in it unchanged (`?` keeps
//! them downcastable), so [`exit_status`] finds the first error in the chain that knows its
//! catalogue code and exits with [`ErrorCode::exit_code`]. Failures the CLI itself finds (an
//! unknown name, a bad flag, a failed check) are [`CliError`]s with their code.
//!
//! Exit statuses (see [`deskbridge_core::exit`]): 0 success; 1 a check point or a sync run
//! failed; 2 usage, invalid input or configuration, an unknown name (clap's usage errors exit 2
//! too); 3 Microsoft refused or could not be reached; 4 the database; 70 a bug. An error no one
//! classified exits 1, as every failure did before codes.

use deskbridge_core::{ErrorCode, HasErrorCode, exit};

/// A failure the CLI itself reports, with its code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    pub code: ErrorCode,
    pub message: String,
}

impl CliError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl HasErrorCode for CliError {
    fn error_code(&self) -> ErrorCode {
        self.code
    }
}

/// The error and its causes as one line, each said once: a cause whose words the line already
/// holds (an error that quotes its source) is not repeated. The database's own words (SQL,
/// constraints, driver text) are for the log, not the line.
pub fn said_once(e: &anyhow::Error) -> String {
    const DATABASE: &str =
        "the database could not complete the request (DESKBRIDGE_LOG=debug shows the database's own message)";
    let raw_database: Vec<String> = e
        .chain()
        .filter_map(
            |cause| match cause.downcast_ref::<deskbridge_store::StoreError>() {
                Some(db @ deskbridge_store::StoreError::Database(_)) => Some(db.to_string()),
                _ => None,
            },
        )
        .collect();
    let mut line = String::new();
    for cause in e.chain() {
        let mut text = cause.to_string();
        for raw in &raw_database {
            text = text.replace(raw.as_str(), DATABASE);
        }
        let text = text.trim();
        if text.is_empty() || line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    line
}

/// The catalogue code of a failed command: the outermost error in the chain that has one.
pub fn error_code_of(e: &anyhow::Error) -> Option<ErrorCode> {
    e.chain().find_map(code_of)
}

/// The exit status of a failed command (the one place the CLI decides it).
pub fn exit_status(e: &anyhow::Error) -> i32 {
    error_code_of(e).map_or(exit::FAILED, ErrorCode::exit_code)
}

/// Every error type a command can fail with that knows its code. `anyhow` erases the type, so
/// each is tried by name; a type missing here only loses its precise exit status (it exits 1).
fn code_of(e: &(dyn std::error::Error + 'static)) -> Option<ErrorCode> {
    fn try_as<T: HasErrorCode + std::error::Error + 'static>(
        e: &(dyn std::error::Error + 'static),
    ) -> Option<ErrorCode> {
        e.downcast_ref::<T>().map(HasErrorCode::error_code)
    }
    try_as::<CliError>(e)
        .or_else(|| try_as::<deskbridge_source::SyncError>(e))
        .or_else(|| try_as::<deskbridge_store::StoreError>(e))
        .or_else(|| try_as::<deskbridge_agent::AgentError>(e))
        .or_else(|| try_as::<deskbridge_agent::schedule::ScheduleError>(e))
        .or_else(|| try_as::<deskbridge_secrets::SealError>(e))
        .or_else(|| try_as::<deskbridge_secrets::KeyFileError>(e))
        .or_else(|| try_as::<deskbridge_mapping::ConfigError>(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outermost_classified_error_decides() {
        let store = deskbridge_store::StoreError::NotFound {
            entity: "connection",
            id: 7,
        };
        let e = anyhow::Error::new(store).context("while syncing");
        assert_eq!(error_code_of(&e), Some(ErrorCode::NotFound));
        assert_eq!(exit_status(&e), 2);
        let e = anyhow::Error::new(CliError::new(ErrorCode::CheckFailed, "1 of 5 checks failed"));
        assert_eq!(exit_status(&e), 1);
        let e = anyhow::Error::new(deskbridge_source::SyncError::Upstream {
            error_code: ErrorCode::UpstreamAuthentication,
            code: "AADSTS7000215".into(),
            message: "bad secret".into(),
            remedy: String::new(),
        });
        assert_eq!(exit_status(&e), 3);
        assert_eq!(exit_status(&anyhow::anyhow!("something unclassified")), 1);
    }

    #[test]
    fn a_cause_the_line_already_holds_is_not_said_again() {
        let conflict =
            deskbridge_store::StoreError::Conflict("a connection named \"x\" already exists".into());
        let e = anyhow::Error::new(deskbridge_source::SyncError::Store(conflict));
        assert_eq!(said_once(&e), "a connection named \"x\" already exists");
        let e = anyhow::anyhow!("cannot read m.json").context("mappings of \"x\"");
        assert_eq!(said_once(&e), "mappings of \"x\": cannot read m.json");
    }
}
