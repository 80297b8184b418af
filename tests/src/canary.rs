//! Canary files outside a workspace, watched with inotify: any open, read,
//! write, creation or deletion under them is reported (atime alone would miss
//! reads on `noatime`/`relatime` mounts and all opens).

use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::inotify;

/// A marker no redaction rule knows: if it ever shows up in stored or logged
/// text, the file was read, not merely redacted.
pub const MARKER: &str = "canary-4e1d-host-only-bytes";
/// A credential-looking value (the redactor would hide it, so the marker is
/// what proves nothing was read).
pub const AWS_KEY: &str = "AKIAHOSTCANARY7Q2X9Z";

/// A `/data`-like directory and a home-like credential directory holding
/// secrets, plus a fake repository, all under `root`, watched recursively.
pub struct Canaries {
    pub root: PathBuf,
    inotify: OwnedFd,
    contents: Vec<(PathBuf, Vec<u8>)>,
}

impl Canaries {
    /// Plants the canaries, then starts watching (planting is not reported).
    pub fn plant(root: &Path, sha: &str) -> anyhow::Result<Self> {
        let secret = format!("{MARKER}\naws_access_key_id = {AWS_KEY}\n");
        let files: Vec<(PathBuf, String)> = vec![
            (
                root.join("data/bridge.db"),
                format!("SQLite format 3 {MARKER}"),
            ),
            (root.join("data/bridge.db.secret"), secret.clone()),
            (root.join("data/http-token"), secret.clone()),
            (root.join("data/victim"), secret.clone()),
            (root.join("aws/credentials"), format!("[default]\n{secret}")),
            (root.join("packed-refs"), format!("{sha} refs/heads/main\n")),
            (root.join("repo/.git/HEAD"), "ref: refs/heads/main\n".into()),
            (root.join("repo/.git/refs/heads/main"), format!("{sha}\n")),
        ];
        let mut contents = Vec::new();
        for (path, text) in files {
            std::fs::create_dir_all(path.parent().unwrap())?;
            std::fs::write(&path, &text)?;
            contents.push((path, text.into_bytes()));
        }
        let inotify =
            inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC)?;
        let me = Self {
            root: root.to_owned(),
            inotify,
            contents,
        };
        me.watch(root)?;
        // Walking the tree to add watches opened the directories: not news.
        me.touched()?;
        Ok(me)
    }

    fn watch(&self, dir: &Path) -> anyhow::Result<()> {
        let all = inotify::WatchFlags::OPEN
            | inotify::WatchFlags::ACCESS
            | inotify::WatchFlags::MODIFY
            | inotify::WatchFlags::ATTRIB
            | inotify::WatchFlags::CLOSE_WRITE
            | inotify::WatchFlags::CREATE
            | inotify::WatchFlags::DELETE
            | inotify::WatchFlags::MOVED_FROM
            | inotify::WatchFlags::MOVED_TO;
        inotify::add_watch(&self.inotify, dir, all)?;
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                self.watch(&e.path())?;
            }
        }
        Ok(())
    }

    /// Every event since the last call, as readable strings.
    pub fn touched(&self) -> anyhow::Result<Vec<String>> {
        let mut buf = [MaybeUninit::uninit(); 8192];
        let mut reader = inotify::Reader::new(&self.inotify, &mut buf);
        let mut seen = Vec::new();
        loop {
            match reader.next() {
                Ok(e) => seen.push(format!(
                    "{:?} {:?}",
                    e.events(),
                    e.file_name().map(|n| n.to_string_lossy().into_owned())
                )),
                Err(rustix::io::Errno::AGAIN) => return Ok(seen),
                Err(e) => anyhow::bail!("reading inotify events: {e}"),
            }
        }
    }

    /// Nothing under the canary root was opened, read or changed since the
    /// last call, and every canary still holds what was planted.
    pub fn assert_untouched(&self, when: &str) -> anyhow::Result<()> {
        let seen = self.touched()?;
        anyhow::ensure!(seen.is_empty(), "{when}: a canary was touched: {seen:?}");
        for (path, bytes) in &self.contents {
            anyhow::ensure!(
                &std::fs::read(path)? == bytes,
                "{when}: {} changed",
                path.display()
            );
        }
        // The reads just above were ours.
        self.touched()?;
        Ok(())
    }

    /// `text` shows no canary content.
    pub fn assert_absent(text: &str, what: &str) {
        for leak in [MARKER, AWS_KEY, "aws_access_key_id"] {
            assert!(!text.contains(leak), "{what} leaks `{leak}`:\n{text}");
        }
    }
}
