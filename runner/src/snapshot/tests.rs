//! The snapshot's trap table: a hostile sandbox plants symlinks, FIFOs and
//! huge files at every path the snapshot touches; canaries outside the
//! workspace, watched with inotify, must never be opened, read or changed,
//! and no error may carry their contents.

use std::ffi::CString;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::inotify;

use super::*;

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const SECRET: &str = "AKIAQWERTYUIOPASDFGH canary-secret-7f3a";
const PACKED_SECRET: &str = "fedcba9876543210fedcba9876543210fedcba98";

/// Files outside the workspace that nothing may touch, and an inotify
/// watch on their directories (IN_OPEN catches a read that atime would miss).
struct Canaries {
    root: PathBuf,
    inotify: OwnedFd,
}

impl Canaries {
    fn plant(root: &Path) -> Self {
        let data = root.join("data");
        let repo = root.join("repo/.git");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(repo.join("refs/heads")).unwrap();
        std::fs::write(root.join("secret"), SECRET).unwrap();
        std::fs::write(data.join("bridge.db.secret"), SECRET).unwrap();
        std::fs::write(data.join("victim"), SECRET).unwrap();
        std::fs::write(
            root.join("packed-refs"),
            format!("{PACKED_SECRET} refs/heads/main\n"),
        )
        .unwrap();
        std::fs::write(repo.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(repo.join("refs/heads/main"), format!("{PACKED_SECRET}\n")).unwrap();
        let inotify =
            inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC).unwrap();
        let all = inotify::WatchFlags::OPEN
            | inotify::WatchFlags::ACCESS
            | inotify::WatchFlags::MODIFY
            | inotify::WatchFlags::ATTRIB
            | inotify::WatchFlags::CLOSE_WRITE
            | inotify::WatchFlags::CREATE
            | inotify::WatchFlags::DELETE
            | inotify::WatchFlags::MOVED_FROM
            | inotify::WatchFlags::MOVED_TO;
        for dir in [
            root.to_path_buf(),
            data,
            root.join("repo"),
            repo.clone(),
            repo.join("refs"),
            repo.join("refs/heads"),
        ] {
            inotify::add_watch(&inotify, &dir, all).unwrap();
        }
        Self {
            root: root.to_path_buf(),
            inotify,
        }
    }

    /// Every event since planting, as "mask name" strings.
    fn touched(&self) -> Vec<String> {
        let mut buf = [MaybeUninit::uninit(); 4096];
        let mut reader = inotify::Reader::new(&self.inotify, &mut buf);
        let mut seen = Vec::new();
        loop {
            match reader.next() {
                Ok(e) => seen.push(format!(
                    "{:?} {:?}",
                    e.events(),
                    e.file_name().map(|n| n.to_string_lossy().into_owned())
                )),
                Err(rustix::io::Errno::AGAIN) => return seen,
                Err(e) => panic!("reading inotify events: {e}"),
            }
        }
    }

    fn assert_untouched(&self, trap: &str) {
        let seen = self.touched();
        assert!(seen.is_empty(), "{trap}: a canary was touched: {seen:?}");
        for f in ["secret", "data/bridge.db.secret", "data/victim"] {
            assert_eq!(
                std::fs::read_to_string(self.root.join(f)).unwrap(),
                SECRET,
                "{trap}: {f} changed"
            );
        }
    }
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        CString::new(path.as_os_str().as_encoded_bytes())
            .unwrap()
            .as_c_str(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}

/// A sparse file far beyond every cap (no disk is used).
fn huge(path: &Path) {
    std::fs::File::create(path)
        .unwrap()
        .set_len(1 << 32)
        .unwrap();
}

/// A workspace with a normal repository: HEAD → refs/heads/main → SHA.
fn repo(ws: &Path) -> PathBuf {
    let git = ws.join(".git");
    std::fs::create_dir_all(git.join("refs/heads")).unwrap();
    std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::write(git.join("refs/heads/main"), format!("{SHA}\n")).unwrap();
    git
}

fn replace_with_symlink(target: &Path, link: &Path) {
    if link.is_dir() {
        std::fs::remove_dir_all(link).unwrap();
    } else if link.symlink_metadata().is_ok() {
        std::fs::remove_file(link).unwrap();
    }
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    symlink(target, link).unwrap();
}

fn replace_with(link: &Path, make: impl Fn(&Path)) {
    if link.is_dir() && link.symlink_metadata().unwrap().is_dir() {
        std::fs::remove_dir_all(link).unwrap();
    } else if link.symlink_metadata().is_ok() {
        std::fs::remove_file(link).unwrap();
    }
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    make(link);
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// The snapshot is refused with an error naming this workspace path.
    Refused(&'static str),
    /// The snapshot is made, at SHA, as a regular file.
    Made,
    /// No snapshot (nothing to protect or no repository).
    Nothing,
}

type Trap = (&'static str, fn(&Path, &Path), Expect);

/// Every path the snapshot touches, and each way to booby-trap it.
fn traps() -> Vec<Trap> {
    use Expect::*;
    vec![
        (
            "HEAD symlink to a host secret",
            |ws, out| replace_with_symlink(&out.join("secret"), &repo(ws).join("HEAD")),
            Refused(".git/HEAD"),
        ),
        (
            "HEAD relative symlink inside the workspace",
            |ws, _| {
                let g = repo(ws);
                std::fs::write(ws.join("fakehead"), "ref: refs/heads/main\n").unwrap();
                replace_with_symlink(Path::new("../fakehead"), &g.join("HEAD"));
            },
            Refused(".git/HEAD"),
        ),
        (
            "HEAD is a FIFO",
            |ws, _| replace_with(&repo(ws).join("HEAD"), mkfifo),
            Refused(".git/HEAD"),
        ),
        (
            "HEAD is huge",
            |ws, _| replace_with(&repo(ws).join("HEAD"), huge),
            Refused(".git/HEAD"),
        ),
        (
            "HEAD is a directory",
            |ws, _| replace_with(&repo(ws).join("HEAD"), |p| std::fs::create_dir(p).unwrap()),
            Refused(".git/HEAD"),
        ),
        (
            "HEAD names a ref outside .git",
            |ws, _| std::fs::write(repo(ws).join("HEAD"), "ref: refs/../../../secret\n").unwrap(),
            Refused("HEAD"),
        ),
        (
            "HEAD names an absolute path",
            |ws, out| {
                std::fs::write(
                    repo(ws).join("HEAD"),
                    format!("ref: {}\n", out.join("secret").display()),
                )
                .unwrap()
            },
            Refused("HEAD"),
        ),
        (
            "loose ref symlink to a host secret",
            |ws, out| {
                replace_with_symlink(
                    &out.join("repo/.git/refs/heads/main"),
                    &repo(ws).join("refs/heads/main"),
                )
            },
            Refused("the branch HEAD names"),
        ),
        (
            "loose ref is a FIFO",
            |ws, _| replace_with(&repo(ws).join("refs/heads/main"), mkfifo),
            Refused("the branch HEAD names"),
        ),
        (
            "loose ref is huge",
            |ws, _| replace_with(&repo(ws).join("refs/heads/main"), huge),
            Refused("the branch HEAD names"),
        ),
        (
            "refs/ is a symlink to a host repository",
            |ws, out| replace_with_symlink(&out.join("repo/.git/refs"), &repo(ws).join("refs")),
            Refused("the branch HEAD names"),
        ),
        (
            "refs/heads/ is a symlink to a host repository",
            |ws, out| {
                replace_with_symlink(
                    &out.join("repo/.git/refs/heads"),
                    &repo(ws).join("refs/heads"),
                )
            },
            Refused("the branch HEAD names"),
        ),
        (
            "packed-refs symlink to a host file",
            |ws, out| {
                let g = repo(ws);
                std::fs::remove_file(g.join("refs/heads/main")).unwrap();
                replace_with_symlink(&out.join("packed-refs"), &g.join("packed-refs"));
            },
            Refused(".git/packed-refs"),
        ),
        (
            "packed-refs is a FIFO",
            |ws, _| {
                let g = repo(ws);
                std::fs::remove_file(g.join("refs/heads/main")).unwrap();
                replace_with(&g.join("packed-refs"), mkfifo);
            },
            Refused(".git/packed-refs"),
        ),
        (
            "packed-refs is huge",
            |ws, _| {
                let g = repo(ws);
                std::fs::remove_file(g.join("refs/heads/main")).unwrap();
                replace_with(&g.join("packed-refs"), huge);
            },
            Refused(".git/packed-refs"),
        ),
        (
            "bridge-snapshot/ is a symlink to a host directory",
            |ws, out| {
                replace_with_symlink(
                    &out.join("data"),
                    &repo(ws).join("refs/heads/bridge-snapshot"),
                )
            },
            Refused(".git/refs/heads/bridge-snapshot"),
        ),
        (
            "bridge-snapshot/ is a FIFO",
            |ws, _| replace_with(&repo(ws).join("refs/heads/bridge-snapshot"), mkfifo),
            Refused(".git/refs/heads/bridge-snapshot"),
        ),
        (
            "bridge-snapshot/ is a regular file",
            |ws, _| {
                replace_with(&repo(ws).join("refs/heads/bridge-snapshot"), |p| {
                    std::fs::write(p, "x").unwrap()
                })
            },
            Refused(".git/refs/heads/bridge-snapshot"),
        ),
        (
            "the snapshot ref is a symlink to a host file",
            |ws, out| {
                replace_with_symlink(
                    &out.join("data/victim"),
                    &repo(ws).join("refs/heads/bridge-snapshot/prop_1"),
                )
            },
            Made,
        ),
        (
            "the snapshot ref is a dangling symlink to a host path",
            |ws, out| {
                replace_with_symlink(
                    &out.join("data/created"),
                    &repo(ws).join("refs/heads/bridge-snapshot/prop_1"),
                )
            },
            Made,
        ),
        (
            "the snapshot ref is a FIFO",
            |ws, _| replace_with(&repo(ws).join("refs/heads/bridge-snapshot/prop_1"), mkfifo),
            Made,
        ),
        (
            "the snapshot ref is a directory",
            |ws, _| {
                replace_with(&repo(ws).join("refs/heads/bridge-snapshot/prop_1"), |p| {
                    std::fs::create_dir_all(p.join("x")).unwrap()
                })
            },
            Refused(".git/refs/heads/bridge-snapshot/prop_1"),
        ),
        (
            "refs/heads/ missing, refs/ a symlink",
            |ws, out| {
                let g = repo(ws);
                std::fs::write(g.join("HEAD"), format!("{SHA}\n")).unwrap();
                replace_with_symlink(&out.join("repo/.git/refs"), &g.join("refs"));
            },
            Refused(".git/refs"),
        ),
        (
            ".git is a symlink to a host repository",
            |ws, out| symlink(out.join("repo/.git"), ws.join(".git")).unwrap(),
            Refused(".git"),
        ),
        (
            ".git is a FIFO",
            |ws, _| mkfifo(&ws.join(".git")),
            Refused(".git"),
        ),
        (
            ".git file is huge",
            |ws, _| huge(&ws.join(".git")),
            Refused(".git"),
        ),
        (
            ".git file points to an absolute host path",
            |ws, out| {
                std::fs::write(
                    ws.join(".git"),
                    format!("gitdir: {}\n", out.join("repo/.git").display()),
                )
                .unwrap()
            },
            Refused("gitdir"),
        ),
        (
            ".git file climbs out with ..",
            |ws, _| std::fs::write(ws.join(".git"), "gitdir: ../out/repo/.git\n").unwrap(),
            Refused("gitdir"),
        ),
        (
            ".git file points at a symlink in the workspace",
            |ws, out| {
                symlink(out.join("repo/.git"), ws.join("link")).unwrap();
                std::fs::write(ws.join(".git"), "gitdir: link\n").unwrap();
            },
            Refused("gitdir"),
        ),
        (
            ".git file without gitdir:",
            |ws, _| std::fs::write(ws.join(".git"), SECRET).unwrap(),
            Refused("gitdir"),
        ),
        (
            ".git file pointing beneath the workspace",
            |ws, _| {
                let real = ws.join("sub/real.git");
                std::fs::create_dir_all(real.join("refs/heads")).unwrap();
                std::fs::write(real.join("HEAD"), "ref: refs/heads/main\n").unwrap();
                std::fs::write(real.join("refs/heads/main"), format!("{SHA}\n")).unwrap();
                std::fs::write(ws.join(".git"), "gitdir: sub/real.git\n").unwrap();
            },
            Made,
        ),
        (
            "packed-refs only, well formed",
            |ws, _| {
                let g = repo(ws);
                std::fs::remove_file(g.join("refs/heads/main")).unwrap();
                std::fs::write(
                    g.join("packed-refs"),
                    format!("# pack-refs with: peeled\n{SHA} refs/heads/main\n"),
                )
                .unwrap();
            },
            Made,
        ),
        (
            "detached HEAD",
            |ws, _| std::fs::write(repo(ws).join("HEAD"), format!("{SHA}\n")).unwrap(),
            Made,
        ),
        (
            "no commits yet",
            |ws, _| {
                std::fs::remove_file(repo(ws).join("refs/heads/main")).unwrap();
            },
            Nothing,
        ),
        ("not a repository", |_, _| {}, Nothing),
    ]
}

/// Runs `create` on another thread so a regression that blocks on a FIFO
/// fails the test instead of hanging it.
fn create_watched(ws: &Path) -> Result<Option<(String, String)>, String> {
    let ws = ws.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(create(&ws, "prop_1").map_err(|e| e.to_string()));
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the snapshot blocked (a FIFO was opened blocking?)")
}

#[test]
fn every_trap_is_refused_or_defused_and_no_canary_is_touched() {
    for (name, plant, expect) in traps() {
        let tmp = tempfile::tempdir().unwrap();
        let (ws, out) = (tmp.path().join("ws"), tmp.path().join("out"));
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        plant(&ws, &out);
        let canaries = Canaries::plant(&out);
        let got = create_watched(&ws);
        canaries.assert_untouched(name);
        match (&got, expect) {
            (Err(e), Expect::Refused(path)) => {
                assert!(
                    e.contains(path),
                    "{name}: error does not name `{path}`: {e}"
                );
                for leak in [SECRET, PACKED_SECRET, "canary", &out.display().to_string()] {
                    assert!(!e.contains(leak), "{name}: error leaks `{leak}`: {e}");
                }
            }
            (Ok(Some((branch, sha))), Expect::Made) => {
                assert_eq!(
                    (branch.as_str(), sha.as_str()),
                    ("bridge-snapshot/prop_1", SHA),
                    "{name}"
                );
            }
            (Ok(None), Expect::Nothing) => {}
            _ => panic!("{name}: expected {expect:?}, got {got:?}"),
        }
        if expect == Expect::Made {
            let git = if ws.join(".git").is_dir() {
                ws.join(".git")
            } else {
                ws.join("sub/real.git")
            };
            let made = git.join("refs/heads/bridge-snapshot/prop_1");
            assert!(
                made.symlink_metadata().unwrap().is_file(),
                "{name}: not a regular file"
            );
            assert_eq!(std::fs::read_to_string(made).unwrap().trim(), SHA, "{name}");
            assert!(
                !out.join("data/created").exists(),
                "{name}: followed a dangling symlink"
            );
        }
    }
}

#[test]
fn snapshot_points_at_head_through_loose_and_packed_refs() {
    let dir = tempfile::tempdir().unwrap();
    let git = repo(dir.path());
    let (branch, got) = create(dir.path(), "prop_1").unwrap().unwrap();
    assert_eq!(got, SHA);
    assert_eq!(
        std::fs::read_to_string(git.join("refs/heads").join(&branch))
            .unwrap()
            .trim(),
        SHA
    );

    std::fs::remove_file(git.join("refs/heads/main")).unwrap();
    let sha2 = "b".repeat(40);
    std::fs::write(
        git.join("packed-refs"),
        format!("# pack-refs\n{sha2} refs/heads/main\n"),
    )
    .unwrap();
    assert_eq!(create(dir.path(), "prop_2").unwrap().unwrap().1, sha2);
    // No temporary file is left next to the refs.
    let names: Vec<_> = std::fs::read_dir(git.join("refs/heads/bridge-snapshot"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn a_name_that_is_not_an_identifier_is_refused_before_any_access() {
    let dir = tempfile::tempdir().unwrap();
    repo(dir.path());
    for bad in ["", "../x", "a/b", ".hidden\0", "x y"] {
        assert!(
            matches!(create(dir.path(), bad), Err(SnapshotError::Name(_))),
            "{bad:?}"
        );
    }
}
