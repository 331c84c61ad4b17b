//! Single sign-on to the admin UI with Microsoft credentials: the one configuration (its client
//! secret is sealed in `secrets` beside it, see [`SSO_SECRET`]), the tenants administrators allowed
//! by hand, the sign-ins started and not yet finished, the Microsoft identity an account is linked
//! to, and the desk agents and users an identity was imported as.
//!
//! The protocol (authorize URL, id token checks) is the web layer's; this module stores what it
//! is given and answers lookups. Tenant and object ids are compared in lower case.

use serde::Serialize;

use crate::accounts::{ACCOUNT_COLUMNS, ACCOUNT_TYPES, account_from_row, unique_violation};
use crate::db::{Sql, SqlType, StoreTx};
use crate::{Account, Result, SecretRef, StoreError, format_timestamp};

/// Where the single sign-on app's client secret is sealed.
pub fn sso_secret() -> SecretRef {
    SecretRef::new("sso_settings", 1, "client_secret")
}

/// The single sign-on configuration (the secret is not part of it: see [`sso_secret`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SsoSettings {
    pub enabled: bool,
    /// The app registration's application (client) id.
    pub client_id: String,
    /// The sign-in host, e.g. `https://login.microsoftonline.com`.
    pub authority: String,
    pub updated_at: String,
}

/// A tenant an administrator allowed by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AllowedTenant {
    pub tenant_id: String,
    pub note: String,
    pub added_at: String,
}

/// A sign-in started and not finished.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingSsoSignIn {
    pub nonce: String,
    pub code_verifier: String,
    /// Where to go after signing in (a path on this site).
    pub next: String,
    pub expires_at: jiff::Timestamp,
}

impl std::fmt::Debug for PendingSsoSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSsoSignIn")
            .field("next", &self.next)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A desk agent or user imported with a Microsoft identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeskPerson {
    pub id: i64,
    pub name: String,
    pub email: Option<String>,
    pub active: bool,
}

fn person_from_row(row: &[Sql]) -> Option<DeskPerson> {
    Some(DeskPerson {
        id: row.first().and_then(Sql::as_int)?,
        name: row.get(1).and_then(Sql::as_text)?.to_owned(),
        email: row.get(2).and_then(Sql::as_text).map(str::to_owned),
        active: matches!(row.get(3), Some(Sql::Bool(true))),
    })
}

impl StoreTx {
    /// The configuration, or `None` before it was first saved.
    pub async fn sso_settings(&mut self) -> Result<Option<SsoSettings>> {
        let row = self
            .row(
                "SELECT enabled, client_id, authority, updated_at FROM sso_settings WHERE id = 1",
                &[],
                &[SqlType::Bool, SqlType::Text, SqlType::Text, SqlType::Text],
            )
            .await?;
        Ok(row.map(|r| {
            let text = |i: usize| r.get(i).and_then(Sql::as_text).unwrap_or_default().to_owned();
            SsoSettings {
                enabled: matches!(r.first(), Some(Sql::Bool(true))),
                client_id: text(1),
                authority: text(2),
                updated_at: text(3),
            }
        }))
    }

    /// Saves the configuration (its `updated_at` is the transaction's time).
    pub async fn put_sso_settings(&mut self, enabled: bool, client_id: &str, authority: &str) -> Result<()> {
        self.execute(
            "INSERT INTO sso_settings (id, enabled, client_id, authority, updated_at) VALUES (1, $1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET enabled = $1, client_id = $2, authority = $3, updated_at = $4",
            &[
                Sql::Bool(enabled),
                Sql::text(client_id),
                Sql::text(authority),
                Sql::Text(format_timestamp(self.at)),
            ],
        )
        .await?;
        Ok(())
    }

    /// The tenants allowed by hand, by tenant id.
    pub async fn sso_allowed_tenants(&mut self) -> Result<Vec<AllowedTenant>> {
        let rows = self
            .rows(
                "SELECT tenant_id, note, added_at FROM sso_allowed_tenants ORDER BY tenant_id",
                &[],
                &[SqlType::Text, SqlType::Text, SqlType::Text],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let text = |i: usize| r.get(i).and_then(Sql::as_text).unwrap_or_default().to_owned();
                AllowedTenant {
                    tenant_id: text(0),
                    note: text(1),
                    added_at: text(2),
                }
            })
            .collect())
    }

    /// Allows a tenant (lower-cased); allowing it again replaces its note.
    pub async fn allow_sso_tenant(&mut self, tenant_id: &str, note: &str) -> Result<()> {
        self.execute(
            "INSERT INTO sso_allowed_tenants (tenant_id, note, added_at) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id) DO UPDATE SET note = $2",
            &[
                Sql::Text(tenant_id.to_lowercase()),
                Sql::text(note),
                Sql::Text(format_timestamp(self.at)),
            ],
        )
        .await?;
        Ok(())
    }

    /// Removes a tenant allowed by hand; false when it was not in the list.
    pub async fn disallow_sso_tenant(&mut self, tenant_id: &str) -> Result<bool> {
        let n = self
            .execute(
                "DELETE FROM sso_allowed_tenants WHERE tenant_id = $1",
                &[Sql::Text(tenant_id.to_lowercase())],
            )
            .await?;
        Ok(n > 0)
    }

    /// Records a started sign-in under the hash of its state, and forgets the expired ones.
    pub async fn start_sso_sign_in(&mut self, state_hash: &str, pending: &PendingSsoSignIn) -> Result<()> {
        self.execute(
            "DELETE FROM sso_sign_ins WHERE expires_at <= $1",
            &[Sql::Text(format_timestamp(self.at))],
        )
        .await?;
        self.execute(
            "INSERT INTO sso_sign_ins (state_hash, nonce, code_verifier, next, expires_at) VALUES ($1, $2, $3, $4, $5)",
            &[
                Sql::text(state_hash),
                Sql::text(pending.nonce.clone()),
                Sql::text(pending.code_verifier.clone()),
                Sql::text(pending.next.clone()),
                Sql::Text(format_timestamp(pending.expires_at)),
            ],
        )
        .await?;
        Ok(())
    }

    /// Takes the sign-in started with this state hash: it is deleted, so a state (and the code
    /// that came with it) cannot be used twice. An expired one is deleted and not returned.
    pub async fn take_sso_sign_in(&mut self, state_hash: &str) -> Result<Option<PendingSsoSignIn>> {
        let row = self
            .row(
                "DELETE FROM sso_sign_ins WHERE state_hash = $1 RETURNING nonce, code_verifier, next, expires_at",
                &[Sql::text(state_hash)],
                &[SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Text],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let text = |i: usize| row.get(i).and_then(Sql::as_text).unwrap_or_default().to_owned();
        let expires_at = crate::parse_timestamp(&text(3))
            .map_err(|_| StoreError::Corrupt("sso_sign_ins".into(), "expires_at".into()))?;
        if expires_at <= self.at {
            return Ok(None);
        }
        Ok(Some(PendingSsoSignIn {
            nonce: text(0),
            code_verifier: text(1),
            next: text(2),
            expires_at,
        }))
    }

    /// Links an account to a Microsoft identity (lower-cased), or unlinks it with `None`. One
    /// identity signs in to one account: linking it to a second is a conflict.
    pub async fn link_account_identity(
        &mut self,
        account_id: i64,
        identity: Option<(&str, &str)>,
    ) -> Result<()> {
        let (tenant, object) = match identity {
            Some((t, o)) => (Sql::Text(t.to_lowercase()), Sql::Text(o.to_lowercase())),
            None => (Sql::Null(SqlType::Text), Sql::Null(SqlType::Text)),
        };
        self.execute(
            "UPDATE accounts SET linked_tenant_id = $1, linked_object_id = $2, updated_at = $3 WHERE id = $4",
            &[
                tenant,
                object,
                Sql::Text(format_timestamp(self.at)),
                Sql::Int(account_id),
            ],
        )
        .await
        .map_err(|e| {
            unique_violation(
                e,
                "this Microsoft identity is already linked to another account".into(),
            )
        })?;
        Ok(())
    }

    /// The account linked to this Microsoft identity.
    pub async fn account_by_identity(&mut self, tenant_id: &str, object_id: &str) -> Result<Option<Account>> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE linked_tenant_id = $1 AND linked_object_id = $2"
        );
        self.row(
            &sql,
            &[
                Sql::Text(tenant_id.to_lowercase()),
                Sql::Text(object_id.to_lowercase()),
            ],
            &ACCOUNT_TYPES,
        )
        .await?
        .as_deref()
        .map(account_from_row)
        .transpose()
    }

    /// The desk agents imported with this Microsoft identity (the object id as Microsoft writes
    /// it, lower case; the tenant ignoring case), active first.
    pub async fn agents_by_identity(&mut self, tenant_id: &str, object_id: &str) -> Result<Vec<DeskPerson>> {
        self.people_by_identity("agents", tenant_id, object_id).await
    }

    /// The desk users imported with this Microsoft identity, active first.
    pub async fn users_by_identity(&mut self, tenant_id: &str, object_id: &str) -> Result<Vec<DeskPerson>> {
        self.people_by_identity("users", tenant_id, object_id).await
    }

    async fn people_by_identity(
        &mut self,
        table: &str,
        tenant_id: &str,
        object_id: &str,
    ) -> Result<Vec<DeskPerson>> {
        // `azure_object_id` is indexed as written; Microsoft writes object ids in lower case.
        let sql = format!(
            "SELECT id, name, email, active FROM {table} WHERE azure_object_id = $1 \
             AND lower(azure_tenant_id) = $2 ORDER BY active DESC, id"
        );
        let rows = self
            .rows(
                &sql,
                &[
                    Sql::Text(object_id.to_lowercase()),
                    Sql::Text(tenant_id.to_lowercase()),
                ],
                &[SqlType::Int, SqlType::Text, SqlType::Text, SqlType::Bool],
            )
            .await?;
        Ok(rows.iter().filter_map(|r| person_from_row(r)).collect())
    }
}
