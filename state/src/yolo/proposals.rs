//! The proposal repository: the one writer of `proposals` rows and of
//! their `failure` and `result` columns (all [`Redacted`]), reading
//! proposals back with an integrity check, the operator's rejection, and
//! failing jobs that waited too long in the queue.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use super::{Event, ExecParams, JobState, Settings, YoloError, proposal_hash, transition};
use crate::audit::{self, Entry, Outcome};
use crate::clock::{Millis, rfc3339};
use crate::job_result::JobResult;
use crate::messages::{insert_to_all, sender};
use crate::redact::{Redacted, Redactor};

/// Stores why a job failed. The only writer of `proposals.failure`: it takes
/// [`Redacted`], so no failure text reaches the store unredacted.
pub fn record_failure(conn: &Connection, id: &str, why: &Redacted) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE proposals SET failure = ?1, lease_until = NULL WHERE id = ?2",
        params![why, id],
    )?;
    Ok(())
}

/// Stores a job's result (the serialized, redacted outcome) and, when it
/// ended as a failure, why. The only writer of `proposals.result`.
pub fn record_result(
    conn: &Connection,
    id: &str,
    result: &Redacted,
    failure: Option<&Redacted>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE proposals SET result = ?1, failure = ?2, lease_until = NULL WHERE id = ?3",
        params![result, failure, id],
    )?;
    Ok(())
}

/// A new proposal as the bridge stores it. The command and the reason are
/// agent text, so both are [`Redacted`]; a command in which the redactor
/// found a secret is refused before this point, so its redacted form is the
/// command itself and the hash over it still holds.
#[derive(Debug, Clone, Copy)]
pub struct NewProposal<'a> {
    pub id: &'a str,
    pub conversation_id: &'a str,
    pub session_id: &'a str,
    pub command: &'a Redacted,
    pub reason: Option<&'a Redacted>,
    pub params_json: &'a str,
    pub hash: &'a str,
}

/// Stores a proposal in state `proposed`. The only writer of `proposals`
/// rows; their state changes go through [`transition`].
pub fn insert_proposal(
    conn: &Connection,
    p: &NewProposal<'_>,
    now: Millis,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO proposals (id, conversation_id, session_id, command, reason, params, hash, state, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'proposed', ?8, ?8)",
    )?
    .execute(params![
        p.id,
        p.conversation_id,
        p.session_id,
        p.command,
        p.reason,
        p.params_json,
        p.hash,
        now
    ])?;
    Ok(())
}

/// A stored proposal as the operator and the runner see it.
#[derive(Debug, Clone, Serialize)]
pub struct Proposal {
    pub id: String,
    pub conversation_id: String,
    pub session_id: String,
    pub command: String,
    pub reason: Option<String>,
    pub params: ExecParams,
    pub params_json: String,
    pub hash: String,
    pub state: JobState,
    pub created_at: String,
    /// What the command did, once it ran; `None` before, or when the
    /// stored text is not a result at all.
    pub result: Option<JobResult>,
    pub failure: Option<String>,
}

const PROPOSAL_COLUMNS: &str = "id, conversation_id, session_id, command, reason, params, hash, state, created_at, result, failure";

fn read_proposal(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Proposal, String)> {
    let params_json: String = r.get(5)?;
    let state: String = r.get(7)?;
    let result: Option<String> = r.get(9)?;
    Ok((
        Proposal {
            id: r.get(0)?,
            conversation_id: r.get(1)?,
            session_id: r.get(2)?,
            command: r.get(3)?,
            reason: r.get(4)?,
            params: serde_json::from_str(&params_json)
                .unwrap_or_else(|_| ExecParams::from_settings(&Settings::placeholder(), 0)),
            params_json: params_json.clone(),
            hash: r.get(6)?,
            state: JobState::parse(&state).unwrap_or(JobState::Failed),
            created_at: rfc3339(r.get(8)?),
            result: result.and_then(|s| serde_json::from_str(&s).ok()),
            failure: r.get(10)?,
        },
        params_json,
    ))
}

pub fn load_proposal(conn: &Connection, id: &str) -> Result<Proposal, YoloError> {
    conn.query_row(
        &format!("SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE id = ?1"),
        [id],
        read_proposal,
    )
    .optional()?
    .map(|(p, _)| p)
    .ok_or_else(|| YoloError::NoProposal(id.to_owned()))
}

/// Proposals awaiting the operator (proposed or approved-not-executed).
pub fn pending(conn: &Connection, cid: Option<&str>) -> Result<Vec<Proposal>, YoloError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {PROPOSAL_COLUMNS} FROM proposals
         WHERE state IN ('proposed', 'approved') AND (?1 IS NULL OR conversation_id = ?1) ORDER BY created_at"
    ))?;
    let rows = stmt.query_map([cid], read_proposal)?;
    Ok(rows
        .map(|r| r.map(|(p, _)| p))
        .collect::<rusqlite::Result<_>>()?)
}

/// Re-derives the hash from what is stored now; a mismatch means someone
/// edited the proposal after it was made.
pub fn verify_integrity(p: &Proposal) -> Result<(), YoloError> {
    if proposal_hash(&p.command, &p.params_json) != p.hash {
        return Err(YoloError::Tampered(p.id.clone()));
    }
    Ok(())
}

/// Rejects a proposal: every participant is told, with the operator's
/// `reason` when one is given.
pub fn reject(
    conn: &mut Connection,
    redactor: &Redactor,
    id: &str,
    reason: Option<&str>,
    now: Millis,
) -> Result<(), YoloError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let p = load_proposal(&tx, id)?;
    transition(&tx, id, Event::Reject, now)?;
    insert_to_all(
        &tx,
        &p.conversation_id,
        sender::BRIDGE,
        "system",
        &redactor.redacted(&format!(
            "The operator rejected proposal {id} (`{}`).{}",
            p.command,
            reason.map(|r| format!(" Reason: {r}")).unwrap_or_default()
        )),
        now,
    )?;
    audit::append(
        &tx,
        redactor,
        now,
        Entry {
            conversation_id: Some(&p.conversation_id),
            session_id: None,
            action: "yolo.reject",
            outcome: Outcome::Ok,
            detail: serde_json::json!({ "proposal_id": id, "reason": reason }),
        },
    )?;
    tx.commit()?;
    Ok(())
}

/// The most recent jobs (proposals that were queued, whatever became of
/// them since), newest first.
pub fn recent_jobs(conn: &Connection, limit: u32) -> Result<Vec<Proposal>, YoloError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PROPOSAL_COLUMNS} FROM proposals
         WHERE state IN ('queued', 'running', 'done', 'failed') ORDER BY updated_at DESC LIMIT ?1"
    ))?;
    let rows = stmt.query_map([limit], read_proposal)?;
    Ok(rows
        .map(|r| r.map(|(p, _)| p))
        .collect::<rusqlite::Result<_>>()?)
}

/// Fails every job that has waited in the queue (since `execute_command`
/// queued it) for `ttl_ms` or longer, inside the caller's transaction:
/// audited as `job.expire`, both sessions told. Returns their ids.
pub fn expire_queued(
    tx: &Connection,
    redactor: &Redactor,
    ttl_ms: Millis,
    now: Millis,
) -> Result<Vec<String>, YoloError> {
    // `updated_at` is the moment of the last transition, which for a
    // queued job is the one into `queued`.
    let stale: Vec<(String, String, String, Millis)> = tx
        .prepare("SELECT id, conversation_id, session_id, updated_at FROM proposals WHERE state = 'queued' AND updated_at <= ?1 ORDER BY updated_at, id")?
        .query_map([now.saturating_sub(ttl_ms)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut ids = Vec::with_capacity(stale.len());
    for (id, cid, session, queued_at) in stale {
        transition(tx, &id, Event::Expire, now)?;
        let why = format!(
            "it waited {} s in the queue without a runner starting it (the limit is {} s); it was not run. Propose it again if it is still needed",
            (now - queued_at) / 1000,
            ttl_ms / 1000
        );
        record_failure(tx, &id, &redactor.redacted(&why))?;
        insert_to_all(
            tx,
            &cid,
            sender::RUNNER,
            "command_result",
            &redactor.redacted(&format!(
                "Command from session {session} (proposal {id}) failed: {why}"
            )),
            now,
        )?;
        audit::append(
            tx,
            redactor,
            now,
            Entry {
                conversation_id: Some(&cid),
                session_id: Some(&session),
                action: "job.expire",
                outcome: Outcome::Failed,
                detail: serde_json::json!({ "proposal_id": id, "reason": why, "queued_at": rfc3339(queued_at) }),
            },
        )?;
        ids.push(id);
    }
    Ok(ids)
}
