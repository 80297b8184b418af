//! Wakes long-polling readers the moment the database changes, whichever
//! process changed it.
//!
//! Writes from this process bump a `watch` counter directly. Writes from other
//! processes (another `bridge serve`, the runner) are seen through a
//! filesystem watch. A commit in WAL mode writes the `-wal` file, but its
//! event can arrive before the commit is visible to readers (SQLite
//! publishes it in the `-shm` index afterwards, through shared memory, which
//! makes no event), and a commit writes several pages, each an event. So
//! every writer rings a [`Bell`] after its commit returns: one 8-byte write
//! to `<db>-doorbell`, whose event always comes after the commit is visible,
//! and the watch is on that file alone: one wake-up per commit. Waiters also
//! re-check on a slow backstop timer, so a filesystem that does not deliver
//! events (some network mounts), or a writer that cannot ring, costs
//! latency, never a lost message.
//!
//! The watch starts with the first subscriber (the first long poll, the
//! console): until something waits, this process's own commits ring the
//! bell for other processes without waking a watcher thread of its own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::watch;

/// How often a waiter re-checks even without an event.
pub const BACKSTOP: Duration = Duration::from_millis(500);

pub struct Wake {
    tx: watch::Sender<u64>,
    db: PathBuf,
    /// Started by the first [`Wake::subscribe`]; kept alive for its
    /// background thread and dropped with the Wake.
    watcher: OnceLock<Option<notify::RecommendedWatcher>>,
}

impl Wake {
    /// Wakes subscribers on changes to the database at `db`, by this
    /// process or (through its doorbell) another.
    pub fn watching(db: &Path) -> Self {
        let (tx, _) = watch::channel(0u64);
        Self {
            tx,
            db: db.to_path_buf(),
            watcher: OnceLock::new(),
        }
    }

    /// Watches `<db>-doorbell` itself, so this process wakes for commits
    /// only, not for each page SQLite writes to the `-wal` (several per
    /// commit, each of which used to wake every waiter for a query that
    /// finds nothing new). When the doorbell cannot be watched, the
    /// directory is, with any database file's change counted as before.
    fn start_watcher(db: &Path, tx: watch::Sender<u64>) -> Option<notify::RecommendedWatcher> {
        let bell = bell_path(db);
        // Created (owner-only, never through a symlink) if no writer has yet.
        drop(Bell::open(db));
        let on_bell = {
            let tx = tx.clone();
            move |res: notify::Result<notify::Event>| {
                if matches!(res, Ok(e) if matches!(e.kind, notify::EventKind::Modify(_))) {
                    tx.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
        };
        match notify::recommended_watcher(on_bell) {
            Ok(mut w) => match w.watch(&bell, RecursiveMode::NonRecursive) {
                Ok(()) => return Some(w),
                Err(e) => {
                    tracing::warn!(path = %bell.display(), error = %e, "cannot watch the doorbell; watching the database directory instead");
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "no filesystem watcher; cross-process wake-ups fall back to a {} ms re-check", BACKSTOP.as_millis());
                return None;
            }
        }
        Self::watch_directory(db, tx)
    }

    fn watch_directory(db: &Path, tx: watch::Sender<u64>) -> Option<notify::RecommendedWatcher> {
        let dir = db
            .parent()
            .filter(|d| !d.as_os_str().is_empty())?
            .to_path_buf();
        let name = db.file_name()?.to_string_lossy().into_owned();
        let handler = move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            let ours = event.paths.iter().any(|p| {
                p.file_name()
                    .map(|f| f.to_string_lossy().starts_with(name.as_str()))
                    .unwrap_or(false)
            });
            if ours
                && matches!(
                    event.kind,
                    notify::EventKind::Modify(_) | notify::EventKind::Create(_)
                )
            {
                tx.send_modify(|n| *n = n.wrapping_add(1));
            }
        };
        match notify::recommended_watcher(handler) {
            Ok(mut w) => match w.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => Some(w),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the database directory; cross-process wake-ups fall back to a {} ms re-check", BACKSTOP.as_millis());
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "no filesystem watcher; cross-process wake-ups fall back to a {} ms re-check", BACKSTOP.as_millis());
                None
            }
        }
    }

    /// Tells local waiters that this process just committed something.
    pub fn notify(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes on every commit from here on: the watch on
    /// other processes' commits is running before this returns.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        let rx = self.tx.subscribe();
        self.watcher
            .get_or_init(|| Self::start_watcher(&self.db, self.tx.clone()));
        rx
    }
}

/// The file a writer touches after each commit, beside the database.
pub fn bell_path(db: &Path) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-doorbell");
    name.into()
}

/// Rings other processes' [`Wake`]s after a commit (see the module docs).
pub struct Bell {
    file: std::fs::File,
    rung: std::sync::atomic::AtomicU64,
}

impl Bell {
    /// Opens (creating, owner-only) `<db>-doorbell`; never follows a
    /// symlink. `None`, with a warning, when it cannot: other processes
    /// then see this one's commits on their backstop re-check.
    pub fn open(db: &Path) -> Option<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = bell_path(db);
        match std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&path)
        {
            Ok(file) => Some(Self {
                file,
                rung: std::sync::atomic::AtomicU64::new(0),
            }),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot open the doorbell file; other processes may see this one's commits up to {} ms late", BACKSTOP.as_millis());
                None
            }
        }
    }

    /// Announces a commit that has returned.
    pub fn ring(&self) {
        use std::os::unix::fs::FileExt;
        let n = self
            .rung
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .wrapping_add(1);
        if let Err(e) = self.file.write_at(&n.to_le_bytes(), 0) {
            tracing::debug!(error = %e, "cannot ring the doorbell");
        }
    }
}

/// An inbox: (conversation id, recipient session id).
pub type Inbox = (String, String);

/// One doorbell per inbox that has a long poll waiting on it.
///
/// A change to the database (a local commit or another process's) used to
/// wake every waiting long poll, and each re-ran its query under the write
/// lock: with 50 clients that was ~100 wasted queries per message. Now one
/// dispatcher per process (see `Bridge::check`) turns each change into a
/// single query for the inboxes that received messages and rings only
/// their bells.
#[derive(Default)]
pub struct Doorbells {
    bells: Mutex<HashMap<Inbox, watch::Sender<u64>>>,
}

impl Doorbells {
    /// A receiver that changes whenever a message for `inbox` is committed.
    pub fn subscribe(&self, inbox: Inbox) -> watch::Receiver<u64> {
        let mut bells = self.bells.lock().unwrap_or_else(|p| p.into_inner());
        // Bells nobody waits on any more go; there are only as many as
        // there are long polls in flight.
        bells.retain(|_, tx| tx.receiver_count() > 0);
        bells
            .entry(inbox)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Rings the bells of `inboxes` that someone waits on.
    pub fn ring(&self, inboxes: impl IntoIterator<Item = Inbox>) {
        let bells = self.bells.lock().unwrap_or_else(|p| p.into_inner());
        for inbox in inboxes {
            if let Some(tx) = bells.get(&inbox) {
                tx.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits up to `within` for `rx` to see a change.
    fn changes(rx: &mut watch::Receiver<u64>, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if rx.has_changed().unwrap_or(false) {
                rx.mark_unchanged();
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn another_process_wakes_this_one_once_per_commit_not_per_wal_page() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("b.db");
        let wake = Wake::watching(&db);
        let mut rx = wake.subscribe();
        // What SQLite does during a commit: page writes to the WAL and the
        // database file. None of them is a commit anyone can see yet.
        for file in ["b.db-wal", "b.db", "b.db-journal"] {
            std::fs::write(dir.path().join(file), [0u8; 4096]).unwrap();
        }
        assert!(
            !changes(&mut rx, Duration::from_millis(300)),
            "a WAL page write woke the waiters"
        );
        // Another process's writer, after its commit returned.
        Bell::open(&db).unwrap().ring();
        assert!(
            changes(&mut rx, Duration::from_secs(5)),
            "the doorbell did not wake the waiters"
        );
    }

    /// No watcher thread until something waits; then other processes'
    /// commits wake the subscriber.
    #[test]
    fn the_watch_starts_with_the_first_subscriber() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("b.db");
        let wake = Wake::watching(&db);
        Bell::open(&db).unwrap().ring();
        assert!(
            wake.watcher.get().is_none(),
            "a watcher started before anyone waited"
        );
        let mut rx = wake.subscribe();
        assert!(matches!(wake.watcher.get(), Some(Some(_))));
        Bell::open(&db).unwrap().ring();
        assert!(
            changes(&mut rx, Duration::from_secs(5)),
            "the doorbell did not wake the first subscriber"
        );
    }

    #[test]
    fn a_bell_rings_only_its_own_inbox() {
        let bells = Doorbells::default();
        let mut a = bells.subscribe(("c".into(), "a".into()));
        let mut b = bells.subscribe(("c".into(), "b".into()));
        bells.ring([("c".to_owned(), "b".to_owned()), ("x".into(), "y".into())]);
        assert!(!a.has_changed().unwrap());
        assert!(b.has_changed().unwrap());
        b.borrow_and_update();
        drop(a);
        // The next subscription drops the abandoned bell.
        let _b2 = bells.subscribe(("c".into(), "b".into()));
        assert_eq!(bells.bells.lock().unwrap().len(), 1);
        a = bells.subscribe(("c".into(), "a".into()));
        assert!(!a.has_changed().unwrap());
    }
}
