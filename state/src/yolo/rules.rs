//! Standing approval rules: the operator's opt-in "always approve exactly
//! this command in this conversation while YOLO stays enabled", made on the
//! console's review screen. A rule matches one proposal hash (the command
//! together with every execution parameter), never a prefix or a pattern;
//! it ends with the enablement it was made under (disable, re-enable or
//! expiry) or when the operator revokes it. A matching proposal still goes
//! through intake, the policy, the queue and the container; it only skips
//! the human wait. Every creation and every use is audited. Agents can
//! neither make nor list rules: no tool reaches this module.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{Approver, Event, Proposal, YoloError, active_enablement, issue, transition};
use crate::audit::{self, Entry, Outcome};
use crate::auth::{self, ServerSecret};
use crate::clock::{Millis, rfc3339};
use crate::redact::Redactor;

#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub id: String,
    pub conversation_id: String,
    pub proposal_hash: String,
    pub command: String,
    /// Who made it (`Approver`, as JSON).
    pub approver: serde_json::Value,
    pub created_at: String,
    pub expires_at: String,
    pub uses: i64,
}

/// Makes a rule for `p` (already approved by `approver`), inside the
/// caller's transaction; it lasts as long as the current enablement.
pub(super) fn create_rule(
    tx: &Connection,
    redactor: &Redactor,
    p: &Proposal,
    approver: &Approver,
    now: Millis,
) -> Result<String, YoloError> {
    let en = active_enablement(tx, &p.conversation_id, now)?
        .ok_or_else(|| YoloError::NotEnabled(p.conversation_id.clone()))?;
    let id = format!(
        "rule_{}",
        auth::random_hex(8).map_err(|e| YoloError::Corrupt(e.to_string()))?
    );
    let who = serde_json::to_string(approver).map_err(|e| YoloError::Corrupt(e.to_string()))?;
    // One live rule per command and conversation: a new one replaces it.
    tx.execute(
        "UPDATE approval_rules SET revoked_at = ?1
         WHERE conversation_id = ?2 AND proposal_hash = ?3 AND revoked_at IS NULL",
        params![now, p.conversation_id, p.hash],
    )?;
    tx.execute(
        "INSERT INTO approval_rules (id, conversation_id, proposal_hash, command, approver, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![id, p.conversation_id, p.hash, p.command, who, now, en.expires_at_ms],
    )?;
    audit::append(
        tx,
        redactor,
        now,
        Entry {
            conversation_id: Some(&p.conversation_id),
            session_id: None,
            action: "yolo.rule.create",
            outcome: Outcome::Ok,
            detail: serde_json::json!({
                "rule_id": id,
                "proposal_id": p.id,
                "proposal_hash": p.hash,
                "command": p.command,
                "approver": approver,
                "expires_at": rfc3339(en.expires_at_ms),
            }),
        },
    )?;
    Ok(id)
}

/// If a live rule of this conversation matches the proposal's hash, runs
/// the proposal by it, in the caller's transaction (the one that stored
/// the proposal): approved, a token minted and spent, queued, audited as a
/// use of the rule. Returns the rule's id, or `None` when no rule matches.
/// The caller has already checked the policy.
pub fn run_by_rule(
    tx: &Connection,
    secret: &ServerSecret,
    redactor: &Redactor,
    p: &Proposal,
    now: Millis,
) -> Result<Option<String>, YoloError> {
    let rule: Option<String> = tx
        .query_row(
            "SELECT id FROM approval_rules
             WHERE conversation_id = ?1 AND proposal_hash = ?2 AND revoked_at IS NULL AND expires_at > ?3",
            params![p.conversation_id, p.hash, now],
            |r| r.get(0),
        )
        .optional()?;
    let Some(rule) = rule else { return Ok(None) };
    transition(tx, &p.id, Event::Approve, now)?;
    issue(tx, secret, p, now, Some(now), now)?;
    transition(tx, &p.id, Event::Execute, now)?;
    tx.execute(
        "UPDATE approval_rules SET uses = uses + 1 WHERE id = ?1",
        [&rule],
    )?;
    audit::append(
        tx,
        redactor,
        now,
        Entry {
            conversation_id: Some(&p.conversation_id),
            session_id: Some(&p.session_id),
            action: "yolo.rule.use",
            outcome: Outcome::Ok,
            detail: serde_json::json!({ "rule_id": rule, "proposal_id": p.id, "proposal_hash": p.hash }),
        },
    )?;
    Ok(Some(rule))
}

/// Ends every live rule of a conversation (its enablement ended).
pub(super) fn revoke_rules(tx: &Connection, cid: &str, now: Millis) -> rusqlite::Result<usize> {
    tx.execute(
        "UPDATE approval_rules SET revoked_at = ?1 WHERE conversation_id = ?2 AND revoked_at IS NULL",
        params![now, cid],
    )
}

/// The operator revokes one rule. Errors when there is no live rule `id`.
pub fn revoke_rule(
    conn: &mut Connection,
    redactor: &Redactor,
    id: &str,
    now: Millis,
) -> Result<(), YoloError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let cid: Option<String> = tx
        .query_row(
            "SELECT conversation_id FROM approval_rules WHERE id = ?1 AND revoked_at IS NULL AND expires_at > ?2",
            params![id, now],
            |r| r.get(0),
        )
        .optional()?;
    let Some(cid) = cid else {
        return Err(YoloError::Invalid(format!(
            "no live rule `{id}`; `bridge yolo rules` lists them"
        )));
    };
    tx.execute(
        "UPDATE approval_rules SET revoked_at = ?1 WHERE id = ?2",
        params![now, id],
    )?;
    audit::append(
        &tx,
        redactor,
        now,
        Entry {
            conversation_id: Some(&cid),
            session_id: None,
            action: "yolo.rule.revoke",
            outcome: Outcome::Ok,
            detail: serde_json::json!({ "rule_id": id }),
        },
    )?;
    tx.commit()?;
    Ok(())
}

/// Live rules, oldest first.
pub fn live_rules(conn: &Connection, now: Millis) -> Result<Vec<Rule>, YoloError> {
    let mut stmt = conn.prepare(
        "SELECT id, conversation_id, proposal_hash, command, approver, created_at, expires_at, uses
         FROM approval_rules WHERE revoked_at IS NULL AND expires_at > ?1 ORDER BY created_at",
    )?;
    let rows = stmt.query_map([now], |r| {
        let who: String = r.get(4)?;
        Ok(Rule {
            id: r.get(0)?,
            conversation_id: r.get(1)?,
            proposal_hash: r.get(2)?,
            command: r.get(3)?,
            approver: serde_json::from_str(&who).unwrap_or_default(),
            created_at: rfc3339(r.get(5)?),
            expires_at: rfc3339(r.get(6)?),
            uses: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
