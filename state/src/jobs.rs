//! The job repository, the runner's side of `proposals`: claim a queued job under a lease,
//! record its container, finish or fail it, and find jobs whose runner died.
//!
//! Execution is at most once: a job is claimed (queued → running) in a
//! committed transaction *before* its command starts, and nothing ever moves
//! a job back to queued. A runner that dies mid-job leaves it running with a
//! lease nobody renews; whoever sees the lease expire fails it with a reason.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::audit::{self, Entry, Outcome as AuditOutcome};
use crate::clock::Millis;
use crate::job_result::JobResult;
use crate::messages::{insert_to_all, sender};
use crate::policy::{Policy, Verdict};
use crate::redact::{Redacted, Redactor};
use crate::yolo::{self, Event, JobState, Proposal, YoloError};

/// A lease is renewed every LEASE_MS / 3 while the job runs.
pub const LEASE_MS: Millis = 15_000;

fn audit_job(
    conn: &Connection,
    red: &Redactor,
    now: Millis,
    p: &Proposal,
    action: &str,
    outcome: AuditOutcome,
    detail: serde_json::Value,
) -> rusqlite::Result<i64> {
    audit::append(
        conn,
        red,
        now,
        Entry {
            conversation_id: Some(&p.conversation_id),
            session_id: Some(&p.session_id),
            action,
            outcome,
            detail,
        },
    )
}

/// What a queued job must still satisfy when a runner claims it.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRules<'a> {
    /// The operator's current command policy.
    pub policy: &'a Policy,
    /// Jobs queued longer than this are failed, never run.
    pub queue_ttl_ms: Millis,
    /// Whether this runner can place a job that mounts a workspace now.
    pub workspaces: Workspaces,
}

/// Whether a runner can take a job that bind-mounts a workspace: only an
/// engine sharing the runner's filesystem (`local = true`) may mount one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workspaces {
    /// A local engine has a free slot.
    Accepted,
    /// Its local engines are busy or down: such jobs stay queued.
    Busy,
    /// It has no local engine at all: such jobs are failed with the reason.
    NoLocalEngine,
}

/// Why a workspace job was refused by a runner without a local engine.
pub const NO_LOCAL_ENGINE: &str = "the runner has no local Docker engine, and a workspace can only be bind-mounted by an engine on the runner's host; it was not run. Give the runner an engine with `local = true` (its default unix socket is one), or disable YOLO's workspace";

/// Claims the oldest queued job, or returns `None`. In the same transaction
/// it first fails every job that waited longer than the queue TTL, then
/// re-checks the candidate against what holds *now*: its stored command
/// still matches its hash, its conversation still has an unexpired
/// enablement whose settings give exactly the parameters the job was
/// approved with, and the current policy still allows the command in the
/// current mode. A job that fails any check is failed with the reason
/// (both sessions told, audited) instead of being run.
pub fn claim(
    conn: &mut Connection,
    red: &Redactor,
    rules: ClaimRules<'_>,
    runner_id: &str,
    now: Millis,
) -> Result<Option<Proposal>, YoloError> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        yolo::expire_queued(&tx, red, rules.queue_ttl_ms, now)?;
        let id: Option<String> = tx
            .query_row(
                "SELECT id FROM proposals WHERE state = 'queued'
                   AND (?1 OR json_extract(params, '$.workspace') IS NULL)
                 ORDER BY updated_at, id LIMIT 1",
                [rules.workspaces != Workspaces::Busy],
                |r| r.get(0),
            )
            .optional()?;
        let Some(id) = id else {
            // Commit the expiries, if any.
            tx.commit()?;
            return Ok(None);
        };
        let p = yolo::load_proposal(&tx, &id)?;
        let no_engine = (p.params.workspace.is_some()
            && rules.workspaces == Workspaces::NoLocalEngine)
            .then(|| NO_LOCAL_ENGINE.to_owned());
        if let Some(why) = no_engine.or(claim_refusal(&tx, rules.policy, &p, now)?) {
            fail_in(&tx, red, &p, &red.redacted(&why), now)?;
            tx.commit()?;
            continue;
        }
        yolo::transition(&tx, &id, Event::Claim, now)?;
        tx.execute(
            "UPDATE proposals SET runner_id = ?1, lease_until = ?2 WHERE id = ?3",
            params![runner_id, now + LEASE_MS, id],
        )?;
        audit_job(
            &tx,
            red,
            now,
            &p,
            "job.claim",
            AuditOutcome::Ok,
            serde_json::json!({"proposal_id": id, "runner": runner_id}),
        )?;
        tx.commit()?;
        return Ok(Some(p));
    }
}

/// Why `p` must not run now, or `None` when it may.
fn claim_refusal(
    tx: &Connection,
    policy: &Policy,
    p: &Proposal,
    now: Millis,
) -> Result<Option<String>, YoloError> {
    let en = match start_refusal(tx, p, now)? {
        Ok(en) => en,
        Err(why) => return Ok(Some(why)),
    };
    if let Verdict::Blocked { rule, reason } = policy.check(en.settings.mode, &p.command) {
        return Ok(Some(format!(
            "the current command policy blocks it (rule `{rule}` in {} mode: {reason}); it was not run",
            en.settings.mode.as_str()
        )));
    }
    Ok(None)
}

/// Why `p` must not run now, the policy aside (the claim checked it a
/// moment ago): its bytes, its conversation's enablement and settings,
/// and its workspace. Checked at the claim and again when its start is
/// recorded, right before the command is handed over. The enablement it
/// read when the job may run.
fn start_refusal(
    tx: &Connection,
    p: &Proposal,
    now: Millis,
) -> Result<Result<yolo::Enablement, String>, YoloError> {
    if yolo::verify_integrity(p).is_err() {
        return Ok(Err(
            "the stored command no longer matches the approved hash; it was not run".into(),
        ));
    }
    let Some(en) = yolo::active_enablement(tx, &p.conversation_id, now)? else {
        return Ok(Err(
            "YOLO was disabled or expired before the job started; it was not run".into(),
        ));
    };
    let changed = yolo::settings_mismatch(&en.settings, &p.params);
    if !changed.is_empty() {
        return Ok(Err(format!(
            "the conversation's YOLO settings changed after approval ({} differ: now {} mode, workspace {}); it was not run. Propose it again under the current settings",
            changed.join(", "),
            en.settings.mode.as_str(),
            match (&en.settings.workspace, en.settings.workspace_rw) {
                (None, _) => "none".to_owned(),
                (Some(w), rw) => format!(
                    "{} {}",
                    w.display(),
                    if rw { "read-write" } else { "read-only" }
                ),
            },
        )));
    }
    // Enabling refuses nested workspaces and one holding the database; a
    // database from before those checks (or edited by hand, or moved) may
    // still hold one. One query, and none for a job without a workspace.
    if en.settings.workspace.is_some() {
        let others = yolo::active_enablements(tx, now)?;
        if let Some(why) = yolo::workspace_problem(tx, &p.conversation_id, &en.settings, &others) {
            return Ok(Err(format!(
                "its workspace is not usable: {why}; it was not run"
            )));
        }
    }
    Ok(Ok(en))
}

/// Fails every queued job that waited longer than `queue_ttl_ms`, in its
/// own transaction (the sweep does this even when every slot is busy and
/// nothing is being claimed).
pub fn expire_queued(
    conn: &mut Connection,
    red: &Redactor,
    queue_ttl_ms: Millis,
    now: Millis,
) -> Result<(), YoloError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    yolo::expire_queued(&tx, red, queue_ttl_ms, now)?;
    tx.commit()?;
    Ok(())
}

/// Where a job's command is about to run.
#[derive(Debug, Clone, Copy)]
pub struct Started<'a> {
    pub container: &'a str,
    pub image: &'a str,
    /// The runner's name for the Docker engine.
    pub engine: &'a str,
}

/// Records which container runs the job (for the reaper and the audit log),
/// or says why the job must not run after all (`Some(reason)`, nothing
/// recorded; the caller fails the job with it).
pub fn record_start(
    conn: &mut Connection,
    red: &Redactor,
    p: &Proposal,
    started: Started<'_>,
    now: Millis,
) -> Result<Option<String>, YoloError> {
    let Started {
        container,
        image,
        engine,
    } = started;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Taking a container from the pool takes a moment after the claim: the
    // operator may have disabled YOLO or changed its settings since. This
    // transaction is the last step before the command is handed over.
    let state: Option<String> = tx
        .query_row("SELECT state FROM proposals WHERE id = ?1", [&p.id], |r| {
            r.get(0)
        })
        .optional()?;
    if state.as_deref() != Some(JobState::Running.as_str()) {
        return Ok(Some(format!(
            "the job was {} before its command was handed over; it was not run",
            state.as_deref().unwrap_or("deleted")
        )));
    }
    if let Err(why) = start_refusal(&tx, p, now)? {
        return Ok(Some(why));
    }
    tx.execute(
        "UPDATE proposals SET container_id = ?1 WHERE id = ?2",
        params![container, p.id],
    )?;
    audit_job(
        &tx,
        red,
        now,
        p,
        "job.start",
        AuditOutcome::Ok,
        serde_json::json!({"proposal_id": p.id, "container_id": container, "image_id": image, "engine": engine}),
    )?;
    tx.commit()?;
    Ok(None)
}

/// Extends the leases of this runner's running jobs and its heartbeat.
pub fn renew(conn: &mut Connection, runner_id: &str, now: Millis) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "UPDATE proposals SET lease_until = ?1 WHERE runner_id = ?2 AND state = 'running'",
        params![now + LEASE_MS, runner_id],
    )?;
    tx.execute(
        "UPDATE runners SET heartbeat_at = ?1 WHERE id = ?2",
        params![now, runner_id],
    )?;
    tx.commit()
}

pub fn register(conn: &mut Connection, runner_id: &str, now: Millis) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO runners (id, pid, started_at, heartbeat_at) VALUES (?1, ?2, ?3, ?3)",
        params![runner_id, std::process::id(), now],
    )?;
    Ok(())
}

pub fn deregister(conn: &mut Connection, runner_id: &str) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM runners WHERE id = ?1", [runner_id])?;
    Ok(())
}

/// Approved or queued jobs per conversation: commands the operator has
/// let through that will want a container soon (the runner keeps that many
/// warm, up to its limit).
pub fn awaiting_run(conn: &Connection) -> rusqlite::Result<HashMap<String, usize>> {
    conn.prepare_cached(
        "SELECT conversation_id, count(*) FROM proposals
         WHERE state IN ('approved', 'queued') GROUP BY conversation_id",
    )?
    .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as usize)))?
    .collect()
}

/// Runner ids whose heartbeat is fresh (they may own containers).
pub fn live_runners(conn: &Connection, now: Millis) -> rusqlite::Result<Vec<String>> {
    conn.prepare("SELECT id FROM runners WHERE heartbeat_at > ?1")?
        .query_map([now - LEASE_MS], |r| r.get(0))?
        .collect()
}

/// Stores the (redacted) result, tells both sessions, audits. Only the
/// runner holding the job may finish it.
pub fn finish(
    conn: &mut Connection,
    red: &Redactor,
    runner_id: &str,
    p: &Proposal,
    o: &JobResult,
    now: Millis,
) -> Result<(), YoloError> {
    let mut o = o.clone();
    let (out, out_classes) = red.redact_report(&o.stdout);
    let (err, err_classes) = red.redact_report(&o.stderr);
    o.stdout = out.into_owned();
    o.stderr = err.into_owned();
    let mut classes = [o.redacted_classes.clone(), out_classes, err_classes].concat();
    classes.sort();
    classes.dedup();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let owner: Option<String> = tx.query_row(
        "SELECT runner_id FROM proposals WHERE id = ?1",
        [&p.id],
        |r| r.get(0),
    )?;
    if owner.as_deref() != Some(runner_id) {
        return Err(YoloError::Corrupt(format!(
            "job {} is not held by runner {runner_id}",
            p.id
        )));
    }
    let failed = o.cancelled;
    let event = if failed { Event::Fail } else { Event::Finish };
    yolo::transition(&tx, &p.id, event, now)?;
    let result = serde_json::to_value(&o).map_err(|e| YoloError::Corrupt(e.to_string()))?;
    let (result, _) = red.redacted_json(result);
    let failure =
        failed.then(|| red.redacted("stopped: YOLO was disabled or the runner shut down"));
    yolo::record_result(&tx, &p.id, &result, failure.as_ref())?;
    let body = crate::job_result::message(red, p, &o);
    insert_to_all(
        &tx,
        &p.conversation_id,
        sender::RUNNER,
        "command_result",
        &body,
        now,
    )?;
    audit_job(
        &tx,
        red,
        now,
        p,
        "job.finish",
        if failed {
            AuditOutcome::Failed
        } else {
            AuditOutcome::Ok
        },
        serde_json::json!({
            "proposal_id": p.id, "exit_code": o.exit_code, "exit_code_unknown_reason": o.exit_code_unknown_reason, "duration_ms": o.duration_ms,
            "stdout_bytes": o.stdout_bytes, "stderr_bytes": o.stderr_bytes, "truncated": o.truncated,
            "timed_out": o.timed_out, "output_limit_hit": o.output_limit_hit, "cancelled": o.cancelled,
            "container_id": o.container_id, "redacted_classes": classes,
        }),
    )?;
    tx.commit()?;
    Ok(())
}

fn fail_in(
    tx: &Connection,
    red: &Redactor,
    p: &Proposal,
    why: &Redacted,
    now: Millis,
) -> Result<(), YoloError> {
    yolo::transition(tx, &p.id, Event::Fail, now)?;
    yolo::record_failure(tx, &p.id, why)?;
    insert_to_all(
        tx,
        &p.conversation_id,
        sender::RUNNER,
        "command_result",
        &red.redacted(&format!(
            "Command from session {} (proposal {}) failed: {why}\n\n{}",
            p.session_id,
            p.id,
            crate::job_result::indented(&p.command)
        )),
        now,
    )?;
    audit_job(
        tx,
        red,
        now,
        p,
        "job.fail",
        AuditOutcome::Failed,
        serde_json::json!({"proposal_id": p.id, "reason": why}),
    )?;
    Ok(())
}

/// Fails a job that could not run (image missing, engine error).
pub fn fail(
    conn: &mut Connection,
    red: &Redactor,
    p: &Proposal,
    why: &Redacted,
    now: Millis,
) -> Result<(), YoloError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    fail_in(&tx, red, p, why, now)?;
    tx.commit()?;
    Ok(())
}

/// Fails every running job whose lease expired (its runner died) and returns
/// their containers for removal. Never re-queues: at most once.
pub fn fail_abandoned(
    conn: &mut Connection,
    red: &Redactor,
    now: Millis,
) -> Result<Vec<String>, YoloError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let stale: Vec<(String, Option<String>)> = tx
        .prepare("SELECT id, container_id FROM proposals WHERE state = 'running' AND (lease_until IS NULL OR lease_until < ?1)")?
        .query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut containers = Vec::new();
    for (id, container) in stale {
        let p = yolo::load_proposal(&tx, &id)?;
        let why = red.redacted(
            "the runner stopped while the command was running (crash or kill); its container was removed and the command was not re-run",
        );
        fail_in(&tx, red, &p, &why, now)?;
        containers.extend(container);
    }
    tx.commit()?;
    Ok(containers)
}

/// Containers that running jobs still own.
pub fn owned_containers(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    conn.prepare(
        "SELECT container_id FROM proposals WHERE state = 'running' AND container_id IS NOT NULL",
    )?
    .query_map([], |r| r.get(0))?
    .collect()
}

#[cfg(test)]
#[path = "jobs_tests.rs"]
mod tests;
