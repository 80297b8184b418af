//! Enablements: the operator turning YOLO on for a conversation (with its
//! settings, for a while) and off, and closing what was in flight under the
//! previous enablement when either happens.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use super::{Event, JobState, Settings, YoloError, record_failure, transition};
use crate::audit::{self, Entry, Outcome};
use crate::clock::{Millis, rfc3339};
use crate::messages::{insert_to_all, sender};
use crate::redact::Redactor;

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
    let rows: Vec<(String, String, Millis, Millis)> = conn
        .prepare_cached(
            "SELECT conversation_id, settings, enabled_at, expires_at FROM yolo_enablements
             WHERE disabled_at IS NULL AND expires_at > ?1",
        )?
        .query_map([now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    rows.into_iter()
        .map(|(cid, s, at, exp)| enablement(cid, &s, at, exp))
        .collect()
}

pub fn active_enablement(
    conn: &Connection,
    cid: &str,
    now: Millis,
) -> Result<Option<Enablement>, YoloError> {
    let row: Option<(String, Millis, Millis)> = conn
        .prepare_cached(
            "SELECT settings, enabled_at, expires_at FROM yolo_enablements
             WHERE conversation_id = ?1 AND disabled_at IS NULL AND expires_at > ?2",
        )?
        .query_row(params![cid, now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    row.map(|(s, at, exp)| enablement(cid.to_owned(), &s, at, exp))
        .transpose()
}

fn enablement(
    conversation_id: String,
    settings: &str,
    at: Millis,
    exp: Millis,
) -> Result<Enablement, YoloError> {
    Ok(Enablement {
        conversation_id,
        settings: serde_json::from_str(settings).map_err(|e| YoloError::Corrupt(e.to_string()))?,
        enabled_at: rfc3339(at),
        expires_at: rfc3339(exp),
        expires_at_ms: exp,
    })
}

/// Why `settings`' workspace must not be mounted while the `others`
/// (every other conversation's active enablement) stand, or `None`.
///
/// A workspace strictly inside another conversation's **read-write**
/// workspace can be attacked from that conversation's sandbox: a command
/// there can replace a directory on the way to it with a symlink after the
/// runner checked the path (which refuses symlinks) and before the engine
/// mounts it (which follows them), so the sandbox would get any host
/// directory as `/workspace`. The check runs both ways, so neither order of
/// enabling makes such a pair.
fn workspace_conflict(cid: &str, settings: &Settings, others: &[Enablement]) -> Option<String> {
    let ws = settings.workspace.as_deref()?;
    others
        .iter()
        .filter(|en| en.conversation_id != cid)
        .find_map(|en| {
            let theirs = en.settings.workspace.as_deref()?;
            if en.settings.workspace_rw && ws != theirs && ws.starts_with(theirs) {
                Some(format!(
                    "it lies inside {}, the read-write workspace of conversation {}: a command there could swap a directory on the way to it for a symlink between the runner's check and the mount. Choose a directory outside it, or enable {} read-only",
                    theirs.display(),
                    en.conversation_id,
                    en.conversation_id
                ))
            } else if settings.workspace_rw && ws != theirs && theirs.starts_with(ws) {
                Some(format!(
                    "it holds {}, the workspace of conversation {}: a command here could swap a directory on the way to it for a symlink between the runner's check and the mount. Choose a directory that does not hold it, enable this one read-only, or disable {} first",
                    theirs.display(),
                    en.conversation_id,
                    en.conversation_id
                ))
            } else {
                None
            }
        })
}

/// Why a workspace may not be mounted because it holds this database's
/// directory (the database, its WAL, and `<db>.secret` live there): every
/// command would read every conversation, and with `--workspace-rw` could
/// rewrite the queue, the approvals and the audit chain. `None` when it does
/// not, or when the store is in memory.
fn workspace_holds_store(conn: &Connection, settings: &Settings) -> Option<String> {
    let ws = settings.workspace.as_deref()?;
    let db = conn.path().filter(|p| !p.is_empty())?;
    let db = std::fs::canonicalize(db).unwrap_or_else(|_| db.into());
    let dir = db.parent()?;
    dir.starts_with(ws).then(|| {
        format!(
            "it holds {}, the directory of the bridge's database and its secret: a command could read every conversation there{}. Choose a directory that does not hold it, or move the database (--db or BRIDGE_DB)",
            dir.display(),
            if settings.workspace_rw {
                ", and rewrite the queue, the approvals and the audit trail"
            } else {
                ""
            }
        )
    })
}

/// Why the workspace of `settings` may not be mounted for conversation
/// `cid` while `active` are enabled: it holds the database's directory
/// ([`workspace_holds_store`]) or nests with another conversation's
/// read-write workspace ([`workspace_conflict`]). Checked at enable, at
/// claim, and before keeping a container warm; `None` without a workspace.
pub fn workspace_problem(
    conn: &Connection,
    cid: &str,
    settings: &Settings,
    active: &[Enablement],
) -> Option<String> {
    workspace_holds_store(conn, settings).or_else(|| workspace_conflict(cid, settings, active))
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
    if let Some(why) = workspace_problem(&tx, cid, settings, &active_enablements(&tx, now)?) {
        let path = settings.workspace.clone().unwrap_or_default();
        return Err(YoloError::Workspace { path, problem: why });
    }
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
    /// The operator's standing approval rules, which end with the
    /// enablement they were made under (agents are not told of these).
    pub rules_revoked: usize,
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
    closed.rules_revoked = super::revoke_rules(tx, cid, now)?;
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
