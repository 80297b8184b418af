//! What the operator CLI reads and changes in the conversation tables:
//! listings (`bridge list/show`), token rotation (`bridge tokens`) and
//! cleanup of expired conversations (`bridge cleanup`). Plain functions over
//! a connection; the bridge's `operator/commands.rs` renders them.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use crate::audit::{self, Entry, Outcome};
use crate::auth::{self, ServerSecret};
use crate::clock::{Millis, rfc3339};
use crate::redact::Redactor;
use crate::store::StoreError;

#[derive(Debug, Clone, Serialize)]
pub struct ConversationSummary {
    pub conversation_id: String,
    /// Every participant's role, session "a" first.
    pub roles: Vec<String>,
    /// How many participants (2 for a pair, up to 16 for a team).
    pub participants: usize,
    pub created_at: String,
    pub expires_at: String,
    pub expired: bool,
    pub messages: i64,
    pub unread: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    pub session_id: String,
    pub role: String,
    pub status: Option<String>,
    pub last_heartbeat: Option<String>,
    /// A heartbeat younger than `conversations::ALIVE_SECS` (the rule
    /// `list_participants` and `check_partner_status` apply).
    pub alive: bool,
    /// Messages addressed to this participant that it has not read.
    pub unread: i64,
    /// The first hex digits of the stored keyed hash: enough to tell two
    /// tokens apart, useless for authenticating.
    pub token_hash_preview: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    pub id: i64,
    pub from: String,
    /// The session ids it was addressed to.
    pub to: Vec<String>,
    pub kind: String,
    pub action_type: Option<String>,
    pub message: String,
    pub files_involved: serde_json::Value,
    pub redacted: bool,
    pub timestamp: String,
    /// The recipients that have not read it yet.
    pub unread_by: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversationDetail {
    pub summary: ConversationSummary,
    pub sessions: Vec<SessionView>,
    pub messages: Vec<MessageView>,
}

pub fn list(conn: &Connection, now: Millis) -> rusqlite::Result<Vec<ConversationSummary>> {
    let mut stmt = conn.prepare(
        "SELECT c.id, c.created_at, c.expires_at,
                (SELECT json_group_array(role) FROM (SELECT role FROM sessions WHERE conversation_id = c.id ORDER BY session_id)),
                (SELECT count(*) FROM messages WHERE conversation_id = c.id),
                (SELECT count(*) FROM inbox WHERE conversation_id = c.id AND read_at IS NULL)
         FROM conversations c ORDER BY c.created_at",
    )?;
    let rows = stmt.query_map([], |r| summary(r, now))?;
    rows.collect()
}

fn summary(r: &rusqlite::Row<'_>, now: Millis) -> rusqlite::Result<ConversationSummary> {
    // A JSON array, not a joined string: a role may itself hold " / ".
    let roles: String = r.get(3)?;
    let roles: Vec<String> = serde_json::from_str(&roles).unwrap_or_default();
    let expires: Millis = r.get(2)?;
    Ok(ConversationSummary {
        conversation_id: r.get(0)?,
        created_at: rfc3339(r.get(1)?),
        expires_at: rfc3339(expires),
        expired: expires <= now,
        participants: roles.len(),
        roles,
        messages: r.get(4)?,
        unread: r.get(5)?,
    })
}

pub fn show(
    conn: &Connection,
    conversation: &str,
    now: Millis,
    limit: u32,
) -> rusqlite::Result<Option<ConversationDetail>> {
    let summary = conn
        .query_row(
            "SELECT c.id, c.created_at, c.expires_at,
                    (SELECT json_group_array(role) FROM (SELECT role FROM sessions WHERE conversation_id = c.id ORDER BY session_id)),
                    (SELECT count(*) FROM messages WHERE conversation_id = c.id),
                    (SELECT count(*) FROM inbox WHERE conversation_id = c.id AND read_at IS NULL)
             FROM conversations c WHERE c.id = ?1",
            [conversation],
            |r| summary(r, now),
        )
        .optional()?;
    let Some(summary) = summary else {
        return Ok(None);
    };
    let sessions = conn
        .prepare(
            "SELECT s.session_id, s.role, s.status, s.last_heartbeat, s.token_hash,
                    (SELECT count(*) FROM inbox i INDEXED BY inbox_unread
                      WHERE i.conversation_id = s.conversation_id AND i.recipient = s.session_id
                        AND i.read_at IS NULL)
             FROM sessions s WHERE s.conversation_id = ?1 ORDER BY s.session_id",
        )?
        .query_map([conversation], |r| {
            let hash: Vec<u8> = r.get(4)?;
            let beat: Option<Millis> = r.get(3)?;
            Ok(SessionView {
                session_id: r.get(0)?,
                role: r.get(1)?,
                status: r.get(2)?,
                last_heartbeat: beat.map(rfc3339),
                alive: super::liveness(beat, now).1,
                unread: r.get(5)?,
                token_hash_preview: auth::preview(&hash),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let messages = conn
        .prepare(
            "SELECT * FROM (
               SELECT m.id, m.sender, m.recipients, m.kind, m.action_type, m.body, m.files, m.redacted, m.created_at,
                      (SELECT json_group_array(recipient) FROM inbox
                        WHERE conversation_id = m.conversation_id AND message_id = m.id AND read_at IS NULL)
               FROM messages m WHERE m.conversation_id = ?1 ORDER BY m.id DESC LIMIT ?2
             ) ORDER BY id",
        )?
        .query_map(params![conversation, limit], |r| {
            let files: String = r.get(6)?;
            Ok(MessageView {
                id: r.get(0)?,
                from: r.get(1)?,
                to: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                kind: r.get(3)?,
                action_type: r.get(4)?,
                message: r.get(5)?,
                files_involved: serde_json::from_str(&files).unwrap_or_default(),
                redacted: r.get(7)?,
                timestamp: rfc3339(r.get(8)?),
                unread_by: serde_json::from_str(&r.get::<_, String>(9)?).unwrap_or_default(),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(ConversationDetail {
        summary,
        sessions,
        messages,
    }))
}

#[derive(Debug, Clone, Serialize)]
pub struct Cleaned {
    pub conversations: usize,
    pub messages: i64,
}

/// Messages deleted per write transaction by `cleanup` (tens of ms each).
pub const CLEANUP_BATCH: i64 = 1_000;

/// Deletes expired conversations with their sessions and messages. Audit rows
/// are kept: deleting them would break the chain (`bridge audit archive`
/// moves old ones out). Messages go first, `batch` per write transaction,
/// each followed by a pause as long as it took so a live server gets the
/// write lock in between; then one transaction deletes the conversations
/// and audits the totals. An
/// expired conversation takes no new messages, so the batches race nothing;
/// if cleanup is interrupted, the next run finishes the job.
pub fn cleanup(
    conn: &mut Connection,
    redactor: &Redactor,
    now: Millis,
    batch: i64,
) -> Result<Cleaned, StoreError> {
    let mut messages = 0i64;
    loop {
        let started = std::time::Instant::now();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Inbox entries first (their conversation's cascade would delete
        // them in one go, holding the lock), then the messages.
        tx.execute(
            "DELETE FROM inbox WHERE (conversation_id, recipient, message_id) IN (
               SELECT i.conversation_id, i.recipient, i.message_id
               FROM conversations c JOIN inbox i ON i.conversation_id = c.id
               WHERE c.expires_at <= ?1 LIMIT ?2)",
            params![now, batch],
        )?;
        let n = tx.execute(
            "DELETE FROM messages WHERE id IN (
               SELECT m.id FROM conversations c JOIN messages m ON m.conversation_id = c.id
               WHERE c.expires_at <= ?1 LIMIT ?2)",
            params![now, batch],
        )?;
        tx.commit()?;
        messages += n as i64;
        if (n as i64) < batch {
            break;
        }
        crate::store::yield_write_lock(started);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let ids: Vec<String> = tx
        .prepare("SELECT id FROM conversations WHERE expires_at <= ?1")?
        .query_map([now], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in &ids {
        // Messages are gone already, unless one slipped in since.
        messages += tx.query_row(
            "SELECT count(*) FROM messages WHERE conversation_id = ?1",
            [id],
            |r| r.get::<_, i64>(0),
        )?;
        tx.execute("DELETE FROM conversations WHERE id = ?1", [id])?;
    }
    audit::append(
        &tx,
        redactor,
        now,
        Entry {
            conversation_id: None,
            session_id: None,
            action: "operator.cleanup",
            outcome: Outcome::Ok,
            detail: serde_json::json!({ "conversations": ids, "messages": messages }),
        },
    )?;
    tx.commit()?;
    Ok(Cleaned {
        conversations: ids.len(),
        messages,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Rotated {
    pub conversation_id: String,
    /// session id -> new token (shown once).
    pub tokens: std::collections::BTreeMap<String, String>,
}

/// Why `rotate_tokens` refused.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("no session {session:?} in this conversation; its sessions are {}", sessions.join(", "))]
    NoSession {
        session: String,
        sessions: Vec<String>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for RotateError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Issues new tokens for every session of a conversation (or only `only`);
/// the old ones stop working immediately.
pub fn rotate_tokens(
    conn: &mut Connection,
    secret: &ServerSecret,
    redactor: &Redactor,
    conversation: &str,
    only: Option<&str>,
    now: Millis,
) -> Result<Option<Rotated>, RotateError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut sessions: Vec<String> = tx
        .prepare("SELECT session_id FROM sessions WHERE conversation_id = ?1 ORDER BY session_id")?
        .query_map([conversation], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if sessions.is_empty() {
        return Ok(None);
    }
    if let Some(only) = only {
        if !sessions.iter().any(|s| s == only) {
            return Err(RotateError::NoSession {
                session: only.to_owned(),
                sessions,
            });
        }
        sessions = vec![only.to_owned()];
    }
    let mut tokens = std::collections::BTreeMap::new();
    for s in sessions {
        let token = auth::new_token().map_err(|e| StoreError::Join(e.to_string()))?;
        tx.execute(
            "UPDATE sessions SET token_hash = ?1 WHERE conversation_id = ?2 AND session_id = ?3",
            params![secret.hash_token(&token), conversation, s],
        )?;
        tokens.insert(s, token);
    }
    audit::append(
        &tx,
        redactor,
        now,
        Entry {
            conversation_id: Some(conversation),
            session_id: None,
            action: "operator.tokens.rotate",
            outcome: Outcome::Ok,
            detail: serde_json::json!({ "sessions": tokens.keys().collect::<Vec<_>>() }),
        },
    )?;
    tx.commit()?;
    Ok(Some(Rotated {
        conversation_id: conversation.to_owned(),
        tokens,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::Redacted;
    use crate::store::migrate;

    #[test]
    fn cleanup_in_small_batches_deletes_and_counts_every_expired_message() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let red = Redactor::builtin();
        // Two expired conversations with 7 and 4 messages, one live with 5.
        for (id, expires, n) in [
            ("conv_old1", 10, 7),
            ("conv_old2", 20, 4),
            ("conv_live", 9_999, 5),
        ] {
            conn.execute(
                "INSERT INTO conversations (id, created_at, expires_at) VALUES (?1, 0, ?2)",
                params![id, expires],
            )
            .unwrap();
            for _ in 0..n {
                crate::messages::insert(
                    &conn,
                    id,
                    &crate::messages::NewMessage {
                        sender: "a",
                        kind: "message",
                        action_type: None,
                        body: &red.redacted("hi"),
                        files_json: &Redacted::empty_list(),
                        redacted: false,
                        idempotency: None,
                    },
                    &["b".to_owned()],
                    0,
                )
                .unwrap();
            }
        }
        let cleaned = cleanup(&mut conn, &red, 100, 3).unwrap();
        assert_eq!((cleaned.conversations, cleaned.messages), (2, 11));
        let left: Vec<(String, i64)> = conn
            .prepare("SELECT conversation_id, count(*) FROM messages GROUP BY 1")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(left, [("conv_live".to_owned(), 5)]);
        let entries: Vec<(String, i64)> = conn
            .prepare("SELECT conversation_id, count(*) FROM inbox GROUP BY 1")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(entries, [("conv_live".to_owned(), 5)], "inbox entries");
        assert!(crate::audit::verify(&conn).unwrap().first_break.is_none());
    }
}
