//! The mechanics of an admin-consent flow (see [`crate::TenantTable::begin_consent`]), whichever
//! connector and app it is for: what the redirect must match is sealed beside the connection
//! between the two steps, its `state` is compared in constant time, and the redirect is parsed
//! into a grant or a refusal.
//!
//! The `state` is `"{connection id}.{tenant id}.{random}"`: the connection's id first, as a
//! sign-in's, so whichever process receives the redirect finds the connection
//! ([`crate::sign_in_connection`]); the tenant next, because a refusal comes back without
//! Microsoft's `tenant` and the pending consent is sealed per tenant (consents for several
//! tenants may be under way at once). The random part, made by the connector, is what makes the
//! state unguessable; the tenant in it is a lookup key only: a grant is accepted only when the
//! redirect's own `tenant` is the one asked for.

use deskbridge_core::{ConnectionId, ErrorCode, SharedClock};
use deskbridge_store::{Store, StoreTx, WriteContext};
use serde::{Deserialize, Serialize};

use crate::sign_in::{PENDING_LIFETIME, Refusal, constant_time_eq};
use crate::{ConnectionSecrets, SyncError};

/// The secret field a tenant's pending consent is sealed as.
fn field(tenant_id: &str) -> String {
    format!("pending_admin_consent:{}", tenant_id.to_ascii_lowercase())
}

/// The start of the `state` of a consent for `tenant_id` on `connection`; the connector appends
/// the random part.
pub fn state_prefix(connection: ConnectionId, tenant_id: &str) -> String {
    format!("{}.{}.", connection.0, tenant_id.to_ascii_lowercase())
}

/// A consent redirect that matches nothing pending here (forged, replayed, or for another
/// tenant or connection).
pub fn unknown_consent() -> SyncError {
    SyncError::Upstream {
        error_code: ErrorCode::InvalidSignIn,
        code: ErrorCode::InvalidSignIn.as_str().to_owned(),
        message:
            "this admin consent was not started here, is for another tenant or connection, or has already \
                  been used"
                .into(),
        remedy: "Start the admin consent again from the tenant (Tenants tab, or deskbridge tenants consent)."
            .into(),
    }
}

/// What the consent's redirect must match, sealed between the two steps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingConsent {
    pub state: String,
    /// The tenant the administrator was sent to consent in.
    pub tenant_id: String,
    pub redirect_uri: String,
}

impl PendingConsent {
    /// Seals the consent beside `connection` for [`PENDING_LIFETIME`]; a consent for the same
    /// tenant started again replaces the earlier one.
    pub async fn seal(
        &self,
        store: &Store,
        connection: ConnectionId,
        clock: &SharedClock,
    ) -> Result<(), SyncError> {
        let sealed = serde_json::to_string(self)
            .map_err(|e| SyncError::Internal(format!("cannot seal the admin consent: {e}")))?;
        let expires = clock
            .now()
            .checked_add(PENDING_LIFETIME)
            .map_err(|e| SyncError::Internal(format!("cannot date the admin consent: {e}")))?;
        let mut tx = store.begin(WriteContext::manual()).await?;
        ConnectionSecrets(connection)
            .put(&mut tx, &field(&self.tenant_id), &sealed, Some(expires))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The pending consent of `connection` the returned `state` belongs to: refused when none
    /// is sealed for the state's tenant, when the state is not its own, or when it is older than
    /// [`PENDING_LIFETIME`].
    pub async fn take(
        store: &Store,
        connection: ConnectionId,
        state: &str,
        clock: &SharedClock,
    ) -> Result<Self, SyncError> {
        let tenant = state
            .strip_prefix(&format!("{}.", connection.0))
            .and_then(|rest| rest.split_once('.'))
            .map(|(tenant, _)| tenant)
            .ok_or_else(unknown_consent)?;
        let secrets = ConnectionSecrets(connection);
        let mut tx = store.read().await?;
        let sealed = secrets.get(&mut tx, &field(tenant)).await?;
        let expires = secrets.expiry(&mut tx, &field(tenant)).await?;
        tx.commit().await?;
        let pending: Self = sealed
            .and_then(|p| serde_json::from_str(p.as_str()).ok())
            .ok_or_else(unknown_consent)?;
        if !constant_time_eq(pending.state.as_bytes(), state.as_bytes()) {
            return Err(unknown_consent());
        }
        let expired = expires
            .and_then(|e| e.parse::<jiff::Timestamp>().ok())
            .is_none_or(|e| e <= clock.now());
        if expired {
            return Err(SyncError::Upstream {
                error_code: ErrorCode::InvalidSignIn,
                code: ErrorCode::InvalidSignIn.as_str().to_owned(),
                message: "the admin consent took longer than 15 minutes".into(),
                remedy: "Start the admin consent again.".into(),
            });
        }
        Ok(pending)
    }

    /// Forgets the pending consent (in the caller's transaction, with what it recorded), so its
    /// redirect cannot be used again.
    pub async fn forget(
        tx: &mut StoreTx,
        connection: ConnectionId,
        tenant_id: &str,
    ) -> Result<(), SyncError> {
        ConnectionSecrets(connection)
            .delete(tx, &field(tenant_id))
            .await?;
        Ok(())
    }
}

/// What an admin-consent redirect brought back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentRedirect {
    /// `admin_consent=True&tenant=…&state=…&scope=…`.
    Granted { state: String, tenant: String },
    /// `error=…&error_description=…&state=…`.
    Refused { state: String, refusal: Refusal },
}

/// Parses a whole admin-consent redirect (or just its path and query).
pub fn parse_consent_redirect(redirect: &str) -> Result<ConsentRedirect, SyncError> {
    let url = url::Url::parse(redirect)
        .or_else(|_| url::Url::parse("http://localhost/").and_then(|base| base.join(redirect)))
        .map_err(|_| unknown_consent())?;
    let (mut granted, mut tenant, mut state, mut error, mut description) =
        (false, String::new(), String::new(), None, String::new());
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            // Microsoft sends `True`; compare without case, as its documentation does not fix it.
            "admin_consent" => granted = value.eq_ignore_ascii_case("true"),
            "tenant" => tenant = value.into_owned(),
            "state" => state = value.into_owned(),
            "error" => error = Some(value.into_owned()),
            "error_description" => description = value.into_owned(),
            _ => {}
        }
    }
    if state.is_empty() {
        return Err(unknown_consent());
    }
    if let Some(error) = error {
        let aadsts = description
            .strip_prefix("AADSTS")
            .and_then(|rest| rest.split(':').next())
            .map(|n| format!("AADSTS{n}"));
        return Ok(ConsentRedirect::Refused {
            state,
            refusal: Refusal {
                error,
                description,
                aadsts,
            },
        });
    }
    if granted && !tenant.is_empty() {
        Ok(ConsentRedirect::Granted { state, tenant })
    } else {
        Err(SyncError::Upstream {
            error_code: ErrorCode::InvalidSignIn,
            code: ErrorCode::InvalidSignIn.as_str().to_owned(),
            message: "the admin-consent redirect says neither admin_consent=True with a tenant nor an error"
                .into(),
            remedy: "Start the admin consent again; report it if it repeats.".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consent_redirect_gives_its_grant_or_its_refusal() {
        assert_eq!(
            parse_consent_redirect(
                "http://127.0.0.1:9/callback?admin_consent=True&tenant=t1&state=7.t1.x&scope=s"
            )
            .ok(),
            Some(ConsentRedirect::Granted {
                state: "7.t1.x".into(),
                tenant: "t1".into()
            })
        );
        let refused = parse_consent_redirect(
            "/cb?error=access_denied&error_description=AADSTS65004%3A+User+declined+to+consent&state=7.t1.x",
        );
        let Ok(ConsentRedirect::Refused { state, refusal }) = refused else {
            unreachable!("a refusal: {refused:?}")
        };
        assert_eq!(state, "7.t1.x");
        assert_eq!(refusal.aadsts.as_deref(), Some("AADSTS65004"));
        for bad in [
            "/cb?admin_consent=True&tenant=t1",
            "/cb?admin_consent=False&tenant=t1&state=7.t1.x",
            "/cb?admin_consent=True&state=7.t1.x",
            "/cb",
        ] {
            assert!(parse_consent_redirect(bad).is_err(), "{bad}");
        }
        assert_eq!(state_prefix(ConnectionId(7), "AB-c"), "7.ab-c.");
    }
}
