//! [`Db`], the handle async code and the CLI reach the database through:
//! the write connection, its writer thread, and the read connections.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rusqlite::Connection;

use super::{StoreError, Sync, checkpoint, open, readers, writer};

/// A cheap-to-clone handle to the database: the write connection (with
/// its writer thread) and the read connections.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
    /// Rung after every call that committed a change.
    bell: Option<Arc<crate::wake::Bell>>,
    /// Started by the first [`Db::write`]: CLI commands never need it.
    writer: Arc<OnceLock<writer::Writer>>,
    readers: Arc<readers::Readers>,
}

/// Runs `f` on the connection; rings `bell` when it committed a change.
fn run_and_ring<T, E>(
    conn: &mut Connection,
    bell: Option<&crate::wake::Bell>,
    f: impl FnOnce(&mut Connection) -> Result<T, E>,
) -> Result<T, E> {
    let before = conn.total_changes();
    let out = f(conn);
    if let Some(bell) = bell
        && conn.total_changes() != before
        && conn.is_autocommit()
    {
        bell.ring();
    }
    out
}

impl Db {
    /// Opens the database; its WAL is checkpointed by a thread of its own
    /// (`checkpoint.rs`), never inside a commit.
    pub fn open(path: &Path, sync: Sync) -> Result<Self, StoreError> {
        let mut conn = open(path, sync)?;
        checkpoint::install(&mut conn, path)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: Arc::new(path.to_path_buf()),
            bell: crate::wake::Bell::open(path).map(Arc::new),
            writer: Arc::default(),
            readers: Arc::new(readers::Readers::new(path)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs blocking database work off the async threads, alone on the
    /// write connection; `f` manages its own transaction.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (conn, bell) = (self.conn.clone(), self.bell.clone());
        tokio::task::spawn_blocking(move || {
            // A panic in another closure poisons the mutex but leaves the
            // connection usable: SQLite rolled back any open transaction.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            run_and_ring(&mut guard, bell.as_deref(), f)
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// Runs `f` inside a write transaction (`BEGIN IMMEDIATE`) that the
    /// writer thread may share with other writes queued at the same time
    /// (group commit, see `writer.rs`). `f` must not begin or end
    /// transactions itself: its `Ok` keeps its changes, its `Err` rolls
    /// them back. Returns once the transaction has committed.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer
            .get_or_init(|| writer::Writer::start(self.conn.clone(), self.bell.clone()))
            .write(f)
            .await
    }

    /// Runs `f` on a read-only connection of its own: it never waits for
    /// a write. `f` sees what had committed when it started.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.readers.read(f).await
    }

    /// Runs blocking database work on the current thread (CLI use).
    pub fn call_blocking<T, E>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        run_and_ring(&mut guard, self.bell.as_deref(), f)
    }
}
