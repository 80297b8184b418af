//! The agents' side of YOLO: `propose_command` and `execute_command`.
//!
//! Proposing stores a command and tells the partner; it runs nothing.
//! Executing spends a single-use approval token and queues the job for the
//! runner, then waits for the runner's result. Both refuse unless the server
//! process was started with YOLO on *and* the operator enabled YOLO for this
//! conversation on a terminal.

use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::mcp::service::{Bridge, Caller, ToolError, internal};
use bridge_state::audit::{self, Entry, Outcome};
use bridge_state::auth;
use bridge_state::clock::Millis;
use bridge_state::messages::insert_to_others;
use bridge_state::store::StoreError;
use bridge_state::wake::BACKSTOP;
use bridge_state::yolo::{self, Event, ExecParams, JobState, YoloError};

/// `execute_command` waits at most this long for a result before returning
/// the job id; MCP clients time tool calls out at around a minute.
pub const MAX_RESULT_WAIT: Duration = Duration::from_secs(55);

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Proposed {
    pub proposal_id: String,
    /// "pending_approval", or "queued" when the operator approved exactly
    /// this command in advance.
    pub status: String,
    /// SHA-256 of the exact command and its execution parameters.
    pub command_sha256: String,
    pub mode: String,
    pub image: String,
    pub workspace: Option<String>,
    pub workspace_read_only: bool,
    pub timeout_seconds: u32,
    pub next_step: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Execution {
    pub proposal_id: String,
    /// Same as proposal_id: the job is the approved proposal.
    pub job_id: String,
    /// queued, running, done or failed.
    pub state: String,
    pub dry_run: bool,
    /// The command's own exit status. `null` while it has not finished, and
    /// also when it finished but its status is not known (killed at the
    /// timeout or output limit, or its sandbox's shell died first): then
    /// `exit_code_unknown_reason` says why. Never a made-up 0.
    pub exit_code: Option<i64>,
    /// Why `exit_code` is `null` for a finished command.
    pub exit_code_unknown_reason: Option<String>,
    pub duration_ms: Option<u64>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    /// Output was longer than the cap; head and tail were kept.
    pub truncated: bool,
    pub timed_out: bool,
    pub failure: Option<String>,
    pub message: String,
}

fn refused(e: YoloError) -> ToolError {
    match e {
        YoloError::Store(s) => s.into(),
        other => ToolError::Refused(other.to_string()),
    }
}

/// At most this many characters of a refused command go into its audit
/// row (with its length and digest), so a refusal repeated at the size
/// limit cannot make every row kilobytes long.
const COMMAND_EXCERPT_CHARS: usize = 256;

/// A refused command as its audit row keeps it: the first
/// [`COMMAND_EXCERPT_CHARS`] characters, and the whole command's length and
/// SHA-256 (the same digest an approval binds), so a longer one can still be
/// matched against what the agent sent.
fn excerpt(command: &str) -> serde_json::Value {
    let chars = command.chars().count();
    if chars <= COMMAND_EXCERPT_CHARS {
        return serde_json::json!(command);
    }
    let head: String = command.chars().take(COMMAND_EXCERPT_CHARS).collect();
    serde_json::json!({
        "head": head,
        "chars": chars,
        "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(command.as_bytes())),
    })
}

const BAD_APPROVAL: &str = "invalid, expired or already used approval token for this proposal; ask the operator to run `bridge yolo approve` again";

impl Bridge {
    pub async fn propose(
        &self,
        caller: Caller,
        command: String,
        timeout_secs: Option<u32>,
        reason: Option<String>,
    ) -> Result<Proposed, ToolError> {
        let Some(policy) = self.yolo_policy().cloned() else {
            return Err(ToolError::Refused(
                yolo::YoloError::OperatorEnvMissing.to_string(),
            ));
        };
        let this = self.clone();
        let out = self
            .db()
            .call(move |conn| {
                let now = this.now();
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let (cid, sid) = (caller.conversation_id.clone(), caller.session_id.clone());
                // An agent can repeat a refused proposal at will: itemized, then counted.
                let refuse = |tx: &Connection, why: String, detail: serde_json::Value| -> Result<ToolError, StoreError> {
                    this.audit_repeatable(tx, (&cid, &sid), "propose_command", now, ("yolo.propose", Outcome::Refused, detail))?;
                    Ok(ToolError::Refused(why))
                };
                if !this.authenticate(&tx, &caller, now, "propose_command")? {
                    tx.commit()?;
                    return Ok(Err(ToolError::Unauthorized));
                }
                let Some(en) = yolo::active_enablement(&tx, &cid, now).map_err(yolo_store)? else {
                    let e = refuse(&tx, YoloError::NotEnabled(cid.clone()).to_string(), serde_json::json!({"reason": "not enabled"}))?;
                    tx.commit()?;
                    return Ok(Err(e));
                };
                let timeout = timeout_secs.unwrap_or(en.settings.timeout_secs);
                if timeout == 0 || timeout > en.settings.timeout_secs {
                    return Ok(Err(ToolError::invalid(
                        "timeout_seconds",
                        format!("must be between 1 and the operator's limit of {} s (got {timeout})", en.settings.timeout_secs),
                    )));
                }
                let (clean, reason, classes) = this.redactor().redacted_proposal(&command, reason.as_deref());
                if !classes.is_empty() {
                    let e = refuse(
                        &tx,
                        format!(
                            "the command contains what looks like a secret ({}); secrets must not pass through the bridge. Put them in the workspace or the image instead",
                            classes.join(", ")
                        ),
                        serde_json::json!({"reason": "secret in command", "classes": classes, "command": excerpt(clean.as_str())}),
                    )?;
                    tx.commit()?;
                    return Ok(Err(e));
                }
                if let Err(ex) = this.take_quota(&tx, &cid, &sid, "propose", now)? {
                    let e = refuse(&tx, ex.to_string(), serde_json::json!({"reason": "rate limited"}))?;
                    tx.commit()?;
                    return Ok(Err(e));
                }
                if let bridge_state::policy::Verdict::Blocked { rule, reason } = policy.check(en.settings.mode, &command) {
                    let e = refuse(
                        &tx,
                        format!("blocked by policy rule `{rule}` in {} mode: {reason}", en.settings.mode.as_str()),
                        serde_json::json!({"reason": "policy", "rule": rule, "command": excerpt(clean.as_str())}),
                    )?;
                    tx.commit()?;
                    return Ok(Err(e));
                }
                let params = ExecParams::from_settings(&en.settings, timeout);
                let params_json = serde_json::to_string(&params).map_err(|e| StoreError::Join(e.to_string()))?;
                let hash = yolo::proposal_hash(&command, &params_json);
                let id = format!("prop_{}", auth::random_hex(8).map_err(|e| StoreError::Join(e.to_string()))?);
                // No secret was found above, so the redacted command is the
                // command itself, byte for byte (the hash covers it).
                yolo::insert_proposal(&tx, &yolo::NewProposal {
                    id: &id,
                    conversation_id: &cid,
                    session_id: &sid,
                    command: &clean,
                    reason: reason.as_ref(),
                    params_json: &params_json,
                    hash: &hash,
                }, now)?;
                let ws = params.workspace.as_ref().map(|w| w.display().to_string());
                let note = format!(
                    "Session {sid} proposes to run in a sandbox ({} mode, image {}, workspace {}):\n\n    {}\n\nReason: {}\nProposal {id}. The operator reviews it with `bridge yolo approve {id}`.",
                    params.mode.as_str(),
                    params.image,
                    ws.as_deref().map(|w| format!("{w} {}", if params.workspace_rw { "read-write" } else { "read-only" })).unwrap_or_else(|| "none".into()),
                    // Every line indented, so none passes for the note's own.
                    command.replace('\n', "\n    "),
                    reason.as_ref().map_or("(none given)", |r| r.as_str()),
                );
                let note = this.redactor().redacted(&note);
                let no_files = bridge_state::redact::Redacted::empty_list();
                insert_to_others(&tx, &cid, &sid, "proposal", Some("proposal"), &note, &no_files, false, now)?;
                audit::append(&tx, this.redactor(), now, Entry {
                    conversation_id: Some(&cid),
                    session_id: Some(&sid),
                    action: "yolo.propose",
                    outcome: Outcome::Ok,
                    detail: serde_json::json!({"proposal_id": id, "command": command, "hash": hash, "params": params}),
                })?;
                // The operator's standing rule for exactly this command, if
                // any: it skips only the human wait.
                let stored = yolo::load_proposal(&tx, &id).map_err(yolo_store)?;
                let by_rule = yolo::run_by_rule(&tx, this.secret(), this.redactor(), &stored, now)
                    .map_err(yolo_store)?
                    .is_some();
                tx.commit()?;
                if by_rule {
                    return Ok(Ok(Proposed {
                        next_step: "The operator approved exactly this command in advance, so it is queued: its result arrives to every participant as a command_result message. Wait for it with check_messages and wait_seconds.".into(),
                        proposal_id: id,
                        status: "queued".into(),
                        command_sha256: hash,
                        mode: params.mode.as_str().into(),
                        image: params.image,
                        workspace: ws,
                        workspace_read_only: !params.workspace_rw,
                        timeout_seconds: timeout,
                    }));
                }
                Ok(Ok(Proposed {
                    next_step: format!("The operator reviews {id} (`bridge console`, or `bridge yolo approve {id}`). If they run it, its result arrives to every participant as a command_result message: wait for it with check_messages and wait_seconds. If they give you an approval token instead, call execute_command with proposal_id {id} and that token."),
                    proposal_id: id,
                    status: "pending_approval".into(),
                    command_sha256: hash,
                    mode: params.mode.as_str().into(),
                    image: params.image,
                    workspace: ws,
                    workspace_read_only: !params.workspace_rw,
                    timeout_seconds: timeout,
                }))
            })
            .await??;
        self.wake().notify();
        Ok(out)
    }

    pub async fn execute(
        &self,
        caller: Caller,
        proposal_id: String,
        token: String,
        dry_run: bool,
        cancel: CancellationToken,
    ) -> Result<Execution, ToolError> {
        let Some(policy) = self.yolo_policy().cloned() else {
            return Err(ToolError::Refused(
                yolo::YoloError::OperatorEnvMissing.to_string(),
            ));
        };
        let this = self.clone();
        let pid = proposal_id.clone();
        let timeout_secs = self
            .db()
            .call(move |conn| {
                let now = this.now();
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let (cid, sid) = (caller.conversation_id.clone(), caller.session_id.clone());
                if !this.authenticate(&tx, &caller, now, "execute_command")? {
                    tx.commit()?;
                    return Ok(Err(ToolError::Unauthorized));
                }
                let checked = check_approval(&this, &tx, &policy, &caller, &pid, &token, now);
                let (why, public) = match checked {
                    Ok(timeout) if dry_run => {
                        // Spends nothing, so an agent can repeat it at will.
                        let detail = serde_json::json!({"proposal_id": pid});
                        this.audit_repeatable(
                            &tx,
                            (&cid, &sid),
                            "execute_command",
                            now,
                            ("yolo.execute.dry_run", Outcome::Ok, detail),
                        )?;
                        tx.commit()?;
                        return Ok(Ok(timeout));
                    }
                    Ok(timeout) => {
                        yolo::spend_approval(&tx, &this.secret().hash_token(&token), now)?;
                        yolo::transition(&tx, &pid, Event::Execute, now).map_err(yolo_store)?;
                        audit::append(
                            &tx,
                            this.redactor(),
                            now,
                            Entry {
                                conversation_id: Some(&cid),
                                session_id: Some(&sid),
                                action: "yolo.execute",
                                outcome: Outcome::Ok,
                                detail: serde_json::json!({"proposal_id": pid}),
                            },
                        )?;
                        tx.commit()?;
                        return Ok(Ok(timeout));
                    }
                    Err(Check::Refused(why, public)) => (why, public),
                    Err(Check::Store(e)) => return Err(e),
                };
                // A wrong token can be presented again and again: itemized, then counted.
                let detail = serde_json::json!({"proposal_id": pid, "reason": why});
                this.audit_repeatable(
                    &tx,
                    (&cid, &sid),
                    "execute_command",
                    now,
                    ("yolo.execute", Outcome::Refused, detail),
                )?;
                tx.commit()?;
                Ok(Err(ToolError::Refused(public)))
            })
            .await??;
        if dry_run {
            return Ok(Execution {
                job_id: proposal_id.clone(),
                proposal_id,
                state: "approved".into(),
                dry_run: true,
                message: "Dry run: the token is valid for this proposal and was not spent.".into(),
                ..Default::default()
            });
        }
        self.wake().notify();
        let wait = Duration::from_secs(u64::from(timeout_secs) + 15).min(MAX_RESULT_WAIT);
        self.await_result(proposal_id, wait, cancel).await
    }

    /// Waits for the runner to finish a job, or returns its current state.
    pub async fn await_result(
        &self,
        id: String,
        wait: Duration,
        cancel: CancellationToken,
    ) -> Result<Execution, ToolError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut changes = self.wake().subscribe();
        loop {
            changes.borrow_and_update();
            let id2 = id.clone();
            let p = self
                .db()
                .call(move |conn| {
                    yolo::load_proposal(conn, &id2).map_err(|e| StoreError::Join(e.to_string()))
                })
                .await
                .map_err(|e| internal(e.to_string()))?;
            let now = tokio::time::Instant::now();
            if p.state.is_final() || now >= deadline || cancel.is_cancelled() {
                return Ok(execution_of(&p));
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep(deadline.saturating_duration_since(now).min(BACKSTOP)) => {}
                _ = cancel.cancelled() => {}
            }
        }
    }
}

enum Check {
    /// (what the audit log records, what the agent is told)
    Refused(String, String),
    Store(StoreError),
}

impl From<rusqlite::Error> for Check {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

impl From<YoloError> for Check {
    fn from(e: YoloError) -> Self {
        match e {
            YoloError::Store(s) => Self::Store(s),
            other => {
                let s = other.to_string();
                Self::Refused(s.clone(), s)
            }
        }
    }
}

/// Every condition for running a proposal. Returns its timeout.
fn check_approval(
    bridge: &Bridge,
    tx: &Connection,
    policy: &bridge_state::policy::Policy,
    caller: &Caller,
    pid: &str,
    token: &str,
    now: Millis,
) -> Result<u32, Check> {
    let cid = caller.conversation_id.as_str();
    let bad = |why: &str| Check::Refused(why.to_owned(), BAD_APPROVAL.to_owned());
    let p = yolo::load_proposal(tx, pid)?;
    if p.conversation_id != cid {
        // Same answer as a missing proposal: no cross-conversation oracle.
        return Err(YoloError::NoProposal(pid.to_owned()).into());
    }
    // Only the proposer runs its proposal; the token stays unspent, so the
    // proposer can still use it.
    if p.session_id != caller.session_id {
        let why = format!(
            "only the session that proposed {pid} (session {:?}) may execute it",
            p.session_id
        );
        return Err(Check::Refused(why.clone(), why));
    }
    let approval = yolo::find_approval(tx, &bridge.secret().hash_token(token))?;
    let Some(yolo::Approval {
        proposal_id: for_id,
        proposal_hash: bound_hash,
        expires_at: expires,
        used_at: used,
    }) = approval
    else {
        return Err(bad("unknown approval token"));
    };
    if for_id != pid {
        return Err(bad("approval token belongs to another proposal"));
    }
    if used.is_some() {
        return Err(bad("approval token already used"));
    }
    if expires <= now {
        return Err(bad("approval token expired"));
    }
    if yolo::verify_integrity(&p).is_err() || bound_hash != p.hash {
        return Err(Check::Refused(
            "proposal changed after approval (hash mismatch)".into(),
            YoloError::Tampered(pid.to_owned()).to_string(),
        ));
    }
    if p.state != JobState::Approved {
        return Err(bad(&format!("proposal is {}", p.state.as_str())));
    }
    let en = yolo::active_enablement(tx, cid, now)?
        .ok_or_else(|| YoloError::NotEnabled(cid.to_owned()))?;
    if !yolo::settings_mismatch(&en.settings, &p.params).is_empty() {
        return Err(YoloError::SettingsChanged.into());
    }
    if let bridge_state::policy::Verdict::Blocked { rule, reason } =
        policy.check(en.settings.mode, &p.command)
    {
        let s = format!("blocked by policy rule `{rule}`: {reason}");
        return Err(Check::Refused(s.clone(), s));
    }
    Ok(p.params.timeout_secs)
}

fn yolo_store(e: YoloError) -> StoreError {
    match e {
        YoloError::Store(s) => s,
        other => StoreError::Join(other.to_string()),
    }
}

/// The agent's view of a job.
pub fn execution_of(p: &yolo::Proposal) -> Execution {
    let r = p.result.as_ref();
    let exit_code = r.and_then(|r| r.exit_code);
    let unknown = r.and_then(|r| r.exit_code_unknown_reason.clone());
    let timed_out = r.is_some_and(|r| r.timed_out);
    let message = match p.state {
        JobState::Done => match (exit_code, &unknown) {
            (Some(code), _) => format!("Exited with code {code}."),
            (None, why) => format!(
                "Finished; its exit status is unknown: {}.",
                why.as_deref().unwrap_or("no reason recorded")
            ),
        },
        JobState::Failed => format!("Failed: {}", p.failure.as_deref().unwrap_or("no reason recorded")),
        JobState::Queued => "Queued: no runner has picked it up yet; the result will arrive as a command_result message.".into(),
        JobState::Running => "Still running; the result will arrive as a command_result message.".into(),
        other => format!("The proposal is {}.", other.as_str()),
    };
    Execution {
        proposal_id: p.id.clone(),
        job_id: p.id.clone(),
        state: p.state.as_str().into(),
        dry_run: false,
        exit_code,
        exit_code_unknown_reason: unknown,
        duration_ms: r.map(|r| r.duration_ms),
        stdout: r.map(|r| r.stdout.clone()),
        stderr: r.map(|r| r.stderr.clone()),
        truncated: r.is_some_and(|r| r.truncated),
        timed_out,
        failure: p.failure.clone(),
        message,
    }
}

/// Turns a YOLO error from the operator side into a tool error.
pub fn tool_error(e: YoloError) -> ToolError {
    refused(e)
}
