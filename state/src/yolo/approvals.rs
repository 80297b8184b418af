//! Approval tokens: issued by the operator for exactly the proposal they
//! were shown, stored only as keyed hashes, single-use; and the operator's
//! view of the unspent ones. The operator console approves and runs in one
//! step ([`approve_and_run`]): the token it mints is spent in the same
//! transaction. `execute_command` looks a token up
//! ([`find_approval`]) and spends it ([`spend_approval`]) in one transaction.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use super::{
    DEFAULT_APPROVAL_TTL_SECS, Event, Proposal, YoloError, active_enablement, load_proposal,
    settings_mismatch, transition, verify_integrity,
};
use crate::audit::{self, Entry, Outcome};
use crate::auth::{self, ServerSecret};
use crate::clock::{Millis, rfc3339};
use crate::policy::{Policy, Verdict};
use crate::redact::Redactor;

/// `apv_` + 48 hex characters (192 random bits).
pub fn is_approval_token(s: &str) -> bool {
    s.len() == 52
        && s.starts_with("apv_")
        && s[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Who approved, as the operating system knows them: the audit records
/// it with every approval, so a shared machine can tell its operators apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approver {
    pub user: String,
    pub uid: u32,
    /// The terminal the approval was typed on.
    pub tty: Option<String>,
}

/// Issues a single-use approval token for exactly the proposal the operator
/// was shown (`shown_hash`), valid for `ttl_secs`: the hand-over path, where
/// the operator gives the token to the agent.
#[allow(clippy::too_many_arguments)]
pub fn approve(
    conn: &mut Connection,
    secret: &ServerSecret,
    redactor: &Redactor,
    id: &str,
    shown_hash: &str,
    ttl_secs: u32,
    approver: &Approver,
    now: Millis,
) -> Result<(String, Millis), YoloError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let p = approvable(&tx, id, shown_hash, None, now)?;
    let expires = now + i64::from(ttl_secs) * 1000;
    let token = issue(&tx, secret, &p, expires, None, now)?;
    audit::append(
        &tx,
        redactor,
        now,
        Entry {
            conversation_id: Some(&p.conversation_id),
            session_id: None,
            action: "yolo.approve",
            outcome: Outcome::Ok,
            detail: serde_json::json!({
                "proposal_id": id,
                "proposal_hash": p.hash,
                "token_expires_at": rfc3339(expires),
                "approver": approver,
                "run": false,
            }),
        },
    )?;
    tx.commit()?;
    Ok((token, expires))
}

/// Approves the proposal the operator was shown (`shown_hash`) and runs it
/// on the agent's behalf, in one transaction: a single-use token is minted
/// bound to the proposal hash and spent at once (nobody ever holds it), the
/// job is queued for the runner exactly as `execute_command` queues it, and
/// both steps are audited with who approved. Every check `execute_command`
/// makes is made here too, the command policy included. With `remember`,
/// a standing rule approves this exact command (its proposal hash) in this
/// conversation until the enablement ends (see `rules`); its id is returned.
#[allow(clippy::too_many_arguments)]
pub fn approve_and_run(
    conn: &mut Connection,
    secret: &ServerSecret,
    redactor: &Redactor,
    policy: &Policy,
    id: &str,
    shown_hash: &str,
    approver: &Approver,
    remember: bool,
    now: Millis,
) -> Result<Option<String>, YoloError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let p = approvable(&tx, id, shown_hash, Some(policy), now)?;
    let expires = now + i64::from(DEFAULT_APPROVAL_TTL_SECS) * 1000;
    issue(&tx, secret, &p, expires, Some(now), now)?;
    transition(&tx, id, Event::Execute, now)?;
    for (action, detail) in [
        (
            "yolo.approve",
            serde_json::json!({
                "proposal_id": id,
                "proposal_hash": p.hash,
                "approver": approver,
                "run": true,
            }),
        ),
        (
            "yolo.execute",
            serde_json::json!({ "proposal_id": id, "by": "operator", "approver": approver }),
        ),
    ] {
        audit::append(
            &tx,
            redactor,
            now,
            Entry {
                conversation_id: Some(&p.conversation_id),
                session_id: None,
                action,
                outcome: Outcome::Ok,
                detail,
            },
        )?;
    }
    let rule = if remember {
        Some(super::rules::create_rule(&tx, redactor, &p, approver, now)?)
    } else {
        None
    };
    tx.commit()?;
    Ok(rule)
}

/// The proposal `id`, checked as approvable now: unchanged since it was
/// shown, its conversation's YOLO enabled with the settings it was proposed
/// under, and (when `policy` is given) allowed by the command policy.
/// Moves it to `approved`.
fn approvable(
    tx: &Connection,
    id: &str,
    shown_hash: &str,
    policy: Option<&Policy>,
    now: Millis,
) -> Result<Proposal, YoloError> {
    let p = load_proposal(tx, id)?;
    verify_integrity(&p)?;
    if p.hash != shown_hash {
        return Err(YoloError::Tampered(id.to_owned()));
    }
    let en = active_enablement(tx, &p.conversation_id, now)?
        .ok_or_else(|| YoloError::NotEnabled(p.conversation_id.clone()))?;
    if !settings_mismatch(&en.settings, &p.params).is_empty() {
        return Err(YoloError::SettingsChanged);
    }
    if let Some(Verdict::Blocked { rule, reason }) =
        policy.map(|policy| policy.check(en.settings.mode, &p.command))
    {
        return Err(YoloError::Invalid(format!(
            "blocked by policy rule `{rule}` in {} mode: {reason}",
            en.settings.mode.as_str()
        )));
    }
    transition(tx, id, Event::Approve, now)?;
    Ok(p)
}

/// Stores the keyed hash of a new token for `p`; `used_at` set means it is
/// spent as it is made.
pub(super) fn issue(
    tx: &Connection,
    secret: &ServerSecret,
    p: &Proposal,
    expires: Millis,
    used_at: Option<Millis>,
    now: Millis,
) -> Result<String, YoloError> {
    let token = format!(
        "apv_{}",
        auth::random_hex(24).map_err(|e| YoloError::Corrupt(e.to_string()))?
    );
    tx.execute(
        "INSERT INTO approvals (token_hash, proposal_id, proposal_hash, created_at, expires_at, used_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![secret.hash_token(&token), p.id, p.hash, now, expires, used_at],
    )?;
    Ok(token)
}

/// An approval as stored, found by its token's keyed hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The proposal the token was issued for.
    pub proposal_id: String,
    /// The proposal's hash the operator was shown when approving.
    pub proposal_hash: String,
    pub expires_at: Millis,
    /// When the token was spent; `None` while it is unused.
    pub used_at: Option<Millis>,
}

/// The approval whose token has the keyed hash `token_hash`
/// (`ServerSecret::hash_token`), if any, spent or not.
pub fn find_approval(conn: &Connection, token_hash: &[u8]) -> rusqlite::Result<Option<Approval>> {
    conn.query_row(
        "SELECT proposal_id, proposal_hash, expires_at, used_at FROM approvals WHERE token_hash = ?1",
        [token_hash],
        |r| {
            Ok(Approval {
                proposal_id: r.get(0)?,
                proposal_hash: r.get(1)?,
                expires_at: r.get(2)?,
                used_at: r.get(3)?,
            })
        },
    )
    .optional()
}

/// Spends the token with the keyed hash `token_hash`: it runs one command,
/// once. Call it in the transaction that checked the approval
/// ([`find_approval`]); an already spent token stays as it was.
pub fn spend_approval(conn: &Connection, token_hash: &[u8], now: Millis) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE approvals SET used_at = ?1 WHERE token_hash = ?2 AND used_at IS NULL",
        params![now, token_hash],
    )?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    pub preview: String,
    pub proposal_id: String,
    pub command: String,
    pub expires_at: String,
}

/// Unused, unexpired approval tokens (previews of their hashes only).
pub fn active_tokens(conn: &Connection, now: Millis) -> Result<Vec<TokenView>, YoloError> {
    let mut stmt = conn.prepare(
        "SELECT a.token_hash, a.proposal_id, p.command, a.expires_at FROM approvals a JOIN proposals p ON p.id = a.proposal_id
         WHERE a.used_at IS NULL AND a.expires_at > ?1 AND p.state = 'approved' ORDER BY a.created_at",
    )?;
    let rows = stmt.query_map([now], |r| {
        let hash: Vec<u8> = r.get(0)?;
        Ok(TokenView {
            preview: auth::preview(&hash),
            proposal_id: r.get(1)?,
            command: r.get(2)?,
            expires_at: rfc3339(r.get(3)?),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
