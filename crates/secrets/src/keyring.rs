use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// The format tag at the start of every sealed value; a new format gets a new tag.
const FORMAT_V1: &[u8; 3] = b"DB1";
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

/// Where a secret lives. It is authenticated with the ciphertext, so a value only opens in the
/// place it was sealed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretAad {
    pub table: String,
    pub row: String,
    pub field: String,
}

impl SecretAad {
    pub fn new(table: impl Into<String>, row: impl std::fmt::Display, field: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            row: row.to_string(),
            field: field.into(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        // Length-prefixed parts: "a/b" + "c" can never collide with "a" + "b/c".
        let mut out = b"deskbridge-secret-v1".to_vec();
        for part in [&self.table, &self.row, &self.field] {
            out.extend_from_slice(&(part.len() as u64).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

/// One 256-bit master key and its id.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl MasterKey {
    /// A fresh random key. Its id is derived from the key itself, so two different keys never
    /// share an id.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rng().fill_bytes(key.as_mut());
        let id = derive_key_id(key.as_ref());
        Self { id, key }
    }

    pub fn from_bytes(id: impl Into<String>, bytes: &[u8]) -> Result<Self, SealError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if bytes.len() != KEY_LEN {
            return Err(SealError::BadKey(format!(
                "a master key is {KEY_LEN} bytes, this one is {}",
                bytes.len()
            )));
        }
        key.copy_from_slice(bytes);
        let id = id.into();
        if id.is_empty()
            || id.len() > 64
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(SealError::BadKey(format!(
                "key id {id:?} must be 1-64 characters of [A-Za-z0-9_-]"
            )));
        }
        Ok(Self { id, key })
    }

    /// Parses `ID:BASE64` or a bare `BASE64` (whose id is then derived from the key).
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        let (id, encoded) = match text.split_once(':') {
            Some((id, encoded)) => (Some(id), encoded),
            None => (None, text),
        };
        let mut bytes = BASE64
            .decode(encoded)
            .map_err(|e| SealError::BadKey(format!("the key is not valid base64: {e}")))?;
        let key = match id {
            Some(id) => Self::from_bytes(id, &bytes),
            None => Self::from_bytes(derive_key_id(&bytes), &bytes),
        };
        bytes.zeroize();
        key
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// `ID:BASE64`, the form stored in key files and accepted by [`MasterKey::parse`].
    pub fn export(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{}:{}", self.id, BASE64.encode(self.key.as_ref())))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(Key::from_slice(self.key.as_ref()))
    }
}

fn derive_key_id(key: &[u8]) -> String {
    let digest = Sha256::digest([b"deskbridge-key-id".as_slice(), key].concat());
    format!("k{}", hex::encode(&digest[..6]))
}

/// Failures to seal or open a secret. None of them ever contains key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("invalid master key: {0}")]
    BadKey(String),
    #[error("the secret was sealed with key {0:?}, which this key ring does not hold")]
    UnknownKey(String),
    #[error("the sealed value is malformed: {0}")]
    Malformed(&'static str),
    #[error("the secret does not decrypt: wrong key, or the value was moved or tampered with")]
    Undecryptable,
}

/// A secret that does not open is reported as undecryptable whatever the detail (which key,
/// which byte): the remedy is the same, configure the key it was sealed with.
impl deskbridge_core::HasErrorCode for SealError {
    fn error_code(&self) -> deskbridge_core::ErrorCode {
        match self {
            SealError::BadKey(_) => deskbridge_core::ErrorCode::SecretKeyInvalid,
            SealError::UnknownKey(_) | SealError::Malformed(_) | SealError::Undecryptable => {
                deskbridge_core::ErrorCode::SecretUndecryptable
            }
        }
    }
}

/// The keys deskbridge can open secrets with; it seals with the active one.
#[derive(Debug, Clone)]
pub struct KeyRing {
    active: MasterKey,
    retired: Vec<MasterKey>,
}

impl KeyRing {
    pub fn new(active: MasterKey) -> Self {
        Self {
            active,
            retired: Vec::new(),
        }
    }

    /// A ring that seals with `active` and can still open values sealed with `retired` keys.
    pub fn with_retired(active: MasterKey, retired: Vec<MasterKey>) -> Self {
        let retired = retired.into_iter().filter(|k| k.id != active.id).collect();
        Self { active, retired }
    }

    /// Reads the key from the value of `DESKBRIDGE_SECRET_KEY` (`ID:BASE64` or `BASE64`).
    pub fn from_env_value(value: &str) -> Result<Self, SealError> {
        MasterKey::parse(value).map(Self::new)
    }

    pub fn active(&self) -> &MasterKey {
        &self.active
    }

    pub fn retired(&self) -> &[MasterKey] {
        &self.retired
    }

    pub fn active_key_id(&self) -> &str {
        &self.active.id
    }

    /// Seals `plaintext` for the place `aad` names, with the active key and a random nonce.
    pub fn seal(&self, aad: &SecretAad, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad_bytes = aad.bytes();
        let ciphertext = self
            .active
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad_bytes,
                },
            )
            .map_err(|_| SealError::Malformed("encryption failed"))?;
        let id = self.active.id.as_bytes();
        let mut out = Vec::with_capacity(FORMAT_V1.len() + 1 + id.len() + NONCE_LEN + ciphertext.len());
        out.extend_from_slice(FORMAT_V1);
        out.push(id.len() as u8); // ids are at most 64 bytes (checked on construction)
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// The id of the key a sealed value names, without opening it.
    pub fn key_id_of(sealed: &[u8]) -> Result<&str, SealError> {
        let (id, _, _) = split_sealed(sealed)?;
        Ok(id)
    }

    /// Opens a value sealed by [`KeyRing::seal`] for the same place.
    pub fn open(&self, aad: &SecretAad, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let (id, nonce, ciphertext) = split_sealed(sealed)?;
        let key = std::iter::once(&self.active)
            .chain(self.retired.iter())
            .find(|k| k.id == id)
            .ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let aad_bytes = aad.bytes();
        key.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad_bytes,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Undecryptable)
    }
}

fn split_sealed(sealed: &[u8]) -> Result<(&str, &[u8], &[u8]), SealError> {
    let rest = sealed
        .strip_prefix(FORMAT_V1.as_slice())
        .ok_or(SealError::Malformed("unknown format tag"))?;
    let (&id_len, rest) = rest.split_first().ok_or(SealError::Malformed("truncated"))?;
    let id_len = usize::from(id_len);
    if rest.len() < id_len + NONCE_LEN + 16 {
        return Err(SealError::Malformed("truncated"));
    }
    let (id, rest) = rest.split_at(id_len);
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let id = std::str::from_utf8(id).map_err(|_| SealError::Malformed("key id is not text"))?;
    Ok((id, nonce, ciphertext))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aad(field: &str) -> SecretAad {
        SecretAad::new("connections", 7, field)
    }

    #[test]
    fn seals_and_opens_in_the_same_place_only() {
        let ring = KeyRing::new(MasterKey::generate());
        let sealed = ring.seal(&aad("client_secret"), b"s3cr3t-value").unwrap();
        assert!(!sealed.windows(12).any(|w| w == b"s3cr3t-value"));
        assert_eq!(
            ring.open(&aad("client_secret"), &sealed).unwrap().as_slice(),
            b"s3cr3t-value"
        );
        assert!(matches!(
            ring.open(&aad("refresh_token"), &sealed),
            Err(SealError::Undecryptable)
        ));
        let other_row = SecretAad::new("connections", 8, "client_secret");
        assert!(matches!(
            ring.open(&other_row, &sealed),
            Err(SealError::Undecryptable)
        ));
    }

    #[test]
    fn nonces_differ_between_seals() {
        let ring = KeyRing::new(MasterKey::generate());
        let a = ring.seal(&aad("f"), b"same").unwrap();
        let b = ring.seal(&aad("f"), b"same").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn tampering_is_detected() {
        let ring = KeyRing::new(MasterKey::generate());
        let mut sealed = ring.seal(&aad("f"), b"value").unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(matches!(
            ring.open(&aad("f"), &sealed),
            Err(SealError::Undecryptable)
        ));
        assert!(matches!(
            ring.open(&aad("f"), b"DB1"),
            Err(SealError::Malformed(_))
        ));
        assert!(matches!(
            ring.open(&aad("f"), b"xyz-not-sealed"),
            Err(SealError::Malformed(_))
        ));
    }

    #[test]
    fn retired_keys_open_but_never_seal() {
        let old = MasterKey::generate();
        let sealed_old = KeyRing::new(old.clone()).seal(&aad("f"), b"v").unwrap();
        let new = MasterKey::generate();
        let ring = KeyRing::with_retired(new.clone(), vec![old.clone()]);
        assert_eq!(ring.open(&aad("f"), &sealed_old).unwrap().as_slice(), b"v");
        let sealed_new = ring.seal(&aad("f"), b"v").unwrap();
        assert_eq!(KeyRing::key_id_of(&sealed_new).unwrap(), new.id());
        let only_new = KeyRing::new(new);
        assert!(matches!(
            only_new.open(&aad("f"), &sealed_old),
            Err(SealError::UnknownKey(_))
        ));
    }

    #[test]
    fn keys_parse_from_text_and_never_print() {
        let key = MasterKey::generate();
        let parsed = MasterKey::parse(&key.export()).unwrap();
        assert_eq!(parsed.id(), key.id());
        let bare = MasterKey::parse(key.export().split_once(':').unwrap().1).unwrap();
        assert_eq!(
            bare.id(),
            key.id(),
            "a bare key gets the id derived from its bytes"
        );
        assert!(!format!("{key:?}").contains(key.export().split_once(':').unwrap().1));
        assert!(MasterKey::parse("k1:not base64!").is_err());
        assert!(MasterKey::parse("k1:AAAA").is_err());
        assert!(MasterKey::parse("bad id!:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").is_err());
    }
}
