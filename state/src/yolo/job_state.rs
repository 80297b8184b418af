//! The proposal/job state machine: [`JobState`], the [`Event`]s that move
//! it, the one transition table ([`JobState::next`]) and [`transition`],
//! which applies an event in the database guarded on the state it read.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::YoloError;
use crate::clock::Millis;

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
