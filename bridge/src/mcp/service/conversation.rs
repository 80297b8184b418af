//! Conversations and their sessions: creating one (a pair or a team, one
//! token per participant, shown once), a session's self-reported status (a
//! heartbeat), and what a session may know of a partner.

use bridge_state::audit::{self, Entry, Outcome};
use bridge_state::auth;
use bridge_state::clock::rfc3339;
use bridge_state::conversations::{self, NewSession};
use bridge_state::messages::sender;
use rusqlite::TransactionBehavior;

use super::{
    Bridge, Caller, Counter, Created, MyStatus, PartnerStatus, SessionGrant, SessionStatus,
    ToolError, internal,
};

pub use bridge_state::conversations::{ALIVE_SECS, liveness};

impl Bridge {
    /// Creates a conversation for the caller (session "a", `my_role`) and
    /// one session per role in `others` ("b", "c", ... in order): a pair
    /// when there is one, a team when there are more. Roles were checked
    /// by the tool layer (count, length, printable, unique).
    pub async fn create_conversation(
        &self,
        my_role: String,
        others: Vec<String>,
    ) -> Result<Created, ToolError> {
        let conversation_id = auth::new_conversation_id().map_err(internal)?;
        let roles: Vec<String> = std::iter::once(my_role).chain(others).collect();
        let mut tokens = Vec::with_capacity(roles.len());
        for _ in &roles {
            tokens.push(auth::new_token().map_err(internal)?);
        }
        let this = self.clone();
        let (cid, toks) = (conversation_id.clone(), tokens.clone());
        let (expires_at, stored_roles) = self
            .0
            .db
            .call(move |conn| {
                let inner = &this.0;
                let now = this.now();
                let expires = now + inner.conversation_ttl_ms;
                let redacted: Vec<_> = roles.iter().map(|r| inner.redactor.redacted(r)).collect();
                let hashes: Vec<_> = toks.iter().map(|t| inner.secret.hash_token(t)).collect();
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if let Err(e) = crate::mcp::throttle::check_global(&inner.quotas, &tx, now)? {
                    return Ok(Err(e));
                }
                let sessions: Vec<NewSession<'_>> = redacted
                    .iter()
                    .zip(&hashes)
                    .zip(sender::SESSIONS)
                    .map(|((role, hash), session_id)| NewSession { session_id, role, token_hash: hash })
                    .collect();
                conversations::create(&tx, &cid, now, expires, &sessions)?;
                let roles_json: serde_json::Map<String, serde_json::Value> = sessions
                    .iter()
                    .map(|s| (s.session_id.to_owned(), serde_json::json!(s.role)))
                    .collect();
                audit::append(
                    &tx,
                    &inner.redactor,
                    now,
                    Entry {
                        conversation_id: Some(&cid),
                        session_id: Some(sender::A),
                        action: "conversation.create",
                        outcome: Outcome::Ok,
                        detail: serde_json::json!({ "roles": roles_json, "expires_at": rfc3339(expires) }),
                    },
                )?;
                tx.commit()?;
                let stored: Vec<String> = redacted.iter().map(|r| r.as_str().to_owned()).collect();
                Ok(Ok((expires, stored)))
            })
            .await??;
        let sessions: Vec<SessionGrant> = sender::SESSIONS
            .iter()
            .zip(stored_roles)
            .zip(&tokens)
            .map(|((sid, role), token)| SessionGrant {
                session_id: (*sid).to_owned(),
                role,
                token: token.clone(),
            })
            .collect();
        Ok(Created {
            conversation_id,
            session_a_token: tokens[0].clone(),
            session_b_token: tokens[1].clone(),
            sessions,
            expires_at: rfc3339(expires_at),
        })
    }

    pub async fn update_status(
        &self,
        caller: Caller,
        status: SessionStatus,
    ) -> Result<MyStatus, ToolError> {
        let this = self.clone();
        self.0
            .db
            .call(move |conn| {
                let now = this.now();
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if !this.authenticate(&tx, &caller, now, "update_my_status")? {
                    tx.commit()?;
                    return Ok(Err(ToolError::Unauthorized));
                }
                conversations::set_status(
                    &tx,
                    &caller.conversation_id,
                    &caller.session_id,
                    status.as_str(),
                    now,
                )?;
                tx.commit()?;
                // A self-reported heartbeat: counted (with the latest status)
                // rather than one row each, or a loop could fill the disk.
                this.0.tally.count_with(
                    Counter {
                        conversation_id: Some(caller.conversation_id.clone()),
                        session_id: Some(caller.session_id.clone()),
                        action: "status.update",
                        tool: "update_my_status".into(),
                        client: String::new(),
                        refused: false,
                    },
                    now,
                    Some(status.as_str().into()),
                );
                Ok(Ok(MyStatus {
                    status: status.as_str().into(),
                    last_heartbeat: rfc3339(now),
                }))
            })
            .await?
    }

    /// A partner's status: in a pair, the other session's (or `partner`'s,
    /// which must then be it); in a team, `partner`'s, which is required.
    pub async fn partner_status(
        &self,
        caller: Caller,
        partner: Option<String>,
    ) -> Result<PartnerStatus, ToolError> {
        let this = self.clone();
        self.0
            .db
            .call(move |conn| {
                let now = this.now();
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if !this.authenticate(&tx, &caller, now, "check_partner_status")? {
                    tx.commit()?;
                    return Ok(Err(ToolError::Unauthorized));
                }
                let everyone = conversations::participants(&tx, &caller.conversation_id)?;
                tx.commit()?;
                let others: Vec<_> = everyone
                    .into_iter()
                    .filter(|p| p.session_id != caller.session_id)
                    .collect();
                let found = match &partner {
                    Some(want) => others.iter().find(|p| &p.session_id == want),
                    None if others.len() == 1 => others.first(),
                    None => {
                        return Ok(Err(ToolError::invalid(
                            "partner",
                            format!(
                                "this conversation is a team: name whose status you want, one of {}",
                                conversations::listing(&others)
                            ),
                        )));
                    }
                };
                let Some(found) = found else {
                    return Ok(Err(ToolError::invalid(
                        "partner",
                        format!(
                            "{:?} is not another participant of this conversation; the others are {}",
                            partner.unwrap_or_default(),
                            conversations::listing(&others)
                        ),
                    )));
                };
                // A pure read: counted like an empty check.
                this.count_read(&caller, "status.check", "check_partner_status", now);
                let beat = found.last_heartbeat;
                let (age, alive) = liveness(beat, now);
                Ok(Ok(PartnerStatus {
                    partner_session_id: found.session_id.clone(),
                    partner_role: found.role.clone(),
                    status: found.status.clone().unwrap_or_else(|| "unknown".into()),
                    last_heartbeat: beat.map(rfc3339),
                    age_seconds: age,
                    alive,
                }))
            })
            .await?
    }
}
