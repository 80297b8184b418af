//! A safety branch before a read-write workspace is handed to a command.
//!
//! When the workspace is a git repository, the runner points a new branch
//! `bridge-snapshot/<proposal>` at the current HEAD commit before the
//! command runs, so whatever the command does to the history, that commit
//! stays reachable. It is done by writing the ref file directly, not by
//! running git: the repository's config is writable by earlier sandboxed
//! commands (think `core.fsmonitor`), and running git on the host would let
//! them execute code outside the sandbox. Uncommitted changes are not part
//! of the snapshot; YOLO_MODE.md says so.
//!
//! Everything under `.git` was writable by earlier commands, so every file
//! is read and written through [`crate::confined`]: no symlink is followed,
//! nothing outside the workspace is reached, FIFOs and devices are refused
//! and reads are capped. A `.git` that is a symlink is refused; a `.git`
//! file (`gitdir: …`) is followed only to a directory beneath the workspace.

use std::path::Path;

use rustix::fs::FileType;

use crate::confined::{ConfinedError, Dir, kind_reason};

/// The most read from `HEAD`, a loose ref or a `.git` file: a few hundred
/// bytes in any real repository.
pub const SMALL_FILE_LIMIT: u64 = 4 * 1024;
/// The most read from `packed-refs` (about 80 000 refs).
pub const PACKED_REFS_LIMIT: u64 = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Confined(#[from] ConfinedError),
    #[error(
        "cannot resolve the workspace repository's HEAD: {0}; repair the repository (e.g. `git checkout <branch>`) or use a read-only workspace"
    )]
    Resolve(&'static str),
    #[error(
        "snapshot name `{0}` is not a plain identifier (letters, digits, `_`, `-`); this is a bug in the runner, please report it"
    )]
    Name(String),
}

fn is_sha(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A branch name HEAD may point at: `refs/…`, no empty, hidden or `..`
/// component, no characters git itself refuses. openat2 keeps the lookup
/// beneath `.git` anyway; this only rejects what git would.
fn is_ref_name(s: &str) -> bool {
    s.len() <= 1024
        && s.starts_with("refs/")
        && !s.contains("..")
        && !s.contains("@{")
        && s.split('/').all(|c| {
            !c.is_empty()
                && !c.starts_with('.')
                && !c.ends_with(".lock")
                && c.bytes()
                    .all(|b| b > b' ' && b != 0x7f && !b"~^:?*[\\".contains(&b))
        })
}

fn text(bytes: &[u8], what: &'static str) -> Result<String, SnapshotError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| SnapshotError::Resolve(what))
}

/// The repository directory: `.git` itself, or the directory a `.git` file
/// names when that lies beneath the workspace without symlinks.
fn git_dir(ws: &Dir) -> Result<Option<Dir>, SnapshotError> {
    match ws.kind(".git")? {
        None => Ok(None),
        Some(FileType::Directory) => Ok(ws.dir(".git")?),
        Some(FileType::RegularFile) => {
            let Some(bytes) = ws.read_file(".git", SMALL_FILE_LIMIT)? else {
                return Ok(None);
            };
            let content = text(&bytes, "`.git` is a file that is not text")?;
            let target = content
                .trim_end_matches(['\n', '\r'])
                .strip_prefix("gitdir: ")
                .filter(|t| !t.is_empty() && !t.contains('\0') && !t.contains('\n'))
                .ok_or(SnapshotError::Resolve(
                    "`.git` is a file without a `gitdir:` line",
                ))?;
            let git = ws
                .dir_as(
                    target,
                    "the directory named by `.git`'s gitdir: line".into(),
                )?
                .ok_or(SnapshotError::Resolve(
                    "`.git` names a gitdir that does not exist",
                ))?;
            if git.kind("commondir")?.is_some() {
                // A linked worktree: its branches live in another repository,
                // which is not beneath this workspace.
                return Err(SnapshotError::Resolve(
                    "the workspace is a linked git worktree, whose branches live outside it",
                ));
            }
            Ok(Some(git))
        }
        Some(other) => Err(ConfinedError::Refused {
            path: ".git".into(),
            reason: kind_reason(other),
        }
        .into()),
    }
}

/// Resolves HEAD to a commit id, following one symbolic ref through a loose
/// ref or packed-refs. `None` for a branch with no commits yet.
fn head_commit(git: &Dir) -> Result<Option<String>, SnapshotError> {
    let head = git
        .read_file("HEAD", SMALL_FILE_LIMIT)?
        .ok_or(SnapshotError::Resolve("`.git/HEAD` is missing"))?;
    let head = text(&head, "`.git/HEAD` is not text")?;
    let head = head.trim();
    if is_sha(head) {
        return Ok(Some(head.to_owned()));
    }
    let target = head
        .strip_prefix("ref: ")
        .filter(|t| is_ref_name(t))
        .ok_or(SnapshotError::Resolve(
            "`.git/HEAD` holds neither a commit id nor `ref: refs/…`",
        ))?;
    // The branch name came from a file: errors name it generically.
    let shown = format!("{} (the branch HEAD names)", git.shown("refs/…"));
    if let Some(loose) = git.read_file_as(target, shown, SMALL_FILE_LIMIT)? {
        let sha = text(&loose, "the branch HEAD names is not text")?;
        let sha = sha.trim();
        return if is_sha(sha) {
            Ok(Some(sha.to_owned()))
        } else {
            Err(SnapshotError::Resolve(
                "the branch HEAD names does not hold a commit id",
            ))
        };
    }
    if let Some(packed) = git.read_file("packed-refs", PACKED_REFS_LIMIT)? {
        for line in packed.split(|&b| b == b'\n') {
            let Ok(line) = std::str::from_utf8(line) else {
                continue;
            };
            if let Some((sha, name)) = line.trim_end_matches('\r').split_once(' ')
                && name == target
                && is_sha(sha)
            {
                return Ok(Some(sha.to_owned()));
            }
        }
    }
    // A repository with no commits yet: nothing to protect.
    Ok(None)
}

/// Creates `refs/heads/bridge-snapshot/<name>` at HEAD. Returns the branch
/// and commit, or `None` when the workspace is not a git repository (or has
/// no commits).
pub fn create(workspace: &Path, name: &str) -> Result<Option<(String, String)>, SnapshotError> {
    if name.is_empty()
        || name.len() > 128
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(SnapshotError::Name(name.to_owned()));
    }
    let ws = Dir::workspace(workspace)?;
    let Some(git) = git_dir(&ws)? else {
        return Ok(None);
    };
    let Some(sha) = head_commit(&git)? else {
        return Ok(None);
    };
    let dir = git
        .dir_create("refs")?
        .dir_create("heads")?
        .dir_create("bridge-snapshot")?;
    dir.replace_file(name, format!("{sha}\n").as_bytes())?;
    Ok(Some((format!("bridge-snapshot/{name}"), sha)))
}

#[cfg(test)]
mod tests;
