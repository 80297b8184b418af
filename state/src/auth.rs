//! Session tokens: generation, keyed hashing, constant-time verification, and
//! the server secret that keys the hashes.
//!
//! A token is 256 random bits shown once (64 lowercase hex). The database only
//! ever holds `HMAC-SHA-256(server_secret, token)`, so a stolen database file
//! yields nothing a client could present; the secret lives in a 0600 file next
//! to the database and never enters the database itself.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Length of the server secret in bytes.
const SECRET_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read server secret {path}: {source}; check the file's owner and permissions")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create server secret {path}: {source}; check that the directory is writable")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "server secret {path} has {len} bytes, expected {SECRET_LEN}; it is corrupt: restore it from a backup, or delete it (this invalidates every issued token)"
    )]
    WrongLength { path: PathBuf, len: usize },
    #[error(
        "server secret {path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}`"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
    #[error(transparent)]
    Permissions(#[from] crate::fileperm::PermError),
}

/// The key for token hashes. Cheap to clone.
#[derive(Clone)]
pub struct ServerSecret(std::sync::Arc<[u8; SECRET_LEN]>);

impl std::fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerSecret(..)")
    }
}

impl ServerSecret {
    /// The secret file that belongs to a database: `<db>.secret`.
    pub fn path_for_db(db: &Path) -> PathBuf {
        let mut name = db.as_os_str().to_owned();
        name.push(".secret");
        PathBuf::from(name)
    }

    /// Loads the secret, creating it (mode 0600, exclusively) on first start.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretError> {
        // Mode, owner and directory; the check below on the opened file
        // keeps the read-access rule for a file swapped in meanwhile.
        crate::fileperm::check_file(path, crate::fileperm::Kind::Secret)?;
        match OpenOptions::new().read(true).open(path) {
            Ok(mut file) => {
                let mode = file
                    .metadata()
                    .map_err(|source| SecretError::Read {
                        path: path.into(),
                        source,
                    })?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    return Err(SecretError::TooOpen {
                        path: path.into(),
                        mode: mode & 0o777,
                    });
                }
                let mut bytes = Vec::with_capacity(SECRET_LEN);
                file.read_to_end(&mut bytes)
                    .map_err(|source| SecretError::Read {
                        path: path.into(),
                        source,
                    })?;
                let array: [u8; SECRET_LEN] =
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| SecretError::WrongLength {
                            path: path.into(),
                            len: bytes.len(),
                        })?;
                Ok(Self(array.into()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(path),
            Err(source) => Err(SecretError::Read {
                path: path.into(),
                source,
            }),
        }
    }

    fn create(path: &Path) -> Result<Self, SecretError> {
        let mut bytes = [0u8; SECRET_LEN];
        getrandom::fill(&mut bytes).map_err(SecretError::Random)?;
        let create_err = |source| SecretError::Create {
            path: path.into(),
            source,
        };
        // create_new: if two processes start at once, exactly one writes the
        // secret and the other falls back to reading it.
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(mut file) => {
                file.write_all(&bytes).map_err(create_err)?;
                file.sync_all().map_err(create_err)?;
                Ok(Self(bytes.into()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // The winner may not have finished writing yet.
                for _ in 0..50 {
                    if fs::metadata(path).map(|m| m.len()).unwrap_or(0) == SECRET_LEN as u64 {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Self::load_or_create(path)
            }
            Err(source) => Err(create_err(source)),
        }
    }

    /// A secret for tests and the demo: random, never written anywhere.
    pub fn ephemeral() -> Result<Self, SecretError> {
        let mut bytes = [0u8; SECRET_LEN];
        getrandom::fill(&mut bytes).map_err(SecretError::Random)?;
        Ok(Self(bytes.into()))
    }

    /// The keyed hash stored in place of a token.
    pub fn hash_token(&self, token: &str) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(token.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// Constant-time check of a presented token against a stored hash.
    pub fn verify_token(&self, token: &str, stored_hash: &[u8]) -> bool {
        let mut mac = self.mac();
        mac.update(token.as_bytes());
        mac.verify_slice(stored_hash).is_ok()
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_slice()).expect("HMAC takes any key length")
    }
}

/// 256 random bits as 64 lowercase hex characters.
pub fn new_token() -> Result<String, SecretError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(SecretError::Random)?;
    Ok(hex::encode(bytes))
}

/// `conv_` followed by 16 lowercase hex characters (64 random bits).
pub fn new_conversation_id() -> Result<String, SecretError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(SecretError::Random)?;
    Ok(format!("conv_{}", hex::encode(bytes)))
}

/// A short random code for the operator to retype, or an id suffix.
pub fn random_hex(n_bytes: usize) -> Result<String, SecretError> {
    let mut bytes = vec![0u8; n_bytes];
    getrandom::fill(&mut bytes).map_err(SecretError::Random)?;
    Ok(hex::encode(bytes))
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn is_conversation_id(s: &str) -> bool {
    s.len() == 21 && s.starts_with("conv_") && is_lower_hex(&s[5..])
}

pub fn is_token(s: &str) -> bool {
    s.len() == 64 && is_lower_hex(s)
}

/// The first characters of a token, for operator displays that must not
/// reveal it.
pub fn preview(token_hash: &[u8]) -> String {
    format!("{}…", &hex::encode(token_hash)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_verifies_only_the_same_token_under_the_same_secret() {
        let secret = ServerSecret::ephemeral().unwrap();
        let other = ServerSecret::ephemeral().unwrap();
        let token = new_token().unwrap();
        let hash = secret.hash_token(&token);
        assert!(secret.verify_token(&token, &hash));
        assert!(!secret.verify_token(&new_token().unwrap(), &hash));
        assert!(!other.verify_token(&token, &hash));
        assert!(!secret.verify_token(&token, &hash[..31]));
        assert_ne!(hash, token.as_bytes());
    }

    #[test]
    fn ids_have_the_documented_shape() {
        for _ in 0..100 {
            assert!(is_conversation_id(&new_conversation_id().unwrap()));
            assert!(is_token(&new_token().unwrap()));
        }
        for bad in [
            "conv_",
            "conv_0123456789abcdeF",
            "conv_0123456789abcde",
            "xonv_0123456789abcdef",
            "conv_0123456789abcdefa",
        ] {
            assert!(!is_conversation_id(bad), "{bad}");
        }
        assert!(!is_token(&"A".repeat(64)));
        assert!(!is_token(&"a".repeat(63)));
    }

    #[test]
    fn secret_file_is_created_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite.secret");
        let first = ServerSecret::load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = ServerSecret::load_or_create(&path).unwrap();
        let token = new_token().unwrap();
        assert!(again.verify_token(&token, &first.hash_token(&token)));
    }

    #[test]
    fn secret_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        ServerSecret::load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = ServerSecret::load_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn truncated_secret_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        fs::write(&path, b"short").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            ServerSecret::load_or_create(&path),
            Err(SecretError::WrongLength { len: 5, .. })
        ));
    }
}
