//! Refuses files whose permissions would let another local user steer the
//! bridge: write access to the database is enough to queue commands, and a
//! readable secret or token file gives away every session.
//!
//! - The database, its `-wal`/`-shm` files, the server secret and the HTTP
//!   token file must not be writable by group or others, and must be owned
//!   by the user running the bridge (root running a root-owned file is fine;
//!   root running someone else's file is not, since that user could swap its
//!   contents at will).
//! - Secret and token files must also not be readable by group or others
//!   (mode 0600, the same rule for both).
//! - Their directory must not be writable by group or others unless it has
//!   the sticky bit: otherwise anyone who can write it can rename a file of
//!   their own over ours between our check and our open.
//!
//! Every error says which command fixes it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How private a file must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The database and its WAL files: not writable by group or others.
    Database,
    /// A secret or token: neither readable nor writable by group or others.
    Secret,
    /// A certificate the bridge trusts (an engine's CA, its client
    /// certificate): anyone may read it, only its owner write it, and that
    /// owner is this user or root (a system CA bundle).
    Trusted,
}

#[derive(Debug, thiserror::Error)]
pub enum PermError {
    #[error(
        "{path} is writable by group or others (mode {mode:o}), so another user could change what the bridge reads; run `chmod 600 {path}`"
    )]
    Writable { path: PathBuf, mode: u32 },
    #[error(
        "{path} is readable by group or others (mode {mode:o}); it holds a secret, so it must be 0600: run `chmod 600 {path}`"
    )]
    Readable { path: PathBuf, mode: u32 },
    #[error(
        "{path} is owned by uid {owner}, not by the user running the bridge (uid {me}); run the bridge as that user, or take the file over with `chown {me} {path}` after checking its contents"
    )]
    NotOwned { path: PathBuf, owner: u32, me: u32 },
    #[error(
        "directory {path} is writable by group or others without the sticky bit (mode {mode:o}), so another user could swap the bridge's files; run `chmod go-w {path}` (or `chmod +t {path}` for a shared directory)"
    )]
    OpenDirectory { path: PathBuf, mode: u32 },
    #[error("cannot inspect {path}: {source}; check that the path exists and is readable")]
    Stat {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Checks an existing file (and its directory). A file that does not exist
/// passes: the caller creates it 0600.
pub fn check_file(path: &Path, kind: Kind) -> Result<(), PermError> {
    check_dir_of(path)?;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(PermError::Stat {
                path: path.into(),
                source,
            });
        }
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(PermError::Writable {
            path: path.into(),
            mode,
        });
    }
    if kind == Kind::Secret && mode & 0o044 != 0 {
        return Err(PermError::Readable {
            path: path.into(),
            mode,
        });
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me && !(kind == Kind::Trusted && meta.uid() == 0) {
        return Err(PermError::NotOwned {
            path: path.into(),
            owner: meta.uid(),
            me,
        });
    }
    Ok(())
}

/// Checks the directory a file lives in (see the module docs).
pub fn check_dir_of(path: &Path) -> Result<(), PermError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let meta = std::fs::metadata(dir).map_err(|source| PermError::Stat {
        path: dir.into(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(PermError::OpenDirectory {
            path: dir.into(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::Permissions;

    fn set(path: &Path, mode: u32) {
        std::fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn file_modes_table() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        type Case = (u32, Kind, Option<&'static str>);
        let cases: &[Case] = &[
            (0o600, Kind::Database, None),
            (0o644, Kind::Database, None),
            (0o640, Kind::Database, None),
            (0o664, Kind::Database, Some("writable by group or others")),
            (0o666, Kind::Database, Some("writable by group or others")),
            (0o602, Kind::Database, Some("chmod 600")),
            (0o600, Kind::Secret, None),
            (0o400, Kind::Secret, None),
            (0o640, Kind::Secret, Some("readable by group or others")),
            (0o604, Kind::Secret, Some("chmod 600")),
            (0o660, Kind::Secret, Some("writable by group or others")),
            (0o644, Kind::Trusted, None),
            (0o664, Kind::Trusted, Some("writable by group or others")),
        ];
        for &(mode, kind, want) in cases {
            set(&f, mode);
            match (check_file(&f, kind), want) {
                (Ok(()), None) => {}
                (Err(e), Some(w)) => assert!(e.to_string().contains(w), "{mode:o} {kind:?}: {e}"),
                (got, want) => panic!("{mode:o} {kind:?}: got {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn directories_writable_by_others_need_the_sticky_bit() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        for (mode, ok) in [
            (0o700, true),
            (0o755, true),
            (0o775, false),
            (0o777, false),
            (0o1777, true),
            (0o1770, true),
        ] {
            set(dir.path(), mode);
            let got = check_file(&f, Kind::Database);
            assert_eq!(got.is_ok(), ok, "{mode:o}: {got:?}");
            if let Err(e) = got {
                assert!(e.to_string().contains("chmod go-w"), "{e}");
            }
        }
        set(dir.path(), 0o700);
    }

    #[test]
    fn a_missing_file_passes_so_it_can_be_created() {
        let dir = tempfile::tempdir().unwrap();
        check_file(&dir.path().join("new.db"), Kind::Secret).unwrap();
    }
}
