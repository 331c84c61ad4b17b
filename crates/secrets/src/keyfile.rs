use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::keyring::{KeyRing, MasterKey, SealError};

const FORMAT: &str = "deskbridge-keys-v1";

/// A key file on disk: the active master key and any retired ones still needed to open old
/// values (only during a rotation). Written atomically, readable by its owner only.
#[derive(Debug, Clone)]
pub struct KeyFile {
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read the key file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write the key file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the key file {path} is not a deskbridge key file: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error(
        "the key file {path} can be read by other users (mode {mode:o}); run `chmod 600 {path}` so only its owner can"
    )]
    TooOpen { path: PathBuf, mode: u32 },
}

impl deskbridge_core::HasErrorCode for KeyFileError {
    fn error_code(&self) -> deskbridge_core::ErrorCode {
        use deskbridge_core::ErrorCode;
        match self {
            KeyFileError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorCode::SecretKeyMissing
            }
            KeyFileError::Read { .. } | KeyFileError::Invalid { .. } | KeyFileError::TooOpen { .. } => {
                ErrorCode::SecretKeyInvalid
            }
            // The data directory is not writable: the installation's configuration.
            KeyFileError::Write { .. } => ErrorCode::InvalidConfiguration,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    format: String,
    active: String,
    #[serde(default)]
    retired: Vec<String>,
}

impl KeyFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the key ring, creating the file with a fresh key (mode 0600) when it does not exist.
    /// Returns the ring and whether the file was created.
    pub fn load_or_create(&self) -> Result<(KeyRing, bool), KeyFileError> {
        match self.load() {
            Ok(ring) => Ok((ring, false)),
            Err(KeyFileError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                let ring = KeyRing::new(MasterKey::generate());
                self.create_new(&ring)?;
                Ok((ring, true))
            }
            Err(e) => Err(e),
        }
    }

    pub fn load(&self) -> Result<KeyRing, KeyFileError> {
        let read_err = |source| KeyFileError::Read {
            path: self.path.clone(),
            source,
        };
        let mode = fs::metadata(&self.path).map_err(read_err)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(KeyFileError::TooOpen {
                path: self.path.clone(),
                mode: mode & 0o777,
            });
        }
        let text = Zeroizing::new(fs::read_to_string(&self.path).map_err(read_err)?);
        let invalid = |reason: String| KeyFileError::Invalid {
            path: self.path.clone(),
            reason,
        };
        let disk: OnDisk = serde_json::from_str(&text).map_err(|e| invalid(format!("not JSON ({e})")))?;
        let disk = ZeroizeOnDisk(disk);
        if disk.0.format != FORMAT {
            return Err(invalid(format!(
                "format {:?}, expected {FORMAT:?}",
                disk.0.format
            )));
        }
        let parse = |s: &str| MasterKey::parse(s).map_err(|e: SealError| invalid(e.to_string()));
        let active = parse(&disk.0.active)?;
        let retired = disk
            .0
            .retired
            .iter()
            .map(|s| parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KeyRing::with_retired(active, retired))
    }

    /// Replaces the file's content with `ring`, atomically (write a sibling, then rename).
    pub fn store(&self, ring: &KeyRing) -> Result<(), KeyFileError> {
        let tmp = self.path.with_extension("tmp");
        let _ = fs::remove_file(&tmp);
        self.write_exclusive(&tmp, ring)?;
        fs::rename(&tmp, &self.path).map_err(|source| KeyFileError::Write {
            path: self.path.clone(),
            source,
        })
    }

    fn create_new(&self, ring: &KeyRing) -> Result<(), KeyFileError> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|source| KeyFileError::Write {
                path: self.path.clone(),
                source,
            })?;
        }
        self.write_exclusive(&self.path, ring)
    }

    fn write_exclusive(&self, path: &Path, ring: &KeyRing) -> Result<(), KeyFileError> {
        let write_err = |source| KeyFileError::Write {
            path: path.to_path_buf(),
            source,
        };
        let disk = OnDisk {
            format: FORMAT.to_owned(),
            active: ring.active().export().to_string(),
            retired: ring.retired().iter().map(|k| k.export().to_string()).collect(),
        };
        let disk = ZeroizeOnDisk(disk);
        let text = Zeroizing::new(
            serde_json::to_string_pretty(&disk.0)
                .map_err(|e| write_err(std::io::Error::other(e.to_string())))?,
        );
        // create_new + mode 0600: the key is never, even briefly, readable by anyone else.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(write_err)?;
        file.write_all(text.as_bytes()).map_err(write_err)?;
        file.write_all(b"\n").map_err(write_err)?;
        file.sync_all().map_err(write_err)
    }
}

/// Wipes the exported key strings when the on-disk form is dropped.
struct ZeroizeOnDisk(OnDisk);

impl Drop for ZeroizeOnDisk {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.0.active.zeroize();
        for k in &mut self.0.retired {
            k.zeroize();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SecretAad;

    #[test]
    fn creates_a_private_key_file_once_and_reloads_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyFile::new(dir.path().join("sub/secret.key"));
        let (ring, created) = file.load_or_create().unwrap();
        assert!(created);
        let mode = fs::metadata(file.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, created) = file.load_or_create().unwrap();
        assert!(!created);
        assert_eq!(again.active_key_id(), ring.active_key_id());
        let aad = SecretAad::new("t", 1, "f");
        let sealed = ring.seal(&aad, b"x").unwrap();
        assert_eq!(again.open(&aad, &sealed).unwrap().as_slice(), b"x");
    }

    #[test]
    fn refuses_a_key_file_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyFile::new(dir.path().join("secret.key"));
        file.load_or_create().unwrap();
        fs::set_permissions(file.path(), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(file.load(), Err(KeyFileError::TooOpen { .. })));
    }

    #[test]
    fn store_replaces_keys_and_keeps_retired_ones() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyFile::new(dir.path().join("secret.key"));
        let (old, _) = file.load_or_create().unwrap();
        let staged = KeyRing::with_retired(MasterKey::generate(), vec![old.active().clone()]);
        file.store(&staged).unwrap();
        let loaded = file.load().unwrap();
        assert_eq!(loaded.active_key_id(), staged.active_key_id());
        assert_eq!(loaded.retired().len(), 1);
        assert_eq!(
            fs::metadata(file.path()).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        fs::write(&path, "hello").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            KeyFile::new(&path).load(),
            Err(KeyFileError::Invalid { .. })
        ));
    }
}
