//! deskbridge-secrets: encryption of secrets at rest (client secrets, private keys, refresh tokens).
//!
//! Every value is sealed with XChaCha20-Poly1305 under a master key from a [`KeyRing`]. The
//! associated data ([`SecretAad`]) binds a ciphertext to the row and field it belongs to, so a
//! ciphertext copied into another row or field does not decrypt. Each ciphertext names the id of
//! the key that sealed it, which is what makes rotation possible: a ring may hold several keys,
//! seals with the active one and opens with whichever the ciphertext names.
//!
//! Keys come from a key file (created with mode 0600 on first use by [`KeyFile::load_or_create`])
//! or from the `DESKBRIDGE_SECRET_KEY` environment variable ([`KeyRing::from_env_value`]). Key
//! material and plaintexts are zeroised on drop and never printed by `Debug`.

mod keyfile;
mod keyring;

pub use keyfile::{KeyFile, KeyFileError};
pub use keyring::{KeyRing, MasterKey, SealError, SecretAad};

/// The environment variable that may hold the master key instead of a key file.
pub const SECRET_KEY_ENV: &str = "DESKBRIDGE_SECRET_KEY";
