//! The SQLite database: opening it safely, the versioned schema, and the one
//! way async code reaches it.
//!
//! WAL mode lets readers proceed while one writer commits, and lets several
//! processes (one `bridge serve` per stdio client, plus the runner) share one
//! file. `synchronous=NORMAL` in WAL mode makes a commit durable against a
//! crash of the process (`kill -9`) the moment it returns, which is the
//! guarantee an acknowledged send needs; surviving power loss too costs an
//! fsync per commit and is available with `--sync full`.
//!
//! rusqlite's `Connection` is `Send` but not `Sync`, and SQLite calls block,
//! so async code never touches it directly. A process has one write
//! connection: [`Db::write`] queues a closure for the writer thread, which
//! runs the writes waiting together in one transaction (`writer.rs`; on a
//! current-thread runtime a write that would not wait for a lock runs in
//! place instead), and
//! [`Db::call`] runs a closure that manages its own transaction on tokio's
//! blocking pool. Both hold the connection's mutex while they run (a std
//! one, never held across an `.await`). [`Db::read`] runs on one of a few
//! read-only connections (`readers.rs`), so reads never queue behind writes.
//! WAL checkpoints run on a thread of their own (`checkpoint.rs`), so no
//! commit pays for copying the WAL back into the database.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

mod checkpoint;
mod db;
mod readers;
mod writer;

/// How long a connection waits for another process's write lock before
/// failing with `SQLITE_BUSY`.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub use db::Db;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {path}: {source}; check the path and its permissions")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create database directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create database file {path}: {source}; check the directory's permissions")]
    CreateFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "database {path} has schema version {found}, newer than this binary understands ({latest}); upgrade the bridge"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        latest: i64,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database task failed: {0}")]
    Join(String),
    #[error(transparent)]
    Permissions(#[from] crate::fileperm::PermError),
}

/// Durability of each commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Sync {
    /// Durable against process crashes (kill -9); the default.
    #[default]
    Normal,
    /// Also durable against power loss: one fsync per commit.
    Full,
}

/// Schema migrations, applied in order; `PRAGMA user_version` records how
/// many have run. Never edit a released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: conversations, sessions (not hard-wired to two parties), messages, audit.
    r#"
    CREATE TABLE conversations (
        id          TEXT PRIMARY KEY,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL
    );
    CREATE TABLE sessions (
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        session_id      TEXT NOT NULL,
        role            TEXT NOT NULL,
        token_hash      BLOB NOT NULL,
        status          TEXT,
        last_heartbeat  INTEGER,
        PRIMARY KEY (conversation_id, session_id)
    ) WITHOUT ROWID;
    CREATE TABLE messages (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        sender          TEXT NOT NULL,
        recipient       TEXT NOT NULL,
        kind            TEXT NOT NULL,
        action_type     TEXT,
        body            TEXT NOT NULL,
        files           TEXT NOT NULL DEFAULT '[]',
        redacted        INTEGER NOT NULL,
        created_at      INTEGER NOT NULL,
        read_at         INTEGER
    );
    CREATE INDEX messages_inbox ON messages (conversation_id, recipient, id);
    CREATE INDEX messages_unread ON messages (conversation_id, recipient, id) WHERE read_at IS NULL;
    CREATE INDEX messages_outbox ON messages (conversation_id, sender, created_at);
    CREATE TABLE audit (
        id              INTEGER PRIMARY KEY,
        ts              INTEGER NOT NULL,
        conversation_id TEXT,
        session_id      TEXT,
        action          TEXT NOT NULL,
        outcome         TEXT NOT NULL,
        detail          TEXT NOT NULL,
        prev_hash       TEXT NOT NULL,
        hash            TEXT NOT NULL
    );
    CREATE INDEX audit_conversation ON audit (conversation_id, id);
    -- One row per rate-limited action, pruned past the longest window.
    CREATE TABLE quota_events (
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        session_id      TEXT NOT NULL,
        kind            TEXT NOT NULL,
        at              INTEGER NOT NULL
    );
    CREATE INDEX quota_events_by_session ON quota_events (conversation_id, session_id, kind, at);
    CREATE INDEX conversations_expiry ON conversations (expires_at);
    "#,
    // 2: YOLO: operator enablements, proposals (which are also the jobs),
    // single-use approval tokens, and runner heartbeats.
    r#"
    CREATE TABLE yolo_enablements (
        conversation_id TEXT PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
        settings        TEXT NOT NULL,
        enabled_at      INTEGER NOT NULL,
        expires_at      INTEGER NOT NULL,
        disabled_at     INTEGER
    );
    CREATE TABLE proposals (
        id              TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        session_id      TEXT NOT NULL,
        command         TEXT NOT NULL,
        reason          TEXT,
        params          TEXT NOT NULL,
        hash            TEXT NOT NULL,
        state           TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        runner_id       TEXT,
        lease_until     INTEGER,
        container_id    TEXT,
        result          TEXT,
        failure         TEXT
    );
    CREATE INDEX proposals_by_state ON proposals (state, updated_at);
    CREATE INDEX proposals_by_conversation ON proposals (conversation_id, created_at);
    CREATE TABLE approvals (
        token_hash      BLOB PRIMARY KEY,
        proposal_id     TEXT NOT NULL REFERENCES proposals(id) ON DELETE CASCADE,
        proposal_hash   TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        expires_at      INTEGER NOT NULL,
        used_at         INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX approvals_by_proposal ON approvals (proposal_id);
    CREATE TABLE runners (
        id              TEXT PRIMARY KEY,
        pid             INTEGER NOT NULL,
        started_at      INTEGER NOT NULL,
        heartbeat_at    INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 3: a random identity for this database, so runners of different
    // databases sharing one Docker engine never touch each other's containers.
    r#"
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    INSERT INTO meta (key, value) VALUES ('db_id', lower(hex(randomblob(8))));
    "#,
    // 4: teams. A message is stored once, whoever it goes to, with one
    // `inbox` row per recipient (a broadcast to 15 costs one body, not 15);
    // `recipients` is its address list (JSON), shown to agents as `to`.
    // A retried send finds its first copy by a keyed hash of its idempotency
    // key (never the key itself), and `content_hash` tells a retry from a
    // different message reusing the key. Today's one-row-per-recipient
    // messages keep their ids. `notified_up_to` is `bridge inbox`'s cursor.
    r#"
    CREATE TABLE messages_v4 (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        sender          TEXT NOT NULL,
        recipients      TEXT NOT NULL,
        kind            TEXT NOT NULL,
        action_type     TEXT,
        body            TEXT NOT NULL,
        files           TEXT NOT NULL DEFAULT '[]',
        redacted        INTEGER NOT NULL,
        created_at      INTEGER NOT NULL,
        idempotency_key BLOB,
        content_hash    BLOB
    );
    INSERT INTO messages_v4 (id, conversation_id, sender, recipients, kind, action_type, body, files, redacted, created_at)
        SELECT id, conversation_id, sender, json_array(recipient), kind, action_type, body, files, redacted, created_at
        FROM messages ORDER BY id;
    CREATE TABLE inbox_v4 AS SELECT conversation_id, recipient, id AS message_id, read_at FROM messages;
    CREATE TABLE seq_v4 AS SELECT seq FROM sqlite_sequence WHERE name = 'messages';
    DROP TABLE messages;
    ALTER TABLE messages_v4 RENAME TO messages;
    -- Ids are never reused, even those of messages cleanup deleted.
    UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT seq FROM seq_v4), 0)) WHERE name = 'messages';
    INSERT INTO sqlite_sequence (name, seq) SELECT 'messages', seq FROM seq_v4
        WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'messages');
    DROP TABLE seq_v4;
    CREATE INDEX messages_outbox ON messages (conversation_id, sender, created_at);
    CREATE UNIQUE INDEX messages_idempotency ON messages (conversation_id, sender, idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    CREATE TABLE inbox (
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        recipient       TEXT NOT NULL,
        message_id      INTEGER NOT NULL,
        read_at         INTEGER,
        PRIMARY KEY (conversation_id, recipient, message_id)
    ) WITHOUT ROWID;
    INSERT INTO inbox (conversation_id, recipient, message_id, read_at)
        SELECT conversation_id, recipient, message_id, read_at FROM inbox_v4;
    DROP TABLE inbox_v4;
    CREATE INDEX inbox_unread ON inbox (conversation_id, recipient, message_id) WHERE read_at IS NULL;
    ALTER TABLE sessions ADD COLUMN notified_up_to INTEGER NOT NULL DEFAULT 0;
    "#,
    // 5: the operator's "always approve exactly this command in this
    // conversation while YOLO stays enabled" rules (the console's `A`).
    r#"
    CREATE TABLE approval_rules (
        id              TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        proposal_hash   TEXT NOT NULL,
        command         TEXT NOT NULL,
        approver        TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        expires_at      INTEGER NOT NULL,
        revoked_at      INTEGER,
        uses            INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX approval_rules_live ON approval_rules (conversation_id, proposal_hash)
        WHERE revoked_at IS NULL;
    "#,
    // 6: each runner's Docker engines and whether they answer, for
    // `bridge health`, `bridge list` and the console (the bridge never asks
    // an engine itself).
    r#"
    CREATE TABLE engines (
        runner_id       TEXT NOT NULL REFERENCES runners(id) ON DELETE CASCADE,
        name            TEXT NOT NULL,
        endpoint        TEXT NOT NULL,
        local           INTEGER NOT NULL,
        up              INTEGER NOT NULL,
        since           INTEGER NOT NULL,
        error           TEXT,
        next_retry_at   INTEGER,
        running         INTEGER NOT NULL,
        max_parallel    INTEGER NOT NULL,
        warm            INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        PRIMARY KEY (runner_id, name)
    ) WITHOUT ROWID;
    "#,
];

/// This database's random identity (see migration 3).
pub fn db_id(conn: &Connection) -> rusqlite::Result<String> {
    conn.query_row("SELECT value FROM meta WHERE key = 'db_id'", [], |r| {
        r.get(0)
    })
}

/// Answers when the database does: the `/health` probe of `bridge serve`.
pub fn ping(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?;
    Ok(())
}

pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Brings the schema up to date inside one transaction per step.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<i64> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
        // Another process may have migrated while we waited for the lock.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now > i as i64 {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Creates the database file owner-only (0600) if it does not exist yet.
/// SQLite gives the `-wal` and `-shm` files the database file's mode, so
/// messages, audit rows and token hashes are never readable by other local
/// users. An existing file that others can write, or that another user
/// owns, is refused (`fileperm`); one that others can only read is
/// reported, not changed.
fn create_private(path: &Path) -> Result<(), StoreError> {
    use crate::fileperm::{Kind, check_file};
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        check_file(Path::new(&name), Kind::Database)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if let Ok(meta) = std::fs::metadata(path)
                && meta.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(
                    db = %path.display(),
                    mode = format!("{:o}", meta.permissions().mode() & 0o777),
                    "the database file is readable by other users; run `chmod 600` on it and its -wal/-shm files"
                );
            }
            Ok(())
        }
        Err(source) => Err(StoreError::CreateFile {
            path: path.into(),
            source,
        }),
    }
}

/// Between the batches of a long maintenance job (cleanup, audit archive):
/// sleeps as long as the batch held the write lock (at least 5 ms), so the
/// servers sharing the file get it at least half the time.
pub fn yield_write_lock(batch_started: std::time::Instant) {
    std::thread::sleep(batch_started.elapsed().max(Duration::from_millis(5)));
}

/// Opens (creating if needed) and migrates a database file.
pub fn open(path: &Path, sync: Sync) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.into(),
            source,
        })?;
    }
    create_private(path)?;
    let open_err = |source| StoreError::Open {
        path: path.into(),
        source,
    };
    let mut conn = Connection::open(path).map_err(open_err)?;
    // Several processes share the file; wait for a writer instead of failing.
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(open_err)?;
    conn.pragma_update(
        None,
        "synchronous",
        match sync {
            Sync::Normal => "NORMAL",
            Sync::Full => "FULL",
        },
    )
    .map_err(open_err)?;
    // Keep cached statements' plans: without the query-planner stability
    // guarantee, SQLite re-prepares `col = ?` / `LIMIT ?` statements whenever
    // rusqlite clears their bindings, i.e. on every call.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(open_err)?;
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(open_err)?;
    if found > latest_version() {
        return Err(StoreError::TooNew {
            path: path.into(),
            found,
            latest: latest_version(),
        });
    }
    migrate(&mut conn)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_and_its_wal_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db");
        let conn = open(&path, Sync::Normal).unwrap();
        conn.execute("INSERT INTO meta (key, value) VALUES ('t', 'x')", [])
            .unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let file = dir.path().join(format!("b.db{suffix}"));
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", file.display());
        }
    }

    fn rung(db: &Path) -> Option<u64> {
        let bytes = std::fs::read(crate::wake::bell_path(db)).ok()?;
        Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
    }

    #[test]
    fn the_doorbell_rings_after_a_commit_and_never_before_or_for_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db");
        let db = Db::open(&path, Sync::Normal).unwrap();
        assert_eq!(rung(&path), None, "nothing committed yet");
        let bell = crate::wake::bell_path(&path);
        db.call_blocking(|c| {
            let tx = c.transaction()?;
            tx.execute("INSERT INTO meta (key, value) VALUES ('a', 'x')", [])?;
            tx.commit()?;
            // Committed, but the closure has not returned: not yet.
            assert_eq!(rung(&path), None);
            Ok::<_, rusqlite::Error>(())
        })
        .unwrap();
        assert_eq!(rung(&path), Some(1), "rung once the commit returned");
        db.call_blocking(|c| c.query_row("SELECT count(*) FROM meta", [], |r| r.get::<_, i64>(0)))
            .unwrap();
        assert_eq!(rung(&path), Some(1), "a read does not ring");
        // A write whose transaction is still open when the call returns
        // (rolled back later) does not ring.
        db.call_blocking(|c| {
            c.execute_batch("BEGIN; INSERT INTO meta (key, value) VALUES ('b', 'y');")
        })
        .unwrap();
        assert_eq!(rung(&path), Some(1));
        db.call_blocking(|c| c.execute_batch("ROLLBACK")).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&bell).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn the_doorbell_is_never_opened_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db");
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"keep").unwrap();
        std::os::unix::fs::symlink(&target, crate::wake::bell_path(&path)).unwrap();
        let db = Db::open(&path, Sync::Normal).unwrap();
        db.call_blocking(|c| c.execute("INSERT INTO meta (key, value) VALUES ('a', 'x')", []))
            .unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    }

    #[test]
    fn migrations_apply_once_and_set_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/b.db");
        let conn = open(&path, Sync::Normal).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(conn);
        let mut conn = open(&path, Sync::Normal).unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), latest_version());
    }

    #[test]
    fn newer_schema_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db");
        let conn = open(&path, Sync::Normal).unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
        drop(conn);
        let err = open(&path, Sync::Normal).err().unwrap();
        assert!(err.to_string().contains("upgrade the bridge"), "{err}");
    }

    /// Migration 4 turns one row per recipient into one message with inbox
    /// entries: ids, read times and bodies survive, and ids are never
    /// reused, even past messages that were deleted before it ran.
    #[test]
    fn migration_4_keeps_every_message_its_id_and_read_state() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute_batch(
            "INSERT INTO conversations (id, created_at, expires_at) VALUES ('conv_1', 0, 99);
             INSERT INTO sessions (conversation_id, session_id, role, token_hash) VALUES ('conv_1', 'a', 'r1', x'00'), ('conv_1', 'b', 'r2', x'00');
             INSERT INTO messages (conversation_id, sender, recipient, kind, body, redacted, created_at, read_at)
               VALUES ('conv_1', 'a', 'b', 'message', 'one', 0, 1, 5),
                      ('conv_1', 'b', 'a', 'message', 'two', 0, 2, NULL),
                      ('conv_1', 'runner', 'a', 'command_result', 'three', 0, 3, NULL),
                      ('conv_1', 'runner', 'b', 'command_result', 'three', 0, 3, 7),
                      ('conv_1', 'a', 'b', 'message', 'deleted', 0, 4, NULL);
             DELETE FROM messages WHERE body = 'deleted';",
        )
        .unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), latest_version());
        let rows: Vec<(i64, String, String, String)> = conn
            .prepare("SELECT id, sender, recipients, body FROM messages ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let want = [
            (1, "a", r#"["b"]"#, "one"),
            (2, "b", r#"["a"]"#, "two"),
            (3, "runner", r#"["a"]"#, "three"),
            (4, "runner", r#"["b"]"#, "three"),
        ];
        assert_eq!(rows.len(), want.len(), "{rows:?}");
        for (got, want) in rows.iter().zip(want) {
            assert_eq!(
                (got.0, got.1.as_str(), got.2.as_str(), got.3.as_str()),
                want
            );
        }
        let inbox: Vec<(String, i64, Option<i64>)> = conn
            .prepare("SELECT recipient, message_id, read_at FROM inbox ORDER BY message_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            inbox,
            [
                ("b".to_owned(), 1, Some(5)),
                ("a".to_owned(), 2, None),
                ("a".to_owned(), 3, None),
                ("b".to_owned(), 4, Some(7)),
            ]
        );
        // The deleted message's id 5 is not handed out again.
        let red = crate::redact::Redactor::builtin();
        let id = crate::messages::insert_to_all(
            &conn,
            "conv_1",
            "bridge",
            "system",
            &red.redacted("new"),
            9,
        )
        .unwrap();
        assert_eq!(id, 6);
    }
}
