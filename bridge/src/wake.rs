//! Wakes long-polling readers the moment the database changes, whichever
//! process changed it.
//!
//! Writes from this process bump a `watch` counter directly. Writes from other
//! processes (another `bridge serve`, the runner) are seen through a
//! filesystem watch on the database's directory: every commit in WAL mode
//! writes the `-wal` file. Waiters also re-check on a slow backstop timer, so
//! a filesystem that does not deliver events (some network mounts) costs
//! latency, never a lost message.

use std::path::Path;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::watch;

/// How often a waiter re-checks even without an event.
pub const BACKSTOP: Duration = Duration::from_millis(500);

pub struct Wake {
    tx: watch::Sender<u64>,
    // Kept alive for its background thread; dropped with the Wake.
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Wake {
    /// Watches the directory of `db` for changes to the database files.
    pub fn watching(db: &Path) -> Self {
        let (tx, _) = watch::channel(0u64);
        let watcher = Self::start_watcher(db, tx.clone());
        Self {
            tx,
            _watcher: watcher,
        }
    }

    fn start_watcher(db: &Path, tx: watch::Sender<u64>) -> Option<notify::RecommendedWatcher> {
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

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}
