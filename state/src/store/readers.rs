//! Read-only connections for [`Db::read`](super::Db::read), so a read (an
//! empty `check_messages`, the long poll's doorbell query, a token check)
//! never waits for the write connection, nor for the write lock that another
//! process holds. WAL mode gives each read a consistent snapshot of what had
//! committed when it started.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use super::StoreError;

/// Reads in flight at once; more wait for a connection. Two cores' worth
/// and a little: reads are short, and each connection holds a page cache.
const READERS: usize = 4;

pub struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl Readers {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::with_capacity(READERS)),
            permits: Semaphore::new(READERS),
        }
    }

    /// Runs `f` on an idle read connection (opening one if none is idle).
    pub async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| StoreError::Join(e.to_string()))?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let taken = this.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match taken {
                Some(c) => c,
                None => open_reader(&this.path)?,
            };
            let out = f(&conn);
            // A connection left inside a transaction (a panic cannot reach
            // here; an error can) is dropped rather than reused.
            if conn.is_autocommit() {
                this.idle
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }
}

/// A connection that can only read: `query_only` refuses every write, so a
/// read path that grew a write by mistake fails loudly instead of writing
/// outside the writer's serialised, audited transactions.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.into(),
        source,
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_err)?;
    conn.busy_timeout(super::BUSY_TIMEOUT).map_err(open_err)?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(open_err)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(open_err)?;
    Ok(conn)
}
