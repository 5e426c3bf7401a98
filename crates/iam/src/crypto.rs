//! The master key and sealing of secrets at rest (XChaCha20-Poly1305).
//!
//! The key lives outside the database: in `DIR/master.key` (mode 0600, created on first
//! start) or in the `NIMBUS_MASTER_KEY` environment variable (64 hex digits). A sealed value
//! is `v1:` + base64(nonce ‖ ciphertext); the associated data binds it to its owner (an
//! access key id), so a sealed secret copied onto another row does not open.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::IamError;

/// The environment variable that may carry the master key.
pub const MASTER_KEY_ENV: &str = "NIMBUS_MASTER_KEY";

/// The 256-bit key that seals secrets at rest.
#[derive(Clone)]
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
    /// The key bytes, for [`MasterKey::derive`] only.
    root: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    /// Takes the key from `NIMBUS_MASTER_KEY` if set, else from `path`, creating the file
    /// (mode 0600) with a fresh random key when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<MasterKey, IamError> {
        if let Ok(v) = std::env::var(MASTER_KEY_ENV) {
            return Self::from_hex(v.trim()).map_err(|e| IamError::MasterKey(format!("{MASTER_KEY_ENV}: {e}")));
        }
        match std::fs::read_to_string(path) {
            Ok(text) => {
                Self::from_hex(text.trim()).map_err(|e| IamError::MasterKey(format!("{}: {e}", path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut bytes);
                write_private(path, format!("{}\n", hex::encode(bytes)).as_bytes())?;
                Ok(Self::from_bytes(&bytes))
            }
            Err(source) => Err(IamError::Io { path: path.display().to_string(), source }),
        }
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<MasterKey, String> {
        let bytes = hex::decode(text).map_err(|_| "expected 64 hex digits".to_string())?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| "expected 64 hex digits (32 bytes)".to_string())?;
        Ok(Self::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8; 32]) -> MasterKey {
        MasterKey { cipher: XChaCha20Poly1305::new(bytes.into()), root: *bytes }
    }

    /// A 256-bit key for one `purpose` (e.g. `"api-key-hash"`), derived with HMAC-SHA256 so
    /// no two purposes share a key and none reveals the master key.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.root).expect("any key length");
        mac.update(b"nimbus derive: ");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Seals `plain`, bound to `owner`.
    pub fn seal(&self, plain: &str, owner: &str) -> String {
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain.as_bytes(), aad: owner.as_bytes() })
            .expect("encryption with a valid key cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("v1:{}", STANDARD.encode(out))
    }

    /// Opens a value sealed by [`MasterKey::seal`] for the same owner.
    pub fn open(&self, sealed: &str, owner: &str) -> Result<String, IamError> {
        let bad = || {
            IamError::MasterKey(format!("cannot open the sealed secret of {owner}: wrong master key or damaged value"))
        };
        let raw = sealed.strip_prefix("v1:").and_then(|b| STANDARD.decode(b).ok()).ok_or_else(bad)?;
        if raw.len() < 24 {
            return Err(bad());
        }
        let (nonce, ct) = raw.split_at(24);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: owner.as_bytes() })
            .map_err(|_| bad())?;
        String::from_utf8(plain).map_err(|_| bad())
    }
}

/// Writes a file readable by its owner only (0600), atomically and durably: a temporary file in
/// the same directory, synced, renamed over the target, and the directory synced.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), IamError> {
    let io = |source| IamError::Io { path: path.display().to_string(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io)?;
        f.write_all(contents).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    #[cfg(unix)]
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_for_the_same_owner() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::load_or_create(&dir.path().join("master.key")).unwrap();
        let sealed = key.seal("s3cret", "AKIA1");
        assert!(!sealed.contains("s3cret"));
        assert_eq!(key.open(&sealed, "AKIA1").unwrap(), "s3cret");
        assert!(key.open(&sealed, "AKIA2").is_err());
        let again = MasterKey::load_or_create(&dir.path().join("master.key")).unwrap();
        assert_eq!(again.open(&sealed, "AKIA1").unwrap(), "s3cret");
        let other = MasterKey::from_hex(&"11".repeat(32)).unwrap();
        assert!(other.open(&sealed, "AKIA1").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        MasterKey::load_or_create(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
