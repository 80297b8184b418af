//! WAL checkpoints on a thread of their own, off the request path.
//!
//! SQLite's automatic checkpoint runs inside the `COMMIT` that makes the WAL
//! pass 1 000 pages: that commit copies up to 4 MB into the database file
//! and, with `synchronous=NORMAL`, waits for two fsyncs before it returns,
//! so one send in a thousand paid milliseconds for all the others. Here the
//! write connection's WAL hook (which replaces the automatic checkpoint)
//! only asks a checkpoint thread to run one; the commit returns at once.
//!
//! The thread runs `PASSIVE` checkpoints on a connection of its own: they
//! never wait for readers or writers and never block them, so writes go on
//! appending to the WAL meanwhile. Once a checkpoint has copied every frame,
//! SQLite starts the WAL from its beginning at the next write, which keeps
//! the file bounded as the automatic checkpoint did. A process checkpoints
//! what its own commits grew; the hook sees the WAL's whole length, so a
//! WAL grown by a process that exited is checkpointed after the next commit
//! of any process. Nothing acknowledged depends on a checkpoint: a committed
//! frame in the WAL is as durable as one copied into the database.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::StoreError;

/// A checkpoint is asked for once the WAL holds this many pages, SQLite's
/// own default for its automatic checkpoint.
pub const WAL_PAGES: i32 = 1000;

/// A `RESTART` checkpoint runs only when the `PASSIVE` one left at most
/// this many pages to copy: it holds writes off while it copies them, so a
/// burst of writes (a cleanup deleting thousands of rows) waits for another
/// `PASSIVE` pass instead.
const RESTART_REMAINDER: i32 = WAL_PAGES / 4;

/// How long a `RESTART` checkpoint waits for a reader or writer to finish.
const RESTART_WAIT: Duration = Duration::from_millis(50);

/// Past this many pages the checkpoints are not keeping up (a reader holding
/// an old snapshot, or checkpoints failing): worth a warning.
const WAL_PAGES_WARN: i32 = 16 * WAL_PAGES;

/// At most one warning about a long WAL per this interval.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Replaces `conn`'s automatic checkpoint with requests to a checkpoint
/// thread for the database at `path`, started by the first request.
pub fn install(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    install_with(conn, path, start)
}

fn install_with(
    conn: &mut Connection,
    path: &Path,
    start: fn(PathBuf) -> std::io::Result<SyncSender<()>>,
) -> Result<(), StoreError> {
    let mut thread = Thread {
        path: path.to_path_buf(),
        start,
        requests: None,
        warned_at: None,
    };
    conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: i32| {
        if pages >= WAL_PAGES {
            thread.request(pages);
        }
        Ok(())
    }))?;
    Ok(())
}

/// The hook's side of the checkpoint thread.
struct Thread {
    path: PathBuf,
    start: fn(PathBuf) -> std::io::Result<SyncSender<()>>,
    /// Holds at most one request: a request made while one waits is the
    /// same request. Dropped with the write connection, which ends the
    /// thread.
    requests: Option<SyncSender<()>>,
    warned_at: Option<Instant>,
}

impl Thread {
    fn request(&mut self, pages: i32) {
        if pages >= WAL_PAGES_WARN && self.warned_at.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            self.warned_at = Some(Instant::now());
            tracing::warn!(
                pages,
                db = %self.path.display(),
                "the database's WAL is not being checkpointed: is a reader holding a transaction open?"
            );
        }
        let requests = match &self.requests {
            Some(tx) => tx,
            None => match (self.start)(self.path.clone()) {
                Ok(tx) => self.requests.insert(tx),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the checkpoint thread; the WAL grows until another process checkpoints it");
                    return;
                }
            },
        };
        match requests.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => self.requests = None,
        }
    }
}

fn start(path: PathBuf) -> std::io::Result<SyncSender<()>> {
    let (tx, rx) = mpsc::sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("bridge-db-checkpoint".into())
        .spawn(move || {
            let mut conn = None;
            while rx.recv().is_ok() {
                if let Err(e) = checkpoint(&mut conn, &path) {
                    // Another process checkpointing at the same moment is
                    // SQLITE_BUSY: the next request tries again.
                    tracing::debug!(error = %e, "checkpoint not done");
                    conn = None;
                }
            }
        })?;
    Ok(tx)
}

/// One checkpoint cycle on the thread's connection (opened on first use):
/// a `PASSIVE` checkpoint, then a `RESTART` one if the WAL is still long.
///
/// A `PASSIVE` checkpoint copies frames while writes go on appending, and
/// SQLite starts the WAL over only when a write begins with every frame
/// copied: with writes arriving faster than a checkpoint's fsyncs, that
/// moment never comes and each commit would ask for another pass. So the
/// `PASSIVE` pass copies the bulk without holding anyone up, and a
/// `RESTART` pass then holds new writes off while it copies the few frames
/// appended meanwhile (when they are few: [`RESTART_REMAINDER`]), after
/// which the next write starts the WAL over. It
/// waits at most [`RESTART_WAIT`] for a reader or writer to finish (so a
/// long-lived reader delays writes by that much at most) and is tried
/// again at the next request. A request that finds the WAL already started
/// over (it was queued during the last cycle) ends after the `PASSIVE`
/// pass.
fn checkpoint(conn: &mut Option<Connection>, path: &Path) -> rusqlite::Result<()> {
    let conn = match conn {
        Some(c) => c,
        None => {
            let c = Connection::open(path)?;
            c.busy_timeout(RESTART_WAIT)?;
            conn.insert(c)
        }
    };
    let run = |mode: &str| -> rusqlite::Result<(i64, i64, i64)> {
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
    };
    let (busy, log, done) = run("PASSIVE")?;
    tracing::trace!(busy, log, done, "passive checkpoint");
    if log >= i64::from(WAL_PAGES) && log - done <= i64::from(RESTART_REMAINDER) {
        let (busy, log, done) = run("RESTART")?;
        tracing::trace!(busy, log, done, "restart checkpoint");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::mpsc::{self, SyncSender};
    use std::time::{Duration, Instant};

    use crate::store::{Db, Sync};

    fn wal_len(db: &std::path::Path) -> u64 {
        std::fs::metadata(db.with_extension("db-wal")).map_or(0, |m| m.len())
    }

    /// A checkpoint thread that takes requests and never checkpoints.
    fn idle_thread(_: PathBuf) -> std::io::Result<SyncSender<()>> {
        let (tx, rx) = mpsc::sync_channel(1);
        std::mem::forget(rx);
        Ok(tx)
    }

    /// No commit checkpoints: with a checkpoint thread that does nothing,
    /// the WAL grows past SQLite's automatic threshold (which a setting
    /// re-enabling the automatic checkpoint would undo).
    #[test]
    fn commits_never_checkpoint_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db");
        let mut conn = crate::store::open(&path, Sync::Normal).unwrap();
        super::install_with(&mut conn, &path, idle_thread).unwrap();
        let page = "x".repeat(4000);
        for i in 0..1500 {
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                rusqlite::params![format!("k{}", i % 50), format!("{i}{page}")],
            )
            .unwrap();
        }
        let pages = wal_len(&path) / 4096;
        assert!(
            pages > 2 * super::WAL_PAGES as u64,
            "the WAL holds {pages} pages"
        );
    }

    /// The commits never checkpoint themselves, yet the WAL stays bounded:
    /// the checkpoint thread copies it back and SQLite restarts it. With
    /// the hook doing nothing the WAL would pass 16 MB here.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_without_checkpoints_in_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db");
        let db = Db::open(&path, Sync::Normal).unwrap();
        let page = "x".repeat(4000);
        let mut longest = 0;
        for i in 0..4000 {
            // Each value differs: SQLite writes nothing for an unchanged row.
            let value = format!("{i}{page}");
            db.write(move |c| {
                c.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                    rusqlite::params![format!("k{}", i % 50), value],
                )?;
                Ok(())
            })
            .await
            .unwrap();
            longest = longest.max(wal_len(&path));
        }
        // 1 000 pages of 4 KiB and what arrives while a checkpoint runs.
        assert!(longest < 12_000_000, "the WAL grew to {longest} bytes");
        // The thread is what checkpoints: with no request the WAL would
        // keep its length, and a commit that checkpointed itself would
        // have found it at most 1 000 pages long anyway, so also check that
        // the frames reached the database file.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::metadata(&path).unwrap().len() < 100_000 {
            assert!(
                Instant::now() < deadline,
                "nothing was copied into the database file"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
