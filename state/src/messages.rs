//! The message repository: the one place that writes `messages`, and the
//! names that may appear as a message's sender.
//!
//! Both processes write here: the bridge for agents' messages and system
//! notices, the runner for command results. Body and file list are
//! [`Redacted`], which only the redactor constructs, so nothing reaches the
//! table unredacted. The bridge's reads (an inbox, marking it read, the
//! doorbell dispatcher's look for new messages) are here too.

use rusqlite::{Connection, params};

use crate::clock::Millis;
use crate::redact::Redacted;
use crate::wake::Inbox;

/// Who wrote a message: the `sender` column, shown to agents as `from`.
/// The two agents are their session ids; the two processes sign their own
/// notices. The agent-facing schema (`Message::from` in the bridge) lists
/// exactly these, and a bridge test keeps the two in step.
pub mod sender {
    /// The session that created the conversation.
    pub const A: &str = "a";
    /// The session that joined it.
    pub const B: &str = "b";
    /// System notices from the bridge (YOLO enabled, disabled, expired, ...).
    pub const BRIDGE: &str = "bridge";
    /// Command results and job failures from the runner.
    pub const RUNNER: &str = "runner";
    /// Every name a message may carry as its sender.
    pub const ALL: [&str; 4] = [A, B, BRIDGE, RUNNER];
}

/// Stores one message for every session of the conversation except the
/// sender; returns the new ids in recipient order. Body and file list are
/// [`Redacted`]: nothing reaches `messages` without the redactor.
#[allow(clippy::too_many_arguments)]
pub fn insert_to_others(
    conn: &Connection,
    cid: &str,
    sender: &str,
    kind: &str,
    action_type: Option<&str>,
    body: &Redacted,
    files_json: &Redacted,
    redacted: bool,
    now: Millis,
) -> rusqlite::Result<Vec<i64>> {
    let recipients: Vec<String> = conn
        .prepare_cached(
            "SELECT session_id FROM sessions WHERE conversation_id = ?1 AND session_id != ?2 ORDER BY session_id",
        )?
        .query_map(params![cid, sender], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO messages (conversation_id, sender, recipient, kind, action_type, body, files, redacted, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let mut ids = Vec::with_capacity(recipients.len());
    for r in recipients {
        insert.execute(params![
            cid,
            sender,
            r,
            kind,
            action_type,
            body,
            files_json,
            redacted,
            now
        ])?;
        ids.push(conn.last_insert_rowid());
    }
    Ok(ids)
}

/// Stores one message for every session of the conversation (results and
/// system notices that both sides must see).
pub fn insert_to_all(
    conn: &Connection,
    cid: &str,
    sender: &str,
    kind: &str,
    body: &Redacted,
    now: Millis,
) -> rusqlite::Result<Vec<i64>> {
    insert_to_others(conn, cid, sender, kind, None, body, &no_files(), false, now)
}

/// The empty file list.
fn no_files() -> Redacted {
    Redacted::empty_list()
}

/// One stored message as its recipient reads it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub id: i64,
    pub sender: String,
    pub kind: String,
    pub body: String,
    pub action_type: Option<String>,
    /// The file list as stored: a JSON array.
    pub files_json: String,
    pub created_at: Millis,
    /// Not read yet.
    pub unread: bool,
}

/// Which of a recipient's messages to read.
#[derive(Debug, Clone, Copy)]
pub enum Selection {
    /// The unread ones.
    Unread,
    /// Every one after this id, read or not.
    After(i64),
}

/// Up to `limit` of `recipient`'s messages in `conversation_id`, oldest
/// first.
pub fn for_recipient(
    conn: &Connection,
    conversation_id: &str,
    recipient: &str,
    which: Selection,
    limit: usize,
) -> rusqlite::Result<Vec<Stored>> {
    let (sql, after) = match which {
        Selection::After(id) => (
            "SELECT id, sender, kind, body, action_type, files, created_at, read_at FROM messages
             WHERE conversation_id = ?1 AND recipient = ?2 AND id > ?3 ORDER BY id LIMIT ?4",
            id,
        ),
        Selection::Unread => (
            "SELECT id, sender, kind, body, action_type, files, created_at, read_at FROM messages
             WHERE conversation_id = ?1 AND recipient = ?2 AND read_at IS NULL AND id > ?3 ORDER BY id LIMIT ?4",
            0,
        ),
    };
    let mut stmt = conn.prepare_cached(sql)?;
    stmt.query_map(
        params![conversation_id, recipient, after, limit as i64],
        |r| {
            let read_at: Option<i64> = r.get(7)?;
            Ok(Stored {
                id: r.get(0)?,
                sender: r.get(1)?,
                kind: r.get(2)?,
                body: r.get(3)?,
                action_type: r.get(4)?,
                files_json: r.get(5)?,
                created_at: r.get(6)?,
                unread: read_at.is_none(),
            })
        },
    )?
    .collect()
}

/// Marks the messages `ids` read at `now` (those already read keep their
/// time).
pub fn mark_read(
    conn: &Connection,
    ids: impl IntoIterator<Item = i64>,
    now: Millis,
) -> rusqlite::Result<()> {
    let mut mark =
        conn.prepare_cached("UPDATE messages SET read_at = ?1 WHERE id = ?2 AND read_at IS NULL")?;
    for id in ids {
        mark.execute(params![now, id])?;
    }
    Ok(())
}

/// The newest message id (0 when there is none).
pub fn newest_id(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT coalesce(max(id), 0) FROM messages", [], |r| {
        r.get(0)
    })
}

/// The newest message id after `since` and the inboxes that got messages.
pub fn inboxes_since(conn: &Connection, since: i64) -> rusqlite::Result<(i64, Vec<Inbox>)> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, conversation_id, recipient FROM messages WHERE id > ?1 ORDER BY id",
    )?;
    let mut newest = since;
    let mut inboxes = Vec::new();
    let rows = stmt.query_map([since], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?)))?;
    for row in rows {
        let (id, conversation, recipient) = row?;
        newest = newest.max(id);
        inboxes.push((conversation, recipient));
    }
    inboxes.dedup();
    Ok((newest, inboxes))
}
