//! The mechanics every interactive sign-in shares (authorization code with PKCE, see
//! [`crate::SignIn`]), whichever connector and app it is for: what the second step needs is sealed
//! beside the connection between the two steps, the state that comes back is compared in
//! constant time, and the redirect is parsed into a code or a refusal.
//!
//! Why sealed in the store rather than kept in memory: the sign-in has a browser in between, and
//! the process that receives the redirect (the CLI's loopback listener, the web's callback) need
//! not be the one that started it. Why here: the connectors that sign in (Entra, CSP, Dynamics)
//! must agree on these rules, and a copy per connector drifts. Nothing here speaks a Microsoft
//! API: building the authorize URL and redeeming the code stay with each connector.

use deskbridge_core::{ConnectionId, ErrorCode, SharedClock};
use deskbridge_store::{Store, WriteContext};
use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

use crate::{ConnectionSecrets, SyncError};

/// How long a started sign-in may take; Microsoft's authorization codes live for minutes, too.
pub const PENDING_LIFETIME: SignedDuration = SignedDuration::from_mins(15);

/// What the second step of a sign-in needs, sealed between the two steps.
#[derive(Serialize, Deserialize)]
pub struct PendingSignIn {
    /// The `state` sent in the authorize URL (it starts with the connection's id and a dot).
    pub state: String,
    /// The PKCE verifier whose challenge the authorize URL carried.
    pub code_verifier: String,
    /// The redirect URI the code is bound to (it must be sent again to redeem the code).
    pub redirect_uri: String,
}

impl std::fmt::Debug for PendingSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSignIn")
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// The error of a redirect nobody is waiting for (forged, replayed or from another store).
pub fn unknown_sign_in() -> SyncError {
    SyncError::Credential(
        "this sign-in was not started here or has already been used: start the authorisation again".into(),
    )
}

/// Compares two secrets in time that depends only on their length.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl PendingSignIn {
    /// Seals the sign-in beside `connection` as its secret `field`, for [`PENDING_LIFETIME`]; a
    /// sign-in started again replaces the earlier one.
    pub async fn seal(
        &self,
        store: &Store,
        connection: ConnectionId,
        field: &str,
        clock: &SharedClock,
    ) -> Result<(), SyncError> {
        let sealed = serde_json::to_string(self)
            .map_err(|e| SyncError::Internal(format!("cannot seal the sign-in: {e}")))?;
        let expires = clock
            .now()
            .checked_add(PENDING_LIFETIME)
            .map_err(|e| SyncError::Internal(format!("cannot date the sign-in: {e}")))?;
        let mut tx = store.begin(WriteContext::manual()).await?;
        ConnectionSecrets(connection)
            .put(&mut tx, field, &sealed, Some(expires))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The sealed sign-in of `connection` the returned `state` belongs to: refused when none is
    /// sealed, when the state is not its own, or when it is older than [`PENDING_LIFETIME`]. It
    /// stays sealed until [`PendingSignIn::finish`], so a code that could not be redeemed can be
    /// tried again within the lifetime, and a redeemed one cannot be replayed.
    pub async fn take(
        store: &Store,
        connection: ConnectionId,
        field: &str,
        state: &str,
        clock: &SharedClock,
    ) -> Result<Self, SyncError> {
        let secrets = ConnectionSecrets(connection);
        let mut tx = store.read().await?;
        let sealed = secrets.get(&mut tx, field).await?;
        let expires = secrets.expiry(&mut tx, field).await?;
        tx.commit().await?;
        let pending: Self = sealed
            .and_then(|p| serde_json::from_str(p.as_str()).ok())
            .ok_or_else(unknown_sign_in)?;
        if !constant_time_eq(pending.state.as_bytes(), state.as_bytes()) {
            return Err(unknown_sign_in());
        }
        let expired = expires
            .and_then(|e| e.parse::<jiff::Timestamp>().ok())
            .is_none_or(|e| e <= clock.now());
        if expired {
            return Err(SyncError::Credential(
                "the sign-in took longer than 15 minutes: start the authorisation again".into(),
            ));
        }
        Ok(pending)
    }

    /// Ends a sign-in: seals the refresh token it gave as the secret `refresh_field` and forgets
    /// the pending sign-in `field`, in one transaction.
    pub async fn finish(
        store: &Store,
        connection: ConnectionId,
        field: &str,
        refresh_field: &str,
        refresh_token: &str,
    ) -> Result<(), SyncError> {
        let secrets = ConnectionSecrets(connection);
        let mut tx = store.begin(WriteContext::manual()).await?;
        secrets.put(&mut tx, refresh_field, refresh_token, None).await?;
        secrets.delete(&mut tx, field).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Seals a refresh token Microsoft rotated in, replacing the one before: what each connector's
/// token sink does before the new token is used.
pub async fn seal_refresh_token(
    store: &Store,
    connection: ConnectionId,
    field: &str,
    refresh_token: &str,
) -> Result<(), SyncError> {
    let mut tx = store.begin(WriteContext::manual()).await?;
    ConnectionSecrets(connection)
        .put(&mut tx, field, refresh_token, None)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// What a sign-in redirect brought back.
#[derive(Clone, PartialEq, Eq)]
pub enum Redirect {
    /// The authorization code and the state it answers.
    Code { state: String, code: String },
    /// The identity platform refused the sign-in (`?error=…&error_description=…`).
    Refused(Refusal),
}

impl std::fmt::Debug for Redirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The code is a credential for a few minutes: never in a log.
            Self::Code { state, .. } => f
                .debug_struct("Code")
                .field("state", state)
                .finish_non_exhaustive(),
            Self::Refused(refusal) => f.debug_tuple("Refused").field(refusal).finish(),
        }
    }
}

/// A refused sign-in, as the redirect reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The OAuth error (`access_denied`, `invalid_request`, …).
    pub error: String,
    pub description: String,
    /// The `AADSTS…` code at the start of the description, if any.
    pub aadsts: Option<String>,
}

impl Refusal {
    /// A refused consent is a missing permission; anything else, a refused sign-in.
    pub fn error_code(&self) -> ErrorCode {
        match self.error.as_str() {
            "access_denied" | "consent_required" | "invalid_scope" => ErrorCode::UpstreamPermission,
            _ => ErrorCode::UpstreamAuthentication,
        }
    }

    /// The error to report: `what` names the sign-in ("the sign-in", "the Partner Center
    /// sign-in"), `remedy` is the connector's, which knows the app and its permissions.
    pub fn into_error(self, what: &str, remedy: String) -> SyncError {
        SyncError::Upstream {
            error_code: self.error_code(),
            message: format!("{what} was refused ({}): {}", self.error, self.description),
            code: self.aadsts.unwrap_or(self.error),
            remedy,
        }
    }
}

/// Parses a whole sign-in redirect (`http://127.0.0.1:1234/callback?code=…&state=…`, or just its
/// path and query) into its code or its refusal.
pub fn parse_redirect(redirect: &str) -> Result<Redirect, SyncError> {
    let url = url::Url::parse(redirect)
        .or_else(|_| url::Url::parse("http://localhost/").and_then(|base| base.join(redirect)))
        .map_err(|e| SyncError::Credential(format!("the sign-in redirect is not a URL: {e}")))?;
    let (mut code, mut state, mut error, mut description) = (None, None, None, String::new());
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "code" => code = Some(value.into_owned()),
            "state" => state = Some(value.into_owned()),
            "error" => error = Some(value.into_owned()),
            "error_description" => description = value.into_owned(),
            _ => {}
        }
    }
    if let Some(error) = error {
        let aadsts = description
            .strip_prefix("AADSTS")
            .and_then(|rest| rest.split(':').next())
            .map(|n| format!("AADSTS{n}"));
        return Ok(Redirect::Refused(Refusal {
            error,
            description,
            aadsts,
        }));
    }
    match (state, code) {
        (Some(state), Some(code)) if !code.is_empty() => Ok(Redirect::Code { state, code }),
        _ => Err(SyncError::Credential(
            "the sign-in redirect carries no code and state".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_gives_its_code_or_its_refusal() {
        assert_eq!(
            parse_redirect("http://127.0.0.1:9/callback?code=abc&state=7.xyz").ok(),
            Some(Redirect::Code {
                state: "7.xyz".into(),
                code: "abc".into()
            })
        );
        assert_eq!(
            parse_redirect("/callback?state=7.x&code=c").ok(),
            Some(Redirect::Code {
                state: "7.x".into(),
                code: "c".into()
            })
        );
        let refused = parse_redirect(
            "/callback?error=access_denied&error_description=AADSTS65004%3A+User+declined+to+consent&state=1.x",
        );
        let Ok(Redirect::Refused(refusal)) = refused else {
            unreachable!("a refusal: {refused:?}")
        };
        assert_eq!(refusal.aadsts.as_deref(), Some("AADSTS65004"));
        assert_eq!(refusal.error_code(), ErrorCode::UpstreamPermission);
        let error = refusal.into_error("the sign-in", "Accept.".into());
        assert_eq!(error.code(), "AADSTS65004");
        assert!(
            error
                .to_string()
                .starts_with("the sign-in was refused (access_denied)")
        );
        for empty in ["/callback?state=1.x", "/callback?code=&state=1.x", "/callback"] {
            assert!(parse_redirect(empty).is_err(), "{empty}");
        }
    }

    #[test]
    fn states_compare_whole() {
        assert!(constant_time_eq(b"1.abc", b"1.abc"));
        assert!(!constant_time_eq(b"1.abc", b"1.abd"));
        assert!(!constant_time_eq(b"1.abc", b"1.ab"));
    }
}
