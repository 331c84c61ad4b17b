//! A connection's sealed credentials: the one place that knows where in the store they live, so
//! no connector, command or page spells the owner table itself.

use deskbridge_core::ConnectionId;
use deskbridge_store::{SecretRef, StoreTx};
use zeroize::Zeroizing;

use crate::SyncError;

/// The owner table of connection secrets: part of each secret's associated data, so a sealed
/// value cannot be moved to another owner.
const OWNER: &str = "connections";

/// The sealed secrets of one connection, by field name (`client_secret`, `certificate_pem`,
/// `refresh_token`, …: each connector names its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionSecrets(pub ConnectionId);

impl ConnectionSecrets {
    /// Where the secret `field` of this connection is sealed.
    pub fn reference(self, field: &str) -> SecretRef {
        SecretRef::new(OWNER, self.0, field)
    }

    /// The secret's value, if one is sealed.
    pub async fn get(self, tx: &mut StoreTx, field: &str) -> Result<Option<Zeroizing<String>>, SyncError> {
        Ok(tx.get_secret(&self.reference(field)).await?)
    }

    /// Whether the secret `field` is sealed, read in its own transaction (a sign-in's refresh
    /// token: whether the connection is authorised).
    pub async fn is_sealed(self, store: &deskbridge_store::Store, field: &str) -> Result<bool, SyncError> {
        let mut tx = store.read().await?;
        let sealed = self.get(&mut tx, field).await?.is_some();
        tx.commit().await?;
        Ok(sealed)
    }

    /// Seals `value` as the secret `field`, replacing what was there.
    pub async fn put(
        self,
        tx: &mut StoreTx,
        field: &str,
        value: &str,
        expires_at: Option<jiff::Timestamp>,
    ) -> Result<(), SyncError> {
        tx.put_secret(&self.reference(field), value, expires_at).await?;
        Ok(())
    }

    /// When the secret expires (RFC 3339), if it is sealed with an expiry.
    pub async fn expiry(self, tx: &mut StoreTx, field: &str) -> Result<Option<String>, SyncError> {
        Ok(tx.secret_expiry(&self.reference(field)).await?)
    }

    /// Removes every secret of the connection (its endpoints changed: a credential is only ever
    /// sent to the authority it was entered for). Returns how many there were.
    pub async fn forget_all(self, tx: &mut StoreTx) -> Result<u64, SyncError> {
        let owner = self.reference("");
        Ok(tx.delete_secrets_of(OWNER, &owner.owner_id).await?)
    }

    /// Removes the secret; whether there was one.
    pub async fn delete(self, tx: &mut StoreTx, field: &str) -> Result<bool, SyncError> {
        Ok(tx.delete_secret(&self.reference(field)).await?)
    }
}
