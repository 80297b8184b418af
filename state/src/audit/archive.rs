//! The chain's anchor and archiving: moving an old prefix of the audit
//! table to a JSON-lines file, batch by batch, while the chain continues
//! from an anchor that an `audit.archive` row inside it vouches for.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{Break, Entry, GENESIS, Outcome, append, link_break, read_row, verify};
use crate::clock::Millis;
use crate::redact::Redactor;

/// Where the chain starts: row 1 from [`GENESIS`], or, after an archive,
/// the row after the last archived one, from that row's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Anchor {
    pub first_id: i64,
    pub prev_hash: String,
}

impl Anchor {
    pub(super) fn genesis() -> Self {
        Self {
            first_id: 1,
            prev_hash: GENESIS.to_owned(),
        }
    }
}

const ANCHOR_KEY: &str = "audit_anchor";

pub fn anchor(conn: &Connection) -> rusqlite::Result<Anchor> {
    let stored: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [ANCHOR_KEY], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(stored
        .and_then(|v| {
            let (id, hash) = v.split_once(' ')?;
            Some(Anchor {
                first_id: id.parse().ok()?,
                prev_hash: hash.to_owned(),
            })
        })
        .unwrap_or_else(Anchor::genesis))
}

/// What `archive` moved out of the database.
#[derive(Debug, Clone, Serialize)]
pub struct Archived {
    pub rows: u64,
    /// The new start of the chain.
    pub anchor: Anchor,
}

/// Why `archive` stopped. Every batch is its own transaction: the batches
/// before the failing one are archived and committed, the failing one is
/// still in the database.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the archive batch size must be above zero (got {0})")]
    BatchSize(i64),
    #[error(
        "reading or updating the audit table failed: {0}; the unfinished batch is still in the database, re-run when it is writable"
    )]
    Database(#[from] rusqlite::Error),
    #[error(
        "writing the archive file failed: {0}; the unfinished batch is still in the database, free space or pick another --to file and re-run"
    )]
    Write(#[from] std::io::Error),
    #[error(
        "encoding an audit row for the archive file failed: {0}; the unfinished batch is still in the database"
    )]
    Encode(#[from] serde_json::Error),
    #[error(
        "the audit chain is broken at row {} ({}); archiving would move the evidence out of the database, so nothing more was archived. Keep a copy of the database file, look at the chain with `bridge audit verify` and `bridge audit`, and archive only once it verifies",
        .0.id, .0.reason
    )]
    Broken(Break),
}

/// Rows archived per write transaction (tens of ms each).
pub const ARCHIVE_BATCH: i64 = 1_000;

/// Moves every row up to the newest one older than `before` (never the head
/// row) to `out` as JSON lines, oldest first. Works in batches of `batch`
/// rows, each its own write transaction followed by a pause so a live server
/// gets the write lock in between: write and `sync` the batch, delete it,
/// move the anchor and append an `audit.archive` row vouching for the new
/// anchor. A crash loses no row: at worst the file and the database both
/// hold the last batch.
#[allow(clippy::too_many_arguments)]
pub fn archive(
    conn: &mut Connection,
    redactor: &Redactor,
    now: Millis,
    before: Millis,
    batch: i64,
    out: &mut dyn std::io::Write,
    sync: &dyn Fn() -> std::io::Result<()>,
    file_label: &str,
) -> Result<Archived, ArchiveError> {
    if batch <= 0 {
        return Err(ArchiveError::BatchSize(batch));
    }
    // Archiving moves rows out of reach of `verify`: a chain that does not
    // verify now would verify afterwards, its break gone with the rows.
    if let Some(b) = verify(conn)?.first_break {
        return Err(ArchiveError::Broken(b));
    }
    // Fixed up front: the batches' own archive rows are never archived now.
    let through: Option<i64> = conn.query_row(
        "SELECT max(id) FROM audit WHERE ts < ?1 AND id < (SELECT max(id) FROM audit)",
        [before],
        |r| r.get(0),
    )?;
    let mut archived = Archived {
        rows: 0,
        anchor: anchor(conn)?,
    };
    let Some(through) = through else {
        return Ok(archived);
    };
    let mut batch_started = std::time::Instant::now();
    while archived.anchor.first_id <= through {
        if archived.rows > 0 {
            crate::store::yield_write_lock(batch_started);
        }
        batch_started = std::time::Instant::now();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let start = anchor(&tx)?;
        let upto = through.min(start.first_id + batch - 1);
        let mut rows = 0u64;
        let mut last_hash = start.prev_hash.clone();
        {
            let mut stmt = tx.prepare_cached(
                "SELECT id, ts, conversation_id, session_id, action, outcome, detail, prev_hash, hash
                 FROM audit WHERE id <= ?1 ORDER BY id",
            )?;
            let mut q = stmt.query([upto])?;
            while let Some(r) = q.next()? {
                let row = read_row(r)?;
                // Each batch is checked again as it is written: the chain
                // was whole when archiving began.
                if let Some(reason) = link_break(&row, start.first_id + rows as i64, &last_hash) {
                    return Err(ArchiveError::Broken(Break { id: row.id, reason }));
                }
                serde_json::to_writer(&mut *out, &row)?;
                out.write_all(b"\n")?;
                last_hash = row.hash;
                rows += 1;
            }
        }
        out.flush()?;
        sync()?;
        tx.execute("DELETE FROM audit WHERE id <= ?1", [upto])?;
        let new_anchor = Anchor {
            first_id: upto + 1,
            prev_hash: last_hash,
        };
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![
                ANCHOR_KEY,
                format!("{} {}", new_anchor.first_id, new_anchor.prev_hash)
            ],
        )?;
        append(
            &tx,
            redactor,
            now,
            Entry {
                conversation_id: None,
                session_id: None,
                action: ARCHIVE_ACTION,
                outcome: Outcome::Ok,
                detail: serde_json::json!({
                    "rows": rows,
                    "first_id": new_anchor.first_id,
                    "prev_hash": new_anchor.prev_hash,
                    "file": file_label,
                }),
            },
        )?;
        tx.commit()?;
        archived.rows += rows;
        archived.anchor = new_anchor;
    }
    Ok(archived)
}

pub(super) const ARCHIVE_ACTION: &str = "audit.archive";
