//! The message repository: the one place that writes `messages`, and the
//! names that may appear as a message's sender.
//!
//! Both processes write here: the bridge for agents' messages and system
//! notices, the runner for command results. Body and file list are
//! [`Redacted`], which only the redactor constructs, so nothing reaches the
//! table unredacted. The bridge's reads (an inbox, marking it read, the
//! doorbell dispatcher's look for new messages) are here too.
//!
//! A message is stored once; each recipient has an `inbox` entry holding
//! its own read time, so a broadcast to a team costs one body.

use rusqlite::{Connection, params};

use crate::clock::Millis;
use crate::redact::Redacted;
use crate::wake::Inbox;

/// Who wrote a message: the `sender` column, shown to agents as `from`.
/// Agents are their session ids; the two processes sign their own notices.
/// The agent-facing schema (`Message::from` in the bridge) names these,
/// and a bridge test keeps the two in step.
pub mod sender {
    /// The session that created the conversation.
    pub const A: &str = "a";
    /// The session that joined it (in a pair, the partner).
    pub const B: &str = "b";
    /// Every participant's session id, in order of creation and
    /// invitation: a conversation has at most 16 participants.
    pub const SESSIONS: [&str; 16] = [
        "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p",
    ];
    /// System notices from the bridge (YOLO enabled, disabled, expired, ...).
    pub const BRIDGE: &str = "bridge";
    /// Command results and job failures from the runner.
    pub const RUNNER: &str = "runner";
    /// The senders that are processes, not participants.
    pub const PROCESSES: [&str; 2] = [BRIDGE, RUNNER];

    /// Whether `s` is a participant's session id (`"a"` to `"p"`).
    pub fn is_session(s: &str) -> bool {
        SESSIONS.contains(&s)
    }
}

/// What a send stores besides its text: who it is from, what kind, and,
/// for a retried send, the keyed hashes of its idempotency key and content.
#[derive(Debug, Clone, Copy)]
pub struct NewMessage<'a> {
    pub sender: &'a str,
    pub kind: &'a str,
    pub action_type: Option<&'a str>,
    pub body: &'a Redacted,
    pub files_json: &'a Redacted,
    /// Secrets were found and replaced.
    pub redacted: bool,
    /// Keyed hashes (never the key or the text): `(key, content)`.
    pub idempotency: Option<(&'a [u8], &'a [u8])>,
}

/// Stores one message once, with one inbox entry per recipient: the cost
/// of a broadcast does not grow with its audience beyond the entries.
/// Body and file list are [`Redacted`]: nothing reaches `messages` without
/// the redactor. Returns the message id.
pub fn insert(
    conn: &Connection,
    cid: &str,
    m: &NewMessage<'_>,
    recipients: &[String],
    now: Millis,
) -> rusqlite::Result<i64> {
    let to = serde_json::to_string(recipients).expect("a list of strings serializes");
    let (key, content) = m.idempotency.unzip();
    conn.prepare_cached(
        "INSERT INTO messages (conversation_id, sender, recipients, kind, action_type, body, files, redacted, created_at, idempotency_key, content_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        cid,
        m.sender,
        to,
        m.kind,
        m.action_type,
        m.body,
        m.files_json,
        m.redacted,
        now,
        key,
        content
    ])?;
    let id = conn.last_insert_rowid();
    let mut entry = conn.prepare_cached(
        "INSERT INTO inbox (conversation_id, recipient, message_id) VALUES (?1, ?2, ?3)",
    )?;
    for r in recipients {
        entry.execute(params![cid, r, id])?;
    }
    Ok(id)
}

/// Every participant of the conversation except `except`, in session order.
pub fn others(conn: &Connection, cid: &str, except: &str) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached(
        "SELECT session_id FROM sessions WHERE conversation_id = ?1 AND session_id != ?2 ORDER BY session_id",
    )?
    .query_map(params![cid, except], |r| r.get(0))?
    .collect()
}

/// Stores one message for every participant except the sender; returns
/// its id.
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
) -> rusqlite::Result<i64> {
    let recipients = others(conn, cid, sender)?;
    let m = NewMessage {
        sender,
        kind,
        action_type,
        body,
        files_json,
        redacted,
        idempotency: None,
    };
    insert(conn, cid, &m, &recipients, now)
}

/// Stores one message for every participant (results and system notices
/// that everyone must see).
pub fn insert_to_all(
    conn: &Connection,
    cid: &str,
    sender: &str,
    kind: &str,
    body: &Redacted,
    now: Millis,
) -> rusqlite::Result<i64> {
    insert_to_others(conn, cid, sender, kind, None, body, &no_files(), false, now)
}

/// The empty file list.
fn no_files() -> Redacted {
    Redacted::empty_list()
}

/// An earlier send by `sender` with the same idempotency key.
#[derive(Debug, Clone)]
pub struct Earlier {
    pub id: i64,
    /// The keyed hash of its content.
    pub content_hash: Vec<u8>,
    pub to: Vec<String>,
    /// Secrets were found and replaced in it.
    pub redacted: bool,
}

/// Finds `sender`'s earlier message with this (hashed) idempotency key.
pub fn by_idempotency_key(
    conn: &Connection,
    cid: &str,
    sender: &str,
    key_hash: &[u8],
) -> rusqlite::Result<Option<Earlier>> {
    use rusqlite::OptionalExtension;
    conn.prepare_cached(
        "SELECT id, content_hash, recipients, redacted FROM messages
         WHERE conversation_id = ?1 AND sender = ?2 AND idempotency_key = ?3",
    )?
    .query_row(params![cid, sender, key_hash], |r| {
        let to: String = r.get(2)?;
        Ok(Earlier {
            id: r.get(0)?,
            content_hash: r.get::<_, Option<Vec<u8>>>(1)?.unwrap_or_default(),
            to: serde_json::from_str(&to).unwrap_or_default(),
            redacted: r.get(3)?,
        })
    })
    .optional()
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
    /// Whom it was addressed to (session ids).
    pub to: Vec<String>,
    /// Not read yet by this recipient.
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
            "SELECT m.id, m.sender, m.kind, m.body, m.action_type, m.files, m.created_at, i.read_at, m.recipients
             FROM inbox i JOIN messages m ON m.id = i.message_id
             WHERE i.conversation_id = ?1 AND i.recipient = ?2 AND i.message_id > ?3 ORDER BY i.message_id LIMIT ?4",
            id,
        ),
        // INDEXED BY: left alone, the planner walks the inbox's primary key
        // through every read message of the conversation (the history),
        // not the partial index of unread ones (bench_growth: 2.1x).
        Selection::Unread => (
            "SELECT m.id, m.sender, m.kind, m.body, m.action_type, m.files, m.created_at, i.read_at, m.recipients
             FROM inbox i INDEXED BY inbox_unread JOIN messages m ON m.id = i.message_id
             WHERE i.conversation_id = ?1 AND i.recipient = ?2 AND i.read_at IS NULL AND i.message_id > ?3
             ORDER BY i.message_id LIMIT ?4",
            0,
        ),
    };
    let mut stmt = conn.prepare_cached(sql)?;
    stmt.query_map(
        params![conversation_id, recipient, after, limit as i64],
        |r| {
            let read_at: Option<i64> = r.get(7)?;
            let to: String = r.get(8)?;
            Ok(Stored {
                id: r.get(0)?,
                sender: r.get(1)?,
                kind: r.get(2)?,
                body: r.get(3)?,
                action_type: r.get(4)?,
                files_json: r.get(5)?,
                created_at: r.get(6)?,
                to: serde_json::from_str(&to).unwrap_or_default(),
                unread: read_at.is_none(),
            })
        },
    )?
    .collect()
}

/// Marks `recipient`'s entries for the messages `ids` read at `now` (those
/// already read keep their time).
pub fn mark_read(
    conn: &Connection,
    conversation_id: &str,
    recipient: &str,
    ids: impl IntoIterator<Item = i64>,
    now: Millis,
) -> rusqlite::Result<()> {
    let mut mark = conn.prepare_cached(
        "UPDATE inbox SET read_at = ?1
         WHERE conversation_id = ?2 AND recipient = ?3 AND message_id = ?4 AND read_at IS NULL",
    )?;
    for id in ids {
        mark.execute(params![now, conversation_id, recipient, id])?;
    }
    Ok(())
}

/// Marks every unread message of `recipient`'s up to `up_to_id` read (the
/// ack after a peek); returns how many it marked.
pub fn ack(
    conn: &Connection,
    conversation_id: &str,
    recipient: &str,
    up_to_id: i64,
    now: Millis,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE inbox INDEXED BY inbox_unread SET read_at = ?1
         WHERE conversation_id = ?2 AND recipient = ?3 AND message_id <= ?4 AND read_at IS NULL",
    )?
    .execute(params![now, conversation_id, recipient, up_to_id])
}

/// One message `bridge inbox` tells a participant about: who sent it and
/// what kind, never its text (reading it is the agent's act).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Notice {
    pub id: i64,
    pub from: String,
    pub kind: String,
    pub action_type: Option<String>,
    pub created_at: Millis,
}

/// `recipient`'s unread messages that `bridge inbox` has not told it about
/// yet (ids above its `notified_up_to` cursor), oldest first, and moves the
/// cursor past them. Marks nothing read. A call that tells something
/// appends one `inbox.notify` audit row; one that tells nothing writes
/// nothing, so a hook run on every prompt cannot fill the log. Both the
/// local `bridge inbox` and the `inbox_notify` tool (`bridge inbox --url`)
/// call this, inside their own write transaction (`conn`).
pub fn notify_unread(
    conn: &Connection,
    red: &crate::redact::Redactor,
    now: Millis,
    conversation_id: &str,
    recipient: &str,
    limit: usize,
) -> rusqlite::Result<Vec<Notice>> {
    use crate::audit::{self, Entry, Outcome};
    let notified: i64 = conn
        .prepare_cached(
            "SELECT notified_up_to FROM sessions WHERE conversation_id = ?1 AND session_id = ?2",
        )?
        .query_row(params![conversation_id, recipient], |r| r.get(0))?;
    let notices: Vec<Notice> = conn
        .prepare_cached(
            "SELECT m.id, m.sender, m.kind, m.action_type, m.created_at
             FROM inbox i INDEXED BY inbox_unread JOIN messages m ON m.id = i.message_id
             WHERE i.conversation_id = ?1 AND i.recipient = ?2 AND i.read_at IS NULL AND i.message_id > ?3
             ORDER BY i.message_id LIMIT ?4",
        )?
        .query_map(
            params![conversation_id, recipient, notified, limit as i64],
            |r| {
                Ok(Notice {
                    id: r.get(0)?,
                    from: r.get(1)?,
                    kind: r.get(2)?,
                    action_type: r.get(3)?,
                    created_at: r.get(4)?,
                })
            },
        )?
        .collect::<rusqlite::Result<_>>()?;
    if let Some(last) = notices.last() {
        conn.prepare_cached(
            "UPDATE sessions SET notified_up_to = ?1 WHERE conversation_id = ?2 AND session_id = ?3",
        )?
        .execute(params![last.id, conversation_id, recipient])?;
        audit::append(
            conn,
            red,
            now,
            Entry {
                conversation_id: Some(conversation_id),
                session_id: Some(recipient),
                action: "inbox.notify",
                outcome: Outcome::Ok,
                detail: serde_json::json!({ "told": notices.len(), "up_to_id": last.id }),
            },
        )?;
    }
    Ok(notices)
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
        "SELECT id, conversation_id, recipients FROM messages WHERE id > ?1 ORDER BY id",
    )?;
    let mut newest = since;
    let mut inboxes: Vec<Inbox> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let rows = stmt.query_map([since], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (id, conversation, to) = row?;
        newest = newest.max(id);
        let to: Vec<String> = serde_json::from_str(&to).unwrap_or_default();
        for recipient in to {
            let inbox = (conversation.clone(), recipient);
            if seen.insert(inbox.clone()) {
                inboxes.push(inbox);
            }
        }
    }
    Ok((newest, inboxes))
}
