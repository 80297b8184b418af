//! A conversation's participants: inviting one (the creator only, up to
//! 16 in all, audited, announced to everyone) and listing them with their
//! liveness. A participant's session id and role never change.

use rusqlite::TransactionBehavior;

use bridge_state::audit::{self, Entry, Outcome};
use bridge_state::auth;
use bridge_state::clock::rfc3339;
use bridge_state::conversations::{self, NewSession};
use bridge_state::messages::{self, sender};

use super::conversation::{ALIVE_SECS, listing};
use super::{Bridge, Caller, ParticipantView, Participants, SessionGrant, ToolError, internal};

impl Bridge {
    /// Adds a participant with `role` (checked by the tool layer for length
    /// and printability) and returns its identity and token, shown once.
    pub async fn invite(&self, caller: Caller, role: String) -> Result<SessionGrant, ToolError> {
        let token = auth::new_token().map_err(internal)?;
        let this = self.clone();
        let tok = token.clone();
        self.0
            .db
            .call(move |conn| {
                let inner = &this.0;
                let now = this.now();
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if !this.authenticate(&tx, &caller, now, "invite_participant")? {
                    tx.commit()?;
                    return Ok(Err(ToolError::Unauthorized));
                }
                let cid = &caller.conversation_id;
                let refuse = |why: String| {
                    audit::append(
                        &tx,
                        &inner.redactor,
                        now,
                        Entry {
                            conversation_id: Some(cid),
                            session_id: Some(&caller.session_id),
                            action: "conversation.invite",
                            outcome: Outcome::Refused,
                            detail: serde_json::json!({ "reason": why }),
                        },
                    )
                };
                if caller.session_id != sender::A {
                    let why =
                        "only the conversation's creator (session \"a\") may invite participants"
                            .to_owned();
                    refuse(why.clone())?;
                    tx.commit()?;
                    return Ok(Err(ToolError::Refused(why)));
                }
                let everyone = conversations::participants(&tx, cid)?;
                let Some(session_id) = sender::SESSIONS.get(everyone.len()).copied() else {
                    let why = format!(
                        "this conversation already has {} participants, the most it can have",
                        sender::SESSIONS.len()
                    );
                    refuse(why.clone())?;
                    tx.commit()?;
                    return Ok(Err(ToolError::Refused(why)));
                };
                let role_r = inner.redactor.redacted(&role);
                if everyone.iter().any(|p| p.role == role_r.as_str()) {
                    tx.commit()?;
                    return Ok(Err(ToolError::invalid(
                        "role",
                        format!(
                            "must differ from every current participant's role; they are {}",
                            listing(&everyone)
                        ),
                    )));
                }
                let hash = inner.secret.hash_token(&tok);
                conversations::add(
                    &tx,
                    cid,
                    &NewSession {
                        session_id,
                        role: &role_r,
                        token_hash: &hash,
                    },
                )?;
                let notice = inner.redactor.redacted(&format!(
                    "Participant {session_id:?} ({}) joined the conversation.",
                    serde_json::json!(role_r.as_str())
                ));
                // Signed by the bridge, to everyone already there.
                let empty = bridge_state::redact::Redacted::empty_list();
                messages::insert(
                    &tx,
                    cid,
                    &messages::NewMessage {
                        sender: sender::BRIDGE,
                        kind: "system",
                        action_type: None,
                        body: &notice,
                        files_json: &empty,
                        redacted: false,
                        idempotency: None,
                    },
                    &messages::others(&tx, cid, session_id)?,
                    now,
                )?;
                audit::append(
                    &tx,
                    &inner.redactor,
                    now,
                    Entry {
                        conversation_id: Some(cid),
                        session_id: Some(&caller.session_id),
                        action: "conversation.invite",
                        outcome: Outcome::Ok,
                        detail: serde_json::json!({ "session_id": session_id, "role": role_r }),
                    },
                )?;
                tx.commit()?;
                Ok(Ok(SessionGrant {
                    session_id: session_id.to_owned(),
                    role: role_r.as_str().to_owned(),
                    token: tok,
                }))
            })
            .await?
            .inspect(|_| self.0.wake.notify())
    }

    /// Every participant with its status and liveness.
    pub async fn participants(&self, caller: Caller) -> Result<Participants, ToolError> {
        let this = self.clone();
        self.0
            .db
            .call(move |conn| {
                let now = this.now();
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if !this.authenticate(&tx, &caller, now, "list_participants")? {
                    tx.commit()?;
                    return Ok(Err(ToolError::Unauthorized));
                }
                let everyone = conversations::participants(&tx, &caller.conversation_id)?;
                tx.commit()?;
                this.count_read(&caller, "participants.list", "list_participants", now);
                let participants = everyone
                    .into_iter()
                    .map(|p| ParticipantView {
                        alive: p
                            .last_heartbeat
                            .is_some_and(|b| (now - b) / 1000 < ALIVE_SECS),
                        last_heartbeat: p.last_heartbeat.map(rfc3339),
                        status: p.status.unwrap_or_else(|| "unknown".into()),
                        session_id: p.session_id,
                        role: p.role,
                    })
                    .collect();
                Ok(Ok(Participants { participants }))
            })
            .await?
    }
}
