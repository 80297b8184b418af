//! What the service takes and returns: the caller's claimed identity, the
//! message and status vocabularies, and the results the MCP tools hand back
//! to agents as JSON (their schemas are part of the tool surface).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Who is calling, as claimed; verified by [`Bridge`](super::Bridge) on every call.
#[derive(Debug, Clone)]
pub struct Caller {
    pub conversation_id: String,
    pub session_id: String,
    pub token: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActionType {
    Question,
    Info,
    Proposal,
    Blocked,
    Complete,
}

impl ActionType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Question => "question",
            Self::Info => "info",
            Self::Proposal => "proposal",
            Self::Blocked => "blocked",
            Self::Complete => "complete",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    Working,
    Waiting,
    Blocked,
    Complete,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Working => "working",
            Self::Waiting => "waiting",
            Self::Blocked => "blocked",
            Self::Complete => "complete",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Created {
    /// `conv_` + 16 hex characters.
    pub conversation_id: String,
    /// Secret for session "a" (the caller). Shown once; not recoverable.
    pub session_a_token: String,
    /// Secret for session "b" (the partner, or a team's first participant).
    /// Hand it over out of band.
    pub session_b_token: String,
    /// Every participant with its token, the caller first. Hand each token
    /// to its participant only.
    pub sessions: Vec<SessionGrant>,
    /// RFC 3339 UTC.
    pub expires_at: String,
}

/// A participant's identity and secret, shown once.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SessionGrant {
    /// "a" to "p", fixed for the conversation's life.
    pub session_id: String,
    pub role: String,
    /// 64 hex characters; keep it secret.
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Sent {
    /// Always "sent".
    pub status: String,
    pub message_id: i64,
    /// True when secrets were found and replaced before storing.
    pub redacted: bool,
    /// The session ids it went to.
    pub to: Vec<String>,
    /// True when this was a retry of an earlier send with the same
    /// idempotency key: nothing new was stored or delivered.
    pub duplicate: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Acked {
    /// How many unread messages this marked read.
    pub acked: usize,
    pub up_to_id: i64,
}

/// One participant, as `list_participants` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ParticipantView {
    pub session_id: String,
    pub role: String,
    /// "working", "waiting", "blocked", "complete", or "unknown" before its
    /// first update.
    pub status: String,
    /// RFC 3339 UTC, null before its first update.
    pub last_heartbeat: Option<String>,
    /// Heartbeat younger than 120 s.
    pub alive: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Participants {
    /// Every participant, "a" first.
    pub participants: Vec<ParticipantView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Message {
    pub id: i64,
    /// Who sent it: a participant's session id ("a", "b", ... "p"; "a"
    /// created the conversation), "bridge" for a system notice, "runner"
    /// for a command result.
    pub from: String,
    /// The session ids it was addressed to.
    pub to: Vec<String>,
    /// "message", "proposal", "command_result" or "system".
    pub kind: String,
    pub message: String,
    pub action_type: Option<String>,
    pub files_involved: Vec<String>,
    /// RFC 3339 UTC.
    pub timestamp: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Inbox {
    pub messages: Vec<Message>,
    /// More messages are waiting; call again.
    pub has_more: bool,
}

/// One message a hook tells its participant about: who sent what kind,
/// never the text (reading it is the agent's act, with check_messages).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct NoticeView {
    pub id: i64,
    /// A session id, "bridge" or "runner", as in check_messages.
    pub from: String,
    /// "message", "proposal", "command_result" or "system".
    pub kind: String,
    pub action_type: Option<String>,
    /// RFC 3339 UTC.
    pub timestamp: String,
}

impl From<bridge_state::messages::Notice> for NoticeView {
    fn from(n: bridge_state::messages::Notice) -> Self {
        Self {
            id: n.id,
            from: n.from,
            kind: n.kind,
            action_type: n.action_type,
            timestamp: bridge_state::clock::rfc3339(n.created_at),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Notified {
    /// Unread messages not told before, oldest first (at most 100); each
    /// is told once, and none is marked read.
    pub new: Vec<NoticeView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct MyStatus {
    pub status: String,
    /// RFC 3339 UTC.
    pub last_heartbeat: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PartnerStatus {
    pub partner_session_id: String,
    pub partner_role: String,
    /// "working", "waiting", "blocked", "complete", or "unknown" before the
    /// partner's first update.
    pub status: String,
    /// RFC 3339 UTC, null before the partner's first update.
    pub last_heartbeat: Option<String>,
    pub age_seconds: Option<i64>,
    /// Heartbeat younger than 120 s.
    pub alive: bool,
}

/// What a send should store.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub message: String,
    pub action_type: ActionType,
    pub files_involved: Vec<String>,
    /// Recipients named by the sender; `None` means every other participant.
    pub to: Option<Vec<String>>,
    pub idempotency_key: Option<String>,
}
