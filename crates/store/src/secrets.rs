//! Sealed secrets in the `secrets` table. Plain text exists only in memory (zeroised on drop);
//! the database holds ciphertext bound to (table, row, field) and the id of the key that sealed it.

use deskbridge_secrets::{KeyRing, SecretAad};
use jiff::Timestamp;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::db::{Sql, SqlType, StoreTx};
use crate::{Result, StoreError, format_timestamp};

/// The place a secret belongs to, e.g. (`connections`, `7`, `client_secret`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretRef {
    pub owner_table: String,
    pub owner_id: String,
    pub field: String,
}

impl SecretRef {
    pub fn new(owner_table: &str, owner_id: impl std::fmt::Display, field: &str) -> Self {
        Self {
            owner_table: owner_table.to_owned(),
            owner_id: owner_id.to_string(),
            field: field.to_owned(),
        }
    }

    fn aad(&self) -> SecretAad {
        SecretAad::new(self.owner_table.clone(), &self.owner_id, self.field.clone())
    }

    fn describe(&self) -> String {
        format!("{}/{}/{}", self.owner_table, self.owner_id, self.field)
    }
}

impl StoreTx {
    fn key_ring(&self, secret: &SecretRef) -> Result<std::sync::Arc<KeyRing>> {
        self.store.keys().ok_or_else(|| {
            StoreError::Secret(
                secret.describe(),
                deskbridge_secrets::SealError::BadKey("no master key is configured for this store".into()),
            )
        })
    }

    /// Seals and stores a secret (replacing any previous value), with an optional expiry that
    /// may be shown (a client secret's end date; never the value).
    pub async fn put_secret(
        &mut self,
        secret: &SecretRef,
        plaintext: &str,
        expires_at: Option<Timestamp>,
    ) -> Result<()> {
        let ring = self.key_ring(secret)?;
        let sealed = ring
            .seal(&secret.aad(), plaintext.as_bytes())
            .map_err(|e| StoreError::Secret(secret.describe(), e))?;
        self.execute(
            "INSERT INTO secrets (owner_table, owner_id, field, key_id, sealed, expires_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (owner_table, owner_id, field) DO UPDATE SET \
             key_id = excluded.key_id, sealed = excluded.sealed, expires_at = excluded.expires_at, updated_at = excluded.updated_at",
            &[
                Sql::text(secret.owner_table.clone()),
                Sql::text(secret.owner_id.clone()),
                Sql::text(secret.field.clone()),
                Sql::text(ring.active_key_id()),
                Sql::Bytes(sealed),
                Sql::opt_text(expires_at.map(format_timestamp)),
                Sql::Text(format_timestamp(self.at)),
            ],
        )
        .await?;
        Ok(())
    }

    /// Opens a stored secret; `None` when there is none.
    pub async fn get_secret(&mut self, secret: &SecretRef) -> Result<Option<Zeroizing<String>>> {
        let row = self
            .row(
                "SELECT sealed FROM secrets WHERE owner_table = $1 AND owner_id = $2 AND field = $3",
                &[
                    Sql::text(secret.owner_table.clone()),
                    Sql::text(secret.owner_id.clone()),
                    Sql::text(secret.field.clone()),
                ],
                &[SqlType::Bytes],
            )
            .await?;
        let Some(Some(Sql::Bytes(sealed))) = row.map(|r| r.into_iter().next()) else {
            return Ok(None);
        };
        let ring = self.key_ring(secret)?;
        let plain = ring
            .open(&secret.aad(), &sealed)
            .map_err(|e| StoreError::Secret(secret.describe(), e))?;
        let text = String::from_utf8(plain.to_vec())
            .map_err(|_| StoreError::Corrupt(secret.describe(), "the secret is not text".into()))?;
        Ok(Some(Zeroizing::new(text)))
    }

    /// When a stored secret expires, if known.
    pub async fn secret_expiry(&mut self, secret: &SecretRef) -> Result<Option<String>> {
        let row = self
            .row(
                "SELECT expires_at FROM secrets WHERE owner_table = $1 AND owner_id = $2 AND field = $3",
                &[
                    Sql::text(secret.owner_table.clone()),
                    Sql::text(secret.owner_id.clone()),
                    Sql::text(secret.field.clone()),
                ],
                &[SqlType::Text],
            )
            .await?;
        Ok(row.and_then(|r| r.first().and_then(Sql::as_text).map(str::to_owned)))
    }

    pub async fn delete_secret(&mut self, secret: &SecretRef) -> Result<bool> {
        let n = self
            .execute(
                "DELETE FROM secrets WHERE owner_table = $1 AND owner_id = $2 AND field = $3",
                &[
                    Sql::text(secret.owner_table.clone()),
                    Sql::text(secret.owner_id.clone()),
                    Sql::text(secret.field.clone()),
                ],
            )
            .await?;
        Ok(n > 0)
    }

    /// Deletes every secret of one owner row (all of a connection's credentials). Returns how many.
    pub async fn delete_secrets_of(&mut self, owner_table: &str, owner_id: &str) -> Result<u64> {
        self.execute(
            "DELETE FROM secrets WHERE owner_table = $1 AND owner_id = $2",
            &[Sql::text(owner_table.to_owned()), Sql::text(owner_id.to_owned())],
        )
        .await
    }

    /// Re-seals every secret not sealed with the active key (the heart of `keys rotate`): the
    /// store's ring must hold both the old keys (to open) and the new active key. Returns how many
    /// secrets were re-sealed. All or nothing, with the rest of the transaction.
    pub async fn reseal_secrets(&mut self) -> Result<u64> {
        let rows = self
            .rows(
                "SELECT id, owner_table, owner_id, field, key_id, sealed FROM secrets ORDER BY id",
                &[],
                &[
                    SqlType::Int,
                    SqlType::Text,
                    SqlType::Text,
                    SqlType::Text,
                    SqlType::Text,
                    SqlType::Bytes,
                ],
            )
            .await?;
        let mut count = 0;
        for row in rows {
            let [
                Sql::Int(id),
                Sql::Text(table),
                Sql::Text(owner),
                Sql::Text(field),
                Sql::Text(key_id),
                Sql::Bytes(sealed),
            ] = row.as_slice()
            else {
                return Err(StoreError::Corrupt(
                    "secrets".into(),
                    "unexpected row shape".into(),
                ));
            };
            let secret = SecretRef {
                owner_table: table.clone(),
                owner_id: owner.clone(),
                field: field.clone(),
            };
            let ring = self.key_ring(&secret)?;
            if key_id == ring.active_key_id() {
                continue;
            }
            let plain = ring
                .open(&secret.aad(), sealed)
                .map_err(|e| StoreError::Secret(secret.describe(), e))?;
            let resealed = ring
                .seal(&secret.aad(), &plain)
                .map_err(|e| StoreError::Secret(secret.describe(), e))?;
            self.execute(
                "UPDATE secrets SET key_id = $1, sealed = $2, updated_at = $3 WHERE id = $4",
                &[
                    Sql::text(ring.active_key_id()),
                    Sql::Bytes(resealed),
                    Sql::Text(format_timestamp(self.at)),
                    Sql::Int(*id),
                ],
            )
            .await?;
            count += 1;
        }
        Ok(count)
    }
}

/// What `keys rotate` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RotationReport {
    pub old_key_id: String,
    pub new_key_id: String,
    pub resealed: u64,
}

impl crate::Store {
    /// Rotates the master key kept in `key_file`: a new key is generated, every secret is
    /// re-sealed with it in one transaction, and the old key is dropped from the file. A crash at
    /// any step leaves every secret readable: the file holds both keys until the re-seal commits.
    pub async fn rotate_keys(&self, key_file: &deskbridge_secrets::KeyFile) -> Result<RotationReport> {
        let io = |e: deskbridge_secrets::KeyFileError| {
            StoreError::Secret(
                key_file.path().display().to_string(),
                deskbridge_secrets::SealError::BadKey(e.to_string()),
            )
        };
        let current = key_file.load().map_err(io)?;
        let new_key = deskbridge_secrets::MasterKey::generate();
        let mut keep = vec![current.active().clone()];
        keep.extend(current.retired().iter().cloned());
        let staged = KeyRing::with_retired(new_key.clone(), keep);
        key_file.store(&staged).map_err(io)?;
        self.set_keys(staged);
        let mut tx = self.begin(crate::WriteContext::manual()).await?;
        let resealed = tx.reseal_secrets().await?;
        tx.commit().await?;
        let done = KeyRing::new(new_key);
        key_file.store(&done).map_err(io)?;
        self.set_keys(done.clone());
        Ok(RotationReport {
            old_key_id: current.active_key_id().to_owned(),
            new_key_id: done.active_key_id().to_owned(),
            resealed,
        })
    }
}

impl StoreTx {
    /// Test support: swaps two sealed values between their rows, as someone with write access to
    /// the database might, to prove a value does not open in another row.
    #[doc(hidden)]
    pub async fn swap_sealed_for_tests(&mut self, a: &SecretRef, b: &SecretRef) -> Result<()> {
        let fetch = |s: &SecretRef| {
            [
                Sql::text(s.owner_table.clone()),
                Sql::text(s.owner_id.clone()),
                Sql::text(s.field.clone()),
            ]
        };
        let sql = "SELECT sealed FROM secrets WHERE owner_table = $1 AND owner_id = $2 AND field = $3";
        let sa = self
            .row(sql, &fetch(a), &[SqlType::Bytes])
            .await?
            .and_then(|r| r.into_iter().next());
        let sb = self
            .row(sql, &fetch(b), &[SqlType::Bytes])
            .await?
            .and_then(|r| r.into_iter().next());
        let (Some(sa), Some(sb)) = (sa, sb) else {
            return Ok(());
        };
        let update = "UPDATE secrets SET sealed = $1 WHERE owner_table = $2 AND owner_id = $3 AND field = $4";
        let [t, o, f] = fetch(a);
        self.execute(update, &[sb, t, o, f]).await?;
        let [t, o, f] = fetch(b);
        self.execute(update, &[sa, t, o, f]).await?;
        Ok(())
    }
}
