//! Conversations and their sessions: creating one (two sessions, two
//! tokens shown once), a session's self-reported status (a heartbeat), and
//! what a session may know of its partner.

use bridge_state::audit::{self, Entry, Outcome};
use bridge_state::auth;
use bridge_state::clock::rfc3339;
use bridge_state::conversations::{self, NewSession};
use bridge_state::messages::sender;
use rusqlite::TransactionBehavior;

use super::{
    Bridge, Caller, Counter, Created, MyStatus, PartnerStatus, SessionStatus, ToolError, internal,
};

/// A partner whose last heartbeat is older than this is reported not alive.
pub const ALIVE_SECS: i64 = 120;

impl Bridge {
    pub async fn create_conversation(
        &self,
        my_role: String,
        partner_role: String,
    ) -> Result<Created, ToolError> {
        let conversation_id = auth::new_conversation_id().map_err(internal)?;
        let token_a = auth::new_token().map_err(internal)?;
        let token_b = auth::new_token().map_err(internal)?;
        let this = self.clone();
        let (cid, ta, tb) = (conversation_id.clone(), token_a.clone(), token_b.clone());
        let expires_at = self
            .0
            .db
            .call(move |conn| {
                let inner = &this.0;
                let now = this.now();
                let expires = now + inner.conversation_ttl_ms;
                let role_a = inner.redactor.redacted(&my_role);
                let role_b = inner.redactor.redacted(&partner_role);
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if let Err(e) = crate::mcp::throttle::check_global(&inner.quotas, &tx, now)? {
                    return Ok(Err(e));
                }
                let (hash_a, hash_b) = (inner.secret.hash_token(&ta), inner.secret.hash_token(&tb));
                conversations::create(
                    &tx,
                    &cid,
                    now,
                    expires,
                    &[
                        NewSession { session_id: sender::A, role: &role_a, token_hash: &hash_a },
                        NewSession { session_id: sender::B, role: &role_b, token_hash: &hash_b },
                    ],
                )?;
                audit::append(
                    &tx,
                    &inner.redactor,
                    now,
                    Entry {
                        conversation_id: Some(&cid),
                        session_id: Some("a"),
                        action: "conversation.create",
                        outcome: Outcome::Ok,
                        detail: serde_json::json!({ "roles": { "a": role_a, "b": role_b }, "expires_at": rfc3339(expires) }),
                    },
                )?;
                tx.commit()?;
                Ok(Ok(expires))
            })
            .await??;
        Ok(Created {
            conversation_id,
            session_a_token: token_a,
            session_b_token: token_b,
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

    pub async fn partner_status(&self, caller: Caller) -> Result<PartnerStatus, ToolError> {
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
                let partner =
                    conversations::partner(&tx, &caller.conversation_id, &caller.session_id)?;
                let beat = partner.last_heartbeat;
                // A pure read: counted like an empty check.
                tx.commit()?;
                this.count_read(&caller, "status.check", "check_partner_status", now);
                let age = beat.map(|b| ((now - b) / 1000).max(0));
                Ok(Ok(PartnerStatus {
                    partner_session_id: partner.session_id,
                    partner_role: partner.role,
                    status: partner.status.unwrap_or_else(|| "unknown".into()),
                    last_heartbeat: beat.map(rfc3339),
                    age_seconds: age,
                    alive: age.is_some_and(|a| a < ALIVE_SECS),
                }))
            })
            .await?
    }
}
