//! File access beneath a workspace the sandbox can write, for host-side code.
//!
//! A read-write workspace is shared with a hostile command: anything in it
//! may be a symlink to a host file, a FIFO that blocks a reader forever, or a
//! huge file. The runner runs as root (or in the runner container next to
//! the database and its secret), so following one of them reads or
//! overwrites what the sandbox cannot reach itself. Every path below the
//! workspace is therefore opened with openat2 and `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`, so the kernel refuses any
//! symlink and any escape during the walk, not just at the last component;
//! then `fstat` on the open descriptor decides (no check-then-use race).
//! Reads are capped, writes never follow or truncate an existing name, and
//! errors carry only workspace-relative paths and a reason, never contents.
//! Hard links are not refused: the sandbox sees only the workspace mount, so
//! it cannot link a host file into it (link(2) needs a path to the source).

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// The resolution rules for every open below the workspace.
const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// Why a confined operation did not happen. `path` is always relative to the
/// workspace (or names it), and nothing read from a file is ever included.
#[derive(Debug, thiserror::Error)]
pub enum ConfinedError {
    #[error(
        "the kernel refused openat2 ({source}): the runner needs Linux 5.6+ and a seccomp profile that allows openat2 to touch a read-write workspace without following the sandbox's symlinks; upgrade the kernel or allow openat2 for the runner"
    )]
    Unsupported { source: Errno },
    #[error(
        "cannot open the workspace {workspace}: {source}; check that it exists and is a directory"
    )]
    Workspace { workspace: PathBuf, source: Errno },
    #[error(
        "the workspace path {workspace} now passes through a symbolic link; it had none when YOLO was enabled, so a directory on it was replaced since. Check it, then re-enable YOLO with the real path"
    )]
    WorkspaceLink { workspace: PathBuf },
    #[error(
        "refusing `{path}` in the workspace: {reason}. The sandbox can write there, so the runner does not follow it; remove it (or restore it from git) and retry"
    )]
    Refused { path: String, reason: &'static str },
    #[error(
        "`{path}` in the workspace is larger than {limit} bytes, the most the runner reads; remove or shrink it and retry"
    )]
    TooLarge { path: String, limit: u64 },
    #[error("cannot {op} `{path}` in the workspace: {source}")]
    Io {
        op: &'static str,
        path: String,
        source: Errno,
    },
}

/// The common mapping of openat2 failures: symlinks and escapes are refusals,
/// EPERM/ENOSYS mean openat2 itself is unavailable (fail closed).
fn classify(op: &'static str, path: &str, e: Errno) -> ConfinedError {
    match e {
        Errno::LOOP => ConfinedError::Refused {
            path: path.to_owned(),
            reason: "it is a symbolic link, or a directory on its way is one",
        },
        Errno::XDEV => ConfinedError::Refused {
            path: path.to_owned(),
            reason: "it leads outside the workspace",
        },
        Errno::NOSYS | Errno::PERM => ConfinedError::Unsupported { source: e },
        _ => ConfinedError::Io {
            op,
            path: path.to_owned(),
            source: e,
        },
    }
}

pub(crate) fn kind_reason(t: FileType) -> &'static str {
    match t {
        FileType::Fifo => "it is a FIFO (a reader would block or be fed by the sandbox)",
        FileType::Socket => "it is a socket",
        FileType::CharacterDevice | FileType::BlockDevice => "it is a device file",
        FileType::Symlink => "it is a symbolic link",
        FileType::Directory => "it is a directory",
        _ => "it is not a regular file",
    }
}

/// A directory beneath (or at) the workspace, opened without following any
/// symlink the sandbox could have planted.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// Relative to the workspace, for messages ("" is the workspace).
    rel: String,
}

impl Dir {
    /// Opens the workspace itself. `bridge yolo enable` stored its
    /// canonical path, so no component of it is a symlink; one that is now
    /// was swapped in since, possibly by a command with another read-write
    /// workspace above this one, and is refused rather than followed.
    pub fn workspace(path: &Path) -> Result<Self, ConfinedError> {
        let fd = rustix::fs::openat2(
            rustix::fs::CWD,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
            ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|source| match source {
            Errno::NOSYS | Errno::PERM => ConfinedError::Unsupported { source },
            Errno::LOOP => ConfinedError::WorkspaceLink {
                workspace: path.to_owned(),
            },
            source => ConfinedError::Workspace {
                workspace: path.to_owned(),
                source,
            },
        })?;
        Ok(Self {
            fd,
            rel: String::new(),
        })
    }

    /// The path of `name` below this directory, relative to the workspace.
    pub fn shown(&self, name: &str) -> String {
        if self.rel.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.rel)
        }
    }

    fn open(&self, name: &str, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
        rustix::fs::openat2(
            &self.fd,
            name,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
            mode,
            RESOLVE,
        )
    }

    /// Opens a directory below this one; `None` when it does not exist.
    pub fn dir(&self, name: &str) -> Result<Option<Dir>, ConfinedError> {
        self.dir_as(name, self.shown(name))
    }

    /// Like [`Dir::dir`], naming it `shown` in errors: for paths read from
    /// a file, whose text must not reach a message.
    pub fn dir_as(&self, name: &str, shown: String) -> Result<Option<Dir>, ConfinedError> {
        match self.open(name, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()) {
            Ok(fd) => Ok(Some(Dir { fd, rel: shown })),
            Err(Errno::NOENT) => Ok(None),
            Err(Errno::NOTDIR) => Err(ConfinedError::Refused {
                path: shown,
                reason: "it is not a directory",
            }),
            Err(e) => Err(classify("open", &shown, e)),
        }
    }

    /// Opens or creates (mode 0755) a directory below this one. An existing
    /// symlink, file or FIFO of that name is refused, never followed.
    pub fn dir_create(&self, name: &str) -> Result<Dir, ConfinedError> {
        debug_assert!(!name.contains('/'), "one component at a time");
        let shown = self.shown(name);
        match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(classify("create directory", &shown, e)),
        }
        self.dir(name)?.ok_or(ConfinedError::Refused {
            path: shown,
            reason: "it vanished while being created (something else is changing the workspace)",
        })
    }

    /// Reads a regular file of at most `limit` bytes; `None` when it does not
    /// exist. FIFOs, sockets, devices, directories and symlinks are refused
    /// (opened non-blocking and checked with fstat on the open descriptor).
    pub fn read_file(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>, ConfinedError> {
        self.read_file_as(name, self.shown(name), limit)
    }

    /// Like [`Dir::read_file`], naming it `shown` in errors.
    pub fn read_file_as(
        &self,
        name: &str,
        shown: String,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, ConfinedError> {
        let fd = match self.open(name, OFlags::RDONLY, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR) => return Ok(None),
            Err(e) => return Err(classify("open", &shown, e)),
        };
        let st = rustix::fs::fstat(&fd).map_err(|source| ConfinedError::Io {
            op: "stat",
            path: shown.clone(),
            source,
        })?;
        let kind = FileType::from_raw_mode(st.st_mode);
        if kind != FileType::RegularFile {
            return Err(ConfinedError::Refused {
                path: shown,
                reason: kind_reason(kind),
            });
        }
        let mut out = Vec::new();
        std::fs::File::from(fd)
            .take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| ConfinedError::Io {
                op: "read",
                path: shown.clone(),
                source: Errno::from_io_error(&e).unwrap_or(Errno::IO),
            })?;
        if out.len() as u64 > limit {
            return Err(ConfinedError::TooLarge { path: shown, limit });
        }
        Ok(Some(out))
    }

    /// Writes `contents` to `name` in this directory, replacing whatever is
    /// there (a planted symlink is replaced, never followed): the data goes
    /// to a fresh `O_EXCL` temporary file, which is then renamed over `name`
    /// within this already-confined directory.
    pub fn replace_file(&self, name: &str, contents: &[u8]) -> Result<(), ConfinedError> {
        debug_assert!(!name.contains('/'), "one component at a time");
        let shown = self.shown(name);
        let nonce = bridge_state::auth::random_hex(8).map_err(|_| ConfinedError::Io {
            op: "name a temporary file for",
            path: shown.clone(),
            source: Errno::IO,
        })?;
        let tmp = format!(".{name}.{nonce}.tmp");
        let fd = self
            .open(
                &tmp,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
                Mode::from_raw_mode(0o644),
            )
            .map_err(|e| classify("create", &self.shown(&tmp), e))?;
        let written = std::io::Write::write_all(&mut std::fs::File::from(fd), contents);
        let renamed = written
            .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))
            .and_then(|()| rustix::fs::renameat(&self.fd, &tmp, &self.fd, name));
        if let Err(e) = renamed {
            // Best effort: the temporary name is ours (O_EXCL), so removing it
            // cannot touch anything the sandbox made.
            let _ = rustix::fs::unlinkat(&self.fd, &tmp, AtFlags::empty());
            return Err(match e {
                Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST => ConfinedError::Refused {
                    path: shown,
                    reason: "a directory of that name is in the way",
                },
                e => classify("write", &shown, e),
            });
        }
        Ok(())
    }

    /// The type of `name` in this directory without following it; `None`
    /// when it does not exist.
    pub fn kind(&self, name: &str) -> Result<Option<FileType>, ConfinedError> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
            Err(Errno::NOENT | Errno::NOTDIR) => Ok(None),
            Err(e) => Err(classify("stat", &self.shown(name), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_path_through_a_symlink_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real/ws");
        std::fs::create_dir_all(&real).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("real"), tmp.path().join("link")).unwrap();
        Dir::workspace(&real).unwrap();
        for via in [tmp.path().join("link/ws"), tmp.path().join("link")] {
            let e = Dir::workspace(&via).unwrap_err();
            assert!(matches!(e, ConfinedError::WorkspaceLink { .. }), "{e}");
        }
    }

    #[test]
    fn openat2_being_unavailable_fails_closed_with_the_fix_named() {
        for errno in [Errno::NOSYS, Errno::PERM] {
            let e = classify("open", ".git/HEAD", errno);
            assert!(matches!(e, ConfinedError::Unsupported { .. }), "{e}");
            assert!(e.to_string().contains("allow openat2"), "{e}");
        }
        assert!(matches!(
            classify("open", "x", Errno::LOOP),
            ConfinedError::Refused { .. }
        ));
        assert!(matches!(
            classify("open", "x", Errno::XDEV),
            ConfinedError::Refused { .. }
        ));
    }

    #[test]
    fn dot_dot_cannot_leave_a_confined_directory() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("ws/a")).unwrap();
        std::fs::write(tmp.path().join("outside"), "x").unwrap();
        let ws = Dir::workspace(&tmp.path().join("ws")).unwrap();
        assert!(ws.dir("a/..").unwrap().is_some());
        for name in ["../outside", "a/../../outside", "/etc/passwd"] {
            let e = ws.read_file(name, 10).unwrap_err();
            assert!(matches!(e, ConfinedError::Refused { .. }), "{name}: {e}");
        }
    }
}
