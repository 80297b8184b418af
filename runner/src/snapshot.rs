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

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read git metadata in {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write snapshot ref {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot resolve HEAD of {0}: {1}")]
    Resolve(PathBuf, String),
}

fn read(path: &Path) -> Result<String, SnapshotError> {
    std::fs::read_to_string(path).map_err(|source| SnapshotError::Read {
        path: path.into(),
        source,
    })
}

fn is_sha(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Resolves HEAD to a commit id, following one symbolic ref through loose
/// refs or packed-refs.
fn head_commit(git: &Path) -> Result<Option<String>, SnapshotError> {
    let head = read(&git.join("HEAD"))?;
    let head = head.trim();
    if is_sha(head) {
        return Ok(Some(head.to_owned()));
    }
    let Some(target) = head.strip_prefix("ref: ") else {
        return Err(SnapshotError::Resolve(
            git.into(),
            format!("unexpected HEAD `{head}`"),
        ));
    };
    if target.contains("..") {
        return Err(SnapshotError::Resolve(
            git.into(),
            format!("suspicious ref `{target}`"),
        ));
    }
    let loose = git.join(target);
    if loose.is_file() {
        let sha = read(&loose)?.trim().to_owned();
        return if is_sha(&sha) {
            Ok(Some(sha))
        } else {
            Err(SnapshotError::Resolve(
                git.into(),
                format!("`{target}` is not a commit id"),
            ))
        };
    }
    let packed = git.join("packed-refs");
    if packed.is_file() {
        for line in read(&packed)?.lines() {
            if let Some((sha, name)) = line.split_once(' ')
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
    let git = workspace.join(".git");
    if !git.is_dir() {
        return Ok(None);
    }
    let Some(sha) = head_commit(&git)? else {
        return Ok(None);
    };
    let branch = format!("bridge-snapshot/{name}");
    let path = git.join("refs/heads").join(&branch);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| SnapshotError::Write {
            path: dir.into(),
            source,
        })?;
    }
    std::fs::write(&path, format!("{sha}\n")).map_err(|source| SnapshotError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(Some((branch, sha)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_points_at_head_through_loose_and_packed_refs() {
        let dir = tempfile::tempdir().unwrap();
        let git = dir.path().join(".git");
        std::fs::create_dir_all(git.join("refs/heads")).unwrap();
        std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        let sha = "a".repeat(40);
        std::fs::write(git.join("refs/heads/main"), format!("{sha}\n")).unwrap();
        let (branch, got) = create(dir.path(), "prop_1").unwrap().unwrap();
        assert_eq!(got, sha);
        assert_eq!(
            std::fs::read_to_string(git.join("refs/heads").join(&branch))
                .unwrap()
                .trim(),
            sha
        );

        std::fs::remove_file(git.join("refs/heads/main")).unwrap();
        let sha2 = "b".repeat(40);
        std::fs::write(
            git.join("packed-refs"),
            format!("# pack-refs\n{sha2} refs/heads/main\n"),
        )
        .unwrap();
        assert_eq!(create(dir.path(), "prop_2").unwrap().unwrap().1, sha2);
    }

    #[test]
    fn not_a_repository_or_empty_repository_is_no_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        assert!(create(dir.path(), "x").unwrap().is_none());
        let git = dir.path().join(".git");
        std::fs::create_dir_all(&git).unwrap();
        std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        assert!(create(dir.path(), "x").unwrap().is_none());
    }
}
