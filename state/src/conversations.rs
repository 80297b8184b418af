//! The conversation repository: conversations, their participants'
//! sessions (two in a pair, up to 16 in a team), the sessions' hashed
//! tokens and self-reported status. The bridge's MCP face
//! reads and writes these rows only through here.
//!
//! Roles arrive as `Redacted` (the caller redacts them for the audit row
//! too), statuses as `&'static str` from the tool's closed vocabulary (never
//! agent text); tokens arrive only as keyed hashes
//! (`auth::ServerSecret::hash_token`).
//!
//! [`operator`] holds what the operator CLI reads and changes: listings,
//! token rotation and cleanup.

pub mod operator;

use rusqlite::{Connection, OptionalExtension, params};

use crate::clock::Millis;
use crate::redact::Redacted;

/// One session of a new conversation.
#[derive(Debug, Clone, Copy)]
pub struct NewSession<'a> {
    /// `a` to `p` (`messages::sender::SESSIONS`), in order of joining.
    pub session_id: &'a str,
    /// The role the agent gave, redacted (only the redactor makes a
    /// `Redacted`).
    pub role: &'a Redacted,
    /// The keyed hash of the session's token.
    pub token_hash: &'a [u8],
}

/// Stores a conversation and its sessions.
pub fn create(
    conn: &Connection,
    id: &str,
    now: Millis,
    expires_at: Millis,
    sessions: &[NewSession<'_>],
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO conversations (id, created_at, expires_at) VALUES (?1, ?2, ?3)",
        params![id, now, expires_at],
    )?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO sessions (conversation_id, session_id, role, token_hash) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for s in sessions {
        insert.execute(params![id, s.session_id, s.role, s.token_hash])?;
    }
    Ok(())
}

/// What authenticating a session needs: its token hash and when its
/// conversation expires; `None` if there is no such session.
pub fn credentials(
    conn: &Connection,
    conversation_id: &str,
    session_id: &str,
) -> rusqlite::Result<Option<(Vec<u8>, Millis)>> {
    conn.prepare_cached(
        "SELECT s.token_hash, c.expires_at FROM sessions s JOIN conversations c ON c.id = s.conversation_id
         WHERE s.conversation_id = ?1 AND s.session_id = ?2",
    )?
    .query_row(params![conversation_id, session_id], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .optional()
}

/// Records a session's self-reported status, as a heartbeat at `now`.
/// `status` is `'static`: one of the tool's fixed words, not agent text.
pub fn set_status(
    conn: &Connection,
    conversation_id: &str,
    session_id: &str,
    status: &'static str,
    now: Millis,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE sessions SET status = ?1, last_heartbeat = ?2 WHERE conversation_id = ?3 AND session_id = ?4",
    )?
    .execute(params![status, now, conversation_id, session_id])?;
    Ok(())
}

/// A participant whose last heartbeat is older than this is reported not
/// alive.
pub const ALIVE_SECS: i64 = 120;

/// How old a heartbeat is, in whole seconds, and whether that counts as alive.
pub fn liveness(beat: Option<Millis>, now: Millis) -> (Option<i64>, bool) {
    let age = beat.map(|b| ((now - b) / 1000).max(0));
    (age, age.is_some_and(|a| a < ALIVE_SECS))
}

/// One participant, as the others may see it.
#[derive(Debug, Clone)]
pub struct Participant {
    pub session_id: String,
    pub role: String,
    pub status: Option<String>,
    pub last_heartbeat: Option<Millis>,
}

fn participant(r: &rusqlite::Row<'_>) -> rusqlite::Result<Participant> {
    Ok(Participant {
        session_id: r.get(0)?,
        role: r.get(1)?,
        status: r.get(2)?,
        last_heartbeat: r.get(3)?,
    })
}

/// The first session of `conversation_id` that is not `session_id`: in a
/// pair, the partner.
pub fn partner(
    conn: &Connection,
    conversation_id: &str,
    session_id: &str,
) -> rusqlite::Result<Participant> {
    conn.prepare_cached(
        "SELECT session_id, role, status, last_heartbeat FROM sessions
         WHERE conversation_id = ?1 AND session_id != ?2 ORDER BY session_id LIMIT 1",
    )?
    .query_row(params![conversation_id, session_id], participant)
}

/// Every participant of a conversation, in session order (`a` first).
pub fn participants(
    conn: &Connection,
    conversation_id: &str,
) -> rusqlite::Result<Vec<Participant>> {
    conn.prepare_cached(
        "SELECT session_id, role, status, last_heartbeat FROM sessions
         WHERE conversation_id = ?1 ORDER BY session_id",
    )?
    .query_map([conversation_id], participant)?
    .collect()
}

/// Adds a participant to an existing conversation.
pub fn add(conn: &Connection, conversation_id: &str, s: &NewSession<'_>) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO sessions (conversation_id, session_id, role, token_hash) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![conversation_id, s.session_id, s.role, s.token_hash])?;
    Ok(())
}

/// Whether the conversation exists and has not expired.
pub fn is_live(conn: &Connection, conversation_id: &str, now: Millis) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("SELECT expires_at FROM conversations WHERE id = ?1")?
        .query_row([conversation_id], |r| r.get::<_, Millis>(0))
        .optional()?
        .is_some_and(|expires| now < expires))
}

/// When each live (unexpired) conversation was created: what the
/// database-wide creation limits count. Read through the expiry index, so
/// the cost is bounded by the live-conversation ceiling, not by the table.
pub fn live_created_at(conn: &Connection, now: Millis) -> rusqlite::Result<Vec<Millis>> {
    conn.prepare_cached("SELECT created_at FROM conversations WHERE expires_at > ?1")?
        .query_map([now], |r| r.get(0))?
        .collect()
}

/// Why an invitation was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteRefusal {
    /// The conversation has its 16 participants.
    Full,
    /// Another participant has this role; the text lists them.
    RoleTaken(String),
    /// No such live conversation (operator path; agents authenticate first).
    NoConversation,
}

impl std::fmt::Display for InviteRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full => write!(
                f,
                "this conversation already has {} participants, the most it can have",
                crate::messages::sender::SESSIONS.len()
            ),
            Self::RoleTaken(list) => write!(
                f,
                "the role must differ from every current participant's role; they are {list}"
            ),
            Self::NoConversation => write!(f, "no such live conversation"),
        }
    }
}

/// `"b" ("reviewer"), "c" ("tester")`: participants as an error may list
/// them. Roles were redacted when stored, and are shown as JSON strings.
pub fn listing(participants: &[Participant]) -> String {
    participants
        .iter()
        .map(|p| format!("{:?} ({})", p.session_id, serde_json::json!(p.role)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adds a participant with `role` and the keyed hash of its new token,
/// tells everyone already there (a bridge notice) and audits it, all in the
/// caller's transaction. `by` is who invited: a session id, or `None` for
/// the operator. Returns the new session id. A refusal is audited here only
/// for the operator; the MCP layer audits an agent's (itemized, then
/// counted, since an agent can repeat one at will).
pub fn invite(
    tx: &Connection,
    red: &crate::redact::Redactor,
    conversation_id: &str,
    role: &str,
    token_hash: &[u8],
    by: Option<&str>,
    now: Millis,
) -> Result<Result<&'static str, InviteRefusal>, rusqlite::Error> {
    use crate::audit::{self, Entry, Outcome};
    use crate::messages::{self, NewMessage, sender};
    let role = red.redacted(role);
    // The operator's refusals are audited here; an agent's by the MCP layer,
    // which itemizes them and then counts them (an agent can repeat one at will).
    let refuse = |why: InviteRefusal| -> rusqlite::Result<Result<&'static str, InviteRefusal>> {
        if by.is_some() {
            return Ok(Err(why));
        }
        audit::append(
            tx,
            red,
            now,
            Entry {
                conversation_id: Some(conversation_id),
                session_id: by,
                action: "conversation.invite",
                outcome: Outcome::Refused,
                detail: serde_json::json!({ "reason": why.to_string(), "by": by.unwrap_or("operator") }),
            },
        )?;
        Ok(Err(why))
    };
    if !is_live(tx, conversation_id, now)? {
        return Ok(Err(InviteRefusal::NoConversation));
    }
    let everyone = participants(tx, conversation_id)?;
    let Some(session_id) = sender::SESSIONS.get(everyone.len()).copied() else {
        return refuse(InviteRefusal::Full);
    };
    if everyone.iter().any(|p| p.role == role.as_str()) {
        return refuse(InviteRefusal::RoleTaken(listing(&everyone)));
    }
    add(
        tx,
        conversation_id,
        &NewSession {
            session_id,
            role: &role,
            token_hash,
        },
    )?;
    let notice = red.redacted(&format!(
        "Participant {session_id:?} ({}) joined the conversation.",
        serde_json::json!(role.as_str())
    ));
    // Signed by the bridge, to everyone already there.
    messages::insert(
        tx,
        conversation_id,
        &NewMessage {
            sender: sender::BRIDGE,
            kind: "system",
            action_type: None,
            body: &notice,
            files_json: &Redacted::empty_list(),
            redacted: false,
            idempotency: None,
        },
        &messages::others(tx, conversation_id, session_id)?,
        now,
    )?;
    audit::append(
        tx,
        red,
        now,
        Entry {
            conversation_id: Some(conversation_id),
            session_id: by,
            action: "conversation.invite",
            outcome: Outcome::Ok,
            detail: serde_json::json!({ "session_id": session_id, "role": role, "by": by.unwrap_or("operator") }),
        },
    )?;
    Ok(Ok(session_id))
}
