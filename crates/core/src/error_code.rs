//! The catalogue of deskbridge's error codes, and everything that follows from a code.
//!
//! What lives here and nowhere else:
//! - [`ErrorCode`]: every code deskbridge reports (in the JSON API's `{"error": {"code"}}`, in the
//!   integration errors recorded against a run, in logs), with its string ([`ErrorCode::as_str`]);
//! - [`ErrorKind`]: how a caller should treat a failure (retry? fix the request?);
//! - the HTTP status an error answers with ([`ErrorCode::http_status`]) and the exit status the
//!   CLI ends with ([`ErrorCode::exit_code`]);
//! - [`HasErrorCode`], the trait each crate's error type implements to say which code it is.
//!
//! What does not live here: Microsoft's own codes (`AADSTS7000215`,
//! `Authorization_RequestDenied`, …). They are data that errors carry beside ours (see
//! `deskbridge_source::SyncError::Upstream`); their catalogue code is one of the `upstream_*`
//! codes.
//!
//! A code's string never changes once released: API clients and stored integration errors
//! depend on it. A new failure gets a new code.

use serde::{Serialize, Serializer};

/// Declares [`ErrorCode`], its strings and [`ErrorCode::ALL`] from one list, so a code cannot
/// exist without being listed (and so without being checked by the catalogue's tests).
macro_rules! catalogue {
    ($( $(#[$doc:meta])* $variant:ident => $text:literal, )*) => {
        /// The stable error codes deskbridge reports. See the [module](self) for what follows from
        /// a code; each variant's string is in its doc.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* #[doc = concat!("\n\nCode: `", $text, "`.")] $variant, )*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The code as API clients, stored integration errors and logs see it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                }
            }
        }
    };
}

catalogue! {
    // ---- configuration and input
    /// A setting (of a connection, of the store URL, …) is invalid. 422 on the API.
    InvalidConfiguration => "invalid_configuration",
    /// The request or command carries an invalid value.
    InvalidInput => "invalid_input",
    /// The named thing (connection, record, run, page) does not exist.
    NotFound => "not_found",
    /// A record with the same unique key exists.
    AlreadyExists => "already_exists",
    /// The request clashes with the state of what it names (the web's generic 409).
    Conflict => "conflict",
    /// A source's rules refuse the change asked of it (a seat reduction of a new-commerce
    /// subscription outside its cancellation window). 409.
    ChangeRefused => "change_refused",
    /// A schedule (interval, cron, time zone, window, entity) was refused.
    InvalidSchedule => "invalid_schedule",
    /// A delegated sign-in came back without completing (refused by Microsoft, or an unknown
    /// state). When Microsoft refused it, its own code is shown instead.
    InvalidSignIn => "invalid_sign_in",
    // ---- sync: a record's failure, recorded against the run (the run goes on)
    /// The mappings could not plan a record from its source values.
    MappingFailed => "mapping_error",
    /// A planned reference (e.g. a user's site) names a record that was not created.
    UnresolvedReference => "unresolved_reference",
    // ---- runs
    /// A sync of the connection is already running or queued.
    RunInProgress => "run_in_progress",
    /// The run has finished, so it cannot be cancelled.
    RunFinished => "run_finished",
    /// Only a held run can be approved.
    RunNotHeld => "run_not_held",
    /// A queued sync ended before its run started.
    RunNotStarted => "run_not_started",
    /// A sync ran and failed; the run's errors say why. (The CLI's `sync`.)
    RunFailed => "run_failed",
    /// A configuration check ran and at least one point failed. (The CLI's `check`.)
    CheckFailed => "check_failed",
    // ---- access (the web)
    /// No session and no valid API token.
    Unauthenticated => "unauthenticated",
    /// The caller's role does not allow this.
    Forbidden => "forbidden",
    /// A session's form came without its CSRF token.
    CsrfFailed => "csrf_failed",
    /// The account signed in with a one-time password and must choose a new one first.
    PasswordChangeRequired => "password_change_required",
    /// Too many failed sign-ins for the account or from the address: wait, or have an
    /// administrator unlock the account. 429.
    TooManyAttempts => "too_many_attempts",
    /// The request's body is larger than the server accepts. 413.
    PayloadTooLarge => "payload_too_large",
    // ---- storage
    /// The database cannot be reached.
    DatabaseUnavailable => "database_unavailable",
    /// The database answered with an error, or holds a value deskbridge cannot read.
    DatabaseError => "database_error",
    /// A schema migration failed, was changed after it was applied, or is newer than this build.
    MigrationFailed => "migration_failed",
    // ---- secrets
    /// No master key is configured.
    SecretKeyMissing => "secret_key_missing",
    /// The master key (or its key file) is not usable.
    SecretKeyInvalid => "secret_key_invalid",
    /// A stored secret does not open with the configured keys.
    SecretUndecryptable => "secret_undecryptable",
    // ---- upstream (Microsoft); Microsoft's own code travels beside these
    /// Microsoft refused the credentials, token or sign-in.
    UpstreamAuthentication => "upstream_authentication",
    /// The app lacks a permission, consent or licence for the call.
    UpstreamPermission => "upstream_permission",
    /// Microsoft is throttling the app (after every retry).
    UpstreamThrottled => "upstream_throttled",
    /// Microsoft could not be reached or answered 5xx (after every retry).
    UpstreamUnavailable => "upstream_unavailable",
    /// Microsoft answered with a body deskbridge cannot read.
    UpstreamMalformedResponse => "upstream_malformed_response",
    /// The object does not exist (any more) in the tenant.
    UpstreamNotFound => "upstream_not_found",
    // ---- everything else
    /// A bug, or a task that stopped unexpectedly.
    Internal => "internal",
}

/// How a failure should be treated by callers. The HTTP status and the exit code default by
/// kind; [`ErrorCode::http_status`] and [`ErrorCode::exit_code`] refine that per code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller sent something wrong (or is not allowed to); retrying the same request will
    /// fail again.
    InvalidRequest,
    /// The request clashes with the current state (a run in progress, an existing record); it
    /// may succeed once that state changes.
    Conflict,
    /// The operation ran to its end and reported failure (a check point, a sync run); its report
    /// says why.
    Failed,
    /// Something outside deskbridge (Microsoft, the database) failed; retrying later may succeed.
    Unavailable,
    /// A bug or an inconsistency in deskbridge itself.
    Internal,
}

/// Exit statuses of the `deskbridge` CLI, from [`ErrorCode::exit_code`]. Scripts may rely on
/// them: 0 is success and every failure is non-zero, as always.
pub mod exit {
    /// The command succeeded.
    pub const OK: i32 = 0;
    /// The command ran and what it did failed: a `check` point, a sync run.
    pub const FAILED: i32 = 1;
    /// Usage, invalid input or configuration, an unknown name, missing access. (clap exits 2
    /// for usage errors too.)
    pub const INVALID: i32 = 2;
    /// Microsoft (the identity platform or Graph) refused or could not be reached.
    pub const UPSTREAM: i32 = 3;
    /// The database could not be reached or failed.
    pub const DATABASE: i32 = 4;
    /// A bug in deskbridge (EX_SOFTWARE in sysexits.h).
    pub const INTERNAL: i32 = 70;
}

impl ErrorCode {
    /// How callers should treat the failure.
    pub const fn kind(self) -> ErrorKind {
        // No `_` arm: a new code must choose its kind here.
        match self {
            Self::InvalidConfiguration
            | Self::InvalidInput
            | Self::NotFound
            | Self::InvalidSchedule
            | Self::InvalidSignIn
            | Self::MappingFailed
            | Self::UnresolvedReference
            | Self::Unauthenticated
            | Self::Forbidden
            | Self::CsrfFailed
            | Self::PasswordChangeRequired
            | Self::PayloadTooLarge
            | Self::SecretKeyMissing
            | Self::SecretKeyInvalid
            | Self::SecretUndecryptable
            | Self::UpstreamAuthentication
            | Self::UpstreamPermission
            | Self::UpstreamNotFound => ErrorKind::InvalidRequest,
            // It may succeed once the wait is over.
            Self::TooManyAttempts
            | Self::AlreadyExists
            | Self::Conflict
            | Self::ChangeRefused
            | Self::RunInProgress
            | Self::RunFinished
            | Self::RunNotHeld
            | Self::RunNotStarted => ErrorKind::Conflict,
            Self::RunFailed | Self::CheckFailed => ErrorKind::Failed,
            Self::DatabaseUnavailable
            | Self::UpstreamThrottled
            | Self::UpstreamUnavailable
            | Self::UpstreamMalformedResponse => ErrorKind::Unavailable,
            Self::DatabaseError | Self::MigrationFailed | Self::Internal => ErrorKind::Internal,
        }
    }

    /// The HTTP status the JSON API (and the pages) answer this code with: the kind's status
    /// unless the code needs a more precise one.
    pub const fn http_status(self) -> u16 {
        match self {
            // More precise than 400.
            Self::InvalidConfiguration => 422,
            Self::NotFound => 404,
            Self::Unauthenticated => 401,
            Self::Forbidden | Self::CsrfFailed | Self::PasswordChangeRequired => 403,
            Self::PayloadTooLarge => 413,
            Self::TooManyAttempts => 429,
            // A stored secret the server cannot open is the server's problem, not the client's.
            Self::SecretKeyMissing | Self::SecretKeyInvalid | Self::SecretUndecryptable => 500,
            // Microsoft failed, not the client nor deskbridge: a gateway's error, whatever the
            // kind (the API has always answered 502 for these).
            Self::UpstreamAuthentication
            | Self::UpstreamPermission
            | Self::UpstreamThrottled
            | Self::UpstreamUnavailable
            | Self::UpstreamMalformedResponse
            | Self::UpstreamNotFound => 502,
            other => match other.kind() {
                ErrorKind::InvalidRequest => 400,
                ErrorKind::Conflict => 409,
                ErrorKind::Failed => 422,
                ErrorKind::Unavailable => 503,
                ErrorKind::Internal => 500,
            },
        }
    }

    /// The exit status of the CLI when a command fails with this code (see [`exit`]).
    pub const fn exit_code(self) -> i32 {
        // No `_` arm: a new code must choose its exit status here.
        match self {
            Self::RunFailed | Self::CheckFailed => exit::FAILED,
            Self::InvalidConfiguration
            | Self::InvalidInput
            | Self::NotFound
            | Self::AlreadyExists
            | Self::Conflict
            | Self::ChangeRefused
            | Self::InvalidSchedule
            | Self::InvalidSignIn
            | Self::MappingFailed
            | Self::UnresolvedReference
            | Self::RunInProgress
            | Self::RunFinished
            | Self::RunNotHeld
            | Self::RunNotStarted
            | Self::Unauthenticated
            | Self::Forbidden
            | Self::CsrfFailed
            | Self::PasswordChangeRequired
            | Self::TooManyAttempts
            | Self::PayloadTooLarge
            | Self::SecretKeyMissing
            | Self::SecretKeyInvalid
            | Self::SecretUndecryptable => exit::INVALID,
            Self::UpstreamAuthentication
            | Self::UpstreamPermission
            | Self::UpstreamThrottled
            | Self::UpstreamUnavailable
            | Self::UpstreamMalformedResponse
            | Self::UpstreamNotFound => exit::UPSTREAM,
            Self::DatabaseUnavailable | Self::DatabaseError | Self::MigrationFailed => exit::DATABASE,
            Self::Internal => exit::INTERNAL,
        }
    }

    /// The code whose string is `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == text)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// By hand, not derived: a few strings (`mapping_error`) are not the variant's snake case.
impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// An error that knows its catalogue code. Every crate's error type implements it, so the web
/// (HTTP status), the CLI (exit status) and the run's recorded errors all ask the same question.
pub trait HasErrorCode {
    /// The catalogue code. For a failure Microsoft reported, an `upstream_*` code; Microsoft's
    /// own code is carried by the error itself.
    fn error_code(&self) -> ErrorCode;
}

impl HasErrorCode for ErrorCode {
    fn error_code(&self) -> ErrorCode {
        *self
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_code_has_a_distinct_string_a_kind_a_status_and_an_exit_code() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} is used twice");
            assert!(
                !text.is_empty() && text.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{text} is not snake case"
            );
            assert_eq!(ErrorCode::parse(text), Some(*code));
            let _kind: ErrorKind = code.kind();
            let status = code.http_status();
            assert!(
                (400..600).contains(&status),
                "{text}: HTTP {status} is not an error"
            );
            let exit = code.exit_code();
            assert_ne!(exit, exit::OK, "{text} would exit 0");
            assert!(
                (1..=125).contains(&exit),
                "{text}: exit {exit} is not a usable status"
            );
            assert_eq!(serde_json::to_value(code).ok(), Some(serde_json::json!(text)));
        }
        assert_eq!(seen.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn released_strings_keep_their_values() {
        // API clients and stored integration errors use these; they never change.
        for (code, text) in [
            (ErrorCode::InvalidConfiguration, "invalid_configuration"),
            (ErrorCode::InvalidInput, "invalid_input"),
            (ErrorCode::NotFound, "not_found"),
            (ErrorCode::AlreadyExists, "already_exists"),
            (ErrorCode::Conflict, "conflict"),
            (ErrorCode::ChangeRefused, "change_refused"),
            (ErrorCode::InvalidSchedule, "invalid_schedule"),
            (ErrorCode::InvalidSignIn, "invalid_sign_in"),
            (ErrorCode::MappingFailed, "mapping_error"),
            (ErrorCode::UnresolvedReference, "unresolved_reference"),
            (ErrorCode::RunInProgress, "run_in_progress"),
            (ErrorCode::RunFinished, "run_finished"),
            (ErrorCode::RunNotHeld, "run_not_held"),
            (ErrorCode::RunNotStarted, "run_not_started"),
            (ErrorCode::Unauthenticated, "unauthenticated"),
            (ErrorCode::Forbidden, "forbidden"),
            (ErrorCode::CsrfFailed, "csrf_failed"),
            (ErrorCode::PasswordChangeRequired, "password_change_required"),
            (ErrorCode::DatabaseUnavailable, "database_unavailable"),
            (ErrorCode::DatabaseError, "database_error"),
            (ErrorCode::MigrationFailed, "migration_failed"),
            (ErrorCode::SecretUndecryptable, "secret_undecryptable"),
            (ErrorCode::UpstreamAuthentication, "upstream_authentication"),
            (ErrorCode::UpstreamUnavailable, "upstream_unavailable"),
            (ErrorCode::Internal, "internal"),
        ] {
            assert_eq!(code.as_str(), text);
        }
    }

    #[test]
    fn statuses_the_api_has_always_answered() {
        assert_eq!(ErrorCode::NotFound.http_status(), 404);
        assert_eq!(ErrorCode::InvalidInput.http_status(), 400);
        assert_eq!(ErrorCode::InvalidConfiguration.http_status(), 422);
        assert_eq!(ErrorCode::AlreadyExists.http_status(), 409);
        assert_eq!(ErrorCode::RunInProgress.http_status(), 409);
        assert_eq!(ErrorCode::Unauthenticated.http_status(), 401);
        assert_eq!(ErrorCode::PasswordChangeRequired.http_status(), 403);
        assert_eq!(ErrorCode::TooManyAttempts.http_status(), 429);
        assert_eq!(ErrorCode::PayloadTooLarge.http_status(), 413);
        assert_eq!(ErrorCode::DatabaseUnavailable.http_status(), 503);
        assert_eq!(ErrorCode::UpstreamThrottled.http_status(), 502);
        assert_eq!(ErrorCode::Internal.http_status(), 500);
    }

    #[test]
    fn exit_codes_group_failures() {
        assert_eq!(ErrorCode::CheckFailed.exit_code(), 1);
        assert_eq!(ErrorCode::NotFound.exit_code(), 2);
        assert_eq!(ErrorCode::InvalidInput.exit_code(), 2);
        assert_eq!(ErrorCode::UpstreamAuthentication.exit_code(), 3);
        assert_eq!(ErrorCode::DatabaseUnavailable.exit_code(), 4);
        assert_eq!(ErrorCode::Internal.exit_code(), 70);
    }
}
