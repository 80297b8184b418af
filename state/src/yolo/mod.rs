//! YOLO mode's data and rules: what the operator enabled, the lifecycle of a
//! proposed command, and single-use approval tokens bound to one command.
//!
//! The bridge stays proposal-only. It validates, stores and authorizes; the
//! separate runner (its own crate and process) is the only thing that causes
//! a command to execute. Every state change of a proposal goes through
//! [`JobState::next`], the one place where transitions are defined.

use std::path::PathBuf;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::{self, Entry, Outcome};
use crate::auth::{self, ServerSecret};
use crate::clock::{Millis, rfc3339};
use crate::job_result::JobResult;
use crate::messages::{insert_to_all, sender};
use crate::policy::Mode;
use crate::redact::{Redacted, Redactor};
use crate::store::StoreError;

pub const DEFAULT_IMAGE: &str = "mcp-bridge-sandbox:latest";
pub const DEFAULT_TIMEOUT_SECS: u32 = 30;
pub const MAX_TIMEOUT_SECS: u32 = 3600;
pub const DEFAULT_APPROVAL_TTL_SECS: u32 = 300;
pub const MAX_APPROVAL_TTL_SECS: u32 = 3600;
pub const MAX_COMMAND_BYTES: usize = 8 * 1024;
pub const DEFAULT_ENABLE_FOR_SECS: u64 = 3600;
/// How long an executed job may wait for a runner before it is failed
/// instead of run: settings the operator approved ten minutes ago are not
/// necessarily the ones they would approve now.
pub const DEFAULT_QUEUE_TTL_SECS: u64 = 600;

/// Where a proposed command is in its life. Persisted as its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for the operator.
    Proposed,
    /// The operator issued an approval token; waiting for `execute_command`.
    Approved,
    /// The token was spent; waiting for a runner.
    Queued,
    /// A runner claimed it (under a lease) and is executing it.
    Running,
    /// Ran to completion (any exit code).
    Done,
    /// Could not run or did not finish (runner lost, disabled or re-enabled,
    /// settings or policy changed before the claim, waited too long in the
    /// queue).
    Failed,
    /// The operator said no.
    Rejected,
    /// Never approved or executed before YOLO was disabled or expired.
    Expired,
}

/// What can happen to a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Approve,
    Reject,
    Expire,
    Execute,
    Claim,
    Finish,
    Fail,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Approved => "approved",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Done | Self::Failed | Self::Rejected | Self::Expired
        )
    }

    /// The transition table. Anything not listed is refused, in particular:
    /// nothing leaves a final state, and nothing goes back to `Queued`, so a
    /// job can never run twice.
    pub fn next(self, event: Event) -> Option<Self> {
        use Event::*;
        use JobState::*;
        Some(match (self, event) {
            (Proposed | Approved, Approve) => Approved,
            (Proposed | Approved, Reject) => Rejected,
            (Proposed | Approved, Expire) => Expired,
            (Approved, Execute) => Queued,
            (Queued, Claim) => Running,
            (Running, Finish) => Done,
            (Queued | Running, Fail) => Failed,
            // A job that waited longer than the queue TTL never runs: it
            // fails with the reason, so its token stays spent.
            (Queued, Expire) => Failed,
            _ => return None,
        })
    }
}

/// Applies `event` to a proposal inside the caller's transaction, guarded
/// on the state it was read in, so two processes cannot both move it.
pub fn transition(
    conn: &Connection,
    id: &str,
    event: Event,
    now: Millis,
) -> Result<JobState, YoloError> {
    let current: Option<String> = conn
        .query_row("SELECT state FROM proposals WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    let current = current.ok_or_else(|| YoloError::NoProposal(id.to_owned()))?;
    let from = JobState::parse(&current).ok_or_else(|| {
        YoloError::Corrupt(format!("proposal {id} has unknown state `{current}`"))
    })?;
    let to = from.next(event).ok_or(YoloError::BadTransition {
        id: id.to_owned(),
        from,
        event,
    })?;
    let n = conn.execute(
        "UPDATE proposals SET state = ?1, updated_at = ?2 WHERE id = ?3 AND state = ?4",
        params![to.as_str(), now, id, from.as_str()],
    )?;
    if n != 1 {
        return Err(YoloError::BadTransition {
            id: id.to_owned(),
            from,
            event,
        });
    }
    Ok(to)
}

#[derive(Debug, thiserror::Error)]
pub enum YoloError {
    #[error(
        "YOLO mode is off: set YOLO_MODE=1 in the operator's environment to use `bridge yolo` (agents cannot turn it on)"
    )]
    OperatorEnvMissing,
    #[error("no conversation `{0}`; `bridge list` shows the existing ones")]
    NoConversation(String),
    #[error("conversation `{0}` has expired; YOLO can only be enabled for a live conversation")]
    ConversationExpired(String),
    #[error("no proposal `{0}`; `bridge yolo pending` lists the ones awaiting approval")]
    NoProposal(String),
    #[error("proposal {id} is {from:?} and cannot take {event:?}")]
    BadTransition {
        id: String,
        from: JobState,
        event: Event,
    },
    #[error(
        "YOLO is not enabled for conversation {0}, or its enablement expired; the operator runs `bridge yolo enable {0}` on a terminal"
    )]
    NotEnabled(String),
    #[error(
        "the conversation's YOLO settings changed after this command was proposed; the agent must propose it again"
    )]
    SettingsChanged,
    #[error("proposal {0} changed after it was shown; review it again")]
    Tampered(String),
    #[error("workspace {path} is not usable: {problem}")]
    Workspace { path: PathBuf, problem: String },
    #[error("{0}")]
    Invalid(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for YoloError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Sandbox resource limits. Part of [`ExecParams`], so an approval binds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub memory_bytes: i64,
    pub nano_cpus: i64,
    pub pids: i64,
    pub tmpfs_bytes: i64,
    pub output_cap_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 << 20,
            nano_cpus: 1_000_000_000,
            pids: 128,
            tmpfs_bytes: 64 << 20,
            output_cap_bytes: 1 << 20,
        }
    }
}

/// What the operator enabled for a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub mode: Mode,
    /// Absolute host path, bind-mounted at /workspace.
    pub workspace: Option<PathBuf>,
    pub workspace_rw: bool,
    pub image: String,
    /// e.g. `runsc` (gVisor); the engine's default runtime when absent.
    pub runtime: Option<String>,
    /// The default and the maximum per command.
    pub timeout_secs: u32,
    pub limits: Limits,
}

/// Everything that decides how one command runs. Hashed together with the
/// command; the approval token is bound to that hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecParams {
    pub mode: Mode,
    pub image: String,
    pub workspace: Option<PathBuf>,
    pub workspace_rw: bool,
    pub runtime: Option<String>,
    pub timeout_secs: u32,
    pub limits: Limits,
}

impl ExecParams {
    pub fn from_settings(s: &Settings, timeout_secs: u32) -> Self {
        Self {
            mode: s.mode,
            image: s.image.clone(),
            workspace: s.workspace.clone(),
            workspace_rw: s.workspace_rw,
            runtime: s.runtime.clone(),
            timeout_secs,
            limits: s.limits.clone(),
        }
    }
}

/// SHA-256 over the exact command and its canonical parameters.
pub fn proposal_hash(command: &str, params_json: &str) -> String {
    let mut h = Sha256::new();
    h.update(command.as_bytes());
    h.update([0u8]);
    h.update(params_json.as_bytes());
    hex::encode(h.finalize())
}

#[derive(Debug, Clone, Serialize)]
pub struct Enablement {
    pub conversation_id: String,
    pub settings: Settings,
    pub enabled_at: String,
    pub expires_at: String,
    pub expires_at_ms: Millis,
}

/// Every unexpired, not disabled enablement: the configurations the
/// runner keeps warm containers for, and the conversations whose running
/// jobs may go on.
pub fn active_enablements(conn: &Connection, now: Millis) -> Result<Vec<Enablement>, YoloError> {
    let ids: Vec<String> = conn
        .prepare_cached(
            "SELECT conversation_id FROM yolo_enablements WHERE disabled_at IS NULL AND expires_at > ?1",
        )?
        .query_map([now], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in &ids {
        out.extend(active_enablement(conn, id, now)?);
    }
    Ok(out)
}

pub fn active_enablement(
    conn: &Connection,
    cid: &str,
    now: Millis,
) -> Result<Option<Enablement>, YoloError> {
    let row: Option<(String, Millis, Millis)> = conn
        .query_row(
            "SELECT settings, enabled_at, expires_at FROM yolo_enablements
             WHERE conversation_id = ?1 AND disabled_at IS NULL AND expires_at > ?2",
            params![cid, now],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    row.map(|(s, at, exp)| {
        Ok(Enablement {
            conversation_id: cid.to_owned(),
            settings: serde_json::from_str(&s).map_err(|e| YoloError::Corrupt(e.to_string()))?,
            enabled_at: rfc3339(at),
            expires_at: rfc3339(exp),
            expires_at_ms: exp,
        })
    })
    .transpose()
}

/// Turns YOLO on for a conversation, replacing earlier settings. Like
/// [`disable`], it closes everything made under the previous enablement
/// ([`close_open`]): what the operator approved then is not what they just
/// enabled, even when the settings happen to be equal.
pub fn enable(
    conn: &mut Connection,
    redactor: &Redactor,
    cid: &str,
    settings: &Settings,
    for_ms: Millis,
    now: Millis,
) -> Result<Enablement, YoloError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let conv_expires: Option<Millis> = tx
        .query_row(
            "SELECT expires_at FROM conversations WHERE id = ?1",
            [cid],
            |r| r.get(0),
        )
        .optional()?;
    let conv_expires = conv_expires.ok_or_else(|| YoloError::NoConversation(cid.to_owned()))?;
    if conv_expires <= now {
        return Err(YoloError::ConversationExpired(cid.to_owned()));
    }
    let expires = (now + for_ms).min(conv_expires);
    let json = serde_json::to_string(settings).map_err(|e| YoloError::Corrupt(e.to_string()))?;
    let closed = close_open(&tx, redactor, cid, CloseCause::Reenabled, now)?;
    tx.execute(
        "INSERT INTO yolo_enablements (conversation_id, settings, enabled_at, expires_at, disabled_at)
         VALUES (?1, ?2, ?3, ?4, NULL)
         ON CONFLICT (conversation_id) DO UPDATE SET settings = ?2, enabled_at = ?3, expires_at = ?4, disabled_at = NULL",
        params![cid, json, now, expires],
    )?;
    audit::append(
        &tx,
        redactor,
        now,
        Entry {
            conversation_id: Some(cid),
            session_id: None,
            action: "yolo.enable",
            outcome: Outcome::Ok,
            detail: serde_json::json!({ "settings": settings, "expires_at": rfc3339(expires), "closed": closed }),
        },
    )?;
    tx.commit()?;
    Ok(Enablement {
        conversation_id: cid.to_owned(),
        settings: settings.clone(),
        enabled_at: rfc3339(now),
        expires_at: rfc3339(expires),
        expires_at_ms: expires,
    })
}

/// Ends YOLO for a conversation at once: everything in flight is closed
/// ([`close_open`]). A command already running is stopped by the runner,
/// which re-checks the enablement while it waits.
pub fn disable(
    conn: &mut Connection,
    redactor: &Redactor,
    cid: &str,
    now: Millis,
) -> Result<usize, YoloError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n = tx.execute(
        "UPDATE yolo_enablements SET disabled_at = ?1 WHERE conversation_id = ?2 AND disabled_at IS NULL",
        params![now, cid],
    )?;
    let closed = close_open(&tx, redactor, cid, CloseCause::Disabled, now)?;
    audit::append(
        &tx,
        redactor,
        now,
        Entry {
            conversation_id: Some(cid),
            session_id: None,
            action: "yolo.disable",
            outcome: if n > 0 { Outcome::Ok } else { Outcome::Refused },
            detail: serde_json::json!({ "was_enabled": n > 0, "closed": closed }),
        },
    )?;
    tx.commit()?;
    Ok(n)
}

/// Why [`close_open`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCause {
    Disabled,
    Reenabled,
}

impl CloseCause {
    fn says(self) -> &'static str {
        match self {
            Self::Disabled => "YOLO was disabled for this conversation",
            Self::Reenabled => {
                "the operator re-enabled YOLO for this conversation (its settings may have changed)"
            }
        }
    }
}

/// What [`close_open`] closed (recorded in the enable/disable audit row).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Closed {
    /// Proposals awaiting approval or execution, now expired.
    pub expired: Vec<String>,
    /// Queued jobs, now failed without running.
    pub failed: Vec<String>,
    /// Unspent approval tokens that stopped working.
    pub tokens_revoked: usize,
}

/// Closes what a conversation has in flight under its current enablement,
/// inside the caller's transaction: proposed and approved proposals expire,
/// their unspent approval tokens expire now, queued jobs fail (audited as
/// `job.fail`), and both sessions get one message saying what was closed.
/// A running job is left to the runner, which stops it when the enablement
/// it ran under ends.
pub fn close_open(
    tx: &Connection,
    redactor: &Redactor,
    cid: &str,
    cause: CloseCause,
    now: Millis,
) -> Result<Closed, YoloError> {
    let open: Vec<(String, String, String)> = tx
        .prepare("SELECT id, state, session_id FROM proposals WHERE conversation_id = ?1 AND state IN ('proposed', 'approved', 'queued') ORDER BY created_at, id")?
        .query_map([cid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut closed = Closed::default();
    for (id, state, session) in &open {
        if state == JobState::Queued.as_str() {
            transition(tx, id, Event::Fail, now)?;
            let why = format!(
                "{} before a runner started it; it was not run",
                cause.says()
            );
            record_failure(tx, id, &redactor.redacted(&why))?;
            audit::append(
                tx,
                redactor,
                now,
                Entry {
                    conversation_id: Some(cid),
                    session_id: Some(session),
                    action: "job.fail",
                    outcome: Outcome::Failed,
                    detail: serde_json::json!({ "proposal_id": id, "reason": why }),
                },
            )?;
            closed.failed.push(id.clone());
        } else {
            transition(tx, id, Event::Expire, now)?;
            closed.expired.push(id.clone());
        }
    }
    closed.tokens_revoked = tx.execute(
        "UPDATE approvals SET expires_at = ?1
         WHERE used_at IS NULL AND expires_at > ?1
           AND proposal_id IN (SELECT id FROM proposals WHERE conversation_id = ?2)",
        params![now, cid],
    )?;
    if !open.is_empty() || closed.tokens_revoked > 0 {
        let list = |ids: &[String]| {
            if ids.is_empty() {
                "none".to_owned()
            } else {
                ids.join(", ")
            }
        };
        let body = format!(
            "{}. Closed: proposals awaiting approval or execution (propose again if still needed): {}; queued jobs failed without running: {}; approval tokens revoked: {}.",
            upper_first(cause.says()),
            list(&closed.expired),
            list(&closed.failed),
            closed.tokens_revoked,
        );
        insert_to_all(
            tx,
            cid,
            sender::BRIDGE,
            "system",
            &redactor.redacted(&body),
            now,
        )?;
    }
    Ok(closed)
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
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

/// Names the execution parameters of `approved` that the conversation's
/// current settings would not give: every field the proposal hash binds,
/// and a timeout above the current maximum. Empty means "still the same".
pub fn settings_mismatch(current: &Settings, approved: &ExecParams) -> Vec<&'static str> {
    let now = ExecParams::from_settings(current, approved.timeout_secs);
    let mut out = Vec::new();
    let mut check = |name, differs: bool| {
        if differs {
            out.push(name);
        }
    };
    check("mode", approved.mode != now.mode);
    check("image", approved.image != now.image);
    check("workspace", approved.workspace != now.workspace);
    check(
        "workspace read-write",
        approved.workspace_rw != now.workspace_rw,
    );
    check("runtime", approved.runtime != now.runtime);
    check("timeout", approved.timeout_secs > current.timeout_secs);
    check("limits", approved.limits != now.limits);
    // A field added to ExecParams later and forgotten above still counts.
    if out.is_empty() && *approved != now {
        out.push("parameters");
    }
    out
}

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

impl Settings {
    fn placeholder() -> Self {
        Self {
            mode: Mode::Safe,
            workspace: None,
            workspace_rw: false,
            image: String::new(),
            runtime: None,
            timeout_secs: 0,
            limits: Limits::default(),
        }
    }
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

/// `apv_` + 48 hex characters (192 random bits).
pub fn is_approval_token(s: &str) -> bool {
    s.len() == 52
        && s.starts_with("apv_")
        && s[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Issues a single-use approval token for exactly the proposal the operator
/// was shown (`shown_hash`), valid for `ttl_secs`.
pub fn approve(
    conn: &mut Connection,
    secret: &ServerSecret,
    redactor: &Redactor,
    id: &str,
    shown_hash: &str,
    ttl_secs: u32,
    now: Millis,
) -> Result<(String, Millis), YoloError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let p = load_proposal(&tx, id)?;
    verify_integrity(&p)?;
    if p.hash != shown_hash {
        return Err(YoloError::Tampered(id.to_owned()));
    }
    let en = active_enablement(&tx, &p.conversation_id, now)?
        .ok_or_else(|| YoloError::NotEnabled(p.conversation_id.clone()))?;
    if !settings_mismatch(&en.settings, &p.params).is_empty() {
        return Err(YoloError::SettingsChanged);
    }
    transition(&tx, id, Event::Approve, now)?;
    let token = format!(
        "apv_{}",
        auth::random_hex(24).map_err(|e| YoloError::Corrupt(e.to_string()))?
    );
    let expires = now + i64::from(ttl_secs) * 1000;
    tx.execute(
        "INSERT INTO approvals (token_hash, proposal_id, proposal_hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![secret.hash_token(&token), id, p.hash, now, expires],
    )?;
    audit::append(
        &tx,
        redactor,
        now,
        Entry {
            conversation_id: Some(&p.conversation_id),
            session_id: None,
            action: "yolo.approve",
            outcome: Outcome::Ok,
            detail: serde_json::json!({ "proposal_id": id, "proposal_hash": p.hash, "token_expires_at": rfc3339(expires) }),
        },
    )?;
    tx.commit()?;
    Ok((token, expires))
}

pub fn reject(
    conn: &mut Connection,
    redactor: &Redactor,
    id: &str,
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
            "The operator rejected proposal {id} (`{}`).",
            p.command
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
            detail: serde_json::json!({ "proposal_id": id }),
        },
    )?;
    tx.commit()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_state_leads_back_to_queued_and_final_states_are_final() {
        let all = [
            JobState::Proposed,
            JobState::Approved,
            JobState::Queued,
            JobState::Running,
            JobState::Done,
            JobState::Failed,
            JobState::Rejected,
            JobState::Expired,
        ];
        let events = [
            Event::Approve,
            Event::Reject,
            Event::Expire,
            Event::Execute,
            Event::Claim,
            Event::Finish,
            Event::Fail,
        ];
        for s in all {
            for e in events {
                if let Some(to) = s.next(e) {
                    assert!(
                        !s.is_final(),
                        "{s:?} --{e:?}--> {to:?} leaves a final state"
                    );
                    if to == JobState::Queued {
                        assert_eq!((s, e), (JobState::Approved, Event::Execute));
                    }
                    if to == JobState::Running {
                        assert_eq!(s, JobState::Queued);
                    }
                }
            }
            assert_eq!(JobState::parse(s.as_str()), Some(s));
        }
        // A job that waited too long fails; it never runs and its token
        // stays spent.
        assert_eq!(JobState::Queued.next(Event::Expire), Some(JobState::Failed));
        assert_eq!(JobState::Running.next(Event::Expire), None);
    }

    #[test]
    fn hash_binds_command_and_params() {
        let p = serde_json::to_string(&ExecParams::from_settings(&Settings::placeholder(), 30))
            .unwrap();
        let q = serde_json::to_string(&ExecParams::from_settings(&Settings::placeholder(), 31))
            .unwrap();
        assert_ne!(proposal_hash("ls", &p), proposal_hash("ls ", &p));
        assert_ne!(proposal_hash("ls", &p), proposal_hash("ls", &q));
        assert_eq!(proposal_hash("ls", &p), proposal_hash("ls", &p));
    }

    #[test]
    fn approval_token_shape() {
        assert!(is_approval_token(&format!("apv_{}", "ab".repeat(24))));
        assert!(!is_approval_token(&"ab".repeat(26)));
        assert!(!is_approval_token(&format!("apv_{}", "AB".repeat(24))));
    }
}
