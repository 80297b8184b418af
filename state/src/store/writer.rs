//! The writer thread: one per process, it runs the writes handed to
//! [`Db::write`](super::Db::write) on the process's one write connection,
//! with group commit.
//!
//! Why a thread of its own: a hop to tokio's blocking pool per write costs a
//! task allocation and a queue shared by every blocking job, and with many
//! clients (HTTP) dozens of pool threads queued on the connection's mutex,
//! each taking the write lock, writing its few pages to the WAL and
//! committing on its own. Here the writes queue on a channel instead, and
//! the thread takes every write waiting when it gets to them as one group:
//! one `BEGIN IMMEDIATE`, each write in a `SAVEPOINT` of its own, one
//! `COMMIT`. Many sends then cost one WAL append of the pages they share
//! (the tail of `messages`, `inbox`, `audit` and their indexes).
//!
//! Durability is unchanged: every write is acknowledged (its result sent
//! back) only after the `COMMIT` of its group has returned. A write that
//! fails (an error or a panic) is rolled back to its savepoint and fails
//! alone; the others of its group commit. If the `COMMIT` itself fails,
//! nothing of the group was written and every write in it gets the error.
//! Writes run in arrival order, each seeing the ones before it, exactly as
//! one after the other: the audit chain stays linear and quotas counted in
//! the transaction hold.
//!
//! A lone write (the usual case with one client) runs in a plain
//! transaction, without a savepoint.
//!
//! On a current-thread runtime (`bridge serve` over stdio: one client) a
//! write first tries to run right where it was asked, on the runtime's own
//! thread: the hop to the writer thread and back (two cross-thread
//! wake-ups) cost ~50 µs of a ~210 µs `send_to_partner`. It runs there
//! only when it will not wait: the connection is
//! free in this process and `BEGIN IMMEDIATE`, tried without a busy
//! timeout, got the write lock at once. Otherwise (another process is
//! writing, or this one's writer thread is) it queues for the writer
//! thread as before, so the runtime never blocks on a lock. WAL
//! checkpoints, the one slow part of a commit, run on a thread of their
//! own (`checkpoint.rs`).

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, TryLockError};

use rusqlite::Connection;
use tokio::runtime::{Handle, RuntimeFlavor};

use super::{BUSY_TIMEOUT, StoreError};
use crate::wake::Bell;

/// At most this many writes share a transaction, so one group never holds
/// the write lock for long while other processes wait for it.
const MAX_GROUP: usize = 64;

/// What a write does with its turn: run on the connection, or learn that
/// its group could not start a transaction.
enum Turn<'a> {
    Run(&'a Connection),
    Fail(StoreError),
}

/// A write that has run, waiting for its group's commit.
struct Ran {
    /// It succeeded: keep its changes.
    ok: bool,
    /// Sends its result back, given how the commit went.
    deliver: Box<dyn FnOnce(Result<(), StoreError>) + Send>,
}

type Job = Box<dyn FnOnce(Turn<'_>) -> Option<Ran> + Send>;

/// The sending side of the writer thread, owned by the `Db` handles.
pub struct Writer {
    conn: Arc<Mutex<Connection>>,
    bell: Option<Arc<Bell>>,
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread on `conn` (shared with `Db::call`, which takes the
    /// same mutex, so every write of the process is serialised).
    pub fn start(conn: Arc<Mutex<Connection>>, bell: Option<Arc<Bell>>) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let (thread_conn, thread_bell) = (conn.clone(), bell.clone());
        let thread = std::thread::Builder::new()
            .name("bridge-db-writer".into())
            .spawn(move || run(&thread_conn, &rx, thread_bell.as_deref()))
            .map_err(|e| tracing::error!(error = %e, "cannot start the database writer thread"))
            .ok();
        Self {
            conn,
            bell,
            jobs: thread.is_some().then_some(tx),
            thread,
        }
    }

    /// Queues `f`; its result arrives once its group has committed.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |turn| match turn {
            Turn::Fail(e) => {
                let _ = tx.send(Err(e));
                None
            }
            Turn::Run(conn) => {
                let out = std::panic::catch_unwind(AssertUnwindSafe(|| f(conn)))
                    .unwrap_or_else(|_| Err(StoreError::Join("a database write panicked".into())));
                Some(Ran {
                    ok: out.is_ok(),
                    deliver: Box::new(move |committed| {
                        let _ = tx.send(out.and_then(|v| committed.map(|()| v)));
                    }),
                })
            }
        });
        let stopped = || StoreError::Join("the database writer thread is not running".into());
        let Err(job) = self.try_here(job) else {
            return rx.await.map_err(|_| stopped())?;
        };
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// On a current-thread runtime, runs `job` on this thread when that
    /// cannot wait for a lock (see the module's documentation); gives it
    /// back otherwise.
    fn try_here(&self, job: Job) -> Result<(), Job> {
        let current_thread =
            Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::CurrentThread);
        if !current_thread {
            return Err(job);
        }
        let conn = match self.conn.try_lock() {
            Ok(c) => c,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(job),
        };
        if conn.busy_timeout(std::time::Duration::ZERO).is_err() {
            return Err(job);
        }
        let begun = exec(&conn, "BEGIN IMMEDIATE");
        if conn.busy_timeout(BUSY_TIMEOUT).is_err() || begun.is_err() {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            return Err(job);
        }
        ringing(&conn, self.bell.as_deref(), |c| {
            run_begun(c, std::iter::once(job))
        });
        Ok(())
    }
}

impl Drop for Writer {
    /// Closes the queue and waits for the thread to finish what it holds,
    /// so the connection is closed when the last `Db` handle is gone; unless
    /// the last handle dies on the writer thread itself (a write's closure
    /// held it), which cannot wait for itself.
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take()
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
    }
}

/// The thread's loop: waits for a write, takes every other one already
/// queued (up to [`MAX_GROUP`]), runs them as one group.
fn run(conn: &Mutex<Connection>, jobs: &mpsc::Receiver<Job>, bell: Option<&Bell>) {
    let mut group: Vec<Job> = Vec::with_capacity(MAX_GROUP);
    while let Ok(first) = jobs.recv() {
        group.push(first);
        while group.len() < MAX_GROUP
            && let Ok(next) = jobs.try_recv()
        {
            group.push(next);
        }
        // A panic in `Db::call` poisons the mutex but leaves the connection
        // usable: SQLite rolled back its transaction.
        let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
        ringing(&conn, bell, |c| run_group(c, &mut group));
    }
}

/// Runs `f` (which ends a transaction and says whether it committed) and
/// rings `bell` when that commit changed anything.
fn ringing(conn: &Connection, bell: Option<&Bell>, f: impl FnOnce(&Connection) -> bool) {
    let before = conn.total_changes();
    if f(conn)
        && conn.total_changes() != before
        && let Some(bell) = bell
    {
        bell.ring();
    }
}

/// Runs `group` in one transaction; returns whether it committed.
fn run_group(conn: &Connection, group: &mut Vec<Job>) -> bool {
    let jobs = group.drain(..);
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        fail_waiting(jobs, &e);
        return false;
    }
    run_begun(conn, jobs)
}

/// Runs `jobs` in the transaction just begun, and ends it; returns whether
/// it committed.
fn run_begun(conn: &Connection, mut jobs: impl ExactSizeIterator<Item = Job>) -> bool {
    let mut ran: Vec<Ran> = Vec::with_capacity(jobs.len());
    if jobs.len() == 1 {
        ran.extend(jobs.next().and_then(|job| job(Turn::Run(conn))));
        if !ran.iter().all(|r| r.ok) {
            let _ = exec(conn, "ROLLBACK");
            deliver(ran, || Ok(()));
            return false;
        }
    }
    while let Some(job) = jobs.next() {
        if let Err(e) = exec(conn, "SAVEPOINT w") {
            fail_waiting(std::iter::once(job).chain(jobs), &e);
            return fail_all(conn, ran, &e);
        }
        let Some(r) = job(Turn::Run(conn)) else {
            continue;
        };
        let end = if r.ok {
            exec(conn, "RELEASE w")
        } else {
            exec(conn, "ROLLBACK TO w").and_then(|()| exec(conn, "RELEASE w"))
        };
        ran.push(r);
        if let Err(e) = end {
            fail_waiting(jobs, &e);
            return fail_all(conn, ran, &e);
        }
    }
    match exec(conn, "COMMIT") {
        Ok(()) => {
            deliver(ran, || Ok(()));
            true
        }
        Err(e) => fail_all(conn, ran, &e),
    }
}

/// Runs one statement of the group's bracketing through the statement cache.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// Sends each write its result, given how its group ended.
fn deliver(ran: Vec<Ran>, outcome: impl Fn() -> Result<(), StoreError>) {
    for r in ran {
        (r.deliver)(outcome());
    }
}

/// Writes that never ran because their group could not go on.
fn fail_waiting(jobs: impl Iterator<Item = Job>, e: &rusqlite::Error) {
    for job in jobs {
        job(Turn::Fail(dup(e)));
    }
}

/// The group's transaction could not go on: rolls it back and fails every
/// write that ran in it (none of it was written).
fn fail_all(conn: &Connection, ran: Vec<Ran>, e: &rusqlite::Error) -> bool {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    deliver(ran, || Err(dup(e)));
    false
}

/// A copy of a SQLite error for each write of a failed group
/// (`rusqlite::Error` is not `Clone`).
fn dup(e: &rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(code, msg) => {
            StoreError::Sql(rusqlite::Error::SqliteFailure(*code, msg.clone()))
        }
        other => StoreError::Sql(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::store::{Db, StoreError, Sync};

    fn count(db: &Db, key: &str) -> i64 {
        db.call_blocking(|c| {
            c.query_row("SELECT count(*) FROM meta WHERE key = ?1", [key], |r| {
                r.get(0)
            })
        })
        .unwrap()
    }

    /// Writes queued while the connection is busy run as one group: the
    /// one that fails and the one that panics are rolled back alone and
    /// report their own error; every other commits and sees the ones
    /// before it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_does_not_fail_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("b.db"), Sync::Normal).unwrap();
        // Holds the connection so the writes below queue up behind it.
        let (held, release) = std::sync::mpsc::channel::<()>();
        let busy = {
            let db = db.clone();
            tokio::spawn(async move {
                db.call(move |_| {
                    let _ = release.recv_timeout(Duration::from_secs(5));
                    Ok(())
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut writes = Vec::new();
        for i in 0..10 {
            let db = db.clone();
            writes.push(tokio::spawn(async move {
                db.write(move |c| {
                    c.execute(
                        "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                        [format!("k{i}"), i.to_string()],
                    )?;
                    match i {
                        4 => Err(StoreError::Join("refused".into())),
                        6 => panic!("write {i} panics"),
                        _ => c
                            .query_row("SELECT count(*) FROM meta WHERE key LIKE 'k%'", [], |r| {
                                r.get::<_, i64>(0)
                            })
                            .map_err(Into::into),
                    }
                })
                .await
            }));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        held.send(()).unwrap();
        busy.await.unwrap().unwrap();
        let mut seen = Vec::new();
        for (i, w) in writes.into_iter().enumerate() {
            let out = w.await.unwrap();
            match i {
                4 => assert!(out.unwrap_err().to_string().contains("refused")),
                6 => assert!(out.unwrap_err().to_string().contains("panicked")),
                _ => seen.push(out.unwrap()),
            }
        }
        // Each saw its own row and every committed one before it.
        assert_eq!(seen, [1, 2, 3, 4, 5, 6, 7, 8]);
        for i in 0..10 {
            let want = i64::from(i != 4 && i != 6);
            assert_eq!(count(&db, &format!("k{i}")), want, "k{i}");
        }
    }

    /// A lone write that fails leaves nothing behind, and the next write
    /// starts a fresh transaction.
    #[tokio::test]
    async fn a_lone_failing_write_is_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("b.db"), Sync::Normal).unwrap();
        let err = db
            .write(|c| {
                c.execute("INSERT INTO meta (key, value) VALUES ('x', '1')", [])?;
                Err::<(), _>(StoreError::Join("no".into()))
            })
            .await;
        assert!(err.is_err());
        assert_eq!(count(&db, "x"), 0);
        db.write(|c| Ok(c.execute("INSERT INTO meta (key, value) VALUES ('y', '1')", [])?))
            .await
            .unwrap();
        assert_eq!(count(&db, "y"), 1);
        let read = db
            .read(|c| {
                Ok(
                    c.query_row("SELECT value FROM meta WHERE key = 'y'", [], |r| {
                        r.get::<_, String>(0)
                    })?,
                )
            })
            .await
            .unwrap();
        assert_eq!(read, "1");
        let refused = db.read(|c| Ok(c.execute("DELETE FROM meta", [])?)).await;
        assert!(refused.is_err(), "a read connection cannot write");
    }

    /// On a current-thread runtime a write runs on the runtime's thread
    /// when nothing holds the write lock: no hop to the writer thread.
    #[tokio::test(flavor = "current_thread")]
    async fn a_write_runs_in_place_on_a_current_thread_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("b.db"), Sync::Normal).unwrap();
        let here = std::thread::current().id();
        let ran_on = db
            .write(|c| {
                c.execute("INSERT INTO meta (key, value) VALUES ('x', '1')", [])?;
                Ok(std::thread::current().id())
            })
            .await
            .unwrap();
        assert_eq!(ran_on, here);
        assert_eq!(count(&db, "x"), 1);
    }

    /// While another process holds the write lock, a write on a
    /// current-thread runtime waits on the writer thread, not on the
    /// runtime's only thread: other tasks keep running, and the write
    /// lands once the lock is released.
    #[tokio::test(flavor = "current_thread")]
    async fn a_write_waiting_for_another_process_never_blocks_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db");
        let db = Db::open(&path, Sync::Normal).unwrap();
        let other = rusqlite::Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        };
        let write = {
            let db = db.clone();
            tokio::spawn(async move {
                db.write(|c| Ok(c.execute("INSERT INTO meta (key, value) VALUES ('y', '1')", [])?))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let seen = ticks.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            seen >= 10,
            "the runtime ran {seen} ticks in 300 ms while a write waited"
        );
        assert!(!write.is_finished(), "the write did not wait for the lock");
        other.execute_batch("COMMIT").unwrap();
        write.await.unwrap().unwrap();
        ticker.abort();
        assert_eq!(count(&db, "y"), 1);
    }
}
