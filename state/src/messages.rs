//! The message repository: the one place that writes `messages`, and the
//! names that may appear as a message's sender.
//!
//! Both processes write here: the bridge for agents' messages and system
//! notices, the runner for command results. Body and file list are
//! [`Redacted`], which only the redactor constructs, so nothing reaches the
//! table unredacted.

use rusqlite::{Connection, params};

use crate::clock::Millis;
use crate::redact::Redacted;

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
