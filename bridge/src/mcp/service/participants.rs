//! A conversation's participants: inviting one (the creator only, up to
//! 16 in all, audited, announced to everyone) and listing them with their
//! liveness. A participant's session id and role never change.

use rusqlite::TransactionBehavior;

use bridge_state::audit::Outcome;
use bridge_state::auth;
use bridge_state::clock::rfc3339;
use bridge_state::conversations::{self, InviteRefusal};
use bridge_state::messages::sender;

use super::conversation::liveness;
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
                // Refused invitations can be repeated at will: itemized, then counted.
                let audit_refusal = |why: String| {
                    let detail = serde_json::json!({ "reason": why, "by": caller.session_id });
                    this.audit_repeatable(
                        &tx,
                        (cid, &caller.session_id),
                        "invite_participant",
                        now,
                        ("conversation.invite", Outcome::Refused, detail),
                    )
                };
                if caller.session_id != sender::A {
                    let why =
                        "only the conversation's creator (session \"a\") may invite participants";
                    audit_refusal(why.to_owned())?;
                    tx.commit()?;
                    return Ok(Err(ToolError::Refused(why.to_owned())));
                }
                let hash = inner.secret.hash_token(&tok);
                let invited = conversations::invite(
                    &tx,
                    &inner.redactor,
                    cid,
                    &role,
                    &hash,
                    Some(&caller.session_id),
                    now,
                )?;
                if let Err(why) = &invited {
                    audit_refusal(why.to_string())?;
                }
                tx.commit()?;
                Ok(match invited {
                    Ok(session_id) => Ok(SessionGrant {
                        session_id: session_id.to_owned(),
                        role: inner.redactor.redacted(&role).as_str().to_owned(),
                        token: tok,
                    }),
                    Err(why @ InviteRefusal::RoleTaken(_)) => {
                        Err(ToolError::invalid("role", why.to_string()))
                    }
                    Err(why) => Err(ToolError::Refused(why.to_string())),
                })
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
                        alive: liveness(p.last_heartbeat, now).1,
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
